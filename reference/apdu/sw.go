package apdu

import "fmt"

// SW is an ISO 7816-4 status word (SW1<<8 | SW2).
type SW uint16

// Status words the SPD profile uses. reference/SPEC.md says which command
// answers which.
const (
	SWOK                   SW = 0x9000
	SWBytesAvailable       SW = 0x6100 // 61xx: xx more bytes with GET RESPONSE
	SWWarningNVChanged     SW = 0x6300 // 63xx without a counter
	SWVerifyFailed         SW = 0x63C0 // 63Cx: verification failed, x tries left
	SWMemoryFailure        SW = 0x6581
	SWWrongLength          SW = 0x6700
	SWLogicalChannelNotSup SW = 0x6881
	SWSecureMessagingNS    SW = 0x6882
	SWIncompatibleFS       SW = 0x6981
	SWSecurityNotSatisfied SW = 0x6982
	SWAuthBlocked          SW = 0x6983
	SWRefDataNotUsable     SW = 0x6984
	SWConditionsNotSat     SW = 0x6985
	SWCommandNotAllowed    SW = 0x6986
	SWWrongData            SW = 0x6A80
	SWFuncNotSupported     SW = 0x6A81
	SWFileNotFound         SW = 0x6A82
	SWRecordNotFound       SW = 0x6A83
	SWNotEnoughMemory      SW = 0x6A84
	SWIncorrectP1P2        SW = 0x6A86
	SWRefDataNotFound      SW = 0x6A88
	SWWrongP1P2            SW = 0x6B00
	SWWrongLe              SW = 0x6C00 // 6Cxx: resend with Le = xx
	SWInsNotSupported      SW = 0x6D00
	SWClaNotSupported      SW = 0x6E00
	SWUnknown              SW = 0x6F00
)

// VerifyFailed returns 63Cx with x = tries left (capped at 15).
func VerifyFailed(triesLeft int) SW {
	if triesLeft > 15 {
		triesLeft = 15
	}
	if triesLeft < 0 {
		triesLeft = 0
	}
	return SWVerifyFailed | SW(triesLeft)
}

// TriesLeft returns x of a 63Cx status word and whether sw is one.
func (sw SW) TriesLeft() (int, bool) {
	if sw&0xFFF0 == 0x63C0 {
		return int(sw & 0x0F), true
	}
	return 0, false
}

// SW1 and SW2 split the status word.
func (sw SW) SW1() byte { return byte(sw >> 8) }
func (sw SW) SW2() byte { return byte(sw) }

var swNames = map[SW]string{
	SWOK:                   "success",
	SWWarningNVChanged:     "state of non-volatile memory changed",
	SWMemoryFailure:        "memory failure",
	SWWrongLength:          "wrong length",
	SWLogicalChannelNotSup: "logical channel not supported",
	SWSecureMessagingNS:    "secure messaging not supported",
	SWIncompatibleFS:       "command incompatible with file structure",
	SWSecurityNotSatisfied: "security status not satisfied",
	SWAuthBlocked:          "authentication method blocked",
	SWRefDataNotUsable:     "reference data not usable",
	SWConditionsNotSat:     "conditions of use not satisfied",
	SWCommandNotAllowed:    "command not allowed",
	SWWrongData:            "incorrect parameters in the data field",
	SWFuncNotSupported:     "function not supported",
	SWFileNotFound:         "file or application not found",
	SWRecordNotFound:       "record not found",
	SWNotEnoughMemory:      "not enough memory space",
	SWIncorrectP1P2:        "incorrect parameters P1-P2",
	SWRefDataNotFound:      "referenced data not found",
	SWWrongP1P2:            "wrong parameters P1-P2",
	SWInsNotSupported:      "instruction not supported",
	SWClaNotSupported:      "class not supported",
	SWUnknown:              "no precise diagnosis",
}

// String gives the status word in hex with its ISO 7816-4 meaning.
func (sw SW) String() string {
	if n, ok := sw.TriesLeft(); ok {
		return fmt.Sprintf("%04X (verification failed, %d tries left)", uint16(sw), n)
	}
	switch sw.SW1() {
	case 0x61:
		return fmt.Sprintf("%04X (%d bytes available)", uint16(sw), int(sw.SW2()))
	case 0x6C:
		return fmt.Sprintf("%04X (wrong Le, exact length %d)", uint16(sw), int(sw.SW2()))
	}
	if name, ok := swNames[sw]; ok {
		return fmt.Sprintf("%04X (%s)", uint16(sw), name)
	}
	return fmt.Sprintf("%04X", uint16(sw))
}
