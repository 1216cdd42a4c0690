package backend

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs the backend in a child process (this test binary
// re-executed with crashChildEnv set), fires settlement batches at it,
// kills it with SIGKILL in the middle, restarts it on the same database and
// checks that every acknowledged record is settled exactly once and nothing
// else is, and that value is conserved.

const crashChildEnv = "SPDLAB_BACKEND_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(runCrashChild(spec))
	}
	flag.Parse()
	code := m.Run()
	stopPG()
	os.Exit(code)
}

// runCrashChild serves the backend on 127.0.0.1 with the database and
// address file named in spec ("DB|ADDRFILE") until it is killed.
func runCrashChild(spec string) int {
	db, addrFile, ok := strings.Cut(spec, "|")
	if !ok {
		fmt.Fprintln(os.Stderr, "backend: bad child spec")
		return 2
	}
	cfg := dbConfig(db)
	cfg.IssuerToken = testIssuerToken
	srv, err := Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil || os.Rename(tmp, addrFile) != nil {
		fmt.Fprintln(os.Stderr, "backend: cannot write the address file")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // never outlive a stuck parent
	defer cancel()
	if err := srv.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// crashChild is one run of the child process.
type crashChild struct {
	cmd    *exec.Cmd
	client *Client
	done   chan struct{}
}

func startCrashChild(t *testing.T, db string) *crashChild {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+db+"|"+addrFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil {
			c.client, _ = NewClient("http://"+string(b), &http.Client{Timeout: 10 * time.Second})
			c.client.Credential = testIssuerToken
			if c.client.Health(context.Background()) == nil {
				return c
			}
		}
		select {
		case <-c.done:
			t.Fatal("backend child exited before serving")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("backend child did not start serving")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *crashChild) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func TestCrashDuringSettlement(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills backend processes")
	}
	db := testDB(t)
	const (
		devices       = 12
		perDevice     = 120
		perBatch      = 20
		initial       = 1_000_000
		killRounds    = 4
		senders       = 4
		maxRoundDelay = 120 * time.Millisecond
	)
	rng := rand.New(rand.NewPCG(7, 11))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	// The devices, their records, and the batches (one device per batch,
	// in ATC order, as a terminal uploads a device's ledger).
	type batchPlan struct {
		dev     *simDevice
		records [][]byte
		atcs    []uint32
		amounts []int64
	}
	var sims []*simDevice
	var plan []batchPlan
	amounts := make(map[string]int64) // "dev/atc" -> amount
	spent := make(map[string]int64)
	for i := range devices {
		d := newSimDevice(t, fmt.Sprintf("crash-%d", i))
		sims = append(sims, d)
		for b := 0; b < perDevice/perBatch; b++ {
			bp := batchPlan{dev: d}
			for range perBatch {
				amount := 1 + rng.Int64N(500)
				bp.records = append(bp.records, d.record(amount, "", now))
				bp.atcs = append(bp.atcs, d.atc)
				bp.amounts = append(bp.amounts, amount)
				amounts[fmt.Sprintf("%s/%d", d.id, d.atc)] = amount
				spent[d.id] += amount
			}
			plan = append(plan, bp)
		}
	}

	child := startCrashChild(t, db)
	for _, d := range sims {
		if _, err := child.client.Register(context.Background(), Registration{DeviceID: d.id, PublicKey: d.pkix(), Account: "ACC-" + d.name, Currency: 156, InitialBalance: initial}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := child.client.PublicKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	acked := make(map[string]bool) // "dev/atc" acknowledged by a verified ack
	var mu sync.Mutex
	sendAll := func(c *Client, batches []int, stop <-chan struct{}) (failed int) {
		work := make(chan int)
		var wg sync.WaitGroup
		var fmu sync.Mutex
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					ack, err := c.Settle(context.Background(), SettlementBatch{BatchID: fmt.Sprintf("b%d", i), Records: plan[i].records})
					if err != nil {
						var ae *APIError
						if errors.As(err, &ae) {
							t.Errorf("batch %d refused: %v", i, err)
						}
						fmu.Lock()
						failed++
						fmu.Unlock()
						continue
					}
					if err := ack.Verify(pub); err != nil {
						t.Errorf("batch %d: %v", i, err)
						continue
					}
					mu.Lock()
					for k, e := range ack.Entries {
						if e.ATC != plan[i].atcs[k] || e.Amount != plan[i].amounts[k] || e.DeviceID != plan[i].dev.id {
							t.Errorf("batch %d entry %d: %+v", i, k, e)
						}
						key := fmt.Sprintf("%s/%d", e.DeviceID, e.ATC)
						if e.Status == Settled && acked[key] {
							t.Errorf("record %s settled twice", key)
						}
						acked[key] = true
					}
					mu.Unlock()
				}
			}()
		}
	feed:
		for _, i := range batches {
			select {
			case work <- i:
			case <-stop:
				break feed
			}
		}
		close(work)
		wg.Wait()
		return failed
	}

	// checkDB opens the database of a dead child and checks that every
	// acknowledged record is there once, nothing unknown is, and the books
	// balance.
	checkDB := func(round int) {
		t.Helper()
		cfg := dbConfig(db)
		cfg.IssuerToken = testIssuerToken
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rows, err := s.rdb.Query(`SELECT device_id, atc, amount, state FROM records`)
		if err != nil {
			t.Fatal(err)
		}
		present := make(map[string]bool)
		for rows.Next() {
			var dev string
			var atc, amount int64
			var state int
			if err := rows.Scan(&dev, &atc, &amount, &state); err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("%s/%d", dev, atc)
			if want, ok := amounts[key]; !ok || want != amount || state != stateSettled {
				t.Errorf("round %d: unexpected record %s amount %d state %d", round, key, amount, state)
			}
			present[key] = true
		}
		rows.Close()
		mu.Lock()
		for key := range acked {
			if !present[key] {
				t.Errorf("round %d: acknowledged record %s is not settled", round, key)
			}
		}
		nAcked := len(acked)
		mu.Unlock()
		a, err := s.Audit(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !a.Conserved || a.RecordsSettled != int64(len(present)) {
			t.Errorf("round %d: audit %+v", round, a)
		}
		t.Logf("round %d: %d records acknowledged, %d settled", round, nAcked, len(present))
	}

	all := make([]int, len(plan))
	for i := range all {
		all[i] = i
	}
	kills := 0
	for round := 0; round < killRounds; round++ {
		if round > 0 {
			child = startCrashChild(t, db)
		}
		order := append([]int(nil), all...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		stop := make(chan struct{})
		delay := time.Duration(20+rng.IntN(int(maxRoundDelay/time.Millisecond))) * time.Millisecond
		timer := time.AfterFunc(delay, func() {
			close(stop)
			child.kill()
		})
		sendAll(child.client, order, stop)
		if timer.Stop() {
			close(stop)
			child.kill()
		} else {
			kills++
		}
		<-child.done
		checkDB(round)
	}
	if kills == 0 {
		t.Log("no kill landed during a batch; the run still checked restart and resend")
	}

	// Last run: resend everything; all of it must now be settled once.
	child = startCrashChild(t, db)
	if failed := sendAll(child.client, all, make(chan struct{})); failed != 0 {
		t.Fatalf("%d batches failed on the final resend", failed)
	}
	a, err := child.client.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, v := range amounts {
		total += v
	}
	if !a.Conserved || a.Settled != total || a.RecordsSettled != int64(len(amounts)) || a.Issued != devices*initial {
		t.Fatalf("final audit %+v, want settled %d over %d records", a, total, len(amounts))
	}
	for _, d := range sims {
		got, err := child.client.Device(context.Background(), d.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Balance != initial-spent[d.id] {
			t.Errorf("device %s balance %d, want %d", d.id, got.Balance, initial-spent[d.id])
		}
	}
	child.kill()
	checkDB(killRounds)
	t.Logf("%d of %d rounds killed the backend mid-run", kills, killRounds)
}
