package emulator

import (
	"sync"
	"testing"
	"time"
)

// TestTimeExtension: a long command gets its first extension no sooner
// than one interval after it began and the next no sooner than one
// interval later, all with its tag; none comes after End; the timer stops
// once no command comes, and the next command starts it again; none comes
// after Stop.
func TestTimeExtension(t *testing.T) {
	const interval = 5 * time.Millisecond
	var mu sync.Mutex
	var sent []time.Time
	got := make(chan uint32, 100)
	x := NewTimeExtension(interval, func(tag uint32) {
		mu.Lock()
		sent = append(sent, time.Now())
		mu.Unlock()
		got <- tag
	})
	defer x.Stop()
	for round, tag := range []uint32{7, 9} {
		begin := time.Now()
		x.Begin(tag)
		for i := range 2 {
			select {
			case g := <-got:
				if g != tag {
					t.Fatalf("round %d: extension %d with tag %d, want %d", round, i, g, tag)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: no extension %d for a running command", round, i)
			}
		}
		x.End()
		mu.Lock()
		first, second := sent[len(sent)-2], sent[len(sent)-1]
		mu.Unlock()
		if first.Sub(begin) < interval || second.Sub(first) < interval {
			t.Fatalf("round %d: extensions %v and %v after the command began, want at least one interval apart", round, first.Sub(begin), second.Sub(begin))
		}
		// The timer stops when commands stop, and sends nothing more.
		for i := range 3 {
			x.Begin(uint32(100 + i))
			x.End()
		}
		mu.Lock()
		n := len(sent)
		mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		for {
			x.mu.Lock()
			armed := x.armed
			x.mu.Unlock()
			if !armed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the timer still runs with no command", round)
			}
			time.Sleep(interval)
		}
		mu.Lock()
		if len(sent) != n {
			t.Fatalf("round %d: %d extensions after the command ended", round, len(sent)-n)
		}
		mu.Unlock()
	}
	x.Stop()
	x.Begin(1)
	time.Sleep(3 * interval)
	x.End()
	if len(got) != 0 {
		t.Fatal("an extension after Stop")
	}
}
