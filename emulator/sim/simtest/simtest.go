// Package simtest holds what tests of the SIM emulator and of PC/SC rigs
// share: Card, a small ISO/IEC 7816-4 card application with an echo
// command and the transport cases a reader must resolve (61xx, 6Cxx), and
// helpers that bring up pcscd with vpcd (.ci/pcscd) and serve a card on it.
//
// Tests that need pcscd skip with the reason when it cannot be started,
// unless the environment variable CI is set: in CI they fail instead, so a
// broken PC/SC setup never passes as skipped.
package simtest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/reference/apdu"
)

// The vpcd slot that tests use: the second one, so that tests leave the
// first (sim.DefaultAddress, the one people and the CLI use) alone. Tests
// of several packages share it in turn through the emulator's slot lock.
const (
	Address = "127.0.0.1:35964"
	Reader  = "Virtual PCD 00 01"
)

// AID selects the Card's application.
var AID = []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x54} // F0 "SPDLAB" 54

// Instructions of the Card (CLA 80 unless said otherwise).
const (
	InsSelect      = 0xA4 // CLA 00: SELECT by AID (P1=04); 9000 or 6A82
	InsGetResponse = 0xC0 // CLA 00: GET RESPONSE after 61xx
	InsEcho        = 0x10 // returns its data; needs the application selected (else 6985)
	InsChained     = 0x12 // returns P1*16 bytes (0,1,2,...) in 61xx chunks of at most 100
	InsExactLe     = 0x14 // returns 8 bytes, but only to Le = 8; other Le gets 6C08
	InsHold        = 0x20 // blocks until Release, then 9000
	InsTear        = 0x30 // power is cut while it runs: no answer
	InsCount       = 0x40 // returns the 2-byte count of commands since power-up
)

// Card is an ISO/IEC 7816-4 card application for tests. It is safe for use
// by one emulator plus the test goroutine.
type Card struct {
	mu        sync.Mutex
	selected  bool
	pending   []byte // data waiting for GET RESPONSE
	commands  int    // since power-up
	powerOns  int
	powerOffs int
	resets    int
	holding   chan struct{}
	release   chan struct{}
}

// NewCard returns a Card, unpowered.
func NewCard() *Card {
	return &Card{holding: make(chan struct{}, 1), release: make(chan struct{})}
}

var _ emulator.Card = (*Card)(nil)

func sw(s apdu.SW) []byte { return []byte{s.SW1(), s.SW2()} }

// Process implements emulator.Card.
func (c *Card) Process(command []byte) []byte {
	cmd, err := apdu.ParseCommand(command)
	if err != nil {
		var pe *apdu.ParseError
		if errors.As(err, &pe) {
			return sw(pe.SW)
		}
		return sw(apdu.SWWrongLength)
	}
	if cmd.INS == InsHold {
		select {
		case c.holding <- struct{}{}:
		default:
		}
		<-c.release
		return sw(apdu.SWOK)
	}
	if cmd.INS == InsTear {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.commands++
	if cmd.CLA&0x80 == 0 {
		switch cmd.INS {
		case InsSelect:
			if cmd.P1 != 0x04 {
				return sw(apdu.SWIncorrectP1P2)
			}
			c.selected = bytes.Equal(cmd.Data, AID)
			if !c.selected {
				return sw(apdu.SWFileNotFound)
			}
			return sw(apdu.SWOK)
		case InsGetResponse:
			if len(c.pending) == 0 {
				return sw(apdu.SWConditionsNotSat)
			}
			return c.chunk(cmd.Ne)
		}
		return sw(apdu.SWInsNotSupported)
	}
	if !c.selected {
		return sw(apdu.SWConditionsNotSat)
	}
	switch cmd.INS {
	case InsEcho:
		return append(append([]byte(nil), cmd.Data...), 0x90, 0x00)
	case InsChained:
		c.pending = make([]byte, int(cmd.P1)*16)
		for i := range c.pending {
			c.pending[i] = byte(i)
		}
		return c.chunk(100)
	case InsExactLe:
		if cmd.Ne != 8 {
			return []byte{0x6C, 0x08}
		}
		return []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00}
	case InsCount:
		return []byte{byte(c.commands >> 8), byte(c.commands), 0x90, 0x00}
	}
	return sw(apdu.SWInsNotSupported)
}

// chunk answers up to n pending bytes, with 61xx while more remain.
func (c *Card) chunk(n int) []byte {
	if n <= 0 || n > len(c.pending) {
		n = len(c.pending)
	}
	out := append([]byte(nil), c.pending[:n]...)
	c.pending = c.pending[n:]
	if rest := len(c.pending); rest > 0 {
		if rest > 255 {
			rest = 0 // 6100: 256 or more
		}
		return append(out, 0x61, byte(rest))
	}
	return append(out, 0x90, 0x00)
}

// PowerOn implements emulator.Card.
func (c *Card) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOns++
	c.selected, c.pending, c.commands = false, nil, 0
}

// PowerOff implements emulator.Card.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOffs++
	c.selected, c.pending = false, nil
}

// Reset implements emulator.Card (warm reset).
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resets++
	c.selected, c.pending, c.commands = false, nil, 0
}

// Holding is signalled when an InsHold command starts.
func (c *Card) Holding() <-chan struct{} { return c.holding }

// Release lets every InsHold command (running or future) finish.
func (c *Card) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.release:
	default:
		close(c.release)
	}
}

// PowerEvents returns how many power-ons, power-offs and warm resets the
// card has seen.
func (c *Card) PowerEvents() (powerOns, powerOffs, resets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powerOns, c.powerOffs, c.resets
}

// Select is the SELECT command for AID.
func Select() []byte {
	return apdu.Command{CLA: 0x00, INS: InsSelect, P1: 0x04, P2: 0x00, Data: AID}.MustBytes()
}

// Echo is the echo command for data, expecting it back.
func Echo(data []byte) []byte {
	return apdu.Command{CLA: 0x80, INS: InsEcho, Data: data, Ne: max(len(data), 1)}.MustBytes()
}

// inCI reports whether the tests run in CI, where a missing PC/SC setup is
// a failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") != "" }

// Unavailable skips tb with reason, or fails it in CI.
func Unavailable(tb testing.TB, reason string) {
	tb.Helper()
	if inCI() {
		tb.Fatalf("%s (CI is set, so this fails instead of skipping)", reason)
	}
	tb.Skipf("%s (set CI=true to make this a failure)", reason)
}

var (
	pcscdOnce sync.Once
	pcscdErr  error
	pcscdOut  []byte
)

// EnsurePCSCD makes sure pcscd runs with the vpcd driver, through the
// repository's .ci/pcscd script (once per test binary), or skips (fails in
// CI) with the reason.
func EnsurePCSCD(tb testing.TB) {
	tb.Helper()
	pcscdOnce.Do(func() {
		script, err := ciScript("pcscd")
		if err != nil {
			pcscdErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pcscdOut, pcscdErr = exec.CommandContext(ctx, script).CombinedOutput()
	})
	if pcscdErr != nil {
		Unavailable(tb, "pcscd with vpcd is not available: .ci/pcscd: "+pcscdErr.Error()+": "+string(bytes.TrimSpace(pcscdOut)))
	}
}

// ciScript finds .ci/NAME in the module root above the working directory.
func ciScript(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ".ci", name)
			if _, err := os.Stat(p); err != nil {
				return "", err
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RequireTool returns the path of an external program, or skips (fails in
// CI) when it is not installed.
func RequireTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(tb, name+" is not installed (apt-get install "+debianPackage+")")
	}
	return p
}

// Serve runs an emulator for card with cfg until the test ends, and waits
// until pcscd has seen and powered the card (it may power it down again
// soon after: pcscd powers cards on demand). pcscd tells its clients
// about the card some time after it has powered it, longer on a busy
// machine: a test that acts on PC/SC's view of the reader (a removal it
// waits for, say) first waits for the card there (pcsc.WaitForCard). cfg.SlotWait defaults to five
// minutes, so that test binaries sharing the vpcd slot take turns, also
// with a conformance run or a certification that holds it for minutes
// (make test runs those beside the race-detector tests).
func Serve(tb testing.TB, card emulator.Card, cfg sim.Config) *sim.Emulator {
	tb.Helper()
	e, stop := Start(tb, card, cfg)
	tb.Cleanup(func() {
		if err := stop(); err != nil {
			tb.Errorf("sim: Run: %v", err)
		}
	})
	return e
}

// Start is Serve for an emulator that outlives the test starting it
// (tests sharing one, swapping their cards in): it runs until stop, which
// returns Run's error once the emulator has let go of the slot.
func Start(tb testing.TB, card emulator.Card, cfg sim.Config) (e *sim.Emulator, stop func() error) {
	tb.Helper()
	EnsurePCSCD(tb)
	if cfg.SlotWait == 0 {
		cfg.SlotWait = 5 * time.Minute
	}
	e = sim.New(card, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = func() error {
		cancel()
		err := <-done
		done <- err
		return err
	}
	deadline := time.Now().Add(cfg.SlotWait + 10*time.Second)
	for {
		st := e.Status()
		if st.Connected && st.PowerUps > 0 {
			return e, stop
		}
		select {
		case err := <-done:
			done <- err
			tb.Fatalf("emulator stopped before pcscd saw the card: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			tb.Fatalf("pcscd did not power the emulated card within %v (status %+v)", cfg.SlotWait+10*time.Second, st)
		}
	}
}
