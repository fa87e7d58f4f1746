package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// PodPort is where every pod's whoami server listens, on both families.
const PodPort = 8080

// Pod is a lab "pod": a namespace behind a node, on the node's pod bridge, running
// a whoami HTTP server on PodPort that answers "pod=<name> node=<node>\n".
type Pod struct {
	Name string     `json:"name"`
	Node string     `json:"node"`
	NS   string     `json:"ns"` // lab-pod-<name>
	IPv4 netip.Addr `json:"ipv4"`
	IPv6 netip.Addr `json:"ipv6"`
	Veth string     `json:"veth"` // the node's end of the pod's link
}

var podName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$`)

// AddPod creates a pod on the node, with the next free addresses of the node's pod
// CIDRs, and waits until its server answers on both families. Adding a pod that
// exists on the same node returns it (starting its server if it stopped).
func (l *Lab) AddPod(ctx context.Context, node, name string) (Pod, error) {
	n, err := l.Node(node)
	if err != nil {
		return Pod{}, err
	}
	if !podName.MatchString(name) {
		return Pod{}, fmt.Errorf("pod name %q: want at most 40 lower-case letters, digits and dashes", name)
	}
	p, existed, err := l.reservePod(n, name)
	if err != nil {
		return Pod{}, err
	}
	if !existed {
		if err := l.saveState(); err != nil {
			return Pod{}, err
		}
		if err := createPodNetwork(ctx, n, p); err != nil {
			return Pod{}, fmt.Errorf("adding pod %s: %w", name, err)
		}
	}
	if err := l.startWhoami(ctx, p); err != nil {
		return Pod{}, fmt.Errorf("adding pod %s: %w", name, err)
	}
	return p, nil
}

// reservePod records a new pod with its addresses, or returns the existing one.
func (l *Lab) reservePod(n Node, name string) (Pod, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	used := map[int]bool{}
	for _, p := range l.st.Pods {
		if p.Name == name {
			if p.Node != n.Name {
				return Pod{}, false, fmt.Errorf("pod %s exists on %s, not %s", name, p.Node, n.Name)
			}
			return p, true, nil
		}
		if p.Node == n.Name {
			used[int(p.IPv4.As4()[3])] = true
		}
	}
	// Hosts 10 and up, so the last octet and the last IPv6 group read alike:
	// 10.244.1.10 and fd44:0:0:1::10.
	host := 10
	for used[host] {
		host++
	}
	if host > 254 {
		return Pod{}, false, fmt.Errorf("node %s has no pod addresses left", n.Name)
	}
	b := n.PodCIDRv4.Addr().As4()
	b[3] = byte(host)
	v6, err := netip.ParseAddr(fmt.Sprintf("%s%d", n.PodCIDRv6.Addr(), host))
	if err != nil {
		return Pod{}, false, fmt.Errorf("pod address: %w", err)
	}
	p := Pod{Name: name, Node: n.Name, NS: podNSPrefix + name, IPv4: netip.AddrFrom4(b), IPv6: v6,
		Veth: fmt.Sprintf("vp%d", l.st.NextPod)}
	l.st.NextPod++
	l.st.Pods = append(l.st.Pods, p)
	return p, false, nil
}

// createPodNetwork makes the pod's namespace and its veth onto the node's pod
// bridge, with its addresses and default routes through the node.
func createPodNetwork(ctx context.Context, n Node, p Pod) error {
	if err := addNamespace(ctx, p.NS, nil); err != nil {
		return err
	}
	gw4, gw6 := n.PodCIDRv4.Addr().Next(), n.PodCIDRv6.Addr().Next()
	return runIPs(ctx,
		[]string{"link", "add", "eth0", "netns", p.NS, "type", "veth", "peer", "name", p.Veth, "netns", n.NS},
		[]string{"-n", n.NS, "link", "set", p.Veth, "master", podBridge, "up"},
		[]string{"-n", p.NS, "addr", "add", netip.PrefixFrom(p.IPv4, n.PodCIDRv4.Bits()).String(), "dev", "eth0"},
		[]string{"-n", p.NS, "addr", "add", netip.PrefixFrom(p.IPv6, n.PodCIDRv6.Bits()).String(), "dev", "eth0", "nodad"},
		[]string{"-n", p.NS, "link", "set", "eth0", "up"},
		[]string{"-n", p.NS, "route", "add", "default", "via", gw4.String()},
		[]string{"-n", p.NS, "-6", "route", "add", "default", "via", gw6.String()},
	)
}

func whoamiProc(cfg Config, p Pod) procSpec {
	return procSpec{name: "whoami-" + p.Name, ns: p.NS, argv: []string{
		cfg.WhoamiBinary, "-name", p.Name, "-node", p.Node, "-listen", fmt.Sprintf(":%d", PodPort),
	}}
}

// startWhoami starts the pod's server unless it runs, and waits until its node
// reaches it on both families.
func (l *Lab) startWhoami(ctx context.Context, p Pod) error {
	proc := whoamiProc(l.cfg, p)
	if _, err := ensureProc(l.cfg, proc); err != nil {
		return err
	}
	n, err := l.Node(p.Node)
	if err != nil {
		return err
	}
	want := fmt.Sprintf("pod=%s node=%s", p.Name, p.Node)
	return waitReady(ctx, l.cfg, proc, 20*time.Second, func(ctx context.Context) error {
		for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
			url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(a, PodPort))
			body, err := execIn(ctx, n.NS, "curl", "-sS", "--fail", "--globoff", "--noproxy", "*", "--max-time", "1", url)
			if err != nil {
				return err
			}
			if strings.TrimSpace(body) != want {
				return fmt.Errorf("%s answered %q, want %q", url, body, want)
			}
		}
		return nil
	})
}

// Pod returns the named pod.
func (l *Lab) Pod(name string) (Pod, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.st.Pods {
		if p.Name == name {
			return p, nil
		}
	}
	return Pod{}, fmt.Errorf("the lab has no pod %q", name)
}

// Pods returns every pod, in the order they were added.
func (l *Lab) Pods() []Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Pod(nil), l.st.Pods...)
}

// ensurePods restarts the servers of a reused lab's pods where they stopped.
func (l *Lab) ensurePods(ctx context.Context) error {
	for _, p := range l.Pods() {
		if err := l.startWhoami(ctx, p); err != nil {
			return fmt.Errorf("pod %s: %w", p.Name, err)
		}
	}
	return nil
}

func (c Config) defaultWhoamiPath() string { return filepath.Join(c.StateDir, "bin", "whoami") }

// buildWhoami returns the whoami binary cfg names or, when it names none, builds
// e2e/cmd/whoami into the state directory.
func buildWhoami(ctx context.Context, cfg Config) (string, error) {
	if cfg.WhoamiBinary != "" {
		if !fileExists(cfg.WhoamiBinary) {
			return "", fmt.Errorf("the whoami binary %s does not exist", cfg.WhoamiBinary)
		}
		return cfg.WhoamiBinary, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("building whoami (or set Config.WhoamiBinary): %w", err)
	}
	out := cfg.defaultWhoamiPath()
	goCmd := findCmd("go")
	if _, err := exec.LookPath(goCmd); err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, "./e2e/cmd/whoami")
	cmd.Dir = root
	cmd.Env = append(childEnv(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building whoami: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
