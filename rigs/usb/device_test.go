//go:build cgo

package usb_test

import (
	"strings"
	"testing"

	"github.com/spdlab/spdlab/rigs/usb"
)

func TestOpenDeviceAbsent(t *testing.T) {
	// 0000:0000 is no assigned vendor and product: it is never attached.
	_, err := usb.OpenDevice(0x0000, 0x0000)
	if err == nil {
		t.Fatal("OpenDevice(0000:0000) succeeded")
	}
	if strings.HasPrefix(err.Error(), "usb: cannot initialise libusb") {
		t.Skipf("libusb cannot start on this machine, so the device search is not reached: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "usb: no device 0000:0000 found (bus has ") {
		t.Fatalf("OpenDevice error = %q, want \"usb: no device 0000:0000 found (bus has N devices)\"", err)
	}
}
