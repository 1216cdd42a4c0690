package scenarios

import (
	"bytes"
	"image"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/rigs/link/record"
)

// Evidence a case leaves for its report besides pass or fail: the
// round-trip time of every exchange and the coded media it made. The
// report entries' names and values are those of package reports.

// recordRoundTrips keeps the round-trip time of each exchange r recorded,
// in the order of the transcript recorded just before it.
func recordRoundTrips(r *record.Recorder) {
	ex := r.Events()
	d := make([]time.Duration, len(ex))
	for i, e := range ex {
		d[i] = e.Duration
	}
	AddReportEntry(reports.EntryRoundTrips, d, ReportEntryVisibilityNever)
}

// recordMedium keeps img, the image of a coded medium the case made and
// read, as evidence: the report saves it as a PNG beside the case and
// decodes it again on its own.
func recordMedium(name string, f medium.Format, text string, img image.Image) {
	GinkgoHelper()
	var b bytes.Buffer
	Expect(medium.WritePNG(&b, img)).To(Succeed(), "%s as %s", name, f)
	recordMediumPNG(name, f, text, b.Bytes())
}

// recordMediumPNG is recordMedium for an image already written as a PNG
// (medium.WritePNG).
func recordMediumPNG(name string, f medium.Format, text string, png []byte) {
	AddReportEntry(reports.EntryMedium, reports.MediumEntry{Name: name, Format: f.String(), Text: text, PNG: png},
		ReportEntryVisibilityNever)
}

// CurrentCase is the case ID of the spec running now, or "" outside any
// case: the tag certify puts on every record of its trace.
func CurrentCase() string {
	return reports.CaseID(CurrentSpecReport().Labels())
}
