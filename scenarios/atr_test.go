package scenarios

import (
	"testing"

	"github.com/spdlab/spdlab/emulator"
)

func TestCheckATR(t *testing.T) {
	for _, f := range []emulator.Form{emulator.FormSIM, emulator.FormESIM, emulator.FormSD, emulator.FormUSB, emulator.FormUART} {
		if err := checkATR(emulator.ATR(f)); err != nil {
			t.Errorf("%s ATR % X: %v", f, emulator.ATR(f), err)
		}
	}
	bad := map[string][]byte{
		"TS":        {0x3C, 0x00},
		"TCK":       func() []byte { a := emulator.ATR(emulator.FormSIM); a[len(a)-1] ^= 1; return a }(),
		"truncated": emulator.ATR(emulator.FormSIM)[:8],
		"T=0 only":  {0x3B, 0x02, 0x14, 0x50},
		"trailing":  append(emulator.ATR(emulator.FormSIM), 0x00),
	}
	for name, atr := range bad {
		if err := checkATR(atr); err == nil {
			t.Errorf("%s: % X accepted", name, atr)
		}
	}
}
