package device

import (
	"errors"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// checkAssertion checks the host assertion a PAY or PRESENT CODE carries,
// or its absence, against the profile's requirement (SPEC.md 4.10,
// SPD-HVA-1, SPD-HVA-2). It runs after cardholder verification and
// before the ledger; 9000 lets the payment go on.
func (d *Device) checkAssertion(req spd.PayRequest) apdu.SW {
	required := d.prof.HostChecks != 0 && req.Amount >= d.prof.HostThreshold
	if d.bug("assertion-threshold-adjusted") && req.Kind != spd.KindUse {
		required = d.prof.HostChecks != 0 && d.adjust(d.c.Tier, req.Region, req.Amount) >= d.prof.HostThreshold
	}
	if d.bug("assertion-not-required") {
		required = false
	}
	if len(req.Assertion) == 0 {
		if required {
			return apdu.SWSecurityNotSatisfied
		}
		return apdu.SWOK
	}
	var a spd.Assertion
	var err error
	if d.bug("assertion-unsigned") {
		a, err = openUnchecked(req.Assertion)
	} else {
		a, err = spd.OpenAssertion(d.hostPub, d.id, req.Assertion)
	}
	switch {
	case errors.Is(err, spd.ErrBadSignature):
		return apdu.SWSecurityNotSatisfied
	case err != nil:
		return apdu.SWWrongData
	}
	now := spd.Unix(req.Time)
	expiry := spd.Unix(a.Expiry)
	switch {
	case a.ATC != d.c.ATC+1 && !d.bug("assertion-any-atc"):
		return apdu.SWRefDataNotUsable
	case !a.ForPayment(req) && !d.bug("assertion-any-payment"):
		return apdu.SWSecurityNotSatisfied
	case (now > expiry || d.c.LastSync > expiry) && !d.bug("assertion-no-expiry"):
		return apdu.SWConditionsNotSat
	case !a.Checks.Has(d.prof.HostChecks):
		return apdu.SWSecurityNotSatisfied
	}
	return apdu.SWOK
}

// openUnchecked is the mutant assertion-unsigned: the body before the
// signature is read and the signature never checked.
func openUnchecked(v []byte) (spd.Assertion, error) {
	rest, bodyLen := v, 0
	for len(rest) > 0 {
		_, r, err := tlv.Next(rest)
		if err != nil {
			return spd.Assertion{}, spd.ErrMalformed
		}
		if len(r) == 0 {
			bodyLen = len(v) - len(rest)
		}
		rest = r
	}
	return spd.ParseAssertionBody(v[:bodyLen])
}
