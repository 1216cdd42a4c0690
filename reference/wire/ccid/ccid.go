// Package ccid encodes and decodes the bulk messages of the USB Chip/Smart
// Card Interface Devices class (USB CCID specification, revision 1.1,
// section 6). Both ends use it: rigs/usb speaks it as the host, and
// emulator/usbccid answers it as the reader. It has no USB dependency of
// its own, so an emulator can import it without pulling in libusb.
//
// Every bulk message starts with a 10-byte header, little-endian:
//
//	offset size field          meaning
//	0      1    bMessageType   MessageType below
//	1      4    dwLength       number of bytes after the header
//	5      1    bSlot          slot number, 0 for a one-slot reader
//	6      1    bSeq           sequence number; the answer echoes it
//	7      3    message-specific bytes (Param):
//	              PC_to_RDR_IccPowerOn     bPowerSelect, abRFU[2]
//	              PC_to_RDR_XfrBlock       bBWI, wLevelParameter (LE)
//	              other PC_to_RDR_*        abRFU[3]
//	              RDR_to_PC_*              bStatus, bError, then
//	                DataBlock  bChainParameter
//	                SlotStatus bClockStatus
//	                Parameters bProtocolNum
//	10     n    abData         dwLength bytes: APDU, ATR, parameters
//
// Message types handled here (others keep their numbers for error answers):
//
//	0x62 PC_to_RDR_IccPowerOn      -> 0x80 RDR_to_PC_DataBlock (ATR)
//	0x63 PC_to_RDR_IccPowerOff     -> 0x81 RDR_to_PC_SlotStatus
//	0x65 PC_to_RDR_GetSlotStatus   -> 0x81 RDR_to_PC_SlotStatus
//	0x6F PC_to_RDR_XfrBlock        -> 0x80 RDR_to_PC_DataBlock (response APDU)
//	0x6C PC_to_RDR_GetParameters   -> 0x82 RDR_to_PC_Parameters
//
// bStatus of an RDR_to_PC message:
//
//	bits 0-1 bmICCStatus      0 ICC present and active, 1 present and
//	                          inactive, 2 no ICC present, 3 RFU
//	bits 2-5 RFU
//	bits 6-7 bmCommandStatus  0 processed without error, 1 failed (bError
//	                          says why), 2 time extension requested (bError
//	                          is the BWT multiplier; the answer follows)
//
// bError of a failed command is a SlotError: 0x00 command not supported,
// 0x01-0x7F the offset of the header field that is wrong (1 dwLength, 5
// bSlot, 7 the first message-specific byte), 0xE0-0xFF reader and card
// conditions (ICC_MUTE, CMD_SLOT_BUSY, ...).
package ccid

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSize is the size of every CCID bulk message header.
const HeaderSize = 10

// MaxMessage is the largest message a reader exchanging extended APDUs
// may announce as dwMaxCCIDMessageLength (65544 + 10).
const MaxMessage = 65544 + HeaderSize

// MessageType is bMessageType.
type MessageType byte

// Bulk-out (PC_to_RDR) and bulk-in (RDR_to_PC) message types.
const (
	PCtoRDRSetParameters     MessageType = 0x61
	PCtoRDRIccPowerOn        MessageType = 0x62
	PCtoRDRIccPowerOff       MessageType = 0x63
	PCtoRDRGetSlotStatus     MessageType = 0x65
	PCtoRDRSecure            MessageType = 0x69
	PCtoRDRT0APDU            MessageType = 0x6A
	PCtoRDREscape            MessageType = 0x6B
	PCtoRDRGetParameters     MessageType = 0x6C
	PCtoRDRResetParameters   MessageType = 0x6D
	PCtoRDRIccClock          MessageType = 0x6E
	PCtoRDRXfrBlock          MessageType = 0x6F
	PCtoRDRMechanical        MessageType = 0x71
	PCtoRDRAbort             MessageType = 0x72
	PCtoRDRSetDataRateAndClk MessageType = 0x73

	RDRtoPCDataBlock         MessageType = 0x80
	RDRtoPCSlotStatus        MessageType = 0x81
	RDRtoPCParameters        MessageType = 0x82
	RDRtoPCEscape            MessageType = 0x83
	RDRtoPCDataRateAndClkFrq MessageType = 0x84
)

var messageNames = map[MessageType]string{
	PCtoRDRSetParameters:     "PC_to_RDR_SetParameters",
	PCtoRDRIccPowerOn:        "PC_to_RDR_IccPowerOn",
	PCtoRDRIccPowerOff:       "PC_to_RDR_IccPowerOff",
	PCtoRDRGetSlotStatus:     "PC_to_RDR_GetSlotStatus",
	PCtoRDRSecure:            "PC_to_RDR_Secure",
	PCtoRDRT0APDU:            "PC_to_RDR_T0APDU",
	PCtoRDREscape:            "PC_to_RDR_Escape",
	PCtoRDRGetParameters:     "PC_to_RDR_GetParameters",
	PCtoRDRResetParameters:   "PC_to_RDR_ResetParameters",
	PCtoRDRIccClock:          "PC_to_RDR_IccClock",
	PCtoRDRXfrBlock:          "PC_to_RDR_XfrBlock",
	PCtoRDRMechanical:        "PC_to_RDR_Mechanical",
	PCtoRDRAbort:             "PC_to_RDR_Abort",
	PCtoRDRSetDataRateAndClk: "PC_to_RDR_SetDataRateAndClockFrequency",
	RDRtoPCDataBlock:         "RDR_to_PC_DataBlock",
	RDRtoPCSlotStatus:        "RDR_to_PC_SlotStatus",
	RDRtoPCParameters:        "RDR_to_PC_Parameters",
	RDRtoPCEscape:            "RDR_to_PC_Escape",
	RDRtoPCDataRateAndClkFrq: "RDR_to_PC_DataRateAndClockFrequency",
}

func (t MessageType) String() string {
	if n, ok := messageNames[t]; ok {
		return n
	}
	return fmt.Sprintf("MessageType(0x%02X)", byte(t))
}

// BulkIn reports whether t travels reader to host (RDR_to_PC).
func (t MessageType) BulkIn() bool { return t >= 0x80 }

// Known reports whether t is a message type of CCID rev 1.1.
func (t MessageType) Known() bool { _, ok := messageNames[t]; return ok }

// AnswerType is the RDR_to_PC message type that answers the PC_to_RDR
// message t (CCID 6.1 and 6.2). Unknown commands are answered with
// RDR_to_PC_SlotStatus.
func (t MessageType) AnswerType() MessageType {
	switch t {
	case PCtoRDRIccPowerOn, PCtoRDRXfrBlock, PCtoRDRSecure:
		return RDRtoPCDataBlock
	case PCtoRDRGetParameters, PCtoRDRResetParameters, PCtoRDRSetParameters:
		return RDRtoPCParameters
	case PCtoRDREscape:
		return RDRtoPCEscape
	case PCtoRDRSetDataRateAndClk:
		return RDRtoPCDataRateAndClkFrq
	default:
		return RDRtoPCSlotStatus
	}
}

// ICCStatus is bmICCStatus, bits 0-1 of bStatus.
type ICCStatus byte

const (
	ICCActive   ICCStatus = 0 // ICC present and active
	ICCInactive ICCStatus = 1 // ICC present and inactive (not powered)
	ICCAbsent   ICCStatus = 2 // no ICC present
)

func (s ICCStatus) String() string {
	switch s {
	case ICCActive:
		return "card present and active"
	case ICCInactive:
		return "card present and inactive"
	case ICCAbsent:
		return "no card present"
	}
	return fmt.Sprintf("ICCStatus(%d)", byte(s))
}

// CommandStatus is bmCommandStatus, bits 6-7 of bStatus.
type CommandStatus byte

const (
	CommandOK            CommandStatus = 0 // processed without error
	CommandFailed        CommandStatus = 1 // failed; bError holds a SlotError
	CommandTimeExtension CommandStatus = 2 // time extension requested; bError holds the BWT multiplier
)

func (s CommandStatus) String() string {
	switch s {
	case CommandOK:
		return "ok"
	case CommandFailed:
		return "failed"
	case CommandTimeExtension:
		return "time extension"
	}
	return fmt.Sprintf("CommandStatus(%d)", byte(s))
}

// Status is bStatus.
type Status byte

// MakeStatus builds bStatus from its two fields.
func MakeStatus(icc ICCStatus, cmd CommandStatus) Status {
	return Status(byte(icc)&0x03 | (byte(cmd)&0x03)<<6)
}

// ICC returns bmICCStatus.
func (s Status) ICC() ICCStatus { return ICCStatus(s & 0x03) }

// Command returns bmCommandStatus.
func (s Status) Command() CommandStatus { return CommandStatus(s >> 6) }

func (s Status) String() string { return s.Command().String() + ", " + s.ICC().String() }

// SlotError is bError of a failed command (CCID table 6.2-2).
type SlotError byte

const (
	ErrCmdNotSupported         SlotError = 0x00
	ErrBadLength               SlotError = 0x01 // offset of dwLength
	ErrBadSlot                 SlotError = 0x05 // offset of bSlot
	ErrBadParam                SlotError = 0x07 // offset of the first message-specific byte
	ErrCmdSlotBusy             SlotError = 0xE0
	ErrPINCancelled            SlotError = 0xEF
	ErrPINTimeout              SlotError = 0xF0
	ErrBusyWithAutoSequence    SlotError = 0xF2
	ErrDeactivatedProtocol     SlotError = 0xF3
	ErrProcedureByteConflict   SlotError = 0xF4
	ErrICCClassNotSupported    SlotError = 0xF5
	ErrICCProtocolNotSupported SlotError = 0xF6
	ErrBadATRTCK               SlotError = 0xF7
	ErrBadATRTS                SlotError = 0xF8
	ErrHWError                 SlotError = 0xFB
	ErrXfrOverrun              SlotError = 0xFC
	ErrXfrParityError          SlotError = 0xFD
	ErrICCMute                 SlotError = 0xFE
	ErrCmdAborted              SlotError = 0xFF
)

var slotErrorNames = map[SlotError]string{
	ErrCmdNotSupported:         "CMD_NOT_SUPPORTED",
	ErrCmdSlotBusy:             "CMD_SLOT_BUSY",
	ErrPINCancelled:            "PIN_CANCELLED",
	ErrPINTimeout:              "PIN_TIMEOUT",
	ErrBusyWithAutoSequence:    "BUSY_WITH_AUTO_SEQUENCE",
	ErrDeactivatedProtocol:     "DEACTIVATED_PROTOCOL",
	ErrProcedureByteConflict:   "PROCEDURE_BYTE_CONFLICT",
	ErrICCClassNotSupported:    "ICC_CLASS_NOT_SUPPORTED",
	ErrICCProtocolNotSupported: "ICC_PROTOCOL_NOT_SUPPORTED",
	ErrBadATRTCK:               "BAD_ATR_TCK",
	ErrBadATRTS:                "BAD_ATR_TS",
	ErrHWError:                 "HW_ERROR",
	ErrXfrOverrun:              "XFR_OVERRUN",
	ErrXfrParityError:          "XFR_PARITY_ERROR",
	ErrICCMute:                 "ICC_MUTE",
	ErrCmdAborted:              "CMD_ABORTED",
}

func (e SlotError) String() string {
	if n, ok := slotErrorNames[e]; ok {
		return n
	}
	if e >= 0x01 && e <= 0x7F {
		return fmt.Sprintf("bad parameter at offset %d", byte(e))
	}
	return fmt.Sprintf("SlotError(0x%02X)", byte(e))
}

// Message is one CCID bulk message.
type Message struct {
	Type MessageType
	Slot byte
	Seq  byte
	// Param holds the three message-specific header bytes (offsets 7-9).
	// For RDR_to_PC messages they are bStatus, bError and the third
	// message-specific byte; use Status, Error and the constructors.
	Param [3]byte
	Data  []byte
}

// Status returns bStatus of an RDR_to_PC message.
func (m Message) Status() Status { return Status(m.Param[0]) }

// Error returns bError of an RDR_to_PC message.
func (m Message) Error() SlotError { return SlotError(m.Param[1]) }

// Answer returns the RDR_to_PC message answering the command m, with m's
// slot and sequence number and the given status, error, third byte and data.
func (m Message) Answer(status Status, e SlotError, third byte, data []byte) Message {
	return Message{
		Type:  m.Type.AnswerType(),
		Slot:  m.Slot,
		Seq:   m.Seq,
		Param: [3]byte{byte(status), byte(e), third},
		Data:  data,
	}
}

func (m Message) String() string {
	if m.Type.BulkIn() {
		return fmt.Sprintf("%s slot %d seq %d [%s, bError %s] %d bytes", m.Type, m.Slot, m.Seq, m.Status(), m.Error(), len(m.Data))
	}
	return fmt.Sprintf("%s slot %d seq %d % X %d bytes", m.Type, m.Slot, m.Seq, m.Param[:], len(m.Data))
}

// AppendBytes appends the wire form of m to dst.
func (m Message) AppendBytes(dst []byte) []byte {
	var h [HeaderSize]byte
	h[0] = byte(m.Type)
	binary.LittleEndian.PutUint32(h[1:5], uint32(len(m.Data)))
	h[5] = m.Slot
	h[6] = m.Seq
	copy(h[7:], m.Param[:])
	dst = append(dst, h[:]...)
	return append(dst, m.Data...)
}

// Bytes returns the wire form of m.
func (m Message) Bytes() []byte {
	return m.AppendBytes(make([]byte, 0, HeaderSize+len(m.Data)))
}

// Errors of Parse. A reader answers ErrShort by stalling the endpoint and
// ErrLength with bError = 1 (the offset of dwLength).
var (
	ErrShort  = errors.New("ccid: message shorter than the 10-byte header")
	ErrLength = errors.New("ccid: dwLength does not match the bytes received")
)

// Parse decodes one whole bulk transfer. Data aliases b. When the header is
// complete but dwLength disagrees with the transfer, Parse returns the
// header with no data together with an error wrapping ErrLength, so that a
// reader can still answer with the message's slot and sequence number.
func Parse(b []byte) (Message, error) {
	if len(b) < HeaderSize {
		return Message{}, fmt.Errorf("%w (%d bytes)", ErrShort, len(b))
	}
	m := Message{Type: MessageType(b[0]), Slot: b[5], Seq: b[6]}
	copy(m.Param[:], b[7:10])
	n := binary.LittleEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-HeaderSize) {
		return m, fmt.Errorf("%w: dwLength %d, %d data bytes", ErrLength, n, len(b)-HeaderSize)
	}
	if n > 0 {
		m.Data = b[HeaderSize:]
	}
	return m, nil
}

// Constructors for the messages spdlab exchanges.

// IccPowerOn builds PC_to_RDR_IccPowerOn. powerSelect: 0 automatic, 1 5 V,
// 2 3 V, 3 1.8 V.
func IccPowerOn(slot, seq, powerSelect byte) Message {
	return Message{Type: PCtoRDRIccPowerOn, Slot: slot, Seq: seq, Param: [3]byte{powerSelect}}
}

// IccPowerOff builds PC_to_RDR_IccPowerOff.
func IccPowerOff(slot, seq byte) Message {
	return Message{Type: PCtoRDRIccPowerOff, Slot: slot, Seq: seq}
}

// GetSlotStatus builds PC_to_RDR_GetSlotStatus.
func GetSlotStatus(slot, seq byte) Message {
	return Message{Type: PCtoRDRGetSlotStatus, Slot: slot, Seq: seq}
}

// GetParameters builds PC_to_RDR_GetParameters.
func GetParameters(slot, seq byte) Message {
	return Message{Type: PCtoRDRGetParameters, Slot: slot, Seq: seq}
}

// XfrBlock builds PC_to_RDR_XfrBlock carrying one command APDU (APDU-level
// exchange: bBWI 0, wLevelParameter 0).
func XfrBlock(slot, seq byte, apdu []byte) Message {
	return Message{Type: PCtoRDRXfrBlock, Slot: slot, Seq: seq, Data: apdu}
}

// ClockStatus is bClockStatus of RDR_to_PC_SlotStatus.
type ClockStatus byte

const (
	ClockRunning                   ClockStatus = 0
	ClockStoppedLow                ClockStatus = 1
	ClockStoppedHigh               ClockStatus = 2
	ClockStoppedUnknownClockStatus             = 3
)

// T1Parameters is abProtocolDataStructure of RDR_to_PC_Parameters for
// bProtocolNum 1 (CCID table 6.2-3, 7 bytes).
type T1Parameters struct {
	FindexDindex    byte // bmFindexDindex: Fi index high nibble, Di index low nibble (TA1)
	TCCKST1         byte // bmTCCKST1: 0x10 | bit 0 CRC (1) or LRC (0) | bit 1 inverse convention
	GuardTimeT1     byte // bGuardTimeT1 (TC1)
	WaitingIntegers byte // bWaitingIntegersT1: BWI high nibble, CWI low nibble (TB3)
	ClockStop       byte // bClockStop
	IFSC            byte // bIFSC (TA3)
	NadValue        byte // bNadValue
}

// Bytes encodes p.
func (p T1Parameters) Bytes() []byte {
	return []byte{p.FindexDindex, p.TCCKST1, p.GuardTimeT1, p.WaitingIntegers, p.ClockStop, p.IFSC, p.NadValue}
}

// ParseT1Parameters decodes a 7-byte T=1 protocol data structure.
func ParseT1Parameters(b []byte) (T1Parameters, error) {
	if len(b) != 7 {
		return T1Parameters{}, fmt.Errorf("ccid: T=1 parameters are 7 bytes, got %d", len(b))
	}
	return T1Parameters{b[0], b[1], b[2], b[3], b[4], b[5], b[6]}, nil
}
