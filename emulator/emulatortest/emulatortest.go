// Package emulatortest holds the test doubles the emulators' tests share:
// a tiny card application whose answers show what a transport did to each
// command (ran it once, twice, never), independent of the reference device.
package emulatortest

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/spdlab/spdlab/emulator"
)

// CounterCard is a tiny card application for transport tests. It records
// how often each command ran, so a test can show that every command was
// executed exactly once.
//
//	INS 10  COUNT  data: 4-byte id     -> id || executions of id (4 bytes) || 9000
//	INS 20  SLOW   data: 2-byte ms     -> 9000 after sleeping that long
//	INS 30  TEAR                       -> no answer: power lost mid-command
//	INS 40  ECHO   data: any           -> data || 9000
//	INS 50  BIG    P1P2: length n      -> n pattern bytes || command length (4 bytes) || 9000
//	other INS                          -> 6D00; fewer than 4 bytes -> 6700
type CounterCard struct {
	mu       sync.Mutex
	runs     map[uint32]int
	powerOns int
	resets   int
	powered  bool
}

var _ emulator.Card = (*CounterCard)(nil)

// NewCounterCard returns a CounterCard that has run nothing.
func NewCounterCard() *CounterCard { return &CounterCard{runs: map[uint32]int{}} }

// Process implements emulator.Card.
func (c *CounterCard) Process(cmd []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}
	}
	data := []byte(nil)
	if len(cmd) > 5 {
		data = cmd[5:]
		if n := int(cmd[4]); n < len(data) {
			data = data[:n]
		}
	}
	switch cmd[1] {
	case 0x10:
		if len(data) != 4 {
			return []byte{0x67, 0x00}
		}
		id := binary.BigEndian.Uint32(data)
		c.runs[id]++
		out := binary.BigEndian.AppendUint32(append([]byte(nil), data...), uint32(c.runs[id]))
		return append(out, 0x90, 0x00)
	case 0x20:
		if len(data) == 2 {
			ms := binary.BigEndian.Uint16(data)
			c.mu.Unlock()
			time.Sleep(time.Duration(ms) * time.Millisecond)
			c.mu.Lock()
		}
		return []byte{0x90, 0x00}
	case 0x30:
		return nil
	case 0x40:
		return append(append([]byte(nil), data...), 0x90, 0x00)
	case 0x50:
		return BigResponse(int(binary.BigEndian.Uint16(cmd[2:4])), len(cmd))
	}
	return []byte{0x6D, 0x00}
}

// PowerOn implements emulator.Card.
func (c *CounterCard) PowerOn() { c.mu.Lock(); c.powerOns++; c.powered = true; c.mu.Unlock() }

// PowerOff implements emulator.Card.
func (c *CounterCard) PowerOff() { c.mu.Lock(); c.powered = false; c.mu.Unlock() }

// Reset implements emulator.Card.
func (c *CounterCard) Reset() { c.mu.Lock(); c.resets++; c.mu.Unlock() }

// Executions is how often COUNT with id ran.
func (c *CounterCard) Executions(id uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

// CountCommand is the COUNT command for id.
func CountCommand(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0x80, 0x10, 0x00, 0x00, 0x04}, id)
}

// BigResponse is what BIG answers for length n to a command of cmdLen bytes.
func BigResponse(n, cmdLen int) []byte {
	out := make([]byte, n, n+6)
	for i := range out {
		out[i] = byte(i % 251)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(cmdLen))
	return append(out, 0x90, 0x00)
}

// Resets is how many warm resets the card had.
func (c *CounterCard) Resets() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}

// Powered reports whether the card has power (PowerOn after any PowerOff).
func (c *CounterCard) Powered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.powered
}
