package store

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"slices"
	"testing"
)

// memDisk is a disk in process memory, so the fuzz target can open stores
// thousands of times a second.
type memDisk struct{ files map[string][]byte }

type memFile struct {
	d    *memDisk
	name string
}

func (d *memDisk) ReadFile(name string) ([]byte, error) {
	b, ok := d.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(b), nil
}

func (d *memDisk) OpenAppend(name string) (appendFile, error) {
	if _, ok := d.files[name]; !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{d, name}, nil
}

func (d *memDisk) WriteFile(name string, data []byte) error {
	d.files[name] = slices.Clone(data)
	return nil
}

func (d *memDisk) Truncate(name string, size int64) error {
	b, ok := d.files[name]
	if !ok {
		return &fs.PathError{Op: "truncate", Path: name, Err: fs.ErrNotExist}
	}
	if size < int64(len(b)) {
		d.files[name] = b[:size]
	}
	return nil
}

func (d *memDisk) Rename(from, to string) error {
	b, ok := d.files[from]
	if !ok {
		return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	d.files[to] = b
	delete(d.files, from)
	return nil
}

func (d *memDisk) Remove(name string) error {
	if _, ok := d.files[name]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.files, name)
	return nil
}

func (d *memDisk) SyncDir(string) error { return nil }

type noLock struct{}

func (noLock) Close() error { return nil }

func (d *memDisk) Lock(string) (io.Closer, error) { return noLock{}, nil }

func (f *memFile) Write(p []byte) (int, error) {
	f.d.files[f.name] = append(f.d.files[f.name], p...)
	return len(p), nil
}
func (f *memFile) Sync() error               { return nil }
func (f *memFile) Truncate(size int64) error { return f.d.Truncate(f.name, size) }
func (f *memFile) Close() error              { return nil }

// FuzzOpen opens a store from an arbitrary snapshot file and log file. A
// damaged pair must give an error or recover cleanly, never panic; a store
// that opens must keep what is written to it across a reopen.
func FuzzOpen(f *testing.F) {
	f.Add(encodeSnapshot(0, nil), encodeLogHeader(0))
	f.Fuzz(func(t *testing.T, snap, log []byte) {
		if len(snap)+len(log) > 1<<20 {
			return
		}
		d := &memDisk{files: map[string][]byte{"s": snap, "s.log": log}}
		s, err := openFile("s", d)
		if err != nil {
			// Files that parse must open.
			gen, state, perr := parseSnapshot(snap)
			base, _, herr := parseLogHeader(log)
			if perr == nil && herr == nil && base == gen {
				if _, rerr := replayLog(log, state); rerr == nil {
					t.Fatalf("open failed on files that parse: %v", err)
				}
			}
			return
		}
		before := contents(s)
		tx := s.Begin()
		tx.Put("fuzz/a", []byte("1"))
		tx.Delete("fuzz/b")
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit on a recovered store: %v", err)
		}
		before["fuzz/a"] = "1"
		delete(before, "fuzz/b")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = openFile("s", d)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if got := contents(s); !maps.Equal(got, before) {
			t.Fatalf("after reopen %v, want %v", got, before)
		}
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
	})
}
