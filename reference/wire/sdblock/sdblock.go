// Package sdblock is the wire format of a secure microSD SPD: the
// 512-byte blocks of the file channel through which a host (rigs/sdcard)
// and a card (a real ASSD-style card, or emulator/sdcard) exchange
// ISO/IEC 7816-4 APDUs, and the channel's file names. It has no transport:
// both sides import it, so the format is defined once.
//
// The layout follows the secure-token blocks of the SD Association's
// Advanced Security SD extension (a 2-byte big-endian length, then the
// APDU); the check sequence is CRC-16/CCITT-FALSE (reference/wire/crc16).
package sdblock

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spdlab/spdlab/reference/wire/crc16"
)

// The channel lives in a directory SPDLAB at the root of the card's
// mount point:
//
//	SPDLAB/CMD.BIN  512 bytes, written by the host: one command block
//	SPDLAB/RSP.BIN  512 bytes, written by the card: one response block
//
// The host writes a whole block at offset 0 of CMD.BIN in one write, then
// reads RSP.BIN until it holds a block with the same SEQ. Every block,
// in either file, has this layout:
//
//	offset  size  field
//	------  ----  ---------------------------------------------------------
//	0       2     LEN: bytes of APDU in this block, big-endian, 0..498
//	2       498   APDU (or one segment of it), then zero padding
//	500     2     MAGIC: 'S' 'D'
//	502     1     KIND (see Kind)
//	503     1     FLAGS: bit 0 MORE, further segments follow; others zero
//	504     4     SEQ: big-endian, never 0; a reply carries the SEQ of the
//	              command block it answers
//	508     2     reserved, zero
//	510     2     CRC-16/CCITT-FALSE over bytes 0..509, big-endian
//
// Kinds, host to card (H) and card to host (C):
//
//	KIND  name      dir  APDU field                    answered by
//	----  --------  ---  ----------------------------  -------------------
//	0x01  COMMAND   H    first (or only) segment of a  RESPONSE, or ACK
//	                     command APDU; starts a new    while MORE is set
//	                     command, dropping any
//	                     unfinished one
//	0x02  CONTINUE  H    next segment of the command   as COMMAND
//	0x03  NEXT      H    empty: send the next segment  RESPONSE
//	                     of a chained response
//	0x04  RESET     H    1 byte: 00 open a session     ATR
//	                     (no reset), 01 warm, 02 cold
//	0x05  POWER     H    1 byte: 00 off, 01 on         ACK (off), ATR (on)
//	0x81  RESPONSE  C    response APDU or a segment;
//	                     MORE: ask with NEXT for more
//	0x82  ACK       C    empty
//	0x83  ATR       C    Answer To Reset (empty when unpowered)
//	0x84  ERROR     C    1 byte: Reason
//	0x85  BUSY      C    empty: the command with this SEQ is still
//	                     running (time extension)
//
// Chaining: an APDU longer than 498 bytes (an extended APDU) travels in
// segments of 498 bytes; each command segment but the last is answered
// by ACK, and a response longer than 498 bytes comes back in segments that
// the host fetches with NEXT. Each block has its own SEQ. A chained
// command may hold at most MaxAPDU bytes.
//
// Sequence: the host gives each block the next SEQ (skipping 0). The card
// acts on a block only when its SEQ differs from the last block it acted
// on; a block seen again (the host rewrote it, or the card polled the same
// file twice) is never executed twice: the card rewrites its cached reply.
// The host never mistakes a stale RSP.BIN for an answer, because the SEQ
// must match. An all-zero block is the empty channel, not an error.
const (
	BlockSize  = 512
	MaxSegment = 498
	// MaxAPDU is the longest APDU a chain carries: an extended case 4
	// command (4 + 3 + 65535 + 2 bytes).
	MaxAPDU = 4 + 3 + 65535 + 2

	// ChannelDir, CommandFile and ResponseFile name the channel.
	ChannelDir   = "SPDLAB"
	CommandFile  = "CMD.BIN"
	ResponseFile = "RSP.BIN"

	offMagic = 500
	offKind  = 502
	offFlags = 503
	offSeq   = 504
	offRsv   = 508
	offCRC   = 510

	FlagMore byte = 0x01
)

// Magic marks a block.
var Magic = [2]byte{'S', 'D'}

// Kind is the KIND byte of a block.
type Kind byte

// Block kinds.
const (
	KindCommand  Kind = 0x01
	KindContinue Kind = 0x02
	KindNext     Kind = 0x03
	KindReset    Kind = 0x04
	KindPower    Kind = 0x05
	KindResponse Kind = 0x81
	KindAck      Kind = 0x82
	KindATR      Kind = 0x83
	KindError    Kind = 0x84
	KindBusy     Kind = 0x85
)

// Mode bytes of RESET and POWER.
const (
	ResetOpen byte = 0x00
	ResetWarm byte = 0x01
	ResetCold byte = 0x02
	PowerOff  byte = 0x00
	PowerOn   byte = 0x01
)

var kindNames = map[Kind]string{
	KindCommand: "COMMAND", KindContinue: "CONTINUE", KindNext: "NEXT",
	KindReset: "RESET", KindPower: "POWER", KindResponse: "RESPONSE",
	KindAck: "ACK", KindATR: "ATR", KindError: "ERROR", KindBusy: "BUSY",
}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind %02X", byte(k))
}

// Known reports whether k is one of the kinds above.
func (k Kind) Known() bool { _, ok := kindNames[k]; return ok }

// FromHost reports whether the host writes blocks of kind k.
func (k Kind) FromHost() bool { return k.Known() && k < 0x80 }

// Reason is the payload of an ERROR block, or why ParseBlock refused one.
type Reason byte

// Reasons.
const (
	ReasonDamaged    Reason = 0x01 // wrong size, magic or CRC
	ReasonLength     Reason = 0x02 // LEN over 498, or padding not zero
	ReasonUnknown    Reason = 0x03 // unknown KIND, or reserved bits set
	ReasonUnexpected Reason = 0x04 // a kind not valid now (CONTINUE or NEXT with nothing open, a card kind from the host)
	ReasonTooLong    Reason = 0x05 // a chained command over MaxAPDU
	ReasonBadMode    Reason = 0x06 // RESET or POWER with a bad mode byte
	ReasonUnpowered  Reason = 0x07 // the card is unpowered or lost power mid-command
	ReasonZeroSeq    Reason = 0x08 // SEQ 0 in a block that is not empty
)

var reasonNames = map[Reason]string{
	ReasonDamaged:    "damaged block",
	ReasonLength:     "bad length",
	ReasonUnknown:    "unknown kind or flags",
	ReasonUnexpected: "block kind not expected now",
	ReasonTooLong:    "chained command too long",
	ReasonBadMode:    "bad mode byte",
	ReasonUnpowered:  "card unpowered",
	ReasonZeroSeq:    "sequence number 0",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason %02X", byte(r))
}

// Block is one decoded 512-byte block.
type Block struct {
	Kind Kind
	More bool
	Seq  uint32
	APDU []byte // at most MaxSegment bytes
}

func (b Block) String() string {
	return fmt.Sprintf("%s seq=%d len=%d more=%v", b.Kind, b.Seq, len(b.APDU), b.More)
}

// ErrEmpty is ParseBlock's answer for an all-zero block: the channel as
// created, before anyone wrote to it.
var ErrEmpty = errors.New("sdblock: empty block")

// BlockError is a block ParseBlock refused. Seq is the SEQ field as read,
// which may itself be damaged.
type BlockError struct {
	Reason Reason
	Seq    uint32
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("sdblock: block refused (seq %d): %s", e.Seq, e.Reason)
}

// Marshal writes b into dst, which must hold BlockSize bytes.
func (b Block) Marshal(dst []byte) error {
	if len(dst) < BlockSize {
		return fmt.Errorf("sdblock: buffer of %d bytes is smaller than a block", len(dst))
	}
	if len(b.APDU) > MaxSegment {
		return fmt.Errorf("sdblock: segment of %d bytes exceeds %d", len(b.APDU), MaxSegment)
	}
	if b.Seq == 0 {
		return errors.New("sdblock: sequence number 0 is reserved")
	}
	dst = dst[:BlockSize]
	clear(dst)
	binary.BigEndian.PutUint16(dst, uint16(len(b.APDU)))
	copy(dst[2:], b.APDU)
	dst[offMagic], dst[offMagic+1] = Magic[0], Magic[1]
	dst[offKind] = byte(b.Kind)
	if b.More {
		dst[offFlags] = FlagMore
	}
	binary.BigEndian.PutUint32(dst[offSeq:], b.Seq)
	binary.BigEndian.PutUint16(dst[offCRC:], crc16.Checksum(dst[:offCRC]))
	return nil
}

// ParseBlock decodes a block. It returns ErrEmpty for an all-zero block
// and a *BlockError for anything else it refuses. It never panics.
func ParseBlock(raw []byte) (Block, error) {
	if len(raw) != BlockSize {
		return Block{}, &BlockError{Reason: ReasonDamaged}
	}
	seq := binary.BigEndian.Uint32(raw[offSeq:])
	fail := func(r Reason) (Block, error) { return Block{}, &BlockError{Reason: r, Seq: seq} }
	if crc16.Checksum(raw[:offCRC]) != binary.BigEndian.Uint16(raw[offCRC:]) {
		if allZero(raw) {
			return Block{}, ErrEmpty
		}
		return fail(ReasonDamaged)
	}
	if raw[offMagic] != Magic[0] || raw[offMagic+1] != Magic[1] {
		return fail(ReasonDamaged)
	}
	n := int(binary.BigEndian.Uint16(raw))
	if n > MaxSegment || !allZero(raw[2+n:offMagic]) {
		return fail(ReasonLength)
	}
	k := Kind(raw[offKind])
	if !k.Known() || raw[offFlags]&^FlagMore != 0 || raw[offRsv] != 0 || raw[offRsv+1] != 0 {
		return fail(ReasonUnknown)
	}
	if seq == 0 {
		return fail(ReasonZeroSeq)
	}
	return Block{Kind: k, More: raw[offFlags]&FlagMore != 0, Seq: seq, APDU: append([]byte(nil), raw[2:2+n]...)}, nil
}

func allZero(p []byte) bool {
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}
