// Package medium encodes and decodes the SPD's coded media (DESIGN.md,
// "Coded media"; claims C1, C12, C13, C16, C17, C19, C20, C34).
//
// A medium is a signed BER-TLV envelope in the style of the EMV QR Code
// Specification for Payment Systems, consumer-presented mode: a payload
// format indicator (tag 85, "SVL01"), an application template (tag 61)
// carrying the service information, and the device's ECDSA P-256 signature
// over every preceding byte. Its text form is standard Base64 of the
// envelope; its image forms are QR, DataMatrix and Code 128 (a short
// reference only) rendered and read with gozxing.
//
// reference/SPEC.md section 7 is the normative layout (tags, order,
// presence, sizes, per-kind fields) and Annex A its known-answer vectors;
// this package is its executable form.
package medium

import "time"

// Kind says what a medium is for.
type Kind uint8

const (
	// KindStoredValue shows a device's stored value, account token and
	// use count for a merchant to collect a payment (C1, C8, C9).
	KindStoredValue Kind = 1
	// KindTransfer moves value already debited from the payer's device to
	// a payee (C13, C16, C17).
	KindTransfer Kind = 2
	// KindToken is a dynamically generated payment token code with domain
	// controls (C20, C22).
	KindToken Kind = 3
	// KindPaymentResult is the signed result of one payment (C29, C31).
	KindPaymentResult Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindStoredValue:
		return "stored-value"
	case KindTransfer:
		return "transfer"
	case KindToken:
		return "token"
	case KindPaymentResult:
		return "payment-result"
	}
	return "unknown"
}

// PayloadFormat is the value of tag 85 in every medium.
const PayloadFormat = "SVL01"

// BER-TLV tags of a medium. Tags 85, 61, 4F, 5A, 5F2D, 9F02, 9F36, 5F24,
// 9F1A and 5F2A follow EMV usage; DF-prefixed tags are spdlab's own.
const (
	TagPayloadFormat = 0x85   // "SVL01"
	TagAppTemplate   = 0x61   // constructed: the service information
	TagAID           = 0x4F   // application identifier of the issuing app
	TagKind          = 0xDF01 // 1 byte: Kind
	TagDeviceID      = 0xDF02 // 8 bytes: the SPD's identity (first identity, C19)
	TagToken         = 0xDF03 // payment token standing in for the account (C20, C24)
	TagBalance       = 0xDF04 // 8 bytes big-endian: stored value in minor units
	TagPending       = 0xDF05 // 8 bytes: total pending offline
	TagUses          = 0xDF06 // 4 bytes: remaining consumption count
	TagATC           = 0x9F36 // 4 bytes here (EMV uses 2): transaction counter
	TagExpiry        = 0x5F24 // 4 bytes: Unix seconds, validity end
	TagCurrency      = 0x5F2A // 2 bytes: ISO 4217 numeric
	TagAmount        = 0x9F02 // 8 bytes: transfer or payment amount
	TagPayeeNonce    = 0xDF07 // merchant's nonce, echoed to bind the medium
	TagPayerID       = 0xDF08 // payer identity (C17, C19)
	TagPayeeID       = 0xDF09 // payee identity: device, user or server (C17, C19)
	TagSerial        = 0xDF0A // 8 bytes: transfer serial, unique per payer
	TagTokenControls = 0xDF0B // constructed: domain controls (C22)
	TagMaxTxns       = 0xDF0C // 4 bytes, inside TagTokenControls
	TagMaxAmount     = 0xDF0D // 8 bytes, inside TagTokenControls
	TagChannel       = 0xDF0E // 1 byte bit set, inside TagTokenControls
	TagResult        = 0xDF0F // 1 byte: 0 success, 1 failure (C31)
	TagReason        = 0xDF10 // UTF-8: failure reason
	TagCertificate   = 0xDF11 // the device certificate (see DeviceCertificate)
	TagIssued        = 0x9A   // 4 bytes: Unix seconds the medium was made
	TagSignature     = 0x9F45 // ECDSA P-256, ASN.1 DER, over every preceding byte
)

// Channel is a bit set of payment channels a token may be used on (C22).
type Channel uint8

const (
	ChannelInStore Channel = 1 << iota
	ChannelOnline
	ChannelTransfer
)

// TokenControls are a token's domain controls (C22).
type TokenControls struct {
	MaxTransactions int     `json:"max_transactions"`
	MaxAmount       int64   `json:"max_amount"`
	Channels        Channel `json:"channels"`
}

// ServiceInfo is what a coded medium parses into (C1, C19). Amounts are in
// minor units of Currency. Zero-valued optional fields are not encoded.
type ServiceInfo struct {
	Kind       Kind           `json:"kind"`
	AID        []byte         `json:"aid,omitempty"`
	DeviceID   []byte         `json:"device_id"`
	Token      []byte         `json:"token,omitempty"`
	Balance    int64          `json:"balance"`
	Pending    int64          `json:"pending,omitempty"`
	Uses       int            `json:"uses"`
	ATC        uint32         `json:"atc"`
	Currency   uint16         `json:"currency"`
	Amount     int64          `json:"amount,omitempty"`
	Expiry     time.Time      `json:"expiry"`
	Issued     time.Time      `json:"issued"`
	PayeeNonce []byte         `json:"payee_nonce,omitempty"`
	PayerID    []byte         `json:"payer_id,omitempty"`
	PayeeID    []byte         `json:"payee_id,omitempty"`
	Serial     uint64         `json:"serial,omitempty"`
	Controls   *TokenControls `json:"controls,omitempty"`
	Result     *int           `json:"result,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	// Certificate is the device certificate (DER, X.509, signed by the
	// issuer CA) whose public key verifies the medium's signature.
	Certificate []byte `json:"certificate,omitempty"`
}
