package trace

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
)

// A trace of three links splits into three sections, each tagged with the
// case of its first record, that join back into the same bytes.
func TestSections(t *testing.T) {
	b := bytes.NewBuffer(linkTrace(t, "TC-PAY-001", "", "TC-APP-002"))
	s, err := Sections(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	var cases []string
	for _, x := range s {
		joined = append(joined, x.Bytes...)
		cases = append(cases, x.Case)
	}
	if len(s) != 3 || cases[0] != "TC-PAY-001" || cases[1] != "" || cases[2] != "TC-APP-002" || !bytes.Equal(joined, b.Bytes()) {
		t.Errorf("sections %q, joined equal %v", cases, bytes.Equal(joined, b.Bytes()))
	}
	if _, err := Sections(b.Bytes()[:b.Len()-3]); err == nil {
		t.Error("a truncated trace split without an error")
	}
	if _, err := Sections(b.Bytes()[4:]); err == nil {
		t.Error("a trace without a section header split without an error")
	}
}

// FuzzSections: any bytes either fail to split, or split into sections
// that each begin with a section header block and join back into exactly
// the bytes given (certify --procs and report --merge join them so).
func FuzzSections(f *testing.F) {
	b := linkTrace(f, "", "TC-PAY-001", "TC-APP-002")
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Sections(data)
		if err != nil {
			return
		}
		var joined []byte
		for i, x := range s {
			if len(x.Bytes) < 12 || binary.LittleEndian.Uint32(x.Bytes) != uint32(BlockSHB) {
				t.Fatalf("section %d does not begin with a section header block: % x", i, x.Bytes[:min(len(x.Bytes), 12)])
			}
			joined = append(joined, x.Bytes...)
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("%d sections join into %d bytes, not the %d given", len(s), len(joined), len(data))
		}
	})
}

// linkTrace is the trace of one link a case ID, each sending one SELECT
// as that case ("" outside any): one section each.
func linkTrace(tb testing.TB, ids ...string) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, id := range ids {
		l := WrapCase(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), &b, nil, func() string { return id })
		if _, err := l.Exchange(context.Background(), []byte{0x00, 0xA4, 0x04, 0x00}); err != nil {
			tb.Fatal(err)
		}
		l.Close()
	}
	return b.Bytes()
}
