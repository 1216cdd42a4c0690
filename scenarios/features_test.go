package scenarios

import (
	"slices"
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/scenarios/ics"
)

func TestFeaturesMatchTheICS(t *testing.T) {
	var names []string
	for _, f := range Features {
		names = append(names, string(f))
	}
	if !slices.Equal(names, ics.Features) {
		t.Fatalf("scenarios.Features %q, ics.Features %q: the two lists must agree", names, ics.Features)
	}
}

func TestCommandFeatures(t *testing.T) {
	home := payment(spd.KindBalance, spd.ModeOnline, 100)
	abroad := home
	abroad.Region = Abroad
	tier := payment(spd.KindUse, spd.ModeOnline, 0)
	tier.RequiredTier = 2
	token := payment(spd.KindAccount, spd.ModeOffline, 100)
	token.Channel = 2
	for _, tc := range []struct {
		name string
		cmd  apdu.Command
		want []Capability
	}{
		{"SELECT", spd.Select(), nil},
		{"VERIFY PIN", spd.VerifyPIN(TestPIN), nil},
		{"VERIFY biometric", spd.VerifyBiometric(TestBioTemplate), []Capability{Biometric}},
		{"INTERNAL AUTHENTICATE", spd.InternalAuthenticate([]byte{1, 2, 3}), []Capability{CertVerify}},
		{"PAY balance at home", spd.Pay(home), []Capability{PayBalance}},
		{"PAY abroad", spd.Pay(abroad), []Capability{PayBalance, Location}},
		{"PAY uses with a tier", spd.Pay(tier), []Capability{PayUses, Attribute}},
		{"PAY account offline on a channel", spd.Pay(token), []Capability{PayAccount, Offline, Tokens}},
		{"GENERATE MEDIUM", spd.GenerateMedium(spd.MediumRequest{Time: Clock}), []Capability{Media}},
		{"GENERATE TOKEN", apdu.Command{CLA: 0x80, INS: 0x6A}, []Capability{Tokens}},
		{"TRANSFER", apdu.Command{CLA: 0x80, INS: 0x6C}, []Capability{Transfers}},
		{"TRANSFER IN", apdu.Command{CLA: 0x80, INS: 0x6E}, []Capability{Transfers}},
		{"RECLAIM", apdu.Command{CLA: 0x80, INS: 0x70}, []Capability{Transfers}},
		{"PARSE MEDIUM", apdu.Command{CLA: 0x80, INS: 0x72}, []Capability{ParseMedium}},
		{"READ PENDING", spd.ReadPending(0), nil},
		{"TEST ERASE", apdu.Command{CLA: 0x80, INS: 0x5E}, nil},
	} {
		got := commandFeatures(tc.cmd.MustBytes())
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: features %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFeaturesCited(t *testing.T) {
	got := featuresCited([]string{"TC-TOK-001", "SPD-TOK-2", "SPD-LED-3", "SPD-LED-1", "SPD-VER-2", "C22"})
	want := []Capability{Tokens, Offline, Attribute}
	if !slices.Equal(got, want) {
		t.Fatalf("featuresCited: %q, want %q", got, want)
	}
}
