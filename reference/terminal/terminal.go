// Package terminal is the mobile terminal's side of spdlab: the phone an
// SPD sits in. It drives the SPD over a link with the profile of
// reference/SPEC.md (through spd.Client), scans merchant order codes
// (reference/merchant, EMV QRCPS merchant-presented mode; C5, C48), shows
// the device's coded media for a merchant's scanner (reference/medium; C8,
// C9), asks the user for what verification needs (C32, C33), talks to the
// backend (reference/backend, API.md) when it can reach it (C30), and
// reports every result to the user as an Outcome: done once, or not done
// with the reason (C29, C31).
//
// Flows: pay a merchant online or offline with each kind of payment (C2,
// C7), settle the pending ledger later (C4, SPD-LED-5), sync parameter
// updates (C14, C15), issue a token with domain controls and register it in
// the backend's vault (C20, C22), transfer value to another device offline
// (bound to the payee) or online through the backend, and reclaim an
// expired unclaimed transfer (C13, C16, C17).
//
// Online calls are idempotent on the backend (settlement by device and ATC,
// authorisation by record, transfers by ID), so the terminal retries a
// call that failed in transit or with a 5xx, a bounded number of times, and
// never has a service done twice. When the backend stays out of reach
// after the device paid, the payment is done and its record settles on the
// next Settle.
//
// The terminal holds no global state; Config says everything it needs.
package terminal

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/clock"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// Config configures a Terminal.
type Config struct {
	// SPD reaches the device (any rigs/link.Link). The terminal never
	// closes it.
	SPD spd.Link
	// Backend reaches the issuer's host; nil makes an offline-only
	// terminal.
	Backend *backend.Client
	// BackendKey checks the backend's signed answers; nil fetches it from
	// the backend on first use.
	BackendKey *ecdsa.PublicKey
	// IssuerCA checks device certificates and the media the terminal
	// reads (required).
	IssuerCA *ecdsa.PublicKey
	// User is the person at the terminal (required).
	User User
	// Clock is the terminal time it gives the device (default time.Now).
	Clock func() time.Time
	// Region is where the terminal is (ISO 3166-1 numeric), given to the
	// device with every payment; 0: not known. A service that verifies
	// the location asks the user instead.
	Region uint16
	// Channel is the channel named in online authorisations (default
	// "qr").
	Channel string
	// Tries bounds the attempts of one backend call (default 3).
	Tries int
	// CallTimeout bounds one attempt of a backend call (default 5 s).
	CallTimeout time.Duration
	// Waits is the clock that times CallTimeout and the back-off between
	// attempts (40 ms, doubling with each retry); default clock.System, a
	// test gives a clock.Simulated.
	Waits clock.Clock
	// Name names the terminal in settlement batch IDs (default "T1").
	Name string
	// Identity is the identity question of C33 and the digest of its
	// expected answer (see AnswerDigest); nil: no identity question.
	Identity *IdentityQuestion
	// HostOrders signs the host orders the backend's API does not issue
	// (RECLAIM of an offline transfer); nil: offline reclaim unavailable.
	HostOrders HostOrders
}

// IdentityQuestion is a question the user must answer (C33).
type IdentityQuestion struct {
	Question string
	// Digest is AnswerDigest of the expected answer.
	Digest []byte
}

// AnswerDigest is the digest the terminal keeps of an identity answer:
// SHA-256 of the answer trimmed and folded to lower case.
func AnswerDigest(answer string) []byte {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(answer))))
	return h[:]
}

// HostOrders signs host orders for a device.
type HostOrders interface {
	// Reclaim returns the host-signed RECLAIM of an expired outgoing
	// transfer of the device.
	Reclaim(ctx context.Context, deviceID []byte, s spd.SerialAt) (apdu.Command, error)
}

// IssuerHost signs host orders with the issuer's host key (a lab issuer
// such as the suite's test issuer).
type IssuerHost struct{ Key *ecdsa.PrivateKey }

var _ HostOrders = IssuerHost{}

// Reclaim implements HostOrders.
func (h IssuerHost) Reclaim(ctx context.Context, deviceID []byte, s spd.SerialAt) (apdu.Command, error) {
	return spd.Reclaim(h.Key, deviceID, s)
}

// Errors a caller can act on.
var (
	// ErrDetached: the SPD does not answer, or another device answers (C33).
	ErrDetached = errors.New("terminal: the SPD is not attached")
	// ErrOffline: the backend cannot be reached.
	ErrOffline = errors.New("terminal: the backend cannot be reached")
	// ErrNotAttached: Attach has not bound a device yet.
	ErrNotAttached = errors.New("terminal: no device bound; call Attach")
)

// Terminal is one mobile terminal with one SPD.
type Terminal struct {
	cfg  Config
	card *spd.Client

	bound    []byte // device ID bound at Attach
	devKey   *ecdsa.PublicKey
	cert     []byte
	currency uint16
	hostKey  *ecdsa.PublicKey
}

// New returns a terminal on cfg.
func New(cfg Config) (*Terminal, error) {
	switch {
	case cfg.SPD == nil:
		return nil, errors.New("terminal: no SPD link")
	case cfg.IssuerCA == nil:
		return nil, errors.New("terminal: no issuer CA key")
	case cfg.User == nil:
		return nil, errors.New("terminal: no user")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Channel == "" {
		cfg.Channel = "qr"
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	cfg.Waits = clock.Or(cfg.Waits)
	if cfg.Name == "" {
		cfg.Name = "T1"
	}
	return &Terminal{cfg: cfg, card: spd.NewClient(cfg.SPD), hostKey: cfg.BackendKey}, nil
}

// Card is the terminal's client of the SPD.
func (t *Terminal) Card() *spd.Client { return t.card }

// DeviceID is the ID of the bound device (nil before Attach).
func (t *Terminal) DeviceID() []byte { return bytes.Clone(t.bound) }

// DeviceKey is the bound device's certified public key.
func (t *Terminal) DeviceKey() *ecdsa.PublicKey { return t.devKey }

// Currency is the bound device's currency.
func (t *Terminal) Currency() uint16 { return t.currency }

func (t *Terminal) now() time.Time { return t.cfg.Clock().UTC().Truncate(time.Second) }

// Attach selects the SPD application, checks the device certificate
// against the issuer CA and binds the terminal to the device it names
// (C21, C33). The later flows refuse another device.
func (t *Terminal) Attach(ctx context.Context) error {
	sel, err := t.card.Select(ctx)
	if err != nil {
		return fmt.Errorf("%w: SELECT: %w", ErrDetached, err)
	}
	if sel.State != spd.StateActive && sel.State != spd.StateBlocked && sel.State != spd.StatePersonalised {
		return fmt.Errorf("terminal: the device is %s", sel.State)
	}
	cert, err := t.card.Certificate(ctx)
	if err != nil {
		return fmt.Errorf("terminal: read certificate: %w", err)
	}
	pub, id, err := spd.VerifyDeviceCertificate(cert, t.cfg.IssuerCA)
	if err != nil {
		return fmt.Errorf("terminal: device certificate: %w", err)
	}
	if !bytes.Equal(id, sel.DeviceID) {
		return fmt.Errorf("terminal: certificate names device %s, the device says %s", spd.DeviceIDString(id), spd.DeviceIDString(sel.DeviceID))
	}
	cur, err := t.card.GetData(ctx, spd.TagCurrency)
	if err != nil {
		return fmt.Errorf("terminal: read currency: %w", err)
	}
	c, err := spd.Uint(cur)
	if err != nil || len(cur) != 2 {
		return fmt.Errorf("terminal: currency of %d bytes", len(cur))
	}
	if t.bound != nil && !bytes.Equal(t.bound, id) {
		return fmt.Errorf("%w: device %s, bound to %s", ErrDetached, spd.DeviceIDString(id), spd.DeviceIDString(t.bound))
	}
	t.bound, t.devKey, t.cert, t.currency = id, pub, cert, uint16(c)
	return nil
}

// Attached checks that the bound SPD is still attached (C33, C42): it
// answers, and it is the device bound at Attach. It keeps the session when
// the application is selected and selects it again when it is not (after a
// reset or a re-insertion).
func (t *Terminal) Attached(ctx context.Context) error {
	if t.bound == nil {
		return ErrNotAttached
	}
	id, err := t.card.DeviceID(ctx)
	if err != nil {
		var swe *apdu.SWError
		if !errors.As(err, &swe) {
			return fmt.Errorf("%w: %w", ErrDetached, err)
		}
		sel, err := t.card.Select(ctx)
		if err != nil {
			return fmt.Errorf("%w: SELECT: %w", ErrDetached, err)
		}
		id = sel.DeviceID
	}
	if !bytes.Equal(id, t.bound) {
		return fmt.Errorf("%w: device %s answers, bound to %s", ErrDetached, spd.DeviceIDString(id), spd.DeviceIDString(t.bound))
	}
	return nil
}

// Online reports whether the backend answers its health check now.
func (t *Terminal) Online(ctx context.Context) bool {
	if t.cfg.Backend == nil {
		return false
	}
	cctx, cancel := t.cfg.Waits.WithTimeout(ctx, t.cfg.CallTimeout)
	defer cancel()
	return t.cfg.Backend.Health(cctx) == nil
}

// retryable reports whether a failed backend call may be sent again: a
// transport failure, a timeout or a 5xx (the backend's state changes are
// idempotent), never a 4xx.
func retryable(err error) bool {
	var ae *backend.APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500
	}
	return true
}

// call runs one backend call with bounded retries.
func (t *Terminal) call(ctx context.Context, fn func(ctx context.Context, c *backend.Client) error) error {
	if t.cfg.Backend == nil {
		return ErrOffline
	}
	var err error
	for i := 0; i < t.cfg.Tries; i++ {
		if i > 0 {
			wait := time.Duration(20<<i) * time.Millisecond
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-t.cfg.Waits.After(wait):
			}
		}
		cctx, cancel := t.cfg.Waits.WithTimeout(ctx, t.cfg.CallTimeout)
		err = fn(cctx, t.cfg.Backend)
		cancel()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// backendKey returns the key that checks the backend's answers.
func (t *Terminal) backendKey(ctx context.Context) (*ecdsa.PublicKey, error) {
	if t.hostKey != nil {
		return t.hostKey, nil
	}
	var k *ecdsa.PublicKey
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		k, err = c.PublicKey(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	t.hostKey = k
	return k, nil
}

// Verification says what a service must verify before it runs (C32, C33).
// A device command that needs cardholder verification takes the PIN or
// the biometric; with neither set, the PIN is asked.
type Verification struct {
	PIN       bool
	Biometric bool
	// Identity asks Config.Identity's question.
	Identity bool
	// SMS has the backend send a one-time code to the device's phone.
	SMS bool
	// Certificate checks the device certificate against the issuer CA and
	// has the device sign a fresh challenge (INTERNAL AUTHENTICATE).
	Certificate bool
	// Location asks the user where the terminal is now and gives the
	// device that region, which it checks against the allowed ones
	// (SPD-VER-1); without it the device gets Config.Region.
	Location bool
	// RequiredTier is the lowest membership tier the service requires
	// (attributes; SPD-VER-2).
	RequiredTier uint8
	// Consent asks the user to agree first.
	Consent bool
	// Host are the checks the issuer's host makes and asserts to the
	// device with the payment (SPEC.md 4.10): an SMS code it sends, the
	// identity question it keeps, the user's consent. A device whose
	// profile requires them refuses a payment without the assertion.
	Host spd.HostChecks
}

// verified is what a verification leaves for the service.
type verified struct {
	region uint16
}

// verify runs the checks of v in order: the device is still attached, its
// certificate, the identity question, the SMS code, the attributes, the
// location, then the cardholder (PIN or biometric) so that the verified
// session is the last thing before the service.
func (t *Terminal) verify(ctx context.Context, v Verification, purpose string, cardholder bool) (verified, error) {
	var out verified
	if err := t.Attached(ctx); err != nil {
		return out, err
	}
	if v.Certificate {
		challenge := make([]byte, spd.ChallengeLen)
		if _, err := rand.Read(challenge); err != nil {
			return out, fmt.Errorf("terminal: challenge: %w", err)
		}
		id, err := t.card.Authenticate(ctx, t.cfg.IssuerCA, challenge)
		if err == nil && !bytes.Equal(id, t.bound) {
			err = fmt.Errorf("the certificate names device %s", spd.DeviceIDString(id))
		}
		if t.step(ctx, "certificate", err) != nil {
			return out, fmt.Errorf("certificate check failed: %w", err)
		}
	}
	if v.Identity {
		q := t.cfg.Identity
		if q == nil {
			return out, errors.New("identity check asked but the terminal has no identity question")
		}
		a, err := t.cfg.User.Answer(ctx, q.Question)
		if err != nil {
			return out, fmt.Errorf("identity question: %w", err)
		}
		if subtle.ConstantTimeCompare(AnswerDigest(a), q.Digest) != 1 {
			return out, t.step(ctx, "identity question", errors.New("identity question: wrong answer"))
		}
		t.step(ctx, "identity question", nil)
	}
	if v.SMS {
		if err := t.step(ctx, "SMS code", t.verifySMS(ctx, purpose)); err != nil {
			return out, err
		}
	}
	if v.RequiredTier > 0 {
		tier, err := t.card.GetData(ctx, spd.TagTier)
		if err != nil {
			return out, fmt.Errorf("attribute check: read tier: %w", err)
		}
		if len(tier) != 1 || tier[0] < v.RequiredTier {
			return out, fmt.Errorf("attribute check: tier %v below the required %d", tier, v.RequiredTier)
		}
	}
	out.region = t.cfg.Region
	if v.Location {
		r, err := t.cfg.User.Location(ctx)
		if err != nil {
			return out, fmt.Errorf("location: %w", err)
		}
		out.region = r
	}
	if v.Consent {
		ok, err := t.cfg.User.Consent(ctx, purpose)
		if err != nil {
			return out, fmt.Errorf("consent: %w", err)
		}
		if !ok {
			return out, errors.New("the user did not agree")
		}
	}
	if !cardholder && !v.PIN && !v.Biometric {
		return out, nil
	}
	if v.Biometric {
		sample, err := t.cfg.User.Biometric(ctx)
		if err != nil {
			return out, fmt.Errorf("biometric: %w", err)
		}
		if err := t.step(ctx, "biometric", t.card.VerifyBiometric(ctx, sample)); err != nil {
			return out, fmt.Errorf("biometric not verified: %w", err)
		}
	}
	if v.PIN || !v.Biometric {
		tries, err := t.card.PINTries(ctx)
		if err != nil {
			return out, fmt.Errorf("PIN: %w", err)
		}
		if tries == 0 {
			return out, fmt.Errorf("PIN blocked: %w", t.step(ctx, "PIN", apdu.ErrPINBlocked))
		}
		pin, err := t.cfg.User.PIN(ctx, tries)
		if err != nil {
			return out, fmt.Errorf("PIN: %w", err)
		}
		if err := t.step(ctx, "PIN", t.card.VerifyPIN(ctx, pin)); err != nil {
			return out, fmt.Errorf("PIN not verified: %w", err)
		}
	}
	return out, nil
}

// step tells a User that watches steps how one ended and returns err.
func (t *Terminal) step(ctx context.Context, check string, err error) error {
	w, ok := t.cfg.User.(StepWatcher)
	if !ok {
		return err
	}
	s := Step{Check: check, Err: err, TriesLeft: -1}
	var swe *apdu.SWError
	if errors.As(err, &swe) {
		s.SW = swe.SW
		if swe.SW&0xFFF0 == apdu.SWVerifyFailed {
			s.TriesLeft = int(swe.SW & 0x000F)
		}
	}
	if errors.Is(err, apdu.ErrPINBlocked) {
		s.TriesLeft = 0
	}
	w.VerifyStep(ctx, s)
	return err
}

// verifySMS has the backend send a one-time code and checks the user's
// answer with it (C33).
func (t *Terminal) verifySMS(ctx context.Context, purpose string) error {
	var ch backend.OTPChallenge
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		ch, err = c.RequestOTP(ctx, backend.OTPRequest{DeviceID: spd.DeviceIDString(t.bound), Purpose: purpose})
		return err
	})
	if err != nil {
		return fmt.Errorf("SMS code: %w", err)
	}
	code, err := t.cfg.User.SMSCode(ctx, ch)
	if err != nil {
		return fmt.Errorf("SMS code: %w", err)
	}
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		v, err := c.VerifyOTP(ctx, backend.OTPAnswer{ID: ch.ID, Code: code})
		if err == nil && (!v.Verified || v.DeviceID != spd.DeviceIDString(t.bound)) {
			err = errors.New("terminal: the backend did not verify the code for this device")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("SMS code not verified: %w", err)
	}
	return nil
}

// Verify runs the checks of v on their own and reports the outcome (C33).
func (t *Terminal) Verify(ctx context.Context, v Verification) Outcome {
	o := Outcome{Flow: FlowVerify, Status: Done}
	if _, err := t.verify(ctx, v, "verification", false); err != nil {
		o.Status, o.Reason = NotDone, err.Error()
	}
	return t.report(ctx, o)
}

// report tells the user and returns o.
func (t *Terminal) report(ctx context.Context, o Outcome) Outcome {
	t.cfg.User.Report(ctx, o)
	return o
}

func notDone(f Flow, format string, args ...any) Outcome {
	return Outcome{Flow: f, Status: NotDone, Reason: fmt.Sprintf(format, args...)}
}

// show shows text to the user as a QR code (Code.PNG draws it).
func (t *Terminal) show(ctx context.Context, title, text string) error {
	if text == "" {
		return fmt.Errorf("terminal: nothing to show as the %s", title)
	}
	return t.cfg.User.ShowCode(ctx, Code{Title: title, Text: text, Format: medium.QR})
}

// ReadMedium reads a coded medium a device showed (the merchant's or the
// payee's scanner, C8, C9): it parses the text, checks the certificate
// against the issuer CA and the signature with the certified key, and
// refuses a medium expired at now.
func ReadMedium(text string, ca *ecdsa.PublicKey, now time.Time) (*medium.Medium, error) {
	m, err := medium.ParseText(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	if _, err := medium.VerifyCertificate(m, ca); err != nil {
		return nil, fmt.Errorf("terminal: medium certificate: %w", err)
	}
	if !m.Info.Expiry.IsZero() && now.After(m.Info.Expiry) {
		return nil, fmt.Errorf("terminal: the medium expired at %s", m.Info.Expiry.Format(time.RFC3339))
	}
	return m, nil
}

// Enrolment is the backend registration of a device personalised with p
// (p.Certificate set, as issuer.Issuer.Personalise returns it): the issuer
// registers it so that the backend knows its key, account and token.
func Enrolment(p spd.Profile, phone string) backend.Registration {
	return backend.Registration{
		DeviceID:       spd.DeviceIDString(p.DeviceID),
		Certificate:    p.Certificate,
		Account:        string(p.Account),
		AccountToken:   strings.ToUpper(hex.EncodeToString(p.AccountToken)),
		Currency:       p.Currency,
		InitialBalance: p.Balance,
		Phone:          phone,
	}
}
