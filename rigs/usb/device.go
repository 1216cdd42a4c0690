//go:build cgo

package usb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/gousb"

	"github.com/spdlab/spdlab/reference/wire/ccid"
)

// OpenDevice finds the USB device vid:pid, claims its CCID interface
// (interface class 0x0B) and powers the card in slot 0 on. It fails with a
// clear error when libusb cannot start (no USB bus), when no such device
// is attached, or when the device has no CCID interface with a bulk-in
// and a bulk-out endpoint.
func OpenDevice(vid, pid uint16) (*Link, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return OpenDeviceConfig(ctx, vid, pid, Config{})
}

// OpenDeviceConfig is OpenDevice with a context and a Config. The link's
// default name is "usb:VVVV:PPPP".
func OpenDeviceConfig(ctx context.Context, vid, pid uint16, cfg Config) (*Link, error) {
	usbctx, err := newUSBContext()
	if err != nil {
		return nil, fmt.Errorf("usb: cannot initialise libusb: %w", err)
	}
	seen := 0
	devs, err := usbctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		seen++
		return uint16(d.Vendor) == vid && uint16(d.Product) == pid
	})
	if len(devs) == 0 {
		usbctx.Close()
		if err != nil {
			return nil, fmt.Errorf("usb: cannot open device %04x:%04x: %w", vid, pid, err)
		}
		return nil, fmt.Errorf("usb: no device %04x:%04x found (bus has %d devices)", vid, pid, seen)
	}
	dev := devs[0]
	for _, d := range devs[1:] {
		d.Close()
	}
	fail := func(err error) (*Link, error) {
		dev.Close()
		usbctx.Close()
		return nil, err
	}

	setting, cfgNum, in, out, err := findCCID(dev.Desc)
	if err != nil {
		return fail(fmt.Errorf("usb: device %04x:%04x: %w", vid, pid, err))
	}
	if err := dev.SetAutoDetach(true); err != nil {
		return fail(fmt.Errorf("usb: device %04x:%04x: detaching the kernel driver: %w", vid, pid, err))
	}
	config, err := dev.Config(cfgNum)
	if err != nil {
		return fail(fmt.Errorf("usb: device %04x:%04x: selecting configuration %d: %w", vid, pid, cfgNum, err))
	}
	intf, err := config.Interface(setting.Number, setting.Alternate)
	if err != nil {
		config.Close()
		return fail(fmt.Errorf("usb: device %04x:%04x: claiming CCID interface %d: %w", vid, pid, setting.Number, err))
	}
	release := func() error {
		intf.Close()
		errCfg := config.Close()
		errDev := dev.Close()
		errCtx := usbctx.Close()
		return errors.Join(errCfg, errDev, errCtx)
	}
	inEP, err := intf.InEndpoint(in.Number)
	if err != nil {
		release()
		return nil, fmt.Errorf("usb: device %04x:%04x: bulk-in endpoint %s: %w", vid, pid, in.Address, err)
	}
	outEP, err := intf.OutEndpoint(out.Number)
	if err != nil {
		release()
		return nil, fmt.Errorf("usb: device %04x:%04x: bulk-out endpoint %s: %w", vid, pid, out.Address, err)
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("usb:%04x:%04x", vid, pid)
	}
	l, err := New(ctx, newEndpointPipe(inEP, outEP, in.MaxPacketSize), cfg)
	if err != nil {
		release()
		return nil, err
	}
	l.release = release
	return l, nil
}

// newUSBContext starts libusb. gousb panics when libusb_init fails; the
// panic becomes an error here.
func newUSBContext() (c *gousb.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return gousb.NewContext(), nil
}

// findCCID returns the first alternate setting of class 0x0B (smart card)
// with one bulk-in and one bulk-out endpoint, and its configuration number.
func findCCID(d *gousb.DeviceDesc) (gousb.InterfaceSetting, int, gousb.EndpointDesc, gousb.EndpointDesc, error) {
	var nums []int
	for n := range d.Configs {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		for _, intf := range d.Configs[n].Interfaces {
			for _, alt := range intf.AltSettings {
				if alt.Class != gousb.ClassSmartCard {
					continue
				}
				var in, out *gousb.EndpointDesc
				for _, ep := range alt.Endpoints {
					if ep.TransferType != gousb.TransferTypeBulk {
						continue
					}
					ep := ep
					if ep.Direction == gousb.EndpointDirectionIn && in == nil {
						in = &ep
					}
					if ep.Direction == gousb.EndpointDirectionOut && out == nil {
						out = &ep
					}
				}
				if in != nil && out != nil {
					return alt, n, *in, *out, nil
				}
			}
		}
	}
	return gousb.InterfaceSetting{}, 0, gousb.EndpointDesc{}, gousb.EndpointDesc{},
		errors.New("no CCID interface (class 0x0B) with bulk-in and bulk-out endpoints")
}

// endpointPipe is a BulkPipe over a real device's endpoints.
type endpointPipe struct {
	in  *gousb.InEndpoint
	out *gousb.OutEndpoint
	buf []byte
}

func newEndpointPipe(in *gousb.InEndpoint, out *gousb.OutEndpoint, packet int) *endpointPipe {
	if packet <= 0 {
		packet = 64
	}
	// A read request is a whole number of packets large enough for the
	// largest message; the transfer ends at the reader's short packet.
	size := (ccid.MaxMessage + packet - 1) / packet * packet
	return &endpointPipe{in: in, out: out, buf: make([]byte, size)}
}

func (p *endpointPipe) Write(ctx context.Context, msg []byte) error {
	n, err := p.out.WriteContext(ctx, msg)
	if err != nil {
		return err
	}
	if n != len(msg) {
		return fmt.Errorf("usb: bulk-out wrote %d of %d bytes", n, len(msg))
	}
	return nil
}

func (p *endpointPipe) Read(ctx context.Context) ([]byte, error) {
	n, err := p.in.ReadContext(ctx, p.buf)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), p.buf[:n]...), nil
}
