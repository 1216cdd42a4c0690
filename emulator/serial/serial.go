// Package serial makes a card application look like a UART-attached SPD:
// it opens a pseudo-terminal, puts it in raw mode and serves the card on
// the master side, so that any program opens the slave side exactly as it
// would open /dev/ttyUSB0 (rigs/serial does so with go.bug.st/serial).
//
// The wire format is reference/wire/serialframe, the one definition that
// rigs/serial also imports: HDLC-like byte-stuffed frames (RFC 1662)
// carrying ISO/IEC 7816-4 APDUs, each with a sequence number and a
// CRC-16/CCITT-FALSE. The device executes each request once: it keeps the
// last SEQ it executed and its reply, and answers a repeated SEQ with the
// cached reply. Damaged frames get a NAK naming the reason, and the device
// keeps serving. While a command runs longer than Config.WaitInterval it
// sends WAIT frames, the time extension that keeps the host from declaring
// it silent.
package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/wire/serialframe"
)

// Config tunes a Device. The zero value gives the defaults noted per field.
type Config struct {
	// ATR the device reports; emulator.ATR(emulator.FormUART) when nil.
	ATR []byte
	// WaitInterval: while a command runs longer than this, a WAIT frame
	// is sent every WaitInterval (10 ms).
	WaitInterval time.Duration
	// MaxPayload is the largest request payload accepted (serialframe.MaxPayload).
	MaxPayload int
	// WriteTimeout bounds a write to the pty when nobody reads the slave
	// side; on expiry the unread output is flushed (1 s).
	WriteTimeout time.Duration
	// Line, when set, stands between the device and its pty: the device
	// reads and writes what Line returns for the pty's master side (a
	// noisy line, emulator/fault's Line).
	Line func(io.ReadWriter) io.ReadWriter
}

func (c Config) withDefaults() Config {
	if c.ATR == nil {
		c.ATR = emulator.ATR(emulator.FormUART)
	}
	if c.WaitInterval <= 0 {
		c.WaitInterval = 10 * time.Millisecond
	}
	if c.MaxPayload <= 0 || c.MaxPayload > serialframe.MaxPayload {
		c.MaxPayload = serialframe.MaxPayload
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = time.Second
	}
	return c
}

// Stats counts what a Device saw. Commands counts card.Process calls.
type Stats struct {
	Frames     uint64 // valid frames received
	Commands   uint64 // commands executed by the card
	Duplicates uint64 // repeated requests answered from the cache
	Dropped    uint64 // damaged frames answered with a NAK
}

// Device serves one card on a pseudo-terminal.
type Device struct {
	card emulator.Card
	cfg  Config

	mu      sync.Mutex
	master  *os.File
	line    io.ReadWriter // master, or Config.Line of it
	slave   *os.File      // held open so the master never sees a hang-up
	path    string
	links   []string
	started bool
	closed  bool
	done    chan struct{}
	err     error // why serving stopped, when not by Close
	wait    *emulator.TimeExtension

	frames, commands, duplicates, dropped atomic.Uint64

	// Serving state: the serve goroutine holds serving while it handles a
	// frame, Swap while it changes the card.
	serving   sync.Mutex
	powered   bool
	haveLast  bool
	lastSeq   byte
	lastType  serialframe.Type
	lastReply []byte
	out       []byte
}

// New returns a Device serving card. Nothing is opened until Start or Run.
func New(card emulator.Card, cfg Config) *Device {
	d := &Device{card: card, cfg: cfg.withDefaults(), done: make(chan struct{})}
	d.wait = emulator.NewTimeExtension(d.cfg.WaitInterval, d.sendWait)
	return d
}

// Start opens a pseudo-terminal in raw mode, powers the card on and serves
// it in the background until Close. It returns the path of the slave side
// (for example /dev/pts/3), which hosts open as a serial port.
func (d *Device) Start() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", errors.New("serial: device closed")
	}
	if d.started {
		return d.path, nil
	}
	master, slave, err := openPTY()
	if err != nil {
		return "", err
	}
	d.master, d.slave, d.path = master, slave, slave.Name()
	d.line = master
	if d.cfg.Line != nil {
		d.line = d.cfg.Line(master)
	}
	d.started = true
	if d.card != nil {
		d.card.PowerOn()
		d.powered = true
	}
	go d.serve()
	return d.path, nil
}

// Path returns the slave path, empty before Start.
func (d *Device) Path() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

// Link makes path a symbolic link to the slave pty (replacing an existing
// symbolic link there, never a regular file); Close removes it.
func (d *Device) Link(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || d.closed {
		return errors.New("serial: Link before Start or after Close")
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("serial: %s exists and is not a symbolic link", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("serial: replace link: %w", err)
		}
	}
	if err := os.Symlink(d.path, path); err != nil {
		return fmt.Errorf("serial: link: %w", err)
	}
	d.links = append(d.links, path)
	return nil
}

// Run starts the device if needed and serves until ctx is done, then
// closes it. It returns nil after ctx ends, or the error that stopped
// serving.
func (d *Device) Run(ctx context.Context) error {
	if _, err := d.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-d.done:
	}
	d.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Stats returns the counters so far.
func (d *Device) Stats() Stats {
	return Stats{Frames: d.frames.Load(), Commands: d.commands.Load(), Duplicates: d.duplicates.Load(), Dropped: d.dropped.Load()}
}

// Swap takes the card out and puts card in its place behind the same pty,
// once a request being handled is answered: the old card loses power, the
// new one is powered on, and the reply cached for a repeated SEQ is
// forgotten. A nil card leaves the device empty: every request gets
// NAK 04 (unpowered) until the next Swap. The host's port stays open; a
// host opens a session with the new card (RESET 00), as with any device.
func (d *Device) Swap(card emulator.Card) error {
	d.mu.Lock()
	closed, started := d.closed, d.started
	d.mu.Unlock()
	if closed {
		return errors.New("serial: Swap after Close")
	}
	d.serving.Lock()
	defer d.serving.Unlock()
	if d.powered {
		d.card.PowerOff()
	}
	d.card, d.powered = card, false
	d.haveLast, d.lastReply = false, nil
	if card != nil && started {
		card.PowerOn()
		d.powered = true
	}
	return nil
}

// Close stops serving, removes the links, closes the pty and powers the
// card off.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil
	}
	err := d.master.Close()
	<-d.done
	d.wait.Stop()
	d.slave.Close()
	d.mu.Lock()
	for _, l := range d.links {
		os.Remove(l)
	}
	d.links = nil
	d.mu.Unlock()
	d.serving.Lock()
	if d.powered {
		d.card.PowerOff()
		d.powered = false
	}
	d.serving.Unlock()
	return err
}

// serve reads the master and handles each frame as it completes, in this
// goroutine: the line is half-duplex at the frame level, so reading waits
// while the card works (the kernel buffers what arrives meanwhile).
func (d *Device) serve() {
	defer close(d.done)
	dec := serialframe.NewDecoder(d.cfg.MaxPayload)
	buf := make([]byte, 4096)
	emit := func(f serialframe.Frame, err error) {
		if err != nil {
			d.dropped.Add(1)
			var fe *serialframe.FrameError
			if errors.As(err, &fe) {
				d.send(serialframe.TypeNak, fe.Seq, []byte{byte(fe.Reason)})
			}
			return
		}
		d.frames.Add(1)
		d.serving.Lock()
		d.handle(f)
		d.serving.Unlock()
	}
	for {
		n, err := d.line.Read(buf)
		if n > 0 {
			dec.Feed(buf[:n], emit)
		}
		if err != nil {
			d.mu.Lock()
			if !d.closed {
				d.err = fmt.Errorf("serial: reading %s: %w", d.path, err)
			}
			d.mu.Unlock()
			return
		}
	}
}

func (d *Device) handle(f serialframe.Frame) {
	if !f.Type.Request() {
		if f.Type != serialframe.TypeNak { // never answer a NAK with a NAK
			d.send(serialframe.TypeNak, f.Seq, []byte{byte(serialframe.ReasonUnexpected)})
		}
		return
	}
	open := f.Type == serialframe.TypeReset && len(f.Payload) == 1 && f.Payload[0] == serialframe.ResetOpen
	if !open && d.haveLast && f.Seq == d.lastSeq && f.Type == d.lastType {
		d.duplicates.Add(1)
		d.write(d.lastReply)
		return
	}
	typ, payload := d.execute(f)
	reply, err := serialframe.AppendFrame(nil, serialframe.Frame{Type: typ, Seq: f.Seq, Payload: payload})
	if err != nil {
		reply, _ = serialframe.AppendFrame(nil, serialframe.Frame{Type: serialframe.TypeNak, Seq: f.Seq, Payload: []byte{byte(serialframe.ReasonResponseSize)}})
	}
	d.haveLast, d.lastSeq, d.lastType, d.lastReply = true, f.Seq, f.Type, reply
	d.write(reply)
}

// execute runs one request on the card and returns the reply.
func (d *Device) execute(f serialframe.Frame) (serialframe.Type, []byte) {
	nak := func(r serialframe.Reason) (serialframe.Type, []byte) { return serialframe.TypeNak, []byte{byte(r)} }
	if d.card == nil { // taken out (Swap): nothing answers but the line
		return nak(serialframe.ReasonUnpowered)
	}
	switch f.Type {
	case serialframe.TypeCommand:
		if !d.powered {
			return nak(serialframe.ReasonUnpowered)
		}
		resp := d.process(f)
		if resp == nil { // torn: the card stays mute until powered on
			d.powered = false
			return nak(serialframe.ReasonUnpowered)
		}
		return serialframe.TypeResponse, resp
	case serialframe.TypeReset:
		if len(f.Payload) != 1 {
			return nak(serialframe.ReasonBadPayload)
		}
		switch f.Payload[0] {
		case serialframe.ResetOpen:
			if !d.powered {
				return serialframe.TypeATR, nil
			}
		case serialframe.ResetWarm:
			if !d.powered {
				return nak(serialframe.ReasonUnpowered)
			}
			d.card.Reset()
		case serialframe.ResetCold:
			if d.powered {
				d.card.PowerOff()
			}
			d.card.PowerOn()
			d.powered = true
		default:
			return nak(serialframe.ReasonBadPayload)
		}
		return serialframe.TypeATR, d.cfg.ATR
	case serialframe.TypePower:
		if len(f.Payload) != 1 {
			return nak(serialframe.ReasonBadPayload)
		}
		switch f.Payload[0] {
		case serialframe.PowerOff:
			if d.powered {
				d.card.PowerOff()
				d.powered = false
			}
			return serialframe.TypeAck, nil
		case serialframe.PowerOn:
			if !d.powered {
				d.card.PowerOn()
				d.powered = true
			}
			return serialframe.TypeATR, d.cfg.ATR
		}
		return nak(serialframe.ReasonBadPayload)
	}
	return nak(serialframe.ReasonUnexpected)
}

// process runs the command here, while d.wait sends WAIT frames if it
// takes longer than WaitInterval.
func (d *Device) process(f serialframe.Frame) []byte {
	d.commands.Add(1)
	d.wait.Begin(uint32(f.Seq))
	defer d.wait.End()
	return d.card.Process(f.Payload)
}

// sendWait sends the WAIT frame of the command with SEQ seq.
func (d *Device) sendWait(seq uint32) {
	if wait, err := serialframe.AppendFrame(nil, serialframe.Frame{Type: serialframe.TypeWait, Seq: byte(seq)}); err == nil {
		d.write(wait)
	}
}

func (d *Device) send(t serialframe.Type, seq byte, payload []byte) {
	out, err := serialframe.AppendFrame(d.out[:0], serialframe.Frame{Type: t, Seq: seq, Payload: payload})
	if err != nil {
		return
	}
	d.out = out
	d.write(out)
}

// write sends b to the host. When nobody reads the slave side for
// WriteTimeout, the unread output is discarded so serving goes on.
func (d *Device) write(b []byte) {
	d.master.SetWriteDeadline(time.Now().Add(d.cfg.WriteTimeout))
	if _, err := d.line.Write(b); errors.Is(err, os.ErrDeadlineExceeded) {
		control(d.slave, flushInput)
	}
}

// openPTY opens a pseudo-terminal pair with creack/pty, puts the slave in
// raw mode (what cfmakeraw(3) does), and returns the master non-blocking so
// that reads go through the runtime poller and Close interrupts them.
func openPTY() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("serial: open a pseudo-terminal: %w", err)
	}
	// pty.Open leaves the master in blocking mode (its ioctls go through
	// os.File.Fd); a non-blocking duplicate wrapped anew is pollable.
	defer m.Close()
	fail := func(step string, err error) (*os.File, *os.File, error) {
		s.Close()
		return nil, nil, fmt.Errorf("serial: %s %s: %w", step, s.Name(), err)
	}
	if err := control(s, makeRaw); err != nil {
		return fail("raw mode on", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail("duplicating the master of", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fail("non-blocking master of", err)
	}
	return os.NewFile(uintptr(fd), m.Name()), s, nil
}

// control runs f on the file descriptor of file.
func control(file *os.File, f func(fd int) error) error {
	c, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := c.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// makeRaw does what cfmakeraw(3) does.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, ioctlSetTermios, t)
}
