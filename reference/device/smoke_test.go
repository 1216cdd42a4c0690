package device

import (
	"context"
	"testing"

	"github.com/spdlab/spdlab/reference/spd"
)

func TestSmokePay(t *testing.T) {
	r := newRig(t, "DEVICE01")
	r.login(t)
	res, err := r.c.Pay(context.Background(), spd.PayRequest{Kind: spd.KindBalance, Mode: spd.ModeOffline, Amount: 1000, Currency: 978, Time: t0, Region: 276})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Verify(r.pub); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res.Info())
	t.Logf("%+v", r.snap(t))
}
