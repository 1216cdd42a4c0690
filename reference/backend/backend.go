// Package backend is the reference issuer and settlement host of spdlab: the
// backend server of the claims, reached by the terminal and the SPD over an
// HTTP JSON API (API.md beside this file documents every endpoint).
//
// It personalises and registers devices, answers online payment
// authorisations in real time with a signed result (C30, C31), settles the
// devices' pending offline records in batches keyed by (device, ATC) so that
// a record settles exactly once (C4, C7), queues parameter updates for a
// device's next contact (C3, C14, C15), keeps the token vault with domain
// controls enforced on use and detokenises at settlement (C20, C22, C24),
// sends SMS one-time codes through a Gateway (C32, C33), keeps a revocation
// list of devices and certificates, moves value between devices (C13, C16,
// C17), and audits that value is conserved:
//
//	issued = sum of device balances + pending + settled + transfers in flight
//
// # Storage
//
// One SQLite file through modernc.org/sqlite, in WAL mode. Every request
// that changes state runs in one transaction (a settlement batch is one
// transaction), writers are serialised and group-committed in the process,
// the WAL is checkpointed in the background (never inside a commit), and an answer (an
// authorisation result, a settlement acknowledgement) is sent only after its
// transaction committed. The zero Config gives synchronous=NORMAL (the
// spdlab backend command sets SyncFull unless told not to): in WAL mode a commit
// is then durable against a crash of the backend process (SIGKILL included,
// which the crash test exercises), because the WAL frames are in the
// operating system's cache when COMMIT returns; a power loss or kernel crash
// may roll back the last commits since the latest WAL sync, so a host that
// must survive power loss sets Config.SyncFull (synchronous=FULL, one fsync
// per commit, a few milliseconds on common disks).
package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Keys are the backend's keys.
type Keys struct {
	// Signer signs authorisation results and settlement acknowledgements.
	// Nil: the key kept in the database, made on the first Open.
	Signer *ecdsa.PrivateKey
	// IssuerCA, if set, must have signed every device certificate; devices
	// then register with a certificate, not a bare public key.
	IssuerCA *x509.Certificate
}

// HostGCPercent is the garbage collector's target (GOGC) at which
// `spdlab backend` serves, unless GOGC is set, and at which the backend's
// benchmarks measure it. A backend's live heap is small (the books are in
// the database) while every request allocates its JSON, HTTP and crypto
// garbage: at Go's default of 100 the collector runs often and its work
// lands in the latency tail. With 8 authorising clients on 2 cores
// (BenchmarkAuthorise, four runs of each build interleaved) 400 took the
// p99 from 3.86 to 3.51 ms (medians) and the CPU per authorisation from
// 293 to 274 us, for 44 MB of peak resident memory instead of 33 MB; 1000,
// or no target with a 256 MiB memory limit, did no better.
const HostGCPercent = 400

// Config configures a Server.
type Config struct {
	// DBPath is the SQLite file (created if absent): the embedded
	// default, for one backend process.
	DBPath string
	// PostgresURL, instead of DBPath, keeps the books in PostgreSQL
	// (postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...), where
	// several backend processes can serve them together.
	PostgresURL string
	// Listen is the address ListenAndServe uses when given none.
	Listen string
	Keys   Keys
	// Gateway sends SMS one-time codes. Nil: an in-memory Outbox (see
	// Server.Outbox).
	Gateway Gateway
	// MaxBodyBytes limits a request body (default 1 MiB).
	MaxBodyBytes int64
	// MaxBatchRecords limits the records of one settlement batch (default
	// 1000, at most 65535).
	MaxBatchRecords int
	// SyncFull selects synchronous=FULL (durable against power loss)
	// instead of NORMAL (durable against a process crash).
	SyncFull bool
	// OTPLifetime is how long a one-time code is valid (default 5 minutes);
	// OTPTries how many wrong answers it takes (default 3).
	OTPLifetime time.Duration
	OTPTries    int
	// OTP limits requests and wrong answers per device, requests per
	// client, and SMS sent (see OTPLimits for the defaults).
	OTP OTPLimits
	// TransferLifetime is how long a held transfer waits for its payee
	// when the request names no expiry (default 24 hours).
	TransferLifetime time.Duration
	// IssuerToken is the issuer's credential, presented as
	// "Authorization: Bearer TOKEN" (at least MinTokenLen characters). It
	// allows every call; only it registers devices, queues parameter
	// updates (top-ups), revokes and reads the audit. Open
	// refuses an empty one unless DevOpen is set.
	IssuerToken string
	// TerminalToken, if set, is the terminals' credential: the device-side
	// calls (authorisations, settlements, contact, one-time codes,
	// transfers) and reads, never issuing or revoking (see Role).
	TerminalToken string
	// DevOpen serves every call without a credential when IssuerToken is
	// empty: for development on a private loopback only. Open logs a loud
	// warning through Log.
	DevOpen bool
	// Log receives the backend's warnings (default: discarded).
	Log func(format string, args ...any)
	// Initialise lets Open make a new database in an existing file that is
	// empty (zero bytes, or SQLite without tables), or in a PostgreSQL
	// database without tables. Without it such a database is refused: an
	// issuer that finds its books gone must not start as a new, empty
	// issuer. An SQLite path that does not exist is always created.
	Initialise bool
	// KeepClonesInService flags a device caught signing two different
	// records with one ATC without revoking it (default: revoke).
	KeepClonesInService bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Identities is the issuer's directory of identity questions that
	// POST /v1/assertions checks answers against (C33). Nil: an empty
	// in-memory one (Server.Identities).
	Identities IdentityBook
	// Rates are the exchange rates POST /v1/rates signs (SPEC.md 4.11,
	// SPD-EXC-5). Nil: DefaultRates.
	Rates []RateOffer
}

// Server is the backend: storage, keys and the HTTP handlers.
type Server struct {
	cfg     Config
	eng     engine
	wdb     *sql.DB // writes (SQLite: the one writing connection)
	rdb     *sql.DB // reads
	jobs    chan *writeJob
	retries atomic.Int64 // writes run again (engines without a single writer)
	// authorising counts the authorisations past their decoding and not
	// yet handed to the writer (their device signature being verified):
	// writes on their way, which the single writer waits for briefly
	// before it commits (joiningJob).
	authorising atomic.Int64
	// commitWait is how long the single writer holds a group open for
	// them: defaultCommitWait (tests change it).
	commitWait time.Duration
	// abortAttempt, set by tests, aborts a write's transaction after its
	// work with the error it returns, as the database would.
	abortAttempt func(attempt int) error
	// failCommit, set by tests, fails the single writer's commit of a
	// group of n writes with the error it returns, as the database would.
	failCommit func(n int) error
	closing    chan struct{}
	closeOnce  sync.Once
	writerDone chan struct{}
	stmts      writeStmts
	signer     *ecdsa.PrivateKey
	outbox     *Outbox
	keys       keyCache
	mux        *http.ServeMux
	creds      credentials
	hc         healthCheck
	otpClients clientLimiter
	identities IdentityBook

	srvMu sync.Mutex
	srv   *http.Server
}

// Open opens (or creates) the database and returns a Server ready to serve.
func Open(cfg Config) (*Server, error) {
	if (cfg.DBPath == "") == (cfg.PostgresURL == "") {
		return nil, errors.New("backend: give either a database path or a PostgreSQL URL")
	}
	if err := checkCredentials(cfg); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.IssuerToken == "" {
		cfg.Log("backend: WARNING: DEVELOPMENT MODE: no credential is required; anyone who reaches this backend can issue value, register and revoke devices")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxBatchRecords <= 0 {
		cfg.MaxBatchRecords = 1000
	}
	if cfg.MaxBatchRecords > 65535 {
		cfg.MaxBatchRecords = 65535
	}
	if cfg.OTPLifetime <= 0 {
		cfg.OTPLifetime = 5 * time.Minute
	}
	if cfg.OTPTries <= 0 {
		cfg.OTPTries = 3
	}
	cfg.OTP.defaults()
	if cfg.TransferLifetime <= 0 {
		cfg.TransferLifetime = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, creds: newCredentials(cfg)}
	s.otpClients = clientLimiter{max: cfg.OTP.PerClient, now: cfg.Now}
	if cfg.Gateway == nil {
		s.outbox = &Outbox{}
		s.cfg.Gateway = s.outbox
	}
	if s.identities = cfg.Identities; s.identities == nil {
		s.identities = &Identities{}
	}
	if cfg.PostgresURL != "" {
		s.eng = &postgresEngine{url: cfg.PostgresURL}
	} else {
		s.eng = &sqliteEngine{path: cfg.DBPath, walRestart: walRestartFrames}
	}
	var err error
	if s.wdb, s.rdb, err = s.eng.open(cfg); err != nil {
		return nil, err
	}
	if err := migrate(context.Background(), s.wdb, s.eng, cfg.Now().Unix()); err != nil {
		s.Close()
		return nil, err
	}
	s.closing = make(chan struct{})
	s.writerDone = make(chan struct{})
	if s.eng.singleWriter() {
		s.jobs = make(chan *writeJob, 4*maxGroup)
		s.commitWait = defaultCommitWait
		go s.writer()
	} else {
		close(s.writerDone)
	}
	if err := s.stmts.prepare(s.wdb, s.eng.singleWriter()); err != nil {
		s.Close()
		return nil, err
	}
	if s.signer = cfg.Keys.Signer; s.signer == nil {
		if s.signer, err = s.storedSigner(); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.routes()
	return s, nil
}

// storedSigner loads the signing key kept in the database, making and
// storing one the first time.
func (s *Server) storedSigner() (*ecdsa.PrivateKey, error) {
	var der []byte
	err := s.wdb.QueryRow(`SELECT v FROM meta WHERE k='signing_key'`).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		k, kerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if kerr != nil {
			return nil, fmt.Errorf("backend: make signing key: %w", kerr)
		}
		if der, err = x509.MarshalPKCS8PrivateKey(k); err != nil {
			return nil, fmt.Errorf("backend: encode signing key: %w", err)
		}
		// Backends starting together on one database each make a key;
		// the first stored is the one every backend signs with.
		if _, err := s.wdb.Exec(`INSERT INTO meta(k, v) VALUES('signing_key', $1) ON CONFLICT DO NOTHING`, der); err != nil {
			return nil, fmt.Errorf("backend: store signing key: %w", err)
		}
		err = s.wdb.QueryRow(`SELECT v FROM meta WHERE k='signing_key'`).Scan(&der)
	}
	if err != nil {
		return nil, fmt.Errorf("backend: read signing key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("backend: stored signing key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("backend: stored signing key is not ECDSA")
	}
	return ek, nil
}

// PublicKey is the key that checks the backend's signed answers.
func (s *Server) PublicKey() *ecdsa.PublicKey { return &s.signer.PublicKey }

// Outbox is the in-memory SMS gateway, or nil when Config.Gateway was set.
func (s *Server) Outbox() *Outbox { return s.outbox }

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.mux }

// ListenAndServe serves the API on addr (Config.Listen when addr is empty)
// until ctx is done, then shuts down gracefully.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		addr = s.cfg.Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("backend: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the API on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	s.srvMu.Lock()
	s.srv = srv
	s.srvMu.Unlock()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(sctx)
			cancel()
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("backend: serve: %w", err)
}

// Close stops a running ListenAndServe and closes the database.
func (s *Server) Close() error {
	s.srvMu.Lock()
	if s.srv != nil {
		s.srv.Close()
	}
	s.srvMu.Unlock()
	if s.closing != nil {
		s.closeOnce.Do(func() { close(s.closing) })
		<-s.writerDone
	}
	s.stmts.close()
	var errs []error
	if s.eng != nil {
		s.eng.close()
	}
	if s.rdb != nil && s.rdb != s.wdb {
		errs = append(errs, s.rdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	return errors.Join(errs...)
}

// keyCache keeps registered device keys; a key never changes once
// registered, so entries never go stale.
type keyCache struct {
	mu sync.RWMutex
	m  map[string]*ecdsa.PublicKey
}

func (c *keyCache) get(id string) (*ecdsa.PublicKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.m[id]
	return k, ok
}

func (c *keyCache) put(id string, k *ecdsa.PublicKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*ecdsa.PublicKey)
	}
	c.m[id] = k
}

// deviceKey returns a registered device's public key.
func (s *Server) deviceKey(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	if k, ok := s.keys.get(id); ok {
		return k, nil
	}
	var der []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT pubkey FROM devices WHERE id=$1`, id).Scan(&der)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUnknownDevice(id)
	}
	if err != nil {
		return nil, internal(err)
	}
	k, err := parseECPublicKey(der)
	if err != nil {
		return nil, internal(err)
	}
	s.keys.put(id, k)
	return k, nil
}

func parseECPublicKey(der []byte) (*ecdsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("backend: public key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("backend: public key is not ECDSA P-256")
	}
	return ek, nil
}
