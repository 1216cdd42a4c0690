package backend

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// RecordKind is the kind of payment a pending record stands for (C2).
type RecordKind byte

// Record kinds.
const (
	// KindStoredValue deducts from the stored-value amount on the device.
	KindStoredValue RecordKind = 1
	// KindAccount deducts from the designated account's stored value.
	KindAccount RecordKind = 2
	// KindConsumption writes off one consumption (a use of a counted card).
	KindConsumption RecordKind = 3
)

func (k RecordKind) String() string {
	switch k {
	case KindStoredValue:
		return "stored-value"
	case KindAccount:
		return "account"
	case KindConsumption:
		return "consumption"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// DeviceRecord is the backend's view of one signed pending record made by a
// device: the unit of settlement, keyed by (DeviceID, ATC).
//
// The backend never builds these itself: they arrive as the device's own
// bytes (ParseDeviceRecord) and are checked against the device's registered
// key (Verify). The same bytes serve an online authorisation and, later or at
// once, the settlement of that payment.
type DeviceRecord struct {
	DeviceID  string
	ATC       uint32
	Amount    int64
	Currency  string
	Token     string
	Kind      RecordKind
	Time      time.Time
	Signature []byte
	signed    []byte // the bytes the signature covers
}

// Device record wire format (all integers big-endian). The signature is
// ECDSA P-256 with SHA-256, ASN.1 DER, over every byte before the signature
// length.
//
//	offset  size  field
//	0       4     magic "SPR1"
//	4       1     n = length of device ID (1..64)
//	5       n     device ID (printable ASCII)
//	5+n     4     ATC
//	9+n     8     amount in minor units (0..2^53)
//	17+n    3     currency, ISO 4217 alphabetic
//	20+n    1     kind (1 stored value, 2 account, 3 consumption)
//	21+n    8     time, Unix seconds
//	29+n    1     t = length of payment token (0..64)
//	30+n    t     payment token (printable ASCII), empty for none
//	30+n+t  2     s = length of signature (8..80)
//	32+n+t  s     signature
const (
	recordMagic       = "SPR1"
	maxDeviceIDLen    = 64
	maxTokenLen       = 64
	maxSignatureLen   = 80
	maxRecordAmount   = 1 << 53
	deviceRecordFixed = 4 + 1 + 4 + 8 + 3 + 1 + 8 + 1 + 2
)

// Errors of the device record codec.
var (
	errRecordShort = errors.New("backend: device record truncated")
)

// ParseDeviceRecord decodes a device's signed pending record. It checks the
// form only; Verify checks the signature.
func ParseDeviceRecord(b []byte) (DeviceRecord, error) {
	var r DeviceRecord
	if len(b) < deviceRecordFixed+1 {
		return r, errRecordShort
	}
	if string(b[:4]) != recordMagic {
		return r, errors.New("backend: device record: bad magic")
	}
	n := int(b[4])
	if n < 1 || n > maxDeviceIDLen {
		return r, fmt.Errorf("backend: device record: device ID length %d", n)
	}
	p := 5
	if len(b) < p+n+4+8+3+1+8+1 {
		return r, errRecordShort
	}
	r.DeviceID = string(b[p : p+n])
	if !printable(r.DeviceID) {
		return r, errors.New("backend: device record: device ID not printable")
	}
	p += n
	r.ATC = binary.BigEndian.Uint32(b[p:])
	p += 4
	amount := binary.BigEndian.Uint64(b[p:])
	if amount > maxRecordAmount {
		return r, fmt.Errorf("backend: device record: amount %d out of range", amount)
	}
	r.Amount = int64(amount)
	p += 8
	r.Currency = string(b[p : p+3])
	if !isCurrency(r.Currency) {
		return r, fmt.Errorf("backend: device record: currency %q", r.Currency)
	}
	p += 3
	r.Kind = RecordKind(b[p])
	if r.Kind < KindStoredValue || r.Kind > KindConsumption {
		return r, fmt.Errorf("backend: device record: unknown %v", r.Kind)
	}
	p++
	secs := binary.BigEndian.Uint64(b[p:])
	if secs > 1<<40 {
		return r, errors.New("backend: device record: time out of range")
	}
	r.Time = time.Unix(int64(secs), 0).UTC()
	p += 8
	t := int(b[p])
	p++
	if t > maxTokenLen {
		return r, fmt.Errorf("backend: device record: token length %d", t)
	}
	if len(b) < p+t+2 {
		return r, errRecordShort
	}
	r.Token = string(b[p : p+t])
	if !printable(r.Token) {
		return r, errors.New("backend: device record: token not printable")
	}
	p += t
	r.signed = b[:p]
	s := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if s < 8 || s > maxSignatureLen {
		return r, fmt.Errorf("backend: device record: signature length %d", s)
	}
	if len(b) != p+s {
		return r, fmt.Errorf("backend: device record: %d bytes after the signature length, want %d", len(b)-p, s)
	}
	r.Signature = b[p : p+s]
	return r, nil
}

// MarshalUnsigned encodes every field before the signature: the bytes a
// device signs.
func (r DeviceRecord) MarshalUnsigned() []byte {
	b := make([]byte, 0, deviceRecordFixed+len(r.DeviceID)+len(r.Token))
	b = append(b, recordMagic...)
	b = append(b, byte(len(r.DeviceID)))
	b = append(b, r.DeviceID...)
	b = binary.BigEndian.AppendUint32(b, r.ATC)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Amount))
	b = append(b, r.Currency...)
	b = append(b, byte(r.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.Unix()))
	b = append(b, byte(len(r.Token)))
	b = append(b, r.Token...)
	return b
}

// Marshal encodes the record with its signature.
func (r DeviceRecord) Marshal() []byte {
	b := r.MarshalUnsigned()
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Signature)))
	return append(b, r.Signature...)
}

// Verify checks the record's signature against the device's public key.
func (r DeviceRecord) Verify(pub *ecdsa.PublicKey) error {
	signed := r.signed
	if signed == nil {
		signed = r.MarshalUnsigned()
	}
	sum := sha256.Sum256(signed)
	if pub == nil || !ecdsa.VerifyASN1(pub, sum[:], r.Signature) {
		return errors.New("backend: device record: signature does not verify")
	}
	return nil
}

// sameContent reports whether two records of one (device, ATC) describe the
// same payment. Signatures are not compared: ECDSA signatures are not
// unique, and a device may sign the same record twice.
func (r DeviceRecord) sameContent(amount int64, currency, token string, kind RecordKind, t int64) bool {
	return r.Amount == amount && r.Currency == currency && r.Token == token &&
		r.Kind == kind && r.Time.Unix() == t
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
