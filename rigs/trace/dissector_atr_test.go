package trace

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
)

// The shipped dissector's summary of an ATR names each transmission
// protocol the card offers once, and the T=15 global interface bytes an
// eSIM's ATR carries as such, not as a protocol (ISO/IEC 7816-3 8.2.3: a
// TDi with T=1 followed by a TDi+1 with T=1 offers T=1 once, with its
// specific bytes).
func TestDissectorSummarisesATRProtocols(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is not installed and CI is set: install tshark")
		}
		t.Skip("tshark is not installed (apt-get install -y tshark); CI is unset")
	}
	for atr, want := range map[string]string{
		"3B8A8131FE455350444C41422053494DFE":         "(T=1)",                              // the SIM emulator's
		"3B8B81B1FE453F07825350444C4142206553494DA0": "(T=1, T=15 global interface bytes)", // the eSIM's
		"3B02147A":                     "(T=0)", // no TD1: T=0
		"3B9F95801FC38031E073FE211B63": "(T=0, T=15 global interface bytes)",
	} {
		raw, err := hex.DecodeString(atr)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "atr.pcapng")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		tr := Wrap(link.NewDirect(&linktest.ScriptCard{}, "ref", raw), f)
		if _, err := tr.(link.Resetter).Reset(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		tr.Close()
		f.Close()
		cmd := exec.Command(tshark, "-n", "-X", "lua_script:wireshark/spdlab.lua", "-r", path, "-Y", "spdlab.atr")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.HasSuffix(l, "ATR "+atr+" "+want) {
				t.Errorf("ATR %s: tshark's summary %q, want it to end %q", atr, l, want)
			}
		}
		if strings.TrimSpace(string(out)) == "" {
			t.Errorf("ATR %s: no ATR record decoded", atr)
		}
	}
}
