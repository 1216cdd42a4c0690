//go:build !cgo

package usb_test

import (
	"strings"
	"testing"

	"github.com/spdlab/spdlab/rigs/usb"
)

func TestOpenDeviceWithoutCgo(t *testing.T) {
	_, err := usb.OpenDevice(0x072f, 0x90cc)
	if err == nil || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("OpenDevice in a build without cgo = %v, want an error saying the build lacks cgo", err)
	}
}
