#!/usr/bin/env bash
# Prints the module's packages (as ./dir) that start a goroutine, found by
# grep so that a new one is never left out: make check-race runs their
# tests under the race detector, those whose tests use pcscd's vpcd slots
# first. With --others, prints every other package
# of the module instead: make test runs those without it, so that no test
# runs twice (the race run of a package checks all its plain run checks).
# With --vpcd, prints only those that use the vpcd slots, the ones
# printed first (make check-race has scripts/gotest.sh build and start
# each of them before it builds the rest).
# With --without-race, prints the -test.run pattern of the tests of
# ./scenarios that skip under the race detector (withoutRaceTests in
# scenarios/withoutrace_test.go): make test runs them in its suite binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --without-race ]]; then
	sed -n 's/^const withoutRaceTests = `\(.*\)`$/\1/p' scenarios/withoutrace_test.go | grep .
	exit
fi
race=$(grep -rlE --include='*.go' '^[[:space:]]+go [A-Za-z_(]' . | xargs -n1 dirname | sort -u)
if [[ ${1:-} != --others ]]; then
	[[ ${1:-} == --vpcd || ${1:-} == "" ]] || { echo "race-packages.sh: unknown option $1" >&2; exit 2; }
	# First the packages whose tests serve cards on pcscd's vpcd slots (go
	# test runs packages in the order given): in make test they then run
	# while the other lane compiles and runs tests that need no PC/SC,
	# rather than queueing for the slots behind its pcsc-emu suite and
	# certification, which hold them for minutes. Among them, those with
	# the fewest dependencies first: after a change they build soonest
	# (scripts/gotest.sh -first starts each as soon as it is built).
	vpcd=$(grep -rlE --include='*_test.go' 'simtest\.|"pcsc-emu"|"--vpcd"' . | xargs -r -n1 dirname | sort -u |
		comm -12 - <(echo "$race"))
	if [[ -n $vpcd ]]; then
		root=$PWD
		# shellcheck disable=SC2086 # one package a word
		${GO:-go} list -f '{{len .Deps}} {{.Dir}}' $vpcd | sort -n -k1,1 -k2 | sed "s|^[0-9]* $root\$|.|; s|^[0-9]* $root/|./|"
	fi
	[[ ${1:-} == --vpcd ]] || comm -23 <(echo "$race") <(echo "$vpcd")
	exit
fi
root=$PWD
${GO:-go} list -f '{{.Dir}}' ./... | sed "s|^$root\$|.|; s|^$root/|./|" | sort -u | comm -23 - <(echo "$race")
