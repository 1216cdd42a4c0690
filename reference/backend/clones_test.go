package backend

import (
	"strings"
	"testing"
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
