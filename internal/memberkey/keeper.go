package memberkey

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

// Change is what the controller does to the key Secret next.
type Change int

const (
	// Keep: nothing to do.
	Keep Change = iota
	// Create the missing Secret with a new key.
	Create
	// Rotate: a new key becomes DataKey, the old one PreviousDataKey.
	Rotate
	// StartGrace: a previous key has no AnnotationRotatedAt (a user rotated by
	// hand); the grace period starts now.
	StartGrace
	// DropPrevious: the grace period is over.
	DropPrevious
	// Broken: DataKey is unusable; the controller reports it and writes
	// nothing, since overwriting a user's key would split the speakers.
	Broken
)

func (c Change) String() string {
	switch c {
	case Keep:
		return "keep"
	case Create:
		return "create"
	case Rotate:
		return "rotate"
	case StartGrace:
		return "startGrace"
	case DropPrevious:
		return "dropPrevious"
	case Broken:
		return "broken"
	}
	return fmt.Sprintf("Change(%d)", int(c))
}

// Observed is what the controller read of the Secret.
type Observed struct {
	// Exists: the Secret exists.
	Exists bool
	// PrimaryErr is Valid(DataKey).
	PrimaryErr error
	// HasPrevious: PreviousDataKey is present.
	HasPrevious bool
	// RotateAsked and RotatedFor are AnnotationRotate and AnnotationRotated.
	RotateAsked, RotatedFor string
	// RotatedAt is AnnotationRotatedAt; zero when absent or unreadable.
	RotatedAt time.Time
}

// Decision is the next change and when to look again at the latest.
type Decision struct {
	Change Change
	// Recheck, when set, is when the decision may change with no edit of
	// the Secret (the grace period ends).
	Recheck time.Time
	// Pending: a rotation is asked for and waits for the one under way to
	// end (its previous key to go): a speaker holds at most the keys of one
	// rotation and one recreation.
	Pending bool
}

// Decide returns the controller's next change to the key Secret. It has no
// client and no clock: now is given.
func Decide(o Observed, now time.Time, grace time.Duration) Decision {
	asked := o.RotateAsked != "" && o.RotateAsked != o.RotatedFor
	switch {
	case !o.Exists:
		return Decision{Change: Create}
	case o.PrimaryErr != nil:
		return Decision{Change: Broken}
	case o.HasPrevious && o.RotatedAt.IsZero():
		return Decision{Change: StartGrace, Pending: asked}
	case o.HasPrevious && !now.Before(o.RotatedAt.Add(grace)):
		return Decision{Change: DropPrevious, Pending: asked}
	case o.HasPrevious:
		return Decision{Change: Keep, Recheck: o.RotatedAt.Add(grace), Pending: asked}
	case asked:
		return Decision{Change: Rotate}
	}
	return Decision{Change: Keep}
}

// observe reads s (nil: absent) for Decide.
func observe(s *corev1.Secret) Observed {
	if s == nil {
		return Observed{}
	}
	o := Observed{Exists: true, PrimaryErr: Valid(s.Data[DataKey]), RotateAsked: s.Annotations[AnnotationRotate], RotatedFor: s.Annotations[AnnotationRotated]}
	_, o.HasPrevious = s.Data[PreviousDataKey]
	if t, err := time.Parse(time.RFC3339, s.Annotations[AnnotationRotatedAt]); err == nil {
		o.RotatedAt = t
	}
	return o
}

// SecretClient is what the Keeper needs of the Secrets API (a typed client's
// SecretInterface, namespaced).
type SecretClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
}

// Defaults for Keeper.
const (
	// DefaultInterval: the Secret is read every 5 s, so a deleted one is back
	// and an asked rotation begins within about 5 s; one GET per interval
	// costs the API server nothing.
	DefaultInterval = 5 * time.Second
	// DefaultGrace is how long PreviousDataKey stays after a rotation. Running
	// speakers never need it (they keep the old key on their keyring until no
	// member encrypts with it, a few seconds); it serves speakers that start
	// while some member still encrypts with the old key, which lasts longer
	// only when a member cannot take the new one (an earlier version, say).
	DefaultGrace = 10 * time.Minute
)

// Keeper keeps the key Secret: it creates it, recreates it when deleted, rotates
// the key when asked and drops the previous key after the grace period. It runs
// on the leading controller only.
type Keeper struct {
	Secrets   SecretClient
	Namespace string
	Name      string
	// Recorder, if set, records what the Keeper does as Events on the Secret.
	Recorder record.EventRecorder
	Log      logr.Logger
	// Interval and Grace: zero takes DefaultInterval and DefaultGrace.
	Interval, Grace time.Duration
	// Now stands in for the clock in tests; nil is time.Now.
	Now func() time.Time

	// last is the last valid key seen: a Secret deleted and recreated keeps it
	// as PreviousDataKey, so the new key rolls in as in a rotation.
	last []byte
	// reported is the last Broken or Pending state logged, so each is logged
	// once per change.
	reported string
}

// Run keeps the Secret until ctx ends. API errors are logged and retried at the
// next interval: the speakers keep their keys meanwhile.
func (k *Keeper) Run(ctx context.Context) error {
	interval := k.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	for {
		wait := interval
		next, err := k.Reconcile(ctx)
		if err != nil {
			k.Log.Error(err, "Keeping the memberlist key Secret; retrying", "in", interval.String())
		} else if !next.IsZero() && time.Until(next) < wait {
			wait = max(time.Until(next), 10*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Reconcile reads the Secret and makes one change; it returns when to look
// again at the latest (zero: at the next interval).
func (k *Keeper) Reconcile(ctx context.Context) (time.Time, error) {
	now := time.Now()
	if k.Now != nil {
		now = k.Now()
	}
	grace := k.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	s, err := k.Secrets.Get(ctx, k.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		s = nil
	case err != nil:
		return time.Time{}, fmt.Errorf("reading secret %s/%s: %w", k.Namespace, k.Name, err)
	}
	o := observe(s)
	d := Decide(o, now, grace)
	if s != nil && o.PrimaryErr == nil {
		k.last = s.Data[DataKey]
	}
	k.report(s, o, d)
	switch d.Change {
	case Keep, Broken:
		return d.Recheck, nil
	case Create:
		return time.Time{}, k.create(ctx, now)
	}
	s = s.DeepCopy()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	var reason, msg string
	switch d.Change {
	case Rotate:
		key, err := newKey()
		if err != nil {
			return time.Time{}, err
		}
		s.Data[PreviousDataKey] = s.Data[DataKey]
		s.Data[DataKey] = key
		s.Annotations[AnnotationRotated] = o.RotateAsked
		s.Annotations[AnnotationRotatedAt] = now.UTC().Format(time.RFC3339)
		reason, msg = "MemberlistKeyRotated", fmt.Sprintf("New memberlist key (asked: %s=%q); speakers roll it in, the previous key stays in the Secret for %v", AnnotationRotate, o.RotateAsked, grace)
	case StartGrace:
		s.Annotations[AnnotationRotatedAt] = now.UTC().Format(time.RFC3339)
		reason, msg = "MemberlistKeyRotated", fmt.Sprintf("The Secret holds a previous memberlist key; it stays for %v", grace)
	case DropPrevious:
		delete(s.Data, PreviousDataKey)
		reason, msg = "PreviousMemberlistKeyDropped", "The previous memberlist key is dropped from the Secret; speakers dropped it from memberlist once no member encrypted with it"
	}
	// Update carries the resourceVersion read: an edit in between makes it
	// fail, and the next pass decides again from the edit.
	updated, err := k.Secrets.Update(ctx, s, metav1.UpdateOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("updating secret %s/%s (%s): %w", k.Namespace, k.Name, d.Change, err)
	}
	k.Log.Info(msg, "secret", k.Namespace+"/"+k.Name, "change", d.Change.String())
	k.event(updated, corev1.EventTypeNormal, reason, msg)
	if d.Change == Rotate {
		k.last = updated.Data[DataKey]
	}
	return time.Time{}, nil
}

func (k *Keeper) create(ctx context.Context, now time.Time) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name, Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{DataKey: key},
	}
	msg := "Created the memberlist encryption key"
	if k.last != nil {
		// Running speakers still encrypt with the last key: keeping it as
		// the previous one makes the recreation a rotation, and a speaker
		// that starts meanwhile reads both.
		s.Data[PreviousDataKey] = k.last
		s.Annotations = map[string]string{AnnotationRotatedAt: now.UTC().Format(time.RFC3339)}
		msg = "Recreated the deleted memberlist key Secret with a new key; speakers roll it in as in a rotation"
	}
	created, err := k.Secrets.Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // another replica or the user was first; the next pass reads it
	}
	if err != nil {
		return fmt.Errorf("creating secret %s/%s: %w", k.Namespace, k.Name, err)
	}
	k.last = key
	k.Log.Info(msg, "secret", k.Namespace+"/"+k.Name)
	k.event(created, corev1.EventTypeNormal, "MemberlistKeyCreated", msg)
	return nil
}

// report logs (and records as an Event) a Broken Secret or a rotation that
// waits, once per change.
func (k *Keeper) report(s *corev1.Secret, o Observed, d Decision) {
	var what string
	switch {
	case d.Change == Broken:
		what = o.PrimaryErr.Error()
	case d.Pending:
		what = fmt.Sprintf("rotation %q waits until the previous key is dropped from the Secret", o.RotateAsked)
	}
	if what == k.reported {
		return
	}
	k.reported = what
	if what == "" {
		return
	}
	if d.Change == Broken {
		k.Log.Error(nil, "The memberlist key Secret is unusable; speakers cannot start (fix or delete it)", "secret", k.Namespace+"/"+k.Name, "problem", what)
		k.event(s, corev1.EventTypeWarning, "InvalidMemberlistKey", what)
		return
	}
	k.Log.Info("A memberlist key rotation waits for the one under way", "secret", k.Namespace+"/"+k.Name, "until", d.Recheck)
	k.event(s, corev1.EventTypeNormal, "MemberlistKeyRotationPending", what)
}

func (k *Keeper) event(s *corev1.Secret, typ, reason, msg string) {
	if k.Recorder != nil && s != nil {
		k.Recorder.Event(s, typ, reason, msg)
	}
}
