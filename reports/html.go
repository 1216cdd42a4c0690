package reports

import (
	"fmt"
	"html/template"
	"io"
	"sort"
	"strconv"
	"strings"
)

var certTemplate = template.Must(template.New("cert").Funcs(template.FuncMap{
	"join":  func(s []string) string { return strings.Join(s, ", ") },
	"class": func(v Verdict) string { return strings.ReplaceAll(string(v), " ", "-") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>spdlab certification: {{.Run.DUT}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:2em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:14px}
th{background:#f0f0f0}
.passed{background:#e3f6e3}.failed{background:#fbe0e0}.not-applicable{background:#f3f3f3;color:#666}.not-run{background:#fff6d5}
.verdict{font-size:1.4em;font-weight:bold}
pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:12px;max-width:70em}
td.id{white-space:nowrap;font-family:monospace}
.claims{display:grid;grid-template-columns:repeat(10,1fr);gap:4px;margin-bottom:2em}
.claims div{border:1px solid #ccc;padding:.3em;text-align:center;font-size:13px}
.not-covered{background:#fff;color:#999}
</style></head><body>
<h1>spdlab certification report</h1>
<p>Device under test: <b>{{.Run.DUT}}</b><br>Suite: {{.Suite}}<br>Run: {{.Run.Started.UTC.Format "2006-01-02 15:04:05"}} to {{.Run.Finished.UTC.Format "15:04:05"}} UTC</p>
<p class="verdict {{if .Certified}}passed{{else}}failed{{end}}">{{.Verdict}}:
{{.Passed}} passed, {{.Failed}} failed, {{.NotApplic}} not applicable, {{.NotRun}} not run</p>
<h2>Claims C1 to C50</h2>
<div class="claims">{{range .ClaimRows}}<div class="{{class .Verdict}}" title="{{.Verdict}}"><b>{{.Claim}}</b><br>{{.Verdict}}</div>{{end}}</div>
{{if .Failed}}<h2>Failed cases</h2>
<ul>{{range .Cases}}{{if eq .Verdict "failed"}}<li><a href="#{{.ID}}">{{.ID}}</a> {{.Description}}</li>{{end}}{{end}}</ul>{{end}}
<h2>Cases</h2>
<table><tr><th>Case</th><th>Description</th><th>Requirements</th><th>Claims</th><th>Verdict</th><th>Detail</th></tr>
{{range .Cases}}<tr class="{{class .Verdict}}" id="{{.ID}}"><td class="id">{{.ID}}</td><td>{{.Description}}</td><td>{{join .Requirements}}</td><td>{{join .Claims}}</td><td>{{.Verdict}}</td>
<td>{{if .Reason}}<pre>{{.Reason}}</pre>{{end}}{{if eq .Verdict "failed"}}<pre>{{.Location}}</pre>{{range .Transcript}}<pre>{{.}}</pre>{{end}}{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// ClaimRow is one row of the claims table.
type ClaimRow struct {
	Claim   string
	Verdict Verdict
}

// NotCovered marks a claim no case of the run checks.
const NotCovered Verdict = "not covered"

// Claims is how many claims CLAIMS.md numbers.
const Claims = 50

// ClaimRows lists C1 to C50 in order, with the claims no case of the run
// checks as not covered.
func (c Certificate) ClaimRows() []ClaimRow {
	rows := make([]ClaimRow, 0, Claims)
	for n := 1; n <= Claims; n++ {
		cl := "C" + strconv.Itoa(n)
		v, ok := c.Claims[cl]
		if !ok {
			v = NotCovered
		}
		rows = append(rows, ClaimRow{cl, v})
	}
	for cl, v := range c.Claims { // claims beyond C50, if a suite names any
		if claimNumber(cl) > Claims {
			rows = append(rows, ClaimRow{cl, v})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return claimNumber(rows[i].Claim) < claimNumber(rows[j].Claim) })
	return rows
}

// WriteHTML writes the certificate as a standalone HTML page.
func (c Certificate) WriteHTML(w io.Writer) error {
	if err := certTemplate.Execute(w, c); err != nil {
		return fmt.Errorf("reports: html: %w", err)
	}
	return nil
}

// Summary is the verdict and the counts on one line, then one line per
// finding that kept the run from being a certificate.
func (c Certificate) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d passed, %d failed, %d not applicable, %d not run", c.Verdict, c.Passed, c.Failed, c.NotApplic, c.NotRun)
	if c.Run.CaseCount > 0 {
		fmt.Fprintf(&b, " (suite: %d cases)", c.Run.CaseCount)
	}
	if !c.Certified {
		for _, f := range c.Findings {
			b.WriteString("\n  - " + f)
		}
	}
	return b.String()
}
