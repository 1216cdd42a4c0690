package device

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
)

// dump is the whole committed content of a store.
func dump(st store.Store) map[string]string {
	out := map[string]string{}
	for _, k := range st.Keys("") {
		v, _ := st.Get(k)
		out[k] = string(v)
	}
	return out
}

func withoutTries(m map[string]string) map[string]string {
	out := maps.Clone(m)
	for k := range out {
		if strings.HasPrefix(k, "tries/") {
			delete(out, k)
		}
	}
	return out
}

// value is what the device holds for the outside world: the balance, plus
// what left it into the ledger (balance payments, transfers out), minus
// what came in through the ledger (imports, reclaims). Payments, transfers,
// imports and reclaims leave it unchanged; only top-ups and settlement
// (acknowledgement) change it.
func value(t testing.TB, st store.Store) int64 {
	b, ok := st.Get(keyCounters)
	if !ok {
		return 0
	}
	c, err := parseCounters(b)
	if err != nil {
		t.Fatal(err)
	}
	v := c.Balance
	for _, k := range st.Keys(prefixPend) {
		raw, _ := st.Get(k)
		r, err := parseRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch r.Kind {
		case spd.KindBalance, spd.KindTransferOut, spd.KindExchange:
			v += r.Amount
		case spd.KindTransferIn, spd.KindReclaim:
			v -= r.Amount
		}
	}
	return v
}

type tearCase struct {
	name string
	// setup brings a fresh device to the state before the command and
	// returns the command; it must be deterministic.
	setup func(t *testing.T) (*rig, apdu.Command)
	// conserving: the command must not change value().
	conserving bool
	// tries: the command writes a try counter before comparing, which a
	// tear may leave decremented.
	tries bool
}

func loggedIn(t *testing.T, id string) *rig {
	r := newRig(t, id)
	r.login(t)
	return r
}

func payCase(name string, req spd.PayRequest) tearCase {
	return tearCase{name: name, conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
		r := loggedIn(t, "TEAR0001")
		return r, spd.Pay(req)
	}}
}

func tearCases() []tearCase {
	pay := spd.PayRequest{Currency: 978, Time: t0.Add(time.Hour), Region: 276, Payee: []byte("SHOP")}
	balance, account, use := pay, pay, pay
	balance.Kind, balance.Mode, balance.Amount = spd.KindBalance, spd.ModeOffline, 1500
	account.Kind, account.Mode, account.Amount = spd.KindAccount, spd.ModeOnline, 2500
	use.Kind, use.Mode = spd.KindUse, spd.ModeOffline
	expiry := t0.Add(24 * time.Hour)
	return []tearCase{
		{name: "INITIALISE", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := newBlankRig(t, "TEAR0001")
			r.expect(t, spd.Select(), apdu.SWOK)
			return r, r.is.Initialise([]byte("TEAR0001"))
		}},
		{name: "PERSONALISE", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := newBlankRig(t, "TEAR0001")
			r.expect(t, spd.Select(), apdu.SWOK)
			pub, err := r.c.Initialise(context.Background(), &r.is.CA.PublicKey, []byte("TEAR0001"))
			if err != nil {
				t.Fatal(err)
			}
			p := testProfile("TEAR0001")
			p.DevicePublicKey = pub
			script, err := personalisationScript(r, p)
			if err != nil {
				t.Fatal(err)
			}
			return r, script[0]
		}},
		{name: "ACTIVATE", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := newBlankRig(t, "TEAR0001")
			r.expect(t, spd.Select(), apdu.SWOK)
			pub, err := r.c.Initialise(context.Background(), &r.is.CA.PublicKey, []byte("TEAR0001"))
			if err != nil {
				t.Fatal(err)
			}
			p := testProfile("TEAR0001")
			p.DevicePublicKey = pub
			script, err := personalisationScript(r, p)
			if err != nil {
				t.Fatal(err)
			}
			r.expect(t, script[0], apdu.SWOK)
			r.expect(t, script[1], apdu.SWOK)
			return r, script[2]
		}},
		payCase("PAY balance", balance),
		payCase("PAY account", account),
		payCase("PAY use", use),
		{name: "PAY under a token", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			res, err := r.c.GenerateToken(context.Background(), spd.TokenRequest{Time: t0, Expiry: expiry,
				Controls: mediumControls(3, 5000)})
			if err != nil {
				t.Fatal(err)
			}
			req := balance
			req.Token = res.Info().Token
			return r, spd.Pay(req)
		}},
		exchangeTearCase("EXCHANGE into uses", spd.ExchangeUses, 0, 1, 300),
		exchangeTearCase("EXCHANGE into currency", spd.ExchangeCurrency, 840, 10_834, 10_000),
		{name: "GENERATE MEDIUM", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			return loggedIn(t, "TEAR0001"), spd.GenerateMedium(spd.MediumRequest{Time: t0, PayeeNonce: []byte("N1")})
		}},
		{name: "GENERATE TOKEN", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			return loggedIn(t, "TEAR0001"), spd.GenerateToken(spd.TokenRequest{Time: t0, Expiry: expiry, Controls: mediumControls(2, 100)})
		}},
		{name: "TRANSFER OUT", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			return loggedIn(t, "TEAR0001"), spd.TransferOut(spd.TransferRequest{Amount: 700, Currency: 978,
				Payee: []byte("TEAR0002"), Time: t0, Expiry: expiry})
		}},
		{name: "TRANSFER IN", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			payer := loggedIn(t, "TEAR0002")
			res, err := payer.c.TransferOut(context.Background(), spd.TransferRequest{Amount: 700, Currency: 978,
				Payee: []byte("TEAR0001"), Time: t0, Expiry: expiry})
			if err != nil {
				t.Fatal(err)
			}
			return loggedIn(t, "TEAR0001"), spd.TransferIn(res.Envelope, t0.Add(time.Hour))
		}},
		{name: "RECLAIM", conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			res, err := r.c.TransferOut(context.Background(), spd.TransferRequest{Amount: 700, Currency: 978,
				Payee: []byte("TEAR0002"), Time: t0, Expiry: expiry})
			if err != nil {
				t.Fatal(err)
			}
			return r, r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Reclaim(k, id, spd.SerialAt{Serial: res.Info().Serial, Time: expiry.Add(time.Hour)})
			})
		}},
		{name: "ACKNOWLEDGE", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			for i := 0; i < 3; i++ {
				r.expect(t, spd.Pay(balance), apdu.SWOK)
			}
			return r, r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: t0.Add(2 * time.Hour), ATCs: []uint32{1, 3}})
			})
		}},
		{name: "UPDATE PARAMETERS", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			tier := uint8(3)
			return r, r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 1, TopUp: 5000, AddUses: 2, Tier: &tier,
					Limits: &spd.Limits{MaxPayment: 1, MaxPending: 2, MaxOfflineCount: 3, MaxOfflineAge: time.Hour}})
			})
		}},
		{name: "VERIFY right", tries: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			return r, spd.VerifyPIN(testPIN)
		}},
		{name: "VERIFY wrong", tries: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			return r, spd.VerifyPIN("0000")
		}},
		{name: "VERIFY biometric", tries: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			return r, spd.VerifyBiometric(bioTemplate)
		}},
		{name: "CHANGE REFERENCE DATA", tries: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			return loggedIn(t, "TEAR0001"), spd.ChangePIN(testPIN, "5678")
		}},
		{name: "RESET RETRY COUNTER PUK", tries: true, setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			for i := 0; i < 3; i++ {
				r.do(t, spd.VerifyPIN("0000"))
			}
			return r, spd.UnblockPIN(testPUK, "4321")
		}},
		{name: "RESET RETRY COUNTER host", setup: func(t *testing.T) (*rig, apdu.Command) {
			r := loggedIn(t, "TEAR0001")
			for i := 0; i < 3; i++ {
				r.do(t, spd.VerifyPIN("0000"))
			}
			return r, r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.UnblockByHost(k, id, spd.Unblock{Counter: 7, NewPIN: "4321"})
			})
		}},
	}
}

// TestTearEveryWrite cuts power at every persistent write of every
// state-changing command (TearAt(1..N) until the command completes), then
// powers the device up and checks that its memory is the old state or the
// new one, that value is conserved, and that the device answers from what
// its memory holds.
func TestTearEveryWrite(t *testing.T) {
	for _, tc := range tearCases() {
		t.Run(tc.name, func(t *testing.T) {
			// The reference run, without a tear.
			ref, cmd := tc.setup(t)
			raw := cmd.MustBytes()
			before := dump(ref.st)
			vBefore := value(t, ref.st)
			resp := ref.dev.Process(raw)
			if len(resp) != 2 && (len(resp) < 2 || resp[len(resp)-2] != 0x90 && resp[len(resp)-2] != 0x61) {
				t.Fatalf("reference run answered %X", resp)
			}
			if sw := apdu.SW(uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1])); sw != apdu.SWOK && sw.SW1() != 0x61 && !tc.tries {
				t.Fatalf("reference run answered %s", sw)
			}
			after := dump(ref.st)
			if maps.Equal(before, after) && !tc.tries {
				t.Fatalf("the command changed nothing")
			}
			if tc.conserving && value(t, ref.st) != vBefore {
				t.Fatalf("value %d -> %d", vBefore, value(t, ref.st))
			}
			tears := 0
			for n := 1; n < 100; n++ {
				r, cmd := tc.setup(t)
				if got := dump(r.st); !maps.Equal(got, before) {
					t.Fatalf("setup is not deterministic")
				}
				r.dev.TearAt(n)
				resp := r.dev.Process(cmd.MustBytes())
				r.dev.TearAt(0)
				if resp != nil {
					if got := dump(r.st); !maps.Equal(got, after) {
						t.Fatalf("untorn run at n=%d ended in another state", n)
					}
					break
				}
				tears++
				if again := r.dev.Process(spd.Select().MustBytes()); again != nil {
					t.Fatalf("torn device answered %X before power-on", again)
				}
				r.dev.PowerOff()
				r.dev.PowerOn()
				got := dump(r.st)
				state := "old"
				switch {
				case maps.Equal(got, before):
				case maps.Equal(got, after):
					state = "new"
				case tc.tries && maps.Equal(withoutTries(got), withoutTries(before)):
					state = "old with a spent try"
					if err := triesNotAbove(before, got); err != nil {
						t.Fatalf("tear at write %d: %v", n, err)
					}
				case tc.tries && maps.Equal(withoutTries(got), withoutTries(after)):
					state = "new with a spent try"
					if err := triesNotAbove(after, got); err != nil {
						t.Fatalf("tear at write %d: %v", n, err)
					}
				default:
					t.Fatalf("tear at write %d: memory is neither old nor new:\nold %q\nnew %q\ngot %q", n, before, after, got)
				}
				if tc.conserving && value(t, r.st) != vBefore {
					t.Fatalf("tear at write %d: value %d, want %d", n, value(t, r.st), vBefore)
				}
				// The device answers from its memory after power-on.
				if tc.name != "INITIALISE" && tc.name != "PERSONALISE" {
					r.expect(t, spd.Select(), apdu.SWOK)
					c, _ := parseCounters([]byte(got[keyCounters]))
					if s := r.snap(t); s.Balance != c.Balance || s.ATC != c.ATC || s.Uses != c.Uses {
						t.Fatalf("tear at write %d: device shows %+v, memory holds %+v", n, s, c)
					}
				}
				t.Logf("tear at write %d: %s", n, state)
			}
			if tears == 0 {
				t.Fatalf("no write was torn")
			}
		})
	}
}

// triesNotAbove checks that every try counter in got is at most the one in
// ref: a tear may spend a try, never give one back.
func triesNotAbove(ref, got map[string]string) error {
	for k, v := range got {
		if strings.HasPrefix(k, "tries/") && len(v) == 1 && len(ref[k]) == 1 && v[0] > ref[k][0] {
			return fmt.Errorf("%s rose from %d to %d", k, ref[k][0], v[0])
		}
	}
	return nil
}

func personalisationScript(r *rig, p spd.Profile) ([]apdu.Command, error) {
	id := string(p.DeviceID)
	if s, ok := scripts[id]; ok {
		return s, nil
	}
	s, err := r.is.PersonalisationScript(p)
	if err == nil {
		scripts[id] = s
	}
	return s, err
}

func exchangeTearCase(name string, k spd.ExchangeKind, target uint16, n, d uint32) tearCase {
	return tearCase{name: name, conserving: true, setup: func(t *testing.T) (*rig, apdu.Command) {
		r := loggedIn(t, "TEAR0001")
		at := t0.Add(time.Hour)
		atc, err := r.c.ATC(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		rate, err := spd.SealRate(r.is.HostKey(), r.profile.DeviceID, spd.Rate{Kind: k, ATC: atc + 1, Currency: 978,
			TargetCurrency: target, Numerator: n, Denominator: d, Expiry: at.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return r, spd.Exchange(spd.ExchangeRequest{Kind: k, Amount: 1000, Currency: 978, Time: at, Rate: rate, Nonce: []byte("TEARNONCE")})
	}}
}
