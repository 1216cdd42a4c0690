package backend

import (
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// TestPayeesPaidAndAccountsBilled: settlement credits the payee each
// record names (online authorisation and batch, captured holds included);
// account payments appear on the bill of their period; the audit's
// payees_paid equals settled and billed sums the account payments.
func TestPayeesPaidAndAccountsBilled(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "shopper")
	l.register(d, 10_000, "")
	nov := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	dec := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	rec := func(atc uint32, kind spd.PaymentKind, amount int64, payee string, at time.Time) []byte {
		return d.sign(spd.PendingRecord{ATC: atc, Kind: kind, Mode: spd.ModeOffline, Amount: amount, Time: at, Payee: []byte(payee)})
	}
	if _, err := l.term.Authorise(bg, AuthorisationRequest{Record: rec(1, spd.KindBalance, 300, "SHOP-A", nov), Channel: "qr"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.term.Authorise(bg, AuthorisationRequest{Record: rec(2, spd.KindAccount, 150, "SHOP-B", nov), Channel: "qr", Hold: true}); err != nil {
		t.Fatal(err)
	}
	batch := [][]byte{rec(2, spd.KindAccount, 150, "SHOP-B", nov), rec(3, spd.KindAccount, 200, "SHOP-A", nov),
		rec(4, spd.KindAccount, 50, "SHOP-A", dec), rec(5, spd.KindUse, 0, "BUS", nov), rec(6, spd.KindBalance, 25, "", nov)}
	if _, err := l.term.Settle(bg, SettlementBatch{BatchID: "b1", Records: batch}); err != nil {
		t.Fatal(err)
	}
	// The same batch again pays nobody twice.
	if _, err := l.term.Settle(bg, SettlementBatch{BatchID: "b1", Records: batch}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]int64{"SHOP-A": {550, 3}, "SHOP-B": {150, 1}, "BUS": {0, 1}} {
		p, err := l.c.Payee(bg, name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Balance != want[0] || p.Records != want[1] {
			t.Errorf("payee %s: balance %d over %d records, want %d over %d", name, p.Balance, p.Records, want[0], want[1])
		}
	}
	_, err := l.c.Payee(bg, "NOBODY")
	wantCode(t, err, 404, CodeNotFound)

	b, err := l.c.Bill(bg, d.id, "2026-11")
	if err != nil {
		t.Fatal(err)
	}
	if b.Total != 350 || len(b.Lines) != 2 || b.Lines[0].ATC != 2 || b.Lines[1].Payee != "SHOP-A" || b.Account == "ACC-shopper" {
		t.Fatalf("November bill: %+v", b)
	}
	if b, err = l.c.Bill(bg, d.id, "2026-12"); err != nil || b.Total != 50 || len(b.Lines) != 1 {
		t.Fatalf("December bill: %+v, %v", b, err)
	}
	_, err = l.c.Bill(bg, d.id, "11/2026")
	wantCode(t, err, 400, CodeMalformed)
	_, err = l.c.Bill(bg, devID("stranger"), "2026-11")
	wantCode(t, err, 404, CodeNotFound)
	// Bills and payee accounts are the issuer's: a terminal or anyone
	// else is refused.
	_, err = l.term.Bill(bg, d.id, "2026-11")
	wantCode(t, err, 403, CodeForbidden)
	_, err = l.term.Payee(bg, "SHOP-A")
	wantCode(t, err, 403, CodeForbidden)
	anon, _ := NewClient(l.http.URL, nil)
	_, err = anon.Bill(bg, d.id, "2026-11")
	wantCode(t, err, 401, CodeUnauthorised)

	a := l.audit()
	if a.Settled != 725 || a.PayeesPaid != a.Settled || a.Billed != 400 || a.Payees != 4 {
		t.Fatalf("audit: settled %d, payees_paid %d, billed %d, payees %d", a.Settled, a.PayeesPaid, a.Billed, a.Payees)
	}
}

// TestPayeeBalanceTamperingIsFound: a payee balance changed in the
// database, or a payee account removed, is a discrepancy naming it.
func TestPayeeBalanceTamperingIsFound(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "shopper")
	l.register(d, 10_000, "")
	r := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 400, Time: l.clock.Now(), Payee: []byte("SHOP-A")})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{r}}); err != nil {
		t.Fatal(err)
	}
	for _, tamper := range []string{`UPDATE payees SET balance=balance+100`, `DELETE FROM payees`} {
		if _, err := l.srv.wdb.Exec(tamper); err != nil {
			t.Fatal(err)
		}
		a, err := l.c.Audit(bg)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range a.Discrepancies {
			found = found || (x.Source == "payees" && x.Payee == "SHOP-A")
		}
		if a.Conserved || !found {
			t.Fatalf("after %s: conserved %v, discrepancies %+v", tamper, a.Conserved, a.Discrepancies)
		}
	}
}

// TestBillOfDamagedBooks: a stored account payment that is no longer the
// device's signed record makes GET bill answer a defined error naming it
// (409 damaged_record, not 500), keeps the row, and the audit names it.
func TestBillOfDamagedBooks(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "billed")
	l.register(d, 10_000, "")
	nov := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	r := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindAccount, Mode: spd.ModeOffline, Amount: 150, Time: nov, Payee: []byte("SHOP-B")})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{r}}); err != nil {
		t.Fatal(err)
	}
	// Bytes that do not parse, then another device's well-formed record.
	e := newSimDevice(t, "elsewhere")
	for _, raw := range [][]byte{{0}, e.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindAccount, Mode: spd.ModeOffline, Amount: 150, Time: nov})} {
		l.tamper(`UPDATE records SET raw=$1`, raw)
		_, err := l.c.Bill(bg, d.id, "2026-11")
		ae := wantCode(t, err, 409, CodeDamaged)
		if !strings.Contains(ae.Reason, "ATC 1") {
			t.Fatalf("the refusal does not name the record: %s", ae.Reason)
		}
		var n int
		if err := l.srv.rdb.QueryRow(`SELECT count(*) FROM records WHERE device_id=$1 AND atc=1`, d.id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("the damaged record is gone: %d %v", n, err)
		}
		a, err := l.c.Audit(bg)
		if err != nil || a.Conserved || len(a.Discrepancies) == 0 || a.Discrepancies[0].Source != "records" {
			t.Fatalf("the audit does not name the damaged record: %+v %v", a, err)
		}
	}
}

// TestPayeeRegistration: the issuer registers a payee, which gets a
// credential of its own that reads its account and no other; nobody else
// reads it, a terminal neither; registering twice is refused; a payee
// credited before it registered keeps what it was paid.
func TestPayeeRegistration(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "shopper")
	l.register(d, 10_000, "")
	r := d.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 400, Time: l.clock.Now(), Payee: []byte("SHOP-A")})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{r}}); err != nil {
		t.Fatal(err)
	}
	_, err := l.term.RegisterPayee(bg, PayeeRegistration{Payee: "SHOP-A"})
	wantCode(t, err, 403, CodeForbidden)
	a, err := l.c.RegisterPayee(bg, PayeeRegistration{Payee: "SHOP-A"})
	if err != nil || a.Balance != 400 || a.Records != 1 || len(a.Credential) < MinTokenLen {
		t.Fatalf("registration of a payee paid before: %+v %v", a, err)
	}
	_, err = l.c.RegisterPayee(bg, PayeeRegistration{Payee: "SHOP-A"})
	wantCode(t, err, 409, CodeConflict)
	b, err := l.c.RegisterPayee(bg, PayeeRegistration{Payee: "SHOP-B"})
	if err != nil || b.Balance != 0 {
		t.Fatalf("registration of a new payee: %+v %v", b, err)
	}
	_, err = l.c.RegisterPayee(bg, PayeeRegistration{Payee: ""})
	wantCode(t, err, 400, CodeMalformed)

	shopA, _ := NewClient(l.http.URL, nil)
	shopA.Credential = a.Credential
	if p, err := shopA.Payee(bg, "SHOP-A"); err != nil || p.Balance != 400 {
		t.Fatalf("the payee reads its own account: %+v %v", p, err)
	}
	_, err = shopA.Payee(bg, "SHOP-B")
	wantCode(t, err, 401, CodeUnauthorised)
	_, err = shopA.Audit(bg)
	wantCode(t, err, 401, CodeUnauthorised)
	_, err = l.term.Payee(bg, "SHOP-A")
	wantCode(t, err, 403, CodeForbidden)
	anon, _ := NewClient(l.http.URL, nil)
	_, err = anon.Payee(bg, "SHOP-A")
	wantCode(t, err, 401, CodeUnauthorised)
	if p, err := l.c.Payee(bg, "SHOP-B"); err != nil || p.Balance != 0 {
		t.Fatalf("the issuer reads a registered payee never paid: %+v %v", p, err)
	}
	if a := l.audit(); a.PayeesPaid != 400 || a.Payees != 2 {
		t.Fatalf("audit: %+v", a)
	}
}
