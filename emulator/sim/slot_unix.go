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
func claimSlot(ctx context.Context, address string, wait time.Duration) (release func(), err error) {
	path := SlotLockPath(address)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("sim: vpcd slot lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("sim: vpcd slot lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, fmt.Errorf("%w at %s (lock %s, waited %v)", ErrSlotBusy, address, path, wait)
		}
		if !sleep(ctx, 20*time.Millisecond) {
			f.Close()
			return nil, ctx.Err()
		}
	}
}
