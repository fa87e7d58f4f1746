package procmem

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	u, err := parse("Name:\tspeaker\nVmRSS:\t   58456 kB\nRssAnon:\t   13040 kB\nRssFile:\t   45416 kB\nRssShmem:\t       0 kB\n")
	if err != nil {
		t.Fatal(err)
	}
	if u.RSS != 58456*1024 || u.Anon != 13040*1024 || u.File != 45416*1024 {
		t.Errorf("parse = %+v", u)
	}
	if _, err := parse("Name:\tx\n"); err == nil {
		t.Error("a status without memory lines parsed")
	}
}

func TestReadSelf(t *testing.T) {
	u, err := Read(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if u.RSS == 0 || u.Anon == 0 || u.Anon > u.RSS {
		t.Errorf("Read(self) = %+v", u)
	}
}
