package ipam

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldlb/herald/internal/allocator"
)

var (
	poolCapacity = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_ippool_addresses",
		Help: "Addresses an IPPool can hand out, per family (a float: IPv6 pools exceed 2^53).",
	}, []string{"pool", "family"})
	poolUsed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_ippool_addresses_used",
		Help: "Addresses of an IPPool assigned to Services, per family.",
	}, []string{"pool", "family"})
	allocations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_allocations_total",
		Help: "Services given new addresses.",
	})
	allocationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_allocation_failures_total",
		Help: "Services refused addresses, by reason (counted when the reason first appears on a Service).",
	}, []string{"reason"})
	servicesPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_services_pending",
		Help: "LoadBalancer Services herald handles that have no address.",
	})
	strictARPMissing = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_kube_proxy_ipvs_strict_arp_missing",
		Help: "1 when ConfigMap kube-system/kube-proxy puts kube-proxy in IPVS mode without ipvs.strictARP (every node answers ARP for every LoadBalancer address), else 0.",
	})
	addressesQuarantined = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_addresses_quarantined",
		Help: "Addresses no Service holds that are not handed out yet because the status of the Service that gave them up may still show them (its status write has not succeeded).",
	})
	statusWriteFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_release_status_write_failures_total",
		Help: "Failed Service status writes that would have released addresses (each keeps them quarantined until a retry succeeds).",
	})
	quarantineSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_address_quarantine_seconds",
		Help:    "Time from a Service giving up addresses to its status no longer showing them, when they can be handed out again.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms to 33 s
	})
	poolNodeAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "herald_ippool_node_addresses",
		Help: "Addresses of an IPPool that are Nodes' own addresses (never handed out).",
	}, []string{"pool"})
)

func init() {
	metrics.Registry.MustRegister(poolCapacity, poolUsed, allocations, allocationFailures, servicesPending, strictARPMissing, poolNodeAddresses, addressesQuarantined, statusWriteFailures, quarantineSeconds)
	// Every reason exists as a series from the start, so rate() and alerts work
	// before the first failure.
	for _, r := range allocator.Reasons() {
		allocationFailures.WithLabelValues(r.String())
	}
}
