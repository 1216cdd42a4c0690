package terminal

import (
	"context"
	"errors"
	"fmt"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/spd"
)

// ExchangeOrder is an exchange the user asked for (SPEC.md 4.11, C13):
// stored value into uses, or into another currency paid to the designated
// account.
type ExchangeOrder struct {
	Kind   spd.ExchangeKind
	Amount int64  // stored value offered, in the device's currency
	Target uint16 // the currency bought (spd.ExchangeCurrency)
	Verify Verification
}

// Exchange asks the issuer's host for the rate of the device's next
// exchange (POST /v1/rates), has the device exchange at it (EXCHANGE,
// which checks the rate itself), and settles the exchange's record at once
// (it stays in the ledger for a later Settle when the backend does not
// answer). The host quotes the rate, so an exchange needs the backend.
func (t *Terminal) Exchange(ctx context.Context, x ExchangeOrder) Outcome {
	return t.report(ctx, t.exchange(ctx, x))
}

func (t *Terminal) exchange(ctx context.Context, x ExchangeOrder) Outcome {
	if t.bound == nil {
		return notDone(FlowExchange, "%v", ErrNotAttached)
	}
	var kind string
	switch x.Kind {
	case spd.ExchangeUses:
		kind = backend.ExchangeUses
	case spd.ExchangeCurrency:
		kind = backend.ExchangeCurrency
	default:
		return notDone(FlowExchange, "%v is not an exchange", x.Kind)
	}
	if !t.Online(ctx) {
		return notDone(FlowExchange, "%v: the issuer's host sets the rate; nothing was exchanged", ErrOffline)
	}
	purpose := fmt.Sprintf("exchange %d into %s", x.Amount, kind)
	if _, err := t.verify(ctx, x.Verify, purpose, true); err != nil {
		return notDone(FlowExchange, "%v; nothing was exchanged", err)
	}
	atc, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowExchange, "%v: %v; nothing was exchanged", ErrDetached, err)
	}
	var rate backend.ExchangeRate
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		rate, err = c.Rate(ctx, backend.RateRequest{DeviceID: spd.DeviceIDString(t.bound), ATC: atc + 1, Kind: kind, Target: x.Target})
		return err
	})
	if t.step(ctx, "exchange rate", err) != nil {
		return notDone(FlowExchange, "the issuer's host quotes no rate: %v; nothing was exchanged", err)
	}
	req := spd.ExchangeRequest{Kind: x.Kind, Amount: x.Amount, Currency: t.currency, Time: t.now(), Rate: rate.Rate, Nonce: terminalNonce()}
	res, err := t.card.Exchange(ctx, req)
	var refused *apdu.SWError
	switch {
	case errors.As(err, &refused):
		return notDone(FlowExchange, "the device refused EXCHANGE at %d/%d (%v); nothing was exchanged", rate.Numerator, rate.Denominator, err)
	case err != nil:
		// The device may or may not have exchanged: its counter says which.
		after, aerr := t.card.ATC(ctx)
		if aerr != nil || after == atc {
			return notDone(FlowExchange, "the device did not answer EXCHANGE (%v); its counter did not move, nothing was exchanged", err)
		}
		rec, rerr := t.record(ctx, after)
		if rerr != nil || rec.Kind != spd.KindExchange {
			return notDone(FlowExchange, "the device's counter moved to %d but its exchange is not in the ledger", after)
		}
		return t.exchanged(ctx, Outcome{Flow: FlowExchange, Status: Done, Kind: rec.Kind, Amount: rec.Amount, Currency: rec.Currency, ATC: rec.ATC,
			Bought: rec.Target, BoughtCurrency: rec.TargetCurrency}, rec)
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowExchange, "the device's answer does not verify: %v", err)
	}
	info := res.Result.Info()
	o := Outcome{Flow: FlowExchange, Status: Done, Kind: spd.KindExchange, Amount: info.Amount, Currency: info.Currency,
		Balance: info.Balance, Uses: uint32(info.Uses), ATC: info.ATC, Token: info.Token, Result: &res.Result,
		Bought: res.Record.Target, BoughtCurrency: res.Record.TargetCurrency}
	return t.exchanged(ctx, o, res.Record)
}

// exchanged settles the exchange's record at once, as an online payment is
// authorised; a record the backend did not settle waits for Settle.
func (t *Terminal) exchanged(ctx context.Context, o Outcome, rec spd.PendingRecord) Outcome {
	sum, _, err := t.settleRecords(ctx, []spd.PendingRecord{rec})
	switch {
	case err != nil:
		o.Pending = true
		o.Reason = fmt.Sprintf("exchanged on the device; the backend did not settle it (%v): the record settles on the next settlement, once", err)
	case len(sum.refused) > 0:
		o.Pending = true
		o.Reason = fmt.Sprintf("exchanged on the device; the backend refused its record (%s: %s), which stays on the device for the issuer", sum.refused[0].Code, sum.refused[0].Reason)
	default:
		o.Online, o.Settlement = true, sum.ack
	}
	return o
}
