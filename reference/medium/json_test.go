package medium

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestServiceInfoJSONRoundTrip(t *testing.T) {
	ok := 0
	in := ServiceInfo{
		Kind: KindPaymentResult, AID: []byte{0xF0, 0x53}, DeviceID: []byte{0x5D, 0x1A, 0xB0, 0, 0, 0, 0, 1},
		Token: []byte{0xA0, 0xA1}, Balance: 8750, Pending: 100, Uses: 9, ATC: 3, Currency: 978, Amount: 1250,
		Expiry: time.Date(2026, 11, 26, 9, 5, 0, 0, time.UTC), Issued: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		PayeeNonce: []byte("ORDER-1"), Result: &ok,
		Controls: &TokenControls{MaxTransactions: 2, MaxAmount: 2000, Channels: ChannelInStore},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"device_id":"5D1AB00000000001"`, `"payee_nonce":"4F524445522D31"`, `"kind_name":"payment-result"`, `"issued":"2026-11-26T09:00:00Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back ServiceInfo
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, in)
	}
	for _, bad := range []string{`{"device_id":"XYZ"}`, `{"issued":"yesterday"}`, `{"colour":"red"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
