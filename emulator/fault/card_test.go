package fault

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/store"
)

// counterCard is a tiny card application for these tests: a counter kept
// in a store. INS 01 adds the 2-byte big-endian value in its data to the
// counter and appends a history entry, in one transaction; INS 02 reads the
// counter; INS 03 echoes its data.
type counterCard struct {
	st      *store.Memory
	powered bool
	resets  int
}

var (
	swOK  = []byte{0x90, 0x00}
	swINS = []byte{0x6D, 0x00}
)

func newCounterCard() *counterCard { return &counterCard{st: store.NewMemory(), powered: true} }

func (c *counterCard) counter() uint16 {
	v, ok := c.st.Get("counter")
	if !ok {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (c *counterCard) Process(cmd []byte) []byte {
	if !c.powered || len(cmd) < 4 {
		return nil
	}
	var data []byte
	if len(cmd) > 5 {
		data = cmd[5:]
	}
	switch cmd[1] {
	case 0x01:
		if len(data) != 2 {
			return []byte{0x67, 0x00}
		}
		n := c.counter() + binary.BigEndian.Uint16(data)
		tx := c.st.Begin()
		tx.Put("counter", binary.BigEndian.AppendUint16(nil, n))
		tx.Put("history", binary.BigEndian.AppendUint16(nil, n))
		if err := tx.Commit(); errors.Is(err, store.ErrTorn) {
			return nil
		} else if err != nil {
			return []byte{0x65, 0x81}
		}
		return swOK
	case 0x02:
		return binary.BigEndian.AppendUint16(nil, c.counter())
	case 0x03:
		return append(append([]byte{}, data...), swOK...)
	}
	return swINS
}

func (c *counterCard) PowerOn() {
	c.powered = true
	c.st.Recover()
}
func (c *counterCard) PowerOff() { c.powered = false }
func (c *counterCard) Reset()    { c.resets++ }

var (
	add1    = []byte{0x80, 0x01, 0x00, 0x00, 0x02, 0x00, 0x01}
	readCtr = []byte{0x80, 0x02, 0x00, 0x00, 0x02}
	echo    = []byte{0x80, 0x03, 0x00, 0x00, 0x03, 'a', 'b', 'c'}
)

func readCounter(t *testing.T, c interface{ Process([]byte) []byte }) uint16 {
	t.Helper()
	r := c.Process(readCtr)
	if len(r) != 2 {
		t.Fatalf("read counter: %x", r)
	}
	return binary.BigEndian.Uint16(r)
}

func TestRemoval(t *testing.T) {
	card := newCounterCard()
	rm := NewRemoval(card)
	var events []bool
	rm.Notify(func(present bool) { events = append(events, present) })

	if r := rm.Process(echo); !bytes.Equal(r, []byte("abc\x90\x00")) {
		t.Fatalf("echo: %x", r)
	}
	rm.Remove()
	if rm.Present() || card.powered {
		t.Fatal("removed card still present or powered")
	}
	if r := rm.Process(echo); r != nil {
		t.Fatalf("absent card answered %x", r)
	}
	rm.PowerOn()
	rm.Reset()
	if r := rm.Process(echo); r != nil {
		t.Fatal("absent card answered after PowerOn")
	}
	rm.Insert()
	if r := rm.Process(echo); r != nil {
		t.Fatal("inserted card answered before PowerOn")
	}
	rm.PowerOn()
	if r := rm.Process(echo); r == nil {
		t.Fatal("powered card did not answer")
	}

	// Pulled as the second command arrives: it never ran.
	rm.RemoveDuring(2, RemoveBeforeCommand)
	if r := rm.Process(add1); !bytes.Equal(r, swOK) {
		t.Fatalf("add: %x", r)
	}
	if r := rm.Process(add1); r != nil {
		t.Fatalf("pulled card answered %x", r)
	}
	rm.Insert()
	rm.PowerOn()
	if got := readCounter(t, rm); got != 1 {
		t.Fatalf("counter %d, want 1 (the pulled command did not run)", got)
	}

	// Pulled after running the command: it took effect, its answer is lost.
	rm.RemoveDuring(1, RemoveAfterCommand)
	if r := rm.Process(add1); r != nil {
		t.Fatalf("pulled card answered %x", r)
	}
	if r := rm.Process(readCtr); r != nil {
		t.Fatal("next command saw a card before reinsertion")
	}
	rm.Insert()
	rm.Reset() // a reset powers an inserted card
	if got := readCounter(t, rm); got != 2 {
		t.Fatalf("counter %d, want 2 (the pulled command ran)", got)
	}
	if rm.Removals() != 3 {
		t.Fatalf("removals %d, want 3", rm.Removals())
	}
	want := []bool{false, true, false, true, false, true}
	if !equalBools(events, want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	if RemoveAfterCommand.String() != "after command" {
		t.Fatal(RemoveAfterCommand.String())
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLatency(t *testing.T) {
	run := func(seed uint64) []time.Duration {
		var slept []time.Duration
		card := newCounterCard()
		l := NewLatency(card, LatencyConfig{Fixed: 5 * time.Millisecond, Jitter: 2 * time.Millisecond, Seed: seed,
			Sleep: func(d time.Duration) { slept = append(slept, d) }})
		for range 50 {
			if r := l.Process(echo); !bytes.Equal(r, []byte("abc\x90\x00")) {
				t.Fatalf("echo through latency: %x", r)
			}
		}
		n, total := l.Added()
		var sum time.Duration
		for _, d := range slept {
			if d < 5*time.Millisecond || d >= 7*time.Millisecond {
				t.Fatalf("delay %v outside [5ms, 7ms)", d)
			}
			sum += d
		}
		if n != 50 || total != sum {
			t.Fatalf("Added() = %d, %v; slept %d, %v", n, total, len(slept), sum)
		}
		return slept
	}
	a, b, c := run(1), run(1), run(2)
	same := func(x, y []time.Duration) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("same seed, different delays")
	}
	if same(a, c) {
		t.Fatal("different seeds, same delays")
	}
	card := newCounterCard()
	l := NewLatency(card, LatencyConfig{Sleep: func(time.Duration) {}})
	l.PowerOff()
	if card.powered {
		t.Fatal("PowerOff not passed on")
	}
	l.PowerOn()
	l.Reset()
	if !card.powered || card.resets != 1 {
		t.Fatal("PowerOn or Reset not passed on")
	}
}
