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
// emulator/fault and the tearing tests simulate a card pulled mid-write:
// the Nth write does not happen, the call returns ErrTorn, and every later
// call returns ErrTorn until Recover runs at the next power-on.
package store

import "errors"

// ErrTorn is returned by the write at the tear point and by every call after
// it until Recover.
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
