package backend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmarks over HTTP on 127.0.0.1 with many simulated devices.
//
//	go test -run='^$' -bench=. -benchtime=20000x ./reference/backend
//
// BenchmarkSettle reports records settled per second and, from the same
// rows inserted into a bare SQLite table in transactions of the same size,
// the floor the backend is compared against. BenchmarkAuthorise reports the
// p50 and p99 latency of an online authorisation, alone and while devices
// settle, and the same figures of a floor measured in the same run: the
// same clients sending the same requests over HTTP to a server that does
// only what no authorisation can skip (decode, verify the device's
// signature, sign the answer) and stores nothing. On a shared machine the
// absolute latencies follow the load; their ratios to the floor less so.
// Each also reports the process's CPU time per record or request
// (cpu-us/op, client and server together, as both run in this process)
// and its ratio to the floor's (x-floor-cpu): the work done, which the
// machine's load hardly changes, where the latencies and rates measure
// the share of the machine the benchmark got as much as the backend.

const (
	benchDevices  = 64
	benchBatch    = 100
	benchSenders  = 8
	benchBalance  = 1 << 40 // 128 devices stay far below the issuer-wide 2^53
	benchAuthConc = 8
)

// benchClient returns an issuer's client of l for a benchmark, and sets
// the garbage collector's target to the one `spdlab backend` serves at
// (HostGCPercent) for the rest of the benchmark, unless GOGC is set: the
// backend is measured as it runs, and its floors beside it in the same
// process at the same target.
func benchClient(b *testing.B, l *lab) *Client {
	if os.Getenv("GOGC") == "" {
		old := debug.SetGCPercent(HostGCPercent)
		b.Cleanup(func() { debug.SetGCPercent(old) })
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	c, err := NewClient(l.http.URL, &http.Client{Timeout: 30 * time.Second, Transport: tr})
	if err != nil {
		b.Fatal(err)
	}
	c.Credential = testIssuerToken
	return c
}

func benchDevicesFor(b *testing.B, l *lab, prefix string) []*simDevice {
	devs := make([]*simDevice, benchDevices)
	for i := range devs {
		devs[i] = newSimDevice(b, fmt.Sprintf("%s-%d", prefix, i))
		l.register(devs[i], benchBalance, "")
	}
	return devs
}

// settlementBatches makes n records spread over the devices, cut into
// batches of one device's records each.
func settlementBatches(devs []*simDevice, n int) [][][]byte {
	per := make([][][]byte, len(devs))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		d := i % len(devs)
		per[d] = append(per[d], devs[d].record(int64(1+i%500), "", at))
	}
	var batches [][][]byte
	for _, recs := range per {
		for len(recs) > 0 {
			k := min(benchBatch, len(recs))
			batches = append(batches, recs[:k])
			recs = recs[k:]
		}
	}
	return batches
}

// settleAll sends the batches from benchSenders goroutines.
func settleAll(b *testing.B, c *Client, batches [][][]byte) {
	work := make(chan [][]byte)
	var wg sync.WaitGroup
	for range benchSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for recs := range work {
				if _, err := c.Settle(context.Background(), SettlementBatch{Records: recs}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for _, recs := range batches {
		work <- recs
	}
	close(work)
	wg.Wait()
}

func BenchmarkSettle(b *testing.B) { benchSettle(b, false) }

// BenchmarkSettleSyncFull is BenchmarkSettle with synchronous=FULL: one
// fsync per group commit.
func BenchmarkSettleSyncFull(b *testing.B) { benchSettle(b, true) }

func syncFull(full bool) func(*Config) {
	return func(c *Config) { c.SyncFull = full }
}

func benchSettle(b *testing.B, full bool) {
	l := newLab(b, syncFull(full))
	c := benchClient(b, l)
	devs := benchDevicesFor(b, l, "settle")
	batches := settlementBatches(devs, b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	settleAll(b, c, batches)
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "records/s")
	a := l.audit()
	if a.RecordsSettled != int64(b.N) {
		b.Fatalf("%d records settled, want %d", a.RecordsSettled, b.N)
	}
	floor, verifyFloor, floorCPU := settleFloors(b, devs, batches)
	b.ReportMetric(floor, "floor-records/s")
	b.ReportMetric(rate/floor, "of-floor")
	b.ReportMetric(verifyFloor, "verify-floor-records/s")
	b.ReportMetric(rate/verifyFloor, "of-verify-floor")
	reportCPU(b, cpu, floorCPU)
}

// reportCPU reports the CPU time per op of the benchmark and of its floor,
// and their ratio.
func reportCPU(b *testing.B, cpu, floor time.Duration) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(cpu), "cpu-us/op")
	b.ReportMetric(per(floor), "floor-cpu-us/op")
	if floor > 0 {
		b.ReportMetric(float64(cpu)/float64(floor), "x-floor-cpu")
	}
}

// settleFloors returns two floors in records per second: inserting the same
// rows into a bare SQLite table (same journal and sync settings, one
// transaction per batch, a prepared statement, no HTTP, no checks), and
// that plus verifying every record's signature on all cores first, the
// work no settlement can skip; and the CPU time of the two together.
func settleFloors(b *testing.B, devs []*simDevice, batches [][][]byte) (float64, float64, time.Duration) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "floor.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE records(device_id TEXT NOT NULL, atc INTEGER NOT NULL, amount INTEGER NOT NULL, raw BLOB NOT NULL, PRIMARY KEY(device_id, atc)) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	ins, err := db.Prepare(`INSERT INTO records(device_id, atc, amount, raw) VALUES(?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer ins.Close()
	parsed := make([][]DeviceRecord, len(batches))
	n := 0
	for i, recs := range batches {
		for _, raw := range recs {
			r, err := ParseDeviceRecord(raw)
			if err != nil {
				b.Fatal(err)
			}
			parsed[i] = append(parsed[i], r)
			n++
		}
	}
	keys := make(map[string]*ecdsa.PublicKey, len(devs))
	for _, d := range devs {
		keys[d.id] = &d.key.PublicKey
	}
	vstart, cpu0 := time.Now(), processCPU()
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(parsed); i += runtime.GOMAXPROCS(0) {
				for _, r := range parsed[i] {
					if err := r.Verify(keys[r.Device]); err != nil {
						b.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	verify := time.Since(vstart)
	start := time.Now()
	for i, recs := range parsed {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		st := tx.Stmt(ins)
		for k, r := range recs {
			if _, err := st.Exec(r.Device, int64(r.ATC), r.Amount, batches[i][k]); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	insert, cpu := time.Since(start), processCPU()-cpu0
	return float64(n) / insert.Seconds(), float64(n) / (insert + verify).Seconds(), cpu
}

func BenchmarkAuthorise(b *testing.B) { benchAuthorise(b, false) }

// BenchmarkAuthoriseSyncFull is BenchmarkAuthorise with synchronous=FULL.
func BenchmarkAuthoriseSyncFull(b *testing.B) { benchAuthorise(b, true) }

func benchAuthorise(b *testing.B, full bool) {
	l := newLab(b, syncFull(full))
	c := benchClient(b, l)
	devs := benchDevicesFor(b, l, "auth")
	reqs := authorisations(devs, b.N)
	b.ResetTimer()
	cpu0 := processCPU()
	lat := authoriseAll(b, c, reqs)
	cpu := processCPU() - cpu0
	b.StopTimer()
	p50, p99 := reportLatency(b, lat)
	floor, floorCPU := authoriseFloor(b, devs, reqs)
	f50, f99 := reportLatency(b, floor, "floor-")
	b.ReportMetric(p50/f50, "x-floor-p50")
	b.ReportMetric(p99/f99, "x-floor-p99")
	reportCPU(b, cpu, floorCPU)
}

// authoriseFloor sends reqs from the same number of clients to a server
// that decodes each request, verifies the record's signature with the
// device key and answers a signed approval: an authorisation's work less
// the backend's own (no database, no token or balance checks). It returns
// the latencies and the CPU time they took.
func authoriseFloor(b *testing.B, devs []*simDevice, reqs []AuthorisationRequest) ([]time.Duration, time.Duration) {
	keys := make(map[string]*ecdsa.PublicKey, len(devs))
	for _, d := range devs {
		keys[d.id] = &d.key.PublicKey
	}
	signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/authorisations", func(w http.ResponseWriter, r *http.Request) {
		var req AuthorisationRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec, err := ParseDeviceRecord(req.Record)
		if err == nil {
			err = rec.Verify(keys[rec.Device])
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		res := AuthorisationResult{DeviceID: rec.Device, ATC: rec.ATC, Amount: rec.Amount, Currency: rec.Currency,
			Status: Approved, Settled: true, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		if res.Signature, err = sign(signer, res.SignedBytes()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c, err := NewClient(hs.URL, &http.Client{Timeout: 30 * time.Second, Transport: tr})
	if err != nil {
		b.Fatal(err)
	}
	cpu0 := processCPU()
	lat := authoriseAll(b, c, reqs)
	return lat, processCPU() - cpu0
}

// BenchmarkAuthoriseDuringSettlement measures authorisations while other
// devices settle batches at the same time.
func BenchmarkAuthoriseDuringSettlement(b *testing.B) {
	l := newLab(b, nil)
	c := benchClient(b, l)
	devs := benchDevicesFor(b, l, "auth")
	settlers := benchDevicesFor(b, l, "bg")
	reqs := authorisations(devs, b.N)
	batches := settlementBatches(settlers, max(2000, 4*b.N))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, recs := range batches {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Settle(context.Background(), SettlementBatch{Records: recs}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	b.ResetTimer()
	lat := authoriseAll(b, c, reqs)
	b.StopTimer()
	close(stop)
	wg.Wait()
	p50, p99 := reportLatency(b, lat)
	floor, _ := authoriseFloor(b, devs, reqs)
	f50, f99 := reportLatency(b, floor, "floor-")
	b.ReportMetric(p50/f50, "x-floor-p50")
	b.ReportMetric(p99/f99, "x-floor-p99")
}

func authorisations(devs []*simDevice, n int) []AuthorisationRequest {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reqs := make([]AuthorisationRequest, n)
	for i := range reqs {
		reqs[i] = AuthorisationRequest{Record: devs[i%len(devs)].record(int64(1+i%300), "", at), Channel: "qr"}
	}
	return reqs
}

func authoriseAll(b *testing.B, c *Client, reqs []AuthorisationRequest) []time.Duration {
	lat := make([]time.Duration, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range benchAuthConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				res, err := c.Authorise(context.Background(), reqs[i])
				lat[i] = time.Since(t0)
				if err != nil || res.Status != Approved {
					b.Errorf("authorise: %+v %v", res, err)
				}
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	return lat
}

// reportLatency reports the median and p99 of lat in milliseconds, under
// the units prefix+"p50-ms" and prefix+"p99-ms", and returns them.
func reportLatency(b *testing.B, lat []time.Duration, prefix ...string) (p50, p99 float64) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	pre := strings.Join(prefix, "")
	p50, p99 = q(0.50), q(0.99)
	b.ReportMetric(p50, pre+"p50-ms")
	b.ReportMetric(p99, pre+"p99-ms")
	return p50, p99
}
