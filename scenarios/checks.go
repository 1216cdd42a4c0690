package scenarios

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"math/big"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// Status words of SPEC.md section 1.1, written out here rather than taken
// from reference/apdu, so that what the suite expects does not come from
// code the device under test shares.
const (
	sw9000 apdu.SW = 0x9000
	sw6700 apdu.SW = 0x6700
	sw6982 apdu.SW = 0x6982
	sw6983 apdu.SW = 0x6983
	sw6984 apdu.SW = 0x6984
	sw6985 apdu.SW = 0x6985
	sw6A80 apdu.SW = 0x6A80
	sw6A82 apdu.SW = 0x6A82
	sw6A83 apdu.SW = 0x6A83
	sw6A84 apdu.SW = 0x6A84
	sw6A86 apdu.SW = 0x6A86
	sw6A88 apdu.SW = 0x6A88
	sw6D00 apdu.SW = 0x6D00
	sw6E00 apdu.SW = 0x6E00
)

// sw63C is 63Cx, x tries left.
func sw63C(x int) apdu.SW { return apdu.SW(0x63C0 | x) }

// Decline reasons of SPEC.md section 4.4, written out.
const (
	reasonUnknownToken  = "unknown token"
	reasonLocation      = "location not allowed"
	reasonTier          = "attribute: tier too low"
	reasonTokenExpired  = "token expired"
	reasonTokenUsedUp   = "token transactions used up"
	reasonTokenAmount   = "over the token amount"
	reasonTokenChannel  = "channel not allowed for the token"
	reasonPaymentLimit  = "over the per-payment limit"
	reasonBalance       = "insufficient balance"
	reasonNoUses        = "no uses left"
	reasonPendingLimit  = "over the offline pending limit"
	reasonCountLimit    = "over the offline count limit"
	reasonSyncTooOld    = "too long offline since the last sync"
	defaultMediumExpiry = 300 * time.Second
)

// DeviceState is everything about a device the profile lets a terminal
// read without changing it: the value snapshot, the host and sync
// counters, the PIN tries and the whole ledger (records without their
// signatures, which are made at reading).
type DeviceState struct {
	Snapshot
	LastSync, UpdateCounter uint32
	PINTries                int
	Tier                    []byte
	Limits                  []byte
	Records                 []spd.PendingRecord
}

// state reads the device's DeviceState. The application must be selected
// and the device personalised. A device changes only through what crosses
// its link: when nothing did since the last read (a check after a command
// and the next command's "before"), that read's state is the answer, and
// the device is not asked again (on pcsc-emu every read is some 20 round
// trips through pcscd).
func (f *Fixture) state(ctx context.Context) DeviceState {
	GinkgoHelper()
	if f.seen != nil && f.rec.Operations() == f.seenAt {
		return f.seen.clone()
	}
	s := f.readState(ctx)
	f.seen, f.seenAt = &s, f.rec.Operations()
	return s.clone()
}

// clone copies the state's slices, so that a caller may change its copy.
func (s DeviceState) clone() DeviceState {
	s.Tier = slices.Clone(s.Tier)
	s.Limits = slices.Clone(s.Limits)
	s.Records = slices.Clone(s.Records)
	return s
}

// readState asks the device for its DeviceState: its data objects in one
// read (readObjects), then each ledger record.
func (f *Fixture) readState(ctx context.Context) DeviceState {
	GinkgoHelper()
	o := f.readObjects(ctx, stateTags...)
	s := DeviceState{Snapshot: o.snapshot()}
	s.LastSync, s.UpdateCounter = uint32(o.uint(spd.TagLastSync, 4)), uint32(o.uint(spd.TagUpdateCounter, 4))
	s.PINTries = int(o.uint(spd.TagPINTries, 1))
	s.Tier, s.Limits = o[spd.TagTier], o[spd.TagLimits]
	// The read has just given the number of records (GET DATA DF22):
	// read each of them, rather than the number again.
	for i := range s.Ledger {
		r, err := f.Client.ReadPending(ctx, i)
		Expect(err).NotTo(HaveOccurred(), "READ PENDING %d of %d", i, s.Ledger)
		f.verifyRecord(r)
		r.Signature = nil
		s.Records = append(s.Records, r)
	}
	return s
}

// verifyRecord checks a pending record's signature under the device key
// (SPD-LED-2, SPD-KEY-5), once for each encoding: a device that signs
// deterministically answers the same bytes at every READ PENDING, and
// those bytes verified once verify again; a record that differs in any
// byte, its signature included, is verified afresh.
func (f *Fixture) verifyRecord(r spd.PendingRecord) {
	GinkgoHelper()
	if f.verifiedBy == nil || !f.verifiedBy.Equal(f.Pub) {
		f.verified, f.verifiedBy = map[string]bool{}, f.Pub
	}
	enc := string(r.Marshal())
	if f.verified[enc] {
		return
	}
	Expect(r.Verify(f.Pub)).To(Succeed(), "pending record ATC %d", r.ATC)
	f.verified[enc] = true
}

// selected is personalised (fixture.go) with the application selected
// and the cardholder not verified: the start of most cases.
func selected(ctx context.Context, d Driver, p *spd.Profile) *Fixture {
	GinkgoHelper()
	f := personalised(ctx, d, p)
	_, err := f.Client.Select(ctx)
	Expect(err).NotTo(HaveOccurred())
	return f
}

// torn sends cmd with a power cut armed at its nth persistent write,
// checks that the device answered nothing to it (SPD-STO-2), and powers
// the device on again with the application selected (reconnect).
func (f *Fixture) torn(ctx context.Context, cmd apdu.Command, n int, what string) {
	GinkgoHelper()
	f.Device.TearAt(n)
	_, err := f.Client.Transmit(ctx, cmd)
	f.Device.TearAt(0)
	Expect(err).To(MatchError(link.ErrRemoved), "%s torn at its persistent write %d answers nothing", what, n)
	reconnect(ctx, f)
}

// refuses sends cmd, expects exactly sw and checks that nothing the
// device shows changed (SPD-APP-4, SPD-LC-3).
func (f *Fixture) refuses(ctx context.Context, cmd apdu.Command, sw apdu.SW, why string) {
	GinkgoHelper()
	before := f.state(ctx)
	Expect(f.sw(ctx, cmd)).To(Equal(sw), why)
	Expect(f.state(ctx)).To(Equal(before), "%s: a refused command changes nothing", why)
}

// declinesCode presents r (PRESENT CODE) and expects a signed decline with
// exactly reason: no record, a result that verifies with the device key,
// and nothing changed (SPD-PRC-1: declined as PAY P2 01 would be).
func (f *Fixture) declinesCode(ctx context.Context, r spd.PresentRequest, reason string) {
	GinkgoHelper()
	before := f.state(ctx)
	code, err := f.Client.PresentCode(ctx, r)
	Expect(errors.Is(err, spd.ErrDeclined)).To(BeTrue(), "want the decline %q: %v", reason, err)
	Expect(code.Record).To(BeNil(), "a declined code holds no record")
	Expect(code.Result.Verify(f.Pub)).To(Succeed())
	Expect(code.Result.Info().Reason).To(Equal(reason))
	caseDeclined = true
	Expect(f.state(ctx)).To(Equal(before), "a declined code changes nothing")
}

// declines pays r, expects a signed decline with exactly reason, showing
// the unchanged balance, uses and ATC, the requested amount and the token
// named, and checks that nothing changed (SPD-PAY-6, SPEC.md 7.3).
func (f *Fixture) declines(ctx context.Context, r spd.PayRequest, reason string) spd.Result {
	GinkgoHelper()
	before := f.state(ctx)
	res := f.pay(ctx, r)
	Expect(res.Success()).To(BeFalse(), "paid %d, want the decline %q", r.Amount, reason)
	info := res.Info()
	Expect(info.Reason).To(Equal(reason))
	caseDeclined = true
	Expect(info.Balance).To(Equal(before.Balance), "a decline shows the unchanged balance")
	Expect(uint32(info.Uses)).To(Equal(before.Uses))
	Expect(info.ATC).To(Equal(before.ATC), "a decline shows the current ATC")
	Expect(info.Amount).To(Equal(r.Amount), "a decline shows the requested amount")
	token := r.Token
	if token == nil {
		token = f.Profile.AccountToken
	}
	Expect(info.Token).To(Equal(token), "a decline shows the token the PAY named (the account token when it named none)")
	Expect(f.state(ctx)).To(Equal(before), "a declined payment changes nothing")
	return res
}

// pays pays r and expects success with exactly the adjusted amount
// charged: the balance (kind 01), uses (kind 03), ATC, pending total and
// ledger move by exactly that, and the new record says so (SPD-PAY-1..5).
func (f *Fixture) pays(ctx context.Context, r spd.PayRequest, charged int64) spd.Result {
	GinkgoHelper()
	before := f.state(ctx)
	res := f.pay(ctx, r)
	Expect(res.Success()).To(BeTrue(), "declined: %s", res.Info().Reason)
	after := f.state(ctx)
	info := res.Info()
	Expect(info.Amount).To(Equal(charged), "adjusted amount in the result")
	want := before.Snapshot
	want.ATC++
	want.Ledger++
	want.Pending += charged
	switch r.Kind {
	case spd.KindBalance:
		want.Balance -= charged
	case spd.KindUse:
		want.Uses--
	}
	Expect(after.Snapshot).To(Equal(want), "state after paying %d (charged %d)", r.Amount, charged)
	Expect(info.Balance).To(Equal(after.Balance), "the result shows the balance after the payment")
	Expect(info.ATC).To(Equal(after.ATC), "the result shows the new ATC")
	Expect(info.Pending).To(Equal(after.Pending), "the result shows the pending total after the payment")
	Expect(uint32(info.Uses)).To(Equal(after.Uses))
	Expect(after.Records).To(HaveLen(len(before.Records) + 1))
	rec := after.Records[len(after.Records)-1]
	Expect(rec.ATC).To(Equal(after.ATC))
	Expect(rec.Kind).To(Equal(r.Kind))
	Expect(rec.Mode).To(Equal(r.Mode))
	Expect(rec.Amount).To(Equal(charged))
	Expect(rec.Payee).To(Equal(r.Payee), "the record names the payee")
	token := r.Token
	if token == nil {
		token = f.Profile.AccountToken
	}
	Expect(rec.Token).To(Equal(token), "the record carries the token paid under")
	Expect(info.Token).To(Equal(token))
	Expect(info.PayeeID).To(Equal(r.Payee), "the result names the payee")
	Expect(info.PayeeNonce).To(Equal(r.PayeeNonce))
	return res
}

// adjusted is SPD-ADJ-1 computed here from the numbers the case gives,
// with exact integers: the tier discount then the region adjustment, each
// truncated toward zero, clamped to 0..2^62.
func adjusted(amount int64, discountBP, regionBP int64) int64 {
	a := big.NewInt(amount)
	trunc := func(x *big.Int, bp int64) *big.Int {
		p := new(big.Int).Mul(x, big.NewInt(bp))
		return p.Quo(p, big.NewInt(10000)) // Quo truncates toward zero
	}
	a.Sub(a, trunc(a, discountBP))
	a.Add(a, trunc(a, regionBP))
	if a.Sign() < 0 {
		return 0
	}
	if limit := new(big.Int).Lsh(big.NewInt(1), 62); a.Cmp(limit) > 0 {
		return 1 << 62
	}
	return a.Int64()
}

// update sends a host-signed UPDATE PARAMETERS and expects 9000.
func (f *Fixture) update(ctx context.Context, u spd.ParameterUpdate) {
	GinkgoHelper()
	Expect(f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
		return spd.UpdateParameters(k, id, u)
	}))).To(Equal(sw9000), "UPDATE PARAMETERS counter %d", u.Counter)
}

// acknowledge sends a host-signed ACKNOWLEDGE and returns its status.
func (f *Fixture) acknowledge(ctx context.Context, a spd.Acknowledgement) apdu.SW {
	GinkgoHelper()
	return f.sw(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
		return spd.Acknowledge(k, id, a)
	}))
}

// emptyLedger has the host acknowledge every record of the pending ledger
// (SPD-LED-4), which must leave it empty, and returns the records it
// acknowledged.
func (f *Fixture) emptyLedger(ctx context.Context) []spd.PendingRecord {
	GinkgoHelper()
	return f.settle(ctx, nil)
}

// settle has the host acknowledge every record of the pending ledger and
// close the outgoing transfers of serials in one ACKNOWLEDGE (SPD-LED-4),
// as a settlement does; the ledger must be empty after it. It returns the
// records it acknowledged, for a case that accounts for value over the
// records the device made (conserved).
func (f *Fixture) settle(ctx context.Context, serials []uint64) []spd.PendingRecord {
	GinkgoHelper()
	return f.settleAllBut(ctx, serials, 0)
}

// settleAllBut is settle of every record but the newest keep, as a
// settlement of the records that reached the host before the newest does:
// those keep records must be all the ledger holds after it.
func (f *Fixture) settleAllBut(ctx context.Context, serials []uint64, keep int) []spd.PendingRecord {
	GinkgoHelper()
	recs := f.state(ctx).Records
	left := min(keep, len(recs))
	recs = recs[:len(recs)-left]
	if len(recs) == 0 && len(serials) == 0 {
		return nil
	}
	atcs := make([]uint32, len(recs))
	for i, r := range recs {
		atcs[i] = r.ATC
	}
	// An acknowledgement names at most spd.MaxAckEntries of each (4.6).
	for len(atcs) > 0 || len(serials) > 0 {
		a := spd.Acknowledgement{SyncTime: Clock, ATCs: atcs[:min(len(atcs), spd.MaxAckEntries)], Serials: serials[:min(len(serials), spd.MaxAckEntries)]}
		Expect(f.acknowledge(ctx, a)).To(Equal(sw9000),
			"acknowledging %d of the %d records of the ledger and closing %d outgoing transfers", len(a.ATCs), len(recs), len(a.Serials))
		atcs, serials = atcs[len(a.ATCs):], serials[len(a.Serials):]
	}
	Expect(f.Client.PendingCount(ctx)).To(Equal(left), "the ledger after the host acknowledged every record but the newest %d", left)
	return recs
}

// roomInLedger empties the pending ledger when it holds as many records as
// the device's capacity (SPEC.md section 11), so that a case that makes
// more records than the capacity runs on a device of any capacity.
func (f *Fixture) roomInLedger(ctx context.Context) {
	GinkgoHelper()
	n, err := f.Client.PendingCount(ctx)
	Expect(err).NotTo(HaveOccurred())
	if n >= capacities(f.Driver).Ledger {
		f.emptyLedger(ctx)
	}
}

// reclaimOrder is a host-signed RECLAIM of serial at t.
func (f *Fixture) reclaimOrder(serial uint64, t time.Time) apdu.Command {
	GinkgoHelper()
	return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
		return spd.Reclaim(k, id, spd.SerialAt{Serial: serial, Time: t})
	})
}

// raw sends bytes as they are and returns the response data and status,
// without following 61xx or 6Cxx.
func (f *Fixture) raw(ctx context.Context, cmd []byte) ([]byte, apdu.SW) {
	GinkgoHelper()
	resp, err := f.Client.Link.Exchange(ctx, cmd)
	Expect(err).NotTo(HaveOccurred(), "% X", cmd)
	Expect(len(resp)).To(BeNumerically(">=", 2))
	n := len(resp) - 2
	return resp[:n], apdu.SW(uint16(resp[n])<<8 | uint16(resp[n+1]))
}

// rawCmd encodes cmd.
func rawCmd(cmd apdu.Command) []byte {
	GinkgoHelper()
	b, err := cmd.Bytes()
	Expect(err).NotTo(HaveOccurred())
	return b
}

// noAccountOutput checks that no response the device gave in this case
// carries the designated account (SPD-MED-3, C19, C24, C27).
func (f *Fixture) noAccountOutput() {
	GinkgoHelper()
	for _, e := range f.rec.Events() {
		Expect(bytes.Contains(e.Response, f.Profile.Account)).To(BeFalse(),
			"the designated account left the device in the answer to % X", e.Command)
	}
}

// transferTo makes an outgoing transfer to payee and expects it to
// succeed.
func (f *Fixture) transferTo(ctx context.Context, payee []byte, amount int64, expiry time.Time) spd.Result {
	GinkgoHelper()
	res, err := f.Client.TransferOut(ctx, spd.TransferRequest{Amount: amount, Currency: 978, Payee: payee, Time: Clock, Expiry: expiry})
	Expect(err).NotTo(HaveOccurred())
	Expect(res.Verify(f.Pub)).To(Succeed())
	return res
}

// certifiedForger is a key the issuer CA certified for a device that does
// not exist: whatever it signs passes the certificate check, so a forged
// medium reaches the checks behind it.
type certifiedForger struct {
	ID   []byte
	Key  *ecdsa.PrivateKey
	Cert []byte
}

func newForger(is *issuer.Issuer) certifiedForger {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	id := []byte{0x5D, 0x1A, 0xF0, 0x46, 0x45, 0x52, 0x47, 0x45}
	cert, err := is.Certify(id, &key.PublicKey)
	Expect(err).NotTo(HaveOccurred())
	return certifiedForger{ID: id, Key: key, Cert: cert}
}

// sign signs info as the forger's device, carrying its certificate.
func (g certifiedForger) sign(info medium.ServiceInfo) []byte {
	GinkgoHelper()
	info.Certificate = g.Cert
	env, err := medium.Sign(info, g.Key)
	Expect(err).NotTo(HaveOccurred())
	return env
}

// transferMedium is a transfer medium as a payer device would show it.
func transferMedium(payer, payee []byte, amount int64, serial uint64, expiry time.Time) medium.ServiceInfo {
	return medium.ServiceInfo{Kind: medium.KindTransfer, AID: spd.AID, DeviceID: payer, PayerID: payer, PayeeID: payee,
		Amount: amount, Serial: serial, Currency: 978, Balance: 0, Uses: 0, ATC: 1, Issued: Clock, Expiry: expiry}
}

// capacities are the capacities of the device under test that the capacity
// cases fill to exactly their value before they expect 6A84 (SPEC.md
// section 11): those its ICS declares, the reference device's when the
// driver has no statement.
func capacities(d Driver) ics.Capacities {
	if s := d.Profile().ICS; s != nil {
		return s.Capacities
	}
	return ics.Reference().Capacities
}

// chaining sends commands as they are (link.RawExchanger) to see the
// device's own response chaining (SPD-APP-5); whole is the certificate
// (GET DATA DF11) as the resolved path reads it, the long response the
// chaining cases split.
type chaining struct {
	f     *Fixture
	raw   link.RawExchanger
	whole []byte
}

// chainingOf reads the certificate of a personalised, selected device
// through the resolved path and finds the raw exchange of the fixture's
// recorded link.
func chainingOf(ctx context.Context, f *Fixture, d Driver) *chaining {
	GinkgoHelper()
	raw, ok := f.rec.Link().(link.RawExchanger)
	if !ok {
		Skip(Why(RawExchange, d.Profile().Name))
	}
	whole, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagCertificate)))
	Expect(sw).To(Equal(sw9000), "GET DATA DF11 of a personalised device")
	Expect(len(whole)).To(BeNumerically(">", 256+16), "the certificate object is longer than 272 bytes (the lab's issuer makes it)")
	return &chaining{f: f, raw: raw, whole: whole}
}

// send sends cmd raw with its Ne set to ne (0: Le absent) and returns the
// data and status word as the device answered them.
func (c *chaining) send(ctx context.Context, cmd apdu.Command, ne int) ([]byte, apdu.SW) {
	GinkgoHelper()
	cmd.Ne = ne
	b := rawCmd(cmd)
	resp, err := c.raw.ExchangeRaw(ctx, b)
	Expect(err).NotTo(HaveOccurred(), "% X", b)
	Expect(len(resp)).To(BeNumerically(">=", 2), "the answer to % X", b)
	n := len(resp) - 2
	return resp[:n], apdu.SW(uint16(resp[n])<<8 | uint16(resp[n+1]))
}

// pending leaves the certificate pending after its first ne bytes.
func (c *chaining) pending(ctx context.Context, ne int) {
	GinkgoHelper()
	got, sw := c.send(ctx, spd.GetData(spd.TagCertificate), ne)
	Expect(sw).To(Equal(moreWord(len(c.whole)-ne)), "GET DATA DF11 with Ne %d", ne)
	Expect(got).To(Equal(c.whole[:ne]))
}

// idle checks that nothing is pending: GET RESPONSE answers 6985 and no
// data.
func (c *chaining) idle(ctx context.Context, why string) {
	GinkgoHelper()
	got, sw := c.send(ctx, spd.GetResponse(0), 256)
	Expect(sw).To(Equal(sw6985), why)
	Expect(got).To(BeEmpty(), why)
}

// neOf is the Ne of an Le: 256 when absent (0).
func neOf(ne int) int {
	if ne == 0 {
		return apdu.MaxShortLe
	}
	return ne
}

// moreWord is 61xx for n bytes remaining: xx = n, 00 for 256 or more.
func moreWord(n int) apdu.SW {
	if n >= 256 {
		return apdu.SWBytesAvailable
	}
	return apdu.SWBytesAvailable | apdu.SW(n)
}
