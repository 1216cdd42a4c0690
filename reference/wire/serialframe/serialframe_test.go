package serialframe

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/spdlab/spdlab/reference/wire/crc16"
)

func TestAppendFrame(t *testing.T) {
	cases := []struct {
		name string
		f    Frame
		want []byte
	}{
		{"empty ack", Frame{Type: TypeAck, Seq: 1},
			[]byte{0x7E, 0x06, 0x01, 0x00, 0x00}},
		{"flag and escape stuffed", Frame{Type: TypeCommand, Seq: 0x7E, Payload: []byte{0x7D, 0x00}},
			[]byte{0x7E, 0x01, 0x7D, 0x5E, 0x00, 0x02, 0x7D, 0x5D, 0x00}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AppendFrame(nil, c.f)
			if err != nil {
				t.Fatal(err)
			}
			// want is everything before the CRC; the CRC is checked by
			// decoding.
			if !bytes.HasPrefix(got, c.want) {
				t.Fatalf("encoded % X, want prefix % X", got, c.want)
			}
			if got[len(got)-1] != Flag {
				t.Fatalf("no closing flag: % X", got)
			}
			frames, errs := decodeAll(got, 0)
			if len(errs) != 0 || len(frames) != 1 {
				t.Fatalf("decoded %v %v", frames, errs)
			}
			if frames[0].Type != c.f.Type || frames[0].Seq != c.f.Seq || !bytes.Equal(frames[0].Payload, c.f.Payload) {
				t.Fatalf("round trip %v, want %v", frames[0], c.f)
			}
		})
	}
	if _, err := AppendFrame(nil, Frame{Type: TypeCommand, Payload: make([]byte, MaxPayload+1)}); err == nil {
		t.Fatal("oversized payload encoded")
	}
}

func decodeAll(stream []byte, max int) ([]Frame, []Reason) {
	var frames []Frame
	var reasons []Reason
	NewDecoder(max).Feed(stream, func(f Frame, err error) {
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				panic(fmt.Sprintf("decoder error of type %T", err))
			}
			reasons = append(reasons, fe.Reason)
			return
		}
		frames = append(frames, f)
	})
	return frames, reasons
}

func mustFrame(t *testing.T, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecoderStream(t *testing.T) {
	cmd := Frame{Type: TypeCommand, Seq: 3, Payload: []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0x7E, 0x7D}}
	rsp := Frame{Type: TypeResponse, Seq: 3, Payload: []byte{0x90, 0x00}}
	a, b := mustFrame(t, cmd), mustFrame(t, rsp)
	badCRC := bytes.Clone(a)
	badCRC[3] ^= 0x40
	unknown := func() []byte {
		body := []byte{0x66, 0x01, 0x00, 0x00}
		c := crc16.Checksum(body)
		return append(append([]byte{Flag}, body...), byte(c>>8), byte(c), Flag)
	}()
	lenMismatch := func() []byte {
		body := []byte{0x01, 0x01, 0x00, 0x09, 0xAA}
		c := crc16.Checksum(body)
		return append(append([]byte{Flag}, body...), byte(c>>8), byte(c), Flag)
	}()

	cases := []struct {
		name    string
		stream  []byte
		max     int
		frames  []Frame
		reasons []Reason
	}{
		{"two frames", append(bytes.Clone(a), b...), 0, []Frame{cmd, rsp}, nil},
		{"noise before first flag is ignored", append([]byte{1, 2, 3}, a...), 0, []Frame{cmd}, nil},
		{"lost opening flag: the previous closing flag opens", append(bytes.Clone(a), b[1:]...), 0, []Frame{cmd, rsp}, nil},
		{"lost closing flag: the next opening flag closes", append(bytes.Clone(a[:len(a)-1]), b...), 0, []Frame{cmd, rsp}, nil},
		{"both flags between two frames lost: one bad CRC", append(bytes.Clone(a[:len(a)-1]), b[1:]...), 0, nil, []Reason{ReasonCRC}},
		{"bad CRC then good", append(badCRC, b...), 0, []Frame{rsp}, []Reason{ReasonCRC}},
		{"truncated", []byte{Flag, 0x01, 0x02, Flag}, 0, nil, []Reason{ReasonTruncated}},
		{"aborted by 7D 7E", []byte{Flag, 0x01, 0x02, 0x00, 0x7D, Flag}, 0, nil, []Reason{ReasonTruncated}},
		{"unknown type", unknown, 0, nil, []Reason{ReasonUnknownType}},
		{"length mismatch", lenMismatch, 0, nil, []Reason{ReasonLength}},
		{"too long for this decoder", a, 3, nil, []Reason{ReasonTooLong}},
		{"flags only", []byte{Flag, Flag, Flag}, 0, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			frames, reasons := decodeAll(c.stream, c.max)
			if len(frames) != len(c.frames) {
				t.Fatalf("frames %v, want %v (reasons %v)", frames, c.frames, reasons)
			}
			for i := range frames {
				if frames[i].Type != c.frames[i].Type || frames[i].Seq != c.frames[i].Seq || !bytes.Equal(frames[i].Payload, c.frames[i].Payload) {
					t.Fatalf("frame %d = %v, want %v", i, frames[i], c.frames[i])
				}
			}
			if !reflect.DeepEqual(reasons, c.reasons) {
				t.Fatalf("reasons %v, want %v", reasons, c.reasons)
			}
		})
	}
}

func TestDecoderByteAtATime(t *testing.T) {
	f := Frame{Type: TypeATR, Seq: 200, Payload: bytes.Repeat([]byte{0x7E, 0x7D, 0x20}, 100)}
	stream := mustFrame(t, f)
	d := NewDecoder(0)
	var got []Frame
	for i := range stream {
		d.Feed(stream[i:i+1], func(fr Frame, err error) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fr)
		})
	}
	if len(got) != 1 || !bytes.Equal(got[0].Payload, f.Payload) {
		t.Fatalf("got %v", got)
	}
}

func TestTypeAndReasonNames(t *testing.T) {
	if TypeCommand.String() != "COMMAND" || Type(0x99).String() != "type 99" {
		t.Fatal(TypeCommand.String(), Type(0x99).String())
	}
	if ReasonCRC.String() != "bad CRC" || Reason(0xEE).String() != "reason EE" {
		t.Fatal(ReasonCRC.String())
	}
	if !ReasonCRC.LineFault() || ReasonUnpowered.LineFault() {
		t.Fatal("LineFault")
	}
}

// FuzzDecoder feeds an arbitrary stream in pieces whose sizes come from the
// input itself. Decoding must never panic, must not depend on how the
// stream was split, and every frame it accepts must re-encode to a frame
// that decodes to itself.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0x7E, 0x06, 0x01, 0x00, 0x00, 0x7E}, uint8(1))
	f.Add([]byte{0x7E, 0x01, 0x7D, 0x5E, 0x7D, 0x7E, 0x7E}, uint8(3))
	f.Fuzz(func(t *testing.T, stream []byte, step uint8) {
		whole, wholeReasons := decodeAll(stream, 512)
		d := NewDecoder(512)
		var pieces []Frame
		var pieceReasons []Reason
		n := int(step%16) + 1
		for i := 0; i < len(stream); i += n {
			d.Feed(stream[i:min(i+n, len(stream))], func(fr Frame, err error) {
				if err != nil {
					pieceReasons = append(pieceReasons, err.(*FrameError).Reason)
					return
				}
				pieces = append(pieces, fr)
			})
		}
		if !reflect.DeepEqual(whole, pieces) || !reflect.DeepEqual(wholeReasons, pieceReasons) {
			t.Fatalf("split decoding differs: %v %v vs %v %v", whole, wholeReasons, pieces, pieceReasons)
		}
		for _, fr := range whole {
			if len(fr.Payload) > 512 || !fr.Type.Known() {
				t.Fatalf("accepted %v", fr)
			}
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			again, reasons := decodeAll(enc, 512)
			if len(again) != 1 || len(reasons) != 0 || again[0].Type != fr.Type || again[0].Seq != fr.Seq || !bytes.Equal(again[0].Payload, fr.Payload) {
				t.Fatalf("re-encoded %v decodes to %v %v", fr, again, reasons)
			}
		}
	})
}
