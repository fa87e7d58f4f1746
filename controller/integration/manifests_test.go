//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestInstallManifestApplies sends every object of manifests/install.yaml and the
// examples to the API server as a server-side dry run, so a typo in a manifest
// fails here rather than on a user's cluster.
func TestInstallManifestApplies(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "herald-system"}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	examples, err := filepath.Glob(filepath.Join("..", "..", "manifests", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	files := []string{"install.yaml"}
	for _, e := range examples {
		files = append(files, filepath.Join("examples", filepath.Base(e)))
	}
	for _, f := range files {
		objs := readObjects(t, filepath.Join("..", "..", "manifests", f))
		if len(objs) == 0 {
			t.Fatalf("%s holds no objects", f)
		}
		for _, o := range objs {
			if o.GetKind() == "Service" {
				o.SetNamespace("default")
			}
			err := k8s.Create(context.Background(), o, client.DryRunAll)
			if apierrors.IsAlreadyExists(err) {
				continue // the CRD and namespace the tests installed
			}
			if err != nil {
				t.Errorf("%s: %s %s: %v", f, o.GetKind(), o.GetName(), err)
			}
		}
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		obj := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}
