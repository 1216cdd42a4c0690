//go:build cgo

package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/emulator/sim/simtest"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/pcsc"
)

// These tests attach the SIM emulator to one of pcscd's vpcd slots
// (simtest.Address) and reach it through PC/SC exactly as a real reader is
// reached.

const reader = simtest.Reader

// serve puts card in the test slot of vpcd behind a SIM emulator of form
// and returns the emulator. The tests share one emulator while they ask
// for the same form: the first starts it (an insertion, which pcscd sees
// by polling, and powers), the next ones swap their card in behind the
// same vpcd connection (sim.Swap): the card is there unpowered, and the
// test's connect, first command or reset powers it, as for a card a reader
// finds inserted. An emulator of its own each test waited, as it ended,
// for the emulator's removal gap (a second) and then for pcscd's poll to
// see the next card. A card a test removed (Emulator.Remove) goes back in
// for the next test. The emulator's counters (Status) run on across tests:
// a test compares them before and after.
func serve(t testing.TB, card emulator.Card, form emulator.Form) *sim.Emulator {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.em != nil && shared.form != form {
		if err := stopSharedLocked(); err != nil {
			t.Errorf("sim: Run: %v", err)
		}
	}
	if shared.em == nil {
		shared.em, shared.stop = simtest.Start(t, card, sim.Config{Address: simtest.Address, Form: form})
		shared.form = form
		return shared.em
	}
	e := shared.em
	if err := e.Swap(card); err != nil {
		t.Fatal(err)
	}
	if !e.Status().Inserted {
		// The last test took the card out: a new insertion, seen by
		// pcscd's poll, as the first test's was.
		ups := e.Status().PowerUps
		e.Insert()
		for deadline := time.Now().Add(30 * time.Second); ; {
			st := e.Status()
			if st.Connected && st.PowerUps > ups {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pcscd did not power the card put back in (status %+v)", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return e
}

// shared is the emulator the tests share (serve).
var shared struct {
	sync.Mutex
	form emulator.Form
	em   *sim.Emulator
	stop func() error
}

// stopShared stops the shared emulator, if any, and returns Run's error;
// the card leaves and the slot is let go once the removal gap is over.
func stopShared() error {
	shared.Lock()
	defer shared.Unlock()
	return stopSharedLocked()
}

func stopSharedLocked() error {
	if shared.em == nil {
		return nil
	}
	err := shared.stop()
	shared.em, shared.stop = nil, nil
	return err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := stopShared(); err != nil {
		os.Stderr.WriteString("sim: Run: " + err.Error() + "\n")
		code = 1
	}
	os.Exit(code)
}

func open(t testing.TB) *pcsc.Reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pcsc.WaitForCard(ctx, reader); err != nil {
		t.Fatalf("WaitForCard: %v", err)
	}
	r, err := pcsc.Open(ctx, reader)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func exchange(t testing.TB, l link.Link, cmd []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := l.Exchange(ctx, cmd)
	if err != nil {
		t.Fatalf("Exchange % X: %v", cmd, err)
	}
	return resp
}

func expect(t testing.TB, l link.Link, cmd, want []byte) {
	t.Helper()
	if got := exchange(t, l, cmd); !bytes.Equal(got, want) {
		t.Fatalf("Exchange % X = % X, want % X", cmd, got, want)
	}
}

var ok = []byte{0x90, 0x00}

func TestListReadersShowsVPCD(t *testing.T) {
	simtest.EnsurePCSCD(t)
	readers, err := pcsc.ListReaders()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(readers, reader) {
		t.Fatalf("ListReaders = %q, want it to hold %q", readers, reader)
	}
}

func TestExchangeSelectAndEcho(t *testing.T) {
	card := simtest.NewCard()
	serve(t, card, emulator.FormSIM)
	r := open(t)
	if r.String() != "pcsc:"+reader {
		t.Errorf("String = %q", r.String())
	}
	if got, want := r.ATR(), emulator.ATR(emulator.FormSIM); !bytes.Equal(got, want) {
		t.Errorf("ATR = % X, want % X", got, want)
	}
	expect(t, r, simtest.Echo([]byte{1}), []byte{0x69, 0x85}) // not selected yet
	expect(t, r, simtest.Select(), ok)
	payload := bytes.Repeat([]byte{0xA5}, 200)
	expect(t, r, simtest.Echo(payload), append(payload, ok...))
}

func TestFirstReaderWithCard(t *testing.T) {
	serve(t, simtest.NewCard(), emulator.FormSIM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pcsc.WaitForCard(ctx, ""); err != nil {
		t.Fatal(err)
	}
	r, err := pcsc.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.ATR()) == 0 {
		t.Fatalf("%s: no ATR", r)
	}
	// Another reader may hold someone else's card and come first.
	if r.Name() == reader {
		expect(t, r, simtest.Select(), ok)
	}
}

func TestTransportStatusWordsResolved(t *testing.T) {
	serve(t, simtest.NewCard(), emulator.FormSIM)
	r := open(t)
	expect(t, r, simtest.Select(), ok)

	// 61xx: 20*16 = 320 bytes in chunks of 100, fetched by GET RESPONSE.
	want := make([]byte, 320)
	for i := range want {
		want[i] = byte(i)
	}
	expect(t, r, []byte{0x80, simtest.InsChained, 20, 0, 0}, append(want, ok...))

	// 6Cxx: the rig resends with Le = 08.
	expect(t, r, []byte{0x80, simtest.InsExactLe, 0, 0, 0x20}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00})
}

func TestESIMAnswerToReset(t *testing.T) {
	serve(t, simtest.NewCard(), emulator.FormESIM)
	r := open(t)
	if got, want := r.ATR(), emulator.ATR(emulator.FormESIM); !bytes.Equal(got, want) {
		t.Fatalf("ATR = % X, want % X", got, want)
	}
	if !bytes.Contains(r.ATR(), []byte("SPDLAB eSIM")) {
		t.Fatalf("eSIM ATR % X lacks its historical bytes", r.ATR())
	}
	expect(t, r, simtest.Select(), ok)
}

func TestWarmAndColdReset(t *testing.T) {
	card := simtest.NewCard()
	serve(t, card, emulator.FormSIM)
	r := open(t)
	ctx := context.Background()

	expect(t, r, simtest.Select(), ok)
	on0, off0, resets0 := card.PowerEvents()
	atr, err := r.Reset(ctx, false)
	if err != nil {
		t.Fatalf("warm Reset: %v", err)
	}
	if !bytes.Equal(atr, emulator.ATR(emulator.FormSIM)) {
		t.Errorf("warm Reset ATR = % X", atr)
	}
	on1, off1, resets1 := card.PowerEvents()
	if resets1 != resets0+1 || on1 != on0 || off1 != off0 {
		t.Errorf("warm reset: power-ons %d->%d, power-offs %d->%d, resets %d->%d; want one reset only", on0, on1, off0, off1, resets0, resets1)
	}
	expect(t, r, simtest.Echo([]byte{1}), []byte{0x69, 0x85}) // reset deselected

	expect(t, r, simtest.Select(), ok)
	if _, err := r.Reset(ctx, true); err != nil {
		t.Fatalf("cold Reset: %v", err)
	}
	on2, off2, resets2 := card.PowerEvents()
	if on2 != on1+1 || off2 != off1+1 || resets2 != resets1 {
		t.Errorf("cold reset: power-ons %d->%d, power-offs %d->%d, resets %d->%d; want one power-off and one power-on", on1, on2, off1, off2, resets1, resets2)
	}
	expect(t, r, simtest.Echo([]byte{1}), []byte{0x69, 0x85})
}

// PowerOff and PowerOn reach the card as one power-off and one power-on,
// waiting for the power-off between them or not. Without the wait, PowerOff
// must unpower the card itself (SCARD_UNPOWER_CARD): a disconnect that
// leaves the card powered passes with the wait, which gives pcscd the time
// to power off a card that nobody holds (under a second), but at once the
// card is still powered when PowerOn connects, and sees neither. vpcd hands
// the card the power-off and the power-on in order on one connection, so
// PowerOn's ATR comes after both.
func TestPowerCycle(t *testing.T) {
	for _, wait := range []bool{true, false} {
		name := "at once"
		if wait {
			name = "waiting for the power-off"
		}
		t.Run(name, func(t *testing.T) { powerCycle(t, wait) })
	}
}

func powerCycle(t *testing.T, wait bool) {
	card := simtest.NewCard()
	serve(t, card, emulator.FormSIM)
	r := open(t)
	ctx := context.Background()
	expect(t, r, simtest.Select(), ok)
	on0, off0, _ := card.PowerEvents()
	if err := r.PowerOff(ctx); err != nil {
		t.Fatalf("PowerOff: %v", err)
	}
	if wait {
		if _, err := r.Exchange(ctx, simtest.Select()); !errors.Is(err, pcsc.ErrUnpowered) {
			t.Fatalf("Exchange after PowerOff: %v, want ErrUnpowered", err)
		}
		// vpcd passes the power-off to the card side without waiting
		// for it, so the card may see it a moment after SCardDisconnect
		// returns.
		_, off1, _ := card.PowerEvents()
		for deadline := time.Now().Add(5 * time.Second); off1 < off0+1 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			_, off1, _ = card.PowerEvents()
		}
	}
	atr, err := r.PowerOn(ctx)
	if err != nil {
		t.Fatalf("PowerOn: %v", err)
	}
	if !bytes.Equal(atr, emulator.ATR(emulator.FormSIM)) {
		t.Errorf("PowerOn ATR = % X", atr)
	}
	if on1, off1, _ := card.PowerEvents(); on1 != on0+1 || off1 != off0+1 {
		t.Errorf("PowerOff then PowerOn: the card saw %d power-offs and %d power-ons, want 1 and 1", off1-off0, on1-on0)
	}
	expect(t, r, simtest.Echo([]byte{1}), []byte{0x69, 0x85})
	expect(t, r, simtest.Select(), ok)
}

func TestRemovalMidCommand(t *testing.T) {
	card := simtest.NewCard()
	e := serve(t, card, emulator.FormSIM)
	r := open(t)
	expect(t, r, simtest.Select(), ok)

	errc := make(chan error, 1)
	go func() {
		_, err := r.Exchange(context.Background(), []byte{0x80, simtest.InsHold, 0, 0})
		errc <- err
	}()
	select {
	case <-card.Holding():
	case <-time.After(10 * time.Second):
		t.Fatal("the held command never reached the card")
	}
	removed := make(chan struct{})
	go func() { e.Remove(); close(removed) }()
	// Remove resets the connection at once, then waits for the card to
	// finish the command, as a card losing power mid-command would.
	for e.Status().Inserted {
		time.Sleep(time.Millisecond)
	}
	card.Release()
	<-removed
	if err := <-errc; !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("Exchange during removal: %v, want link.ErrRemoved", err)
	}
	if st := e.Status(); st.Powered || st.Connected {
		t.Fatalf("after Remove: %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pcsc.WaitForRemoval(ctx, reader); err != nil {
		t.Fatalf("WaitForRemoval: %v", err)
	}
	// The first exchange finds the handle dead and lets it go; then the
	// reader is free and empty.
	if _, err := r.Exchange(ctx, simtest.Select()); !errors.Is(err, link.ErrRemoved) && !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("Exchange with the card out: %v, want link.ErrRemoved or link.ErrNoCard", err)
	}
	if _, err := r.Exchange(ctx, simtest.Select()); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("second Exchange with the card out: %v, want link.ErrNoCard", err)
	}
	if _, err := pcsc.Open(ctx, reader); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("Open on an empty reader: %v, want link.ErrNoCard", err)
	}

	e.Insert()
	if err := pcsc.WaitForCard(ctx, reader); err != nil {
		t.Fatalf("WaitForCard after Insert: %v", err)
	}
	if _, err := r.Reset(ctx, true); err != nil {
		t.Fatalf("Reset after reinsertion: %v", err)
	}
	expect(t, r, simtest.Select(), ok)
}

func TestTearThenRecoverOnPowerUp(t *testing.T) {
	card := simtest.NewCard()
	e := serve(t, card, emulator.FormSIM)
	r := open(t)
	ctx := context.Background()
	expect(t, r, simtest.Select(), ok)
	on0, _, _ := card.PowerEvents()
	st0 := e.Status()

	_, err := r.Exchange(ctx, []byte{0x80, simtest.InsTear, 0, 0})
	if !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("torn command: %v, want link.ErrRemoved", err)
	}
	if st := e.Status(); st.Tears != st0.Tears+1 || !st.Mute {
		t.Fatalf("after tear: %+v (before: %+v)", st, st0)
	}
	// The card stays in the reader, mute until it is powered again.
	if _, err := r.Exchange(ctx, simtest.Select()); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("command to the torn card: %v, want link.ErrRemoved", err)
	}
	if _, err := r.Reset(ctx, true); err != nil {
		t.Fatalf("Reset after tear: %v", err)
	}
	if on1, _, _ := card.PowerEvents(); on1 <= on0 {
		t.Fatalf("no power-up after the tear (power-ons %d -> %d)", on0, on1)
	}
	if e.Status().Mute {
		t.Fatal("card still mute after power-up")
	}
	expect(t, r, simtest.Select(), ok)
	if st := e.Status(); st.Connections != st0.Connections || st.Unanswered != st0.Unanswered+2 {
		t.Fatalf("after recovery: %+v (before the tear: %+v); want the card on the same vpcd connection and 2 commands unanswered", st, st0)
	}
}

func TestUnknownReader(t *testing.T) {
	simtest.EnsurePCSCD(t)
	ctx := context.Background()
	_, err := pcsc.Open(ctx, "No Such Reader 00 00")
	if !errors.Is(err, pcsc.ErrNoReader) {
		t.Fatalf("Open: %v, want ErrNoReader", err)
	}
	if err := pcsc.WaitForCard(ctx, "No Such Reader 00 00"); !errors.Is(err, pcsc.ErrNoReader) {
		t.Fatalf("WaitForCard: %v, want ErrNoReader", err)
	}
}

func TestWaitForCardHonoursContext(t *testing.T) {
	// Hold the slot with the card out, so that the reader stays empty.
	e := serve(t, simtest.NewCard(), emulator.FormSIM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// pcscd tells its clients about the card some time after it has
	// powered it (longer on a busy machine): wait until it has, or the
	// removal below could be seen before the insertion, and the
	// insertion, seen late, would answer the WaitForCard that must not
	// find a card.
	if err := pcsc.WaitForCard(ctx, reader); err != nil {
		t.Fatal(err)
	}
	e.Remove()
	if err := pcsc.WaitForRemoval(ctx, reader); err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	err := pcsc.WaitForCard(short, reader)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForCard on an empty reader: %v, want a deadline error", err)
	}
}

func TestClosedReader(t *testing.T) {
	serve(t, simtest.NewCard(), emulator.FormSIM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pcsc.WaitForCard(ctx, reader); err != nil {
		t.Fatal(err)
	}
	r, err := pcsc.Open(ctx, reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Exchange(ctx, simtest.Select()); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Exchange after Close: %v, want link.ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// BenchmarkSelect measures the round trip of a SELECT through pcscd and
// vpcd to the emulator and back, and reports the median and p99.
func BenchmarkSelect(b *testing.B) {
	benchSelect(b, false)
}

// BenchmarkSelectInProcess is the same SELECT on link.Direct, the
// in-process link, for the ratio: BenchmarkSelect / BenchmarkSelectInProcess.
func BenchmarkSelectInProcess(b *testing.B) {
	card := simtest.NewCard()
	card.PowerOn()
	l := link.NewDirect(card, "ref", emulator.ATR(emulator.FormSIM))
	measure(b, l)
}

// BenchmarkSelectDelayedACK is BenchmarkSelect with TCP_QUICKACK off on the
// card side, to show what it saves.
func BenchmarkSelectDelayedACK(b *testing.B) {
	if os.Getenv("SPDLAB_BENCH_DELAYED_ACK") == "" {
		b.Skip("about 40 ms per command; set SPDLAB_BENCH_DELAYED_ACK=1 to run")
	}
	benchSelect(b, true)
}

func benchSelect(b *testing.B, delayedACK bool) {
	// This emulator's own configuration needs the slot.
	if err := stopShared(); err != nil {
		b.Errorf("sim: Run: %v", err)
	}
	simtest.Serve(b, simtest.NewCard(), sim.Config{Address: simtest.Address, NoQuickAck: delayedACK})
	measure(b, open(b))
}

// measure times SELECT round trips on l and reports median and p99.
func measure(b *testing.B, r link.Link) {
	ctx := context.Background()
	cmd := simtest.Select()
	for range 20 { // warm up
		expect(b, r, cmd, ok)
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, err := r.Exchange(ctx, cmd)
		times = append(times, time.Since(start))
		if err != nil || !bytes.Equal(resp, ok) {
			b.Fatalf("Exchange: % X, %v", resp, err)
		}
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2])/1e3, "median-µs")
	b.ReportMetric(float64(times[len(times)*99/100])/1e3, "p99-µs")
}

// TestNoPCSCD points libpcsclite at a socket where no pcscd listens (its
// PCSCLITE_CSOCK_NAME variable, read in a child process) and checks that
// every entry point says pcscd cannot be reached, and how to start it.
func TestNoPCSCD(t *testing.T) {
	if os.Getenv("SPDLAB_PCSC_NO_SERVICE") == "1" {
		ctx := context.Background()
		_, err1 := pcsc.ListReaders()
		err2 := pcsc.WaitForCard(ctx, "")
		_, err3 := pcsc.Open(ctx, "")
		for _, err := range []error{err1, err2, err3} {
			if !errors.Is(err, pcsc.ErrNoService) {
				t.Fatalf("without pcscd: %v, want ErrNoService", err)
			}
		}
		os.Stdout.WriteString("\n" + err1.Error() + "\n")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNoPCSCD$", "-test.v")
	cmd.Env = append(os.Environ(), "SPDLAB_PCSC_NO_SERVICE=1", "PCSCLITE_CSOCK_NAME="+filepath.Join(t.TempDir(), "none.comm"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pcsc: cannot reach pcscd (is the pcscd service running?") {
		t.Fatalf("the error does not say what to do:\n%s", out)
	}
}

// A command the card never answers outlives its caller's ctx (PC/SC cannot
// interrupt a transmit). Close must still return, saying so, refuse new
// commands, and let the card go once the command returns, so that a
// certification run against a card or reader that stopped answering ends
// with its report rather than hanging.
func TestCloseWhileACommandHangs(t *testing.T) {
	defer pcsc.SetCloseWait(300 * time.Millisecond)()
	card := simtest.NewCard()
	serve(t, card, emulator.FormSIM)
	r := open(t)
	expect(t, r, simtest.Select(), ok)
	atr := r.ATR()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Exchange(ctx, []byte{0x80, simtest.InsHold, 0, 0}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exchange of a command the card holds: %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-card.Holding():
	case <-time.After(10 * time.Second):
		t.Fatal("the held command never reached the card")
	}
	if got := r.ATR(); !bytes.Equal(got, atr) {
		t.Errorf("ATR while a command hangs = % X, want % X", got, atr)
	}
	err := r.Close()
	if err == nil || !strings.Contains(err.Error(), "has not returned") || !strings.Contains(err.Error(), reader) {
		t.Fatalf("Close while a command hangs: %v, want an error naming the reader and the command that has not returned", err)
	}
	if _, err := r.Exchange(context.Background(), simtest.Select()); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Exchange after Close: %v, want link.ErrClosed", err)
	}

	// The command returns: the card is let go, and a new connection takes
	// it in exclusive mode.
	card.Release()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var again *pcsc.Reader
	for again == nil {
		again, err = pcsc.Open(ctx, reader)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("Open after the held command returned: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer again.Close()
	expect(t, again, simtest.Select(), ok)
}
