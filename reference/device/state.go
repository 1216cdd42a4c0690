package device

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// Persistent memory layout. Every value is a fixed binary layout, all
// integers big-endian. One command changes these keys in one store
// transaction (SPD-STO-1); the try counters are single writes made before
// a comparison (SPD-PIN-2).
//
//	key                 value
//	init                device ID (8) || CA public key (65) || private key scalar (32)
//	profile             the PERSONALISE body as received (spd.ParseProfile reads it)
//	pin                 current PIN, ASCII digits
//	tries/pin           PIN tries left (1)
//	tries/puk           PUK tries left (1)
//	tries/bio           biometric tries left (1)
//	counters            see counters below
//	pend/<ATC %08x>     a pending record (see record encoding below)
//	tok/<token %x>      a token: max txns (4) max amount (8) channels (1) expiry (4) used (4)
//	xfer/<serial %016x> an outgoing transfer: amount (8) payee (8) expiry (4) ATC (4) time (4) status (1)
//	imp/<payer %x>/<serial %016x>   an imported transfer (1 byte: 1)
//	erase               last applied TEST ERASE counter (4); survives TEST ERASE
const (
	keyInit     = "init"
	keyProfile  = "profile"
	keyPIN      = "pin"
	keyPINTries = "tries/pin"
	keyPUKTries = "tries/puk"
	keyBioTries = "tries/bio"
	keyCounters = "counters"
	prefixPend  = "pend/"
	prefixTok   = "tok/"
	prefixXfer  = "xfer/"
	prefixImp   = "imp/"
	keyErase    = "erase"
)

var errCorrupt = errors.New("device: persistent memory corrupt")

// counters is the device's dynamic state, one store value.
//
//	off  len  field
//	0    1    life-cycle state
//	1    8    balance
//	9    4    uses
//	13   4    ATC
//	17   4    update counter
//	21   4    last sync time
//	25   1    tier
//	26   8    max payment
//	34   8    max pending
//	42   2    max offline count
//	44   4    max offline age (seconds)
//	48   8    last transfer serial
type counters struct {
	State          spd.State
	Balance        int64
	Uses           uint32
	ATC            uint32
	UpdateCounter  uint32
	LastSync       uint32
	Tier           uint8
	Limits         spd.Limits
	TransferSerial uint64
}

const countersLen = 56

func (c counters) marshal() []byte {
	b := make([]byte, countersLen)
	b[0] = byte(c.State)
	binary.BigEndian.PutUint64(b[1:], uint64(c.Balance))
	binary.BigEndian.PutUint32(b[9:], c.Uses)
	binary.BigEndian.PutUint32(b[13:], c.ATC)
	binary.BigEndian.PutUint32(b[17:], c.UpdateCounter)
	binary.BigEndian.PutUint32(b[21:], c.LastSync)
	b[25] = c.Tier
	binary.BigEndian.PutUint64(b[26:], uint64(c.Limits.MaxPayment))
	binary.BigEndian.PutUint64(b[34:], uint64(c.Limits.MaxPending))
	binary.BigEndian.PutUint16(b[42:], uint16(c.Limits.MaxOfflineCount))
	binary.BigEndian.PutUint32(b[44:], uint32(c.Limits.MaxOfflineAge/time.Second))
	binary.BigEndian.PutUint64(b[48:], c.TransferSerial)
	return b
}

func parseCounters(b []byte) (counters, error) {
	if len(b) != countersLen {
		return counters{}, fmt.Errorf("%w: counters of %d bytes", errCorrupt, len(b))
	}
	return counters{
		State:         spd.State(b[0]),
		Balance:       int64(binary.BigEndian.Uint64(b[1:])),
		Uses:          binary.BigEndian.Uint32(b[9:]),
		ATC:           binary.BigEndian.Uint32(b[13:]),
		UpdateCounter: binary.BigEndian.Uint32(b[17:]),
		LastSync:      binary.BigEndian.Uint32(b[21:]),
		Tier:          b[25],
		Limits: spd.Limits{
			MaxPayment:      int64(binary.BigEndian.Uint64(b[26:])),
			MaxPending:      int64(binary.BigEndian.Uint64(b[34:])),
			MaxOfflineCount: int(binary.BigEndian.Uint16(b[42:])),
			MaxOfflineAge:   time.Duration(binary.BigEndian.Uint32(b[44:])) * time.Second,
		},
		TransferSerial: binary.BigEndian.Uint64(b[48:]),
	}, nil
}

// record is a pending record as the device keeps it (unsigned: READ
// PENDING signs it on export).
//
//	kind (1) mode (1) ATC (4) amount (8) time (4) serial (8)
//	token len (1) token, payee len (1) payee, counterpart len (1) counterpart,
//	payee nonce len (1) payee nonce, nonce len (1) nonce,
//	exchange len (1) exchange: kind (1) target currency (2) n (4) d (4) target (8)
type record struct {
	Kind        spd.PaymentKind
	Mode        spd.Mode
	ATC         uint32
	Amount      int64
	Time        uint32
	Serial      uint64
	Token       []byte
	Payee       []byte
	Counterpart []byte
	PayeeNonce  []byte // DF07 of the PAY (SPD-PAY-8)
	Nonce       []byte // the payment nonce 9F37 (SPD-PAY-8)
	Exchange    *exchangeRec
}

// exchangeRec is what an exchange record (kind 07) bought, at which rate.
type exchangeRec struct {
	Kind           spd.ExchangeKind
	TargetCurrency uint16
	Numerator      uint32
	Denominator    uint32
	Target         uint64
}

const exchangeLen = 19

func (x *exchangeRec) marshal() []byte {
	if x == nil {
		return nil
	}
	b := make([]byte, exchangeLen)
	b[0] = byte(x.Kind)
	binary.BigEndian.PutUint16(b[1:], x.TargetCurrency)
	binary.BigEndian.PutUint32(b[3:], x.Numerator)
	binary.BigEndian.PutUint32(b[7:], x.Denominator)
	binary.BigEndian.PutUint64(b[11:], x.Target)
	return b
}

// A stored record is 26 fixed bytes, then length-prefixed token, payee,
// counterpart, payee nonce, payment nonce and, for an exchange, the
// exchange. Records written before the payment nonce existed end after
// the counterpart; a record of any other kind ends after the nonce.
func (r record) marshal() []byte {
	b := make([]byte, 26, 26+5+len(r.Token)+len(r.Payee)+len(r.Counterpart)+len(r.PayeeNonce)+len(r.Nonce))
	b[0], b[1] = byte(r.Kind), byte(r.Mode)
	binary.BigEndian.PutUint32(b[2:], r.ATC)
	binary.BigEndian.PutUint64(b[6:], uint64(r.Amount))
	binary.BigEndian.PutUint32(b[14:], r.Time)
	binary.BigEndian.PutUint64(b[18:], r.Serial)
	parts := [][]byte{r.Token, r.Payee, r.Counterpart, r.PayeeNonce, r.Nonce}
	if r.Exchange != nil {
		parts = append(parts, r.Exchange.marshal())
	}
	for _, v := range parts {
		b = append(b, byte(len(v)))
		b = append(b, v...)
	}
	return b
}

func parseRecord(b []byte) (record, error) {
	if len(b) < 29 {
		return record{}, fmt.Errorf("%w: record of %d bytes", errCorrupt, len(b))
	}
	r := record{
		Kind:   spd.PaymentKind(b[0]),
		Mode:   spd.Mode(b[1]),
		ATC:    binary.BigEndian.Uint32(b[2:]),
		Amount: int64(binary.BigEndian.Uint64(b[6:])),
		Time:   binary.BigEndian.Uint32(b[14:]),
		Serial: binary.BigEndian.Uint64(b[18:]),
	}
	rest := b[26:]
	var parts [6][]byte
	legacy, hasExchange := false, false
	for i := range parts {
		if i == 3 && len(rest) == 0 {
			legacy = true // a record from before the payment nonce
			break
		}
		if i == 5 && len(rest) == 0 {
			break // a record that is no exchange
		}
		if i == 5 {
			hasExchange = true
		}
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return record{}, fmt.Errorf("%w: record truncated", errCorrupt)
		}
		n := int(rest[0])
		if n > 0 {
			parts[i] = append([]byte(nil), rest[1:1+n]...)
		}
		rest = rest[1+n:]
	}
	if len(rest) != 0 {
		return record{}, fmt.Errorf("%w: record with trailing bytes", errCorrupt)
	}
	r.Token, r.Payee, r.Counterpart, r.PayeeNonce, r.Nonce = parts[0], parts[1], parts[2], parts[3], parts[4]
	if x := parts[5]; hasExchange {
		if len(x) != exchangeLen || r.Kind != spd.KindExchange {
			return record{}, fmt.Errorf("%w: exchange of %d bytes in a record of kind %v", errCorrupt, len(x), r.Kind)
		}
		r.Exchange = &exchangeRec{Kind: spd.ExchangeKind(x[0]), TargetCurrency: binary.BigEndian.Uint16(x[1:]),
			Numerator: binary.BigEndian.Uint32(x[3:]), Denominator: binary.BigEndian.Uint32(x[7:]), Target: binary.BigEndian.Uint64(x[11:])}
	} else if r.Kind == spd.KindExchange {
		return record{}, fmt.Errorf("%w: exchange record without its exchange", errCorrupt)
	}
	if legacy && r.Kind.IsPayment() {
		// A payment record from before SPD-PAY-8 gets a nonce fixed by its
		// stored bytes, so that every export of it is the same record.
		sum := sha256.Sum256(append([]byte("SPDLAB-LEGACY-NONCE"), b...))
		r.Nonce = sum[:16]
	}
	return r, nil
}

// token is an issued payment token with its domain controls (C22).
type token struct {
	MaxTxns   uint32
	MaxAmount int64
	Channels  uint8
	Expiry    uint32
	Used      uint32
}

const tokenLen = 21

func (t token) marshal() []byte {
	b := make([]byte, tokenLen)
	binary.BigEndian.PutUint32(b[0:], t.MaxTxns)
	binary.BigEndian.PutUint64(b[4:], uint64(t.MaxAmount))
	b[12] = t.Channels
	binary.BigEndian.PutUint32(b[13:], t.Expiry)
	binary.BigEndian.PutUint32(b[17:], t.Used)
	return b
}

func parseToken(b []byte) (token, error) {
	if len(b) != tokenLen {
		return token{}, fmt.Errorf("%w: token of %d bytes", errCorrupt, len(b))
	}
	return token{
		MaxTxns:   binary.BigEndian.Uint32(b[0:]),
		MaxAmount: int64(binary.BigEndian.Uint64(b[4:])),
		Channels:  b[12],
		Expiry:    binary.BigEndian.Uint32(b[13:]),
		Used:      binary.BigEndian.Uint32(b[17:]),
	}, nil
}

// transfer is an outgoing transfer the payer's device keeps until the host
// closes it (ACKNOWLEDGE serial list) or the payer reclaims it.
type transfer struct {
	Amount int64
	Payee  []byte
	Expiry uint32
	ATC    uint32
	Time   uint32
	Status uint8 // 0 outstanding, 1 reclaimed
}

const transferLen = 29

const (
	transferOutstanding uint8 = 0
	transferReclaimed   uint8 = 1
)

func (t transfer) marshal() []byte {
	b := make([]byte, transferLen)
	binary.BigEndian.PutUint64(b[0:], uint64(t.Amount))
	copy(b[8:16], t.Payee)
	binary.BigEndian.PutUint32(b[16:], t.Expiry)
	binary.BigEndian.PutUint32(b[20:], t.ATC)
	binary.BigEndian.PutUint32(b[24:], t.Time)
	b[28] = t.Status
	return b
}

func parseTransfer(b []byte) (transfer, error) {
	if len(b) != transferLen {
		return transfer{}, fmt.Errorf("%w: transfer of %d bytes", errCorrupt, len(b))
	}
	return transfer{
		Amount: int64(binary.BigEndian.Uint64(b[0:])),
		Payee:  append([]byte(nil), b[8:16]...),
		Expiry: binary.BigEndian.Uint32(b[16:]),
		ATC:    binary.BigEndian.Uint32(b[20:]),
		Time:   binary.BigEndian.Uint32(b[24:]),
		Status: b[28],
	}, nil
}

func pendKey(atc uint32) string    { return fmt.Sprintf("%s%08x", prefixPend, atc) }
func xferKey(serial uint64) string { return fmt.Sprintf("%s%016x", prefixXfer, serial) }
func tokKey(tok []byte) string     { return fmt.Sprintf("%s%x", prefixTok, tok) }
func impKey(payer []byte, serial uint64) string {
	return fmt.Sprintf("%s%x/%016x", prefixImp, payer, serial)
}
