package trace

import (
	"bytes"
	"fmt"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// A Matcher decides whether a command replays a recorded one. It returns
// nil when it does and otherwise an error saying what differs first.
type Matcher func(command, recorded []byte) error

// MatchExact accepts only the recorded bytes.
func MatchExact(command, recorded []byte) error {
	if bytes.Equal(command, recorded) {
		return nil
	}
	return fmt.Errorf("the bytes differ at offset %d", firstDiff(command, recorded))
}

// Varying lists the data objects whose value differs on every run by
// design, so that MatchDeterministic compares only their presence: the
// host's clock and what is drawn from it, nonces, keys, certificates and
// signatures (SPEC.md section 3 names each tag).
var Varying = map[tlv.Tag]string{
	spd.TagTime:            "time",
	spd.TagExpiry:          "expiry",
	spd.TagLastSync:        "last sync",
	spd.TagPayeeNonce:      "payee nonce",
	spd.TagCertificate:     "certificate",
	spd.TagDevicePublicKey: "device public key",
	spd.TagCAPublicKey:     "CA public key",
	spd.TagHostPublicKey:   "host public key",
	spd.TagSignature:       "signature",
}

// Nested lists the primitive data objects whose value is itself a
// sequence of data objects signed by the host (SPEC.md 4.10, 4.11):
// MatchDeterministic compares their objects one by one, so that the time
// and the signature inside them vary as they do at the top level.
var Nested = map[tlv.Tag]string{
	spd.TagHostAssertion: "host assertion",
	spd.TagExchangeRate:  "exchange rate",
}

// MatchDeterministic accepts a command that differs from the recorded one
// only where runs differ by design. Both must be well-formed command
// APDUs with the same CLA, INS, P1, P2 and Le. Their data fields are
// compared as BER-TLV: the same objects in the same order, with equal
// values except those of the Varying tags, whose values may differ in
// content and length (a DER signature is 70 to 72 bytes). The data field
// of INTERNAL AUTHENTICATE is the terminal's challenge and may differ. A
// data field that is not BER-TLV must be equal byte for byte.
func MatchDeterministic(command, recorded []byte) error {
	if bytes.Equal(command, recorded) {
		return nil
	}
	got, err := apdu.ParseCommand(command)
	if err != nil {
		return MatchExact(command, recorded)
	}
	want, err := apdu.ParseCommand(recorded)
	if err != nil {
		return MatchExact(command, recorded)
	}
	if got.CLA != want.CLA || got.INS != want.INS || got.P1 != want.P1 || got.P2 != want.P2 {
		return fmt.Errorf("header %02X %02X %02X %02X, the trace has %02X %02X %02X %02X",
			got.CLA, got.INS, got.P1, got.P2, want.CLA, want.INS, want.P1, want.P2)
	}
	if got.Ne != want.Ne {
		return fmt.Errorf("the command's Le asks for %d bytes, the trace's for %d", got.Ne, want.Ne)
	}
	if spd.INS(got.INS) == spd.INSInternalAuthenticate && got.CLA&0x80 == 0 && len(got.Data) > 0 && len(want.Data) > 0 {
		return nil
	}
	if bytes.Equal(got.Data, want.Data) {
		return nil
	}
	wantTLV, err := tlv.Parse(want.Data)
	if err != nil {
		return fmt.Errorf("data field differs at byte %d", firstDiff(got.Data, want.Data))
	}
	gotTLV, err := tlv.Parse(got.Data)
	if err != nil {
		return fmt.Errorf("data field is not BER-TLV (%v); the trace's is", err)
	}
	return matchObjects(gotTLV, wantTLV, "")
}

func matchObjects(got, want []tlv.TLV, path string) error {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(want):
			return fmt.Errorf("data object %s%s is not in the trace", path, got[i].Tag)
		case i >= len(got):
			return fmt.Errorf("data object %s%s of the trace is missing", path, want[i].Tag)
		}
		g, w := got[i], want[i]
		if g.Tag != w.Tag {
			return fmt.Errorf("data object %d%s is %s, the trace has %s", i+1, inside(path), g.Tag, w.Tag)
		}
		if _, ok := Varying[g.Tag]; ok {
			continue
		}
		if _, ok := Nested[g.Tag]; ok && !bytes.Equal(g.Value, w.Value) {
			gk, gerr := tlv.Parse(g.Value)
			wk, werr := tlv.Parse(w.Value)
			if gerr == nil && werr == nil {
				if err := matchObjects(gk, wk, path+g.Tag.String()+"/"); err != nil {
					return err
				}
				continue
			}
		}
		if g.Tag.Constructed() && (len(g.Children) > 0 || len(w.Children) > 0) {
			if err := matchObjects(g.Children, w.Children, path+g.Tag.String()+"/"); err != nil {
				return err
			}
			continue
		}
		if !bytes.Equal(g.Value, w.Value) {
			return fmt.Errorf("%s%s is %X, the trace has %X", path, g.Tag, g.Value, w.Value)
		}
	}
	return nil
}

func inside(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path[:len(path)-1]
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// commandName names a command APDU as SPEC.md does ("PAY"), or by its
// INS byte outside the SPD classes.
func commandName(command []byte) string {
	if len(command) < 2 {
		return fmt.Sprintf("%d-byte command", len(command))
	}
	return spd.INS(command[1]).String()
}
