package allocator

import (
	"fmt"
	"strings"
	"testing"
)

// verdicts renders an Explanation as "pool:verdict/why" lines, the part tests pin.
func verdicts(e Explanation) string {
	var b strings.Builder
	for _, p := range e.Pools {
		fmt.Fprintf(&b, "%s:%s/%s\n", p.Pool, p.Verdict, p.Why)
	}
	return b.String()
}

func TestExplain(t *testing.T) {
	web := Request{Key: "shop/web", Namespace: "shop", Labels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{"env": "dev"}, Ports: []Port{tcp(80)}}
	with := func(r Request, mod func(*Request)) Request { mod(&r); return r }
	onlyNS := autoPool("ns", "10.1.0.0/30")
	onlyNS.Namespaces = []string{"other"}
	nsSel := autoPool("nssel", "10.2.0.0/30")
	nsSel.NamespaceSelector = matchLabel("env", "prod")
	svcSel := autoPool("svcsel", "10.3.0.0/30")
	svcSel.ServiceSelector = matchLabel("tier", "edge")
	tests := []struct {
		name  string
		pools []Pool
		held  map[string][]string // Services restored first, key → addresses
		req   Request
		want  string
	}{{
		name:  "three limits, three reasons",
		pools: []Pool{onlyNS, nsSel, svcSel},
		req:   web,
		want:  "ns:rejected/Namespace\nnssel:rejected/NamespaceSelector\nsvcsel:rejected/ServiceSelector\n",
	}, {
		name:  "priority picks the first, the rest usable",
		pools: []Pool{autoPool("b", "10.0.0.0/30"), prio(autoPool("a", "10.9.0.0/30"), 5), manual(autoPool("m", "10.8.0.0/30"))},
		req:   web,
		want:  "a:taken/FirstByPriority\nb:usable/AnotherPoolFirst\nm:rejected/AutoAssignOff\n",
	}, {
		name:  "full pool and missing family",
		pools: []Pool{autoPool("full", "10.0.0.1"), autoPool("v4", "10.5.0.0/30")},
		held:  map[string][]string{"shop/old": {"10.0.0.1"}},
		req:   with(web, func(r *Request) { r.Families, r.Policy = v6only, SingleStack }),
		want:  "full:rejected/FamilyMissing\nv4:rejected/FamilyMissing\n",
	}, {
		name:  "exhausted",
		pools: []Pool{autoPool("full", "10.0.0.1")},
		held:  map[string][]string{"shop/old": {"10.0.0.1"}},
		req:   web,
		want:  "full:rejected/Exhausted\n",
	}, {
		name:  "named pool",
		pools: []Pool{autoPool("a", "10.0.0.0/30"), manual(autoPool("m", "10.8.0.0/30"))},
		req:   with(web, func(r *Request) { r.Pool = "m" }),
		want:  "a:rejected/OtherPoolNamed\nm:taken/NamedByService\n",
	}, {
		name:  "requested address",
		pools: []Pool{autoPool("a", "10.0.0.0/30"), manual(autoPool("m", "10.8.0.0/30"))},
		req:   with(web, func(r *Request) { r.IPs = addrs("10.8.0.2") }),
		want:  "a:rejected/RequestedIPNotInPool\nm:taken/HoldsRequestedAddresses\n",
	}, {
		name:  "requested address in use",
		pools: []Pool{autoPool("a", "10.0.0.0/30")},
		held:  map[string][]string{"shop/old": {"10.0.0.2"}},
		req:   with(web, func(r *Request) { r.IPs = addrs("10.0.0.2") }),
		want:  "a:rejected/AddressRefused\n",
	}, {
		name:  "holder",
		pools: []Pool{prio(autoPool("a", "10.0.0.0/30"), 1), autoPool("b", "10.9.0.0/30")},
		held:  map[string][]string{"shop/web": {"10.9.0.1"}},
		req:   web,
		want:  "a:usable/AnotherPoolFirst\nb:taken/HoldsAddresses\n",
	}, {
		name:  "missing named pool refuses the request",
		pools: []Pool{autoPool("a", "10.0.0.0/30")},
		req:   with(web, func(r *Request) { r.Pool = "gone" }),
		want:  "a:rejected/RequestRefused\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(RetainOrphans)
			for _, p := range tt.pools {
				a.SetPool(p)
			}
			for key, ips := range tt.held {
				r := web
				r.Key = key
				if err := a.Restore(r, addrs(ips...)); err != nil {
					t.Fatalf("Restore(%s): %v", key, err)
				}
			}
			e := a.Explain(tt.req)
			if got := verdicts(e); got != tt.want {
				t.Errorf("Explain:\n%s\nwant:\n%s", got, tt.want)
			}
			for _, p := range e.Pools {
				if p.Message == "" {
					t.Errorf("pool %s: empty message", p.Pool)
				}
			}
		})
	}
}

// TestExplainAgreesWithAssign pins Explain to Assign: the pool Explain takes is
// the one Assign gives from, and Explain takes none when Assign refuses.
func TestExplainAgreesWithAssign(t *testing.T) {
	pools := []Pool{prio(autoPool("a", "10.0.0.1"), 1), autoPool("b", "10.0.1.0/31"), manual(autoPool("m", "10.0.2.1"))}
	a := New(RetainOrphans)
	for _, p := range pools {
		a.SetPool(p)
	}
	for i := range 5 {
		req := Request{Key: fmt.Sprintf("ns/s%d", i), Namespace: "ns"}
		e := a.Explain(req)
		taken, ok := e.Taken()
		got, err := a.Assign(req)
		switch {
		case err != nil && ok:
			t.Errorf("s%d: Assign refused (%v), Explain took %s", i, err, taken.Pool)
		case err == nil && (!ok || taken.Pool != got.Pool):
			t.Errorf("s%d: Assign gave from %q, Explain took %+v", i, got.Pool, taken)
		}
	}
	if s := a.Services(); len(s) != 3 {
		t.Errorf("assigned %v; want 3 Services", s)
	}
}
