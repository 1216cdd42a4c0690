// Package usb reaches a device under test through a USB CCID smart-card
// reader (USB CCID specification rev 1.1; messages in reference/wire/ccid)
// and presents it as a link.Link.
//
// New speaks CCID over any pair of bulk endpoints (a BulkPipe): a real
// reader opened with OpenDevice through github.com/google/gousb, or the
// endpoints of emulator/usbccid. OpenDevice needs cgo and libusb-1.0; a
// build without cgo has New but no OpenDevice (it fails saying so). The link exchanges at APDU level
// (PC_to_RDR_XfrBlock with a whole command APDU), powers the card with
// IccPowerOn and IccPowerOff, waits through the reader's time extension
// requests, and checks that every answer carries the sequence number of
// its command: answers to an earlier, abandoned command are skipped.
//
// Failed commands map to the link errors a caller can act on:
//
//	answer                                        error
//	IccPowerOn failed, no ICC present             link.ErrNoCard
//	XfrBlock failed, no ICC present               link.ErrRemoved
//	ICC_MUTE (card inactive, torn or silent)      link.ErrRemoved
//	CMD_SLOT_BUSY                                 ErrSlotBusy
//	anything else                                 *CommandError
package usb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/wire/ccid"
	"github.com/spdlab/spdlab/rigs/link"
)

// BulkPipe is the bulk-out and bulk-in endpoint pair of a CCID interface.
// One Write carries one whole PC_to_RDR message; one Read returns one
// whole RDR_to_PC message. Both honour ctx's deadline.
type BulkPipe interface {
	Write(ctx context.Context, msg []byte) error
	Read(ctx context.Context) ([]byte, error)
}

// Config configures a Link. The zero value is a working configuration.
type Config struct {
	// Name names the link in reports; default "usb".
	Name string
	// Slot is bSlot; default 0.
	Slot byte
	// PowerSelect is bPowerSelect of IccPowerOn: 0 automatic (default),
	// 1 5 V, 2 3 V, 3 1.8 V.
	PowerSelect byte
	// Timeout is how long to wait for each bulk-in answer (default 5 s).
	// A time extension request with multiplier m restarts the wait with m
	// times Timeout. ctx's deadline always applies as well.
	Timeout time.Duration
	// MaxTimeExtensions bounds the time extension requests accepted for
	// one command (default 1000).
	MaxTimeExtensions int
	// MaxStale bounds the answers with another sequence number skipped
	// while waiting for one command's answer (default 16).
	MaxStale int
}

// ErrSlotBusy: the reader is still working on an earlier command (one
// whose answer the host stopped waiting for). Retry later.
var ErrSlotBusy = errors.New("usb: reader slot busy with an earlier command")

// CommandError is a CCID command that the reader reported as failed.
type CommandError struct {
	Command ccid.MessageType
	Status  ccid.Status
	Code    ccid.SlotError
	kind    error // the link error it maps to, if any
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("usb: %s failed: %s (%s)", e.Command, e.Code, e.Status.ICC())
}

// Unwrap returns the link error the failure maps to (see the package
// documentation), or nil.
func (e *CommandError) Unwrap() error { return e.kind }

// Link is a link.Link to the card in one slot of a CCID reader.
type Link struct {
	pipe    BulkPipe
	cfg     Config
	release func() error

	mu     sync.Mutex
	seq    byte
	atr    []byte
	closed bool
}

var (
	_ link.Link         = (*Link)(nil)
	_ link.Resetter     = (*Link)(nil)
	_ link.PowerCycler  = (*Link)(nil)
	_ link.ATRer        = (*Link)(nil)
	_ link.RawExchanger = (*Link)(nil)
)

// New opens a link over pipe and powers the card on. It does not take
// ownership of pipe: Close leaves it open.
func New(ctx context.Context, pipe BulkPipe, cfg Config) (*Link, error) {
	if cfg.Name == "" {
		cfg.Name = "usb"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxTimeExtensions <= 0 {
		cfg.MaxTimeExtensions = 1000
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 16
	}
	l := &Link{pipe: pipe, cfg: cfg}
	if _, err := l.PowerOn(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Exchange implements link.Link: one PC_to_RDR_XfrBlock per command APDU,
// with 61xx and 6Cxx resolved (link.Resolve).
func (l *Link) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return link.Resolve(ctx, l.xfrBlock, command)
}

// ExchangeRaw implements link.RawExchanger: one PC_to_RDR_XfrBlock, its
// answer as the card gave it (61xx and 6Cxx unresolved).
func (l *Link) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.xfrBlock(ctx, command)
}

// xfrBlock sends one command APDU; l.mu is held.
func (l *Link) xfrBlock(ctx context.Context, command []byte) ([]byte, error) {
	if l.closed {
		return nil, link.ErrClosed
	}
	m, err := l.transact(ctx, ccid.XfrBlock(l.cfg.Slot, 0, command))
	if err != nil {
		return nil, err
	}
	if len(m.Data) < 2 {
		return nil, fmt.Errorf("usb: %s answered %d bytes, shorter than a status word", l.cfg.Name, len(m.Data))
	}
	return append([]byte(nil), m.Data...), nil
}

// PowerOn implements link.PowerCycler: PC_to_RDR_IccPowerOn. On an active
// card the reader performs a warm reset.
func (l *Link) PowerOn(ctx context.Context) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.powerOnLocked(ctx)
}

func (l *Link) powerOnLocked(ctx context.Context) ([]byte, error) {
	if l.closed {
		return nil, link.ErrClosed
	}
	m, err := l.transact(ctx, ccid.IccPowerOn(l.cfg.Slot, 0, l.cfg.PowerSelect))
	if err != nil {
		return nil, err
	}
	if len(m.Data) < 2 {
		return nil, fmt.Errorf("usb: %s answered IccPowerOn with a %d-byte ATR", l.cfg.Name, len(m.Data))
	}
	l.atr = append([]byte(nil), m.Data...)
	return append([]byte(nil), l.atr...), nil
}

// PowerOff implements link.PowerCycler: PC_to_RDR_IccPowerOff.
func (l *Link) PowerOff(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.powerOffLocked(ctx)
}

func (l *Link) powerOffLocked(ctx context.Context) error {
	if l.closed {
		return link.ErrClosed
	}
	_, err := l.transact(ctx, ccid.IccPowerOff(l.cfg.Slot, 0))
	return err
}

// Reset implements link.Resetter. A cold reset is IccPowerOff then
// IccPowerOn; a warm reset is IccPowerOn on the active card.
func (l *Link) Reset(ctx context.Context, cold bool) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cold {
		if err := l.powerOffLocked(ctx); err != nil {
			return nil, err
		}
	}
	return l.powerOnLocked(ctx)
}

// SlotStatus asks the reader for the slot's state (PC_to_RDR_GetSlotStatus).
func (l *Link) SlotStatus(ctx context.Context) (ccid.ICCStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, link.ErrClosed
	}
	m, err := l.transact(ctx, ccid.GetSlotStatus(l.cfg.Slot, 0))
	if err != nil {
		return 0, err
	}
	return m.Status().ICC(), nil
}

// Parameters asks the reader for the protocol and its parameters
// (PC_to_RDR_GetParameters): bProtocolNum and abProtocolDataStructure.
func (l *Link) Parameters(ctx context.Context) (protocol byte, params []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, nil, link.ErrClosed
	}
	m, err := l.transact(ctx, ccid.GetParameters(l.cfg.Slot, 0))
	if err != nil {
		return 0, nil, err
	}
	return m.Param[2], append([]byte(nil), m.Data...), nil
}

// ATR implements link.ATRer: the ATR of the last power-on or reset.
func (l *Link) ATR() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.atr...)
}

// String implements link.Link.
func (l *Link) String() string { return l.cfg.Name }

// Close implements link.Link. It leaves the card powered; for a device
// opened with OpenDevice it releases the interface and the device.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.release != nil {
		return l.release()
	}
	return nil
}

// transact sends cmd with the next sequence number and returns its
// answer, waiting through time extension requests. A failed answer is
// returned as an error.
func (l *Link) transact(ctx context.Context, cmd ccid.Message) (ccid.Message, error) {
	l.seq++
	cmd.Seq = l.seq
	want := cmd.Type.AnswerType()
	if err := ctx.Err(); err != nil {
		return ccid.Message{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	err := l.pipe.Write(wctx, cmd.Bytes())
	cancel()
	if err != nil {
		return ccid.Message{}, fmt.Errorf("usb: %s: sending %s: %w", l.cfg.Name, cmd.Type, err)
	}
	wait := l.cfg.Timeout
	stale, extensions := 0, 0
	for {
		rctx, cancel := context.WithTimeout(ctx, wait)
		b, err := l.pipe.Read(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ccid.Message{}, fmt.Errorf("usb: %s: waiting for %s: %w", l.cfg.Name, want, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return ccid.Message{}, fmt.Errorf("usb: %s: no answer to %s within %v: %w", l.cfg.Name, cmd.Type, wait, err)
			}
			return ccid.Message{}, fmt.Errorf("usb: %s: reading the answer to %s: %w", l.cfg.Name, cmd.Type, err)
		}
		m, err := ccid.Parse(b)
		if err != nil {
			return ccid.Message{}, fmt.Errorf("usb: %s: bad answer to %s: %w", l.cfg.Name, cmd.Type, err)
		}
		if m.Seq != cmd.Seq || m.Slot != cmd.Slot {
			stale++
			if stale > l.cfg.MaxStale {
				return ccid.Message{}, fmt.Errorf("usb: %s: %d answers out of sequence while waiting for %s seq %d", l.cfg.Name, stale, cmd.Type, cmd.Seq)
			}
			continue
		}
		if m.Type != want {
			return ccid.Message{}, fmt.Errorf("usb: %s: %s answered with %s, want %s", l.cfg.Name, cmd.Type, m.Type, want)
		}
		switch m.Status().Command() {
		case ccid.CommandOK:
			return m, nil
		case ccid.CommandTimeExtension:
			extensions++
			if extensions > l.cfg.MaxTimeExtensions {
				return ccid.Message{}, fmt.Errorf("usb: %s: more than %d time extensions for %s", l.cfg.Name, l.cfg.MaxTimeExtensions, cmd.Type)
			}
			wait = l.cfg.Timeout * time.Duration(max(1, int(m.Error())))
			continue
		case ccid.CommandFailed:
			return ccid.Message{}, commandError(cmd.Type, m)
		default:
			return ccid.Message{}, fmt.Errorf("usb: %s: %s answered with reserved bStatus 0x%02X", l.cfg.Name, cmd.Type, byte(m.Status()))
		}
	}
}

func commandError(cmd ccid.MessageType, m ccid.Message) error {
	e := &CommandError{Command: cmd, Status: m.Status(), Code: m.Error()}
	switch {
	case m.Error() == ccid.ErrCmdSlotBusy:
		e.kind = ErrSlotBusy
	case m.Status().ICC() == ccid.ICCAbsent && cmd == ccid.PCtoRDRIccPowerOn:
		e.kind = link.ErrNoCard
	case m.Status().ICC() == ccid.ICCAbsent && cmd == ccid.PCtoRDRXfrBlock:
		e.kind = link.ErrRemoved
	case m.Status().ICC() == ccid.ICCAbsent:
		e.kind = link.ErrNoCard
	case m.Error() == ccid.ErrICCMute:
		e.kind = link.ErrRemoved
	}
	return e
}

// ParseID parses "VVVV:PPPP" (hexadecimal vendor and product IDs, as lsusb
// prints them) as used in the DUT string usb:VID:PID.
func ParseID(s string) (vid, pid uint16, err error) {
	v, p, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("usb: device ID %q is not VID:PID", s)
	}
	vv, err := strconv.ParseUint(v, 16, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("usb: bad vendor ID in %q", s)
	}
	pp, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return 0, 0, fmt.Errorf("usb: bad product ID in %q", s)
	}
	return uint16(vv), uint16(pp), nil
}
