package app

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/heraldlb/herald/speaker/layer2"
)

// want is one address this node should answer for.
type want struct {
	addr       netip.Addr
	interfaces []string // allow-list from the L2Announcements; empty: choose
	// probe asks to check the link before the first announcement: the address
	// is new to the cluster as this speaker has seen it (not a takeover).
	probe bool
}

// appliedAddr is what became of a want.
type appliedAddr struct {
	iface    string // where it is answered; empty if not
	conflict string // MAC of a foreign host answering for it
}

// conflictRetry is how long an address another host answered for stays
// unannounced before it is probed again: long enough not to hammer the link, short
// enough that freeing the address is noticed without a restart.
const conflictRetry = 30 * time.Second

// l2Announcer adapts layer2.Announcer to the speaker: interface choice, probing
// before first announcements, conflict memory and metrics.
type l2Announcer struct {
	log logr.Logger
	ann announcer
	// topology reads the node's links (layer2.ReadTopology; a fake in tests).
	topology     func() (layer2.Topology, error)
	probeTimeout time.Duration
	changed      <-chan struct{}
	cancel       context.CancelFunc
	// conflicts maps addresses a foreign host answered for to when to probe
	// again. Only the speaker loop touches it.
	conflicts map[netip.Addr]foreign
	last      layer2.Stats
}

type foreign struct {
	mac   string
	retry time.Time
}

func newL2Announcer(log logr.Logger, probeTimeout, refresh time.Duration, conflicts chan<- layer2.Conflict) (*l2Announcer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := layer2.Watch(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watching network interfaces: %w", err)
	}
	return &l2Announcer{
		log:          log.WithName("layer2"),
		ann:          layer2.NewAnnouncer(layer2.Config{Logger: log.WithName("layer2"), RefreshInterval: refresh, Conflicts: conflicts}),
		topology:     layer2.ReadTopology,
		probeTimeout: probeTimeout,
		changed:      ch,
		cancel:       cancel,
		conflicts:    map[netip.Addr]foreign{},
	}, nil
}

// Changed signals interface, address and route changes (netlink), after which the
// choice of interfaces must be made again.
func (l *l2Announcer) Changed() <-chan struct{} { return l.changed }

// Set answers for exactly the wanted addresses and returns where each is answered,
// or why not.
func (l *l2Announcer) Set(ctx context.Context, desired []want, speakerMACs map[string]bool) map[netip.Addr]appliedAddr {
	out := make(map[netip.Addr]appliedAddr, len(desired))
	topo, err := l.topology()
	if err != nil {
		l.log.Error(err, "Reading network interfaces; keeping current announcements")
		for a, i := range l.ann.Announced() {
			out[a] = appliedAddr{iface: i}
		}
		return out
	}
	current := l.ann.Announced()
	var ignore []net.HardwareAddr
	for mac := range speakerMACs {
		if hw, err := net.ParseMAC(mac); err == nil {
			ignore = append(ignore, hw)
		}
	}
	target := map[netip.Addr]string{}
	now := time.Now()
	type probed struct {
		w     want
		iface string
		mac   net.HardwareAddr
		err   error
	}
	var probes []*probed
	for _, w := range desired {
		choice, err := layer2.ChooseInterface(topo, w.addr, w.interfaces)
		if err != nil {
			l.log.Error(err, "No interface to announce on", "address", w.addr.String(), "allowed", w.interfaces)
			continue
		}
		c, inConflict := l.conflicts[w.addr]
		if inConflict && speakerMACs[c.mac] {
			// The "foreign" host was a fellow speaker this one did not know yet
			// (speakers starting together, before memberlist met them all): not a
			// conflict, and waiting for conflictRetry would leave the address
			// unannounced for that long.
			delete(l.conflicts, w.addr)
			inConflict = false
		}
		if inConflict && now.Before(c.retry) {
			out[w.addr] = appliedAddr{conflict: c.mac}
			continue
		}
		if _, answered := current[w.addr]; !answered && (w.probe || inConflict) && l.probeTimeout > 0 {
			probes = append(probes, &probed{w: w, iface: choice.Interface})
			continue
		}
		delete(l.conflicts, w.addr)
		target[w.addr] = choice.Interface
		out[w.addr] = appliedAddr{iface: choice.Interface}
	}
	// Probes wait for an answer that normally never comes; run them together so
	// a dual-stack Service, or a burst of new ones, waits one probe time, not one
	// per address.
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.mac, p.err = l.ann.Probe(ctx, p.w.addr, p.iface, layer2.ProbeOptions{Wait: l.probeTimeout, Ignore: ignore})
		}()
	}
	wg.Wait()
	for _, p := range probes {
		_, inConflict := l.conflicts[p.w.addr]
		switch {
		case p.err != nil:
			l.log.Error(p.err, "Probing before announcing; announcing anyway", "address", p.w.addr.String())
		case p.mac != nil:
			if !inConflict {
				metricConflicts.Inc()
				l.log.Info("Another host answers for the address; not announcing it", "address", p.w.addr.String(), "mac", p.mac.String())
			}
			l.conflicts[p.w.addr] = foreign{mac: p.mac.String(), retry: now.Add(conflictRetry)}
			out[p.w.addr] = appliedAddr{conflict: p.mac.String()}
			continue
		}
		delete(l.conflicts, p.w.addr)
		target[p.w.addr] = p.iface
		out[p.w.addr] = appliedAddr{iface: p.iface}
	}
	if err := l.ann.Set(target); err != nil {
		l.log.Error(err, "Announcing; will retry at the next change")
	}
	announced := l.ann.Announced()
	v4, v6 := 0, 0
	for a := range announced {
		if a.Is4() {
			v4++
		} else {
			v6++
		}
	}
	for a, r := range out {
		if r.iface != "" {
			if _, ok := announced[a]; !ok {
				out[a] = appliedAddr{}
			}
		}
	}
	metricAnnounced.WithLabelValues("IPv4").Set(float64(v4))
	metricAnnounced.WithLabelValues("IPv6").Set(float64(v6))
	st := l.ann.Stats()
	metricL2.WithLabelValues("request").Add(float64(st.RequestsSeen - l.last.RequestsSeen))
	metricL2.WithLabelValues("reply").Add(float64(st.RepliesSent - l.last.RepliesSent))
	metricL2.WithLabelValues("gratuitous").Add(float64(st.GratuitousSent - l.last.GratuitousSent))
	metricL2.WithLabelValues("probe").Add(float64(st.ProbesSent - l.last.ProbesSent))
	metricL2.WithLabelValues("refresh").Add(float64(st.RefreshSent - l.last.RefreshSent))
	metricForeignClaims.WithLabelValues("IPv4").Add(float64(st.ForeignClaimsIPv4 - l.last.ForeignClaimsIPv4))
	metricForeignClaims.WithLabelValues("IPv6").Add(float64(st.ForeignClaimsIPv6 - l.last.ForeignClaimsIPv6))
	metricConflictReportsDropped.Add(float64(st.ConflictReportsDropped - l.last.ConflictReportsDropped))
	l.last = st
	return out
}

// cannotAnnounce says why this node could not announce ips on the allowed
// interfaces, or "" if it can. An unreadable topology says nothing: it is not
// the addresses' fault.
func (l *l2Announcer) cannotAnnounce(ips []netip.Addr, interfaces []string) string {
	topo, err := l.topology()
	if err != nil {
		return ""
	}
	for _, ip := range ips {
		if _, err := layer2.ChooseInterface(topo, ip, interfaces); err != nil {
			return err.Error()
		}
	}
	return ""
}

// answerer probes addr (ARP/NDP) on the interface this node would use, waiting
// up to wait (zero: the probe timeout), and returns the MAC of a host other
// than this node that answers, or "". It says ok=false when it could not probe.
func (l *l2Announcer) answerer(ctx context.Context, addr netip.Addr, interfaces []string, own []net.HardwareAddr, wait time.Duration) (mac string, ok bool) {
	topo, err := l.topology()
	if err != nil {
		return "", false
	}
	choice, err := layer2.ChooseInterface(topo, addr, interfaces)
	if err != nil {
		return "", false
	}
	if wait <= 0 {
		wait = l.probeTimeout
	}
	if wait <= 0 {
		wait = 100 * time.Millisecond
	}
	hw, err := l.ann.Probe(ctx, addr, choice.Interface, layer2.ProbeOptions{Wait: wait, Ignore: own})
	if err != nil {
		return "", false
	}
	if hw == nil {
		return "", true
	}
	return strings.ToLower(hw.String()), true
}

// reannounce sends one gratuitous round for addr: the node that keeps an
// address another speaker also answered for says so, so the other hears it.
func (l *l2Announcer) reannounce(addr netip.Addr) {
	if err := l.ann.Reannounce(addr); err != nil {
		l.log.V(1).Info("Announcing again", "address", addr.String(), "error", err.Error())
	}
}

// ipvsWithoutStrictARP reads the topology and sysctls (layer2.IPVSWithoutStrictARP).
func (l *l2Announcer) ipvsWithoutStrictARP() (bool, string) {
	topo, err := l.topology()
	if err != nil {
		return false, ""
	}
	return layer2.IPVSWithoutStrictARP(topo, layer2.ProcSysctl)
}

// withdraw stops answering for addr at once, keeping every other address.
func (l *l2Announcer) withdraw(addr netip.Addr) {
	cur := l.ann.Announced()
	if _, ok := cur[addr]; !ok {
		return
	}
	delete(cur, addr)
	if err := l.ann.Set(cur); err != nil {
		l.log.Error(err, "Withdrawing an address", "address", addr.String())
	}
}

// Close stops answering for every address.
func (l *l2Announcer) Close() error {
	l.cancel()
	return l.ann.Close()
}
