package usbccid

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator/fault"
	"github.com/spdlab/spdlab/reference/wire/ccid"
)

// A card that leaves the slot in the middle of a command (emulator/fault
// Removal) shows in the slot status, and works again once inserted and
// powered.
func TestFaultRemovalDuringCommand(t *testing.T) {
	card := fault.NewRemoval(&echoCard{})
	r := New(card, Config{})
	defer r.Close()
	roundTrip(t, r, ccid.IccPowerOn(0, 1, 0).Bytes())
	card.RemoveDuring(1, fault.RemoveAfterCommand)
	got := roundTrip(t, r, ccid.XfrBlock(0, 2, unhex(t, "80100000")).Bytes())
	if want := unhex(t, "80 00000000 00 02 42 FE 00"); !bytes.Equal(got, want) {
		t.Fatalf("answer of the command the card was pulled in % X, want % X", got, want)
	}
	got = roundTrip(t, r, ccid.GetSlotStatus(0, 3).Bytes())
	if want := unhex(t, "81 00000000 00 03 02 00 01"); !bytes.Equal(got, want) {
		t.Fatalf("slot status after removal % X, want % X", got, want)
	}
	card.Insert()
	got = roundTrip(t, r, ccid.GetSlotStatus(0, 4).Bytes())
	if want := unhex(t, "81 00000000 00 04 01 00 01"); !bytes.Equal(got, want) {
		t.Fatalf("slot status after insertion % X, want % X", got, want)
	}
	roundTrip(t, r, ccid.IccPowerOn(0, 5, 0).Bytes())
	got = roundTrip(t, r, ccid.XfrBlock(0, 6, unhex(t, "80100000")).Bytes())
	if want := unhex(t, "80 06000000 00 06 00 00 00 80100000 9000"); !bytes.Equal(got, want) {
		t.Fatalf("answer after reinsertion % X, want % X", got, want)
	}
}

// A card slowed down by emulator/fault Latency beyond the threshold gets
// time extension requests ahead of its answer.
func TestFaultLatencyTimeExtension(t *testing.T) {
	card := fault.NewLatency(&echoCard{}, fault.LatencyConfig{Fixed: 200 * time.Millisecond})
	r := New(card, Config{TimeExtensionAfter: 5 * time.Millisecond})
	defer r.Close()
	roundTrip(t, r, ccid.IccPowerOn(0, 1, 0).Bytes())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Write(ctx, ccid.XfrBlock(0, 2, unhex(t, "80100000")).Bytes()); err != nil {
		t.Fatal(err)
	}
	extensions := 0
	for {
		b, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ccid.Parse(b)
		if err != nil || m.Seq != 2 {
			t.Fatalf("answer %X: %v", b, err)
		}
		if m.Status().Command() == ccid.CommandTimeExtension {
			extensions++
			continue
		}
		if m.Status() != 0 || !bytes.Equal(m.Data, unhex(t, "80100000 9000")) {
			t.Fatalf("final answer %v", m)
		}
		break
	}
	if extensions == 0 {
		t.Fatal("no time extension before the slow answer")
	}
}
