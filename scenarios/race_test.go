//go:build race

package scenarios

import "testing"

// withoutRace skips a test of withoutRaceTests under the race detector.
func withoutRace(t *testing.T) {
	t.Helper()
	mustBeListedWithoutRace(t)
	t.Skip("one goroutine, nothing to race: make test runs it without -race (withoutRaceTests)")
}
