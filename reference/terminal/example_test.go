package terminal_test

import (
	"context"
	"fmt"
	"time"

	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/issuer"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/reference/terminal"
)

// A terminal with no backend pays a scanned merchant code offline; the
// payment waits on the device's ledger for a later Settle.
func Example() {
	ctx := context.Background()
	is, _ := issuer.Generate("example issuer")
	dev := device.New(store.NewMemory(), device.Config{})
	link := procLink{dev}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	p := spd.Profile{DeviceID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Currency: 978, Balance: 50_00, Uses: 1,
		Account: []byte("DE89370400440532013000"), AccountToken: make([]byte, spd.TokenLen), PIN: "2580",
		PUK: "13572468", PINTryLimit: 3, Limits: spd.Limits{MaxPending: 20_00, MaxOfflineCount: 3}, Time: now}
	if _, err := is.Personalise(ctx, spd.NewClient(link), p); err != nil {
		fmt.Println(err)
		return
	}
	u := &terminal.ScriptedUser{PINs: []string{"2580"}}
	tm, _ := terminal.New(terminal.Config{SPD: link, IssuerCA: &is.CA.PublicKey, User: u, Clock: func() time.Time { return now }})
	if err := tm.Attach(ctx); err != nil {
		fmt.Println(err)
		return
	}
	order, _ := terminal.ScanOrder("00020101021226270006spdlab0113MERCHANT-0042520458125303978540512.505802DE5908Cafe Lab6006Berlin62140110ORDER-1001630496F1")
	o := tm.Pay(ctx, terminal.Payment{Order: order, Kind: spd.KindBalance})
	fmt.Println(o.Status, o.Amount, o.Pending, o.Balance)
	// Output: done 1250 true 3750
}
