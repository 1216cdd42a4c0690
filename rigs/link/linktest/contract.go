// Package linktest is the contract every link.Link keeps, as a test each
// transport runs (Contract) against a device application with a fixed
// script (ContractCard): 61xx and 6Cxx resolved below the link, responses
// whole and byte for byte, link.ErrClosed after Close; and, for a link
// that has one, a raw exchange (link.RawExchanger) that resolves nothing. Recording and
// playing back what crosses a link is package rigs/link/record.
package linktest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
)

// ContractCard is the device application the link contract runs against.
// It answers a fixed script that exercises what every transport must
// resolve below its Link:
//
//	command         first answer                    then
//	80 01 00 00 00  200 bytes, 61 64                GET RESPONSE (00 C0 00 00 64): 100 bytes, 9000
//	80 02 00 00 10  6C 04                           80 02 00 00 04: 4 bytes, 9000
//	80 03 00 00     9000
//	anything else   6D00 (GET RESPONSE with nothing pending: 6985)
//
// It satisfies link.Processor and link.PowerController, so an emulator or
// link.NewDirect can serve it.
type ContractCard struct {
	mu      sync.Mutex
	pending []byte
	seen    [][]byte
}

// ContractLong is the whole response data of 80 01 00 00 00.
var ContractLong = func() []byte {
	b := make([]byte, 300)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}()

// ContractShort is the response data of 80 02 00 00 04.
var ContractShort = []byte{0xC0, 0xFF, 0xEE, 0x42}

// Process implements link.Processor.
func (c *ContractCard) Process(command []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, bytes.Clone(command))
	pending := c.pending
	c.pending = nil
	switch {
	case bytes.Equal(command, []byte{0x00, 0xC0, 0x00, 0x00, 0x64}) && pending != nil:
		return append(bytes.Clone(pending), 0x90, 0x00)
	case len(command) >= 2 && command[0] == 0x00 && command[1] == 0xC0:
		return []byte{0x69, 0x85}
	case bytes.Equal(command, []byte{0x80, 0x01, 0x00, 0x00, 0x00}):
		c.pending = ContractLong[200:]
		return append(bytes.Clone(ContractLong[:200]), 0x61, 0x64)
	case bytes.Equal(command, []byte{0x80, 0x02, 0x00, 0x00, 0x04}):
		return append(bytes.Clone(ContractShort), 0x90, 0x00)
	case len(command) == 5 && bytes.Equal(command[:4], []byte{0x80, 0x02, 0x00, 0x00}):
		return []byte{0x6C, 0x04}
	case bytes.Equal(command, []byte{0x80, 0x03, 0x00, 0x00}):
		return []byte{0x90, 0x00}
	}
	return []byte{0x6D, 0x00}
}

// PowerOn implements link.PowerController.
func (c *ContractCard) PowerOn() { c.Reset() }

// PowerOff implements link.PowerController.
func (c *ContractCard) PowerOff() { c.Reset() }

// Reset implements link.PowerController.
func (c *ContractCard) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = nil
}

// Seen returns the commands the card received, in order.
func (c *ContractCard) Seen() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.seen...)
}

var (
	_ link.Processor       = (*ContractCard)(nil)
	_ link.PowerController = (*ContractCard)(nil)
)

// Contract checks that the links open returns keep the Link contract of
// rigs/link with a ContractCard behind them: 61xx and 6Cxx never reach the
// caller (link.Resolve), responses come back whole and byte for byte, and
// a closed link fails every exchange with link.ErrClosed. open is called
// once per subtest with a fresh card; the link it returns is closed by
// Contract.
func Contract(t *testing.T, open func(t *testing.T, card *ContractCard) link.Link) {
	t.Helper()
	exchange := func(t *testing.T, l link.Link, command []byte) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := l.Exchange(ctx, command)
		if err != nil {
			t.Fatalf("%s: Exchange(% X): %v", l, command, err)
		}
		return resp
	}
	t.Run("61xx resolved with GET RESPONSE", func(t *testing.T) {
		card := &ContractCard{}
		l := open(t, card)
		defer l.Close()
		got := exchange(t, l, []byte{0x80, 0x01, 0x00, 0x00, 0x00})
		if want := append(bytes.Clone(ContractLong), 0x90, 0x00); !bytes.Equal(got, want) {
			t.Fatalf("%s answered %d bytes ending % X, want the %d data bytes and 9000", l, len(got), got[max(len(got)-4, 0):], len(ContractLong))
		}
	})
	t.Run("6Cxx resolved by resending with Le", func(t *testing.T) {
		card := &ContractCard{}
		l := open(t, card)
		defer l.Close()
		got := exchange(t, l, []byte{0x80, 0x02, 0x00, 0x00, 0x10})
		if want := append(bytes.Clone(ContractShort), 0x90, 0x00); !bytes.Equal(got, want) {
			t.Fatalf("%s answered % X, want % X", l, got, want)
		}
	})
	t.Run("other status words pass unchanged", func(t *testing.T) {
		card := &ContractCard{}
		l := open(t, card)
		defer l.Close()
		if got := exchange(t, l, []byte{0x80, 0x03, 0x00, 0x00}); !bytes.Equal(got, []byte{0x90, 0x00}) {
			t.Fatalf("%s answered % X, want 90 00", l, got)
		}
		if got := exchange(t, l, []byte{0x00, 0xC0, 0x00, 0x00, 0x10}); !bytes.Equal(got, []byte{0x69, 0x85}) {
			t.Fatalf("%s answered GET RESPONSE with nothing pending with % X, want 69 85", l, got)
		}
	})
	t.Run("raw exchange leaves 61xx and 6Cxx to the caller", func(t *testing.T) {
		card := &ContractCard{}
		l := open(t, card)
		defer l.Close()
		raw, ok := link.As[link.RawExchanger](l)
		if !ok {
			t.Skipf("%s has no raw exchange (link.RawExchanger)", l)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmds := [][]byte{{0x80, 0x01, 0x00, 0x00, 0x00}, {0x00, 0xC0, 0x00, 0x00, 0x64}, {0x80, 0x02, 0x00, 0x00, 0x10}}
		wants := [][]byte{
			append(bytes.Clone(ContractLong[:200]), 0x61, 0x64),
			append(bytes.Clone(ContractLong[200:]), 0x90, 0x00),
			{0x6C, 0x04},
		}
		before := len(card.Seen())
		for i, cmd := range cmds {
			got, err := raw.ExchangeRaw(ctx, cmd)
			if err != nil {
				t.Fatalf("%s: ExchangeRaw(% X): %v", l, cmd, err)
			}
			if !bytes.Equal(got, wants[i]) {
				t.Fatalf("%s: ExchangeRaw(% X) answered %d bytes ending % X, want %d ending % X", l, cmd, len(got), got[max(len(got)-4, 0):], len(wants[i]), wants[i][max(len(wants[i])-4, 0):])
			}
		}
		if seen := card.Seen()[before:]; len(seen) != len(cmds) {
			t.Fatalf("%s: %d raw exchanges sent the card %d commands", l, len(cmds), len(seen))
		}
	})
	t.Run("closed link fails with ErrClosed", func(t *testing.T) {
		card := &ContractCard{}
		l := open(t, card)
		if err := l.Close(); err != nil {
			t.Fatalf("%s: Close: %v", l, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := l.Exchange(ctx, []byte{0x80, 0x03, 0x00, 0x00}); !errors.Is(err, link.ErrClosed) {
			t.Fatalf("%s: Exchange after Close = %v, want link.ErrClosed", l, err)
		}
	})
}
