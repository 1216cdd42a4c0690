package backend

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresEngine keeps the books in a PostgreSQL database through pgx,
// which several backend processes (one per machine, or several per
// machine) share. Each write is a SERIALIZABLE transaction of its own: the
// database runs the writes of every process as if one after the other, as
// the SQLite engine's single writer does, and aborts one that would break
// that (SQLSTATE 40001); Server.writeConcurrent runs it again. A commit is
// durable once PostgreSQL answers it (synchronous_commit on, its default),
// against a crash of a backend process or of the database server.
type postgresEngine struct {
	url string
}

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

func (e *postgresEngine) migrations() fs.FS {
	sub, _ := fs.Sub(postgresMigrations, "migrations/postgres")
	return sub
}

// postgresConns bounds the connections of one backend process.
const postgresConns = 16

func (e *postgresEngine) open(cfg Config) (wdb, rdb *sql.DB, err error) {
	pc, err := pgx.ParseConfig(e.url)
	if err != nil {
		return nil, nil, fmt.Errorf("backend: PostgreSQL URL: %w", err)
	}
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("backend: PostgreSQL %s: %w", RedactURL(e.url), err)
	}
	if err := e.checkBooks(ctx, db, cfg.Initialise); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, db, nil
}

// checkBooks refuses a database that is not the backend's: one with
// tables but no mark, or, without initialise, one with no tables at all
// (the books of an issuer are never silently started over).
func (e *postgresEngine) checkBooks(ctx context.Context, db *sql.DB, initialise bool) error {
	name := RedactURL(e.url)
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'`).Scan(&tables); err != nil {
		return fmt.Errorf("backend: PostgreSQL %s: %w", name, err)
	}
	if tables == 0 {
		if initialise {
			return nil
		}
		return fmt.Errorf("backend: PostgreSQL %s holds no tables: refusing to start as a new issuer over it; initialise it deliberately (Config.Initialise, spdlab backend --init)", name)
	}
	if err := e.check(ctx, db); err != nil {
		return fmt.Errorf("backend: PostgreSQL %s: %w; refusing to use another program's database", name, err)
	}
	return nil
}

// check reads the backend's mark: the database answers, and its books are
// the backend's.
func (e *postgresEngine) check(ctx context.Context, db *sql.DB) error {
	var mark string
	err := db.QueryRowContext(ctx, `SELECT convert_from(v, 'UTF8') FROM meta WHERE k='schema'`).Scan(&mark)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "42P01": // undefined_table
		return fmt.Errorf("not the backend's (no meta table)")
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("not the backend's (no %q mark in its meta table)", schemaMark)
	case err != nil:
		return fmt.Errorf("integrity check: %w", err)
	case mark != schemaMark:
		return fmt.Errorf("of schema %q, not %q", mark, schemaMark)
	}
	return nil
}

// migrationLock is the advisory lock key (per database) that backends
// starting together take while they migrate.
const migrationLock = 0x5350444C4142 // "SPDLAB"

func (e *postgresEngine) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	return func() { conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationLock)) }, nil
}

func (e *postgresEngine) singleWriter() bool { return false }

func (e *postgresEngine) writeTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelSerializable}
}

// retryable: a serialization failure or a deadlock, which PostgreSQL
// resolves by aborting one transaction that can run again.
func (e *postgresEngine) retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func (e *postgresEngine) snapshotTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}

func (e *postgresEngine) close() {}

// IsPostgresURL says whether a database name is a PostgreSQL URL
// (postgres:// or postgresql://) rather than an SQLite file.
func IsPostgresURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// RedactURL is a database URL fit for a log: its password replaced.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}
