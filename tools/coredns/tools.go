//go:build tools

// Package tools pins CoreDNS, built into the kind node image's coredns image.
package tools

import (
	_ "github.com/coredns/coredns"
)
