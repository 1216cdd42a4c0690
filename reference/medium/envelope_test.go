package medium

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/tlv"
)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	issued = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)
	expiry = issued.Add(24 * time.Hour)
)

func storedValueInfo() ServiceInfo {
	return ServiceInfo{
		Kind:       KindStoredValue,
		AID:        []byte{0xF0, 0x53, 0x50, 0x44, 0x4C, 0x41, 0x42, 0x01},
		DeviceID:   []byte{1, 2, 3, 4, 5, 6, 7, 8},
		Token:      []byte("tok-4F9A2C"),
		Balance:    12345,
		Pending:    500,
		Uses:       10,
		ATC:        42,
		Currency:   156,
		Expiry:     expiry,
		Issued:     issued,
		PayeeNonce: []byte{0xAA, 0xBB, 0xCC, 0xDD},
	}
}

func infoCases() map[string]ServiceInfo {
	zero, one := 0, 1
	sv := storedValueInfo()
	transfer := ServiceInfo{Kind: KindTransfer, DeviceID: sv.DeviceID, Balance: 9000, Uses: 3, ATC: 7,
		Currency: 978, Amount: 2500, Expiry: expiry, Issued: issued, PayerID: []byte("payer-1"),
		PayeeID: []byte{9, 9, 9, 9, 9, 9, 9, 9}, Serial: 17}
	token := ServiceInfo{Kind: KindToken, DeviceID: sv.DeviceID, Token: []byte{0x10, 0x20, 0x30}, Balance: 1,
		ATC: 8, Currency: 840, Expiry: expiry, Issued: issued,
		Controls: &TokenControls{MaxTransactions: 3, MaxAmount: 10000, Channels: ChannelInStore | ChannelOnline}}
	ok := ServiceInfo{Kind: KindPaymentResult, DeviceID: sv.DeviceID, Balance: 100, ATC: 9, Currency: 156,
		Amount: 50, Expiry: expiry, Issued: issued, Result: &zero}
	failed := ok
	failed.Result = &one
	failed.Reason = "余额不足: insufficient balance"
	minimal := ServiceInfo{Kind: KindStoredValue, DeviceID: sv.DeviceID}
	return map[string]ServiceInfo{"stored value": sv, "transfer": transfer, "token": token,
		"result ok": ok, "result failed": failed, "minimal": minimal}
}

func TestSignParseVerify(t *testing.T) {
	key := newKey(t)
	for name, info := range infoCases() {
		t.Run(name, func(t *testing.T) {
			env, err := Sign(info, key)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normal(m.Info), normal(info)) {
				t.Fatalf("Parse.Info = %+v\nwant %+v", m.Info, info)
			}
			if err := m.Verify(&key.PublicKey); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(bytes.Clone(m.Signed), mustSigTLV(t, m.Signature)...), env) {
				t.Fatal("Signed | 9F45 Signature is not the envelope")
			}
			m2, err := ParseText(Text(env))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m2.Signed, m.Signed) || !bytes.Equal(m2.Signature, m.Signature) {
				t.Fatal("ParseText differs from Parse")
			}
			// One encoding per medium: the same info gives the same signed part.
			again, err := SignedPart(m.Info)
			if err != nil || !bytes.Equal(again, m.Signed) {
				t.Fatalf("SignedPart(Parse(x)) differs: %v", err)
			}
		})
	}
}

// normal makes empty slices nil so that DeepEqual compares meaning.
func normal(i ServiceInfo) ServiceInfo {
	v := reflect.ValueOf(&i).Elem()
	for j := range v.NumField() {
		if f := v.Field(j); f.Kind() == reflect.Slice && f.Len() == 0 {
			f.SetZero()
		}
	}
	return i
}

func mustSigTLV(t *testing.T, sig []byte) []byte {
	b, err := tlv.Encode(tlv.TLV{Tag: TagSignature, Value: sig})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignedLayout(t *testing.T) {
	info := ServiceInfo{Kind: KindStoredValue, DeviceID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Balance: 1000,
		Uses: 5, ATC: 1, Currency: 156, Expiry: time.Unix(0x6A000000, 0), Issued: time.Unix(0x69000000, 0)}
	got, err := SignedPart(info)
	if err != nil {
		t.Fatal(err)
	}
	want := "8505" + hex.EncodeToString([]byte("SVL01")) + "613A" +
		"DF010101" + "DF02080102030405060708" + "DF040800000000000003E8" + "DF060400000005" +
		"9F360400000001" + "5F24046A000000" + "5F2A02009C" + "9A0469000000"
	if !strings.EqualFold(hex.EncodeToString(got), want) {
		t.Fatalf("SignedPart = %X\nwant        %s", got, strings.ToUpper(want))
	}
}

func TestSignRejects(t *testing.T) {
	key := newKey(t)
	two := 2
	tests := []struct {
		name   string
		modify func(*ServiceInfo)
		want   string
	}{
		{"unknown kind", func(i *ServiceInfo) { i.Kind = 9 }, "unknown kind 9 in tag DF01 (kind)"},
		{"short device ID", func(i *ServiceInfo) { i.DeviceID = []byte{1} }, "DF02 (device ID): want 8 bytes, got 1"},
		{"negative balance", func(i *ServiceInfo) { i.Balance = -1 }, "DF04 (balance): negative value -1"},
		{"negative uses", func(i *ServiceInfo) { i.Uses = -1 }, "DF06 (uses)"},
		{"transfer without amount", func(i *ServiceInfo) { i.Kind = KindTransfer }, "positive amount"},
		{"token without token", func(i *ServiceInfo) { i.Kind = KindToken; i.Token = nil }, "needs a token"},
		{"result without result", func(i *ServiceInfo) { i.Kind = KindPaymentResult }, "needs a result"},
		{"result 2", func(i *ServiceInfo) { i.Result = &two }, "neither 0"},
		{"bad reason", func(i *ServiceInfo) { i.Reason = "\xff" }, "not UTF-8"},
		{"short AID", func(i *ServiceInfo) { i.AID = []byte{1} }, "4F (AID): length 1 outside 5..16"},
		{"time before 1970", func(i *ServiceInfo) { i.Expiry = time.Unix(-5, 0) }, "5F24 (expiry): time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := storedValueInfo()
			tt.modify(&info)
			_, err := Sign(info, key)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "medium: ") {
				t.Fatalf("Sign error %v, want %q", err, tt.want)
			}
		})
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Sign(storedValueInfo(), edKey); err == nil || !strings.Contains(err.Error(), "want ECDSA P-256") {
		t.Fatalf("Sign with Ed25519: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := Sign(storedValueInfo(), p384); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Fatalf("Sign with P-384: %v", err)
	}
}

// envelope builds an envelope from hex pieces with a dummy signature, for
// structural errors that come before any signature check.
func envelope(t *testing.T, parts ...string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.Join(parts, ""), " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMalformed(t *testing.T) {
	key := newKey(t)
	good, err := Sign(storedValueInfo(), key)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Parse(good)
	app := m.Signed[7:] // after 85 05 SVL01
	appHex := hex.EncodeToString(app)
	fmtHex := "8505" + hex.EncodeToString([]byte(PayloadFormat))
	sig := "9F4502 0102"
	body := func(inner string) string {
		b, _ := hex.DecodeString(strings.ReplaceAll(inner, " ", ""))
		enc, err := tlv.Encode(tlv.TLV{Tag: TagAppTemplate, Value: b})
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(enc)
	}
	base := "DF010101 DF02080102030405060708 DF040800000000000003E8 DF060400000005 9F360400000001 5F24046A000000 5F2A02009C 9A0469000000"
	tests := []struct {
		name string
		wire []byte
		want string
	}{
		{"empty", nil, "empty input"},
		{"wrong payload format", envelope(t, "8505", hex.EncodeToString([]byte("SVL02")), appHex, sig), `wrong payload format "SVL02"`},
		{"starts with 61", envelope(t, appHex, sig), "found tag 61 (application template) where 85 (payload format indicator) belongs"},
		{"no template", envelope(t, fmtHex), "truncated: tag 61 (application template) missing"},
		{"no signature", envelope(t, fmtHex, appHex), "truncated: tag 9F45 (signature) missing"},
		{"signature truncated", envelope(t, fmtHex, appHex, "9F4546 0102"), "reading 9F45 (signature): tlv: tag 9F45"},
		{"empty signature", envelope(t, fmtHex, appHex, "9F4500"), "9F45 (signature) is empty"},
		{"trailing", envelope(t, fmtHex, appHex, sig, "00"), "1 trailing bytes after the signature"},
		{"unknown tag", envelope(t, fmtHex, body(base+" DF2001 00"), sig), "unknown tag DF20 in the application template"},
		{"duplicate tag", envelope(t, fmtHex, body(base+" DF060400000005"), sig), "DF06 (uses) appears twice"},
		{"missing balance", envelope(t, fmtHex, body(strings.Replace(base, "DF040800000000000003E8", "", 1)), sig), "DF04 (balance) missing"},
		{"short balance", envelope(t, fmtHex, body(strings.Replace(base, "DF040800000000000003E8", "DF0402 03E8", 1)), sig), "DF04 (balance): want 8 bytes, got 2"},
		{"huge balance", envelope(t, fmtHex, body(strings.Replace(base, "DF040800000000000003E8", "DF0408 FF000000000003E8", 1)), sig), "DF04 (balance): value"},
		{"unknown kind", envelope(t, fmtHex, body(strings.Replace(base, "DF010101", "DF010107", 1)), sig), "unknown kind 7"},
		{"zero amount present", envelope(t, fmtHex, body(base+" 9F02080000000000000000"), sig), "9F02 (amount) present with value 0"},
		{"result 5", envelope(t, fmtHex, body(base+" DF0F0105"), sig), "result 5 is neither"},
		{"controls garbage", envelope(t, fmtHex, body(base+" DF0B03 DF0C05"), sig), "inside tag DF0B (token controls)"},
		{"controls missing", envelope(t, fmtHex, body(base+" DF0B04 DF0E0101"), sig), "DF0C (max transactions) missing"},
		{"bad inner TLV", envelope(t, fmtHex, "6103 DF0105", sig), "reading 61 (application template): tlv: tag DF01 at offset 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.wire)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "medium: ") {
				t.Fatalf("Parse error %v, want %q", err, tt.want)
			}
		})
	}
	// The base list itself is valid: the cases above fail for their reason.
	if _, err := Parse(envelope(t, fmtHex, body(base), sig)); err != nil {
		t.Fatalf("base envelope: %v", err)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	key := newKey(t)
	env, err := Sign(storedValueInfo(), key)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(env) {
		if _, err := Parse(env[:n]); err == nil {
			t.Fatalf("Parse accepted the first %d of %d bytes", n, len(env))
		}
	}
}

func TestTamperedAndResigned(t *testing.T) {
	key, other := newKey(t), newKey(t)
	env, err := Sign(storedValueInfo(), key)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Parse(env)
	// Flip one bit in every signed byte that still parses: the signature
	// must catch it.
	caught := 0
	for i := range len(m.Signed) {
		bad := bytes.Clone(env)
		bad[i] ^= 0x01
		bm, err := Parse(bad)
		if err != nil {
			continue // structure or field check caught it first
		}
		if err := bm.Verify(&key.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("flip at %d: Verify = %v", i, err)
		}
		caught++
	}
	if caught == 0 {
		t.Fatal("no flipped byte got as far as the signature check")
	}
	// Raise the balance and re-sign with a key that is not the device's.
	info := m.Info
	info.Balance = 1 << 40
	forged, err := Sign(info, other)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := Parse(forged)
	if err != nil {
		t.Fatal(err)
	}
	err = fm.Verify(&key.PublicKey)
	if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("re-signed medium: %v", err)
	}
	// A signature that is not DER at all.
	junk, _ := Seal(m.Signed, []byte{1, 2, 3})
	jm, err := Parse(junk)
	if err != nil {
		t.Fatal(err)
	}
	if err := jm.Verify(&key.PublicKey); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "not an ASN.1 DER") {
		t.Fatalf("junk signature: %v", err)
	}
	if err := m.Verify(nil); err == nil {
		t.Fatal("Verify(nil) succeeded")
	}
}

func TestParseText(t *testing.T) {
	key := newKey(t)
	env, _ := Sign(storedValueInfo(), key)
	text := Text(env)
	if _, err := ParseText(" " + text + "\n"); err != nil {
		t.Fatalf("surrounding space: %v", err)
	}
	for _, tt := range []struct{ name, text, want string }{
		{"empty", "  ", "empty text"},
		{"not base64", "SVL01!!!", "not standard Base64"},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(text) + "-_", "not standard Base64"},
		{"missing padding", strings.TrimRight(text+"A", "="), "not standard Base64"},
		{"not a medium", "aGVsbG8=", "tlv: tag 68 at offset 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseText(tt.text); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseText error %v, want %q", err, tt.want)
			}
		})
	}
}

// issuerCA makes a CA key and a device certificate for dev signed by it.
func deviceCert(t *testing.T, ca *ecdsa.PrivateKey, dev *ecdsa.PublicKey, from, to time.Time) []byte {
	t.Helper()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "spdlab issuer CA"},
		NotBefore: from, NotAfter: to, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	devTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "SPD 0102030405060708"},
		NotBefore: from, NotAfter: to, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, devTmpl, caTmpl, dev, ca)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestVerifyCertificate(t *testing.T) {
	ca, dev, rogue := newKey(t), newKey(t), newKey(t)
	info := storedValueInfo()
	info.Certificate = deviceCert(t, ca, &dev.PublicKey, issued.Add(-time.Hour), issued.Add(365*24*time.Hour))
	env, err := Sign(info, dev)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := VerifyCertificate(m, &ca.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "SPD 0102030405060708" {
		t.Fatalf("certificate subject %q", cert.Subject.CommonName)
	}
	if _, err := VerifyCertificate(m, &rogue.PublicKey); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "not signed by the issuer CA") {
		t.Fatalf("wrong CA: %v", err)
	}
	// A medium signed by a key other than the certificate's.
	forged, _ := Sign(info, rogue)
	fm, _ := Parse(forged)
	if _, err := VerifyCertificate(fm, &ca.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("medium signed by another key: %v", err)
	}
	// A certificate the rogue signed for its own key.
	info.Certificate = deviceCert(t, rogue, &rogue.PublicKey, issued.Add(-time.Hour), issued.Add(time.Hour))
	selfMade, _ := Sign(info, rogue)
	sm, _ := Parse(selfMade)
	if _, err := VerifyCertificate(sm, &ca.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("rogue certificate: %v", err)
	}
	// Issued outside the validity period.
	info.Certificate = deviceCert(t, ca, &dev.PublicKey, issued.Add(time.Hour), issued.Add(2*time.Hour))
	early, _ := Sign(info, dev)
	em, _ := Parse(early)
	if _, err := VerifyCertificate(em, &ca.PublicKey); err == nil || !strings.Contains(err.Error(), "outside the device certificate's validity") {
		t.Fatalf("issued before validity: %v", err)
	}
	// Issued 0 (1970) is checked like any other time, not skipped.
	info.Certificate = deviceCert(t, ca, &dev.PublicKey, issued.Add(-time.Hour), issued.Add(time.Hour))
	info.Issued = time.Time{}
	zero, err := Sign(info, dev)
	if err != nil {
		t.Fatal(err)
	}
	zm, _ := Parse(zero)
	if _, err := VerifyCertificate(zm, &ca.PublicKey); err == nil || !strings.Contains(err.Error(), "outside the device certificate's validity") {
		t.Fatalf("issued 0: %v", err)
	}
	info.Issued = issued
	// No certificate, and a certificate that is not X.509.
	plain, _ := Sign(storedValueInfo(), dev)
	pm, _ := Parse(plain)
	if _, err := VerifyCertificate(pm, &ca.PublicKey); err == nil || !strings.Contains(err.Error(), "no device certificate") {
		t.Fatalf("no certificate: %v", err)
	}
	info.Certificate = []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	junk, _ := Sign(info, dev)
	jm, _ := Parse(junk)
	if _, err := VerifyCertificate(jm, &ca.PublicKey); err == nil || !strings.Contains(err.Error(), "DF11 (certificate)") {
		t.Fatalf("junk certificate: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte{0x85, 0x05, 'S', 'V', 'L', '0', '1', 0x61, 0x00, 0x9F, 0x45, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "medium: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		// Whatever parses re-encodes to the same signed bytes, except for
		// field order, which Parse does not fix: compare after re-parsing.
		again, err := SignedPart(m.Info)
		if err != nil {
			t.Fatalf("SignedPart of parsed info: %v", err)
		}
		list, err := tlv.Parse(again)
		if err != nil || len(list) != 2 {
			t.Fatalf("re-encoded signed part does not parse: %v", err)
		}
		if len(again) != len(m.Signed) {
			t.Fatalf("re-encoded signed part has %d bytes, parsed had %d", len(again), len(m.Signed))
		}
	})
}

func FuzzParseText(f *testing.F) {
	f.Add("hQVTVkwwMWEAn0UBAA==")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseText(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "medium: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		env, err := Seal(m.Signed, m.Signature)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(env); err != nil {
			t.Fatalf("envelope rebuilt from a parsed text does not parse: %v", err)
		}
	})
}
