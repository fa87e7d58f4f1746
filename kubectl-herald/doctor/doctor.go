// Package doctor is the logic of `kubectl herald doctor`: it reads a cluster's
// state through the API server (get and list only) and says, check by check, what
// would keep herald from giving Services reachable addresses, and how to fix it.
//
// Each check is a pure function of the objects it needs (checks_*.go), so tests
// drive them with hand-built objects; fetch.go reads those objects. A check whose
// objects cannot be read (Forbidden, or a resource that does not exist) is
// "skipped" and says why; no check makes Run fail.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Check statuses.
const (
	StatusOK      = "ok"
	StatusWarning = "warning"
	StatusError   = "error"
	StatusSkipped = "skipped"
)

// Check names, in the order Run reports them: installation, then configuration,
// then what the running speakers see.
const (
	CheckCRDs          = "crds"
	CheckController    = "controller"
	CheckSpeakers      = "speakers"
	CheckVersions      = "versions"
	CheckKubeProxy     = "kube-proxy"
	CheckNodeAddresses = "node-addresses"
	CheckPoolOverlap   = "pool-overlap"
	CheckMemberlist    = "memberlist"
	CheckBGPSessions   = "bgp-sessions"
)

// Clients reach the cluster. Client's scheme holds client-go's types and herald's
// api/v1alpha1; Rest is the configuration both were built from.
type Clients struct {
	Kube   kubernetes.Interface
	Client client.Client
	Rest   *rest.Config
}

// Report is the outcome of every check, in a stable order.
type Report struct {
	Checks []Check `json:"checks"`
}

// Check is one finding. Message may span lines (one finding per line); Hint
// says what to run or edit to fix it.
type Check struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Run runs every check against the cluster. It never fails: what it cannot read
// makes the checks that needed it "skipped" (or "error" when the API server
// answered with something other than Forbidden or NotFound).
func Run(ctx context.Context, c Clients) Report {
	f := newFetcher(c)
	return Report{Checks: []Check{
		f.crds(ctx),
		f.controller(ctx),
		f.speakers(ctx),
		f.versions(ctx),
		f.kubeProxy(ctx),
		f.nodeAddresses(ctx),
		f.poolOverlap(ctx),
		f.memberlist(ctx),
		f.bgpSessions(ctx),
	}}
}

// Failed reports whether any check found an error.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == StatusError {
			return true
		}
	}
	return false
}

// marker is the fixed-width ASCII tag WriteText puts before each check.
func marker(status string) string {
	switch status {
	case StatusOK:
		return "[ok]  "
	case StatusWarning:
		return "[warn]"
	case StatusError:
		return "[FAIL]"
	case StatusSkipped:
		return "[skip]"
	}
	return "[" + status + "]"
}

// WriteText writes the report for people: one line per check (marker, name,
// message), further message lines and the hint indented under the message, then
// a one-line count.
//
//	[ok]   kube-proxy      iptables mode: kube-proxy answers no ARP itself
//	[FAIL] node-addresses  pool "lan" holds node1's address 192.168.1.10
//	                       hint: remove node addresses from the pool: kubectl edit ippool lan
func (r Report) WriteText(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	indent := strings.Repeat(" ", len(marker(StatusOK))+1+width+2)
	var b strings.Builder
	counts := map[string]int{}
	for _, c := range r.Checks {
		counts[c.Status]++
		lines := strings.Split(strings.TrimRight(c.Message, "\n"), "\n")
		fmt.Fprintf(&b, "%s %-*s  %s\n", marker(c.Status), width, c.Name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "%s%s\n", indent, l)
		}
		if c.Hint != "" {
			for i, l := range strings.Split(strings.TrimRight(c.Hint, "\n"), "\n") {
				if i == 0 {
					l = "hint: " + l
				} else {
					l = "      " + l
				}
				fmt.Fprintf(&b, "%s%s\n", indent, l)
			}
		}
	}
	fmt.Fprintf(&b, "\n%d checks: %d ok, %d warning, %d error, %d skipped\n",
		len(r.Checks), counts[StatusOK], counts[StatusWarning], counts[StatusError], counts[StatusSkipped])
	_, err := io.WriteString(w, b.String())
	return err
}
