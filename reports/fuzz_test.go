package reports

import (
	"testing"
)

// Seed corpora live in testdata/fuzz/<target>: a real manifest, certificate,
// trust file and keys as Write and InitLab make them, plus broken ones.

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"spdlab-manifest/2","files":[{"name":"../x","sha256":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if m.Format != ManifestFormat {
			t.Fatalf("accepted format %q", m.Format)
		}
		if _, err := m.payload(); err != nil {
			t.Fatalf("parsed manifest does not marshal: %v", err)
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	f.Add([]byte(`{"verdict":"CERTIFIED","certified":false}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCertificate(b)
		if err != nil {
			return
		}
		if c.Certified != (c.Verdict == VerdictCertified) {
			t.Fatalf("accepted certified=%v with verdict %q", c.Certified, c.Verdict)
		}
		var page nopWriter
		if err := c.WriteHTML(&page); err != nil {
			t.Fatalf("parsed certificate does not render: %v", err)
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, pub, err := ParsePublicKeyPEM(b)
		if err != nil {
			return
		}
		if len(Fingerprint(pub)) != 64 {
			t.Fatal("accepted key has no fingerprint")
		}
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, k, err := ParsePrivateKeyPEM(b)
		if err != nil {
			return
		}
		if len(Fingerprint(&k.PublicKey)) != 64 {
			t.Fatal("accepted key has no fingerprint")
		}
	})
}

func FuzzParseTrust(f *testing.F) {
	f.Add([]byte("# labs\nsha256:" + "ab" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd Lab\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTrust(b)
		if err != nil {
			return
		}
		for fp := range tr {
			if len(fp) != 64 {
				t.Fatalf("trusted fingerprint %q", fp)
			}
		}
	})
}

func FuzzParseGinkgoJSON(f *testing.F) {
	f.Add([]byte(`[{"SuiteDescription":"x","SpecReports":[{"LeafNodeType":"It","State":"skipped","LeafNodeLabels":["TC-A-001"],"Failure":{"Message":"not applicable: x"}}]}]`))
	f.Add([]byte(`[{"SuiteDescription":"x","SpecReports":[{"LeafNodeType":"It","State":"passed","LeafNodeLabels":["TC-A-001"],"ReportEntries":[` +
		`{"Name":"transcript","Value":{"AsJSON":"\"00A4040000 -\u003e 9000\\n8060000000 -\u003e 6982\\n\"","Representation":"00A4040000 -> 9000\n8060000000 -> 6982\n"}},` +
		`{"Name":"round-trip times","Value":{"AsJSON":"[1000,2000]"}},` +
		`{"Name":"coded medium","Value":{"AsJSON":"{\"name\":\"m\",\"format\":\"QR\",\"text\":\"x\",\"png\":\"iVBORw0KGgo=\"}"}},` +
		`{"Name":"optical decode rates","Value":{"AsJSON":"[{\"medium\":\"m\",\"format\":\"QR\",\"level\":1,\"read\":1,\"tried\":2}]"}}]}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseGinkgoJSON(b)
		if err != nil {
			return
		}
		c := Build(RunInfo{CaseCount: 1}, rs)
		for _, cs := range c.Cases {
			if cs.Verdict != Passed && cs.Reason == "" {
				t.Fatalf("%s is %s with no reason", cs.ID, cs.Verdict)
			}
		}
		if c.Certified != (c.Verdict == VerdictCertified) {
			t.Fatalf("verdict %q certified=%v", c.Verdict, c.Certified)
		}
		// The evidence entries: round trips, media, optical rates.
		for _, r := range c.RoundTrips() {
			if r.N == 0 || r.Min > r.Median || r.Median > r.Max {
				t.Fatalf("round trips %+v", r)
			}
		}
		for _, o := range c.OpticalRates() {
			if o.Rate() != o.Rate() {
				t.Fatalf("optical rate %+v", o)
			}
		}
		if err := c.WriteHTML(&nopWriter{}); err != nil {
			t.Fatal(err)
		}
	})
}

type nopWriter struct{}

func (*nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func FuzzDecodeTranscript(f *testing.F) {
	f.Add("00A4040008F0535044 4C414201 -> 9000\nreset-cold -> 3B8880\npower-off -> error link: removed\n")
	f.Fuzz(func(t *testing.T, text string) {
		for _, s := range DecodeTranscript(text) {
			if s.Raw == "" || s.Op == "" {
				t.Fatalf("step %+v lost its line", s)
			}
		}
	})
}

func FuzzParseGolden(f *testing.F) {
	f.Add([]byte("# x\nverdict passed\nstep SELECT 00 A4 04 00 -> 9000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGolden(b)
		if err != nil {
			return
		}
		if g.Verdict == "" {
			t.Fatal("accepted a golden file without a verdict")
		}
		back, err := ParseGolden([]byte(g.Format(Case{ID: "TC-X-001"})))
		if err != nil || back.Verdict != g.Verdict || len(back.Steps) != len(g.Steps) {
			t.Fatalf("golden does not survive Format: %v", err)
		}
	})
}
