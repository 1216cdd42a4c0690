//go:build unix

package serial

import (
	"os"

	"golang.org/x/sys/unix"
)

// openPollable opens the port at path a second time, non-blocking, as a
// file of the Go runtime's poller: a request waiting for its reply then
// parks rather than holding a thread in a system call (which the runtime
// answers by handing the thread's processor to another thread, a wake-up
// more per exchange). It is opened before go.bug.st/serial takes the
// port's exclusive use. Line settings belong to the port, not to a
// descriptor: those go.bug.st/serial makes apply to this one too.
func openPollable(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
