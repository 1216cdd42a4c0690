package usb_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/usbccid"
	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/spd"
	"github.com/spdlab/spdlab/reference/store"
	"github.com/spdlab/spdlab/rigs/link"
	"github.com/spdlab/spdlab/rigs/link/record"
	"github.com/spdlab/spdlab/rigs/trace"
	"github.com/spdlab/spdlab/rigs/usb"
)

var (
	deviceFlag = flag.String("usb.device", "", "run the smoke test on the real CCID reader VID:PID instead of the emulator")
	recordFlag = flag.String("record", "", "write a transcript of the smoke test to this file")
)

// referenceScript drives a blank reference device through the SPD
// profile's first commands and a few malformed ones.
func referenceScript(t *testing.T, l link.Link, ca *ecdsa.PublicKey) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := spd.NewClient(l)
	if _, err := c.Select(ctx); err != nil {
		t.Fatalf("%s: SELECT: %v", l, err)
	}
	if _, err := c.Initialise(ctx, ca, []byte("USB-0001")); err != nil {
		t.Fatalf("%s: INITIALISE: %v", l, err)
	}
	if _, err := c.DeviceID(ctx); err != nil {
		t.Fatalf("%s: device ID: %v", l, err)
	}
	// GET CHALLENGE before personalisation, an unknown INS, a one-byte
	// command and a SELECT whose Lc overruns it: each gets a status word.
	for _, raw := range [][]byte{{0x00, 0x84, 0, 0, 8}, {0x80, 0xFE, 0, 0}, {0x00}, {0x00, 0xA4, 0x04, 0x00, 0x05, 1, 2}} {
		if _, err := l.Exchange(ctx, raw); err != nil {
			t.Fatalf("%s: malformed command %X: %v", l, raw, err)
		}
	}
}

func newReference() *device.Device {
	return device.New(store.NewMemory(), device.Config{Seed: []byte("usb-reference")})
}

// TestReferenceDeviceOverCCID runs the same script on the reference device
// in process and through the emulated CCID reader, and checks that every
// response is identical; the CCID run is also traced and replayed.
func TestReferenceDeviceOverCCID(t *testing.T) {
	ca, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	atr := emulator.ATR(emulator.FormUSB)

	direct := record.Record(link.NewDirect(newReference(), "ref", atr))
	referenceScript(t, direct.Link(), &ca.PublicKey)
	direct.Link().Close()

	rd := usbccid.New(newReference(), usbccid.Config{})
	defer rd.Close()
	ul, err := usb.New(context.Background(), rd, usb.Config{Name: "usb-emu"})
	if err != nil {
		t.Fatal(err)
	}
	var pcap bytes.Buffer
	overUSB := record.Record(trace.Wrap(ul, &pcap))
	referenceScript(t, overUSB.Link(), &ca.PublicKey)
	if err := overUSB.Link().Close(); err != nil {
		t.Fatal(err)
	}

	want, got := direct.Events(), overUSB.Events()
	if len(got) != len(want) {
		t.Fatalf("%d exchanges over CCID, %d in process", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Command, want[i].Command) || !bytes.Equal(got[i].Response, want[i].Response) {
			t.Errorf("exchange %d: over CCID %s, in process %s", i+1, got[i], want[i])
		}
	}

	// The trace of the CCID run replays the same responses.
	replay, err := trace.NewReplayer(&pcap, "replay")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(replay.ATR(), atr) {
		t.Fatalf("replayed ATR %X", replay.ATR())
	}
	for i, e := range got {
		resp, err := replay.Exchange(context.Background(), e.Command)
		if err != nil || !bytes.Equal(resp, e.Response) {
			t.Fatalf("replayed exchange %d: %X, %v; want %X", i+1, resp, err, e.Response)
		}
	}
	if err := replay.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSmoke runs a short session on a CCID reader: the emulated one, or
// the real reader named by -usb.device. With -record FILE it writes the
// session's transcript for record.Playback.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var l *usb.Link
	if *deviceFlag != "" {
		vid, pid, err := usb.ParseID(*deviceFlag)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = usb.OpenDeviceConfig(ctx, vid, pid, usb.Config{}); err != nil {
			t.Fatal(err)
		}
	} else {
		rd := usbccid.New(newReference(), usbccid.Config{})
		defer rd.Close()
		var err error
		if l, err = usb.New(ctx, rd, usb.Config{Name: "usb-emu"}); err != nil {
			t.Fatal(err)
		}
	}
	rec := record.Record(l)
	rl := rec.Link()
	defer rl.Close()
	resp, err := rl.Exchange(ctx, spd.Select().MustBytes())
	if err != nil {
		t.Fatal(err)
	}
	r, err := apdu.ParseResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if *deviceFlag == "" && r.SW != apdu.SWOK {
		t.Fatalf("SELECT on the reference device answered %s", r.SW)
	}
	t.Logf("%s: ATR %X, SELECT -> %s", l, l.ATR(), r.SW)
	if _, err := rl.(link.Resetter).Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Exchange(ctx, spd.Select().MustBytes()); err != nil {
		t.Fatal(err)
	}

	path := *recordFlag
	if path == "" {
		path = filepath.Join(t.TempDir(), "smoke.jsonl")
	}
	if err := rec.Transcript().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	pb, err := record.LoadPlayback(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.Exchange(ctx, spd.Select().MustBytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.Reset(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.Exchange(ctx, spd.Select().MustBytes()); err != nil {
		t.Fatal(err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	if *recordFlag != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
		t.Logf("transcript written to %s", path)
	}
}
