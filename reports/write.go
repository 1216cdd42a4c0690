package reports

import (
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"
)

// Files written by Write, relative to its directory.
const (
	FileHTML        = "report.html"
	FileJUnit       = "junit.xml"
	FileCertificate = "certificate.json"
	FileManifest    = "manifest.json"
)

// Write builds the certificate for dut from rs and writes the HTML page,
// JUnit XML, the certificate as JSON and the manifest signed with key into
// dir. It returns the certificate.
func Write(dir, dut string, rs []types.Report, key *ecdsa.PrivateKey) (Certificate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Certificate{}, fmt.Errorf("reports: %w", err)
	}
	c := Build(dut, rs)
	f, err := os.Create(filepath.Join(dir, FileHTML))
	if err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	if err := c.WriteHTML(f); err != nil {
		f.Close()
		return c, err
	}
	if err := f.Close(); err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	for _, r := range rs[:1] {
		if err := reporters.GenerateJUnitReport(r, filepath.Join(dir, FileJUnit)); err != nil {
			return c, fmt.Errorf("reports: junit: %w", err)
		}
	}
	cj, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileCertificate), cj, 0o644); err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	m, err := SignManifest(dir, []string{FileHTML, FileJUnit, FileCertificate}, dut, c.Certified, key)
	if err != nil {
		return c, err
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileManifest), mj, 0o644); err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	return c, nil
}

// ReadManifest loads a manifest written by Write.
func ReadManifest(dir string) (Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileManifest))
	if err != nil {
		return Manifest{}, fmt.Errorf("reports: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("reports: %s: %w", FileManifest, err)
	}
	return m, nil
}
