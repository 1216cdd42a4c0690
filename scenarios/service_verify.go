package scenarios

import (
	"context"
	"errors"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
)

// slot is a terminal's SPD slot: the device in it can be swapped or taken out.
type slot struct {
	mu sync.Mutex
	l  spd.Link
}

func (s *slot) put(l spd.Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.l = l
}

func (s *slot) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	s.mu.Lock()
	l := s.l
	s.mu.Unlock()
	if l == nil {
		return nil, errors.New("scenarios: the slot is empty")
	}
	return l.Exchange(ctx, cmd)
}

func defineServiceVerification(d Driver) {
	type method struct {
		id, name string
		labels   []string
		v        terminal.Verification
		prepare  func(ctx context.Context, s *serviceLab, c *customer)
		spoil    func(c *customer, v *terminal.Verification) // nil: no failing case
		why      string
	}
	methods := []method{
		{id: "TC-SVC-030", name: "the PIN", labels: []string{Negative, "SPD-PIN-1", "SPD-PIN-2", "C32", "C33"}, v: terminal.Verification{PIN: true},
			spoil: func(c *customer, _ *terminal.Verification) { c.user.PINs = []string{"0000"} }, why: "PIN not verified"},
		{id: "TC-SVC-031", name: "a biometric sample", labels: []string{Negative, "SPD-BIO-1", "C32", "C33"}, v: terminal.Verification{Biometric: true},
			spoil: func(c *customer, _ *terminal.Verification) { c.user.Sample = make([]byte, spd.BioTemplateLen) }, why: "biometric not verified"},
		{id: "TC-SVC-032", name: "an identity question", labels: []string{"C32", "C33"}, v: terminal.Verification{Identity: true},
			spoil: func(c *customer, _ *terminal.Verification) {
				c.user.Answers = map[string]string{testQuestion: "somewhere else"}
			}, why: "wrong answer"},
		{id: "TC-SVC-033", name: "an SMS code sent through the backend's gateway", labels: []string{"C32", "C33"}, v: terminal.Verification{SMS: true},
			spoil: func(c *customer, _ *terminal.Verification) {
				c.user.SMS = func(context.Context, backend.OTPChallenge) (string, error) { return "000000", nil }
			}, why: "SMS code not verified"},
		{id: "TC-SVC-034", name: "the attributes (membership tier pushed by the backend)", labels: []string{"SPD-VER-2", "SPD-UPD-1", "C18", "C33"},
			v: terminal.Verification{RequiredTier: 1},
			prepare: func(ctx context.Context, s *serviceLab, c *customer) {
				tier := uint8(1)
				_, err := s.admin.QueueParameter(ctx, c.id(), backend.ParameterUpdate{Tier: &tier})
				Expect(err).NotTo(HaveOccurred())
				done(c.tm.Sync(ctx))
			},
			spoil: func(_ *customer, v *terminal.Verification) { v.RequiredTier = 2 }, why: "tier"},
		{id: "TC-SVC-035", name: "the location", labels: []string{"SPD-VER-1", "C18", "C33"}, v: terminal.Verification{Location: true},
			spoil: func(c *customer, _ *terminal.Verification) { c.user.Region = Barred }, why: "location not allowed"},
		{id: "TC-SVC-036", name: "the certificate (INTERNAL AUTHENTICATE against the issuer CA)", labels: []string{"SPD-VER-3", "SPD-KEY-4", "C33"},
			v: terminal.Verification{Certificate: true}},
		{id: "TC-SVC-038", name: "the user's consent", labels: []string{"SPD-PAY-5", "C29", "C32"}, v: terminal.Verification{Consent: true},
			spoil: func(c *customer, _ *terminal.Verification) { c.user.Agree = false }, why: "did not agree"},
	}
	Describe("Verification before paying (C32, C33)", func() {
		for _, m := range methods {
			It("MUST pay after verifying "+m.name+" and, when it fails, refuse and pay nothing",
				Case(m.id, append([]string{Positive}, m.labels...)...), func(ctx SpecContext) {
					s := newServiceLab(d)
					c := s.customer(ctx, d, nil)
					if m.prepare != nil {
						m.prepare(ctx, s, c)
					}
					v := m.v
					paid := done(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("2.00", "VER-1")), Kind: spd.KindBalance, Verify: v})).Amount
					if m.spoil == nil {
						Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - paid))
						return
					}
					m.spoil(c, &v)
					before := c.f.snapshot(ctx)
					notDone(c.tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("2.00", "VER-2")), Kind: spd.KindBalance, Verify: v}), m.why)
					after := c.f.snapshot(ctx)
					Expect(after.Balance).To(Equal(before.Balance), "nothing was paid")
					Expect(after.Ledger).To(Equal(before.Ledger))
					Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - paid))
				}, SpecTimeout(60*time.Second))
		}

		It("MUST check that the SPD is still attached, and refuse when it is taken out or swapped",
			Case("TC-SVC-037", Positive, "SPD-VER-3", "SPD-FORM-1", "C33", "C42"), func(ctx SpecContext) {
				s := newServiceLab(d)
				c := s.customer(ctx, d, nil)
				other := s.customer(ctx, d, nil)
				sl := &slot{}
				sl.put(c.f.Client.Link)
				tm := s.terminal(ctx, d, sl, c.user)
				done(tm.Verify(ctx, terminal.Verification{}))
				done(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("1.00", "ATT-1")), Kind: spd.KindBalance}))
				sl.put(nil)
				notDone(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("1.00", "ATT-2")), Kind: spd.KindBalance}), "not attached")
				sl.put(other.f.Client.Link)
				before := other.f.snapshot(ctx)
				notDone(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("1.00", "ATT-3")), Kind: spd.KindBalance}), "not attached")
				Expect(other.f.snapshot(ctx)).To(Equal(before), "another device is not charged")
				sl.put(c.f.Client.Link)
				done(tm.Pay(ctx, terminal.Payment{Order: scan(merchantOrder("1.00", "ATT-4")), Kind: spd.KindBalance}))
				Expect(s.issuerBalance(ctx, c)).To(Equal(c.f.Profile.Balance - 2_00))
				s.conserved(ctx)
			}, SpecTimeout(60*time.Second))
	})
}
