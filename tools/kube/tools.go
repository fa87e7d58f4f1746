//go:build tools

// Package tools pins the upstream Kubernetes commands that herald's tests run for real:
// kube-apiserver (envtest and the lab), kube-proxy and kubectl (the lab).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
