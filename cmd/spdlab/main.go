// Command spdlab is the lab's one command line: it emulates devices, runs
// the conformance suite against a device under test, writes certification
// reports, serves the reference backend, and encodes and decodes coded
// media and merchant order codes.
//
//	spdlab demo      [--dut DUT] [--out DIR] [--backend URL] [--trace FILE]
//	spdlab certify   --dut DUT [--ics FILE] --out DIR [--focus REGEX] [--trace FILE]
//	spdlab cases     [--format md|json|yaml] [--label-filter EXPR]
//	spdlab report    --json FILE --dut DUT --out DIR | --verify DIR
//	spdlab emulate   sim|esim|serial|sd [--state FILE] ...
//	spdlab backend   --db FILE --listen 127.0.0.1:PORT
//	spdlab medium    decode FILE.png|TEXT | encode [--key FILE] [--png FILE]
//	spdlab merchant  decode FILE.png|TEXT | encode [--png FILE]
//	spdlab terminal  status|pay|settle|sync|show|token|transfer|receive|reclaim|send|claim|verify ...
//	spdlab version
//
// Every command prints its flags with -h or --help and exits 0; a usage
// mistake prints them and exits 2; a failure exits 1.
//
// A DUT string chooses how the device is reached: ref, pcsc[:READER],
// serial:PATH, usb:VID:PID, usb-emu, sd:DIR, replay:FILE, faulty:MODE
// (rigs/dut).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spdlab/spdlab/rigs/dut"
)

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a subcommand reads and writes besides its arguments.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// usageShown is set when a flag set printed its usage: a parse
	// error it returns then is a usage mistake, already explained.
	usageShown bool
}

// errUsage marks a usage error: the subcommand has printed its help.
var errUsage = errors.New("usage")

// commands is the table of subcommands.
var commands = map[string]command{
	"backend":  {summary: "serve the reference issuer and settlement host (HTTP JSON API, SQLite or PostgreSQL)", run: runBackend},
	"cases":    {summary: "list the conformance cases (ID, title, requirements, claims, what each needs) without running any", run: runCases},
	"certify":  {summary: "run the conformance suite against a device and write the signed certification report", run: runCertify},
	"demo":     {summary: "personalise a device, pay each way, pay offline and settle, showing every step", run: runDemo},
	"emulate":  {summary: "serve a reference device as a SIM or eSIM (pcscd+vpcd), on a serial pty, or as a microSD channel", run: runEmulate},
	"ics":      {summary: "write a commented implementation conformance statement (ICS) to fill, or check a filled one", run: runICS},
	"labkey":   {summary: "make or show the lab's report signing key (init --name LAB | show)", run: runLabKey},
	"medium":   {summary: "decode, verify and encode stored-value, token, transfer and result media", run: runMedium},
	"merchant": {summary: "decode and encode EMV QRCPS merchant-presented order codes", run: runMerchant},
	"report":   {summary: "write a certification report from a Ginkgo JSON report, or verify one against a trusted lab key", run: runReport},
	"terminal": {summary: "run a terminal flow (pay, settle, token, transfer, ...) on a device and a backend", run: runTerminal},
	"version":  {summary: "print spdlab's version and commit, and the suite and SPD profile versions it checks", run: runVersion},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: spdlab COMMAND [ARGS]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'spdlab COMMAND -h' for a command's flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return 2
	}
	if isHelp(args[0]) || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			// spdlab help COMMAND is spdlab COMMAND --help.
			return run(ctx, e, []string{args[1], "--help"})
		}
		usage(e.stderr)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "spdlab: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	if err := c.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errUsage) || e.usageShown {
			return 2
		}
		fmt.Fprintf(e.stderr, "spdlab: %v\n", err)
		return 1
	}
	return 0
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// newFlags makes a flag set for a subcommand that prints to e.stderr.
// Parse returns flag.ErrHelp for -h and --help after printing the
// synopsis and every flag with its description; run exits 0 for it.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("spdlab "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		e.usageShown = true
		fmt.Fprintf(e.stderr, "usage: spdlab %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// certifyDUTUsage describes certify's --dut flag: every DUT form rigs/dut
// opens, with the faulty devices' modes.
func certifyDUTUsage() string {
	modes := make([]string, 0, len(dut.FaultyModes))
	for m := range dut.FaultyModes {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	return "device under test; repeat for each physical sample (pcsc:READER, serial:PATH, usb:VID:PID, sd:DIR), " +
		"or one emulated DUT (ref, usb-emu, serial-emu, sd-emu, pcsc-emu), " +
		"replay:FILE (answers from a trace recorded with --trace), " +
		"or faulty:MODE (the reference device with one defect, to see the suite fail it: " + strings.Join(modes, ", ") + ")"
}
