package fault

import (
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// Protocol is an ISO/IEC 7816-3 transmission protocol.
type Protocol int

const (
	T0 Protocol = 0 // character protocol
	T1 Protocol = 1 // block protocol
)

func (p Protocol) String() string { return fmt.Sprintf("T=%d", int(p)) }

// DefaultClock is the card clock this lab assumes when none is given:
// 3.5712 MHz, at which the default Fi=372, Di=1 gives exactly 9600 bit/s.
const DefaultClock = 3_571_200

// Fd and Dd are the default clock rate conversion and baud rate adjustment
// factors (ISO/IEC 7816-3, 7.1); the block waiting time is always counted
// with Fd whatever Fi is in force.
const (
	Fd = 372
	Dd = 1
)

// Timing holds the ISO/IEC 7816-3 parameters that decide how long a card
// takes: the clock, the rate factors, the guard time and the waiting-time
// integers. Build one with DefaultTiming or TimingFromATR.
//
// The times it computes (ISO/IEC 7816-3:2006, clauses 7, 8, 10 and 11):
//
//	etu   = Fi / (Di * f) seconds
//	GT    = 12 etu + N etu, the delay between leading edges of consecutive
//	        characters the terminal sends (N from TC1; N = 255 means 12 etu
//	        for T=0 and 11 etu for T=1); T=1 uses it both ways as CGT, a T=0
//	        card sends its characters 12 etu apart
//	WT    = WI * 960 * Fi / f                 (T=0; WI from TC2, default 10)
//	BWT   = 11 etu + 2^BWI * 960 * Fd / f     (T=1; BWI from TB3, default 4)
//	CWT   = (11 + 2^CWI) etu                  (T=1; CWI from TB3, default 13)
//	BGT   = 22 etu                            (T=1, blocks in opposite directions)
//	16 etu between characters in opposite directions (T=0)
type Timing struct {
	Clock    uint64 // card clock f in Hz
	Fi, Di   int    // rate factors in force (TA1 after PPS, or 372 and 1)
	Protocol Protocol
	N        int // extra guard time integer, 0..255 (TC1)
	WI       int // T=0 waiting time integer, 1..255 (TC2)
	BWI, CWI int // T=1 block and character waiting time integers, 0..9 and 0..15 (TB3)
	// IFSC and IFSD are the largest information fields the card and the
	// terminal accept in a T=1 block (TA3, and the terminal's S(IFS)).
	IFSC, IFSD int
	CRC        bool // T=1 error detection code is a CRC (2 bytes), not an LRC (1)
	// WTXMultiplier is the multiplier a T=1 card asks for in each S(WTX
	// request); the terminal then grants that many BWTs. Default 1.
	WTXMultiplier int
	// NoWaitExtension models a non-conforming card that runs past the
	// waiting time without asking for more (no S(WTX), no NULL bytes).
	NoWaitExtension bool
}

// DefaultTiming returns the ISO/IEC 7816-3 defaults for a protocol at
// DefaultClock: Fi=372, Di=1, N=0, WI=10, BWI=4, CWI=13, IFSC=IFSD=32,
// LRC, WTX multiplier 1.
func DefaultTiming(p Protocol) Timing {
	return Timing{Clock: DefaultClock, Fi: Fd, Di: Dd, Protocol: p, WI: 10, BWI: 4, CWI: 13,
		IFSC: 32, IFSD: 32, WTXMultiplier: 1}
}

// Check reports a parameter outside its ISO/IEC 7816-3 range.
func (t Timing) Check() error {
	switch {
	case t.Clock == 0 || t.Clock > 1_000_000_000:
		return fmt.Errorf("fault: clock %d Hz out of range", t.Clock)
	case t.Fi <= 0 || t.Fi > 2048 || t.Di <= 0 || t.Di > 64:
		return fmt.Errorf("fault: Fi=%d, Di=%d out of range", t.Fi, t.Di)
	case t.Protocol != T0 && t.Protocol != T1:
		return fmt.Errorf("fault: protocol %v not supported", t.Protocol)
	case t.N < 0 || t.N > 255:
		return fmt.Errorf("fault: extra guard time N=%d out of range", t.N)
	case t.Protocol == T0 && (t.WI < 1 || t.WI > 255):
		return fmt.Errorf("fault: WI=%d out of range", t.WI)
	case t.Protocol == T1 && (t.BWI < 0 || t.BWI > 9 || t.CWI < 0 || t.CWI > 15):
		return fmt.Errorf("fault: BWI=%d, CWI=%d out of range", t.BWI, t.CWI)
	case t.Protocol == T1 && (t.IFSC < 1 || t.IFSC > 254 || t.IFSD < 1 || t.IFSD > 254):
		return fmt.Errorf("fault: IFSC=%d, IFSD=%d out of range", t.IFSC, t.IFSD)
	case t.WTXMultiplier < 0 || t.WTXMultiplier > 255:
		return fmt.Errorf("fault: WTX multiplier %d out of range", t.WTXMultiplier)
	}
	return nil
}

// span is a time as clock cycles times Di, so that etu (Fi/Di cycles) and
// raw clock cycles both stay integers until the final conversion.
type span int64

func (t Timing) etus(n int64) span   { return span(n * int64(t.Fi)) }
func (t Timing) cycles(n int64) span { return span(n * int64(t.Di)) }

// dur converts a span to a duration, rounded to the nearest nanosecond.
func (t Timing) dur(s span) time.Duration {
	num := new(big.Int).Mul(big.NewInt(int64(s)), big.NewInt(int64(time.Second)))
	den := new(big.Int).Mul(big.NewInt(int64(t.Di)), new(big.Int).SetUint64(t.Clock))
	num.Add(num, new(big.Int).Rsh(den, 1))
	return time.Duration(num.Quo(num, den).Int64())
}

// ETU is the elementary time unit, Fi/(Di*f).
func (t Timing) ETU() time.Duration { return t.dur(t.etus(1)) }

// guard is the interval between leading edges of consecutive characters
// the terminal sends.
func (t Timing) guard() span {
	if t.N == 255 {
		if t.Protocol == T1 {
			return t.etus(11)
		}
		return t.etus(12)
	}
	return t.etus(12 + int64(t.N))
}

// cardGuard is the interval between characters the card sends.
func (t Timing) cardGuard() span {
	if t.Protocol == T1 {
		return t.guard()
	}
	return t.etus(12)
}

// GuardTime is GT: the delay between leading edges of consecutive
// characters the terminal sends (CGT in T=1).
func (t Timing) GuardTime() time.Duration { return t.dur(t.guard()) }

func (t Timing) bwt() span {
	return t.etus(11) + t.cycles((int64(1)<<t.BWI)*960*Fd)
}

// BWT is the T=1 block waiting time, 11 etu + 2^BWI * 960 * Fd / f.
func (t Timing) BWT() time.Duration { return t.dur(t.bwt()) }

// CWT is the T=1 character waiting time, (11 + 2^CWI) etu.
func (t Timing) CWT() time.Duration { return t.dur(t.etus(11 + int64(1)<<t.CWI)) }

// BGT is the T=1 block guard time, 22 etu.
func (t Timing) BGT() time.Duration { return t.dur(t.etus(22)) }

func (t Timing) wt() span { return t.cycles(int64(t.WI) * 960 * int64(t.Fi)) }

// WT is the T=0 waiting time, WI * 960 * Fi / f.
func (t Timing) WT() time.Duration { return t.dur(t.wt()) }

// WaitLimit is the longest the card may stay silent after a command: BWT
// for T=1, WT for T=0.
func (t Timing) WaitLimit() time.Duration {
	if t.Protocol == T1 {
		return t.BWT()
	}
	return t.WT()
}

// ExchangeTime is how long one command and its response take on the line.
type ExchangeTime struct {
	// Total runs from the leading edge of the command's first character
	// to the end of the response's last one.
	Total time.Duration
	// Transfer is the part spent sending characters (blocks, chaining
	// acknowledgements, procedure bytes), measured leading edge to
	// leading edge, plus the last character's 10 etu frame.
	Transfer time.Duration
	// Characters counts every character on the line, both ways.
	Characters int
	// Extensions counts the waiting-time extensions the card sent: S(WTX
	// request) blocks in T=1, NULL procedure bytes (0x60) in T=0.
	Extensions int
	// WaitLimit is BWT (T=1) or WT (T=0).
	WaitLimit time.Duration
	// Exceeded is set when the card stayed silent longer than WaitLimit:
	// only when NoWaitExtension is set. A conforming terminal gives up.
	Exceeded bool
}

// line accumulates an exchange's timeline.
type line struct {
	t        Timing
	now      span // leading edge of the last character sent
	transfer span
	chars    int
	started  bool
}

// send puts n characters on the line, spaced by g, first after gap.
func (l *line) send(n int, g, gap span) {
	if n <= 0 {
		return
	}
	if l.started {
		l.now += gap
	}
	l.started = true
	l.now += span(n-1) * g
	l.transfer += span(n-1) * g
	l.chars += n
}

// Exchange returns the time command and response take on the line when the
// card spends processing between receiving the command's last character
// and sending its answer's first. A nil or empty response (a card that
// never answered) counts the command alone.
//
// T=1: the command travels in I-blocks of at most IFSC information bytes
// (3 prologue bytes, then the EDC), each but the last acknowledged by the
// card's R-block; the response likewise in blocks of at most IFSD bytes,
// each but the last acknowledged by the terminal. Blocks in opposite
// directions are BGT apart. While processing runs past BWT the card sends
// an S(WTX request) at the end of each waiting period and the terminal
// answers S(WTX response), granting WTXMultiplier x BWT more.
//
// T=0: the terminal sends the 5-byte header; for data in (case 3, 4) the
// card answers the INS procedure byte and the terminal sends the data;
// the card answers after processing, with the INS byte before data out
// (case 2). Case 4 answers 61xx first and the data come with GET
// RESPONSE. While processing runs past WT the card sends NULL (0x60) at
// the end of each waiting period. Opposite directions are 16 etu apart.
func (t Timing) Exchange(command, response []byte, processing time.Duration) (ExchangeTime, error) {
	if err := t.Check(); err != nil {
		return ExchangeTime{}, err
	}
	if processing < 0 {
		processing = 0
	}
	// processing as a span: ns * Di * f / 1e9, rounded up.
	p := new(big.Int).Mul(big.NewInt(int64(processing)), new(big.Int).SetUint64(t.Clock))
	p.Mul(p, big.NewInt(int64(t.Di)))
	p.Add(p, big.NewInt(int64(time.Second)-1))
	p.Quo(p, big.NewInt(int64(time.Second)))
	if !p.IsInt64() {
		return ExchangeTime{}, errors.New("fault: processing time too long")
	}
	proc := span(p.Int64())
	l := &line{t: t}
	var et ExchangeTime
	if t.Protocol == T1 {
		et = t.exchangeT1(l, command, response, proc)
	} else {
		et = t.exchangeT0(l, command, response, proc)
	}
	if l.chars > 0 {
		l.now += t.etus(10)
		l.transfer += t.etus(10)
	}
	et.Total = t.dur(l.now)
	et.Transfer = t.dur(l.transfer)
	et.Characters = l.chars
	return et, nil
}

func (t Timing) edc() int {
	if t.CRC {
		return 2
	}
	return 1
}

// wait advances the line by the card's silence before its answer: proc
// (at least minGap), extended by WTX or NULL bytes past limit.
func (t Timing) wait(l *line, et *ExchangeTime, proc, minGap, limit span, extend func()) {
	et.WaitLimit = t.dur(limit)
	start := l.now
	if proc <= limit || t.NoWaitExtension {
		if proc > limit {
			et.Exceeded = true
		}
		l.now += max(proc, minGap)
		return
	}
	window := limit // the card must send something by start+window
	for {
		l.now = start + window
		extend() // advances l.now past the extension
		et.Extensions++
		if t.Protocol == T1 {
			window = l.now - start + span(max(t.WTXMultiplier, 1))*t.bwt()
		} else {
			window = l.now - start + t.wt()
		}
		if proc <= window {
			break
		}
	}
	end := max(start+proc, l.now+minGap)
	l.now = end
}

func (t Timing) exchangeT1(l *line, command, response []byte, proc span) ExchangeTime {
	var et ExchangeTime
	cg, tg, bgt := t.cardGuard(), t.guard(), t.etus(22)
	edc := t.edc()
	// Command I-blocks, each but the last acknowledged by an R-block.
	for rest := len(command); ; {
		inf := min(rest, t.IFSC)
		l.send(3+inf+edc, tg, bgt)
		rest -= inf
		if rest <= 0 {
			break
		}
		l.send(3+edc, cg, bgt)
	}
	if len(response) == 0 {
		et.WaitLimit = t.BWT()
		return et
	}
	sblock := 3 + 1 + edc
	t.wait(l, &et, proc, bgt, t.bwt(), func() {
		l.send(sblock, cg, 0)   // S(WTX request), first character at the deadline
		l.send(sblock, tg, bgt) // S(WTX response)
	})
	first := true
	for rest := len(response); rest > 0; {
		inf := min(rest, t.IFSD)
		if first {
			l.send(3+inf+edc, cg, 0) // the wait already spaced it
			first = false
		} else {
			l.send(3+inf+edc, cg, bgt)
		}
		rest -= inf
		if rest > 0 {
			l.send(3+edc, tg, bgt) // the terminal's R-block asks for more
		}
	}
	return et
}

// t0DataIn returns the bytes of data a command APDU sends to the card (Lc;
// 0 for cases 1 and 2). An extended-length command counts its whole body,
// as ENVELOPE would carry it.
func t0DataIn(command []byte) int {
	if len(command) <= 5 {
		return 0
	}
	n := int(command[4])
	if n == 0 && len(command) >= 7 { // extended length: Lc in the next two bytes
		n = int(command[5])<<8 | int(command[6])
		return min(n, len(command)-7)
	}
	return min(n, len(command)-5)
}

func (t Timing) exchangeT0(l *line, command, response []byte, proc span) ExchangeTime {
	var et ExchangeTime
	tg, cg, turn := t.guard(), t.cardGuard(), t.etus(16)
	lc := t0DataIn(command)
	l.send(5, tg, 0) // header CLA INS P1 P2 P3
	if lc > 0 {
		l.send(1, cg, turn) // INS procedure byte
		l.send(lc, tg, turn)
	}
	if len(response) == 0 {
		et.WaitLimit = t.WT()
		return et
	}
	t.wait(l, &et, proc, turn, t.wt(), func() {
		l.send(1, cg, 0) // NULL procedure byte at the deadline
	})
	data := len(response) - 2
	switch {
	case data <= 0:
		l.send(len(response), cg, 0)
	case lc > 0: // case 4: 61xx, then GET RESPONSE
		l.send(2, cg, 0)
		l.send(5, tg, turn)
		l.send(1+data+2, cg, turn)
	default: // case 2: INS procedure byte, data, SW1 SW2
		l.send(1+data+2, cg, 0)
	}
	return et
}

// The interface-byte tables of ISO/IEC 7816-3:2006, Table 7 (Fi by FI) and
// Table 8 (Di by DI); 0 marks a value reserved for future use.
var (
	fiTable = [16]int{372, 372, 558, 744, 1116, 1488, 1860, 0, 0, 512, 768, 1024, 1536, 2048, 0, 0}
	diTable = [16]int{0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0}
)

// FiDi decodes TA1 into Fi and Di.
func FiDi(ta1 byte) (fi, di int, err error) {
	fi, di = fiTable[ta1>>4], diTable[ta1&0x0F]
	if fi == 0 || di == 0 {
		return 0, 0, fmt.Errorf("fault: TA1 %#02x holds a reserved FI or DI", ta1)
	}
	return fi, di, nil
}

// TimingFromATR reads the timing parameters from an Answer To Reset
// (ISO/IEC 7816-3:2006, clause 8): Fi and Di from TA1 (taken as in force,
// as after a PPS that accepted them), N from TC1, WI from TC2, the first
// protocol offered by TD1, and for T=1 IFSC, BWI, CWI and the EDC from the
// first TA, TB and TC after a TD naming T=1. clock 0 means DefaultClock.
// IFSD is taken as 254, what a PC/SC reader driver negotiates.
func TimingFromATR(atr []byte, clock uint64) (Timing, error) {
	t := DefaultTiming(T0)
	t.IFSD = 254
	if clock != 0 {
		t.Clock = clock
	}
	if len(atr) < 2 {
		return Timing{}, errors.New("fault: ATR shorter than TS and T0")
	}
	if atr[0] != 0x3B && atr[0] != 0x3F {
		return Timing{}, fmt.Errorf("fault: ATR TS %#02x is neither 3B nor 3F", atr[0])
	}
	pos := 1
	y := atr[1] >> 4
	hist := int(atr[1] & 0x0F)
	pos++
	i := 1             // index of the interface bytes group
	var group Protocol // protocol the current group (i >= 3) belongs to
	firstT1 := true    // the next T=1 specific group is the first
	offered := false
	tckNeeded := false
	for {
		var ta, tb, tc, td int = -1, -1, -1, -1
		for bit, dst := range []*int{&ta, &tb, &tc, &td} {
			if y&(1<<bit) == 0 {
				continue
			}
			if pos >= len(atr) {
				return Timing{}, fmt.Errorf("fault: ATR ends inside interface bytes of group %d", i)
			}
			*dst = int(atr[pos])
			pos++
		}
		switch {
		case i == 1:
			if ta >= 0 {
				fi, di, err := FiDi(byte(ta))
				if err != nil {
					return Timing{}, err
				}
				t.Fi, t.Di = fi, di
			}
			if tc >= 0 {
				t.N = tc
			}
		case i == 2:
			if tc >= 0 {
				if tc == 0 {
					return Timing{}, errors.New("fault: TC2 = 0 is reserved")
				}
				t.WI = tc
			}
		case group == T1 && firstT1:
			firstT1 = false
			if ta >= 0 {
				if ta == 0 || ta == 0xFF {
					return Timing{}, fmt.Errorf("fault: IFSC %d is reserved", ta)
				}
				t.IFSC = min(ta, 254)
			}
			if tb >= 0 {
				t.BWI, t.CWI = tb>>4, tb&0x0F
				if t.BWI > 9 {
					return Timing{}, fmt.Errorf("fault: BWI %d is reserved", t.BWI)
				}
			}
			if tc >= 0 {
				t.CRC = tc&1 == 1
			}
		}
		if td < 0 {
			break
		}
		proto := Protocol(td & 0x0F)
		if proto != T0 {
			tckNeeded = true // TCK is absent only when T=0 alone is indicated
		}
		if !offered && (proto == T0 || proto == T1) {
			t.Protocol = proto
			offered = true
		} else if !offered && proto != 15 {
			return Timing{}, fmt.Errorf("fault: ATR offers T=%d first, which this model does not time", int(proto))
		}
		if i >= 2 && proto == T1 {
			group = T1
		} else {
			group = -1
		}
		y = byte(td >> 4)
		i++
	}
	pos += hist
	if pos > len(atr) {
		return Timing{}, errors.New("fault: ATR shorter than its historical bytes")
	}
	if tckNeeded {
		if pos >= len(atr) {
			return Timing{}, errors.New("fault: ATR lacks TCK")
		}
		var x byte
		for _, b := range atr[1 : pos+1] {
			x ^= b
		}
		if x != 0 {
			return Timing{}, fmt.Errorf("fault: ATR TCK %#02x is wrong", atr[pos])
		}
		pos++
	}
	if pos != len(atr) {
		return Timing{}, fmt.Errorf("fault: %d stray bytes after the ATR", len(atr)-pos)
	}
	if t.Protocol == T1 && t.CWI > 15 {
		return Timing{}, errors.New("fault: CWI out of range")
	}
	return t, t.Check()
}

// TimedConfig sets up a Timed card.
type TimedConfig struct {
	Timing Timing
	// Processing is how long the card computes for a command. nil means
	// the time the wrapped card actually took.
	Processing func(command []byte) time.Duration
	// ATR, when set, makes PowerOn and Reset take as long as the ATR does
	// at the default rate: 400 clock cycles to TS, then 12 etu per
	// character (ISO/IEC 7816-3, 6.2 and 8.1).
	ATR []byte
	// Sleep waits; nil means time.Sleep. Tests pass one that records.
	Sleep func(time.Duration)
}

// TimedStats is what a Timed card has done so far.
type TimedStats struct {
	Exchanges  int
	Extensions int // WTX requests (T=1) or NULL bytes (T=0) sent
	Exceeded   int // exchanges in which the card overran its waiting time
	Line       time.Duration
	Last       ExchangeTime
}

// Timed answers at the speed of a real card: each Process takes as long as
// its exchange takes on an ISO/IEC 7816-3 line (Timing.Exchange), counting
// the waiting-time extensions a slow card must send and reporting the
// exchanges in which a card that does not send them (NoWaitExtension)
// overran BWT or WT, so a terminal's timeouts can be tested against a
// faithful card. The wrapper sleeps whatever part of that time the wrapped
// card did not already spend.
type Timed struct {
	mu    sync.Mutex
	card  emulator.Card
	cfg   TimedConfig
	stats TimedStats
}

var _ emulator.Card = (*Timed)(nil)

// NewTimed wraps card. The timing is checked now, so that Process cannot
// fail later.
func NewTimed(card emulator.Card, cfg TimedConfig) (*Timed, error) {
	if err := cfg.Timing.Check(); err != nil {
		return nil, err
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	return &Timed{card: card, cfg: cfg}, nil
}

// Process runs command on the card and returns when the line would have
// delivered the last character of its answer.
func (c *Timed) Process(command []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	resp := c.card.Process(command)
	took := time.Since(start)
	proc := took
	if c.cfg.Processing != nil {
		proc = c.cfg.Processing(command)
	}
	et, err := c.cfg.Timing.Exchange(command, resp, proc)
	if err != nil { // only a processing time beyond int64 spans
		et = ExchangeTime{Total: proc}
	}
	c.stats.Exchanges++
	c.stats.Extensions += et.Extensions
	if et.Exceeded {
		c.stats.Exceeded++
	}
	c.stats.Line += et.Total
	c.stats.Last = et
	if d := et.Total - took; d > 0 {
		c.cfg.Sleep(d)
	}
	return resp
}

// Stats returns what the card has done so far.
func (c *Timed) Stats() TimedStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// ATRTime is how long the Answer To Reset takes: 400 clock cycles, then
// each character 12 etu apart at the default rate, plus the last one's
// 10 etu frame.
func ATRTime(atr []byte, clock uint64) time.Duration {
	if clock == 0 {
		clock = DefaultClock
	}
	t := Timing{Clock: clock, Fi: Fd, Di: Dd}
	if len(atr) == 0 {
		return t.dur(t.cycles(400))
	}
	return t.dur(t.cycles(400) + t.etus(12*int64(len(atr)-1)+10))
}

func (c *Timed) atrWait() {
	if len(c.cfg.ATR) > 0 {
		c.cfg.Sleep(ATRTime(c.cfg.ATR, c.cfg.Timing.Clock))
	}
}

func (c *Timed) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.card.PowerOn()
	c.atrWait()
}

func (c *Timed) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.card.PowerOff()
}

func (c *Timed) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.card.Reset()
	c.atrWait()
}
