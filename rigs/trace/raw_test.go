package trace

import (
	"bytes"
	"context"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
)

// chainCard answers any command with 3 bytes and 6102.
type chainCard struct{}

func (chainCard) Process(cmd []byte) []byte { return []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02} }

// A raw exchange is traced with its 61xx as the device answered it, and
// marked so that a replay answers it to a raw exchange only.
func TestTraceKeepsRawExchanges(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	l := Wrap(link.NewDirect(chainCard{}, "chain", nil), &buf)
	raw, ok := l.(link.RawExchanger)
	if !ok {
		t.Fatal("a traced Direct cannot exchange raw")
	}
	cmd := []byte{0x00, 0xCA, 0xDF, 0x11, 0x03}
	if _, err := raw.ExchangeRaw(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTranscript(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Events) != 1 || !tr.Events[0].Raw || !bytes.Equal(tr.Events[0].Response, []byte{0xAA, 0xBB, 0xCC, 0x61, 0x02}) {
		t.Fatalf("read back %v", tr.Events)
	}
	pb, err := NewReplayer(bytes.NewReader(buf.Bytes()), "chain")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := pb.ExchangeRaw(ctx, cmd); err != nil || !bytes.Equal(resp, tr.Events[0].Response) {
		t.Fatalf("replayed %X, %v", resp, err)
	}
}
