// Package store is the SPD's persistent memory: a key-value store with
// atomic, journaled transactions and a tear point.
//
// Every change to persistent memory is a sequence of persistent writes.
// A transaction (Begin, Put/Delete, Commit) is journaled so that a power cut
// at any of its writes leaves, after Recover, either the old state or the new
// one, never a mix. Put outside a transaction is a single atomic write; the
// device uses it for the PIN try counter, which must be decremented before
// the PIN is compared (SPD-PIN-2 in reference/SPEC.md).
//
// The tear point ("cut power at the Nth persistent write from now") is how
// the reference device (device.TearAt) and the suite's tearing cases
// simulate a card pulled mid-write: the Nth write does not happen, the call returns ErrTorn, and every later
// call returns ErrTorn until Recover runs at the next power-on.
//
// Two implementations share one engine, so a tearing test on one shows
// what the other does:
//
//   - NewMemory: persistent memory held in the process (tests, the
//     in-process reference device, emulators without --state).
//   - OpenFile: a snapshot and a CRC-framed log on disk (the emulator's
//     --state FILE); a crash of the process is recovered like a tear, and a
//     full disk fails the call without losing anything. The on-disk format
//     is documented in format.go.
//
// The persistent writes, each one cut by the tear point when it is the
// armed one: Put outside a transaction is one write. Commit of k changed
// keys is 2k+2 writes: k journal entries (in key order), the commit mark,
// k applies, the clear of the journal; a cut at or before the commit mark
// leaves the old state, a cut after it the new one once Recover rolls the
// journal forward. Recover's own writes (k applies and a clear for a
// committed journal, one clear for an uncommitted one) count too and can be
// cut again; Recover is then simply run again.
//
// While torn, memory cannot be read: Get reports no value and Keys none,
// because the committed area may be half-applied until Recover.
package store

import "errors"

// ErrTorn is returned by the write at the tear point and by every call after
// it until Recover. A disk write of a File that failed and left the store
// needing Recover (after a commit mark, or when undoing a partial append
// failed too) also matches ErrTorn under errors.Is, besides its cause: the
// device treats both alike, as a write that did not finish and is decided
// at the next power-on. A failed write that could be undone leaves the old
// state readable and returns an error that does not match ErrTorn.
var ErrTorn = errors.New("store: power cut at tear point")

// Store is the device's persistent memory.
type Store interface {
	// Get returns the committed value of key.
	Get(key string) ([]byte, bool)
	// Keys returns the committed keys with the given prefix, sorted.
	Keys(prefix string) []string
	// Begin starts a transaction. Only one runs at a time.
	Begin() Tx
	// Put writes one key atomically, outside any transaction: one
	// persistent write.
	Put(key string, value []byte) error
	// TearAt arms a power cut at the nth persistent write from now
	// (1 = the next write). n <= 0 disarms it.
	TearAt(n int)
	// Writes counts the persistent writes made so far (torn ones excluded).
	Writes() uint64
	// Recover is the power-on procedure: it rolls a committed journal
	// forward or discards an uncommitted one, and clears the torn state.
	Recover() error
	// Close releases the backing file, if any.
	Close() error
}

// Tx is a transaction. Reads see the transaction's own writes.
type Tx interface {
	Get(key string) ([]byte, bool)
	Put(key string, value []byte)
	Delete(key string)
	// Commit makes every change persistent at once, or returns an error
	// (ErrTorn at the tear point) and leaves the old state.
	Commit() error
	// Abort drops the transaction's changes.
	Abort()
}
