package trace_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/trace"
)

// statusCard answers every command with 9000.
type statusCard struct{}

func (statusCard) Process(command []byte) []byte { return []byte{0x90, 0x00} }

// Record a session as a GSMTAP trace, then replay it as a link.
func ExampleWrap() {
	var pcapng bytes.Buffer
	live := trace.Wrap(link.NewDirect(statusCard{}, "ref", []byte{0x3B, 0x00}), &pcapng)
	ctx := context.Background()
	live.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53})
	live.Close()

	replay, err := trace.NewReplayer(&pcapng, "replay:example")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := replay.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53})
	fmt.Printf("ATR %X, response %X, %v\n", replay.ATR(), resp, err)
	_, err = replay.Exchange(ctx, []byte{0x00, 0xB0, 0x00, 0x00, 0x10})
	fmt.Println(err)
	// Output:
	// ATR 3B00, response 9000, <nil>
	// record: playback mismatch: command 00B0000010 after all 1 recorded operations
}
