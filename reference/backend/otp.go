package backend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// Gateway sends SMS messages (the one-time codes of C33).
type Gateway interface {
	Send(ctx context.Context, phone, text string) error
}

// SMS is one message a Gateway was asked to send.
type SMS struct {
	Phone string
	Text  string
	Time  time.Time
}

// Outbox is an in-memory Gateway: it keeps every message, for tests and for
// a lab with no SMS provider.
type Outbox struct {
	mu   sync.Mutex
	sent []SMS
}

var _ Gateway = (*Outbox)(nil)

// Send keeps the message.
func (o *Outbox) Send(ctx context.Context, phone, text string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, SMS{Phone: phone, Text: text, Time: time.Now()})
	return nil
}

// Messages returns every message sent so far, oldest first.
func (o *Outbox) Messages() []SMS {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]SMS(nil), o.sent...)
}

// Last returns the latest message sent to phone.
func (o *Outbox) Last(phone string) (SMS, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.sent) - 1; i >= 0; i-- {
		if o.sent[i].Phone == phone {
			return o.sent[i], true
		}
	}
	return SMS{}, false
}

// OTPText is the text of a one-time code message; OTPCode reads the code
// back out of it.
func OTPText(code, purpose string) string {
	return fmt.Sprintf("spdlab code %s for %s", code, purpose)
}

// OTPCode returns the code in a message made by OTPText.
func OTPCode(text string) (string, bool) {
	var code string
	if _, err := fmt.Sscanf(text, "spdlab code %6s", &code); err != nil || len(code) != 6 {
		return "", false
	}
	return code, true
}

func otpHash(id, code string) []byte {
	h := sha256.Sum256([]byte(id + "\x00" + code))
	return h[:]
}

func (s *Server) handleRequestOTP(w http.ResponseWriter, r *http.Request) {
	var req OTPRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := checkDeviceID("device_id", req.DeviceID); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkText("purpose", req.Purpose, 0, 64); err != nil {
		writeErr(w, err)
		return
	}
	idb := make([]byte, 12)
	if _, err := rand.Read(idb); err != nil {
		writeErr(w, internal(err))
		return
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1000000))
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	code := fmt.Sprintf("%06d", n.Int64())
	ch := OTPChallenge{ID: hex.EncodeToString(idb), ExpiresAt: s.cfg.Now().Add(s.cfg.OTPLifetime).UTC().Truncate(time.Second), Tries: s.cfg.OTPTries}
	ctx := r.Context()
	var phone string
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		d, err := s.loadDevice(ctx, tx, req.DeviceID)
		if err != nil {
			return err
		}
		if d.revoked {
			return errRevoked(req.DeviceID)
		}
		if err := tx.QueryRowContext(ctx, `SELECT phone FROM devices WHERE id=$1`, req.DeviceID).Scan(&phone); err != nil {
			return internal(err)
		}
		if phone == "" {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "device %q has no phone for SMS codes", req.DeviceID)
		}
		now := s.cfg.Now()
		sent, failures, err := s.otpDeviceState(ctx, tx, req.DeviceID, now)
		if err != nil {
			return internal(err)
		}
		if failures >= s.cfg.OTP.Failures {
			return s.errOTPLocked(req.DeviceID)
		}
		if sent >= s.cfg.OTP.PerDevice {
			return newErr(http.StatusTooManyRequests, CodeRateLimited, "device %s: %d one-time codes sent within %s, the most allowed", req.DeviceID, sent, s.cfg.OTP.Window)
		}
		var hour int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM otps WHERE created_at>$1`, now.Add(-time.Hour).Unix()).Scan(&hour); err != nil {
			return internal(err)
		}
		if hour >= s.cfg.OTP.SMSPerHour {
			return newErr(http.StatusTooManyRequests, CodeRateLimited, "%d SMS codes sent in the last hour, the gateway's cap", hour)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO otps(id, device_id, purpose, code_hash, expires_at, tries_left, used, tries, created_at) VALUES($1, $2, $3, $4, $5, $6, 0, $7, $8)`,
			ch.ID, req.DeviceID, req.Purpose, otpHash(ch.ID, code), ch.ExpiresAt.Unix(), s.cfg.OTPTries, s.cfg.OTPTries, now.Unix())
		if err != nil {
			return internal(err)
		}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := s.cfg.Gateway.Send(ctx, phone, OTPText(code, req.Purpose)); err != nil {
		writeErr(w, newErr(http.StatusBadGateway, CodeInternal, "SMS gateway: %v", err))
		return
	}
	writeJSON(w, http.StatusCreated, ch)
}

func (s *Server) handleVerifyOTP(w http.ResponseWriter, r *http.Request) {
	var a OTPAnswer
	if !s.decode(w, r, &a) {
		return
	}
	if err := checkText("otp_id", a.ID, 1, 64); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkText("code", a.Code, 1, 16); err != nil {
		writeErr(w, err)
		return
	}
	ctx := r.Context()
	var v OTPVerdict
	// A wrong code must cost a try even though the answer is an error, so
	// the transaction commits and the error is returned afterwards.
	var verdictErr error
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		v, verdictErr, err = s.answerOTP(ctx, tx, a)
		return err
	})
	if err == nil {
		err = verdictErr
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// answerOTP checks the answer a to a one-time code in tx: a right answer
// spends the code (Verified); a wrong one costs a try, which tx must
// commit, and comes back as wrong; err is an answer that changes nothing.
func (s *Server) answerOTP(ctx context.Context, tx *sql.Tx, a OTPAnswer) (v OTPVerdict, wrong, err error) {
	v.ID = a.ID
	var hash []byte
	var expires int64
	var tries, used int
	err = tx.QueryRowContext(ctx, `SELECT device_id, purpose, code_hash, expires_at, tries_left, used FROM otps WHERE id=$1`, a.ID).
		Scan(&v.DeviceID, &v.Purpose, &hash, &expires, &tries, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil, newErr(http.StatusNotFound, CodeUnknownOTP, "no one-time code %q", a.ID)
	}
	if err != nil {
		return v, nil, internal(err)
	}
	_, failures, err := s.otpDeviceState(ctx, tx, v.DeviceID, s.cfg.Now())
	if err != nil {
		return v, nil, internal(err)
	}
	switch {
	case failures >= s.cfg.OTP.Failures:
		return v, nil, s.errOTPLocked(v.DeviceID)
	case used != 0:
		return v, nil, newErr(http.StatusConflict, CodeConflict, "one-time code already used")
	case s.cfg.Now().Unix() > expires:
		return v, nil, newErr(http.StatusGone, CodeOTPExpired, "one-time code expired")
	case tries <= 0:
		return v, nil, newErr(http.StatusForbidden, CodeOTPLocked, "one-time code locked after too many wrong answers")
	}
	if subtle.ConstantTimeCompare(hash, otpHash(a.ID, a.Code)) != 1 {
		tries--
		if _, err := tx.ExecContext(ctx, `UPDATE otps SET tries_left=$1 WHERE id=$2`, tries, a.ID); err != nil {
			return v, nil, internal(err)
		}
		e := newErr(http.StatusUnauthorized, CodeOTPWrong, "wrong one-time code")
		e.body.TriesLeft = &tries
		return v, e, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE otps SET used=1 WHERE id=$1`, a.ID); err != nil {
		return v, nil, internal(err)
	}
	v.Verified = true
	return v, nil, nil
}
