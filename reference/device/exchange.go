package device

import (
	"errors"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// doExchange exchanges stored value into uses or another currency at a
// host-signed rate (SPEC.md 4.11, SPD-EXC-1..3): the debit, the uses, the
// ATC and the exchange record in one transaction, answered as E6.
func (d *Device) doExchange(cmd apdu.Command) ([]byte, apdu.SW) {
	req, err := spd.ParseExchangeRequest(cmd.P1, cmd.P2, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if req.Currency != d.prof.Currency {
		return nil, apdu.SWWrongData
	}
	if d.bug("exchange-rate-before-verify") {
		if _, sw := d.openRate(req); sw != apdu.SWOK {
			return nil, sw
		}
	}
	if !d.verified && !d.bug("exchange-unverified") {
		return nil, apdu.SWSecurityNotSatisfied
	}
	rate, sw := d.openRate(req)
	if sw != apdu.SWOK {
		return nil, sw
	}
	now := spd.Unix(req.Time)
	target, debit, err := spd.Quote(req.Amount, rate.Numerator, rate.Denominator, spd.TargetLimit(req.Kind, d.c.Uses))
	if errors.Is(err, spd.ErrExchangeRange) && d.bug("exchange-uses-wrap") && req.Kind == spd.ExchangeUses {
		target, debit, err = spd.Quote(req.Amount, rate.Numerator, rate.Denominator, 1<<62)
	}
	if err != nil {
		return nil, apdu.SWWrongData
	}
	if d.bug("exchange-no-remainder") {
		debit = req.Amount
	}
	if debit > d.c.Balance {
		return nil, apdu.SWConditionsNotSat
	}
	if len(d.pend) >= d.cfg.MaxLedger {
		return nil, apdu.SWNotEnoughMemory
	}
	nc := d.c
	nc.ATC++
	nc.Balance -= debit
	if d.bug("exchange-no-atc") {
		nc.ATC--
	}
	if req.Kind == spd.ExchangeUses && !d.bug("exchange-no-uses") {
		nc.Uses += uint32(target)
	}
	rec := record{Kind: spd.KindExchange, Mode: spd.ModeOnline, ATC: nc.ATC, Amount: debit, Time: now,
		Token: d.prof.AccountToken, Nonce: req.Nonce,
		Exchange: &exchangeRec{Kind: req.Kind, TargetCurrency: rate.TargetCurrency, Numerator: rate.Numerator,
			Denominator: rate.Denominator, Target: target}}
	if len(rec.Nonce) == 0 || d.bug("exchange-nonce-ignored") {
		rec.Nonce = d.randBytes(16) // SPD-PAY-8: the device's own nonce
	}
	if d.bug("exchange-rate-swapped") {
		rec.Exchange.Numerator, rec.Exchange.Denominator = rec.Exchange.Denominator, rec.Exchange.Numerator
	}
	total, _, _ := d.pendingTotals()
	info := d.baseInfo(medium.KindPaymentResult, nc, total, now)
	success := 0
	info.Result, info.Amount, info.Token = &success, debit, d.prof.AccountToken
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	pr := d.pendingRecord(rec)
	if err := d.signRecord(&pr); err != nil {
		return nil, apdu.SWUnknown
	}
	tx := d.begin(spd.INSExchange)
	tx.Put(keyCounters, nc.marshal())
	tx.Put(pendKey(nc.ATC), rec.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.pend = append(d.pend, rec)
	res, err := spd.ParseResult(env, medium.KindPaymentResult)
	if err != nil {
		return nil, apdu.SWUnknown
	}
	return spd.ExchangeResult{Result: res, Record: pr}.Marshal(), apdu.SWOK
}

// openRate checks the exchange rate req carries (SPEC.md 4.11,
// SPD-EXC-2): host key, this device, the exchange's kind and currency, its
// ATC, its expiry. 9000 lets the exchange go on.
func (d *Device) openRate(req spd.ExchangeRequest) (spd.Rate, apdu.SW) {
	var r spd.Rate
	var err error
	if d.bug("exchange-rate-unsigned") {
		r, err = openRateUnchecked(req.Rate)
	} else {
		r, err = spd.OpenRate(d.hostPub, d.id, req.Rate)
	}
	switch {
	case errors.Is(err, spd.ErrBadSignature):
		return r, apdu.SWSecurityNotSatisfied
	case err != nil:
		return r, apdu.SWWrongData
	}
	now, expiry := spd.Unix(req.Time), spd.Unix(r.Expiry)
	switch {
	case (r.Kind != req.Kind || r.Currency != d.prof.Currency) && !d.bug("exchange-rate-any-kind"):
		return r, apdu.SWSecurityNotSatisfied
	case r.ATC != d.c.ATC+1 && !d.bug("exchange-rate-replay"):
		return r, apdu.SWRefDataNotUsable
	case (now > expiry || d.c.LastSync > expiry) && !d.bug("exchange-rate-no-expiry"):
		return r, apdu.SWConditionsNotSat
	}
	return r, apdu.SWOK
}

// openRateUnchecked is the mutant exchange-rate-unsigned: the body before
// the signature is read and the signature never checked.
func openRateUnchecked(v []byte) (spd.Rate, error) {
	if err := spd.CheckRateForm(v); err != nil {
		return spd.Rate{}, err
	}
	rest, bodyLen := v, 0
	for len(rest) > 0 {
		_, r, err := tlv.Next(rest)
		if err != nil {
			return spd.Rate{}, spd.ErrMalformed
		}
		if len(r) == 0 {
			bodyLen = len(v) - len(rest)
		}
		rest = r
	}
	return spd.ParseRateBody(v[:bodyLen])
}
