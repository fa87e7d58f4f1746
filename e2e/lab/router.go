package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The router and the external network behind it, and the BGP peers on the LAN. The
// router (FRR: zebra and bgpd) listens for BGP sessions from any address of the LAN
// and installs what it learns in its kernel, with ECMP across nodes; lab-ext is a
// client beyond it. BIRD, in lab-bird, is a second router implementation that only
// learns routes (it forwards nothing).
const (
	NSRouter   = "lab-router" // FRR; eth0 on the LAN, eth1 to NSExternal
	NSExternal = "lab-ext"    // a client on the external network, behind the router
	NSBird     = "lab-bird"   // BIRD, on the LAN

	// RouterASN is FRR's AS; NodeASN the nodes' AS it expects by default (eBGP).
	RouterASN = 64512
	NodeASN   = 64513
	// BirdASN is BIRD's AS. BIRD takes any other AS from the nodes (eBGP).
	BirdASN = 64514
)

// Addresses of the router, BIRD and the external network.
var (
	RouterIPv4   = netip.MustParseAddr("10.77.0.1")
	RouterIPv6   = netip.MustParseAddr("fd77::1")
	RouterMAC    = mustMAC("02:77:00:00:00:01")
	BirdIPv4     = netip.MustParseAddr("10.77.0.3")
	BirdIPv6     = netip.MustParseAddr("fd77::3")
	BirdMAC      = mustMAC("02:77:00:00:00:03")
	ExternalIPv4 = netip.MustParseAddr("10.99.0.100") // lab-ext's eth0
	ExternalIPv6 = netip.MustParseAddr("fd99::100")
	// The external network; the nodes route it through the router.
	ExternalNetv4 = netip.MustParsePrefix("10.99.0.0/24")
	ExternalNetv6 = netip.MustParsePrefix("fd99::/64")
	// The router's eth1, lab-ext's default gateway.
	RouterExternalIPv4 = netip.MustParseAddr("10.99.0.1")
	RouterExternalIPv6 = netip.MustParseAddr("fd99::1")

	routerExtMAC   = mustMAC("02:99:00:00:00:01")
	externalMAC    = mustMAC("02:99:00:00:01:00")
	routerPort     = "p-router"
	birdPort       = "p-bird"
	routerPeerV4   = "NODES"  // FRR's peer group for the nodes' IPv4 sessions
	routerPeerV6   = "NODES6" // and for their IPv6 sessions
	routerMaxPaths = 8
)

// routerSysctls make the router forward both families and spread flows over ECMP
// nexthops by their ports too (hash policy 1: layer 4), not only by addresses.
var routerSysctls = []string{
	"net/ipv4/ip_forward=1",
	"net/ipv6/conf/all/forwarding=1",
	"net/ipv6/conf/default/forwarding=1",
	"net/ipv4/fib_multipath_hash_policy=1",
	"net/ipv6/fib_multipath_hash_policy=1",
}

// createRouterTopology makes the router with the external network behind it, and
// BIRD's namespace. The nodes' routes to the external network are made with the
// nodes.
func createRouterTopology(ctx context.Context) error {
	if err := addNamespace(ctx, NSRouter, routerSysctls); err != nil {
		return err
	}
	if err := plugIntoLAN(ctx, NSRouter, routerPort, RouterMAC, RouterIPv4, RouterIPv6); err != nil {
		return err
	}
	if err := addNamespace(ctx, NSExternal, nil); err != nil {
		return err
	}
	if err := runIPs(ctx,
		[]string{"link", "add", "eth1", "netns", NSRouter, "address", routerExtMAC.String(), "type", "veth",
			"peer", "name", "eth0", "netns", NSExternal, "address", externalMAC.String()},
		[]string{"-n", NSRouter, "addr", "add", netip.PrefixFrom(RouterExternalIPv4, ExternalNetv4.Bits()).String(), "dev", "eth1"},
		[]string{"-n", NSRouter, "addr", "add", netip.PrefixFrom(RouterExternalIPv6, ExternalNetv6.Bits()).String(), "dev", "eth1", "nodad"},
		[]string{"-n", NSRouter, "link", "set", "eth1", "up"},
		[]string{"-n", NSExternal, "addr", "add", netip.PrefixFrom(ExternalIPv4, ExternalNetv4.Bits()).String(), "dev", "eth0"},
		[]string{"-n", NSExternal, "addr", "add", netip.PrefixFrom(ExternalIPv6, ExternalNetv6.Bits()).String(), "dev", "eth0", "nodad"},
		[]string{"-n", NSExternal, "link", "set", "eth0", "up"},
		[]string{"-n", NSExternal, "route", "add", "default", "via", RouterExternalIPv4.String()},
		[]string{"-n", NSExternal, "-6", "route", "add", "default", "via", RouterExternalIPv6.String()},
	); err != nil {
		return err
	}
	if err := addNamespace(ctx, NSBird, nil); err != nil {
		return err
	}
	return plugIntoLAN(ctx, NSBird, birdPort, BirdMAC, BirdIPv4, BirdIPv6)
}

// nodeExternalRoutes are a node's routes to the external network through the
// router: specific routes, not a default route, since a speaker picks its interface
// from the default route when no subnet matches.
func nodeExternalRoutes(n Node) [][]string {
	return [][]string{
		{"-n", n.NS, "route", "add", ExternalNetv4.String(), "via", RouterIPv4.String(), "dev", "eth0"},
		{"-n", n.NS, "-6", "route", "add", ExternalNetv6.String(), "via", RouterIPv6.String(), "dev", "eth0"},
	}
}

// RouterConfig is FRR's BGP configuration towards the nodes. The zero value is the
// lab's default: eBGP with the nodes in NodeASN, no password.
type RouterConfig struct {
	// NodeASN is the nodes' AS (remote-as of both peer groups). Default NodeASN
	// (64513); RouterASN (64512) makes the sessions iBGP.
	NodeASN uint32
	// Password turns on TCP MD5 (RFC 2385) for every session with the nodes: a node
	// without it, or with another, cannot connect.
	Password string
	// Extra are more lines for bgpd's `router bgp` section, after the peer groups
	// and before the address families, e.g. "neighbor NODES timers 3 9".
	Extra []string
	// BFD runs BFD with every node (bfdd's profile "herald": 300 ms × 3).
	BFD bool
}

func (rc RouterConfig) withDefaults() (RouterConfig, error) {
	if rc.NodeASN == 0 {
		rc.NodeASN = NodeASN
	}
	if strings.ContainsAny(rc.Password, " \t\r\n") {
		return rc, errors.New("router config: the password cannot hold blanks")
	}
	for _, l := range rc.Extra {
		if strings.ContainsAny(l, "\r\n") {
			return rc, fmt.Errorf("router config: extra line %q holds a line break", l)
		}
	}
	return rc, nil
}

// bgpdConf is bgpd's configuration file. Dynamic neighbours (bgp listen range)
// make the router passive: the nodes dial it.
func bgpdConf(rc RouterConfig) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("! bgpd of the herald lab; written by the lab (ConfigureRouter rewrites it)")
	w("hostname %s", NSRouter)
	w("log stdout informational")
	w("!")
	// A node may send a link-local nexthop beside its global one; the kernel route
	// then names the node's LAN address, as tests expect.
	w("route-map %s-IN permit 10", routerPeerV6)
	w(" set ipv6 next-hop prefer-global")
	w("exit")
	w("!")
	w("router bgp %d", RouterASN)
	w(" bgp router-id %s", RouterIPv4)
	w(" bgp log-neighbor-changes")
	w(" no bgp ebgp-requires-policy")
	w(" no bgp default ipv4-unicast")
	for _, pg := range []string{routerPeerV4, routerPeerV6} {
		w(" neighbor %s peer-group", pg)
		w(" neighbor %s remote-as %d", pg, rc.NodeASN)
		w(" neighbor %s timers 1 3", pg)
		w(" neighbor %s timers connect 1", pg)
		if rc.Password != "" {
			w(" neighbor %s password %s", pg, rc.Password)
		}
		if rc.BFD {
			w(" neighbor %s bfd profile %s", pg, bfdProfile)
		}
	}
	// After the peer groups, or bgpd rejects them.
	w(" bgp listen range %s peer-group %s", LANv4, routerPeerV4)
	w(" bgp listen range %s peer-group %s", LANv6, routerPeerV6)
	for _, l := range rc.Extra {
		w(" %s", strings.TrimSpace(l))
	}
	w(" !")
	w(" address-family ipv4 unicast")
	w("  neighbor %s activate", routerPeerV4)
	w("  maximum-paths %d", routerMaxPaths)
	w("  maximum-paths ibgp %d", routerMaxPaths)
	w(" exit-address-family")
	w(" !")
	w(" address-family ipv6 unicast")
	w("  neighbor %s activate", routerPeerV6)
	w("  neighbor %s route-map %s-IN in", routerPeerV6, routerPeerV6)
	w("  maximum-paths %d", routerMaxPaths)
	w("  maximum-paths ibgp %d", routerMaxPaths)
	w(" exit-address-family")
	w("exit")
	return b.String()
}

// bfdProfile is bfdd's profile for the nodes' sessions: a node that stops
// answering is down within 900 ms.
const bfdProfile = "herald"

func bfddConf() string {
	return "! bfdd of the herald lab; written by the lab\nhostname " + NSRouter + "\nlog stdout informational\n!\nbfd\n profile " + bfdProfile +
		"\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n exit\n!\nexit\n"
}

func zebraConf() string {
	return "! zebra of the herald lab; written by the lab\nhostname " + NSRouter + "\nlog stdout informational\n"
}

// FRR's files live in StateDir/frr, owned by the frr user, since FRR's daemons drop
// to it; nothing is read from or written to /etc/frr or /var/run/frr.
func (c Config) frrDir() string             { return filepath.Join(c.StateDir, "frr") }
func (c Config) frrPath(name string) string { return filepath.Join(c.frrDir(), name) }

// frrDaemon returns the path of an FRR daemon: Debian keeps them in /usr/lib/frr.
func frrDaemon(name string) string {
	for _, dir := range []string{"/usr/lib/frr", "/usr/sbin", "/usr/local/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return findCmd(name)
}

// frrProc runs an FRR daemon in the foreground (its PID is the lab's), logging to
// standard output, with its config, PID file, zebra socket and vty socket in the
// lab's FRR folder, and no vty TCP port.
func frrProc(cfg Config, daemon string) procSpec {
	argv := []string{
		frrDaemon(daemon),
		"-f", cfg.frrPath(daemon + ".conf"),
		"-i", cfg.frrPath(daemon + ".pid"),
		"-z", cfg.frrPath("zserv.api"),
		"--vty_socket", cfg.frrDir(),
		"-P", "0",
	}
	if daemon == "bfdd" {
		argv = append(argv, "--bfdctl", cfg.frrPath("bfdd.sock"))
	}
	return procSpec{name: daemon, ns: NSRouter, argv: argv}
}

// frrUser returns the uid and gid FRR's daemons run as.
func frrUser() (int, int, error) {
	u, err := user.Lookup("frr")
	if err != nil {
		return 0, 0, fmt.Errorf("FRR runs as the user frr, which does not exist (apt-get install -y frr): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("the user frr: %w", err)
	}
	return uid, gid, nil
}

// prepareFRRDir makes the FRR folder, owned by frr, with the state directory open
// to the frr group (root:frr 0710) so the daemons can reach it.
func prepareFRRDir(cfg Config) error {
	uid, gid, err := frrUser()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.frrDir(), 0o750); err != nil {
		return fmt.Errorf("creating FRR's folder: %w", err)
	}
	if err := os.Chown(cfg.frrDir(), uid, gid); err != nil {
		return fmt.Errorf("handing FRR's folder to frr: %w", err)
	}
	if err := os.Chown(cfg.StateDir, 0, gid); err != nil {
		return fmt.Errorf("opening the state directory to frr: %w", err)
	}
	if err := os.Chmod(cfg.StateDir, 0o710); err != nil {
		return fmt.Errorf("opening the state directory to frr: %w", err)
	}
	// Every folder above must let frr through too.
	for dir := filepath.Dir(cfg.StateDir); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("checking %s: %w", dir, err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		m := fi.Mode().Perm()
		ok := m&0o001 != 0 || (st != nil && int(st.Gid) == gid && m&0o010 != 0) || (st != nil && int(st.Uid) == uid && m&0o100 != 0)
		if !ok {
			return fmt.Errorf("FRR runs as the user frr, which cannot enter %s (mode %v) on the way to the state directory %s: choose a state directory frr can reach (HERALD_LAB_DIR)", dir, m, cfg.StateDir)
		}
		if dir == "/" {
			break
		}
	}
	// Unix socket paths are short.
	if p := cfg.frrPath("zserv.api"); len(p) > 100 {
		return fmt.Errorf("the state directory's path is too long for FRR's sockets (%s)", p)
	}
	return nil
}

// writeFRRFile writes a file owned by frr, and reports whether its content changed.
func writeFRRFile(path, content string) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return false, nil
	}
	uid, gid, err := frrUser()
	if err != nil {
		return false, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o640); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}

// ensureRouters brings FRR (zebra, then bgpd, with the default RouterConfig) and
// BIRD up: each is started when it is not running, or runs another binary or
// another configuration, and is ready when this returns.
func ensureRouters(ctx context.Context, cfg Config) error {
	if err := prepareFRRDir(cfg); err != nil {
		return err
	}
	if _, err := writeFRRFile(cfg.frrPath("zebra.conf"), zebraConf()); err != nil {
		return err
	}
	bfddChanged, err := writeFRRFile(cfg.frrPath("bfdd.conf"), bfddConf())
	if err != nil {
		return err
	}
	rc, _ := RouterConfig{}.withDefaults()
	confChanged, err := writeFRRFile(cfg.frrPath("bgpd.conf"), bgpdConf(rc))
	if err != nil {
		return err
	}
	zebra := frrProc(cfg, "zebra")
	zebraStarted, err := ensureProc(cfg, zebra)
	if err != nil {
		return err
	}
	// BIRD starts while zebra gets ready.
	birdChanged, err := writeBirdConf(cfg)
	if err != nil {
		return err
	}
	if birdChanged {
		if err := stopProc(cfg, "bird", syscall.SIGTERM); err != nil {
			return err
		}
	}
	bird := birdProc(cfg)
	if _, err := ensureProc(cfg, bird); err != nil {
		return err
	}
	if err := waitReady(ctx, cfg, zebra, 20*time.Second, func(ctx context.Context) error {
		_, err := vtysh(ctx, cfg, "zebra", "show version")
		return err
	}); err != nil {
		return err
	}
	// bfdd (BFD for bgpd) talks to bgpd through zebra: a new zebra needs a
	// new bfdd, and bgpd a bfdd.
	if zebraStarted || bfddChanged {
		if err := stopProc(cfg, "bfdd", syscall.SIGTERM); err != nil {
			return err
		}
	}
	bfdd := frrProc(cfg, "bfdd")
	bfddStarted, err := ensureProc(cfg, bfdd)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, cfg, bfdd, 20*time.Second, func(ctx context.Context) error {
		_, err := vtysh(ctx, cfg, "bfdd", "show bfd peers")
		return err
	}); err != nil {
		return err
	}
	// bgpd hands its routes to the zebra it connected to: a new zebra needs a new
	// bgpd, as does a new configuration.
	if zebraStarted || confChanged || bfddStarted {
		if err := stopProc(cfg, "bgpd", syscall.SIGTERM); err != nil {
			return err
		}
	}
	if err := startBGPD(ctx, cfg); err != nil {
		return err
	}
	return waitBird(ctx, cfg)
}

// startBGPD starts bgpd unless it runs, and waits until it answers and has
// connected to zebra.
func startBGPD(ctx context.Context, cfg Config) error {
	p := frrProc(cfg, "bgpd")
	if _, err := ensureProc(cfg, p); err != nil {
		return err
	}
	return waitReady(ctx, cfg, p, 20*time.Second, func(ctx context.Context) error {
		if _, err := vtysh(ctx, cfg, "bgpd", "show bgp summary json"); err != nil {
			return err
		}
		out, err := vtysh(ctx, cfg, "zebra", "show zebra client summary")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "bgp") {
			return errors.New("bgpd has not connected to zebra yet")
		}
		return nil
	})
}

// vtysh runs commands in FRR's shell, in one daemon ("zebra", "bgpd") or, for "",
// all of them.
func vtysh(ctx context.Context, cfg Config, daemon string, cmds ...string) (string, error) {
	argv := []string{findCmd("vtysh"), "--vty_socket", cfg.frrDir()}
	if daemon != "" {
		argv = append(argv, "-d", daemon)
	}
	for _, c := range cmds {
		argv = append(argv, "-c", c)
	}
	out, err := execIn(ctx, NSRouter, argv...)
	if err != nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(out))
	}
	return out, err
}

// Vtysh runs commands in the router's FRR shell (each one as a -c argument, so
// "configure terminal", "router bgp 64512", "neighbor NODES shutdown" is one
// configuration change) and returns the output. A command FRR rejects is an error.
// Changes made this way last until bgpd restarts (ConfigureRouter, or StopRouterBGP
// and StartRouterBGP), which reads its configuration file again; Up does not see
// them. Do not `write`: vtysh would write to /etc/frr.
func (l *Lab) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	if len(cmds) == 0 {
		return "", errors.New("vtysh: no command")
	}
	return vtysh(ctx, l.cfg, "", cmds...)
}

// RouterRunDir returns FRR's run folder: its configuration files, PID files and vty
// sockets (vtysh --vty_socket DIR).
func (l *Lab) RouterRunDir() string { return l.cfg.frrDir() }

// ConfigureRouter replaces bgpd's configuration with rc and restarts bgpd, waiting
// until it is ready: every session with the nodes drops, and the nodes must dial
// again (the router only listens). Routes bgpd had installed are withdrawn from the
// router's kernel meanwhile. ConfigureRouter(ctx, RouterConfig{}) restores the
// default; so does the next Up.
func (l *Lab) ConfigureRouter(ctx context.Context, rc RouterConfig) error {
	rc, err := rc.withDefaults()
	if err != nil {
		return err
	}
	l.routerMu.Lock()
	defer l.routerMu.Unlock()
	conf := bgpdConf(rc)
	// Check it before the running bgpd goes: bgpd starts even with lines it rejects.
	check := l.cfg.frrPath("bgpd.check.conf")
	if _, err := writeFRRFile(check, conf); err != nil {
		return err
	}
	defer os.Remove(check)
	if err := checkBGPDConf(ctx, l.cfg, check); err != nil {
		return err
	}
	if err := stopProc(l.cfg, "bgpd", syscall.SIGTERM); err != nil {
		return err
	}
	if _, err := writeFRRFile(l.cfg.frrPath("bgpd.conf"), conf); err != nil {
		return err
	}
	return startBGPD(ctx, l.cfg)
}

// checkBGPDConf runs bgpd's dry run on a configuration file. bgpd exits 0 even
// when it rejects lines, but logs each with an error code.
func checkBGPDConf(ctx context.Context, cfg Config, path string) error {
	cmd := exec.CommandContext(ctx, ipCmd, "netns", "exec", NSRouter, frrDaemon("bgpd"), "-C", "-f", path,
		"-z", cfg.frrPath("check.api"), "-i", cfg.frrPath("check.pid"), "-P", "0", "-p", "0")
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err == nil && bytes.Contains(out, []byte("[EC ")) {
		err = errors.New("it logged errors")
	}
	if err != nil {
		return fmt.Errorf("bgpd rejects the configuration: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StopRouterBGP sends sig to the router's bgpd and, unless sig leaves it alive
// (SIGSTOP), waits until it is gone (SIGKILL after 5 s). With SIGTERM bgpd closes
// its sessions with a Cease; with SIGKILL the kernel closes them; after SIGSTOP
// they end when the nodes' hold timers expire. zebra withdraws bgpd's routes from
// the router's kernel when bgpd goes. SIGCONT thaws a stopped bgpd.
func (l *Lab) StopRouterBGP(sig syscall.Signal) error {
	l.routerMu.Lock()
	defer l.routerMu.Unlock()
	rec, ok := readPID(l.cfg, "bgpd")
	if !ok || !rec.alive() {
		return errors.New("the router's bgpd is not running")
	}
	return stopProc(l.cfg, "bgpd", sig)
}

// StartRouterBGP starts the router's bgpd again, with the configuration it last
// had, and waits until it is ready. It does nothing but wait when bgpd runs.
func (l *Lab) StartRouterBGP(ctx context.Context) error {
	l.routerMu.Lock()
	defer l.routerMu.Unlock()
	return startBGPD(ctx, l.cfg)
}

// RouterRoute returns the nexthops of the route to exactly prefix in the router's
// kernel (main table): one for a plain route, several for ECMP, none when there is
// no such route.
func (l *Lab) RouterRoute(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	return kernelRoute(ctx, NSRouter, prefix)
}

// kernelRoute lists the gateways of the routes to exactly prefix in ns.
func kernelRoute(ctx context.Context, ns string, prefix netip.Prefix) ([]netip.Addr, error) {
	if !prefix.IsValid() {
		return nil, errors.New("route lookup: invalid prefix")
	}
	prefix = prefix.Masked()
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := execIn(ctx, ns, ipCmd, "-j", family, "route", "show", "exact", prefix.String())
	if err != nil {
		return nil, err
	}
	return parseRouteNexthops(out)
}

// parseRouteNexthops reads `ip -j route show` output: a route has a gateway, or
// nexthops each with one (multipath).
func parseRouteNexthops(out string) ([]netip.Addr, error) {
	type hop struct {
		Gateway string `json:"gateway"`
	}
	var routes []struct {
		hop
		Nexthops []hop `json:"nexthops"`
	}
	if s := strings.TrimSpace(out); s != "" {
		if err := json.Unmarshal([]byte(s), &routes); err != nil {
			return nil, fmt.Errorf("reading ip route output %q: %w", s, err)
		}
	}
	addrs := []netip.Addr{}
	add := func(h hop) error {
		if h.Gateway == "" {
			return nil
		}
		a, err := netip.ParseAddr(h.Gateway)
		if err != nil {
			return fmt.Errorf("reading ip route output: gateway %q: %w", h.Gateway, err)
		}
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
		return nil
	}
	for _, r := range routes {
		if err := add(r.hop); err != nil {
			return nil, err
		}
		for _, h := range r.Nexthops {
			if err := add(h); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return addrs, nil
}
