// Command spdlab is the lab's one command line: it emulates devices, runs
// the conformance suite against a device under test, writes certification
// reports, serves the reference backend, and encodes and decodes coded
// media and merchant order codes.
//
//	spdlab demo      [--dut DUT] [--out DIR] [--backend URL] [--trace FILE]
//	spdlab certify   --dut DUT [--out DIR] [--focus REGEX] [--trace FILE]
//	spdlab report    --json FILE --dut DUT --out DIR | --verify DIR
//	spdlab emulate   sim|esim|serial|sd [--state FILE] ...
//	spdlab backend   --db FILE --listen 127.0.0.1:PORT
//	spdlab medium    decode FILE.png|TEXT | encode [--key FILE] [--png FILE]
//	spdlab merchant  decode FILE.png|TEXT | encode [--png FILE]
//	spdlab terminal  status|pay|settle|sync|show|token|transfer|receive|reclaim|send|claim|verify ...
//
// A DUT string chooses how the device is reached: ref, pcsc[:READER],
// serial:PATH, usb:VID:PID, usb-emu, sd:DIR, replay:FILE (rigs/dut).
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
	"syscall"
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
}

// errUsage marks a usage error: the subcommand has printed its help.
var errUsage = errors.New("usage")

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, env *env, args []string) error) {
	commands[name] = command{summary: summary, run: run}
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "spdlab: unknown command %q\n", args[0])
		usage(e.stderr)
		return 2
	}
	if err := c.run(ctx, e, args[1:]); err != nil {
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(e.stderr, "spdlab: %v\n", err)
		return 1
	}
	return 0
}

// newFlags makes a flag set for a subcommand that prints to e.stderr.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("spdlab "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: spdlab %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}
