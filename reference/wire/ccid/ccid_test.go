package ccid

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessageWire(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		wire string
	}{
		{"IccPowerOn", IccPowerOn(0, 1, 0), "62000000000001000000"},
		{"IccPowerOn 3V", IccPowerOn(0, 2, 2), "62000000000002020000"},
		{"IccPowerOff", IccPowerOff(0, 3), "63000000000003000000"},
		{"GetSlotStatus", GetSlotStatus(0, 4), "65000000000004000000"},
		{"GetParameters", GetParameters(0, 0xFF), "6C0000000000FF000000"},
		{"XfrBlock SELECT", XfrBlock(0, 5, mustHex(t, "00A4040000")),
			"6F050000000005000000" + "00A4040000"},
		{"DataBlock ATR", Message{Type: RDRtoPCDataBlock, Seq: 1, Data: mustHex(t, "3B00")},
			"80020000000001000000" + "3B00"},
		{"SlotStatus absent", Message{Type: RDRtoPCSlotStatus, Seq: 9,
			Param: [3]byte{byte(MakeStatus(ICCAbsent, CommandFailed)), byte(ErrICCMute), byte(ClockRunning)}},
			"8100000000000942FE00"},
		{"time extension", Message{Type: RDRtoPCDataBlock, Seq: 7,
			Param: [3]byte{byte(MakeStatus(ICCActive, CommandTimeExtension)), 2, 0}},
			"80000000000007800200"},
		{"Parameters T=1", Message{Type: RDRtoPCParameters, Seq: 2, Param: [3]byte{0, 0, 1},
			Data: T1Parameters{0x11, 0x10, 0, 0x45, 0, 0xFE, 0}.Bytes()},
			"82070000000002000001" + "1110004500FE00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.wire)
			got := tt.msg.Bytes()
			if !bytes.Equal(got, want) {
				t.Fatalf("Bytes() = %X, want %X", got, want)
			}
			back, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if back.Type != tt.msg.Type || back.Slot != tt.msg.Slot || back.Seq != tt.msg.Seq ||
				back.Param != tt.msg.Param || !bytes.Equal(back.Data, tt.msg.Data) {
				t.Fatalf("Parse(Bytes()) = %v, want %v", back, tt.msg)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		wire    string
		wantErr error
		seq     byte
	}{
		{"empty", "", ErrShort, 0},
		{"nine bytes", "650000000000010000", ErrShort, 0},
		{"dwLength too large", "6F0500000000070000000102", ErrLength, 7},
		{"dwLength too small", "6F0000000000080000000102", ErrLength, 8},
		{"dwLength huge", "6FFFFFFFFF0009000000", ErrLength, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(mustHex(t, tt.wire))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
			}
			if m.Seq != tt.seq {
				t.Fatalf("seq = %d, want %d (the header must survive a length error)", m.Seq, tt.seq)
			}
			if m.Data != nil {
				t.Fatalf("data = %X, want none", m.Data)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		icc  ICCStatus
		cmd  CommandStatus
		want byte
	}{
		{ICCActive, CommandOK, 0x00},
		{ICCInactive, CommandOK, 0x01},
		{ICCAbsent, CommandOK, 0x02},
		{ICCActive, CommandFailed, 0x40},
		{ICCInactive, CommandFailed, 0x41},
		{ICCAbsent, CommandFailed, 0x42},
		{ICCActive, CommandTimeExtension, 0x80},
	}
	for _, tt := range tests {
		s := MakeStatus(tt.icc, tt.cmd)
		if byte(s) != tt.want {
			t.Errorf("MakeStatus(%v, %v) = %02X, want %02X", tt.icc, tt.cmd, byte(s), tt.want)
		}
		if s.ICC() != tt.icc || s.Command() != tt.cmd {
			t.Errorf("%02X decodes to %v, %v", byte(s), s.ICC(), s.Command())
		}
	}
}

func TestAnswerType(t *testing.T) {
	tests := []struct {
		cmd, want MessageType
	}{
		{PCtoRDRIccPowerOn, RDRtoPCDataBlock},
		{PCtoRDRXfrBlock, RDRtoPCDataBlock},
		{PCtoRDRIccPowerOff, RDRtoPCSlotStatus},
		{PCtoRDRGetSlotStatus, RDRtoPCSlotStatus},
		{PCtoRDRGetParameters, RDRtoPCParameters},
		{PCtoRDREscape, RDRtoPCEscape},
		{PCtoRDRSetDataRateAndClk, RDRtoPCDataRateAndClkFrq},
		{MessageType(0x42), RDRtoPCSlotStatus},
	}
	for _, tt := range tests {
		if got := tt.cmd.AnswerType(); got != tt.want {
			t.Errorf("%v.AnswerType() = %v, want %v", tt.cmd, got, tt.want)
		}
	}
	ans := XfrBlock(0, 42, []byte{0, 0xA4, 4, 0}).Answer(MakeStatus(ICCActive, CommandOK), 0, 0, []byte{0x90, 0})
	if ans.Type != RDRtoPCDataBlock || ans.Seq != 42 || ans.Status() != 0 || ans.Error() != 0 {
		t.Fatalf("Answer = %v", ans)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{PCtoRDRXfrBlock.String(), "PC_to_RDR_XfrBlock"},
		{MessageType(0x42).String(), "MessageType(0x42)"},
		{ErrICCMute.String(), "ICC_MUTE"},
		{ErrCmdNotSupported.String(), "CMD_NOT_SUPPORTED"},
		{ErrBadSlot.String(), "bad parameter at offset 5"},
		{SlotError(0x90).String(), "SlotError(0x90)"},
		{MakeStatus(ICCAbsent, CommandFailed).String(), "failed, no card present"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestT1Parameters(t *testing.T) {
	p := T1Parameters{0x11, 0x10, 0, 0x45, 0, 0xFE, 0}
	back, err := ParseT1Parameters(p.Bytes())
	if err != nil || back != p {
		t.Fatalf("ParseT1Parameters = %v, %v", back, err)
	}
	if _, err := ParseT1Parameters([]byte{1, 2, 3}); err == nil {
		t.Fatal("ParseT1Parameters accepted 3 bytes")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(mustHex(f, "62000000000001000000"))
	f.Add(mustHex(f, "6F050000000005000000"+"00A4040000"))
	f.Add(mustHex(f, "8100000000000942FE00"))
	f.Add([]byte{0x6F, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if got := m.Bytes(); !bytes.Equal(got, b) {
			t.Fatalf("Parse(%X).Bytes() = %X", b, got)
		}
		_ = m.String()
	})
}
