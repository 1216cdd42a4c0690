package backend

import (
	"fmt"
	"testing"
	"time"
)

// TestOTPPerDeviceLimit: the SMS flood of the attack (a code per request)
// stops at OTPLimits.PerDevice codes a window.
func TestOTPPerDeviceLimit(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "flooded")
	l.register(d, 100, "+4917000001")
	for i := range 5 {
		if _, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id}); err != nil {
			t.Fatalf("code %d: %v", i+1, err)
		}
	}
	for range 20 {
		_, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id})
		wantCode(t, err, 429, CodeRateLimited)
	}
	if n := len(l.srv.Outbox().Messages()); n != 5 {
		t.Fatalf("%d SMS sent, want 5", n)
	}
	l.clock.Advance(time.Hour + time.Second)
	if _, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestOTPGuessingLocksOut: wrong answers over all of a device's codes lock
// it out, the right code included, until the window passes.
func TestOTPGuessingLocksOut(t *testing.T) {
	l := newLab(t, func(c *Config) { c.OTP.PerDevice = 100 })
	d := newSimDevice(t, "guessed")
	l.register(d, 100, "+4917000002")
	guesses := 0
	var last OTPChallenge
	for guesses < 10 {
		ch, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id})
		if err != nil {
			t.Fatalf("after %d guesses: %v", guesses, err)
		}
		last = ch
		for range 3 {
			if guesses == 10 {
				break
			}
			code, _ := OTPCode(l.srv.Outbox().Messages()[len(l.srv.Outbox().Messages())-1].Text)
			wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
			_, err := l.term.VerifyOTP(bg, OTPAnswer{ID: ch.ID, Code: wrong})
			wantCode(t, err, 401, CodeOTPWrong)
			guesses++
		}
	}
	// Ten wrong answers: the right one is refused now, and no new code is sent.
	sms, _ := l.srv.Outbox().Last("+4917000002")
	right, _ := OTPCode(sms.Text)
	_, err := l.term.VerifyOTP(bg, OTPAnswer{ID: last.ID, Code: right})
	wantCode(t, err, 403, CodeOTPLocked)
	_, err = l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id})
	wantCode(t, err, 403, CodeOTPLocked)
	// Another device is not affected.
	e := newSimDevice(t, "bystander")
	l.register(e, 100, "+4917000003")
	if _, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: e.id}); err != nil {
		t.Fatal(err)
	}
	l.clock.Advance(time.Hour + time.Second)
	if _, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id}); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestOTPPerClientAndSMSCaps: one client cannot sweep many devices, and
// the gateway's hourly cap holds over all devices.
func TestOTPPerClientAndSMSCaps(t *testing.T) {
	l := newLab(t, func(c *Config) { c.OTP.PerClient = 8; c.OTP.SMSPerHour = 1000 })
	var devs []*simDevice
	for i := range 10 {
		d := newSimDevice(t, fmt.Sprintf("swept-%d", i))
		l.register(d, 100, fmt.Sprintf("+49170001%02d", i))
		devs = append(devs, d)
	}
	for i, d := range devs {
		_, err := l.term.RequestOTP(bg, OTPRequest{DeviceID: d.id})
		if i < 8 && err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if i >= 8 {
			wantCode(t, err, 429, CodeRateLimited)
		}
	}
	_, err := l.term.VerifyOTP(bg, OTPAnswer{ID: "x", Code: "123456"})
	wantCode(t, err, 429, CodeRateLimited)

	m := newLab(t, func(c *Config) { c.OTP.SMSPerHour = 3 })
	for i := range 4 {
		d := newSimDevice(t, fmt.Sprintf("capped-%d", i))
		m.register(d, 100, fmt.Sprintf("+49170002%02d", i))
		_, err := m.term.RequestOTP(bg, OTPRequest{DeviceID: d.id})
		if i < 3 && err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			wantCode(t, err, 429, CodeRateLimited)
		}
	}
	if n := len(m.srv.Outbox().Messages()); n != 3 {
		t.Fatalf("%d SMS sent past a cap of 3", n)
	}
}
