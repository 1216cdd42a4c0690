package device

import (
	"bytes"
	"errors"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// transferInfo is the transfer medium of an outgoing transfer.
func (d *Device) transferInfo(serial uint64, t transfer, nc counters) medium.ServiceInfo {
	total, _, _ := d.pendingTotals()
	info := d.baseInfo(medium.KindTransfer, nc, total, t.Time)
	info.ATC = t.ATC
	info.Amount = t.Amount
	info.PayerID = d.id
	info.PayeeID = t.Payee
	info.Serial = serial
	info.Expiry = unixTime(t.Expiry)
	info.Certificate = d.prof.Certificate
	return info
}

func (d *Device) doTransfer(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	switch cmd.P1 {
	case spd.P1TransferOut:
		return d.transferOut(cmd)
	case spd.P1TransferShow:
		s, err := spd.ParseSerialAt(cmd.Data)
		if err != nil {
			return nil, parseErr(err)
		}
		if !d.verified {
			return nil, apdu.SWSecurityNotSatisfied
		}
		t, ok := d.xfers[s.Serial]
		if !ok || (t.Status != transferOutstanding && !d.bug("show-after-reclaim")) {
			return nil, apdu.SWRecordNotFound
		}
		if d.bug("show-spends-atc") {
			nc := d.c
			nc.ATC++
			d.commitCounters(nc)
		}
		return d.sign(d.transferInfo(s.Serial, t, d.c))
	}
	return nil, apdu.SWIncorrectP1P2
}

// transferOut debits the balance and answers the transfer medium in one
// step (SPD-XFR-1): the medium exists only once the debit is committed.
func (d *Device) transferOut(cmd apdu.Command) ([]byte, apdu.SW) {
	if d.c.State != spd.StateActive {
		return nil, apdu.SWConditionsNotSat
	}
	req, err := spd.ParseTransferRequest(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if req.Currency != d.prof.Currency || (bytes.Equal(req.Payee, d.id) && !d.bug("xfer-self")) {
		return nil, apdu.SWWrongData
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	if d.bug("xfer-capacity-before-balance") && (len(d.pend) >= d.cfg.MaxLedger || len(d.xfers) >= d.cfg.MaxTransfers) {
		return nil, apdu.SWNotEnoughMemory
	}
	if req.Amount > d.c.Balance && d.bug("xfer-over-balance-6a80") {
		return nil, apdu.SWWrongData
	}
	if req.Amount > d.c.Balance {
		if d.bug("xfer-refused-spends-serial") {
			nc := d.c
			nc.TransferSerial++
			d.commitCounters(nc)
		}
		return nil, apdu.SWConditionsNotSat
	}
	if len(d.pend) >= d.cfg.MaxLedger || (len(d.xfers) >= d.cfg.MaxTransfers && !(d.bug("xfer-capacity-17") && len(d.xfers) == d.cfg.MaxTransfers)) {
		return nil, apdu.SWNotEnoughMemory
	}
	nc := d.c
	nc.ATC++
	nc.TransferSerial++
	if !d.bug("xfer-no-debit") {
		nc.Balance -= req.Amount
	}
	serial := nc.TransferSerial
	if d.bug("xfer-serial-from-0") {
		serial--
	}
	t := transfer{Amount: req.Amount, Payee: req.Payee, Expiry: spd.Unix(req.Expiry), ATC: nc.ATC, Time: spd.Unix(req.Time)}
	rec := record{Kind: spd.KindTransferOut, Mode: spd.ModeOffline, ATC: nc.ATC, Amount: req.Amount, Time: t.Time,
		Serial: serial, Token: d.prof.AccountToken, Counterpart: req.Payee}
	if d.bug("xfer-record-amount") && rec.Amount > 1 {
		rec.Amount--
	}
	env, sw := d.sign(d.transferInfo(serial, t, nc))
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.begin(spd.INSTransfer)
	tx.Put(keyCounters, nc.marshal())
	tx.Put(xferKey(serial), t.marshal())
	if !d.bug("xfer-no-record") {
		tx.Put(pendKey(nc.ATC), rec.marshal())
	}
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.xfers[serial] = t
	if !d.bug("xfer-no-record") {
		d.pend = append(d.pend, rec)
	}
	return env, apdu.SWOK
}

// doTransferIn imports a transfer medium bound to this device, once
// (SPD-XFR-2, SPD-XFR-3).
func (d *Device) doTransferIn(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	req, err := spd.ParseTransferImport(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	m, err := medium.Parse(req.Medium)
	if err != nil {
		return nil, apdu.SWWrongData
	}
	in := m.Info
	if in.Kind != medium.KindTransfer || in.Currency != d.prof.Currency || !bytes.Equal(in.PayeeID, d.id) ||
		(!bytes.Equal(in.PayerID, in.DeviceID) && !d.bug("xferin-payer-unchecked")) || bytes.Equal(in.PayerID, d.id) || in.Amount <= 0 || in.Serial == 0 {
		return nil, apdu.SWWrongData
	}
	if err := d.verifyMedium(m, "xferin-rogue-ca"); err != nil {
		if errors.Is(err, medium.ErrBadSignature) && !d.bug("xferin-sig-6a80") {
			return nil, apdu.SWSecurityNotSatisfied
		}
		return nil, apdu.SWWrongData
	}
	if _, certID, err := d.certified(in.Certificate, "xferin-rogue-ca"); err != nil ||
		(!bytes.Equal(certID, in.PayerID) && !d.bug("xferin-cert-unbound")) {
		return nil, apdu.SWSecurityNotSatisfied
	}
	if !d.verified {
		return nil, apdu.SWSecurityNotSatisfied
	}
	now := spd.Unix(req.Time)
	exp := spd.Unix(in.Expiry)
	if now > exp || (d.c.LastSync > exp && !d.bug("xferin-sync-unchecked")) || (d.bug("xferin-expiry-inclusive") && now == exp) ||
		(d.bug("xferin-sync-inclusive") && d.c.LastSync == exp) {
		return nil, apdu.SWConditionsNotSat
	}
	key := impKey(in.PayerID, in.Serial)
	if d.bug("xferin-full-before-replay") && (d.imports >= d.cfg.MaxImports || len(d.pend) >= d.cfg.MaxLedger) {
		return nil, apdu.SWNotEnoughMemory
	}
	if _, seen := d.st.Get(key); seen && !d.bug("xferin-replay") {
		return nil, apdu.SWRefDataNotUsable
	}
	if d.imports >= d.cfg.MaxImports || (len(d.pend) >= d.cfg.MaxLedger && !d.bug("xferin-ledger-unbounded")) {
		return nil, apdu.SWNotEnoughMemory
	}
	if d.c.Balance > maxAmount-in.Amount && !d.bug("xferin-over-max") {
		return nil, apdu.SWWrongData
	}
	nc := d.c
	nc.ATC++
	nc.Balance += in.Amount
	if d.bug("xferin-syncs") && now > nc.LastSync {
		nc.LastSync = now
	}
	rec := record{Kind: spd.KindTransferIn, Mode: spd.ModeOffline, ATC: nc.ATC, Amount: in.Amount, Time: now,
		Serial: in.Serial, Token: d.prof.AccountToken, Counterpart: bytes.Clone(in.PayerID)}
	total, _, _ := d.pendingTotals()
	info := d.baseInfo(medium.KindPaymentResult, nc, total, now)
	success := 0
	info.Result = &success
	info.Amount, info.PayerID, info.PayeeID, info.Serial = in.Amount, in.PayerID, d.id, in.Serial
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.begin(spd.INSTransferIn)
	tx.Put(keyCounters, nc.marshal())
	tx.Put(key, []byte{1})
	tx.Put(pendKey(nc.ATC), rec.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.imports++
	d.pend = append(d.pend, rec)
	return env, apdu.SWOK
}

// doReclaim credits an expired outgoing transfer back, once, on a
// host-signed order (SPD-XFR-4).
func (d *Device) doReclaim(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := d.openHost(spd.INSReclaim, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	s, err := spd.ParseSerialAt(body)
	if err != nil {
		return nil, parseErr(err)
	}
	t, ok := d.xfers[s.Serial]
	if !ok {
		return nil, apdu.SWRecordNotFound
	}
	if t.Status != transferOutstanding && !d.bug("reclaim-twice") {
		return nil, apdu.SWRefDataNotUsable
	}
	now := spd.Unix(s.Time)
	if d.bug("reclaim-full-before-expiry") && len(d.pend) >= d.cfg.MaxLedger {
		return nil, apdu.SWNotEnoughMemory
	}
	if now <= t.Expiry && !(d.bug("reclaim-at-expiry") && now == t.Expiry) {
		return nil, apdu.SWConditionsNotSat
	}
	if len(d.pend) >= d.cfg.MaxLedger && !d.bug("reclaim-ledger-unbounded") {
		return nil, apdu.SWNotEnoughMemory
	}
	nc := d.c
	nc.ATC++
	nc.Balance += t.Amount
	t.Status = transferReclaimed
	rec := record{Kind: spd.KindReclaim, Mode: spd.ModeOnline, ATC: nc.ATC, Amount: t.Amount, Time: now,
		Serial: s.Serial, Token: d.prof.AccountToken, Counterpart: t.Payee}
	total, _, _ := d.pendingTotals()
	info := d.baseInfo(medium.KindPaymentResult, nc, total, now)
	success := 0
	info.Result = &success
	info.Amount, info.PayerID, info.PayeeID, info.Serial = t.Amount, d.id, t.Payee, s.Serial
	env, sw := d.sign(info)
	if sw != apdu.SWOK {
		return nil, sw
	}
	tx := d.begin(spd.INSReclaim)
	tx.Put(keyCounters, nc.marshal())
	tx.Put(xferKey(s.Serial), t.marshal())
	tx.Put(pendKey(nc.ATC), rec.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.xfers[s.Serial] = t
	d.pend = append(d.pend, rec)
	return env, apdu.SWOK
}

// doParseMedium parses and verifies a coded medium for the terminal (C1,
// C6, C39): the medium's certificate must come from this device's issuer
// CA and verify the medium. It answers the service information template
// (tag 61) and changes nothing.
func (d *Device) doParseMedium(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	env, err := spd.ParseMediumData(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	m, err := medium.Parse(env)
	if err != nil {
		return nil, apdu.SWWrongData
	}
	if err := d.verifyMedium(m, "parse-rogue-ca"); err != nil {
		if errors.Is(err, medium.ErrBadSignature) || (d.bug("parse-no-cert-6982") && len(m.Info.Certificate) == 0) {
			return nil, apdu.SWSecurityNotSatisfied
		}
		return nil, apdu.SWWrongData
	}
	if d.bug("parse-spends-atc") {
		nc := d.c
		nc.ATC++
		d.commitCounters(nc)
	}
	// m.Signed is 85 "SVL01" followed by the 61 template.
	_, template, err := tlv.Next(m.Signed)
	if err != nil {
		return nil, apdu.SWWrongData
	}
	return bytes.Clone(template), apdu.SWOK
}
