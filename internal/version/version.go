// Package version holds the build's version, set by the linker
// (-ldflags "-X github.com/heraldlb/herald/internal/version.Version=v0.1.0").
package version

// Version is herald's version; "dev" for a build that was not stamped.
var Version = "dev"
