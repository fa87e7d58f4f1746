package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Exec runs argv in the network namespace ns (e.g. NSClient, "lab-node1") and returns
// its standard output; an error carries its standard error.
func (l *Lab) Exec(ns string, argv ...string) (string, error) {
	return execIn(context.Background(), ns, argv...)
}

// ExecContext is Exec with a context that kills the command when it ends.
func (l *Lab) ExecContext(ctx context.Context, ns string, argv ...string) (string, error) {
	return execIn(ctx, ns, argv...)
}

func execIn(ctx context.Context, ns string, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("exec: no command")
	}
	cmd := exec.CommandContext(ctx, ipCmd, append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("in %s, %s: %w: %s", ns, strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Curl fetches url from inside namespace ns with curl, giving up after 3 s, and
// returns the body. An HTTP status of 400 or more is an error. IPv6 URLs are written
// http://[fd77::200]/.
func (l *Lab) Curl(ns, url string) (string, error) {
	return execIn(context.Background(), ns, "curl", "-sS", "--fail", "--globoff", "--noproxy", "*",
		"--connect-timeout", "2", "--max-time", "3", url)
}

// CutLink sets the node's switch port down, as if its cable were pulled: the node's
// eth0 loses its carrier and nothing passes either way.
func (l *Lab) CutLink(node string) error { return l.setPort(node, "down") }

// RestoreLink sets the node's switch port up again.
func (l *Lab) RestoreLink(node string) error { return l.setPort(node, "up") }

func (l *Lab) setPort(node, state string) error {
	n, err := l.Node(node)
	if err != nil {
		return err
	}
	return runIPs(context.Background(), []string{"-n", NSSwitch, "link", "set", n.SwitchPort, state})
}
