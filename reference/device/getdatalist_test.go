package device

import (
	"bytes"
	"maps"
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// listTags are the tags a GET DATA list may name (SPEC.md 4.2.1): every
// object of 4.2 but DF11.
var listTags = []tlv.Tag{spd.TagState, spd.TagDeviceID, spd.TagDevicePublicKey, spd.TagBalance, spd.TagUses, spd.TagATC,
	spd.TagPending, spd.TagPendingCount, spd.TagLimits, spd.TagCurrency, spd.TagToken, spd.TagTier, spd.TagPINTries,
	spd.TagUpdateCounter, spd.TagLastSync, spd.TagEraseCounter}

// singles is what GET DATA 00 CA answers for each tag, concatenated.
func (r *rig) singles(t *testing.T, tags ...tlv.Tag) []byte {
	t.Helper()
	var out []byte
	for _, tag := range tags {
		out = append(out, r.expect(t, spd.GetData(tag), apdu.SWOK)...)
	}
	return out
}

func TestGetDataListEqualsSingles(t *testing.T) {
	r := newBlankRig(t, "GDLIST01")
	r.expect(t, spd.Select(), apdu.SWOK)
	blank := []tlv.Tag{spd.TagEraseCounter, spd.TagState}
	if got, want := r.expect(t, spd.GetDataList(blank...), apdu.SWOK), r.singles(t, blank...); !bytes.Equal(got, want) {
		t.Fatalf("blank: list answered %X, singles %X", got, want)
	}
	r.expect(t, spd.GetDataList(spd.TagState, spd.TagBalance), apdu.SWConditionsNotSat)
	r.expect(t, spd.GetDataList(spd.TagDeviceID), apdu.SWConditionsNotSat)

	r = newRig(t, "GDLIST02")
	r.login(t)
	check := func(what string, tags ...tlv.Tag) {
		t.Helper()
		got := r.expect(t, spd.GetDataList(tags...), apdu.SWOK)
		if want := r.singles(t, tags...); !bytes.Equal(got, want) {
			t.Fatalf("%s: list answered %X, singles %X", what, got, want)
		}
		vals, err := spd.ParseDataObjects(tags, got)
		if err != nil || len(vals) != len(tags) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("personalised, every tag", listTags...)
	reversed := make([]tlv.Tag, len(listTags))
	for i, tag := range listTags {
		reversed[len(listTags)-1-i] = tag
	}
	check("every tag in reverse", reversed...)
	check("one tag", spd.TagATC)
	if _, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOffline, 1_00)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Pay(ctx, payReq(spd.KindUse, spd.ModeOnline, 0)); err != nil {
		t.Fatal(err)
	}
	check("after two payments", listTags...)
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, spd.VerifyPIN("0000"), apdu.SW(0x63C2))
	check("after a wrong PIN", spd.TagPINTries, spd.TagATC, spd.TagBalance)

	// The whole list fits a short answer: at most 214 bytes.
	if n := len(r.expect(t, spd.GetDataList(listTags...), apdu.SWOK)); n != 214 {
		t.Fatalf("every tag: %d bytes, want 214", n)
	}
}

func TestGetDataListRefusals(t *testing.T) {
	r := newRig(t, "GDLIST03")
	r.login(t)
	before := r.snap(t)
	good := spd.GetDataList(spd.TagBalance, spd.TagATC)
	with := func(p1, p2 byte, data []byte) apdu.Command {
		c := good
		c.P1, c.P2, c.Data = p1, p2, data
		return c
	}
	list := func(b ...byte) []byte { return append([]byte{0x5C, byte(len(b))}, b...) }
	for _, c := range []struct {
		what string
		cmd  apdu.Command
		sw   apdu.SW
	}{
		{"P1-P2 00 00", with(0, 0, good.Data), apdu.SWIncorrectP1P2},
		{"P1-P2 3F 00", with(0x3F, 0, good.Data), apdu.SWIncorrectP1P2},
		{"P1-P2 DF 04", with(0xDF, 0x04, good.Data), apdu.SWIncorrectP1P2},
		{"no data field", with(0x3F, 0xFF, nil), apdu.SWWrongLength},
		{"another tag than 5C", with(0x3F, 0xFF, []byte{0x4D, 0x02, 0xDF, 0x04}), apdu.SWWrongData},
		{"bytes after 5C", with(0x3F, 0xFF, append(list(0xDF, 0x04), 0x00)), apdu.SWWrongData},
		{"5C length past the data", with(0x3F, 0xFF, []byte{0x5C, 0x04, 0xDF, 0x04}), apdu.SWWrongData},
		{"empty list", with(0x3F, 0xFF, list()), apdu.SWWrongData},
		{"a tag cut short", with(0x3F, 0xFF, list(0xDF, 0x04, 0xDF)), apdu.SWWrongData},
		{"a 4-byte tag", with(0x3F, 0xFF, list(0xDF, 0x81, 0x81, 0x01)), apdu.SWWrongData},
		{"a padding byte", with(0x3F, 0xFF, list(0xDF, 0x04, 0x00)), apdu.SWWrongData},
		{"a tag twice", with(0x3F, 0xFF, list(0xDF, 0x04, 0x9F, 0x36, 0xDF, 0x04)), apdu.SWWrongData},
		{"an unknown tag first", spd.GetDataList(0xDF7F, spd.TagBalance), apdu.SWRefDataNotFound},
		{"an unknown tag last", spd.GetDataList(spd.TagBalance, spd.TagATC, 0x9F7F), apdu.SWRefDataNotFound},
		{"an unknown one-byte tag", spd.GetDataList(spd.TagBalance, 0x5A), apdu.SWRefDataNotFound},
		{"the certificate", spd.GetDataList(spd.TagBalance, spd.TagCertificate), apdu.SWRefDataNotFound},
		{"CLA 80", apdu.Command{CLA: 0x80, INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: good.Data, Ne: 256}, apdu.SWInsNotSupported},
	} {
		r.expect(t, c.cmd, c.sw)
		if got := r.snap(t); got != before {
			t.Fatalf("%s changed the device: %+v, was %+v", c.what, got, before)
		}
	}
	// Unknown comes before not readable: a blank device.
	b := newBlankRig(t, "GDLIST04")
	r.expect(t, spd.GetDataList(spd.TagState), apdu.SWOK)
	b.expect(t, spd.GetDataList(spd.TagState), apdu.SWConditionsNotSat) // not selected
	b.expect(t, spd.Select(), apdu.SWOK)
	b.expect(t, spd.GetDataList(spd.TagBalance, 0xDF7F), apdu.SWRefDataNotFound)
	b.expect(t, spd.GetDataList(spd.TagState, spd.TagBalance), apdu.SWConditionsNotSat)
}

func TestGetDataListChangesNothing(t *testing.T) {
	r := newRig(t, "GDLIST05")
	r.login(t)
	if _, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOffline, 1_00)); err != nil {
		t.Fatal(err)
	}
	before := r.snap(t)
	image := dump(r.st)
	for range 3 {
		r.expect(t, spd.GetDataList(listTags...), apdu.SWOK)
	}
	if got := r.snap(t); got != before {
		t.Fatalf("GET DATA list changed the device: %+v, was %+v", got, before)
	}
	if !maps.Equal(image, dump(r.st)) {
		t.Fatal("GET DATA list wrote persistent memory")
	}
	// The session stays: still verified.
	if _, err := r.c.Pay(ctx, payReq(spd.KindBalance, spd.ModeOffline, 1_00)); err != nil {
		t.Fatalf("after GET DATA list: %v", err)
	}
	// A short Ne gets 61xx and the rest through GET RESPONSE (SPD-APP-5).
	cmd := spd.GetDataList(listTags...)
	cmd.Ne = 100
	raw := r.dev.Process(cmd.MustBytes())
	if len(raw) != 102 || !bytes.Equal(raw[100:], []byte{0x61, 0x72}) {
		t.Fatalf("Ne 100: %d bytes, ending %X", len(raw), raw[len(raw)-2:])
	}
}
