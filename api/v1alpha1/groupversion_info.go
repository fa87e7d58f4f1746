// Package v1alpha1 holds herald's API types (group herald.io, version v1alpha1).
//
// All herald resources are cluster-scoped. Field-level rules are CEL in the CRD
// schema, so a malformed object is refused by the API server itself; problems that
// span objects (overlapping pools, say) are reported on status conditions and Events.
//
// +kubebuilder:object:generate=true
// +groupName=herald.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of herald's API.
	GroupVersion = schema.GroupVersion{Group: "herald.io", Version: "v1alpha1"}

	// SchemeBuilder registers herald's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds herald's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
