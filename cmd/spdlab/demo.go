package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/scenarios"
)

// demo is one run of the demonstration: a device reached over a link, the
// issuer that personalises it, and where its media go.
type demo struct {
	out    io.Writer
	dir    string // PNGs of every medium shown; "" for none
	now    time.Time
	issuer *issuer.Issuer
	step   int
	shown  []string // media shown since the last step, printed under it
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "%2d. %s\n", d.step, fmt.Sprintf(format, args...))
	for _, s := range d.shown {
		d.detail("%s", s)
	}
	d.shown = d.shown[:0]
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "      %s\n", fmt.Sprintf(format, args...))
}

// show writes text as a PNG in d.dir and reads it back from the file, as a
// scanner would, returning the text read.
func (d *demo) show(name, text string, f medium.Format) (string, error) {
	if d.dir == "" {
		img, err := medium.Render(text, f, 4)
		if err != nil {
			return "", err
		}
		got, _, err := medium.DecodeImage(img)
		return got, err
	}
	b, err := medium.RenderPNG(text, f, 4)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.dir, name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	r, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	got, _, err := medium.DecodePNG(r)
	if err != nil {
		return "", err
	}
	d.shown = append(d.shown, fmt.Sprintf("shown as %s: %s", f, path))
	return got, nil
}

func money(minor int64) string { return fmt.Sprintf("EUR %d.%02d", minor/100, minor%100) }

// tickingClock starts at t and advances a millisecond on every reading:
// the trace clock of a seeded run.
func tickingClock(t time.Time) func() time.Time {
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func runDemo(ctx context.Context, e *env, args []string) (err error) {
	flags := newFlags(e, "demo", "[--dut DUT] [--out DIR] [--backend URL [--auth-token-file FILE]] [--trace FILE] [--seed N]")
	dutSpec := dutFlag(flags, "device under test (ref, usb-emu, serial-emu, sd-emu, pcsc-emu, pcsc[:READER], serial:PATH, usb:VID:PID, sd:DIR)")
	outDir := flags.String("out", "", "write every coded medium shown as a PNG in this directory")
	tracePath := flags.String("trace", "", "record every APDU exchange as pcapng (GSMTAP) in this file; replay it with --dut replay:FILE")
	seed := flags.String("seed", "", "make the run repeatable: a fixed clock, and an emulated device's keys and signatures derived from this seed (same seed, byte-identical trace)")
	backendURL := flags.String("backend", "", "run the online, offline and settlement flows through the terminal against this backend (spdlab backend)")
	authToken, authFile := credentialFlags(flags)
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
	}
	opt := dut.Options{}
	now := time.Now().UTC().Truncate(time.Second)
	if *seed != "" {
		now = scenarios.Clock
		opt.Device.Seed = []byte("spdlab demo seed " + *seed)
		opt.TraceClock = tickingClock(now)
		if !dut.Emulated(*dutSpec) && !strings.HasPrefix(*dutSpec, "replay:") {
			fmt.Fprintf(e.stdout, "seed %s fixes the clock; %s draws its own keys and signatures, so its answers still differ on every run\n", *seed, *dutSpec)
		}
	}
	if *tracePath != "" {
		tf, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer tf.Close()
		opt.Trace = tf
	}
	d := &demo{out: e.stdout, dir: *outDir, now: now, issuer: scenarios.TestIssuer()}
	payer, err := dut.Open(ctx, *dutSpec, opt)
	if err != nil {
		return err
	}
	// Closing a replayed trace reports the records the run left unused.
	defer func() {
		if cerr := payer.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", payer.Link, cerr)
		}
	}()
	if *backendURL != "" {
		credential, err := clientCredential(*authToken, *authFile)
		if err != nil {
			return err
		}
		return demoWithBackend(ctx, e.stdout, *outDir, payer, *backendURL, credential)
	}
	if err := d.run(ctx, payer); err != nil {
		return err
	}
	if *tracePath != "" {
		fmt.Fprintf(e.stdout, "APDU trace: %s (read it with: tshark -r %s -V)\n", *tracePath, *tracePath)
	}
	return nil
}

func (d *demo) personalise(ctx context.Context, c *spd.Client, p spd.Profile) (spd.Profile, error) {
	sel, err := c.Select(ctx)
	if err != nil {
		return p, err
	}
	if sel.State != spd.StateBlank {
		return p, fmt.Errorf("the device is %s; the demo personalises a blank device", sel.State)
	}
	return d.issuer.Personalise(ctx, c, p)
}

func (d *demo) run(ctx context.Context, payer *dut.DUT) error {
	c := spd.NewClient(payer.Link)
	fmt.Fprintf(d.out, "spdlab demo on %s\n\n", payer.Link)

	p := scenarios.TestProfile()
	p.Time = d.now
	// Every demo personalises the same device ID, so that its commands
	// are the same from run to run and a trace of one replays another.
	p.DeviceID = []byte{0x5D, 0x1A, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x01}
	copy(p.AccountToken[len(p.AccountToken)-len(p.DeviceID):], p.DeviceID)
	p, err := d.personalise(ctx, c, p)
	if err != nil {
		return fmt.Errorf("personalising: %w", err)
	}
	d.say("Personalised device %s by %q: balance %s, %d uses, account kept inside, token %X",
		spd.DeviceIDString(p.DeviceID), "spdlab test issuer", money(p.Balance), p.Uses, p.AccountToken)
	lim := p.Limits
	d.detail("offline limits: %s a payment, %s pending, %d payments, %s since the last sync",
		money(lim.MaxPayment), money(lim.MaxPending), lim.MaxOfflineCount, lim.MaxOfflineAge)
	if _, err := c.Select(ctx); err != nil {
		return err
	}
	if err := c.VerifyPIN(ctx, p.PIN); err != nil {
		return fmt.Errorf("VERIFY PIN: %w", err)
	}
	d.say("Cardholder verified by PIN (C32, C33)")

	// The merchant shows an order code; the terminal scans it (C5, C48).
	order := merchant.Order{
		PayloadFormat: "01", Initiation: merchant.Dynamic,
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "MERCHANT-0042"}},
		Category: "5812", Currency: "978", Amount: "12.50", Country: "DE", Name: "Cafe Lab", City: "Berlin",
		Additional: &merchant.AdditionalData{BillNumber: "ORDER-1001", TerminalLabel: "T1"},
	}
	code, err := merchant.Encode(order)
	if err != nil {
		return err
	}
	scanned, err := d.show("01-merchant-order", code, medium.QR)
	if err != nil {
		return err
	}
	got, err := merchant.Decode(scanned)
	if err != nil {
		return err
	}
	payee, _ := got.Payee()
	amount, err := merchant.ParseAmount(got.Amount, 2)
	if err != nil {
		return err
	}
	d.say("Scanned the merchant's order code: %s from %s (%s), payee %s, bill %s",
		money(amount), got.Name, got.City, payee, got.Additional.BillNumber)

	pay := func(kind spd.PaymentKind, mode spd.Mode, amount int64, name string) (spd.Result, error) {
		r := spd.PayRequest{Kind: kind, Mode: mode, Amount: amount, Currency: 978, Time: d.now,
			Region: scenarios.Home, Payee: []byte(payee), PayeeNonce: []byte(got.Additional.BillNumber)}
		res, err := c.Pay(ctx, r)
		if err != nil && !errors.Is(err, spd.ErrDeclined) {
			return res, fmt.Errorf("PAY %s: %w", kind, err)
		}
		if err := res.Verify(p.DevicePublicKey); err != nil {
			return res, err
		}
		if _, err := d.show(name, medium.Text(res.Envelope), medium.QR); err != nil {
			return res, err
		}
		return res, nil
	}
	res, err := pay(spd.KindBalance, spd.ModeOnline, amount, "02-result-balance")
	if err != nil {
		return err
	}
	d.say("Paid %s from the stored balance (C2): %s, balance now %s, ATC %d, result signed by the device (C29-C31)",
		money(res.Info().Amount), verdict(res), money(res.Info().Balance), res.Info().ATC)
	if res, err = pay(spd.KindAccount, spd.ModeOnline, 40_00, "03-result-account"); err != nil {
		return err
	}
	d.say("Paid %s from the designated account under token %X (C2, C24): %s, recorded for the backend to settle",
		money(res.Info().Amount), res.Info().Token, verdict(res))
	if res, err = pay(spd.KindUse, spd.ModeOnline, 0, "04-result-use"); err != nil {
		return err
	}
	d.say("Wrote off one use (C2): %s, %d uses left", verdict(res), res.Info().Uses)

	d.say("The network goes down: paying offline within the risk limits (C4, C7)")
	for i, amt := range []int64{5_00, 7_50, 9_00, 12_00} {
		res, err := pay(spd.KindBalance, spd.ModeOffline, amt, fmt.Sprintf("05-result-offline-%d", i+1))
		if err != nil {
			return err
		}
		line := fmt.Sprintf("offline %s: %s", money(amt), verdict(res))
		if !res.Success() {
			line += " (" + res.Info().Reason + ")"
		}
		d.detail("%s", line)
		for _, s := range d.shown {
			d.detail("  %s", s)
		}
		d.shown = d.shown[:0]
	}
	recs, err := c.PendingRecords(ctx)
	if err != nil {
		return err
	}
	pending, err := c.Pending(ctx)
	if err != nil {
		return err
	}
	d.say("Unsettled ledger: %d signed records, %s in all", len(recs), money(pending))
	var atcs []uint32
	for _, r := range recs {
		if err := r.Verify(p.DevicePublicKey); err != nil {
			return fmt.Errorf("pending record ATC %d: %w", r.ATC, err)
		}
		d.detail("ATC %3d  %-18s %-8s %s", r.ATC, r.Kind, r.Mode, money(r.Amount))
		atcs = append(atcs, r.ATC)
	}

	sv, err := c.GenerateMedium(ctx, spd.MediumRequest{Time: d.now, PayeeNonce: []byte("NONCE-7731")})
	if err != nil {
		return err
	}
	if _, err := d.show("06-stored-value", medium.Text(sv.Envelope), medium.QR); err != nil {
		return err
	}
	if _, err := d.show("06-stored-value-datamatrix", medium.Text(sv.Envelope), medium.DataMatrix); err != nil {
		return err
	}
	if _, err := medium.VerifyCertificate(sv.Medium, &d.issuer.CA.PublicKey); err != nil {
		return err
	}
	d.say("Showed a stored-value medium for a merchant's scanner (C8, C9): balance %s, %d uses, token, no account; signature and certificate verify",
		money(sv.Info().Balance), sv.Info().Uses)

	codeATC, err := d.presentAndStore(ctx, c, p, payee, code)
	if err != nil {
		return err
	}

	tok, err := c.GenerateToken(ctx, spd.TokenRequest{Time: d.now, Expiry: d.now.Add(time.Hour),
		Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 20_00, Channels: medium.ChannelInStore}})
	if err != nil {
		return err
	}
	if _, err := d.show("10-token", medium.Text(tok.Envelope), medium.QR); err != nil {
		return err
	}
	d.say("Generated a one-time payment token %X: 1 payment, at most %s, in store, for an hour (C20, C22)",
		tok.Info().Token, money(tok.Info().Controls.MaxAmount))

	// Exchange: the issuer's host signs the rate of the device's next ATC
	// (POST /v1/rates quotes the same), the device checks it and exchanges.
	atc, err := c.ATC(ctx)
	if err != nil {
		return err
	}
	rate, err := spd.SealRate(d.issuer.HostKey(), p.DeviceID, spd.Rate{Kind: spd.ExchangeUses, ATC: atc + 1, Currency: p.Currency,
		Numerator: 1, Denominator: 2_50, Expiry: d.now.Add(2 * time.Minute)})
	if err != nil {
		return err
	}
	x, err := c.Exchange(ctx, spd.ExchangeRequest{Kind: spd.ExchangeUses, Amount: 10_00, Currency: p.Currency, Time: d.now,
		Rate: rate, Nonce: []byte("DEMO-EXCHANGE-1")})
	if err != nil {
		return fmt.Errorf("EXCHANGE: %w", err)
	}
	if err := x.Verify(p.DevicePublicKey); err != nil {
		return err
	}
	d.say("Exchanged %s of stored value into %d uses at the issuer's signed rate of %s a use (C13): balance %s, %d uses; signed and recorded for settlement",
		money(x.Record.Amount), x.Record.Target, money(2_50), money(x.Result.Info().Balance), x.Result.Info().Uses)
	atcs = append(atcs, x.Record.ATC)

	// Settlement: the issuer's host acknowledges the records it settled:
	// the terminal's, and the payment code's, which the merchant's lane
	// handed in (C46: the ledger keeps a record until it is settled).
	ack, err := spd.Acknowledge(d.issuer.HostKey(), p.DeviceID, spd.Acknowledgement{SyncTime: d.now, ATCs: append(atcs, codeATC)})
	if err != nil {
		return err
	}
	if err := c.Send(ctx, ack); err != nil {
		return fmt.Errorf("ACKNOWLEDGE: %w", err)
	}
	left, err := c.PendingCount(ctx)
	if err != nil {
		return err
	}
	bal, err := c.Balance(ctx)
	if err != nil {
		return err
	}
	d.say("Back online: the host settled the terminal's %d records and acknowledged them with the payment code's (ATC %d), which the merchant's lane settled; %d left pending, balance %s",
		len(atcs), codeATC, left, money(bal))
	fmt.Fprintln(d.out, "\ndone")
	return nil
}

func verdict(r spd.Result) string {
	if r.Success() {
		return "success"
	}
	return "declined"
}
