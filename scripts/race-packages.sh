#!/usr/bin/env bash
# Prints the module's packages (as ./dir) that start a goroutine, found by
# grep so that a new one is never left out: make check-race runs their
# tests under the race detector. With --others, prints every other package
# of the module instead: make test runs those without it, so that no test
# runs twice (the race run of a package checks all its plain run checks).
set -euo pipefail
cd "$(dirname "$0")/.."
race=$(grep -rlE --include='*.go' '^[[:space:]]+go [A-Za-z_(]' . | xargs -n1 dirname | sort -u)
if [[ ${1:-} != --others ]]; then
	echo "$race"
	exit
fi
root=$PWD
${GO:-go} list -f '{{.Dir}}' ./... | sed "s|^$root\$|.|; s|^$root/|./|" | sort -u | comm -23 - <(echo "$race")
