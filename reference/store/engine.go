package store

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Limits on what one persistent write may hold. They bound what the file
// parser accepts, so a corrupt length can never make it allocate without
// limit.
const (
	MaxKeyLen   = 4 << 10 // bytes in a key
	MaxValueLen = 1 << 20 // bytes in a value
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("store: closed")

var (
	errTxDone       = errors.New("store: transaction already committed or aborted")
	errTxSuperseded = errors.New("store: transaction superseded by a later Begin")
	errEmptyKey     = errors.New("store: empty key")
)

// writeKind names the persistent writes that the store is made of. Each one
// is a single write the tear point can cut.
type writeKind byte

const (
	writePut     writeKind = 'P' // one key outside any transaction
	writeJournal writeKind = 'J' // one journal entry of a transaction
	writeCommit  writeKind = 'C' // the commit mark: the transaction is decided
	writeApply   writeKind = 'A' // one journal entry applied to the committed state
	writeClear   writeKind = 'X' // the journal emptied
)

func (k writeKind) String() string {
	switch k {
	case writePut:
		return "put"
	case writeJournal:
		return "journal entry"
	case writeCommit:
		return "commit mark"
	case writeApply:
		return "apply"
	case writeClear:
		return "clear journal"
	}
	return fmt.Sprintf("writeKind(%#02x)", byte(k))
}

// change is one key's new value, or its deletion.
type change struct {
	Key    string
	Value  []byte
	Delete bool
}

func checkChange(c change) error {
	if c.Key == "" {
		return errEmptyKey
	}
	if len(c.Key) > MaxKeyLen {
		return fmt.Errorf("store: key of %d bytes exceeds %d", len(c.Key), MaxKeyLen)
	}
	if len(c.Value) > MaxValueLen {
		return fmt.Errorf("store: value of %q has %d bytes, more than %d", c.Key, len(c.Value), MaxValueLen)
	}
	return nil
}

// image is the content of persistent memory: the committed state and the
// journal area with its commit mark.
type image struct {
	state     map[string][]byte
	journal   []change
	committed bool
}

func newImage() *image { return &image{state: map[string][]byte{}} }

func (m *image) applyChange(c change) {
	if c.Delete {
		delete(m.state, c.Key)
		return
	}
	m.state[c.Key] = c.Value
}

// do performs one persistent write on the image.
func (m *image) do(k writeKind, c change) {
	switch k {
	case writePut, writeApply:
		m.applyChange(c)
	case writeJournal:
		m.journal = append(m.journal, c)
	case writeCommit:
		m.committed = true
	case writeClear:
		m.journal = nil
		m.committed = false
	}
}

// backing is where a store's persistent writes go beyond the image kept in
// process memory. Memory has none; File appends records to its log.
type backing interface {
	// mark returns a position that rollback can return to.
	mark() int64
	// write makes one persistent write durable enough for its kind.
	write(k writeKind, c change) error
	// rollback undoes every write after mark; it is used after an I/O
	// error, so that a failed write leaves nothing behind.
	rollback(mark int64) error
	// reload reads persistent memory back as a power-on would.
	reload() (*image, error)
	// idle is called when the journal is empty, for housekeeping. An
	// error means the store must reload before it is used again.
	idle(img *image) error
	close() error
}

// engine is the store logic shared by Memory and File: transactions, the
// write sequence, the tear point and recovery.
type engine struct {
	mu     sync.Mutex
	img    *image
	back   backing // nil for Memory
	tearIn int     // writes until the tear; 0 = disarmed
	fault  error   // ErrTorn or an I/O failure; cleared by Recover
	writes uint64
	txGen  uint64
	closed bool
}

// step performs one persistent write: the tear point may cut it, the
// backing may fail it; only then does the image change.
func (e *engine) step(k writeKind, c change) error {
	if e.closed {
		return ErrClosed
	}
	if e.fault != nil {
		return e.fault
	}
	if e.tearIn > 0 {
		e.tearIn--
		if e.tearIn == 0 {
			e.fault = ErrTorn
			return ErrTorn
		}
	}
	if e.back != nil {
		if err := e.back.write(k, c); err != nil {
			return err
		}
	}
	e.img.do(k, c)
	e.writes++
	return nil
}

// unfinishedError is a failed disk write that left the store needing
// Recover. It matches ErrTorn: to the device it is the same event, a write
// that did not finish and is decided at the next power-on. It also
// matches its cause (syscall.ENOSPC, say).
type unfinishedError struct {
	msg   string
	cause error
}

func (e *unfinishedError) Error() string   { return e.msg + ": " + e.cause.Error() }
func (e *unfinishedError) Unwrap() []error { return []error{ErrTorn, e.cause} }

// ioFailed handles an I/O error at a write that the caller can undo: the
// backing is rolled back to mark and the image keeps its old content. If
// even that fails, the store needs Recover.
func (e *engine) ioFailed(err error, mark int64, undo func()) error {
	if errors.Is(err, ErrTorn) || errors.Is(err, ErrClosed) || e.fault != nil {
		return err
	}
	werr := fmt.Errorf("store: persistent write failed, nothing changed: %w", err)
	if e.back != nil {
		if rerr := e.back.rollback(mark); rerr != nil {
			e.fault = &unfinishedError{fmt.Sprintf("store: persistent write failed and could not be undone (%v); Recover decides old or new", rerr), err}
			return e.fault
		}
	}
	if undo != nil {
		undo()
	}
	return werr
}

// decided handles an error after the commit mark was written: the
// transaction is decided but not applied, so the store needs Recover, which
// rolls it forward.
func (e *engine) decided(err error) error {
	if errors.Is(err, ErrTorn) || errors.Is(err, ErrClosed) || e.fault != nil {
		return err
	}
	e.fault = &unfinishedError{"store: write after the commit mark failed; Recover rolls the transaction forward", err}
	return e.fault
}

func (e *engine) usable() bool { return !e.closed && e.fault == nil }

// Get returns a copy of the committed value of key. While the store is torn
// (or failed, or closed) memory cannot be read: Get reports no value.
func (e *engine) Get(key string) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.get(key)
}

func (e *engine) get(key string) ([]byte, bool) {
	if !e.usable() {
		return nil, false
	}
	v, ok := e.img.state[key]
	if !ok {
		return nil, false
	}
	return append([]byte{}, v...), true
}

// Keys returns the committed keys with the given prefix, sorted. While the
// store is torn (or failed, or closed) it returns nil.
func (e *engine) Keys(prefix string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.usable() {
		return nil
	}
	var keys []string
	for k := range e.img.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Put writes one key atomically outside any transaction: one persistent
// write. A nil value stores an empty value.
func (e *engine) Put(key string, value []byte) error {
	c := change{Key: key, Value: append([]byte{}, value...)}
	if err := checkChange(c); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkJournalClear(); err != nil {
		return err
	}
	mark := e.mark()
	if err := e.step(writePut, c); err != nil {
		return e.ioFailed(err, mark, nil)
	}
	e.idle()
	return nil
}

// checkJournalClear refuses writes while a journal is left over: only
// Recover may touch memory then. (Only reachable when a write failed.)
func (e *engine) checkJournalClear() error {
	if e.closed {
		return ErrClosed
	}
	if e.fault != nil {
		return e.fault
	}
	if len(e.img.journal) > 0 || e.img.committed {
		return errors.New("store: journal not empty; Recover first")
	}
	return nil
}

func (e *engine) mark() int64 {
	if e.back == nil {
		return 0
	}
	return e.back.mark()
}

func (e *engine) idle() {
	if e.back != nil && e.fault == nil && len(e.img.journal) == 0 && !e.img.committed {
		if err := e.back.idle(e.img); err != nil {
			e.fault = &unfinishedError{"store: Recover must reopen the files", err}
		}
	}
}

// TearAt arms a power cut at the nth persistent write from now (1 = the
// next write). n <= 0 disarms it. The tear fires once.
func (e *engine) TearAt(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n < 0 {
		n = 0
	}
	e.tearIn = n
}

// Writes counts the persistent writes made so far (torn ones excluded).
func (e *engine) Writes() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writes
}

// Torn reports whether the store is waiting for Recover after a tear or a
// failed write.
func (e *engine) Torn() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fault != nil
}

// Recover is the power-on procedure. A File first reads persistent memory
// back from disk, exactly as a restarted process would. Then a committed
// journal is rolled forward (one write per entry, then the journal is
// cleared) and an uncommitted one is dropped (one write). The writes of
// Recover count and can be torn like any others: a torn Recover is simply
// run again.
func (e *engine) Recover() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.back != nil {
		img, err := e.back.reload()
		if err != nil {
			e.fault = fmt.Errorf("store: recover: %w", err)
			return e.fault
		}
		e.img = img
	}
	e.fault = nil
	if err := e.finishJournal(); err != nil {
		return err
	}
	e.idle()
	return nil
}

func (e *engine) finishJournal() error {
	if e.img.committed {
		for _, c := range e.img.journal {
			if err := e.step(writeApply, c); err != nil {
				return e.decided(err)
			}
		}
	}
	if len(e.img.journal) > 0 || e.img.committed {
		if err := e.step(writeClear, change{}); err != nil {
			return e.decided(err)
		}
	}
	return nil
}

// Close releases the backing file, if any. Every later call returns
// ErrClosed.
func (e *engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.back != nil {
		return e.back.close()
	}
	return nil
}

// Begin starts a transaction. Only one runs at a time: Begin supersedes a
// transaction still open, whose Commit then fails and changes nothing.
func (e *engine) Begin() Tx {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.txGen++
	return &tx{e: e, gen: e.txGen, changes: map[string]change{}}
}

// tx is a transaction: changes are buffered until Commit.
type tx struct {
	e       *engine
	gen     uint64
	changes map[string]change
	done    bool
}

func (t *tx) Get(key string) ([]byte, bool) {
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	if c, ok := t.changes[key]; ok && !t.done {
		if c.Delete {
			return nil, false
		}
		return append([]byte{}, c.Value...), true
	}
	return t.e.get(key)
}

func (t *tx) Put(key string, value []byte) {
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	if t.done {
		return
	}
	t.changes[key] = change{Key: key, Value: append([]byte{}, value...)}
}

func (t *tx) Delete(key string) {
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	if t.done {
		return
	}
	t.changes[key] = change{Key: key, Delete: true}
}

func (t *tx) Abort() {
	t.e.mu.Lock()
	defer t.e.mu.Unlock()
	t.done = true
	t.changes = nil
}

// Commit writes the journal entries (one write each, in key order), the
// commit mark, applies each entry (one write each) and clears the journal
// (one write): 2k+2 persistent writes for k changed keys, none for an empty
// transaction. An error before the commit mark leaves the old state; an
// error after it (ErrTorn, or a failed disk write) leaves the store needing
// Recover, which completes the transaction.
func (t *tx) Commit() error {
	e := t.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.done {
		return errTxDone
	}
	t.done = true
	if t.gen != e.txGen {
		return errTxSuperseded
	}
	changes := make([]change, 0, len(t.changes))
	for _, c := range t.changes {
		if err := checkChange(c); err != nil {
			return err
		}
		changes = append(changes, c)
	}
	t.changes = nil
	sort.Slice(changes, func(i, j int) bool { return changes[i].Key < changes[j].Key })
	if err := e.checkJournalClear(); err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	mark := e.mark()
	undo := func() { e.img.journal, e.img.committed = nil, false }
	for _, c := range changes {
		if err := e.step(writeJournal, c); err != nil {
			return e.ioFailed(err, mark, undo)
		}
	}
	if err := e.step(writeCommit, change{}); err != nil {
		return e.ioFailed(err, mark, undo)
	}
	if err := e.finishJournal(); err != nil {
		return err
	}
	e.idle()
	return nil
}
