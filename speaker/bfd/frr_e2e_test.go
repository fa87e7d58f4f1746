//go:build e2e && linux

package bfd

// Interoperability with FRR's bfdd: FRR in one network namespace, a Manager in
// another, a veth pair between them. Runs as root with FRR installed
// (/usr/lib/frr/bfdd, vtysh):
//
//	go test -tags e2e -run FRR ./speaker/bfd/
//
// Namespaces and veths are named bfdt-*; FRR's files live in /tmp/bfdt-frr.
// Both are removed at the start (leftovers of a killed run) and at the end.
// /tmp/herald-lab.lock is held meanwhile, as the lab does.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	nsFRR   = "bfdt-frr"
	nsGo    = "bfdt-go"
	vethFRR = "bfdt-f"
	vethGo  = "bfdt-g"
	frrDir  = "/tmp/bfdt-frr"
)

var (
	frrV4 = netip.MustParseAddr("10.201.0.1")
	goV4  = netip.MustParseAddr("10.201.0.2")
	frrV6 = netip.MustParseAddr("fd20:201::1")
	goV6  = netip.MustParseAddr("fd20:201::2")
)

// settle is how long sessions run after coming Up before a measurement, so
// both sides' Poll Sequences (1 s → 300 ms) are long over.
const settle = 2 * time.Second

const bfddConf = `! bfdd of the herald BFD interop test
hostname bfdt-frr
log stdout debugging
log timestamp precision 3
debug bfd peer
bfd
 peer 10.201.0.2 local-address 10.201.0.1
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
 peer fd20:201::2 local-address fd20:201::1
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
exit
`

func TestFRRInterop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	bfdd := "/usr/lib/frr/bfdd"
	if _, err := os.Stat(bfdd); err != nil {
		t.Skipf("FRR's bfdd is not installed: %v", err)
	}
	unlock := labLock(t)
	defer unlock()
	cleanupFRR(t)
	t.Cleanup(func() { cleanupFRR(t) })
	setupTopology(t)
	startFRR(t)
	if p := os.Getenv("BFDT_PCAP"); p != "" {
		// Debugging aid: capture what FRR's side sees.
		cap := exec.Command("ip", "netns", "exec", nsFRR, "tshark", "-q", "-i", vethFRR, "-w", p, "udp")
		if err := cap.Start(); err == nil {
			t.Cleanup(func() { cap.Process.Signal(syscall.SIGTERM); cap.Wait() })
			time.Sleep(time.Second)
		}
	}

	peers := []Peer{
		{Address: frrV4, Local: goV4, MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3},
		{Address: frrV6, Local: goV6, MinRx: 300 * time.Millisecond, MinTx: 300 * time.Millisecond, Multiplier: 3},
	}
	ev := newEvents()
	m := startGoSide(t, peers, ev)
	waitFRR(t, "up", 10*time.Second, func(p frrPeer) bool { return p.Status == "up" })
	waitGoUp(t, m, 5*time.Second)
	ev.drain()
	time.Sleep(settle)
	for _, p := range frrPeers(t) {
		t.Logf("FRR peer %s: status %s, tx %d ms, rx %d ms, remote tx %d ms, remote rx %d ms, remote mult %d",
			p.Peer, p.Status, p.TransmitInterval, p.ReceiveInterval, p.RemoteTransmitInterval, p.RemoteReceiveInterval, p.RemoteDetectMultiplier)
		if p.RemoteTransmitInterval != 300 || p.RemoteReceiveInterval != 300 {
			t.Errorf("FRR sees our intervals as tx %d rx %d ms; want 300/300", p.RemoteTransmitInterval, p.RemoteReceiveInterval)
		}
	}
	for _, st := range m.Status() {
		t.Logf("Go peer %s: %v/%v tx %v detection %v", st.Address, st.State, st.RemoteState, st.TxInterval, st.DetectionTime)
	}

	t.Run("timer change", func(t *testing.T) {
		// A Poll Sequence with FRR: it must see our new intervals and stay up.
		changed := time.Now()
		for _, iv := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 300 * time.Millisecond} {
			q := slices.Clone(peers)
			for i := range q {
				q[i].MinTx, q[i].MinRx = iv, iv
			}
			if err := inNetNS(nsGo, func() error { return m.Set(context.Background(), q) }); err != nil {
				t.Fatal(err)
			}
			ms := int(iv / time.Millisecond)
			waitFRR(t, fmt.Sprintf("seeing %d ms", ms), 5*time.Second, func(p frrPeer) bool {
				return p.Status == "up" && p.RemoteTransmitInterval == ms && p.RemoteReceiveInterval == ms
			})
			want := max(iv, 300*time.Millisecond) // FRR's 300 ms bound both ways
			deadline := time.Now().Add(3 * time.Second)
			for {
				ok := true
				for _, st := range m.Status() {
					ok = ok && st.State == StateUp && !st.Polling && st.TxInterval == want && st.DetectionTime == 3*want
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Go side after changing to %v: %+v; want Up, tx and 3× detection of %v", iv, m.Status(), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			t.Logf("timers %v: FRR sees them, Go negotiated tx %v detection %v", iv, want, 3*want)
		}
		if d := frrDowns(t, changed); len(d) > 0 {
			t.Errorf("FRR went down during the timer changes: %v", d)
		}
		if n := len(ev.ch); n > 0 {
			t.Errorf("%d OnChange calls during the timer changes", n)
		}
	})

	t.Run("link cut", func(t *testing.T) {
		// Drop everything both ways on the Go side's veth without touching the
		// link state, so both daemons learn of it only through BFD. (This
		// kernel has no tc classifiers; iptables it has.)
		cut, outCut, inCut := firewall(t, "-A")
		for peer, took := range frrDownAfter(t, cut) {
			atMost := took - outCut.Sub(cut)
			t.Logf("FRR declared %s down %v–%v after the link cut", peer, atMost, took)
			if atMost > time.Second {
				t.Errorf("FRR took %v to detect the cut of %s; want ≤ 1s (300 ms × 3)", atMost, peer)
			}
		}
		for _, p := range frrPeers(t) {
			if p.Diagnostic != "control detection time expired" {
				t.Errorf("FRR peer %s diagnostic %q; want control detection time expired", p.Peer, p.Diagnostic)
			}
		}
		for range peers {
			e := ev.waitAny(t, 3*time.Second)
			if e.up {
				t.Fatalf("OnChange(%s, up) during the cut", e.peer)
			}
			t.Logf("Go declared %s down %v–%v after the link cut", e.peer, e.at.Sub(inCut), e.at.Sub(cut))
		}
		for _, st := range m.Status() {
			if st.State != StateDown || st.LastDiag != DiagControlDetectExpired {
				t.Errorf("Go peer %s: %v diag %v; want Down, %v", st.Address, st.State, st.LastDiag, DiagControlDetectExpired)
			}
		}
		firewall(t, "-D")
		healed := time.Now()
		waitFRR(t, "up again", 10*time.Second, func(p frrPeer) bool { return p.Status == "up" })
		waitGoUp(t, m, 5*time.Second)
		t.Logf("Up again %v after the link came back", time.Since(healed))
		ev.drain()
		time.Sleep(settle)
	})

	t.Run("stop without AdminDown", func(t *testing.T) {
		// A packet may still leave while Stop runs: the time that counts is
		// from Stop's return, when nothing more is sent.
		stopping := time.Now()
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		for peer, took := range frrDownAfter(t, stopping) {
			took -= stopped.Sub(stopping)
			t.Logf("FRR declared %s down %v after Stop returned (%v to stop)", peer, took, stopped.Sub(stopping))
			if took > time.Second {
				t.Errorf("FRR took %v to detect the stop of %s; want ≤ 1s", took, peer)
			}
		}
		for _, p := range frrPeers(t) {
			if p.Diagnostic != "control detection time expired" {
				t.Errorf("FRR peer %s diagnostic %q; want control detection time expired", p.Peer, p.Diagnostic)
			}
		}
	})

	t.Run("close with AdminDown", func(t *testing.T) {
		ev := newEvents()
		m := startGoSide(t, peers, ev)
		waitFRR(t, "up", 10*time.Second, func(p frrPeer) bool { return p.Status == "up" })
		waitGoUp(t, m, 5*time.Second)
		time.Sleep(settle)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed := time.Now()
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("Close took %v", time.Since(closed))
		for peer, took := range frrDownAfter(t, closed) {
			t.Logf("FRR took %s down %v after Close began", peer, took)
		}
		for _, p := range frrPeers(t) {
			t.Logf("FRR peer %s: status %s, diagnostic %q, remote diagnostic %q", p.Peer, p.Status, p.Diagnostic, p.RemoteDiagnostic)
			if p.RemoteDiagnostic != "administratively down" || p.Diagnostic != "neighbor signaled session down" {
				t.Errorf("FRR peer %s: diagnostic %q, remote %q; want neighbor signaled session down, remote administratively down",
					p.Peer, p.Diagnostic, p.RemoteDiagnostic)
			}
		}
		// Still not a detection failure a Detection Time later.
		time.Sleep(1200 * time.Millisecond)
		for _, p := range frrPeers(t) {
			if p.Diagnostic == "control detection time expired" {
				t.Errorf("FRR peer %s reports a detection failure after our AdminDown", p.Peer)
			}
		}
	})
	if t.Failed() {
		if b, err := os.ReadFile(filepath.Join(frrDir, "bfdd.log")); err == nil {
			t.Logf("bfdd log (tail):\n%s", tail(string(b), 60))
		}
	}
}

// labLock takes /tmp/herald-lab.lock, which every user of network namespaces
// on this machine takes, so two labs never work at once.
func labLock(t *testing.T) func() {
	t.Helper()
	f, err := os.OpenFile("/tmp/herald-lab.lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("locking /tmp/herald-lab.lock: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// cleanupFRR removes what this test makes: its FRR processes (by their PID
// files, and only when they run from frrDir), namespaces and files.
func cleanupFRR(t *testing.T) {
	for _, d := range []string{"bfdd", "zebra"} {
		b, err := os.ReadFile(filepath.Join(frrDir, d+".pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), frrDir) {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 50; i++ {
			if syscall.Kill(pid, 0) != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, ns := range []string{nsFRR, nsGo} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	os.RemoveAll(frrDir)
}

func setupTopology(t *testing.T) {
	t.Helper()
	run(t, "ip", "netns", "add", nsFRR)
	run(t, "ip", "netns", "add", nsGo)
	run(t, "ip", "link", "add", vethFRR, "netns", nsFRR, "type", "veth", "peer", "name", vethGo, "netns", nsGo)
	for _, c := range []struct {
		ns, dev string
		v4, v6  netip.Addr
	}{{nsFRR, vethFRR, frrV4, frrV6}, {nsGo, vethGo, goV4, goV6}} {
		run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", c.ns, "addr", "add", c.v4.String()+"/24", "dev", c.dev)
		run(t, "ip", "-n", c.ns, "addr", "add", c.v6.String()+"/64", "dev", c.dev, "nodad")
		run(t, "ip", "-n", c.ns, "link", "set", c.dev, "up")
	}
}

// startFRR starts zebra and bfdd in nsFRR, with every file in frrDir (owned
// by frr, as the daemons drop to it), and waits until bfdd answers.
func startFRR(t *testing.T) {
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Skipf("no frr user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(frrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"bfdd.conf": bfddConf, "zebra.conf": "hostname bfdt-frr\nlog stdout informational\n"} {
		p := filepath.Join(frrDir, name)
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	if err := os.Chown(frrDir, uid, gid); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"zebra", "bfdd"} {
		argv := []string{"netns", "exec", nsFRR, "/usr/lib/frr/" + d,
			"-f", filepath.Join(frrDir, d+".conf"),
			"-i", filepath.Join(frrDir, d+".pid"),
			"-z", filepath.Join(frrDir, "zserv.api"),
			"--vty_socket", frrDir, "-P", "0"}
		if d == "bfdd" {
			argv = append(argv, "--bfdctl", filepath.Join(frrDir, "bfdd.sock"))
		}
		logf, err := os.Create(filepath.Join(frrDir, d+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("ip", argv...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", d, err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			logf.Close()
		})
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := vtysh(d, "show version")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(frrDir, d+".log"))
				t.Fatalf("%s does not answer: %v\n%s", d, err, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func vtysh(daemon string, cmds ...string) (string, error) {
	argv := []string{"netns", "exec", nsFRR, "vtysh", "--vty_socket", frrDir, "-d", daemon}
	for _, c := range cmds {
		argv = append(argv, "-c", c)
	}
	out, err := exec.Command("ip", argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %v: %w: %s", cmds, err, out)
	}
	return string(out), nil
}

type frrPeer struct {
	Peer                   string `json:"peer"`
	Local                  string `json:"local"`
	Status                 string `json:"status"`
	Diagnostic             string `json:"diagnostic"`
	RemoteDiagnostic       string `json:"remote-diagnostic"`
	ReceiveInterval        int    `json:"receive-interval"`
	TransmitInterval       int    `json:"transmit-interval"`
	RemoteReceiveInterval  int    `json:"remote-receive-interval"`
	RemoteTransmitInterval int    `json:"remote-transmit-interval"`
	RemoteDetectMultiplier int    `json:"remote-detect-multiplier"`
}

func frrPeers(t *testing.T) []frrPeer {
	t.Helper()
	out, err := vtysh("bfdd", "show bfd peers json")
	if err != nil {
		t.Fatal(err)
	}
	var ps []frrPeer
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	return ps
}

// waitFRR polls bfdd until every peer satisfies ok and returns when it first
// saw that (the resolution is one vtysh call, a few milliseconds).
func waitFRR(t *testing.T, what string, within time.Duration, ok func(frrPeer) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ps := frrPeers(t)
		now := time.Now()
		all := len(ps) == 2
		for _, p := range ps {
			all = all && ok(p)
		}
		if all {
			return now
		}
		if now.After(deadline) {
			t.Fatalf("FRR's peers are not %s within %v: %+v", what, within, ps)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitGoUp(t *testing.T, m *Manager, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		up := 0
		st := m.Status()
		for _, s := range st {
			if s.State == StateUp && !s.Polling {
				up++
			}
		}
		if up == len(st) && up > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Go sessions not Up within %v: %+v", within, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startGoSide starts a Manager whose sockets live in nsGo: sockets belong to
// the namespace they are made in, so New and Set run on a thread moved there.
func startGoSide(t *testing.T, peers []Peer, ev *events) *Manager {
	t.Helper()
	var m *Manager
	err := inNetNS(nsGo, func() error {
		var err error
		m, err = New(Config{
			Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
			OnChange: ev.on,
		})
		if err != nil {
			return err
		}
		return m.Set(context.Background(), peers)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	return m
}

func inNetNS(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		panic(fmt.Sprintf("cannot return to the test's network namespace: %v", err))
	}
	return ferr
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// firewall adds (-A) or deletes (-D) rules that drop all traffic on the Go
// side's veth, both ways, both families: first our outgoing packets, then
// the incoming ones. It returns when it began, when the outgoing rules were
// in place (FRR stopped hearing us in between) and when it ended (we
// stopped hearing FRR between the begin and then).
func firewall(t *testing.T, op string) (begin, outCut, end time.Time) {
	t.Helper()
	begin = time.Now()
	for _, ipt := range []string{"iptables", "ip6tables"} {
		run(t, "ip", "netns", "exec", nsGo, ipt, op, "OUTPUT", "-o", vethGo, "-j", "DROP")
	}
	outCut = time.Now()
	for _, ipt := range []string{"iptables", "ip6tables"} {
		run(t, "ip", "netns", "exec", nsGo, ipt, op, "INPUT", "-i", vethGo, "-j", "DROP")
	}
	return begin, outCut, time.Now()
}

// frrDownAfter waits until bfdd shows both peers down and returns, per peer,
// how long after since bfdd logged its up -> down change: the log has
// millisecond timestamps, finer than polling vtysh.
func frrDownAfter(t *testing.T, since time.Time) map[string]time.Duration {
	t.Helper()
	waitFRR(t, "down", 5*time.Second, func(p frrPeer) bool { return p.Status == "down" })
	got := frrDowns(t, since)
	if len(got) != 2 {
		t.Fatalf("bfdd logged up -> down for %v since %v; want both peers", got, since)
	}
	return got
}

// frrDowns returns, per peer, how long after since bfdd first logged an
// up -> down change.
func frrDowns(t *testing.T, since time.Time) map[string]time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(frrDir, "bfdd.log"))
	if err != nil {
		t.Fatal(err)
	}
	const layout = "2006/01/02 15:04:05.000"
	got := map[string]time.Duration{}
	for _, l := range strings.Split(string(b), "\n") {
		if len(l) < len(layout) || !strings.Contains(l, "state-change") || !strings.Contains(l, "up -> down") {
			continue
		}
		at, err := time.ParseInLocation(layout, l[:len(layout)], time.Local)
		if err != nil || at.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		_, rest, ok := strings.Cut(l, " peer:")
		if !ok {
			continue
		}
		peer, _, _ := strings.Cut(rest, " ")
		if _, seen := got[peer]; !seen {
			got[peer] = at.Sub(since)
		}
	}
	return got
}
