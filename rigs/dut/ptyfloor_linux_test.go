//go:build linux

package dut

import (
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The sizes of the frames of a SELECT and its answer on the serial line.
const floorRequest, floorReply = 22, 28

// ptyRoundTrips times n exchanges of bare bytes over a pseudo-terminal in
// raw mode, both ends read and written through the Go runtime's poller as
// the serial emulator and rig do, with nothing else: no framing, no card.
// It is the floor of serial-emu's round trip on this machine (the
// kernel's pty and the wake-ups it takes), and returns the sorted
// durations, or nil when no pty can be opened.
func ptyRoundTrips(tb testing.TB, n int) []time.Duration {
	tb.Helper()
	m, s, err := pty.Open()
	if err != nil {
		tb.Logf("pty floor: not measured: %v", err)
		return nil
	}
	defer m.Close()
	defer s.Close()
	t, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		tb.Fatal(err)
	}
	t.Iflag, t.Oflag, t.Lflag = 0, 0, 0
	t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB) | unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, t); err != nil {
		tb.Fatal(err)
	}
	pollable := func(f *os.File) *os.File {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			tb.Fatal(err)
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			tb.Fatal(err)
		}
		return os.NewFile(uintptr(fd), f.Name())
	}
	dev, host := pollable(m), pollable(s)
	defer host.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, reply := make([]byte, floorRequest), make([]byte, floorReply)
		for {
			if _, err := io.ReadFull(dev, req); err != nil {
				return
			}
			if _, err := dev.Write(reply); err != nil {
				return
			}
		}
	}()
	defer func() { dev.Close(); <-done }()
	req, reply := make([]byte, floorRequest), make([]byte, floorReply)
	exchange := func() {
		if _, err := host.Write(req); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(host, reply); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ { // warm up
		exchange()
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		exchange()
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds
}
