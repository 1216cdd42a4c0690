// Package emulator holds what every emulated transport shares: the card
// application interface that the reference device satisfies, and the
// Answers To Reset of the SIM and eSIM form factors (ISO/IEC 7816-3).
//
// An emulator makes a device application look like hardware on a real OS
// interface (pcscd through vpcd, a pseudo-terminal, USB CCID bulk messages,
// an SD file channel). It never imports a rig: rigs reach the emulator
// through the OS interface alone.
package emulator

// Card is a device application as an emulator drives it.
//
// Process answers one command APDU; it returns nil when power was cut while
// the command ran (a tear), in which case the emulator reports the card as
// unresponsive until the next PowerOn. PowerOn runs the application's
// power-up (store recovery); PowerOff removes power; Reset is a warm reset.
type Card interface {
	Process(command []byte) []byte
	PowerOn()
	PowerOff()
	Reset()
}

// Form is the form factor an emulator presents.
type Form string

const (
	FormSIM  Form = "sim"
	FormESIM Form = "esim"
	FormSD   Form = "sd"
	FormUSB  Form = "usb"
	FormUART Form = "serial"
)

// ATR returns the Answer To Reset of a form factor. All forms speak T=1
// with IFSC 254; the historical bytes name the form ("SPDLAB SIM",
// "SPDLAB eSIM", ...).
//
//	TS  T0  TD1 TD2 TA3 TB3 historical bytes      TCK
//	3B  8K  81  31  FE  45  'S' 'P' 'D' 'L' ...   XOR of T0..last
//
// T0 = 0x80 | K (TD1 present, K historical bytes); TD1 = 0x81 (TD2 present,
// T=1); TD2 = 0x31 (TA3 and TB3 present, T=1); TA3 = IFSC 254; TB3 = BWI 4,
// CWI 5. TCK is present because T=1 is indicated. The eSIM adds the global
// interface bytes of T=15 that mark an eUICC (see below).
func ATR(f Form) []byte {
	hist := "SPDLAB SIM"
	switch f {
	case FormESIM:
		hist = "SPDLAB eSIM"
	case FormSD:
		hist = "SPDLAB SD"
	case FormUSB:
		hist = "SPDLAB USB"
	case FormUART:
		hist = "SPDLAB UART"
	}
	atr := []byte{0x3B, 0x80 | byte(len(hist)), 0x81, 0x31, 0xFE, 0x45}
	if f == FormESIM {
		// TD2 = B1 adds TD3; TD3 = 3F: TA4 and TB4, T=15 (global bytes);
		// TA4 = 07: classes A, B and C; TB4 = 82: b8 and b2, "eUICC-related
		// functions supported" (ETSI TS 102 221 clause 6.3.3, SPEC.md
		// SPD-ESIM-3).
		atr = []byte{0x3B, 0x80 | byte(len(hist)), 0x81, 0xB1, 0xFE, 0x45, 0x3F, 0x07, 0x82}
	}
	atr = append(atr, hist...)
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	return append(atr, tck)
}

// FaultyATR is ATR(f) as a card OS with the named mutant of
// reference/device's catalogue (Mutants) answers it: atr-bad-tck takes TS
// into the check character, atr-t0-only indicates T=0 alone (SPD-FORM-3).
// Any other mutant leaves the ATR as it is.
func FaultyATR(f Form, mutant string) []byte {
	atr := ATR(f)
	switch {
	case bug(mutant, "atr-bad-tck"):
		atr[len(atr)-1] ^= atr[0]
	case bug(mutant, "atr-t0-only"):
		// T0 without TD1, the historical bytes, no TCK: T=0 implied.
		hist := atr[len(atr)-1-int(atr[1]&0x0F) : len(atr)-1]
		atr = append([]byte{atr[0], atr[1] & 0x0F}, hist...)
	}
	return atr
}

func bug(mutant, name string) bool { return mutant == name }
