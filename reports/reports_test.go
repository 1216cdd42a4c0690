package reports

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeRun writes the report of the "failed" tiny suite, with its Ginkgo
// JSON and a trace file in the directory as certify leaves them.
func writeRun(t *testing.T, key *ecdsa.PrivateKey) (string, Certificate) {
	t.Helper()
	rs := runTinyOnce(t, "failed")
	dir := t.TempDir()
	gj, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileGinkgo), gj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "trace"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "trace", "apdu.pcapng"), []byte("pcapng bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	info := RunInfo{
		DUT:     "pcsc:Virtual PCD 00 00",
		Samples: []Sample{{Name: "A", Reader: "Virtual PCD 00 00", ATR: "3B8880014F", DeviceID: "5D1AB00000000001", State: "blank"}},
		ICS: ICS{File: "/home/vendor/acme/ics.yaml", YAML: "vendor: ACME\nmodel: S1\n", Vendor: "ACME", Model: "S1",
			Firmware: "1.2.3", FormFactor: "sim"},
		SuiteVersion: "1", CaseCount: 3, SpecVersion: "1",
		Lab: Lab{Name: "ACME test lab"},
	}
	c, err := Write(dir, info, rs, key)
	if err != nil {
		t.Fatal(err)
	}
	return dir, c
}

func TestWriteRecordsRun(t *testing.T) {
	key := newKey(t)
	dir, c := writeRun(t, key)
	if c.Run.Lab.KeyFingerprint != Fingerprint(&key.PublicKey) || len(c.Run.Lab.KeyFingerprint) != 64 {
		t.Fatalf("lab %+v", c.Run.Lab)
	}
	if want := sha256Hex("vendor: ACME\nmodel: S1\n"); c.Run.ICS.SHA256 != want {
		t.Fatalf("ICS digest %q", c.Run.ICS.SHA256)
	}
	if c.Run.ICS.File != "ics.yaml" {
		t.Errorf("ICS file %q: a machine path", c.Run.ICS.File)
	}
	if c.Run.Tool.Version == "" || c.Run.Tool.Commit == "" {
		t.Errorf("tool %+v not filled from the build", c.Run.Tool)
	}
	got, err := ReadCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Verdict != VerdictNotCertified || got.Run.DUT != c.Run.DUT || got.Run.Samples[0].ATR != "3B8880014F" ||
		got.Run.ICS.YAML != "vendor: ACME\nmodel: S1\n" || got.Run.CaseCount != 3 {
		t.Fatalf("certificate.json run %+v", got.Run)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range m.Files {
		names = append(names, f.Name)
	}
	if strings.Join(names, " ") != "certificate.json ginkgo.json junit.xml report.html trace/apdu.pcapng" {
		t.Fatalf("manifest files %v", names)
	}
	if m.Run.ICS.SHA256 != c.Run.ICS.SHA256 || m.Run.ICS.YAML != "" || m.Run.Lab.Name != "ACME test lab" || m.Verdict != VerdictNotCertified {
		t.Fatalf("manifest identity %+v", m.Run)
	}
	for _, f := range []string{FileHTML, FileCertificate} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		for _, bad := range []string{"/home/vendor", "/work/", os.Getenv("HOME") + "/"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s holds the machine path %q", f, bad)
			}
		}
	}
	info := RunInfo{ICS: ICS{YAML: "a: 1\n", SHA256: strings.Repeat("0", 64)}}
	if _, err := Write(t.TempDir(), info, runTinyOnce(t, "certified"), key); err == nil {
		t.Fatal("an ICS digest that does not match its text was accepted")
	}
}

func TestVerify(t *testing.T) {
	key := newKey(t)
	trust := Trust{}
	trust.Add(&key.PublicKey, "ACME test lab")

	t.Run("intact", func(t *testing.T) {
		dir, _ := writeRun(t, key)
		m, err := Verify(dir, trust)
		if err != nil {
			t.Fatal(err)
		}
		if m.KeyFingerprint != Fingerprint(&key.PublicKey) {
			t.Fatalf("fingerprint %s", m.KeyFingerprint)
		}
	})
	t.Run("no trust anchor", func(t *testing.T) {
		dir, _ := writeRun(t, key)
		if _, err := Verify(dir, nil); !errors.Is(err, ErrNoTrustAnchor) {
			t.Fatalf("verified without a trust anchor: %v", err)
		}
	})
	t.Run("re-signed by another key", func(t *testing.T) {
		dir, _ := writeRun(t, key)
		other := newKey(t)
		m, err := ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Flip the verdict and sign everything again, as a forger would.
		var c Certificate
		c.Run, c.Verdict, c.Certified = m.Run, VerdictCertified, true
		c.Run.Lab.KeyFingerprint = Fingerprint(&other.PublicKey)
		os.Remove(filepath.Join(dir, FileManifest))
		forged, err := signManifest(dir, c, other)
		if err != nil {
			t.Fatal(err)
		}
		writeJSON(t, filepath.Join(dir, FileManifest), forged)
		m, err = Verify(dir, trust)
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), Fingerprint(&other.PublicKey)) {
			t.Fatalf("report re-signed by another key: %v", err)
		}
		if m.KeyFingerprint != Fingerprint(&other.PublicKey) {
			t.Fatalf("returned fingerprint %s", m.KeyFingerprint)
		}
		// Claiming the trusted fingerprint over the forger's key fails too.
		forged.KeyFingerprint = Fingerprint(&key.PublicKey)
		forged.Run.Lab.KeyFingerprint = forged.KeyFingerprint
		writeJSON(t, filepath.Join(dir, FileManifest), forged)
		if _, err := Verify(dir, trust); !errors.Is(err, ErrManifestMismatch) {
			t.Fatalf("forged fingerprint accepted: %v", err)
		}
	})
	tamper := map[string]func(t *testing.T, dir string){
		"ginkgo.json changed": func(t *testing.T, dir string) { appendTo(t, filepath.Join(dir, FileGinkgo), " ") },
		"report.html changed": func(t *testing.T, dir string) { appendTo(t, filepath.Join(dir, FileHTML), " ") },
		"trace changed":       func(t *testing.T, dir string) { appendTo(t, filepath.Join(dir, "trace", "apdu.pcapng"), "x") },
		"file added": func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o644)
		},
		"file removed": func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, FileJUnit)) },
		"verdict flipped": func(t *testing.T, dir string) {
			m, _ := ReadManifest(dir)
			m.Verdict, m.Certified = VerdictCertified, true
			writeJSON(t, filepath.Join(dir, FileManifest), m)
		},
		"DUT renamed": func(t *testing.T, dir string) {
			m, _ := ReadManifest(dir)
			m.Run.DUT = "pcsc:Other"
			writeJSON(t, filepath.Join(dir, FileManifest), m)
		},
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			dir, _ := writeRun(t, key)
			f(t, dir)
			if _, err := Verify(dir, trust); !errors.Is(err, ErrManifestMismatch) {
				t.Fatalf("accepted: %v", err)
			}
		})
	}
}

func TestTrustFile(t *testing.T) {
	a, b := newKey(t), newKey(t)
	pemB, err := PublicKeyPEM(&b.PublicKey, "Lab B")
	if err != nil {
		t.Fatal(err)
	}
	file := "# labs we accept\n" + Fingerprint(&a.PublicKey) + " Lab A\n\n" + pemB
	tr, err := ParseTrust([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 2 || tr[Fingerprint(&a.PublicKey)] != "Lab A" || tr[Fingerprint(&b.PublicKey)] != "Lab B" {
		t.Fatalf("trust %v", tr)
	}
	for _, bad := range []string{"", "# nothing\n", "not a fingerprint\n", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ParseTrust([]byte(bad)); err == nil {
			t.Errorf("trust file %q accepted", bad)
		}
	}
}

func TestLabKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab", "lab-key.pem")
	if _, err := LabKey(path); !errors.Is(err, ErrNoLabKey) || !strings.Contains(err.Error(), "spdlab labkey init") {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("LabKey made a key")
	}
	lab, err := InitLab(path, "ACME test lab")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitLab(path, "Other"); err == nil {
		t.Fatal("InitLab overwrote a key")
	}
	got, key, err := OpenLab(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != lab || got.Name != "ACME test lab" || got.KeyFingerprint != Fingerprint(&key.PublicKey) {
		t.Fatalf("lab %+v, made %+v", got, lab)
	}
	pb, err := os.ReadFile(PublicKeyPath(path))
	if err != nil {
		t.Fatal(err)
	}
	name, pub, err := ParsePublicKeyPEM(pb)
	if err != nil || name != "ACME test lab" || !pub.Equal(&key.PublicKey) {
		t.Fatalf("public key file: %q %v", name, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sha256Hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}
