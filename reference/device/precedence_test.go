package device

import (
	"bytes"
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// SPD-APP-5 and section 1.2 of SPEC.md: what is pending after 61xx is
// discarded by power-on, power-off, a warm reset and any other command,
// and GET RESPONSE with P1-P2 other than 00 00 answers 6A86.
func TestPendingResponseDiscarded(t *testing.T) {
	r := newRig(t, "PRECED01")
	selectLe5 := apdu.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: spd.AID, Ne: 5}.MustBytes()
	getResponse := []byte{0x00, 0xC0, 0x00, 0x00, 0x00}
	for _, tc := range []struct {
		name    string
		between func()
		want    []byte
	}{
		{"nothing", func() {}, nil},
		{"power cycle", func() { r.dev.PowerOff(); r.dev.PowerOn() }, []byte{0x69, 0x85}},
		{"power-on", func() { r.dev.PowerOn() }, []byte{0x69, 0x85}},
		{"warm reset", func() { r.dev.Reset() }, []byte{0x69, 0x85}},
		{"another command", func() { r.dev.Process(spd.GetData(spd.TagState).MustBytes()) }, []byte{0x69, 0x85}},
		{"GET RESPONSE with P1 01", func() {
			if got := r.dev.Process([]byte{0x00, 0xC0, 0x01, 0x00, 0x00}); !bytes.Equal(got, []byte{0x6A, 0x86}) {
				t.Fatalf("GET RESPONSE P1 01 answered %X, want 6A86", got)
			}
		}, []byte{0x69, 0x85}},
	} {
		first := r.dev.Process(selectLe5)
		if len(first) != 7 || first[5] != 0x61 {
			t.Fatalf("%s: SELECT with Le 05 answered %X, want 5 bytes and 61xx", tc.name, first)
		}
		tc.between()
		got := r.dev.Process(getResponse)
		if tc.want == nil {
			if len(got) != int(first[6])+2 || got[len(got)-2] != 0x90 {
				t.Fatalf("%s: GET RESPONSE answered %X, want the rest of the FCI", tc.name, got)
			}
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("after %s: GET RESPONSE answered %X, want %X", tc.name, got, tc.want)
		}
	}
}
