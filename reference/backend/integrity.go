package backend

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// The backend checks its database before it serves from it and while it
// does: a database that is empty or not the backend's is refused at Open
// (an issuer whose books vanished must not start over as an empty issuer),
// the engine's own structural check (SQLite's PRAGMA quick_check) and the
// schema version run at Open and by /healthz, and /healthz runs the audit,
// which recomputes every balance from the devices' signed records, so that
// a changed byte is reported.

// schemaMark is stored in meta and names a database as the backend's.
const schemaMark = "spdlab-backend-1"

// healthCheck caches the outcome of the checks /healthz runs, so that a
// stream of probes costs one check per healthEvery.
type healthCheck struct {
	mu       sync.Mutex
	at       time.Time
	problems []string
}

const healthEvery = 5 * time.Second

// health returns the problems found: the database unreadable, its
// structure damaged, its schema not this backend's, or the audit's
// discrepancies.
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
	} else if err := s.eng.check(ctx, s.rdb); err != nil {
		problems = append(problems, "database: "+err.Error())
	} else if _, err := schemaVersion(ctx, s.rdb, s.eng); err != nil {
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
