package scenarios

import (
	"strconv"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/spdlab/spdlab/reports"
	"github.com/spdlab/spdlab/scenarios/ics"
)

// SuiteVersion identifies this conformance suite in certificates. It
// changes whenever a case is added or removed or changes what it checks.
const SuiteVersion = "2"

// RigAbilities lists every ability of a rig, in the order reports show them.
var RigAbilities = []Capability{Fresh, Tearing, PowerCycle, Disposable, CardRemoval, RawExchange}

// RunInfo describes a run of the suite through d for its certificate:
// the samples as Probe found them, the statement (read from icsFile, or
// the reference device's built-in one), the suite and profile versions and
// the number of cases the whole suite defines. The caller adds the lab.
func (d *DUTDriver) RunInfo(ids []Identity, icsFile string, r types.Report) reports.RunInfo {
	s := d.statement()
	if icsFile == "" {
		icsFile = "reference device statement (built in: spdlab ics template)"
	}
	info := reports.RunInfo{
		DUT: d.Profile().Name,
		ICS: reports.ICS{
			File: icsFile, YAML: string(s.Raw), SHA256: s.SHA256,
			Vendor: s.Product.Vendor, Model: s.Product.Model, Firmware: s.Product.Firmware, FormFactor: s.Product.FormFactor,
		},
		SuiteVersion: SuiteVersion,
		CaseCount:    r.PreRunStats.TotalSpecs,
		SpecVersion:  strconv.Itoa(ics.ProfileVersion),
		Focus:        append(append([]string(nil), r.SuiteConfig.FocusStrings...), r.SuiteConfig.FocusFiles...),
		LabelFilter:  r.SuiteConfig.LabelFilter,
		Started:      r.StartTime,
		Finished:     r.EndTime,
	}
	p := d.Profile()
	for _, f := range Features {
		if p.Has(f) {
			info.Capabilities.Features = append(info.Capabilities.Features, string(f))
		}
	}
	for _, a := range RigAbilities {
		if p.Has(a) {
			info.Capabilities.Rig = append(info.Capabilities.Rig, string(a))
		}
	}
	for _, id := range ids {
		info.Samples = append(info.Samples, reports.Sample{
			Name: id.Spec, Reader: id.Reader, ATR: id.ATR, DeviceID: id.DeviceID, State: id.State.String(),
		})
	}
	return info
}
