package sim_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/emulator/sim/simtest"
)

// These tests attach the emulator to the real pcscd (through vpcd's second
// slot, see simtest.Address) and talk to it with PC/SC programs written elsewhere: pcsc-tools and OpenSC.

const (
	slot1Address = simtest.Address
	slot1Reader  = simtest.Reader
)

func serveSlot1(t *testing.T, form emulator.Form) *sim.Emulator {
	t.Helper()
	return simtest.Serve(t, simtest.NewCard(), sim.Config{Address: slot1Address, Form: form, Logger: quiet()})
}

// run runs a program with stdin and returns its combined output.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func hexSpaced(b []byte) string { return fmt.Sprintf("% X", b) }

func TestScriptorSelectAndEcho(t *testing.T) {
	scriptor := simtest.RequireTool(t, "scriptor", "pcsc-tools")
	serveSlot1(t, emulator.FormSIM)
	script := hexSpaced(simtest.Select()) + "\n" + hexSpaced(simtest.Echo([]byte{0xCA, 0xFE})) + "\n"
	out := run(t, script, scriptor, "-r", slot1Reader)
	// scriptor prints each answer after "<".
	for _, want := range []string{"< 90 00", "< CA FE 90 00"} {
		if !strings.Contains(out, want) {
			t.Fatalf("scriptor output lacks %q:\n%s", want, out)
		}
	}
}

func TestOpenSCToolATRAndAPDU(t *testing.T) {
	tool := simtest.RequireTool(t, "opensc-tool", "opensc")
	serveSlot1(t, emulator.FormESIM)

	out := run(t, "", tool, "--reader", slot1Reader, "--atr")
	atr := strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(lastLine(out))), ":", " ")
	if want := hexSpaced(emulator.ATR(emulator.FormESIM)); atr != want {
		t.Fatalf("opensc-tool --atr = %q, want %q\n%s", atr, want, out)
	}

	sel := strings.ReplaceAll(hexSpaced(simtest.Select()), " ", ":")
	echo := strings.ReplaceAll(hexSpaced(simtest.Echo([]byte{0x12, 0x34, 0x56})), " ", ":")
	out = run(t, "", tool, "--reader", slot1Reader, "--send-apdu", sel, "--send-apdu", echo)
	if strings.Count(out, "SW1=0x90, SW2=0x00") != 2 || !strings.Contains(out, "12 34 56") {
		t.Fatalf("opensc-tool --send-apdu did not get 9000 twice and the echo:\n%s", out)
	}
}

func TestPCSCScanSeesCard(t *testing.T) {
	scan := simtest.RequireTool(t, "pcsc_scan", "pcsc-tools")
	serveSlot1(t, emulator.FormSIM)
	// -c lists the cards once and exits; -n skips the ATR database.
	out := run(t, "", scan, "-c", "-n")
	i := strings.Index(out, slot1Reader)
	if i < 0 {
		t.Fatalf("pcsc_scan does not list %s:\n%s", slot1Reader, out)
	}
	section := out[i:]
	if !strings.Contains(section, "Card inserted") || !strings.Contains(section, hexSpaced(emulator.ATR(emulator.FormSIM))) {
		t.Fatalf("pcsc_scan shows no card with the SIM ATR in %s:\n%s", slot1Reader, out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
