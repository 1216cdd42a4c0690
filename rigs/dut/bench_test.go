package dut

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
)

// roundTrips times n SELECTs over l and returns the sorted durations.
func roundTrips(tb testing.TB, l link.Link, n int) []time.Duration {
	tb.Helper()
	ctx := context.Background()
	sel := spd.Select().MustBytes()
	for i := 0; i < 50; i++ { // warm up
		if _, err := l.Exchange(ctx, sel); err != nil {
			tb.Fatal(err)
		}
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		start := time.Now()
		resp, err := l.Exchange(ctx, sel)
		ds[i] = time.Since(start)
		if err != nil {
			tb.Fatal(err)
		}
		if len(resp) < 2 || resp[len(resp)-2] != 0x90 {
			tb.Fatalf("SELECT answered % X", resp)
		}
	}
	slices.Sort(ds)
	return ds
}

func quantile(ds []time.Duration, q float64) time.Duration {
	return ds[int(q*float64(len(ds)-1))]
}

// BenchmarkRoundTrip measures a short APDU (SELECT) on every transport the
// machine offers and reports each median and p99 with its ratio to the
// in-process link measured in the same run. b.N sets the samples per
// transport.
func BenchmarkRoundTrip(b *testing.B) {
	n := max(b.N, 200)
	ctx := context.Background()
	direct, err := Open(ctx, "ref", Options{})
	if err != nil {
		b.Fatal(err)
	}
	base := roundTrips(b, direct.Link, n)
	direct.Close()
	baseMed := quantile(base, 0.5)
	b.ReportMetric(float64(baseMed.Nanoseconds())/1e3, "ref-median-us")
	for _, spec := range []string{"usb-emu", "sd-emu", "serial-emu", "pcsc-emu"} {
		if _, ok := openers[spec]; !ok {
			continue
		}
		d, err := Open(ctx, spec, Options{})
		if err != nil {
			b.Logf("%s: not measured: %v", spec, err)
			continue
		}
		ds := roundTrips(b, d.Link, n)
		d.Close()
		med, p99 := quantile(ds, 0.5), quantile(ds, 0.99)
		b.ReportMetric(float64(med.Nanoseconds())/1e3, spec+"-median-us")
		b.ReportMetric(float64(p99.Nanoseconds())/1e3, spec+"-p99-us")
		b.ReportMetric(float64(med)/float64(baseMed), spec+"-x-ref")
		if spec == "serial-emu" {
			reportPTYFloor(b, n, ds)
		}
	}
}

// reportPTYFloor reports the round trip of bare bytes over a pty in raw
// mode (ptyRoundTrips), serial-emu's floor, and serial-emu's median and
// mean (ds) as ratios to it: how much of serial-emu's round trip is the
// rig and the emulator, how much the kernel's pty and its wake-ups.
func reportPTYFloor(b *testing.B, n int, ds []time.Duration) {
	floor := ptyRoundTrips(b, n)
	if floor == nil {
		return
	}
	med := quantile(floor, 0.5)
	b.ReportMetric(float64(med.Nanoseconds())/1e3, "pty-floor-median-us")
	b.ReportMetric(float64(mean(floor).Nanoseconds())/1e3, "pty-floor-mean-us")
	b.ReportMetric(float64(quantile(ds, 0.5))/float64(med), "serial-emu-x-pty-median")
	b.ReportMetric(float64(mean(ds))/float64(mean(floor)), "serial-emu-x-pty-mean")
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// BenchmarkManyDevices serves 1000 personalised reference devices from
// this process, each paying once per round (b.N rounds), and reports the
// heap each device holds once personalised. Keep b.N small (-benchtime=10x):
// every payment stays in its device's ledger.
func BenchmarkManyDevices(b *testing.B) {
	const devices = 1000
	ctx := context.Background()
	is, err := issuer.Generate("bench")
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	clients := make([]*spd.Client, devices)
	profiles := make([]spd.Profile, devices)
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range clients {
		dev := device.New(store.NewMemory(), device.Config{MaxLedger: 1 << 16})
		c := spd.NewClient(link.NewDirect(dev, fmt.Sprintf("ref-%d", i), nil))
		clients[i] = c
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p := benchProfile(i)
			got, err := is.Personalise(ctx, c, p)
			if err != nil {
				errs <- err
				return
			}
			profiles[i] = got
			if _, err := c.Select(ctx); err != nil {
				errs <- err
				return
			}
			if err := c.VerifyPIN(ctx, p.PIN); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perDevice := float64(after.HeapAlloc-before.HeapAlloc) / devices
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func(i int, c *spd.Client) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := spd.PayRequest{Kind: spd.KindUse, Mode: spd.ModeOnline, Currency: 978, Time: profiles[i].Time}
				if _, err := c.Pay(ctx, r); err != nil {
					b.Error(err)
				}
			}(i, c)
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(perDevice/1024, "KiB/device")
	b.ReportMetric(float64(devices*b.N)/b.Elapsed().Seconds(), "payments/s")
}

func benchProfile(i int) spd.Profile {
	id := []byte{0xBE, 0x4C, 0, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	tok := make([]byte, spd.TokenLen)
	copy(tok[8:], id)
	return spd.Profile{
		DeviceID: id, Currency: 978, Balance: 1_000_00, Uses: 1_000_000, Account: []byte("ACCOUNT"), AccountToken: tok,
		PIN: "1234", PUK: "12345678", PINTryLimit: 3,
		Limits: spd.Limits{MaxPayment: 100_00, MaxPending: 1_000_000_00, MaxOfflineCount: 60, MaxOfflineAge: 1000 * time.Hour},
		Time:   time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
	}
}
