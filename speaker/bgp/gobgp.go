package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// globalASN is gobgp's server-wide AS. Every neighbor sets its own local AS,
// so this one only names the private VRF route distinguishers and targets,
// which never leave the process.
const globalASN = 64512

func (s *Speaker) newInstance() *instance {
	srv := server.NewBgpServer(server.LoggerOption(&gobgpLogger{s: s}))
	go srv.Serve()
	return &instance{srv: srv}
}

// startInstance starts a stopped gobgp server, listening on port (-1: not at
// all), with the import policy that keeps no received route.
func (s *Speaker) startInstance(ctx context.Context, in *instance, port int32) error {
	err := in.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        globalASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: port,
	}})
	if err != nil {
		return err
	}
	in.started = true
	if err := rejectReceived(ctx, in.srv); err != nil {
		s.stopInstance(ctx, in)
		return fmt.Errorf("setting the import policy: %w", err)
	}
	wctx, cancel := context.WithCancel(s.ctx)
	in.cancel = cancel
	err = in.srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
		s.onPeerEvent(r)
	})
	if err != nil {
		s.stopInstance(ctx, in)
		return fmt.Errorf("watching peer events: %w", err)
	}
	return nil
}

// rejectReceived makes the server keep only its own (local) routes: routers may
// send anything, up to a full Internet table, and herald needs none of it.
// gobgp applies the global import policy to local paths as well, hence the
// statement that accepts them.
func rejectReceived(ctx context.Context, srv *server.BgpServer) error {
	const name = "herald-local-only"
	err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name: name,
		Statements: []*api.Statement{{
			Name:       name + "-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}})
	if err != nil {
		return err
	}
	return srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global", // gobgp's name for the global RIB's assignment
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: name}},
		DefaultAction: api.RouteAction_REJECT,
	}})
}

// probeListen says whether gobgp could listen on port (it listens on 0.0.0.0
// and ::). A gobgp server whose start failed half way keeps the listener it
// did open, so it is only started when this says yes.
func probeListen(port int32) error {
	for _, a := range [][2]string{{"tcp4", "0.0.0.0"}, {"tcp6", "::"}} {
		l, err := net.Listen(a[0], net.JoinHostPort(a[1], strconv.Itoa(int(port))))
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

// stopInstance stops a gobgp server (closing its sessions and listeners) and
// forgets everything that lived on it. The server can be started again.
func (s *Speaker) stopInstance(ctx context.Context, in *instance) {
	if !in.started {
		return
	}
	if err := in.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.log.Warn("stopping gobgp", "error", err)
	}
	in.started = false
	if in.cancel != nil {
		in.cancel()
		in.cancel = nil
	}
	for _, p := range s.peers {
		if p.inst != in {
			continue
		}
		p.inst, p.vrf, p.configured = nil, "", false
		clear(p.routes)
		s.mu.Lock()
		if s.byAddr[p.cfg.Address.String()] == p {
			delete(s.byAddr, p.cfg.Address.String())
		}
		p.sent = 0
		s.setStateLocked(p, StateIdle)
		s.mu.Unlock()
	}
}

func (s *Speaker) onPeerEvent(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	addr := pe.GetPeer().GetState().GetNeighborAddress()
	state := stateName(pe.GetPeer().GetState().GetSessionState())
	s.mu.Lock()
	p := s.byAddr[addr]
	if p == nil {
		s.mu.Unlock()
		return
	}
	prev := p.state
	s.setStateLocked(p, state)
	s.mu.Unlock()
	if prev == state {
		return
	}
	s.log.Info("BGP session state changed", "peer", p.name, "address", addr, "from", prev, "to", state)
	s.changed()
	if state == StateIdle {
		// gobgp holds a neighbor in Idle for 5 s after a session fails, and
		// then waits 1-2 s more before dialling. Re-creating the neighbor
		// skips the Idle hold, so we redial about a second after the
		// failure (or ConnectRetry, if that is longer).
		go s.redial(p)
	}
}

// prefixLimitRetry spaces dials after we closed a session for sending too many
// routes: it would only send them again. A variable for tests.
var prefixLimitRetry = time.Minute

func (s *Speaker) redial(p *peer) {
	s.mu.Lock()
	limited := strings.Contains(p.lastErr, "routes of one family")
	s.mu.Unlock()
	if limited {
		s.holdDown(p)
		return
	}
	s.setMu.Lock()
	delay := p.cfg.ConnectRetry - time.Second
	s.setMu.Unlock()
	if delay > 0 {
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
	}

	s.setMu.Lock()
	defer s.setMu.Unlock()
	// A neighbor created less than a second ago has not dialled yet, so an
	// Idle event for it is stale (from the neighbor it replaced).
	if s.closed || s.peers[p.cfg.Name] != p || !p.configured || time.Since(p.added) < time.Second {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	idle := false
	_ = p.inst.srv.ListPeer(ctx, &api.ListPeerRequest{Address: p.cfg.Address.String()}, func(ap *api.Peer) {
		idle = ap.GetState().GetSessionState() == api.PeerState_IDLE && ap.GetState().GetAdminState() == api.PeerState_UP
	})
	if !idle {
		return
	}
	s.removeNeighbor(ctx, p)
	if err := s.addNeighbor(ctx, p); err != nil {
		s.setError(p, fmt.Sprintf("re-adding peer: %v", err))
	}
}

// holdDown keeps p's session down for prefixLimitRetry: gobgp would dial again
// after its idle hold, and the router would send the same routes again.
func (s *Speaker) holdDown(p *peer) {
	s.setMu.Lock()
	if s.closed || s.peers[p.cfg.Name] != p || !p.configured {
		s.setMu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	s.removeNeighbor(ctx, p)
	cancel()
	p.heldUntil = time.Now().Add(prefixLimitRetry)
	s.setMu.Unlock()

	select {
	case <-s.ctx.Done():
		return
	case <-time.After(prefixLimitRetry):
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	if s.closed || s.peers[p.cfg.Name] != p || p.configured || p.bad || p.vrf == "" {
		return
	}
	p.heldUntil = time.Time{}
	ctx, cancel = context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if err := s.addNeighbor(ctx, p); err != nil {
		s.setError(p, fmt.Sprintf("re-adding peer: %v", err))
	}
}

// setStateLocked records the session state gobgp's peer events report. It
// leaves lastErr alone: those events reach us through gobgp's watcher queue, so
// an Established event can arrive after the error that ended that very session
// was logged (a router that sends too many routes at once is shut down within
// milliseconds), and clearing lastErr here would lose that error — the session
// would sit Idle without a reason and redial instead of being held down. The
// logger clears lastErr instead, in step with gobgp's FSM (see gobgpLogger.log).
func (s *Speaker) setStateLocked(p *peer, state string) {
	if p.state != state {
		p.state, p.since = state, time.Now()
	}
}

func (s *Speaker) setError(p *peer, msg string) {
	s.mu.Lock()
	p.lastErr = msg
	s.mu.Unlock()
}

func stateName(st api.PeerState_SessionState) string {
	switch st {
	case api.PeerState_CONNECT:
		return StateConnect
	case api.PeerState_ACTIVE:
		return StateActive
	case api.PeerState_OPENSENT:
		return StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return StateIdle
}

// normalise fills in defaults and rejects what gobgp cannot do.
func normalise(p Peer) (Peer, error) {
	bad := func(format string, a ...any) (Peer, error) {
		return p, fmt.Errorf("peer %s: %s", p.Name, fmt.Sprintf(format, a...))
	}
	if p.Name == "" {
		return bad("empty name")
	}
	if !p.Address.IsValid() || p.Address.IsUnspecified() {
		return bad("invalid address %v", p.Address)
	}
	p.Address = p.Address.Unmap()
	if p.ASN == 0 || p.LocalASN == 0 {
		return bad("AS numbers must not be 0 (peer AS %d, local AS %d)", p.ASN, p.LocalASN)
	}
	if p.Port == 0 {
		p.Port = 179
	}
	if p.HoldTime == 0 {
		p.HoldTime = 90 * time.Second
	}
	// gobgp works in whole seconds.
	p.HoldTime = p.HoldTime.Round(time.Second)
	if p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second {
		return bad("hold time %v must be between 3s and 65535s", p.HoldTime)
	}
	if p.KeepaliveTime == 0 {
		p.KeepaliveTime = p.HoldTime / 3
	}
	p.KeepaliveTime = max(p.KeepaliveTime.Round(time.Second), time.Second)
	if p.KeepaliveTime > p.HoldTime {
		return bad("keepalive time %v is longer than the hold time %v", p.KeepaliveTime, p.HoldTime)
	}
	p.ConnectRetry = max(p.ConnectRetry.Round(time.Second), time.Second)
	if p.SourceAddress.IsValid() {
		p.SourceAddress = p.SourceAddress.Unmap()
		if p.SourceAddress.Is4() != p.Address.Is4() {
			return bad("source address %v and peer address %v are of different families", p.SourceAddress, p.Address)
		}
	}
	return p, nil
}

var families = []*api.Family{
	{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST},
	{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST},
}

// maxReceivedPrefixes is how many routes of one family a router may send before
// the session is closed (a variable for tests).
var maxReceivedPrefixes uint32 = 100_000

// apiPeer is gobgp's neighbor for p. restarting marks the process's first
// session with the peer (see the package comment on graceful restart).
func apiPeer(p Peer, vrf string, restarting bool) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.LocalASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
			Vrf:             vrf,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(p.ConnectRetry / time.Second),
			HoldTime:          uint64(p.HoldTime / time.Second),
			KeepaliveInterval: uint64(p.KeepaliveTime / time.Second),
			// gobgp does not implement MRAI; 0 says so explicitly.
			MinimumAdvertisementInterval: 0,
		}},
		Transport: &api.Transport{
			RemotePort:  uint32(p.Port),
			PassiveMode: p.Passive,
		},
	}
	if p.SourceAddress.IsValid() {
		ap.Transport.LocalAddress = p.SourceAddress.String()
	}
	if p.EBGPMultihopTTL > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.EBGPMultihopTTL)}
	}
	gr := p.GracefulRestart > 0
	if gr {
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled:     true,
			RestartTime: uint32(p.GracefulRestart / time.Second),
			// With the R and F bits set, gobgp holds our routes back until
			// the router's End-of-RIB or this many seconds (0 would mean
			// gobgp's default, 360 s).
			DeferralTime:    1,
			LocalRestarting: restarting,
		}
	}
	for _, f := range families {
		as := &api.AfiSafi{
			Config: &api.AfiSafiConfig{Family: f, Enabled: true},
			// gobgp keeps every received route in its Adj-RIB-In whatever
			// the import policy says (about 350 bytes each): a router
			// sending a full table would push the speaker past its memory
			// limit, and the OOM kill would stop layer 2 too.
			PrefixLimits: &api.PrefixLimit{Family: f, MaxPrefixes: maxReceivedPrefixes},
		}
		if gr {
			as.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		ap.AfiSafis = append(ap.AfiSafis, as)
	}
	return ap
}

// vrf describes the private VRF that holds one peer's routes.
func vrf(id uint32) (*api.Vrf, error) {
	rd, err := apiutil.MarshalRD(bgp.NewRouteDistinguisherTwoOctetAS(globalASN, id))
	if err != nil {
		return nil, err
	}
	rt, err := apiutil.MarshalRT(bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, globalASN, id, true))
	if err != nil {
		return nil, err
	}
	return &api.Vrf{
		Name:     fmt.Sprintf("peer-%d", id),
		Id:       id,
		Rd:       rd,
		ImportRt: []*anypb.Any{rt},
		ExportRt: []*anypb.Any{rt},
	}, nil
}

// apiPath builds the gobgp path for r. ORIGIN is IGP because routers only
// multipath between routes of the same origin, and all speakers agree.
func apiPath(r *Route) (*api.Path, error) {
	if !r.Prefix.IsValid() || r.Prefix.Addr().Is4In6() {
		return nil, fmt.Errorf("invalid prefix %v", r.Prefix)
	}
	pfx := r.Prefix.Masked()
	nh := r.NextHop.Unmap()
	if !nh.IsValid() || nh.IsUnspecified() || nh.Is4() != pfx.Addr().Is4() {
		return nil, fmt.Errorf("next hop %v is not an address of the prefix's family", r.NextHop)
	}
	var nlri bgp.AddrPrefixInterface
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if pfx.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nh.String()))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(pfx.Bits()), pfx.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nh.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(r.Communities)))
	}
	if len(r.LargeCommunities) > 0 {
		lc := make([]*bgp.LargeCommunity, len(r.LargeCommunities))
		for i, c := range r.LargeCommunities {
			lc[i] = bgp.NewLargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2)
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}
	if r.HasLocalPref || r.LocalPref > 0 {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.LocalPref))
	}
	return apiutil.NewPath(nlri, false, attrs, time.Now())
}

func sameRoute(a, b *Route) bool {
	return a.Prefix == b.Prefix && a.NextHop == b.NextHop && a.LocalPref == b.LocalPref && a.HasLocalPref == b.HasLocalPref &&
		slices.Equal(a.Communities, b.Communities) && slices.Equal(a.LargeCommunities, b.LargeCommunities)
}

func cloneRoute(r *Route) Route {
	c := *r
	c.Communities = slices.Clone(r.Communities)
	c.LargeCommunities = slices.Clone(r.LargeCommunities)
	return c
}

// gobgpLogger passes gobgp's log to slog and turns the messages that explain
// why a session is not up into the peer's LastError.
type gobgpLogger struct{ s *Speaker }

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) { l.log(slog.LevelError, msg, f) }
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) { l.log(slog.LevelError, msg, f) }
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) { l.log(slog.LevelError, msg, f) }
func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields)  { l.log(slog.LevelWarn, msg, f) }
func (l *gobgpLogger) Info(msg string, f gobgplog.Fields)  { l.log(slog.LevelDebug, msg, f) }

// Debug only matters for dial failures and why sessions fail before they are
// up, which gobgp logs at debug level.
func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) {
	if msg == "failed to connect" || msg == "state changed" {
		l.log(slog.LevelDebug, msg, f)
	}
}
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel) {}

// GetLevel claims debug so that gobgp reports dial failures at all.
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

func (l *gobgpLogger) log(level slog.Level, msg string, f gobgplog.Fields) {
	ctx := context.Background()
	if l.s.log.Enabled(ctx, level) {
		attrs := make([]slog.Attr, 0, len(f))
		for k, v := range f {
			attrs = append(attrs, slog.Any(k, v))
		}
		l.s.log.LogAttrs(ctx, level, "gobgp: "+msg, attrs...)
	}
	key, _ := f["Key"].(string)
	if key == "" {
		return
	}
	if msg == "state changed" && f["new"] == bgp.BGP_FSM_ESTABLISHED.String() {
		// gobgp logs this in its server loop as the session comes up, before
		// it handles anything the router sends on it: whatever goes wrong
		// with this session is logged after it, so clearing the last error
		// here cannot lose that.
		l.s.mu.Lock()
		if p := l.s.byAddr[key]; p != nil {
			p.lastErr = ""
		}
		l.s.mu.Unlock()
		return
	}
	text, closed := describe(msg, f)
	if text == "" {
		return
	}
	l.s.mu.Lock()
	// The connection closing after a NOTIFICATION says less than the
	// NOTIFICATION did: keep that until the session is up again.
	if p := l.s.byAddr[key]; p != nil && (!closed || !strings.Contains(p.lastErr, "NOTIFICATION")) {
		p.lastErr = text
	}
	l.s.mu.Unlock()
}

// describe turns a gobgp log message about a session into something an
// operator understands, or "" if it is not a problem. closed says the text is
// only that the connection went away.
func describe(msg string, f gobgplog.Fields) (text string, closed bool) {
	switch msg {
	case "state changed":
		// reason is gobgp's unexported fsmStateReason; its text is all we get.
		r, ok := f["reason"].(fmt.Stringer)
		if !ok || f["new"] != bgp.BGP_FSM_IDLE.String() {
			return "", false
		}
		reason := r.String()
		var code, sub uint8
		switch {
		case strings.HasPrefix(reason, "notification-received"):
			fmt.Sscanf(reason, "notification-received code %d", &code)
			if i := strings.Index(reason, "subcode "); i >= 0 {
				fmt.Sscanf(reason[i:], "subcode %d", &sub)
			}
			return "peer sent NOTIFICATION: " + notification(code, sub), false
		case reason == "invalid-msg" && f["old"] == bgp.BGP_FSM_OPENCONFIRM.String():
			// gobgp drops the NOTIFICATION it got here without its code.
			return "peer sent NOTIFICATION during the OPEN exchange (check AS numbers, router ID and capabilities on both sides)", false
		case reason == "hold-timer-expired":
			return "hold timer expired", false
		case reason == "read-failed":
			return "session closed: the connection was closed or reset", true
		case reason == "write-failed":
			return "session closed: sending to the peer failed", true
		}
		return "", false
	case "failed to connect":
		if err, ok := f["Error"].(error); ok {
			return err.Error(), false
		}
		return "failed to connect", false
	case "received notification", "sent notification":
		who := "peer sent NOTIFICATION: "
		if msg == "sent notification" {
			who = "sent NOTIFICATION: "
		}
		if e, ok := f["Data"].(*bgp.MessageError); ok && f["Code"] == nil {
			return who + notification(e.TypeCode, e.SubTypeCode) + " (" + e.Message + ")", false
		}
		code, _ := f["Code"].(uint8)
		sub, _ := f["Subcode"].(uint8)
		text := who + notification(code, sub)
		if msg == "sent notification" && code == bgp.BGP_ERROR_CEASE && sub == bgp.BGP_ERROR_SUB_MAXIMUM_NUMBER_OF_PREFIXES_REACHED {
			return fmt.Sprintf("%s: the router sent more than %d routes of one family; herald uses none of them, so have the router send this peer nothing (an outbound filter). Retrying every %v", text, maxReceivedPrefixes, prefixLimitRetry), false
		}
		if r, _ := f["Communicated-Reason"].(string); r != "" {
			text += ": " + r
		}
		return text, false
	case "hold timer expired":
		return "hold timer expired", false
	case "failed to set md5":
		return fmt.Sprintf("cannot set the TCP MD5 password: %v", f["Err"]), false
	case "failed to send", "cannot set TTL for peer", "cannot set MSS for peer", "failed to resolve local address":
		if d := f["Data"]; d != nil {
			return fmt.Sprintf("%s: %v", msg, d), false
		}
		if err, ok := f["Error"].(error); ok {
			return msg + ": " + err.Error(), false
		}
		return msg, false
	}
	return "", false
}

var notificationCodes = map[uint8]string{
	1: "Message Header Error", 2: "OPEN Message Error", 3: "UPDATE Message Error",
	4: "Hold Timer Expired", 5: "Finite State Machine Error", 6: "Cease", 7: "ROUTE-REFRESH Message Error",
}

var notificationSubcodes = map[[2]uint8]string{
	{1, 1}: "Connection Not Synchronized", {1, 2}: "Bad Message Length", {1, 3}: "Bad Message Type",
	{2, 1}: "Unsupported Version Number", {2, 2}: "Bad Peer AS", {2, 3}: "Bad BGP Identifier",
	{2, 4}: "Unsupported Optional Parameter", {2, 6}: "Unacceptable Hold Time",
	{2, 7}: "Unsupported Capability", {2, 11}: "Role Mismatch",
	{3, 1}: "Malformed Attribute List", {3, 2}: "Unrecognized Well-known Attribute",
	{3, 3}: "Missing Well-known Attribute", {3, 4}: "Attribute Flags Error", {3, 5}: "Attribute Length Error",
	{3, 6}: "Invalid ORIGIN Attribute", {3, 8}: "Invalid NEXT_HOP Attribute", {3, 9}: "Optional Attribute Error",
	{3, 10}: "Invalid Network Field", {3, 11}: "Malformed AS_PATH",
	{6, 1}: "Maximum Number of Prefixes Reached", {6, 2}: "Administrative Shutdown", {6, 3}: "Peer De-configured",
	{6, 4}: "Administrative Reset", {6, 5}: "Connection Rejected", {6, 6}: "Other Configuration Change",
	{6, 7}: "Connection Collision Resolution", {6, 8}: "Out of Resources", {6, 9}: "Hard Reset",
	{6, 10}: "BFD Down",
}

func notification(code, sub uint8) string {
	c, ok := notificationCodes[code]
	if !ok {
		c = fmt.Sprintf("code %d", code)
	}
	if s, ok := notificationSubcodes[[2]uint8{code, sub}]; ok {
		return c + " / " + s
	}
	if sub != 0 {
		return fmt.Sprintf("%s / subcode %d", c, sub)
	}
	return c
}
