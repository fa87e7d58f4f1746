package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"golang.org/x/sys/unix"

	"github.com/heraldlb/herald/internal/testpoll"
)

// router is a second gobgp playing the upstream router.
type router struct {
	t        testing.TB
	srv      *server.BgpServer
	addr     string
	port     int
	asn      uint32
	neighbor *api.Peer
}

func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newRouter starts a router on addr that waits for our speaker (dialling
// from speakerAddr with AS speakerASN).
func newRouter(t testing.TB, addr string, asn uint32, speakerAddr string, speakerASN uint32, password string) *router {
	t.Helper()
	r := &router{t: t, addr: addr, port: freePort(t, addr), asn: asn}
	r.neighbor = &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: speakerAddr, PeerAsn: speakerASN, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: families[0], Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: families[1], Enabled: true}},
		},
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *router) start() {
	r.t.Helper()
	r.srv = server.NewBgpServer(server.LoggerOption(quiet{}))
	go r.srv.Serve()
	err := r.srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: r.asn, RouterId: "192.0.2.254", ListenPort: int32(r.port), ListenAddresses: []string{r.addr},
	}})
	if err != nil {
		r.t.Fatalf("starting router: %v", err)
	}
	if err := r.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: r.neighbor}); err != nil {
		r.t.Fatalf("router AddPeer: %v", err)
	}
}

func (r *router) stop() { r.srv.StopBgp(context.Background(), &api.StopBgpRequest{}) }

type quiet struct{}

func (quiet) Panic(string, gobgplog.Fields) {}
func (quiet) Fatal(string, gobgplog.Fields) {}
func (quiet) Error(string, gobgplog.Fields) {}
func (quiet) Warn(string, gobgplog.Fields)  {}
func (quiet) Info(string, gobgplog.Fields)  {}
func (quiet) Debug(string, gobgplog.Fields) {}
func (quiet) SetLevel(gobgplog.LogLevel)    {}
func (quiet) GetLevel() gobgplog.LogLevel   { return gobgplog.InfoLevel }

type seen struct {
	NextHop   string
	Origin    uint8
	ASPath    string
	Comms     []uint32
	Large     []string
	LocalPref uint32
}

// rib is what the router has learnt, by prefix.
func (r *router) rib() map[string]seen {
	r.t.Helper()
	out := map[string]seen{}
	for _, f := range families {
		err := r.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(d *api.Destination) {
			for _, p := range d.Paths {
				attrs, err := apiutil.GetNativePathAttributes(p)
				if err != nil {
					r.t.Errorf("decoding path: %v", err)
					return
				}
				var s seen
				for _, a := range attrs {
					switch a := a.(type) {
					case *bgp.PathAttributeNextHop:
						s.NextHop = a.Value.String()
					case *bgp.PathAttributeMpReachNLRI:
						s.NextHop = a.Nexthop.String()
					case *bgp.PathAttributeOrigin:
						s.Origin = a.Value
					case *bgp.PathAttributeAsPath:
						var as []string
						for _, seg := range a.Value {
							for _, n := range seg.GetAS() {
								as = append(as, fmt.Sprint(n))
							}
						}
						s.ASPath = strings.Join(as, " ")
					case *bgp.PathAttributeCommunities:
						if len(a.Value) > 0 {
							s.Comms = a.Value
						}
					case *bgp.PathAttributeLargeCommunities:
						for _, c := range a.Values {
							s.Large = append(s.Large, c.String())
						}
					case *bgp.PathAttributeLocalPref:
						s.LocalPref = a.Value
					}
				}
				out[d.Prefix] = s
			}
		})
		if err != nil {
			r.t.Fatalf("ListPath: %v", err)
		}
	}
	return out
}

func (r *router) state() *api.PeerState {
	var st *api.PeerState
	r.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) { st = p.State })
	return st
}

func (r *router) peer(name string, localASN uint32) Peer {
	return Peer{Name: name, Address: netip.MustParseAddr(r.addr), Port: uint16(r.port), ASN: r.asn, LocalASN: localASN}
}

func newSpeaker(t testing.TB, cfg Config) *Speaker {
	t.Helper()
	if !cfg.RouterID.IsValid() {
		cfg.RouterID = netip.MustParseAddr("192.0.2.1")
	}
	if cfg.Logger == nil && os.Getenv("BGP_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func statusOf(s *Speaker, name string) PeerStatus {
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	return PeerStatus{}
}

func waitState(t testing.TB, s *Speaker, name, state string, timeout time.Duration) {
	t.Helper()
	testpoll.Until(t, timeout, name+" "+state, func() (bool, string) {
		st := statusOf(s, name)
		return st.State == state, fmt.Sprintf("%+v", st)
	})
}

func waitRIB(t testing.TB, r *router, what string, want map[string]seen) {
	t.Helper()
	testpoll.Until(t, 5*time.Second, what, func() (bool, string) {
		got := r.rib()
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%+v", got)
	})
}

func set(t testing.TB, s *Speaker, d Desired) {
	t.Helper()
	if err := s.Set(context.Background(), d); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// One eBGP and one iBGP router: each gets only its own prefixes, with its
// own attributes; changes and withdrawals are incremental.
func TestPerPeerRoutes(t *testing.T) {
	ext := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	inr := newRouter(t, "127.0.0.2", 65000, "127.0.0.1", 65000, "")
	s := newSpeaker(t, Config{})

	a, b := ext.peer("ext", 65000), inr.peer("int", 65000)
	routesA := []Route{
		{Prefix: netip.MustParsePrefix("10.1.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1"),
			Communities: []uint32{65000<<16 | 100}, LargeCommunities: []LargeCommunity{{65000, 1, 2}}, LocalPref: 300},
		// IPv6 prefix with an IPv6 next hop over an IPv4 session.
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), NextHop: netip.MustParseAddr("2001:db8:ff::1")},
	}
	routesB := []Route{
		{Prefix: netip.MustParsePrefix("10.2.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1"), LocalPref: 200},
		{Prefix: netip.MustParsePrefix("10.2.0.2/32"), NextHop: netip.MustParseAddr("192.0.2.1")},
	}
	d := Desired{Peers: []Peer{a, b}, Routes: map[string][]Route{"ext": routesA, "int": routesB}}
	set(t, s, d)
	waitState(t, s, "ext", StateEstablished, 5*time.Second)
	waitState(t, s, "int", StateEstablished, 5*time.Second)

	waitRIB(t, ext, "eBGP router's routes", map[string]seen{
		// eBGP: next hop kept, our AS prepended, LOCAL_PREF stripped.
		"10.1.0.1/32":     {NextHop: "192.0.2.1", Origin: 0, ASPath: "65000", Comms: []uint32{65000<<16 | 100}, Large: []string{"65000:1:2"}},
		"2001:db8::1/128": {NextHop: "2001:db8:ff::1", Origin: 0, ASPath: "65000"},
	})
	waitRIB(t, inr, "iBGP router's routes", map[string]seen{
		"10.2.0.1/32": {NextHop: "192.0.2.1", LocalPref: 200},
		"10.2.0.2/32": {NextHop: "192.0.2.1", LocalPref: 100},
	})
	for _, name := range []string{"ext", "int"} {
		if st := statusOf(s, name); st.PrefixesSent != 2 {
			t.Errorf("%s PrefixesSent = %d, want 2", name, st.PrefixesSent)
		}
	}

	// The same state again touches nothing.
	before := statusOf(s, "ext")
	routerBefore := ext.state().Messages.Received.Update
	for range 5 {
		set(t, s, d)
	}
	time.Sleep(200 * time.Millisecond)
	after := statusOf(s, "ext")
	if after.Since != before.Since || after.UpdatesSent != before.UpdatesSent || after.State != StateEstablished {
		t.Errorf("unchanged Set disturbed the session: before %+v after %+v", before, after)
	}
	if got := ext.state().Messages.Received.Update; got != routerBefore {
		t.Errorf("router received %d more updates after unchanged Sets", got-routerBefore)
	}

	// Changed attributes are re-sent; a removed route is withdrawn; the
	// other peer is untouched.
	intBefore := statusOf(s, "int")
	changed := slices.Clone(routesA[:1])
	changed[0].Communities = []uint32{65000<<16 | 200}
	changed[0].LargeCommunities = nil
	d.Routes = map[string][]Route{"ext": changed, "int": routesB}
	set(t, s, d)
	waitRIB(t, ext, "changed and withdrawn routes", map[string]seen{
		"10.1.0.1/32": {NextHop: "192.0.2.1", ASPath: "65000", Comms: []uint32{65000<<16 | 200}},
	})
	if st := statusOf(s, "ext"); st.PrefixesSent != 1 || st.Since != before.Since {
		t.Errorf("after change: %+v, want 1 prefix and no reset", st)
	}
	if st := statusOf(s, "int"); st.Since != intBefore.Since || st.UpdatesSent != intBefore.UpdatesSent {
		t.Errorf("other peer disturbed: before %+v after %+v", intBefore, st)
	}

	// A changed peer config resets only that peer.
	// (gobgp as the router then refuses us for its 5 s idle hold, so we do
	// not wait for the new session.)
	d.Peers[0].HoldTime = 30 * time.Second
	set(t, s, d)
	if st := statusOf(s, "ext"); st.State == StateEstablished || !st.Since.After(before.Since) {
		t.Errorf("changed peer was not reset: %+v", st)
	}
	if st := statusOf(s, "int"); st.Since != intBefore.Since {
		t.Errorf("other peer reset by a change to ext: %+v", st)
	}

	// Removing a peer closes its session, so the router drops its routes.
	d.Peers = d.Peers[1:]
	set(t, s, d)
	waitRIB(t, ext, "removed peer's routes gone", map[string]seen{})
	if got := s.Status(); len(got) != 1 || got[0].Name != "int" {
		t.Errorf("Status after removal = %+v", got)
	}
}

func TestIPv6Session(t *testing.T) {
	r := newRouter(t, "::1", 65001, "::1", 65000, "")
	s := newSpeaker(t, Config{})
	set(t, s, Desired{Peers: []Peer{r.peer("v6", 65000)}, Routes: map[string][]Route{"v6": {
		{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), NextHop: netip.MustParseAddr("2001:db8::10")},
		{Prefix: netip.MustParsePrefix("10.3.0.0/24"), NextHop: netip.MustParseAddr("192.0.2.10")},
	}}})
	waitState(t, s, "v6", StateEstablished, 5*time.Second)
	waitRIB(t, r, "routes over IPv6", map[string]seen{
		"2001:db8:1::/64": {NextHop: "2001:db8::10", ASPath: "65000"},
		"10.3.0.0/24":     {NextHop: "192.0.2.10", ASPath: "65000"},
	})
}

func TestMD5(t *testing.T) {
	good := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "s3cret")
	bad := newRouter(t, "127.0.0.3", 65001, "127.0.0.1", 65000, "other")

	s := newSpeaker(t, Config{})
	pg, pb := good.peer("good", 65000), bad.peer("bad", 65000)
	pg.Password, pb.Password = "s3cret", "s3cret"
	set(t, s, Desired{Peers: []Peer{pg, pb}})
	if md5Listen(t) {
		waitState(t, s, "good", StateEstablished, 5*time.Second)
	} else {
		t.Log("this kernel refuses TCP_MD5SIG on listening sockets (ENOPROTOOPT), so the router cannot check signatures; only the wrong-password case is tested")
	}
	// The kernel drops SYNs with a wrong signature, so the dial times out.
	testpoll.Until(t, 6*time.Second, "an error for the wrong password", func() (bool, string) {
		st := statusOf(s, "bad")
		return st.State != StateEstablished && st.LastError != "", fmt.Sprintf("%+v", st)
	})
	if st := statusOf(s, "bad"); st.State == StateEstablished {
		t.Errorf("wrong password established: %+v", st)
	}
	t.Logf("wrong password: %+v", statusOf(s, "bad"))
}

// md5Listen says whether the kernel lets a listening socket hold a TCP MD5 key.
func md5Listen(t *testing.T) bool {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sc, _ := l.(*net.TCPListener).SyscallConn()
	var serr error
	sc.Control(func(fd uintptr) {
		k := unix.TCPMD5Sig{Keylen: 1}
		k.Addr.Family = unix.AF_INET
		copy(k.Addr.Data[2:], []byte{127, 0, 0, 1})
		serr = unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &k)
	})
	return serr == nil
}

// When the router goes away and comes back, we redial within about a second
// instead of gobgp's 5 s idle hold plus 1-2 s.
func TestReconnect(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	s := newSpeaker(t, Config{})
	route := Route{Prefix: netip.MustParsePrefix("10.4.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")}
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}, Routes: map[string][]Route{"r": {route}}})
	waitState(t, s, "r", StateEstablished, 5*time.Second)

	r.stop()
	testpoll.Until(t, 2*time.Second, "session down", func() (bool, string) {
		st := statusOf(s, "r")
		return st.State != StateEstablished, fmt.Sprintf("%+v", st)
	})
	if st := statusOf(s, "r"); !strings.Contains(st.LastError, "NOTIFICATION") {
		t.Errorf("LastError after router shutdown = %q", st.LastError)
	}
	r.start()
	start := time.Now()
	waitState(t, s, "r", StateEstablished, 3*time.Second)
	t.Logf("re-established %v after the router came back", time.Since(start))
	waitRIB(t, r, "route re-sent", map[string]seen{"10.4.0.1/32": {NextHop: "192.0.2.1", ASPath: "65000"}})
}

// Close withdraws the routes before it closes the session: the router counts
// the withdrawn prefixes it received, then the Cease.
func TestCloseWithdrawsFirst(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	s, err := New(context.Background(), Config{RouterID: netip.MustParseAddr("192.0.2.1")})
	if err != nil {
		t.Fatal(err)
	}
	var routes []Route
	for i := range 50 {
		routes = append(routes, Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 5, 0, byte(i)}), 32), NextHop: netip.MustParseAddr("192.0.2.1")})
	}
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}, Routes: map[string][]Route{"r": routes}})
	testpoll.Until(t, 5*time.Second, "50 routes at the router", func() (bool, string) {
		n := len(r.rib())
		return n == 50, fmt.Sprint(n)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(r.rib()); n != 0 {
		t.Errorf("router still has %d routes", n)
	}
	st := r.state()
	if got := st.Messages.Received.WithdrawPrefix; got != 50 {
		t.Errorf("router received %d withdrawn prefixes before the session closed, want 50", got)
	}
	if st.Messages.Received.Notification != 1 {
		t.Errorf("router received %d notifications, want 1 (Cease)", st.Messages.Received.Notification)
	}
	if err := s.Set(context.Background(), Desired{}); err == nil {
		t.Error("Set after Close succeeded")
	}
}

// A peer with nothing listening neither blocks Set nor the other peers, and
// says why it is not up.
func TestRefusedPeer(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	s := newSpeaker(t, Config{})
	dead := Peer{Name: "dead", Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(freePort(t, "127.0.0.4")), ASN: 65009, LocalASN: 65000}
	dead.Address = netip.MustParseAddr("127.0.0.4")
	start := time.Now()
	set(t, s, Desired{Peers: []Peer{dead, r.peer("r", 65000)}, Routes: map[string][]Route{
		"dead": {{Prefix: netip.MustParsePrefix("10.6.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")}},
		"r":    {{Prefix: netip.MustParsePrefix("10.6.0.2/32"), NextHop: netip.MustParseAddr("192.0.2.1")}},
	}})
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Set took %v", d)
	}
	waitState(t, s, "r", StateEstablished, 5*time.Second)
	testpoll.Until(t, 5*time.Second, "connection refused reported", func() (bool, string) {
		st := statusOf(s, "dead")
		return strings.Contains(st.LastError, "connection refused"), fmt.Sprintf("%+v", st)
	})
	if st := statusOf(s, "dead"); st.PrefixesSent != 0 {
		t.Errorf("PrefixesSent to a down peer = %d", st.PrefixesSent)
	}
	waitRIB(t, r, "only r's route", map[string]seen{"10.6.0.2/32": {NextHop: "192.0.2.1", ASPath: "65000"}})
}

// A router that rejects our AS says so in LastError. (gobgp drops the code of
// a NOTIFICATION received in OpenConfirm, so only that one came is known.)
func TestBadPeerASReported(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65099, "")
	s := newSpeaker(t, Config{})
	set(t, s, Desired{Peers: []Peer{r.peer("r", 65000)}})
	testpoll.Until(t, 5*time.Second, "Bad Peer AS reported", func() (bool, string) {
		st := statusOf(s, "r")
		return strings.Contains(st.LastError, "NOTIFICATION"), fmt.Sprintf("%+v", st)
	})
}

// Only a passive peer makes us listen; it goes away with the peer.
func TestPassive(t *testing.T) {
	port := freePort(t, "127.0.0.1")
	s := newSpeaker(t, Config{ListenPort: int32(port)})
	listening := func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	set(t, s, Desired{})
	if listening() {
		t.Fatal("listening without passive peers")
	}

	// The router dials us.
	r := &router{t: t, addr: "127.0.0.5", port: freePort(t, "127.0.0.5"), asn: 65001}
	r.neighbor = &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: 65000},
		Transport: &api.Transport{RemotePort: uint32(port), LocalAddress: "127.0.0.5"},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
	}
	r.start()
	t.Cleanup(r.stop)
	p := Peer{Name: "p", Address: netip.MustParseAddr("127.0.0.5"), ASN: 65001, LocalASN: 65000, Passive: true}
	set(t, s, Desired{Peers: []Peer{p}, Routes: map[string][]Route{"p": {{Prefix: netip.MustParsePrefix("10.7.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")}}}})
	waitState(t, s, "p", StateEstablished, 8*time.Second)
	waitRIB(t, r, "route to passive peer", map[string]seen{"10.7.0.1/32": {NextHop: "192.0.2.1", ASPath: "65000"}})

	set(t, s, Desired{})
	if listening() {
		t.Error("still listening after the passive peer was removed")
	}
}

// Bad input is reported, never panics, and does not stop good input.
func TestBadInput(t *testing.T) {
	r := newRouter(t, "127.0.0.1", 65001, "127.0.0.1", 65000, "")
	s := newSpeaker(t, Config{})
	if _, err := New(context.Background(), Config{RouterID: netip.MustParseAddr("::1")}); err == nil {
		t.Error("New accepted an IPv6 router ID")
	}
	good := r.peer("good", 65000)
	err := s.Set(context.Background(), Desired{
		Peers: []Peer{
			good,
			{Name: "noaddr", ASN: 1, LocalASN: 2},
			{Name: "noasn", Address: netip.MustParseAddr("127.0.0.9")},
			{Name: "hold", Address: netip.MustParseAddr("127.0.0.9"), ASN: 1, LocalASN: 2, HoldTime: time.Second},
			{Name: "src", Address: netip.MustParseAddr("127.0.0.9"), ASN: 1, LocalASN: 2, SourceAddress: netip.MustParseAddr("::1")},
			{},
			good,
		},
		Routes: map[string][]Route{"good": {
			{Prefix: netip.MustParsePrefix("10.8.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")},
			{Prefix: netip.MustParsePrefix("10.8.0.2/32"), NextHop: netip.MustParseAddr("2001:db8::1")},
			{Prefix: netip.MustParsePrefix("10.8.0.3/32")},
			{NextHop: netip.MustParseAddr("192.0.2.1")},
			{Prefix: netip.MustParsePrefix("10.8.0.1/32"), NextHop: netip.MustParseAddr("192.0.2.1")},
		}},
	})
	if err == nil {
		t.Fatal("no error for bad input")
	}
	t.Logf("errors: %v", err)
	for _, want := range []string{"noaddr", "noasn", "hold", "src", "listed twice", "10.8.0.2/32", "10.8.0.3/32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q", want)
		}
	}
	waitState(t, s, "good", StateEstablished, 5*time.Second)
	waitRIB(t, r, "the good route", map[string]seen{"10.8.0.1/32": {NextHop: "192.0.2.1", ASPath: "65000"}})
	if st := statusOf(s, "hold"); st.LastError == "" {
		t.Errorf("invalid peer has no LastError: %+v", st)
	}
}

func benchState(n, peers int, r *router) Desired {
	d := Desired{Routes: map[string][]Route{}}
	for p := range peers {
		name := fmt.Sprintf("peer%d", p)
		pe := Peer{Name: name, Address: netip.AddrFrom4([4]byte{127, 0, 1, byte(p + 1)}), Port: 1, ASN: 65001, LocalASN: 65000, Passive: false}
		if r != nil && p == 0 {
			pe = r.peer(name, 65000)
		}
		d.Peers = append(d.Peers, pe)
		for i := range n {
			d.Routes[name] = append(d.Routes[name], Route{
				Prefix:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(p), byte(i >> 8), byte(i)}), 32),
				NextHop:     netip.MustParseAddr("192.0.2.1"),
				Communities: []uint32{65000<<16 | 1},
			})
		}
	}
	return d
}

func BenchmarkSetUnchanged(b *testing.B) {
	s := newSpeaker(b, Config{})
	d := benchState(1000, 3, nil)
	set(b, s, d)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Set(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetAdd1000(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s := newSpeaker(b, Config{})
		d := benchState(1000, 1, nil)
		b.StartTimer()
		if err := s.Set(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
}
