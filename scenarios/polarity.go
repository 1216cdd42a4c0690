package scenarios

import (
	"fmt"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/link/record"
)

// A case says what it shows of the requirements it cites with one or both
// of these labels: Positive, that the requirement holds (the device does
// what it MUST); Negative, that a way to break it is refused with the one
// status word of section 1.1 (or declined with the one reason of section
// 4.4) and changes nothing. TestEveryRequirementPositiveAndNegative
// counts them per requirement; checkPolarity holds a Negative case to its
// label when it runs.
const (
	Positive = "positive"
	Negative = "negative"
)

// caseLinks are the devices opened and not yet counted after their
// release (open adds them), each with the number of its exchanges earlier
// cases saw: a device an Ordered container opens in BeforeAll serves
// several cases. refusalsSeen drops a device once it has counted its
// exchanges after its release, so that each case looks at the devices it
// may have used, not at every device of the run. caseDeclined is set when
// the running case saw a signed decline with its exact reason (declines).
var (
	caseLinks    = map[*Fixture]int{}
	caseDeclined bool
)

// refusalWord tells whether sw is a refusal status word of section 1.1.
func refusalWord(sw apdu.SW) bool {
	switch {
	case sw == sw9000, sw>>8 == 0x61, sw>>8 == 0x6C:
		return false
	case sw>>4 == 0x63C:
		return true
	}
	return slices.Contains([]apdu.SW{sw6700, sw6982, sw6983, sw6984, sw6985, sw6A80, sw6A82, sw6A83,
		sw6A84, sw6A86, sw6A88, sw6D00, sw6E00, 0x6881, 0x6882, 0x6A81}, sw)
}

// refusalsSeen counts the refusal status words the running case's devices
// answered.
func refusalsSeen() int {
	n := 0
	for f, seen := range caseLinks {
		all := f.rec.Events()
		caseLinks[f] = len(all)
		if f.released {
			delete(caseLinks, f)
		}
		for _, e := range all[seen:] {
			if e.Op != record.OpExchange || e.Err != nil || len(e.Response) < 2 {
				continue
			}
			k := len(e.Response)
			if refusalWord(apdu.SW(uint16(e.Response[k-2])<<8 | uint16(e.Response[k-1]))) {
				n++
			}
		}
	}
	return n
}

// checkPolarity fails a passing case labelled Negative whose devices
// refused nothing and declined nothing: every status matcher of the suite
// is exact (TestNoLooseStatusMatchers), so a refusal a passing case saw is
// one it expected word for word.
func checkPolarity() {
	GinkgoHelper()
	defer func() { caseDeclined = false }()
	seen := refusalsSeen()
	r := CurrentSpecReport()
	if r.Failed() || r.State.Is(types.SpecStateSkipped) {
		return
	}
	negative := slices.Contains(r.Labels(), Negative)
	if negative && seen == 0 && !caseDeclined {
		Fail(fmt.Sprintf("%s is labelled %s, but the device refused nothing and declined nothing", reports.CaseID(r.Labels()), Negative))
	}
}
