package app

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// joinInterval is how often a speaker tries the Ready nodes it does not see in
// memberlist: a healed partition or a restarted speaker is found within it.
const joinInterval = time.Second

// joinLoop contacts, in the background, the speakers of Ready Nodes this one
// does not see, every joinInterval and whenever poked, until ctx ends. It never
// holds up the speaker loop: a dead node costs a join one TCP timeout
// (memberlist's, a second), and all are tried at once.
func (s *speaker) joinLoop(ctx context.Context, poke <-chan struct{}) {
	t := time.NewTicker(joinInterval)
	defer t.Stop()
	for {
		s.joinOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-poke:
		}
	}
}

func (s *speaker) joinOnce(ctx context.Context) {
	var nodes corev1.NodeList
	if err := s.client.List(ctx, &nodes); err != nil {
		s.log.V(1).Info("Listing Nodes to join memberlist", "error", err.Error())
		return
	}
	alive := map[string]bool{}
	for _, m := range s.members.Alive() {
		alive[m.Name] = true
	}
	var wg sync.WaitGroup
	for i := range nodes.Items {
		n := &nodes.Items[i]
		a := nodeAddr(n)
		if n.Name == s.cfg.NodeName || alive[n.Name] || !nodeReady(n) || a == "" {
			continue
		}
		peer := hostPort(a, s.cfg.MemberlistPort)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.members.Join([]string{peer}); err != nil {
				s.log.V(1).Info("Joining memberlist", "peer", peer, "error", err.Error())
			}
		}()
	}
	wg.Wait()
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
