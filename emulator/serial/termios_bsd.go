//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package serial

import "golang.org/x/sys/unix"

// The termios requests of the BSDs and macOS.
const (
	ioctlGetTermios = unix.TIOCGETA
	ioctlSetTermios = unix.TIOCSETA
)

// flushInput discards what was written to the host but not yet read by it:
// tcflush(fd, TCIFLUSH) on the slave, which these systems implement as
// TIOCFLUSH with FREAD.
func flushInput(fd int) error {
	const fread = 0x1
	return unix.IoctlSetPointerInt(fd, unix.TIOCFLUSH, fread)
}
