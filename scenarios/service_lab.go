package scenarios

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/backend/backendtest"
	"github.com/spdlab/spdlab/reference/clock"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

// defineService registers the cases of the terminal and backend flows:
// online, offline and phased service, settlement, tokens with the vault,
// transfers, every verification method of C33, and faults of the network
// at each step. Each case runs a reference backend in process on
// 127.0.0.1 and drives the DUT through reference/terminal, as a user would.
func defineService(d Driver) {
	Describe("Service through the terminal and the backend", func() {
		defineServicePayments(d)
		defineServiceTransfers(d)
		defineServiceVerification(d)
		defineServiceFaults(d)
		defineVaultCases(d)
		definePresentedCodes(d)
	})
}

// serviceLab is one reference backend on 127.0.0.1 for one case.
type serviceLab struct {
	srv   *backend.Server
	url   string
	admin *backend.Client      // the issuer's client, never faulted
	clock *clock.Simulated     // the time of the backend and the terminal, and what the terminal waits on
	net   *backendtest.Network // the terminals' network
	// terminalToken is the credential of the suite's terminals.
	terminalToken string
}

// newServiceLab starts a backend that trusts the driver's issuer and
// stops it when the case ends.
func newServiceLab(d Driver) *serviceLab {
	GinkgoHelper()
	is := d.Issuer()
	ca, err := x509.ParseCertificate(is.CACertificate)
	Expect(err).NotTo(HaveOccurred())
	dir, err := os.MkdirTemp("", "spdlab-backend-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	clk := clock.NewSimulated(Clock)
	issuerToken, err := backend.NewToken()
	Expect(err).NotTo(HaveOccurred())
	terminalToken, err := backend.NewToken()
	Expect(err).NotTo(HaveOccurred())
	db := filepath.Join(dir, "backend.db")
	keys := backend.Keys{Signer: is.HostKey(), IssuerCA: ca}
	books, err := newBooks(is, keys)
	Expect(err).NotTo(HaveOccurred(), "making the backend's empty books")
	Expect(os.WriteFile(db, books, 0o600)).To(Succeed())
	srv, err := backend.Open(backend.Config{DBPath: db, Now: clk.Now,
		Keys: keys, IssuerToken: issuerToken, TerminalToken: terminalToken})
	Expect(err).NotTo(HaveOccurred())
	hs := httptest.NewServer(srv.Handler())
	DeferCleanup(func() {
		hs.Close()
		Expect(srv.Close()).To(Succeed())
	})
	admin, err := backend.NewClient(hs.URL, nil)
	Expect(err).NotTo(HaveOccurred())
	admin.Credential = issuerToken
	return &serviceLab{srv: srv, url: hs.URL, admin: admin, terminalToken: terminalToken, clock: clk,
		net: backendtest.NewNetwork(nil, clk)}
}

// emptyBooks are the database files of backends that have booked nothing
// yet, one for each issuer, made once per run: every lab's backend opens a
// copy, as a backend restarting on its books does, instead of migrating a
// new file (most of a lab's set-up). Nothing in one depends on the lab:
// the migrations record the lab's start time, Clock, and the credentials
// are the backend's configuration, not its books.
var emptyBooks struct {
	sync.Mutex
	file map[*issuer.Issuer][]byte
}

func newBooks(is *issuer.Issuer, keys backend.Keys) ([]byte, error) {
	emptyBooks.Lock()
	defer emptyBooks.Unlock()
	if b, ok := emptyBooks.file[is]; ok {
		return b, nil
	}
	b, err := makeEmptyBooks(keys)
	if err != nil {
		return nil, err
	}
	if emptyBooks.file == nil {
		emptyBooks.file = map[*issuer.Issuer][]byte{}
	}
	emptyBooks.file[is] = b
	return b, nil
}

func makeEmptyBooks(keys backend.Keys) ([]byte, error) {
	dir, err := os.MkdirTemp("", "spdlab-books-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "backend.db")
	token, err := backend.NewToken()
	if err != nil {
		return nil, err
	}
	srv, err := backend.Open(backend.Config{DBPath: db, Now: clock.NewSimulated(Clock).Now, Keys: keys, IssuerToken: token})
	if err != nil {
		return nil, err
	}
	if err := srv.Close(); err != nil {
		return nil, err
	}
	// Closed, SQLite has moved its write-ahead log into the file.
	if fi, err := os.Stat(db + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("scenarios: the backend left %d bytes in its write-ahead log after closing", fi.Size())
	}
	return os.ReadFile(db)
}

// Identity question of the suite's users.
const (
	testQuestion = "Name of your first school?"
	testAnswer   = "Lindenschule"
)

// customer is a personalised device registered with the backend, in a
// terminal, with its scripted user.
type customer struct {
	f    *Fixture
	tm   *terminal.Terminal
	user *terminal.ScriptedUser
}

func (c *customer) id() string { return spd.DeviceIDString(c.f.Profile.DeviceID) }

func phoneOf(p spd.Profile) string { return "+4917000" + spd.DeviceIDString(p.DeviceID)[10:] }

// customer personalises a fresh DUT, registers it with the backend and
// puts it in a terminal that reaches the backend through s.net.
func (s *serviceLab) customer(ctx context.Context, d Driver, p *spd.Profile) *customer {
	GinkgoHelper()
	f := personalised(ctx, d, p)
	_, err := s.admin.Register(ctx, terminal.Enrolment(f.Profile, phoneOf(f.Profile)))
	Expect(err).NotTo(HaveOccurred(), "registering the device with the backend")
	c := &customer{f: f}
	c.user = &terminal.ScriptedUser{PINs: []string{f.Profile.PIN}, Sample: TestBioTemplate, Region: Home, Agree: true,
		Answers: map[string]string{testQuestion: testAnswer},
		SMS: func(ctx context.Context, sent backend.OTPChallenge) (string, error) {
			m, ok := s.srv.Outbox().Last(phoneOf(f.Profile))
			if !ok {
				return "", errors.New("scenarios: no SMS in the outbox")
			}
			code, ok := backend.OTPCode(m.Text)
			if !ok {
				return "", errors.New("scenarios: no code in the SMS")
			}
			return code, nil
		}}
	c.tm = s.terminal(ctx, d, f.Client.Link, c.user)
	return c
}

// The suite's terminals send a backend call at most callTries times, and
// give each attempt callTimeout on the service clock.
const (
	callTries   = 3
	callTimeout = 500 * time.Millisecond
)

// terminal makes a terminal on link and attaches it.
func (s *serviceLab) terminal(ctx context.Context, d Driver, l spd.Link, u terminal.User) *terminal.Terminal {
	GinkgoHelper()
	be, err := backend.NewClient(s.url, &http.Client{Transport: s.net})
	Expect(err).NotTo(HaveOccurred())
	be.Credential = s.terminalToken
	tm, err := terminal.New(terminal.Config{SPD: l, Backend: be, IssuerCA: &d.Issuer().CA.PublicKey, User: u,
		Clock: s.clock.Now, Waits: s.clock, Region: Home, Tries: callTries, CallTimeout: callTimeout, Name: "SUITE",
		Identity:   &terminal.IdentityQuestion{Question: testQuestion, Digest: terminal.AnswerDigest(testAnswer)},
		HostOrders: terminal.IssuerHost{Key: d.Issuer().HostKey()}})
	Expect(err).NotTo(HaveOccurred())
	Expect(tm.Attach(ctx)).To(Succeed())
	return tm
}

// conserved checks the backend's audit and returns it.
func (s *serviceLab) conserved(ctx context.Context) backend.Audit {
	GinkgoHelper()
	a, err := s.admin.Audit(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(a.Conserved).To(BeTrue(), "audit: %+v", a)
	return a
}

// issuerBalance is the backend's view of a device's value.
func (s *serviceLab) issuerBalance(ctx context.Context, c *customer) int64 {
	GinkgoHelper()
	dev, err := s.admin.Device(ctx, c.id())
	Expect(err).NotTo(HaveOccurred())
	return dev.Balance
}

// merchantOrder is a merchant's order code for amount (object 54 form).
func merchantOrder(amount, bill string) string {
	GinkgoHelper()
	code, err := merchant.Encode(merchant.Order{PayloadFormat: "01", Initiation: merchant.Dynamic,
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "MERCHANT-0042"}},
		Category: "5812", Currency: "978", Amount: amount, Country: "DE", Name: "Cafe Lab", City: "Berlin",
		Additional: &merchant.AdditionalData{BillNumber: bill}})
	Expect(err).NotTo(HaveOccurred())
	return code
}

// scan reads a merchant order code as the terminal does.
func scan(code string) terminal.Order {
	GinkgoHelper()
	o, err := terminal.ScanOrder(code)
	Expect(err).NotTo(HaveOccurred())
	return o
}

// done expects a done outcome.
func done(o terminal.Outcome) terminal.Outcome {
	GinkgoHelper()
	Expect(o.Status).To(Equal(terminal.Done), "outcome: %s", o)
	return o
}

// notDone expects a not-done outcome whose reason says why.
func notDone(o terminal.Outcome, why string) terminal.Outcome {
	GinkgoHelper()
	Expect(o.Status).To(Equal(terminal.NotDone), "outcome: %s", o)
	Expect(o.Reason).To(ContainSubstring(why), "outcome: %s", o)
	return o
}

// declinedThrough expects a terminal outcome that is the device's signed
// decline with exactly reason (SPD-PAY-6).
func (f *Fixture) declinedThrough(o terminal.Outcome, reason string) {
	GinkgoHelper()
	Expect(o.Status).To(Equal(terminal.NotDone), "outcome: %s", o)
	Expect(o.Reason).To(Equal("declined by the device: "+reason), "outcome: %s", o)
	Expect(o.Result).NotTo(BeNil(), "the device's signed result")
	Expect(o.Result.Verify(f.Pub)).To(Succeed(), "a signed decline")
	Expect(o.Result.Success()).To(BeFalse())
	Expect(o.Result.Info().Reason).To(Equal(reason))
	caseDeclined = true
}

// shownPNG is the image of a code a terminal showed its user, as the
// screen draws it (terminal.Code.PNG), for a case that scans the screen.
func shownPNG(c terminal.Code) []byte {
	GinkgoHelper()
	png, err := c.PNG()
	Expect(err).NotTo(HaveOccurred(), "drawing the %s the terminal showed", c.Title)
	return png
}
