package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// The lab's namespaces. Every name starts with "lab-", and Down removes every
// namespace that does.
const (
	NSSwitch       = "lab-sw"     // holds the bridge br0, the "switch"
	NSControlPlane = "lab-cp"     // etcd, kube-apiserver, the controller
	NSClient       = "lab-client" // the laptop on the LAN
	nsPrefix       = "lab-"
	podNSPrefix    = "lab-pod-"
	bridge         = "br0"
	podBridge      = "cbr0" // in each node, joining its pods
	// hostLink is the host end of a veth into the control-plane namespace, so host
	// processes reach the API server. It goes away with that namespace.
	hostLink = "herald-lab"
)

// Addresses on the lab's LAN (10.77.0.0/24, fd77::/64) and beyond.
var (
	ControlPlaneIPv4 = netip.MustParseAddr("10.77.0.2")
	ControlPlaneIPv6 = netip.MustParseAddr("fd77::2")
	ClientIPv4       = netip.MustParseAddr("10.77.0.100")
	ClientIPv6       = netip.MustParseAddr("fd77::100")
	ClientMAC        = mustMAC("02:77:00:00:01:00")
	LANv4            = netip.MustParsePrefix("10.77.0.0/24")
	LANv6            = netip.MustParsePrefix("fd77::/64")
	// ClusterCIDRs are the pods' addresses in all nodes (kube-proxy's --cluster-cidr).
	ClusterCIDRv4 = netip.MustParsePrefix("10.244.0.0/16")
	ClusterCIDRv6 = netip.MustParsePrefix("fd44::/48")

	serviceCIDRv4   = netip.MustParsePrefix("10.96.0.0/16") // as in ServiceCIDRs
	serviceCIDRv6   = netip.MustParsePrefix("fd96::/112")
	controlPlaneMAC = mustMAC("02:77:00:00:00:02")
	hostLinkIP      = netip.MustParsePrefix("10.88.0.1/30")
	cpHostLinkIP    = netip.MustParsePrefix("10.88.0.2/30")
)

// Node is a node of the lab: a namespace whose eth0 is on the bridge.
type Node struct {
	Name       string // "node1", also the Kubernetes Node's name
	NS         string // "lab-node1"
	SwitchPort string // the veth's other end, in NSSwitch: "p-node1"
	IPv4       netip.Addr
	IPv6       netip.Addr
	MAC        net.HardwareAddr
	PodCIDRv4  netip.Prefix // 10.244.N.0/24
	PodCIDRv6  netip.Prefix // fd44:0:0:N::/64, inside ClusterCIDRv6
}

func nodesFor(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		num := i + 1
		nodes[i] = Node{
			Name:       fmt.Sprintf("node%d", num),
			NS:         fmt.Sprintf("lab-node%d", num),
			SwitchPort: fmt.Sprintf("p-node%d", num),
			IPv4:       netip.MustParseAddr(fmt.Sprintf("10.77.0.%d", 10+num)),
			// The last group reads like the IPv4 address's last octet: fd77::11.
			IPv6:      netip.MustParseAddr(fmt.Sprintf("fd77::%d", 10+num)),
			MAC:       mustMAC(fmt.Sprintf("02:77:00:00:00:%02d", 10+num)),
			PodCIDRv4: netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", num)),
			PodCIDRv6: netip.MustParsePrefix(fmt.Sprintf("fd44:0:0:%d::/64", num)),
		}
	}
	return nodes
}

// NodeNames returns the nodes' names: node1, node2 …
func (l *Lab) NodeNames() []string {
	names := make([]string, len(l.nodes))
	for i, n := range l.nodes {
		names[i] = n.Name
	}
	return names
}

// Nodes returns the nodes.
func (l *Lab) Nodes() []Node {
	out := make([]Node, len(l.nodes))
	for i, n := range l.nodes {
		n.MAC = append(net.HardwareAddr(nil), n.MAC...)
		out[i] = n
	}
	return out
}

// Node returns the named node.
func (l *Lab) Node(name string) (Node, error) {
	for _, n := range l.Nodes() {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("the lab has no node %q (it has %s)", name, strings.Join(l.NodeNames(), ", "))
}

// sysctls every lab namespace gets: addresses usable at once (no duplicate address
// detection), and no reverse-path filter to drop what kube-proxy rewrites.
var baseSysctls = []string{
	"net/ipv6/conf/all/accept_dad=0",
	"net/ipv6/conf/default/accept_dad=0",
	"net/ipv4/conf/all/rp_filter=0",
	"net/ipv4/conf/default/rp_filter=0",
}

// nodeSysctls make a node route for its pods and behave with kube-proxy: forwarding
// on both families, ARP answered only for addresses on the asking interface and from
// a matching source (so a node holding an address elsewhere does not claim it on the
// LAN), and 127.0.0.0/8 routable for kube-proxy's localhost NodePorts.
var nodeSysctls = []string{
	"net/ipv4/ip_forward=1",
	"net/ipv6/conf/all/forwarding=1",
	"net/ipv6/conf/default/forwarding=1",
	"net/ipv4/conf/all/arp_ignore=1",
	"net/ipv4/conf/all/arp_announce=2",
	"net/ipv4/conf/all/route_localnet=1",
}

// createTopology makes the namespaces, the bridge and the links, with addresses and
// routes: the nodes, the control plane, the client, the router with the external
// network behind it, and BIRD's namespace. The caller has removed any earlier lab.
func createTopology(ctx context.Context, cfg Config) error {
	nodes := nodesFor(cfg.Nodes)
	if err := addNamespace(ctx, NSSwitch, nil); err != nil {
		return err
	}
	if err := runIPs(ctx,
		[]string{"-n", NSSwitch, "link", "add", bridge, "type", "bridge", "forward_delay", "0", "mcast_snooping", "0"},
		[]string{"-n", NSSwitch, "link", "set", bridge, "up"},
	); err != nil {
		return err
	}

	if err := addNamespace(ctx, NSControlPlane, nil); err != nil {
		return err
	}
	if err := plugIntoLAN(ctx, NSControlPlane, "p-cp", controlPlaneMAC, ControlPlaneIPv4, ControlPlaneIPv6); err != nil {
		return err
	}
	if err := addNamespace(ctx, NSClient, nil); err != nil {
		return err
	}
	if err := plugIntoLAN(ctx, NSClient, "p-client", ClientMAC, ClientIPv4, ClientIPv6); err != nil {
		return err
	}
	if err := createRouterTopology(ctx); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := addNamespace(ctx, n.NS, nodeSysctls); err != nil {
			return err
		}
		if err := plugIntoLAN(ctx, n.NS, n.SwitchPort, n.MAC, n.IPv4, n.IPv6); err != nil {
			return err
		}
		gw4, gw6 := n.PodCIDRv4.Addr().Next(), n.PodCIDRv6.Addr().Next()
		cmds := [][]string{
			{"-n", n.NS, "link", "add", podBridge, "type", "bridge", "forward_delay", "0"},
			{"-n", n.NS, "addr", "add", netip.PrefixFrom(gw4, n.PodCIDRv4.Bits()).String(), "dev", podBridge},
			{"-n", n.NS, "addr", "add", netip.PrefixFrom(gw6, n.PodCIDRv6.Bits()).String(), "dev", podBridge, "nodad"},
			{"-n", n.NS, "link", "set", podBridge, "up"},
		}
		// Locally sent packets to a ClusterIP need a route before kube-proxy's DNAT
		// in OUTPUT can rewrite them; the LAN has no default gateway.
		cmds = append(cmds,
			[]string{"-n", n.NS, "route", "add", serviceCIDRv4.String(), "dev", "eth0"},
			[]string{"-n", n.NS, "-6", "route", "add", serviceCIDRv6.String(), "dev", "eth0"},
		)
		cmds = append(cmds, nodeExternalRoutes(n)...)
		for _, o := range nodes {
			if o.Name != n.Name {
				cmds = append(cmds,
					[]string{"-n", n.NS, "route", "add", o.PodCIDRv4.String(), "via", o.IPv4.String(), "dev", "eth0"},
					[]string{"-n", n.NS, "-6", "route", "add", o.PodCIDRv6.String(), "via", o.IPv6.String(), "dev", "eth0"},
				)
			}
		}
		if err := runIPs(ctx, cmds...); err != nil {
			return err
		}
	}
	return addHostLink(ctx)
}

// addNamespace creates a namespace with loopback up and the base sysctls plus extra.
func addNamespace(ctx context.Context, ns string, extra []string) error {
	if err := runIPs(ctx, []string{"netns", "add", ns}, []string{"-n", ns, "link", "set", "lo", "up"}); err != nil {
		return err
	}
	return setSysctls(ctx, ns, append(append([]string(nil), baseSysctls...), extra...))
}

// setSysctls writes net.* sysctls inside a namespace; /proc/sys/net shows the
// namespace of the process reading it. The sysctl command is not needed.
func setSysctls(ctx context.Context, ns string, kvs []string) error {
	var script []string
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		script = append(script, fmt.Sprintf("echo %s > /proc/sys/%s", v, k))
	}
	if _, err := execIn(ctx, ns, "sh", "-ec", strings.Join(script, "\n")); err != nil {
		return fmt.Errorf("setting sysctls in %s: %w", ns, err)
	}
	return nil
}

// plugIntoLAN links ns's eth0 to the bridge through port (in NSSwitch) and gives it
// mac and the two addresses.
func plugIntoLAN(ctx context.Context, ns, port string, mac net.HardwareAddr, v4, v6 netip.Addr) error {
	return runIPs(ctx,
		[]string{"link", "add", "eth0", "netns", ns, "address", mac.String(), "type", "veth", "peer", "name", port, "netns", NSSwitch},
		[]string{"-n", NSSwitch, "link", "set", port, "master", bridge, "up"},
		[]string{"-n", ns, "addr", "add", netip.PrefixFrom(v4, LANv4.Bits()).String(), "dev", "eth0"},
		[]string{"-n", ns, "addr", "add", netip.PrefixFrom(v6, LANv6.Bits()).String(), "dev", "eth0", "nodad"},
		[]string{"-n", ns, "link", "set", "eth0", "up"},
	)
}

// addHostLink gives the host a way to the API server: a veth to the control-plane
// namespace (10.88.0.1/30 ↔ 10.88.0.2/30) and a host route to 10.77.0.2 through it,
// which the control plane delivers locally. Its IPv6 is off so the host sends
// nothing else into the lab.
func addHostLink(ctx context.Context) error {
	if err := runIPs(ctx, []string{"link", "add", hostLink, "type", "veth", "peer", "name", "eth1", "netns", NSControlPlane}); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+hostLink+"/disable_ipv6", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("turning IPv6 off on %s: %w", hostLink, err)
	}
	return runIPs(ctx,
		[]string{"addr", "add", hostLinkIP.String(), "dev", hostLink},
		[]string{"link", "set", hostLink, "up"},
		[]string{"-n", NSControlPlane, "addr", "add", cpHostLinkIP.String(), "dev", "eth1"},
		[]string{"-n", NSControlPlane, "link", "set", "eth1", "up"},
		[]string{"route", "add", netip.PrefixFrom(ControlPlaneIPv4, 32).String(), "via", cpHostLinkIP.Addr().String(), "dev", hostLink},
	)
}

func deleteHostLink() error {
	if _, err := net.InterfaceByName(hostLink); err != nil {
		return nil // gone with the control-plane namespace, or never made
	}
	return runIPs(context.Background(), []string{"link", "del", hostLink})
}

// checkTopology fails unless every namespace of the lab and the host link exist.
func checkTopology(cfg Config, pods []Pod) error {
	have, err := labNamespaces()
	if err != nil {
		return err
	}
	want := []string{NSSwitch, NSControlPlane, NSClient, NSRouter, NSExternal, NSBird}
	for _, n := range nodesFor(cfg.Nodes) {
		want = append(want, n.NS)
	}
	for _, p := range pods {
		want = append(want, p.NS)
	}
	for _, ns := range want {
		if !slices.Contains(have, ns) {
			return fmt.Errorf("namespace %s is missing", ns)
		}
	}
	if _, err := net.InterfaceByName(hostLink); err != nil {
		return fmt.Errorf("the host link %s is missing", hostLink)
	}
	return nil
}

// labNamespaces lists the network namespaces whose names start with "lab-".
func labNamespaces() ([]string, error) {
	out, err := exec.Command(ipCmd, "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	var nss []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
			nss = append(nss, f[0])
		}
	}
	return nss, nil
}

// netnsPIDs lists the processes in a namespace.
func netnsPIDs(ns string) ([]int, error) {
	out, err := exec.Command(ipCmd, "netns", "pids", ns).Output()
	if err != nil {
		return nil, fmt.Errorf("listing the processes in %s: %w", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// runIPs runs ip commands one after another, stopping at the first failure.
func runIPs(ctx context.Context, cmds ...[]string) error {
	for _, args := range cmds {
		out, err := exec.CommandContext(ctx, ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func runIP(args ...string) error { return runIPs(context.Background(), args) }

func mustMAC(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(err) // only ever called with constants
	}
	return mac
}
