package pgtest

import (
	"errors"
	"strings"
	"testing"
)

// Without server binaries Start says so, and how to install them: the
// tests that need a server skip (or, under CI, fail) with that message.
func TestStartWithoutBinaries(t *testing.T) {
	t.Setenv("SPDLAB_PG_BIN", t.TempDir())
	s, err := Start()
	if err == nil {
		s.Stop()
		t.Fatal("started without binaries")
	}
	if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("Start: %v", err)
	}
}

func TestRequired(t *testing.T) {
	for v, want := range map[string]bool{"": false, "false": false, "0": false, "true": true, "1": true} {
		t.Setenv("CI", v)
		if Required() != want {
			t.Errorf("CI=%q: Required() = %v", v, !want)
		}
	}
}
