//go:build integration

package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/internal/testpoll"
)

var rbacOnce sync.Once

// installRBAC creates install.yaml's Namespace, ServiceAccounts and RBAC once for
// the package (they stay until the API server goes), and waits until the
// authorizer, which reads RBAC through a cache, allows what they grant. Tests
// that created and deleted the same objects raced each other: one test's
// deletion, or the cache's lag, made another's checks read "denied".
func installRBAC(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var failed error
	rbacOnce.Do(func() {
		for _, o := range readObjects(t, "../../manifests/install.yaml") {
			switch o.GetKind() {
			case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
				if err := k8s.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
					failed = fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
					return
				}
			}
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	// Both ServiceAccounts' namespaced Roles, the last kinds to be bound.
	for _, probe := range []authorizationv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "herald-system", Name: "herald-memberlist"},
		{Verb: "get", Resource: "configmaps", Namespace: "kube-system", Name: "kube-proxy"},
	} {
		user := "system:serviceaccount:herald-system:herald-speaker"
		if probe.Resource == "configmaps" {
			user = "system:serviceaccount:herald-system:herald-controller"
		}
		testpoll.Until(t, 10*time.Second, "the authorizer to see install.yaml's RBAC", func() (bool, string) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &probe}}
			got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return false, err.Error()
			}
			return got.Status.Allowed, got.Status.Reason
		})
	}
}

// TestSpeakerLeastPrivilege installs install.yaml's RBAC for real and asks the
// API server's authorizer what the speaker's ServiceAccount may do: what it needs,
// and none of what a compromised speaker could abuse.
func TestSpeakerLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	installRBAC(t)
	const speaker = "system:serviceaccount:herald-system:herald-speaker"
	for _, tt := range []struct {
		verb, group, resource, sub, namespace, name string
		want                                        bool
	}{
		// What it needs.
		{"get", "", "secrets", "", "herald-system", "herald-memberlist", true},
		{"watch", "", "secrets", "", "herald-system", "", true}, // BGP password rotation
		{"list", "", "services", "", "", "", true},
		{"list", "discovery.k8s.io", "endpointslices", "", "", "", true},
		{"patch", "herald.io", "bgppeers", "status", "", "", true},
		{"create", "", "events", "", "default", "", true},
		// What it must not do.
		{"update", "", "services", "", "default", "", false},
		{"patch", "", "services", "", "default", "", false},
		{"update", "", "services", "status", "default", "", false},
		{"get", "", "secrets", "", "default", "", false},
		{"get", "", "secrets", "", "kube-system", "", false},
		{"list", "", "secrets", "", "", "", false},
		{"watch", "", "secrets", "", "", "", false},
		{"create", "", "secrets", "", "herald-system", "", false},
		{"update", "", "secrets", "", "herald-system", "herald-memberlist", false},
		{"update", "herald.io", "ippools", "", "", "", false},
		{"update", "herald.io", "bgppeers", "", "", "", false},
		{"delete", "", "nodes", "", "", "", false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   speaker,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:herald-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: tt.verb, Group: tt.group, Resource: tt.resource, Subresource: tt.sub, Namespace: tt.namespace, Name: tt.name,
			},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tt.want {
			t.Errorf("speaker may %s %s/%s (subresource %q) in %q name %q: %v; want %v", tt.verb, tt.group, tt.resource, tt.sub, tt.namespace, tt.name, got.Status.Allowed, tt.want)
		}
	}
}
