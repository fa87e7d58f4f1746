package membership

import (
	"encoding/json"
	"fmt"
	"time"
)

// The metadata stays the JSON object {"macs":[...],"since":...} that every
// speaker version reads: during a rolling upgrade old and new speakers must read
// each other's MACs (an unread MAC turns a fellow speaker's probe answer into a
// "conflict") and Since (hold-downs). It is kept small by what goes in it (the
// speaker publishes only the MACs of links an ARP or NDP answer from its node
// could come from, deduplicated, most likely first), not by a new encoding.

// sinceWorstCase is a Since whose JSON form is as long as any can be: nine
// fractional digits and a zone offset. Trimming against it leaves room for every
// later Since, so the MACs that fit at start still fit when Since moves.
var sinceWorstCase = time.Date(2999, 12, 31, 23, 59, 59, 123456789, time.FixedZone("", -(12*3600+45*60)))

// encodeMeta encodes meta in at most limit bytes. When the MACs do not all fit,
// it drops them from the end (the caller lists them most important first) and
// reports how many it dropped; Since always goes out. It fails only if Since
// alone cannot be encoded in limit, which memberlist's 512 bytes always allow.
func encodeMeta(meta Meta, limit int) ([]byte, int, error) {
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding member metadata: %w", err)
	}
	if len(b) <= limit {
		return b, 0, nil
	}
	// Each MAC costs its quoted text plus a comma; drop from the end until
	// the rest fits. The loop runs at most len(MACs) times on a few hundred
	// bytes.
	all := meta.MACs
	for n := len(all) - 1; n >= 0; n-- {
		meta.MACs = all[:n]
		if b, err = json.Marshal(meta); err != nil {
			return nil, 0, fmt.Errorf("encoding member metadata: %w", err)
		}
		if len(b) <= limit {
			return b, len(all) - n, nil
		}
	}
	return nil, len(all), fmt.Errorf("member metadata is %d bytes without any MAC, over the limit of %d", len(b), limit)
}

// keysWorstCase is the longest Keys a member publishes (see keyring.go): room is
// kept for them, so a key rotation never pushes a MAC out of the metadata.
var keysWorstCase = []string{"0123456789abcdef", "0123456789abcdef", "0123456789abcdef", "0123456789abcdef"}[:maxPublishedKeys]

// fitMACs returns the longest prefix of macs that fits in limit bytes of
// metadata with any Since and any Keys, and how many MACs it left out.
func fitMACs(macs []string, limit int) ([]string, int, error) {
	_, dropped, err := encodeMeta(Meta{MACs: macs, Since: sinceWorstCase, Keys: keysWorstCase}, limit)
	if err != nil {
		return nil, dropped, err
	}
	return macs[:len(macs)-dropped], dropped, nil
}

// decodeMeta reads another member's metadata; unreadable metadata reads as empty.
func decodeMeta(b []byte) (Meta, error) {
	var meta Meta
	if len(b) == 0 {
		return meta, nil
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return Meta{}, fmt.Errorf("decoding member metadata: %w", err)
	}
	return meta, nil
}
