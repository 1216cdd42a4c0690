//go:build cgo

package pcsc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebfe/scard"

	"github.com/spdlab/spdlab/rigs/link"
)

// Reader is a card in a PC/SC reader, held in exclusive mode (no other
// program interleaves commands) with T=1 or T=0, whichever the card offers.
// Its methods are safe for concurrent use; exchanges are serialised.
type Reader struct {
	sc   *scard.Context
	name string

	// sem serialises access to card: a transmit still running after its
	// caller's ctx ended keeps it until the transmit returns.
	sem    chan struct{}
	card   *scard.Card // nil after PowerOff or once the card was found removed
	gone   bool        // card is nil because the card was removed
	closed bool
	rsp    []byte // the response buffer of transmitInto, made at the first command

	// atr is written holding sem and atrMu, read holding either: ATR
	// answers while a transmit holds the reader.
	atrMu sync.Mutex
	atr   []byte

	closing    atomic.Bool // Close was called: no new command starts
	closeLater sync.Once   // a Close that timed out left the closing to a goroutine
}

// settle bounds how long Reset and PowerOn wait for a card that is
// (re)appearing: pcscd notices insertion and removal by polling its
// drivers, vpcd every 400 ms. (A card that tore or went mute stays in the
// reader: a reset reaches it at once.)
const settle = 3 * time.Second

var (
	_ link.Link         = (*Reader)(nil)
	_ link.Resetter     = (*Reader)(nil)
	_ link.PowerCycler  = (*Reader)(nil)
	_ link.ATRer        = (*Reader)(nil)
	_ link.RawExchanger = (*Reader)(nil)
)

// Open connects to the card in reader ("" = the first reader holding a
// card). It does not wait for a card: use WaitForCard first where a card
// may still be arriving.
func Open(ctx context.Context, reader string) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc, err := establish()
	if err != nil {
		return nil, err
	}
	name, err := pickReader(sc, reader)
	if err != nil {
		sc.Release()
		return nil, err
	}
	r := &Reader{sc: sc, name: name, sem: make(chan struct{}, 1)}
	if err := r.connect(); err != nil {
		sc.Release()
		return nil, err
	}
	return r, nil
}

// pickReader checks that reader exists, or finds the first reader holding a
// card when reader is "".
func pickReader(sc *scard.Context, reader string) (string, error) {
	readers, err := listReaders(sc)
	if err != nil {
		return "", err
	}
	if len(readers) == 0 {
		return "", fmt.Errorf("%w: pcscd has no reader attached", ErrNoReader)
	}
	if reader != "" {
		for _, r := range readers {
			if r == reader {
				return r, nil
			}
		}
		return "", fmt.Errorf("%w named %q (readers: %s)", ErrNoReader, reader, quoteAll(readers))
	}
	states := make([]scard.ReaderState, len(readers))
	for i, r := range readers {
		states[i] = scard.ReaderState{Reader: r, CurrentState: scard.StateUnaware}
	}
	if err := sc.GetStatusChange(states, 0); err != nil && !errors.Is(err, scard.ErrTimeout) {
		return "", wrap(err, "")
	}
	for _, s := range states {
		if s.EventState&scard.StatePresent != 0 && s.EventState&scard.StateMute == 0 {
			return s.Reader, nil
		}
	}
	return "", fmt.Errorf("%w in any reader (readers: %s)", link.ErrNoCard, quoteAll(readers))
}

// connect makes a new card handle and reads the ATR.
func (r *Reader) connect() error {
	card, err := r.sc.Connect(r.name, scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		return wrap(err, r.name)
	}
	r.card, r.gone = card, false
	return r.readATR()
}

func (r *Reader) readATR() error {
	st, err := r.card.Status()
	if err != nil {
		return wrap(err, r.name)
	}
	r.atrMu.Lock()
	r.atr = append([]byte(nil), st.Atr...)
	r.atrMu.Unlock()
	return nil
}

func (r *Reader) acquire(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pcsc: %s busy: %w", r.name, ctx.Err())
	}
}

func (r *Reader) release() { <-r.sem }

// Idle returns once no command is in progress on the reader, such as a
// transmit that went on after its caller's ctx ended, or when ctx ends
// (with an error).
func (r *Reader) Idle(ctx context.Context) error {
	if err := r.acquire(ctx); err != nil {
		return err
	}
	r.release()
	return nil
}

// run calls f holding the reader. When ctx ends first, run returns at once
// and f finishes in the background (PC/SC cannot interrupt a transmit).
func (r *Reader) run(ctx context.Context, f func() error) error {
	if r.closing.Load() {
		return link.ErrClosed
	}
	if err := r.acquire(ctx); err != nil {
		return err
	}
	if r.closed || r.closing.Load() {
		r.release()
		return link.ErrClosed
	}
	if ctx.Done() == nil {
		defer r.release()
		return f()
	}
	done := make(chan error, 1)
	go func() {
		defer r.release()
		done <- f()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("pcsc: %s: %w (the command may still complete on the card)", r.name, ctx.Err())
	}
}

// Exchange implements link.Link. 61xx and 6Cxx are resolved here. A card
// that is removed, loses power or goes mute during the command gives an
// error matching link.ErrRemoved; whether the command took effect is then
// unknown.
func (r *Reader) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	return r.exchange(ctx, command, true)
}

// ExchangeRaw implements link.RawExchanger: one SCardTransmit, the card's
// answer as it is (61xx and 6Cxx unresolved). Errors are Exchange's.
func (r *Reader) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	return r.exchange(ctx, command, false)
}

// exchange sends command, resolving 61xx and 6Cxx (link.Resolve) when
// resolve is set.
func (r *Reader) exchange(ctx context.Context, command []byte, resolve bool) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(command) < 4 {
		return nil, fmt.Errorf("pcsc: command of %d bytes is shorter than an APDU header", len(command))
	}
	cmd := append([]byte(nil), command...)
	var resp []byte
	err := r.run(ctx, func() error {
		if r.card == nil && r.gone {
			return fmt.Errorf("%w: the card in %s was removed; Reset or PowerOn connects to the card inserted since", link.ErrNoCard, r.name)
		}
		if r.card == nil {
			return ErrUnpowered
		}
		var err error
		if !resolve {
			resp, err = r.transmit(cmd)
			return err
		}
		resp, err = link.Resolve(ctx, func(_ context.Context, c []byte) ([]byte, error) { return r.transmit(c) }, cmd)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// transmit sends one APDU. A card reset by another program since our last
// command (SCARD_W_RESET_CARD: pcscd refused to send) is reconnected and the
// command sent once more.
func (r *Reader) transmit(command []byte) ([]byte, error) {
	if r.rsp == nil {
		r.rsp = make([]byte, maxResponse)
	}
	resp, err := transmitInto(r.card, command, r.rsp)
	if errors.Is(err, scard.ErrResetCard) {
		if err = r.card.Reconnect(scard.ShareExclusive, scard.ProtocolAny, scard.LeaveCard); err == nil {
			resp, err = transmitInto(r.card, command, r.rsp)
		}
	}
	resp = append([]byte(nil), resp...) // r.rsp is the next command's
	if errors.Is(err, scard.ErrRemovedCard) || errors.Is(err, scard.ErrNoSmartcard) {
		// The handle is dead: let it go, so that other programs (and
		// Reset) can connect to the next card.
		_ = r.card.Disconnect(scard.LeaveCard)
		r.card, r.gone = nil, true
	}
	if err != nil {
		return nil, wrap(err, r.name)
	}
	if len(resp) < 2 {
		// A reader answers no status word for a card that lost power or
		// went mute in the command (emulator/sim.MuteAnswer).
		return nil, fmt.Errorf("%w: the card in %s answered no status word (%d bytes): it lost power or is mute; Reset or PowerOn powers it again", link.ErrRemoved, r.name, len(resp))
	}
	return resp, nil
}

// Reset implements link.Resetter: a warm reset (SCARD_RESET_CARD) or a cold
// one (SCARD_UNPOWER_CARD: power removed and reapplied). It also brings back
// a card that was removed and reinserted, or powered off.
func (r *Reader) Reset(ctx context.Context, cold bool) ([]byte, error) {
	disp := scard.ResetCard
	if cold {
		disp = scard.UnpowerCard
	}
	var atr []byte
	err := r.run(ctx, func() error {
		if err := r.settled(ctx, func() error { return r.reconnect(disp) }); err != nil {
			return err
		}
		atr = append([]byte(nil), r.atr...)
		return nil
	})
	return atr, err
}

// settled runs connect until it succeeds, fails for a reason other than a
// missing or vanished card, or settle (or ctx) runs out.
func (r *Reader) settled(ctx context.Context, connect func() error) error {
	deadline := time.Now().Add(settle)
	for {
		err := connect()
		if err == nil || !(errors.Is(err, link.ErrNoCard) || errors.Is(err, link.ErrRemoved)) {
			return err
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reconnect resets through SCardReconnect, or makes a new handle when the
// old one is gone (card removed and reinserted, or powered off).
func (r *Reader) reconnect(disp scard.Disposition) error {
	if r.card != nil {
		err := r.card.Reconnect(scard.ShareExclusive, scard.ProtocolAny, disp)
		if err == nil {
			return r.readATR()
		}
		_ = r.card.Disconnect(scard.LeaveCard)
		r.card = nil
	}
	return r.connect()
}

// PowerOff implements link.PowerCycler: the handle is closed with
// SCARD_UNPOWER_CARD, so pcscd removes the card's power. Exchanges fail
// with ErrUnpowered until PowerOn.
func (r *Reader) PowerOff(ctx context.Context) error {
	return r.run(ctx, func() error {
		if r.card == nil {
			return nil
		}
		err := r.card.Disconnect(scard.UnpowerCard)
		r.card = nil
		if err != nil {
			return wrap(err, r.name)
		}
		return nil
	})
}

// PowerOn implements link.PowerCycler: it powers the card (connecting anew
// after PowerOff; a cold reset otherwise) and returns its ATR.
func (r *Reader) PowerOn(ctx context.Context) ([]byte, error) {
	var atr []byte
	err := r.run(ctx, func() error {
		err := r.settled(ctx, func() error {
			if r.card == nil {
				return r.connect()
			}
			return r.reconnect(scard.UnpowerCard)
		})
		if err != nil {
			return err
		}
		atr = append([]byte(nil), r.atr...)
		return nil
	})
	return atr, err
}

// ATR implements link.ATRer: the Answer To Reset of the last connect or
// reset.
func (r *Reader) ATR() []byte {
	r.atrMu.Lock()
	defer r.atrMu.Unlock()
	return append([]byte(nil), r.atr...)
}

// Name returns the PC/SC reader name.
func (r *Reader) Name() string { return r.name }

// String implements link.Link: "pcsc:" and the reader name.
func (r *Reader) String() string { return "pcsc:" + r.name }

// closeWait bounds how long Close waits for a command still running on
// the card: one whose caller's ctx ended first (run). PC/SC cannot
// interrupt a transmit, and a card, reader or pcscd that never answers
// must not keep the program that closes the reader from ending.
var closeWait = 10 * time.Second

// Close implements link.Link. The card is left as it is (powered), as
// SCARD_LEAVE_CARD does; pcscd may power it down later. No command starts
// once Close is called. When a command sent before has not returned
// within closeWait, Close returns an error saying so, and the card handle
// and PC/SC context are let go when the command returns (or with the
// process).
func (r *Reader) Close() error {
	r.closing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if err := r.acquire(ctx); err != nil {
		r.closeLater.Do(func() {
			go func() {
				r.sem <- struct{}{}
				defer r.release()
				_ = r.closeHeld()
			}()
		})
		return fmt.Errorf("pcsc: %s: a command sent to the card has not returned after %v: the card, the reader or pcscd does not answer; the connection is let go if it ever returns", r.name, closeWait)
	}
	defer r.release()
	return r.closeHeld()
}

// closeHeld closes the reader; the caller holds it.
func (r *Reader) closeHeld() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	if r.card != nil {
		if err := r.card.Disconnect(scard.LeaveCard); err != nil && !errors.Is(err, scard.ErrInvalidHandle) &&
			!errors.Is(err, scard.ErrRemovedCard) && !errors.Is(err, scard.ErrNoSmartcard) {
			errs = append(errs, wrap(err, r.name))
		}
		r.card = nil
	}
	if err := r.sc.Release(); err != nil {
		errs = append(errs, wrap(err, r.name))
	}
	return errors.Join(errs...)
}
