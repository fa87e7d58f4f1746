//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/testpoll"
)

// The prefixes the gobgpd peers announce in TestRouter.
var (
	gobgpPrefixV4 = netip.MustParsePrefix("10.123.0.1/32")
	gobgpPrefixV6 = netip.MustParsePrefix("fd00:123::1/128")
)

// TestRouter proves the lab's routers with peers that are not herald: Debian's
// gobgpd on node1 and node2 announce the same prefixes to FRR and BIRD, which must
// install them as ECMP routes; a client on the external network reaches a Service
// through them, over both nodes; bgpd restarts; a TCP MD5 password keeps a node
// without it out.
func TestRouter(t *testing.T) {
	for _, c := range []string{"gobgpd", "gobgp"} {
		if _, err := exec.LookPath(c); err != nil && os.Geteuid() == 0 {
			t.Fatalf("TestRouter needs %s: apt-get install -y gobgpd", c)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, _ := plainLab(ctx, t)

	node1, node2 := mustNode(t, l, "node1"), mustNode(t, l, "node2")
	dir := t.TempDir()
	peers := map[string]*gobgpd{}
	for _, n := range []lab.Node{node1, node2} {
		peers[n.Name] = startGobgpd(t, l, dir, n, "")
	}

	start := time.Now()
	waitRouterPeers(t, l, 20*time.Second, map[string]string{
		node1.IPv4.String(): "Established", node2.IPv4.String(): "Established",
		node1.IPv6.String(): "Established", node2.IPv6.String(): "Established",
	})
	t.Logf("gobgpd's sessions with FRR established in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	for _, n := range []lab.Node{node1, node2} {
		peers[n.Name].announce(t, gobgpPrefixV4, gobgpPrefixV6)
	}
	want4 := []netip.Addr{node1.IPv4, node2.IPv4}
	want6 := []netip.Addr{node1.IPv6, node2.IPv6}
	took := waitRoute(t, l.RouterRoute, "the router", gobgpPrefixV4, 10*time.Second, want4)
	t.Logf("announced → ECMP route in the router's kernel: %v", took.Round(time.Millisecond))
	waitRoute(t, l.RouterRoute, "the router", gobgpPrefixV6, 10*time.Second, want6)
	t.Logf("announced → both families' ECMP routes in the router's kernel: %v", time.Since(start).Round(time.Millisecond))

	t.Run("FRR has a path from each node", func(t *testing.T) {
		for _, p := range []netip.Prefix{gobgpPrefixV4, gobgpPrefixV6} {
			paths := frrPaths(t, l, p)
			var hops []string
			for _, path := range paths {
				for _, h := range path.Nexthops {
					hops = append(hops, h.IP)
				}
			}
			if len(paths) != 2 {
				t.Errorf("FRR has %d paths to %s (nexthops %v); want 2", len(paths), p, hops)
			}
			multi := 0
			for _, path := range paths {
				if path.Multipath || path.Bestpath.Overall {
					multi++
				}
			}
			if multi != 2 {
				t.Errorf("FRR uses %d of the paths to %s; want both (multipath)", multi, p)
			}
		}
	})

	t.Run("BIRD learns the routes too", func(t *testing.T) {
		waitRoute(t, l.BirdRoute, "BIRD", gobgpPrefixV4, 15*time.Second, want4)
		waitRoute(t, l.BirdRoute, "BIRD", gobgpPrefixV6, 15*time.Second, want6)
		out, err := l.Birdc(ctx, "show route "+gobgpPrefixV4.String()+" all")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "BGP.as_path: 64513") {
			t.Errorf("birdc show route: no path from AS %d:\n%s", lab.NodeASN, out)
		}
	})

	t.Run("the external client reaches the nodes through the router", func(t *testing.T) {
		cs := l.Client()
		const ns = "e2e-router"
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		var pods []string
		for i, n := range []lab.Node{node1, node2} {
			// Named as expectWhoami expects.
			p, err := l.AddPod(ctx, n.Name, fmt.Sprintf("whoami-%d", 101+i))
			if err != nil {
				t.Fatal(err)
			}
			pods = append(pods, p.Name)
		}
		svc := createService(ctx, t, cs, ns, "whoami-bgp", corev1.ServiceTypeLoadBalancer)
		if err := l.SetEndpoints(ctx, svc.Name, ns, pods...); err != nil {
			t.Fatal(err)
		}
		// A NodePort on a node that announces nothing: the router's connected LAN, and
		// the node's route back to the external network.
		node3 := mustNode(t, l, "node3")
		port := uint16(svc.Spec.Ports[0].NodePort)
		for _, a := range []netip.Addr{node3.IPv4, node3.IPv6} {
			expectWhoami(t, l, lab.NSExternal, fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, port)))
		}
		// The announced addresses, as a speaker would make them the Service's.
		patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q,"ipMode":"VIP"},{"ip":%q,"ipMode":"VIP"}]}}}`,
			gobgpPrefixV4.Addr(), gobgpPrefixV6.Addr())
		if _, err := cs.CoreV1().Services(ns).Patch(ctx, svc.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []netip.Prefix{gobgpPrefixV4, gobgpPrefixV6} {
			u := fmt.Sprintf("http://%s/", netip.AddrPortFrom(p.Addr(), 80))
			expectWhoami(t, l, lab.NSExternal, u)
			// Each curl is a new flow (a new source port): the router's layer-4 hash
			// sends them to both nexthops.
			for range 20 {
				if _, err := l.Curl(lab.NSExternal, u); err != nil {
					t.Fatalf("curl %s from %s: %v", u, lab.NSExternal, err)
				}
			}
			hits := map[string]int{}
			for _, n := range []lab.Node{node1, node2} {
				hits[n.Name] = ingressFlows(t, l, n, p.Addr())
			}
			t.Logf("flows from %s to %s entered by node: %v", lab.NSExternal, p.Addr(), hits)
			if hits[node1.Name] == 0 || hits[node2.Name] == 0 {
				t.Errorf("flows to %s entered the cluster through %v; want both node1 and node2 (ECMP)", p.Addr(), hits)
			}
		}
	})

	t.Run("bgpd stops and starts", func(t *testing.T) {
		if err := l.StopRouterBGP(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitRoute(t, l.RouterRoute, "the router", gobgpPrefixV4, 5*time.Second, nil)
		start := time.Now()
		if err := l.StartRouterBGP(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("bgpd ready in %v", time.Since(start).Round(time.Millisecond))
		// gobgpd waits about 5 s before it dials again.
		took := waitRoute(t, l.RouterRoute, "the router", gobgpPrefixV4, 20*time.Second, want4)
		t.Logf("bgpd started → ECMP route back in the router's kernel: %v", took.Round(time.Millisecond))
	})

	t.Run("a configuration bgpd rejects is an error", func(t *testing.T) {
		before := processPID(t, l, "bgpd")
		err := l.ConfigureRouter(ctx, lab.RouterConfig{Extra: []string{"neighbor NODES no-such-option"}})
		if err == nil {
			t.Fatal("ConfigureRouter with a line bgpd rejects: no error")
		}
		t.Logf("ConfigureRouter: %v", err)
		if after := processPID(t, l, "bgpd"); after != before {
			t.Errorf("bgpd's PID went from %d to %d; want it left alone", before, after)
		}
	})

	t.Run("a TCP MD5 password keeps a node without it out", func(t *testing.T) {
		const secret = "lab-secret"
		before := md5NotFound(t, l)
		if err := l.ConfigureRouter(ctx, lab.RouterConfig{Password: secret}); err != nil {
			t.Fatal(err)
		}
		// node2 learns the password; node1 does not.
		peers[node2.Name].stop(t)
		peers[node2.Name] = startGobgpd(t, l, dir, node2, secret)
		peers[node2.Name].announce(t, gobgpPrefixV4, gobgpPrefixV6)
		start := time.Now()
		waitRoute(t, l.RouterRoute, "the router", gobgpPrefixV4, 20*time.Second, []netip.Addr{node2.IPv4})
		t.Logf("node2 with the password: route in the router's kernel after %v", time.Since(start).Round(time.Millisecond))
		// node1's unsigned SYNs reach the router and its kernel drops them.
		testpoll.Until(t, 15*time.Second, "node1's unsigned connection attempts at the router", func() (bool, string) {
			n := md5NotFound(t, l)
			return n > before, fmt.Sprintf("TCPMD5NotFound %d (was %d)", n, before)
		})
		states := routerPeerStates(t, l)
		if states[node1.IPv4.String()] == "Established" {
			t.Errorf("FRR has an established session with node1, which has no password: %v", states)
		}
		if states[node2.IPv4.String()] != "Established" {
			t.Errorf("FRR's session with node2, which has the password: %q; want Established (%v)", states[node2.IPv4.String()], states)
		}
		if st := peers[node1.Name].state(t, lab.RouterIPv4); st == "established" {
			t.Errorf("gobgpd on node1 (no password) says its session with the router is %s", st)
		}
	})
}

// processPID returns the PID of a running lab process.
func processPID(t testing.TB, l *lab.Lab, name string) int {
	t.Helper()
	for _, p := range l.Processes() {
		if p.Name == name && p.Running {
			return p.PID
		}
	}
	t.Fatalf("%s is not running", name)
	return 0
}

func mustNode(t testing.TB, l *lab.Lab, name string) lab.Node {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gobgpd is a gobgpd run by the test in a node's namespace.
type gobgpd struct {
	l   *lab.Lab
	ns  string
	cmd *exec.Cmd
	log string
}

// startGobgpd starts gobgpd on the node, in NodeASN, dialling (it does not listen)
// FRR and BIRD on both families with 1 s/3 s timers; the password, if any, is for
// the sessions with FRR.
func startGobgpd(t *testing.T, l *lab.Lab, dir string, n lab.Node, password string) *gobgpd {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = %q\n  port = -1\n", lab.NodeASN, n.IPv4)
	for _, nb := range []struct {
		addr     netip.Addr
		as       uint32
		password string
	}{
		{lab.RouterIPv4, lab.RouterASN, password}, {lab.RouterIPv6, lab.RouterASN, password},
		{lab.BirdIPv4, lab.BirdASN, ""}, {lab.BirdIPv6, lab.BirdASN, ""},
	} {
		afi := "ipv4-unicast"
		if nb.addr.Is6() {
			afi = "ipv6-unicast"
		}
		fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", nb.addr, nb.as)
		if nb.password != "" {
			fmt.Fprintf(&b, "    auth-password = %q\n", nb.password)
		}
		fmt.Fprintf(&b, "  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 3\n    keepalive-interval = 1\n")
		fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n", afi)
	}
	conf := filepath.Join(dir, n.Name+".toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gobgpd{l: l, ns: n.NS, log: filepath.Join(dir, n.Name+".log")}
	logf, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	g.cmd = exec.Command("ip", "netns", "exec", n.NS, "gobgpd", "-f", conf, "-t", "toml",
		"--api-hosts", "127.0.0.1:50051", "--pprof-disable", "-p")
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("starting gobgpd on %s: %v", n.Name, err)
	}
	t.Cleanup(func() { g.stop(t) })
	testpoll.Until(t, 10*time.Second, "gobgpd's API on "+n.Name, func() (bool, string) {
		out, err := l.Exec(n.NS, "gobgp", "global")
		if err != nil {
			return false, err.Error() + "; log: " + g.logTail()
		}
		return true, out
	})
	return g
}

func (g *gobgpd) logTail() string {
	b, _ := os.ReadFile(g.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

func (g *gobgpd) stop(t testing.TB) {
	if g.cmd.ProcessState != nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
}

// announce adds prefixes to gobgpd's RIB, nexthop self, with origin IGP (gobgp's
// default, incomplete, would differ from what other speakers send).
func (g *gobgpd) announce(t testing.TB, prefixes ...netip.Prefix) {
	t.Helper()
	for _, p := range prefixes {
		afi := "ipv4"
		if p.Addr().Is6() {
			afi = "ipv6"
		}
		if out, err := g.l.Exec(g.ns, "gobgp", "global", "rib", "add", "-a", afi, p.String(), "origin", "igp"); err != nil {
			t.Fatalf("gobgp global rib add %s in %s: %v\n%s", p, g.ns, err, out)
		}
	}
}

// state returns gobgpd's session state with a neighbour, as gobgp prints it
// ("established", "active" …).
func (g *gobgpd) state(t testing.TB, peer netip.Addr) string {
	t.Helper()
	out, err := g.l.Exec(g.ns, "gobgp", "neighbor", peer.String(), "-j")
	if err != nil {
		t.Fatalf("gobgp neighbor %s in %s: %v", peer, g.ns, err)
	}
	var res struct {
		State struct {
			SessionState any `json:"session_state"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("decoding gobgp neighbor: %v\n%s", err, out)
	}
	switch s := res.State.SessionState.(type) {
	case float64: // the API's enum: 6 is ESTABLISHED
		return map[float64]string{1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm", 6: "established"}[s]
	case string:
		return strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "SESSION_STATE_"))
	}
	return fmt.Sprint(res.State.SessionState)
}

// routerPeerStates returns FRR's session states by neighbour address, both families.
func routerPeerStates(t testing.TB, l *lab.Lab) map[string]string {
	t.Helper()
	out, err := l.Vtysh(context.Background(), "show bgp summary json")
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("decoding show bgp summary json: %v\n%s", err, out)
	}
	states := map[string]string{}
	for _, af := range sum {
		for addr, p := range af.Peers {
			states[addr] = p.State
		}
	}
	return states
}

func waitRouterPeers(t testing.TB, l *lab.Lab, within time.Duration, want map[string]string) {
	t.Helper()
	testpoll.Until(t, within, fmt.Sprintf("FRR's sessions %v", want), func() (bool, string) {
		got := routerPeerStates(t, l)
		for addr, st := range want {
			if got[addr] != st {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
}

// waitRoute polls a kernel's route to p every 10 ms until its nexthops are want (nil:
// no route) and returns how long that took.
func waitRoute(t testing.TB, route func(context.Context, netip.Prefix) ([]netip.Addr, error), where string, p netip.Prefix, within time.Duration, want []netip.Addr) time.Duration {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	start := time.Now()
	deadline := start.Add(within)
	for {
		got, err := route(context.Background(), p)
		if err == nil && slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's kernel route to %s: nexthops %v (err %v) after %v; want %v", where, p, got, err, within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ingressFlows counts the TCP connections from the external client to addr that
// entered the cluster through node n (kube-proxy's NAT tracks them there).
func ingressFlows(t testing.TB, l *lab.Lab, n lab.Node, addr netip.Addr) int {
	t.Helper()
	fam := "ipv4"
	ext := lab.ExternalIPv4
	if addr.Is6() {
		fam, ext = "ipv6", lab.ExternalIPv6
	}
	out, err := l.Exec(n.NS, "conntrack", "-L", "-f", fam, "-p", "tcp", "--orig-src", ext.String(), "--orig-dst", addr.String())
	if err != nil {
		t.Fatalf("conntrack on %s: %v", n.Name, err)
	}
	count := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "dst="+addr.String()) {
			count++
		}
	}
	return count
}

// md5NotFound reads the router's TCPMD5NotFound counter: segments without an MD5
// signature dropped because the socket expects one.
func md5NotFound(t testing.TB, l *lab.Lab) int {
	t.Helper()
	out, err := l.Exec(lab.NSRouter, "cat", "/proc/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, name := range names {
			if name == "TCPMD5NotFound" {
				v, err := strconv.Atoi(values[j])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no TcpExt TCPMD5NotFound in the router's /proc/net/netstat")
	return 0
}
