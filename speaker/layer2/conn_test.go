package layer2

import (
	"net"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// memConn is an in-memory net.PacketConn: frames passed to deliver are read by
// ReadFrom, frames written are kept for the test.
type memConn struct {
	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once

	mu sync.Mutex
	// mu guards the following fields.
	sent     []sentFrame
	writeErr error
	notify   chan struct{} // receives (without blocking) after each write
}

type sentFrame struct {
	frame []byte
	dst   net.HardwareAddr
	at    time.Time
}

var _ net.PacketConn = (*memConn)(nil)

func newMemConn() *memConn {
	return &memConn{in: make(chan []byte, 64), closed: make(chan struct{}), notify: make(chan struct{}, 1)}
}

func (c *memConn) deliver(b []byte) { c.in <- b }

func (c *memConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		return copy(b, f), &packet.Addr{}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	c.sent = append(c.sent, sentFrame{frame: append([]byte(nil), b...), dst: addr.(*packet.Addr).HardwareAddr, at: time.Now()})
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return len(b), nil
}

// frames returns and forgets the frames written so far.
func (c *memConn) frames() []sentFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sent
	c.sent = nil
	return out
}

// waitFrames waits until at least n frames were written, or the timeout passes,
// and returns them all.
func (c *memConn) waitFrames(n int, timeout time.Duration) []sentFrame {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got := len(c.sent)
		c.mu.Unlock()
		if got >= n {
			return c.frames()
		}
		select {
		case <-c.notify:
		case <-deadline:
			return c.frames()
		}
	}
}

func (c *memConn) setWriteErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeErr = err
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *memConn) LocalAddr() net.Addr                { return &packet.Addr{} }
func (c *memConn) SetDeadline(t time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }
