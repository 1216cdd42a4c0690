package dut

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
)

func init() {
	openers["faulty"] = openFaulty
}

// FaultyModes are the deliberate non-conformances of the faulty:MODE DUT,
// a reference device with one defect, for checking that the conformance
// suite fails a device that has it.
var FaultyModes = map[string]string{
	"status-9000":   "answers 9000 where the device refused a command",
	"stale-result":  "answers every PAY after the first with the first payment's signed result",
	"stale-balance": "reports, after its first payment, the balance it had before it",
}

// faultyCard wraps a device with one defect.
type faultyCard struct {
	emulator.Card
	mode string

	mu         sync.Mutex
	firstPay   []byte
	oldBalance []byte
}

func (c *faultyCard) Process(cmd []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	isPay := len(cmd) >= 4 && cmd[0] == spd.CLAProprietary && spd.INS(cmd[1]) == spd.INSPay
	if c.mode == "stale-result" && isPay && c.firstPay != nil {
		return bytes.Clone(c.firstPay)
	}
	getBalance := spd.GetData(spd.TagBalance).MustBytes()
	if c.mode == "stale-balance" && isPay && c.oldBalance == nil {
		c.oldBalance = c.read(getBalance)
	}
	if c.mode == "stale-balance" && c.oldBalance != nil && bytes.Equal(cmd, getBalance) {
		return bytes.Clone(c.oldBalance)
	}
	resp := c.Card.Process(cmd)
	if len(resp) < 2 {
		return resp
	}
	sw := resp[len(resp)-2:]
	switch c.mode {
	case "status-9000":
		if !(sw[0] == 0x90 && sw[1] == 0x00) && sw[0] != 0x61 && sw[0] != 0x6C {
			return []byte{0x90, 0x00}
		}
	case "stale-result":
		if isPay && sw[0] == 0x90 {
			c.firstPay = bytes.Clone(resp)
		}
	}
	return resp
}

func (c *faultyCard) read(cmd []byte) []byte {
	resp := c.Card.Process(cmd)
	if len(resp) < 2 || resp[len(resp)-2] != 0x90 {
		return nil
	}
	return resp
}

// openFaulty serves a new reference device with the defect MODE in
// process.
func openFaulty(ctx context.Context, d *DUT, mode string, opt Options) error {
	if _, ok := FaultyModes[mode]; !ok {
		return fmt.Errorf("dut: faulty needs a mode: status-9000, stale-result or stale-balance, not %q", mode)
	}
	dev, err := newDevice(d, opt)
	if err != nil {
		return err
	}
	d.Link = link.NewDirect(&faultyCard{Card: dev, mode: mode}, "faulty:"+mode, emulator.ATR(emulator.FormSIM))
	return nil
}
