package record_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/record"
)

// statusCard answers every command with 9000.
type statusCard struct{}

func (statusCard) Process(command []byte) []byte { return []byte{0x90, 0x00} }

// Record a live link, save the transcript, and play it back where the
// device is not at hand.
func ExampleRecord() {
	ctx := context.Background()
	rec := record.Record(link.NewDirect(statusCard{}, "ref", nil))
	l := rec.Link()
	l.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53})
	l.Exchange(ctx, []byte{0x00, 0xB0, 0x00, 0x00, 0x10})
	l.Close()

	var file bytes.Buffer
	rec.Transcript().WriteTo(&file)
	tr, err := record.ReadTranscript(&file)
	if err != nil {
		fmt.Println(err)
		return
	}
	pb := record.NewPlayback(tr)
	resp, err := pb.Exchange(ctx, []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53})
	fmt.Printf("%X %v\n", resp, err)
	fmt.Println(pb.Close())
	// Output:
	// 9000 <nil>
	// record: playback:ref: 1 of 2 recorded operations unused, next: 00B0000010 -> 9000
}
