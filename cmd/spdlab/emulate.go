package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sdcard"
	emuserial "github.com/spdlab/spdlab/emulator/serial"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/store"
)

// otherVPCDSlot returns the card-side address of Debian vpcd's other slot
// (its two slots listen on 35963 and 35964).
func otherVPCDSlot(address string) (string, bool) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", false
	}
	switch port {
	case "35963":
		return net.JoinHostPort(host, "35964"), true
	case "35964":
		return net.JoinHostPort(host, "35963"), true
	}
	return "", false
}

func runEmulate(ctx context.Context, e *env, args []string) (err error) {
	flags := newFlags(e, "emulate", `FORM [flags]

FORM is how the device appears to the operating system:
  sim     an ISO 7816 SIM in PC/SC reader "Virtual PCD 00 00", through pcscd and the vpcd driver
  esim    the same card with an eSIM (embedded UICC) ATR
  serial  a UART device on a pseudo-terminal (framed APDUs with CRC and retransmission)
  sd      a secure microSD card: 512-byte command/response blocks in a directory

It serves until Ctrl-C (SIGINT) or SIGTERM.

flags:`)
	app := flags.String("app", "spd", "the card application: spd (the reference device) or select-only (answers SELECT and nothing else, to see that the lab refuses to certify it)")
	statePath := flags.String("state", "", "keep the card's persistent memory in this file across restarts (default: in memory)")
	vpcdAddr := flags.String("vpcd", sim.DefaultAddress, "sim, esim: vpcd's card-side address")
	slotWait := flags.Duration("slot-wait", 30*time.Second, "sim, esim: how long to wait for another program to free the vpcd slot")
	linkPath := flags.String("link", "", "serial: also make PATH a symbolic link to the pty")
	dir := flags.String("dir", "", "sd: the directory standing for the card's mount point (default: a new temporary directory)")
	icsPath := flags.String("ics", "", "spd: make the device to the capacities of this implementation conformance statement (its ledger, tokens, transfers and imports; SPEC.md section 11), to emulate a product whose capacities are not the reference device's (default: the reference device's)")
	if len(args) == 0 || isHelp(args[0]) {
		flags.Usage()
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	form := args[0]
	switch form {
	case "sim", "esim", "serial", "sd":
	default:
		fmt.Fprintf(e.stderr, "spdlab emulate: unknown form %q (want sim, esim, serial or sd)\n", form)
		flags.Usage()
		return errUsage
	}
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		fmt.Fprintf(e.stderr, "spdlab emulate: unexpected argument %q\n", flags.Arg(0))
		flags.Usage()
		return errUsage
	}
	var cfg device.Config
	if *icsPath != "" {
		s, err := loadICS(*icsPath)
		if err != nil {
			return err
		}
		c := s.Capacities
		cfg = device.Config{MaxLedger: c.Ledger, MaxTokens: c.Tokens, MaxTransfers: c.Transfers, MaxImports: c.Imports}
	}
	var st store.Store = store.NewMemory()
	if *statePath != "" {
		f, err := store.OpenFile(*statePath)
		if err != nil {
			return fmt.Errorf("%w\n(the state is the pair %s and %s.log: keep both together, or move both away to start a blank device)", err, *statePath, *statePath)
		}
		st = f
	}
	// On Ctrl-C or SIGTERM: close the store, then say where the device's
	// state is and how to go on with it.
	defer func() {
		cerr := st.Close()
		if cerr != nil && err == nil {
			err = fmt.Errorf("emulate: saving the device state: %w", cerr)
		}
		if ctx.Err() == nil || err != nil {
			return
		}
		if *statePath == "" {
			fmt.Fprintln(e.stdout, "spdlab: stopped; the device's state was kept in memory only and is gone (--state FILE keeps it across runs)")
			return
		}
		again := "spdlab " + strings.Join(append([]string{"emulate", form}, args[1:]...), " ")
		fmt.Fprintf(e.stdout, "spdlab: stopped; the device's state is saved in %s and %s.log (keep both together)\ncontinue with the same device: %s\n", *statePath, *statePath, again)
	}()
	var dev emulator.Card
	switch *app {
	case "spd":
		dev = device.New(st, cfg)
	case "select-only":
		dev = selectOnlyCard{}
	default:
		return fmt.Errorf("emulate: unknown --app %q (want spd or select-only)", *app)
	}

	switch form {
	case "sim", "esim":
		f := emulator.FormSIM
		if form == "esim" {
			f = emulator.FormESIM
		}
		em := sim.New(dev, sim.Config{Address: *vpcdAddr, Form: f, SlotWait: *slotWait})
		reader := sim.ReaderName(em.Address())
		if reader == "" {
			reader = "the vpcd reader listening at " + em.Address()
		} else {
			reader = strconv.Quote(reader)
		}
		fmt.Fprintf(e.stdout, "spdlab: %s in PC/SC reader %s through vpcd at %s (ATR % X); Ctrl-C stops\n",
			form, reader, em.Address(), em.ATR())
		err := em.Run(ctx)
		if errors.Is(err, sim.ErrSlotBusy) {
			if other, ok := otherVPCDSlot(em.Address()); ok {
				return fmt.Errorf("%w; vpcd's other slot is --vpcd %s (reader %q)", err, other, sim.ReaderName(other))
			}
		}
		return err
	case "serial":
		em := emuserial.New(dev, emuserial.Config{})
		path, err := em.Start()
		if err != nil {
			return err
		}
		defer em.Close()
		if *linkPath != "" {
			if err := em.Link(*linkPath); err != nil {
				return err
			}
			path = *linkPath + " -> " + path
		}
		fmt.Fprintf(e.stdout, "spdlab: serial device on %s (DUT serial:%s); Ctrl-C stops\n", path, em.Path())
		return em.Run(ctx)
	case "sd":
		if *dir == "" {
			d, err := os.MkdirTemp("", "spdlab-sd-")
			if err != nil {
				return err
			}
			*dir = d
		}
		em := sdcard.New(dev, *dir, sdcard.Config{})
		if err := em.Start(); err != nil {
			return err
		}
		defer em.Close()
		fmt.Fprintf(e.stdout, "spdlab: microSD channel in %s (DUT sd:%s); Ctrl-C stops\n", em.Dir(), em.Dir())
		return em.Run(ctx)
	}
	return fmt.Errorf("unknown form %q (want sim, esim, serial or sd)", form)
}
