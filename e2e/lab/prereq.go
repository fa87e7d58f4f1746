package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ipCmd is iproute2's ip, found on PATH or in the sbin folders.
var ipCmd = findCmd("ip")

// requiredCmds maps each command the lab runs to the Debian package holding it.
var requiredCmds = []struct{ cmd, pkg string }{
	{"ip", "iproute2"},
	{"iptables", "iptables"},   // kube-proxy
	{"ip6tables", "iptables"},  // kube-proxy, IPv6
	{"conntrack", "conntrack"}, // kube-proxy clears stale UDP flows
	{"curl", "curl"},           // health checks and Curl
	{"sh", "dash"},             // sysctls inside namespaces
	{"vtysh", "frr"},           // the router's shell
	{"bird", "bird2"},          // the second router
	{"birdc", "bird2"},
}

// frrDaemons are the router's daemons, from Debian's frr (in /usr/lib/frr).
var frrDaemons = []string{"zebra", "bgpd"}

// checkPrereqs fails, saying what to install, unless the lab can be built here.
func checkPrereqs(cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, veths, iptables)")
	}
	var missing, pkgs []string
	for _, r := range requiredCmds {
		if _, err := exec.LookPath(findCmd(r.cmd)); err != nil {
			missing = append(missing, r.cmd)
			if !slices.Contains(pkgs, r.pkg) {
				pkgs = append(pkgs, r.pkg)
			}
		}
	}
	for _, d := range frrDaemons {
		if _, err := exec.LookPath(frrDaemon(d)); err != nil {
			missing = append(missing, d)
			if !slices.Contains(pkgs, "frr") {
				pkgs = append(pkgs, "frr")
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab needs the commands %s: apt-get install -y %s", strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	if _, _, err := frrUser(); err != nil {
		return err
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-proxy", "kubectl"} {
		if !fileExists(cfg.bin(b)) {
			return fmt.Errorf("the lab needs %s: run `make kube-bins` (or set BinDir / KUBEBUILDER_ASSETS)", cfg.bin(b))
		}
	}
	return nil
}

// findCmd returns the path of a command on PATH or in the sbin folders, which a
// root shell may leave off PATH; the bare name when it is in neither.
func findCmd(name string) string {
	for _, dir := range strings.Split(withSbin(os.Getenv("PATH")), ":") {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// lock serialises Up and Down across processes. It is one lock for the machine,
// whatever the state directory, because the namespaces' names are the machine's. The
// lock is an abstract Unix socket: the kernel releases it when its holder dies, and
// it leaves no file behind.
func lock(ctx context.Context) (func(), error) {
	const name = "@herald-lab"
	for {
		l, err := net.Listen("unix", name)
		if err == nil {
			return func() { _ = l.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("locking the lab: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another process building or removing the lab: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
