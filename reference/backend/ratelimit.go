package backend

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits on one-time codes (C33): a 6-digit code must not fall to
// guessing, and the SMS gateway must not become a way to spam a phone.
//
//   - per device: at most OTPLimits.PerDevice codes sent per Window; after
//     Failures wrong answers (over all its codes) within Window, the device
//     is locked out of one-time codes, right answers included, until the
//     window has passed (otp_locked); after Failures wrong answers to its
//     identity question within Window (counted apart, table
//     identity_failures, which keeps a device's wrong answers of the last
//     Window only), its identity answers likewise (identity_locked);
//   - per client (the remote address): at most PerClient requests to the
//     OTP endpoints per minute;
//   - all devices: at most SMSPerHour codes sent per hour.
//
// Counts per device and the SMS cap come from the stored codes, so they
// hold across restarts; the per-client count is kept in memory.
type OTPLimits struct {
	PerDevice  int           // default 5
	Failures   int           // default 10
	Window     time.Duration // default 1 hour
	PerClient  int           // default 60
	SMSPerHour int           // default 1000
}

func (l *OTPLimits) defaults() {
	if l.PerDevice <= 0 {
		l.PerDevice = 5
	}
	if l.Failures <= 0 {
		l.Failures = 10
	}
	if l.Window <= 0 {
		l.Window = time.Hour
	}
	if l.PerClient <= 0 {
		l.PerClient = 60
	}
	if l.SMSPerHour <= 0 {
		l.SMSPerHour = 1000
	}
}

// otpDeviceState counts a device's codes sent and wrong answers given
// within the window.
func (s *Server) otpDeviceState(ctx context.Context, tx *sql.Tx, id string, now time.Time) (sent, failures int, err error) {
	since := now.Add(-s.cfg.OTP.Window).Unix()
	err = tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(tries - tries_left), 0) FROM otps WHERE device_id=$1 AND created_at>$2`,
		id, since).Scan(&sent, &failures)
	return sent, failures, err
}

func (s *Server) errOTPLocked(id string) *apiErr {
	return newErr(http.StatusForbidden, CodeOTPLocked, "device %s: %d wrong one-time codes within %s; one-time codes are locked for it until the window passes",
		id, s.cfg.OTP.Failures, s.cfg.OTP.Window)
}

// clientLimiter counts requests per remote address in fixed one-minute
// windows.
type clientLimiter struct {
	mu  sync.Mutex
	m   map[string]*clientWindow
	max int
	now func() time.Time
}

type clientWindow struct {
	start time.Time
	n     int
}

// maxClients bounds the addresses remembered; past it, expired windows are
// dropped, and if none are, the newest address shares a window with all
// the others ("*"), which only makes the limit stricter.
const maxClients = 10000

func (c *clientLimiter) allow(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.m == nil {
		c.m = make(map[string]*clientWindow)
	}
	w := c.m[addr]
	if w == nil && len(c.m) >= maxClients {
		for k, v := range c.m {
			if now.Sub(v.start) >= time.Minute {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxClients {
			addr = "*"
			w = c.m[addr]
		}
	}
	if w == nil || now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		w = &clientWindow{start: now}
		c.m[addr] = w
	}
	if w.n >= c.max {
		return false
	}
	w.n++
	return true
}

// limitClient guards an OTP endpoint with the per-client limit.
func (s *Server) limitClient(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if !s.otpClients.allow(host) {
			w.Header().Set("Retry-After", "60")
			writeErr(w, newErr(http.StatusTooManyRequests, CodeRateLimited, "more than %d one-time code requests a minute from %s", s.cfg.OTP.PerClient, host))
			return
		}
		h(w, r)
	}
}
