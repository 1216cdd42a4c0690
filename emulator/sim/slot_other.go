//go:build !unix

package sim

import (
	"context"
	"time"
)

// SlotLockPath returns "": there is no slot lock on this system.
func SlotLockPath(address string) string { return "" }

// claimSlot cannot lock here; one emulator per slot is up to the user.
func claimSlot(ctx context.Context, address string, wait time.Duration, waiting func(Holder)) (func(), Holder, time.Time, error) {
	return func() {}, Holder{}, time.Time{}, nil
}
