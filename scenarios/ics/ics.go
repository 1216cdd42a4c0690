// Package ics reads and checks an implementation conformance statement
// (ICS): the vendor's declaration of what a device under test is, which
// optional features of the SPD profile (reference/SPEC.md) it implements,
// its capacities (SPEC.md section 11) and how the lab prepares and resets
// its samples. The conformance suite narrows its cases by the ICS alone;
// the certificate records the ICS and its SHA-256.
//
// The format is YAML; reference.yaml, the statement of the reference device,
// documents every field and is what `spdlab ics template` writes.
package ics

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Schema is the ICS schema version this package reads.
const Schema = 1

// ProfileVersion is the SPD profile version the suite checks.
const ProfileVersion = 1

// Features are the optional features of the profile, by their ICS names.
var Features = []string{
	"pay-balance", "pay-account", "pay-uses", "offline", "tokens", "transfers",
	"biometric", "location", "attribute", "certificate", "generate-medium", "parse-medium",
	"parse-merchant", "stored-media", "esim", "host-assertion", "exchange", "get-data-list",
}

// Form factors and transports an ICS may name.
var (
	FormFactors = []string{"sim", "esim", "microsd", "usb", "serial", "wearable", "other"}
	Transports  = []string{"pcsc", "serial", "usb", "sd"}
)

// Sample preparation and reset methods.
const (
	PrepareBlank   = "blank"
	ResetTestErase = "test-erase"
	ResetHook      = "hook"
)

// Minimum capacities of SPEC.md section 11.
var MinCapacities = map[string]int{"ledger": 16, "tokens": 1, "transfers": 1, "imports": 32, "data_field": 4096}

// ICS is one parsed statement.
type ICS struct {
	Schema     int             `yaml:"ics"`
	Product    Product         `yaml:"product"`
	Profile    int             `yaml:"profile"`
	Features   map[string]bool `yaml:"features"`
	Capacities Capacities      `yaml:"capacities"`
	Samples    Samples         `yaml:"samples"`

	// Raw is the file as given, SHA256 its digest (hex); the certificate
	// records both.
	Raw    []byte `yaml:"-"`
	SHA256 string `yaml:"-"`
}

// Product names the device.
type Product struct {
	Vendor     string   `yaml:"vendor"`
	Model      string   `yaml:"model"`
	Firmware   string   `yaml:"firmware"`
	FormFactor string   `yaml:"form_factor"`
	Transports []string `yaml:"transports"`
}

// Capacities are the device's limits against SPEC.md section 11.
type Capacities struct {
	Ledger    int `yaml:"ledger"`
	Tokens    int `yaml:"tokens"`
	Transfers int `yaml:"transfers"`
	Imports   int `yaml:"imports"`
	DataField int `yaml:"data_field"`
}

// Samples says how the lab gets a blank sample for each case.
type Samples struct {
	Preparation string `yaml:"preparation"`
	Reset       string `yaml:"reset"`
	Hook        string `yaml:"hook"`
	Count       int    `yaml:"count"`
}

// Has reports whether the statement declares feature f.
func (s *ICS) Has(f string) bool { return s.Features[f] }

//go:embed reference.yaml
var referenceYAML []byte

// Template is the commented statement of the reference device: a vendor
// copies it and edits it for their product.
func Template() []byte { return bytes.Clone(referenceYAML) }

// Reference is the statement of the reference device, which the emulated
// DUTs (ref, *-emu) are certified against.
func Reference() *ICS {
	s, err := Parse(referenceYAML)
	if err != nil {
		panic("ics: reference.yaml: " + err.Error())
	}
	return s
}

// ReferenceFor is the statement of the emulated DUT named by spec: the
// eSIM emulator (esim-emu, and a mutant in it, faulty:NAME@esim-emu) is the
// reference device as an eSIM (form factor esim, feature esim); every
// other emulated DUT is Reference.
func ReferenceFor(spec string) *ICS {
	if spec != "esim-emu" && !(strings.HasPrefix(spec, "faulty:") && strings.HasSuffix(spec, "@esim-emu")) {
		return Reference()
	}
	raw := bytes.Replace(referenceYAML, []byte("  form_factor: sim  "), []byte("  form_factor: esim "), 1)
	raw = bytes.Replace(raw, []byte("  esim: false "), []byte("  esim: true  "), 1)
	s, err := Parse(raw)
	if err != nil {
		panic("ics: the eSIM reference statement: " + err.Error())
	}
	return s
}

// Error is one problem found in a statement, at a 1-based line (0: the
// file as a whole).
type Error struct {
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Errors is every problem found in a statement, in line order.
type Errors []Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Parse reads and checks a statement. Its error is an Errors listing every
// problem with its line.
func Parse(data []byte) (*ICS, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors(yamlErrors(err))
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, Errors{{Line: 1, Msg: "ics: the statement must be a YAML mapping (see spdlab ics template)"}}
	}
	c := checker{}
	doc := root.Content[0]
	c.keys(doc, "", "ics", "product", "profile", "features", "capacities", "samples")
	for _, sect := range []struct {
		name string
		keys []string
	}{
		{"product", []string{"vendor", "model", "firmware", "form_factor", "transports"}},
		{"features", Features},
		{"capacities", []string{"ledger", "tokens", "transfers", "imports", "data_field"}},
		{"samples", []string{"preparation", "reset", "hook", "count"}},
	} {
		if n := child(doc, sect.name); n != nil {
			if n.Kind != yaml.MappingNode {
				c.add(n.Line, "%s must be a mapping", sect.name)
				continue
			}
			c.keys(n, sect.name+".", sect.keys...)
		}
	}
	var s ICS
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&s); err != nil {
		c.errs = append(c.errs, yamlErrors(err)...)
	}
	if len(c.errs) == 0 {
		c.semantics(doc, &s)
	}
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool { return c.errs[i].Line < c.errs[j].Line })
		return nil, c.errs
	}
	s.Raw = bytes.Clone(data)
	d := sha256.Sum256(data)
	s.SHA256 = hex.EncodeToString(d[:])
	return &s, nil
}

type checker struct{ errs Errors }

func (c *checker) add(line int, format string, args ...any) {
	c.errs = append(c.errs, Error{Line: line, Msg: "ics: " + fmt.Sprintf(format, args...)})
}

// keys checks that mapping m holds exactly the keys named (all required,
// none other).
func (c *checker) keys(m *yaml.Node, prefix string, want ...string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		switch {
		case seen[k.Value]:
			c.add(k.Line, "%s%s is given twice", prefix, k.Value)
		case !slices.Contains(want, k.Value):
			c.add(k.Line, "unknown entry %s%s (known: %s)", prefix, k.Value, strings.Join(want, ", "))
		}
		seen[k.Value] = true
	}
	for _, w := range want {
		if !seen[w] {
			c.add(m.Line, "%s%s is missing", prefix, w)
		}
	}
}

func (c *checker) semantics(doc *yaml.Node, s *ICS) {
	line := func(path ...string) int {
		n := doc
		for _, p := range path {
			if next := child(n, p); next != nil {
				n = next
			}
		}
		return n.Line
	}
	if s.Schema != Schema {
		c.add(line("ics"), "schema %d, this spdlab reads schema %d", s.Schema, Schema)
	}
	if s.Profile != ProfileVersion {
		c.add(line("profile"), "profile %d, the suite checks profile %d (reference/SPEC.md)", s.Profile, ProfileVersion)
	}
	for _, f := range []struct{ name, v string }{{"vendor", s.Product.Vendor}, {"model", s.Product.Model}, {"firmware", s.Product.Firmware}} {
		if strings.TrimSpace(f.v) == "" {
			c.add(line("product", f.name), "product.%s must not be empty", f.name)
		}
	}
	if !slices.Contains(FormFactors, s.Product.FormFactor) {
		c.add(line("product", "form_factor"), "product.form_factor %q is not one of %s", s.Product.FormFactor, strings.Join(FormFactors, ", "))
	}
	if len(s.Product.Transports) == 0 {
		c.add(line("product", "transports"), "product.transports must name at least one of %s", strings.Join(Transports, ", "))
	}
	for _, t := range s.Product.Transports {
		if !slices.Contains(Transports, t) {
			c.add(line("product", "transports"), "product.transports: %q is not one of %s", t, strings.Join(Transports, ", "))
		}
	}
	caps := map[string]int{"ledger": s.Capacities.Ledger, "tokens": s.Capacities.Tokens, "transfers": s.Capacities.Transfers,
		"imports": s.Capacities.Imports, "data_field": s.Capacities.DataField}
	for name, v := range caps {
		if min := MinCapacities[name]; v < min {
			c.add(line("capacities", name), "capacities.%s is %d; SPEC.md section 11 requires at least %d", name, v, min)
		}
	}
	if s.Capacities.Ledger > 65536 {
		c.add(line("capacities", "ledger"), "capacities.ledger %d is beyond READ PENDING's 2-byte index", s.Capacities.Ledger)
	}
	if s.Samples.Preparation != PrepareBlank {
		c.add(line("samples", "preparation"), "samples.preparation %q: the lab personalises samples itself, so they must arrive %q", s.Samples.Preparation, PrepareBlank)
	}
	switch s.Samples.Reset {
	case ResetTestErase:
		if s.Samples.Hook != "" {
			c.add(line("samples", "hook"), "samples.hook is given but samples.reset is %q; set reset: hook or leave hook empty", ResetTestErase)
		}
	case ResetHook:
		if strings.TrimSpace(s.Samples.Hook) == "" {
			c.add(line("samples", "hook"), "samples.reset is hook, so samples.hook must name the command that returns a sample to blank")
		}
	default:
		c.add(line("samples", "reset"), "samples.reset %q is not %q or %q: the lab must be able to return every sample to blank between cases", s.Samples.Reset, ResetTestErase, ResetHook)
	}
	if s.Samples.Count < 1 {
		c.add(line("samples", "count"), "samples.count must be at least 1")
	}
}

// child is the value of key in mapping m, or nil.
func child(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// yamlErrors turns a YAML error into Errors with their lines where the
// messages give them.
func yamlErrors(err error) []Error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	var out []Error
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		var line int
		if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
			msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
		}
		out = append(out, Error{Line: line, Msg: "ics: " + msg})
	}
	return out
}
