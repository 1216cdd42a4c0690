package backend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

func TestHostAssertions(t *testing.T) {
	l := newLab(t, nil)
	bg := context.Background()
	d := newSimDevice(t, "hva-dev")
	l.register(d, 100_00, "+8613800000007")
	other := newSimDevice(t, "hva-other")
	l.register(other, 100_00, "+8613800000008")
	ids := l.srv.Identities().(*Identities)
	ids.Set(d.id, "Name of your first school?", "Hill Road Primary")
	code := func(phone string) (string, string) {
		t.Helper()
		ch, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: map[string]string{"+8613800000007": d.id, "+8613800000008": other.id}[phone], Purpose: "payment"})
		if err != nil {
			t.Fatal(err)
		}
		sms, _ := l.srv.Outbox().Last(phone)
		c, ok := OTPCode(sms.Text)
		if !ok {
			t.Fatalf("no code in %q", sms.Text)
		}
		return ch.ID, c
	}
	base := AssertionRequest{DeviceID: d.id, ATC: 5, Amount: 25_00, Currency: 156, Payee: "MERCHANT-0042"}

	// Every check passed: the assertion opens with the host key for this
	// device and binds the payment.
	q, err := l.term.IdentityQuestion(bg, d.id)
	if err != nil || q.Question != "Name of your first school?" {
		t.Fatalf("question: %+v %v", q, err)
	}
	id, c := code("+8613800000007")
	req := base
	req.OTPID, req.OTPCode, req.IdentityAnswer, req.Consent = id, c, "  hill road PRIMARY ", true
	got, err := l.term.Assert(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	a, err := spd.OpenAssertion(l.srv.PublicKey(), d.raw, got.Assertion)
	if err != nil {
		t.Fatal(err)
	}
	want := spd.Assertion{Checks: spd.AllChecks, ATC: 5, Amount: 25_00, Currency: 156, Payee: []byte("MERCHANT-0042"),
		Expiry: l.clock.Now().Add(AssertionLifetime).UTC().Truncate(time.Second)}
	if a.Checks != want.Checks || a.ATC != want.ATC || a.Amount != want.Amount || string(a.Payee) != "MERCHANT-0042" || !a.Expiry.Equal(want.Expiry) {
		t.Fatalf("assertion %+v, want %+v", a, want)
	}
	if got.Checks != "sms+identity+consent" || !got.ExpiresAt.Equal(want.Expiry) {
		t.Fatalf("answer %+v", got)
	}
	if _, err := spd.OpenAssertion(l.srv.PublicKey(), other.raw, got.Assertion); err == nil {
		t.Fatal("the assertion opens for another device")
	}

	// The code is spent: asking again with it is a conflict.
	_, err = l.term.Assert(bg, req)
	wantCode(t, err, 409, CodeConflict)
	// A wrong code costs a try and asserts nothing.
	id, c = code("+8613800000007")
	bad := base
	bad.OTPID, bad.OTPCode = id, "x"+c[1:]
	ae := wantCode(t, errAssert(l, bad), 401, CodeOTPWrong)
	if ae.TriesLeft == nil || *ae.TriesLeft != 2 {
		t.Fatalf("tries left %v", ae.TriesLeft)
	}
	// A code sent for another device asserts nothing for this one.
	oid, oc := code("+8613800000008")
	bad = base
	bad.OTPID, bad.OTPCode = oid, oc
	wantCode(t, errAssert(l, bad), 403, CodeForbidden)
	// A wrong identity answer, no identity registered, no check at all,
	// another currency.
	bad = base
	bad.IdentityAnswer = "Valley School"
	wantCode(t, errAssert(l, bad), 401, CodeIdentityWrong)
	bad = base
	bad.DeviceID, bad.IdentityAnswer = other.id, "anything"
	wantCode(t, errAssert(l, bad), 404, CodeNoIdentity)
	wantCode(t, errAssert(l, base), 400, CodeMalformed)
	bad = base
	bad.Consent, bad.Currency = true, 978
	wantCode(t, errAssert(l, bad), 422, CodeMalformed)
	bad = base
	bad.Consent, bad.DeviceID = true, devID("nobody")
	wantCode(t, errAssert(l, bad), 404, CodeUnknownDevice)
	// Consent alone.
	cons := base
	cons.Consent = true
	got, err = l.term.Assert(bg, cons)
	if err != nil || got.Checks != "consent" {
		t.Fatalf("consent: %+v %v", got, err)
	}
}

func errAssert(l *lab, r AssertionRequest) error {
	_, err := l.term.Assert(context.Background(), r)
	return err
}

// TestIdentityGuessingLocksOut: the answer to the identity question falls
// to guessing no more than a one-time code does. After OTPLimits.Failures
// wrong answers for a device within the window, every identity answer of
// that device, the right one included, is 403 identity_locked and asserts
// nothing, until the window has passed; other devices are not affected.
// Before, a terminal could try answers without limit (60 a minute from
// each address).
func TestIdentityGuessingLocksOut(t *testing.T) {
	l := newLab(t, func(c *Config) { c.OTP.PerClient = 1000 })
	d, other := newSimDevice(t, "guessed"), newSimDevice(t, "bystander")
	l.register(d, 100_00, "")
	l.register(other, 100_00, "")
	ids := l.srv.Identities().(*Identities)
	ids.Set(d.id, "Name of your first pet?", "Rex")
	ids.Set(other.id, "Name of your first pet?", "Tom")
	ask := func(id, answer string) error {
		return errAssert(l, AssertionRequest{DeviceID: id, ATC: 1, Amount: 1_00, Currency: 156, IdentityAnswer: answer})
	}
	for i := range l.srv.cfg.OTP.Failures {
		wantCode(t, ask(d.id, fmt.Sprintf("guess %d", i)), 401, CodeIdentityWrong)
	}
	wantCode(t, ask(d.id, "guess again"), 403, CodeIdentityLocked)
	wantCode(t, ask(d.id, "Rex"), 403, CodeIdentityLocked)
	if err := ask(other.id, "Tom"); err != nil {
		t.Fatalf("another device: %v", err)
	}
	l.clock.Advance(l.srv.cfg.OTP.Window + time.Second)
	if err := ask(d.id, "Rex"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// A wrong answer after the window drops the device's wrong answers
	// from before it: the table keeps at most Failures a device, not one
	// for every wrong answer ever given.
	wantCode(t, ask(d.id, "guess after the window"), 401, CodeIdentityWrong)
	var kept int
	if err := l.srv.rdb.QueryRow(`SELECT count(*) FROM identity_failures WHERE device_id=$1`, d.id).Scan(&kept); err != nil || kept != 1 {
		t.Fatalf("wrong answers kept for the device: %d (%v), want the 1 within the window", kept, err)
	}
}
