package reports

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Manifest binds the files of one certification run: each file's SHA-256,
// the verdict, and an ECDSA P-256 signature by the lab's key over the
// canonical JSON of everything but the signature.
//
//	{
//	  "dut": "...", "certified": true, "created": "RFC 3339",
//	  "files": [{"name": "report.html", "sha256": "hex"}, ...],
//	  "public_key": "PEM of the signing key",
//	  "signature": "hex of ASN.1 DER ECDSA over SHA-256(payload)"
//	}
type Manifest struct {
	DUT       string         `json:"dut"`
	Certified bool           `json:"certified"`
	Created   time.Time      `json:"created"`
	Files     []ManifestFile `json:"files"`
	PublicKey string         `json:"public_key"`
	Signature string         `json:"signature,omitempty"`
}

// ManifestFile is one file of a run and its digest.
type ManifestFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// ErrManifestMismatch is returned by VerifyManifest when a file or the
// signature does not match.
var ErrManifestMismatch = errors.New("reports: manifest does not match")

func (m Manifest) payload() ([]byte, error) {
	m.Signature = ""
	return json.Marshal(m)
}

// SignManifest digests the named files in dir and signs the result.
func SignManifest(dir string, names []string, dut string, certified bool, key *ecdsa.PrivateKey) (Manifest, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return Manifest{}, fmt.Errorf("reports: %w", err)
	}
	m := Manifest{DUT: dut, Certified: certified, Created: time.Now().UTC().Truncate(time.Second),
		PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return Manifest{}, err
		}
		m.Files = append(m.Files, ManifestFile{Name: n, SHA256: sum})
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

// VerifyManifest checks the signature with the manifest's own key (and, if
// trusted is not nil, that the key is the trusted one) and every file's
// digest in dir.
func VerifyManifest(dir string, m Manifest, trusted *ecdsa.PublicKey) error {
	blk, _ := pem.Decode([]byte(m.PublicKey))
	if blk == nil {
		return fmt.Errorf("%w: no public key", ErrManifestMismatch)
	}
	pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return fmt.Errorf("%w: public key: %v", ErrManifestMismatch, err)
	}
	pub, ok := pk.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: public key is not ECDSA", ErrManifestMismatch)
	}
	if trusted != nil && !pub.Equal(trusted) {
		return fmt.Errorf("%w: signed by an untrusted key", ErrManifestMismatch)
	}
	sig, err := hex.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not hex", ErrManifestMismatch)
	}
	p, err := m.payload()
	if err != nil {
		return err
	}
	d := sha256.Sum256(p)
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		return fmt.Errorf("%w: bad signature", ErrManifestMismatch)
	}
	for _, f := range m.Files {
		sum, err := fileSHA256(filepath.Join(dir, f.Name))
		if err != nil {
			return err
		}
		if sum != f.SHA256 {
			return fmt.Errorf("%w: %s has digest %s, manifest says %s", ErrManifestMismatch, f.Name, sum, f.SHA256)
		}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reports: %w", err)
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:]), nil
}
