package reports

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A lab key is an ECDSA P-256 private key in a PEM file ("EC PRIVATE KEY",
// SEC 1, or "PRIVATE KEY", PKCS #8). InitLab writes it with a "Lab-Name"
// PEM header, and the public key beside it (PublicKeyPath) as a
// "PUBLIC KEY" block with the same header: the file a lab hands to anyone
// who checks its reports with `spdlab report --verify --lab-key`.
const labNameHeader = "Lab-Name"

// DefaultLabKeyPath is where the lab keeps its report signing key.
func DefaultLabKeyPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "spdlab", "lab-key.pem")
}

// PublicKeyPath is where InitLab writes the public key of the key at path:
// lab-key.pem -> lab-key.pub.pem.
func PublicKeyPath(path string) string {
	return strings.TrimSuffix(path, ".pem") + ".pub.pem"
}

// ErrNoLabKey is returned by OpenLab and LabKey when the key file does not
// exist.
var ErrNoLabKey = errors.New("reports: no lab key")

// InitLab makes a new lab key at path for the lab called name and writes
// its public key to PublicKeyPath(path). It refuses to overwrite either.
func InitLab(path, name string) (Lab, error) {
	name = strings.TrimSpace(name)
	if name == "" || strings.ContainsAny(name, "\r\n") {
		return Lab{}, errors.New("reports: a lab needs a one-line name")
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Lab{}, fmt.Errorf("reports: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return Lab{}, fmt.Errorf("reports: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return Lab{}, fmt.Errorf("reports: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Lab{}, fmt.Errorf("reports: %w", err)
	}
	pubPath := PublicKeyPath(path)
	if _, err := os.Lstat(pubPath); err == nil {
		return Lab{}, fmt.Errorf("reports: %s exists; not overwriting it", pubPath)
	}
	hdr := map[string]string{labNameHeader: name}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: hdr, Bytes: der}), 0o600); err != nil {
		return Lab{}, err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: hdr, Bytes: pub}), 0o644); err != nil {
		return Lab{}, err
	}
	return Lab{Name: name, KeyFingerprint: Fingerprint(&k.PublicKey)}, nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("reports: %s exists; not overwriting it", path)
	}
	if err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("reports: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("reports: %w", err)
	}
	return nil
}

// OpenLab loads the lab key at path and the lab's name stored with it.
// A missing file is ErrNoLabKey, with the command that makes one.
func OpenLab(path string) (Lab, *ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Lab{}, nil, fmt.Errorf("%w at %s: make one with `spdlab labkey init --key %s --name LAB` (once per lab, then keep it safe)", ErrNoLabKey, path, path)
	}
	if err != nil {
		return Lab{}, nil, fmt.Errorf("reports: %w", err)
	}
	name, k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return Lab{}, nil, fmt.Errorf("reports: %s: %w", path, err)
	}
	return Lab{Name: name, KeyFingerprint: Fingerprint(&k.PublicKey)}, k, nil
}

// LabKey loads the lab's report signing key from path. It never makes one:
// a missing key is ErrNoLabKey (see InitLab).
func LabKey(path string) (*ecdsa.PrivateKey, error) {
	_, k, err := OpenLab(path)
	return k, err
}

// ParsePrivateKeyPEM reads an ECDSA P-256 private key and its Lab-Name
// header from the first PEM block of b.
func ParsePrivateKeyPEM(b []byte) (name string, key *ecdsa.PrivateKey, err error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", nil, errors.New("reports: no PEM block")
	}
	name = blk.Headers[labNameHeader]
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		var k any
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err == nil {
			var ok bool
			if key, ok = k.(*ecdsa.PrivateKey); !ok {
				err = errors.New("not an ECDSA key")
			}
		}
	default:
		return "", nil, fmt.Errorf("reports: PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return "", nil, fmt.Errorf("reports: not an EC private key: %w", err)
	}
	if key.Curve != elliptic.P256() {
		return "", nil, errors.New("reports: the lab key must be on P-256")
	}
	return name, key, nil
}

// ParsePublicKeyPEM reads an ECDSA P-256 public key ("PUBLIC KEY",
// SubjectPublicKeyInfo) and its Lab-Name header from the first PEM block
// of b.
func ParsePublicKeyPEM(b []byte) (name string, key *ecdsa.PublicKey, err error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", nil, errors.New("reports: no PEM block")
	}
	if blk.Type != "PUBLIC KEY" {
		return "", nil, fmt.Errorf("reports: PEM block %q is not a public key", blk.Type)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return "", nil, fmt.Errorf("reports: public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", nil, errors.New("reports: public key is not ECDSA P-256")
	}
	return blk.Headers[labNameHeader], pub, nil
}

// PublicKeyPEM encodes pub as a "PUBLIC KEY" PEM block, with the lab's
// name as a header when name is not empty.
func PublicKeyPEM(pub *ecdsa.PublicKey, name string) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("reports: %w", err)
	}
	var hdr map[string]string
	if name != "" {
		hdr = map[string]string{labNameHeader: name}
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: hdr, Bytes: der})), nil
}

// Fingerprint is the lab key's fingerprint: hex SHA-256 of the DER
// SubjectPublicKeyInfo of pub.
func Fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	d := sha256.Sum256(der)
	return hex.EncodeToString(d[:])
}

// EphemeralLabName is the lab name EphemeralLab records.
const EphemeralLabName = "no lab (throwaway key of a test run)"

// EphemeralLab makes a throwaway signing key, kept nowhere, for a test run
// on a machine that has no lab key (a developer's or CI's run of the
// suite). Its reports verify against nothing a lab hands out.
func EphemeralLab() (Lab, *ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Lab{}, nil, fmt.Errorf("reports: %w", err)
	}
	return Lab{Name: EphemeralLabName, KeyFingerprint: Fingerprint(&k.PublicKey)}, k, nil
}
