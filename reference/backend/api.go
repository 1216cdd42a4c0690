package backend

import (
	"fmt"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

// The JSON bodies of the HTTP API (API.md describes each endpoint). Byte
// strings ([]byte) travel as standard Base64; times as RFC 3339; amounts as
// integers in minor units of the device's currency.

// Registration personalises a device at the issuer: POST /v1/devices.
type Registration struct {
	// DeviceID is the device's 8-byte ID in upper-case hex (spd.DeviceIDString).
	DeviceID string `json:"device_id"`
	// PublicKey is the device's ECDSA P-256 key, PKIX DER. Used when the
	// backend has no issuer CA; otherwise Certificate is required.
	PublicKey []byte `json:"public_key,omitempty"`
	// Certificate is the device certificate (X.509 DER) signed by the issuer CA.
	Certificate []byte `json:"certificate,omitempty"`
	// Account is the designated account (C21) that holds the device's value.
	Account string `json:"account"`
	// AccountToken, if set, is registered in the vault as the device's
	// embedded payment token (C25, C26) with no domain controls: upper-case
	// hex of the token bytes the device writes into its records.
	AccountToken string `json:"account_token,omitempty"`
	// Currency is the ISO 4217 numeric code (156 for CNY).
	Currency uint16 `json:"currency"`
	// InitialBalance is the value issued onto the device.
	InitialBalance int64 `json:"initial_balance"`
	// Phone receives SMS one-time codes (C33).
	Phone string `json:"phone,omitempty"`
}

// Device is the issuer's view of one device: GET /v1/devices/{id}.
type Device struct {
	DeviceID   string `json:"device_id"`
	Account    string `json:"account"`
	Currency   uint16 `json:"currency"`
	CertSerial string `json:"cert_serial,omitempty"`
	// Issued is all value ever issued onto the device.
	Issued int64 `json:"issued"`
	// Balance is the issuer's view of the device's stored value: issued,
	// less settled and held payments and transfers out, plus transfers in.
	Balance int64 `json:"balance"`
	// ReportedBalance and ReportedATC are what the device last said on contact.
	ReportedBalance *int64 `json:"reported_balance,omitempty"`
	ReportedATC     *int64 `json:"reported_atc,omitempty"`
	// ParameterCounter is the counter of the last parameter update queued;
	// ParameterApplied the last one the device said it applied.
	ParameterCounter int64 `json:"parameter_counter"`
	ParameterApplied int64 `json:"parameter_applied"`
	Revoked          bool  `json:"revoked"`
}

// AuthorisationRequest asks for an online payment authorisation: POST
// /v1/authorisations. Record is the device's signed record of the payment.
type AuthorisationRequest struct {
	Record []byte `json:"record"`
	// Channel is how the payment is made ("qr", "nfc", "online", ...); a
	// token's domain controls may restrict it (C22).
	Channel  string `json:"channel"`
	Merchant string `json:"merchant,omitempty"`
	// Hold reserves the amount (pending) until the record is settled in a
	// batch; otherwise the payment is settled at once.
	Hold bool `json:"hold,omitempty"`
}

// AuthorisationStatus is the outcome of an authorisation (C31).
type AuthorisationStatus string

// Authorisation outcomes.
const (
	Approved AuthorisationStatus = "approved"
	Declined AuthorisationStatus = "declined"
)

// AuthorisationResult is the backend's real-time answer (C30), signed with
// the backend key (see AuthorisationResult.SignedBytes).
type AuthorisationResult struct {
	DeviceID string              `json:"device_id"`
	ATC      uint32              `json:"atc"`
	Amount   int64               `json:"amount"`
	Currency uint16              `json:"currency"`
	Status   AuthorisationStatus `json:"status"`
	Reason   string              `json:"reason,omitempty"`
	// Account is the detokenised designated account (C24).
	Account string `json:"account,omitempty"`
	// Settled is true when the payment was settled at once (not held).
	Settled bool `json:"settled"`
	// Balance is the issuer's view of the device balance after the payment.
	Balance int64     `json:"balance"`
	Time    time.Time `json:"time"`
	// Repeated is true when this answers a record already authorised: the
	// stored result is returned and nothing changes.
	Repeated  bool   `json:"repeated,omitempty"`
	Signature []byte `json:"signature"`
}

// SettlementBatch hands over pending offline records (C4): POST
// /v1/settlements. Records are the devices' signed record bytes.
type SettlementBatch struct {
	// BatchID names the batch in the acknowledgement (optional, <= 64 bytes).
	BatchID string   `json:"batch_id,omitempty"`
	Records [][]byte `json:"records"`
}

// SettlementStatus is the fate of one record in a batch.
type SettlementStatus string

// Settlement outcomes. Both tell the device it may clear the record.
const (
	// Settled: the record was settled by this batch.
	Settled SettlementStatus = "settled"
	// AlreadySettled: an earlier batch settled it; nothing changed now.
	AlreadySettled SettlementStatus = "already_settled"
	// Held: a transfer-in stored but not credited until its payer's
	// transfer-out settles (API.md, "Value and the audit").
	Held SettlementStatus = "held"
	// Reversed: the issuer reversed this payment (POST /v1/reversals);
	// it is never settled and the device drops it.
	Reversed SettlementStatus = "reversed"
)

// SettlementEntry is one record's outcome.
type SettlementEntry struct {
	DeviceID string           `json:"device_id"`
	ATC      uint32           `json:"atc"`
	Kind     string           `json:"kind"`
	Amount   int64            `json:"amount"`
	Status   SettlementStatus `json:"status"`
	// Account is the detokenised designated account the amount was taken
	// from (C24).
	Account string `json:"account"`
}

// SettlementAck is the backend-signed acknowledgement, sent only after the
// batch is committed. A device clears each listed record from its ledger.
type SettlementAck struct {
	BatchID   string            `json:"batch_id,omitempty"`
	Entries   []SettlementEntry `json:"entries"`
	Time      time.Time         `json:"time"`
	Signature []byte            `json:"signature"`
	// Acknowledgements holds, for each device of the batch, the
	// host-signed ACKNOWLEDGE commands (spd.Acknowledge, APDU bytes) that
	// clear its ledger of the records settled and the transfers closed.
	Acknowledgements []DeviceAcknowledgement `json:"acknowledgements"`
}

// DeviceAcknowledgement is what one device is sent after a settlement.
type DeviceAcknowledgement struct {
	DeviceID string   `json:"device_id"`
	ATCs     []uint32 `json:"atcs"`
	Serials  []uint64 `json:"serials,omitempty"`
	// Commands are ACKNOWLEDGE command APDUs (at most spd.MaxAckEntries
	// entries each), signed with the backend's host key.
	Commands [][]byte `json:"commands"`
}

// Contact is what a device (through its terminal) says when it reaches the
// backend: POST /v1/devices/{id}/contact.
type Contact struct {
	// Applied is the counter of the last parameter update the device applied.
	Applied int64 `json:"applied"`
	// Balance and ATC, if set, are the device's own figures, kept as reported.
	Balance *int64  `json:"balance,omitempty"`
	ATC     *uint32 `json:"atc,omitempty"`
}

// ContactReply delivers the parameter updates queued since Applied (C14, C15).
type ContactReply struct {
	DeviceID string            `json:"device_id"`
	Updates  []ParameterUpdate `json:"updates"`
	// Acknowledge holds host-signed ACKNOWLEDGE commands (APDU bytes) that
	// close the device's outgoing transfers closed at the backend (their
	// transfer-in or reclaim settled) in the last CloseNotice, whichever
	// device settled first; a device ignores a serial it no longer keeps.
	Acknowledge [][]byte `json:"acknowledge,omitempty"`
}

// ParameterUpdate is a change of a device's parameters (spd.ParameterUpdate),
// queued by the issuer (POST /v1/devices/{id}/parameters) and delivered on
// the device's next contact as a host-signed UPDATE PARAMETERS command. The
// counter rises by one per device; a device applies each counter once.
// A top-up is value issued: it counts in the audit from the moment it is queued.
type ParameterUpdate struct {
	Counter int64       `json:"counter,omitempty"`
	TopUp   int64       `json:"top_up,omitempty"`
	AddUses uint32      `json:"add_uses,omitempty"`
	Limits  *spd.Limits `json:"limits,omitempty"`
	Tier    *uint8      `json:"tier,omitempty"`
	State   *uint8      `json:"state,omitempty"`
	// Reverses, set by the backend only, is the ATC of the device's
	// payment record this update reverses (POST /v1/reversals): its top-up
	// or uses give back what the device paid for a payment the issuer
	// never settled. It is not issued value and does not move the
	// issuer's view of the balance, which never took the payment.
	Reverses uint32 `json:"reverses,omitempty"`
	// Command is the UPDATE PARAMETERS command APDU to send to the device
	// (in answers only).
	Command []byte `json:"command,omitempty"`
}

// ReversalRequest reverses a payment a device made that the issuer
// refused, or will not settle, after the device paid: POST /v1/reversals
// (issuer credential).
type ReversalRequest struct {
	// Record is the device's signed payment record (READ PENDING).
	Record []byte `json:"record"`
	// Reason says why, for the books (1..200 printable characters).
	Reason string `json:"reason"`
}

// Reversal is a reversed payment: the record is kept, answered
// "reversed" by every later settlement (the device drops it from its
// ledger on the acknowledgement), and the device is given back what it
// paid by the update Update, delivered at its next contact.
type Reversal struct {
	DeviceID string           `json:"device_id"`
	ATC      uint32           `json:"atc"`
	Kind     string           `json:"kind"`
	Amount   int64            `json:"amount"`
	Reason   string           `json:"reason"`
	Time     time.Time        `json:"time"`
	Update   *ParameterUpdate `json:"update,omitempty"`
	Repeated bool             `json:"repeated,omitempty"`
}

// TokenRequest mints or registers a payment token with domain controls
// (C20, C22): POST /v1/tokens.
type TokenRequest struct {
	DeviceID string `json:"device_id"`
	// Token is the value to register, upper-case hex of 1 to 64 bytes;
	// empty mints a new random 16-byte one.
	Token string `json:"token,omitempty"`
	// MaxUses limits the number of transactions (0: no limit).
	MaxUses int64 `json:"max_uses,omitempty"`
	// MaxAmount limits each transaction's amount (0: no limit).
	MaxAmount int64 `json:"max_amount,omitempty"`
	// NotBefore and NotAfter bound the validity period (zero: open).
	NotBefore time.Time `json:"not_before,omitempty"`
	NotAfter  time.Time `json:"not_after,omitempty"`
	// Channels lists the payment channels allowed (empty: any). Offline
	// settlement is the channel "offline".
	Channels []string `json:"channels,omitempty"`
}

// Token is a vault entry: GET /v1/tokens/{token}.
type Token struct {
	Token     string    `json:"token"`
	DeviceID  string    `json:"device_id"`
	MaxUses   int64     `json:"max_uses,omitempty"`
	Uses      int64     `json:"uses"`
	MaxAmount int64     `json:"max_amount,omitempty"`
	NotBefore time.Time `json:"not_before,omitempty"`
	NotAfter  time.Time `json:"not_after,omitempty"`
	Channels  []string  `json:"channels,omitempty"`
}

// OTPRequest asks for an SMS one-time code to the device's phone: POST /v1/otp.
type OTPRequest struct {
	DeviceID string `json:"device_id"`
	Purpose  string `json:"purpose,omitempty"`
}

// OTPChallenge names a code that was sent.
type OTPChallenge struct {
	ID        string    `json:"otp_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Tries     int       `json:"tries"`
}

// OTPAnswer checks a code: POST /v1/otp/verify.
type OTPAnswer struct {
	ID   string `json:"otp_id"`
	Code string `json:"code"`
}

// OTPVerdict is the answer to a right code.
type OTPVerdict struct {
	ID       string `json:"otp_id"`
	DeviceID string `json:"device_id"`
	Purpose  string `json:"purpose,omitempty"`
	Verified bool   `json:"verified"`
}

// Revocation puts a device or a certificate on the revocation list: POST
// /v1/revocations. Exactly one of DeviceID and CertSerial is set.
type Revocation struct {
	DeviceID   string    `json:"device_id,omitempty"`
	CertSerial string    `json:"cert_serial,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Time       time.Time `json:"time,omitempty"`
}

// TransferRequest hands the backend an online transfer: POST
// /v1/transfers. The payer's device has made it with TRANSFER (SPEC.md
// SPD-XFR-1, SPD-XFR-5): its balance is debited and the medium is bound to
// the payee's device. The backend settles the transfer-out record at once
// (the value is in flight) and carries the medium to the payee's terminal,
// whose device imports it with TRANSFER IN (a claim). TransferID is chosen
// by the payer side and makes the request idempotent.
type TransferRequest struct {
	TransferID string `json:"transfer_id"`
	// Medium is the transfer medium (Kind 2) the payer's device answered
	// to TRANSFER: the envelope of SPEC.md section 7, signed by its key.
	Medium []byte `json:"medium"`
	// Record is the payer device's signed transfer-out record of it
	// (READ PENDING, SPEC.md section 8).
	Record []byte `json:"record"`
}

// TransferState is where a transfer stands.
type TransferState string

// Transfer states.
const (
	// TransferInFlight: the payer's device debited, the payee's has not
	// imported it yet.
	TransferInFlight TransferState = "in_flight"
	// TransferClaimed: the payee's device imported it and its transfer-in
	// record settled.
	TransferClaimed TransferState = "claimed"
	// TransferReclaimOrdered: expired and not imported, the backend signed
	// a RECLAIM for the payer's device; a transfer-in of it is refused.
	TransferReclaimOrdered TransferState = "reclaim_ordered"
	// TransferReclaimed: the payer's reclaim record settled.
	TransferReclaimed TransferState = "reclaimed"
)

// Transfer is a transfer's record: GET /v1/transfers/{id}, and the answer
// of each step.
type Transfer struct {
	TransferID string        `json:"transfer_id"`
	From       string        `json:"from"`
	To         string        `json:"to"`
	Amount     int64         `json:"amount"`
	Serial     uint64        `json:"serial,omitempty"`
	State      TransferState `json:"state"`
	Expires    time.Time     `json:"expires,omitempty"`
	Repeated   bool          `json:"repeated,omitempty"`
	// Medium is the transfer medium for the payee's device (TRANSFER IN).
	Medium []byte `json:"medium,omitempty"`
	// Acknowledge holds the host-signed ACKNOWLEDGE commands (APDU bytes)
	// for the device whose record this step settled: the payer's after a
	// transfer, the payee's after a claim.
	Acknowledge [][]byte `json:"acknowledge,omitempty"`
	// Reclaim is the host-signed RECLAIM command (APDU bytes) for the
	// payer's device, answered by the reclaim step.
	Reclaim []byte `json:"reclaim,omitempty"`
}

// TransferAction claims an online transfer (POST /v1/transfers/{id}/claim:
// DeviceID is the payee, Record its device's signed transfer-in record of
// the medium) or asks for its RECLAIM (POST /v1/transfers/{id}/reclaim:
// DeviceID is the payer, Signature its device's INTERNAL AUTHENTICATE
// answer to TransferActionChallenge).
type TransferAction struct {
	DeviceID  string `json:"device_id"`
	Record    []byte `json:"record,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// ReclaimRequest asks for the host-signed RECLAIM of an offline transfer
// nobody imported: POST /v1/reclaims. Medium is the transfer medium as the
// payer's device shows it again (TRANSFER SHOW), signed by its key.
type ReclaimRequest struct {
	Medium []byte `json:"medium"`
}

// ReclaimOrder is the backend's RECLAIM order for the payer's device
// (SPEC.md SPD-XFR-4): signed only after the transfer expired and while no
// import receipt of it has reached the backend; from then on the backend
// refuses to settle one. Repeated is set when it was ordered before.
type ReclaimOrder struct {
	Payer    string    `json:"payer"`
	Serial   uint64    `json:"serial"`
	Amount   int64     `json:"amount"`
	Expires  time.Time `json:"expires"`
	Time     time.Time `json:"time"`
	Command  []byte    `json:"command"`
	Repeated bool      `json:"repeated,omitempty"`
}

// Audit proves value is conserved: GET /v1/audit. Each figure comes from
// its own table, and each device's balance is recomputed from the records
// and transfers that moved it (API.md, "Value and the audit"):
//
//	Issued == Balances + Pending + Settled + InFlight
//
// Conserved is true only when that holds and no Discrepancy was found.
type Audit struct {
	Conserved bool `json:"conserved"`
	// Issued is the initial balances of the registrations plus the top-ups
	// of the parameter updates.
	Issued int64 `json:"issued"`
	// Balances is the sum of the issuer's view of every device balance.
	Balances int64 `json:"balances"`
	// Pending is the value of authorisations held and not yet settled.
	Pending int64 `json:"pending"`
	Settled int64 `json:"settled"`
	// InFlight is the value of held online transfers not yet claimed or
	// reclaimed, and of offline transfers whose payer's transfer-out is
	// settled and whose payee's transfer-in (or payer's reclaim) is not.
	InFlight int64 `json:"in_flight"`
	// HeldIn is the value of transfer-ins stored but not credited: their
	// payer's transfer-out has not settled (outside the equation: no
	// balance holds it on the issuer's side).
	HeldIn int64 `json:"held_in"`
	// Exchanged is the stored value settled exchange records (kind 07,
	// SPEC.md 4.11) took from device balances: part of the equation,
	// issued = balances + pending + settled + in_flight + exchanged.
	Exchanged int64 `json:"exchanged"`
	// UsesSold is the uses those exchanges bought; PaidOut, by currency
	// bought (ISO 4217 numeric, three digits), the minor units they paid to
	// the designated accounts.
	UsesSold int64            `json:"uses_sold"`
	PaidOut  map[string]int64 `json:"paid_out,omitempty"`
	// ReportedBalances sums what devices last reported on contact (devices
	// that never reported count their issuer view), for comparison.
	ReportedBalances int64 `json:"reported_balances"`
	// PayeesPaid is the sum of the payees' (merchants') balances at the
	// issuer: every settled payment credited its payee, so it equals
	// Settled; each payee's balance is checked against the records naming
	// it. Payees counts the payee accounts.
	PayeesPaid int64 `json:"payees_paid"`
	Payees     int64 `json:"payees"`
	// Billed is the value of settled account payments (kind 02): what the
	// designated accounts' bills (GET /v1/accounts/{id}/bill) add up to.
	Billed         int64 `json:"billed"`
	Devices        int64 `json:"devices"`
	RecordsSettled int64 `json:"records_settled"`
	RecordsPending int64 `json:"records_pending"`
	RecordsHeldIn  int64 `json:"records_held_in"`
	TransfersHeld  int64 `json:"transfers_in_flight"`
	// Discrepancies lists every stored value that breaks the books, each
	// naming the device, record or transfer at fault.
	Discrepancies []Discrepancy `json:"discrepancies"`
	// Differences lists the devices whose last reported balance differs
	// from the issuer's view (offline payments not yet settled, a missed
	// update): not a fault by itself, but where to look.
	Differences []ViewDifference `json:"differences"`
	// Flagged lists the devices that signed two different records with
	// one ATC (clones), with the evidence kept.
	Flagged []FlaggedDevice `json:"flagged"`
}

// FlaggedDevice is a device caught signing conflicting records.
type FlaggedDevice struct {
	DeviceID string `json:"device_id"`
	// Conflicts counts the conflicting records kept as evidence; ATCs
	// lists their ATCs, comma-separated.
	Conflicts int64  `json:"conflicts"`
	ATCs      string `json:"atcs"`
	Revoked   bool   `json:"revoked"`
}

// Discrepancy is one fault the audit found.
type Discrepancy struct {
	// Source is the table the faulty value was found in: devices, params,
	// records, transfers, offline_transfers, payees, or "totals".
	Source   string `json:"source"`
	DeviceID string `json:"device_id,omitempty"`
	ATC      *int64 `json:"atc,omitempty"`
	Transfer string `json:"transfer,omitempty"`
	Payee    string `json:"payee,omitempty"`
	// Expected and Found are the amounts compared, when amounts are.
	Expected *int64 `json:"expected,omitempty"`
	Found    *int64 `json:"found,omitempty"`
	Detail   string `json:"detail"`
}

// ViewDifference is a device whose reported balance differs from the
// issuer's view.
type ViewDifference struct {
	DeviceID        string `json:"device_id"`
	IssuerBalance   int64  `json:"issuer_balance"`
	ReportedBalance int64  `json:"reported_balance"`
	ReportedATC     *int64 `json:"reported_atc,omitempty"`
}

// Health is the body of GET /healthz.
type Health struct {
	// Status is "serving", or "damaged" (with 503) when a check failed.
	Status string `json:"status"`
	// Problems says what failed: the database unreadable, its structure
	// damaged (PRAGMA quick_check), or the audit's discrepancies.
	Problems []string `json:"problems,omitempty"`
}

// PublicKey is the backend's signing key: GET /v1/keys.
type PublicKey struct {
	// PKIX is the ECDSA P-256 public key, PKIX DER.
	PKIX []byte `json:"pkix"`
}

// ErrorBody is every 4xx and 5xx answer.
type ErrorBody struct {
	// Code is a stable machine-readable reason (see the Code constants).
	Code   string `json:"code"`
	Reason string `json:"error"`
	// Index is the record index in a settlement batch, when one is at fault.
	Index *int `json:"index,omitempty"`
	// TriesLeft is set on a wrong one-time code.
	TriesLeft *int `json:"tries_left,omitempty"`
}

// Stable error codes of ErrorBody.Code.
const (
	CodeMalformed       = "malformed"
	CodeTooLarge        = "too_large"
	CodeUnknownDevice   = "unknown_device"
	CodeDeviceExists    = "device_exists"
	CodeRevoked         = "revoked"
	CodeBadSignature    = "bad_signature"
	CodeBadCertificate  = "bad_certificate"
	CodeConflict        = "conflict"
	CodeUnknownToken    = "unknown_token"
	CodeTokenRefused    = "token_refused"
	CodeInsufficient    = "insufficient_balance"
	CodeOTPExpired      = "otp_expired"
	CodeOTPWrong        = "otp_wrong"
	CodeOTPLocked       = "otp_locked"
	CodeUnknownOTP      = "unknown_otp"
	CodeUnknownTransfer = "unknown_transfer"
	CodeTransferState   = "transfer_state"
	CodeNotFound        = "not_found"
	CodeUnauthorised    = "unauthorised"
	CodeForbidden       = "forbidden"
	CodeLimit           = "over_limit"
	CodeRateLimited     = "rate_limited"
	CodeMediaType       = "unsupported_media_type"
	CodeMethod          = "method_not_allowed"
	CodeDamaged         = "damaged_record"
	CodeInternal        = "internal"
)

// APIError is a non-2xx answer, as the Client returns it.
type APIError struct {
	Status int
	ErrorBody
}

func (e *APIError) Error() string {
	return fmt.Sprintf("backend: %d %s: %s", e.Status, e.Code, e.Reason)
}
