// Command whoami is the lab's pod: an HTTP server that names itself, so a test can
// tell which pod (and node) answered through a Service.
//
//	GET /    → "pod=<name> node=<node>\n"
//	GET /ip  → the client's address as the pod sees it, "<ip>\n" (source-IP tests)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	name := flag.String("name", os.Getenv("POD_NAME"), "the pod's name")
	node := flag.String("node", os.Getenv("NODE_NAME"), "the node's name")
	listen := flag.String("listen", ":8080", "address to serve on (\":8080\" is both IPv4 and IPv6)")
	flag.Parse()
	if err := run(*listen, *name, *node); err != nil {
		fmt.Fprintln(os.Stderr, "whoami:", err)
		os.Exit(1)
	}
}

func run(listen, name, node string) error {
	reply := fmt.Sprintf("pod=%s node=%s\n", name, node)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, reply)
	})
	mux.HandleFunc("GET /ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		fmt.Fprintln(w, host)
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
