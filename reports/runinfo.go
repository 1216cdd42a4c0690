package reports

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// RunInfo is what a certificate records about a run besides its cases:
// what was tested, under which statement, with which tool, by which lab.
type RunInfo struct {
	// DUT is the device-under-test string the run was given.
	DUT string `json:"dut"`
	// Samples are the physical samples used, as read from each device.
	Samples []Sample `json:"samples,omitempty"`
	// ICS is the vendor's implementation conformance statement.
	ICS ICS `json:"ics"`
	// SuiteVersion identifies the conformance suite; CaseCount is how
	// many cases the whole suite defines, whatever this run selected.
	SuiteVersion string `json:"suite_version"`
	CaseCount    int    `json:"case_count"`
	// SpecVersion is the version of reference/SPEC.md the suite checks.
	SpecVersion string `json:"spec_version"`
	Tool        Tool   `json:"tool"`
	// Focus and LabelFilter narrow a run; either makes it partial.
	Focus       []string `json:"focus,omitempty"`
	LabelFilter string   `json:"label_filter,omitempty"`
	// Interrupted, when not empty, says why the run stopped early.
	Interrupted string `json:"interrupted,omitempty"`
	// Shard, "i/n", marks one shard of a run split across stations
	// (ParseShard); it is never a certificate on its own (Merge).
	Shard    string    `json:"shard,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Lab      Lab       `json:"lab"`
	// Capabilities are what the run took the DUT to support (the ICS
	// features it declares) and what the rig could do to it.
	Capabilities Capabilities `json:"capabilities"`
	// Requirements are the requirement IDs SPEC.md defines, in its order,
	// for the traceability matrix; empty leaves out requirements no case
	// cites.
	Requirements []Requirement `json:"requirements,omitempty"`
}

// Capabilities of a run: the ICS features the device declares, in the
// ICS's order, and the abilities of the rig (scenarios.Capability names).
type Capabilities struct {
	Features []string `json:"features,omitempty"`
	Rig      []string `json:"rig,omitempty"`
}

// String is the capabilities on one line: "ICS features: pay-balance,
// tokens; rig: fresh-device, tearing".
func (c Capabilities) String() string {
	f, r := strings.Join(c.Features, ", "), strings.Join(c.Rig, ", ")
	if f == "" {
		f = "none"
	}
	if r == "" {
		r = "none"
	}
	return "ICS features: " + f + "; rig: " + r
}

// Requirement is one requirement of reference/SPEC.md.
type Requirement struct {
	ID      string   `json:"id"`
	Claims  []string `json:"claims,omitempty"`
	Section string   `json:"section,omitempty"`
}

// Sample is one physical device of a run, as read from it.
type Sample struct {
	Name     string `json:"name"`
	Reader   string `json:"reader,omitempty"`
	ATR      string `json:"atr,omitempty"`       // hex
	DeviceID string `json:"device_id,omitempty"` // hex
	State    string `json:"state,omitempty"`     // life-cycle state
}

// ICS is the implementation conformance statement a run was made under.
type ICS struct {
	File       string `json:"file,omitempty"`
	YAML       string `json:"yaml,omitempty"`
	SHA256     string `json:"sha256,omitempty"` // hex digest of YAML
	Vendor     string `json:"vendor,omitempty"`
	Model      string `json:"model,omitempty"`
	Firmware   string `json:"firmware,omitempty"`
	FormFactor string `json:"form_factor,omitempty"`
}

// Tool identifies the spdlab build that ran the suite.
type Tool struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

// Lab identifies the lab that signed the report.
type Lab struct {
	Name           string `json:"name"`
	KeyFingerprint string `json:"key_fingerprint"` // hex SHA-256 of the DER SubjectPublicKeyInfo
}

// ToolInfo reads spdlab's version and commit from the build information:
// the module version, and vcs.revision with "+modified" when the tree the
// binary was built from had changes.
func ToolInfo() Tool {
	t := Tool{Version: "(unknown)", Commit: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return t
	}
	if v := bi.Main.Version; v != "" {
		t.Version = v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		t.Commit = rev
		if modified == "true" {
			t.Commit += "+modified"
		}
	}
	return t
}

// complete fills what the caller left empty and checks the ICS digest.
func (info *RunInfo) complete() error {
	tool := ToolInfo()
	if info.Tool.Version == "" {
		info.Tool.Version = tool.Version
	}
	if info.Tool.Commit == "" {
		info.Tool.Commit = tool.Commit
	}
	if info.ICS.YAML != "" {
		d := sha256.Sum256([]byte(info.ICS.YAML))
		sum := hex.EncodeToString(d[:])
		if info.ICS.SHA256 != "" && info.ICS.SHA256 != sum {
			return fmt.Errorf("reports: ICS digest %s does not match its text (%s)", info.ICS.SHA256, sum)
		}
		info.ICS.SHA256 = sum
	}
	info.ICS.File = modulePath(info.ICS.File)
	return nil
}
