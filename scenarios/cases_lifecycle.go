package scenarios

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
)

// initialised opens a fresh device and runs INITIALISE with a new test
// profile, leaving the application selected.
func initialised(ctx context.Context, d Driver) (*Fixture, spd.Profile) {
	GinkgoHelper()
	needFresh(d)
	f := open(ctx, d)
	_, err := f.Client.Select(ctx)
	Expect(err).NotTo(HaveOccurred())
	p := TestProfile()
	pub, err := f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
	Expect(err).NotTo(HaveOccurred())
	p.DevicePublicKey = pub
	return f, p
}

// personaliseWith is a PERSONALISE command for p carrying cert, signed by
// the issuer CA for p's device.
func personaliseWith(is *issuer.Issuer, p spd.Profile, cert []byte) apdu.Command {
	GinkgoHelper()
	p.Certificate = cert
	if p.HostPublicKey == nil {
		p.HostPublicKey = &is.HostKey().PublicKey
	}
	body, err := p.Marshal()
	Expect(err).NotTo(HaveOccurred())
	data, err := spd.SealIssuerData(is.CA, spd.INSPersonalise, p.DeviceID, body)
	Expect(err).NotTo(HaveOccurred())
	return apdu.Command{CLA: 0x80, INS: 0x52, Data: data}
}

// stripSignature returns a host order's body without its 9F45 signature.
func stripSignature(data []byte) []byte {
	GinkgoHelper()
	rest, n := data, 0
	for len(rest) > 0 {
		obj, r, err := tlv.Next(rest)
		Expect(err).NotTo(HaveOccurred())
		if obj.Tag == spd.TagSignature {
			return data[:n]
		}
		n, rest = len(data)-len(r), r
	}
	Fail("host order without a signature")
	return nil
}

func defineLifeCycleCases(d Driver) {
	It("MUST refuse a second PERSONALISE with 6985 and change nothing",
		Case("TC-LC-005", Negative, "SPD-LC-1", "SPD-LC-3", "C40", "C41"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 5_00), 5_00)
			p := f.Profile
			p.Balance = 1_000_000_00
			script, err := f.Issuer.PersonalisationScript(p)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, script[0], sw6985, "a second PERSONALISE, validly signed, with a new balance")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse INITIALISE once personalised with 6985 and keep its key",
		Case("TC-LC-006", Negative, "SPD-LC-1", "SPD-KEY-1", "C40"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			f.refuses(ctx, spd.Initialise(&f.Issuer.CA.PublicKey, f.Profile.DeviceID), sw6985, "INITIALISE on a personalised device")
			pub, err := f.Client.GetData(ctx, spd.TagDevicePublicKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(pub).To(Equal(spd.PublicKeyBytes(f.Pub)), "the certified key is still the device's")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse with 6A80 a PERSONALISE whose certificate names another device ID, and with 6982 one signed by the CA an INITIALISE replaced, and stay initialised",
		Case("TC-LC-007", Negative, "SPD-KEY-2", "SPD-LC-1", "SPD-KEY-3", "C33", "C40"), func(ctx SpecContext) {
			f, p := initialised(ctx, d)
			other := append([]byte(nil), p.DeviceID...)
			other[7] ^= 0xFF
			cert, err := f.Issuer.Certify(other, p.DevicePublicKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, cert))).To(Equal(sw6A80))
			Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			_, sw := f.raw(ctx, rawCmd(spd.GetData(spd.TagBalance)))
			Expect(sw).To(Equal(sw6985), "no profile was loaded")
			// SPD-LC-1: INITIALISE again with another issuer's CA key
			// replaces the CA key, so the first CA's PERSONALISE no longer
			// verifies (6982) even for a certificate of the device's key.
			second, err := newIssuer("second")
			Expect(err).NotTo(HaveOccurred())
			pub, err := f.Client.Initialise(ctx, &second.CA.PublicKey, p.DeviceID)
			Expect(err).NotTo(HaveOccurred())
			p.DevicePublicKey = pub
			good, err := f.Issuer.Certify(p.DeviceID, pub)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, good))).To(Equal(sw6982), "PERSONALISE signed by the CA of the earlier INITIALISE")
			Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			// The lab's own CA again, so the sample goes back to blank as usual.
			_, err = f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
			Expect(err).NotTo(HaveOccurred())
		}, SpecTimeout(30*time.Second))

	It("MUST refuse with 6A80 a PERSONALISE whose certificate names another key, the key of an earlier INITIALISE included, and stay initialised",
		Case("TC-LC-008", Negative, "SPD-KEY-2", "SPD-KEY-1", "SPD-LC-1", "C33", "C40"), func(ctx SpecContext) {
			f, p := initialised(ctx, d)
			// SPD-KEY-1: INITIALISE again makes a new key pair and destroys
			// the first, whose certificate then certifies another key.
			first := p.DevicePublicKey
			pub, err := f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
			Expect(err).NotTo(HaveOccurred(), "INITIALISE again while initialised")
			Expect(spd.PublicKeyBytes(pub)).NotTo(Equal(spd.PublicKeyBytes(first)), "the second INITIALISE made a new key pair")
			Expect(f.Client.GetData(ctx, spd.TagDevicePublicKey)).To(Equal(spd.PublicKeyBytes(pub)), "GET DATA DF24 names the new key")
			stale, err := f.Issuer.Certify(p.DeviceID, first)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, stale))).To(Equal(sw6A80), "a certificate for the key of the first INITIALISE")
			Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			p.DevicePublicKey = pub
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			Expect(err).NotTo(HaveOccurred())
			cert, err := f.Issuer.Certify(p.DeviceID, &key.PublicKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, cert))).To(Equal(sw6A80))
			Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			rogue, err := issuer.Generate("rogue")
			Expect(err).NotTo(HaveOccurred())
			cert, err = rogue.Certify(p.DeviceID, p.DevicePublicKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, cert))).To(Equal(sw6A80), "a certificate another CA signed, in a profile the right CA signed")
			Expect(f.Client.State(ctx)).To(Equal(spd.StateInitialised))
			good, err := f.Issuer.Certify(p.DeviceID, p.DevicePublicKey)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, personaliseWith(f.Issuer, p, good))).To(Equal(sw9000), "then the right one")
			Expect(f.Client.State(ctx)).To(Equal(spd.StatePersonalised))
		}, SpecTimeout(30*time.Second))

	It("MUST refuse ACTIVATE without cardholder verification with 6982 and stay personalised",
		Case("TC-LC-009", Negative, "SPD-PIN-1", "SPD-LC-1", "C32"), func(ctx SpecContext) {
			f, p := initialised(ctx, d)
			script, err := f.Issuer.PersonalisationScript(p)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, script[0])).To(Equal(sw9000))
			Expect(f.sw(ctx, spd.Activate())).To(Equal(sw6982), "ACTIVATE before VERIFY")
			Expect(f.Client.State(ctx)).To(Equal(spd.StatePersonalised))
			Expect(f.sw(ctx, spd.VerifyPIN(p.PIN))).To(Equal(sw9000))
			withData := spd.Activate()
			withData.Data = []byte{0}
			Expect(f.sw(ctx, withData)).To(Equal(sw6700), "ACTIVATE with a data field")
			Expect(f.sw(ctx, spd.Activate())).To(Equal(sw9000))
			Expect(f.Client.State(ctx)).To(Equal(spd.StateActive))
			Expect(f.sw(ctx, spd.Activate())).To(Equal(sw6985), "ACTIVATE when active")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse payments, media, tokens and transfers while personalised (not active) with 6985",
		Case("TC-LC-010", Negative, "SPD-LC-3", "SPD-APP-4"), func(ctx SpecContext) {
			f, p := initialised(ctx, d)
			script, err := f.Issuer.PersonalisationScript(p)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, script[0])).To(Equal(sw9000))
			Expect(f.sw(ctx, spd.VerifyPIN(p.PIN))).To(Equal(sw9000))
			got, err := f.Client.Certificate(ctx)
			Expect(err).NotTo(HaveOccurred())
			f.Profile = p
			f.Pub = p.DevicePublicKey
			_ = got
			for _, c := range []struct {
				cmd apdu.Command
				why string
			}{
				{spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)), "PAY"},
				{spd.GenerateMedium(spd.MediumRequest{Time: Clock}), "GENERATE MEDIUM"},
				{spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1, Channels: 1}}), "GENERATE TOKEN"},
				{spd.TransferOut(spd.TransferRequest{Amount: 1_00, Currency: 978, Payee: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Time: Clock, Expiry: Clock.Add(time.Hour)}), "TRANSFER"},
				{spd.TransferIn([]byte("x"), Clock), "TRANSFER IN"},
			} {
				f.refuses(ctx, c.cmd, sw6985, c.why+" while personalised")
			}
		}, SpecTimeout(30*time.Second))

	It("MUST refuse payments, media, tokens, transfers out and imports while blocked with 6985",
		Case("TC-LC-011", Negative, "SPD-LC-2", "SPD-LC-3", "C14", "C15"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			blocked := spd.StateBlocked
			f.update(ctx, spd.ParameterUpdate{Counter: 1, State: &blocked, Time: Clock})
			f.login(ctx)
			Expect(f.Client.State(ctx)).To(Equal(spd.StateBlocked))
			for _, c := range []struct {
				cmd apdu.Command
				why string
			}{
				{spd.Pay(payment(spd.KindUse, spd.ModeOffline, 0)), "PAY"},
				{spd.GenerateMedium(spd.MediumRequest{Time: Clock}), "GENERATE MEDIUM"},
				{spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1, Channels: 1}}), "GENERATE TOKEN"},
				{spd.TransferOut(spd.TransferRequest{Amount: 1_00, Currency: 978, Payee: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Time: Clock, Expiry: Clock.Add(time.Hour)}), "TRANSFER"},
				{spd.TransferIn([]byte("x"), Clock), "TRANSFER IN"},
				{spd.Activate(), "ACTIVATE"},
			} {
				f.refuses(ctx, c.cmd, sw6985, c.why+" while blocked")
			}
		}, SpecTimeout(30*time.Second))

	It("MUST keep a terminated device terminated, still handing over and clearing its ledger",
		Case("TC-LC-012", Positive, Negative, "SPD-LC-2", "SPD-LC-3", "C14", "C15"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 4_00), 4_00)
			terminated, active := spd.StateTerminated, spd.StateActive
			f.update(ctx, spd.ParameterUpdate{Counter: 1, State: &terminated, Time: Clock})
			_, err := f.Client.Select(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Client.State(ctx)).To(Equal(spd.StateTerminated))
			before := f.state(ctx)
			Expect(before.Records).To(HaveLen(1), "READ PENDING works when terminated")
			for _, c := range []struct {
				cmd apdu.Command
				why string
			}{
				{f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 2, State: &active, TopUp: 50_00, Time: Clock})
				}), "UPDATE PARAMETERS back to active with a top-up"},
				{f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 3, TopUp: 50_00, Time: Clock})
				}), "UPDATE PARAMETERS with a top-up"},
				{spd.VerifyPIN(TestPIN), "VERIFY"},
				{spd.GetChallenge(), "GET CHALLENGE"},
				{spd.Pay(payment(spd.KindUse, spd.ModeOffline, 0)), "PAY"},
				{spd.ParseMedium([]byte("x")), "PARSE MEDIUM"},
			} {
				f.refuses(ctx, c.cmd, sw6985, c.why+" when terminated")
			}
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(time.Hour), ATCs: []uint32{before.Records[0].ATC}})).To(Equal(sw9000))
			Expect(f.Client.PendingCount(ctx)).To(Equal(0), "ACKNOWLEDGE clears the ledger of a terminated device")
			Expect(f.Client.State(ctx)).To(Equal(spd.StateTerminated))
		}, SpecTimeout(30*time.Second))

	It("MUST move only active to blocked, blocked to active, and refuse other moves with 6985 applying nothing of the update",
		Case("TC-UPD-001", Positive, Negative, "SPD-LC-2", "SPD-UPD-1", "C14", "C15"), func(ctx SpecContext) {
			f, p := initialised(ctx, d)
			script, err := f.Issuer.PersonalisationScript(p)
			Expect(err).NotTo(HaveOccurred())
			Expect(f.sw(ctx, script[0])).To(Equal(sw9000))
			f.Profile, f.Pub = p, p.DevicePublicKey
			blocked, active := spd.StateBlocked, spd.StateActive
			tier := uint8(3)
			order := func(counter uint32, st *spd.State) apdu.Command {
				return f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: counter, State: st, TopUp: 10_00, AddUses: 2, Tier: &tier, Time: Clock.Add(time.Hour)})
				})
			}
			f.refuses(ctx, order(1, &blocked), sw6985, "personalised to blocked")
			f.refuses(ctx, order(1, &active), sw6985, "personalised to active (only ACTIVATE does that)")
			Expect(f.sw(ctx, spd.VerifyPIN(p.PIN))).To(Equal(sw9000))
			Expect(f.sw(ctx, spd.Activate())).To(Equal(sw9000))
			Expect(f.sw(ctx, order(1, &blocked))).To(Equal(sw9000))
			s := f.state(ctx)
			Expect(s.State).To(Equal(spd.StateBlocked))
			Expect(s.Balance).To(Equal(p.Balance+10_00), asserts("C14", "the issuer's host order updated the balance with its state move"))
			Expect(s.Uses).To(Equal(p.Uses + 2))
			Expect(s.Tier).To(Equal([]byte{3}))
			Expect(s.UpdateCounter).To(Equal(uint32(1)))
			Expect(s.LastSync).To(Equal(spd.Unix(Clock.Add(time.Hour))))
			Expect(f.sw(ctx, order(2, &active))).To(Equal(sw9000))
			Expect(f.Client.State(ctx)).To(Equal(spd.StateActive))
			bad := spd.State(0x02)
			f.refuses(ctx, order(3, &bad), sw6A80, "a state no update sets (personalised)")
		}, SpecTimeout(30*time.Second))

	It("MUST apply an update counter once: equal or lower counters 6984, higher applies",
		Case("TC-UPD-002", Positive, Negative, "SPD-UPD-1", "C3", "C14", "C15"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			f.update(ctx, spd.ParameterUpdate{Counter: 5, TopUp: 1_00, Time: Clock})
			for _, c := range []uint32{5, 4, 1} {
				f.refuses(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: c, TopUp: 1_00, Time: Clock})
				}), sw6984, "update counter not above the last applied")
			}
			f.update(ctx, spd.ParameterUpdate{Counter: 6, TopUp: 1_00, Time: Clock})
			Expect(f.Client.Balance(ctx)).To(Equal(f.Profile.Balance + 2_00))
			f.refuses(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 7, TopUp: 1 << 62, Time: Clock})
			}), sw6A80, "a top-up that would take the balance above 2^62")
			// At the boundaries: a balance of exactly 2^62 and exactly
			// 2^32-1 uses are held; one more of either is refused.
			s := f.state(ctx)
			f.update(ctx, spd.ParameterUpdate{Counter: 7, TopUp: 1<<62 - s.Balance, AddUses: 1<<32 - 1 - s.Uses, Time: Clock})
			s = f.state(ctx)
			Expect(s.Balance).To(Equal(int64(1<<62)), "a top-up to exactly 2^62")
			Expect(s.Uses).To(Equal(uint32(1<<32-1)), "uses added to exactly 2^32-1")
			f.refuses(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 8, TopUp: 1, Time: Clock})
			}), sw6A80, "a top-up of 1 on a balance of 2^62")
			f.refuses(ctx, f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: 8, AddUses: 1, Time: Clock})
			}), sw6A80, "one use added to 2^32-1 uses")
			f.update(ctx, spd.ParameterUpdate{Counter: 8, Time: Clock})
			Expect(f.state(ctx).UpdateCounter).To(Equal(uint32(8)), "the refused updates left counter 8 unused")
		}, SpecTimeout(30*time.Second))

	It("MUST move the last sync time only forward, by UPDATE PARAMETERS and ACKNOWLEDGE",
		Case("TC-UPD-003", Positive, "SPD-LED-3", "SPD-LED-4", "C7"), func(ctx SpecContext) {
			f := selected(ctx, d, nil)
			Expect(f.state(ctx).LastSync).To(Equal(spd.Unix(Clock)), "PERSONALISE sets the first sync time")
			f.update(ctx, spd.ParameterUpdate{Counter: 1, Time: Clock.Add(2 * time.Hour)})
			Expect(f.state(ctx).LastSync).To(Equal(spd.Unix(Clock.Add(2 * time.Hour))))
			f.update(ctx, spd.ParameterUpdate{Counter: 2, Time: Clock.Add(time.Hour)})
			Expect(f.state(ctx).LastSync).To(Equal(spd.Unix(Clock.Add(2*time.Hour))), "an earlier host time leaves the sync time")
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock.Add(3 * time.Hour)})).To(Equal(sw9000))
			Expect(f.state(ctx).LastSync).To(Equal(spd.Unix(Clock.Add(3*time.Hour))), "ACKNOWLEDGE moves the sync time")
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock})).To(Equal(sw9000))
			Expect(f.state(ctx).LastSync).To(Equal(spd.Unix(Clock.Add(3*time.Hour))), "an earlier sync time leaves it")
		}, SpecTimeout(30*time.Second))

	It("MUST refuse host orders signed for another command, by the CA key, or for another device with 6982",
		Case("TC-KEY-005", Negative, "SPD-KEY-3", "SPD-LED-4", "C14", "C15"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 1_00), 1_00)
			atc := f.state(ctx).Records[0].ATC
			ack := f.hostOrder(func(k *ecdsaKey, id []byte) (apdu.Command, error) {
				return spd.Acknowledge(k, id, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{atc}})
			})
			body := stripSignature(ack.Data)
			asUpdate, err := spd.SealIssuerData(f.Issuer.HostKey(), spd.INSUpdateParameters, f.Profile.DeviceID, body)
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, apdu.Command{CLA: 0x80, INS: 0x64, Data: asUpdate}, sw6982, "an acknowledgement signed for UPDATE PARAMETERS")
			byCA, err := spd.Acknowledge(f.Issuer.CA, f.Profile.DeviceID, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{atc}})
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, byCA, sw6982, "an acknowledgement signed with the CA key while the profile names a host key")
			caUpdate, err := spd.UpdateParameters(f.Issuer.CA, f.Profile.DeviceID, spd.ParameterUpdate{Counter: 1, TopUp: 99_00, Time: Clock})
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, caUpdate, sw6982, "an update signed with the CA key")
			other := append([]byte(nil), f.Profile.DeviceID...)
			other[0] ^= 1
			elsewhere, err := spd.UpdateParameters(f.Issuer.HostKey(), other, spd.ParameterUpdate{Counter: 1, TopUp: 99_00, Time: Clock})
			Expect(err).NotTo(HaveOccurred())
			f.refuses(ctx, elsewhere, sw6982, "an update for another device")
			unsigned := apdu.Command{CLA: 0x80, INS: 0x66, Data: stripSignature(elsewhere.Data)}
			f.refuses(ctx, unsigned, sw6A80, "an update without a signature")
			Expect(f.acknowledge(ctx, spd.Acknowledgement{SyncTime: Clock, ATCs: []uint32{atc}})).To(Equal(sw9000))
			Expect(f.Client.PendingCount(ctx)).To(Equal(0))
		}, SpecTimeout(30*time.Second))
}
