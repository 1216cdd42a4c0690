# spdlab build. `make run` and `make test` install what they need first.
GO        ?= go
FUZZTIME  ?= 30s
BENCHTIME ?= 1s
DUTS      ?= ref usb-emu serial-emu sd-emu pcsc-emu serial-emu+noise=0.0002 ref+removal
OUT       ?= out
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Every go command here builds with -trimpath (added to GOFLAGS, as `go env GOFLAGS` has it,
# unless it is there). Without it the go command keys each compiled package of this module
# on the checkout's directory, so that a clone in a new directory compiled everything again,
# and make test (which needs it for that reason) compiled everything make run had compiled
# without it: on an empty build cache, 195 s of CPU for make run's build of the CLI, then
# 185 s more for the same build with -trimpath.
GOFLAGS_NOW := $(shell $(GO) env GOFLAGS 2>/dev/null)
export GOFLAGS := $(strip $(GOFLAGS_NOW) $(if $(filter -trimpath,$(GOFLAGS_NOW)),,-trimpath))

APT_PACKAGES := pcscd vsmartcard-vpcd libpcsclite-dev libusb-1.0-0-dev pkg-config pcsc-tools opensc tshark zbar-tools dmtx-utils chromium postgresql

.PHONY: all deps services build run test test-unit test-backend-postgres test-scenarios test-certify mutants check-builds check-hygiene check-static check-race bench fuzz vet clean

all: build

## deps: Debian packages (as root) and Go modules through the proxy
deps:
	@bash scripts/deps.sh $(APT_PACKAGES)
	@command -v xunit-viewer >/dev/null || ! command -v npm >/dev/null || npm install -g --no-audit --no-fund xunit-viewer@10.6.1 >/tmp/spdlab-npm.log 2>&1 || \
	  echo "deps: npm could not install xunit-viewer (log: /tmp/spdlab-npm.log): its JUnit test will be skipped"
	@$(GO) mod download

## services: pcscd with the vsmartcard-vpcd reader driver (needs root)
services: deps
	@bash .ci/pcscd || { [ -z "$$CI" ] || exit 1; \
	  echo "services: pcscd with vpcd is not running: the PC/SC tests and the pcsc-emu suite will be skipped."; \
	  echo "services: run 'sudo bash .ci/pcscd' (or make test as root) to include them."; }

build: deps
	$(GO) build -buildvcs=auto -o bin/spdlab ./cmd/spdlab

## run: the main job on the embedded default (the reference device, in process)
run: build
	./bin/spdlab demo --out $(OUT)/demo

## test: every check and unit test, the conformance suite on every emulated transport,
## certification of devices reached as hardware is, and the mutants, in two lanes side by
## side (scripts/test.sh: check-race, test-backend-postgres, the InBrowser tests check-race
## skips, mutants, check-static | the suite binary, the suite package's tests check-race skips,
## the tests of the packages check-race leaves out and of the WholeSuite tests it skips,
## test-scenarios, test-certify, check-builds, vet; package tests through scripts/gotest.sh;
## TEST_LANES=1 runs them one after the other); prints each step's time
test: services
	@GO="$(GO)" MAKE="$(MAKE)" OUT="$(OUT)" bash scripts/test.sh

## test-backend-postgres: the backend's tests on PostgreSQL: Debian's postgresql binaries, a
## private server the tests start (initdb on a temporary directory, 127.0.0.1 and a free port,
## as the postgres user when run as root) and stop; without the binaries they skip, unless CI is set.
## The test binary is kept between runs (scripts/gotest.sh).
## PG_TESTFLAGS: more flags for scripts/gotest.sh (make test: -vet=off, as its go vet ./...
## vets the package)
PG_TESTFLAGS ?=
test-backend-postgres:
	GO="$(GO)" bash scripts/gotest.sh $(PG_TESTFLAGS) -timeout 15m ./reference/backend/ -args -store=postgres

## test-scenarios: spdlab certify on every DUT in DUTS side by side (SCENARIO_JOBS at once,
## default all), each running its cases in parallel processes where the DUT allows
## (SCENARIO_PROCS, certify --procs; default the CPUs shared among the DUTs at once);
## reports in $(OUT)/reports/<dut>, each verdict printed, golden evidence in $(OUT)/golden/<dut>
test-scenarios: build
	@OUT=$(OUT) SPDLAB=bin/spdlab GOLDEN=$(OUT)/golden bash scripts/scenarios.sh $(DUTS)

## test-certify: certify reference devices reached only as hardware is (a separate emulator
## process per sample, --dut serial:PATH, sd:DIR and pcsc:READER with an ICS) and check every
## verdict rule, the standalone suite binary and the ICS's features and capacities on serial
## samples (ics), and the campaign checks on the in-process reference device (shards,
## differential runs, golden evidence): scripts/certify-proof.sh, CERTIFY_JOBS proofs at once in
## the order that ends soonest on two, each log printed when all are done. Two at once is the
## quickest: on the idle 2-core machine all of them at once took 51.3 s and 86.0 s of CPU, two
## 42.0 s and 67.5 s, one 54.5 s and 59.3 s
CERTIFY_JOBS ?= 2
test-certify: build
	@mkdir -p $(OUT); ts="serial ics sd campaign"; \
	if [ -S /run/pcscd/pcscd.comm ] || [ -n "$$CI" ]; then ts="pcsc $$ts"; \
	else echo "== certify-proof pcsc: skipped, pcscd is not running (sudo bash .ci/pcscd)"; fi; \
	rc=0; printf '%s\n' $$ts | BIN=bin/spdlab GOLDEN=$(OUT)/golden/ref OUT=$(OUT) \
	  xargs -P $(CERTIFY_JOBS) -I{} sh -c 'bash scripts/certify-proof.sh {} >"$$OUT/certify-proof-{}.log" 2>&1' || rc=1; \
	for t in $$ts; do cat $(OUT)/certify-proof-$$t.log; done; exit $$rc

## mutants: the suite must fail every mutant of the reference device (device.Mutants), a
## plausible vendor bug each, in process and behind usb-emu; lists the case that killed each
mutants: deps
	@bash scripts/mutants.sh $(OUT)/mutants

## check-builds: the CLI builds and its USB rig answers without cgo (so
## without libpcsclite and libusb), and the whole module type-checks for macOS, where
## cross-compiling is also without cgo: go vet there compiles every package another
## imports and checks each one and its tests with every analyzer. Files that build only
## without cgo are the same on both; those that build only on Linux are vetted by the
## go vet ./... of make test, with cgo. Each of the two configurations compiles
## everything (the standard library too) that nothing else uses, so without
## optimisation (CHECK_GCFLAGS; 40% less CPU for the largest package,
## modernc.org/sqlite/lib): what compiles and links does so either way.
## The cgo-free CLI is kept (NOCGO_BIN) and the USB rig's test binary too (scripts/gotest.sh),
## so that a run with nothing changed links neither again: 3.0 to 3.2 s of CPU, against 4.2 to
## 4.3 s when the CLI was linked to /dev/null and the test run by go test (three runs each)
CHECK_GCFLAGS ?= -gcflags='all=-N -l'
NOCGO_BIN ?= $${XDG_CACHE_HOME:-$$HOME/.cache}/spdlab/spdlab-nocgo
check-builds:
	CGO_ENABLED=0 $(GO) build $(CHECK_GCFLAGS) -o "$(NOCGO_BIN)" ./cmd/spdlab
	CGO_ENABLED=0 GO="$(GO)" bash scripts/gotest.sh -vet=off $(CHECK_GCFLAGS) -run 'WithoutCgo' ./rigs/usb
	GOOS=darwin $(GO) vet $(CHECK_GCFLAGS) ./...

## check-hygiene: go.mod and go.sum tidy, staticcheck clean (check-static), and the race
## detector on every package that starts a goroutine (check-race)
check-hygiene: check-static check-race

## check-static: gofmt, go.mod and go.sum tidy, staticcheck clean (scenarios/staticcheck.conf
## allows the Ginkgo and Gomega dot imports). Built with -trimpath (as every build here is), a
## package is the same to staticcheck's cache in every clone, and a finding it kept names the
## file in the clone that first analysed it (../other-clone/cmd/spdlab/x.go): when staticcheck
## finds anything, it runs again on an empty cache of its own, whose findings name this
## checkout's files, and only those are printed (about 40 s of CPU, on failure alone)
check-static:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(GO) mod tidy -diff
	@echo "$(GO) run $(STATICCHECK) ./..."; \
	  $(GO) run $(STATICCHECK) ./... >/dev/null 2>&1 || { cache=$$(mktemp -d); \
	  STATICCHECK_CACHE=$$cache $(GO) run $(STATICCHECK) ./...; rc=$$?; rm -rf "$$cache"; exit $$rc; }

## check-race: the race detector on every package that starts a goroutine, found by grep so
## that a new one is never left out (scripts/race-packages.sh); make test runs the tests of
## these packages only here, the others' without it. The test binaries are kept between runs
## (scripts/gotest.sh; go test's vet of each package, in the race build, as go test -race).
## A race-built program sleeps 1 s as it exits (GORACE atexit_sleep_ms) and these tests start
## hundreds of them as child processes (tiny suites, certify's processes): GORACE_ATEXIT_MS
## sets that sleep, default 0.
## SQLite (modernc.org/sqlite/lib, C translated to Go, and its C library modernc.org/libc)
## is compiled without the race detector's instrumentation and pointer checks (RACE_GCFLAGS),
## as cgo's C code always is: it works on memory it allocates itself, the Go side of the
## driver (modernc.org/sqlite) and all of spdlab stay instrumented; instrumented, SQLite took
## more than half of reference/backend's race run (20 s instead of 8 s)
GORACE_ATEXIT_MS ?= 0
RACE_GCFLAGS ?= -gcflags='modernc.org/sqlite/lib=-race=false -d=checkptr=0' -gcflags='modernc.org/libc/...=-race=false -d=checkptr=0'
check-race:
	@pkgs=$$(bash scripts/race-packages.sh) && [ -n "$$pkgs" ] || exit 1; \
	  first=$$(bash scripts/race-packages.sh --vpcd | wc -l) || exit 1; \
	  export GORACE="atexit_sleep_ms=$(GORACE_ATEXIT_MS) $$GORACE"; \
	  echo "GORACE='$$GORACE' scripts/gotest.sh -race $(RACE_GCFLAGS) -timeout 15m -first $$first" $$pkgs; \
	  GO="$(GO)" bash scripts/gotest.sh -race $(RACE_GCFLAGS) -timeout 15m -first $$first $$pkgs

## bench: transport round trips, payment and medium figures, each as a ratio to its floor;
## the authorisation benchmark and the suite on each DUT in BENCH_ROUNDS interleaved rounds
## (default 3), judged on the median
BENCH_ROUNDS ?= 3
bench: services
	@BENCH_ROUNDS=$(BENCH_ROUNDS) bash scripts/bench.sh $(BENCHTIME)

## fuzz: every fuzz target for FUZZTIME each
fuzz: deps
	@bash scripts/fuzz.sh $(FUZZTIME)

vet:
	$(GO) vet ./...

clean:
	rm -rf bin $(OUT)
