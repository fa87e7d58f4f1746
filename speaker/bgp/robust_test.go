package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/heraldlb/herald/internal/testpoll"
)

// announce makes the router send n /32 prefixes from 100.64.0.0 on.
func (r *router) announce(t testing.TB, n int) {
	t.Helper()
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeNextHop("192.0.2.254"),
	}
	for i := range n {
		a := netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		p, err := apiutil.NewPath(bgp.NewIPAddrPrefix(32, a.String()), false, attrs, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.srv.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			t.Fatalf("router AddPath: %v", err)
		}
	}
}

// vrfPaths counts the paths in the speaker's VRF for peer name: ours only.
func vrfPaths(t testing.TB, s *Speaker, name string) int {
	t.Helper()
	s.setMu.Lock()
	p := s.peers[name]
	in, vrf := p.inst, p.vrf
	s.setMu.Unlock()
	n := 0
	for _, f := range families {
		err := in.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_VRF, Name: vrf, Family: f}, func(d *api.Destination) {
			n += len(d.Paths)
		})
		if err != nil {
			t.Fatalf("ListPath: %v", err)
		}
	}
	return n
}

// A router that sends many routes reaches none of the speaker's tables, and its
// own announcements go on.
func TestReceivedRoutesRejected(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	r.announce(t, 1000)
	s := newSpeaker(t, Config{})
	own := Route{Prefix: netip.MustParsePrefix("10.8.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")}
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}, Routes: map[string][]Route{"r": {own}}})
	waitState(t, s, "r", StateEstablished, 5*time.Second)
	testpoll.Until(t, 10*time.Second, "1000 prefixes received", func() (bool, string) {
		st := statusOf(s, "r")
		return st.PrefixesReceived == 1000, fmt.Sprintf("%+v", st)
	})
	if n := vrfPaths(t, s, "r"); n != 1 {
		t.Errorf("the speaker's VRF holds %d paths, want 1 (its own)", n)
	}
	// Received paths land in the global RIB as VPN paths of the peer's VRF.
	global := 0
	for _, f := range []*api.Family{
		{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_MPLS_VPN},
		{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_MPLS_VPN},
	} {
		err := s.dialer.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(d *api.Destination) {
			global += len(d.Paths)
		})
		if err != nil {
			t.Fatalf("ListPath: %v", err)
		}
	}
	if global != 1 {
		t.Errorf("the speaker's global RIB holds %d VPN paths, want 1 (its own)", global)
	}
	testpoll.Until(t, 5*time.Second, "own route at the router", func() (bool, string) {
		got, ok := r.rib()["10.8.0.1/32"]
		return ok && got.ASPath == "65000", fmt.Sprintf("%+v", got)
	})
}

// A listener that cannot bind is retried without leaving a gobgp server (and
// its goroutines) behind each time, and passive peers coming and going reuse
// one server.
func TestPassiveListenerNoLeak(t *testing.T) {
	old := passiveRetry
	passiveRetry = 0
	t.Cleanup(func() { passiveRetry = old })

	port := freePort(t, "127.0.0.1")
	held, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		t.Skipf("cannot hold port %d: %v", port, err)
	}
	s := newSpeaker(t, Config{ListenPort: int32(port)})
	p := Peer{Name: "p", Address: netip.MustParseAddr("127.0.0.5"), ASN: 65001, LocalASN: 65000, Passive: true}
	attempt := func() error { return s.Set(context.Background(), Desired{Peers: []Peer{p}}) }
	if err := attempt(); err == nil {
		t.Fatal("Set succeeded with the port taken")
	}
	settle := func() int {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()
	for range 20 {
		if err := attempt(); err == nil {
			t.Fatal("Set succeeded with the port taken")
		}
	}
	if after := settle(); after > before+2 {
		t.Errorf("20 failed listens: goroutines %d → %d", before, after)
	}
	held.Close()
	if err := attempt(); err != nil {
		t.Fatalf("Set with the port free: %v", err)
	}
	before = settle()
	for range 10 {
		set(t, s, Desired{})
		set(t, s, Desired{Peers: []Peer{p}})
	}
	if after := settle(); after > before+2 {
		t.Errorf("10 passive peers added and removed: goroutines %d → %d", before, after)
	}
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		t.Fatalf("not listening after the passive peer came back: %v", err)
	}
	c.Close()
}

// A password change leaves an established session up; the new password is used
// when it next connects.
func TestPasswordChangeKeepsSession(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	s := newSpeaker(t, Config{})
	p := r.peer("r", 65000)
	set(t, s, Desired{Peers: []Peer{p}})
	waitState(t, s, "r", StateEstablished, 5*time.Second)
	since := statusOf(s, "r").Since
	p.Password = "new"
	set(t, s, Desired{Peers: []Peer{p}})
	time.Sleep(2 * time.Second)
	st := statusOf(s, "r")
	if st.State != StateEstablished || !st.Since.Equal(since) {
		t.Fatalf("session reset by a password change: %+v", st)
	}
	if !st.PasswordPending {
		t.Errorf("PasswordPending not reported: %+v", st)
	}
	// Back to the old password: nothing pending any more.
	p.Password = ""
	set(t, s, Desired{Peers: []Peer{p}})
	if st := statusOf(s, "r"); st.PasswordPending || !st.Since.Equal(since) {
		t.Errorf("after reverting the password: %+v", st)
	}
}

// A router that sends more routes than the limit has its session closed with
// a message that says what to do, and is not dialled again at once.
func TestPrefixLimit(t *testing.T) {
	oldMax, oldRetry := maxReceivedPrefixes, prefixLimitRetry
	maxReceivedPrefixes, prefixLimitRetry = 100, 4*time.Second
	t.Cleanup(func() { maxReceivedPrefixes, prefixLimitRetry = oldMax, oldRetry })

	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	r.announce(t, 150)
	s := newSpeaker(t, Config{})
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}})
	testpoll.Until(t, 10*time.Second, "prefix limit reported", func() (bool, string) {
		st := statusOf(s, "r")
		return st.State != StateEstablished && strings.Contains(st.LastError, "more than 100 routes"), fmt.Sprintf("%+v", st)
	})
	down := time.Now()
	// Held down: a Set does not bring it back early.
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}})
	time.Sleep(2 * time.Second)
	if st := statusOf(s, "r"); st.State == StateEstablished {
		t.Fatalf("re-established %v after the prefix limit: %+v", time.Since(down), st)
	} else if !strings.Contains(st.LastError, "more than 100 routes") {
		t.Errorf("the reason is gone while held down: %+v", st)
	}
	// Then it tries again (and is closed again: the router still sends 150).
	testpoll.Until(t, 10*time.Second, "dialled again after the hold", func() (bool, string) {
		return r.state().GetMessages().GetReceived().GetNotification() >= 2, fmt.Sprintf("%+v", statusOf(s, "r"))
	})
	if d := time.Since(down); d < 3*time.Second {
		t.Errorf("dialled again after %v, want the 4 s hold", d)
	}
}

// gobgp reports state changes through its watcher queue, after the fact: the
// Established event of a session the router overran at once can reach the
// speaker after the prefix-limit NOTIFICATION was logged. That late event must
// not wipe the error (the session would then sit Idle without a reason, and be
// redialled instead of held down). This is the order TestPrefixLimit met on a
// loaded machine, replayed without timing.
func TestLateEstablishedEventKeepsError(t *testing.T) {
	oldMax := maxReceivedPrefixes
	maxReceivedPrefixes = 100
	t.Cleanup(func() { maxReceivedPrefixes = oldMax })

	s := newSpeaker(t, Config{ListenPort: int32(freePort(t, "127.0.0.1"))})
	const addr = "127.0.0.5"
	set(t, s, Desired{Peers: []Peer{{Name: "p", Address: netip.MustParseAddr(addr), ASN: 65001, LocalASN: 65000, Passive: true}}})
	event := func(st api.PeerState_SessionState) {
		s.onPeerEvent(&api.WatchEventResponse{Event: &api.WatchEventResponse_Peer{Peer: &api.WatchEventResponse_PeerEvent{
			Type: api.WatchEventResponse_PeerEvent_STATE,
			Peer: &api.Peer{State: &api.PeerState{NeighborAddress: addr, SessionState: st}},
		}}})
	}
	// The real server reports the passive peer Active through its own
	// watcher; wait for that, so its event cannot land between the replayed
	// ones below (CI saw it overwrite the replayed Established).
	testpoll.Until(t, 10*time.Second, "the passive peer Active", func() (bool, string) {
		st := statusOf(s, "p")
		return st.State == StateActive, fmt.Sprintf("%+v", st)
	})
	l := &gobgpLogger{s: s}
	// An error from before this session is cleared when it comes up ...
	s.setError(s.peers["p"], "hold timer expired")
	l.Debug("state changed", gobgplog.Fields{"Topic": "Peer", "Key": addr,
		"old": bgp.BGP_FSM_OPENCONFIRM.String(), "new": bgp.BGP_FSM_ESTABLISHED.String()})
	if st := statusOf(s, "p"); st.LastError != "" {
		t.Errorf("LastError after the session came up: %q", st.LastError)
	}
	// ... and what ends it is kept, however late the Established event is.
	l.Warn("sent notification", gobgplog.Fields{"Topic": "Peer", "Key": addr, "State": bgp.BGP_FSM_ESTABLISHED.String(),
		"Code": uint8(bgp.BGP_ERROR_CEASE), "Subcode": uint8(bgp.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED)})
	event(api.PeerState_ESTABLISHED)
	if st := statusOf(s, "p"); st.State != StateEstablished || !strings.Contains(st.LastError, "more than 100 routes") {
		t.Errorf("after a late Established event: %+v", st)
	}
	// So the Idle event that follows holds the session down rather than
	// redialling it.
	event(api.PeerState_IDLE)
	testpoll.Until(t, 5*time.Second, "held down", func() (bool, string) {
		s.setMu.Lock()
		defer s.setMu.Unlock()
		p := s.peers["p"]
		return !p.heldUntil.IsZero() && !p.configured, fmt.Sprintf("%+v", statusOf(s, "p"))
	})
	if st := statusOf(s, "p"); st.State != StateIdle || !strings.Contains(st.LastError, "more than 100 routes") {
		t.Errorf("held down: %+v", st)
	}
}

func heapMB() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// A router sending 50,000 routes costs the speaker what gobgp's Adj-RIB-In
// keeps of them (measured about 17 MB; no other table holds them) and does not
// stop its announcements.
func TestManyReceivedPrefixes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the router adds 50,000 paths")
	}
	const n = 50_000
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	r.announce(t, n)
	s := newSpeaker(t, Config{})
	before := heapMB()
	own := Route{Prefix: netip.MustParsePrefix("10.8.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")}
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}, Routes: map[string][]Route{"r": {own}}})
	waitState(t, s, "r", StateEstablished, 5*time.Second)
	testpoll.Until(t, 60*time.Second, "all prefixes received", func() (bool, string) {
		st := statusOf(s, "r")
		return st.PrefixesReceived == n, fmt.Sprint(st.PrefixesReceived)
	})
	grew := heapMB() - before
	t.Logf("heap grew %.1f MB for %d received prefixes (%.0f bytes each)", grew, n, grew*(1<<20)/n)
	if grew > 30 {
		t.Errorf("heap grew %.1f MB for %d received prefixes, want under 30 MB", grew, n)
	}
	if st := statusOf(s, "r"); st.State != StateEstablished || st.PrefixesSent != 1 {
		t.Errorf("own announcement: %+v", st)
	}
	if n := vrfPaths(t, s, "r"); n != 1 {
		t.Errorf("the speaker's VRF holds %d paths, want 1 (its own)", n)
	}
	testpoll.Until(t, 5*time.Second, "own route at the router", func() (bool, string) {
		got, ok := r.rib()["10.8.0.1/32"]
		return ok && got.ASPath == "65000", fmt.Sprintf("%+v", got)
	})
}
