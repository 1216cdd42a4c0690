package sdcard

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/rigs/link"
	channel "github.com/spdlab/spdlab/rigs/sdcard"
)

// shortAPDU is a SELECT by AID of the SPD application: 13 bytes out, a
// status word back from the test card.
var shortAPDU = []byte{0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}

// roundTrips times n exchanges of cmd over l, one by one.
func roundTrips(b *testing.B, l link.Link, cmd []byte, n int) []time.Duration {
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := l.Exchange(ctx, cmd); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkRoundTrip times a short APDU over link.Direct (the in-process
// baseline) and over the SD file channel, and reports the median and p99 round trip of
// each, and the channel's median as a ratio to Direct's measured in the same
// run:
//
//	go test -run='^$' -bench=RoundTrip -benchtime=2000x ./emulator/sdcard
func BenchmarkRoundTrip(b *testing.B) {
	direct := link.NewDirect(newCounterCard(), "ref", emulator.ATR(emulator.FormSD))
	b.Run("direct", func(b *testing.B) {
		d := roundTrips(b, direct, shortAPDU, b.N)
		b.ReportMetric(float64(percentile(d, 0.5).Nanoseconds())/1e3, "median-µs")
		b.ReportMetric(float64(percentile(d, 0.99).Nanoseconds())/1e3, "p99-µs")
	})
	b.Run("sd", func(b *testing.B) {
		_, dir := startDevice(b, newCounterCard(), Config{})
		p := openChannel(b, dir, channel.Config{})
		roundTrips(b, p, shortAPDU, 50) // warm up
		b.ResetTimer()
		d := roundTrips(b, p, shortAPDU, b.N)
		b.StopTimer()
		base := roundTrips(b, direct, shortAPDU, max(b.N, 100))
		med := percentile(d, 0.5)
		b.ReportMetric(float64(med.Nanoseconds())/1e3, "median-µs")
		b.ReportMetric(float64(percentile(d, 0.99).Nanoseconds())/1e3, "p99-µs")
		b.ReportMetric(float64(med)/float64(max(percentile(base, 0.5), 1)), "x-direct")
	})
}
