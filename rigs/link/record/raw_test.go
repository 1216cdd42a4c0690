package record

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
)

// chainCard answers any command but GET RESPONSE with 3 bytes and 6102,
// and GET RESPONSE with the 2 bytes left and 9000.
type chainCard struct{}

func (chainCard) Process(cmd []byte) []byte {
	if len(cmd) >= 2 && cmd[1] == 0xC0 {
		return []byte{0xDD, 0xEE, 0x90, 0x00}
	}
	return []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02}
}

func TestRecordRawExchanges(t *testing.T) {
	ctx := context.Background()
	cmd := []byte{0x00, 0xCA, 0xDF, 0x11, 0x03}
	rec := Record(link.NewDirect(chainCard{}, "chain", nil))
	raw, ok := rec.Link().(link.RawExchanger)
	if !ok {
		t.Fatal("the recorded link of a Direct cannot exchange raw")
	}
	if _, err := raw.ExchangeRaw(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Link().Exchange(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	ev := rec.Events()
	if len(ev) != 2 || !ev[0].Raw || ev[1].Raw || !bytes.Equal(ev[0].Response, []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02}) {
		t.Fatalf("recorded %v", ev)
	}
	// The transcript keeps which exchange was raw.
	var buf bytes.Buffer
	if _, err := rec.Transcript().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTranscript(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Events[0].Raw || tr.Events[1].Raw {
		t.Fatalf("read back %v", tr.Events)
	}
	// Playback answers a raw exchange from a raw record only.
	pb := NewPlayback(tr)
	if resp, err := pb.ExchangeRaw(ctx, cmd); err != nil || !bytes.Equal(resp, ev[0].Response) {
		t.Fatalf("played back raw %X, %v", resp, err)
	}
	if resp, err := pb.Exchange(ctx, cmd); err != nil || !bytes.Equal(resp, ev[1].Response) {
		t.Fatalf("played back %X, %v", resp, err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	pb = NewPlayback(tr)
	if _, err := pb.Exchange(ctx, cmd); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a resolved exchange played back from a raw record: %v", err)
	}
}

// A link without raw exchanges gives a recorded link without them.
func TestRecordNoRawWithoutIt(t *testing.T) {
	rec := Record(NewPlayback(&Transcript{}))
	if _, ok := rec.Link().(link.RawExchanger); !ok {
		t.Fatal("a playback's recorded link cannot exchange raw")
	}
	rec = Record(struct{ link.Link }{link.NewDirect(chainCard{}, "chain", nil)})
	if _, ok := rec.Link().(link.RawExchanger); ok {
		t.Fatal("the recorded link claims a raw exchange its link lacks")
	}
}
