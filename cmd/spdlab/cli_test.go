package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/dut"
)

// flagLine matches a flag in Go's flag help: "  -name type" or "  -name".
var flagLine = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)

// helpFlags returns the flags a help text lists; it fails the test when a
// flag has no description line under it.
func helpFlags(t *testing.T, what, help string) []string {
	t.Helper()
	lines := strings.Split(help, "\n")
	var names []string
	for i, l := range lines {
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		names = append(names, m[1])
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "    \t") || len(strings.TrimSpace(lines[i+1])) < 10 {
			t.Errorf("%s: flag -%s has no description:\n%s", what, m[1], help)
		}
	}
	return names
}

// Every command and subcommand prints its flags with descriptions for -h
// and --help and exits 0.
func TestHelpExitsZeroWithFlagDescriptions(t *testing.T) {
	cases := []struct {
		args      []string
		wantFlags []string
	}{
		{[]string{"certify"}, []string{"dut", "ics", "out", "focus", "label-filter", "key", "trace", "timeout"}},
		{[]string{"demo"}, []string{"dut", "out", "backend", "trace", "seed"}},
		{[]string{"report"}, []string{"json", "dut", "out", "key", "verify", "lab-key", "trust"}},
		{[]string{"backend"}, []string{"db", "listen", "issuer-token-file"}},
		{[]string{"emulate"}, []string{"state", "vpcd", "link", "dir", "app"}},
		{[]string{"emulate", "sim"}, []string{"state", "vpcd"}},
		{[]string{"medium"}, []string{"ca", "pub", "key", "png", "format"}},
		{[]string{"medium", "decode"}, []string{"ca", "pub"}},
		{[]string{"medium", "encode"}, []string{"key", "png", "format"}},
		{[]string{"merchant"}, []string{"png", "scale"}},
		{[]string{"merchant", "encode"}, []string{"png"}},
		{[]string{"labkey"}, []string{"key", "name"}},
		{[]string{"labkey", "show"}, []string{"key"}},
		{[]string{"ics", "template"}, []string{"out"}},
		{[]string{"terminal", "pay"}, []string{"dut", "amount", "kind", "backend", "pin"}},
		{[]string{"version"}, nil},
	}
	for _, c := range cases {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c.args...), h)
			code, out, errOut := spdlab(t, args...)
			name := "spdlab " + strings.Join(args, " ")
			if code != 0 {
				t.Errorf("%s: exit %d, want 0\n%s", name, code, errOut)
				continue
			}
			// Help that was asked for goes to standard output, whole.
			if errOut != "" {
				t.Errorf("%s writes to standard error:\n%s", name, errOut)
			}
			help := out
			if !strings.Contains(help, "usage: spdlab "+c.args[0]) {
				t.Errorf("%s prints no usage line:\n%s", name, help)
			}
			if strings.Contains(help, "unknown") {
				t.Errorf("%s treats the help flag as an argument:\n%s", name, help)
			}
			got := map[string]bool{}
			for _, f := range helpFlags(t, name, help) {
				got[f] = true
			}
			for _, f := range c.wantFlags {
				if !got[f] {
					t.Errorf("%s does not list -%s:\n%s", name, f, help)
				}
			}
		}
	}
	// Commands whose help is a list of their subcommands or flows.
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"ics", "--help"}, {"terminal", "--help"}, {"help", "certify"}} {
		if code, out, errOut := spdlab(t, args...); code != 0 || !strings.Contains(out, "usage: spdlab") || errOut != "" {
			t.Errorf("spdlab %s: exit %d, want 0 with a usage on standard output\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// A usage mistake made with some arguments (a flag that is unknown, lacks
// its value or has one that does not parse; a DUT string that does not
// parse; a required flag left out) is told in one line on standard error
// that says what is wrong and names the command's help, and exits 2; the
// command does nothing else.
func TestUsageMistakesOneLine(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "report")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"certify", "--dut", "ref", "--out", out, "--bogus"}, "spdlab certify: unknown flag -bogus (see 'spdlab certify --help')"},
		{[]string{"certify", "--out", out, "--dut"}, "spdlab certify: flag -dut needs a value"},
		{[]string{"certify", "--dut", "ref", "--out", out, "--timeout", "5x"}, `spdlab certify: -timeout "5x": not a duration`},
		{[]string{"certify", "--dut", "nonsense", "--out", out}, `spdlab certify: -dut "nonsense": dut: unknown DUT "nonsense" (want ref, faulty:MODE,`},
		{[]string{"certify", "--dut", "usb:zz:1", "--out", out}, `-dut "usb:zz:1": dut: usb wants VID:PID in hex`},
		{[]string{"certify", "--dut", "serial", "--out", out}, "dut: serial needs a port path, as in serial:/dev/ttyUSB0"},
		{[]string{"certify", "--dut", "ref+latency=fast", "--out", out}, "dut: fault latency=fast"},
		{[]string{"certify", "--dut", "ref", "--out", out, "--focus", "("}, `spdlab certify: -focus "(": error parsing regexp: missing closing )`},
		{[]string{"certify", "--dut", "ref", "--out", out, "--label-filter", "(("}, `spdlab certify: -label-filter "((": syntax error parsing label filter: Mismatched '('`},
		{[]string{"cases", "--label-filter", "C2 &&"}, `spdlab cases: -label-filter "C2 &&": syntax error parsing label filter: Unexpected EOF.`},
		{[]string{"certify", "--dut", "ref"}, "spdlab certify: --out DIR is required"},
		{[]string{"certify", "--out", out}, "spdlab certify: --dut DUT is required"},
		{[]string{"certify", "--dut", "ref", "--out", out, "extra"}, `spdlab certify: unexpected argument "extra"`},
		{[]string{"certify", "--dut", "ref", "--out", out, "--golden", filepath.Join(out, "golden")}, "is inside --out " + out},
		{[]string{"certify", "--dut", "ref", "--out", out, "--golden", out}, "is inside --out " + out},
		{[]string{"certify", "--dut", "ref", "--out", out, "--trace", filepath.Join(out, "report.html")}, "is a file of the report in --out " + out},
		{[]string{"certify", "--dut", "ref", "--out", out + "/", "--trace", filepath.Join(out, "media", "t.pcapng")}, "is a file of the report in --out " + out},
		{[]string{"demo", "--dut", "bogus:1"}, `spdlab demo: -dut "bogus:1": dut: unknown DUT "bogus:1"`},
		{[]string{"terminal", "status", "--dut", "sd:"}, "spdlab terminal status: -dut \"sd:\": dut: sd needs the card's mount point"},
		{[]string{"report", "--json", "x.json"}, "spdlab report: to write a report, give --dut DUT"},
		{[]string{"report", "--merge", "shard-1"}, "spdlab report: --merge needs --out DIR"},
		{[]string{"report", "--merge", "--out", out, out}, "are one inside the other"},
		{[]string{"report", "--merge", "--out", filepath.Join(out, "merged"), "shard-0", out + "/"}, "are one inside the other"},
		{[]string{"report", "--merge", "--out", out, filepath.Join(out, "shard-1")}, "are one inside the other"},
		{[]string{"report", "--golden", "g"}, "spdlab report: --golden DIR takes one of --record REPORT_DIR or --compare REPORT_DIR"},
		{[]string{"medium", "decode", "--bogus", "x"}, "spdlab medium decode: unknown flag -bogus (see 'spdlab medium decode --help')"},
		{[]string{"cases", "--format", "md", "--label-filter"}, "spdlab cases: flag -label-filter needs a value"},
	} {
		name := "spdlab " + strings.Join(c.args, " ")
		code, stdout, errOut := spdlab(t, c.args...)
		if code != 2 || stdout != "" {
			t.Errorf("%s: exit %d, want 2 and nothing on standard output\n%s%s", name, code, stdout, errOut)
		}
		if !strings.Contains(errOut, c.want) || strings.Count(errOut, "\n") != 1 || !strings.HasSuffix(errOut, "--help')\n") || strings.Contains(errOut, "\x1b") {
			t.Errorf("%s: want one line with %q naming the help, got:\n%s", name, c.want, errOut)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a usage mistake made the report directory: %v", err)
	}
}

// A usage mistake exits 2 and says what is wrong.
func TestUsageMistakesExitTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage: spdlab COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"certify"}, "-dut"},
		{[]string{"certify", "--nonsense"}, "spdlab certify: unknown flag -nonsense (see 'spdlab certify --help')"},
		{[]string{"emulate"}, "FORM is how the device appears"},
		{[]string{"emulate", "smartcard"}, `unknown form "smartcard" (want sim, esim, serial or sd)`},
		{[]string{"medium"}, "usage: spdlab medium decode"},
		{[]string{"medium", "show"}, `unknown subcommand "show" (want decode or encode)`},
		{[]string{"merchant", "parse"}, `unknown subcommand "parse" (want scan, decode or encode)`},
		{[]string{"labkey", "rotate"}, `unknown subcommand "rotate" (want init or show)`},
		{[]string{"version", "extra"}, "usage: spdlab version"},
	} {
		code, _, errOut := spdlab(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("spdlab %s: exit %d, want 2 with %q\n%s", strings.Join(c.args, " "), code, c.want, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := spdlab(t, "version")
	if code != 0 {
		t.Fatalf("spdlab version: exit %d\n%s", code, errOut)
	}
	tool := reports.ToolInfo()
	for _, want := range []string{"spdlab " + tool.Version + "\n", "commit " + tool.Commit + "\n", "suite ", "SPD profile "} {
		if !strings.Contains(out, want) {
			t.Errorf("spdlab version lacks %q:\n%s", want, out)
		}
	}
}

// certify's --dut help names every kind of DUT, the replay and the
// faulty devices with each of their modes.
func TestCertifyDUTHelp(t *testing.T) {
	_, help, _ := spdlab(t, "certify", "--help")
	for _, want := range []string{"ref", "pcsc:READER", "serial:PATH", "usb:VID:PID", "sd:DIR", "usb-emu", "serial-emu", "sd-emu", "pcsc-emu", "replay:FILE", "faulty:MODE"} {
		if !strings.Contains(help, want) {
			t.Errorf("certify --help does not name DUT %s", want)
		}
	}
	for m := range dut.FaultyModes {
		if !strings.Contains(help, m) {
			t.Errorf("certify --help does not name faulty mode %s", m)
		}
	}
}

// The README documents every flag of certify and emulate.
func TestREADMEDocumentsFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"certify"}, {"emulate"}} {
		_, out, errOut := spdlab(t, append(cmd, "--help")...)
		for _, f := range helpFlags(t, cmd[0], out+errOut) {
			if !bytes.Contains(readme, []byte("--"+f)) {
				t.Errorf("README.md does not document spdlab %s --%s", cmd[0], f)
			}
		}
	}
}

// The two kinds of code are easily confused: each decoder names the other
// when given the wrong one.
func TestDecodersPointToEachOther(t *testing.T) {
	order, err := merchant.Encode(merchant.Order{
		Initiation: merchant.Dynamic,
		Accounts:   []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "ACC-0001"}},
		Category:   "5814", Currency: "978", Amount: "12.50", Country: "DE", Name: "SPDLAB CAFE", City: "BERLIN",
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	orderPNG := filepath.Join(dir, "order.png")
	if err := writeCodePNG(orderPNG, order, "QR", 4); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{order, orderPNG} {
		code, out, errOut := spdlab(t, "medium", "decode", arg)
		if code != 1 || out != "" || !strings.Contains(errOut, "is a merchant order code") || !strings.Contains(errOut, "spdlab merchant decode") {
			t.Errorf("medium decode of a merchant code: exit %d\n%s%s", code, out, errOut)
		}
	}
	key, _ := paymentResult(t, dir)
	code, out, errOut := spdlab(t, "merchant", "decode", key)
	if code != 1 || out != "" || !strings.Contains(errOut, "is a device's coded medium") || !strings.Contains(errOut, "spdlab medium decode") {
		t.Errorf("merchant decode of a medium: exit %d\n%s%s", code, out, errOut)
	}
	// A payment code (SPEC.md 4.9) is not a medium either: medium decode
	// names merchant scan.
	key2, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	declined, at := 1, time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	res, err := medium.Sign(medium.ServiceInfo{Kind: medium.KindPaymentResult, DeviceID: []byte{0x5D, 0x1A, 0xB0, 0, 0, 0, 0, 7},
		Balance: 1_00, ATC: 4, Currency: 978, Amount: 2_00, Issued: at, Expiry: at, Result: &declined, Reason: "insufficient balance"}, key2)
	if err != nil {
		t.Fatal(err)
	}
	pc := spd.PaymentCode{Result: spd.Result{Envelope: res}}.Text()
	code, out, errOut = spdlab(t, "medium", "decode", pc)
	if code != 1 || out != "" || !strings.Contains(errOut, "is a device's payment code") || !strings.Contains(errOut, "spdlab merchant scan") {
		t.Errorf("medium decode of a payment code: exit %d\n%s%s", code, out, errOut)
	}
	// Text that is neither keeps the decoder's own message.
	code, _, errOut = spdlab(t, "medium", "decode", "not a code")
	if code != 1 || !strings.Contains(errOut, "not standard Base64") || strings.Contains(errOut, "merchant") {
		t.Errorf("medium decode of junk: exit %d\n%s", code, errOut)
	}
}

// paymentResult signs a payment result medium with a new device key,
// writes the key's public half to dir/device.pub.pem and returns the
// medium's text and that file.
func paymentResult(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	success := 0
	issued := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	env, err := medium.Sign(medium.ServiceInfo{Kind: medium.KindPaymentResult, DeviceID: []byte{0x5D, 0x1A, 0xB0, 0, 0, 0, 0, 7},
		Balance: 87_66, ATC: 4, Currency: 978, Amount: 12_34, Issued: issued, Expiry: issued.Add(time.Hour), Result: &success}, key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "device.pub.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return medium.Text(env), pub
}

// A payment result carries no certificate: it is shown without --pub,
// marked unchecked, and checked with it.
func TestMediumDecodeWithoutPub(t *testing.T) {
	dir := t.TempDir()
	text, pub := paymentResult(t, dir)
	decode := func(wantCode int, args ...string) (decodedMedium, string) {
		t.Helper()
		code, out, errOut := spdlab(t, append([]string{"medium", "decode", text}, args...)...)
		if code != wantCode {
			t.Fatalf("medium decode %v: exit %d, want %d\n%s%s", args, code, wantCode, out, errOut)
		}
		var d decodedMedium
		if wantCode == 0 {
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("medium decode %v: %v\n%s", args, err, out)
			}
		}
		return d, errOut
	}
	d, errOut := decode(0)
	if d.Signature.Valid || !strings.Contains(d.Signature.Checked, "--pub") || d.Info.Kind != medium.KindPaymentResult || d.Info.Amount != 12_34 {
		t.Errorf("a payment result without --pub: %+v", d)
	}
	if !strings.Contains(errOut, "NOT checked") || !strings.Contains(errOut, "--pub FILE") {
		t.Errorf("no warning that the signature was not checked: %q", errOut)
	}
	d, _ = decode(0, "--pub", pub)
	if !d.Signature.Valid || d.Info.Balance != 87_66 {
		t.Errorf("a payment result with its device key: %+v", d)
	}
	_, otherPub := paymentResult(t, t.TempDir())
	if _, errOut := decode(1, "--pub", otherPub); !strings.Contains(errOut, "medium") {
		t.Errorf("a payment result with another device's key: %s", errOut)
	}
}
