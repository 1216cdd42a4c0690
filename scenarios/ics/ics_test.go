package ics

import (
	"errors"
	"strings"
	"testing"
)

func TestReferenceStatementIsValid(t *testing.T) {
	s := Reference()
	for _, f := range Features {
		if !s.Has(f) && f != "esim" {
			t.Errorf("the reference device's ICS does not declare %s", f)
		}
	}
	// The reference device is a SIM; as esim-emu it is an eSIM as well.
	if e := ReferenceFor("esim-emu"); s.Has("esim") || !e.Has("esim") || e.Product.FormFactor != "esim" || e.SHA256 == s.SHA256 {
		t.Errorf("esim: reference %v, esim-emu %v as %s", s.Has("esim"), e.Has("esim"), e.Product.FormFactor)
	}
	if s.Samples.Reset != ResetTestErase || len(s.SHA256) != 64 {
		t.Fatalf("reference ICS: reset %q, digest %q", s.Samples.Reset, s.SHA256)
	}
}

// edit replaces the first line of the template starting with old (after
// indentation) by new.
func edit(t *testing.T, old, new string) []byte {
	t.Helper()
	lines := strings.Split(string(Template()), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), old) {
			indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
			lines[i] = indent + new
			return []byte(strings.Join(lines, "\n"))
		}
	}
	t.Fatalf("template has no line starting %q", old)
	return nil
}

func lineOf(t *testing.T, data []byte, prefix string) int {
	t.Helper()
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return i + 1
		}
	}
	t.Fatalf("no line starting %q", prefix)
	return 0
}

func TestParseReportsEachProblemWithItsLine(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, at, want string
	}{
		{"unknown feature", "pay-uses:", "pay-usage: true", "pay-usage:", "unknown entry features.pay-usage"},
		{"not a boolean", "tokens: true", "tokens: maybe", "tokens: maybe", "cannot unmarshal"},
		{"capacity below the minimum", "ledger: 64", "ledger: 8", "ledger: 8", "capacities.ledger is 8; SPEC.md section 11 requires at least 16"},
		{"no reset", "reset: test-erase", "reset: none", "reset: none", `samples.reset "none" is not`},
		{"hook without a command", "reset: test-erase", "reset: hook", "hook:", "samples.hook must name the command"},
		{"unknown form factor", "form_factor:", "form_factor: ring", "form_factor:", `product.form_factor "ring"`},
		{"empty vendor", "vendor:", `vendor: ""`, "vendor:", "product.vendor must not be empty"},
		{"wrong schema", "ics: 1", "ics: 2", "ics: 2", "schema 2"},
		{"pre-personalised samples", "preparation: blank", "preparation: personalised", "preparation:", "must arrive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := edit(t, tc.old, tc.new)
			_, err := Parse(data)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse: %v, want Errors", err)
			}
			want := lineOf(t, data, tc.at)
			for _, e := range es {
				if strings.Contains(e.Msg, tc.want) {
					if e.Line != want {
						t.Fatalf("%q at line %d, want line %d", e.Msg, e.Line, want)
					}
					return
				}
			}
			t.Fatalf("errors %v do not say %q", es, tc.want)
		})
	}
}

func TestParseMissingAndDuplicateEntries(t *testing.T) {
	data := []byte(strings.Replace(string(Template()), "  biometric: true", "  tokens: false", 1))
	_, err := Parse(data)
	if err == nil || !strings.Contains(err.Error(), "features.tokens is given twice") || !strings.Contains(err.Error(), "features.biometric is missing") {
		t.Fatalf("Parse: %v", err)
	}
	for _, bad := range []string{"", "- a list", "ics: [1", "just text"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Template())
	f.Add([]byte("ics: 1\nfeatures: {tokens: true}\n"))
	f.Add([]byte("ics: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err == nil && (s.SHA256 == "" || s.Samples.Count < 1) {
			t.Fatalf("accepted an incomplete statement: %+v", s)
		}
	})
}
