package election

import (
	"fmt"
	"slices"
	"testing"
)

func BenchmarkElect(b *testing.B) {
	for _, nodes := range []int{3, 100} {
		names := nodeNames(nodes)
		steady := Input{Keys: everywhere(ipKeys(5000), names), Nodes: settled(names...), Now: t0, HoldDown: hold}
		down := steady // one node down: its keys take the second pass
		down.Nodes = down.Nodes[1:]
		back := steady // the node is back and held down
		back.Nodes = slices.Clone(steady.Nodes)
		back.Nodes[0].Since = t0
		distinct := steady // each key with its own copy of the list
		distinct.Keys = make(map[string][]string, len(steady.Keys))
		for k, e := range steady.Keys {
			distinct.Keys[k] = slices.Clone(e)
		}
		for _, bc := range []struct {
			name string
			in   Input
		}{{"steady", steady}, {"down", down}, {"back", back}, {"distinct", distinct}} {
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
