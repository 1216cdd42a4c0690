package record

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
)

// Format names the transcript format in its header line.
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
//	op          exchange (default), reset-warm, reset-cold, power-off, power-on,
//	            atr (an ATR from a reset or a power-on)
//	at          when the operation started (RFC 3339, UTC)
//	us          how long it took, in microseconds
//	command     command APDU (exchange)
//	response    response APDU, status word included (exchange)
//	atr         Answer To Reset (resets and power-on)
//	error       error text when the operation failed
//	is          the link error it wraps: no-card, removed, closed,
//	            deadline, canceled; empty for any other error
//	case        the conformance case that sent it, when known
const Format = "spdlab-link/1"

// RecordedError is an error read back from a recording (a transcript or
// a trace). It keeps the recorded text and wraps the link error it wrapped
// when recorded (link.ErrRemoved, ...), or nil.
type RecordedError struct {
	Text string
	Kind error
}

func (e *RecordedError) Error() string { return e.Text }
func (e *RecordedError) Unwrap() error { return e.Kind }

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
	Case       string `json:"case,omitempty"`
	Raw        bool   `json:"raw,omitempty"`
}

// JSONL is an Encoder that writes the transcript format to a writer, a
// line per operation as it happens.
type JSONL struct {
	enc *json.Encoder
}

// NewJSONL returns an Encoder writing the transcript format to w.
func NewJSONL(w io.Writer) *JSONL { return &JSONL{enc: json.NewEncoder(w)} }

// Begin implements Encoder: the header line.
func (j *JSONL) Begin(name string, atr []byte) error {
	return j.enc.Encode(line{Transcript: Format, Link: name, ATR: upperHex(atr)})
}

// Encode implements Encoder: one operation's line.
func (j *JSONL) Encode(e Event) error {
	l := line{
		At:       e.At.UTC().Format(time.RFC3339Nano),
		Micros:   e.Duration.Microseconds(),
		Command:  upperHex(e.Command),
		Response: upperHex(e.Response),
		ATR:      upperHex(e.ATR),
		Case:     e.Case,
		Raw:      e.Raw,
	}
	if e.Op != OpExchange {
		l.Op = e.Op
	}
	if e.Err != nil {
		l.Error = e.Err.Error()
		l.Is = kindName(e.Err)
	}
	return j.enc.Encode(l)
}

// WriteTo writes t in the transcript format.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	j := NewJSONL(&buf)
	if err := j.Begin(t.Link, t.ATR); err != nil {
		return 0, err
	}
	for _, e := range t.Events {
		if err := j.Encode(e); err != nil {
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
			return nil, fmt.Errorf("record: transcript line %d: %v", n, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("record: transcript line %d: more than one JSON value", n)
		}
		if !header {
			if l.Transcript != Format {
				return nil, fmt.Errorf("record: transcript line %d: header names format %q, want %q", n, l.Transcript, Format)
			}
			atr, err := hex.DecodeString(l.ATR)
			if err != nil {
				return nil, fmt.Errorf("record: transcript line %d: atr: %v", n, err)
			}
			t.Link, t.ATR, header = l.Link, nilIfEmpty(atr), true
			continue
		}
		e, err := l.event()
		if err != nil {
			return nil, fmt.Errorf("record: transcript line %d: %v", n, err)
		}
		t.Events = append(t.Events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("record: reading transcript: %v", err)
	}
	if !header {
		return nil, errors.New("record: transcript has no header line")
	}
	return t, nil
}

func (l line) event() (Event, error) {
	if l.Transcript != "" || l.Link != "" {
		return Event{}, errors.New("a second header")
	}
	e := Event{Op: l.Op, Duration: time.Duration(l.Micros) * time.Microsecond, Case: l.Case, Raw: l.Raw}
	switch e.Op {
	case "":
		e.Op = OpExchange
	case OpExchange, OpResetWarm, OpResetCold, OpPowerOff, OpPowerOn, OpATR:
	default:
		return Event{}, fmt.Errorf("unknown op %q", l.Op)
	}
	if l.Micros < 0 {
		return Event{}, fmt.Errorf("negative duration %d us", l.Micros)
	}
	if l.At != "" {
		at, err := time.Parse(time.RFC3339Nano, l.At)
		if err != nil {
			return Event{}, fmt.Errorf("at: %v", err)
		}
		e.At = at
	}
	var err error
	if e.Command, err = decodeField("command", l.Command); err != nil {
		return Event{}, err
	}
	if e.Response, err = decodeField("response", l.Response); err != nil {
		return Event{}, err
	}
	if e.ATR, err = decodeField("atr", l.ATR); err != nil {
		return Event{}, err
	}
	kind, ok := kindError(l.Is)
	if !ok {
		return Event{}, fmt.Errorf("unknown error kind %q", l.Is)
	}
	switch {
	case l.Error != "":
		e.Err = &RecordedError{Text: l.Error, Kind: kind}
	case l.Is != "":
		return Event{}, errors.New(`"is" without "error"`)
	}
	switch {
	case e.Op == OpExchange && len(e.Command) == 0:
		return Event{}, errors.New("exchange without a command")
	case e.Op == OpExchange && e.Err == nil && len(e.Response) < 2:
		return Event{}, errors.New("exchange without an error or a response of at least 2 bytes")
	case e.Op != OpExchange && e.Raw:
		return Event{}, fmt.Errorf("%s marked raw", e.Op)
	case e.Op != OpExchange && (e.Command != nil || e.Response != nil):
		return Event{}, fmt.Errorf("%s with a command or response", e.Op)
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
		return nil, fmt.Errorf("record: %v", err)
	}
	defer f.Close()
	return ReadTranscript(f)
}
