package sdcard

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/emulatortest"
	"github.com/spdlab/spdlab/reference/wire/crc16"
	"github.com/spdlab/spdlab/reference/wire/sdblock"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
	channel "github.com/spdlab/spdlab/rigs/sdcard"
)

func startDevice(t testing.TB, card emulator.Card, cfg Config) (*Device, string) {
	t.Helper()
	dir := t.TempDir()
	d := New(card, dir, cfg)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openChannel(t testing.TB, dir string, cfg channel.Config) *channel.Channel {
	t.Helper()
	c, err := channel.OpenConfig(ctxT(t), dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExchangeResetPower(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, dir := startDevice(t, card, Config{})
	c := openChannel(t, dir, channel.Config{})
	ctx := ctxT(t)

	if got, want := c.ATR(), emulator.ATR(emulator.FormSD); !bytes.Equal(got, want) {
		t.Fatalf("ATR % X, want % X", got, want)
	}
	resp, err := c.Exchange(ctx, emulatortest.CountCommand(7))
	if err != nil || binary.BigEndian.Uint32(resp[4:8]) != 1 {
		t.Fatalf("% X %v", resp, err)
	}
	if resp, _ := c.Exchange(ctx, []byte{0x00}); !bytes.Equal(resp, []byte{0x67, 0x00}) {
		t.Fatalf("1-byte command answered % X, want 6700", resp)
	}
	if _, err := c.Reset(ctx, false); err != nil || card.Resets() != 1 {
		t.Fatalf("warm reset: %v, %d resets", err, card.Resets())
	}
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(ctx, emulatortest.CountCommand(8)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("unpowered: %v, want link.ErrRemoved", err)
	}
	if atr, err := c.PowerOn(ctx); err != nil || !bytes.Equal(atr, emulator.ATR(emulator.FormSD)) {
		t.Fatalf("power on: % X %v", atr, err)
	}
	if _, err := c.Exchange(ctx, []byte{0x80, 0x30, 0x00, 0x00}); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("torn command: %v, want link.ErrRemoved", err)
	}
	if _, err := c.Exchange(ctx, emulatortest.CountCommand(8)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("after tear: %v, want link.ErrRemoved", err)
	}
	if _, err := c.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exchange(ctx, emulatortest.CountCommand(8)); err != nil || card.Executions(8) != 1 {
		t.Fatalf("after cold reset: %v, ran %d times", err, card.Executions(8))
	}
	if s := dev.Stats(); s.Commands != 4 {
		t.Fatalf("stats %+v, want 4 commands: none while unpowered", s)
	}
}

func TestChainedExtendedAPDU(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, dir := startDevice(t, card, Config{})
	c := openChannel(t, dir, channel.Config{})
	ctx := ctxT(t)
	for _, sizes := range [][2]int{{1500, 3000}, {498, 496}, {499, 497}, {4, 10000}, {sdblock.MaxAPDU, 60000}} {
		cmdLen, respLen := sizes[0], sizes[1]
		cmd := make([]byte, cmdLen)
		copy(cmd, []byte{0x80, 0x50, byte(respLen >> 8), byte(respLen)})
		resp, err := c.Exchange(ctx, cmd)
		if err != nil {
			t.Fatalf("command %d bytes, response %d: %v", cmdLen, respLen, err)
		}
		if want := emulatortest.BigResponse(respLen, cmdLen); !bytes.Equal(resp, want) {
			t.Fatalf("command %d bytes: response of %d bytes differs from the %d expected", cmdLen, len(resp), len(want))
		}
	}
	if s := dev.Stats(); s.Commands != 5 {
		t.Fatalf("stats %+v, want 5 commands", s)
	}
	if _, err := c.Exchange(ctx, make([]byte, sdblock.MaxAPDU+1)); err == nil {
		t.Fatal("sent a command over MaxAPDU")
	}
}

func TestReopenSessions(t *testing.T) {
	card := emulatortest.NewCounterCard()
	_, dir := startDevice(t, card, Config{})
	ctx := ctxT(t)
	for i := range 4 {
		c, err := channel.OpenConfig(ctx, dir, channel.Config{})
		if err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			id := uint32(i*10 + j)
			if _, err := c.Exchange(ctx, emulatortest.CountCommand(id)); err != nil {
				t.Fatal(err)
			}
			if n := card.Executions(id); n != 1 {
				t.Fatalf("session %d command %d ran %d times", i, j, n)
			}
		}
		c.Close()
	}
}

func TestBusyKeepsHostWaiting(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, dir := startDevice(t, card, Config{BusyInterval: 5 * time.Millisecond})
	c := openChannel(t, dir, channel.Config{RetransmitTimeout: 20 * time.Millisecond, SilenceTimeout: 200 * time.Millisecond})
	// 600 ms of work is three times the silence timeout: only BUSY blocks
	// keep the host from giving up.
	if _, err := c.Exchange(ctxT(t), []byte{0x80, 0x20, 0x00, 0x00, 0x02, 0x02, 0x58}); err != nil {
		t.Fatal(err)
	}
	if s := dev.Stats(); s.Commands != 1 {
		t.Fatalf("stats %+v: the slow command must run once", s)
	}
}

func TestDirectIO(t *testing.T) {
	card := emulatortest.NewCounterCard()
	_, dir := startDevice(t, card, Config{})
	c, err := channel.OpenConfig(ctxT(t), dir, channel.Config{IO: channel.IODirect})
	if errors.Is(err, os.ErrInvalid) || (err != nil && bytes.Contains([]byte(err.Error()), []byte("invalid argument"))) {
		t.Skipf("this file system refuses O_DIRECT: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Direct() {
		t.Fatal("IODirect channel reports buffered I/O")
	}
	for id := uint32(1); id <= 5; id++ {
		if _, err := c.Exchange(ctxT(t), emulatortest.CountCommand(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// writeBlock puts raw bytes in CMD.BIN the way a host does, in place.
func writeBlock(t *testing.T, dir string, raw []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, sdblock.ChannelDir, sdblock.CommandFile), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(raw, 0); err != nil {
		t.Fatal(err)
	}
}

// awaitReply reads RSP.BIN until it holds a block with seq.
func awaitReply(t *testing.T, dir string, seq uint32) sdblock.Block {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := os.ReadFile(filepath.Join(dir, sdblock.ChannelDir, sdblock.ResponseFile))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := sdblock.ParseBlock(raw); err == nil && b.Seq == seq && b.Kind != sdblock.KindBusy {
			return b
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("no reply with seq %d", seq)
	return sdblock.Block{}
}

func marshal(t *testing.T, b sdblock.Block) []byte {
	t.Helper()
	raw := make([]byte, sdblock.BlockSize)
	if err := b.Marshal(raw); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBadBlocksGetErrorAndServingGoesOn(t *testing.T) {
	card := emulatortest.NewCounterCard()
	dev, dir := startDevice(t, card, Config{})

	reseal := func(raw []byte) []byte { // fix the CRC after editing fields
		crc := crc16.Checksum(raw[:510])
		raw[510], raw[511] = byte(crc>>8), byte(crc)
		return raw
	}
	damaged := marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: 100, APDU: emulatortest.CountCommand(1)})
	damaged[20] ^= 0xFF
	longLen := marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: 101})
	longLen[0], longLen[1] = 0x01, 0xF3 // 499
	longLen = reseal(longLen)
	unknown := marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: 102})
	unknown[502] = 0x44
	unknown = reseal(unknown)

	cases := []struct {
		name string
		raw  []byte
		seq  uint32
		want sdblock.Reason
	}{
		{"damaged", damaged, 100, sdblock.ReasonDamaged},
		{"LEN over 498", longLen, 101, sdblock.ReasonLength},
		{"unknown kind", unknown, 102, sdblock.ReasonUnknown},
		{"card kind from host", marshal(t, sdblock.Block{Kind: sdblock.KindResponse, Seq: 103, APDU: []byte{0x90, 0}}), 103, sdblock.ReasonUnexpected},
		{"CONTINUE with no chain", marshal(t, sdblock.Block{Kind: sdblock.KindContinue, Seq: 104, APDU: []byte{1}}), 104, sdblock.ReasonUnexpected},
		{"NEXT with nothing pending", marshal(t, sdblock.Block{Kind: sdblock.KindNext, Seq: 105}), 105, sdblock.ReasonUnexpected},
		{"bad reset mode", marshal(t, sdblock.Block{Kind: sdblock.KindReset, Seq: 106, APDU: []byte{7}}), 106, sdblock.ReasonBadMode},
		{"bad power mode", marshal(t, sdblock.Block{Kind: sdblock.KindPower, Seq: 107}), 107, sdblock.ReasonBadMode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writeBlock(t, dir, c.raw)
			b := awaitReply(t, dir, c.seq)
			if b.Kind != sdblock.KindError || len(b.APDU) != 1 || sdblock.Reason(b.APDU[0]) != c.want {
				t.Fatalf("reply %v % X, want ERROR %s", b, b.APDU, c.want)
			}
		})
	}

	// Serving goes on, and the same block written three times runs once.
	good := marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: 200, APDU: emulatortest.CountCommand(9)})
	for range 3 {
		writeBlock(t, dir, good)
		b := awaitReply(t, dir, 200)
		if b.Kind != sdblock.KindResponse || binary.BigEndian.Uint32(b.APDU[4:8]) != 1 {
			t.Fatalf("reply %v % X", b, b.APDU)
		}
	}
	if n := card.Executions(9); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}
	if s := dev.Stats(); s.Commands != 1 {
		t.Fatalf("stats %+v, want 1 command", s)
	}
}

func TestCommandFileReplacedByRename(t *testing.T) {
	card := emulatortest.NewCounterCard()
	_, dir := startDevice(t, card, Config{PollInterval: 5 * time.Millisecond})
	ch := filepath.Join(dir, sdblock.ChannelDir)
	for i, seq := range []uint32{1, 2} {
		tmp := filepath.Join(ch, "CMD.NEW")
		if err := os.WriteFile(tmp, marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: seq, APDU: emulatortest.CountCommand(uint32(50 + i))}), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(ch, sdblock.CommandFile)); err != nil {
			t.Fatal(err)
		}
		if b := awaitReply(t, dir, seq); b.Kind != sdblock.KindResponse {
			t.Fatalf("reply %v", b)
		}
	}
	// RSP.BIN removed: the card recreates it for its next answer.
	os.Remove(filepath.Join(ch, sdblock.ResponseFile))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(filepath.Join(ch, sdblock.ResponseFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the card did not recreate RSP.BIN")
		}
	}
	writeBlock(t, dir, marshal(t, sdblock.Block{Kind: sdblock.KindCommand, Seq: 3, APDU: emulatortest.CountCommand(60)}))
	if b := awaitReply(t, dir, 3); b.Kind != sdblock.KindResponse {
		t.Fatalf("reply %v", b)
	}
	for _, id := range []uint32{50, 51, 60} {
		if n := card.Executions(id); n != 1 {
			t.Fatalf("command %d ran %d times", id, n)
		}
	}
}

func TestCloseRemovesChannel(t *testing.T) {
	dev, dir := startDevice(t, emulatortest.NewCounterCard(), Config{})
	dev.Close()
	if _, err := channel.Open(dir); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("open after the card left: %v, want link.ErrNoCard", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sdblock.ChannelDir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("channel directory left behind: %v", err)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	d := New(emulatortest.NewCounterCard(), dir, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	var c link.Link
	var err error
	for range 200 {
		if c, err = channel.Open(dir); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exchange(ctxT(t), emulatortest.CountCommand(1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// The SD rig keeps the Link contract with this emulator behind the channel.
func TestSDLinkKeepsTheContract(t *testing.T) {
	linktest.Contract(t, func(t *testing.T, card *linktest.ContractCard) link.Link {
		_, dir := startDevice(t, card, Config{})
		return openChannel(t, dir, channel.Config{})
	})
}

// TestSwapPutsAnotherCardBehindTheChannel: after Swap the old card has lost
// power and the block left in CMD.BIN is not run on the new card, a host
// channel opened anew reaches the new card, and with no card every block
// is refused as unpowered.
func TestSwapPutsAnotherCardBehindTheChannel(t *testing.T) {
	first, second := emulatortest.NewCounterCard(), emulatortest.NewCounterCard()
	d, dir := startDevice(t, first, Config{PollInterval: time.Millisecond})
	ctx := ctxT(t)
	c := openChannel(t, dir, channel.Config{})
	if _, err := c.Exchange(ctx, emulatortest.CountCommand(1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := d.Swap(second); err != nil {
		t.Fatal(err)
	}
	if first.Powered() || !second.Powered() {
		t.Fatalf("after Swap the old card powered %v, the new one %v", first.Powered(), second.Powered())
	}
	time.Sleep(5 * time.Millisecond) // a few polls of CMD.BIN, which still holds COUNT 1
	if n := second.Executions(1); n != 0 {
		t.Fatalf("the block left in CMD.BIN ran %d times on the new card", n)
	}
	c = openChannel(t, dir, channel.Config{})
	if err := d.Swap(emulatortest.NewCounterCard()); err != nil {
		t.Fatal(err)
	}
	// The channel stays open: a new session with the card swapped in.
	if atr, err := c.OpenSession(ctx); err != nil || !bytes.Equal(atr, emulator.ATR(emulator.FormSD)) {
		t.Fatalf("session with a new card: ATR % X, %v", atr, err)
	}
	if err := d.Swap(second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenSession(ctx); err != nil {
		t.Fatal(err)
	}
	for id := uint32(1); id <= 2; id++ {
		if _, err := c.Exchange(ctx, emulatortest.CountCommand(id)); err != nil {
			t.Fatal(err)
		}
		if n := second.Executions(id); n != 1 {
			t.Fatalf("COUNT %d ran %d times on the new card", id, n)
		}
	}
	if first.Executions(2) != 0 {
		t.Fatal("the old card ran a command after Swap")
	}
	if err := d.Swap(nil); err != nil {
		t.Fatal(err)
	}
	if second.Powered() {
		t.Fatal("the card taken out still has power")
	}
	if _, err := c.Exchange(ctx, emulatortest.CountCommand(3)); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("a command with no card answered %v, want link.ErrRemoved", err)
	}
	d.Close()
	if err := d.Swap(first); err == nil {
		t.Fatal("Swap after Close succeeded")
	}
}

// TestWaitEndsWithContextOrClose: a host waiting for a card that works
// on (BUSY blocks, then a long silence) stops waiting when its context
// ends, and when its channel is closed, with link.ErrClosed.
func TestWaitEndsWithContextOrClose(t *testing.T) {
	card := emulatortest.NewCounterCard()
	_, dir := startDevice(t, card, Config{BusyInterval: time.Hour})
	c := openChannel(t, dir, channel.Config{RetransmitTimeout: time.Hour, SilenceTimeout: time.Hour})
	slow := []byte{0x80, 0x20, 0x00, 0x00, 0x02, 0x01, 0xF4} // 500 ms of work, in silence
	ctx, cancel := context.WithCancel(ctxT(t))
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := c.Exchange(ctx, slow); !errors.Is(err, context.Canceled) {
		t.Fatalf("a wait whose context ended: %v, want context.Canceled", err)
	}
	c = openChannel(t, dir, channel.Config{RetransmitTimeout: time.Hour, SilenceTimeout: time.Hour})
	time.AfterFunc(20*time.Millisecond, func() { c.Close() })
	if _, err := c.Exchange(ctxT(t), slow); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("a wait on a channel closed meanwhile: %v, want link.ErrClosed", err)
	}
}
