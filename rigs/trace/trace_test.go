package trace

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/linktest"
	"github.com/spdlab/spdlab/rigs/link/record"
)

// The script of rigs/link/linktest, recorded as a trace.
var (
	testATR   = linktest.ScriptATR
	selectCmd = linktest.ScriptSelect
	echoCmd   = linktest.ScriptEcho
	tearCmd   = linktest.ScriptTear
)

func bytesHex(b []byte) string { return fmt.Sprintf("%X", b) }

func writeTrace(t *testing.T) (string, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ref.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := Wrap(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), f)
	live := linktest.Script(t, tr)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, live
}

func TestWrapAndReplay(t *testing.T) {
	path, live := writeTrace(t)
	want := linktest.ScriptWant()
	if strings.Join(live, "|") != strings.Join(want, "|") {
		t.Fatalf("live = %q, want %q", live, want)
	}
	l, err := Replay(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.(link.ATRer).ATR(); !bytes.Equal(got, testATR) {
		t.Fatalf("replayed ATR %X", got)
	}
	if l.String() != "replay:"+path {
		t.Fatalf("String() = %q", l.String())
	}
	replayed := linktest.Script(t, l)
	if strings.Join(replayed, "|") != strings.Join(live, "|") {
		t.Fatalf("replay = %q\nlive   = %q", replayed, live)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after a complete replay: %v", err)
	}
	// The recorded tear still is link.ErrRemoved.
	l, _ = Replay(path)
	ctx := context.Background()
	l.Exchange(ctx, selectCmd)
	l.Exchange(ctx, echoCmd)
	if _, err := l.Exchange(ctx, tearCmd); !errors.Is(err, link.ErrRemoved) {
		t.Fatalf("replayed tear: %v", err)
	}
}

func TestReplayMismatch(t *testing.T) {
	path, _ := writeTrace(t)
	ctx := context.Background()

	l, _ := Replay(path)
	if _, err := l.Exchange(ctx, echoCmd); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong first command: %v", err)
	}
	if _, err := l.Exchange(ctx, selectCmd); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a mismatch must stick: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Close after a mismatch: %v", err)
	}

	l, _ = Replay(path)
	// A prefix of the recorded command is not the command.
	if _, err := l.Exchange(ctx, selectCmd[:5]); !errors.Is(err, ErrMismatch) {
		t.Fatalf("truncated command: %v", err)
	}

	l, _ = Replay(path)
	if _, err := l.(link.Resetter).Reset(ctx, true); !errors.Is(err, ErrMismatch) {
		t.Fatalf("reset where an APDU was recorded: %v", err)
	}

	l, _ = Replay(path)
	if _, err := l.Exchange(ctx, selectCmd); err != nil {
		t.Fatal(err)
	}
	err := l.Close()
	if err == nil || !strings.Contains(err.Error(), "6 of 7 recorded operations unused") {
		t.Fatalf("Close with unused records: %v", err)
	}
	if _, err := l.Exchange(ctx, echoCmd); !errors.Is(err, link.ErrClosed) {
		t.Fatalf("Exchange after Close: %v", err)
	}

	if _, err := Replay(filepath.Join(t.TempDir(), "absent.pcapng")); err == nil {
		t.Fatal("Replay of a missing file succeeded")
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(b []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(b), nil
}

func TestTracerWriteError(t *testing.T) {
	// SHB, IDB and the ATR record succeed; the first APDU record fails.
	tr := Wrap(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), &failingWriter{after: 3})
	resp, err := tr.Exchange(context.Background(), echoCmd)
	if err != nil || bytesHex(resp) != "CAFE9000" {
		t.Fatalf("a trace write error disturbed the exchange: %X, %v", resp, err)
	}
	if err := tr.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close did not report the write error: %v", err)
	}
}

// bareLink has no optional abilities.
type bareLink struct{}

func (bareLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return []byte{0x90, 0}, nil
}
func (bareLink) String() string { return "bare" }
func (bareLink) Close() error   { return nil }

// A trace of a link without an ATR (the recorded link has exactly its
// abilities: rigs/link/record) replays without one.
func TestTraceWithoutATR(t *testing.T) {
	var buf bytes.Buffer
	tr := Wrap(bareLink{}, &buf)
	if _, ok := tr.(link.ATRer); ok {
		t.Error("the trace of a link without ATRer claims an ATR")
	}
	if _, err := tr.Exchange(context.Background(), []byte{0, 0xB0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	r, err := NewReplayer(&buf, "bare")
	if err != nil {
		t.Fatal(err)
	}
	if r.ATR() != nil || r.Remaining() != 1 {
		t.Fatalf("replayer of an ATR-less trace: ATR %X, %d records", r.ATR(), r.Remaining())
	}
}

// pcapngBuilder writes pcapng by hand in either byte order, to check the
// reader against files it did not write.
type pcapngBuilder struct {
	order interface {
		binary.ByteOrder
		binary.AppendByteOrder
	}
	buf bytes.Buffer
}

func (b *pcapngBuilder) block(typ uint32, body []byte) {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	total := uint32(12 + len(body))
	var h [8]byte
	b.order.PutUint32(h[:4], typ)
	b.order.PutUint32(h[4:], total)
	b.buf.Write(h[:])
	b.buf.Write(body)
	b.buf.Write(h[4:8])
}

func (b *pcapngBuilder) option(dst []byte, code uint16, v []byte) []byte {
	dst = b.order.AppendUint16(dst, code)
	dst = b.order.AppendUint16(dst, uint16(len(v)))
	dst = append(dst, v...)
	for len(dst)%4 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

func (b *pcapngBuilder) shb() {
	body := b.order.AppendUint32(nil, byteOrderMagic)
	body = b.order.AppendUint16(body, 1)
	body = b.order.AppendUint16(body, 0)
	body = b.order.AppendUint64(body, ^uint64(0))
	b.block(uint32(BlockSHB), body)
}

func (b *pcapngBuilder) idb(lt LinkType, opts ...[]byte) {
	body := b.order.AppendUint16(nil, uint16(lt))
	body = b.order.AppendUint16(body, 0)
	body = b.order.AppendUint32(body, 65535)
	for _, o := range opts {
		body = append(body, o...)
	}
	if len(opts) > 0 {
		body = append(body, 0, 0, 0, 0)
	}
	b.block(uint32(BlockIDB), body)
}

func (b *pcapngBuilder) epb(iface uint32, ts uint64, data []byte, comments ...string) {
	body := b.order.AppendUint32(nil, iface)
	body = b.order.AppendUint32(body, uint32(ts>>32))
	body = b.order.AppendUint32(body, uint32(ts))
	body = b.order.AppendUint32(body, uint32(len(data)))
	body = b.order.AppendUint32(body, uint32(len(data)))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	for _, c := range comments {
		body = b.option(body, optComment, []byte(c))
	}
	if len(comments) > 0 {
		body = append(body, 0, 0, 0, 0)
	}
	b.block(uint32(BlockEPB), body)
}

func ethernetGSMTAP(rec SIMRecord) []byte {
	frame := make([]byte, 12, 64)
	frame = append(frame, 0x08, 0x00)
	return appendIPv4GSMTAP(frame, rec, 7)
}

func TestPcapngReaderBothByteOrders(t *testing.T) {
	type byteOrder interface {
		binary.ByteOrder
		binary.AppendByteOrder
	}
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			b := &pcapngBuilder{order: order}
			b.shb()
			b.block(0x00000BAD, []byte{1, 2, 3, 4}) // unknown block: skipped
			b.idb(LinkTypeEthernet)                 // default resolution: microseconds
			b.idb(LinkTypeIPv4, b.option(nil, optIfTSResol, []byte{0x80 | 10}), b.option(nil, optIfTSOffset, order.AppendUint64(nil, 100)))
			b.epb(0, 1_500_000, ethernetGSMTAP(SIMRecord{SIMATR, testATR}))
			b.epb(1, 3<<10|512, appendIPv4GSMTAP(nil, SIMRecord{SIMAPDU, []byte{0, 0xB0, 0, 0, 0x90, 0}}, 1), "first", "second")
			// A second section in the other byte order.
			other := &pcapngBuilder{order: binary.BigEndian}
			if order.String() == binary.BigEndian.String() {
				other.order = binary.LittleEndian
			}
			other.shb()
			other.idb(LinkTypeRaw, other.option(nil, optIfTSResol, []byte{3}))
			other.epb(0, 2500, []byte{0x60, 0, 0, 0}) // IPv6: not a SIM record
			spb := other.order.AppendUint32(nil, 3)
			other.block(uint32(BlockSPB), append(spb, 0xAA, 0xBB, 0xCC, 0))
			b.buf.Write(other.buf.Bytes())

			r := NewPcapngReader(&b.buf)
			var pkts []Packet
			for {
				p, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				pkts = append(pkts, p)
			}
			if len(pkts) != 4 {
				t.Fatalf("read %d packets, want 4", len(pkts))
			}
			if p := pkts[0]; p.LinkType != LinkTypeEthernet || !p.Time.Equal(time.Unix(1, 500_000_000)) {
				t.Fatalf("packet 1: %v at %v", p.LinkType, p.Time)
			}
			rec, err := ParseSIMRecord(pkts[0].LinkType, pkts[0].Data)
			if err != nil || rec.SubType != SIMATR || !bytes.Equal(rec.Payload, testATR) {
				t.Fatalf("packet 1 record %v %X, %v", rec.SubType, rec.Payload, err)
			}
			if p := pkts[1]; p.Interface != 1 || !p.Time.Equal(time.Unix(103, 500_000_000)) || strings.Join(p.Comments, ",") != "first,second" {
				t.Fatalf("packet 2: interface %d at %v comments %q", p.Interface, p.Time, p.Comments)
			}
			if p := pkts[2]; p.LinkType != LinkTypeRaw || !p.Time.Equal(time.Unix(2, 500_000_000)) {
				t.Fatalf("packet 3 of section 2: %v at %v", p.LinkType, p.Time)
			}
			if _, err := ParseSIMRecord(pkts[2].LinkType, pkts[2].Data); !errors.Is(err, errNotSIM) {
				t.Fatalf("IPv6 packet: %v", err)
			}
			if p := pkts[3]; !bytes.Equal(p.Data, []byte{0xAA, 0xBB, 0xCC}) || !p.Time.IsZero() {
				t.Fatalf("simple packet: %X at %v", p.Data, p.Time)
			}
		})
	}
}

func TestReplayForeignTrace(t *testing.T) {
	// A big-endian Ethernet capture without spdlab comments, as another
	// tool would write it: ATR, then command || response records.
	b := &pcapngBuilder{order: binary.BigEndian}
	b.shb()
	b.idb(LinkTypeEthernet)
	b.epb(0, 1, ethernetGSMTAP(SIMRecord{SIMATR, testATR}))
	b.epb(0, 2, ethernetGSMTAP(SIMRecord{SIMTPDUHdr, []byte{0, 0xA4, 4, 0, 8}})) // skipped
	b.epb(0, 3, ethernetGSMTAP(SIMRecord{SIMAPDU, append(append([]byte(nil), selectCmd...), 0x90, 0x00)}))
	b.epb(0, 4, ethernetGSMTAP(SIMRecord{SIMATR, testATR}))
	r, err := NewReplayer(&b.buf, "foreign")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !bytes.Equal(r.ATR(), testATR) {
		t.Fatalf("ATR %X", r.ATR())
	}
	resp, err := r.Exchange(ctx, selectCmd)
	if err != nil || bytesHex(resp) != "9000" {
		t.Fatalf("Exchange = %X, %v", resp, err)
	}
	if atr, err := r.Reset(ctx, false); err != nil || !bytes.Equal(atr, testATR) {
		t.Fatalf("Reset = %X, %v", atr, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPcapngReaderErrors(t *testing.T) {
	valid := func() *pcapngBuilder {
		b := &pcapngBuilder{order: binary.LittleEndian}
		b.shb()
		b.idb(LinkTypeIPv4)
		return b
	}
	tests := []struct {
		name string
		in   func() []byte
		want string
	}{
		{"empty", func() []byte { return nil }, "empty file"},
		{"no section header", func() []byte {
			b := &pcapngBuilder{order: binary.LittleEndian}
			b.idb(LinkTypeIPv4)
			return b.buf.Bytes()
		}, "does not start with a section header"},
		{"bad magic", func() []byte {
			x := valid().buf.Bytes()
			x[8] = 0
			return x
		}, "byte-order magic"},
		{"bad version", func() []byte {
			x := valid().buf.Bytes()
			x[12] = 2
			return x
		}, "section version"},
		{"truncated block", func() []byte { return valid().buf.Bytes()[:30] }, "truncated"},
		{"trailing length differs", func() []byte {
			x := valid().buf.Bytes()
			x[len(x)-1] = 0x7F
			return x
		}, "trailing length"},
		{"odd length", func() []byte {
			x := valid().buf.Bytes()
			binary.LittleEndian.PutUint32(x[4:], 29)
			return x
		}, "has length"},
		{"huge length", func() []byte {
			x := valid().buf.Bytes()
			binary.LittleEndian.PutUint32(x[4:], 0xFFFFFFF0)
			return x
		}, "has length"},
		{"undeclared interface", func() []byte {
			b := valid()
			b.epb(3, 0, []byte{1})
			return b.buf.Bytes()
		}, "undeclared interface"},
		{"captured length overruns", func() []byte {
			b := valid()
			body := binary.LittleEndian.AppendUint32(nil, 0)
			body = append(body, make([]byte, 8)...)
			body = binary.LittleEndian.AppendUint32(body, 100)
			body = binary.LittleEndian.AppendUint32(body, 100)
			b.block(uint32(BlockEPB), body)
			return b.buf.Bytes()
		}, "overruns"},
		{"option overruns", func() []byte {
			b := &pcapngBuilder{order: binary.LittleEndian}
			b.shb()
			body := binary.LittleEndian.AppendUint32(nil, uint32(LinkTypeIPv4))
			body = binary.LittleEndian.AppendUint32(body, 0)
			body = binary.LittleEndian.AppendUint16(body, optIfName)
			body = binary.LittleEndian.AppendUint16(body, 200)
			b.block(uint32(BlockIDB), body)
			return b.buf.Bytes()
		}, "overruns"},
		{"bad tsresol", func() []byte {
			b := &pcapngBuilder{order: binary.LittleEndian}
			b.shb()
			b.idb(LinkTypeIPv4, b.option(nil, optIfTSResol, []byte{20}))
			return b.buf.Bytes()
		}, "if_tsresol"},
		{"simple packet before interface", func() []byte {
			b := &pcapngBuilder{order: binary.LittleEndian}
			b.shb()
			b.block(uint32(BlockSPB), []byte{1, 0, 0, 0, 9, 0, 0, 0})
			return b.buf.Bytes()
		}, "before any interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewPcapngReader(bytes.NewReader(tt.in()))
			var err error
			for err == nil {
				_, err = r.Next()
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want ErrFormat containing %q", err, tt.want)
			}
		})
	}
}

func TestParseSIMRecord(t *testing.T) {
	rec := SIMRecord{SIMAPDU, []byte{0x00, 0xB0, 0x00, 0x00, 0x90, 0x00}}
	ip := appendIPv4GSMTAP(nil, rec, 1)
	if ipv4Checksum(ip[:20]) != 0 {
		t.Fatal("IPv4 header checksum does not verify")
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), ip...)) }
	tests := []struct {
		name    string
		lt      LinkType
		data    []byte
		wantErr string // "" for success, "not" for errNotSIM
	}{
		{"ipv4", LinkTypeIPv4, ip, ""},
		{"raw", LinkTypeRaw, ip, ""},
		{"ethernet", LinkTypeEthernet, ethernetGSMTAP(rec), ""},
		{"802.1Q", LinkTypeEthernet, append(append(make([]byte, 12), 0x81, 0x00, 0, 5, 0x08, 0x00), ip...), ""},
		{"loopback", LinkTypeNull, append([]byte{2, 0, 0, 0}, ip...), ""},
		{"ARP", LinkTypeEthernet, append(make([]byte, 12), 0x08, 0x06, 0, 1), "not"},
		{"TCP", LinkTypeIPv4, mutate(func(b []byte) []byte { b[9] = 6; return b }), "not"},
		{"other port", LinkTypeIPv4, mutate(func(b []byte) []byte { b[20], b[21], b[22], b[23] = 0, 53, 0, 53; return b }), "not"},
		{"other GSMTAP type", LinkTypeIPv4, mutate(func(b []byte) []byte { b[30] = 1; return b }), "not"},
		{"GSMTAP version 1", LinkTypeIPv4, mutate(func(b []byte) []byte { b[28] = 1; return b }), "GSMTAP version"},
		{"fragment", LinkTypeIPv4, mutate(func(b []byte) []byte { b[6] = 0x20; return b }), "fragmented"},
		{"IP length overruns", LinkTypeIPv4, mutate(func(b []byte) []byte { b[3] = 0xFF; return b }), "bad IPv4"},
		{"UDP length overruns", LinkTypeIPv4, mutate(func(b []byte) []byte { b[25] = 0xFF; return b }), "UDP length"},
		{"short", LinkTypeIPv4, ip[:10], "IP packet of 10 bytes"},
		{"unsupported link type", LinkType(147), ip, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSIMRecord(tt.lt, tt.data)
			switch tt.wantErr {
			case "":
				if err != nil || got.SubType != rec.SubType || !bytes.Equal(got.Payload, rec.Payload) {
					t.Fatalf("ParseSIMRecord = %v %X, %v", got.SubType, got.Payload, err)
				}
			case "not":
				if !errors.Is(err, errNotSIM) {
					t.Fatalf("error = %v, want errNotSIM", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

func TestTsharkDecodesSelect(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark is not installed and CI is set: install tshark")
		}
		t.Skip("tshark is not installed (apt-get install -y tshark); CI is unset")
	}
	path, _ := writeTrace(t)
	cmd := exec.Command(tshark, "-n", "-r", path, "-V")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no personal profile
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"User Datagram Protocol, Src Port: 4729, Dst Port: 4729",
		"GSM SIM",
		"Instruction: SELECT (0xa4)",
		"Application ID: f05350444c414201",
		"Status Word: 9000",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark -V output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("tshark output:\n%s", text)
	}
}

func FuzzPcapngReader(f *testing.F) {
	var buf bytes.Buffer
	tr := Wrap(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), &buf)
	tr.Exchange(context.Background(), selectCmd)
	tr.Exchange(context.Background(), tearCmd)
	f.Add(buf.Bytes())
	be := &pcapngBuilder{order: binary.BigEndian}
	be.shb()
	be.idb(LinkTypeEthernet, be.option(nil, optIfTSResol, []byte{0x80 | 20}))
	be.epb(0, 1, ethernetGSMTAP(SIMRecord{SIMAPDU, []byte{0, 0xB0, 0, 0, 0x90, 0}}), "spdlab command-length=4")
	f.Add(be.buf.Bytes())
	f.Add([]byte{0x0A, 0x0D, 0x0D, 0x0A})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewPcapngReader(bytes.NewReader(in))
		for i := 0; i < 1000; i++ {
			p, err := r.Next()
			if err != nil {
				break
			}
			if len(p.Data) > len(in) {
				t.Fatalf("packet of %d bytes from %d input bytes", len(p.Data), len(in))
			}
			ParseSIMRecord(p.LinkType, p.Data)
		}
		tr, err := ReadTranscript(bytes.NewReader(in))
		if err != nil {
			return
		}
		rp := record.NewPlaybackRules(tr, "fuzz", replayRules)
		// Replay every record in order: it must be consumed exactly.
		ctx := context.Background()
		for _, e := range tr.Events {
			if e.Op != record.OpExchange {
				rp.PowerOn(ctx)
				continue
			}
			n := len(e.Command)
			if e.Joined {
				n = max(n-2, 0)
			}
			rp.Exchange(ctx, e.Command[:n])
		}
		rp.Close()
	})
}

// WrapCase tags every record with the case running when it was written;
// a trace so tagged replays as before, and a mismatch names the case
// whose record differs.
func TestWrapCaseTagsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cases.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	current := "" // outside any case while the ATR of Begin is written
	tr := WrapCase(link.NewDirect(&linktest.ScriptCard{}, "ref", testATR), f, nil, func() string { return current })
	ctx := context.Background()
	current = "TC-APP-001"
	if _, err := tr.Exchange(ctx, selectCmd); err != nil {
		t.Fatal(err)
	}
	current = "TC-PAY-002"
	if _, err := tr.Exchange(ctx, echoCmd); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.(link.Resetter).Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewPcapngReader(bytes.NewReader(raw))
	var tags []string
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tag := "-"
		for _, c := range p.Comments {
			if id, ok := strings.CutPrefix(c, "spdlab case="); ok {
				tag = id
			}
		}
		tags = append(tags, tag)
	}
	if got := strings.Join(tags, " "); got != "- TC-APP-001 TC-PAY-002 TC-PAY-002" {
		t.Fatalf("case tags of the ATR, two exchanges and a reset: %s", got)
	}

	l, err := Replay(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exchange(ctx, selectCmd); err != nil {
		t.Fatalf("replaying a tagged trace: %v", err)
	}
	if _, err := l.Exchange(ctx, selectCmd); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "sent by TC-PAY-002") {
		t.Fatalf("a mismatch should name the case of the recorded command: %v", err)
	}
}
