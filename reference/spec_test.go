package reference

import (
	"strings"
	"testing"
)

func TestRequirements(t *testing.T) {
	rs := Requirements()
	n := strings.Count(Spec, "\n- **SPD-")
	if len(rs) != n || n == 0 {
		t.Fatalf("parsed %d requirements, SPEC.md has %d bullets", len(rs), n)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.ID] {
			t.Errorf("%s defined twice", r.ID)
		}
		seen[r.ID] = true
		if r.Section == "" || r.Text == "" {
			t.Errorf("%+v lacks its section or text", r)
		}
	}
	for _, want := range []struct{ id, claims, section string }{
		{"SPD-PAY-3", "C2 C3", "6. Payments, ledger, tokens, transfers"},
		{"SPD-APP-3", "", "1. Application and encoding"},
	} {
		var got *Requirement
		for i := range rs {
			if rs[i].ID == want.id {
				got = &rs[i]
			}
		}
		if got == nil || strings.Join(got.Claims, " ") != want.claims || got.Section != want.section {
			t.Errorf("%s = %+v", want.id, got)
		}
	}
	if Version() != "1" {
		t.Errorf("version %q", Version())
	}
}

func TestTagNames(t *testing.T) {
	n := TagNames()
	for tag, want := range map[string]string{"DF11": "device certificate", "9F02": ""} {
		got, ok := n[tag]
		if !ok || want != "" && got != want {
			t.Errorf("tag %s = %q (%v), want %q", tag, got, ok, want)
		}
	}
}
