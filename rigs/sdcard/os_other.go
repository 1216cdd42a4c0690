//go:build unix && !linux

package sdcard

import (
	"errors"
	"time"
)

// onCardFileSystem reports false: IOAuto uses buffered I/O on this system.
func onCardFileSystem(dir string) bool { return false }

// directFlags fails: direct I/O (O_DIRECT) is what Linux offers; here a
// real card's response sectors would be read from the page cache.
func directFlags() (write, read int, err error) {
	return 0, 0, errors.New("sdcard: direct I/O (O_DIRECT) needs Linux; this system offers buffered I/O only, which suits an emulated card but not a real one")
}

// watchWrites returns -1: without inotify the channel polls RSP.BIN.
func watchWrites(path string) int { return -1 }

// waitReadable is never reached without a watch descriptor; it waits d.
func waitReadable(fd int, d time.Duration) bool {
	time.Sleep(d)
	return false
}
