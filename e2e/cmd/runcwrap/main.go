// Command runcwrap is installed in place of runc where the machine's capability
// bounding set lacks CAP_SYS_RESOURCE (as on the machines herald is tested on):
// there runc refuses every privileged container ("unable to apply caps: operation
// not permitted"), because a privileged OCI spec asks for every capability. It
// removes CAP_SYS_RESOURCE from the spec runc is about to apply — the bundle's
// config.json for create and run, the --process file for exec — and then execs the
// real runc with the arguments unchanged.
//
// It is test infrastructure for the kind clusters built offline (dockerd on the
// host, containerd in each node); it is not part of herald.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dropped is the capability this machine cannot grant.
const dropped = "CAP_SYS_RESOURCE"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	real, err := realRunc()
	if err != nil {
		return err
	}
	if file := specFile(args); file != "" {
		if err := stripFile(file); err != nil {
			return fmt.Errorf("removing %s from %s: %w", dropped, file, err)
		}
	}
	return syscall.Exec(real, append([]string{real}, args...), os.Environ())
}

// realRunc finds the runc this wrapper stands in for.
func realRunc() (string, error) {
	if p := os.Getenv("HERALD_REAL_RUNC"); p != "" {
		return p, nil
	}
	self, _ := os.Executable()
	for _, p := range []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && p != self {
			return p, nil
		}
	}
	return "", errors.New("no real runc found (set HERALD_REAL_RUNC)")
}

// specFile returns the OCI file the runc command in args will apply
// capabilities from, or "" when the command applies none.
func specFile(args []string) string {
	cmd, rest := command(args)
	switch cmd {
	case "create", "run":
		bundle := flagValue(rest, "bundle", "b")
		if bundle == "" {
			bundle = "."
		}
		return filepath.Join(bundle, "config.json")
	case "exec":
		return flagValue(rest, "process", "p")
	}
	return ""
}

// globalWithValue lists runc's global flags that take a separate value.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// command returns runc's subcommand and the arguments after it.
func command(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) > 0 && a[0] == '-' {
			if globalWithValue[a] {
				i++
			}
			continue
		}
		return a, args[i+1:]
	}
	return "", nil
}

// flagValue returns the value of --long/-short in args ("--x v", "--x=v", "-x v").
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		for _, name := range []string{"--" + long, "-" + long, "-" + short} {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
			if len(a) > len(name) && a[:len(name)+1] == name+"=" {
				return a[len(name)+1:]
			}
		}
	}
	return ""
}

// stripFile rewrites an OCI spec or process file without the dropped capability.
// Numbers are kept as written (UseNumber): rlimits hold 2^64-1, which float64
// would round.
func stripFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, changed, err := strip(data)
	if err != nil || !changed {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// strip removes the dropped capability from a spec ({"process":{"capabilities"}})
// or a bare process ({"capabilities"}), reporting whether anything changed.
func strip(data []byte) ([]byte, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, err
	}
	proc := doc
	if p, ok := doc["process"].(map[string]any); ok {
		proc = p
	}
	caps, ok := proc["capabilities"].(map[string]any)
	if !ok {
		return data, false, nil
	}
	changed := false
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := list[:0:0]
		for _, c := range list {
			if c == dropped {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	if !changed {
		return data, false, nil
	}
	out, err := json.Marshal(doc)
	return out, true, err
}
