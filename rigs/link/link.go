// Package link defines how the lab reaches a device under test (DUT).
//
// A Link carries command APDUs to a device and brings back its response
// APDUs, whatever the transport below it: PC/SC, a serial line, USB CCID, an
// SD file channel, a recorded trace or the reference device in process.
// Optional abilities (reset with ATR, power cycling, size limits) are small
// separate interfaces found by type assertion, in the style of periph.io's
// conn.Conn and conn.Limits.
//
// A driver takes a Link and never closes it; whoever opened a link closes it.
// This package is a leaf: it imports nothing else of spdlab.
package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Link exchanges APDUs with one device.
type Link interface {
	// Exchange sends one command APDU and returns the response APDU,
	// status word included. It honours ctx's deadline and cancellation.
	// Transport-level status words (61xx, 6Cxx) are resolved below the
	// link, as Resolve does: callers see the final response, whole. A
	// link that can also pass them on unresolved is a RawExchanger.
	Exchange(ctx context.Context, command []byte) ([]byte, error)
	// String names the link in reports, for example "pcsc:Virtual PCD 00 00".
	String() string
	// Close releases the transport. It does not power the device off
	// unless the transport itself does so.
	Close() error
}

// Resetter can reset the device and return its Answer To Reset.
// cold selects a cold reset (power removed and reapplied) over a warm one.
type Resetter interface {
	Reset(ctx context.Context, cold bool) (atr []byte, err error)
}

// PowerCycler can remove and reapply the device's power.
type PowerCycler interface {
	PowerOff(ctx context.Context) error
	PowerOn(ctx context.Context) (atr []byte, err error)
}

// RawExchanger can send one command APDU and return the device's answer
// as it is: a 61xx or 6Cxx status word reaches the caller unresolved, and
// nothing else is sent to the device (no GET RESPONSE, no second command).
// It is what a conformance case needs to check the device's own response
// chaining (SPEC.md SPD-APP-5); every other caller uses Exchange.
type RawExchanger interface {
	ExchangeRaw(ctx context.Context, command []byte) ([]byte, error)
}

// ATRer returns the Answer To Reset seen when the link was opened.
type ATRer interface {
	ATR() []byte
}

// Limits tells the largest command and response APDU the transport carries.
type Limits interface {
	MaxCommand() int
	MaxResponse() int
}

// Errors a caller can act on.
var (
	// ErrNoCard: no device is present (reader empty, port missing or
	// silent). Its text says "device", as the link serves serial, USB and
	// SD devices as well as cards in readers.
	ErrNoCard = errors.New("link: no device present")
	// ErrRemoved: the device went away or lost power during an exchange;
	// whether the command took effect is unknown to the host.
	ErrRemoved = errors.New("link: card removed or unpowered during exchange")
	// ErrClosed: the link was closed.
	ErrClosed = errors.New("link: closed")
)

// Processor is a device application that answers APDUs in process. The
// reference device satisfies it. A nil response means the device lost power
// while processing (a tear): no answer reaches the host.
type Processor interface {
	Process(command []byte) []byte
}

// PowerController is the power interface of an in-process device.
type PowerController interface {
	PowerOn()
	PowerOff()
	Reset()
}

// Direct is a Link straight to a device application in this process: the
// "ref" DUT. It serialises exchanges the way a single-slot reader does.
type Direct struct {
	mu     sync.Mutex
	app    Processor
	name   string
	atr    []byte
	closed bool
}

var (
	_ Link         = (*Direct)(nil)
	_ Resetter     = (*Direct)(nil)
	_ PowerCycler  = (*Direct)(nil)
	_ ATRer        = (*Direct)(nil)
	_ RawExchanger = (*Direct)(nil)
)

// NewDirect returns a Link to app, named name in reports, reporting atr as
// its Answer To Reset. If app is a PowerController it is powered on.
func NewDirect(app Processor, name string, atr []byte) *Direct {
	if pc, ok := app.(PowerController); ok {
		pc.PowerOn()
	}
	return &Direct{app: app, name: name, atr: append([]byte(nil), atr...)}
}

// Exchange implements Link. It resolves 61xx and 6Cxx (Resolve).
func (d *Direct) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return Resolve(ctx, d.process, command)
}

// ExchangeRaw implements RawExchanger: the application's answer as it is.
func (d *Direct) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.process(ctx, command)
}

// process sends one command to the application; d.mu is held.
func (d *Direct) process(ctx context.Context, command []byte) ([]byte, error) {
	if d.closed {
		return nil, ErrClosed
	}
	resp := d.app.Process(append([]byte(nil), command...))
	if resp == nil {
		return nil, ErrRemoved
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("link: %s answered %d bytes, shorter than a status word", d.name, len(resp))
	}
	return resp, nil
}

// Reset implements Resetter.
func (d *Direct) Reset(ctx context.Context, cold bool) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc, ok := d.app.(PowerController); ok {
		if cold {
			pc.PowerOff()
			pc.PowerOn()
		} else {
			pc.Reset()
		}
	}
	return append([]byte(nil), d.atr...), nil
}

// PowerOff implements PowerCycler.
func (d *Direct) PowerOff(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc, ok := d.app.(PowerController); ok {
		pc.PowerOff()
	}
	return nil
}

// PowerOn implements PowerCycler.
func (d *Direct) PowerOn(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc, ok := d.app.(PowerController); ok {
		pc.PowerOn()
	}
	return append([]byte(nil), d.atr...), nil
}

// ATR implements ATRer.
func (d *Direct) ATR() []byte { return append([]byte(nil), d.atr...) }

// String implements Link.
func (d *Direct) String() string { return d.name }

// Close implements Link.
func (d *Direct) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

// Unwrapper is a link that wraps another one (a recorder, a tracer, a
// gate). Unwrap returns the wrapped link.
type Unwrapper interface {
	Unwrap() Link
}

// As returns the first link in the chain l, l.Unwrap(), l.Unwrap().Unwrap(),
// ... that is a T, in the manner of errors.As: As[PowerCycler](l) finds
// the power control of the link under any number of wrappers.
func As[T any](l Link) (T, bool) {
	for l != nil {
		if t, ok := l.(T); ok {
			return t, true
		}
		u, ok := l.(Unwrapper)
		if !ok {
			break
		}
		l = u.Unwrap()
	}
	var zero T
	return zero, false
}
