//go:build race

package main

import "testing"

// raceDetector is true in a test binary built with -race.
const raceDetector = true

// wholeSuite skips a test that runs the whole conformance suite in a child
// process of this race-built binary: there it takes minutes, and the race
// detector already covers the suite in ./scenarios' own race run. make
// test runs these tests without -race (scripts/test.sh: -run WholeSuite),
// which is why their names end in WholeSuite.
func wholeSuite(t *testing.T) {
	t.Helper()
	mustBeNamedWholeSuite(t)
	t.Skip("runs the whole suite in a child process: not under the race detector (make test runs it without -race)")
}
