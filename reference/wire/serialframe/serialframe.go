// Package serialframe is the wire format of an SPD on a serial line: the
// frames that carry ISO/IEC 7816-4 APDUs, resets and power requests between
// a host (rigs/serial) and a device (a UART SPD, or emulator/serial on a
// pseudo-terminal). It has no transport: both sides import it, so the
// format is defined once.
//
// The framing follows the octet-stuffed HDLC-like framing of RFC 1662; the
// check sequence is CRC-16/CCITT-FALSE (reference/wire/crc16). The recovery
// rules below (sequence numbers, retransmission, the reply cache) are part
// of the format: rigs/serial and emulator/serial implement them.
package serialframe

import (
	"encoding/binary"
	"fmt"

	"github.com/spdlab/spdlab/reference/wire/crc16"
)

// The frame on the wire, from the first byte sent to the last:
//
//	field    size   value
//	-------  -----  ------------------------------------------------------
//	FLAG     1      0x7E, opens the frame
//	TYPE     1      frame type (Type): command, response, reset, ATR, ...
//	SEQ      1      sequence number of the request; a reply carries the
//	                SEQ of the request it answers
//	LEN      2      payload length, big-endian, 0..MaxPayload
//	PAYLOAD  LEN    APDU, ATR, mode byte or NAK reason, by TYPE
//	CRC      2      CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no
//	                reflection, no final XOR) over TYPE..PAYLOAD, big-endian
//	FLAG     1      0x7E, closes the frame (may double as the next opener)
//
// Between the flags every 0x7E is sent as 7D 5E and every 0x7D as 7D 5D
// (byte stuffing as in RFC 1662), so a 0x7E on the line is always a frame
// boundary: a receiver that loses bytes or sees a corrupted length
// resynchronises at the next flag. "7D 7E" aborts the frame.
//
// Types and their payloads:
//
//	TYPE  name      direction      payload              answered by
//	----  --------  -------------  -------------------  ----------------------
//	0x01  COMMAND   host->device   command APDU         RESPONSE (or NAK)
//	0x02  RESPONSE  device->host   response APDU
//	0x03  RESET     host->device   1 byte: 00 open a    ATR
//	                               session (no reset),
//	                               01 warm, 02 cold
//	0x04  ATR       device->host   Answer To Reset (empty when unpowered)
//	0x05  POWER     host->device   1 byte: 00 off,      ACK (off), ATR (on)
//	                               01 on
//	0x06  ACK       device->host   empty
//	0x07  NAK       device->host   1 byte: Reason
//	0x08  WAIT      device->host   empty: the request with this SEQ is
//	                               still running (time extension)
//
// Recovery. The host numbers each request with the next SEQ (mod 256) and
// sends it again when no reply came within its retransmission timeout, or at
// once when it got a damaged frame or a NAK for a damaged frame. The device
// executes a request only when its SEQ differs from the last one it executed;
// for a repeat it sends its cached reply again without executing anything,
// so a command is never executed twice. RESET 00 (open session) is always
// answered and clears that cache: a host sends it first after opening the
// port, so a new session cannot collide with the last SEQ of an old one.
// Frames that are too long, truncated, fail the CRC, have a length that
// disagrees with the payload, or carry an unknown type are dropped; the
// device answers them with a NAK naming the reason and keeps serving.
const (
	// Flag delimits frames.
	Flag byte = 0x7E
	// Escape introduces a stuffed byte: the next byte is XORed with 0x20.
	Escape byte = 0x7D
	// MaxPayload is the largest payload the LEN field expresses. The
	// largest short-length command (4+1+255+1 bytes) and response
	// (256+2 bytes) fit easily; extended APDUs fit up to this size.
	MaxPayload = 0xFFFF

	headerSize = 4 // TYPE SEQ LEN(2)
	crcSize    = 2
)

// Type is the TYPE byte of a frame.
type Type byte

// Frame types.
const (
	TypeCommand  Type = 0x01
	TypeResponse Type = 0x02
	TypeReset    Type = 0x03
	TypeATR      Type = 0x04
	TypePower    Type = 0x05
	TypeAck      Type = 0x06
	TypeNak      Type = 0x07
	TypeWait     Type = 0x08
)

// Payload bytes of RESET and POWER.
const (
	ResetOpen byte = 0x00 // open a session: answer the ATR, reset nothing
	ResetWarm byte = 0x01
	ResetCold byte = 0x02
	PowerOff  byte = 0x00
	PowerOn   byte = 0x01
)

var typeNames = map[Type]string{
	TypeCommand:  "COMMAND",
	TypeResponse: "RESPONSE",
	TypeReset:    "RESET",
	TypeATR:      "ATR",
	TypePower:    "POWER",
	TypeAck:      "ACK",
	TypeNak:      "NAK",
	TypeWait:     "WAIT",
}

// Known reports whether t is one of the frame types above.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

// Request reports whether t is sent by the host and answered by the device.
func (t Type) Request() bool {
	return t == TypeCommand || t == TypeReset || t == TypePower
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %02X", byte(t))
}

// Reason is the payload of a NAK: why a frame was dropped or a request
// refused.
type Reason byte

// NAK reasons.
const (
	ReasonCRC          Reason = 0x01 // check sequence does not match
	ReasonTooLong      Reason = 0x02 // longer than the receiver's maximum
	ReasonTruncated    Reason = 0x03 // shorter than a header, or aborted
	ReasonLength       Reason = 0x04 // LEN disagrees with the bytes received
	ReasonUnknownType  Reason = 0x05 // TYPE is not one of the known types
	ReasonBadPayload   Reason = 0x06 // RESET or POWER with a bad mode byte
	ReasonUnexpected   Reason = 0x07 // a device-to-host type sent to the device
	ReasonUnpowered    Reason = 0x08 // the card is unpowered or lost power mid-command
	ReasonResponseSize Reason = 0x09 // the card's response does not fit a frame
)

var reasonNames = map[Reason]string{
	ReasonCRC:          "bad CRC",
	ReasonTooLong:      "frame too long",
	ReasonTruncated:    "frame truncated or aborted",
	ReasonLength:       "length field disagrees with payload",
	ReasonUnknownType:  "unknown frame type",
	ReasonBadPayload:   "bad request payload",
	ReasonUnexpected:   "frame type not accepted in this direction",
	ReasonUnpowered:    "card unpowered",
	ReasonResponseSize: "response too long for a frame",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason %02X", byte(r))
}

// LineFault reports whether r says the frame was damaged on the line, so
// that sending it again may succeed.
func (r Reason) LineFault() bool {
	switch r {
	case ReasonCRC, ReasonTooLong, ReasonTruncated, ReasonLength, ReasonUnknownType:
		return true
	}
	return false
}

// Frame is one decoded frame.
type Frame struct {
	Type    Type
	Seq     byte
	Payload []byte
}

func (f Frame) String() string {
	return fmt.Sprintf("%s seq=%d len=%d", f.Type, f.Seq, len(f.Payload))
}

// FrameError is a frame the Decoder dropped. Seq is the SEQ byte of the
// damaged frame when SeqKnown (it may itself be damaged).
type FrameError struct {
	Reason   Reason
	Seq      byte
	SeqKnown bool
}

func (e *FrameError) Error() string {
	if e.SeqKnown {
		return fmt.Sprintf("serialframe: frame dropped (seq %d): %s", e.Seq, e.Reason)
	}
	return "serialframe: frame dropped: " + e.Reason.String()
}

// AppendFrame appends the stuffed encoding of f, both flags included, to
// dst. It fails when the payload exceeds MaxPayload.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return dst, fmt.Errorf("serialframe: payload of %d bytes exceeds %d", len(f.Payload), MaxPayload)
	}
	var hdr [headerSize]byte
	hdr[0] = byte(f.Type)
	hdr[1] = f.Seq
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(f.Payload)))
	crc := crc16.Update(crc16.Checksum(hdr[:]), f.Payload)
	var tail [crcSize]byte
	binary.BigEndian.PutUint16(tail[:], crc)

	dst = append(dst, Flag)
	dst = appendStuffed(dst, hdr[:])
	dst = appendStuffed(dst, f.Payload)
	dst = appendStuffed(dst, tail[:])
	return append(dst, Flag), nil
}

func appendStuffed(dst, p []byte) []byte {
	for _, b := range p {
		if b == Flag || b == Escape {
			dst = append(dst, Escape, b^0x20)
		} else {
			dst = append(dst, b)
		}
	}
	return dst
}

// Decoder turns a byte stream into frames. It keeps its state between
// calls to Feed, so bytes may arrive in any pieces. Bytes before the first
// flag are discarded; after that every flag ends a frame candidate, which
// Feed reports either as a frame or as a *FrameError. It never panics and
// never holds more than the largest frame it accepts.
type Decoder struct {
	max     int
	body    []byte // unstuffed bytes since the last flag
	synced  bool   // a flag has been seen
	esc     bool   // the last byte was Escape
	overrun bool   // the candidate grew past max; discarding to the next flag
}

// NewDecoder returns a decoder that drops frames whose payload exceeds
// maxPayload (MaxPayload when maxPayload is not in 1..MaxPayload).
func NewDecoder(maxPayload int) *Decoder {
	if maxPayload <= 0 || maxPayload > MaxPayload {
		maxPayload = MaxPayload
	}
	return &Decoder{max: maxPayload}
}

// Feed consumes p and calls emit once for each frame candidate completed
// in p: with the frame and a nil error, or with a *FrameError. The frame's
// payload is a fresh slice that emit may keep.
func (d *Decoder) Feed(p []byte, emit func(Frame, error)) {
	limit := headerSize + d.max + crcSize
	for _, b := range p {
		if b == Flag {
			if d.synced {
				d.finish(emit)
			}
			d.synced = true
			d.body = d.body[:0]
			d.esc = false
			d.overrun = false
			continue
		}
		if !d.synced || d.overrun {
			continue
		}
		if b == Escape && !d.esc {
			d.esc = true
			continue
		}
		if d.esc {
			b ^= 0x20
			d.esc = false
		}
		if len(d.body) >= limit {
			d.overrun = true
			continue
		}
		d.body = append(d.body, b)
	}
}

func (d *Decoder) finish(emit func(Frame, error)) {
	body := d.body
	if len(body) == 0 && !d.esc && !d.overrun {
		return // back-to-back flags
	}
	fail := func(r Reason) {
		e := &FrameError{Reason: r}
		if len(body) >= 2 {
			e.Seq, e.SeqKnown = body[1], true
		}
		emit(Frame{}, e)
	}
	switch {
	case d.overrun:
		fail(ReasonTooLong)
		return
	case d.esc, len(body) < headerSize+crcSize:
		fail(ReasonTruncated)
		return
	}
	n := len(body) - crcSize
	if crc16.Checksum(body[:n]) != binary.BigEndian.Uint16(body[n:]) {
		fail(ReasonCRC)
		return
	}
	length := int(binary.BigEndian.Uint16(body[2:4]))
	switch {
	case length > d.max:
		fail(ReasonTooLong)
		return
	case length != n-headerSize:
		fail(ReasonLength)
		return
	}
	t := Type(body[0])
	if !t.Known() {
		fail(ReasonUnknownType)
		return
	}
	emit(Frame{Type: t, Seq: body[1], Payload: append([]byte(nil), body[headerSize:n]...)}, nil)
}
