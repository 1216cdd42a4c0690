package backend

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// sqliteEngine keeps the books in one SQLite file through modernc.org/sqlite,
// in WAL mode: one writing connection (writes are serialised and
// group-committed by Server.write), a pool of query_only readers, and a
// checkpointer on a connection of its own.
type sqliteEngine struct {
	path    string
	cdb     *sql.DB // the checkpointer's
	closing chan struct{}
	done    chan struct{}
	// walRestart is the size of the WAL, in frames, past which the writer
	// finishes a checkpoint (walRestartFrames; tests lower it). finishDue
	// is the checkpointer's request to, taken by finishCheckpoint.
	walRestart int
	finishDue  atomic.Bool
}

//go:embed migrations/sqlite/*.sql
var sqliteMigrations embed.FS

func (e *sqliteEngine) migrations() fs.FS {
	sub, _ := fs.Sub(sqliteMigrations, "migrations/sqlite")
	return sub
}

func (e *sqliteEngine) open(cfg Config) (wdb, rdb *sql.DB, err error) {
	sync := "NORMAL"
	if cfg.SyncFull {
		sync = "FULL"
	}
	dsn := func(extra string) string {
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+sync+")")
		q.Add("_pragma", "busy_timeout(10000)")
		if extra != "" {
			q.Add("_pragma", extra)
		}
		return "file:" + e.path + "?" + q.Encode()
	}
	existed, blank, err := preflight(e.path, cfg.Initialise)
	if err != nil {
		return nil, nil, err
	}
	if existed {
		// Checked on a plain connection first: the backend's own turn a
		// file to WAL mode, which would change a file it then refuses.
		chk, err := sql.Open("sqlite", "file:"+e.path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, nil, fmt.Errorf("backend: open %s: %w", e.path, err)
		}
		err = checkSQLiteFile(chk, e.path, cfg.Initialise)
		chk.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	if blank {
		if err := createSQLiteFile(e.path); err != nil {
			return nil, nil, err
		}
	}
	if wdb, err = sql.Open("sqlite", dsn("wal_autocheckpoint(0)")); err != nil {
		return nil, nil, fmt.Errorf("backend: open %s: %w", e.path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := e.adoptUnversioned(wdb, cfg.Now().Unix()); err != nil {
		wdb.Close()
		return nil, nil, err
	}
	if rdb, err = sql.Open("sqlite", dsn("query_only(1)")); err != nil {
		wdb.Close()
		return nil, nil, fmt.Errorf("backend: open %s: %w", e.path, err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)
	if e.cdb, err = sql.Open("sqlite", dsn("")); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, nil, fmt.Errorf("backend: open %s: %w", e.path, err)
	}
	e.cdb.SetMaxOpenConns(1)
	e.closing, e.done = make(chan struct{}), make(chan struct{})
	go e.checkpointer()
	return wdb, rdb, nil
}

// pageSize is the page size of a database file the backend creates: half
// SQLite's default of 4096 bytes. A commit writes each page it changed to
// the WAL whole (an authorisation about 3.3 pages), and each second the
// checkpoint syncs all the WAL gathered, stalling some commits while it
// runs (the file system's journal waits for the file's data); smaller
// pages mean less to write and to sync. BenchmarkAuthorise, eight pairs of
// runs of a build of each size interleaved on the 2-core lab machine
// (-benchtime 2s, 8 clients): the p99 was lower at 2048 in all eight, a
// median of 3.07 ms against 3.39 ms (0.91x), with 0.6x the WAL's bytes;
// BenchmarkSettle was the same (19,331 and 20,520 records/s against 20,002
// and 20,231). A record (some 700 bytes) still fits a page.
const pageSize = 2048

// createSQLiteFile makes a new database file (or initialises an empty one)
// with pageSize pages, in WAL mode. SQLite fixes the page size when it
// first writes the file and keeps it in WAL mode, so it is set on a plain
// connection before the file enters WAL mode: the backend's own
// connections enter it as they open. An existing database keeps its page
// size.
func createSQLiteFile(path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("backend: create %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, pragma := range []string{fmt.Sprintf("PRAGMA page_size=%d", pageSize), "PRAGMA journal_mode=WAL"} {
		if _, err := db.Exec(pragma); err != nil {
			return fmt.Errorf("backend: create %s: %s: %w", path, pragma, err)
		}
	}
	return nil
}

// checkpointer copies the WAL back into the database file every
// checkpointEvery, on its own connection. The writing connection does not
// checkpoint in its commits (wal_autocheckpoint=0): a checkpoint syncs the
// database file, and doing it inside a commit would stall every write
// queued behind it. PASSIVE never waits for readers or the writer.
func (e *sqliteEngine) checkpointer() {
	defer close(e.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-e.closing:
			return
		case <-t.C:
			e.checkpoint()
		}
	}
}

// checkpoint runs a PASSIVE checkpoint on the checkpointer's connection.
// When the WAL has grown past walRestartFrames it runs a second one, which
// copies what was committed while the first ran, and asks the writer to
// finish the checkpoint (finishCheckpoint).
func (e *sqliteEngine) checkpoint() {
	for range 2 {
		var busy, frames, copied int
		if err := e.cdb.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil || frames <= e.walRestart {
			return
		}
	}
	e.finishDue.Store(true)
}

// walRestartFrames is the size of the WAL, in frames (pages), past which
// the writer finishes a checkpoint so that the WAL starts over: 128 MiB of
// pageSize pages (256 MiB in a database made with 4 KiB pages), some
// 18,000 to 20,000 authorisations (2.9 to 3.7 frames each from 8 clients
// since records are kept in arrival order, migration 0006), a few seconds
// of them at full speed on the lab machine. The WAL file keeps the
// largest size it reached; the writer pays the finishing checkpoint (22
// to 38 ms at a load average of 16) that rarely.
const walRestartFrames = 65536

// finishCheckpoint is called by the single writer between two groups, on
// the writing connection. When the checkpointer asked, it runs one more
// PASSIVE checkpoint there, which copies the frames committed since the
// checkpointer's; no write can come between it and the writer's next
// transaction, which therefore finds the whole WAL in the database file
// and starts the WAL over from its beginning. It costs the writer that
// copy and the two syncs of a checkpoint (WAL, database file), once per
// walRestartFrames written.
//
// Without it the WAL never starts over while writes keep coming: each
// transaction begins before the checkpoint that runs beside it ends, so
// it finds frames not yet copied and appends to the WAL, which grows for
// as long as the load lasts (210 MB in 12000 authorisations of
// BenchmarkAuthorise), each commit writing past the end of the file.
func (e *sqliteEngine) finishCheckpoint(ctx context.Context, wdb *sql.DB) {
	if e.finishDue.CompareAndSwap(true, false) {
		wdb.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

const checkpointEvery = time.Second

func (e *sqliteEngine) close() {
	if e.closing != nil {
		close(e.closing)
		<-e.done
		e.closing = nil
	}
	if e.cdb != nil {
		e.cdb.Close()
	}
}

// The single writer makes every transaction serial: nothing to retry.
func (e *sqliteEngine) singleWriter() bool         { return true }
func (e *sqliteEngine) writeTx() *sql.TxOptions    { return nil }
func (e *sqliteEngine) retryable(error) bool       { return false }
func (e *sqliteEngine) snapshotTx() *sql.TxOptions { return nil }

// lockMigrations: the one writing connection already serialises them in
// the process, and each runs in a transaction SQLite serialises between
// processes.
func (e *sqliteEngine) lockMigrations(context.Context, *sql.Conn) (func(), error) {
	return func() {}, nil
}

func (e *sqliteEngine) check(ctx context.Context, db *sql.DB) error {
	return quickCheck(ctx, db)
}

// preflight looks at the database file before SQLite opens it and says
// whether it existed, and whether it is blank: absent, or empty (0 bytes),
// which only initialise accepts.
func preflight(path string, initialise bool) (existed, blank bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, true, nil
	case err != nil:
		return false, false, fmt.Errorf("backend: database %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return false, false, fmt.Errorf("backend: database %s is not a regular file", path)
	case fi.Size() == 0 && !initialise:
		return true, true, fmt.Errorf("backend: database %s is empty (0 bytes): refusing to start as a new issuer over it; restore it from a backup, or initialise it deliberately (Config.Initialise, spdlab backend --init)", path)
	}
	return true, fi.Size() == 0, nil
}

// checkSQLiteFile checks an existing database file: SQLite's own
// structure, and that it is the backend's (or empty, with initialise).
func checkSQLiteFile(db *sql.DB, path string, initialise bool) error {
	if err := quickCheck(context.Background(), db); err != nil {
		return fmt.Errorf("backend: database %s: %w; refusing to serve from it: restore it from a backup", path, err)
	}
	var tables int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type='table'`).Scan(&tables); err != nil {
		return fmt.Errorf("backend: database %s is not an SQLite database the backend can read: %w", path, err)
	}
	if tables == 0 {
		if initialise {
			return nil
		}
		return fmt.Errorf("backend: database %s holds no tables: refusing to start as a new issuer over it; initialise it deliberately (Config.Initialise, spdlab backend --init)", path)
	}
	var mark string
	err := db.QueryRow(`SELECT CAST(v AS TEXT) FROM meta WHERE k='schema'`).Scan(&mark)
	switch {
	case err == nil && mark == schemaMark:
		return nil
	case err == nil:
		return fmt.Errorf("backend: database %s is of schema %q, not %q", path, mark, schemaMark)
	case errors.Is(err, sql.ErrNoRows):
		// A database of the backend from before the mark: it has the
		// backend's tables; adoptUnversioned marks it.
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN ('meta', 'devices', 'records')`).Scan(&n); err == nil && n == 3 {
			return nil
		}
	}
	return fmt.Errorf("backend: database %s is not the backend's (no %q mark in its meta table); refusing to use another program's file", path, schemaMark)
}

// adoptUnversioned brings a database made before versioned migrations
// (the backend's tables, no schema_migrations) to migration 0001, as the
// backend of that time did on each Open: the tables of 0001 it lacks, the
// columns added since, the indexes, then the mark; 0001 is recorded as
// applied. Such a file only exists for SQLite.
func (e *sqliteEngine) adoptUnversioned(db *sql.DB, now int64) error {
	var books, versioned bool
	if err := db.QueryRow(`SELECT EXISTS(SELECT 1 FROM sqlite_schema WHERE type='table' AND name='devices'),
		EXISTS(SELECT 1 FROM sqlite_schema WHERE type='table' AND name='schema_migrations')`).Scan(&books, &versioned); err != nil {
		return fmt.Errorf("backend: schema: %w", err)
	}
	if !books || versioned {
		return nil // new, or already versioned
	}
	ms, err := migrationsOf(e.migrations())
	if err != nil {
		return err
	}
	var tables, indexes []string
	for _, st := range strings.Split(ms[0].sql, ";\n") {
		if i := strings.Index(st, "CREATE TABLE "); i >= 0 {
			tables = append(tables, "CREATE TABLE IF NOT EXISTS "+st[i+len("CREATE TABLE "):])
		} else if i := strings.Index(st, "CREATE INDEX "); i >= 0 {
			indexes = append(indexes, "CREATE INDEX IF NOT EXISTS "+st[i+len("CREATE INDEX "):])
		}
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("backend: adopt schema: %w", err)
	}
	defer tx.Rollback()
	for _, q := range tables {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("backend: adopt schema: %w", err)
		}
	}
	// A device's initial value is what was issued less its queued top-ups.
	for _, c := range []struct{ table, column, add, fill string }{
		{"devices", "initial", "ALTER TABLE devices ADD COLUMN initial INTEGER NOT NULL DEFAULT 0",
			"UPDATE devices SET initial = issued - coalesce((SELECT sum(json_extract(p.body, '$.top_up')) FROM params p WHERE p.device_id = devices.id), 0)"},
		{"otps", "tries", "ALTER TABLE otps ADD COLUMN tries INTEGER NOT NULL DEFAULT 0", "UPDATE otps SET tries = tries_left"},
		{"otps", "created_at", "ALTER TABLE otps ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0", ""},
		{"offline_transfers", "in_held", "ALTER TABLE offline_transfers ADD COLUMN in_held INTEGER NOT NULL DEFAULT 0", ""},
		{"offline_transfers", "in_atc", "ALTER TABLE offline_transfers ADD COLUMN in_atc INTEGER NOT NULL DEFAULT 0", ""},
	} {
		var n int
		if err := tx.QueryRow(`SELECT count(*) FROM pragma_table_info($1) WHERE name=$2`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("backend: schema: %w", err)
		}
		if n > 0 {
			continue
		}
		for _, q := range []string{c.add, c.fill} {
			if q == "" {
				continue
			}
			if _, err := tx.Exec(q); err != nil {
				return fmt.Errorf("backend: migrate %s.%s: %w", c.table, c.column, err)
			}
		}
	}
	for _, q := range indexes {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("backend: adopt schema: %w", err)
		}
	}
	if _, err := tx.Exec(`INSERT INTO meta(k, v) VALUES('schema', CAST($1 AS BLOB)) ON CONFLICT DO NOTHING`, schemaMark); err != nil {
		return fmt.Errorf("backend: adopt schema: %w", err)
	}
	if _, err := tx.Exec(schemaMigrations); err != nil {
		return fmt.Errorf("backend: adopt schema: %w", err)
	}
	if _, err := tx.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES(1, $1, $2)`, ms[0].name, now); err != nil {
		return fmt.Errorf("backend: adopt schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backend: adopt schema: %w", err)
	}
	return nil
}

// quickCheck runs PRAGMA quick_check: SQLite's check of its pages,
// indexes and constraints.
func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(20)`)
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check failed: %s", strings.Join(problems, "; "))
	}
	return nil
}
