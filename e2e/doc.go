// Package e2e holds herald's end-to-end tests. They run as root in the netns lab
// (package e2e/lab) and carry the build tag e2e:
//
//	go test -tags e2e -count=1 -v ./e2e/
package e2e
