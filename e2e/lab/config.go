package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// layoutVersion changes when the lab's topology or processes change, so an Up after
// an upgrade of this package rebuilds a lab left by the previous version.
const layoutVersion = 2

// MaxNodes is the largest Config.Nodes: node N gets 10.77.0.(10+N) and a MAC ending in
// the same digits (02:77:00:00:00:11 for node1), which stops reading well past 99.
const MaxNodes = 89

// Config says what lab to build. The zero value is a valid configuration.
type Config struct {
	// BinDir holds etcd, kube-apiserver, kube-proxy and kubectl (`make kube-bins`).
	// Default: $KUBEBUILDER_ASSETS, else bin/k8s in the repository.
	BinDir string
	// StateDir holds keys, kubeconfig, logs, PID files and etcd's data. Down removes
	// it. Default: $HERALD_LAB_DIR, else /tmp/herald-lab.
	StateDir string
	// Nodes is the number of nodes, 1 to MaxNodes. Default 3.
	Nodes int
	// WhoamiBinary is the pods' HTTP server. Default: built from e2e/cmd/whoami into
	// StateDir (needs the go command and the repository).
	WhoamiBinary string
	// SpeakerBinary runs in every node namespace, with the environment NODE_NAME,
	// KUBECONFIG and POD_NAMESPACE (SystemNamespace) and the arguments SpeakerArgs,
	// when it is set and the file exists.
	SpeakerBinary string
	SpeakerArgs   []string
	// ControllerBinary runs in the control-plane namespace, when it is set and the
	// file exists, with KUBECONFIG and POD_NAMESPACE set, --leader-elect=false,
	// --health-addr 127.0.0.1:7473, --metrics-addr 127.0.0.1:7472, then ControllerArgs.
	ControllerBinary string
	ControllerArgs   []string
	// CRDDir holds CRD manifests applied before the controller starts. Default when a
	// controller runs: manifests/crds in the repository.
	CRDDir string
	// Logf reports progress. Nil is silent.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() (Config, error) {
	if c.StateDir == "" {
		c.StateDir = os.Getenv("HERALD_LAB_DIR")
	}
	if c.StateDir == "" {
		c.StateDir = "/tmp/herald-lab"
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return c, fmt.Errorf("lab config: %d nodes; want 1 to %d", c.Nodes, MaxNodes)
	}
	if c.BinDir == "" {
		c.BinDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if c.BinDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return c, fmt.Errorf("lab config: no BinDir and %w", err)
		}
		c.BinDir = filepath.Join(root, "bin", "k8s")
	}
	var err error
	for _, p := range []*string{&c.StateDir, &c.BinDir, &c.WhoamiBinary, &c.SpeakerBinary, &c.ControllerBinary, &c.CRDDir} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return c, fmt.Errorf("lab config: %w", err)
			}
		}
	}
	if c.StateDir == "/" {
		return c, errors.New("lab config: the state directory cannot be /")
	}
	if !fileExists(c.SpeakerBinary) {
		c.SpeakerBinary, c.SpeakerArgs = "", nil
	}
	if !fileExists(c.ControllerBinary) {
		c.ControllerBinary, c.ControllerArgs = "", nil
	}
	if c.ControllerBinary != "" && c.CRDDir == "" {
		if root, err := RepoRoot(); err == nil {
			c.CRDDir = filepath.Join(root, "manifests", "crds")
		}
	}
	return c, nil
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c Config) markerPath() string     { return filepath.Join(c.StateDir, ".herald-lab") }
func (c Config) statePath() string      { return filepath.Join(c.StateDir, "state.json") }
func (c Config) logDir() string         { return filepath.Join(c.StateDir, "logs") }
func (c Config) pidDir() string         { return filepath.Join(c.StateDir, "pids") }
func (c Config) bin(name string) string { return filepath.Join(c.BinDir, name) }

func (c Config) logPath(process string) string { return filepath.Join(c.logDir(), process+".log") }
func (c Config) pidPath(process string) string { return filepath.Join(c.pidDir(), process+".json") }

// KubeconfigPath returns the admin kubeconfig: it works from the host and from
// every lab namespace.
func (c Config) KubeconfigPath() string { return filepath.Join(c.StateDir, "kubeconfig") }

// fingerprint names what a lab is built from: reusing a lab built otherwise would
// test the wrong thing.
func fingerprint(cfg Config) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "layout %d\nnodes %d\nstate %s\n", layoutVersion, cfg.Nodes, cfg.StateDir)
	for _, name := range []string{"etcd", "kube-apiserver", "kube-proxy"} {
		fi, err := os.Stat(cfg.bin(name))
		if err != nil {
			return "", fmt.Errorf("checking the binaries: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", name, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RepoRoot returns the root of the herald repository holding the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/heraldlb/herald\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the working directory is not inside the herald repository")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	if path == "" {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}
