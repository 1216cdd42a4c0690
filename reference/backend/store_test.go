package backend

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spdlab/spdlab/reference/backend/pgtest"
)

// The backend's tests run on the engine -store names: SQLite (the
// default), or PostgreSQL on a private server the tests start (pgtest):
//
//	go test ./reference/backend/ -args -store=postgres
//
// Tests of one engine's own behaviour run with that engine's -store: an
// SQLite file's damage with sqlite, a PostgreSQL database shared by
// several processes with postgres. Those of PostgreSQL skip when its
// binaries are missing, unless CI is set, then they fail.
var store = flag.String("store", "sqlite", "the engine the backend tests run on: sqlite, or postgres (a private server the tests start)")

// pg is the private PostgreSQL server, started by the first test that
// needs it and stopped by TestMain.
var pg struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
}

// pgServer returns the private server, starting it the first time.
func pgServer(t testing.TB) *pgtest.Server {
	t.Helper()
	pg.once.Do(func() { pg.srv, pg.err = pgtest.Start() })
	if pg.err != nil {
		if errors.Is(pg.err, pgtest.ErrNoServer) && !pgtest.Required() {
			t.Skipf("PostgreSQL tests skipped: %v", pg.err)
		}
		t.Fatal(pg.err)
	}
	return pg.srv
}

func stopPG() {
	if pg.srv != nil {
		pg.srv.Stop()
	}
}

// testDB returns a new database of the engine under test: an SQLite file
// path that does not exist yet, or the URL of an empty PostgreSQL database.
func testDB(t testing.TB) string {
	t.Helper()
	switch *store {
	case "sqlite":
		return filepath.Join(t.TempDir(), "backend.db")
	case "postgres":
		return newPGDatabase(t)
	}
	t.Fatalf("-store=%s: want sqlite or postgres", *store)
	return ""
}

// labDB returns a new database for a lab (newLab): an SQLite file path
// that does not exist yet, or, on PostgreSQL, the URL of a new copy of a
// database the backend's migrations were applied to once (migratedPG).
// Open finds it at the backend's schema, with no signing key yet and no
// data, as it leaves a database it initialised before making the key.
// Tests of initialising and migrating an empty database take testDB.
func labDB(t testing.TB) string {
	t.Helper()
	if *store != "postgres" {
		return testDB(t)
	}
	srv := pgServer(t)
	pgMigrated.once.Do(func() { pgMigrated.url, pgMigrated.err = migratedPG(srv) })
	if pgMigrated.err != nil {
		t.Fatal(pgMigrated.err)
	}
	u, err := srv.CopyDatabase(context.Background(), pgMigrated.url)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// pgMigrated is the database labDB copies on PostgreSQL.
var pgMigrated struct {
	once sync.Once
	url  string
	err  error
}

// migratedPG makes a new PostgreSQL database and applies the backend's
// migrations to it, as Open does (at newLab's clock time), then lets go
// of it. CREATE DATABASE copies it for each lab: on PostgreSQL, migrating
// an empty database took about half of the server's CPU time of a lab's
// Open, and each test opens a lab or more.
func migratedPG(srv *pgtest.Server) (string, error) {
	ctx := context.Background()
	u, err := srv.NewDatabase(ctx)
	if err != nil {
		return "", err
	}
	eng := &postgresEngine{url: u}
	db, _, err := eng.open(Config{PostgresURL: u, Initialise: true})
	if err != nil {
		return "", err
	}
	err = migrate(ctx, db, eng, labStart.Unix())
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return u, err
}

// newPGDatabase returns the URL of a new, empty PostgreSQL database.
func newPGDatabase(t testing.TB) string {
	t.Helper()
	u, err := pgServer(t).NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// dbConfig is a Config on database db (a path or a URL), allowed to
// initialise an empty PostgreSQL database.
func dbConfig(db string) Config {
	if IsPostgresURL(db) {
		return Config{PostgresURL: db, Initialise: true}
	}
	return Config{DBPath: db}
}

// openDB opens db (a path or a URL) directly, around the backend.
func openDB(t testing.TB, db string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if IsPostgresURL(db) {
		driver = "pgx"
	}
	h, err := sql.Open(driver, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// sqliteOnly skips a test of SQLite's own file when the tests run on
// another engine.
func sqliteOnly(t testing.TB) {
	if *store != "sqlite" {
		t.Skipf("a test of the SQLite engine's file; -store=%s", *store)
	}
}

// postgresOnly skips a test of the PostgreSQL engine unless the tests run
// on it.
func postgresOnly(t testing.TB) {
	if *store != "postgres" {
		t.Skipf("a test of the PostgreSQL engine: -store=postgres runs it (make test-backend-postgres)")
	}
}
