package scenarios

import (
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
	} {
		if why := l.compare(tc.cmd, tc.got, tc.want); !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("%s: compare says %q, want %q", tc.name, why, tc.why)
		}
	}
	// A token the device generated stands for the twin's.
	l.tokens[string([]byte("DUT-TOKEN-0001!!"))] = []byte("REF-TOKEN-0002!!")
	got := append([]byte{0xDF, 0x03, 0x10}, append([]byte("DUT-TOKEN-0001!!"), 0x90, 0x00)...)
	want := append([]byte{0xDF, 0x03, 0x10}, append([]byte("REF-TOKEN-0002!!"), 0x90, 0x00)...)
	if why := l.compare([]byte{0x80, 0x60, 1, 0}, got, want); why != "" {
		t.Errorf("mapped tokens differ: %s", why)
	}
	if out := l.translate([]byte("\\x80\\x60PAY DUT-TOKEN-0001!!")); !strings.Contains(string(out), "REF-TOKEN-0002!!") {
		t.Errorf("translate kept the device's token: %q", out)
	}
}
