package app

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldlb/herald/internal/memberkey"
	"github.com/heraldlb/herald/speaker/membership"
)

var (
	metricKeys = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_speaker_memberlist_keys",
		Help: "Keys on this speaker's memberlist keyring, by state: primary (encrypts; 1 when encrypted) and secondary (decrypts only; above 0 while a key rotation is under way).",
	}, []string{"state"})
	metricKeySteps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_speaker_memberlist_key_steps_total",
		Help: "Key rotation steps this speaker took on its memberlist keyring, by action (add, use, remove).",
	}, []string{"action"})
)

func init() {
	metrics.Registry.MustRegister(metricKeys, metricKeySteps)
}

// keyPollInterval is how often a speaker compares its keyring with the Secret
// and the others' keys: a rotation takes three steps, each waiting for the
// others' metadata to spread (tens of milliseconds), so 250 ms keeps a roll of a
// few nodes around a second, for one cache read and a few string compares.
const keyPollInterval = 250 * time.Millisecond

// keyWaitLog is how often a speaker waiting for its key says so.
const keyWaitLog = 30 * time.Second

// keyring is what the key rotation needs of memberlist (membership.Members).
type keyring interface {
	Encrypted() bool
	// KeyFingerprints: this member's keys, the one it encrypts with first.
	KeyFingerprints() []string
	// Alive: the live members with their metadata (Meta.Keys).
	Alive() []membership.Member
	AddKey(key []byte) error
	UseKey(fingerprint string) error
	RemoveKey(fingerprint string) error
}

var _ keyring = (*membership.Members)(nil)

// keySource reads the memberlist keys from the Secret (through the speaker's
// cache) and rolls a new key into memberlist without a split (memberkey.Next).
type keySource struct {
	reader client.Reader
	cfg    Config
	log    logr.Logger
	// alone reports whether the cluster has no other speaker (see
	// memberkey.Next).
	alone func() bool

	// mu guards waiting.
	mu sync.Mutex
	// waiting is why the speaker has no key yet (nil once it has one): /readyz
	// reports it.
	waiting error

	// Owned by the rotation goroutine: the last wait and Secret problem
	// logged, so each is logged once per change.
	lastWait    memberkey.Step
	lastProblem string
}

func newKeySource(r client.Reader, cfg Config, log logr.Logger, alone func() bool) *keySource {
	return &keySource{reader: r, cfg: cfg, log: log.WithName("memberkey"), alone: alone,
		waiting: fmt.Errorf("waiting for the memberlist key Secret %s/%s", cfg.Namespace, cfg.MemberlistSecret)}
}

// Check is a /readyz check: a speaker waiting for its key is alive (/healthz
// answers, so the kubelet does not kill it) but not ready.
func (k *keySource) Check(*http.Request) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.waiting
}

func (k *keySource) setWaiting(err error) {
	k.mu.Lock()
	k.waiting = err
	k.mu.Unlock()
}

// load returns the keys memberlist starts with: the Secret's key, which it
// encrypts with, and the previous one during a rotation, which it decrypts with
// too (members that have not switched yet still encrypt with it). It waits for
// the Secret for as long as it takes: the controller creates it, recreates it
// within seconds, and a speaker restarted meanwhile would only wait again.
// With no Secret and Insecure, memberlist runs unencrypted (nil keys); without
// Insecure it never does: gossip decides who answers for addresses, and anyone on
// the network could otherwise join it.
func (k *keySource) load(ctx context.Context) ([]byte, [][]byte, error) {
	if k.cfg.MemberlistSecret == "" {
		if !k.cfg.Insecure {
			return nil, nil, fmt.Errorf("no memberlist Secret configured; set --memberlist-secret or --insecure-memberlist")
		}
		k.setWaiting(nil)
		return nil, nil, nil
	}
	name := k.cfg.Namespace + "/" + k.cfg.MemberlistSecret
	start := time.Now()
	var logged time.Time
	for {
		var s corev1.Secret
		err := k.reader.Get(ctx, types.NamespacedName{Namespace: k.cfg.Namespace, Name: k.cfg.MemberlistSecret}, &s)
		if err == nil {
			primary, previous, kerr := memberkey.Keys(&s)
			if kerr == nil {
				k.setWaiting(nil)
				var older [][]byte
				if previous != nil {
					older = append(older, previous)
					k.log.Info("A memberlist key rotation is under way; decrypting with the previous key too", "secret", name)
				}
				return primary, older, nil
			}
			err = kerr
		} else if apierrors.IsNotFound(err) && k.cfg.Insecure {
			k.log.Info("No memberlist Secret; running unencrypted as told", "secret", name)
			k.setWaiting(nil)
			return nil, nil, nil
		}
		k.setWaiting(fmt.Errorf("waiting for the memberlist key Secret %s: %w", name, err))
		if time.Since(logged) >= keyWaitLog {
			logged = time.Now()
			k.log.Info("Waiting for the memberlist key Secret (the controller creates it)", "secret", name, "waited", time.Since(start).Round(time.Second).String(), "problem", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// rotate rolls the Secret's key into ring until ctx ends; the returned func
// waits for it to end.
func (k *keySource) rotate(ctx context.Context, ring keyring) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !ring.Encrypted() {
			// memberlist cannot start encrypting while running: every member
			// would have to at once.
			return
		}
		t := time.NewTicker(keyPollInterval)
		defer t.Stop()
		for {
			k.step(ctx, ring)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { <-done }
}

// step takes at most one step of a rotation.
func (k *keySource) step(ctx context.Context, ring keyring) {
	defer setKeyMetrics(ring.KeyFingerprints())
	var s corev1.Secret
	var primary []byte
	err := k.reader.Get(ctx, types.NamespacedName{Namespace: k.cfg.Namespace, Name: k.cfg.MemberlistSecret}, &s)
	if err == nil {
		primary, _, err = memberkey.Keys(&s)
	}
	if err != nil {
		// Keep the keys: the controller recreates a deleted Secret (with a
		// new key, rolled in as any other), and the speakers must not split
		// meanwhile.
		k.problem(err.Error())
		return
	}
	k.problem("")
	want := membership.Fingerprint(primary)
	have := ring.KeyFingerprints()
	others := map[string][]string{}
	for _, m := range ring.Alive() {
		if m.Name != k.cfg.NodeName {
			others[m.Name] = m.Meta.Keys
		}
	}
	st := memberkey.Next(want, have, others, k.alone())
	switch st.Action {
	case memberkey.Done:
		k.lastWait = memberkey.Step{}
		return
	case memberkey.Wait:
		if st != k.lastWait {
			k.lastWait = st
			k.log.Info("Memberlist key rotation waits", "key", st.Key, "reason", st.Why.String(), "member", st.Member, "keys", have)
		}
		return
	case memberkey.Add:
		err = ring.AddKey(primary)
	case memberkey.Use:
		err = ring.UseKey(st.Key)
	case memberkey.Remove:
		err = ring.RemoveKey(st.Key)
	}
	k.lastWait = memberkey.Step{}
	if err != nil {
		k.log.Error(err, "Memberlist key rotation step", "action", st.Action.String(), "key", st.Key)
		return
	}
	metricKeySteps.WithLabelValues(st.Action.String()).Inc()
	k.log.Info("Memberlist keyring changed", "action", st.Action.String(), "key", st.Key, "keys", ring.KeyFingerprints())
}

func (k *keySource) problem(p string) {
	if p == k.lastProblem {
		return
	}
	k.lastProblem = p
	if p != "" {
		k.log.Info("Cannot read the memberlist key Secret; keeping the keys memberlist has", "problem", p)
	}
}

func setKeyMetrics(fps []string) {
	primary, secondary := 0, 0
	if len(fps) > 0 {
		primary, secondary = 1, len(fps)-1
	}
	metricKeys.WithLabelValues("primary").Set(float64(primary))
	metricKeys.WithLabelValues("secondary").Set(float64(secondary))
}

// alone reports whether the speaker loop last found no other Ready node in the
// cluster (readiness.Alone).
func (r *readyState) alone() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.r.Alone
}
