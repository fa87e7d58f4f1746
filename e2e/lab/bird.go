package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BIRD runs as root in NSBird, in the foreground, logging to standard error, with
// its configuration, control socket and PID file in StateDir/bird.
func (c Config) birdDir() string             { return filepath.Join(c.StateDir, "bird") }
func (c Config) birdPath(name string) string { return filepath.Join(c.birdDir(), name) }

func birdProc(cfg Config) procSpec {
	return procSpec{name: "bird", ns: NSBird, argv: []string{
		findCmd("bird"), "-f",
		"-c", cfg.birdPath("bird.conf"),
		"-s", cfg.birdPath("bird.ctl"),
		"-P", cfg.birdPath("bird.pid"),
	}}
}

// birdConf is BIRD's configuration: dynamic BGP (BIRD ≥ 2.0.8) that accepts a
// session from any address of the LAN in any AS but BirdASN, imports everything and
// exports nothing, and kernel protocols that install the best routes, merged into
// ECMP routes, in lab-bird's kernel.
func birdConf() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# BIRD of the herald lab; written by the lab")
	w("log stderr all;")
	w("router id %s;", BirdIPv4)
	w("protocol device {}")
	w("protocol kernel kernel4 { ipv4 { export all; }; merge paths on; }")
	w("protocol kernel kernel6 { ipv6 { export all; }; merge paths on; }")
	w("template bgp nodes {")
	w("  hold time 3; keepalive time 1; connect retry time 1;")
	w("}")
	for _, f := range []struct {
		name  string
		local netip.Addr
		lan   netip.Prefix
		af    string
	}{{"nodes4", BirdIPv4, LANv4, "ipv4"}, {"nodes6", BirdIPv6, LANv6, "ipv6"}} {
		w("protocol bgp %s from nodes {", f.name)
		w("  local %s as %d;", f.local, BirdASN)
		w("  neighbor range %s external;", f.lan)
		w("  dynamic name %q;", "node"+strings.TrimPrefix(f.name, "nodes")+"_") // node4_1, node4_2 …
		w("  %s { import all; export none; };", f.af)
		w("}")
	}
	return b.String()
}

// writeBirdConf writes BIRD's configuration and reports whether it changed.
func writeBirdConf(cfg Config) (bool, error) {
	if err := os.MkdirAll(cfg.birdDir(), 0o700); err != nil {
		return false, fmt.Errorf("creating BIRD's folder: %w", err)
	}
	if p := cfg.birdPath("bird.ctl"); len(p) > 100 {
		return false, fmt.Errorf("the state directory's path is too long for BIRD's control socket (%s)", p)
	}
	path, conf := cfg.birdPath("bird.conf"), birdConf()
	if old, err := os.ReadFile(path); err == nil && string(old) == conf {
		return false, nil
	}
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return false, fmt.Errorf("writing BIRD's configuration: %w", err)
	}
	return true, nil
}

func waitBird(ctx context.Context, cfg Config) error {
	return waitReady(ctx, cfg, birdProc(cfg), 20*time.Second, func(ctx context.Context) error {
		_, err := birdc(ctx, cfg, "show status")
		return err
	})
}

func birdc(ctx context.Context, cfg Config, cmd string) (string, error) {
	out, err := execIn(ctx, NSBird, findCmd("birdc"), "-s", cfg.birdPath("bird.ctl"), cmd)
	out = trimBanner(out)
	if err != nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("%w\n%s", err, strings.TrimSpace(out))
	}
	return out, err
}

// trimBanner drops birdc's greeting ("BIRD 2.0.12 ready.").
func trimBanner(out string) string {
	if first, rest, ok := strings.Cut(out, "\n"); ok && strings.HasPrefix(first, "BIRD ") && strings.HasSuffix(first, "ready.") {
		return rest
	}
	return out
}

// Birdc runs one command in BIRD's shell ("show protocols", "show route all") and
// returns its output, without BIRD's greeting. A command BIRD rejects is an error.
func (l *Lab) Birdc(ctx context.Context, cmd string) (string, error) {
	if strings.TrimSpace(cmd) == "" {
		return "", errors.New("birdc: no command")
	}
	return birdc(ctx, l.cfg, cmd)
}

// BirdSocket returns BIRD's control socket (birdc -s SOCKET).
func (l *Lab) BirdSocket() string { return l.cfg.birdPath("bird.ctl") }

// BirdRoute returns the nexthops of the route to exactly prefix in lab-bird's
// kernel, where BIRD installs its best routes, merged for ECMP.
func (l *Lab) BirdRoute(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	return kernelRoute(ctx, NSBird, prefix)
}
