package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The vpcd wire format, card side (vsmartcard's virtual reader driver inside
// pcscd is the TCP server; the card connects to it as a client):
//
//	offset  size  field
//	0       2     length N of the message, big-endian (0..65535)
//	2       N     message
//
// A message from vpcd of exactly one byte is a control:
//
//	byte  control    card's answer
//	00    power off  none
//	01    power on   none
//	02    reset      none (warm reset)
//	04    get ATR    one message holding the ATR
//
// Any longer message from vpcd is a command APDU; the card answers it with one
// message holding the response APDU (data || SW1 SW2). vpcd asks for the ATR
// on every presence poll, so a card that is present answers 04 whether or not
// it is powered. vpcd never sends a zero-length message: it has no meaning.
//
// vpcd writes the length and the message as two separate TCP segments, so a
// card that delays its ACK of the first stalls the second behind Nagle's
// algorithm on vpcd's side for the delayed-ACK timeout (about 40 ms on
// Linux); the emulator acknowledges at once (TCP_QUICKACK after every read).

// Control is a one-byte vpcd control message.
type Control byte

// vpcd control messages.
const (
	CtrlPowerOff Control = 0x00
	CtrlPowerOn  Control = 0x01
	CtrlReset    Control = 0x02
	CtrlATR      Control = 0x04
)

// String names the control.
func (c Control) String() string {
	switch c {
	case CtrlPowerOff:
		return "power off"
	case CtrlPowerOn:
		return "power on"
	case CtrlReset:
		return "reset"
	case CtrlATR:
		return "get ATR"
	}
	return fmt.Sprintf("unknown control %02X", byte(c))
}

// Known reports whether c is one of the four vpcd controls.
func (c Control) Known() bool {
	switch c {
	case CtrlPowerOff, CtrlPowerOn, CtrlReset, CtrlATR:
		return true
	}
	return false
}

// MaxMessage is the largest message the 2-byte length prefix can carry.
const MaxMessage = 0xFFFF

// Frame errors. A FrameError leaves the stream in step (the whole frame was
// consumed); any other error from ReadMessage means the stream is broken.
var (
	// ErrEmptyMessage is a frame of length zero.
	ErrEmptyMessage = errors.New("sim: zero-length vpcd message")
	// ErrMessageTooLong is a frame longer than the reader's limit; its body
	// was read and dropped.
	ErrMessageTooLong = errors.New("sim: vpcd message too long")
)

// FrameError is a well-delimited frame that cannot be used. Err is
// ErrEmptyMessage or ErrMessageTooLong.
type FrameError struct {
	Length int // the length the frame announced
	Limit  int // the limit in force
	Err    error
}

func (e *FrameError) Error() string {
	if errors.Is(e.Err, ErrMessageTooLong) {
		return fmt.Sprintf("%v: %d bytes, limit %d (dropped)", e.Err, e.Length, e.Limit)
	}
	return e.Err.Error()
}

func (e *FrameError) Unwrap() error { return e.Err }

// ReadMessage reads one framed message from r into buf (grown as needed) and
// returns it. Messages longer than limit are read to their end and dropped
// with a *FrameError, as are zero-length messages, so the caller may keep
// reading. A stream that ends mid-frame gives io.ErrUnexpectedEOF; a stream
// that ends between frames gives io.EOF.
func ReadMessage(r io.Reader, buf []byte, limit int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 {
		return nil, &FrameError{Length: 0, Limit: limit, Err: ErrEmptyMessage}
	}
	if n > limit {
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return nil, noEOF(err)
		}
		return nil, &FrameError{Length: n, Limit: limit, Err: ErrMessageTooLong}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, noEOF(err)
	}
	return buf, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendMessage appends msg framed for vpcd to dst. It fails when msg does
// not fit the 2-byte length.
func AppendMessage(dst, msg []byte) ([]byte, error) {
	if len(msg) > MaxMessage {
		return dst, fmt.Errorf("%w: %d bytes to send, the frame holds %d", ErrMessageTooLong, len(msg), MaxMessage)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...), nil
}

// WriteMessage frames msg and writes it to w in a single Write, so that the
// length and the message leave in one TCP segment where they fit.
func WriteMessage(w io.Writer, msg []byte) error {
	frame, err := AppendMessage(make([]byte, 0, 2+len(msg)), msg)
	if err != nil {
		return err
	}
	_, err = w.Write(frame)
	return err
}
