package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/scenarios"
)

// merchantScan charges a payment code a consumer's device presents
// (SPEC.md 4.9, SPD-PRC-3): on-line through the backend when --backend is
// given, else it only checks the code as an off-line lane would.
func merchantScan(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "merchant scan", "FILE.png|TEXT --payee ACCOUNT [--challenge TEXT] [--ca FILE] [--backend URL [--auth-token-file FILE]]\n\n"+
		"Checks a device's payment code (SPEC.md 4.9): the certificate against the issuer CA, both signatures,\n"+
		"the payee, the challenge the lane showed and the code's life; with --backend it charges the code once\n"+
		"(a code the backend has seen is refused as replayed). Prints the charge as JSON.")
	payee := flags.String("payee", "", "the merchant's payee account (required)")
	challenge := flags.String("challenge", "", "the challenge the lane showed the consumer (none: a time-based code)")
	caPath := flags.String("ca", "", "issuer CA certificate or public key (PEM); default: the lab's test issuer")
	backendURL := flags.String("backend", "", "charge on-line through this backend (spdlab backend)")
	authToken, authFile := credentialFlags(flags)
	rest, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || *payee == "" {
		flags.Usage()
		return errUsage
	}
	text, _, err := readCode(rest[0])
	if err != nil {
		return err
	}
	cfg := terminal.MerchantConfig{Payee: *payee, IssuerCA: &scenarios.TestIssuer().CA.PublicKey, Name: "CLI"}
	if *caPath != "" {
		if cfg.IssuerCA, err = readPublicKey(*caPath); err != nil {
			return err
		}
	}
	if *backendURL != "" {
		credential, err := clientCredential(*authToken, *authFile)
		if err != nil {
			return err
		}
		if cfg.Backend, err = backendClient(*backendURL, nil, credential); err != nil {
			return err
		}
	}
	lane, err := terminal.NewMerchant(cfg)
	if err != nil {
		return err
	}
	var ch []byte
	if *challenge != "" {
		ch = []byte(*challenge)
	}
	type charge struct {
		Device   string    `json:"device"`
		ATC      uint32    `json:"atc"`
		Amount   int64     `json:"amount"`
		Currency uint16    `json:"currency"`
		Charged  string    `json:"charged"`
		Time     time.Time `json:"time"`
	}
	c, err := lane.Scan(ctx, text, ch)
	if err != nil {
		if errors.Is(err, terminal.ErrCodeReplayed) {
			return fmt.Errorf("merchant: refused: %w", err)
		}
		return err
	}
	out := charge{Device: c.DeviceID, ATC: c.ATC, Amount: c.Amount, Currency: c.Currency, Charged: "online", Time: time.Now().UTC().Truncate(time.Second)}
	if !c.Online {
		out.Charged = "checked off-line: hand its record to the backend in a settlement batch"
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// presentAndStore is the demo's passive direction and stored media: the
// device presents a payment code bound to the merchant's challenge, an
// off-line merchant lane reads it from its image, checks it and keeps it
// for settlement, and refuses it scanned again (C8, C9, C50); then the
// issuer stores the merchant's order code on the device, which lists it
// and shows it (C10, C38). It returns the code's ATC, which the lane's
// settlement settled at the issuer.
func (d *demo) presentAndStore(ctx context.Context, c *spd.Client, p spd.Profile, payee, orderCode string) (uint32, error) {
	// The lane's display shows a challenge; the demo's is fixed so that
	// a recorded demo trace replays (a lane draws one with Challenge).
	challenge := []byte("7F3A90C1")
	code, err := c.PresentCode(ctx, spd.PresentRequest{Kind: spd.KindBalance, Amount: 3_20, Currency: p.Currency, Time: d.now,
		Region: scenarios.Home, Payee: []byte(payee), Challenge: challenge})
	if err != nil {
		return 0, fmt.Errorf("PRESENT CODE: %w", err)
	}
	// The merchant scans at once: the lane's clock is the moment the
	// code was made (a replayed trace carries the recorded run's times).
	issued := code.Result.Info().Issued
	lane, err := terminal.NewMerchant(terminal.MerchantConfig{Payee: payee, IssuerCA: &d.issuer.CA.PublicKey,
		Clock: func() time.Time { return issued }, Name: "LANE1"})
	if err != nil {
		return 0, err
	}
	read, err := d.show("08-payment-code", code.Text(), medium.QR)
	if err != nil {
		return 0, err
	}
	ch, err := lane.Scan(ctx, read, challenge)
	if err != nil {
		return 0, err
	}
	in := code.Result.Info()
	d.say("Presented a payment code for %s to the merchant's scanner (C8, C9, C50): challenge %s, ATC %d, valid to %s",
		money(ch.Amount), challenge, ch.ATC, in.Expiry.Format(time.TimeOnly))
	d.detail("the off-line lane checked certificate, both signatures, payee, challenge and life, and keeps the record for settlement")
	if _, err := lane.Scan(ctx, read, challenge); errors.Is(err, terminal.ErrCodeReplayed) {
		d.detail("scanned again (a photographed copy): refused, %v", err)
	} else {
		return 0, fmt.Errorf("a replayed code was not refused: %v", err)
	}
	credited, err := d.settleLane(ctx, lane, p, payee, issued)
	if err != nil {
		return 0, fmt.Errorf("merchant settlement: %w", err)
	}
	d.detail("back on-line, the lane settled its batch at the issuer: payee %s credited %s (GET /v1/payees)", payee, money(credited))

	store, err := spd.StoreMedium(d.issuer.HostKey(), p.DeviceID, spd.StoreOrder{Counter: 1, Label: "cafe-lab-order",
		Format: spd.FormatMerchantCode, Content: []byte(orderCode), Expiry: d.now.Add(24 * time.Hour), Time: d.now})
	if err != nil {
		return 0, err
	}
	if err := c.Send(ctx, store); err != nil {
		return 0, fmt.Errorf("STORE MEDIUM: %w", err)
	}
	list, err := c.ListMedia(ctx)
	if err != nil {
		return 0, err
	}
	shown, err := c.ShowMedium(ctx, "cafe-lab-order", d.now)
	if err != nil {
		return 0, err
	}
	if _, err := d.show("09-stored-medium", string(shown.Content), medium.QR); err != nil {
		return 0, err
	}
	d.say("The issuer stored the merchant's order code on the device (C10, C38): %d medium listed, %q shown until %s",
		len(list), shown.Label, shown.Expiry.Format(time.DateTime))
	return ch.ATC, nil
}

// settleLane hands the lane's kept codes to an issuer host started for
// the demo (SQLite in a temporary directory, on 127.0.0.1) with the
// demo's issuer keys, and returns what the payee was credited
// (SPD-PRC-3, SPD-LED-5).
func (d *demo) settleLane(ctx context.Context, lane *terminal.Merchant, p spd.Profile, payee string, at time.Time) (int64, error) {
	dir, err := os.MkdirTemp("", "spdlab-demo-host-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	ca, err := x509.ParseCertificate(d.issuer.CACertificate)
	if err != nil {
		return 0, err
	}
	token, err := backend.NewToken()
	if err != nil {
		return 0, err
	}
	srv, err := backend.Open(backend.Config{DBPath: filepath.Join(dir, "issuer.db"), IssuerToken: token,
		Keys: backend.Keys{Signer: d.issuer.HostKey(), IssuerCA: ca}, Now: func() time.Time { return at }})
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	be, err := backend.NewClient("http://"+ln.Addr().String(), nil)
	if err != nil {
		return 0, err
	}
	be.Credential = token
	if _, err := be.Register(ctx, terminal.Enrolment(p, "")); err != nil {
		return 0, err
	}
	lane.Connect(be)
	if _, err := lane.Settle(ctx); err != nil {
		return 0, err
	}
	got, err := be.Payee(ctx, payee)
	if err != nil {
		return 0, err
	}
	return got.Balance, nil
}
