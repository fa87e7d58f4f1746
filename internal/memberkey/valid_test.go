package memberkey

import "testing"

func TestValid(t *testing.T) {
	for n, ok := range map[int]bool{0: false, 15: false, 16: true, 24: true, 31: false, 32: true, 64: false} {
		if err := Valid(make([]byte, n)); (err == nil) != ok {
			t.Errorf("Valid(%d bytes) = %v; want ok=%v", n, err, ok)
		}
	}
}
