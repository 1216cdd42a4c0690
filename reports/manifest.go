package reports

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ManifestFormat names the manifest layout below.
const ManifestFormat = "spdlab-manifest/2"

// Manifest binds every file of one run directory: each file's SHA-256, the
// verdict, the run's identity (RunInfo without the ICS text, whose digest
// it keeps), and an ECDSA P-256 signature by the lab's key over the JSON
// of everything but the signature, fields in the order below.
//
//	{
//	  "format": "spdlab-manifest/2",
//	  "verdict": "CERTIFIED", "certified": true, "created": "RFC 3339",
//	  "run": {RunInfo: dut, samples, ics digest, suite, tool, lab, ...},
//	  "files": [{"name": "certificate.json", "sha256": "hex"}, ...],   sorted by name
//	  "public_key": "PEM of the signing key",
//	  "key_fingerprint": "hex SHA-256 of its DER SubjectPublicKeyInfo",
//	  "signature": "hex of ASN.1 DER ECDSA over SHA-256(payload)"
//	}
//
// Files lists every regular file under the directory except manifest.json,
// by slash-separated path relative to it.
type Manifest struct {
	Format         string         `json:"format"`
	Verdict        string         `json:"verdict"`
	Certified      bool           `json:"certified"`
	Created        time.Time      `json:"created"`
	Run            RunInfo        `json:"run"`
	Files          []ManifestFile `json:"files"`
	PublicKey      string         `json:"public_key"`
	KeyFingerprint string         `json:"key_fingerprint"`
	Signature      string         `json:"signature,omitempty"`
}

// ManifestFile is one file of a run and its digest.
type ManifestFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// ErrManifestMismatch is returned by Verify when a file, the file list or
// the signature does not match.
var ErrManifestMismatch = errors.New("reports: manifest does not match")

// ErrUntrusted is returned by Verify when the manifest is signed by a key
// the verifier does not trust.
var ErrUntrusted = errors.New("reports: manifest signed by an untrusted key")

// ErrNoTrustAnchor is returned by Verify when it is given no trusted key.
var ErrNoTrustAnchor = errors.New("reports: no trusted lab key given: pass the lab's public key (--lab-key FILE) or a trust file (--trust FILE)")

func (m Manifest) payload() ([]byte, error) {
	m.Signature = ""
	return json.Marshal(m)
}

// signManifest digests every regular file in dir except manifest.json and
// signs the result with key.
func signManifest(dir string, c Certificate, key *ecdsa.PrivateKey) (Manifest, error) {
	pubPEM, err := PublicKeyPEM(&key.PublicKey, c.Run.Lab.Name)
	if err != nil {
		return Manifest{}, err
	}
	run := c.Run
	run.ICS.YAML = ""
	run.Requirements = nil
	m := Manifest{
		Format: ManifestFormat, Verdict: c.Verdict, Certified: c.Certified,
		Created: time.Now().UTC().Truncate(time.Second), Run: run,
		PublicKey: pubPEM, KeyFingerprint: Fingerprint(&key.PublicKey),
	}
	if m.Files, err = digestDir(dir); err != nil {
		return Manifest{}, err
	}
	p, err := m.payload()
	if err != nil {
		return Manifest{}, fmt.Errorf("reports: %w", err)
	}
	d := sha256.Sum256(p)
	sig, err := ecdsa.SignASN1(rand.Reader, key, d[:])
	if err != nil {
		return Manifest{}, fmt.Errorf("reports: signing manifest: %w", err)
	}
	m.Signature = hex.EncodeToString(sig)
	return m, nil
}

// digestDir lists every regular file under dir but manifest.json, sorted,
// with its SHA-256. Anything else that is not a directory is an error.
func digestDir(dir string) ([]ManifestFile, error) {
	var files []ManifestFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case rel == FileManifest:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("reports: %s is not a regular file", rel)
		}
		sum, err := fileSHA256(p)
		if err != nil {
			return err
		}
		files = append(files, ManifestFile{Name: rel, SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// ParseManifest reads a manifest written by Write. It checks its form, not
// its signature: that is Verify's job.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("reports: %s: %w", FileManifest, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("reports: %s: data after the manifest", FileManifest)
	}
	if m.Format != ManifestFormat {
		return Manifest{}, fmt.Errorf("reports: %s: format %q, want %q", FileManifest, m.Format, ManifestFormat)
	}
	for _, f := range m.Files {
		if f.Name == "" || path.IsAbs(f.Name) || path.Clean(f.Name) != f.Name || strings.HasPrefix(f.Name, "../") || f.Name == ".." || strings.Contains(f.Name, "\\") {
			return Manifest{}, fmt.Errorf("reports: %s: bad file name %q", FileManifest, f.Name)
		}
	}
	return m, nil
}

// ReadManifest loads dir's manifest.json.
func ReadManifest(dir string) (Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, FileManifest))
	if err != nil {
		return Manifest{}, fmt.Errorf("reports: %w", err)
	}
	return ParseManifest(b)
}

// Trust is the set of lab keys a verifier accepts, by fingerprint (see
// Fingerprint), each with the name it was given under.
type Trust map[string]string

// Add trusts pub under name.
func (t Trust) Add(pub *ecdsa.PublicKey, name string) { t[Fingerprint(pub)] = name }

var fingerprintLine = regexp.MustCompile(`^(?:sha256:)?([0-9a-fA-F]{64})(?:\s+(.*))?$`)

// ParseTrust reads a trust file: PEM "PUBLIC KEY" blocks (as InitLab
// writes them), and lines holding a key fingerprint (64 hex digits,
// optionally "sha256:" first) followed by an optional name. Lines that are
// empty or start with '#' are comments.
func ParseTrust(b []byte) (Trust, error) {
	t := Trust{}
	rest := b
	var text bytes.Buffer
	for {
		i := bytes.Index(rest, []byte("-----BEGIN "))
		if i < 0 {
			text.Write(rest)
			break
		}
		text.Write(rest[:i])
		blk, after := pem.Decode(rest[i:])
		if blk == nil {
			return nil, errors.New("reports: trust file: a PEM block does not parse")
		}
		name, pub, err := ParsePublicKeyPEM(pem.EncodeToMemory(blk))
		if err != nil {
			return nil, fmt.Errorf("reports: trust file: %w", err)
		}
		t.Add(pub, name)
		rest = after
	}
	sc := bufio.NewScanner(&text)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		mm := fingerprintLine.FindStringSubmatch(l)
		if mm == nil {
			return nil, fmt.Errorf("reports: trust file line %d: want a key fingerprint (64 hex digits) or a PEM public key", n)
		}
		t[strings.ToLower(mm[1])] = strings.TrimSpace(mm[2])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reports: trust file: %w", err)
	}
	if len(t) == 0 {
		return nil, errors.New("reports: trust file names no key")
	}
	return t, nil
}

// Verify checks dir against its manifest: the manifest is signed by a key
// in trust, its signature is good, and the files under dir are exactly the
// ones it lists with the digests it lists. It returns the manifest (and
// the signer's fingerprint in it) whenever it could read one, also on
// error.
func Verify(dir string, trust Trust) (Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return Manifest{}, err
	}
	if len(trust) == 0 {
		return m, ErrNoTrustAnchor
	}
	_, pub, err := ParsePublicKeyPEM([]byte(m.PublicKey))
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrManifestMismatch, err)
	}
	fp := Fingerprint(pub)
	if m.KeyFingerprint != fp || m.Run.Lab.KeyFingerprint != fp {
		return m, fmt.Errorf("%w: the recorded key fingerprint is not that of the signing key %s", ErrManifestMismatch, fp)
	}
	if _, ok := trust[fp]; !ok {
		return m, fmt.Errorf("%w: signer %s (lab %q)", ErrUntrusted, fp, m.Run.Lab.Name)
	}
	sig, err := hex.DecodeString(m.Signature)
	if err != nil {
		return m, fmt.Errorf("%w: signature is not hex", ErrManifestMismatch)
	}
	p, err := m.payload()
	if err != nil {
		return m, fmt.Errorf("reports: %w", err)
	}
	d := sha256.Sum256(p)
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		return m, fmt.Errorf("%w: bad signature by %s", ErrManifestMismatch, fp)
	}
	have, err := digestDir(dir)
	if err != nil {
		return m, err
	}
	listed := map[string]string{}
	for _, f := range m.Files {
		listed[f.Name] = f.SHA256
	}
	var problems []string
	for _, f := range have {
		want, ok := listed[f.Name]
		switch {
		case !ok:
			problems = append(problems, f.Name+" is not in the manifest")
		case want != f.SHA256:
			problems = append(problems, fmt.Sprintf("%s has digest %s, manifest says %s", f.Name, f.SHA256, want))
		}
		delete(listed, f.Name)
	}
	for n := range listed {
		problems = append(problems, n+" is missing")
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return m, fmt.Errorf("%w: %s", ErrManifestMismatch, strings.Join(problems, "; "))
	}
	return m, nil
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reports: %w", err)
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:]), nil
}
