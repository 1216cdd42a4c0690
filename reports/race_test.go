//go:build race

package reports

import "testing"

// inBrowser skips a test that renders reports in headless Chromium under
// the race detector: the time goes to Chromium, a program of its own with
// nothing for the detector to see, and what the test runs of this package
// (writing a report) the package's other tests run under it. make test runs
// these tests without -race (scripts/test.sh: -run InBrowser ./reports),
// which is why their names end in InBrowser.
func inBrowser(t *testing.T) {
	t.Helper()
	mustBeNamedInBrowser(t)
	t.Skip("renders in headless Chromium: not under the race detector (make test runs it without -race)")
}
