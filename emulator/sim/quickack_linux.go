package sim

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ackingReader reads from a TCP connection and turns TCP_QUICKACK back on
// after every read. Linux clears the option by itself after a while, so it
// has to be renewed; with it the kernel acknowledges vpcd's length segment at
// once instead of holding the ACK back while vpcd's Nagle algorithm holds the
// message segment back (see the wire format table above ReadMessage).
type ackingReader struct {
	c   *net.TCPConn
	raw syscall.RawConn
}

func newAckingReader(c *net.TCPConn) *ackingReader {
	r := &ackingReader{c: c}
	if raw, err := c.SyscallConn(); err == nil {
		r.raw = raw
		r.quickAck()
	}
	return r
}

func (r *ackingReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	r.quickAck()
	return n, err
}

func (r *ackingReader) quickAck() {
	if r.raw == nil {
		return
	}
	_ = r.raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
	})
}
