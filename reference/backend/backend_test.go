package backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

var bg = context.Background()

func TestHealthAndKeys(t *testing.T) {
	l := newLab(t, nil)
	if err := l.c.Health(bg); err != nil {
		t.Fatal(err)
	}
	pub, err := l.c.PublicKey(bg)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(l.srv.PublicKey()) {
		t.Fatal("GET /v1/keys differs from the server's signing key")
	}
	resp, err := http.Get(l.http.URL + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	var eb ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != 404 || eb.Code != CodeNotFound {
		t.Fatalf("unknown endpoint: %d %+v", resp.StatusCode, eb)
	}
}

func TestSigningKeyPersists(t *testing.T) {
	l := newLab(t, nil)
	pub := l.srv.PublicKey()
	s2, err := Open(l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s2.PublicKey().Equal(pub) {
		t.Fatal("signing key changed across Open")
	}
}

func TestRegister(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "dev-1")
	dev := l.register(d, 10000, "+8613800000001")
	if dev.Balance != 10000 || dev.Issued != 10000 || dev.Account != MaskAccount("ACC-dev-1") || dev.Revoked {
		t.Fatalf("registered: %+v", dev)
	}
	got, err := l.c.Device(bg, devID("dev-1"))
	if err != nil || got.Balance != 10000 {
		t.Fatalf("Device: %+v %v", got, err)
	}
	before := l.snapshot()
	other := newSimDevice(t, "dev-2")
	for _, tc := range []struct {
		name   string
		reg    Registration
		status int
		code   string
	}{
		{"duplicate", Registration{DeviceID: devID("dev-1"), PublicKey: d.pkix(), Account: "A", Currency: 156}, 409, CodeDeviceExists},
		{"no key", Registration{DeviceID: devID("dev-2"), Account: "A", Currency: 156}, 400, CodeMalformed},
		{"bad key", Registration{DeviceID: devID("dev-2"), PublicKey: []byte{1, 2, 3}, Account: "A", Currency: 156}, 400, CodeMalformed},
		{"bad currency", Registration{DeviceID: devID("dev-2"), PublicKey: other.pkix(), Account: "A", Currency: 1000}, 400, CodeMalformed},
		{"negative balance", Registration{DeviceID: devID("dev-2"), PublicKey: other.pkix(), Account: "A", Currency: 156, InitialBalance: -1}, 400, CodeMalformed},
		{"no account", Registration{DeviceID: devID("dev-2"), PublicKey: other.pkix(), Currency: 156}, 400, CodeMalformed},
		{"empty id", Registration{PublicKey: other.pkix(), Account: "A", Currency: 156}, 400, CodeMalformed},
		{"bad certificate", Registration{DeviceID: devID("dev-2"), Certificate: []byte("junk"), Account: "A", Currency: 156}, 400, CodeBadCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.c.Register(bg, tc.reg)
			wantCode(t, err, tc.status, tc.code)
		})
	}
	_, err = l.c.Device(bg, devID("nobody"))
	wantCode(t, err, 404, CodeUnknownDevice)
	if l.snapshot() != before {
		t.Fatal("refused registrations changed the stored state")
	}
	if a := l.audit(); a.Issued != 10000 || a.Devices != 1 {
		t.Fatalf("audit: %+v", a)
	}
}

// issuerCA makes a CA and a device certificate signed by it.
func issuerCA(t *testing.T, devKey *ecdsa.PublicKey, serial int64) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spdlab issuer CA"},
		NotBefore: now, NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	return ca, caKey, deviceCert(t, ca, caKey, devKey, serial)
}

func deviceCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, devKey *ecdsa.PublicKey, serial int64) []byte {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "spd"},
		NotBefore: now, NotAfter: now.AddDate(2, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, devKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestRegisterWithIssuerCA(t *testing.T) {
	d := newSimDevice(t, "dev-ca")
	ca, caKey, cert := issuerCA(t, &d.key.PublicKey, 0x1234)
	l := newLab(t, func(c *Config) { c.Keys.IssuerCA = ca })
	reg := Registration{DeviceID: d.id, Account: "ACC", Currency: 156, InitialBalance: 500}

	_, err := l.c.Register(bg, Registration{DeviceID: d.id, PublicKey: d.pkix(), Account: "ACC", Currency: 156})
	wantCode(t, err, 400, CodeBadCertificate)

	// A certificate from another CA is refused.
	_, _, foreign := issuerCA(t, &d.key.PublicKey, 0x1234)
	reg.Certificate = foreign
	_, err = l.c.Register(bg, reg)
	wantCode(t, err, 400, CodeBadCertificate)

	// A revoked certificate serial cannot register.
	if _, err := l.c.Revoke(bg, Revocation{CertSerial: "99", Reason: "lost"}); err != nil {
		t.Fatal(err)
	}
	d2 := newSimDevice(t, "dev-ca-2")
	_, err = l.c.Register(bg, Registration{DeviceID: d2.id, Certificate: deviceCert(t, ca, caKey, &d2.key.PublicKey, 0x99), Account: "A", Currency: 156})
	wantCode(t, err, 403, CodeRevoked)

	reg.Certificate = cert
	dev, err := l.c.Register(bg, reg)
	if err != nil {
		t.Fatal(err)
	}
	if dev.CertSerial != "1234" {
		t.Fatalf("cert serial %q", dev.CertSerial)
	}
	res, err := l.c.Authorise(bg, AuthorisationRequest{Record: d.record(100, "", l.clock.Now()), Channel: "qr"})
	if err != nil || res.Status != Approved {
		t.Fatalf("authorise: %+v %v", res, err)
	}
	// Revoking the certificate refuses the device.
	if _, err := l.c.Revoke(bg, Revocation{CertSerial: "1234"}); err != nil {
		t.Fatal(err)
	}
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.record(100, "", l.clock.Now()), Channel: "qr"})
	wantCode(t, err, 403, CodeRevoked)
	if got, _ := l.c.Device(bg, d.id); !got.Revoked {
		t.Fatal("device not shown revoked")
	}
	l.audit()
}

func TestAuthorise(t *testing.T) {
	l := newLab(t, func(c *Config) {
		// The conflicts below are refused and change no balance; with
		// this policy they leave the device in service for the next case
		// (TestCloneIsCaughtAndRevoked checks the revocation).
		c.KeepClonesInService = true
	})
	d := newSimDevice(t, "payer")
	l.register(d, 1000, "")
	pub, _ := l.c.PublicKey(bg)
	now := l.clock.Now()

	rec := d.record(300, "", now)
	res, err := l.c.Authorise(bg, AuthorisationRequest{Record: rec, Channel: "qr", Merchant: "M1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != Approved || !res.Settled || res.Balance != 700 || res.Account != MaskAccount("ACC-payer") || res.ATC != 1 {
		t.Fatalf("result: %+v", res)
	}
	if err := res.Verify(pub); err != nil {
		t.Fatal(err)
	}
	tampered := res
	tampered.Amount = 1
	if tampered.Verify(pub) == nil {
		t.Fatal("a tampered result verifies")
	}

	// The same record again: the stored answer, nothing changes.
	before := l.snapshot()
	again, err := l.c.Authorise(bg, AuthorisationRequest{Record: rec, Channel: "qr"})
	if err != nil || !again.Repeated || again.Balance != 700 || again.Verify(pub) != nil {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	// The repeat mark is signed too: a merchant takes a repeated answer
	// for a replayed code, and one stripped of the mark must not verify
	// as a new approval, nor a new approval marked as a repeat.
	for _, r := range []AuthorisationResult{again, res} {
		flipped := r
		flipped.Repeated = !r.Repeated
		if flipped.Verify(pub) == nil {
			t.Fatalf("a result with repeated %v verifies as repeated %v", r.Repeated, flipped.Repeated)
		}
	}
	// Another record with the same ATC is a replay.
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.recordATC(1, 50, "", now), Channel: "qr"})
	wantCode(t, err, 409, CodeConflict)
	// Forged: signed by another key.
	forger := newSimDevice(t, "payer")
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: forger.recordATC(9, 10, "", now), Channel: "qr"})
	wantCode(t, err, 403, CodeBadSignature)
	// Unknown device, malformed record, missing channel, the offline channel.
	stranger := newSimDevice(t, "stranger")
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: stranger.record(10, "", now), Channel: "qr"})
	wantCode(t, err, 404, CodeUnknownDevice)
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: []byte("SPR1junk"), Channel: "qr"})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.record(10, "", now)})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.record(10, "", now), Channel: ChannelOffline})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("refused authorisations changed the stored state")
	}

	// Over the balance: a signed decline, no value moves.
	dec, err := l.c.Authorise(bg, AuthorisationRequest{Record: d.record(5000, "", now), Channel: "qr"})
	if err != nil || dec.Status != Declined || dec.Balance != 700 || dec.Verify(pub) != nil {
		t.Fatalf("decline: %+v %v", dec, err)
	}
	a := l.audit()
	if a.Settled != 300 || a.Balances != 700 {
		t.Fatalf("audit: %+v", a)
	}
}

func TestAuthoriseHoldThenSettle(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "holder")
	l.register(d, 1000, "")
	rec := d.record(400, "", l.clock.Now())
	res, err := l.c.Authorise(bg, AuthorisationRequest{Record: rec, Channel: "nfc", Hold: true})
	if err != nil || res.Status != Approved || res.Settled {
		t.Fatalf("hold: %+v %v", res, err)
	}
	if a := l.audit(); a.Pending != 400 || a.Balances != 600 || a.Settled != 0 {
		t.Fatalf("audit after hold: %+v", a)
	}
	ack, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{rec}})
	if err != nil || ack.Entries[0].Status != Settled {
		t.Fatalf("capture: %+v %v", ack, err)
	}
	if a := l.audit(); a.Pending != 0 || a.Balances != 600 || a.Settled != 400 {
		t.Fatalf("audit after capture: %+v", a)
	}
	ack, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{rec}})
	if err != nil || ack.Entries[0].Status != AlreadySettled {
		t.Fatalf("resend: %+v %v", ack, err)
	}
}

func TestSettle(t *testing.T) {
	l := newLab(t, func(c *Config) {
		// The conflicts below are refused and change no balance; with
		// this policy they leave the device in service for the next case
		// (TestCloneIsCaughtAndRevoked checks the revocation).
		c.KeepClonesInService = true
	})
	a, b := newSimDevice(t, "dev-a"), newSimDevice(t, "dev-b")
	l.register(a, 1000, "")
	l.register(b, 1000, "")
	pub, _ := l.c.PublicKey(bg)
	now := l.clock.Now()
	recs := [][]byte{a.record(100, "", now), a.record(200, "", now), b.record(50, "", now)}

	ack, err := l.c.Settle(bg, SettlementBatch{BatchID: "b1", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	if err := ack.Verify(pub); err != nil {
		t.Fatal(err)
	}
	if len(ack.Entries) != 3 || ack.BatchID != "b1" {
		t.Fatalf("ack: %+v", ack)
	}
	for i, e := range ack.Entries {
		if e.Status != Settled {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	if ack.Entries[1].ATC != 2 || ack.Entries[1].Amount != 200 || ack.Entries[2].Account != MaskAccount("ACC-dev-b") {
		t.Fatalf("entries: %+v", ack.Entries)
	}
	// Sent again, with one new record: the old ones are already settled.
	recs = append(recs, b.record(25, "", now))
	ack, err = l.c.Settle(bg, SettlementBatch{BatchID: "b2", Records: recs})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []SettlementStatus{AlreadySettled, AlreadySettled, AlreadySettled, Settled} {
		if ack.Entries[i].Status != want {
			t.Fatalf("entry %d: %s, want %s", i, ack.Entries[i].Status, want)
		}
	}
	// The same record twice in one batch settles once.
	dup := a.record(10, "", now)
	ack, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{dup, dup}})
	if err != nil || ack.Entries[0].Status != Settled || ack.Entries[1].Status != AlreadySettled {
		t.Fatalf("duplicate in batch: %+v %v", ack, err)
	}
	au := l.audit()
	if au.Settled != 385 || au.RecordsSettled != 5 || au.Balances != 2000-385 {
		t.Fatalf("audit: %+v", au)
	}
	da, _ := l.c.Device(bg, devID("dev-a"))
	if da.Balance != 690 {
		t.Fatalf("dev-a balance %d", da.Balance)
	}

	// Every bad batch is refused whole, with the record at fault named.
	before := l.snapshot()
	good := a.record(1, "", now)
	forger := newSimDevice(t, "dev-a")
	stranger := newSimDevice(t, "nobody")
	for _, tc := range []struct {
		name   string
		recs   [][]byte
		status int
		code   string
		index  int
	}{
		{"forged", [][]byte{good, forger.recordATC(77, 5, "", now)}, 403, CodeBadSignature, 1},
		{"unknown device", [][]byte{good, stranger.record(5, "", now)}, 404, CodeUnknownDevice, 1},
		{"replay other content", [][]byte{good, a.recordATC(1, 999, "", now)}, 409, CodeConflict, 1},
		{"over balance", [][]byte{a.record(100000, "", now), good}, 422, CodeInsufficient, 0},
		{"malformed record", [][]byte{good, []byte("garbage")}, 400, CodeMalformed, 1},
		{"conflict within batch", [][]byte{a.recordATC(500, 5, "", now), a.recordATC(500, 6, "", now)}, 409, CodeConflict, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.c.Settle(bg, SettlementBatch{Records: tc.recs})
			ae := wantCode(t, err, tc.status, tc.code)
			if ae.Index == nil || *ae.Index != tc.index {
				t.Fatalf("index %v, want %d", ae.Index, tc.index)
			}
		})
	}
	_, err = l.c.Settle(bg, SettlementBatch{})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("refused batches changed the stored state")
	}
	l.audit()
}

func TestSettleRevokedDevice(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "lost")
	l.register(d, 1000, "")
	rec := d.record(100, "", l.clock.Now())
	if _, err := l.c.Revoke(bg, Revocation{DeviceID: devID("lost"), Reason: "reported stolen"}); err != nil {
		t.Fatal(err)
	}
	before := l.snapshot()
	_, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{rec}})
	wantCode(t, err, 403, CodeRevoked)
	_, err = l.c.Contact(bg, devID("lost"), Contact{})
	wantCode(t, err, 403, CodeRevoked)
	if l.snapshot() != before {
		t.Fatal("refused requests changed the stored state")
	}
	list, err := l.c.Revocations(bg)
	if err != nil || len(list) != 1 || list[0].DeviceID != devID("lost") || list[0].Reason != "reported stolen" {
		t.Fatalf("revocations: %+v %v", list, err)
	}
	// Revoking twice is harmless; revoking nothing or both is refused.
	if _, err := l.c.Revoke(bg, Revocation{DeviceID: devID("lost")}); err != nil {
		t.Fatal(err)
	}
	_, err = l.c.Revoke(bg, Revocation{})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Revoke(bg, Revocation{DeviceID: "a", CertSerial: "1"})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Revoke(bg, Revocation{DeviceID: devID("nobody")})
	wantCode(t, err, 404, CodeUnknownDevice)
}

// post sends raw bytes to an endpoint and decodes the error body.
func post(t *testing.T, l *lab, path string, body io.Reader) (int, ErrorBody) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, l.http.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testIssuerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

func TestBadRequestBodies(t *testing.T) {
	l := newLab(t, func(c *Config) { c.MaxBodyBytes = 4096; c.MaxBatchRecords = 3 })
	d := newSimDevice(t, "dev")
	l.register(d, 1000, "")
	before := l.snapshot()
	rec := d.record(1, "", l.clock.Now())
	recJSON, _ := json.Marshal(rec)
	paths := []string{"/v1/devices", "/v1/authorisations", "/v1/settlements", "/v1/tokens", "/v1/otp", "/v1/otp/verify",
		"/v1/revocations", "/v1/transfers", "/v1/devices/" + devID("dev") + "/contact", "/v1/devices/" + devID("dev") + "/parameters", "/v1/transfers/x/claim"}
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"empty", "", 400, CodeMalformed},
		{"not JSON", "{nope", 400, CodeMalformed},
		{"array", "[]", 400, CodeMalformed},
		{"trailing", `{} {}`, 400, CodeMalformed},
		{"unknown field", `{"surprise": 1}`, 400, CodeMalformed},
		{"oversized", `{"records": ["` + strings.Repeat("A", 5000) + `"]}`, 413, CodeTooLarge},
	} {
		for _, p := range paths {
			status, eb := post(t, l, p, strings.NewReader(tc.body))
			if status != tc.status || eb.Code != tc.code || eb.Reason == "" {
				t.Errorf("%s %s: %d %+v, want %d %s", tc.name, p, status, eb, tc.status, tc.code)
			}
		}
	}
	// Settlement specifics: too many records, bad Base64, bad batch ID.
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"records": [` + strings.Repeat(string(recJSON)+",", 3) + string(recJSON) + `]}`, 413, CodeTooLarge},
		{`{"records": ["!!!"]}`, 400, CodeMalformed},
		{`{"records": null}`, 400, CodeMalformed},
		{`{"batch_id": "` + strings.Repeat("b", 65) + `", "records": [` + string(recJSON) + `]}`, 400, CodeMalformed},
	} {
		status, eb := post(t, l, "/v1/settlements", strings.NewReader(tc.body))
		if status != tc.status || eb.Code != tc.code {
			t.Errorf("%.20s: %d %+v, want %d %s", tc.body, status, eb, tc.status, tc.code)
		}
	}
	if l.snapshot() != before {
		t.Fatal("bad bodies changed the stored state")
	}
	// The body limit holds for a body that never ends, too.
	status, _ := post(t, l, "/v1/settlements", io.LimitReader(zeroReader{}, 1<<20))
	if status != 413 {
		t.Fatalf("endless body: %d", status)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestTokenVault(t *testing.T) {
	l := newLab(t, nil)
	d, e := newSimDevice(t, "tok-dev"), newSimDevice(t, "other")
	l.register(d, 10000, "")
	l.register(e, 10000, "")
	now := l.clock.Now()
	tok, err := l.c.MintToken(bg, TokenRequest{DeviceID: d.id, MaxUses: 2, MaxAmount: 500,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), Channels: []string{"qr", ChannelOffline}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token == "" || tok.Uses != 0 || tok.MaxUses != 2 || len(tok.Channels) != 2 {
		t.Fatalf("minted: %+v", tok)
	}
	// Registering a chosen token value, twice.
	if _, err := l.c.MintToken(bg, TokenRequest{DeviceID: d.id, Token: "A1B2C3"}); err != nil {
		t.Fatal(err)
	}
	_, err = l.c.MintToken(bg, TokenRequest{DeviceID: d.id, Token: "A1B2C3"})
	wantCode(t, err, 409, CodeConflict)
	_, err = l.c.MintToken(bg, TokenRequest{DeviceID: devID("nobody")})
	wantCode(t, err, 404, CodeUnknownDevice)
	_, err = l.c.MintToken(bg, TokenRequest{DeviceID: d.id, NotBefore: now, NotAfter: now.Add(-time.Second)})
	wantCode(t, err, 400, CodeMalformed)

	before := l.snapshot()
	for _, tc := range []struct {
		name    string
		dev     *simDevice
		token   string
		amount  int64
		channel string
		status  int
		code    string
	}{
		{"over amount", d, tok.Token, 501, "qr", 422, CodeTokenRefused},
		{"wrong channel", d, tok.Token, 100, "nfc", 422, CodeTokenRefused},
		{"another device's token", e, tok.Token, 100, "qr", 422, CodeTokenRefused},
		{"unknown token", d, "DEADBEEF", 100, "qr", 404, CodeUnknownToken},
	} {
		_, err := l.c.Authorise(bg, AuthorisationRequest{Record: tc.dev.record(tc.amount, tc.token, now), Channel: tc.channel})
		wantCode(t, err, tc.status, tc.code)
	}
	if l.snapshot() != before {
		t.Fatal("refused token uses changed the stored state")
	}
	// Use 1 online, use 2 offline (settlement detokenises), use 3 refused.
	res, err := l.c.Authorise(bg, AuthorisationRequest{Record: d.record(500, tok.Token, now), Channel: "qr"})
	if err != nil || res.Account != MaskAccount("ACC-tok-dev") {
		t.Fatalf("use 1: %+v %v", res, err)
	}
	ack, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{d.record(200, tok.Token, now)}})
	if err != nil || ack.Entries[0].Account != MaskAccount("ACC-tok-dev") {
		t.Fatalf("use 2: %+v %v", ack, err)
	}
	_, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{d.record(100, tok.Token, now)}})
	wantCode(t, err, 422, CodeTokenRefused)
	got, err := l.c.Token(bg, tok.Token)
	if err != nil || got.Uses != 2 {
		t.Fatalf("token after use: %+v %v", got, err)
	}
	// Validity: an offline record made after expiry, and an online use after it.
	tok2, _ := l.c.MintToken(bg, TokenRequest{DeviceID: d.id, NotAfter: now.Add(time.Minute)})
	_, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{d.record(100, tok2.Token, now.Add(2*time.Minute))}})
	wantCode(t, err, 422, CodeTokenRefused)
	l.clock.Advance(2 * time.Minute)
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.record(100, tok2.Token, now), Channel: "qr"})
	wantCode(t, err, 422, CodeTokenRefused)
	tok3, _ := l.c.MintToken(bg, TokenRequest{DeviceID: d.id, NotBefore: l.clock.Now().Add(time.Hour)})
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: d.record(100, tok3.Token, now), Channel: "qr"})
	wantCode(t, err, 422, CodeTokenRefused)
	_, err = l.c.Token(bg, "DEADBEEF")
	wantCode(t, err, 404, CodeUnknownToken)

	// An account token given at registration has no controls.
	f := newSimDevice(t, "embedded")
	if _, err := l.c.Register(bg, Registration{DeviceID: f.id, PublicKey: f.pkix(), Account: "ACC-F", AccountToken: "E3B0", Currency: 156, InitialBalance: 100}); err != nil {
		t.Fatal(err)
	}
	ack, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{f.record(60, "E3B0", now)}})
	if err != nil || ack.Entries[0].Account != MaskAccount("ACC-F") {
		t.Fatalf("embedded token: %+v %v", ack, err)
	}
	l.audit()
}

func TestParameterUpdates(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "param-dev")
	l.register(d, 100, "")
	tier := uint8(2)
	for i, u := range []ParameterUpdate{{TopUp: 500}, {Tier: &tier, Limits: &spd.Limits{MaxPayment: 1000, MaxPending: 3000, MaxOfflineCount: 5}}} {
		got, err := l.c.QueueParameter(bg, d.id, u)
		if err != nil || got.Counter != int64(i+1) || len(got.Command) == 0 {
			t.Fatalf("queue %d: %+v %v", i, got, err)
		}
	}
	// The top-up is issued value from the moment it is queued.
	if a := l.audit(); a.Issued != 600 || a.Balances != 600 {
		t.Fatalf("audit after top-up: %+v", a)
	}
	reply, err := l.c.Contact(bg, d.id, Contact{})
	if err != nil || len(reply.Updates) != 2 || reply.Updates[0].TopUp != 500 || reply.Updates[1].Counter != 2 {
		t.Fatalf("first contact: %+v %v", reply, err)
	}
	// The command is the host-signed UPDATE PARAMETERS the device checks.
	cmd, err := apdu.ParseCommand(reply.Updates[1].Command)
	if err != nil {
		t.Fatal(err)
	}
	body, err := spd.OpenIssuerData(l.srv.PublicKey(), spd.INSUpdateParameters, d.raw, cmd.Data)
	if err != nil {
		t.Fatal(err)
	}
	pu, err := spd.ParseParameterUpdate(body)
	if err != nil || pu.Counter != 2 || pu.Tier == nil || *pu.Tier != 2 || pu.Limits == nil || pu.Limits.MaxPayment != 1000 {
		t.Fatalf("update command: %+v %v", pu, err)
	}
	// The device applied counter 1 only: counter 2 comes again, once.
	bal, atc := int64(590), uint32(3)
	reply, err = l.c.Contact(bg, d.id, Contact{Applied: 1, Balance: &bal, ATC: &atc})
	if err != nil || len(reply.Updates) != 1 || reply.Updates[0].Counter != 2 {
		t.Fatalf("second contact: %+v %v", reply, err)
	}
	reply, err = l.c.Contact(bg, d.id, Contact{Applied: 2})
	if err != nil || len(reply.Updates) != 0 {
		t.Fatalf("third contact: %+v %v", reply, err)
	}
	dev, _ := l.c.Device(bg, d.id)
	if dev.ParameterApplied != 2 || dev.ParameterCounter != 2 || dev.ReportedBalance == nil || *dev.ReportedBalance != 590 || *dev.ReportedATC != 3 {
		t.Fatalf("device: %+v", dev)
	}
	before := l.snapshot()
	_, err = l.c.Contact(bg, d.id, Contact{Applied: 3})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Contact(bg, devID("nobody"), Contact{})
	wantCode(t, err, 404, CodeUnknownDevice)
	// A reported balance is an amount (0..2^53): a terminal cannot store
	// one the audit would find out of range (and turn /healthz to 503).
	for _, b := range []int64{-1, maxAmount + 1, 1 << 62} {
		_, err = l.term.Contact(bg, d.id, Contact{Balance: &b})
		wantCode(t, err, 400, CodeMalformed)
	}
	_, err = l.c.QueueParameter(bg, devID("nobody"), ParameterUpdate{TopUp: 1})
	wantCode(t, err, 404, CodeUnknownDevice)
	_, err = l.c.QueueParameter(bg, d.id, ParameterUpdate{})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.QueueParameter(bg, d.id, ParameterUpdate{TopUp: -5})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.QueueParameter(bg, d.id, ParameterUpdate{Counter: 7, TopUp: 1})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("refused requests changed the stored state")
	}
	if a := l.audit(); a.ReportedBalances != 590 {
		t.Fatalf("audit: %+v", a)
	}
}

func TestOTP(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "otp-dev")
	l.register(d, 100, "+8613800000002")
	quiet := newSimDevice(t, "no-phone")
	l.register(quiet, 100, "")
	code := func() string {
		sms, ok := l.srv.Outbox().Last("+8613800000002")
		if !ok {
			t.Fatal("no SMS sent")
		}
		c, ok := OTPCode(sms.Text)
		if !ok {
			t.Fatalf("no code in %q", sms.Text)
		}
		return c
	}
	wrong := func(c string) string {
		if c == "000000" {
			return "000001"
		}
		return "000000"
	}

	ch, err := l.c.RequestOTP(bg, OTPRequest{DeviceID: d.id, Purpose: "transfer"})
	if err != nil || ch.Tries != 3 || !ch.ExpiresAt.After(l.clock.Now()) {
		t.Fatalf("request: %+v %v", ch, err)
	}
	c := code()
	_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: wrong(c)})
	ae := wantCode(t, err, 401, CodeOTPWrong)
	if ae.TriesLeft == nil || *ae.TriesLeft != 2 {
		t.Fatalf("tries left %v", ae.TriesLeft)
	}
	v, err := l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: c})
	if err != nil || !v.Verified || v.DeviceID != d.id || v.Purpose != "transfer" {
		t.Fatalf("verify: %+v %v", v, err)
	}
	_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: c})
	wantCode(t, err, 409, CodeConflict)

	// Three wrong answers lock the code, even against the right one.
	ch, _ = l.c.RequestOTP(bg, OTPRequest{DeviceID: d.id})
	c = code()
	for i := 0; i < 3; i++ {
		_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: wrong(c)})
		wantCode(t, err, 401, CodeOTPWrong)
	}
	_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: c})
	wantCode(t, err, 403, CodeOTPLocked)

	// Expired.
	ch, _ = l.c.RequestOTP(bg, OTPRequest{DeviceID: d.id})
	c = code()
	l.clock.Advance(6 * time.Minute)
	_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: c})
	wantCode(t, err, 410, CodeOTPExpired)

	_, err = l.c.VerifyOTP(bg, OTPAnswer{ID: "nosuch", Code: "123456"})
	wantCode(t, err, 404, CodeUnknownOTP)
	_, err = l.c.RequestOTP(bg, OTPRequest{DeviceID: devID("nobody")})
	wantCode(t, err, 404, CodeUnknownDevice)
	_, err = l.c.RequestOTP(bg, OTPRequest{DeviceID: quiet.id})
	wantCode(t, err, 422, CodeMalformed)
	if n := len(l.srv.Outbox().Messages()); n != 3 {
		t.Fatalf("%d messages sent, want 3", n)
	}
}

// TestTransfers: an online transfer moves value on both devices. The
// payer's device debited (TRANSFER) before the backend hears of it; the
// backend settles that debit, carries the medium, and credits the payee
// only with the payee device's own import record; after expiry it signs a
// RECLAIM only while no import reached it, and refuses the import after.
func TestTransfers(t *testing.T) {
	l := newLab(t, nil)
	p, q, r := newSimDevice(t, "payer"), newSimDevice(t, "payee"), newSimDevice(t, "other")
	l.register(p, 1000, "")
	l.register(q, 0, "")
	l.register(r, 0, "")
	balance := func(id string) int64 {
		d, err := l.c.Device(bg, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.Balance
	}
	now := l.clock.Now()
	med, out := p.transferOut(q, 1, 200, now, now.Add(time.Hour))

	// Refused: nothing stored.
	before := l.snapshot()
	_, err := l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: med})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t1", Record: out})
	wantCode(t, err, 400, CodeMalformed)
	otherMed, otherOut := p.transferOut(q, 2, 300, now, now.Add(time.Hour))
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: otherMed, Record: out})
	wantCode(t, err, 400, CodeMalformed)
	forged, _ := r.transferOut(q, 1, 200, now, now.Add(time.Hour)) // signed by another device's key
	forgedInfo, _ := medium.Parse(forged)
	forgedInfo.Info.DeviceID, forgedInfo.Info.PayerID = p.raw, p.raw
	forged, _ = medium.Sign(forgedInfo.Info, r.key)
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: forged, Record: out})
	wantCode(t, err, 403, CodeBadSignature)
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: med, Record: q.transferIn(p, 1, 200, now)})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("refused transfers changed the stored state")
	}

	tr, err := l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: med, Record: out})
	if err != nil || tr.State != TransferInFlight || tr.From != p.id || tr.To != q.id || tr.Amount != 200 || tr.Serial != 1 || len(tr.Acknowledge) != 1 {
		t.Fatalf("transfer: %+v %v", tr, err)
	}
	if balance(p.id) != 800 || balance(q.id) != 0 {
		t.Fatal("the payer's debit did not settle, or the payee was credited before its device imported")
	}
	if a := l.audit(); a.InFlight != 200 || a.TransfersHeld != 1 {
		t.Fatalf("audit: %+v", a)
	}
	again, err := l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: med, Record: out})
	if err != nil || !again.Repeated || balance(p.id) != 800 {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t9", Medium: med, Record: out})
	wantCode(t, err, 409, CodeConflict)
	_, err = l.term.Transfer(bg, TransferRequest{TransferID: "t1", Medium: otherMed, Record: otherOut})
	wantCode(t, err, 409, CodeConflict)
	got, err := l.term.TransferState(bg, "t1")
	if err != nil || !bytes.Equal(got.Medium, med) {
		t.Fatalf("the payee's terminal gets the medium: %+v %v", got, err)
	}

	// The claim: the payee's import record, and only that.
	before = l.snapshot()
	_, err = l.term.ClaimTransfer(bg, "t1", TransferAction{DeviceID: r.id, Record: r.transferIn(p, 1, 200, now)})
	wantCode(t, err, 403, CodeTransferState)
	_, err = l.term.ClaimTransfer(bg, "t1", TransferAction{DeviceID: q.id, Record: q.transferIn(p, 1, 201, now)})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.term.ClaimTransfer(bg, "t1", TransferAction{DeviceID: q.id})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.term.ClaimTransfer(bg, "nosuch", TransferAction{DeviceID: q.id, Record: q.transferIn(p, 1, 200, now)})
	wantCode(t, err, 404, CodeUnknownTransfer)
	if l.snapshot() != before {
		t.Fatal("refused claims changed the stored state")
	}
	q.atc = 0
	in := q.transferIn(p, 1, 200, now)
	tr, err = l.term.ClaimTransfer(bg, "t1", TransferAction{DeviceID: q.id, Record: in})
	if err != nil || tr.State != TransferClaimed || len(tr.Acknowledge) != 1 || balance(q.id) != 200 || balance(p.id) != 800 {
		t.Fatalf("claim: %+v %v", tr, err)
	}
	tr, err = l.term.ClaimTransfer(bg, "t1", TransferAction{DeviceID: q.id, Record: in})
	if err != nil || !tr.Repeated || balance(q.id) != 200 {
		t.Fatalf("claim again: %+v %v", tr, err)
	}
	_, err = l.term.ReclaimTransfer(bg, "t1", p.action(TransferReclaimed, "t1"))
	wantCode(t, err, 409, CodeTransferState) // not expired
	l.clock.Advance(2 * time.Hour)
	_, err = l.term.ReclaimTransfer(bg, "t1", p.action(TransferReclaimed, "t1"))
	wantCode(t, err, 409, CodeConflict) // imported
	if a := l.audit(); a.InFlight != 0 || a.Balances != 1000 {
		t.Fatalf("audit: %+v", a)
	}

	// Unclaimed, expired: the payer's device gets a RECLAIM order, and the
	// payee's import is refused from then on.
	now = l.clock.Now()
	med2, out2 := p.transferOut(q, 2, 50, now, now.Add(time.Hour))
	if _, err := l.term.Transfer(bg, TransferRequest{TransferID: "t2", Medium: med2, Record: out2}); err != nil {
		t.Fatal(err)
	}
	_, err = l.term.ReclaimTransfer(bg, "t2", p.action(TransferReclaimed, "t2"))
	wantCode(t, err, 409, CodeTransferState)
	l.clock.Advance(2 * time.Hour)
	_, err = l.term.ReclaimTransfer(bg, "t2", q.action(TransferReclaimed, "t2"))
	wantCode(t, err, 403, CodeTransferState) // the payee
	forgedAction := p.action(TransferReclaimed, "t2")
	forgedAction.Signature = q.authenticate(TransferActionChallenge(TransferReclaimed, "t2", p.id))
	_, err = l.term.ReclaimTransfer(bg, "t2", forgedAction)
	wantCode(t, err, 403, CodeBadSignature)
	tr, err = l.term.ReclaimTransfer(bg, "t2", p.action(TransferReclaimed, "t2"))
	if err != nil || tr.State != TransferReclaimOrdered || len(tr.Reclaim) == 0 || balance(p.id) != 750 {
		t.Fatalf("reclaim: %+v %v", tr, err)
	}
	cmd, err := apdu.ParseCommand(tr.Reclaim)
	if err != nil {
		t.Fatal(err)
	}
	body, err := spd.OpenIssuerData(l.srv.PublicKey(), spd.INSReclaim, p.raw, cmd.Data)
	if err != nil {
		t.Fatalf("RECLAIM not signed with the host key for the payer: %v", err)
	}
	_ = body
	_, err = l.term.ClaimTransfer(bg, "t2", TransferAction{DeviceID: q.id, Record: q.transferIn(p, 2, 50, now)})
	wantCode(t, err, 409, CodeConflict)
	p.atc++
	rc := p.sign(spd.PendingRecord{ATC: p.atc, Kind: spd.KindReclaim, Mode: spd.ModeOffline, Amount: 50, Time: l.clock.Now(), Serial: 2, Counterpart: q.raw})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{rc}}); err != nil {
		t.Fatal(err)
	}
	got, err = l.term.TransferState(bg, "t2")
	if err != nil || got.State != TransferReclaimed || balance(p.id) != 800 {
		t.Fatalf("after the reclaim settled: %+v %v", got, err)
	}
	if a := l.audit(); a.InFlight != 0 || a.Balances != 1000 {
		t.Fatalf("audit: %+v", a)
	}
}

// TestOnlineTransferOfASettledImport: the medium and transfer-out record of
// a transfer whose import already reached the backend (the payee's
// transfer-in settled offline, before or after the payer's transfer-out)
// sent to POST /v1/transfers are stored in the state the devices' records
// give (claimed), so the books stay conserved. Before, the transfer was
// stored in flight against records that closed it: the audit found a
// discrepancy and /healthz turned 503.
func TestOnlineTransferOfASettledImport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batches func(out, in []byte) [][][]byte // settled before POST /v1/transfers
	}{
		{"transfer-out and import settled", func(out, in []byte) [][][]byte { return [][][]byte{{out, in}} }},
		{"import settled alone, held", func(out, in []byte) [][][]byte { return [][][]byte{{in}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, nil)
			p, q := newSimDevice(t, "payer"), newSimDevice(t, "payee")
			l.register(p, 1000, "")
			l.register(q, 0, "")
			now := l.clock.Now()
			med, out := p.transferOut(q, 5, 300, now, now.Add(time.Hour))
			in := q.transferIn(p, 5, 300, now)
			for _, b := range tc.batches(out, in) {
				if _, err := l.term.Settle(bg, SettlementBatch{Records: b}); err != nil {
					t.Fatal(err)
				}
			}
			tr, err := l.term.Transfer(bg, TransferRequest{TransferID: "late", Medium: med, Record: out})
			if err != nil || tr.State != TransferClaimed {
				t.Fatalf("transfer: %+v %v", tr, err)
			}
			a := l.audit()
			if a.InFlight != 0 || a.Balances != 1000 {
				t.Fatalf("audit: %+v", a)
			}
			if err := l.c.Health(bg); err != nil {
				t.Fatal(err)
			}
			got, err := l.term.ClaimTransfer(bg, "late", TransferAction{DeviceID: q.id, Record: in})
			if err != nil || got.State != TransferClaimed || !got.Repeated {
				t.Fatalf("claim: %+v %v", got, err)
			}
			l.clock.Advance(2 * time.Hour)
			_, err = l.term.ReclaimTransfer(bg, "late", p.action(TransferReclaimed, "late"))
			wantCode(t, err, 409, CodeConflict)
			l.audit()
		})
	}
}

// TestTransferClosesPayerEitherOrder: whichever device settles first, the
// payer's device is told to close the transfer (ACKNOWLEDGE DF61): in the
// batch that closes it, and at every contact of the payer after.
func TestTransferClosesPayerEitherOrder(t *testing.T) {
	for _, payerFirst := range []bool{true, false} {
		l := newLab(t, nil)
		p, q := newSimDevice(t, "payer"), newSimDevice(t, "payee")
		l.register(p, 1000, "")
		l.register(q, 0, "")
		now := l.clock.Now()
		_, out := p.transferOut(q, 5, 300, now, now.Add(time.Hour))
		in := q.transferIn(p, 5, 300, now)
		first, second := out, in
		if !payerFirst {
			first, second = in, out
		}
		for _, rec := range [][]byte{first, second} {
			if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{rec}}); err != nil {
				t.Fatal(err)
			}
		}
		reply, err := l.term.Contact(bg, p.id, Contact{})
		if err != nil {
			t.Fatal(err)
		}
		if len(reply.Acknowledge) != 1 {
			t.Fatalf("payer first %v: the payer's contact carries %d ACKNOWLEDGE commands, want 1", payerFirst, len(reply.Acknowledge))
		}
		cmd, err := apdu.ParseCommand(reply.Acknowledge[0])
		if err != nil {
			t.Fatal(err)
		}
		body, err := spd.OpenIssuerData(l.srv.PublicKey(), spd.INSAcknowledge, p.raw, cmd.Data)
		if err != nil {
			t.Fatal(err)
		}
		sa, err := spd.ParseAcknowledgement(body)
		if err != nil || len(sa.Serials) != 1 || sa.Serials[0] != 5 || len(sa.ATCs) != 0 {
			t.Fatalf("payer first %v: ACKNOWLEDGE %+v %v", payerFirst, sa, err)
		}
		if reply, err := l.term.Contact(bg, q.id, Contact{}); err != nil || len(reply.Acknowledge) != 0 {
			t.Fatalf("the payee closes nothing: %+v %v", reply, err)
		}
		l.audit()
	}
}

func TestClientErrors(t *testing.T) {
	if _, err := NewClient("ftp://x", nil); err == nil {
		t.Fatal("ftp base URL accepted")
	}
	c, err := NewClient("http://127.0.0.1:1", &http.Client{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(bg); err == nil || !strings.HasPrefix(err.Error(), "backend: ") {
		t.Fatalf("health of nothing: %v", err)
	}
}

func TestListenAndServe(t *testing.T) {
	l := newLab(t, nil)
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	lnr, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- l.srv.Serve(ctx, lnr) }()
	c, _ := NewClient("http://"+lnr.Addr().String(), nil)
	var herr error
	for i := 0; i < 50; i++ {
		if herr = c.Health(bg); herr == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if herr != nil {
		t.Fatal(herr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSettleAcknowledgementAndOfflineTransfers(t *testing.T) {
	l := newLab(t, nil)
	p, q := newSimDevice(t, "payer"), newSimDevice(t, "payee")
	l.register(p, 1000, "")
	l.register(q, 0, "")
	now := l.clock.Now()
	pay := p.record(100, "", now)
	out := p.sign(spd.PendingRecord{ATC: 2, Kind: spd.KindTransferOut, Mode: spd.ModeOffline, Amount: 300, Time: now, Serial: 77, Counterpart: q.raw})
	p.atc = 2
	ack, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{pay, out}})
	if err != nil {
		t.Fatal(err)
	}
	if a := l.audit(); a.InFlight != 300 || a.Balances != 600 || a.Settled != 100 {
		t.Fatalf("audit after transfer-out: %+v", a)
	}
	// The payer's ACKNOWLEDGE names both ATCs and is signed with the host key.
	if len(ack.Acknowledgements) != 1 || ack.Acknowledgements[0].DeviceID != p.id || len(ack.Acknowledgements[0].Commands) != 1 {
		t.Fatalf("acknowledgements: %+v", ack.Acknowledgements)
	}
	cmd, err := apdu.ParseCommand(ack.Acknowledgements[0].Commands[0])
	if err != nil {
		t.Fatal(err)
	}
	body, err := spd.OpenIssuerData(l.srv.PublicKey(), spd.INSAcknowledge, p.raw, cmd.Data)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := spd.ParseAcknowledgement(body)
	if err != nil || len(sa.ATCs) != 2 || sa.ATCs[0] != 1 || sa.ATCs[1] != 2 {
		t.Fatalf("ACKNOWLEDGE: %+v %v", sa, err)
	}
	// The payee imports: value leaves flight; the payer's serial is closed.
	in := q.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 300, Time: now, Serial: 77, Counterpart: p.raw})
	ack, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{in}})
	if err != nil {
		t.Fatal(err)
	}
	if a := l.audit(); a.InFlight != 0 || a.Balances != 900 {
		t.Fatalf("audit after transfer-in: %+v", a)
	}
	var payerAck *DeviceAcknowledgement
	for i := range ack.Acknowledgements {
		if ack.Acknowledgements[i].DeviceID == p.id {
			payerAck = &ack.Acknowledgements[i]
		}
	}
	if payerAck == nil || len(payerAck.Serials) != 1 || payerAck.Serials[0] != 77 {
		t.Fatalf("payer's acknowledgement: %+v", ack.Acknowledgements)
	}
	// Reclaiming an imported transfer is a double spend.
	before := l.snapshot()
	rc := p.sign(spd.PendingRecord{ATC: 3, Kind: spd.KindReclaim, Mode: spd.ModeOffline, Amount: 300, Time: now, Serial: 77, Counterpart: q.raw})
	_, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{rc}})
	wantCode(t, err, 409, CodeConflict)
	// A transfer-in for more than was sent is refused too.
	in2 := q.sign(spd.PendingRecord{ATC: 2, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 999, Time: now, Serial: 77, Counterpart: p.raw})
	_, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{in2}})
	wantCode(t, err, 409, CodeConflict)
	if l.snapshot() != before {
		t.Fatal("refused transfer records changed the stored state")
	}
	// A transfer record cannot be authorised online.
	_, err = l.c.Authorise(bg, AuthorisationRequest{Record: rc, Channel: "qr"})
	wantCode(t, err, 400, CodeMalformed)
}

// TestSPDIssuer registers a device the way spd personalises one: a
// certificate from the issuer CA naming the device ID, and the issuer's host
// key as the backend key, so the device accepts the backend's commands.
func TestSPDIssuer(t *testing.T) {
	is, err := issuer.Generate("Lab Bank")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(is.CACertificate)
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, func(c *Config) { c.Keys = Keys{Signer: is.HostKey(), IssuerCA: ca} })
	d := newSimDevice(t, "spd-dev")
	cert, err := is.Certify(d.raw, &d.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// The certificate names the device: it cannot register another ID.
	_, err = l.c.Register(bg, Registration{DeviceID: devID("someone-else"), Certificate: cert, Account: "A", Currency: 156})
	wantCode(t, err, 400, CodeBadCertificate)
	dev, err := l.c.Register(bg, Registration{DeviceID: d.id, Certificate: cert, Account: "ACC", Currency: 156, InitialBalance: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{d.record(10, "", l.clock.Now())}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := apdu.ParseCommand(ack.Acknowledgements[0].Commands[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spd.OpenIssuerData(&is.HostKey().PublicKey, spd.INSAcknowledge, d.raw, cmd.Data); err != nil {
		t.Fatalf("ACKNOWLEDGE not signed with the issuer's host key: %v", err)
	}
	// Certificate revocation by serial.
	if _, err := l.c.Revoke(bg, Revocation{CertSerial: dev.CertSerial}); err != nil {
		t.Fatal(err)
	}
	_, err = l.c.Settle(bg, SettlementBatch{Records: [][]byte{d.record(10, "", l.clock.Now())}})
	wantCode(t, err, 403, CodeRevoked)
}

// TestConcurrentWritesCommitTogether sends good and bad batches at once, so
// that they share group commits: a bad batch's partial changes are rolled
// back and nothing else is.
func TestConcurrentWritesCommitTogether(t *testing.T) {
	l := newLab(t, nil)
	const n = 24
	devs := make([]*simDevice, n)
	for i := range devs {
		devs[i] = newSimDevice(t, fmt.Sprintf("group-%d", i))
		l.register(devs[i], 1000, "")
	}
	now := l.clock.Now()
	type outcome struct {
		i   int
		err error
	}
	results := make(chan outcome, n)
	var wg sync.WaitGroup
	for i, d := range devs {
		recs := [][]byte{d.record(100, "", now), d.record(200, "", now)}
		if i%2 == 1 {
			// The second record is over the balance: the first, already
			// written inside the transaction, must be rolled back too.
			recs[1] = d.recordATC(2, 5000, "", now)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := l.c.Settle(bg, SettlementBatch{Records: recs})
			results <- outcome{i, err}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.i%2 == 0 && r.err != nil {
			t.Errorf("good batch %d: %v", r.i, r.err)
		}
		if r.i%2 == 1 {
			wantCode(t, r.err, 422, CodeInsufficient)
		}
	}
	a := l.audit()
	if a.RecordsSettled != n || a.Settled != n/2*300 {
		t.Fatalf("audit: %+v", a)
	}
	for i, d := range devs {
		got, _ := l.c.Device(bg, d.id)
		want := int64(1000)
		if i%2 == 0 {
			want = 700
		}
		if got.Balance != want {
			t.Errorf("device %d balance %d, want %d", i, got.Balance, want)
		}
	}
}

func TestParseKeys(t *testing.T) {
	is, err := issuer.Generate("Lab Bank")
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(is.HostKey())
	sec1, _ := x509.MarshalECPrivateKey(is.HostKey())
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.CACertificate})
	for _, signer := range [][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		p8,
	} {
		k, err := ParseKeys(signer, caPEM)
		if err != nil {
			t.Fatal(err)
		}
		if !k.Signer.Equal(is.HostKey()) || k.IssuerCA == nil {
			t.Fatalf("keys: %+v", k)
		}
	}
	if k, err := ParseKeys(nil, nil); err != nil || k.Signer != nil || k.IssuerCA != nil {
		t.Fatalf("empty: %+v %v", k, err)
	}
	if _, err := ParseKeys([]byte("junk"), nil); err == nil {
		t.Fatal("junk signer accepted")
	}
	if _, err := ParseKeys(nil, []byte("junk")); err == nil {
		t.Fatal("junk CA accepted")
	}
}

// A body that names a key twice, in the same case or another, is refused
// whole: encoding/json would act on the last, where another reader of the
// same bytes may take the first.
func TestDuplicateKeysRefused(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "dev")
	l.register(d, 1000, "")
	before := l.snapshot()
	rec, _ := json.Marshal(d.record(1, "", l.clock.Now()))
	other, _ := json.Marshal(d.record(999, "", l.clock.Now()))
	for _, body := range []string{
		`{"record": ` + string(other) + `, "channel": "qr", "record": ` + string(rec) + `}`,
		`{"Record": ` + string(other) + `, "channel": "qr", "record": ` + string(rec) + `}`,
		`{"record": ` + string(rec) + `, "channel": "nfc", "CHANNEL": "qr"}`,
		`{"record": ` + string(rec) + `, "channel": "qr", "merchant": "m1", "Merchant": "m2"}`,
	} {
		status, eb := post(t, l, "/v1/authorisations", strings.NewReader(body))
		if status != 400 || eb.Code != CodeMalformed || !strings.Contains(eb.Reason, "named twice") {
			t.Errorf("%.60s...: %d %+v, want 400 %s naming the key", body, status, eb, CodeMalformed)
		}
	}
	if l.snapshot() != before {
		t.Fatal("a body naming a key twice changed the stored state")
	}
	// The same keys in different objects, and in order, are one request.
	status, eb := post(t, l, "/v1/authorisations", strings.NewReader(`{"record": `+string(rec)+`, "channel": "qr"}`))
	if status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("the request with each key once: %d %+v", status, eb)
	}
}

func TestUniqueKeys(t *testing.T) {
	for _, tc := range []struct {
		body string
		dup  string // the key named twice, "" for none
	}{
		{`{"a": 1, "b": {"a": 2, "c": [{"a": 3}, {"a": 4}]}, "c": "a"}`, ""},
		{`[{"a": 1}, {"a": 1}]`, ""},
		{`{"a": ["a", "a"], "b": "a"}`, ""},
		{`{"a": 1, "a": 2}`, "a"},
		{`{"a": {"x": 1, "X": 2}}`, "X"},
		{`{"records": [{"atc": 1}, {"atc": 2, "ATC": 3}]}`, "ATC"},
		{`{"k": 1, "\u212a": 2}`, "\u212a"},
		{`{"s": 1, "\u017f": 2}`, "\u017f"},
		{`{"a": {}, "b": [], "a": null}`, "a"},
		{`{"a": 1, "a"`, "a"},
		{`{nope`, ""},
		{`{"a": 1, "\u0061": 2}`, "a"},
		{`{"a\"": 1, "a": 2, "b": "x\\", "c": "{\"c\": 1, \"c\": 2}"}`, ""},
		{manyKeys(40, "k7"), "k7"},
		{manyKeys(40, "K39"), "K39"},
		{manyKeys(40, "\u212a3"), "K3"},
		{manyKeys(40), ""},
		{`{"\u0131": 1, "i": 2, "I": 3}`, "I"},
		{manyKeys(40, "i", "\u0131"), ""},
		{`{"\u017f": 1, "S": 2}`, "S"},
		{manyKeys(40, "\u017f", "S"), "S"},
	} {
		err := uniqueKeys([]byte(tc.body))
		switch {
		case tc.dup == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.dup != "" && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.dup))):
			t.Errorf("%s: %v, want %q named twice", tc.body, err, tc.dup)
		}
	}
}

// manyKeys is an object of keys k0..k(n-1), and then the keys extra.
func manyKeys(n int, extra ...string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, `"k%d": %d, `, i, i)
	}
	for _, k := range extra {
		fmt.Fprintf(&b, `"%s": 0, `, k)
	}
	b.WriteString(`"end": 0}`)
	return b.String()
}
