package dut

import "github.com/spdlab/spdlab/emulator/sim"

// vpcdSlot is one card slot of the vpcd reader driver: the card side
// connects to address, PC/SC programs see reader.
type vpcdSlot struct{ address, reader string }

// vpcdSlots are the slots of Debian's vpcd reader ("Virtual PCD", ports
// 35963 and 35964), the ones pcsc-emu uses in turn. vpcd keeps its slots in
// driver-wide state, so pcscd cannot load a second vpcd reader: two cards
// at once is the most. The SIM emulator's and PC/SC rig's own tests use the
// second slot; a file lock per slot (emulator/sim) makes them take turns.
var vpcdSlots = []vpcdSlot{
	{sim.DefaultAddress, sim.DefaultReaderName},
	{"127.0.0.1:35964", "Virtual PCD 00 01"},
}

// PCSCEmuSlots is how many pcsc-emu devices can be open at once.
var PCSCEmuSlots = len(vpcdSlots)
