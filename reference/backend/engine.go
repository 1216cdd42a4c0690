package backend

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// engine is a database engine the backend keeps its books in: SQLite
// (sqlite.go, the embedded default) or PostgreSQL (postgres.go, the store
// several backend processes share). The rest of the package is written
// once for both: standard SQL with $n placeholders, run through
// database/sql.
type engine interface {
	// open connects to the database: wdb takes the writes, rdb the reads
	// (one pool for both when the engine takes concurrent writers). It
	// refuses a database that is not the backend's, or that is empty
	// without cfg.Initialise.
	open(cfg Config) (wdb, rdb *sql.DB, err error)
	// migrations are the engine's numbered schema files (see migrate).
	migrations() fs.FS
	// lockMigrations serialises migrations between processes on conn,
	// until the returned unlock.
	lockMigrations(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// check is the engine's own check of the database's structure, run
	// at Open and by /healthz.
	check(ctx context.Context, db *sql.DB) error
	// singleWriter says that writes go through one connection, serialised
	// and group-committed in the process (SQLite); otherwise each write is
	// a transaction of its own, at writeTx's isolation, run again when
	// retryable says so (PostgreSQL).
	singleWriter() bool
	writeTx() *sql.TxOptions
	retryable(err error) bool
	// snapshotTx are the options of a read transaction that sees one
	// consistent snapshot of the books (the audit's).
	snapshotTx() *sql.TxOptions
	// close stops the engine's background work.
	close()
}

// migration is one numbered schema file: NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationsOf reads an engine's numbered files, in order. Numbers start
// at 1 and leave no gap.
func migrationsOf(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("backend: migrations: %w", err)
	}
	var ms []migration
	for _, n := range names {
		num, rest, ok := strings.Cut(n, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 {
			return nil, fmt.Errorf("backend: migration %s is not named NNNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("backend: migration %s: %w", n, err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(rest, path.Ext(rest)), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("backend: migration %04d_%s: expected number %04d", m.version, m.name, i+1)
		}
	}
	return ms, nil
}

// schemaMigrations lists the migrations a database has had, one row each.
const schemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations(
	version INTEGER PRIMARY KEY,
	name TEXT NOT NULL,
	applied_at INTEGER NOT NULL
)`

// migrate brings the database to the newest schema: each migration the
// schema_migrations table does not list runs in a transaction of its own,
// which also records it, under the engine's migration lock so that
// backends starting together apply each one once. A database with a
// migration this backend does not know is refused: it was made by a newer
// backend, and serving from it could lose what the newer one keeps.
func migrate(ctx context.Context, db *sql.DB, eng engine, now int64) error {
	ms, err := migrationsOf(eng.migrations())
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("backend: migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := eng.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("backend: migrate: %w", err)
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, schemaMigrations); err != nil {
		return fmt.Errorf("backend: migrate: %w", err)
	}
	var newest int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("backend: migrate: %w", err)
	}
	if newest > len(ms) {
		return fmt.Errorf("backend: the database is at schema version %d, newer than this backend's %d: refusing to serve from it; run a backend of its version", newest, len(ms))
	}
	for _, m := range ms[newest:] {
		if err := applyMigration(ctx, conn, m, now); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration, now int64) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("backend: migration %04d_%s: %w", m.version, m.name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("backend: migration %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES($1, $2, $3)`, m.version, m.name, now); err != nil {
		return fmt.Errorf("backend: migration %04d_%s: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("backend: migration %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

// schemaVersion checks that the database has had every migration this
// backend knows (a restore of an older backup, or a rolled back schema,
// would fail here) and returns the newest.
func schemaVersion(ctx context.Context, db *sql.DB, eng engine) (int, error) {
	ms, err := migrationsOf(eng.migrations())
	if err != nil {
		return 0, err
	}
	var n, newest int
	if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(max(version), 0) FROM schema_migrations`).Scan(&n, &newest); err != nil {
		return 0, fmt.Errorf("schema_migrations: %w", err)
	}
	if n != len(ms) || newest != len(ms) {
		return newest, fmt.Errorf("schema_migrations lists %d migrations up to %d, the backend has %d", n, newest, len(ms))
	}
	return newest, nil
}
