package bfd

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// frrUp is a packet as FRR's bfdd sends it in state Up with 300 ms timers.
var frrUp = []byte{
	0x20, 0xc0, 0x03, 0x18, // v1 diag 0, Up, mult 3, len 24
	0x00, 0x00, 0x00, 0x01, // my disc 1
	0x00, 0x00, 0x00, 0x02, // your disc 2
	0x00, 0x04, 0x93, 0xe0, // desired min tx 300000 µs
	0x00, 0x04, 0x93, 0xe0, // required min rx 300000 µs
	0x00, 0x00, 0xc3, 0x50, // required min echo rx 50000 µs
}

func TestUnmarshal(t *testing.T) {
	p, err := Unmarshal(frrUp)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{State: StateUp, DetectMult: 3, MyDiscriminator: 1, YourDiscriminator: 2,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, RequiredMinEchoRx: 50 * time.Millisecond}
	if p != want {
		t.Fatalf("Unmarshal = %+v; want %+v", p, want)
	}
	if got := p.Marshal(nil); !bytes.Equal(got, frrUp) {
		t.Fatalf("Marshal = % x; want % x", got, frrUp)
	}
}

func TestMarshalFlags(t *testing.T) {
	p := Packet{Diag: DiagAdminDown, State: StateAdminDown, Poll: true, Final: true, ControlPlaneIndependent: true, Demand: true,
		DetectMult: 1, MyDiscriminator: 7}
	b := p.Marshal(nil)
	if b[0] != 0x27 || b[1] != 0x3a {
		t.Fatalf("header % x; want 27 3a", b[:2])
	}
	q, err := Unmarshal(b)
	if err != nil || q != p {
		t.Fatalf("round trip = %+v, %v; want %+v", q, err, p)
	}
}

func TestMarshalClampsIntervals(t *testing.T) {
	p := Packet{DesiredMinTx: 2 * time.Hour, RequiredMinRx: -time.Second, RequiredMinEchoRx: 1500 * time.Nanosecond}
	b := p.Marshal(nil)
	if !bytes.Equal(b[12:], []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}) {
		t.Fatalf("intervals % x", b[12:])
	}
}

func TestUnmarshalDrops(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(frrUp)) }
	tests := []struct {
		name string
		b    []byte
		want DropReason
	}{
		{"empty", nil, DropShort},
		{"23 bytes", frrUp[:23], DropShort},
		{"version 0", mod(func(b []byte) []byte { b[0] &^= 0xe0; return b }), DropVersion},
		{"version 2", mod(func(b []byte) []byte { b[0] = 0x40; return b }), DropVersion},
		{"length 23", mod(func(b []byte) []byte { b[3] = 23; return b }), DropShort},
		{"length beyond datagram", mod(func(b []byte) []byte { b[3] = 25; return b }), DropLength},
		{"auth bit", mod(func(b []byte) []byte { b[1] |= flagAuth; b[3] = 24; return b }), DropAuth},
		{"auth bit with auth section", append(mod(func(b []byte) []byte { b[1] |= flagAuth; b[3] = 33; return b }), 1, 9, 1, 'p', 'a', 's', 's', 'w', 'd'), DropAuth},
		{"detect mult 0", mod(func(b []byte) []byte { b[2] = 0; return b }), DropDetectMult},
		{"multipoint", mod(func(b []byte) []byte { b[1] |= flagMulti; return b }), DropMultipoint},
		{"my disc 0", mod(func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }), DropMyDiscZero},
		{"your disc 0 in Up", mod(func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b }), DropYourDiscZero},
		{"your disc 0 in Init", mod(func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); b[1] = 0x80; return b }), DropYourDiscZero},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Unmarshal(tt.b)
			var r DropReason
			if !errors.As(err, &r) || r != tt.want {
				t.Fatalf("Unmarshal error = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestUnmarshalAccepts(t *testing.T) {
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(frrUp)) }
	for name, b := range map[string][]byte{
		"your disc 0 in Down":      mod(func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); b[1] = 0x40; return b }),
		"your disc 0 in AdminDown": mod(func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); b[1] = 0x00; return b }),
		"trailing bytes":           append(bytes.Clone(frrUp), 0xde, 0xad),
		"length 26 within":         append(mod(func(b []byte) []byte { b[3] = 26; return b }), 0, 0),
		"reserved diag":            mod(func(b []byte) []byte { b[0] = 0x3f; return b }),
	} {
		if _, err := Unmarshal(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(frrUp)
	f.Add(Packet{State: StateDown, DetectMult: 3, MyDiscriminator: 9, DesiredMinTx: time.Second, RequiredMinRx: 300 * time.Millisecond}.marshal())
	f.Add(Packet{Diag: DiagAdminDown, State: StateAdminDown, Poll: true, DetectMult: 1, MyDiscriminator: 1, YourDiscriminator: 1}.marshal())
	f.Add(append(bytes.Clone(frrUp), 1, 2, 3))
	f.Add([]byte{0x20, 0x44, 3, 24})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			if p != (Packet{}) {
				t.Fatalf("rejected packet returned %+v", p)
			}
			return
		}
		got := p.Marshal(nil)
		// Marshal writes what Unmarshal read, except the Length field,
		// which is always 24 without authentication, and what follows it.
		want := bytes.Clone(b[:PacketLen])
		want[3] = PacketLen
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal(Unmarshal(% x)) = % x", b, got)
		}
		q, err := Unmarshal(got)
		if err != nil || q != p {
			t.Fatalf("second round trip = %+v, %v; want %+v", q, err, p)
		}
	})
}

func (p Packet) marshal() []byte { return p.Marshal(nil) }
