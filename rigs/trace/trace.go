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
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
	keyRaw        = "raw"
)

// kindName names err's link sentinel for a trace comment, "other" when it
// wraps none.
func kindName(err error) string {
	if k := link.ErrorKind(err); k != "" {
		return k
	}
	return "other"
}

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
		if ev.Raw {
			// Sent as it is: the response's 61xx or 6Cxx is the device's.
			comments = append(comments, commentPrefix+keyRaw)
		}
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

// ErrMismatch: an operation differs from the next record of the trace, or
// the trace has no record left (record.ErrMismatch).
var ErrMismatch = record.ErrMismatch

// replayRules are how a trace is played back: a command matches its
// recorded one by MatchDeterministic (record.Playback.SetMatcher changes
// it); an ATR record of a reset answers a power-on too, and one that does
// not say what gave it answers any reset or power-on; a power-off has no
// record.
var replayRules = record.Rules{
	Match: MatchDeterministic,
	Name:  commandName,
	Stands: func(live, recorded record.Op) bool {
		switch live {
		case record.OpResetWarm, record.OpResetCold:
			return recorded == record.OpATR
		case record.OpPowerOn:
			return recorded == record.OpATR || recorded == record.OpResetWarm || recorded == record.OpResetCold
		}
		return false
	},
	Unrecorded: []record.Op{record.OpPowerOff},
}

// Replay opens the trace file path as a link (the DUT replay:FILE).
func Replay(path string) (link.Link, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	r, err := NewReplayer(f, "replay:"+path)
	if err != nil {
		return nil, fmt.Errorf("trace: %s: %w", path, err)
	}
	return r, nil
}

// NewReplayer reads a whole pcapng trace from r and plays it back as a
// link named name: a record.Playback of ReadTranscript's transcript, each
// command matched by MatchDeterministic unless SetMatcher says otherwise.
func NewReplayer(r io.Reader, name string) (*record.Playback, error) {
	tr, err := ReadTranscript(r)
	if err != nil {
		return nil, err
	}
	return record.NewPlaybackRules(tr, name, replayRules), nil
}

// ReadTranscript reads a whole pcapng trace as a transcript: an ATR record
// at the start that no operation gave is the transcript's ATR, every other
// ATR record a reset or power-on (record.OpATR when the trace does not say
// which), every APDU record an exchange (Joined when the trace does not
// say where the command ends). Packets that are not GSMTAP SIM records,
// and SIM records other than APDU and ATR, are skipped.
func ReadTranscript(r io.Reader) (*record.Transcript, error) {
	tr := &record.Transcript{}
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
		e, err := event(rec, pkt)
		if err != nil {
			return nil, fmt.Errorf("packet %d: %w", n, err)
		}
		tr.Events = append(tr.Events, e)
	}
	if len(tr.Events) > 0 && tr.Events[0].Op == record.OpATR {
		tr.ATR, tr.Events = tr.Events[0].ATR, tr.Events[1:]
	}
	return tr, nil
}

// event reads one SIM record and the spdlab comments of its packet.
func event(rec SIMRecord, pkt Packet) (record.Event, error) {
	e := record.Event{Op: record.OpExchange, At: pkt.Time}
	cmdLen := -1
	for _, c := range pkt.Comments {
		c, ok := strings.CutPrefix(c, commentPrefix)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(c, keyCmdLen):
			n, err := strconv.Atoi(strings.TrimPrefix(c, keyCmdLen))
			if err != nil || n < 1 || n > len(rec.Payload) {
				return e, fmt.Errorf("trace: bad command length %q for %d payload bytes", c, len(rec.Payload))
			}
			cmdLen = n
		case strings.HasPrefix(c, keyError):
			kind, text, ok := strings.Cut(strings.TrimPrefix(c, keyError), ": ")
			if !ok {
				return e, fmt.Errorf("trace: bad error comment %q", c)
			}
			err := &record.RecordedError{Text: text}
			err.Kind, _ = link.KindError(kind)
			e.Err = err
		case c == keyRaw:
			e.Raw = true
		case strings.HasPrefix(c, keyCase):
			e.Case = strings.TrimPrefix(c, keyCase)
		case strings.HasPrefix(c, keyOp):
			switch op := record.Op(strings.TrimPrefix(c, keyOp)); op {
			case record.OpResetWarm, record.OpResetCold, record.OpPowerOn:
				e.Op = op
			default:
				return e, fmt.Errorf("trace: unknown operation %q", op)
			}
		}
	}
	p := append([]byte(nil), rec.Payload...)
	if rec.SubType == SIMATR {
		if e.Op == record.OpExchange {
			e.Op = record.OpATR
		}
		e.ATR, e.Err = p, nil
		return e, nil
	}
	if e.Op != record.OpExchange {
		return e, fmt.Errorf("trace: APDU record of operation %s", e.Op)
	}
	switch {
	case cmdLen < 0:
		e.Command, e.Joined, e.Err = p, true, nil
	case e.Err != nil:
		e.Command = p[:cmdLen]
	case len(p)-cmdLen < 2:
		return e, fmt.Errorf("trace: APDU record with a %d-byte response", len(p)-cmdLen)
	default:
		e.Command, e.Response = p[:cmdLen], p[cmdLen:]
	}
	return e, nil
}
