package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// parseErr maps a request parser's error to its status word.
func parseErr(err error) apdu.SW {
	switch {
	case errors.Is(err, spd.ErrBadP1P2):
		return apdu.SWIncorrectP1P2
	case errors.Is(err, spd.ErrBadSignature):
		return apdu.SWSecurityNotSatisfied
	}
	return apdu.SWWrongData
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (d *Device) doSelect(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != spd.P1SelectByAID || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if d.bug("select-keeps-session") && !bytes.Equal(cmd.Data, spd.AID) {
		return nil, apdu.SWFileNotFound
	}
	verified := d.verified && d.bug("reselect-keeps-verified")
	d.clearSession()
	if !bytes.Equal(cmd.Data, spd.AID) && !(d.bug("select-partial-aid") && len(cmd.Data) > 0 && bytes.HasPrefix(spd.AID, cmd.Data)) &&
		!(d.bug("select-aid-prefix") && bytes.HasPrefix(cmd.Data, spd.AID)) {
		return nil, apdu.SWFileNotFound
	}
	d.selected, d.verified = true, verified
	aid := spd.AID
	if d.bug("select-fci-rid") {
		aid = aid[:5]
	}
	return spd.SelectResponse(spd.SelectResult{AID: aid, State: d.c.State, DeviceID: d.id}), apdu.SWOK
}

// pendingTotals returns the pending total (payment records, any mode) and
// the amount and number of offline payment records.
func (d *Device) pendingTotals() (total, offAmount int64, offCount int) {
	for _, r := range d.pend {
		if d.bug("offline-count-transfers") && !r.Kind.IsPayment() && r.Mode == spd.ModeOffline {
			offCount++
		}
		if !r.Kind.IsPayment() && !(d.bug("pending-counts-transfers") && r.Kind == spd.KindTransferOut) {
			continue
		}
		total += r.Amount
		if r.Mode == spd.ModeOffline {
			offAmount += r.Amount
			offCount++
		}
	}
	if d.bug("ack-total-minus-transfers") {
		total = max(total-d.mut.totalSkew, 0)
	}
	return total, offAmount, offCount
}

func (d *Device) doGetData(cmd apdu.Command) ([]byte, apdu.SW) {
	if len(cmd.Data) != 0 && !d.bug("getdata-with-data") {
		return nil, apdu.SWWrongLength
	}
	tag := tlv.Tag(cmd.P1)<<8 | tlv.Tag(cmd.P2)
	if cmd.P1 == 0 {
		tag = tlv.Tag(cmd.P2)
	}
	v, sw := d.dataValue(tag)
	if sw != apdu.SWOK {
		return nil, sw
	}
	return spd.DataObject(tag, v), apdu.SWOK
}

// doGetDataList answers GET DATA of a tag list (SPEC.md 4.2.1): every
// tag's object as GET DATA answers it, in the list's order, or the first
// failing check's status word and nothing. It changes nothing.
func (d *Device) doGetDataList(cmd apdu.Command) ([]byte, apdu.SW) {
	if (cmd.P1 != spd.P1GetDataList || cmd.P2 != spd.P2GetDataList) && !d.bug("getdatalist-any-p1p2") {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		return nil, apdu.SWWrongLength
	}
	tags, err := spd.ParseGetDataList(cmd.Data)
	if err != nil {
		return nil, apdu.SWWrongData
	}
	// Every tag is known (4.2, DF11 aside) before any is read, wherever
	// the unknown one sits in the list; then each is read in the state.
	var asked []tlv.Tag
	for _, tag := range tags {
		if tag == spd.TagCertificate || !isDataObject(tag) {
			if d.bug("getdatalist-skips-unknown") {
				continue
			}
			return nil, apdu.SWRefDataNotFound
		}
		asked = append(asked, tag)
	}
	if d.bug("getdatalist-omits-last") && len(asked) > 1 {
		asked = asked[:len(asked)-1]
	}
	var out []byte
	for _, tag := range asked {
		v, sw := d.dataValue(tag)
		if sw != apdu.SWOK {
			return nil, sw
		}
		if d.bug("getdatalist-stale-atc") && tag == spd.TagATC && d.c.ATC > 0 {
			v = u32(d.c.ATC - 1)
		}
		out = append(out, spd.DataObject(tag, v)...)
	}
	if d.bug("getdatalist-bumps-atc") && d.prof != nil {
		nc := d.c
		nc.ATC++
		d.commitCounters(nc)
	}
	return out, apdu.SWOK
}

// isDataObject reports whether tag is a data object of SPEC.md 4.2.
func isDataObject(tag tlv.Tag) bool {
	switch tag {
	case spd.TagState, spd.TagEraseCounter, spd.TagDeviceID, spd.TagDevicePublicKey,
		spd.TagCertificate, spd.TagBalance, spd.TagUses, spd.TagATC, spd.TagPending, spd.TagPendingCount,
		spd.TagLimits, spd.TagCurrency, spd.TagToken, spd.TagTier, spd.TagPINTries, spd.TagUpdateCounter, spd.TagLastSync:
		return true
	}
	return false
}

// dataValue is the value of GET DATA's object tag (SPEC.md 4.2), or the
// status word that refuses it: GET DATA and GET DATA list both answer
// through it, so that they always agree.
func (d *Device) dataValue(tag tlv.Tag) ([]byte, apdu.SW) {
	var v []byte
	switch tag {
	case spd.TagState:
		v = []byte{byte(d.c.State)}
	case spd.TagEraseCounter:
		v = u32(d.eraseCounter())
	case spd.TagDeviceID, spd.TagDevicePublicKey:
		if d.id == nil {
			return nil, apdu.SWConditionsNotSat
		}
		v = d.id
		if tag == spd.TagDevicePublicKey {
			v = d.pubBytes
		}
	case spd.TagCertificate, spd.TagBalance, spd.TagUses, spd.TagATC, spd.TagPending, spd.TagPendingCount,
		spd.TagLimits, spd.TagCurrency, spd.TagToken, spd.TagTier, spd.TagPINTries, spd.TagUpdateCounter, spd.TagLastSync:
		if d.prof == nil && !(d.bug("getdata-early") && tag == spd.TagBalance) {
			return nil, apdu.SWConditionsNotSat
		}
		switch tag {
		case spd.TagCertificate:
			v = d.prof.Certificate
			if d.bug("certificate-cut") && len(v) > 255 {
				v = v[:255]
			}
		case spd.TagBalance:
			v = u64(uint64(d.c.Balance))
			if d.bug("stale-balance") && d.mut.oldBalance != nil {
				v = bytes.Clone(d.mut.oldBalance)
			}
		case spd.TagUses:
			v = u32(d.c.Uses)
		case spd.TagATC:
			v = u32(d.c.ATC)
		case spd.TagPending:
			total, _, _ := d.pendingTotals()
			v = u64(uint64(total))
		case spd.TagPendingCount:
			v = []byte{byte(len(d.pend) >> 8), byte(len(d.pend))}
		case spd.TagLimits:
			v = d.c.Limits.Marshal()
		case spd.TagCurrency:
			v = []byte{byte(d.prof.Currency >> 8), byte(d.prof.Currency)}
		case spd.TagToken:
			v = d.prof.AccountToken
			if d.bug("account-in-getdata") {
				v = d.prof.Account
			}
		case spd.TagTier:
			v = []byte{d.c.Tier}
		case spd.TagPINTries:
			v = []byte{byte(d.tries(keyPINTries))}
		case spd.TagUpdateCounter:
			v = u32(d.c.UpdateCounter)
		case spd.TagLastSync:
			v = u32(d.c.LastSync)
		}
	default:
		if d.bug("getdata-unknown-6a80") {
			return nil, apdu.SWWrongData
		}
		return nil, apdu.SWRefDataNotFound
	}
	return v, apdu.SWOK
}

func (d *Device) doInitialise(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	ca, id, err := spd.ParseInitialise(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	key, err := d.generateKey(id)
	if err != nil {
		return nil, apdu.SWUnknown
	}
	if d.bug("initialise-keeps-key") && d.key != nil {
		key = d.key
	}
	if d.bug("initialise-keeps-ca") && d.caPub != nil {
		ca = d.caPub
	}
	caBytes := spd.PublicKeyBytes(ca)
	raw := make([]byte, 0, 8+65+32)
	raw = append(raw, id...)
	raw = append(raw, caBytes...)
	scalar, err := key.Bytes()
	if err != nil {
		return nil, apdu.SWUnknown
	}
	raw = append(raw, scalar...)
	nc := d.c
	nc.State = spd.StateInitialised
	tx := d.st.Begin()
	tx.Put(keyInit, raw)
	tx.Put(keyCounters, nc.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.id, d.caPub, d.key = id, ca, key
	d.pubBytes = spd.PublicKeyBytes(&key.PublicKey)
	return spd.DataObject(spd.TagDevicePublicKey, d.pubBytes), apdu.SWOK
}

func (d *Device) doPersonalise(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := spd.OpenIssuerData(d.caPub, spd.INSPersonalise, d.id, cmd.Data)
	if err != nil && d.bug("personalise-sig-6a80") {
		return nil, apdu.SWWrongData
	}
	if err != nil {
		return nil, parseErr(err)
	}
	p, err := spd.ParseProfile(body)
	if err != nil {
		return nil, parseErr(err)
	}
	pub, id, err := spd.VerifyDeviceCertificate(p.Certificate, d.caPub)
	if err != nil || (!bytes.Equal(id, d.id) && !d.bug("personalise-foreign-id")) ||
		(!bytes.Equal(spd.PublicKeyBytes(pub), d.pubBytes) && !d.bug("personalise-foreign-key")) {
		return nil, apdu.SWWrongData
	}
	nc := counters{
		State:    spd.StatePersonalised,
		Balance:  p.Balance,
		Uses:     p.Uses,
		LastSync: spd.Unix(p.Time),
		Tier:     p.Tier,
		Limits:   p.Limits,
	}
	tx := d.begin(spd.INSPersonalise)
	tx.Put(keyProfile, bytes.Clone(body))
	tx.Put(keyPIN, []byte(p.PIN))
	tx.Put(keyPINTries, []byte{byte(p.PINTryLimit)})
	tx.Put(keyPUKTries, []byte{byte(d.cfg.PUKTryLimit)})
	tx.Put(keyBioTries, []byte{byte(d.cfg.BioTryLimit)})
	tx.Put(keyCounters, nc.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.prof = &p
	d.pin = p.PIN
	d.hostPub = p.HostPublicKey
	if d.hostPub == nil {
		d.hostPub = d.caPub
	}
	return nil, apdu.SWOK
}

func (d *Device) doActivate(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	if !d.verified && !d.bug("activate-unverified") {
		return nil, apdu.SWSecurityNotSatisfied
	}
	nc := d.c
	nc.State = spd.StateActive
	tx := d.st.Begin()
	tx.Put(keyCounters, nc.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	return nil, apdu.SWOK
}

func (d *Device) doReadPending(cmd apdu.Command) ([]byte, apdu.SW) {
	if len(cmd.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	i := int(cmd.P1)<<8 | int(cmd.P2)
	if i >= len(d.pend) && d.bug("read-pending-wraps") && len(d.pend) > 0 {
		i %= len(d.pend)
	}
	if i >= len(d.pend) {
		return nil, apdu.SWRecordNotFound
	}
	r := d.pend[i]
	pr := d.pendingRecord(r)
	if d.bug("record-nonce-per-read") && len(pr.Nonce) != 0 {
		pr.Nonce = d.randBytes(len(pr.Nonce))
	}
	if err := d.signRecord(&pr); err != nil {
		return nil, apdu.SWUnknown
	}
	return pr.Marshal(), apdu.SWOK
}

func (d *Device) doAcknowledge(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := d.openHost(spd.INSAcknowledge, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	a, err := spd.ParseAcknowledgement(body)
	if err != nil {
		return nil, parseErr(err)
	}
	drop := map[uint32]bool{}
	for _, atc := range a.ATCs {
		if d.bug("ack-stops-at-unknown") && !slices.ContainsFunc(d.pend, func(r record) bool { return r.ATC == atc }) {
			break
		}
		drop[atc] = true
	}
	if d.bug("ack-replay-6984") && len(a.ATCs) > 0 && !slices.ContainsFunc(d.pend, func(r record) bool { return drop[r.ATC] }) {
		return nil, apdu.SWRefDataNotUsable
	}
	closed := map[uint64]bool{}
	nc := d.c
	if s := spd.Unix(a.SyncTime); s > nc.LastSync && !d.bug("ack-no-sync") {
		nc.LastSync = s
	}
	tx := d.begin(spd.INSAcknowledge)
	var keep []record
	for _, r := range d.pend {
		if drop[r.ATC] || d.bug("ack-drops-all") {
			if !d.bug("ack-not-persisted") {
				tx.Delete(pendKey(r.ATC))
			}
		} else {
			keep = append(keep, r)
		}
	}
	for _, s := range a.Serials {
		if _, ok := d.xfers[s]; ok && !d.bug("ack-ignores-serials") {
			tx.Delete(xferKey(s))
			closed[s] = true
		}
	}
	tx.Put(keyCounters, nc.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	d.pend = d.mutantAckLedger(a.ATCs, drop, keep)
	for s := range closed {
		delete(d.xfers, s)
	}
	return nil, apdu.SWOK
}

func (d *Device) doUpdate(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := d.openHost(spd.INSUpdateParameters, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	u, err := spd.ParseParameterUpdate(body)
	if err != nil {
		return nil, parseErr(err)
	}
	if u.Counter <= d.c.UpdateCounter && !(d.bug("update-counter-equal") && u.Counter == d.c.UpdateCounter) {
		return nil, apdu.SWRefDataNotUsable
	}
	nc := d.c
	nc.UpdateCounter = u.Counter
	if u.TopUp > 0 {
		if nc.Balance > maxAmount-u.TopUp && !d.bug("update-topup-unbounded") {
			return nil, apdu.SWWrongData
		}
		nc.Balance += u.TopUp
	}
	if u.AddUses > 0 {
		if uint64(nc.Uses)+uint64(u.AddUses) > 0xFFFFFFFF && !d.bug("update-uses-wrap") {
			return nil, apdu.SWWrongData
		}
		nc.Uses += u.AddUses
	}
	if u.Limits != nil {
		nc.Limits = *u.Limits
	}
	if u.Tier != nil {
		nc.Tier = *u.Tier
	}
	if u.State != nil {
		switch {
		case *u.State == spd.StateTerminated:
		case *u.State == spd.StateBlocked && (d.c.State == spd.StateActive || d.c.State == spd.StateBlocked ||
			(d.bug("block-personalised") && d.c.State == spd.StatePersonalised)):
		case *u.State == spd.StateActive && (d.c.State == spd.StateBlocked || d.c.State == spd.StateActive):
		default:
			if d.bug("update-partial") {
				d.commitCounters(nc)
			}
			return nil, apdu.SWConditionsNotSat
		}
		nc.State = *u.State
	}
	if s := spd.Unix(u.Time); s > nc.LastSync || (d.bug("update-sync-backwards") && !u.Time.IsZero()) {
		nc.LastSync = s
	}
	stored := nc
	if d.bug("update-not-persisted") {
		stored = d.c
		stored.UpdateCounter = nc.UpdateCounter
	}
	tx := d.st.Begin()
	tx.Put(keyCounters, stored.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	return nil, apdu.SWOK
}

// maxAmount is the largest balance or amount the device holds (2^62).
const maxAmount = int64(1) << 62

// eraseCounter is the last applied TEST ERASE counter (SPD-TST-2).
func (d *Device) eraseCounter() uint32 {
	b, ok := d.st.Get(keyErase)
	if !ok || len(b) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// doTestErase returns a test sample to blank (SPEC.md section 12).
func (d *Device) doTestErase(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := spd.OpenIssuerData(d.caPub, spd.INSTestErase, d.id, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	n, err := spd.ParseTestErase(body)
	if err != nil {
		return nil, parseErr(err)
	}
	if (d.c.State != spd.StateInitialised || d.bug("erase-initialised-refused")) && (d.prof == nil || !d.prof.TestSample) {
		return nil, apdu.SWConditionsNotSat
	}
	if n < d.eraseCounter() || (n == d.eraseCounter() && !d.bug("erase-counter-equal")) {
		return nil, apdu.SWRefDataNotUsable
	}
	tx := d.begin(spd.INSTestErase)
	for _, k := range d.st.Keys("") {
		if (k != keyErase || d.bug("erase-counter-wiped")) && !(d.bug("erase-keeps-media") && strings.HasPrefix(k, prefixMedia)) {
			tx.Delete(k)
		}
	}
	if !d.bug("erase-counter-wiped") {
		tx.Put(keyErase, u32(n))
	}
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	if err := d.load(); err != nil {
		d.broken = true
		return nil, apdu.SWMemoryFailure
	}
	d.clearSession()
	return nil, apdu.SWOK
}
