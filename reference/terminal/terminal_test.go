package terminal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/backend/backendtest"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/terminal"
)

func mustDone(t *testing.T, o terminal.Outcome) {
	t.Helper()
	if o.Status != terminal.Done {
		t.Fatalf("%s", o)
	}
}

func mustNotDone(t *testing.T, o terminal.Outcome, why string) {
	t.Helper()
	if o.Status != terminal.NotDone || o.Reason == "" {
		t.Fatalf("%s: want not done with a reason", o)
	}
	if why != "" && !strings.Contains(o.Reason, why) {
		t.Fatalf("%s: want the reason to say %q", o, why)
	}
}

func TestScanOrderFromPNG(t *testing.T) {
	img, err := merchant.Render(merchant.Order{PayloadFormat: "01", Initiation: merchant.Dynamic,
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "SHOP-7"}},
		Category: "5411", Currency: "978", Amount: "3.05", Country: "DE", Name: "Shop", City: "Bonn",
		Additional: &merchant.AdditionalData{BillNumber: "B-77"}}, 4)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := medium.WritePNG(&buf, img); err != nil {
		t.Fatal(err)
	}
	o, err := terminal.ScanOrderPNG(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if o.Payee != "SHOP-7" || o.Amount != 305 || o.Currency != 978 || o.Reference != "B-77" {
		t.Fatalf("scanned %+v", o)
	}
	if _, err := terminal.ScanOrder("000201not a code"); err == nil {
		t.Fatal("a broken code scanned")
	}
}

// Online, each kind: the backend confirms in real time and the device's
// ledger is cleared; value is conserved and nothing is settled twice.
func TestPayOnlineEachKind(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	u := l.user(p)
	tm := l.terminal(procLink{d}, u)
	ctx := context.Background()
	for _, k := range []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse} {
		o := tm.Pay(ctx, terminal.Payment{Order: order(t, "12.50"), Kind: k, Network: terminal.OnlineOnly})
		mustDone(t, o)
		if !o.Online || o.Pending || o.Authorisation == nil || o.Left != 0 {
			t.Fatalf("%s: %+v", k, o)
		}
	}
	if got := l.issuerBalance(p); got != p.Balance-2*12_50 {
		t.Fatalf("issuer balance %d, want %d", got, p.Balance-2*12_50)
	}
	if n, b := counters(t, tm); n != 0 || b != p.Balance-12_50 {
		t.Fatalf("device ledger %d, balance %d", n, b)
	}
	a := l.audit()
	if a.RecordsSettled != 3 {
		t.Fatalf("records settled %d, want 3", a.RecordsSettled)
	}
	if got := u.Outcomes(); len(got) != 3 {
		t.Fatalf("the user was told %d outcomes, want 3", len(got))
	}
}

// Offline, then settled later; a second settlement finds nothing.
func TestPayOfflineThenSettle(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	tm := l.terminal(procLink{d}, l.user(p))
	ctx := context.Background()
	l.faults.Down.Store(true)
	for _, k := range []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse} {
		o := tm.Pay(ctx, terminal.Payment{Order: order(t, "5.00"), Kind: k})
		mustDone(t, o)
		if o.Online || !o.Pending {
			t.Fatalf("%s offline: %+v", k, o)
		}
	}
	mustNotDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "1.00"), Kind: spd.KindBalance, Network: terminal.OnlineOnly}), "cannot be reached")
	s := tm.Settle(ctx)
	mustNotDone(t, s, "stay on the device")
	if n, _ := counters(t, tm); n != 3 {
		t.Fatalf("ledger %d after a failed settlement, want 3", n)
	}
	l.faults.Down.Store(false)
	s = tm.Settle(ctx)
	mustDone(t, s)
	if s.Settled != 3 || s.Left != 0 {
		t.Fatalf("%s", s)
	}
	if got := l.issuerBalance(p); got != p.Balance-2*5_00 {
		t.Fatalf("issuer balance %d", got)
	}
	s = tm.Settle(ctx)
	mustDone(t, s)
	if s.Settled != 0 || s.AlreadySettled != 0 {
		t.Fatalf("second settlement: %s", s)
	}
	if a := l.audit(); a.RecordsSettled != 3 {
		t.Fatalf("records settled %d", a.RecordsSettled)
	}
}

// Phased: the service starts offline and finishes online.
func TestPhasedOfflineThenOnline(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	tm := l.terminal(procLink{d}, l.user(p))
	ctx := context.Background()
	l.faults.Down.Store(true)
	mustDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "7.00"), Kind: spd.KindBalance}))
	l.faults.Down.Store(false)
	o := tm.Pay(ctx, terminal.Payment{Order: order(t, "3.00"), Kind: spd.KindBalance})
	mustDone(t, o)
	if !o.Online {
		t.Fatalf("%s", o)
	}
	// The online payment's settlement call carried only its own record;
	// the offline one is still pending.
	if n, _ := counters(t, tm); n != 1 {
		t.Fatalf("ledger %d, want the offline record", n)
	}
	mustDone(t, tm.Settle(ctx))
	if got := l.issuerBalance(p); got != p.Balance-10_00 {
		t.Fatalf("issuer balance %d", got)
	}
	l.audit()
}

// Faults at each step of the online payment: unreachable, 503, lost
// answers and slow answers on the health check, the authorisation and the
// settlement. Every payment is done once and settled once.
func TestPayOnlineFaults(t *testing.T) {
	steps := []string{"/healthz", "/v1/authorisations", "/v1/settlements", "/v1/keys"}
	kinds := backendtest.Faults
	l := newLab(t)
	ctx := context.Background()
	for _, step := range steps {
		for _, f := range kinds {
			for _, times := range []int{1, 5} {
				t.Run(fmt.Sprintf("%s/%s/x%d", step, f, times), func(t *testing.T) {
					d, p := l.device(nil)
					tm := l.terminal(procLink{d}, l.user(p))
					for range times {
						l.faults.At(step, f)
					}
					o := tm.Pay(ctx, terminal.Payment{Order: order(t, "4.00"), Kind: spd.KindBalance})
					l.faults.Clear()
					mustDone(t, o)
					if _, b := counters(t, tm); b != p.Balance-4_00 {
						t.Fatalf("device balance %d after one payment", b)
					}
					mustDone(t, tm.Settle(ctx))
					if n, _ := counters(t, tm); n != 0 {
						t.Fatalf("ledger %d after settlement", n)
					}
					if got := l.issuerBalance(p); got != p.Balance-4_00 {
						t.Fatalf("issuer balance %d, want one payment of 4.00 (%s)", got, o)
					}
					l.audit()
				})
			}
		}
	}
}

// Faults on settlement itself: the answer lost after the commit; sent
// again, every record settles once.
func TestSettleFaults(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	for _, f := range backendtest.Faults {
		t.Run(f.String(), func(t *testing.T) {
			d, p := l.device(nil)
			tm := l.terminal(procLink{d}, l.user(p))
			l.faults.Down.Store(true)
			mustDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "2.00"), Kind: spd.KindBalance}))
			mustDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "3.00"), Kind: spd.KindAccount}))
			l.faults.Down.Store(false)
			l.faults.At("/v1/settlements", f, f, f)
			mustNotDone(t, tm.Settle(ctx), "")
			l.faults.Clear()
			s := tm.Settle(ctx)
			mustDone(t, s)
			if s.Settled+s.AlreadySettled != 2 || s.Left != 0 {
				t.Fatalf("%s", s)
			}
			if got := l.issuerBalance(p); got != p.Balance-5_00 {
				t.Fatalf("issuer balance %d", got)
			}
			l.audit()
		})
	}
}

// The terminal and the SPD restart between payment and settlement: the
// file-backed device keeps its ledger, a new terminal settles it.
func TestRestartBetweenPaymentAndSettlement(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "spd.state")
	st, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d, p := l.device(st)
	tm := l.terminal(procLink{d}, l.user(p))
	l.faults.Down.Store(true)
	mustDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "6.00"), Kind: spd.KindBalance}))
	l.faults.Down.Store(false)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := store.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	d2 := device.New(st2, device.Config{})
	tm2 := l.terminal(procLink{d2}, l.user(p))
	s := tm2.Settle(ctx)
	mustDone(t, s)
	if s.Settled != 1 || s.Left != 0 {
		t.Fatalf("%s", s)
	}
	if got := l.issuerBalance(p); got != p.Balance-6_00 {
		t.Fatalf("issuer balance %d", got)
	}
	l.audit()
}

// A token with domain controls, issued by the device, registered in the
// vault, shown, and paid at a merchant; the vault refuses a second use.
func TestTokenPaidAtMerchant(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	u := l.user(p)
	tm := l.terminal(procLink{d}, u)
	ctx := context.Background()
	o := tm.IssueToken(ctx, terminal.TokenOrder{Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 20_00, Channels: medium.ChannelInStore}})
	mustDone(t, o)
	codes := u.Codes()
	m, err := terminal.ReadMedium(codeText(t, codes[len(codes)-1]), &l.is.CA.PublicKey, l.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Info.Token, o.Token) || m.Info.Controls.MaxTransactions != 1 {
		t.Fatalf("scanned token %+v", m.Info)
	}
	pay := terminal.Payment{Order: order(t, "15.00"), Kind: spd.KindAccount, Token: m.Info.Token, Network: terminal.OnlineOnly}
	r := tm.Pay(ctx, pay)
	mustDone(t, r)
	if !r.Online || !bytes.Equal(r.Token, o.Token) {
		t.Fatalf("%+v", r)
	}
	mustNotDone(t, tm.Pay(ctx, pay), "vault")
	over := pay
	over.Order = order(t, "25.00")
	mustNotDone(t, tm.Pay(ctx, over), "")
	tok, err := l.admin.Token(ctx, strings.ToUpper(fmt.Sprintf("%X", o.Token)))
	if err != nil || tok.Uses != 1 {
		t.Fatalf("vault: %+v %v", tok, err)
	}
	l.audit()
}

// Offline transfer bound to the payee, imported once, settled on both
// sides; another device cannot import it.
func TestTransferOffline(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d1, p1 := l.device(nil)
	d2, p2 := l.device(nil)
	d3, p3 := l.device(nil)
	u1 := l.user(p1)
	payer := l.terminal(procLink{d1}, u1)
	payee := l.terminal(procLink{d2}, l.user(p2))
	thief := l.terminal(procLink{d3}, l.user(p3))
	l.faults.Down.Store(true)
	o := payer.SendTransfer(ctx, terminal.TransferOrder{Payee: p2.DeviceID, Amount: 15_00})
	mustDone(t, o)
	codes := u1.Codes()
	text := codeText(t, codes[len(codes)-1])
	mustNotDone(t, thief.ReceiveTransfer(ctx, text, terminal.Verification{}), "not this one")
	in := payee.ReceiveTransfer(ctx, text, terminal.Verification{})
	mustDone(t, in)
	mustNotDone(t, payee.ReceiveTransfer(ctx, text, terminal.Verification{}), "")
	if _, b := counters(t, payee); b != p2.Balance+15_00 {
		t.Fatalf("payee balance %d", b)
	}
	l.faults.Down.Store(false)
	mustDone(t, payee.Settle(ctx))
	mustDone(t, payer.Settle(ctx))
	if b1, b2 := l.issuerBalance(p1), l.issuerBalance(p2); b1 != p1.Balance-15_00 || b2 != p2.Balance+15_00 {
		t.Fatalf("issuer balances %d %d", b1, b2)
	}
	if a := l.audit(); a.InFlight != 0 {
		t.Fatalf("in flight %d", a.InFlight)
	}
	// The payer's ledger is clear, and its transfer closed.
	if n, _ := counters(t, payer); n != 0 {
		t.Fatalf("payer ledger %d", n)
	}
}

// An offline transfer nobody imported is reclaimed after it expires.
func TestReclaimExpiredTransfer(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d1, p1 := l.device(nil)
	_, p2 := l.device(nil)
	payer := l.terminal(procLink{d1}, l.user(p1))
	o := payer.SendTransfer(ctx, terminal.TransferOrder{Payee: p2.DeviceID, Amount: 9_00, Expiry: l.clock.Now().Add(time.Hour)})
	mustDone(t, o)
	mustNotDone(t, payer.ReclaimTransfer(ctx, o.Serial), "RECLAIM")
	l.clock.Advance(2 * time.Hour)
	r := payer.ReclaimTransfer(ctx, o.Serial)
	mustDone(t, r)
	if _, b := counters(t, payer); b != p1.Balance {
		t.Fatalf("payer balance %d after the reclaim", b)
	}
	mustNotDone(t, payer.ReclaimTransfer(ctx, o.Serial), "")
	s := payer.Settle(ctx)
	mustDone(t, s)
	if s.Left != 0 {
		t.Fatalf("%s", s)
	}
	if b := l.issuerBalance(p1); b != p1.Balance {
		t.Fatalf("issuer balance %d", b)
	}
	l.audit()
}

// Online transfers move value on both devices: the payer's debits, the
// payee's imports when claimed, the issuer follows; unclaimed and expired,
// the payer's device is credited back once; an ID sent again takes effect
// once.
func TestTransferOnline(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d1, p1 := l.device(nil)
	d2, p2 := l.device(nil)
	payer := l.terminal(procLink{d1}, l.user(p1))
	payee := l.terminal(procLink{d2}, l.user(p2))
	tr := terminal.OnlineTransfer{ID: "X-1", Payee: p2.DeviceID, Amount: 8_00, Expires: l.clock.Now().Add(time.Hour)}
	l.faults.At("/v1/transfers", backendtest.LostAnswer)
	mustDone(t, payer.SendOnline(ctx, tr))
	if _, b := counters(t, payer); b != p1.Balance-8_00 {
		t.Fatalf("payer device balance %d after the transfer", b)
	}
	if _, b := counters(t, payee); b != p2.Balance || l.issuerBalance(p2) != p2.Balance {
		t.Fatalf("payee credited before its device imported: device %d", b)
	}
	mustDone(t, payee.Claim(ctx, "X-1", terminal.Verification{}))
	if b := l.issuerBalance(p2); b != p2.Balance+8_00 {
		t.Fatalf("payee issuer balance %d", b)
	}
	if _, b := counters(t, payee); b != p2.Balance+8_00 {
		t.Fatalf("payee device balance %d after the claim", b)
	}
	tr2 := tr
	tr2.ID = "X-2"
	mustDone(t, payer.SendOnline(ctx, tr2))
	mustNotDone(t, payer.ReclaimOnline(ctx, "X-2", terminal.Verification{}), "")
	l.clock.Advance(2 * time.Hour)
	mustDone(t, payer.ReclaimOnline(ctx, "X-2", terminal.Verification{}))
	mustNotDone(t, payee.Claim(ctx, "X-2", terminal.Verification{}), "")
	if b := l.issuerBalance(p1); b != p1.Balance-8_00 {
		t.Fatalf("payer issuer balance %d", b)
	}
	if _, b := counters(t, payer); b != p1.Balance-8_00 {
		t.Fatalf("payer device balance %d after the reclaim", b)
	}
	// Without an ID the terminal names the transfer itself.
	o := payer.SendOnline(ctx, terminal.OnlineTransfer{Payee: p2.DeviceID, Amount: 1_00})
	mustDone(t, o)
	if o.Transfer == nil || !strings.HasPrefix(o.Transfer.TransferID, "T-") {
		t.Fatalf("transfer without an ID: %+v", o.Transfer)
	}
	l.faults.Down.Store(true)
	o = payer.SendOnline(ctx, terminal.OnlineTransfer{ID: "X-3", Payee: p2.DeviceID, Amount: 1_00})
	mustNotDone(t, o, "cannot be reached")
	l.audit()
}

// The amount is adjusted by the tier the backend pushes (C18, C14) and by
// the location the user gives.
func TestAdjustByTierAndLocation(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d, p := l.device(nil)
	u := l.user(p)
	tm := l.terminal(procLink{d}, u)
	tier := uint8(2)
	if _, err := l.admin.QueueParameter(ctx, spd.DeviceIDString(p.DeviceID), backend.ParameterUpdate{Tier: &tier}); err != nil {
		t.Fatal(err)
	}
	s := tm.Sync(ctx)
	mustDone(t, s)
	if s.Applied != 1 {
		t.Fatalf("%+v", s)
	}
	mustDone(t, tm.Sync(ctx))
	v := terminal.Verification{Location: true, RequiredTier: 2}
	o := tm.Pay(ctx, terminal.Payment{Order: order(t, "10.00"), Kind: spd.KindBalance, Verify: v})
	mustDone(t, o)
	if o.Amount != 8_00 {
		t.Fatalf("home, tier 2: amount %d, want 800", o.Amount)
	}
	u.Region = abroad
	o = tm.Pay(ctx, terminal.Payment{Order: order(t, "10.00"), Kind: spd.KindBalance, Verify: v})
	mustDone(t, o)
	if o.Amount != 8_40 {
		t.Fatalf("abroad, tier 2: amount %d, want 840", o.Amount)
	}
	u.Region = barred
	mustNotDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "10.00"), Kind: spd.KindBalance, Verify: v}), "location not allowed")
	mustNotDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "10.00"), Kind: spd.KindBalance, Verify: terminal.Verification{RequiredTier: 3}}), "tier")
	l.audit()
}

// Every verification method of C33, passing and failing.
func TestVerificationMethods(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	d, p := l.device(nil)
	other, _ := l.device(nil)
	cases := []struct {
		name  string
		v     terminal.Verification
		spoil func(u *terminal.ScriptedUser)
		fail  string
	}{
		{"pin", terminal.Verification{PIN: true}, func(u *terminal.ScriptedUser) { u.PINs = []string{"0000"} }, "PIN not verified"},
		{"biometric", terminal.Verification{Biometric: true}, func(u *terminal.ScriptedUser) { u.Sample = bytes.Repeat([]byte{200}, 16) }, "biometric not verified"},
		{"identity", terminal.Verification{Identity: true}, func(u *terminal.ScriptedUser) { u.Answers = map[string]string{"First pet?": "Tom"} }, "wrong answer"},
		{"sms", terminal.Verification{SMS: true}, func(u *terminal.ScriptedUser) {
			u.SMS = func(context.Context, backend.OTPChallenge) (string, error) { return "000000", nil }
		}, "SMS code not verified"},
		{"attribute", terminal.Verification{RequiredTier: 0}, nil, ""},
		{"location", terminal.Verification{Location: true}, func(u *terminal.ScriptedUser) { u.Region = 0 }, "location"},
		{"certificate", terminal.Verification{Certificate: true}, nil, ""},
		{"consent", terminal.Verification{Consent: true}, func(u *terminal.ScriptedUser) { u.Agree = false }, "did not agree"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := l.user(p)
			tm := l.terminal(procLink{d}, u)
			mustDone(t, tm.Verify(ctx, c.v))
			if c.spoil == nil {
				return
			}
			c.spoil(u)
			mustNotDone(t, tm.Verify(ctx, c.v), c.fail)
			// Restore the PIN tries spent.
			u2 := l.user(p)
			mustDone(t, l.terminal(procLink{d}, u2).Verify(ctx, terminal.Verification{PIN: true}))
		})
	}
	t.Run("attached", func(t *testing.T) {
		var sw swapLink
		sw.l = procLink{d}
		tm := l.terminal(&sw, l.user(p))
		mustDone(t, tm.Verify(ctx, terminal.Verification{}))
		sw.l = procLink{other}
		mustNotDone(t, tm.Verify(ctx, terminal.Verification{}), "not attached")
		mustNotDone(t, tm.Pay(ctx, terminal.Payment{Order: order(t, "1.00"), Kind: spd.KindBalance}), "not attached")
		sw.l = deadLink{}
		mustNotDone(t, tm.Verify(ctx, terminal.Verification{}), "not attached")
	})
	t.Run("attribute too low", func(t *testing.T) {
		tm := l.terminal(procLink{d}, l.user(p))
		mustNotDone(t, tm.Verify(ctx, terminal.Verification{RequiredTier: 1}), "tier")
	})
}

// swapLink is an SPD slot whose device can be swapped.
type swapLink struct{ l spd.Link }

func (s *swapLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return s.l.Exchange(ctx, cmd)
}

// deadLink is an empty slot.
type deadLink struct{}

func (deadLink) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return nil, fmt.Errorf("test link: no card")
}

// A stored-value medium shown for a merchant's scanner verifies with the
// issuer CA and carries the token, never the account.
func TestShowMedium(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	u := l.user(p)
	tm := l.terminal(procLink{d}, u)
	ctx := context.Background()
	mustDone(t, tm.ShowMedium(ctx, []byte("NONCE-1"), terminal.Verification{Biometric: true}))
	codes := u.Codes()
	text := codeText(t, codes[len(codes)-1])
	m, err := terminal.ReadMedium(text, &l.is.CA.PublicKey, l.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Balance != p.Balance || !bytes.Equal(m.Info.Token, p.AccountToken) || strings.Contains(text, string(p.Account)) {
		t.Fatalf("medium %+v", m.Info)
	}
	if _, err := terminal.ReadMedium(text, &l.is.CA.PublicKey, l.clock.Now().Add(time.Hour)); err == nil {
		t.Fatal("an expired medium was read")
	}
}

// Faults on the other online steps: the parameter sync, the SMS code and
// the claim of an online transfer. Each ends done once, or not done and
// said so; repeated, it completes once.
func TestOtherOnlineStepsFaults(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	for _, f := range backendtest.Faults {
		t.Run(f.String(), func(t *testing.T) {
			d, p := l.device(nil)
			d2, p2 := l.device(nil)
			u := l.user(p)
			tm := l.terminal(procLink{d}, u)
			payee := l.terminal(procLink{d2}, l.user(p2))
			id := spd.DeviceIDString(p.DeviceID)

			// Sync: a top-up applies once whatever the network does.
			if _, err := l.admin.QueueParameter(ctx, id, backend.ParameterUpdate{TopUp: 10_00}); err != nil {
				t.Fatal(err)
			}
			l.faults.At("/v1/devices/", f, f, f)
			first := tm.Sync(ctx)
			l.faults.Clear()
			if first.Status == terminal.NotDone && first.Reason == "" {
				t.Fatalf("%s", first)
			}
			mustDone(t, tm.Sync(ctx))
			if _, b := counters(t, tm); b != p.Balance+10_00 {
				t.Fatalf("balance %d after the top-up", b)
			}

			// SMS code: never verified by a fault.
			l.faults.At("/v1/otp", f, f, f)
			o := tm.Verify(ctx, terminal.Verification{SMS: true})
			l.faults.Clear()
			if o.Status == terminal.NotDone && !strings.Contains(o.Reason, "SMS") {
				t.Fatalf("%s", o)
			}
			mustDone(t, tm.Verify(ctx, terminal.Verification{SMS: true}))

			// Claim: the value moves once.
			tr := terminal.OnlineTransfer{ID: "C-" + f.String(), Payee: p2.DeviceID, Amount: 2_00, Expires: l.clock.Now().Add(time.Hour)}
			mustDone(t, tm.SendOnline(ctx, tr))
			before := l.issuerBalance(p2)
			l.faults.At("/v1/transfers/", f, f, f)
			c := payee.Claim(ctx, tr.ID, terminal.Verification{})
			l.faults.Clear()
			if c.Status == terminal.NotDone && !c.Retry {
				t.Fatalf("%s", c)
			}
			mustDone(t, payee.Claim(ctx, tr.ID, terminal.Verification{}))
			if got := l.issuerBalance(p2); got != before+2_00 {
				t.Fatalf("payee issuer balance %d, want %d", got, before+2_00)
			}
			l.audit()
		})
	}
}

// cuttableLink passes exchanges to a device until cut is set; from then on
// every exchange fails with cut.
type cuttableLink struct {
	spd.Link
	cut error
}

func (c *cuttableLink) Exchange(ctx context.Context, command []byte) ([]byte, error) {
	if c.cut != nil {
		return nil, c.cut
	}
	return c.Link.Exchange(ctx, command)
}

// A device that stops answering makes the terminal say ErrDetached, and
// the link's own error stays reachable: a caller can still tell a deadline
// from a removed card.
func TestDetachedKeepsTheLinkError(t *testing.T) {
	l := newLab(t)
	d, p := l.device(nil)
	cl := &cuttableLink{Link: procLink{d}}
	tm := l.terminal(cl, l.user(p))
	ctx := context.Background()
	cl.cut = fmt.Errorf("test link: %w", context.DeadlineExceeded)
	for _, c := range []struct {
		name string
		err  error
	}{{"Attached", tm.Attached(ctx)}, {"Attach", tm.Attach(ctx)}} {
		if !errors.Is(c.err, terminal.ErrDetached) || !errors.Is(c.err, context.DeadlineExceeded) {
			t.Errorf("%s on a link past its deadline = %v, want both terminal.ErrDetached and context.DeadlineExceeded", c.name, c.err)
		}
	}
}
