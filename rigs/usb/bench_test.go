package usb_test

import (
	"context"
	"slices"
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
// median and 99th percentile round trip in microseconds.
//
//	go test -run=^$ -bench=RoundTrip -benchtime=20000x ./rigs/usb
func BenchmarkRoundTrip(b *testing.B) {
	selectSPD := append(append([]byte{0x00, 0xA4, 0x04, 0x00, 0x08}, spdAID...), 0x00)
	atr := emulator.ATR(emulator.FormUSB)
	b.Run("direct", func(b *testing.B) {
		l := link.NewDirect(&selectCard{}, "ref", atr)
		defer l.Close()
		roundTrips(b, l, selectSPD)
	})
	b.Run("usbccid", func(b *testing.B) {
		rd := usbccid.New(&selectCard{}, usbccid.Config{})
		defer rd.Close()
		l, err := usb.New(context.Background(), rd, usb.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		roundTrips(b, l, selectSPD)
	})
}

func roundTrips(b *testing.B, l link.Link, cmd []byte) {
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
}
