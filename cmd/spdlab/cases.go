package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/formatter"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"go.yaml.in/yaml/v3"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/scenarios"
)

// catalogueRegenerate is the one command that rewrites the committed
// catalogue.
const catalogueRegenerate = "go run ./cmd/spdlab cases --format md > scenarios/CATALOGUE.md"

// catalogueCase is one conformance case as the catalogue lists it.
type catalogueCase struct {
	ID    string `json:"id" yaml:"id"`
	Title string `json:"title" yaml:"title"`
	// Area is the case ID's area (TC-PAY) and Group the containers the
	// case sits in ("Payments").
	Area         string   `json:"area" yaml:"area"`
	Group        string   `json:"group" yaml:"group"`
	Requirements []string `json:"requirements" yaml:"requirements"`
	Claims       []string `json:"claims" yaml:"claims"`
	// Features are the ICS features the case needs; RigAbilities what it
	// needs the rig to do. Without either it is not applicable.
	Features     []scenarios.Capability `json:"features" yaml:"features"`
	RigAbilities []scenarios.Capability `json:"rig_abilities" yaml:"rig_abilities"`
	// Ordered marks a case that runs in order with the others of its
	// group, after their set-up.
	Ordered bool `json:"ordered,omitempty" yaml:"ordered,omitempty"`
	// Source is the file the case is written in, relative to the
	// module, and Line its line there.
	Source string `json:"source" yaml:"source"`
	Line   int    `json:"line" yaml:"line"`
}

var (
	requirementLabel = regexp.MustCompile(`^SPD-[A-Z]+-\d+$`)
	claimLabel       = regexp.MustCompile(`^C\d+$`)
	caseLabel        = regexp.MustCompile(`^(TC-[A-Z]+)-\d+$`)
)

func runCases(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "cases", "[--format md|json|yaml] [--label-filter EXPR]\n\n"+
		"Lists every conformance case from the suite's spec tree (Ginkgo's dry run: nothing runs, no device is\n"+
		"opened). ICS features come from the requirements a case cites and the features it asks for; rig\n"+
		"abilities from what its source asks of the DUT (need, needFresh). scenarios/CATALOGUE.md is\n"+
		"this list as Markdown: "+catalogueRegenerate+"\n")
	format := flags.String("format", "md", "output format: md (Markdown tables by area), json or yaml")
	labels := labelFilterFlag(flags, "list only the cases matching this Ginkgo label expression, e.g. 'C2 || C4', 'SPD-PAY-1', 'TC-PAY-001'")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return errUsage
	}
	switch *format {
	case "md", "json", "yaml":
	default:
		fmt.Fprintf(e.stderr, "spdlab cases: unknown --format %q (want md, json or yaml)\n", *format)
		flags.Usage()
		return errUsage
	}
	cases, err := catalogue(*labels)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cases)
	case "yaml":
		enc := yaml.NewEncoder(e.stdout)
		enc.SetIndent(2)
		if err := enc.Encode(cases); err != nil {
			return err
		}
		return enc.Close()
	}
	return writeCatalogueMarkdown(e.stdout, cases, *labels)
}

// catalogue builds the suite's spec tree against the reference device's
// profile and walks it with Ginkgo's dry run: every case is listed with
// its labels, none is run. The process can build the tree once.
func catalogue(labelFilter string) ([]catalogueCase, error) {
	driver, err := scenarios.NewDUTDriver([]string{"ref"}, nil)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "spdlab-cases-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	scenarios.Define(driver)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suiteConfig, _ := ginkgo.GinkgoConfiguration()
	suiteConfig.DryRun = true
	suiteConfig.LabelFilter = labelFilter
	suiteConfig.FocusStrings, suiteConfig.SkipStrings = nil, nil
	reporterConfig := types.ReporterConfig{JSONReport: filepath.Join(dir, "dry-run.json"), NoColor: true}
	// The dry run's own progress is not the listing.
	stdout := formatter.ColorableStdOut
	formatter.ColorableStdOut = io.Discard
	var t suiteT
	ginkgo.RunSpecs(&t, "spdlab conformance catalogue", suiteConfig, reporterConfig)
	formatter.ColorableStdOut = stdout
	rs, err := reports.LoadGinkgoJSON(reporterConfig.JSONReport)
	if err != nil {
		return nil, err
	}
	var out []catalogueCase
	for _, r := range rs {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt || labelFilter != "" && !matches(labelFilter, s.Labels()) {
				continue
			}
			c := catalogueCase{Title: s.LeafNodeText, Group: strings.Join(s.ContainerHierarchyTexts, " / "),
				Requirements: []string{}, Claims: []string{}, Features: []scenarios.Capability{}, RigAbilities: []scenarios.Capability{}}
			for _, l := range s.Labels() {
				switch {
				case caseLabel.MatchString(l) && c.ID == "":
					c.ID, c.Area = l, caseLabel.FindStringSubmatch(l)[1]
				case requirementLabel.MatchString(l):
					c.Requirements = append(c.Requirements, l)
				case claimLabel.MatchString(l):
					c.Claims = append(c.Claims, l)
				}
			}
			if c.ID == "" {
				return nil, fmt.Errorf("cases: %q (%s) carries no case ID", s.FullText(), s.LeafNodeLocation)
			}
			needs := map[scenarios.Capability]bool{}
			for _, f := range scenarios.FeaturesOf(s.Labels()) {
				needs[f] = true
			}
			loc := s.LeafNodeLocation
			for _, n := range scenarios.SourceNeeds(loc.FileName, loc.LineNumber) {
				needs[n] = true
			}
			for _, f := range scenarios.Features {
				if needs[f] {
					c.Features = append(c.Features, f)
				}
			}
			for _, a := range []scenarios.Capability{scenarios.Fresh, scenarios.PowerCycle, scenarios.Tearing} {
				if needs[a] {
					c.RigAbilities = append(c.RigAbilities, a)
				}
			}
			c.Ordered = s.IsInOrderedContainer
			c.Source, c.Line = "scenarios/"+filepath.Base(loc.FileName), loc.LineNumber
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return caseOrder(out[i].ID) < caseOrder(out[j].ID) })
	return out, nil
}

// matches reports whether labels satisfy a label filter.
func matches(filter string, labels []string) bool {
	f, err := types.ParseLabelFilter(filter)
	return err == nil && f(labels)
}

// caseOrder sorts case IDs by area, then by number.
func caseOrder(id string) string {
	i := strings.LastIndex(id, "-")
	if i < 0 {
		return id
	}
	return fmt.Sprintf("%s-%06s", id[:i], id[i+1:])
}

// writeCatalogueMarkdown writes the catalogue as Markdown: a summary, then
// one table per area.
func writeCatalogueMarkdown(w io.Writer, cases []catalogueCase, filter string) error {
	var b strings.Builder
	b.WriteString("# Conformance case catalogue\n\n")
	b.WriteString("<!-- Generated by `spdlab cases --format md`; do not edit. Regenerate with:\n     " + catalogueRegenerate + " -->\n\n")
	fmt.Fprintf(&b, "Suite version %s, SPD profile checked: reference/SPEC.md. %d cases", scenarios.SuiteVersion, len(cases))
	if filter != "" {
		fmt.Fprintf(&b, " matching `%s`", filter)
	}
	b.WriteString(".\n\n")
	b.WriteString("Each case carries its ID, the requirements of reference/SPEC.md it checks and the claims of\n" +
		"CLAIMS.md behind them as Ginkgo labels (`spdlab certify --label-filter` selects by any of them).\n" +
		"A case is *not applicable* to a device whose ICS leaves out a feature it needs, or on a rig that\n" +
		"lacks an ability it needs: `fresh-device` (a blank sample per case), `power-cycle`, `tearing`\n" +
		"(a power cut at the Nth persistent write). *Ordered* cases run in sequence after their group's set-up.\n\n")
	areas := []string{}
	byArea := map[string][]catalogueCase{}
	for _, c := range cases {
		if _, ok := byArea[c.Area]; !ok {
			areas = append(areas, c.Area)
		}
		byArea[c.Area] = append(byArea[c.Area], c)
	}
	b.WriteString("| Area | Cases | Group |\n|---|---:|---|\n")
	for _, a := range areas {
		groups := []string{}
		seen := map[string]bool{}
		for _, c := range byArea[a] {
			g := strings.SplitN(c.Group, " / ", 2)[0]
			if !seen[g] {
				seen[g] = true
				groups = append(groups, g)
			}
		}
		fmt.Fprintf(&b, "| [%s](#%s) | %d | %s |\n", a, strings.ToLower(a), len(byArea[a]), mdCell(strings.Join(groups, "; ")))
	}
	for _, a := range areas {
		fmt.Fprintf(&b, "\n## %s\n\n", a)
		b.WriteString("| ID | Case | Requirements | Claims | ICS features | Rig abilities | Source |\n|---|---|---|---|---|---|---|\n")
		for _, c := range byArea[a] {
			title := c.Title
			if c.Group != "" {
				title = c.Group + ": " + title
			}
			if c.Ordered {
				title += " *(ordered)*"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", c.ID, mdCell(title),
				strings.Join(c.Requirements, ", "), strings.Join(c.Claims, ", "),
				capList(c.Features), capList(c.RigAbilities), c.Source)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func capList(cs []scenarios.Capability) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
