package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/heraldlb/herald/kubectl-herald/inspect"
)

// notAnnounced is what the ANNOUNCED BY column says of a pool nothing covers.
const notAnnounced = "not announced by anything"

// Pools writes a PoolsReport for people: one row per pool and family, then the
// conditions that need a person's attention.
func Pools(w io.Writer, r inspect.PoolsReport) error {
	if len(r.Pools) == 0 {
		_, err := fmt.Fprintln(w, "No IPPools: create one to give LoadBalancer Services addresses.")
		return err
	}
	rows := [][]string{{"POOL", "READY", "AUTO", "PRIORITY", "FAMILY", "CAPACITY", "USED", "FREE", "ANNOUNCED BY"}}
	var notes []string
	for _, p := range r.Pools {
		ready := "-"
		if p.Ready != nil {
			ready = p.Ready.Status
			if p.Ready.Status != "True" {
				notes = append(notes, fmt.Sprintf("%s: not ready (%s): %s", p.Name, p.Ready.Reason, oneLine(p.Ready.Message)))
			}
		} else {
			notes = append(notes, p.Name+": no status yet: is the herald controller running?")
		}
		prio := "-"
		if p.Priority != nil {
			prio = fmt.Sprint(*p.Priority)
		}
		by := notAnnounced
		if len(p.AnnouncedBy) > 0 {
			by = strings.Join(p.AnnouncedBy, ", ")
		}
		fams := []struct {
			name string
			c    *inspect.FamilyCounts
		}{{"IPv4", p.IPv4}, {"IPv6", p.IPv6}}
		first := true
		for _, f := range fams {
			if f.c == nil {
				continue
			}
			row := []string{"", "", "", "", f.name, f.c.Capacity, f.c.Used, f.c.Free, ""}
			if first {
				row[0], row[1], row[2], row[3], row[8] = p.Name, ready, yesNo(p.AutoAssign), prio, by
			}
			first = false
			rows = append(rows, row)
		}
		if first {
			rows = append(rows, []string{p.Name, ready, yesNo(p.AutoAssign), prio, "-", "-", "-", "-", by})
		}
		for _, c := range []struct {
			name string
			c    *inspect.Condition
		}{{"overlaps", p.Overlapping}, {"holds node addresses", p.NodeAddressOverlap}} {
			if c.c != nil && c.c.Status == "True" {
				notes = append(notes, fmt.Sprintf("%s: %s: %s", p.Name, c.name, oneLine(c.c.Message)))
			}
		}
	}
	if err := table(w, "", rows); err != nil {
		return err
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}
