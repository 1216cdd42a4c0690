// Package merchant encodes and decodes merchant order codes: the EMV QR
// Code Specification for Payment Systems (EMV QRCPS), Merchant-Presented
// Mode, version 1.1. A terminal or SPD reads a merchant's code to learn the
// order and the payee account (claims C5, C48) and pays it; the lab renders
// such codes for a device under test to scan.
//
// A code is a string of data objects, each
//
//	field  size        content
//	ID     2 digits    "00".."99"
//	length 2 digits    "01".."99": the number of characters of the value
//	value  length      characters
//
// Templates (26-51, 62, 64) hold data objects of the same form in their
// value. The objects this package names:
//
//	ID     name                         here
//	00     payload format indicator     always "01", first
//	01     point of initiation method   "11" static, "12" dynamic
//	02-25  network-specific account     kept in Other
//	26-51  merchant account template    Accounts: 00 GUID, 01 account
//	52     merchant category code       4 digits (ISO 18245)
//	53     transaction currency         3 digits (ISO 4217 numeric)
//	54     transaction amount           decimal, up to 13 characters
//	55     tip or convenience indicator "01", "02" or "03"
//	56     convenience fee, fixed       decimal
//	57     convenience fee, percentage  decimal
//	58     country code                 2 characters (ISO 3166-1 alpha-2)
//	59     merchant name                up to 25
//	60     merchant city                up to 15
//	61     postal code                  up to 10
//	62     additional data template     01 bill number .. 09 consumer data request
//	63     CRC                          4 uppercase hex digits, last
//	64     merchant information,        00 language (ISO 639-1), 01 name,
//	       alternate language           02 city, in any script
//	65-99  other templates              kept in Other
//
// The CRC is CRC-16/CCITT-FALSE (polynomial 1021, initial FFFF, no
// reflection, no final XOR) over the UTF-8 bytes of the whole code up to
// and including "6304", written as four uppercase hex digits.
//
// Lengths count characters, that is Unicode code points, not bytes: the
// specification defines the length as the number of characters, and its
// own example in Appendix A writes "最佳运输" with length 04. The CRC,
// by contrast, runs over the UTF-8 bytes. Codes whose writers counted
// UTF-8 bytes instead misalign and are refused.
//
// Decode accepts a code that is well formed: structure, CRC, and the format
// of every object it names. Deployed schemes leave out objects EMV makes
// mandatory (PromptPay codes carry no 52, 59 or 60), so Validate checks
// those and the maximum lengths separately. Decode keeps unknown objects
// and the order objects came in, so Encode(Decode(s)) returns s.
package merchant

import (
	"errors"
	"fmt"
	"image"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/wire/crc16"
)

// GUID names spdlab's own merchant account template: sub-object 00 of a
// template 26-51 holding the payee account in sub-object 01.
const GUID = "spdlab"

// Object is one data object kept as read.
type Object struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// AccountTemplate is a merchant account information template (IDs 26-51).
type AccountTemplate struct {
	ID      string   `json:"id"`
	GUID    string   `json:"guid,omitempty"`    // sub-object 00
	Account string   `json:"account,omitempty"` // sub-object 01
	Other   []Object `json:"other,omitempty"`
	// Sequence is the order sub-objects were read in, when it was not
	// ascending; Encode follows it.
	Sequence []string `json:"sequence,omitempty"`
}

// AdditionalData is the additional data field template (ID 62).
type AdditionalData struct {
	BillNumber          string   `json:"bill_number,omitempty"`           // 01: the order or bill number
	MobileNumber        string   `json:"mobile_number,omitempty"`         // 02
	StoreLabel          string   `json:"store_label,omitempty"`           // 03
	LoyaltyNumber       string   `json:"loyalty_number,omitempty"`        // 04
	ReferenceLabel      string   `json:"reference_label,omitempty"`       // 05
	CustomerLabel       string   `json:"customer_label,omitempty"`        // 06
	TerminalLabel       string   `json:"terminal_label,omitempty"`        // 07
	Purpose             string   `json:"purpose,omitempty"`               // 08
	ConsumerDataRequest string   `json:"consumer_data_request,omitempty"` // 09
	Other               []Object `json:"other,omitempty"`
	Sequence            []string `json:"sequence,omitempty"`
}

// Language is the merchant information in an alternate language (ID 64).
type Language struct {
	Preference string   `json:"preference"`     // 00: ISO 639-1, "ZH"
	Name       string   `json:"name"`           // 01
	City       string   `json:"city,omitempty"` // 02
	Other      []Object `json:"other,omitempty"`
	Sequence   []string `json:"sequence,omitempty"`
}

// Order is a decoded merchant order code. Empty strings are absent
// objects.
type Order struct {
	PayloadFormat string            `json:"payload_format"`
	Initiation    string            `json:"initiation,omitempty"`
	Accounts      []AccountTemplate `json:"accounts,omitempty"`
	Category      string            `json:"category,omitempty"`
	Currency      string            `json:"currency,omitempty"`
	Amount        string            `json:"amount,omitempty"`
	Tip           string            `json:"tip,omitempty"`
	FeeFixed      string            `json:"fee_fixed,omitempty"`
	FeePercentage string            `json:"fee_percentage,omitempty"`
	Country       string            `json:"country,omitempty"`
	Name          string            `json:"name,omitempty"`
	City          string            `json:"city,omitempty"`
	PostalCode    string            `json:"postal_code,omitempty"`
	Additional    *AdditionalData   `json:"additional,omitempty"`
	Language      *Language         `json:"language,omitempty"`
	Other         []Object          `json:"other,omitempty"`
	// Sequence is the order objects were read in, when it was not the
	// canonical one (00 first, ascending, 63 last); Encode follows it.
	Sequence []string `json:"sequence,omitempty"`
	// CRC is the checksum as read. Encode computes its own.
	CRC string `json:"crc,omitempty"`
}

// Initiation methods (object 01).
const (
	Static  = "11"
	Dynamic = "12"
)

// Payee returns the account of the first template whose GUID is spdlab's.
func (o *Order) Payee() (string, bool) {
	for _, a := range o.Accounts {
		if a.GUID == GUID && a.Account != "" {
			return a.Account, true
		}
	}
	return "", false
}

// names of the objects, for errors: "object 54 (amount)".
var topNames = map[string]string{
	"00": "payload format indicator", "01": "point of initiation method",
	"52": "merchant category code", "53": "transaction currency", "54": "amount",
	"55": "tip or convenience indicator", "56": "convenience fee fixed",
	"57": "convenience fee percentage", "58": "country code", "59": "merchant name",
	"60": "merchant city", "61": "postal code", "62": "additional data",
	"63": "CRC", "64": "alternate language",
}

func topName(id string) string {
	if n, ok := topNames[id]; ok {
		return n
	}
	if n, _ := strconv.Atoi(id); n >= 2 && n <= 51 {
		if n >= 26 {
			return "merchant account template"
		}
		return "merchant account"
	}
	return "unnamed"
}

var additionalNames = map[string]string{
	"01": "bill number", "02": "mobile number", "03": "store label", "04": "loyalty number",
	"05": "reference label", "06": "customer label", "07": "terminal label", "08": "purpose",
	"09": "consumer data request",
}

var languageNames = map[string]string{"00": "language preference", "01": "name", "02": "city"}
var accountNames = map[string]string{"00": "GUID", "01": "account"}

// binding ties an object ID to a string field.
type binding struct {
	id, name string
	p        *string
	check    func(string) error
}

func (o *Order) bindings() []binding {
	return []binding{
		{"00", topNames["00"], &o.PayloadFormat, oneOf("01")},
		{"01", topNames["01"], &o.Initiation, oneOf(Static, Dynamic)},
		{"52", topNames["52"], &o.Category, digits(4)},
		{"53", topNames["53"], &o.Currency, digits(3)},
		{"54", topNames["54"], &o.Amount, decimal},
		{"55", topNames["55"], &o.Tip, oneOf("01", "02", "03")},
		{"56", topNames["56"], &o.FeeFixed, decimal},
		{"57", topNames["57"], &o.FeePercentage, decimal},
		{"58", topNames["58"], &o.Country, letters(2)},
		{"59", topNames["59"], &o.Name, nil},
		{"60", topNames["60"], &o.City, nil},
		{"61", topNames["61"], &o.PostalCode, nil},
	}
}

func (a *AdditionalData) bindings() []binding {
	var b []binding
	for i, p := range []*string{&a.BillNumber, &a.MobileNumber, &a.StoreLabel, &a.LoyaltyNumber,
		&a.ReferenceLabel, &a.CustomerLabel, &a.TerminalLabel, &a.Purpose, &a.ConsumerDataRequest} {
		id := fmt.Sprintf("%02d", i+1)
		b = append(b, binding{id, additionalNames[id], p, nil})
	}
	return b
}

func (l *Language) bindings() []binding {
	return []binding{
		{"00", languageNames["00"], &l.Preference, letters(2)},
		{"01", languageNames["01"], &l.Name, nil},
		{"02", languageNames["02"], &l.City, nil},
	}
}

func (a *AccountTemplate) bindings() []binding {
	return []binding{
		{"00", accountNames["00"], &a.GUID, nil},
		{"01", accountNames["01"], &a.Account, nil},
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		if slices.Contains(allowed, v) {
			return nil
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
}

func digits(n int) func(string) error {
	return func(v string) error {
		if len(v) != n || strings.Trim(v, "0123456789") != "" {
			return fmt.Errorf("%q is not %d digits", v, n)
		}
		return nil
	}
}

func letters(n int) func(string) error {
	return func(v string) error {
		if len(v) != n || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != "" {
			return fmt.Errorf("%q is not %d letters", v, n)
		}
		return nil
	}
}

// decimal is EMV's amount format: digits with at most one ".", no sign,
// no exponent, at least one digit.
func decimal(v string) error {
	intPart, frac, _ := strings.Cut(v, ".")
	if intPart+frac == "" || strings.Trim(intPart+frac, "0123456789") != "" {
		return fmt.Errorf("%q is not a decimal amount", v)
	}
	if utf8.RuneCountInString(v) > 13 {
		return fmt.Errorf("%q is longer than 13 characters", v)
	}
	return nil
}

// checkValue applies the rules every value follows.
func checkValue(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("not UTF-8")
	}
	n := utf8.RuneCountInString(v)
	if n < 1 || n > 99 {
		return fmt.Errorf("length %d outside 1..99", n)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return fmt.Errorf("control character %U", r)
		}
	}
	return nil
}

// Checksum is CRC-16/CCITT-FALSE of the UTF-8 bytes of s.
func Checksum(s string) uint16 { return crc16.Checksum([]byte(s)) }

// splitObjects reads a string of data objects. where names the enclosing
// object in errors ("object 62 (additional data), sub-object").
func splitObjects(s, where string) ([]Object, error) {
	var list []Object
	for s != "" {
		if len(s) < 4 {
			return nil, fmt.Errorf("merchant: %s header truncated: %q", where, s)
		}
		id, l := s[:2], s[2:4]
		if strings.Trim(id, "0123456789") != "" {
			return nil, fmt.Errorf("merchant: %s ID %q is not two digits", where, id)
		}
		if strings.Trim(l, "0123456789") != "" {
			return nil, fmt.Errorf("merchant: %s %s: length %q is not two digits", where, id, l)
		}
		n, _ := strconv.Atoi(l)
		rest := s[4:]
		end := 0
		for i := 0; i < n; i++ {
			if end >= len(rest) {
				return nil, fmt.Errorf("merchant: %s %s: value truncated: length %d, %d characters left",
					where, id, n, utf8.RuneCountInString(rest))
			}
			_, size := utf8.DecodeRuneInString(rest[end:])
			end += size
		}
		list = append(list, Object{ID: id, Value: rest[:end]})
		s = rest[end:]
	}
	return list, nil
}

// fill assigns objects to bindings; the rest go to other. It returns the
// IDs in the order read.
func fill(list []Object, bs []binding, where string, names map[string]string, other *[]Object) ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	for _, obj := range list {
		label := objectLabel(where, obj.ID, names)
		if seen[obj.ID] {
			return nil, fmt.Errorf("merchant: %s appears twice", label)
		}
		seen[obj.ID] = true
		ids = append(ids, obj.ID)
		if err := checkValue(obj.Value); err != nil {
			return nil, fmt.Errorf("merchant: %s: %v", label, err)
		}
		bound := false
		for _, b := range bs {
			if b.id == obj.ID {
				if b.check != nil {
					if err := b.check(obj.Value); err != nil {
						return nil, fmt.Errorf("merchant: %s: %v", label, err)
					}
				}
				*b.p = obj.Value
				bound = true
				break
			}
		}
		if !bound {
			*other = append(*other, obj)
		}
	}
	return ids, nil
}

func objectLabel(where, id string, names map[string]string) string {
	n := names[id]
	if n == "" {
		n = "unnamed"
	}
	if where == "" {
		return fmt.Sprintf("object %s (%s)", id, topName(id))
	}
	return fmt.Sprintf("%s, sub-object %s (%s)", where, id, n)
}

// canonical reports whether ids are in the order Encode writes by default.
func canonical(ids []string, top bool) bool {
	want := slices.Clone(ids)
	sortIDs(want, top)
	return slices.Equal(ids, want)
}

func sortIDs(ids []string, top bool) {
	slices.SortFunc(ids, func(a, b string) int {
		if top {
			// 00 first, 63 last.
			switch {
			case a == "63":
				return 1
			case b == "63":
				return -1
			}
		}
		return strings.Compare(a, b)
	})
}

// Decode parses a merchant code. Surrounding white space is an error: a
// code is exactly its text.
func Decode(s string) (Order, error) {
	var o Order
	if !utf8.ValidString(s) {
		return o, errors.New("merchant: code is not UTF-8")
	}
	if !strings.HasPrefix(s, "000201") {
		return o, fmt.Errorf("merchant: object 00 (payload format indicator) must come first as 000201, code starts %q", prefix(s, 6))
	}
	list, err := splitObjects(s, "object")
	if err != nil {
		if !isASCII(s) {
			err = fmt.Errorf("%w (lengths count characters, not UTF-8 bytes)", err)
		}
		return o, err
	}
	last := list[len(list)-1]
	if last.ID != "63" {
		for _, obj := range list {
			if obj.ID == "63" {
				return o, fmt.Errorf("merchant: object 63 (CRC) must be the last object, found object %s after it", last.ID)
			}
		}
		return o, errors.New("merchant: object 63 (CRC) missing")
	}
	for _, obj := range list[:len(list)-1] {
		if obj.ID == "63" {
			return o, errors.New("merchant: object 63 (CRC) appears more than once")
		}
	}
	if len(last.Value) != 4 || strings.Trim(last.Value, "0123456789ABCDEF") != "" {
		return o, fmt.Errorf("merchant: object 63 (CRC): %q is not four uppercase hex digits", last.Value)
	}
	if got, want := last.Value, fmt.Sprintf("%04X", Checksum(s[:len(s)-4])); got != want {
		return o, fmt.Errorf("merchant: CRC 63 is %s, computed %s", got, want)
	}
	o.CRC = last.Value
	var templates []Object
	ids, err := fill(list[:len(list)-1], o.bindings(), "", topNames, &templates)
	if err != nil {
		return o, err
	}
	ids = append(ids, "63")
	for _, obj := range templates {
		label := objectLabel("", obj.ID, nil)
		n, _ := strconv.Atoi(obj.ID)
		switch {
		case n >= 26 && n <= 51:
			a := AccountTemplate{ID: obj.ID}
			if err := decodeTemplate(obj.Value, label, a.bindings(), accountNames, &a.Other, &a.Sequence); err != nil {
				return o, err
			}
			o.Accounts = append(o.Accounts, a)
		case n == 62:
			a := &AdditionalData{}
			if err := decodeTemplate(obj.Value, label, a.bindings(), additionalNames, &a.Other, &a.Sequence); err != nil {
				return o, err
			}
			o.Additional = a
		case n == 64:
			l := &Language{}
			if err := decodeTemplate(obj.Value, label, l.bindings(), languageNames, &l.Other, &l.Sequence); err != nil {
				return o, err
			}
			if l.Preference == "" || l.Name == "" {
				return o, fmt.Errorf("merchant: %s needs sub-objects 00 (language preference) and 01 (name)", label)
			}
			o.Language = l
		default:
			o.Other = append(o.Other, obj)
		}
	}
	if !canonical(ids, true) {
		o.Sequence = ids
	}
	return o, nil
}

func decodeTemplate(v, label string, bs []binding, names map[string]string, other *[]Object, seq *[]string) error {
	list, err := splitObjects(v, label+", sub-object")
	if err != nil {
		return err
	}
	ids, err := fill(list, bs, label, names, other)
	if err != nil {
		return err
	}
	if !canonical(ids, false) {
		*seq = ids
	}
	return nil
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// encodeObjects writes objects in the order of seq, then any not listed in
// ascending order (top: 00 first and 63 last regardless).
func encodeObjects(objs []Object, seq []string, top bool, where string, names map[string]string) (string, error) {
	byID := map[string]string{}
	for _, obj := range objs {
		label := objectLabel(where, obj.ID, names)
		if len(obj.ID) != 2 || strings.Trim(obj.ID, "0123456789") != "" {
			return "", fmt.Errorf("merchant: %s: ID is not two digits", label)
		}
		if _, dup := byID[obj.ID]; dup {
			return "", fmt.Errorf("merchant: %s appears twice", label)
		}
		if err := checkValue(obj.Value); err != nil {
			return "", fmt.Errorf("merchant: %s: %v", label, err)
		}
		byID[obj.ID] = obj.Value
	}
	var order []string
	if top {
		order = append(order, "00")
	}
	for _, id := range seq {
		if _, ok := byID[id]; ok && !slices.Contains(order, id) && !(top && id == "63") {
			order = append(order, id)
		}
	}
	var rest []string
	for id := range byID {
		if !slices.Contains(order, id) {
			rest = append(rest, id)
		}
	}
	sortIDs(rest, top)
	order = append(order, rest...)
	var sb strings.Builder
	for _, id := range order {
		v := byID[id]
		fmt.Fprintf(&sb, "%s%02d%s", id, utf8.RuneCountInString(v), v)
	}
	return sb.String(), nil
}

func collect(bs []binding, where string, names map[string]string, other []Object) ([]Object, error) {
	var objs []Object
	for _, b := range bs {
		if *b.p == "" {
			continue
		}
		if b.check != nil {
			if err := b.check(*b.p); err != nil {
				return nil, fmt.Errorf("merchant: %s: %v", objectLabel(where, b.id, names), err)
			}
		}
		objs = append(objs, Object{ID: b.id, Value: *b.p})
	}
	for _, obj := range other {
		for _, b := range bs {
			if b.id == obj.ID {
				return nil, fmt.Errorf("merchant: %s is a named field, not an other object", objectLabel(where, obj.ID, names))
			}
		}
	}
	return append(objs, other...), nil
}

// Encode writes o as a merchant code with its CRC. An empty PayloadFormat
// is "01". Objects follow o.Sequence where given, else ascending ID order.
// Encode checks that the code is well formed, not that it is complete: see
// Validate.
func Encode(o Order) (string, error) {
	if o.PayloadFormat == "" {
		o.PayloadFormat = "01"
	}
	objs, err := collect(o.bindings(), "", topNames, nil)
	if err != nil {
		return "", err
	}
	for _, obj := range o.Other {
		n, err := strconv.Atoi(obj.ID)
		if err != nil || len(obj.ID) != 2 {
			return "", fmt.Errorf("merchant: other object ID %q is not two digits", obj.ID)
		}
		if _, named := topNames[obj.ID]; named || (n >= 26 && n <= 51) {
			return "", fmt.Errorf("merchant: object %s (%s) belongs in its own field, not in Other", obj.ID, topName(obj.ID))
		}
		objs = append(objs, obj)
	}
	for i := range o.Accounts {
		a := &o.Accounts[i]
		if n, err := strconv.Atoi(a.ID); err != nil || len(a.ID) != 2 || n < 26 || n > 51 {
			return "", fmt.Errorf("merchant: merchant account template ID %q is not 26..51", a.ID)
		}
		label := objectLabel("", a.ID, nil)
		v, err := encodeTemplate(a.bindings(), a.Other, a.Sequence, label, accountNames)
		if err != nil {
			return "", err
		}
		objs = append(objs, Object{ID: a.ID, Value: v})
	}
	if a := o.Additional; a != nil {
		v, err := encodeTemplate(a.bindings(), a.Other, a.Sequence, objectLabel("", "62", nil), additionalNames)
		if err != nil {
			return "", err
		}
		if v != "" {
			objs = append(objs, Object{ID: "62", Value: v})
		}
	}
	if l := o.Language; l != nil {
		label := objectLabel("", "64", nil)
		if l.Preference == "" || l.Name == "" {
			return "", fmt.Errorf("merchant: %s needs sub-objects 00 (language preference) and 01 (name)", label)
		}
		v, err := encodeTemplate(l.bindings(), l.Other, l.Sequence, label, languageNames)
		if err != nil {
			return "", err
		}
		objs = append(objs, Object{ID: "64", Value: v})
	}
	body, err := encodeObjects(objs, o.Sequence, true, "", topNames)
	if err != nil {
		return "", err
	}
	body += "6304"
	code := body + fmt.Sprintf("%04X", Checksum(body))
	// What Encode writes, Decode reads: anything else is a bug here.
	if _, err := Decode(code); err != nil {
		return "", err
	}
	return code, nil
}

func encodeTemplate(bs []binding, other []Object, seq []string, label string, names map[string]string) (string, error) {
	objs, err := collect(bs, label, names, other)
	if err != nil {
		return "", err
	}
	v, err := encodeObjects(objs, seq, false, label, names)
	if err != nil {
		return "", err
	}
	if n := utf8.RuneCountInString(v); n > 99 {
		return "", fmt.Errorf("merchant: %s: %d characters, at most 99", label, n)
	}
	return v, nil
}

// maxLengths are EMV QRCPS MPM's limits, in characters, beyond the
// fixed-size objects.
var maxLengths = map[string]int{"59": 25, "60": 15, "61": 10}

// Validate checks what EMV QRCPS MPM requires beyond a well-formed code:
// objects 52, 53, 58, 59 and 60 present, at least one merchant account
// (02-51), a GUID in every template 26-51, the maximum lengths of the name,
// city and postal code, and fees only with the matching tip indicator.
func (o *Order) Validate() error {
	for _, id := range []string{"52", "53", "58", "59", "60"} {
		for _, b := range o.bindings() {
			if b.id == id && *b.p == "" {
				return fmt.Errorf("merchant: object %s (%s) missing", id, topName(id))
			}
		}
	}
	hasAccount := len(o.Accounts) > 0
	for _, obj := range o.Other {
		if n, _ := strconv.Atoi(obj.ID); n >= 2 && n <= 25 {
			hasAccount = true
		}
	}
	if !hasAccount {
		return errors.New("merchant: no merchant account information (objects 02-51)")
	}
	for _, a := range o.Accounts {
		if a.GUID == "" {
			return fmt.Errorf("merchant: object %s (merchant account template): sub-object 00 (GUID) missing", a.ID)
		}
	}
	for _, b := range o.bindings() {
		if max, ok := maxLengths[b.id]; ok {
			if n := utf8.RuneCountInString(*b.p); n > max {
				return fmt.Errorf("merchant: object %s (%s): %d characters, at most %d", b.id, b.name, n, max)
			}
		}
	}
	if o.FeeFixed != "" && o.Tip != "02" {
		return errors.New("merchant: object 56 (convenience fee fixed) needs object 55 = 02")
	}
	if o.FeePercentage != "" && o.Tip != "03" {
		return errors.New("merchant: object 57 (convenience fee percentage) needs object 55 = 03")
	}
	return nil
}

// ParseAmount converts an amount as written in object 54 ("23.72") to
// minor units of a currency with the given exponent (2 for most).
func ParseAmount(s string, exponent int) (int64, error) {
	if err := decimal(s); err != nil {
		return 0, fmt.Errorf("merchant: object 54 (amount): %v", err)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > exponent {
		return 0, fmt.Errorf("merchant: object 54 (amount): %q has more than %d decimals", s, exponent)
	}
	digits := intPart + frac + strings.Repeat("0", exponent-len(frac))
	v, err := strconv.ParseInt(strings.TrimLeft(digits, "0")+"0", 10, 64)
	if err != nil {
		return 0, fmt.Errorf("merchant: object 54 (amount): %q is too large", s)
	}
	return v / 10, nil
}

// FormatAmount writes minor units as object 54 does: "23.72", "5".
func FormatAmount(minor int64, exponent int) (string, error) {
	if minor < 0 {
		return "", fmt.Errorf("merchant: negative amount %d", minor)
	}
	s := strconv.FormatInt(minor, 10)
	if exponent > 0 {
		if len(s) <= exponent {
			s = strings.Repeat("0", exponent-len(s)+1) + s
		}
		s = s[:len(s)-exponent] + "." + s[len(s)-exponent:]
	}
	if len(s) > 13 {
		return "", fmt.Errorf("merchant: amount %s is longer than 13 characters", s)
	}
	return s, nil
}

// Render encodes o and draws it as a QR code, scale pixels per module.
func Render(o Order, scale int) (image.Image, error) {
	code, err := Encode(o)
	if err != nil {
		return nil, err
	}
	return medium.Render(code, medium.QR, scale)
}

// DecodeImage reads a merchant code from an image of its QR code.
func DecodeImage(img image.Image) (Order, error) {
	text, _, err := medium.DecodeImage(img)
	if err != nil {
		return Order{}, fmt.Errorf("merchant: %w", err)
	}
	return Decode(text)
}
