package spd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Payment codes a device presents to a merchant's scanner (SPEC.md 4.9,
// SPD-PRC-1..3).

// INSPresentCode is PRESENT CODE.
const INSPresentCode INS = 0x78

// TagPaymentCode is the payment code template.
const TagPaymentCode tlv.Tag = 0xE5

// Lifetimes of a payment code (SPEC.md 4.9).
const (
	DefaultCodeLife = time.Minute
	MaxCodeLife     = 5 * time.Minute
)

// PresentRequest is PRESENT CODE's parameters: PAY's (without the
// channel; the mode is always offline) and the end of the code's life.
type PresentRequest struct {
	Kind         PaymentKind
	Amount       int64
	Currency     uint16
	Time         time.Time
	Payee        []byte // the merchant's payee account, optional
	Challenge    []byte // DF07: the merchant's challenge, optional (time-based without)
	Region       uint16
	RequiredTier uint8
	Token        []byte
	Nonce        []byte    // 9F37: the terminal's payment nonce, optional (SPD-PAY-8)
	Expiry       time.Time // zero: Time + DefaultCodeLife
	Assertion    []byte    // DF76: a host assertion (SPEC.md 4.10), optional
}

// PresentCode builds the PRESENT CODE command.
func PresentCode(r PresentRequest) apdu.Command {
	pay := Pay(PayRequest{Kind: r.Kind, Mode: ModeOffline, Amount: r.Amount, Currency: r.Currency, Time: r.Time,
		Payee: r.Payee, PayeeNonce: r.Challenge, Region: r.Region, RequiredTier: r.RequiredTier, Token: r.Token, TerminalNonce: r.Nonce,
		Assertion: r.Assertion})
	data := pay.Data
	if !r.Expiry.IsZero() {
		var b builder
		b.time(TagExpiry, r.Expiry)
		data = append(data, b.must()...)
	}
	return proprietary(INSPresentCode, byte(r.Kind), 0, data, apdu.MaxShortLe)
}

// ParsePresentRequest decodes PRESENT CODE's P1, P2 and data field, and
// fills a zero expiry with the default life.
func ParsePresentRequest(p1, p2 byte, data []byte) (PresentRequest, error) {
	if p2 != 0 || !PaymentKind(p1).IsPayment() {
		return PresentRequest{}, ErrBadP1P2
	}
	f, err := parseFields(data, TagAmount, TagCurrency, TagTime, TagPayee, TagPayeeNonce, TagLocation,
		TagRequiredTier, TagToken, TagTerminalNonce, TagExpiry, TagHostAssertion)
	if err != nil {
		return PresentRequest{}, err
	}
	exp, err := f.time(TagExpiry)
	if err != nil {
		return PresentRequest{}, err
	}
	var rest builder
	for _, x := range f {
		if x.tag != TagExpiry {
			rest.Add(x.tag, x.value)
		}
	}
	pay, err := ParsePayRequest(p1, byte(ModeOffline), rest.must())
	if err != nil {
		return PresentRequest{}, err
	}
	r := PresentRequest{Kind: pay.Kind, Amount: pay.Amount, Currency: pay.Currency, Time: pay.Time, Payee: pay.Payee,
		Challenge: pay.PayeeNonce, Region: pay.Region, RequiredTier: pay.RequiredTier, Token: pay.Token, Nonce: pay.TerminalNonce, Expiry: exp,
		Assertion: pay.Assertion}
	if !f.has(TagExpiry) {
		r.Expiry = r.Time.Add(DefaultCodeLife)
	}
	if !r.Expiry.After(r.Time) || r.Expiry.Sub(r.Time) > MaxCodeLife {
		return PresentRequest{}, malformed("code life %s out of 1 s..%s", r.Expiry.Sub(r.Time), MaxCodeLife)
	}
	return r, nil
}

// Pay is the PAY request the code's payment is made as.
func (r PresentRequest) Pay() PayRequest {
	return PayRequest{Kind: r.Kind, Mode: ModeOffline, Amount: r.Amount, Currency: r.Currency, Time: r.Time,
		Payee: r.Payee, PayeeNonce: r.Challenge, Region: r.Region, RequiredTier: r.RequiredTier, Token: r.Token,
		TerminalNonce: r.Nonce, Channel: medium.ChannelInStore, Assertion: r.Assertion}
}

// PaymentCode is the E5 object PRESENT CODE answers: the signed payment
// result, and for a success the signed pending record and the device
// certificate.
type PaymentCode struct {
	Result      Result
	Record      *PendingRecord // nil for a declined code
	Certificate []byte         // nil for a declined code
}

// Marshal encodes the code as the E5 object.
func (c PaymentCode) Marshal() []byte {
	var b builder
	b.AddConstructed(TagPaymentCode, func(in *tlv.Builder) {
		in.Add(TagTransferMedium, c.Result.Envelope)
		if c.Record != nil {
			obj, _, err := tlv.Next(c.Record.Marshal())
			if err == nil {
				in.AddTLV(obj)
			}
		}
		if len(c.Certificate) > 0 {
			in.Add(TagCertificate, c.Certificate)
		}
	})
	return b.must()
}

// Text is the code's text form: standard Base64 of the E5 object.
func (c PaymentCode) Text() string { return base64.StdEncoding.EncodeToString(c.Marshal()) }

// ParsePaymentCode decodes an E5 object: the children of SPEC.md 4.9 in
// order, a result medium of Kind 4, and, when the result is a success, the
// record and the certificate. Nothing follows the object.
func ParsePaymentCode(b []byte) (PaymentCode, error) {
	obj, err := tlv.ParseOne(b)
	if err != nil {
		return PaymentCode{}, malformed("payment code: %w", err)
	}
	if obj.Tag != TagPaymentCode {
		return PaymentCode{}, malformed("payment code: tag %s, want E5", obj.Tag)
	}
	kids := obj.Children
	if len(kids) == 0 || kids[0].Tag != TagTransferMedium {
		return PaymentCode{}, malformed("payment code: no result medium first")
	}
	res, err := ParseResult(kids[0].Value, medium.KindPaymentResult)
	if err != nil {
		return PaymentCode{}, fmt.Errorf("spd: payment code: %w", err)
	}
	c := PaymentCode{Result: res}
	if !res.Success() {
		if len(kids) != 1 {
			return PaymentCode{}, malformed("payment code: a declined code holds only its result")
		}
		return c, nil
	}
	if len(kids) != 3 || kids[1].Tag != TagRecord || kids[2].Tag != TagCertificate || len(kids[2].Value) == 0 {
		return PaymentCode{}, malformed("payment code: want result, record and certificate")
	}
	raw, err := tlv.Encode(kids[1])
	if err != nil {
		return PaymentCode{}, malformed("payment code: %w", err)
	}
	rec, err := ParsePendingRecord(raw)
	if err != nil {
		return PaymentCode{}, fmt.Errorf("spd: payment code: %w", err)
	}
	c.Record, c.Certificate = &rec, bytes.Clone(kids[2].Value)
	return c, nil
}

// ParsePaymentCodeText decodes the text form of a payment code.
func ParsePaymentCodeText(s string) (PaymentCode, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return PaymentCode{}, malformed("payment code text: %w", err)
	}
	return ParsePaymentCode(b)
}

// Verify checks both signatures of a successful code with the device key
// pub and that the result and the record describe the same payment
// (SPD-PRC-1).
func (c PaymentCode) Verify(pub *ecdsa.PublicKey) error {
	if err := c.Result.Verify(pub); err != nil {
		return fmt.Errorf("spd: payment code result: %w", err)
	}
	if c.Record == nil {
		return nil
	}
	if err := c.Record.Verify(pub); err != nil {
		return fmt.Errorf("spd: payment code record: %w", err)
	}
	return c.Agree()
}

// Agree checks that the record and the result of a successful code name
// the same device, ATC, amount, currency, token, payee, challenge and
// time, and that
// the record is a payment of mode offline.
func (c PaymentCode) Agree() error {
	in, r := c.Result.Info(), c.Record
	if r == nil {
		return malformed("payment code: no record")
	}
	switch {
	case !bytes.Equal(in.DeviceID, r.DeviceID):
		return malformed("payment code: device %X in the result, %X in the record", in.DeviceID, r.DeviceID)
	case in.ATC != r.ATC:
		return malformed("payment code: ATC %d in the result, %d in the record", in.ATC, r.ATC)
	case in.Amount != r.Amount:
		return malformed("payment code: amount %d in the result, %d in the record", in.Amount, r.Amount)
	case in.Currency != r.Currency:
		return malformed("payment code: currency %d in the result, %d in the record", in.Currency, r.Currency)
	case !bytes.Equal(in.Token, r.Token):
		return malformed("payment code: token differs between result and record")
	case !bytes.Equal(in.PayeeID, r.Payee):
		return malformed("payment code: payee %q in the result, %q in the record", in.PayeeID, r.Payee)
	case !bytes.Equal(in.PayeeNonce, r.PayeeNonce):
		return malformed("payment code: challenge %q in the result, %q in the record", in.PayeeNonce, r.PayeeNonce)
	case !in.Issued.Equal(r.Time):
		return malformed("payment code: time %s in the result, %s in the record", in.Issued, r.Time)
	case !r.Kind.IsPayment() || r.Mode != ModeOffline:
		return malformed("payment code: record of kind %v mode %v, want a payment of mode offline", r.Kind, r.Mode)
	}
	return nil
}

// PresentCode asks the device for a payment code. A declined code comes
// back with an error wrapping ErrDeclined.
func (c *Client) PresentCode(ctx context.Context, r PresentRequest) (PaymentCode, error) {
	data, err := c.Do(ctx, PresentCode(r))
	if err != nil {
		return PaymentCode{}, err
	}
	code, err := ParsePaymentCode(data)
	if err != nil {
		return PaymentCode{}, err
	}
	if !code.Result.Success() {
		return code, fmt.Errorf("%w: %s", ErrDeclined, code.Result.Info().Reason)
	}
	return code, nil
}
