#!/usr/bin/env bash
# make test's steps, in two lanes that run side by side: the checks (the
# race detector on every package that starts a goroutine, then the
# backend's tests again on PostgreSQL, which mostly wait on the server, the
# report tests that wait on headless Chromium, the mutants, and gofmt,
# tidiness and staticcheck) in one, the tests (the suite binary, every
# other package's tests, the conformance suite on every emulated DUT,
# certification of devices reached as hardware is, then the cgo-free and
# macOS builds and vet) in the other. The checks lane was the longer in
# every CI run of 2026-12-01 (by 10 to 30 s) while the mutants took 40 to
# 55 s; since they share suite processes (5 to 10 s) the static checks (4
# to 16 s) end it instead of the tests lane. Once check-race kept its test
# binaries (scripts/gotest.sh) it was the tests lane that ended last, by 10
# to 30 s, and the Chromium tests (12 to 23 s) moved to the checks lane.
# Every step still runs, each
# in the order of its lane; a lane stops at its first failing step and the
# script fails when either lane does.
#
# Each test runs once: the packages that start goroutines only under the
# race detector (make check-race), the others only in the tests lane
# (scripts/race-packages.sh --others), but for the tests of cmd/spdlab that
# run the whole conformance suite in a child process (named ...WholeSuite):
# under the race detector that child takes minutes and they skip, and the
# suite's own race run is ./scenarios'; they run in the tests lane without
# it. The tests of ./scenarios that check the suite's sources and vectors
# in one goroutine (withoutRaceTests) skip under it too, and the suite
# binary runs them in the tests lane; the tests of ./reports that render a
# report in headless Chromium (named ...InBrowser), whose time is
# Chromium's, skip under it too and run in the checks lane without it. On
# a fresh clone the build cache is
# empty and most of the time goes to compiling; two go commands compiling the same package at once both
# compile it, so each lane starts with a build configuration the other does
# not use (race; plain, through the suite binary) and the steps that share
# one come after it. Much of the rest waits rather than computes
# (single-threaded links, timers, processes started one after another), and
# the other lane fills those gaps.
#
# Every output line carries its lane's name; each step's wall time and CPU
# time are printed when it ends, and a table of them at the end, so a CI
# log shows where the time goes.
#
#   scripts/test.sh            TEST_LANES=1 runs the two lanes one after the other
#
# Environment: GO (default go), MAKE (default make), OUT (default out).
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
MAKE=${MAKE:-make}
OUT=${OUT:-out}
# Test binaries and the tools built here carry no DWARF debugging
# information: make test has about fifty test binaries, and leaving it out
# takes about a third off each link (a later `make build` links bin/spdlab
# with it). The package tests run through scripts/gotest.sh, which keeps
# each test binary between runs and links again only those whose packages
# (or anything they are made of) changed: go test linked all of them at
# every run, some 28 s of CPU. The steps of this lane (no -race) leave out
# go test's own vet, a few of vet's analyzers on each package: the lane
# ends with `go vet ./...`, every analyzer on every package and its tests,
# in the same build configuration; so does the checks lane's PostgreSQL
# pass of reference/backend. (check-race keeps it: it also vets the files
# built only with -race.)
# Everything is built with -trimpath (the Makefile adds it to GOFLAGS for
# every go command; it is added here too when missing, as when this script
# runs alone): without it the go command keys each compiled package of this
# module on the directory it was compiled in, so a clone in a new directory
# compiled the whole module again in every build configuration (race,
# plain, cgo-free, macOS, staticcheck's), linked every test binary and
# vetted every package, however warm the build cache: 348 s and 662 s of
# CPU, against 182 s and 332 s for the same commit run again in a directory
# used before. With it, what was built in one clone serves every other
# (scripts/gotest.sh keeps the test binaries the same way), and file names
# in stack traces and test failures start at the module path.
GOFLAGS=$($GO env GOFLAGS)
[[ " $GOFLAGS " == *" -trimpath "* ]] || GOFLAGS+=" -trimpath"
GOFLAGS+=" -ldflags=-w"
export GOFLAGS
# The compilers, linkers and vet, and the test processes, collect garbage at
# a target of 400 unless GOGC is set: their live heaps are small next to
# what they allocate. The race detector's compile and run of its packages
# after a change to reference/apdu took 93 s of CPU at 400 against 104 s at
# Go's default of 100, back to back.
export GOGC="${GOGC:-400}"
times=$(mktemp -d)
trap 'rm -rf "$times"' EXIT

# The suite binary is built once, by the tests lane's first step, and used
# by certification and by the mutants in the other lane (the same binary
# make mutants would link itself, from the same packages with the same
# flags; its vet is the lane's last step): the step builds it with
# scripts/gotest.sh (kept between runs, linked again only when something
# it is made of changed), copies it under a temporary name, renames it
# and writes its exit status to $suite.status
# (publish_suite), which the mutants step waits for (suite_built). With
# TEST_LANES=1 the checks lane runs first, and make mutants builds its own,
# as it does alone. The same step then links bin/spdlab (make build), and
# the tests that run spdlab as a program (the module root's, and
# reference/backend's on PostgreSQL in the other lane, after suite_built)
# take it from SPDLAB_TEST_BIN rather than each linking their own: each
# link takes 3 to 5 s of CPU, and test-scenarios' and test-certify's make
# build then find bin/spdlab up to date.
mkdir -p "$OUT"
suite=$(cd "$OUT" && pwd)/scenarios.test
rm -f "$suite.status"
export suite
# publish_suite COMMAND...: runs COMMAND, which writes $suite.tmp, renames
# that to $suite, and writes the exit status to $suite.status.
publish_suite() {
	"$@" && mv "$suite.tmp" "$suite"
	local rc=$?
	echo "$rc" >"$suite.status"
	return "$rc"
}
suite_built() {
	until [[ -s $suite.status ]]; do sleep 0.5; done
	[[ $(<"$suite.status") == 0 ]] || { echo "the tests lane could not build the suite binary $suite or bin/spdlab"; return 1; }
}
export -f publish_suite suite_built
mutants="SUITE=$OUT/mutants/scenarios.test $MAKE --no-print-directory mutants OUT=$OUT"
postgres="$MAKE --no-print-directory test-backend-postgres PG_TESTFLAGS=-vet=off"
spdlab_bin=$PWD/bin/spdlab
if [[ ${TEST_LANES:-2} != 1 ]]; then
	mutants="suite_built && SUITE=$suite $MAKE --no-print-directory mutants OUT=$OUT"
	postgres="suite_built && SPDLAB_TEST_BIN=$spdlab_bin $postgres"
fi
checks=(
	"$MAKE --no-print-directory check-race"
	"$postgres"
	"bash scripts/gotest.sh -vet=off -run InBrowser ./reports"
	"$mutants"
	"$MAKE --no-print-directory check-static"
)
tests=(
	"publish_suite bash -c 'bash scripts/gotest.sh -vet=off -o $suite.tmp ./scenarios && $MAKE --no-print-directory build'"
	"cd scenarios && pat=\$(bash ../scripts/race-packages.sh --without-race) && $suite -test.count=1 -test.run \"\$pat\""
	"pkgs=\$(bash scripts/race-packages.sh --others) && SPDLAB_TEST_BIN=$spdlab_bin bash scripts/gotest.sh -vet=off -timeout 20m \$pkgs"
	"bash scripts/gotest.sh -vet=off -timeout 20m -run WholeSuite ./cmd/spdlab"
	"$MAKE --no-print-directory test-scenarios OUT=$OUT"
	"SUITE=$suite $MAKE --no-print-directory test-certify OUT=$OUT"
	"$MAKE --no-print-directory check-builds"
	"$GO vet ./..."
)

# since T0: seconds from T0 (an $EPOCHREALTIME) to now.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# cputime FILE: writes to FILE the CPU seconds (user and system) of this
# shell's finished children so far, from bash's times (its second line,
# "XmY.YYYs XmZ.ZZZs"); times runs in this shell, not in a subshell of $(...).
cputime() {
	times >"$1.times"
	awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1.times" >"$1"
}

# lane NAME STEP...: runs the steps in turn, each line of their output
# prefixed with NAME; records "SECONDS CPU RC STEP" per step in $times/NAME
# (CPU: the seconds of CPU the step's processes took, user and system,
# which on 2 cores tells a step that computes from one that waits).
lane() {
	local name=$1 step t0 rc cpu
	shift
	for step in "$@"; do
		echo "[$name] == $step"
		t0=$EPOCHREALTIME
		cputime "$times/$name.cpu0"
		bash -c "$step" 2>&1 | sed -u "s/^/[$name] /" | tee "$times/$name.out"
		rc=${PIPESTATUS[0]}
		cputime "$times/$name.cpu1"
		cpu=$(awk 'NR == 1 { a = $1 } NR == 2 { printf "%.1f", $1 - a }' "$times/$name.cpu0" "$times/$name.cpu1")
		echo "$(since "$t0") $cpu $rc $step" >>"$times/$name"
		echo "[$name] == $step: $(since "$t0") s, $cpu s of CPU, exit $rc"
		((rc == 0)) || return "$rc"
	done
}

t0=$EPOCHREALTIME
if [[ ${TEST_LANES:-2} == 1 ]]; then
	lane checks "${checks[@]}"
	rc1=$?
	rc2=0
	((rc1 != 0)) || { lane tests "${tests[@]}"; rc2=$?; }
else
	lane checks "${checks[@]}" &
	p1=$!
	lane tests "${tests[@]}" &
	p2=$!
	wait "$p1"
	rc1=$?
	wait "$p2"
	rc2=$?
fi
total=$(since "$t0")
cputime "$times/all.cpu"

echo
echo "== make test: the time of each step"
for name in checks tests; do
	[[ -s $times/$name ]] || continue
	while read -r secs cpu rc step; do
		printf '%-7s %7.1f s  %7.1f s CPU  exit %-3s %s\n' "$name" "$secs" "$cpu" "$rc" "$step"
	done <"$times/$name"
done
printf '== make test: %.1f s wall time, %s s of CPU (lanes %s)\n' "$total" "$(cat "$times/all.cpu")" "${TEST_LANES:-2}"
# A failing step's own lines about what failed come again last, so that the
# end of a long log (all that some CI views keep) names the failing test.
for name in checks tests; do
	[[ -s $times/$name ]] || continue
	read -r _ _ rc step < <(tail -1 "$times/$name")
	((rc == 0)) && continue
	echo "== make test: $name failed in: $step; what it said of the failure (the full output is above):"
	grep -E -e '--- FAIL|^\[[a-z]+\] (FAIL|panic:|fatal error:)|\[FAIL\]|NOT CERTIFIED|\.go:[0-9]+: |Error [0-9]|timed out|exit status' \
		"$times/$name.out" | tail -n 40
	echo "== make test: failed in $name: $(grep -oE -e '--- FAIL: [^ ]+|^\[[a-z]+\] FAIL[[:space:]]+[^ ]+|\[FAIL\] .*|NOT CERTIFIED.*' "$times/$name.out" |
		sed -E 's/^--- FAIL: //; s/^\[[a-z]+\] FAIL[[:space:]]+/package /' | sort -u | head -20 | paste -sd ' ' -)"
done
((rc1 == 0 && rc2 == 0))
