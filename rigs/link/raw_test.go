package link

import (
	"bytes"
	"context"
	"testing"
)

// chainCard answers any command but GET RESPONSE with 3 bytes and 6102,
// and GET RESPONSE with the 2 bytes left and 9000 (SPD-APP-5 chaining).
type chainCard struct{ got [][]byte }

func (c *chainCard) Process(cmd []byte) []byte {
	c.got = append(c.got, append([]byte(nil), cmd...))
	if len(cmd) >= 2 && cmd[1] == 0xC0 {
		return []byte{0xDD, 0xEE, 0x90, 0x00}
	}
	return []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02}
}

func TestDirectExchangeRaw(t *testing.T) {
	ctx := context.Background()
	card := &chainCard{}
	d := NewDirect(card, "chain", nil)
	cmd := []byte{0x00, 0xCA, 0xDF, 0x11, 0x03}
	resp, err := d.ExchangeRaw(ctx, cmd)
	if err != nil || !bytes.Equal(resp, []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02}) {
		t.Fatalf("ExchangeRaw = %X, %v; want the first part and 6102 as the card answered", resp, err)
	}
	if len(card.got) != 1 {
		t.Fatalf("ExchangeRaw sent %d commands, want 1", len(card.got))
	}
	resp, err = d.Exchange(ctx, cmd)
	if err != nil || !bytes.Equal(resp, []byte{0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x90, 0x00}) {
		t.Fatalf("Exchange = %X, %v; want the whole response", resp, err)
	}
	if len(card.got) != 3 || !bytes.Equal(card.got[2], []byte{0x00, 0xC0, 0x00, 0x00, 0x02}) {
		t.Fatalf("Exchange sent %X, want the command and GET RESPONSE Le 02", card.got[1:])
	}
	d.Close()
	if _, err := d.ExchangeRaw(ctx, cmd); err != ErrClosed {
		t.Fatalf("ExchangeRaw after Close: %v", err)
	}
}

func TestComposeRawAbility(t *testing.T) {
	d := NewDirect(&chainCard{}, "chain", nil)
	if a := AbilitiesOf(wrap{bare{}}); a.Raw != nil {
		t.Fatal("a bare link exchanges raw")
	}
	a := AbilitiesOf(wrap{d})
	if a.Raw == nil {
		t.Fatal("AbilitiesOf misses Direct's raw exchange under a wrapper")
	}
	for _, tt := range []struct {
		a             Abilities
		rs, pc, at, x bool
	}{
		{Abilities{Raw: d}, false, false, false, true},
		{Abilities{Resetter: d, Raw: d}, true, false, false, true},
		{Abilities{PowerCycler: d, ATRer: d, Raw: d}, false, true, true, true},
		{Abilities{Resetter: d, PowerCycler: d, ATRer: d}, true, true, true, false},
		{a, true, true, true, true},
	} {
		l := Compose(wrap{bare{}}, tt.a)
		_, rs := l.(Resetter)
		_, pc := l.(PowerCycler)
		_, at := l.(ATRer)
		_, x := l.(RawExchanger)
		if rs != tt.rs || pc != tt.pc || at != tt.at || x != tt.x {
			t.Errorf("Compose(%+v): Resetter %v, PowerCycler %v, ATRer %v, RawExchanger %v", tt.a, rs, pc, at, x)
		}
	}
}
