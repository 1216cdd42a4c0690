package terminal

import (
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
	if t.cfg.HostOrders == nil {
		return notDone(FlowReclaim, "no host orders configured: the backend's API does not issue RECLAIM")
	}
	if err := t.Attached(ctx); err != nil {
		return notDone(FlowReclaim, "%v", err)
	}
	cmd, err := t.cfg.HostOrders.Reclaim(ctx, t.bound, spd.SerialAt{Serial: serial, Time: t.now()})
	if err != nil {
		return notDone(FlowReclaim, "host order: %v", err)
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

// OnlineTransfer moves value to another device through the backend (C13).
type OnlineTransfer struct {
	// ID makes the transfer idempotent: sent again, it takes effect once.
	ID     string
	Payee  []byte
	Amount int64
	// Hold keeps the value in flight until the payee claims it, or the
	// payer reclaims it after Expires.
	Hold    bool
	Expires time.Time
	Verify  Verification
}

// SendOnline transfers value through the backend, after verifying the
// cardholder on the device.
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
	if _, err := t.verify(ctx, tr.Verify, fmt.Sprintf("transfer %d to %s online", tr.Amount, spd.DeviceIDString(tr.Payee)), false); err != nil {
		return notDone(FlowOnlineTransfer, "%v; nothing was transferred", err)
	}
	req := backend.TransferRequest{TransferID: tr.ID, From: spd.DeviceIDString(t.bound), To: spd.DeviceIDString(tr.Payee),
		Amount: tr.Amount, Hold: tr.Hold, Expires: tr.Expires}
	// The device consents to the terms with its certified key (SPD-KEY-4).
	sig, err := t.card.InternalAuthenticate(ctx, req.Challenge())
	if err != nil {
		return notDone(FlowOnlineTransfer, "the device did not sign the transfer: %v; nothing was transferred", err)
	}
	req.Signature = sig
	return t.transferCall(ctx, FlowOnlineTransfer, tr.ID, func(ctx context.Context, c *backend.Client) (backend.Transfer, error) {
		return c.Transfer(ctx, req)
	})
}

// Claim takes a held online transfer for this device (the payee).
func (t *Terminal) Claim(ctx context.Context, id string, v Verification) Outcome {
	return t.report(ctx, t.finishOnline(ctx, FlowClaim, id, v))
}

// ReclaimOnline takes back a held online transfer the payee did not claim
// before it expired (this device is the payer).
func (t *Terminal) ReclaimOnline(ctx context.Context, id string, v Verification) Outcome {
	return t.report(ctx, t.finishOnline(ctx, FlowOnlineReclaim, id, v))
}

func (t *Terminal) finishOnline(ctx context.Context, f Flow, id string, v Verification) Outcome {
	if t.bound == nil {
		return notDone(f, "%v", ErrNotAttached)
	}
	if _, err := t.verify(ctx, v, string(f)+" transfer "+id, false); err != nil {
		return notDone(f, "%v", err)
	}
	me := spd.DeviceIDString(t.bound)
	action := backend.TransferClaimed
	if f == FlowOnlineReclaim {
		action = backend.TransferReclaimed
	}
	sig, err := t.card.InternalAuthenticate(ctx, backend.TransferActionChallenge(action, id, me))
	if err != nil {
		return notDone(f, "the device did not sign: %v", err)
	}
	a := backend.TransferAction{DeviceID: me, Signature: sig}
	return t.transferCall(ctx, f, id, func(ctx context.Context, c *backend.Client) (backend.Transfer, error) {
		if f == FlowClaim {
			return c.ClaimTransfer(ctx, id, a)
		}
		return c.ReclaimTransfer(ctx, id, a)
	})
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
