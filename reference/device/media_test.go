package device

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
)

// noodleBar is the EMV QRCPS MPM code of reference/merchant's tests, with
// its CRC.
func noodleBar(t testing.TB) string {
	t.Helper()
	body := "000201010212" + "2627" + "0006spdlab" + "0113ACC-0001-9F2C" + "52045814" + "5303156" + "540536.50" +
		"5802CN" + "5917SPDLAB NOODLE BAR" + "6008SHANGHAI" +
		"6240" + "0119ORDER-20261126-0042" + "0506N-7F3A" + "0703T01" +
		"6421" + "0002ZH" + "0105实验室面馆" + "0202上海" + "6304"
	return body + strings.ToUpper(hex.EncodeToString([]byte{byte(merchant.Checksum(body) >> 8), byte(merchant.Checksum(body))}))
}

func TestParseMerchantCode(t *testing.T) {
	r := newRig(t, "MERCH001")
	r.expect(t, spd.Select(), apdu.SWOK)
	before := dump(r.st)
	got := r.expect(t, spd.ParseMerchantCode(noodleBar(t)), apdu.SWOK)
	// SPEC.md 4.7, written out by hand.
	want := "E259" +
		"DF090D" + hex.EncodeToString([]byte("ACC-0001-9F2C")) +
		"DF0713" + hex.EncodeToString([]byte("ORDER-20261126-0042")) +
		"9F0208" + "0000000000000E42" +
		"5F2A02" + "009C" +
		"DF6411" + hex.EncodeToString([]byte("SPDLAB NOODLE BAR")) +
		"DF6508" + hex.EncodeToString([]byte("SHANGHAI")) +
		"DF660112"
	if !strings.EqualFold(hex.EncodeToString(got), want) {
		t.Fatalf("E2 =\n%X\nwant\n%s", got, want)
	}
	code := noodleBar(t)
	bad := []apdu.Command{
		spd.ParseMerchantCode(badCRC(code)),                                         // CRC
		spd.ParseMerchantCode(strings.Replace(code, "0006spdlab", "0006xxxxxx", 1)), // no spdlab payee (CRC fixed below)
		{CLA: 0x80, INS: 0x72, P1: 1, Data: spd.ParseMedium([]byte("x")).Data},      // DF60, not DF63
		spd.ParseMerchantCode(" " + code),
	}
	body := strings.Replace(code[:len(code)-4], "0006spdlab", "0006xxxxxx", 1)
	bad[1] = spd.ParseMerchantCode(body + strings.ToUpper(hex.EncodeToString([]byte{byte(merchant.Checksum(body) >> 8), byte(merchant.Checksum(body))})))
	for i, cmd := range bad {
		if resp := r.do(t, cmd); resp.SW != apdu.SWWrongData {
			t.Errorf("bad code %d: SW %s, want 6A80", i, resp.SW)
		}
	}
	r.expect(t, apdu.Command{CLA: 0x80, INS: 0x72, P1: 1, P2: 1, Data: spd.ParseMerchantCode(code).Data}, apdu.SWIncorrectP1P2)
	r.expect(t, apdu.Command{CLA: 0x80, INS: 0x72, P1: 2, Data: spd.ParseMerchantCode(code).Data}, apdu.SWIncorrectP1P2)
	if !mapsEqual(before, dump(r.st)) {
		t.Fatal("PARSE MEDIUM P1 01 changed memory")
	}
}

func (r *rig) store(t testing.TB, o spd.StoreOrder) apdu.Command {
	t.Helper()
	if o.Counter == 0 {
		r.counter++
		o.Counter = r.counter
	}
	if o.Time.IsZero() {
		o.Time = t0
	}
	if o.Expiry.IsZero() {
		o.Expiry = o.Time.Add(24 * time.Hour)
	}
	if o.Format == 0 {
		o.Format = spd.FormatMerchantCode
	}
	cmd, err := spd.StoreMedium(r.is.HostKey(), r.profile.DeviceID, o)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestStoredMedia(t *testing.T) {
	r := newRig(t, "MEDIA001")
	shower := newRig(t, "SHOWER02")
	shower.login(t)
	shown, err := shower.c.GenerateMedium(ctx, spd.MediumRequest{Time: t0, Expiry: t0.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, spd.Select(), apdu.SWOK)
	if list, err := r.c.ListMedia(ctx); err != nil || len(list) != 0 {
		t.Fatalf("new device lists %v, %v", list, err)
	}
	code := noodleBar(t)
	r.expect(t, r.store(t, spd.StoreOrder{Label: "menu", Content: []byte(code)}), apdu.SWOK)
	r.expect(t, r.store(t, spd.StoreOrder{Label: "ticket", Format: spd.FormatEnvelope, Content: shown.Envelope, Expiry: t0.Add(2 * time.Hour)}), apdu.SWOK)
	list, err := r.c.ListMedia(ctx)
	if err != nil || len(list) != 2 || list[0].Label != "menu" || list[1].Label != "ticket" ||
		list[1].Size != len(shown.Envelope) || list[1].Format != spd.FormatEnvelope || !list[1].Expiry.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("list %+v, %v", list, err)
	}
	m, err := r.c.ShowMedium(ctx, "ticket", t0.Add(time.Hour))
	if err != nil || !bytes.Equal(m.Content, shown.Envelope) {
		t.Fatalf("show: %+v, %v", m, err)
	}
	r.expect(t, spd.ShowMedium("ticket", t0.Add(3*time.Hour)), apdu.SWConditionsNotSat)
	r.expect(t, spd.ShowMedium("nothing", t0), apdu.SWRecordNotFound)

	// Replay, forgery, bad content.
	replay := r.store(t, spd.StoreOrder{Label: "again", Content: []byte(code)})
	r.expect(t, replay, apdu.SWOK)
	r.expect(t, replay, apdu.SWRefDataNotUsable)
	forged, err := spd.StoreMedium(keyFromSeed("rogue"), r.profile.DeviceID, spd.StoreOrder{Counter: 100, Label: "x", Format: spd.FormatMerchantCode, Content: []byte(code), Expiry: t0.Add(time.Hour), Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, forged, apdu.SWSecurityNotSatisfied)
	tampered := bytes.Clone(shown.Envelope)
	tampered[len(tampered)-1] ^= 1
	r.expect(t, r.store(t, spd.StoreOrder{Label: "forged", Format: spd.FormatEnvelope, Content: tampered}), apdu.SWSecurityNotSatisfied)
	r.expect(t, r.store(t, spd.StoreOrder{Label: "crc", Content: []byte(badCRC(code))}), apdu.SWWrongData)
	r.expect(t, r.store(t, spd.StoreOrder{Label: "late", Content: []byte(code), Expiry: t0}), apdu.SWWrongData)

	// Capacity: 8 media; an expired one makes room.
	for i := len(list) + 1; i < maxMedia; i++ {
		r.expect(t, r.store(t, spd.StoreOrder{Label: "m" + string(rune('0'+i)), Content: []byte(code)}), apdu.SWOK)
	}
	before := dump(r.st)
	r.expect(t, r.store(t, spd.StoreOrder{Label: "full", Content: []byte(code)}), apdu.SWNotEnoughMemory)
	if !mapsEqual(before, dump(r.st)) {
		t.Fatal("a refused STORE MEDIUM changed memory")
	}
	r.expect(t, r.store(t, spd.StoreOrder{Label: "menu", Content: []byte(code)}), apdu.SWOK) // replacing fits
	r.expect(t, r.store(t, spd.StoreOrder{Label: "full", Content: []byte(code), Time: t0.Add(3 * time.Hour)}), apdu.SWOK)
	if list, _ := r.c.ListMedia(ctx); len(list) != maxMedia || containsLabel(list, "ticket") || !containsLabel(list, "full") {
		t.Fatalf("the expired ticket should have made room: %+v", list)
	}
}

func containsLabel(list []spd.StoredMedium, label string) bool {
	for _, m := range list {
		if m.Label == label {
			return true
		}
	}
	return false
}

// badCRC changes the last digit of a code's CRC.
func badCRC(code string) string {
	last := "0"
	if strings.HasSuffix(code, "0") {
		last = "1"
	}
	return code[:len(code)-1] + last
}
