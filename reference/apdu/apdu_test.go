package apdu

import (
	"bytes"
	"errors"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	long := bytes.Repeat([]byte{0xAB}, 300)
	tests := []struct {
		name string
		cmd  Command
		wire []byte
		cas  int
	}{
		{"case1", Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00}, []byte{0x00, 0xA4, 0x04, 0x00}, 1},
		{"case2S", Command{CLA: 0x80, INS: 0xCA, P1: 0x9F, P2: 0x36, Ne: 2}, []byte{0x80, 0xCA, 0x9F, 0x36, 0x02}, 2},
		{"case2S Le=256", Command{CLA: 0x00, INS: 0xB0, Ne: 256}, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, 2},
		{"case3S", Command{CLA: 0x00, INS: 0x20, P2: 0x81, Data: []byte{1, 2, 3, 4}}, []byte{0x00, 0x20, 0x00, 0x81, 0x04, 1, 2, 3, 4}, 3},
		{"case4S", Command{CLA: 0x00, INS: 0xA4, P1: 0x04, Data: []byte{0xF0, 0x53}, Ne: 256}, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53, 0x00}, 4},
		{"case2E", Command{CLA: 0x00, INS: 0xB0, Ne: 1000}, []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x03, 0xE8}, 2},
		{"case2E Le=65536", Command{CLA: 0x00, INS: 0xB0, Ne: 65536}, []byte{0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00}, 2},
		{"case3E", Command{CLA: 0x80, INS: 0x50, Data: long}, append([]byte{0x80, 0x50, 0x00, 0x00, 0x00, 0x01, 0x2C}, long...), 3},
		{"case4E", Command{CLA: 0x80, INS: 0x50, Data: long, Ne: 65536}, append(append([]byte{0x80, 0x50, 0x00, 0x00, 0x00, 0x01, 0x2C}, long...), 0x00, 0x00), 4},
		{"case4E forced", Command{CLA: 0x80, INS: 0x50, Data: []byte{7}, Ne: 5, Extended: true}, []byte{0x80, 0x50, 0x00, 0x00, 0x00, 0x00, 0x01, 7, 0x00, 0x05}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cmd.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("Bytes() = % X, want % X", got, tt.wire)
			}
			if c := tt.cmd.Case(); c != tt.cas {
				t.Fatalf("Case() = %d, want %d", c, tt.cas)
			}
			back, err := ParseCommand(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if back.CLA != tt.cmd.CLA || back.INS != tt.cmd.INS || back.P1 != tt.cmd.P1 || back.P2 != tt.cmd.P2 ||
				!bytes.Equal(back.Data, tt.cmd.Data) || back.Ne != tt.cmd.Ne {
				t.Fatalf("ParseCommand = %v, want %v", back, tt.cmd)
			}
		})
	}
}

func TestParseCommandMalformed(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		sw   SW
	}{
		{"empty", nil, SWWrongLength},
		{"three bytes", []byte{0x00, 0xA4, 0x04}, SWWrongLength},
		{"Lc beyond data", []byte{0x00, 0xA4, 0x04, 0x00, 0x05, 1, 2}, SWWrongLength},
		{"trailing bytes", []byte{0x00, 0xA4, 0x04, 0x00, 0x01, 1, 2, 3}, SWWrongLength},
		{"extended truncated", []byte{0x00, 0xA4, 0x04, 0x00, 0x00, 0x01}, SWWrongLength},
		{"extended Lc zero", []byte{0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01}, SWWrongLength},
		{"extended Lc mismatch", []byte{0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x03, 1, 2}, SWWrongLength},
		{"extended Le one byte", []byte{0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x01, 1, 0}, SWWrongLength},
		{"PPS class", []byte{0xFF, 0x10, 0x00, 0x00}, SWClaNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCommand(tt.wire)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseCommand(% X) error = %v, want *ParseError", tt.wire, err)
			}
			if pe.SW != tt.sw {
				t.Fatalf("SW = %v, want %v", pe.SW, tt.sw)
			}
		})
	}
}

func TestCommandTooLong(t *testing.T) {
	if _, err := (Command{Data: make([]byte, 65536)}).Bytes(); err == nil {
		t.Fatal("65536 data bytes encoded without error")
	}
	if _, err := (Command{Ne: 65537}).Bytes(); err == nil {
		t.Fatal("Ne 65537 encoded without error")
	}
}

func TestResponse(t *testing.T) {
	r, err := ParseResponse([]byte{0x01, 0x02, 0x90, 0x00})
	if err != nil || !r.OK() || !bytes.Equal(r.Data, []byte{1, 2}) {
		t.Fatalf("ParseResponse = %+v, %v", r, err)
	}
	if !bytes.Equal(r.Bytes(), []byte{0x01, 0x02, 0x90, 0x00}) {
		t.Fatalf("Bytes() = % X", r.Bytes())
	}
	if _, err := ParseResponse([]byte{0x90}); !errors.Is(err, ErrShortResponse) {
		t.Fatalf("one byte: %v", err)
	}
	if err := (Response{SW: SWAuthBlocked}).Err(); !errors.Is(err, ErrPINBlocked) {
		t.Fatalf("6983 is not ErrPINBlocked: %v", err)
	}
	err = (Response{SW: VerifyFailed(2)}).Err()
	if !errors.Is(err, &SWError{SW: SWVerifyFailed}) || errors.Is(err, ErrPINBlocked) {
		t.Fatalf("63C2 matching: %v", err)
	}
}

func TestSWString(t *testing.T) {
	tests := []struct {
		sw   SW
		want string
	}{
		{SWOK, "9000 (success)"},
		{VerifyFailed(2), "63C2 (verification failed, 2 tries left)"},
		{0x6110, "6110 (16 bytes available)"},
		{0x6C08, "6C08 (wrong Le, exact length 8)"},
		{SWAuthBlocked, "6983 (authentication method blocked)"},
		{0x9123, "9123"},
	}
	for _, tt := range tests {
		if got := tt.sw.String(); got != tt.want {
			t.Errorf("%04X.String() = %q, want %q", uint16(tt.sw), got, tt.want)
		}
	}
	if n, ok := VerifyFailed(99).TriesLeft(); !ok || n != 15 {
		t.Errorf("VerifyFailed(99) = %v", VerifyFailed(99))
	}
}

// FuzzParseCommand checks that no input panics and that every accepted
// command re-encodes to bytes that parse to the same command.
func FuzzParseCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCommand(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		enc, err := c.Bytes()
		if err != nil {
			t.Fatalf("accepted command does not encode: %v", err)
		}
		back, err := ParseCommand(enc)
		if err != nil {
			t.Fatalf("re-encoded % X does not parse: %v", enc, err)
		}
		if back.CLA != c.CLA || back.INS != c.INS || back.P1 != c.P1 || back.P2 != c.P2 || !bytes.Equal(back.Data, c.Data) || back.Ne != c.Ne {
			t.Fatalf("round trip changed %v to %v", c, back)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Bytes(), b) {
			t.Fatalf("round trip % X -> % X", b, r.Bytes())
		}
	})
}
