package usb_test

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
	"github.com/spdlab/spdlab/emulator/usbccid"
	"github.com/spdlab/spdlab/reference/wire/ccid"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
	"github.com/spdlab/spdlab/rigs/usb"
)

var _ usb.BulkPipe = (*usbccid.Reader)(nil)

var spdAID = []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}

// selectCard is a tiny card application: SELECT by AID answers an FCI
// naming the AID, 80 10 echoes its data, 80 20 works for the card's
// delay first, 80 30 tears (power cut while running).
type selectCard struct {
	mu        sync.Mutex
	delay     time.Duration
	processed int
	powerOns  int
	powerOffs int
	resets    int
	powered   bool
}

func (c *selectCard) Process(cmd []byte) []byte {
	c.mu.Lock()
	c.processed++
	delay := c.delay
	c.mu.Unlock()
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}
	}
	switch {
	case cmd[0] == 0x00 && cmd[1] == 0xA4 && cmd[2] == 0x04:
		if len(cmd) >= 5 && len(cmd) >= 5+int(cmd[4]) && bytes.Equal(cmd[5:5+int(cmd[4])], spdAID) {
			return append(append([]byte{0x6F, 0x0A, 0x84, 0x08}, spdAID...), 0x90, 0x00)
		}
		return []byte{0x6A, 0x82}
	case cmd[0] == 0x80 && cmd[1] == 0x10:
		var data []byte
		if len(cmd) > 5 {
			data = cmd[5:]
		}
		return append(append([]byte(nil), data...), 0x90, 0x00)
	case cmd[0] == 0x80 && cmd[1] == 0x20:
		time.Sleep(delay)
		return []byte{0x90, 0x00}
	case cmd[0] == 0x80 && cmd[1] == 0x30:
		c.mu.Lock()
		c.powered = false
		c.mu.Unlock()
		return nil
	}
	return []byte{0x6D, 0x00}
}

func (c *selectCard) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOns++
	c.powered = true
}

func (c *selectCard) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.powerOffs++
	c.powered = false
}

func (c *selectCard) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resets++
}

func (c *selectCard) count() (processed, ons, offs, resets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.processed, c.powerOns, c.powerOffs, c.resets
}

var _ emulator.Card = (*selectCard)(nil)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func open(t *testing.T, card *selectCard, cfg usbccid.Config) (*usb.Link, *usbccid.Reader) {
	t.Helper()
	rd := usbccid.New(card, cfg)
	t.Cleanup(func() { rd.Close() })
	l, err := usb.New(context.Background(), rd, usb.Config{Name: "usb-emu", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("usb.New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, rd
}

func TestExchange(t *testing.T) {
	card := &selectCard{}
	l, _ := open(t, card, usbccid.Config{})
	ctx := context.Background()
	if !bytes.Equal(l.ATR(), emulator.ATR(emulator.FormUSB)) {
		t.Fatalf("ATR = %X", l.ATR())
	}
	tests := []struct {
		name, cmd, want string
	}{
		{"select SPD", "00A4040008F0535044 4C414201 00", "6F0A8408F05350444C414201 9000"},
		{"select other", "00A4040002A0A0 00", "6A82"},
		{"echo", "80100000 03 010203", "010203 9000"},
		{"unknown INS", "80FF0000", "6D00"},
		{"short command", "80", "6700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Exchange(ctx, unhex(t, tt.cmd))
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("response %X, want %X", got, want)
			}
		})
	}
	if l.String() != "usb-emu" {
		t.Fatalf("String() = %q", l.String())
	}
}

func TestExtendedAPDU(t *testing.T) {
	l, _ := open(t, &selectCard{}, usbccid.Config{})
	data := bytes.Repeat([]byte{0xA5}, 4000)
	cmd := append([]byte{0x80, 0x10, 0, 0, 0, byte(len(data) >> 8), byte(len(data))}, data...)
	got, err := l.Exchange(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The echo card returns everything after byte 5: two Lc bytes and the data.
	if len(got) != 2+len(data)+2 || !bytes.Equal(got[len(got)-2:], []byte{0x90, 0x00}) {
		t.Fatalf("extended echo returned %d bytes", len(got))
	}
}

func TestPowerCycleAndReset(t *testing.T) {
	card := &selectCard{}
	l, _ := open(t, card, usbccid.Config{})
	ctx := context.Background()
	_, ons, _, _ := card.count()
	if ons != 1 {
		t.Fatalf("power-ons after New = %d, want 1", ons)
	}
	if st, err := l.SlotStatus(ctx); err != nil || st != ccid.ICCActive {
		t.Fatalf("SlotStatus = %v, %v", st, err)
	}
	if err := l.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := l.SlotStatus(ctx); err != nil || st != ccid.ICCInactive {
		t.Fatalf("SlotStatus after PowerOff = %v, %v", st, err)
	}
	_, err := l.Exchange(ctx, unhex(t, "80100000"))
	if !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("Exchange on an unpowered card: %v, want ErrRemoved", err)
	}
	atr, err := l.PowerOn(ctx)
	if err != nil || !bytes.Equal(atr, emulator.ATR(emulator.FormUSB)) {
		t.Fatalf("PowerOn = %X, %v", atr, err)
	}
	if _, err := l.Reset(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	_, ons, offs, resets := card.count()
	if ons != 3 || offs != 2 || resets != 1 {
		t.Fatalf("card saw %d power-ons, %d power-offs, %d warm resets; want 3, 2, 1", ons, offs, resets)
	}
	if _, err := l.Exchange(ctx, unhex(t, "80100000")); err != nil {
		t.Fatal(err)
	}
	proto, params, err := l.Parameters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// emulator.ATR: T=1, no TA1, TA3 = IFSC 254, TB3 = BWI 4 CWI 5.
	if want := unhex(t, "11 10 00 45 00 FE 00"); proto != 1 || !bytes.Equal(params, want) {
		t.Fatalf("Parameters = T=%d %X, want T=1 %X", proto, params, want)
	}
}

func TestRemovalAndInsertion(t *testing.T) {
	card := &selectCard{}
	l, rd := open(t, card, usbccid.Config{})
	ctx := context.Background()
	rd.Remove()
	if st, err := l.SlotStatus(ctx); err != nil || st != ccid.ICCAbsent {
		t.Fatalf("SlotStatus after removal = %v, %v", st, err)
	}
	_, err := l.Exchange(ctx, unhex(t, "80100000"))
	if !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("Exchange after removal: %v, want ErrRemoved", err)
	}
	var ce *usb.CommandError
	if !errors.As(err, &ce) || ce.Code != ccid.ErrICCMute || ce.Status.ICC() != ccid.ICCAbsent {
		t.Fatalf("error %v is not ICC_MUTE with no card", err)
	}
	if _, err := l.PowerOn(ctx); !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("PowerOn with no card: %v, want ErrNoCard", err)
	}
	rd.Insert()
	if st, err := l.SlotStatus(ctx); err != nil || st != ccid.ICCInactive {
		t.Fatalf("SlotStatus after insertion = %v, %v", st, err)
	}
	if _, err := l.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exchange(ctx, unhex(t, "80100000")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenEmptyReader(t *testing.T) {
	rd := usbccid.New(&selectCard{}, usbccid.Config{Empty: true})
	defer rd.Close()
	_, err := usb.New(context.Background(), rd, usb.Config{})
	if !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("New on an empty reader: %v, want ErrNoCard", err)
	}
}

func TestTimeExtension(t *testing.T) {
	card := &selectCard{delay: 400 * time.Millisecond}
	rd := usbccid.New(card, usbccid.Config{TimeExtensionAfter: 10 * time.Millisecond, TimeExtensionMultiplier: 2})
	defer rd.Close()
	// The host waits only 200 ms per answer: without the reader's time
	// extensions the slow command would time out.
	l, err := usb.New(context.Background(), rd, usb.Config{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := l.Exchange(context.Background(), unhex(t, "80200000"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("response %X", got)
	}
	if rd.TimeExtensions() == 0 {
		t.Fatal("the reader sent no time extension for a slow card")
	}
}

func TestAbandonedCommand(t *testing.T) {
	card := &selectCard{delay: 100 * time.Millisecond}
	l, rd := open(t, card, usbccid.Config{TimeExtensionAfter: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Exchange(ctx, unhex(t, "80200000")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow exchange: %v, want deadline exceeded", err)
	}
	// The reader is still busy with the abandoned command.
	_, err := l.Exchange(context.Background(), unhex(t, "80100000"))
	if !errors.Is(err, usb.ErrSlotBusy) {
		t.Fatalf("exchange while busy: %v, want ErrSlotBusy", err)
	}
	// Once the card has answered, the stale answer (older sequence
	// number) is skipped and the next exchange gets its own answer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := l.Exchange(context.Background(), unhex(t, "80100000 01 77"))
		if err == nil {
			if want := unhex(t, "77 9000"); !bytes.Equal(got, want) {
				t.Fatalf("response %X, want %X", got, want)
			}
			break
		}
		if !errors.Is(err, usb.ErrSlotBusy) || time.Now().After(deadline) {
			t.Fatalf("exchange after the slow command: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = rd
}

func TestTornCard(t *testing.T) {
	card := &selectCard{}
	l, _ := open(t, card, usbccid.Config{})
	ctx := context.Background()
	_, err := l.Exchange(ctx, unhex(t, "80300000"))
	if !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("torn exchange: %v, want ErrRemoved", err)
	}
	if _, err := l.Exchange(ctx, unhex(t, "80100000")); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("exchange with a mute card: %v, want ErrRemoved", err)
	}
	if _, err := l.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exchange(ctx, unhex(t, "80100000")); err != nil {
		t.Fatalf("exchange after power-on: %v", err)
	}
}

func TestClosed(t *testing.T) {
	l, _ := open(t, &selectCard{}, usbccid.Config{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exchange(context.Background(), unhex(t, "80100000")); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Exchange after Close: %v", err)
	}
}

// scriptedPipe answers every bulk-out with a fixed list of bulk-in
// messages, with the sequence number of the command written.
type scriptedPipe struct {
	answers func(cmd ccid.Message) [][]byte
	queue   [][]byte
}

func (p *scriptedPipe) Write(ctx context.Context, msg []byte) error {
	m, err := ccid.Parse(msg)
	if err != nil {
		return err
	}
	if m.Type == ccid.PCtoRDRIccPowerOn {
		p.queue = append(p.queue, m.Answer(0, 0, 0, emulator.ATR(emulator.FormUSB)).Bytes())
		return nil
	}
	p.queue = append(p.queue, p.answers(m)...)
	return nil
}

func (p *scriptedPipe) Read(ctx context.Context) ([]byte, error) {
	if len(p.queue) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	b := p.queue[0]
	p.queue = p.queue[1:]
	return b, nil
}

func TestBadAnswers(t *testing.T) {
	ok := []byte{0x90, 0x00}
	tests := []struct {
		name    string
		answers func(cmd ccid.Message) [][]byte
		wantErr string
	}{
		{"stale then right", func(c ccid.Message) [][]byte {
			stale := c
			stale.Seq--
			return [][]byte{stale.Answer(0, 0, 0, []byte{0x6F, 0x00}).Bytes(), c.Answer(0, 0, 0, ok).Bytes()}
		}, ""},
		{"short message", func(c ccid.Message) [][]byte { return [][]byte{{0x80, 0}} }, "bad answer"},
		{"length mismatch", func(c ccid.Message) [][]byte {
			b := c.Answer(0, 0, 0, ok).Bytes()
			return [][]byte{b[:len(b)-1]}
		}, "bad answer"},
		{"wrong type", func(c ccid.Message) [][]byte {
			a := c.Answer(0, 0, 0, ok)
			a.Type = ccid.RDRtoPCSlotStatus
			return [][]byte{a.Bytes()}
		}, "answered with RDR_to_PC_SlotStatus"},
		{"reserved status", func(c ccid.Message) [][]byte {
			return [][]byte{c.Answer(0xC0, 0, 0, ok).Bytes()}
		}, "reserved bStatus"},
		{"one-byte response", func(c ccid.Message) [][]byte {
			return [][]byte{c.Answer(0, 0, 0, []byte{0x90}).Bytes()}
		}, "shorter than a status word"},
		{"hardware error", func(c ccid.Message) [][]byte {
			return [][]byte{c.Answer(ccid.MakeStatus(ccid.ICCActive, ccid.CommandFailed), ccid.ErrHWError, 0, nil).Bytes()}
		}, "PC_to_RDR_XfrBlock failed: HW_ERROR"},
		{"no answer", func(c ccid.Message) [][]byte { return nil }, "no answer to PC_to_RDR_XfrBlock"},
		{"endless stale answers", func(c ccid.Message) [][]byte {
			var out [][]byte
			for i := 0; i < 40; i++ {
				s := c
				s.Seq += byte(i + 1)
				out = append(out, s.Answer(0, 0, 0, ok).Bytes())
			}
			return out
		}, "out of sequence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := usb.New(context.Background(), &scriptedPipe{answers: tt.answers}, usb.Config{Timeout: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got, err := l.Exchange(context.Background(), unhex(t, "80100000"))
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, ok) {
					t.Fatalf("Exchange = %X, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Exchange error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in       string
		vid, pid uint16
		ok       bool
	}{
		{"072f:90cc", 0x072F, 0x90CC, true},
		{"1234:5678", 0x1234, 0x5678, true},
		{"12345678", 0, 0, false},
		{"zz:1", 0, 0, false},
		{"1:10000", 0, 0, false},
	}
	for _, tt := range tests {
		vid, pid, err := usb.ParseID(tt.in)
		if (err == nil) != tt.ok || vid != tt.vid || pid != tt.pid {
			t.Errorf("ParseID(%q) = %04x, %04x, %v", tt.in, vid, pid, err)
		}
	}
}

// FuzzAnswer feeds arbitrary bulk-in transfers to the link as the answer
// to an XfrBlock: it returns a response or an error, never panics.
func FuzzAnswer(f *testing.F) {
	f.Add(unhex(f, "80 02000000 00 00 00 00 00 9000"))
	f.Add(unhex(f, "80 00000000 00 00 80 02 00"))
	f.Add(unhex(f, "80 00000000 00 00 42 FE 00"))
	f.Add(unhex(f, "81 00000000 00 00 40 00 00"))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, answer []byte) {
		p := &scriptedPipe{answers: func(c ccid.Message) [][]byte {
			b := append([]byte(nil), answer...)
			if len(b) >= ccid.HeaderSize {
				b[6] = c.Seq // reach past the sequence check
			}
			return [][]byte{b}
		}}
		l, err := usb.New(context.Background(), p, usb.Config{Timeout: time.Millisecond, MaxTimeExtensions: 2})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := l.Exchange(context.Background(), []byte{0x80, 0x10, 0, 0})
		if err == nil && len(resp) < 2 {
			t.Fatalf("response %X without an error", resp)
		}
	})
}

// The USB rig keeps the Link contract with the CCID emulator behind it.
func TestUSBLinkKeepsTheContract(t *testing.T) {
	linktest.Contract(t, func(t *testing.T, card *linktest.ContractCard) link.Link {
		rd := usbccid.New(card, usbccid.Config{})
		t.Cleanup(func() { rd.Close() })
		l, err := usb.New(context.Background(), rd, usb.Config{Name: "usb-emu", Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("usb.New: %v", err)
		}
		return l
	})
}
