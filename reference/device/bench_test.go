package device

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// BenchmarkPayment measures one PAY through Process: parse, checks, one
// signature, one store transaction. Compare with BenchmarkECDSASignFloor
// in the same run: the aim is at most 1.5x.
func BenchmarkPayment(b *testing.B) {
	r := newRig(b, "BENCH001")
	r.login(b)
	pay := spd.Pay(spd.PayRequest{Kind: spd.KindAccount, Mode: spd.ModeOnline, Amount: 100, Currency: 978, Time: t0, Region: 276}).MustBytes()
	ack := func() {
		cmd := r.hostOrder(b, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
			atcs := make([]uint32, 0, len(r.dev.pend))
			for _, p := range r.dev.pend {
				atcs = append(atcs, p.ATC)
			}
			return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: t0, ATCs: atcs})
		})
		r.expect(b, cmd, apdu.SWOK)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(r.dev.pend) == r.dev.cfg.MaxLedger {
			b.StopTimer()
			ack()
			b.StartTimer()
		}
		resp := r.dev.Process(pay)
		if len(resp) < 2 || resp[len(resp)-2] != 0x90 {
			b.Fatalf("PAY answered %X", resp)
		}
	}
}

// BenchmarkECDSASignFloor is the floor for BenchmarkPayment: one bare
// ECDSA P-256 signature over a SHA-256 digest.
func BenchmarkECDSASignFloor(b *testing.B) {
	key := keyFromSeed("floor")
	digest := sha256.Sum256([]byte("payment"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPaymentRatio interleaves one payment's Process and one bare
// signature in every iteration, so that both see the same machine load,
// and reports the median of each and the ratio of the medians (aim: at
// most 1.5). Medians keep a shared, busy machine's preemptions out of the
// figure.
func BenchmarkPaymentRatio(b *testing.B) {
	r := newRig(b, "BENCH002")
	r.login(b)
	pay := spd.Pay(spd.PayRequest{Kind: spd.KindAccount, Mode: spd.ModeOnline, Amount: 100, Currency: 978, Time: t0, Region: 276}).MustBytes()
	key := keyFromSeed("floor")
	digest := sha256.Sum256([]byte("payment"))
	payT := make([]time.Duration, 0, b.N)
	signT := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(r.dev.pend) == r.dev.cfg.MaxLedger {
			atcs := make([]uint32, 0, len(r.dev.pend))
			for _, p := range r.dev.pend {
				atcs = append(atcs, p.ATC)
			}
			cmd, err := spd.Acknowledge(r.is.HostKey(), r.profile.DeviceID, spd.Acknowledgement{SyncTime: t0, ATCs: atcs})
			if err != nil {
				b.Fatal(err)
			}
			r.expect(b, cmd, apdu.SWOK)
		}
		start := time.Now()
		resp := r.dev.Process(pay)
		mid := time.Now()
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		if len(resp) < 2 || resp[len(resp)-2] != 0x90 {
			b.Fatalf("PAY answered %X", resp)
		}
		payT = append(payT, mid.Sub(start))
		signT = append(signT, end.Sub(mid))
	}
	pay50, sign50 := median(payT), median(signT)
	b.ReportMetric(float64(pay50.Nanoseconds()), "pay-median-ns")
	b.ReportMetric(float64(sign50.Nanoseconds()), "sign-median-ns")
	b.ReportMetric(float64(pay50)/float64(sign50), "pay/sign")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
