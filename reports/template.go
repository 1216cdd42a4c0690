package reports

// pageTemplate is report.html. It loads nothing (the Content-Security-Policy
// forbids it), runs no script, and prints: closed transcripts open on paper.
const pageTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spdlab certification report: {{.Run.DUT}}: {{.Verdict}}</title>
<style>
:root{--pass:#e3f4e3;--pass-ink:#1b5e20;--fail:#fbe0e0;--fail-ink:#b71c1c;--na:#eeeeee;--na-ink:#616161;--nr:#fff3cd;--nr-ink:#8a6d00}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1.5em;color:#212121;line-height:1.35}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em}
th,td{border:1px solid #d0d0d0;padding:.25em .45em;text-align:left;vertical-align:top;font-size:13px}
th{background:#f3f3f3}
table.kv th{width:13em;font-weight:600}
code,.mono,td.id{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
td.id{white-space:nowrap}
.passed{background:var(--pass)}.failed{background:var(--fail)}.not-applicable{background:var(--na);color:var(--na-ink)}.not-run{background:var(--nr)}.not-covered{background:#fff;color:#9e9e9e}.label-only{background:#fff;color:#b71c1c;border:1px dashed #b71c1c}
.tag{display:inline-block;padding:0 .35em;margin:1px;border-radius:3px;font-family:ui-monospace,monospace;font-size:11px;text-decoration:none;color:inherit;border:1px solid rgba(0,0,0,.12)}
.banner{padding:.8em 1em;border-radius:6px;margin:1em 0;border:2px solid}
.banner .verdict{font-size:1.6em;font-weight:700;letter-spacing:.02em}
.v-certified{background:var(--pass);border-color:var(--pass-ink);color:var(--pass-ink)}
.v-failed{background:var(--fail);border-color:var(--fail-ink);color:var(--fail-ink)}
.v-nocert{background:var(--nr);border-color:var(--nr-ink);color:var(--nr-ink)}
.banner ul{margin:.4em 0 0;color:#212121}
nav{font-size:13px;margin:.5em 0}nav a{margin-right:1em}
.claims{display:grid;grid-template-columns:repeat(10,1fr);gap:4px;margin:.5em 0 1em}
.claims div{border:1px solid #ccc;padding:.25em;text-align:center;font-size:12px;border-radius:3px}
pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:12px}
details{margin:.3em 0}summary{cursor:pointer}
.steps td{font-size:12px}.steps td.mono{word-break:break-all;max-width:36em}.steps td.hdr{white-space:nowrap}
.reason{white-space:pre-wrap}.steps .ok{color:var(--pass-ink)}.steps .err{color:var(--fail-ink);font-weight:600}
.muted{color:#757575}
.case{border:1px solid #ddd;border-radius:4px;padding:.3em .6em;margin:.4em 0}
.case.failed{border-color:var(--fail-ink)}
svg{max-width:100%;height:auto}
.media{display:flex;flex-wrap:wrap;gap:.8em}
figure.medium{margin:0;border:1px solid #ddd;padding:.4em;width:250px;background:#fff;break-inside:avoid}
figure.medium img{display:block;max-width:230px;max-height:230px;image-rendering:pixelated;margin:0 auto .3em}
figure.medium.unread{border-color:var(--fail-ink)}
figcaption{font-size:12px}figcaption .ok{color:var(--pass-ink)}figcaption .err{color:var(--fail-ink);font-weight:600}
h4{font-size:.95em;margin:.8em 0 .3em}
.legend span{display:inline-block;margin-right:1em;font-size:12px}
.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px;border:1px solid #999}
@media print{
  body{max-width:none;padding:0;font-size:11px}
  nav{display:none}
  h2{break-after:avoid}
  tr,.case,.claims div{break-inside:avoid}
  details::details-content{content-visibility:visible;display:block}
  .banner,.passed,.failed,.not-applicable,.not-run{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
</style></head><body>
<header>
<h1>spdlab certification report</h1>
<div class="muted">Device under test <b>{{.Run.DUT}}</b>{{with .Run.ICS.Vendor}} &middot; {{.}}{{end}}{{with .Run.ICS.Model}} {{.}}{{end}}{{with .Run.ICS.Firmware}} firmware {{.}}{{end}} &middot; {{utc .Run.Started}}</div>
<div class="banner {{verdictClass .Verdict}}" id="verdict"><div class="verdict">{{.Verdict}}</div>
{{.Passed}} passed, {{.Failed}} failed, {{.NotApplic}} not applicable, {{.NotRun}} not run{{if .Run.CaseCount}} of the suite's {{.Run.CaseCount}} cases{{end}}.
{{if not .Certified}}{{with .Findings}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}{{end}}
</div>
<nav><a href="#identity">Identity</a><a href="#scope">Scope</a><a href="#claims">Claims</a><a href="#traceability">Traceability</a><a href="#plots">Plots</a><a href="#cases">Cases</a><a href="#evidence">Evidence</a></nav>
</header>

<section id="identity"><h2>Identity</h2>
<table class="kv">
<tr><th>Device under test (rig)</th><td class="mono">{{.Run.DUT}}</td></tr>
<tr><th>Lab</th><td>{{orNone .Run.Lab.Name}}<br><span class="mono">key SHA-256 {{.Run.Lab.KeyFingerprint}}</span></td></tr>
<tr><th>Tool</th><td>spdlab {{.Run.Tool.Version}}, commit <span class="mono">{{.Run.Tool.Commit}}</span></td></tr>
<tr><th>Suite</th><td>{{.Suite}}{{with .Run.SuiteVersion}}, version {{.}}{{end}}{{if .Run.CaseCount}}, {{.Run.CaseCount}} cases{{end}}</td></tr>
<tr><th>Profile</th><td>SPEC.md version {{orNone .Run.SpecVersion}}</td></tr>
<tr><th>Capabilities</th><td>ICS features: {{with .Run.Capabilities.Features}}{{range .}}<span class="tag">{{.}}</span>{{end}}{{else}}none recorded{{end}}<br>rig: {{with .Run.Capabilities.Rig}}{{range .}}<span class="tag">{{.}}</span>{{end}}{{else}}none recorded{{end}}</td></tr>
<tr><th>Run</th><td>{{utc .Run.Started}} to {{utc .Run.Finished}} ({{sub .Run.Started .Run.Finished}})</td></tr>
</table>
<h3>Samples</h3>
{{if .Run.Samples}}<table><tr><th>Sample</th><th>Reader</th><th>ATR</th><th>Device ID</th><th>Life-cycle state</th></tr>
{{range .Run.Samples}}<tr><td>{{.Name}}</td><td>{{orNone .Reader}}</td><td class="mono">{{orNone .ATR}}</td><td class="mono">{{orNone .DeviceID}}</td><td>{{orNone .State}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No sample identity was recorded for this run.</p>{{end}}
<h3>Implementation conformance statement</h3>
{{if .Run.ICS.SHA256}}<table class="kv">
<tr><th>File</th><td class="mono">{{orNone .Run.ICS.File}}</td></tr>
<tr><th>Product</th><td>{{orNone .Run.ICS.Vendor}} {{.Run.ICS.Model}}, firmware {{orNone .Run.ICS.Firmware}}, form factor {{orNone .Run.ICS.FormFactor}}</td></tr>
<tr><th>SHA-256</th><td class="mono">{{.Run.ICS.SHA256}}</td></tr>
</table>
<details><summary>ICS text</summary><pre>{{.Run.ICS.YAML}}</pre></details>
{{else}}<p class="muted">No ICS was recorded for this run.</p>{{end}}
</section>

<section id="scope"><h2>Scope</h2>
<table class="kv">
<tr><th>Focus</th><td>{{if .Run.Focus}}<b>{{join .Run.Focus}}</b> (a partial run){{else}}none: the whole suite{{end}}</td></tr>
<tr><th>Label filter</th><td>{{if .Run.LabelFilter}}<b class="mono">{{.Run.LabelFilter}}</b> (a partial run){{else}}none{{end}}</td></tr>
<tr><th>Interrupted</th><td>{{if .Run.Interrupted}}<b>{{.Run.Interrupted}}</b>{{else}}no{{end}}</td></tr>
<tr><th>Cases</th><td>{{len .Cases}} in the report{{if .Run.CaseCount}}, {{.Run.CaseCount}} in the suite{{end}}{{if .Missing}}, <b>{{.Missing}} missing</b>{{end}}; {{.Ran}} ran ({{.Passed}} passed, {{.Failed}} failed), {{.NotApplic}} not applicable, {{.NotRun}} not run; {{dur .Total}} in cases</td></tr>
{{with .SuiteFailures}}<tr><th>Suite failures</th><td>{{range .}}<div class="failed">{{.}}</div>{{end}}</td></tr>{{end}}
</table>
{{with .NA}}<h3>Not applicable, by reason</h3>
<table><tr><th>Reason (ICS entry or rig ability)</th><th>Cases</th></tr>
{{range .}}<tr class="not-applicable"><td>{{.Reason}}</td><td>{{range .IDs}}<a class="tag" href="#{{.}}">{{.}}</a> {{end}}</td></tr>{{end}}</table>{{end}}
{{with .NotRunBy}}<h3>Not run, by reason</h3>
<table><tr><th>Reason</th><th>Cases</th></tr>
{{range .}}<tr class="not-run"><td>{{.Reason}}</td><td>{{range .IDs}}<a class="tag" href="#{{.}}">{{.}}</a> {{end}}</td></tr>{{end}}</table>{{end}}
</section>

<section id="claims"><h2>Claims C1 to C50</h2>
<div class="claims">{{range .Claimed}}<div class="{{class .Verdict}}" title="{{.Claim}}: {{.Verdict}}"><b>{{.Claim}}</b><br>{{.Verdict}}</div>{{end}}</div>
</section>

<section id="traceability"><h2>Traceability: requirement, cases, verdict</h2>
<p class="muted">Every requirement of SPEC.md, the cases that check it, and the verdict over them.
{{range $v, $n := .TraceSummary}}{{$n}} {{$v}}; {{end}}</p>
<table><tr><th>Requirement</th><th>Claims</th><th>Text</th><th>Cases</th><th>Verdict</th></tr>
{{range .Trace}}<tr class="{{class .Verdict}}"><td class="id">{{.Requirement.ID}}</td><td>{{join .Requirement.Claims}}</td><td>{{.Text}}{{with .Requirement.Section}}<br><span class="muted">{{.}}</span>{{end}}</td>
<td>{{range .Cases}}<a class="tag {{class .Verdict}}" href="#{{.ID}}" title="{{.Verdict}}">{{.ID}}</a> {{end}}</td><td>{{.Verdict}}</td></tr>
{{end}}</table>
</section>

<section id="plots"><h2>Plots</h2>
<h3>Cases by area and verdict</h3>
{{.AreaPlot}}
<h3>Duration of each case that ran</h3>
{{.DurationPlot}}
<h3 id="latency">Round-trip time per command</h3>
<p class="muted">Every APDU exchange of the run, from the host's side of the link ({{.Run.DUT}}): command sent to response received.</p>
{{.LatencyPlot}}
{{with .RoundTrips}}<details><summary>Round-trip times as a table</summary>
<table class="num"><tr><th>Command</th><th>Exchanges</th><th>Cases</th><th>Fastest</th><th>Median</th><th>90th percentile</th><th>Slowest</th><th>Total</th></tr>
{{range .}}<tr><td>{{.Command}}</td><td>{{.N}}</td><td>{{.Cases}}</td><td>{{dur .Min}}</td><td>{{dur .Median}}</td><td>{{dur .P90}}</td><td>{{dur .Max}}</td><td>{{dur .Total}}</td></tr>
{{end}}</table></details>{{end}}
<h3 id="optical">Optical decode rate by format and degradation</h3>
<p class="muted">Each coded medium the optical cases made, rendered and passed through graded camera faults (rigs/optical), then decoded: the share of images that read back to the same text. Level 0 is the clean render of every medium and must read; at each degraded level the five faults (blur, rotation, noise, low contrast, perspective) are spread over the media of a format, one fault a medium and each fault on one medium at least (a format's only medium meets all five), and are measured, not required.</p>
{{.OpticalPlot}}
{{with .Optical}}<table class="num" id="optical-rates"><tr><th>Format</th><th>Level</th><th>Faults met</th><th>Read</th><th>Rate</th><th>Did not read</th></tr>
{{range .}}<tr><td>{{.Format}}</td><td>{{.Level}}</td><td>{{if .Faults}}{{join .Faults}}{{else}}clean{{end}}</td><td>{{.Read}} of {{.Tried}}</td><td>{{.Percent}}</td><td>{{join .Failed}}</td></tr>
{{end}}</table>{{end}}
</section>

<section id="cases"><h2>Cases</h2>
<table><tr><th>Case</th><th>Title</th><th>Requirements</th><th>Claims</th><th>Verdict</th><th>Duration</th><th>Reason</th></tr>
{{range .Cases}}<tr class="{{class .Verdict}}"><td class="id"><a href="#{{.ID}}">{{.ID}}</a></td><td>{{.Description}}</td><td>{{join .Requirements}}</td><td>{{join .Claims}}</td><td>{{.Verdict}}</td><td>{{dur .Duration}}</td><td class="reason">{{.Reason}}</td></tr>
{{end}}</table>
</section>

<section id="evidence"><h2>Evidence</h2>
<p class="muted">Each case with its location in the suite and its decoded APDU transcript (command names from SPEC.md section 4, status words with their ISO 7816-4 meaning, data objects as TLV trees). Failed cases are open; the rest are collapsed.</p>
{{range .Views}}<div class="case {{class .Verdict}}" id="{{.ID}}">
<details{{if open .Verdict}} open{{end}}><summary><b class="mono">{{.ID}}</b> {{.Description}} &middot; <b>{{.Verdict}}</b> &middot; {{dur .Duration}}{{if .Steps}} &middot; {{len .Steps}} transcript(s){{end}}</summary>
<p>{{if .Reason}}<b class="reason">{{.Reason}}</b><br>{{end}}<span class="muted mono">{{.Location}}</span></p>
{{with .Optical}}<h4>Optical decode rates</h4><table class="num"><tr><th>Medium</th><th>Format</th><th>Level</th><th>Read</th><th>Did not read</th></tr>
{{range .}}<tr class="{{if eq .Read .Tried}}passed{{else if eq .Level 0}}failed{{end}}"><td>{{.Medium}}</td><td>{{.Format}}</td><td>{{.Level}}</td><td>{{.Read}} of {{.Tried}}</td><td>{{join .Failed}}</td></tr>
{{end}}</table>{{end}}
{{range .Steps}}<table class="steps"><tr><th>#</th><th>Command</th><th>CLA INS P1 P2</th><th>Data</th><th>Status</th><th>Response data</th><th>Time</th></tr>
{{range $i, $s := .}}<tr><td>{{$i}}</td>
{{if eq $s.Op "exchange"}}<td><b>{{$s.Name}}</b></td><td class="mono hdr">{{$s.Header}}</td>
<td class="mono">{{if $s.DataTLV}}<details><summary>{{bytes $s.Data}} bytes of TLV</summary><pre>{{$s.DataTLV}}</pre></details>{{else}}{{$s.Data}}{{end}}{{if $s.Ne}} <span class="muted">Le {{$s.Ne}}</span>{{end}}</td>
<td>{{if $s.Error}}<span class="err">link error: {{$s.Error}}</span>{{else}}<span class="{{if $s.OK}}ok{{else}}err{{end}} mono">{{$s.SW}}</span> {{$s.SWMeaning}}{{end}}</td>
<td class="mono">{{if $s.RespTLV}}<details><summary>{{bytes $s.Resp}} bytes of TLV</summary><pre>{{$s.RespTLV}}</pre></details>{{else}}{{$s.Resp}}{{end}}</td>
{{else}}<td><b>{{$s.Op}}</b></td><td colspan="2" class="mono">{{if $s.ATR}}ATR {{$s.ATR}}{{end}}</td><td colspan="2">{{if $s.Error}}<span class="err">{{$s.Error}}</span>{{end}}</td>{{end}}
<td class="hdr">{{if $s.Time}}{{dur $s.Time}}{{end}}</td></tr>{{end}}</table>{{end}}
{{if not .Steps}}<p class="muted">No transcript recorded for this case.</p>{{end}}
{{with .Notes}}<ul>{{range .}}<li class="err">{{.}}</li>{{end}}</ul>{{end}}
</details>
{{with .Media}}<h4>Coded media made by this case</h4><div class="media">{{range .}}<figure class="medium{{if not .Matches}} unread{{end}}">
<img src="{{.Src}}" alt="{{.Format}} {{.Name}}">
<figcaption><b>{{.Name}}</b> &middot; {{.Format}} &middot; <a class="mono" href="{{.File}}">{{.File}}</a><br>
{{if .Matches}}<span class="ok">read back by the report writer: the same {{len .Text}} characters</span>{{else if .ReadError}}<span class="err">the report writer could not read it: {{.ReadError}}</span>{{else}}<span class="err">read back as {{.ReadFormat}} text that differs from what the case made</span>{{end}}
<details><summary>Text and meaning</summary><pre>{{.Text}}</pre>{{with .Meaning}}<pre>{{.}}</pre>{{end}}</details></figcaption></figure>
{{end}}</div>{{end}}
</div>
{{end}}
</section>
<footer class="muted"><p>Signed with the lab key above: manifest.json lists the SHA-256 of every file of this report directory. Check it with <code>spdlab report --verify DIR --lab-key LAB.pub.pem</code>.</p></footer>
</body></html>
`
