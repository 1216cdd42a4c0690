package terminal

import (
	"fmt"
	"strings"

	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/spd"
)

// Status is what became of a service: done once, or not done (C29, C31).
// There is no third answer: a flow that cannot tell resolves the doubt
// (it reads the device's counters, or repeats an idempotent backend call)
// before it answers.
type Status uint8

// Statuses of an Outcome.
const (
	Done    Status = 1
	NotDone Status = 2
)

func (s Status) String() string {
	switch s {
	case Done:
		return "done"
	case NotDone:
		return "not done"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// Flow names a service the terminal runs.
type Flow string

// The terminal's flows.
const (
	FlowPay            Flow = "pay"
	FlowSettle         Flow = "settle"
	FlowSync           Flow = "sync"
	FlowShowMedium     Flow = "show"
	FlowToken          Flow = "token"
	FlowTransferOut    Flow = "transfer-out"
	FlowTransferIn     Flow = "transfer-in"
	FlowReclaim        Flow = "reclaim"
	FlowOnlineTransfer Flow = "transfer-online"
	FlowClaim          Flow = "claim"
	FlowOnlineReclaim  Flow = "reclaim-online"
	FlowVerify         Flow = "verify"
	FlowPresentCode    Flow = "present-code"
	FlowExchange       Flow = "exchange"
)

// Outcome is the result of one flow as the terminal reports it to the user
// (C29): done once, or not done with the reason.
type Outcome struct {
	Flow   Flow
	Status Status
	// Reason says why a service was not done, or what is left to happen
	// to one that was (settlement of a pending record, say).
	Reason string
	// Online is true when the backend confirmed the service in real time
	// (C30).
	Online bool
	// Pending is true when the device recorded the service and the
	// backend has not yet settled it (C4): it settles on a later Settle.
	Pending bool
	// Retry is true for a not-done online service whose request may have
	// reached the backend: sending it again with the same ID takes effect
	// at most once.
	Retry bool

	Kind      spd.PaymentKind
	Amount    int64 // adjusted amount (C18), transfer amount
	Currency  uint16
	Balance   int64 // the device's balance after the service
	ATC       uint32
	Payee     string
	Reference string
	Serial    uint64 // transfer serial
	Token     []byte
	// Bought is what an exchange bought (SPEC.md 4.11): uses, or minor
	// units of BoughtCurrency.
	Bought         uint64
	BoughtCurrency uint16
	Uses           uint32 // the device's uses after an exchange

	// Result is the device's signed result or medium, when it answered one.
	Result *spd.Result
	// Authorisation is the backend's signed real-time answer (C30).
	Authorisation *backend.AuthorisationResult
	// Settlement is the backend's signed acknowledgement of a batch.
	Settlement *backend.SettlementAck
	// Transfer is the backend's record of an online transfer.
	Transfer *backend.Transfer
	// Settled and AlreadySettled count the records of a settlement;
	// Refused lists records the backend refused (they stay on the device).
	Settled, AlreadySettled int
	// Held counts transfer-ins the backend stored but credits only when
	// their payer's transfer-out settles (the device may clear them).
	Held    int
	Refused []RefusedRecord
	// Left is the number of records on the device's ledger afterwards.
	Left int
	// Applied counts the parameter updates applied by a Sync.
	Applied int
}

// RefusedRecord is a ledger record the backend refused to settle.
type RefusedRecord struct {
	ATC    uint32
	Code   string
	Reason string
}

// Err returns nil for a done service and an error with the reason for one
// not done.
func (o Outcome) Err() error {
	if o.Status == Done {
		return nil
	}
	return fmt.Errorf("terminal: %s not done: %s", o.Flow, o.Reason)
}

// String is the line a user reads.
func (o Outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", o.Flow, o.Status)
	if o.Amount != 0 || o.Flow == FlowPay {
		fmt.Fprintf(&b, ", amount %d", o.Amount)
	}
	if o.ATC != 0 {
		fmt.Fprintf(&b, ", ATC %d", o.ATC)
	}
	if o.Flow == FlowExchange && o.Bought != 0 {
		if o.BoughtCurrency != 0 {
			fmt.Fprintf(&b, ", bought %d minor units of currency %03d", o.Bought, o.BoughtCurrency)
		} else {
			fmt.Fprintf(&b, ", bought %d uses (%d now)", o.Bought, o.Uses)
		}
	}
	switch {
	case o.Online:
		b.WriteString(", confirmed online")
	case o.Pending:
		b.WriteString(", pending settlement")
	}
	if o.Flow == FlowSettle {
		fmt.Fprintf(&b, ", %d settled, %d already settled, %d refused, %d left", o.Settled, o.AlreadySettled, len(o.Refused), o.Left)
		if o.Held > 0 {
			fmt.Fprintf(&b, ", %d held until the payer settles", o.Held)
		}
	}
	if o.Reason != "" {
		fmt.Fprintf(&b, " (%s)", o.Reason)
	}
	return b.String()
}
