package backend

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// Role is what a caller may do, decided by the credential it presents.
//
//	RoleNone      /healthz and /v1/keys only
//	RoleTerminal  the device side: authorisations, settlements, contact,
//	              one-time codes, transfers, registering the payment
//	              tokens a device generated, and reads of devices,
//	              tokens, transfers and the revocation list
//	RoleIssuer    everything: registration, parameter updates (top-ups),
//	              revocation and the audit, and all that a terminal may do
//
// Only the issuer's credential can create value (a registration's initial
// balance, a top-up) or take a device out of service; a terminal moves
// value only with records and consents signed by the devices' own keys.
type Role int

// Roles, weakest first.
const (
	RoleNone Role = iota
	RoleTerminal
	RoleIssuer
)

func (r Role) String() string {
	switch r {
	case RoleTerminal:
		return "terminal"
	case RoleIssuer:
		return "issuer"
	}
	return "none"
}

// MinTokenLen is the shortest credential the backend accepts: 128 bits in
// hex.
const MinTokenLen = 32

// NewToken returns a fresh random credential (32 hex digits, 128 bits).
func NewToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("backend: make token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ErrOpen is returned by Open for a configuration without an issuer
// credential that does not set Config.DevOpen.
var ErrOpen = errors.New("backend: no issuer credential (Config.IssuerToken); refusing to serve an open issuer host (Config.DevOpen is for development only)")

// checkCredentials validates the configured credentials.
func checkCredentials(cfg Config) error {
	if cfg.IssuerToken == "" && !cfg.DevOpen {
		return ErrOpen
	}
	for name, t := range map[string]string{"issuer token": cfg.IssuerToken, "terminal token": cfg.TerminalToken} {
		if t == "" {
			continue
		}
		if len(t) < MinTokenLen || !printable(t) || strings.ContainsAny(t, " \t") {
			return fmt.Errorf("backend: %s: at least %d printable characters without spaces", name, MinTokenLen)
		}
	}
	if cfg.IssuerToken != "" && cfg.IssuerToken == cfg.TerminalToken {
		return errors.New("backend: the terminal token must differ from the issuer token")
	}
	return nil
}

// credentials maps a presented bearer token to its role in constant time.
type credentials struct {
	open     bool
	issuer   [32]byte
	terminal [32]byte
	hasTerm  bool
}

func newCredentials(cfg Config) credentials {
	c := credentials{open: cfg.IssuerToken == "" && cfg.DevOpen}
	c.issuer = sha256.Sum256([]byte(cfg.IssuerToken))
	if cfg.TerminalToken != "" {
		c.terminal, c.hasTerm = sha256.Sum256([]byte(cfg.TerminalToken)), true
	}
	return c
}

// role returns the caller's role: from the Authorization header, or
// RoleIssuer for every caller of an open (development) backend.
func (c credentials) role(r *http.Request) (Role, error) {
	if c.open {
		return RoleIssuer, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return RoleNone, nil
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return RoleNone, newErr(http.StatusUnauthorized, CodeUnauthorised, "Authorization: want \"Bearer TOKEN\"")
	}
	sum := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(sum[:], c.issuer[:]) == 1 {
		return RoleIssuer, nil
	}
	if c.hasTerm && subtle.ConstantTimeCompare(sum[:], c.terminal[:]) == 1 {
		return RoleTerminal, nil
	}
	return RoleNone, newErr(http.StatusUnauthorized, CodeUnauthorised, "the bearer token is not a credential of this backend")
}

// guard wraps a handler: the caller must hold at least role need, and a
// request with a body must declare it as application/json (a browser
// cannot send that cross-origin without a preflight the backend never
// answers).
func (s *Server) guard(need Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, err := s.creds.role(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spdlab"`)
			writeErr(w, err)
			return
		}
		if got < need {
			if got == RoleNone {
				w.Header().Set("WWW-Authenticate", `Bearer realm="spdlab"`)
				writeErr(w, newErr(http.StatusUnauthorized, CodeUnauthorised, "%s %s needs the %s credential (Authorization: Bearer TOKEN)", r.Method, r.URL.Path, need))
				return
			}
			writeErr(w, newErr(http.StatusForbidden, CodeForbidden, "%s %s needs the %s credential; this one is a %s's", r.Method, r.URL.Path, need, got))
			return
		}
		if r.Method == http.MethodPost {
			if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
				writeErr(w, err)
				return
			}
		}
		h(w, r)
	}
}

// checkJSONType accepts only application/json (with an optional charset
// of utf-8).
func checkJSONType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return newErr(http.StatusUnsupportedMediaType, CodeMediaType, "Content-Type %q: only application/json is accepted", ct)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return newErr(http.StatusUnsupportedMediaType, CodeMediaType, "Content-Type %q: only application/json (charset utf-8) is accepted", ct)
		}
	}
	return nil
}

// MaskAccount is how an account number leaves the backend: all but its
// last four characters replaced by '*' (at most the last half of a short
// one shown). The full number stays in the vault.
func MaskAccount(a string) string {
	show := 4
	if len(a) < 8 {
		show = len(a) / 2
	}
	return strings.Repeat("*", len(a)-show) + a[len(a)-show:]
}
