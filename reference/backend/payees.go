package backend

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spdlab/spdlab/reference/spd"
)

// Payees (merchants) are accounts at the issuer (C4, C47, C49). Settling a
// payment record credits the payee it names (SPEC.md SPD-PAY-7, SPD-PAY-8:
// the record carries it, signed by the device) with the record's amount,
// in the settlement's own transaction; the audit recomputes every payee's
// balance from the settled records (payees_paid). Account payments (kind
// 02) are also billed under the designated account, one bill per calendar
// month (UTC): GET /v1/accounts/{id}/bill.

// PayeeName is how a record's payee (DF09) is named at the issuer: the
// text when it is printable UTF-8, else "hex:" and its bytes; a record
// without a payee is paid to the payee "".
func PayeeName(payee []byte) string {
	if len(payee) == 0 {
		return ""
	}
	if utf8.Valid(payee) && strings.IndexFunc(string(payee), func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return string(payee)
	}
	return "hex:" + strings.ToUpper(hex.EncodeToString(payee))
}

// creditPayee credits the payee of a payment record being settled.
func (s *Server) creditPayee(ctx context.Context, tx *sql.Tx, rec DeviceRecord, now int64) error {
	if !rec.Kind.IsPayment() {
		return nil
	}
	return s.bookPayeeCredit(ctx, tx, PayeeName(rec.Payee), payeeCredit{amount: rec.Amount, records: 1}, now)
}

// payeeCredit is what a settlement credits one payee: the sum of its
// settled payment records' amounts, and their count.
type payeeCredit struct{ amount, records int64 }

// payeeCredits are a settlement batch's credits to payees. With the single
// writer (SQLite) they are gathered per payee and booked with one
// statement each at the end of the transaction (most batches pay one or a
// few payees). With concurrent writers (PostgreSQL) each record's credit is
// booked at once, as the record is: the first one locks the payee's row
// early, so settlements paying one payee queue on it rather than run to
// their end and be aborted (BenchmarkStationsPostgres: 0.09 to 0.19
// transactions run again per record booked at once, 0.35 to 0.99 gathered).
type payeeCredits struct {
	s    *Server
	tx   *sql.Tx
	now  int64
	sum  map[string]payeeCredit
	each bool
}

func (s *Server) newPayeeCredits(tx *sql.Tx, now int64) *payeeCredits {
	return &payeeCredits{s: s, tx: tx, now: now, sum: make(map[string]payeeCredit), each: !s.eng.singleWriter()}
}

// add credits the payee of rec when rec is a payment record.
func (c *payeeCredits) add(ctx context.Context, rec DeviceRecord) error {
	if !rec.Kind.IsPayment() {
		return nil
	}
	if c.each {
		return c.s.creditPayee(ctx, c.tx, rec, c.now)
	}
	name := PayeeName(rec.Payee)
	p := c.sum[name]
	p.amount += rec.Amount
	p.records++
	c.sum[name] = p
	return nil
}

// book books the gathered credits, payees in name order.
func (c *payeeCredits) book(ctx context.Context) error {
	for _, name := range slices.Sorted(maps.Keys(c.sum)) {
		if err := c.s.bookPayeeCredit(ctx, c.tx, name, c.sum[name], c.now); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) bookPayeeCredit(ctx context.Context, tx *sql.Tx, name string, p payeeCredit, now int64) error {
	if _, err := tx.StmtContext(ctx, s.stmts.creditPayee).ExecContext(ctx, name, p.amount, p.records, now); err != nil {
		return internal(err)
	}
	return nil
}

// Payee is a payee's account at the issuer.
type Payee struct {
	Payee string `json:"payee"`
	// Balance is what settled payments credited to it, in minor units.
	Balance int64 `json:"balance"`
	// Records counts the settled payment records that named it.
	Records int64     `json:"records"`
	Updated time.Time `json:"updated"`
}

func (s *Server) handlePayee(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("payee")
	if err := checkText("payee", name, 1, 80); err != nil {
		writeErr(w, err)
		return
	}
	var p Payee
	var at int64
	err := s.rdb.QueryRowContext(r.Context(), `SELECT payee, balance, records, updated_at FROM payees WHERE payee=$1`, name).
		Scan(&p.Payee, &p.Balance, &p.Records, &at)
	if errors.Is(err, sql.ErrNoRows) {
		writeErr(w, newErr(http.StatusNotFound, CodeNotFound, "payee %q has been paid nothing", name))
		return
	}
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	p.Updated = unixTime(at)
	writeJSON(w, http.StatusOK, p)
}

// Bill is the statement of a designated account for one period: the
// account payments (kind 02) settled in it (C4, C47, C49).
type Bill struct {
	DeviceID string `json:"device_id"`
	// Account is the designated account, masked: only its last four
	// characters leave the vault.
	Account  string     `json:"account"`
	Currency int        `json:"currency"`
	Period   string     `json:"period"` // YYYY-MM, UTC
	From     time.Time  `json:"from"`   // first second of the period
	To       time.Time  `json:"to"`     // first second after it
	Lines    []BillLine `json:"lines"`
	Total    int64      `json:"total"`
}

// BillLine is one account payment on a bill.
type BillLine struct {
	ATC    uint32    `json:"atc"`
	Time   time.Time `json:"time"` // the payment's terminal time
	Amount int64     `json:"amount"`
	Payee  string    `json:"payee"`
	Token  string    `json:"token,omitempty"`
}

func (s *Server) handleBill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := checkDeviceID("id", id); err != nil {
		writeErr(w, err)
		return
	}
	period := r.URL.Query().Get("period")
	if period == "" {
		period = s.cfg.Now().UTC().Format("2006-01")
	}
	from, err := time.Parse("2006-01", period)
	if err != nil {
		writeErr(w, newErr(http.StatusBadRequest, CodeMalformed, "period %q is not YYYY-MM", period))
		return
	}
	to := from.AddDate(0, 1, 0)
	ctx := r.Context()
	b := Bill{DeviceID: id, Period: period, From: from, To: to, Lines: []BillLine{}}
	var account string
	err = s.rdb.QueryRowContext(ctx, `SELECT account, currency FROM devices WHERE id=$1`, id).Scan(&account, &b.Currency)
	if errors.Is(err, sql.ErrNoRows) {
		writeErr(w, newErr(http.StatusNotFound, CodeNotFound, "device %s is not registered", id))
		return
	}
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	b.Account = MaskAccount(account)
	rows, err := s.rdb.QueryContext(ctx, `SELECT atc, raw FROM records WHERE device_id=$1 AND kind=$2 AND state=$3 AND time >= $4 AND time < $5 ORDER BY time, atc`,
		id, int(spd.KindAccount), stateSettled, from.Unix(), to.Unix())
	if err != nil {
		writeErr(w, internal(err))
		return
	}
	defer rows.Close()
	for rows.Next() {
		var atc any
		var raw []byte
		if err := rows.Scan(&atc, &raw); err != nil {
			writeErr(w, internal(err))
			return
		}
		rec, err := ParseDeviceRecord(raw)
		if err == nil && (rec.Device != id || rec.Kind != spd.KindAccount) {
			err = fmt.Errorf("the device's signed bytes are %s's kind %v record", rec.Device, rec.Kind)
		}
		if err != nil {
			// The stored books are damaged: the bill is not made from a
			// record that is not the device's own; the row stays as it is
			// and the audit names it.
			writeErr(w, newErr(http.StatusConflict, CodeDamaged, "device %s ATC %v: a stored account payment is not the device's signed record (%v): no bill is made from damaged books; the record is kept and GET /v1/audit names it", id, atc, err))
			return
		}
		b.Lines = append(b.Lines, BillLine{ATC: rec.ATC, Time: rec.Time.UTC(), Amount: rec.Amount, Payee: PayeeName(rec.Payee), Token: rec.Token})
		if b.Total > maxAmount-rec.Amount {
			writeErr(w, newErr(http.StatusInternalServerError, CodeInternal, "device %s: the bill's total overflows (the audit names the records)", id))
			return
		}
		b.Total += rec.Amount
	}
	if err := rows.Err(); err != nil {
		writeErr(w, internal(err))
		return
	}
	writeJSON(w, http.StatusOK, b)
}
