package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Several spdlab backend processes (the built binary) serve one
// PostgreSQL database. Four stations each upload every device's records,
// in their own order and spread over the backends, so that every record
// arrives four times, often at once on different processes; one backend
// is killed with SIGKILL in the middle. Each record must be credited
// once: no two acknowledgements say "settled" for it, every device's
// balance is its initial value less each record once, and the audit is
// conserved.
func TestSeveralBackendsOnePostgres(t *testing.T) {
	postgresOnly(t)
	if testing.Short() {
		t.Skip("builds spdlab and runs backend processes")
	}
	srv := pgServer(t)
	db, err := srv.NewDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := buildSpdlab(t, dir)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	writeFile(t, filepath.Join(dir, "host.key"), keyDER)
	writeFile(t, filepath.Join(dir, "issuer.token"), []byte(testIssuerToken+"\n"))

	const (
		backends  = 3
		stations  = 4
		devices   = 8
		perDevice = 60
		perBatch  = 10
		initial   = 1_000_000
	)
	var procs []*backendProc
	for i := range backends {
		p := startBackendProc(t, ctx, bin, "backend", "--db", db, "--listen", "127.0.0.1:0", "--init",
			"--host-key", filepath.Join(dir, "host.key"), "--issuer-token-file", filepath.Join(dir, "issuer.token"))
		t.Logf("backend %d on %s", i, p.url)
		procs = append(procs, p)
	}

	rng := mathrand.New(mathrand.NewPCG(3, 5))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type batchPlan struct {
		records [][]byte
	}
	var plan []batchPlan
	spent := map[string]int64{}
	var sims []*simDevice
	for i := range devices {
		d := newSimDevice(t, fmt.Sprintf("station-dev-%d", i))
		sims = append(sims, d)
		// Registered through different backends.
		if _, err := procs[i%backends].client.Register(ctx, Registration{DeviceID: d.id, PublicKey: d.pkix(), Account: "ACC-" + d.name, Currency: 156, InitialBalance: initial}); err != nil {
			t.Fatal(err)
		}
		for range perDevice / perBatch {
			var bp batchPlan
			for range perBatch {
				amount := 1 + rng.Int64N(900)
				bp.records = append(bp.records, d.record(amount, "", now))
				spent[d.id] += amount
			}
			plan = append(plan, bp)
		}
	}

	// settledBy counts the acknowledgements that say a record was
	// settled by their batch: at most one per record.
	var mu sync.Mutex
	settledBy := map[string]int{}
	var acks atomic.Int64
	killAt := int64(stations * len(plan) / 4)
	var killed atomic.Bool
	live := func(i int) bool { return i != 1 || !killed.Load() }
	var wg sync.WaitGroup
	for st := range stations {
		order := rng.Perm(len(plan))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n, i := range order {
				var ack SettlementAck
				var err error
				// A batch goes to the station's next backend; one that
				// does not answer (killed) is left for the next.
				for try := range 2 * backends {
					b := (st + n + try) % backends
					if !live(b) {
						continue
					}
					ack, err = procs[b].client.Settle(ctx, SettlementBatch{BatchID: fmt.Sprintf("s%d-b%d", st, i), Records: plan[i].records})
					var ae *APIError
					if err == nil || errors.As(err, &ae) || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					t.Errorf("station %d batch %d: %v", st, i, err)
					return
				}
				if err := ack.Verify(&key.PublicKey); err != nil {
					t.Errorf("station %d batch %d: %v", st, i, err)
					return
				}
				mu.Lock()
				for _, e := range ack.Entries {
					if e.Status == Settled {
						settledBy[fmt.Sprintf("%s/%d", e.DeviceID, e.ATC)]++
					}
				}
				mu.Unlock()
				if acks.Add(1) == killAt {
					killed.Store(true)
					procs[1].kill()
				}
			}
		}()
	}
	wg.Wait()
	if !killed.Load() {
		t.Fatal("the load ended before backend 1 was killed")
	}
	<-procs[1].done
	if ws, ok := procs[1].cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("backend 1 ended with %v, not by SIGKILL", procs[1].cmd.ProcessState)
	}
	for key, n := range settledBy {
		if n > 1 {
			t.Errorf("record %s: %d acknowledgements say their batch settled it", key, n)
		}
	}
	a, err := procs[0].client.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range sims {
		total += spent[d.id]
		got, err := procs[2].client.Device(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Balance != initial-spent[d.id] {
			t.Errorf("device %s: balance %d, want %d (each record once)", d.name, got.Balance, initial-spent[d.id])
		}
	}
	if !a.Conserved || a.Settled != total || a.RecordsSettled != devices*perDevice || a.Issued != devices*initial || len(a.Discrepancies) != 0 {
		t.Fatalf("audit %+v, want %d settled over %d records, conserved", a, total, devices*perDevice)
	}
	t.Logf("%d batches from %d stations over %d backends (one killed after %d acknowledgements); %d records settled once", stations*len(plan), stations, backends, killAt, len(settledBy))
}

// backendProc is one spdlab backend process.
type backendProc struct {
	cmd    *exec.Cmd
	url    string
	client *Client
	done   chan struct{} // closed when it has ended
	once   sync.Once
}

// servingLine finds the URL in the "serving on" line spdlab backend
// prints.
type servingLine struct {
	buf   []byte
	found chan string
}

var servingRE = regexp.MustCompile(`serving on (http://\S+)`)

func (w *servingLine) Write(b []byte) (int, error) {
	if w.buf = append(w.buf, b...); w.found != nil {
		if m := servingRE.FindSubmatch(w.buf); m != nil {
			w.found <- string(m[1])
			w.found = nil
		}
	}
	if len(w.buf) > 1<<16 {
		w.buf = w.buf[len(w.buf)-1<<12:]
	}
	return len(b), nil
}

// startBackendProc runs bin with args and waits for its "serving on" line.
func startBackendProc(t *testing.T, ctx context.Context, bin string, args ...string) *backendProc {
	t.Helper()
	found := make(chan string, 1)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &servingLine{found: found}, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &backendProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	select {
	case p.url = <-found:
	case <-p.done:
		t.Fatalf("%s %v ended before serving: %v", bin, args, cmd.ProcessState)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s %v did not serve within 60 s", bin, args)
	}
	var err error
	if p.client, err = NewClient(p.url, nil); err != nil {
		t.Fatal(err)
	}
	p.client.Credential = testIssuerToken
	return p
}

// kill ends the process with SIGKILL and waits for it.
func (p *backendProc) kill() {
	p.once.Do(func() { p.cmd.Process.Signal(syscall.SIGKILL) })
	<-p.done
}

// buildSpdlab returns an spdlab binary of this checkout: the one named by
// $SPDLAB_TEST_BIN, which make test builds once for the tests of its run,
// else one built into dir.
func buildSpdlab(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("SPDLAB_TEST_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("SPDLAB_TEST_BIN: %v", err)
		}
		return bin
	}
	bin := filepath.Join(dir, "spdlab")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/spdlab/spdlab/cmd/spdlab")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build spdlab: %v\n%s", err, out)
	}
	return bin
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
