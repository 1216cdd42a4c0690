//go:build cgo

package pcsc

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ebfe/scard"

	"github.com/spdlab/spdlab/rigs/link"
)

// scripted is a card that answers from a list and records what it got.
type scripted struct {
	answers [][]byte
	sent    [][]byte
}

func (s *scripted) transmit(cmd []byte) ([]byte, error) {
	s.sent = append(s.sent, append([]byte(nil), cmd...))
	if len(s.answers) == 0 {
		return nil, errors.New("no more answers")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		command []byte
		answers [][]byte
		want    []byte
		sent    [][]byte
	}{
		{
			name:    "plain",
			command: []byte{0x00, 0xA4, 0x04, 0x00},
			answers: [][]byte{{0x90, 0x00}},
			want:    []byte{0x90, 0x00},
			sent:    [][]byte{{0x00, 0xA4, 0x04, 0x00}},
		},
		{
			name:    "61xx twice",
			command: []byte{0x80, 0x12, 0x00, 0x00, 0x00},
			answers: [][]byte{{1, 2, 0x61, 0x03}, {3, 4, 5, 0x61, 0x00}, {6, 0x90, 0x00}},
			want:    []byte{1, 2, 3, 4, 5, 6, 0x90, 0x00},
			sent:    [][]byte{{0x80, 0x12, 0x00, 0x00, 0x00}, {0x00, 0xC0, 0x00, 0x00, 0x03}, {0x00, 0xC0, 0x00, 0x00, 0x00}},
		},
		{
			name:    "61xx ends in an error",
			command: []byte{0x00, 0xB0, 0x00, 0x00, 0x00},
			answers: [][]byte{{1, 0x61, 0x02}, {0x6A, 0x82}},
			want:    []byte{1, 0x6A, 0x82},
			sent:    [][]byte{{0x00, 0xB0, 0x00, 0x00, 0x00}, {0x00, 0xC0, 0x00, 0x00, 0x02}},
		},
		{
			name:    "6Cxx resends with Le",
			command: []byte{0x00, 0xB0, 0x00, 0x00, 0x20},
			answers: [][]byte{{0x6C, 0x08}, {1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00}},
			want:    []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00},
			sent:    [][]byte{{0x00, 0xB0, 0x00, 0x00, 0x20}, {0x00, 0xB0, 0x00, 0x00, 0x08}},
		},
		{
			name:    "6Cxx on a case 1 command adds Le",
			command: []byte{0x00, 0xCA, 0x9F, 0x36},
			answers: [][]byte{{0x6C, 0x02}, {0x00, 0x07, 0x90, 0x00}},
			want:    []byte{0x00, 0x07, 0x90, 0x00},
			sent:    [][]byte{{0x00, 0xCA, 0x9F, 0x36}, {0x00, 0xCA, 0x9F, 0x36, 0x02}},
		},
		{
			name:    "6Cxx then 61xx",
			command: []byte{0x00, 0xB0, 0x00, 0x00, 0x01},
			answers: [][]byte{{0x6C, 0x04}, {1, 2, 0x61, 0x02}, {3, 4, 0x90, 0x00}},
			want:    []byte{1, 2, 3, 4, 0x90, 0x00},
			sent:    [][]byte{{0x00, 0xB0, 0x00, 0x00, 0x01}, {0x00, 0xB0, 0x00, 0x00, 0x04}, {0x00, 0xC0, 0x00, 0x00, 0x02}},
		},
		{
			name:    "6Cxx only once",
			command: []byte{0x00, 0xB0, 0x00, 0x00, 0x01},
			answers: [][]byte{{0x6C, 0x04}, {0x6C, 0x05}},
			want:    []byte{0x6C, 0x05},
			sent:    [][]byte{{0x00, 0xB0, 0x00, 0x00, 0x01}, {0x00, 0xB0, 0x00, 0x00, 0x04}},
		},
		{
			name:    "GET RESPONSE keeps the logical channel",
			command: []byte{0x03, 0xB0, 0x00, 0x00, 0x00},
			answers: [][]byte{{0x61, 0x01}, {9, 0x90, 0x00}},
			want:    []byte{9, 0x90, 0x00},
			sent:    [][]byte{{0x03, 0xB0, 0x00, 0x00, 0x00}, {0x03, 0xC0, 0x00, 0x00, 0x01}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card := &scripted{answers: tt.answers}
			got, err := resolve(card.transmit, tt.command)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("response % X, want % X", got, tt.want)
			}
			if len(card.sent) != len(tt.sent) {
				t.Fatalf("sent % X, want % X", card.sent, tt.sent)
			}
			for i := range tt.sent {
				if !bytes.Equal(card.sent[i], tt.sent[i]) {
					t.Errorf("command %d = % X, want % X", i, card.sent[i], tt.sent[i])
				}
			}
		})
	}
}

func TestResolveEndlessChain(t *testing.T) {
	endless := func([]byte) ([]byte, error) { return []byte{0xAA, 0x61, 0x01}, nil }
	if _, err := resolve(endless, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}); err == nil {
		t.Fatal("a card answering 61xx for ever was followed for ever")
	}
}

func TestGetResponseClass(t *testing.T) {
	tests := []struct{ cla, want byte }{
		{0x00, 0x00}, {0x01, 0x01}, {0x0C, 0x00}, {0x80, 0x00}, {0x83, 0x03},
		{0x40, 0x40}, {0x4F, 0x4F}, {0x65, 0x45}, {0xC1, 0x00}, {0xE3, 0x00},
	}
	for _, tt := range tests {
		if got := getResponse(tt.cla, 0x10)[0]; got != tt.want {
			t.Errorf("GET RESPONSE after CLA %02X has CLA %02X, want %02X", tt.cla, got, tt.want)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		in   scard.Error
		is   error
		text string
	}{
		{scard.ErrNoService, ErrNoService, "pcsc: cannot reach pcscd (is the pcscd service running?"},
		{scard.ErrServiceStopped, ErrNoService, "pcsc: cannot reach pcscd"},
		{scard.ErrNoReadersAvailable, ErrNoReader, "no reader attached"},
		{scard.ErrUnknownReader, ErrNoReader, "pcsc: no such reader"},
		{scard.ErrNoSmartcard, link.ErrNoCard, "no card present"},
		{scard.ErrRemovedCard, link.ErrRemoved, "removed"},
		{scard.ErrNotTransacted, link.ErrRemoved, "removed"},
		{scard.ErrUnresponsiveCard, link.ErrRemoved, "removed"},
		{scard.ErrSharingViolation, scard.ErrSharingViolation, "exclusive use by another program"},
		{scard.ErrInvalidParameter, scard.ErrInvalidParameter, "pcsc"},
	}
	for _, tt := range tests {
		err := wrap(tt.in, "Virtual PCD 00 00")
		if tt.is != scard.ErrSharingViolation && !errors.Is(err, tt.is) {
			t.Errorf("wrap(%v) = %v, want it to match %v", tt.in, err, tt.is)
		}
		if !strings.Contains(err.Error(), tt.text) {
			t.Errorf("wrap(%v) = %q, want it to say %q", tt.in, err, tt.text)
		}
	}
}

// FuzzResolve answers a command with arbitrary card responses (split at
// every 0xFF byte): resolve must never panic, never send more than the
// bounded number of GET RESPONSEs, and return either an error or the last
// response's status word at the end.
func FuzzResolve(f *testing.F) {
	f.Add([]byte{0x00, 0xB0, 0x00, 0x00, 0x00}, []byte{1, 0x61, 0x02, 0xFF, 2, 3, 0x90, 0x00})
	f.Add([]byte{0x00, 0xB0, 0x00, 0x00, 0x10}, []byte{0x6C, 0x04, 0xFF, 1, 2, 3, 4, 0x90, 0x00})
	f.Add([]byte{0x00, 0xA4}, []byte{0x61})
	f.Fuzz(func(t *testing.T, command, answers []byte) {
		if len(command) == 0 {
			return
		}
		card := &scripted{answers: bytes.Split(answers, []byte{0xFF})}
		resp, err := resolve(card.transmit, command)
		if len(card.sent) > maxGetResponse+2 {
			t.Fatalf("%d commands sent", len(card.sent))
		}
		if err == nil && len(resp) >= 2 && resp[len(resp)-2] == 0x61 {
			t.Fatalf("61xx left unresolved: % X", resp)
		}
	})
}
