package terminal_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/terminal"
)

// labCA is the lab's test issuer CA key (scenarios.TestIssuer derives it
// the same way), so that the checked-in seeds made by `spdlab terminal`
// verify.
func labCA() *ecdsa.PublicKey {
	for i := 0; ; i++ {
		h := sha256.Sum256(fmt.Appendf(nil, "spdlab test CA/%d", i))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return &k.PublicKey
		}
	}
}

// FuzzScanOrder: a scanned merchant code never panics the terminal, and an
// order it accepts names a payee.
func FuzzScanOrder(f *testing.F) {
	f.Add("00020101021226270006spdlab0113MERCHANT-0042520458125303978540512.505802DE5908Cafe Lab6006Berlin62140110ORDER-1001630496F1")
	f.Fuzz(func(t *testing.T, text string) {
		o, err := terminal.ScanOrder(text)
		if err == nil && o.Payee == "" {
			t.Fatalf("accepted an order without a payee: %q", text)
		}
	})
}

// FuzzReadMedium: a scanned medium never panics the terminal, and one it
// accepts verifies under the issuer CA.
func FuzzReadMedium(f *testing.F) {
	ca := labCA()
	now := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	f.Add("hQVTVkwwMWE=")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := terminal.ReadMedium(text, ca, now)
		if err == nil && (m == nil || now.After(m.Info.Expiry)) {
			t.Fatalf("accepted %q: %+v", text, m)
		}
	})
}
