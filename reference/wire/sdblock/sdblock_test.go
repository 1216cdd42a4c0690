package sdblock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/spdlab/spdlab/reference/wire/crc16"
)

func TestMarshalLayout(t *testing.T) {
	raw := make([]byte, BlockSize)
	b := Block{Kind: KindCommand, More: true, Seq: 0x01020304, APDU: []byte{0x00, 0xA4, 0x04, 0x00}}
	if err := b.Marshal(raw); err != nil {
		t.Fatal(err)
	}
	want := map[int]byte{0: 0x00, 1: 0x04, 2: 0x00, 3: 0xA4, 4: 0x04, 5: 0x00, 6: 0x00,
		500: 'S', 501: 'D', 502: 0x01, 503: 0x01, 504: 1, 505: 2, 506: 3, 507: 4, 508: 0, 509: 0}
	for off, v := range want {
		if raw[off] != v {
			t.Fatalf("byte %d = %02X, want %02X", off, raw[off], v)
		}
	}
	if binary.BigEndian.Uint16(raw[510:]) != crc16.Checksum(raw[:510]) {
		t.Fatal("CRC field does not cover bytes 0..509")
	}
	got, err := ParseBlock(raw)
	if err != nil || got.Kind != b.Kind || !got.More || got.Seq != b.Seq || !bytes.Equal(got.APDU, b.APDU) {
		t.Fatalf("round trip %v %v", got, err)
	}
}

func TestMarshalRefuses(t *testing.T) {
	raw := make([]byte, BlockSize)
	for _, b := range []Block{
		{Kind: KindCommand, Seq: 1, APDU: make([]byte, MaxSegment+1)},
		{Kind: KindCommand, Seq: 0},
	} {
		if err := b.Marshal(raw); err == nil {
			t.Fatalf("marshalled %v", b)
		}
	}
	if err := (Block{Kind: KindAck, Seq: 1}).Marshal(make([]byte, 10)); err == nil {
		t.Fatal("marshalled into a short buffer")
	}
}

func TestParseBlock(t *testing.T) {
	good := func() []byte {
		raw := make([]byte, BlockSize)
		(Block{Kind: KindResponse, Seq: 9, APDU: []byte{0x90, 0x00}}).Marshal(raw)
		return raw
	}
	reseal := func(raw []byte) []byte {
		binary.BigEndian.PutUint16(raw[510:], crc16.Checksum(raw[:510]))
		return raw
	}
	edit := func(f func([]byte)) []byte { raw := good(); f(raw); return reseal(raw) }
	cases := []struct {
		name  string
		raw   []byte
		empty bool
		want  Reason
	}{
		{"all zero is the empty channel", make([]byte, BlockSize), true, 0},
		{"short", good()[:511], false, ReasonDamaged},
		{"bad CRC", func() []byte { r := good(); r[7] = 1; return r }(), false, ReasonDamaged},
		{"bad magic", edit(func(r []byte) { r[500] = 'X' }), false, ReasonDamaged},
		{"LEN 499", edit(func(r []byte) { r[0], r[1] = 0x01, 0xF3 }), false, ReasonLength},
		{"padding not zero", edit(func(r []byte) { r[300] = 1 }), false, ReasonLength},
		{"unknown kind", edit(func(r []byte) { r[502] = 0x7F }), false, ReasonUnknown},
		{"unknown flag", edit(func(r []byte) { r[503] = 0x02 }), false, ReasonUnknown},
		{"reserved set", edit(func(r []byte) { r[509] = 1 }), false, ReasonUnknown},
		{"seq 0", edit(func(r []byte) { clear(r[504:508]) }), false, ReasonZeroSeq},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBlock(c.raw)
			if c.empty {
				if !errors.Is(err, ErrEmpty) {
					t.Fatalf("got %v, want ErrEmpty", err)
				}
				return
			}
			var be *BlockError
			if !errors.As(err, &be) || be.Reason != c.want {
				t.Fatalf("got %v, want %s", err, c.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	if KindBusy.String() != "BUSY" || Kind(0x42).String() != "kind 42" || ReasonTooLong.String() != "chained command too long" {
		t.Fatal(KindBusy, Kind(0x42), ReasonTooLong)
	}
	if !KindNext.FromHost() || KindATR.FromHost() || Kind(0x10).FromHost() {
		t.Fatal("FromHost")
	}
}

// FuzzParseBlock: ParseBlock never panics, whatever it accepts marshals
// back to the same 512 bytes, and what it refuses carries a known reason.
func FuzzParseBlock(f *testing.F) {
	raw := make([]byte, BlockSize)
	(Block{Kind: KindCommand, Seq: 1, APDU: []byte{0, 0xA4, 4, 0}}).Marshal(raw)
	f.Add(raw)
	f.Add(make([]byte, BlockSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := ParseBlock(raw)
		if err != nil {
			var be *BlockError
			if !errors.Is(err, ErrEmpty) && (!errors.As(err, &be) || be.Reason.String() == "") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again := make([]byte, BlockSize)
		if err := b.Marshal(again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, raw) {
			t.Fatalf("accepted block does not re-marshal to itself: %v", b)
		}
	})
}
