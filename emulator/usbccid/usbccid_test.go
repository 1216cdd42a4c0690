package usbccid

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/wire/ccid"
)

// echoCard answers every command with its own bytes and 9000; 80 20
// waits for release first; 80 30 tears.
type echoCard struct {
	mu      sync.Mutex
	release chan struct{}
	events  []string
}

func (c *echoCard) Process(cmd []byte) []byte {
	if len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == 0x20 && c.release != nil {
		<-c.release
	}
	if len(cmd) >= 2 && cmd[0] == 0x80 && cmd[1] == 0x30 {
		return nil
	}
	return append(append([]byte(nil), cmd...), 0x90, 0x00)
}

func (c *echoCard) note(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

func (c *echoCard) PowerOn()  { c.note("on") }
func (c *echoCard) PowerOff() { c.note("off") }
func (c *echoCard) Reset()    { c.note("reset") }

func (c *echoCard) history() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, " ")
}

var _ emulator.Card = (*echoCard)(nil)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip writes msg and returns the next bulk-in message.
func roundTrip(t *testing.T, r *Reader, msg []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Write(ctx, msg); err != nil {
		t.Fatalf("Write(%X): %v", msg, err)
	}
	for {
		b, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %X: %v", msg, err)
		}
		// A time extension (bStatus 10xxxxxx) while the card works on a
		// slow machine is not the answer: the answer follows it.
		if len(b) > 7 && b[7]&0xC0 == 0x80 {
			continue
		}
		return b
	}
}

func TestBulkMessages(t *testing.T) {
	atr := emulator.ATR(emulator.FormUSB)
	atrHex := hex.EncodeToString(atr)
	lenATR := hex.EncodeToString([]byte{byte(len(atr))})
	// Each step runs in order on one reader.
	steps := []struct {
		name, in, want string
	}{
		{"status, inactive", "65 00000000 00 01 000000", "81 00000000 00 01 01 00 01"},
		{"xfr to inactive card", "6F 04000000 00 02 000000 80100000", "80 00000000 00 02 41 FE 00"},
		{"power on", "62 00000000 00 03 000000", "80 " + lenATR + "000000 00 03 00 00 00" + atrHex},
		{"status, active", "65 00000000 00 04 000000", "81 00000000 00 04 00 00 00"},
		{"xfr", "6F 04000000 00 05 000000 80100000", "80 06000000 00 05 00 00 00 80100000 9000"},
		{"xfr, empty APDU", "6F 00000000 00 06 000000", "80 02000000 00 06 00 00 00 9000"},
		{"get parameters", "6C 00000000 00 07 000000", "82 07000000 00 07 00 00 01 11 10 00 45 00 FE 00"},
		{"dwLength too long", "6F 05000000 00 08 000000 80100000", "80 00000000 00 08 40 01 00"},
		{"dwLength too short", "6F 03000000 00 09 000000 80100000", "80 00000000 00 09 40 01 00"},
		{"bad slot", "65 00000000 01 0A 000000", "81 00000000 01 0A 42 05 00"},
		{"bad power select", "62 00000000 00 0B 040000", "80 00000000 00 0B 40 07 00"},
		{"chained xfr", "6F 04000000 00 0C 000100 80100000", "80 00000000 00 0C 40 08 00"},
		{"unknown type", "42 00000000 00 0D 000000", "81 00000000 00 0D 40 00 00"},
		{"bulk-in type sent out", "80 00000000 00 0E 000000", "81 00000000 00 0E 40 00 00"},
		{"escape not supported", "6B 02000000 00 0F 000000 0102", "83 00000000 00 0F 40 00 00"},
		{"set parameters not supported", "61 00000000 00 10 010000", "82 00000000 00 10 40 00 00"},
		{"abort not supported", "72 00000000 00 11 000000", "81 00000000 00 11 40 00 00"},
		{"power off", "63 00000000 00 12 000000", "81 00000000 00 12 01 00 01"},
		{"xfr after power off", "6F 04000000 00 13 000000 80100000", "80 00000000 00 13 41 FE 00"},
		{"power on again", "62 00000000 00 14 000000", "80 " + lenATR + "000000 00 14 00 00 00" + atrHex},
		{"warm reset", "62 00000000 00 15 000000", "80 " + lenATR + "000000 00 15 00 00 00" + atrHex},
		{"torn card", "6F 04000000 00 16 000000 80300000", "80 00000000 00 16 41 FE 00"},
		{"status, torn", "65 00000000 00 17 000000", "81 00000000 00 17 01 00 01"},
	}
	card := &echoCard{}
	r := New(card, Config{})
	defer r.Close()
	for _, s := range steps {
		got := roundTrip(t, r, unhex(t, s.in))
		if want := unhex(t, s.want); !bytes.Equal(got, want) {
			t.Fatalf("%s: answer % X, want % X", s.name, got, want)
		}
	}
	if got, want := card.history(), "on off on reset"; got != want {
		t.Fatalf("card power events %q, want %q", got, want)
	}
}

func TestShortTransferStalls(t *testing.T) {
	r := New(&echoCard{}, Config{})
	defer r.Close()
	ctx := context.Background()
	if err := r.Write(ctx, []byte{0x65, 0, 0}); err == nil {
		t.Fatal("a 3-byte transfer was accepted")
	}
	if r.Stalls() != 1 {
		t.Fatalf("Stalls() = %d", r.Stalls())
	}
	// The reader keeps serving.
	got := roundTrip(t, r, unhex(t, "65 00000000 00 01 000000"))
	if ccid.MessageType(got[0]) != ccid.RDRtoPCSlotStatus {
		t.Fatalf("answer after a stall: % X", got)
	}
}

func TestMaxMessage(t *testing.T) {
	r := New(&echoCard{}, Config{MaxMessage: 20})
	defer r.Close()
	roundTrip(t, r, ccid.IccPowerOn(0, 1, 0).Bytes())
	got, _ := ccid.Parse(roundTrip(t, r, ccid.XfrBlock(0, 2, make([]byte, 11)).Bytes()))
	if got.Status().Command() != ccid.CommandFailed || got.Error() != ccid.ErrBadLength {
		t.Fatalf("21-byte message on a 20-byte reader: %v", got)
	}
	got, _ = ccid.Parse(roundTrip(t, r, ccid.XfrBlock(0, 3, make([]byte, 10)).Bytes()))
	if got.Status().Command() != ccid.CommandOK {
		t.Fatalf("20-byte message on a 20-byte reader: %v", got)
	}
}

func TestBusyAndTimeExtension(t *testing.T) {
	card := &echoCard{release: make(chan struct{})}
	r := New(card, Config{TimeExtensionAfter: 5 * time.Millisecond, TimeExtensionMultiplier: 3})
	defer r.Close()
	roundTrip(t, r, ccid.IccPowerOn(0, 1, 0).Bytes())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Write(ctx, ccid.XfrBlock(0, 2, unhex(t, "80200000")).Bytes()); err != nil {
		t.Fatal(err)
	}
	// While the card works: a time extension request for seq 2.
	b, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "80 00000000 00 02 80 03 00"); !bytes.Equal(b, want) {
		t.Fatalf("time extension % X, want % X", b, want)
	}
	// A second command is refused with CMD_SLOT_BUSY (extensions for seq
	// 2 may come first).
	if err := r.Write(ctx, ccid.GetSlotStatus(0, 3).Bytes()); err != nil {
		t.Fatal(err)
	}
	for {
		b, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ccid.Parse(b)
		if m.Seq == 2 {
			continue
		}
		if m.Seq != 3 || m.Status() != ccid.MakeStatus(ccid.ICCActive, ccid.CommandFailed) || m.Error() != ccid.ErrCmdSlotBusy {
			t.Fatalf("command while busy: %v", m)
		}
		break
	}
	close(card.release)
	for {
		b, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ccid.Parse(b)
		if m.Status().Command() == ccid.CommandTimeExtension {
			continue
		}
		if m.Seq != 2 || m.Status() != 0 || !bytes.Equal(m.Data, unhex(t, "80200000 9000")) {
			t.Fatalf("answer of the slow command: %v", m)
		}
		break
	}
	if r.TimeExtensions() == 0 {
		t.Fatal("TimeExtensions() = 0")
	}
}

func TestRemoveWhileBusy(t *testing.T) {
	card := &echoCard{release: make(chan struct{})}
	r := New(card, Config{TimeExtensionAfter: -1})
	defer r.Close()
	roundTrip(t, r, ccid.IccPowerOn(0, 1, 0).Bytes())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Write(ctx, ccid.XfrBlock(0, 2, unhex(t, "80200000")).Bytes()); err != nil {
		t.Fatal(err)
	}
	r.Remove()
	close(card.release)
	b, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "80 00000000 00 02 42 FE 00"); !bytes.Equal(b, want) {
		t.Fatalf("answer after removal % X, want % X", b, want)
	}
	if got := card.history(); got != "on off" {
		t.Fatalf("card events %q, want \"on off\"", got)
	}
	if r.Present() {
		t.Fatal("Present() after Remove")
	}
	r.Insert()
	got := roundTrip(t, r, ccid.GetSlotStatus(0, 3).Bytes())
	if want := unhex(t, "81 00000000 00 03 01 00 01"); !bytes.Equal(got, want) {
		t.Fatalf("status after insertion % X, want % X", got, want)
	}
}

func TestQueueLimitAndClose(t *testing.T) {
	card := &echoCard{}
	r := New(card, Config{QueueLimit: 2})
	ctx := context.Background()
	for i := byte(1); i <= 2; i++ {
		if err := r.Write(ctx, ccid.GetSlotStatus(0, i).Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Write(ctx, ccid.GetSlotStatus(0, 3).Bytes()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third unread write: %v, want ErrQueueFull", err)
	}
	if _, err := r.Read(ctx); err != nil { // seq 1: the queue has room again
		t.Fatal(err)
	}
	if err := r.Write(ctx, ccid.IccPowerOn(0, 4, 0).Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(ctx, ccid.GetSlotStatus(0, 5).Bytes()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	// Messages already queued are still delivered, then Read fails.
	for i := 0; i < 2; i++ {
		if _, err := r.Read(ctx); err != nil {
			t.Fatalf("queued read %d after Close: %v", i, err)
		}
	}
	if _, err := r.Read(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if got := card.history(); got != "on off" {
		t.Fatalf("card events %q, want \"on off\" (Close unpowers the card)", got)
	}
}

func TestReadHonoursContext(t *testing.T) {
	r := New(&echoCard{}, Config{})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := r.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with nothing queued: %v", err)
	}
}

func TestParameters(t *testing.T) {
	tests := []struct {
		name, atr string
		proto     byte
		want      string
	}{
		{"spdlab USB", hex.EncodeToString(emulator.ATR(emulator.FormUSB)), 1, "11 10 00 45 00 FE 00"},
		{"T=0 only, TA1 TC1", "3B 51 96 02", 0, "96 00 02 0A 00"},
		{"T=0 then T=1 with CRC", "3B 80 80 71 FE 45 01", 0, "11 00 00 0A 00"},
		{"T=1 with CRC and TA1", "3B 90 96 81 71 20 4D 01", 1, "96 11 00 4D 00 20 00"},
		{"truncated", "3B FF", 0, "11 00 00 0A 00"},
		{"empty", "", 0, "11 00 00 0A 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proto, got := parameters(unhex(t, tt.atr))
			if proto != tt.proto || !bytes.Equal(got, unhex(t, tt.want)) {
				t.Fatalf("parameters = T=%d % X, want T=%d %s", proto, got, tt.proto, tt.want)
			}
		})
	}
}

// FuzzBulkOut writes arbitrary transfers to a reader with a card in it:
// each is answered or stalls, the answer is a well-formed RDR_to_PC
// message with the same sequence number, and the reader never panics.
func FuzzBulkOut(f *testing.F) {
	f.Add(unhex(f, "62 00000000 00 01 000000"))
	f.Add(unhex(f, "6F 04000000 00 02 000000 80100000"))
	f.Add(unhex(f, "6F 05000000 00 03 000000 80100000"))
	f.Add(unhex(f, "65 00000000 07 04 000000"))
	f.Add(unhex(f, "42"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := New(&echoCard{}, Config{TimeExtensionAfter: -1})
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Power on first so that XfrBlock reaches the card.
		if err := r.Write(ctx, ccid.IccPowerOn(0, 0xFF, 0).Bytes()); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Write(ctx, in); err != nil {
			if len(in) >= ccid.HeaderSize {
				t.Fatalf("Write(%X) failed: %v", in, err)
			}
			return
		}
		b, err := r.Read(ctx)
		if err != nil {
			t.Fatalf("no answer to %X: %v", in, err)
		}
		m, err := ccid.Parse(b)
		if err != nil {
			t.Fatalf("answer %X does not parse: %v", b, err)
		}
		if !m.Type.BulkIn() || m.Seq != in[6] || m.Slot != in[5] {
			t.Fatalf("answer %v to %X", m, in)
		}
	})
}
