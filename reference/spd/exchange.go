package spd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/tlv"
)

// EXCHANGE (SPEC.md 4.11, SPD-EXC-1..5): stored value exchanged into uses
// or into another currency, at a rate the issuer's host signed for one
// device and one ATC.

// INSExchange is EXCHANGE; it is also the signing domain of an exchange
// rate (SPD-KEY-3).
const INSExchange INS = 0x7C

// Tags of EXCHANGE, its rate, its answer and its pending record.
const (
	TagExchangeRate   tlv.Tag = 0xDF77 // EXCHANGE: the host-signed rate
	TagExchangeKind   tlv.Tag = 0xDF78 // rate and record: what the exchange buys
	TagTargetCurrency tlv.Tag = 0xDF79 // rate and record: the currency bought
	TagRateNumerator  tlv.Tag = 0xDF7A // rate and record: n
	TagRateDenom      tlv.Tag = 0xDF7B // rate and record: d
	TagExchangeTarget tlv.Tag = 0xDF7C // record: the target t
	TagExchangeResult tlv.Tag = 0xE6   // EXCHANGE's answer
)

// MaxRateLen bounds DF77.
const MaxRateLen = 255

// MaxRateLife is the longest validity a host gives a rate (SPD-EXC-5).
const MaxRateLife = 5 * time.Minute

// maxUses is the largest consumption count (4 bytes).
const maxUses = 1<<32 - 1

// ExchangeKind is EXCHANGE's P1 and a rate's DF78: what the exchange buys.
type ExchangeKind byte

// Exchange kinds.
const (
	ExchangeUses     ExchangeKind = 0x01 // uses of the consumption count
	ExchangeCurrency ExchangeKind = 0x02 // another currency, paid to the designated account
)

// Valid reports whether k is a defined exchange kind.
func (k ExchangeKind) Valid() bool { return k == ExchangeUses || k == ExchangeCurrency }

func (k ExchangeKind) String() string {
	switch k {
	case ExchangeUses:
		return "uses"
	case ExchangeCurrency:
		return "currency"
	}
	return fmt.Sprintf("exchange kind %02X", byte(k))
}

// Rate is the body of an exchange rate (SPEC.md 4.11): n target units for
// d minor units of the device's currency, for the exchange that takes ATC.
type Rate struct {
	Kind           ExchangeKind
	ATC            uint32 // the device's ATC plus one
	Currency       uint16 // the currency sold: the device's
	TargetCurrency uint16 // the currency bought; ExchangeCurrency only
	Numerator      uint32 // n, 1..2^32-1
	Denominator    uint32 // d, 1..2^32-1
	Expiry         time.Time
}

// Body encodes the rate's body in table order.
func (r Rate) Body() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	var b builder
	b.u(TagExchangeKind, 1, uint64(r.Kind))
	b.u(TagATC, 4, uint64(r.ATC))
	b.u(TagCurrency, 2, uint64(r.Currency))
	if r.Kind == ExchangeCurrency {
		b.u(TagTargetCurrency, 2, uint64(r.TargetCurrency))
	}
	b.u(TagRateNumerator, 4, uint64(r.Numerator))
	b.u(TagRateDenom, 4, uint64(r.Denominator))
	b.time(TagExpiry, r.Expiry)
	return b.Bytes()
}

func (r Rate) check() error {
	switch {
	case !r.Kind.Valid():
		return malformed("rate: %s", r.Kind)
	case r.Numerator == 0 || r.Denominator == 0:
		return malformed("rate: %d/%d, both must be 1..2^32-1", r.Numerator, r.Denominator)
	case r.Kind == ExchangeCurrency && r.TargetCurrency == r.Currency:
		return malformed("rate: currency %d bought for itself", r.Currency)
	case r.Kind == ExchangeUses && r.TargetCurrency != 0:
		return malformed("rate: a rate for uses names a currency bought (DF79)")
	}
	return nil
}

// SealRate signs r for the device deviceID with the host key and returns
// the value of DF77.
func SealRate(key *ecdsa.PrivateKey, deviceID []byte, r Rate) ([]byte, error) {
	body, err := r.Body()
	if err != nil {
		return nil, err
	}
	out, err := SealIssuerData(key, INSExchange, deviceID, body)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxRateLen {
		return nil, fmt.Errorf("spd: rate of %d bytes, at most %d", len(out), MaxRateLen)
	}
	return out, nil
}

// CheckRateForm checks that v, a DF77 value, is a sequence of BER-TLV
// objects ending with a non-empty 9F45 (the part of the check that is the
// command's data field, SPEC.md 1.2).
func CheckRateForm(v []byte) error {
	if len(v) == 0 || len(v) > MaxRateLen {
		return malformed("exchange rate of %d bytes, want 1..%d", len(v), MaxRateLen)
	}
	objs, err := tlv.Parse(v)
	if err != nil {
		return malformed("exchange rate: %v", err)
	}
	if last := objs[len(objs)-1]; last.Tag != TagSignature || len(last.Value) == 0 {
		return malformed("exchange rate does not end with a signature (9F45)")
	}
	return nil
}

// OpenRate verifies the DF77 value v with the host key pub for the device
// deviceID and decodes its body. A signature that does not verify is
// ErrBadSignature; a malformed value or body wraps ErrMalformed.
func OpenRate(pub *ecdsa.PublicKey, deviceID, v []byte) (Rate, error) {
	if err := CheckRateForm(v); err != nil {
		return Rate{}, err
	}
	body, err := OpenIssuerData(pub, INSExchange, deviceID, v)
	if err != nil {
		return Rate{}, err
	}
	return ParseRateBody(body)
}

// ParseRateBody decodes the body of an exchange rate.
func ParseRateBody(body []byte) (Rate, error) {
	f, err := parseFields(body, TagExchangeKind, TagATC, TagCurrency, TagTargetCurrency, TagRateNumerator, TagRateDenom, TagExpiry)
	if err != nil {
		return Rate{}, err
	}
	if err := f.require(TagExchangeKind, TagATC, TagCurrency, TagRateNumerator, TagRateDenom, TagExpiry); err != nil {
		return Rate{}, err
	}
	var r Rate
	k, err := f.uint(TagExchangeKind, 1)
	if err != nil {
		return Rate{}, err
	}
	if r.Kind = ExchangeKind(k); !r.Kind.Valid() {
		return Rate{}, malformed("rate: kind %02X", k)
	}
	atc, err := f.uint(TagATC, 4)
	if err != nil {
		return Rate{}, err
	}
	r.ATC = uint32(atc)
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return Rate{}, err
	}
	r.Currency = uint16(cur)
	if r.Kind == ExchangeCurrency && !f.has(TagTargetCurrency) {
		return Rate{}, malformed("rate: tag %s missing", TagTargetCurrency)
	}
	if r.Kind == ExchangeUses && f.has(TagTargetCurrency) {
		return Rate{}, malformed("rate: a rate for uses with tag %s", TagTargetCurrency)
	}
	tc, err := f.uint(TagTargetCurrency, 2)
	if err != nil {
		return Rate{}, err
	}
	r.TargetCurrency = uint16(tc)
	n, err := f.uint(TagRateNumerator, 4)
	if err != nil {
		return Rate{}, err
	}
	d, err := f.uint(TagRateDenom, 4)
	if err != nil {
		return Rate{}, err
	}
	r.Numerator, r.Denominator = uint32(n), uint32(d)
	if r.Expiry, err = f.time(TagExpiry); err != nil {
		return Rate{}, err
	}
	if err := r.check(); err != nil {
		return Rate{}, err
	}
	return r, nil
}

// ErrExchangeRange is returned by Quote for an amount that buys nothing at
// the rate or a target beyond its limit (SPD-EXC-3, 6A80).
var ErrExchangeRange = errors.New("spd: exchange out of range")

// Quote computes what amount buys at the rate n/d (SPEC.md 4.11): the
// target t = floor(amount*n/d) and the debit v = ceil(t*d/n) <= amount.
// It fails with ErrExchangeRange when t is 0 or above max.
func Quote(amount int64, n, d uint32, max uint64) (target uint64, debit int64, err error) {
	if amount <= 0 || n == 0 || d == 0 {
		return 0, 0, fmt.Errorf("%w: amount %d at %d/%d", ErrExchangeRange, amount, n, d)
	}
	// amount < 2^63 and n < 2^32: the product fits 95 bits.
	hi, lo := bits.Mul64(uint64(amount), uint64(n))
	if hi >= uint64(d) {
		return 0, 0, fmt.Errorf("%w: target above 2^64", ErrExchangeRange)
	}
	t, _ := bits.Div64(hi, lo, uint64(d))
	if t == 0 || t > max {
		return 0, 0, fmt.Errorf("%w: target %d of 1..%d", ErrExchangeRange, t, max)
	}
	// v = ceil(t*d/n); t*d <= amount*n, so v <= amount.
	hi, lo = bits.Mul64(t, uint64(d))
	v, rem := bits.Div64(hi, lo, uint64(n))
	if rem != 0 {
		v++
	}
	return t, int64(v), nil
}

// QuoteBig is Quote in arbitrary precision, for checking Quote.
func QuoteBig(amount int64, n, d uint32) (target, debit *big.Int) {
	t := new(big.Int).Mul(big.NewInt(amount), big.NewInt(int64(n)))
	t.Quo(t, big.NewInt(int64(d)))
	v := new(big.Int).Mul(t, big.NewInt(int64(d)))
	v.Add(v, big.NewInt(int64(n)-1))
	v.Quo(v, big.NewInt(int64(n)))
	return t, v
}

// TargetLimit is the largest target an exchange of kind k may reach from
// uses: 2^62 minor units of another currency, or the uses that fit 4 bytes.
func TargetLimit(k ExchangeKind, uses uint32) uint64 {
	if k == ExchangeUses {
		return maxUses - uint64(uses)
	}
	return 1 << 62
}

// ExchangeRequest is EXCHANGE's parameters.
type ExchangeRequest struct {
	Kind     ExchangeKind
	Amount   int64 // offered, in the device's currency
	Currency uint16
	Time     time.Time
	Rate     []byte // DF77: the host-signed rate
	Nonce    []byte // 9F37: the terminal's nonce, optional (SPD-PAY-8)
}

// Exchange builds the EXCHANGE command.
func Exchange(r ExchangeRequest) apdu.Command {
	var b builder
	b.amount(TagAmount, r.Amount)
	b.u(TagCurrency, 2, uint64(r.Currency))
	b.time(TagTime, r.Time)
	b.Add(TagExchangeRate, r.Rate)
	b.opt(TagTerminalNonce, r.Nonce)
	return proprietary(INSExchange, byte(r.Kind), 0, b.must(), apdu.MaxShortLe)
}

// ParseExchangeRequest decodes EXCHANGE's P1, P2 and data field.
func ParseExchangeRequest(p1, p2 byte, data []byte) (ExchangeRequest, error) {
	if p2 != 0 || !ExchangeKind(p1).Valid() {
		return ExchangeRequest{}, ErrBadP1P2
	}
	f, err := parseFields(data, TagAmount, TagCurrency, TagTime, TagExchangeRate, TagTerminalNonce)
	if err != nil {
		return ExchangeRequest{}, err
	}
	if err := f.require(TagAmount, TagCurrency, TagTime, TagExchangeRate); err != nil {
		return ExchangeRequest{}, err
	}
	r := ExchangeRequest{Kind: ExchangeKind(p1)}
	if r.Amount, err = f.amount(TagAmount); err != nil {
		return ExchangeRequest{}, err
	}
	if r.Amount == 0 {
		return ExchangeRequest{}, malformed("exchange of amount 0")
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return ExchangeRequest{}, err
	}
	r.Currency = uint16(cur)
	if r.Time, err = f.time(TagTime); err != nil {
		return ExchangeRequest{}, err
	}
	r.Rate = bytes.Clone(f.val(TagExchangeRate))
	if err := CheckRateForm(r.Rate); err != nil {
		return ExchangeRequest{}, err
	}
	if r.Nonce, err = f.bytes(TagTerminalNonce, 4, 32); err != nil {
		return ExchangeRequest{}, err
	}
	return r, nil
}

// ExchangeResult is the E6 object EXCHANGE answers: the signed result and
// the signed pending record of the exchange.
type ExchangeResult struct {
	Result Result
	Record PendingRecord
}

// Marshal encodes the answer as the E6 object.
func (x ExchangeResult) Marshal() []byte {
	var b builder
	b.AddConstructed(TagExchangeResult, func(in *tlv.Builder) {
		in.Add(TagTransferMedium, x.Result.Envelope)
		obj, _, err := tlv.Next(x.Record.Marshal())
		if err == nil {
			in.AddTLV(obj)
		}
	})
	return b.must()
}

// ParseExchangeResult decodes an E6 object: a result medium of Kind 4 and
// an exchange record, in this order, nothing else.
func ParseExchangeResult(b []byte) (ExchangeResult, error) {
	obj, err := tlv.ParseOne(b)
	if err != nil {
		return ExchangeResult{}, malformed("exchange result: %w", err)
	}
	if obj.Tag != TagExchangeResult {
		return ExchangeResult{}, malformed("exchange result: tag %s, want E6", obj.Tag)
	}
	kids := obj.Children
	if len(kids) != 2 || kids[0].Tag != TagTransferMedium || kids[1].Tag != TagRecord {
		return ExchangeResult{}, malformed("exchange result: want a result medium (DF60) and a record (E1)")
	}
	res, err := ParseResult(kids[0].Value, medium.KindPaymentResult)
	if err != nil {
		return ExchangeResult{}, fmt.Errorf("spd: exchange result: %w", err)
	}
	raw, err := tlv.Encode(kids[1])
	if err != nil {
		return ExchangeResult{}, malformed("exchange result: %w", err)
	}
	rec, err := ParsePendingRecord(raw)
	if err != nil {
		return ExchangeResult{}, fmt.Errorf("spd: exchange result: %w", err)
	}
	if rec.Kind != KindExchange {
		return ExchangeResult{}, malformed("exchange result: a record of kind %v", rec.Kind)
	}
	return ExchangeResult{Result: res, Record: rec}, nil
}

// Verify checks both signatures with the device key pub and that the
// result and the record describe the same exchange.
func (x ExchangeResult) Verify(pub *ecdsa.PublicKey) error {
	if err := x.Result.Verify(pub); err != nil {
		return fmt.Errorf("spd: exchange result: %w", err)
	}
	if err := x.Record.Verify(pub); err != nil {
		return fmt.Errorf("spd: exchange record: %w", err)
	}
	in, r := x.Result.Info(), x.Record
	switch {
	case !x.Result.Success():
		return malformed("exchange result: not a success")
	case !bytes.Equal(in.DeviceID, r.DeviceID):
		return malformed("exchange result: device %X in the result, %X in the record", in.DeviceID, r.DeviceID)
	case in.ATC != r.ATC:
		return malformed("exchange result: ATC %d in the result, %d in the record", in.ATC, r.ATC)
	case in.Amount != r.Amount:
		return malformed("exchange result: amount %d in the result, %d in the record", in.Amount, r.Amount)
	case in.Currency != r.Currency:
		return malformed("exchange result: currency %d in the result, %d in the record", in.Currency, r.Currency)
	case !bytes.Equal(in.Token, r.Token):
		return malformed("exchange result: token differs between result and record")
	case !in.Issued.Equal(r.Time):
		return malformed("exchange result: time %s in the result, %s in the record", in.Issued, r.Time)
	}
	return nil
}

// Exchange sends EXCHANGE and decodes its answer.
func (c *Client) Exchange(ctx context.Context, r ExchangeRequest) (ExchangeResult, error) {
	data, err := c.Do(ctx, Exchange(r))
	if err != nil {
		return ExchangeResult{}, err
	}
	return ParseExchangeResult(data)
}
