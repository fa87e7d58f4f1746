//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2e/lab"
	"github.com/heraldlb/herald/internal/procmem"
)

// benchLine prints a `make bench` line and appends it to $HERALD_BENCH_OUT.
func benchLine(b *testing.B, name string, value float64, unit string) {
	line := fmt.Sprintf("bench: %s %.1f %s", name, value, unit)
	b.Log(line)
	fmt.Println(line)
	if out := os.Getenv("HERALD_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
}

// freshAnswer reports whether a fresh resolution of ip (neighbour entry flushed)
// reaches a pod, and through which node.
func freshAnswer(l *lab.Lab, ip string) (string, bool) {
	_, _ = l.Exec(lab.NSClient, "ip", "neigh", "flush", "to", ip)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	out, err := l.ExecContext(ctx, lab.NSClient, "curl", "-s", "--fail", "--max-time", "0.3", url(ip))
	if err != nil || !anyWhoami.MatchString(out) {
		return "", false
	}
	return nodeOfMAC(l, neighMAC(l, ip)), true
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkLayer2 measures the layer 2 figures of DESIGN.md in the lab. b.N is
// ignored: each measure has its own repetitions.
func BenchmarkLayer2(b *testing.B) {
	l := heraldLab(b)
	ctx := context.Background()
	ip := whoamiService(b, l, "bench", "web", false, l.NodeNames()...)[0]

	// kill -9 of the owner, 10 times: time until a fresh resolution answers from
	// another node (the dead speaker's node still forwards traffic through its
	// kube-proxy, so requests to it do not fail; clients that re-resolve must find
	// the new owner).
	var failovers []time.Duration
	for i := 0; i < 10; i++ {
		owner := resolvedOwner(b, l, ip)
		start := time.Now()
		if err := l.KillSpeaker(owner, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		for {
			if n, ok := freshAnswer(l, ip); ok && n != owner && n != "" {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("no new owner 10 s after killing %s", owner)
			}
			time.Sleep(20 * time.Millisecond)
		}
		failovers = append(failovers, time.Since(start))
		if err := l.StartSpeaker(ctx, owner); err != nil {
			b.Fatal(err)
		}
		time.Sleep(holdDown + 2*time.Second) // let it settle (it takes nothing back)
	}
	benchLine(b, "l2-failover-kill9-median", ms(percentile(failovers, 50)), "ms")
	benchLine(b, "l2-failover-kill9-worst-of-10", ms(slices.Max(failovers)), "ms")

	// SIGTERM: requests every 20 ms, failures counted.
	owner := resolvedOwner(b, l, ip)
	p := startProbe(b, l, ip)
	time.Sleep(500 * time.Millisecond)
	if err := l.KillSpeaker(owner, syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	ok, failed, _ := p.finish(b)
	benchLine(b, "l2-graceful-failed-requests", float64(failed), fmt.Sprintf("of-%d", ok+failed))
	if err := l.StartSpeaker(ctx, owner); err != nil {
		b.Fatal(err)
	}
	time.Sleep(holdDown + 2*time.Second)

	// Link cut: requests every 20 ms; the outage is first to last failure. The
	// lab runs no controller-manager to mark the cut node's pod unready, so the
	// Service's endpoints are first moved off the owner: what is measured is the
	// address moving, not kube-proxy sending to an unreachable pod.
	owner = resolvedOwner(b, l, ip)
	var others []string
	for i, n := range l.NodeNames() {
		if n != owner {
			others = append(others, fmt.Sprintf("web-%d", i+1))
		}
	}
	if err := l.SetEndpoints(ctx, "web", "bench", others...); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	p = startProbe(b, l, ip)
	time.Sleep(300 * time.Millisecond)
	if err := l.CutLink(owner); err != nil {
		b.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	_, failed, outage := p.finish(b)
	if err := l.RestoreLink(owner); err != nil {
		b.Fatal(err)
	}
	benchLine(b, "l2-link-cut-outage", ms(outage), fmt.Sprintf("ms(%d-failed-requests)", failed))

	// Address assigned → first answer, over 20 new Services.
	lat := assignedToAnswer(b, l, "first", 20)
	benchLine(b, "l2-assigned-to-answer-median", ms(percentile(lat, 50)), "ms")
	benchLine(b, "l2-assigned-to-answer-p95", ms(percentile(lat, 95)), "ms")

	// Address assigned → first answer again, with one node dead (link cut):
	// joins to it and its failure must not slow anything down.
	dead := l.NodeNames()[2]
	if err := l.CutLink(dead); err != nil {
		b.Fatal(err)
	}
	time.Sleep(3 * time.Second) // declared dead, joins to it failing
	lat = assignedToAnswer(b, l, "dead", 20)
	if err := l.RestoreLink(dead); err != nil {
		b.Fatal(err)
	}
	benchLine(b, "l2-assigned-to-answer-one-node-dead-median", ms(percentile(lat, 50)), "ms")
	benchLine(b, "l2-assigned-to-answer-one-node-dead-p95", ms(percentile(lat, 95)), "ms")
	time.Sleep(holdDown + 2*time.Second)

	// Owner changes seen by a client over failure/return cycles: the client's
	// neighbour entry for the address, watched while it sends a request every
	// 20 ms. Goal: one change per failure, none on the return.
	cycles := []struct {
		name        string
		fail, heal  func(node string) error
		failedAfter time.Duration
	}{
		{"kill9-restart", func(n string) error { return l.KillSpeaker(n, syscall.SIGKILL) }, func(n string) error { return l.StartSpeaker(ctx, n) }, 3 * time.Second},
		{"link-cut-return", l.CutLink, l.RestoreLink, 3 * time.Second},
		{"gossip-cut-heal", func(n string) error { return gossipCut(l, n, "-I") }, func(n string) error { return gossipCut(l, n, "-D") }, 4 * time.Second},
	}
	for _, cy := range cycles {
		var onFail, onReturn []int
		for range 3 {
			owner := resolvedOwner(b, l, ip)
			nw := watchNeigh(b, l, lab.NSClient, ip)
			p := startProbe(b, l, ip)
			time.Sleep(300 * time.Millisecond)
			if err := cy.fail(owner); err != nil {
				b.Fatal(err)
			}
			time.Sleep(cy.failedAfter)
			mid := time.Now()
			if err := cy.heal(owner); err != nil {
				b.Fatal(err)
			}
			time.Sleep(holdDown + 3*time.Second)
			p.halt()
			n1, n2 := 0, 0
			for _, c := range nw.Changes() {
				if c.at.Before(mid) {
					n1++
				} else {
					n2++
				}
			}
			onFail, onReturn = append(onFail, n1), append(onReturn, n2)
		}
		back := 0
		for _, n := range onReturn {
			back += n
		}
		benchLine(b, "l2-owner-changes-on-return-"+cy.name, float64(back), fmt.Sprintf("changes(on-failure=%v,on-return=%v,3-cycles)", onFail, onReturn))
	}

	// Speaker resident memory.
	rss, anon := maxSpeakerMemory(l)
	benchLine(b, "l2-speaker-rss-max", rss, "MB")
	benchLine(b, "l2-speaker-anon-max", anon, "MB")
}

// maxSpeakerMemory returns the largest resident memory (RSS) and the largest
// anonymous part among the lab's speakers, in MB.
func maxSpeakerMemory(l *lab.Lab) (rss, anon float64) {
	for _, ps := range l.Processes() {
		if !strings.HasPrefix(ps.Name, "speaker-") || !ps.Running {
			continue
		}
		if u, err := procmem.Read(ps.PID); err == nil {
			rss, anon = max(rss, procmem.MB(u.RSS)), max(anon, procmem.MB(u.Anon))
		}
	}
	return rss, anon
}

// gossipCut inserts (-I) or deletes (-D) the rules that drop memberlist's
// traffic (port 7946, both ways) on node, leaving ARP and every other flow.
func gossipCut(l *lab.Lab, node, op string) error {
	for _, r := range [][]string{
		{"INPUT", "-p", "udp", "--dport", "7946", "-j", "DROP"},
		{"INPUT", "-p", "tcp", "--dport", "7946", "-j", "DROP"},
		{"OUTPUT", "-p", "udp", "--dport", "7946", "-j", "DROP"},
		{"OUTPUT", "-p", "tcp", "--dport", "7946", "-j", "DROP"},
	} {
		if out, err := l.Exec("lab-"+node, append([]string{"iptables", op}, r...)...); err != nil && op == "-I" {
			return fmt.Errorf("%v: %s", err, out)
		}
	}
	return nil
}

// assignedToAnswer creates n Services one by one (named prefix-i, endpoint
// web-1) and returns, for each, the time from its address appearing in status
// to the first answer to a fresh resolution.
func assignedToAnswer(b *testing.B, l *lab.Lab, prefix string, n int) []time.Duration {
	ctx := context.Background()
	cs := l.Client()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		createService(ctx, b, cs, "bench", name, "LoadBalancer")
		if err := l.SetEndpoints(ctx, name, "bench", "web-1"); err != nil {
			b.Fatal(err)
		}
		var addr string
		var assigned time.Time
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			s, err := cs.CoreV1().Services("bench").Get(ctx, name, metav1.GetOptions{})
			if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
				addr, assigned = s.Status.LoadBalancer.Ingress[0].IP, time.Now()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		for {
			if _, ok := freshAnswer(l, addr); ok {
				break
			}
			if time.Since(assigned) > 10*time.Second {
				b.Fatalf("%s never answered", addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		lat = append(lat, time.Since(assigned))
		_ = cs.CoreV1().Services("bench").Delete(ctx, name, metav1.DeleteOptions{})
	}
	return lat
}
