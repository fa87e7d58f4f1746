package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr"
)

// A speaker whose API server does not answer yet waits, alive and not ready,
// instead of exiting; once it answers, the health address is free for the
// manager.
func TestWaitReachableServesProbesWhileWaiting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var tries atomic.Int32
	type probes struct{ healthz, readyz int }
	seen := make(chan probes, 1)
	probe := func(context.Context) error {
		n := tries.Add(1)
		if n == 2 { // the first retry: the stand-in server is up
			seen <- probes{status(t, "http://"+addr+"/healthz"), status(t, "http://"+addr+"/readyz")}
		}
		if n < 3 {
			return errors.New("dial tcp 10.96.0.1:443: i/o timeout")
		}
		return nil
	}
	if err := waitReachable(context.Background(), probe, addr, logr.Discard()); err != nil {
		t.Fatalf("waitReachable: %v", err)
	}
	if got := (<-seen); got != (probes{http.StatusOK, http.StatusServiceUnavailable}) {
		t.Errorf("while waiting: /healthz %d, /readyz %d; want 200, 503", got.healthz, got.readyz)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the health address is still taken after the wait: %v", err)
	}
	ln.Close()
}

func TestWaitReachableEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := waitReachable(ctx, func(context.Context) error {
		cancel()
		return errors.New("connection refused")
	}, "0", logr.Discard())
	if err == nil {
		t.Fatal("waitReachable returned nil after its context ended without an answer")
	}
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
