//go:build cgo

package pcsc

import "time"

// SetCloseWait sets how long Close waits for a command still running, and
// returns a function that restores it.
func SetCloseWait(d time.Duration) (restore func()) {
	old := closeWait
	closeWait = d
	return func() { closeWait = old }
}
