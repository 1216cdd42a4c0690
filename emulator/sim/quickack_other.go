//go:build !linux

package sim

import (
	"io"
	"net"
)

// newAckingReader is the plain connection where TCP_QUICKACK does not exist.
func newAckingReader(c *net.TCPConn) io.Reader { return c }
