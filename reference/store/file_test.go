package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func openT(t testing.TB, path string) *File {
	t.Helper()
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.state")
	s := openT(t, path)
	seed(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path)
	if got := contents(s); !maps.Equal(got, initial) {
		t.Fatalf("after reopen %v, want %v", got, initial)
	}
	tx := s.Begin()
	txChanges(tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, path)
	if got := contents(s); !maps.Equal(got, final) {
		t.Fatalf("after reopen %v, want %v", got, final)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q", s.Path())
	}
	// The store is locked while open, and free again after Close.
	if s2, err := OpenFile(path); err == nil {
		s2.Close()
		t.Fatal("a second OpenFile of an open store succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	openT(t, path) // the store opens again once the first holder closed it
}

// copyState copies the store's files to a fresh directory, the log cut to
// logLen bytes and padded with pad bytes, as a crash mid-append leaves it.
func copyState(t *testing.T, snap, log []byte, logLen int, pad []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "card.state")
	if err := os.WriteFile(path, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	l := append(append([]byte{}, log[:logLen]...), pad...)
	if err := os.WriteFile(path+".log", l, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFileCrashAtEveryByte stops the process (not a simulated tear) at
// every byte of a transaction's and a Put's appends, with the unwritten rest
// either missing, zeroed or garbage, and reopens: the state is the old one
// before the commit mark's record is whole, the new one after.
func TestFileCrashAtEveryByte(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "card.state")
	s := openT(t, path)
	seed(t, s)
	before, _ := os.ReadFile(path + ".log")
	tx := s.Begin()
	txChanges(tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	afterTx, _ := os.ReadFile(path + ".log")
	mustPut(t, s, "pin/tries", "2")
	afterPut, _ := os.ReadFile(path + ".log")
	s.Close()
	snap, _ := os.ReadFile(path)

	// Where the commit mark's record ends: the first cut with the new state.
	commitEnd := len(before)
	for i := 0; i < 5; i++ { // 4 journal entries, then the commit mark
		_, rest, err := nextRecord(afterTx[commitEnd:])
		if err != nil {
			t.Fatal(err)
		}
		commitEnd = len(afterTx) - len(rest)
	}
	afterPutState := maps.Clone(final)
	afterPutState["pin/tries"] = "2"

	pads := [][]byte{nil, make([]byte, 40), bytes.Repeat([]byte{0xA5}, 40)}
	for cut := len(before); cut <= len(afterPut); cut++ {
		for pi, pad := range pads {
			p := copyState(t, snap, afterPut, cut, pad)
			s, err := openFast(t, p)
			if err != nil {
				t.Fatalf("cut %d pad %d: %v", cut, pi, err)
			}
			want := initial
			switch {
			case cut == len(afterPut):
				want = afterPutState
			case cut >= commitEnd:
				want = final
			}
			if got := contents(s); !maps.Equal(got, want) {
				t.Fatalf("cut %d pad %d: %v, want %v", cut, pi, got, want)
			}
			// It keeps working, and what it writes next survives.
			mustPut(t, s, "after", "1")
			s.Close()
			s, err = openFast(t, p)
			if err != nil {
				t.Fatalf("cut %d pad %d: reopen: %v", cut, pi, err)
			}
			if v, ok := s.Get("after"); !ok || string(v) != "1" {
				t.Fatalf("cut %d pad %d: write after recovery lost", cut, pi)
			}
			s.Close()
		}
	}
}

// TestFileTearThenReopen tears a transaction and, instead of Recover, lets
// the process die and reopens the files.
func TestFileTearThenReopen(t *testing.T) {
	for n := 1; n <= txWrites; n++ {
		path := filepath.Join(t.TempDir(), "card.state")
		s := openT(t, path)
		seed(t, s)
		s.TearAt(n)
		tx := s.Begin()
		txChanges(tx)
		if err := tx.Commit(); !errors.Is(err, ErrTorn) {
			t.Fatalf("n=%d: %v", n, err)
		}
		s.Close()
		s = openT(t, path)
		want := final
		if n <= txWrites/2 {
			want = initial
		}
		if got := contents(s); !maps.Equal(got, want) {
			t.Fatalf("n=%d: %v, want %v", n, got, want)
		}
	}
}

func TestFileCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.state")
	s := openT(t, path)
	s.disk.compactMin = 512
	want := map[string]string{}
	for i := range 200 {
		k := fmt.Sprintf("pending/%03d", i%37)
		v := strings.Repeat("x", i%11)
		if i%5 == 0 {
			tx := s.Begin()
			tx.Put(k, []byte(v))
			tx.Delete(fmt.Sprintf("pending/%03d", (i+3)%37))
			delete(want, fmt.Sprintf("pending/%03d", (i+3)%37))
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			mustPut(t, s, k, v)
		}
		want[k] = v
	}
	if s.disk.gen < 5 {
		t.Fatalf("only %d compactions", s.disk.gen)
	}
	if st, _ := os.Stat(path + ".log"); st.Size() > 4096 {
		t.Fatalf("log not compacted: %d bytes", st.Size())
	}
	if got := contents(s); !maps.Equal(got, want) {
		t.Fatalf("state %v, want %v", got, want)
	}
	snap, _ := os.ReadFile(path)
	log, _ := os.ReadFile(path + ".log")
	s.Close()
	s = openT(t, path)
	if got := contents(s); !maps.Equal(got, want) {
		t.Fatalf("after reopen %v, want %v", got, want)
	}
	s.Close()

	// A crash between the two renames of a compaction: the new snapshot and
	// the old log, whose base generation is now stale.
	gen, state, err := parseSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := replayLog(log, state)
	if err != nil {
		t.Fatal(err)
	}
	p2 := filepath.Join(t.TempDir(), "card.state")
	os.WriteFile(p2, encodeSnapshot(gen+1, rp.img.state), 0o600)
	os.WriteFile(p2+".log", log, 0o600)
	os.WriteFile(p2+".tmp", []byte("half a snapshot"), 0o600)
	os.WriteFile(p2+".log.tmp", []byte("half a log"), 0o600)
	s = openT(t, p2)
	if got := contents(s); !maps.Equal(got, want) {
		t.Fatalf("after a crash between renames %v, want %v", got, want)
	}
	for _, tmp := range []string{p2 + ".tmp", p2 + ".log.tmp"} {
		if _, err := os.Stat(tmp); err == nil {
			t.Fatalf("%s left behind", tmp)
		}
	}
}

func TestFileDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.state")
	s := openT(t, path)
	seed(t, s)
	s.Close()
	snap, _ := os.ReadFile(path)
	log, _ := os.ReadFile(path + ".log")

	flip := func(b []byte, i int) []byte {
		c := append([]byte{}, b...)
		c[i] ^= 0x10
		return c
	}
	hdr := len(encodeLogHeader(0))
	// A log whose records are right but out of order: an apply with no commit.
	badSeq := appendRecord(encodeLogHeader(0), logRecord(writeApply, change{Key: "k", Value: []byte("v")}, 0))
	cases := []struct {
		name      string
		snap, log []byte // nil = file absent
		wantErr   string
	}{
		{"snapshot bit flip", flip(snap, len(snap)-1), log, "snapshot: record damaged"},
		{"snapshot bad magic", flip(snap, 0), log, "bad magic"},
		{"snapshot truncated", snap[:len(snap)-1], log, "snapshot: record damaged"},
		{"snapshot trailing bytes", append(append([]byte{}, snap...), 0), log, "stray bytes"},
		{"log header damaged", snap, flip(log, 10), "log: header record damaged"},
		{"log bad magic", snap, flip(log, 1), "bad magic"},
		{"log ahead of snapshot", snap, encodeLogHeader(9), "continues generation 9"},
		{"record out of sequence", snap, badSeq, "apply before the commit mark"},
		{"snapshot missing, log present", nil, log, "missing but its log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "card.state")
			if c.snap != nil {
				os.WriteFile(p, c.snap, 0o600)
			}
			if c.log != nil {
				os.WriteFile(p+".log", c.log, 0o600)
			}
			s, err := OpenFile(p)
			if err == nil {
				s.Close()
				t.Fatal("opened a damaged store")
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("error %q, want one containing %q", err, c.wantErr)
			}
		})
	}

	// One flipped byte in any record but the last: a whole record follows,
	// so it is damage, not a torn append. The store refuses to open and
	// names the record's offset; the files are left as they were.
	var offsets []int
	for at := hdr; at < len(log); {
		_, rest, err := nextRecord(log[at:])
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, at)
		at = len(log) - len(rest)
	}
	if len(offsets) < 3 {
		t.Fatalf("seed wrote %d records, want several", len(offsets))
	}
	for _, at := range offsets[:len(offsets)-1] {
		for _, i := range []int{at + 1, at + 5, at + recordHeader} { // length, CRC, body
			damaged := flip(log, i)
			p := copyState(t, snap, damaged, len(damaged), nil)
			s, err := OpenFile(p)
			if err == nil {
				s.Close()
				t.Fatalf("byte %d of the record at %d flipped: opened", i, at)
			}
			if want := fmt.Sprintf("log record at byte %d is damaged", at); !strings.Contains(err.Error(), want) {
				t.Fatalf("byte %d flipped: %v, want %q", i, err, want)
			}
			if got, _ := os.ReadFile(p + ".log"); !bytes.Equal(got, damaged) {
				t.Fatalf("byte %d flipped: the refused log was changed", i)
			}
		}
	}
	// The same flip in the last record is a torn append: the log ends
	// before it.
	last := offsets[len(offsets)-1]
	p := copyState(t, snap, flip(log, last+recordHeader), len(log), nil)
	s, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p + ".log"); len(got) < last || !bytes.Equal(got[:last], log[:last]) {
		t.Fatalf("torn last record: the records before it were not kept")
	}
	s.Close()
	// A missing log beside a snapshot that was never written to is
	// recreated from the snapshot.
	p = copyState(t, snap, log, len(log), nil)
	os.Remove(p + ".log")
	s, err = OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A missing log beside a snapshot holding state is refused, with how
	// to recover.
	p = copyState(t, encodeSnapshot(3, map[string][]byte{"balance": []byte("100")}), log, len(log), nil)
	os.Remove(p + ".log")
	if s, err := OpenFile(p); err == nil {
		s.Close()
		t.Fatal("opened a snapshot whose log is missing")
	} else if !strings.Contains(err.Error(), "missing but the snapshot") || !strings.Contains(err.Error(), "restore it from a backup") {
		t.Fatalf("missing log: %v", err)
	}
}

// faultyDisk is a disk that fills up after budget bytes of appends, or fails
// the syncNth fsync of the log. It skips the real fsyncs: these tests check
// what the store does, not what the kernel does, and stay fast.
type faultyDisk struct {
	osDisk
	budget   int64 // bytes that appends may still write; < 0 = unlimited
	syncs    int
	syncNth  int // fail the nth Sync (1-based); 0 = never
	syncFrom int // fail every Sync from the nth on; 0 = never
}

type faultyFile struct {
	appendFile
	d *faultyDisk
}

func (d *faultyDisk) OpenAppend(name string) (appendFile, error) {
	f, err := d.osDisk.OpenAppend(name)
	if err != nil {
		return nil, err
	}
	return &faultyFile{f, d}, nil
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.d.budget < 0 || int64(len(p)) <= f.d.budget {
		if f.d.budget >= 0 {
			f.d.budget -= int64(len(p))
		}
		return f.appendFile.Write(p)
	}
	n, _ := f.appendFile.Write(p[:f.d.budget]) // a partial write, then the disk is full
	f.d.budget = 0
	return n, &os.PathError{Op: "write", Path: "log", Err: syscall.ENOSPC}
}

func (f *faultyFile) Sync() error {
	f.d.syncs++
	if f.d.syncs == f.d.syncNth || (f.d.syncFrom > 0 && f.d.syncs >= f.d.syncFrom) {
		return &os.PathError{Op: "fsync", Path: "log", Err: syscall.EIO}
	}
	return nil
}

func (d *faultyDisk) WriteFile(name string, data []byte) error {
	return os.WriteFile(name, data, 0o600)
}
func (d *faultyDisk) SyncDir(string) error { return nil }

// openFast opens a store on a faultyDisk that never fails.
func openFast(t testing.TB, path string) (*File, error) {
	return openFile(path, &faultyDisk{budget: -1})
}

// TestFileFullDisk fills the disk at every byte of a transaction's appends
// and fails its fsync: the call fails with the disk's error, nothing is
// lost, and the state is old or new in memory and on disk alike.
func TestFileFullDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.state")
	s := openT(t, path)
	seed(t, s)
	s.Close()
	snap, _ := os.ReadFile(path)
	log, _ := os.ReadFile(path + ".log")

	outcomes := map[string]int{}
	check := func(t *testing.T, name string, d *faultyDisk) {
		p := copyState(t, snap, log, len(log), nil)
		s, err := openFile(p, d)
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		defer s.Close()
		tx := s.Begin()
		txChanges(tx)
		cerr := tx.Commit()
		var want map[string]string
		switch {
		case cerr == nil:
			want = final
			outcomes["committed"]++
		case !errors.Is(cerr, syscall.ENOSPC) && !errors.Is(cerr, syscall.EIO):
			t.Fatalf("%s: Commit error %v does not name the disk's error", name, cerr)
		case !strings.HasPrefix(cerr.Error(), "store: "):
			t.Fatalf("%s: error %q", name, cerr)
		case s.Torn():
			if !errors.Is(cerr, ErrTorn) {
				t.Fatalf("%s: store needs Recover but %v does not match ErrTorn", name, cerr)
			}
			// The failed write could not be undone, or came after the
			// commit mark: Recover, with the disk working again, reads
			// back what is on disk and decides.
			d.budget, d.syncNth, d.syncFrom = -1, 0, 0
			if err := s.Recover(); err != nil {
				t.Fatalf("%s: Recover: %v", name, err)
			}
			want = contents(s)
			if !maps.Equal(want, initial) && !maps.Equal(want, final) {
				t.Fatalf("%s: after Recover %v, neither old nor new", name, want)
			}
			outcomes["decided by Recover"]++
		default:
			if errors.Is(cerr, ErrTorn) {
				t.Fatalf("%s: an undone write reports %v, which matches ErrTorn", name, cerr)
			}
			want = initial
			outcomes["failed, old state"]++
		}
		if got := contents(s); !maps.Equal(got, want) {
			t.Fatalf("%s: state %v, want %v (commit: %v)", name, got, want, cerr)
		}
		d.budget, d.syncNth, d.syncFrom = -1, 0, 0
		mustPut(t, s, "after", "1")
		s.Close()
		s2, err := openFast(t, p)
		if err != nil {
			t.Fatalf("%s: reopen: %v", name, err)
		}
		defer s2.Close()
		w := maps.Clone(want)
		w["after"] = "1"
		if got := contents(s2); !maps.Equal(got, w) {
			t.Fatalf("%s: on disk %v, want %v", name, got, w)
		}
	}
	for budget := int64(0); budget <= 300; budget++ {
		check(t, fmt.Sprintf("budget %d", budget), &faultyDisk{budget: budget})
	}
	// Sync 1 is at open; sync 2 is the commit mark's, sync 3 the undo's.
	check(t, "commit fsync fails", &faultyDisk{budget: -1, syncNth: 2})
	check(t, "commit fsync and undo fail", &faultyDisk{budget: -1, syncFrom: 2})
	for _, o := range []string{"committed", "decided by Recover", "failed, old state"} {
		if outcomes[o] == 0 {
			t.Errorf("no case ended %q: %v", o, outcomes)
		}
	}

	// A full disk on Put outside a transaction.
	p := copyState(t, snap, log, len(log), nil)
	d := &faultyDisk{budget: 5}
	s2, err := openFile(p, d)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Put("pin/tries", []byte("2")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v", err)
	}
	if v, _ := s2.Get("pin/tries"); string(v) != "3" {
		t.Fatalf("pin/tries %q after a failed Put", v)
	}
	d.budget = -1
	mustPut(t, s2, "pin/tries", "2")
}
