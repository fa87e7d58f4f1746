//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

// neighWatch records every change of the link-layer address a namespace's
// neighbour table holds for one IP, as `ip monitor neigh` reports it: the moments
// a client switched from one node to another.
type neighWatch struct {
	ip      string
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	last    string
	changes []neighChange
}

type neighChange struct {
	at       time.Time
	from, to string
}

func (c neighChange) String() string {
	return fmt.Sprintf("%s → %s at %s", c.from, c.to, c.at.Format("15:04:05.000"))
}

// watchNeigh starts watching ns's neighbour entry for ip; the entry as it is now
// is the starting point, not a change.
func watchNeigh(t testing.TB, l *lab.Lab, ns, ip string) *neighWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &neighWatch{ip: ip, cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ip", "monitor", "neigh")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.last = neighMAC(l, ip)
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			now := time.Now()
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] != ip {
				continue
			}
			for i := range f {
				if f[i] == "lladdr" && i+1 < len(f) {
					w.mu.Lock()
					if mac := f[i+1]; mac != w.last {
						w.changes = append(w.changes, neighChange{at: now, from: w.last, to: mac})
						w.last = mac
					}
					w.mu.Unlock()
				}
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *neighWatch) stop() {
	w.cancel()
	<-w.done
}

// Changes stops the watch and returns the changes it saw.
func (w *neighWatch) Changes() []neighChange {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changes
}
