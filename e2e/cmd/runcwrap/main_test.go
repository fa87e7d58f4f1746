package main

import (
	"strings"
	"testing"
)

func TestSpecFile(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string
	}{
		{"--root /run/runc --log /x/log.json --log-format json create --bundle /b --pid-file /b/pid id", "/b/config.json"},
		{"create -b=/b id", "/b/config.json"},
		{"run id", "config.json"},
		{"--root /r exec --process /tmp/p.json --detach id", "/tmp/p.json"},
		{"exec -p /tmp/p.json id", "/tmp/p.json"},
		{"--root /r start id", ""},
		{"--root /r delete --force id", ""},
		{"", ""},
	} {
		if got := specFile(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("specFile(%q) = %q; want %q", tc.args, got, tc.want)
		}
	}
}

func TestStrip(t *testing.T) {
	spec := `{"ociVersion":"1.0.2","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":18446744073709551615,"soft":1048576}]}}`
	out, changed, err := strip([]byte(spec))
	if err != nil || !changed {
		t.Fatalf("strip = %v, %v", changed, err)
	}
	s := string(out)
	if strings.Contains(s, "CAP_SYS_RESOURCE") || !strings.Contains(s, "CAP_CHOWN") {
		t.Errorf("capabilities not stripped right: %s", s)
	}
	if !strings.Contains(s, "18446744073709551615") {
		t.Errorf("rlimit rounded: %s", s)
	}
	if !strings.Contains(s, `"effective":[]`) {
		t.Errorf("emptied set must stay a list: %s", s)
	}

	proc := `{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_NET_RAW"]}}`
	out, changed, err = strip([]byte(proc))
	if err != nil || !changed || strings.Contains(string(out), "SYS_RESOURCE") {
		t.Errorf("process file: %s %v %v", out, changed, err)
	}

	unchanged := `{"process":{"capabilities":{"bounding":["CAP_CHOWN"]}}}`
	if out, changed, _ := strip([]byte(unchanged)); changed || string(out) != unchanged {
		t.Errorf("unprivileged spec rewritten: %s", out)
	}
}
