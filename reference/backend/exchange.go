package backend

import (
	"context"
	"database/sql"
	"errors"
	"math/big"
	"net/http"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// Exchange rates (SPEC.md 4.11, SPD-EXC-5): the issuer's host signs, for
// one device and the ATC its exchange will take, the rate at which the
// device exchanges stored value into uses or another currency: POST
// /v1/rates. The device checks the rate itself; the exchange comes back
// as a kind 07 record in a settlement batch (SPD-EXC-4).

// RateLifetime is how long a rate the host signs stays valid (at most
// spd.MaxRateLife).
const RateLifetime = 2 * time.Minute

// CodeNoRate is the error code of a rate the issuer does not offer.
const CodeNoRate = "no_rate"

// Exchange kinds as the API names them.
const (
	ExchangeUses     = "uses"
	ExchangeCurrency = "currency"
)

// RateOffer is one rate the issuer sets: Numerator target units (uses, or
// minor units of Target) for Denominator minor units of Currency.
type RateOffer struct {
	Kind string // ExchangeUses or ExchangeCurrency
	// Currency is the currency sold (a device's); 0 for a price of uses
	// that applies to every currency.
	Currency uint16
	// Target is the currency bought (ExchangeCurrency only).
	Target      uint16
	Numerator   uint32
	Denominator uint32
}

// DefaultRates are the lab issuer's rates: a use for 2.50 of any currency,
// and a few currency pairs.
var DefaultRates = []RateOffer{
	{Kind: ExchangeUses, Numerator: 1, Denominator: 250},
	{Kind: ExchangeCurrency, Currency: 978, Target: 840, Numerator: 10_834, Denominator: 10_000},
	{Kind: ExchangeCurrency, Currency: 840, Target: 978, Numerator: 9_230, Denominator: 10_000},
	{Kind: ExchangeCurrency, Currency: 156, Target: 978, Numerator: 1_274, Denominator: 10_000},
	{Kind: ExchangeCurrency, Currency: 156, Target: 840, Numerator: 1_380, Denominator: 10_000},
}

// RateRequest asks the host for the rate of a device's next exchange: POST
// /v1/rates.
type RateRequest struct {
	DeviceID string `json:"device_id"`
	// ATC is the ATC the exchange will take: the device's ATC plus one.
	ATC  uint32 `json:"atc"`
	Kind string `json:"kind"` // "uses" or "currency"
	// Target is the currency bought (kind "currency").
	Target uint16 `json:"target,omitempty"`
}

// ExchangeRate is the host's answer: the rate and the DF77 value (body and
// signature) the terminal passes to the device unchanged.
type ExchangeRate struct {
	DeviceID    string    `json:"device_id"`
	ATC         uint32    `json:"atc"`
	Kind        string    `json:"kind"`
	Currency    uint16    `json:"currency"`
	Target      uint16    `json:"target,omitempty"`
	Numerator   uint32    `json:"numerator"`
	Denominator uint32    `json:"denominator"`
	ExpiresAt   time.Time `json:"expires_at"`
	Rate        []byte    `json:"rate"`
}

func (s *Server) rates() []RateOffer {
	if s.cfg.Rates != nil {
		return s.cfg.Rates
	}
	return DefaultRates
}

// offer finds the issuer's rate of kind for a device of currency cur.
func (s *Server) offer(kind string, cur, target uint16) (RateOffer, bool) {
	for _, o := range s.rates() {
		if o.Kind != kind || o.Numerator == 0 || o.Denominator == 0 {
			continue
		}
		switch kind {
		case ExchangeUses:
			if o.Currency == 0 || o.Currency == cur {
				return o, true
			}
		case ExchangeCurrency:
			if o.Currency == cur && o.Target == target && target != cur {
				return o, true
			}
		}
	}
	return RateOffer{}, false
}

func (s *Server) handleRate(w http.ResponseWriter, r *http.Request) {
	var req RateRequest
	if !s.decode(w, r, &req) {
		return
	}
	out, err := s.signRate(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// signRate signs the rate req asks for (SPD-EXC-5): only for a registered
// device that is not revoked, at the issuer's rate for its currency.
func (s *Server) signRate(ctx context.Context, req RateRequest) (ExchangeRate, error) {
	if err := checkDeviceID("device_id", req.DeviceID); err != nil {
		return ExchangeRate{}, err
	}
	var kind spd.ExchangeKind
	switch req.Kind {
	case ExchangeUses:
		kind = spd.ExchangeUses
		if req.Target != 0 {
			return ExchangeRate{}, newErr(http.StatusBadRequest, CodeMalformed, "target: an exchange into uses buys no currency")
		}
	case ExchangeCurrency:
		kind = spd.ExchangeCurrency
		if req.Target == 0 || req.Target > 999 {
			return ExchangeRate{}, newErr(http.StatusBadRequest, CodeMalformed, "target: an ISO 4217 numeric currency 1..999")
		}
	default:
		return ExchangeRate{}, newErr(http.StatusBadRequest, CodeMalformed, "kind: %q, want %q or %q", req.Kind, ExchangeUses, ExchangeCurrency)
	}
	devID, err := parseDeviceID(req.DeviceID)
	if err != nil {
		return ExchangeRate{}, newErr(http.StatusBadRequest, CodeMalformed, "device_id: %v", err)
	}
	var out ExchangeRate
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		d, err := s.loadDevice(ctx, tx, req.DeviceID)
		if err != nil {
			return err
		}
		if d.revoked {
			return errRevoked(req.DeviceID)
		}
		cur := uint16(d.currency)
		o, ok := s.offer(req.Kind, cur, req.Target)
		if !ok {
			return newErr(http.StatusNotFound, CodeNoRate, "the issuer offers no rate for %s of currency %d (target %d)", req.Kind, cur, req.Target)
		}
		exp := s.cfg.Now().Add(RateLifetime).UTC().Truncate(time.Second)
		rate := spd.Rate{Kind: kind, ATC: req.ATC, Currency: cur, Numerator: o.Numerator, Denominator: o.Denominator, Expiry: exp}
		if kind == spd.ExchangeCurrency {
			rate.TargetCurrency = req.Target
		}
		v, err := spd.SealRate(s.signer, devID, rate)
		if err != nil {
			return internal(err)
		}
		// Kept, so that the exchange made at it settles (signedRate).
		if _, err := tx.ExecContext(ctx, `INSERT INTO rates(device_id, atc, kind, target_currency, numerator, denominator, expires_at, created_at)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT(device_id, atc, kind, target_currency, numerator, denominator) DO UPDATE SET expires_at=excluded.expires_at`,
			req.DeviceID, int64(req.ATC), int(kind), int(rate.TargetCurrency), int64(o.Numerator), int64(o.Denominator), exp.Unix(), s.cfg.Now().Unix()); err != nil {
			return internal(err)
		}
		out = ExchangeRate{DeviceID: req.DeviceID, ATC: req.ATC, Kind: req.Kind, Currency: cur, Target: rate.TargetCurrency,
			Numerator: o.Numerator, Denominator: o.Denominator, ExpiresAt: exp, Rate: v}
		return nil
	})
	return out, err
}

// Rate asks the host for an exchange rate (POST /v1/rates).
func (c *Client) Rate(ctx context.Context, req RateRequest) (ExchangeRate, error) {
	var out ExchangeRate
	err := c.do(ctx, http.MethodPost, "/v1/rates", req, &out)
	return out, err
}

// signedRate refuses an exchange record unless the host signed its rate
// (POST /v1/rates) for its device and ATC, kind and target currency, and
// the record was made before the rate expired (SPD-EXC-4, SPD-EXC-5). The
// record carries its rate in the device's own words: a device that made
// up a rate would otherwise be paid out at it.
func (s *Server) signedRate(ctx context.Context, tx *sql.Tx, rec DeviceRecord) error {
	var exp int64
	err := tx.QueryRowContext(ctx, `SELECT expires_at FROM rates WHERE device_id=$1 AND atc=$2 AND kind=$3 AND target_currency=$4 AND numerator=$5 AND denominator=$6`,
		rec.Device, int64(rec.ATC), int(rec.Exchange), int(rec.TargetCurrency), int64(rec.RateNumerator), int64(rec.RateDenominator)).Scan(&exp)
	if errors.Is(err, sql.ErrNoRows) {
		return newErr(http.StatusUnprocessableEntity, CodeNoRate, "device %s ATC %d: an exchange at %d/%d (target currency %d) that the host never signed for this device and ATC",
			rec.Device, rec.ATC, rec.RateNumerator, rec.RateDenominator, rec.TargetCurrency)
	}
	if err != nil {
		return internal(err)
	}
	if rec.Time.Unix() > exp {
		return newErr(http.StatusUnprocessableEntity, CodeNoRate, "device %s ATC %d: an exchange made at %s, after its rate expired at %s",
			rec.Device, rec.ATC, rec.Time.UTC().Format(time.RFC3339), unixTime(exp).Format(time.RFC3339))
	}
	return nil
}

// exchangePrice is the debit SPEC.md 4.11 sets for an exchange record's
// target at its rate: ceil(t*d/n). A record whose debit differs paid out
// more (or less) than its rate allows; ok is false when the record has no
// rate.
func exchangePrice(r spd.PendingRecord) (int64, bool) {
	if r.RateNumerator == 0 || r.RateDenominator == 0 {
		return 0, false
	}
	n := new(big.Int).SetUint64(uint64(r.RateNumerator))
	v := new(big.Int).Mul(new(big.Int).SetUint64(r.Target), new(big.Int).SetUint64(uint64(r.RateDenominator)))
	v.Add(v, new(big.Int).Sub(n, big.NewInt(1)))
	v.Quo(v, n)
	if !v.IsInt64() {
		return 0, false
	}
	return v.Int64(), true
}
