// Package issuer is the institution that issues SPDs (SPEC.md C40, C41,
// SPD-KEY-1..3, section 12): it holds the CA key that certifies device keys
// and signs personalisation, and the host key its backend signs orders
// with. It certifies a device's key, builds and runs the personalisation
// script (INITIALISE, PERSONALISE, VERIFY, ACTIVATE) through a host-side
// spd.Client, and returns a test sample to blank with TEST ERASE. The
// command codec it builds on is reference/spd; the lab's test issuer, the
// demo and the backend's keys are Issuers.
package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// Issuer is the institution that issues SPDs (C40, C41): it holds the CA
// key that certifies device keys and signs personalisation, and the host
// key its backend signs acknowledgements and updates with.
type Issuer struct {
	CA   *ecdsa.PrivateKey
	Host *ecdsa.PrivateKey // nil: the CA key signs host orders too
	// CACertificate is the self-signed CA certificate (DER).
	CACertificate []byte
	caCert        *x509.Certificate
}

// New returns an issuer with CA key ca and host key host (may be
// nil) and makes its self-signed CA certificate.
func New(name string, ca, host *ecdsa.PrivateKey) (*Issuer, error) {
	if ca == nil {
		return nil, errors.New("issuer: issuer without a CA key")
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " SPD CA", Organization: []string{name}},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.PublicKey, ca)
	if err != nil {
		return nil, fmt.Errorf("issuer: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issuer: CA certificate: %w", err)
	}
	return &Issuer{CA: ca, Host: host, CACertificate: der, caCert: cert}, nil
}

// Generate makes an issuer with fresh CA and host keys.
func Generate(name string) (*Issuer, error) {
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	host, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return New(name, ca, host)
}

// HostKey is the key that signs host orders (ACKNOWLEDGE, UPDATE
// PARAMETERS, RECLAIM, issuer unblock).
func (is *Issuer) HostKey() *ecdsa.PrivateKey {
	if is.Host != nil {
		return is.Host
	}
	return is.CA
}

// Certify issues the device certificate for a device ID and public key.
func (is *Issuer) Certify(deviceID []byte, pub *ecdsa.PublicKey) ([]byte, error) {
	if len(deviceID) != spd.DeviceIDLen {
		return nil, fmt.Errorf("issuer: device ID of %d bytes, want %d", len(deviceID), spd.DeviceIDLen)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("issuer: device key is not P-256")
	}
	tmpl := &x509.Certificate{
		SerialNumber:       new(big.Int).SetBytes(deviceID),
		Subject:            pkix.Name{CommonName: "SPD " + spd.DeviceIDString(deviceID), SerialNumber: spd.DeviceIDString(deviceID)},
		NotBefore:          time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:           time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.caCert, pub, deterministic{is.CA})
	if err != nil {
		return nil, fmt.Errorf("issuer: device certificate: %w", err)
	}
	return der, nil
}

// deterministic signs with RFC 6979 ECDSA whatever random source it is
// given: a device certificate is a function of the CA key, device ID and
// device key alone.
type deterministic struct{ *ecdsa.PrivateKey }

func (k deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.PrivateKey.Sign(nil, digest, opts)
}

// Initialise returns the INITIALISE command that loads the CA public key and
// device ID into a blank device; the device answers its public key.
func (is *Issuer) Initialise(deviceID []byte) apdu.Command {
	return spd.Initialise(&is.CA.PublicKey, deviceID)
}

// PersonalisationScript certifies p.DevicePublicKey and returns the
// commands that personalise and activate the device: PERSONALISE with the
// CA-signed profile, VERIFY of the profile's PIN, ACTIVATE. When the
// profile names no host key and the issuer has one, the issuer's host key
// is loaded. The device
// must already be initialised with p.DeviceID (see Initialise).
func (is *Issuer) PersonalisationScript(p spd.Profile) ([]apdu.Command, error) {
	cert, err := is.Certify(p.DeviceID, p.DevicePublicKey)
	if err != nil {
		return nil, err
	}
	p.Certificate = cert
	if p.HostPublicKey == nil && is.Host != nil {
		p.HostPublicKey = &is.Host.PublicKey
	}
	cmd, err := spd.Personalise(is.CA, p)
	if err != nil {
		return nil, err
	}
	return []apdu.Command{
		cmd,
		spd.VerifyPIN(p.PIN),
		spd.Activate(),
	}, nil
}

// Personalise takes a blank (or initialised) device through INITIALISE,
// PERSONALISE, VERIFY and ACTIVATE. It fills p.DevicePublicKey and
// p.Certificate and returns the profile as loaded.
func (is *Issuer) Personalise(ctx context.Context, c *spd.Client, p spd.Profile) (spd.Profile, error) {
	if _, err := c.Select(ctx); err != nil {
		return spd.Profile{}, err
	}
	pub, err := c.Initialise(ctx, &is.CA.PublicKey, p.DeviceID)
	if err != nil {
		return spd.Profile{}, err
	}
	p.DevicePublicKey = pub
	script, err := is.PersonalisationScript(p)
	if err != nil {
		return spd.Profile{}, err
	}
	if err := c.Run(ctx, script); err != nil {
		return spd.Profile{}, err
	}
	if p.Certificate, err = c.Certificate(ctx); err != nil {
		return spd.Profile{}, err
	}
	return p, nil
}

// Erase returns a test sample to blank with TEST ERASE (SPEC.md section
// 12), signed with the issuer's CA key. A blank device is left as it is.
func (is *Issuer) Erase(ctx context.Context, c *spd.Client) error {
	sel, err := c.Select(ctx)
	if err != nil {
		return err
	}
	if sel.State == spd.StateBlank {
		return nil
	}
	n, err := c.EraseCounter(ctx)
	if err != nil {
		return err
	}
	cmd, err := spd.TestErase(is.CA, sel.DeviceID, n+1)
	if err != nil {
		return err
	}
	if err := c.Send(ctx, cmd); err != nil {
		return fmt.Errorf("issuer: TEST ERASE: %w", err)
	}
	return nil
}
