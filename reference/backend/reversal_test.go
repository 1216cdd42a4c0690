package backend

import (
	"testing"

	"github.com/spdlab/spdlab/reference/spd"
)

// TestReversals: a payment the device made that the issuer will not
// settle is reversed, by the issuer alone: the device gets its value back
// at its next contact (not as issued value), the record is answered
// "reversed" and acknowledged by every settlement, never paid, and the
// audit checks the reversal against the record.
func TestReversals(t *testing.T) {
	l := newLab(t, nil)
	d, other := newSimDevice(t, "reversed"), newSimDevice(t, "other")
	l.register(d, 1000, "")
	l.register(other, 1000, "")
	now := l.clock.Now()
	pay := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 300, Time: now, Payee: []byte("SHOP")})
	use := d.sign(spd.PendingRecord{ATC: 2, Kind: spd.KindUse, Mode: spd.ModeOffline, Time: now})
	settled := d.sign(spd.PendingRecord{ATC: 3, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 100, Time: now})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{settled}}); err != nil {
		t.Fatal(err)
	}

	before := l.snapshot()
	_, err := l.term.Reverse(bg, ReversalRequest{Record: pay, Reason: "refused at settlement"})
	wantCode(t, err, 403, CodeForbidden)
	_, err = l.c.Reverse(bg, ReversalRequest{Record: pay})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Reverse(bg, ReversalRequest{Record: settled, Reason: "x"})
	wantCode(t, err, 409, CodeConflict)
	forged := other.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 300, Time: now})
	copy(forged[len(forged)-8:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	_, err = l.c.Reverse(bg, ReversalRequest{Record: forged, Reason: "x"})
	if err == nil {
		t.Fatal("a forged record reversed")
	}
	out := d.sign(spd.PendingRecord{ATC: 9, Kind: spd.KindTransferOut, Mode: spd.ModeOffline, Amount: 1, Time: now, Serial: 1, Counterpart: other.raw})
	_, err = l.c.Reverse(bg, ReversalRequest{Record: out, Reason: "x"})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("refused reversals changed the stored state")
	}

	rv, err := l.c.Reverse(bg, ReversalRequest{Record: pay, Reason: "the payee's account is closed"})
	if err != nil || rv.Repeated || rv.Update == nil || rv.Update.TopUp != 300 || rv.Update.Reverses != 1 || len(rv.Update.Command) == 0 {
		t.Fatalf("reversal: %+v %v", rv, err)
	}
	if rv, err = l.c.Reverse(bg, ReversalRequest{Record: pay, Reason: "again"}); err != nil || !rv.Repeated {
		t.Fatalf("reversal again: %+v %v", rv, err)
	}
	if rv, err = l.c.Reverse(bg, ReversalRequest{Record: use, Reason: "bus cancelled"}); err != nil || rv.Update == nil || rv.Update.AddUses != 1 {
		t.Fatalf("reversal of a use: %+v %v", rv, err)
	}
	a := l.audit()
	if a.Issued != 2000 || a.Balances != 1900 || a.Settled != 100 {
		t.Fatalf("a reversal is not issued value: %+v", a)
	}
	reply, err := l.term.Contact(bg, d.id, Contact{})
	if err != nil || len(reply.Updates) != 2 || reply.Updates[0].Reverses != 1 {
		t.Fatalf("the device is given back its payment at contact: %+v %v", reply, err)
	}
	// Settled later, the record is acknowledged as reversed and pays nobody.
	ack, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{pay, use}})
	if err != nil || ack.Entries[0].Status != Reversed || ack.Entries[1].Status != Reversed || len(ack.Acknowledgements[0].ATCs) != 2 {
		t.Fatalf("settling a reversed payment: %+v %v", ack, err)
	}
	_, err = l.term.Authorise(bg, AuthorisationRequest{Record: pay, Channel: "qr"})
	wantCode(t, err, 409, CodeConflict)
	if a := l.audit(); a.Settled != 100 || a.PayeesPaid != 100 || len(a.Flagged) != 0 {
		t.Fatalf("a reversed payment was paid, or its device flagged: %+v", a)
	}
	// A reversing update that gives back more than the record paid.
	l.tamper(`UPDATE params SET body=$1 WHERE device_id=$2 AND counter=1`, []byte(`{"counter":1,"top_up":900,"reverses":1}`), d.id)
	a, _ = l.c.Audit(bg)
	if a.Conserved || len(a.Discrepancies) != 1 || a.Discrepancies[0].Source != "params" {
		t.Fatalf("a tampered reversal: %+v", a)
	}
}

// TestReversalOfADeclinedPayment: a payment the device made (it debits
// first) and the backend then declined online is never paid; the issuer
// reverses it like one refused at settlement: the device gets the amount
// back at its next contact, every settlement answers the record "reversed"
// and acknowledges it, and the books stay conserved. Before, the reversal
// was 409 conflict: the value stayed lost to the device, and the record,
// which no settlement would take (409, declined online), stayed on its
// ledger for good.
func TestReversalOfADeclinedPayment(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "declined")
	l.register(d, 100, "")
	pay := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 300, Time: l.clock.Now(), Payee: []byte("SHOP")})
	res, err := l.term.Authorise(bg, AuthorisationRequest{Record: pay, Channel: "qr"})
	if err != nil || res.Status != Declined {
		t.Fatalf("authorisation: %+v %v", res, err)
	}
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{pay}})
	wantCode(t, err, 409, CodeConflict)

	rv, err := l.c.Reverse(bg, ReversalRequest{Record: pay, Reason: "declined online after the device paid"})
	if err != nil || rv.Repeated || rv.Update == nil || rv.Update.TopUp != 300 || rv.Update.Reverses != 1 {
		t.Fatalf("reversal: %+v %v", rv, err)
	}
	if rv, err = l.c.Reverse(bg, ReversalRequest{Record: pay, Reason: "again"}); err != nil || !rv.Repeated {
		t.Fatalf("reversal again: %+v %v", rv, err)
	}
	ack, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{pay}})
	if err != nil || ack.Entries[0].Status != Reversed || len(ack.Acknowledgements[0].ATCs) != 1 {
		t.Fatalf("settling the reversed payment: %+v %v", ack, err)
	}
	_, err = l.term.Authorise(bg, AuthorisationRequest{Record: pay, Channel: "qr"})
	wantCode(t, err, 409, CodeConflict)
	if a := l.audit(); a.Issued != 100 || a.Balances != 100 || a.Settled != 0 || len(a.Flagged) != 0 {
		t.Fatalf("audit: %+v", a)
	}
}

// TestUseRecordCarriesNoAmount: a use write-off (kind 03) moves one use,
// never stored value (SPEC.md SPD-PAY-3: its record is of amount 0). A
// kind 03 record with an amount is 400 malformed at authorisation,
// settlement and reversal, and changes nothing. Before, the host took the
// amount from the issuer's view of the balance and paid it to the payee,
// while the device's own balance, which a use does not touch, kept it.
func TestUseRecordCarriesNoAmount(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "rider")
	l.register(d, 1000, "")
	use := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindUse, Mode: spd.ModeOffline, Amount: 500, Time: l.clock.Now(), Payee: []byte("BUS")})
	before := l.snapshot()
	_, err := l.term.Authorise(bg, AuthorisationRequest{Record: use, Channel: "qr"})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{use}})
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Reverse(bg, ReversalRequest{Record: use, Reason: "x"})
	wantCode(t, err, 400, CodeMalformed)
	if l.snapshot() != before {
		t.Fatal("a use record with an amount changed the stored state")
	}
	l.audit()
}
