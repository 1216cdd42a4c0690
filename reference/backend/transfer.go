package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// Transfers move value between devices through the backend (C13, C16, C17).
// An immediate transfer moves the value in one transaction; a held one
// takes it from the payer into flight, where it waits for the payee to
// claim it or, once expired, for the payer to reclaim it. Every step is
// idempotent: a step repeated answers the same with Repeated set.

// Challenge is what the payer device signs with INTERNAL AUTHENTICATE to
// authorise the transfer: SHA-256 over
//
//	"SPDXFER1" | len | transfer ID | from | to | amount (8) | hold (1) | expires, Unix seconds (8, 0 for none)
//
// with device IDs as their ASCII hex.
func (r TransferRequest) Challenge() []byte {
	b := []byte("SPDXFER1")
	b = append(b, byte(len(r.TransferID)))
	b = append(b, r.TransferID...)
	b = append(b, r.From...)
	b = append(b, r.To...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Amount))
	b = append(b, boolByte(r.Hold))
	b = binary.BigEndian.AppendUint64(b, uint64(timeUnix(r.Expires)))
	sum := sha256.Sum256(b)
	return sum[:]
}

// TransferActionChallenge is what the claiming payee or reclaiming payer
// signs with INTERNAL AUTHENTICATE: SHA-256 over
//
//	"SPDXACT1" | "claim" or "reclaim" | len | transfer ID | device ID
func TransferActionChallenge(action TransferState, transferID, deviceID string) []byte {
	b := []byte("SPDXACT1")
	b = append(b, verb(action)...)
	b = append(b, byte(len(transferID)))
	b = append(b, transferID...)
	b = append(b, deviceID...)
	sum := sha256.Sum256(b)
	return sum[:]
}

// checkDeviceConsent verifies a device's INTERNAL AUTHENTICATE answer to
// challenge against its registered key.
func (s *Server) checkDeviceConsent(ctx context.Context, id string, challenge, sig []byte) error {
	pub, err := s.deviceKey(ctx, id)
	if err != nil {
		return err
	}
	raw, err := parseDeviceID(id)
	if err != nil {
		return newErr(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	if !ecdsa.VerifyASN1(pub, spd.AuthenticationDigest(raw, challenge), sig) {
		return newErr(http.StatusForbidden, CodeBadSignature, "device %s did not sign this transfer step", id)
	}
	return nil
}

func (s *Server) loadTransfer(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) (Transfer, bool, error) {
	t := Transfer{TransferID: id}
	var exp int64
	err := q.QueryRowContext(ctx, `SELECT from_device, to_device, amount, state, expires_at FROM transfers WHERE id=$1`, id).
		Scan(&t.From, &t.To, &t.Amount, &t.State, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, internal(err)
	}
	t.Expires = unixTime(exp)
	return t, true, nil
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req TransferRequest
	if !s.decode(w, r, &req) {
		return
	}
	for _, err := range []error{
		checkText("transfer_id", req.TransferID, 1, 64),
		checkDeviceID("from", req.From),
		checkDeviceID("to", req.To),
		checkAmount("amount", req.Amount, false),
	} {
		if err != nil {
			writeErr(w, err)
			return
		}
	}
	if req.From == req.To {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "payer and payee are the same device"))
		return
	}
	if !req.Hold && !req.Expires.IsZero() {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "expires applies to held transfers only"))
		return
	}
	ctx := r.Context()
	if err := s.checkDeviceConsent(ctx, req.From, req.Challenge(), req.Signature); err != nil {
		writeErr(w, err)
		return
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	expires := req.Expires.UTC().Truncate(time.Second)
	if req.Hold && expires.IsZero() {
		expires = now.Add(s.cfg.TransferLifetime)
	}
	if req.Hold && !expires.After(now) {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "expires is not in the future"))
		return
	}
	t := Transfer{TransferID: req.TransferID, From: req.From, To: req.To, Amount: req.Amount, State: TransferClaimed}
	if req.Hold {
		t.State, t.Expires = TransferInFlight, expires
	}
	created := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		old, found, err := s.loadTransfer(ctx, tx, req.TransferID)
		if err != nil {
			return err
		}
		if found {
			heldNow := !old.Expires.IsZero()
			if old.From != req.From || old.To != req.To || old.Amount != req.Amount || heldNow != req.Hold {
				return newErr(http.StatusConflict, CodeConflict, "transfer %q exists with other terms", req.TransferID)
			}
			t, t.Repeated = old, true
			return nil
		}
		from, err := s.loadDevice(ctx, tx, req.From)
		if err != nil {
			return err
		}
		to, err := s.loadDevice(ctx, tx, req.To)
		if err != nil {
			return err
		}
		if from.revoked {
			return errRevoked(req.From)
		}
		if to.revoked {
			return errRevoked(req.To)
		}
		if from.currency != to.currency {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "devices hold different currencies (%d, %d)", from.currency, to.currency)
		}
		if req.Amount > from.balance {
			return newErr(http.StatusUnprocessableEntity, CodeInsufficient, "amount %d over the payer's balance %d", req.Amount, from.balance)
		}
		if _, err := tx.StmtContext(ctx, s.stmts.addBalance).ExecContext(ctx, -req.Amount, req.From); err != nil {
			return internal(err)
		}
		done := int64(0)
		if !req.Hold {
			if err := checkCredit(req.To, to.balance, req.Amount); err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, s.stmts.addBalance).ExecContext(ctx, req.Amount, req.To); err != nil {
				return internal(err)
			}
			done = now.Unix()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO transfers(id, from_device, to_device, amount, state, expires_at, created_at, done_at)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8)`, req.TransferID, req.From, req.To, req.Amount, string(t.State), timeUnix(t.Expires), now.Unix(), done); err != nil {
			return internal(err)
		}
		created = true
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, statusOr(created), t)
}

func (s *Server) handleGetTransfer(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		writeErr(w, err)
		return
	}
	t, found, err := s.loadTransfer(r.Context(), s.rdb, id)
	if err == nil && !found {
		err = newErr(http.StatusNotFound, CodeUnknownTransfer, "no transfer %q", id)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) handleClaim(w http.ResponseWriter, r *http.Request) {
	s.finishTransfer(w, r, TransferClaimed)
}
func (s *Server) handleReclaim(w http.ResponseWriter, r *http.Request) {
	s.finishTransfer(w, r, TransferReclaimed)
}

// finishTransfer moves a held transfer's value to the payee (claim) or back
// to the payer (reclaim, only after expiry).
func (s *Server) finishTransfer(w http.ResponseWriter, r *http.Request, to TransferState) {
	id, err := pathID(r, "id")
	if err != nil {
		writeErr(w, err)
		return
	}
	var a TransferAction
	if !s.decode(w, r, &a) {
		return
	}
	ctx := r.Context()
	if err := checkDeviceID("device_id", a.DeviceID); err != nil {
		writeErr(w, err)
		return
	}
	if err := s.checkDeviceConsent(ctx, a.DeviceID, TransferActionChallenge(to, id, a.DeviceID), a.Signature); err != nil {
		writeErr(w, err)
		return
	}
	now := s.cfg.Now()
	var t Transfer
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var found bool
		var err error
		t, found, err = s.loadTransfer(ctx, tx, id)
		if err != nil {
			return err
		}
		if !found {
			return newErr(http.StatusNotFound, CodeUnknownTransfer, "no transfer %q", id)
		}
		party := t.To
		if to == TransferReclaimed {
			party = t.From
		}
		if a.DeviceID != party {
			return newErr(http.StatusForbidden, CodeTransferState, "device %q may not %s transfer %q", a.DeviceID, verb(to), id)
		}
		if t.State == to {
			t.Repeated = true
			return nil
		}
		if t.State != TransferInFlight {
			return newErr(http.StatusConflict, CodeTransferState, "transfer %q is %s", id, t.State)
		}
		expired := !now.Before(t.Expires)
		if to == TransferClaimed && expired {
			return newErr(http.StatusConflict, CodeTransferState, "transfer %q expired at %s", id, t.Expires.Format(time.RFC3339))
		}
		if to == TransferReclaimed && !expired {
			return newErr(http.StatusConflict, CodeTransferState, "transfer %q can be reclaimed from %s", id, t.Expires.Format(time.RFC3339))
		}
		dev, err := s.loadDevice(ctx, tx, party)
		if err != nil {
			return err
		}
		if dev.revoked {
			return errRevoked(party)
		}
		if err := checkCredit(party, dev.balance, t.Amount); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, s.stmts.addBalance).ExecContext(ctx, t.Amount, party); err != nil {
			return internal(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET state=$1, done_at=$2 WHERE id=$3`, string(to), now.Unix(), id); err != nil {
			return internal(err)
		}
		t.State = to
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func verb(s TransferState) string {
	if s == TransferReclaimed {
		return "reclaim"
	}
	return "claim"
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	a, err := s.Audit(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}
