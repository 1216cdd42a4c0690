package merchant

import (
	"bytes"
	"encoding/json"
	"image/png"
	"reflect"
	"strings"
	"testing"

	"github.com/spdlab/spdlab/reference/medium"
)

// Public EMV QRCPS merchant-presented codes with their published CRCs.
var publicVectors = []struct {
	name string
	// source says where the code and its CRC were published.
	source string
	code   string
	check  func(t *testing.T, o Order)
	valid  string // "" when Validate passes, else a part of its error
}{
	{
		name: "EMVCo sample with alternate language",
		// EMV QRCPS Merchant-Presented Mode v1.1 (EMVCo, November 2020),
		// Appendix A, the payload with CRC A13A. It is also the fixture of
		// public test suites, e.g. the Elixir library exemvi
		// (test/qr/mp_test.exs, "@official_sample").
		source: "EMVCo MPM v1.1 Appendix A",
		code: "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN" +
			"5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***" +
			"0708A60086670902ME91320016A0112233449988770708123456786304A13A",
		check: func(t *testing.T, o Order) {
			if o.Language == nil || o.Language.Name != "最佳运输" || o.Language.City != "北京" || o.Language.Preference != "ZH" {
				t.Errorf("language template %+v", o.Language)
			}
			if o.Amount != "23.72" || o.Currency != "156" || o.Tip != "01" || o.Name != "BEST TRANSPORT" {
				t.Errorf("order %+v", o)
			}
			if len(o.Accounts) != 2 || o.Accounts[0].GUID != "D15600000000" || o.Accounts[1].Account != "" {
				t.Errorf("accounts %+v", o.Accounts)
			}
			if a := o.Additional; a == nil || a.StoreLabel != "1234" || a.CustomerLabel != "***" || a.TerminalLabel != "A6008667" || a.ConsumerDataRequest != "ME" {
				t.Errorf("additional data %+v", o.Additional)
			}
			if len(o.Other) != 1 || o.Other[0].ID != "91" {
				t.Errorf("other %+v", o.Other)
			}
			if o.Sequence == nil {
				t.Error("the sample's object order is not ascending; Sequence should keep it")
			}
		},
	},
	{
		name: "Pix static BR Code",
		// Banco Central do Brasil, "Manual de Padrões para Iniciação do
		// Pix" (the BR Code example with a random key, CRC 1D3D), reproduced
		// e.g. in brazilian-utils' isValidPixPayload documentation.
		source: "BCB Manual de Padrões para Iniciação do Pix",
		code: "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000" +
			"5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D",
		check: func(t *testing.T, o Order) {
			if len(o.Accounts) != 1 || o.Accounts[0].GUID != "br.gov.bcb.pix" || o.Accounts[0].Account != "123e4567-e12b-12d1-a456-426655440000" {
				t.Errorf("accounts %+v", o.Accounts)
			}
			if o.Additional == nil || o.Additional.ReferenceLabel != "***" || o.City != "BRASILIA" {
				t.Errorf("order %+v", o)
			}
			if o.Sequence != nil {
				t.Errorf("ascending code got Sequence %v", o.Sequence)
			}
		},
	},
	{
		name: "PromptPay static, phone number",
		// github.com/dtinth/promptpay-qr, index.test.js, "Local phone
		// number" (CRC 6197). PromptPay leaves out objects 52, 59 and 60.
		source: "dtinth/promptpay-qr index.test.js",
		code:   "00020101021129370016A000000677010111011300668012345675802TH530376463046197",
		check: func(t *testing.T, o Order) {
			if o.Initiation != Static || o.Accounts[0].GUID != "A000000677010111" || o.Country != "TH" || o.Currency != "764" {
				t.Errorf("order %+v", o)
			}
		},
		valid: "object 52 (merchant category code) missing",
	},
	{
		name: "PromptPay dynamic with amount",
		// github.com/dtinth/promptpay-qr, index.test.js, "Amount" (CRC E469).
		source: "dtinth/promptpay-qr index.test.js",
		code:   "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469",
		check: func(t *testing.T, o Order) {
			if o.Initiation != Dynamic || o.Amount != "4.22" {
				t.Errorf("order %+v", o)
			}
			if minor, err := ParseAmount(o.Amount, 2); err != nil || minor != 422 {
				t.Errorf("ParseAmount = %d, %v", minor, err)
			}
		},
		valid: "object 52 (merchant category code) missing",
	},
	{
		name: "PromptPay national ID",
		// github.com/dtinth/promptpay-qr, index.test.js, "National ID
		// number" (CRC 7B5A).
		source: "dtinth/promptpay-qr index.test.js",
		code:   "00020101021129370016A000000677010111021311111111111115802TH530376463047B5A",
		check:  func(t *testing.T, o Order) {},
		valid:  "missing",
	},
	{
		name: "KHQR-style dynamic code",
		// github.com/phannaly/emv-qr-code, README.md, "Merchant Presented
		// Mode decode" (CRC 1FF2). Its city has 16 characters, one over
		// EMV's limit, so Validate refuses it while Decode reads it.
		source: "phannaly/emv-qr-code README.md",
		code: "00020101021252044131153137210116372101160123456789ABCDE6016Banteay Meanchey5913Kuntheas Shop" +
			"5802KH540510.005303840621201081234567863041FF2",
		check: func(t *testing.T, o Order) {
			if o.City != "Banteay Meanchey" || o.Amount != "10.00" || o.Additional.BillNumber != "12345678" {
				t.Errorf("order %+v", o)
			}
			if len(o.Other) != 1 || o.Other[0].ID != "15" {
				t.Errorf("other %+v", o.Other)
			}
		},
		valid: "object 60 (merchant city): 16 characters, at most 15",
	},
}

func TestPublicVectors(t *testing.T) {
	for _, v := range publicVectors {
		t.Run(v.name, func(t *testing.T) {
			o, err := Decode(v.code)
			if err != nil {
				t.Fatalf("Decode (%s): %v", v.source, err)
			}
			if o.CRC != v.code[len(v.code)-4:] {
				t.Fatalf("CRC %q", o.CRC)
			}
			v.check(t, o)
			back, err := Encode(o)
			if err != nil {
				t.Fatal(err)
			}
			if back != v.code {
				t.Fatalf("Encode(Decode(s)) differs:\n got  %s\n want %s", back, v.code)
			}
			// Through JSON too, as the CLI does.
			js, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			var again Order
			if err := json.Unmarshal(js, &again); err != nil {
				t.Fatal(err)
			}
			if back, err := Encode(again); err != nil || back != v.code {
				t.Fatalf("Encode after JSON = %q, %v", back, err)
			}
			err = o.Validate()
			if v.valid == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if v.valid != "" && (err == nil || !strings.Contains(err.Error(), v.valid)) {
				t.Fatalf("Validate = %v, want %q", err, v.valid)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	// The CRC-16/CCITT-FALSE check value (the CRC catalogue's "123456789").
	if got := Checksum("123456789"); got != 0x29B1 {
		t.Fatalf("Checksum(123456789) = %04X, want 29B1", got)
	}
	for _, v := range publicVectors {
		body := v.code[:len(v.code)-4]
		if got := strings.ToUpper(v.code[len(v.code)-4:]); got != strings.ToUpper(fmtCRC(Checksum(body))) {
			t.Errorf("%s: Checksum = %s, published %s", v.name, fmtCRC(Checksum(body)), got)
		}
	}
}

func fmtCRC(c uint16) string {
	const hexdigits = "0123456789ABCDEF"
	return string([]byte{hexdigits[c>>12], hexdigits[c>>8&15], hexdigits[c>>4&15], hexdigits[c&15]})
}

func spdlabOrder() Order {
	return Order{
		Initiation: Dynamic,
		Accounts:   []AccountTemplate{{ID: "26", GUID: GUID, Account: "ACC-0001-9F2C"}},
		Category:   "5814",
		Currency:   "156",
		Amount:     "36.50",
		Country:    "CN",
		Name:       "SPDLAB NOODLE BAR",
		City:       "SHANGHAI",
		Additional: &AdditionalData{BillNumber: "ORDER-20261126-0042", ReferenceLabel: "N-7F3A", TerminalLabel: "T01"},
		Language:   &Language{Preference: "ZH", Name: "实验室面馆", City: "上海"},
	}
}

func TestEncodeSpdlabOrder(t *testing.T) {
	o := spdlabOrder()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	code, err := Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	want := "000201010212" + "2627" + "0006spdlab" + "0113ACC-0001-9F2C" + "52045814" + "5303156" + "540536.50" +
		"5802CN" + "5917SPDLAB NOODLE BAR" + "6008SHANGHAI" +
		"6240" + "0119ORDER-20261126-0042" + "0506N-7F3A" + "0703T01" +
		"6421" + "0002ZH" + "0105实验室面馆" + "0202上海" + "6304"
	if !strings.HasPrefix(code, want) || len(code) != len(want)+4 {
		t.Fatalf("Encode =\n %s\nwant\n %s....", code, want)
	}
	back, err := Decode(code)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := back.Payee(); !ok || p != "ACC-0001-9F2C" {
		t.Fatalf("Payee = %q %v", p, ok)
	}
	back.CRC = ""
	o.PayloadFormat = "01"
	if !reflect.DeepEqual(back, o) {
		t.Fatalf("Decode(Encode(o)) = %+v\nwant %+v", back, o)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, err := Encode(spdlabOrder())
	if err != nil {
		t.Fatal(err)
	}
	body := good[:len(good)-4]
	withCRC := func(s string) string { return s + fmtCRC(Checksum(s)) }
	tests := []struct {
		name, code, want string
	}{
		{"empty", "", "must come first as 000201"},
		{"wrong format", withCRC("000202" + body[6:]), "must come first as 000201"},
		{"bad CRC", body + "A1B2", "CRC 63 is A1B2, computed " + good[len(good)-4:]},
		{"lowercase CRC", body + strings.ToLower(good[len(good)-4:]) + "", "is not four uppercase hex digits"},
		{"no CRC", "000201" + "52045814", "object 63 (CRC) missing"},
		{"CRC not last", "00020163040000" + "52045814", "must be the last object, found object 52 after it"},
		{"truncated", good[:40], "value truncated"},
		{"bad length", "000201520458", "object 52: value truncated: length 4, 2 characters left"},
		{"length not digits", "00020152A45814", "object 52: length \"A4\" is not two digits"},
		{"amount", withCRC("00020154031.A6304"), "object 54 (amount): \"1.A\" is not a decimal amount"},
		{"initiation", withCRC("000201010213" + "6304"), "object 01 (point of initiation method): \"13\" is not one of 11, 12"},
		{"currency", withCRC("000201530215" + "6304"), "object 53 (transaction currency): \"15\" is not 3 digits"},
		{"duplicate", withCRC("0002015802CN5802CN6304"), "object 58 (country code) appears twice"},
		{"two CRCs", withCRC("000201630400006304"), "object 63 (CRC) appears more than once"},
		{"bad template", withCRC("00020126040002" + "6304"), "object 26 (merchant account template), sub-object 00: value truncated"},
		{"language without name", withCRC("00020164060002ZH6304"), "needs sub-objects 00 (language preference) and 01 (name)"},
		{"control character", withCRC("0002015903A\x01B6304"), "object 59 (merchant name): control character U+0001"},
		{"byte lengths", "000201" + "5906北京", "(lengths count characters, not UTF-8 bytes)"},
		{"zero length", withCRC("0002015900" + "6304"), "object 59 (merchant name): length 0 outside 1..99"},
		{"not UTF-8", "000201\xff", "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.code)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "merchant: ") {
				t.Fatalf("Decode(%q) error %v, want %q", tt.code, err, tt.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Order)
		want   string
	}{
		{"bad currency", func(o *Order) { o.Currency = "CNY" }, "object 53 (transaction currency): \"CNY\" is not 3 digits"},
		{"bad amount", func(o *Order) { o.Amount = "-1" }, "object 54 (amount)"},
		{"long name", func(o *Order) { o.Name = strings.Repeat("N", 100) }, "object 59 (merchant name): length 100"},
		{"template ID", func(o *Order) { o.Accounts[0].ID = "52" }, "template ID \"52\" is not 26..51"},
		{"other named", func(o *Order) { o.Other = []Object{{ID: "54", Value: "1"}} }, "belongs in its own field"},
		{"other ID", func(o *Order) { o.Other = []Object{{ID: "7", Value: "1"}} }, "is not two digits"},
		{"template too long", func(o *Order) { o.Accounts[0].Account = strings.Repeat("9", 95) }, "at most 99"},
		{"language incomplete", func(o *Order) { o.Language.Name = "" }, "needs sub-objects 00"},
		{"dup other", func(o *Order) { o.Other = []Object{{ID: "80", Value: "1"}, {ID: "80", Value: "2"}} }, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := spdlabOrder()
			tt.modify(&o)
			if _, err := Encode(o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Order)
		want   string
	}{
		{"no account", func(o *Order) { o.Accounts = nil }, "no merchant account information"},
		{"network account counts", func(o *Order) { o.Accounts = nil; o.Other = []Object{{ID: "04", Value: "5413330000000001"}} }, ""},
		{"no GUID", func(o *Order) { o.Accounts[0].GUID = "" }, "sub-object 00 (GUID) missing"},
		{"no name", func(o *Order) { o.Name = "" }, "object 59 (merchant name) missing"},
		{"long name", func(o *Order) { o.Name = strings.Repeat("N", 26) }, "object 59 (merchant name): 26 characters, at most 25"},
		{"fee without indicator", func(o *Order) { o.FeeFixed = "1.00" }, "needs object 55 = 02"},
		{"fee with indicator", func(o *Order) { o.FeeFixed = "1.00"; o.Tip = "02" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := spdlabOrder()
			tt.modify(&o)
			err := o.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSequenceAfterEdit(t *testing.T) {
	// A decoded code in a non-canonical order, edited: listed objects keep
	// their place, new ones go in ascending order before the CRC.
	o, err := Decode(publicVectors[0].code)
	if err != nil {
		t.Fatal(err)
	}
	o.PostalCode = "100000"
	o.Amount = ""
	code, err := Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(code, "540523.72") || !strings.Contains(code, "0708A60086670902ME9132") ||
		!strings.Contains(code, "0012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN") ||
		!strings.Contains(code, "91320016A011223344998877070812345678"+"6106100000"+"6304") {
		t.Fatalf("edited code %s", code)
	}
}

func TestAmounts(t *testing.T) {
	for _, tt := range []struct {
		text  string
		exp   int
		minor int64
	}{{"23.72", 2, 2372}, {"5", 2, 500}, {"0.5", 2, 50}, {"1000", 0, 1000}, {"0.001", 3, 1}} {
		got, err := ParseAmount(tt.text, tt.exp)
		if err != nil || got != tt.minor {
			t.Errorf("ParseAmount(%q, %d) = %d, %v", tt.text, tt.exp, got, err)
		}
	}
	for _, bad := range []string{"1.234", "", ".", "1,00", "-3"} {
		if _, err := ParseAmount(bad, 2); err == nil {
			t.Errorf("ParseAmount(%q) succeeded", bad)
		}
	}
	for _, tt := range []struct {
		minor int64
		exp   int
		text  string
	}{{2372, 2, "23.72"}, {5, 2, "0.05"}, {0, 2, "0.00"}, {1000, 0, "1000"}} {
		if got, err := FormatAmount(tt.minor, tt.exp); err != nil || got != tt.text {
			t.Errorf("FormatAmount(%d, %d) = %q, %v", tt.minor, tt.exp, got, err)
		}
	}
	if _, err := FormatAmount(-1, 2); err == nil {
		t.Error("FormatAmount(-1) succeeded")
	}
}

func TestRenderDecodeImage(t *testing.T) {
	o := spdlabOrder()
	img, err := Render(o, 3)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := medium.WritePNG(&buf, img); err != nil {
		t.Fatal(err)
	}
	back, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeImage(back)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Encode(o)
	if again, _ := Encode(got); again != want {
		t.Fatalf("image decoded to %s, want %s", again, want)
	}
	// The public sample with Chinese text survives the QR round trip too.
	sample, _ := Decode(publicVectors[0].code)
	img, err = Render(sample, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err = DecodeImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Encode(got); again != publicVectors[0].code {
		t.Fatalf("sample decoded from its image as %s", again)
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range publicVectors {
		f.Add(v.code)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Decode(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "merchant: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			// Mutations rarely keep the CRC right: fix it and go on, so
			// the round trip below sees the structures the mutator made.
			n := len(s)
			if n < 8 || s[n-8:n-4] != "6304" {
				return
			}
			s = s[:n-4] + fmtCRC(Checksum(s[:n-4]))
			if o, err = Decode(s); err != nil {
				return
			}
		}
		back, err := Encode(o)
		if err != nil {
			t.Fatalf("Encode of a decoded code: %v", err)
		}
		if back != s {
			t.Fatalf("Encode(Decode(s)) differs:\n s    %q\n back %q", s, back)
		}
		_ = o.Validate()
	})
}
