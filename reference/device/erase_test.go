package device

import (
	"context"
	"testing"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/spd"
)

// newSampleRig is a device personalised as a test sample (DF5F 01) or as
// a production device.
func newSampleRig(t *testing.T, id string, sample bool) *rig {
	t.Helper()
	r := newBlankRig(t, id)
	ctx := context.Background()
	p := testProfile(id)
	p.TestSample = sample
	got, err := r.is.Personalise(ctx, r.c, p)
	if err != nil {
		t.Fatal(err)
	}
	r.profile = got
	return r
}

func erase(t *testing.T, r *rig, counter uint32) apdu.Command {
	t.Helper()
	cmd, err := spd.TestErase(r.is.CA, r.profile.DeviceID, counter)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestTestEraseReturnsSampleToBlank(t *testing.T) {
	r := newSampleRig(t, "ERASE001", true)
	r.login(t)
	r.expect(t, spd.Pay(spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 500, Currency: 978, Time: t0, Region: 276}), apdu.SWOK)
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, erase(t, r, 1), apdu.SWOK)
	// The session ended: nothing but SELECT is accepted.
	r.expect(t, spd.GetData(spd.TagState), apdu.SWConditionsNotSat)
	data := r.expect(t, spd.Select(), apdu.SWOK)
	sel, err := spd.ParseSelectResponse(data)
	if err != nil {
		t.Fatal(err)
	}
	if sel.State != spd.StateBlank || sel.DeviceID != nil {
		t.Fatalf("after TEST ERASE: state %v, device ID % X; want blank, none", sel.State, sel.DeviceID)
	}
	if got := r.st.Keys(""); len(got) != 1 || got[0] != keyErase {
		t.Fatalf("persistent memory after TEST ERASE holds %q, want only %q", got, keyErase)
	}
	n, err := r.c.EraseCounter(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("erase counter %d, %v; want 1", n, err)
	}
	// Blank: TEST ERASE is not allowed; the same device personalises again.
	r.expect(t, erase(t, r, 2), apdu.SWConditionsNotSat)
	p := testProfile("ERASE001")
	p.TestSample = true
	if _, err := r.is.Personalise(context.Background(), r.c, p); err != nil {
		t.Fatalf("personalising after TEST ERASE: %v", err)
	}
	// A recorded erase with the old counter is a replay.
	r.expect(t, spd.Select(), apdu.SWOK)
	r.expect(t, erase(t, r, 1), apdu.SWRefDataNotUsable)
	r.expect(t, erase(t, r, 2), apdu.SWOK)
}

func TestTestEraseRefusals(t *testing.T) {
	prod := newSampleRig(t, "ERASE002", false)
	prod.expect(t, spd.Select(), apdu.SWOK)
	before := prod.snap(t)
	prod.expect(t, erase(t, prod, 1), apdu.SWConditionsNotSat)
	if after := prod.snap(t); after != before {
		t.Fatalf("refused TEST ERASE changed %+v to %+v", before, after)
	}

	r := newSampleRig(t, "ERASE003", true)
	r.expect(t, spd.Select(), apdu.SWOK)
	forged, err := spd.TestErase(r.is.HostKey(), r.profile.DeviceID, 1)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, forged, apdu.SWSecurityNotSatisfied)
	other, err := spd.TestErase(r.is.CA, []byte("OTHER001"), 1)
	if err != nil {
		t.Fatal(err)
	}
	r.expect(t, other, apdu.SWSecurityNotSatisfied)
	bad := erase(t, r, 1)
	bad.P1 = 1
	r.expect(t, bad, apdu.SWIncorrectP1P2)
	r.expect(t, erase(t, r, 0), apdu.SWRefDataNotUsable)
	if s := r.snap(t); s.State != spd.StateActive {
		t.Fatalf("state %v after refused erases, want active", s.State)
	}
}

func TestTestEraseIsAtomic(t *testing.T) {
	for n := 1; ; n++ {
		r := newSampleRig(t, "ERASE004", true)
		r.expect(t, spd.Select(), apdu.SWOK)
		before := r.snap(t)
		r.dev.TearAt(n)
		resp, _ := r.c.Link.Exchange(context.Background(), erase(t, r, 1).MustBytes())
		r.dev.PowerOff()
		r.dev.PowerOn()
		sel, err := spd.ParseSelectResponse(r.expect(t, spd.Select(), apdu.SWOK))
		if err != nil {
			t.Fatal(err)
		}
		if sel.State != spd.StateBlank {
			if s := r.snap(t); s != before {
				t.Fatalf("tear at write %d: state %+v, want the old %+v or blank", n, s, before)
			}
		} else if resp == nil && len(r.st.Keys("")) != 1 {
			t.Fatalf("tear at write %d: blank but memory holds %q", n, r.st.Keys(""))
		}
		if resp != nil {
			if sel.State != spd.StateBlank {
				t.Fatalf("untorn TEST ERASE answered % X but left state %v", resp, sel.State)
			}
			return
		}
	}
}
