package reports

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
)

// Report entries a conformance case records (Ginkgo AddReportEntry), by
// name, and the value each holds. Build reads them into the Case.
const (
	// EntryTranscript is a rigs/link/record transcript: one link
	// operation per line (Step says how each reads).
	EntryTranscript = "transcript"
	// EntryRoundTrips is a []time.Duration with the round-trip time of
	// each line of the EntryTranscript recorded just before it, in order.
	EntryRoundTrips = "round-trip times"
	// EntryMedium is a MediumEntry: one coded-medium image the case made.
	EntryMedium = "coded medium"
	// EntryOpticalRates is a []OpticalRate: how the case's media read
	// through graded camera faults.
	EntryOpticalRates = "optical decode rates"
	// EntryClaimsAsserted is a []string: the claims (C1..C50) the case
	// checked in their own terms, each with an assertion on the behaviour
	// the claim describes. A claim a case is labelled with but did not
	// assert is carried by its label alone.
	EntryClaimsAsserted = "claims asserted"
)

// MediumEntry is the value of an EntryMedium report entry: the image of a
// coded medium exactly as the case rendered and decoded it.
type MediumEntry struct {
	// Name says what the medium is: "stored value", "merchant code".
	Name string `json:"name"`
	// Format is the symbology as reference/medium names it: QR,
	// DataMatrix, Code128.
	Format string `json:"format"`
	// Text is what the image encodes.
	Text string `json:"text"`
	PNG  []byte `json:"png"`
}

// Medium is a coded-medium image of a case as the report keeps it: the
// PNG file in the report directory (signed by the manifest with every
// other file) and what the report writer's own decoder read from it.
type Medium struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	// Text is what the case says the image encodes.
	Text string `json:"text"`
	// File is the image's path in the report directory, SHA256 its
	// digest (hex).
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Read is the text the report writer decoded from the PNG, ReadFormat
	// the symbology it found; ReadError says why it read nothing.
	Read       string `json:"read,omitempty"`
	ReadFormat string `json:"read_format,omitempty"`
	ReadError  string `json:"read_error,omitempty"`
	// Meaning is what the text says: the fields of an SVL01 medium or of
	// a merchant order code, as indented JSON; empty for other text.
	Meaning string `json:"meaning,omitempty"`

	png []byte // the image, from the Ginkgo report; nil once read back from JSON
}

// Matches reports whether the image read back to the text the case made.
func (m Medium) Matches() bool {
	return m.ReadError == "" && m.Read == m.Text && m.ReadFormat == m.Format
}

// OpticalRate is one figure of the optical channel: how many of a
// medium's images in one format read back to the same text at one
// degradation level (level 0: the clean render).
type OpticalRate struct {
	Medium string `json:"medium"`
	Format string `json:"format"`
	Level  int    `json:"level"`
	Read   int    `json:"read"`
	Tried  int    `json:"tried"`
	// Faults are the faults of the level, one image each ("Blur 1.5").
	Faults []string `json:"faults,omitempty"`
	// Failed names the faults that did not read.
	Failed []string `json:"failed,omitempty"`
}

func (r OpticalRate) String() string {
	return fmt.Sprintf("%-16s %-10s level %d: %d/%d read %s", r.Medium, r.Format, r.Level, r.Read, r.Tried, strings.Join(r.Failed, ", "))
}

// entryJSON is the JSON of a report entry's value.
func entryJSON(e types.ReportEntry) []byte {
	if e.Value.AsJSON != "" {
		return []byte(e.Value.AsJSON)
	}
	if v := e.Value.GetRawValue(); v != nil {
		b, err := json.Marshal(v)
		if err == nil {
			return b
		}
	}
	return nil
}

// readEntries fills cs's transcripts, round-trip times, media and optical
// rates from its report entries. An entry that does not parse becomes a
// note on the case rather than a lost record.
func (cs *Case) readEntries(entries []types.ReportEntry) {
	for _, e := range entries {
		switch e.Name {
		case EntryTranscript:
			cs.Transcript = append(cs.Transcript, e.StringRepresentation())
		case EntryRoundTrips:
			var d []time.Duration
			if err := json.Unmarshal(entryJSON(e), &d); err != nil {
				cs.Notes = append(cs.Notes, "round-trip times unreadable: "+err.Error())
				continue
			}
			// Align with the transcript just recorded.
			for len(cs.RoundTrips) < len(cs.Transcript)-1 {
				cs.RoundTrips = append(cs.RoundTrips, nil)
			}
			cs.RoundTrips = append(cs.RoundTrips, d)
		case EntryMedium:
			var m MediumEntry
			if err := json.Unmarshal(entryJSON(e), &m); err != nil {
				cs.Notes = append(cs.Notes, "coded medium unreadable: "+err.Error())
				continue
			}
			cs.Media = append(cs.Media, readMedium(cs.ID, len(cs.Media)+1, m))
		case EntryOpticalRates:
			var rs []OpticalRate
			if err := json.Unmarshal(entryJSON(e), &rs); err != nil {
				cs.Notes = append(cs.Notes, "optical decode rates unreadable: "+err.Error())
				continue
			}
			cs.Optical = append(cs.Optical, rs...)
		case EntryClaimsAsserted:
			var cl []string
			if err := json.Unmarshal(entryJSON(e), &cl); err != nil {
				cs.Notes = append(cs.Notes, "claims asserted unreadable: "+err.Error())
				continue
			}
			cs.Asserted = append(cs.Asserted, cl...)
		}
	}
}

var fileUnsafe = regexp.MustCompile(`[^A-Za-z0-9]+`)

// MediaDir is the directory of the report that holds the media images.
const MediaDir = "media"

// readMedium names the n-th image of case id, digests it and decodes it
// with reference/medium's decoder, independently of what the case said.
func readMedium(id string, n int, e MediumEntry) Medium {
	slug := strings.Trim(strings.ToLower(fileUnsafe.ReplaceAllString(e.Name+"-"+e.Format, "-")), "-")
	m := Medium{Name: e.Name, Format: e.Format, Text: e.Text, png: e.PNG,
		File: fmt.Sprintf("%s/%s-%02d-%s.png", MediaDir, id, n, slug)}
	d := sha256.Sum256(e.PNG)
	m.SHA256 = hex.EncodeToString(d[:])
	// DecodePNG refuses images too large to be a medium before decoding.
	if text, f, err := medium.DecodePNG(bytes.NewReader(e.PNG)); err != nil {
		m.ReadError = err.Error()
	} else {
		m.Read, m.ReadFormat = text, f.String()
	}
	m.Meaning = meaning(e.Text)
	return m
}

// meaning decodes text as an SVL01 medium or a merchant order code.
func meaning(text string) string {
	var v any
	if m, err := medium.ParseText(text); err == nil {
		info := m.Info
		info.Certificate = nil // the certificate is kilobytes of Base64; the trace has it
		v = info
	} else if o, err := merchant.Decode(text); err == nil {
		v = o
	} else {
		return ""
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

// RoundTrip is the round-trip times of one command over a run.
type RoundTrip struct {
	Command               string
	N                     int
	Min, Median, P90, Max time.Duration
	Total                 time.Duration
	Cases                 int
	caseSeen              map[string]bool
	samples               []time.Duration
}

// RoundTrips gathers the round-trip time of every exchange of the run by
// command name (SPEC.md's), busiest first.
func (c Certificate) RoundTrips() []RoundTrip {
	return c.roundTrips(c.decodeTranscripts())
}

// roundTrips is RoundTrips from c's transcripts decoded as ts.
func (c Certificate) roundTrips(ts transcripts) []RoundTrip {
	idx := map[string]int{}
	var rows []RoundTrip
	for k, cs := range c.Cases {
		for i := range cs.Transcript {
			if i >= len(cs.RoundTrips) {
				break
			}
			steps := ts[k][i]
			for j, d := range cs.RoundTrips[i] {
				if j >= len(steps) || steps[j].Op != "exchange" || steps[j].Error != "" {
					continue
				}
				name := steps[j].Name
				k, ok := idx[name]
				if !ok {
					k = len(rows)
					idx[name] = k
					rows = append(rows, RoundTrip{Command: name, caseSeen: map[string]bool{}})
				}
				r := &rows[k]
				r.samples = append(r.samples, d)
				r.Total += d
				if !r.caseSeen[cs.ID] {
					r.caseSeen[cs.ID] = true
					r.Cases++
				}
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		s := r.samples
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		r.N = len(s)
		r.Min, r.Max = s[0], s[len(s)-1]
		r.Median = s[len(s)/2]
		r.P90 = s[(len(s)*9)/10]
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].N > rows[j].N })
	return rows
}

// OpticalSummary is the decode rate of one format at one level, summed
// over every medium and case of the run.
type OpticalSummary struct {
	Format      string
	Level       int
	Read, Tried int
	// Faults are every fault met at the level, each named once in the
	// order first met: the suite spreads a level's faults over the media
	// of a format, so one medium may meet one of them and another two.
	Faults []string
	Failed []string // "medium: fault" that did not read
}

// Rate is Read/Tried in percent.
func (s OpticalSummary) Rate() float64 {
	if s.Tried == 0 {
		return 0
	}
	return 100 * float64(s.Read) / float64(s.Tried)
}

// Percent is Rate as text: "93 %".
func (s OpticalSummary) Percent() string { return strconv.FormatFloat(s.Rate(), 'f', 0, 64) + " %" }

// OpticalRates sums the run's optical decode rates by format and level.
func (c Certificate) OpticalRates() []OpticalSummary {
	idx := map[string]int{}
	var out []OpticalSummary
	for _, cs := range c.Cases {
		for _, r := range cs.Optical {
			k := fmt.Sprintf("%s/%d", r.Format, r.Level)
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, OpticalSummary{Format: r.Format, Level: r.Level})
			}
			out[i].Read += r.Read
			out[i].Tried += r.Tried
			for _, f := range r.Faults {
				if !slices.Contains(out[i].Faults, f) {
					out[i].Faults = append(out[i].Faults, f)
				}
			}
			for _, f := range r.Failed {
				out[i].Failed = append(out[i].Failed, r.Medium+": "+f)
			}
		}
	}
	order := map[string]int{}
	for i, f := range medium.Formats {
		order[f.String()] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Format != out[j].Format {
			return order[out[i].Format] < order[out[j].Format]
		}
		return out[i].Level < out[j].Level
	})
	return out
}

// Src is the image's source in report.html: the PNG itself as a data URL,
// so that the page stands alone, or its file when only the certificate's
// JSON is at hand.
func (m Medium) Src() template.URL {
	if len(m.png) > 0 {
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(m.png))
	}
	return template.URL(m.File)
}

// String is the entry as the console shows it, without the image bytes.
func (e MediumEntry) String() string {
	return fmt.Sprintf("%s %s: %d characters, %d bytes of PNG", e.Format, e.Name, len(e.Text), len(e.PNG))
}
