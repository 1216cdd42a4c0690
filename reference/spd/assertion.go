package spd

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/tlv"
)

// Host assertions (SPEC.md 4.10, SPD-HVA-1..3): the issuer's host tells
// the device which checks of C33 it made (SMS code, identity question,
// consent) for one payment, signed with the host key.

// Tags of host assertions and of the profile's verification requirement.
const (
	TagHostChecks    tlv.Tag = 0xDF74 // profile: checks required; assertion: checks passed
	TagHostThreshold tlv.Tag = 0xDF75 // profile: the amount from which DF74 applies
	TagHostAssertion tlv.Tag = 0xDF76 // PAY and PRESENT CODE: the assertion
)

// INSHostAssertion is the signing domain of a host assertion (SPEC.md
// 4.10). No command has this INS.
const INSHostAssertion INS = 0x7A

// MaxAssertionLen bounds DF76.
const MaxAssertionLen = 255

// MaxAssertionLife is the longest validity a host gives an assertion.
const MaxAssertionLife = 5 * time.Minute

// HostChecks is a bit set of the checks of C33 a host makes.
type HostChecks uint8

// The checks a host assertion names.
const (
	CheckSMS      HostChecks = 0x01 // an SMS code sent to the registered phone, answered right
	CheckIdentity HostChecks = 0x02 // the identity question the issuer registered, answered right
	CheckConsent  HostChecks = 0x04 // the cardholder's consent to this payment
	AllChecks                = CheckSMS | CheckIdentity | CheckConsent
)

// Has reports whether c holds every check of want.
func (c HostChecks) Has(want HostChecks) bool { return c&want == want }

// Valid reports whether c is a non-empty set of defined checks.
func (c HostChecks) Valid() bool { return c != 0 && c&^AllChecks == 0 }

func (c HostChecks) String() string {
	var out []string
	for _, x := range []struct {
		c    HostChecks
		name string
	}{{CheckSMS, "sms"}, {CheckIdentity, "identity"}, {CheckConsent, "consent"}} {
		if c&x.c != 0 {
			out = append(out, x.name)
		}
	}
	if rest := c &^ AllChecks; rest != 0 {
		out = append(out, fmt.Sprintf("0x%02X", uint8(rest)))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "+")
}

// Assertion is the body of a host assertion: the checks passed and the
// one payment they serve.
type Assertion struct {
	Checks   HostChecks
	ATC      uint32 // the ATC the payment takes: the device's ATC plus one
	Amount   int64  // the payment's requested amount (PAY 9F02)
	Currency uint16
	Payee    []byte    // the payment's DF09; nil: no payee
	Expiry   time.Time // end of validity
}

// Body encodes the assertion's body (SPEC.md 4.10), in table order.
func (a Assertion) Body() ([]byte, error) {
	switch {
	case !a.Checks.Valid():
		return nil, fmt.Errorf("spd: assertion checks %s out of 1..7", a.Checks)
	case len(a.Payee) > 32:
		return nil, errors.New("spd: assertion payee over 32 bytes")
	case a.Amount < 0 || a.Amount > 1<<62:
		return nil, fmt.Errorf("spd: assertion amount %d out of range", a.Amount)
	}
	var b builder
	b.u(TagHostChecks, 1, uint64(a.Checks))
	b.u(TagATC, 4, uint64(a.ATC))
	b.amount(TagAmount, a.Amount)
	b.u(TagCurrency, 2, uint64(a.Currency))
	b.opt(TagPayee, a.Payee)
	b.time(TagExpiry, a.Expiry)
	return b.Bytes()
}

// SealAssertion signs a for the device deviceID with the host key and
// returns the value of DF76.
func SealAssertion(key *ecdsa.PrivateKey, deviceID []byte, a Assertion) ([]byte, error) {
	body, err := a.Body()
	if err != nil {
		return nil, err
	}
	out, err := SealIssuerData(key, INSHostAssertion, deviceID, body)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxAssertionLen {
		return nil, fmt.Errorf("spd: assertion of %d bytes, at most %d", len(out), MaxAssertionLen)
	}
	return out, nil
}

// CheckAssertionForm checks that v, a DF76 value, is a sequence of BER-TLV
// objects ending with a non-empty 9F45 (the part of the check that is the
// command's data field, SPEC.md 1.2).
func CheckAssertionForm(v []byte) error {
	if len(v) == 0 || len(v) > MaxAssertionLen {
		return malformed("host assertion of %d bytes, want 1..%d", len(v), MaxAssertionLen)
	}
	objs, err := tlv.Parse(v)
	if err != nil {
		return malformed("host assertion: %v", err)
	}
	if last := objs[len(objs)-1]; last.Tag != TagSignature || len(last.Value) == 0 {
		return malformed("host assertion does not end with a signature (9F45)")
	}
	return nil
}

// OpenAssertion verifies the DF76 value v with the host key pub for the
// device deviceID and decodes its body. A signature that does not verify
// is ErrBadSignature; a malformed value or body wraps ErrMalformed.
func OpenAssertion(pub *ecdsa.PublicKey, deviceID, v []byte) (Assertion, error) {
	if err := CheckAssertionForm(v); err != nil {
		return Assertion{}, err
	}
	body, err := OpenIssuerData(pub, INSHostAssertion, deviceID, v)
	if err != nil {
		return Assertion{}, err
	}
	return ParseAssertionBody(body)
}

// ParseAssertionBody decodes the body of a host assertion.
func ParseAssertionBody(body []byte) (Assertion, error) {
	f, err := parseFields(body, TagHostChecks, TagATC, TagAmount, TagCurrency, TagPayee, TagExpiry)
	if err != nil {
		return Assertion{}, err
	}
	if err := f.require(TagHostChecks, TagATC, TagAmount, TagCurrency, TagExpiry); err != nil {
		return Assertion{}, err
	}
	var a Assertion
	c, err := f.uint(TagHostChecks, 1)
	if err != nil {
		return Assertion{}, err
	}
	if a.Checks = HostChecks(c); !a.Checks.Valid() {
		return Assertion{}, malformed("assertion checks %02X out of 1..7", c)
	}
	atc, err := f.uint(TagATC, 4)
	if err != nil {
		return Assertion{}, err
	}
	a.ATC = uint32(atc)
	if a.Amount, err = f.amount(TagAmount); err != nil {
		return Assertion{}, err
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return Assertion{}, err
	}
	a.Currency = uint16(cur)
	if a.Payee, err = f.bytes(TagPayee, 1, 32); err != nil {
		return Assertion{}, err
	}
	if a.Expiry, err = f.time(TagExpiry); err != nil {
		return Assertion{}, err
	}
	return a, nil
}

// ForPayment reports whether a was made for the payment r: the same
// amount, currency and payee (the ATC and the time are the device's to
// check against its own state).
func (a Assertion) ForPayment(r PayRequest) bool {
	return a.Amount == r.Amount && a.Currency == r.Currency && bytes.Equal(a.Payee, r.Payee)
}
