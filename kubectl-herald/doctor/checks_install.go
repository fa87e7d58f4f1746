package doctor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// Where install.yaml puts herald.
const (
	Namespace      = "herald-system"
	ControllerName = "herald-controller" // the Deployment, and its leader Lease
	SpeakerName    = "herald-speaker"    // the DaemonSet
)

// herald's resources in herald.io/v1alpha1, sorted.
var heraldResources = []string{"bgpannouncements", "bgppeers", "ippools", "l2announcements"}

const installHint = "kubectl apply -f manifests/install.yaml"

// checkCRDs reports whether herald.io/v1alpha1 serves every herald resource.
// served lists the resources discovery shows in herald.io/v1alpha1 (nil: that
// group version is not served); otherVersions are the group's versions the API
// server serves instead.
func checkCRDs(served, otherVersions []string) Check {
	c := Check{Name: CheckCRDs}
	var missing []string
	for _, r := range heraldResources {
		if !slices.Contains(served, r) {
			missing = append(missing, r)
		}
	}
	switch {
	case len(missing) == 0:
		c.Status = StatusOK
		c.Message = fmt.Sprintf("%s serves %s", heraldv1.GroupVersion, strings.Join(heraldResources, ", "))
	case served == nil && len(otherVersions) > 0:
		c.Status = StatusError
		c.Message = fmt.Sprintf("herald.io serves %s, not %s: this plugin is of another herald release than the cluster's CRDs",
			strings.Join(otherVersions, ", "), heraldv1.GroupVersion.Version)
		c.Hint = "use the kubectl-herald of the installed release, or upgrade herald: " + installHint
	case served == nil:
		c.Status = StatusError
		c.Message = "herald's CRDs are not installed (no herald.io API group)"
		c.Hint = installHint
	default:
		c.Status = StatusError
		c.Message = fmt.Sprintf("%s lacks %s (the CRDs are of another release, or were deleted)",
			heraldv1.GroupVersion, strings.Join(missing, ", "))
		c.Hint = installHint
	}
	return c
}

// leaseSlack allows for the clock of the machine running the doctor and that of
// the leader's node to differ: a Lease is called stale only this long after it
// should have been renewed.
const leaseSlack = 10 * time.Second

// checkController reports on the controller Deployment (nil: not installed) and
// its leader Lease (nil: none; leaseNote, when set, says why it was not read).
func checkController(dep *appsv1.Deployment, lease *coordinationv1.Lease, leaseNote string, now time.Time) Check {
	c := Check{Name: CheckController}
	if dep == nil {
		c.Status = StatusError
		c.Message = fmt.Sprintf("herald is not installed: no Deployment %s/%s", Namespace, ControllerName)
		c.Hint = installHint
		return c
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	avail := dep.Status.AvailableReplicas
	replicas := fmt.Sprintf("%d of %d replicas available", avail, want)
	if avail == 0 {
		c.Status = StatusError
		c.Message = fmt.Sprintf("the controller is not running (%s): no Service gets an address", replicas)
		c.Hint = fmt.Sprintf("kubectl -n %s describe deployment %s; kubectl -n %s logs deployment/%s", Namespace, ControllerName, Namespace, ControllerName)
		return c
	}
	c.Status = StatusOK
	if avail < want {
		c.Status = StatusWarning
		c.Hint = fmt.Sprintf("kubectl -n %s describe deployment %s", Namespace, ControllerName)
	}
	leader := leaseState(lease, leaseNote, now)
	if leader.stale {
		c.Status = StatusError
		c.Hint = fmt.Sprintf("kubectl -n %s logs deployment/%s (look for leader election errors)", Namespace, ControllerName)
	}
	c.Message = replicas + "; " + leader.text
	return c
}

type leader struct {
	text  string
	stale bool
}

func leaseState(lease *coordinationv1.Lease, note string, now time.Time) leader {
	switch {
	case note != "":
		return leader{text: note}
	case lease == nil:
		// --leader-elect=false leaves no Lease; install.yaml sets it true.
		return leader{text: fmt.Sprintf("no leader Lease %s/%s (leader election off?)", Namespace, ControllerName)}
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder == "" {
		return leader{text: "no replica holds the leader Lease: nothing assigns addresses", stale: true}
	}
	if lease.Spec.RenewTime != nil && lease.Spec.LeaseDurationSeconds != nil {
		expiry := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
		if now.After(expiry.Add(leaseSlack)) {
			return leader{text: fmt.Sprintf("the leader Lease, last held by %s, expired %s ago: nothing assigns addresses",
				holder, now.Sub(expiry).Round(time.Second)), stale: true}
		}
	}
	return leader{text: "leader " + holder}
}

// nodeProblem says why a node is not expected to run a ready speaker, or "".
func nodeProblem(n *corev1.Node) string {
	var p []string
	if n.Spec.Unschedulable {
		p = append(p, "cordoned")
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		p = append(p, "NotReady")
	}
	return strings.Join(p, ", ")
}

// podReady reports whether p is Running with its Ready condition True.
func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podState describes a speaker pod that is not ready: "herald-speaker-x Pending".
func podState(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if p.Status.Phase == corev1.PodRunning {
		s = "Running, not Ready"
	}
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			s += " (" + w.Reason + ")"
			break
		}
	}
	if p.DeletionTimestamp != nil {
		s = "Terminating"
	}
	return p.Name + " " + s
}

// checkSpeakers compares the nodes with the speaker DaemonSet's pods (ds nil: not
// installed): every node the DaemonSet selects should run a ready speaker.
// Missing ones are errors, except on nodes that are cordoned or NotReady, which
// are warnings.
func checkSpeakers(ds *appsv1.DaemonSet, pods []corev1.Pod, nodes []corev1.Node) Check {
	c := Check{Name: CheckSpeakers}
	if ds == nil {
		c.Status = StatusError
		c.Message = fmt.Sprintf("herald is not installed: no DaemonSet %s/%s", Namespace, SpeakerName)
		c.Hint = installHint
		return c
	}
	sel := labels.SelectorFromSet(ds.Spec.Template.Spec.NodeSelector)
	onNode := map[string][]*corev1.Pod{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName != "" {
			onNode[p.Spec.NodeName] = append(onNode[p.Spec.NodeName], p)
		}
	}
	var selected, ready int
	var missing, excused []string
	for i := range nodes {
		n := &nodes[i]
		if !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		selected++
		var states []string
		ok := false
		for _, p := range onNode[n.Name] {
			if podReady(p) {
				ok = true
				break
			}
			states = append(states, podState(p))
		}
		if ok {
			ready++
			continue
		}
		what := "no speaker pod"
		if len(states) > 0 {
			what = strings.Join(states, "; ")
		}
		line := n.Name + ": " + what
		if why := nodeProblem(n); why != "" {
			excused = append(excused, line+" (node "+why+")")
		} else {
			missing = append(missing, line)
		}
	}
	head := fmt.Sprintf("%d of %d nodes run a ready speaker", ready, selected)
	if selected == 0 {
		c.Status = StatusWarning
		c.Message = "no node matches the speaker DaemonSet's nodeSelector " + sel.String()
		c.Hint = fmt.Sprintf("kubectl -n %s get ds %s -o yaml", Namespace, SpeakerName)
		return c
	}
	lines := []string{head}
	lines = append(lines, missing...)
	lines = append(lines, excused...)
	c.Message = strings.Join(lines, "\n")
	switch {
	case len(missing) > 0:
		c.Status = StatusError
		c.Hint = fmt.Sprintf("a node without a speaker never announces: kubectl -n %s describe ds %s; kubectl -n %s get pods -o wide -l %s",
			Namespace, SpeakerName, Namespace, labels.SelectorFromSet(ds.Spec.Selector.MatchLabels))
	case len(excused) > 0:
		c.Status = StatusWarning
		c.Hint = "cordoned or NotReady nodes: kubectl get nodes; kubectl uncordon <node> once it is healthy"
	default:
		c.Status = StatusOK
	}
	return c
}

// imageTag returns the tag (or digest) of an image reference, "latest" when it
// has neither.
func imageTag(image string) string {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		return image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}

// containerImage returns the image of the container called name in spec, else
// of its first container.
func containerImage(spec corev1.PodSpec, name string) string {
	for _, c := range spec.Containers {
		if c.Name == name {
			return c.Image
		}
	}
	if len(spec.Containers) > 0 {
		return spec.Containers[0].Image
	}
	return ""
}

// checkVersions compares the controller's and the speakers' image tags with each
// other and with the plugin's version ("dev": an unstamped build, only reported).
func checkVersions(dep *appsv1.Deployment, ds *appsv1.DaemonSet, plugin string) Check {
	c := Check{Name: CheckVersions}
	if dep == nil && ds == nil {
		c.Status = StatusSkipped
		c.Message = "herald is not installed"
		return c
	}
	var ctl, spk string
	var parts []string
	if dep != nil {
		ctl = imageTag(containerImage(dep.Spec.Template.Spec, "controller"))
		parts = append(parts, "controller "+ctl)
	}
	if ds != nil {
		spk = imageTag(containerImage(ds.Spec.Template.Spec, "speaker"))
		parts = append(parts, "speaker "+spk)
	}
	parts = append(parts, "plugin "+plugin)
	c.Message = strings.Join(parts, ", ")
	c.Status = StatusOK
	var problems []string
	if ctl != "" && spk != "" && ctl != spk {
		problems = append(problems, "the controller and the speakers run different releases")
	}
	if plugin != "dev" {
		for _, t := range []string{ctl, spk} {
			if t != "" && t != plugin {
				problems = append(problems, "the plugin is of another release than the cluster's herald")
				break
			}
		}
	}
	if len(problems) > 0 {
		c.Status = StatusWarning
		c.Message += "\n" + strings.Join(problems, "\n")
		c.Hint = "install one release everywhere: kubectl apply -f manifests/install.yaml of that release, and its kubectl-herald"
	}
	return c
}
