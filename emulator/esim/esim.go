// Package esim emulates an eUICC-like card: a card OS with logical
// channels 0..3 (ISO/IEC 7816-4 clause 5.1.1, MANAGE CHANNEL clause
// 11.1.2) that holds the SPD application beside an ISD-R, the issuer
// security domain root of GSMA SGP.22 that answers SELECT and ES10c
// GetEID. It follows reference/SPEC.md SPD-ESIM-1..3.
//
// The card routes each command by the channel in its class byte: the
// channel's selected application answers it, with the channel taken out
// of the class byte. SELECT by AID chooses the application of a channel;
// the SPD application keeps one session per channel (device.Sessions).
// Card implements emulator.Card, so any transport emulator can carry it.
package esim

import (
	"bytes"
	"sync"

	"github.com/spdlab/spdlab/emulator"
)

// ISDR is the AID of the ISD-R (GSMA SGP.22 section 2.2.3).
var ISDR = []byte{0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x89, 0x00, 0x00, 0x01, 0x00}

// Application is an application that keeps one session per channel: the
// SPD application is device.Sessions.
type Application interface {
	Process(channel int, command []byte) []byte
	Close(channel int)
	PowerOn()
	PowerOff()
	Reset()
}

// Channels is the number of logical channels: 0 (basic) to 3.
const Channels = 4

// Status words of the card OS.
var (
	swOK              = []byte{0x90, 0x00}
	swChannelNotOpen  = []byte{0x68, 0x81} // logical channel not supported or not open
	swSecureMessaging = []byte{0x68, 0x82} // secure messaging not supported
	swFuncNotSupp     = []byte{0x6A, 0x81} // function not supported: no channel to open or close
	swIncorrectP1P2   = []byte{0x6A, 0x86}
	swWrongLength     = []byte{0x67, 0x00}
	swInsNotSupported = []byte{0x6D, 0x00}
	swFileNotFound    = []byte{0x6A, 0x82}
)

type app uint8

const (
	appSPD  app = iota // the SPD application (also when nothing is selected)
	appISDR            // the ISD-R
)

// Card is the eUICC: the SPD application, an ISD-R and the channels.
type Card struct {
	// Mutant is a defect of the card OS from the catalogue of
	// reference/device (Mutants, the esim-* names), set before the card is
	// used; "" for none. make mutants proves the suite fails a card that
	// has one.
	Mutant string

	mu   sync.Mutex
	spd  Application
	eid  []byte
	open [Channels]bool
	on   [Channels]app
}

// bug reports whether the card runs with the named mutant.
func (c *Card) bug(name string) bool { return c.Mutant == name }

// New makes a card holding spd, with eid (16 bytes) as its EID.
func New(spd Application, eid []byte) *Card {
	c := &Card{spd: spd, eid: bytes.Clone(eid)}
	c.closeAll()
	return c
}

// ATR is the eUICC's Answer To Reset (SPD-ESIM-3).
func ATR() []byte { return emulator.ATR(emulator.FormESIM) }

// ATR is the card's Answer To Reset: the eUICC's, or a SIM's for the
// mutant esim-atr-no-euicc.
func (c *Card) ATR() []byte {
	if c.bug("esim-atr-no-euicc") {
		return emulator.ATR(emulator.FormSIM)
	}
	return ATR()
}

func (c *Card) closeAll() {
	c.open = [Channels]bool{true}
	c.on = [Channels]app{}
}

// PowerOn applies power: channels 1..3 are closed.
func (c *Card) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeAll()
	c.spd.PowerOn()
}

// PowerOff removes power.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeAll()
	c.spd.PowerOff()
}

// Reset is a warm reset: channels 1..3 are closed.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.bug("esim-reset-keeps-channels") {
		c.closeAll()
	}
	c.spd.Reset()
}

// channelOf reads the logical channel of a class byte of the first
// kind (ISO/IEC 7816-4 clause 5.4.1: b8-b5 0000 or 1000, channel in b2-b1,
// secure messaging in b4-b3). further is set for the further classes
// (b7 = 1 and b8 = 0: channels 4..19), which this card does not offer;
// other is set for every other class byte, which the application answers.
func channelOf(cla byte) (ch int, sm, further, other bool) {
	switch {
	case cla&0xC0 == 0x40:
		return 0, false, true, false
	case cla&0x70 != 0 || cla == 0xFF:
		return 0, false, false, true
	}
	return int(cla & 0x03), cla&0x0C != 0, false, false
}

// Process answers one command APDU.
func (c *Card) Process(command []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(command) < 4 {
		return c.spd.Process(0, command)
	}
	ch, sm, further, other := channelOf(command[0])
	switch {
	case other:
		return c.route(0, command)
	case further:
		return bytes.Clone(swChannelNotOpen)
	case sm && !c.bug("esim-sm-ignored"):
		return bytes.Clone(swSecureMessaging)
	case !c.open[ch]:
		return bytes.Clone(swChannelNotOpen)
	}
	cmd := bytes.Clone(command)
	cmd[0] &^= 0x03
	if cmd[0] == 0x00 && cmd[1] == 0x70 && len(cmd) <= 5 { // MANAGE CHANNEL has no data field
		return c.manageChannel(ch, cmd)
	}
	if cmd[0] == 0x00 && cmd[1] == 0xA4 && cmd[2] == 0x04 {
		if aid, ok := selectAID(cmd); ok && bytes.Equal(aid, ISDR) {
			c.spd.Close(ch)
			c.on[ch] = appISDR
			return isdrFCI()
		}
		c.on[ch] = appSPD
	}
	return c.route(ch, cmd)
}

// route gives cmd to the application selected on channel ch.
func (c *Card) route(ch int, cmd []byte) []byte {
	if c.on[ch] == appISDR {
		return c.isdr(cmd)
	}
	return c.spd.Process(ch, cmd)
}

// selectAID is the data field of a SELECT by AID (short Lc).
func selectAID(cmd []byte) ([]byte, bool) {
	if len(cmd) < 6 || int(cmd[4]) == 0 || len(cmd) < 5+int(cmd[4]) {
		return nil, false
	}
	return cmd[5 : 5+int(cmd[4])], true
}

// manageChannel answers MANAGE CHANNEL on channel ch (SPD-ESIM-1).
func (c *Card) manageChannel(ch int, cmd []byte) []byte {
	p1, p2 := cmd[2], cmd[3]
	switch p1 {
	case 0x00: // open
		if p2 == 0 {
			if len(cmd) != 5 || cmd[4] != 0x01 {
				return bytes.Clone(swWrongLength)
			}
			for n := 1; n < Channels; n++ {
				if !c.open[n] {
					c.openChannel(n)
					return []byte{byte(n), 0x90, 0x00}
				}
			}
			return bytes.Clone(swFuncNotSupp)
		}
		if len(cmd) != 4 {
			return bytes.Clone(swWrongLength)
		}
		if int(p2) >= Channels || (c.open[p2] && !c.bug("esim-reopen-resets")) {
			return bytes.Clone(swFuncNotSupp)
		}
		c.openChannel(int(p2))
		return bytes.Clone(swOK)
	case 0x80: // close
		if len(cmd) != 4 {
			return bytes.Clone(swWrongLength)
		}
		if p2 == 0 || int(p2) >= Channels || !c.open[p2] {
			return bytes.Clone(swFuncNotSupp)
		}
		c.open[p2] = false
		c.on[p2] = appSPD
		c.spd.Close(int(p2))
		return bytes.Clone(swOK)
	}
	return bytes.Clone(swIncorrectP1P2)
}

func (c *Card) openChannel(n int) {
	c.open[n] = true
	c.on[n] = appSPD
	c.spd.Close(n)
}

// isdrFCI is the ISD-R's answer to SELECT: an FCI naming its AID.
func isdrFCI() []byte {
	out := []byte{0x6F, byte(2 + len(ISDR)), 0x84, byte(len(ISDR))}
	out = append(out, ISDR...)
	return append(out, 0x90, 0x00)
}

// isdr answers the ISD-R's commands: ES10c GetEID (GSMA SGP.22 section
// 5.7.20: STORE DATA `80 E2 91 00` with `BF3E 03 5C 01 5A`) answers
// `BF3E 12 5A 10 EID`; anything else 6D00.
func (c *Card) isdr(cmd []byte) []byte {
	getEID := []byte{0x80, 0xE2, 0x91, 0x00, 0x06, 0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A}
	if bytes.HasPrefix(cmd, getEID) && len(cmd) <= len(getEID)+1 {
		out := []byte{0xBF, 0x3E, byte(2 + len(c.eid)), 0x5A, byte(len(c.eid))}
		out = append(out, c.eid...)
		return append(out, 0x90, 0x00)
	}
	switch {
	case cmd[0] != 0x00 && cmd[0] != 0x80:
		return []byte{0x6E, 0x00} // class not supported
	case cmd[0] == 0x00 && cmd[1] == 0xA4:
		return bytes.Clone(swFileNotFound)
	}
	return bytes.Clone(swInsNotSupported)
}

var _ emulator.Card = (*Card)(nil)
