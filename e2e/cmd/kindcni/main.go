// Command kindcni (installed as herald-kindcni) is a minimal CNI agent for the kind
// nodes herald's end-to-end tests build offline.
//
// kind's default CNI, kindnetd, is an image pulled at cluster creation, which an
// offline lab cannot do; the clusters are therefore created with
// networking.disableDefaultCNI and each node runs this agent as a systemd
// service instead. It is test infrastructure only, not part of herald.
//
// On its node the agent waits for the kubelet's kubeconfig, watches Nodes and
//
//   - once its own Node has spec.podCIDRs, writes <cni-conf-dir>/10-herald-kind.conflist
//     (bridge herald0 with host-local IPAM per pod CIDR family, and portmap);
//   - keeps a route "podCIDR via InternalIP" to every other Node's pod CIDRs of
//     each family the other Node has an InternalIP of. The nodes share one L2
//     network (kind's docker bridge), so the InternalIPs are direct next hops.
//     The routes carry routing protocol 157 (0x9d), by which the agent finds its
//     own and removes stale ones, also after a restart.
//
// Usage:
//
//	herald-kindcni --kubeconfig /etc/kubernetes/kubelet.conf [--node-name NAME] [--cni-conf-dir /etc/cni/net.d]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	hostname, _ := os.Hostname() // empty on error; run then asks for --node-name
	kubeconfig := flag.String("kubeconfig", "/etc/kubernetes/kubelet.conf", "kubeconfig to watch Nodes with; waited for until it exists")
	nodeName := flag.String("node-name", hostname, "this node's Node name (default: the hostname)")
	confDir := flag.String("cni-conf-dir", "/etc/cni/net.d", "directory to write "+ConflistName+" into")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	flag.Parse()
	if err := run(*kubeconfig, *nodeName, *confDir, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "herald-kindcni:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodeName, confDir, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if nodeName == "" {
		return fmt.Errorf("--node-name is empty and the hostname unknown")
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	routes, err := newRouteTable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	log.Info("Starting herald-kindcni", "node", nodeName, "kubeconfig", kubeconfig, "cniConfDir", confDir)
	cs, err := waitForClient(ctx, log, kubeconfig)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting
		}
		return err
	}
	err = newAgent(log, nodeName, confDir, routes).Run(ctx, cs)
	log.Info("Stopped herald-kindcni")
	return err
}
