package serial

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/spdlab/spdlab/reference/wire/serialframe"
	"github.com/spdlab/spdlab/rigs/link"
)

// testPTY opens a pseudo-terminal and returns its master and the slave
// path. The slave stays open for the test's duration so the master never
// sees a hang-up between host sessions; the port puts it in raw mode.
func testPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return master, slave.Name()
}

// scriptedDevice answers each request frame with whatever answer returns
// for it; attempt counts how often a frame with that type and SEQ came.
type scriptedDevice struct {
	mu       sync.Mutex
	attempts map[[2]byte]int
	answer   func(f serialframe.Frame, attempt int) []byte
}

func serveScript(t *testing.T, master *os.File, answer func(f serialframe.Frame, attempt int) []byte) *scriptedDevice {
	d := &scriptedDevice{attempts: map[[2]byte]int{}, answer: answer}
	go func() {
		dec := serialframe.NewDecoder(0)
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			if err != nil {
				return
			}
			dec.Feed(buf[:n], func(f serialframe.Frame, err error) {
				if err != nil {
					return
				}
				d.mu.Lock()
				k := [2]byte{byte(f.Type), f.Seq}
				d.attempts[k]++
				a := d.attempts[k]
				d.mu.Unlock()
				if out := d.answer(f, a); out != nil {
					master.Write(out)
				}
			})
		}
	}()
	return d
}

// wantCommandSent fails t unless every COMMAND frame came want times.
func (d *scriptedDevice) wantCommandSent(t *testing.T, want int, while string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, n := range d.attempts {
		if serialframe.Type(k[0]) == serialframe.TypeCommand && n != want {
			t.Fatalf("command sent %d times%s, want %d", n, while, want)
		}
	}
}

func reply(t serialframe.Type, seq byte, payload ...byte) []byte {
	b, _ := serialframe.AppendFrame(nil, serialframe.Frame{Type: t, Seq: seq, Payload: payload})
	return b
}

var testATR = []byte{0x3B, 0x00}

// openScript answers RESET 00 with testATR and hands everything else to next.
func openScript(next func(f serialframe.Frame, attempt int) []byte) func(f serialframe.Frame, attempt int) []byte {
	return func(f serialframe.Frame, attempt int) []byte {
		if f.Type == serialframe.TypeReset && len(f.Payload) == 1 && f.Payload[0] == serialframe.ResetOpen {
			return reply(serialframe.TypeATR, f.Seq, testATR...)
		}
		return next(f, attempt)
	}
}

func quickConfig() Config {
	return Config{BaudRate: 4000000, RetransmitTimeout: 5 * time.Millisecond, SilenceTimeout: 300 * time.Millisecond}
}

func TestOpenMissingPort(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "ttyUSB9"))
	if !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("got %v, want link.ErrNoCard", err)
	}
}

func TestOpenNotATTY(t *testing.T) {
	p := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(p, nil, 0o600)
	if _, err := Open(p); err == nil {
		t.Fatal("opened a regular file as a serial port")
	}
}

func TestOpenSilentPort(t *testing.T) {
	_, path := testPTY(t)
	cfg := quickConfig()
	cfg.SilenceTimeout = 50 * time.Millisecond
	_, err := OpenConfig(context.Background(), path, cfg)
	if !errors.Is(err, link.ErrNoCard) {
		t.Fatalf("got %v, want link.ErrNoCard", err)
	}
}

// TestRetransmission runs with the port in the runtime's poller and, as
// where that is not available, with go.bug.st/serial's reads.
func TestRetransmission(t *testing.T) {
	t.Run("poller", func(t *testing.T) { testRetransmission(t, true) })
	t.Run("go.bug.st", func(t *testing.T) { testRetransmission(t, false) })
}

func testRetransmission(t *testing.T, poller bool) {
	master, path := testPTY(t)
	resp := []byte{0x01, 0x02, 0x90, 0x00}
	dev := serveScript(t, master, openScript(func(f serialframe.Frame, attempt int) []byte {
		switch attempt {
		case 1:
			return nil // lost
		case 2:
			return reply(serialframe.TypeNak, 0, byte(serialframe.ReasonCRC)) // arrived damaged
		case 3:
			bad := reply(serialframe.TypeResponse, f.Seq, resp...)
			bad[5] ^= 0xFF // damaged on the way back
			return bad
		case 4:
			// a stale reply to another SEQ, a WAIT, then the answer
			return append(append(reply(serialframe.TypeResponse, f.Seq-1, 0x6F, 0x00), reply(serialframe.TypeWait, f.Seq)...), reply(serialframe.TypeResponse, f.Seq, resp...)...)
		}
		return reply(serialframe.TypeResponse, f.Seq, resp...)
	}))
	// The one lost frame waits a whole retransmission timeout; it is long
	// enough here that a busy machine never makes the host send a fifth time
	// before the scripted answer is on the line.
	cfg := quickConfig()
	cfg.RetransmitTimeout = 200 * time.Millisecond
	p, err := OpenConfig(context.Background(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if (p.rw != nil) != poller {
		if poller {
			t.Skip("no port in the runtime's poller here")
		}
		p.rw.Close()
		p.rw = nil
	}
	if !bytes.Equal(p.ATR(), testATR) {
		t.Fatalf("ATR % X", p.ATR())
	}
	got, err := p.Exchange(context.Background(), []byte{0x00, 0xB0, 0x00, 0x00, 0x02})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, resp) {
		t.Fatalf("response % X, want % X", got, resp)
	}
	dev.wantCommandSent(t, 4, "")
}

func TestRefusals(t *testing.T) {
	master, path := testPTY(t)
	serveScript(t, master, openScript(func(f serialframe.Frame, attempt int) []byte {
		switch f.Type {
		case serialframe.TypeCommand:
			if f.Payload[1] == 0x01 {
				return reply(serialframe.TypeNak, f.Seq, byte(serialframe.ReasonUnpowered))
			}
			if f.Payload[1] == 0x02 {
				return reply(serialframe.TypeResponse, f.Seq, 0x90) // shorter than a status word
			}
			return reply(serialframe.TypeNak, f.Seq, byte(serialframe.ReasonResponseSize))
		case serialframe.TypePower:
			if f.Payload[0] == serialframe.PowerOff {
				return reply(serialframe.TypeAck, f.Seq)
			}
			return reply(serialframe.TypeATR, f.Seq, 0x3B, 0x01)
		case serialframe.TypeReset:
			return reply(serialframe.TypeATR, f.Seq, 0x3B, f.Payload[0])
		}
		return nil
	}))
	p, err := OpenConfig(context.Background(), path, quickConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	if _, err := p.Exchange(ctx, []byte{0x00, 0x01, 0x00, 0x00}); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("unpowered: %v", err)
	}
	if _, err := p.Exchange(ctx, []byte{0x00, 0x02, 0x00, 0x00}); err == nil {
		t.Fatal("accepted a 1-byte response")
	}
	if _, err := p.Exchange(ctx, []byte{0x00, 0x03, 0x00, 0x00}); err == nil {
		t.Fatal("accepted a refusal")
	}
	if _, err := p.Exchange(ctx, make([]byte, serialframe.MaxPayload+1)); err == nil {
		t.Fatal("sent an oversized command")
	}
	if err := p.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if atr, err := p.PowerOn(ctx); err != nil || !bytes.Equal(atr, []byte{0x3B, 0x01}) {
		t.Fatalf("power on: % X %v", atr, err)
	}
	if atr, err := p.Reset(ctx, true); err != nil || !bytes.Equal(atr, []byte{0x3B, serialframe.ResetCold}) || !bytes.Equal(p.ATR(), atr) {
		t.Fatalf("cold reset: % X %v", atr, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.Exchange(cancelled, []byte{0, 0, 0, 0}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	p.Close()
	if _, err := p.Exchange(ctx, []byte{0, 0, 0, 0}); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if p.String() != "serial:"+path || p.MaxCommand() != serialframe.MaxPayload {
		t.Fatal(p.String())
	}
}

// extendedCommand is a case 4 extended APDU of 512 data bytes.
func extendedCommand() []byte {
	cmd := []byte{0x80, 0x6E, 0x00, 0x00, 0x00, 0x02, 0x00}
	cmd = append(cmd, bytes.Repeat([]byte{0xA5}, 512)...)
	return append(cmd, 0x00, 0x00)
}

// A lost reply to an extended command is asked for again after a short
// retransmission timeout, as for any other command: the host must not
// budget the longest possible reply's time on the line before it asks
// again (at 115200 baud that is 11 s, ten times the silence timeout).
func TestLostReplyToExtendedCommand(t *testing.T) {
	master, path := testPTY(t)
	resp := []byte{0x90, 0x00}
	dev := serveScript(t, master, openScript(func(f serialframe.Frame, attempt int) []byte {
		if attempt == 1 {
			return nil // lost
		}
		return reply(serialframe.TypeResponse, f.Seq, resp...)
	}))
	p, err := OpenConfig(context.Background(), path, Config{}) // 115200 baud, 1 s of silence
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, err := p.Exchange(context.Background(), extendedCommand())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, resp) {
		t.Fatalf("response % X, want % X", got, resp)
	}
	dev.wantCommandSent(t, 2, "")
}

// A long reply still arriving when the retransmission timeout ends is
// waited for, not asked for again. The reply trickles out in 100-byte
// pieces every 10 ms for about 600 ms, three times the 200 ms timeout. The
// host may rightly ask again when the line goes quiet for the whole
// timeout, and a busy machine can stall the scripted device that long
// (seen under the race detector at a load of 10 on 2 CPUs): a run in which
// the device's reply started, or paused between pieces, 100 ms or more
// after the one before proves nothing and is made again, up to 5 runs.
func TestLongReplyInTransit(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for run := 1; ; run++ {
		sent, stall := longReplyRun(t, timeout)
		if stall < timeout/2 {
			if sent != 1 {
				t.Fatalf("command sent %d times while its reply was arriving (the device never paused %v), want 1", sent, timeout/2)
			}
			return
		}
		t.Logf("run %d: the device paused %v before or within its reply; made again", run, stall.Round(time.Millisecond))
		if run == 5 {
			t.Fatalf("in %d runs the machine stalled the scripted device for %v or more each time: nothing is proved", run, timeout/2)
		}
	}
}

// longReplyRun makes one exchange of TestLongReplyInTransit and returns
// how often the command came, and the longest pause of the device: from
// the exchange's start to the reply's first piece, and between pieces.
func longReplyRun(t *testing.T, timeout time.Duration) (sent int, stall time.Duration) {
	master, path := testPTY(t)
	resp := append(bytes.Repeat([]byte{0x5A}, 6000), 0x90, 0x00)
	var mu sync.Mutex
	var last time.Time // the exchange's start, then the last piece written
	var longest time.Duration
	pause := func() {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		longest = max(longest, now.Sub(last))
		last = now
	}
	dev := serveScript(t, master, openScript(func(f serialframe.Frame, attempt int) []byte {
		out := reply(serialframe.TypeResponse, f.Seq, resp...)
		for len(out) > 100 {
			pause()
			master.Write(out[:100])
			out = out[100:]
			time.Sleep(10 * time.Millisecond)
		}
		pause()
		return out
	}))
	p, err := OpenConfig(context.Background(), path, Config{RetransmitTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mu.Lock()
	last = time.Now()
	mu.Unlock()
	got, err := p.Exchange(context.Background(), extendedCommand())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, resp) {
		t.Fatalf("response of %d bytes, want %d", len(got), len(resp))
	}
	dev.mu.Lock()
	defer dev.mu.Unlock()
	for k, n := range dev.attempts {
		if serialframe.Type(k[0]) == serialframe.TypeCommand {
			sent += n
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return sent, longest
}

// TestRequestEndsWithContextOrClose: a request waiting on a device that
// sends WAIT frames and never the reply ends when its context does, and
// another waiting so ends when the port is closed, with link.ErrClosed.
func TestRequestEndsWithContextOrClose(t *testing.T) {
	t.Run("poller", func(t *testing.T) { testRequestEnds(t, true) })
	t.Run("go.bug.st", func(t *testing.T) { testRequestEnds(t, false) })
}

func testRequestEnds(t *testing.T, poller bool) {
	master, path := testPTY(t)
	serveScript(t, master, openScript(func(f serialframe.Frame, attempt int) []byte {
		return reply(serialframe.TypeWait, f.Seq)
	}))
	p, err := OpenConfig(context.Background(), path, quickConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if (p.rw != nil) != poller {
		if poller {
			t.Skip("no port in the runtime's poller here")
		}
		p.rw.Close()
		p.rw = nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := p.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request whose context ended: %v, want context.Canceled", err)
	}
	time.AfterFunc(20*time.Millisecond, func() { p.Close() })
	if _, err := p.Exchange(context.Background(), []byte{0x00, 0xA4, 0x04, 0x00}); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("a request on a port closed meanwhile: %v, want link.ErrClosed", err)
	}
}
