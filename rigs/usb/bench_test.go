package usb_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/usbccid"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/usb"
)

// BenchmarkRoundTrip measures one short APDU (SELECT by AID, 14 bytes in,
// 14 bytes out) in process (link.Direct, the baseline) and through the
// emulated CCID reader's bulk endpoints. Besides ns/op it reports the
// median and 99th percentile round trip in microseconds, and for the CCID
// run the ratio of its median to the in-process median of the same run.
//
//	go test -run=^$ -bench=RoundTrip -benchtime=20000x ./rigs/usb
func BenchmarkRoundTrip(b *testing.B) {
	selectSPD := append(append([]byte{0x00, 0xA4, 0x04, 0x00, 0x08}, spdAID...), 0x00)
	atr := emulator.ATR(emulator.FormUSB)
	b.Run("direct", func(b *testing.B) {
		l := link.NewDirect(&selectCard{}, "ref", atr)
		defer l.Close()
		directMedian = roundTrips(b, l, selectSPD)
	})
	b.Run("usbccid", func(b *testing.B) {
		rd := usbccid.New(&selectCard{}, usbccid.Config{})
		defer rd.Close()
		l, err := usb.New(context.Background(), rd, usb.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		median := roundTrips(b, l, selectSPD)
		if directMedian > 0 {
			b.ReportMetric(median/directMedian, "x-direct")
		}
	})
}

// directMedian is the in-process median of the current run, in µs.
var directMedian float64

// roundTrips runs b.N exchanges of cmd and returns the median in µs.
func roundTrips(b *testing.B, l link.Link, cmd []byte) float64 {
	ctx := context.Background()
	times := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := l.Exchange(ctx, cmd)
		times = append(times, time.Since(start))
		if err != nil || len(resp) != 14 {
			b.Fatalf("Exchange = %X, %v", resp, err)
		}
	}
	b.StopTimer()
	slices.Sort(times)
	us := func(q float64) float64 {
		return float64(times[int(q*float64(len(times)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(us(0.5), "median-us")
	b.ReportMetric(us(0.99), "p99-us")
	return us(0.5)
}

// BenchmarkManyReaders serves 1,000 emulated CCID readers, each with its
// own card and host link, from one process: every reader answers one
// SELECT per iteration, all concurrently. It reports the memory each
// reader and its link hold.
//
//	go test -run=^$ -bench=ManyReaders -benchtime=10x ./rigs/usb
func BenchmarkManyReaders(b *testing.B) {
	const readers = 1000
	selectSPD := append(append([]byte{0x00, 0xA4, 0x04, 0x00, 0x08}, spdAID...), 0x00)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	links := make([]*usb.Link, readers)
	for i := range links {
		rd := usbccid.New(&selectCard{}, usbccid.Config{})
		defer rd.Close() // at the end of this run, so that the next measures alone
		l, err := usb.New(context.Background(), rd, usb.Config{})
		if err != nil {
			b.Fatal(err)
		}
		links[i] = l
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perReader := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / readers
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for _, l := range links {
			wg.Go(func() {
				if resp, err := l.Exchange(context.Background(), selectSPD); err != nil || len(resp) != 14 {
					b.Errorf("Exchange = %X, %v", resp, err)
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*readers), "us/exchange")
	b.ReportMetric(perReader, "heap-B/reader")
}
