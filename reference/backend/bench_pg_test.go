package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkStationsPostgres compares the shared store with the embedded
// one in the same run: four stations (concurrent clients) settle b.N
// records in batches, then send b.N online authorisations, first to one
// backend on SQLite, then to two backends (in this process, each with its
// own connection pool, as two processes would have) on one PostgreSQL
// database of the private test server, the stations spread over them. It
// reports each figure and PostgreSQL's as a ratio to SQLite's:
// pg-x-sqlite-settle (records/s, above 1 is faster) and
// pg-x-sqlite-auth-p99 (latency, above 1 is slower), and the transactions
// PostgreSQL aborted and the backends ran again, per record.
//
//	go test -run='^$' -bench=BenchmarkStationsPostgres -benchtime=4000x ./reference/backend
func BenchmarkStationsPostgres(b *testing.B) {
	sqRate, sqP99, _ := stationsRun(b, filepath.Join(b.TempDir(), "stations.db"), 1)
	pgRate, pgP99, retries := stationsRun(b, newPGDatabase(b), 2)
	b.ReportMetric(float64(retries)/float64(b.N), "pg-retries/record")
	b.ReportMetric(sqRate, "sqlite-records/s")
	b.ReportMetric(pgRate, "pg-records/s")
	b.ReportMetric(pgRate/sqRate, "pg-x-sqlite-settle")
	b.ReportMetric(sqP99, "sqlite-auth-p99-ms")
	b.ReportMetric(pgP99, "pg-auth-p99-ms")
	b.ReportMetric(pgP99/sqP99, "pg-x-sqlite-auth-p99")
}

// benchStations is the number of stations uploading at once.
const benchStations = 4

// stationsRun serves db from the given number of backends and returns the
// settlement rate of the stations and the p99 of their authorisations.
func stationsRun(b *testing.B, db string, backends int) (recordsPerSec, p99ms float64, retries int64) {
	b.StopTimer()
	l := newLabOn(b, db, nil)
	clients := []*Client{benchClient(b, l)}
	srvs := []*Server{l.srv}
	for range backends - 1 {
		s, err := Open(l.cfg)
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		b.Cleanup(func() { hs.Close(); s.Close() })
		srvs = append(srvs, s)
		tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
		b.Cleanup(tr.CloseIdleConnections)
		c, err := NewClient(hs.URL, &http.Client{Timeout: 30 * time.Second, Transport: tr})
		if err != nil {
			b.Fatal(err)
		}
		c.Credential = testIssuerToken
		clients = append(clients, c)
	}
	devs := benchDevicesFor(b, l, "station")
	batches := settlementBatches(devs, b.N)
	reqs := authorisations(benchDevicesFor(b, l, "online"), b.N)

	b.StartTimer()
	start := time.Now()
	stations(len(batches), func(st, i int) error {
		_, err := clients[st%len(clients)].Settle(context.Background(), SettlementBatch{Records: batches[i]})
		return err
	}, b)
	recordsPerSec = float64(b.N) / time.Since(start).Seconds()
	lat := make([]time.Duration, len(reqs))
	stations(len(reqs), func(st, i int) error {
		t0 := time.Now()
		res, err := clients[st%len(clients)].Authorise(context.Background(), reqs[i])
		lat[i] = time.Since(t0)
		if err == nil && res.Status != Approved {
			b.Errorf("authorisation %d: %+v", i, res)
		}
		return err
	}, b)
	b.StopTimer()

	if a := l.audit(); a.RecordsSettled != int64(2*b.N) || !a.Conserved {
		b.Fatalf("audit after the run: %+v, want %d records settled", a, 2*b.N)
	}
	slices.Sort(lat)
	for _, s := range srvs {
		retries += s.retries.Load()
	}
	return recordsPerSec, float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()) / 1000, retries
}

// stations runs do(station, i) for i in 0..n-1 from benchStations
// goroutines, each taking the next i.
func stations(n int, do func(station, i int) error, b *testing.B) {
	next := make(chan int)
	var wg sync.WaitGroup
	for st := range benchStations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(st, i); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
