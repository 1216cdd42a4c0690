package spd

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestRateRoundTrip(t *testing.T) {
	key := testKey(t)
	id := []byte("DEVICE01")
	exp := time.Unix(1_800_000_000, 0).UTC()
	for _, r := range []Rate{
		{Kind: ExchangeUses, ATC: 1, Currency: 978, Numerator: 1, Denominator: 250, Expiry: exp},
		{Kind: ExchangeCurrency, ATC: 1 << 31, Currency: 978, TargetCurrency: 840, Numerator: 10_834, Denominator: 10_000, Expiry: exp},
	} {
		v, err := SealRate(key, id, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := OpenRate(&key.PublicKey, id, v)
		if err != nil || got != r {
			t.Fatalf("%+v: %+v, %v", r, got, err)
		}
		if _, err := OpenRate(&key.PublicKey, []byte("DEVICE02"), v); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("another device: %v", err)
		}
	}
	for _, bad := range []Rate{
		{Kind: 3, Numerator: 1, Denominator: 1},
		{Kind: ExchangeUses, Numerator: 0, Denominator: 1},
		{Kind: ExchangeUses, Numerator: 1, Denominator: 0},
		{Kind: ExchangeUses, TargetCurrency: 840, Numerator: 1, Denominator: 1},
		{Kind: ExchangeCurrency, Currency: 978, TargetCurrency: 978, Numerator: 1, Denominator: 1},
	} {
		if _, err := bad.Body(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestQuoteMatchesBig(t *testing.T) {
	amounts := []int64{1, 2, 3, 299, 300, 1000, 1 << 31, 1<<32 - 1, 1 << 32, 1<<62 - 1, 1 << 62}
	rates := []uint32{1, 2, 3, 7, 250, 9_134, 10_000, 10_834, 1<<31 + 1, 1<<32 - 1}
	for _, a := range amounts {
		for _, n := range rates {
			for _, d := range rates {
				tb, vb := QuoteBig(a, n, d)
				tg, v, err := Quote(a, n, d, 1<<62)
				if tb.Sign() == 0 || tb.Cmp(new(big.Int).Lsh(big.NewInt(1), 62)) > 0 {
					if !errors.Is(err, ErrExchangeRange) {
						t.Fatalf("%d at %d/%d: %d, %d, %v; want out of range", a, n, d, tg, v, err)
					}
					continue
				}
				if err != nil || tg != tb.Uint64() || v != vb.Int64() || v > a {
					t.Fatalf("%d at %d/%d: %d, %d, %v; want %s, %s", a, n, d, tg, v, err, tb, vb)
				}
			}
		}
	}
}

// FuzzOpenRate: DF77 of EXCHANGE, device side.
func FuzzOpenRate(f *testing.F) {
	key := testKey(f)
	id := []byte("DEVICE01")
	for _, r := range []Rate{
		{Kind: ExchangeUses, ATC: 1, Currency: 978, Numerator: 1, Denominator: 250, Expiry: time.Unix(1_800_000_000, 0)},
		{Kind: ExchangeCurrency, ATC: 9, Currency: 978, TargetCurrency: 840, Numerator: 10_834, Denominator: 10_000, Expiry: time.Unix(1_900_000_000, 0)},
	} {
		v, err := SealRate(key, id, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := OpenRate(&key.PublicKey, id, v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v is neither malformed nor a bad signature", err)
			}
			return
		}
		body, err := r.Body()
		if err != nil {
			t.Fatalf("an opened rate does not encode: %v", err)
		}
		if back, err := ParseRateBody(body); err != nil || back != r {
			t.Fatalf("rate %+v does not round-trip: %+v %v", r, back, err)
		}
	})
}

// FuzzParseExchangeRequest: EXCHANGE's data field, device side.
func FuzzParseExchangeRequest(f *testing.F) {
	at := time.Unix(1_800_000_000, 0).UTC()
	rate := []byte{0xDF, 0x78, 0x01, 0x01, 0x9F, 0x45, 0x01, 0x00}
	f.Add(byte(1), byte(0), Exchange(ExchangeRequest{Kind: ExchangeUses, Amount: 1000, Currency: 978, Time: at, Rate: rate}).Data)
	f.Add(byte(2), byte(0), Exchange(ExchangeRequest{Kind: ExchangeCurrency, Amount: 1 << 62, Currency: 978, Time: at, Rate: rate, Nonce: []byte("NONCE")}).Data)
	f.Fuzz(func(t *testing.T, p1, p2 byte, data []byte) {
		r, err := ParseExchangeRequest(p1, p2, data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadP1P2) {
				t.Fatalf("error %v is neither malformed nor P1-P2", err)
			}
			return
		}
		again, err := ParseExchangeRequest(p1, p2, Exchange(r).Data)
		if err != nil || again.Amount != r.Amount || !bytes.Equal(again.Rate, r.Rate) || !bytes.Equal(again.Nonce, r.Nonce) || !again.Time.Equal(r.Time) {
			t.Fatalf("request %+v does not round-trip: %+v %v", r, again, err)
		}
	})
}

// FuzzParseExchangeResult: EXCHANGE's answer, terminal side.
func FuzzParseExchangeResult(f *testing.F) {
	f.Add([]byte{0xE6, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseExchangeResult(b)
		if err != nil {
			return
		}
		again, err := ParseExchangeResult(x.Marshal())
		if err != nil || !bytes.Equal(again.Marshal(), x.Marshal()) {
			t.Fatalf("exchange result does not round-trip: %v", err)
		}
	})
}
