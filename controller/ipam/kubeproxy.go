package ipam

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/kubeproxy"
)

// The one ConfigMap read is kube-proxy's, in kube-system: a Role there, not a
// ClusterRole, and the cache watches it alone (CacheOptions). The authorizer
// matches resourceNames for list and watch requests that select metadata.name.
//
// +kubebuilder:rbac:groups="",namespace=kube-system,resources=configmaps,resourceNames=kube-proxy,verbs=get;list;watch

// kubeProxyState is what the controller concluded from kube-proxy's ConfigMap.
type kubeProxyState struct {
	// strictARPMissing: IPVS mode without ipvs.strictARP: true.
	strictARPMissing bool
}

// CacheOptions returns the controller's cache settings for ConfigMaps: only
// kube-system/kube-proxy, so it needs no right to read any other.
func CacheOptions() map[client.Object]ctrlcache.ByObject {
	return map[client.Object]ctrlcache.ByObject{
		&corev1.ConfigMap{}: {
			Namespaces: map[string]ctrlcache.Config{kubeproxy.Namespace: {}},
			Field:      fields.OneTermEqualSelector("metadata.name", kubeproxy.Name),
		},
	}
}

// kubeProxyStateOf reads kube-proxy's ConfigMap. A missing ConfigMap (not kubeadm),
// a missing key or text that cannot be read claim nothing: nil.
func kubeProxyStateOf(cm *corev1.ConfigMap) (*kubeProxyState, error) {
	if cm == nil {
		return nil, nil
	}
	conf, ok := cm.Data[kubeproxy.ConfigKey]
	if !ok {
		return nil, nil
	}
	missing, err := kubeproxy.StrictARPMissing(conf)
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s key %s: %w", cm.Namespace, cm.Name, kubeproxy.ConfigKey, err)
	}
	return &kubeProxyState{strictARPMissing: missing}, nil
}

// watchKubeProxy keeps c.kubeProxy current from the cache without blocking on it:
// a cluster where the controller may not read the ConfigMap (RBAC from an older
// install) must still write every other status. It returns the unregister func.
func (c *Controller) watchKubeProxy(ctx context.Context) (func(), error) {
	inf, err := c.informers.GetInformer(ctx, &corev1.ConfigMap{}, ctrlcache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("watching ConfigMap %s/%s: %w", kubeproxy.Namespace, kubeproxy.Name, err)
	}
	set := func(obj any, deleted bool) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Namespace != kubeproxy.Namespace || cm.Name != kubeproxy.Name {
			return
		}
		var st *kubeProxyState
		if !deleted {
			if st, err = kubeProxyStateOf(cm); err != nil {
				c.log.Info("kube-proxy's configuration cannot be read; saying nothing about strictARP", "detail", err.Error())
			}
		}
		c.kubeProxy.Store(st)
		if st != nil && st.strictARPMissing {
			strictARPMissing.Set(1)
		} else {
			strictARPMissing.Set(0)
		}
		c.markPoolsDirty()
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o, false) },
		UpdateFunc: func(_, o any) { set(o, false) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			set(o, true)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watching ConfigMap %s/%s: %w", kubeproxy.Namespace, kubeproxy.Name, err)
	}
	return func() { _ = inf.RemoveEventHandler(reg) }, nil
}

// strictARPMessage tells a person what is wrong and how to fix it.
const strictARPMessage = "kube-proxy runs in IPVS mode without ipvs.strictARP (ConfigMap kube-system/kube-proxy), so every node's kernel answers ARP for every LoadBalancer address, whichever node herald elects: clients reach random nodes and failover does not work. Fix: kubectl -n kube-system edit configmap kube-proxy, set ipvs.strictARP: true, then kubectl -n kube-system rollout restart daemonset kube-proxy"

// setStrictARPCondition sets or removes an L2Announcement's KubeProxyStrictARP
// condition for st and reports whether it changed. Only the problem is shown:
// a cluster without the ConfigMap, or with kube-proxy set right, shows nothing.
func setStrictARPCondition(a *heraldv1.L2Announcement, st *kubeProxyState) bool {
	if st == nil || !st.strictARPMissing {
		return meta.RemoveStatusCondition(&a.Status.Conditions, heraldv1.L2AnnouncementConditionKubeProxyStrictARP)
	}
	return meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{
		Type: heraldv1.L2AnnouncementConditionKubeProxyStrictARP, Status: metav1.ConditionFalse,
		Reason: "IPVSWithoutStrictARP", Message: strictARPMessage, ObservedGeneration: a.Generation,
	})
}
