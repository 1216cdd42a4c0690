package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/scenarios"
)

func init() {
	register("backend", "serve the reference issuer and settlement host (HTTP JSON API, SQLite)", runBackend)
}

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
	flags := newFlags(e, "backend", "--db FILE --listen 127.0.0.1:PORT [--host-key FILE --ca FILE] [--issuer-token TOKEN]")
	db := flags.String("db", "", "SQLite database file (created if absent)")
	listen := flags.String("listen", "127.0.0.1:8080", "address to serve on (port 0: any free port)")
	hostKey := flags.String("host-key", "", "issuer host key (PEM or DER, P-256) that signs answers and device commands (default: the lab's test issuer)")
	caPath := flags.String("ca", "", "issuer CA certificate (PEM or DER) that must sign device certificates (default: the lab's test issuer)")
	token := flags.String("issuer-token", "", "require this bearer token on the issuer's own operations")
	syncFull := flags.Bool("sync-full", false, "synchronous=FULL: durable against power loss, one fsync per commit")
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
	srv, err := backend.Open(backend.Config{DBPath: *db, Listen: *listen, Keys: keys, IssuerToken: *token,
		SyncFull: *syncFull, Gateway: &smsLog{w: e.stdout}})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(e.stdout, "spdlab backend: serving on http://%s (database %s, issuer %s); Ctrl-C stops\n", ln.Addr(), *db, issuerName)
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "spdlab backend: stopped")
	return nil
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
