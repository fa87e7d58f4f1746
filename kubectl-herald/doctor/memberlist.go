package doctor

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// membersMetric is the speaker's gauge of the speakers it sees alive in
// memberlist, itself included (speaker/app/metrics.go).
const membersMetric = "herald_speaker_members_alive"

// membersAlive reads membersMetric from a speaker's /metrics (Prometheus text
// format).
func membersAlive(r io.Reader) (int, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("parsing metrics: %w", err)
	}
	f, ok := families[membersMetric]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, fmt.Errorf("no %s in its metrics (a speaker older than this plugin?)", membersMetric)
	}
	m := f.GetMetric()[0]
	switch {
	case m.GetGauge() != nil:
		return int(m.GetGauge().GetValue()), nil
	case m.GetUntyped() != nil: // a text without its # TYPE line
		return int(m.GetUntyped().GetValue()), nil
	}
	return 0, fmt.Errorf("%s is a %s, not a gauge", membersMetric, f.GetType())
}

// memberView is what one running speaker says about memberlist.
type memberView struct {
	Pod, Node string
	// Alive is the speaker's herald_speaker_members_alive, when Err is nil.
	Alive int
	// Err says why the speaker's metrics could not be read.
	Err error
}

const proxyRBACHint = `reading the speakers' metrics needs get on pods/proxy in ` + Namespace + `:
kubectl -n ` + Namespace + ` create role herald-doctor --verb=get --resource=pods/proxy
kubectl -n ` + Namespace + ` create rolebinding herald-doctor --role=herald-doctor --user=<you>`

// checkMemberlist compares the running speakers' views of memberlist: each should
// see every running speaker alive. A speaker that sees fewer is cut off from the
// others (memberlist uses TCP and UDP 7946 between nodes), and the groups elect
// owners for the same addresses separately: two nodes answer for one address.
func checkMemberlist(views []memberView) Check {
	c := Check{Name: CheckMemberlist}
	if len(views) == 0 {
		c.Status = StatusSkipped
		c.Message = "no running speaker to ask"
		return c
	}
	views = slices.Clone(views)
	slices.SortFunc(views, func(a, b memberView) int { return strings.Compare(a.Node, b.Node) })
	want := len(views)
	var wrong, unread, right, all []string
	forbidden := 0
	for _, v := range views {
		switch {
		case v.Err != nil && apierrors.IsForbidden(v.Err):
			forbidden++
		case v.Err != nil:
			unread = append(unread, fmt.Sprintf("%s (%s): metrics unreadable: %v", v.Node, v.Pod, v.Err))
		case v.Alive != want:
			line := fmt.Sprintf("%s (%s) sees %d alive", v.Node, v.Pod, v.Alive)
			wrong = append(wrong, line)
			all = append(all, line)
		default:
			right = append(right, v.Node)
			all = append(all, fmt.Sprintf("%s (%s) sees all %d", v.Node, v.Pod, want))
		}
	}
	if forbidden == len(views) {
		c.Status = StatusSkipped
		c.Message = "cannot read the speakers' metrics through the API server: forbidden"
		c.Hint = proxyRBACHint
		return c
	}
	switch {
	case len(wrong) > 0:
		c.Status = StatusError
		lines := []string{fmt.Sprintf("speakers disagree on who is alive (%d speakers run):", want)}
		lines = append(lines, all...)
		lines = append(lines, unread...)
		c.Message = strings.Join(lines, "\n")
		c.Hint = "memberlist is split: open TCP and UDP 7946 between all nodes (firewalls, security groups),\nthen: kubectl -n " + Namespace + " logs <speaker pod> | grep -i memberlist"
	case len(unread) > 0 || forbidden > 0:
		c.Status = StatusWarning
		lines := []string{fmt.Sprintf("%d of %d speakers see all %d alive; the rest could not be asked", len(right), want, want)}
		lines = append(lines, unread...)
		if forbidden > 0 {
			lines = append(lines, fmt.Sprintf("%s: forbidden", plural(forbidden, "speaker")))
		}
		c.Message = strings.Join(lines, "\n")
		c.Hint = "kubectl -n " + Namespace + " get pods -o wide; the metrics port is the speaker container's port \"metrics\" (7474)"
	default:
		c.Status = StatusOK
		c.Message = fmt.Sprintf("all %d speakers see %d alive", want, want)
		if want == 1 {
			c.Message = "the only speaker sees itself alive"
		}
	}
	return c
}
