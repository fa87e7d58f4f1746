// Package app is the speaker: it watches the cluster, keeps the speakers in one
// memberlist cluster, elects an owner for each layer 2 address and has the owner
// answer ARP and NDP for it.
package app

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/slim"
)

// Config is everything the speaker binary is told.
type Config struct {
	// NodeName is the node this speaker runs on (from the pod's spec.nodeName).
	NodeName string
	// Namespace holds the memberlist key Secret.
	Namespace string
	// MemberlistSecret names the Secret with the memberlist key.
	MemberlistSecret string
	// Insecure allows running memberlist unencrypted when the Secret is missing.
	Insecure bool
	// BindAddr is the address memberlist binds; empty: the node's InternalIP.
	BindAddr string
	// MemberlistPort is memberlist's UDP and TCP port.
	MemberlistPort int
	// HoldDown is how long a speaker that starts waits to hear another before
	// it announces alone, and how long after joining it counts as settling:
	// addresses nobody holds go to settled nodes first.
	HoldDown time.Duration
	// HandleClassless: also announce LoadBalancer Services with no
	// spec.loadBalancerClass. It must match the controller's flag.
	HandleClassless bool
	// RefreshInterval is how often announced addresses are announced again
	// (gratuitous ARP, unsolicited NA); zero disables it.
	RefreshInterval time.Duration
	// HandOver bounds how long a stopping speaker keeps answering after it has
	// left, so the new owner's announcement lands first.
	HandOver time.Duration
	// ProbeTimeout bounds the wait for an answer when probing an address before
	// announcing it for the first time; zero skips probing.
	ProbeTimeout time.Duration
	// StatusQPS and StatusBurst bound this speaker's writes of Services'
	// herald.io/Announced condition (a token bucket).
	StatusQPS   float64
	StatusBurst int
	// MetricsAddr and HealthAddr serve /metrics and /healthz, /readyz ("0": off).
	MetricsAddr, HealthAddr string
	Logger                  logr.Logger
}

// Scheme returns the types the speaker reads.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, coordinationv1.AddToScheme, heraldv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building the scheme: %w", err)
		}
	}
	return s, nil
}

// Run runs the speaker until ctx ends, then hands over and returns.
func Run(ctx context.Context, rc *rest.Config, cfg Config) error {
	if cfg.NodeName == "" {
		return fmt.Errorf("the node name is not set (NODE_NAME)")
	}
	scheme, err := Scheme()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	if cfg.MemberlistSecret == "" && !cfg.Insecure {
		return fmt.Errorf("no memberlist Secret configured; set --memberlist-secret or --insecure-memberlist")
	}
	if err := waitReachable(ctx, func(ctx context.Context) error {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
		return err
	}, cfg.HealthAddr, cfg.Logger); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 cfg.Logger,
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress: cfg.HealthAddr,
		// The speaker's own shutdown (leave, hand over) happens inside its
		// runnable; give it room.
		GracefulShutdownTimeout: ptrDuration(cfg.HandOver + 10*time.Second),
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         byObject(cfg.Namespace),
		},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding /healthz: %w", err)
	}
	s := newSpeaker(mgr, cs, cfg)
	// Not ready while waiting for the memberlist key (the speaker reads it
	// once the manager runs, so /healthz answers meanwhile).
	if err := mgr.AddReadyzCheck("memberlist-key", s.keys.Check); err != nil {
		return fmt.Errorf("adding /readyz: %w", err)
	}
	// Ready means announcing: synced, joined, first announcements applied,
	// not held down, not handing over. The DaemonSet's rollout waits for it.
	if err := mgr.AddReadyzCheck("announcing", s.ready.Check); err != nil {
		return fmt.Errorf("adding /readyz: %w", err)
	}
	if err := mgr.Add(s); err != nil {
		return fmt.Errorf("adding the speaker: %w", err)
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the speaker: %w", err)
	}
	return nil
}

// byObject slims the cached objects and caches only the Secrets of the speaker's
// namespace (BGP passwords): RBAC lets it read no others.
func byObject(namespace string) map[client.Object]cache.ByObject {
	m := slim.CacheOptions()
	m[&corev1.Secret{}] = cache.ByObject{Namespaces: map[string]cache.Config{namespace: {}}}
	return m
}

func ptrDuration(d time.Duration) *time.Duration { return &d }

// nodeAddr returns the node's InternalIP (IPv4 preferred), where memberlist binds
// and where the other speakers find it.
func nodeAddr(n *corev1.Node) string {
	v4, v6 := nodeAddrs(n)
	switch {
	case v4.IsValid():
		return v4.String()
	case v6.IsValid():
		return v6.String()
	}
	return ""
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
