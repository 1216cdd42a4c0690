// Package pgtest runs a private PostgreSQL server for tests: Debian's
// postgresql binaries (initdb, postgres) on a new data directory and a free
// port, listening on 127.0.0.1 only, with a password of its own. As root
// (CI), the server runs as the postgres user, since PostgreSQL refuses to
// run as root. Start it once per test binary (in TestMain) and Stop it at
// the end; each test gets a fresh database from NewDatabase.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Install says how to get the server binaries.
const Install = "install Debian's postgresql (apt-get install postgresql; binaries in /usr/lib/postgresql/*/bin), or set SPDLAB_PG_BIN to the directory holding initdb and postgres"

// ErrNoServer is returned by Start when no PostgreSQL binaries are found.
var ErrNoServer = errors.New("pgtest: no PostgreSQL server binaries: " + Install)

// Server is a running private PostgreSQL server.
type Server struct {
	dir      string // the temporary directory holding data/ and the socket
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      string
	admin    *sql.DB
	strategy string // CREATE DATABASE's STRATEGY clause, where the server has one
	n        atomic.Int64
}

// user is the database superuser the tests connect as.
const dbUser = "spdlab"

// BinDir finds the directory of initdb and postgres: $SPDLAB_PG_BIN, or
// the newest /usr/lib/postgresql/N/bin.
func BinDir() (string, error) {
	if d := os.Getenv("SPDLAB_PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("%w (SPDLAB_PG_BIN=%s: %v)", ErrNoServer, d, err)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoServer
}

// Start makes a data directory with initdb and starts postgres on it. The
// caller must Stop it.
func Start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "spdlab-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, password: randomHex(16), exited: make(chan struct{})}
	cred, err := serverCredential()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.initdb(bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		err = s.start(bin, cred)
		if err == nil || attempt == 3 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) initdb(bin string, cred *syscall.Credential) error {
	pwfile := filepath.Join(s.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		for _, p := range []string{s.dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: %w", err)
			}
		}
	}
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(s.dir, "data"), "-U", dbUser,
		"--pwfile", pwfile, "--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// start runs postgres on a free port and waits until it answers.
func (s *Server) start(bin string, cred *syscall.Credential) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	logf, err := os.Create(filepath.Join(s.dir, "postgres.log"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	if cred != nil {
		os.Chown(logf.Name(), int(cred.Uid), int(cred.Gid))
	}
	s.log = logf.Name()
	// fsync off: a test server's data need not survive a power loss, and
	// the backends' crash tests kill backend processes, not the server.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	cmd.SysProcAttr = procAttr(cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		db, err := s.open("postgres")
		if err == nil {
			err = db.Ping()
			if err == nil {
				s.admin = db
				s.chooseStrategy()
				return nil
			}
			db.Close()
		}
		select {
		case <-s.exited:
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("pgtest: postgres exited: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			b, _ := os.ReadFile(s.log)
			return fmt.Errorf("pgtest: postgres did not answer in 60 s: %v\n%s", err, b)
		}
	}
}

// URL is the postgres:// URL of database name on the server.
func (s *Server) URL(name string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(dbUser, s.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + name, RawQuery: "sslmode=disable"}
	return u.String()
}

func (s *Server) open(name string) (*sql.DB, error) {
	pc, err := pgx.ParseConfig(s.URL(name))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return stdlib.OpenDB(*pc), nil
}

// chooseStrategy picks how CREATE DATABASE copies the template: by its
// files (FILE_COPY) where the server offers a choice (PostgreSQL 15 and
// later, whose default, WAL_LOG, writes every page of the template to the
// write-ahead log). A copy of template0's files is the same empty
// database; with fsync off, the checkpoints FILE_COPY takes write no more
// than the tests' own changes. The backend's tests on PostgreSQL make a
// database each, about a hundred: with FILE_COPY the server took about
// three quarters of the CPU time. A server whose version cannot be read
// gets the default.
func (s *Server) chooseStrategy() {
	var v int
	if err := s.admin.QueryRow("SELECT current_setting('server_version_num')::int").Scan(&v); err == nil && v >= 150000 {
		s.strategy = " STRATEGY FILE_COPY"
	}
}

// NewDatabase creates an empty database (a copy of template0) and returns
// its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	return s.copyDatabase(ctx, "template0")
}

// CopyDatabase creates a database that is a copy of the database at
// dbURL, one of this server's, and returns its URL. Nothing may be
// connected to the original meanwhile (PostgreSQL refuses to copy a
// database in use).
func (s *Server) CopyDatabase(ctx context.Context, dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if s.URL(name) != dbURL || !validName(name) {
		return "", fmt.Errorf("pgtest: %s is not a database of this server", dbURL)
	}
	return s.copyDatabase(ctx, name)
}

// validName reports whether name is a database name NewDatabase makes.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Server) copyDatabase(ctx context.Context, template string) (string, error) {
	name := fmt.Sprintf("t%d_%s", s.n.Add(1), randomHex(4))
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template+s.strategy); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.URL(name), nil
}

// Exec runs a statement on database url as the superuser.
func (s *Server) Exec(ctx context.Context, dbURL, query string, args ...any) error {
	pc, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	db := stdlib.OpenDB(*pc)
	defer db.Close()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// Stop shuts the server down (fast: open sessions are ended) and removes
// its directory.
func (s *Server) Stop() {
	if s.admin != nil {
		s.admin.Close()
		s.admin = nil
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

// serverCredential is the user postgres runs as: nil (the current user)
// unless that is root, then the postgres user Debian's package makes.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and PostgreSQL refuses root: no postgres user to run it as (%w); %s", err, Install)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Required says whether a missing server fails the tests (CI=true) instead
// of skipping them.
func Required() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}
