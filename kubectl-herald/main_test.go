package main

import (
	"io"
	"slices"
	"testing"
)

func TestParseFlagsAnywhere(t *testing.T) {
	tests := []struct {
		args    []string
		ns, out string
		pos     []string
	}{
		{[]string{"status", "-n", "shop", "web"}, "shop", "text", []string{"status", "web"}},
		{[]string{"status", "web", "--namespace=shop", "-o", "json"}, "shop", "json", []string{"status", "web"}},
		{[]string{"-o=json", "pools"}, "", "json", []string{"pools"}},
		{[]string{"status", "--", "-web"}, "", "text", []string{"status", "-web"}},
	}
	for _, tt := range tests {
		o, pos, err := parse(tt.args, io.Discard)
		if err != nil {
			t.Errorf("parse(%q): %v", tt.args, err)
			continue
		}
		if o.namespace != tt.ns || o.output != tt.out || !slices.Equal(pos, tt.pos) {
			t.Errorf("parse(%q) = ns %q, output %q, args %q; want %q, %q, %q", tt.args, o.namespace, o.output, pos, tt.ns, tt.out, tt.pos)
		}
	}
}
