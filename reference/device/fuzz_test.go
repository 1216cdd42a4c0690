package device

import (
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
)

// cloneStore copies a committed memory image into a new in-memory store.
func cloneStore(t testing.TB, image map[string]string) *store.Memory {
	st := store.NewMemory()
	tx := st.Begin()
	for k, v := range image {
		tx.Put(k, []byte(v))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return st
}

// FuzzProcess feeds one arbitrary APDU to a personalised, selected and
// verified device. It must answer (never panic, never go silent), and an
// answer other than 9000/61xx must leave memory as it was, except for the
// try counters that VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER
// spend before comparing.
func FuzzProcess(f *testing.F) {
	r := newRig(f, "FUZZ0001")
	r.login(f)
	r.expect(f, spd.Pay(payReq(spd.KindBalance, spd.ModeOffline, 100)), apdu.SWOK)
	image := dump(r.st)
	seeds := []apdu.Command{
		spd.Select(),
		spd.GetData(spd.TagBalance),
		spd.GetData(spd.TagCertificate),
		spd.GetDataList(spd.TagBalance, spd.TagATC, spd.TagPendingCount),
		spd.GetChallenge(),
		spd.InternalAuthenticate([]byte("challenge")),
		spd.VerifyPIN("0000"),
		spd.VerifyBiometric(bioTemplate),
		spd.ChangePIN("1234", "4321"),
		spd.UnblockPIN("00000000", ""),
		spd.Pay(payReq(spd.KindBalance, spd.ModeOnline, 5)),
		spd.Pay(payReq(spd.KindUse, spd.ModeOffline, 0)),
		spd.ReadPending(0),
		spd.GenerateMedium(spd.MediumRequest{Time: t0, PayeeNonce: []byte("n")}),
		spd.GenerateToken(spd.TokenRequest{Time: t0, Expiry: t0.Add(3600e9), Controls: mediumControls(1, 10)}),
		spd.TransferOut(spd.TransferRequest{Amount: 5, Currency: 978, Payee: []byte("FUZZ0002"), Time: t0, Expiry: t0.Add(3600e9)}),
		spd.TransferShow(1, t0),
		spd.TransferIn([]byte{0x85, 0x05, 'S', 'V', 'L', '0', '1'}, t0),
		spd.Activate(),
		spd.Initialise(&r.is.CA.PublicKey, []byte("FUZZ0001")),
		spd.GetResponse(0),
	}
	for _, c := range seeds {
		f.Add(c.MustBytes())
	}
	login := [][]byte{spd.Select().MustBytes(), spd.VerifyPIN(testPIN).MustBytes()}
	f.Fuzz(func(t *testing.T, command []byte) {
		st := cloneStore(t, image)
		d := New(st, Config{Seed: []byte("fuzz")})
		for _, c := range login {
			if resp := d.Process(c); len(resp) < 2 || resp[len(resp)-2] != 0x90 {
				t.Fatalf("login answered %X", resp)
			}
		}
		before := dump(st)
		resp := d.Process(command)
		if len(resp) < 2 {
			t.Fatalf("answer %X to %X", resp, command)
		}
		sw := apdu.SW(uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1]))
		if sw == apdu.SWOK || sw.SW1() == 0x61 {
			return
		}
		if len(resp) != 2 {
			t.Fatalf("error %s with data %X", sw, resp)
		}
		after := dump(st)
		if len(command) >= 2 && (command[1] == byte(spd.INSVerify) || command[1] == byte(spd.INSChangeReferenceData) ||
			command[1] == byte(spd.INSResetRetryCounter)) {
			before, after = withoutTries(before), withoutTries(after)
		}
		if !mapsEqual(before, after) {
			t.Fatalf("%X answered %s and changed memory", command, sw)
		}
	})
}
