// Package memberkey keeps the Secret holding the speakers' memberlist encryption
// keys, and decides how speakers move from one key to the next. The controller
// creates the Secret with a random AES-256 key, recreates it when deleted and
// rotates the key when asked (Keeper); speakers read it, refuse to start without
// it unless told to run unencrypted, and roll a new key into memberlist's
// keyring without splitting the cluster (Next).
package memberkey

import (
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// DataKey is the key in the Secret's data that holds the memberlist key: the one
// speakers encrypt with once a rotation is over.
const DataKey = "secretkey"

// PreviousDataKey holds, during a rotation, the key DataKey replaced: a speaker
// that starts then decrypts with it too, as members that have not switched yet
// still encrypt with it. The controller drops it after Grace.
const PreviousDataKey = "previouskey"

// Annotations on the Secret.
const (
	// AnnotationRotate asks for a new key: set it to a value it has not had
	// (a date, say). The controller rotates once per value.
	AnnotationRotate = "herald.io/rotate-key"
	// AnnotationRotated is the AnnotationRotate value the controller last
	// rotated for.
	AnnotationRotated = "herald.io/rotated-key"
	// AnnotationRotatedAt is when the current key replaced PreviousDataKey
	// (RFC 3339); PreviousDataKey goes Grace after it.
	AnnotationRotatedAt = "herald.io/rotated-at"
)

// KeySize is the length of the keys the controller makes: 32 bytes selects
// AES-256 in memberlist.
const KeySize = 32

// Valid says whether k can be a memberlist key: 16, 24 or 32 bytes (AES-128,
// -192, -256). The controller keeps a valid key a user supplied, and speakers use
// it.
func Valid(k []byte) error {
	switch len(k) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%q holds %d bytes; want 16, 24 or 32", DataKey, len(k))
}

// Keys returns the Secret's key and, during a rotation, the previous one (nil
// when absent, unusable or the same). An unusable primary key is an error.
func Keys(s *corev1.Secret) (primary, previous []byte, err error) {
	primary = s.Data[DataKey]
	if err := Valid(primary); err != nil {
		return nil, nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	previous = s.Data[PreviousDataKey]
	if Valid(previous) != nil || string(previous) == string(primary) {
		previous = nil
	}
	return primary, previous, nil
}

func newKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating a memberlist key: %w", err)
	}
	return key, nil
}
