// Package sdcard makes a card application look like a secure microSD SPD:
// it serves the card through a file channel in a directory that stands for
// the card's mount point, the way ASSD-style secure microSD cards carry
// ISO/IEC 7816-4 APDUs in 512-byte secure-token blocks.
//
// The block format, file names and rules (sequence numbers, chaining of
// extended APDUs, errors) are those of reference/wire/sdblock, which rigs/sdcard also imports:
// DIR/SPDLAB/CMD.BIN holds the host's command block, DIR/SPDLAB/RSP.BIN the
// card's response block. The card watches CMD.BIN (with inotify on Linux) and, as a
// fallback for file systems that report nothing, reads it every
// Config.PollInterval. It executes each block once: a block whose SEQ it
// has already acted on gets the cached reply rewritten, never a second run.
// Swap puts another card behind the same channel files, as when one card
// is taken out of a reader and another put in; a host opens a session with
// the new card (RESET 00) as with any card.
package sdcard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/wire/sdblock"
)

// Config tunes a Device. The zero value gives the defaults noted per field.
type Config struct {
	// ATR the card reports; emulator.ATR(emulator.FormSD) when nil.
	ATR []byte
	// PollInterval: CMD.BIN is read at least this often even when inotify
	// reports nothing (50 ms).
	PollInterval time.Duration
	// BusyInterval: while a command runs longer than this, a BUSY block is
	// written every BusyInterval (20 ms).
	BusyInterval time.Duration
	// SettleTime: a damaged block is refused with an ERROR block only when
	// it stays the same this long, since it may be a write in progress
	// (2 ms).
	SettleTime time.Duration
}

func (c Config) withDefaults() Config {
	if c.ATR == nil {
		c.ATR = emulator.ATR(emulator.FormSD)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.BusyInterval <= 0 {
		c.BusyInterval = 20 * time.Millisecond
	}
	if c.SettleTime <= 0 {
		c.SettleTime = 2 * time.Millisecond
	}
	return c
}

// Stats counts what a Device saw. Commands counts card.Process calls.
type Stats struct {
	Blocks     uint64 // valid command blocks acted on
	Commands   uint64 // APDUs executed by the card
	Duplicates uint64 // blocks seen again and answered from the cache
	Refused    uint64 // blocks answered with an ERROR block
}

// Device serves one card through the file channel in a directory.
type Device struct {
	card emulator.Card
	dir  string
	cfg  Config

	mu      sync.Mutex
	started bool
	closed  bool
	done    chan struct{}
	stopR   int
	stopW   int
	notify  int
	cmdFD   int
	rspFD   int
	err     error
	busy    *emulator.TimeExtension
	// watch is notify in the runtime's poller: serve waits there, parked
	// rather than in a system call. Close closes it to stop serve.
	watch *os.File

	blocks, commands, duplicates, refused atomic.Uint64

	// Serving state: the serve goroutine holds serving while it acts on
	// CMD.BIN, Swap while it changes the card.
	serving   sync.Mutex
	powered   bool
	haveLast  bool
	lastSeq   uint32
	lastReply []byte
	chain     []byte // command segments so far; nil when no chain is open
	pending   []byte // response bytes not yet fetched with NEXT
	bad       []byte // the last damaged block seen
	badSince  time.Time
	badDone   bool
	raw       []byte
	out       []byte
	busyBlock []byte // written by busy's timer
	events    []byte
}

// New returns a Device serving card in dir. Nothing is touched until Start
// or Run.
func New(card emulator.Card, dir string, cfg Config) *Device {
	d := &Device{card: card, dir: dir, cfg: cfg.withDefaults(), done: make(chan struct{}),
		stopR: -1, stopW: -1, notify: -1, cmdFD: -1, rspFD: -1,
		raw: make([]byte, sdblock.BlockSize), out: make([]byte, sdblock.BlockSize),
		busyBlock: make([]byte, sdblock.BlockSize), events: make([]byte, 4096)}
	d.busy = emulator.NewTimeExtension(d.cfg.BusyInterval, d.writeBusy)
	return d
}

// Dir returns the directory served.
func (d *Device) Dir() string { return d.dir }

// Start creates DIR/SPDLAB with empty CMD.BIN and RSP.BIN blocks, powers
// the card on and serves in the background until Close.
func (d *Device) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("sdcard: device closed")
	}
	if d.started {
		return nil
	}
	chDir := filepath.Join(d.dir, sdblock.ChannelDir)
	if err := os.MkdirAll(chDir, 0o755); err != nil {
		return fmt.Errorf("sdcard: %w", err)
	}
	empty := make([]byte, sdblock.BlockSize)
	cmdPath, rspPath := filepath.Join(chDir, sdblock.CommandFile), filepath.Join(chDir, sdblock.ResponseFile)
	for _, p := range []string{rspPath, cmdPath} {
		if err := os.WriteFile(p, empty, 0o644); err != nil {
			return fmt.Errorf("sdcard: %w", err)
		}
	}
	var err error
	if d.cmdFD, err = unix.Open(cmdPath, unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return d.abort(fmt.Errorf("sdcard: open %s: %w", cmdPath, err))
	}
	if d.rspFD, err = unix.Open(rspPath, unix.O_WRONLY|unix.O_CLOEXEC, 0); err != nil {
		return d.abort(fmt.Errorf("sdcard: open %s: %w", rspPath, err))
	}
	if d.stopR, d.stopW, err = stopPipe(); err != nil {
		return d.abort(fmt.Errorf("sdcard: pipe: %w", err))
	}
	// Without a file watch the card still works by polling.
	if d.notify = newWatcher(); d.notify >= 0 && !addWatch(d.notify, cmdPath) {
		unix.Close(d.notify)
		d.notify = -1
	}
	if d.notify >= 0 {
		d.watch = os.NewFile(uintptr(d.notify), "inotify:"+cmdPath)
	}
	d.started = true
	if d.card != nil {
		d.card.PowerOn()
		d.powered = true
	}
	go d.serve()
	return nil
}

func (d *Device) abort(err error) error {
	for _, fd := range []*int{&d.cmdFD, &d.rspFD, &d.stopR, &d.stopW} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	return err
}

// Run starts the device if needed and serves until ctx is done, then
// closes it. It returns nil after ctx ends, or the error that stopped
// serving.
func (d *Device) Run(ctx context.Context) error {
	if err := d.Start(); err != nil {
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
	return Stats{Blocks: d.blocks.Load(), Commands: d.commands.Load(), Duplicates: d.duplicates.Load(), Refused: d.refused.Load()}
}

// Swap takes the card out and puts card in its place behind the same
// channel files, once a block being acted on is answered: the old card
// loses power, the new one is powered on, and a chained command or
// response in progress is dropped. The SEQ of the last block acted on is
// kept, so that the block still in CMD.BIN is never run on the new card. A
// nil card leaves the channel empty: every block gets ERROR 04 (unpowered)
// until the next Swap. A host opens a session with the new card (RESET 00),
// as with any card.
func (d *Device) Swap(card emulator.Card) error {
	d.mu.Lock()
	closed, started := d.closed, d.started
	d.mu.Unlock()
	if closed {
		return errors.New("sdcard: Swap after Close")
	}
	d.serving.Lock()
	defer d.serving.Unlock()
	if d.powered {
		d.card.PowerOff()
	}
	d.card, d.powered = card, false
	d.chain, d.pending = nil, nil
	if card != nil && started {
		card.PowerOn()
		d.powered = true
	}
	return nil
}

// Close stops serving, removes the channel files (the card is gone from
// the mount point) and powers the card off.
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
	unix.Write(d.stopW, []byte{1})
	if d.watch != nil {
		d.watch.Close()
	}
	<-d.done
	if d.watch != nil {
		d.notify = -1 // closed with watch
	}
	d.busy.Stop()
	for _, fd := range []int{d.cmdFD, d.rspFD, d.stopR, d.stopW, d.notify} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	chDir := filepath.Join(d.dir, sdblock.ChannelDir)
	os.Remove(filepath.Join(chDir, sdblock.CommandFile))
	os.Remove(filepath.Join(chDir, sdblock.ResponseFile))
	os.Remove(chDir) // only when empty
	d.serving.Lock()
	if d.powered {
		d.card.PowerOff()
		d.powered = false
	}
	d.serving.Unlock()
	return nil
}

func (d *Device) serve() {
	if d.watch != nil {
		d.serveWatched()
		return
	}
	defer close(d.done)
	fds := []unix.PollFd{{Fd: int32(d.stopR), Events: unix.POLLIN}}
	if d.notify >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(d.notify), Events: unix.POLLIN})
	}
	d.serving.Lock()
	d.check(true)
	d.serving.Unlock()
	for {
		wait := d.cfg.PollInterval
		if d.bad != nil && !d.badDone {
			wait = min(wait, max(time.Until(d.badSince.Add(d.cfg.SettleTime)), 0))
		}
		for i := range fds {
			fds[i].Revents = 0
		}
		n, err := poll(fds, wait)
		if err != nil && err != unix.EINTR {
			d.mu.Lock()
			d.err = fmt.Errorf("sdcard: waiting for %s: %w", d.dir, err)
			d.mu.Unlock()
			return
		}
		if fds[0].Revents != 0 {
			return
		}
		event := false
		if n > 0 && len(fds) > 1 && fds[1].Revents != 0 {
			for {
				if k, err := unix.Read(d.notify, d.events); k <= 0 || err != nil {
					break
				}
			}
			event = true
		}
		if !event {
			d.refresh()
		}
		d.serving.Lock()
		d.check(event)
		d.serving.Unlock()
	}
}

// serveWatched is serve where inotify reports the host's writes: it waits
// for a report in the runtime's poller, and reads CMD.BIN every
// PollInterval besides.
func (d *Device) serveWatched() {
	defer close(d.done)
	d.serving.Lock()
	d.check(true)
	d.serving.Unlock()
	next := time.Now().Add(d.cfg.PollInterval) // the next read of CMD.BIN without a report
	var deadline time.Time
	for {
		until := next
		if d.bad != nil && !d.badDone {
			if settled := d.badSince.Add(d.cfg.SettleTime); settled.Before(until) {
				until = settled
			}
		}
		if !until.Equal(deadline) {
			d.watch.SetReadDeadline(until)
			deadline = until
		}
		_, err := d.watch.Read(d.events)
		event := err == nil
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			d.mu.Lock()
			if !d.closed {
				d.err = fmt.Errorf("sdcard: waiting for %s: %w", d.dir, err)
			}
			d.mu.Unlock()
			return
		}
		if !event {
			if now := time.Now(); !now.Before(next) {
				d.refresh()
				next = now.Add(d.cfg.PollInterval)
			}
		}
		d.serving.Lock()
		d.check(event)
		d.serving.Unlock()
	}
}

// refresh reopens a channel file that was replaced or removed under the
// card (a host that wrote CMD.BIN by renaming a new file over it, say), so
// that the card keeps reading and writing the files the host sees.
func (d *Device) refresh() {
	chDir := filepath.Join(d.dir, sdblock.ChannelDir)
	for _, f := range []struct {
		fd    *int
		name  string
		flags int
		watch bool
	}{
		{&d.cmdFD, sdblock.CommandFile, unix.O_RDONLY, true},
		{&d.rspFD, sdblock.ResponseFile, unix.O_WRONLY, false},
	} {
		path := filepath.Join(chDir, f.name)
		var onDisk, open unix.Stat_t
		if unix.Stat(path, &onDisk) == nil && unix.Fstat(*f.fd, &open) == nil && onDisk.Ino == open.Ino && onDisk.Dev == open.Dev {
			continue
		}
		if os.MkdirAll(chDir, 0o755) != nil {
			continue
		}
		fd, err := unix.Open(path, f.flags|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
		if err != nil {
			continue
		}
		if err := unix.Ftruncate(fd, sdblock.BlockSize); err != nil && f.flags != unix.O_RDONLY {
			unix.Close(fd)
			continue
		}
		unix.Close(*f.fd)
		*f.fd = fd
		if f.watch && d.notify >= 0 {
			addWatch(d.notify, path)
		}
	}
}

// check reads CMD.BIN and acts on it. event says a write to the file was
// reported; a block seen again after such a write is a host's rewrite and
// gets the cached reply again.
func (d *Device) check(event bool) {
	n, err := unix.Pread(d.cmdFD, d.raw, 0)
	if err != nil {
		return
	}
	if n == 0 {
		return // a file just created, not written yet
	}
	raw := d.raw[:n]
	blk, err := sdblock.ParseBlock(raw)
	if errors.Is(err, sdblock.ErrEmpty) {
		return
	}
	var be *sdblock.BlockError
	if errors.As(err, &be) {
		// Perhaps a write in progress: refuse it only once it has settled.
		if !bytes.Equal(raw, d.bad) {
			d.bad = append(d.bad[:0], raw...)
			d.badSince, d.badDone = time.Now(), false
			return
		}
		if d.badDone || time.Since(d.badSince) < d.cfg.SettleTime {
			return
		}
		d.badDone = true
		d.refused.Add(1)
		d.reply(sdblock.Block{Kind: sdblock.KindError, Seq: max(be.Seq, 1), APDU: []byte{byte(be.Reason)}}, false)
		return
	}
	d.bad = nil
	if d.haveLast && blk.Seq == d.lastSeq {
		if event {
			d.duplicates.Add(1)
			d.writeRaw(d.lastReply)
		}
		return
	}
	d.blocks.Add(1)
	d.reply(d.execute(blk), true)
}

func (d *Device) reply(b sdblock.Block, cache bool) {
	if err := b.Marshal(d.out); err != nil {
		return
	}
	if b.Kind == sdblock.KindError {
		if cache {
			d.refused.Add(1)
		}
	}
	if cache {
		d.haveLast, d.lastSeq = true, b.Seq
		d.lastReply = append(d.lastReply[:0], d.out...)
	}
	d.writeRaw(d.out)
}

func (d *Device) writeRaw(b []byte) {
	unix.Pwrite(d.rspFD, b, 0)
}

// execute acts on one new block and returns the reply.
func (d *Device) execute(b sdblock.Block) sdblock.Block {
	reply := sdblock.Block{Seq: b.Seq}
	fail := func(r sdblock.Reason) sdblock.Block {
		reply.Kind, reply.APDU = sdblock.KindError, []byte{byte(r)}
		return reply
	}
	if d.card == nil { // taken out (Swap): nothing answers but the channel
		return fail(sdblock.ReasonUnpowered)
	}
	ack := func() sdblock.Block { reply.Kind = sdblock.KindAck; return reply }
	atr := func() sdblock.Block {
		reply.Kind = sdblock.KindATR
		if d.powered {
			reply.APDU = d.cfg.ATR
		}
		return reply
	}
	if b.Kind != sdblock.KindNext {
		d.pending = nil
	}
	if b.Kind != sdblock.KindContinue {
		if b.Kind != sdblock.KindCommand {
			d.chain = nil
		}
	}
	switch b.Kind {
	case sdblock.KindCommand, sdblock.KindContinue:
		if b.Kind == sdblock.KindCommand {
			d.chain = append(make([]byte, 0, len(b.APDU)), b.APDU...)
		} else {
			if d.chain == nil {
				return fail(sdblock.ReasonUnexpected)
			}
			d.chain = append(d.chain, b.APDU...)
		}
		if len(d.chain) > sdblock.MaxAPDU {
			d.chain = nil
			return fail(sdblock.ReasonTooLong)
		}
		if b.More {
			return ack()
		}
		cmd := d.chain
		d.chain = nil
		if !d.powered {
			return fail(sdblock.ReasonUnpowered)
		}
		resp := d.process(cmd, b.Seq)
		if resp == nil { // torn: mute until powered on
			d.powered = false
			return fail(sdblock.ReasonUnpowered)
		}
		d.pending = resp
		return d.nextSegment(reply)
	case sdblock.KindNext:
		if d.pending == nil {
			return fail(sdblock.ReasonUnexpected)
		}
		return d.nextSegment(reply)
	case sdblock.KindReset:
		if len(b.APDU) != 1 {
			return fail(sdblock.ReasonBadMode)
		}
		switch b.APDU[0] {
		case sdblock.ResetOpen:
		case sdblock.ResetWarm:
			if !d.powered {
				return fail(sdblock.ReasonUnpowered)
			}
			d.card.Reset()
		case sdblock.ResetCold:
			if d.powered {
				d.card.PowerOff()
			}
			d.card.PowerOn()
			d.powered = true
		default:
			return fail(sdblock.ReasonBadMode)
		}
		return atr()
	case sdblock.KindPower:
		if len(b.APDU) != 1 {
			return fail(sdblock.ReasonBadMode)
		}
		switch b.APDU[0] {
		case sdblock.PowerOff:
			if d.powered {
				d.card.PowerOff()
				d.powered = false
			}
			return ack()
		case sdblock.PowerOn:
			if !d.powered {
				d.card.PowerOn()
				d.powered = true
			}
			return atr()
		}
		return fail(sdblock.ReasonBadMode)
	}
	return fail(sdblock.ReasonUnexpected) // a card-to-host kind
}

// nextSegment moves up to MaxSegment pending response bytes into reply.
func (d *Device) nextSegment(reply sdblock.Block) sdblock.Block {
	n := min(len(d.pending), sdblock.MaxSegment)
	reply.Kind = sdblock.KindResponse
	reply.APDU = d.pending[:n]
	d.pending = d.pending[n:]
	reply.More = len(d.pending) > 0
	if !reply.More {
		d.pending = nil
	}
	return reply
}

// process runs a command here, while d.busy writes BUSY blocks if it
// takes longer than BusyInterval.
func (d *Device) process(cmd []byte, seq uint32) []byte {
	d.commands.Add(1)
	d.busy.Begin(seq)
	defer d.busy.End()
	return d.card.Process(cmd)
}

// writeBusy writes the BUSY block of the command block with SEQ seq.
func (d *Device) writeBusy(seq uint32) {
	if (sdblock.Block{Kind: sdblock.KindBusy, Seq: seq}).Marshal(d.busyBlock) == nil {
		d.writeRaw(d.busyBlock)
	}
}
