//go:build !unix

package sim

import (
	"context"
	"time"
)

// SlotLockPath returns "": there is no slot lock on this system.
func SlotLockPath(address string) string { return "" }

// claimSlot cannot lock here; one emulator per slot is up to the user.
func claimSlot(ctx context.Context, address string, wait time.Duration, waiting func(Holder)) (func(), Holder, error) {
	return func() {}, Holder{}, nil
}
