package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
)

// waitReachable returns once probe succeeds, trying again with a growing delay.
// Right after a node boots, the API server's Service address (10.96.0.1 on
// kind) answers only once kube-proxy has programmed it, and the manager cannot
// be built before that: controller-runtime asks the API server's discovery
// whether each cached type is namespaced. Exiting there put the speaker into
// CrashLoopBackOff on every node restart, and the back-off delayed the node's
// return. Meanwhile healthAddr serves /healthz (alive: the liveness probe must
// not kill a speaker for waiting) and /readyz (not ready, and why), until the
// manager takes the address over.
func waitReachable(ctx context.Context, probe func(context.Context) error, healthAddr string, log logr.Logger) error {
	err := tryProbe(ctx, probe)
	if err == nil {
		return nil
	}
	if healthAddr != "" && healthAddr != "0" {
		stop, serr := serveWaiting(healthAddr)
		if serr != nil {
			return serr
		}
		defer stop()
	}
	delay := 500 * time.Millisecond
	for {
		log.Info("Waiting for the API server", "error", err.Error(), "retryIn", delay.String())
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the API server: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
		if err = tryProbe(ctx, probe); err == nil {
			log.Info("The API server answers")
			return nil
		}
	}
}

// tryProbe bounds one attempt: a dial to an address nobody routes yet
// otherwise waits out the transport's 30 s.
func tryProbe(ctx context.Context, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return probe(ctx)
}

// serveWaiting answers the probes on addr until stop is called.
func serveWaiting(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving /healthz on %s while waiting for the API server: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "waiting for the API server (see the log)", http.StatusServiceUnavailable)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve ends with ErrServerClosed when stop closes it; any other end
		// only means the probes go unanswered, which the kubelet reports.
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}
