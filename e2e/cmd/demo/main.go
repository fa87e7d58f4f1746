// Command demo does the parts of `make demo` that need the lab's Go API: adding
// whoami pods behind the nodes and writing the Service's EndpointSlice (the lab
// runs no kubelet and no controller-manager).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/heraldlb/herald/e2e/lab"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: demo pods|endpoints")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := lab.Open(lab.Config{})
	if err != nil {
		return err
	}
	pods := []string{"whoami-1", "whoami-2", "whoami-3"}
	switch what {
	case "pods":
		for i, n := range l.NodeNames() {
			if i >= len(pods) {
				break
			}
			if _, err := l.Pod(pods[i]); err == nil {
				continue
			}
			p, err := l.AddPod(ctx, n, pods[i])
			if err != nil {
				return err
			}
			fmt.Printf("  pod %s on %s: %s %s\n", p.Name, p.Node, p.IPv4, p.IPv6)
		}
	case "endpoints":
		return l.SetEndpoints(ctx, "whoami", "default", pods...)
	default:
		return fmt.Errorf("unknown step %q", what)
	}
	return nil
}
