// Package memberkey makes sure the Secret holding the speakers' memberlist
// encryption key exists. The controller creates it once, with a random AES-256 key;
// speakers read it and refuse to start without it unless told to run unencrypted.
package memberkey

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DataKey is the key in the Secret's data that holds the memberlist key.
const DataKey = "secretkey"

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

// Ensure creates the Secret namespace/name with a fresh random key if it does not
// exist. An existing Secret is left alone, so speakers keep talking across
// controller restarts. It runs when the controller becomes leader: rotating the
// key means deleting the Secret, restarting the leading controller, then the
// speakers.
func Ensure(ctx context.Context, cs kubernetes.Interface, namespace, name string, log logr.Logger) error {
	secrets := cs.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		if err := Valid(s.Data[DataKey]); err != nil {
			return fmt.Errorf("secret %s/%s: %w", namespace, name, err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading secret %s/%s: %w", namespace, name, err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generating the memberlist key: %w", err)
	}
	s = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{DataKey: key},
	}
	_, err = secrets.Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // another replica won the race; its key stands
	}
	if err != nil {
		return fmt.Errorf("creating secret %s/%s: %w", namespace, name, err)
	}
	log.Info("Created the memberlist encryption key", "secret", namespace+"/"+name)
	return nil
}
