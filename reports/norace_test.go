//go:build !race

package reports

import "testing"

// inBrowser marks a test that renders reports in headless Chromium; under
// the race detector it skips (race_test.go).
func inBrowser(t *testing.T) {
	t.Helper()
	mustBeNamedInBrowser(t)
}
