//go:build cgo

// Package pcsc reaches a device under test in any PC/SC smart-card reader,
// through pcscd (pcsc-lite) and github.com/ebfe/scard: a real SIM reader, or
// the SIM emulator (emulator/sim) behind vsmartcard's vpcd driver.
//
// It follows the PC/SC Workgroup specifications as pcsc-lite implements
// them (SCardConnect, SCardTransmit, SCardReconnect, SCardDisconnect,
// SCardGetStatusChange) and ISO/IEC 7816-4 for the transport status words
// 61xx and 6Cxx, which it resolves with link.Resolve. A Reader is a
// link.Link that can also reset the card (link.Resetter), cut and restore
// its power (link.PowerCycler) and tell its Answer To Reset (link.ATRer).
//
// Errors a caller can act on: ErrNoService (pcscd is not running),
// ErrNoReader, link.ErrNoCard, link.ErrRemoved (the card went away, lost
// power or went mute during a command), ErrUnpowered (after PowerOff).
//
// Building this package needs cgo and libpcsclite (Debian: libpcsclite-dev),
// so every file carries the cgo build constraint: a build without cgo has no
// PC/SC, and rigs/dut says so for the pcsc and pcsc-emu DUTs. Running it
// needs pcscd.
package pcsc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ebfe/scard"

	"github.com/spdlab/spdlab/rigs/link"
)

// Errors a caller can act on, besides link.ErrNoCard and link.ErrRemoved.
var (
	// ErrNoService: pcscd cannot be reached.
	ErrNoService = errors.New("pcsc: cannot reach pcscd")
	// ErrNoReader: no reader, or none of the requested name, is attached.
	ErrNoReader = errors.New("pcsc: no such reader")
	// ErrUnpowered: the card was powered off through PowerOff.
	ErrUnpowered = errors.New("pcsc: card is unpowered (call PowerOn)")
	// ErrInUse: another program holds the reader's card exclusively
	// (SCARD_E_SHARING_VIOLATION); it may let go.
	ErrInUse = errors.New("pcsc: reader in exclusive use by another program")
)

// hintNoService tells how to start pcscd.
const hintNoService = "is the pcscd service running? start it with `systemctl start pcscd` or, without systemd, .ci/pcscd"

// pollInterval bounds each SCardGetStatusChange wait so that cancellation
// is seen even if SCardCancel is lost.
const pollInterval = 500 * time.Millisecond

// establish opens a PC/SC context.
func establish() (*scard.Context, error) {
	sc, err := scard.EstablishContext()
	if err != nil {
		return nil, wrap(err, "")
	}
	return sc, nil
}

// wrap turns a PC/SC error into one of this package's errors.
func wrap(err error, reader string) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return err
	}
	on := ""
	if reader != "" {
		on = " " + reader
	}
	switch se {
	case scard.ErrNoService, scard.ErrServiceStopped:
		return fmt.Errorf("%w (%s): %v", ErrNoService, hintNoService, se)
	case scard.ErrNoReadersAvailable:
		return fmt.Errorf("%w: pcscd has no reader attached (for the SIM emulator, vpcd must be configured in /etc/reader.conf.d): %v", ErrNoReader, se)
	case scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		return fmt.Errorf("%w%s: %v", ErrNoReader, on, se)
	case scard.ErrNoSmartcard:
		return fmt.Errorf("%w%s: %v", link.ErrNoCard, inReader(reader), se)
	case scard.ErrRemovedCard, scard.ErrUnpoweredCard, scard.ErrUnresponsiveCard, scard.ErrNotTransacted,
		scard.ErrCommError, scard.ErrCommDataLost, scard.ErrUnknownError:
		return fmt.Errorf("%w%s: %v", link.ErrRemoved, inReader(reader), se)
	case scard.ErrSharingViolation:
		return fmt.Errorf("%w%s: %v", ErrInUse, inReader(reader), se)
	}
	return fmt.Errorf("pcsc%s: %w", inReader(reader), se)
}

func inReader(reader string) string {
	if reader == "" {
		return ""
	}
	return " (reader " + reader + ")"
}

// ListReaders names the readers pcscd knows. No reader attached is an empty
// list, not an error.
func ListReaders() ([]string, error) {
	sc, err := establish()
	if err != nil {
		return nil, err
	}
	defer sc.Release()
	return listReaders(sc)
}

func listReaders(sc *scard.Context) ([]string, error) {
	readers, err := sc.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err, "")
	}
	return readers, nil
}

// WaitForCard waits until a card is present in reader ("" = in any reader)
// or ctx ends. A named reader that pcscd does not know is ErrNoReader.
func WaitForCard(ctx context.Context, reader string) error {
	_, err := waitFor(ctx, reader, true)
	return err
}

// WaitForRemoval waits until reader ("" = every reader) holds no card or
// ctx ends.
func WaitForRemoval(ctx context.Context, reader string) error {
	_, err := waitFor(ctx, reader, false)
	return err
}

// waitFor waits for a card to be present (or absent) and returns the reader
// where it is (for absent: reader itself).
func waitFor(ctx context.Context, reader string, present bool) (string, error) {
	sc, err := establish()
	if err != nil {
		return "", err
	}
	defer sc.Release()
	stop := context.AfterFunc(ctx, func() { _ = sc.Cancel() })
	defer stop()

	for {
		if err := ctx.Err(); err != nil {
			what := "to leave"
			if present {
				what = "to arrive"
			}
			return "", fmt.Errorf("pcsc: waiting for a card %s%s: %w", what, inReader(reader), err)
		}
		readers, err := listReaders(sc)
		if err != nil {
			return "", err
		}
		if reader != "" {
			if !slices.Contains(readers, reader) {
				return "", fmt.Errorf("%w named %q (readers: %s)", ErrNoReader, reader, quoteAll(readers))
			}
			readers = []string{reader}
		}
		states := make([]scard.ReaderState, len(readers))
		for i, r := range readers {
			states[i] = scard.ReaderState{Reader: r, CurrentState: scard.StateUnaware}
		}
		if len(states) > 0 {
			if err := sc.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
				return "", wrap(err, reader)
			}
		}
		// Decide from the current state, then wait for the next change.
		for {
			all := len(states) > 0
			for _, s := range states {
				has := s.EventState&scard.StatePresent != 0 && s.EventState&scard.StateMute == 0
				if present && has {
					return s.Reader, nil
				}
				if has {
					all = false
				}
			}
			if !present && (all || len(states) == 0) {
				return reader, nil
			}
			for i := range states {
				states[i].CurrentState = states[i].EventState &^ scard.StateChanged
			}
			err := waitChange(ctx, sc, states)
			if errors.Is(err, errReadersChanged) || ctx.Err() != nil {
				break // list the readers again, or report the end of ctx
			}
			if err != nil {
				return "", err
			}
		}
	}
}

var errReadersChanged = errors.New("pcsc: reader list changed")

// pnpReader is pcsc-lite's pseudo reader whose state changes when a reader
// is attached or detached.
const pnpReader = `\\?PnP?\Notification`

// waitChange blocks until one of states changes, the reader list changes or
// ctx ends.
func waitChange(ctx context.Context, sc *scard.Context, states []scard.ReaderState) error {
	watch := slices.Clone(states)
	// Watch pcsc-lite's PnP pseudo reader too, from its current state, so
	// that a reader attached or detached ends the wait.
	pnp := []scard.ReaderState{{Reader: pnpReader, CurrentState: scard.StateUnaware}}
	if err := sc.GetStatusChange(pnp, 0); err == nil {
		pnp[0].CurrentState = pnp[0].EventState &^ scard.StateChanged
		watch = append(watch, pnp[0])
	}
	if len(watch) == 0 {
		// No reader and no PnP notification: look again later.
		if !sleep(ctx, pollInterval) {
			return ctx.Err()
		}
		return errReadersChanged
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := sc.GetStatusChange(watch, pollInterval)
		switch {
		case errors.Is(err, scard.ErrTimeout):
			continue
		case errors.Is(err, scard.ErrCancelled):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		case errors.Is(err, scard.ErrUnknownReader), errors.Is(err, scard.ErrReaderUnavailable):
			return errReadersChanged
		case err != nil:
			return wrap(err, "")
		}
		if len(watch) > len(states) && watch[len(states)].EventState&scard.StateChanged != 0 {
			return errReadersChanged
		}
		copy(states, watch[:len(states)])
		return nil
	}
}

func quoteAll(readers []string) string {
	if len(readers) == 0 {
		return "none"
	}
	q := make([]string, len(readers))
	for i, r := range readers {
		q[i] = fmt.Sprintf("%q", r)
	}
	return strings.Join(q, ", ")
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
