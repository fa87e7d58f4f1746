package election

import (
	"fmt"
	"slices"
	"testing"
)

func BenchmarkElect(b *testing.B) {
	for _, nodes := range []int{3, 100} {
		names := nodeNames(nodes)
		fresh := Input{Keys: everywhere(ipKeys(5000), names), Nodes: settled(names...)}
		steady := fresh // every key claimed by its owner
		steady.Nodes = claimAll(fresh.Nodes, Elect(fresh).Owner, nodes)
		down := steady // one node down: its keys are placed again
		down.Nodes = down.Nodes[1:]
		distinct := steady // each key with its own copy of the list
		distinct.Keys = make(map[string][]string, len(steady.Keys))
		for k, e := range steady.Keys {
			distinct.Keys[k] = slices.Clone(e)
		}
		for _, bc := range []struct {
			name string
			in   Input
		}{{"fresh", fresh}, {"steady", steady}, {"down", down}, {"distinct", distinct}} {
			b.Run(fmt.Sprintf("keys=5000/nodes=%d/%s", nodes, bc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					Elect(bc.in)
				}
			})
		}
	}
}

// BenchmarkScore is the cost of one rendezvous weight from names; Elect
// hashes each name once and pays only the final mix per pair.
func BenchmarkScore(b *testing.B) {
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		sink += Score("kind-worker2", "172.18.255.200")
	}
	_ = sink
}
