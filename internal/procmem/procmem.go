// Package procmem reads a process's resident memory, split the way it matters for
// herald's memory targets: RSS counts the binary's pages that are mapped in,
// which are file-backed, shared by every process running the same binary and
// reclaimable; the anonymous part (heap, stacks, runtime) is the process's own.
package procmem

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Usage is resident memory in bytes.
type Usage struct {
	RSS  uint64 // VmRSS: all resident pages
	Anon uint64 // RssAnon: the process's own memory
	File uint64 // RssFile: mapped files, the binary above all
}

// MB returns bytes in mebibytes.
func MB(b uint64) float64 { return float64(b) / (1 << 20) }

// Read returns the resident memory of process pid (Linux).
func Read(pid int) (Usage, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	return parse(string(data))
}

func parse(status string) (Usage, error) {
	var u Usage
	fields := map[string]*uint64{"VmRSS:": &u.RSS, "RssAnon:": &u.Anon, "RssFile:": &u.File}
	found := 0
	for _, line := range strings.Split(status, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		if dst, ok := fields[f[0]]; ok {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return Usage{}, fmt.Errorf("parsing %s %q: %w", f[0], f[1], err)
			}
			*dst = kb * 1024
			found++
		}
	}
	if found == 0 {
		return Usage{}, fmt.Errorf("no VmRSS, RssAnon or RssFile in the process status")
	}
	return u, nil
}
