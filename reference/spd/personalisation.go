package spd

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/tlv"
)

// Issuer-signed data (SPEC.md SPD-KEY-3): body || 9F45 signature, where the
// signature is ECDSA-SHA256 (DER) over
//
//	"SPDLAB-ISS1" || INS (1) || DeviceID (8) || body
//
// The INS binds the order to one command, the device ID to one device.
const issuerDomain = "SPDLAB-ISS1"

func issuerDigest(ins INS, deviceID, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(issuerDomain))
	h.Write([]byte{byte(ins)})
	h.Write(deviceID)
	h.Write(body)
	return h.Sum(nil)
}

// SealIssuerData signs body for command ins on device deviceID and returns
// the command data field body || 9F45 signature.
func SealIssuerData(key *ecdsa.PrivateKey, ins INS, deviceID, body []byte) ([]byte, error) {
	if key == nil {
		return nil, errors.New("spd: no issuer key")
	}
	// Deterministic ECDSA (RFC 6979): an order signs to the same bytes every
	// time, so the known-answer vectors (SPEC.md Annex A) rebuild exactly.
	sig, err := key.Sign(nil, issuerDigest(ins, deviceID, body), crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("spd: signing %s: %w", ins, err)
	}
	var b builder
	b.Add(TagSignature, sig)
	return append(bytes.Clone(body), b.must()...), nil
}

// OpenIssuerData splits data into body and signature and verifies the
// signature with pub. A malformed field wraps ErrMalformed; a signature
// that does not verify is ErrBadSignature.
func OpenIssuerData(pub *ecdsa.PublicKey, ins INS, deviceID, data []byte) ([]byte, error) {
	rest := data
	var last tlv.TLV
	bodyLen := 0
	for len(rest) > 0 {
		obj, r, err := tlv.Next(rest)
		if err != nil {
			return nil, malformed("%v", err)
		}
		if len(r) == 0 {
			last = obj
			bodyLen = len(data) - len(rest)
		}
		rest = r
	}
	if last.Tag != TagSignature || len(last.Value) == 0 {
		return nil, malformed("issuer data does not end with a signature (9F45)")
	}
	body := data[:bodyLen]
	if pub == nil || !ecdsa.VerifyASN1(pub, issuerDigest(ins, deviceID, body), last.Value) {
		return nil, ErrBadSignature
	}
	return body, nil
}

// Limits are the offline risk limits (SPEC.md section 6, SPD-LED-3).
// A zero MaxPayment or MaxOfflineAge means no such limit; a zero
// MaxOfflineCount allows no offline payment at all.
type Limits struct {
	MaxPayment      int64         // largest single payment, any mode
	MaxPending      int64         // largest sum of unacknowledged offline payment records
	MaxOfflineCount int           // most unacknowledged offline payment records
	MaxOfflineAge   time.Duration // longest time since the last sync for an offline payment
}

func (l Limits) encode() []byte {
	var b builder
	b.amount(TagMaxPayment, l.MaxPayment)
	b.amount(TagMaxPending, l.MaxPending)
	c := l.MaxOfflineCount
	if c < 0 {
		c = 0
	}
	if c > 0xFFFF {
		c = 0xFFFF
	}
	b.u(TagMaxOfflineCount, 2, uint64(c))
	age := int64(l.MaxOfflineAge / time.Second)
	if age < 0 {
		age = 0
	}
	if age > 0xFFFFFFFF {
		age = 0xFFFFFFFF
	}
	b.u(TagMaxOfflineAge, 4, uint64(age))
	return b.must()
}

// Marshal encodes the limits as the value of DF50.
func (l Limits) Marshal() []byte { return l.encode() }

// ParseLimits decodes the value of DF50.
func ParseLimits(v []byte) (Limits, error) {
	f, err := parseFields(v, TagMaxPayment, TagMaxPending, TagMaxOfflineCount, TagMaxOfflineAge)
	if err != nil {
		return Limits{}, err
	}
	if err := f.require(TagMaxPayment, TagMaxPending, TagMaxOfflineCount, TagMaxOfflineAge); err != nil {
		return Limits{}, err
	}
	var l Limits
	if l.MaxPayment, err = f.amount(TagMaxPayment); err != nil {
		return Limits{}, err
	}
	if l.MaxPending, err = f.amount(TagMaxPending); err != nil {
		return Limits{}, err
	}
	c, err := f.uint(TagMaxOfflineCount, 2)
	if err != nil {
		return Limits{}, err
	}
	l.MaxOfflineCount = int(c)
	age, err := f.uint(TagMaxOfflineAge, 4)
	if err != nil {
		return Limits{}, err
	}
	l.MaxOfflineAge = time.Duration(age) * time.Second
	return l, nil
}

// RegionAdjustment changes the amount of a payment made in a region (C18):
// BasisPoints/10000 of the amount is added (negative: a discount).
type RegionAdjustment struct {
	Region      uint16
	BasisPoints int16
}

// Profile is what an issuer loads into a device at PERSONALISE (SPEC.md
// section 4.3).
type Profile struct {
	DeviceID        []byte           // 8 bytes
	DevicePublicKey *ecdsa.PublicKey // from INITIALISE; the issuer certifies it
	Certificate     []byte           // X.509 DER; set by the issuer, read back by the device
	Currency        uint16
	Balance         int64
	Uses            uint32
	Account         []byte // designated account, 1..32 bytes, never output by the device
	AccountToken    []byte // 16 bytes standing for the account (C20, C24)
	PIN             string // 4..12 digits
	PUK             string // 8..16 digits
	PINTryLimit     int    // 1..15
	BioTemplate     []byte // 16 bytes, optional
	BioThreshold    uint32 // largest accepted squared distance
	Limits          Limits
	Tier            uint8     // membership tier 0..3
	TierDiscounts   [4]uint16 // basis points per tier
	Regions         []uint16  // allowed regions; empty: anywhere
	Adjustments     []RegionAdjustment
	HostPublicKey   *ecdsa.PublicKey // nil: the CA key signs host orders
	TestSample      bool             // DF5F 01: the CA may return the device to blank (TEST ERASE)
	// HostChecks (DF74) are the checks the issuer's host must assert before
	// a payment of at least HostThreshold (DF75; SPEC.md 4.10); 0: none.
	HostChecks    HostChecks
	HostThreshold int64
	Time          time.Time // personalisation time; starts the sync clock
}

func digits(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Marshal encodes the profile body (without the issuer signature).
func (p Profile) Marshal() ([]byte, error) {
	switch {
	case len(p.DeviceID) != DeviceIDLen:
		return nil, fmt.Errorf("spd: profile device ID of %d bytes, want %d", len(p.DeviceID), DeviceIDLen)
	case len(p.Certificate) == 0:
		return nil, errors.New("spd: profile without a certificate")
	case len(p.Account) < 1 || len(p.Account) > 32:
		return nil, errors.New("spd: profile account must be 1..32 bytes")
	case len(p.AccountToken) != TokenLen:
		return nil, fmt.Errorf("spd: profile account token must be %d bytes", TokenLen)
	case !digits(p.PIN, 4, 12):
		return nil, errors.New("spd: profile PIN must be 4..12 digits")
	case !digits(p.PUK, 8, 16):
		return nil, errors.New("spd: profile PUK must be 8..16 digits")
	case p.PINTryLimit < 1 || p.PINTryLimit > 15:
		return nil, errors.New("spd: profile PIN try limit must be 1..15")
	case len(p.BioTemplate) != 0 && len(p.BioTemplate) != BioTemplateLen:
		return nil, fmt.Errorf("spd: biometric template must be %d bytes", BioTemplateLen)
	case p.Tier > 3:
		return nil, errors.New("spd: tier must be 0..3")
	case p.Balance < 0:
		return nil, errors.New("spd: negative balance")
	}
	var b builder
	b.Add(TagCertificate, p.Certificate)
	b.u(TagCurrency, 2, uint64(p.Currency))
	b.amount(TagBalance, p.Balance)
	b.u(TagUses, 4, uint64(p.Uses))
	b.Add(TagAccount, p.Account)
	b.Add(TagToken, p.AccountToken)
	b.AddString(TagPIN, p.PIN)
	b.AddString(TagPUK, p.PUK)
	b.u(TagPINTryLimit, 1, uint64(p.PINTryLimit))
	if len(p.BioTemplate) > 0 {
		b.Add(TagBioTemplate, p.BioTemplate)
		b.u(TagBioThreshold, 4, uint64(p.BioThreshold))
	}
	b.Add(TagLimits, p.Limits.encode())
	b.u(TagTier, 1, uint64(p.Tier))
	disc := make([]byte, 8)
	for i, d := range p.TierDiscounts {
		if d > 10000 {
			return nil, errors.New("spd: tier discount above 10000 basis points")
		}
		binary.BigEndian.PutUint16(disc[2*i:], d)
	}
	b.Add(TagTierDiscounts, disc)
	if len(p.Regions) > 0 {
		r := make([]byte, 2*len(p.Regions))
		for i, v := range p.Regions {
			binary.BigEndian.PutUint16(r[2*i:], v)
		}
		b.Add(TagRegions, r)
	}
	if len(p.Adjustments) > 0 {
		r := make([]byte, 4*len(p.Adjustments))
		for i, a := range p.Adjustments {
			binary.BigEndian.PutUint16(r[4*i:], a.Region)
			binary.BigEndian.PutUint16(r[4*i+2:], uint16(a.BasisPoints))
		}
		b.Add(TagRegionAdjust, r)
	}
	if p.HostPublicKey != nil {
		pk, err := p.HostPublicKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("spd: host key: %w", err)
		}
		b.Add(TagHostPublicKey, pk)
	}
	if p.TestSample {
		b.u(TagTestSample, 1, 1)
	}
	if p.HostChecks != 0 {
		if !p.HostChecks.Valid() {
			return nil, fmt.Errorf("spd: profile host checks %s out of 1..7", p.HostChecks)
		}
		b.u(TagHostChecks, 1, uint64(p.HostChecks))
		if p.HostThreshold > 0 {
			b.amount(TagHostThreshold, p.HostThreshold)
		}
	} else if p.HostThreshold != 0 {
		return nil, errors.New("spd: profile host threshold without host checks")
	}
	b.time(TagTime, p.Time)
	return b.Bytes()
}

// ParseProfile decodes a PERSONALISE body (after OpenIssuerData). DeviceID
// and DevicePublicKey are left for the device to fill from its own state.
func ParseProfile(body []byte) (Profile, error) {
	f, err := parseFields(body, TagCertificate, TagCurrency, TagBalance, TagUses, TagAccount, TagToken,
		TagPIN, TagPUK, TagPINTryLimit, TagBioTemplate, TagBioThreshold, TagLimits, TagTier,
		TagTierDiscounts, TagRegions, TagRegionAdjust, TagHostPublicKey, TagTestSample, TagHostChecks,
		TagHostThreshold, TagTime)
	if err != nil {
		return Profile{}, err
	}
	if err := f.require(TagCertificate, TagCurrency, TagBalance, TagUses, TagAccount, TagToken, TagPIN,
		TagPUK, TagPINTryLimit, TagLimits, TagTime); err != nil {
		return Profile{}, err
	}
	var p Profile
	if p.Certificate, err = f.bytes(TagCertificate, 1, 4096); err != nil {
		return Profile{}, err
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return Profile{}, err
	}
	p.Currency = uint16(cur)
	if p.Balance, err = f.amount(TagBalance); err != nil {
		return Profile{}, err
	}
	uses, err := f.uint(TagUses, 4)
	if err != nil {
		return Profile{}, err
	}
	p.Uses = uint32(uses)
	if p.Account, err = f.bytes(TagAccount, 1, 32); err != nil {
		return Profile{}, err
	}
	if p.AccountToken, err = f.bytes(TagToken, TokenLen, TokenLen); err != nil {
		return Profile{}, err
	}
	p.PIN, p.PUK = string(f.val(TagPIN)), string(f.val(TagPUK))
	if !digits(p.PIN, 4, 12) || !digits(p.PUK, 8, 16) {
		return Profile{}, malformed("profile PIN or PUK not digits of the allowed length")
	}
	tries, err := f.uint(TagPINTryLimit, 1)
	if err != nil {
		return Profile{}, err
	}
	if tries < 1 || tries > 15 {
		return Profile{}, malformed("PIN try limit %d out of 1..15", tries)
	}
	p.PINTryLimit = int(tries)
	if f.has(TagBioTemplate) != f.has(TagBioThreshold) {
		return Profile{}, malformed("biometric template and threshold go together")
	}
	if p.BioTemplate, err = f.bytes(TagBioTemplate, BioTemplateLen, BioTemplateLen); err != nil {
		return Profile{}, err
	}
	th, err := f.uint(TagBioThreshold, 4)
	if err != nil {
		return Profile{}, err
	}
	p.BioThreshold = uint32(th)
	if p.Limits, err = ParseLimits(f.val(TagLimits)); err != nil {
		return Profile{}, err
	}
	tier, err := f.uint(TagTier, 1)
	if err != nil {
		return Profile{}, err
	}
	if tier > 3 {
		return Profile{}, malformed("tier %d out of 0..3", tier)
	}
	p.Tier = uint8(tier)
	if v, ok := f.get(TagTierDiscounts); ok {
		if len(v) != 8 {
			return Profile{}, malformed("tier discounts of %d bytes, want 8", len(v))
		}
		for i := range p.TierDiscounts {
			p.TierDiscounts[i] = binary.BigEndian.Uint16(v[2*i:])
			if p.TierDiscounts[i] > 10000 {
				return Profile{}, malformed("tier discount above 10000 basis points")
			}
		}
	}
	if v, ok := f.get(TagRegions); ok {
		if len(v) == 0 || len(v)%2 != 0 || len(v) > 64 {
			return Profile{}, malformed("regions of %d bytes", len(v))
		}
		for i := 0; i < len(v); i += 2 {
			p.Regions = append(p.Regions, binary.BigEndian.Uint16(v[i:]))
		}
	}
	if v, ok := f.get(TagRegionAdjust); ok {
		if len(v) == 0 || len(v)%4 != 0 || len(v) > 128 {
			return Profile{}, malformed("region adjustments of %d bytes", len(v))
		}
		for i := 0; i < len(v); i += 4 {
			a := RegionAdjustment{Region: binary.BigEndian.Uint16(v[i:]), BasisPoints: int16(binary.BigEndian.Uint16(v[i+2:]))}
			if a.BasisPoints < -10000 {
				return Profile{}, malformed("region adjustment below -10000 basis points")
			}
			p.Adjustments = append(p.Adjustments, a)
		}
	}
	if v, ok := f.get(TagHostPublicKey); ok {
		if p.HostPublicKey, err = ParsePublicKey(v); err != nil {
			return Profile{}, err
		}
	}
	if v, ok := f.get(TagTestSample); ok {
		if len(v) != 1 || v[0] > 1 {
			return Profile{}, malformed("test sample flag must be one byte 00 or 01")
		}
		p.TestSample = v[0] == 1
	}
	if f.has(TagHostThreshold) && !f.has(TagHostChecks) {
		return Profile{}, malformed("host threshold (DF75) without host checks (DF74)")
	}
	hc, err := f.uint(TagHostChecks, 1)
	if err != nil {
		return Profile{}, err
	}
	if p.HostChecks = HostChecks(hc); f.has(TagHostChecks) && !p.HostChecks.Valid() {
		return Profile{}, malformed("host checks %02X out of 1..7", hc)
	}
	if p.HostThreshold, err = f.amount(TagHostThreshold); err != nil {
		return Profile{}, err
	}
	if p.Time, err = f.time(TagTime); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// ParsePublicKey decodes an uncompressed P-256 point (65 bytes).
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		return nil, malformed("public key: %v", err)
	}
	return pub, nil
}

// PublicKeyBytes encodes pub as an uncompressed point.
func PublicKeyBytes(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		return nil
	}
	return b
}

// DeviceIDString renders a device ID as its certificate names it.
func DeviceIDString(id []byte) string { return strings.ToUpper(hex.EncodeToString(id)) }

// VerifyDeviceCertificate checks that der is a device certificate signed
// by the issuer CA key ca (SPD-KEY-2) and returns the device public key and
// the device ID it names.
func VerifyDeviceCertificate(der []byte, ca *ecdsa.PublicKey) (*ecdsa.PublicKey, []byte, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("spd: device certificate: %w", err)
	}
	if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		return nil, nil, fmt.Errorf("spd: device certificate signed with %s, want ECDSA-SHA256", cert.SignatureAlgorithm)
	}
	digest := sha256.Sum256(cert.RawTBSCertificate)
	if ca == nil || !ecdsa.VerifyASN1(ca, digest[:], cert.Signature) {
		return nil, nil, fmt.Errorf("%w: device certificate not signed by the issuer CA", ErrBadSignature)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, errors.New("spd: device certificate does not hold a P-256 key")
	}
	id, err := hex.DecodeString(cert.Subject.SerialNumber)
	if err != nil || len(id) != DeviceIDLen {
		return nil, nil, errors.New("spd: device certificate subject serialNumber is not a device ID")
	}
	return pub, id, nil
}
