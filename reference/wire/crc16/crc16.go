// Package crc16 is CRC-16/CCITT-FALSE, the check sequence of every spdlab
// wire format that carries one: the serial-line frame, the SD channel block
// and the EMV merchant-presented QR code (tag 63).
//
// Parameters, as the Catalogue of parametrised CRC algorithms names them
// (CRC-16/IBM-3740, alias CRC-16/CCITT-FALSE):
//
//	width  poly    init    refin  refout  xorout  check (over "123456789")
//	16     0x1021  0xFFFF  false  false   0x0000  0x29B1
//
// It sits under reference/ because the reference merchant code needs it and
// reference imports neither rigs nor emulator; the rigs and the emulators
// import it from here.
package crc16

// Init is the register value before the first byte.
const Init uint16 = 0xFFFF

// Poly is the generator polynomial, without its x^16 term.
const Poly uint16 = 0x1021

var table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ Poly
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// Update returns the register after feeding p to a register holding crc.
// Checksum(a+b) == Update(Update(Init, a), b).
func Update(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc = crc<<8 ^ table[byte(crc>>8)^b]
	}
	return crc
}

// Checksum returns the CRC-16/CCITT-FALSE of p.
func Checksum(p []byte) uint16 { return Update(Init, p) }
