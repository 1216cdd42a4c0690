//go:build unix && !linux

package sdcard

import (
	"time"

	"golang.org/x/sys/unix"
)

// stopPipe returns a non-blocking, close-on-exec pipe.
func stopPipe() (r, w int, err error) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		return -1, -1, err
	}
	for _, fd := range p {
		unix.CloseOnExec(fd)
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(p[0])
			unix.Close(p[1])
			return -1, -1, err
		}
	}
	return p[0], p[1], nil
}

// newWatcher returns -1: without inotify the card polls CMD.BIN every
// Config.PollInterval.
func newWatcher() int { return -1 }

// addWatch is never reached without a watcher.
func addWatch(watcher int, path string) bool { return false }

// poll waits up to d for any of fds; poll(2) counts whole milliseconds,
// so d is rounded up.
func poll(fds []unix.PollFd, d time.Duration) (int, error) {
	return unix.Poll(fds, int((d+time.Millisecond-1)/time.Millisecond))
}
