package v1alpha1

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every field of a node's entry reaches the apply object: one left out is
// silently never written (status.nodes[].bfd once was).
func TestBGPPeerNodeStatusApplyHasEveryField(t *testing.T) {
	in := BGPPeerNodeStatus{
		Node: "node1", State: BGPSessionEstablished, Since: metav1.NewTime(time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)),
		PrefixesSent: 3, LastError: "hold timer expired", BFD: "Up",
	}
	obj := BGPPeerNodeStatusApply("router", &in)
	b, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	var out BGPPeer
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Status.Nodes) != 1 {
		t.Fatalf("entries = %+v", out.Status.Nodes)
	}
	if d := cmp.Diff(in, out.Status.Nodes[0]); d != "" {
		t.Errorf("apply object lost fields (-want +got):\n%s", d)
	}
}
