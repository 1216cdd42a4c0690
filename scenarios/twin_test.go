package scenarios

import (
	"bytes"
	"strings"
	"testing"
)

func TestTwinCompare(t *testing.T) {
	l := &twinLink{tokens: map[string][]byte{}}
	getBalance := []byte{0x00, 0xCA, 0xDF, 0x04, 0x00}
	for _, tc := range []struct {
		name      string
		cmd       []byte
		got, want []byte
		why       string
	}{
		{"same", getBalance, []byte{0xDF, 0x04, 0x01, 0x05, 0x90, 0x00}, []byte{0xDF, 0x04, 0x01, 0x05, 0x90, 0x00}, ""},
		{"value", getBalance, []byte{0xDF, 0x04, 0x01, 0x05, 0x90, 0x00}, []byte{0xDF, 0x04, 0x01, 0x06, 0x90, 0x00}, "/DF04 is 05, the reference's 06"},
		{"status word", getBalance, []byte{0x69, 0x85}, []byte{0x90, 0x00}, "status word 6985, the reference answers 9000"},
		{"signature by design", []byte{0x80, 0x62, 0, 0}, []byte{0xE1, 0x07, 0xDF, 0x02, 0x01, 0x01, 0x9F, 0x45, 0x00, 0x90, 0x00},
			[]byte{0xE1, 0x08, 0xDF, 0x02, 0x01, 0x01, 0x9F, 0x45, 0x01, 0x33, 0x90, 0x00}, ""},
		{"nested value", []byte{0x80, 0x62, 0, 0}, []byte{0xE1, 0x03, 0xDF, 0x02, 0x00, 0x90, 0x00},
			[]byte{0xE1, 0x04, 0xDF, 0x02, 0x01, 0x07, 0x90, 0x00}, "/E1/DF02 is , the reference's 07"},
		{"missing object", getBalance, []byte{0x90, 0x00}, []byte{0xDF, 0x04, 0x01, 0x05, 0x90, 0x00}, "the answer holds 0 objects, the reference's 1"},
		{"challenge by design", []byte{0x00, 0x84, 0, 0, 0x10}, []byte{1, 2, 0x90, 0x00}, []byte{3, 4, 0x90, 0x00}, ""},
		{"signature by design", []byte{0x00, 0x88, 0, 0, 1, 7}, []byte{0x30, 1, 2, 0x90, 0x00}, []byte{0x30, 1, 3, 0x90, 0x00}, ""},
	} {
		if why := l.compare(tc.cmd, tc.got, tc.want); !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("%s: compare says %q, want %q", tc.name, why, tc.why)
		}
	}
	// A token the device generated stands for the twin's: paired when the
	// GENERATE TOKEN answer shows it (SPEC.md 1.3), then translated in
	// commands and expected in place of the twin's in answers.
	dutTok, refTok := []byte("DUT-TOKEN-\x00\x00\x00\x00\x00\x07"), []byte("REF-TOKEN-\x00\x00\x00\x00\x00\x07")
	medium := func(tok []byte) []byte {
		t := append([]byte{0xDF, 0x01, 0x01, 0x03, 0xDF, 0x03, 0x10}, tok...)
		return append(append([]byte{0x61, byte(len(t))}, t...), 0x90, 0x00)
	}
	genToken := []byte{0x80, 0x6A, 0, 0}
	if why := l.compare(genToken, medium(dutTok), medium(refTok)); why != "" {
		t.Errorf("a token's random part: %s", why)
	}
	got := append([]byte{0xDF, 0x03, 0x10}, append(dutTok, 0x90, 0x00)...)
	want := append([]byte{0xDF, 0x03, 0x10}, append(refTok, 0x90, 0x00)...)
	if why := l.compare([]byte{0x80, 0x60, 1, 0}, got, want); why != "" {
		t.Errorf("paired tokens differ: %s", why)
	}
	if out := l.translate(append([]byte("\x80\x60PAY "), dutTok...)); !strings.Contains(string(out), string(refTok)) {
		t.Errorf("translate kept the device's token: %q", out)
	}
	other := append([]byte("OTHER-TOKEN"), dutTok[11:]...)
	if why := l.compare([]byte{0x80, 0x60, 1, 0}, append([]byte{0xDF, 0x03, 0x10}, append(other, 0x90, 0x00)...), want); !strings.Contains(why, "showed") {
		t.Errorf("a device showing another token where the twin shows its pair's: %q", why)
	}
	// The ATC part of a token is not the device's own.
	badATC := append(append([]byte(nil), dutTok[:12]...), 0, 0, 0, 8)
	if why := l.compare(genToken, medium(badATC), medium(append(append([]byte(nil), refTok[:12]...), 0, 0, 0, 9))); !strings.Contains(why, "ATC") {
		t.Errorf("a token ending in another ATC: %q", why)
	}
	// A challenge the device repeats for two of the twin's.
	ch := []byte{0x00, 0x84, 0, 0, 0x10}
	same := append(make([]byte, 16), 0x90, 0x00)
	if why := l.compare(ch, same, append(bytes.Repeat([]byte{1}, 16), 0x90, 0x00)); why != "" {
		t.Errorf("a first challenge: %s", why)
	}
	if why := l.compare(ch, same, append(bytes.Repeat([]byte{2}, 16), 0x90, 0x00)); !strings.Contains(why, "repeats") {
		t.Errorf("a repeated challenge: %q", why)
	}
}
