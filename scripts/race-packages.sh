#!/usr/bin/env bash
# Prints the module's packages (as ./dir) that start a goroutine, found by
# grep so that a new one is never left out: make check-race runs their
# tests under the race detector. With --others, prints every other package
# of the module instead: make test runs those without it, so that no test
# runs twice (the race run of a package checks all its plain run checks).
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
	echo "$race"
	exit
fi
root=$PWD
${GO:-go} list -f '{{.Dir}}' ./... | sed "s|^$root\$|.|; s|^$root/|./|" | sort -u | comm -23 - <(echo "$race")
