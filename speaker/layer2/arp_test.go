package layer2

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

func TestARPAnswersAnnouncedAddress(t *testing.T) {
	r, c := newTestARP(t)
	if err := r.Add(vip4); err != nil {
		t.Fatalf("Add: %v", err)
	}
	got, err := r.handle(arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4))
	if err != nil || got != dropNone {
		t.Fatalf("handle = %v, %v; want none, nil", got, err)
	}
	sent := c.frames()
	if len(sent) != 1 {
		t.Fatalf("sent %d frames; want 1", len(sent))
	}
	f, p := parseARP(t, sent[0].frame)
	if !bytes.Equal(f.Destination, peerMAC) || !bytes.Equal(sent[0].dst, peerMAC) || !bytes.Equal(f.Source, ourMAC) {
		t.Errorf("Ethernet %v → %v (socket dst %v); want %v → %v", f.Source, f.Destination, sent[0].dst, ourMAC, peerMAC)
	}
	if p.Operation != arp.OperationReply || !bytes.Equal(p.SenderHardwareAddr, ourMAC) || p.SenderIP != vip4 ||
		!bytes.Equal(p.TargetHardwareAddr, peerMAC) || p.TargetIP != peer4 {
		t.Errorf("reply = %+v; want %v is-at %v, to %v/%v", p, vip4, ourMAC, peer4, peerMAC)
	}
	if s := r.Stats(); s.RequestsSeen != 1 || s.RepliesSent != 1 {
		t.Errorf("stats = %+v; want 1 request, 1 reply", s)
	}
}

func TestARPDropReasons(t *testing.T) {
	ipv6Payload := make([]byte, 40)
	wideARP := []byte{0, 1, 0x86, 0xdd, 6, 16, 0, 1} // IPv6 addresses in ARP
	wideARP = append(wideARP, make([]byte, 2*6+2*16)...)
	tests := []struct {
		name  string
		frame func(t *testing.T) []byte
		want  dropReason
	}{
		{"not announced", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, netip.MustParseAddr("10.77.0.101"))
		}, dropNotAnnounced},
		{"reply", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationReply, peerMAC, peer4, ourMAC, vip4)
		}, dropNotRequest},
		{"from self", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, ourMAC, peer4, zeroMAC, vip4)
		}, dropFromSelf},
		{"gratuitous from another host", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, vip4, zeroMAC, vip4)
		}, dropAnnouncement},
		{"short frame", func(*testing.T) []byte { return []byte{1, 2, 3} }, dropMalformed},
		{"truncated ARP", func(t *testing.T) []byte {
			return ethFrame(t, peerMAC, broadcastMAC, ethernet.EtherTypeARP, []byte{0, 1, 8, 0, 6, 4})[:14+6]
		}, dropMalformed},
		{"IPv6 addresses in ARP", func(t *testing.T) []byte {
			return ethFrame(t, peerMAC, broadcastMAC, ethernet.EtherTypeARP, wideARP)
		}, dropMalformed},
		{"IPv6 frame", func(t *testing.T) []byte {
			return ethFrame(t, peerMAC, broadcastMAC, ethernet.EtherTypeIPv6, ipv6Payload)
		}, dropWrongProtocol},
		{"multicast sender", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, peer4, zeroMAC, vip4)
		}, dropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, c := newTestARP(t)
			if err := r.Add(vip4); err != nil {
				t.Fatal(err)
			}
			got, err := r.handle(tt.frame(t))
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			if got != tt.want {
				t.Errorf("drop reason = %q; want %q", got, tt.want)
			}
			if n := len(c.frames()); n != 0 {
				t.Errorf("sent %d frames; want none", n)
			}
			if s := r.Stats(); s.Dropped[tt.want.String()] != 1 {
				t.Errorf("Dropped = %v; want %s: 1", s.Dropped, tt.want)
			}
		})
	}
}

func TestDropReasonString(t *testing.T) {
	for r := dropNone; r < numDropReasons; r++ {
		if s := r.String(); s == "" || s == "unknown" {
			t.Errorf("dropReason(%d).String() = %q", r, s)
		}
	}
	if got := dropReason(99).String(); got != "unknown" {
		t.Errorf("String() = %q; want %q", got, "unknown")
	}
}

// TestARPDefendsAgainstProbe: another host probing for an address we announce
// gets a reply, which tells it the address is taken.
func TestARPDefendsAgainstProbe(t *testing.T) {
	r, c := newTestARP(t)
	if err := r.Add(vip4); err != nil {
		t.Fatal(err)
	}
	if got, err := r.handle(arpFrame(t, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, vip4)); got != dropNone || err != nil {
		t.Fatalf("handle = %v, %v; want none, nil", got, err)
	}
	sent := c.frames()
	if len(sent) != 1 {
		t.Fatalf("sent %d frames; want 1", len(sent))
	}
	_, p := parseARP(t, sent[0].frame)
	if p.Operation != arp.OperationReply || p.SenderIP != vip4 || !p.TargetIP.IsUnspecified() || !bytes.Equal(p.TargetHardwareAddr, peerMAC) {
		t.Errorf("reply = %+v", p)
	}
}

func TestARPGratuitous(t *testing.T) {
	r, c := newTestARP(t)
	if err := r.Gratuitous(vip4); err == nil {
		t.Fatal("Gratuitous of an address not announced succeeded")
	}
	if err := r.Add(vip4); err != nil {
		t.Fatal(err)
	}
	if err := r.Gratuitous(vip4); err != nil {
		t.Fatalf("Gratuitous: %v", err)
	}
	sent := c.frames()
	if len(sent) != 2 {
		t.Fatalf("sent %d frames; want 2 (request and reply form)", len(sent))
	}
	for i, want := range []struct {
		op  arp.Operation
		tha net.HardwareAddr
	}{{arp.OperationRequest, zeroMAC}, {arp.OperationReply, ourMAC}} {
		f, p := parseARP(t, sent[i].frame)
		if !bytes.Equal(f.Destination, broadcastMAC) {
			t.Errorf("frame %d to %v; want broadcast", i, f.Destination)
		}
		if p.Operation != want.op || p.SenderIP != vip4 || p.TargetIP != vip4 ||
			!bytes.Equal(p.SenderHardwareAddr, ourMAC) || !bytes.Equal(p.TargetHardwareAddr, want.tha) {
			t.Errorf("frame %d = %+v; want %v with sender = target = %v, target hardware %v", i, p, want.op, vip4, want.tha)
		}
	}
	if s := r.Stats(); s.GratuitousSent != 2 {
		t.Errorf("GratuitousSent = %d; want 2", s.GratuitousSent)
	}
}

// probeResult is what a Probe running in the background returned.
type probeResult struct {
	mac net.HardwareAddr
	err error
}

func startProbe(r *Responder, ctx context.Context, addr netip.Addr, opts ProbeOptions) <-chan probeResult {
	ch := make(chan probeResult, 1)
	go func() {
		mac, err := r.Probe(ctx, addr, opts)
		ch <- probeResult{mac, err}
	}()
	return ch
}

func TestARPProbeFindsAnswer(t *testing.T) {
	addr := netip.MustParseAddr("10.77.0.50")
	for _, tt := range []struct {
		name   string
		answer func(t *testing.T) []byte
	}{
		{"reply", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationReply, peerMAC, addr, ourMAC, netip.IPv4Unspecified())
		}},
		{"announcement", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, addr, zeroMAC, addr)
		}},
		{"simultaneous probe", func(t *testing.T) []byte {
			return arpFrame(t, arp.OperationRequest, peerMAC, netip.IPv4Unspecified(), zeroMAC, addr)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, c := newTestARP(t)
			r.Start()
			res := startProbe(r, context.Background(), addr, ProbeOptions{Wait: 10 * time.Second, Count: 1})
			sent := c.waitFrames(1, 5*time.Second)
			if len(sent) != 1 {
				t.Fatalf("sent %d frames; want 1 probe", len(sent))
			}
			f, p := parseARP(t, sent[0].frame)
			if !bytes.Equal(f.Destination, broadcastMAC) || p.Operation != arp.OperationRequest ||
				!p.SenderIP.IsUnspecified() || p.TargetIP != addr || !bytes.Equal(p.TargetHardwareAddr, zeroMAC) {
				t.Errorf("probe = %+v to %v; want RFC 5227 probe for %v", p, f.Destination, addr)
			}
			c.deliver(tt.answer(t))
			select {
			case got := <-res:
				if got.err != nil || !bytes.Equal(got.mac, peerMAC) {
					t.Errorf("Probe = %v, %v; want %v, nil", got.mac, got.err, peerMAC)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Probe did not return after an answer")
			}
			if s := r.Stats(); s.ConflictsDetected != 1 || s.ProbesSent != 1 {
				t.Errorf("stats = %+v; want 1 probe, 1 conflict", s)
			}
		})
	}
}

func TestARPProbeIgnoresSpeakersAndSelf(t *testing.T) {
	addr := netip.MustParseAddr("10.77.0.50")
	r, c := newTestARP(t)
	r.Start()
	res := startProbe(r, context.Background(), addr, ProbeOptions{Wait: 200 * time.Millisecond, Count: 2, Ignore: []net.HardwareAddr{speakerMAC}})
	c.deliver(arpFrame(t, arp.OperationReply, speakerMAC, addr, ourMAC, netip.IPv4Unspecified()))
	c.deliver(arpFrame(t, arp.OperationReply, ourMAC, addr, ourMAC, netip.IPv4Unspecified()))
	c.deliver(arpFrame(t, arp.OperationReply, peerMAC, netip.MustParseAddr("10.77.0.51"), ourMAC, netip.IPv4Unspecified()))
	got := <-res
	if got.err != nil || got.mac != nil {
		t.Errorf("Probe = %v, %v; want nil, nil", got.mac, got.err)
	}
	if n := len(c.frames()); n != 2 {
		t.Errorf("sent %d probes; want 2", n)
	}
}

func TestProbeFailures(t *testing.T) {
	addr := netip.MustParseAddr("10.77.0.50")
	t.Run("not started", func(t *testing.T) {
		r, _ := newTestARP(t)
		if _, err := r.Probe(context.Background(), addr, ProbeOptions{}); err == nil {
			t.Error("Probe on a responder not started succeeded")
		}
	})
	t.Run("wrong family", func(t *testing.T) {
		r, _ := newTestARP(t)
		r.Start()
		if _, err := r.Probe(context.Background(), vip6, ProbeOptions{}); err == nil {
			t.Error("ARP Probe of an IPv6 address succeeded")
		}
	})
	t.Run("context done", func(t *testing.T) {
		r, _ := newTestARP(t)
		r.Start()
		ctx, cancel := context.WithCancel(context.Background())
		res := startProbe(r, ctx, addr, ProbeOptions{Wait: time.Hour})
		cancel()
		if got := <-res; !errors.Is(got.err, context.Canceled) {
			t.Errorf("Probe error = %v; want context.Canceled", got.err)
		}
	})
	t.Run("closed meanwhile", func(t *testing.T) {
		r, c := newTestARP(t)
		r.Start()
		res := startProbe(r, context.Background(), addr, ProbeOptions{Wait: time.Hour})
		c.waitFrames(1, 5*time.Second)
		r.Close()
		if got := <-res; !errors.Is(got.err, net.ErrClosed) {
			t.Errorf("Probe error = %v; want net.ErrClosed (never a false 'free')", got.err)
		}
	})
	t.Run("write fails", func(t *testing.T) {
		r, c := newTestARP(t)
		r.Start()
		c.setWriteErr(errors.New("boom"))
		if _, err := r.Probe(context.Background(), addr, ProbeOptions{}); err == nil {
			t.Error("Probe succeeded though nothing could be sent")
		}
		if s := r.Stats(); s.Errors != 1 {
			t.Errorf("Errors = %d; want 1", s.Errors)
		}
	})
}

func TestResponderLifecycle(t *testing.T) {
	r, c := newTestARP(t)
	if err := r.Add(netip.MustParseAddr("::ffff:10.77.0.100")); err != nil {
		t.Fatalf("Add of a mapped IPv4 address: %v", err)
	}
	if got := r.Announced(); len(got) != 1 || got[0] != vip4 {
		t.Errorf("Announced = %v; want [%v]", got, vip4)
	}
	if err := r.Add(vip6); err == nil {
		t.Error("ARP Add of an IPv6 address succeeded")
	}
	r.Start()
	r.Start()
	c.deliver(arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4))
	if sent := c.waitFrames(1, 5*time.Second); len(sent) != 1 {
		t.Fatalf("serving loop sent %d frames; want 1 reply", len(sent))
	}
	if err := r.Remove(vip4); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.handle(arpFrame(t, arp.OperationRequest, peerMAC, peer4, zeroMAC, vip4)); got != dropNotAnnounced {
		t.Errorf("after Remove: drop reason %q; want %q", got, dropNotAnnounced)
	}
	for i := range 2 {
		if err := r.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if err := r.Add(vip4); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Add after Close = %v; want net.ErrClosed", err)
	}
}

func TestNewRejectsNonEthernet(t *testing.T) {
	if _, err := NewARP(&net.Interface{Name: "tun0"}, newMemConn()); err == nil {
		t.Error("NewARP accepted an interface without an Ethernet address")
	}
	if _, err := NewNDP(nil, newMemConn(), nil); err == nil {
		t.Error("NewNDP accepted a nil interface")
	}
}
