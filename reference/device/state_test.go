package device

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/spd"
)

func TestStateCodecs(t *testing.T) {
	c := counters{State: spd.StateBlocked, Balance: 1 << 40, Uses: 7, ATC: 0xFFFFFFFE, UpdateCounter: 3, LastSync: 1_800_000_000,
		Tier: 2, Limits: spd.Limits{MaxPayment: 5, MaxPending: 6, MaxOfflineCount: 7, MaxOfflineAge: 8 * time.Second}, TransferSerial: 9}
	if got, err := parseCounters(c.marshal()); err != nil || got != c {
		t.Fatalf("counters %+v, %v", got, err)
	}
	records := []record{
		{Kind: spd.KindBalance, Mode: spd.ModeOffline, ATC: 1, Amount: 2, Time: 3, Token: bytes.Repeat([]byte{1}, 16), Payee: []byte("SHOP")},
		{Kind: spd.KindTransferOut, Mode: spd.ModeOffline, ATC: 4, Amount: 5, Time: 6, Serial: 7, Counterpart: []byte("PAYEE001")},
		{Kind: spd.KindUse},
		{Kind: spd.KindExchange, ATC: 8, Amount: 900, Time: 9, Token: bytes.Repeat([]byte{1}, 16), Nonce: []byte("NONCE-01"),
			Exchange: &exchangeRec{Kind: spd.ExchangeCurrency, TargetCurrency: 840, Numerator: 3, Denominator: 4, Target: 675}},
	}
	for _, r := range records {
		if got, err := parseRecord(r.marshal()); err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("record %+v: %+v, %v", r, got, err)
		}
	}
	tok := token{MaxTxns: 1, MaxAmount: 2, Channels: 3, Expiry: 4, Used: 5}
	if got, err := parseToken(tok.marshal()); err != nil || got != tok {
		t.Fatalf("token %+v, %v", got, err)
	}
	x := transfer{Amount: 1, Payee: []byte("PAYEE001"), Expiry: 2, ATC: 3, Time: 4, Status: transferReclaimed}
	if got, err := parseTransfer(x.marshal()); err != nil || !reflect.DeepEqual(got, x) {
		t.Fatalf("transfer %+v, %v", got, err)
	}
	for name, b := range map[string][]byte{
		"short counters": c.marshal()[:10],
		"record cut":     records[0].marshal()[:30],
		"record tail":    append(records[2].marshal(), 0),
		"exchange cut":   records[3].marshal()[:len(records[3].marshal())-1],
		"exchange lost":  records[3].marshal()[:len(records[3].marshal())-20],
	} {
		var err error
		if name == "short counters" {
			_, err = parseCounters(b)
		} else {
			_, err = parseRecord(b)
		}
		if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
