package main

import (
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// inFreshNetns runs f on a locked thread in a new, empty network namespace, and
// skips the test where that is not allowed.
func inFreshNetns(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	nsErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread is never unlocked: it dies with the goroutine, and with it
		// the namespace, rather than go back to the pool in the wrong one.
		runtime.LockOSThread()
		ns, err := netns.New()
		nsErr <- err
		if err != nil {
			return
		}
		defer ns.Close()
		f()
	}()
	<-done
	switch err := <-nsErr; {
	case errors.Is(err, os.ErrPermission):
		t.Skip("no permission to create a network namespace")
	case err != nil:
		t.Fatalf("creating a network namespace: %v", err)
	}
}

func TestNetlinkTable(t *testing.T) {
	inFreshNetns(t, func() {
		// A veth standing in for kind's eth0, with both families.
		link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}
		if err := netlink.LinkAdd(link); err != nil {
			t.Errorf("adding a veth: %v", err)
			return
		}
		peer, err := netlink.LinkByName("peer0")
		if err == nil {
			err = netlink.LinkSetUp(peer)
		}
		if err != nil {
			t.Errorf("setting the veth peer up: %v", err)
			return
		}
		for _, a := range []string{"172.18.0.2/16", "fc00:f853:ccd:e793::2/64"} {
			addr, _ := netlink.ParseAddr(a)
			addr.Flags = 0x80 // IFA_F_NODAD: usable at once, no duplicate detection wait
			if err := netlink.AddrAdd(link, addr); err != nil {
				t.Errorf("adding %s: %v", a, err)
				return
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Errorf("setting the link up: %v", err)
			return
		}
		// A route of someone else's that the table must not see or touch.
		_, foreign, _ := net.ParseCIDR("10.99.0.0/16")
		if err := netlink.RouteAdd(&netlink.Route{Dst: foreign, Gw: net.ParseIP("172.18.0.99")}); err != nil {
			t.Errorf("adding a foreign route: %v", err)
			return
		}

		tab, err := newRouteTable()
		if err != nil {
			t.Errorf("newRouteTable: %v", err)
			return
		}
		want := []Route{
			route("10.244.1.0/24", "172.18.0.3"),
			route("fd00:10:244:1::/64", "fc00:f853:ccd:e793::3"),
		}
		if err := syncRoutes(testLogger(t), tab, want); err != nil {
			t.Errorf("syncRoutes: %v", err)
			return
		}
		if got, err := tab.List(); err != nil || !sameRoutes(got, want) {
			t.Errorf("List = %v, %v; want %v", got, err, want)
		}

		moved := []Route{route("10.244.1.0/24", "172.18.0.30")}
		if err := syncRoutes(testLogger(t), tab, moved); err != nil {
			t.Errorf("syncRoutes (moved): %v", err)
			return
		}
		if got, err := tab.List(); err != nil || !sameRoutes(got, moved) {
			t.Errorf("List = %v, %v; want %v", got, err, moved)
		}

		if err := syncRoutes(testLogger(t), tab, nil); err != nil {
			t.Errorf("syncRoutes (none): %v", err)
		}
		if got, err := tab.List(); err != nil || len(got) != 0 {
			t.Errorf("List = %v, %v; want none", got, err)
		}
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: foreign}, netlink.RT_FILTER_DST)
		if err != nil || len(rs) != 1 {
			t.Errorf("foreign route = %v, %v; want it untouched", rs, err)
		}
	})
}

func sameRoutes(a, b []Route) bool {
	cmp := func(x, y Route) int { return x.Dst.Addr().Compare(y.Dst.Addr()) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}
