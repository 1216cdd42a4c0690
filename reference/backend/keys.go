package backend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseKeys reads the backend's keys from PEM (or DER) bytes, as a command
// line loads them from files: signer is the host key that signs the
// backend's answers and device commands ("PRIVATE KEY", PKCS #8, or "EC
// PRIVATE KEY", SEC 1; P-256); ca is the issuer CA certificate. Either may
// be empty: Open then keeps a key in the database, or accepts bare device
// public keys.
func ParseKeys(signer, ca []byte) (Keys, error) {
	var k Keys
	if len(signer) > 0 {
		der := signer
		if blk, _ := pem.Decode(signer); blk != nil {
			der = blk.Bytes
		}
		var key any
		key, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			if key, err = x509.ParseECPrivateKey(der); err != nil {
				return Keys{}, errors.New("backend: signer key: neither PKCS #8 nor SEC 1")
			}
		}
		ek, ok := key.(*ecdsa.PrivateKey)
		if !ok || ek.Curve != elliptic.P256() {
			return Keys{}, errors.New("backend: signer key is not ECDSA P-256")
		}
		k.Signer = ek
	}
	if len(ca) > 0 {
		der := ca
		if blk, _ := pem.Decode(ca); blk != nil {
			der = blk.Bytes
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return Keys{}, fmt.Errorf("backend: issuer CA certificate: %w", err)
		}
		if !cert.IsCA {
			return Keys{}, errors.New("backend: issuer CA certificate is not a CA")
		}
		k.IssuerCA = cert
	}
	return k, nil
}
