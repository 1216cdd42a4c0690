package terminal

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// The merchant's side of a presented code (SPEC.md 4.9, SPD-PRC-3): the
// consumer's device shows a payment code, the merchant's scanner reads
// it, checks it and charges it once, on-line through the backend or
// off-line with later settlement.

// MerchantConfig configures a merchant lane (one scanner).
type MerchantConfig struct {
	// Payee is the merchant's payee account at the issuer (required):
	// a code for another payee is refused.
	Payee string
	// IssuerCA checks the device certificate a code carries (required).
	IssuerCA *ecdsa.PublicKey
	// Backend reaches the issuer's host; nil: an off-line lane.
	Backend *backend.Client
	// BackendKey checks the backend's signed answers; nil fetches it.
	BackendKey *ecdsa.PublicKey
	// Clock is the lane's time (default time.Now).
	Clock func() time.Time
	// Name names the lane in its settlement batches (default "M1").
	Name string
}

// Skew is how far before its issue time a merchant accepts a code: the
// device takes its time from the consumer's terminal, whose clock may run
// ahead of the merchant's.
const Skew = 30 * time.Second

// Errors of a scan. Each says why in its message.
var (
	// ErrCodeInvalid: the code does not parse or verify, or does not agree
	// with itself.
	ErrCodeInvalid = errors.New("terminal: payment code invalid")
	// ErrCodeNotForUs: another payee, or not the challenge this lane showed.
	ErrCodeNotForUs = errors.New("terminal: payment code not for this merchant or challenge")
	// ErrCodeExpired: outside the code's life.
	ErrCodeExpired = errors.New("terminal: payment code outside its life")
	// ErrCodeReplayed: a code charged before (by this lane, or, on-line,
	// anywhere): a replayed or photographed code.
	ErrCodeReplayed = errors.New("terminal: payment code replayed")
	// ErrCodeDeclined: the device or the backend declined the payment.
	ErrCodeDeclined = errors.New("terminal: payment code declined")
)

// Charge is one code a merchant lane accepted.
type Charge struct {
	DeviceID string
	ATC      uint32
	Amount   int64
	Currency uint16
	// Online is true when the backend approved it at once; otherwise the
	// record is kept for the lane's next settlement.
	Online        bool
	Authorisation *backend.AuthorisationResult
	Record        spd.PendingRecord
}

// MerchantSettlement is what a lane's settlement found.
type MerchantSettlement struct {
	// Paid are the charges the backend settled in this batch.
	Paid []Charge
	// Replays are charges the backend had settled already (the same code
	// charged elsewhere, or handed over by the device's own terminal):
	// caught at settlement, not paid again.
	Replays []Charge
	Ack     backend.SettlementAck
}

// Merchant is one scanner lane of a merchant.
type Merchant struct {
	cfg     MerchantConfig
	mu      sync.Mutex
	charged map[string]bool
	kept    []Charge
	key     *ecdsa.PublicKey
}

// NewMerchant returns a lane.
func NewMerchant(cfg MerchantConfig) (*Merchant, error) {
	if cfg.Payee == "" || len(cfg.Payee) > spd.MaxOrderField {
		return nil, errors.New("terminal: merchant payee must be 1..32 bytes")
	}
	if cfg.IssuerCA == nil {
		return nil, errors.New("terminal: merchant needs the issuer CA key")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Name == "" {
		cfg.Name = "M1"
	}
	return &Merchant{cfg: cfg, charged: map[string]bool{}, key: cfg.BackendKey}, nil
}

// Connect gives an off-line lane a backend (the network came back): its
// next Settle hands over what it kept, and its next scans go on-line.
func (m *Merchant) Connect(be *backend.Client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.Backend = be
}

// Payee is the lane's payee account.
func (m *Merchant) Payee() string { return m.cfg.Payee }

// Challenge draws a fresh challenge for the lane's display: 8 upper-case
// hex characters the consumer's terminal passes to its device.
func (m *Merchant) Challenge() []byte {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return []byte(strings.ToUpper(hex.EncodeToString(b)))
}

// Kept is the number of charges waiting for settlement.
func (m *Merchant) Kept() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.kept)
}

// Check reads a payment code's text and checks it as SPD-PRC-3 says,
// against the challenge the lane showed (nil: none, time-based), without
// charging it.
func (m *Merchant) Check(text string, challenge []byte) (spd.PaymentCode, error) {
	code, err := spd.ParsePaymentCodeText(strings.TrimSpace(text))
	if err != nil {
		return code, fmt.Errorf("%w: %w", ErrCodeInvalid, err)
	}
	if !code.Result.Success() {
		return code, fmt.Errorf("%w: by the device: %s", ErrCodeDeclined, code.Result.Info().Reason)
	}
	withCert := *code.Result.Medium
	withCert.Info.Certificate = code.Certificate
	cert, err := medium.VerifyCertificate(&withCert, m.cfg.IssuerCA)
	if err != nil {
		return code, fmt.Errorf("%w: %w", ErrCodeInvalid, err)
	}
	if err := code.Verify(cert.PublicKey.(*ecdsa.PublicKey)); err != nil {
		return code, fmt.Errorf("%w: %w", ErrCodeInvalid, err)
	}
	in := code.Result.Info()
	if cert.Subject.SerialNumber != "" && !strings.EqualFold(cert.Subject.SerialNumber, spd.DeviceIDString(in.DeviceID)) {
		return code, fmt.Errorf("%w: certificate of device %s, code of %s", ErrCodeInvalid, cert.Subject.SerialNumber, spd.DeviceIDString(in.DeviceID))
	}
	if string(in.PayeeID) != m.cfg.Payee {
		return code, fmt.Errorf("%w: payee %q, this merchant is %q", ErrCodeNotForUs, in.PayeeID, m.cfg.Payee)
	}
	if !bytes.Equal(in.PayeeNonce, challenge) {
		return code, fmt.Errorf("%w: challenge %q, the lane showed %q", ErrCodeNotForUs, in.PayeeNonce, challenge)
	}
	now := m.cfg.Clock().UTC().Truncate(time.Second)
	if now.Before(in.Issued.Add(-Skew)) || now.After(in.Expiry) {
		return code, fmt.Errorf("%w: now %s, code issued %s, life to %s", ErrCodeExpired,
			now.Format(time.RFC3339), in.Issued.Format(time.RFC3339), in.Expiry.Format(time.RFC3339))
	}
	return code, nil
}

// Scan checks a payment code and charges it once: on-line, the backend
// authorises its record and only an approval that is not a repeat
// charges; off-line (no backend, or none reachable), the lane keeps the
// record for its next settlement. A code this lane charged before is
// refused either way.
func (m *Merchant) Scan(ctx context.Context, text string, challenge []byte) (Charge, error) {
	code, err := m.Check(text, challenge)
	if err != nil {
		return Charge{}, err
	}
	rec := *code.Record
	c := Charge{DeviceID: spd.DeviceIDString(rec.DeviceID), ATC: rec.ATC, Amount: rec.Amount, Currency: rec.Currency, Record: rec}
	id := fmt.Sprintf("%s/%d", c.DeviceID, c.ATC)
	m.mu.Lock()
	seen := m.charged[id]
	m.mu.Unlock()
	if seen {
		return Charge{}, fmt.Errorf("%w: device %s ATC %d was charged by this lane", ErrCodeReplayed, c.DeviceID, c.ATC)
	}
	m.mu.Lock()
	be := m.cfg.Backend
	m.mu.Unlock()
	if be != nil {
		res, err := be.Authorise(ctx, backend.AuthorisationRequest{Record: rec.Marshal(), Channel: "qr", Merchant: m.cfg.Payee})
		var ae *backend.APIError
		switch {
		case errors.As(err, &ae) && ae.Status < 500:
			return Charge{}, fmt.Errorf("%w: the backend refused it (%s: %s)", ErrCodeDeclined, ae.Code, ae.Reason)
		case err == nil:
			if err := m.checkAnswer(ctx, res, rec); err != nil {
				return Charge{}, err
			}
			if res.Repeated {
				return Charge{}, fmt.Errorf("%w: the backend has seen device %s ATC %d before", ErrCodeReplayed, c.DeviceID, c.ATC)
			}
			if res.Status != backend.Approved {
				return Charge{}, fmt.Errorf("%w: by the backend: %s", ErrCodeDeclined, res.Reason)
			}
			c.Online, c.Authorisation = true, &res
		}
		// A backend that cannot be reached leaves the lane off-line for
		// this code: it is kept for settlement like any off-line charge.
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.charged[id] {
		return Charge{}, fmt.Errorf("%w: device %s ATC %d was charged by this lane", ErrCodeReplayed, c.DeviceID, c.ATC)
	}
	m.charged[id] = true
	if !c.Online {
		m.kept = append(m.kept, c)
	}
	return c, nil
}

func (m *Merchant) backendKey(ctx context.Context) (*ecdsa.PublicKey, error) {
	m.mu.Lock()
	key, be := m.key, m.cfg.Backend
	m.mu.Unlock()
	if key != nil {
		return key, nil
	}
	pub, err := be.PublicKey(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.key = pub
	m.mu.Unlock()
	return pub, nil
}

func (m *Merchant) checkAnswer(ctx context.Context, res backend.AuthorisationResult, rec spd.PendingRecord) error {
	key, err := m.backendKey(ctx)
	if err != nil {
		return fmt.Errorf("terminal: merchant: backend key: %w", err)
	}
	if res.Verify(key) != nil || res.DeviceID != spd.DeviceIDString(rec.DeviceID) || res.ATC != rec.ATC {
		return errors.New("terminal: merchant: the backend's answer does not verify")
	}
	return nil
}

// Settle hands the kept records to the backend in one batch and sorts the
// answers: settled now (paid) or settled before (a replay caught at
// settlement).
func (m *Merchant) Settle(ctx context.Context) (MerchantSettlement, error) {
	var out MerchantSettlement
	m.mu.Lock()
	be := m.cfg.Backend
	kept := append([]Charge(nil), m.kept...)
	m.mu.Unlock()
	if be == nil {
		return out, errors.New("terminal: merchant: no backend to settle with")
	}
	if len(kept) == 0 {
		return out, nil
	}
	batch := backend.SettlementBatch{BatchID: fmt.Sprintf("%s-%s-%d", m.cfg.Name, kept[0].DeviceID, kept[0].ATC)}
	for _, c := range kept {
		batch.Records = append(batch.Records, c.Record.Marshal())
	}
	ack, err := be.Settle(ctx, batch)
	if err != nil {
		return out, fmt.Errorf("terminal: merchant settlement: %w", err)
	}
	key, err := m.backendKey(ctx)
	if err != nil {
		return out, fmt.Errorf("terminal: merchant settlement: backend key: %w", err)
	}
	if err := ack.Verify(key); err != nil {
		return out, fmt.Errorf("terminal: merchant settlement acknowledgement: %w", err)
	}
	out.Ack = ack
	for _, c := range kept {
		for _, e := range ack.Entries {
			if e.DeviceID != c.DeviceID || e.ATC != c.ATC {
				continue
			}
			switch e.Status {
			case backend.Settled:
				out.Paid = append(out.Paid, c)
			case backend.AlreadySettled:
				out.Replays = append(out.Replays, c)
			}
		}
	}
	m.mu.Lock()
	m.kept = m.kept[len(kept):]
	m.mu.Unlock()
	return out, nil
}

// Presented is the consumer's side of a presented code: what the terminal
// asks its device for.
type Presented struct {
	Kind      spd.PaymentKind // default KindBalance
	Amount    int64
	Payee     string // the merchant's payee account, from its display or order code
	Challenge []byte // the merchant's challenge; nil: time-based
	Life      time.Duration
}

// PresentCode verifies the cardholder, has the device make a payment code
// (PRESENT CODE) for the merchant to scan, shows it and answers it. The
// outcome is pending: the payment is on the device's ledger until the
// merchant's or the terminal's settlement hands it over.
func (t *Terminal) PresentCode(ctx context.Context, p Presented, v Verification) (spd.PaymentCode, Outcome) {
	o := t.presentCode(ctx, p, v)
	code := spd.PaymentCode{}
	if o.Status == Done {
		code = *o.code
	}
	return code, t.report(ctx, o.Outcome)
}

type presentedOutcome struct {
	Outcome
	code *spd.PaymentCode
}

func (t *Terminal) presentCode(ctx context.Context, p Presented, v Verification) presentedOutcome {
	fail := func(format string, args ...any) presentedOutcome {
		return presentedOutcome{Outcome: notDone(FlowPresentCode, format, args...)}
	}
	if _, err := t.verify(ctx, v, "show a payment code", true); err != nil {
		return fail("%v", err)
	}
	if p.Kind == 0 {
		p.Kind = spd.KindBalance
	}
	now := t.now()
	req := spd.PresentRequest{Kind: p.Kind, Amount: p.Amount, Currency: t.currency, Time: now, Payee: []byte(p.Payee),
		Challenge: p.Challenge, Region: t.cfg.Region, Nonce: terminalNonce()}
	if p.Life > 0 {
		req.Expiry = now.Add(p.Life)
	}
	if v.Host != 0 {
		var err error
		if req.Assertion, err = t.hostAssertion(ctx, v.Host, req.Amount, req.Payee, "show a payment code"); err != nil {
			return fail("%v; nothing was paid", err)
		}
	}
	code, err := t.card.PresentCode(ctx, req)
	if errors.Is(err, spd.ErrDeclined) {
		o := fail("declined by the device: %s", code.Result.Info().Reason)
		o.Result = &code.Result
		return o
	}
	if err != nil {
		return fail("PRESENT CODE: %v", err)
	}
	if err := code.Verify(t.devKey); err != nil {
		return fail("the payment code does not verify: %v", err)
	}
	if err := t.show(ctx, "payment code for "+p.Payee, code.Text()); err != nil {
		return fail("%v", err)
	}
	in := code.Result.Info()
	return presentedOutcome{Outcome: Outcome{Flow: FlowPresentCode, Status: Done, Pending: true, Kind: p.Kind,
		Amount: in.Amount, Currency: in.Currency, Balance: in.Balance, ATC: in.ATC, Payee: p.Payee, Token: in.Token,
		Result: &code.Result, Reason: "the merchant charges the code once; it settles once, by whoever hands it over first"}, code: &code}
}
