package linktest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
)

// The commands of Script, and the answers ScriptCard gives them.
var (
	// ScriptAID is the SPD application's identifier (SPEC.md).
	ScriptAID = []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}
	// ScriptATR is the ATR of the link.Direct a recording test puts
	// ScriptCard behind.
	ScriptATR = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
	// ScriptSelect selects ScriptAID; ScriptCard answers ScriptFCI.
	ScriptSelect = append(append([]byte{0x00, 0xA4, 0x04, 0x00, 0x08}, ScriptAID...), 0x00)
	ScriptFCI    = append(append([]byte{0x6F, 0x0A, 0x84, 0x08}, ScriptAID...), 0x90, 0x00)
	// ScriptEcho: ScriptCard answers its data, CA FE, and 9000.
	ScriptEcho = []byte{0x80, 0x10, 0x00, 0x00, 0x02, 0xCA, 0xFE}
	// ScriptTear: ScriptCard loses power while it runs (no answer).
	ScriptTear = []byte{0x80, 0x30, 0x00, 0x00}
)

// ScriptCard is the device application behind Script: it answers SELECT of
// ScriptAID with ScriptFCI (any other SELECT with 6A82), echoes the data of
// 80 10 with 9000, loses power during 80 30 (a tear: no answer) and
// answers anything else 6D00. It counts its power-ons.
type ScriptCard struct {
	mu       sync.Mutex
	powerOns int
}

var (
	_ link.Processor       = (*ScriptCard)(nil)
	_ link.PowerController = (*ScriptCard)(nil)
)

// Process implements link.Processor.
func (c *ScriptCard) Process(cmd []byte) []byte {
	switch {
	case bytes.Equal(cmd, ScriptSelect):
		return bytes.Clone(ScriptFCI)
	case len(cmd) >= 2 && cmd[1] == 0xA4:
		return []byte{0x6A, 0x82}
	case len(cmd) >= 5 && cmd[0] == 0x80 && cmd[1] == 0x10:
		return append(bytes.Clone(cmd[5:]), 0x90, 0x00)
	case len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == 0x30:
		return nil
	}
	return []byte{0x6D, 0x00}
}

// PowerOn implements link.PowerController.
func (c *ScriptCard) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOns++
}

// PowerOff implements link.PowerController.
func (c *ScriptCard) PowerOff() {}

// Reset implements link.PowerController.
func (c *ScriptCard) Reset() {}

// PowerOns counts the power-ons so far.
func (c *ScriptCard) PowerOns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns
}

// Script runs the same operations on any link with a ScriptCard behind it
// (live, recorded, or played back from a recording) and returns what each
// answered, in upper-case hex or as "error: TEXT": SELECT, echo, a tear,
// a cold and a warm reset, a power cycle and echo again. The link must be
// a link.Resetter and a link.PowerCycler. ScriptWant is what a live link
// answers.
func Script(t testing.TB, l link.Link) []string {
	t.Helper()
	ctx := context.Background()
	rs, ok := l.(link.Resetter)
	pc, ok2 := l.(link.PowerCycler)
	if !ok || !ok2 {
		t.Fatalf("%s cannot reset and cycle power: the script needs both", l)
	}
	var out []string
	note := func(b []byte, err error) {
		if err != nil {
			out = append(out, "error: "+err.Error())
			return
		}
		out = append(out, fmt.Sprintf("%X", b))
	}
	note(l.Exchange(ctx, ScriptSelect))
	note(l.Exchange(ctx, ScriptEcho))
	note(l.Exchange(ctx, ScriptTear))
	note(rs.Reset(ctx, true))
	note(rs.Reset(ctx, false))
	if err := pc.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	note(pc.PowerOn(ctx))
	note(l.Exchange(ctx, ScriptEcho))
	return out
}

// ScriptWant is what Script sees on a live link.Direct to a ScriptCard
// with ScriptATR.
func ScriptWant() []string {
	atr := fmt.Sprintf("%X", ScriptATR)
	return []string{fmt.Sprintf("%X", ScriptFCI), "CAFE9000", "error: " + link.ErrRemoved.Error(), atr, atr, atr, "CAFE9000"}
}
