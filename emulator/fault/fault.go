// Package fault injects faults into any emulated device: card removal in
// the middle of a command, added latency, corruption of a byte stream (for
// the serial transport), and a timing-faithful mode that takes as long as
// a real card would under ISO/IEC 7816-3 (ETU, character and block guard
// times, waiting times and their extensions). rigs/dut applies them to an
// emulated DUT named with faults (usb-emu+t1=96, serial-emu+noise=0.0002),
// so the conformance suite runs through them. A power cut at the Nth
// persistent write (tearing) is the reference device's own (device.TearAt,
// through its store), swept by the suite's tearing cases.
//
// Every card wrapper is an emulator.Card wrapping an emulator.Card, so any
// emulator can serve a faulty card and wrappers stack:
//
//	slot := fault.NewRemoval(dev)
//	card, err := fault.NewTimed(slot, fault.TimedConfig{Timing: timing})
//
// The wrappers follow the emulator.Card contract: Process returns nil when
// power was lost while the command ran, and the card then answers nothing
// until the next PowerOn.
package fault

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// RemovalMode says what a removal in the middle of a command leaves done.
type RemovalMode int

const (
	// RemoveBeforeCommand pulls the card as the command arrives: the card
	// never sees it.
	RemoveBeforeCommand RemovalMode = iota
	// RemoveAfterCommand pulls the card after it has run the command and
	// before its answer leaves: the command took effect, the terminal
	// never learns how.
	RemoveAfterCommand
)

func (m RemovalMode) String() string {
	switch m {
	case RemoveBeforeCommand:
		return "before command"
	case RemoveAfterCommand:
		return "after command"
	}
	return fmt.Sprintf("RemovalMode(%d)", int(m))
}

// Removal pulls the card out of its slot, now or in the middle of a chosen
// command. A removed card answers nil to every command and ignores PowerOn
// and resets until Insert; once inserted it needs a PowerOn (a reader
// powers an inserted card when the host asks it to).
type Removal struct {
	mu       sync.Mutex
	card     emulator.Card
	present  bool
	powered  bool
	during   int // removal at the during-th Process from now; 0 = none
	mode     RemovalMode
	removals int
	notify   func(present bool)
}

var _ emulator.Card = (*Removal)(nil)

// NewRemoval wraps card, present and powered.
func NewRemoval(card emulator.Card) *Removal {
	return &Removal{card: card, present: true, powered: true}
}

// Notify sets a function called (outside the wrapper's lock) each time the
// card is removed or inserted, so an emulator can tell its reader.
func (r *Removal) Notify(f func(present bool)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notify = f
}

// Remove pulls the card now.
func (r *Removal) Remove() {
	r.mu.Lock()
	notify := r.remove()
	r.mu.Unlock()
	notify()
}

func (r *Removal) remove() func() {
	r.during = 0
	if !r.present {
		return func() {}
	}
	r.present = false
	if r.powered {
		r.card.PowerOff()
	}
	r.powered = false
	r.removals++
	if f := r.notify; f != nil {
		return func() { f(false) }
	}
	return func() {}
}

// RemoveDuring pulls the card during the nth command from now (1 = the
// next), as mode says. n <= 0 cancels.
func (r *Removal) RemoveDuring(n int, mode RemovalMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.during = max(n, 0)
	r.mode = mode
}

// Insert puts the card back, unpowered.
func (r *Removal) Insert() {
	r.mu.Lock()
	if r.present {
		r.mu.Unlock()
		return
	}
	r.present = true
	r.powered = false
	f := r.notify
	r.mu.Unlock()
	if f != nil {
		f(true)
	}
}

// Present reports whether the card is in its slot.
func (r *Removal) Present() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.present
}

// Removals counts the removals so far.
func (r *Removal) Removals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removals
}

// Process answers nil when the card is absent or unpowered, or is pulled
// during this command.
func (r *Removal) Process(command []byte) []byte {
	r.mu.Lock()
	if !r.present || !r.powered {
		r.mu.Unlock()
		return nil
	}
	if r.during > 0 {
		r.during--
		if r.during == 0 {
			if r.mode == RemoveAfterCommand {
				r.card.Process(command) // the answer is lost with the card
			}
			notify := r.remove()
			r.mu.Unlock()
			notify()
			return nil
		}
	}
	resp := r.card.Process(command)
	if resp == nil {
		r.powered = false // the card itself lost power (a tear below)
	}
	r.mu.Unlock()
	return resp
}

// PowerOn powers the card if it is present.
func (r *Removal) PowerOn() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.present {
		r.powered = true
		r.card.PowerOn()
	}
}

// PowerOff removes power from a present card.
func (r *Removal) PowerOff() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.present {
		r.powered = false
		r.card.PowerOff()
	}
}

// Reset warm-resets a present card; an unpowered one is powered.
func (r *Removal) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.present {
		return
	}
	if !r.powered {
		r.powered = true
		r.card.PowerOn()
		return
	}
	r.card.Reset()
}

// LatencyConfig sets the delay Latency adds to every answer.
type LatencyConfig struct {
	Fixed  time.Duration // added to every command
	Jitter time.Duration // plus a uniform random delay in [0, Jitter)
	Seed   uint64        // seeds the jitter: the same seed gives the same delays
	// Sleep waits; nil means time.Sleep. Tests pass one that records.
	Sleep func(time.Duration)
}

// Latency delays every answer of a card by a fixed time plus seeded jitter.
type Latency struct {
	mu    sync.Mutex
	card  emulator.Card
	cfg   LatencyConfig
	rng   *rand.Rand
	total time.Duration
	count int
}

var _ emulator.Card = (*Latency)(nil)

// NewLatency wraps card.
func NewLatency(card emulator.Card, cfg LatencyConfig) *Latency {
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	return &Latency{card: card, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5350444c4142))}
}

// Delay draws the next delay.
func (l *Latency) delay() time.Duration {
	d := l.cfg.Fixed
	if l.cfg.Jitter > 0 {
		d += time.Duration(l.rng.Int64N(int64(l.cfg.Jitter)))
	}
	return d
}

// Process runs command and answers after the delay.
func (l *Latency) Process(command []byte) []byte {
	l.mu.Lock()
	d := l.delay()
	l.total += d
	l.count++
	l.mu.Unlock()
	resp := l.card.Process(command)
	l.cfg.Sleep(d)
	return resp
}

// Added returns the number of delayed commands and the delay added in all.
func (l *Latency) Added() (commands int, total time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count, l.total
}

func (l *Latency) PowerOn()  { l.card.PowerOn() }
func (l *Latency) PowerOff() { l.card.PowerOff() }
func (l *Latency) Reset()    { l.card.Reset() }
