package backend

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Backend-signed messages. The JSON answer carries the fields and a
// signature; the signature (ECDSA P-256, SHA-256, ASN.1 DER) covers the
// canonical bytes below, which a device or terminal rebuilds from the fields
// to check it against the key of GET /v1/keys. Integers are big-endian.
//
// Authorisation result:
//
//	size  field
//	8     "SPDAUTH2"
//	1     n = length of device ID
//	n     device ID
//	4     ATC
//	8     amount
//	2     currency, ISO 4217 numeric
//	1     status: 1 approved, 0 declined
//	1     settled: 1 settled at once, 0 held
//	8     balance after the payment (two's complement)
//	8     time, Unix seconds
//	1     repeated: 1 the stored answer to a record sent before, 0 the first
//
// (SPDAUTH1, without the repeated byte, let a result stripped of its
// repeat mark verify as a first approval: a merchant that refuses a
// replayed code by that mark would have taken it.)
//
// Settlement acknowledgement:
//
//	size  field
//	8     "SPDACK01"
//	1     b = length of batch ID
//	b     batch ID
//	8     time, Unix seconds
//	2     count of entries
//	then for each entry:
//	1     n = length of device ID
//	n     device ID
//	4     ATC
//	8     amount
//	1     status: 1 settled, 2 already settled

// SignedBytes returns the canonical bytes the result's signature covers.
func (a AuthorisationResult) SignedBytes() []byte {
	b := make([]byte, 0, 49+len(a.DeviceID))
	b = append(b, "SPDAUTH2"...)
	b = append(b, byte(len(a.DeviceID)))
	b = append(b, a.DeviceID...)
	b = binary.BigEndian.AppendUint32(b, a.ATC)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Amount))
	b = binary.BigEndian.AppendUint16(b, a.Currency)
	b = append(b, boolByte(a.Status == Approved), boolByte(a.Settled))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Balance))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Time.Unix()))
	b = append(b, boolByte(a.Repeated))
	return b
}

// Verify checks the result's signature against the backend's public key.
func (a AuthorisationResult) Verify(pub *ecdsa.PublicKey) error {
	return verifySigned(pub, a.SignedBytes(), a.Signature, "authorisation result")
}

// SignedBytes returns the canonical bytes the acknowledgement's signature covers.
func (k SettlementAck) SignedBytes() []byte {
	b := make([]byte, 0, 19+len(k.BatchID)+len(k.Entries)*24)
	b = append(b, "SPDACK01"...)
	b = append(b, byte(len(k.BatchID)))
	b = append(b, k.BatchID...)
	b = binary.BigEndian.AppendUint64(b, uint64(k.Time.Unix()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.Entries)))
	for _, e := range k.Entries {
		b = append(b, byte(len(e.DeviceID)))
		b = append(b, e.DeviceID...)
		b = binary.BigEndian.AppendUint32(b, e.ATC)
		b = binary.BigEndian.AppendUint64(b, uint64(e.Amount))
		st := byte(0)
		switch e.Status {
		case Settled:
			st = 1
		case AlreadySettled:
			st = 2
		case Held:
			st = 3
		case Reversed:
			st = 4
		}
		b = append(b, st)
	}
	return b
}

// Verify checks the acknowledgement's signature against the backend's public key.
func (k SettlementAck) Verify(pub *ecdsa.PublicKey) error {
	return verifySigned(pub, k.SignedBytes(), k.Signature, "settlement acknowledgement")
}

func sign(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	sum := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, key, sum[:])
}

func verifySigned(pub *ecdsa.PublicKey, msg, sig []byte, what string) error {
	if pub == nil {
		return errors.New("backend: no public key to verify " + what)
	}
	sum := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return errors.New("backend: " + what + ": signature does not verify")
	}
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}
