package scenarios

import (
	"fmt"
	"slices"
	"sort"

	. "github.com/onsi/ginkgo/v2"

	"github.com/spdlab/spdlab/reports"
)

// A case's claim labels (C21) say which claims of CLAIMS.md stand behind
// it; a label checks nothing. A case that checks the behaviour a claim
// describes marks that assertion with asserts, as the description of the
// Expect that checks it:
//
//	Expect(bill.Total).To(Equal(int64(7_00)), asserts("C21", "the payment is billed to the account bound to device A"))
//
// The case then records the claims it asserted (reports.EntryClaimsAsserted)
// and the report's claim grid counts a passing case for a claim only if it
// asserted it: a claim whose cases carry it by label alone shows as
// reports.LabelOnly, and the suite's own run on a certified device fails
// (suite_test.go). TestEveryClaimAsserted checks that every claim has an
// assertion in the source; endClaims that a case asserts only claims its
// labels cite.

// assertedClaims are the claims the running case has asserted.
var assertedClaims []string

// asserts records that the running case checks claim cl (C1..C50) with
// the assertion it describes, and returns that assertion's description:
// "C21: what".
func asserts(cl, what string) string {
	if !slices.Contains(assertedClaims, cl) {
		assertedClaims = append(assertedClaims, cl)
	}
	return cl + ": " + what
}

// beginClaims starts a case with no claim asserted.
func beginClaims() { assertedClaims = nil }

// endClaims records the claims the case asserted, and fails it when it
// asserted one its labels do not cite (the catalogue and label filters
// would not find the case by that claim).
func endClaims() {
	if len(assertedClaims) == 0 {
		return
	}
	cls := slices.Clone(assertedClaims)
	sort.Slice(cls, func(i, j int) bool { return claimNumber(cls[i]) < claimNumber(cls[j]) })
	AddReportEntry(reports.EntryClaimsAsserted, cls, ReportEntryVisibilityNever)
	labels := CurrentSpecReport().Labels()
	for _, cl := range cls {
		if !slices.Contains(labels, cl) {
			Fail(fmt.Sprintf("scenarios: the case asserts %s, which its labels do not cite", cl))
		}
	}
}

// claimNumber is n of claim Cn, 0 for anything else.
func claimNumber(cl string) int {
	var n int
	if _, err := fmt.Sscanf(cl, "C%d", &n); err != nil {
		return 0
	}
	return n
}
