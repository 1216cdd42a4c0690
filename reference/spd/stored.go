package spd

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Merchant order codes read by the device (SPEC.md 4.7, SPD-MPM-1) and
// media stored on it (SPEC.md 4.8, SPD-STM-*).

// P1 values of PARSE MEDIUM and of LIST MEDIA / SHOW MEDIUM.
const (
	P1ParseEnvelope byte = 0x00 // PARSE MEDIUM: a medium envelope (SPD-MED-4)
	P1ParseMerchant byte = 0x01 // PARSE MEDIUM: a merchant order code (SPD-MPM-1)
	P1ListMedia     byte = 0x00
	P1ShowMedium    byte = 0x01
)

// Tags of SPEC.md 4.7 and 4.8.
const (
	TagMerchantCode  tlv.Tag = 0xDF63 // PARSE MEDIUM P1 01: the code's text
	TagMerchantName  tlv.Tag = 0xDF64
	TagMerchantCity  tlv.Tag = 0xDF65
	TagInitiation    tlv.Tag = 0xDF66
	TagMediumLabel   tlv.Tag = 0xDF70
	TagMediumFormat  tlv.Tag = 0xDF71
	TagMediumContent tlv.Tag = 0xDF72
	TagMediumSize    tlv.Tag = 0xDF73
	TagMerchantOrder tlv.Tag = 0xE2 // merchant order template
	TagMediaList     tlv.Tag = 0xE3 // LIST MEDIA answer
	TagStoredMedium  tlv.Tag = 0xE4 // one stored medium
)

// Limits of SPEC.md 4.7 and 4.8.
const (
	MaxMerchantCode  = 512  // bytes of DF63
	MaxOrderField    = 32   // bytes of the payee and the order reference
	MaxMediumLabel   = 16   // bytes of DF70
	MaxMediumContent = 1024 // bytes of DF72
)

// MerchantOrder is what a device's parsing unit reads from a merchant
// order code: the E2 template of SPEC.md 4.7.
type MerchantOrder struct {
	Payee      []byte  // DF09: the spdlab merchant account
	Reference  []byte  // DF07: the bill number, or nil
	Amount     *int64  // 9F02: minor units, nil when the code names none
	Currency   *uint16 // 5F2A, nil when absent
	Name       string  // DF64
	City       string  // DF65
	Initiation byte    // DF66: 0x11 static, 0x12 dynamic, 0 absent
}

// OrderFromCode applies the rules of SPEC.md 4.7 to a code's text.
func OrderFromCode(text string) (MerchantOrder, error) {
	o, err := merchant.Decode(text)
	if err != nil {
		return MerchantOrder{}, malformed("%v", err)
	}
	payee, ok := o.Payee()
	if !ok {
		return MerchantOrder{}, malformed("merchant code names no %s payee account", merchant.GUID)
	}
	out := MerchantOrder{Payee: []byte(payee), Name: o.Name, City: o.City}
	if o.Additional != nil && o.Additional.BillNumber != "" {
		out.Reference = []byte(o.Additional.BillNumber)
	}
	if len(out.Payee) > MaxOrderField || len(out.Reference) > MaxOrderField {
		return MerchantOrder{}, malformed("merchant payee or bill number longer than %d bytes", MaxOrderField)
	}
	if o.Amount != "" {
		a, err := merchant.ParseAmount(o.Amount, 2)
		if err != nil {
			return MerchantOrder{}, malformed("%v", err)
		}
		out.Amount = &a
	}
	if o.Currency != "" {
		c, err := strconv.ParseUint(o.Currency, 10, 16)
		if err != nil {
			return MerchantOrder{}, malformed("merchant currency %q", o.Currency)
		}
		cur := uint16(c)
		out.Currency = &cur
	}
	switch o.Initiation {
	case merchant.Static:
		out.Initiation = 0x11
	case merchant.Dynamic:
		out.Initiation = 0x12
	}
	return out, nil
}

// Encode writes the E2 template in the order of SPEC.md 4.7.
func (m MerchantOrder) Encode() []byte {
	var cb builder
	cb.Add(TagPayee, m.Payee)
	cb.opt(TagPayeeNonce, m.Reference)
	if m.Amount != nil {
		cb.amount(TagAmount, *m.Amount)
	}
	if m.Currency != nil {
		cb.u(TagCurrency, 2, uint64(*m.Currency))
	}
	cb.opt(TagMerchantName, []byte(m.Name))
	cb.opt(TagMerchantCity, []byte(m.City))
	if m.Initiation != 0 {
		cb.u(TagInitiation, 1, uint64(m.Initiation))
	}
	var b builder
	b.Add(TagMerchantOrder, cb.must())
	return b.must()
}

// orderTags is the order of the E2 template's children.
var orderTags = []tlv.Tag{TagPayee, TagPayeeNonce, TagAmount, TagCurrency, TagMerchantName, TagMerchantCity, TagInitiation}

// ParseMerchantOrder reads PARSE MEDIUM P1 01's answer: exactly one E2
// whose children follow SPEC.md 4.7 in order and size.
func ParseMerchantOrder(data []byte) (MerchantOrder, error) {
	inner, err := onlyTemplate(data, TagMerchantOrder)
	if err != nil {
		return MerchantOrder{}, err
	}
	if err := inOrder(inner, orderTags); err != nil {
		return MerchantOrder{}, err
	}
	f, err := parseFields(inner, orderTags...)
	if err != nil {
		return MerchantOrder{}, err
	}
	if err := f.require(TagPayee); err != nil {
		return MerchantOrder{}, err
	}
	var m MerchantOrder
	if m.Payee, err = f.bytes(TagPayee, 1, MaxOrderField); err != nil {
		return m, err
	}
	if m.Reference, err = f.bytes(TagPayeeNonce, 1, MaxOrderField); err != nil {
		return m, err
	}
	if f.has(TagAmount) {
		a, err := f.amount(TagAmount)
		if err != nil {
			return m, err
		}
		m.Amount = &a
	}
	if f.has(TagCurrency) {
		c, err := f.uint(TagCurrency, 2)
		if err != nil {
			return m, err
		}
		cur := uint16(c)
		m.Currency = &cur
	}
	for _, s := range []struct {
		tag tlv.Tag
		p   *string
	}{{TagMerchantName, &m.Name}, {TagMerchantCity, &m.City}} {
		v, err := f.bytes(s.tag, 1, 4*99)
		if err != nil {
			return m, err
		}
		if !utf8.Valid(v) {
			return m, malformed("tag %s is not UTF-8", s.tag)
		}
		*s.p = string(v)
	}
	if f.has(TagInitiation) {
		v, err := f.uint(TagInitiation, 1)
		if err != nil {
			return m, err
		}
		if v != 0x11 && v != 0x12 {
			return m, malformed("point of initiation %02X", v)
		}
		m.Initiation = byte(v)
	}
	return m, nil
}

// onlyTemplate returns the value of the one object of data, which must be
// tag.
func onlyTemplate(data []byte, tag tlv.Tag) ([]byte, error) {
	obj, rest, err := tlv.Next(data)
	if err != nil {
		return nil, malformed("%v", err)
	}
	if obj.Tag != tag || len(rest) != 0 {
		return nil, malformed("want one %s template", tag)
	}
	return obj.Value, nil
}

// inOrder checks that the objects of b come in the order of tags.
func inOrder(b []byte, tags []tlv.Tag) error {
	next := 0
	for len(b) > 0 {
		obj, rest, err := tlv.Next(b)
		if err != nil {
			return malformed("%v", err)
		}
		b = rest
		i := next
		for i < len(tags) && tags[i] != obj.Tag {
			i++
		}
		if i == len(tags) {
			return malformed("tag %s out of place", obj.Tag)
		}
		next = i + 1
	}
	return nil
}

// ParseMerchantCode asks the device's parsing unit to read a merchant
// order code (PARSE MEDIUM P1 01, SPD-MPM-1).
func ParseMerchantCode(text string) apdu.Command {
	var b builder
	b.Add(TagMerchantCode, []byte(text))
	return proprietary(INSParseMedium, P1ParseMerchant, 0, b.must(), apdu.MaxShortLe)
}

// ParseMerchantCodeData decodes PARSE MEDIUM P1 01's data field: the
// code's text, 1..512 bytes.
func ParseMerchantCodeData(data []byte) (string, error) {
	f, err := parseFields(data, TagMerchantCode)
	if err != nil {
		return "", err
	}
	if err := f.require(TagMerchantCode); err != nil {
		return "", err
	}
	v, err := f.bytes(TagMerchantCode, 1, MaxMerchantCode)
	return string(v), err
}

// MediumFormat is DF71 of a stored medium.
type MediumFormat byte

// Formats of stored media.
const (
	FormatEnvelope     MediumFormat = 0x01 // a medium envelope of SPEC.md section 7
	FormatMerchantCode MediumFormat = 0x02 // a merchant order code's text (4.7)
)

// StoreOrder is the body of a host-signed STORE MEDIUM (SPEC.md 4.8).
type StoreOrder struct {
	Counter uint32
	Label   string
	Format  MediumFormat
	Content []byte
	Expiry  time.Time
	Time    time.Time
}

// StoreMedium builds the host-signed STORE MEDIUM (SPD-STM-1).
func StoreMedium(key *ecdsa.PrivateKey, deviceID []byte, o StoreOrder) (apdu.Command, error) {
	var b builder
	b.u(TagUpdateCounter, 4, uint64(o.Counter))
	b.AddString(TagMediumLabel, o.Label)
	b.u(TagMediumFormat, 1, uint64(o.Format))
	b.Add(TagMediumContent, o.Content)
	b.time(TagExpiry, o.Expiry)
	b.time(TagTime, o.Time)
	data, err := SealIssuerData(key, INSStoreMedium, deviceID, b.must())
	if err != nil {
		return apdu.Command{}, err
	}
	return proprietary(INSStoreMedium, 0, 0, data, 0), nil
}

// ParseStoreOrder decodes the body of a STORE MEDIUM by its row of 4.8.
// The content is checked against its format by the device, not here.
func ParseStoreOrder(body []byte) (StoreOrder, error) {
	tags := []tlv.Tag{TagUpdateCounter, TagMediumLabel, TagMediumFormat, TagMediumContent, TagExpiry, TagTime}
	f, err := parseFields(body, tags...)
	if err != nil {
		return StoreOrder{}, err
	}
	if err := f.require(tags...); err != nil {
		return StoreOrder{}, err
	}
	var o StoreOrder
	c, err := f.uint(TagUpdateCounter, 4)
	if err != nil {
		return o, err
	}
	o.Counter = uint32(c)
	label, err := f.bytes(TagMediumLabel, 1, MaxMediumLabel)
	if err != nil {
		return o, err
	}
	if !printableLabel(label) {
		return o, malformed("label %q is not printable ASCII", label)
	}
	o.Label = string(label)
	fm, err := f.uint(TagMediumFormat, 1)
	if err != nil {
		return o, err
	}
	o.Format = MediumFormat(fm)
	if o.Format != FormatEnvelope && o.Format != FormatMerchantCode {
		return o, malformed("medium format %02X", fm)
	}
	if o.Content, err = f.bytes(TagMediumContent, 1, MaxMediumContent); err != nil {
		return o, err
	}
	if o.Expiry, err = f.time(TagExpiry); err != nil {
		return o, err
	}
	if o.Time, err = f.time(TagTime); err != nil {
		return o, err
	}
	if !o.Expiry.After(o.Time) {
		return o, malformed("expiry not after the time")
	}
	return o, nil
}

func printableLabel(b []byte) bool {
	for _, c := range b {
		if c < 0x21 || c > 0x7E {
			return false
		}
	}
	return len(b) > 0
}

// StoredMedium is one entry of LIST MEDIA (Content nil, Size set) or the
// answer of SHOW MEDIUM (Content set).
type StoredMedium struct {
	Label   string
	Format  MediumFormat
	Expiry  time.Time
	Size    int
	Content []byte
}

// ListMedia builds LIST MEDIA.
func ListMedia() apdu.Command {
	return proprietary(INSReadMedia, P1ListMedia, 0, nil, apdu.MaxShortLe)
}

// ShowMedium builds SHOW MEDIUM for label at the terminal time now.
func ShowMedium(label string, now time.Time) apdu.Command {
	var b builder
	b.AddString(TagMediumLabel, label)
	b.time(TagTime, now)
	return proprietary(INSReadMedia, P1ShowMedium, 0, b.must(), apdu.MaxShortLe)
}

// ParseShowMedium decodes SHOW MEDIUM's data field.
func ParseShowMedium(data []byte) (string, time.Time, error) {
	f, err := parseFields(data, TagMediumLabel, TagTime)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := f.require(TagMediumLabel, TagTime); err != nil {
		return "", time.Time{}, err
	}
	label, err := f.bytes(TagMediumLabel, 1, MaxMediumLabel)
	if err != nil {
		return "", time.Time{}, err
	}
	if !printableLabel(label) {
		return "", time.Time{}, malformed("label %q is not printable ASCII", label)
	}
	now, err := f.time(TagTime)
	return string(label), now, err
}

// Encode writes the E4 of m: with the content when m.Content is set
// (SHOW MEDIUM), with its size otherwise (LIST MEDIA).
func (m StoredMedium) Encode() []byte {
	var cb builder
	cb.AddString(TagMediumLabel, m.Label)
	cb.u(TagMediumFormat, 1, uint64(m.Format))
	cb.time(TagExpiry, m.Expiry)
	if m.Content != nil {
		cb.Add(TagMediumContent, m.Content)
	} else {
		cb.u(TagMediumSize, 2, uint64(m.Size))
	}
	var b builder
	b.Add(TagStoredMedium, cb.must())
	return b.must()
}

// EncodeMediaList writes LIST MEDIA's answer.
func EncodeMediaList(list []StoredMedium) []byte {
	var inner []byte
	for _, m := range list {
		m.Content = nil
		inner = append(inner, m.Encode()...)
	}
	var b builder
	b.Add(TagMediaList, inner)
	return b.must()
}

var storedTags = []tlv.Tag{TagMediumLabel, TagMediumFormat, TagExpiry, TagMediumContent, TagMediumSize}

func parseStored(v []byte, shown bool) (StoredMedium, error) {
	if err := inOrder(v, storedTags); err != nil {
		return StoredMedium{}, err
	}
	f, err := parseFields(v, storedTags...)
	if err != nil {
		return StoredMedium{}, err
	}
	last := TagMediumSize
	if shown {
		last = TagMediumContent
	}
	if err := f.require(TagMediumLabel, TagMediumFormat, TagExpiry, last); err != nil {
		return StoredMedium{}, err
	}
	if f.has(TagMediumContent) == f.has(TagMediumSize) {
		return StoredMedium{}, malformed("a stored medium holds DF72 or DF73, not both")
	}
	var m StoredMedium
	label, err := f.bytes(TagMediumLabel, 1, MaxMediumLabel)
	if err != nil {
		return m, err
	}
	if !printableLabel(label) {
		return m, malformed("label %q is not printable ASCII", label)
	}
	m.Label = string(label)
	fm, err := f.uint(TagMediumFormat, 1)
	if err != nil {
		return m, err
	}
	m.Format = MediumFormat(fm)
	if m.Expiry, err = f.time(TagExpiry); err != nil {
		return m, err
	}
	if shown {
		if m.Content, err = f.bytes(TagMediumContent, 1, MaxMediumContent); err != nil {
			return m, err
		}
		m.Size = len(m.Content)
	} else {
		s, err := f.uint(TagMediumSize, 2)
		if err != nil {
			return m, err
		}
		m.Size = int(s)
	}
	return m, nil
}

// ParseMediaList reads LIST MEDIA's answer: labels strictly ascending.
func ParseMediaList(data []byte) ([]StoredMedium, error) {
	inner, err := onlyTemplate(data, TagMediaList)
	if err != nil {
		return nil, err
	}
	var out []StoredMedium
	for len(inner) > 0 {
		obj, rest, err := tlv.Next(inner)
		if err != nil {
			return nil, malformed("%v", err)
		}
		inner = rest
		if obj.Tag != TagStoredMedium {
			return nil, malformed("tag %s in the media list", obj.Tag)
		}
		m, err := parseStored(obj.Value, false)
		if err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && bytes.Compare([]byte(out[n-1].Label), []byte(m.Label)) >= 0 {
			return nil, malformed("labels not in ascending order")
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseShownMedium reads SHOW MEDIUM's answer.
func ParseShownMedium(data []byte) (StoredMedium, error) {
	inner, err := onlyTemplate(data, TagStoredMedium)
	if err != nil {
		return StoredMedium{}, err
	}
	return parseStored(inner, true)
}

// ParseMerchantCode has the device's parsing unit read a merchant order
// code (SPD-MPM-1).
func (c *Client) ParseMerchantCode(ctx context.Context, text string) (MerchantOrder, error) {
	data, err := c.Do(ctx, ParseMerchantCode(text))
	if err != nil {
		return MerchantOrder{}, err
	}
	return ParseMerchantOrder(data)
}

// ListMedia lists the media stored on the device (SPD-STM-2).
func (c *Client) ListMedia(ctx context.Context) ([]StoredMedium, error) {
	data, err := c.Do(ctx, ListMedia())
	if err != nil {
		return nil, err
	}
	return ParseMediaList(data)
}

// ShowMedium reads the stored medium of label at the terminal time now
// (SPD-STM-2, SPD-STM-3).
func (c *Client) ShowMedium(ctx context.Context, label string, now time.Time) (StoredMedium, error) {
	data, err := c.Do(ctx, ShowMedium(label, now))
	if err != nil {
		return StoredMedium{}, err
	}
	return ParseShownMedium(data)
}
