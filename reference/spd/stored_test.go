package spd

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestMerchantOrderRoundTrip(t *testing.T) {
	amount, cur := int64(3650), uint16(156)
	o := MerchantOrder{Payee: []byte("ACC-1"), Reference: []byte("ORDER-1"), Amount: &amount, Currency: &cur, Name: "面馆", City: "SH", Initiation: 0x12}
	back, err := ParseMerchantOrder(o.Encode())
	if err != nil || !reflect.DeepEqual(back, o) {
		t.Fatalf("round trip %+v, %v", back, err)
	}
	// Children out of order are refused.
	swapped := []byte{0xE2, 0x0E, 0xDF, 0x07, 0x01, 'R', 0xDF, 0x09, 0x01, 'P', 0xDF, 0x66, 0x01, 0x11, 0x00, 0x00}
	if _, err := ParseMerchantOrder(swapped[:16]); err == nil {
		t.Fatal("out-of-order E2 accepted")
	}
}

func TestStoredMediumCodecs(t *testing.T) {
	exp := time.Unix(1800000000, 0).UTC()
	list := []StoredMedium{{Label: "a", Format: FormatEnvelope, Expiry: exp, Size: 10}, {Label: "b", Format: FormatMerchantCode, Expiry: exp, Size: 3}}
	back, err := ParseMediaList(EncodeMediaList(list))
	if err != nil || !reflect.DeepEqual(back, list) {
		t.Fatalf("list round trip %+v, %v", back, err)
	}
	if _, err := ParseMediaList(EncodeMediaList([]StoredMedium{list[1], list[0]})); err == nil {
		t.Fatal("descending labels accepted")
	}
	shown := StoredMedium{Label: "b", Format: FormatMerchantCode, Expiry: exp, Size: 3, Content: []byte("abc")}
	if got, err := ParseShownMedium(shown.Encode()); err != nil || !reflect.DeepEqual(got, shown) {
		t.Fatalf("shown round trip %+v, %v", got, err)
	}
	if _, err := ParseShownMedium(list[0].Encode()); err == nil {
		t.Fatal("a list entry accepted as a shown medium")
	}
}

func FuzzParseMerchantOrder(f *testing.F) {
	amount, cur := int64(3650), uint16(156)
	f.Add(MerchantOrder{Payee: []byte("ACC-1"), Reference: []byte("O"), Amount: &amount, Currency: &cur, Name: "N", City: "C", Initiation: 0x11}.Encode())
	f.Add(MerchantOrder{Payee: []byte("P")}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseMerchantOrder(b)
		if err != nil {
			return
		}
		if !bytes.Equal(o.Encode(), b) {
			t.Fatalf("E2 %X parses to %+v, which encodes to %X", b, o, o.Encode())
		}
	})
}

func FuzzParseMediaAnswers(f *testing.F) {
	exp := time.Unix(1800000000, 0).UTC()
	f.Add(EncodeMediaList([]StoredMedium{{Label: "a", Format: FormatEnvelope, Expiry: exp, Size: 10}}))
	f.Add(StoredMedium{Label: "b", Format: FormatMerchantCode, Expiry: exp, Content: []byte("abc")}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseMediaList(b); err == nil && !bytes.Equal(EncodeMediaList(l), b) {
			t.Fatalf("list %X does not re-encode", b)
		}
		if m, err := ParseShownMedium(b); err == nil && !bytes.Equal(m.Encode(), b) {
			t.Fatalf("shown medium %X does not re-encode", b)
		}
	})
}

func FuzzParseMediaCommands(f *testing.F) {
	f.Add(ParseMerchantCode("000201").Data)
	f.Add(ShowMedium("menu", time.Unix(1800000000, 0)).Data)
	f.Add([]byte{0xDF, 0x2C, 0x04, 0, 0, 0, 1, 0xDF, 0x70, 0x01, 'a', 0xDF, 0x71, 0x01, 0x02, 0xDF, 0x72, 0x01, 'x', 0x5F, 0x24, 0x04, 0x70, 0, 0, 0, 0x9A, 0x04, 0x60, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if text, err := ParseMerchantCodeData(b); err == nil {
			_, _ = OrderFromCode(text)
		}
		_, _, _ = ParseShowMedium(b)
		_, _ = ParseStoreOrder(b)
	})
}
