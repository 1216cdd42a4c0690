//go:build !race

package scenarios

import "testing"

// withoutRace marks a test of withoutRaceTests; under the race detector it
// skips (race_test.go).
func withoutRace(t *testing.T) {
	t.Helper()
	mustBeListedWithoutRace(t)
}
