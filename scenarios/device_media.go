package scenarios

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/terminal"
	"github.com/spdlab/spdlab/reference/wire/crc16"
)

// merchantCode writes a merchant order code with its CRC: the suite's own
// encoding of EMV QRCPS MPM (ID, length in characters, value; tag 63 is
// CRC-16/CCITT-FALSE over the UTF-8 bytes up to "6304", the one CRC of
// reference/wire/crc16, checked there against its check vector),
// independent of reference/merchant's encoder.
func merchantCode(objects ...string) string {
	body := strings.Join(objects, "") + "6304"
	return fmt.Sprintf("%s%04X", body, crc16.Checksum([]byte(body)))
}

// mpm is one EMV data object: ID, length in characters, value.
func mpm(id, value string) string {
	return fmt.Sprintf("%s%02d%s", id, len([]rune(value)), value)
}

// tlvHex is one BER-TLV object with a short length, in hex.
func tlvHex(tag string, value []byte) string {
	return fmt.Sprintf("%s%02X%X", tag, len(value), value)
}

// storeOrder signs STORE MEDIUM for the fixture's device with the next
// update counter.
func (f *Fixture) storeOrder(ctx SpecContext, o spd.StoreOrder) apdu.Command {
	GinkgoHelper()
	last, err := f.Client.UpdateCounter(ctx)
	Expect(err).NotTo(HaveOccurred())
	if o.Counter == 0 {
		o.Counter = last + 1
	}
	if o.Time.IsZero() {
		o.Time = Clock
	}
	if o.Expiry.IsZero() {
		o.Expiry = o.Time.Add(30 * 24 * time.Hour)
	}
	cmd, err := spd.StoreMedium(f.Issuer.HostKey(), f.Profile.DeviceID, o)
	Expect(err).NotTo(HaveOccurred())
	return cmd
}

// sizedCode is a merchant order code of exactly n ASCII bytes (n at least
// 60) naming payee: proprietary templates 80.. pad it.
func sizedCode(payee string, n int) []byte {
	head := []string{mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", payee))}
	size := len(strings.Join(head, "")) + 8 // "6304" and the CRC
	for id := 80; size < n; id++ {
		v := n - size - 4
		if v > 99 {
			v = 99
		}
		if rest := n - size - 4 - v; rest > 0 && rest < 5 {
			v -= 5 // leave room for one more object
		}
		head = append(head, mpm(fmt.Sprint(id), strings.Repeat("Z", v)))
		size += 4 + v
	}
	return []byte(merchantCode(head...))
}

func defineDeviceMedia(d Driver) {
	Describe("Merchant codes read by the device and media stored on it", func() {
		It("MUST read a merchant order code with its own parsing unit: the order and payee the terminal reads, byte for byte as SPEC.md 4.7 writes them",
			Case("TC-MPM-001", Positive, Negative, "SPD-MPM-1", "SPD-PAY-7", "SPD-FORM-2", "C5", "C6", "C39", "C45", "C48"), func(ctx SpecContext) {
				f := selected(ctx, d, nil)
				before := f.snapshot(ctx)

				// A known answer: every field of the E2 template.
				code := merchantCode(mpm("00", "01"), mpm("01", "12"),
					mpm("26", mpm("00", "spdlab")+mpm("01", "ACC-0001-9F2C")), mpm("52", "5814"), mpm("53", "156"),
					mpm("54", "36.50"), mpm("58", "CN"), mpm("59", "SPDLAB NOODLE BAR"), mpm("60", "SHANGHAI"),
					mpm("62", mpm("01", "ORDER-20261126-0042")+mpm("05", "N-7F3A")),
					mpm("64", mpm("00", "ZH")+mpm("01", "实验室面馆")))
				resp, err := f.Client.Transmit(ctx, spd.ParseMerchantCode(code))
				Expect(err).NotTo(HaveOccurred())
				Expect(resp.SW).To(Equal(apdu.SWOK))
				inner := tlvHex("DF09", []byte("ACC-0001-9F2C")) + tlvHex("DF07", []byte("ORDER-20261126-0042")) +
					tlvHex("9F02", []byte{0, 0, 0, 0, 0, 0, 0x0E, 0x42}) + tlvHex("5F2A", []byte{0x00, 0x9C}) +
					tlvHex("DF64", []byte("SPDLAB NOODLE BAR")) + tlvHex("DF65", []byte("SHANGHAI")) + tlvHex("DF66", []byte{0x12})
				Expect(strings.ToUpper(hex.EncodeToString(resp.Data))).To(Equal(fmt.Sprintf("E2%02X%s", len(inner)/2, inner)),
					asserts("C6", asserts("C39", "the SPD parses the merchant's code by the rules it was encoded with (EMV QRCPS MPM)")))

				// The device reads what the terminal reads, for codes of every shape.
				codes := map[string]string{
					"static, no amount": merchantCode(mpm("00", "01"), mpm("01", "11"),
						mpm("26", mpm("00", "spdlab")+mpm("01", "SHOP-7")), mpm("52", "5411"), mpm("53", "978"),
						mpm("58", "DE"), mpm("59", "Bäckerei Löwe"), mpm("60", "München")),
					"dynamic, whole amount, no name": merchantCode(mpm("00", "01"), mpm("01", "12"),
						mpm("02", "4111111111111111"), mpm("29", mpm("00", "spdlab")+mpm("01", "TAXI-12")),
						mpm("53", "978"), mpm("54", "12"), mpm("62", mpm("01", "RIDE-9"))),
					"second template is spdlab's": merchantCode(mpm("00", "01"),
						mpm("26", mpm("00", "com.other")+mpm("01", "X-1")), mpm("27", mpm("00", "spdlab")+mpm("01", "P-2")),
						mpm("54", "0.5"), mpm("59", "食堂"), mpm("60", "北京")),
				}
				for name, c := range codes {
					got, err := f.Client.ParseMerchantCode(ctx, c)
					Expect(err).NotTo(HaveOccurred(), name)
					want, err := terminal.ScanOrder(c)
					Expect(err).NotTo(HaveOccurred(), name)
					Expect(string(got.Payee)).To(Equal(want.Payee), asserts("C48", asserts("C5", name+": the payee account the SPD's parsing unit read from the merchant's code")))
					Expect(string(got.Reference)).To(Equal(want.Reference), asserts("C5", name+": the order information the SPD read"))
					Expect(got.Name).To(Equal(want.Merchant), name)
					Expect(got.City).To(Equal(want.City), name)
					if want.Code.Amount != "" {
						Expect(got.Amount).NotTo(BeNil(), name)
						Expect(*got.Amount).To(Equal(want.Amount), name)
					} else {
						Expect(got.Amount).To(BeNil(), name)
					}
					if want.Currency != 0 {
						Expect(got.Currency).NotTo(BeNil(), name)
						Expect(*got.Currency).To(Equal(want.Currency), name)
					} else {
						Expect(got.Currency).To(BeNil(), name)
					}
				}
				got, err := f.Client.ParseMerchantCode(ctx, codes["dynamic, whole amount, no name"])
				Expect(err).NotTo(HaveOccurred())
				Expect(*got.Amount).To(Equal(int64(1200)), "\"12\" is 12.00")
				Expect(got.Initiation).To(Equal(byte(0x12)))

				// What breaks 4.7 is refused.
				good := codes["static, no amount"]
				flip := map[byte]byte{'0': '1'}
				last := good[len(good)-1]
				wrong, ok := flip[last]
				if !ok {
					wrong = '0'
				}
				long := strings.Repeat("A", 33)
				refused := map[string]string{
					"CRC":              good[:len(good)-1] + string(wrong),
					"no spdlab payee":  merchantCode(mpm("00", "01"), mpm("26", mpm("00", "com.other")+mpm("01", "X-1")), mpm("53", "978")),
					"payee over 32":    merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", long))),
					"bill over 32":     merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "P")), mpm("62", mpm("01", long))),
					"three decimals":   merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "P")), mpm("54", "1.005")),
					"currency letters": merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "P")), mpm("53", "EUR")),
					"byte lengths":     merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "P")), "5906"+"食堂"),
					"not first 00":     merchantCode(mpm("01", "11"), mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "P"))),
				}
				for name, c := range refused {
					Expect(f.sw(ctx, spd.ParseMerchantCode(c))).To(Equal(apdu.SWWrongData), name)
				}
				Expect(f.sw(ctx, apdu.Command{CLA: 0x80, INS: 0x72, P1: 0x01, Data: spd.ParseMedium([]byte("x")).Data, Ne: 256})).
					To(Equal(apdu.SWWrongData), "DF60 where DF63 belongs")
				Expect(f.snapshot(ctx)).To(Equal(before), "parsing changes nothing")

				// The terminal pays the order the device read (SPD-PAY-7).
				if d.Profile().Has(PayBalance) {
					f.login(ctx)
					r := payment(spd.KindBalance, spd.ModeOnline, 3_00)
					r.Payee, r.PayeeNonce = got.Payee, got.Reference
					res := f.pay(ctx, r)
					Expect(res.Success()).To(BeTrue())
					Expect(res.Info().PayeeID).To(Equal([]byte("TAXI-12")))
					Expect(res.Info().PayeeNonce).To(Equal([]byte("RIDE-9")))
				}
			}, SpecTimeout(60*time.Second))

		It("MUST store a host-signed medium, list it and show it exactly as stored, and refuse a forged, replayed or unverifiable order without change",
			Case("TC-STM-001", Positive, Negative, "SPD-STM-1", "SPD-STM-2", "SPD-KEY-3", "SPD-APP-4", "C1", "C10", "C14", "C38", "C40"), func(ctx SpecContext) {
				need(d, Media)
				shower := personalised(ctx, d, nil)
				shower.login(ctx)
				voucher, err := shower.Client.GenerateMedium(ctx, spd.MediumRequest{Time: Clock, Expiry: Clock.Add(72 * time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				Expect(shower.release()).To(Succeed())

				f := personalised(ctx, d, nil)
				_, err = f.Client.Select(ctx)
				Expect(err).NotTo(HaveOccurred())
				list, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(list).To(BeEmpty(), "a new device stores no media")
				code := merchantCode(mpm("00", "01"), mpm("01", "11"),
					mpm("26", mpm("00", "spdlab")+mpm("01", "CANTEEN-3")), mpm("53", "978"), mpm("59", "Kantine"), mpm("60", "Berlin"))
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "voucher", Format: spd.FormatEnvelope, Content: voucher.Envelope,
					Expiry: Clock.Add(72 * time.Hour)}))).To(Equal(apdu.SWOK))
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "canteen", Format: spd.FormatMerchantCode, Content: []byte(code)}))).
					To(Equal(apdu.SWOK))

				unchanged := f.state(ctx)
				list, err = f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(list).To(HaveLen(2))
				Expect(list[0]).To(Equal(spd.StoredMedium{Label: "canteen", Format: spd.FormatMerchantCode, Expiry: Clock.Add(30 * 24 * time.Hour), Size: len(code)}))
				Expect(list[1]).To(Equal(spd.StoredMedium{Label: "voucher", Format: spd.FormatEnvelope, Expiry: Clock.Add(72 * time.Hour), Size: len(voucher.Envelope)}))

				shown, err := f.Client.ShowMedium(ctx, "voucher", Clock.Add(time.Hour))
				Expect(err).NotTo(HaveOccurred())
				Expect(shown.Content).To(Equal(voucher.Envelope), asserts("C10", asserts("C38", "a medium the issuer pre-stored on the SPD is shown exactly as stored")))
				m, err := terminal.ReadMedium(medium.Text(shown.Content), &f.Issuer.CA.PublicKey, Clock.Add(time.Hour))
				Expect(err).NotTo(HaveOccurred(), "a reader with the issuer key verifies the shown medium")
				Expect(m.Info.DeviceID).To(Equal(voucher.Info().DeviceID))
				shown, err = f.Client.ShowMedium(ctx, "canteen", Clock.Add(time.Hour))
				Expect(err).NotTo(HaveOccurred())
				order, err := terminal.ScanOrder(string(shown.Content))
				Expect(err).NotTo(HaveOccurred())
				Expect(order.Payee).To(Equal("CANTEEN-3"))
				Expect(f.sw(ctx, spd.ShowMedium("nothing", Clock))).To(Equal(apdu.SWRecordNotFound))
				Expect(f.state(ctx)).To(Equal(unchanged), "LIST MEDIA and SHOW MEDIUM change nothing")

				// Refused orders change nothing.
				before := f.snapshot(ctx)
				counter, err := f.Client.UpdateCounter(ctx)
				Expect(err).NotTo(HaveOccurred())
				replay := f.storeOrder(ctx, spd.StoreOrder{Counter: counter, Label: "replayed", Format: spd.FormatMerchantCode, Content: []byte(code)})
				Expect(f.sw(ctx, replay)).To(Equal(apdu.SWRefDataNotUsable), "update counter not above the last applied")
				rogue, err := issuer.Generate("rogue")
				Expect(err).NotTo(HaveOccurred())
				forged, err := spd.StoreMedium(rogue.HostKey(), f.Profile.DeviceID, spd.StoreOrder{Counter: counter + 1, Label: "forged",
					Format: spd.FormatMerchantCode, Content: []byte(code), Time: Clock, Expiry: Clock.Add(time.Hour)})
				Expect(err).NotTo(HaveOccurred())
				Expect(f.sw(ctx, forged)).To(Equal(apdu.SWSecurityNotSatisfied), asserts("C40", "STORE MEDIUM signed by a host other than the device's issuer's"))
				tampered := []byte(string(voucher.Envelope))
				tampered[len(tampered)-3] ^= 0x01
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "tampered", Format: spd.FormatEnvelope, Content: tampered}))).
					To(Equal(apdu.SWSecurityNotSatisfied), "a medium whose signature does not verify")
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "bad-code", Format: spd.FormatMerchantCode, Content: []byte(code[:len(code)-2])}))).
					To(Equal(apdu.SWWrongData), "a merchant code that does not parse")
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "result", Format: spd.FormatMerchantCode, Content: voucher.Envelope}))).
					To(Equal(apdu.SWWrongData), "content of another format")
				Expect(f.snapshot(ctx)).To(Equal(before))
				Expect(f.Client.UpdateCounter(ctx)).To(Equal(counter))
				after, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(after).To(Equal(list))
			}, SpecTimeout(60*time.Second))

		It("MUST refuse to show a stored medium after its expiry, by the terminal's time or the device's last sync",
			Case("TC-STM-002", Negative, "SPD-STM-3", "SPD-UPD-1", "C10", "C14"), func(ctx SpecContext) {
				f := selected(ctx, d, nil)
				code := merchantCode(mpm("00", "01"), mpm("26", mpm("00", "spdlab")+mpm("01", "FAIR-2026")), mpm("53", "978"))
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "fair", Format: spd.FormatMerchantCode, Content: []byte(code),
					Expiry: Clock.Add(2 * time.Hour)}))).To(Equal(apdu.SWOK))
				_, err := f.Client.ShowMedium(ctx, "fair", Clock.Add(2*time.Hour))
				Expect(err).NotTo(HaveOccurred(), "shown up to and including its expiry")
				Expect(f.sw(ctx, spd.ShowMedium("fair", Clock.Add(2*time.Hour+time.Second)))).To(Equal(apdu.SWConditionsNotSat))

				counter, err := f.Client.UpdateCounter(ctx)
				Expect(err).NotTo(HaveOccurred())
				// A last sync time at the expiry itself is not after it: shown.
				Expect(f.Client.Send(ctx, f.hostOrder(func(key *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(key, id, spd.ParameterUpdate{Counter: counter + 1, Time: Clock.Add(2 * time.Hour)})
				}))).To(Succeed())
				_, err = f.Client.ShowMedium(ctx, "fair", Clock)
				Expect(err).NotTo(HaveOccurred(), "shown with the last sync time at its expiry")
				Expect(f.Client.Send(ctx, f.hostOrder(func(key *ecdsaKey, id []byte) (apdu.Command, error) {
					return spd.UpdateParameters(key, id, spd.ParameterUpdate{Counter: counter + 2, Time: Clock.Add(3 * time.Hour)})
				}))).To(Succeed())
				Expect(f.sw(ctx, spd.ShowMedium("fair", Clock))).To(Equal(apdu.SWConditionsNotSat),
					"the host's later sync time shows it expired, whatever the terminal claims")
				list, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(list).To(HaveLen(1), "listed until a store makes room")
				// STORE MEDIUM carries the host's time (9A) but is no sync: the
				// last sync time moves only with PERSONALISE, ACKNOWLEDGE and
				// UPDATE PARAMETERS (SPD-LED-3).
				sync := f.state(ctx).LastSync
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "later", Format: spd.FormatMerchantCode, Content: []byte(code),
					Time: Clock.Add(4 * time.Hour), Expiry: Clock.Add(5 * time.Hour)}))).To(Equal(apdu.SWOK))
				Expect(f.state(ctx).LastSync).To(Equal(sync), "STORE MEDIUM of a later host time leaves the last sync time")
			}, SpecTimeout(60*time.Second))

		It("MUST hold at least 4 media and 4096 bytes, refuse a new label beyond its capacity without change but replace a held one, and make room by dropping expired media",
			Case("TC-STM-003", Positive, Negative, "SPD-STM-4", "SPD-STM-3", "SPD-APP-4", "C38"), func(ctx SpecContext) {
				f := selected(ctx, d, nil)
				// 1024-byte codes: four fill the minimum in count and in bytes.
				filler := func(i int) []byte { return sizedCode(fmt.Sprintf("SHOP-%02d", i), spd.MaxMediumContent) }
				Expect(filler(0)).To(HaveLen(1024))
				stored := 0
				var sw apdu.SW
				for i := 0; i < 64; i++ {
					expiry := Clock.Add(30 * 24 * time.Hour)
					if i == 0 {
						expiry = Clock.Add(time.Hour) // the one that expires
					}
					sw = f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: fmt.Sprintf("m%02d", i), Format: spd.FormatMerchantCode,
						Content: filler(i), Expiry: expiry}))
					if sw != apdu.SWOK {
						break
					}
					stored++
				}
				Expect(sw).To(Equal(apdu.SWNotEnoughMemory), "a store beyond capacity")
				Expect(stored).To(BeNumerically(">=", 4), "SPEC.md section 11: at least 4 media")
				listed, err := f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				Expect(listed).To(HaveLen(stored), "the refused store left no trace")
				// SPD-STM-4 refuses a new label beyond the capacity; a label
				// the device holds is replaced, full or not (4.8).
				replacement := sizedCode("SHOP-R1", spd.MaxMediumContent)
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "m01", Format: spd.FormatMerchantCode, Content: replacement}))).
					To(Equal(apdu.SWOK), "a full store replaces a label it holds")
				shown, err := f.Client.ShowMedium(ctx, "m01", Clock)
				Expect(err).NotTo(HaveOccurred())
				Expect(shown.Content).To(Equal(replacement), "the replaced medium")
				Expect(f.Client.ListMedia(ctx)).To(HaveLen(stored), "a replacement adds no medium")
				before := f.snapshot(ctx)
				counter, _ := f.Client.UpdateCounter(ctx)
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "late", Format: spd.FormatMerchantCode, Content: filler(99)}))).
					To(Equal(apdu.SWNotEnoughMemory))
				Expect(f.Client.UpdateCounter(ctx)).To(Equal(counter), "a refused store spends no update counter")
				Expect(f.snapshot(ctx)).To(Equal(before))

				// m00 expires at Clock + 1 h: at that time it is still shown
				// (TC-STM-002), so it is not dropped; a second later it is.
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "late", Format: spd.FormatMerchantCode, Content: filler(99),
					Time: Clock.Add(time.Hour)}))).To(Equal(apdu.SWNotEnoughMemory), "a medium whose expiry is the order's time is kept")
				Expect(f.snapshot(ctx)).To(Equal(before))
				_, err = f.Client.ShowMedium(ctx, "m00", Clock.Add(time.Hour))
				Expect(err).NotTo(HaveOccurred(), "m00 kept at its expiry")
				Expect(f.sw(ctx, f.storeOrder(ctx, spd.StoreOrder{Label: "late", Format: spd.FormatMerchantCode, Content: filler(99),
					Time: Clock.Add(time.Hour + time.Second)}))).To(Equal(apdu.SWOK), "the medium expired at the order's time makes room")
				listed, err = f.Client.ListMedia(ctx)
				Expect(err).NotTo(HaveOccurred())
				labels := []string{}
				for _, m := range listed {
					labels = append(labels, m.Label)
				}
				Expect(labels).NotTo(ContainElement("m00"))
				Expect(labels).To(ContainElement("late"))
				Expect(labels).To(HaveLen(stored))
			}, SpecTimeout(120*time.Second))
	})
}
