package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/spdlab/spdlab/rigs/link"
)

// Playback is a link.Link that answers from a transcript: the JSON Lines
// transcript of this package, the pcapng trace of rigs/trace, or one a test
// wrote by hand. Each operation must match the next recorded one (as its
// Rules say); a mismatch fails that operation and every later one, and
// Close reports it or any recorded operations left unused.
type Playback struct {
	name  string
	rules Rules

	mu      sync.Mutex
	tr      *Transcript
	next    int
	failure error
	closed  bool
}

var (
	_ link.Link         = (*Playback)(nil)
	_ link.Resetter     = (*Playback)(nil)
	_ link.PowerCycler  = (*Playback)(nil)
	_ link.ATRer        = (*Playback)(nil)
	_ link.RawExchanger = (*Playback)(nil)
)

// Rules say how a Playback matches what it is asked to do against what was
// recorded. The zero Rules ask for the very operations recorded, commands
// byte for byte.
type Rules struct {
	// Match decides whether a command replays the recorded one: nil when
	// it does, else an error saying what differs first. Nil requires the
	// same bytes.
	Match func(command, recorded []byte) error
	// Stands reports whether a recorded operation answers a live one of
	// another kind (a trace's ATR record of a reset also answers a
	// power-on). Nil: only the same kind.
	Stands func(live, recorded Op) bool
	// Name names a command in the message of a mismatch ("PAY"); nil
	// names none.
	Name func(command []byte) string
	// Unrecorded lists the operations the recording's format cannot hold
	// (a GSMTAP trace has no power-off): they succeed and use no recorded
	// operation.
	Unrecorded []Op
}

// NewPlayback returns a link that plays tr back exactly, named
// "playback:" and the recorded link's name.
func NewPlayback(tr *Transcript) *Playback {
	return NewPlaybackRules(tr, "playback:"+tr.Link, Rules{})
}

// NewPlaybackRules returns a link named name that plays tr back by rules.
func NewPlaybackRules(tr *Transcript, name string, rules Rules) *Playback {
	return &Playback{tr: tr, name: name, rules: rules}
}

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

// SetMatcher sets Rules.Match.
func (p *Playback) SetMatcher(m func(command, recorded []byte) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules.Match = m
}

// fail makes err the failure of this and every later operation.
func (p *Playback) fail(format string, args ...any) error {
	p.failure = fmt.Errorf("%w: "+format, append([]any{ErrMismatch}, args...)...)
	return p.failure
}

// take returns the next recorded operation if it answers op with command.
// For an exchange it returns the recorded response, which follows the
// command it was given when the recording did not say where the command
// ended (Event.Joined).
func (p *Playback) take(ctx context.Context, op Op, command []byte, raw bool) (Event, error) {
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
		return Event{}, p.fail("%s after all %d recorded operations", what, len(p.tr.Events))
	}
	e := p.tr.Events[p.next]
	if e.Op != op && (p.rules.Stands == nil || !p.rules.Stands(op, e.Op)) {
		return Event{}, p.fail("operation %d is %s, recorded %s", p.next+1, what, e)
	}
	if op == OpExchange {
		if raw != e.Raw {
			how := map[bool]string{false: "resolved", true: "raw"}
			return Event{}, p.fail("operation %d is a %s exchange of %X, recorded %s", p.next+1, how[raw], command, e)
		}
		switch {
		case e.Joined:
			// The command's exact bytes must start the recorded run.
			if !bytes.HasPrefix(e.Command, command) || len(e.Command)-len(command) < 2 && e.Err == nil {
				return Event{}, p.fail("operation %d is %s, recorded %s", p.next+1, what, e)
			}
			e.Response = e.Command[len(command):]
		case p.rules.Match != nil:
			if err := p.rules.Match(command, e.Command); err != nil {
				sent := ""
				if e.Case != "" {
					sent = " (sent by " + e.Case + ")"
				}
				name := ""
				if p.rules.Name != nil {
					name = " (" + p.rules.Name(command) + ")"
				}
				return Event{}, p.fail("operation %d%s differs from the recording: %v\n  command   %s\n  recorded  %s%s",
					p.next+1, name, err, abbrev(command), abbrev(e.Command), sent)
			}
		case !bytes.Equal(e.Command, command):
			return Event{}, p.fail("operation %d is %s, recorded %s", p.next+1, what, e)
		}
	}
	p.next++
	return e, nil
}

// abbrev renders b in hex, eliding the middle of a long command.
func abbrev(b []byte) string {
	const keep = 48
	if len(b) <= 2*keep {
		return fmt.Sprintf("%X", b)
	}
	return fmt.Sprintf("%X...(%d bytes)...%X", b[:keep], len(b)-2*keep, b[len(b)-keep:])
}

// Exchange implements link.Link.
func (p *Playback) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	return p.exchange(ctx, command, false)
}

// ExchangeRaw implements link.RawExchanger: it answers from a recorded
// raw exchange (Event.Raw) only, as an exchange answers from a resolved
// one only.
func (p *Playback) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	return p.exchange(ctx, command, true)
}

func (p *Playback) exchange(ctx context.Context, command []byte, raw bool) ([]byte, error) {
	e, err := p.take(ctx, OpExchange, command, raw)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return append([]byte(nil), e.Response...), nil
}

// atrOp plays back an operation that answers an ATR.
func (p *Playback) atrOp(ctx context.Context, op Op) ([]byte, error) {
	e, err := p.take(ctx, op, nil, false)
	if err != nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return append([]byte(nil), e.ATR...), nil
}

// Reset implements link.Resetter.
func (p *Playback) Reset(ctx context.Context, cold bool) ([]byte, error) {
	if cold {
		return p.atrOp(ctx, OpResetCold)
	}
	return p.atrOp(ctx, OpResetWarm)
}

// PowerOff implements link.PowerCycler.
func (p *Playback) PowerOff(ctx context.Context) error {
	if slices.Contains(p.rules.Unrecorded, OpPowerOff) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return link.ErrClosed
		}
		return nil
	}
	e, err := p.take(ctx, OpPowerOff, nil, false)
	if err != nil {
		return err
	}
	return e.Err
}

// PowerOn implements link.PowerCycler.
func (p *Playback) PowerOn(ctx context.Context) ([]byte, error) {
	return p.atrOp(ctx, OpPowerOn)
}

// ATR implements link.ATRer: the ATR recorded when recording began.
func (p *Playback) ATR() []byte { return append([]byte(nil), p.tr.ATR...) }

// String implements link.Link.
func (p *Playback) String() string { return p.name }

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
		return fmt.Errorf("record: %s: %d of %d recorded operations unused, next: %s", p.name, left, len(p.tr.Events), p.tr.Events[p.next])
	}
	return nil
}
