package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/rigs/dut"
	"github.com/spdlab/spdlab/scenarios"
)

const terminalSynopsis = `FLOW --dut DUT [--state FILE] [--backend URL] [flags]

Flows:
  status                          the device and the backend as the terminal sees them
  pay      --order TEXT | --order-png FILE | --amount 12.50  [--kind balance|account|use]
           [--offline | --online] [--token HEX]
  settle                          hand the pending ledger to the backend, apply its acknowledgement
  sync                            apply the parameter updates the backend queued (top-ups, tier, ...)
  show     [--nonce TEXT]         show a stored-value code for a merchant's scanner
  token    --max-uses N --max-amount 20.00 [--valid 1h]   a token with domain controls, in the vault
  transfer --to DEVICE-ID --amount 5.00 [--valid 24h]      offline, bound to the payee
  receive  --medium TEXT | --medium-png FILE               import a transfer shown by the payer
  reclaim  --serial N             take back an expired transfer nobody imported
  send     --to DEVICE-ID --amount 5.00 [--id ID] [--valid 24h] [--serial N]   online: the device debits, the backend carries the medium
  claim    --id ID                the payee's device imports an online transfer
  reclaim-online --id ID          take back an expired online transfer nobody claimed (the payer)
  exchange --amount 10.00 [--into uses|CURRENCY]     stored value into uses, or into another currency
           (ISO 4217 numeric, e.g. 840) paid to the account, at the rate the backend signs
  verify                          run the verification checks only

Verification flags (any flow): --pin PIN (default the lab's test PIN), --bio, --answer TEXT,
--sms (asks for the code the backend's log shows), --cert, --location REGION, --tier N, --yes.

The device: an emulated DUT (ref, *-emu) with --state FILE keeps its memory in FILE across
invocations; without --state each invocation has a new device. A blank device is personalised
with the lab's test issuer and registered with the backend first. Real hardware must already be
personalised by the test issuer.`

// cliUser is the person at the terminal on the command line.
type cliUser struct {
	out    io.Writer
	in     *bufio.Reader
	pin    string
	bio    bool
	answer string
	region uint16
	yes    bool
	outDir string
}

var (
	_ terminal.User        = (*cliUser)(nil)
	_ terminal.StepWatcher = (*cliUser)(nil)
)

func (u *cliUser) PIN(ctx context.Context, triesLeft int) (string, error) {
	fmt.Fprintf(u.out, "  PIN asked: the device allows %s\n", plural(triesLeft, "try", "tries"))
	return u.pin, nil
}

// VerifyStep implements terminal.StepWatcher: what the device said to
// each check, before the service goes on or fails.
func (u *cliUser) VerifyStep(ctx context.Context, s terminal.Step) {
	if s.Err == nil {
		fmt.Fprintf(u.out, "  %s verified\n", s.Check)
		return
	}
	why := s.Err.Error()
	if s.SW != 0 {
		why = fmt.Sprintf("the device answered %04X", uint16(s.SW))
	}
	switch {
	case s.TriesLeft == 0:
		fmt.Fprintf(u.out, "  %s refused: no tries left, it is blocked (%s)\n", s.Check, why)
	case s.TriesLeft > 0:
		fmt.Fprintf(u.out, "  %s wrong: %s left (%s)\n", s.Check, plural(s.TriesLeft, "try", "tries"), why)
	default:
		fmt.Fprintf(u.out, "  %s refused (%s)\n", s.Check, why)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func (u *cliUser) Biometric(ctx context.Context) ([]byte, error) {
	if !u.bio {
		return nil, errors.New("no biometric sample (--bio)")
	}
	fmt.Fprintln(u.out, "  biometric sample taken")
	return scenarios.TestBioTemplate, nil
}

func (u *cliUser) Answer(ctx context.Context, question string) (string, error) {
	if u.answer == "" {
		return "", fmt.Errorf("no answer to %q (--answer)", question)
	}
	fmt.Fprintf(u.out, "  answered %q\n", question)
	return u.answer, nil
}

func (u *cliUser) SMSCode(ctx context.Context, sent backend.OTPChallenge) (string, error) {
	fmt.Fprintf(u.out, "  SMS code sent (expires %s); enter it: ", sent.ExpiresAt.Format(time.TimeOnly))
	line, err := u.in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the SMS code: %w", err)
	}
	return strings.TrimSpace(line), nil
}

func (u *cliUser) Location(ctx context.Context) (uint16, error) {
	if u.region == 0 {
		return 0, errors.New("no location (--location)")
	}
	return u.region, nil
}

func (u *cliUser) Consent(ctx context.Context, question string) (bool, error) {
	fmt.Fprintf(u.out, "  %s? %v\n", question, map[bool]string{true: "yes (--yes)", false: "no (without --yes)"}[u.yes])
	return u.yes, nil
}

func (u *cliUser) ShowCode(ctx context.Context, c terminal.Code) error {
	name := strings.ReplaceAll(c.Title, " ", "-") + ".png"
	path := filepath.Join(u.outDir, name)
	png, err := c.PNG()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "  %s shown as %s: %s\n  text: %s\n", c.Title, c.Format, path, c.Text)
	return nil
}

func (u *cliUser) Report(ctx context.Context, o terminal.Outcome) {
	fmt.Fprintf(u.out, "%s\n", describe(o))
}

// describe is the line the user reads for an outcome (C29).
func describe(o terminal.Outcome) string {
	var b strings.Builder
	if o.Status == terminal.Done {
		fmt.Fprintf(&b, "DONE      %s", o.Flow)
	} else {
		fmt.Fprintf(&b, "NOT DONE  %s", o.Flow)
	}
	if o.Amount != 0 {
		fmt.Fprintf(&b, " %s", money(o.Amount))
	}
	if o.Kind != 0 {
		fmt.Fprintf(&b, " (%s)", o.Kind)
	}
	if o.Payee != "" {
		fmt.Fprintf(&b, " to %s", o.Payee)
	}
	switch {
	case o.Online:
		b.WriteString(", confirmed online by the backend")
	case o.Pending:
		b.WriteString(", pending settlement")
	}
	if o.Flow == terminal.FlowSettle && o.Status == terminal.Done {
		fmt.Fprintf(&b, ": %d settled, %d already settled, %d refused, %d left on the device", o.Settled, o.AlreadySettled, len(o.Refused), o.Left)
	}
	if o.Flow == terminal.FlowSync && o.Status == terminal.Done {
		fmt.Fprintf(&b, ": %d updates applied", o.Applied)
	}
	if o.Serial != 0 {
		fmt.Fprintf(&b, ", transfer serial %d", o.Serial)
	}
	if o.Flow == terminal.FlowExchange && o.Bought != 0 {
		if o.BoughtCurrency != 0 {
			fmt.Fprintf(&b, ": bought %d minor units of currency %03d for the account", o.Bought, o.BoughtCurrency)
		} else {
			fmt.Fprintf(&b, ": bought %d uses, %d now; balance %s", o.Bought, o.Uses, money(o.Balance))
		}
	}
	if o.Token != nil && o.Flow == terminal.FlowToken {
		fmt.Fprintf(&b, ", token %X", o.Token)
	}
	if o.Reason != "" {
		fmt.Fprintf(&b, "\n          %s", o.Reason)
	}
	for _, r := range o.Refused {
		fmt.Fprintf(&b, "\n          refused ATC %d: %s: %s", r.ATC, r.Code, r.Reason)
	}
	return b.String()
}

// Identity question of the lab's terminal.
const (
	labQuestion = "Name of your first school?"
	labAnswer   = "Lindenschule"
)

// labProfile is a test-issuer profile with a random device ID, so that
// devices made by separate invocations never collide at the backend.
func labProfile(now time.Time) (spd.Profile, error) {
	p := scenarios.TestProfile()
	id := make([]byte, spd.DeviceIDLen)
	if _, err := rand.Read(id[2:]); err != nil {
		return p, err
	}
	id[0], id[1] = 0x5D, 0x1A
	p.DeviceID = id
	copy(p.AccountToken[spd.TokenLen-8:], id)
	p.Time = now
	return p, nil
}

// labDevice opens the DUT and makes sure it holds a device of the test
// issuer, personalising and registering a blank one.
func labDevice(ctx context.Context, out io.Writer, spec, state, backendURL, credential string, newDevice bool, trace io.Writer) (*dut.DUT, error) {
	opt := dut.Options{StatePath: state, Trace: trace}
	if state != "" && !dut.Emulated(spec) {
		return nil, fmt.Errorf("--state keeps an emulated device; %s is not one", spec)
	}
	existed := false
	if state != "" {
		for _, p := range []string{state, state + ".log"} {
			if _, err := os.Stat(p); err == nil {
				existed = true
			}
		}
	}
	d, err := dut.Open(ctx, spec, opt)
	if err != nil {
		return nil, err
	}
	c := spd.NewClient(d.Link)
	sel, err := c.Select(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("SELECT: %w", err)
	}
	if sel.State != spd.StateBlank {
		return d, nil
	}
	if existed && !newDevice {
		d.Close()
		return nil, fmt.Errorf("the device kept in %s is blank; personalising would put a new device (and a new balance) at a path that held one: pass --new-device to do so", state)
	}
	p, err := labProfile(time.Now())
	if err == nil {
		p, err = scenarios.TestIssuer().Personalise(ctx, c, p)
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("personalising: %w", err)
	}
	fmt.Fprintf(out, "personalised a new device %s (test issuer): balance %s, %d uses, PIN %s\n",
		spd.DeviceIDString(p.DeviceID), money(p.Balance), p.Uses, p.PIN)
	if backendURL == "" {
		fmt.Fprintln(out, "no --backend: the device is not registered, its records cannot settle")
		return d, nil
	}
	be, err := backendClient(backendURL, nil, credential)
	if err == nil {
		_, err = be.Register(ctx, terminal.Enrolment(p, "+49170"+spd.DeviceIDString(p.DeviceID)[8:]))
	}
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("registering with the backend: %w", err)
	}
	fmt.Fprintf(out, "registered it with the backend at %s\n", backendURL)
	return d, nil
}

func parseMoney(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	return merchant.ParseAmount(s, 2)
}

func parseKind(s string) (spd.PaymentKind, error) {
	switch s {
	case "balance":
		return spd.KindBalance, nil
	case "account":
		return spd.KindAccount, nil
	case "use":
		return spd.KindUse, nil
	}
	return 0, fmt.Errorf("--kind %q: want balance, account or use", s)
}

func runTerminal(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(e.stderr, "usage: spdlab terminal "+terminalSynopsis)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	flow := args[0]
	fs := newFlags(e, "terminal "+flow, "[flags]")
	dutSpec := dutFlag(fs, "device under test (ref, usb-emu, serial-emu, sd-emu, pcsc[:READER], serial:PATH, usb:VID:PID, sd:DIR)")
	state := fs.String("state", "", "keep an emulated device's memory in this file across invocations")
	newDevice := fs.Bool("new-device", false, "personalise a blank device even where --state names files that exist")
	tracePath := fs.String("trace", "", "record every APDU exchange as pcapng (GSMTAP) in this file")
	backendURL := fs.String("backend", "", "the backend, as http://127.0.0.1:PORT (none: offline only)")
	authToken, authFile := credentialFlags(fs)
	outDir := fs.String("out", ".", "write the codes shown as PNG files in this directory")
	timeout := fs.Duration("timeout", 3*time.Second, "bound of one backend call attempt")
	region := fs.Uint("region", uint(scenarios.Home), "where the terminal is (ISO 3166-1 numeric)")
	// Verification.
	pin := fs.String("pin", scenarios.TestPIN, "the PIN the user enters")
	bio := fs.Bool("bio", false, "verify a biometric sample instead of (or with --pin-too) the PIN")
	pinToo := fs.Bool("pin-too", false, "with --bio, verify the PIN as well")
	answer := fs.String("answer", "", "answer to the identity question (asks it when set)")
	sms := fs.Bool("sms", false, "verify an SMS code sent through the backend")
	cert := fs.Bool("cert", false, "check the device certificate with INTERNAL AUTHENTICATE")
	location := fs.Uint("location", 0, "verify the location: the region the user reports")
	tier := fs.Uint("tier", 0, "the lowest membership tier the service requires")
	yes := fs.Bool("yes", false, "consent to the service")
	// Flow parameters.
	orderText := fs.String("order", "", "pay: the merchant's order code text")
	orderPNG := fs.String("order-png", "", "pay: a PNG of the merchant's order code")
	amount := fs.String("amount", "", "amount, as 12.50")
	kind := fs.String("kind", "balance", "pay: balance, account or use")
	offline := fs.Bool("offline", false, "pay: offline even if the backend answers")
	online := fs.Bool("online", false, "pay: online or not at all")
	tokenHex := fs.String("token", "", "pay: pay under this token (hex)")
	nonce := fs.String("nonce", "", "show: the merchant's nonce to bind the code to")
	maxUses := fs.Int("max-uses", 1, "token: transactions allowed")
	maxAmount := fs.String("max-amount", "", "token: largest amount, as 20.00")
	valid := fs.Duration("valid", 0, "token, transfer, send: validity (default 1h for tokens, 24h for transfers)")
	to := fs.String("to", "", "transfer, send: the payee device ID (hex)")
	mediumText := fs.String("medium", "", "receive: the transfer medium text")
	mediumPNG := fs.String("medium-png", "", "receive: a PNG of the transfer medium")
	serial := fs.Uint64("serial", 0, "reclaim: the transfer serial; send: resend the transfer of this serial the device made already (a retry)")
	id := fs.String("id", "", "send, claim, reclaim-online: the transfer ID")
	into := fs.String("into", "uses", "exchange: uses, or the ISO 4217 numeric currency to buy (840)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	switch flow {
	case "status", "pay", "settle", "sync", "show", "token", "transfer", "receive", "reclaim", "send", "claim", "reclaim-online", "verify", "exchange":
	default:
		fmt.Fprintf(e.stderr, "spdlab terminal: unknown flow %q\nusage: spdlab terminal %s\n", flow, terminalSynopsis)
		return errUsage
	}
	amt, err := parseMoney(*amount)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	var trace io.Writer
	if *tracePath != "" {
		tf, err := os.Create(*tracePath)
		if err != nil {
			return err
		}
		defer tf.Close()
		trace = tf
	}
	credential, err := clientCredential(*authToken, *authFile)
	if err != nil {
		return err
	}
	d, err := labDevice(ctx, e.stdout, *dutSpec, *state, *backendURL, credential, *newDevice, trace)
	if err != nil {
		return err
	}
	defer d.Close()
	var be *backend.Client
	if *backendURL != "" {
		if be, err = backendClient(*backendURL, nil, credential); err != nil {
			return err
		}
	}
	is := scenarios.TestIssuer()
	u := &cliUser{out: e.stdout, in: bufio.NewReader(io.LimitReader(e.stdin, 4096)) /* the SMS code, one short line */, pin: *pin, bio: *bio, answer: *answer,
		region: uint16(*location), yes: *yes, outDir: *outDir}
	tm, err := terminal.New(terminal.Config{SPD: d.Link, Backend: be, IssuerCA: &is.CA.PublicKey, User: u,
		Region: uint16(*region), CallTimeout: *timeout, Name: "CLI",
		Identity:   &terminal.IdentityQuestion{Question: labQuestion, Digest: terminal.AnswerDigest(labAnswer)},
		HostOrders: terminal.IssuerHost{Key: is.HostKey()}})
	if err != nil {
		return err
	}
	if err := tm.Attach(ctx); err != nil {
		return err
	}
	v := terminal.Verification{PIN: !*bio || *pinToo, Biometric: *bio, Identity: *answer != "", SMS: *sms,
		Certificate: *cert, Location: *location != 0, RequiredTier: uint8(*tier), Consent: *yes}
	now := time.Now().UTC()
	validFor := func(def time.Duration) time.Time {
		if *valid > 0 {
			return now.Add(*valid)
		}
		return now.Add(def)
	}
	payee := func() ([]byte, error) {
		b, err := hex.DecodeString(*to)
		if err != nil || len(b) != spd.DeviceIDLen {
			return nil, fmt.Errorf("--to %q: want a device ID of %d hex bytes", *to, spd.DeviceIDLen)
		}
		return b, nil
	}

	var o terminal.Outcome
	switch flow {
	case "status":
		return terminalStatus(ctx, e.stdout, tm, be)
	case "pay":
		p := terminal.Payment{Verify: v, Amount: amt}
		if p.Kind, err = parseKind(*kind); err != nil {
			return err
		}
		switch {
		case *orderText != "":
			p.Order, err = terminal.ScanOrder(*orderText)
		case *orderPNG != "":
			var f *os.File
			if f, err = os.Open(*orderPNG); err == nil {
				p.Order, err = terminal.ScanOrderPNG(f)
				f.Close()
			}
		case amt == 0 && p.Kind != spd.KindUse:
			err = errors.New("pay needs --order, --order-png or --amount")
		}
		if err != nil {
			return err
		}
		if p.Order.Payee != "" {
			fmt.Fprintf(e.stdout, "scanned the order: %s at %s (%s), payee %s, reference %s\n",
				money(p.Order.Amount), p.Order.Merchant, p.Order.City, p.Order.Payee, p.Order.Reference)
		}
		switch {
		case *offline && *online:
			return errors.New("--offline and --online exclude each other")
		case *offline:
			p.Network = terminal.OfflineOnly
		case *online:
			p.Network = terminal.OnlineOnly
		}
		if *tokenHex != "" {
			if p.Token, err = hex.DecodeString(*tokenHex); err != nil {
				return fmt.Errorf("--token: %w", err)
			}
		}
		if be == nil {
			if p.Network == terminal.OnlineOnly {
				return errors.New("pay --online needs --backend URL (spdlab backend serves one)")
			}
			fmt.Fprintln(e.stdout, "offline: no --backend given; the device pays offline within its risk limits and the payment waits in its ledger to be settled later (spdlab terminal settle --backend URL)")
		}
		o = tm.Pay(ctx, p)
	case "settle":
		o = tm.Settle(ctx)
	case "sync":
		o = tm.Sync(ctx)
	case "show":
		o = tm.ShowMedium(ctx, []byte(*nonce), v)
	case "token":
		ma, err := parseMoney(*maxAmount)
		if err != nil {
			return err
		}
		o = tm.IssueToken(ctx, terminal.TokenOrder{Expiry: validFor(time.Hour), Verify: v,
			Controls: medium.TokenControls{MaxTransactions: *maxUses, MaxAmount: ma, Channels: medium.ChannelInStore}})
	case "transfer":
		to, err := payee()
		if err != nil {
			return err
		}
		o = tm.SendTransfer(ctx, terminal.TransferOrder{Payee: to, Amount: amt, Expiry: validFor(24 * time.Hour), Verify: v})
	case "receive":
		text := *mediumText
		if *mediumPNG != "" {
			f, err := os.Open(*mediumPNG)
			if err != nil {
				return err
			}
			text, _, err = medium.DecodePNG(f)
			f.Close()
			if err != nil {
				return err
			}
		}
		if text == "" {
			return errors.New("receive needs --medium or --medium-png")
		}
		o = tm.ReceiveTransfer(ctx, text, v)
	case "reclaim":
		o = tm.ReclaimTransfer(ctx, *serial)
	case "send":
		to, err := payee()
		if err != nil {
			return err
		}
		o = tm.SendOnline(ctx, terminal.OnlineTransfer{ID: *id, Payee: to, Amount: amt, Expires: validFor(24 * time.Hour), Serial: *serial, Verify: v})
	case "claim":
		o = tm.Claim(ctx, *id, v)
	case "reclaim-online":
		o = tm.ReclaimOnline(ctx, *id, v)
	case "verify":
		o = tm.Verify(ctx, v)
	case "exchange":
		x := terminal.ExchangeOrder{Kind: spd.ExchangeUses, Amount: amt, Verify: v}
		if *into != "uses" {
			c, err := strconv.ParseUint(*into, 10, 16)
			if err != nil || c == 0 || c > 999 {
				return fmt.Errorf("--into %q: want uses or an ISO 4217 numeric currency (840)", *into)
			}
			x.Kind, x.Target = spd.ExchangeCurrency, uint16(c)
		}
		switch {
		case amt == 0:
			return errors.New("exchange needs --amount")
		case be == nil:
			return errors.New("exchange needs --backend URL: the issuer's host signs the rate (spdlab backend serves one)")
		}
		o = tm.Exchange(ctx, x)
	}
	if o.Status != terminal.Done {
		return errors.New("not done")
	}
	return nil
}

// terminalStatus prints what the terminal sees of the device and backend.
func terminalStatus(ctx context.Context, w io.Writer, tm *terminal.Terminal, be *backend.Client) error {
	c := tm.Card()
	id := spd.DeviceIDString(tm.DeviceID())
	bal, err := c.Balance(ctx)
	if err != nil {
		return err
	}
	uses, err := c.Uses(ctx)
	if err != nil {
		return err
	}
	atc, err := c.ATC(ctx)
	if err != nil {
		return err
	}
	pending, err := c.Pending(ctx)
	if err != nil {
		return err
	}
	n, err := c.PendingCount(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "device   %s (certificate verified against the test issuer CA)\n", id)
	fmt.Fprintf(w, "         balance %s, %d uses, ATC %d, ledger %d records, %s pending\n", money(bal), uses, atc, n, money(pending))
	if be == nil {
		fmt.Fprintln(w, "backend  none (offline only)")
		return nil
	}
	if !tm.Online(ctx) {
		fmt.Fprintln(w, "backend  not reachable: services run offline")
		return nil
	}
	dev, err := be.Device(ctx, id)
	if err != nil {
		fmt.Fprintf(w, "backend  online; the device is not known there: %v\n", err)
		return nil
	}
	a, err := be.Audit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "backend  online; issuer's view of the device: %s; audit conserved=%v (issued %s, %d records settled)\n",
		money(dev.Balance), a.Conserved, money(a.Issued), a.RecordsSettled)
	return nil
}

// demoWithBackend runs the demo's online, offline and settlement flows
// through the terminal against the backend at url (spdlab demo --backend).
func demoWithBackend(ctx context.Context, out io.Writer, dir string, payer *dut.DUT, url, credential string) error {
	be, err := backendClient(url, nil, credential)
	if err != nil {
		return err
	}
	if err := be.Health(ctx); err != nil {
		return fmt.Errorf("the backend at %s does not answer: %w", url, err)
	}
	fmt.Fprintf(out, "spdlab demo on %s with the backend at %s\n\n", payer.Link, url)
	c := spd.NewClient(payer.Link)
	sel, err := c.Select(ctx)
	if err != nil {
		return err
	}
	if sel.State != spd.StateBlank {
		return fmt.Errorf("the device is %s; the demo personalises a blank device", sel.State)
	}
	is := scenarios.TestIssuer()
	p, err := labProfile(time.Now())
	if err == nil {
		p, err = is.Personalise(ctx, c, p)
	}
	if err != nil {
		return fmt.Errorf("personalising: %w", err)
	}
	if _, err := be.Register(ctx, terminal.Enrolment(p, "+49170"+spd.DeviceIDString(p.DeviceID)[8:])); err != nil {
		return fmt.Errorf("registering: %w", err)
	}
	fmt.Fprintf(out, " 1. Personalised device %s and registered it with the backend: balance %s\n", spd.DeviceIDString(p.DeviceID), money(p.Balance))
	// The terminal's network: cut on demand for the offline part.
	nw := &switchedNetwork{}
	nbe, err := backendClient(url, nw.client(), credential)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "spdlab-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	u := &cliUser{out: out, pin: p.PIN, yes: true, outDir: dir}
	tm, err := terminal.New(terminal.Config{SPD: payer.Link, Backend: nbe, IssuerCA: &is.CA.PublicKey, User: u,
		Region: scenarios.Home, Name: "DEMO", CallTimeout: 3 * time.Second})
	if err != nil {
		return err
	}
	if err := tm.Attach(ctx); err != nil {
		return err
	}
	code, err := merchant.Encode(merchant.Order{PayloadFormat: "01", Initiation: merchant.Dynamic,
		Accounts: []merchant.AccountTemplate{{ID: "26", GUID: merchant.GUID, Account: "MERCHANT-0042"}},
		Category: "5812", Currency: "978", Amount: "12.50", Country: "DE", Name: "Cafe Lab", City: "Berlin",
		Additional: &merchant.AdditionalData{BillNumber: "ORDER-1001"}})
	if err != nil {
		return err
	}
	order, err := terminal.ScanOrder(code)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, " 2. Scanned the merchant's order: %s at %s, payee %s\n", money(order.Amount), order.Merchant, order.Payee)
	fmt.Fprintln(out, " 3. Online, each kind of payment (C2, C30):")
	for _, k := range []spd.PaymentKind{spd.KindBalance, spd.KindAccount, spd.KindUse} {
		if o := tm.Pay(ctx, terminal.Payment{Order: order, Kind: k, Network: terminal.OnlineOnly}); o.Status != terminal.Done {
			return o.Err()
		}
	}
	fmt.Fprintln(out, " 4. The network goes down: offline payments within the risk limits (C4, C7):")
	nw.down = true
	for _, amt := range []int64{5_00, 7_50} {
		if o := tm.Pay(ctx, terminal.Payment{Order: order, Amount: amt, Kind: spd.KindBalance}); o.Status != terminal.Done {
			return o.Err()
		}
	}
	tm.Settle(ctx)
	fmt.Fprintln(out, " 5. The network is back: settlement of the pending records (C4, SPD-LED-5):")
	nw.down = false
	if o := tm.Settle(ctx); o.Status != terminal.Done {
		return o.Err()
	}
	a, err := be.Audit(ctx)
	if err != nil {
		return err
	}
	dev, err := be.Device(ctx, spd.DeviceIDString(p.DeviceID))
	if err != nil {
		return err
	}
	bal, err := c.Balance(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, " 6. Device balance %s; the issuer's view %s (an account payment is taken from the designated account, not the device)\n",
		money(bal), money(dev.Balance))
	fmt.Fprintf(out, "    audit conserved=%v: issued %s = balances %s + pending %s + settled %s + in flight %s\n",
		a.Conserved, money(a.Issued), money(a.Balances), money(a.Pending), money(a.Settled), money(a.InFlight))
	if !a.Conserved {
		return errors.New("the backend's audit is not conserved")
	}
	fmt.Fprintln(out, "\ndone")
	return nil
}

// switchedNetwork is the demo terminal's network, which the demo cuts to
// show offline service.
type switchedNetwork struct{ down bool }

func (n *switchedNetwork) client() *http.Client {
	return &http.Client{Transport: n, Timeout: 10 * time.Second}
}

// RoundTrip implements http.RoundTripper.
func (n *switchedNetwork) RoundTrip(req *http.Request) (*http.Response, error) {
	if n.down {
		return nil, errors.New("demo: network down")
	}
	return http.DefaultTransport.RoundTrip(req)
}
