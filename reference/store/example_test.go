package store_test

import (
	"errors"
	"fmt"

	"github.com/spdlab/spdlab/reference/store"
)

// A power cut at the commit mark of a two-key payment: the commit fails,
// memory cannot be read until the power-on recovery, which drops the
// uncommitted journal and leaves the old balance.
func ExampleMemory_TearAt() {
	s := store.NewMemory()
	s.Put("balance", []byte("100"))
	s.Put("atc", []byte("7"))

	s.TearAt(3) // journal entry, journal entry, commit mark
	tx := s.Begin()
	tx.Put("balance", []byte("75"))
	tx.Put("atc", []byte("8"))
	err := tx.Commit()
	fmt.Println(errors.Is(err, store.ErrTorn))
	_, readable := s.Get("balance")
	fmt.Println(readable)

	s.Recover()
	b, _ := s.Get("balance")
	a, _ := s.Get("atc")
	fmt.Printf("%s %s\n", b, a)
	// Output:
	// true
	// false
	// 100 7
}
