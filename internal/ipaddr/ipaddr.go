// Package ipaddr parses the address notations herald accepts in an IPPool (a single
// address, a CIDR, or an inclusive "a-b" range) into netipx ranges and sets. The
// controller, the speaker and the tests all parse pools through it, so they agree on
// what a pool holds.
package ipaddr

import (
	"fmt"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// ParseRange parses one pool entry: "192.168.1.7", "192.168.1.0/24",
// "192.168.1.10-192.168.1.20" or their IPv6 forms. A CIDR with host bits set
// ("192.168.1.7/24") is refused rather than silently widened, because an operator who
// wrote it most likely meant something else. IPv4-mapped IPv6 addresses are refused:
// they would put an IPv4 address in the IPv6 family.
func ParseRange(s string) (netipx.IPRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netipx.IPRange{}, fmt.Errorf("empty address")
	}
	if from, to, ok := strings.Cut(s, "-"); ok {
		a, err := parseAddr(strings.TrimSpace(from))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("range %q: start: %w", s, err)
		}
		b, err := parseAddr(strings.TrimSpace(to))
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("range %q: end: %w", s, err)
		}
		if a.Is4() != b.Is4() {
			return netipx.IPRange{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if b.Less(a) {
			return netipx.IPRange{}, fmt.Errorf("range %q runs backwards: %s is above %s", s, a, b)
		}
		return netipx.IPRangeFrom(a, b), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netipx.IPRange{}, fmt.Errorf("CIDR %q: %w", s, err)
		}
		if p.Addr().Is4In6() {
			return netipx.IPRange{}, fmt.Errorf("CIDR %q: IPv4-mapped IPv6 addresses are not accepted; write the IPv4 form", s)
		}
		if p.Addr().Zone() != "" {
			return netipx.IPRange{}, fmt.Errorf("CIDR %q: zones are not accepted", s)
		}
		if p.Masked() != p {
			return netipx.IPRange{}, fmt.Errorf("CIDR %q has host bits set; did you mean %s?", s, p.Masked())
		}
		return netipx.RangeOfPrefix(p), nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netipx.IPRange{}, err
	}
	return netipx.IPRangeFrom(a, a), nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q: zones are not accepted", s)
	}
	if a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("address %q: IPv4-mapped IPv6 addresses are not accepted; write the IPv4 form", s)
	}
	return a, nil
}

// ParseSet parses every entry and returns their union. The error names the first
// entry that failed.
func ParseSet(entries []string) (*netipx.IPSet, error) {
	var b netipx.IPSetBuilder
	for i, e := range entries {
		r, err := ParseRange(e)
		if err != nil {
			return nil, fmt.Errorf("addresses[%d]: %w", i, err)
		}
		b.AddRange(r)
	}
	set, err := b.IPSet()
	if err != nil {
		return nil, fmt.Errorf("building address set: %w", err)
	}
	return set, nil
}

// ParseIPList parses a comma-separated list of single addresses, as in the
// herald.io/ips annotation, normalising each once at the boundary.
func ParseIPList(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		a, err := parseAddr(f)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Join writes addresses for people: "10.0.0.1, fd00::1".
func Join(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}
