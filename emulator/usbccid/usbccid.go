// Package usbccid emulates a one-slot USB CCID smart-card reader with a
// device application in its slot, at the level of CCID bulk messages (USB
// CCID specification rev 1.1, section 6; codec in rigs/usb/ccid).
//
// A Reader exposes the two bulk endpoints of the reader's CCID interface:
// Write takes one bulk-out transfer (a PC_to_RDR message) and Read returns
// the next bulk-in transfer (an RDR_to_PC message). rigs/usb speaks to them
// exactly as it speaks to a real reader's endpoints through libusb.
//
// The reader exchanges at APDU level: PC_to_RDR_XfrBlock carries a whole
// command APDU and RDR_to_PC_DataBlock the whole response. It implements
// IccPowerOn (cold reset, or warm reset when the card is already active),
// IccPowerOff, GetSlotStatus, GetParameters and XfrBlock. When the card
// takes longer than Config.TimeExtensionAfter to answer, the reader sends
// time extension requests (bmCommandStatus 2, bError = the BWT multiplier)
// until the answer is ready. Card removal and insertion (Remove and Insert,
// or a card that reports them itself, as emulator/fault's Removal does)
// change the slot status. Every malformed message is answered with the error the
// specification defines, never with a crash:
//
//	condition                               answer (bStatus, bError)
//	transfer shorter than 10 bytes          Write fails (the endpoint stalls)
//	dwLength != bytes after the header      failed, 0x01 (offset of dwLength)
//	message longer than MaxMessage          failed, 0x01
//	bSlot != 0                              failed, no ICC, 0x05 (offset of bSlot)
//	bPowerSelect > 3                        failed, 0x07
//	XfrBlock wLevelParameter != 0           failed, 0x08 (chaining not supported)
//	command while another one runs          failed, CMD_SLOT_BUSY (0xE0)
//	unknown or unsupported message type     failed, CMD_NOT_SUPPORTED (0x00)
//	no card / card inactive / card torn     failed, ICC_MUTE (0xFE)
//
// The interrupt endpoint (RDR_to_PC_NotifySlotChange) and the class
// control requests are not emulated: a host learns of a removal from the
// slot status of its next command.
package usbccid

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/wire/ccid"
)

// Config configures a Reader. The zero value is a working reader.
type Config struct {
	// ATR is the card's Answer To Reset; default emulator.ATR(FormUSB).
	ATR []byte
	// TimeExtensionAfter is how long the card may work on a command
	// before the reader sends a time extension request, and then again
	// after each request. Default 100 ms; negative disables them.
	TimeExtensionAfter time.Duration
	// TimeExtensionMultiplier is bError of a time extension request (the
	// BWT multiplier). Default 1.
	TimeExtensionMultiplier byte
	// MaxMessage is dwMaxCCIDMessageLength; default ccid.MaxMessage
	// (extended APDUs).
	MaxMessage int
	// QueueLimit bounds the bulk-in messages waiting for the host; a
	// Write that would exceed it fails. Default 64.
	QueueLimit int
	// Empty starts the reader with no card in the slot.
	Empty bool
}

// Errors of the endpoints.
var (
	ErrClosed    = errors.New("usbccid: reader closed")
	ErrQueueFull = errors.New("usbccid: bulk-in queue full, the host is not reading")
)

// Reader is an emulated CCID reader with one slot.
type Reader struct {
	card emulator.Card
	cfg  Config

	mu       sync.Mutex
	present  bool
	powered  bool
	busy     bool
	closed   bool
	queue    [][]byte
	notify   chan struct{} // one token: bulk-in has data or the reader closed
	inflight sync.WaitGroup

	// Counters for tests and reports.
	stalls         int
	timeExtensions int
}

// New returns a reader with card in its slot (inactive until the host
// sends IccPowerOn).
func New(card emulator.Card, cfg Config) *Reader {
	if cfg.ATR == nil {
		cfg.ATR = emulator.ATR(emulator.FormUSB)
	}
	if cfg.TimeExtensionAfter == 0 {
		cfg.TimeExtensionAfter = 100 * time.Millisecond
	}
	if cfg.TimeExtensionMultiplier == 0 {
		cfg.TimeExtensionMultiplier = 1
	}
	if cfg.MaxMessage <= 0 || cfg.MaxMessage > ccid.MaxMessage {
		cfg.MaxMessage = ccid.MaxMessage
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 64
	}
	r := &Reader{
		card:    card,
		cfg:     cfg,
		present: !cfg.Empty && card != nil,
		notify:  make(chan struct{}, 1),
	}
	if n, ok := card.(presenceNotifier); ok {
		n.Notify(r.cardMoved)
	}
	return r
}

// presenceNotifier is a card that can leave its slot by itself (the
// removal fault of emulator/fault) and tells the reader when it does.
type presenceNotifier interface {
	Notify(func(present bool))
}

// cardMoved follows a card that was removed or inserted by itself. The
// card has already lost power when it reports a removal.
func (r *Reader) cardMoved(present bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.present = present
	r.powered = false
}

// String names the reader.
func (r *Reader) String() string { return "usbccid" }

// Write delivers one bulk-out transfer holding a whole PC_to_RDR message.
// The answer appears on Read. Write fails only when the reader is closed,
// the transfer is shorter than a header (a real reader stalls), or the
// host has left too many answers unread.
func (r *Reader) Write(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := ccid.Parse(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if len(r.queue) >= r.cfg.QueueLimit {
		return ErrQueueFull
	}
	switch {
	case errors.Is(err, ccid.ErrShort):
		r.stalls++
		return fmt.Errorf("usbccid: endpoint stalled: %w", err)
	case err != nil, len(msg) > r.cfg.MaxMessage:
		r.failLocked(m, ccid.ErrBadLength)
		return nil
	case m.Slot != 0:
		r.pushLocked(m.Answer(ccid.MakeStatus(ccid.ICCAbsent, ccid.CommandFailed), ccid.ErrBadSlot, 0, nil))
		return nil
	case r.busy:
		r.failLocked(m, ccid.ErrCmdSlotBusy)
		return nil
	}
	switch m.Type {
	case ccid.PCtoRDRGetSlotStatus:
		r.pushLocked(m.Answer(ccid.MakeStatus(r.iccLocked(), ccid.CommandOK), 0, r.clockLocked(), nil))
	case ccid.PCtoRDRIccPowerOff:
		if r.powered {
			r.card.PowerOff()
			r.powered = false
		}
		r.pushLocked(m.Answer(ccid.MakeStatus(r.iccLocked(), ccid.CommandOK), 0, r.clockLocked(), nil))
	case ccid.PCtoRDRGetParameters:
		if !r.present {
			r.failLocked(m, ccid.ErrICCMute)
			break
		}
		proto, params := parameters(r.cfg.ATR)
		r.pushLocked(m.Answer(ccid.MakeStatus(r.iccLocked(), ccid.CommandOK), 0, proto, params))
	case ccid.PCtoRDRIccPowerOn:
		switch {
		case m.Param[0] > 3:
			r.failLocked(m, ccid.ErrBadParam)
		case !r.present:
			r.failLocked(m, ccid.ErrICCMute)
		default:
			r.startLocked(m, nil)
		}
	case ccid.PCtoRDRXfrBlock:
		switch {
		case m.Param[1] != 0 || m.Param[2] != 0:
			r.failLocked(m, ccid.ErrBadParam+1)
		case !r.present || !r.powered:
			r.failLocked(m, ccid.ErrICCMute)
		default:
			r.startLocked(m, append([]byte(nil), m.Data...))
		}
	default:
		r.failLocked(m, ccid.ErrCmdNotSupported)
	}
	return nil
}

// Read returns the next bulk-in transfer, waiting until there is one or
// ctx ends.
func (r *Reader) Read(ctx context.Context) ([]byte, error) {
	for {
		r.mu.Lock()
		if len(r.queue) > 0 {
			b := r.queue[0]
			r.queue[0] = nil
			r.queue = r.queue[1:]
			more := len(r.queue) > 0
			r.mu.Unlock()
			if more {
				r.wake()
			}
			return b, nil
		}
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Remove takes the card out of the slot. A command running on the card is
// answered with ICC_MUTE and no ICC present.
func (r *Reader) Remove() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.powered && !r.busy {
		r.card.PowerOff()
	}
	r.present = false
	r.powered = false
}

// Insert puts the card back into the slot, inactive until IccPowerOn.
func (r *Reader) Insert() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.present = r.card != nil
}

// Present reports whether a card is in the slot.
func (r *Reader) Present() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.present
}

// TimeExtensions returns how many time extension requests the reader sent.
func (r *Reader) TimeExtensions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timeExtensions
}

// Stalls returns how many bulk-out transfers were too short to answer.
func (r *Reader) Stalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalls
}

// Close unplugs the reader: it waits for a running command, removes power
// from the card and fails every later Read and Write.
func (r *Reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.wake()
	r.inflight.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.powered {
		r.card.PowerOff()
		r.powered = false
	}
	return nil
}

func (r *Reader) iccLocked() ccid.ICCStatus {
	switch {
	case !r.present:
		return ccid.ICCAbsent
	case !r.powered:
		return ccid.ICCInactive
	}
	return ccid.ICCActive
}

func (r *Reader) clockLocked() byte {
	if r.powered {
		return byte(ccid.ClockRunning)
	}
	return byte(ccid.ClockStoppedLow)
}

func (r *Reader) failLocked(m ccid.Message, e ccid.SlotError) {
	r.pushLocked(m.Answer(ccid.MakeStatus(r.iccLocked(), ccid.CommandFailed), e, 0, nil))
}

func (r *Reader) pushLocked(m ccid.Message) {
	r.queue = append(r.queue, m.Bytes())
	r.wake()
}

func (r *Reader) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// command is one card operation in progress: IccPowerOn or XfrBlock.
type command struct {
	r     *Reader
	msg   ccid.Message
	apdu  []byte
	done  bool
	timer *time.Timer
}

// startLocked runs a card operation in its own goroutine, so that the
// reader can send time extension requests while the card works.
func (r *Reader) startLocked(m ccid.Message, apdu []byte) {
	r.busy = true
	m.Data = nil
	c := &command{r: r, msg: m, apdu: apdu}
	if r.cfg.TimeExtensionAfter > 0 {
		c.timer = time.AfterFunc(r.cfg.TimeExtensionAfter, c.extend)
	}
	r.inflight.Add(1)
	go c.run()
}

// extend sends one time extension request and arms the next.
func (c *command) extend() {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.done || r.closed {
		return
	}
	if len(r.queue) < r.cfg.QueueLimit {
		wtx := c.msg.Answer(ccid.MakeStatus(r.iccLocked(), ccid.CommandTimeExtension), ccid.SlotError(r.cfg.TimeExtensionMultiplier), 0, nil)
		r.pushLocked(wtx)
		r.timeExtensions++
	}
	c.timer.Reset(r.cfg.TimeExtensionAfter)
}

func (c *command) run() {
	r := c.r
	defer r.inflight.Done()
	var (
		resp []byte
		atr  bool
	)
	if c.msg.Type == ccid.PCtoRDRIccPowerOn {
		r.mu.Lock()
		warm := r.powered
		r.mu.Unlock()
		if warm {
			r.card.Reset()
		} else {
			r.card.PowerOn()
		}
		resp, atr = append([]byte(nil), r.cfg.ATR...), true
	} else {
		resp = r.card.Process(c.apdu)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	c.done = true
	if c.timer != nil {
		c.timer.Stop()
	}
	r.busy = false
	switch {
	case !r.present:
		// Pulled out while it worked: it lost power with the command.
		r.card.PowerOff()
		r.powered = false
		r.failLocked(c.msg, ccid.ErrICCMute)
	case resp == nil:
		// Torn: the card is mute until the next IccPowerOn.
		r.powered = false
		r.failLocked(c.msg, ccid.ErrICCMute)
	default:
		if atr {
			r.powered = true
		}
		r.pushLocked(c.msg.Answer(ccid.MakeStatus(ccid.ICCActive, ccid.CommandOK), 0, 0, resp))
	}
}

// parameters returns bProtocolNum and abProtocolDataStructure for the
// protocol the ATR announces first (ISO/IEC 7816-3 section 8.2). A T=1
// card gets the 7-byte structure, any other the 5-byte T=0 one.
func parameters(atr []byte) (byte, []byte) {
	var (
		ta1, tc1 byte = 0x11, 0x00
		tc2      byte = 10 // WI default
		bwcwi    byte = 0x4D
		ifsc     byte = 0x20
		edc      byte // bit 0 of the first TC for T=1: CRC
		t1       bool
	)
	if len(atr) >= 2 {
		i := 2
		y := atr[1] >> 4
		levelT1 := false // the interface bytes of this level are for T=1
		seenTA, seenTB, seenTC := false, false, false
		for level := 1; level <= 8; level++ {
			var td byte
			hasTD := false
			for bit := 0; bit < 4 && i < len(atr); bit++ {
				if y&(1<<bit) == 0 {
					continue
				}
				v := atr[i]
				i++
				switch {
				case bit == 0 && level == 1:
					ta1 = v
				case bit == 2 && level == 1:
					tc1 = v
				case bit == 2 && level == 2:
					tc2 = v
				case bit == 0 && level >= 3 && levelT1 && !seenTA:
					ifsc, seenTA = v, true
				case bit == 1 && level >= 3 && levelT1 && !seenTB:
					bwcwi, seenTB = v, true
				case bit == 2 && level >= 3 && levelT1 && !seenTC:
					edc, seenTC = v&1, true
				case bit == 3:
					td, hasTD = v, true
				}
			}
			if !hasTD {
				break
			}
			levelT1 = td&0x0F == 1
			if level == 1 && levelT1 {
				t1 = true // the first protocol offered
			}
			y = td >> 4
		}
	}
	if t1 {
		return 1, ccid.T1Parameters{
			FindexDindex:    ta1,
			TCCKST1:         0x10 | edc,
			GuardTimeT1:     tc1,
			WaitingIntegers: bwcwi,
			IFSC:            ifsc,
		}.Bytes()
	}
	return 0, []byte{ta1, 0x00, tc1, tc2, 0x00}
}
