package sdcard

import (
	"time"

	"golang.org/x/sys/unix"
)

// stopPipe returns a non-blocking, close-on-exec pipe.
func stopPipe() (r, w int, err error) {
	var p [2]int
	err = unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK)
	return p[0], p[1], err
}

// newWatcher returns a non-blocking inotify descriptor, or -1.
func newWatcher() int {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return -1
	}
	return fd
}

// addWatch makes watcher readable whenever path is written.
func addWatch(watcher int, path string) bool {
	_, err := unix.InotifyAddWatch(watcher, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE)
	return err == nil
}

// poll waits up to d, with ppoll's nanosecond timeout, for any of fds.
func poll(fds []unix.PollFd, d time.Duration) (int, error) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	return unix.Ppoll(fds, &ts, nil)
}
