package backend

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// Transfers move value between devices (C13, C16, C17) on the devices
// themselves: the payer's device debits with TRANSFER before the transfer
// medium exists, the payee's credits with TRANSFER IN, and each signs a
// record of it (SPEC.md SPD-XFR-1..5). Offline, the medium travels from
// screen to camera and the records settle in batches; online, the backend
// carries the medium: POST /v1/transfers settles the payer's transfer-out
// record at once and keeps the medium, a claim settles the payee's
// transfer-in record, and a reclaim answers a host-signed RECLAIM for the
// payer's device after expiry. The issuer's books move only with the
// devices' signed records (offline_transfers), so the issuer's view and the
// devices' views of both balances agree. Every step is idempotent: a step
// repeated answers the same with Repeated set.

// CloseNotice is how long after a transfer closed (its transfer-in or
// reclaim settled) the payer's contacts carry the ACKNOWLEDGE that closes
// it on the payer's device.
const CloseNotice = 30 * 24 * time.Hour

// TransferActionChallenge is what the reclaiming payer signs with INTERNAL
// AUTHENTICATE: SHA-256 over
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

type queryRower interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

func (s *Server) loadTransfer(ctx context.Context, q queryRower, id string) (Transfer, bool, error) {
	t := Transfer{TransferID: id}
	var exp, serial int64
	err := q.QueryRowContext(ctx, `SELECT from_device, to_device, amount, state, expires_at, serial, medium FROM transfers WHERE id=$1`, id).
		Scan(&t.From, &t.To, &t.Amount, &t.State, &exp, &serial, &t.Medium)
	if errors.Is(err, sql.ErrNoRows) {
		return t, false, nil
	}
	if err != nil {
		return t, false, internal(err)
	}
	t.Expires, t.Serial = unixTime(exp), uint64(serial)
	return t, true, nil
}

// transferMedium parses a transfer medium and checks it against the
// payer's registered key.
func (s *Server) transferMedium(ctx context.Context, b []byte) (*medium.Medium, string, error) {
	m, err := medium.Parse(b)
	if err != nil {
		return nil, "", newErr(http.StatusBadRequest, CodeMalformed, "medium: %v", err)
	}
	if m.Info.Kind != medium.KindTransfer || len(m.Info.PayeeID) != spd.DeviceIDLen || len(m.Info.DeviceID) != spd.DeviceIDLen ||
		!bytes.Equal(m.Info.PayerID, m.Info.DeviceID) || m.Info.Serial == 0 || m.Info.Amount <= 0 || m.Info.Amount > maxAmount {
		return nil, "", newErr(http.StatusBadRequest, CodeMalformed, "medium: not a transfer medium of SPEC.md section 7 (kind %v)", m.Info.Kind)
	}
	payer := spd.DeviceIDString(m.Info.DeviceID)
	pub, err := s.deviceKey(ctx, payer)
	if err != nil {
		return nil, "", err
	}
	if err := m.Verify(pub); err != nil {
		return nil, "", newErr(http.StatusForbidden, CodeBadSignature, "medium: not signed by the registered key of device %s", payer)
	}
	return m, payer, nil
}

// recordOf parses a device record given with a transfer step and checks
// its kind and signature.
func (s *Server) recordOf(ctx context.Context, b []byte, kind spd.PaymentKind) (DeviceRecord, error) {
	rec, err := ParseDeviceRecord(b)
	if err != nil {
		return rec, newErr(http.StatusBadRequest, CodeMalformed, "record: %v", err)
	}
	if rec.Kind != kind || rec.Serial == 0 || len(rec.Counterpart) != spd.DeviceIDLen {
		return rec, newErr(http.StatusBadRequest, CodeMalformed, "record: a %v record, want %v with a serial and the other device", rec.Kind, kind)
	}
	return rec, s.verifyRecord(ctx, rec)
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	var req TransferRequest
	if !s.decode(w, r, &req) {
		return
	}
	t, err := s.transfer(r.Context(), req)
	if err != nil {
		s.keepEvidence(r.Context(), err, "transfer "+req.TransferID)
		writeErr(w, err)
		return
	}
	writeJSON(w, statusOr(!t.Repeated), t)
}

func (s *Server) transfer(ctx context.Context, req TransferRequest) (Transfer, error) {
	var t Transfer
	if err := checkText("transfer_id", req.TransferID, 1, 64); err != nil {
		return t, err
	}
	rec, err := s.recordOf(ctx, req.Record, spd.KindTransferOut)
	if err != nil {
		return t, err
	}
	m, payer, err := s.transferMedium(ctx, req.Medium)
	if err != nil {
		return t, err
	}
	info := m.Info
	if payer != rec.Device || !bytes.Equal(info.PayeeID, rec.Counterpart) || info.Serial != rec.Serial ||
		info.Amount != rec.Amount || info.Currency != rec.Currency {
		return t, newErr(http.StatusBadRequest, CodeMalformed, "the medium (payer %s, serial %d, amount %d) is not the transfer of the record (%s, %d, %d)",
			payer, info.Serial, info.Amount, rec.Device, rec.Serial, rec.Amount)
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	t = Transfer{TransferID: req.TransferID, From: payer, To: spd.DeviceIDString(info.PayeeID), Amount: rec.Amount,
		Serial: rec.Serial, State: TransferInFlight, Expires: info.Expiry.UTC(), Medium: req.Medium}
	if !t.Expires.After(now) {
		return t, newErr(http.StatusConflict, CodeTransferState, "the medium expired at %s: the payer reclaims it (POST /v1/reclaims)", t.Expires.Format(time.RFC3339))
	}
	ack, err := s.settleWith(ctx, SettlementBatch{BatchID: "transfer " + req.TransferID, Records: [][]byte{req.Record}}, []DeviceRecord{rec},
		func(ctx context.Context, tx *sql.Tx) error {
			old, found, err := s.loadTransfer(ctx, tx, req.TransferID)
			if err != nil {
				return err
			}
			if found {
				if old.From != t.From || old.Serial != t.Serial {
					return newErr(http.StatusConflict, CodeConflict, "transfer %q exists with other terms", req.TransferID)
				}
				t.State, t.Repeated = old.State, true
				return nil
			}
			var other string
			err = tx.QueryRowContext(ctx, `SELECT id FROM transfers WHERE from_device=$1 AND serial=$2`, t.From, int64(t.Serial)).Scan(&other)
			if err == nil {
				return newErr(http.StatusConflict, CodeConflict, "transfer %d of %s was sent before as %q", t.Serial, t.From, other)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return internal(err)
			}
			payee, err := s.loadDevice(ctx, tx, t.To)
			if err != nil {
				return err
			}
			if payee.revoked {
				return errRevoked(t.To)
			}
			if payee.currency != rec.Currency {
				return newErr(http.StatusUnprocessableEntity, CodeMalformed, "devices hold different currencies (%d, %d)", rec.Currency, payee.currency)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE offline_transfers SET expires_at=$1 WHERE payer=$2 AND serial=$3`,
				t.Expires.Unix(), t.From, int64(t.Serial)); err != nil {
				return internal(err)
			}
			// The transfer may have gone on without the backend's copy of
			// the medium: its import (or reclaim) settled in a batch before
			// or with this transfer-out. The transfer is stored in the
			// state the devices' records give, never in flight beside
			// records that closed it.
			var in, reclaimed, ordered int64
			if err := tx.QueryRowContext(ctx, `SELECT in_settled, reclaimed, reclaim_ordered_at FROM offline_transfers WHERE payer=$1 AND serial=$2`,
				t.From, int64(t.Serial)).Scan(&in, &reclaimed, &ordered); err != nil {
				return internal(err)
			}
			var doneAt int64
			t.State = TransferInFlight // a write may run again: nothing of an aborted run is kept
			switch {
			case in == 1:
				t.State, doneAt = TransferClaimed, now.Unix()
			case reclaimed == 1:
				t.State, doneAt = TransferReclaimed, now.Unix()
			case ordered != 0:
				t.State = TransferReclaimOrdered
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO transfers(id, from_device, to_device, amount, state, expires_at, created_at, done_at, serial, medium)
				VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, t.TransferID, t.From, t.To, t.Amount, string(t.State),
				t.Expires.Unix(), now.Unix(), doneAt, int64(t.Serial), req.Medium); err != nil {
				return internal(err)
			}
			return nil
		})
	if err != nil {
		return t, err
	}
	if t.Repeated {
		if cur, _, err := s.loadTransfer(ctx, s.rdb, t.TransferID); err == nil {
			t.State = cur.State
		}
	}
	t.Acknowledge = commandsFor(ack, t.From)
	return t, nil
}

// commandsFor returns the ACKNOWLEDGE commands of an acknowledgement for
// one device.
func commandsFor(ack SettlementAck, id string) [][]byte {
	for _, a := range ack.Acknowledgements {
		if a.DeviceID == id {
			return a.Commands
		}
	}
	return nil
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

// handleClaim settles the payee's transfer-in record of an online transfer
// its device imported: the payee is credited against the payer's settled
// transfer-out.
func (s *Server) handleClaim(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		writeErr(w, err)
		return
	}
	var a TransferAction
	if !s.decode(w, r, &a) {
		return
	}
	t, err := s.claim(r.Context(), id, a)
	if err != nil {
		s.keepEvidence(r.Context(), err, "claim "+id)
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) claim(ctx context.Context, id string, a TransferAction) (Transfer, error) {
	if err := checkDeviceID("device_id", a.DeviceID); err != nil {
		return Transfer{}, err
	}
	t, found, err := s.loadTransfer(ctx, s.rdb, id)
	if err == nil && !found {
		err = newErr(http.StatusNotFound, CodeUnknownTransfer, "no transfer %q", id)
	}
	if err != nil {
		return t, err
	}
	if a.DeviceID != t.To {
		return t, newErr(http.StatusForbidden, CodeTransferState, "device %q may not claim transfer %q", a.DeviceID, id)
	}
	if t.Serial == 0 {
		return t, newErr(http.StatusConflict, CodeTransferState, "transfer %q was made at the issuer alone, without the devices: it cannot be claimed", id)
	}
	rec, err := s.recordOf(ctx, a.Record, spd.KindTransferIn)
	if err != nil {
		return t, err
	}
	if rec.Device != t.To || spd.DeviceIDString(rec.Counterpart) != t.From || rec.Serial != t.Serial || rec.Amount != t.Amount {
		return t, newErr(http.StatusBadRequest, CodeMalformed, "the record (payee %s, payer %s, serial %d, amount %d) is not the import of transfer %q",
			rec.Device, spd.DeviceIDString(rec.Counterpart), rec.Serial, rec.Amount, id)
	}
	ack, err := s.settle(ctx, SettlementBatch{BatchID: "claim " + id, Records: [][]byte{a.Record}}, []DeviceRecord{rec})
	if err != nil {
		return t, err
	}
	cur, _, err := s.loadTransfer(ctx, s.rdb, id)
	if err != nil {
		return t, err
	}
	cur.Repeated = len(ack.Entries) == 1 && ack.Entries[0].Status == AlreadySettled
	cur.Medium = nil
	cur.Acknowledge = commandsFor(ack, t.To)
	return cur, nil
}

// handleReclaim answers the payer of an expired online transfer nobody
// imported with a host-signed RECLAIM for its device.
func (s *Server) handleReclaim(w http.ResponseWriter, r *http.Request) {
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
	if err := s.checkDeviceConsent(ctx, a.DeviceID, TransferActionChallenge(TransferReclaimed, id, a.DeviceID), a.Signature); err != nil {
		writeErr(w, err)
		return
	}
	t, found, err := s.loadTransfer(ctx, s.rdb, id)
	if err == nil && !found {
		err = newErr(http.StatusNotFound, CodeUnknownTransfer, "no transfer %q", id)
	}
	if err == nil && a.DeviceID != t.From {
		err = newErr(http.StatusForbidden, CodeTransferState, "device %q may not reclaim transfer %q", a.DeviceID, id)
	}
	if err == nil && t.Serial == 0 {
		err = newErr(http.StatusConflict, CodeTransferState, "transfer %q was made at the issuer alone, without the devices: it cannot be reclaimed", id)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	if t.State == TransferReclaimed {
		t.Medium, t.Repeated = nil, true
		writeJSON(w, http.StatusOK, t)
		return
	}
	payee, _ := parseDeviceID(t.To)
	o, err := s.orderReclaim(ctx, t.From, t.Serial, t.Amount, payee, t.Expires)
	if err != nil {
		writeErr(w, err)
		return
	}
	cur, _, err := s.loadTransfer(ctx, s.rdb, id)
	if err != nil {
		writeErr(w, err)
		return
	}
	cur.Medium, cur.Reclaim, cur.Repeated = nil, o.Command, o.Repeated
	writeJSON(w, http.StatusOK, cur)
}

// handleReclaimOrder answers POST /v1/reclaims: the RECLAIM of an offline
// transfer, for the medium its payer's device shows again.
func (s *Server) handleReclaimOrder(w http.ResponseWriter, r *http.Request) {
	var req ReclaimRequest
	if !s.decode(w, r, &req) {
		return
	}
	ctx := r.Context()
	m, payer, err := s.transferMedium(ctx, req.Medium)
	if err != nil {
		writeErr(w, err)
		return
	}
	o, err := s.orderReclaim(ctx, payer, m.Info.Serial, m.Info.Amount, m.Info.PayeeID, m.Info.Expiry.UTC())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, statusOr(!o.Repeated), o)
}

// orderReclaim signs the RECLAIM of the payer's transfer serial (SPEC.md
// SPD-XFR-4) when it has expired and no import receipt of it reached the
// backend, and records the order in the same transaction, so that a
// transfer-in of it settles never after. A repeated order is signed again
// with the first order's time.
func (s *Server) orderReclaim(ctx context.Context, payer string, serial uint64, amount int64, payee []byte, expires time.Time) (ReclaimOrder, error) {
	now := s.cfg.Now().UTC().Truncate(time.Second)
	o := ReclaimOrder{Payer: payer, Serial: serial, Amount: amount, Expires: expires, Time: now}
	if !now.After(expires) {
		return o, newErr(http.StatusConflict, CodeTransferState, "transfer %d of %s can be reclaimed after %s", serial, payer, expires.Format(time.RFC3339))
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		o.Time, o.Repeated = now, false
		dev, err := s.loadDevice(ctx, tx, payer)
		if err != nil {
			return err
		}
		if dev.revoked {
			return errRevoked(payer)
		}
		var known struct {
			amount                                   int64
			in, inHeld, reclaimed, out, orderedAt, x int64
		}
		err = tx.QueryRowContext(ctx, `SELECT amount, in_settled, in_held, reclaimed, out_settled, reclaim_ordered_at, expires_at FROM offline_transfers WHERE payer=$1 AND serial=$2`,
			payer, int64(serial)).Scan(&known.amount, &known.in, &known.inHeld, &known.reclaimed, &known.out, &known.orderedAt, &known.x)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO offline_transfers(payer, serial, payee, amount, out_settled, in_settled, reclaimed, in_held, in_atc, reclaim_ordered_at, expires_at)
				VALUES($1, $2, $3, $4, 0, 0, 0, 0, 0, $5, $6)`, payer, int64(serial), spd.DeviceIDString(payee), amount, now.Unix(), expires.Unix())
			if err != nil {
				return internal(err)
			}
		case err != nil:
			return internal(err)
		case known.amount != amount:
			return newErr(http.StatusConflict, CodeConflict, "transfer %d of %s: amount %d, its record's is %d", serial, payer, amount, known.amount)
		case known.in == 1 || known.inHeld == 1:
			return newErr(http.StatusConflict, CodeConflict, "transfer %d of %s was imported by the payee (its transfer-in reached the backend): no reclaim", serial, payer)
		case known.reclaimed == 1:
			return newErr(http.StatusConflict, CodeConflict, "transfer %d of %s was reclaimed and settled already", serial, payer)
		case known.orderedAt != 0:
			o.Time, o.Repeated = unixTime(known.orderedAt), true
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE offline_transfers SET reclaim_ordered_at=$1, expires_at=$2 WHERE payer=$3 AND serial=$4`,
				now.Unix(), expires.Unix(), payer, int64(serial)); err != nil {
				return internal(err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET state=$1 WHERE from_device=$2 AND serial=$3 AND state=$4`,
			string(TransferReclaimOrdered), payer, int64(serial), string(TransferInFlight)); err != nil {
			return internal(err)
		}
		return nil
	})
	if err != nil {
		return o, err
	}
	raw, err := parseDeviceID(payer)
	if err != nil {
		return o, internal(err)
	}
	cmd, err := spd.Reclaim(s.signer, raw, spd.SerialAt{Serial: serial, Time: o.Time})
	if err == nil {
		o.Command, err = cmd.Bytes()
	}
	if err != nil {
		return o, internal(err)
	}
	return o, nil
}

// closedSerials lists the payer's outgoing transfers closed at the backend
// since a CloseNotice ago.
func (s *Server) closedSerials(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, payer string, now time.Time) ([]uint64, error) {
	rows, err := q.QueryContext(ctx, `SELECT serial FROM offline_transfers WHERE payer=$1 AND closed_at>=$2 ORDER BY serial`, payer, now.Add(-CloseNotice).Unix())
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, internal(err)
		}
		out = append(out, uint64(n))
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err)
	}
	return out, nil
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
