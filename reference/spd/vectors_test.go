package spd_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/tlv"
	"github.com/spdlab/spdlab/reference/vectors"
)

// The known-answer vectors (SPEC.md Annex A) against the host-side codec:
// every accepted command of the file, read back with the parsers of this
// package, is rebuilt by the builders to exactly its bytes; every medium and
// pending record of the file reads and re-encodes to exactly its bytes.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorPrivate(t *testing.T, scalar string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), unhex(t, scalar))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rebuild reads cmd with the package's parsers and builds it again with its
// builders. ok is false for a command the builders do not make (a step that
// is refused on purpose).
func rebuild(t *testing.T, f vectors.File, cmd apdu.Command) (apdu.Command, bool, error) {
	ca, host := vectorPrivate(t, f.Keys.CA.Private), vectorPrivate(t, f.Keys.Host.Private)
	id := unhex(t, f.Keys.Device.ID)
	has := func(tag tlv.Tag) bool {
		list, err := tlv.Parse(cmd.Data)
		if err != nil {
			return false
		}
		_, ok := tlv.Find(list, tag)
		return ok
	}
	switch {
	case cmd.CLA == spd.CLAISO:
		switch spd.INS(cmd.INS) {
		case spd.INSSelect:
			// SELECT with another Le shows chaining; no builder makes it.
			return spd.Select(), cmd.Ne == apdu.MaxShortLe, nil
		case spd.INSGetResponse:
			return spd.GetResponse(cmd.Ne), true, nil
		case spd.INSGetData:
			tag := tlv.Tag(cmd.P1)<<8 | tlv.Tag(cmd.P2)
			if cmd.P1 == 0 {
				tag = tlv.Tag(cmd.P2)
			}
			return spd.GetData(tag), true, nil
		case spd.INSGetChallenge:
			return spd.GetChallenge(), true, nil
		case spd.INSInternalAuthenticate:
			return spd.InternalAuthenticate(cmd.Data), true, nil
		case spd.INSVerify:
			switch {
			case cmd.P2 == spd.P2Biometric:
				return spd.VerifyBiometric(cmd.Data), true, nil
			case len(cmd.Data) == 0:
				return spd.PINStatus(), true, nil
			}
			return spd.VerifyPIN(string(cmd.Data)), true, nil
		case spd.INSChangeReferenceData:
			c, err := spd.ParseChangePIN(cmd.Data)
			return spd.ChangePIN(c.Old, c.NewPIN), true, err
		case spd.INSResetRetryCounter:
			if cmd.P1 == spd.P1UnblockPUK {
				c, err := spd.ParseUnblockPUK(cmd.Data)
				return spd.UnblockPIN(c.PUK, c.NewPIN), true, err
			}
			body, err := spd.OpenIssuerData(&host.PublicKey, spd.INSResetRetryCounter, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			u, err := spd.ParseUnblock(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.UnblockByHost(host, id, u)
			return c, true, err
		}
	case cmd.CLA == spd.CLAProprietary:
		switch spd.INS(cmd.INS) {
		case spd.INSInitialise:
			pub, did, err := spd.ParseInitialise(cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			return spd.Initialise(pub, did), true, nil
		case spd.INSPersonalise:
			body, err := spd.OpenIssuerData(&ca.PublicKey, spd.INSPersonalise, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			p, err := spd.ParseProfile(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			p.DeviceID = id
			if p.DevicePublicKey, err = spd.ParsePublicKey(unhex(t, f.Keys.Device.Public)); err != nil {
				return apdu.Command{}, true, err
			}
			// The issuer's name is the one the vector certificate names.
			cert, err := x509.ParseCertificate(unhex(t, f.Keys.Device.Certificate))
			if err != nil || len(cert.Issuer.Organization) != 1 {
				return apdu.Command{}, true, fmt.Errorf("vector certificate: %v", err)
			}
			is, err := issuer.New(cert.Issuer.Organization[0], ca, host)
			if err != nil {
				return apdu.Command{}, true, err
			}
			script, err := is.PersonalisationScript(p)
			if err != nil {
				return apdu.Command{}, true, err
			}
			return script[0], true, nil
		case spd.INSActivate:
			return spd.Activate(), true, nil
		case spd.INSPay:
			r, err := spd.ParsePayRequest(cmd.P1, cmd.P2, cmd.Data)
			if !has(spd.TagChannel) {
				r.Channel = 0 // the parser fills in the default; the builder leaves it out
			}
			return spd.Pay(r), true, err
		case spd.INSPresentCode:
			r, err := spd.ParsePresentRequest(cmd.P1, cmd.P2, cmd.Data)
			if !has(spd.TagExpiry) {
				r.Expiry = time.Time{} // the parser fills in the default; the builder leaves it out
			}
			return spd.PresentCode(r), true, err
		case spd.INSExchange:
			r, err := spd.ParseExchangeRequest(cmd.P1, cmd.P2, cmd.Data)
			return spd.Exchange(r), true, err
		case spd.INSReadPending:
			return spd.ReadPending(int(cmd.P1)<<8 | int(cmd.P2)), true, nil
		case spd.INSAcknowledge:
			body, err := spd.OpenIssuerData(&host.PublicKey, spd.INSAcknowledge, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			a, err := spd.ParseAcknowledgement(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.Acknowledge(host, id, a)
			return c, true, err
		case spd.INSUpdateParameters:
			body, err := spd.OpenIssuerData(&host.PublicKey, spd.INSUpdateParameters, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			u, err := spd.ParseParameterUpdate(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.UpdateParameters(host, id, u)
			return c, true, err
		case spd.INSGenerateMedium:
			r, err := spd.ParseMediumRequest(cmd.Data)
			if !has(spd.TagExpiry) {
				r.Expiry = time.Time{} // the parser fills in the default; the builder leaves it out
			}
			return spd.GenerateMedium(r), true, err
		case spd.INSGenerateToken:
			r, err := spd.ParseTokenRequest(cmd.Data)
			return spd.GenerateToken(r), true, err
		case spd.INSTransfer:
			if cmd.P1 == spd.P1TransferShow {
				s, err := spd.ParseSerialAt(cmd.Data)
				return spd.TransferShow(s.Serial, s.Time), true, err
			}
			r, err := spd.ParseTransferRequest(cmd.Data)
			return spd.TransferOut(r), true, err
		case spd.INSTransferIn:
			r, err := spd.ParseTransferImport(cmd.Data)
			return spd.TransferIn(r.Medium, r.Time), true, err
		case spd.INSReclaim:
			body, err := spd.OpenIssuerData(&host.PublicKey, spd.INSReclaim, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			s, err := spd.ParseSerialAt(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.Reclaim(host, id, s)
			return c, true, err
		case spd.INSTestErase:
			body, err := spd.OpenIssuerData(&ca.PublicKey, spd.INSTestErase, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			n, err := spd.ParseTestErase(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.TestErase(ca, id, n)
			return c, true, err
		case spd.INSParseMedium:
			if cmd.P1 == spd.P1ParseMerchant {
				text, err := spd.ParseMerchantCodeData(cmd.Data)
				return spd.ParseMerchantCode(text), true, err
			}
			env, err := spd.ParseMediumData(cmd.Data)
			return spd.ParseMedium(env), true, err
		case spd.INSStoreMedium:
			body, err := spd.OpenIssuerData(&host.PublicKey, spd.INSStoreMedium, id, cmd.Data)
			if err != nil {
				return apdu.Command{}, true, err
			}
			o, err := spd.ParseStoreOrder(body)
			if err != nil {
				return apdu.Command{}, true, err
			}
			c, err := spd.StoreMedium(host, id, o)
			return c, true, err
		case spd.INSReadMedia:
			if cmd.P1 == spd.P1ShowMedium {
				label, now, err := spd.ParseShowMedium(cmd.Data)
				return spd.ShowMedium(label, now), true, err
			}
			return spd.ListMedia(), true, nil
		}
	}
	return apdu.Command{}, false, nil
}

// accepted reports whether a step's final status word shows the device took
// the command as well formed: 9000, 63Cx, or a refusal after its data field
// was read (conditions, replays, ledger).
func accepted(sw apdu.SW) bool {
	switch sw {
	case apdu.SWOK, apdu.SWRefDataNotUsable, apdu.SWRecordNotFound, apdu.SWConditionsNotSat:
		return true
	}
	_, ok := sw.TriesLeft()
	return ok || sw.SW1() == 0x61
}

func TestVectorCommandsFromBuilders(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, seq := range f.Sequences {
		for i, st := range seq.Steps {
			name := fmt.Sprintf("%s step %d (%s)", seq.Name, i, st.Name)
			raw := unhex(t, st.Command)
			resp := unhex(t, st.Response)
			sw := apdu.SW(uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1]))
			cmd, err := apdu.ParseCommand(raw)
			if err != nil || !accepted(sw) || cmd.CLA == 0x90 {
				continue
			}
			if sw == apdu.SWConditionsNotSat && cmd.INS != byte(spd.INSTransfer) && cmd.INS != byte(spd.INSGetResponse) {
				continue // refused before its data field was read (not selected, state)
			}
			built, ok, err := rebuild(t, f, cmd)
			if err != nil {
				t.Errorf("%s: reading the command back: %v", name, err)
				continue
			}
			if !ok {
				continue
			}
			got, err := built.Bytes()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("%s: the builder makes\n %X\nthe vector has\n %X", name, got, raw)
			}
			covered[fmt.Sprintf("%02X %02X", cmd.CLA, cmd.INS)] = true
		}
	}
	// Every command of SPEC.md section 4 has at least one vector the
	// builders make.
	for _, ins := range []spd.INS{spd.INSSelect, spd.INSGetResponse, spd.INSGetData, spd.INSGetChallenge, spd.INSInternalAuthenticate,
		spd.INSVerify, spd.INSChangeReferenceData, spd.INSResetRetryCounter} {
		if !covered[fmt.Sprintf("00 %02X", byte(ins))] {
			t.Errorf("no vector of %s", ins)
		}
	}
	for _, ins := range []spd.INS{spd.INSInitialise, spd.INSPersonalise, spd.INSActivate, spd.INSPay, spd.INSReadPending,
		spd.INSAcknowledge, spd.INSUpdateParameters, spd.INSGenerateMedium, spd.INSGenerateToken, spd.INSTransfer,
		spd.INSTransferIn, spd.INSReclaim, spd.INSParseMedium, spd.INSTestErase, spd.INSStoreMedium, spd.INSReadMedia,
		spd.INSPresentCode, spd.INSExchange} {
		if !covered[fmt.Sprintf("80 %02X", byte(ins))] {
			t.Errorf("no vector of %s", ins)
		}
	}
}

// TestVectorLayouts reads every medium and pending record of the vectors
// with reference/medium and spd.PendingRecord and encodes it again.
func TestVectorLayouts(t *testing.T) {
	f, err := vectors.Load()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := spd.ParsePublicKey(unhex(t, f.Keys.Device.Public))
	if err != nil {
		t.Fatal(err)
	}
	var media, records, codes, exchanges int
	var check func(name string, data []byte, signer *ecdsa.PublicKey)
	check = func(name string, data []byte, signer *ecdsa.PublicKey) {
		switch {
		case len(data) > 0 && data[0] == byte(spd.TagPaymentCode):
			c, err := spd.ParsePaymentCode(data)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if again := c.Marshal(); !bytes.Equal(again, data) {
				t.Errorf("%s: payment code re-encodes to\n %X\nnot\n %X", name, again, data)
			}
			check(name+" result", c.Result.Envelope, signer)
			if c.Record != nil {
				check(name+" record", c.Record.Marshal(), signer)
				if err := c.Agree(); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			codes++
		case len(data) > 0 && data[0] == byte(spd.TagExchangeResult):
			x, err := spd.ParseExchangeResult(data)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if again := x.Marshal(); !bytes.Equal(again, data) {
				t.Errorf("%s: exchange result re-encodes to\n %X\nnot\n %X", name, again, data)
			}
			if err := x.Verify(signer); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			check(name+" result", x.Result.Envelope, signer)
			check(name+" record", x.Record.Marshal(), signer)
			exchanges++
		case bytes.HasPrefix(data, []byte{0x85, 0x05, 'S', 'V', 'L', '0', '1'}):
			m, err := medium.Parse(data)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			signed, err := medium.SignedPart(m.Info)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			again, _ := medium.Seal(signed, m.Signature)
			if !bytes.Equal(again, data) {
				t.Errorf("%s: medium re-encodes to\n %X\nnot\n %X", name, again, data)
			}
			if err := m.Verify(signer); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			media++
		case len(data) > 0 && data[0] == 0xE1:
			r, err := spd.ParsePendingRecord(data)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if err := r.Verify(signer); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			records++
		}
	}
	peerPub, err := spd.ParsePublicKey(unhex(t, f.Peer.Public))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{f.Peer.StoredValue, f.Peer.Transfer, f.Peer.PaymentResult} {
		check("peer medium", unhex(t, m), peerPub)
	}
	for _, seq := range f.Sequences {
		for i, st := range seq.Steps {
			resp := unhex(t, st.Response)
			check(fmt.Sprintf("%s step %d (%s)", seq.Name, i, st.Name), resp[:len(resp)-2], pub)
		}
	}
	if media < 10 || records < 5 || codes < 4 || exchanges < 2 {
		t.Errorf("%d media, %d pending records, %d payment codes and %d exchange results in the vectors", media, records, codes, exchanges)
	}
	t.Logf("%d media, %d pending records, %d payment codes and %d exchange results re-encoded", media, records, codes, exchanges)
}
