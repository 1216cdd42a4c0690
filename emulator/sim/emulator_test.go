package sim_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/emulator/sim/simtest"
)

// These tests play vpcd's part themselves on a loopback port, so they need
// no pcscd: the reader side of the wire format, with the timing under the
// test's control.

// fakeVPCD is the server side of the vpcd protocol.
type fakeVPCD struct {
	t  *testing.T
	ln *net.TCPListener
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// Registered first, so it runs last: no emulator holds the lock of
	// this one-off address any more.
	t.Cleanup(func() { os.Remove(sim.SlotLockPath(ln.Addr().String())) })
	return &fakeVPCD{t: t, ln: ln}
}

func (v *fakeVPCD) addr() string { return v.ln.Addr().String() }

// accept waits for the card to connect.
func (v *fakeVPCD) accept() *cardConn {
	v.t.Helper()
	_ = v.ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := v.ln.AcceptTCP()
	if err != nil {
		v.t.Fatalf("card did not connect: %v", err)
	}
	v.t.Cleanup(func() { c.Close() })
	return &cardConn{t: v.t, c: c}
}

type cardConn struct {
	t *testing.T
	c *net.TCPConn
}

func (c *cardConn) send(msg []byte) {
	c.t.Helper()
	if err := sim.WriteMessage(c.c, msg); err != nil {
		c.t.Fatalf("send % X: %v", msg, err)
	}
}

func (c *cardConn) sendRaw(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// recv reads the card's next message.
func (c *cardConn) recv() ([]byte, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return sim.ReadMessage(c.c, nil, sim.MaxMessage)
}

// transmit sends msg and returns the card's answer.
func (c *cardConn) transmit(msg []byte) []byte {
	c.t.Helper()
	c.send(msg)
	resp, err := c.recv()
	if err != nil {
		c.t.Fatalf("answer to % X: %v", msg, err)
	}
	return resp
}

// expectReset checks that the card side ended the connection with a reset.
func (c *cardConn) expectReset() {
	c.t.Helper()
	resp, err := c.recv()
	if err == nil {
		c.t.Fatalf("card answered % X, want the connection reset", resp)
	}
	if !strings.Contains(err.Error(), "reset by peer") {
		c.t.Fatalf("connection ended with %v, want a reset", err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start runs an emulator against v until the test ends.
func start(t *testing.T, v *fakeVPCD, card emulator.Card, cfg sim.Config) *sim.Emulator {
	t.Helper()
	cfg.Address = v.addr()
	cfg.RemovalGap = 20 * time.Millisecond
	cfg.Redial = 20 * time.Millisecond
	cfg.Logger = quiet()
	e := sim.New(card, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

var ok = []byte{0x90, 0x00}

func TestPowerAndResetMapping(t *testing.T) {
	v := newFakeVPCD(t)
	card := simtest.NewCard()
	start(t, v, card, sim.Config{})
	c := v.accept()

	if got := c.transmit([]byte{0x04}); !bytes.Equal(got, emulator.ATR(emulator.FormSIM)) {
		t.Fatalf("ATR = % X", got)
	}
	c.send([]byte{0x01}) // power on
	if got := c.transmit(simtest.Select()); !bytes.Equal(got, ok) {
		t.Fatalf("SELECT = % X", got)
	}
	c.send([]byte{0x02}) // warm reset
	if got := c.transmit(simtest.Echo([]byte{7})); !bytes.Equal(got, []byte{0x69, 0x85}) {
		t.Fatalf("echo after reset = % X, want 6985 (deselected)", got)
	}
	c.send([]byte{0x00}) // cold reset: power off, power on
	c.send([]byte{0x01})
	c.transmit([]byte{0x04}) // a round trip, so that the controls are done
	if on, off, resets := card.PowerEvents(); on != 2 || off != 1 || resets != 1 {
		t.Fatalf("power-ons %d, power-offs %d, resets %d; want 2, 1, 1", on, off, resets)
	}
}

func TestESIMForm(t *testing.T) {
	v := newFakeVPCD(t)
	start(t, v, simtest.NewCard(), sim.Config{Form: emulator.FormESIM})
	c := v.accept()
	if got := c.transmit([]byte{0x04}); !bytes.Equal(got, emulator.ATR(emulator.FormESIM)) {
		t.Fatalf("ATR = % X, want the eSIM ATR", got)
	}
}

func TestBadFramesKeepServing(t *testing.T) {
	v := newFakeVPCD(t)
	e := start(t, v, simtest.NewCard(), sim.Config{MaxCommand: 64})
	c := v.accept()
	c.send([]byte{0x01})
	c.sendRaw([]byte{0x00, 0x00}) // zero length: dropped without answer
	c.send([]byte{0x09})          // unknown control: dropped without answer
	if got := c.transmit([]byte{0x00, 0xA4}); !bytes.Equal(got, []byte{0x67, 0x00}) {
		t.Fatalf("2-byte message answered % X, want 6700", got)
	}
	if got := c.transmit(make([]byte, 100)); !bytes.Equal(got, []byte{0x67, 0x00}) {
		t.Fatalf("oversize command answered % X, want 6700", got)
	}
	if got := c.transmit(simtest.Select()); !bytes.Equal(got, ok) {
		t.Fatalf("SELECT after bad frames = % X", got)
	}
	if st := e.Status(); st.BadFrames != 4 || st.Connections != 1 {
		t.Fatalf("status %+v: want 4 bad frames on one connection", st)
	}
}

func TestTearKeepsConnectionAndRecoversOnPowerOn(t *testing.T) {
	v := newFakeVPCD(t)
	card := simtest.NewCard()
	e := start(t, v, card, sim.Config{})
	c := v.accept()
	c.send([]byte{0x01})
	c.transmit(simtest.Select())
	if got := c.transmit([]byte{0x80, simtest.InsTear, 0x00, 0x00}); !bytes.Equal(got, sim.MuteAnswer) {
		t.Fatalf("torn command answered % X, want % X (no status word)", got, sim.MuteAnswer)
	}
	if st := e.Status(); st.Tears != 1 || !st.Mute || st.Powered || !st.Connected || st.Connections != 1 {
		t.Fatalf("status after tear %+v", st)
	}

	// The card stays in the reader, present but mute.
	if got := c.transmit([]byte{0x04}); !bytes.Equal(got, emulator.ATR(emulator.FormSIM)) {
		t.Fatalf("ATR after tear = % X", got)
	}
	if got := c.transmit(simtest.Select()); !bytes.Equal(got, sim.MuteAnswer) {
		t.Fatalf("mute card answered % X, want % X", got, sim.MuteAnswer)
	}

	// pcscd's cold reset: power off, power on.
	ons, _, _ := card.PowerEvents()
	c.send([]byte{0x00})
	c.send([]byte{0x01})
	if got := c.transmit(simtest.Select()); !bytes.Equal(got, ok) {
		t.Fatalf("SELECT after power on = % X", got)
	}
	if on, _, _ := card.PowerEvents(); on != ons+1 {
		t.Fatalf("power-ons %d -> %d, want one more (the recovery)", ons, on)
	}
	if st := e.Status(); st.Mute || st.Connections != 1 || st.Unanswered != 2 {
		t.Fatalf("status after power on %+v: want the card unmuted on its first connection", st)
	}
}

func TestRemoveAndInsert(t *testing.T) {
	v := newFakeVPCD(t)
	card := simtest.NewCard()
	e := start(t, v, card, sim.Config{})
	c := v.accept()
	c.send([]byte{0x01})
	c.transmit(simtest.Select())

	e.Remove()
	c.expectReset()
	if st := e.Status(); st.Inserted || st.Connected || st.Powered {
		t.Fatalf("status after Remove %+v", st)
	}
	if _, off, _ := card.PowerEvents(); off != 1 {
		t.Fatalf("removal: %d power-offs, want 1", off)
	}
	e.Insert()
	c2 := v.accept()
	c2.send([]byte{0x01})
	if got := c2.transmit(simtest.Select()); !bytes.Equal(got, ok) {
		t.Fatalf("SELECT after Insert = % X", got)
	}
	if st := e.Status(); st.Connections != 2 || !st.Inserted {
		t.Fatalf("status after Insert %+v", st)
	}
}

func TestRemoveMidCommand(t *testing.T) {
	v := newFakeVPCD(t)
	card := simtest.NewCard()
	e := start(t, v, card, sim.Config{})
	c := v.accept()
	c.send([]byte{0x01})
	c.transmit(simtest.Select())
	c.send([]byte{0x80, simtest.InsHold, 0x00, 0x00})
	<-card.Holding()
	removed := make(chan struct{})
	go func() { e.Remove(); close(removed) }()
	c.expectReset() // at once, while the card is still busy
	card.Release()
	<-removed
	if st := e.Status(); st.Powered || st.Connected {
		t.Fatalf("status %+v", st)
	}
}

func TestVPCDDropsConnection(t *testing.T) {
	v := newFakeVPCD(t)
	card := simtest.NewCard()
	e := start(t, v, card, sim.Config{})
	c := v.accept()
	c.send([]byte{0x01})
	c.transmit([]byte{0x04})
	c.c.Close() // pcscd restarted, say
	c2 := v.accept()
	if got := c2.transmit([]byte{0x04}); len(got) == 0 {
		t.Fatal("no ATR after reconnecting")
	}
	if _, off, _ := card.PowerEvents(); off != 1 {
		t.Fatalf("lost connection: %d power-offs, want 1", off)
	}
	if e.Status().Connections != 2 {
		t.Fatalf("status %+v", e.Status())
	}
}

func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	long := sim.New(simtest.NewCard(), sim.Config{ATR: append([]byte{0x3B}, make([]byte, 40)...), Logger: quiet()})
	if err := long.Run(ctx); err == nil || !strings.Contains(err.Error(), "sim: ATR too long") {
		t.Errorf("long ATR: %v", err)
	}
	bad := sim.New(simtest.NewCard(), sim.Config{ATR: []byte{0x00, 0x01}, Logger: quiet()})
	if err := bad.Run(ctx); err == nil {
		t.Error("ATR without TS accepted")
	}

	// Nobody listens: without redialling Run says so at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	lone := sim.New(simtest.NewCard(), sim.Config{Address: addr, Redial: -1, Logger: quiet()})
	if err := lone.Run(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach vpcd") {
		t.Errorf("unreachable vpcd: %v", err)
	}
}

func TestSlotBusy(t *testing.T) {
	v := newFakeVPCD(t)
	first := start(t, v, simtest.NewCard(), sim.Config{})
	v.accept()
	for !first.Status().Connected {
		time.Sleep(time.Millisecond)
	}
	second := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := second.Run(ctx); !errors.Is(err, sim.ErrSlotBusy) {
		t.Fatalf("second emulator on the slot: %v, want ErrSlotBusy", err)
	}
}

func TestRunEndsWithContext(t *testing.T) {
	v := newFakeVPCD(t)
	e := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), RemovalGap: 10 * time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	c := v.accept()
	c.send([]byte{0x01})
	c.transmit([]byte{0x04})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := c.recv(); err == nil {
		t.Fatal("connection still open after Run ended")
	}
	if st := e.Status(); st.Connected || st.Powered {
		t.Fatalf("status %+v", st)
	}
}

func TestSlotTakenInTurn(t *testing.T) {
	v := newFakeVPCD(t)
	first := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), RemovalGap: 10 * time.Millisecond, Logger: quiet()})
	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- first.Run(ctx1) }()
	v.accept()

	second := sim.New(simtest.NewCard(), sim.Config{Address: v.addr(), SlotWait: 10 * time.Second, RemovalGap: 10 * time.Millisecond, Logger: quiet()})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan error, 1)
	go func() { done2 <- second.Run(ctx2) }()
	defer func() {
		cancel2()
		if err := <-done2; err != nil {
			t.Errorf("second Run: %v", err)
		}
	}()
	cancel1()
	if err := <-done1; err != nil {
		t.Fatalf("first Run: %v", err)
	}
	c := v.accept() // the second emulator, once the first let go
	if got := c.transmit([]byte{0x04}); len(got) == 0 {
		t.Fatal("no ATR from the second emulator")
	}
	if !second.Status().Connected || first.Status().Connected {
		t.Fatalf("first %+v, second %+v", first.Status(), second.Status())
	}
}
