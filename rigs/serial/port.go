// Package serial reaches an SPD on a serial line: a UART behind
// /dev/ttyUSB0, a USB-serial bridge, or the pseudo-terminal of the serial
// emulator (emulator/serial). It opens and sets up the port with
// go.bug.st/serial (on Unix it reads and writes through a second,
// non-blocking descriptor of the port, pollable_unix.go) and
// returns a link.Link that carries ISO/IEC 7816-4 APDUs in the frames of
// reference/wire/serialframe, with retransmission, so that lost,
// duplicated and corrupted bytes on the line neither lose nor repeat a
// command.
package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spdlab/spdlab/reference/wire/serialframe"
	"github.com/spdlab/spdlab/rigs/link"
	bugst "go.bug.st/serial"
)

// Config tunes a Port. The zero value gives the defaults noted per field.
type Config struct {
	// BaudRate of the line (115200). Over a pseudo-terminal any rate works;
	// the rate also sets how long a frame takes on the line, which is
	// added to the retransmission timeout.
	BaudRate int
	// RetransmitTimeout is how long the host waits for a reply before it
	// sends a request again (50 ms, plus the frame's time on the line). It
	// doubles on each retry, up to MaxRetransmitTimeout (400 ms).
	RetransmitTimeout    time.Duration
	MaxRetransmitTimeout time.Duration
	// SilenceTimeout: when not one byte came from the device for this long
	// within one request, the device is declared absent and the request
	// fails with link.ErrNoCard (1 s). A device that sends WAIT frames, NAKs
	// or frames damaged on the line is not silent: on a noisy line many
	// replies in a row can be lost, and each is answered by a retransmission.
	// Silence is judged only when a timer fires on time: after the host
	// itself was not scheduled for a while (a busy machine), what the
	// device sent meanwhile is read first.
	SilenceTimeout time.Duration
	// MaxAttempts bounds how often one request is sent (32).
	MaxAttempts int
	// OpenTimeout bounds the session-opening RESET 00 of Open when the
	// caller's context has no deadline (2 s).
	OpenTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.BaudRate <= 0 {
		c.BaudRate = 115200
	}
	if c.RetransmitTimeout <= 0 {
		c.RetransmitTimeout = 50 * time.Millisecond
	}
	if c.MaxRetransmitTimeout < c.RetransmitTimeout {
		c.MaxRetransmitTimeout = max(400*time.Millisecond, c.RetransmitTimeout)
	}
	if c.SilenceTimeout <= 0 {
		c.SilenceTimeout = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 32
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 2 * time.Second
	}
	return c
}

// stallLimit is how late a timer may fire before the host counts the
// wait as its own stall (it was not scheduled: a busy machine) rather than
// as the device's silence.
const stallLimit = 200 * time.Millisecond

// Port is a link.Link to a device on a serial line.
//
// The goroutine that sends a request reads the reply itself, until the
// retransmission timer's time: on Unix through a second descriptor of the
// port in the Go runtime's poller (pollable_unix.go), elsewhere with the
// read timeout of go.bug.st/serial. A reply then wakes no thread but the
// one that reads it, which matters when the device answers within tens of
// microseconds (an emulator on a pty) on a busy machine.
type Port struct {
	name string
	path string
	cfg  Config
	line line
	// rw is the port in the runtime's poller, read and written instead
	// of line when it could be opened; deadline is its read deadline.
	rw       *os.File
	deadline time.Time

	mu  sync.Mutex // one request at a time; the fields below are its own
	seq byte
	atr []byte
	buf []byte // the request frame
	rx  []byte // bytes read from the line
	dec *serialframe.Decoder
	in  []inbound // frames decoded and not yet looked at
	// lastByte is when bytes last came from the line: a reply still
	// arriving is not a lost one.
	lastByte time.Time

	closed    atomic.Bool
	closeOnce sync.Once
}

// line is the port as Port uses it: go.bug.st/serial's Port, whose Read
// returns 0 bytes and no error once the read timeout passes with nothing
// to read, and whose Close ends a Read in progress.
type line interface {
	io.ReadWriteCloser
	SetReadTimeout(time.Duration) error
}

type inbound struct {
	frame serialframe.Frame
	err   error // a *serialframe.FrameError: something arrived damaged
}

var (
	_ link.Link         = (*Port)(nil)
	_ link.Resetter     = (*Port)(nil)
	_ link.ATRer        = (*Port)(nil)
	_ link.RawExchanger = (*Port)(nil)
	_ link.Limits       = (*Port)(nil)

	_ link.PowerCycler = (*Port)(nil)
)

// Open opens the serial port at path (for example /dev/ttyUSB0 or the
// emulator's pty) at 115200 baud with the default Config, opens a session
// with the device and returns the link.
func Open(path string) (link.Link, error) {
	return OpenConfig(context.Background(), path, Config{})
}

// OpenConfig opens the serial port at path with cfg and opens a session
// with the device (RESET 00), which also fetches its ATR. It fails with an
// error wrapping link.ErrNoCard when the port does not exist or no device
// answers on it.
func OpenConfig(ctx context.Context, path string, cfg Config) (*Port, error) {
	cfg = cfg.withDefaults()
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("serial: no port %s: %w", path, link.ErrNoCard)
		}
		return nil, fmt.Errorf("serial: port %s: %w", path, err)
	}
	// Without the second descriptor, go.bug.st/serial's reads serve.
	rw, _ := openPollable(path)
	sp, err := bugst.Open(path, &bugst.Mode{BaudRate: cfg.BaudRate})
	if err != nil {
		if rw != nil {
			rw.Close()
		}
		return nil, fmt.Errorf("serial: open %s: %w", path, err)
	}
	// Bytes left in the driver from an earlier session are stale.
	_ = sp.ResetInputBuffer()
	p := newPort(sp, "serial:"+path, path, cfg)
	p.rw = rw
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.OpenTimeout)
		defer cancel()
	}
	atr, err := p.request(ctx, serialframe.TypeReset, []byte{serialframe.ResetOpen}, serialframe.TypeATR)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.atr = atr
	return p, nil
}

// newPort makes the Port of line. The first SEQ is random so that a new
// session is unlikely to repeat the last SEQ of an old one even before
// RESET 00 clears the device's cache.
func newPort(l line, name, path string, cfg Config) *Port {
	return &Port{
		name: name,
		path: path,
		cfg:  cfg,
		line: l,
		seq:  byte(rand.UintN(256)),
		rx:   make([]byte, 4096),
		dec:  serialframe.NewDecoder(serialframe.MaxPayload),
	}
}

// ctxPoll bounds one wait for bytes through go.bug.st/serial, so that a
// request whose context ends while the device is quiet returns soon after.
// (The poller's wait ends with the context: request.)
const ctxPoll = 50 * time.Millisecond

// readUntil waits for bytes from the line until due at most and decodes
// them into p.in. It returns why the line failed, if it did.
func (p *Port) readUntil(due time.Time) error {
	var n int
	var err error
	if p.rw != nil {
		if !due.Equal(p.deadline) {
			p.rw.SetReadDeadline(due)
			p.deadline = due
		}
		n, err = p.rw.Read(p.rx)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if time.Now().Before(due) {
				// Woken for a context's end, perhaps an earlier
				// request's: set the deadline again.
				p.deadline = time.Time{}
			}
			err = nil
		}
	} else {
		if err := p.line.SetReadTimeout(max(min(time.Until(due), ctxPoll), time.Millisecond)); err != nil {
			return err
		}
		n, err = p.line.Read(p.rx)
	}
	if n > 0 {
		p.lastByte = time.Now()
		p.dec.Feed(p.rx[:n], p.emit)
	}
	return err
}

// write sends b whole.
func (p *Port) write(b []byte) error {
	for len(b) > 0 {
		var n int
		var err error
		if p.rw != nil {
			n, err = p.rw.Write(b)
		} else {
			n, err = p.line.Write(b)
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (p *Port) emit(f serialframe.Frame, err error) {
	p.in = append(p.in, inbound{frame: f, err: err})
}

// Exchange implements link.Link. It resolves 61xx and 6Cxx (link.Resolve).
func (p *Port) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	return link.Resolve(ctx, p.exchange, command)
}

// ExchangeRaw implements link.RawExchanger: one COMMAND frame, the
// device's answer as it is (61xx and 6Cxx unresolved).
func (p *Port) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	return p.exchange(ctx, command)
}

// exchange sends one command APDU in one COMMAND frame.
func (p *Port) exchange(ctx context.Context, command []byte) ([]byte, error) {
	if len(command) > serialframe.MaxPayload {
		return nil, fmt.Errorf("serial: command of %d bytes exceeds the frame limit of %d", len(command), serialframe.MaxPayload)
	}
	resp, err := p.request(ctx, serialframe.TypeCommand, command, serialframe.TypeResponse)
	if err != nil {
		return nil, err
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("serial: %s answered %d bytes, shorter than a status word", p.name, len(resp))
	}
	return resp, nil
}

// Reset implements link.Resetter.
func (p *Port) Reset(ctx context.Context, cold bool) ([]byte, error) {
	mode := serialframe.ResetWarm
	if cold {
		mode = serialframe.ResetCold
	}
	return p.requestATR(ctx, serialframe.TypeReset, []byte{mode})
}

// OpenSession opens a new session with the device (RESET 00), as Open does
// once the port is open: the device forgets the reply it keeps for a
// repeated SEQ and answers with its ATR. A host that keeps the port open
// while the device on the line is replaced calls it for the new device.
func (p *Port) OpenSession(ctx context.Context) ([]byte, error) {
	return p.requestATR(ctx, serialframe.TypeReset, []byte{serialframe.ResetOpen})
}

// requestATR sends a RESET or POWER frame answered by an ATR, keeps the
// ATR as the port's and returns a copy of it.
func (p *Port) requestATR(ctx context.Context, typ serialframe.Type, data []byte) ([]byte, error) {
	atr, err := p.request(ctx, typ, data, serialframe.TypeATR)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.atr = atr
	p.mu.Unlock()
	return append([]byte(nil), atr...), nil
}

// PowerOff implements link.PowerCycler.
func (p *Port) PowerOff(ctx context.Context) error {
	_, err := p.request(ctx, serialframe.TypePower, []byte{serialframe.PowerOff}, serialframe.TypeAck)
	return err
}

// PowerOn implements link.PowerCycler.
func (p *Port) PowerOn(ctx context.Context) ([]byte, error) {
	return p.requestATR(ctx, serialframe.TypePower, []byte{serialframe.PowerOn})
}

// ATR implements link.ATRer: the ATR of the last session open, reset or
// power-on.
func (p *Port) ATR() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.atr...)
}

// MaxCommand implements link.Limits.
func (p *Port) MaxCommand() int { return serialframe.MaxPayload }

// MaxResponse implements link.Limits.
func (p *Port) MaxResponse() int { return serialframe.MaxPayload }

// String implements link.Link.
func (p *Port) String() string { return p.name }

// Close implements link.Link. It closes the port, ending a request in
// progress with link.ErrClosed; the device keeps power.
func (p *Port) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		if p.rw != nil {
			p.rw.Close() // ends a request's wait
		}
		err = p.line.Close()
	})
	return err
}

// lineTime is how long n bytes take on the line at the configured rate
// (10 bit times per byte: start, 8 data, stop).
func (p *Port) lineTime(n int) time.Duration {
	return time.Duration(n) * 10 * time.Second / time.Duration(p.cfg.BaudRate)
}

// request sends one request frame and returns the payload of the reply of
// type want with the same SEQ, retransmitting as the frame doc says.
func (p *Port) request(ctx context.Context, typ serialframe.Type, payload []byte, want serialframe.Type) ([]byte, error) {
	if p.closed.Load() {
		return nil, link.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serial: %s: %w", p.name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	p.seq++
	seq := p.seq
	enc, err := serialframe.AppendFrame(p.buf[:0], serialframe.Frame{Type: typ, Seq: seq, Payload: payload})
	if err != nil {
		return nil, err
	}
	p.buf = enc[:0]
	// Frames decoded after the end of an earlier request are stale.
	p.in = p.in[:0]

	// The retransmission timeout covers the request's time on the line
	// and a short reply's. A longer reply (an extended APDU's) is not
	// budgeted in advance: while its bytes are arriving the timer is only
	// rearmed, so a 64 KiB reply at 115200 baud neither provokes
	// retransmissions nor makes a lost short reply wait seconds.
	timeout := p.cfg.RetransmitTimeout + p.lineTime(len(enc)+2*(256+2)+16)
	maxTimeout := max(p.cfg.MaxRetransmitTimeout, timeout)
	// A reply in transit can last at most the largest frame's time on the
	// line; past that, bytes that keep coming are not a reply.
	transitLimit := p.lineTime(2*serialframe.MaxPayload+16) + p.cfg.SilenceTimeout
	start := time.Now()

	attempts := 0
	heard := func() time.Time {
		if p.lastByte.After(start) {
			return p.lastByte
		}
		return start
	}
	send := func() error {
		if attempts >= p.cfg.MaxAttempts {
			return fmt.Errorf("serial: %s: %s seq %d unanswered after %d attempts on a noisy line", p.name, typ, seq, attempts)
		}
		attempts++
		if err := p.write(enc); err != nil {
			if p.closed.Load() {
				return link.ErrClosed
			}
			return fmt.Errorf("serial: write to %s: %w: %w", p.path, err, link.ErrRemoved)
		}
		return nil
	}
	if err := send(); err != nil {
		return nil, err
	}
	due := time.Now().Add(timeout) // when the retransmission timer fires
	if p.rw != nil {
		// The context's end wakes the wait in the poller.
		defer context.AfterFunc(ctx, func() { p.rw.SetReadDeadline(time.Unix(1, 0)) })()
	}
	for {
		for len(p.in) > 0 {
			in := p.in[0]
			p.in = p.in[1:]
			if in.err != nil {
				// Damaged bytes from the device: ask again now.
				if err := send(); err != nil {
					return nil, err
				}
				due = time.Now().Add(timeout)
				continue
			}
			f := in.frame
			if f.Type == serialframe.TypeNak && len(f.Payload) == 1 && serialframe.Reason(f.Payload[0]).LineFault() {
				// The device got a damaged frame; it may have been ours.
				if err := send(); err != nil {
					return nil, err
				}
				due = time.Now().Add(timeout)
				continue
			}
			if f.Seq != seq {
				continue // a late reply to an earlier request or retransmission
			}
			switch f.Type {
			case want:
				return f.Payload, nil
			case serialframe.TypeWait:
				due = time.Now().Add(timeout)
			case serialframe.TypeNak:
				r := serialframe.ReasonBadPayload
				if len(f.Payload) == 1 {
					r = serialframe.Reason(f.Payload[0])
				}
				if r == serialframe.ReasonUnpowered {
					return nil, fmt.Errorf("serial: %s: %s: %w", p.name, r, link.ErrRemoved)
				}
				return nil, fmt.Errorf("serial: %s refused %s seq %d: %s", p.name, typ, seq, r)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("serial: %s: %s seq %d: %w", p.name, typ, seq, err)
		}

		if time.Now().Before(due) {
			if err := p.readUntil(due); err != nil {
				if p.closed.Load() {
					return nil, link.ErrClosed
				}
				return nil, fmt.Errorf("serial: %s went away: %v: %w", p.path, err, link.ErrRemoved)
			}
			continue
		}

		// The retransmission timer fired: nothing to read now.
		quiet := time.Since(heard())
		// A timer that fires long after it was due means this process
		// did not run meanwhile (a busy machine): bytes the device sent
		// may still wait unread, so the silence is judged again at the
		// next timer, not now.
		stalled := time.Since(due) > stallLimit
		if quiet >= p.cfg.SilenceTimeout && !stalled {
			return nil, fmt.Errorf("serial: no answer from a device on %s for %v: %w", p.path, quiet.Round(time.Millisecond), link.ErrNoCard)
		}
		if quiet < p.cfg.RetransmitTimeout && time.Since(start) < transitLimit {
			// Bytes are still arriving: a reply is on its way.
			due = time.Now().Add(p.cfg.RetransmitTimeout)
			continue
		}
		timeout = min(2*timeout, maxTimeout)
		if err := send(); err != nil {
			return nil, err
		}
		due = time.Now().Add(timeout)
	}
}
