// Package apdu encodes and decodes ISO/IEC 7816-4 command and response APDUs.
//
// It covers the four command cases with short and extended lengths:
//
//	case 1   CLA INS P1 P2
//	case 2S  CLA INS P1 P2 Le                      Le: 1 byte, 00 means 256
//	case 3S  CLA INS P1 P2 Lc Data                 Lc: 1 byte, 01..FF
//	case 4S  CLA INS P1 P2 Lc Data Le
//	case 2E  CLA INS P1 P2 00 Le1 Le2              Le: 2 bytes, 0000 means 65536
//	case 3E  CLA INS P1 P2 00 Lc1 Lc2 Data         Lc: 2 bytes, 0001..FFFF
//	case 4E  CLA INS P1 P2 00 Lc1 Lc2 Data Le1 Le2
//
// ParseCommand never panics: every malformed command maps to an error that
// carries the status word a card answers with (see ParseError).
package apdu

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxShortLe is the largest Le a short APDU expresses (encoded as 00).
const MaxShortLe = 256

// MaxExtendedLe is the largest Le an extended APDU expresses (encoded as 0000).
const MaxExtendedLe = 65536

// Command is a command APDU. Ne is the maximum number of response bytes
// expected (0 when absent). Extended forces extended length encoding even
// when short would do.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Ne               int
	Extended         bool
}

// Case returns the ISO 7816-4 case number (1..4) of c.
func (c Command) Case() int {
	switch {
	case len(c.Data) == 0 && c.Ne == 0:
		return 1
	case len(c.Data) == 0:
		return 2
	case c.Ne == 0:
		return 3
	default:
		return 4
	}
}

func (c Command) needsExtended() bool {
	return c.Extended || len(c.Data) > 255 || c.Ne > MaxShortLe
}

// Bytes encodes c. It fails when Data or Ne exceed the extended limits.
func (c Command) Bytes() ([]byte, error) {
	if len(c.Data) > 65535 {
		return nil, fmt.Errorf("apdu: command data of %d bytes exceeds 65535", len(c.Data))
	}
	if c.Ne < 0 || c.Ne > MaxExtendedLe {
		return nil, fmt.Errorf("apdu: Ne %d out of range", c.Ne)
	}
	out := make([]byte, 0, 4+3+len(c.Data)+3)
	out = append(out, c.CLA, c.INS, c.P1, c.P2)
	ext := c.needsExtended()
	if len(c.Data) > 0 {
		if ext {
			out = append(out, 0, byte(len(c.Data)>>8), byte(len(c.Data)))
		} else {
			out = append(out, byte(len(c.Data)))
		}
		out = append(out, c.Data...)
	}
	if c.Ne > 0 {
		switch {
		case ext && len(c.Data) > 0:
			out = append(out, byte(c.Ne>>8), byte(c.Ne)) // 65536 -> 0000
		case ext:
			out = append(out, 0, byte(c.Ne>>8), byte(c.Ne))
		default:
			out = append(out, byte(c.Ne)) // 256 -> 00
		}
	}
	return out, nil
}

// MustBytes is Bytes for commands built by the program itself; it panics on
// a command that cannot be encoded, which is a programming error.
func (c Command) MustBytes() []byte {
	b, err := c.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

func (c Command) String() string {
	return fmt.Sprintf("CLA=%02X INS=%02X P1=%02X P2=%02X Lc=%d Ne=%d", c.CLA, c.INS, c.P1, c.P2, len(c.Data), c.Ne)
}

// ParseError is a malformed command. SW is the status word a card answers.
type ParseError struct {
	SW     SW
	Reason string
}

func (e *ParseError) Error() string { return "apdu: " + e.Reason + " (" + e.SW.String() + ")" }

func malformed(sw SW, format string, args ...any) error {
	return &ParseError{SW: sw, Reason: fmt.Sprintf(format, args...)}
}

// ParseCommand decodes a command APDU. The returned error is a *ParseError
// carrying SWWrongLength for length faults and SWClaNotSupported for a
// reserved CLA (FF, used by PPS).
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, malformed(SWWrongLength, "command of %d bytes is shorter than a header", len(b))
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	if c.CLA == 0xFF {
		return Command{}, malformed(SWClaNotSupported, "CLA FF is reserved for PPS")
	}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2S
		c.Ne = int(body[0])
		if c.Ne == 0 {
			c.Ne = MaxShortLe
		}
		return c, nil
	case body[0] != 0: // case 3S or 4S
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
		case 2 + lc:
			c.Ne = int(body[1+lc])
			if c.Ne == 0 {
				c.Ne = MaxShortLe
			}
		default:
			return Command{}, malformed(SWWrongLength, "Lc %d does not match %d body bytes", lc, len(body)-1)
		}
		c.Data = append([]byte(nil), body[1:1+lc]...)
		return c, nil
	}
	// body[0] == 0 and len(body) >= 2: extended.
	c.Extended = true
	if len(body) == 3 { // case 2E
		c.Ne = int(binary.BigEndian.Uint16(body[1:3]))
		if c.Ne == 0 {
			c.Ne = MaxExtendedLe
		}
		return c, nil
	}
	if len(body) < 3 {
		return Command{}, malformed(SWWrongLength, "extended length field truncated")
	}
	lc := int(binary.BigEndian.Uint16(body[1:3]))
	if lc == 0 {
		return Command{}, malformed(SWWrongLength, "extended Lc of zero")
	}
	switch len(body) {
	case 3 + lc:
	case 5 + lc:
		c.Ne = int(binary.BigEndian.Uint16(body[3+lc:]))
		if c.Ne == 0 {
			c.Ne = MaxExtendedLe
		}
	default:
		return Command{}, malformed(SWWrongLength, "extended Lc %d does not match %d body bytes", lc, len(body)-3)
	}
	c.Data = append([]byte(nil), body[3:3+lc]...)
	return c, nil
}

// Response is a response APDU: data followed by SW1 SW2.
type Response struct {
	Data []byte
	SW   SW
}

// ErrShortResponse is returned for a response of fewer than two bytes.
var ErrShortResponse = errors.New("apdu: response shorter than a status word")

// ParseResponse decodes a response APDU.
func ParseResponse(b []byte) (Response, error) {
	if len(b) < 2 {
		return Response{}, ErrShortResponse
	}
	n := len(b) - 2
	return Response{Data: append([]byte(nil), b[:n]...), SW: SW(binary.BigEndian.Uint16(b[n:]))}, nil
}

// Bytes encodes r as data || SW1 SW2.
func (r Response) Bytes() []byte {
	out := make([]byte, len(r.Data)+2)
	copy(out, r.Data)
	binary.BigEndian.PutUint16(out[len(r.Data):], uint16(r.SW))
	return out
}

// OK reports whether the status word is 9000.
func (r Response) OK() bool { return r.SW == SWOK }

// Err returns nil for 9000 and an *SWError otherwise.
func (r Response) Err() error {
	if r.SW == SWOK {
		return nil
	}
	return &SWError{SW: r.SW}
}

// SWError is a status word other than 9000 seen as an error. It matches
// errors.Is against the SW sentinels (ErrPINBlocked and friends).
type SWError struct{ SW SW }

func (e *SWError) Error() string { return "apdu: card answered " + e.SW.String() }

// Is reports whether target is an *SWError with the same status word; a
// target of 63C0 matches every 63Cx.
func (e *SWError) Is(target error) bool {
	var t *SWError
	if errors.As(target, &t) {
		if t.SW == SWVerifyFailed { // 63C0 as a target matches any 63Cx
			_, ok := e.SW.TriesLeft()
			return ok
		}
		return t.SW == e.SW
	}
	return false
}

// ErrPINBlocked matches a 6983 answer (authentication method blocked).
var ErrPINBlocked error = &SWError{SW: SWAuthBlocked}
