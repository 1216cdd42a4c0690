package terminal_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/backend/backendtest"
	"github.com/spdlab/spdlab/reference/clock"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/rigs/link"
)

const (
	testPIN = "2580"
	home    = uint16(276)
	abroad  = uint16(250)
	barred  = uint16(840)
)

var bioTemplate = []byte{12, 40, 33, 90, 120, 7, 66, 201, 150, 31, 88, 19, 240, 5, 77, 133}

// procLink is the in-process link: the device's Process with 61xx and 6Cxx
// resolved, as every link resolves them (link.Resolve), nothing else.
type procLink struct{ d *device.Device }

func (l procLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return link.Resolve(ctx, l.process, cmd)
}

func (l procLink) process(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := l.d.Process(append([]byte(nil), cmd...))
	if r == nil {
		return nil, errors.New("test link: the device did not answer")
	}
	return r, nil
}

// lab is a backend on httptest, the issuer, and a clock.
type lab struct {
	t         *testing.T
	is        *issuer.Issuer
	srv       *backend.Server
	url       string
	admin     *backend.Client      // the issuer's client: reaches the backend without faults
	termToken string               // the terminals' credential
	faults    *backendtest.Network // the terminals' network
	clock     *clock.Simulated     // the shared time of the terminal and the backend, and what the terminal's retries and the network's slow answers wait on
	serial    byte
}

var (
	issuerOnce sync.Once
	labIssuer  *issuer.Issuer
)

func testIssuer(t *testing.T) *issuer.Issuer {
	issuerOnce.Do(func() {
		is, err := issuer.Generate("terminal test issuer")
		if err != nil {
			t.Fatal(err)
		}
		labIssuer = is
	})
	return labIssuer
}

func newLab(t *testing.T) *lab {
	t.Helper()
	is := testIssuer(t)
	ca, err := x509.ParseCertificate(is.CACertificate)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewSimulated(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	issuerToken, err := backend.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	termToken, err := backend.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := backend.Open(backend.Config{DBPath: filepath.Join(t.TempDir(), "backend.db"), Now: clk.Now,
		Keys: backend.Keys{Signer: is.HostKey(), IssuerCA: ca}, IssuerToken: issuerToken, TerminalToken: termToken})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	admin, err := backend.NewClient(hs.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin.Credential = issuerToken
	return &lab{t: t, is: is, srv: srv, url: hs.URL, admin: admin, termToken: termToken, clock: clk,
		faults: backendtest.NewNetwork(nil, clk)}
}

// profile is a fresh device's profile.
func (l *lab) profile() spd.Profile {
	l.serial++
	id := []byte{0x7E, 0x57, 0, 0, 0, 0, 0, l.serial}
	tok := bytes.Repeat([]byte{0xA0}, spd.TokenLen)
	copy(tok[8:], id)
	return spd.Profile{
		DeviceID: id, Currency: 978, Balance: 100_00, Uses: 10, Account: []byte("DE89370400440532013000"),
		AccountToken: tok, PIN: testPIN, PUK: "13572468", PINTryLimit: 3,
		BioTemplate: bioTemplate, BioThreshold: 400,
		Limits:        spd.Limits{MaxPayment: 50_00, MaxPending: 30_00, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		TierDiscounts: [4]uint16{0, 1000, 2000, 3000},
		Regions:       []uint16{home, abroad},
		Adjustments:   []spd.RegionAdjustment{{Region: abroad, BasisPoints: 500}},
		Time:          l.clock.Now(),
	}
}

// device personalises a fresh device on st (memory when nil), registers
// it with the backend, and returns it with its profile.
func (l *lab) device(st store.Store) (*device.Device, spd.Profile) {
	l.t.Helper()
	if st == nil {
		st = store.NewMemory()
	}
	d := device.New(st, device.Config{})
	p, err := l.is.Personalise(context.Background(), spd.NewClient(procLink{d}), l.profile())
	if err != nil {
		l.t.Fatal(err)
	}
	if _, err := l.admin.Register(context.Background(), terminal.Enrolment(p, phone(p))); err != nil {
		l.t.Fatal(err)
	}
	return d, p
}

// user is a scripted user who knows the device's secrets.
func (l *lab) user(p spd.Profile) *terminal.ScriptedUser {
	return &terminal.ScriptedUser{PINs: []string{p.PIN}, Sample: bioTemplate, Region: home, Agree: true,
		Answers: map[string]string{"First pet?": "Rex"},
		SMS: func(ctx context.Context, sent backend.OTPChallenge) (string, error) {
			m, ok := l.srv.Outbox().Last(phone(p))
			if !ok {
				return "", errors.New("no SMS to " + phone(p))
			}
			code, ok := backend.OTPCode(m.Text)
			if !ok {
				return "", errors.New("no code in " + m.Text)
			}
			return code, nil
		}}
}

// phone is a test device's phone number.
func phone(p spd.Profile) string { return "+49170000" + spd.DeviceIDString(p.DeviceID)[12:] }

// terminal attaches a terminal to the device over link, reaching the
// backend through the fault transport.
func (l *lab) terminal(link spd.Link, u terminal.User) *terminal.Terminal {
	l.t.Helper()
	c, err := backend.NewClient(l.url, &http.Client{Transport: l.faults})
	if err != nil {
		l.t.Fatal(err)
	}
	c.Credential = l.termToken
	tm, err := terminal.New(terminal.Config{SPD: link, Backend: c, IssuerCA: &l.is.CA.PublicKey, User: u,
		Clock: l.clock.Now, Waits: l.clock, Region: home, CallTimeout: 300 * time.Millisecond,
		Identity:   &terminal.IdentityQuestion{Question: "First pet?", Digest: terminal.AnswerDigest("rex")},
		HostOrders: terminal.IssuerHost{Key: l.is.HostKey()}})
	if err != nil {
		l.t.Fatal(err)
	}
	if err := tm.Attach(context.Background()); err != nil {
		l.t.Fatal(err)
	}
	return tm
}

// audit checks that the backend's value is conserved and returns it.
func (l *lab) audit() backend.Audit {
	l.t.Helper()
	a, err := l.admin.Audit(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	if !a.Conserved {
		l.t.Fatalf("value not conserved: %+v", a)
	}
	return a
}

// issuerBalance is the backend's view of a device's balance.
func (l *lab) issuerBalance(p spd.Profile) int64 {
	l.t.Helper()
	d, err := l.admin.Device(context.Background(), spd.DeviceIDString(p.DeviceID))
	if err != nil {
		l.t.Fatal(err)
	}
	return d.Balance
}

// order is a merchant order code of amount.
func order(t *testing.T, amount string) terminal.Order {
	t.Helper()
	code, err := merchant.Encode(merchant.Order{PayloadFormat: "01", Initiation: merchant.Dynamic,
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "MERCHANT-0042"}},
		Category: "5812", Currency: "978", Amount: amount, Country: "DE", Name: "Cafe Lab", City: "Berlin",
		Additional: &merchant.AdditionalData{BillNumber: "ORDER-1001"}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := terminal.ScanOrder(code)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// codeText reads a shown code back from its PNG, as a scanner would.
func codeText(t *testing.T, c terminal.Code) string {
	t.Helper()
	png, err := c.PNG()
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := medium.DecodePNG(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// counters reads a device's ledger count and balance.
func counters(t *testing.T, tm *terminal.Terminal) (ledger int, balance int64) {
	t.Helper()
	ctx := context.Background()
	n, err := tm.Card().PendingCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tm.Card().Balance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n, b
}
