package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"time"
)

// Record states.
const (
	stateSettled  = 1
	stateHeld     = 2
	stateDeclined = 3
	stateHeldIn   = 4
	stateReversed = 5 // a payment the issuer reversed (POST /v1/reversals): never settled
)

// writeStmts are the hot statements, prepared once on the writing connection.
type writeStmts struct {
	selRecord, insRecord, updRecord *sql.Stmt
	selAuthorisation                *sql.Stmt
	insNewRecord                    *sql.Stmt
	selDevice, addBalance           *sql.Stmt
	selToken, useToken              *sql.Stmt
	setBalance, creditPayee         *sql.Stmt
	// The group commit's savepoints (single-writer engines only).
	savepoint, release, rollbackTo *sql.Stmt
}

const selDeviceSQL = `SELECT d.balance, d.currency, d.account,
	EXISTS(SELECT 1 FROM revocations r WHERE (r.kind='device' AND r.subject=d.id)
		OR (r.kind='cert' AND d.cert_serial<>'' AND r.subject=d.cert_serial))
	FROM devices d WHERE d.id=$1`

// selAuthorisationSQL reads what an authorisation decides on in one
// statement: the device (as selDeviceSQL) and the record stored for its
// ATC, if any (NULL state otherwise).
const selAuthorisationSQL = `SELECT d.balance, d.currency, d.account,
	EXISTS(SELECT 1 FROM revocations r WHERE (r.kind='device' AND r.subject=d.id)
		OR (r.kind='cert' AND d.cert_serial<>'' AND r.subject=d.cert_serial)),
	rec.state, rec.result, rec.body_hash
	FROM devices d LEFT JOIN records rec ON rec.device_id=d.id AND rec.atc=$2 WHERE d.id=$1`

// creditPayeeSQL credits a payee with $2 over $3 settled records.
const creditPayeeSQL = `INSERT INTO payees(payee, balance, records, updated_at) VALUES($1, $2, $3, $4)
	ON CONFLICT(payee) DO UPDATE SET balance=payees.balance+excluded.balance, records=payees.records+excluded.records, updated_at=excluded.updated_at`

func (w *writeStmts) prepare(db *sql.DB, savepoints bool) error {
	var err error
	p := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.Prepare(q)
		return st
	}
	w.selRecord = p(`SELECT state, account, result, body_hash FROM records WHERE device_id=$1 AND atc=$2`)
	w.insRecord = p(`INSERT INTO records(device_id, atc, amount, currency, token, kind, mode, time, body_hash, state, account, channel, batch, at, result, raw)
		VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`)
	w.insNewRecord = p(`INSERT INTO records(device_id, atc, amount, currency, token, kind, mode, time, body_hash, state, account, channel, batch, at, result, raw)
		VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT(device_id, atc) DO NOTHING`)
	w.updRecord = p(`UPDATE records SET state=$1, batch=$2, at=$3 WHERE device_id=$4 AND atc=$5`)
	w.selDevice = p(selDeviceSQL)
	w.selAuthorisation = p(selAuthorisationSQL)
	w.addBalance = p(`UPDATE devices SET balance=balance+$1 WHERE id=$2`)
	w.selToken = p(`SELECT device_id, max_uses, uses, max_amount, not_before, not_after, channels FROM tokens WHERE token=$1`)
	w.useToken = p(`UPDATE tokens SET uses=uses+1 WHERE token=$1`)
	w.setBalance = p(`UPDATE devices SET balance=$1 WHERE id=$2`)
	w.creditPayee = p(creditPayeeSQL)
	if savepoints {
		w.savepoint, w.release, w.rollbackTo = p(`SAVEPOINT job`), p(`RELEASE job`), p(`ROLLBACK TO job`)
	}
	if err != nil {
		return fmt.Errorf("backend: prepare: %w", err)
	}
	return nil
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.selRecord, w.selAuthorisation, w.insRecord, w.insNewRecord, w.updRecord, w.selDevice, w.addBalance, w.selToken, w.useToken,
		w.setBalance, w.creditPayee, w.savepoint, w.release, w.rollbackTo} {
		if st != nil {
			st.Close()
		}
	}
}

// write runs fn in a write transaction and returns after it committed;
// fn's error rolls back fn's changes and nothing else.
//
// Writes are group-committed: one goroutine owns the writing connection,
// runs the first write waiting in a transaction, then every write that is
// waiting once it is done, each in a SAVEPOINT of the same transaction,
// until none is waiting (or maxGroup ran), and commits them together, then
// answers each. Writes that arrive while the group runs join it, so the
// commit is shared by as many as arrive during one another's work rather
// than only by those already waiting when the group began; while
// authorisations are being verified the writer also holds the group open
// for up to defaultCommitWait for them (joiningJob). Writers are thus
// serialised in the process (SQLite never sees two). No answer is given
// before the commit, and a failed commit fails every write of the group.
//
// The transaction does not follow ctx's cancellation: a client that goes
// away mid-transaction finds its request done or not done, as after a
// crash, and a retry is answered idempotently.
func (s *Server) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.jobs == nil {
		return s.writeConcurrent(context.WithoutCancel(ctx), fn)
	}
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

// writeConcurrent runs fn in a transaction of its own, at the engine's
// write isolation (PostgreSQL: SERIALIZABLE), beside the writes of other
// goroutines and other backend processes. SERIALIZABLE makes the outcome
// that of some serial order of the transactions, as the single writer
// does; a transaction the database aborts to keep it so (a serialization
// failure, a deadlock) runs again from the start, up to maxAttempts, with a
// short random pause that grows. fn has no effect outside tx, so running
// it again is safe.
func (s *Server) writeConcurrent(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			select {
			case <-time.After(retryPause(attempt)):
			case <-s.closing:
				return errClosed
			}
		}
		if err = s.writeOnce(ctx, fn, attempt); err == nil || !s.eng.retryable(err) {
			return err
		}
		s.retries.Add(1)
	}
	return internal(fmt.Errorf("backend: gave up after %d attempts: %w", maxAttempts, err))
}

// maxAttempts bounds the runs of one write that keeps being aborted.
const maxAttempts = 50

// retryPause is a random pause of up to 1 ms doubled for each attempt,
// at most 100 ms.
func retryPause(attempt int) time.Duration {
	max := time.Millisecond << min(attempt, 7)
	return time.Duration(mathrand.Int64N(int64(min(max, 100*time.Millisecond))))
}

func (s *Server) writeOnce(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error, attempt int) (err error) {
	tx, err := s.wdb.BeginTx(ctx, s.eng.writeTx())
	if err != nil {
		return internal(err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			err = internal(fmt.Errorf("backend: write panicked: %v", p))
		}
	}()
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	if s.abortAttempt != nil {
		if err := s.abortAttempt(attempt); err != nil {
			tx.Rollback()
			return internal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return internal(err)
	}
	return nil
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
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	defer wait.Stop()
	for {
		var first *writeJob
		select {
		case first = <-s.jobs:
		case <-s.closing:
			return
		}
		group, errs := s.commitGroup(first, s.joiningJob(wait))
		wait.Stop()
		for i, j := range group {
			j.done <- errs[i]
		}
		if c, ok := s.eng.(checkpointFinisher); ok {
			c.finishCheckpoint(context.Background(), s.wdb)
		}
	}
}

// checkpointFinisher is an engine whose single writer finishes its
// checkpoints between two groups (sqliteEngine.finishCheckpoint).
type checkpointFinisher interface {
	finishCheckpoint(ctx context.Context, wdb *sql.DB)
}

// waitingJob returns a write waiting to run, or nil.
func (s *Server) waitingJob() *writeJob {
	select {
	case j := <-s.jobs:
		return j
	default:
		return nil
	}
}

// defaultCommitWait bounds how long the single writer holds a group open,
// before its commit, for authorisations still being verified (joiningJob).
const defaultCommitWait = 150 * time.Microsecond

// joiningJob returns the next function of one group (commitGroup): a write
// waiting to run; else, while authorisations are being verified (their
// writes on the way), the first write to arrive within Server.commitWait
// of the first such wait of the group; else nil. A group's commit is
// shared by all its writes (its begin and commit, the payee's and
// devices' pages written once), so a commit delayed that little for a
// write about to arrive costs less CPU than two commits, as PostgreSQL's
// commit_delay with commit_siblings. A write alone, with no authorisation on the way,
// commits at once. The timer belongs to the writer and is stopped when
// the group ends.
func (s *Server) joiningJob(t *time.Timer) func() *writeJob {
	started, over := false, false
	return func() *writeJob {
		if j := s.waitingJob(); j != nil {
			return j
		}
		if over || s.authorising.Load() == 0 {
			return nil
		}
		if !started {
			started = true
			t.Reset(s.commitWait)
		}
		select {
		case j := <-s.jobs:
			return j
		case <-t.C:
		case <-s.closing:
		}
		over = true
		return nil
	}
}

// commitGroup runs first in a transaction, then each write next returns
// until it returns nil or maxGroup ran, each of those in a savepoint that
// its error rolls back, and commits. It returns the writes it ran and each
// one's error: a failed begin or commit (or a panic) fails them all, and
// then none of their changes is stored. A failing first write rolls the
// transaction back at once and ends the group (no savepoint needed: it is
// alone in it).
func (s *Server) commitGroup(first *writeJob, next func() *writeJob) (group []*writeJob, errs []error) {
	group, errs = []*writeJob{first}, []error{nil}
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = internal(err)
			}
		}
	}
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return group, errs
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			fail(fmt.Errorf("backend: write panicked: %v", p))
		}
	}()
	if errs[0] = first.fn(first.ctx, tx); errs[0] != nil {
		tx.Rollback()
		return group, errs
	}
	var savepoint, rollbackTo, release *sql.Stmt
	for len(group) < maxGroup {
		j := next()
		if j == nil {
			break
		}
		if savepoint == nil {
			savepoint, rollbackTo, release = tx.StmtContext(ctx, s.stmts.savepoint), tx.StmtContext(ctx, s.stmts.rollbackTo), tx.StmtContext(ctx, s.stmts.release)
		}
		group, errs = append(group, j), append(errs, nil)
		if _, err := savepoint.ExecContext(ctx); err != nil {
			tx.Rollback()
			fail(err)
			return group, errs
		}
		if errs[len(errs)-1] = j.fn(j.ctx, tx); errs[len(errs)-1] != nil {
			if _, err := rollbackTo.ExecContext(ctx); err != nil {
				tx.Rollback()
				fail(err)
				return group, errs
			}
		}
		if _, err := release.ExecContext(ctx); err != nil {
			tx.Rollback()
			fail(err)
			return group, errs
		}
	}
	if s.failCommit != nil {
		if err := s.failCommit(len(group)); err != nil {
			tx.Rollback()
			fail(err)
			return group, errs
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
	return group, errs
}

// apiErr is an answer other than 2xx.
type apiErr struct {
	status int
	body   ErrorBody
	// cause is the error behind an internal one, for errors.Is and As.
	cause error
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

func (e *apiErr) Unwrap() error { return e.cause }

func internal(err error) *apiErr {
	e := newErr(http.StatusInternalServerError, CodeInternal, "%v", err)
	e.cause = err
	return e
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
