package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/scenarios"
)

// smsLog is the lab's SMS gateway: it prints each message, so that the
// person at the terminal reads the one-time code from the backend's log.
type smsLog struct {
	mu sync.Mutex
	w  io.Writer
}

var _ backend.Gateway = (*smsLog)(nil)

func (g *smsLog) Send(ctx context.Context, phone, text string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, err := fmt.Fprintf(g.w, "%s SMS to %s: %s\n", time.Now().UTC().Format(time.TimeOnly), phone, text)
	return err
}

func runBackend(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "backend", "--db FILE|postgres://... --listen 127.0.0.1:PORT --issuer-token-file FILE [--terminal-token-file FILE] [--host-key FILE --ca FILE]")
	db := flags.String("db", "", "SQLite database file (created if absent), or a PostgreSQL URL postgres://USER:PASSWORD@HOST:PORT/DB that several backends share (an empty database needs --init)")
	listen := flags.String("listen", "127.0.0.1:8080", "address to serve on (port 0: any free port)")
	hostKey := flags.String("host-key", "", "issuer host key (PEM or DER, P-256) that signs answers and device commands (default: the lab's test issuer)")
	caPath := flags.String("ca", "", "issuer CA certificate (PEM or DER) that must sign device certificates (default: the lab's test issuer)")
	token := flags.String("issuer-token", "", "the issuer's bearer token (or $"+envIssuerToken+"; prefer --issuer-token-file)")
	tokenFile := flags.String("issuer-token-file", "", "file holding the issuer's bearer token; a new random token is written there (mode 0600) if it does not exist")
	termFile := flags.String("terminal-token-file", "", "file holding the terminals' bearer token (device-side calls only); made like --issuer-token-file")
	devOpen := flags.Bool("dev-open", false, "DEVELOPMENT ONLY: serve every call without a credential when no issuer token is given")
	initialise := flags.Bool("init", false, "initialise --db even if it is an existing empty file or a PostgreSQL database without tables (a missing file is always created)")
	syncFull := flags.Bool("sync-full", true, "SQLite: synchronous=FULL, durable against power loss, one fsync per group commit; --sync-full=false (synchronous=NORMAL) survives a crash of the process but may lose answered commits to a power cut (PostgreSQL commits are durable by its own settings)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *db == "" || flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	keys, issuerName, err := backendKeys(*hostKey, *caPath)
	if err != nil {
		return err
	}
	issuerToken, err := serverToken(e.stdout, "issuer", *token, *tokenFile, envIssuerToken)
	if err != nil {
		return err
	}
	if issuerToken == "" && !*devOpen {
		return fmt.Errorf("no issuer credential: give --issuer-token-file FILE (a new token is written there if it does not exist), --issuer-token or $%s; --dev-open serves without one, for development only", envIssuerToken)
	}
	termToken, err := serverToken(e.stdout, "terminal", "", *termFile, "")
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(e.stderr, "spdlab "+format+"\n", args...)
	}
	cfg := backend.Config{Listen: *listen, Keys: keys, IssuerToken: issuerToken,
		TerminalToken: termToken, DevOpen: *devOpen, Initialise: *initialise, Log: logf, SyncFull: *syncFull, Gateway: &smsLog{w: e.stdout}}
	dbName := *db
	if backend.IsPostgresURL(*db) {
		cfg.PostgresURL, dbName = *db, backend.RedactURL(*db)
	} else {
		cfg.DBPath = *db
		dbName += ", synchronous=NORMAL: a power cut may lose answered commits"
		if *syncFull {
			dbName = *db + ", synchronous=FULL"
		}
	}
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(backend.HostGCPercent))
	}
	srv, err := backend.Open(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	auth := "issuer token from " + *tokenFile
	switch {
	case issuerToken == "":
		auth = "OPEN, NO CREDENTIAL (--dev-open)"
	case *tokenFile == "":
		auth = "issuer token given"
	}
	if termToken != "" {
		auth += ", terminal token from " + *termFile
	}
	fmt.Fprintf(e.stdout, "spdlab backend: serving on http://%s (database %s, issuer %s, %s); Ctrl-C stops\n", ln.Addr(), dbName, issuerName, auth)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "spdlab backend: stopped")
	return nil
}

// The environment variables that carry credentials.
const (
	envIssuerToken   = "SPDLAB_ISSUER_TOKEN"    // spdlab backend: the issuer's token
	envAuthToken     = "SPDLAB_AUTH_TOKEN"      // clients: the token to present
	envAuthTokenFile = "SPDLAB_AUTH_TOKEN_FILE" // clients: a file holding it
)

// maxTokenFile bounds a credential file.
const maxTokenFile = 4096

// serverToken is the backend's credential of one role: the flag's value,
// else the file's (a new random token is written to a file that does not
// exist yet), else the environment variable's.
func serverToken(out io.Writer, role, value, file, envName string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case file != "":
		t, err := readTokenFile(file)
		if !errors.Is(err, fs.ErrNotExist) {
			return t, err
		}
		if t, err = backend.NewToken(); err != nil {
			return "", err
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("%s token: %w", role, err)
		}
		_, err = f.WriteString(t + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("%s token: %w", role, err)
		}
		fmt.Fprintf(out, "spdlab backend: wrote a new %s token to %s (mode 0600)\n", role, file)
		return t, nil
	case envName != "":
		return os.Getenv(envName), nil
	}
	return "", nil
}

// readTokenFile reads a credential file: one line, surrounding space
// ignored.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("token file %s: over %d bytes", path, maxTokenFile)
	}
	t := strings.TrimSpace(string(b))
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return "", fmt.Errorf("token file %s: want one token on one line", path)
	}
	return t, nil
}

// clientCredential is the token a client presents to the backend: the
// --auth-token flag, else the --auth-token-file flag, else
// $SPDLAB_AUTH_TOKEN, else the file $SPDLAB_AUTH_TOKEN_FILE names. Empty
// when none is given (a --dev-open backend needs none).
func clientCredential(token, file string) (string, error) {
	switch {
	case token != "":
		return token, nil
	case file != "":
		return readTokenFile(file)
	case os.Getenv(envAuthToken) != "":
		return os.Getenv(envAuthToken), nil
	case os.Getenv(envAuthTokenFile) != "":
		return readTokenFile(os.Getenv(envAuthTokenFile))
	}
	return "", nil
}

// credentialFlags adds the client credential flags to fs.
func credentialFlags(fs *flag.FlagSet) (token, file *string) {
	token = fs.String("auth-token", "", "bearer token for the backend (or $"+envAuthToken+"; prefer --auth-token-file)")
	file = fs.String("auth-token-file", "", "file holding the bearer token for the backend (or $"+envAuthTokenFile+"), as spdlab backend --issuer-token-file writes it")
	return token, file
}

// backendClient is a client of the backend at url presenting the
// credential.
func backendClient(url string, hc *http.Client, credential string) (*backend.Client, error) {
	c, err := backend.NewClient(url, hc)
	if err != nil {
		return nil, err
	}
	c.Credential = credential
	return c, nil
}

// backendKeys loads the issuer's keys from files, or takes the lab's test
// issuer, whose devices `spdlab terminal` and `spdlab demo` personalise.
func backendKeys(hostKeyPath, caPath string) (backend.Keys, string, error) {
	if hostKeyPath == "" && caPath == "" {
		is := scenarios.TestIssuer()
		ca, err := x509.ParseCertificate(is.CACertificate)
		if err != nil {
			return backend.Keys{}, "", err
		}
		return backend.Keys{Signer: is.HostKey(), IssuerCA: ca}, "spdlab test issuer", nil
	}
	var signer, ca []byte
	var err error
	if hostKeyPath != "" {
		if signer, err = os.ReadFile(hostKeyPath); err != nil {
			return backend.Keys{}, "", err
		}
	}
	if caPath != "" {
		if ca, err = os.ReadFile(caPath); err != nil {
			return backend.Keys{}, "", err
		}
	}
	k, err := backend.ParseKeys(signer, ca)
	if err != nil {
		return backend.Keys{}, "", err
	}
	name := "from " + caPath
	if k.IssuerCA != nil {
		name = k.IssuerCA.Subject.CommonName
	}
	return k, name, nil
}
