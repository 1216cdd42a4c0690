package scenarios

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reports"
)

// Mutation runs: scripts/mutants.sh proves the suite fails every mutant
// of the reference device (device.Mutants), each on the case that killed
// it last time. One suite process a mutant spends most of its CPU starting
// up and building the case tree; a mutation run instead gives each case
// it names its own mutant, so one run tries as many mutants as it names
// cases. Each case still has a device of its own, as in every run, so a
// case's verdict is its mutant's alone.

// ParseCaseMutants reads a mutation run's plan: lines "CASE MUTANT" (a
// case ID and a name of device.Mutants), one line a case; blank lines and
// lines starting with # are skipped.
func ParseCaseMutants(b []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(f[0], "TC-") {
			return nil, fmt.Errorf("scenarios: mutation plan line %d: want CASE MUTANT, as TC-PAY-006 stale-result; got %q", n, line)
		}
		if prev, ok := m[f[0]]; ok {
			return nil, fmt.Errorf("scenarios: mutation plan line %d: %s already runs on mutant %s: a case runs on one mutant a run", n, f[0], prev)
		}
		if _, ok := device.LookupMutant(f[1]); !ok {
			return nil, fmt.Errorf("scenarios: mutation plan line %d: %q is not a mutant of device.Mutants (make mutants lists them)", n, f[1])
		}
		m[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, errors.New("scenarios: mutation plan: no CASE MUTANT line")
	}
	return m, nil
}

// MutateCases makes the driver's devices, in each case m names, that
// case's mutant, served on the DUT's own transport: faulty:NAME for ref,
// faulty:NAME@usb-emu for usb-emu (the transports a mutant runs on). A case
// of an Ordered container keeps the DUT's own device: it shares the device
// its container's first case opened, whose mutant would not be its own
// (scripts/mutants.sh runs such a case's mutant alone, as faulty:NAME). A
// run with mutated cases is never a certificate.
func (d *DUTDriver) MutateCases(m map[string]string) error {
	if !d.Emulated() || (d.Specs[0] != "ref" && d.Specs[0] != "usb-emu") {
		return fmt.Errorf("scenarios: mutants run in process (ref) or behind usb-emu, not on %s", strings.Join(d.Specs, ", "))
	}
	if d.Against != "" {
		return errors.New("scenarios: a run with mutated cases has no reference twin")
	}
	d.caseMutants = m
	return nil
}

// Mutated reports whether MutateCases gave cases mutants: the run is then
// no certificate.
func (d *DUTDriver) Mutated() bool { return d.caseMutants != nil }

// emulatedSpec is the DUT string a device of the running case is opened
// from: the case's mutant where MutateCases named one, else the DUT's own.
func (d *DUTDriver) emulatedSpec() string {
	if d.caseMutants == nil {
		return d.Specs[0]
	}
	r := CurrentSpecReport()
	m, ok := d.caseMutants[reports.CaseID(r.Labels())]
	switch {
	case !ok || r.IsInOrderedContainer:
		return d.Specs[0]
	case d.Specs[0] == "ref":
		return "faulty:" + m
	}
	return "faulty:" + m + "@" + d.Specs[0]
}
