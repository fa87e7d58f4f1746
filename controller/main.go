// Command controller is herald's controller: it assigns addresses from IPPools to
// LoadBalancer Services and writes them to the Services' status.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/heraldlb/herald/controller/app"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/version"
)

func main() {
	cfg := app.Config{}
	var orphans, logLevel string
	var qps float64
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":7472", "address serving /metrics (\"0\" to disable)")
	flag.StringVar(&cfg.ProbeAddr, "health-addr", ":7473", "address serving /healthz and /readyz (\"0\" to disable)")
	flag.StringVar(&cfg.PprofAddr, "pprof-addr", "0", "address serving /debug/pprof (\"0\" to disable)")
	flag.BoolVar(&cfg.LeaderElection, "leader-elect", true, "elect one active replica through a Lease")
	flag.StringVar(&cfg.LeaderElectionNamespace, "leader-elect-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader Lease (default: the pod's namespace)")
	flag.StringVar(&cfg.LeaderElectionID, "leader-elect-id", "herald-controller", "name of the leader Lease")
	flag.StringVar(&cfg.MemberlistSecret, "memberlist-secret", "herald-memberlist", "Secret (in the pod's namespace) holding the speakers' memberlist key, created when missing (\"\" to skip)")
	flag.BoolVar(&cfg.IPAM.Classless, "handle-classless", true, "also handle LoadBalancer Services with no spec.loadBalancerClass")
	flag.StringVar(&orphans, "orphan-policy", "retain", "what happens to an assigned address that a pool edit leaves outside every pool: retain (keep it until the Service goes) or reassign (move the Service to an address from its pools)")
	flag.IntVar(&cfg.IPAM.Workers, "workers", 4, "Services reconciled concurrently")
	flag.Float64Var(&qps, "kube-api-qps", 200, "API requests per second the controller may make")
	flag.IntVar(&cfg.Burst, "kube-api-burst", 400, "API request burst the controller may make")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	cfg.QPS = float32(qps)
	if err := run(cfg, orphans, logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "herald-controller:", err)
		os.Exit(1)
	}
}

func run(cfg app.Config, orphans, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	switch orphans {
	case "retain":
		cfg.IPAM.Orphans = allocator.RetainOrphans
	case "reassign":
		cfg.IPAM.Orphans = allocator.ReassignOrphans
	default:
		return fmt.Errorf("--orphan-policy must be retain or reassign, not %q", orphans)
	}
	cfg.Logger = logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(cfg.Logger)
	cfg.Logger.Info("Starting herald controller", "version", version.Version)

	rc, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	if (cfg.LeaderElection || cfg.MemberlistSecret != "") && cfg.LeaderElectionNamespace == "" {
		return fmt.Errorf("--leader-elect-namespace or POD_NAMESPACE must be set (leader election and the memberlist Secret live there)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, rc, cfg)
}
