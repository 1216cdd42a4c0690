package link

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// scripted is a card that answers from a list and records what it got.
type scripted struct {
	answers [][]byte
	sent    [][]byte
}

func (s *scripted) send(_ context.Context, cmd []byte) ([]byte, error) {
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
			got, err := Resolve(context.Background(), card.send, tt.command)
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
	endless := func(context.Context, []byte) ([]byte, error) { return []byte{0xAA, 0x61, 0x01}, nil }
	if _, err := Resolve(context.Background(), endless, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}); err == nil {
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

// FuzzResolve answers a command with arbitrary card responses (split at
// every 0xFF byte): Resolve must never panic, never send more than the
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
		resp, err := Resolve(context.Background(), card.send, command)
		if len(card.sent) > MaxGetResponse+2 {
			t.Fatalf("%d commands sent", len(card.sent))
		}
		if err == nil && len(resp) >= 2 && resp[len(resp)-2] == 0x61 {
			t.Fatalf("61xx left unresolved: % X", resp)
		}
	})
}

func TestWithLe(t *testing.T) {
	tests := []struct {
		name    string
		command []byte
		want    []byte // nil: refused
	}{
		{"case 1", []byte{0x00, 0xCA, 0x9F, 0x36}, []byte{0x00, 0xCA, 0x9F, 0x36, 0x07}},
		{"case 2", []byte{0x00, 0xB0, 0x00, 0x00, 0x20}, []byte{0x00, 0xB0, 0x00, 0x00, 0x07}},
		{"case 3", []byte{0x80, 0x10, 0x00, 0x00, 0x02, 0xAA, 0xBB}, []byte{0x80, 0x10, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x07}},
		{"case 4", []byte{0x80, 0x10, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x00}, []byte{0x80, 0x10, 0x00, 0x00, 0x02, 0xAA, 0xBB, 0x07}},
		{"extended", []byte{0x80, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAA}, nil},
		{"Lc disagrees", []byte{0x80, 0x10, 0x00, 0x00, 0x05, 0xAA}, nil},
		{"shorter than a header", []byte{0x80, 0x10}, nil},
	}
	for _, tt := range tests {
		got, ok := withLe(tt.command, 0x07)
		if ok != (tt.want != nil) || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: withLe(% X) = % X %v, want % X", tt.name, tt.command, got, ok, tt.want)
		}
	}
}
