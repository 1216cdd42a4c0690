package trace

import (
	"bytes"
	"context"
	"testing"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
)

// A trace of three links splits into three sections, each tagged with the
// case of its first record, that join back into the same bytes.
func TestSections(t *testing.T) {
	var b bytes.Buffer
	for _, id := range []string{"TC-PAY-001", "", "TC-APP-002"} {
		l := WrapCase(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), &b, nil, func() string { return id })
		if _, err := l.Exchange(context.Background(), []byte{0x00, 0xA4, 0x04, 0x00}); err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
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
