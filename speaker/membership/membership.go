// Package membership keeps the speakers in one hashicorp/memberlist cluster (SWIM
// gossip with failure detection) and tells the speaker who is alive. It decides
// nothing: election is a pure function of the live set it reports.
package membership

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
)

// Config configures a member.
type Config struct {
	// Name is this member's name: the Kubernetes node name.
	Name string
	// BindAddr and BindPort are where memberlist listens (UDP and TCP); the node
	// IP and 7946 by default.
	BindAddr string
	BindPort int
	// Key encrypts gossip (16, 24 or 32 bytes for AES-128/192/256). Nil runs
	// unencrypted, which the speaker only allows when told to.
	Key []byte
	// Meta is what this member tells the others about itself (e.g. its MACs, so a
	// probe answered by a fellow speaker is not taken for a conflict).
	Meta Meta
	// ProbeInterval, ProbeTimeout and SuspicionMult tune failure detection; zero
	// values take Fast's.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	Logger        logr.Logger
}

// Fast are failure-detection timings for a LAN where a dead speaker must be noticed
// in under a second: a probe every 200 ms with a 100 ms timeout, and suspicion
// lasting SuspicionMult × max(1, log10(n)) probe intervals (400 ms up to 10 nodes)
// before a suspect is declared dead. Halving them (100 ms, 50 ms) detected faster
// but falsely suspected live members of a busy 2-core lab; memberlist's LAN
// defaults (1 s, 500 ms, 4) take about 5 s.
var Fast = struct {
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
}{200 * time.Millisecond, 100 * time.Millisecond, 2}

// isolatedRefresh is how often a member that sees no other moves its Since to
// "now", so that whenever it is heard again its metadata already says it is
// returning: the others hold it down from the first moment, with no gossip round
// in which they would give its addresses back early.
const isolatedRefresh = 250 * time.Millisecond

// Meta is published by each member in its memberlist node metadata.
type Meta struct {
	// MACs are the hardware addresses of the member's interfaces.
	MACs []string `json:"macs,omitempty"`
	// Since is when the member last came up or rejoined after being cut off from
	// every other member; elections hold a returning member down from it. It is
	// set by the member itself, so every speaker agrees on it.
	Since time.Time `json:"since"`
}

// Member is a live member as others see it.
type Member struct {
	Name string
	Addr net.IP
	Meta Meta
	// Since is when this member saw it join (or rejoin), for hold-downs.
	Since time.Time
}

// Members is this speaker's view of the cluster.
type Members struct {
	list *memberlist.Memberlist
	log  logr.Logger
	name string
	// queue carries "member returned" messages by gossip.
	queue *memberlist.TransmitLimitedQueue

	// changed (capacity 1) signals that the live set changed.
	changed chan struct{}

	// mu guards the following fields.
	mu    sync.Mutex
	alive map[string]Member
	// self is this member's published metadata.
	self Meta
	// isolated is set while this member sees no other.
	isolated bool
	// leftAt is when this member saw each other member fail or leave.
	leftAt map[string]time.Time
	// returnedAt is the latest return time announced for each member (see
	// returned), kept for members whose join has not been seen yet.
	returnedAt map[string]time.Time
	// done is closed by Shutdown.
	done      chan struct{}
	closeOnce sync.Once
	// macs holds the MACs of every member seen since start, alive or not: a
	// speaker that restarted may answer for an address before it has rejoined.
	macs map[string]bool
	// droppedMACs is how many of Config.Meta's MACs did not fit in the
	// metadata; set once by New.
	droppedMACs int
}

// DroppedMACs reports how many of the configured MACs were left out of this
// member's metadata because they did not fit memberlist's limit.
func (m *Members) DroppedMACs() int { return m.droppedMACs }

// Self returns this member's metadata as it publishes it.
func (m *Members) Self() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self
}

// New starts a member; it is alone until Join.
func New(cfg Config) (*Members, error) {
	self := cfg.Meta
	self.Since = time.Now()
	// The number of MACs must never stop a speaker: past memberlist's limit the
	// least important ones are left out, and the others still recognise this
	// speaker by the first ones (its node address's link comes first).
	macs, dropped, err := fitMACs(self.MACs, memberlist.MetaMaxSize)
	if err != nil {
		return nil, err
	}
	if dropped > 0 {
		cfg.Logger.Info("Too many MACs for memberlist metadata; publishing the first ones only", "published", macs, "dropped", dropped, "limit", memberlist.MetaMaxSize)
	}
	self.MACs = macs
	m := &Members{log: cfg.Logger, name: cfg.Name, self: self, changed: make(chan struct{}, 1), alive: map[string]Member{}, macs: map[string]bool{}, done: make(chan struct{}),
		leftAt: map[string]time.Time{}, returnedAt: map[string]time.Time{}, droppedMACs: dropped}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	mc.ProbeInterval, mc.ProbeTimeout, mc.SuspicionMult = Fast.ProbeInterval, Fast.ProbeTimeout, Fast.SuspicionMult
	if cfg.ProbeInterval > 0 {
		mc.ProbeInterval = cfg.ProbeInterval
	}
	if cfg.ProbeTimeout > 0 {
		mc.ProbeTimeout = cfg.ProbeTimeout
	}
	if cfg.SuspicionMult > 0 {
		mc.SuspicionMult = cfg.SuspicionMult
	}
	// Gossip fast too, so a leave or a join reaches everyone within a few
	// hundred milliseconds.
	mc.GossipInterval = 50 * time.Millisecond
	mc.PushPullInterval = 5 * time.Second
	mc.SecretKey = cfg.Key
	mc.Events = &events{m: m}
	mc.Delegate = &delegate{m: m}
	mc.Logger = log.New(logWriter{cfg.Logger}, "", 0)
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	m.list = list
	m.queue = &memberlist.TransmitLimitedQueue{NumNodes: list.NumMembers, RetransmitMult: 3}
	return m, nil
}

// Join contacts the given peers ("ip:port"); it reports how many answered. Joining
// none is not an error for the first speaker of a cluster.
func (m *Members) Join(peers []string) (int, error) {
	if len(peers) == 0 {
		return 0, nil
	}
	n, err := m.list.Join(peers)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("joining memberlist through %v: %w", peers, err)
	}
	return n, nil
}

// Alive returns the live members, this one included, sorted by name.
func (m *Members) Alive() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.alive))
	for _, mem := range m.alive {
		out = append(out, mem)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// KnownMACs returns the MACs of every speaker seen since this one started,
// including ones now down: an answer from one of them is no foreign host.
func (m *Members) KnownMACs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.macs))
	for mac := range m.macs {
		out = append(out, mac)
	}
	return out
}

// Changed signals (coalesced) whenever the live set changes.
func (m *Members) Changed() <-chan struct{} { return m.changed }

// Leave tells the others this member is going, waiting up to timeout for the
// message to spread; the member keeps running until Shutdown.
func (m *Members) Leave(timeout time.Duration) error {
	if err := m.list.Leave(timeout); err != nil {
		return fmt.Errorf("leaving memberlist: %w", err)
	}
	return nil
}

// selfDoubt is how long after this member started or returned it does not trust
// its own view of others' failures: the suspicions it raised while cut off end
// after its return, and would make it announce returns of members that never left.
const selfDoubt = 3 * time.Second

// MarkReturned says this member was cut off and is back (its link came up again):
// its Since moves to now and every member learns so by gossip, so it does not take
// addresses back before its hold-down, even if nobody noticed it was gone.
func (m *Members) MarkReturned() {
	m.mu.Lock()
	m.queueReturn(m.name, time.Now())
	m.mu.Unlock()
	m.notify()
}

// returnMsg says a member came back at a time: see NotifyJoin.
type returnMsg struct {
	Member string    `json:"returned"`
	At     time.Time `json:"at"`
}

type returnBroadcast []byte

func (b returnBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b returnBroadcast) Message() []byte                       { return b }
func (b returnBroadcast) Finished()                             {}

// queueReturn gossips that member came back at, and applies it here. mu is held.
func (m *Members) queueReturn(member string, at time.Time) {
	if b, err := json.Marshal(returnMsg{member, at}); err == nil {
		m.queue.QueueBroadcast(returnBroadcast(b))
	}
	m.applyReturnLocked(member, at)
}

// applyReturnLocked records that member came back at: its Since moves up to at.
// For this member itself that means publishing the new Since.
func (m *Members) applyReturnLocked(member string, at time.Time) {
	if prev := m.returnedAt[member]; at.After(prev) {
		m.returnedAt[member] = at
	}
	if member == m.name {
		if at.After(m.self.Since) {
			m.self.Since = at
			if self, ok := m.alive[m.name]; ok {
				self.Meta, self.Since = m.self, at
				m.alive[m.name] = self
			}
			go func() { _ = m.list.UpdateNode(0) }()
		}
		return
	}
	if mem, ok := m.alive[member]; ok && at.After(mem.Since) {
		mem.Since = at
		m.alive[member] = mem
	}
}

// whileIsolated keeps this member's Since at "now" while it sees no other.
func (m *Members) whileIsolated() {
	t := time.NewTicker(isolatedRefresh)
	defer t.Stop()
	for {
		m.mu.Lock()
		if len(m.alive) > 1 {
			m.isolated = false
			m.mu.Unlock()
			return
		}
		m.self.Since = time.Now()
		if self, ok := m.alive[m.name]; ok {
			self.Meta, self.Since = m.self, m.self.Since
			m.alive[m.name] = self
		}
		m.mu.Unlock()
		_ = m.list.UpdateNode(0)
		select {
		case <-m.done:
			return
		case <-t.C:
		}
	}
}

// Shutdown stops the member. It is safe to call twice.
func (m *Members) Shutdown() error {
	m.closeOnce.Do(func() { close(m.done) })
	if err := m.list.Shutdown(); err != nil {
		return fmt.Errorf("stopping memberlist: %w", err)
	}
	return nil
}

func (m *Members) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

type events struct{ m *Members }

func (e *events) NotifyJoin(n *memberlist.Node) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		e.m.log.Info("Ignoring unreadable member metadata", "member", n.Name, "error", err.Error())
	}
	now := time.Now()
	e.m.mu.Lock()
	if n.Name == e.m.name {
		e.m.alive[n.Name] = Member{Name: n.Name, Addr: n.Addr, Meta: e.m.self, Since: e.m.self.Since}
		e.m.mu.Unlock()
		e.m.notify()
		return
	}
	// Since comes from the member itself, so every speaker agrees on it: a
	// member cut off from the others keeps its Since at "now" while it is alone
	// (see isolated), so it returns carrying the time of its return.
	since := meta.Since
	rejoined := len(e.m.alive) == 1 // only this member was left: it was cut off
	// A member we saw fail that comes back with an older Since has been cut off
	// without noticing it (a short cut, or a false suspicion). Its return time
	// is gossiped, so it and everyone else hold it down alike.
	if left, ok := e.m.leftAt[n.Name]; ok && !since.After(left) && now.Sub(e.m.self.Since) > selfDoubt {
		since = now
		e.m.queueReturn(n.Name, now)
	}
	if at := e.m.returnedAt[n.Name]; at.After(since) {
		since = at
	}
	for _, mac := range meta.MACs {
		e.m.macs[mac] = true
	}
	e.m.alive[n.Name] = Member{Name: n.Name, Addr: n.Addr, Meta: meta, Since: since}
	if rejoined && !e.m.self.Since.IsZero() {
		// Back from being alone (or just started): from now on this member is
		// the one returning, and the others must hold it down.
		e.m.self.Since = now
		self := e.m.alive[e.m.name]
		self.Meta, self.Since = e.m.self, now
		e.m.alive[e.m.name] = self
		go func() { _ = e.m.list.UpdateNode(time.Second) }()
	}
	e.m.mu.Unlock()
	e.m.log.V(1).Info("Member joined", "member", n.Name, "addr", n.Addr.String())
	e.m.notify()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.m.mu.Lock()
	delete(e.m.alive, n.Name)
	e.m.leftAt[n.Name] = time.Now()
	if len(e.m.alive) == 1 && !e.m.isolated {
		e.m.isolated = true
		go e.m.whileIsolated()
	}
	e.m.mu.Unlock()
	e.m.log.Info("Member left or failed", "member", n.Name, "addr", n.Addr.String())
	e.m.notify()
}

func (e *events) NotifyUpdate(n *memberlist.Node) {
	meta, _ := decodeMeta(n.Meta)
	e.m.mu.Lock()
	for _, mac := range meta.MACs {
		e.m.macs[mac] = true
	}
	if mem, ok := e.m.alive[n.Name]; ok && n.Name != e.m.name {
		mem.Meta = meta
		if meta.Since.After(mem.Since) {
			mem.Since = meta.Since
		}
		e.m.alive[n.Name] = mem
	}
	e.m.mu.Unlock()
	e.m.notify()
}

// delegate publishes this member's metadata; herald gossips nothing else.
type delegate struct{ m *Members }

func (d *delegate) NodeMeta(limit int) []byte {
	d.m.mu.Lock()
	self := d.m.self
	d.m.mu.Unlock()
	// New fitted the MACs to memberlist's limit with room for any Since, so
	// this trims nothing unless memberlist asks for less; even then Since goes
	// out, and with it the hold-downs.
	meta, dropped, err := encodeMeta(self, limit)
	if err != nil {
		d.m.log.Error(err, "Encoding member metadata")
		return nil
	}
	if dropped > 0 {
		d.m.log.V(1).Info("Member metadata trimmed to memberlist's limit", "dropped", dropped, "limit", limit)
	}
	return meta
}
func (d *delegate) NotifyMsg(b []byte) {
	var r returnMsg
	if err := json.Unmarshal(b, &r); err != nil || r.Member == "" {
		return
	}
	d.m.mu.Lock()
	d.m.applyReturnLocked(r.Member, r.At)
	d.m.mu.Unlock()
	d.m.notify()
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(bool) []byte        { return nil }
func (d *delegate) MergeRemoteState([]byte, bool) {}

// logWriter sends memberlist's standard-library log lines to logr at V(1): they
// are chatty ("[DEBUG] memberlist: ...") and only useful when debugging.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info("memberlist", "line", string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ io.Writer = logWriter{}
