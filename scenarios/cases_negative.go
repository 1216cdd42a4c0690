package scenarios

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// refusal is one way to get a command wrong and the one status word
// section 1.1 gives for it.
type refusal struct {
	why string
	// cmd builds the command on the fixture.
	cmd func(f *Fixture) apdu.Command
	sw  apdu.SW
	// unverified sends it in a session without cardholder verification.
	unverified bool
}

// negativeSet is a command's set of refusals.
type negativeSet struct {
	id, name string
	reqs     []string
	refusals []refusal
}

// with returns cmd changed by mod.
func with(cmd apdu.Command, mod func(*apdu.Command)) apdu.Command {
	c := cmd
	c.Data = append([]byte(nil), cmd.Data...)
	mod(&c)
	return c
}

func claSwap(cmd apdu.Command) apdu.Command {
	return with(cmd, func(c *apdu.Command) { c.CLA ^= 0x80 })
}

func p1(cmd apdu.Command, v byte) apdu.Command { return with(cmd, func(c *apdu.Command) { c.P1 = v }) }
func p2(cmd apdu.Command, v byte) apdu.Command { return with(cmd, func(c *apdu.Command) { c.P2 = v }) }
func data(cmd apdu.Command, d []byte) apdu.Command {
	return with(cmd, func(c *apdu.Command) { c.Data = d })
}

func defineNegativeCases(d Driver) {
	rogue, err := issuer.Generate("rogue")
	if err != nil {
		panic(err)
	}
	pay := func(*Fixture) apdu.Command { return spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00)) }
	medReq := func(*Fixture) apdu.Command { return spd.GenerateMedium(spd.MediumRequest{Time: Clock}) }
	tokReq := func(*Fixture) apdu.Command {
		return spd.GenerateToken(spd.TokenRequest{Time: Clock, Expiry: Clock.Add(time.Hour), Controls: medium.TokenControls{MaxTransactions: 1, MaxAmount: 1, Channels: 1}})
	}
	xfer := func(*Fixture) apdu.Command {
		return spd.TransferOut(spd.TransferRequest{Amount: 1_00, Currency: 978, Payee: nowhere, Time: Clock, Expiry: Clock.Add(time.Hour)})
	}
	xferIn := func(f *Fixture) apdu.Command {
		g := newForger(f.Issuer)
		return spd.TransferIn(g.sign(transferMedium(g.ID, f.Profile.DeviceID, 1_00, 1, Clock.Add(time.Hour))), Clock)
	}
	ack := func(key func(*Fixture) *ecdsaKey) func(*Fixture) apdu.Command {
		return func(f *Fixture) apdu.Command {
			c, err := spd.Acknowledge(key(f), f.Profile.DeviceID, spd.Acknowledgement{SyncTime: Clock.Add(time.Hour)})
			Expect(err).NotTo(HaveOccurred())
			return c
		}
	}
	upd := func(key func(*Fixture) *ecdsaKey, counter uint32) func(*Fixture) apdu.Command {
		return func(f *Fixture) apdu.Command {
			c, err := spd.UpdateParameters(key(f), f.Profile.DeviceID, spd.ParameterUpdate{Counter: counter, TopUp: 1_00, Time: Clock})
			Expect(err).NotTo(HaveOccurred())
			return c
		}
	}
	reclaim := func(key func(*Fixture) *ecdsaKey, serial uint64) func(*Fixture) apdu.Command {
		return func(f *Fixture) apdu.Command {
			c, err := spd.Reclaim(key(f), f.Profile.DeviceID, spd.SerialAt{Serial: serial, Time: Clock.Add(2 * time.Hour)})
			Expect(err).NotTo(HaveOccurred())
			return c
		}
	}
	host := func(f *Fixture) *ecdsaKey { return f.Issuer.HostKey() }
	other := func(*Fixture) *ecdsaKey { return rogue.HostKey() }
	unsigned := func(build func(*Fixture) apdu.Command) func(*Fixture) apdu.Command {
		return func(f *Fixture) apdu.Command { c := build(f); return data(c, stripSignature(c.Data)) }
	}
	fixed := func(c apdu.Command) func(*Fixture) apdu.Command { return func(*Fixture) apdu.Command { return c } }
	wrap := func(build func(*Fixture) apdu.Command, mod func(apdu.Command) apdu.Command) func(*Fixture) apdu.Command {
		return func(f *Fixture) apdu.Command { return mod(build(f)) }
	}
	selectCmd := fixed(spd.Select())

	sets := []negativeSet{
		{"TC-NEG-001", "SELECT", []string{"SPD-APP-1", "SPD-APP-3"}, []refusal{
			{"with CLA 80", wrap(selectCmd, claSwap), sw6D00, false},
			{"with CLA 94", wrap(selectCmd, func(c apdu.Command) apdu.Command { return with(c, func(c *apdu.Command) { c.CLA = 0x94 }) }), sw6E00, false},
			{"with P2 0C", wrap(selectCmd, func(c apdu.Command) apdu.Command { return p2(c, 0x0C) }), sw6A86, false},
		}},
		{"TC-NEG-002", "GET RESPONSE", []string{"SPD-APP-5", "SPD-APP-3"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.GetResponse(256))), sw6D00, false},
			{"with P1 01", fixed(p1(spd.GetResponse(256), 1)), sw6A86, false},
			{"with nothing pending", fixed(spd.GetResponse(256)), sw6985, false},
		}},
		{"TC-NEG-003", "GET DATA", []string{"SPD-APP-3"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.GetData(spd.TagBalance))), sw6D00, false},
			{"of tag DF7F", fixed(apdu.Command{CLA: 0x00, INS: 0xCA, P1: 0xDF, P2: 0x7F, Ne: 256}), sw6A88, false},
			{"with a data field", fixed(data(spd.GetData(spd.TagBalance), []byte{1, 2})), sw6700, false},
		}},
		{"TC-NEG-004", "GET CHALLENGE", []string{"SPD-APP-3", "SPD-KEY-1"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.GetChallenge())), sw6D00, false},
			{"with P2 01", fixed(p2(spd.GetChallenge(), 1)), sw6A86, false},
			{"with Le 20", fixed(apdu.Command{CLA: 0x00, INS: 0x84, Ne: 0x20}), sw6700, false},
		}},
		{"TC-NEG-005", "INTERNAL AUTHENTICATE", []string{"SPD-APP-3", "SPD-KEY-4"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.InternalAuthenticate([]byte{1}))), sw6D00, false},
			{"with P1 01", fixed(p1(spd.InternalAuthenticate([]byte{1}), 1)), sw6A86, false},
			{"with a 65-byte challenge", fixed(spd.InternalAuthenticate(make([]byte, 65))), sw6700, false},
		}},
		{"TC-NEG-006", "VERIFY", []string{"SPD-APP-3", "SPD-PIN-2"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.VerifyPIN(TestPIN))), sw6D00, false},
			{"with P1 01", fixed(p1(spd.VerifyPIN(TestPIN), 1)), sw6A86, false},
			{"with P2 82", fixed(p2(spd.VerifyPIN(TestPIN), 0x82)), sw6A86, false},
			{"of a PIN with a letter", fixed(spd.VerifyPIN("25a0")), sw6A80, false},
			{"of a 17-byte biometric sample", fixed(spd.VerifyBiometric(make([]byte, 17))), sw6700, false},
		}},
		{"TC-NEG-007", "CHANGE REFERENCE DATA", []string{"SPD-APP-3", "SPD-PIN-3"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.ChangePIN(TestPIN, "1111"))), sw6D00, false},
			{"with P2 81", fixed(p2(spd.ChangePIN(TestPIN, "1111"), 0x81)), sw6A86, false},
			{"to a 3-digit PIN", fixed(spd.ChangePIN(TestPIN, "111")), sw6A80, false},
			{"without the new PIN", fixed(data(spd.ChangePIN(TestPIN, "1111"), []byte{0xDF, 0x30, 0x04, '2', '5', '8', '0'})), sw6A80, false},
		}},
		{"TC-NEG-008", "RESET RETRY COUNTER", []string{"SPD-APP-3", "SPD-PIN-3", "SPD-KEY-3"}, []refusal{
			{"with CLA 80", fixed(claSwap(spd.UnblockPIN(TestPUK, ""))), sw6D00, false},
			{"with P1 02", fixed(p1(spd.UnblockPIN(TestPUK, ""), 2)), sw6A86, false},
			{"with P2 81", fixed(p2(spd.UnblockPIN(TestPUK, ""), 0x81)), sw6A86, false},
			{"with a new PIN of letters", fixed(spd.UnblockPIN(TestPUK, "12ab")), sw6A80, false},
			{"by the host, unsigned", func(f *Fixture) apdu.Command {
				c, err := spd.UnblockByHost(f.Issuer.HostKey(), f.Profile.DeviceID, spd.Unblock{Counter: 1})
				Expect(err).NotTo(HaveOccurred())
				return data(c, stripSignature(c.Data))
			}, sw6A80, false},
		}},
		{"TC-NEG-009", "INITIALISE", []string{"SPD-LC-1", "SPD-LC-3", "SPD-APP-3"}, []refusal{
			{"with CLA 00", func(f *Fixture) apdu.Command {
				return claSwap(spd.Initialise(&f.Issuer.CA.PublicKey, f.Profile.DeviceID))
			}, sw6D00, false},
			{"when active", func(f *Fixture) apdu.Command { return spd.Initialise(&f.Issuer.CA.PublicKey, f.Profile.DeviceID) }, sw6985, false},
		}},
		{"TC-NEG-010", "PERSONALISE", []string{"SPD-LC-1", "SPD-LC-3", "SPD-APP-3"}, []refusal{
			{"with CLA 00", func(f *Fixture) apdu.Command {
				return claSwap(personaliseWith(f.Issuer, f.Profile, f.Profile.Certificate))
			}, sw6D00, false},
			{"when active", func(f *Fixture) apdu.Command { return personaliseWith(f.Issuer, f.Profile, f.Profile.Certificate) }, sw6985, false},
		}},
		{"TC-NEG-011", "ACTIVATE", []string{"SPD-LC-3", "SPD-APP-3"}, []refusal{
			{"with CLA 00", fixed(claSwap(spd.Activate())), sw6D00, false},
			{"when active", fixed(spd.Activate()), sw6985, false},
		}},
		{"TC-NEG-012", "PAY", []string{"SPD-APP-3", "SPD-PIN-1", "SPD-PAY-1"}, []refusal{
			{"with CLA 00", wrap(pay, claSwap), sw6D00, false},
			{"with P1 00", wrap(pay, func(c apdu.Command) apdu.Command { return p1(c, 0) }), sw6A86, false},
			{"with P1 04", wrap(pay, func(c apdu.Command) apdu.Command { return p1(c, 4) }), sw6A86, false},
			{"with P2 02", wrap(pay, func(c apdu.Command) apdu.Command { return p2(c, 2) }), sw6A86, false},
			{"with an unknown tag", wrap(pay, func(c apdu.Command) apdu.Command { return data(c, append(c.Data, 0xDF, 0x7F, 0x01, 0x00)) }), sw6A80, false},
			{"with channel 3", func(*Fixture) apdu.Command {
				c := spd.Pay(payment(spd.KindBalance, spd.ModeOnline, 1_00))
				return data(c, append(c.Data, 0xDF, 0x0E, 0x01, 0x03))
			}, sw6A80, false},
			{"without verification", pay, sw6982, true},
		}},
		{"TC-NEG-013", "READ PENDING", []string{"SPD-LED-2", "SPD-APP-3"}, []refusal{
			{"with CLA 00", fixed(claSwap(spd.ReadPending(0))), sw6D00, false},
			{"with a data field", fixed(data(spd.ReadPending(0), []byte{0})), sw6700, false},
			{"beyond the end", fixed(spd.ReadPending(0)), sw6A83, false},
		}},
		{"TC-NEG-014", "ACKNOWLEDGE", []string{"SPD-LED-4", "SPD-KEY-3", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(ack(host), claSwap), sw6D00, false},
			{"with P1 01", wrap(ack(host), func(c apdu.Command) apdu.Command { return p1(c, 1) }), sw6A86, false},
			{"unsigned", unsigned(ack(host)), sw6A80, false},
			{"signed by another host", ack(other), sw6982, false},
		}},
		{"TC-NEG-015", "UPDATE PARAMETERS", []string{"SPD-UPD-1", "SPD-KEY-3", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(upd(host, 1), claSwap), sw6D00, false},
			{"with P2 01", wrap(upd(host, 1), func(c apdu.Command) apdu.Command { return p2(c, 1) }), sw6A86, false},
			{"unsigned", unsigned(upd(host, 1)), sw6A80, false},
			{"signed by another host", upd(other, 1), sw6982, false},
			{"with counter 0", upd(host, 0), sw6984, false},
		}},
		{"TC-NEG-016", "GENERATE MEDIUM", []string{"SPD-MED-1", "SPD-PIN-1", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(medReq, claSwap), sw6D00, false},
			{"with P2 01", wrap(medReq, func(c apdu.Command) apdu.Command { return p2(c, 1) }), sw6A86, false},
			{"with an unknown tag", wrap(medReq, func(c apdu.Command) apdu.Command { return data(c, append(c.Data, 0xDF, 0x7F, 0x00)) }), sw6A80, false},
			{"without verification", medReq, sw6982, true},
		}},
		{"TC-NEG-017", "GENERATE TOKEN", []string{"SPD-TOK-1", "SPD-PIN-1", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(tokReq, claSwap), sw6D00, false},
			{"with P1 01", wrap(tokReq, func(c apdu.Command) apdu.Command { return p1(c, 1) }), sw6A86, false},
			{"without controls", wrap(tokReq, func(c apdu.Command) apdu.Command {
				return data(c, spd.GenerateMedium(spd.MediumRequest{Time: Clock, Expiry: Clock.Add(time.Hour)}).Data)
			}), sw6A80, false},
			{"without verification", tokReq, sw6982, true},
		}},
		{"TC-NEG-018", "TRANSFER", []string{"SPD-XFR-1", "SPD-PIN-1", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(xfer, claSwap), sw6D00, false},
			{"with P1 02", wrap(xfer, func(c apdu.Command) apdu.Command { return p1(c, 2) }), sw6A86, false},
			{"without a payee", wrap(xfer, func(c apdu.Command) apdu.Command {
				return data(c, spd.TransferShow(1, Clock).Data)
			}), sw6A80, false},
			{"without verification", xfer, sw6982, true},
		}},
		{"TC-NEG-019", "TRANSFER IN", []string{"SPD-XFR-2", "SPD-PIN-1", "SPD-APP-3"}, []refusal{
			{"with CLA 00", wrap(xferIn, claSwap), sw6D00, false},
			{"with P2 01", wrap(xferIn, func(c apdu.Command) apdu.Command { return p2(c, 1) }), sw6A86, false},
			{"without a time", wrap(xferIn, func(c apdu.Command) apdu.Command { return data(c, c.Data[:len(c.Data)-6]) }), sw6A80, false},
			{"without verification", xferIn, sw6982, true},
		}},
		{"TC-NEG-020", "RECLAIM", []string{"SPD-XFR-4", "SPD-KEY-3", "SPD-APP-3"}, []refusal{
			// CLA 00 with RECLAIM's INS 70 is MANAGE CHANNEL on an eSIM.
			{"with CLA A0", wrap(reclaim(host, 1), func(c apdu.Command) apdu.Command { return with(c, func(c *apdu.Command) { c.CLA = 0xA0 }) }), sw6E00, false},
			{"with P1 01", wrap(reclaim(host, 1), func(c apdu.Command) apdu.Command { return p1(c, 1) }), sw6A86, false},
			{"unsigned", unsigned(reclaim(host, 1)), sw6A80, false},
			{"signed by another host", reclaim(other, 1), sw6982, false},
			{"of an unknown serial", reclaim(host, 1), sw6A83, false},
		}},
		{"TC-NEG-021", "PARSE MEDIUM", []string{"SPD-MED-4", "SPD-APP-3"}, []refusal{
			{"with CLA 00", fixed(claSwap(spd.ParseMedium([]byte{0x85}))), sw6D00, false},
			{"with P1 02", fixed(p1(spd.ParseMedium([]byte{0x85}), 2)), sw6A86, false},
			{"of a truncated medium", fixed(spd.ParseMedium([]byte{0x85, 0x05, 'S', 'V'})), sw6A80, false},
		}},
		{"TC-NEG-022", "TEST ERASE", []string{"SPD-TST-1", "SPD-APP-3"}, []refusal{
			{"with CLA 00", func(f *Fixture) apdu.Command {
				c, err := spd.TestErase(f.Issuer.CA, f.Profile.DeviceID, 1)
				Expect(err).NotTo(HaveOccurred())
				return claSwap(c)
			}, sw6D00, false},
			{"of a device that is no test sample", func(f *Fixture) apdu.Command {
				c, err := spd.TestErase(f.Issuer.CA, f.Profile.DeviceID, 1)
				Expect(err).NotTo(HaveOccurred())
				return c
			}, sw6985, false},
		}},
	}
	for _, set := range sets {
		set := set
		args := append([]string{set.id, Negative}, set.reqs...)
		It("MUST refuse "+set.name+" sent wrong with the one status word of section 1.1 and change nothing",
			Case(args[0], args[1:]...), func(ctx SpecContext) {
				p := TestProfile()
				// TEST ERASE's refusal needs a production device (no DF5F).
				if set.name == "TEST ERASE" {
					need(d, Disposable) // a production device the lab cannot erase
				}
				p.TestSample = set.name != "TEST ERASE"
				f := personalised(ctx, d, &p)
				f.login(ctx)
				for _, r := range set.refusals {
					if r.unverified {
						_, err := f.Client.Select(ctx)
						Expect(err).NotTo(HaveOccurred())
					}
					f.refuses(ctx, r.cmd(f), r.sw, set.name+" "+r.why)
					if r.unverified {
						f.login(ctx)
					}
				}
			}, SpecTimeout(30*time.Second))
	}
}

// featureCommands are the instructions of the optional features that have
// their own (SPEC.md section 13).
var featureCommands = []struct {
	feature Capability
	cmd     apdu.Command
}{
	{Tokens, apdu.Command{CLA: 0x80, INS: 0x6A, P1: 0x07}},
	{Transfers, apdu.Command{CLA: 0x80, INS: 0x6C, P1: 0x07}},
	{Transfers, apdu.Command{CLA: 0x80, INS: 0x6E, P1: 0x07}},
	{Transfers, apdu.Command{CLA: 0x80, INS: 0x70, P1: 0x07}},
	{CertVerify, apdu.Command{CLA: 0x00, INS: 0x88, P1: 0x07, Data: []byte{1}}},
	{Media, apdu.Command{CLA: 0x80, INS: 0x68, P1: 0x07}},
	{ParseMedium, apdu.Command{CLA: 0x80, INS: 0x72, P1: 0x07}},
}

func defineOptionalCases(d Driver) {
	It("MUST answer the instruction of a feature it does not declare 6D00, and recognise those it declares",
		Case("TC-OPT-001", Positive, Negative, "SPD-OPT-1", "SPD-APP-3"), func(ctx SpecContext) {
			f := personalised(ctx, d, nil)
			f.login(ctx)
			for _, c := range featureCommands {
				want := sw6A86 // declared: the instruction is known, P1 07 is not
				if !d.Profile().Has(c.feature) {
					want = sw6D00
				}
				f.refuses(ctx, c.cmd, want, string(c.feature)+" instruction with P1 07")
			}
		}, SpecTimeout(30*time.Second))
}
