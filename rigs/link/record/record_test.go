package record

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
)

func TestRecordWriteReadPlayback(t *testing.T) {
	direct := link.NewDirect(&linktest.ScriptCard{}, "ref", linktest.ScriptATR)
	rec := Record(direct)
	live := linktest.Script(t, rec.Link())
	want := linktest.ScriptWant()
	if strings.Join(live, "|") != strings.Join(want, "|") {
		t.Fatalf("live script = %q, want %q", live, want)
	}
	if n := len(rec.Events()); n != 8 {
		t.Fatalf("recorded %d operations, want 8", n)
	}

	path := filepath.Join(t.TempDir(), "ref.jsonl")
	if err := rec.Transcript().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	pb, err := LoadPlayback(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pb.ATR(), linktest.ScriptATR) || pb.String() != "playback:ref" {
		t.Fatalf("playback ATR %X name %q", pb.ATR(), pb.String())
	}
	played := linktest.Script(t, pb)
	if strings.Join(played, "|") != strings.Join(live, "|") {
		t.Fatalf("playback = %q, live = %q", played, live)
	}
	if pb.Remaining() != 0 {
		t.Fatalf("Remaining() = %d", pb.Remaining())
	}
	if err := pb.Close(); err != nil {
		t.Fatalf("Close after a complete playback: %v", err)
	}
	// The recorded error still is link.ErrRemoved.
	tr, err := LoadTranscript(path)
	if err != nil {
		t.Fatal(err)
	}
	if e := tr.Events[2]; !errors.Is(e.Err, link.ErrRemoved) || e.Err.Error() != link.ErrRemoved.Error() {
		t.Fatalf("recorded tear reads back as %v", e.Err)
	}
	if err := rec.Link().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Exchange(context.Background(), linktest.ScriptSelect); !errors.Is(err, link.ErrClosed) {
		t.Fatal("closing the recorded link left the live link open")
	}
}

func TestPlaybackMismatch(t *testing.T) {
	tr := &Transcript{Link: "x", Events: []Event{
		{Op: OpExchange, Command: linktest.ScriptSelect, Response: []byte{0x90, 0x00}},
		{Op: OpExchange, Command: linktest.ScriptEcho, Response: []byte{0x01, 0x90, 0x00}},
	}}
	ctx := context.Background()

	pb := NewPlayback(tr)
	if _, err := pb.Exchange(ctx, linktest.ScriptEcho); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong first command: %v", err)
	}
	// The failure sticks, also for the command that would have matched.
	if _, err := pb.Exchange(ctx, linktest.ScriptSelect); !errors.Is(err, ErrMismatch) {
		t.Fatalf("command after a mismatch: %v", err)
	}
	if err := pb.Close(); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Close after a mismatch: %v", err)
	}

	pb = NewPlayback(tr)
	if _, err := pb.Exchange(ctx, linktest.ScriptSelect); err != nil {
		t.Fatal(err)
	}
	err := pb.Close()
	if err == nil || !strings.Contains(err.Error(), "1 of 2 recorded operations unused") {
		t.Fatalf("Close with one unused exchange: %v", err)
	}
	if _, err := pb.Exchange(ctx, linktest.ScriptEcho); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Exchange after Close: %v", err)
	}

	pb = NewPlayback(tr)
	if _, err := pb.Reset(ctx, true); !errors.Is(err, ErrMismatch) {
		t.Fatalf("reset where an exchange was recorded: %v", err)
	}

	pb = NewPlayback(&Transcript{})
	if _, err := pb.Exchange(ctx, linktest.ScriptSelect); !errors.Is(err, ErrMismatch) {
		t.Fatalf("exchange beyond the recording: %v", err)
	}

	pb = NewPlayback(tr)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := pb.Exchange(cctx, linktest.ScriptSelect); !errors.Is(err, context.Canceled) {
		t.Fatalf("exchange with a cancelled context: %v", err)
	}
	if pb.Remaining() != 2 {
		t.Fatal("a cancelled exchange consumed a recorded one")
	}
}

// bareLink has no optional abilities.
type bareLink struct{}

func (bareLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return nil, context.DeadlineExceeded
}
func (bareLink) String() string { return "bare" }
func (bareLink) Close() error   { return nil }

func TestRecorderWithoutAbilities(t *testing.T) {
	rec := Record(bareLink{})
	l := rec.Link()
	if _, ok := l.(link.Resetter); ok {
		t.Error("the recorded link of a link without Resetter claims to reset")
	}
	if _, ok := l.(link.PowerCycler); ok {
		t.Error("the recorded link of a link without PowerCycler claims to cycle power")
	}
	if _, ok := l.(link.ATRer); ok {
		t.Error("the recorded link of a link without ATRer claims an ATR")
	}
	if _, ok := link.As[link.Resetter](l); ok {
		t.Error("link.As finds a Resetter under the recorded link of a link without one")
	}
	ctx := context.Background()
	if _, err := l.Exchange(ctx, linktest.ScriptSelect); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := rec.Transcript().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"is":"deadline"`) {
		t.Fatalf("transcript does not classify the deadline error:\n%s", buf.String())
	}
	tr, err := ReadTranscript(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(tr.Events[0].Err, context.DeadlineExceeded) {
		t.Fatalf("read back %v", tr.Events[0].Err)
	}
}

// resetOnly can reset but neither cycle power nor tell an ATR.
type resetOnly struct {
	bareLink
	resets int
}

func (r *resetOnly) Reset(ctx context.Context, cold bool) ([]byte, error) {
	r.resets++
	return linktest.ScriptATR, nil
}

// wrapper is a link that wraps another and adds nothing.
type wrapper struct{ link.Link }

func (w wrapper) Unwrap() link.Link { return w.Link }

// The recorded link has exactly the abilities found under any wrappers,
// and what it does with them is recorded.
func TestRecorderExactAbilities(t *testing.T) {
	inner := &resetOnly{}
	rec := Record(wrapper{inner})
	l := rec.Link()
	r, ok := l.(link.Resetter)
	if !ok {
		t.Fatal("the recorded link of a resetting link cannot reset")
	}
	if _, ok := l.(link.PowerCycler); ok {
		t.Error("the recorded link claims power cycling its link lacks")
	}
	if _, ok := l.(link.ATRer); ok {
		t.Error("the recorded link claims an ATR its link lacks")
	}
	if _, err := r.Reset(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	ev := rec.Events()
	if inner.resets != 1 || len(ev) != 1 || ev[0].Op != OpResetCold || !bytes.Equal(ev[0].ATR, linktest.ScriptATR) {
		t.Fatalf("reset reached the link %d times, recorded %v", inner.resets, ev)
	}
	if u, ok := l.(link.Unwrapper); !ok || u.Unwrap() != (wrapper{inner}) {
		t.Fatal("the recorded link does not unwrap to the link it wraps")
	}

	full := Record(link.NewDirect(&linktest.ScriptCard{}, "ref", linktest.ScriptATR)).Link()
	_, rs := full.(link.Resetter)
	_, pc := full.(link.PowerCycler)
	a, at := full.(link.ATRer)
	if !rs || !pc || !at || !bytes.Equal(a.ATR(), linktest.ScriptATR) {
		t.Fatalf("the recorded link of link.Direct: Resetter %v, PowerCycler %v, ATRer %v", rs, pc, at)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write(b []byte) (int, error) { return 0, errors.New("disk full") }

func TestStreamJSONL(t *testing.T) {
	var buf bytes.Buffer
	rec := Stream(link.NewDirect(&linktest.ScriptCard{}, "ref", linktest.ScriptATR), NewJSONL(&buf))
	live := linktest.Script(t, rec.Link())
	if rec.Events() != nil {
		t.Fatal("Stream kept operations in memory")
	}
	if err := rec.Link().Close(); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTranscript(&buf)
	if err != nil {
		t.Fatal(err)
	}
	played := linktest.Script(t, NewPlayback(tr))
	if strings.Join(played, "|") != strings.Join(live, "|") || tr.Link != "ref" || !bytes.Equal(tr.ATR, linktest.ScriptATR) {
		t.Fatalf("streamed transcript plays %q, live %q", played, live)
	}

	bad := Stream(link.NewDirect(&linktest.ScriptCard{}, "ref", linktest.ScriptATR), NewJSONL(failWriter{}))
	if _, err := bad.Link().Exchange(context.Background(), linktest.ScriptSelect); err != nil {
		t.Fatalf("a failing encoder disturbed the link: %v", err)
	}
	if err := bad.Link().Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close with a failing encoder: %v", err)
	}
}

func TestTranscriptFormat(t *testing.T) {
	at := time.Date(2026, 11, 26, 1, 2, 3, 4000, time.UTC)
	tr := &Transcript{Link: "usb-emu", ATR: linktest.ScriptATR, Events: []Event{
		{Op: OpExchange, At: at, Duration: 112 * time.Microsecond, Command: []byte{0x00, 0xA4, 0x04, 0x00, 0x02, 0xF0, 0x53},
			Response: []byte{0x90, 0x00}, Case: "TC-PAY-001"},
		{Op: OpResetCold, At: at, Duration: time.Millisecond, ATR: linktest.ScriptATR},
	}}
	var buf bytes.Buffer
	if _, err := tr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	want := `{"transcript":"spdlab-link/1","link":"usb-emu","atr":"3B80800101"}
{"at":"2026-11-26T01:02:03.000004Z","us":112,"command":"00A4040002F053","response":"9000","case":"TC-PAY-001"}
{"op":"reset-cold","at":"2026-11-26T01:02:03.000004Z","us":1000,"atr":"3B80800101"}
`
	if buf.String() != want {
		t.Fatalf("transcript:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestReadTranscriptErrors(t *testing.T) {
	header := `{"transcript":"spdlab-link/1","link":"x"}` + "\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "no header"},
		{"no header", `{"command":"00","response":"9000"}`, "header names format"},
		{"other format", `{"transcript":"pcap"}`, "header names format"},
		{"not JSON", header + "hello", "line 2"},
		{"two values", header + `{"command":"00A4","response":"9000"} {}`, "more than one"},
		{"unknown field", header + `{"cmd":"00"}`, "unknown field"},
		{"bad hex", header + `{"command":"0G","response":"9000"}`, "command"},
		{"odd hex", header + `{"command":"00A","response":"9000"}`, "command"},
		{"unknown op", header + `{"op":"dance"}`, "unknown op"},
		{"no command", header + `{"response":"9000"}`, "without a command"},
		{"short response", header + `{"command":"00","response":"90"}`, "at least 2 bytes"},
		{"reset with command", header + `{"op":"reset-warm","command":"00"}`, "with a command"},
		{"bad time", header + `{"at":"yesterday","command":"00","response":"9000"}`, "at:"},
		{"negative duration", header + `{"us":-1,"command":"00","response":"9000"}`, "negative"},
		{"unknown kind", header + `{"command":"00","error":"x","is":"gone"}`, "unknown error kind"},
		{"kind without error", header + `{"command":"00","response":"9000","is":"removed"}`, `"is" without`},
		{"second header", header + header, "second header"},
		{"bad header atr", `{"transcript":"spdlab-link/1","atr":"Z"}`, "atr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadTranscript(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadTranscript error = %v, want one containing %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "record: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
	// Blank lines are allowed.
	tr, err := ReadTranscript(strings.NewReader("\n" + header + "\n\n" + `{"command":"00","error":"boom"}` + "\n"))
	if err != nil || len(tr.Events) != 1 || tr.Events[0].Err.Error() != "boom" {
		t.Fatalf("ReadTranscript with blank lines = %+v, %v", tr, err)
	}
}

func FuzzReadTranscript(f *testing.F) {
	f.Add([]byte(`{"transcript":"spdlab-link/1","link":"ref","atr":"3B80800101"}
{"at":"2026-11-26T01:02:03.000004Z","us":112,"command":"00A4040002F053","response":"9000","case":"TC-PAY-001"}
{"command":"80300000","error":"link: card removed or unpowered during exchange","is":"removed"}
{"op":"reset-cold","atr":"3B80800101"}
`))
	f.Add([]byte(`{"transcript":"spdlab-link/1"}` + "\n" + `{"op":"power-off"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ReadTranscript(bytes.NewReader(in))
		if err != nil {
			return
		}
		// What parses writes back and parses to the same operations.
		var buf bytes.Buffer
		if _, err := tr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadTranscript(&buf)
		if err != nil {
			t.Fatalf("rewritten transcript does not parse: %v\n%s", err, buf.String())
		}
		if len(back.Events) != len(tr.Events) || back.Link != tr.Link || !bytes.Equal(back.ATR, tr.ATR) {
			t.Fatalf("round trip changed the transcript")
		}
		for i := range tr.Events {
			if back.Events[i].String() != tr.Events[i].String() {
				t.Fatalf("operation %d: %s became %s", i, tr.Events[i], back.Events[i])
			}
		}
		// Playing it back in order consumes it.
		pb := NewPlayback(tr)
		ctx := context.Background()
		for _, e := range tr.Events {
			switch e.Op {
			case OpExchange:
				pb.Exchange(ctx, e.Command)
			case OpResetWarm, OpResetCold:
				pb.Reset(ctx, e.Op == OpResetCold)
			case OpPowerOff:
				pb.PowerOff(ctx)
			case OpPowerOn:
				pb.PowerOn(ctx)
			}
		}
		if err := pb.Close(); err != nil {
			t.Fatalf("playing the transcript back in order: %v", err)
		}
	})
}
