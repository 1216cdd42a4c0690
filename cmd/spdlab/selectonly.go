package main

import (
	"bytes"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/spd"
)

// selectOnlyCard answers SELECT of the SPD application as a blank device
// would and every other command with 6D00. `spdlab emulate --app
// select-only` serves it so that a lab can see it is never certified.
type selectOnlyCard struct{}

var _ emulator.Card = selectOnlyCard{}

func (selectOnlyCard) Process(command []byte) []byte {
	if len(command) >= 5 && command[0] == 0x00 && command[1] == 0xA4 && command[2] == 0x04 &&
		int(command[4]) == len(spd.AID) && len(command) >= 5+len(spd.AID) && bytes.Equal(command[5:5+len(spd.AID)], spd.AID) {
		return append(spd.SelectResponse(spd.SelectResult{AID: spd.AID, State: spd.StateBlank}), 0x90, 0x00)
	}
	return []byte{0x6D, 0x00}
}

func (selectOnlyCard) PowerOn()  {}
func (selectOnlyCard) PowerOff() {}
func (selectOnlyCard) Reset()    {}
