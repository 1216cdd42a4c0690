package scenarios

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
)

// partsCard hands out parts (a DF04 object of 8 bytes in parts of 3
// bytes) with the 61xx counts counts[i] for the ith part, the last 9000.
type partsCard struct {
	counts []byte
	sent   int
}

func (c *partsCard) Process(cmd []byte) []byte {
	whole := []byte{0xDF, 0x04, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}
	if len(cmd) < 2 || cmd[1] != 0xC0 {
		c.sent = 0
	}
	if c.sent >= len(whole) {
		return []byte{0x69, 0x85}
	}
	end := min(c.sent+3, len(whole))
	part := append([]byte(nil), whole[c.sent:end]...)
	i := c.sent / 3
	c.sent = end
	if end == len(whole) {
		return append(part, 0x90, 0x00)
	}
	return append(part, 0x61, c.counts[i])
}

// The twin follows raw exchanges: it checks each part and 61xx count of
// the device against the whole, and compares the whole with its twin's.
func TestTwinRawExchanges(t *testing.T) {
	ctx := context.Background()
	get := []byte{0x00, 0xCA, 0xDF, 0x04, 0x03}
	gr := []byte{0x00, 0xC0, 0x00, 0x00, 0x03}
	for _, tc := range []struct {
		name     string
		dut, ref []byte
		why      string
	}{
		{"same", []byte{8, 5, 2}, []byte{8, 5, 2}, ""},
		{"count", []byte{8, 7, 2}, []byte{8, 5, 2}, "part 2 ends 6107, but 5 bytes remained (6105)"},
	} {
		dut := link.NewDirect(&partsCard{counts: tc.dut}, "dut", nil)
		ref := link.NewDirect(&partsCard{counts: tc.ref}, "ref", nil)
		l := &twinLink{dut: dut, ref: ref, diff: &differential{}, tokens: map[string][]byte{}, dutRaw: dut}
		for _, cmd := range [][]byte{get, gr, gr, gr} {
			if _, err := (twinRaw{l}).ExchangeRaw(ctx, cmd); err != nil {
				t.Fatal(err)
			}
		}
		found := l.diff.found
		switch {
		case tc.why == "" && len(found) > 0:
			t.Errorf("%s: divergence %v", tc.name, found)
		case tc.why != "" && (len(found) != 1 || !strings.Contains(found[0].Why, tc.why)):
			t.Errorf("%s: divergences %v, want %q", tc.name, found, tc.why)
		}
	}
}

// A feature gate holds raw exchanges to the ICS as it holds exchanges, and
// offers one only over a link that has it.
func TestGateRawExchanges(t *testing.T) {
	d, err := NewDUTDriver([]string{"ref"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Profile().Has(ESIM) {
		t.Skip("the reference statement declares esim")
	}
	g := gated(link.NewDirect(&partsCard{}, "parts", nil), d)
	raw, ok := g.(link.RawExchanger)
	if !ok {
		t.Fatal("a gated Direct cannot exchange raw")
	}
	if _, err := raw.ExchangeRaw(context.Background(), []byte{0x00, 0x70, 0x00, 0x00, 0x01}); !errors.Is(err, errUndeclared) {
		t.Fatalf("raw MANAGE CHANNEL through the gate of a device without esim: %v", err)
	}
	if _, ok := gated(struct{ link.Link }{link.NewDirect(&partsCard{}, "parts", nil)}, d).(link.RawExchanger); ok {
		t.Fatal("the gate claims a raw exchange its link lacks")
	}
}
