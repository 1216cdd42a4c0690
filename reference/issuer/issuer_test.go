package issuer_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
)

func TestCertifyAndPersonalisationScript(t *testing.T) {
	is, err := issuer.Generate("issuer test")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := []byte{0x7E, 0x57, 0, 0, 0, 0, 0, 1}
	cert, err := is.Certify(id, &dev.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, gotID, err := spd.VerifyDeviceCertificate(cert, &is.CA.PublicKey)
	if err != nil || !pub.Equal(&dev.PublicKey) || !bytes.Equal(gotID, id) {
		t.Fatalf("certificate verifies as %v, ID %X: %v", pub, gotID, err)
	}
	again, err := is.Certify(id, &dev.PublicKey)
	if err != nil || !bytes.Equal(again, cert) {
		t.Fatalf("a device certificate is not a function of its inputs: %v", err)
	}
	other, err := issuer.Generate("another issuer")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := spd.VerifyDeviceCertificate(cert, &other.CA.PublicKey); err == nil {
		t.Fatal("another issuer's CA verifies the certificate")
	}
	if _, err := is.Certify(id[:7], &dev.PublicKey); err == nil {
		t.Fatal("a 7-byte device ID was certified")
	}

	p := spd.Profile{DeviceID: id, DevicePublicKey: &dev.PublicKey, Currency: 978, Balance: 10_00, Uses: 3,
		Account: []byte("DE89370400440532013000"), AccountToken: bytes.Repeat([]byte{0xA0}, spd.TokenLen),
		PIN: "2580", PUK: "13572468", PINTryLimit: 3}
	script, err := is.PersonalisationScript(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(script) != 3 || spd.INS(script[0].INS) != spd.INSPersonalise ||
		spd.INS(script[1].INS) != spd.INSVerify || spd.INS(script[2].INS) != spd.INSActivate {
		t.Fatalf("script %v, want PERSONALISE, VERIFY, ACTIVATE", script)
	}
	body, err := spd.OpenIssuerData(&is.CA.PublicKey, spd.INSPersonalise, id, script[0].Data)
	if err != nil {
		t.Fatalf("PERSONALISE is not sealed by the CA for the device: %v", err)
	}
	got, err := spd.ParseProfile(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Certificate, cert) || got.HostPublicKey == nil || !got.HostPublicKey.Equal(&is.HostKey().PublicKey) {
		t.Fatalf("PERSONALISE carries certificate %X and host key %v, want the issuer's", got.Certificate, got.HostPublicKey)
	}
}
