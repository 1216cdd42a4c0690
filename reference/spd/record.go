package spd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/spdlab/spdlab/reference/tlv"
)

// PendingRecord is one entry of the device's pending ledger as READ PENDING
// exports it for settlement (C4, C7). The backend settles it once, keyed by
// (DeviceID, ATC); the device drops it when an ACKNOWLEDGE names its ATC.
//
// Wire format (SPEC.md section 8), a constructed object E1 whose children
// come in this order; 9F02 is always present (also when 0), DF03 is
// always written by a device (a reader accepts a record without it as made
// under the account), DF09 and DF07 only for payment kinds, 9F37 exactly for
// payment kinds (SPD-PAY-8), DF0A and DF08 exactly for transfer kinds:
//
//	tag   len   field      content
//	DF02  8     DeviceID   the device that recorded it
//	9F36  4     ATC        the device's transaction counter for it
//	DF28  1     Kind       PaymentKind
//	DF29  1     Mode       00 online, 01 offline
//	9F02  8     Amount     minor units, after adjustment (C18)
//	5F2A  2     Currency   ISO 4217 numeric
//	DF03  16    Token      token paid under; never the raw account (C24)
//	9A    4     Time       terminal time of the payment, Unix seconds
//	DF09  1..32 Payee      payee account or device (optional)
//	DF07  1..32 PayeeNonce payee nonce or order reference of the PAY (optional)
//	9F37  4..32 Nonce      payment nonce: the terminal's, or the device's own
//	DF78  1     Exchange   what an exchange bought (kind 07 only)
//	DF79  2     TargetCurrency the currency an exchange bought (kind 07, DF78 02)
//	DF7A  4     RateNumerator  the exchange rate's n (kind 07 only)
//	DF7B  4     RateDenominator the exchange rate's d (kind 07 only)
//	DF7C  8     Target     uses or minor units an exchange bought (kind 07 only)
//	DF0A  8     Serial     transfer serial (transfer kinds only)
//	DF08  8     Counterpart payer (transfer-in) or payee (transfer-out) device (optional)
//	9F45  var   Signature  device key, ECDSA-SHA256 (DER) over
//	                       "SPDLAB-PR1" || the bytes of the children above
type PendingRecord struct {
	DeviceID    []byte
	ATC         uint32
	Kind        PaymentKind
	Mode        Mode
	Amount      int64
	Currency    uint16
	Token       []byte
	Time        time.Time
	Payee       []byte
	PayeeNonce  []byte
	Nonce       []byte
	Serial      uint64
	Counterpart []byte
	// The exchange (kind 07, SPEC.md 4.11): what it bought, at which rate.
	Exchange        ExchangeKind
	TargetCurrency  uint16
	RateNumerator   uint32
	RateDenominator uint32
	Target          uint64
	Signature       []byte
}

const recordDomain = "SPDLAB-PR1"

// TagCounterpart is the other device of a transfer record.
const TagCounterpart tlv.Tag = 0xDF08

// Body returns the signed part of the record: its children without the
// signature.
func (r PendingRecord) Body() []byte {
	var b builder
	b.Add(TagDeviceID, r.DeviceID)
	b.u(TagATC, 4, uint64(r.ATC))
	b.u(TagRecordKind, 1, uint64(r.Kind))
	b.u(TagRecordMode, 1, uint64(r.Mode))
	b.amount(TagAmount, r.Amount)
	b.u(TagCurrency, 2, uint64(r.Currency))
	b.opt(TagToken, r.Token)
	b.time(TagTime, r.Time)
	b.opt(TagPayee, r.Payee)
	b.opt(TagPayeeNonce, r.PayeeNonce)
	b.opt(TagTerminalNonce, r.Nonce)
	if r.Kind == KindExchange {
		b.u(TagExchangeKind, 1, uint64(r.Exchange))
		if r.Exchange == ExchangeCurrency {
			b.u(TagTargetCurrency, 2, uint64(r.TargetCurrency))
		}
		b.u(TagRateNumerator, 4, uint64(r.RateNumerator))
		b.u(TagRateDenom, 4, uint64(r.RateDenominator))
		b.u(TagExchangeTarget, 8, r.Target)
	}
	if r.Serial != 0 {
		b.u(TagSerial, 8, r.Serial)
	}
	b.opt(TagCounterpart, r.Counterpart)
	return b.must()
}

// Digest is the SHA-256 the device signs for the record.
func (r PendingRecord) Digest() []byte {
	h := sha256.New()
	h.Write([]byte(recordDomain))
	h.Write(r.Body())
	return h.Sum(nil)
}

// Marshal encodes the record with its signature.
func (r PendingRecord) Marshal() []byte {
	var b builder
	body := r.Body()
	var sig builder
	sig.Add(TagSignature, r.Signature)
	b.Add(TagRecord, append(body, sig.must()...))
	return b.must()
}

// Sign sets r.Signature with the device key.
func (r *PendingRecord) Sign(key *ecdsa.PrivateKey) error {
	sig, err := ecdsa.SignASN1(rand.Reader, key, r.Digest())
	if err != nil {
		return err
	}
	r.Signature = sig
	return nil
}

// ErrBadSignature is returned by Verify for a record, medium or issuer
// order whose signature does not verify.
var ErrBadSignature = errors.New("spd: signature does not verify")

// Verify checks the record's signature with the device's public key (from
// its certificate).
func (r PendingRecord) Verify(pub *ecdsa.PublicKey) error {
	if pub == nil || len(r.Signature) == 0 || !ecdsa.VerifyASN1(pub, r.Digest(), r.Signature) {
		return ErrBadSignature
	}
	return nil
}

// ParsePendingRecord decodes a record as READ PENDING returns it. It accepts
// only the canonical encoding Marshal produces, so that the signed bytes
// are the ones received.
func ParsePendingRecord(b []byte) (PendingRecord, error) {
	obj, err := tlv.ParseOne(b)
	if err != nil {
		return PendingRecord{}, malformed("pending record: %w", err)
	}
	if obj.Tag != TagRecord {
		return PendingRecord{}, malformed("pending record: tag %s, want E1", obj.Tag)
	}
	f, err := parseFields(obj.Value, TagDeviceID, TagATC, TagRecordKind, TagRecordMode, TagAmount,
		TagCurrency, TagToken, TagTime, TagPayee, TagPayeeNonce, TagTerminalNonce,
		TagExchangeKind, TagTargetCurrency, TagRateNumerator, TagRateDenom, TagExchangeTarget,
		TagSerial, TagCounterpart, TagSignature)
	if err != nil {
		return PendingRecord{}, err
	}
	if err := f.require(TagDeviceID, TagATC, TagRecordKind, TagRecordMode, TagAmount, TagCurrency, TagTime, TagSignature); err != nil {
		return PendingRecord{}, err
	}
	var r PendingRecord
	if r.DeviceID, err = f.bytes(TagDeviceID, DeviceIDLen, DeviceIDLen); err != nil {
		return PendingRecord{}, err
	}
	atc, err := f.uint(TagATC, 4)
	if err != nil {
		return PendingRecord{}, err
	}
	r.ATC = uint32(atc)
	kind, err := f.uint(TagRecordKind, 1)
	if err != nil {
		return PendingRecord{}, err
	}
	r.Kind = PaymentKind(kind)
	if r.Kind < KindBalance || r.Kind > KindExchange {
		return PendingRecord{}, malformed("pending record: unknown kind %d", kind)
	}
	mode, err := f.uint(TagRecordMode, 1)
	if err != nil {
		return PendingRecord{}, err
	}
	r.Mode = Mode(mode)
	if r.Mode != ModeOnline && r.Mode != ModeOffline {
		return PendingRecord{}, malformed("pending record: unknown mode %d", mode)
	}
	if r.Amount, err = f.amount(TagAmount); err != nil {
		return PendingRecord{}, err
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return PendingRecord{}, err
	}
	r.Currency = uint16(cur)
	if r.Token, err = f.bytes(TagToken, 1, 64); err != nil {
		return PendingRecord{}, err
	}
	if r.Time, err = f.time(TagTime); err != nil {
		return PendingRecord{}, err
	}
	if r.Payee, err = f.bytes(TagPayee, 1, 32); err != nil {
		return PendingRecord{}, err
	}
	if r.PayeeNonce, err = f.bytes(TagPayeeNonce, 1, 32); err != nil {
		return PendingRecord{}, err
	}
	if r.Nonce, err = f.bytes(TagTerminalNonce, 4, 32); err != nil {
		return PendingRecord{}, err
	}
	if r.Serial, err = f.uint(TagSerial, 8); err != nil {
		return PendingRecord{}, err
	}
	if r.Counterpart, err = f.bytes(TagCounterpart, DeviceIDLen, DeviceIDLen); err != nil {
		return PendingRecord{}, err
	}
	// SPEC.md section 8: serial and other device for transfer records
	// (kinds 04-06) only, the payee for payment records (01-03) only.
	if transfer := r.Kind.IsTransfer(); transfer != (r.Serial != 0) || transfer != (len(r.Counterpart) != 0) {
		return PendingRecord{}, malformed("pending record: kind %d with serial (DF0A) %t, other device (DF08) %t",
			kind, r.Serial != 0, len(r.Counterpart) != 0)
	}
	if !r.Kind.IsPayment() && (len(r.Payee) != 0 || len(r.PayeeNonce) != 0) {
		return PendingRecord{}, malformed("pending record: kind %d with a payee (DF09) or payee nonce (DF07)", kind)
	}
	if err := r.parseExchange(f); err != nil {
		return PendingRecord{}, err
	}
	// SPD-PAY-8: a payment or exchange record always binds a nonce, a
	// transfer record never.
	if payment := r.Kind.HasNonce(); payment != (len(r.Nonce) != 0) {
		return PendingRecord{}, malformed("pending record: kind %d with payment nonce (9F37) %t", kind, len(r.Nonce) != 0)
	}
	if r.Signature, err = f.bytes(TagSignature, 8, 80); err != nil {
		return PendingRecord{}, err
	}
	if !bytes.Equal(r.Marshal(), b) {
		return PendingRecord{}, malformed("pending record: not in canonical form")
	}
	return r, nil
}

// parseExchange reads the exchange fields of a record: exactly those of
// kind 07 (SPEC.md section 8), none for any other kind.
func (r *PendingRecord) parseExchange(f fields) error {
	if r.Kind != KindExchange {
		for _, t := range []tlv.Tag{TagExchangeKind, TagTargetCurrency, TagRateNumerator, TagRateDenom, TagExchangeTarget} {
			if f.has(t) {
				return malformed("pending record: kind %v with tag %s", r.Kind, t)
			}
		}
		return nil
	}
	if err := f.require(TagExchangeKind, TagRateNumerator, TagRateDenom, TagExchangeTarget); err != nil {
		return err
	}
	k, err := f.uint(TagExchangeKind, 1)
	if err != nil {
		return err
	}
	if r.Exchange = ExchangeKind(k); !r.Exchange.Valid() {
		return malformed("pending record: exchange kind %02X", k)
	}
	if (r.Exchange == ExchangeCurrency) != f.has(TagTargetCurrency) {
		return malformed("pending record: exchange into %v with currency bought (DF79) %t", r.Exchange, f.has(TagTargetCurrency))
	}
	tc, err := f.uint(TagTargetCurrency, 2)
	if err != nil {
		return err
	}
	n, err := f.uint(TagRateNumerator, 4)
	if err != nil {
		return err
	}
	d, err := f.uint(TagRateDenom, 4)
	if err != nil {
		return err
	}
	t, err := f.uint(TagExchangeTarget, 8)
	if err != nil {
		return err
	}
	if n == 0 || d == 0 || t == 0 || t > 1<<62 {
		return malformed("pending record: exchange rate %d/%d, target %d", n, d, t)
	}
	r.TargetCurrency, r.RateNumerator, r.RateDenominator, r.Target = uint16(tc), uint32(n), uint32(d), t
	return nil
}
