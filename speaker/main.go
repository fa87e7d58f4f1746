// Command speaker is herald's speaker, one per node: it answers ARP and NDP for the
// LoadBalancer addresses its node is elected to announce.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/heraldlb/herald/internal/version"
	"github.com/heraldlb/herald/speaker/app"
	"github.com/heraldlb/herald/speaker/layer2"
)

func main() {
	cfg := app.Config{}
	var logLevel string
	flag.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	flag.StringVar(&cfg.Namespace, "namespace", envOr("POD_NAMESPACE", "herald-system"), "namespace of the memberlist Secret")
	flag.StringVar(&cfg.MemberlistSecret, "memberlist-secret", "herald-memberlist", "Secret holding the memberlist key (created by the controller)")
	flag.BoolVar(&cfg.Insecure, "insecure-memberlist", false, "run memberlist unencrypted when the Secret is missing (never on a shared network)")
	flag.StringVar(&cfg.BindAddr, "bind-addr", "", "address memberlist binds (default: the node's InternalIP)")
	flag.IntVar(&cfg.MemberlistPort, "memberlist-port", 7946, "memberlist UDP and TCP port")
	flag.DurationVar(&cfg.HoldDown, "hold-down", 10*time.Second, "how long a starting speaker waits to hear another before announcing alone, and how long a (re)joined node settles before it is given addresses nobody holds")
	flag.BoolVar(&cfg.HandleClassless, "handle-classless", true, "also announce LoadBalancer Services with no spec.loadBalancerClass (set it as on the controller)")
	flag.DurationVar(&cfg.RefreshInterval, "arp-refresh-interval", layer2.DefaultRefreshInterval, "how often announced addresses are announced again by gratuitous ARP / unsolicited NA, for switches whose MAC tables age out first; 0 disables")
	flag.Float64Var(&cfg.StatusQPS, "status-qps", 25, "most writes per second of Services' herald.io/Announced condition by this speaker (a node failure moves many Services at once)")
	flag.IntVar(&cfg.StatusBurst, "status-burst", 50, "writes of the herald.io/Announced condition this speaker may make at once before --status-qps applies")
	flag.DurationVar(&cfg.HandOver, "hand-over", 2*time.Second, "how long a stopping speaker keeps answering after it has left, while new owners announce")
	flag.DurationVar(&cfg.ProbeTimeout, "probe-timeout", 100*time.Millisecond, "wait for an answer when probing an address before first announcing it (0 skips probing)")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":7474", "address serving /metrics (\"0\" to disable)")
	flag.StringVar(&cfg.HealthAddr, "health-addr", ":7475", "address serving /healthz and /readyz (\"0\" to disable)")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	if err := run(cfg, logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "herald-speaker:", err)
		os.Exit(1)
	}
}

func run(cfg app.Config, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrl.SetLogger(cfg.Logger)
	cfg.Logger.Info("Starting herald speaker", "version", version.Version, "node", cfg.NodeName)
	rc, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, rc, cfg)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
