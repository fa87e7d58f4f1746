package membership

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
)

func manyMACs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
	}
	return out
}

// The metadata exactly at the limit goes out whole; one byte over, the last MAC
// is left out and Since still goes out.
func TestEncodeMetaAtLimit(t *testing.T) {
	meta := Meta{MACs: manyMACs(10), Since: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	full, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	b, dropped, err := encodeMeta(meta, len(full))
	if err != nil || dropped != 0 || string(b) != string(full) {
		t.Errorf("at the limit: %s, dropped %d, %v; want %s, 0, nil", b, dropped, err, full)
	}
	b, dropped, err = encodeMeta(meta, len(full)-1)
	if err != nil || dropped != 1 {
		t.Fatalf("one byte over: dropped %d, %v; want 1, nil", dropped, err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.MACs) != 9 || got.MACs[8] != meta.MACs[8] || !got.Since.Equal(meta.Since) {
		t.Errorf("one byte over decodes as %+v; want the first 9 MACs and Since %v", got, meta.Since)
	}
	if len(b) > len(full)-1 {
		t.Errorf("encoded %d bytes; limit %d", len(b), len(full)-1)
	}
}

// Regression: a node with hundreds of interfaces made New fail ("member metadata
// is N bytes, over memberlist's 512") and the speaker crash-loop.
func TestNewNeverFailsOnManyMACs(t *testing.T) {
	for _, n := range []int{0, 1, 22, 23, 24, 25, 200, 5000} {
		macs := manyMACs(n)
		kept, dropped, err := fitMACs(macs, memberlist.MetaMaxSize)
		if err != nil {
			t.Fatalf("%d MACs: %v", n, err)
		}
		if len(kept)+dropped != n {
			t.Errorf("%d MACs: kept %d + dropped %d", n, len(kept), dropped)
		}
		// What is kept fits with any Since, now or the longest possible.
		for _, since := range []time.Time{time.Now(), sinceWorstCase, time.Now().In(time.FixedZone("", 5*3600+30*60))} {
			b, d, err := encodeMeta(Meta{MACs: kept, Since: since}, memberlist.MetaMaxSize)
			if err != nil || d != 0 || len(b) > memberlist.MetaMaxSize {
				t.Errorf("%d MACs, Since %v: %d bytes, dropped %d, %v", n, since, len(b), d, err)
			}
		}
	}
}

func TestPeerReadsTrimmedMeta(t *testing.T) {
	macs := manyMACs(200)
	pa, pb := freePort(t), freePort(t)
	a, err := New(Config{Name: "n1", BindAddr: "127.0.0.1", BindPort: pa, Key: key, Meta: Meta{MACs: macs}, Logger: logr.Discard()})
	if err != nil {
		t.Fatalf("New with 200 MACs: %v", err)
	}
	t.Cleanup(func() { _ = a.Shutdown() })
	if a.DroppedMACs() == 0 || a.DroppedMACs() >= 200 {
		t.Errorf("DroppedMACs = %d; want some but not all of 200", a.DroppedMACs())
	}
	b, err := New(Config{Name: "n2", BindAddr: "127.0.0.1", BindPort: pb, Key: key, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown() })
	if _, err := b.Join([]string{fmt.Sprintf("127.0.0.1:%d", pa)}); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, b, "n1,n2", 5*time.Second)
	got := b.Alive()[0].Meta
	want := 200 - a.DroppedMACs()
	if len(got.MACs) != want || got.MACs[0] != macs[0] || got.Since.IsZero() {
		t.Errorf("n1's metadata as n2 sees it: %d MACs (first %v), Since %v; want %d MACs from %s and a Since", len(got.MACs), got.MACs[:min(1, len(got.MACs))], got.Since, want, macs[0])
	}
	known := map[string]bool{}
	for _, m := range b.KnownMACs() {
		known[m] = true
	}
	if !known[macs[0]] || !known[macs[want-1]] || known[macs[want]] {
		t.Errorf("KnownMACs misses a published MAC or holds a dropped one")
	}
}

// Speakers of the previous version read {"macs":[...],"since":...}; the
// metadata must keep those names so both read each other during an upgrade.
func TestMetaWireCompatible(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b, _, err := encodeMeta(Meta{MACs: []string{"02:00:00:00:00:01"}, Since: since}, memberlist.MetaMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"macs":["02:00:00:00:00:01"],"since":"2025-01-02T03:04:05Z"}`; string(b) != want {
		t.Errorf("encoded %s; want %s", b, want)
	}
	old := []byte(`{"macs":["02:00:00:00:00:02"],"since":"2025-01-02T03:04:05Z"}`)
	got, err := decodeMeta(old)
	if err != nil || len(got.MACs) != 1 || got.MACs[0] != "02:00:00:00:00:02" || !got.Since.Equal(since) {
		t.Errorf("decoding an old speaker's metadata: %+v, %v", got, err)
	}
}
