package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSpec is a long-running process of the lab, started in a namespace with
// `ip netns exec`, logging to logs/<name>.log, its PID kept in pids/<name>.json so
// that Down and a later Up (perhaps in another process) can find it.
type procSpec struct {
	name string // etcd, kube-apiserver, controller, kube-proxy-node1, speaker-node1, whoami-<pod>
	ns   string
	argv []string
	env  []string // added to the lab's environment
}

// pidRecord is a PID file.
type pidRecord struct {
	Name string `json:"name"`
	NS   string `json:"ns"`
	PID  int    `json:"pid"`
	// Start is the process's start time from /proc/PID/stat: it tells a PID the
	// kernel has since given to another process apart.
	Start uint64 `json:"start"`
	// Hash names the command line, environment and binary the process runs, so a
	// reused lab restarts a process whose binary or flags changed.
	Hash string `json:"hash"`
}

// ProcessStatus describes one process of the lab.
type ProcessStatus struct {
	Name    string // e.g. "kube-proxy-node1"
	NS      string // the namespace it runs in
	PID     int
	Running bool
	Log     string // its log file
}

// Processes lists the lab's processes, running or not, by name.
func (l *Lab) Processes() []ProcessStatus {
	var out []ProcessStatus
	for _, rec := range pidRecords(l.cfg) {
		out = append(out, ProcessStatus{Name: rec.Name, NS: rec.NS, PID: rec.PID, Running: rec.alive(), Log: l.cfg.logPath(rec.Name)})
	}
	slices.SortFunc(out, func(a, b ProcessStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (p procSpec) hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%q\n", p.ns, p.argv, p.env)
	if len(p.argv) > 0 {
		if fi, err := os.Stat(p.argv[0]); err == nil {
			fmt.Fprintf(h, "%d %d\n", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// startProc starts p and records its PID. The process outlives this one: it has its
// own process group, so a Ctrl-C meant for `lab up` does not reach it.
func startProc(cfg Config, p procSpec) error {
	for _, dir := range []string{cfg.logDir(), cfg.pidDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("starting %s: %w", p.name, err)
		}
	}
	f, err := os.OpenFile(cfg.logPath(p.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s ip netns exec %s %s\n", time.Now().Format(time.RFC3339Nano), p.ns, strings.Join(p.argv, " "))
	cmd := exec.Command(ipCmd, append([]string{"netns", "exec", p.ns}, p.argv...)...)
	cmd.Env = append(childEnv(), p.env...)
	cmd.Dir = cfg.StateDir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	pid := cmd.Process.Pid
	st, stErr := procStartTime(pid)
	// Reap it if it ends while this process lives; otherwise init does.
	go func() { _ = cmd.Wait() }()
	if stErr != nil {
		return fmt.Errorf("starting %s: it exited at once:\n%s", p.name, logTail(cfg, p.name))
	}
	rec := pidRecord{Name: p.name, NS: p.ns, PID: pid, Start: st, Hash: p.hash()}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("recording the PID of %s: %w", p.name, err)
	}
	if err := os.WriteFile(cfg.pidPath(p.name), b, 0o644); err != nil {
		return fmt.Errorf("recording the PID of %s: %w", p.name, err)
	}
	return nil
}

// ensureProc starts p unless it is running already with the same command line and
// binary; a process running anything else under that name is stopped first. It
// reports whether it started p.
func ensureProc(cfg Config, p procSpec) (bool, error) {
	rec, ok := readPID(cfg, p.name)
	if ok && rec.alive() {
		if rec.Hash == p.hash() {
			return false, nil
		}
		if err := stopProc(cfg, p.name, syscall.SIGTERM); err != nil {
			return false, err
		}
	}
	return true, startProc(cfg, p)
}

// running reports whether p runs, as started by the lab.
func running(cfg Config, p procSpec) bool {
	rec, ok := readPID(cfg, p.name)
	return ok && rec.alive() && rec.Hash == p.hash()
}

// stopProc sends sig to the named process and, unless sig leaves it alive (SIGSTOP,
// SIGCONT …), waits for it to end, killing it after 5 s. A process that is not
// running is not an error.
func stopProc(cfg Config, name string, sig syscall.Signal) error {
	rec, ok := readPID(cfg, name)
	if !ok || !rec.alive() {
		return nil
	}
	if err := syscall.Kill(rec.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signalling %s (PID %d): %w", name, rec.PID, err)
	}
	switch sig {
	case syscall.SIGTERM, syscall.SIGKILL, syscall.SIGINT, syscall.SIGQUIT:
	default:
		return nil
	}
	if waitGone([]pidRecord{rec}, 5*time.Second) {
		return nil
	}
	_ = syscall.Kill(rec.PID, syscall.SIGCONT) // a stopped process cannot die of SIGTERM
	_ = syscall.Kill(rec.PID, syscall.SIGKILL)
	if waitGone([]pidRecord{rec}, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("stopping %s: PID %d is still alive after SIGKILL", name, rec.PID)
}

// killAll ends the given processes: SIGTERM, then SIGKILL for those still alive
// after a second (the lab's state is thrown away, so nothing needs a long goodbye).
func killAll(pids map[int]bool) error {
	var recs []pidRecord
	for pid := range pids {
		st, err := procStartTime(pid)
		if err != nil {
			continue // gone already
		}
		recs = append(recs, pidRecord{PID: pid, Start: st})
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	if waitGone(recs, time.Second) {
		return nil
	}
	for _, r := range recs {
		if r.alive() {
			_ = syscall.Kill(r.PID, syscall.SIGKILL)
		}
	}
	if waitGone(recs, 5*time.Second) {
		return nil
	}
	var left []string
	for _, r := range recs {
		if r.alive() {
			left = append(left, strconv.Itoa(r.PID))
		}
	}
	return fmt.Errorf("killing the lab's processes: PIDs %s survive SIGKILL", strings.Join(left, ", "))
}

func waitGone(recs []pidRecord, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, r := range recs {
			alive = alive || r.alive()
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether the recorded process still runs (a zombie does not).
func (r pidRecord) alive() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.PID))
	if err != nil {
		return false
	}
	state, start, err := parseStat(string(b))
	return err == nil && state != "Z" && state != "X" && start == r.Start
}

func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	state, start, err := parseStat(string(b))
	if err != nil {
		return 0, err
	}
	if state == "Z" || state == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return start, nil
}

// parseStat returns the state and start time from a /proc/PID/stat line. The
// command name may hold spaces and parentheses, so fields count from the last ')'.
func parseStat(s string) (string, uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// Field 3 (state) is f[0]; field 22 (starttime) is f[19].
	if len(f) < 20 {
		return "", 0, errors.New("malformed /proc/PID/stat")
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return f[0], start, err
}

func readPID(cfg Config, name string) (pidRecord, bool) {
	var rec pidRecord
	b, err := os.ReadFile(cfg.pidPath(name))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.PID <= 1 {
		return pidRecord{}, false
	}
	return rec, true
}

func pidRecords(cfg Config) []pidRecord {
	files, _ := filepath.Glob(filepath.Join(cfg.pidDir(), "*.json"))
	var out []pidRecord
	for _, f := range files {
		if rec, ok := readPID(cfg, strings.TrimSuffix(filepath.Base(f), ".json")); ok {
			out = append(out, rec)
		}
	}
	return out
}

// waitReady polls check until it succeeds, the process dies, ctx ends or timeout
// passes; errors carry the end of the process's log.
func waitReady(ctx context.Context, cfg Config, p procSpec, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		rec, ok := readPID(cfg, p.name)
		if !ok || !rec.alive() {
			return fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", p.name, last, cfg.logPath(p.name), logTail(cfg, p.name))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v (%v); the end of %s:\n%s", p.name, timeout, last, cfg.logPath(p.name), logTail(cfg, p.name))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the last lines of a process's log.
func logTail(cfg Config, name string) string {
	const lines = 25
	b, err := os.ReadFile(cfg.logPath(name))
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	for i, l := range all {
		if len(l) > 400 {
			l = l[:400] + " …"
		}
		all[i] = "  | " + l
	}
	return strings.Join(all, "\n")
}

// childEnv is the environment of the lab's processes and commands: the caller's,
// with the sbin folders on PATH (iptables, ip) and no proxy settings, since nothing
// in the lab may be reached through one.
func childEnv() []string {
	var env []string
	path := ""
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		case "path":
			path = v
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+withSbin(path))
}

func withSbin(path string) string {
	parts := filepath.SplitList(path)
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if !slices.Contains(parts, d) {
			parts = append(parts, d)
		}
	}
	return strings.Join(parts, string(filepath.ListSeparator))
}
