package backend

import (
	"database/sql"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRefusesEmptyOrForeignFiles(t *testing.T) {
	sqliteOnly(t)
	dir := t.TempDir()
	open := func(path string, init bool) (*Server, error) {
		return Open(Config{DBPath: path, IssuerToken: testIssuerToken, Initialise: init})
	}
	// Zero bytes: refused unless initialising.
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if s, err := open(empty, false); err == nil {
		s.Close()
		t.Fatal("a zero-byte database opened as a new issuer")
	} else if !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), "--init") {
		t.Fatalf("zero bytes: %v", err)
	}
	s, err := open(empty, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Once initialised it is the backend's and opens without the flag.
	if s, err = open(empty, false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Another program's SQLite file, and a file that is not SQLite:
	// refused, initialising or not, and left as they were.
	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE accounts(id INTEGER, balance INTEGER); INSERT INTO accounts VALUES(1, 5)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	text := filepath.Join(dir, "notes.db")
	os.WriteFile(text, []byte(strings.Repeat("not a database\n", 500)), 0o600)
	for _, p := range []string{foreign, text} {
		before, _ := os.ReadFile(p)
		for _, init := range []bool{false, true} {
			if s, err := open(p, init); err == nil {
				s.Close()
				t.Fatalf("%s (initialise %v) opened", filepath.Base(p), init)
			} else if !strings.HasPrefix(err.Error(), "backend: ") {
				t.Fatalf("%s: %v", p, err)
			}
		}
		if after, _ := os.ReadFile(p); string(after) != string(before) {
			t.Fatalf("%s was changed", filepath.Base(p))
		}
	}
}

// populated makes a closed backend database with devices and records.
func populated(t *testing.T) string {
	t.Helper()
	l := newLab(t, nil)
	for i := range 20 {
		d := newSimDevice(t, "dev"+string(rune('a'+i)))
		l.register(d, 100000, "+1")
		var recs [][]byte
		for range 20 {
			recs = append(recs, d.record(10, "", l.clock.Now()))
		}
		if _, err := l.c.Settle(bg, SettlementBatch{Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	l.audit()
	l.http.Close()
	if err := l.srv.Close(); err != nil {
		t.Fatal(err)
	}
	return l.db
}

func health(t *testing.T, s *Server) (int, Health) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var h Health
	if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	return rec.Code, h
}

// TestFlippedBytesAreFound: 200 bytes flipped across the file's pages are
// found at Open or by /healthz, never served as healthy.
func TestFlippedBytesAreFound(t *testing.T) {
	sqliteOnly(t)
	path := populated(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const skip = 4 * 4096 // past the header and the schema: the data pages
	if len(b) < 2*skip {
		t.Fatalf("database of %d bytes, want more pages", len(b))
	}
	for range 200 {
		i := skip + rng.IntN(len(b)-skip)
		b[i] ^= byte(1 + rng.IntN(255))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Config{DBPath: path, IssuerToken: testIssuerToken})
	if err != nil {
		if !strings.Contains(err.Error(), "integrity check") {
			t.Fatalf("refused, but not for its damage: %v", err)
		}
		return
	}
	defer s.Close()
	if code, h := health(t, s); code != 503 || h.Status != "damaged" {
		t.Fatalf("/healthz on a damaged database: %d %+v", code, h)
	}
}

// TestChangedBalanceIsFound: one balance changed in the file (as by one
// flipped byte) is reported by /healthz and named by the audit.
func TestChangedBalanceIsFound(t *testing.T) {
	path := populated(t)
	db := openDB(t, path)
	if _, err := db.Exec(`UPDATE devices SET balance = balance + 1 WHERE id = $1`, devID("devc")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	cfg := dbConfig(path)
	cfg.IssuerToken = testIssuerToken
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, h := health(t, s)
	if code != 503 || h.Status != "damaged" || len(h.Problems) == 0 || !strings.Contains(h.Problems[0], "discrepanc") {
		t.Fatalf("/healthz after a balance changed: %d %+v", code, h)
	}
	a, err := s.Audit(bg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Conserved || len(a.Discrepancies) == 0 || a.Discrepancies[0].DeviceID != devID("devc") {
		t.Fatalf("audit: %+v", a)
	}
}

// A database file the backend creates, or an empty one it initialises, has
// pages of pageSize bytes; an existing one keeps its own.
func TestNewDatabasePageSize(t *testing.T) {
	sqliteOnly(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.db")
	db, err := sql.Open("sqlite", existing)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA page_size=4096", "PRAGMA journal_mode=WAL"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	for path, want := range map[string]int{filepath.Join(dir, "new.db"): pageSize, empty: pageSize, existing: 4096} {
		s, err := Open(Config{DBPath: path, IssuerToken: testIssuerToken, Initialise: true})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		err = s.rdb.QueryRow("PRAGMA page_size").Scan(&got)
		s.Close()
		if err != nil || got != want {
			t.Errorf("%s: page size %d (%v), want %d", filepath.Base(path), got, err, want)
		}
	}
}
