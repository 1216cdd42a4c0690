package emulator

import (
	"sync"
	"time"
)

// TimeExtension sends the time extension of a transport (the serial
// line's WAIT frame, the SD channel's BUSY block) while a command runs
// longer than its interval: the first once the command has run for one
// interval, then one every interval until it ends.
//
// It keeps one timer for as long as commands keep coming, rather than one
// a command: a command then costs no timer of the Go runtime, whose
// setting can wake a sleeping thread of the process. The timer stops
// after an interval without a command.
type TimeExtension struct {
	interval time.Duration
	send     func(tag uint32)

	mu      sync.Mutex
	timer   *time.Timer
	armed   bool      // the timer will fire
	running bool      // a command runs
	used    bool      // a command began since the timer last fired
	tag     uint32    // the running command's, for send
	since   time.Time // when it began, or when the last extension went
	stopped bool
}

// NewTimeExtension returns a TimeExtension that calls send, with the tag
// given to Begin, to send one extension. send runs while End waits: no
// extension goes after the command's End.
func NewTimeExtension(interval time.Duration, send func(tag uint32)) *TimeExtension {
	return &TimeExtension{interval: interval, send: send}
}

// Begin marks the start of a command.
func (x *TimeExtension) Begin(tag uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.running, x.used, x.tag, x.since = true, true, tag, time.Now()
	if x.armed || x.stopped {
		return
	}
	x.armed = true
	if x.timer == nil {
		x.timer = time.AfterFunc(x.interval, x.fire)
	} else {
		x.timer.Reset(x.interval)
	}
}

// End marks the end of the command; once it returns, no extension for it
// is sent.
func (x *TimeExtension) End() {
	x.mu.Lock()
	x.running = false
	x.mu.Unlock()
}

// Stop ends the timer for good.
func (x *TimeExtension) Stop() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stopped, x.armed = true, false
	if x.timer != nil {
		x.timer.Stop()
	}
}

func (x *TimeExtension) fire() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.stopped {
		return
	}
	now := time.Now()
	switch {
	case x.running:
		if due := x.since.Add(x.interval); now.Before(due) {
			x.timer.Reset(due.Sub(now))
			return
		}
		x.send(x.tag)
		x.since = now
		x.timer.Reset(x.interval)
	case x.used:
		x.used = false
		x.timer.Reset(x.interval)
	default:
		x.armed = false
	}
}
