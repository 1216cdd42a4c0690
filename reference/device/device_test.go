package device

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
)

var ctx = context.Background()

func payReq(kind spd.PaymentKind, mode spd.Mode, amount int64) spd.PayRequest {
	return spd.PayRequest{Kind: kind, Mode: mode, Amount: amount, Currency: 978, Time: t0.Add(time.Minute), Region: 276}
}

func TestSelect(t *testing.T) {
	r := newRig(t, "SELECT01")
	r.expect(t, apdu.Command{CLA: 0, INS: 0xA4, P1: 4, Data: []byte{0xA0, 0, 0, 0, 4}}, apdu.SWFileNotFound)
	r.expect(t, spd.GetData(spd.TagBalance), apdu.SWConditionsNotSat)
	r.expect(t, apdu.Command{CLA: 0, INS: 0xA4, P1: 0, Data: spd.AID}, apdu.SWIncorrectP1P2)
	fci := r.expect(t, spd.Select(), apdu.SWOK)
	sel, err := spd.ParseSelectResponse(fci)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sel.AID, spd.AID) || sel.State != spd.StateActive || string(sel.DeviceID) != "SELECT01" {
		t.Fatalf("select answered %+v", sel)
	}
	r.expect(t, apdu.Command{CLA: 0x90, INS: 0xCA}, apdu.SWClaNotSupported)
	r.expect(t, apdu.Command{CLA: 0x80, INS: 0x7E}, apdu.SWInsNotSupported)
	r.expect(t, apdu.Command{CLA: 0x00, INS: 0x60}, apdu.SWInsNotSupported)
	r.expect(t, spd.GetData(0xDF7F), apdu.SWRefDataNotFound)
}

func TestLifeCycle(t *testing.T) {
	r := newBlankRig(t, "LIFE0001")
	r.expect(t, spd.Select(), apdu.SWOK)
	if s, _ := r.c.State(ctx); s != spd.StateBlank {
		t.Fatalf("new device in state %s", s)
	}
	r.expect(t, spd.GetData(spd.TagBalance), apdu.SWConditionsNotSat)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWConditionsNotSat)
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWConditionsNotSat)
	r.expect(t, spd.Initialise(&r.is.CA.PublicKey, []byte("SHORT")), apdu.SWWrongData)

	pub, err := r.c.Initialise(ctx, &r.is.CA.PublicKey, []byte("LIFE0001"))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.c.State(ctx); s != spd.StateInitialised {
		t.Fatalf("after INITIALISE: state %s", s)
	}
	p := testProfile("LIFE0001")
	p.DevicePublicKey = pub

	// A profile signed by another CA, and one certifying another key.
	rogue, err := issuer.New("rogue", keyFromSeed("rogue-ca"), nil)
	if err != nil {
		t.Fatal(err)
	}
	script, err := rogue.PersonalisationScript(p)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, script[0], apdu.SWSecurityNotSatisfied)
	other := p
	other.DevicePublicKey = &keyFromSeed("other-device").PublicKey
	script, err = r.is.PersonalisationScript(other)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, script[0], apdu.SWWrongData)

	script, err = r.is.PersonalisationScript(p)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, script[0], apdu.SWOK)
	r.expect(t, script[0], apdu.SWConditionsNotSat) // personalised once
	r.expect(t, spd.Initialise(&r.is.CA.PublicKey, []byte("LIFE0001")), apdu.SWConditionsNotSat)
	r.expect(t, spd.Activate(), apdu.SWSecurityNotSatisfied)
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWConditionsNotSat)
	r.expect(t, spd.Activate(), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWOK)

	host := r.is.HostKey()
	update := func(counter uint32, s spd.State) apdu.Command {
		cmd, err := spd.UpdateParameters(host, []byte("LIFE0001"), spd.ParameterUpdate{Counter: counter, State: &s})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	r.expect(t, update(1, spd.StateBlocked), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWConditionsNotSat)
	r.expect(t, spd.GenerateMedium(spd.MediumRequest{Time: t0}), apdu.SWConditionsNotSat)
	r.expect(t, update(2, spd.StateActive), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWOK)
	r.expect(t, update(3, spd.StateTerminated), apdu.SWOK)
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWConditionsNotSat)
	r.expect(t, update(4, spd.StateActive), apdu.SWConditionsNotSat)
	if s, _ := r.c.State(ctx); s != spd.StateTerminated {
		t.Fatalf("state %s, want terminated", s)
	}
	// A terminated device still hands over its ledger for settlement.
	recs, err := r.c.PendingRecords(ctx)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ledger of a terminated device: %d records, %v", len(recs), err)
	}
}

func TestPIN(t *testing.T) {
	r := newRig(t, "PIN00001")
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.PINStatus(), apdu.VerifyFailed(3))
	r.expect(t, spd.VerifyPIN("12a4"), apdu.SWWrongData)
	r.expect(t, spd.VerifyPIN("0000"), apdu.VerifyFailed(2))
	// The decrement survives a power cycle.
	r.dev.PowerOff()
	r.dev.PowerOn()
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.PINStatus(), apdu.VerifyFailed(2))
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWOK)
	r.expect(t, spd.PINStatus(), apdu.SWOK)
	if n, _ := r.c.PINTries(ctx); n != 3 {
		t.Fatalf("tries %d after a good PIN", n)
	}
	r.expect(t, spd.VerifyPIN("0000"), apdu.VerifyFailed(2))
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWSecurityNotSatisfied)
	r.expect(t, spd.VerifyPIN("0000"), apdu.VerifyFailed(1))
	r.expect(t, spd.VerifyPIN("0000"), apdu.VerifyFailed(0))
	err := r.c.VerifyPIN(ctx, testPIN)
	if !errors.Is(err, apdu.ErrPINBlocked) {
		t.Fatalf("verify of a blocked PIN: %v", err)
	}
	r.expect(t, spd.ChangePIN(testPIN, "5555"), apdu.SWAuthBlocked)

	// PUK: a wrong one spends a PUK try, the right one unblocks.
	r.expect(t, spd.UnblockPIN("11111111", ""), apdu.VerifyFailed(9))
	r.expect(t, spd.UnblockPIN(testPUK, "2468"), apdu.SWOK)
	r.expect(t, spd.VerifyPIN(testPIN), apdu.VerifyFailed(2))
	r.expect(t, spd.VerifyPIN("2468"), apdu.SWOK)

	// CHANGE REFERENCE DATA proves the old PIN.
	r.expect(t, spd.ChangePIN("1111", "3690"), apdu.VerifyFailed(2))
	r.expect(t, spd.ChangePIN("2468", "3690"), apdu.SWOK)
	r.expect(t, spd.VerifyPIN("3690"), apdu.SWOK)

	// Host-signed unblock, applied once.
	for i := 0; i < 3; i++ {
		r.do(t, spd.VerifyPIN("0000"))
	}
	unblock := r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
		return spd.UnblockByHost(k, id, spd.Unblock{Counter: 5, NewPIN: "1357"})
	})
	r.expect(t, unblock, apdu.SWOK)
	r.expect(t, unblock, apdu.SWRefDataNotUsable)
	forged, err := spd.UnblockByHost(keyFromSeed("forger"), []byte("PIN00001"), spd.Unblock{Counter: 9})
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, forged, apdu.SWSecurityNotSatisfied)
	r.expect(t, spd.VerifyPIN("1357"), apdu.SWOK)
}

func TestBiometric(t *testing.T) {
	r := newRig(t, "BIO00001")
	r.expect(t, spd.Select(), apdu.SWOK)
	near := bytes.Clone(bioTemplate)
	near[0] += 10 // distance 100 + 100 = 200 <= 400
	near[5] -= 10
	far := bytes.Clone(bioTemplate)
	far[3] += 30 // distance 900
	r.expect(t, spd.VerifyBiometric(far), apdu.VerifyFailed(4))
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWSecurityNotSatisfied)
	r.expect(t, spd.VerifyBiometric(near[:15]), apdu.SWWrongLength)
	r.expect(t, spd.VerifyBiometric(near), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWOK)
	if got := BioDistance(near, bioTemplate); got != 200 {
		t.Fatalf("distance %d, want 200", got)
	}
}

func TestInternalAuthenticate(t *testing.T) {
	r := newRig(t, "AUTH0001")
	r.expect(t, spd.Select(), apdu.SWOK)
	ch, err := r.c.GetChallenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.c.Authenticate(ctx, &r.is.CA.PublicKey, ch)
	if err != nil || string(id) != "AUTH0001" {
		t.Fatalf("authenticate: %s, %v", id, err)
	}
	if _, err := r.c.Authenticate(ctx, &keyFromSeed("rogue-ca").PublicKey, ch); !errors.Is(err, spd.ErrBadSignature) {
		t.Fatalf("authenticate against another CA: %v", err)
	}
	r.expect(t, spd.InternalAuthenticate(nil), apdu.SWWrongLength)
	r.expect(t, spd.InternalAuthenticate(make([]byte, 65)), apdu.SWWrongLength)
	r.expect(t, apdu.Command{CLA: 0, INS: 0x84, Ne: 8}, apdu.SWWrongLength)
}

func TestPayments(t *testing.T) {
	r := newRig(t, "PAY00001")
	r.login(t)
	// Tier 1 takes 10% off; region 250 adds 5%.
	res, err := r.c.Pay(ctx, spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOnline, Amount: 10000, Currency: 978,
		Time: t0, Region: 250, Payee: []byte("SHOP-1"), PayeeNonce: []byte("ORDER-77")})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Verify(r.pub); err != nil {
		t.Fatal(err)
	}
	in := res.Info()
	if in.Amount != 9450 || in.Balance != 100000-9450 || in.ATC != 1 || string(in.PayeeNonce) != "ORDER-77" ||
		string(in.PayeeID) != "SHOP-1" || !bytes.Equal(in.Token, r.profile.AccountToken) {
		t.Fatalf("balance payment result %+v", in)
	}
	if _, err := r.c.Pay(ctx, payReq(spd.KindAccount, spd.ModeOffline, 2000)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOffline, 0)); err != nil {
		t.Fatal(err)
	}
	s := r.snap(t)
	if s.Balance != 90550 || s.Uses != 9 || s.ATC != 3 || s.Pending != 9450+1800 || s.Ledger != 3 {
		t.Fatalf("after three payments: %+v", s)
	}
	recs, err := r.c.PendingRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind   spd.PaymentKind
		mode   spd.Mode
		amount int64
	}{{spd.KindBalance, spd.ModeOnline, 9450}, {spd.KindAccount, spd.ModeOffline, 1800}, {spd.KindUse, spd.ModeOffline, 0}}
	for i, rec := range recs {
		if err := rec.Verify(r.pub); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if rec.Kind != want[i].kind || rec.Mode != want[i].mode || rec.Amount != want[i].amount || rec.ATC != uint32(i+1) {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}

	declines := []struct {
		name   string
		req    spd.PayRequest
		reason string
	}{
		{"location absent", spd.PayRequest{Kind: spd.KindBalance, Amount: 1, Currency: 978, Time: t0}, ReasonLocation},
		{"location outside", spd.PayRequest{Kind: spd.KindBalance, Amount: 1, Currency: 978, Time: t0, Region: 840}, ReasonLocation},
		{"tier", spd.PayRequest{Kind: spd.KindBalance, Amount: 1, Currency: 978, Time: t0, Region: 276, RequiredTier: 2}, ReasonAttribute},
		{"per payment", payReq(spd.KindAccount, spd.ModeOnline, 60000), ReasonOverPaymentLimit},
		{"balance", payReq(spd.KindBalance, spd.ModeOnline, 49000*10/9+100000), ReasonOverPaymentLimit},
		{"unknown token", spd.PayRequest{Kind: spd.KindBalance, Amount: 1, Currency: 978, Time: t0, Region: 276, Token: bytes.Repeat([]byte{7}, 16)}, ReasonUnknownToken},
	}
	for _, d := range declines {
		before := dump(r.st)
		res, err := r.c.Pay(ctx, d.req)
		if !errors.Is(err, spd.ErrDeclined) || res.Success() || res.Info().Reason != d.reason {
			t.Fatalf("%s: %v, reason %q", d.name, err, res.Info().Reason)
		}
		if err := res.Verify(r.pub); err != nil {
			t.Fatalf("%s: failure result signature: %v", d.name, err)
		}
		if !mapsEqual(before, dump(r.st)) {
			t.Fatalf("%s: a decline changed memory", d.name)
		}
	}
	r.expect(t, spd.Pay(spd.PayRequest{Kind: spd.KindBalance, Amount: 1, Currency: 840, Time: t0, Region: 276}), apdu.SWWrongData)
	r.expect(t, apdu.Command{CLA: 0x80, INS: 0x60, P1: 4, Data: spd.Pay(payReq(spd.KindBalance, 0, 1)).Data}, apdu.SWIncorrectP1P2)
	r.expect(t, apdu.Command{CLA: 0x80, INS: 0x60, P1: 1, P2: 2, Data: spd.Pay(payReq(spd.KindBalance, 0, 1)).Data}, apdu.SWIncorrectP1P2)
	r.expect(t, spd.Pay(spd.PayRequest{Kind: spd.KindUse, Amount: 5, Currency: 978, Time: t0, Region: 276}), apdu.SWWrongData)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestBalanceAndUsesRunOut(t *testing.T) {
	r := newRig(t, "EMPTY001")
	r.login(t)
	for i := 0; i < 10; i++ {
		if _, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOnline, 0)); err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if res, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOnline, 0)); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonNoUses {
		t.Fatalf("eleventh use: %v", err)
	}
	for i := 0; i < 2; i++ {
		if _, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOnline, 50000)); err != nil {
			t.Fatalf("payment %d: %v", i, err)
		}
	}
	if res, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOnline, 50000)); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonInsufficientBalance {
		t.Fatalf("overdraft: %v", err)
	}
	if b, _ := r.c.Balance(ctx); b != 10000 {
		t.Fatalf("balance %d, want 10000", b)
	}
}

func TestOfflineLimits(t *testing.T) {
	r := newRig(t, "LIMIT001")
	r.login(t)
	// Max pending 20000, 5 records, 72 hours since sync. Tier 1: 10% off.
	for i := 0; i < 2; i++ {
		if _, err := r.c.Pay(ctx, payReq(spd.KindAccount, spd.ModeOffline, 10000)); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.c.Pay(ctx, payReq(spd.KindAccount, spd.ModeOffline, 2300))
	if !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonOverPendingLimit {
		t.Fatalf("over pending: %v", err)
	}
	// Online payments are not held to the offline limits.
	if _, err := r.c.Pay(ctx, payReq(spd.KindAccount, spd.ModeOnline, 30000)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOffline, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOffline, 0)); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonOverCountLimit {
		t.Fatalf("over count: %v", err)
	}
	// Settle everything: the limits free up and the sync clock restarts.
	recs, err := r.c.PendingRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var atcs []uint32
	for _, rec := range recs {
		atcs = append(atcs, rec.ATC)
	}
	ack := r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
		return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: t0.Add(time.Hour), ATCs: atcs})
	})
	r.expect(t, ack, apdu.SWOK)
	r.expect(t, ack, apdu.SWOK) // idempotent
	if n, _ := r.c.PendingCount(ctx); n != 0 {
		t.Fatalf("%d records after the acknowledgement", n)
	}
	late := payReq(spd.KindUse, spd.ModeOffline, 0)
	late.Time = t0.Add(time.Hour + 72*time.Hour + time.Second)
	if res, err := r.c.Pay(ctx, late); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonSyncTooOld {
		t.Fatalf("stale sync: %v", err)
	}
	late.Time = t0.Add(time.Hour + 72*time.Hour)
	if _, err := r.c.Pay(ctx, late); err != nil {
		t.Fatal(err)
	}
	forged, err := spd.Acknowledge(keyFromSeed("forger"), []byte("LIMIT001"), spd.Acknowledgement{SyncTime: t0, ATCs: []uint32{9}})
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, forged, apdu.SWSecurityNotSatisfied)
	other, err := spd.Acknowledge(r.is.HostKey(), []byte("OTHER001"), spd.Acknowledgement{SyncTime: t0, ATCs: []uint32{9}})
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, other, apdu.SWSecurityNotSatisfied) // bound to another device
}

func TestLedgerFull(t *testing.T) {
	r := newRig(t, "FULL0001")
	r.login(t)
	for i := 0; i < r.dev.cfg.MaxLedger; i++ {
		r.expect(t, spd.Pay(payReq(spd.KindAccount, spd.ModeOnline, 1)), apdu.SWOK)
	}
	r.expect(t, spd.Pay(payReq(spd.KindAccount, spd.ModeOnline, 1)), apdu.SWNotEnoughMemory)
	r.expect(t, spd.ReadPending(r.dev.cfg.MaxLedger), apdu.SWRecordNotFound)
}

func TestUpdateParameters(t *testing.T) {
	r := newRig(t, "UPD00001")
	r.login(t)
	tier := uint8(3)
	limits := spd.Limits{MaxPayment: 100, MaxPending: 100, MaxOfflineCount: 1, MaxOfflineAge: time.Hour}
	upd := r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
		return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 10, TopUp: 500, AddUses: 5, Tier: &tier, Limits: &limits, Time: t0.Add(time.Hour)})
	})
	r.expect(t, upd, apdu.SWOK)
	r.expect(t, upd, apdu.SWRefDataNotUsable)
	older := r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
		return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 9, TopUp: 500})
	})
	r.expect(t, older, apdu.SWRefDataNotUsable)
	s := r.snap(t)
	if s.Balance != 100500 || s.Uses != 15 {
		t.Fatalf("after update: %+v", s)
	}
	if got, _ := r.c.Limits(ctx); got != limits {
		t.Fatalf("limits %+v", got)
	}
	if c, _ := r.c.UpdateCounter(ctx); c != 10 {
		t.Fatalf("update counter %d", c)
	}
	// Tier 3: 30% off.
	res, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOnline, 100))
	if err != nil || res.Info().Amount != 70 {
		t.Fatalf("tier 3 payment: %v, amount %d", err, res.Info().Amount)
	}
}

func TestTokens(t *testing.T) {
	r := newRig(t, "TOKEN001")
	r.login(t)
	expiry := t0.Add(time.Hour)
	res, err := r.c.GenerateToken(ctx, spd.TokenRequest{Time: t0, Expiry: expiry,
		Controls: medium.TokenControls{MaxTransactions: 2, MaxAmount: 900, Channels: medium.ChannelInStore}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := medium.VerifyCertificate(res.Medium, &r.is.CA.PublicKey); err != nil {
		t.Fatalf("token medium: %v", err)
	}
	tok := res.Info().Token
	if len(tok) != spd.TokenLen || bytes.Equal(tok, r.profile.AccountToken) || res.Info().Controls.MaxTransactions != 2 {
		t.Fatalf("token medium %+v", res.Info())
	}
	pay := func(amount int64, at time.Time, ch medium.Channel) (spd.Result, error) {
		return r.c.Pay(ctx, spd.PayRequest{Kind: spd.KindBalance, Amount: amount, Currency: 978, Time: at, Region: 276, Token: tok, Channel: ch})
	}
	if res, err := pay(1100, t0, 0); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonTokenAmount {
		t.Fatalf("over the token amount (990 after discount): %v", err)
	}
	if res, err := pay(100, t0, medium.ChannelOnline); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonTokenChannel {
		t.Fatalf("wrong channel: %v", err)
	}
	if res, err := pay(100, expiry.Add(time.Second), 0); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonTokenExpired {
		t.Fatalf("expired: %v", err)
	}
	for i := 0; i < 2; i++ {
		res, err := pay(1000, t0, 0)
		if err != nil || !bytes.Equal(res.Info().Token, tok) {
			t.Fatalf("token payment %d: %v", i, err)
		}
	}
	if res, err := pay(100, t0, 0); !errors.Is(err, spd.ErrDeclined) || res.Info().Reason != ReasonTokenUsedUp {
		t.Fatalf("third use: %v", err)
	}
	recs, _ := r.c.PendingRecords(ctx)
	if len(recs) != 2 || !bytes.Equal(recs[0].Token, tok) {
		t.Fatalf("records do not carry the token: %+v", recs)
	}
	// The table holds MaxTokens live tokens; used-up ones are purged.
	for i := 0; i < r.dev.cfg.MaxTokens; i++ {
		if _, err := r.c.GenerateToken(ctx, spd.TokenRequest{Time: t0, Expiry: expiry, Controls: mediumControls(1, 1)}); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	r.expect(t, spd.GenerateToken(spd.TokenRequest{Time: t0, Expiry: expiry, Controls: mediumControls(1, 1)}), apdu.SWNotEnoughMemory)
	r.expect(t, spd.GenerateToken(spd.TokenRequest{Time: t0, Expiry: t0, Controls: mediumControls(1, 1)}), apdu.SWWrongData)
	// Once they expire, they make room.
	if _, err := r.c.GenerateToken(ctx, spd.TokenRequest{Time: expiry.Add(time.Second), Expiry: expiry.Add(time.Hour), Controls: mediumControls(1, 1)}); err != nil {
		t.Fatal(err)
	}
}

func TestStoredValueMedium(t *testing.T) {
	r := newRig(t, "MEDIUM01")
	r.login(t)
	res, err := r.c.GenerateMedium(ctx, spd.MediumRequest{Time: t0, PayeeNonce: []byte("NONCE-1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := medium.VerifyCertificate(res.Medium, &r.is.CA.PublicKey); err != nil {
		t.Fatal(err)
	}
	in := res.Info()
	if in.Balance != 100000 || in.Uses != 10 || in.ATC != 1 || string(in.PayeeNonce) != "NONCE-1" ||
		!in.Expiry.Equal(t0.Add(spd.DefaultMediumValidity)) || !bytes.Equal(in.Token, r.profile.AccountToken) {
		t.Fatalf("medium %+v", in)
	}
	if bytes.Contains(res.Envelope, r.profile.Account) {
		t.Fatalf("the medium reveals the designated account")
	}
	// The response is longer than 256 bytes: it came in parts (61xx).
	raw := r.dev.Process(spd.GenerateMedium(spd.MediumRequest{Time: t0}).MustBytes())
	if len(raw) != 258 || raw[256] != 0x61 {
		t.Fatalf("long response not chained: %d bytes, SW %X", len(raw), raw[len(raw)-2:])
	}
	whole := raw[:256:256]
	for sw2 := raw[257]; ; {
		next := r.dev.Process(spd.GetResponse(int(sw2)).MustBytes())
		whole = append(whole, next[:len(next)-2]...)
		if next[len(next)-2] == 0x90 {
			break
		}
		if next[len(next)-2] != 0x61 {
			t.Fatalf("GET RESPONSE answered %X", next[len(next)-2:])
		}
		sw2 = next[len(next)-1]
	}
	if _, err := medium.Parse(whole); err != nil {
		t.Fatal(err)
	}
	r.expect(t, spd.GetResponse(16), apdu.SWConditionsNotSat)
}

func TestTransfers(t *testing.T) {
	payer := newRig(t, "PAYER001")
	payee := newRig(t, "PAYEE001")
	third := newRig(t, "THIRD001")
	payer.login(t)
	payee.login(t)
	third.login(t)
	expiry := t0.Add(24 * time.Hour)
	req := spd.TransferRequest{Amount: 3000, Currency: 978, Payee: []byte("PAYEE001"), Time: t0, Expiry: expiry}
	payer.expect(t, spd.TransferOut(spd.TransferRequest{Amount: 200000, Currency: 978, Payee: []byte("PAYEE001"), Time: t0, Expiry: expiry}), apdu.SWConditionsNotSat)
	payer.expect(t, spd.TransferOut(spd.TransferRequest{Amount: 1, Currency: 978, Payee: []byte("PAYER001"), Time: t0, Expiry: expiry}), apdu.SWWrongData)
	res, err := payer.c.TransferOut(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The payer is debited before the medium leaves the device.
	if b, _ := payer.c.Balance(ctx); b != 97000 {
		t.Fatalf("payer balance %d after the transfer", b)
	}
	in := res.Info()
	if in.Serial != 1 || in.Amount != 3000 || string(in.PayerID) != "PAYER001" || string(in.PayeeID) != "PAYEE001" {
		t.Fatalf("transfer medium %+v", in)
	}
	again, err := payer.c.TransferShow(ctx, spd.SerialAt{Serial: 1, Time: t0})
	if err != nil || again.Info().Serial != 1 || again.Info().ATC != in.ATC {
		t.Fatalf("show again: %v", err)
	}
	payer.expect(t, spd.TransferShow(9, t0), apdu.SWRecordNotFound)

	// Only the named payee imports it, once, before it expires.
	third.expect(t, spd.TransferIn(res.Envelope, t0), apdu.SWWrongData)
	payee.expect(t, spd.TransferIn(res.Envelope, expiry.Add(time.Second)), apdu.SWConditionsNotSat)
	tampered := bytes.Clone(res.Envelope)
	tampered[len(tampered)-1] ^= 1 // the signature's last byte
	payee.expect(t, spd.TransferIn(tampered, t0), apdu.SWSecurityNotSatisfied)
	payee.expect(t, spd.TransferIn(res.Envelope[:len(res.Envelope)-3], t0), apdu.SWWrongData)
	got, err := payee.c.TransferIn(ctx, spd.TransferImport{Medium: res.Envelope, Time: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(payee.pub); err != nil || got.Info().Amount != 3000 {
		t.Fatalf("import result: %v", err)
	}
	if b, _ := payee.c.Balance(ctx); b != 103000 {
		t.Fatalf("payee balance %d", b)
	}
	payee.expect(t, spd.TransferIn(res.Envelope, t0.Add(time.Hour)), apdu.SWRefDataNotUsable)
	// The payer's certificate is remembered now (certMemo); the medium's
	// own signature is still checked.
	payee.expect(t, spd.TransferIn(tampered, t0.Add(time.Hour)), apdu.SWSecurityNotSatisfied)
	recs, _ := payee.c.PendingRecords(ctx)
	if len(recs) != 1 || recs[0].Kind != spd.KindTransferIn || recs[0].Serial != 1 || string(recs[0].Counterpart) != "PAYER001" {
		t.Fatalf("import receipt %+v", recs)
	}

	// A second transfer is reclaimed after expiry, once, on a host order.
	res2, err := payer.c.TransferOut(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	reclaim := func(at time.Time, key *ecdsa.PrivateKey) apdu.Command {
		cmd, err := spd.Reclaim(key, []byte("PAYER001"), spd.SerialAt{Serial: res2.Info().Serial, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	payer.expect(t, reclaim(expiry, payer.is.HostKey()), apdu.SWConditionsNotSat)
	payer.expect(t, reclaim(expiry.Add(time.Hour), keyFromSeed("forger")), apdu.SWSecurityNotSatisfied)
	back, err := payer.c.Reclaim(ctx, reclaim(expiry.Add(time.Hour), payer.is.HostKey()))
	if err != nil || back.Info().Amount != 3000 {
		t.Fatalf("reclaim: %v", err)
	}
	payer.expect(t, reclaim(expiry.Add(2*time.Hour), payer.is.HostKey()), apdu.SWRefDataNotUsable)
	payer.expect(t, spd.TransferShow(res2.Info().Serial, t0), apdu.SWRecordNotFound)
	if b, _ := payer.c.Balance(ctx); b != 97000 {
		t.Fatalf("payer balance %d after reclaim", b)
	}
	// The host closes both transfers; a reclaim of a closed one is refused.
	closeAll := payer.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
		return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: t0, Serials: []uint64{1, 2}})
	})
	payer.expect(t, closeAll, apdu.SWOK)
	payer.expect(t, reclaim(expiry.Add(2*time.Hour), payer.is.HostKey()), apdu.SWRecordNotFound)
}

func TestPowerEvents(t *testing.T) {
	r := newRig(t, "POWER001")
	r.login(t)
	r.dev.PowerOff()
	if resp := r.dev.Process(spd.Select().MustBytes()); resp != nil {
		t.Fatalf("unpowered device answered %X", resp)
	}
	r.dev.PowerOn()
	r.expect(t, spd.GetData(spd.TagBalance), apdu.SWConditionsNotSat)
	r.login(t)
	r.dev.Reset()
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 1)), apdu.SWSecurityNotSatisfied)
	if _, err := r.link.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	r.expect(t, spd.GetData(spd.TagBalance), apdu.SWConditionsNotSat)
}

func TestParseMedium(t *testing.T) {
	shower := newRig(t, "SHOWER01")
	reader := newRig(t, "READER01")
	shower.login(t)
	reader.expect(t, spd.Select(), apdu.SWOK)
	res, err := shower.c.GenerateMedium(ctx, spd.MediumRequest{Time: t0, PayeeNonce: []byte("N")})
	if err != nil {
		t.Fatal(err)
	}
	before := dump(reader.st)
	info, err := reader.c.ParseMedium(ctx, res.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if string(info.DeviceID) != "SHOWER01" || info.Balance != 100000 || string(info.PayeeNonce) != "N" {
		t.Fatalf("parsed %+v", info)
	}
	tampered := bytes.Clone(res.Envelope)
	tampered[len(tampered)-1] ^= 1
	reader.expect(t, spd.ParseMedium(tampered), apdu.SWSecurityNotSatisfied)
	reader.expect(t, spd.ParseMedium(res.Envelope[:20]), apdu.SWWrongData)
	reader.expect(t, apdu.Command{CLA: 0x80, INS: 0x72, P1: 2, Data: spd.ParseMedium(res.Envelope).Data}, apdu.SWIncorrectP1P2)
	if !mapsEqual(before, dump(reader.st)) {
		t.Fatalf("PARSE MEDIUM changed memory")
	}
}

func TestFileStoreKeepsTheCard(t *testing.T) {
	path := t.TempDir() + "/card.db"
	st, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := New(st, Config{Seed: []byte("file")})
	l := link.NewDirect(d, "ref", emulator.ATR(emulator.FormSIM))
	c := spd.NewClient(l)
	p := testProfile("FILE0001")
	if _, err := labIssuer(t).Personalise(ctx, c, p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOffline, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c = spd.NewClient(link.NewDirect(New(st, Config{}), "ref", nil))
	if _, err := c.Select(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyPIN(ctx, testPIN); err != nil {
		t.Fatal(err)
	}
	b, _ := c.Balance(ctx)
	recs, err := c.PendingRecords(ctx)
	if b != 100000-900 || err != nil || len(recs) != 1 {
		t.Fatalf("after reopening: balance %d, %d records, %v", b, len(recs), err)
	}
	if _, err := c.Pay(ctx, payReq(spd.KindUse, spd.ModeOffline, 0)); err != nil {
		t.Fatal(err)
	}
}
