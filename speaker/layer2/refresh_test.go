package layer2

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// refreshAnnouncer returns an Announcer over n with no takeover announcements
// (so every frame is a refresh) and the refresh at interval, unjittered: the
// first refresh half an interval after the takeover, then one per interval.
func refreshAnnouncer(t *testing.T, n *fakeNet, interval time.Duration) *Announcer {
	t.Helper()
	a := n.announcerWith(t, Config{GratuitousSchedule: []time.Duration{}, RefreshInterval: interval})
	a.random = func() float64 { return 0.5 }
	return a
}

// arpRounds returns the send times of the gratuitous ARP rounds for addr among
// frames, checking that each round is an announcement and its reply form.
func arpRounds(t *testing.T, frames []sentFrame, addr netip.Addr) []time.Time {
	t.Helper()
	var rounds []time.Time
	for i, s := range frames {
		f, p := parseARP(t, s.frame)
		if p.SenderIP != addr {
			continue
		}
		if p.TargetIP != addr || !bytes.Equal(p.SenderHardwareAddr, f.Source) || !bytes.Equal(f.Destination, broadcastMAC) {
			t.Errorf("frame %d = %+v; want a broadcast gratuitous ARP for %v", i, p, addr)
		}
		if p.Operation == arp.OperationRequest {
			rounds = append(rounds, s.at)
		}
	}
	return rounds
}

// checkSpacing checks that rounds come about interval apart: never sooner than
// 80% of it (the timer never fires early; that margin is for the clock reads),
// and on average no later than twice it.
func checkSpacing(t *testing.T, what string, rounds []time.Time, interval time.Duration) {
	t.Helper()
	for i := 1; i < len(rounds); i++ {
		if gap := rounds[i].Sub(rounds[i-1]); gap < interval*8/10 {
			t.Errorf("%s: rounds %d and %d %v apart; want about %v", what, i-1, i, gap, interval)
		}
	}
	if n := len(rounds); n > 1 {
		if avg := rounds[n-1].Sub(rounds[0]) / time.Duration(n-1); avg > 2*interval {
			t.Errorf("%s: rounds on average %v apart; want about %v", what, avg, interval)
		}
	}
}

// TestAnnouncerRefresh: with a refresh interval, every announced address is
// announced again at that interval, in both families, and counted as refresh.
func TestAnnouncerRefresh(t *testing.T) {
	const interval = 60 * time.Millisecond
	n := newFakeNet("eth0")
	a := refreshAnnouncer(t, n, interval)
	start := time.Now()
	if err := a.Set(map[netip.Addr]string{vip4: "eth0", vip6: "eth0"}); err != nil {
		t.Fatal(err)
	}
	v4, v6 := n.conn("eth0/IPv4"), n.conn("eth0/IPv6")

	const rounds = 4
	got4 := arpRounds(t, v4.waitFrames(2*rounds, 5*time.Second), vip4)
	if len(got4) < rounds {
		t.Fatalf("IPv4 refresh rounds = %d; want ≥ %d", len(got4), rounds)
	}
	if first := got4[0].Sub(start); first < interval/2*8/10 {
		t.Errorf("first refresh %v after the takeover; want about %v", first, interval/2)
	}
	checkSpacing(t, "IPv4", got4, interval)

	var got6 []time.Time
	for _, s := range v6.waitFrames(rounds, 5*time.Second) {
		f, h, m := parseNDP(t, s.frame)
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != vip6 || !na.Override || na.Solicited || h.dst != allNodes ||
			!bytes.Equal(linkLayerOption(na.Options, ndp.Target), f.Source) {
			t.Fatalf("IPv6 refresh = %+v to %v; want an unsolicited override NA for %v to all nodes", m, h.dst, vip6)
		}
		got6 = append(got6, s.at)
	}
	if len(got6) < rounds {
		t.Fatalf("IPv6 refresh rounds = %d; want ≥ %d", len(got6), rounds)
	}
	checkSpacing(t, "IPv6", got6, interval)

	// All of it counted as refresh, none as takeover announcements. A frame is
	// counted just after the conn has it.
	s := a.Stats()
	for deadline := time.Now().Add(time.Second); s.RefreshSent < 3*rounds && time.Now().Before(deadline); s = a.Stats() {
		time.Sleep(time.Millisecond)
	}
	if s.RefreshSent < 3*rounds || s.GratuitousSent != 0 {
		t.Errorf("Stats = RefreshSent %d, GratuitousSent %d; want ≥ %d, 0", s.RefreshSent, s.GratuitousSent, 3*rounds)
	}
}

// TestAnnouncerRefreshStops: a withdrawn address is refreshed no more while the
// others on its socket go on; after Close nothing is sent.
func TestAnnouncerRefreshStops(t *testing.T) {
	const interval = 40 * time.Millisecond
	n := newFakeNet("eth0")
	a := refreshAnnouncer(t, n, interval)
	other := netip.MustParseAddr("10.77.0.101")
	if err := a.Set(map[netip.Addr]string{vip4: "eth0", other: "eth0"}); err != nil {
		t.Fatal(err)
	}
	c := n.conn("eth0/IPv4")
	if got := arpRounds(t, c.waitFrames(4, 5*time.Second), other); len(got) == 0 {
		t.Fatal("no refresh before the withdrawal")
	}

	if err := a.Set(map[netip.Addr]string{vip4: "eth0"}); err != nil {
		t.Fatal(err)
	}
	c.frames()
	time.Sleep(5 * interval)
	sent := c.frames()
	if got := arpRounds(t, sent, other); len(got) != 0 {
		t.Errorf("withdrawn %v refreshed %d times", other, len(got))
	}
	if got := arpRounds(t, sent, vip4); len(got) < 2 {
		t.Errorf("%v refreshed %d times in 5 intervals after another address was withdrawn; want ≥ 2", vip4, len(got))
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * interval)
	if got := len(c.frames()); got != 0 {
		t.Errorf("%d frames sent after Close", got)
	}
}

// TestAnnouncerRefreshDisabled: a zero interval (what callers get by default)
// sends nothing after the takeover announcements, and starts no goroutine.
func TestAnnouncerRefreshDisabled(t *testing.T) {
	n := newFakeNet("eth0")
	a := n.announcerWith(t, Config{GratuitousSchedule: []time.Duration{0}})
	if err := a.Set(map[netip.Addr]string{vip4: "eth0", vip6: "eth0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := len(n.conn("eth0/IPv4").frames()); got != 2 {
		t.Errorf("IPv4 frames = %d; want the takeover's 2 only", got)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refreshing || a.refreshQ.Len() != 0 {
		t.Errorf("refreshing = %v with %d queued; want no refresh", a.refreshing, a.refreshQ.Len())
	}
}

// TestRefreshSpread: 1,000 addresses taken in one Set fall due at uniformly
// spread times over the first interval, and even when all are due at once
// (a stopped process) one go refreshes no more than refreshBatch.
func TestRefreshSpread(t *testing.T) {
	const (
		addrs    = 1000
		interval = time.Hour // nothing falls due during the test
		buckets  = 10
	)
	n := newFakeNet("eth0")
	a := n.announcerWith(t, Config{GratuitousSchedule: []time.Duration{}, RefreshInterval: interval})
	want := make(map[netip.Addr]string, addrs)
	for i := range addrs {
		want[netip.AddrFrom4([4]byte{10, 78, byte(i >> 8), byte(i)})] = "eth0"
	}
	start := time.Now()
	if err := a.Set(want); err != nil {
		t.Fatal(err)
	}
	end := time.Now()

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refreshQ.Len() != addrs {
		t.Fatalf("queued refreshes = %d; want %d", a.refreshQ.Len(), addrs)
	}
	var count [buckets]int
	for _, it := range a.refreshQ {
		if it.due.Before(start) || it.due.After(end.Add(interval)) {
			t.Fatalf("refresh of %v due %v after the takeover; want within one interval", it.addr, it.due.Sub(start))
		}
		count[min(int(it.due.Sub(start)*buckets/interval), buckets-1)]++
	}
	// 100 expected per bucket; the standard deviation is about 9.5.
	for i, c := range count {
		if c < 50 || c > 150 {
			t.Errorf("bucket %d of the interval holds %d first refreshes; want about %d (all: %v)", i, c, addrs/buckets, count)
		}
	}

	tasks, next := a.dueRefreshesLocked(end.Add(2 * interval))
	if len(tasks) != refreshBatch || next.IsZero() {
		t.Errorf("one go with everything due refreshed %d (next %v); want %d and more to come", len(tasks), next, refreshBatch)
	}
	// Their next refreshes are a jittered interval away, the rest still queued.
	if a.refreshQ.Len() != addrs {
		t.Errorf("queued refreshes = %d after a go; want %d", a.refreshQ.Len(), addrs)
	}
}

// TestRefreshJitter: the interval between refreshes stays within the jitter.
func TestRefreshJitter(t *testing.T) {
	n := newFakeNet("eth0")
	a := n.announcerWith(t, Config{RefreshInterval: time.Minute})
	ann := &announcement{}
	now := time.Now()
	for _, r := range []float64{0, 0.25, 0.5, 0.999} {
		a.random = func() float64 { return r }
		a.mu.Lock()
		a.scheduleRefreshLocked(vip4, ann, now, false)
		a.mu.Unlock()
		if d := ann.due.Sub(now); d < 54*time.Second || d > 66*time.Second {
			t.Errorf("random %v: next refresh in %v; want 60 s ± 10%%", r, d)
		}
	}
}

// TestDefaultRefreshInterval pins the value the speaker's flag defaults to: under
// the common 300 s switch MAC ageing with room for lost frames.
func TestDefaultRefreshInterval(t *testing.T) {
	if DefaultRefreshInterval != time.Minute {
		t.Errorf("DefaultRefreshInterval = %v; want 1m", DefaultRefreshInterval)
	}
}

// TestAnnouncerReannounce sends one round now for an announced address, and
// refuses others.
func TestAnnouncerReannounce(t *testing.T) {
	n := newFakeNet("eth0")
	a := n.announcer(t)
	if err := a.Set(map[netip.Addr]string{vip4: "eth0"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Reannounce(vip4); err != nil {
		t.Fatalf("Reannounce: %v", err)
	}
	if got := arpRounds(t, n.conn("eth0/IPv4").frames(), vip4); len(got) != 1 {
		t.Errorf("Reannounce sent %d rounds; want 1", len(got))
	}
	if s := a.Stats(); s.GratuitousSent != 2 {
		t.Errorf("GratuitousSent = %d; want 2", s.GratuitousSent)
	}
	if err := a.Reannounce(vip6); err == nil {
		t.Error("Reannounce of an address not announced succeeded")
	}
}
