package device

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/merchant"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/reference/vectors"
)

// The known-answer vectors of SPEC.md Annex A are made here, by running
// the reference device (seeded: fixed key, fixed random values, RFC 6979
// signatures) through the host-side builders of reference/spd. TestVectors
// replays the committed file and wants every response byte for byte;
// -update rewrites the file, deliberately, after a layout change.
var updateVectors = flag.Bool("update", false, "rewrite reference/vectors/vectors.json from the reference device")

const vectorFile = "../vectors/vectors.json"

var (
	vectorSeed   = []byte("SPDLAB known-answer vector device")
	peerSeed     = []byte("SPDLAB known-answer vector peer")
	vectorID     = []byte{0x5D, 0x1A, 0xB0, 0xFF, 0x00, 0x00, 0x00, 0x01}
	peerID       = []byte{0x5D, 0x1A, 0xB0, 0xFF, 0x00, 0x00, 0x00, 0x02}
	vectorClock  = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	vectorBio    = []byte{12, 40, 33, 90, 120, 7, 66, 201, 150, 31, 88, 19, 240, 5, 77, 133}
	vectorAcct   = []byte("DE89370400440532013000")
	vectorPIN    = "2580"
	vectorPUK    = "13572468"
	vectorChalng = []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F}
)

// vectorKey derives a fixed P-256 key from a label.
func vectorKey(label string) *ecdsa.PrivateKey {
	for i := 0; ; i++ {
		h := sha256.Sum256([]byte(label + strconv.Itoa(i)))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h[:]); err == nil {
			return k
		}
	}
}

func at(d time.Duration) time.Time { return vectorClock.Add(d) }

// withHostChecks requires host assertions of an SMS code and the identity
// question from 10.00 on (ICS feature host-assertion, SPEC.md 4.10).
func withHostChecks(p *spd.Profile) {
	p.HostChecks, p.HostThreshold = spd.CheckSMS|spd.CheckIdentity, 10_00
}

// profileOption adds an optional feature's data to the vector profile.
type profileOption func(*spd.Profile)

// withBiometric enrols the biometric template (ICS feature biometric).
func withBiometric(p *spd.Profile) { p.BioTemplate, p.BioThreshold = vectorBio, 400 }

// withLocation sets allowed regions and an adjustment (ICS feature location).
func withLocation(p *spd.Profile) {
	p.Regions, p.Adjustments = []uint16{276, 250}, []spd.RegionAdjustment{{Region: 250, BasisPoints: 500}}
}

// vectorProfile is the profile of the vector devices: nothing of an
// optional feature unless an option adds it, and marked a test sample so
// that a lab can return it to blank (TEST ERASE).
func vectorProfile(id []byte, pub *ecdsa.PublicKey, opts ...profileOption) spd.Profile {
	token := bytes.Repeat([]byte{0xA0}, spd.TokenLen)
	copy(token[spd.TokenLen-8:], id)
	p := spd.Profile{
		DeviceID: id, DevicePublicKey: pub, Currency: 978, Balance: 100_00, Uses: 10,
		Account: vectorAcct, AccountToken: token, PIN: vectorPIN, PUK: vectorPUK, PINTryLimit: 3,
		Limits:        spd.Limits{MaxPayment: 50_00, MaxPending: 30_00, MaxOfflineCount: 5, MaxOfflineAge: 72 * time.Hour},
		TierDiscounts: [4]uint16{0, 1000, 2000, 3000},
		Time:          vectorClock,
		TestSample:    true,
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

// exchange sends raw to d and, unless rawStep, follows 61xx with GET
// RESPONSE, returning the whole response and the final status word.
func exchange(d *Device, raw []byte, rawStep bool) []byte {
	resp := d.Process(raw)
	if rawStep || len(resp) < 2 {
		return resp
	}
	data := append([]byte(nil), resp[:len(resp)-2]...)
	for i := 0; resp[len(resp)-2] == 0x61 && i < 64; i++ {
		resp = d.Process([]byte{0x00, 0xC0, 0x00, 0x00, resp[len(resp)-1]})
		if len(resp) < 2 {
			return resp
		}
		data = append(data, resp[:len(resp)-2]...)
	}
	return append(data, resp[len(resp)-2:]...)
}

// gen records one sequence while running it.
type gen struct {
	t     testing.TB
	env   *vectorEnv
	d     *Device
	steps []vectors.Step
}

type vectorEnv struct {
	ca, host *ecdsa.PrivateKey
	issuer   *issuer.Issuer
	pub      *ecdsa.PublicKey // the vector device's key
	peer     vectors.Peer
}

// v declares a variable part of a response.
func v(path, check string) vectors.Variable { return vectors.Variable{Path: path, Check: check} }

func (g *gen) send(name string, cmd apdu.Command, vars ...vectors.Variable) []byte {
	g.t.Helper()
	raw, err := cmd.Bytes()
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	return g.sendBytes(name, raw, false, vars...)
}

func (g *gen) sendBytes(name string, raw []byte, rawStep bool, vars ...vectors.Variable) []byte {
	g.t.Helper()
	resp := exchange(g.d, raw, rawStep)
	if len(resp) < 2 {
		g.t.Fatalf("%s: no answer", name)
	}
	for i := range vars {
		off, n, err := locate(resp[:len(resp)-2], vars[i])
		if err != nil {
			g.t.Fatalf("%s: variable %s: %v", name, vars[i].Path, err)
		}
		vars[i].Offset, vars[i].Length = off, n
	}
	g.steps = append(g.steps, vectors.Step{Name: name, Command: hexs(raw), Response: hexs(resp), Raw: rawStep, Variable: vars})
	return resp
}

func hexs(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

// locate finds the byte range of a variable part in response data.
func locate(data []byte, vr vectors.Variable) (int, int, error) {
	start, end := 0, len(data)
	if vr.Path != "" {
		for _, want := range strings.Split(vr.Path, "/") {
			found := false
			for p := start; p < end; {
				tagLen := 1
				if data[p]&0x1F == 0x1F {
					for tagLen = 2; data[p+tagLen-1]&0x80 != 0; tagLen++ {
					}
				}
				n, lenLen := int(data[p+tagLen]), 1
				if n > 0x80 {
					lenLen = 1 + n&0x7F
					n = 0
					for _, b := range data[p+tagLen+1 : p+tagLen+lenLen] {
						n = n<<8 | int(b)
					}
				}
				vs := p + tagLen + lenLen
				if hexs(data[p:p+tagLen]) == want {
					start, end, found = vs, vs+n, true
					break
				}
				p = vs + n
			}
			if !found {
				return 0, 0, fmt.Errorf("tag %s not found", want)
			}
		}
	}
	if vr.To > 0 {
		end = start + vr.To
	}
	start += vr.From
	return start, end - start, nil
}

// prefix takes a blank device to personalised (and active).
func (g *gen) prefix(activate bool, opts ...profileOption) {
	g.send("SELECT (blank)", spd.Select())
	resp := g.send("INITIALISE", spd.Initialise(&g.env.ca.PublicKey, vectorID), v("DF24", "device-key"))
	if _, err := spd.ParseInitialiseResponse(resp[:len(resp)-2]); err != nil {
		g.t.Fatal(err)
	}
	g.personalise(opts...)
	if activate {
		g.send("VERIFY PIN", spd.VerifyPIN(vectorPIN))
		g.send("ACTIVATE", spd.Activate())
	}
}

func (g *gen) personalise(opts ...profileOption) {
	script, err := g.env.issuer.PersonalisationScript(vectorProfile(vectorID, g.env.pub, opts...))
	if err != nil {
		g.t.Fatal(err)
	}
	g.send("PERSONALISE", script[0])
	g.steps[len(g.steps)-1].Substitute = "personalise"
}

func (g *gen) host(build func(*ecdsa.PrivateKey, []byte) (apdu.Command, error)) apdu.Command {
	cmd, err := build(g.env.host, vectorID)
	if err != nil {
		g.t.Fatal(err)
	}
	return cmd
}

// Merchant order codes of the parse-merchant and stored-media vectors
// (EMV QRCPS MPM, CRC included).
var (
	vectorMerchantCode = merchantCodeCRC("000201010212" + "2627" + "0006spdlab" + "0113ACC-0001-9F2C" + "52045814" + "5303156" +
		"540536.50" + "5802CN" + "5917SPDLAB NOODLE BAR" + "6008SHANGHAI" + "6230" + "0119ORDER-20261126-0042" + "0703T01" +
		"6421" + "0002ZH" + "0105实验室面馆" + "0202上海")
	vectorStaticCode = merchantCodeCRC("000201010211" + "2620" + "0006spdlab" + "0106SHOP-7" + "52045411" + "5303978" +
		"5802DE" + "5913Bäckerei Löwe" + "6007München")
)

func merchantCodeCRC(body string) string {
	body += "6304"
	return body + fmt.Sprintf("%04X", merchant.Checksum(body))
}

var (
	sigMedium = v("9F45", "signature-medium")
	sigRecord = v("E1/9F45", "signature-record")
	// ownNonce is the payment nonce a device draws for a PAY without 9F37
	// (SPD-PAY-8).
	ownNonce  = v("E1/9F37", "random")
	certInMed = v("61/DF11", "certificate")
	// The parts of a payment code (SPEC.md 4.9) a device makes itself:
	// the signature of the result medium inside DF60, the pending
	// record's signature, the certificate.
	codeMedium = v("E5/DF60", "signature-envelope")
	codeRecord = v("E5/E1/9F45", "signature-record")
	codeNonce  = v("E5/E1/9F37", "random")
	codeCert   = v("E5/DF11", "certificate")
	// The parts of an exchange result (SPEC.md 4.11) a device makes.
	exchMedium = v("E6/DF60", "signature-envelope")
	exchRecord = v("E6/E1/9F45", "signature-record")
	exchNonce  = v("E6/E1/9F37", "random")
)

// vectorNonce is a terminal's payment nonce (9F37) numbered n.
func vectorNonce(n byte) []byte {
	b := make([]byte, 16)
	for i := range b {
		b[i] = n<<4 | byte(i)
	}
	return b
}

// seal signs a host assertion (SPEC.md 4.10) with key for the device id.
func (g *gen) seal(key *ecdsa.PrivateKey, id []byte, a spd.Assertion) []byte {
	g.t.Helper()
	v, err := spd.SealAssertion(key, id, a)
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

func pay(kind spd.PaymentKind, mode spd.Mode, amount int64, when time.Duration, region uint16) spd.PayRequest {
	return spd.PayRequest{Kind: kind, Mode: mode, Amount: amount, Currency: 978, Time: at(when), Region: region}
}

func cmdOf(cla, ins, p1, p2 byte, data []byte, ne int) apdu.Command {
	return apdu.Command{CLA: cla, INS: ins, P1: p1, P2: p2, Data: data, Ne: ne}
}

type sequenceDef struct {
	name, title string
	reqs        []string
	run         func(g *gen)
}

var getDataTags = []uint32{0xDF04, 0xDF06, 0x9F36, 0xDF05, 0xDF22, 0xDF50, 0x5F2A, 0xDF03, 0xDF5A, 0xDF23, 0xDF2C, 0xDF62}

func getData(tag uint32) apdu.Command { return spd.GetData(tlv.Tag(tag)) }

func (g *gen) hostUpdate(u spd.ParameterUpdate) apdu.Command {
	return g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) { return spd.UpdateParameters(k, id, u) })
}

// sequenceDefs are the vector sequences, each run from blank. Each needs
// only the optional features (SPEC.md section 13) its name says, so that a
// device runs every sequence of the features it declares.
var sequenceDefs = []sequenceDef{
	{"application", "SELECT, GET DATA, INITIALISE, PERSONALISE, GET RESPONSE, ACTIVATE and UPDATE PARAMETERS through the life cycle",
		[]string{"SPD-APP-1", "SPD-APP-5", "SPD-LC-1", "SPD-LC-2", "SPD-KEY-1", "SPD-KEY-2", "SPD-KEY-3", "SPD-UPD-1"},
		func(g *gen) {
			g.send("SELECT (blank)", spd.Select())
			g.send("GET DATA DF20 (blank)", getData(0xDF20))
			g.send("GET DATA DF02 before INITIALISE", getData(0xDF02))
			g.send("INITIALISE", spd.Initialise(&g.env.ca.PublicKey, vectorID), v("DF24", "device-key"))
			g.send("GET DATA DF02", getData(0xDF02))
			g.send("GET DATA DF24", getData(0xDF24), v("DF24", "device-key"))
			g.personalise()
			g.send("SELECT (personalised)", spd.Select())
			g.send("GET DATA DF11", getData(0xDF11), v("DF11", "certificate"))
			for _, tag := range getDataTags {
				g.send(fmt.Sprintf("GET DATA %04X", tag), getData(tag))
			}
			g.send("GET DATA 9F7F (unknown)", getData(0x9F7F))
			r := g.sendBytes("SELECT with Le 05", mustBytes(g.t, cmdOf(0x00, 0xA4, 0x04, 0x00, spd.AID, 5)), true)
			g.sendBytes("GET RESPONSE", mustBytes(g.t, spd.GetResponse(int(r[len(r)-1]))), true)
			g.sendBytes("GET RESPONSE with nothing pending", mustBytes(g.t, spd.GetResponse(apdu.MaxShortLe)), true)
			g.send("VERIFY PIN", spd.VerifyPIN(vectorPIN))
			g.send("ACTIVATE", spd.Activate())
			g.send("SELECT (active)", spd.Select())
			blocked, active, terminated := spd.StateBlocked, spd.StateActive, spd.StateTerminated
			g.send("UPDATE PARAMETERS: block", g.hostUpdate(spd.ParameterUpdate{Counter: 1, State: &blocked, Time: at(time.Hour)}))
			g.send("SELECT (blocked)", spd.Select())
			tier := uint8(1)
			g.send("UPDATE PARAMETERS: unblock, top up, uses, tier, limits", g.hostUpdate(spd.ParameterUpdate{Counter: 2, State: &active,
				TopUp: 25_00, AddUses: 5, Tier: &tier, Time: at(2 * time.Hour),
				Limits: &spd.Limits{MaxPayment: 80_00, MaxPending: 40_00, MaxOfflineCount: 8, MaxOfflineAge: 48 * time.Hour}}))
			for _, tag := range []uint32{0xDF04, 0xDF06, 0xDF5A, 0xDF50, 0xDF2C, 0xDF62} {
				g.send(fmt.Sprintf("GET DATA %04X after the update", tag), getData(tag))
			}
			g.send("UPDATE PARAMETERS: replayed counter", g.hostUpdate(spd.ParameterUpdate{Counter: 2, TopUp: 1}))
			g.send("UPDATE PARAMETERS: terminate", g.hostUpdate(spd.ParameterUpdate{Counter: 3, State: &terminated}))
			g.send("SELECT (terminated)", spd.Select())
		}},
	{"test-erase", "TEST ERASE of a test sample",
		[]string{"SPD-TST-1", "SPD-TST-2"},
		func(g *gen) {
			g.prefix(true)
			g.send("GET DATA DF2F", getData(0xDF2F))
			replayed, err := spd.TestErase(g.env.ca, vectorID, 0)
			if err != nil {
				g.t.Fatal(err)
			}
			g.send("TEST ERASE with counter 0", replayed)
			erase, err := spd.TestErase(g.env.ca, vectorID, 1)
			if err != nil {
				g.t.Fatal(err)
			}
			g.send("TEST ERASE", erase)
			g.send("GET DATA DF2F after TEST ERASE", getData(0xDF2F))
			g.send("SELECT (blank again)", spd.Select())
			g.send("TEST ERASE of a blank device", erase)
		}},
	{"verification", "VERIFY PIN, CHANGE REFERENCE DATA, RESET RETRY COUNTER (PUK and host)",
		[]string{"SPD-PIN-1", "SPD-PIN-2", "SPD-PIN-3"},
		func(g *gen) {
			g.prefix(false)
			g.send("VERIFY PIN status", spd.PINStatus())
			g.send("VERIFY wrong PIN", spd.VerifyPIN("0000"))
			g.send("VERIFY PIN status after a miss", spd.PINStatus())
			g.send("VERIFY PIN", spd.VerifyPIN(vectorPIN))
			g.send("VERIFY PIN status when verified", spd.PINStatus())
			g.send("CHANGE REFERENCE DATA", spd.ChangePIN(vectorPIN, "4711"))
			g.send("VERIFY wrong PIN", spd.VerifyPIN("0000"))
			g.send("VERIFY wrong PIN again", spd.VerifyPIN("1111"))
			g.send("RESET RETRY COUNTER with the PUK", spd.UnblockPIN(vectorPUK, vectorPIN))
			g.send("GET DATA DF23", getData(0xDF23))
			g.send("RESET RETRY COUNTER by the host", g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.UnblockByHost(k, id, spd.Unblock{Counter: 1, NewPIN: "8642"})
			}))
			g.send("GET DATA DF2C", getData(0xDF2C))
			g.send("VERIFY the host's new PIN", spd.VerifyPIN("8642"))
			g.send("VERIFY PIN of 3 digits", spd.VerifyPIN("864"))
			g.send("ACTIVATE with a data field", cmdOf(0x80, 0x54, 0x00, 0x00, []byte{0x00}, 0))
			g.send("SELECT (ends the verification)", spd.Select())
			g.send("ACTIVATE not verified", spd.Activate())
		}},
	{"biometric", "VERIFY biometric (match on device)",
		[]string{"SPD-BIO-1", "SPD-BIO-2"},
		func(g *gen) {
			g.prefix(false, withBiometric)
			g.send("VERIFY biometric status", cmdOf(0x00, 0x20, 0x00, 0x81, nil, 0))
			far := bytes.Clone(vectorBio)
			far[0] += 21 // distance 441, over the threshold 400
			g.send("VERIFY biometric, no match", spd.VerifyBiometric(far))
			near := bytes.Clone(vectorBio)
			near[0] += 20 // distance 400: a match
			g.send("VERIFY biometric, match at the threshold", spd.VerifyBiometric(near))
			g.send("VERIFY biometric status when verified", cmdOf(0x00, 0x20, 0x00, 0x81, nil, 0))
			g.send("VERIFY biometric of 15 bytes", spd.VerifyBiometric(vectorBio[:15]))
			g.send("ACTIVATE", spd.Activate())
		}},
	{"authentication", "GET CHALLENGE and INTERNAL AUTHENTICATE",
		[]string{"SPD-KEY-4", "SPD-VER-3"},
		func(g *gen) {
			g.prefix(false)
			g.send("GET CHALLENGE", spd.GetChallenge(), v("", "random"))
			g.send("GET CHALLENGE with Le 08", cmdOf(0x00, 0x84, 0x00, 0x00, nil, 8))
			g.send("INTERNAL AUTHENTICATE", spd.InternalAuthenticate(vectorChalng), v("", "signature-authenticate"))
			g.send("INTERNAL AUTHENTICATE with 65 bytes", spd.InternalAuthenticate(make([]byte, 65)))
			g.send("GET DATA DF11", getData(0xDF11), v("DF11", "certificate"))
		}},
	{"payments", "PAY from the balance online with payee, order reference and terminal nonce, its declines and refusals, READ PENDING and ACKNOWLEDGE",
		[]string{"SPD-PAY-1", "SPD-PAY-4", "SPD-PAY-5", "SPD-PAY-6", "SPD-PAY-7", "SPD-PAY-8", "SPD-LED-1", "SPD-LED-2", "SPD-LED-4", "SPD-PIN-1"},
		func(g *gen) {
			g.prefix(true)
			first := pay(spd.KindBalance, spd.ModeOnline, 12_00, 10*time.Minute, 276)
			first.Payee, first.PayeeNonce = []byte("MERCHANT-0042"), []byte("ORDER-7781")
			first.TerminalNonce = []byte{0x1F, 0x2E, 0x3D, 0x4C, 0x5B, 0x6A, 0x79, 0x88, 0x97, 0xA6, 0xB5, 0xC4, 0xD3, 0xE2, 0xF1, 0x00}
			g.send("PAY balance online with payee, order reference and terminal nonce", spd.Pay(first), sigMedium)
			g.send("PAY balance online", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 40_00, 11*time.Minute, 276)), sigMedium)
			g.send("PAY declined: over the per-payment limit", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 60_00, 14*time.Minute, 276)), sigMedium)
			g.send("PAY declined: insufficient balance", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 50_00, 15*time.Minute, 276)), sigMedium)
			g.send("READ PENDING 0", spd.ReadPending(0), sigRecord)
			g.send("READ PENDING 1 (the device's own nonce)", spd.ReadPending(1), ownNonce, sigRecord)
			g.send("READ PENDING beyond the ledger", spd.ReadPending(2))
			g.send("READ PENDING with a data field", cmdOf(0x80, 0x62, 0x00, 0x00, []byte{0x00}, apdu.MaxShortLe))
			g.send("GET DATA DF05", getData(0xDF05))
			g.send("GET DATA DF22", getData(0xDF22))
			g.send("ACKNOWLEDGE ATC 1", g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: at(time.Hour), ATCs: []uint32{1}})
			}))
			g.send("GET DATA DF22 after ACKNOWLEDGE", getData(0xDF22))
			g.send("GET DATA DF62 after ACKNOWLEDGE", getData(0xDF62))
			g.send("READ PENDING 0 after ACKNOWLEDGE", spd.ReadPending(0), ownNonce, sigRecord)
			g.send("PAY with P1 04", cmdOf(0x80, 0x60, 0x04, 0x00, spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 1_00, time.Hour, 276)).Data, apdu.MaxShortLe))
			wrongCur := pay(spd.KindBalance, spd.ModeOnline, 1_00, time.Hour, 276)
			wrongCur.Currency = 840
			g.send("SELECT (ends the verification)", spd.Select())
			g.send("PAY in another currency, not verified", spd.Pay(wrongCur))
			g.send("PAY not verified", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 1_00, time.Hour, 276)))
		}},
	{"payment-kinds", "PAY of the account and of a use, and offline",
		[]string{"SPD-PAY-2", "SPD-PAY-3", "SPD-LED-3", "SPD-LED-2"},
		func(g *gen) {
			g.prefix(true)
			acct := pay(spd.KindAccount, spd.ModeOnline, 5_00, 12*time.Minute, 276)
			acct.Token = vectorProfile(vectorID, nil).AccountToken
			g.send("PAY account online under the account token", spd.Pay(acct), sigMedium)
			g.send("PAY use offline", spd.Pay(pay(spd.KindUse, spd.ModeOffline, 0, 13*time.Minute, 276)), sigMedium)
			g.send("PAY balance offline", spd.Pay(pay(spd.KindBalance, spd.ModeOffline, 25_00, 14*time.Minute, 276)), sigMedium)
			g.send("PAY declined: over the offline pending limit", spd.Pay(pay(spd.KindBalance, spd.ModeOffline, 5_01, 15*time.Minute, 276)), sigMedium)
			g.send("PAY use with an amount", cmdOf(0x80, 0x60, 0x03, 0x00, spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 5, 16*time.Minute, 276)).Data, apdu.MaxShortLe))
			for i := 0; i < 3; i++ {
				g.send(fmt.Sprintf("READ PENDING %d", i), spd.ReadPending(i), ownNonce, sigRecord)
			}
			g.send("GET DATA DF05", getData(0xDF05))
			g.send("GET DATA DF06", getData(0xDF06))
		}},
	{"location", "PAY with a region adjustment and the location and attribute declines",
		[]string{"SPD-ADJ-1", "SPD-VER-1", "SPD-VER-2"},
		func(g *gen) {
			g.prefix(true, withLocation)
			g.send("PAY balance abroad (+5%)", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 10_00, 11*time.Minute, 250)), sigMedium)
			g.send("PAY declined: location not allowed", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 1_00, 15*time.Minute, 840)), sigMedium)
			g.send("PAY declined: no location", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 1_00, 15*time.Minute, 0)), sigMedium)
			tier := pay(spd.KindBalance, spd.ModeOnline, 1_00, 16*time.Minute, 276)
			tier.RequiredTier = 2
			g.send("PAY declined: tier too low", spd.Pay(tier), sigMedium)
			g.send("READ PENDING 0", spd.ReadPending(0), ownNonce, sigRecord)
		}},
	{"media", "GENERATE MEDIUM",
		[]string{"SPD-MED-1", "SPD-MED-3"},
		func(g *gen) {
			g.prefix(true)
			g.send("GENERATE MEDIUM with expiry and payee nonce", spd.GenerateMedium(spd.MediumRequest{Time: at(5 * time.Minute),
				Expiry: at(15 * time.Minute), PayeeNonce: []byte("NONCE-1234")}), certInMed, sigMedium)
			g.send("GENERATE MEDIUM with the default expiry", spd.GenerateMedium(spd.MediumRequest{Time: at(6 * time.Minute)}), certInMed, sigMedium)
			g.send("GENERATE MEDIUM with expiry not after time", spd.GenerateMedium(spd.MediumRequest{Time: at(8 * time.Minute), Expiry: at(8 * time.Minute)}))
			g.send("SELECT (ends the verification)", spd.Select())
			g.send("GENERATE MEDIUM with expiry not after time, not verified", spd.GenerateMedium(spd.MediumRequest{Time: at(9 * time.Minute), Expiry: at(8 * time.Minute)}))
			g.send("GENERATE MEDIUM not verified", spd.GenerateMedium(spd.MediumRequest{Time: at(9 * time.Minute)}))
		}},
	{"tokens", "GENERATE TOKEN and PAY with a channel",
		[]string{"SPD-TOK-1"},
		func(g *gen) {
			g.prefix(true)
			g.send("GENERATE TOKEN", spd.GenerateToken(spd.TokenRequest{Time: at(7 * time.Minute), Expiry: at(24 * time.Hour),
				Controls: medium.TokenControls{MaxTransactions: 3, MaxAmount: 20_00, Channels: medium.ChannelInStore | medium.ChannelOnline}}),
				vectors.Variable{Path: "61/DF03", To: 12, Check: "random"}, certInMed, sigMedium)
			g.send("GENERATE TOKEN with channels 00", spd.GenerateToken(spd.TokenRequest{Time: at(8 * time.Minute), Expiry: at(time.Hour),
				Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1_00}}))
			ch := pay(spd.KindBalance, spd.ModeOnline, 2_00, 9*time.Minute, 276)
			ch.Channel = medium.ChannelOnline
			g.send("PAY under the account token, channel online", spd.Pay(ch), sigMedium)
			ch.Channel = 3
			g.send("PAY with channel 03", spd.Pay(ch))
		}},
	{"parse-medium", "PARSE MEDIUM of another device's media",
		[]string{"SPD-MED-4", "SPD-MED-6"},
		func(g *gen) {
			g.prefix(false)
			peerSV, _ := hex.DecodeString(g.env.peer.StoredValue)
			g.send("PARSE MEDIUM of the peer's stored-value medium", spd.ParseMedium(peerSV))
			peerXfer, _ := hex.DecodeString(g.env.peer.Transfer)
			g.send("PARSE MEDIUM of the peer's transfer medium", spd.ParseMedium(peerXfer))
			peerRes, _ := hex.DecodeString(g.env.peer.PaymentResult)
			g.send("PARSE MEDIUM of a payment result (no certificate)", spd.ParseMedium(peerRes))
			tampered := bytes.Clone(peerSV)
			i := bytes.Index(tampered, []byte{0xDF, 0x04, 0x08})
			tampered[i+10] ^= 0x01
			g.send("PARSE MEDIUM of a tampered medium", spd.ParseMedium(tampered))
			g.send("PARSE MEDIUM of an envelope that does not parse", spd.ParseMedium([]byte{0x85, 0x01, 0x00}))
		}},
	{"parse-merchant", "PARSE MEDIUM P1 01 of merchant order codes (EMV QRCPS merchant-presented mode)",
		[]string{"SPD-MPM-1"},
		func(g *gen) {
			g.prefix(false)
			g.send("PARSE MEDIUM P1 01 of a dynamic code with amount, bill number and names", spd.ParseMerchantCode(vectorMerchantCode))
			g.send("PARSE MEDIUM P1 01 of a static code without amount", spd.ParseMerchantCode(vectorStaticCode))
			g.send("PARSE MEDIUM P1 01 with a wrong CRC", spd.ParseMerchantCode(vectorMerchantCode[:len(vectorMerchantCode)-4]+"0000"))
			g.send("PARSE MEDIUM P1 01 of a medium envelope", cmdOf(0x80, 0x72, 0x01, 0x00, spd.ParseMedium([]byte{0x85, 0x01, 0x00}).Data, apdu.MaxShortLe))
			g.send("PARSE MEDIUM P1 02", cmdOf(0x80, 0x72, 0x02, 0x00, spd.ParseMerchantCode(vectorStaticCode).Data, apdu.MaxShortLe))
		}},
	{"stored-media", "STORE MEDIUM, LIST MEDIA and SHOW MEDIUM",
		[]string{"SPD-STM-1", "SPD-STM-2", "SPD-STM-3"},
		func(g *gen) {
			g.prefix(false)
			g.send("LIST MEDIA (none)", spd.ListMedia())
			store := func(o spd.StoreOrder) apdu.Command {
				return g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) { return spd.StoreMedium(k, id, o) })
			}
			peerSV, _ := hex.DecodeString(g.env.peer.StoredValue)
			g.send("STORE MEDIUM of the peer's stored-value medium", store(spd.StoreOrder{Counter: 1, Label: "voucher",
				Format: spd.FormatEnvelope, Content: peerSV, Expiry: at(2 * time.Hour), Time: at(time.Minute)}))
			g.send("STORE MEDIUM of a merchant order code", store(spd.StoreOrder{Counter: 2, Label: "canteen",
				Format: spd.FormatMerchantCode, Content: []byte(vectorStaticCode), Expiry: at(48 * time.Hour), Time: at(time.Minute)}))
			g.send("STORE MEDIUM with a replayed counter", store(spd.StoreOrder{Counter: 2, Label: "again",
				Format: spd.FormatMerchantCode, Content: []byte(vectorStaticCode), Expiry: at(48 * time.Hour), Time: at(time.Minute)}))
			g.send("LIST MEDIA", spd.ListMedia())
			g.send("SHOW MEDIUM voucher", spd.ShowMedium("voucher", at(time.Hour)))
			g.send("SHOW MEDIUM voucher after its expiry", spd.ShowMedium("voucher", at(3*time.Hour)))
			g.send("SHOW MEDIUM of an unknown label", spd.ShowMedium("none", at(time.Hour)))
			g.send("GET DATA DF2C", getData(0xDF2C))
		}},
	{"transfers", "TRANSFER (out and show), TRANSFER IN, RECLAIM, their pending records and ACKNOWLEDGE of a serial",
		[]string{"SPD-XFR-1", "SPD-XFR-2", "SPD-XFR-4", "SPD-LED-2", "SPD-LED-4", "SPD-MED-6"},
		func(g *gen) {
			g.prefix(true)
			g.send("TRANSFER out to the peer", spd.TransferOut(spd.TransferRequest{Amount: 12_00, Currency: 978, Payee: peerID,
				Time: at(20 * time.Minute), Expiry: at(2 * time.Hour)}), certInMed, sigMedium)
			g.send("TRANSFER show", spd.TransferShow(1, at(21*time.Minute)), certInMed, sigMedium)
			in, _ := hex.DecodeString(g.env.peer.Transfer)
			g.send("TRANSFER IN the peer's transfer medium", spd.TransferIn(in, at(30*time.Minute)), sigMedium)
			g.send("TRANSFER IN the same medium again", spd.TransferIn(in, at(31*time.Minute)))
			g.send("READ PENDING 0 (transfer out)", spd.ReadPending(0), sigRecord)
			g.send("READ PENDING 1 (transfer in)", spd.ReadPending(1), sigRecord)
			reclaim := g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Reclaim(k, id, spd.SerialAt{Serial: 1, Time: at(3 * time.Hour)})
			})
			g.send("RECLAIM after the expiry", reclaim, sigMedium)
			g.send("RECLAIM again", reclaim)
			g.send("READ PENDING 2 (reclaim)", spd.ReadPending(2), sigRecord)
			g.send("ACKNOWLEDGE the records and close serial 1", g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: at(4 * time.Hour), ATCs: []uint32{1, 2, 3}, Serials: []uint64{1}})
			}))
			g.send("GET DATA DF22 after ACKNOWLEDGE", getData(0xDF22))
			g.send("GET DATA DF04", getData(0xDF04))
			g.send("TRANSFER show of a closed serial", spd.TransferShow(1, at(5*time.Hour)))
			g.send("TRANSFER to the device itself", spd.TransferOut(spd.TransferRequest{Amount: 1_00, Currency: 978, Payee: vectorID,
				Time: at(5 * time.Hour), Expiry: at(6 * time.Hour)}))
			g.send("TRANSFER over the balance", spd.TransferOut(spd.TransferRequest{Amount: 200_00, Currency: 978, Payee: peerID,
				Time: at(5 * time.Hour), Expiry: at(6 * time.Hour)}))
			g.send("TRANSFER IN of a medium that does not parse", spd.TransferIn([]byte{0x85, 0x01, 0x00}, at(5*time.Hour)))
			g.send("RECLAIM of an unknown serial", g.host(func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.Reclaim(k, id, spd.SerialAt{Serial: 9, Time: at(6 * time.Hour)})
			}))
		}},
	{"present-code", "PRESENT CODE: payment codes bound to the merchant's challenge or to their time window, a decline, the refusals, and the pending record a code carries as READ PENDING answers it",
		[]string{"SPD-PRC-1", "SPD-PRC-2", "SPD-PAY-4", "SPD-PAY-8", "SPD-LED-1", "SPD-LED-2", "SPD-LED-3", "SPD-PIN-1"},
		func(g *gen) {
			g.prefix(true)
			first := spd.PresentRequest{Kind: spd.KindBalance, Amount: 8_40, Currency: 978, Time: at(10 * time.Minute),
				Payee: []byte("MERCHANT-0042"), Challenge: []byte("CHALLENGE-5521"), Nonce: vectorNonce(1), Expiry: at(12 * time.Minute)}
			g.send("PRESENT CODE with the merchant's challenge and payee, a life of 120 s", spd.PresentCode(first), codeMedium, codeRecord, codeCert)
			g.send("PRESENT CODE bound to its time window (no challenge, the default life)", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance,
				Amount: 3_00, Currency: 978, Time: at(11 * time.Minute), Nonce: vectorNonce(2)}), codeMedium, codeRecord, codeCert)
			g.send("PRESENT CODE of one use (the device's own nonce)", spd.PresentCode(spd.PresentRequest{Kind: spd.KindUse,
				Currency: 978, Time: at(12 * time.Minute), Payee: []byte("TRANSIT-7")}), codeMedium, codeNonce, codeRecord, codeCert)
			g.send("PRESENT CODE declined: over the offline pending limit", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance,
				Amount: 20_00, Currency: 978, Time: at(13 * time.Minute), Payee: []byte("MERCHANT-0042"), Nonce: vectorNonce(3)}), codeMedium)
			g.send("PRESENT CODE with a life of 301 s", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance, Amount: 1_00, Currency: 978,
				Time: at(14 * time.Minute), Expiry: at(14*time.Minute + 301*time.Second)}))
			g.send("PRESENT CODE with its end at its time", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance, Amount: 1_00, Currency: 978,
				Time: at(14 * time.Minute), Expiry: at(14 * time.Minute)}))
			g.send("PRESENT CODE in another currency", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance, Amount: 1_00, Currency: 840,
				Time: at(14 * time.Minute)}))
			g.send("PRESENT CODE with P2 01", cmdOf(0x80, 0x78, 0x01, 0x01, spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance,
				Amount: 1_00, Currency: 978, Time: at(14 * time.Minute)}).Data, apdu.MaxShortLe))
			g.send("READ PENDING 0 (the first code's record)", spd.ReadPending(0), sigRecord)
			g.send("READ PENDING 1", spd.ReadPending(1), sigRecord)
			g.send("READ PENDING 2 (the device's own nonce)", spd.ReadPending(2), ownNonce, sigRecord)
			g.send("READ PENDING beyond the ledger", spd.ReadPending(3))
			for _, tag := range []uint32{0xDF04, 0xDF06, 0x9F36, 0xDF05, 0xDF22} {
				g.send(fmt.Sprintf("GET DATA %04X", tag), getData(tag))
			}
			g.send("SELECT (ends the verification)", spd.Select())
			g.send("PRESENT CODE not verified", spd.PresentCode(spd.PresentRequest{Kind: spd.KindBalance, Amount: 1_00, Currency: 978,
				Time: at(15 * time.Minute)}))
		}},
	{"exchange", "EXCHANGE into uses and into another currency at host-signed rates (SPEC.md 4.11): the truncation remainder, the record as READ PENDING answers it, and each way a rate or an exchange is refused",
		[]string{"SPD-EXC-1", "SPD-EXC-2", "SPD-EXC-3", "SPD-PAY-4", "SPD-LED-1", "SPD-LED-2", "SPD-PIN-1"},
		func(g *gen) {
			g.prefix(true)
			seal := func(key *ecdsa.PrivateKey, id []byte, r spd.Rate) []byte {
				v, err := spd.SealRate(key, id, r)
				if err != nil {
					g.t.Fatal(err)
				}
				return v
			}
			ex := func(name string, k spd.ExchangeKind, amount int64, rate, nonce []byte, vars ...vectors.Variable) {
				g.send(name, spd.Exchange(spd.ExchangeRequest{Kind: k, Amount: amount, Currency: 978, Time: at(10 * time.Minute),
					Rate: rate, Nonce: nonce}), vars...)
			}
			uses := spd.Rate{Kind: spd.ExchangeUses, ATC: 1, Currency: 978, Numerator: 1, Denominator: 3_00, Expiry: at(12 * time.Minute)}
			ex("EXCHANGE with a rate signed by the CA key", spd.ExchangeUses, 10_00, seal(g.env.ca, vectorID, uses), nil)
			ex("EXCHANGE with a rate made for the peer device", spd.ExchangeUses, 10_00, seal(g.env.host, peerID, uses), nil)
			ex("EXCHANGE into a currency with a rate for uses", spd.ExchangeCurrency, 10_00, seal(g.env.host, vectorID, uses), nil)
			other := uses
			other.ATC = 2
			ex("EXCHANGE with a rate for the ATC after next", spd.ExchangeUses, 10_00, seal(g.env.host, vectorID, other), nil)
			other = uses
			other.Expiry = at(9 * time.Minute)
			ex("EXCHANGE with an expired rate", spd.ExchangeUses, 10_00, seal(g.env.host, vectorID, other), nil)
			valid := seal(g.env.host, vectorID, uses)
			ex("EXCHANGE of 2.99 at 3.00 a use (buys nothing)", spd.ExchangeUses, 2_99, valid, nil)
			ex("EXCHANGE above the balance", spd.ExchangeUses, 1_000_00, valid, nil)
			ex("EXCHANGE with P1 03", 3, 10_00, valid, nil)
			ex("EXCHANGE of 10.00 at 3.00 a use: 3 uses for 9.00", spd.ExchangeUses, 10_00, valid, vectorNonce(1), exchMedium, exchRecord)
			ex("EXCHANGE again with the same rate (replayed)", spd.ExchangeUses, 10_00, valid, nil)
			cur := spd.Rate{Kind: spd.ExchangeCurrency, ATC: 2, Currency: 978, TargetCurrency: 840, Numerator: 10_834, Denominator: 10_000,
				Expiry: at(12 * time.Minute)}
			ex("EXCHANGE of 20.01 EUR into USD at 1.0834 (the device's own nonce)", spd.ExchangeCurrency, 20_01, seal(g.env.host, vectorID, cur), nil,
				exchMedium, exchNonce, exchRecord)
			g.send("READ PENDING 0 (the exchange into uses)", spd.ReadPending(0), sigRecord)
			g.send("READ PENDING 1 (the device's own nonce)", spd.ReadPending(1), ownNonce, sigRecord)
			for _, tag := range []uint32{0xDF04, 0xDF06, 0x9F36, 0xDF05, 0xDF22} {
				g.send(fmt.Sprintf("GET DATA %04X", tag), getData(tag))
			}
			g.send("SELECT (ends the verification)", spd.Select())
			next := uses
			next.ATC = 3
			ex("EXCHANGE not verified", spd.ExchangeUses, 3_00, seal(g.env.host, vectorID, next), nil)
		}},
	{"get-data-list", "GET DATA list (SPEC.md 4.2.1): several data objects in one command, blank and personalised, in the order asked, and each way a list is refused",
		[]string{"SPD-GDL-1", "SPD-GDL-2"},
		func(g *gen) {
			list := func(tags ...uint32) apdu.Command {
				var ts []tlv.Tag
				for _, t := range tags {
					ts = append(ts, tlv.Tag(t))
				}
				return spd.GetDataList(ts...)
			}
			g.send("SELECT (blank)", spd.Select())
			g.send("GET DATA list DF20 DF2F (blank)", list(0xDF20, 0xDF2F))
			g.send("GET DATA list DF20 DF04 (blank: DF04 not readable)", list(0xDF20, 0xDF04))
			g.send("GET DATA list DF04 DF7F (blank: unknown before not readable)", list(0xDF04, 0xDF7F))
			g.prefix(true)
			// Every tag of 4.2 but DF11 and DF24 (the device's own key).
			every := []uint32{0xDF20, 0xDF02, 0xDF04, 0xDF06, 0x9F36, 0xDF05, 0xDF22, 0xDF50, 0x5F2A, 0xDF03, 0xDF5A, 0xDF23,
				0xDF2C, 0xDF62, 0xDF2F}
			g.send("GET DATA list of every tag but DF11 and DF24", list(every...))
			reversed := slices.Clone(every)
			slices.Reverse(reversed)
			g.send("GET DATA list of the same tags in reverse", list(reversed...))
			g.send("VERIFY wrong PIN", spd.VerifyPIN("0000"))
			g.send("GET DATA list DF23 9F36 after a wrong PIN", list(0xDF23, 0x9F36))
			good := list(0xDF04, 0x9F36)
			g.send("GET DATA list with P1-P2 00 00", cmdOf(0x00, 0xCB, 0x00, 0x00, good.Data, apdu.MaxShortLe))
			g.send("GET DATA list without a data field", cmdOf(0x00, 0xCB, 0x3F, 0xFF, nil, apdu.MaxShortLe))
			g.send("GET DATA list with an empty list", cmdOf(0x00, 0xCB, 0x3F, 0xFF, []byte{0x5C, 0x00}, apdu.MaxShortLe))
			g.send("GET DATA list naming DF04 twice", list(0xDF04, 0x9F36, 0xDF04))
			g.send("GET DATA list with an unknown tag last", list(0xDF04, 0x9F36, 0x9F7F))
			g.send("GET DATA list with DF11", list(0xDF04, 0xDF11))
		}},
	{"host-assertion", "PAY under a profile that requires host assertions (SPEC.md 4.10): below and from the threshold, and each way an assertion is refused",
		[]string{"SPD-HVA-1", "SPD-HVA-2", "SPD-PAY-1", "SPD-PAY-4"},
		func(g *gen) {
			g.prefix(true, withHostChecks)
			g.send("PAY below the threshold without an assertion", spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 5_00, 10*time.Minute, 276)), sigMedium)
			big := pay(spd.KindBalance, spd.ModeOnline, 12_00, 11*time.Minute, 276)
			big.Payee = []byte("MERCHANT-0042")
			good := spd.Assertion{Checks: spd.CheckSMS | spd.CheckIdentity, ATC: 2, Amount: 12_00, Currency: 978,
				Payee: []byte("MERCHANT-0042"), Expiry: at(14 * time.Minute)}
			with := func(name string, v []byte, vars ...vectors.Variable) {
				r := big
				r.Assertion = v
				g.send(name, spd.Pay(r), vars...)
			}
			g.send("PAY from the threshold without an assertion", spd.Pay(big))
			with("PAY with an assertion signed by the CA key, not the host key", g.seal(g.env.ca, vectorID, good))
			with("PAY with an assertion made for the peer device", g.seal(g.env.host, peerID, good))
			other := good
			other.Amount = 13_00
			with("PAY with an assertion made for another amount", g.seal(g.env.host, vectorID, other))
			other = good
			other.Payee = []byte("MERCHANT-0043")
			with("PAY with an assertion made for another payee", g.seal(g.env.host, vectorID, other))
			other = good
			other.Checks = spd.CheckSMS | spd.CheckConsent
			with("PAY with an assertion lacking the identity question", g.seal(g.env.host, vectorID, other))
			other = good
			other.ATC = 3
			with("PAY with an assertion for the ATC after next", g.seal(g.env.host, vectorID, other))
			other = good
			other.Expiry = at(10 * time.Minute)
			with("PAY with an expired assertion", g.seal(g.env.host, vectorID, other))
			body, err := good.Body()
			if err != nil {
				g.t.Fatal(err)
			}
			body[3] = 0x08 // DF74 08: no such check
			bad, err := spd.SealIssuerData(g.env.host, spd.INSHostAssertion, vectorID, body)
			if err != nil {
				g.t.Fatal(err)
			}
			with("PAY with a signed assertion whose checks are 08", bad)
			with("PAY with an assertion without its signature", body)
			valid := g.seal(g.env.host, vectorID, good)
			with("PAY with the assertion made for it", valid, sigMedium)
			with("PAY again with the same assertion (replayed)", valid)
			small := pay(spd.KindBalance, spd.ModeOnline, 2_00, 12*time.Minute, 276)
			small.Assertion = g.seal(g.env.ca, vectorID, spd.Assertion{Checks: spd.CheckConsent, ATC: 3, Amount: 2_00, Currency: 978,
				Expiry: at(14 * time.Minute)})
			g.send("PAY below the threshold with a forged assertion", spd.Pay(small))
			g.send("READ PENDING 1 (the asserted payment)", spd.ReadPending(1), ownNonce, sigRecord)
			for _, tag := range []uint32{0xDF04, 0x9F36} {
				g.send(fmt.Sprintf("GET DATA %04X", tag), getData(tag))
			}
		}},
	{"status-words", "The status-word precedence of SPEC.md section 1.2 on the commands every device implements",
		[]string{"SPD-APP-1", "SPD-APP-2", "SPD-APP-3", "SPD-APP-5", "SPD-KEY-3", "SPD-LC-3"},
		func(g *gen) {
			aid := spd.AID
			g.send("SELECT with no AID", cmdOf(0x00, 0xA4, 0x04, 0x00, nil, apdu.MaxShortLe))
			g.send("GET DATA DF20 while not selected", getData(0xDF20))
			g.send("SELECT of a partial AID", cmdOf(0x00, 0xA4, 0x04, 0x00, aid[:5], apdu.MaxShortLe))
			g.send("SELECT with P1 00", cmdOf(0x00, 0xA4, 0x00, 0x00, aid, apdu.MaxShortLe))
			g.send("CLA 90", cmdOf(0x90, 0xCA, 0x00, 0xDF, nil, apdu.MaxShortLe))
			g.send("INS 99 under CLA 80", cmdOf(0x80, 0x99, 0x00, 0x00, nil, 0))
			g.send("SELECT (blank)", spd.Select())
			g.send("GET RESPONSE with nothing pending", spd.GetResponse(apdu.MaxShortLe))
			g.send("ACTIVATE while blank", spd.Activate())
			g.send("INITIALISE with a short device ID", cmdOf(0x80, 0x50, 0x00, 0x00,
				append(append([]byte{0xDF, 0x40, 0x41}, spd.PublicKeyBytes(&g.env.ca.PublicKey)...), 0xDF, 0x02, 0x02, 0x01, 0x02), apdu.MaxShortLe))
			g.send("INITIALISE", spd.Initialise(&g.env.ca.PublicKey, vectorID), v("DF24", "device-key"))
			prof := vectorProfile(vectorID, g.env.pub)
			prof.HostPublicKey = &g.env.host.PublicKey
			var err error
			if prof.Certificate, err = g.env.issuer.Certify(vectorID, g.env.pub); err != nil {
				g.t.Fatal(err)
			}
			body, err := prof.Marshal()
			if err != nil {
				g.t.Fatal(err)
			}
			bad := append(bytes.Clone(body), 0xDF, 0x7F, 0x01, 0x00)
			forged, _ := spd.SealIssuerData(g.env.host, spd.INSPersonalise, vectorID, bad)
			g.send("PERSONALISE signed by another key, with an unknown tag", cmdOf(0x80, 0x52, 0x00, 0x00, forged, 0))
			signed, _ := spd.SealIssuerData(g.env.ca, spd.INSPersonalise, vectorID, bad)
			g.send("PERSONALISE signed by the CA, with an unknown tag", cmdOf(0x80, 0x52, 0x00, 0x00, signed, 0))
			g.send("PERSONALISE without a signature", cmdOf(0x80, 0x52, 0x00, 0x00, body, 0))
			g.personalise()
			g.send("PERSONALISE again", cmdOf(0x80, 0x52, 0x00, 0x00, signed, 0))
			g.send("GET DATA with a data field", cmdOf(0x00, 0xCA, 0xDF, 0x20, []byte{0x00}, apdu.MaxShortLe))
			g.send("GET DATA 9F7F (unknown)", getData(0x9F7F))
			unknown := []byte{0xDF, 0x2C, 0x04, 0x00, 0x00, 0x00, 0x05, 0xDF, 0x7F, 0x01, 0x00}
			forgedUpd, _ := spd.SealIssuerData(g.env.ca, spd.INSUpdateParameters, vectorID, unknown)
			g.send("UPDATE PARAMETERS signed by the CA, not the host, with an unknown tag", cmdOf(0x80, 0x66, 0x00, 0x00, forgedUpd, 0))
			hostUpd, _ := spd.SealIssuerData(g.env.host, spd.INSUpdateParameters, vectorID, unknown)
			g.send("UPDATE PARAMETERS signed by the host, with an unknown tag", cmdOf(0x80, 0x66, 0x00, 0x00, hostUpd, 0))
			g.send("UPDATE PARAMETERS with counter 0", g.hostUpdate(spd.ParameterUpdate{Counter: 0, TopUp: 1}))
			active := spd.StateActive
			g.send("UPDATE PARAMETERS to active from personalised", g.hostUpdate(spd.ParameterUpdate{Counter: 1, State: &active}))
			g.send("GET DATA DF2C", getData(0xDF2C))
		}},
}

func mustBytes(t testing.TB, c apdu.Command) []byte {
	t.Helper()
	b, err := c.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makePeer personalises the peer device and takes the media the vector
// device imports and parses.
func makePeer(t testing.TB, env *vectorEnv) vectors.Peer {
	d := New(store.NewMemory(), Config{Seed: peerSeed})
	run := func(cmd apdu.Command) []byte {
		t.Helper()
		resp := exchange(d, mustBytes(t, cmd), false)
		if sw := resp[len(resp)-2:]; sw[0] != 0x90 || sw[1] != 0x00 {
			t.Fatalf("peer: %X answered %X", cmd.INS, sw)
		}
		return resp[:len(resp)-2]
	}
	run(spd.Select())
	pub, err := spd.ParseInitialiseResponse(run(spd.Initialise(&env.ca.PublicKey, peerID)))
	if err != nil {
		t.Fatal(err)
	}
	prof := vectorProfile(peerID, pub)
	script, err := env.issuer.PersonalisationScript(prof)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range script {
		run(c)
	}
	cert, err := env.issuer.Certify(peerID, pub)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := d.key.Bytes()
	p := vectors.Peer{Device: vectors.Device{ID: hexs(peerID), Private: hexs(key), Public: hexs(spd.PublicKeyBytes(pub)), Certificate: hexs(cert)}}
	p.StoredValue = hexs(run(spd.GenerateMedium(spd.MediumRequest{Time: at(2 * time.Minute), Expiry: at(time.Hour), PayeeNonce: []byte("PEER-NONCE")})))
	p.Transfer = hexs(run(spd.TransferOut(spd.TransferRequest{Amount: 7_50, Currency: 978, Payee: vectorID, Time: at(3 * time.Minute), Expiry: at(2 * time.Hour)})))
	p.PaymentResult = hexs(run(spd.Pay(pay(spd.KindBalance, spd.ModeOnline, 2_00, 4*time.Minute, 276))))
	return p
}

func newVectorEnv(t testing.TB) *vectorEnv {
	env := &vectorEnv{ca: vectorKey("SPDLAB known-answer vector CA"), host: vectorKey("SPDLAB known-answer vector host")}
	var err error
	if env.issuer, err = issuer.New("SPDLAB known-answer vectors", env.ca, env.host); err != nil {
		t.Fatal(err)
	}
	return env
}

// generateVectors runs every sequence on a fresh seeded device.
func generateVectors(t testing.TB) vectors.File {
	env := newVectorEnv(t)
	env.peer = makePeer(t, env)
	f := vectors.File{
		Profile:  "spdlab reference, version 1",
		Revision: "2026-12-01",
		Description: "Known-answer vectors of reference/SPEC.md (Annex A explains the format). Made by the reference device " +
			"with the keys below; every step's command and whole response (data then status word) in hex.",
	}
	for _, def := range sequenceDefs {
		d := New(store.NewMemory(), Config{Seed: vectorSeed})
		g := &gen{t: t, env: env, d: d}
		if env.pub == nil {
			// The vector device's key is a function of the seed and ID.
			exchange(d, mustBytes(t, spd.Select()), false)
			resp := exchange(d, mustBytes(t, spd.Initialise(&env.ca.PublicKey, vectorID)), false)
			pub, err := spd.ParseInitialiseResponse(resp[:len(resp)-2])
			if err != nil {
				t.Fatal(err)
			}
			env.pub = pub
			cert, err := env.issuer.Certify(vectorID, pub)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := d.key.Bytes()
			caKey, _ := env.ca.Bytes()
			hostKey, _ := env.host.Bytes()
			f.Keys = vectors.Keys{
				CA:     vectors.KeyPair{Private: hexs(caKey), Public: hexs(spd.PublicKeyBytes(&env.ca.PublicKey))},
				Host:   vectors.KeyPair{Private: hexs(hostKey), Public: hexs(spd.PublicKeyBytes(&env.host.PublicKey))},
				Device: vectors.Device{ID: hexs(vectorID), Private: hexs(key), Public: hexs(spd.PublicKeyBytes(pub)), Certificate: hexs(cert)},
			}
			d = New(store.NewMemory(), Config{Seed: vectorSeed})
			g.d = d
		}
		def.run(g)
		f.Sequences = append(f.Sequences, vectors.Sequence{Name: def.name, Title: def.title, Requirements: def.reqs, Steps: g.steps})
	}
	f.Peer = env.peer
	return f
}

// TestVectors replays every committed vector on a fresh seeded reference
// device and wants each response byte for byte. With -update it rewrites
// the file instead.
func TestVectors(t *testing.T) {
	if *updateVectors {
		f := generateVectors(t)
		b, err := json.MarshalIndent(f, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.FromSlash(vectorFile), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d sequences", vectorFile, len(f.Sequences))
		return
	}
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The file must be what this device makes now: the same keys, and the
	// same steps (a new or changed step needs -update).
	want := generateVectors(t)
	if f.Keys != want.Keys || f.Peer != want.Peer {
		t.Fatalf("keys or peer media of %s differ from the reference device's; rerun with -update if the change is deliberate", vectorFile)
	}
	if len(f.Sequences) != len(want.Sequences) {
		t.Fatalf("%d sequences in the file, %d defined", len(f.Sequences), len(want.Sequences))
	}
	n := 0
	for si, seq := range f.Sequences {
		d := New(store.NewMemory(), Config{Seed: vectorSeed})
		if len(seq.Steps) != len(want.Sequences[si].Steps) {
			t.Errorf("%s: %d steps in the file, %d defined", seq.Name, len(seq.Steps), len(want.Sequences[si].Steps))
		}
		for i, st := range seq.Steps {
			if i < len(want.Sequences[si].Steps) {
				if w := want.Sequences[si].Steps[i]; w.Name != st.Name || w.Command != st.Command || w.Substitute != st.Substitute || w.Raw != st.Raw {
					t.Errorf("%s step %d (%s): the file's step is not the one defined now (%s); rerun with -update if the change is deliberate", seq.Name, i, st.Name, w.Name)
				}
			}
			cmd, err := hex.DecodeString(st.Command)
			if err != nil {
				t.Fatalf("%s step %d: %v", seq.Name, i, err)
			}
			got := hexs(exchange(d, cmd, st.Raw))
			if got != st.Response {
				t.Errorf("%s step %d (%s):\n got  %s\n want %s", seq.Name, i, st.Name, got, st.Response)
			}
			n++
		}
	}
	t.Logf("%d steps in %d sequences replayed", n, len(f.Sequences))
}
