package kubeproxy

import (
	"fmt"
	"testing"
)

// kubeadmConf is config.conf as kubeadm (and kind) write it, with mode and
// strictARP left for each case to fill in.
const kubeadmConf = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
iptables:
  masqueradeAll: false
  minSyncPeriod: 1s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
%s
  syncPeriod: 0s
kind: KubeProxyConfiguration
%s
nodePortAddresses: null
`

func conf(mode, strict string) string {
	return fmt.Sprintf(kubeadmConf, strict, mode)
}

func TestStrictARPMissing(t *testing.T) {
	for _, tt := range []struct {
		name    string
		conf    string
		want    bool
		wantErr bool
	}{
		{"kubeadm default: mode empty, strictARP false", conf(`mode: ""`, "  strictARP: false"), false, false},
		{"mode absent", conf("", "  strictARP: false"), false, false},
		{"iptables", conf("mode: iptables", "  strictARP: false"), false, false},
		{"nftables", conf("mode: nftables", ""), false, false},
		{"ipvs, strictARP false", conf("mode: ipvs", "  strictARP: false"), true, false},
		{"ipvs, strictARP absent", conf("mode: ipvs", ""), true, false},
		{"ipvs, strictARP true", conf("mode: ipvs", "  strictARP: true"), false, false},
		{"IPVS in capitals, strictARP false", conf("mode: IPVS", "  strictARP: false"), true, false},
		{"ipvs quoted", conf(`mode: "ipvs"`, "  strictARP: true"), false, false},
		{"ipvs with no ipvs section", "mode: ipvs\n", true, false},
		{"empty", "", false, false},
		{"garbage", "mode: [ipvs\n\t: :", false, true},
		{"strictARP not a bool", "mode: ipvs\nipvs:\n  strictARP: maybe\n", false, true},
		{"a list, not a map", "- mode: ipvs\n", false, true},
	} {
		got, err := StrictARPMissing(tt.conf)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v; want error %v", tt.name, err, tt.wantErr)
		}
		if got != tt.want {
			t.Errorf("%s: StrictARPMissing = %v; want %v", tt.name, got, tt.want)
		}
	}
}
