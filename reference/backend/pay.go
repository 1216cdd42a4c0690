package backend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// existingRecord is a stored record of some (device, ATC).
type existingRecord struct {
	amount   int64
	currency string
	token    string
	kind     RecordKind
	time     int64
	state    int
	account  string
	result   []byte
}

func (s *Server) loadRecord(ctx context.Context, tx *sql.Tx, dev string, atc uint32) (existingRecord, bool, error) {
	var e existingRecord
	err := tx.StmtContext(ctx, s.stmts.selRecord).QueryRowContext(ctx, dev, int64(atc)).
		Scan(&e.amount, &e.currency, &e.token, &e.kind, &e.time, &e.state, &e.account, &e.result)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, internal(err)
	}
	return e, true, nil
}

func (e existingRecord) same(r DeviceRecord) bool {
	return r.sameContent(e.amount, e.currency, e.token, e.kind, e.time)
}

func errConflict(r DeviceRecord) *apiErr {
	return newErr(http.StatusConflict, CodeConflict, "device %q ATC %d: a different record with this ATC is already known (replay refused)", r.DeviceID, r.ATC)
}

// verifyRecord checks a record's signature against its device's registered key.
func (s *Server) verifyRecord(ctx context.Context, rec DeviceRecord) error {
	pub, err := s.deviceKey(ctx, rec.DeviceID)
	if err != nil {
		return err
	}
	if err := rec.Verify(pub); err != nil {
		return newErr(http.StatusForbidden, CodeBadSignature, "device %q ATC %d: signature does not verify with the registered device key", rec.DeviceID, rec.ATC)
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
	if err := s.verifyRecord(ctx, rec); err != nil {
		return res, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	var stored []byte
	err = s.write(ctx, func(tx *sql.Tx) error {
		old, found, err := s.loadRecord(ctx, tx, rec.DeviceID, rec.ATC)
		if err != nil {
			return err
		}
		if found {
			if !old.same(rec) || old.result == nil {
				return errConflict(rec)
			}
			stored = old.result
			return nil
		}
		dev, err := s.loadDevice(ctx, tx, rec.DeviceID)
		if err != nil {
			return err
		}
		if dev.revoked {
			return errRevoked(rec.DeviceID)
		}
		if rec.Currency != dev.currency {
			return newErr(http.StatusUnprocessableEntity, CodeMalformed, "currency %s, the device's is %s", rec.Currency, dev.currency)
		}
		res = AuthorisationResult{DeviceID: rec.DeviceID, ATC: rec.ATC, Amount: rec.Amount, Currency: rec.Currency, Time: now}
		state := stateDeclined
		if rec.Amount > dev.balance {
			res.Status, res.Reason, res.Balance = Declined, "insufficient balance", dev.balance
		} else {
			account, err := s.useToken(ctx, tx, dev, rec, req.Channel, now)
			if err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, s.stmts.addBalance).ExecContext(ctx, -rec.Amount, rec.DeviceID); err != nil {
				return internal(err)
			}
			res.Status, res.Account, res.Balance, res.Settled = Approved, account, dev.balance-rec.Amount, !req.Hold
			state = stateHeld
			if res.Settled {
				state = stateSettled
			}
		}
		if res.Signature, err = sign(s.signer, res.SignedBytes()); err != nil {
			return internal(err)
		}
		blob, err := json.Marshal(res)
		if err != nil {
			return internal(err)
		}
		if _, err := tx.StmtContext(ctx, s.stmts.insRecord).ExecContext(ctx, rec.DeviceID, int64(rec.ATC), rec.Amount, rec.Currency,
			rec.Token, int(rec.Kind), rec.Time.Unix(), state, res.Account, req.Channel, "", now.Unix(), blob, req.Record); err != nil {
			return internal(err)
		}
		return nil
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
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

// settle settles a batch in one transaction: either every record is settled
// (or found settled already) and the signed acknowledgement lists them, or
// nothing is stored and the error names the first record at fault.
func (s *Server) settle(ctx context.Context, batch SettlementBatch, recs []DeviceRecord) (SettlementAck, error) {
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		devs := make(map[string]*deviceRow)
		seen := make(map[key]int, len(recs))
		for i, rec := range recs {
			e := &ack.Entries[i]
			*e = SettlementEntry{DeviceID: rec.DeviceID, ATC: rec.ATC, Amount: rec.Amount}
			if j, ok := seen[key{rec.DeviceID, rec.ATC}]; ok {
				if !recs[j].sameContent(rec.Amount, rec.Currency, rec.Token, rec.Kind, rec.Time.Unix()) {
					return errConflict(rec).at(i)
				}
				e.Status, e.Account = AlreadySettled, ack.Entries[j].Account
				continue
			}
			seen[key{rec.DeviceID, rec.ATC}] = i
			dev := devs[rec.DeviceID]
			if dev == nil {
				d, err := s.loadDevice(ctx, tx, rec.DeviceID)
				if err != nil {
					return asAPIErr(err).at(i)
				}
				dev = &d
				devs[rec.DeviceID] = dev
			}
			if dev.revoked {
				return errRevoked(rec.DeviceID).at(i)
			}
			old, found, err := s.loadRecord(ctx, tx, rec.DeviceID, rec.ATC)
			if err != nil {
				return err
			}
			if found {
				if !old.same(rec) {
					return errConflict(rec).at(i)
				}
				switch old.state {
				case stateSettled:
					e.Status, e.Account = AlreadySettled, old.account
				case stateHeld:
					// An authorisation held online: capture it.
					if _, err := tx.StmtContext(ctx, s.stmts.updRecord).ExecContext(ctx, stateSettled, batch.BatchID, now.Unix(), rec.DeviceID, int64(rec.ATC)); err != nil {
						return internal(err)
					}
					e.Status, e.Account = Settled, old.account
				default:
					return newErr(http.StatusConflict, CodeConflict, "device %q ATC %d was declined online and cannot settle", rec.DeviceID, rec.ATC).at(i)
				}
				continue
			}
			if rec.Currency != dev.currency {
				return newErr(http.StatusUnprocessableEntity, CodeMalformed, "device %q ATC %d: currency %s, the device's is %s", rec.DeviceID, rec.ATC, rec.Currency, dev.currency).at(i)
			}
			if rec.Amount > dev.balance {
				return newErr(http.StatusUnprocessableEntity, CodeInsufficient, "device %q ATC %d: amount %d over the balance %d", rec.DeviceID, rec.ATC, rec.Amount, dev.balance).at(i)
			}
			account, err := s.useToken(ctx, tx, *dev, rec, ChannelOffline, rec.Time)
			if err != nil {
				return asAPIErr(err).at(i)
			}
			if _, err := tx.StmtContext(ctx, s.stmts.insRecord).ExecContext(ctx, rec.DeviceID, int64(rec.ATC), rec.Amount, rec.Currency,
				rec.Token, int(rec.Kind), rec.Time.Unix(), stateSettled, account, ChannelOffline, batch.BatchID, now.Unix(), nil, batch.Records[i]); err != nil {
				return internal(err)
			}
			dev.balance -= rec.Amount
			e.Status, e.Account = Settled, account
		}
		for id, dev := range devs {
			if _, err := tx.ExecContext(ctx, `UPDATE devices SET balance=? WHERE id=?`, dev.balance, id); err != nil {
				return internal(err)
			}
		}
		return nil
	})
	if err != nil {
		return SettlementAck{}, err
	}
	// Committed: only now is the acknowledgement made.
	sig, err := sign(s.signer, ack.SignedBytes())
	if err != nil {
		return SettlementAck{}, internal(err)
	}
	ack.Signature = sig
	return ack, nil
}
