// Package linktest records what crosses a link.Link and plays it back, in
// the manner of periph.io's conntest: Record wraps a live link and keeps
// every exchange; a Transcript saves them as text; Playback answers from a
// transcript, fails an exchange whose command differs from the recorded
// one, and its Close fails when recorded exchanges were left unused.
//
// A transcript file is JSON Lines: a header line, then one line per
// operation, with bytes in upper-case hexadecimal:
//
//	{"transcript":"spdlab-link/1","link":"usb-emu","atr":"3B8A8131FE45..."}
//	{"at":"2026-11-26T01:02:03.000004Z","us":112,"command":"00A40400...","response":"6F0A...9000"}
//	{"at":"...","us":2000000,"command":"80200000","error":"link: card removed ...","is":"removed"}
//	{"at":"...","us":540,"op":"reset-cold","atr":"3B8A..."}
//
//	field       meaning
//	op          exchange (default), reset-warm, reset-cold, power-off, power-on
//	at          when the operation started (RFC 3339, UTC)
//	us          how long it took, in microseconds
//	command     command APDU (exchange)
//	response    response APDU, status word included (exchange)
//	atr         Answer To Reset (resets and power-on)
//	error       error text when the operation failed
//	is          the link error it wraps: no-card, removed, closed,
//	            deadline, canceled; empty for any other error
package linktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
)

// Format names the transcript format in its header line.
const Format = "spdlab-link/1"

// Op is the kind of a recorded operation.
type Op string

const (
	OpExchange  Op = "exchange"
	OpResetWarm Op = "reset-warm"
	OpResetCold Op = "reset-cold"
	OpPowerOff  Op = "power-off"
	OpPowerOn   Op = "power-on"
)

// Exchange is one recorded operation on a link.
type Exchange struct {
	Op       Op
	At       time.Time
	Duration time.Duration
	Command  []byte // OpExchange
	Response []byte // OpExchange, on success
	ATR      []byte // resets and OpPowerOn, on success
	Err      error  // the operation's error, or nil
}

func (e Exchange) String() string {
	switch {
	case e.Op == OpExchange && e.Err != nil:
		return fmt.Sprintf("%X -> error %v", e.Command, e.Err)
	case e.Op == OpExchange:
		return fmt.Sprintf("%X -> %X", e.Command, e.Response)
	case e.Err != nil:
		return fmt.Sprintf("%s -> error %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s -> %X", e.Op, e.ATR)
}

// Transcript is a recording of one link.
type Transcript struct {
	Link      string // the link's String()
	ATR       []byte // its ATR when recording began, if it had one
	Exchanges []Exchange
}

// recordedError is an error read back from a transcript. It keeps the
// original text and wraps the link error it wrapped when recorded.
type recordedError struct {
	text string
	kind error
}

func (e *recordedError) Error() string { return e.text }
func (e *recordedError) Unwrap() error { return e.kind }

func kindName(err error) string { return link.ErrorKind(err) }

func kindError(name string) (error, bool) {
	if name == "" {
		return nil, true
	}
	return link.KindError(name)
}

// line is the JSON form of one transcript line.
type line struct {
	Transcript string `json:"transcript,omitempty"`
	Link       string `json:"link,omitempty"`
	Op         Op     `json:"op,omitempty"`
	At         string `json:"at,omitempty"`
	Micros     int64  `json:"us,omitempty"`
	Command    string `json:"command,omitempty"`
	Response   string `json:"response,omitempty"`
	ATR        string `json:"atr,omitempty"`
	Error      string `json:"error,omitempty"`
	Is         string `json:"is,omitempty"`
}

// WriteTo writes t in the transcript format.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(line{Transcript: Format, Link: t.Link, ATR: upperHex(t.ATR)}); err != nil {
		return 0, err
	}
	for _, e := range t.Exchanges {
		l := line{
			At:       e.At.UTC().Format(time.RFC3339Nano),
			Micros:   e.Duration.Microseconds(),
			Command:  upperHex(e.Command),
			Response: upperHex(e.Response),
			ATR:      upperHex(e.ATR),
		}
		if e.Op != OpExchange {
			l.Op = e.Op
		}
		if e.Err != nil {
			l.Error = e.Err.Error()
			l.Is = kindName(e.Err)
		}
		if err := enc.Encode(l); err != nil {
			return 0, err
		}
	}
	return buf.WriteTo(w)
}

// WriteFile writes t to path.
func (t *Transcript) WriteFile(path string) error {
	var buf bytes.Buffer
	if _, err := t.WriteTo(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func upperHex(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// maxLine bounds one transcript line: an extended APDU of 65535 data
// bytes in hexadecimal and the rest of the line fit well within it.
const maxLine = 1 << 20

// ReadTranscript parses a transcript. Blank lines are skipped.
func ReadTranscript(r io.Reader) (*Transcript, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	t := &Transcript{}
	n, header := 0, false
	for sc.Scan() {
		n++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var l line
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("linktest: transcript line %d: %v", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("linktest: transcript line %d: more than one JSON value", n)
		}
		if !header {
			if l.Transcript != Format {
				return nil, fmt.Errorf("linktest: transcript line %d: header names format %q, want %q", n, l.Transcript, Format)
			}
			atr, err := hex.DecodeString(l.ATR)
			if err != nil {
				return nil, fmt.Errorf("linktest: transcript line %d: atr: %v", n, err)
			}
			t.Link, t.ATR, header = l.Link, nilIfEmpty(atr), true
			continue
		}
		e, err := l.exchange()
		if err != nil {
			return nil, fmt.Errorf("linktest: transcript line %d: %v", n, err)
		}
		t.Exchanges = append(t.Exchanges, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("linktest: reading transcript: %v", err)
	}
	if !header {
		return nil, errors.New("linktest: transcript has no header line")
	}
	return t, nil
}

func (l line) exchange() (Exchange, error) {
	if l.Transcript != "" || l.Link != "" {
		return Exchange{}, errors.New("a second header")
	}
	e := Exchange{Op: l.Op, Duration: time.Duration(l.Micros) * time.Microsecond}
	switch e.Op {
	case "":
		e.Op = OpExchange
	case OpExchange, OpResetWarm, OpResetCold, OpPowerOff, OpPowerOn:
	default:
		return Exchange{}, fmt.Errorf("unknown op %q", l.Op)
	}
	if l.Micros < 0 {
		return Exchange{}, fmt.Errorf("negative duration %d us", l.Micros)
	}
	if l.At != "" {
		at, err := time.Parse(time.RFC3339Nano, l.At)
		if err != nil {
			return Exchange{}, fmt.Errorf("at: %v", err)
		}
		e.At = at
	}
	var err error
	if e.Command, err = decodeField("command", l.Command); err != nil {
		return Exchange{}, err
	}
	if e.Response, err = decodeField("response", l.Response); err != nil {
		return Exchange{}, err
	}
	if e.ATR, err = decodeField("atr", l.ATR); err != nil {
		return Exchange{}, err
	}
	kind, ok := kindError(l.Is)
	if !ok {
		return Exchange{}, fmt.Errorf("unknown error kind %q", l.Is)
	}
	switch {
	case l.Error != "":
		e.Err = &recordedError{text: l.Error, kind: kind}
	case l.Is != "":
		return Exchange{}, errors.New(`"is" without "error"`)
	}
	switch {
	case e.Op == OpExchange && len(e.Command) == 0:
		return Exchange{}, errors.New("exchange without a command")
	case e.Op == OpExchange && e.Err == nil && len(e.Response) < 2:
		return Exchange{}, errors.New("exchange without an error or a response of at least 2 bytes")
	case e.Op != OpExchange && (e.Command != nil || e.Response != nil):
		return Exchange{}, fmt.Errorf("%s with a command or response", e.Op)
	}
	return e, nil
}

func decodeField(name, s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return nilIfEmpty(b), nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// LoadTranscript reads a transcript file.
func LoadTranscript(path string) (*Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("linktest: %v", err)
	}
	defer f.Close()
	return ReadTranscript(f)
}

// Recorder is a link.Link that passes everything to a live link and keeps
// a record of it. Its Reset, PowerOff and PowerOn reach the live link's
// abilities through any wrappers (link.As) and fail when it lacks them;
// ATR reports the live link's. A caller asks link.As on the live link
// whether an ability is there, and uses it through the Recorder so that it
// is recorded.
type Recorder struct {
	l   link.Link
	now func() time.Time

	mu sync.Mutex
	tr Transcript
}

var (
	_ link.Link        = (*Recorder)(nil)
	_ link.Resetter    = (*Recorder)(nil)
	_ link.PowerCycler = (*Recorder)(nil)
	_ link.ATRer       = (*Recorder)(nil)
)

// Record wraps l. Closing the Recorder closes l.
func Record(l link.Link) *Recorder {
	r := &Recorder{l: l, now: time.Now, tr: Transcript{Link: l.String()}}
	if a, ok := link.As[link.ATRer](l); ok {
		r.tr.ATR = a.ATR()
	}
	return r
}

func (r *Recorder) add(e Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tr.Exchanges = append(r.tr.Exchanges, e)
}

// Exchange implements link.Link.
func (r *Recorder) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	e := Exchange{Op: OpExchange, At: r.now(), Command: append([]byte(nil), command...)}
	resp, err := r.l.Exchange(ctx, command)
	e.Duration = r.now().Sub(e.At)
	e.Response, e.Err = append([]byte(nil), resp...), err
	if err != nil {
		e.Response = nil
	}
	r.add(e)
	return resp, err
}

// Reset implements link.Resetter.
func (r *Recorder) Reset(ctx context.Context, cold bool) ([]byte, error) {
	rs, ok := link.As[link.Resetter](r.l)
	if !ok {
		return nil, fmt.Errorf("linktest: %s cannot reset", r.l)
	}
	op := OpResetWarm
	if cold {
		op = OpResetCold
	}
	e := Exchange{Op: op, At: r.now()}
	atr, err := rs.Reset(ctx, cold)
	e.Duration, e.ATR, e.Err = r.now().Sub(e.At), append([]byte(nil), atr...), err
	r.add(e)
	return atr, err
}

// PowerOff implements link.PowerCycler.
func (r *Recorder) PowerOff(ctx context.Context) error {
	pc, ok := link.As[link.PowerCycler](r.l)
	if !ok {
		return fmt.Errorf("linktest: %s cannot power off", r.l)
	}
	e := Exchange{Op: OpPowerOff, At: r.now()}
	err := pc.PowerOff(ctx)
	e.Duration, e.Err = r.now().Sub(e.At), err
	r.add(e)
	return err
}

// PowerOn implements link.PowerCycler.
func (r *Recorder) PowerOn(ctx context.Context) ([]byte, error) {
	pc, ok := link.As[link.PowerCycler](r.l)
	if !ok {
		return nil, fmt.Errorf("linktest: %s cannot power on", r.l)
	}
	e := Exchange{Op: OpPowerOn, At: r.now()}
	atr, err := pc.PowerOn(ctx)
	e.Duration, e.ATR, e.Err = r.now().Sub(e.At), append([]byte(nil), atr...), err
	r.add(e)
	return atr, err
}

// ATR implements link.ATRer: the live link's ATR, or nil.
func (r *Recorder) ATR() []byte {
	if a, ok := link.As[link.ATRer](r.l); ok {
		return a.ATR()
	}
	return nil
}

// Unwrap implements link.Unwrapper: the live link.
func (r *Recorder) Unwrap() link.Link { return r.l }

// String implements link.Link: the live link's name.
func (r *Recorder) String() string { return r.l.String() }

// Close implements link.Link: it closes the live link.
func (r *Recorder) Close() error { return r.l.Close() }

// Exchanges returns a copy of what was recorded so far.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.tr.Exchanges...)
}

// Transcript returns a copy of the recording so far.
func (r *Recorder) Transcript() *Transcript {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tr
	t.Exchanges = append([]Exchange(nil), r.tr.Exchanges...)
	return &t
}

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
var ErrMismatch = errors.New("linktest: playback mismatch")

// take returns the next recorded operation if it is op with command.
func (p *Playback) take(ctx context.Context, op Op, command []byte) (Exchange, error) {
	if err := ctx.Err(); err != nil {
		return Exchange{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Exchange{}, link.ErrClosed
	}
	if p.failure != nil {
		return Exchange{}, p.failure
	}
	what := string(op)
	if op == OpExchange {
		what = fmt.Sprintf("command %X", command)
	}
	if p.next >= len(p.tr.Exchanges) {
		p.failure = fmt.Errorf("%w: %s after all %d recorded operations", ErrMismatch, what, len(p.tr.Exchanges))
		return Exchange{}, p.failure
	}
	e := p.tr.Exchanges[p.next]
	if e.Op != op || (op == OpExchange && !bytes.Equal(e.Command, command)) {
		p.failure = fmt.Errorf("%w: operation %d is %s, recorded %s", ErrMismatch, p.next+1, what, e)
		return Exchange{}, p.failure
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
	return len(p.tr.Exchanges) - p.next
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
	if left := len(p.tr.Exchanges) - p.next; left > 0 {
		return fmt.Errorf("linktest: %d of %d recorded operations unused, next: %s", left, len(p.tr.Exchanges), p.tr.Exchanges[p.next])
	}
	return nil
}
