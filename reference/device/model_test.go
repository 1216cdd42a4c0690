package device

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/medium"
	"github.com/spdlab/spdlab/reference/spd"
)

// model is the simple account of what a device holds that the model-based
// test keeps beside the device: balance, uses, ATC and the pending ledger,
// plus the session and limits that decide which commands succeed.
type model struct {
	balance  int64
	uses     uint32
	atc      uint32
	pending  []modelRecord
	lastSync uint32
	counter  uint32
	tries    int
	selected bool
	verified bool
	tier     uint8
	limits   spd.Limits
	xfers    []uint64 // outgoing transfers kept
	serial   uint64
}

type modelRecord struct {
	atc    uint32
	kind   spd.PaymentKind
	mode   spd.Mode
	amount int64
}

func (m *model) totals() (total, offAmount int64, offCount int) {
	for _, r := range m.pending {
		if r.kind.IsPayment() {
			total += r.amount
			if r.mode == spd.ModeOffline {
				offAmount += r.amount
				offCount++
			}
		}
	}
	return
}

// adjust is the model's own reading of SPD-ADJ-1 for the test profile:
// tier discount of 10% per tier, +5% in region 250.
func (m *model) adjust(amount int64, region uint16) int64 {
	amount -= amount * int64(m.tier) * 1000 / 10000
	if region == 250 {
		amount += amount * 500 / 10000
	}
	return amount
}

// pay predicts PAY: "" for success, or the decline reason.
func (m *model) pay(req spd.PayRequest) string {
	if req.Region != 276 && req.Region != 250 {
		return ReasonLocation
	}
	if m.tier < req.RequiredTier {
		return ReasonAttribute
	}
	amount := int64(0)
	if req.Kind != spd.KindUse {
		amount = m.adjust(req.Amount, req.Region)
	}
	if m.limits.MaxPayment > 0 && amount > m.limits.MaxPayment {
		return ReasonOverPaymentLimit
	}
	if req.Kind == spd.KindBalance && amount > m.balance {
		return ReasonInsufficientBalance
	}
	if req.Kind == spd.KindUse && m.uses == 0 {
		return ReasonNoUses
	}
	_, offAmount, offCount := m.totals()
	now := spd.Unix(req.Time)
	if req.Mode == spd.ModeOffline {
		switch {
		case offAmount+amount > m.limits.MaxPending:
			return ReasonOverPendingLimit
		case offCount+1 > m.limits.MaxOfflineCount:
			return ReasonOverCountLimit
		case int64(now)-int64(m.lastSync) > int64(m.limits.MaxOfflineAge/time.Second):
			return ReasonSyncTooOld
		}
	}
	m.atc++
	switch req.Kind {
	case spd.KindBalance:
		m.balance -= amount
	case spd.KindUse:
		m.uses--
	}
	m.pending = append(m.pending, modelRecord{atc: m.atc, kind: req.Kind, mode: req.Mode, amount: amount})
	return ""
}

func TestModelRandomCommands(t *testing.T) {
	steps := 20000
	if testing.Short() {
		steps = 3000
	}
	r := newRig(t, "MODEL001")
	p := r.profile
	m := &model{balance: p.Balance, uses: p.Uses, lastSync: spd.Unix(p.Time), tries: p.PINTryLimit,
		tier: p.Tier, limits: p.Limits, selected: true, verified: true}
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	ctx := context.Background()
	send := func(cmd apdu.Command) apdu.Response {
		resp, err := r.c.Transmit(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", spd.INS(cmd.INS), err)
		}
		return resp
	}
	want := func(step int, what string, got, exp apdu.SW) {
		if got != exp {
			t.Fatalf("step %d %s: SW %s, model expects %s", step, what, got, exp)
		}
	}
	regions := []uint16{276, 250, 0, 840}
	counts := map[string]int{}
	for step := 0; step < steps; step++ {
		now = now.Add(time.Duration(rng.IntN(1800)) * time.Second)
		switch op := rng.IntN(100); {
		case op < 45: // PAY
			req := spd.PayRequest{
				Kind:     spd.PaymentKind(1 + rng.IntN(3)),
				Mode:     spd.Mode(rng.IntN(2)),
				Amount:   int64(rng.IntN(12000)),
				Currency: 978,
				Time:     now,
				Region:   regions[rng.IntN(len(regions))],
			}
			if rng.IntN(10) == 0 {
				req.RequiredTier = uint8(rng.IntN(3))
			}
			if req.Kind == spd.KindUse {
				req.Amount = 0
			}
			badCurrency := rng.IntN(25) == 0
			if badCurrency {
				req.Currency = 840
			}
			resp := send(spd.Pay(req))
			switch {
			case !m.selected:
				want(step, "PAY unselected", resp.SW, apdu.SWConditionsNotSat)
				continue
			case badCurrency:
				want(step, "PAY currency", resp.SW, apdu.SWWrongData)
				continue
			case !m.verified:
				want(step, "PAY unverified", resp.SW, apdu.SWSecurityNotSatisfied)
				continue
			case len(m.pending) >= r.dev.cfg.MaxLedger:
				want(step, "PAY ledger full", resp.SW, apdu.SWNotEnoughMemory)
				continue
			}
			want(step, "PAY", resp.SW, apdu.SWOK)
			res, err := spd.ParseResult(resp.Data, medium.KindPaymentResult)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if err := res.Verify(r.pub); err != nil {
				t.Fatalf("step %d: result signature: %v", step, err)
			}
			reason := m.pay(req)
			if res.Success() != (reason == "") || res.Info().Reason != reason {
				t.Fatalf("step %d: PAY %+v: result %v %q, model %q", step, req, res.Success(), res.Info().Reason, reason)
			}
			counts["pay "+map[bool]string{true: "ok", false: "declined"}[reason == ""]]++
			if res.Info().ATC != m.atc || res.Info().Balance != m.balance || uint32(res.Info().Uses) != m.uses {
				t.Fatalf("step %d: result ATC %d balance %d uses %d, model %d %d %d", step,
					res.Info().ATC, res.Info().Balance, res.Info().Uses, m.atc, m.balance, m.uses)
			}
		case op < 52: // VERIFY, right or wrong
			pin := testPIN
			if rng.IntN(3) == 0 {
				pin = "9999"
			}
			resp := send(spd.VerifyPIN(pin))
			if !m.selected {
				want(step, "VERIFY unselected", resp.SW, apdu.SWConditionsNotSat)
				continue
			}
			switch {
			case m.tries == 0:
				want(step, "VERIFY blocked", resp.SW, apdu.SWAuthBlocked)
			case pin == testPIN:
				want(step, "VERIFY", resp.SW, apdu.SWOK)
				m.verified, m.tries = true, p.PINTryLimit
			default:
				m.tries--
				m.verified = false
				want(step, "VERIFY wrong", resp.SW, apdu.VerifyFailed(m.tries))
			}
		case op < 54: // unblock with the PUK
			resp := send(spd.UnblockPIN(testPUK, ""))
			if !m.selected {
				want(step, "UNBLOCK unselected", resp.SW, apdu.SWConditionsNotSat)
				continue
			}
			want(step, "UNBLOCK", resp.SW, apdu.SWOK)
			m.tries = p.PINTryLimit
		case op < 58: // SELECT, sometimes of another AID
			if rng.IntN(4) == 0 {
				resp := send(apdu.Command{CLA: 0, INS: 0xA4, P1: 4, Data: []byte{0xA0, 0, 0, 0, 3}, Ne: 256})
				want(step, "SELECT other", resp.SW, apdu.SWFileNotFound)
				m.selected, m.verified = false, false
				continue
			}
			want(step, "SELECT", send(spd.Select()).SW, apdu.SWOK)
			m.selected, m.verified = true, false
		case op < 63: // GENERATE MEDIUM
			resp := send(spd.GenerateMedium(spd.MediumRequest{Time: now, PayeeNonce: []byte{byte(step)}}))
			switch {
			case !m.selected:
				want(step, "MEDIUM unselected", resp.SW, apdu.SWConditionsNotSat)
			case !m.verified:
				want(step, "MEDIUM unverified", resp.SW, apdu.SWSecurityNotSatisfied)
			default:
				want(step, "MEDIUM", resp.SW, apdu.SWOK)
				m.atc++
				res, err := spd.ParseResult(resp.Data, medium.KindStoredValue)
				if err != nil {
					t.Fatal(err)
				}
				total, _, _ := m.totals()
				if res.Info().ATC != m.atc || res.Info().Balance != m.balance || res.Info().Pending != total {
					t.Fatalf("step %d: medium disagrees with model", step)
				}
			}
		case op < 75: // ACKNOWLEDGE a random subset, sometimes forged
			var atcs []uint32
			var keep []modelRecord
			for _, rec := range m.pending {
				if rng.IntN(3) > 0 {
					atcs = append(atcs, rec.atc)
				} else {
					keep = append(keep, rec)
				}
			}
			if rng.IntN(5) == 0 {
				atcs = append(atcs, m.atc+1000) // unknown ATCs are ignored
			}
			var serials []uint64
			var openXfers []uint64
			for _, sn := range m.xfers {
				if rng.IntN(2) == 0 {
					serials = append(serials, sn)
				} else {
					openXfers = append(openXfers, sn)
				}
			}
			key := r.is.HostKey()
			forged := rng.IntN(10) == 0
			if forged {
				key = keyFromSeed("forger")
			}
			sync := now.Add(-time.Duration(rng.IntN(600)) * time.Second)
			cmd, err := spd.Acknowledge(key, p.DeviceID, spd.Acknowledgement{SyncTime: sync, ATCs: atcs, Serials: serials})
			if err != nil {
				t.Fatal(err)
			}
			resp := send(cmd)
			switch {
			case !m.selected:
				want(step, "ACK unselected", resp.SW, apdu.SWConditionsNotSat)
			case forged:
				want(step, "ACK forged", resp.SW, apdu.SWSecurityNotSatisfied)
			default:
				want(step, "ACK", resp.SW, apdu.SWOK)
				m.pending = keep
				m.xfers = openXfers
				if s := spd.Unix(sync); s > m.lastSync {
					m.lastSync = s
				}
			}
		case op < 80: // UPDATE PARAMETERS: top-up, sometimes replayed
			counter := m.counter + 1
			replay := m.counter > 0 && rng.IntN(4) == 0
			if replay {
				counter = m.counter - uint32(rng.IntN(int(m.counter)))
			}
			topUp := int64(rng.IntN(20000))
			uses := uint32(rng.IntN(3))
			cmd := r.hostOrder(t, func(k *ecdsa.PrivateKey, id []byte) (apdu.Command, error) {
				return spd.UpdateParameters(k, id, spd.ParameterUpdate{Counter: counter, TopUp: topUp, AddUses: uses, Time: now})
			})
			resp := send(cmd)
			switch {
			case !m.selected:
				want(step, "UPDATE unselected", resp.SW, apdu.SWConditionsNotSat)
			case replay:
				want(step, "UPDATE replay", resp.SW, apdu.SWRefDataNotUsable)
			default:
				want(step, "UPDATE", resp.SW, apdu.SWOK)
				m.counter = counter
				m.balance += topUp
				m.uses += uses
				if s := spd.Unix(now); s > m.lastSync {
					m.lastSync = s
				}
			}
		case op < 83: // TRANSFER out, debited before the medium is answered
			amount := int64(1 + rng.IntN(8000))
			resp := send(spd.TransferOut(spd.TransferRequest{Amount: amount, Currency: 978, Payee: []byte("PAYEE001"),
				Time: now, Expiry: now.Add(time.Hour)}))
			switch {
			case !m.selected:
				want(step, "TRANSFER unselected", resp.SW, apdu.SWConditionsNotSat)
			case !m.verified:
				want(step, "TRANSFER unverified", resp.SW, apdu.SWSecurityNotSatisfied)
			case amount > m.balance:
				want(step, "TRANSFER over balance", resp.SW, apdu.SWConditionsNotSat)
			case len(m.pending) >= r.dev.cfg.MaxLedger || len(m.xfers) >= r.dev.cfg.MaxTransfers:
				want(step, "TRANSFER full", resp.SW, apdu.SWNotEnoughMemory)
			default:
				want(step, "TRANSFER", resp.SW, apdu.SWOK)
				m.atc++
				m.serial++
				m.balance -= amount
				m.xfers = append(m.xfers, m.serial)
				m.pending = append(m.pending, modelRecord{atc: m.atc, kind: spd.KindTransferOut, mode: spd.ModeOffline, amount: amount})
				res, err := spd.ParseResult(resp.Data, medium.KindTransfer)
				if err != nil {
					t.Fatal(err)
				}
				if res.Info().Serial != m.serial || res.Info().Amount != amount || res.Info().Balance != m.balance || res.Info().ATC != m.atc {
					t.Fatalf("step %d: transfer medium %+v disagrees with the model", step, res.Info())
				}
				counts["transfer"]++
			}
		case op < 85: // READ PENDING
			if len(m.pending) == 0 || !m.selected {
				continue
			}
			i := rng.IntN(len(m.pending) + 1)
			resp := send(spd.ReadPending(i))
			if i == len(m.pending) {
				want(step, "READ PENDING past end", resp.SW, apdu.SWRecordNotFound)
				continue
			}
			want(step, "READ PENDING", resp.SW, apdu.SWOK)
			rec, err := spd.ParsePendingRecord(resp.Data)
			if err != nil {
				t.Fatal(err)
			}
			if err := rec.Verify(r.pub); err != nil {
				t.Fatalf("step %d: record signature: %v", step, err)
			}
			mr := m.pending[i]
			if rec.ATC != mr.atc || rec.Kind != mr.kind || rec.Mode != mr.mode || rec.Amount != mr.amount ||
				!bytes.Equal(rec.DeviceID, p.DeviceID) {
				t.Fatalf("step %d: record %+v, model %+v", step, rec, mr)
			}
		default: // garbage: random bytes, or a known INS with random data
			raw := make([]byte, rng.IntN(40))
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			if len(raw) >= 4 && rng.IntN(2) == 0 {
				raw[0], raw[1] = 0x80, byte(0x50+2*rng.IntN(17))
			}
			if len(raw) >= 2 && raw[0] == 0x00 && raw[1] == 0xA4 {
				continue // a SELECT changes the session
			}
			resp := r.dev.Process(raw)
			if resp == nil {
				t.Fatalf("step %d: no answer to %X", step, raw)
			}
			sw := apdu.SW(uint16(resp[len(resp)-2])<<8 | uint16(resp[len(resp)-1]))
			if sw == apdu.SWOK || sw.SW1() == 0x61 {
				t.Logf("step %d: garbage %X accepted with %s", step, raw, sw)
			}
			counts["garbage"]++
		}
		if step%97 == 0 || step == steps-1 {
			if !m.selected {
				want(step, "SELECT", send(spd.Select()).SW, apdu.SWOK)
				m.selected, m.verified = true, false
			}
			s := r.snap(t)
			total, _, _ := m.totals()
			if s.Balance != m.balance || s.Uses != m.uses || s.ATC != m.atc || s.Pending != total || s.Ledger != len(m.pending) {
				t.Fatalf("step %d: device %+v, model balance %d uses %d ATC %d pending %d ledger %d",
					step, s, m.balance, m.uses, m.atc, total, len(m.pending))
			}
		}
	}
	t.Logf("%d steps: %v; final ATC %d", steps, counts, m.atc)
}
