package spd

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/tlv"
)

// Fuzz targets for every parser of bytes from outside: the card's answers
// (host side) and the command data fields (device side). None may panic;
// where a builder exists, what parses must re-encode to what parses the
// same.

func FuzzParseSelectResponse(f *testing.F) {
	f.Add(SelectResponse(SelectResult{AID: AID, State: StateActive, DeviceID: []byte("DEVICE01")}))
	f.Add(SelectResponse(SelectResult{AID: AID, State: StateBlank}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseSelectResponse(b)
		if err != nil {
			return
		}
		again, err := ParseSelectResponse(SelectResponse(r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("select response %+v does not round-trip: %+v, %v", r, again, err)
		}
	})
}

func FuzzParseDataObject(f *testing.F) {
	f.Add(DataObject(TagBalance, []byte{0, 0, 0, 0, 0, 0, 1, 0}))
	f.Add(DataObject(TagCertificate, bytes.Repeat([]byte{0x30}, 300)))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseDataObject(TagBalance, b)
		if err != nil {
			return
		}
		if !bytes.Equal(DataObject(TagBalance, v), b) {
			t.Fatalf("data object %X does not round-trip", b)
		}
	})
}

func FuzzParseInitialiseResponse(f *testing.F) {
	k := testKey(f)
	f.Add(DataObject(TagDevicePublicKey, PublicKeyBytes(&k.PublicKey)))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParseInitialiseResponse(b)
		if err == nil && !bytes.Equal(DataObject(TagDevicePublicKey, PublicKeyBytes(pub)), b) {
			t.Fatalf("public key %X does not round-trip", b)
		}
	})
}

func FuzzParsePayRequest(f *testing.F) {
	req := PayRequest{Kind: KindBalance, Mode: ModeOffline, Amount: 1000, Currency: 978, Time: time.Unix(1_800_000_000, 0).UTC(),
		Payee: []byte("SHOP"), PayeeNonce: []byte("N"), Region: 276, RequiredTier: 1, Token: bytes.Repeat([]byte{1}, TokenLen),
		Channel: medium.ChannelOnline}
	c := Pay(req)
	f.Add(c.P1, c.P2, c.Data)
	f.Add(byte(3), byte(0), Pay(PayRequest{Kind: KindUse, Currency: 156}).Data)
	f.Fuzz(func(t *testing.T, p1, p2 byte, data []byte) {
		r, err := ParsePayRequest(p1, p2, data)
		if err != nil {
			return
		}
		c := Pay(r)
		again, err := ParsePayRequest(c.P1, c.P2, c.Data)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("pay request %+v does not round-trip: %+v, %v", r, again, err)
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	p := Profile{DeviceID: []byte("DEVICE01"), Certificate: []byte{0x30, 0x03, 0x02, 0x01, 0x01}, Currency: 978,
		Balance: 10, Uses: 2, Account: []byte("ACC"), AccountToken: bytes.Repeat([]byte{2}, TokenLen), PIN: "1234",
		PUK: "12345678", PINTryLimit: 3, BioTemplate: make([]byte, BioTemplateLen), BioThreshold: 9,
		Limits: Limits{MaxPayment: 1, MaxPending: 2, MaxOfflineCount: 3, MaxOfflineAge: time.Hour}, Tier: 2,
		Regions: []uint16{276}, Adjustments: []RegionAdjustment{{Region: 276, BasisPoints: -50}}, Time: time.Unix(1e9, 0)}
	body, err := p.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err != nil {
			return
		}
		p.DeviceID = []byte("DEVICE01")
		if _, err := p.Marshal(); err != nil {
			t.Fatalf("parsed profile does not encode: %v", err)
		}
	})
}

func FuzzOpenIssuerData(f *testing.F) {
	key := testKey(f)
	id := []byte("DEVICE01")
	ack, _ := Acknowledge(key, id, Acknowledgement{SyncTime: time.Unix(5, 0), ATCs: []uint32{1, 2}, Serials: []uint64{3}})
	tier := uint8(1)
	st := StateBlocked
	upd, _ := UpdateParameters(key, id, ParameterUpdate{Counter: 2, TopUp: 5, AddUses: 1, Tier: &tier, State: &st,
		Limits: &Limits{MaxPayment: 1}, Time: time.Unix(9, 0)})
	unb, _ := UnblockByHost(key, id, Unblock{Counter: 3, NewPIN: "1111"})
	rec, _ := Reclaim(key, id, SerialAt{Serial: 4, Time: time.Unix(7, 0)})
	for _, c := range [][]byte{ack.Data, upd.Data, unb.Data, rec.Data} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ins := range []INS{INSAcknowledge, INSUpdateParameters, INSResetRetryCounter, INSReclaim} {
			body, err := OpenIssuerData(&key.PublicKey, ins, id, data)
			if err != nil {
				// The body parsers also meet unsigned bytes in tests.
				body = data
			}
			_, _ = ParseAcknowledgement(body)
			_, _ = ParseParameterUpdate(body)
			_, _ = ParseUnblock(body)
			_, _ = ParseSerialAt(body)
		}
	})
}

func FuzzParseRequests(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	k := testKey(f)
	for _, c := range [][]byte{
		GenerateMedium(MediumRequest{Time: now, Expiry: now.Add(time.Minute), PayeeNonce: []byte("x")}).Data,
		GenerateToken(TokenRequest{Time: now, Expiry: now.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 2, MaxAmount: 9, Channels: 3}}).Data,
		TransferOut(TransferRequest{Amount: 5, Currency: 978, Payee: []byte("PAYEE001"), Time: now, Expiry: now.Add(time.Hour)}).Data,
		TransferIn([]byte{0x85, 0x05, 'S', 'V', 'L', '0', '1'}, now).Data,
		TransferShow(3, now).Data,
		ParseMedium([]byte{0x85, 0x05, 'S', 'V', 'L', '0', '1'}).Data,
		ChangePIN("1234", "5678").Data,
		UnblockPIN("12345678", "1111").Data,
		Initialise(&k.PublicKey, []byte("DEVICE01")).Data,
		(Limits{MaxPayment: 1, MaxPending: 2, MaxOfflineCount: 3, MaxOfflineAge: time.Minute}).Marshal(),
	} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := ParseMediumRequest(data); err == nil {
			if _, err := ParseMediumRequest(GenerateMedium(r).Data); err != nil {
				t.Fatalf("medium request does not round-trip: %v", err)
			}
		}
		if r, err := ParseTokenRequest(data); err == nil {
			again, err := ParseTokenRequest(GenerateToken(r).Data)
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("token request does not round-trip: %v", err)
			}
		}
		if r, err := ParseTransferRequest(data); err == nil {
			again, err := ParseTransferRequest(TransferOut(r).Data)
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("transfer request does not round-trip: %v", err)
			}
		}
		_, _ = ParseTransferImport(data)
		_, _ = ParseMediumData(data)
		_, _ = ParseSerialAt(data)
		_, _ = ParseChangePIN(data)
		_, _ = ParseUnblockPUK(data)
		_, _, _ = ParseInitialise(data)
		if l, err := ParseLimits(data); err == nil {
			if again, err := ParseLimits(l.Marshal()); err != nil || again != l {
				t.Fatalf("limits do not round-trip: %v", err)
			}
		}
	})
}

func FuzzParseGetDataList(f *testing.F) {
	f.Add(GetDataList(TagBalance, TagATC, TagPendingCount).Data)
	f.Add(GetDataList(TagState).Data)
	f.Add([]byte{0x5C, 0x04, 0xDF, 0x04, 0xDF, 0x04})
	f.Fuzz(func(t *testing.T, b []byte) {
		tags, err := ParseGetDataList(b)
		if err != nil {
			return
		}
		if len(tags) == 0 {
			t.Fatalf("tag list %X parsed to no tags", b)
		}
		if got := GetDataList(tags...).Data; !bytes.Equal(got, b) {
			t.Fatalf("tag list %X does not round-trip: %X", b, got)
		}
	})
}

func FuzzParseDataObjects(f *testing.F) {
	answer := append(DataObject(TagBalance, []byte{0, 0, 0, 0, 0, 0, 1, 0}), DataObject(TagATC, []byte{0, 0, 0, 7})...)
	f.Add(answer)
	f.Add(append(answer, 0x00))
	f.Fuzz(func(t *testing.T, b []byte) {
		tags := []tlv.Tag{TagBalance, TagATC}
		values, err := ParseDataObjects(tags, b)
		if err != nil {
			return
		}
		var back []byte
		for i, v := range values {
			back = append(back, DataObject(tags[i], v)...)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("data objects %X do not round-trip: %X", b, back)
		}
	})
}
