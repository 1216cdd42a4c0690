package backend

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The token vault (C20, C22, C24): a payment token stands in for a device's
// designated account. Its domain controls (number of transactions, amount
// per transaction, validity period, payment channels) are checked on every
// use, online at authorisation and offline at settlement (channel
// "offline"); detokenisation gives the account the amount is taken from.

// ChannelOffline is the channel of records settled after an offline payment.
const ChannelOffline = "offline"

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

func timeUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func checkTokenRequest(req TokenRequest) error {
	if err := checkDeviceID("device_id", req.DeviceID); err != nil {
		return err
	}
	if req.Token != "" {
		if err := checkTokenString(req.Token); err != nil {
			return newErr(http.StatusBadRequest, CodeMalformed, "%v", err)
		}
	}
	if req.MaxUses < 0 {
		return newErr(http.StatusBadRequest, CodeMalformed, "max_uses must not be negative")
	}
	if err := checkAmount("max_amount", req.MaxAmount, true); err != nil {
		return err
	}
	if !req.NotBefore.IsZero() && !req.NotAfter.IsZero() && !req.NotAfter.After(req.NotBefore) {
		return newErr(http.StatusBadRequest, CodeMalformed, "not_after must be after not_before")
	}
	if len(req.Channels) > 16 {
		return newErr(http.StatusBadRequest, CodeMalformed, "at most 16 channels")
	}
	for _, c := range req.Channels {
		if err := checkText("channel", c, 1, 32); err != nil {
			return err
		}
		if strings.Contains(c, ",") {
			return newErr(http.StatusBadRequest, CodeMalformed, "channel %q: no commas", c)
		}
	}
	return nil
}

func insertToken(ctx context.Context, tx *sql.Tx, req TokenRequest, now int64) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO tokens(token, device_id, max_uses, uses, max_amount, not_before, not_after, channels, created_at)
		VALUES($1, $2, $3, 0, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`, req.Token, req.DeviceID, req.MaxUses, req.MaxAmount,
		timeUnix(req.NotBefore), timeUnix(req.NotAfter), strings.Join(req.Channels, ","), now)
	if err != nil {
		return internal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return newErr(http.StatusConflict, CodeConflict, "token %q is already in the vault", req.Token)
	}
	return nil
}

func mintToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return tokenString(b), nil
}

func (s *Server) handleMintToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := checkTokenRequest(req); err != nil {
		writeErr(w, err)
		return
	}
	if req.Token == "" {
		t, err := mintToken()
		if err != nil {
			writeErr(w, internal(err))
			return
		}
		req.Token = t
	}
	ctx := r.Context()
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		d, err := s.loadDevice(ctx, tx, req.DeviceID)
		if err != nil {
			return err
		}
		if d.revoked {
			return errRevoked(req.DeviceID)
		}
		return insertToken(ctx, tx, req, s.cfg.Now().Unix())
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	t, err := s.token(ctx, req.Token)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	tok, err := pathID(r, "token")
	if err == nil {
		var t Token
		if t, err = s.token(r.Context(), tok); err == nil {
			writeJSON(w, http.StatusOK, t)
			return
		}
	}
	writeErr(w, err)
}

func (s *Server) token(ctx context.Context, tok string) (Token, error) {
	t := Token{Token: tok}
	var nb, na int64
	var ch string
	err := s.rdb.QueryRowContext(ctx, `SELECT device_id, max_uses, uses, max_amount, not_before, not_after, channels FROM tokens WHERE token=$1`, tok).
		Scan(&t.DeviceID, &t.MaxUses, &t.Uses, &t.MaxAmount, &nb, &na, &ch)
	if errors.Is(err, sql.ErrNoRows) {
		return t, newErr(http.StatusNotFound, CodeUnknownToken, "token %q is not in the vault", tok)
	}
	if err != nil {
		return t, internal(err)
	}
	t.NotBefore, t.NotAfter = unixTime(nb), unixTime(na)
	if ch != "" {
		t.Channels = strings.Split(ch, ",")
	}
	return t, nil
}

// useToken checks a record's token against the vault inside tx and counts
// the use. An empty token stands for the device's own account. It returns
// the designated account (detokenised).
func (s *Server) useToken(ctx context.Context, tx *sql.Tx, dev deviceRow, rec DeviceRecord, channel string, at time.Time) (string, error) {
	if rec.Token == "" {
		return dev.account, nil
	}
	var owner, ch string
	var maxUses, uses, maxAmount, nb, na int64
	err := tx.StmtContext(ctx, s.stmts.selToken).QueryRowContext(ctx, rec.Token).Scan(&owner, &maxUses, &uses, &maxAmount, &nb, &na, &ch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", newErr(http.StatusNotFound, CodeUnknownToken, "token %q is not in the vault", rec.Token)
	}
	if err != nil {
		return "", internal(err)
	}
	refuse := func(format string, args ...any) (string, error) {
		return "", newErr(http.StatusUnprocessableEntity, CodeTokenRefused, "token %q: "+format, append([]any{rec.Token}, args...)...)
	}
	switch {
	case owner != rec.Device:
		return refuse("issued to another device")
	case maxUses > 0 && uses >= maxUses:
		return refuse("used %d of %d transactions", uses, maxUses)
	case maxAmount > 0 && rec.Amount > maxAmount:
		return refuse("amount %d over the limit %d", rec.Amount, maxAmount)
	case nb != 0 && at.Unix() < nb:
		return refuse("not valid before %s", unixTime(nb).Format(time.RFC3339))
	case na != 0 && at.Unix() > na:
		return refuse("expired at %s", unixTime(na).Format(time.RFC3339))
	case ch != "" && !slices.Contains(strings.Split(ch, ","), channel):
		return refuse("channel %q not allowed (%s)", channel, ch)
	}
	if _, err := tx.StmtContext(ctx, s.stmts.useToken).ExecContext(ctx, rec.Token); err != nil {
		return "", internal(err)
	}
	return dev.account, nil
}
