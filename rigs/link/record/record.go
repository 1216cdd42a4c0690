// Package record keeps what crosses a link.Link and plays it back, in the
// manner of periph.io's conntest. The recording is plain data a test can
// also write by hand (Transcript, Event); Record and Stream wrap a live
// link and hand every operation to encoders as it happens: the JSON Lines
// transcript of this package (JSONL), the pcapng trace of rigs/trace, or a
// Transcript kept in memory. Playback answers from a Transcript.
//
// The link a Recorder gives (Recorder.Link) has exactly the abilities of
// the link it wraps, found with link.As through any wrappers: it is a
// link.Resetter only if the wrapped link can reset, a link.PowerCycler
// only if it can cycle power, a link.ATRer only if it knows its ATR. A
// caller asks that link what it can do and does it through that link, so
// that resets and power cycles are recorded with the exchanges.
package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
)

// Op is the kind of a recorded operation.
type Op string

const (
	OpExchange  Op = "exchange"
	OpResetWarm Op = "reset-warm"
	OpResetCold Op = "reset-cold"
	OpPowerOff  Op = "power-off"
	OpPowerOn   Op = "power-on"
	// OpATR is an Answer To Reset whose recording does not say which
	// operation (a reset or a power-on) it answered: a trace written by
	// another tool.
	OpATR Op = "atr"
)

// Event is one recorded operation on a link.
type Event struct {
	Op       Op
	At       time.Time
	Duration time.Duration
	Command  []byte // OpExchange
	Response []byte // OpExchange, on success
	ATR      []byte // resets and OpPowerOn, on success
	Err      error  // the operation's error, or nil
	// Case is the conformance case that sent the operation ("TC-PAY-001"),
	// when the recording says.
	Case string
	// Joined marks an exchange recorded as one run of bytes, the command
	// followed by the response, without saying where the command ends (a
	// trace written by another tool): Command holds the whole run, and
	// playback answers what follows the command it is given.
	Joined bool
	// Raw marks an exchange sent as it is (link.RawExchanger): Response
	// is the device's answer with any 61xx or 6Cxx unresolved.
	Raw bool
}

func (e Event) String() string {
	switch {
	case e.Op == OpExchange && e.Joined:
		return fmt.Sprintf("%X (command and response)", e.Command)
	case e.Op == OpExchange && e.Raw && e.Err != nil:
		return fmt.Sprintf("%X -> error %v (raw)", e.Command, e.Err)
	case e.Op == OpExchange && e.Raw:
		return fmt.Sprintf("%X -> %X (raw)", e.Command, e.Response)
	case e.Op == OpExchange && e.Err != nil:
		return fmt.Sprintf("%X -> error %v", e.Command, e.Err)
	case e.Op == OpExchange:
		return fmt.Sprintf("%X -> %X", e.Command, e.Response)
	case e.Err != nil:
		return fmt.Sprintf("%s -> error %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s -> %X", e.Op, e.ATR)
}

// Transcript is a recording of one link. It is itself an Encoder that
// keeps what it is given.
type Transcript struct {
	Link   string // the link's String()
	ATR    []byte // its ATR when recording began, if it had one
	Events []Event
}

// Begin implements Encoder.
func (t *Transcript) Begin(name string, atr []byte) error {
	t.Link, t.ATR = name, atr
	return nil
}

// Encode implements Encoder.
func (t *Transcript) Encode(e Event) error {
	t.Events = append(t.Events, e)
	return nil
}

// Encoder writes a recording as it is made: Begin once with the link's
// name and ATR (nil when it has none), then Encode once per operation, in
// order. A Recorder calls them one at a time.
type Encoder interface {
	Begin(link string, atr []byte) error
	Encode(e Event) error
}

// Recorder keeps what crosses one link. Its Link is the wrapped link to
// use; Events, Transcript and Err tell what was recorded.
type Recorder struct {
	l    link.Link
	now  func() time.Time
	view link.Link
	mem  *Transcript // nil for Stream

	rs link.Resetter
	pc link.PowerCycler
	at link.ATRer
	rw link.RawExchanger

	mu   sync.Mutex
	encs []Encoder
	err  error
	ops  int // operations recorded so far (Operations)
}

// Record wraps l and keeps every operation in memory (Events,
// Transcript). Closing its Link closes l.
func Record(l link.Link) *Recorder {
	mem := &Transcript{}
	r := newRecorder(l, []Encoder{mem})
	r.mem = mem
	return r
}

// Stream wraps l and hands every operation to encs as it happens, keeping
// none in memory. A failing encoder does not disturb the link: Err and
// closing the Link report its first error. Closing the Link closes l but
// no writer behind encs.
func Stream(l link.Link, encs ...Encoder) *Recorder {
	return newRecorder(l, encs)
}

func newRecorder(l link.Link, encs []Encoder) *Recorder {
	r := &Recorder{l: l, now: time.Now, encs: encs}
	a := link.AbilitiesOf(l)
	r.rs, r.pc, r.at, r.rw = a.Resetter, a.PowerCycler, a.ATRer, a.Raw
	var atr []byte
	if r.at != nil {
		atr = r.at.ATR()
	}
	for _, e := range encs {
		if err := e.Begin(l.String(), atr); err != nil && r.err == nil {
			r.err = fmt.Errorf("record: beginning the recording of %s: %w", l, err)
		}
	}
	r.view = r.newView()
	return r
}

// Link returns the recorded link: l with exactly l's abilities among
// link.Resetter, link.PowerCycler, link.ATRer and link.RawExchanger, each
// operation recorded (a raw exchange with Event.Raw set).
// It is a link.Unwrapper of l.
func (r *Recorder) Link() link.Link { return r.view }

func (r *Recorder) add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops++
	for _, enc := range r.encs {
		if err := enc.Encode(e); err != nil && r.err == nil {
			r.err = fmt.Errorf("record: recording %s of %s: %w", e.Op, r.l, err)
		}
	}
}

// Operations returns how many operations (exchanges, resets, power
// changes) crossed the link so far, for Stream too: a caller that saw the
// device at one count knows nothing reached it while the count stays.
func (r *Recorder) Operations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops
}

// Events returns a copy of what Record kept so far (nil for Stream).
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mem == nil {
		return nil
	}
	return append([]Event(nil), r.mem.Events...)
}

// Transcript returns a copy of what Record kept so far (for Stream, the
// link's name and ATR only).
func (r *Recorder) Transcript() *Transcript {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := Transcript{Link: r.l.String()}
	if r.at != nil {
		t.ATR = r.at.ATR()
	}
	if r.mem != nil {
		t = *r.mem
		t.Events = append([]Event(nil), r.mem.Events...)
	}
	return &t
}

// Err returns the first error of an encoder.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Recorder) exchange(ctx context.Context, command []byte, raw bool) ([]byte, error) {
	e := Event{Op: OpExchange, At: r.now(), Command: append([]byte(nil), command...), Raw: raw}
	var resp []byte
	var err error
	if raw {
		resp, err = r.rw.ExchangeRaw(ctx, command)
	} else {
		resp, err = r.l.Exchange(ctx, command)
	}
	e.Duration = r.now().Sub(e.At)
	if err == nil {
		e.Response = append([]byte(nil), resp...)
	}
	e.Err = err
	r.add(e)
	return resp, err
}

func (r *Recorder) reset(ctx context.Context, cold bool) ([]byte, error) {
	op := OpResetWarm
	if cold {
		op = OpResetCold
	}
	e := Event{Op: op, At: r.now()}
	atr, err := r.rs.Reset(ctx, cold)
	e.Duration, e.Err = r.now().Sub(e.At), err
	if err == nil {
		e.ATR = append([]byte(nil), atr...)
	}
	r.add(e)
	return atr, err
}

func (r *Recorder) powerOff(ctx context.Context) error {
	e := Event{Op: OpPowerOff, At: r.now()}
	err := r.pc.PowerOff(ctx)
	e.Duration, e.Err = r.now().Sub(e.At), err
	r.add(e)
	return err
}

func (r *Recorder) powerOn(ctx context.Context) ([]byte, error) {
	e := Event{Op: OpPowerOn, At: r.now()}
	atr, err := r.pc.PowerOn(ctx)
	e.Duration, e.Err = r.now().Sub(e.At), err
	if err == nil {
		e.ATR = append([]byte(nil), atr...)
	}
	r.add(e)
	return atr, err
}

// The recorded link is composed (link.Compose) of one part per ability,
// so that it has a method only where the wrapped link has the ability.

type linkPart struct{ r *Recorder }

func (p linkPart) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	return p.r.exchange(ctx, command, false)
}
func (p linkPart) String() string    { return p.r.l.String() }
func (p linkPart) Unwrap() link.Link { return p.r.l }

// Close closes the wrapped link and reports any encoder error.
func (p linkPart) Close() error { return errors.Join(p.r.l.Close(), p.r.Err()) }

type rawPart struct{ r *Recorder }

func (p rawPart) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	return p.r.exchange(ctx, command, true)
}

type resetPart struct{ r *Recorder }

func (p resetPart) Reset(ctx context.Context, cold bool) ([]byte, error) {
	return p.r.reset(ctx, cold)
}

type powerPart struct{ r *Recorder }

func (p powerPart) PowerOff(ctx context.Context) error { return p.r.powerOff(ctx) }
func (p powerPart) PowerOn(ctx context.Context) ([]byte, error) {
	return p.r.powerOn(ctx)
}

type atrPart struct{ r *Recorder }

// ATR is the wrapped link's ATR now (not recorded: it changes nothing).
func (p atrPart) ATR() []byte { return p.r.at.ATR() }

func (r *Recorder) newView() link.Link {
	var a link.Abilities
	if r.rs != nil {
		a.Resetter = resetPart{r}
	}
	if r.pc != nil {
		a.PowerCycler = powerPart{r}
	}
	if r.at != nil {
		a.ATRer = atrPart{r}
	}
	if r.rw != nil {
		a.Raw = rawPart{r}
	}
	return link.Compose(linkPart{r}, a)
}
