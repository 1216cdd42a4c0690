package spd

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/rigs/link"
)

var now = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func TestINSString(t *testing.T) {
	tests := []struct {
		ins  INS
		want string
	}{{INSSelect, "SELECT"}, {INSPay, "PAY"}, {INSReadPending, "READ PENDING"}, {INS(0x7E), "INS 7E"}}
	for _, tc := range tests {
		if got := tc.ins.String(); got != tc.want {
			t.Errorf("%02X: %q, want %q", byte(tc.ins), got, tc.want)
		}
	}
	if StateBlocked.String() != "blocked" || KindTransferIn.String() != "transfer-in" || ModeOffline.String() != "offline" {
		t.Errorf("names of states, kinds or modes changed")
	}
}

func TestPayRequestCodec(t *testing.T) {
	tests := []struct {
		name string
		req  PayRequest
		wire string // P1 P2 and the data field, hex
	}{
		{"minimal use", PayRequest{Kind: KindUse, Mode: ModeOffline, Currency: 978, Time: time.Unix(0x6A000000, 0).UTC(), Channel: medium.ChannelInStore},
			"0301 9F02080000000000000000 5F2A0203D2 9A046A000000 DF0E0101"},
		{"balance with everything", PayRequest{Kind: KindBalance, Mode: ModeOnline, Amount: 0x1234, Currency: 978,
			Time: time.Unix(0x6A000000, 0).UTC(), Payee: []byte("M1"), PayeeNonce: []byte{0xAA}, Region: 276, RequiredTier: 2,
			Token: bytes.Repeat([]byte{1}, 16), Channel: medium.ChannelOnline},
			"0100 9F02080000000000001234 5F2A0203D2 9A046A000000 DF09024D31 DF0701AA DF26020114 DF5E0102 DF031001010101010101010101010101010101 DF0E0102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Pay(tc.req)
			got := hexOf(append([]byte{c.P1, c.P2}, c.Data...))
			if got != stripSpaces(tc.wire) {
				t.Fatalf("encoded %s\nwant    %s", got, stripSpaces(tc.wire))
			}
			back, err := ParsePayRequest(c.P1, c.P2, c.Data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.req) {
				t.Fatalf("parsed %+v\nwant   %+v", back, tc.req)
			}
		})
	}
	bad := []struct {
		name   string
		p1, p2 byte
		data   []byte
		want   error
	}{
		{"kind 4", 4, 0, Pay(PayRequest{Currency: 1}).Data, ErrBadP1P2},
		{"mode 2", 1, 2, Pay(PayRequest{Currency: 1}).Data, ErrBadP1P2},
		{"missing time", 1, 0, []byte{0x9F, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, 0x5F, 0x2A, 0x02, 0x03, 0xD2}, ErrMalformed},
		{"short amount", 1, 0, []byte{0x9F, 0x02, 0x01, 1, 0x5F, 0x2A, 0x02, 0x03, 0xD2, 0x9A, 0x04, 0, 0, 0, 0}, ErrMalformed},
		{"duplicate", 1, 0, append(Pay(PayRequest{Currency: 1}).Data, 0x5F, 0x2A, 0x02, 0, 1), ErrMalformed},
		{"unknown tag", 1, 0, append(Pay(PayRequest{Currency: 1}).Data, 0xDF, 0x7F, 0x00), ErrMalformed},
		{"amount above 2^62", 1, 0, []byte{0x9F, 0x02, 0x08, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x5F, 0x2A, 0x02, 0x03, 0xD2, 0x9A, 0x04, 0, 0, 0, 0}, ErrMalformed},
		{"use with amount", 3, 0, Pay(PayRequest{Kind: KindUse, Amount: 5, Currency: 1}).Data, ErrMalformed},
		{"two channels", 1, 0, Pay(PayRequest{Currency: 1, Channel: 3}).Data, ErrMalformed},
	}
	for _, tc := range bad {
		if _, err := ParsePayRequest(tc.p1, tc.p2, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestHostOrders(t *testing.T) {
	key := testKey(t)
	id := []byte("DEVICE01")
	tier := uint8(2)
	st := StateBlocked
	upd := ParameterUpdate{Counter: 3, TopUp: 500, AddUses: 2, Limits: &Limits{MaxPayment: 9, MaxPending: 8, MaxOfflineCount: 7, MaxOfflineAge: time.Hour},
		Tier: &tier, State: &st, Time: now}
	c, err := UpdateParameters(key, id, upd)
	if err != nil {
		t.Fatal(err)
	}
	body, err := OpenIssuerData(&key.PublicKey, INSUpdateParameters, id, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseParameterUpdate(body)
	if err != nil || !reflect.DeepEqual(got, upd) {
		t.Fatalf("update %+v, %v", got, err)
	}
	// The signature binds the device and the command.
	if _, err := OpenIssuerData(&key.PublicKey, INSUpdateParameters, []byte("DEVICE02"), c.Data); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other device: %v", err)
	}
	if _, err := OpenIssuerData(&key.PublicKey, INSAcknowledge, id, c.Data); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other command: %v", err)
	}
	if _, err := OpenIssuerData(&key.PublicKey, INSUpdateParameters, id, c.Data[:len(c.Data)-2]); err == nil {
		t.Fatalf("truncated order accepted")
	}
	if _, err := OpenIssuerData(&key.PublicKey, INSUpdateParameters, id, body); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unsigned order: %v", err)
	}

	ack := Acknowledgement{SyncTime: now, ATCs: []uint32{1, 5, 9}, Serials: []uint64{2}}
	c, err = Acknowledge(key, id, ack)
	if err != nil {
		t.Fatal(err)
	}
	body, err = OpenIssuerData(&key.PublicKey, INSAcknowledge, id, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseAcknowledgement(body); err != nil || !reflect.DeepEqual(got, ack) {
		t.Fatalf("acknowledgement %+v, %v", got, err)
	}
	if _, err := Acknowledge(key, id, Acknowledgement{ATCs: make([]uint32, MaxAckEntries+1)}); err == nil {
		t.Fatalf("oversized acknowledgement built")
	}
}

func TestProfileCodec(t *testing.T) {
	p := Profile{DeviceID: []byte("DEVICE01"), Certificate: []byte{0x30, 0}, Currency: 978, Balance: 5, Uses: 1,
		Account: []byte("A"), AccountToken: bytes.Repeat([]byte{3}, TokenLen), PIN: "0000", PUK: "00000000", PINTryLimit: 3,
		Limits: Limits{MaxPayment: 1}, TierDiscounts: [4]uint16{0, 100, 200, 300}, Regions: []uint16{1, 2},
		Adjustments: []RegionAdjustment{{Region: 2, BasisPoints: -250}}, HostPublicKey: &testKey(t).PublicKey, Time: now}
	body, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseProfile(body)
	if err != nil {
		t.Fatal(err)
	}
	got.DeviceID = p.DeviceID
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("profile %+v\nwant    %+v", got, p)
	}
	for name, mutate := range map[string]func(*Profile){
		"short PIN":    func(p *Profile) { p.PIN = "12" },
		"letters":      func(p *Profile) { p.PUK = "abcdefgh" },
		"tries":        func(p *Profile) { p.PINTryLimit = 16 },
		"tier":         func(p *Profile) { p.Tier = 4 },
		"token":        func(p *Profile) { p.AccountToken = []byte{1} },
		"bio template": func(p *Profile) { p.BioTemplate = []byte{1, 2} },
	} {
		q := p
		mutate(&q)
		if _, err := q.Marshal(); err == nil {
			t.Errorf("%s: a bad profile encoded", name)
		}
	}
}

// cardScript answers a fixed list of exchanges, like a card would, behind
// a link that resolves 61xx and 6Cxx as every link does (link.Resolve).
type cardScript struct {
	t     *testing.T
	steps []struct{ cmd, resp string }
}

func (c *cardScript) Exchange(ctx context.Context, cmd []byte) ([]byte, error) {
	return link.Resolve(ctx, c.answer, cmd)
}

func (c *cardScript) answer(_ context.Context, cmd []byte) ([]byte, error) {
	if len(c.steps) == 0 {
		c.t.Fatalf("unexpected command %X", cmd)
	}
	s := c.steps[0]
	c.steps = c.steps[1:]
	if got := hexOf(cmd); got != stripSpaces(s.cmd) {
		c.t.Fatalf("command %s, want %s", got, stripSpaces(s.cmd))
	}
	return unhex(c.t, s.resp), nil
}
func (c *cardScript) String() string { return "script" }
func (c *cardScript) Close() error   { return nil }

var _ link.Link = (*cardScript)(nil)

func TestClientChainingAndErrors(t *testing.T) {
	card := &cardScript{t: t, steps: []struct{ cmd, resp string }{
		// GET DATA DF04 answered in two parts (61xx), then 6Cxx handling.
		{"00CADF0400", "DF0408 6108"},
		{"00C0000008", "0000000000000064 9000"},
		{"00CADF0600", "6C07"},
		{"00CADF0607", "DF060400000003 9000"},
		{"0020008004 31323334", "63C1"},
		{"0020008004 31323334", "6983"},
	}}
	c := NewClient(card)
	ctx := context.Background()
	if b, err := c.Balance(ctx); err != nil || b != 100 {
		t.Fatalf("balance %d, %v", b, err)
	}
	if u, err := c.Uses(ctx); err != nil || u != 3 {
		t.Fatalf("uses %d, %v", u, err)
	}
	err := c.VerifyPIN(ctx, "1234")
	var swe *apdu.SWError
	if !errors.As(err, &swe) || swe.SW != apdu.VerifyFailed(1) || !errors.Is(err, &apdu.SWError{SW: apdu.SWVerifyFailed}) {
		t.Fatalf("wrong PIN: %v", err)
	}
	if err := c.VerifyPIN(ctx, "1234"); !errors.Is(err, apdu.ErrPINBlocked) {
		t.Fatalf("blocked PIN: %v", err)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, x := range b {
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

func unhex(t *testing.T, s string) []byte {
	s = stripSpaces(s)
	out := make([]byte, len(s)/2)
	for i := range out {
		var v byte
		for _, c := range s[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			case c >= 'A' && c <= 'F':
				v |= byte(c - 'A' + 10)
			default:
				t.Fatalf("bad hex %q", s)
			}
		}
		out[i] = v
	}
	return out
}
