package store

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"testing"
)

// form is one implementation of Store under test.
type form struct {
	name string
	open func(t testing.TB) Store
}

func forms() []form {
	return []form{
		{"memory", func(t testing.TB) Store { return NewMemory() }},
		{"file", func(t testing.TB) Store {
			s, err := OpenFile(filepath.Join(t.TempDir(), "card.state"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
}

// contents reads every committed key of s.
func contents(s Store) map[string]string {
	m := map[string]string{}
	for _, k := range s.Keys("") {
		v, ok := s.Get(k)
		if !ok {
			panic("key listed but absent: " + k)
		}
		m[k] = string(v)
	}
	return m
}

func mustPut(t testing.TB, s Store, k, v string) {
	t.Helper()
	if err := s.Put(k, []byte(v)); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func TestBasic(t *testing.T) {
	for _, f := range forms() {
		t.Run(f.name, func(t *testing.T) {
			s := f.open(t)
			if _, ok := s.Get("balance"); ok {
				t.Fatal("empty store has a balance")
			}
			mustPut(t, s, "balance", "100")
			mustPut(t, s, "pin/tries", "3")
			mustPut(t, s, "pin/value", "1234")
			if err := s.Put("empty", nil); err != nil {
				t.Fatal(err)
			}
			if v, ok := s.Get("empty"); !ok || len(v) != 0 {
				t.Fatalf("empty value: %q %v", v, ok)
			}
			if got := fmt.Sprint(s.Keys("pin/")); got != "[pin/tries pin/value]" {
				t.Fatalf("Keys(pin/) = %s", got)
			}
			v, _ := s.Get("balance")
			v[0] = 'X' // a returned value is a copy
			if v, _ := s.Get("balance"); string(v) != "100" {
				t.Fatalf("Get returned shared memory: %q", v)
			}

			tx := s.Begin()
			tx.Put("balance", []byte("90"))
			tx.Delete("pin/value")
			if v, ok := tx.Get("balance"); !ok || string(v) != "90" {
				t.Fatalf("tx does not see its own write: %q", v)
			}
			if _, ok := tx.Get("pin/value"); ok {
				t.Fatal("tx sees a key it deleted")
			}
			if v, _ := s.Get("balance"); string(v) != "100" {
				t.Fatalf("uncommitted write visible: %q", v)
			}
			before := s.Writes()
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := s.Writes() - before; got != 2*2+2 {
				t.Fatalf("commit of 2 changes made %d writes, want 6", got)
			}
			want := map[string]string{"balance": "90", "pin/tries": "3", "empty": ""}
			if got := contents(s); !maps.Equal(got, want) {
				t.Fatalf("after commit %v, want %v", got, want)
			}
			if err := tx.Commit(); err == nil {
				t.Fatal("second Commit succeeded")
			}

			tx = s.Begin()
			tx.Put("balance", []byte("0"))
			tx.Abort()
			if err := tx.Commit(); err == nil {
				t.Fatal("Commit after Abort succeeded")
			}
			if v, _ := s.Get("balance"); string(v) != "90" {
				t.Fatalf("aborted write visible: %q", v)
			}

			before = s.Writes()
			if err := s.Begin().Commit(); err != nil {
				t.Fatal(err)
			}
			if s.Writes() != before {
				t.Fatal("empty transaction wrote")
			}

			old := s.Begin()
			old.Put("balance", []byte("1"))
			newer := s.Begin()
			newer.Put("balance", []byte("2"))
			if err := old.Commit(); err == nil {
				t.Fatal("superseded transaction committed")
			}
			if err := newer.Commit(); err != nil {
				t.Fatal(err)
			}
			if v, _ := s.Get("balance"); string(v) != "2" {
				t.Fatalf("balance %q, want 2", v)
			}

			if err := s.Put("", []byte("x")); err == nil {
				t.Fatal("empty key accepted")
			}
			if err := s.Put("big", make([]byte, MaxValueLen+1)); err == nil {
				t.Fatal("oversized value accepted")
			}
			tx = s.Begin()
			tx.Put("big", make([]byte, MaxValueLen+1))
			if err := tx.Commit(); err == nil {
				t.Fatal("oversized value committed")
			}
			if err := s.Recover(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Put("a", nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Put after Close: %v", err)
			}
		})
	}
}

// initial is the state before the transaction under test; txChanges turns it
// into final.
var (
	initial = map[string]string{"balance": "100", "atc": "7", "pending/1": "25", "pin/tries": "3"}
	final   = map[string]string{"balance": "75", "atc": "8", "pin/tries": "3", "pending/2": "25"}
)

func txChanges(tx Tx) {
	tx.Put("balance", []byte("75"))
	tx.Put("atc", []byte("8"))
	tx.Delete("pending/1")
	tx.Put("pending/2", []byte("25"))
}

// txWrites is the number of persistent writes of that transaction: 4
// journal entries, the commit mark, 4 applies, the clear.
const txWrites = 4*2 + 2

func seed(t testing.TB, s Store) {
	t.Helper()
	tx := s.Begin()
	for k, v := range initial {
		tx.Put(k, []byte(v))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestTearEveryWrite cuts power at every persistent write of a multi-key
// transaction, then at every write of the recovery that follows, and checks
// the state is the old one or the new one each time: old when the cut came
// at or before the commit mark, new after it.
func TestTearEveryWrite(t *testing.T) {
	for _, f := range forms() {
		t.Run(f.name, func(t *testing.T) {
			for n := 1; n <= txWrites+1; n++ {
				for m := 0; m <= txWrites+1; m++ {
					s := f.open(t)
					seed(t, s)
					s.TearAt(n)
					tx := s.Begin()
					txChanges(tx)
					err := tx.Commit()
					want := final
					if n <= txWrites/2 { // the commit mark is write k+1
						want = initial
					}
					if n > txWrites {
						if err != nil {
							t.Fatalf("n=%d: commit without tear failed: %v", n, err)
						}
					} else {
						if !errors.Is(err, ErrTorn) {
							t.Fatalf("n=%d: Commit = %v, want ErrTorn", n, err)
						}
						if err := s.Put("x", nil); !errors.Is(err, ErrTorn) {
							t.Fatalf("n=%d: Put while torn = %v", n, err)
						}
						if err := s.Begin().Commit(); !errors.Is(err, ErrTorn) {
							t.Fatalf("n=%d: Commit while torn = %v", n, err)
						}
						if _, ok := s.Get("balance"); ok {
							t.Fatalf("n=%d: Get while torn returned a value", n)
						}
						// A second cut during the recovery itself.
						s.TearAt(m)
						if err := s.Recover(); err != nil {
							if !errors.Is(err, ErrTorn) || m == 0 {
								t.Fatalf("n=%d m=%d: Recover: %v", n, m, err)
							}
							if err := s.Recover(); err != nil {
								t.Fatalf("n=%d m=%d: second Recover: %v", n, m, err)
							}
						}
					}
					if got := contents(s); !maps.Equal(got, want) {
						t.Fatalf("n=%d m=%d: state %v, want %v", n, m, got, want)
					}
					// The store works normally afterwards.
					s.TearAt(0)
					mustPut(t, s, "after", "1")
					if v, ok := s.Get("after"); !ok || string(v) != "1" {
						t.Fatalf("n=%d: store unusable after recovery", n)
					}
					s.Close()
				}
			}
		})
	}
}

func TestPutAtomic(t *testing.T) {
	for _, f := range forms() {
		t.Run(f.name, func(t *testing.T) {
			s := f.open(t)
			mustPut(t, s, "pin/tries", "3")
			s.TearAt(1)
			if err := s.Put("pin/tries", []byte("2")); !errors.Is(err, ErrTorn) {
				t.Fatalf("torn Put = %v", err)
			}
			w := s.Writes()
			if err := s.Recover(); err != nil {
				t.Fatal(err)
			}
			if s.Writes() != w {
				t.Fatal("recovery after a torn Put wrote")
			}
			if v, _ := s.Get("pin/tries"); string(v) != "3" {
				t.Fatalf("after torn Put: %q, want old 3", v)
			}
			s.TearAt(2)
			mustPut(t, s, "pin/tries", "2")
			if v, _ := s.Get("pin/tries"); string(v) != "2" {
				t.Fatalf("after Put: %q", v)
			}
			if err := s.Put("pin/tries", []byte("1")); !errors.Is(err, ErrTorn) {
				t.Fatalf("second write not torn: %v", err)
			}
			if err := s.Recover(); err != nil {
				t.Fatal(err)
			}
			if v, _ := s.Get("pin/tries"); string(v) != "2" {
				t.Fatalf("after torn Put: %q, want 2", v)
			}
			s.TearAt(0)
			mustPut(t, s, "pin/tries", "1")
		})
	}
}

func BenchmarkCommit(b *testing.B) {
	for _, f := range forms() {
		b.Run(f.name, func(b *testing.B) {
			s := f.open(b)
			seed(b, s)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				tx := s.Begin()
				tx.Put("balance", []byte(fmt.Sprint(i)))
				tx.Put("atc", []byte(fmt.Sprint(i)))
				tx.Put(fmt.Sprintf("pending/%d", i%16), []byte("25"))
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentUse runs a few goroutines against one store; with -race it
// shows the mutex covers every path. Each goroutine owns its keys, so the
// end state is known.
func TestConcurrentUse(t *testing.T) {
	for _, f := range forms() {
		t.Run(f.name, func(t *testing.T) {
			s := f.open(t)
			done := make(chan error)
			for g := range 4 {
				go func() {
					var err error
					for i := range 25 {
						k := fmt.Sprintf("g%d/", g)
						if i%2 == 0 {
							err = s.Put(k+"put", []byte(fmt.Sprint(i)))
						} else {
							tx := s.Begin()
							tx.Put(k+"tx", []byte(fmt.Sprint(i)))
							err = tx.Commit()
							if errors.Is(err, errTxSuperseded) {
								err = nil // another goroutine's Begin came between
							}
						}
						if err != nil {
							break
						}
						s.Get(k + "put")
						s.Keys(k)
						s.Writes()
					}
					done <- err
				}()
			}
			for range 4 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			for g := range 4 {
				if v, _ := s.Get(fmt.Sprintf("g%d/put", g)); string(v) != "24" {
					t.Fatalf("g%d/put = %q", g, v)
				}
			}
		})
	}
}
