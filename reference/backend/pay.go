package backend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// existingRecord is a stored record of some (device, ATC).
type existingRecord struct {
	state    int
	account  string
	result   []byte
	bodyHash []byte
}

func (s *Server) loadRecord(ctx context.Context, tx *sql.Tx, dev string, atc uint32) (existingRecord, bool, error) {
	var e existingRecord
	err := tx.StmtContext(ctx, s.stmts.selRecord).QueryRowContext(ctx, dev, int64(atc)).
		Scan(&e.state, &e.account, &e.result, &e.bodyHash)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, internal(err)
	}
	return e, true, nil
}

// loadAuthorisation reads the device of an authorisation and the record
// stored for its ATC (found false when there is none) in one statement.
func (s *Server) loadAuthorisation(ctx context.Context, tx *sql.Tx, dev string, atc uint32) (deviceRow, existingRecord, bool, error) {
	var d deviceRow
	var e existingRecord
	var state sql.NullInt64
	err := tx.StmtContext(ctx, s.stmts.selAuthorisation).QueryRowContext(ctx, dev, int64(atc)).
		Scan(&d.balance, &d.currency, &d.account, &d.revoked, &state, &e.result, &e.bodyHash)
	if errors.Is(err, sql.ErrNoRows) {
		return d, e, false, errUnknownDevice(dev)
	}
	if err != nil {
		return d, e, false, internal(err)
	}
	e.state = int(state.Int64)
	return d, e, state.Valid, nil
}

func (s *Server) insertRecord(ctx context.Context, tx *sql.Tx, rec DeviceRecord, state int, account, channel, batch string, at int64, result, raw []byte) error {
	_, err := tx.StmtContext(ctx, s.stmts.insRecord).ExecContext(ctx, rec.Device, int64(rec.ATC), rec.Amount, int(rec.Currency),
		rec.Token, int(rec.Kind), int(rec.Mode), rec.Time.Unix(), rec.bodyHash, state, account, channel, batch, at, result, raw)
	if err != nil {
		return internal(err)
	}
	return nil
}

// insertNewRecord inserts a settled record unless its (device, ATC) is
// known, and reports whether it did.
func (s *Server) insertNewRecord(ctx context.Context, tx *sql.Tx, rec DeviceRecord, account, batch string, at int64, raw []byte) (bool, error) {
	res, err := tx.StmtContext(ctx, s.stmts.insNewRecord).ExecContext(ctx, rec.Device, int64(rec.ATC), rec.Amount, int(rec.Currency),
		rec.Token, int(rec.Kind), int(rec.Mode), rec.Time.Unix(), rec.bodyHash, stateSettled, account, ChannelOffline, batch, at, nil, raw)
	if err != nil {
		return false, internal(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, internal(err)
	}
	return n == 1, nil
}

func errConflict(r DeviceRecord, raw []byte) *apiErr {
	e := newErr(http.StatusConflict, CodeConflict, "device %s ATC %d: a different record, signed by the same device, already holds this ATC: the device is a clone or was rolled back; this record is not paid, it is kept as evidence and the device is flagged", r.Device, r.ATC)
	e.evidence = &conflictEvidence{rec: r, raw: raw}
	return e
}

// verifyRecord checks a record's signature against its device's registered key.
func (s *Server) verifyRecord(ctx context.Context, rec DeviceRecord) error {
	pub, err := s.deviceKey(ctx, rec.Device)
	if err != nil {
		return err
	}
	if err := rec.Verify(pub); err != nil {
		return newErr(http.StatusForbidden, CodeBadSignature, "device %q ATC %d: signature does not verify with the registered device key", rec.Device, rec.ATC)
	}
	return nil
}

func (s *Server) handleAuthorise(w http.ResponseWriter, r *http.Request) {
	var req AuthorisationRequest
	if !s.decode(w, r, &req) {
		return
	}
	res, err := s.authorise(r.Context(), req)
	if err != nil {
		s.keepEvidence(r.Context(), err, "authorisation")
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) authorise(ctx context.Context, req AuthorisationRequest) (AuthorisationResult, error) {
	var res AuthorisationResult
	if err := checkText("channel", req.Channel, 1, 32); err != nil {
		return res, err
	}
	if req.Channel == ChannelOffline {
		return res, newErr(http.StatusBadRequest, CodeMalformed, "channel %q is for settlement", ChannelOffline)
	}
	if err := checkText("merchant", req.Merchant, 0, 64); err != nil {
		return res, err
	}
	rec, err := ParseDeviceRecord(req.Record)
	if err != nil {
		return res, newErr(http.StatusBadRequest, CodeMalformed, "record: %v", err)
	}
	s.authorising.Add(1)
	err = s.verifyRecord(ctx, rec)
	s.authorising.Add(-1)
	if err != nil {
		return res, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	var stored []byte
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		dev, old, found, err := s.loadAuthorisation(ctx, tx, rec.Device, rec.ATC)
		if err != nil {
			return err
		}
		if found {
			switch {
			case !rec.sameBody(old.bodyHash):
				return errConflict(rec, req.Record)
			case old.state == stateReversed:
				return newErr(http.StatusConflict, CodeConflict, "device %s ATC %d: the issuer reversed this payment; it is not paid", rec.Device, rec.ATC)
			case old.result == nil:
				// The same record, settled in a batch (or a transfer or
				// exchange the backend keeps): not a clone, and not
				// authorised again.
				return newErr(http.StatusConflict, CodeConflict, "device %s ATC %d: this record is %s at the issuer already (in a settlement, not by an authorisation): it is not authorised again", rec.Device, rec.ATC, stateName(old.state))
			}
			stored = old.result
			return nil
		}
		if dev.revoked {
			return errRevoked(rec.Device)
		}
		if !rec.Kind.IsPayment() {
			return newErr(http.StatusBadRequest, CodeMalformed, "a %v record settles in a batch, not online", rec.Kind)
		}
		if rec.Currency != dev.currency {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "currency %d, the device's is %d", rec.Currency, dev.currency)
		}
		res = AuthorisationResult{DeviceID: rec.Device, ATC: rec.ATC, Amount: rec.Amount, Currency: rec.Currency, Time: now}
		state := stateDeclined
		if rec.Amount > dev.balance {
			res.Status, res.Reason, res.Balance = Declined, "insufficient balance", dev.balance
		} else {
			account, err := s.useToken(ctx, tx, dev, rec, req.Channel, now)
			if err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, s.stmts.addBalance).ExecContext(ctx, -rec.Amount, rec.Device); err != nil {
				return internal(err)
			}
			res.Status, res.Account, res.Balance, res.Settled = Approved, account, dev.balance-rec.Amount, !req.Hold
			state = stateHeld
			if res.Settled {
				state = stateSettled
				if err := s.creditPayee(ctx, tx, rec, now.Unix()); err != nil {
					return err
				}
			}
		}
		// The result is stored unsigned and signed after the commit (and
		// again for a repeat): the signature covers only stored fields.
		blob, err := json.Marshal(res)
		if err != nil {
			return internal(err)
		}
		return s.insertRecord(ctx, tx, rec, state, res.Account, req.Channel, "", now.Unix(), blob, req.Record)
	})
	if err != nil {
		return res, err
	}
	if stored != nil {
		if err := json.Unmarshal(stored, &res); err != nil {
			return res, internal(err)
		}
		res.Repeated = true
	}
	res.Account = MaskAccount(res.Account)
	if res.Signature, err = sign(s.signer, res.SignedBytes()); err != nil {
		return res, internal(err)
	}
	return res, nil
}

func (s *Server) handleSettle(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	body, err := readBody(r.Body, s.cfg.MaxBodyBytes)
	if err != nil {
		writeErr(w, err)
		return
	}
	batch, recs, err := DecodeSettlementBatch(body, s.cfg.MaxBatchRecords)
	if err != nil {
		writeErr(w, err)
		return
	}
	ack, err := s.settle(r.Context(), batch, recs)
	if err != nil {
		s.keepEvidence(r.Context(), err, "settlement "+batch.BatchID)
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

// settle settles a batch in one transaction: either every record is settled
// (or found settled already) and the signed acknowledgement lists them, or
// nothing is stored and the error names the first record at fault.
//
// Payment records (balance, account, use) move their amount from the
// device's balance to settled; a record authorised online and held is
// captured. Transfer records move value through flight: the payer's
// transfer-out into it, the payee's transfer-in or the payer's reclaim out
// of it; a transfer imported and also reclaimed is refused as a double spend.
func (s *Server) settle(ctx context.Context, batch SettlementBatch, recs []DeviceRecord) (SettlementAck, error) {
	return s.settleWith(ctx, batch, recs, nil)
}

// settleWith is settle with also, when then is not nil, then's work in the
// batch's transaction (after the records'): an error of then stores nothing.
func (s *Server) settleWith(ctx context.Context, batch SettlementBatch, recs []DeviceRecord, then func(context.Context, *sql.Tx) error) (SettlementAck, error) {
	for i, rec := range recs {
		if err := s.verifyRecord(ctx, rec); err != nil {
			return SettlementAck{}, asAPIErr(err).at(i)
		}
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	ack := SettlementAck{BatchID: batch.BatchID, Entries: make([]SettlementEntry, len(recs)), Time: now}
	type key struct {
		dev string
		atc uint32
	}
	closed := make(map[string][]uint64) // payer -> serials closed by this batch
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		clear(closed) // a write may run again: nothing of an aborted run is kept
		devs := make(map[string]*deviceRow)
		credits := s.newPayeeCredits(tx, now.Unix())
		load := func(id string) (*deviceRow, error) {
			if d := devs[id]; d != nil {
				return d, nil
			}
			d, err := s.loadDevice(ctx, tx, id)
			if err != nil {
				return nil, err
			}
			devs[id] = &d
			return &d, nil
		}
		seen := make(map[key]int, len(recs))
		for i, rec := range recs {
			e := &ack.Entries[i]
			*e = SettlementEntry{DeviceID: rec.Device, ATC: rec.ATC, Kind: rec.Kind.String(), Amount: rec.Amount}
			if j, ok := seen[key{rec.Device, rec.ATC}]; ok {
				if !rec.sameBody(recs[j].bodyHash) {
					return errConflict(rec, batch.Records[i]).at(i)
				}
				e.Status, e.Account = AlreadySettled, ack.Entries[j].Account
				continue
			}
			seen[key{rec.Device, rec.ATC}] = i
			dev, err := load(rec.Device)
			if err != nil {
				return asAPIErr(err).at(i)
			}
			if dev.revoked {
				return errRevoked(rec.Device).at(i)
			}
			// The common case in one statement: a new payment record
			// under the device's own account. Should a check fail after
			// the insert, the whole batch rolls back with it.
			if rec.Token == "" && rec.Kind.IsPayment() && rec.Currency == dev.currency {
				inserted, err := s.insertNewRecord(ctx, tx, rec, dev.account, batch.BatchID, now.Unix(), batch.Records[i])
				if err != nil {
					return err
				}
				if inserted {
					if rec.Amount > dev.balance {
						return newErr(http.StatusUnprocessableEntity, CodeInsufficient, "device %s ATC %d: amount %d over the balance %d", rec.Device, rec.ATC, rec.Amount, dev.balance).at(i)
					}
					dev.balance -= rec.Amount
					if err := credits.add(ctx, rec); err != nil {
						return err
					}
					e.Status, e.Account = Settled, dev.account
					continue
				}
			}
			old, found, err := s.loadRecord(ctx, tx, rec.Device, rec.ATC)
			if err != nil {
				return err
			}
			if found {
				if !rec.sameBody(old.bodyHash) {
					return errConflict(rec, batch.Records[i]).at(i)
				}
				switch old.state {
				case stateSettled:
					e.Status, e.Account = AlreadySettled, old.account
				case stateHeldIn:
					e.Status, e.Account = Held, old.account
				case stateReversed:
					e.Status, e.Account = Reversed, old.account
				case stateHeld:
					// An authorisation held online: capture it.
					if _, err := tx.StmtContext(ctx, s.stmts.updRecord).ExecContext(ctx, stateSettled, batch.BatchID, now.Unix(), rec.Device, int64(rec.ATC)); err != nil {
						return internal(err)
					}
					if err := credits.add(ctx, rec); err != nil {
						return err
					}
					e.Status, e.Account = Settled, old.account
				default:
					return newErr(http.StatusConflict, CodeConflict, "device %s ATC %d was declined online and cannot settle", rec.Device, rec.ATC).at(i)
				}
				continue
			}
			if rec.Currency != dev.currency {
				return newErr(http.StatusUnprocessableEntity, CodeMalformed, "device %s ATC %d: currency %d, the device's is %d", rec.Device, rec.ATC, rec.Currency, dev.currency).at(i)
			}
			account, state := dev.account, stateSettled
			switch {
			case rec.Kind.IsPayment():
				if rec.Amount > dev.balance {
					return newErr(http.StatusUnprocessableEntity, CodeInsufficient, "device %s ATC %d: amount %d over the balance %d", rec.Device, rec.ATC, rec.Amount, dev.balance).at(i)
				}
				if account, err = s.useToken(ctx, tx, *dev, rec, ChannelOffline, rec.Time); err != nil {
					return asAPIErr(err).at(i)
				}
				dev.balance -= rec.Amount
				if err := credits.add(ctx, rec); err != nil {
					return asAPIErr(err).at(i)
				}
			case rec.Kind == spd.KindExchange:
				// An exchange (SPEC.md 4.11, SPD-EXC-4): the stored value the
				// device debited leaves its balance, exchanged into uses it
				// holds or into another currency paid to its account.
				if want, ok := exchangePrice(rec.PendingRecord); !ok || want != rec.Amount {
					return newErr(http.StatusUnprocessableEntity, CodeMalformed, "device %s ATC %d: an exchange debit of %d for %d at %d/%d, whose price is %d",
						rec.Device, rec.ATC, rec.Amount, rec.Target, rec.RateNumerator, rec.RateDenominator, want).at(i)
				}
				if rec.Target > maxAmount {
					// The device allows 2^62; the issuer pays out and
					// counts at most 2^53 (Amounts in API.md).
					return newErr(http.StatusUnprocessableEntity, CodeLimit, "device %s ATC %d: an exchange buying %d, past %d",
						rec.Device, rec.ATC, rec.Target, int64(maxAmount)).at(i)
				}
				if err := s.signedRate(ctx, tx, rec); err != nil {
					return asAPIErr(err).at(i)
				}
				if rec.Amount > dev.balance {
					return newErr(http.StatusUnprocessableEntity, CodeInsufficient, "device %s ATC %d: exchange of %d over the balance %d", rec.Device, rec.ATC, rec.Amount, dev.balance).at(i)
				}
				dev.balance -= rec.Amount
			default:
				var payer string
				payer, state, err = s.settleTransferRecord(ctx, tx, dev, rec, load, now)
				if err != nil {
					return asAPIErr(err).at(i)
				}
				if payer != "" {
					closed[payer] = append(closed[payer], rec.Serial)
				}
			}
			if err := s.insertRecord(ctx, tx, rec, state, account, ChannelOffline, batch.BatchID, now.Unix(), nil, batch.Records[i]); err != nil {
				return err
			}
			e.Status, e.Account = Settled, account
			if state == stateHeldIn {
				e.Status = Held
			}
		}
		if err := credits.book(ctx); err != nil {
			return err
		}
		setBalance := tx.StmtContext(ctx, s.stmts.setBalance)
		for _, id := range slices.Sorted(maps.Keys(devs)) {
			if _, err := setBalance.ExecContext(ctx, devs[id].balance, id); err != nil {
				return internal(err)
			}
		}
		if then != nil {
			return then(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return SettlementAck{}, err
	}
	// Committed: only now is the acknowledgement made.
	for i := range ack.Entries {
		ack.Entries[i].Account = MaskAccount(ack.Entries[i].Account)
	}
	if ack.Signature, err = sign(s.signer, ack.SignedBytes()); err != nil {
		return SettlementAck{}, internal(err)
	}
	if ack.Acknowledgements, err = s.deviceAcknowledgements(ack.Entries, closed, now); err != nil {
		return SettlementAck{}, internal(err)
	}
	return ack, nil
}

// settleTransferRecord books one transfer record against the offline
// transfer it belongs to. It returns the payer whose transfer it closes
// (empty when it closes none) and the state to store the record in.
//
// A payee is credited only against its payer's settled transfer-out: a
// transfer-in that comes first is stored held (stateHeldIn), credits
// nothing, and is credited when the payer's transfer-out settles; a payer
// that is not registered, or is revoked, never settles one, so the value
// stays held and the audit shows it.
//
// The transfer closes when its transfer-in or reclaim settles: closed_at
// is set, so that the payer's contacts carry its ACKNOWLEDGE whichever
// device settled first, and the online transfer naming it (if any) moves
// to claimed or reclaimed. A transfer-in of a transfer the backend ordered
// reclaimed is refused.
func (s *Server) settleTransferRecord(ctx context.Context, tx *sql.Tx, dev *deviceRow, rec DeviceRecord, load func(string) (*deviceRow, error), now time.Time) (string, int, error) {
	if rec.Serial == 0 {
		return "", 0, newErr(http.StatusBadRequest, CodeMalformed, "device %s ATC %d: %v record without a serial", rec.Device, rec.ATC, rec.Kind)
	}
	payer, payee := rec.Device, ""
	if len(rec.Counterpart) > 0 {
		payee = spd.DeviceIDString(rec.Counterpart)
	}
	if rec.Kind == spd.KindTransferIn {
		if len(rec.Counterpart) == 0 {
			return "", 0, newErr(http.StatusBadRequest, CodeMalformed, "device %s ATC %d: transfer-in record names no payer", rec.Device, rec.ATC)
		}
		payer, payee = payee, rec.Device
	}
	var t struct {
		payee                      string
		amount                     int64
		out, in, reclaimed, inHeld bool
		inATC, closedAt, orderedAt int64
	}
	err := tx.QueryRowContext(ctx, `SELECT payee, amount, out_settled, in_settled, reclaimed, in_held, in_atc, closed_at, reclaim_ordered_at FROM offline_transfers WHERE payer=$1 AND serial=$2`,
		payer, int64(rec.Serial)).Scan(&t.payee, &t.amount, &t.out, &t.in, &t.reclaimed, &t.inHeld, &t.inATC, &t.closedAt, &t.orderedAt)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", 0, internal(err)
	}
	refuse := func(why string) (string, int, error) {
		return "", 0, newErr(http.StatusConflict, CodeConflict, "device %s ATC %d: transfer %d of %s: %s", rec.Device, rec.ATC, rec.Serial, payer, why)
	}
	if found {
		if t.amount != rec.Amount {
			return refuse(fmt.Sprintf("amount %d, the transfer's is %d", rec.Amount, t.amount))
		}
		if payee != "" && t.payee != "" && payee != t.payee {
			return refuse("another payee")
		}
	}
	if payee == "" {
		payee = t.payee
	}
	state := stateSettled
	switch rec.Kind {
	case spd.KindTransferOut:
		if t.out {
			return refuse("transfer-out already settled under another ATC")
		}
		if rec.Amount > dev.balance {
			return "", 0, newErr(http.StatusUnprocessableEntity, CodeInsufficient, "device %s ATC %d: amount %d over the balance %d", rec.Device, rec.ATC, rec.Amount, dev.balance)
		}
		dev.balance -= rec.Amount
		t.out = true
		if t.inHeld {
			// The payee's transfer-in waited for this: credit it now.
			pd, err := load(payee)
			if err != nil {
				return "", 0, err
			}
			if pd.currency != rec.Currency {
				return "", 0, errTransferCurrency(rec, payee, pd.currency)
			}
			if err := checkCredit(payee, pd.balance, rec.Amount); err != nil {
				return "", 0, err
			}
			pd.balance += rec.Amount
			if _, err := tx.ExecContext(ctx, `UPDATE records SET state=$1 WHERE device_id=$2 AND atc=$3 AND state=$4`, stateSettled, payee, t.inATC, stateHeldIn); err != nil {
				return "", 0, internal(err)
			}
			t.in, t.inHeld = true, false
		}
	case spd.KindTransferIn:
		if t.in || t.inHeld || t.reclaimed {
			return refuse("already imported or reclaimed (double spend)")
		}
		// A transfer moves value in its payer's currency (SPEC.md
		// SPD-XFR-2): an import in another one is not credited. A payer
		// not registered yet is checked when its transfer-out settles.
		var payerCurrency uint16
		switch err := tx.QueryRowContext(ctx, `SELECT currency FROM devices WHERE id=$1`, payer).Scan(&payerCurrency); {
		case err == nil:
			if payerCurrency != rec.Currency {
				return "", 0, errTransferCurrency(rec, payer, payerCurrency)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return "", 0, internal(err)
		}
		if t.orderedAt != 0 {
			return refuse(fmt.Sprintf("the backend ordered it reclaimed at %s, after it expired: an import after the expiry is not credited", unixTime(t.orderedAt).Format(time.RFC3339)))
		}
		if t.out {
			if err := checkCredit(rec.Device, dev.balance, rec.Amount); err != nil {
				return "", 0, err
			}
			dev.balance += rec.Amount
			t.in = true
		} else {
			t.inHeld, t.inATC, state = true, int64(rec.ATC), stateHeldIn
		}
	case spd.KindReclaim:
		if t.in || t.inHeld || t.reclaimed {
			return refuse("already imported or reclaimed (double spend)")
		}
		if !t.out {
			return refuse("reclaim before the transfer-out settled")
		}
		if err := checkCredit(rec.Device, dev.balance, rec.Amount); err != nil {
			return "", 0, err
		}
		dev.balance += rec.Amount
		t.reclaimed = true
	default:
		return "", 0, newErr(http.StatusBadRequest, CodeMalformed, "device %s ATC %d: unknown kind %v", rec.Device, rec.ATC, rec.Kind)
	}
	closing := t.closedAt == 0 && t.out && (t.in || t.reclaimed)
	if closing {
		t.closedAt = now.Unix()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO offline_transfers(payer, serial, payee, amount, out_settled, in_settled, reclaimed, in_held, in_atc, closed_at)
		VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT(payer, serial) DO UPDATE SET payee=excluded.payee,
		out_settled=excluded.out_settled, in_settled=excluded.in_settled, reclaimed=excluded.reclaimed,
		in_held=excluded.in_held, in_atc=excluded.in_atc, closed_at=excluded.closed_at`,
		payer, int64(rec.Serial), payee, rec.Amount, yesNo(t.out), yesNo(t.in), yesNo(t.reclaimed), yesNo(t.inHeld), t.inATC, t.closedAt); err != nil {
		return "", 0, internal(err)
	}
	if closing {
		st := TransferClaimed
		if t.reclaimed {
			st = TransferReclaimed
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET state=$1, done_at=$2 WHERE from_device=$3 AND serial=$4`,
			string(st), now.Unix(), payer, int64(rec.Serial)); err != nil {
			return "", 0, internal(err)
		}
	}
	if rec.Kind == spd.KindTransferOut && !t.in {
		return "", state, nil // still open: the import has not settled
	}
	return payer, state, nil
}

// errTransferCurrency refuses a transfer record whose currency is not the
// other device's.
func errTransferCurrency(rec DeviceRecord, other string, currency uint16) error {
	return newErr(http.StatusUnprocessableEntity, CodeMalformed, "device %s ATC %d: transfer %d in currency %d, device %s holds %d: a transfer moves value in one currency",
		rec.Device, rec.ATC, rec.Serial, rec.Currency, other, currency)
}

// deviceAcknowledgements builds, for each device of a settled batch, the
// host-signed ACKNOWLEDGE commands naming its settled records and its
// closed outgoing transfers.
func (s *Server) deviceAcknowledgements(entries []SettlementEntry, closed map[string][]uint64, now time.Time) ([]DeviceAcknowledgement, error) {
	var order []string
	byDev := make(map[string]*DeviceAcknowledgement)
	get := func(id string) *DeviceAcknowledgement {
		a := byDev[id]
		if a == nil {
			a = &DeviceAcknowledgement{DeviceID: id, ATCs: []uint32{}, Commands: [][]byte{}}
			byDev[id] = a
			order = append(order, id)
		}
		return a
	}
	for _, e := range entries {
		a := get(e.DeviceID)
		if !slices.Contains(a.ATCs, e.ATC) {
			a.ATCs = append(a.ATCs, e.ATC)
		}
	}
	for _, payer := range slices.Sorted(maps.Keys(closed)) {
		a := get(payer)
		a.Serials = append(a.Serials, closed[payer]...)
	}
	out := make([]DeviceAcknowledgement, 0, len(order))
	for _, id := range order {
		a := byDev[id]
		devID, err := parseDeviceID(id)
		if err != nil {
			return nil, err
		}
		atcs, serials := a.ATCs, a.Serials
		for len(atcs) > 0 || len(serials) > 0 || len(a.Commands) == 0 {
			na, ns := min(len(atcs), spd.MaxAckEntries), min(len(serials), spd.MaxAckEntries)
			cmd, err := spd.Acknowledge(s.signer, devID, spd.Acknowledgement{SyncTime: now, ATCs: atcs[:na], Serials: serials[:ns]})
			if err != nil {
				return nil, err
			}
			b, err := cmd.Bytes()
			if err != nil {
				return nil, err
			}
			a.Commands = append(a.Commands, b)
			atcs, serials = atcs[na:], serials[ns:]
		}
		out = append(out, *a)
	}
	return out, nil
}

// yesNo is a yes/no column's value: the schema keeps them as 0 and 1 in
// INTEGER columns, the same in every engine.
func yesNo(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
