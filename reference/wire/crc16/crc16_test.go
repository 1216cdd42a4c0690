package crc16

import (
	"math/rand/v2"
	"testing"
)

// The check value and further vectors of CRC-16/CCITT-FALSE (the Catalogue
// of parametrised CRC algorithms, CRC-16/IBM-3740).
func TestVectors(t *testing.T) {
	for _, v := range []struct {
		in   string
		want uint16
	}{
		{"123456789", 0x29B1},
		{"", 0xFFFF},
		{"A", 0xB915},
		{"\x00", 0xE1F0},
	} {
		if got := Checksum([]byte(v.in)); got != v.want {
			t.Errorf("Checksum(%q) = %04X, want %04X", v.in, got, v.want)
		}
	}
}

// bitwise is the definition: shift each message bit through the register.
func bitwise(p []byte) uint16 {
	crc := Init
	for _, b := range p {
		crc ^= uint16(b) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ Poly
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestTableMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		if got, want := Checksum(p), bitwise(p); got != want {
			t.Fatalf("len %d: table gives %04X, bit by bit %04X", n, got, want)
		}
		cut := n / 3
		if got := Update(Update(Init, p[:cut]), p[cut:]); got != bitwise(p) {
			t.Fatalf("len %d: Update in two pieces gives %04X, want %04X", n, got, bitwise(p))
		}
	}
}
