// Package render writes kubectl herald's reports: aligned text for people, and
// JSON (the inspect package's documented structs) for scripts.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/heraldlb/herald/kubectl-herald/inspect"
)

// JSON writes v indented, with a final newline.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	return nil
}

// age is how long before now t was, as kubectl prints ages; "-" for the zero time.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

// table writes rows aligned in columns, each row indented by indent, with no
// trailing blanks (an empty last cell would leave the padding of the one before).
func table(w io.Writer, indent string, rows [][]string) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("aligning a table: %w", err)
	}
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return fmt.Errorf("writing a table: %w", err)
		}
	}
	return nil
}

// condition is "True (Reason, 5m ago): message", or "-" when c is nil.
func condition(c *inspect.Condition, now time.Time) string {
	if c == nil {
		return "-"
	}
	s := c.Status
	if c.Reason != "" {
		s += " (" + c.Reason
		if !c.Since.IsZero() { // zero in reports masked for comparison
			s += ", " + age(c.Since, now) + " ago"
		}
		s += ")"
	}
	if c.Message != "" {
		s += ": " + oneLine(c.Message)
	}
	return s
}

// oneLine keeps a message on its table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
