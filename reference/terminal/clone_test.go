package terminal_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/terminal"
)

// copyDir copies the files of a closed device store.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClonesPayingInTheSameSecondAreCaught: two perfect copies of one
// device state (same store bytes, same key, and the same random generator
// state) pay the same order offline in the same second at two terminals.
// Their records differ by the payee and the terminal nonce (SPD-PAY-8), so
// the second merchant's settlement is a conflict, not "already settled":
// the device is flagged and its spend kept as evidence (SPD-LED-5).
func TestClonesPayingInTheSameSecondAreCaught(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	dirA, dirB := t.TempDir(), t.TempDir()
	path := func(dir string) string { return filepath.Join(dir, "device") }
	seed := device.Config{Seed: []byte("one device state")}
	st, err := store.OpenFile(path(dirA))
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.is.Personalise(ctx, spd.NewClient(procLink{device.New(st, seed)}), l.profile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.admin.Register(ctx, terminal.Enrolment(p, phone(p))); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	copyDir(t, dirA, dirB)
	open := func(dir string) *terminal.Terminal {
		st, err := store.OpenFile(path(dir))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		tm := l.terminal(procLink{device.New(st, seed)}, l.user(p))
		return tm
	}
	first, second := open(dirA), open(dirB)

	l.faults.Down.Store(true)
	for _, tm := range []*terminal.Terminal{first, second} {
		o := tm.Pay(ctx, terminal.Payment{Order: order(t, "5.00"), Kind: spd.KindBalance})
		mustDone(t, o)
		if o.ATC != 1 {
			t.Fatalf("ATC %d, want 1 on both copies", o.ATC)
		}
	}
	l.faults.Down.Store(false)
	mustDone(t, first.Settle(ctx))
	s := second.Settle(ctx)
	if s.Settled != 0 || s.AlreadySettled != 0 || len(s.Refused) != 1 {
		t.Fatalf("the clone's spend: %s", s)
	}
	if r := s.Refused[0]; r.Code != backend.CodeConflict || !strings.Contains(r.Reason, "clone") {
		t.Fatalf("the second merchant is not told its record conflicts: %+v", r)
	}
	a := l.audit()
	if len(a.Flagged) != 1 || a.Flagged[0].DeviceID != spd.DeviceIDString(p.DeviceID) || a.Flagged[0].ATCs != "1" {
		t.Fatalf("flagged: %+v", a.Flagged)
	}
}
