package device

import (
	"bytes"
	"encoding/hex"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// Decline reasons a payment result carries (SPEC.md SPD-PAY-6).
const (
	ReasonInsufficientBalance = "insufficient balance"
	ReasonNoUses              = "no uses left"
	ReasonOverPaymentLimit    = "over the per-payment limit"
	ReasonOverPendingLimit    = "over the offline pending limit"
	ReasonOverCountLimit      = "over the offline count limit"
	ReasonSyncTooOld          = "too long offline since the last sync"
	ReasonLocation            = "location not allowed"
	ReasonAttribute           = "attribute: tier too low"
	ReasonUnknownToken        = "unknown token"
	ReasonTokenExpired        = "token expired"
	ReasonTokenUsedUp         = "token transactions used up"
	ReasonTokenAmount         = "over the token amount"
	ReasonTokenChannel        = "channel not allowed for the token"
)

func unixTime(s uint32) time.Time { return time.Unix(int64(s), 0).UTC() }

// baseInfo fills the service information every medium of this device
// carries, from the counters nc.
func (d *Device) baseInfo(kind medium.Kind, nc counters, pending int64, at uint32) medium.ServiceInfo {
	t := unixTime(at)
	return medium.ServiceInfo{
		Kind:     kind,
		AID:      spd.AID,
		DeviceID: d.id,
		Balance:  nc.Balance,
		Pending:  pending,
		Uses:     int(nc.Uses),
		ATC:      nc.ATC,
		Currency: d.prof.Currency,
		Issued:   t,
		Expiry:   t,
	}
}

func (d *Device) sign(info medium.ServiceInfo) ([]byte, apdu.SW) {
	if d.bug("medium-sign-template") {
		return d.signTemplateOnly(info)
	}
	env, err := medium.Sign(info, signer{d})
	if err != nil {
		return nil, apdu.SWUnknown
	}
	return env, apdu.SWOK
}

// basisPoints returns amount*bp/10000 truncated toward zero, without
// overflow for amounts up to 2^62.
func basisPoints(amount, bp int64) int64 {
	q, r := amount/10000, amount%10000
	return q*bp + r*bp/10000
}

// Adjust applies the amount rules of C18 (SPD-ADJ-1): the tier discount,
// then the region adjustment, each truncated toward zero, clamped to
// 0..2^62.
func Adjust(p *spd.Profile, tier uint8, region uint16, amount int64) int64 {
	if tier < 4 {
		amount -= basisPoints(amount, int64(p.TierDiscounts[tier]))
	}
	if region != 0 {
		for _, a := range p.Adjustments {
			if a.Region == region {
				amount += basisPoints(amount, int64(a.BasisPoints))
				break
			}
		}
	}
	if amount < 0 {
		return 0
	}
	if amount > maxAmount {
		return maxAmount
	}
	return amount
}

func (d *Device) doPay(cmd apdu.Command) ([]byte, apdu.SW) {
	if d.bug("verified-before-data") && !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	req, err := spd.ParsePayRequest(cmd.P1, cmd.P2, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if req.Currency != d.prof.Currency && d.bug("currency-6985") {
		return nil, apdu.SWConditionsNotSat
	}
	if req.Currency != d.prof.Currency {
		return nil, apdu.SWWrongData
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	if sw := d.checkAssertion(req); sw != apdu.SWOK {
		return nil, sw
	}
	env, _, sw := d.payment(spd.INSPay, req, 0)
	return env, sw
}

// payment makes the payment req once its command passed every check
// before the ledger (PAY, PRESENT CODE): it answers the signed result
// and, for a payment made, the record it added. A non-zero expiry is the
// result's 5F24 (a payment code's life, SPEC.md 4.9).
func (d *Device) payment(ins spd.INS, req spd.PayRequest, expiry uint32) ([]byte, *record, apdu.SW) {
	if len(d.pend) >= d.cfg.MaxLedger && d.bug("ledger-drops-oldest") {
		d.dropOldest()
	}
	if len(d.pend) >= d.cfg.MaxLedger && !(d.bug("ledger-capacity-65") && len(d.pend) == d.cfg.MaxLedger) {
		return nil, nil, apdu.SWNotEnoughMemory
	}
	total, offAmount, offCount := d.pendingTotals()
	if d.bug("offline-pending-all") {
		offAmount = total
	}
	now := spd.Unix(req.Time)
	var tok token
	var tokName string
	tokChecked := false // the token's controls passed (the mutant token-counts-declines)
	decline := func(reason string) ([]byte, *record, apdu.SW) {
		info := d.baseInfo(medium.KindPaymentResult, d.c, total, now)
		if expiry != 0 {
			info.Expiry = unixTime(expiry)
		}
		failure := 1
		info.Result, info.Reason = &failure, reason
		info.Amount, info.PayeeNonce, info.PayeeID, info.Token = req.Amount, req.PayeeNonce, req.Payee, req.Token
		if len(info.Token) == 0 || d.bug("decline-account-token") {
			info.Token = d.prof.AccountToken
		}
		if d.bug("token-counts-declines") && tokChecked {
			tok.Used++
			tx := d.st.Begin()
			tx.Put(tokKey(req.Token), tok.marshal())
			if d.commit(tx) == apdu.SWOK {
				d.tokens[tokName] = tok
			}
		}
		if d.bug("decline-spends-atc") {
			nc := d.c
			nc.ATC++
			d.commitCounters(nc)
		}
		env, sw := d.sign(info)
		return env, nil, sw
	}

	// Token domain controls (C20-C24).
	tokenUsed := d.prof.AccountToken
	if len(req.Token) > 0 && !bytes.Equal(req.Token, d.prof.AccountToken) {
		tokName = hex.EncodeToString(req.Token)
		t, ok := d.tokens[tokName]
		switch {
		case !ok && d.bug("token-unknown-account"):
			tokName = ""
		case !ok:
			return decline(ReasonUnknownToken)
		default:
			tok, tokenUsed = t, req.Token
		}
	}
	// Location and attribute checks (C33).
	if len(d.prof.Regions) > 0 {
		ok := false
		for _, r := range d.prof.Regions {
			if r == req.Region {
				ok = true
			}
		}
		if (!ok || req.Region == 0) && !(d.bug("location-absent-ok") && req.Region == 0) {
			return decline(ReasonLocation)
		}
	}
	if d.c.Tier < req.RequiredTier || (d.bug("tier-inclusive") && req.RequiredTier > 0 && d.c.Tier == req.RequiredTier) {
		return decline(ReasonAttribute)
	}
	amount := int64(0)
	switch {
	case req.Kind == spd.KindUse:
	case d.bug("adjust-online-only") && req.Mode == spd.ModeOffline:
		amount = req.Amount
	default:
		amount = d.adjust(d.c.Tier, req.Region, req.Amount)
	}
	tokAmount := amount
	if d.bug("token-amount-raw") && req.Kind != spd.KindUse {
		tokAmount = req.Amount
	}
	if d.bug("limit-before-token") && d.c.Limits.MaxPayment > 0 && amount > d.c.Limits.MaxPayment {
		return decline(ReasonOverPaymentLimit)
	}
	if tokName != "" && !(d.bug("token-use-unchecked") && req.Kind == spd.KindUse) && !(d.bug("code-token-unchecked") && ins == spd.INSPresentCode) {
		switch {
		case now > tok.Expiry || (d.bug("token-expiry-inclusive") && now == tok.Expiry):
			return decline(ReasonTokenExpired)
		case tok.Used >= tok.MaxTxns && !(d.bug("token-uses-plus-one") && tok.Used == tok.MaxTxns):
			return decline(ReasonTokenUsedUp)
		case tokAmount > tok.MaxAmount:
			return decline(ReasonTokenAmount)
		case tok.Channels&uint8(req.Channel) == 0 && !d.bug("token-channel-ignored"):
			return decline(ReasonTokenChannel)
		}
		tokChecked = true
	}
	lim := d.c.Limits
	if d.bug("decline-order") && req.Kind == spd.KindBalance && amount > d.c.Balance {
		return decline(ReasonInsufficientBalance)
	}
	limAmount := amount
	if d.bug("limit-raw-amount") && req.Kind != spd.KindUse {
		limAmount = req.Amount
	}
	if lim.MaxPayment > 0 && (limAmount > lim.MaxPayment || (d.bug("limit-inclusive") && limAmount == lim.MaxPayment)) {
		return decline(ReasonOverPaymentLimit)
	}
	switch req.Kind {
	case spd.KindBalance:
		if amount > d.c.Balance || (d.bug("balance-inclusive") && amount == d.c.Balance) {
			return decline(ReasonInsufficientBalance)
		}
	case spd.KindUse:
		if d.c.Uses == 0 && !d.bug("uses-wrap") {
			return decline(ReasonNoUses)
		}
	}
	if req.Mode == spd.ModeOffline && !(d.bug("offline-account-unlimited") && req.Kind == spd.KindAccount) {
		since := int64(now) - int64(d.c.LastSync) // negative for a time before the last sync
		if d.bug("offline-age-unsigned") {
			since = int64(now - d.c.LastSync)
		}
		reason := func(r string) string {
			if d.bug("offline-reason-generic") {
				return "offline limit"
			}
			return r
		}
		switch {
		case (offAmount+amount > lim.MaxPending || (d.bug("offline-pending-inclusive") && offAmount+amount == lim.MaxPending)) &&
			!(d.bug("offline-pending-zero-unlimited") && lim.MaxPending == 0):
			return decline(reason(ReasonOverPendingLimit))
		case offCount+1 > lim.MaxOfflineCount && !(d.bug("offline-count-plus-one") && offCount == lim.MaxOfflineCount) &&
			!(d.bug("offline-count-zero-unlimited") && lim.MaxOfflineCount == 0):
			return decline(reason(ReasonOverCountLimit))
		case lim.MaxOfflineAge > 0 && (since > int64(lim.MaxOfflineAge/time.Second) || (d.bug("offline-age-inclusive") && since == int64(lim.MaxOfflineAge/time.Second))) &&
			!d.bug("offline-age-ignored") &&
			!(d.bug("code-age-unchecked") && ins == spd.INSPresentCode):
			return decline(reason(ReasonSyncTooOld))
		}
	}

	nc := d.c
	if !d.bug("pay-no-atc") {
		nc.ATC++
	}
	switch req.Kind {
	case spd.KindBalance:
		nc.Balance -= amount
	case spd.KindUse:
		nc.Uses--
	}
	if d.bug("account-debits-balance") && req.Kind == spd.KindAccount {
		nc.Balance -= min(amount, nc.Balance)
	}
	rec := record{Kind: req.Kind, Mode: req.Mode, ATC: nc.ATC, Amount: amount, Time: now,
		Token: tokenUsed, Payee: req.Payee, PayeeNonce: req.PayeeNonce, Nonce: req.TerminalNonce}
	if d.bug("record-raw-amount") && req.Kind != spd.KindUse {
		rec.Amount = req.Amount
	}
	if d.bug("record-no-payee-nonce") {
		rec.PayeeNonce = nil
	}
	if len(rec.Nonce) == 0 || d.bug("record-nonce-ignored") {
		rec.Nonce = d.randBytes(16) // SPD-PAY-8: the device's own nonce
	}
	if d.bug("token-record-account") {
		rec.Token = d.prof.AccountToken
	}
	if d.bug("record-no-payee") {
		rec.Payee = nil
	}
	shown, shownTotal := nc, total+amount
	if d.bug("result-old-counters") {
		shown = d.c
	}
	if d.bug("result-pending-stale") {
		shownTotal = total
	}
	info := d.baseInfo(medium.KindPaymentResult, shown, shownTotal, now)
	if expiry != 0 {
		info.Expiry = unixTime(expiry)
	}
	success := 0
	info.Result = &success
	info.Amount, info.PayeeNonce, info.PayeeID, info.Token = amount, req.PayeeNonce, req.Payee, tokenUsed
	if d.bug("result-no-payee") {
		info.PayeeID = nil
	}
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, nil, sw
	}
	tx := d.begin(ins)
	tx.Put(keyCounters, nc.marshal())
	if !(d.bug("use-no-record") && req.Kind == spd.KindUse) {
		tx.Put(pendKey(nc.ATC), rec.marshal())
	}
	if d.bug("token-not-counted") {
		tokName = ""
	}
	if tokName != "" {
		tok.Used++
		if !d.bug("nonatomic-token-pay") {
			tx.Put(tokKey(req.Token), tok.marshal())
		}
	}
	if d.bug("pay-commit-deferred") {
		d.mut.deferred = tx // committed by the next command, lost with the power
	} else if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, nil, sw
	}
	d.c = nc
	if !(d.bug("use-no-record") && req.Kind == spd.KindUse) {
		d.pend = append(d.pend, rec)
	}
	if tokName != "" && d.bug("nonatomic-token-pay") {
		tx := d.st.Begin()
		tx.Put(tokKey(req.Token), tok.marshal())
		if sw := d.commit(tx); sw != apdu.SWOK {
			return nil, nil, sw
		}
	}
	if tokName != "" {
		d.tokens[tokName] = tok
	}
	return env, &rec, apdu.SWOK
}

func (d *Device) doGenerateMedium(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	req, err := spd.ParseMediumRequest(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	total, _, _ := d.pendingTotals()
	if d.bug("medium-no-pending") {
		total = 0
	}
	nc := d.c
	if !d.bug("medium-no-atc") {
		nc.ATC++
	}
	info := d.baseInfo(medium.KindStoredValue, nc, total, spd.Unix(req.Time))
	info.Expiry = unixTime(spd.Unix(req.Expiry))
	if d.bug("medium-expiry-3600") && req.Expiry.Sub(req.Time) == spd.DefaultMediumValidity {
		info.Expiry = info.Issued.Add(time.Hour)
	}
	info.Token = d.prof.AccountToken
	if !d.bug("medium-no-nonce") {
		info.PayeeNonce = req.PayeeNonce
	}
	info.Certificate = d.prof.Certificate
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.st.Begin()
	tx.Put(keyCounters, nc.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	return env, apdu.SWOK
}

func (d *Device) doGenerateToken(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	req, err := spd.ParseTokenRequest(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	now := spd.Unix(req.Time)
	var expired []string
	for name, t := range d.tokens {
		if t.Expiry < now || t.Used >= t.MaxTxns {
			expired = append(expired, name)
		}
	}
	if d.bug("token-no-purge") {
		expired = nil
	}
	if len(d.tokens)-len(expired) >= d.cfg.MaxTokens && !(d.bug("token-capacity-9") && len(d.tokens)-len(expired) == d.cfg.MaxTokens) {
		return nil, apdu.SWNotEnoughMemory
	}
	nc := d.c
	nc.ATC++
	// A token is 12 random bytes and the ATC that made it: unguessable
	// and unique on this device (C20).
	value := append(d.randBytes(spd.TokenLen-4), u32(nc.ATC)...)
	if d.bug("token-guessable") {
		value = append(make([]byte, spd.TokenLen-4), u32(nc.ATC)...)
	}
	t := token{
		MaxTxns:   uint32(req.Controls.MaxTransactions),
		MaxAmount: req.Controls.MaxAmount,
		Channels:  uint8(req.Controls.Channels),
		Expiry:    spd.Unix(req.Expiry),
	}
	total, _, _ := d.pendingTotals()
	info := d.baseInfo(medium.KindToken, nc, total, now)
	info.Expiry = unixTime(t.Expiry)
	info.Token = value
	controls := req.Controls
	info.Controls = &controls
	info.Certificate = d.prof.Certificate
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.begin(spd.INSGenerateToken)
	tx.Put(keyCounters, nc.marshal())
	for _, name := range expired {
		tx.Delete(prefixTok + name)
	}
	tx.Put(tokKey(value), t.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	for _, name := range expired {
		delete(d.tokens, name)
	}
	d.tokens[hex.EncodeToString(value)] = t
	return env, apdu.SWOK
}
