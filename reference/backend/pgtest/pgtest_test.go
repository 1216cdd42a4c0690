package pgtest

import (
	"context"
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

// CopyDatabase copies only a database of its own server, by a name
// NewDatabase could have made: the name goes into CREATE DATABASE.
func TestCopyDatabaseRefusesOtherDatabases(t *testing.T) {
	s := &Server{port: 5999, password: "pw"}
	for _, u := range []string{
		"postgres://spdlab:pw@127.0.0.1:6000/t1_ab?sslmode=disable",    // another port
		"postgres://spdlab:other@127.0.0.1:5999/t1_ab?sslmode=disable", // another password
		s.URL("t1_ab; DROP DATABASE x"),
		s.URL(""),
		"%zz",
	} {
		if _, err := s.CopyDatabase(context.Background(), u); err == nil || !strings.Contains(err.Error(), "pgtest: ") {
			t.Errorf("CopyDatabase(%q): %v, want a refusal", u, err)
		}
	}
}
