package allocator

import (
	"slices"
	"strings"
	"testing"
)

// TestQuarantineUntilShown pins issue 9: an address a Service gives up is handed to
// no other Service until its status no longer shows it.
func TestQuarantineUntilShown(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("a", "10.0.0.0/31"))
	a.SetPool(manual(autoPool("b", "10.0.1.0/31")))
	mustAssign := func(req Request, want string) {
		t.Helper()
		got, err := a.Assign(req)
		if err != nil || !slices.Equal(got.IPs, addrs(want)) {
			t.Fatalf("Assign(%s) = %v, %v; want [%s]", req.Key, got.IPs, err, want)
		}
	}
	mustAssign(Request{Key: "s1"}, "10.0.0.0")
	mustAssign(Request{Key: "s2"}, "10.0.0.1")
	a.Shown("s1", addrs("10.0.0.0"))

	// s1 moves to pool b: 10.0.0.0 is quarantined, the pool looks full.
	mustAssign(Request{Key: "s1", Pool: "b"}, "10.0.1.0")
	if got := a.QuarantinedBy("s1"); !slices.Equal(got, addrs("10.0.0.0")) {
		t.Errorf("QuarantinedBy(s1) = %v; want [10.0.0.0]", got)
	}
	if n := a.QuarantinedCount(); n != 1 {
		t.Errorf("QuarantinedCount() = %d; want 1", n)
	}
	if st, _ := a.PoolStats("a"); st[IPv4].Used != 2 {
		t.Errorf("pool a used = %d; want 2 (a quarantined address is not free)", st[IPv4].Used)
	}
	if _, err := a.Assign(Request{Key: "s3"}); ReasonOf(err) != ReasonPoolExhausted || !strings.Contains(err.Error(), "addresses other Services gave up become free") {
		t.Errorf("Assign(s3) while 10.0.0.0 is quarantined: %v; want PoolExhausted saying one address waits", err)
	}
	_, err := a.Assign(Request{Key: "s4", IPs: addrs("10.0.0.0")})
	if ReasonOf(err) != ReasonRequestedIPInUse || !contains(err.Error(), "Service s1, whose status still shows it") {
		t.Errorf("Assign(s4) requesting the quarantined address: %v; want RequestedIPInUse naming s1", err)
	}
	if err := a.Restore(Request{Key: "s4"}, addrs("10.0.0.0")); ReasonOf(err) != ReasonRequestedIPInUse {
		t.Errorf("Restore(s4) of the quarantined address: %v; want RequestedIPInUse", err)
	}

	// A failed write changes nothing; a write that still shows it neither.
	if freed := a.Shown("s1", addrs("10.0.0.0", "10.0.1.0")); freed != nil {
		t.Errorf("Shown(s1) with the address still shown freed %v", freed)
	}
	r := a.Releases()
	if freed := a.Shown("s1", addrs("10.0.1.0")); !slices.Equal(freed, addrs("10.0.0.0")) {
		t.Errorf("Shown(s1) = %v; want [10.0.0.0] freed", freed)
	}
	if a.Releases() == r {
		t.Error("ending a quarantine did not count as a release")
	}
	if a.QuarantinedCount() != 0 || len(a.QuarantinedBy("s1")) != 0 {
		t.Errorf("quarantine left: %d, %v", a.QuarantinedCount(), a.QuarantinedBy("s1"))
	}
	mustAssign(Request{Key: "s3"}, "10.0.0.0")
}

// TestQuarantineTakenBack: the Service that gave an address up may take it back
// (only its own status shows it), by request or by moving back.
func TestQuarantineTakenBack(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("a", "10.0.0.0/30"))
	if _, err := a.Assign(Request{Key: "s1", IPs: addrs("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	if !a.Release("s1") {
		t.Fatal("Release(s1) = false")
	}
	got, err := a.Assign(Request{Key: "s1", IPs: addrs("10.0.0.2")})
	if err != nil || !slices.Equal(got.IPs, addrs("10.0.0.2")) {
		t.Fatalf("Assign(s1) taking back its own address: %v, %v", got.IPs, err)
	}
	if q := a.QuarantinedBy("s1"); len(q) != 0 || a.QuarantinedCount() != 0 {
		t.Errorf("still quarantined after being taken back: %v", q)
	}
	if freed := a.Shown("s1", nil); len(freed) != 0 {
		t.Errorf("Shown(s1, nil) freed %v, which s1 holds", freed)
	}
}

// TestQuarantineSharers: sharers leaving one by one each keep the address
// quarantined until their own status is written.
func TestQuarantineSharers(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("a", "10.0.0.0/32"))
	for _, r := range []Request{{Key: "s1", SharingKey: "k", Ports: []Port{tcp(80)}}, {Key: "s2", SharingKey: "k", Ports: []Port{tcp(443)}}} {
		if _, err := a.Assign(r); err != nil {
			t.Fatal(err)
		}
	}
	a.Release("s1")
	a.Release("s2")
	if got := a.Shown("s2", nil); got != nil {
		t.Errorf("Shown(s2) freed %v while s1's status may still show it", got)
	}
	if _, err := a.Assign(Request{Key: "s3"}); err == nil {
		t.Error("Assign(s3) got the address s1 still shows")
	}
	if got := a.Shown("s1", nil); !slices.Equal(got, addrs("10.0.0.0")) {
		t.Errorf("Shown(s1) = %v; want [10.0.0.0]", got)
	}
}

// TestQuarantineAtRebuild: after a restart, statuses that could not be restored
// (a Service being deleted, the loser of two claims) keep their addresses from
// anyone else; a pool created afterwards does not list them as free.
func TestQuarantineAtRebuild(t *testing.T) {
	a := New(RetainOrphans)
	a.SetPool(autoPool("a", "10.0.0.0/31"))
	if err := a.Restore(Request{Key: "old"}, addrs("10.0.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(Request{Key: "young"}, addrs("10.0.0.0")); ReasonOf(err) != ReasonRequestedIPInUse {
		t.Fatalf("Restore(young) of old's address: %v; want RequestedIPInUse", err)
	}
	a.Quarantine("young", addrs("10.0.0.0"))
	a.Quarantine("deleting", addrs("10.0.0.1", "10.0.5.5"))
	if n := a.QuarantinedCount(); n != 2 {
		t.Errorf("QuarantinedCount() = %d; want 2 (10.0.0.0 is held)", n)
	}
	a.SetPool(autoPool("a", "10.0.0.0/30"))
	a.SetPool(autoPool("z", "10.0.5.0/29"))
	if st, _ := a.PoolStats("a"); st[IPv4].Used != 2 {
		t.Errorf("pool a used = %d; want 2", st[IPv4].Used)
	}
	got, err := a.Assign(Request{Key: "new"})
	if err != nil || !slices.Equal(got.IPs, addrs("10.0.0.2")) {
		t.Errorf("Assign(new) = %v, %v; want 10.0.0.2", got.IPs, err)
	}
	a.Release("old")
	if freed := a.Shown("old", nil); freed != nil {
		t.Errorf("Shown(old) freed %v though young's status still shows it", freed)
	}
	if freed := a.Shown("young", addrs("10.0.0.3")); !slices.Equal(freed, addrs("10.0.0.0")) {
		t.Errorf("Shown(young) = %v; want [10.0.0.0]", freed)
	}
	if freed := a.Shown("deleting", nil); !slices.Equal(freed, addrs("10.0.0.1", "10.0.5.5")) {
		t.Errorf("Shown(deleting) = %v; want both", freed)
	}
	if st, _ := a.PoolStats("z"); st[IPv4].Used != 0 {
		t.Errorf("pool z used = %d; want 0", st[IPv4].Used)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
