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
// Exit status: 0 on success (for certify: the device is CERTIFIED), and for
// -h or --help, which print the command's flags with their descriptions to
// standard output; 2 for a usage mistake (an unknown command or flag, a
// missing or malformed argument, a DUT string that does not parse), told in
// one line on standard error that names the help to read; 1 for a failure
// (a missing file, a device that cannot be opened, a run that is not a
// certificate), told in a line that starts "spdlab: ".
//
// A DUT string chooses how the device is reached: ref, pcsc[:READER],
// serial:PATH, usb:VID:PID, usb-emu, sd:DIR, replay:FILE, faulty:MODE
// (rigs/dut).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"

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

// usageError is a usage mistake the subcommand has not explained yet: run
// prints it as one line naming the command's help, and exits 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// usageErrorf makes a usageError.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

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
		usage(e.stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "spdlab: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	// Help that was asked for goes to standard output (so that it can be
	// paged or searched); everything else a subcommand writes to standard
	// error stays there. A subcommand given a help flag prints its help and
	// returns at once, so holding its standard error until then delays
	// nothing.
	stderr := e.stderr
	var held *bytes.Buffer
	if asksHelp(args[1:]) {
		held = new(bytes.Buffer)
		e.stderr = held
	}
	err := c.run(ctx, e, args[1:])
	if held != nil {
		e.stderr = stderr
		if errors.Is(err, flag.ErrHelp) {
			e.stdout.Write(held.Bytes())
		} else {
			stderr.Write(held.Bytes())
		}
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(e.stderr, "spdlab %s: %s (see 'spdlab %s --help')\n", args[0], ue.msg, args[0])
			return 2
		}
		if errors.Is(err, errUsage) || e.usageShown {
			return 2
		}
		fmt.Fprintf(e.stderr, "spdlab: %v\n", err)
		return 1
	}
	return 0
}

// asksHelp reports whether args hold a help flag before any "--".
func asksHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}

// newFlags makes a flag set for a subcommand that prints to e.stderr.
// Parse returns flag.ErrHelp for -h and --help after printing the
// synopsis and every flag with its description; run exits 0 for it. A
// flag Parse cannot take (unknown, without its value, a value that does
// not parse) is told in one line that names the help, not with the whole
// help; run exits 2 for it. Calling Usage from the subcommand prints the
// whole help.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("spdlab "+name, flag.ContinueOnError)
	// The flag package writes its parse error to Output, then calls
	// Usage: the error is caught here and told by Usage.
	var parseErr bytes.Buffer
	fs.SetOutput(&parseErr)
	fs.Usage = func() {
		e.usageShown = true
		if msg := strings.TrimSpace(parseErr.String()); msg != "" {
			parseErr.Reset()
			fmt.Fprintf(e.stderr, "spdlab %s: %s (see 'spdlab %s --help')\n", name, flagMistake(fs, msg), name)
			return
		}
		fs.SetOutput(e.stderr)
		defer fs.SetOutput(&parseErr)
		fmt.Fprintf(e.stderr, "usage: spdlab %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// invalidFlagValue matches the flag package's error for a value Set
// refused.
var invalidFlagValue = regexp.MustCompile(`^invalid value (".*") for flag -(\S+): (.*)$`)

// flagMistake words the flag package's parse errors as a user reads them.
func flagMistake(fs *flag.FlagSet, msg string) string {
	if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown flag " + f
	}
	if f, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "flag " + f + " needs a value"
	}
	if m := invalidFlagValue.FindStringSubmatch(msg); m != nil {
		why := m[3]
		if why == "parse error" {
			why = "not a valid value"
			if f := fs.Lookup(m[2]); f != nil {
				if g, ok := f.Value.(flag.Getter); ok {
					switch g.Get().(type) {
					case time.Duration:
						why = "not a duration (write 90s, 45m or 2h)"
					case int, int64, uint, uint64:
						why = "not a whole number"
					case bool:
						why = "not true or false"
					case float64:
						why = "not a number"
					}
				}
			}
		}
		return "-" + m[2] + " " + m[1] + ": " + why
	}
	return msg
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

// dutSpec is a --dut flag that takes one DUT string, checked as it is
// parsed: a string rigs/dut cannot read is a usage mistake.
type dutSpec string

func (d *dutSpec) String() string { return string(*d) }
func (d *dutSpec) Set(s string) error {
	if err := dut.Check(s); err != nil {
		return err
	}
	*d = dutSpec(s)
	return nil
}

// dutFlag defines --dut on fs, "ref" unless given, and returns where its
// value is kept.
func dutFlag(fs *flag.FlagSet, usage string) *string {
	d := dutSpec("ref")
	fs.Var(&d, "dut", usage)
	return (*string)(&d)
}

// labelFilter is a --label-filter flag, checked as it is parsed: an
// expression Ginkgo cannot read is a usage mistake, found before a device
// is opened.
type labelFilter string

func (l *labelFilter) String() string { return string(*l) }
func (l *labelFilter) Set(s string) error {
	if _, err := types.ParseLabelFilter(s); err != nil {
		return plainGinkgoError(err)
	}
	*l = labelFilter(s)
	return nil
}

// labelFilterFlag defines --label-filter on fs.
func labelFilterFlag(fs *flag.FlagSet, usage string) *string {
	var l labelFilter
	fs.Var(&l, "label-filter", usage)
	return (*string)(&l)
}

// focusRegexp is a --focus flag, checked as it is parsed: Ginkgo compiles
// it only when the suite starts, and panics on one that does not compile.
type focusRegexp string

func (f *focusRegexp) String() string { return string(*f) }
func (f *focusRegexp) Set(s string) error {
	if _, err := regexp.Compile(s); err != nil {
		return err
	}
	*f = focusRegexp(s)
	return nil
}

// focusFlag defines --focus on fs.
func focusFlag(fs *flag.FlagSet, usage string) *string {
	var f focusRegexp
	fs.Var(&f, "focus", usage)
	return (*string)(&f)
}

// ansi matches a terminal colour or style sequence.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// plainGinkgoError words a Ginkgo error in one line without colour: its
// heading and the last line of its message (the line before it repeats
// the input with the fault highlighted).
func plainGinkgoError(err error) error {
	var ge types.GinkgoError
	if !errors.As(err, &ge) {
		return errors.New(ansi.ReplaceAllString(err.Error(), ""))
	}
	msg := ""
	for _, l := range strings.Split(ansi.ReplaceAllString(ge.Message, ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			msg = l
		}
	}
	return fmt.Errorf("%s: %s", strings.ToLower(ge.Heading), msg)
}
