//go:build tools

// Package tools pins the upstream Kubernetes commands that herald's tests run for real:
// kube-apiserver (envtest and the lab), kube-proxy and kubectl (the lab), and the
// kubelet, kubeadm, kube-controller-manager and kube-scheduler that the locally built
// kind node image runs.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
