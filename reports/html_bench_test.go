package reports

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// benchCertificate is a run of n cases that each recorded three copies of
// payTranscript with round-trip times, like a run of ref.
func benchCertificate(n int) Certificate {
	c := Certificate{Verdict: VerdictCertified, Certified: true}
	lines := len(strings.Split(payTranscript, "\n"))
	times := make([]time.Duration, lines)
	for i := range times {
		times[i] = time.Duration(i+1) * 137 * time.Microsecond
	}
	for i := range n {
		c.Cases = append(c.Cases, Case{ID: fmt.Sprintf("TC-PAY-%03d", i+1), Description: "MUST pay",
			Requirements: []string{"SPD-PAY-1"}, Claims: []string{"C2"}, Verdict: Passed, Duration: time.Millisecond,
			Transcript: []string{payTranscript, payTranscript, payTranscript},
			RoundTrips: [][]time.Duration{times, times, times}})
	}
	return c
}

// BenchmarkWriteHTML renders the page of a 100-case run with its
// transcripts.
func BenchmarkWriteHTML(b *testing.B) {
	c := benchCertificate(100)
	ts := c.decodeTranscripts()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.writeHTML(io.Discard, ts); err != nil {
			b.Fatal(err)
		}
	}
}
