package scenarios

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// againstSession runs a short session on spec with a reference twin
// (DUTDriver.Against) and returns its first divergence, if any.
func againstSession(t *testing.T, spec string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dutDrv, err := NewDUTDriver([]string{spec}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dutDrv.Against = "ref"
	drv := dutDrv
	dev, err := drv.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := spd.NewClient(dev.Link)
	p, err := drv.Issuer().Personalise(ctx, c, TestProfile())
	if err != nil {
		t.Fatalf("%s: personalising against ref: %v", spec, err)
	}
	steps := []func() error{
		func() error { _, err := c.Pay(ctx, payment(spd.KindBalance, spd.ModeOffline, 12_34)); return err },
		func() error { _, err := c.GenerateMedium(ctx, spd.MediumRequest{Time: Clock}); return err },
		func() error {
			tok, err := c.GenerateToken(ctx, spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour),
				Controls: medium.TokenControls{MaxTransactions: 2, MaxAmount: 5_00, Channels: medium.ChannelInStore}})
			if err != nil {
				return err
			}
			r := payment(spd.KindAccount, spd.ModeOnline, 1_00)
			r.Token = tok.Info().Token
			_, err = c.Pay(ctx, r)
			return err
		},
		func() error { _, err := c.PendingRecords(ctx); return err },
		func() error { _, err := c.PendingRecords(ctx); return err },
		func() error { _, err := c.GetChallenge(ctx); return err },
		func() error { _, err := c.GetChallenge(ctx); return err },
		func() error { _, err := c.Certificate(ctx); return err },
		func() error { _, _ = c.GetData(ctx, 0xDF7F); return nil },
		func() error { _, err := c.Select(ctx); return err },
		func() error {
			_, _ = c.Transmit(ctx, spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)))
			return nil
		},
	}
	if err := c.VerifyPIN(ctx, p.PIN); err != nil {
		t.Fatal(err)
	}
	for _, step := range steps {
		if err := step(); err != nil && spec == "ref" {
			t.Fatalf("ref against ref: %v", err)
		}
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if ds := drv.Divergences(); len(ds) > 0 {
		return errors.New(spacedHex(ds[0].Command) + ": " + ds[0].Why)
	}
	return nil
}

// spacedHex writes hex as bytes separated by spaces, "80 60 01 01".
func spacedHex(h string) string {
	var b strings.Builder
	for i := 0; i+2 <= len(h); i += 2 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// TestAgainstRef checks that a run against the reference reports nothing
// for the reference itself and the first differing response for devices
// that differ from it.
func TestAgainstRef(t *testing.T) {
	if err := againstSession(t, "ref"); err != nil {
		t.Fatalf("the reference differs from itself: %v", err)
	}
	for mutant, want := range map[string]string{
		"pay-no-atc":               "80 60 01 01",
		"medium-expiry-3600":       "80 68",
		"token-guessable":          "",
		"getdata-unknown-6a80":     "00 CA DF 7F",
		"reselect-keeps-verified":  "80 60 01 00",
		"pending-counts-transfers": "",
		"challenge-repeats":        "00 84",
		"record-nonce-per-read":    "80 62",
		"intauth-no-id":            "",
		"token-amount-raw":         "",
	} {
		err := againstSession(t, "faulty:"+mutant)
		if want == "" {
			// Differences in the device's own values (the random part of
			// tokens, a signature over other bytes: SPEC.md 1.3) and ones
			// this session never provokes are not reported.
			if err != nil {
				t.Errorf("faulty:%s: %v", mutant, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("faulty:%s against ref: got %v, want the divergence at % s", mutant, err, want)
		}
	}
}
