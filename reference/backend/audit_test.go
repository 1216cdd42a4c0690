package backend

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// TestTopUpsCannotOverflow: top-ups stop at the issuer's limit (2^53 of
// issued value) with a clear refusal, and the audit keeps answering.
func TestTopUpsCannotOverflow(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "rich")
	l.register(d, 1000, "")
	if _, err := l.c.QueueParameter(bg, d.id, ParameterUpdate{TopUp: maxAmount - 1000}); err != nil {
		t.Fatal(err)
	}
	for _, top := range []int64{1, maxAmount} {
		_, err := l.c.QueueParameter(bg, d.id, ParameterUpdate{TopUp: top})
		wantCode(t, err, 422, CodeLimit)
	}
	e := newSimDevice(t, "second")
	_, err := l.c.Register(bg, Registration{DeviceID: e.id, PublicKey: e.pkix(), Account: "A", Currency: 156, InitialBalance: 1})
	wantCode(t, err, 422, CodeLimit)
	a := l.audit()
	if a.Issued != maxAmount || a.Balances != maxAmount {
		t.Fatalf("audit: %+v", a)
	}
	if _, err := l.c.Device(bg, d.id); err != nil {
		t.Fatal(err)
	}
}

// TestStrictTables: a stored value of the wrong type is refused by the
// database itself.
func TestStrictTables(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "typed")
	l.register(d, 1000, "")
	for _, q := range []string{
		`UPDATE devices SET balance = 1.5e19 WHERE id = '` + d.id + `'`,
		`UPDATE devices SET issued = 'lots' WHERE id = '` + d.id + `'`,
	} {
		if _, err := l.srv.wdb.Exec(q); err == nil {
			t.Fatalf("%s: stored", q)
		}
	}
}

// tamper changes the database under the backend, as a flipped byte or an
// editor would.
func (l *lab) tamper(q string, args ...any) {
	l.t.Helper()
	if _, err := l.srv.wdb.Exec(q, args...); err != nil {
		l.t.Fatal(err)
	}
}

// TestAuditNamesEachDiscrepancy: every changed stored value is found and
// named with its device and record, and the audit never fails.
func TestAuditNamesEachDiscrepancy(t *testing.T) {
	l := newLab(t, nil)
	p, q := newSimDevice(t, "p"), newSimDevice(t, "q")
	l.register(p, 1000, "")
	l.register(q, 500, "")
	first := p.record(100, "", l.clock.Now())
	if _, err := l.c.Settle(bg, SettlementBatch{Records: [][]byte{first, p.record(50, "", l.clock.Now())}}); err != nil {
		t.Fatal(err)
	}
	l.audit()
	firstRec, err := ParseDeviceRecord(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, q   string
		args      []any
		source    string
		device    string
		atc       int64
		detail    string
		undo      string
		undoArgs  []any
		wantFound int64
	}{
		{"balance +1", `UPDATE devices SET balance = balance + 1 WHERE id = $1`, []any{q.id}, "devices", q.id, 0, "balance differs",
			`UPDATE devices SET balance = balance - 1 WHERE id = $1`, []any{q.id}, 501},
		{"issued +1", `UPDATE devices SET issued = issued + 1 WHERE id = $1`, []any{p.id}, "devices", p.id, 0, "issued differs",
			`UPDATE devices SET issued = issued - 1 WHERE id = $1`, []any{p.id}, 1001},
		{"record amount", `UPDATE records SET amount = 1 WHERE device_id = $1 AND atc = 2`, []any{p.id}, "records", p.id, 2, "signed record",
			`UPDATE records SET amount = 50 WHERE device_id = $1 AND atc = 2`, []any{p.id}, 1},
		{"negative balance", `UPDATE devices SET balance = -5 WHERE id = $1`, []any{q.id}, "devices", q.id, 0, "not an amount",
			`UPDATE devices SET balance = 500 WHERE id = $1`, []any{q.id}, 0},
		{"balance past int64 sums", `UPDATE devices SET balance = 9223372036854775807 WHERE id = $1`, []any{q.id}, "devices", q.id, 0, "not an amount",
			`UPDATE devices SET balance = 500 WHERE id = $1`, []any{q.id}, 0},
		{"record state", `UPDATE records SET state = 9 WHERE device_id = $1 AND atc = 1`, []any{p.id}, "records", p.id, 1, "not a state",
			`UPDATE records SET state = 1 WHERE device_id = $1 AND atc = 1`, []any{p.id}, 0},
		// The body hash is what tells a retry from a clone: a changed one
		// would have the same record, sent again, refused as a clone and
		// its device revoked.
		{"record body hash", `UPDATE records SET body_hash = $2 WHERE device_id = $1 AND atc = 1`, []any{p.id, make([]byte, 32)}, "records", p.id, 1, "body hash",
			`UPDATE records SET body_hash = $2 WHERE device_id = $1 AND atc = 1`, []any{p.id, firstRec.bodyHash}, 0},
	} {
		l.tamper(tc.q, tc.args...)
		a, err := l.c.Audit(bg)
		if err != nil {
			t.Fatalf("%s: the audit failed: %v", tc.name, err)
		}
		if a.Conserved {
			t.Fatalf("%s: conserved", tc.name)
		}
		var hit *Discrepancy
		for i, d := range a.Discrepancies {
			if d.Source == tc.source && d.DeviceID == tc.device && strings.Contains(d.Detail, tc.detail) {
				hit = &a.Discrepancies[i]
			}
		}
		if hit == nil {
			t.Fatalf("%s: no %s discrepancy naming %s (%q): %+v", tc.name, tc.source, tc.device, tc.detail, a.Discrepancies)
		}
		if tc.atc != 0 && (hit.ATC == nil || *hit.ATC != tc.atc) {
			t.Fatalf("%s: discrepancy names ATC %v, want %d", tc.name, hit.ATC, tc.atc)
		}
		if tc.wantFound != 0 && (hit.Found == nil || *hit.Found != tc.wantFound) {
			t.Fatalf("%s: found %v, want %d", tc.name, hit.Found, tc.wantFound)
		}
		l.tamper(tc.undo, tc.undoArgs...)
		l.audit()
	}
}

// TestTransferInWaitsForTransferOut: a payee is credited only against its
// payer's settled transfer-out; until then the value is held and shown.
func TestTransferInWaitsForTransferOut(t *testing.T) {
	l := newLab(t, nil)
	p, q := newSimDevice(t, "payer"), newSimDevice(t, "payee")
	l.register(p, 5000, "")
	l.register(q, 10000, "")
	now := l.clock.Now()
	in := q.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 2500, Time: now, Serial: 5, Counterpart: p.raw})
	q.atc = 1
	ack, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{in}})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Entries[0].Status != Held {
		t.Fatalf("transfer-in before its transfer-out: %s, want %s", ack.Entries[0].Status, Held)
	}
	if err := ack.Verify(l.srv.PublicKey()); err != nil {
		t.Fatal(err)
	}
	dev, _ := l.c.Device(bg, q.id)
	a := l.audit()
	if dev.Balance != 10000 || a.HeldIn != 2500 || a.RecordsHeldIn != 1 || a.InFlight != 0 {
		t.Fatalf("payee balance %d, audit %+v: want 10000 and 2500 held", dev.Balance, a)
	}
	// Sent again: still held, nothing credited.
	ack, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{in}})
	if err != nil || ack.Entries[0].Status != Held {
		t.Fatalf("%+v %v", ack, err)
	}
	// The payer cannot reclaim what the payee imported.
	out := p.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferOut, Mode: spd.ModeOffline, Amount: 2500, Time: now, Serial: 5, Counterpart: q.raw})
	rc := p.sign(spd.PendingRecord{ATC: 2, Kind: spd.KindReclaim, Mode: spd.ModeOffline, Amount: 2500, Time: now, Serial: 5, Counterpart: q.raw})
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{out, rc}})
	wantCode(t, err, 409, CodeConflict)
	// The transfer-out settles: the held value is credited.
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{out}}); err != nil {
		t.Fatal(err)
	}
	dev, _ = l.c.Device(bg, q.id)
	pd, _ := l.c.Device(bg, p.id)
	a = l.audit()
	if dev.Balance != 12500 || pd.Balance != 2500 || a.HeldIn != 0 || a.InFlight != 0 {
		t.Fatalf("after the transfer-out: payee %d, payer %d, audit %+v", dev.Balance, pd.Balance, a)
	}
}

// TestTransferInFromUnregisteredPayer: a medium from a payer the issuer
// never registered (a certificate from the CA is not enough) credits
// nothing, ever.
func TestTransferInFromUnregisteredPayer(t *testing.T) {
	l := newLab(t, nil)
	ghost, q := newSimDevice(t, "ghost"), newSimDevice(t, "payee")
	l.register(q, 10000, "")
	in := q.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 2500, Time: l.clock.Now(), Serial: 1, Counterpart: ghost.raw})
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{in}}); err != nil {
		t.Fatal(err)
	}
	dev, err := l.c.Device(bg, q.id)
	if err != nil {
		t.Fatal(err)
	}
	a := l.audit()
	if dev.Balance != 10000 || a.InFlight < 0 || a.HeldIn != 2500 {
		t.Fatalf("payee %d (want 10000), audit %+v", dev.Balance, a)
	}
}

// TestTransferAcrossCurrenciesRefused: a transfer moves value in the
// payer's currency (SPEC.md SPD-XFR-2: the payee's device refuses a medium
// in another currency). A transfer-in record in another currency than its
// payer's is 422 malformed and credits nothing, whether the payer's
// transfer-out settles with it, before it, or after it (the transfer-in
// held). Before, a payee device that imported 2500 minor units of CNY and
// signed them as EUR was credited 2500 EUR cents.
func TestTransferAcrossCurrenciesRefused(t *testing.T) {
	register := func(l *lab, d *simDevice, currency uint16) {
		t.Helper()
		if _, err := l.c.Register(bg, Registration{DeviceID: d.id, PublicKey: d.pkix(), Account: "ACC-" + d.name, Currency: currency, InitialBalance: 10000}); err != nil {
			t.Fatal(err)
		}
	}
	for _, order := range []string{"transfer-out first", "in one batch", "transfer-in first"} {
		t.Run(order, func(t *testing.T) {
			l := newLab(t, nil)
			p, q := newSimDevice(t, "cny-payer"), newSimDevice(t, "eur-payee")
			register(l, q, 978)
			now := l.clock.Now()
			out := p.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferOut, Mode: spd.ModeOffline, Amount: 2500, Currency: 156, Time: now, Serial: 5, Counterpart: q.raw})
			in := q.sign(spd.PendingRecord{ATC: 1, Kind: spd.KindTransferIn, Mode: spd.ModeOffline, Amount: 2500, Currency: 978, Time: now, Serial: 5, Counterpart: p.raw})
			var refused [][]byte
			switch order {
			case "transfer-out first":
				register(l, p, 156)
				if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{out}}); err != nil {
					t.Fatal(err)
				}
				refused = [][]byte{in}
			case "in one batch":
				register(l, p, 156)
				refused = [][]byte{out, in}
			case "transfer-in first":
				// The payer is not registered yet: the transfer-in is held.
				if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{in}}); err != nil {
					t.Fatal(err)
				}
				register(l, p, 156)
				refused = [][]byte{out}
			}
			before := l.snapshot()
			_, err := l.term.Settle(bg, SettlementBatch{Records: refused})
			wantCode(t, err, 422, CodeMalformed)
			if l.snapshot() != before {
				t.Fatal("the refused transfer changed the stored state")
			}
			if dev, _ := l.c.Device(bg, q.id); dev.Balance != 10000 {
				t.Fatalf("payee credited: %d", dev.Balance)
			}
			l.audit()
		})
	}
}

// TestAuditOneSidedTransfer: value moved between two devices at the issuer
// alone (as online transfers once did: the issuer's balances moved, the
// devices' did not, and the audit said conserved) is a discrepancy naming
// the transfer; so is an online transfer whose payer's debit record is
// missing, or whose state its devices' records contradict.
func TestAuditOneSidedTransfer(t *testing.T) {
	l := newLab(t, nil)
	p, q := newSimDevice(t, "payer"), newSimDevice(t, "payee")
	l.register(p, 1000, "")
	l.register(q, 1000, "")
	l.tamper(`UPDATE devices SET balance=balance-500 WHERE id=$1`, p.id)
	l.tamper(`UPDATE devices SET balance=balance+500 WHERE id=$1`, q.id)
	l.tamper(`INSERT INTO transfers(id, from_device, to_device, amount, state, expires_at, created_at, done_at) VALUES('T-OLD', $1, $2, 500, 'claimed', 0, 0, 0)`, p.id, q.id)
	a, err := l.c.Audit(bg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Conserved || len(a.Discrepancies) != 1 || a.Discrepancies[0].Source != "transfers" || a.Discrepancies[0].Transfer != "T-OLD" ||
		!strings.Contains(a.Discrepancies[0].Detail, "issuer alone") {
		t.Fatalf("a one-sided transfer: %+v", a)
	}
	l.tamper(`DELETE FROM transfers`)
	l.tamper(`UPDATE devices SET balance=1000`)
	l.audit()

	// A transfer row naming a serial the payer's records never debited.
	l.tamper(`INSERT INTO transfers(id, from_device, to_device, amount, state, expires_at, created_at, done_at, serial) VALUES('T-NEW', $1, $2, 500, 'in_flight', 0, 0, 0, 9)`, p.id, q.id)
	a, _ = l.c.Audit(bg)
	if a.Conserved || len(a.Discrepancies) != 1 || !strings.Contains(a.Discrepancies[0].Detail, "transfer-out record is missing") {
		t.Fatalf("a transfer without the payer's debit: %+v", a)
	}
	// A real one, then its state changed to claimed without the import.
	l.tamper(`DELETE FROM transfers`)
	now := l.clock.Now()
	med, out := p.transferOut(q, 1, 200, now, now.Add(time.Hour))
	if _, err := l.term.Transfer(bg, TransferRequest{TransferID: "T1", Medium: med, Record: out}); err != nil {
		t.Fatal(err)
	}
	l.audit()
	l.tamper(`UPDATE transfers SET state='claimed'`)
	a, _ = l.c.Audit(bg)
	if a.Conserved || len(a.Discrepancies) != 1 || a.Discrepancies[0].Transfer != "T1" {
		t.Fatalf("a claimed state without the import: %+v", a)
	}
}

// TestReportedBalancesCannotDamageTheBooks: what devices report on contact
// is their own claim, outside the equation. 1025 devices each reporting
// the most a contact takes (2^53) sum past 2^63: the audit saturates
// reported_balances and stays conserved, and /healthz keeps serving.
// Before, the sum's overflow was a discrepancy: a terminal could turn a
// large lab's /healthz to 503 with contacts alone.
func TestReportedBalancesCannotDamageTheBooks(t *testing.T) {
	l := newLab(t, nil)
	key := newSimDevice(t, "shared-key").pkix()
	top := int64(maxAmount)
	for i := range 1025 {
		id := devID(fmt.Sprintf("reporter-%d", i))
		if _, err := l.srv.register(bg, Registration{DeviceID: id, PublicKey: key, Account: "ACC", Currency: 156, InitialBalance: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.term.Contact(bg, id, Contact{Balance: &top}); err != nil {
			t.Fatal(err)
		}
	}
	a := l.audit()
	if a.ReportedBalances != maxInt64 || a.Balances != 1025 {
		t.Fatalf("audit: reported %d, balances %d", a.ReportedBalances, a.Balances)
	}
	if err := l.c.Health(bg); err != nil {
		t.Fatal(err)
	}
}
