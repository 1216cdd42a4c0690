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

func TestEUICCIndicated(t *testing.T) {
	if ok, err := eUICCIndicated(emulator.ATR(emulator.FormESIM)); err != nil || !ok {
		t.Fatalf("eSIM ATR % X: %v, %v", emulator.ATR(emulator.FormESIM), ok, err)
	}
	esim := emulator.ATR(emulator.FormESIM)
	// 3B 8B 81 B1 FE 45 3F ...: TD2 = B1 announces T=1 with TA3, TB3 and
	// TD3; TD3 = 3F announces T=15 with TA4, TB4; the first TB after it
	// (the 82 of 3F 07 82) is the eUICC byte.
	tb := func(b byte) []byte { a := append([]byte(nil), esim...); a[8] = b; return a }
	for name, atr := range map[string][]byte{
		"a plain SIM (no T=15)": emulator.ATR(emulator.FormSIM),
		"TB without b8":         tb(0x02),
		"TB without b2":         tb(0x80),
	} {
		if ok, err := eUICCIndicated(atr); err != nil || ok {
			t.Errorf("%s: % X indicates the eUICC (%v)", name, atr, err)
		}
	}
	if _, err := eUICCIndicated(esim[:7]); err == nil {
		t.Errorf("truncated % X accepted", esim[:7])
	}
}
