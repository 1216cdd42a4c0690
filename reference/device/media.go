package device

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
)

// The device's parsing unit for merchant order codes (SPEC.md 4.7,
// SPD-MPM-1) and the media an issuer or operator stores on it (SPEC.md
// 4.8, SPD-STM-*).
//
// A stored medium is one store value, written with the update counter of
// the STORE MEDIUM in one transaction:
//
//	key                   value
//	media/<label %x>      format (1) expiry (4) content
const prefixMedia = "media/"

// Capacities of the media store (SPEC.md section 11).
const (
	maxMedia      = 8
	maxMediaBytes = 8192
)

// doParse answers PARSE MEDIUM: P1 01 reads a merchant order code, any
// other P1 goes to the medium parser (which checks P1-P2 itself).
func (d *Device) doParse(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 == spd.P1ParseMerchant {
		return d.doParseMerchant(cmd)
	}
	return d.doParseMedium(cmd)
}

// doParseMerchant reads a merchant order code by SPEC.md 4.7 (C5, C48)
// and answers the E2 template. It changes nothing.
func (d *Device) doParseMerchant(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	text, err := spd.ParseMerchantCodeData(cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	if d.bug("merchant-crc-unchecked") {
		text = withRightCRC(text)
	}
	o, err := spd.OrderFromCode(text)
	if err != nil && d.bug("merchant-reference-unbounded") {
		o, err = orderLongReference(text)
	}
	if err != nil {
		return nil, apdu.SWWrongData
	}
	if d.bug("merchant-no-reference") {
		o.Reference = nil
	}
	return o.Encode(), apdu.SWOK
}

// withRightCRC is the mutant merchant-crc-unchecked: a code ending in
// object 63 gets the CRC it should have, so that a wrong one passes.
func withRightCRC(text string) string {
	const crcObject = "6304" // ID 63, length 04
	if n := len(text) - 4; n > 0 && strings.HasSuffix(text[:n], crcObject) {
		return text[:n] + fmt.Sprintf("%04X", merchant.Checksum(text[:n]))
	}
	return text
}

// orderLongReference is the mutant merchant-reference-unbounded: a code
// whose bill number is longer than 32 bytes is read with it as it is.
func orderLongReference(text string) (spd.MerchantOrder, error) {
	m, err := merchant.Decode(text)
	if err != nil || m.Additional == nil || len(m.Additional.BillNumber) <= spd.MaxOrderField {
		return spd.MerchantOrder{}, errors.New("device: merchant code")
	}
	bill := m.Additional.BillNumber
	m.Additional.BillNumber = ""
	short, err := merchant.Encode(m)
	if err != nil {
		return spd.MerchantOrder{}, err
	}
	o, err := spd.OrderFromCode(short)
	o.Reference = []byte(bill)
	return o, err
}

// checkEnvelope applies PARSE MEDIUM's checks to a medium envelope:
// 6A80 when it does not parse or has no valid certificate, 6982 when the
// certificate or the signature does not verify under the issuer CA.
func (d *Device) checkEnvelope(env []byte) apdu.SW {
	m, err := medium.Parse(env)
	if err != nil {
		return apdu.SWWrongData
	}
	if _, err := medium.VerifyCertificate(m, d.caPub); err != nil {
		if errors.Is(err, medium.ErrBadSignature) {
			return apdu.SWSecurityNotSatisfied
		}
		return apdu.SWWrongData
	}
	return apdu.SWOK
}

// storedMedium is one stored medium as kept.
type storedMedium struct {
	label   string
	format  spd.MediumFormat
	expiry  uint32
	content []byte
}

func (m storedMedium) marshal() []byte {
	b := []byte{byte(m.format)}
	b = binary.BigEndian.AppendUint32(b, m.expiry)
	return append(b, m.content...)
}

func mediaKey(label string) string { return prefixMedia + hex.EncodeToString([]byte(label)) }

// media reads the stored media, labels ascending by bytes.
func (d *Device) media() ([]storedMedium, error) {
	var out []storedMedium
	for _, k := range d.st.Keys(prefixMedia) {
		label, err := hex.DecodeString(strings.TrimPrefix(k, prefixMedia))
		if err != nil {
			return nil, errCorrupt
		}
		b, _ := d.st.Get(k)
		if len(b) < 6 {
			return nil, errCorrupt
		}
		out = append(out, storedMedium{
			label:   string(label),
			format:  spd.MediumFormat(b[0]),
			expiry:  binary.BigEndian.Uint32(b[1:5]),
			content: bytes.Clone(b[5:]),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	return out, nil
}

// doStoreMedium stores a medium on a host order (SPD-STM-1, SPD-STM-4).
func (d *Device) doStoreMedium(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	body, err := spd.OpenIssuerData(d.hostPub, spd.INSStoreMedium, d.id, cmd.Data)
	if err != nil {
		return nil, parseErr(err)
	}
	o, err := spd.ParseStoreOrder(body)
	if err != nil {
		return nil, parseErr(err)
	}
	if o.Counter <= d.c.UpdateCounter && !d.bug("media-counter-replay") {
		return nil, apdu.SWRefDataNotUsable
	}
	switch o.Format {
	case spd.FormatEnvelope:
		if sw := d.checkEnvelope(o.Content); sw != apdu.SWOK {
			return nil, sw
		}
	case spd.FormatMerchantCode:
		if _, err := spd.OrderFromCode(string(o.Content)); err != nil {
			return nil, apdu.SWWrongData
		}
	}
	list, err := d.media()
	if err != nil {
		return nil, d.fail(err)
	}
	now := spd.Unix(o.Time)
	tx := d.begin(spd.INSStoreMedium)
	count, size, replacing := 0, 0, false
	for _, m := range list {
		switch {
		case m.label == o.Label:
			replacing = !d.bug("media-replace-full")
			if !replacing {
				count++
			}
		case m.expiry < now || (d.bug("media-purge-inclusive") && m.expiry == now):
			tx.Delete(mediaKey(m.label))
		default:
			count++
			size += len(m.content)
		}
	}
	if ((!replacing && count >= maxMedia) || size+len(o.Content) > maxMediaBytes) && !d.bug("media-no-capacity") {
		return nil, apdu.SWNotEnoughMemory
	}
	nc := d.c
	nc.UpdateCounter = o.Counter
	if d.bug("store-medium-syncs") && now > nc.LastSync {
		nc.LastSync = now
	}
	tx.Put(keyCounters, nc.marshal())
	tx.Put(mediaKey(o.Label), storedMedium{format: o.Format, expiry: spd.Unix(o.Expiry), content: o.Content}.marshal())
	if sw := d.commit(tx); sw != apdu.SWOK {
		return nil, sw
	}
	d.c = nc
	return nil, apdu.SWOK
}

// doReadMedia answers LIST MEDIA (P1 00) and SHOW MEDIUM (P1 01)
// (SPD-STM-2, SPD-STM-3). Neither changes anything.
func (d *Device) doReadMedia(cmd apdu.Command) ([]byte, apdu.SW) {
	if cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	switch cmd.P1 {
	case spd.P1ListMedia:
		if len(cmd.Data) != 0 {
			return nil, apdu.SWWrongLength
		}
		list, err := d.media()
		if err != nil {
			return nil, d.fail(err)
		}
		out := make([]spd.StoredMedium, 0, len(list))
		for _, m := range list {
			out = append(out, spd.StoredMedium{Label: m.label, Format: m.format,
				Expiry: time.Unix(int64(m.expiry), 0).UTC(), Size: len(m.content)})
		}
		if d.bug("list-media-omits-last") && len(out) > 1 {
			out = out[:len(out)-1]
		}
		return spd.EncodeMediaList(out), apdu.SWOK
	case spd.P1ShowMedium:
		label, now, err := spd.ParseShowMedium(cmd.Data)
		if err != nil {
			return nil, parseErr(err)
		}
		b, ok := d.st.Get(mediaKey(label))
		if !ok {
			return nil, apdu.SWRecordNotFound
		}
		if len(b) < 6 {
			return nil, d.fail(errCorrupt)
		}
		expiry := binary.BigEndian.Uint32(b[1:5])
		if (spd.Unix(now) > expiry || d.c.LastSync > expiry || (d.bug("media-sync-inclusive") && d.c.LastSync == expiry)) && !d.bug("media-shows-expired") {
			return nil, apdu.SWConditionsNotSat
		}
		content := bytes.Clone(b[5:])
		if d.bug("show-medium-cut") && len(content) > 255 {
			content = content[:255]
		}
		if d.bug("show-medium-spends-atc") {
			nc := d.c
			nc.ATC++
			d.commitCounters(nc)
		}
		return spd.StoredMedium{Label: label, Format: spd.MediumFormat(b[0]),
			Expiry: time.Unix(int64(expiry), 0).UTC(), Content: content}.Encode(), apdu.SWOK
	}
	return nil, apdu.SWIncorrectP1P2
}
