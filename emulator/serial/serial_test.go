package serial

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/emulatortest"
	"github.com/spdlab/spdlab/emulator/fault"
	"github.com/spdlab/spdlab/reference/wire/crc16"
	"github.com/spdlab/spdlab/reference/wire/serialframe"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
	rig "github.com/spdlab/spdlab/rigs/serial"
)

// fastConfig keeps retransmission quick over a pty, where frames take no
// line time worth counting.
var fastConfig = rig.Config{BaudRate: 4000000, RetransmitTimeout: 5 * time.Millisecond, SilenceTimeout: 2 * time.Second, MaxAttempts: 200}

func startDevice(t testing.TB, card emulator.Card, cfg Config) (*Device, string) {
	t.Helper()
	d := New(card, cfg)
	path, err := d.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

func openPort(t testing.TB, path string, cfg rig.Config) *rig.Port {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := rig.OpenConfig(ctx, path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExchangeResetPower(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, path := startDevice(t, card, Config{})
	p := openPort(t, path, fastConfig)
	ctx := ctxT(t)

	if got, want := p.ATR(), emulator.ATR(emulator.FormUART); !bytes.Equal(got, want) {
		t.Fatalf("ATR % X, want % X", got, want)
	}
	resp, err := p.Exchange(ctx, []byte{0x00, 0x40, 0x00, 0x00, 0x03, 0x7E, 0x7D, 0x01})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x7E, 0x7D, 0x01, 0x90, 0x00}; !bytes.Equal(resp, want) {
		t.Fatalf("echo answered % X, want % X (flag and escape bytes must survive stuffing)", resp, want)
	}
	if resp, _ := p.Exchange(ctx, []byte{0x00}); !bytes.Equal(resp, []byte{0x67, 0x00}) {
		t.Fatalf("1-byte command answered % X, want 6700", resp)
	}

	atr, err := p.Reset(ctx, false)
	if err != nil || !bytes.Equal(atr, emulator.ATR(emulator.FormUART)) {
		t.Fatalf("warm reset: % X, %v", atr, err)
	}
	if card.Resets() != 1 {
		t.Fatalf("card saw %d warm resets, want 1", card.Resets())
	}
	if err := p.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exchange(ctx, emulatortest.CountCommand(1)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("exchange while unpowered: %v, want link.ErrRemoved", err)
	}
	if _, err := p.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exchange(ctx, emulatortest.CountCommand(1)); err != nil {
		t.Fatal(err)
	}

	// A torn command leaves the card mute until power returns.
	if _, err := p.Exchange(ctx, []byte{0x80, 0x30, 0x00, 0x00}); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("torn command: %v, want link.ErrRemoved", err)
	}
	if _, err := p.Exchange(ctx, emulatortest.CountCommand(2)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("after tear: %v, want link.ErrRemoved", err)
	}
	if _, err := p.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	resp, err = p.Exchange(ctx, emulatortest.CountCommand(2))
	if err != nil || binary.BigEndian.Uint32(resp[4:8]) != 1 {
		t.Fatalf("after cold reset: % X, %v", resp, err)
	}
	if got := card.Executions(2); got != 1 {
		t.Fatalf("command 2 ran %d times, want 1 (never while unpowered)", got)
	}
	if s := dev.Stats(); s.Commands != 5 {
		t.Fatalf("stats %+v, want 5 commands: none while unpowered", s)
	}
}

func TestReopenAndLink(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, _ := startDevice(t, card, Config{})
	linkPath := filepath.Join(t.TempDir(), "ttySPD0")
	if err := dev.Link(linkPath); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	// Several sessions one after another through the link, each with a
	// fresh random first SEQ: none may be mistaken for a repeat.
	for i := range 5 {
		p, err := rig.OpenConfig(ctx, linkPath, fastConfig)
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			id := uint32(i*10 + j)
			if _, err := p.Exchange(ctx, emulatortest.CountCommand(id)); err != nil {
				t.Fatal(err)
			}
			if got := card.Executions(id); got != 1 {
				t.Fatalf("session %d command %d ran %d times", i, j, got)
			}
		}
		p.Close()
	}
	dev.Close()
	if _, err := os.Lstat(linkPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("link left behind after Close: %v", err)
	}
}

func TestWaitKeepsHostFromRetransmitting(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, path := startDevice(t, card, Config{WaitInterval: 5 * time.Millisecond})
	p := openPort(t, path, rig.Config{BaudRate: 4000000, RetransmitTimeout: 20 * time.Millisecond, SilenceTimeout: 200 * time.Millisecond})
	ctx := ctxT(t)
	// 600 ms of work is three times the silence timeout: only WAIT frames
	// keep the host from giving up.
	if _, err := p.Exchange(ctx, []byte{0x80, 0x20, 0x00, 0x00, 0x02, 0x02, 0x58}); err != nil {
		t.Fatal(err)
	}
	if s := dev.Stats(); s.Commands != 1 {
		t.Fatalf("stats %+v: the slow command must run once", s)
	}
}

// openRaw opens a tty path in raw mode, non-blocking, for the runtime poller.
func openRaw(t testing.TB, path string) *os.File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := makeRaw(fd); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { f.Close() })
	return f
}

// readFrames reads from f until it has n frames or errors, or times out.
func readFrames(t *testing.T, f *os.File, n int) []any {
	t.Helper()
	dec := serialframe.NewDecoder(0)
	var got []any
	buf := make([]byte, 1024)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		f.SetReadDeadline(deadline)
		k, err := f.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(got), n, err)
		}
		dec.Feed(buf[:k], func(fr serialframe.Frame, err error) {
			if err != nil {
				got = append(got, err)
			} else {
				got = append(got, fr)
			}
		})
	}
	return got
}

func TestBadInputGetsNAKAndServingGoesOn(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, path := startDevice(t, card, Config{MaxPayload: 300})
	host := openRaw(t, path)

	enc := func(f serialframe.Frame) []byte {
		b, err := serialframe.AppendFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(serialframe.Frame{Type: serialframe.TypeCommand, Seq: 7, Payload: emulatortest.CountCommand(42)})
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-2] ^= 0x01
	unknown := enc(serialframe.Frame{Type: 0x55, Seq: 8, Payload: []byte{1}})
	badLen := []byte{0x7E, 0x01, 0x09, 0x00, 0x05, 0x00, 0x00}
	crc := crc16.Checksum(badLen[1:])
	badLen = append(badLen, byte(crc>>8), byte(crc), 0x7E)
	tooLong := enc(serialframe.Frame{Type: serialframe.TypeCommand, Seq: 10, Payload: make([]byte, 400)})
	wrongWay := enc(serialframe.Frame{Type: serialframe.TypeResponse, Seq: 11, Payload: []byte{0x90, 0x00}})
	badMode := enc(serialframe.Frame{Type: serialframe.TypeReset, Seq: 12, Payload: []byte{9}})

	cases := []struct {
		name string
		in   []byte
		want serialframe.Reason
	}{
		{"bad CRC", badCRC, serialframe.ReasonCRC},
		{"truncated", []byte{0x7E, 0x01, 0x02, 0x7E}, serialframe.ReasonTruncated},
		{"aborted", []byte{0x7E, 0x01, 0x02, 0x03, 0x7D, 0x7E}, serialframe.ReasonTruncated},
		{"unknown type", unknown, serialframe.ReasonUnknownType},
		{"length mismatch", badLen, serialframe.ReasonLength},
		{"too long", tooLong, serialframe.ReasonTooLong},
		{"device type sent to device", wrongWay, serialframe.ReasonUnexpected},
		{"bad reset mode", badMode, serialframe.ReasonBadPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := host.Write(c.in); err != nil {
				t.Fatal(err)
			}
			got := readFrames(t, host, 1)
			f, ok := got[0].(serialframe.Frame)
			if !ok || f.Type != serialframe.TypeNak || len(f.Payload) != 1 || serialframe.Reason(f.Payload[0]) != c.want {
				t.Fatalf("answer %v, want NAK %s", got[0], c.want)
			}
		})
	}

	// The device still serves, and a repeated frame is answered from the
	// cache without running the command again.
	for range 3 {
		if _, err := host.Write(good); err != nil {
			t.Fatal(err)
		}
	}
	got := readFrames(t, host, 3)
	for i, g := range got {
		f, ok := g.(serialframe.Frame)
		if !ok || f.Type != serialframe.TypeResponse || f.Seq != 7 {
			t.Fatalf("answer %d: %v, want RESPONSE seq 7", i, g)
		}
		if n := binary.BigEndian.Uint32(f.Payload[4:8]); n != 1 {
			t.Fatalf("answer %d reports %d executions", i, n)
		}
	}
	if s := dev.Stats(); s.Commands != 1 || s.Duplicates != 2 {
		t.Fatalf("stats %+v, want 1 command and 2 duplicates", s)
	}
}

// lossyRelay copies bytes both ways between two ttys and damages them:
// it drops, flips, duplicates and inserts bytes, driven by a seeded source
// so a failing run can be repeated.
type lossyRelay struct {
	mu    sync.Mutex
	rng   *rand.Rand
	rate  float64
	stats map[string]int
}

func (r *lossyRelay) damage(p []byte) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, 0, len(p)+8)
	for _, b := range p {
		switch x := r.rng.Float64(); {
		case x < r.rate/4:
			r.stats["dropped"]++
			continue
		case x < r.rate/2:
			r.stats["flipped"]++
			b ^= 1 << r.rng.UintN(8)
		case x < 3*r.rate/4:
			r.stats["duplicated"]++
			out = append(out, b)
		case x < r.rate:
			r.stats["inserted"]++
			out = append(out, byte(r.rng.UintN(256)))
		}
		out = append(out, b)
	}
	return out
}

func (r *lossyRelay) pump(from, to *os.File, done <-chan struct{}) {
	buf := make([]byte, 4096)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if _, err := to.Write(r.damage(buf[:n])); err != nil {
			return
		}
		select {
		case <-done:
			return
		default:
		}
	}
}

func TestLossyLineExecutesEveryCommandOnce(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, devPath := startDevice(t, card, Config{})

	// host --pty B-- relay --pty A-- device
	master, slaveB, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	hostPath := slaveB.Name()
	t.Cleanup(func() { master.Close(); slaveB.Close() })
	devSide := openRaw(t, devPath)
	relay := &lossyRelay{rng: rand.New(rand.NewPCG(1, 2)), rate: 0.01, stats: map[string]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); master.Close(); devSide.Close() })
	go relay.pump(master, devSide, done)
	go relay.pump(devSide, master, done)

	p := openPort(t, hostPath, fastConfig)
	ctx := ctxT(t)
	const n = 300
	for id := uint32(1); id <= n; id++ {
		resp, err := p.Exchange(ctx, emulatortest.CountCommand(id))
		if err != nil {
			t.Fatalf("command %d: %v", id, err)
		}
		if len(resp) != 10 || binary.BigEndian.Uint32(resp) != id || binary.BigEndian.Uint32(resp[4:]) != 1 {
			t.Fatalf("command %d answered % X", id, resp)
		}
	}
	for id := uint32(1); id <= n; id++ {
		if got := card.Executions(id); got != 1 {
			t.Fatalf("command %d executed %d times", id, got)
		}
	}
	s := dev.Stats()
	relay.mu.Lock()
	t.Logf("relay damage %v; device %+v", relay.stats, s)
	relay.mu.Unlock()
	if s.Commands != n {
		t.Fatalf("device executed %d commands, want %d", s.Commands, n)
	}
	if s.Dropped == 0 && s.Duplicates == 0 {
		t.Fatalf("the relay damaged nothing the device noticed: %+v", s)
	}
}

func TestCloseWhileHostOpen(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, path := startDevice(t, card, Config{})
	p := openPort(t, path, rig.Config{BaudRate: 4000000, RetransmitTimeout: 5 * time.Millisecond, SilenceTimeout: 100 * time.Millisecond})
	dev.Close()
	_, err := p.Exchange(ctxT(t), emulatortest.CountCommand(1))
	if !errors.Is(err, link.ErrNoCard) && !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("exchange after the device closed: %v, want link.ErrNoCard or link.ErrRemoved", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	d := New(emulatortest.NewCounterCard(), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	for i := 0; d.Path() == ""; i++ {
		if i == 5000 {
			t.Fatal("Run did not open a pty")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path()); err == nil {
		if _, err := rig.OpenConfig(ctxT(t), d.Path(), rig.Config{SilenceTimeout: 50 * time.Millisecond}); err == nil {
			t.Fatal("opened a session on a closed device")
		}
	}
}

// The same, with the lab's own noisy line (emulator/fault) between the
// ends, garbling both directions.
func TestFaultLineExecutesEveryCommandOnce(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, devPath := startDevice(t, card, Config{})
	master, slaveB, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	hostPath := slaveB.Name()
	devSide := openRaw(t, devPath)
	line := fault.NewLine(devSide, fault.LineNoise{FlipRate: 0.004, DropRate: 0.004, DupRate: 0.004, Seed: 7})
	t.Cleanup(func() { master.Close(); slaveB.Close(); devSide.Close() })
	copyTo := func(dst io.Writer, src io.Reader) {
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go copyTo(line, master)
	go copyTo(master, line)

	p := openPort(t, hostPath, fastConfig)
	ctx := ctxT(t)
	const n = 200
	for id := uint32(1000); id < 1000+n; id++ {
		resp, err := p.Exchange(ctx, emulatortest.CountCommand(id))
		if err != nil {
			t.Fatalf("command %d: %v", id, err)
		}
		if binary.BigEndian.Uint32(resp) != id || binary.BigEndian.Uint32(resp[4:]) != 1 {
			t.Fatalf("command %d answered % X", id, resp)
		}
	}
	for id := uint32(1000); id < 1000+n; id++ {
		if got := card.Executions(id); got != 1 {
			t.Fatalf("command %d executed %d times", id, got)
		}
	}
	c := line.Counts()
	t.Logf("line %+v; device %+v", c, dev.Stats())
	if c.Flipped+c.Dropped+c.Duplicated == 0 {
		t.Fatal("the line damaged nothing")
	}
}

// The serial rig keeps the Link contract with this emulator on the line.
func TestSerialLinkKeepsTheContract(t *testing.T) {
	linktest.Contract(t, func(t *testing.T, card *linktest.ContractCard) link.Link {
		_, path := startDevice(t, card, Config{})
		return openPort(t, path, fastConfig)
	})
}

// TestSwapPutsAnotherCardBehindThePTY: after Swap the old card has lost
// power and gets nothing more, the host's port, with a new session,
// reaches the new card, and with no card every request is refused as
// unpowered.
func TestSwapPutsAnotherCardBehindThePTY(t *testing.T) {
	first, second := emulatortest.NewCounterCard(), emulatortest.NewCounterCard()
	d, path := startDevice(t, first, Config{})
	ctx := ctxT(t)
	p := openPort(t, path, fastConfig)
	if _, err := p.Exchange(ctx, emulatortest.CountCommand(1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Swap(second); err != nil {
		t.Fatal(err)
	}
	if first.Powered() || !second.Powered() {
		t.Fatalf("after Swap the old card powered %v, the new one %v", first.Powered(), second.Powered())
	}
	// The port stays open: a new session with the new card.
	if atr, err := p.OpenSession(ctx); err != nil || !bytes.Equal(atr, emulator.ATR(emulator.FormUART)) {
		t.Fatalf("session with the new card: ATR % X, %v", atr, err)
	}
	// COUNT 1 runs again: on the new card it is the first.
	for id := uint32(1); id <= 2; id++ {
		if _, err := p.Exchange(ctx, emulatortest.CountCommand(id)); err != nil {
			t.Fatal(err)
		}
		if n, old := second.Executions(id), first.Executions(id); n != 1 || old != map[uint32]int{1: 1, 2: 0}[id] {
			t.Fatalf("COUNT %d ran %d times on the new card, %d on the old", id, n, old)
		}
	}
	if err := d.Swap(nil); err != nil {
		t.Fatal(err)
	}
	if second.Powered() {
		t.Fatal("the card taken out still has power")
	}
	if _, err := p.Exchange(ctx, emulatortest.CountCommand(3)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("a command with no card answered %v, want link.ErrRemoved", err)
	}
	if second.Executions(3) != 0 {
		t.Fatal("a card taken out ran a command")
	}
	d.Close()
	if err := d.Swap(first); err == nil {
		t.Fatal("Swap after Close succeeded")
	}
}
