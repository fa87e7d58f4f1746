// Command lab brings herald's netns lab up and down (as root) and works inside it.
//
//	go run ./e2e/cmd/lab up                 build the lab, or reuse a healthy one
//	go run ./e2e/cmd/lab down               remove everything the lab made
//	go run ./e2e/cmd/lab status             processes, and whether the API server is ready
//	go run ./e2e/cmd/lab kubectl ARGS...    kubectl against the lab
//	go run ./e2e/cmd/lab exec NS CMD...     run a command in a lab namespace (lab-node1 or node1,
//	                                        lab-router or router, lab-ext or ext, lab-bird …)
//	go run ./e2e/cmd/lab vtysh ARGS...      FRR's shell in the router: vtysh -c 'show bgp summary'
//	go run ./e2e/cmd/lab birdc ARGS...      BIRD's shell: birdc show route
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var cfg lab.Config
	var speakerArgs, controllerArgs listFlag
	root, _ := lab.RepoRoot()
	flag.StringVar(&cfg.StateDir, "dir", "", "state directory (default $HERALD_LAB_DIR or /tmp/herald-lab)")
	flag.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes")
	flag.StringVar(&cfg.BinDir, "bin-dir", "", "folder with etcd, kube-apiserver, kube-proxy, kubectl (default $KUBEBUILDER_ASSETS or bin/k8s)")
	flag.StringVar(&cfg.SpeakerBinary, "speaker", inRepo(root, "bin/herald-speaker"), "speaker binary, run on every node when it exists")
	flag.Var(&speakerArgs, "speaker-arg", "an argument for the speaker (repeat the flag)")
	flag.StringVar(&cfg.ControllerBinary, "controller", inRepo(root, "bin/herald-controller"), "controller binary, run in lab-cp when it exists")
	flag.Var(&controllerArgs, "controller-arg", "an argument for the controller (repeat the flag)")
	flag.StringVar(&cfg.CRDDir, "crds", "", "CRDs applied before the controller starts (default manifests/crds)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: lab [flags] up|down|status|kubectl ARGS...|exec NS CMD...|vtysh ARGS...|birdc ARGS...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	cfg.SpeakerArgs, cfg.ControllerArgs = speakerArgs, controllerArgs
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "lab: "+format+"\n", args...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func inRepo(root, rel string) string {
	if root == "" {
		return ""
	}
	return filepath.Join(root, rel)
}

func run(ctx context.Context, cfg lab.Config, args []string) (int, error) {
	if len(args) == 0 {
		flag.Usage()
		return 2, nil
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		return 0, up(ctx, cfg)
	case "down":
		return 0, lab.Down(cfg)
	case "status":
		return 0, status(ctx, cfg)
	case "kubectl":
		l, err := lab.Open(cfg)
		if err != nil {
			return 1, err
		}
		kubectl := filepath.Join(l.Config().BinDir, "kubectl")
		return passthrough(ctx, kubectl, append([]string{"--kubeconfig", l.KubeconfigPath()}, rest...)...)
	case "exec":
		if len(rest) < 2 {
			return 2, errors.New("usage: lab exec NS CMD [ARGS...]")
		}
		if _, err := lab.Open(cfg); err != nil {
			return 1, err
		}
		ns := rest[0]
		if !strings.HasPrefix(ns, "lab-") {
			ns = "lab-" + ns // node1, router, ext, bird, client, cp, sw
		}
		return passthrough(ctx, "ip", append([]string{"netns", "exec", ns}, rest[1:]...)...)
	case "vtysh":
		l, err := lab.Open(cfg)
		if err != nil {
			return 1, err
		}
		return passthrough(ctx, "ip", append([]string{"netns", "exec", lab.NSRouter, "vtysh", "--vty_socket", l.RouterRunDir()}, rest...)...)
	case "birdc":
		l, err := lab.Open(cfg)
		if err != nil {
			return 1, err
		}
		return passthrough(ctx, "ip", append([]string{"netns", "exec", lab.NSBird, "birdc", "-s", l.BirdSocket()}, rest...)...)
	default:
		flag.Usage()
		return 2, fmt.Errorf("unknown command %q", cmd)
	}
}

func up(ctx context.Context, cfg lab.Config) error {
	start := time.Now()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return err
	}
	c := l.Config()
	fmt.Printf("The lab is up (%v).\n\n", time.Since(start).Round(100*time.Millisecond))
	for _, n := range l.Nodes() {
		fmt.Printf("  %-6s ns %-10s %s %s  mac %s  pods %s %s\n", n.Name, n.NS, n.IPv4, n.IPv6, n.MAC, n.PodCIDRv4, n.PodCIDRv6)
	}
	fmt.Printf("  client ns %-10s %s %s\n", lab.NSClient, lab.ClientIPv4, lab.ClientIPv6)
	fmt.Printf("  API    ns %-10s https://%s:6443\n", lab.NSControlPlane, lab.ControlPlaneIPv4)
	fmt.Printf("  router ns %-10s %s %s  FRR AS %d, listening for nodes in AS %d; eth1 %s %s\n", lab.NSRouter, lab.RouterIPv4, lab.RouterIPv6, lab.RouterASN, lab.NodeASN, lab.RouterExternalIPv4, lab.RouterExternalIPv6)
	fmt.Printf("  ext    ns %-10s %s %s  behind the router\n", lab.NSExternal, lab.ExternalIPv4, lab.ExternalIPv6)
	fmt.Printf("  bird   ns %-10s %s %s  BIRD AS %d, any node AS\n", lab.NSBird, lab.BirdIPv4, lab.BirdIPv6, lab.BirdASN)
	if c.ControllerBinary != "" {
		fmt.Printf("  controller: %s\n", c.ControllerBinary)
	}
	if c.SpeakerBinary != "" {
		fmt.Printf("  speakers:   %s %s\n", c.SpeakerBinary, strings.Join(c.SpeakerArgs, " "))
	}
	fmt.Printf(`
Use it:
  export KUBECONFIG=%s
  %s get nodes -o wide
  go run ./e2e/cmd/lab kubectl get nodes          # the same, without the export
  go run ./e2e/cmd/lab exec %s curl http://10.77.0.11:<nodePort>/
  go run ./e2e/cmd/lab vtysh -c 'show bgp summary'  # FRR in the router
  go run ./e2e/cmd/lab birdc show protocols          # BIRD
Logs: %s
Tear down: go run ./e2e/cmd/lab down
`, l.KubeconfigPath(), filepath.Join(c.BinDir, "kubectl"), lab.NSClient, filepath.Join(l.StateDir(), "logs"))
	return nil
}

func status(ctx context.Context, cfg lab.Config) error {
	l, err := lab.Open(cfg)
	if err != nil {
		return err
	}
	for _, p := range l.Processes() {
		state := "running"
		if !p.Running {
			state = "STOPPED"
		}
		fmt.Printf("%-22s %-14s pid %-7d %s\n", p.Name, p.NS, p.PID, state)
	}
	for _, p := range l.Pods() {
		fmt.Printf("pod %-18s %-6s %s %s\n", p.Name, p.Node, p.IPv4, p.IPv6)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := l.Check(cctx); err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	fmt.Println("healthy; kubeconfig:", l.KubeconfigPath())
	return nil
}

// passthrough runs a command on this terminal and returns its exit code.
func passthrough(ctx context.Context, name string, args ...string) (int, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	if err != nil {
		return 1, fmt.Errorf("running %s: %w", name, err)
	}
	return 0, nil
}
