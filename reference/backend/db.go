package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
)

// schema is the backend's SQLite schema. Amounts are integers in minor
// units; times are Unix seconds.
const schema = `
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB) STRICT;
CREATE TABLE IF NOT EXISTS devices(
	id TEXT PRIMARY KEY,
	pubkey BLOB NOT NULL,
	cert_serial TEXT NOT NULL DEFAULT '',
	account TEXT NOT NULL,
	currency INTEGER NOT NULL,
	phone TEXT NOT NULL DEFAULT '',
	initial INTEGER NOT NULL,
	issued INTEGER NOT NULL,
	balance INTEGER NOT NULL,
	reported_balance INTEGER,
	reported_atc INTEGER,
	param_counter INTEGER NOT NULL DEFAULT 0,
	param_applied INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
) STRICT;
-- One row per (device, ATC): state 1 settled, 2 held (authorised, pending),
-- 3 declined online, 4 a transfer-in stored and held until the payer's
-- transfer-out settles (not credited).
CREATE TABLE IF NOT EXISTS records(
	device_id TEXT NOT NULL,
	atc INTEGER NOT NULL,
	amount INTEGER NOT NULL,
	currency INTEGER NOT NULL,
	token TEXT NOT NULL,
	kind INTEGER NOT NULL,
	mode INTEGER NOT NULL,
	time INTEGER NOT NULL,
	body_hash BLOB NOT NULL,
	state INTEGER NOT NULL,
	account TEXT NOT NULL,
	channel TEXT NOT NULL,
	batch TEXT NOT NULL DEFAULT '',
	at INTEGER NOT NULL,
	result BLOB,
	raw BLOB NOT NULL,
	PRIMARY KEY(device_id, atc)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_state ON records(state);
CREATE TABLE IF NOT EXISTS tokens(
	token TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	max_uses INTEGER NOT NULL,
	uses INTEGER NOT NULL,
	max_amount INTEGER NOT NULL,
	not_before INTEGER NOT NULL,
	not_after INTEGER NOT NULL,
	channels TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS params(
	device_id TEXT NOT NULL,
	counter INTEGER NOT NULL,
	body BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY(device_id, counter)
) STRICT;
CREATE TABLE IF NOT EXISTS otps(
	id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	purpose TEXT NOT NULL,
	code_hash BLOB NOT NULL,
	expires_at INTEGER NOT NULL,
	tries_left INTEGER NOT NULL,
	used INTEGER NOT NULL,
	tries INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS otps_device ON otps(device_id, created_at);
CREATE INDEX IF NOT EXISTS otps_created ON otps(created_at);
CREATE TABLE IF NOT EXISTS revocations(
	kind TEXT NOT NULL,
	subject TEXT NOT NULL,
	reason TEXT NOT NULL,
	at INTEGER NOT NULL,
	PRIMARY KEY(kind, subject)
) STRICT;
CREATE TABLE IF NOT EXISTS transfers(
	id TEXT PRIMARY KEY,
	from_device TEXT NOT NULL,
	to_device TEXT NOT NULL,
	amount INTEGER NOT NULL,
	state TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	done_at INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS transfers_state ON transfers(state);
-- Records signed by a device that conflict with a stored record of the
-- same (device, ATC): evidence of a cloned or rolled-back device.
CREATE TABLE IF NOT EXISTS conflicts(
	device_id TEXT NOT NULL,
	atc INTEGER NOT NULL,
	body_hash BLOB NOT NULL,
	raw BLOB NOT NULL,
	source TEXT NOT NULL,
	at INTEGER NOT NULL,
	PRIMARY KEY(device_id, atc, body_hash)
) STRICT;
-- Offline transfers (transfer media), from the devices' records: the payer's
-- transfer-out, then the payee's transfer-in or the payer's reclaim. A
-- transfer-in that arrives before the transfer-out is held (in_held, the
-- payee's record at in_atc) and credited when the transfer-out settles.
CREATE TABLE IF NOT EXISTS offline_transfers(
	payer TEXT NOT NULL,
	serial INTEGER NOT NULL,
	payee TEXT NOT NULL,
	amount INTEGER NOT NULL,
	out_settled INTEGER NOT NULL,
	in_settled INTEGER NOT NULL,
	reclaimed INTEGER NOT NULL,
	in_held INTEGER NOT NULL DEFAULT 0,
	in_atc INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY(payer, serial)
) STRICT;
`

// Record states.
const (
	stateSettled  = 1
	stateHeld     = 2
	stateDeclined = 3
	stateHeldIn   = 4
)

func migrate(db *sql.DB) error {
	if _, err := db.Exec(schema); err != nil {
		return fmt.Errorf("backend: create schema: %w", err)
	}
	if _, err := db.Exec(`INSERT OR IGNORE INTO meta(k, v) VALUES('schema', CAST(? AS BLOB))`, schemaMark); err != nil {
		return fmt.Errorf("backend: mark schema: %w", err)
	}
	// Databases made before these columns existed get them; a device's
	// initial value is then what was issued less its queued top-ups.
	for _, c := range []struct{ table, column, add, fill string }{
		{"devices", "initial", "ALTER TABLE devices ADD COLUMN initial INTEGER NOT NULL DEFAULT 0",
			"UPDATE devices SET initial = issued - coalesce((SELECT sum(json_extract(p.body, '$.top_up')) FROM params p WHERE p.device_id = devices.id), 0)"},
		{"otps", "tries", "ALTER TABLE otps ADD COLUMN tries INTEGER NOT NULL DEFAULT 0", "UPDATE otps SET tries = tries_left"},
		{"otps", "created_at", "ALTER TABLE otps ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0", ""},
		{"offline_transfers", "in_held", "ALTER TABLE offline_transfers ADD COLUMN in_held INTEGER NOT NULL DEFAULT 0", ""},
		{"offline_transfers", "in_atc", "ALTER TABLE offline_transfers ADD COLUMN in_atc INTEGER NOT NULL DEFAULT 0", ""},
	} {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info(?) WHERE name=?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("backend: schema: %w", err)
		}
		if n > 0 {
			continue
		}
		for _, q := range []string{c.add, c.fill} {
			if q == "" {
				continue
			}
			if _, err := db.Exec(q); err != nil {
				return fmt.Errorf("backend: migrate %s.%s: %w", c.table, c.column, err)
			}
		}
	}
	return nil
}

// writeStmts are the hot statements, prepared once on the writing connection.
type writeStmts struct {
	selRecord, insRecord, updRecord *sql.Stmt
	insNewRecord                    *sql.Stmt
	selDevice, addBalance           *sql.Stmt
	selToken, useToken              *sql.Stmt
}

const selDeviceSQL = `SELECT d.balance, d.currency, d.account,
	EXISTS(SELECT 1 FROM revocations r WHERE (r.kind='device' AND r.subject=d.id)
		OR (r.kind='cert' AND d.cert_serial<>'' AND r.subject=d.cert_serial))
	FROM devices d WHERE d.id=?`

func (w *writeStmts) prepare(db *sql.DB) error {
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.Prepare(q)
		return st
	}
	w.selRecord = p(`SELECT state, account, result, body_hash FROM records WHERE device_id=? AND atc=?`)
	w.insRecord = p(`INSERT INTO records(device_id, atc, amount, currency, token, kind, mode, time, body_hash, state, account, channel, batch, at, result, raw)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	w.insNewRecord = p(`INSERT INTO records(device_id, atc, amount, currency, token, kind, mode, time, body_hash, state, account, channel, batch, at, result, raw)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(device_id, atc) DO NOTHING`)
	w.updRecord = p(`UPDATE records SET state=?, batch=?, at=? WHERE device_id=? AND atc=?`)
	w.selDevice = p(selDeviceSQL)
	w.addBalance = p(`UPDATE devices SET balance=balance+? WHERE id=?`)
	w.selToken = p(`SELECT device_id, max_uses, uses, max_amount, not_before, not_after, channels FROM tokens WHERE token=?`)
	w.useToken = p(`UPDATE tokens SET uses=uses+1 WHERE token=?`)
	if err != nil {
		return fmt.Errorf("backend: prepare: %w", err)
	}
	return nil
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.selRecord, w.insRecord, w.insNewRecord, w.updRecord, w.selDevice, w.addBalance, w.selToken, w.useToken} {
		if st != nil {
			st.Close()
		}
	}
}

// write runs fn in a write transaction and returns after it committed;
// fn's error rolls back fn's changes and nothing else.
//
// Writes are group-committed: one goroutine owns the writing connection,
// takes every write waiting at that moment (up to maxGroup), runs each in a
// SAVEPOINT of one transaction and commits them together, then answers
// each. Writers are thus serialised in the process (SQLite never sees two)
// and the commit cost is shared. No answer is given before the commit.
//
// The transaction does not follow ctx's cancellation: a client that goes
// away mid-transaction finds its request done or not done, as after a
// crash, and a retry is answered idempotently.
func (s *Server) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	j := &writeJob{ctx: context.WithoutCancel(ctx), fn: fn, done: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-s.closing:
		return errClosed
	}
	select {
	case err := <-j.done:
		return err
	case <-s.writerDone:
		select {
		case err := <-j.done:
			return err
		default:
			return errClosed
		}
	}
}

// maxGroup bounds the writes committed together.
const maxGroup = 64

var errClosed = newErr(http.StatusServiceUnavailable, CodeInternal, "backend is closing")

type writeJob struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// writer is the goroutine that owns the writing connection.
func (s *Server) writer() {
	defer close(s.writerDone)
	for {
		var first *writeJob
		select {
		case first = <-s.jobs:
		case <-s.closing:
			return
		}
		group := []*writeJob{first}
	drain:
		for len(group) < maxGroup {
			select {
			case j := <-s.jobs:
				group = append(group, j)
			default:
				break drain
			}
		}
		errs := s.commitGroup(group)
		for i, j := range group {
			j.done <- errs[i]
		}
	}
}

// commitGroup runs the jobs in one transaction and returns each one's error.
func (s *Server) commitGroup(group []*writeJob) (errs []error) {
	errs = make([]error, len(group))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = internal(err)
			}
		}
		return errs
	}
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			errs = fail(fmt.Errorf("backend: write panicked: %v", p))
		}
	}()
	if len(group) == 1 {
		if errs[0] = group[0].fn(group[0].ctx, tx); errs[0] != nil {
			tx.Rollback()
			return errs
		}
	} else {
		for i, j := range group {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT job"); err != nil {
				tx.Rollback()
				return fail(err)
			}
			if errs[i] = j.fn(j.ctx, tx); errs[i] != nil {
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO job"); err != nil {
					tx.Rollback()
					return fail(err)
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE job"); err != nil {
				tx.Rollback()
				return fail(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return errs
}

// apiErr is an answer other than 2xx.
type apiErr struct {
	status int
	body   ErrorBody
	// evidence is a record that conflicts with a stored one: kept after
	// the refusal (see keepEvidence).
	evidence *conflictEvidence
}

func (e *apiErr) Error() string {
	return fmt.Sprintf("backend: %d %s: %s", e.status, e.body.Code, e.body.Reason)
}

func newErr(status int, code, format string, args ...any) *apiErr {
	return &apiErr{status: status, body: ErrorBody{Code: code, Reason: fmt.Sprintf(format, args...)}}
}

func (e *apiErr) at(i int) *apiErr {
	e.body.Index = &i
	return e
}

func internal(err error) *apiErr {
	return newErr(http.StatusInternalServerError, CodeInternal, "%v", err)
}

func errUnknownDevice(id string) *apiErr {
	return newErr(http.StatusNotFound, CodeUnknownDevice, "unknown device %q", id)
}

func errRevoked(id string) *apiErr {
	return newErr(http.StatusForbidden, CodeRevoked, "device %q is revoked", id)
}

// asAPIErr turns any error into an answer.
func asAPIErr(err error) *apiErr {
	var ae *apiErr
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return newErr(http.StatusServiceUnavailable, CodeInternal, "%v", err)
	}
	return internal(err)
}

// deviceRow is a device as a write transaction sees it.
type deviceRow struct {
	balance  int64
	currency uint16
	account  string
	revoked  bool
}

func (s *Server) loadDevice(ctx context.Context, tx *sql.Tx, id string) (deviceRow, error) {
	var d deviceRow
	err := tx.StmtContext(ctx, s.stmts.selDevice).QueryRowContext(ctx, id).Scan(&d.balance, &d.currency, &d.account, &d.revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return d, errUnknownDevice(id)
	}
	if err != nil {
		return d, internal(err)
	}
	return d, nil
}
