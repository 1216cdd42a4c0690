package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spdlab/spdlab/rigs/link"
)

// Playback is a link.Link that answers from a transcript. Each operation
// must be the next recorded one, with the same command; a mismatch fails
// that operation and every later one, and Close reports it.
type Playback struct {
	mu      sync.Mutex
	tr      *Transcript
	next    int
	failure error
	closed  bool
}

var (
	_ link.Link        = (*Playback)(nil)
	_ link.Resetter    = (*Playback)(nil)
	_ link.PowerCycler = (*Playback)(nil)
	_ link.ATRer       = (*Playback)(nil)
)

// NewPlayback returns a link that plays tr back.
func NewPlayback(tr *Transcript) *Playback { return &Playback{tr: tr} }

// LoadPlayback reads a transcript file and plays it back.
func LoadPlayback(path string) (*Playback, error) {
	tr, err := LoadTranscript(path)
	if err != nil {
		return nil, err
	}
	return NewPlayback(tr), nil
}

// ErrMismatch: an operation differs from the next recorded one, or there
// is no recorded operation left.
var ErrMismatch = errors.New("record: playback mismatch")

// take returns the next recorded operation if it is op with command.
func (p *Playback) take(ctx context.Context, op Op, command []byte) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Event{}, link.ErrClosed
	}
	if p.failure != nil {
		return Event{}, p.failure
	}
	what := string(op)
	if op == OpExchange {
		what = fmt.Sprintf("command %X", command)
	}
	if p.next >= len(p.tr.Events) {
		p.failure = fmt.Errorf("%w: %s after all %d recorded operations", ErrMismatch, what, len(p.tr.Events))
		return Event{}, p.failure
	}
	e := p.tr.Events[p.next]
	if e.Op != op || (op == OpExchange && !bytes.Equal(e.Command, command)) {
		p.failure = fmt.Errorf("%w: operation %d is %s, recorded %s", ErrMismatch, p.next+1, what, e)
		return Event{}, p.failure
	}
	p.next++
	return e, nil
}

// Exchange implements link.Link.
func (p *Playback) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	e, err := p.take(ctx, OpExchange, command)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return append([]byte(nil), e.Response...), nil
}

// Reset implements link.Resetter.
func (p *Playback) Reset(ctx context.Context, cold bool) ([]byte, error) {
	op := OpResetWarm
	if cold {
		op = OpResetCold
	}
	e, err := p.take(ctx, op, nil)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return append([]byte(nil), e.ATR...), nil
}

// PowerOff implements link.PowerCycler.
func (p *Playback) PowerOff(ctx context.Context) error {
	e, err := p.take(ctx, OpPowerOff, nil)
	if err != nil {
		return err
	}
	return e.Err
}

// PowerOn implements link.PowerCycler.
func (p *Playback) PowerOn(ctx context.Context) ([]byte, error) {
	e, err := p.take(ctx, OpPowerOn, nil)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return append([]byte(nil), e.ATR...), nil
}

// ATR implements link.ATRer: the ATR recorded when recording began.
func (p *Playback) ATR() []byte { return append([]byte(nil), p.tr.ATR...) }

// String implements link.Link.
func (p *Playback) String() string { return "playback:" + p.tr.Link }

// Remaining returns how many recorded operations are still unused.
func (p *Playback) Remaining() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tr.Events) - p.next
}

// Close implements link.Link. It fails when an operation did not match
// the recording or when recorded operations were left unused.
func (p *Playback) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if p.failure != nil {
		return p.failure
	}
	if left := len(p.tr.Events) - p.next; left > 0 {
		return fmt.Errorf("record: %d of %d recorded operations unused, next: %s", left, len(p.tr.Events), p.tr.Events[p.next])
	}
	return nil
}
