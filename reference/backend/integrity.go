package backend

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The backend checks its database before it serves from it and while it
// does: a file that is empty or not the backend's is refused at Open (an
// issuer whose books vanished must not start over as an empty issuer), the
// SQLite structure is checked (PRAGMA quick_check) at Open and by
// /healthz, and /healthz runs the audit, which recomputes every balance
// from the devices' signed records, so that a changed byte is reported.

// schemaMark is stored in meta and names a database as the backend's.
const schemaMark = "spdlab-backend-1"

// preflight looks at the database file before SQLite opens it and says
// whether it existed.
func preflight(path string, initialise bool) (bool, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("backend: database %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("backend: database %s is not a regular file", path)
	case fi.Size() == 0 && !initialise:
		return true, fmt.Errorf("backend: database %s is empty (0 bytes): refusing to start as a new issuer over it; restore it from a backup, or initialise it deliberately (Config.Initialise, spdlab backend --init)", path)
	}
	return true, nil
}

// checkDatabase checks an opened database: SQLite's own structure, and
// that an existing file is the backend's (or empty, with initialise).
func checkDatabase(db *sql.DB, path string, existed, initialise bool) error {
	if err := quickCheck(context.Background(), db); err != nil {
		return fmt.Errorf("backend: database %s: %w; refusing to serve from it: restore it from a backup", path, err)
	}
	if !existed {
		return nil
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
		// backend's tables; migrate marks it.
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN ('meta', 'devices', 'records')`).Scan(&n); err == nil && n == 3 {
			return nil
		}
	}
	return fmt.Errorf("backend: database %s is not the backend's (no %q mark in its meta table); refusing to use another program's file", path, schemaMark)
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

// healthCheck caches the outcome of the checks /healthz runs, so that a
// stream of probes costs one check per healthEvery.
type healthCheck struct {
	mu       sync.Mutex
	at       time.Time
	problems []string
}

const healthEvery = 5 * time.Second

// health returns the problems found: the database unreadable, SQLite's
// structure damaged, or the audit's discrepancies.
func (s *Server) health(ctx context.Context) []string {
	s.hc.mu.Lock()
	defer s.hc.mu.Unlock()
	now := time.Now()
	if !s.hc.at.IsZero() && now.Sub(s.hc.at) < healthEvery && now.After(s.hc.at) {
		return s.hc.problems
	}
	var problems []string
	if err := s.rdb.PingContext(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("database: %v", err))
	} else if err := quickCheck(ctx, s.rdb); err != nil {
		problems = append(problems, "database: "+err.Error())
	} else if a, err := s.Audit(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("audit: %v", err))
	} else if n := len(a.Discrepancies); n > 0 {
		problems = append(problems, fmt.Sprintf("audit: %d discrepancies in the stored books (GET /v1/audit names them)", n))
	}
	if ctx.Err() != nil {
		return problems // not cached: the probe went away
	}
	s.hc.at, s.hc.problems = now, problems
	return problems
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if p := s.health(r.Context()); len(p) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, Health{Status: "damaged", Problems: p})
		return
	}
	writeJSON(w, http.StatusOK, Health{Status: "serving"})
}
