package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
)

// decodedMedium is what `spdlab medium decode` prints, and what `spdlab
// medium encode` reads back (a bare service information object works too).
type decodedMedium struct {
	Format    string             `json:"format,omitempty"`
	Info      medium.ServiceInfo `json:"info"`
	Signature signatureCheck     `json:"signature"`
}

type signatureCheck struct {
	Valid   bool   `json:"valid"`
	Checked string `json:"checked"`
}

// readCode returns the text of a code given as a PNG file or as the text
// itself, and the symbology it was read from ("" for text).
func readCode(arg string) (string, string, error) {
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		f, err := os.Open(arg)
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		text, format, err := medium.DecodePNG(f)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", arg, err)
		}
		return text, format.String(), nil
	}
	if strings.HasSuffix(strings.ToLower(arg), ".png") {
		return "", "", fmt.Errorf("%s: no such file", arg)
	}
	return arg, "", nil
}

// subcommandHelp prints the help of each subcommand of a command, with
// its flags, and returns flag.ErrHelp when help was asked for, errUsage
// otherwise.
func subcommandHelp(e *env, asked bool, intro string, subs ...func(*env, []string) error) error {
	fmt.Fprintln(e.stderr, intro)
	for _, sub := range subs {
		fmt.Fprintln(e.stderr)
		sub(e, []string{"-h"})
	}
	if asked {
		return flag.ErrHelp
	}
	return errUsage
}

func runMedium(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		return subcommandHelp(e, len(args) > 0, "spdlab medium: decode and verify, or encode and sign, a stored-value, token, transfer or result medium (SPEC.md section 7).\nA merchant's order code is read with spdlab merchant decode.",
			mediumDecode, mediumEncode)
	}
	switch args[0] {
	case "decode":
		return mediumDecode(e, args[1:])
	case "encode":
		return mediumEncode(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "spdlab medium: unknown subcommand %q (want decode or encode)\n", args[0])
	return subcommandHelp(e, false, "", mediumDecode, mediumEncode)
}

func mediumDecode(e *env, args []string) error {
	flags := newFlags(e, "medium decode", "FILE.png|TEXT [--ca FILE] [--pub FILE]\n\n"+
		"Prints the medium as JSON. Its signature is checked with --ca, --pub or the device certificate\n"+
		"the medium carries; a medium that carries none (a payment result, a token) is still shown,\n"+
		"with \"valid\": false and what to give to check it. A bad signature is an error (exit 1).\n")
	caPath := flags.String("ca", "", "issuer CA certificate or public key (PEM) to check the device certificate against")
	pubPath := flags.String("pub", "", "device public key or certificate (PEM) for media that carry no certificate (payment results, tokens)")
	args, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		flags.Usage()
		return errUsage
	}
	text, format, err := readCode(args[0])
	if err != nil {
		return err
	}
	m, err := medium.ParseText(text)
	if err != nil {
		if _, merr := merchant.Decode(strings.TrimSpace(text)); merr == nil {
			return fmt.Errorf("medium: %s is a merchant order code (EMV QRCPS merchant-presented, starting 000201), not a coded medium: read it with spdlab merchant decode %s", describeArg(args[0]), shellQuote(args[0]))
		}
		if _, perr := spd.ParsePaymentCodeText(strings.TrimSpace(text)); perr == nil {
			return fmt.Errorf("medium: %s is a device's payment code (SPEC.md 4.9, object E5: a result medium and its pending record), not a coded medium: check it as a merchant does with spdlab merchant scan %s --payee ACCOUNT", describeArg(args[0]), shellQuote(args[0]))
		}
		return err
	}
	out := decodedMedium{Format: format, Info: m.Info}
	switch {
	case *caPath != "":
		ca, err := readPublicKey(*caPath)
		if err != nil {
			return err
		}
		cert, err := medium.VerifyCertificate(m, ca)
		if err != nil {
			return err
		}
		out.Signature = signatureCheck{true, "device certificate " + cert.Subject.CommonName + ", signed by the issuer CA of " + *caPath}
	case *pubPath != "":
		pub, err := readPublicKey(*pubPath)
		if err != nil {
			return err
		}
		if err := m.Verify(pub); err != nil {
			return err
		}
		out.Signature = signatureCheck{true, "public key of " + *pubPath}
	case len(m.Info.Certificate) > 0:
		cert, err := x509.ParseCertificate(m.Info.Certificate)
		if err != nil {
			return fmt.Errorf("medium: device certificate: %w", err)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("medium: device certificate holds a %T key", cert.PublicKey)
		}
		if err := m.Verify(pub); err != nil {
			return err
		}
		out.Signature = signatureCheck{true, "key of the embedded device certificate " + cert.Subject.CommonName + " (issuer not checked: give --ca)"}
	default:
		out.Signature = signatureCheck{false, "not checked: the medium carries no device certificate; give the device's public key or certificate with --pub FILE to check it"}
		fmt.Fprintln(e.stderr, "spdlab medium: signature NOT checked: this "+m.Info.Kind.String()+" carries no device certificate; give the device's public key or certificate with --pub FILE")
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func mediumEncode(e *env, args []string) error {
	flags := newFlags(e, "medium encode", "--key FILE [--png FILE] [--format QR|DataMatrix] [--scale N] < info.json\n\n"+
		"Signs the service information on standard input (as medium decode prints it, or the bare \"info\" object)\n"+
		"and prints the medium's text.\n")
	keyPath := flags.String("key", "", "device private key (PEM, EC P-256), e.g. from: openssl ecparam -name prime256v1 -genkey -noout -out key.pem")
	pngPath := flags.String("png", "", "also write the code as a PNG image here")
	formatName := flags.String("format", "QR", "image symbology: QR or DataMatrix")
	scale := flags.Int("scale", 4, "pixels per module in the PNG")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *keyPath == "" || flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	key, err := readPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(e.stdin, 1<<20))
	if err != nil {
		return err
	}
	var in decodedMedium
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		// A bare service information object.
		in = decodedMedium{}
		dec = json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err2 := dec.Decode(&in.Info); err2 != nil {
			return fmt.Errorf("medium: standard input is neither decoded-medium JSON (%v) nor service information JSON (%v)", err, err2)
		}
	}
	env, err := medium.Sign(in.Info, key)
	if err != nil {
		return err
	}
	text := medium.Text(env)
	fmt.Fprintln(e.stdout, text)
	if *pngPath != "" {
		return writeCodePNG(*pngPath, text, *formatName, *scale)
	}
	return nil
}

func parseFormat(name string) (medium.Format, error) {
	for _, f := range medium.Formats {
		if strings.EqualFold(f.String(), name) {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown format %q (want QR, DataMatrix or Code128)", name)
}

func writeCodePNG(path, text, formatName string, scale int) error {
	f, err := parseFormat(formatName)
	if err != nil {
		return err
	}
	b, err := medium.RenderPNG(text, f, scale)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func runMerchant(ctx context.Context, e *env, args []string) error {
	const intro = "spdlab merchant: decode or encode a merchant's order code (EMV QRCPS merchant-presented mode, SPEC.md section 10),\nor scan and charge a payment code a device presents (spdlab merchant scan --help, SPEC.md 4.9).\nA device's coded medium is read with spdlab medium decode."
	if len(args) == 0 || isHelp(args[0]) {
		return subcommandHelp(e, len(args) > 0, intro, merchantDecode, merchantEncode)
	}
	switch args[0] {
	case "scan":
		return merchantScan(ctx, e, args[1:])
	case "decode":
		return merchantDecode(e, args[1:])
	case "encode":
		return merchantEncode(e, args[1:])
	}
	fmt.Fprintf(e.stderr, "spdlab merchant: unknown subcommand %q (want scan, decode or encode)\n", args[0])
	return subcommandHelp(e, false, "", merchantDecode, merchantEncode)
}

func merchantDecode(e *env, args []string) error {
	flags := newFlags(e, "merchant decode", "FILE.png|TEXT\n\nPrints the order as JSON; the CRC (object 63) must match. No flags.")
	rest, err := parseInterspersed(flags, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		flags.Usage()
		return errUsage
	}
	text, _, err := readCode(rest[0])
	if err != nil {
		return err
	}
	o, err := merchant.Decode(text)
	if err != nil {
		if _, merr := medium.ParseText(text); merr == nil {
			return fmt.Errorf("merchant: %s is a device's coded medium, not a merchant order code: read it with spdlab medium decode %s", describeArg(rest[0]), shellQuote(rest[0]))
		}
		return err
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(o)
}

func merchantEncode(e *env, args []string) error {
	flags := newFlags(e, "merchant encode", "[--png FILE] [--scale N] < order.json")
	pngPath := flags.String("png", "", "also write the code as a QR PNG here")
	scale := flags.Int("scale", 4, "pixels per module in the PNG")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	var o merchant.Order
	dec := json.NewDecoder(io.LimitReader(e.stdin, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("merchant: order JSON on standard input: %w", err)
	}
	text, err := merchant.Encode(o)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, text)
	if *pngPath != "" {
		return writeCodePNG(*pngPath, text, "QR", *scale)
	}
	return nil
}

// describeArg names a code argument in a message: the file, or the text
// shortened.
func describeArg(arg string) string {
	if strings.HasSuffix(strings.ToLower(arg), ".png") {
		return arg
	}
	if len(arg) > 24 {
		return "the text " + strconv.Quote(arg[:24]+"...")
	}
	return "the text " + strconv.Quote(arg)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+=:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// parseInterspersed parses flags that may come before or after the
// positional arguments.
func parseInterspersed(flags interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, error) {
	var pos []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		rest := flags.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func readPEM(path string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return blk, nil
}

// readPublicKey reads an EC public key from a PEM certificate or public key.
func readPublicKey(path string) (*ecdsa.PublicKey, error) {
	blk, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	var k any
	switch blk.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		k = c.PublicKey
	default:
		if k, err = x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an EC public key", path)
	}
	return pub, nil
}

// readPrivateKey reads an EC private key (SEC 1 or PKCS #8 PEM).
func readPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	blk, err := readPEM(path)
	if err != nil {
		return nil, err
	}
	if k, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not an EC private key: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an EC private key", path)
	}
	return ek, nil
}
