package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a Store kept on disk, so that an emulated card keeps its state
// across process restarts (the emulator's --state FILE). Its persistent
// writes are records appended to a log beside a snapshot; the format is
// described above the codec in format.go. A crash of the process at any
// point, like a tear, leaves the old state or the new after reopening. A
// full disk or an I/O error fails the call with an error naming the cause.
// Before the commit mark the failed append is cut off again and nothing
// changes; after it, or when even that cut fails, the store refuses further
// calls (the error matches ErrTorn) until Recover reads the files back and
// finishes or drops the transaction. Either way nothing acknowledged is lost.
type File struct {
	engine
	disk *fileBacking
}

var _ Store = (*File)(nil)

// OpenFile opens the store at path, creating it if absent, and runs the
// power-on recovery. It uses path and path.log, path.tmp and path.log.tmp
// while compacting, and holds an exclusive lock on path.lock until Close,
// so a second OpenFile of the same path (in any process) fails.
func OpenFile(path string) (*File, error) {
	return openFile(path, osDisk{})
}

func openFile(path string, d disk) (*File, error) {
	lk, err := d.Lock(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("store: locking %s: %w", path, err)
	}
	fb := &fileBacking{path: path, d: d, lock: lk, compactMin: 64 << 10}
	f := &File{engine: engine{back: fb, img: newImage()}, disk: fb}
	if err := f.Recover(); err != nil {
		fb.close()
		return nil, err
	}
	return f, nil
}

// Path returns the snapshot path the store was opened with.
func (f *File) Path() string { return f.disk.path }

// disk is the file system as the store uses it; tests substitute one that
// fails like a full or broken disk.
type disk interface {
	ReadFile(name string) ([]byte, error)
	// OpenAppend opens name for appending, creating nothing.
	OpenAppend(name string) (appendFile, error)
	// WriteFile creates name with data and fsyncs it.
	WriteFile(name string, data []byte) error
	Truncate(name string, size int64) error
	Rename(from, to string) error
	Remove(name string) error
	// SyncDir fsyncs the directory holding name, making renames durable.
	SyncDir(name string) error
	// Lock takes an exclusive lock on name until the Closer is closed.
	Lock(name string) (io.Closer, error)
}

type appendFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

type osDisk struct{}

func (osDisk) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
func (osDisk) OpenAppend(name string) (appendFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
}
func (osDisk) WriteFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
func (osDisk) Lock(name string) (io.Closer, error)    { return lock(name) }
func (osDisk) Truncate(name string, size int64) error { return os.Truncate(name, size) }
func (osDisk) Rename(from, to string) error           { return os.Rename(from, to) }
func (osDisk) Remove(name string) error               { return os.Remove(name) }
func (osDisk) SyncDir(name string) error {
	d, err := os.Open(filepath.Dir(name))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileBacking appends the store's persistent writes to the log.
type fileBacking struct {
	path       string
	d          disk
	lock       io.Closer  // held from open to close
	log        appendFile // nil when closed or after a failed reload
	size       int64      // bytes in the log
	gen        uint64     // snapshot generation
	snapSize   int64
	journalLen int   // journal entries in the log since the last clear
	compactMin int64 // the log is compacted once larger than this and twice the snapshot
}

func (fb *fileBacking) logPath() string { return fb.path + ".log" }

func (fb *fileBacking) mark() int64 { return fb.size }

func (fb *fileBacking) write(k writeKind, c change) error {
	if fb.log == nil {
		return errors.New("store: log not open")
	}
	rec := appendRecord(nil, logRecord(k, c, fb.journalLen))
	n, err := fb.log.Write(rec)
	fb.size += int64(n)
	if err == nil && n != len(rec) {
		err = io.ErrShortWrite
	}
	if err == nil && (k == writePut || k == writeCommit) {
		err = fb.log.Sync()
	}
	if err != nil {
		return fmt.Errorf("%s to %s: %w", k, fb.logPath(), err)
	}
	switch k {
	case writeJournal:
		fb.journalLen++
	case writeClear:
		fb.journalLen = 0
	}
	return nil
}

func (fb *fileBacking) rollback(mark int64) error {
	if fb.log == nil {
		return errors.New("store: log not open")
	}
	if err := fb.log.Truncate(mark); err != nil {
		return err
	}
	if err := fb.log.Sync(); err != nil {
		return err
	}
	fb.size = mark
	fb.journalLen = 0
	return nil
}

// reload reads the snapshot and replays the log, as a fresh process would.
func (fb *fileBacking) reload() (*image, error) {
	fb.closeLog()
	for _, tmp := range []string{fb.path + ".tmp", fb.logPath() + ".tmp"} {
		if err := fb.d.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: removing %s: %w", tmp, err)
		}
	}
	snap, err := fb.d.ReadFile(fb.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, lerr := fb.d.ReadFile(fb.logPath()); lerr == nil {
			return nil, fmt.Errorf("store: %s is missing but its log %s exists; refusing to start empty", fb.path, fb.logPath())
		}
		snap = encodeSnapshot(0, nil)
		if err := fb.replace(fb.path, snap); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", fb.path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("store: reading %s: %w", fb.path, err)
	}
	gen, state, err := parseSnapshot(snap)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, fb.path)
	}
	fb.gen, fb.snapSize = gen, int64(len(snap))

	logBytes, err := fb.d.ReadFile(fb.logPath())
	fresh := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if gen > 0 || len(state) > 0 {
			return nil, fmt.Errorf("store: %s is missing but the snapshot %s holds state (generation %d, %d keys); refusing to start without the writes the log held: restore it from a backup, or move both files away to start a blank device", fb.logPath(), fb.path, gen, len(state))
		}
		fresh = true
	case err != nil:
		return nil, fmt.Errorf("store: reading %s: %w", fb.logPath(), err)
	default:
		base, _, herr := parseLogHeader(logBytes)
		if herr != nil {
			return nil, fmt.Errorf("%w (%s)", herr, fb.logPath())
		}
		if base > gen {
			return nil, fmt.Errorf("store: %s continues generation %d but the snapshot %s is generation %d", fb.logPath(), base, fb.path, gen)
		}
		fresh = base < gen // stale: a compaction stopped between its renames
	}
	img := &image{state: state}
	if fresh {
		if err := fb.replace(fb.logPath(), encodeLogHeader(gen)); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", fb.logPath(), err)
		}
		fb.size = int64(len(encodeLogHeader(gen)))
	} else {
		rp, err := replayLog(logBytes, state)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, fb.logPath())
		}
		img = rp.img
		fb.size = int64(rp.valid)
		if rp.valid < len(logBytes) {
			if err := fb.d.Truncate(fb.logPath(), int64(rp.valid)); err != nil {
				return nil, fmt.Errorf("store: cutting the torn end of %s: %w", fb.logPath(), err)
			}
		}
	}
	fb.journalLen = len(img.journal)
	lf, err := fb.d.OpenAppend(fb.logPath())
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", fb.logPath(), err)
	}
	if err := lf.Sync(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("store: syncing %s: %w", fb.logPath(), err)
	}
	fb.log = lf
	return img, nil
}

// replace writes name through name.tmp and an atomic rename.
func (fb *fileBacking) replace(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := fb.d.WriteFile(tmp, data); err != nil {
		fb.d.Remove(tmp)
		return err
	}
	if err := fb.d.Rename(tmp, name); err != nil {
		fb.d.Remove(tmp)
		return err
	}
	return fb.d.SyncDir(name)
}

// idle compacts the log into a new snapshot once it has grown.
func (fb *fileBacking) idle(img *image) error {
	if fb.log == nil || fb.size <= fb.compactMin || fb.size <= 2*fb.snapSize {
		return nil
	}
	gen := fb.gen + 1
	snap := encodeSnapshot(gen, img.state)
	header := encodeLogHeader(gen)
	snapTmp, logTmp := fb.path+".tmp", fb.logPath()+".tmp"
	if err := fb.d.WriteFile(snapTmp, snap); err != nil {
		fb.d.Remove(snapTmp)
		fb.compactMin = fb.size * 2 // retry later; the log still holds everything
		return nil
	}
	if err := fb.d.WriteFile(logTmp, header); err != nil {
		fb.d.Remove(snapTmp)
		fb.d.Remove(logTmp)
		fb.compactMin = fb.size * 2
		return nil
	}
	if err := fb.d.Rename(snapTmp, fb.path); err != nil {
		fb.d.Remove(snapTmp)
		fb.d.Remove(logTmp)
		fb.compactMin = fb.size * 2
		return nil
	}
	// From here the new snapshot is in place: appending to the old log
	// would be lost, so any failure needs a reload.
	fb.closeLog()
	if err := fb.d.SyncDir(fb.path); err != nil {
		return fmt.Errorf("store: compacting %s: %w", fb.path, err)
	}
	if err := fb.d.Rename(logTmp, fb.logPath()); err != nil {
		return fmt.Errorf("store: compacting %s: %w", fb.path, err)
	}
	if err := fb.d.SyncDir(fb.logPath()); err != nil {
		return fmt.Errorf("store: compacting %s: %w", fb.path, err)
	}
	lf, err := fb.d.OpenAppend(fb.logPath())
	if err != nil {
		return fmt.Errorf("store: compacting %s: %w", fb.path, err)
	}
	fb.log = lf
	fb.gen, fb.snapSize, fb.size = gen, int64(len(snap)), int64(len(header))
	return nil
}

func (fb *fileBacking) closeLog() error {
	if fb.log == nil {
		return nil
	}
	err := fb.log.Close()
	fb.log = nil
	return err
}

// close closes the log and releases the lock.
func (fb *fileBacking) close() error {
	err := fb.closeLog()
	if fb.lock != nil {
		if lerr := fb.lock.Close(); err == nil {
			err = lerr
		}
		fb.lock = nil
	}
	return err
}
