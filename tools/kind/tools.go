//go:build tools

// Package tools pins kind, which hack/kind/cluster.sh builds to create the e2e cluster.
package tools

import (
	_ "sigs.k8s.io/kind"
)
