package medium

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// infoJSON is ServiceInfo as JSON: identities, tokens and nonces as
// upper-case hex (as they appear in traces and on a terminal's screen), the
// certificate as Base64 of its DER, as PEM bodies carry it.
type infoJSON struct {
	Kind        Kind           `json:"kind"`
	KindName    string         `json:"kind_name,omitempty"`
	AID         string         `json:"aid,omitempty"`
	DeviceID    string         `json:"device_id"`
	Token       string         `json:"token,omitempty"`
	Balance     int64          `json:"balance"`
	Pending     int64          `json:"pending,omitempty"`
	Uses        int            `json:"uses"`
	ATC         uint32         `json:"atc"`
	Currency    uint16         `json:"currency"`
	Amount      int64          `json:"amount,omitempty"`
	Expiry      jsonTime       `json:"expiry"`
	Issued      jsonTime       `json:"issued"`
	PayeeNonce  string         `json:"payee_nonce,omitempty"`
	PayerID     string         `json:"payer_id,omitempty"`
	PayeeID     string         `json:"payee_id,omitempty"`
	Serial      uint64         `json:"serial,omitempty"`
	Controls    *TokenControls `json:"controls,omitempty"`
	Result      *int           `json:"result,omitempty"`
	Reason      string         `json:"reason,omitempty"`
	Certificate []byte         `json:"certificate,omitempty"`
}

// jsonTime is a time in RFC 3339, empty when not set.
type jsonTime struct{ t timeValue }

func hexOf(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func fromHex(field, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("medium: JSON field %s is not hex: %w", field, err)
	}
	return b, nil
}

// MarshalJSON writes identities, tokens and nonces as hex.
func (info ServiceInfo) MarshalJSON() ([]byte, error) {
	j := infoJSON{
		Kind: info.Kind, KindName: info.Kind.String(), AID: hexOf(info.AID), DeviceID: hexOf(info.DeviceID),
		Token: hexOf(info.Token), Balance: info.Balance, Pending: info.Pending, Uses: info.Uses, ATC: info.ATC,
		Currency: info.Currency, Amount: info.Amount, Expiry: jsonTime{timeValue(info.Expiry)}, Issued: jsonTime{timeValue(info.Issued)},
		PayeeNonce: hexOf(info.PayeeNonce), PayerID: hexOf(info.PayerID), PayeeID: hexOf(info.PayeeID),
		Serial: info.Serial, Controls: info.Controls, Result: info.Result, Reason: info.Reason, Certificate: info.Certificate,
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; kind_name is ignored.
func (info *ServiceInfo) UnmarshalJSON(b []byte) error {
	var j infoJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("medium: service information JSON: %w", err)
	}
	out := ServiceInfo{Kind: j.Kind, Balance: j.Balance, Pending: j.Pending, Uses: j.Uses, ATC: j.ATC,
		Currency: j.Currency, Amount: j.Amount, Expiry: j.Expiry.t.Time(), Issued: j.Issued.t.Time(),
		Serial: j.Serial, Controls: j.Controls, Result: j.Result, Reason: j.Reason, Certificate: j.Certificate}
	var err error
	for _, f := range []struct {
		name string
		src  string
		dst  *[]byte
	}{
		{"aid", j.AID, &out.AID}, {"device_id", j.DeviceID, &out.DeviceID}, {"token", j.Token, &out.Token},
		{"payee_nonce", j.PayeeNonce, &out.PayeeNonce}, {"payer_id", j.PayerID, &out.PayerID}, {"payee_id", j.PayeeID, &out.PayeeID},
	} {
		if *f.dst, err = fromHex(f.name, f.src); err != nil {
			return err
		}
	}
	*info = out
	return nil
}

// timeValue is a time that marshals as RFC 3339 and as "" when zero.
type timeValue time.Time

func (t timeValue) Time() time.Time { return time.Time(t) }

func (t jsonTime) MarshalJSON() ([]byte, error) {
	if time.Time(t.t).IsZero() {
		return []byte(`""`), nil
	}
	return json.Marshal(time.Time(t.t).UTC().Format(time.RFC3339))
}

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("medium: time: %w", err)
	}
	if s == "" {
		t.t = timeValue{}
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("medium: time %q: %w", s, err)
	}
	t.t = timeValue(v)
	return nil
}
