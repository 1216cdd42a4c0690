package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/clock"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// fuzzTime is a fixed record time for seeds.
var fuzzTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The credentials of a test lab.
const (
	testIssuerToken   = "issuer-0123456789abcdef0123456789abcdef"
	testTerminalToken = "terminal-0123456789abcdef0123456789abcd"
)

// lab is a backend under test with its HTTP server and two clients: c
// holds the issuer's credential, term a terminal's.
type lab struct {
	t     testing.TB
	srv   *Server
	http  *httptest.Server
	c     *Client
	term  *Client
	clock *clock.Simulated
	db    string // the SQLite path or the PostgreSQL URL
	cfg   Config
}

// labStart is the time on a new lab's clock.
var labStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newLab opens a backend on a new database (labDB) with a simulated clock
// at labStart, serves it over HTTP, and closes both when the test ends.
func newLab(t testing.TB, mod func(*Config)) *lab {
	t.Helper()
	return newLabOn(t, labDB(t), mod)
}

// newLabOn is newLab on database db (an SQLite path or a PostgreSQL URL).
func newLabOn(t testing.TB, db string, mod func(*Config)) *lab {
	t.Helper()
	clk := clock.NewSimulated(labStart)
	cfg := dbConfig(db)
	cfg.Now, cfg.IssuerToken, cfg.TerminalToken = clk.Now, testIssuerToken, testTerminalToken
	if mod != nil {
		mod(&cfg)
	}
	srv, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if abortFirstAttempts {
		srv.abortAttempt = abortFirst
	}
	hs := httptest.NewServer(srv.Handler())
	c, err := NewClient(hs.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Credential = cfg.IssuerToken
	term, _ := NewClient(hs.URL, nil)
	term.Credential = cfg.TerminalToken
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &lab{t: t, srv: srv, http: hs, c: c, term: term, clock: clk, db: db, cfg: cfg}
}

// simDevice is a simulated device: its key and transaction counter.
type simDevice struct {
	name string
	id   string
	raw  []byte
	key  *ecdsa.PrivateKey
	atc  uint32
}

// devID is the device ID a test device of that name gets.
func devID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return spd.DeviceIDString(sum[:spd.DeviceIDLen])
}

func newSimDevice(t testing.TB, name string) *simDevice {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(name))
	return &simDevice{name: name, id: devID(name), raw: sum[:spd.DeviceIDLen], key: k}
}

func (d *simDevice) pkix() []byte {
	der, err := x509.MarshalPKIXPublicKey(&d.key.PublicKey)
	if err != nil {
		panic(err)
	}
	return der
}

// record makes the next signed record of the device.
func (d *simDevice) record(amount int64, token string, at time.Time) []byte {
	d.atc++
	return d.recordATC(d.atc, amount, token, at)
}

func (d *simDevice) recordATC(atc uint32, amount int64, token string, at time.Time) []byte {
	tok, err := hex.DecodeString(token)
	if err != nil {
		panic(err)
	}
	return d.sign(spd.PendingRecord{ATC: atc, Amount: amount, Token: tok, Kind: spd.KindBalance, Mode: spd.ModeOffline, Time: at})
}

// sign completes and signs a record of the device.
func (d *simDevice) sign(r spd.PendingRecord) []byte {
	r.DeviceID = d.raw
	if r.Currency == 0 {
		r.Currency = 156
	}
	if r.Kind.IsPayment() && r.Nonce == nil {
		// The payment nonce (SPD-PAY-8), fixed by what the test varies, so
		// that a record signed again has the same body.
		sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d/%x", r.ATC, r.Amount, r.Time.Unix(), r.Token))
		r.Nonce = sum[:16]
	}
	if err := r.Sign(d.key); err != nil {
		panic(err)
	}
	return r.Marshal()
}

// authenticate answers a challenge as INTERNAL AUTHENTICATE does.
func (d *simDevice) authenticate(challenge []byte) []byte {
	sig, err := ecdsa.SignASN1(rand.Reader, d.key, spd.AuthenticationDigest(d.raw, challenge))
	if err != nil {
		panic(err)
	}
	return sig
}

// transferOut is what the device's TRANSFER makes (SPEC.md SPD-XFR-1): the
// next ATC, the transfer medium signed by its key, and its signed
// transfer-out record.
func (d *simDevice) transferOut(to *simDevice, serial uint64, amount int64, at, expiry time.Time) (med, rec []byte) {
	d.atc++
	info := medium.ServiceInfo{Kind: medium.KindTransfer, DeviceID: d.raw, PayerID: d.raw, PayeeID: to.raw, Serial: serial,
		Amount: amount, Currency: 156, ATC: d.atc, Issued: at, Expiry: expiry}
	med, err := medium.Sign(info, d.key)
	if err != nil {
		panic(err)
	}
	return med, d.sign(spd.PendingRecord{ATC: d.atc, Kind: spd.KindTransferOut, Mode: spd.ModeOffline, Amount: amount, Time: at, Serial: serial, Counterpart: to.raw})
}

// transferIn is the signed record of the device's TRANSFER IN of a
// transfer from payer.
func (d *simDevice) transferIn(from *simDevice, serial uint64, amount int64, at time.Time) []byte {
	d.atc++
	return d.sign(spd.PendingRecord{ATC: d.atc, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: amount, Time: at, Serial: serial, Counterpart: from.raw})
}

// action signs a claim or reclaim as d.
func (d *simDevice) action(to TransferState, id string) TransferAction {
	return TransferAction{DeviceID: d.id, Signature: d.authenticate(TransferActionChallenge(to, id, d.id))}
}

func (l *lab) register(d *simDevice, balance int64, phone string) Device {
	l.t.Helper()
	dev, err := l.c.Register(context.Background(), Registration{
		DeviceID: d.id, PublicKey: d.pkix(), Account: "ACC-" + d.name, Currency: 156, InitialBalance: balance, Phone: phone,
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return dev
}

// wantCode fails unless err is an *APIError with the status and code.
func wantCode(t testing.TB, err error, status int, code string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want HTTP %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Reason, status, code)
	}
	if ae.Reason == "" {
		t.Fatalf("%d %s carries no reason", ae.Status, ae.Code)
	}
	return ae
}

// snapshot dumps every table, for checking that bad input changed nothing.
func (l *lab) snapshot() string {
	l.t.Helper()
	var b strings.Builder
	for _, table := range []string{"devices", "records", "tokens", "params", "otps", "revocations", "transfers", "offline_transfers", "payees"} {
		rows, err := l.srv.rdb.Query("SELECT * FROM " + table + " ORDER BY 1, 2")
		if err != nil {
			l.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				l.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	return b.String()
}

func (l *lab) audit() Audit {
	l.t.Helper()
	a, err := l.c.Audit(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	if !a.Conserved {
		l.t.Fatalf("audit not conserved: %+v", a)
	}
	return a
}
