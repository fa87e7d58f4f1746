//go:build kind

package kind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testpoll"
)

// earlyPorts are the client ports the first-seconds test connects from: outside
// Linux's default ephemeral range (32768–60999), so nothing else takes them.
const earlyPorts = 61000

// portResult is what one client port saw, from the address's assignment.
type portResult struct {
	port     int
	attempts int
	// timeouts counts connections that got no answer: their SYN reached a
	// node with no rule for the address yet.
	timeouts int
	through  time.Duration // first connection that got through; 0: none
	lastErr  string
}

// connectFromPorts connects to ip:80 from each of n fixed client ports, each
// port again and again (a second's timeout, 100 ms apart) until one connection
// gets through or within ends, and reports each port's story. A connection
// whose SYN reached a node before kube-proxy had its rules leaves a conntrack
// entry that every later SYN from that port follows (README, "The first
// seconds of a new address"): without the speakers deleting it, the port never
// gets through within the two minutes the entry lives.
func connectFromPorts(ip string, n int, within time.Duration) []portResult {
	start := time.Now()
	res := make([]portResult, n)
	var wg sync.WaitGroup
	for i := range res {
		res[i].port = earlyPorts + i
		wg.Add(1)
		go func(r *portResult) {
			defer wg.Done()
			for time.Since(start) < within {
				r.attempts++
				d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{Port: r.port}}
				conn, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort(ip, "80"))
				if err == nil {
					r.through = time.Since(start)
					// A reset, not a close: the port goes into no
					// TIME_WAIT, and a run a minute later can bind it.
					_ = conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
					return
				}
				r.lastErr = err.Error()
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					r.timeouts++
				}
				if errors.Is(err, syscall.EADDRINUSE) {
					r.lastErr += " (the port is busy: not the case under test)"
				}
				time.Sleep(100 * time.Millisecond)
			}
		}(&res[i])
	}
	wg.Wait()
	return res
}

func testFirstSeconds(t *testing.T, c *cluster) {
	c.apply(t, lbService("early", "web", false, nil))
	t.Cleanup(func() { _, _ = c.kubectl("-n", testNS, "delete", "service", "early", "--ignore-not-found") })
	ip := c.waitIP(t, "early", 30*time.Second)
	res := connectFromPorts(ip, 8, 30*time.Second)
	hit := 0
	var lines []string
	for _, r := range res {
		if r.timeouts > 0 {
			hit++
		}
		lines = append(lines, fmt.Sprintf("port %d: %d attempts, %d timed out, through after %v (last error %q)", r.port, r.attempts, r.timeouts, r.through.Round(time.Millisecond), r.lastErr))
	}
	t.Logf("%s assigned; from 8 client ports connecting at once:\n%s", ip, strings.Join(lines, "\n"))
	all := true
	for _, r := range res {
		if r.through == 0 {
			all = false
			t.Errorf("port %d never got through to %s in 30 s (%d attempts, %d timed out): a flow from before kube-proxy's rules is still followed", r.port, ip, r.attempts, r.timeouts)
		}
	}
	if all {
		t.Logf("bench: kind new address, %d of 8 client ports timed out in its first seconds, all through %v after the assignment", hit, slowest(res).Round(time.Millisecond))
	}
	out, _ := c.kubectl("-n", "herald-system", "logs", "-l", "app.kubernetes.io/component=speaker", "--tail", "-1", "--prefix")
	var deleted []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Deleted connections") && strings.Contains(l, `"`+ip+`"`) {
			deleted = append(deleted, l)
		}
	}
	t.Logf("the speakers' deletions of untranslated flows to %s:\n%s", ip, strings.Join(deleted, "\n"))
	// A flow's entry on a node its SYNs only passed through goes at that
	// node's next sweep: every 1 s in the first 10 s, every 5 s after.
	testpoll.Until(t, 15*time.Second, "no untranslated flow to "+ip+" left on any node", func() (bool, string) {
		n := c.untranslatedFlows(t, ip, "-L")
		return n == 0, fmt.Sprintf("%d left", n)
	})
}

// slowest is the longest time a port took to get through.
func slowest(res []portResult) time.Duration {
	var m time.Duration
	for _, r := range res {
		m = max(m, r.through)
	}
	return m
}
