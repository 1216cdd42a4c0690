package trace

import (
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/tlv"
)

// pay builds a PAY command with the given amount, time and signature
// values, wrapped in a record template to reach nested objects.
func pay(t *testing.T, amount, when, sig []byte) []byte {
	t.Helper()
	data, err := tlv.Encode(
		tlv.TLV{Tag: 0x9F02, Value: amount},
		tlv.TLV{Tag: 0x9A, Value: when},
		tlv.TLV{Tag: 0xE1, Children: []tlv.TLV{{Tag: 0xDF09, Value: []byte("PAYEE")}, {Tag: 0x9F45, Value: sig}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return apdu.Command{CLA: 0x80, INS: 0x60, P1: 1, Data: data, Ne: 256}.MustBytes()
}

func TestMatchDeterministic(t *testing.T) {
	amount := []byte{0, 0, 0, 0, 0, 0, 0x04, 0xE2}
	recorded := pay(t, amount, []byte{0x6B, 0, 0, 1}, []byte{0x30, 0x44, 1, 2})
	for _, c := range []struct {
		name    string
		command []byte
		want    string // "" to match
	}{
		{"the same bytes", recorded, ""},
		{"another time and a longer signature", pay(t, amount, []byte{0x6B, 0, 0, 9}, []byte{0x30, 0x46, 3, 4, 5, 6}), ""},
		{"another amount", pay(t, []byte{0, 0, 0, 0, 0, 0, 0x05, 0x46}, []byte{0x6B, 0, 0, 1}, []byte{0x30, 0x44, 1, 2}),
			"9F02 is 0000000000000546, the trace has 00000000000004E2"},
		{"another P1", append([]byte{0x80, 0x60, 0x02}, recorded[3:]...), "header 80 60 02 00, the trace has 80 60 01 00"},
		{"no Le", recorded[:len(recorded)-1], "Le asks for 0 bytes, the trace's for 256"},
		{"a nested object changed", []byte(strings.Replace(string(recorded), "PAYEE", "PAYER", 1)),
			"E1/DF09 is 5041594552, the trace has 5041594545"},
		{"not an APDU", []byte{0x80}, "the bytes differ at offset 1"},
	} {
		err := MatchDeterministic(c.command, recorded)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// The challenge of INTERNAL AUTHENTICATE is the terminal's own.
	ia := func(ch ...byte) []byte { return apdu.Command{INS: 0x88, Data: ch, Ne: 256}.MustBytes() }
	if err := MatchDeterministic(ia(1, 2, 3), ia(4, 5, 6, 7)); err != nil {
		t.Errorf("INTERNAL AUTHENTICATE with another challenge: %v", err)
	}
	// Data that is not BER-TLV must be equal.
	raw := func(b ...byte) []byte { return apdu.Command{CLA: 0x80, INS: 0x10, Data: b}.MustBytes() }
	if err := MatchDeterministic(raw(0xCA, 0xFE), raw(0xCA, 0xFF)); err == nil {
		t.Error("non-TLV data fields that differ matched")
	}
	if err := MatchExact(recorded, pay(t, amount, []byte{0x6B, 0, 0, 9}, []byte{0x30, 0x44, 1, 2})); err == nil {
		t.Error("MatchExact accepted another time")
	}
}

// A command always matches itself, and matching never panics on bytes
// read from a trace.
func FuzzMatchDeterministic(f *testing.F) {
	f.Add([]byte{0x80, 0x60, 0x01, 0x00, 0x06, 0x9A, 0x04, 0x6B, 0, 0, 1, 0x00}, []byte{0x80, 0x60, 0x01, 0x00, 0x06, 0x9A, 0x04, 0x6B, 0, 0, 2, 0x00})
	f.Add([]byte{0x00, 0x88, 0x00, 0x00, 0x02, 1, 2}, []byte{0x00, 0x88, 0x00, 0x00, 0x01, 3})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if err := MatchDeterministic(a, a); err != nil {
			t.Fatalf("%X does not match itself: %v", a, err)
		}
		_ = MatchDeterministic(a, b)
	})
}
