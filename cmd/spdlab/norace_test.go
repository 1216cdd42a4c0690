//go:build !race

package main

import "testing"

// raceDetector is true in a test binary built with -race.
const raceDetector = false

// wholeSuite marks a test that runs the whole conformance suite in a child
// process; under the race detector it skips (race_test.go).
func wholeSuite(t *testing.T) {
	t.Helper()
	mustBeNamedWholeSuite(t)
}
