package link

import (
	"context"
	"fmt"
)

// MaxGetResponse bounds the GET RESPONSE rounds Resolve sends for one
// command: 256 rounds of up to 256 bytes cover the largest extended
// response.
const MaxGetResponse = 256

// Resolve sends command with send and resolves the transport-level status
// words of ISO/IEC 7816-4 (5.3.4 and 5.4.1) before the caller sees them:
//
//	SW      meaning                        what Resolve does
//	61xx    xx more bytes available        GET RESPONSE (CLA C0 00 00 xx), append, repeat
//	6Cxx    wrong Le, exact length is xx   resend the command once with Le = xx
//
// xx = 00 means 256. The result is the whole response data with the last
// status word. Every Link honours this contract (see Link.Exchange): a
// transport whose device may answer 61xx or 6Cxx calls Resolve around its
// own single exchange, so no caller above a link resolves them again.
func Resolve(ctx context.Context, send func(ctx context.Context, command []byte) ([]byte, error), command []byte) ([]byte, error) {
	resp, err := send(ctx, command)
	if err != nil {
		return nil, err
	}
	if sw1, sw2, ok := statusWord(resp); ok && sw1 == 0x6C {
		if again, ok := withLe(command, sw2); ok {
			if resp, err = send(ctx, again); err != nil {
				return nil, err
			}
		}
	}
	var cla byte
	if len(command) > 0 {
		cla = command[0]
	}
	var data []byte
	for round := 0; ; round++ {
		sw1, sw2, ok := statusWord(resp)
		if !ok {
			return nil, fmt.Errorf("link: device answered %d bytes, shorter than a status word", len(resp))
		}
		if sw1 != 0x61 {
			if data == nil {
				return resp, nil
			}
			return append(data, resp...), nil
		}
		if round == MaxGetResponse {
			return nil, fmt.Errorf("link: device still answers 61%02X after %d GET RESPONSE rounds", sw2, round)
		}
		data = append(data, resp[:len(resp)-2]...)
		if resp, err = send(ctx, getResponse(cla, sw2)); err != nil {
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

// withLe returns a short command APDU with its Le set to le (00 meaning
// 256), or false when command is not a well-formed short APDU (6Cxx
// belongs to short Le fields):
//
//	case 1  CLA INS P1 P2              Le appended
//	case 2  CLA INS P1 P2 Le           Le replaced
//	case 3  CLA INS P1 P2 Lc data      Le appended
//	case 4  CLA INS P1 P2 Lc data Le   Le replaced
func withLe(command []byte, le byte) ([]byte, bool) {
	out := append([]byte(nil), command...)
	switch n := len(command); {
	case n < 4:
		return nil, false
	case n == 4:
		return append(out, le), true
	case n == 5:
		out[4] = le
		return out, true
	case command[4] == 0:
		return nil, false // extended length
	case n == 5+int(command[4]):
		return append(out, le), true
	case n == 6+int(command[4]):
		out[n-1] = le
		return out, true
	}
	return nil, false
}
