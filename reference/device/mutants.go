package device

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Mutant is a deliberate non-conformance the reference device can be run
// with (Config.Mutant): a plausible vendor bug that breaks one requirement
// of SPEC.md. The mutants exist to prove that the conformance suite fails
// a device that has any of them (`make mutants`); they live only here, in
// the device under test, and in the card OS: its ATR (emulator.FaultyATR)
// and the eUICC's channels (emulator/esim, Card.Mutant: the esim-*
// mutants of SPD-ESIM-1 and SPD-ESIM-3), never in
// the codecs (reference/spd, apdu, tlv, medium) the suite builds its
// expectations with.
type Mutant struct {
	// Name selects the mutant (Config.Mutant, DUT faulty:NAME).
	Name string
	// Requirement is the SPEC.md requirement the bug breaks.
	Requirement string
	// Bug says what the device does wrong.
	Bug string
}

// Mutants is the catalogue, grouped by area.
var Mutants = []Mutant{
	// Whole-device faults.
	{"status-9000", "SPD-APP-3", "answers 9000 where it refused a command"},
	{"stale-result", "SPD-PAY-5", "answers every PAY after the first with the first payment's signed result"},
	{"stale-balance", "SPD-PAY-1", "reports, after its first payment, the balance it had before it"},
	{"tear-answers", "SPD-STO-2", "answers 6581 to a command during which it lost power"},

	// Payment codes presented to a merchant (SPEC.md 4.9).
	{"code-no-challenge", "SPD-PRC-2", "leaves the merchant's challenge (DF07) out of a payment code"},
	{"code-life-unbounded", "SPD-PRC-2", "accepts a payment code life beyond 300 s"},
	{"code-record-unsigned", "SPD-PRC-1", "puts a payment code's record in with a signature over the body without the domain"},
	{"code-before-commit", "SPD-PRC-1", "answers a payment code without committing its payment (no ledger record, no ATC)"},
	{"code-age-unchecked", "SPD-LED-3", "ignores the max seconds since sync for PRESENT CODE"},
	{"code-account-debits", "SPD-PRC-1", "makes a kind 02 PRESENT CODE a kind 01 payment from the stored balance"},

	// Merchant codes and stored media (SPEC.md 4.7, 4.8).
	{"merchant-no-reference", "SPD-MPM-1", "leaves the order reference (DF07) out of a parsed merchant code"},
	{"merchant-crc-unchecked", "SPD-MPM-1", "parses a merchant code whatever its CRC (object 63)"},
	{"merchant-reference-unbounded", "SPD-MPM-1", "reads a merchant code whose bill number is longer than 32 bytes"},
	{"media-counter-replay", "SPD-STM-1", "stores a medium under an update counter not above the last applied"},
	{"media-shows-expired", "SPD-STM-3", "shows a stored medium after its expiry"},
	{"media-no-capacity", "SPD-STM-4", "stores a new medium beyond its capacity"},

	// Exchange (SPEC.md 4.11).
	{"exchange-unverified", "SPD-PIN-1", "exchanges without cardholder verification"},
	{"exchange-rate-unsigned", "SPD-EXC-2", "reads an exchange rate's body without verifying its signature"},
	{"exchange-rate-any-kind", "SPD-EXC-2", "accepts a rate made for the other kind of exchange or another currency"},
	{"exchange-rate-replay", "SPD-EXC-2", "accepts a rate made for another ATC (a replayed one)"},
	{"exchange-rate-no-expiry", "SPD-EXC-2", "accepts an expired exchange rate"},
	{"exchange-no-remainder", "SPD-EXC-3", "debits the whole amount offered, keeping no truncation remainder"},
	{"exchange-uses-wrap", "SPD-EXC-3", "lets an exchange's uses wrap past 2^32-1 instead of 6A80"},
	{"exchange-no-uses", "SPD-EXC-1", "debits the balance of an exchange into uses but adds no use"},
	{"exchange-no-atc", "SPD-PAY-4", "leaves the ATC as it was on an exchange"},
	{"nonatomic-exchange", "SPD-STO-1", "commits EXCHANGE's counters and ledger record separately"},

	// GET DATA list (SPEC.md 4.2.1).
	{"getdatalist-omits-last", "SPD-GDL-1", "leaves the last tag's object out of a GET DATA list answer"},
	{"getdatalist-stale-atc", "SPD-GDL-1", "answers the ATC in a GET DATA list as it was before the last transaction"},
	{"getdatalist-skips-unknown", "SPD-GDL-2", "answers a GET DATA list naming an unknown tag with the known tags' objects instead of 6A88"},
	{"getdatalist-any-p1p2", "SPD-GDL-2", "answers a GET DATA list whatever its P1-P2 instead of 6A86"},
	{"getdatalist-bumps-atc", "SPD-GDL-3", "adds one to the ATC on every GET DATA list"},

	// Host assertions (SPEC.md 4.10).
	{"assertion-not-required", "SPD-HVA-1", "pays without the host assertion its profile requires"},
	{"assertion-unsigned", "SPD-HVA-2", "reads a host assertion's body without verifying its signature"},
	{"assertion-any-atc", "SPD-HVA-2", "accepts a host assertion made for another ATC (a replayed one)"},
	{"assertion-any-payment", "SPD-HVA-2", "accepts a host assertion made for another amount, currency or payee"},
	{"assertion-no-expiry", "SPD-HVA-2", "accepts an expired host assertion"},
	{"assertion-threshold-adjusted", "SPD-HVA-1", "compares the adjusted amount, not the requested one, with the host assertion threshold"},

	// Selection, command structure and processing order.
	{"select-keeps-session", "SPD-APP-1", "SELECT of an unknown AID answers 6A82 but leaves the application selected"},
	{"reselect-keeps-verified", "SPD-APP-2", "SELECT of the application keeps the cardholder verified"},
	{"reset-keeps-session", "SPD-STO-3", "a warm reset keeps the application selected and the cardholder verified"},
	{"getdata-unselected", "SPD-APP-2", "answers GET DATA before the application is selected"},
	{"selection-before-ins", "SPD-APP-3", "answers 6985 instead of 6D00 to an unknown INS before SELECT"},
	{"cla-6d00", "SPD-APP-3", "answers 6D00 instead of 6E00 to an unknown class"},
	{"p1p2-before-state", "SPD-APP-3", "checks PAY's P1/P2 before the life-cycle state (6A86 instead of 6985)"},
	{"verified-before-data", "SPD-APP-3", "checks cardholder verification before PAY's data field (6982 instead of 6A80)"},
	{"currency-6985", "SPD-APP-3", "answers 6985 instead of 6A80 to a PAY in another currency"},
	{"getdata-with-data", "SPD-APP-3", "answers GET DATA that carries a data field"},
	{"getdata-unknown-6a80", "SPD-APP-3", "answers 6A80 instead of 6A88 to GET DATA of an unknown tag"},
	{"getdata-early", "SPD-LC-3", "answers GET DATA DF04 with zero before personalisation instead of 6985"},
	{"getresponse-idle-9000", "SPD-APP-5", "answers GET RESPONSE with nothing pending with 9000 and no data"},
	{"more-count-total", "SPD-APP-5", "counts the whole response, not the bytes remaining, in 61xx"},
	{"more-count-wraps", "SPD-APP-5", "answers 61xx with the bytes remaining modulo 256 instead of 6100 for 256 or more"},
	{"getresponse-ignores-le", "SPD-APP-5", "hands out the next part of a chained response in 256 bytes whatever GET RESPONSE's Le"},
	{"command-keeps-pending", "SPD-APP-5", "keeps a pending response after another command that answers without chaining"},
	{"reset-keeps-pending", "SPD-APP-5", "keeps a pending response across a warm reset"},
	{"power-keeps-pending", "SPD-APP-5", "keeps a pending response across power-off and power-on"},
	{"getresponse-p1p2-6985", "SPD-APP-5", "answers GET RESPONSE with P1-P2 not 00 00 6985 instead of 6A86 while a response is pending"},
	{"getresponse-6a86-keeps", "SPD-APP-5", "keeps the pending response after GET RESPONSE with P1-P2 not 00 00 answered 6A86"},
	{"getresponse-data-keeps", "SPD-APP-5", "keeps the pending response after GET RESPONSE with a data field answered 6985"},
	{"challenge-any-le", "SPD-APP-3", "answers GET CHALLENGE with any Le instead of 6700"},
	{"challenge-repeats", "SPD-KEY-1", "answers the same GET CHALLENGE bytes every time"},
	{"intauth-65", "SPD-APP-3", "accepts an INTERNAL AUTHENTICATE challenge of 65 bytes"},
	{"intauth-no-id", "SPD-KEY-4", "signs INTERNAL AUTHENTICATE without the device ID in the digest"},
	{"account-in-getdata", "SPD-MED-3", "answers GET DATA DF03 with the designated account instead of its token"},

	// Life cycle and personalisation.
	{"personalise-twice", "SPD-LC-1", "accepts a second PERSONALISE on a personalised device"},
	{"initialise-again", "SPD-LC-1", "accepts INITIALISE on a personalised device"},
	{"personalise-foreign-id", "SPD-KEY-2", "accepts a certificate naming another device ID at PERSONALISE"},
	{"personalise-foreign-key", "SPD-KEY-2", "accepts a certificate naming another key at PERSONALISE"},
	{"personalise-sig-6a80", "SPD-KEY-3", "answers 6A80 instead of 6982 to a PERSONALISE signed by another CA"},
	{"activate-unverified", "SPD-PIN-1", "activates without cardholder verification"},
	{"pay-personalised", "SPD-LC-3", "pays while personalised, before ACTIVATE"},
	{"medium-blocked", "SPD-LC-3", "generates a stored-value medium while blocked"},
	{"update-terminated", "SPD-LC-2", "applies UPDATE PARAMETERS to a terminated device"},
	{"block-personalised", "SPD-LC-2", "moves a personalised device to blocked"},
	{"terminated-no-ledger", "SPD-LC-2", "refuses READ PENDING once terminated"},
	{"blocked-no-reclaim", "SPD-LC-2", "refuses RECLAIM while blocked"},

	// Host orders and updates.
	{"update-counter-equal", "SPD-UPD-1", "applies an update whose counter equals the last applied one"},
	{"update-partial", "SPD-UPD-1", "keeps the top-up of an update whose state move it refused"},
	{"update-sync-backwards", "SPD-LED-3", "moves the last sync time back to an earlier host time"},
	{"ack-ins-unbound", "SPD-KEY-3", "accepts an acknowledgement the host signed for UPDATE PARAMETERS"},
	{"host-accepts-ca", "SPD-KEY-3", "accepts host orders signed with the CA key when the profile names a host key"},
	{"ack-unsigned", "SPD-LED-4", "applies an acknowledgement whose signature does not verify"},
	{"ack-drops-all", "SPD-LED-4", "drops every ledger record on any acknowledgement"},
	{"ack-ignores-serials", "SPD-LED-4", "ignores the serial list of ACKNOWLEDGE"},
	{"ack-no-sync", "SPD-LED-3", "does not move the last sync time on ACKNOWLEDGE"},
	{"ack-stops-at-unknown", "SPD-LED-4", "stops dropping records at the first ATC of an acknowledgement it does not hold"},
	{"ack-reorders-ledger", "SPD-LED-2", "refills an acknowledged record's ledger slot with the last record, so READ PENDING is no longer oldest first"},
	{"ack-stale-index", "SPD-LED-4", "drops records by positions found before dropping any, from the last ATC named to the first: the wrong records when the ATCs do not ascend"},
	{"ack-duplicate-drops-next", "SPD-LED-4", "drops a record once for each time an acknowledgement names its ATC: the record after it too when named twice"},
	{"ack-total-minus-transfers", "SPD-LED-4", "lowers the pending total DF05 by the amount of every record an acknowledgement drops, transfer records too"},

	// Cardholder verification.
	{"verify-compare-first", "SPD-PIN-2", "compares the PIN before making the decrement persistent"},
	{"verify-malformed-try", "SPD-PIN-2", "spends a try on a malformed PIN"},
	{"verify-fail-keeps-session", "SPD-PIN-1", "keeps the session verified after a failed VERIFY"},
	{"verify-status-verified", "SPD-PIN-2", "answers 63Cx instead of 9000 to an empty VERIFY when verified"},
	{"verify-tries-before", "SPD-PIN-2", "reports the tries left before the decrement in 63Cx"},
	{"blocked-accepts-right", "SPD-PIN-3", "accepts the right PIN once the counter is 0"},
	{"change-pin-unverified", "SPD-PIN-3", "leaves the session unverified after CHANGE REFERENCE DATA"},
	{"change-pin-no-try", "SPD-PIN-2", "spends no try on CHANGE REFERENCE DATA with a wrong old PIN"},
	{"puk-no-try", "SPD-PIN-2", "spends no PUK try on a wrong PUK"},
	{"puk-keeps-block", "SPD-PIN-3", "leaves the PIN try counter at 0 after unblocking with the PUK"},
	{"host-unblock-replay", "SPD-PIN-3", "applies a host RESET RETRY COUNTER with an old counter"},
	{"host-unblock-keeps-puk", "SPD-PIN-3", "leaves the PUK try counter as it was on a host unblock"},
	{"bio-threshold-strict", "SPD-BIO-1", "refuses a sample exactly at the threshold distance"},
	{"bio-no-template-63c", "SPD-BIO-1", "answers 63Cx instead of 6A88 to biometric VERIFY with no template"},
	{"bio-spends-pin", "SPD-BIO-2", "spends PIN tries on failed biometric samples"},
	{"bio-no-try", "SPD-BIO-2", "spends no try on a failed biometric sample"},

	// Payments.
	{"pay-no-atc", "SPD-PAY-4", "does not add one to the ATC on a payment"},
	{"decline-spends-atc", "SPD-PAY-6", "adds one to the ATC on a declined payment"},
	{"account-debits-balance", "SPD-PAY-2", "deducts a kind 02 payment from the stored balance"},
	{"use-no-record", "SPD-PAY-3", "records no ledger record for a use write-off"},
	{"adjust-region-first", "SPD-ADJ-1", "applies the region adjustment before the tier discount"},
	{"adjust-rounds", "SPD-ADJ-1", "rounds adjustments half up instead of truncating"},
	{"adjust-no-tier", "SPD-ADJ-1", "ignores the tier discount"},
	{"limit-raw-amount", "SPD-LED-3", "checks the per-payment limit against the amount before adjustment"},
	{"limit-inclusive", "SPD-LED-3", "declines a payment exactly at the per-payment limit"},
	{"offline-pending-all", "SPD-LED-3", "counts online records against the offline pending limit"},
	{"offline-count-plus-one", "SPD-LED-3", "allows one offline payment more than the count limit"},
	{"offline-age-ignored", "SPD-LED-3", "ignores the time since the last sync offline"},
	{"offline-count-zero-unlimited", "SPD-LED-3", "takes a max offline count of 0 as no limit instead of no offline payment"},
	{"offline-pending-zero-unlimited", "SPD-LED-3", "takes a max offline pending of 0 as no limit instead of no offline amount"},
	{"offline-age-unsigned", "SPD-LED-3", "declines an offline payment whose time is before the last sync time as too long offline (unsigned difference)"},
	{"offline-count-transfers", "SPD-LED-3", "counts offline transfer records (kinds 04, 05) against the offline count limit"},
	{"decline-order", "SPD-PAY-6", "checks the balance before the per-payment limit"},
	{"decline-account-token", "SPD-PAY-6", "shows the account token in the result of a payment declined under another token"},
	{"location-absent-ok", "SPD-VER-1", "accepts a PAY without a region when the profile lists regions"},
	{"tier-inclusive", "SPD-VER-2", "declines a PAY whose required tier equals the device's"},
	{"result-old-counters", "SPD-PAY-5", "shows the balance and ATC before the payment in its result"},
	{"result-no-payee", "SPD-PAY-7", "leaves the payee out of the payment result"},
	{"record-no-payee", "SPD-PAY-7", "leaves the payee out of the ledger record"},
	{"record-nonce-ignored", "SPD-PAY-8", "puts a nonce of its own in the ledger record in place of the terminal's 9F37"},
	{"record-no-payee-nonce", "SPD-PAY-8", "leaves the PAY's payee nonce (DF07) out of the ledger record"},
	{"record-nonce-per-read", "SPD-PAY-8", "draws a new payment nonce every time READ PENDING exports a record"},
	{"result-pending-stale", "SPD-PAY-5", "shows the pending total before the payment in its result"},
	{"ledger-drops-oldest", "SPD-LED-1", "drops the oldest record when the ledger is full instead of 6A84"},
	{"read-pending-wraps", "SPD-LED-2", "answers READ PENDING beyond the end with a record (index modulo the count)"},
	{"pending-sign-bare", "SPD-KEY-5", "signs pending records without the SPDLAB-PR1 prefix"},
	{"pending-counts-transfers", "SPD-LED-1", "counts transfers out in the pending total DF05"},

	// Tokens.
	{"token-amount-raw", "SPD-TOK-2", "checks a token's max amount against the amount before adjustment"},
	{"token-not-counted", "SPD-TOK-2", "does not count payments against the token"},
	{"token-expiry-inclusive", "SPD-TOK-2", "declines a token payment at exactly the token's expiry"},
	{"token-channel-ignored", "SPD-TOK-2", "ignores the token's channels"},
	{"token-unknown-account", "SPD-TOK-2", "pays a token it never made under the account instead of declining it"},
	{"token-guessable", "SPD-TOK-1", "makes tokens from the ATC alone (no random part)"},
	{"token-capacity-9", "SPD-TOK-1", "keeps a 9th live token"},
	{"token-no-purge", "SPD-TOK-1", "does not drop expired or used-up tokens before refusing with 6A84"},
	{"token-record-account", "SPD-TOK-2", "records token payments under the account token"},
	{"limit-before-token", "SPD-PAY-6", "checks the per-payment limit before the token's controls"},
	{"token-use-unchecked", "SPD-TOK-2", "skips a token's controls for a use write-off (kind 03) paid under it"},
	{"token-counts-declines", "SPD-PAY-6", "counts a payment against its token when a check after the token's controls declines it"},
	{"code-token-unchecked", "SPD-TOK-2", "skips a token's controls for PRESENT CODE"},

	// Media.
	{"medium-no-atc", "SPD-PAY-4", "does not add one to the ATC on GENERATE MEDIUM"},
	{"medium-expiry-3600", "SPD-MED-1", "gives media a default validity of an hour instead of 300 s"},
	{"medium-no-nonce", "SPD-MED-1", "leaves the payee nonce out of the stored-value medium"},
	{"medium-no-pending", "SPD-MED-1", "leaves the pending total out of the stored-value medium"},
	{"medium-sign-template", "SPD-KEY-5", "signs media over the service information template only"},
	{"parse-rogue-ca", "SPD-MED-4", "PARSE MEDIUM trusts the medium's own certificate without checking the CA"},
	{"parse-no-cert-6982", "SPD-MED-5", "PARSE MEDIUM answers 6982 instead of 6A80 to a medium that carries no certificate"},
	{"parse-spends-atc", "SPD-MED-4", "adds one to the ATC on PARSE MEDIUM"},

	// Transfers.
	{"xfer-self", "SPD-XFR-1", "accepts a transfer to itself"},
	{"xfer-no-record", "SPD-XFR-1", "records no ledger record for a transfer out"},
	{"xfer-capacity-17", "SPD-XFR-1", "keeps a 17th outgoing transfer"},
	{"xfer-over-balance-6a80", "SPD-XFR-1", "answers 6A80 instead of 6985 to a transfer above the balance"},
	{"show-after-reclaim", "SPD-XFR-1", "answers TRANSFER SHOW for a reclaimed transfer"},
	{"show-spends-atc", "SPD-XFR-1", "adds one to the ATC on TRANSFER SHOW"},
	{"xferin-payer-unchecked", "SPD-XFR-2", "imports a medium whose payer is not the device that signed it"},
	{"xferin-cert-unbound", "SPD-XFR-2", "imports a medium whose certificate names another device than the payer"},
	{"xferin-rogue-ca", "SPD-XFR-2", "imports a medium certified by another CA"},
	{"xferin-sig-6a80", "SPD-XFR-2", "answers 6A80 instead of 6982 to a medium whose signature does not verify"},
	{"xferin-replay", "SPD-XFR-2", "imports the same (payer, serial) twice"},
	{"xferin-sync-unchecked", "SPD-XFR-3", "imports a medium that expired before the last sync time"},
	{"xferin-expiry-inclusive", "SPD-XFR-3", "refuses a transfer medium at exactly its expiry"},
	{"reclaim-at-expiry", "SPD-XFR-4", "reclaims at exactly the expiry"},
	{"reclaim-twice", "SPD-XFR-4", "reclaims the same transfer twice"},
	{"xfer-no-debit", "SPD-XFR-5", "debits nothing on TRANSFER, so a transfer moves value at the host alone"},

	// Persistence: the command's changes are committed write by write.
	{"nonatomic-pay", "SPD-STO-1", "commits PAY's counters and ledger record separately"},
	{"nonatomic-transfer", "SPD-STO-1", "commits TRANSFER's debit, transfer and record separately"},
	{"nonatomic-transfer-in", "SPD-STO-1", "commits TRANSFER IN's credit, import and record separately"},
	{"nonatomic-reclaim", "SPD-STO-1", "commits RECLAIM's credit, transfer and record separately"},
	{"nonatomic-acknowledge", "SPD-STO-1", "commits ACKNOWLEDGE's deletions and sync time separately"},
	{"nonatomic-unblock", "SPD-STO-1", "commits the PUK unblock's try counter and new PIN separately"},
	{"nonatomic-personalise", "SPD-STO-1", "commits PERSONALISE's profile and state separately"},
	{"nonatomic-store-medium", "SPD-STO-1", "commits STORE MEDIUM's update counter and medium separately"},
	{"nonatomic-test-erase", "SPD-STO-1", "deletes TEST ERASE's keys one by one before it moves the erase counter"},
	{"nonatomic-token-pay", "SPD-STO-1", "commits a token payment's use of the token after the payment, in a transaction of its own"},
	{"nonatomic-generate-token", "SPD-STO-1", "commits GENERATE TOKEN's ATC, purge and new token separately"},
	{"nonatomic-present-code", "SPD-STO-1", "commits PRESENT CODE's counters and ledger record separately"},
	{"update-not-persisted", "SPD-STO-1", "keeps an update's top-up, uses, limits, tier, state and sync time in memory only (the counter is stored)"},
	{"ack-not-persisted", "SPD-STO-1", "drops acknowledged records in memory only: they come back at the next power-on"},
	{"xfer-record-amount", "SPD-STO-1", "records a transfer out one minor unit short of the amount it debits (value not conserved)"},

	// Boundaries and capacities.
	{"ledger-capacity-65", "SPD-LED-1", "keeps a 65th ledger record"},
	{"update-uses-wrap", "SPD-UPD-1", "lets the uses an update adds wrap past 2^32-1 instead of 6A80"},
	{"update-topup-unbounded", "SPD-UPD-1", "lets a top-up take the balance above 2^62 instead of 6A80"},
	{"xferin-over-max", "SPD-XFR-2", "lets a TRANSFER IN take the balance above 2^62 instead of 6A80"},
	{"pin-13-digits", "SPD-PIN-2", "takes a 13-digit PIN as a presentation (spends a try, 63Cx) instead of 6A80"},
	{"select-fci-rid", "SPD-APP-1", "names the RID alone (the AID's first 5 bytes) in SELECT's FCI"},
	{"pay-commit-deferred", "SPD-STO-1", "answers PAY before committing it and commits at the next command, so a card pulled after the answer loses the payment"},
	{"pin-match-keeps-count", "SPD-PIN-2", "leaves the PIN try counter where it was after the right PIN instead of restoring it to the limit"},
	{"select-partial-aid", "SPD-APP-1", "selects the application by a leading part of its AID"},
	{"offline-account-unlimited", "SPD-LED-3", "applies no offline limit to kind 02 payments"},
	{"adjust-online-only", "SPD-ADJ-1", "adjusts online payments only: an offline payment is charged its raw amount"},
	{"record-raw-amount", "SPD-LED-1", "records the amount before adjustment in the ledger record of a payment"},
	{"offline-reason-generic", "SPD-PAY-6", "declines every offline limit with one reason, \"offline limit\""},

	// Verification, sessions and host orders, further.
	{"terminated-verifies", "SPD-LC-3", "answers VERIFY on a terminated device"},
	{"change-pin-any-old", "SPD-PIN-3", "sets the new PIN of CHANGE REFERENCE DATA whatever the old PIN"},
	{"change-pin-compare-first", "SPD-PIN-2", "CHANGE REFERENCE DATA compares the old PIN before spending the try"},
	{"puk-compare-first", "SPD-PIN-2", "RESET RETRY COUNTER compares the PUK before spending the PUK try"},
	{"verify-malformed-ends-session", "SPD-PIN-2", "ends the verified status on a malformed PIN (6A80 keeps it)"},
	{"bio-tries-before", "SPD-BIO-2", "reports the biometric tries left before the decrement in 63Cx"},
	{"ack-replay-6984", "SPD-LED-4", "answers 6984 to an acknowledgement whose records it already dropped (not idempotent)"},
	{"xferin-sig-unchecked", "SPD-XFR-2", "imports a transfer medium whose own signature does not verify"},
	{"bio-fail-keeps-session", "SPD-PIN-1", "keeps the session verified after a failed biometric VERIFY"},
	{"blocked-keeps-session", "SPD-PIN-1", "answers 6983 to a PIN or biometric sample presented when blocked without ending the verified status"},
	{"puk-resets-bio", "SPD-BIO-2", "restores the biometric try counter on a PUK unblock"},
	{"puk-verifies", "SPD-PIN-3", "leaves the cardholder verified after a PUK unblock"},
	{"change-pin-malformed-ends-session", "SPD-APP-3", "ends the verified status on a CHANGE REFERENCE DATA refused 6A80 (its data field breaks its row)"},
	{"pin-limit-3", "SPD-PIN-2", "restores the PIN try counter to 3 on a match instead of the profile's try limit (DF57)"},
	{"select-aid-prefix", "SPD-APP-1", "selects the application by a data field that starts with its AID and goes on (a longer AID)"},
	{"initialise-keeps-key", "SPD-KEY-1", "keeps the key pair of the earlier INITIALISE on a second one"},
	{"erase-keeps-media", "SPD-TST-1", "keeps the stored media through TEST ERASE"},
	{"media-replace-full", "SPD-STM-4", "counts a STORE MEDIUM that replaces a stored label as a new medium: 6A84 when the store is full"},
	{"media-purge-inclusive", "SPD-STM-3", "drops a stored medium whose expiry is the STORE MEDIUM's time itself to make room"},
	{"status-verified-first", "SPD-PIN-2", "answers an empty VERIFY 9000 when verified before checking the counter is 0 (6983)"},
	{"xferin-syncs", "SPD-LED-3", "moves the last sync time to the terminal time of a TRANSFER IN"},
	{"store-medium-syncs", "SPD-LED-3", "moves the last sync time to the time of a STORE MEDIUM order"},
	{"erase-initialised-refused", "SPD-TST-1", "refuses TEST ERASE of an initialised device (no profile yet) with 6985"},
	{"initialise-keeps-ca", "SPD-LC-1", "keeps the CA key of the earlier INITIALISE on a second one"},
	{"exchange-rate-before-verify", "SPD-APP-3", "checks an exchange rate before cardholder verification"},
	{"media-sync-inclusive", "SPD-STM-3", "refuses to show a medium whose expiry is the last sync time itself"},
	{"xferin-sync-inclusive", "SPD-XFR-3", "refuses a transfer medium whose expiry is the last sync time itself"},
	{"puk-malformed-try", "SPD-PIN-2", "spends a PUK try on a RESET RETRY COUNTER whose data field breaks its row (6A80)"},
	{"xfer-capacity-before-balance", "SPD-APP-3", "checks the ledger and transfer capacity before the balance on TRANSFER (6A84 instead of 6985)"},
	{"xferin-full-before-replay", "SPD-APP-3", "checks the import list and ledger capacity before the replay on TRANSFER IN (6A84 instead of 6984)"},
	{"reclaim-full-before-expiry", "SPD-APP-3", "checks the ledger capacity before the expiry on RECLAIM (6A84 instead of 6985)"},
	{"host-unblock-resets-bio", "SPD-BIO-2", "restores the biometric try counter on a host RESET RETRY COUNTER"},
	{"erase-p1p2-before-state", "SPD-APP-3", "checks TEST ERASE's P1-P2 before the blank state (6A86 instead of 6985)"},
	{"bio-no-template-ends-session", "SPD-APP-3", "ends the verified status on a biometric VERIFY answered 6A88 (no template)"},
	{"reclaim-ledger-unbounded", "SPD-LED-1", "adds a RECLAIM record to a full ledger instead of 6A84"},
	{"xferin-ledger-unbounded", "SPD-LED-1", "adds a TRANSFER IN record to a full ledger instead of 6A84"},

	// Requirements no mutant above breaks.
	{"list-media-omits-last", "SPD-STM-2", "leaves the last stored medium out of LIST MEDIA when it holds more than one"},
	{"show-medium-cut", "SPD-STM-2", "answers SHOW MEDIUM with the first 255 bytes of a longer content"},
	{"show-medium-spends-atc", "SPD-STM-2", "adds one to the ATC on SHOW MEDIUM"},
	{"xfer-serial-from-0", "SPD-XFR-1", "numbers its transfers from 0, not 1"},
	{"xfer-refused-spends-serial", "SPD-APP-4", "adds one to the transfer serial on a TRANSFER it refuses for the balance (6985)"},
	{"certificate-cut", "SPD-VER-3", "answers GET DATA DF11 with the first 255 bytes of a longer certificate"},
	{"erase-counter-equal", "SPD-TST-2", "applies a TEST ERASE whose counter equals the last applied one (a replay)"},
	{"erase-counter-wiped", "SPD-TST-2", "deletes the erase counter with everything else on TEST ERASE, so it starts again at 0"},
	{"exchange-nonce-ignored", "SPD-EXC-4", "puts a nonce of its own in an exchange's ledger record in place of the terminal's 9F37"},
	{"exchange-rate-swapped", "SPD-EXC-4", "records an exchange's rate with its numerator and denominator swapped"},
	{"token-uses-plus-one", "SPD-TOK-2", "allows one payment more than a token's max transactions"},
	{"balance-inclusive", "SPD-PAY-6", "declines a payment of exactly the balance"},
	{"uses-wrap", "SPD-PAY-3", "writes off a use when none is left, wrapping the count to 2^32-1"},
	{"offline-pending-inclusive", "SPD-LED-3", "declines an offline payment that brings the offline pending total exactly to its limit"},
	{"offline-age-inclusive", "SPD-LED-3", "declines an offline payment made exactly the max time after the last sync"},
	{"pay-blocked", "SPD-LC-3", "pays while blocked"},
	{"token-blocked", "SPD-LC-3", "generates a payment token while blocked"},
	{"pin-tries-volatile", "SPD-PIN-2", "keeps the PIN try counter in volatile memory: a power-on restores it to the limit"},
	{"cert-validity-unchecked", "SPD-MED-6", "accepts a medium issued outside its device certificate's validity (PARSE MEDIUM, TRANSFER IN)"},

	// The Answer To Reset of the card OS (emulator.FaultyATR).
	{"atr-bad-tck", "SPD-FORM-3", "answers an ATR whose check character takes TS in"},
	{"atr-t0-only", "SPD-FORM-3", "answers an ATR that indicates T=0 alone"},

	// eSIM sessions (SPEC.md SPD-ESIM-2): these run on esim-emu only, the
	// one DUT with logical channels.
	{"esim-verified-shared", "SPD-ESIM-2", "keeps one cardholder verification for every logical channel"},
	{"esim-pending-shared", "SPD-ESIM-2", "serves a GET RESPONSE on one channel with the response pending on another"},
	{"esim-close-ends-all", "SPD-ESIM-2", "ends the SPD session of every channel when one channel is closed"},
	// ... and of the eUICC's card OS (emulator/esim, Card.Mutant).
	{"esim-reset-keeps-channels", "SPD-ESIM-1", "keeps channels 1..3 open across a warm reset"},
	{"esim-sm-ignored", "SPD-ESIM-1", "answers a class with secure messaging as if it had none instead of 6882"},
	{"esim-reopen-resets", "SPD-ESIM-1", "opens channel n again when it is open (ending its session) instead of 6A81"},
	{"esim-atr-no-euicc", "SPD-ESIM-3", "answers a SIM's ATR, without the T=15 bytes that indicate an eUICC"},
}

// LookupMutant returns the catalogue entry named name.
func LookupMutant(name string) (Mutant, bool) {
	for _, m := range Mutants {
		if m.Name == name {
			return m, true
		}
	}
	return Mutant{}, false
}

// bug reports whether the device runs with the named mutant.
func (d *Device) bug(name string) bool { return d.cfg.Mutant == name }

// mutantState is what the whole-device mutants remember between commands.
type mutantState struct {
	firstPay   []byte
	oldBalance []byte
	totalSkew  int64    // ack-total-minus-transfers: DF05 below the payments held
	deferred   store.Tx // pay-commit-deferred: the last payment, not yet committed
}

// commitDeferred commits the payment pay-commit-deferred left in volatile
// memory, as the next command begins.
func (d *Device) commitDeferred() {
	if tx := d.mut.deferred; tx != nil {
		d.mut.deferred = nil
		_ = d.commit(tx)
	}
}

// mutantAckLedger is the ledger an acknowledgement leaves: keep, the
// records held but not named by atcs (drop), in ATC order, unless an
// acknowledge mutant gets it wrong. pend is still the ledger before it.
func (d *Device) mutantAckLedger(atcs []uint32, drop map[uint32]bool, keep []record) []record {
	// at is the ledger positions of the ATCs named and held, in the
	// acknowledgement's order, found before any record is dropped.
	at := func() []int {
		var at []int
		for _, atc := range atcs {
			if i := slices.IndexFunc(d.pend, func(r record) bool { return r.ATC == atc }); i >= 0 {
				at = append(at, i)
			}
		}
		return at
	}
	switch {
	case d.bug("ack-reorders-ledger"):
		// Each dropped record's slot is refilled with the last record.
		out := slices.Clone(d.pend)
		for i := 0; i < len(out); {
			if drop[out[i].ATC] {
				out[i] = out[len(out)-1]
				out = out[:len(out)-1]
				continue
			}
			i++
		}
		return out
	case d.bug("ack-stale-index"):
		// Removed from the last ATC named to the first, the positions
		// unadjusted: right only when the ATCs ascend.
		out, at := slices.Clone(d.pend), at()
		for k := len(at) - 1; k >= 0; k-- {
			if at[k] < len(out) {
				out = slices.Delete(out, at[k], at[k]+1)
			}
		}
		return out
	case d.bug("ack-duplicate-drops-next"):
		// Removed from the highest position down, once per ATC named.
		out, at := slices.Clone(d.pend), at()
		slices.Sort(at)
		for k := len(at) - 1; k >= 0; k-- {
			if at[k] < len(out) {
				out = slices.Delete(out, at[k], at[k]+1)
			}
		}
		return out
	case d.bug("ack-total-minus-transfers"):
		// A running total lowered by every record dropped, the transfer
		// records it never counted too; set right when the ledger empties.
		for _, r := range d.pend {
			if drop[r.ATC] && !r.Kind.IsPayment() {
				d.mut.totalSkew += r.Amount
			}
		}
		if len(keep) == 0 {
			d.mut.totalSkew = 0
		}
	}
	return keep
}

// mutateResponse applies the whole-device mutants to one exchange.
func (d *Device) mutateResponse(command, resp []byte) []byte {
	if d.cfg.Mutant == "" {
		return resp
	}
	isPay := len(command) >= 4 && command[0] == spd.CLAProprietary && spd.INS(command[1]) == spd.INSPay
	switch {
	case d.bug("tear-answers") && resp == nil && d.dead:
		return swOnly(apdu.SWMemoryFailure)
	case len(resp) < 2:
		return resp
	case d.bug("status-9000"):
		sw1, sw2 := resp[len(resp)-2], resp[len(resp)-1]
		if !(sw1 == 0x90 && sw2 == 0x00) && sw1 != 0x61 && sw1 != 0x6C {
			return []byte{0x90, 0x00}
		}
	case d.bug("stale-result") && isPay:
		if d.mut.firstPay != nil {
			return bytes.Clone(d.mut.firstPay)
		}
		if resp[len(resp)-2] == 0x90 || resp[len(resp)-2] == 0x61 {
			d.mut.firstPay = bytes.Clone(resp)
		}
	}
	return resp
}

// noteBeforeCommand lets the whole-device mutants see a command before
// the device acts on it.
func (d *Device) noteBeforeCommand(command []byte) {
	if !d.bug("stale-balance") || d.mut.oldBalance != nil || d.prof == nil {
		return
	}
	if len(command) >= 4 && command[0] == spd.CLAProprietary && spd.INS(command[1]) == spd.INSPay {
		d.mut.oldBalance = u64(uint64(d.c.Balance)) // answered by dataValue, to GET DATA and GET DATA list alike
	}
}

// stateBypass reports whether a mutant lets ins run in a state section 2
// does not allow it in.
func (d *Device) stateBypass(ins spd.INS) bool {
	switch {
	case d.bug("personalise-twice") && ins == spd.INSPersonalise && d.c.State >= spd.StatePersonalised:
	case d.bug("initialise-again") && ins == spd.INSInitialise && d.c.State >= spd.StatePersonalised:
	case d.bug("pay-personalised") && ins == spd.INSPay && d.c.State == spd.StatePersonalised:
	case d.bug("medium-blocked") && ins == spd.INSGenerateMedium && d.c.State == spd.StateBlocked:
	case d.bug("pay-blocked") && ins == spd.INSPay && d.c.State == spd.StateBlocked:
	case d.bug("token-blocked") && ins == spd.INSGenerateToken && d.c.State == spd.StateBlocked:
	case d.bug("update-terminated") && ins == spd.INSUpdateParameters && d.c.State == spd.StateTerminated:
	case d.bug("terminated-verifies") && ins == spd.INSVerify && d.c.State == spd.StateTerminated:
	default:
		return false
	}
	return true
}

// stateRefusal reports whether a mutant refuses ins in a state section 2
// allows it in.
func (d *Device) stateRefusal(ins spd.INS) bool {
	return (d.bug("terminated-no-ledger") && ins == spd.INSReadPending && d.c.State == spd.StateTerminated) ||
		(d.bug("blocked-no-reclaim") && ins == spd.INSReclaim && d.c.State == spd.StateBlocked)
}

// mutantAdjust is Adjust as the adjustment mutants get it wrong.
func (d *Device) mutantAdjust(tier uint8, region uint16, amount int64) int64 {
	p := d.prof
	bp := func(a, b int64) int64 {
		if d.bug("adjust-rounds") {
			v := a * b
			if v >= 0 {
				return (v + 5000) / 10000
			}
			return (v - 5000) / 10000
		}
		return basisPoints(a, b)
	}
	disc := func(a int64) int64 {
		if d.bug("adjust-no-tier") || tier > 3 {
			return a
		}
		return a - bp(a, int64(p.TierDiscounts[tier]))
	}
	reg := func(a int64) int64 {
		for _, adj := range p.Adjustments {
			if region != 0 && adj.Region == region {
				return a + bp(a, int64(adj.BasisPoints))
			}
		}
		return a
	}
	if d.bug("adjust-region-first") {
		amount = disc(reg(amount))
	} else {
		amount = reg(disc(amount))
	}
	return min(max(amount, 0), maxAmount)
}

// adjust is the amount a kind 01 or 02 payment is charged (SPD-ADJ-1).
func (d *Device) adjust(tier uint8, region uint16, amount int64) int64 {
	if d.bug("adjust-rounds") || d.bug("adjust-no-tier") || d.bug("adjust-region-first") {
		return d.mutantAdjust(tier, region, amount)
	}
	return Adjust(d.prof, tier, region, amount)
}

// begin starts the store transaction of the command ins; a nonatomic-*
// mutant gets one that commits every write on its own.
func (d *Device) begin(ins spd.INS) store.Tx {
	names := map[spd.INS]string{
		spd.INSPay: "nonatomic-pay", spd.INSTransfer: "nonatomic-transfer", spd.INSTransferIn: "nonatomic-transfer-in",
		spd.INSReclaim: "nonatomic-reclaim", spd.INSAcknowledge: "nonatomic-acknowledge",
		spd.INSResetRetryCounter: "nonatomic-unblock", spd.INSPersonalise: "nonatomic-personalise",
		spd.INSStoreMedium: "nonatomic-store-medium", spd.INSTestErase: "nonatomic-test-erase",
		spd.INSGenerateToken: "nonatomic-generate-token", spd.INSPresentCode: "nonatomic-present-code",
		spd.INSExchange: "nonatomic-exchange",
	}
	if n, ok := names[ins]; ok && d.bug(n) {
		return &splitTx{st: d.st}
	}
	return d.st.Begin()
}

// splitTx commits each write as its own transaction, in order.
type splitTx struct {
	st  store.Store
	err error
}

func (t *splitTx) Get(key string) ([]byte, bool) { return t.st.Get(key) }
func (t *splitTx) Put(key string, value []byte) {
	if t.err == nil {
		tx := t.st.Begin()
		tx.Put(key, value)
		t.err = tx.Commit()
	}
}
func (t *splitTx) Delete(key string) {
	if t.err == nil {
		tx := t.st.Begin()
		tx.Delete(key)
		t.err = tx.Commit()
	}
}
func (t *splitTx) Commit() error { return t.err }
func (t *splitTx) Abort()        {}

// commitCounters persists nc on its own, for the mutants that change
// state a refused or declined command must not change.
func (d *Device) commitCounters(nc counters) {
	tx := d.st.Begin()
	tx.Put(keyCounters, nc.marshal())
	if d.commit(tx) == apdu.SWOK {
		d.c = nc
	}
}

// signTemplateOnly is the medium-sign-template mutant's signature: over
// the 61 template alone instead of every byte before the signature.
func (d *Device) signTemplateOnly(info medium.ServiceInfo) ([]byte, apdu.SW) {
	signed, err := medium.SignedPart(info)
	if err != nil {
		return nil, apdu.SWUnknown
	}
	_, template, err := tlv.Next(signed)
	if err != nil {
		return nil, apdu.SWUnknown
	}
	digest := sha256.Sum256(template)
	sig, err := d.signDigest(digest[:])
	if err != nil {
		return nil, apdu.SWUnknown
	}
	env, err := medium.Seal(signed, sig)
	if err != nil {
		return nil, apdu.SWUnknown
	}
	return env, apdu.SWOK
}

// signRecord signs a pending record (SPD-KEY-5); the pending-sign-bare
// mutant leaves out the SPDLAB-PR1 prefix.
func (d *Device) signRecord(pr *spd.PendingRecord) error {
	digest := pr.Digest()
	if d.bug("pending-sign-bare") {
		bare := sha256.Sum256(pr.Body())
		digest = bare[:]
	}
	sig, err := d.signDigest(digest)
	pr.Signature = sig
	return err
}

// openHost opens a host-signed order for ins (SPD-KEY-3), as the host-order
// mutants get it wrong.
func (d *Device) openHost(ins spd.INS, data []byte) ([]byte, error) {
	body, err := spd.OpenIssuerData(d.hostPub, ins, d.id, data)
	if err == nil || d.cfg.Mutant == "" {
		return body, err
	}
	switch {
	case d.bug("host-accepts-ca"):
		return spd.OpenIssuerData(d.caPub, ins, d.id, data)
	case d.bug("ack-ins-unbound") && ins == spd.INSAcknowledge:
		return spd.OpenIssuerData(d.hostPub, spd.INSUpdateParameters, d.id, data)
	case d.bug("ack-unsigned") && ins == spd.INSAcknowledge:
		rest, n := data, 0
		for len(rest) > 0 {
			obj, r, err := tlv.Next(rest)
			if err != nil {
				return nil, err
			}
			if obj.Tag == spd.TagSignature {
				return data[:n], nil
			}
			n, rest = len(data)-len(r), r
		}
	}
	return body, err
}

// dropOldest is the ledger-drops-oldest mutant: it makes room in a full
// ledger by deleting its oldest record.
func (d *Device) dropOldest() {
	tx := d.st.Begin()
	tx.Delete(pendKey(d.pend[0].ATC))
	if d.commit(tx) == apdu.SWOK {
		d.pend = d.pend[1:]
	}
}

// certified checks a device certificate against the issuer CA
// (spd.VerifyDeviceCertificate); the rogue-CA mutants skip the CA's
// signature and take the key and device ID the certificate claims.
func (d *Device) certified(cert []byte, mutant string) (*ecdsa.PublicKey, []byte, error) {
	if c, ok := d.certs.get(cert, d.caPub); ok {
		return c.pub, bytes.Clone(c.id), nil
	}
	pub, id, err := spd.VerifyDeviceCertificate(cert, d.caPub)
	if err == nil {
		if c, perr := x509.ParseCertificate(cert); perr == nil {
			d.certs.put(cert, d.caPub, certified{pub: pub, id: bytes.Clone(id), notBefore: c.NotBefore, notAfter: c.NotAfter})
		}
	}
	if err == nil || !d.bug(mutant) {
		return pub, id, err
	}
	c, perr := x509.ParseCertificate(cert)
	if perr != nil {
		return nil, nil, err
	}
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	id, herr := hex.DecodeString(c.Subject.SerialNumber)
	if !ok || herr != nil {
		return nil, nil, err
	}
	return k, id, nil
}

// verifyMedium checks a medium's certificate against the issuer CA and its
// signature against the certified key (medium.VerifyCertificate), as the
// rogue-CA mutants get it wrong.
func (d *Device) verifyMedium(m *medium.Medium, mutant string) error {
	if d.bug("cert-validity-unchecked") {
		// The certificate and the signature, not the validity. (certified
		// with no mutant of its own: the device runs this one.)
		pub, _, err := d.certified(m.Info.Certificate, "")
		if err != nil {
			return err
		}
		return m.Verify(pub)
	}
	if !d.bug(mutant) && !d.bug("xferin-sig-unchecked") {
		if c, ok := d.certs.get(m.Info.Certificate, d.caPub); ok {
			return c.verify(m)
		}
		_, err := medium.VerifyCertificate(m, d.caPub)
		return err
	}
	pub, _, err := d.certified(m.Info.Certificate, mutant)
	if err != nil {
		return err
	}
	err = m.Verify(pub)
	if d.bug("xferin-sig-unchecked") && errors.Is(err, medium.ErrBadSignature) {
		return nil
	}
	return err
}
