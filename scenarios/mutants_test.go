package scenarios

import (
	"strings"
	"testing"
)

func TestParseCaseMutants(t *testing.T) {
	m, err := ParseCaseMutants([]byte("# a plan\nTC-PAY-006 stale-result\n\n  TC-LC-001\tstatus-9000  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["TC-PAY-006"] != "stale-result" || m["TC-LC-001"] != "status-9000" {
		t.Errorf("got %v", m)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "no CASE MUTANT line"},
		{"# only a comment\n", "no CASE MUTANT line"},
		{"TC-PAY-006\n", "line 1: want CASE MUTANT"},
		{"TC-PAY-006 stale-result extra\n", "line 1: want CASE MUTANT"},
		{"stale-result TC-PAY-006\n", "line 1: want CASE MUTANT"},
		{"TC-PAY-006 stale-result\nTC-PAY-006 status-9000\n", "line 2: TC-PAY-006 already runs on mutant stale-result"},
		{"TC-PAY-006 no-such-mutant\n", `line 1: "no-such-mutant" is not a mutant of device.Mutants`},
		{"TC-PAY-006 stale-result@usb-emu\n", `line 1: "stale-result@usb-emu" is not a mutant`},
	} {
		if _, err := ParseCaseMutants([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCaseMutants(%q): %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

func TestMutateCasesOnlyOnTheMutantsTransports(t *testing.T) {
	plan := map[string]string{"TC-PAY-006": "stale-result"}
	for _, tc := range []struct {
		spec, against, want string
	}{
		{"ref", "", ""},
		{"usb-emu", "", ""},
		{"serial-emu", "", "not on serial-emu"},
		{"faulty:stale-result", "", "not on faulty:stale-result"},
		{"ref", "ref", "no reference twin"},
	} {
		d, err := NewDUTDriver([]string{tc.spec}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.Against = tc.against
		err = d.MutateCases(plan)
		switch {
		case tc.want == "" && (err != nil || !d.Mutated()):
			t.Errorf("%s: %v, mutated %v", tc.spec, err, d.Mutated())
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || d.Mutated()):
			t.Errorf("%s against %q: %v (mutated %v), want an error saying %q", tc.spec, tc.against, err, d.Mutated(), tc.want)
		}
	}
}

// A plan is a file of outside bytes: it is refused or read whole, never
// half.
func FuzzParseCaseMutants(f *testing.F) {
	for _, s := range []string{"TC-PAY-006 stale-result\n", "# c\n\nTC-LC-001 status-9000\nTC-PAY-006 stale-result", "TC-X 1", "\x00", "TC-PAY-006 stale-result\nTC-PAY-006 stale-result\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseCaseMutants(b)
		if err != nil {
			if m != nil {
				t.Fatalf("an error with a plan: %v", m)
			}
			return
		}
		if len(m) == 0 {
			t.Fatal("no error and no plan")
		}
		for c, name := range m {
			if !strings.HasPrefix(c, "TC-") || !strings.Contains(string(b), c) || !strings.Contains(string(b), name) {
				t.Fatalf("%s %s is not in the plan's bytes", c, name)
			}
		}
	})
}
