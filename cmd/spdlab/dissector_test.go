package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reports"
	spdtrace "github.com/spdlab/spdlab/rigs/trace"
)

// splitLink answers GET DATA DF11 with 6103 and GET RESPONSE with the rest,
// as a transport that leaves 61xx to the host does.
type splitLink struct{}

func (splitLink) Exchange(ctx context.Context, c []byte) ([]byte, error) {
	if c[1] == 0xC0 {
		return []byte{0xDF, 0x11, 0x00, 0x90, 0x00}, nil
	}
	return []byte{0x61, 0x03}, nil
}
func (splitLink) String() string { return "split" }
func (splitLink) Close() error   { return nil }

const dissector = "../../rigs/trace/wireshark/spdlab.lua"

// specCommands returns the command names of the table of reference/SPEC.md
// section 4.
func specCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../reference/SPEC.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "## 4. Commands"):
			in = true
		case in && strings.HasPrefix(l, "#"):
			return names
		case in && strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| Command ") && !strings.HasPrefix(l, "|---"):
			names = append(names, strings.TrimSpace(strings.Split(l, "|")[1]))
		}
	}
	t.Fatal("SPEC.md has no section 4 command table")
	return nil
}

// tshark runs tshark with the shipped dissector on a trace.
// tsharkRows runs tshark once on trace and returns, for each record, the
// values of fields by field name (several occurrences joined by "|").
func tsharkRows(t *testing.T, trace string, fields ...string) []map[string]string {
	t.Helper()
	args := []string{"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	var rows []map[string]string
	for _, l := range strings.Split(strings.TrimSuffix(tshark(t, trace, args...), "\n"), "\n") {
		vs := strings.Split(l, "\t")
		if len(vs) != len(fields) {
			t.Fatalf("tshark printed %d fields, want %d: %q", len(vs), len(fields), l)
		}
		r := make(map[string]string, len(fields))
		for i, f := range fields {
			r[f] = vs[i]
		}
		rows = append(rows, r)
	}
	return rows
}

func tshark(t *testing.T, trace string, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", append([]string{"-X", "lua_script:" + dissector, "-r", trace}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	if s := errOut.String(); strings.Contains(s, "Lua") || strings.Contains(s, "lua") {
		t.Fatalf("tshark reports a Lua error:\n%s", s)
	}
	return out.String()
}

// tshark with the shipped dissector names every command of SPEC.md section
// 4 in the trace of a whole certify run, decodes ATR records as ATRs,
// status words by their SPEC meaning and links GET RESPONSE to the
// exchange it continues.
func TestDissectorNamesEveryCommandWholeSuite(t *testing.T) {
	wholeSuite(t)
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed (make deps installs it with the other Debian packages): " + err.Error())
	}
	if err := exec.Command("tshark", "-v").Run(); err != nil {
		t.Skip("tshark does not run here: " + err.Error())
	}
	t.Parallel() // with TestCertifyProcsWholeSuite: they share a run
	dir := t.TempDir()
	// The trace of a whole run of ref in two processes, which
	// TestCertifyProcsWholeSuite compares with a serial run's.
	out, run, ok := parallelRefRun(t)
	if !ok {
		t.FailNow()
	}
	if run.code != 0 || run.cert.Verdict != reports.VerdictCertified {
		t.Fatalf("certify --dut ref --procs 2: exit %d, %s\n%s%s", run.code, run.cert.Verdict, run.stdout, run.stderr)
	}
	trace := filepath.Join(out, "trace.pcapng")
	// tshark reads the trace of a whole run once (each pass takes seconds),
	// every field this test looks at in one row a record.
	rows := tsharkRows(t, trace, "frame.protocols", "spdlab.command", "spdlab.atr.ts", "spdlab.atr.historical_text",
		"spdlab.sw", "spdlab.sw.meaning", "spdlab.tlv.name", "spdlab.case", "spdlab.cla", "spdlab.ins", "spdlab.p1", "spdlab.p2")
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r["spdlab.command"]] = true
	}
	names := specCommands(t)
	if len(names) < 25 {
		t.Fatalf("SPEC.md section 4 lists %d commands: %v", len(names), names)
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("tshark does not name %s in the trace of a whole certify run", n)
		}
	}

	atrs, sws, tlv := 0, "", ""
	for _, r := range rows {
		protos := strings.Split(r["frame.protocols"], ":")
		isATR := r["spdlab.atr.ts"] != ""
		if slices.Contains(protos, "gsm_sim") || isATR && r["spdlab.command"] != "" {
			t.Errorf("a record decoded as something else: %v", r)
		}
		if isATR {
			atrs++
			if r["spdlab.atr.ts"] != "0x3b" || r["spdlab.atr.historical_text"] != "SPDLAB SIM" {
				t.Errorf("an ATR record does not decode as the emulated SIM's ATR: %v", r)
			}
		}
		if sw, err := strconv.ParseUint(strings.TrimPrefix(r["spdlab.sw"], "0x"), 16, 16); err == nil && sw == 0x6a86 {
			sws += r["spdlab.sw.meaning"] + "\n"
		}
		if r["spdlab.command"] == "PAY" {
			tlv += r["spdlab.tlv.name"] + "\n"
		}
	}
	if atrs == 0 {
		t.Error("no ATR record decodes as an ATR")
	}
	if !strings.Contains(sws, "incorrect P1/P2") {
		t.Errorf("6A86 without its SPEC meaning:\n%.300s", sws)
	}
	// Links resolve 61xx below the tracer now; a trace of a transport
	// that does not (SIMtrace on a real reader) has them.
	split := filepath.Join(dir, "split.pcapng")
	f, err := os.Create(split)
	if err != nil {
		t.Fatal(err)
	}
	tr := spdtrace.Wrap(splitLink{}, f)
	ctx := context.Background()
	for _, c := range [][]byte{{0x00, 0xCA, 0xDF, 0x11, 0x00}, {0x00, 0xC0, 0x00, 0x00, 0x03}} {
		if _, err := tr.Exchange(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	links := tshark(t, split, "-Y", `spdlab.command == "GET RESPONSE"`, "-T", "fields", "-e", "spdlab.continues")
	if strings.TrimSpace(links) != "1" {
		t.Errorf("GET RESPONSE does not link back to the exchange answered 61xx: %q", links)
	}
	back := tshark(t, split, "-2", "-Y", `spdlab.sw == 0x6103`, "-T", "fields", "-e", "spdlab.continued_in")
	if strings.TrimSpace(back) != "2" {
		t.Errorf("the 61xx answer does not link to its GET RESPONSE: %q", back)
	}
	for _, want := range []string{"amount", "currency", "time", "device signature", "service information template"} {
		if !strings.Contains(tlv, want) {
			t.Errorf("PAY's TLV objects lack %q", want)
		}
	}
	checkCaseTags(t, rows, out)
}

// checkCaseTags: every record certify writes once the cases run carries
// the ID of the case that sent it, and filtering the trace by one case
// finds that case's exchanges, in the order of its transcript in the
// report.
func checkCaseTags(t *testing.T, rows []map[string]string, out string) {
	t.Helper()
	cert, err := reports.ReadCertificate(out)
	if err != nil {
		t.Fatal(err)
	}
	inReport := map[string]bool{}
	for _, cs := range cert.Cases {
		inReport[cs.ID] = true
	}
	tagged := 0
	for _, r := range rows {
		if !slices.Contains(strings.Split(r["frame.protocols"], ":"), "spdlab") {
			continue
		}
		switch l := r["spdlab.case"]; {
		case l != "" && !inReport[l]:
			t.Fatalf("a record is tagged with %q, no case of the report", l)
		case l != "":
			tagged++
		case tagged > 0:
			t.Fatal("a record written while the cases ran carries no case ID")
		}
	}
	if tagged == 0 {
		t.Fatal("no record of the certify trace carries a case ID")
	}
	var want []string
	for _, cs := range cert.Cases {
		if cs.ID != "TC-PAY-001" {
			continue
		}
		for _, tr := range cs.Transcript {
			for _, st := range reports.DecodeTranscript(tr) {
				if st.Op == "exchange" {
					want = append(want, strings.ReplaceAll(st.Header, " ", ""))
				}
			}
		}
	}
	var got []string
	for _, r := range rows {
		if r["spdlab.case"] != "TC-PAY-001" || r["spdlab.command"] == "" {
			continue
		}
		var h string
		for _, f := range []string{"spdlab.cla", "spdlab.ins", "spdlab.p1", "spdlab.p2"} {
			h += strings.ToUpper(strings.TrimPrefix(r[f], "0x"))
		}
		got = append(got, h)
	}
	if len(want) < 5 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the trace filtered by TC-PAY-001 holds\n%v\nits transcript in the report\n%v", got, want)
	}
}
