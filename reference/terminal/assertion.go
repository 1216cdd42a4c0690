package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/spd"
)

// hostAssertion has the issuer's host make the checks of C33 named by
// checks for the device's next payment (amount, payee) and returns the
// host's signed assertion, which the terminal passes to the device in
// PAY's or PRESENT CODE's DF76 unchanged (SPEC.md 4.10, SPD-HVA-3). The
// user consents first; the host keeps the identity question's answer and
// sends the SMS code, and the user answers both here.
func (t *Terminal) hostAssertion(ctx context.Context, checks spd.HostChecks, amount int64, payee []byte, purpose string) ([]byte, error) {
	if !checks.Valid() {
		return nil, fmt.Errorf("host checks %s out of 1..7", checks)
	}
	atc, err := t.card.ATC(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDetached, err)
	}
	id := spd.DeviceIDString(t.bound)
	req := backend.AssertionRequest{DeviceID: id, ATC: atc + 1, Amount: amount, Currency: t.currency, Payee: string(payee)}
	if checks&spd.CheckConsent != 0 {
		ok, err := t.cfg.User.Consent(ctx, purpose)
		if err != nil {
			return nil, fmt.Errorf("consent: %w", err)
		}
		if !ok {
			return nil, errors.New("the user did not agree")
		}
		req.Consent = true
	}
	if checks&spd.CheckIdentity != 0 {
		var q backend.IdentityQuestion
		if err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
			var err error
			q, err = c.IdentityQuestion(ctx, id)
			return err
		}); err != nil {
			return nil, fmt.Errorf("identity question: %w", err)
		}
		if req.IdentityAnswer, err = t.cfg.User.Answer(ctx, q.Question); err != nil {
			return nil, fmt.Errorf("identity question: %w", err)
		}
	}
	if checks&spd.CheckSMS != 0 {
		var ch backend.OTPChallenge
		if err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
			var err error
			ch, err = c.RequestOTP(ctx, backend.OTPRequest{DeviceID: id, Purpose: purpose})
			return err
		}); err != nil {
			return nil, fmt.Errorf("SMS code: %w", err)
		}
		code, err := t.cfg.User.SMSCode(ctx, ch)
		if err != nil {
			return nil, fmt.Errorf("SMS code: %w", err)
		}
		req.OTPID, req.OTPCode = ch.ID, code
	}
	var a backend.HostAssertion
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		a, err = c.Assert(ctx, req)
		return err
	})
	if t.step(ctx, "host assertion", err) != nil {
		return nil, fmt.Errorf("the issuer's host asserts nothing: %w", err)
	}
	return a.Assertion, nil
}
