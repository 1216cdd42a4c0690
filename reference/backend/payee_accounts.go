package backend

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Payees register with the issuer to read their own account: POST
// /v1/payees (issuer credential) makes the payee's account if settlement
// has not yet, and answers a credential of its own, once; GET
// /v1/payees/{payee} then answers the issuer or that payee, and nobody
// else. Settlement credits a payee whether it registered or not (the
// device signed its name into the record); registering changes no balance.

// PayeeRegistration registers a payee: POST /v1/payees.
type PayeeRegistration struct {
	// Payee is its name as records carry it (PayeeName: the DF09 text, or
	// "hex:" and its bytes), 1..80 characters.
	Payee string `json:"payee"`
}

// RegisteredPayee answers a registration: the account and the payee's
// credential, shown this once (the backend keeps only its digest).
type RegisteredPayee struct {
	Payee
	Credential string `json:"credential"`
}

func (s *Server) handleRegisterPayee(w http.ResponseWriter, r *http.Request) {
	var req PayeeRegistration
	if !s.decode(w, r, &req) {
		return
	}
	if err := checkText("payee", req.Payee, 1, 80); err != nil {
		writeErr(w, err)
		return
	}
	token, err := NewToken()
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	sum := sha256.Sum256([]byte(token))
	now := s.cfg.Now().UTC().Truncate(time.Second)
	out := RegisteredPayee{Payee: Payee{Payee: req.Payee}, Credential: token}
	err = s.write(r.Context(), func(ctx context.Context, tx *sql.Tx) error {
		var registered, at int64
		err := tx.QueryRowContext(ctx, `SELECT balance, records, updated_at, registered_at FROM payees WHERE payee=$1`, req.Payee).
			Scan(&out.Balance, &out.Records, &at, &registered)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out.Balance, out.Records, at = 0, 0, now.Unix()
			_, err = tx.ExecContext(ctx, `INSERT INTO payees(payee, balance, records, updated_at, credential, registered_at) VALUES($1, 0, 0, $2, $3, $2)`,
				req.Payee, now.Unix(), sum[:])
		case err != nil:
		case registered != 0:
			return newErr(http.StatusConflict, CodeConflict, "payee %q is registered already", req.Payee)
		default:
			_, err = tx.ExecContext(ctx, `UPDATE payees SET credential=$1, registered_at=$2 WHERE payee=$3`, sum[:], now.Unix(), req.Payee)
		}
		if err != nil {
			return internal(err)
		}
		out.Updated = unixTime(at)
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

// payeeOrIssuer lets through the issuer's credential, or the credential
// of the payee the path names.
func (s *Server) payeeOrIssuer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		role, err := s.creds.role(r)
		if err == nil && role == RoleIssuer {
			h(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && tok != "" {
			var stored []byte
			qerr := s.rdb.QueryRowContext(r.Context(), `SELECT credential FROM payees WHERE payee=$1 AND registered_at<>0`, r.PathValue("payee")).Scan(&stored)
			sum := sha256.Sum256([]byte(tok))
			if qerr == nil && subtle.ConstantTimeCompare(stored, sum[:]) == 1 {
				h(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="spdlab"`)
		if role == RoleTerminal {
			writeErr(w, newErr(http.StatusForbidden, CodeForbidden, "%s %s needs the issuer's credential or this payee's own; this one is a terminal's", r.Method, r.URL.Path))
			return
		}
		writeErr(w, newErr(http.StatusUnauthorized, CodeUnauthorised, "%s %s needs the issuer's credential or this payee's own (Authorization: Bearer TOKEN)", r.Method, r.URL.Path))
	}
}
