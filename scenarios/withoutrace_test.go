package scenarios

import (
	"regexp"
	"strings"
	"testing"
)

// withoutRaceTests names the tests of this package that check the suite's
// sources, SPEC.md and the known-answer vectors in one goroutine: the race
// detector has nothing to find in them and made them take about six times
// as long (14 s of make check-race's run of this package). They skip under
// -race, and make test runs them in the suite binary it builds without it
// (scripts/test.sh reads this line).
const withoutRaceTests = `^(TestEveryRequirementCited|TestEveryRequirementPositiveAndNegative|TestNoLooseStatusMatchers|TestEveryClaimAsserted|TestTwinRuleOnVectors|TestKATCompareRefuses)$`

// mustBeListedWithoutRace fails a test that calls withoutRace but is not
// in withoutRaceTests: make test would run it nowhere.
func mustBeListedWithoutRace(t *testing.T) {
	t.Helper()
	if name := strings.SplitN(t.Name(), "/", 2)[0]; !regexp.MustCompile(withoutRaceTests).MatchString(name) {
		t.Fatalf("%s skips under the race detector (withoutRace) but withoutRaceTests does not name it, so make test would never run it", name)
	}
}
