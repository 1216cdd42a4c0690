package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the backend's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The CLI as a user runs it: a backend, two devices kept in state files,
// online and offline payments, settlement, an offline transfer and the
// demo against the backend.
func TestTerminalCommands(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "lab.token")
	var refused bytes.Buffer
	if code := run(context.Background(), &env{stdout: &refused, stderr: &refused}, []string{"backend", "--db", filepath.Join(dir, "b.db"), "--listen", "127.0.0.1:0"}); code == 0 || !strings.Contains(refused.String(), "no issuer credential") {
		t.Fatalf("a backend without a credential started: exit %d\n%s", code, refused.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	var log syncBuffer
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, &env{stdout: &log, stderr: &log}, []string{"backend", "--db", filepath.Join(dir, "b.db"), "--listen", "127.0.0.1:0", "--issuer-token-file", token})
	}()
	defer func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("backend exited %d: %s", code, log.String())
		}
	}()
	addr := regexp.MustCompile(`serving on (http://\S+)`)
	var url string
	for i := 0; i < 200 && url == ""; i++ {
		if m := addr.FindStringSubmatch(log.String()); m != nil {
			url = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if url == "" {
		t.Fatalf("the backend did not say where it serves: %s", log.String())
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if code := run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out}, args); code != want {
			t.Fatalf("spdlab %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out.String())
		}
		return out.String()
	}
	// Device a's terminal takes the credential from the environment, b's
	// from its flag.
	t.Setenv(envAuthTokenFile, token)
	a := []string{"--state", filepath.Join(dir, "a.state"), "--backend", url, "--out", dir}
	b := []string{"--state", filepath.Join(dir, "b.state"), "--backend", url, "--out", dir, "--auth-token-file", token}
	out := cli(1, append([]string{"terminal", "status"}, "--state", filepath.Join(dir, "c.state"), "--backend", url, "--auth-token", "not-the-token")...)
	if !strings.Contains(out, "unauthorised") {
		t.Fatalf("a terminal with a wrong credential:\n%s", out)
	}
	out = cli(0, append([]string{"terminal", "status"}, b...)...)
	payee := regexp.MustCompile(`device\s+([0-9A-F]{16})`).FindStringSubmatch(out)
	if payee == nil {
		t.Fatalf("status names no device:\n%s", out)
	}
	cli(0, append([]string{"terminal", "pay", "--amount", "12.50"}, a...)...)
	out = cli(0, append([]string{"terminal", "pay", "--amount", "5.00", "--kind", "account", "--offline"}, a...)...)
	if !strings.Contains(out, "pending settlement") {
		t.Fatalf("offline payment:\n%s", out)
	}
	cli(1, append([]string{"terminal", "pay", "--amount", "1.00", "--pin", "0000"}, a...)...)
	out = cli(0, append([]string{"terminal", "settle"}, a...)...)
	if !strings.Contains(out, "1 settled") {
		t.Fatalf("settle:\n%s", out)
	}
	cli(0, append([]string{"terminal", "transfer", "--to", payee[1], "--amount", "3.00"}, a...)...)
	cli(0, append([]string{"terminal", "receive", "--medium-png", filepath.Join(dir, "transfer.png")}, b...)...)
	cli(1, append([]string{"terminal", "receive", "--medium-png", filepath.Join(dir, "transfer.png")}, b...)...)
	// Exchange at the rate the backend signs: 10.00 buys 4 uses at 2.50;
	// 7.00 EUR buys 7.58 USD at 1.0834; a currency the issuer does not
	// sell is refused.
	out = cli(0, append([]string{"terminal", "exchange", "--amount", "10.00"}, b...)...)
	if !strings.Contains(out, "DONE      exchange EUR 10.00 (exchange), confirmed online by the backend: bought 4 uses") {
		t.Fatalf("exchange into uses:\n%s", out)
	}
	out = cli(0, append([]string{"terminal", "exchange", "--amount", "7.00", "--into", "840"}, b...)...)
	if !strings.Contains(out, "bought 758 minor units of currency 840") {
		t.Fatalf("exchange into USD:\n%s", out)
	}
	cli(1, append([]string{"terminal", "exchange", "--amount", "7.00", "--into", "392"}, b...)...)
	cli(0, append([]string{"terminal", "settle"}, b...)...)
	cli(0, append([]string{"terminal", "settle"}, a...)...)
	out = cli(0, append([]string{"terminal", "status"}, a...)...)
	if !strings.Contains(out, "balance EUR 84.50") || !strings.Contains(out, "conserved=true") {
		t.Fatalf("status after the flows:\n%s", out)
	}
	// A damaged device store is refused, never rolled back or replaced.
	logBytes, err := os.ReadFile(filepath.Join(dir, "a.state.log"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte{}, logBytes...)
	flipped[len(flipped)/2] ^= 0x01
	if err := os.WriteFile(filepath.Join(dir, "a.state.log"), flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if out = cli(1, append([]string{"terminal", "status"}, a...)...); !strings.Contains(out, "is damaged") {
		t.Fatalf("status on a damaged log:\n%s", out)
	}
	if err := os.Remove(filepath.Join(dir, "a.state.log")); err != nil {
		t.Fatal(err)
	}
	out = cli(1, append([]string{"terminal", "status"}, a...)...)
	// (Its snapshot was never compacted, so the store opens blank; the CLI
	// refuses to personalise over it.)
	if !strings.Contains(out, "--new-device") {
		t.Fatalf("status with the log deleted:\n%s", out)
	}
	if strings.Contains(out, "personalised a new device") {
		t.Fatalf("a new device was personalised over a.state:\n%s", out)
	}
	out = cli(0, "demo", "--backend", url)
	if !strings.Contains(out, "conserved=true") {
		t.Fatalf("demo:\n%s", out)
	}
}

// Without a backend the terminal says it pays offline, and each PIN
// attempt shows what the device answered: the tries it has left from its
// status word 63Cx, then the block, before the flow reports its end.
func TestTerminalSaysEachVerificationStepAndOffline(t *testing.T) {
	state := []string{"--state", filepath.Join(t.TempDir(), "d.state")}
	pay := func(want int, args ...string) string {
		t.Helper()
		code, out, errOut := spdlab(t, append(append([]string{"terminal", "pay", "--amount", "2.00"}, state...), args...)...)
		if code != want {
			t.Fatalf("terminal pay %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	inOrder := func(out string, lines ...string) {
		t.Helper()
		at := 0
		for _, l := range lines {
			i := strings.Index(out[at:], l)
			if i < 0 {
				t.Fatalf("missing, or out of order, %q in:\n%s", l, out)
			}
			at += i + len(l)
		}
	}
	inOrder(pay(0), "offline: no --backend given", "settled later (spdlab terminal settle --backend URL)",
		"PIN asked: the device allows 3 tries\n", "PIN verified\n", "DONE", "pending settlement")
	inOrder(pay(1, "--pin", "0000"), "PIN asked: the device allows 3 tries\n",
		"PIN wrong: 2 tries left (the device answered 63C2)\n", "NOT DONE", "nothing was paid")
	inOrder(pay(1, "--pin", "0000"), "PIN asked: the device allows 2 tries\n", "PIN wrong: 1 try left (the device answered 63C1)\n", "NOT DONE")
	inOrder(pay(1, "--pin", "0000"), "PIN asked: the device allows 1 try\n",
		"PIN refused: no tries left, it is blocked (the device answered 63C0)\n", "NOT DONE")
	out := pay(1)
	inOrder(out, "PIN refused: no tries left, it is blocked (the device answered 6983)\n", "NOT DONE", "PIN blocked")
	if strings.Contains(out, "PIN asked") {
		t.Errorf("the terminal asked for the PIN of a blocked device:\n%s", out)
	}
	if out := pay(1, "--online"); !strings.Contains(out, "pay --online needs --backend URL") {
		t.Errorf("pay --online without a backend:\n%s", out)
	}
}
