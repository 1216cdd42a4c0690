// Package sdcard reaches a secure microSD SPD through a file channel on the
// card's mount point, the way ASSD-style secure microSD cards are driven:
// it writes command blocks to SPDLAB/CMD.BIN and reads response blocks from
// SPDLAB/RSP.BIN, in the format of reference/wire/sdblock. The same
// channel works on any path: a real card's mount point, or the directory
// that emulator/sdcard serves.
package sdcard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/reference/wire/sdblock"
	"github.com/spdlab/spdlab/rigs/link"
)

// IOMode says how the host reaches the channel files.
type IOMode int

const (
	// IOAuto uses IODirect when the directory is on a FAT or exFAT file
	// system (how SDHC and SDXC cards are formatted, so a real card) and
	// IOBuffered elsewhere (tmpfs, ext4: the emulator's directory).
	IOAuto IOMode = iota
	// IOBuffered uses ordinary reads and writes through the page cache.
	IOBuffered
	// IODirect opens the files with O_DIRECT (and the command file with
	// O_DSYNC), so every write reaches the card at once and every read
	// comes from the card, not from a cached copy. A real card needs
	// this: it answers by changing the sectors of RSP.BIN itself, which
	// the kernel would otherwise never re-read.
	IODirect
)

func (m IOMode) String() string {
	switch m {
	case IOBuffered:
		return "buffered"
	case IODirect:
		return "direct"
	}
	return "auto"
}

// Config tunes a Channel. The zero value gives the defaults noted per field.
type Config struct {
	IO IOMode
	// RetransmitTimeout: when no reply came for this long, the host writes
	// the same block again (500 ms), doubling up to 4 s. The card answers a
	// rewritten block from its cache.
	RetransmitTimeout time.Duration
	// SilenceTimeout: when no reply and no BUSY came for this long, the card
	// is declared absent: link.ErrNoCard (2 s).
	SilenceTimeout time.Duration
	// PollMin and PollMax bound the wait between reads of RSP.BIN (10 µs
	// doubling to 2 ms) with direct I/O (a real card, which changes its
	// sectors unseen by the kernel), where inotify also ends a wait when
	// it reports a change. With buffered I/O and inotify (the emulator's
	// directory), every write to RSP.BIN goes through this kernel and is
	// reported: the host waits for the report, in the Go runtime's
	// poller, and reads RSP.BIN again without one only when it rewrites
	// its block.
	PollMin, PollMax time.Duration
	// OpenTimeout bounds the session-opening RESET 00 of Open when the
	// caller's context has no deadline (2 s).
	OpenTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.RetransmitTimeout <= 0 {
		c.RetransmitTimeout = 500 * time.Millisecond
	}
	if c.SilenceTimeout <= 0 {
		c.SilenceTimeout = 2 * time.Second
	}
	if c.PollMin <= 0 {
		c.PollMin = 10 * time.Microsecond
	}
	if c.PollMax < c.PollMin {
		c.PollMax = max(2*time.Millisecond, c.PollMin)
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = 2 * time.Second
	}
	return c
}

// Channel is a link.Link to a secure microSD card through its file channel.
// One Channel at a time may use a directory.
type Channel struct {
	dir    string
	cfg    Config
	direct bool
	cmdFD  int
	rspFD  int
	notify int // inotify descriptor watching RSP.BIN, or -1
	// watch is notify in the runtime's poller, when every write to
	// RSP.BIN is reported (buffered I/O): a request waits for the report
	// there, parked rather than in a system call.
	watch *os.File

	mu     sync.Mutex
	seq    uint32
	atr    []byte
	wbuf   []byte // sdblock.BlockSize bytes, aligned for O_DIRECT
	rbuf   []byte
	events []byte
	closed atomic.Bool
}

var (
	_ link.Link         = (*Channel)(nil)
	_ link.Resetter     = (*Channel)(nil)
	_ link.PowerCycler  = (*Channel)(nil)
	_ link.ATRer        = (*Channel)(nil)
	_ link.RawExchanger = (*Channel)(nil)
	_ link.Limits       = (*Channel)(nil)
)

// Open opens the channel in dir (a card's mount point) with the default
// Config, opens a session with the card and returns the link.
func Open(dir string) (link.Link, error) {
	return OpenConfig(context.Background(), dir, Config{})
}

// OpenConfig opens the channel in dir with cfg and opens a session with
// the card (RESET 00), which fetches its ATR. It fails with an error
// wrapping link.ErrNoCard when dir has no channel files or no card answers.
func OpenConfig(ctx context.Context, dir string, cfg Config) (*Channel, error) {
	cfg = cfg.withDefaults()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sdcard: %s is not a directory: %w", dir, link.ErrNoCard)
	}
	cmdPath := filepath.Join(dir, sdblock.ChannelDir, sdblock.CommandFile)
	rspPath := filepath.Join(dir, sdblock.ChannelDir, sdblock.ResponseFile)
	for _, p := range []string{cmdPath, rspPath} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("sdcard: %s has no SPD channel (%s/%s missing): %w", dir, sdblock.ChannelDir, filepath.Base(p), link.ErrNoCard)
		}
		if fi.Size() < sdblock.BlockSize {
			return nil, fmt.Errorf("sdcard: %s is %d bytes, shorter than a block: %w", p, fi.Size(), link.ErrNoCard)
		}
	}
	direct := cfg.IO == IODirect || cfg.IO == IOAuto && onCardFileSystem(dir)
	c := &Channel{dir: dir, cfg: cfg, cmdFD: -1, rspFD: -1, notify: -1,
		wbuf: alignedBlock(), rbuf: alignedBlock(), events: make([]byte, 4096)}
	if err := c.openFiles(cmdPath, rspPath, direct); err != nil {
		if cfg.IO == IOAuto && errors.Is(err, unix.EINVAL) {
			err = c.openFiles(cmdPath, rspPath, false) // no O_DIRECT here
		}
		if err != nil {
			return nil, err
		}
	}
	c.notify = watchWrites(rspPath)
	if c.notify >= 0 && !c.direct {
		c.watch = os.NewFile(uintptr(c.notify), "inotify:"+rspPath)
	}
	// Continue after the highest SEQ either file holds, so the first
	// block of this session differs from the card's last one.
	for _, fd := range []int{c.cmdFD, c.rspFD} {
		if b, err := c.readBlock(fd); err == nil && b.Seq > c.seq {
			c.seq = b.Seq
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.OpenTimeout)
		defer cancel()
	}
	atr, err := c.request(ctx, sdblock.KindReset, []byte{sdblock.ResetOpen}, false, sdblock.KindATR)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.atr = atr.APDU
	return c, nil
}

func (c *Channel) openFiles(cmdPath, rspPath string, direct bool) error {
	wflags, rflags := unix.O_RDWR|unix.O_CLOEXEC, unix.O_RDONLY|unix.O_CLOEXEC
	if direct {
		w, r, err := directFlags()
		if err != nil {
			return err
		}
		wflags, rflags = wflags|w, rflags|r
	}
	cmd, err := unix.Open(cmdPath, wflags, 0)
	if err != nil {
		return fmt.Errorf("sdcard: open %s (%s I/O): %w", cmdPath, map[bool]string{true: "direct", false: "buffered"}[direct], err)
	}
	rsp, err := unix.Open(rspPath, rflags, 0)
	if err != nil {
		unix.Close(cmd)
		return fmt.Errorf("sdcard: open %s: %w", rspPath, err)
	}
	c.cmdFD, c.rspFD, c.direct = cmd, rsp, direct
	return nil
}

// alignedBlock returns BlockSize bytes at a 4096-byte boundary, as
// O_DIRECT requires on any logical block size up to a page.
func alignedBlock() []byte {
	const align = 4096
	buf := make([]byte, sdblock.BlockSize+align)
	off := int(uintptr(unsafe.Pointer(&buf[0])) & (align - 1))
	if off != 0 {
		off = align - off
	}
	return buf[off : off+sdblock.BlockSize : off+sdblock.BlockSize]
}

func (c *Channel) readBlock(fd int) (sdblock.Block, error) {
	n, err := unix.Pread(fd, c.rbuf, 0)
	if err != nil {
		return sdblock.Block{}, fmt.Errorf("sdcard: read: %w", err)
	}
	return sdblock.ParseBlock(c.rbuf[:n])
}

// Exchange implements link.Link. It resolves 61xx and 6Cxx
// (link.Resolve).
func (c *Channel) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	return link.Resolve(ctx, c.exchange, command)
}

// ExchangeRaw implements link.RawExchanger: one command APDU, the card's
// answer as it is (61xx and 6Cxx unresolved).
func (c *Channel) ExchangeRaw(ctx context.Context, command []byte) ([]byte, error) {
	return c.exchange(ctx, command)
}

// exchange sends one command APDU. Commands and responses longer than a
// block travel in chained segments.
func (c *Channel) exchange(ctx context.Context, command []byte) ([]byte, error) {
	if len(command) > sdblock.MaxAPDU {
		return nil, fmt.Errorf("sdcard: command of %d bytes exceeds %d", len(command), sdblock.MaxAPDU)
	}
	kind := sdblock.KindCommand
	var reply sdblock.Block
	for off := 0; ; {
		end := min(off+sdblock.MaxSegment, len(command))
		more := end < len(command)
		want := sdblock.KindResponse
		if more {
			want = sdblock.KindAck
		}
		var err error
		reply, err = c.request(ctx, kind, command[off:end], more, want)
		if err != nil {
			return nil, err
		}
		if !more {
			break
		}
		kind, off = sdblock.KindContinue, end
	}
	resp := reply.APDU
	for reply.More {
		var err error
		if reply, err = c.request(ctx, sdblock.KindNext, nil, false, sdblock.KindResponse); err != nil {
			return nil, err
		}
		resp = append(resp, reply.APDU...)
		if len(resp) > sdblock.MaxAPDU {
			return nil, fmt.Errorf("sdcard: chained response exceeds %d bytes", sdblock.MaxAPDU)
		}
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("sdcard: card in %s answered %d bytes, shorter than a status word", c.dir, len(resp))
	}
	return resp, nil
}

// Reset implements link.Resetter.
func (c *Channel) Reset(ctx context.Context, cold bool) ([]byte, error) {
	mode := sdblock.ResetWarm
	if cold {
		mode = sdblock.ResetCold
	}
	return c.setATR(c.request(ctx, sdblock.KindReset, []byte{mode}, false, sdblock.KindATR))
}

// OpenSession opens a new session with the card (RESET 00), as Open does
// once the channel files are open, and returns its ATR. A host that keeps
// the channel open while the card behind it is replaced calls it for the
// new card.
func (c *Channel) OpenSession(ctx context.Context) ([]byte, error) {
	return c.setATR(c.request(ctx, sdblock.KindReset, []byte{sdblock.ResetOpen}, false, sdblock.KindATR))
}

// PowerOff implements link.PowerCycler.
func (c *Channel) PowerOff(ctx context.Context) error {
	_, err := c.request(ctx, sdblock.KindPower, []byte{sdblock.PowerOff}, false, sdblock.KindAck)
	return err
}

// PowerOn implements link.PowerCycler.
func (c *Channel) PowerOn(ctx context.Context) ([]byte, error) {
	return c.setATR(c.request(ctx, sdblock.KindPower, []byte{sdblock.PowerOn}, false, sdblock.KindATR))
}

func (c *Channel) setATR(b sdblock.Block, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.atr = b.APDU
	c.mu.Unlock()
	return append([]byte(nil), b.APDU...), nil
}

// ATR implements link.ATRer.
func (c *Channel) ATR() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.atr...)
}

// MaxCommand implements link.Limits.
func (c *Channel) MaxCommand() int { return sdblock.MaxAPDU }

// MaxResponse implements link.Limits.
func (c *Channel) MaxResponse() int { return sdblock.MaxAPDU }

// Direct reports whether the channel uses O_DIRECT I/O.
func (c *Channel) Direct() bool { return c.direct }

// String implements link.Link.
func (c *Channel) String() string { return "sd:" + c.dir }

// Close implements link.Link. The card keeps power.
func (c *Channel) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if c.watch != nil {
		c.watch.Close() // ends a request's wait
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch != nil {
		c.notify = -1 // closed with watch
	}
	for _, fd := range []int{c.cmdFD, c.rspFD, c.notify} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}

// request writes one block with the next SEQ and waits for the card's
// reply of kind want with the same SEQ, rewriting the block when the card
// stays quiet.
func (c *Channel) request(ctx context.Context, kind sdblock.Kind, apdu []byte, more bool, want sdblock.Kind) (sdblock.Block, error) {
	if err := ctx.Err(); err != nil {
		return sdblock.Block{}, fmt.Errorf("sdcard: %s: %w", c.dir, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return sdblock.Block{}, link.ErrClosed
	}
	c.seq++
	if c.seq == 0 {
		c.seq = 1
	}
	seq := c.seq
	if err := (sdblock.Block{Kind: kind, More: more, Seq: seq, APDU: apdu}).Marshal(c.wbuf); err != nil {
		return sdblock.Block{}, err
	}
	c.drainEvents()
	if err := c.writeCommand(); err != nil {
		return sdblock.Block{}, err
	}
	start := time.Now()
	lastHeard := start
	retransmit := c.cfg.RetransmitTimeout
	rewriteAt := start.Add(retransmit)
	wait := c.cfg.PollMin
	var deadline time.Time
	if c.watch != nil {
		// The context's end wakes the wait for inotify's report.
		defer context.AfterFunc(ctx, func() { c.watch.SetReadDeadline(time.Unix(1, 0)) })()
	}
	rewrites := 0
	for {
		b, err := c.readBlock(c.rspFD)
		if err == nil && b.Seq == seq {
			switch b.Kind {
			case want:
				return b, nil
			case sdblock.KindBusy:
				lastHeard = time.Now()
				rewriteAt = lastHeard.Add(retransmit)
			case sdblock.KindError:
				r := sdblock.Reason(0)
				if len(b.APDU) == 1 {
					r = sdblock.Reason(b.APDU[0])
				}
				if r == sdblock.ReasonUnpowered {
					return sdblock.Block{}, fmt.Errorf("sdcard: card in %s: %s: %w", c.dir, r, link.ErrRemoved)
				}
				if r == sdblock.ReasonDamaged && rewrites < 3 {
					// The card read our block damaged: the rewrite
					// timer sends it again.
					lastHeard = time.Now()
					break
				}
				return sdblock.Block{}, fmt.Errorf("sdcard: card in %s refused %s seq %d: %s", c.dir, kind, seq, r)
			default:
				return sdblock.Block{}, fmt.Errorf("sdcard: card in %s answered %s to %s seq %d", c.dir, b.Kind, kind, seq)
			}
		} else if err != nil && !errors.As(err, new(*sdblock.BlockError)) && !errors.Is(err, sdblock.ErrEmpty) {
			return sdblock.Block{}, err // the file itself failed
		}
		if err := ctx.Err(); err != nil {
			return sdblock.Block{}, fmt.Errorf("sdcard: %s: %s seq %d: %w", c.dir, kind, seq, err)
		}
		now := time.Now()
		if now.Sub(lastHeard) >= c.cfg.SilenceTimeout {
			return sdblock.Block{}, fmt.Errorf("sdcard: no answer from a card in %s for %v: %w", c.dir, now.Sub(lastHeard).Round(time.Millisecond), link.ErrNoCard)
		}
		if now.After(rewriteAt) {
			if err := c.writeCommand(); err != nil {
				return sdblock.Block{}, err
			}
			rewrites++
			retransmit = min(2*retransmit, 8*c.cfg.RetransmitTimeout)
			rewriteAt = now.Add(retransmit)
		}
		if c.watch != nil {
			// The reply's write will be reported: wait for that. The
			// deadline moves only with a rewrite or a BUSY block, so
			// that an exchange sets no runtime timer but its first.
			until := rewriteAt
			if silent := lastHeard.Add(c.cfg.SilenceTimeout); silent.Before(until) {
				until = silent
			}
			if !until.Equal(deadline) {
				c.watch.SetReadDeadline(until)
				deadline = until
				if err := ctx.Err(); err != nil { // before the wake-up below was undone
					return sdblock.Block{}, fmt.Errorf("sdcard: %s: %s seq %d: %w", c.dir, kind, seq, err)
				}
			}
			_, err := c.watch.Read(c.events)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if time.Now().Before(deadline) {
					// Woken for a context's end, perhaps an earlier
					// request's: set the deadline again.
					deadline = time.Time{}
				}
				err = nil
			}
			if err != nil {
				if c.closed.Load() {
					return sdblock.Block{}, link.ErrClosed
				}
				return sdblock.Block{}, fmt.Errorf("sdcard: waiting for %s: %w", c.dir, err)
			}
			continue
		}
		c.sleep(wait)
		wait = min(2*wait, c.cfg.PollMax)
	}
}

func (c *Channel) writeCommand() error {
	n, err := unix.Pwrite(c.cmdFD, c.wbuf, 0)
	if err != nil {
		return fmt.Errorf("sdcard: write %s: %w: %w", filepath.Join(c.dir, sdblock.ChannelDir, sdblock.CommandFile), err, link.ErrRemoved)
	}
	if n != sdblock.BlockSize {
		return fmt.Errorf("sdcard: short write of %d bytes to the command block: %w", n, link.ErrRemoved)
	}
	return nil
}

// sleep waits up to d, or less when the file system reports a change to
// RSP.BIN.
func (c *Channel) sleep(d time.Duration) {
	if c.notify < 0 {
		time.Sleep(d)
		return
	}
	if waitReadable(c.notify, d) {
		c.drainEvents()
	}
}

func (c *Channel) drainEvents() {
	if c.watch != nil {
		// Through the file, which Close may close meanwhile.
		if rc, err := c.watch.SyscallConn(); err == nil {
			rc.Read(func(fd uintptr) bool {
				for {
					if n, err := unix.Read(int(fd), c.events); n <= 0 || err != nil {
						return true
					}
				}
			})
		}
		return
	}
	if c.notify < 0 {
		return
	}
	for {
		if n, err := unix.Read(c.notify, c.events); n <= 0 || err != nil {
			return
		}
	}
}
