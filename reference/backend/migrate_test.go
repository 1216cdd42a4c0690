package backend

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// Every engine has the same numbered migrations: a schema change is made
// for both, and a database of either engine at version N has the same
// tables and columns (an engine may rebuild a table, as SQLite's 0006
// does, where the other needs nothing).
func TestMigrationsOfEveryEngine(t *testing.T) {
	sq, err := migrationsOf((&sqliteEngine{}).migrations())
	if err != nil {
		t.Fatal(err)
	}
	pg, err := migrationsOf((&postgresEngine{}).migrations())
	if err != nil {
		t.Fatal(err)
	}
	if len(sq) == 0 || len(sq) != len(pg) {
		t.Fatalf("SQLite has %d migrations, PostgreSQL %d", len(sq), len(pg))
	}
	sqTables, pgTables := map[string][]string{}, map[string][]string{}
	for i := range sq {
		if sq[i].version != pg[i].version || sq[i].name != pg[i].name {
			t.Errorf("migration %d: SQLite %04d_%s, PostgreSQL %04d_%s", i, sq[i].version, sq[i].name, pg[i].version, pg[i].name)
		}
		applyTables(sqTables, sq[i].sql)
		applyTables(pgTables, pg[i].sql)
		if a, b := tablesString(sqTables), tablesString(pgTables); a != b {
			t.Errorf("after migration %04d_%s: SQLite has %s\nPostgreSQL has %s", sq[i].version, sq[i].name, a, b)
		}
	}
}

// The statements of a migration that change tables and columns.
var (
	createTable = regexp.MustCompile(`(?s)^CREATE TABLE (\w+)\((.*?)\)[^(]*?$`)
	addColumn   = regexp.MustCompile(`^ALTER TABLE (\w+) ADD COLUMN (\w+)`)
	renameTable = regexp.MustCompile(`^ALTER TABLE (\w+) RENAME TO (\w+)$`)
	dropTable   = regexp.MustCompile(`^DROP TABLE (?:IF EXISTS )?(\w+)$`)
	sqlComment  = regexp.MustCompile(`(?m)^--.*$`)
)

// applyTables applies to tables (name to columns) the tables and columns
// a migration creates, adds, renames and drops.
func applyTables(tables map[string][]string, script string) {
	for _, st := range strings.Split(sqlComment.ReplaceAllString(script, ""), ";") {
		st = strings.TrimSpace(st)
		if m := createTable.FindStringSubmatch(st); m != nil {
			var cols []string
			for _, line := range strings.Split(m[2], ",\n") {
				f := strings.Fields(line)
				if len(f) > 0 && f[0] != "PRIMARY" {
					cols = append(cols, f[0])
				}
			}
			tables[m[1]] = cols
		} else if m := addColumn.FindStringSubmatch(st); m != nil {
			tables[m[1]] = append(tables[m[1]], m[2])
		} else if m := renameTable.FindStringSubmatch(st); m != nil {
			tables[m[2]] = tables[m[1]]
			delete(tables, m[1])
		} else if m := dropTable.FindStringSubmatch(st); m != nil {
			delete(tables, m[1])
		}
	}
}

func tablesString(tables map[string][]string) string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		out = append(out, name+"("+strings.Join(tables[name], ",")+")")
	}
	return strings.Join(out, " ")
}

func TestMigrationsNamed(t *testing.T) {
	for _, names := range [][]string{{"0001_a.sql", "0003_c.sql"}, {"1_a.sql"}, {"0001a.sql"}, {"0002_b.sql"}} {
		fsys := fstestFS(names)
		if ms, err := migrationsOf(fsys); err == nil {
			t.Errorf("%v: accepted as %v", names, ms)
		}
	}
	ms, err := migrationsOf(fstestFS([]string{"0002_b.sql", "0001_a.sql"}))
	if err != nil || len(ms) != 2 || ms[0].name != "a" || ms[1].version != 2 {
		t.Errorf("migrations %v, %v", ms, err)
	}
}

func schemaRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var n string
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s@%d", n, v))
	}
	return out
}

// A new database gets every migration, recorded once; opening it again
// applies none.
func TestMigrateOnce(t *testing.T) {
	l := newLabOn(t, testDB(t), nil)
	ms, _ := migrationsOf(l.srv.eng.migrations())
	first := schemaRows(t, l.srv.rdb)
	if len(first) != len(ms) {
		t.Fatalf("schema_migrations %v, want %d rows", first, len(ms))
	}
	s, err := Open(l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if again := schemaRows(t, s.rdb); strings.Join(again, " ") != strings.Join(first, " ") {
		t.Errorf("schema_migrations %v after reopening, was %v", again, first)
	}
}

// A database a newer backend migrated is refused: this one does not know
// what the newer one keeps.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	l := newLab(t, nil)
	if _, err := l.srv.wdb.Exec(`INSERT INTO schema_migrations(version, name, applied_at) VALUES(999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	l.http.Close()
	l.srv.Close()
	_, err := Open(l.cfg)
	if err == nil || !strings.Contains(err.Error(), "schema version 999, newer") {
		t.Fatalf("Open of a database at version 999: %v", err)
	}
}

// /healthz reports a database whose schema lost a migration (an old
// backup restored under a newer schema_migrations, a table dropped).
func TestHealthSchemaVersion(t *testing.T) {
	l := newLab(t, nil)
	if p := l.srv.health(context.Background()); len(p) != 0 {
		t.Fatalf("healthy database reported %v", p)
	}
	if _, err := l.srv.wdb.Exec(`DELETE FROM schema_migrations WHERE version=1`); err != nil {
		t.Fatal(err)
	}
	l.srv.hc.at = l.srv.hc.at.AddDate(-1, 0, 0)
	p := l.srv.health(context.Background())
	if len(p) != 1 || !strings.Contains(p[0], "schema_migrations lists ") || !strings.Contains(p[0], "migrations up to") {
		t.Fatalf("health after losing migration 1: %v", p)
	}
}

// An SQLite database made before versioned migrations (the tables of 0001
// less the columns added since, no mark, no schema_migrations) is adopted:
// the columns are added, the initial values recomputed, the indexes made,
// and it is recorded at version 1.
func TestAdoptUnversionedSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := migrationsOf((&sqliteEngine{}).migrations())
	old := ms[0].sql
	for _, col := range []string{`\tinitial INTEGER NOT NULL,\n`, `\ttries INTEGER NOT NULL DEFAULT 0,\n`,
		`\tcreated_at INTEGER NOT NULL DEFAULT 0\n`, `\tin_held INTEGER NOT NULL DEFAULT 0,\n`, `\tin_atc INTEGER NOT NULL DEFAULT 0,\n`} {
		if !regexp.MustCompile(col).MatchString(old) {
			t.Fatalf("0001 has no column %q", col)
		}
		old = regexp.MustCompile(col).ReplaceAllString(old, "")
	}
	old = strings.Replace(old, "\tused INTEGER NOT NULL,\n)", "\tused INTEGER NOT NULL\n)", 1)
	old = regexp.MustCompile(`CREATE INDEX otps_\w+ ON otps\(.*\);\n`).ReplaceAllString(old, "")
	old = old[:strings.Index(old, "INSERT INTO meta")]
	if _, err := db.Exec(old); err != nil {
		t.Fatalf("old schema: %v\n%s", err, old)
	}
	if _, err := db.Exec(`INSERT INTO devices(id, pubkey, account, currency, issued, balance, created_at) VALUES('d1', x'00', 'A', 978, 1500, 1500, 0);
		INSERT INTO params(device_id, counter, body, created_at) VALUES('d1', 1, CAST('{"top_up": 500}' AS BLOB), 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(Config{DBPath: path, IssuerToken: testIssuerToken})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var initial int64
	if err := s.rdb.QueryRow(`SELECT initial FROM devices WHERE id='d1'`).Scan(&initial); err != nil || initial != 1000 {
		t.Errorf("initial %d, %v; want 1500 issued less the 500 topped up", initial, err)
	}
	var idx int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type='index' AND name IN ('otps_device', 'otps_created')`).Scan(&idx); err != nil || idx != 2 {
		t.Errorf("%d of the otps indexes, %v", idx, err)
	}
	if got := schemaRows(t, s.rdb); len(got) != len(ms) || got[0] != "books@1" {
		t.Errorf("schema_migrations %v", got)
	}
	if _, err := schemaVersion(context.Background(), s.rdb, s.eng); err != nil {
		t.Error(err)
	}
}

// fstestFS is a directory of migration files with these names.
func fstestFS(names []string) fs.FS {
	m := fstest.MapFS{}
	for _, n := range names {
		m[n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
	}
	return m
}

// firstMigrations is the SQLite engine with only its first n migrations:
// a database as a backend of that schema version left it.
type firstMigrations struct {
	*sqliteEngine
	n int
}

func (e firstMigrations) migrations() fs.FS {
	ms, _ := migrationsOf(e.sqliteEngine.migrations())
	m := fstest.MapFS{}
	for _, mg := range ms[:e.n] {
		m[fmt.Sprintf("%04d_%s.sql", mg.version, mg.name)] = &fstest.MapFile{Data: []byte(mg.sql)}
	}
	return m
}

// 0006 moves SQLite's records into a rowid table in arrival order with a
// unique (device_id, atc) index: every record is kept as it was, and a
// second record of a (device, ATC) is still refused.
func TestMigrateRecordsInArrivalOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v5.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), db, firstMigrations{&sqliteEngine{}, 5}, 0); err != nil {
		t.Fatal(err)
	}
	const rec = `INSERT INTO records(device_id, atc, amount, currency, token, kind, mode, time, body_hash, state, account, channel, batch, at, result, raw)
		VALUES($1, $2, $3, 156, '', 1, 1, 100, $4, $5, 'A', 'qr', $6, $7, $8, $9)`
	for i := range 40 {
		dev := fmt.Sprintf("dev-%d", i%3)
		var result []byte
		if i%2 == 0 {
			result = []byte(fmt.Sprintf(`{"atc":%d}`, i))
		}
		if _, err := db.Exec(rec, dev, 40-i, 10+i, []byte{byte(i)}, 1+i%3, fmt.Sprint("b", i%4), 1000+i, result, []byte{0xA5, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	const all = `SELECT device_id, atc, amount, currency, token, kind, mode, time, hex(body_hash), state, account, channel, batch, at, coalesce(hex(result), 'NULL'), hex(raw) FROM records ORDER BY device_id, atc`
	before := recordRows(t, db, all)
	db.Close()
	s, err := Open(Config{DBPath: path, IssuerToken: testIssuerToken})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if after := recordRows(t, s.rdb, all); !slices.Equal(after, before) {
		t.Errorf("records after 0006:\n%s\nbefore:\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}
	var withoutRowid int
	if err := s.rdb.QueryRow(`SELECT wr FROM pragma_table_list WHERE name='records'`).Scan(&withoutRowid); err != nil || withoutRowid != 0 {
		t.Errorf("records WITHOUT ROWID %d, %v; want a rowid table", withoutRowid, err)
	}
	if _, err := s.wdb.Exec(rec, "dev-1", 39, 1, []byte{1}, 1, "", 0, nil, []byte{1}); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("a second record of (dev-1, 39): %v", err)
	}
	if got := schemaRows(t, s.rdb); len(got) < 6 || got[5] != "records_in_arrival_order@6" {
		t.Errorf("schema_migrations %v", got)
	}
}

func recordRows(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		v := make([]any, len(cols))
		p := make([]any, len(cols))
		for i := range v {
			p[i] = &v[i]
		}
		if err := rows.Scan(p...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no records")
	}
	return out
}
