package lab

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Where the controller serves its probes and metrics, inside NSControlPlane.
const (
	ControllerHealthAddr  = "127.0.0.1:7473"
	ControllerMetricsAddr = "127.0.0.1:7472"
	kubeProxyHealthAddr   = "127.0.0.1:10256"
	kubeProxyMetricsAddr  = "127.0.0.1:10249"
)

// speakerSettle is how long a speaker must stay alive after it starts to count as
// started: its readiness cannot be asked for, since its flags are its own.
const speakerSettle = 300 * time.Millisecond

func kubeProxyProc(cfg Config, n Node) procSpec {
	return procSpec{name: "kube-proxy-" + n.Name, ns: n.NS, argv: []string{
		cfg.bin("kube-proxy"),
		"--kubeconfig", cfg.KubeconfigPath(),
		"--hostname-override", n.Name,
		"--proxy-mode", "iptables",
		"--conntrack-max-per-core", "0", // leave the kernel's conntrack table size alone
		"--cluster-cidr", ClusterCIDRv4.String() + "," + ClusterCIDRv6.String(),
		"--healthz-bind-address", kubeProxyHealthAddr,
		"--metrics-bind-address", kubeProxyMetricsAddr,
	}}
}

func controllerProc(cfg Config) procSpec {
	argv := []string{cfg.ControllerBinary,
		"--leader-elect=false",
		"--health-addr", ControllerHealthAddr,
		"--metrics-addr", ControllerMetricsAddr,
	}
	return procSpec{name: "controller", ns: NSControlPlane,
		argv: append(argv, cfg.ControllerArgs...),
		env:  []string{"KUBECONFIG=" + cfg.KubeconfigPath(), "POD_NAMESPACE=" + SystemNamespace},
	}
}

func speakerProc(cfg Config, n Node) procSpec {
	return procSpec{name: "speaker-" + n.Name, ns: n.NS,
		argv: append([]string{cfg.SpeakerBinary}, cfg.SpeakerArgs...),
		env:  []string{"NODE_NAME=" + n.Name, "KUBECONFIG=" + cfg.KubeconfigPath(), "POD_NAMESPACE=" + SystemNamespace},
	}
}

// ensureAgents brings kube-proxy on every node, the controller and the speakers to
// what the configuration asks: started when missing or changed, stopped when no
// longer configured, and ready.
func (l *Lab) ensureAgents(ctx context.Context) error {
	cfg := l.cfg
	var proxies []procSpec
	for _, n := range l.nodes {
		p := kubeProxyProc(cfg, n)
		if _, err := ensureProc(cfg, p); err != nil {
			return err
		}
		proxies = append(proxies, p)
	}
	for _, p := range proxies {
		err := waitReady(ctx, cfg, p, 60*time.Second, func(ctx context.Context) error {
			_, err := execIn(ctx, p.ns, "curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "1", "http://"+kubeProxyHealthAddr+"/healthz")
			return err
		})
		if err != nil {
			return err
		}
	}

	if cfg.ControllerBinary == "" {
		if err := stopProc(cfg, "controller", syscall.SIGTERM); err != nil {
			return err
		}
	} else {
		if err := l.applyCRDs(ctx); err != nil {
			return err
		}
		p := controllerProc(cfg)
		if _, err := ensureProc(cfg, p); err != nil {
			return err
		}
		err := waitReady(ctx, cfg, p, 60*time.Second, func(ctx context.Context) error {
			_, err := execIn(ctx, p.ns, "curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "1", "http://"+ControllerHealthAddr+"/readyz")
			return err
		})
		if err != nil {
			return err
		}
	}

	if cfg.SpeakerBinary == "" {
		for _, n := range l.nodes {
			if err := stopProc(cfg, "speaker-"+n.Name, syscall.SIGTERM); err != nil {
				return err
			}
		}
		return nil
	}
	return l.startSpeakers(ctx, l.nodes...)
}

// startSpeakers starts the nodes' speakers that are not running, and checks that
// they stay up for a moment.
func (l *Lab) startSpeakers(ctx context.Context, nodes ...Node) error {
	if l.cfg.SpeakerBinary == "" {
		return errors.New("no speaker binary is configured (or it does not exist)")
	}
	var started []procSpec
	for _, n := range nodes {
		p := speakerProc(l.cfg, n)
		ok, err := ensureProc(l.cfg, p)
		if err != nil {
			return err
		}
		if ok {
			started = append(started, p)
		}
	}
	if len(started) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("starting the speakers: %w", ctx.Err())
	case <-time.After(speakerSettle):
	}
	for _, p := range started {
		if !running(l.cfg, p) {
			return fmt.Errorf("%s exited at once; the end of %s:\n%s", p.name, l.cfg.logPath(p.name), logTail(l.cfg, p.name))
		}
	}
	return nil
}

// KillSpeaker sends sig to the node's speaker. For SIGTERM, SIGKILL, SIGINT and
// SIGQUIT it waits until the speaker is gone (SIGKILL after 5 s); SIGSTOP and SIGCONT
// freeze and thaw it.
func (l *Lab) KillSpeaker(node string, sig syscall.Signal) error {
	if _, err := l.Node(node); err != nil {
		return err
	}
	rec, ok := readPID(l.cfg, "speaker-"+node)
	if !ok || !rec.alive() {
		return fmt.Errorf("the speaker on %s is not running", node)
	}
	return stopProc(l.cfg, "speaker-"+node, sig)
}

// StartSpeaker starts the node's speaker unless it runs already, and checks that it
// stays up for a moment.
func (l *Lab) StartSpeaker(ctx context.Context, node string) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	return l.startSpeakers(ctx, n)
}
