package scenarios

import "fmt"

// checkATR checks an Answer To Reset against ISO/IEC 7816-3 section 8: TS,
// the interface bytes T0 and TDi announce, the historical bytes, and TCK
// when any protocol other than T=0 is indicated, and that T=1 is indicated
// (SPEC.md SPD-FORM-3).
func checkATR(atr []byte) error {
	if len(atr) < 2 || len(atr) > 33 {
		return fmt.Errorf("ATR of %d bytes (ISO/IEC 7816-3 allows 2 to 33)", len(atr))
	}
	if atr[0] != 0x3B && atr[0] != 0x3F {
		return fmt.Errorf("ATR TS %02X is neither 3B (direct) nor 3F (inverse)", atr[0])
	}
	hist := int(atr[1] & 0x0F)
	y := atr[1] >> 4
	i := 2
	protocols := map[int]bool{}
	for {
		for bit := 0; bit < 3; bit++ { // TA, TB, TC
			if y&(1<<bit) != 0 {
				i++
			}
		}
		if y&0x08 == 0 {
			break
		}
		if i >= len(atr) {
			return fmt.Errorf("ATR truncated in its interface bytes")
		}
		td := atr[i]
		i++
		protocols[int(td&0x0F)] = true
		y = td >> 4
	}
	if i+hist > len(atr) {
		return fmt.Errorf("ATR truncated: %d historical bytes announced", hist)
	}
	i += hist
	onlyT0 := len(protocols) == 0 || (len(protocols) == 1 && protocols[0])
	if !onlyT0 {
		if i >= len(atr) {
			return fmt.Errorf("ATR has no TCK although it indicates a protocol other than T=0")
		}
		var x byte
		for _, b := range atr[1 : i+1] {
			x ^= b
		}
		if x != 0 {
			return fmt.Errorf("ATR TCK does not check: XOR of T0..TCK is %02X", x)
		}
		i++
	}
	if i != len(atr) {
		return fmt.Errorf("ATR has %d bytes after its last field", len(atr)-i)
	}
	if !protocols[1] {
		return fmt.Errorf("ATR does not indicate T=1")
	}
	return nil
}
