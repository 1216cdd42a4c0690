package terminal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// TokenOrder asks the device for a payment token with domain controls
// (C20, C22, C25).
type TokenOrder struct {
	Controls medium.TokenControls
	// Expiry of the token; zero: an hour from now.
	Expiry time.Time
	Verify Verification
}

// channelNames lists the backend's names of a device channel set, plus
// "offline" so that a payment made offline under the token settles.
func channelNames(c medium.Channel) []string {
	var out []string
	if c&medium.ChannelInStore != 0 {
		out = append(out, "qr")
	}
	if c&medium.ChannelOnline != 0 {
		out = append(out, "online")
	}
	if c&medium.ChannelTransfer != 0 {
		out = append(out, "transfer")
	}
	return append(out, backend.ChannelOffline)
}

// IssueToken has the device generate a token with domain controls,
// registers it in the backend's vault with the same controls, and shows
// the token medium (C20, C22, C24-C27). It needs the backend: a token the
// vault does not know could not settle.
func (t *Terminal) IssueToken(ctx context.Context, order TokenOrder) Outcome {
	return t.report(ctx, t.issueToken(ctx, order))
}

func (t *Terminal) issueToken(ctx context.Context, order TokenOrder) Outcome {
	if !t.Online(ctx) {
		return notDone(FlowToken, "%v: the vault must register the token; no token was made", ErrOffline)
	}
	if _, err := t.verify(ctx, order.Verify, "issue a payment token", true); err != nil {
		return notDone(FlowToken, "%v; no token was made", err)
	}
	now := t.now()
	expiry := order.Expiry
	if expiry.IsZero() {
		expiry = now.Add(time.Hour)
	}
	res, err := t.card.GenerateToken(ctx, spd.TokenRequest{Time: now, Expiry: expiry, Controls: order.Controls})
	if err != nil {
		return notDone(FlowToken, "GENERATE TOKEN: %v", err)
	}
	if _, err := ReadMedium(medium.Text(res.Envelope), t.cfg.IssuerCA, now); err != nil {
		return notDone(FlowToken, "the token medium does not verify: %v", err)
	}
	info := res.Info()
	tokHex := strings.ToUpper(hex.EncodeToString(info.Token))
	req := backend.TokenRequest{DeviceID: spd.DeviceIDString(t.bound), Token: tokHex,
		MaxUses: int64(order.Controls.MaxTransactions), MaxAmount: order.Controls.MaxAmount,
		NotAfter: expiry, Channels: channelNames(order.Controls.Channels)}
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		_, err := c.MintToken(ctx, req)
		var ae *backend.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			// A retry after a lost answer: the first attempt registered it.
			tok, gerr := c.Token(ctx, tokHex)
			if gerr == nil && tok.DeviceID == req.DeviceID {
				return nil
			}
		}
		return err
	})
	if err != nil {
		return notDone(FlowToken, "the device made token %s but the vault did not register it (%v): it is not shown and must not be used", tokHex, err)
	}
	if err := t.show(ctx, "payment token", medium.Text(res.Envelope)); err != nil {
		return notDone(FlowToken, "%v", err)
	}
	return Outcome{Flow: FlowToken, Status: Done, Online: true, Token: info.Token, ATC: info.ATC,
		Balance: info.Balance, Currency: info.Currency, Result: &res}
}

// TransferOrder moves value to another device offline (C13, C16, C17).
type TransferOrder struct {
	Payee  []byte // the payee device ID: only it can import the medium
	Amount int64
	// Expiry: after it the payee refuses the medium and the payer may
	// reclaim it; zero: 24 hours from now.
	Expiry time.Time
	Verify Verification
}

// SendTransfer debits the device and shows the transfer medium, bound to
// the payee device (C13, C16, C17; SPD-XFR-1). The debit is made before
// the medium exists.
func (t *Terminal) SendTransfer(ctx context.Context, order TransferOrder) Outcome {
	return t.report(ctx, t.sendTransfer(ctx, order))
}

func (t *Terminal) sendTransfer(ctx context.Context, order TransferOrder) Outcome {
	if _, err := t.verify(ctx, order.Verify, fmt.Sprintf("transfer %d to %s", order.Amount, spd.DeviceIDString(order.Payee)), true); err != nil {
		return notDone(FlowTransferOut, "%v; nothing was transferred", err)
	}
	now := t.now()
	expiry := order.Expiry
	if expiry.IsZero() {
		expiry = now.Add(24 * time.Hour)
	}
	before, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowTransferOut, "%v: %v; nothing was transferred", ErrDetached, err)
	}
	res, err := t.card.TransferOut(ctx, spd.TransferRequest{Amount: order.Amount, Currency: t.currency, Payee: order.Payee, Time: now, Expiry: expiry})
	if err != nil {
		if res, ok := t.recoverTransfer(ctx, before, now); ok {
			return t.transferShown(ctx, res, fmt.Sprintf("the device's answer was lost (%v); its ledger shows the transfer, shown again", err))
		}
		return notDone(FlowTransferOut, "TRANSFER: %v; nothing was transferred", err)
	}
	return t.transferShown(ctx, res, "")
}

// recoverTransfer finds a transfer the device made although its answer
// was lost, by its ledger record, and has the device show it again.
func (t *Terminal) recoverTransfer(ctx context.Context, before uint32, now time.Time) (spd.Result, bool) {
	if t.Attached(ctx) != nil {
		return spd.Result{}, false
	}
	after, err := t.card.ATC(ctx)
	if err != nil || after == before {
		return spd.Result{}, false
	}
	rec, err := t.record(ctx, after)
	if err != nil || rec.Kind != spd.KindTransferOut {
		return spd.Result{}, false
	}
	res, err := t.card.TransferShow(ctx, spd.SerialAt{Serial: rec.Serial, Time: now})
	return res, err == nil
}

func (t *Terminal) transferShown(ctx context.Context, res spd.Result, reason string) Outcome {
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowTransferOut, "the transfer medium does not verify: %v", err)
	}
	info := res.Info()
	o := Outcome{Flow: FlowTransferOut, Status: Done, Pending: true, Amount: info.Amount, Currency: info.Currency,
		Balance: info.Balance, ATC: info.ATC, Serial: info.Serial, Payee: spd.DeviceIDString(info.PayeeID), Result: &res,
		Reason: reason}
	if o.Reason == "" {
		o.Reason = "debited; the payee imports the medium, or the payer reclaims it after it expires"
	}
	if err := t.show(ctx, "transfer", medium.Text(res.Envelope)); err != nil {
		o.Reason += fmt.Sprintf("; showing it failed (%v): TRANSFER SHOW shows it again", err)
	}
	return o
}

// ReceiveTransfer imports a transfer medium the payer showed, read as text
// (C13, C17; SPD-XFR-2). The terminal checks it first: certificate,
// signature, expiry, and that it names this device.
func (t *Terminal) ReceiveTransfer(ctx context.Context, text string, v Verification) Outcome {
	return t.report(ctx, t.receiveTransfer(ctx, text, v))
}

func (t *Terminal) receiveTransfer(ctx context.Context, text string, v Verification) Outcome {
	if t.bound == nil {
		return notDone(FlowTransferIn, "%v", ErrNotAttached)
	}
	now := t.now()
	m, err := ReadMedium(text, t.cfg.IssuerCA, now)
	if err != nil {
		return notDone(FlowTransferIn, "%v; nothing was credited", err)
	}
	if m.Info.Kind != medium.KindTransfer {
		return notDone(FlowTransferIn, "a %s medium, not a transfer; nothing was credited", m.Info.Kind)
	}
	if !t.sameDevice(m.Info.PayeeID) {
		return notDone(FlowTransferIn, "the transfer is for device %s, not this one; nothing was credited", spd.DeviceIDString(m.Info.PayeeID))
	}
	if _, err := t.verify(ctx, v, fmt.Sprintf("receive %d from %s", m.Info.Amount, spd.DeviceIDString(m.Info.PayerID)), true); err != nil {
		return notDone(FlowTransferIn, "%v; nothing was credited", err)
	}
	before, err := t.card.ATC(ctx)
	if err != nil {
		return notDone(FlowTransferIn, "%v: %v", ErrDetached, err)
	}
	envelope, err := medium.Seal(m.Signed, m.Signature)
	if err != nil {
		return notDone(FlowTransferIn, "%v; nothing was credited", err)
	}
	res, err := t.card.TransferIn(ctx, spd.TransferImport{Medium: envelope, Time: now})
	if err != nil {
		if t.Attached(ctx) == nil {
			if after, aerr := t.card.ATC(ctx); aerr == nil && after != before {
				if rec, rerr := t.record(ctx, after); rerr == nil && rec.Kind == spd.KindTransferIn && rec.Serial == m.Info.Serial {
					return Outcome{Flow: FlowTransferIn, Status: Done, Pending: true, Amount: rec.Amount, Currency: rec.Currency,
						ATC: rec.ATC, Serial: rec.Serial, Reason: fmt.Sprintf("the device's answer was lost (%v); its ledger shows the import", err)}
				}
			}
		}
		if errors.Is(err, &apdu.SWError{SW: apdu.SWRefDataNotUsable}) {
			return notDone(FlowTransferIn, "this transfer was imported before (TRANSFER IN: %v); nothing was credited again", err)
		}
		return notDone(FlowTransferIn, "TRANSFER IN: %v; nothing was credited", err)
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowTransferIn, "the device's result does not verify: %v", err)
	}
	info := res.Info()
	return Outcome{Flow: FlowTransferIn, Status: Done, Pending: true, Amount: info.Amount, Currency: info.Currency,
		Balance: info.Balance, ATC: info.ATC, Serial: info.Serial, Result: &res,
		Reason: "credited; the import receipt settles on the next settlement"}
}

// ReclaimTransfer credits back an outgoing transfer the payee did not
// import before it expired (SPD-XFR-4), on a host-signed RECLAIM.
func (t *Terminal) ReclaimTransfer(ctx context.Context, serial uint64) Outcome {
	return t.report(ctx, t.reclaimTransfer(ctx, serial))
}

func (t *Terminal) reclaimTransfer(ctx context.Context, serial uint64) Outcome {
	if err := t.Attached(ctx); err != nil {
		return notDone(FlowReclaim, "%v", err)
	}
	var cmd apdu.Command
	switch {
	case t.Online(ctx):
		// The backend signs the order after checking that the transfer
		// expired and that no import of it reached it (SPD-XFR-4); it
		// needs the medium, which the device shows again.
		if _, err := t.verify(ctx, Verification{}, fmt.Sprintf("reclaim transfer %d", serial), true); err != nil {
			return notDone(FlowReclaim, "%v; nothing was credited", err)
		}
		shown, err := t.card.TransferShow(ctx, spd.SerialAt{Serial: serial, Time: t.now()})
		if err != nil {
			return notDone(FlowReclaim, "TRANSFER SHOW: %v; nothing was credited", err)
		}
		var order backend.ReclaimOrder
		err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
			var err error
			order, err = c.OrderReclaim(ctx, backend.ReclaimRequest{Medium: shown.Envelope})
			return err
		})
		if err != nil {
			return notDone(FlowReclaim, "the backend gave no RECLAIM order (%v); nothing was credited", err)
		}
		if cmd, err = apdu.ParseCommand(order.Command); err != nil {
			return notDone(FlowReclaim, "the backend's RECLAIM order is malformed: %v", err)
		}
	case t.cfg.HostOrders != nil:
		var err error
		if cmd, err = t.cfg.HostOrders.Reclaim(ctx, t.bound, spd.SerialAt{Serial: serial, Time: t.now()}); err != nil {
			return notDone(FlowReclaim, "host order: %v", err)
		}
	default:
		return notDone(FlowReclaim, "%v and no host orders configured: only the issuer's host signs RECLAIM", ErrOffline)
	}
	res, err := t.card.Reclaim(ctx, cmd)
	if err != nil {
		return notDone(FlowReclaim, "RECLAIM: %v; nothing was credited", err)
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowReclaim, "the device's result does not verify: %v", err)
	}
	info := res.Info()
	return Outcome{Flow: FlowReclaim, Status: Done, Pending: true, Amount: info.Amount, Currency: info.Currency,
		Balance: info.Balance, ATC: info.ATC, Serial: serial, Result: &res,
		Reason: "credited back; the reclaim settles on the next settlement"}
}

// OnlineTransfer moves value to another device through the backend (C13,
// C16, C17; SPD-XFR-5): the payer's device debits with TRANSFER, as
// offline, and the backend settles the debit and carries the transfer
// medium to the payee's device, which imports it when its terminal claims
// it. Both devices' balances move, and the issuer's with them.
type OnlineTransfer struct {
	// ID makes the transfer idempotent: sent again, it takes effect once.
	ID     string
	Payee  []byte
	Amount int64
	// Expires: after it the payee's device refuses the medium and the
	// payer may reclaim it; zero: 24 hours from now.
	Expires time.Time
	// Serial, on a retry of a transfer the device made already (the
	// outcome of the first attempt names it), sends that transfer again
	// (TRANSFER SHOW) instead of debiting the device a second time.
	Serial uint64
	Verify Verification
}

// SendOnline has the device make the transfer and hands it to the backend,
// which settles the debit at once and keeps the medium for the payee.
func (t *Terminal) SendOnline(ctx context.Context, tr OnlineTransfer) Outcome {
	return t.report(ctx, t.sendOnline(ctx, tr))
}

func (t *Terminal) sendOnline(ctx context.Context, tr OnlineTransfer) Outcome {
	if tr.ID == "" {
		// The terminal names the transfer; a retry names it again with
		// the ID the outcome reports.
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return notDone(FlowOnlineTransfer, "no transfer ID: %v; nothing was transferred", err)
		}
		tr.ID = "T-" + strings.ToUpper(hex.EncodeToString(id))
	}
	if !t.Online(ctx) {
		return notDone(FlowOnlineTransfer, "%v; nothing was transferred", ErrOffline)
	}
	if _, err := t.verify(ctx, tr.Verify, fmt.Sprintf("transfer %d to %s online", tr.Amount, spd.DeviceIDString(tr.Payee)), true); err != nil {
		return notDone(FlowOnlineTransfer, "%v; nothing was transferred", err)
	}
	now := t.now()
	var res spd.Result
	var err error
	if tr.Serial != 0 {
		if res, err = t.card.TransferShow(ctx, spd.SerialAt{Serial: tr.Serial, Time: now}); err != nil {
			return notDone(FlowOnlineTransfer, "TRANSFER SHOW %d: %v; nothing was transferred again", tr.Serial, err)
		}
	} else {
		expiry := tr.Expires
		if expiry.IsZero() {
			expiry = now.Add(24 * time.Hour)
		}
		before, err := t.card.ATC(ctx)
		if err != nil {
			return notDone(FlowOnlineTransfer, "%v: %v; nothing was transferred", ErrDetached, err)
		}
		res, err = t.card.TransferOut(ctx, spd.TransferRequest{Amount: tr.Amount, Currency: t.currency, Payee: tr.Payee, Time: now, Expiry: expiry})
		if err != nil {
			var ok bool
			if res, ok = t.recoverTransfer(ctx, before, now); !ok {
				return notDone(FlowOnlineTransfer, "TRANSFER: %v; nothing was transferred", err)
			}
		}
	}
	if err := res.Verify(t.devKey); err != nil {
		return notDone(FlowOnlineTransfer, "the transfer medium does not verify: %v", err)
	}
	info := res.Info()
	if !t.sameDevice(info.PayerID) || !bytes.Equal(info.PayeeID, tr.Payee) || info.Amount != tr.Amount {
		return notDone(FlowOnlineTransfer, "transfer %d of the device is %d to %s, not this transfer", info.Serial, info.Amount, spd.DeviceIDString(info.PayeeID))
	}
	o := Outcome{Flow: FlowOnlineTransfer, Online: true, Amount: info.Amount, Currency: info.Currency, Balance: info.Balance,
		ATC: info.ATC, Serial: info.Serial, Payee: spd.DeviceIDString(info.PayeeID), Result: &res}
	debited := fmt.Sprintf("the device debited %d (transfer serial %d, ID %q)", info.Amount, info.Serial, tr.ID)
	rec, err := t.record(ctx, info.ATC)
	if err != nil {
		// Its record left the ledger: a settlement took it; the backend
		// may have had this transfer already.
		got, gerr := t.transferState(ctx, tr.ID)
		if gerr != nil || got.From != spd.DeviceIDString(t.bound) || got.Serial != info.Serial {
			o.Status, o.Reason = NotDone, fmt.Sprintf("%s; its ledger record is gone (%v) and the backend does not have the transfer: show the medium to the payee (spdlab terminal transfer) or reclaim it after it expires", debited, err)
			return o
		}
		got.Repeated = true
		o.Status, o.Transfer, o.Reason = Done, &got, "the backend had it already; done once"
		return o
	}
	req := backend.TransferRequest{TransferID: tr.ID, Medium: res.Envelope, Record: rec.Marshal()}
	var got backend.Transfer
	err = t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		got, err = c.Transfer(ctx, req)
		return err
	})
	if err != nil {
		var ae *backend.APIError
		o.Status = NotDone
		if errors.As(err, &ae) && ae.Status < 500 {
			o.Reason = fmt.Sprintf("%s; the backend refused it (%s: %s): the debit settles at the next settlement, and the value returns with a reclaim after the transfer expires", debited, ae.Code, ae.Reason)
			return o
		}
		o.Retry = true
		o.Reason = fmt.Sprintf("%s; the backend did not confirm (%v): send it again with ID %q and serial %d, it takes effect once", debited, err, tr.ID, info.Serial)
		return o
	}
	o.Status, o.Transfer, o.Reason = Done, &got, "debited on the device and in flight at the backend until the payee's device imports it (claim), or the payer reclaims it after "+got.Expires.Format(time.RFC3339)
	if got.Repeated {
		o.Reason = "the backend had it already; done once"
	}
	if err := t.sendCommands(ctx, got.Acknowledge); err != nil {
		o.Reason += fmt.Sprintf("; the device did not take the acknowledgement (%v): its record settles as already settled next time", err)
	}
	return o
}

// transferState reads an online transfer at the backend.
func (t *Terminal) transferState(ctx context.Context, id string) (backend.Transfer, error) {
	var got backend.Transfer
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		got, err = c.TransferState(ctx, id)
		return err
	})
	return got, err
}

// sendCommands sends the device host-signed commands (ACKNOWLEDGE).
func (t *Terminal) sendCommands(ctx context.Context, cmds [][]byte) error {
	for _, raw := range cmds {
		cmd, err := apdu.ParseCommand(raw)
		if err != nil {
			return err
		}
		if err := t.card.Send(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}

// findRecord returns the newest ledger record that match accepts.
func (t *Terminal) findRecord(ctx context.Context, match func(spd.PendingRecord) bool) (spd.PendingRecord, bool, error) {
	recs, err := t.card.PendingRecords(ctx)
	if err != nil {
		return spd.PendingRecord{}, false, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if match(recs[i]) {
			return recs[i], true, nil
		}
	}
	return spd.PendingRecord{}, false, nil
}

// Claim takes an online transfer for this device (the payee): the terminal
// gets the medium from the backend, the device imports it (TRANSFER IN:
// its balance rises), and the backend settles the import record and
// credits the payee at the issuer.
func (t *Terminal) Claim(ctx context.Context, id string, v Verification) Outcome {
	return t.report(ctx, t.claim(ctx, id, v))
}

func (t *Terminal) claim(ctx context.Context, id string, v Verification) Outcome {
	if t.bound == nil {
		return notDone(FlowClaim, "%v", ErrNotAttached)
	}
	if !t.Online(ctx) {
		return notDone(FlowClaim, "%v; nothing was credited", ErrOffline)
	}
	me := spd.DeviceIDString(t.bound)
	tr, err := t.transferState(ctx, id)
	if err != nil {
		var ae *backend.APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			return notDone(FlowClaim, "the backend has no transfer %q for this device (%s: %s); nothing was credited", id, ae.Code, ae.Reason)
		}
		o := notDone(FlowClaim, "not confirmed by the backend (%v): claim %q again; nothing was credited", err, id)
		o.Retry = true
		return o
	}
	if tr.To != me {
		return notDone(FlowClaim, "transfer %q is for device %s, not this one; nothing was credited", id, tr.To)
	}
	if tr.State == backend.TransferClaimed {
		tr.Repeated = true
		return Outcome{Flow: FlowClaim, Status: Done, Online: true, Amount: tr.Amount, Transfer: &tr, Payee: tr.To, Serial: tr.Serial,
			Reason: "claimed before; done once"}
	}
	if tr.State != backend.TransferInFlight {
		return notDone(FlowClaim, "transfer %q is %s; nothing was credited", id, tr.State)
	}
	payer, err := hex.DecodeString(tr.From)
	if err != nil {
		return notDone(FlowClaim, "transfer %q names payer %q", id, tr.From)
	}
	imported := t.receiveTransfer(ctx, medium.Text(tr.Medium), v)
	match := func(r spd.PendingRecord) bool {
		return r.Kind == spd.KindTransferIn && r.Serial == tr.Serial && bytes.Equal(r.Counterpart, payer)
	}
	rec, found, err := t.findRecord(ctx, match)
	if err != nil || !found {
		if imported.Status != Done {
			imported.Flow = FlowClaim
			return imported
		}
		return notDone(FlowClaim, "the device imported the transfer but its record is not in the ledger (%v): it settles at the next settlement", err)
	}
	a := backend.TransferAction{DeviceID: me, Record: rec.Marshal()}
	o := t.transferCall(ctx, FlowClaim, id, func(ctx context.Context, c *backend.Client) (backend.Transfer, error) {
		return c.ClaimTransfer(ctx, id, a)
	})
	o.Serial = tr.Serial
	if o.Status != Done {
		o.Reason = "the device imported it (its balance rose); " + o.Reason + "; the import record settles at the next settlement"
		return o
	}
	if b, err := t.card.Balance(ctx); err == nil {
		o.Balance = b
	}
	if err := t.sendCommands(ctx, o.Transfer.Acknowledge); err != nil {
		o.Reason = strings.TrimPrefix(o.Reason+fmt.Sprintf("; the device did not take the acknowledgement (%v): its record settles as already settled next time", err), "; ")
	}
	return o
}

// ReclaimOnline takes back an online transfer the payee did not claim
// before it expired (this device is the payer): the backend signs a
// RECLAIM, the device credits itself back, and its reclaim record settles.
func (t *Terminal) ReclaimOnline(ctx context.Context, id string, v Verification) Outcome {
	return t.report(ctx, t.reclaimOnline(ctx, id, v))
}

func (t *Terminal) reclaimOnline(ctx context.Context, id string, v Verification) Outcome {
	f := FlowOnlineReclaim
	if t.bound == nil {
		return notDone(f, "%v", ErrNotAttached)
	}
	if _, err := t.verify(ctx, v, "reclaim transfer "+id, false); err != nil {
		return notDone(f, "%v", err)
	}
	me := spd.DeviceIDString(t.bound)
	sig, err := t.card.InternalAuthenticate(ctx, backend.TransferActionChallenge(backend.TransferReclaimed, id, me))
	if err != nil {
		return notDone(f, "the device did not sign: %v", err)
	}
	a := backend.TransferAction{DeviceID: me, Signature: sig}
	o := t.transferCall(ctx, f, id, func(ctx context.Context, c *backend.Client) (backend.Transfer, error) {
		return c.ReclaimTransfer(ctx, id, a)
	})
	if o.Status != Done {
		return o
	}
	tr := o.Transfer
	o.Serial = tr.Serial
	if tr.State == backend.TransferReclaimed {
		o.Reason = "reclaimed and settled before; done once"
		return o
	}
	cmd, err := apdu.ParseCommand(tr.Reclaim)
	if err != nil {
		return notDone(f, "the backend's RECLAIM order is malformed: %v", err)
	}
	res, err := t.card.Reclaim(ctx, cmd)
	if err != nil && !errors.Is(err, &apdu.SWError{SW: apdu.SWRefDataNotUsable}) {
		return notDone(f, "RECLAIM: %v; nothing was credited", err)
	}
	if err == nil {
		if err := res.Verify(t.devKey); err != nil {
			return notDone(f, "the device's result does not verify: %v", err)
		}
	}
	rec, found, err := t.findRecord(ctx, func(r spd.PendingRecord) bool { return r.Kind == spd.KindReclaim && r.Serial == tr.Serial })
	if err != nil || !found {
		o.Reason = "credited back on the device; its reclaim record settles at the next settlement"
	} else if sum, _, err := t.settleRecords(ctx, []spd.PendingRecord{rec}); err != nil || len(sum.refused) > 0 {
		o.Reason = fmt.Sprintf("credited back on the device; its reclaim record did not settle now (%v %v): it settles at the next settlement", err, sum.refused)
	} else {
		o.Reason = "credited back on the device and at the issuer"
		tr.State = backend.TransferReclaimed
	}
	if b, err := t.card.Balance(ctx); err == nil {
		o.Balance = b
	}
	return o
}

// transferCall runs an idempotent transfer call and turns its answer into
// an outcome.
func (t *Terminal) transferCall(ctx context.Context, f Flow, id string, fn func(ctx context.Context, c *backend.Client) (backend.Transfer, error)) Outcome {
	var tr backend.Transfer
	err := t.call(ctx, func(ctx context.Context, c *backend.Client) error {
		var err error
		tr, err = fn(ctx, c)
		return err
	})
	if err != nil {
		var ae *backend.APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			return notDone(f, "the backend refused (%s: %s)", ae.Code, ae.Reason)
		}
		o := notDone(f, "not confirmed by the backend (%v): send it again with ID %q, it takes effect at most once", err, id)
		o.Retry = true
		return o
	}
	o := Outcome{Flow: f, Status: Done, Online: true, Amount: tr.Amount, Transfer: &tr, Payee: tr.To}
	if tr.Repeated {
		o.Reason = "the backend had it already; done once"
	}
	if tr.State == backend.TransferInFlight {
		o.Reason = strings.TrimPrefix(o.Reason+"; held until the payee claims it or it expires on "+tr.Expires.Format(time.RFC3339), "; ")
	}
	return o
}
