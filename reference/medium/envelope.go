package medium

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spdlab/spdlab/reference/tlv"
)

// ErrBadSignature is returned, wrapped, when a medium's signature does not
// verify under the key it is checked with, or is not a DER ECDSA signature.
// A terminal that sees it refuses the medium; it never retries with it.
var ErrBadSignature = errors.New("medium: bad signature")

// Medium is a parsed coded medium. Signed is the exact byte string the
// signature covers (tags 85 and 61 with their lengths); Signature is the
// value of tag 9F45.
type Medium struct {
	Info      ServiceInfo
	Signed    []byte
	Signature []byte
}

// The envelope, every length a BER-TLV definite length:
//
//	tag   value
//	85    "SVL01"                          payload format indicator
//	61    service information objects      see below, any order, each once
//	9F45  ECDSA P-256 signature, ASN.1     over SHA-256 of every byte before
//	      DER (SEQUENCE of r, s)           the 9F45 tag
//
// Objects inside 61 (integers are unsigned big-endian of exactly the size
// given; times are Unix seconds, 0 meaning "not set"):
//
//	tag   size  field        when present
//	DF01  1     Kind         always: 1 stored value, 2 transfer, 3 token, 4 result
//	4F    5-16  AID          when set
//	DF02  8     DeviceID     always
//	DF03  1-64  Token        when set; always for KindToken
//	DF04  8     Balance      always
//	DF05  8     Pending      when not zero
//	DF06  4     Uses         always
//	9F36  4     ATC          always
//	5F24  4     Expiry       always
//	5F2A  2     Currency     always
//	9F02  8     Amount       when not zero; always for KindTransfer
//	DF07  1-64  PayeeNonce   when set
//	DF08  1-64  PayerID      when set; always for KindTransfer
//	DF09  1-64  PayeeID      when set
//	DF0A  8     Serial       when not zero; always for KindTransfer
//	DF0B  var   Controls     when set: a value holding DF0C (4), DF0D (8),
//	                         DF0E (1), each once. DF0B's b6 says primitive,
//	                         so the nested objects are read from its value.
//	DF0F  1     Result       when set; always for KindPaymentResult: 0 or 1
//	DF10  var   Reason       when set, UTF-8
//	9A    4     Issued       always
//	DF11  var   Certificate  when set, X.509 DER
//
// Integers that do not fit their Go field (Balance above MaxInt64) and
// unknown tags are errors: every signed byte must mean something.

const maxID = 64

// field describes one object inside the application template.
type field struct {
	tag  tlv.Tag
	name string
	// size is the exact value length, or 0 for a variable one bounded by
	// minSize..maxSize.
	size, minSize, maxSize int
}

var fields = []field{
	{tag: TagKind, name: "kind", size: 1},
	{tag: TagAID, name: "AID", minSize: 5, maxSize: 16},
	{tag: TagDeviceID, name: "device ID", size: 8},
	{tag: TagToken, name: "token", minSize: 1, maxSize: maxID},
	{tag: TagBalance, name: "balance", size: 8},
	{tag: TagPending, name: "pending", size: 8},
	{tag: TagUses, name: "uses", size: 4},
	{tag: TagATC, name: "ATC", size: 4},
	{tag: TagExpiry, name: "expiry", size: 4},
	{tag: TagCurrency, name: "currency", size: 2},
	{tag: TagAmount, name: "amount", size: 8},
	{tag: TagPayeeNonce, name: "payee nonce", minSize: 1, maxSize: maxID},
	{tag: TagPayerID, name: "payer ID", minSize: 1, maxSize: maxID},
	{tag: TagPayeeID, name: "payee ID", minSize: 1, maxSize: maxID},
	{tag: TagSerial, name: "serial", size: 8},
	{tag: TagTokenControls, name: "token controls", minSize: 1, maxSize: 64},
	{tag: TagResult, name: "result", size: 1},
	{tag: TagReason, name: "reason", minSize: 1, maxSize: 512},
	{tag: TagIssued, name: "issued", size: 4},
	{tag: TagCertificate, name: "certificate", minSize: 1, maxSize: 4096},
}

var controlFields = []field{
	{tag: TagMaxTxns, name: "max transactions", size: 4},
	{tag: TagMaxAmount, name: "max amount", size: 8},
	{tag: TagChannel, name: "channels", size: 1},
}

// fieldName names a tag for error messages: "DF04 (balance)".
func fieldName(tag tlv.Tag) string {
	for _, f := range append(fields, controlFields...) {
		if f.tag == tag {
			return fmt.Sprintf("%s (%s)", tag, f.name)
		}
	}
	switch tag {
	case TagPayloadFormat:
		return "85 (payload format indicator)"
	case TagAppTemplate:
		return "61 (application template)"
	case TagSignature:
		return "9F45 (signature)"
	}
	return tag.String()
}

func unixSeconds(t time.Time, tag tlv.Tag) (uint64, error) {
	if t.IsZero() {
		return 0, nil
	}
	s := t.Unix()
	if s <= 0 || s > math.MaxUint32 {
		return 0, fmt.Errorf("medium: tag %s: time %s outside 1970..2106", fieldName(tag), t.Format(time.RFC3339))
	}
	return uint64(s), nil
}

func nonNegative(v int64, tag tlv.Tag) (uint64, error) {
	if v < 0 {
		return 0, fmt.Errorf("medium: tag %s: negative value %d", fieldName(tag), v)
	}
	return uint64(v), nil
}

// check validates info against the per-kind rules before encoding.
func (info *ServiceInfo) check() error {
	switch info.Kind {
	case KindStoredValue, KindTransfer, KindToken, KindPaymentResult:
	default:
		return fmt.Errorf("medium: unknown kind %d in tag %s", info.Kind, fieldName(TagKind))
	}
	if len(info.DeviceID) != 8 {
		return fmt.Errorf("medium: tag %s: want 8 bytes, got %d", fieldName(TagDeviceID), len(info.DeviceID))
	}
	switch info.Kind {
	case KindTransfer:
		switch {
		case info.Amount <= 0:
			return fmt.Errorf("medium: transfer medium needs a positive amount (tag %s)", fieldName(TagAmount))
		case len(info.PayerID) == 0:
			return fmt.Errorf("medium: transfer medium needs the payer (tag %s)", fieldName(TagPayerID))
		case info.Serial == 0:
			return fmt.Errorf("medium: transfer medium needs a serial (tag %s)", fieldName(TagSerial))
		}
	case KindToken:
		if len(info.Token) == 0 {
			return fmt.Errorf("medium: token medium needs a token (tag %s)", fieldName(TagToken))
		}
	case KindPaymentResult:
		if info.Result == nil {
			return fmt.Errorf("medium: payment result medium needs a result (tag %s)", fieldName(TagResult))
		}
	}
	if info.Result != nil && *info.Result != 0 && *info.Result != 1 {
		return fmt.Errorf("medium: tag %s: result %d is neither 0 (success) nor 1 (failure)", fieldName(TagResult), *info.Result)
	}
	if info.Uses < 0 || int64(info.Uses) > math.MaxUint32 {
		return fmt.Errorf("medium: tag %s: %d out of 0..%d", fieldName(TagUses), info.Uses, uint32(math.MaxUint32))
	}
	if info.Reason != "" && !utf8.ValidString(info.Reason) {
		return fmt.Errorf("medium: tag %s: not UTF-8", fieldName(TagReason))
	}
	if c := info.Controls; c != nil && (c.MaxTransactions < 0 || int64(c.MaxTransactions) > math.MaxUint32) {
		return fmt.Errorf("medium: tag %s: %d out of 0..%d", fieldName(TagMaxTxns), c.MaxTransactions, uint32(math.MaxUint32))
	}
	return nil
}

// SignedPart encodes the part of the envelope a signature covers: tag 85
// and the application template 61 holding info. Sign appends the signature
// to it; a device that signs elsewhere uses it directly.
func SignedPart(info ServiceInfo) ([]byte, error) {
	if err := info.check(); err != nil {
		return nil, err
	}
	var errs []error
	u := func(v int64, tag tlv.Tag) uint64 {
		n, err := nonNegative(v, tag)
		errs = append(errs, err)
		return n
	}
	ts := func(t time.Time, tag tlv.Tag) uint64 {
		n, err := unixSeconds(t, tag)
		errs = append(errs, err)
		return n
	}
	var b tlv.Builder
	b.AddString(TagPayloadFormat, PayloadFormat)
	b.AddConstructed(TagAppTemplate, func(b *tlv.Builder) {
		b.AddUint(TagKind, 1, uint64(info.Kind))
		if len(info.AID) > 0 {
			b.Add(TagAID, info.AID)
		}
		b.Add(TagDeviceID, info.DeviceID)
		if len(info.Token) > 0 {
			b.Add(TagToken, info.Token)
		}
		b.AddUint(TagBalance, 8, u(info.Balance, TagBalance))
		if info.Pending != 0 {
			b.AddUint(TagPending, 8, u(info.Pending, TagPending))
		}
		b.AddUint(TagUses, 4, uint64(info.Uses))
		b.AddUint(TagATC, 4, uint64(info.ATC))
		b.AddUint(TagExpiry, 4, ts(info.Expiry, TagExpiry))
		b.AddUint(TagCurrency, 2, uint64(info.Currency))
		if info.Amount != 0 {
			b.AddUint(TagAmount, 8, u(info.Amount, TagAmount))
		}
		for _, o := range []struct {
			tag tlv.Tag
			v   []byte
		}{{TagPayeeNonce, info.PayeeNonce}, {TagPayerID, info.PayerID}, {TagPayeeID, info.PayeeID}} {
			if len(o.v) > 0 {
				b.Add(o.tag, o.v)
			}
		}
		if info.Serial != 0 {
			b.AddUint(TagSerial, 8, info.Serial)
		}
		if c := info.Controls; c != nil {
			var cb tlv.Builder
			cb.AddUint(TagMaxTxns, 4, uint64(c.MaxTransactions))
			cb.AddUint(TagMaxAmount, 8, u(c.MaxAmount, TagMaxAmount))
			cb.AddUint(TagChannel, 1, uint64(c.Channels))
			v, err := cb.Bytes()
			errs = append(errs, err)
			b.Add(TagTokenControls, v)
		}
		if info.Result != nil {
			b.AddUint(TagResult, 1, uint64(*info.Result))
		}
		if info.Reason != "" {
			b.AddString(TagReason, info.Reason)
		}
		b.AddUint(TagIssued, 4, ts(info.Issued, TagIssued))
		if len(info.Certificate) > 0 {
			b.Add(TagCertificate, info.Certificate)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("medium: %w", err)
	}
	if err := checkSizes(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkSizes runs the parser's size rules over freshly encoded bytes, so
// Sign never makes a medium Parse would refuse.
func checkSizes(signed []byte) error {
	list, err := tlv.Parse(signed)
	if err != nil {
		return fmt.Errorf("medium: %w", err)
	}
	_, err = parseInfo(list[1])
	return err
}

// Sign encodes info and signs it with key, which must hold an ECDSA P-256
// private key. It returns the whole envelope.
func Sign(info ServiceInfo, key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("medium: no signing key")
	}
	if err := checkPublic(key.Public()); err != nil {
		return nil, err
	}
	signed, err := SignedPart(info)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(signed)
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("medium: signing: %w", err)
	}
	return Seal(signed, sig)
}

// Seal appends the signature object 9F45 to the signed part.
func Seal(signed, signature []byte) ([]byte, error) {
	var b tlv.Builder
	b.Add(TagSignature, signature)
	sigTLV, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("medium: %w", err)
	}
	return append(bytes.Clone(signed), sigTLV...), nil
}

func checkPublic(pub crypto.PublicKey) error {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("medium: key is %T, want ECDSA P-256", pub)
	}
	if ec == nil || ec.Curve != elliptic.P256() {
		return errors.New("medium: key is not on curve P-256")
	}
	return nil
}

// Parse decodes an envelope. It checks the structure and every field, not
// the signature: call Verify or VerifyCertificate for that. The returned
// slices alias b.
func Parse(b []byte) (*Medium, error) {
	if len(b) == 0 {
		return nil, errors.New("medium: empty input")
	}
	want := []tlv.Tag{TagPayloadFormat, TagAppTemplate, TagSignature}
	var objs [3]tlv.TLV
	rest := b
	sigOffset := 0
	for i, tag := range want {
		if len(rest) == 0 {
			return nil, fmt.Errorf("medium: truncated: tag %s missing after %d bytes", fieldName(tag), len(b))
		}
		if i == 2 {
			sigOffset = len(b) - len(rest)
		}
		o, r, err := tlv.Next(rest)
		if err != nil {
			var se *tlv.SyntaxError
			if errors.As(err, &se) {
				se.Offset += len(b) - len(rest)
			}
			return nil, fmt.Errorf("medium: reading %s: %w", fieldName(tag), err)
		}
		if o.Tag != tag {
			return nil, fmt.Errorf("medium: found tag %s where %s belongs", fieldName(o.Tag), fieldName(tag))
		}
		if i == 0 && string(o.Value) != PayloadFormat {
			return nil, fmt.Errorf("medium: wrong payload format %q in tag 85, want %q", o.Value, PayloadFormat)
		}
		objs[i] = o
		rest = r
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("medium: %d trailing bytes after the signature (9F45)", len(rest))
	}
	if len(objs[2].Value) == 0 {
		return nil, fmt.Errorf("medium: tag %s is empty", fieldName(TagSignature))
	}
	info, err := parseInfo(objs[1])
	if err != nil {
		return nil, err
	}
	return &Medium{Info: info, Signed: b[:sigOffset:sigOffset], Signature: objs[2].Value}, nil
}

// parseInfo reads the application template.
func parseInfo(app tlv.TLV) (ServiceInfo, error) {
	var info ServiceInfo
	seen := map[tlv.Tag]tlv.TLV{}
	for _, o := range app.Children {
		f, ok := lookup(fields, o.Tag)
		if !ok {
			return info, fmt.Errorf("medium: unknown tag %s in the application template (61)", o.Tag)
		}
		if _, dup := seen[o.Tag]; dup {
			return info, fmt.Errorf("medium: tag %s appears twice", fieldName(o.Tag))
		}
		if err := f.checkSize(o.Value); err != nil {
			return info, err
		}
		seen[o.Tag] = o
	}
	for _, tag := range []tlv.Tag{TagKind, TagDeviceID, TagBalance, TagUses, TagATC, TagExpiry, TagCurrency, TagIssued} {
		if _, ok := seen[tag]; !ok {
			return info, fmt.Errorf("medium: tag %s missing from the application template", fieldName(tag))
		}
	}
	be := func(tag tlv.Tag) uint64 {
		o, ok := seen[tag]
		if !ok {
			return 0
		}
		var full [8]byte
		copy(full[8-len(o.Value):], o.Value)
		return binary.BigEndian.Uint64(full[:])
	}
	signed := func(tag tlv.Tag) (int64, error) {
		v := be(tag)
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("medium: tag %s: value %d exceeds %d", fieldName(tag), v, int64(math.MaxInt64))
		}
		return int64(v), nil
	}
	raw := func(tag tlv.Tag) []byte {
		if o, ok := seen[tag]; ok {
			return o.Value
		}
		return nil
	}
	when := func(tag tlv.Tag) time.Time {
		if s := be(tag); s != 0 {
			return time.Unix(int64(s), 0).UTC()
		}
		return time.Time{}
	}
	var err error
	info.Kind = Kind(be(TagKind))
	switch info.Kind {
	case KindStoredValue, KindTransfer, KindToken, KindPaymentResult:
	default:
		return info, fmt.Errorf("medium: unknown kind %d in tag %s", info.Kind, fieldName(TagKind))
	}
	info.AID = raw(TagAID)
	info.DeviceID = raw(TagDeviceID)
	info.Token = raw(TagToken)
	if info.Balance, err = signed(TagBalance); err != nil {
		return info, err
	}
	if info.Pending, err = signed(TagPending); err != nil {
		return info, err
	}
	info.Uses = int(be(TagUses))
	info.ATC = uint32(be(TagATC))
	info.Expiry = when(TagExpiry)
	info.Currency = uint16(be(TagCurrency))
	if info.Amount, err = signed(TagAmount); err != nil {
		return info, err
	}
	info.PayeeNonce = raw(TagPayeeNonce)
	info.PayerID = raw(TagPayerID)
	info.PayeeID = raw(TagPayeeID)
	info.Serial = be(TagSerial)
	if o, ok := seen[TagTokenControls]; ok {
		if info.Controls, err = parseControls(o.Value); err != nil {
			return info, err
		}
	}
	if _, ok := seen[TagResult]; ok {
		r := int(be(TagResult))
		if r > 1 {
			return info, fmt.Errorf("medium: tag %s: result %d is neither 0 (success) nor 1 (failure)", fieldName(TagResult), r)
		}
		info.Result = &r
	}
	if v := raw(TagReason); v != nil {
		if !utf8.Valid(v) {
			return info, fmt.Errorf("medium: tag %s: not UTF-8", fieldName(TagReason))
		}
		info.Reason = string(v)
	}
	info.Issued = when(TagIssued)
	info.Certificate = raw(TagCertificate)
	// Optional fields that are present must not be zero: an encoder omits
	// them then, and a medium has one encoding.
	for _, tag := range []tlv.Tag{TagPending, TagAmount, TagSerial} {
		if _, ok := seen[tag]; ok && be(tag) == 0 {
			return info, fmt.Errorf("medium: tag %s present with value 0 (omit it instead)", fieldName(tag))
		}
	}
	if err := info.check(); err != nil {
		return info, err
	}
	return info, nil
}

func lookup(table []field, tag tlv.Tag) (field, bool) {
	for _, f := range table {
		if f.tag == tag {
			return f, true
		}
	}
	return field{}, false
}

func (f field) checkSize(v []byte) error {
	if f.size != 0 && len(v) != f.size {
		return fmt.Errorf("medium: tag %s: want %d bytes, got %d", fieldName(f.tag), f.size, len(v))
	}
	if f.size == 0 && (len(v) < f.minSize || len(v) > f.maxSize) {
		return fmt.Errorf("medium: tag %s: length %d outside %d..%d", fieldName(f.tag), len(v), f.minSize, f.maxSize)
	}
	return nil
}

func parseControls(v []byte) (*TokenControls, error) {
	list, err := tlv.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("medium: inside tag %s: %w", fieldName(TagTokenControls), err)
	}
	seen := map[tlv.Tag][]byte{}
	for _, o := range list {
		f, ok := lookup(controlFields, o.Tag)
		if !ok {
			return nil, fmt.Errorf("medium: unknown tag %s inside %s", o.Tag, fieldName(TagTokenControls))
		}
		if _, dup := seen[o.Tag]; dup {
			return nil, fmt.Errorf("medium: tag %s appears twice", fieldName(o.Tag))
		}
		if err := f.checkSize(o.Value); err != nil {
			return nil, err
		}
		seen[o.Tag] = o.Value
	}
	for _, f := range controlFields {
		if _, ok := seen[f.tag]; !ok {
			return nil, fmt.Errorf("medium: tag %s missing inside %s", fieldName(f.tag), fieldName(TagTokenControls))
		}
	}
	maxAmount := binary.BigEndian.Uint64(seen[TagMaxAmount])
	if maxAmount > math.MaxInt64 {
		return nil, fmt.Errorf("medium: tag %s: value %d exceeds %d", fieldName(TagMaxAmount), maxAmount, int64(math.MaxInt64))
	}
	return &TokenControls{
		MaxTransactions: int(binary.BigEndian.Uint32(seen[TagMaxTxns])),
		MaxAmount:       int64(maxAmount),
		Channels:        Channel(seen[TagChannel][0]),
	}, nil
}

// ecdsaSignature is the ASN.1 form of an ECDSA signature (SEC 1, 4.1).
type ecdsaSignature struct{ R, S *big.Int }

// Verify checks the medium's signature with the device's public key. A
// failure wraps ErrBadSignature.
func (m *Medium) Verify(pub *ecdsa.PublicKey) error {
	if err := checkPublic(pub); err != nil {
		return err
	}
	return verifyDigest(pub, sha256.Sum256(m.Signed), m.Signature)
}

func verifyDigest(pub *ecdsa.PublicKey, digest [32]byte, sig []byte) error {
	var s ecdsaSignature
	rest, err := asn1.Unmarshal(sig, &s)
	if err != nil || len(rest) != 0 || s.R == nil || s.S == nil || s.R.Sign() <= 0 || s.S.Sign() <= 0 {
		return fmt.Errorf("%w: tag 9F45 is not an ASN.1 DER ECDSA signature", ErrBadSignature)
	}
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return fmt.Errorf("%w: tag 9F45 does not verify over the bytes before it (tampered, or signed by another key)", ErrBadSignature)
	}
	return nil
}

// VerifyCertificate checks the device certificate the medium carries (tag
// DF11): that the issuer CA's key ca signed it, that it holds an ECDSA
// P-256 key, that the medium was issued within its validity, and that its
// key verifies the medium. It returns the certificate.
func VerifyCertificate(m *Medium, ca *ecdsa.PublicKey) (*x509.Certificate, error) {
	if err := checkPublic(ca); err != nil {
		return nil, fmt.Errorf("medium: issuer CA %s", strings.TrimPrefix(err.Error(), "medium: "))
	}
	if len(m.Info.Certificate) == 0 {
		return nil, fmt.Errorf("medium: no device certificate (tag %s)", fieldName(TagCertificate))
	}
	cert, err := x509.ParseCertificate(m.Info.Certificate)
	if err != nil {
		return nil, fmt.Errorf("medium: tag %s: %w", fieldName(TagCertificate), err)
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, fmt.Errorf("medium: device certificate signed with %s, want ECDSA", cert.SignatureAlgorithm)
	}
	h.Write(cert.RawTBSCertificate)
	if !ecdsa.VerifyASN1(ca, h.Sum(nil), cert.Signature) {
		return nil, fmt.Errorf("%w: device certificate (tag DF11) was not signed by the issuer CA", ErrBadSignature)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || checkPublic(pub) != nil {
		return nil, fmt.Errorf("medium: device certificate holds a %T key, want ECDSA P-256", cert.PublicKey)
	}
	// A 9A of 0 parses as the zero time; it is checked as 1970-01-01 like
	// any other time (SPEC.md SPD-MED-6), never skipped.
	iss := m.Info.Issued
	if iss.IsZero() {
		iss = time.Unix(0, 0).UTC()
	}
	if iss.Before(cert.NotBefore) || iss.After(cert.NotAfter) {
		return nil, fmt.Errorf("medium: issued %s, outside the device certificate's validity %s..%s",
			iss.Format(time.RFC3339), cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	if err := m.Verify(pub); err != nil {
		return nil, err
	}
	return cert, nil
}

// Text returns a medium's text form: standard Base64 (RFC 4648, section 4,
// with padding) of the envelope.
func Text(envelope []byte) string { return base64.StdEncoding.EncodeToString(envelope) }

// ParseText decodes a medium's text form. Surrounding white space, as a
// scanner may add, is ignored; anything else that is not Base64 is an error.
func ParseText(s string) (*Medium, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("medium: empty text")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("medium: text is not standard Base64: %w", err)
	}
	return Parse(b)
}
