package backend

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// TestCloneIsCaughtAndRevoked: two copies of one device state spend the
// same ATC at two merchants. The second is told its record conflicts and
// why, the record is kept as evidence, the device is flagged and revoked,
// and the audit lists it.
func TestCloneIsCaughtAndRevoked(t *testing.T) {
	l := newLab(t, nil)
	d := newSimDevice(t, "cloned")
	l.register(d, 10000, "")
	now := l.clock.Now()
	first := d.recordATC(7, 300, "", now)
	second := d.recordATC(7, 400, "", now) // the clone's spend, same ATC
	if _, err := l.term.Settle(bg, SettlementBatch{BatchID: "merchant-1", Records: [][]byte{first}}); err != nil {
		t.Fatal(err)
	}
	_, err := l.term.Settle(bg, SettlementBatch{BatchID: "merchant-2", Records: [][]byte{second}})
	ae := wantCode(t, err, 409, CodeConflict)
	if !strings.Contains(ae.Reason, "clone") || !strings.Contains(ae.Reason, "evidence") {
		t.Fatalf("the second merchant is not told plainly: %q", ae.Reason)
	}
	var raw []byte
	if err := l.srv.rdb.QueryRow(`SELECT raw FROM conflicts WHERE device_id=$1 AND atc=7`, d.id).Scan(&raw); err != nil || string(raw) != string(second) {
		t.Fatalf("evidence not kept: %v", err)
	}
	a := l.audit()
	if len(a.Flagged) != 1 || a.Flagged[0].DeviceID != d.id || a.Flagged[0].ATCs != "7" || !a.Flagged[0].Revoked {
		t.Fatalf("flagged: %+v", a.Flagged)
	}
	// Neither copy spends any further.
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.recordATC(8, 10, "", now)}})
	wantCode(t, err, 403, CodeRevoked)
	// Two different records for one ATC inside one batch are caught too.
	e := newSimDevice(t, "cloned-in-batch")
	l.register(e, 10000, "")
	_, err = l.term.Settle(bg, SettlementBatch{Records: [][]byte{e.recordATC(1, 5, "", now), e.recordATC(1, 6, "", now)}})
	wantCode(t, err, 409, CodeConflict)
	if a := l.audit(); len(a.Flagged) != 2 {
		t.Fatalf("flagged: %+v", a.Flagged)
	}
}

// TestClonePolicyKeepInService: with KeepClonesInService the device is
// flagged and its evidence kept, but not revoked.
func TestClonePolicyKeepInService(t *testing.T) {
	l := newLab(t, func(c *Config) { c.KeepClonesInService = true })
	d := newSimDevice(t, "cloned")
	l.register(d, 10000, "")
	now := l.clock.Now()
	if _, err := l.term.Authorise(bg, AuthorisationRequest{Record: d.recordATC(3, 100, "", now), Channel: "qr"}); err != nil {
		t.Fatal(err)
	}
	_, err := l.term.Authorise(bg, AuthorisationRequest{Record: d.recordATC(3, 200, "", now), Channel: "qr"})
	wantCode(t, err, 409, CodeConflict)
	a := l.audit()
	if len(a.Flagged) != 1 || a.Flagged[0].Revoked {
		t.Fatalf("flagged: %+v", a.Flagged)
	}
	if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{d.recordATC(4, 10, "", now)}}); err != nil {
		t.Fatal(err)
	}
}

// TestSettledRecordAuthorisedIsNotAClone: a record the backend settled in
// a batch (a payment, an exchange, a transfer-out, a held transfer-in)
// sent again to POST /v1/authorisations is the same record, not a clone:
// 409 conflict, nothing stored, the device neither flagged nor revoked.
// Before, any terminal that had seen a settled record could take its
// device out of service this way.
func TestSettledRecordAuthorisedIsNotAClone(t *testing.T) {
	l := newLab(t, nil)
	at := l.clock.Now()
	for name, make := range map[string]func(d, other *simDevice) []byte{
		"payment": func(d, _ *simDevice) []byte { return d.record(100, "", at) },
		"exchange": func(d, _ *simDevice) []byte {
			d.atc++
			if _, err := l.term.Rate(bg, RateRequest{DeviceID: d.id, ATC: d.atc, Kind: ExchangeUses}); err != nil {
				t.Fatal(err)
			}
			return d.sign(spd.PendingRecord{ATC: d.atc, Kind: spd.KindExchange, Mode: spd.ModeOffline, Amount: 250, Time: at, Nonce: []byte("EXC-NONCE-1"),
				Exchange: spd.ExchangeUses, RateNumerator: 1, RateDenominator: 250, Target: 1})
		},
		"transfer-out": func(d, other *simDevice) []byte {
			_, rec := d.transferOut(other, 9, 100, at, at.Add(time.Hour))
			return rec
		},
		"held transfer-in": func(d, other *simDevice) []byte { return d.transferIn(other, 9, 100, at) },
	} {
		t.Run(name, func(t *testing.T) {
			d, other := newSimDevice(t, "settled-"+name), newSimDevice(t, "other-"+name)
			l.register(d, 1000, "")
			l.register(other, 1000, "")
			rec := make(d, other)
			if _, err := l.term.Settle(bg, SettlementBatch{Records: [][]byte{rec}}); err != nil {
				t.Fatal(err)
			}
			before := l.snapshot()
			_, err := l.term.Authorise(bg, AuthorisationRequest{Record: rec, Channel: "qr"})
			if ae := wantCode(t, err, http.StatusConflict, CodeConflict); strings.Contains(ae.Reason, "clone") {
				t.Fatalf("the same record is called a clone: %q", ae.Reason)
			}
			if l.snapshot() != before {
				t.Fatal("the refused authorisation changed the stored state")
			}
			if dev, err := l.term.Device(bg, d.id); err != nil || dev.Revoked {
				t.Fatalf("device revoked %v (%v) for sending a settled record again", dev.Revoked, err)
			}
			if a := l.audit(); len(a.Flagged) != 0 {
				t.Fatalf("flagged: %+v", a.Flagged)
			}
		})
	}
}
