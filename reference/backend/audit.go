package backend

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/spdlab/spdlab/reference/spd"
)

// The audit reads every row as a plain value and checks it, so that no
// stored value (a REAL, a text, a number past 2^53, a negative amount)
// can make it fail: each one is reported as a Discrepancy instead.

// amountOf returns v as an amount in 0..maxAmount.
func amountOf(v any) (int64, bool) {
	n, ok := v.(int64)
	return n, ok && n >= 0 && n <= maxAmount
}

// total is a sum that records an overflow instead of wrapping.
type total struct {
	v        int64
	overflow bool
}

func (t *total) add(n int64) {
	if (n > 0 && t.v > maxInt64-n) || (n < 0 && t.v < -maxInt64-n) {
		t.overflow = true
		return
	}
	t.v += n
}

const maxInt64 = 1<<63 - 1

func ptr(n int64) *int64 { return &n }

// auditDevice is what the audit learns about one device.
type auditDevice struct {
	initial, issued, balance int64
	topUps, moved            total // moved: the effect of records and transfers
	reported, reportedATC    any
	ok                       bool // its own row was readable
}

// Audit checks the books from one consistent snapshot of the database.
// It fails only when the database cannot be read at all.
func (s *Server) Audit(ctx context.Context) (Audit, error) {
	a := Audit{Discrepancies: []Discrepancy{}, Differences: []ViewDifference{}, Flagged: []FlaggedDevice{}}
	tx, err := s.rdb.BeginTx(ctx, s.eng.snapshotTx())
	if err != nil {
		return a, internal(err)
	}
	defer tx.Rollback()
	bad := func(d Discrepancy) { a.Discrepancies = append(a.Discrepancies, d) }
	devs := make(map[string]*auditDevice)
	var order []string
	dev := func(id string) *auditDevice {
		d := devs[id]
		if d == nil {
			d = &auditDevice{}
			devs[id] = d
			order = append(order, id)
		}
		return d
	}
	var issued, balances, reported, pending, settled, inFlight, heldIn, billed, exchanged, usesSold total
	paidOut := map[uint16]*total{} // currency bought -> minor units paid to designated accounts
	owed := map[string]*total{}    // payee -> the settled records that name it

	// devices: the issuer's view of each balance.
	err = scanRows(ctx, tx, `SELECT id, initial, issued, balance, reported_balance, reported_atc FROM devices ORDER BY id`, func(v []any) {
		id := fmt.Sprint(v[0])
		d := dev(id)
		a.Devices++
		var ok1, ok2, ok3 bool
		d.initial, ok1 = amountOf(v[1])
		d.issued, ok2 = amountOf(v[2])
		d.balance, ok3 = amountOf(v[3])
		d.reported, d.reportedATC = v[4], v[5]
		d.ok = ok1 && ok2 && ok3
		for i, ok := range []bool{ok1, ok2, ok3} {
			if !ok {
				bad(Discrepancy{Source: "devices", DeviceID: id, Detail: fmt.Sprintf("%s is %s, not an amount in 0..2^53", []string{"initial", "issued", "balance"}[i], describe(v[i+1]))})
			}
		}
		issued.add(d.initial)
		balances.add(d.balance)
		if rb, ok := amountOf(d.reported); ok {
			reported.add(rb)
		} else {
			if d.reported != nil {
				bad(Discrepancy{Source: "devices", DeviceID: id, Detail: fmt.Sprintf("reported_balance is %s, not an amount", describe(d.reported))})
			}
			reported.add(d.balance)
		}
	})
	if err != nil {
		return a, internal(err)
	}

	type reversalKey struct {
		id  string
		atc int64
	}
	reversing := map[reversalKey]ParameterUpdate{}  // updates that give back a reversed payment
	reversed := map[reversalKey]spd.PendingRecord{} // reversed payment records
	// params: the top-ups queued, the rest of the issued value.
	err = scanRows(ctx, tx, `SELECT device_id, counter, body FROM params ORDER BY device_id, counter`, func(v []any) {
		id := fmt.Sprint(v[0])
		body, _ := v[2].([]byte)
		if s, ok := v[2].(string); ok {
			body = []byte(s)
		}
		var u ParameterUpdate
		if err := json.Unmarshal(body, &u); err != nil || u.TopUp < 0 || u.TopUp > maxAmount {
			bad(Discrepancy{Source: "params", DeviceID: id, Detail: fmt.Sprintf("update %v: body is not a parameter update with a top-up in 0..2^53", v[1])})
			return
		}
		if devs[id] == nil {
			bad(Discrepancy{Source: "params", DeviceID: id, Detail: fmt.Sprintf("update %v names no registered device", v[1])})
			return
		}
		if u.Reverses != 0 {
			// Gives back a reversed payment: not issued, checked below
			// against the reversed record.
			reversing[reversalKey{id, int64(u.Reverses)}] = u
			return
		}
		devs[id].topUps.add(u.TopUp)
		issued.add(u.TopUp)
	})
	if err != nil {
		return a, internal(err)
	}

	// records: each checked against the device's own signed bytes.
	err = scanRows(ctx, tx, `SELECT device_id, atc, kind, state, amount, raw, body_hash FROM records ORDER BY device_id, atc`, func(v []any) {
		id := fmt.Sprint(v[0])
		atc, _ := v[1].(int64)
		kind, _ := v[2].(int64)
		state, _ := v[3].(int64)
		raw, _ := v[5].([]byte)
		where := Discrepancy{Source: "records", DeviceID: id, ATC: ptr(atc)}
		amount, ok := amountOf(v[4])
		if !ok {
			where.Detail = fmt.Sprintf("amount is %s, not an amount in 0..2^53", describe(v[4]))
			bad(where)
			return
		}
		rec, err := ParseDeviceRecord(raw)
		switch {
		case err != nil:
			where.Detail = fmt.Sprintf("the stored device record does not parse: %v", err)
			bad(where)
			return
		case rec.Device != id || int64(rec.ATC) != atc || int64(rec.Kind) != kind:
			where.Detail = fmt.Sprintf("the row says %s ATC %d kind %d, the device's record %s ATC %d kind %d", id, atc, kind, rec.Device, rec.ATC, rec.Kind)
			bad(where)
			return
		case rec.Amount != amount:
			where.Detail, where.Expected, where.Found = "the row's amount differs from the device's signed record", ptr(rec.Amount), ptr(amount)
			bad(where)
			return
		case !rec.sameBody(hashOf(v[6])):
			// The body hash tells a retry of the record from a clone's:
			// a wrong one would have the same record refused as a clone.
			where.Detail = "the row's body hash is not the hash of the device's signed record"
			bad(where)
			return
		}
		d := devs[id]
		if d == nil {
			where.Detail = "a record of no registered device"
			bad(where)
			return
		}
		k := spd.PaymentKind(kind)
		switch {
		case k.IsPayment() && state == stateSettled:
			settled.add(amount)
			d.moved.add(-amount)
			a.RecordsSettled++
			p := PayeeName(rec.Payee)
			if owed[p] == nil {
				owed[p] = &total{}
			}
			owed[p].add(amount)
			if k == spd.KindAccount {
				billed.add(amount)
			}
		case k.IsPayment() && state == stateHeld:
			pending.add(amount)
			d.moved.add(-amount)
			a.RecordsPending++
		case k.IsPayment() && state == stateDeclined:
		case k == spd.KindTransferOut && state == stateSettled:
			d.moved.add(-amount)
			a.RecordsSettled++
		case (k == spd.KindTransferIn || k == spd.KindReclaim) && state == stateSettled:
			d.moved.add(amount)
			a.RecordsSettled++
		case k.IsPayment() && state == stateReversed:
			reversed[reversalKey{id, atc}] = rec.PendingRecord
		case k == spd.KindExchange && state == stateSettled:
			if want, ok := exchangePrice(rec.PendingRecord); !ok || want != amount {
				where.Detail, where.Expected, where.Found = "an exchange's debit is not the price of its target at its rate", ptr(want), ptr(amount)
				bad(where)
			}
			exchanged.add(amount)
			d.moved.add(-amount)
			a.RecordsSettled++
			if rec.Target > maxAmount {
				where.Detail = fmt.Sprintf("an exchange's target %d is above 2^53", rec.Target)
				bad(where)
				return
			}
			if rec.Exchange == spd.ExchangeCurrency {
				if paidOut[rec.TargetCurrency] == nil {
					paidOut[rec.TargetCurrency] = &total{}
				}
				paidOut[rec.TargetCurrency].add(int64(rec.Target))
			} else {
				usesSold.add(int64(rec.Target))
			}
		case k == spd.KindTransferIn && state == stateHeldIn:
			heldIn.add(amount)
			a.RecordsHeldIn++
		default:
			where.Detail = fmt.Sprintf("kind %v in state %d is not a state a record can be in", k, state)
			bad(where)
		}
	})
	if err != nil {
		return a, internal(err)
	}

	// offline_transfers: value between a payer's transfer-out and the
	// payee's transfer-in (or the payer's reclaim).
	type xferKey struct {
		payer  string
		serial int64
	}
	type xferState struct {
		payee                        string
		amount                       int64
		out, in, reclaimed, reclaim1 bool
	}
	xfers := map[xferKey]xferState{}
	err = scanRows(ctx, tx, `SELECT payer, serial, amount, out_settled, in_settled, reclaimed, in_held, payee, reclaim_ordered_at FROM offline_transfers ORDER BY payer, serial`, func(v []any) {
		payer := fmt.Sprint(v[0])
		where := Discrepancy{Source: "offline_transfers", DeviceID: payer, Transfer: fmt.Sprintf("serial %v", v[1])}
		amount, ok := amountOf(v[2])
		flags := make([]int64, 4)
		for i := range flags {
			f, isInt := v[3+i].(int64)
			if !isInt || f < 0 || f > 1 {
				ok = false
			}
			flags[i] = f
		}
		if !ok {
			where.Detail = "amount or a flag is out of range"
			bad(where)
			return
		}
		out, in, reclaimed, held := flags[0] == 1, flags[1] == 1, flags[2] == 1, flags[3] == 1
		serial, _ := v[1].(int64)
		ordered, _ := v[8].(int64)
		xfers[xferKey{payer, serial}] = xferState{payee: fmt.Sprint(v[7]), amount: amount, out: out, in: in, reclaimed: reclaimed, reclaim1: ordered != 0}
		switch {
		case ordered != 0 && (in || held):
			where.Detail = "a transfer-in of a transfer the backend ordered reclaimed (the import was credited after the RECLAIM order)"
			bad(where)
		case (in || reclaimed) && !out, in && reclaimed, held && (in || out || reclaimed):
			where.Detail = fmt.Sprintf("impossible state: out %v, in %v, reclaimed %v, held %v (value credited that was never debited, or spent twice)", out, in, reclaimed, held)
			bad(where)
		case out && !in && !reclaimed:
			inFlight.add(amount)
			a.TransfersHeld++
		}
	})
	if err != nil {
		return a, internal(err)
	}

	// transfers: online transfers. Each is the backend's note of a
	// transfer the devices made (TRANSFER, TRANSFER IN): the value moved
	// with their records (offline_transfers), so each row must agree with
	// them. A row without a serial moved value at the issuer alone, on
	// neither device (made before the devices took part): it is counted,
	// and reported, as the one-sided transfer it is.
	err = scanRows(ctx, tx, `SELECT id, from_device, to_device, amount, state, serial FROM transfers ORDER BY id`, func(v []any) {
		id, from, to, state := fmt.Sprint(v[0]), fmt.Sprint(v[1]), fmt.Sprint(v[2]), fmt.Sprint(v[4])
		amount, ok := amountOf(v[3])
		serial, sok := v[5].(int64)
		where := Discrepancy{Source: "transfers", Transfer: id, DeviceID: from}
		if !ok || !sok || serial < 0 {
			where.Detail = fmt.Sprintf("amount is %s and serial %s: not an amount in 0..2^53 and a serial", describe(v[3]), describe(v[5]))
			bad(where)
			return
		}
		fd, td := devs[from], devs[to]
		if fd == nil || td == nil {
			where.Detail = "names a device that is not registered"
			bad(where)
			return
		}
		if serial != 0 {
			x, found := xfers[xferKey{from, serial}]
			want := map[TransferState]bool{TransferInFlight: found && x.out && !x.in && !x.reclaimed && !x.reclaim1,
				TransferReclaimOrdered: found && x.out && !x.in && !x.reclaimed && x.reclaim1,
				TransferClaimed:        found && x.out && x.in, TransferReclaimed: found && x.out && x.reclaimed}
			switch {
			case !found || !x.out:
				where.Detail = fmt.Sprintf("transfer %d of %s: the payer's settled transfer-out record is missing (value moved without the payer's debit)", serial, from)
			case x.amount != amount || x.payee != to:
				where.Detail = fmt.Sprintf("transfer %d of %s: %d to %s, the devices' records say %d to %s", serial, from, amount, to, x.amount, x.payee)
				where.Expected, where.Found = ptr(x.amount), ptr(amount)
			case !want[TransferState(state)]:
				where.Detail = fmt.Sprintf("state %q differs from the devices' records (transfer-in settled %v, reclaimed %v)", state, x.in, x.reclaimed)
			default:
				return
			}
			bad(where)
			return
		}
		fd.moved.add(-amount)
		switch TransferState(state) {
		case TransferInFlight:
			inFlight.add(amount)
			a.TransfersHeld++
		case TransferClaimed:
			td.moved.add(amount)
		case TransferReclaimed:
			fd.moved.add(amount)
		default:
			where.Detail = fmt.Sprintf("state %q is not a transfer state", state)
			bad(where)
			return
		}
		where.Detail = "moved value at the issuer alone: neither device debited or credited it (no transfer medium, no device record); the devices' own balances differ from the issuer's by this amount"
		where.Found = ptr(amount)
		bad(where)
	})
	if err != nil {
		return a, internal(err)
	}

	// reversals: each reversing update gives back exactly what its
	// reversed record paid, and each reversed payment is given back.
	for _, key := range slices.SortedFunc(maps.Keys(reversing), func(a, b reversalKey) int {
		return cmp.Or(cmp.Compare(a.id, b.id), cmp.Compare(a.atc, b.atc))
	}) {
		u := reversing[key]
		rec, ok := reversed[key]
		delete(reversed, key)
		where := Discrepancy{Source: "params", DeviceID: key.id, ATC: ptr(key.atc)}
		switch {
		case !ok:
			where.Detail, where.Found = "an update gives back a payment the issuer holds no reversed record of (value given that was never paid)", ptr(u.TopUp)
		case rec.Kind == spd.KindBalance && (u.TopUp != rec.Amount || u.AddUses != 0):
			where.Detail, where.Expected, where.Found = "the update that reverses this payment gives back another amount", ptr(rec.Amount), ptr(u.TopUp)
		case rec.Kind == spd.KindUse && (u.AddUses != 1 || u.TopUp != 0):
			where.Detail = "the update that reverses this use gives back other than one use"
		case rec.Kind == spd.KindAccount:
			where.Detail = "an update gives back an account payment, which never took the device's balance"
		default:
			continue
		}
		bad(where)
	}
	for key, rec := range reversed {
		if rec.Kind != spd.KindAccount && (rec.Amount > 0 || rec.Kind == spd.KindUse) {
			bad(Discrepancy{Source: "records", DeviceID: key.id, ATC: ptr(key.atc), Detail: "a reversed payment that no update gives back", Expected: ptr(rec.Amount)})
		}
	}

	// payees: each merchant's balance is what the settled records that
	// name it paid (payees_paid); together they hold every settled payment.
	var paid total
	err = scanRows(ctx, tx, `SELECT payee, balance FROM payees ORDER BY payee`, func(v []any) {
		name := fmt.Sprint(v[0])
		where := Discrepancy{Source: "payees", Payee: name}
		bal, ok := amountOf(v[1])
		if !ok {
			where.Detail = fmt.Sprintf("balance is %s, not an amount in 0..2^53", describe(v[1]))
			bad(where)
			return
		}
		a.Payees++
		paid.add(bal)
		want := owed[name]
		delete(owed, name)
		if want == nil {
			want = &total{}
		}
		if want.v != bal {
			where.Detail, where.Expected, where.Found = "balance differs from the settled records that name the payee", ptr(want.v), ptr(bal)
			bad(where)
		}
	})
	if err != nil {
		return a, internal(err)
	}
	for name, want := range owed {
		if want.v != 0 {
			bad(Discrepancy{Source: "payees", Payee: name, Detail: "settled records name a payee the issuer has no account for", Expected: ptr(want.v), Found: ptr(0)})
		}
	}
	a.PayeesPaid, a.Billed = paid.v, billed.v
	if !paid.overflow && !settled.overflow && paid.v != settled.v {
		bad(Discrepancy{Source: "totals", Detail: "payees_paid differs from settled", Expected: ptr(settled.v), Found: ptr(paid.v)})
	}

	// Each device: its balance is what was issued to it, moved by its
	// records and transfers.
	for _, id := range order {
		d := devs[id]
		if !d.ok {
			continue
		}
		var want total
		want.add(d.initial)
		want.add(d.topUps.v)
		want.add(d.moved.v)
		if d.topUps.overflow || d.moved.overflow || want.overflow {
			bad(Discrepancy{Source: "devices", DeviceID: id, Detail: "the amounts that moved its balance overflow"})
			continue
		}
		if issuedWant := d.initial + d.topUps.v; d.issued != issuedWant {
			bad(Discrepancy{Source: "devices", DeviceID: id, Detail: "issued differs from its registration and top-ups", Expected: ptr(issuedWant), Found: ptr(d.issued)})
		}
		if d.balance != want.v {
			bad(Discrepancy{Source: "devices", DeviceID: id, Detail: "balance differs from what its registration, top-ups, records and transfers give", Expected: ptr(want.v), Found: ptr(d.balance)})
		}
		if want.v < 0 {
			bad(Discrepancy{Source: "devices", DeviceID: id, Detail: "its records and transfers take its balance below zero", Expected: ptr(0), Found: ptr(want.v)})
		}
		if rb, ok := amountOf(d.reported); ok && rb != d.balance {
			vd := ViewDifference{DeviceID: id, IssuerBalance: d.balance, ReportedBalance: rb}
			if atc, ok := d.reportedATC.(int64); ok {
				vd.ReportedATC = ptr(atc)
			}
			a.Differences = append(a.Differences, vd)
		}
	}

	a.Issued, a.Balances, a.ReportedBalances, a.Pending, a.Settled, a.InFlight, a.HeldIn =
		issued.v, balances.v, reported.v, pending.v, settled.v, inFlight.v, heldIn.v
	if reported.overflow {
		// What devices claim on contact (each at most 2^53), outside the
		// equation: a sum past 2^63-1 is shown as that, not a fault of
		// the books.
		a.ReportedBalances = maxInt64
	}
	var right total
	a.Exchanged, a.UsesSold = exchanged.v, usesSold.v
	for cur, t := range paidOut {
		if a.PaidOut == nil {
			a.PaidOut = map[string]int64{}
		}
		a.PaidOut[fmt.Sprintf("%03d", cur)] = t.v
		if t.overflow {
			bad(Discrepancy{Source: "totals", Detail: fmt.Sprintf("paid_out of currency %03d overflows", cur)})
		}
	}
	for _, t := range []total{balances, pending, settled, inFlight, exchanged} {
		right.add(t.v)
	}
	for name, t := range map[string]total{"payees_paid": paid, "billed": billed, "issued": issued, "balances": balances, "pending": pending, "settled": settled, "in_flight": inFlight, "held_in": heldIn, "exchanged": exchanged, "uses_sold": usesSold, "the right side": right} {
		if t.overflow {
			bad(Discrepancy{Source: "totals", Detail: name + " overflows"})
		}
	}
	if !issued.overflow && !right.overflow && issued.v != right.v {
		bad(Discrepancy{Source: "totals", Detail: "issued differs from balances + pending + settled + in_flight + exchanged", Expected: ptr(issued.v), Found: ptr(right.v)})
	}
	if a.Flagged, err = flaggedDevices(ctx, tx); err != nil {
		return a, internal(err)
	}
	a.Conserved = len(a.Discrepancies) == 0
	return a, nil
}

// hashOf is a stored hash as bytes (nil for a value of another type).
func hashOf(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

// scanRows calls fn with each row's values, as the driver gives them.
func scanRows(ctx context.Context, tx *sql.Tx, q string, fn func([]any)) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		fn(vals)
	}
	return rows.Err()
}

// describe names a stored value's type and value for a discrepancy.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return fmt.Sprintf("%d", x)
	case float64:
		return fmt.Sprintf("REAL %g", x)
	case string:
		return fmt.Sprintf("TEXT %.32q", x)
	case []byte:
		return fmt.Sprintf("BLOB of %d bytes", len(x))
	}
	return fmt.Sprintf("%T", v)
}
