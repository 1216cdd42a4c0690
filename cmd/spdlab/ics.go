package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spdlab/spdlab/scenarios/ics"
)

func runICS(ctx context.Context, e *env, args []string) error {
	const synopsis = "template [--out FILE] | check FILE"
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, "usage: spdlab ics "+synopsis)
		fmt.Fprintln(e.stderr, "  template  write the reference device's statement, every field commented, to fill for a product")
		fmt.Fprintln(e.stderr, "  check     validate a filled statement; problems are listed with their line numbers")
		if len(args) == 0 {
			return errUsage
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "template":
		flags := newFlags(e, "ics template", "[--out FILE]")
		out := flags.String("out", "", "write the template to FILE instead of standard output (an existing FILE is kept)")
		if err := flags.Parse(args[1:]); err != nil {
			return err
		}
		if flags.NArg() != 0 {
			flags.Usage()
			return errUsage
		}
		if *out == "" {
			_, err := e.stdout.Write(ics.Template())
			return err
		}
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("ics: %s exists; not overwriting a statement someone may have filled", *out)
		}
		if err != nil {
			return err
		}
		if _, err := f.Write(ics.Template()); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s: fill in the product, features, capacities and samples, then run spdlab ics check %s\n", *out, *out)
		return nil
	case "check":
		if len(args) != 2 {
			fmt.Fprintln(e.stderr, "usage: spdlab ics check FILE")
			return errUsage
		}
		s, err := loadICS(args[1])
		if err != nil {
			return err
		}
		on, off := 0, []string{}
		for _, f := range ics.Features {
			if s.Has(f) {
				on++
			} else {
				off = append(off, f)
			}
		}
		fmt.Fprintf(e.stdout, "%s: valid ICS for %s %s firmware %s (%s); %d of %d features declared",
			args[1], s.Product.Vendor, s.Product.Model, s.Product.Firmware, s.Product.FormFactor, on, len(ics.Features))
		if len(off) > 0 {
			fmt.Fprintf(e.stdout, "; not implemented: %v", off)
		}
		fmt.Fprintf(e.stdout, "; samples reset by %s; sha256 %s\n", s.Samples.Reset, s.SHA256)
		return nil
	}
	return fmt.Errorf("ics: unknown subcommand %q (want template or check)", args[0])
}

// loadICS reads and checks a statement, naming the file in every error.
func loadICS(path string) (*ics.ICS, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ics.Parse(b)
	if err != nil {
		var es ics.Errors
		if errors.As(err, &es) {
			msg := fmt.Sprintf("%s is not a valid ICS:", path)
			for _, e := range es {
				msg += fmt.Sprintf("\n  %s:%d: %s", path, e.Line, strings.TrimPrefix(e.Msg, "ics: "))
			}
			return nil, errors.New(msg)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
