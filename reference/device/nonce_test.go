package device

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// TestPaymentRecordBindsPayeeAndNonce: SPD-PAY-8. A record carries the
// PAY's payee, payee nonce and terminal nonce; without a terminal nonce
// the device draws its own, the same on every export and different for
// every payment.
func TestPaymentRecordBindsPayeeAndNonce(t *testing.T) {
	r := newRig(t, "NONCE001")
	r.login(t)
	ctx := context.Background()
	at := r.profile.Time.Add(time.Minute)
	withNonce := spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 1_00, Currency: r.profile.Currency,
		Time: at, Region: 276, Payee: []byte("SHOP-1"), PayeeNonce: []byte("ORDER-1"), TerminalNonce: []byte("TERMINAL-NONCE-1")}
	r.expect(t, spd.Pay(withNonce), apdu.SWOK)
	bare := withNonce
	bare.Payee, bare.PayeeNonce, bare.TerminalNonce = nil, nil, nil
	r.expect(t, spd.Pay(bare), apdu.SWOK)
	r.expect(t, spd.Pay(bare), apdu.SWOK)
	recs, err := r.c.PendingRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	if got := recs[0]; string(got.Payee) != "SHOP-1" || string(got.PayeeNonce) != "ORDER-1" || string(got.Nonce) != "TERMINAL-NONCE-1" {
		t.Fatalf("record of the PAY with payee and nonces: payee %q, payee nonce %q, nonce %q", got.Payee, got.PayeeNonce, got.Nonce)
	}
	if len(recs[1].Nonce) != 16 || len(recs[2].Nonce) != 16 || bytes.Equal(recs[1].Nonce, recs[2].Nonce) {
		t.Fatalf("the device's own nonces: %X, %X", recs[1].Nonce, recs[2].Nonce)
	}
	if len(recs[1].Payee) != 0 || len(recs[1].PayeeNonce) != 0 {
		t.Fatalf("a PAY without payee recorded payee %q, payee nonce %q", recs[1].Payee, recs[1].PayeeNonce)
	}
	again, err := r.c.ReadPending(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Body(), recs[1].Body()) {
		t.Fatalf("a second export of the record differs: nonce %X, then %X", recs[1].Nonce, again.Nonce)
	}
}

// TestRecordFromBeforeTheNonce: a payment record stored before SPD-PAY-8
// (no payee nonce or nonce in the store) exports with a nonce fixed by its
// stored bytes.
func TestRecordFromBeforeTheNonce(t *testing.T) {
	old := record{Kind: spd.KindBalance, Mode: spd.ModeOffline, ATC: 3, Amount: 5, Time: 9, Token: []byte("TOKEN")}
	b := old.marshal()
	b = b[:len(b)-2] // the layout before: token, payee, counterpart
	first, err := parseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := parseRecord(b)
	if len(first.Nonce) != 16 || !bytes.Equal(first.Nonce, second.Nonce) {
		t.Fatalf("legacy nonce %X, %X", first.Nonce, second.Nonce)
	}
	transfer := record{Kind: spd.KindTransferOut, ATC: 4, Amount: 5, Serial: 1, Token: []byte("TOKEN"), Counterpart: []byte("PAYEE001")}
	got, err := parseRecord(transfer.marshal())
	if err != nil || len(got.Nonce) != 0 {
		t.Fatalf("transfer record: %v, nonce %X", err, got.Nonce)
	}
}
