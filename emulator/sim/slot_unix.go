//go:build unix

package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SlotLockPath returns the lock file that guards the vpcd slot at address.
func SlotLockPath(address string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			return r
		}
		return '_'
	}, address)
	return filepath.Join(os.TempDir(), "spdlab-vpcd-"+name+".lock")
}

// claimSlot takes the advisory lock on the vpcd slot at address, waiting up
// to wait for another holder (in this process or another) to let go.
//
// The holder removes the lock file when it lets go, so that files for
// short-lived addresses do not pile up. A claimant that locked a file which
// was removed meanwhile (its path now names another file or none) holds
// nothing and tries again.
func claimSlot(ctx context.Context, address string, wait time.Duration) (release func(), err error) {
	path := SlotLockPath(address)
	deadline := time.Now().Add(wait)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("sim: vpcd slot lock: %w", err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if samePath(f, path) {
				return func() {
					_ = os.Remove(path)
					_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
					_ = f.Close()
				}, nil
			}
			f.Close()
			continue
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("sim: vpcd slot lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w at %s (lock %s, waited %v)", ErrSlotBusy, address, path, wait)
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// samePath reports whether path still names the open file f.
func samePath(f *os.File, path string) bool {
	var held, named unix.Stat_t
	if unix.Fstat(int(f.Fd()), &held) != nil || unix.Stat(path, &named) != nil {
		return false
	}
	return held.Dev == named.Dev && held.Ino == named.Ino
}
