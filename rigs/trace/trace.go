// Package trace writes what crosses any link.Link as a pcapng file of
// GSMTAP SIM records (Encoder, a record.Encoder; Wrap), which Wireshark and
// tshark decode as GSM SIM / ISO 7816-4, and replays such a file as a
// link.Link (the DUT replay:FILE).
//
// Specifications followed: pcapng (draft-ietf-opsawg-pcapng), GSMTAP as
// defined by libosmocore's gsmtap.h (version 2, type 4 GSMTAP_TYPE_SIM,
// sub-types GSMTAP_SIM_APDU and GSMTAP_SIM_ATR) carried in UDP to port
// 4729 over IPv4 (LINKTYPE_IPV4), and the record layout of osmocom's
// SIMtrace: one APDU record holds the command APDU followed by the
// response APDU. The framing of each layer is documented in pcapng.go and
// gsmtap.go.
//
// A trace starts with an ATR record when the link knows its ATR. Each
// exchange is one APDU record; resets and power-ons are ATR records.
// spdlab adds packet comments (opt_comment) so that a replay knows where
// each command ends and what failed:
//
//	comment                          meaning
//	spdlab command-length=N          the first N payload bytes are the command
//	spdlab error=KIND: TEXT          the exchange failed (no response bytes);
//	                                 KIND is no-card, removed, closed,
//	                                 deadline, canceled or other
//	spdlab op=OP                     ATR record of reset-warm, reset-cold or
//	                                 power-on
//	spdlab case=ID                   the conformance case that sent it
//	                                 (TC-PAY-001), when the trace was written
//	                                 with WrapCase
//
// A replayed command must match the recorded one on its deterministic
// part (MatchDeterministic, match.go): times, nonces, keys, certificates
// and signatures differ on every run by design. Traces without these
// comments (from SIMtrace, say) replay too: an APDU record answers the
// command its bytes start with.
package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/record"
)

const (
	commentPrefix = "spdlab "
	keyCmdLen     = "command-length="
	keyError      = "error="
	keyOp         = "op="
	keyCase       = "case="
)

// kindName names err's link sentinel for a trace comment, "other" when it
// wraps none.
func kindName(err error) string {
	if k := link.ErrorKind(err); k != "" {
		return k
	}
	return "other"
}

// ReplayedError is an exchange error read back from a trace. It keeps the
// recorded text and wraps the link error it wrapped when recorded.
type ReplayedError struct {
	Text string
	Kind error // link.ErrRemoved, ..., or nil
}

func (e *ReplayedError) Error() string { return e.Text }
func (e *ReplayedError) Unwrap() error { return e.Kind }

// Encoder is a record.Encoder that writes a pcapng trace of GSMTAP SIM
// records: Begin writes the pcapng header and an ATR record when the link
// has an ATR; each exchange is an APDU record; each successful reset or
// power-on an ATR record. GSMTAP has no record of a power-off or of a
// failed reset; the next ATR record follows them.
type Encoder struct {
	w   io.Writer
	now func() time.Time // nil: the times of the events
	// caseID names the case an operation belongs to, "" for none.
	caseID func() string
	pw     *PcapngWriter
	id     uint16
	pkt    []byte
}

var _ record.Encoder = (*Encoder)(nil)

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Wrap returns l recorded as a pcapng trace on w (record.Stream with an
// Encoder): it has exactly l's abilities, each reset and power-on recorded.
// A failed write does not disturb the link; closing it reports the error.
// Closing it closes l but not w.
func Wrap(l link.Link, w io.Writer) link.Link {
	return record.Stream(l, NewEncoder(w)).Link()
}

// WrapClock is Wrap with the records stamped by now instead of the times
// the operations happened: a clock that is a function of the run makes
// the trace of a deterministic run the same byte for byte every time.
func WrapClock(l link.Link, w io.Writer, now func() time.Time) link.Link {
	return record.Stream(l, &Encoder{w: w, now: now}).Link()
}

// WrapCase is WrapClock with every record tagged with the case that sent
// it: caseID, called as each operation is recorded, returns the case ID
// ("TC-PAY-001"), or "" outside any case. A nil now stamps the times the
// operations happened.
func WrapCase(l link.Link, w io.Writer, now func() time.Time, caseID func() string) link.Link {
	return record.Stream(l, &Encoder{w: w, now: now, caseID: caseID}).Link()
}

func (e *Encoder) stamp(at time.Time) time.Time {
	if e.now != nil {
		return e.now()
	}
	return at
}

// Begin implements record.Encoder.
func (e *Encoder) Begin(name string, atr []byte) error {
	pw, err := NewPcapngWriter(e.w, LinkTypeIPv4, "spdlab:"+name)
	if err != nil {
		return fmt.Errorf("trace: writing the pcapng header: %w", err)
	}
	e.pw = pw
	if len(atr) > 0 {
		return e.write(e.stamp(time.Now()), SIMRecord{SubType: SIMATR, Payload: atr})
	}
	return nil
}

// Encode implements record.Encoder.
func (e *Encoder) Encode(ev record.Event) error {
	switch {
	case e.pw == nil:
		return errors.New("trace: Encode before Begin")
	case ev.Op == record.OpExchange:
		payload := make([]byte, 0, len(ev.Command)+len(ev.Response))
		payload = append(payload, ev.Command...)
		comments := []string{commentPrefix + keyCmdLen + strconv.Itoa(len(ev.Command))}
		if ev.Err != nil {
			comments = append(comments, commentPrefix+keyError+kindName(ev.Err)+": "+strings.ToValidUTF8(ev.Err.Error(), "?"))
		} else {
			payload = append(payload, ev.Response...)
		}
		return e.write(e.stamp(ev.At), SIMRecord{SubType: SIMAPDU, Payload: payload}, comments...)
	case ev.Err != nil || ev.Op == record.OpPowerOff:
		return nil
	}
	return e.write(e.stamp(ev.At), SIMRecord{SubType: SIMATR, Payload: ev.ATR}, commentPrefix+keyOp+string(ev.Op))
}

func (e *Encoder) write(at time.Time, rec SIMRecord, comments ...string) error {
	if e.caseID != nil {
		if id := e.caseID(); id != "" {
			comments = append(comments, commentPrefix+keyCase+strings.ToValidUTF8(id, "?"))
		}
	}
	e.id++
	e.pkt = appendIPv4GSMTAP(e.pkt[:0], rec, e.id)
	if err := e.pw.WritePacket(at, e.pkt, comments...); err != nil {
		return fmt.Errorf("trace: writing %s record: %w", rec.SubType, err)
	}
	return nil
}

// replayRecord is one SIM record of a trace being replayed.
type replayRecord struct {
	rec    SIMRecord
	cmdLen int // -1 when the trace does not say
	err    error
	op     string
	caseID string // the case that sent it, when the trace says
}

func (r replayRecord) String() string {
	var t string
	switch {
	case r.rec.SubType == SIMATR:
		t = fmt.Sprintf("ATR %X", r.rec.Payload)
	case r.cmdLen >= 0 && r.cmdLen <= len(r.rec.Payload):
		t = fmt.Sprintf("APDU %X -> %X", r.rec.Payload[:r.cmdLen], r.rec.Payload[r.cmdLen:])
	default:
		t = fmt.Sprintf("APDU %X", r.rec.Payload)
	}
	if r.caseID != "" {
		t += " (sent by " + r.caseID + ")"
	}
	return t
}

// Replayer is a link.Link that answers from a trace. Each operation must
// match the next record (a command as its Matcher decides,
// MatchDeterministic unless SetMatcher says otherwise); a mismatch fails
// that operation and every later one, and Close reports it or any records
// left unused.
type Replayer struct {
	name  string
	atr   []byte
	match Matcher

	mu      sync.Mutex
	records []replayRecord
	next    int
	failure error
	closed  bool
}

var (
	_ link.Link        = (*Replayer)(nil)
	_ link.Resetter    = (*Replayer)(nil)
	_ link.PowerCycler = (*Replayer)(nil)
	_ link.ATRer       = (*Replayer)(nil)
)

// ErrMismatch: an operation differs from the next record of the trace, or
// the trace has no record left.
var ErrMismatch = errors.New("trace: replay mismatch")

// Replay opens the trace file path as a link (the DUT replay:FILE).
func Replay(path string) (link.Link, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %v", err)
	}
	defer f.Close()
	r, err := NewReplayer(f, "replay:"+path)
	if err != nil {
		return nil, fmt.Errorf("trace: %s: %w", path, err)
	}
	return r, nil
}

// NewReplayer reads a whole pcapng trace from r. Packets that are not
// GSMTAP SIM records, and SIM records other than APDU and ATR, are skipped.
func NewReplayer(r io.Reader, name string) (*Replayer, error) {
	rp := &Replayer{name: name, match: MatchDeterministic}
	pr := NewPcapngReader(r)
	for n := 1; ; n++ {
		pkt, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		rec, err := ParseSIMRecord(pkt.LinkType, pkt.Data)
		if errors.Is(err, errNotSIM) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", n, err)
		}
		if rec.SubType != SIMAPDU && rec.SubType != SIMATR {
			continue
		}
		rr, err := parseComments(rec, pkt.Comments)
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", n, err)
		}
		rp.records = append(rp.records, rr)
	}
	if len(rp.records) > 0 && rp.records[0].rec.SubType == SIMATR && rp.records[0].op == "" {
		rp.atr = rp.records[0].rec.Payload
		rp.records = rp.records[1:]
	}
	return rp, nil
}

func parseComments(rec SIMRecord, comments []string) (replayRecord, error) {
	rr := replayRecord{rec: rec, cmdLen: -1}
	for _, c := range comments {
		c, ok := strings.CutPrefix(c, commentPrefix)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(c, keyCmdLen):
			n, err := strconv.Atoi(strings.TrimPrefix(c, keyCmdLen))
			if err != nil || n < 1 || n > len(rec.Payload) {
				return rr, fmt.Errorf("trace: bad command length %q for %d payload bytes", c, len(rec.Payload))
			}
			rr.cmdLen = n
		case strings.HasPrefix(c, keyError):
			kind, text, ok := strings.Cut(strings.TrimPrefix(c, keyError), ": ")
			if !ok {
				return rr, fmt.Errorf("trace: bad error comment %q", c)
			}
			e := &ReplayedError{Text: text}
			e.Kind, _ = link.KindError(kind)
			rr.err = e
		case strings.HasPrefix(c, keyCase):
			rr.caseID = strings.TrimPrefix(c, keyCase)
		case strings.HasPrefix(c, keyOp):
			rr.op = strings.TrimPrefix(c, keyOp)
			switch rr.op {
			case "reset-warm", "reset-cold", "power-on":
			default:
				return rr, fmt.Errorf("trace: unknown operation %q", rr.op)
			}
		}
	}
	if rr.rec.SubType == SIMAPDU && rr.err == nil && rr.cmdLen >= 0 && len(rec.Payload)-rr.cmdLen < 2 {
		return rr, fmt.Errorf("trace: APDU record with a %d-byte response", len(rec.Payload)-rr.cmdLen)
	}
	return rr, nil
}

// take returns the next record if it has the sub-type wanted.
func (r *Replayer) take(ctx context.Context, want SIMSubType, what string) (replayRecord, error) {
	if err := ctx.Err(); err != nil {
		return replayRecord{}, err
	}
	if r.closed {
		return replayRecord{}, link.ErrClosed
	}
	if r.failure != nil {
		return replayRecord{}, r.failure
	}
	if r.next >= len(r.records) {
		r.failure = fmt.Errorf("%w: %s after all %d records", ErrMismatch, what, len(r.records))
		return replayRecord{}, r.failure
	}
	rec := r.records[r.next]
	if rec.rec.SubType != want {
		r.failure = fmt.Errorf("%w: operation %d is %s, the trace has %s", ErrMismatch, r.next+1, what, rec)
		return replayRecord{}, r.failure
	}
	return rec, nil
}

// Exchange implements link.Link.
func (r *Replayer) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	what := fmt.Sprintf("command %X", command)
	rec, err := r.take(ctx, SIMAPDU, what)
	if err != nil {
		return nil, err
	}
	p := rec.rec.Payload
	if rec.cmdLen < 0 {
		// A foreign trace does not say where the command ends: it must
		// start with the command's exact bytes.
		if !bytes.HasPrefix(p, command) {
			r.failure = fmt.Errorf("%w: operation %d is %s, the trace has %s", ErrMismatch, r.next+1, what, rec)
			return nil, r.failure
		}
	} else {
		if err := r.match(command, p[:rec.cmdLen]); err != nil {
			sent := ""
			if rec.caseID != "" {
				sent = " (sent by " + rec.caseID + ")"
			}
			r.failure = fmt.Errorf("%w: operation %d (%s) differs from the trace: %v\n  command    %s\n  the trace  %s%s",
				ErrMismatch, r.next+1, commandName(command), err, abbrev(command), abbrev(p[:rec.cmdLen]), sent)
			return nil, r.failure
		}
		command = p[:rec.cmdLen] // the response follows the recorded command
	}
	if rec.err == nil && len(p)-len(command) < 2 {
		r.failure = fmt.Errorf("%w: operation %d: the trace has no response to %s", ErrMismatch, r.next+1, what)
		return nil, r.failure
	}
	r.next++
	if rec.err != nil {
		return nil, rec.err
	}
	return append([]byte(nil), p[len(command):]...), nil
}

func (r *Replayer) atrOp(ctx context.Context, op string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.take(ctx, SIMATR, op)
	if err != nil {
		return nil, err
	}
	if rec.op != "" && rec.op != op && !(op == "power-on" && strings.HasPrefix(rec.op, "reset")) {
		r.failure = fmt.Errorf("%w: operation %d is %s, the trace has %s", ErrMismatch, r.next+1, op, rec.op)
		return nil, r.failure
	}
	r.next++
	return append([]byte(nil), rec.rec.Payload...), nil
}

// SetMatcher sets how a command must match its recorded one: MatchExact,
// MatchDeterministic (the default) or the caller's own.
func (r *Replayer) SetMatcher(m Matcher) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.match = m
}

// abbrev renders b in hex, eliding the middle of a long command.
func abbrev(b []byte) string {
	const keep = 48
	if len(b) <= 2*keep {
		return fmt.Sprintf("%X", b)
	}
	return fmt.Sprintf("%X...(%d bytes)...%X", b[:keep], len(b)-2*keep, b[len(b)-keep:])
}

// Reset implements link.Resetter: the next record must be an ATR.
func (r *Replayer) Reset(ctx context.Context, cold bool) ([]byte, error) {
	if cold {
		return r.atrOp(ctx, "reset-cold")
	}
	return r.atrOp(ctx, "reset-warm")
}

// PowerOff implements link.PowerCycler. A trace has no record of it.
func (r *Replayer) PowerOff(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return link.ErrClosed
	}
	return ctx.Err()
}

// PowerOn implements link.PowerCycler: the next record must be an ATR.
func (r *Replayer) PowerOn(ctx context.Context) ([]byte, error) {
	return r.atrOp(ctx, "power-on")
}

// ATR implements link.ATRer: the ATR record at the start of the trace.
func (r *Replayer) ATR() []byte { return append([]byte(nil), r.atr...) }

// String implements link.Link.
func (r *Replayer) String() string { return r.name }

// Remaining returns how many records are still unused.
func (r *Replayer) Remaining() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.records) - r.next
}

// Close implements link.Link. It fails when an operation did not match
// the trace or when records were left unused.
func (r *Replayer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.failure != nil {
		return r.failure
	}
	if left := len(r.records) - r.next; left > 0 {
		return fmt.Errorf("trace: %s: %d of %d records unused, next: %s", r.name, left, len(r.records), r.records[r.next])
	}
	return nil
}
