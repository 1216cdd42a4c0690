package fault_test

import (
	"fmt"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/fault"
)

// The timing of a SELECT on the emulated SIM, read from its ATR, and of a
// command that makes the card compute for 4 s.
func ExampleTiming_Exchange() {
	t, err := fault.TimingFromATR(emulator.ATR(emulator.FormSIM), 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(t.Protocol, "etu", t.ETU(), "BWT", t.BWT(), "CWT", t.CWT())
	selectAID := []byte{0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}
	et, _ := t.Exchange(selectAID, []byte{0x90, 0x00}, 0)
	fmt.Println("SELECT:", et.Total, et.Characters, "characters")
	et, _ = t.Exchange(selectAID, []byte{0x90, 0x00}, 4*time.Second)
	fmt.Println("slow:", et.Total, et.Extensions, "WTX requests")
	// Output:
	// T=1 etu 104.167µs BWT 1.601145833s CWT 4.479167ms
	// SELECT: 29.583333ms 23 characters
	// slow: 4.027291667s 2 WTX requests
}
