package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spdlab/spdlab/emulator"
	"github.com/spdlab/spdlab/emulator/sdcard"
	emuserial "github.com/spdlab/spdlab/emulator/serial"
	"github.com/spdlab/spdlab/emulator/sim"
	"github.com/spdlab/spdlab/reference/device"
	"github.com/spdlab/spdlab/reference/store"
)

func init() {
	register("emulate", "serve a reference device as a SIM or eSIM (pcscd+vpcd), on a serial pty, or as a microSD channel", runEmulate)
}

func runEmulate(ctx context.Context, e *env, args []string) error {
	const synopsis = "sim|esim|serial|sd [--state FILE] [--vpcd ADDR] [--link PATH] [--dir DIR] [--app spd|select-only]"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, "usage: spdlab emulate "+synopsis)
		return errUsage
	}
	form := args[0]
	flags := newFlags(e, "emulate "+form, "[--state FILE] [--vpcd ADDR] [--link PATH] [--dir DIR] [--app spd|select-only]")
	app := flags.String("app", "spd", "the card application: spd (the reference device) or select-only (answers SELECT and nothing else, to see that the lab refuses to certify it)")
	statePath := flags.String("state", "", "keep the card's persistent memory in this file across restarts (default: in memory)")
	vpcdAddr := flags.String("vpcd", sim.DefaultAddress, "sim, esim: vpcd's card-side address")
	linkPath := flags.String("link", "", "serial: also make PATH a symbolic link to the pty")
	dir := flags.String("dir", "", "sd: the directory standing for the card's mount point")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	var st store.Store = store.NewMemory()
	if *statePath != "" {
		f, err := store.OpenFile(*statePath)
		if err != nil {
			return err
		}
		st = f
	}
	defer st.Close()
	var dev emulator.Card
	switch *app {
	case "spd":
		dev = device.New(st, device.Config{})
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
		em := sim.New(dev, sim.Config{Address: *vpcdAddr, Form: f})
		fmt.Fprintf(e.stdout, "spdlab: %s in PC/SC reader %q through vpcd at %s (ATR % X); Ctrl-C stops\n",
			form, sim.DefaultReaderName, em.Address(), em.ATR())
		err := em.Run(ctx)
		if errors.Is(err, sim.ErrSlotBusy) {
			return fmt.Errorf("%w at %s; vpcd's second slot is --vpcd 127.0.0.1:35964 (reader \"Virtual PCD 00 01\")", err, em.Address())
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
