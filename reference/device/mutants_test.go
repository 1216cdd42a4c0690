package device

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMutantCatalogue checks that every catalogued mutant is switched on
// somewhere in the device, that every switch names a catalogued mutant,
// and that each names a requirement SPEC.md defines.
func TestMutantCatalogue(t *testing.T) {
	spec, err := os.ReadFile("../SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// The card OS switches on mutants of its own: the ATR's, and the
	// eUICC's esim-* mutants.
	for _, dir := range []string{"../../emulator", "../../emulator/esim"} {
		cardOS, err := filepath.Glob(dir + "/*.go")
		if err != nil || len(cardOS) == 0 {
			t.Fatalf("%s: %v", dir, err)
		}
		files = append(files, cardOS...)
	}
	used := map[string]bool{}
	hook := regexp.MustCompile(`(?:bug\(|, )"([a-z0-9-]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range hook.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
		}
	}
	// The nonatomic-* mutants are switched on by name in begin.
	for _, m := range Mutants {
		if strings.HasPrefix(m.Name, "nonatomic-") {
			used[m.Name] = true
		}
	}
	seen := map[string]bool{}
	for _, m := range Mutants {
		if seen[m.Name] {
			t.Errorf("mutant %s catalogued twice", m.Name)
		}
		seen[m.Name] = true
		if !used[m.Name] {
			t.Errorf("mutant %s is never switched on in the device", m.Name)
		}
		if !strings.Contains(string(spec), "**"+m.Requirement+"**") {
			t.Errorf("mutant %s names %s, which SPEC.md does not define", m.Name, m.Requirement)
		}
		if m.Bug == "" {
			t.Errorf("mutant %s says nothing about its bug", m.Name)
		}
	}
	for name := range used {
		if !seen[name] {
			t.Errorf("bug(%q) names no catalogued mutant", name)
		}
	}
	if len(Mutants) < 60 {
		t.Errorf("%d mutants, want at least 60", len(Mutants))
	}

	// Every requirement SPEC.md defines is broken by a mutant, so that
	// make mutants shows the suite fails a device that breaks it, or is
	// one a bug of the device application cannot break.
	broken := map[string]bool{}
	for _, m := range Mutants {
		broken[m.Requirement] = true
	}
	for _, id := range regexp.MustCompile(`\*\*(SPD-[A-Z0-9]+-[0-9]+)\*\*`).FindAllStringSubmatch(string(spec), -1) {
		why, exempt := unmutated[id[1]]
		switch {
		case broken[id[1]] && exempt:
			t.Errorf("%s is broken by a mutant but listed as one no mutant can break (%s)", id[1], why)
		case !broken[id[1]] && !exempt:
			t.Errorf("no mutant breaks %s: add one to Mutants, and a case that kills it", id[1])
		}
	}
	for id := range unmutated {
		if !strings.Contains(string(spec), "**"+id+"**") {
			t.Errorf("unmutated lists %s, which SPEC.md does not define", id)
		}
	}
}

// unmutated are the requirements of SPEC.md that no mutant of the device
// application breaks, with the part of the lab that meets them instead.
var unmutated = map[string]string{
	"SPD-EXC-5":  "the issuer's host signs the rates (reference/backend)",
	"SPD-HVA-3":  "the issuer's host makes the checks it asserts (reference/backend)",
	"SPD-LED-5":  "the settlement host settles each record once (reference/backend)",
	"SPD-PRC-3":  "the merchant checks a scanned payment code (reference/terminal)",
	"SPD-MED-2":  "the terminal renders the media the device answers as bytes (reference/medium)",
	"SPD-MED-7":  "the terminal shows a token reference as Code 128 (reference/medium)",
	"SPD-FORM-1": "the transports carry the same APDUs (emulator, rigs)",
	"SPD-FORM-2": "it names the device's units; the requirements of each unit have their mutants",
	"SPD-OPT-1":  "the reference device implements every feature; a device without one has an ICS of its own",
}
