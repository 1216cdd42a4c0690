package sdcard

import (
	"time"

	"golang.org/x/sys/unix"
)

// File system magic numbers of statfs(2).
const (
	msdosSuperMagic = 0x4d44
	exfatSuperMagic = 0x2011BAB0
)

// onCardFileSystem reports whether dir is on FAT or exFAT, the way SDHC
// and SDXC cards are formatted.
func onCardFileSystem(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && (st.Type == msdosSuperMagic || st.Type == exfatSuperMagic)
}

// directFlags returns the open flags of direct I/O for the command file
// (written) and the response file (read): O_DIRECT, and O_DSYNC on writes.
func directFlags() (write, read int, err error) {
	return unix.O_DIRECT | unix.O_DSYNC, unix.O_DIRECT, nil
}

// watchWrites returns a non-blocking inotify descriptor that becomes
// readable when path is written, or -1 when inotify is not available (the
// channel then polls).
func watchWrites(path string) int {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return -1
	}
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// waitReadable waits up to d, with ppoll's nanosecond timeout, for fd to
// become readable, and reports whether it did.
func waitReadable(fd int, d time.Duration) bool {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	n, _ := unix.Ppoll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, &ts, nil)
	return n > 0
}
