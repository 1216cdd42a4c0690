package reports

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/onsi/ginkgo/v2/types"
)

// Files written by Write, relative to its directory. FileGinkgo is the
// name the suite's own JSON report should have there, FileTrace the run's
// trace's and FileDivergences a run's divergences from the reference
// device's (certify --against); media go under DirMedia.
const (
	FileHTML        = "report.html"
	FileJUnit       = "junit.xml"
	FileCertificate = "certificate.json"
	FileManifest    = "manifest.json"
	FileGinkgo      = "ginkgo.json"
	FileTrace       = "trace.pcapng"
	FileDivergences = "divergences.json"
	DirMedia        = "media"
)

// Write builds the certificate of a run from info and rs, writes the HTML
// page, JUnit XML and certificate.json into dir, and then signs with key a
// manifest of every regular file in dir (the Ginkgo report and the trace
// the run left there included; OutDirFiles and ClearOutDir keep anything
// else out). The lab's key fingerprint
// in the certificate is computed from key, and the tool version and
// commit are read from the build when info leaves them empty.
func Write(dir string, info RunInfo, rs []types.Report, key *ecdsa.PrivateKey) (Certificate, error) {
	if key == nil {
		return Certificate{}, errors.New("reports: Write needs the lab key")
	}
	if len(rs) == 0 {
		return Certificate{}, errors.New("reports: no Ginkgo report to write")
	}
	if err := info.complete(); err != nil {
		return Certificate{}, err
	}
	info.Lab.KeyFingerprint = Fingerprint(&key.PublicKey)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Certificate{}, fmt.Errorf("reports: %w", err)
	}
	c := Build(info, rs)
	if err := writeMedia(dir, c); err != nil {
		return c, err
	}
	ts := c.decodeTranscripts()
	if err := writeFile(filepath.Join(dir, FileHTML), func(w io.Writer) error { return c.writeHTML(w, ts) }); err != nil {
		return c, err
	}
	if err := writeFile(filepath.Join(dir, FileJUnit), func(w io.Writer) error { return c.writeJUnit(w, ts) }); err != nil {
		return c, err
	}
	cj, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileCertificate), cj, 0o644); err != nil {
		return c, fmt.Errorf("reports: %w", err)
	}
	m, err := signManifest(dir, c, key)
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

// writeFile creates the file at path and streams write's output into it
// through a buffer: a page of several megabytes is never held whole in
// memory. On failure the file is removed, so a half-written page never
// looks like a report.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	err = write(w)
	if err == nil {
		err = w.Flush()
		if err != nil {
			err = fmt.Errorf("reports: %w", err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("reports: %w", cerr)
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// ParseCertificate reads a certificate.json written by Write.
func ParseCertificate(b []byte) (Certificate, error) {
	var c Certificate
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Certificate{}, fmt.Errorf("reports: %s: %w", FileCertificate, err)
	}
	if dec.More() {
		return Certificate{}, fmt.Errorf("reports: %s: data after the certificate", FileCertificate)
	}
	switch c.Verdict {
	case VerdictCertified, VerdictNotCertified, VerdictPartial, VerdictInterrupted, VerdictIncomplete, VerdictShard:
	default:
		return Certificate{}, fmt.Errorf("reports: %s: unknown verdict %q", FileCertificate, c.Verdict)
	}
	if c.Certified != (c.Verdict == VerdictCertified) {
		return Certificate{}, fmt.Errorf("reports: %s: certified=%v contradicts verdict %q", FileCertificate, c.Certified, c.Verdict)
	}
	return c, nil
}

// ReadCertificate loads dir's certificate.json.
func ReadCertificate(dir string) (Certificate, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileCertificate))
	if err != nil {
		return Certificate{}, fmt.Errorf("reports: %w", err)
	}
	return ParseCertificate(b)
}

// writeMedia saves every case's coded-medium images under dir/media.
func writeMedia(dir string, c Certificate) error {
	for _, cs := range c.Cases {
		for _, m := range cs.Media {
			if len(m.png) == 0 {
				continue
			}
			p := filepath.Join(dir, filepath.FromSlash(m.File))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return fmt.Errorf("reports: %w", err)
			}
			if err := os.WriteFile(p, m.png, 0o644); err != nil {
				return fmt.Errorf("reports: %w", err)
			}
		}
	}
	return nil
}
