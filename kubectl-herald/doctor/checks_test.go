package doctor

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// want is what a test expects of a check: its status, and text its message (and
// hint) must contain.
type want struct {
	status string
	msg    []string
	hint   []string
	notMsg []string
}

func (w want) verify(t *testing.T, name string, got Check) {
	t.Helper()
	if got.Status != w.status {
		t.Errorf("%s: status %q; want %q (message %q)", name, got.Status, w.status, got.Message)
	}
	for _, s := range w.msg {
		if !strings.Contains(got.Message, s) {
			t.Errorf("%s: message %q; want it to contain %q", name, got.Message, s)
		}
	}
	for _, s := range w.notMsg {
		if strings.Contains(got.Message, s) {
			t.Errorf("%s: message %q; want it without %q", name, got.Message, s)
		}
	}
	for _, s := range w.hint {
		if !strings.Contains(got.Hint, s) {
			t.Errorf("%s: hint %q; want it to contain %q", name, got.Hint, s)
		}
	}
	if (got.Status == StatusError || got.Status == StatusWarning) && got.Hint == "" {
		t.Errorf("%s: a %s with no hint", name, got.Status)
	}
}

// kubeadmConf is config.conf exactly as kubeadm (v1.34) writes it into the
// ConfigMap kube-system/kube-proxy, with the mode and strictARP filled in.
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
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: %v
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
kind: KubeProxyConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: %s
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForProbes: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
`

func kubeadm(strictARP bool, mode string) string { return fmt.Sprintf(kubeadmConf, strictARP, mode) }

func TestCheckKubeProxy(t *testing.T) {
	for _, tt := range []struct {
		name string
		conf string
		l2   int
		want want
	}{
		{"kubeadm default (mode empty)", kubeadm(false, `""`), 1, want{status: StatusOK, msg: []string{"iptables mode", "default"}}},
		{"iptables", kubeadm(false, "iptables"), 1, want{status: StatusOK, msg: []string{"iptables mode"}}},
		{"nftables", kubeadm(false, "nftables"), 1, want{status: StatusOK, msg: []string{"nftables mode"}}},
		{"ipvs without strictARP, L2 in use", kubeadm(false, "ipvs"), 2, want{status: StatusError,
			msg: []string{"IPVS mode without strictARP", "every node answers ARP", "2 L2Announcements in use"}, hint: []string{"strictARP: true", "rollout restart daemonset kube-proxy"}}},
		{"ipvs without strictARP, no L2", kubeadm(false, "ipvs"), 0, want{status: StatusWarning, msg: []string{"IPVS mode without strictARP", "no L2Announcement"}}},
		{"ipvs without strictARP, L2 unknown", kubeadm(false, "ipvs"), -1, want{status: StatusWarning, msg: []string{"could not be read"}}},
		{"ipvs with strictARP", kubeadm(true, "ipvs"), 3, want{status: StatusOK, msg: []string{"IPVS mode with strictARP: true"}}},
		{"IPVS in capitals", kubeadm(false, "IPVS"), 1, want{status: StatusError}},
		{"garbage", "mode: [ipvs\n\t: :", 1, want{status: StatusWarning, msg: []string{"unreadable"}}},
	} {
		tt.want.verify(t, tt.name, checkKubeProxy(tt.conf, tt.l2))
	}
}

func node(name string, addrs ...string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/os": "linux"}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	for i, a := range addrs {
		typ := corev1.NodeInternalIP
		if i > 0 {
			typ = corev1.NodeExternalIP
		}
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: typ, Address: a})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

func pool(name string, addrs ...string) heraldv1.IPPool {
	return heraldv1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: heraldv1.IPPoolSpec{Addresses: addrs}}
}

func TestCheckNodeAddresses(t *testing.T) {
	nodes := []corev1.Node{node("node1", "192.168.1.10"), node("node2", "192.168.1.11", "203.0.113.7"), node("node3", "fd00::11")}
	for _, tt := range []struct {
		name  string
		pools []heraldv1.IPPool
		want  want
	}{
		{"no pools", nil, want{status: StatusOK, msg: []string{"no pool holds a node's address (0 pools, 3 nodes)"}}},
		{"clear of the nodes", []heraldv1.IPPool{pool("lan", "192.168.1.200-192.168.1.250", "fd00::200/120")}, want{status: StatusOK}},
		{"an InternalIP in a range", []heraldv1.IPPool{pool("lan", "192.168.1.5-192.168.1.10")},
			want{status: StatusError, msg: []string{`pool "lan" holds 192.168.1.10, an address of Node node1`}, notMsg: []string{"node2"}, hint: []string{"kubectl edit ippool"}}},
		{"a whole subnet", []heraldv1.IPPool{pool("oops", "192.168.1.0/24")},
			want{status: StatusError, msg: []string{"192.168.1.10, an address of Node node1", "192.168.1.11, an address of Node node2"}, notMsg: []string{"203.0.113.7"}}},
		{"an ExternalIP", []heraldv1.IPPool{pool("public", "203.0.113.0/28")}, want{status: StatusError, msg: []string{"203.0.113.7, an address of Node node2"}}},
		{"IPv6 single address", []heraldv1.IPPool{pool("v6", "fd00::11")}, want{status: StatusError, msg: []string{"fd00::11, an address of Node node3"}}},
		{"unparsable pool", []heraldv1.IPPool{pool("bad", "fd00::20-fd00::10")}, want{status: StatusWarning, msg: []string{`pool "bad" is unreadable`}}},
	} {
		tt.want.verify(t, tt.name, checkNodeAddresses(tt.pools, nodes))
	}
}

func TestCheckPoolOverlap(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pools []heraldv1.IPPool
		want  want
	}{
		{"disjoint", []heraldv1.IPPool{pool("a", "10.0.0.0/28"), pool("b", "10.0.0.16/28")}, want{status: StatusOK, msg: []string{"no two pools share an address (2 pools)"}}},
		{"one address", []heraldv1.IPPool{pool("a", "10.0.0.0/28"), pool("b", "10.0.0.15-10.0.0.20")},
			want{status: StatusWarning, msg: []string{`pools "a" and "b" share 10.0.0.15`}}},
		{"a range, three pools", []heraldv1.IPPool{pool("c", "10.0.0.8/29"), pool("a", "10.0.0.0/28"), pool("b", "fd00::/64")},
			want{status: StatusWarning, msg: []string{`pools "a" and "c" share 10.0.0.8-10.0.0.15`}, notMsg: []string{`"b"`}}},
	} {
		tt.want.verify(t, tt.name, checkPoolOverlap(tt.pools))
	}
}

func speakerDS() *appsv1.DaemonSet {
	sel := map[string]string{"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "speaker"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: SpeakerName},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
				Containers:   []corev1.Container{{Name: "speaker", Image: "ghcr.io/heraldlb/herald:v0.1.0"}},
			}},
		},
	}
}

func speakerPod(node string, phase corev1.PodPhase, ready bool) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: "herald-speaker-" + node},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestCheckSpeakers(t *testing.T) {
	cordoned := node("node4")
	cordoned.Spec.Unschedulable = true
	notReady := node("node5")
	notReady.Status.Conditions[0].Status = corev1.ConditionUnknown
	windows := node("win1")
	windows.Labels["kubernetes.io/os"] = "windows"
	crashing := speakerPod("node2", corev1.PodRunning, false)
	crashing.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
	three := []corev1.Node{node("node1"), node("node2"), node("node3"), windows}
	for _, tt := range []struct {
		name  string
		ds    *appsv1.DaemonSet
		pods  []corev1.Pod
		nodes []corev1.Node
		want  want
	}{
		{"not installed", nil, nil, three, want{status: StatusError, msg: []string{"herald is not installed"}, hint: []string{"kubectl apply -f manifests/install.yaml"}}},
		{"all ready (the windows node is not selected)", speakerDS(),
			[]corev1.Pod{speakerPod("node1", corev1.PodRunning, true), speakerPod("node2", corev1.PodRunning, true), speakerPod("node3", corev1.PodRunning, true)},
			three, want{status: StatusOK, msg: []string{"3 of 3 nodes"}}},
		{"one missing, one crashing", speakerDS(),
			[]corev1.Pod{speakerPod("node1", corev1.PodRunning, true), crashing},
			three, want{status: StatusError, msg: []string{"1 of 3 nodes", "node2: herald-speaker-node2 Running, not Ready (CrashLoopBackOff)", "node3: no speaker pod"}, notMsg: []string{"win1"},
				hint: []string{"describe ds herald-speaker", "app.kubernetes.io/component=speaker"}}},
		{"pending", speakerDS(), []corev1.Pod{speakerPod("node1", corev1.PodPending, false)}, []corev1.Node{node("node1")},
			want{status: StatusError, msg: []string{"node1: herald-speaker-node1 Pending"}}},
		{"only cordoned and NotReady nodes lack one", speakerDS(),
			[]corev1.Pod{speakerPod("node1", corev1.PodRunning, true)},
			[]corev1.Node{node("node1"), cordoned, notReady},
			want{status: StatusWarning, msg: []string{"1 of 3", "node4: no speaker pod (node cordoned)", "node5: no speaker pod (node NotReady)"}}},
		{"no node selected", speakerDS(), nil, []corev1.Node{windows}, want{status: StatusWarning, msg: []string{"no node matches"}}},
	} {
		tt.want.verify(t, tt.name, checkSpeakers(tt.ds, tt.pods, tt.nodes))
	}
}

func TestCheckMemberlist(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods/proxy"}, "herald-speaker-a", errors.New("no"))
	v := func(node string, alive int) memberView {
		return memberView{Pod: "herald-speaker-" + node, Node: node, Alive: alive}
	}
	for _, tt := range []struct {
		name  string
		views []memberView
		want  want
	}{
		{"none running", nil, want{status: StatusSkipped}},
		{"agree", []memberView{v("n1", 3), v("n2", 3), v("n3", 3)}, want{status: StatusOK, msg: []string{"all 3 speakers see 3 alive"}}},
		{"split in two", []memberView{v("n3", 1), v("n1", 2), v("n2", 2)}, want{status: StatusError,
			msg:  []string{"(3 speakers run)", "n1 (herald-speaker-n1) sees 2 alive", "n2 (herald-speaker-n2) sees 2 alive", "n3 (herald-speaker-n3) sees 1 alive"},
			hint: []string{"7946"}}},
		{"one sees a stale member", []memberView{v("n1", 2), v("n2", 3)}, want{status: StatusError, msg: []string{"n1 (herald-speaker-n1) sees all 2", "n2 (herald-speaker-n2) sees 3 alive"}}},
		{"all forbidden", []memberView{{Pod: "a", Node: "n1", Err: forbidden}, {Pod: "b", Node: "n2", Err: forbidden}},
			want{status: StatusSkipped, msg: []string{"forbidden"}, hint: []string{"--resource=pods/proxy"}}},
		{"one unreachable", []memberView{v("n1", 2), {Pod: "b", Node: "n2", Err: errors.New("timeout")}},
			want{status: StatusWarning, msg: []string{"1 of 2 speakers", "n2 (b): metrics unreadable: timeout"}}},
	} {
		tt.want.verify(t, tt.name, checkMemberlist(tt.views))
	}
}

func TestMembersAlive(t *testing.T) {
	const metrics = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 61
# HELP herald_speaker_announced_addresses Addresses this node answers ARP/NDP for, by family.
# TYPE herald_speaker_announced_addresses gauge
herald_speaker_announced_addresses{family="ipv4"} 2
# HELP herald_speaker_members_alive Speakers this one sees alive in memberlist, itself included.
# TYPE herald_speaker_members_alive gauge
herald_speaker_members_alive 3
`
	got, err := membersAlive(strings.NewReader(metrics))
	if err != nil || got != 3 {
		t.Errorf("membersAlive = %d, %v; want 3, nil", got, err)
	}
	if _, err := membersAlive(strings.NewReader("go_goroutines 61\n")); err == nil {
		t.Error("membersAlive without the gauge: no error")
	}
	if _, err := membersAlive(strings.NewReader("{{{")); err == nil {
		t.Error("membersAlive of garbage: no error")
	}
}

func peer(name string, nodes ...heraldv1.BGPPeerNodeStatus) heraldv1.BGPPeer {
	return heraldv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   heraldv1.BGPPeerSpec{PeerAddress: "10.77.0.1", PeerASN: 64512, LocalASN: 64513},
		Status: heraldv1.BGPPeerStatus{Nodes: nodes}}
}

func TestCheckBGPSessions(t *testing.T) {
	up := func(n string) heraldv1.BGPPeerNodeStatus {
		return heraldv1.BGPPeerNodeStatus{Node: n, State: heraldv1.BGPSessionEstablished}
	}
	for _, tt := range []struct {
		name  string
		peers []heraldv1.BGPPeer
		want  want
	}{
		{"no peers", nil, want{status: StatusOK, msg: []string{"no BGP peers"}}},
		{"all up", []heraldv1.BGPPeer{peer("frr", up("n1"), up("n2"))}, want{status: StatusOK, msg: []string{"2 sessions Established with 1 peer"}}},
		{"one down", []heraldv1.BGPPeer{peer("frr", up("n1"), heraldv1.BGPPeerNodeStatus{Node: "n2", State: heraldv1.BGPSessionActive, LastError: "dial tcp 10.77.0.1:179: connection refused"})},
			want{status: StatusError, msg: []string{"1 of 2 BGP sessions down", "node n2 to peer frr (10.77.0.1 AS 64512): Active: dial tcp 10.77.0.1:179: connection refused"}, hint: []string{"179"}}},
		{"a peer no node keeps", []heraldv1.BGPPeer{peer("frr", up("n1")), peer("lonely")},
			want{status: StatusWarning, msg: []string{"peer lonely (10.77.0.1 AS 64512): no node reports a session"}}},
	} {
		tt.want.verify(t, tt.name, checkBGPSessions(tt.peers))
	}
}

func TestCheckCRDs(t *testing.T) {
	for _, tt := range []struct {
		name          string
		served, other []string
		want          want
	}{
		{"all served", []string{"ippools", "ippools/status", "l2announcements", "bgppeers", "bgppeers/status", "bgpannouncements"}, nil, want{status: StatusOK}},
		{"one missing", []string{"ippools", "l2announcements", "bgppeers"}, nil, want{status: StatusError, msg: []string{"lacks bgpannouncements"}}},
		{"no group", nil, nil, want{status: StatusError, msg: []string{"not installed"}, hint: []string{"install.yaml"}}},
		{"another version", nil, []string{"v1beta1"}, want{status: StatusError, msg: []string{"herald.io serves v1beta1, not v1alpha1"}}},
	} {
		tt.want.verify(t, tt.name, checkCRDs(tt.served, tt.other))
	}
}

func TestCheckController(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	dep := func(avail int32) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)}, Status: appsv1.DeploymentStatus{AvailableReplicas: avail}}
	}
	lease := func(holder string, renewed time.Duration) *coordinationv1.Lease {
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: &metav1.MicroTime{Time: now.Add(-renewed)}}}
	}
	for _, tt := range []struct {
		name  string
		dep   *appsv1.Deployment
		lease *coordinationv1.Lease
		note  string
		want  want
	}{
		{"not installed", nil, nil, "", want{status: StatusError, msg: []string{"herald is not installed"}}},
		{"none available", dep(0), nil, "", want{status: StatusError, msg: []string{"0 of 2 replicas available"}}},
		{"healthy", dep(2), lease("herald-controller-abc_1234", 2*time.Second), "", want{status: StatusOK, msg: []string{"2 of 2", "leader herald-controller-abc_1234"}}},
		{"one of two", dep(1), lease("x", 2*time.Second), "", want{status: StatusWarning, msg: []string{"1 of 2"}}},
		{"lease expired", dep(2), lease("x", time.Minute), "", want{status: StatusError, msg: []string{"last held by x, expired 45s ago"}}},
		{"lease released", dep(2), lease("", time.Second), "", want{status: StatusError, msg: []string{"no replica holds the leader Lease"}}},
		{"lease forbidden", dep(2), nil, "leader Lease not checked (forbidden)", want{status: StatusOK, msg: []string{"not checked"}}},
		{"no lease", dep(2), nil, "", want{status: StatusOK, msg: []string{"leader election off"}}},
	} {
		tt.want.verify(t, tt.name, checkController(tt.dep, tt.lease, tt.note, now))
	}
}

func TestCheckVersions(t *testing.T) {
	dep := func(image string) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "controller", Image: image}}}}}}
	}
	ds := func(image string) *appsv1.DaemonSet {
		d := speakerDS()
		d.Spec.Template.Spec.Containers[0].Image = image
		return d
	}
	for _, tt := range []struct {
		name   string
		dep    *appsv1.Deployment
		ds     *appsv1.DaemonSet
		plugin string
		want   want
	}{
		{"not installed", nil, nil, "dev", want{status: StatusSkipped}},
		{"dev everywhere", dep("ghcr.io/heraldlb/herald:dev"), ds("ghcr.io/heraldlb/herald:dev"), "dev", want{status: StatusOK, msg: []string{"controller dev, speaker dev, plugin dev"}}},
		{"released, plugin dev", dep("ghcr.io/heraldlb/herald:v0.1.0"), ds("ghcr.io/heraldlb/herald:v0.1.0"), "dev", want{status: StatusOK, msg: []string{"plugin dev"}}},
		{"all v0.1.0, registry with a port", dep("registry.local:5000/herald:v0.1.0"), ds("registry.local:5000/herald:v0.1.0"), "v0.1.0", want{status: StatusOK}},
		{"mismatch", dep("ghcr.io/heraldlb/herald:v0.2.0"), ds("ghcr.io/heraldlb/herald:v0.1.0"), "dev",
			want{status: StatusWarning, msg: []string{"controller v0.2.0, speaker v0.1.0", "different releases"}}},
		{"plugin of another release", dep("ghcr.io/heraldlb/herald:v0.1.0"), ds("ghcr.io/heraldlb/herald:v0.1.0"), "v0.2.0",
			want{status: StatusWarning, msg: []string{"plugin is of another release"}}},
		{"untagged", dep("herald"), ds("registry.local:5000/herald"), "dev", want{status: StatusOK, msg: []string{"controller latest, speaker latest"}}},
	} {
		tt.want.verify(t, tt.name, checkVersions(tt.dep, tt.ds, tt.plugin))
	}
}
