package esim

import (
	"bytes"
	"testing"

	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
)

func newCard() *Card {
	return New(device.NewSessions(device.New(store.NewMemory(), device.Config{Seed: []byte("esim")})), bytes.Repeat([]byte{0x89}, 16))
}

func sw(resp []byte) uint16 {
	if len(resp) < 2 {
		return 0
	}
	return uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])
}

func TestChannels(t *testing.T) {
	c := newCard()
	selectSPD := append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(spd.AID))}, spd.AID...)
	state := []byte{0x00, 0xCA, 0xDF, 0x20, 0x00}
	for _, tc := range []struct {
		name string
		cmd  []byte
		want []byte // whole response, or just the status word when 2 bytes
	}{
		{"command on closed channel 1", append([]byte{0x01}, state[1:]...), []byte{0x68, 0x81}},
		{"open", []byte{0x00, 0x70, 0x00, 0x00, 0x01}, []byte{0x01, 0x90, 0x00}},
		{"open without Le", []byte{0x00, 0x70, 0x00, 0x00}, []byte{0x67, 0x00}},
		{"channel 1 has nothing selected", append([]byte{0x01}, state[1:]...), []byte{0x69, 0x85}},
		{"select SPD on channel 1", append([]byte{0x01}, selectSPD[1:]...), nil},
		{"state on channel 1", append([]byte{0x01}, state[1:]...), []byte{0xDF, 0x20, 0x01, 0x00, 0x90, 0x00}},
		{"channel 0 still unselected", state, []byte{0x69, 0x85}},
		{"select ISD-R on channel 0", append([]byte{0x00, 0xA4, 0x04, 0x00, 0x10}, ISDR...), isdrFCI()},
		{"GetEID on channel 0", []byte{0x80, 0xE2, 0x91, 0x00, 0x06, 0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A, 0x00},
			append(append([]byte{0xBF, 0x3E, 0x12, 0x5A, 0x10}, bytes.Repeat([]byte{0x89}, 16)...), 0x90, 0x00)},
		{"secure messaging", []byte{0x0C, 0xCA, 0xDF, 0x20, 0x00}, []byte{0x68, 0x82}},
		{"further class", []byte{0x41, 0xCA, 0xDF, 0x20, 0x00}, []byte{0x68, 0x81}},
		{"close 1", []byte{0x00, 0x70, 0x80, 0x01}, []byte{0x90, 0x00}},
		{"closed again", []byte{0x00, 0x70, 0x80, 0x01}, []byte{0x6A, 0x81}},
		{"close 0", []byte{0x00, 0x70, 0x80, 0x00}, []byte{0x6A, 0x81}},
		{"CLA 90 reaches the application", []byte{0x90, 0xCA, 0xDF, 0x20, 0x00}, []byte{0x6E, 0x00}},
	} {
		got := c.Process(tc.cmd)
		if tc.want == nil && sw(got) != 0x9000 || tc.want != nil && !bytes.Equal(got, tc.want) {
			t.Errorf("%s: % X, want % X", tc.name, got, tc.want)
		}
	}
	c.Reset()
	if got := c.Process(append([]byte{0x01}, state[1:]...)); sw(got) != 0x6881 {
		t.Fatalf("after a warm reset channel 1 answers % X", got)
	}
}

func FuzzProcess(f *testing.F) {
	f.Add([]byte{0x00, 0x70, 0x00, 0x00, 0x01})
	f.Add([]byte{0x01, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01})
	f.Add([]byte{0x80, 0xE2, 0x91, 0x00, 0x06, 0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A, 0x00})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		c := newCard()
		c.Process([]byte{0x00, 0x70, 0x00, 0x00, 0x01})
		if resp := c.Process(cmd); len(resp) < 2 {
			t.Fatalf("% X: no status word (% X)", cmd, resp)
		}
	})
}
