//go:build !cgo

package usb

import (
	"context"
	"errors"
)

// errNoLibusb is what OpenDevice answers in a build without cgo.
var errNoLibusb = errors.New("usb: this spdlab was built without cgo, so it cannot open USB devices through libusb; " +
	"build it with CGO_ENABLED=1 and libusb-1.0-0-dev (usb-emu needs neither)")

// OpenDevice fails: opening a real USB device needs libusb through cgo.
func OpenDevice(vid, pid uint16) (*Link, error) { return nil, errNoLibusb }

// OpenDeviceConfig fails: opening a real USB device needs libusb through cgo.
func OpenDeviceConfig(ctx context.Context, vid, pid uint16, cfg Config) (*Link, error) {
	return nil, errNoLibusb
}
