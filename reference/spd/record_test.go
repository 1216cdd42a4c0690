package spd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

func testKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPendingRecordRoundTrip(t *testing.T) {
	key := testKey(t)
	tests := []struct {
		name string
		rec  PendingRecord
	}{
		{"balance offline", PendingRecord{DeviceID: []byte("DEVICE01"), ATC: 7, Kind: KindBalance, Mode: ModeOffline,
			Amount: 1250, Currency: 978, Token: bytes.Repeat([]byte{0xA5}, TokenLen), Time: time.Unix(1_800_000_000, 0).UTC(), Payee: []byte("MERCHANT-42"),
			PayeeNonce: []byte("ORDER-7"), Nonce: bytes.Repeat([]byte{0x5C}, 16)}},
		{"use online", PendingRecord{DeviceID: []byte("DEVICE02"), ATC: 1, Kind: KindUse, Mode: ModeOnline,
			Currency: 156, Token: bytes.Repeat([]byte{0xA5}, TokenLen), Time: time.Unix(1_700_000_000, 0).UTC(), Nonce: []byte{1, 2, 3, 4}}},
		{"transfer out", PendingRecord{DeviceID: []byte("DEVICE03"), ATC: 0xFFFFFFFF, Kind: KindTransferOut,
			Amount: 1 << 40, Currency: 840, Token: bytes.Repeat([]byte{0xA5}, TokenLen), Time: time.Unix(5, 0).UTC(), Serial: 3, Counterpart: []byte("PAYEE001")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rec
			if err := r.Sign(key); err != nil {
				t.Fatal(err)
			}
			wire := r.Marshal()
			got, err := ParsePendingRecord(wire)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !bytes.Equal(got.Marshal(), wire) {
				t.Fatalf("re-marshal differs")
			}
			if got.ATC != r.ATC || got.Amount != r.Amount || got.Kind != r.Kind || !got.Time.Equal(r.Time) || got.Serial != r.Serial {
				t.Fatalf("got %+v, want %+v", got, r)
			}
			if err := got.Verify(&key.PublicKey); err != nil {
				t.Fatalf("verify: %v", err)
			}
			other := testKey(t)
			if err := got.Verify(&other.PublicKey); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify with another key: %v", err)
			}
			got.Amount++
			if err := got.Verify(&key.PublicKey); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify of altered amount: %v", err)
			}
		})
	}
}

func TestParsePendingRecordRejects(t *testing.T) {
	key := testKey(t)
	r := PendingRecord{DeviceID: []byte("DEVICE01"), ATC: 9, Kind: KindAccount, Mode: ModeOffline, Amount: 5, Currency: 978, Token: bytes.Repeat([]byte{0xA5}, TokenLen), Time: time.Unix(100, 0), Nonce: bytes.Repeat([]byte{7}, 16)}
	if err := r.Sign(key); err != nil {
		t.Fatal(err)
	}
	wire := r.Marshal()
	if _, err := ParsePendingRecord(wire); err != nil {
		t.Fatalf("the valid record: %v", err)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"truncated": wire[:len(wire)-3],
		"wrong tag": append([]byte{0xE2}, wire[1:]...),
		"trailing":  append(append([]byte(nil), wire...), 0),
	}
	noKind := r
	noKind.Kind = 9
	bad["unknown kind"] = noKind.Marshal()
	// Presence rules of SPEC.md section 8, each record re-signed so that
	// only the rule can refuse it.
	for name, mod := range map[string]func(*PendingRecord){
		"payment with a serial": func(r *PendingRecord) { r.Serial = 4 },
		"payment with a device": func(r *PendingRecord) { r.Counterpart = []byte("PAYEE001") },
		"transfer without serial": func(r *PendingRecord) {
			r.Kind, r.Counterpart, r.Nonce = KindTransferIn, []byte("PAYER001"), nil
		},
		"payment without a nonce": func(r *PendingRecord) { r.Nonce = nil },
		"nonce of 3 bytes":        func(r *PendingRecord) { r.Nonce = []byte{1, 2, 3} },
		"nonce of 33 bytes":       func(r *PendingRecord) { r.Nonce = make([]byte, 33) },
		"transfer with a nonce": func(r *PendingRecord) {
			r.Kind, r.Serial, r.Counterpart = KindTransferOut, 7, []byte("PAYEE001")
		},
		"transfer with a payee nonce": func(r *PendingRecord) {
			r.Kind, r.Serial, r.Counterpart, r.Nonce, r.PayeeNonce = KindTransferOut, 7, []byte("PAYEE001"), nil, []byte("REF")
		},
		"transfer without device": func(r *PendingRecord) { r.Kind, r.Serial, r.Nonce = KindReclaim, 7, nil },
		"transfer with a payee": func(r *PendingRecord) {
			r.Kind, r.Serial, r.Counterpart, r.Payee, r.Nonce = KindTransferOut, 7, []byte("PAYEE001"), []byte("SHOP"), nil
		},
	} {
		m := r
		mod(&m)
		if err := m.Sign(key); err != nil {
			t.Fatal(err)
		}
		bad[name] = m.Marshal()
	}
	for name, b := range bad {
		if _, err := ParsePendingRecord(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzParsePendingRecord(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r := PendingRecord{DeviceID: []byte("DEVICE01"), ATC: 9, Kind: KindAccount, Mode: ModeOffline, Amount: 5, Currency: 978, Token: bytes.Repeat([]byte{0xA5}, TokenLen), Time: time.Unix(100, 0), Nonce: []byte("NONCE-01")}
	_ = r.Sign(key)
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParsePendingRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatalf("accepted a non-canonical record")
		}
	})
}
