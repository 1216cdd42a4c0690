package backend

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/spdlab/spdlab/reference/spd"
)

// DeviceRecord is the backend's view of one signed pending record made by a
// device (spd.PendingRecord, reference/SPEC.md section 8): the unit of
// settlement, keyed by (Device, ATC).
//
// The backend never builds these itself: they arrive as the device's own
// bytes (as READ PENDING returns them) and are checked against the device's
// registered key. The same bytes serve an online authorisation and, later
// or at once, the settlement of that payment.
type DeviceRecord struct {
	spd.PendingRecord
	// Device is the device ID as the API names it: spd.DeviceIDString,
	// upper-case hex of the 8-byte ID.
	Device string
	// Token is the payment token as the vault names it: upper-case hex of
	// the record's token bytes, empty when the record carries none.
	Token string
	// bodyHash is SHA-256 of the signed body: two records of one
	// (device, ATC) are the same payment when their bodies are equal.
	bodyHash []byte
}

// ParseDeviceRecord decodes a device's signed pending record (form only;
// Verify checks the signature).
func ParseDeviceRecord(b []byte) (DeviceRecord, error) {
	r, err := spd.ParsePendingRecord(b)
	if err != nil {
		return DeviceRecord{}, fmt.Errorf("backend: device record: %w", err)
	}
	if r.Amount < 0 || r.Amount > maxAmount {
		return DeviceRecord{}, fmt.Errorf("backend: device record: amount %d out of range", r.Amount)
	}
	if r.Kind == spd.KindUse && r.Amount != 0 {
		// SPD-PAY-3: a use write-off moves one use, never stored value.
		return DeviceRecord{}, fmt.Errorf("backend: device record: a use (kind 03) of amount %d, want 0", r.Amount)
	}
	sum := sha256.Sum256(r.Body())
	return DeviceRecord{PendingRecord: r, Device: spd.DeviceIDString(r.DeviceID), Token: tokenString(r.Token), bodyHash: sum[:]}, nil
}

// Verify checks the record's signature against the device's public key.
func (r DeviceRecord) Verify(pub *ecdsa.PublicKey) error {
	if err := r.PendingRecord.Verify(pub); err != nil {
		return errors.New("backend: device record: signature does not verify")
	}
	return nil
}

// sameBody reports whether a stored body hash is this record's: the same
// payment. Signatures are not compared: ECDSA signatures are not unique.
func (r DeviceRecord) sameBody(h []byte) bool { return bytes.Equal(r.bodyHash, h) }

// maxAmount bounds amounts everywhere (2^53, exact in JSON numbers).
const maxAmount = 1 << 53

// deviceIDLen is the length of a device ID in the API: hex of spd.DeviceIDLen bytes.
const deviceIDLen = 2 * spd.DeviceIDLen

func tokenString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// parseDeviceID checks an API device ID and returns its bytes.
func parseDeviceID(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != spd.DeviceIDLen || s != strings.ToUpper(s) {
		return nil, fmt.Errorf("device ID %q: want %d upper-case hex digits", s, deviceIDLen)
	}
	return b, nil
}

// checkTokenString checks a vault token: upper-case hex of 1 to 64 bytes.
func checkTokenString(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 || len(b) > 64 || s != strings.ToUpper(s) {
		return fmt.Errorf("token %q: want upper-case hex of 1 to 64 bytes", s)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
