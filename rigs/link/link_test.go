package link

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// counterCard answers every command with a running count and 9000, and
// goes mute (nil) when mute is set, the way a torn device does.
type counterCard struct {
	n        byte
	mute     bool
	powered  bool
	resets   int
	powerOns int
}

func (c *counterCard) Process(cmd []byte) []byte {
	if c.mute {
		return nil
	}
	c.n++
	return []byte{c.n, 0x90, 0x00}
}
func (c *counterCard) PowerOn()  { c.powered = true; c.powerOns++ }
func (c *counterCard) PowerOff() { c.powered = false }
func (c *counterCard) Reset()    { c.resets++ }

func TestDirect(t *testing.T) {
	card := &counterCard{}
	atr := []byte{0x3B, 0x00}
	d := NewDirect(card, "ref", atr)
	if !card.powered {
		t.Fatal("NewDirect did not power the card on")
	}
	ctx := context.Background()
	resp, err := d.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00})
	if err != nil || !bytes.Equal(resp, []byte{1, 0x90, 0x00}) {
		t.Fatalf("Exchange = % X, %v", resp, err)
	}
	if got, _ := d.Reset(ctx, false); !bytes.Equal(got, atr) || card.resets != 1 {
		t.Fatalf("warm reset: atr % X, resets %d", got, card.resets)
	}
	if _, err := d.Reset(ctx, true); err != nil || card.powerOns != 2 {
		t.Fatalf("cold reset: %v, power-ons %d", err, card.powerOns)
	}
	card.mute = true
	if _, err := d.Exchange(ctx, []byte{0, 0, 0, 0}); !errors.Is(err, ErrRemoved) {
		t.Fatalf("mute card: %v, want ErrRemoved", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.Exchange(cctx, []byte{0, 0, 0, 0}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	d.Close()
	if _, err := d.Exchange(ctx, []byte{0, 0, 0, 0}); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed link: %v", err)
	}
	if d.String() != "ref" {
		t.Fatalf("String() = %q", d.String())
	}
}

// gate wraps a link and claims none of its abilities.
type gate struct{ Link }

func (g gate) Unwrap() Link { return g.Link }

func TestAsFindsAbilitiesUnderWrappers(t *testing.T) {
	d := NewDirect(&counterCard{}, "direct", []byte{0x3B, 0x00})
	wrapped := gate{gate{d}}
	if _, ok := wrapped.Link.(PowerCycler); ok {
		t.Fatal("the test gate claims power control itself")
	}
	pc, ok := As[PowerCycler](wrapped)
	if !ok || pc != PowerCycler(d) {
		t.Fatalf("As[PowerCycler] through two gates = %v, %v; want the Direct link", pc, ok)
	}
	if _, ok := As[Limits](wrapped); ok {
		t.Fatal("As[Limits] found an ability no link in the chain has")
	}
}
