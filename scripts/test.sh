#!/usr/bin/env bash
# make test's steps, in two lanes that run side by side: the static checks
# (vet, the cgo-free and macOS builds, tidiness, staticcheck, the race
# detector) in one, the tests (every package, the backend's again on
# PostgreSQL, the conformance suite on
# every emulated DUT, certification of devices reached as hardware is, the
# mutants; the suite binary built once for all of them) in the other.
# Every step still runs, each in the order of its lane; a lane stops at its
# first failing step and the script fails when either lane does. Much of
# each lane waits rather than computes (pcscd's polling in the PC/SC tests,
# single-threaded links, processes started one after another), so on a
# 2-core machine the other lane fills those gaps.
#
# Every output line carries its lane's name; each step's wall time is
# printed when it ends, and a table of them at the end, so a CI log shows
# where the time goes.
#
#   scripts/test.sh            TEST_LANES=1 runs the two lanes one after the other
#
# Environment: GO (default go), MAKE (default make), OUT (default out).
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
MAKE=${MAKE:-make}
OUT=${OUT:-out}
times=$(mktemp -d)
trap 'rm -rf "$times"' EXIT

checks=(
	"$GO vet ./..."
	"$MAKE --no-print-directory check-builds"
	"$MAKE --no-print-directory check-hygiene"
)
# The suite binary is built once, for test-scenarios and mutants both.
mkdir -p "$OUT"
suite=$(cd "$OUT" && pwd)/scenarios.test
tests=(
	"$GO test -count=1 -timeout 20m ./..."
	"$MAKE --no-print-directory test-backend-postgres"
	"$GO test -c -o $suite ./scenarios"
	"SUITE=$suite $MAKE --no-print-directory test-scenarios OUT=$OUT"
	"$MAKE --no-print-directory test-certify OUT=$OUT"
	"SUITE=$suite $MAKE --no-print-directory mutants OUT=$OUT"
)

# since T0: seconds from T0 (an $EPOCHREALTIME) to now.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# lane NAME STEP...: runs the steps in turn, each line of their output
# prefixed with NAME; records "SECONDS RC STEP" per step in $times/NAME.
lane() {
	local name=$1 step t0 rc
	shift
	for step in "$@"; do
		echo "[$name] == $step"
		t0=$EPOCHREALTIME
		bash -c "$step" 2>&1 | sed -u "s/^/[$name] /"
		rc=${PIPESTATUS[0]}
		echo "$(since "$t0") $rc $step" >>"$times/$name"
		echo "[$name] == $step: $(since "$t0") s, exit $rc"
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

echo
echo "== make test: the time of each step"
for name in checks tests; do
	[[ -s $times/$name ]] || continue
	while read -r secs rc step; do
		printf '%-7s %7.1f s  exit %-3s %s\n' "$name" "$secs" "$rc" "$step"
	done <"$times/$name"
done
printf '== make test: %.1f s wall time (lanes %s)\n' "$total" "${TEST_LANES:-2}"
((rc1 == 0 && rc2 == 0))
