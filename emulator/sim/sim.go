// Package sim attaches a device application to pcscd as an ISO/IEC 7816-3
// smart card (a SIM or eSIM), through vsmartcard's vpcd reader driver.
//
// vpcd ("Virtual PCD", Debian package vsmartcard-vpcd) is a pcscd reader
// driver that listens on TCP port 35963; the card side connects to it as a
// client and answers power, reset and ATR controls and command APDUs (the
// wire format is documented above ReadMessage). Once connected, every PC/SC
// program on the machine (pcsc-tools, OpenSC, github.com/ebfe/scard, the
// rigs/pcsc driver) sees a card in the reader "Virtual PCD 00 00" whose
// Answer To Reset is emulator.ATR(Form): T=1, IFSC 254, historical bytes
// naming the form. SIM and eSIM differ in their ATR only.
//
// Behaviour, following ISO/IEC 7816-3 as far as vpcd lets a card show it:
//
//   - Connecting is insertion, closing the connection is removal. A card
//     removed or disconnected while powered loses power (Card.PowerOff).
//   - vpcd's power on runs Card.PowerOn (a power-up on a powered card is a
//     cold reset: PowerOff then PowerOn); power off runs Card.PowerOff; reset
//     runs Card.Reset, or Card.PowerOn when the card was unpowered. pcscd
//     makes a cold reset (SCARD_UNPOWER_CARD) from power off and power on.
//   - A tear (Card.Process returning nil) is a power cut inside the card: it
//     is unpowered and mute from the tear point until a power on or reset.
//     A reader sees a mute card as a command without answer; vpcd has no
//     response timeout and can report no error but a lost connection (a
//     removal, which pcscd notices only by polling), so the emulator answers
//     the torn command, and every command while mute, with one byte
//     (MuteAnswer), which is no status word: pcscd passes it on as the
//     response and the host sees a command that failed (the rigs/pcsc
//     driver reports link.ErrRemoved). The card stays in the reader behind
//     the same connection; the host recovers it with a cold reset
//     (SCardReconnect with SCARD_UNPOWER_CARD or SCARD_RESET_CARD, or
//     SCardDisconnect with SCARD_UNPOWER_CARD and a new SCardConnect),
//     which pcscd passes on to vpcd at once and which runs Card.PowerOn and
//     so the card's recovery.
//     A command to a card vpcd powered off gets MuteAnswer too.
//   - An empty response from the card application goes to vpcd as 6F00
//     instead: vpcd takes an empty message for a lost connection.
//   - A command on a connection where vpcd sent no power control yet (pcscd
//     missed a removal and insertion) powers the card up first, as a reader
//     activates every card inserted.
//   - Bad frames (zero length, longer than Config.MaxCommand, an unknown
//     control byte, a 2- or 3-byte message that cannot be a command) are
//     logged and counted; the emulator answers what a card would (6700 to a
//     command that is no APDU or too long for it, nothing to a control) and
//     keeps serving.
//
// Debian's /etc/reader.conf.d/vpcd gives vpcd two slots: port 35963 is the
// reader "Virtual PCD 00 00" (DefaultAddress), port 35964 "Virtual PCD 00 01".
// One slot holds one card. Run takes an advisory lock per vpcd address
// (a file in os.TempDir, never removed; the protocol is documented in
// slot_unix.go and the README) so that two emulators, in one process or
// several, never connect to the same slot at once; Config.SlotWait says
// how long to wait for it, and the error names the process holding it.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// Defaults for Config.
const (
	// DefaultAddress is where Debian's /etc/reader.conf.d/vpcd makes vpcd
	// listen for the card (CHANNELID 0x8C7B = 35963).
	DefaultAddress = "127.0.0.1:35963"
	// DefaultReaderName is the name pcscd gives that vpcd slot.
	DefaultReaderName = "Virtual PCD 00 00"
	// DefaultRedial is the pause between attempts to reach vpcd.
	DefaultRedial = 250 * time.Millisecond
	// DefaultRemovalGap is how long the card stays out of the reader
	// after its connection ends before it connects again (or before Run
	// lets another emulator have the slot). pcscd polls vpcd every 400 ms;
	// a gap of two polls and more makes sure pcscd sees the card leave and
	// come back, and so powers the new card up, even when vpcd noticed the
	// lost connection during a command rather than during a poll.
	DefaultRemovalGap = time.Second
	// MaxATR is the longest Answer To Reset ISO/IEC 7816-3 allows.
	MaxATR = 33
)

// unpolledWarning is how long a connection may hear nothing from vpcd
// before the emulator warns that the slot seems taken.
const unpolledWarning = 5 * time.Second

// swWrongLength is the ISO 7816-4 answer to a command that is no APDU or
// that is too long for the card.
var swWrongLength = []byte{0x67, 0x00}

// swNoDiagnosis answers a command whose response cannot be framed.
var swNoDiagnosis = []byte{0x6F, 0x00}

// MuteAnswer is what the emulator sends vpcd for a command the card
// leaves unanswered (it tore, or it is mute or unpowered): one byte, so no
// status word, which every PC/SC host takes for a failed command. It keeps
// the connection, and so the card in the reader, where a lost connection
// would be a removal that pcscd sees only at its next poll.
var MuteAnswer = []byte{0x00}

// ErrSlotBusy is returned by Run when another emulator holds the vpcd slot
// for longer than Config.SlotWait.
var ErrSlotBusy = errors.New("sim: another emulator holds the vpcd slot")

// Config says where and how the card attaches.
type Config struct {
	// Address is vpcd's card-side TCP address; "" means DefaultAddress.
	Address string
	// Form chooses the ATR (emulator.ATR): emulator.FormSIM (the default
	// when empty) or emulator.FormESIM.
	Form emulator.Form
	// ATR, when set, replaces the form's ATR (at most MaxATR bytes).
	ATR []byte
	// Redial is the pause between attempts to reach vpcd. 0 means
	// DefaultRedial. A negative value turns redialling off: Run returns
	// the error when vpcd cannot be reached or drops the connection.
	Redial time.Duration
	// RemovalGap is the least time between the end of one connection and
	// the next (see DefaultRemovalGap, the value 0 stands for).
	RemovalGap time.Duration
	// SlotWait is how long Run waits for another emulator to free the vpcd
	// slot before failing with ErrSlotBusy; 0 fails at once.
	SlotWait time.Duration
	// MaxCommand is the longest command APDU the card accepts; longer ones
	// are dropped and answered 6700. 0 means MaxMessage.
	MaxCommand int
	// NoQuickAck leaves the kernel's delayed ACK on (for measurements only:
	// every command then stalls about 40 ms, see ReadMessage).
	NoQuickAck bool
	// Logger receives connection events and bad frames; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Status is a snapshot of the emulator's state and counters.
type Status struct {
	Inserted    bool   // the card is meant to be in the reader (Insert/Remove)
	Connected   bool   // connected to vpcd now
	Powered     bool   // the card is powered
	Mute        bool   // torn: mute until the next power on or reset
	Connections uint64 // connections made to vpcd
	Commands    uint64 // command APDUs answered
	Controls    uint64 // vpcd controls handled (ATR polls included)
	PowerUps    uint64 // power-ons and resets handled
	Tears       uint64 // commands the card tore (Process returned nil)
	Unanswered  uint64 // commands answered MuteAnswer (torn, mute or unpowered card)
	BadFrames   uint64 // frames dropped or answered 6700 as malformed
	Swaps       uint64 // cards put in the slot by Swap
	// Waiting says what Run is waiting for, "" when nothing: the slot
	// lock (naming its holder) or vpcd (why it cannot be reached).
	Waiting string
}

// Emulator is a card attached to vpcd. Create it with New and serve with
// Run; Insert and Remove may be called from any goroutine.
type Emulator struct {
	card emulator.Card
	cfg  Config
	atr  []byte
	log  *slog.Logger

	insertCh chan struct{} // wakes Run after Insert

	mu      sync.Mutex
	gen     uint64 // cards swapped in so far
	running bool
	torn    bool          // mute until the next power on or reset, across connections
	conn    *net.TCPConn  // current connection to vpcd, nil when none
	served  chan struct{} // closed when serving conn has ended
	status  Status
}

// New returns an emulator presenting card. The card starts inserted and
// unpowered; pcscd powers it when it sees it.
func New(card emulator.Card, cfg Config) *Emulator {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Form == "" {
		cfg.Form = emulator.FormSIM
	}
	if cfg.Redial == 0 {
		cfg.Redial = DefaultRedial
	}
	if cfg.RemovalGap <= 0 {
		cfg.RemovalGap = DefaultRemovalGap
	}
	if cfg.MaxCommand <= 0 || cfg.MaxCommand > MaxMessage {
		cfg.MaxCommand = MaxMessage
	}
	atr := append([]byte(nil), cfg.ATR...)
	if len(atr) == 0 {
		atr = emulator.ATR(cfg.Form)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	e := &Emulator{
		card:     card,
		cfg:      cfg,
		atr:      atr,
		log:      log.With("emulator", "sim", "vpcd", cfg.Address),
		insertCh: make(chan struct{}, 1),
	}
	e.status.Inserted = true
	return e
}

// ATR returns the Answer To Reset the card presents.
func (e *Emulator) ATR() []byte { return append([]byte(nil), e.atr...) }

// Address returns the vpcd address the emulator connects to.
func (e *Emulator) Address() string { return e.cfg.Address }

// Status returns the current state and counters.
func (e *Emulator) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

func (e *Emulator) setWaiting(what string) {
	e.mu.Lock()
	e.status.Waiting = what
	e.mu.Unlock()
}

func (e *Emulator) check() error {
	switch {
	case len(e.atr) > MaxATR:
		return fmt.Errorf("sim: ATR too long: %d bytes, ISO/IEC 7816-3 allows %d", len(e.atr), MaxATR)
	case len(e.atr) < 2 || (e.atr[0] != 0x3B && e.atr[0] != 0x3F):
		return fmt.Errorf("sim: ATR % X does not start with TS 3B or 3F", e.atr)
	case e.card == nil:
		return errors.New("sim: no card application")
	}
	return nil
}

// Run connects to vpcd and serves the card until ctx ends, redialling when
// vpcd is unreachable or drops the connection (unless Config.Redial < 0).
// It returns nil when ctx ends, and an error for a bad configuration, a busy
// slot, or (without redialling) a lost connection. After ctx ends Run keeps
// the slot for what is left of the removal gap (at most
// Config.RemovalGap), so that the next card in the slot is seen as new.
func (e *Emulator) Run(ctx context.Context) error {
	if err := e.check(); err != nil {
		return err
	}
	e.mu.Lock()
	if e.running {
		e.mu.Unlock()
		return errors.New("sim: Run is already serving this emulator")
	}
	e.running = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.running = false
		e.mu.Unlock()
	}()

	release, left, leftBy, err := claimSlot(ctx, e.cfg.Address, e.cfg.SlotWait, func(h Holder) {
		e.setWaiting(fmt.Sprintf("vpcd slot %s held by %s", e.cfg.Address, h))
		e.log.Warn("vpcd slot busy: waiting", "reader", ReaderName(e.cfg.Address), "holder", h.String(), "up_to", e.cfg.SlotWait)
	})
	e.setWaiting("")
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer release()

	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.conn != nil {
			abort(e.conn)
		}
	})
	defer stop()

	var (
		dialer  net.Dialer
		warned  bool
		lastEnd time.Time // when the last connection ended
	)
	// Leave the reader empty for the removal gap before another emulator
	// may take the slot, so that pcscd sees this card go.
	defer func() {
		if !lastEnd.IsZero() {
			time.Sleep(time.Until(lastEnd.Add(e.cfg.RemovalGap)))
		}
	}()
	if gap := time.Until(leftBy.Add(e.cfg.RemovalGap)); left.PID != 0 && gap > 0 {
		// The last holder ended without letting go, a moment ago: its
		// card's connection closed as it ended. Keep the slot empty for
		// the rest of the removal gap, so that pcscd sees that card
		// leave and this one arrive (and powers it), rather than taking
		// this card for the last one.
		left.Command = ""
		e.setWaiting(fmt.Sprintf("vpcd slot %s: removal gap after %s, which ended without letting go of the slot", e.cfg.Address, left))
		e.log.Info("vpcd slot left without being let go: keeping the card out for the removal gap", "last_holder", left.String(), "wait", gap)
		if !sleep(ctx, gap) {
			return nil
		}
		e.setWaiting("")
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		e.mu.Lock()
		inserted := e.status.Inserted
		e.mu.Unlock()
		if !inserted {
			select {
			case <-ctx.Done():
				return nil
			case <-e.insertCh:
			}
			continue
		}
		if !lastEnd.IsZero() && !sleep(ctx, time.Until(lastEnd.Add(e.cfg.RemovalGap))) {
			return nil
		}
		c, err := dialer.DialContext(ctx, "tcp", e.cfg.Address)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = fmt.Errorf("sim: cannot reach vpcd at %s (is pcscd running with the vsmartcard-vpcd reader driver? .ci/pcscd starts it): %w", e.cfg.Address, err)
			if e.cfg.Redial < 0 {
				return err
			}
			e.setWaiting(err.Error())
			if !warned {
				e.log.Warn("waiting for vpcd", "err", err, "retry", e.cfg.Redial)
				warned = true
			}
			if !sleep(ctx, e.cfg.Redial) {
				return nil
			}
			continue
		}
		warned = false
		e.setWaiting("")
		end := e.serve(ctx, c.(*net.TCPConn))
		lastEnd = time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case end.removed:
			e.log.Info("card removed")
		default:
			err := fmt.Errorf("sim: vpcd at %s dropped the connection: %w", e.cfg.Address, end.err)
			if e.cfg.Redial < 0 {
				return err
			}
			e.log.Warn("reconnecting", "err", err)
		}
	}
}

// Swap puts card in the slot in place of the one there, behind the same
// vpcd connection: the card leaves (losing power, Card.PowerOff) and the
// new one is there, unpowered, without pcscd seeing a removal. Whoever
// swaps announces the new card to pcscd with a reset (SCardReconnect with
// SCARD_RESET_CARD, or SCARD_UNPOWER_CARD for a cold one), which pcscd
// passes on to vpcd at once: vpcd's reset (or power off and power on)
// then powers the new card and reads its ATR. A command that comes first
// activates the new card, as a reader does a card it finds inserted. The old card must have no command in progress.
// The ATR is the emulator's, whichever card is in the slot.
func (e *Emulator) Swap(card emulator.Card) error {
	if card == nil {
		return errors.New("sim: Swap with no card application")
	}
	e.mu.Lock()
	old, powered := e.card, e.status.Powered
	e.card = card
	e.gen++
	e.torn = false
	e.status.Powered, e.status.Mute = false, false
	e.status.Swaps++
	e.mu.Unlock()
	if powered {
		old.PowerOff()
	}
	return nil
}

// Insert puts the card (back) into the reader: Run connects to vpcd again.
func (e *Emulator) Insert() {
	e.mu.Lock()
	e.status.Inserted = true
	e.mu.Unlock()
	select {
	case e.insertCh <- struct{}{}:
	default:
	}
}

// Remove pulls the card out of the reader: the connection to vpcd is reset,
// a command in progress gets no answer, and the card loses power. Remove
// returns once the card is unpowered; Run stays idle until Insert.
func (e *Emulator) Remove() {
	e.mu.Lock()
	e.status.Inserted = false
	c, served := e.conn, e.served
	if c != nil {
		abort(c)
	}
	e.mu.Unlock()
	if c != nil {
		<-served
	}
}

// abort closes c with a TCP reset, which vpcd sees as an error (recv fails)
// rather than an orderly end of stream.
func abort(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// serveEnd says why serving a connection ended.
type serveEnd struct {
	removed bool  // Remove was called
	err     error // what ended it
}

// serve answers vpcd on c until the connection ends. It owns the card's
// power state while it runs.
func (e *Emulator) serve(ctx context.Context, c *net.TCPConn) serveEnd {
	e.mu.Lock()
	if !e.status.Inserted || ctx.Err() != nil {
		e.mu.Unlock()
		abort(c)
		return serveEnd{removed: true, err: errors.New("removed before connecting")}
	}
	served := make(chan struct{})
	e.conn, e.served = c, served
	e.status.Connected = true
	e.status.Connections++
	e.mu.Unlock()
	e.log.Info("connected to vpcd", "atr", fmt.Sprintf("% X", e.atr))

	s := &session{e: e, w: c}
	s.follow()
	s.r = io.Reader(c)
	if !e.cfg.NoQuickAck {
		s.r = newAckingReader(c)
	}
	_ = c.SetNoDelay(true)

	// vpcd accepts a card only while its slot is free and polls it every
	// 400 ms; a connection that hears nothing is waiting behind another
	// card (a vicc, or an emulator that takes no slot lock).
	controls := e.Status().Controls
	silent := time.AfterFunc(unpolledWarning, func() {
		if e.Status().Controls == controls {
			e.log.Warn("connected, but vpcd has not polled this card: is another card program using the slot?", "after", unpolledWarning)
		}
	})
	end := s.loop()
	silent.Stop()

	s.follow()
	if s.powered {
		s.card.PowerOff()
	}
	e.mu.Lock()
	if !e.status.Inserted {
		end.removed = true
	}
	e.conn, e.served = nil, nil
	e.status.Connected = false
	e.status.Powered = false
	e.mu.Unlock()
	abort(c)
	close(served)
	return end
}

// session is one connection's worth of card state.
type session struct {
	e         *Emulator
	r         io.Reader
	w         io.Writer
	buf       []byte
	card      emulator.Card // the card in the slot (Swap changes it)
	gen       uint64        // the emulator's swap count card belongs to
	powered   bool
	powerSeen bool // vpcd sent a power control on this connection
}

// follow takes the card Swap put in the slot since the last message: it
// is unpowered and, like a card a reader has just seen inserted, is
// activated by the next power control or command.
func (s *session) follow() {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	if s.card != nil && s.gen == s.e.gen {
		return
	}
	s.card, s.gen = s.e.card, s.e.gen
	s.powered, s.powerSeen = false, false
}

// setPower records the card's power; powering it (or a reset) ends a tear.
func (s *session) setPower(powered bool) {
	s.powered = powered
	s.e.mu.Lock()
	s.e.status.Powered = powered
	if powered {
		s.e.status.PowerUps++
		s.e.torn = false
		s.e.status.Mute = false
	}
	s.e.mu.Unlock()
}

// tear records that the card lost power in a command: mute until powered.
func (s *session) tear() {
	s.powered = false
	s.e.mu.Lock()
	s.e.status.Powered = false
	s.e.torn = true
	s.e.status.Mute = true
	s.e.status.Tears++
	s.e.mu.Unlock()
}

func (s *session) torn() bool {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	return s.e.torn
}

// unanswered tells vpcd that the command got no answer from the card.
func (s *session) unanswered() error {
	s.count(&s.e.status.Unanswered)
	return WriteMessage(s.w, MuteAnswer)
}

func (s *session) count(field *uint64) {
	s.e.mu.Lock()
	*field++
	s.e.mu.Unlock()
}

func (s *session) loop() serveEnd {
	e := s.e
	for {
		msg, err := ReadMessage(s.r, s.buf, e.cfg.MaxCommand)
		var fe *FrameError
		switch {
		case errors.As(err, &fe):
			s.count(&e.status.BadFrames)
			e.log.Warn("bad frame from vpcd", "err", fe)
			if errors.Is(fe, ErrMessageTooLong) {
				if err := WriteMessage(s.w, swWrongLength); err != nil {
					return serveEnd{err: err}
				}
			}
			continue
		case err != nil:
			return serveEnd{err: err}
		}
		s.buf = msg[:0]
		s.follow()

		if len(msg) == 1 {
			e.log.Debug("control", "ctl", Control(msg[0]))
			if err := s.control(Control(msg[0])); err != nil {
				return serveEnd{err: err}
			}
			continue
		}
		switch {
		case s.torn():
			// A torn card does not answer until it is powered again.
			e.log.Info("command to a torn card: no answer (mute until power on or reset)", "apdu", fmt.Sprintf("% X", head(msg)))
			if err := s.unanswered(); err != nil {
				return serveEnd{err: err}
			}
			continue
		case !s.powered && !s.powerSeen:
			// pcscd missed a removal and insertion that happened
			// within one of its polls, so it never powered this card
			// up. A reader always activates an inserted card: do so.
			e.log.Info("command before any power control: powering up as on insertion")
			s.card.PowerOn()
			s.setPower(true)
		case !s.powered:
			e.log.Info("command to an unpowered card: no answer", "apdu", fmt.Sprintf("% X", head(msg)))
			if err := s.unanswered(); err != nil {
				return serveEnd{err: err}
			}
			continue
		}
		if len(msg) < 4 {
			s.count(&e.status.BadFrames)
			e.log.Warn("bad frame from vpcd", "err", fmt.Errorf("sim: %d-byte message is neither a control nor a command APDU", len(msg)))
			if err := WriteMessage(s.w, swWrongLength); err != nil {
				return serveEnd{err: err}
			}
			continue
		}
		if e.log.Enabled(context.Background(), slog.LevelDebug) {
			e.log.Debug("command", "apdu", fmt.Sprintf("% X", msg))
		}
		resp := s.card.Process(append([]byte(nil), msg...))
		if resp == nil {
			s.tear()
			e.log.Info("card tore during a command: no answer", "apdu", fmt.Sprintf("% X", head(msg)))
			if err := s.unanswered(); err != nil {
				return serveEnd{err: err}
			}
			continue
		}
		switch {
		case len(resp) > MaxMessage:
			e.log.Error("response does not fit a vpcd frame; answering 6F00", "bytes", len(resp))
			resp = swNoDiagnosis
		case len(resp) == 0:
			// vpcd waits for a message after an empty one, holding
			// pcscd's reader lock: never send it.
			e.log.Error("card answered an empty response; answering 6F00")
			resp = swNoDiagnosis
		}
		if err := WriteMessage(s.w, resp); err != nil {
			return serveEnd{err: err}
		}
		s.count(&e.status.Commands)
	}
}

// head returns at most the 4-byte header of a command, for logs.
func head(cmd []byte) []byte {
	if len(cmd) > 4 {
		return cmd[:4]
	}
	return cmd
}

func (s *session) control(ctl Control) error {
	e := s.e
	if !ctl.Known() {
		s.count(&e.status.BadFrames)
		e.log.Warn("bad frame from vpcd", "err", fmt.Errorf("sim: %v", ctl))
		return nil
	}
	s.count(&e.status.Controls)
	if ctl != CtrlATR {
		s.powerSeen = true
	}
	switch ctl {
	case CtrlPowerOff:
		if s.powered {
			s.card.PowerOff()
		}
		s.setPower(false)
	case CtrlPowerOn:
		if s.powered {
			s.card.PowerOff()
		}
		s.card.PowerOn()
		s.setPower(true)
	case CtrlReset:
		if s.powered {
			s.card.Reset()
		} else {
			s.card.PowerOn()
		}
		s.setPower(true)
	case CtrlATR:
		return WriteMessage(s.w, e.atr)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
