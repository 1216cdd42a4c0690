package device

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

func activeRig(t *testing.T, id string) *rig {
	t.Helper()
	r := newRig(t, id)
	r.login(t)
	if s, err := r.c.State(context.Background()); err != nil || s != spd.StateActive {
		r.expect(t, spd.Activate(), apdu.SWOK)
	}
	return r
}

func TestPresentCode(t *testing.T) {
	r := activeRig(t, "PRSNT001")
	ctx := context.Background()
	before := r.snap(t)
	req := spd.PresentRequest{Kind: spd.KindBalance, Amount: 1500, Currency: 978, Time: t0.Add(time.Hour),
		Payee: []byte("MERCHANT-0042"), Challenge: []byte("CH-7F3A"), Region: 276}
	code, err := r.c.PresentCode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := code.Verify(r.pub); err != nil {
		t.Fatal(err)
	}
	in := code.Result.Info()
	after := r.snap(t)
	// Tier 1 takes 10%: 1350.
	if in.Amount != 1350 || after.Balance != before.Balance-1350 || after.ATC != before.ATC+1 || after.Ledger != before.Ledger+1 {
		t.Fatalf("code %+v, before %+v, after %+v", in, before, after)
	}
	if !bytes.Equal(in.PayeeNonce, req.Challenge) || !in.Expiry.Equal(req.Time.Add(spd.DefaultCodeLife)) || code.Record.Mode != spd.ModeOffline {
		t.Fatalf("challenge %q expiry %s mode %v", in.PayeeNonce, in.Expiry, code.Record.Mode)
	}
	stored, err := r.c.ReadPending(ctx, after.Ledger-1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Body(), code.Record.Body()) {
		t.Fatal("the code's record is not the ledger's")
	}
	back, err := spd.ParsePaymentCodeText(code.Text())
	if err != nil || !bytes.Equal(back.Marshal(), code.Marshal()) {
		t.Fatalf("text form: %v", err)
	}

	// A life beyond 300 s, P2 other than 00, no verification.
	long := req
	long.Expiry = req.Time.Add(spd.MaxCodeLife + time.Second)
	r.expect(t, spd.PresentCode(long), apdu.SWWrongData)
	bad := spd.PresentCode(req)
	bad.P2 = 1
	r.expect(t, bad, apdu.SWIncorrectP1P2)
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.PresentCode(req), apdu.SWSecurityNotSatisfied)

	// A decline answers its signed result alone and changes nothing.
	r.expect(t, spd.VerifyPIN(testPIN), apdu.SWOK)
	over := req
	over.Amount = 60_000
	mid := r.snap(t)
	code, err = r.c.PresentCode(ctx, over)
	if !errors.Is(err, spd.ErrDeclined) || code.Record != nil || code.Result.Info().Reason != ReasonOverPaymentLimit {
		t.Fatalf("over the limit: %v %+v", err, code)
	}
	if r.snap(t) != mid {
		t.Fatal("a declined code changed the device")
	}
}

func TestPresentCodeMutants(t *testing.T) {
	for _, m := range []string{"code-no-challenge", "code-life-unbounded", "code-record-unsigned", "code-before-commit"} {
		t.Run(m, func(t *testing.T) {
			r := activeRig(t, "PRSNT002")
			r.dev.cfg.Mutant = m
			req := spd.PresentRequest{Kind: spd.KindBalance, Amount: 1000, Currency: 978, Time: t0.Add(time.Hour),
				Challenge: []byte("CH"), Region: 276, Expiry: t0.Add(time.Hour + spd.MaxCodeLife + time.Minute)}
			before := r.snap(t)
			resp := r.do(t, spd.PresentCode(req))
			if m == "code-life-unbounded" {
				if resp.SW != apdu.SWOK {
					t.Fatalf("mutant refused: %s", resp.SW)
				}
				return
			}
			req.Expiry = time.Time{}
			code, err := r.c.PresentCode(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			broken := code.Verify(r.pub) != nil || code.Result.Info().PayeeNonce == nil || r.snap(t).ATC == before.ATC
			if !broken {
				t.Fatal("the mutant made a conforming code")
			}
		})
	}
}
