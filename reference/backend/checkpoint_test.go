package backend

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"testing"
)

// walSequence is the checkpoint sequence number in the header of the
// database's WAL file: SQLite adds one each time the WAL starts over.
func walSequence(t *testing.T, l *lab) uint32 {
	t.Helper()
	f, err := os.Open(l.db + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr [32]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(hdr[12:16])
}

// Under writes that never pause the WAL still starts over: a write that
// began before the checkpointer's checkpoint commits after it, so its
// frames are not copied, and the writer's next transaction would find
// frames not yet copied and go on appending to the WAL (for as long as
// writes keep coming, the WAL growing without bound). The writer copies
// them itself between the two groups, and its next transaction starts the
// WAL over.
func TestWALStartsOverUnderContinuousWrites(t *testing.T) {
	sqliteOnly(t)
	l := newLab(t, nil)
	e := l.srv.eng.(*sqliteEngine)
	// The test runs the checkpoints itself, and on a WAL of any size.
	close(e.closing)
	<-e.done
	e.closing = nil
	e.walRestart = 0

	d := newSimDevice(t, "wal-restart")
	l.register(d, 1_000_000, "")
	authorise := func() {
		t.Helper()
		res, err := l.term.Authorise(bg, AuthorisationRequest{Record: d.record(100, "", l.clock.Now()), Channel: "qr"})
		if err != nil || res.Status != Approved {
			t.Fatalf("authorise: %+v %v", res, err)
		}
	}
	for range 5 {
		authorise()
	}
	before := walSequence(t, l)

	// A write begins its transaction (its first statement), the
	// checkpointer's checkpoint runs, then the write commits.
	began, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- l.srv.write(bg, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta(k, v) VALUES('wal-test', x'01')`); err != nil {
				return err
			}
			close(began)
			<-release
			return nil
		})
	}()
	<-began
	e.checkpoint()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	authorise()
	if after := walSequence(t, l); after == before {
		t.Fatalf("the WAL did not start over (checkpoint sequence %d before and after)", before)
	}
	var busy, frames, copied int
	if err := e.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames == 0 || copied != frames {
		t.Fatalf("checkpoint after: %d frames, %d copied", frames, copied)
	}
	if a := l.audit(); a.RecordsSettled != 6 {
		t.Fatalf("audit: %d records settled, want 6", a.RecordsSettled)
	}
}
