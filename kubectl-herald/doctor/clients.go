package doctor

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// NewClients builds the clients Run needs from a rest.Config (the plugin's
// kubeconfig): Client's scheme holds client-go's types and herald's. Nothing is
// sent to the API server until Run.
func NewClients(cfg *rest.Config) (Clients, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return Clients{}, fmt.Errorf("building the scheme: %w", err)
	}
	if err := heraldv1.AddToScheme(scheme); err != nil {
		return Clients{}, fmt.Errorf("building the scheme: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("building the Kubernetes client: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return Clients{}, fmt.Errorf("building the herald client: %w", err)
	}
	return Clients{Kube: kube, Client: cl, Rest: cfg}, nil
}
