//go:build cgo

package pcsc

import (
	"fmt"

	"github.com/spdlab/spdlab/reference/apdu"
)

// maxGetResponse bounds the GET RESPONSE rounds for one command: 256 rounds
// of up to 256 bytes cover the largest extended response.
const maxGetResponse = 256

// transmitFunc sends one APDU to the card and returns its raw answer.
type transmitFunc func(command []byte) ([]byte, error)

// resolve sends command and resolves the transport-level status words of
// ISO/IEC 7816-4 clause 5.3.4 (T=0 style procedure words that many readers
// and cards pass up through PC/SC):
//
//	SW      meaning                        what resolve does
//	61xx    xx more bytes available        GET RESPONSE (00 C0 00 00 xx), append, repeat
//	6Cxx    wrong Le, exact length is xx   resend the command once with Le = xx
//
// xx = 00 means 256. The caller sees the final response with all data.
func resolve(transmit transmitFunc, command []byte) ([]byte, error) {
	resp, err := transmit(command)
	if err != nil {
		return nil, err
	}
	if sw1, sw2, ok := statusWord(resp); ok && sw1 == 0x6C {
		if again, ok := withLe(command, sw2); ok {
			if resp, err = transmit(again); err != nil {
				return nil, err
			}
		}
	}
	var data []byte
	for round := 0; ; round++ {
		sw1, sw2, ok := statusWord(resp)
		if !ok {
			return nil, fmt.Errorf("pcsc: card answered %d bytes, shorter than a status word", len(resp))
		}
		if sw1 != 0x61 {
			if data == nil {
				return resp, nil
			}
			return append(data, resp...), nil
		}
		if round == maxGetResponse {
			return nil, fmt.Errorf("pcsc: card still answers 61%02X after %d GET RESPONSE rounds", sw2, round)
		}
		data = append(data, resp[:len(resp)-2]...)
		if resp, err = transmit(getResponse(command[0], sw2)); err != nil {
			return nil, err
		}
	}
}

func statusWord(resp []byte) (sw1, sw2 byte, ok bool) {
	if len(resp) < 2 {
		return 0, 0, false
	}
	return resp[len(resp)-2], resp[len(resp)-1], true
}

// getResponse builds GET RESPONSE with the logical channel of cla kept
// (ISO/IEC 7816-4 5.4.1: b1-b2 in the first interindustry class, b1-b4 in
// the further one).
func getResponse(cla, le byte) []byte {
	gr := byte(0x00)
	switch {
	case cla&0x80 != 0 && cla&0x40 != 0: // proprietary C0-FF: no channel to keep
	case cla&0x40 != 0:
		gr = 0x40 | cla&0x0F
	default:
		gr = cla & 0x03
	}
	return []byte{gr, 0xC0, 0x00, 0x00, le}
}

// withLe returns command with its Le set to le (00 meaning 256), or false
// when command does not parse as an APDU.
func withLe(command []byte, le byte) ([]byte, bool) {
	c, err := apdu.ParseCommand(command)
	if err != nil {
		return nil, false
	}
	c.Ne = int(le)
	if c.Ne == 0 {
		c.Ne = apdu.MaxShortLe
	}
	b, err := c.Bytes()
	if err != nil {
		return nil, false
	}
	return b, true
}
