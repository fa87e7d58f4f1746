// Command kubectl-herald is the kubectl plugin for herald: on PATH, it runs as
// `kubectl herald status SERVICE`, `kubectl herald pools` and `kubectl herald
// doctor`. It reads the cluster through the user's kubeconfig, as kubectl does,
// with get, list and watch only: it never writes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/internal/version"
	"github.com/heraldlb/herald/kubectl-herald/doctor"
	"github.com/heraldlb/herald/kubectl-herald/fetch"
	"github.com/heraldlb/herald/kubectl-herald/inspect"
	"github.com/heraldlb/herald/kubectl-herald/render"
)

const usage = `kubectl herald: why a LoadBalancer Service has (or lacks) its address, and who announces it.

Usage:
  kubectl herald status SERVICE [-n NAMESPACE]   (or NAMESPACE/SERVICE)
  kubectl herald pools
  kubectl herald doctor

Flags:
  --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
  --context NAME      kubeconfig context to use
  -n, --namespace NS  namespace of the Service (default: the context's)
  -o, --output FMT    text (default) or json
  --version           print the plugin's version
`

// errFailed ends the program with status 1 after the output said why.
var errFailed = errors.New("failed")

// options are the command line's flags.
type options struct {
	kubeconfig, context, namespace, output string
	version                                bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errFailed):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, pos, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if o.version {
		_, err := fmt.Fprintln(stdout, "kubectl-herald", version.Version)
		return err
	}
	if o.output != "text" && o.output != "json" {
		return fmt.Errorf("--output must be text or json, not %q", o.output)
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("name a command: status, pools or doctor")
	}
	cmd, rest := pos[0], pos[1:]
	var want int
	switch cmd {
	case "status":
		want = 1
	case "pools", "doctor":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if len(rest) != want {
		return fmt.Errorf("%s takes %d argument(s), got %d: %q", cmd, want, len(rest), rest)
	}
	cl, ns, err := connect(o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch cmd {
	case "status":
		if before, after, ok := strings.Cut(rest[0], "/"); ok {
			ns, rest[0] = before, after
		}
		return status(ctx, cl, o, ns, rest[0], stdout)
	case "pools":
		return pools(ctx, cl, o, stdout)
	}
	return runDoctor(ctx, cl, o, stdout)
}

// parse reads flags wherever they stand among the arguments, as kubectl does
// (`kubectl herald status -n shop web` and `kubectl herald status web -n shop`).
func parse(args []string, stderr io.Writer) (options, []string, error) {
	var o options
	fs := flag.NewFlagSet("kubectl-herald", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file")
	fs.StringVar(&o.context, "context", "", "kubeconfig context")
	fs.StringVar(&o.namespace, "namespace", "", "namespace of the Service")
	fs.StringVar(&o.namespace, "n", "", "namespace of the Service")
	fs.StringVar(&o.output, "output", "text", "text or json")
	fs.StringVar(&o.output, "o", "text", "text or json")
	fs.BoolVar(&o.version, "version", false, "print the version")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return o, pos, nil
		}
		// "--" ends the flags: everything after it is an argument.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return o, append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// connect loads the kubeconfig as kubectl does and returns the clients (a
// controller-runtime client knowing herald's types, and client-go's) and the
// namespace to use.
func connect(o options) (doctor.Clients, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return doctor.Clients{}, "", fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return doctor.Clients{}, "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-herald/" + version.Version
	cl, err := doctor.NewClients(cfg)
	if err != nil {
		return doctor.Clients{}, "", err
	}
	return cl, ns, nil
}

func status(ctx context.Context, cl doctor.Clients, o options, ns, name string, w io.Writer) error {
	c, err := fetch.Service(ctx, cl.Client, ns, name)
	if err != nil {
		return err
	}
	r, err := inspect.Status(c, ns, name)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return render.JSON(w, r)
	}
	return render.Status(w, r, time.Now())
}

func pools(ctx context.Context, cl doctor.Clients, o options, w io.Writer) error {
	c, err := fetch.Pools(ctx, cl.Client)
	if err != nil {
		return err
	}
	r := inspect.Pools(c)
	if o.output == "json" {
		return render.JSON(w, r)
	}
	return render.Pools(w, r)
}

// runDoctor runs the doctor's checks; any "error" makes the exit status 1.
func runDoctor(ctx context.Context, cl doctor.Clients, o options, w io.Writer) error {
	r := doctor.Run(ctx, cl)
	var err error
	if o.output == "json" {
		err = render.JSON(w, r)
	} else {
		err = r.WriteText(w)
	}
	if err != nil {
		return fmt.Errorf("writing the doctor's report: %w", err)
	}
	if r.Failed() {
		return errFailed
	}
	return nil
}
