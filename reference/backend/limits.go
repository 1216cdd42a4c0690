package backend

import (
	"context"
	"database/sql"
	"net/http"
)

// Every amount the backend stores stays within 0..maxAmount (2^53, exact
// in a JSON number and far below the device's 2^62 of SPEC.md): a value
// is checked before it is added, so no sum of stored amounts can overflow
// an int64. The issuer's whole outstanding value (every device's issued
// value) is bounded by maxAmount too, so that sums over all devices stay
// in range as well.

// checkIssue refuses to issue amount onto device id ("" for a device
// being registered) when the issuer's total issued value or the device's
// balance would pass maxAmount.
func (s *Server) checkIssue(ctx context.Context, tx *sql.Tx, id string, amount int64) error {
	if amount < 0 || amount > maxAmount {
		return newErr(http.StatusBadRequest, CodeMalformed, "amount %d out of range", amount)
	}
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(issued), 0) FROM devices`).Scan(&total); err != nil {
		return internal(err)
	}
	if total > maxAmount-amount {
		return newErr(http.StatusUnprocessableEntity, CodeLimit, "issuing %d would take the issuer's issued value %d past %d", amount, total, int64(maxAmount))
	}
	if id == "" {
		return nil
	}
	var balance int64
	if err := tx.QueryRowContext(ctx, `SELECT balance FROM devices WHERE id=$1`, id).Scan(&balance); err != nil {
		return internal(err)
	}
	return checkCredit(id, balance, amount)
}

// checkCredit refuses a credit that would take a balance past maxAmount.
func checkCredit(id string, balance, amount int64) error {
	if amount < 0 || balance < 0 || balance > maxAmount-amount {
		return newErr(http.StatusUnprocessableEntity, CodeLimit, "device %s: balance %d plus %d passes %d", id, balance, amount, int64(maxAmount))
	}
	return nil
}
