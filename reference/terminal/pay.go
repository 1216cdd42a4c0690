package terminal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
)

// Order is what the terminal read from a merchant's order code (C5, C48).
type Order struct {
	Payee     string // the merchant account (C5)
	Reference string // bill number, echoed by the device as the payee nonce
	Amount    int64  // minor units; 0 when the code names none
	Currency  uint16
	Merchant  string
	City      string
	Code      merchant.Order
}

// ScanOrder reads a merchant order code from its text (C5).
func ScanOrder(text string) (Order, error) {
	o, err := merchant.Decode(strings.TrimSpace(text))
	if err != nil {
		return Order{}, fmt.Errorf("terminal: %w", err)
	}
	payee, ok := o.Payee()
	if !ok {
		return Order{}, errors.New("terminal: the order code names no spdlab payee account")
	}
	out := Order{Payee: payee, Merchant: o.Name, City: o.City, Code: o}
	if o.Additional != nil {
		out.Reference = o.Additional.BillNumber
	}
	if o.Currency != "" {
		c, err := strconv.ParseUint(o.Currency, 10, 16)
		if err != nil {
			return Order{}, fmt.Errorf("terminal: order currency %q", o.Currency)
		}
		out.Currency = uint16(c)
	}
	if o.Amount != "" {
		if out.Amount, err = merchant.ParseAmount(o.Amount, 2); err != nil {
			return Order{}, fmt.Errorf("terminal: %w", err)
		}
	}
	if len(out.Payee) > 32 || len(out.Reference) > 32 {
		return Order{}, errors.New("terminal: payee or reference longer than 32 bytes")
	}
	return out, nil
}

// ScanOrderPNG reads a merchant order code from a picture of it (C5).
func ScanOrderPNG(r io.Reader) (Order, error) {
	text, _, err := medium.DecodePNG(r)
	if err != nil {
		return Order{}, fmt.Errorf("terminal: %w", err)
	}
	return ScanOrder(text)
}

// ScanOrderImage reads a merchant order code from a camera image (C5).
func ScanOrderImage(img image.Image) (Order, error) {
	text, _, err := medium.DecodeImage(img)
	if err != nil {
		return Order{}, fmt.Errorf("terminal: %w", err)
	}
	return ScanOrder(text)
}

// Network chooses whether a service runs online or offline.
type Network uint8

// Networks.
const (
	// Auto goes online when the backend answers, offline otherwise.
	Auto Network = iota
	// OnlineOnly refuses the service when the backend cannot be reached.
	OnlineOnly
	// OfflineOnly never calls the backend.
	OfflineOnly
)

// Payment is a payment the user asked for.
type Payment struct {
	Order Order
	Kind  spd.PaymentKind // KindBalance, KindAccount or KindUse
	// Amount overrides Order.Amount when not 0 (a static code).
	Amount  int64
	Network Network
	// Token pays under a token the device issued (C20-C24); nil: the
	// account token.
	Token []byte
	// Channel is the device channel (default in store).
	Channel medium.Channel
	Verify  Verification
}

// channelName is the backend's name of a device channel.
func channelName(c medium.Channel, def string) string {
	switch c {
	case medium.ChannelOnline:
		return "online"
	case medium.ChannelTransfer:
		return "transfer"
	}
	return def
}

// Pay pays a merchant's order (C2, C5, C7, C29-C31): online when the
// backend answers (the backend authorises in real time and the record is
// cleared from the ledger), offline otherwise (the device records the
// payment for settlement).
func (t *Terminal) Pay(ctx context.Context, p Payment) Outcome {
	return t.report(ctx, t.pay(ctx, p))
}

func (t *Terminal) pay(ctx context.Context, p Payment) Outcome {
	if t.bound == nil {
		return notDone(FlowPay, "%v", ErrNotAttached)
	}
	amount := p.Amount
	if amount == 0 && p.Kind != spd.KindUse {
		amount = p.Order.Amount
	}
	if p.Kind == spd.KindUse {
		amount = 0
	}
	if !p.Kind.IsPayment() {
		return notDone(FlowPay, "%s is not a payment kind", p.Kind)
	}
	if p.Order.Currency != 0 && p.Order.Currency != t.currency {
		return notDone(FlowPay, "the order is in currency %d, the device holds %d", p.Order.Currency, t.currency)
	}
	channel := p.Channel
	if channel == 0 {
		channel = medium.ChannelInStore
	}
	online := false
	switch p.Network {
	case OnlineOnly:
		if !t.Online(ctx) {
			return notDone(FlowPay, "%v; nothing was paid", ErrOffline)
		}
		online = true
	case Auto:
		online = t.Online(ctx)
	}
	backendChannel := channelName(channel, t.cfg.Channel)
	if online && p.Token != nil {
		if err := t.checkVault(ctx, p.Token, backendChannel); err != nil {
			return notDone(FlowPay, "the vault refuses the token: %v; nothing was paid", err)
		}
	}
	purpose := fmt.Sprintf("pay %d to %s", amount, p.Order.Payee)
	v, err := t.verify(ctx, p.Verify, purpose, true)
	if err != nil {
		return notDone(FlowPay, "%v; nothing was paid", err)
	}
	mode := spd.ModeOffline
	if online {
		mode = spd.ModeOnline
	}
	req := spd.PayRequest{Kind: p.Kind, Mode: mode, Amount: amount, Currency: t.currency, Time: t.now(),
		Region: v.region, RequiredTier: p.Verify.RequiredTier, Token: p.Token, Channel: channel}
	// SPD-PAY-7, SPD-PAY-8: every PAY names its payee (the order's, or this
	// terminal) and carries a fresh nonce, so that no two records are alike.
	payee := p.Order.Payee
	if payee == "" {
		payee = t.cfg.Name
	}
	req.Payee, req.TerminalNonce = []byte(payee), terminalNonce()
	if p.Order.Reference != "" {
		req.PayeeNonce = []byte(p.Order.Reference)
	}
	if p.Verify.Host != 0 {
		if req.Assertion, err = t.hostAssertion(ctx, p.Verify.Host, req.Amount, req.Payee, purpose); err != nil {
			return notDone(FlowPay, "%v; nothing was paid", err)
		}
	}
	atcBefore, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowPay, "%v: %v; nothing was paid", ErrDetached, err)
	}
	res, err := t.card.Pay(ctx, req)
	var refused *apdu.SWError
	if errors.As(err, &refused) {
		// The device answered: a status word other than 9000 changes
		// nothing (SPD-APP-4).
		return notDone(FlowPay, "the device refused PAY (%v); nothing was paid", err)
	}
	if err != nil && !errors.Is(err, spd.ErrDeclined) {
		// The device may or may not have paid: its counter says which.
		return t.resolvePay(ctx, atcBefore, p, err)
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowPay, "the device's result does not verify: %v", err)
	}
	info := res.Info()
	o := Outcome{Flow: FlowPay, Kind: p.Kind, Amount: info.Amount, Currency: info.Currency, Balance: info.Balance,
		ATC: info.ATC, Payee: payee, Reference: p.Order.Reference, Token: info.Token, Result: &res}
	if !res.Success() {
		o.Status, o.Reason = NotDone, "declined by the device: "+info.Reason
		return o
	}
	o.Status = Done
	rec, err := t.record(ctx, info.ATC)
	if err != nil {
		o.Pending, o.Reason = true, fmt.Sprintf("paid on the device; its record could not be read (%v) and settles on the next settlement", err)
		return o
	}
	if !online {
		o.Pending, o.Reason = true, "paid offline; the record settles when the backend is reached"
		return o
	}
	return t.authorise(ctx, o, rec, backendChannel)
}

// resolvePay settles the doubt after PAY failed in transit: the ATC moves
// with every payment made, so the device paid when it moved.
func (t *Terminal) resolvePay(ctx context.Context, before uint32, p Payment, cause error) Outcome {
	if err := t.Attached(ctx); err != nil {
		return notDone(FlowPay, "the device did not answer PAY (%v) and is not attached (%v); take it to a terminal to settle: its ledger tells whether it paid", cause, err)
	}
	after, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowPay, "the device did not answer PAY (%v) nor GET DATA (%v)", cause, err)
	}
	if after == before {
		return notDone(FlowPay, "the device did not answer PAY (%v); its counter did not move, nothing was paid", cause)
	}
	rec, err := t.record(ctx, after)
	if err != nil {
		return notDone(FlowPay, "the device's counter moved to %d but its record is not in the ledger: %v", after, err)
	}
	return Outcome{Flow: FlowPay, Status: Done, Kind: rec.Kind, Amount: rec.Amount, Currency: rec.Currency, ATC: rec.ATC,
		Payee: p.Order.Payee, Reference: p.Order.Reference, Pending: true,
		Reason: fmt.Sprintf("the device's answer was lost (%v), its ledger shows the payment; it settles on the next settlement", cause)}
}

// record returns the ledger record with the ATC.
func (t *Terminal) record(ctx context.Context, atc uint32) (spd.PendingRecord, error) {
	n, err := t.card.PendingCount(ctx)
	if err != nil {
		return spd.PendingRecord{}, err
	}
	for i := n - 1; i >= 0; i-- {
		r, err := t.card.ReadPending(ctx, i)
		if err != nil {
			return spd.PendingRecord{}, err
		}
		if r.ATC == atc {
			if err := r.Verify(t.devKey); err != nil {
				return spd.PendingRecord{}, err
			}
			return r, nil
		}
	}
	return spd.PendingRecord{}, fmt.Errorf("terminal: no ledger record with ATC %d", atc)
}

// checkVault asks the backend's vault whether a token may pay now on the
// channel (C22), before the device pays under it.
func (t *Terminal) checkVault(ctx context.Context, token []byte, channel string) error {
	var tok backend.Token
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		tok, err = c.Token(ctx, strings.ToUpper(hex.EncodeToString(token)))
		return err
	})
	if err != nil {
		return err
	}
	now := t.now()
	switch {
	case tok.DeviceID != spd.DeviceIDString(t.bound):
		return errors.New("issued to another device")
	case tok.MaxUses > 0 && tok.Uses >= tok.MaxUses:
		return fmt.Errorf("used %d of %d transactions", tok.Uses, tok.MaxUses)
	case !tok.NotBefore.IsZero() && now.Before(tok.NotBefore):
		return fmt.Errorf("not valid before %s", tok.NotBefore.Format(time.RFC3339))
	case !tok.NotAfter.IsZero() && now.After(tok.NotAfter):
		return fmt.Errorf("expired at %s", tok.NotAfter.Format(time.RFC3339))
	case len(tok.Channels) > 0 && !slices.Contains(tok.Channels, channel):
		return fmt.Errorf("channel %q not allowed", channel)
	}
	return nil
}

// authorise sends a payment's record to the backend for the real-time
// result (C30) and clears it from the ledger when the backend settled it.
func (t *Terminal) authorise(ctx context.Context, o Outcome, rec spd.PendingRecord, channel string) Outcome {
	var res backend.AuthorisationResult
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		res, err = c.Authorise(ctx, backend.AuthorisationRequest{Record: rec.Marshal(), Channel: channel, Merchant: o.Payee})
		return err
	})
	if err != nil {
		var ae *backend.APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			o.Status, o.Pending = NotDone, true
			o.Reason = fmt.Sprintf("the backend refused the payment the device made (%s: %s); its record stays on the device for the issuer", ae.Code, ae.Reason)
			return o
		}
		o.Pending = true
		o.Reason = fmt.Sprintf("paid on the device; the backend did not confirm (%v): the record settles on the next settlement, once", err)
		return o
	}
	key, err := t.backendKey(ctx)
	if err != nil {
		o.Pending = true
		o.Reason = fmt.Sprintf("paid on the device; the backend's key to check its answer could not be fetched (%v): the record settles on the next settlement, once", err)
		return o
	}
	if res.Verify(key) != nil || res.DeviceID != spd.DeviceIDString(t.bound) || res.ATC != rec.ATC {
		o.Pending = true
		o.Reason = "paid on the device; the backend's answer does not verify: the record settles on the next settlement, once"
		return o
	}
	o.Authorisation = &res
	if res.Status != backend.Approved {
		o.Status, o.Pending = NotDone, true
		o.Reason = fmt.Sprintf("declined by the backend (%s) after the device paid; its record stays on the device for the issuer", res.Reason)
		return o
	}
	o.Online = true
	// The backend settled the payment: hand the record over to clear it
	// from the ledger (it answers already_settled and the acknowledgement).
	if _, left, err := t.settleRecords(ctx, []spd.PendingRecord{rec}); err != nil {
		o.Reason = fmt.Sprintf("confirmed online; the device's record is cleared on the next settlement (%v)", err)
	} else {
		o.Left = left
	}
	return o
}

// Settle hands the device's pending ledger to the backend and applies the
// signed acknowledgement to the device (C4, C7, SPD-LED-5). A record the
// backend refuses is reported and stays on the device; a record sent again
// (after a lost answer, by another terminal) settles once.
func (t *Terminal) Settle(ctx context.Context) Outcome {
	return t.report(ctx, t.settle(ctx))
}

func (t *Terminal) settle(ctx context.Context) Outcome {
	if err := t.Attached(ctx); err != nil {
		return notDone(FlowSettle, "%v", err)
	}
	recs, err := t.card.PendingRecords(ctx)
	if err != nil {
		return notDone(FlowSettle, "read the ledger: %v", err)
	}
	o := Outcome{Flow: FlowSettle, Status: Done}
	if len(recs) == 0 {
		o.Reason = "nothing to settle"
		return o
	}
	sum, left, err := t.settleRecords(ctx, recs)
	o.Settled, o.AlreadySettled, o.Held, o.Refused, o.Settlement, o.Left = sum.settled, sum.already, sum.held, sum.refused, sum.ack, left
	if err != nil {
		o.Status, o.Reason = NotDone, fmt.Sprintf("%v; the %d records stay on the device and settle once on a later try", err, len(recs))
		return o
	}
	if len(o.Refused) > 0 {
		o.Reason = fmt.Sprintf("%d records refused by the backend stay on the device", len(o.Refused))
	}
	if bal, err := t.card.Balance(ctx); err == nil {
		o.Balance = bal
	}
	return o
}

type settlement struct {
	settled, already, held int
	refused                []RefusedRecord
	ack                    *backend.SettlementAck
}

// settleRecords sends recs as one batch, drops records the backend refuses
// (naming them) and sends the rest again, then applies the acknowledgement.
// It returns the records left on the device.
func (t *Terminal) settleRecords(ctx context.Context, recs []spd.PendingRecord) (settlement, int, error) {
	var sum settlement
	for len(recs) > 0 {
		batch := backend.SettlementBatch{BatchID: t.batchID(recs)}
		for _, r := range recs {
			batch.Records = append(batch.Records, r.Marshal())
		}
		var ack backend.SettlementAck
		err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
			var err error
			ack, err = c.Settle(ctx, batch)
			return err
		})
		var ae *backend.APIError
		if errors.As(err, &ae) && ae.Status < 500 && ae.Index != nil && *ae.Index >= 0 && *ae.Index < len(recs) {
			i := *ae.Index
			sum.refused = append(sum.refused, RefusedRecord{ATC: recs[i].ATC, Code: ae.Code, Reason: ae.Reason})
			recs = slices.Delete(slices.Clone(recs), i, i+1)
			continue
		}
		if err != nil {
			return sum, 0, fmt.Errorf("settlement not confirmed: %w", err)
		}
		key, err := t.backendKey(ctx)
		if err != nil {
			return sum, 0, fmt.Errorf("settlement not confirmed: backend key: %w", err)
		}
		if err := ack.Verify(key); err != nil {
			return sum, 0, fmt.Errorf("settlement acknowledgement does not verify: %w", err)
		}
		for _, e := range ack.Entries {
			switch e.Status {
			case backend.Settled:
				sum.settled++
			case backend.AlreadySettled:
				sum.already++
			case backend.Held:
				sum.held++
			}
		}
		sum.ack = &ack
		if err := t.applyAck(ctx, ack); err != nil {
			return sum, 0, err
		}
		break
	}
	left, err := t.card.PendingCount(ctx)
	if err != nil {
		return sum, 0, fmt.Errorf("read the ledger after settlement: %w", err)
	}
	return sum, left, nil
}

// batchID names a batch after the terminal, the device and its first ATC,
// so that a batch sent again carries the same ID.
func (t *Terminal) batchID(recs []spd.PendingRecord) string {
	return fmt.Sprintf("%s-%s-%d-%d", t.cfg.Name, spd.DeviceIDString(t.bound), recs[0].ATC, len(recs))
}

// applyAck sends the device its host-signed ACKNOWLEDGE commands.
func (t *Terminal) applyAck(ctx context.Context, ack backend.SettlementAck) error {
	me := spd.DeviceIDString(t.bound)
	for _, da := range ack.Acknowledgements {
		if da.DeviceID != me {
			continue
		}
		for _, raw := range da.Commands {
			cmd, err := apdu.ParseCommand(raw)
			if err != nil {
				return fmt.Errorf("settled at the backend; its ACKNOWLEDGE is malformed (%v): the records settle as already settled next time", err)
			}
			if err := t.card.Send(ctx, cmd); err != nil {
				return fmt.Errorf("settled at the backend; the device refused the ACKNOWLEDGE (%v): the records settle as already settled next time", err)
			}
		}
	}
	return nil
}

// Sync reports the device's contact to the backend and applies the
// parameter updates queued for it (C3, C14, C15): top-ups, uses, limits,
// tier, state. Each update applies once (its counter).
func (t *Terminal) Sync(ctx context.Context) Outcome {
	return t.report(ctx, t.sync(ctx))
}

func (t *Terminal) sync(ctx context.Context) Outcome {
	if err := t.Attached(ctx); err != nil {
		return notDone(FlowSync, "%v", err)
	}
	applied, err := t.card.UpdateCounter(ctx)
	if err != nil {
		return notDone(FlowSync, "read the update counter: %v", err)
	}
	bal, err := t.card.Balance(ctx)
	if err != nil {
		return notDone(FlowSync, "read the balance: %v", err)
	}
	atc, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowSync, "read the ATC: %v", err)
	}
	var reply backend.ContactReply
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		reply, err = c.Contact(ctx, spd.DeviceIDString(t.bound), backend.Contact{Applied: int64(applied), Balance: &bal, ATC: &atc})
		return err
	})
	if err != nil {
		return notDone(FlowSync, "%v: %v", ErrOffline, err)
	}
	o := Outcome{Flow: FlowSync, Status: Done}
	for _, u := range reply.Updates {
		if u.Counter <= int64(applied) {
			continue
		}
		cmd, err := apdu.ParseCommand(u.Command)
		if err != nil {
			return notDone(FlowSync, "update %d is malformed: %v", u.Counter, err)
		}
		if err := t.card.Send(ctx, cmd); err != nil {
			if errors.Is(err, &apdu.SWError{SW: apdu.SWRefDataNotUsable}) {
				continue
			}
			o.Status, o.Reason = NotDone, fmt.Sprintf("the device refused update %d: %v (%d applied before it)", u.Counter, err, o.Applied)
			return o
		}
		o.Applied++
	}
	// Outgoing transfers closed at the backend (imported or reclaimed,
	// whichever device settled first): the device closes them.
	if err := t.sendCommands(ctx, reply.Acknowledge); err != nil {
		o.Status, o.Reason = NotDone, fmt.Sprintf("the device refused the acknowledgement of its closed transfers: %v", err)
		return o
	}
	if b, err := t.card.Balance(ctx); err == nil {
		o.Balance = b
	}
	return o
}

// ShowMedium has the device generate a stored-value medium and shows it
// as a QR code for a merchant's scanner (C8, C9, C12). nonce binds it to a
// merchant's request.
func (t *Terminal) ShowMedium(ctx context.Context, nonce []byte, v Verification) Outcome {
	return t.report(ctx, t.showMedium(ctx, nonce, v))
}

func (t *Terminal) showMedium(ctx context.Context, nonce []byte, v Verification) Outcome {
	if _, err := t.verify(ctx, v, "show a payment code", true); err != nil {
		return notDone(FlowShowMedium, "%v", err)
	}
	res, err := t.card.GenerateMedium(ctx, spd.MediumRequest{Time: t.now(), PayeeNonce: nonce})
	if err != nil {
		return notDone(FlowShowMedium, "GENERATE MEDIUM: %v", err)
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowShowMedium, "the medium does not verify: %v", err)
	}
	if err := t.show(ctx, "payment code", medium.Text(res.Envelope)); err != nil {
		return notDone(FlowShowMedium, "%v", err)
	}
	info := res.Info()
	return Outcome{Flow: FlowShowMedium, Status: Done, Balance: info.Balance, ATC: info.ATC, Currency: info.Currency,
		Token: info.Token, Result: &res}
}

// sameDevice reports whether a medium names the bound device.
func (t *Terminal) sameDevice(id []byte) bool { return bytes.Equal(id, t.bound) }

// terminalNonce draws the unpredictable number of one PAY (SPD-PAY-8).
func terminalNonce() []byte {
	n := make([]byte, 16)
	if _, err := rand.Read(n); err != nil {
		panic("terminal: random source failed: " + err.Error())
	}
	return n
}
