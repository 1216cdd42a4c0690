package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

func marshalPublicKey(k *ecdsa.PublicKey) ([]byte, error) {
	return x509.MarshalPKIXPublicKey(k)
}

// deviceKeyFromRegistration checks the key material of a registration and
// returns the device key (PKIX DER) and the certificate serial, if any.
func (s *Server) deviceKeyFromRegistration(reg Registration) ([]byte, string, error) {
	ca := s.cfg.Keys.IssuerCA
	if len(reg.Certificate) == 0 {
		if ca != nil {
			return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "a device certificate signed by the issuer CA is required")
		}
		if len(reg.PublicKey) == 0 {
			return nil, "", newErr(http.StatusBadRequest, CodeMalformed, "public_key or certificate is required")
		}
		k, err := parseECPublicKey(reg.PublicKey)
		if err != nil {
			return nil, "", newErr(http.StatusBadRequest, CodeMalformed, "%v", err)
		}
		der, err := marshalPublicKey(k)
		if err != nil {
			return nil, "", internal(err)
		}
		return der, "", nil
	}
	cert, err := x509.ParseCertificate(reg.Certificate)
	if err != nil {
		return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "certificate: %v", err)
	}
	if ca != nil {
		if err := cert.CheckSignatureFrom(ca); err != nil {
			return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "certificate not issued by the issuer CA: %v", err)
		}
		now := s.cfg.Now()
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "certificate outside its validity period")
		}
	}
	if sn := cert.Subject.SerialNumber; sn != "" && sn != reg.DeviceID {
		return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "certificate names device %q, not %q", sn, reg.DeviceID)
	}
	k, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "certificate key is not ECDSA P-256")
	}
	if _, err := parseECPublicKey(mustPKIX(k)); err != nil {
		return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "%v", err)
	}
	if len(reg.PublicKey) > 0 {
		pk, err := parseECPublicKey(reg.PublicKey)
		if err != nil || !pk.Equal(k) {
			return nil, "", newErr(http.StatusBadRequest, CodeBadCertificate, "public_key differs from the certificate's key")
		}
	}
	return mustPKIX(k), cert.SerialNumber.Text(16), nil
}

func mustPKIX(k *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil
	}
	return der
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var reg Registration
	if !s.decode(w, r, &reg) {
		return
	}
	dev, err := s.register(r.Context(), reg)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, dev)
}

func (s *Server) register(ctx context.Context, reg Registration) (Device, error) {
	for _, c := range []error{
		checkDeviceID("device_id", reg.DeviceID),
		checkText("account", reg.Account, 1, 64),
		checkAccountToken(reg.AccountToken),
		checkText("phone", reg.Phone, 0, 32),
		checkAmount("initial_balance", reg.InitialBalance, true),
	} {
		if c != nil {
			return Device{}, c
		}
	}
	if reg.Currency == 0 || reg.Currency > 999 {
		return Device{}, newErr(http.StatusBadRequest, CodeMalformed, "currency: ISO 4217 numeric code, got %d", reg.Currency)
	}
	der, serial, err := s.deviceKeyFromRegistration(reg)
	if err != nil {
		return Device{}, err
	}
	now := s.cfg.Now().Unix()
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE id=$1`, reg.DeviceID).Scan(&n); err != nil {
			return internal(err)
		}
		if n > 0 {
			return newErr(http.StatusConflict, CodeDeviceExists, "device %q is already registered", reg.DeviceID)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM revocations WHERE (kind='device' AND subject=$1) OR (kind='cert' AND subject=$2 AND $3<>'')`,
			reg.DeviceID, serial, serial).Scan(&n); err != nil {
			return internal(err)
		}
		if n > 0 {
			return newErr(http.StatusForbidden, CodeRevoked, "device or certificate is revoked")
		}
		if err := s.checkIssue(ctx, tx, "", reg.InitialBalance); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO devices(id, pubkey, cert_serial, account, currency, phone, initial, issued, balance, created_at)
			VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, reg.DeviceID, der, serial, reg.Account, reg.Currency, reg.Phone,
			reg.InitialBalance, reg.InitialBalance, reg.InitialBalance, now); err != nil {
			return internal(err)
		}
		if reg.AccountToken != "" {
			return insertToken(ctx, tx, TokenRequest{DeviceID: reg.DeviceID, Token: reg.AccountToken}, now)
		}
		return nil
	})
	if err != nil {
		return Device{}, err
	}
	return s.device(ctx, reg.DeviceID)
}

func checkAccountToken(t string) error {
	if t == "" {
		return nil
	}
	if err := checkTokenString(t); err != nil {
		return newErr(http.StatusBadRequest, CodeMalformed, "account_token: %v", err)
	}
	return nil
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err == nil {
		var dev Device
		if dev, err = s.device(r.Context(), id); err == nil {
			writeJSON(w, http.StatusOK, dev)
			return
		}
	}
	writeErr(w, err)
}

func (s *Server) device(ctx context.Context, id string) (Device, error) {
	var d Device
	var rb, ra sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT id, account, currency, cert_serial, issued, balance, reported_balance, reported_atc,
		param_counter, param_applied,
		EXISTS(SELECT 1 FROM revocations r WHERE (r.kind='device' AND r.subject=devices.id)
			OR (r.kind='cert' AND devices.cert_serial<>'' AND r.subject=devices.cert_serial))
		FROM devices WHERE id=$1`, id).Scan(&d.DeviceID, &d.Account, &d.Currency, &d.CertSerial, &d.Issued, &d.Balance,
		&rb, &ra, &d.ParameterCounter, &d.ParameterApplied, &d.Revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return d, errUnknownDevice(id)
	}
	if err != nil {
		return d, internal(err)
	}
	d.Account = MaskAccount(d.Account)
	if rb.Valid {
		d.ReportedBalance = &rb.Int64
	}
	if ra.Valid {
		d.ReportedATC = &ra.Int64
	}
	return d, nil
}

func (s *Server) handleContact(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		writeErr(w, err)
		return
	}
	var c Contact
	if !s.decode(w, r, &c) {
		return
	}
	if c.Applied < 0 || (c.Balance != nil && (*c.Balance < 0 || *c.Balance > maxAmount)) {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "applied must not be negative, and balance is an amount in 0..2^53"))
		return
	}
	ctx := r.Context()
	reply := ContactReply{DeviceID: id, Updates: []ParameterUpdate{}}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	var closed []uint64
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		reply.Updates = reply.Updates[:0] // a write may run again: nothing of an aborted run is kept
		d, err := s.loadDevice(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.revoked {
			return errRevoked(id)
		}
		var counter int64
		if err := tx.QueryRowContext(ctx, `SELECT param_counter FROM devices WHERE id=$1`, id).Scan(&counter); err != nil {
			return internal(err)
		}
		if c.Applied > counter {
			return newErr(http.StatusBadRequest, CodeMalformed, "applied %d is beyond the last update queued (%d)", c.Applied, counter)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET param_applied=CASE WHEN param_applied > $1 THEN param_applied ELSE $1 END,
			reported_balance=coalesce($2, reported_balance), reported_atc=coalesce($3, reported_atc) WHERE id=$4`,
			c.Applied, nullInt(c.Balance), nullATC(c.ATC), id); err != nil {
			return internal(err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT body, created_at FROM params WHERE device_id=$1 AND counter>$2 ORDER BY counter`, id, c.Applied)
		if err != nil {
			return internal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var body []byte
			var at int64
			if err := rows.Scan(&body, &at); err != nil {
				return internal(err)
			}
			var u ParameterUpdate
			if err := json.Unmarshal(body, &u); err != nil {
				return internal(err)
			}
			if u.Command, err = s.updateCommand(id, u, unixTime(at)); err != nil {
				return internal(err)
			}
			reply.Updates = append(reply.Updates, u)
		}
		if err := rows.Err(); err != nil {
			return internal(err)
		}
		closed, err = s.closedSerials(ctx, tx, id, now)
		return err
	})
	if err == nil && len(closed) > 0 {
		var acks []DeviceAcknowledgement
		if acks, err = s.deviceAcknowledgements(nil, map[string][]uint64{id: closed}, now); err == nil {
			reply.Acknowledge = acks[0].Commands
		}
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

// updateCommand builds the host-signed UPDATE PARAMETERS command of u.
func (s *Server) updateCommand(id string, u ParameterUpdate, at time.Time) ([]byte, error) {
	devID, err := parseDeviceID(id)
	if err != nil {
		return nil, err
	}
	pu := spd.ParameterUpdate{Counter: uint32(u.Counter), TopUp: u.TopUp, AddUses: u.AddUses, Limits: u.Limits, Tier: u.Tier, Time: at}
	if u.State != nil {
		st := spd.State(*u.State)
		pu.State = &st
	}
	cmd, err := spd.UpdateParameters(s.signer, devID, pu)
	if err != nil {
		return nil, err
	}
	return cmd.Bytes()
}

func nullInt(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullATC(p *uint32) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func (s *Server) handleQueueParameter(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		writeErr(w, err)
		return
	}
	var u ParameterUpdate
	if !s.decode(w, r, &u) {
		return
	}
	if u.Counter != 0 || u.Command != nil || u.Reverses != 0 {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "counter, command and reverses are assigned by the backend"))
		return
	}
	if err := checkAmount("top_up", u.TopUp, true); err != nil {
		writeErr(w, err)
		return
	}
	if u.TopUp == 0 && u.AddUses == 0 && u.Limits == nil && u.Tier == nil && u.State == nil {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "an update changes at least one parameter"))
		return
	}
	if u.Limits != nil && (u.Limits.MaxPayment < 0 || u.Limits.MaxPending < 0 || u.Limits.MaxOfflineCount < 0 || u.Limits.MaxOfflineAge < 0) {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "limits must not be negative"))
		return
	}
	if _, err := s.updateCommand(id, u, s.cfg.Now()); err != nil {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "%v", err))
		return
	}
	ctx := r.Context()
	now := s.cfg.Now().UTC().Truncate(time.Second)
	err = s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `UPDATE devices SET param_counter=param_counter+1 WHERE id=$1 RETURNING param_counter`, id).Scan(&u.Counter); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errUnknownDevice(id)
			}
			return internal(err)
		}
		if u.Counter > math.MaxUint32 {
			return newErr(http.StatusUnprocessableEntity, CodeLimit, "device %s: parameter counter past 2^32-1 (SPEC.md UPDATE PARAMETERS)", id)
		}
		if err := s.checkIssue(ctx, tx, id, u.TopUp); err != nil {
			return err
		}
		body, err := json.Marshal(u)
		if err != nil {
			return internal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO params(device_id, counter, body, created_at) VALUES($1, $2, $3, $4)`,
			id, u.Counter, body, now.Unix()); err != nil {
			return internal(err)
		}
		// A top-up is value issued onto the device.
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET issued=issued+$1, balance=balance+$2 WHERE id=$3`, u.TopUp, u.TopUp, id); err != nil {
			return internal(err)
		}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	if u.Command, err = s.updateCommand(id, u, now); err != nil {
		writeErr(w, internal(err))
		return
	}
	writeJSON(w, http.StatusCreated, u)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var rv Revocation
	if !s.decode(w, r, &rv) {
		return
	}
	kind, subject := "device", rv.DeviceID
	if (rv.DeviceID == "") == (rv.CertSerial == "") {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "exactly one of device_id and cert_serial"))
		return
	}
	if rv.CertSerial != "" {
		kind, subject = "cert", strings.ToLower(rv.CertSerial)
	}
	if err := checkText(kind, subject, 1, 64); err != nil {
		writeErr(w, err)
		return
	}
	if err := checkText("reason", rv.Reason, 0, 256); err != nil {
		writeErr(w, err)
		return
	}
	ctx := r.Context()
	rv.Time = s.cfg.Now().UTC().Truncate(1e9)
	created := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if kind == "device" {
			if _, err := s.loadDevice(ctx, tx, subject); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO revocations(kind, subject, reason, at) VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			kind, subject, rv.Reason, rv.Time.Unix())
		if err != nil {
			return internal(err)
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	if kind == "cert" {
		rv.CertSerial = subject
	}
	writeJSON(w, statusOr(created), rv)
}

func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	rows, err := s.rdb.QueryContext(r.Context(), `SELECT kind, subject, reason, at FROM revocations ORDER BY at, kind, subject`)
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	defer rows.Close()
	list := []Revocation{}
	for rows.Next() {
		var kind, subject string
		var rv Revocation
		var at int64
		if err := rows.Scan(&kind, &subject, &rv.Reason, &at); err != nil {
			writeErr(w, internal(err))
			return
		}
		if kind == "cert" {
			rv.CertSerial = subject
		} else {
			rv.DeviceID = subject
		}
		rv.Time = unixTime(at)
		list = append(list, rv)
	}
	if err := rows.Err(); err != nil {
		writeErr(w, internal(err))
		return
	}
	writeJSON(w, http.StatusOK, list)
}
