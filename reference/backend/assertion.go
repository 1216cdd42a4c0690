package backend

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// Host assertions (SPEC.md 4.10, SPD-HVA-3): the issuer's host makes the
// checks of C33 that are not the device's to make (an SMS code, the
// identity question, the cardholder's consent) and tells the device the
// outcome in an assertion signed with the host key and bound to one
// payment: POST /v1/assertions.

// AssertionLifetime is how long an assertion the host signs stays valid.
const AssertionLifetime = 2 * time.Minute

// Error codes of POST /v1/assertions besides the one-time code's.
const (
	CodeIdentityWrong  = "identity_wrong"
	CodeIdentityLocked = "identity_locked"
	CodeNoIdentity     = "no_identity"
)

// AssertionRequest asks the host to assert the checks it can make now
// for the device's next payment: POST /v1/assertions. At least one check
// is asked for: OTPID and OTPCode (an SMS code of POST /v1/otp, spent
// here), IdentityAnswer (the answer to the question of GET
// /v1/devices/{id}/identity) or Consent (the cardholder agreed to this
// payment on the terminal).
type AssertionRequest struct {
	DeviceID string `json:"device_id"`
	// ATC is the ATC the payment will take: the device's ATC plus one.
	ATC      uint32 `json:"atc"`
	Amount   int64  `json:"amount"`
	Currency uint16 `json:"currency"`
	// Payee is the payment's DF09, as text (1..32 bytes); empty: none.
	Payee          string `json:"payee,omitempty"`
	OTPID          string `json:"otp_id,omitempty"`
	OTPCode        string `json:"otp_code,omitempty"`
	IdentityAnswer string `json:"identity_answer,omitempty"`
	Consent        bool   `json:"consent,omitempty"`
}

// HostAssertion is the host's answer: the checks it made and the DF76
// value (body and signature) the terminal passes to the device unchanged.
type HostAssertion struct {
	DeviceID  string    `json:"device_id"`
	ATC       uint32    `json:"atc"`
	Checks    string    `json:"checks"` // e.g. "sms+consent"
	ExpiresAt time.Time `json:"expires_at"`
	Assertion []byte    `json:"assertion"`
}

// IdentityQuestion is the question a device's cardholder answers: GET
// /v1/devices/{id}/identity.
type IdentityQuestion struct {
	DeviceID string `json:"device_id"`
	Question string `json:"question"`
}

// Identity is a question the issuer registered for a cardholder and the
// digest of its right answer (IdentityDigest).
type Identity struct {
	Question string
	Digest   []byte
}

// IdentityDigest is the digest an issuer keeps of an identity answer:
// SHA-256 of the answer trimmed and folded to lower case.
func IdentityDigest(answer string) []byte {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(answer))))
	return h[:]
}

// IdentityBook is the issuer's directory of identity questions, kept
// apart from the books (an issuer's customer records). Lookup answers
// ok false for a device without one.
type IdentityBook interface {
	Lookup(ctx context.Context, deviceID string) (Identity, bool, error)
}

// Identities is an in-memory IdentityBook.
type Identities struct {
	mu sync.Mutex
	m  map[string]Identity
}

var _ IdentityBook = (*Identities)(nil)

// Set registers the question and the right answer for a device.
func (b *Identities) Set(deviceID, question, answer string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]Identity{}
	}
	b.m[deviceID] = Identity{Question: question, Digest: IdentityDigest(answer)}
}

// Lookup implements IdentityBook.
func (b *Identities) Lookup(ctx context.Context, deviceID string) (Identity, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.m[deviceID]
	return id, ok, nil
}

// Identities is the server's identity book: Config.Identities, or an
// in-memory one the lab fills.
func (s *Server) Identities() IdentityBook { return s.identities }

func (s *Server) identity(ctx context.Context, deviceID string) (Identity, error) {
	id, ok, err := s.identities.Lookup(ctx, deviceID)
	switch {
	case err != nil:
		return Identity{}, internal(err)
	case !ok:
		return Identity{}, newErr(http.StatusNotFound, CodeNoIdentity, "device %s has no identity question", deviceID)
	}
	return id, nil
}

func (s *Server) handleIdentityQuestion(w http.ResponseWriter, r *http.Request) {
	dev := r.PathValue("id")
	if err := checkDeviceID("id", dev); err != nil {
		writeErr(w, err)
		return
	}
	id, err := s.identity(r.Context(), dev)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, IdentityQuestion{DeviceID: dev, Question: id.Question})
}

func (s *Server) checkAssertionRequest(req AssertionRequest) error {
	if err := checkDeviceID("device_id", req.DeviceID); err != nil {
		return err
	}
	if err := checkAmount("amount", req.Amount, true); err != nil {
		return err
	}
	if req.Payee != "" {
		if err := checkText("payee", req.Payee, 1, 32); err != nil {
			return err
		}
	}
	if (req.OTPID == "") != (req.OTPCode == "") {
		return newErr(http.StatusBadRequest, CodeMalformed, "otp_id and otp_code go together")
	}
	if req.OTPID == "" && req.IdentityAnswer == "" && !req.Consent {
		return newErr(http.StatusBadRequest, CodeMalformed, "no check asked for: give otp_id and otp_code, identity_answer or consent")
	}
	if err := checkText("identity_answer", req.IdentityAnswer, 0, 128); err != nil {
		return err
	}
	return nil
}

func (s *Server) handleAssert(w http.ResponseWriter, r *http.Request) {
	var req AssertionRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := s.checkAssertionRequest(req); err != nil {
		writeErr(w, err)
		return
	}
	ctx := r.Context()
	var checks spd.HostChecks
	identityRight := false
	if req.IdentityAnswer != "" {
		id, err := s.identity(ctx, req.DeviceID)
		if err != nil {
			writeErr(w, err)
			return
		}
		identityRight = subtle.ConstantTimeCompare(id.Digest, IdentityDigest(req.IdentityAnswer)) == 1
	}
	if req.Consent {
		checks |= spd.CheckConsent
	}
	var out HostAssertion
	// A wrong SMS code or identity answer costs a try even though no
	// assertion is made, so the transaction commits and the error is
	// returned afterwards.
	var wrong error
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		wrong = nil
		d, err := s.loadDevice(ctx, tx, req.DeviceID)
		if err != nil {
			return err
		}
		if d.revoked {
			return errRevoked(req.DeviceID)
		}
		if uint16(d.currency) != req.Currency {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "currency %d is not the device's (%d)", req.Currency, d.currency)
		}
		c := checks
		if req.IdentityAnswer != "" {
			if wrong, err = s.answerIdentity(ctx, tx, req.DeviceID, identityRight); err != nil || wrong != nil {
				return err
			}
			c |= spd.CheckIdentity
		}
		if req.OTPID != "" {
			v, bad, err := s.answerOTP(ctx, tx, OTPAnswer{ID: req.OTPID, Code: req.OTPCode})
			if err != nil {
				return err
			}
			if bad != nil {
				wrong = bad
				return nil
			}
			if v.DeviceID != req.DeviceID {
				return newErr(http.StatusForbidden, CodeForbidden, "one-time code %s was sent for another device", req.OTPID)
			}
			c |= spd.CheckSMS
		}
		devID, err := parseDeviceID(req.DeviceID)
		if err != nil {
			return newErr(http.StatusBadRequest, CodeMalformed, "device_id: %v", err)
		}
		exp := s.cfg.Now().Add(AssertionLifetime).UTC().Truncate(time.Second)
		a := spd.Assertion{Checks: c, ATC: req.ATC, Amount: req.Amount, Currency: req.Currency, Expiry: exp}
		if req.Payee != "" {
			a.Payee = []byte(req.Payee)
		}
		v, err := spd.SealAssertion(s.signer, devID, a)
		if err != nil {
			return internal(err)
		}
		out = HostAssertion{DeviceID: req.DeviceID, ATC: req.ATC, Checks: c.String(), ExpiresAt: exp, Assertion: v}
		return nil
	})
	if err == nil {
		err = wrong
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// Assert asks the host for an assertion (POST /v1/assertions).
func (c *Client) Assert(ctx context.Context, req AssertionRequest) (HostAssertion, error) {
	var out HostAssertion
	err := c.do(ctx, http.MethodPost, "/v1/assertions", req, &out)
	return out, err
}

// answerIdentity counts an answer to a device's identity question in tx:
// after OTPLimits.Failures wrong answers within OTPLimits.Window every
// answer of the device is refused (identity_locked), the right one
// included, until the window has passed; a wrong one is recorded, which tx
// must commit, and comes back as wrong, and the device's wrong answers
// from before the window are dropped, so that a device keeps at most
// Failures of them.
func (s *Server) answerIdentity(ctx context.Context, tx *sql.Tx, id string, right bool) (wrong, err error) {
	now := s.cfg.Now()
	since := now.Add(-s.cfg.OTP.Window).Unix()
	var failures int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM identity_failures WHERE device_id=$1 AND at>$2`,
		id, since).Scan(&failures); err != nil {
		return nil, internal(err)
	}
	if failures >= s.cfg.OTP.Failures {
		return nil, newErr(http.StatusForbidden, CodeIdentityLocked, "device %s: %d wrong answers to the identity question within %s; its identity answers are locked until the window passes",
			id, failures, s.cfg.OTP.Window)
	}
	if right {
		return nil, nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM identity_failures WHERE device_id=$1 AND at<=$2`, id, since); err != nil {
		return nil, internal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO identity_failures(device_id, at) VALUES($1, $2)`, id, now.Unix()); err != nil {
		return nil, internal(err)
	}
	return newErr(http.StatusUnauthorized, CodeIdentityWrong, "wrong answer to the identity question"), nil
}

// IdentityQuestion reads the identity question of a device (GET
// /v1/devices/{id}/identity).
func (c *Client) IdentityQuestion(ctx context.Context, deviceID string) (IdentityQuestion, error) {
	var out IdentityQuestion
	err := c.do(ctx, http.MethodGet, "/v1/devices/"+deviceID+"/identity", nil, &out)
	return out, err
}
