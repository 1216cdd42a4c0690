package serial

import "golang.org/x/sys/unix"

// The termios requests of Linux.
const (
	ioctlGetTermios = unix.TCGETS
	ioctlSetTermios = unix.TCSETS
)

// flushInput discards what was written to the host but not yet read by it:
// tcflush(fd, TCIFLUSH) on the slave.
func flushInput(fd int) error { return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH) }
