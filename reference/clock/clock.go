// Package clock is the time that retry loops, back-off and call timeouts
// wait on. In service it is the system clock (System); the conformance
// suite gives the terminal a Simulated clock, which moves only when the
// suite or a waiter moves it, so that network-fault cases take no wall time
// and still see every retry happen at the clock time it would in service.
package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock tells the time and waits on it.
type Clock interface {
	// Now is the clock's current time.
	Now() time.Time
	// After returns a channel that receives the clock's time once d has
	// passed on it.
	After(d time.Duration) <-chan time.Time
	// WithTimeout returns a copy of ctx that ends when d has passed on the
	// clock (its Err is then context.DeadlineExceeded), when ctx ends, or
	// when cancel is called.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

// System is the operating system's clock.
type System struct{}

var _ Clock = System{}

// Now implements Clock.
func (System) Now() time.Time { return time.Now() }

// After implements Clock.
func (System) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WithTimeout implements Clock.
func (System) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// Or returns c, or System when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return System{}
	}
	return c
}

// Simulated is a clock that moves only when told to, as in a
// discrete-event simulation: Advance moves it, and so does every After,
// which jumps the clock to the end of the wait at once (a waiter on a
// simulated clock is the only thing that happens until its wait is over).
// Timeouts made by WithTimeout end when the clock passes them. Every wait
// is logged (Waits), so that a test can check how long a program waited
// and how often.
//
// Simulated suits programs that wait in one goroutine at a time, as a
// terminal's retry loop does; two goroutines sleeping on it at once each
// move it by their own wait.
type Simulated struct {
	mu       sync.Mutex
	now      time.Time
	timeouts []*timeout // pending, in order of their end
	waits    []Wait
}

var _ Clock = (*Simulated)(nil)

// Wait is one wait on a Simulated clock.
type Wait struct {
	At  time.Time     // clock time when the wait began
	For time.Duration // how long it waited
}

type timeout struct {
	end  time.Time
	fire func()
}

// NewSimulated returns a simulated clock showing start.
func NewSimulated(start time.Time) *Simulated { return &Simulated{now: start} }

// Now implements Clock.
func (s *Simulated) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the clock on by d, ending every timeout it passes.
func (s *Simulated) Advance(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s.mu.Lock()
	s.now = s.now.Add(d)
	var due []*timeout
	for len(s.timeouts) > 0 && !s.timeouts[0].end.After(s.now) {
		due = append(due, s.timeouts[0])
		s.timeouts = s.timeouts[1:]
	}
	s.mu.Unlock()
	for _, t := range due {
		t.fire()
	}
}

// After implements Clock: it logs the wait, moves the clock to its end
// (ending the timeouts it passes) and returns a channel that already holds
// the new time.
func (s *Simulated) After(d time.Duration) <-chan time.Time {
	s.mu.Lock()
	s.waits = append(s.waits, Wait{At: s.now, For: d})
	s.mu.Unlock()
	s.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- s.Now()
	return ch
}

// Sleep waits d on the clock, or until ctx ends, whichever comes first: it
// moves the clock from one pending timeout to the next (ending each) until
// ctx has ended or d has passed, and logs the wait. It returns ctx.Err()
// when ctx ended first. A test's slow peer sleeps this way on the context
// of the request it answers late, so the clock stops at the requester's
// timeout, not at the late answer.
func (s *Simulated) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	at := s.now
	end := at.Add(d)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waits = append(s.waits, Wait{At: at, For: s.now.Sub(at)})
		s.mu.Unlock()
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		next := end
		if len(s.timeouts) > 0 && s.timeouts[0].end.Before(next) {
			next = s.timeouts[0].end
		}
		step := next.Sub(s.now)
		s.mu.Unlock()
		if step <= 0 && !next.Before(end) {
			return nil
		}
		s.Advance(step)
	}
}

// WithTimeout implements Clock. The context has no Deadline (its end is
// clock time, not wall time); its Err is context.DeadlineExceeded once the
// clock has passed now+d.
func (s *Simulated) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancelCause(ctx)
	t := &timeout{fire: func() { cancel(context.DeadlineExceeded) }}
	s.mu.Lock()
	t.end = s.now.Add(d)
	if d <= 0 {
		s.mu.Unlock()
		t.fire()
	} else {
		i := sort.Search(len(s.timeouts), func(i int) bool { return s.timeouts[i].end.After(t.end) })
		s.timeouts = append(s.timeouts, nil)
		copy(s.timeouts[i+1:], s.timeouts[i:])
		s.timeouts[i] = t
		s.mu.Unlock()
	}
	stop := func() {
		s.mu.Lock()
		for i, p := range s.timeouts {
			if p == t {
				s.timeouts = append(s.timeouts[:i], s.timeouts[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		cancel(context.Canceled)
	}
	return timeoutContext{cctx}, stop
}

// Waits returns every wait made with After so far, oldest first.
func (s *Simulated) Waits() []Wait {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Wait(nil), s.waits...)
}

// Pending is how many timeouts have not ended yet.
func (s *Simulated) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.timeouts)
}

// timeoutContext reports a timeout the way context.WithTimeout does: Err
// is context.DeadlineExceeded, not context.Canceled.
type timeoutContext struct{ context.Context }

func (c timeoutContext) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}
