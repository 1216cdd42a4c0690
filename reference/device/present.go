package device

import (
	"crypto/sha256"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// doPresentCode makes a payment in offline mode and answers it as a
// payment code a merchant scans (SPEC.md 4.9, SPD-PRC-1, SPD-PRC-2).
func (d *Device) doPresentCode(cmd apdu.Command) ([]byte, apdu.SW) {
	data := cmd.Data
	if d.bug("code-life-unbounded") {
		data = clampLife(cmd.P1, cmd.P2, data)
	}
	req, err := spd.ParsePresentRequest(cmd.P1, cmd.P2, data)
	if err != nil {
		return nil, parseErr(err)
	}
	if req.Currency != d.prof.Currency {
		return nil, apdu.SWWrongData
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	pay := req.Pay()
	if sw := d.checkAssertion(pay); sw != apdu.SWOK {
		return nil, sw
	}
	if d.bug("code-account-debits") && pay.Kind == spd.KindAccount {
		pay.Kind = spd.KindBalance
	}
	if d.bug("code-no-challenge") {
		pay.PayeeNonce = nil
	}
	if d.bug("code-before-commit") {
		return d.codeWithoutCommit(pay, req)
	}
	env, rec, sw := d.payment(spd.INSPresentCode, pay, spd.Unix(req.Expiry))
	if sw != apdu.SWOK {
		return nil, sw
	}
	code := spd.PaymentCode{Result: spd.Result{Envelope: env}}
	if rec != nil {
		pr := d.pendingRecord(*rec)
		if d.bug("code-record-unsigned") {
			bare := sha256.Sum256(pr.Body())
			pr.Signature, err = d.signDigest(bare[:])
		} else {
			err = d.signRecord(&pr)
		}
		if err != nil {
			return nil, apdu.SWUnknown
		}
		code.Record, code.Certificate = &pr, d.prof.Certificate
	}
	return code.Marshal(), apdu.SWOK
}

// pendingRecord is r as READ PENDING exports it (SPEC.md section 8),
// unsigned.
func (d *Device) pendingRecord(r record) spd.PendingRecord {
	pr := spd.PendingRecord{
		DeviceID: d.id, ATC: r.ATC, Kind: r.Kind, Mode: r.Mode, Amount: r.Amount,
		Currency: d.prof.Currency, Token: r.Token, Time: unixTime(r.Time), Payee: r.Payee,
		PayeeNonce: r.PayeeNonce, Nonce: r.Nonce, Serial: r.Serial, Counterpart: r.Counterpart,
	}
	if x := r.Exchange; x != nil {
		pr.Exchange, pr.TargetCurrency, pr.RateNumerator, pr.RateDenominator, pr.Target = x.Kind, x.TargetCurrency, x.Numerator, x.Denominator, x.Target
	}
	return pr
}

// clampLife is the mutant code-life-unbounded: a requested life beyond
// the maximum is cut to it instead of refused.
func clampLife(p1, p2 byte, data []byte) []byte {
	objs, err := tlv.Parse(data)
	if err != nil {
		return data
	}
	var at, exp uint32
	for _, o := range objs {
		if len(o.Value) == 4 && (o.Tag == spd.TagTime || o.Tag == spd.TagExpiry) {
			v := uint32(o.Value[0])<<24 | uint32(o.Value[1])<<16 | uint32(o.Value[2])<<8 | uint32(o.Value[3])
			if o.Tag == spd.TagTime {
				at = v
			} else {
				exp = v
			}
		}
	}
	limit := uint32(spd.MaxCodeLife.Seconds())
	if exp == 0 || exp <= at || exp-at <= limit {
		return data
	}
	var b tlv.Builder
	for _, o := range objs {
		if o.Tag == spd.TagExpiry {
			b.Add(o.Tag, u32(at+limit))
		} else {
			b.Add(o.Tag, o.Value)
		}
	}
	out, err := b.Bytes()
	if err != nil {
		return data
	}
	return out
}

// codeWithoutCommit is the mutant code-before-commit: the code is made
// from the current counters as if paid, and nothing is written.
func (d *Device) codeWithoutCommit(pay spd.PayRequest, req spd.PresentRequest) ([]byte, apdu.SW) {
	total, _, _ := d.pendingTotals()
	nc := d.c
	nc.ATC++
	info := d.baseInfo(medium.KindPaymentResult, nc, total, spd.Unix(pay.Time))
	info.Expiry = unixTime(spd.Unix(req.Expiry))
	success := 0
	info.Result = &success
	info.Amount, info.PayeeNonce, info.PayeeID, info.Token = pay.Amount, pay.PayeeNonce, pay.Payee, d.prof.AccountToken
	if len(pay.Token) > 0 {
		info.Token = pay.Token
	}
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	pr := d.pendingRecord(record{Kind: pay.Kind, Mode: spd.ModeOffline, ATC: nc.ATC, Amount: pay.Amount,
		Time: spd.Unix(pay.Time), Token: info.Token, Payee: pay.Payee, PayeeNonce: pay.PayeeNonce, Nonce: d.randBytes(16)})
	if err := d.signRecord(&pr); err != nil {
		return nil, apdu.SWUnknown
	}
	return spd.PaymentCode{Result: spd.Result{Envelope: env}, Record: &pr, Certificate: d.prof.Certificate}.Marshal(), apdu.SWOK
}
