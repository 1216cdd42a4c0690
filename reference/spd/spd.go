// Package spd is the host-side view of the SPD profile of reference/SPEC.md:
// the application identifier, instruction codes, data tags, life-cycle
// states, typed command builders, parsers of the device's answers, the
// pending settlement record, the personalisation profile and the format of
// issuer-signed data, and a Client that drives a device over a link.Link.
// The issuer itself, which holds the CA key, is reference/issuer.
//
// The device (reference/device), the terminal, the backend and the
// conformance scenarios all speak the profile through this package, so the
// wire formats live here once. It follows ISO/IEC 7816-4 for the command
// structure and BER-TLV (reference/tlv) for data fields; keys are ECDSA
// P-256 with SHA-256 and certificates X.509 DER.
package spd

import (
	"fmt"

	"github.com/spdlab/spdlab/reference/tlv"
)

// AID is the application identifier of the SPD application: proprietary
// RID F0, "SPDLAB", version 01.
var AID = []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01}

// Classes of the profile's commands.
const (
	CLAISO         byte = 0x00 // interindustry commands
	CLAProprietary byte = 0x80 // SPD commands
)

// DeviceIDLen is the length of a device ID.
const DeviceIDLen = 8

// TokenLen is the length of an account or payment token.
const TokenLen = 16

// ChallengeLen is the length of a GET CHALLENGE answer.
const ChallengeLen = 16

// BioTemplateLen is the length of a biometric feature vector.
const BioTemplateLen = 16

// INS is an instruction code of the profile (SPEC.md section 4).
type INS byte

// Instruction codes.
const (
	INSSelect               INS = 0xA4
	INSGetResponse          INS = 0xC0
	INSGetData              INS = 0xCA
	INSGetDataList          INS = 0xCB // GET DATA of a tag list (SPEC.md 4.2.1)
	INSGetChallenge         INS = 0x84
	INSInternalAuthenticate INS = 0x88
	INSVerify               INS = 0x20
	INSChangeReferenceData  INS = 0x24
	INSResetRetryCounter    INS = 0x2C
	INSInitialise           INS = 0x50
	INSPersonalise          INS = 0x52
	INSActivate             INS = 0x54
	INSPay                  INS = 0x60
	INSReadPending          INS = 0x62
	INSAcknowledge          INS = 0x64
	INSUpdateParameters     INS = 0x66
	INSGenerateMedium       INS = 0x68
	INSGenerateToken        INS = 0x6A
	INSTransfer             INS = 0x6C
	INSTransferIn           INS = 0x6E
	INSReclaim              INS = 0x70
	INSParseMedium          INS = 0x72
	INSStoreMedium          INS = 0x74
	INSReadMedia            INS = 0x76 // P1 00 LIST MEDIA, P1 01 SHOW MEDIUM
	INSTestErase            INS = 0x5E
)

var insNames = map[INS]string{
	INSSelect:               "SELECT",
	INSGetResponse:          "GET RESPONSE",
	INSGetData:              "GET DATA",
	INSGetDataList:          "GET DATA list",
	INSGetChallenge:         "GET CHALLENGE",
	INSInternalAuthenticate: "INTERNAL AUTHENTICATE",
	INSVerify:               "VERIFY",
	INSChangeReferenceData:  "CHANGE REFERENCE DATA",
	INSResetRetryCounter:    "RESET RETRY COUNTER",
	INSInitialise:           "INITIALISE",
	INSPersonalise:          "PERSONALISE",
	INSActivate:             "ACTIVATE",
	INSPay:                  "PAY",
	INSReadPending:          "READ PENDING",
	INSAcknowledge:          "ACKNOWLEDGE",
	INSUpdateParameters:     "UPDATE PARAMETERS",
	INSGenerateMedium:       "GENERATE MEDIUM",
	INSGenerateToken:        "GENERATE TOKEN",
	INSTransfer:             "TRANSFER",
	INSTransferIn:           "TRANSFER IN",
	INSReclaim:              "RECLAIM",
	INSParseMedium:          "PARSE MEDIUM",
	INSStoreMedium:          "STORE MEDIUM",
	INSReadMedia:            "LIST MEDIA / SHOW MEDIUM",
	INSTestErase:            "TEST ERASE",
	INSPresentCode:          "PRESENT CODE",
	INSExchange:             "EXCHANGE",
}

// String names the instruction as SPEC.md does.
func (i INS) String() string {
	if n, ok := insNames[i]; ok {
		return n
	}
	return fmt.Sprintf("INS %02X", byte(i))
}

// P1/P2 values.
const (
	P1SelectByAID  byte = 0x04
	P2PIN          byte = 0x80 // VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER: the PIN
	P2Biometric    byte = 0x81 // VERIFY: the biometric feature vector
	P1UnblockPUK   byte = 0x00 // RESET RETRY COUNTER with the PUK
	P1UnblockHost  byte = 0x01 // RESET RETRY COUNTER with a host-signed order
	P1TransferOut  byte = 0x00 // TRANSFER: debit and show a new transfer medium
	P1TransferShow byte = 0x01 // TRANSFER: show an outstanding transfer again
)

// Data tags of commands and GET DATA (SPEC.md sections 4.2 to 4.5). The
// medium tags of reference/medium/info.go are reused where the meaning is
// the same (DF02 device ID, DF03 token, DF04 balance, 9F36 ATC, ...).
const (
	TagFCI             tlv.Tag = 0x6F
	TagFCIAID          tlv.Tag = 0x84
	TagTime            tlv.Tag = 0x9A // 4 bytes, Unix seconds
	TagDeviceID        tlv.Tag = 0xDF02
	TagToken           tlv.Tag = 0xDF03
	TagBalance         tlv.Tag = 0xDF04
	TagPending         tlv.Tag = 0xDF05
	TagUses            tlv.Tag = 0xDF06
	TagPayeeNonce      tlv.Tag = 0xDF07
	TagPayee           tlv.Tag = 0xDF09
	TagSerial          tlv.Tag = 0xDF0A
	TagTokenControls   tlv.Tag = 0xDF0B
	TagMaxTxns         tlv.Tag = 0xDF0C
	TagMaxAmount       tlv.Tag = 0xDF0D
	TagChannel         tlv.Tag = 0xDF0E
	TagCertificate     tlv.Tag = 0xDF11
	TagState           tlv.Tag = 0xDF20
	TagTagList         tlv.Tag = 0x5C // GET DATA list's data field (SPEC.md 4.2.1)
	TagPendingCount    tlv.Tag = 0xDF22
	TagPINTries        tlv.Tag = 0xDF23
	TagDevicePublicKey tlv.Tag = 0xDF24
	TagLocation        tlv.Tag = 0xDF26
	TagRecordKind      tlv.Tag = 0xDF28
	TagRecordMode      tlv.Tag = 0xDF29
	TagAccount         tlv.Tag = 0xDF2A
	TagATCList         tlv.Tag = 0xDF2B
	TagUpdateCounter   tlv.Tag = 0xDF2C
	TagTopUp           tlv.Tag = 0xDF2D
	TagUsesAdded       tlv.Tag = 0xDF2E
	TagOldPIN          tlv.Tag = 0xDF30
	TagPIN             tlv.Tag = 0xDF31
	TagPUK             tlv.Tag = 0xDF32
	TagCAPublicKey     tlv.Tag = 0xDF40
	TagHostPublicKey   tlv.Tag = 0xDF42
	TagLimits          tlv.Tag = 0xDF50
	TagMaxPayment      tlv.Tag = 0xDF51
	TagMaxPending      tlv.Tag = 0xDF52
	TagMaxOfflineCount tlv.Tag = 0xDF53
	TagMaxOfflineAge   tlv.Tag = 0xDF54
	TagPINTryLimit     tlv.Tag = 0xDF57
	TagBioTemplate     tlv.Tag = 0xDF58
	TagBioThreshold    tlv.Tag = 0xDF59
	TagTier            tlv.Tag = 0xDF5A
	TagTierDiscounts   tlv.Tag = 0xDF5B
	TagRegions         tlv.Tag = 0xDF5C
	TagRegionAdjust    tlv.Tag = 0xDF5D
	TagRequiredTier    tlv.Tag = 0xDF5E
	TagTransferMedium  tlv.Tag = 0xDF60
	TagSerialList      tlv.Tag = 0xDF61
	TagLastSync        tlv.Tag = 0xDF62
	TagEraseCounter    tlv.Tag = 0xDF2F // TEST ERASE counter (SPD-TST-2)
	TagTestSample      tlv.Tag = 0xDF5F // profile: 01 for a test sample (SPD-TST-1)
	TagExpiry          tlv.Tag = 0x5F24
	TagCurrency        tlv.Tag = 0x5F2A
	TagAmount          tlv.Tag = 0x9F02
	TagATC             tlv.Tag = 0x9F36
	TagTerminalNonce   tlv.Tag = 0x9F37 // PAY and pending record: the payment nonce (SPD-PAY-8)
	TagSignature       tlv.Tag = 0x9F45
	TagRecord          tlv.Tag = 0xE1 // pending record template
)

// State is the device's life-cycle state (SPEC.md section 2).
type State byte

// Life-cycle states.
const (
	StateBlank        State = 0x00
	StateInitialised  State = 0x01
	StatePersonalised State = 0x02
	StateActive       State = 0x03
	StateBlocked      State = 0x04
	StateTerminated   State = 0x05
)

func (s State) String() string {
	switch s {
	case StateBlank:
		return "blank"
	case StateInitialised:
		return "initialised"
	case StatePersonalised:
		return "personalised"
	case StateActive:
		return "active"
	case StateBlocked:
		return "blocked"
	case StateTerminated:
		return "terminated"
	}
	return fmt.Sprintf("state %02X", byte(s))
}

// PaymentKind says what a payment or pending record moves (C2, C13).
// PAY takes the first three as P1.
type PaymentKind byte

// Payment and record kinds.
const (
	KindBalance     PaymentKind = 0x01 // deduct the stored balance
	KindAccount     PaymentKind = 0x02 // deduct the designated account
	KindUse         PaymentKind = 0x03 // write off one use
	KindTransferOut PaymentKind = 0x04 // value debited into a transfer medium
	KindTransferIn  PaymentKind = 0x05 // transfer medium imported (the import receipt)
	KindReclaim     PaymentKind = 0x06 // expired transfer credited back to the payer
	KindExchange    PaymentKind = 0x07 // stored value exchanged into uses or another currency (SPEC.md 4.11)
)

func (k PaymentKind) String() string {
	switch k {
	case KindBalance:
		return "balance"
	case KindAccount:
		return "account"
	case KindUse:
		return "use"
	case KindTransferOut:
		return "transfer-out"
	case KindTransferIn:
		return "transfer-in"
	case KindReclaim:
		return "reclaim"
	case KindExchange:
		return "exchange"
	}
	return fmt.Sprintf("kind %02X", byte(k))
}

// IsPayment reports whether k is one of the three payments of C2.
func (k PaymentKind) IsPayment() bool { return k >= KindBalance && k <= KindUse }

// IsTransfer reports whether k is a record of a transfer (out, in,
// reclaim): the kinds that carry a serial and the other device.
func (k PaymentKind) IsTransfer() bool { return k >= KindTransferOut && k <= KindReclaim }

// HasNonce reports whether a record of kind k binds a payment nonce
// (SPD-PAY-8, SPD-EXC-4): the payments and the exchange.
func (k PaymentKind) HasNonce() bool { return k.IsPayment() || k == KindExchange }

// Mode is PAY's P2: whether the terminal is online.
type Mode byte

// Payment modes.
const (
	ModeOnline  Mode = 0x00
	ModeOffline Mode = 0x01
)

func (m Mode) String() string {
	switch m {
	case ModeOnline:
		return "online"
	case ModeOffline:
		return "offline"
	}
	return fmt.Sprintf("mode %02X", byte(m))
}
