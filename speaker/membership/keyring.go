package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Key rotation support. memberlist encrypts with its keyring's primary key and
// decrypts with any key on the ring, so a key can be replaced without a split:
// every member installs the new key, then each encrypts with it, then the old
// one is dropped. Each step is safe only once the other members have done the
// one before, so every member publishes the fingerprints of the keys it holds
// in its metadata (Meta.Keys); the decision is package memberkey's.

// maxPublishedKeys bounds Meta.Keys: a rotation holds two keys, a Secret
// recreated in the middle of one three. The metadata keeps room for them.
const maxPublishedKeys = 4

// updateTimeout bounds the wait for the broadcast of new metadata; a member
// that misses it gets it at the next push-pull.
const updateTimeout = time.Second

// Fingerprint returns a short, one-way name for a memberlist key: the first 8
// bytes of a SHA-256 of it, in hex. Members publish fingerprints, never keys;
// 64 bits tell a handful of random keys apart and reveal nothing of a 128- to
// 256-bit key.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("herald memberlist key\x00"), key...))
	return hex.EncodeToString(sum[:8])
}

func newKeyring(primary []byte, others [][]byte) (*memberlist.Keyring, error) {
	if primary == nil {
		return nil, nil
	}
	var extra [][]byte
	for _, k := range others {
		if !bytes.Equal(k, primary) {
			extra = append(extra, k)
		}
	}
	if len(extra) > maxPublishedKeys-1 {
		extra = extra[:maxPublishedKeys-1]
	}
	kr, err := memberlist.NewKeyring(extra, primary)
	if err != nil {
		return nil, fmt.Errorf("building the memberlist keyring: %w", err)
	}
	return kr, nil
}

func fingerprints(kr *memberlist.Keyring) []string {
	if kr == nil {
		return nil
	}
	keys := kr.GetKeys()
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, Fingerprint(k))
	}
	return out
}

// KeyFingerprints returns the fingerprints of this member's keys, the one it
// encrypts with first; nil when gossip is not encrypted.
func (m *Members) KeyFingerprints() []string {
	return fingerprints(m.keyring)
}

// Encrypted reports whether this member's gossip is encrypted; keys can be
// changed only then.
func (m *Members) Encrypted() bool { return m.keyring != nil }

// AddKey installs key for decryption, without encrypting with it, and tells the
// others. Installing a key already held does nothing.
func (m *Members) AddKey(key []byte) error {
	return m.changeKeys(func(kr *memberlist.Keyring) error {
		if len(kr.GetKeys()) >= maxPublishedKeys {
			return fmt.Errorf("the keyring already holds %d keys; drop one first", maxPublishedKeys)
		}
		return kr.AddKey(key)
	})
}

// UseKey makes the installed key with the given fingerprint the one this member
// encrypts with, and tells the others.
func (m *Members) UseKey(fingerprint string) error {
	return m.changeKeys(func(kr *memberlist.Keyring) error {
		k := findKey(kr, fingerprint)
		if k == nil {
			return fmt.Errorf("no key %s on the keyring", fingerprint)
		}
		return kr.UseKey(k)
	})
}

// RemoveKey drops the installed key with the given fingerprint (not the one
// this member encrypts with), and tells the others.
func (m *Members) RemoveKey(fingerprint string) error {
	return m.changeKeys(func(kr *memberlist.Keyring) error {
		k := findKey(kr, fingerprint)
		if k == nil {
			return nil
		}
		return kr.RemoveKey(k)
	})
}

func findKey(kr *memberlist.Keyring, fingerprint string) []byte {
	for _, k := range kr.GetKeys() {
		if Fingerprint(k) == fingerprint {
			return k
		}
	}
	return nil
}

// changeKeys applies change to the keyring, then publishes the keyring's
// fingerprints in this member's metadata.
func (m *Members) changeKeys(change func(*memberlist.Keyring) error) error {
	if m.keyring == nil {
		return fmt.Errorf("memberlist is not encrypted")
	}
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	before := fingerprints(m.keyring)
	if err := change(m.keyring); err != nil {
		return fmt.Errorf("changing the memberlist keyring: %w", err)
	}
	fps := fingerprints(m.keyring)
	if slices.Equal(before, fps) {
		return nil
	}
	m.mu.Lock()
	m.self.Keys = fps
	if mem, ok := m.alive[m.name]; ok {
		mem.Meta.Keys = fps
		m.alive[m.name] = mem
	}
	m.mu.Unlock()
	// Not under mu: UpdateNode asks the delegate for the metadata, which
	// takes mu.
	if err := m.list.UpdateNode(updateTimeout); err != nil {
		// The new metadata is queued all the same; push-pull carries it too.
		m.log.V(1).Info("Publishing key fingerprints", "error", err.Error())
	}
	return nil
}
