// Package reference is the SPD profile: SPEC.md, the contract a vendor
// implements a device from, embedded so that tools can cite it. The
// packages below it (apdu, tlv, medium, device, spd, ...) are the profile
// made executable.
package reference

import (
	_ "embed"
	"regexp"
	"strings"
)

// Spec is the text of SPEC.md.
//
//go:embed SPEC.md
var Spec string

// Requirement is one requirement of SPEC.md: a bullet that starts with its
// ID in bold, "- **SPD-PAY-3** (C2, C3): ...".
type Requirement struct {
	ID      string
	Claims  []string
	Section string // the "## " heading it sits under, "6. Payments, ledger, tokens, transfers"
	Text    string // its first sentence
}

var (
	reqLine     = regexp.MustCompile(`^- \*\*(SPD-[A-Z]+-[0-9]+)\*\*(?: \(([^)]*)\))?:\s*(.*)$`)
	claimID     = regexp.MustCompile(`^C[0-9]+$`)
	versionLine = regexp.MustCompile(`\(spdlab reference, version ([^)]+)\)`)
)

// Version is the profile version SPEC.md's title names.
func Version() string {
	if m := versionLine.FindStringSubmatch(Spec); m != nil {
		return m[1]
	}
	return ""
}

// Requirements lists SPEC.md's requirements in the order it defines them.
func Requirements() []Requirement {
	var out []Requirement
	var section string
	lines := strings.Split(Spec, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "## ") {
			section = strings.TrimSpace(strings.TrimPrefix(l, "## "))
			continue
		}
		m := reqLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		r := Requirement{ID: m[1], Section: section}
		for _, c := range strings.Split(m[2], ",") {
			if c = strings.TrimSpace(c); claimID.MatchString(c) {
				r.Claims = append(r.Claims, c)
			}
		}
		text := m[3]
		for _, cont := range lines[i+1:] {
			if !strings.HasPrefix(cont, "  ") || strings.TrimSpace(cont) == "" {
				break
			}
			text += " " + strings.TrimSpace(cont)
		}
		r.Text = firstSentence(strings.NewReplacer("`", "", "**", "").Replace(text))
		out = append(out, r)
	}
	return out
}

// firstSentence cuts s after its first ". " that ends at least 30
// characters in (so "location. A PAY without ..." keeps its second
// sentence, and "e.g." stays whole), or at 240 characters.
func firstSentence(s string) string {
	for i := 30; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && s[i-2] != '.' && s[i-3] != ' ' {
			s = s[:i+1]
			break
		}
	}
	if len(s) > 240 {
		cut := strings.LastIndexByte(s[:240], ' ')
		if cut < 0 {
			cut = 240
		}
		s = s[:cut] + " ..."
	}
	return s
}

var tagCell = regexp.MustCompile("^`?([0-9A-F]{2}(?:[0-9A-F]{2}){0,2})`?$")

// TagNames maps each TLV tag (hex, "DF11") that SPEC.md's tag tables define
// to the content the first such table gives it ("device certificate").
// A tag table has "Tag" as its first column and "Content" or "Field"
// among the others.
func TagNames() map[string]string {
	names := map[string]string{}
	col := -1
	for _, l := range strings.Split(Spec, "\n") {
		if !strings.HasPrefix(l, "|") {
			col = -1
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if strings.EqualFold(cells[0], "Tag") {
			col = -1
			for i, c := range cells {
				if c == "Content" || c == "Field" {
					col = i
				}
			}
			continue
		}
		if col < 0 || col >= len(cells) {
			continue
		}
		m := tagCell.FindStringSubmatch(cells[0])
		if m == nil {
			continue
		}
		if _, ok := names[m[1]]; !ok {
			names[m[1]] = cleanCell(cells[col])
		}
	}
	return names
}

// cleanCell drops Markdown code marks and a trailing parenthesis of
// requirement references from a table cell.
func cleanCell(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	if i := strings.Index(s, " (SPD-"); i > 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:strings.LastIndexByte(s[:80], ' ')] + " ..."
	}
	return s
}
