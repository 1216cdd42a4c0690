package backend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// Reversals give a device back what it paid for a payment the issuer
// refused, or will not settle, after the device had paid (a record
// refused at settlement: a token the vault refused, a revoked payee, an
// amount over the issuer's view of the balance), or declined online after
// the device had paid. The record is stored in
// state reversed, in the same transaction as a parameter update that
// returns its amount (kind 01: a top-up) or its use (kind 03: one use
// added) at the device's next contact; a kind 02 payment returns nothing,
// the account was never charged. Every later settlement answers the record
// "reversed" and acknowledges it, so the device drops it from its ledger;
// an authorisation of it is refused. The issuer's view of the balance
// never took the payment, so the reversal is not issued value: the audit
// checks each reversing update against its reversed record.

func (s *Server) handleReverse(w http.ResponseWriter, r *http.Request) {
	var req ReversalRequest
	if !s.decode(w, r, &req) {
		return
	}
	rv, err := s.reverse(r.Context(), req)
	if err != nil {
		s.keepEvidence(r.Context(), err, "reversal")
		writeErr(w, err)
		return
	}
	writeJSON(w, statusOr(!rv.Repeated), rv)
}

func (s *Server) reverse(ctx context.Context, req ReversalRequest) (Reversal, error) {
	var rv Reversal
	if err := checkText("reason", req.Reason, 1, 200); err != nil {
		return rv, err
	}
	rec, err := ParseDeviceRecord(req.Record)
	if err != nil {
		return rv, newErr(http.StatusBadRequest, CodeMalformed, "record: %v", err)
	}
	if !rec.Kind.IsPayment() {
		return rv, newErr(http.StatusBadRequest, CodeMalformed, "a %v record is not a payment: a transfer is taken back with a RECLAIM (POST /v1/reclaims)", rec.Kind)
	}
	if err := s.verifyRecord(ctx, rec); err != nil {
		return rv, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	rv = Reversal{DeviceID: rec.Device, ATC: rec.ATC, Kind: rec.Kind.String(), Amount: rec.Amount, Reason: req.Reason, Time: now}
	var u *ParameterUpdate
	switch rec.Kind {
	case spd.KindBalance:
		u = &ParameterUpdate{TopUp: rec.Amount, Reverses: rec.ATC}
	case spd.KindUse:
		u = &ParameterUpdate{AddUses: 1, Reverses: rec.ATC}
	}
	if u != nil && u.TopUp == 0 && u.AddUses == 0 {
		u = nil // a zero payment: nothing to give back
	}
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rv.Repeated, rv.Update = false, nil
		old, found, err := s.loadRecord(ctx, tx, rec.Device, rec.ATC)
		if err != nil {
			return err
		}
		declined := false
		if found {
			if !rec.sameBody(old.bodyHash) {
				return errConflict(rec, req.Record)
			}
			switch old.state {
			case stateReversed:
				rv.Repeated = true
				return nil
			case stateDeclined:
				// Declined online after the device had paid: never paid
				// at the issuer, and never to be; reversed like a record
				// refused at settlement.
				declined = true
			default:
				return newErr(http.StatusConflict, CodeConflict, "device %s ATC %d is %s at the issuer: only a payment never settled is reversed", rec.Device, rec.ATC, stateName(old.state))
			}
		}
		dev, err := s.loadDevice(ctx, tx, rec.Device)
		if err != nil {
			return err
		}
		if rec.Currency != dev.currency {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "currency %d, the device's is %d", rec.Currency, dev.currency)
		}
		result, err := json.Marshal(rv)
		if err != nil {
			return internal(err)
		}
		if declined {
			if _, err := tx.ExecContext(ctx, `UPDATE records SET state=$1, channel='reversal', at=$2, result=$3 WHERE device_id=$4 AND atc=$5 AND state=$6`,
				stateReversed, now.Unix(), result, rec.Device, int64(rec.ATC), stateDeclined); err != nil {
				return internal(err)
			}
		} else if err := s.insertRecord(ctx, tx, rec, stateReversed, dev.account, "reversal", "", now.Unix(), result, req.Record); err != nil {
			return err
		}
		if u == nil {
			return nil
		}
		if err := tx.QueryRowContext(ctx, `UPDATE devices SET param_counter=param_counter+1 WHERE id=$1 RETURNING param_counter`, rec.Device).Scan(&u.Counter); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errUnknownDevice(rec.Device)
			}
			return internal(err)
		}
		if u.Counter > math.MaxUint32 {
			return newErr(http.StatusUnprocessableEntity, CodeLimit, "device %s: parameter counter past 2^32-1 (SPEC.md UPDATE PARAMETERS)", rec.Device)
		}
		body, err := json.Marshal(u)
		if err != nil {
			return internal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO params(device_id, counter, body, created_at) VALUES($1, $2, $3, $4)`,
			rec.Device, u.Counter, body, now.Unix()); err != nil {
			return internal(err)
		}
		rv.Update = u
		return nil
	})
	if err != nil {
		return rv, err
	}
	if rv.Update != nil {
		if rv.Update.Command, err = s.updateCommand(rec.Device, *rv.Update, now); err != nil {
			return rv, internal(err)
		}
	}
	return rv, nil
}

// stateName names a record state in words.
func stateName(st int) string {
	switch st {
	case stateSettled:
		return "settled"
	case stateHeld:
		return "held (authorised, not captured)"
	case stateDeclined:
		return "declined"
	case stateHeldIn:
		return "held (a transfer-in)"
	case stateReversed:
		return "reversed"
	}
	return "in an unknown state"
}
