package scenarios

import (
	"context"
	"errors"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/rigs/link"
)

// A case is not applicable to a device whose ICS leaves out a feature the
// case needs. Two rules find what a case needs, so that no case has to
// remember to ask:
//
//   - by what it cites: a case labelled with a requirement of an optional
//     feature (requirementFeatures) needs that feature;
//   - by what it sends: the lab never sends a device a command of a
//     feature it does not declare (commandFeatures); a case about to do
//     so is not applicable at that point.
//
// Both skip with Why, naming the ICS entry.

// requirementFeatures maps the requirements of SPEC.md that belong to an
// optional feature, by ID prefix or whole ID.
var requirementFeatures = map[string]Capability{
	"SPD-PAY-1": PayBalance,
	"SPD-PAY-2": PayAccount,
	"SPD-PAY-3": PayUses,
	"SPD-LED-3": Offline,
	"SPD-TOK-":  Tokens,
	"SPD-XFR-":  Transfers,
	"SPD-BIO-":  Biometric,
	"SPD-VER-1": Location,
	"SPD-VER-2": Attribute,
	"SPD-VER-3": CertVerify,
	"SPD-KEY-4": CertVerify,
	"SPD-MED-1": Media,
	"SPD-MED-4": ParseMedium,
	"SPD-MPM-":  ParseMerchant,
	"SPD-STM-":  StoredMedia,
	"SPD-ESIM-": ESIM,
	"SPD-PRC-":  Offline,
	"SPD-HVA-":  HostAssertion,
	"SPD-EXC-":  Exchange,
	"SPD-GDL-":  GetDataList,
}

// featuresCited lists the optional features the labels cite.
func featuresCited(labels []string) []Capability {
	var out []Capability
	for _, l := range labels {
		for req, f := range requirementFeatures {
			if l == req || strings.HasSuffix(req, "-") && strings.HasPrefix(l, req) {
				out = append(out, f)
			}
		}
	}
	return out
}

// needCitedFeatures skips the running case when it cites a requirement of
// a feature the DUT does not declare. Define runs it before every case.
func needCitedFeatures(d Driver) {
	for _, f := range featuresCited(CurrentSpecReport().Labels()) {
		need(d, f)
	}
}

// commandFeatures are the optional features a command APDU exercises;
// none for commands every device implements (SPEC.md sections 2 and 4).
func commandFeatures(cmd []byte) []Capability {
	if len(cmd) < 4 {
		return nil
	}
	cla, ins, p1, p2 := cmd[0], cmd[1], cmd[2], cmd[3]
	switch {
	case cla&0xF0 == 0x00 && ins == 0x70: // MANAGE CHANNEL (SPD-ESIM-1)
		return []Capability{ESIM}
	case cla&0x70 == 0 && cla&0x03 != 0: // a logical channel other than 0
		return append([]Capability{ESIM}, commandFeatures(append([]byte{cla &^ 0x03}, cmd[1:]...))...)
	}
	switch {
	case cla == 0x00 && ins == 0x20 && p2 == 0x81:
		return []Capability{Biometric}
	case cla == 0x00 && ins == 0x88:
		return []Capability{CertVerify}
	case cla == 0x00 && ins == 0xCB: // GET DATA list (SPEC.md 4.2.1)
		return []Capability{GetDataList}
	case cla != 0x80:
		return nil
	}
	switch ins {
	case 0x60: // PAY
		var out []Capability
		switch p1 {
		case 0x01:
			out = append(out, PayBalance)
		case 0x02:
			out = append(out, PayAccount)
		case 0x03:
			out = append(out, PayUses)
		}
		if p2 == 0x01 {
			out = append(out, Offline)
		}
		return append(out, payDataFeatures(dataField(cmd))...)
	case 0x78: // PRESENT CODE: an offline payment of its kind (SPEC.md 4.9)
		out := []Capability{Offline}
		switch p1 {
		case 0x01:
			out = append(out, PayBalance)
		case 0x02:
			out = append(out, PayAccount)
		case 0x03:
			out = append(out, PayUses)
		}
		return append(out, payDataFeatures(dataField(cmd))...)
	case 0x68:
		return []Capability{Media}
	case 0x6A:
		return []Capability{Tokens}
	case 0x6C, 0x6E, 0x70:
		return []Capability{Transfers}
	case 0x72:
		if p1 == 0x01 {
			return []Capability{ParseMerchant}
		}
		return []Capability{ParseMedium}
	case 0x74, 0x76:
		return []Capability{StoredMedia}
	case 0x7C: // EXCHANGE (SPEC.md 4.11)
		return []Capability{Exchange}
	}
	return nil
}

// dataField is the data field of a command APDU (ISO 7816-4 cases 3 and
// 4, short or extended), or nil.
func dataField(cmd []byte) []byte {
	switch {
	case len(cmd) > 5 && cmd[4] != 0:
		if n := int(cmd[4]); len(cmd) >= 5+n {
			return cmd[5 : 5+n]
		}
	case len(cmd) > 7 && cmd[4] == 0:
		if n := int(cmd[5])<<8 | int(cmd[6]); len(cmd) >= 7+n {
			return cmd[7 : 7+n]
		}
	}
	return nil
}

// payDataFeatures finds the features a PAY's data field asks for: a
// channel (DF0E, which only token payments restrict), a region other than
// the suite's home region, a required tier.
func payDataFeatures(data []byte) []Capability {
	objs, err := tlv.Parse(data)
	if err != nil {
		return nil
	}
	var out []Capability
	for _, o := range objs {
		switch o.Tag {
		case 0xDF0E:
			out = append(out, Tokens)
		case 0xDF26:
			if len(o.Value) == 2 && uint16(o.Value[0])<<8|uint16(o.Value[1]) != Home {
				out = append(out, Location)
			}
		case 0xDF5E:
			if len(o.Value) == 1 && o.Value[0] != 0 {
				out = append(out, Attribute)
			}
		case 0xDF76:
			out = append(out, HostAssertion)
		}
	}
	return out
}

// featureGate is the link a case's client uses: it lets through only
// commands of features the DUT declares.
type featureGate struct {
	link.Link
	d Driver
}

// errUndeclared is what a gate answers outside a running case.
var errUndeclared = errors.New("scenarios: command of a feature the ICS does not declare")

func (g featureGate) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := g.check(cmd); err != nil {
		return nil, err
	}
	return g.Link.Exchange(ctx, cmd)
}

// check skips the running case when cmd needs a feature the DUT does not
// declare; outside a case it answers errUndeclared.
func (g featureGate) check(cmd []byte) error {
	for _, f := range commandFeatures(cmd) {
		if g.d.Profile().Has(f) {
			continue
		}
		if CurrentSpecReport().LeafNodeText == "" {
			return fmt.Errorf("%w: %s", errUndeclared, f)
		}
		Skip(Why(f, g.d.Profile().Name))
	}
	return nil
}

// gated is l behind a featureGate, with exactly l's abilities: its raw
// exchanges (link.RawExchanger) pass the same gate as its exchanges.
func gated(l link.Link, d Driver) link.Link {
	g := featureGate{Link: l, d: d}
	a := link.AbilitiesOf(l)
	if a.Raw != nil {
		a.Raw = rawGate{g: g, raw: a.Raw}
	}
	return link.Compose(g, a)
}

// rawGate is a featureGate's raw exchange.
type rawGate struct {
	g   featureGate
	raw link.RawExchanger
}

func (r rawGate) ExchangeRaw(ctx context.Context, cmd []byte) ([]byte, error) {
	if err := r.g.check(cmd); err != nil {
		return nil, err
	}
	return r.raw.ExchangeRaw(ctx, cmd)
}

// Unwrap gives the gated link: resets, power and ATR are the gated
// link's, found with link.As, so the gate claims none of them.
func (g featureGate) Unwrap() link.Link { return g.Link }

// adaptProfile leaves out of a personalisation profile what a device
// without the feature cannot hold: allowed regions and adjustments
// (location), the biometric template (biometric).
func adaptProfile(p *spdProfile, pr Profile) {
	if !pr.Has(Location) {
		p.Regions, p.Adjustments = nil, nil
	}
	if !pr.Has(Biometric) {
		p.BioTemplate, p.BioThreshold = nil, 0
	}
	if !pr.Has(HostAssertion) {
		p.HostChecks, p.HostThreshold = 0, 0
	}
}
