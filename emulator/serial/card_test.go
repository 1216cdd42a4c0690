package serial

import (
	"encoding/binary"
	"sync"
	"time"
)

// counterCard is a tiny card application for transport tests. It records
// how often each command ran, so a test can show that every command was
// executed exactly once.
//
//	INS 10  COUNT  data: 4-byte id     -> id || executions of id (4 bytes) || 9000
//	INS 20  SLOW   data: 2-byte ms     -> 9000 after sleeping that long
//	INS 30  TEAR                       -> no answer: power lost mid-command
//	INS 40  ECHO   data: any           -> data || 9000
//	other INS                          -> 6D00; fewer than 4 bytes -> 6700
type counterCard struct {
	mu       sync.Mutex
	runs     map[uint32]int
	powerOns int
	resets   int
	powered  bool
}

func newCounterCard() *counterCard { return &counterCard{runs: map[uint32]int{}} }

func (c *counterCard) Process(cmd []byte) []byte {
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
	}
	return []byte{0x6D, 0x00}
}

func (c *counterCard) PowerOn()  { c.mu.Lock(); c.powerOns++; c.powered = true; c.mu.Unlock() }
func (c *counterCard) PowerOff() { c.mu.Lock(); c.powered = false; c.mu.Unlock() }
func (c *counterCard) Reset()    { c.mu.Lock(); c.resets++; c.mu.Unlock() }

func (c *counterCard) executions(id uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

func countCommand(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0x80, 0x10, 0x00, 0x00, 0x04}, id)
}

func (c *counterCard) resetCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}
