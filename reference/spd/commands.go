package spd

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Command builders and the parsers of their data fields. The builders are
// what a terminal, backend or scenario sends; the parsers are what the
// device (reference/device) runs on the bytes it receives. Both follow the
// tables of SPEC.md section 4.

func iso(ins INS, p1, p2 byte, data []byte, ne int) apdu.Command {
	return apdu.Command{CLA: CLAISO, INS: byte(ins), P1: p1, P2: p2, Data: data, Ne: ne}
}

func proprietary(ins INS, p1, p2 byte, data []byte, ne int) apdu.Command {
	return apdu.Command{CLA: CLAProprietary, INS: byte(ins), P1: p1, P2: p2, Data: data, Ne: ne}
}

// Select selects the SPD application by its AID.
func Select() apdu.Command {
	return iso(INSSelect, P1SelectByAID, 0, bytes.Clone(AID), apdu.MaxShortLe)
}

// GetResponse fetches the next ne bytes of a long response (after 61xx).
func GetResponse(ne int) apdu.Command { return iso(INSGetResponse, 0, 0, nil, ne) }

// GetData reads one data object (SPEC.md section 4.2).
func GetData(tag tlv.Tag) apdu.Command {
	return iso(INSGetData, byte(tag>>8), byte(tag), nil, apdu.MaxShortLe)
}

// P1-P2 of GET DATA list: the current application (ISO/IEC 7816-4 3FFF).
const (
	P1GetDataList byte = 0x3F
	P2GetDataList byte = 0xFF
)

// MaxDataListTags is the most tags a GET DATA list names: each tag of
// SPEC.md 4.2 but DF11 once (SPEC.md 4.2.1).
const MaxDataListTags = 16

// GetDataList asks for the data objects of tags in one command, in that
// order (SPEC.md 4.2.1): 00 CB 3F FF with the tag list 5C.
func GetDataList(tags ...tlv.Tag) apdu.Command {
	var list []byte
	for _, t := range tags {
		list = append(list, t.Bytes()...)
	}
	var b builder
	b.Add(TagTagList, list)
	return iso(INSGetDataList, P1GetDataList, P2GetDataList, b.must(), apdu.MaxShortLe)
}

// ParseGetDataList decodes GET DATA list's data field (used by the
// device): exactly one 5C object holding 1 or more tags, none repeated.
// Every error is ErrMalformed (6A80); whether the tags are data objects
// of SPEC.md 4.2 is the device's to check.
func ParseGetDataList(data []byte) ([]tlv.Tag, error) {
	obj, err := tlv.ParseOne(data)
	if err != nil {
		return nil, malformed("tag list: %w", err)
	}
	if obj.Tag != TagTagList {
		return nil, malformed("tag list: data object %s, want %s", obj.Tag, TagTagList)
	}
	tags, err := tlv.ParseTags(obj.Value)
	if err != nil {
		return nil, malformed("tag list: %w", err)
	}
	if len(tags) == 0 {
		return nil, malformed("tag list: empty")
	}
	for i, t := range tags {
		if slices.Contains(tags[:i], t) {
			return nil, malformed("tag list: tag %s named twice", t)
		}
	}
	return tags, nil
}

// ParseDataObjects decodes a GET DATA list answer: exactly the data
// objects of tags, in that order, nothing before, between or after them.
// It returns their values, which alias data.
func ParseDataObjects(tags []tlv.Tag, data []byte) ([][]byte, error) {
	values := make([][]byte, 0, len(tags))
	rest := data
	for i, tag := range tags {
		obj, next, err := tlv.Next(rest)
		if err != nil {
			return nil, malformed("data object %d of %d (%s): %w", i+1, len(tags), tag, err)
		}
		if obj.Tag != tag {
			return nil, malformed("data object %d of %d: tag %s, want %s", i+1, len(tags), obj.Tag, tag)
		}
		values = append(values, obj.Value)
		rest = next
	}
	if len(rest) != 0 {
		return nil, malformed("data objects: %d bytes after the %d asked for", len(rest), len(tags))
	}
	return values, nil
}

// GetChallenge asks for a 16-byte random challenge.
func GetChallenge() apdu.Command { return iso(INSGetChallenge, 0, 0, nil, ChallengeLen) }

// InternalAuthenticate asks the device to sign challenge (1..64 bytes).
func InternalAuthenticate(challenge []byte) apdu.Command {
	return iso(INSInternalAuthenticate, 0, 0, bytes.Clone(challenge), apdu.MaxShortLe)
}

// VerifyPIN presents the PIN.
func VerifyPIN(pin string) apdu.Command { return iso(INSVerify, 0, P2PIN, []byte(pin), 0) }

// PINStatus asks for the PIN tries left without presenting a PIN.
func PINStatus() apdu.Command { return iso(INSVerify, 0, P2PIN, nil, 0) }

// VerifyBiometric presents a biometric feature vector for match on device.
func VerifyBiometric(sample []byte) apdu.Command {
	return iso(INSVerify, 0, P2Biometric, bytes.Clone(sample), 0)
}

// ChangePIN replaces the PIN, proving the old one.
func ChangePIN(old, new string) apdu.Command {
	var b builder
	b.AddString(TagOldPIN, old)
	b.AddString(TagPIN, new)
	return iso(INSChangeReferenceData, 0, P2PIN, b.must(), 0)
}

// UnblockPIN resets the PIN try counter with the PUK and, when newPIN is
// not empty, sets a new PIN.
func UnblockPIN(puk, newPIN string) apdu.Command {
	var b builder
	b.AddString(TagPUK, puk)
	if newPIN != "" {
		b.AddString(TagPIN, newPIN)
	}
	return iso(INSResetRetryCounter, P1UnblockPUK, P2PIN, b.must(), 0)
}

// Unblock is a host-signed PIN unblock order.
type Unblock struct {
	Counter uint32 // update counter, greater than the device's last
	NewPIN  string // optional
}

// UnblockByHost builds RESET RETRY COUNTER signed with the host key.
func UnblockByHost(key *ecdsa.PrivateKey, deviceID []byte, u Unblock) (apdu.Command, error) {
	var b builder
	b.u(TagUpdateCounter, 4, uint64(u.Counter))
	if u.NewPIN != "" {
		b.AddString(TagPIN, u.NewPIN)
	}
	data, err := SealIssuerData(key, INSResetRetryCounter, deviceID, b.must())
	if err != nil {
		return apdu.Command{}, err
	}
	return iso(INSResetRetryCounter, P1UnblockHost, P2PIN, data, 0), nil
}

// ParseUnblock decodes the body of a host-signed unblock.
func ParseUnblock(body []byte) (Unblock, error) {
	f, err := parseFields(body, TagUpdateCounter, TagPIN)
	if err != nil {
		return Unblock{}, err
	}
	if err := f.require(TagUpdateCounter); err != nil {
		return Unblock{}, err
	}
	c, err := f.uint(TagUpdateCounter, 4)
	if err != nil {
		return Unblock{}, err
	}
	u := Unblock{Counter: uint32(c)}
	if f.has(TagPIN) {
		u.NewPIN = string(f.val(TagPIN))
		if !digits(u.NewPIN, 4, 12) {
			return Unblock{}, malformed("new PIN must be 4..12 digits")
		}
	}
	return u, nil
}

// PINChange is the data of CHANGE REFERENCE DATA or of RESET RETRY
// COUNTER with the PUK.
type PINChange struct {
	Old    string // CHANGE REFERENCE DATA: the current PIN
	PUK    string // RESET RETRY COUNTER: the PUK
	NewPIN string
}

// ParseChangePIN decodes CHANGE REFERENCE DATA's data field.
func ParseChangePIN(data []byte) (PINChange, error) {
	f, err := parseFields(data, TagOldPIN, TagPIN)
	if err != nil {
		return PINChange{}, err
	}
	if err := f.require(TagOldPIN, TagPIN); err != nil {
		return PINChange{}, err
	}
	c := PINChange{Old: string(f.val(TagOldPIN)), NewPIN: string(f.val(TagPIN))}
	if !digits(c.Old, 1, 12) || !digits(c.NewPIN, 4, 12) {
		return PINChange{}, malformed("PINs must be digits, the new one 4..12")
	}
	return c, nil
}

// ParseUnblockPUK decodes RESET RETRY COUNTER's data field (PUK form).
func ParseUnblockPUK(data []byte) (PINChange, error) {
	f, err := parseFields(data, TagPUK, TagPIN)
	if err != nil {
		return PINChange{}, err
	}
	if err := f.require(TagPUK); err != nil {
		return PINChange{}, err
	}
	c := PINChange{PUK: string(f.val(TagPUK)), NewPIN: string(f.val(TagPIN))}
	if !digits(c.PUK, 1, 16) || (f.has(TagPIN) && !digits(c.NewPIN, 4, 12)) {
		return PINChange{}, malformed("PUK must be digits, a new PIN 4..12 digits")
	}
	return c, nil
}

// Initialise loads the issuer CA public key and the device ID into a blank
// device, which generates its key pair and answers the public key.
func Initialise(ca *ecdsa.PublicKey, deviceID []byte) apdu.Command {
	var b builder
	b.Add(TagCAPublicKey, PublicKeyBytes(ca))
	b.Add(TagDeviceID, deviceID)
	return proprietary(INSInitialise, 0, 0, b.must(), apdu.MaxShortLe)
}

// Personalise builds PERSONALISE (SPEC.md SPD-KEY-3): profile p, with its
// device certificate, sealed by the issuer CA for p's device.
func Personalise(ca *ecdsa.PrivateKey, p Profile) (apdu.Command, error) {
	body, err := p.Marshal()
	if err != nil {
		return apdu.Command{}, err
	}
	data, err := SealIssuerData(ca, INSPersonalise, p.DeviceID, body)
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSPersonalise, 0, 0, data, 0), nil
}

// ParseInitialise decodes INITIALISE's data field.
func ParseInitialise(data []byte) (*ecdsa.PublicKey, []byte, error) {
	f, err := parseFields(data, TagCAPublicKey, TagDeviceID)
	if err != nil {
		return nil, nil, err
	}
	if err := f.require(TagCAPublicKey, TagDeviceID); err != nil {
		return nil, nil, err
	}
	pub, err := ParsePublicKey(f.val(TagCAPublicKey))
	if err != nil {
		return nil, nil, err
	}
	id, err := f.bytes(TagDeviceID, DeviceIDLen, DeviceIDLen)
	if err != nil {
		return nil, nil, err
	}
	return pub, id, nil
}

// ParseInitialiseResponse decodes INITIALISE's answer: the device public key.
func ParseInitialiseResponse(data []byte) (*ecdsa.PublicKey, error) {
	f, err := parseFields(data, TagDevicePublicKey)
	if err != nil {
		return nil, err
	}
	if err := f.require(TagDevicePublicKey); err != nil {
		return nil, err
	}
	return ParsePublicKey(f.val(TagDevicePublicKey))
}

// Activate moves a personalised device to active (needs a verified PIN).
func Activate() apdu.Command { return proprietary(INSActivate, 0, 0, nil, 0) }

// PayRequest is PAY's parameters (SPEC.md section 4.4).
type PayRequest struct {
	Kind       PaymentKind // KindBalance, KindAccount or KindUse
	Mode       Mode
	Amount     int64 // before adjustment; 0 for KindUse
	Currency   uint16
	Time       time.Time // terminal time
	Payee      []byte    // 1..32 bytes, optional
	PayeeNonce []byte    // 1..32 bytes, optional
	// TerminalNonce is the terminal's unpredictable number for this
	// payment, 4..32 bytes (SPD-PAY-8); a terminal sends a fresh one with
	// every PAY. Absent: the device draws the record's nonce itself.
	TerminalNonce []byte
	Region        uint16 // 0: not given
	RequiredTier  uint8  // 0: no attribute requirement
	Token         []byte // token to pay under; nil: the account token
	Channel       medium.Channel
	// Assertion is DF76, the host assertion of SPEC.md 4.10 (body and
	// signature, SealAssertion); nil: none.
	Assertion []byte
}

// Pay builds the PAY command.
func Pay(r PayRequest) apdu.Command {
	var b builder
	b.amount(TagAmount, r.Amount)
	b.u(TagCurrency, 2, uint64(r.Currency))
	b.time(TagTime, r.Time)
	b.opt(TagPayee, r.Payee)
	b.opt(TagPayeeNonce, r.PayeeNonce)
	b.opt(TagTerminalNonce, r.TerminalNonce)
	if r.Region != 0 {
		b.u(TagLocation, 2, uint64(r.Region))
	}
	if r.RequiredTier != 0 {
		b.u(TagRequiredTier, 1, uint64(r.RequiredTier))
	}
	b.opt(TagToken, r.Token)
	if r.Channel != 0 {
		b.u(TagChannel, 1, uint64(r.Channel))
	}
	b.opt(TagHostAssertion, r.Assertion)
	return proprietary(INSPay, byte(r.Kind), byte(r.Mode), b.must(), apdu.MaxShortLe)
}

// ErrBadP1P2 is returned by request parsers for P1/P2 values the profile
// does not define; a device answers 6A86.
var ErrBadP1P2 = errors.New("spd: incorrect P1-P2")

// ParsePayRequest decodes PAY's P1, P2 and data field.
func ParsePayRequest(p1, p2 byte, data []byte) (PayRequest, error) {
	r := PayRequest{Kind: PaymentKind(p1), Mode: Mode(p2)}
	if !r.Kind.IsPayment() || (r.Mode != ModeOnline && r.Mode != ModeOffline) {
		return PayRequest{}, ErrBadP1P2
	}
	f, err := parseFields(data, TagAmount, TagCurrency, TagTime, TagPayee, TagPayeeNonce, TagTerminalNonce,
		TagLocation, TagRequiredTier, TagToken, TagChannel, TagHostAssertion)
	if err != nil {
		return PayRequest{}, err
	}
	if err := f.require(TagAmount, TagCurrency, TagTime); err != nil {
		return PayRequest{}, err
	}
	if r.Amount, err = f.amount(TagAmount); err != nil {
		return PayRequest{}, err
	}
	if r.Kind == KindUse && r.Amount != 0 {
		return PayRequest{}, malformed("a use write-off carries amount 0")
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return PayRequest{}, err
	}
	r.Currency = uint16(cur)
	if r.Time, err = f.time(TagTime); err != nil {
		return PayRequest{}, err
	}
	if r.Payee, err = f.bytes(TagPayee, 1, 32); err != nil {
		return PayRequest{}, err
	}
	if r.PayeeNonce, err = f.bytes(TagPayeeNonce, 1, 32); err != nil {
		return PayRequest{}, err
	}
	if r.TerminalNonce, err = f.bytes(TagTerminalNonce, 4, 32); err != nil {
		return PayRequest{}, err
	}
	reg, err := f.uint(TagLocation, 2)
	if err != nil {
		return PayRequest{}, err
	}
	r.Region = uint16(reg)
	tier, err := f.uint(TagRequiredTier, 1)
	if err != nil {
		return PayRequest{}, err
	}
	if tier > 3 {
		return PayRequest{}, malformed("required tier %d out of 0..3", tier)
	}
	r.RequiredTier = uint8(tier)
	if r.Token, err = f.bytes(TagToken, TokenLen, TokenLen); err != nil {
		return PayRequest{}, err
	}
	ch, err := f.uint(TagChannel, 1)
	if err != nil {
		return PayRequest{}, err
	}
	r.Channel = medium.Channel(ch)
	if f.has(TagChannel) && (ch == 0 || ch&(ch-1) != 0 || ch > 4) {
		return PayRequest{}, malformed("channel must be exactly one of 1, 2, 4")
	}
	if r.Channel == 0 {
		r.Channel = medium.ChannelInStore
	}
	if v, ok := f.get(TagHostAssertion); ok {
		if err := CheckAssertionForm(v); err != nil {
			return PayRequest{}, err
		}
		r.Assertion = append([]byte(nil), v...)
	}
	return r, nil
}

// ReadPending reads the pending record at index (0 = oldest).
func ReadPending(index int) apdu.Command {
	return proprietary(INSReadPending, byte(index>>8), byte(index), nil, apdu.MaxShortLe)
}

// Acknowledgement is the host's receipt for settled records and closed
// transfers (SPEC.md section 4, ACKNOWLEDGE).
type Acknowledgement struct {
	SyncTime time.Time // becomes the device's last sync time when later
	ATCs     []uint32  // records settled
	Serials  []uint64  // outgoing transfers closed (imported or reclaimed)
}

// MaxAckEntries bounds the ATC and serial lists of one acknowledgement.
const MaxAckEntries = 255

// Acknowledge builds the host-signed ACKNOWLEDGE command.
func Acknowledge(key *ecdsa.PrivateKey, deviceID []byte, a Acknowledgement) (apdu.Command, error) {
	if len(a.ATCs) > MaxAckEntries || len(a.Serials) > MaxAckEntries {
		return apdu.Command{}, fmt.Errorf("spd: acknowledgement of more than %d entries", MaxAckEntries)
	}
	var b builder
	b.time(TagTime, a.SyncTime)
	atcs := make([]byte, 4*len(a.ATCs))
	for i, v := range a.ATCs {
		binary.BigEndian.PutUint32(atcs[4*i:], v)
	}
	b.Add(TagATCList, atcs)
	if len(a.Serials) > 0 {
		s := make([]byte, 8*len(a.Serials))
		for i, v := range a.Serials {
			binary.BigEndian.PutUint64(s[8*i:], v)
		}
		b.Add(TagSerialList, s)
	}
	data, err := SealIssuerData(key, INSAcknowledge, deviceID, b.must())
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSAcknowledge, 0, 0, data, 0), nil
}

// ParseAcknowledgement decodes the body of an ACKNOWLEDGE.
func ParseAcknowledgement(body []byte) (Acknowledgement, error) {
	f, err := parseFields(body, TagTime, TagATCList, TagSerialList)
	if err != nil {
		return Acknowledgement{}, err
	}
	if err := f.require(TagTime, TagATCList); err != nil {
		return Acknowledgement{}, err
	}
	var a Acknowledgement
	if a.SyncTime, err = f.time(TagTime); err != nil {
		return Acknowledgement{}, err
	}
	v := f.val(TagATCList)
	if len(v)%4 != 0 || len(v)/4 > MaxAckEntries {
		return Acknowledgement{}, malformed("ATC list of %d bytes", len(v))
	}
	for i := 0; i < len(v); i += 4 {
		a.ATCs = append(a.ATCs, binary.BigEndian.Uint32(v[i:]))
	}
	if s, ok := f.get(TagSerialList); ok {
		if len(s)%8 != 0 || len(s)/8 > MaxAckEntries {
			return Acknowledgement{}, malformed("serial list of %d bytes", len(s))
		}
		for i := 0; i < len(s); i += 8 {
			a.Serials = append(a.Serials, binary.BigEndian.Uint64(s[i:]))
		}
	}
	return a, nil
}

// ParameterUpdate is a host-signed change of parameters (C3, C14, C15),
// applied at most once: Counter must exceed the last applied one.
type ParameterUpdate struct {
	Counter uint32
	TopUp   int64   // added to the balance
	AddUses uint32  // added to the remaining uses
	Limits  *Limits // new offline risk limits
	Tier    *uint8  // new membership tier
	State   *State  // StateActive, StateBlocked or StateTerminated
	Time    time.Time
}

// UpdateParameters builds the host-signed UPDATE PARAMETERS command.
func UpdateParameters(key *ecdsa.PrivateKey, deviceID []byte, u ParameterUpdate) (apdu.Command, error) {
	if u.TopUp < 0 {
		return apdu.Command{}, errors.New("spd: negative top-up")
	}
	var b builder
	b.u(TagUpdateCounter, 4, uint64(u.Counter))
	if u.TopUp > 0 {
		b.amount(TagTopUp, u.TopUp)
	}
	if u.AddUses > 0 {
		b.u(TagUsesAdded, 4, uint64(u.AddUses))
	}
	if u.Limits != nil {
		b.Add(TagLimits, u.Limits.encode())
	}
	if u.Tier != nil {
		b.u(TagTier, 1, uint64(*u.Tier))
	}
	if u.State != nil {
		b.u(TagState, 1, uint64(*u.State))
	}
	if !u.Time.IsZero() {
		b.time(TagTime, u.Time)
	}
	data, err := SealIssuerData(key, INSUpdateParameters, deviceID, b.must())
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSUpdateParameters, 0, 0, data, 0), nil
}

// ParseParameterUpdate decodes the body of an UPDATE PARAMETERS.
func ParseParameterUpdate(body []byte) (ParameterUpdate, error) {
	f, err := parseFields(body, TagUpdateCounter, TagTopUp, TagUsesAdded, TagLimits, TagTier, TagState, TagTime)
	if err != nil {
		return ParameterUpdate{}, err
	}
	if err := f.require(TagUpdateCounter); err != nil {
		return ParameterUpdate{}, err
	}
	var u ParameterUpdate
	c, err := f.uint(TagUpdateCounter, 4)
	if err != nil {
		return ParameterUpdate{}, err
	}
	u.Counter = uint32(c)
	if u.TopUp, err = f.amount(TagTopUp); err != nil {
		return ParameterUpdate{}, err
	}
	add, err := f.uint(TagUsesAdded, 4)
	if err != nil {
		return ParameterUpdate{}, err
	}
	u.AddUses = uint32(add)
	if v, ok := f.get(TagLimits); ok {
		l, err := ParseLimits(v)
		if err != nil {
			return ParameterUpdate{}, err
		}
		u.Limits = &l
	}
	if f.has(TagTier) {
		t, err := f.uint(TagTier, 1)
		if err != nil {
			return ParameterUpdate{}, err
		}
		if t > 3 {
			return ParameterUpdate{}, malformed("tier %d out of 0..3", t)
		}
		tier := uint8(t)
		u.Tier = &tier
	}
	if f.has(TagState) {
		s, err := f.uint(TagState, 1)
		if err != nil {
			return ParameterUpdate{}, err
		}
		st := State(s)
		if st != StateActive && st != StateBlocked && st != StateTerminated {
			return ParameterUpdate{}, malformed("state %s cannot be set by an update", st)
		}
		u.State = &st
	}
	if u.Time, err = f.time(TagTime); err != nil {
		return ParameterUpdate{}, err
	}
	return u, nil
}

// MediumRequest is GENERATE MEDIUM's parameters.
type MediumRequest struct {
	Time       time.Time
	Expiry     time.Time // zero: Time + DefaultMediumValidity
	PayeeNonce []byte    // binds the medium to a merchant's request (C8)
}

// DefaultMediumValidity is how long a stored-value medium is valid when the
// request gives no expiry.
const DefaultMediumValidity = 5 * time.Minute

// GenerateMedium builds GENERATE MEDIUM.
func GenerateMedium(r MediumRequest) apdu.Command {
	var b builder
	b.time(TagTime, r.Time)
	if !r.Expiry.IsZero() {
		b.time(TagExpiry, r.Expiry)
	}
	b.opt(TagPayeeNonce, r.PayeeNonce)
	return proprietary(INSGenerateMedium, 0, 0, b.must(), apdu.MaxShortLe)
}

// ParseMediumRequest decodes GENERATE MEDIUM's data field.
func ParseMediumRequest(data []byte) (MediumRequest, error) {
	f, err := parseFields(data, TagTime, TagExpiry, TagPayeeNonce)
	if err != nil {
		return MediumRequest{}, err
	}
	if err := f.require(TagTime); err != nil {
		return MediumRequest{}, err
	}
	var r MediumRequest
	if r.Time, err = f.time(TagTime); err != nil {
		return MediumRequest{}, err
	}
	if r.Expiry, err = f.time(TagExpiry); err != nil {
		return MediumRequest{}, err
	}
	if r.Expiry.IsZero() {
		r.Expiry = r.Time.Add(DefaultMediumValidity)
		if r.Expiry.Unix() > 0xFFFFFFFF {
			return MediumRequest{}, malformed("time too late for a default expiry")
		}
	}
	if !r.Expiry.After(r.Time) {
		return MediumRequest{}, malformed("expiry not after time")
	}
	if r.PayeeNonce, err = f.bytes(TagPayeeNonce, 1, 32); err != nil {
		return MediumRequest{}, err
	}
	return r, nil
}

// TokenRequest is GENERATE TOKEN's parameters (C20, C22).
type TokenRequest struct {
	Time     time.Time
	Expiry   time.Time
	Controls medium.TokenControls
}

// GenerateToken builds GENERATE TOKEN.
func GenerateToken(r TokenRequest) apdu.Command {
	var b builder
	b.time(TagTime, r.Time)
	b.time(TagExpiry, r.Expiry)
	var c builder
	n := r.Controls.MaxTransactions
	if n < 0 {
		n = 0
	}
	c.u(TagMaxTxns, 4, uint64(uint32(n)))
	c.amount(TagMaxAmount, r.Controls.MaxAmount)
	c.u(TagChannel, 1, uint64(r.Controls.Channels))
	b.Add(TagTokenControls, c.must())
	return proprietary(INSGenerateToken, 0, 0, b.must(), apdu.MaxShortLe)
}

// ParseTokenRequest decodes GENERATE TOKEN's data field.
func ParseTokenRequest(data []byte) (TokenRequest, error) {
	f, err := parseFields(data, TagTime, TagExpiry, TagTokenControls)
	if err != nil {
		return TokenRequest{}, err
	}
	if err := f.require(TagTime, TagExpiry, TagTokenControls); err != nil {
		return TokenRequest{}, err
	}
	var r TokenRequest
	if r.Time, err = f.time(TagTime); err != nil {
		return TokenRequest{}, err
	}
	if r.Expiry, err = f.time(TagExpiry); err != nil {
		return TokenRequest{}, err
	}
	if !r.Expiry.After(r.Time) {
		return TokenRequest{}, malformed("token expiry not after time")
	}
	c, err := parseFields(f.val(TagTokenControls), TagMaxTxns, TagMaxAmount, TagChannel)
	if err != nil {
		return TokenRequest{}, err
	}
	if err := c.require(TagMaxTxns, TagMaxAmount, TagChannel); err != nil {
		return TokenRequest{}, err
	}
	n, err := c.uint(TagMaxTxns, 4)
	if err != nil {
		return TokenRequest{}, err
	}
	if n == 0 || n > 1<<20 {
		return TokenRequest{}, malformed("token transactions %d out of 1..%d", n, 1<<20)
	}
	r.Controls.MaxTransactions = int(n)
	if r.Controls.MaxAmount, err = c.amount(TagMaxAmount); err != nil {
		return TokenRequest{}, err
	}
	ch, err := c.uint(TagChannel, 1)
	if err != nil {
		return TokenRequest{}, err
	}
	if ch == 0 || ch > 7 {
		return TokenRequest{}, malformed("token channels %d out of 1..7", ch)
	}
	r.Controls.Channels = medium.Channel(ch)
	return r, nil
}

// TransferRequest is TRANSFER's parameters (C13, C16, C17).
type TransferRequest struct {
	Amount   int64
	Currency uint16
	Payee    []byte // payee device ID (8 bytes): only it can import
	Time     time.Time
	Expiry   time.Time
}

// TransferOut builds TRANSFER (P1 00): debit and show a transfer medium.
func TransferOut(r TransferRequest) apdu.Command {
	var b builder
	b.amount(TagAmount, r.Amount)
	b.u(TagCurrency, 2, uint64(r.Currency))
	b.Add(TagPayee, r.Payee)
	b.time(TagTime, r.Time)
	b.time(TagExpiry, r.Expiry)
	return proprietary(INSTransfer, P1TransferOut, 0, b.must(), apdu.MaxShortLe)
}

// ParseTransferRequest decodes TRANSFER (P1 00)'s data field.
func ParseTransferRequest(data []byte) (TransferRequest, error) {
	f, err := parseFields(data, TagAmount, TagCurrency, TagPayee, TagTime, TagExpiry)
	if err != nil {
		return TransferRequest{}, err
	}
	if err := f.require(TagAmount, TagCurrency, TagPayee, TagTime, TagExpiry); err != nil {
		return TransferRequest{}, err
	}
	var r TransferRequest
	if r.Amount, err = f.amount(TagAmount); err != nil {
		return TransferRequest{}, err
	}
	if r.Amount <= 0 {
		return TransferRequest{}, malformed("transfer amount must be positive")
	}
	cur, err := f.uint(TagCurrency, 2)
	if err != nil {
		return TransferRequest{}, err
	}
	r.Currency = uint16(cur)
	if r.Payee, err = f.bytes(TagPayee, DeviceIDLen, DeviceIDLen); err != nil {
		return TransferRequest{}, err
	}
	if r.Time, err = f.time(TagTime); err != nil {
		return TransferRequest{}, err
	}
	if r.Expiry, err = f.time(TagExpiry); err != nil {
		return TransferRequest{}, err
	}
	if !r.Expiry.After(r.Time) {
		return TransferRequest{}, malformed("transfer expiry not after time")
	}
	return r, nil
}

// SerialAt names one outstanding transfer at a terminal time (TRANSFER
// SHOW, RECLAIM).
type SerialAt struct {
	Serial uint64
	Time   time.Time
}

func (s SerialAt) encode() []byte {
	var b builder
	b.u(TagSerial, 8, s.Serial)
	b.time(TagTime, s.Time)
	return b.must()
}

// ParseSerialAt decodes TRANSFER SHOW's data field or a RECLAIM body.
func ParseSerialAt(data []byte) (SerialAt, error) {
	f, err := parseFields(data, TagSerial, TagTime)
	if err != nil {
		return SerialAt{}, err
	}
	if err := f.require(TagSerial, TagTime); err != nil {
		return SerialAt{}, err
	}
	var s SerialAt
	if s.Serial, err = f.uint(TagSerial, 8); err != nil {
		return SerialAt{}, err
	}
	if s.Time, err = f.time(TagTime); err != nil {
		return SerialAt{}, err
	}
	return s, nil
}

// TransferShow builds TRANSFER (P1 01): show an outstanding transfer again.
func TransferShow(serial uint64, now time.Time) apdu.Command {
	return proprietary(INSTransfer, P1TransferShow, 0, SerialAt{serial, now}.encode(), apdu.MaxShortLe)
}

// Reclaim builds the host-signed RECLAIM of an expired, unimported transfer.
func Reclaim(key *ecdsa.PrivateKey, deviceID []byte, s SerialAt) (apdu.Command, error) {
	data, err := SealIssuerData(key, INSReclaim, deviceID, s.encode())
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSReclaim, 0, 0, data, apdu.MaxShortLe), nil
}

// TransferImport is TRANSFER IN's parameters.
type TransferImport struct {
	Medium []byte // the transfer medium envelope
	Time   time.Time
}

// TransferIn builds TRANSFER IN.
func TransferIn(envelope []byte, now time.Time) apdu.Command {
	var b builder
	b.Add(TagTransferMedium, envelope)
	b.time(TagTime, now)
	return proprietary(INSTransferIn, 0, 0, b.must(), apdu.MaxShortLe)
}

// ParseTransferImport decodes TRANSFER IN's data field.
func ParseTransferImport(data []byte) (TransferImport, error) {
	f, err := parseFields(data, TagTransferMedium, TagTime)
	if err != nil {
		return TransferImport{}, err
	}
	if err := f.require(TagTransferMedium, TagTime); err != nil {
		return TransferImport{}, err
	}
	var t TransferImport
	if t.Medium, err = f.bytes(TagTransferMedium, 1, 4096); err != nil {
		return TransferImport{}, err
	}
	if t.Time, err = f.time(TagTime); err != nil {
		return TransferImport{}, err
	}
	return t, nil
}

// SelectResult is SELECT's answer.
type SelectResult struct {
	AID      []byte
	State    State
	DeviceID []byte // nil while blank
}

// ParseSelectResponse decodes SELECT's answer (the FCI template 6F).
func ParseSelectResponse(data []byte) (SelectResult, error) {
	obj, err := tlv.ParseOne(data)
	if err != nil {
		return SelectResult{}, malformed("select response: %w", err)
	}
	if obj.Tag != TagFCI {
		return SelectResult{}, malformed("select response: tag %s, want 6F", obj.Tag)
	}
	f, err := parseFields(obj.Value, TagFCIAID, TagState, TagDeviceID)
	if err != nil {
		return SelectResult{}, err
	}
	if err := f.require(TagFCIAID, TagState); err != nil {
		return SelectResult{}, err
	}
	var r SelectResult
	if r.AID, err = f.bytes(TagFCIAID, 5, 16); err != nil {
		return SelectResult{}, err
	}
	st, err := f.uint(TagState, 1)
	if err != nil {
		return SelectResult{}, err
	}
	r.State = State(st)
	if r.DeviceID, err = f.bytes(TagDeviceID, DeviceIDLen, DeviceIDLen); err != nil {
		return SelectResult{}, err
	}
	return r, nil
}

// SelectResponse encodes SELECT's answer (used by the device).
func SelectResponse(r SelectResult) []byte {
	var in builder
	in.Add(TagFCIAID, r.AID)
	in.u(TagState, 1, uint64(r.State))
	in.opt(TagDeviceID, r.DeviceID)
	var b builder
	b.Add(TagFCI, in.must())
	return b.must()
}

// ParseDataObject decodes a GET DATA answer: exactly one object with tag.
func ParseDataObject(tag tlv.Tag, data []byte) ([]byte, error) {
	obj, rest, err := tlv.Next(data)
	if err != nil {
		return nil, malformed("data object: %w", err)
	}
	if len(rest) != 0 {
		return nil, malformed("data object: %d bytes after it", len(rest))
	}
	if obj.Tag != tag {
		return nil, malformed("data object: tag %s, want %s", obj.Tag, tag)
	}
	return obj.Value, nil
}

// DataObject encodes a GET DATA answer (used by the device).
func DataObject(tag tlv.Tag, value []byte) []byte {
	var b builder
	b.Add(tag, value)
	return b.must()
}

// Uint decodes a fixed-width big-endian integer of 1..8 bytes.
func Uint(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 8 {
		return 0, malformed("integer of %d bytes", len(v))
	}
	var full [8]byte
	copy(full[8-len(v):], v)
	return binary.BigEndian.Uint64(full[:]), nil
}

// ParseMedium asks the device to parse and verify a coded medium (C1, C6):
// the device answers the medium's service information template (61) when
// the medium's certificate comes from its issuer CA and verifies it.
func ParseMedium(envelope []byte) apdu.Command {
	var b builder
	b.Add(TagTransferMedium, envelope)
	return proprietary(INSParseMedium, 0, 0, b.must(), apdu.MaxShortLe)
}

// ParseMediumData decodes PARSE MEDIUM's data field: the envelope.
func ParseMediumData(data []byte) ([]byte, error) {
	f, err := parseFields(data, TagTransferMedium)
	if err != nil {
		return nil, err
	}
	if err := f.require(TagTransferMedium); err != nil {
		return nil, err
	}
	return f.bytes(TagTransferMedium, 1, 4096)
}

// TestErase builds TEST ERASE (SPEC.md section 12): the issuer CA's order
// that returns a test sample to blank. counter must exceed the device's
// last applied erase counter (GET DATA DF2F).
func TestErase(ca *ecdsa.PrivateKey, deviceID []byte, counter uint32) (apdu.Command, error) {
	var b builder
	b.u(TagEraseCounter, 4, uint64(counter))
	data, err := SealIssuerData(ca, INSTestErase, deviceID, b.must())
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSTestErase, 0, 0, data, 0), nil
}

// ParseTestErase decodes the body of a TEST ERASE.
func ParseTestErase(body []byte) (uint32, error) {
	f, err := parseFields(body, TagEraseCounter)
	if err != nil {
		return 0, err
	}
	if err := f.require(TagEraseCounter); err != nil {
		return 0, err
	}
	v, err := f.uint(TagEraseCounter, 4)
	return uint32(v), err
}
