package flows

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcpSynSent is the kernel's TCP_CONNTRACK_SYN_SENT: a SYN seen, nothing back.
const tcpSynSent = 1

// Conntrack is the kernel's connection tracking table of the speaker's network
// namespace (the node's: the speaker runs with hostNetwork).
type Conntrack struct{}

// DeleteUntranslated dumps the table of each family in addrs once and deletes
// the matching entries (see Table). A dump interrupted by concurrent changes
// still deletes what it read; the next sweep catches the rest.
func (Conntrack) DeleteUntranslated(addrs []netip.Addr) (map[netip.Addr]int, error) {
	deleted := map[netip.Addr]int{}
	var errs []error
	for _, fam := range []struct {
		family netlink.InetFamily
		is4    bool
	}{{unix.AF_INET, true}, {unix.AF_INET6, false}} {
		f := &untranslated{addrs: map[netip.Addr]bool{}, matched: deleted}
		for _, a := range addrs {
			if a.Unmap().Is4() == fam.is4 {
				f.addrs[a.Unmap()] = true
			}
		}
		if len(f.addrs) == 0 {
			continue
		}
		if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, fam.family, f); err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			if errors.Is(err, syscall.EPERM) {
				return deleted, fmt.Errorf("deleting conntrack entries: %w", syscall.EPERM)
			}
			errs = append(errs, fmt.Errorf("deleting conntrack entries: %w", err))
		}
	}
	return deleted, errors.Join(errs...)
}

// untranslated matches the entries DeleteUntranslated deletes and counts them
// by address. netlink deletes each match before it asks about the next flow.
type untranslated struct {
	addrs   map[netip.Addr]bool
	matched map[netip.Addr]int
}

func (u *untranslated) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	if !Untranslated(f) {
		return false
	}
	dst, _ := netip.AddrFromSlice(f.Forward.DstIP)
	if !u.addrs[dst.Unmap()] {
		return false
	}
	u.matched[dst.Unmap()]++
	return true
}

// Untranslated reports whether f is a TCP flow waiting for its first answer
// whose reply would come from the address it was sent to: no NAT rule took it.
func Untranslated(f *netlink.ConntrackFlow) bool {
	if f.Forward.Protocol != unix.IPPROTO_TCP {
		return false
	}
	tcp, ok := f.ProtoInfo.(*netlink.ProtoInfoTCP)
	if !ok || tcp.State != tcpSynSent {
		return false
	}
	return f.Forward.DstIP.Equal(f.Reverse.SrcIP) && f.Forward.DstPort == f.Reverse.SrcPort
}
