// Package app wires the controller together: a controller-runtime manager with
// leader election, health and metrics endpoints, and the ipam controller.
package app

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/controller/ipam"
	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/internal/slim"
)

// Config is everything the controller binary is told.
type Config struct {
	// MetricsAddr serves /metrics ("0" turns it off).
	MetricsAddr string
	// PprofAddr serves /debug/pprof ("" or "0" turns it off).
	PprofAddr string
	// ProbeAddr serves /healthz and /readyz ("0" turns it off).
	ProbeAddr string
	// LeaderElection makes replicas elect one leader; only it writes.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease.
	LeaderElectionNamespace string
	// LeaderElectionID names the Lease.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election; zero keeps
	// controller-runtime's defaults (15s, 10s, 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// QPS and Burst limit the controller's API requests; a burst of new Services
	// costs one status write each, so the defaults (200, 400) are well above
	// client-go's 5 and 10.
	QPS   float32
	Burst int
	// MemberlistSecret names the Secret, in LeaderElectionNamespace, holding the
	// speakers' memberlist key; the leader creates it, recreates it when
	// deleted and rotates the key when asked (package memberkey). Empty: none.
	MemberlistSecret string
	// MemberlistKeyInterval and MemberlistKeyGrace tune the key's keeper
	// (memberkey.Keeper); zero takes its defaults (5 s, 10 min).
	MemberlistKeyInterval, MemberlistKeyGrace time.Duration
	// SkipNameValidation lets several controllers run in one process, as tests do.
	SkipNameValidation bool
	// IPAM configures the Service controller.
	IPAM ipam.Options
	// Logger is the structured logger.
	Logger logr.Logger
}

// The controller creates, recreates and rotates the speakers' memberlist key
// (memberkey.Keeper).
// +kubebuilder:rbac:groups="",namespace=herald-system,resources=secrets,verbs=get;create;update

// Scheme returns the types the controller reads and writes.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering Kubernetes types: %w", err)
	}
	if err := heraldv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("registering herald types: %w", err)
	}
	return s, nil
}

// New builds the manager and the controller without starting them.
func New(rc *rest.Config, cfg Config) (manager.Manager, *ipam.Controller, error) {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS == 0 {
		rc.QPS = 200
	}
	if rc.Burst == 0 {
		rc.Burst = 400
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, nil, err
	}
	opts := ctrl.Options{
		Scheme:                        scheme,
		Logger:                        cfg.Logger,
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:        cfg.ProbeAddr,
		PprofBindAddress:              cfg.PprofAddr,
		LeaderElection:                cfg.LeaderElection,
		LeaderElectionNamespace:       cfg.LeaderElectionNamespace,
		LeaderElectionID:              cfg.LeaderElectionID,
		LeaderElectionReleaseOnCancel: true,
		LeaderElectionResourceLock:    "leases",
		Controller:                    config.Controller{SkipNameValidation: &cfg.SkipNameValidation},
		Cache: cache.Options{
			// managedFields are often most of an object's bytes and the
			// controller never reads them; Services and Namespaces are cut
			// further to the fields the controller reads.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         cacheByObject(),
		},
	}
	if cfg.LeaseDuration > 0 {
		opts.LeaseDuration = &cfg.LeaseDuration
	}
	if cfg.RenewDeadline > 0 {
		opts.RenewDeadline = &cfg.RenewDeadline
	}
	if cfg.RetryPeriod > 0 {
		opts.RetryPeriod = &cfg.RetryPeriod
	}
	mgr, err := ctrl.NewManager(rc, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the manager: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	if cfg.IPAM.Namespace == "" {
		cfg.IPAM.Namespace = cfg.LeaderElectionNamespace
	}
	c := ipam.New(mgr, cs, cfg.IPAM)
	if err := c.SetupWithManager(mgr); err != nil {
		return nil, nil, err
	}
	if cfg.MemberlistSecret != "" {
		if cfg.LeaderElectionNamespace == "" {
			return nil, nil, fmt.Errorf("the memberlist Secret needs a namespace (--leader-elect-namespace or POD_NAMESPACE)")
		}
		keeper := &memberkey.Keeper{
			Secrets:   cs.CoreV1().Secrets(cfg.LeaderElectionNamespace),
			Namespace: cfg.LeaderElectionNamespace,
			Name:      cfg.MemberlistSecret,
			Recorder:  mgr.GetEventRecorderFor("herald-controller"),
			Log:       cfg.Logger.WithName("memberkey"),
			Interval:  cfg.MemberlistKeyInterval,
			Grace:     cfg.MemberlistKeyGrace,
		}
		// A leader-elected runnable: only the leader writes the Secret, and it
		// keeps it for as long as it leads (a deleted Secret comes back within
		// the keeper's interval, not at the next election).
		if err := mgr.Add(manager.RunnableFunc(keeper.Run)); err != nil {
			return nil, nil, fmt.Errorf("adding the memberlist key keeper: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, fmt.Errorf("adding /healthz: %w", err)
	}
	if err := mgr.AddReadyzCheck("ledger", c.ReadyCheck); err != nil {
		return nil, nil, fmt.Errorf("adding /readyz: %w", err)
	}
	return mgr, c, nil
}

// Run starts the controller and blocks until ctx ends.
func Run(ctx context.Context, rc *rest.Config, cfg Config) error {
	mgr, _, err := New(rc, cfg)
	if err != nil {
		return err
	}
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running the controller: %w", err)
	}
	return nil
}

// cacheByObject is slim's trimming with the controller's own Service transform
// (which keeps what allocation reads beyond slim's fields) and its one ConfigMap.
func cacheByObject() map[client.Object]cache.ByObject {
	out := slim.CacheOptions()
	for o, by := range out {
		if _, ok := o.(*corev1.Service); ok {
			by.Transform = ipam.CacheService
			out[o] = by
		}
	}
	maps.Copy(out, ipam.CacheOptions())
	return out
}
