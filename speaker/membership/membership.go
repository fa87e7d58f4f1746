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
	// OldKeys are further keys this member decrypts with but does not
	// encrypt with: a key rotation is under way (see keyring.go). Ignored
	// without Key.
	OldKeys [][]byte
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

// Meta is published by each member in its memberlist node metadata.
type Meta struct {
	// MACs are the hardware addresses of the member's interfaces.
	MACs []string `json:"macs,omitempty"`
	// Since is when the member started. Elections no longer read it (they
	// compared one node's clock with another's); it stays in the metadata
	// for speakers of earlier versions during a rolling upgrade.
	Since time.Time `json:"since"`
	// Keys are the fingerprints of the memberlist keys the member holds, the
	// one it encrypts with first (see Fingerprint): during a key rotation
	// the others read them to know when a step is safe. Never the keys.
	Keys []string `json:"keys,omitempty"`
}

// Member is a live member as others see it.
type Member struct {
	Name string
	Addr net.IP
	Meta Meta
}

// Members is this speaker's view of the cluster.
type Members struct {
	list *memberlist.Memberlist
	log  logr.Logger
	name string
	// changed (capacity 1) signals that the live set or a member's State changed.
	changed chan struct{}
	// send (capacity 1) wakes the sender: this member's State changed.
	send chan struct{}

	// mu guards the following fields.
	mu    sync.Mutex
	alive map[string]Member
	// self is this member's published metadata.
	self Meta
	// states holds the latest State of every member heard from, this one's
	// included; a member's entry goes when it leaves or fails.
	states map[string]State
	// lastClaims keeps the claims of members that left or failed, as they
	// were: who held an address before memberlist lost sight of it.
	lastClaims map[string]map[string]int
	// leftAt is when this member last saw each other one leave or fail, and
	// failed whether it failed (rather than left).
	leftAt map[string]time.Time
	failed map[string]bool
	// done is closed by Shutdown.
	done      chan struct{}
	closeOnce sync.Once
	// macs holds the MACs of every member seen since start, alive or not: a
	// speaker that restarted may answer for an address before it has rejoined.
	macs map[string]bool
	// macOwner names the member each of those MACs was last seen on.
	macOwner map[string]string
	// droppedMACs is how many of Config.Meta's MACs did not fit in the
	// metadata; set once by New.
	droppedMACs int
	// keyring holds the gossip keys (nil: unencrypted); see keyring.go.
	keyring *memberlist.Keyring
	// keyMu serialises keyring changes (memberlist's own lock covers single
	// reads and writes, not a read-modify-write).
	keyMu sync.Mutex
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
	keyring, err := newKeyring(cfg.Key, cfg.OldKeys)
	if err != nil {
		return nil, err
	}
	self.Keys = fingerprints(keyring)
	m := &Members{keyring: keyring, log: cfg.Logger, name: cfg.Name, self: self, changed: make(chan struct{}, 1), send: make(chan struct{}, 1),
		alive: map[string]Member{}, macs: map[string]bool{}, macOwner: map[string]string{}, done: make(chan struct{}), droppedMACs: dropped,
		states: map[string]State{cfg.Name: {Epoch: self.Since.UnixNano()}}, lastClaims: map[string]map[string]int{}, leftAt: map[string]time.Time{}, failed: map[string]bool{}}
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
	// Joins, push-pulls and State sends go over TCP to one node at a time; on
	// a LAN a node that has not answered in a second is not there, and
	// memberlist's 10 s would hold up every join behind a dead node.
	mc.TCPTimeout = time.Second
	// A keyring, not SecretKey: keys are added and dropped while running.
	mc.Keyring = keyring
	mc.Events = &events{m: m}
	mc.Delegate = &delegate{m: m}
	mc.Logger = log.New(logWriter{cfg.Logger}, "", 0)
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	m.list = list
	go m.sender()
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
//
// First it tells every live member, directly, that it is leaving: memberlist
// does not say whether a member left or failed, and the others treat the two
// differently (a failed member may still answer on the LAN, a leaving one
// answers only until its new owners announce).
func (m *Members) Leave(timeout time.Duration) error {
	m.mu.Lock()
	st := m.states[m.name]
	st.Seq++
	st.Leaving = true
	m.states[m.name] = st
	b, err := json.Marshal(record{Node: m.name, State: st})
	m.mu.Unlock()
	if err == nil {
		m.sendAll(b)
	}
	if err := m.list.Leave(timeout); err != nil {
		return fmt.Errorf("leaving memberlist: %w", err)
	}
	return nil
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
	e.m.mu.Lock()
	if n.Name == e.m.name {
		meta = e.m.self
	}
	for _, mac := range meta.MACs {
		e.m.macs[mac] = true
		e.m.macOwner[mac] = n.Name
	}
	e.m.alive[n.Name] = Member{Name: n.Name, Addr: n.Addr, Meta: meta}
	e.m.mu.Unlock()
	e.m.log.V(1).Info("Member joined", "member", n.Name, "addr", n.Addr.String())
	e.m.notify()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.m.mu.Lock()
	delete(e.m.alive, n.Name)
	e.m.leftAt[n.Name] = time.Now()
	// memberlist's Node.State is not set for NotifyLeave; the member's own
	// last State says whether it was leaving.
	e.m.failed[n.Name] = !e.m.states[n.Name].Leaving
	if st, ok := e.m.states[n.Name]; ok && n.Name != e.m.name {
		e.m.lastClaims[n.Name] = st.Claims
		delete(e.m.states, n.Name)
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
		e.m.macOwner[mac] = n.Name
	}
	if mem, ok := e.m.alive[n.Name]; ok && n.Name != e.m.name {
		mem.Meta = meta
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
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Node == "" {
		return
	}
	if d.m.merge([]record{r}) {
		d.m.notify()
	}
}
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState gives every State this member knows (for push-pull and joins): a
// member that joins through any one other learns every claim at once, before it
// decides anything.
func (d *delegate) LocalState(bool) []byte {
	d.m.mu.Lock()
	recs := make([]record, 0, len(d.m.states))
	for n, st := range d.m.states {
		recs = append(recs, record{Node: n, State: st})
	}
	d.m.mu.Unlock()
	b, err := json.Marshal(recs)
	if err != nil {
		d.m.log.Error(err, "Encoding member states")
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(b []byte, _ bool) {
	var recs []record
	if err := json.Unmarshal(b, &recs); err != nil {
		d.m.log.V(1).Info("Ignoring unreadable member states", "error", err.Error())
		return
	}
	if d.m.merge(recs) {
		d.m.notify()
	}
}

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
