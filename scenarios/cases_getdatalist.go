package scenarios

import (
	"context"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// GET DATA list (SPEC.md 4.2.1, ICS feature get-data-list): the data
// objects of a tag list in one command. The suite writes the command and
// its tag list byte by byte here, and holds every answer to what GET DATA
// 00 CA answers for the same tags at the same moment.

// gdlTags are the tags a list may name: every object of SPEC.md 4.2 but
// DF11, written out.
var gdlTags = []uint16{0xDF20, 0xDF02, 0xDF24, 0xDF04, 0xDF06, 0x9F36, 0xDF05, 0xDF22, 0xDF50, 0x5F2A, 0xDF03,
	0xDF5A, 0xDF23, 0xDF2C, 0xDF62, 0xDF2F}

// gdlList is GET DATA list's data field: 5C and the tags, each of one
// byte when its high byte is 0, else of two.
func gdlList(tags ...uint16) []byte {
	var v []byte
	for _, t := range tags {
		if t > 0xFF {
			v = append(v, byte(t>>8))
		}
		v = append(v, byte(t))
	}
	return append([]byte{0x5C, byte(len(v))}, v...)
}

// gdlCommand is 00 CB P1 P2 with data and Le 00.
func gdlCommand(p1, p2 byte, data []byte) apdu.Command {
	return apdu.Command{CLA: 0x00, INS: 0xCB, P1: p1, P2: p2, Data: data, Ne: 256}
}

// gdl is the GET DATA list of tags.
func gdl(tags ...uint16) apdu.Command { return gdlCommand(0x3F, 0xFF, gdlList(tags...)) }

// singleObjects is what GET DATA 00 CA answers for each of tags, in turn,
// concatenated; each must answer 9000.
func (f *Fixture) singleObjects(ctx context.Context, tags ...uint16) []byte {
	GinkgoHelper()
	var out []byte
	for _, t := range tags {
		v, sw := f.raw(ctx, rawCmd(apdu.Command{CLA: 0x00, INS: 0xCA, P1: byte(t >> 8), P2: byte(t), Ne: 256}))
		Expect(sw).To(Equal(sw9000), "GET DATA %04X", t)
		out = append(out, v...)
	}
	return out
}

// listEqualsSingles sends the GET DATA list of tags and expects 9000 with
// exactly what the single GET DATAs of the same tags answer, before and
// after it (the list changed nothing in between).
func (f *Fixture) listEqualsSingles(ctx context.Context, what string, tags ...uint16) {
	GinkgoHelper()
	want := f.singleObjects(ctx, tags...)
	got, sw := f.raw(ctx, rawCmd(gdl(tags...)))
	Expect(sw).To(Equal(sw9000), "%s: GET DATA list %04X", what, tags)
	Expect(got).To(Equal(want), asserts("C45", what+": the list answers each object as GET DATA does, in the order asked"))
	Expect(f.singleObjects(ctx, tags...)).To(Equal(want), "%s: the single GET DATAs after the list", what)
}

// gdlRefuses sends cmd raw and expects exactly sw and no data.
func (f *Fixture) gdlRefuses(ctx context.Context, cmd apdu.Command, sw apdu.SW, why string) {
	GinkgoHelper()
	data, got := f.raw(ctx, rawCmd(cmd))
	Expect(got).To(Equal(sw), why)
	Expect(data).To(BeEmpty(), "%s: a refused GET DATA list answers no data", why)
}

func defineGetDataList(d Driver) {
	Describe("GET DATA list: several data objects in one command (SPEC.md 4.2.1)", func() {
		It("MUST answer a GET DATA list with each tag's object as GET DATA answers it, in the order asked, in every state",
			Case("TC-GDL-001", Positive, "SPD-GDL-1", "SPD-GDL-3", "C1", "C29", "C45"),
			func(ctx SpecContext) {
				needFresh(d)
				f := open(ctx, d)
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				// Blank: only DF20 and DF2F are readable.
				f.listEqualsSingles(ctx, "blank", 0xDF20, 0xDF2F)
				f.listEqualsSingles(ctx, "blank, the other order", 0xDF2F, 0xDF20)
				blank, sw := f.raw(ctx, rawCmd(gdl(0xDF20)))
				Expect(sw).To(Equal(sw9000))
				Expect(blank).To(Equal([]byte{0xDF, 0x20, 0x01, 0x00}), "DF20 of a blank device, by list")
				// Initialised: the device ID and key too.
				p := TestProfile()
				_, err = f.Client.Initialise(ctx, &f.Issuer.CA.PublicKey, p.DeviceID)
				Expect(err).NotTo(HaveOccurred())
				f.listEqualsSingles(ctx, "initialised", 0xDF02, 0xDF24, 0xDF20, 0xDF2F)

				// Personalised and active: every tag, in the order of 4.2,
				// reversed, and one alone.
				g := personalised(ctx, d, nil)
				g.login(ctx)
				g.listEqualsSingles(ctx, "personalised, every tag", gdlTags...)
				reversed := slices.Clone(gdlTags)
				slices.Reverse(reversed)
				g.listEqualsSingles(ctx, "personalised, every tag in reverse", reversed...)
				g.listEqualsSingles(ctx, "one tag", 0x9F36)
				all, sw := g.raw(ctx, rawCmd(gdl(gdlTags...)))
				Expect(sw).To(Equal(sw9000))
				Expect(all).To(HaveLen(214), "every tag of 4.2 but DF11: 214 bytes, one short answer")

				// After payments, with pending records: the balance, uses,
				// ATC, pending total and ledger moved.
				g.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 12_34), 12_34)
				g.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
				g.listEqualsSingles(ctx, "after two payments", gdlTags...)
				Expect(g.state(ctx).Ledger).To(Equal(2))
				g.listEqualsSingles(ctx, "after two payments, the counters first", 0x9F36, 0xDF22, 0xDF05, 0xDF04)

				// After a PIN failure: DF23 one down.
				_, err = g.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(g.sw(ctx, spd.VerifyPIN("0000"))).To(Equal(sw63C(2)))
				g.listEqualsSingles(ctx, "after a wrong PIN", 0xDF23, 0x9F36, 0xDF20)
				tries, sw := g.raw(ctx, rawCmd(gdl(0xDF23)))
				Expect(sw).To(Equal(sw9000))
				Expect(tries).To(Equal([]byte{0xDF, 0x23, 0x01, 0x02}), asserts("C29", "the PIN tries left the terminal shows, by list"))
			}, SpecTimeout(60*time.Second))

		It("MUST refuse a GET DATA list that breaks SPEC.md 4.2.1 with exactly its status word and no data, changing nothing",
			Case("TC-GDL-002", Positive, Negative, "SPD-GDL-2", "SPD-GDL-1", "SPD-GDL-3", "SPD-APP-4", "C28", "C45"),
			func(ctx SpecContext) {
				needFresh(d)
				f := open(ctx, d)
				// Not selected: 6985 (SPD-APP-2).
				f.gdlRefuses(ctx, gdl(0xDF20), sw6985, "GET DATA list before SELECT")
				_, err := f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				// Blank: a tag not readable yet is 6985 wherever it is; an
				// unknown tag is 6A88 before that.
				f.gdlRefuses(ctx, gdl(0xDF20, 0xDF04), sw6985, "DF04 of a blank device, last in the list")
				f.gdlRefuses(ctx, gdl(0xDF02, 0xDF20), sw6985, "DF02 of a blank device, first in the list")
				f.gdlRefuses(ctx, gdl(0xDF04, 0xDF7F), sw6A88, "an unknown tag after one not readable yet")
				f.listEqualsSingles(ctx, "blank, the readable tags alone", 0xDF20)

				g := personalised(ctx, d, nil)
				g.login(ctx)
				g.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 5_00), 5_00)
				good := gdlList(0xDF04, 0x9F36)
				for _, c := range []struct {
					cmd apdu.Command
					sw  apdu.SW
					why string
				}{
					{gdlCommand(0x00, 0x00, good), sw6A86, "P1-P2 00 00"},
					{gdlCommand(0x3F, 0x00, good), sw6A86, "P1-P2 3F 00"},
					{gdlCommand(0x00, 0xFF, good), sw6A86, "P1-P2 00 FF"},
					{gdlCommand(0xDF, 0x04, good), sw6A86, "P1-P2 DF 04 (a tag, as INS CA takes it)"},
					{gdlCommand(0x3F, 0xFF, nil), sw6700, "no data field"},
					{gdlCommand(0x3F, 0xFF, []byte{0x4D, 0x02, 0xDF, 0x04}), sw6A80, "a data object other than 5C"},
					{gdlCommand(0x3F, 0xFF, append(slices.Clone(good), 0x5C, 0x00)), sw6A80, "bytes after the 5C object"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x06, 0xDF, 0x04}), sw6A80, "a 5C length past the data field"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x81, 0x02, 0xDF, 0x04}), sw6A80, "a 5C length not in its shortest form"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x00}), sw6A80, "an empty tag list"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x03, 0xDF, 0x04, 0xDF}), sw6A80, "a list ending inside a tag"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x06, 0xDF, 0x04, 0xDF, 0x81, 0x81, 0x01}), sw6A80, "a tag of four bytes"},
					{gdlCommand(0x3F, 0xFF, []byte{0x5C, 0x03, 0xDF, 0x04, 0x00}), sw6A80, "a padding byte 00 in the list"},
					{gdl(0xDF04, 0x9F36, 0xDF04), sw6A80, "DF04 named twice"},
					{gdl(0x9F36, 0x9F36), sw6A80, "9F36 named twice in a row"},
					{gdl(0xDF7F, 0xDF04), sw6A88, "an unknown tag first"},
					{gdl(0xDF04, 0xDF2A, 0x9F36), sw6A88, "an unknown tag (DF2A, the account) in the middle"},
					{gdl(0xDF04, 0x9F36, 0x9F7F), sw6A88, "an unknown tag last"},
					{gdl(0xDF04, 0x005A), sw6A88, "an unknown one-byte tag"},
					{gdl(0xDF04, 0xDF11), sw6A88, "DF11, the certificate, which a list does not take"},
					{gdl(0xDF11), sw6A88, "DF11 alone"},
				} {
					before := g.state(ctx)
					g.gdlRefuses(ctx, c.cmd, c.sw, c.why)
					Expect(g.state(ctx)).To(Equal(before), "%s: a refused GET DATA list changes nothing", c.why)
				}
				// The good list still answers, and the session stayed:
				// still verified.
				g.listEqualsSingles(ctx, "after the refusals", 0xDF04, 0x9F36)
				g.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
			}, SpecTimeout(60*time.Second))

		It("MUST change nothing on a GET DATA list: counters, ledger, PIN tries and session stay",
			Case("TC-GDL-003", Positive, "SPD-GDL-3", "SPD-GDL-1", "C31", "C45"),
			func(ctx SpecContext) {
				f := personalised(ctx, d, nil)
				f.login(ctx)
				f.pays(ctx, payment(spd.KindBalance, spd.ModeOffline, 2_50), 2_50)
				f.pays(ctx, payment(spd.KindUse, spd.ModeOffline, 0), 0)
				// Read everything tag by tag and record by record, send the
				// list again and again, read everything again the same way.
				singles := f.singleObjects(ctx, gdlTags...)
				records := func() [][]byte {
					var out [][]byte
					for i := range 2 {
						v, sw := f.raw(ctx, rawCmd(spd.ReadPending(i)))
						Expect(sw).To(Equal(sw9000), "READ PENDING %d", i)
						out = append(out, v)
					}
					return out
				}
				ledger := records()
				for range 5 {
					got, sw := f.raw(ctx, rawCmd(gdl(gdlTags...)))
					Expect(sw).To(Equal(sw9000))
					Expect(got).To(Equal(singles), "the list answers what GET DATA answered, every time")
				}
				Expect(f.singleObjects(ctx, gdlTags...)).To(Equal(singles),
					asserts("C31", "five GET DATA lists change no counter: ATC, balance, uses, pending, PIN tries"))
				// Records carry their signatures: the same records, byte for
				// byte where the device signs deterministically, else the
				// same bodies.
				after := records()
				for i := range ledger {
					a, err := spd.ParsePendingRecord(ledger[i])
					Expect(err).NotTo(HaveOccurred())
					b, err := spd.ParsePendingRecord(after[i])
					Expect(err).NotTo(HaveOccurred())
					a.Signature, b.Signature = nil, nil
					Expect(b).To(Equal(a), "READ PENDING %d after the lists", i)
				}
				// The session stayed: the next payment needs no VERIFY and
				// takes the next ATC.
				atc := f.state(ctx).ATC
				f.pays(ctx, payment(spd.KindBalance, spd.ModeOnline, 1_00), 1_00)
				Expect(f.state(ctx).ATC).To(Equal(atc + 1))
			}, SpecTimeout(60*time.Second))
	})
}
