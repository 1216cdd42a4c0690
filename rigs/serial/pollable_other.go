//go:build !unix

package serial

import (
	"errors"
	"os"
)

// openPollable has no poller-backed port here: the port reads with
// go.bug.st/serial's timeouts.
func openPollable(string) (*os.File, error) { return nil, errors.ErrUnsupported }
