package scenarios

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/clock"
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

// netFault is what the network does to one backend request.
type netFault int

const (
	netPass        netFault = iota
	netUnreachable          // the request never leaves
	net503                  // the backend answers 503 without acting
	netLostAnswer           // the backend acts, the answer is lost
	netSlow                 // the backend acts, the answer comes after the terminal's timeout
)

func (f netFault) String() string {
	return [...]string{"pass", "unreachable", "503", "lost answer", "slow"}[f]
}

// slowAnswer is how late a slow backend answers: far beyond any call
// timeout of the terminal.
const slowAnswer = time.Minute

// netFaults is the terminal's network: an http.RoundTripper that injects
// faults by request path, or cuts every request while Down is set. It
// logs every request it sees with the service clock's time.
type netFaults struct {
	base  http.RoundTripper
	clock *clock.Simulated
	mu    sync.Mutex
	plan  map[string][]netFault
	log   []netAttempt
	Down  atomic.Bool
}

// netAttempt is one request the terminal sent, as the network saw it.
type netAttempt struct {
	Path       string
	Fault      netFault
	Start, End time.Time // service clock
}

// attempts returns the requests logged so far whose path starts with
// prefix, and forgets the log.
func (f *netFaults) attempts(prefix string) []netAttempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netAttempt
	for _, a := range f.log {
		if strings.HasPrefix(a.Path, prefix) {
			out = append(out, a)
		}
	}
	f.log = nil
	return out
}

// at queues faults for the next requests whose path starts with prefix.
func (f *netFaults) at(prefix string, fs ...netFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan[prefix] = append(f.plan[prefix], fs...)
}

// clear drops the faults not yet used.
func (f *netFaults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plan = map[string][]netFault{}
}

func (f *netFaults) next(path string) netFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, fs := range f.plan {
		if strings.HasPrefix(path, p) && len(fs) > 0 {
			f.plan[p] = fs[1:]
			return fs[0]
		}
	}
	return netPass
}

// RoundTrip implements http.RoundTripper.
func (f *netFaults) RoundTrip(req *http.Request) (*http.Response, error) {
	a := netAttempt{Path: req.URL.Path, Start: f.clock.Now()}
	if f.Down.Load() {
		a.Fault = netUnreachable
	} else {
		a.Fault = f.next(req.URL.Path)
	}
	defer func() {
		a.End = f.clock.Now()
		f.mu.Lock()
		f.log = append(f.log, a)
		f.mu.Unlock()
	}()
	if f.Down.Load() {
		return nil, errors.New("scenarios: network down")
	}
	switch a.Fault {
	case netUnreachable:
		return nil, errors.New("scenarios: backend unreachable")
	case net503:
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	case netLostAnswer:
		if resp, err := f.base.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("scenarios: connection reset after the request")
	case netSlow:
		resp, err := f.base.RoundTrip(req)
		if err := f.clock.Sleep(req.Context(), slowAnswer); err != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, err
		}
		return resp, err
	}
	return f.base.RoundTrip(req)
}

// serviceLab is one reference backend on 127.0.0.1 for one case.
type serviceLab struct {
	srv   *backend.Server
	url   string
	admin *backend.Client  // the issuer's client, never faulted
	clock *clock.Simulated // the time of the backend and the terminal, and what the terminal waits on
	net   *netFaults
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
	srv, err := backend.Open(backend.Config{DBPath: filepath.Join(dir, "backend.db"), Now: clk.Now,
		Keys: backend.Keys{Signer: is.HostKey(), IssuerCA: ca}, IssuerToken: issuerToken, TerminalToken: terminalToken})
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
		net: &netFaults{base: http.DefaultTransport, clock: clk, plan: map[string][]netFault{}}}
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
