// Package kubeproxy reads kube-proxy's configuration, as kubeadm and kind store it in
// the ConfigMap kube-system/kube-proxy, for what matters to herald's layer 2 mode:
// in IPVS mode without strictARP, kube-proxy binds every LoadBalancer address to the
// kube-ipvs0 device on every node, and each node's kernel then answers ARP for
// every address, whichever node herald elected.
package kubeproxy

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
)

const (
	// Namespace and Name locate the ConfigMap kubeadm writes; ConfigKey holds the
	// KubeProxyConfiguration in it.
	Namespace = "kube-system"
	Name      = "kube-proxy"
	ConfigKey = "config.conf"
)

// config is the part of a KubeProxyConfiguration (kubeproxy.config.k8s.io) read
// here. The upstream type is not imported: it lives in k8s.io/kube-proxy, a module
// herald would carry for two fields.
type config struct {
	Mode string `json:"mode"`
	IPVS struct {
		StrictARP *bool `json:"strictARP"`
	} `json:"ipvs"`
}

// StrictARPMissing reports whether a KubeProxyConfiguration puts kube-proxy in IPVS
// mode without ipvs.strictARP: true. An empty mode is iptables on Linux, so no
// claim. The error says why the text could not be read; callers then claim
// nothing, since a configuration they cannot read is no evidence of a problem.
func StrictARPMissing(conf string) (bool, error) {
	var c config
	if err := yaml.Unmarshal([]byte(conf), &c); err != nil {
		return false, fmt.Errorf("reading the KubeProxyConfiguration: %w", err)
	}
	if !strings.EqualFold(strings.TrimSpace(c.Mode), "ipvs") {
		return false, nil
	}
	return c.IPVS.StrictARP == nil || !*c.IPVS.StrictARP, nil
}
