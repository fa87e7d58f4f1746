//go:build kind

package kind

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/testpoll"
)

// The router's and the nodes' AS numbers, and the routed pool: an RFC 2544
// benchmarking range, reached only through the router's routes to the nodes.
const (
	routerASN  = 64512
	nodeASN    = 64513
	routedPool = "198.18.0.0/28"
	frrName    = "herald-frr"
)

// startFRR runs FRR (zebra and bgpd from Debian's frr) in a container on the kind
// network, accepting BGP sessions from any address of the kind subnet, and
// returns its address.
func startFRR(t *testing.T, c *cluster) string {
	t.Helper()
	out, err := exec.Command(c.repo+"/hack/local-images.sh", "frr").Output()
	if err != nil {
		t.Fatalf("making the FRR image: %v", err)
	}
	image := strings.TrimSpace(string(out))
	_ = exec.Command("docker", "rm", "-f", frrName).Run()
	// Privileged: zebra installs the learned routes in the container's kernel.
	c.docker(t, "run", "-d", "--name", frrName, "--hostname", frrName, "--network", "kind", "--privileged", image, "sleep", "infinity")
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", frrName).Run() })
	addr := strings.TrimSpace(c.docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "kind").IPAddress}}`, frrName))

	bgpd := fmt.Sprintf(`hostname %[1]s
router bgp %[2]d
 bgp router-id %[3]s
 no bgp ebgp-requires-policy
 neighbor NODES peer-group
 neighbor NODES remote-as %[4]d
 neighbor NODES timers 1 3
 neighbor NODES timers connect 1
 bgp listen range %[5]s peer-group NODES
 address-family ipv4 unicast
  neighbor NODES activate
  maximum-paths 8
 exit-address-family
`, frrName, routerASN, addr, nodeASN, c.subnet.Masked())
	script := `set -e
mkdir -p /run/frr /var/log/frr && chown frr:frr /run/frr /var/log/frr
printf 'hostname ` + frrName + `\n' >/etc/frr/zebra.conf
cat >/etc/frr/bgpd.conf
chown frr:frr /etc/frr/*.conf
/usr/lib/frr/zebra -d -f /etc/frr/zebra.conf -A 127.0.0.1
sleep 1
/usr/lib/frr/bgpd -d -f /etc/frr/bgpd.conf -A 127.0.0.1
`
	cmd := exec.Command("docker", "exec", "-i", frrName, "sh", "-c", script)
	cmd.Stdin = strings.NewReader(bgpd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting FRR: %v\n%s", err, out)
	}
	return addr
}

// routerNexthops returns the next hops of the router's kernel route to ip.
func routerNexthops(ip string) []string {
	out, _ := exec.Command("docker", "exec", frrName, "ip", "-4", "route", "show", ip+"/32").CombinedOutput()
	var hops []string
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "via" && i+1 < len(f) {
			hops = append(hops, f[i+1])
		}
	}
	return hops
}

func testBGP(t *testing.T, c *cluster) {
	router := startFRR(t, c)
	c.apply(t, fmt.Sprintf(`apiVersion: herald.io/v1alpha1
kind: IPPool
metadata: {name: routed}
spec:
  addresses: [%q]
  autoAssign: false
---
apiVersion: herald.io/v1alpha1
kind: BGPPeer
metadata: {name: frr}
spec:
  peerAddress: %s
  peerASN: %d
  localASN: %d
  holdTimeSeconds: 3
  keepaliveTimeSeconds: 1
---
apiVersion: herald.io/v1alpha1
kind: BGPAnnouncement
metadata: {name: routed}
spec:
  ipPools: [routed]
`, routedPool, router, routerASN, nodeASN))
	t.Cleanup(func() {
		_, _ = c.kubectl("delete", "-n", testNS, "service", "routed", "--ignore-not-found")
		_, _ = c.kubectl("delete", "bgpannouncement/routed", "bgppeer/frr", "ippool/routed", "--ignore-not-found")
	})
	c.apply(t, lbService("routed", "web", false, map[string]string{"herald.io/pool": "routed"}))
	ip := c.waitIP(t, "routed", 30*time.Second)

	// Every node but the control plane, which kubeadm labels
	// node.kubernetes.io/exclude-from-external-load-balancers.
	var want []string
	for _, w := range c.workers() {
		want = append(want, c.nodes[w].IP.String())
	}
	slices.Sort(want)
	testpoll.Until(t, 60*time.Second, fmt.Sprintf("an ECMP route to %s over the workers %v in the router's kernel", ip, want), func() (bool, string) {
		hops := routerNexthops(ip)
		slices.Sort(hops)
		return slices.Equal(hops, want), fmt.Sprint(hops)
	})
	testpoll.Until(t, 30*time.Second, "curl from the router reaching a pod", func() (bool, string) {
		out, err := exec.Command("docker", "exec", frrName, "curl", "-sS", "--max-time", "2", "http://"+ip+"/").CombinedOutput()
		return err == nil && whoamiReply.Match(out), string(out)
	})
	status := c.mustKubectl(t, "get", "bgppeer", "frr")
	t.Logf("kubectl get bgppeer frr:\n%s", status)

	// Graceful restart: a rollout of the speakers (the DaemonSet controller
	// deletes each Pod, a new one starts) leaves the router's routes alone.
	c.mustKubectl(t, "patch", "bgppeer", "frr", "--type", "merge", "-p", `{"spec":{"gracefulRestart":{"restartTimeSeconds":60}}}`)
	testpoll.Until(t, 60*time.Second, "the sessions back with graceful restart", func() (bool, string) {
		out, _ := exec.Command("docker", "exec", frrName, "vtysh", "-c", "show bgp neighbors json").CombinedOutput()
		n := strings.Count(strings.ReplaceAll(string(out), " ", ""), `"remoteGrMode":"Restart"`)
		hops := routerNexthops(ip)
		slices.Sort(hops)
		return n == len(c.nodes) && slices.Equal(hops, want), fmt.Sprintf("%d sessions with GR, nexthops %v", n, hops)
	})
	stop := make(chan struct{})
	changes := make(chan []string, 1)
	go func() {
		var seen []string
		last := strings.Join(want, ",")
		for {
			select {
			case <-stop:
				changes <- seen
				return
			case <-time.After(20 * time.Millisecond):
			}
			hops := routerNexthops(ip)
			slices.Sort(hops)
			if cur := strings.Join(hops, ","); cur != last {
				seen = append(seen, cur)
				last = cur
			}
		}
	}()
	start := time.Now()
	c.mustKubectl(t, "-n", "herald-system", "rollout", "restart", "ds/herald-speaker")
	c.waitHerald(t)
	time.Sleep(5 * time.Second) // End-of-RIB and the stale routes swept
	close(stop)
	seen := <-changes
	t.Logf("bench: kind BGP graceful restart speaker rollout (%d nodes, %v): %d route changes at the router", len(c.nodes), time.Since(start).Round(time.Second), len(seen))
	if len(seen) != 0 {
		t.Errorf("the router's route to %s changed %d times during the speaker rollout: %v", ip, len(seen), seen)
	}
}
