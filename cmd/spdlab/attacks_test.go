package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/scenarios"
)

// attackedBackend starts `spdlab backend` as a user would, on 127.0.0.1,
// with its issuer credential in a file, and returns its URL and the token.
func attackedBackend(t *testing.T, dir string) (string, string) {
	t.Helper()
	tokenFile := filepath.Join(dir, "lab.token")
	ctx, cancel := context.WithCancel(context.Background())
	var log syncBuffer
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, &env{stdout: &log, stderr: &log}, []string{"backend", "--db", filepath.Join(dir, "attacked.db"), "--listen", "127.0.0.1:0", "--issuer-token-file", tokenFile})
	}()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	addr := regexp.MustCompile(`serving on (http://\S+)`)
	for i := 0; i < 500; i++ {
		if m := addr.FindStringSubmatch(log.String()); m != nil {
			tok, err := os.ReadFile(tokenFile)
			if err != nil {
				t.Fatal(err)
			}
			return m[1], strings.TrimSpace(string(tok))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the backend did not say where it serves: %s", log.String())
	return "", ""
}

// attack sends one request as an attacker would and returns the status
// and the stable error code.
func attack(t *testing.T, method, url, token, contentType string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				t.Fatal(err)
			}
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb backend.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Code
}

// attackDevice is a device registered with the attacked backend by its
// issuer: a key certified by the lab's test issuer CA.
type attackDevice struct {
	id  string
	raw []byte
	key *ecdsa.PrivateKey
}

func registerAttackDevice(t *testing.T, c *backend.Client, n byte, balance int64) attackDevice {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte{0x5D, 0x1A, 0xA7, 0x7A, 0xC4, 0, 0, n}
	cert, err := scenarios.TestIssuer().Certify(raw, &k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	d := attackDevice{id: spd.DeviceIDString(raw), raw: raw, key: k}
	if balance >= 0 {
		if _, err := c.Register(context.Background(), backend.Registration{DeviceID: d.id, Certificate: cert, Account: fmt.Sprintf("62220000000000%04d", n),
			Currency: 978, InitialBalance: balance}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d attackDevice) sign(t *testing.T, r spd.PendingRecord) []byte {
	t.Helper()
	r.DeviceID, r.Currency = d.raw, 978
	if r.Kind.IsPayment() && r.Nonce == nil {
		r.Nonce = make([]byte, 16)
		rand.Read(r.Nonce)
	}
	if err := r.Sign(d.key); err != nil {
		t.Fatal(err)
	}
	return r.Marshal()
}

// TestAttacksOnBackend tries, on a default `spdlab backend` reached over
// loopback, each attack that once worked against it, and wants each
// refused with its defined answer and the books conserved.
func TestAttacksOnBackend(t *testing.T) {
	url, issuerToken := attackedBackend(t, t.TempDir())
	issuer, err := backend.NewClient(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	issuer.Credential = issuerToken
	ctx := context.Background()
	victim := registerAttackDevice(t, issuer, 1, 100_00)
	conserved := func(t *testing.T) backend.Audit {
		t.Helper()
		a, err := issuer.Audit(ctx)
		if err != nil || !a.Conserved {
			t.Fatalf("audit: %+v %v", a, err)
		}
		return a
	}

	t.Run("AttackUnauthenticatedIssuing", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/devices/" + victim.id + "/parameters", map[string]any{"top_up": int64(1) << 53}},
			{"POST", "/v1/devices", map[string]any{"device_id": "5D1AA77AC40000FF", "account": "X", "currency": 978, "initial_balance": 1 << 40}},
			{"POST", "/v1/revocations", map[string]any{"device_id": victim.id}},
			{"POST", "/v1/reversals", map[string]any{"record": "4QM=", "reason": "x"}},
			{"POST", "/v1/devices/" + victim.id + "/contact", map[string]any{"applied": 0, "balance": 1 << 40, "atc": 9}},
			{"GET", "/v1/devices/" + victim.id, nil},
			{"GET", "/v1/audit", nil},
		} {
			if st, code := attack(t, c.method, url+c.path, "", "application/json", c.body); st != 401 || code != backend.CodeUnauthorised {
				t.Errorf("%s %s without a credential: %d %s, want 401 unauthorised", c.method, c.path, st, code)
			}
		}
		if st, code := attack(t, "POST", url+"/v1/devices/"+victim.id+"/parameters", issuerToken, "text/plain", []byte(`{"top_up":100}`)); st != 415 || code != backend.CodeMediaType {
			t.Errorf("a text/plain top-up (a web page's form post): %d %s", st, code)
		}
		if a := conserved(t); a.Issued != 100_00 {
			t.Fatalf("value issued without the issuer's credential: %+v", a)
		}
	})

	t.Run("AttackTransferInWithoutDebit", func(t *testing.T) {
		payee := registerAttackDevice(t, issuer, 2, 100_00)
		ghost := registerAttackDevice(t, issuer, 3, -1) // certified by the test CA, never registered
		in := payee.sign(t, spd.PendingRecord{ATC: 1, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 25_00,
			Time: time.Now().UTC().Truncate(time.Second), Serial: 1, Counterpart: ghost.raw})
		ack, err := issuer.Settle(ctx, backend.SettlementBatch{Records: [][]byte{in}})
		if err != nil || ack.Entries[0].Status != backend.Held {
			t.Fatalf("a transfer-in from an unregistered payer: %+v %v", ack, err)
		}
		d, err := issuer.Device(ctx, payee.id)
		if err != nil || d.Balance != 100_00 {
			t.Fatalf("the payee credited without its payer's debit: %+v %v", d, err)
		}
		if a := conserved(t); a.HeldIn != 25_00 || a.InFlight != 0 {
			t.Fatalf("audit: %+v", a)
		}
	})

	t.Run("AttackOneSidedOnlineTransfer", func(t *testing.T) {
		payer, payee := registerAttackDevice(t, issuer, 4, 100_00), registerAttackDevice(t, issuer, 5, 100_00)
		// The old request: the payer's consent to move value at the
		// issuer, with no medium and no device record.
		old := map[string]any{"transfer_id": "OLD-1", "from": payer.id, "to": payee.id, "amount": 5_00, "signature": "MEQ="}
		if st, code := attack(t, "POST", url+"/v1/transfers", issuerToken, "application/json", old); st != 400 || code != backend.CodeMalformed {
			t.Fatalf("a transfer without the devices: %d %s", st, code)
		}
		for _, id := range []string{payer.id, payee.id} {
			if d, err := issuer.Device(ctx, id); err != nil || d.Balance != 100_00 {
				t.Fatalf("value moved at the issuer alone: %+v %v", d, err)
			}
		}
		conserved(t)
	})

	t.Run("AttackClone", func(t *testing.T) {
		clone := registerAttackDevice(t, issuer, 6, 100_00)
		at := time.Now().UTC().Truncate(time.Second)
		first := clone.sign(t, spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 10_00, Time: at, Payee: []byte("SHOP-A")})
		second := clone.sign(t, spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 10_00, Time: at, Payee: []byte("SHOP-B")})
		if bytes.Equal(first, second) {
			t.Fatal("two spends of one state are byte-identical")
		}
		if _, err := issuer.Settle(ctx, backend.SettlementBatch{Records: [][]byte{first}}); err != nil {
			t.Fatal(err)
		}
		_, err := issuer.Settle(ctx, backend.SettlementBatch{Records: [][]byte{second}})
		var ae *backend.APIError
		if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != backend.CodeConflict || !strings.Contains(ae.Reason, "clone") {
			t.Fatalf("the clone's second spend: %v", err)
		}
		a := conserved(t)
		flagged := false
		for _, f := range a.Flagged {
			flagged = flagged || (f.DeviceID == clone.id && f.Revoked)
		}
		if !flagged {
			t.Fatalf("the clone is not flagged and revoked: %+v", a.Flagged)
		}
	})

	t.Run("AttackOTPFlood", func(t *testing.T) {
		limited := 0
		for i := 0; i < 70; i++ {
			if st, code := attack(t, "POST", url+"/v1/otp/verify", issuerToken, "application/json", map[string]any{"otp_id": "00", "code": "123456"}); st == 429 && code == backend.CodeRateLimited {
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("70 one-time code guesses in a row from one client, none limited")
		}
	})

	// Last: it fills the issuer up to its limit.
	t.Run("AttackOverflowIssued", func(t *testing.T) {
		before := conserved(t).Issued
		if _, err := issuer.QueueParameter(ctx, victim.id, backend.ParameterUpdate{TopUp: 1<<53 - before}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			_, err := issuer.QueueParameter(ctx, victim.id, backend.ParameterUpdate{TopUp: 1 << 52})
			var ae *backend.APIError
			if !errors.As(err, &ae) || ae.Status != 422 || ae.Code != backend.CodeLimit {
				t.Fatalf("a top-up past 2^53: %v", err)
			}
		}
		if _, err := issuer.Device(ctx, victim.id); err != nil {
			t.Fatalf("GET device after the top-ups: %v", err)
		}
		conserved(t)
	})

	t.Run("AttackDamagedDatabase", func(t *testing.T) {
		dir := t.TempDir()
		empty := filepath.Join(dir, "empty.db")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code := run(ctx, &env{stdout: &out, stderr: &out}, []string{"backend", "--db", empty, "--listen", "127.0.0.1:0", "--issuer-token-file", filepath.Join(dir, "t")})
		if code == 0 || !strings.Contains(out.String(), "empty") {
			t.Fatalf("a zero-byte database served as a new issuer: exit %d\n%s", code, out.String())
		}
	})
}

// An issuer host on SQLite syncs every commit to disk unless told not to:
// an answered settlement must survive a power cut, not only a crash. It
// serves at its own garbage collector target (backend.HostGCPercent) when
// GOGC is not set, and puts back the one it found when it stops.
func TestBackendDurableByDefault(t *testing.T) {
	t.Setenv("GOGC", "") // as unset: spdlab backend chooses its own target
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ", synchronous=FULL, issuer "},
		{[]string{"--sync-full=false"}, ", synchronous=NORMAL: a power cut may lose answered commits"},
	} {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		var log syncBuffer
		served := make(chan int, 1)
		args := append([]string{"backend", "--db", filepath.Join(dir, "issuer.db"), "--listen", "127.0.0.1:0", "--issuer-token-file", filepath.Join(dir, "lab.token")}, c.args...)
		// Read before the backend starts: it sets its own target at once.
		before := gcPercent()
		go func() { served <- run(ctx, &env{stdout: &log, stderr: &log}, args) }()
		for i := 0; i < 500 && !strings.Contains(log.String(), "serving on"); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		serving := gcPercent()
		cancel()
		<-served
		if !strings.Contains(log.String(), "serving on") || !strings.Contains(log.String(), c.want) {
			t.Errorf("spdlab %s said %q, want its serving line to say %q", strings.Join(args, " "), log.String(), c.want)
		}
		if serving != backend.HostGCPercent {
			t.Errorf("spdlab backend served at GOGC %d, want %d (backend.HostGCPercent) when GOGC is not set", serving, backend.HostGCPercent)
		}
		if after := gcPercent(); after != before {
			t.Errorf("GOGC was %d before spdlab backend ran and %d after it stopped", before, after)
		}
	}
}

// gcPercent is the garbage collector's current target (GOGC).
func gcPercent() int {
	m := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(m)
	return int(m[0].Value.Uint64())
}
