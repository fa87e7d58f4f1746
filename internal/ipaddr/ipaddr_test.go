package ipaddr

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in       string
		from, to string
		err      string
	}{
		{in: "10.0.0.7", from: "10.0.0.7", to: "10.0.0.7"},
		{in: " 10.0.0.0/30 ", from: "10.0.0.0", to: "10.0.0.3"},
		{in: "10.0.0.10-10.0.0.20", from: "10.0.0.10", to: "10.0.0.20"},
		{in: "10.0.0.10 - 10.0.0.20", from: "10.0.0.10", to: "10.0.0.20"},
		{in: "10.0.0.10-10.0.0.10", from: "10.0.0.10", to: "10.0.0.10"},
		{in: "fd00::/64", from: "fd00::", to: "fd00::ffff:ffff:ffff:ffff"},
		{in: "fd00::1-fd00::ff", from: "fd00::1", to: "fd00::ff"},
		{in: "", err: "empty"},
		{in: "10.0.0.300", err: "address"},
		{in: "10.0.0.20-10.0.0.10", err: "backwards"},
		{in: "10.0.0.1-fd00::1", err: "mixes"},
		{in: "10.0.0.1/24", err: "host bits"},
		{in: "10.0.0.0/33", err: "CIDR"},
		{in: "::ffff:10.0.0.1", err: "IPv4-mapped"},
		{in: "::ffff:10.0.0.0/120", err: "IPv4-mapped"},
		{in: "fe80::1%eth0", err: "zones"},
		{in: "10.0.0.1-", err: "end"},
		{in: "-10.0.0.1", err: "start"},
		{in: "10.0.0.1-10.0.0.2-10.0.0.3", err: "end"},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRange(%q) error = %v; want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRange(%q): %v", tt.in, err)
			continue
		}
		if got, want := r.From(), netip.MustParseAddr(tt.from); got != want {
			t.Errorf("ParseRange(%q).From() = %v; want %v", tt.in, got, want)
		}
		if got, want := r.To(), netip.MustParseAddr(tt.to); got != want {
			t.Errorf("ParseRange(%q).To() = %v; want %v", tt.in, got, want)
		}
	}
}

func TestParseSetNamesFailingEntry(t *testing.T) {
	_, err := ParseSet([]string{"10.0.0.0/24", "bogus"})
	if err == nil || !strings.Contains(err.Error(), "addresses[1]") {
		t.Fatalf("ParseSet error = %v; want it to name addresses[1]", err)
	}
	set, err := ParseSet([]string{"10.0.0.0/25", "10.0.0.128/25", "fd00::1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.Ranges()); got != 2 {
		t.Errorf("ranges = %d; want 2 (the two /25 merge)", got)
	}
}

func TestParseIPList(t *testing.T) {
	got, err := ParseIPList("10.0.0.1, fd00::1,")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != netip.MustParseAddr("10.0.0.1") || got[1] != netip.MustParseAddr("fd00::1") {
		t.Errorf("ParseIPList = %v", got)
	}
	if _, err := ParseIPList("10.0.0.1,nope"); err == nil {
		t.Error("ParseIPList accepted a bad address")
	}
}

// FuzzParseRange checks that the parser never panics and that whatever it accepts is
// a well-formed range of one family whose ends parse back to themselves.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/24", "10.0.0.1-10.0.0.9", "fd00::/64",
		"fd00::1-fd00::2", "::ffff:1.2.3.4", "1.2.3.4-::1", "10.0.0.9-10.0.0.1", "0.0.0.0/0", "-", "/", "1.2.3.4/24"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			return
		}
		if !r.IsValid() {
			t.Fatalf("ParseRange(%q) = invalid range %v with no error", s, r)
		}
		if r.From().Is4() != r.To().Is4() {
			t.Fatalf("ParseRange(%q) = mixed-family range %v", s, r)
		}
		if r.To().Less(r.From()) {
			t.Fatalf("ParseRange(%q) = reversed range %v", s, r)
		}
		if r.From().Zone() != "" || r.From().Is4In6() {
			t.Fatalf("ParseRange(%q) = %v; zone or mapped address slipped through", s, r)
		}
	})
}

func TestJoin(t *testing.T) {
	if got := Join([]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}); got != "10.0.0.1, fd00::1" {
		t.Errorf("Join = %q", got)
	}
	if got := Join(nil); got != "" {
		t.Errorf("Join(nil) = %q", got)
	}
}
