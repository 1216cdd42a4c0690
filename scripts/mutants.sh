#!/usr/bin/env bash
# Mutation testing of the conformance suite: runs the suite against every
# mutant of reference/device (device.Mutants), each a reference device with
# one deliberate defect, on the in-process link (faulty:NAME) and behind the
# USB CCID emulator (faulty:NAME@usb-emu). Each run stops at its first
# failing case (Ginkgo fail-fast); the device cases run first and the
# service cases (terminal and backend flows, some on real timers) only for a
# mutant the device cases let through. Prints every mutant with the case
# that killed it on each transport, and fails unless every mutant is killed.
#
#   scripts/mutants.sh [OUTDIR]      MUTANTS="a b" limits the run to some mutants
#                                    MUTANT_TRANSPORTS="ref usb-emu" (default)
#                                    MUTANT_JOBS=2 parallel runs
#                                    SUITE=FILE a suite binary already built
#                                    from this checkout (go test -c ./scenarios)
set -euo pipefail
out=${1:-out/mutants}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "$out" && pwd)
suite=${SUITE:-}
if [[ -z $suite ]]; then
	suite=$out/scenarios.test
	go test -c -o "$suite" "$root/scenarios/"
fi
[[ $suite = /* ]] || suite=$root/$suite
export suite

catalogue=$(sed -n 's/^\t{"\([a-z0-9-]*\)", "\(SPD-[A-Z0-9]*-[0-9]*\)", .*/\1 \2/p' "$root/reference/device/mutants.go")
[[ -n $catalogue ]] || { echo "mutants: no mutants found in reference/device/mutants.go"; exit 1; }
names=${MUTANTS:-$(awk '{print $1}' <<<"$catalogue")}
transports=${MUTANT_TRANSPORTS:-ref usb-emu}
jobs=${MUTANT_JOBS:-2}

# run NAME TRANSPORT [HINT]: prints "NAME TRANSPORT KILLER" (KILLER is - when
# the mutant survived). HINT, a case that killed the mutant on another
# transport, is tried first; then the device cases, the slow device cases
# (tearing sweeps, capacities, and the optical cases, which spend seconds
# decoding images) and the service flows, each run stopping at its first
# failure.
run() {
	local name=$1 transport=$2 hint=${3:-} dut log killer
	dut="faulty:$name"
	[[ $transport == ref ]] || dut="faulty:$name@$transport"
	log="$out/$name@$transport.log"
	local filters=('!slow && !/^TC-SVC-/ && !/^TC-CAM-/' '(slow || /^TC-CAM-/) && !/^TC-SVC-/' '/^TC-SVC-/')
	[[ -z $hint || $hint == - ]] || filters=("/^$hint\$/" "${filters[@]}")
	for filter in "${filters[@]}"; do
		# A filtered run is never a certificate, so the suite exits non-zero
		# even when every case passed: a kill is a failed case.
		(cd "$root/scenarios" && "$suite" -test.run '^TestConformance$' -test.timeout 10m \
			-ginkgo.fail-fast -ginkgo.no-color -ginkgo.seed=1 -ginkgo.label-filter="$filter" -dut="$dut") >"$log" 2>&1 || true
		if ! grep -q '^Ran [0-9]* of' "$log"; then
			killer=setup-failure
			break
		fi
		killer=$(grep '^  \[FAIL\] .*TC-[A-Z]*-[0-9]*' "$log" | head -1 | grep -o 'TC-[A-Z]*-[0-9]*' | head -1)
		[[ -z $killer ]] || break
		killer=-
	done
	echo "$name $transport $killer"
}
export -f run
export out root

# The first transport runs every mutant; the others start from the case
# that killed it there.
first=${transports%% *}
# scripts/mutant-killers.txt names, for each mutant, the case that killed
# it last time: it runs first (a hint only: a mutant it no longer kills goes
# through the whole suite). Refresh it from $out/killers.txt.
known=$(cat "$root/scripts/mutant-killers.txt" 2>/dev/null || true)
results=$(for n in $names; do echo "$n $first $(awk -v n="$n" '$1 == n {print $2}' <<<"$known")"; done |
	xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1" "$2"')
awk -v f="$first" '$2 == f && $3 ~ /^TC-/ {print $1, $3}' <<<"$results" >"$out/killers.txt"
hints=$results
for t in ${transports#"$first"}; do
	more=$(awk -v t="$t" '{print $1, t, $3}' <<<"$hints" | xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1" "$2"')
	results+=$'\n'$more
done

printf '%-26s %-10s' mutant breaks
for t in $transports; do printf ' %-14s' "$t"; done
echo
survivors=0 total=0
for n in $names; do
	req=$(awk -v n="$n" '$1 == n {print $2}' <<<"$catalogue")
	printf '%-26s %-10s' "$n" "${req:-?}"
	total=$((total + 1))
	for t in $transports; do
		k=$(awk -v n="$n" -v t="$t" '$1 == n && $2 == t {print $3}' <<<"$results")
		printf ' %-14s' "${k:-?}"
		if [[ $k == - || $k == setup-failure || -z $k ]]; then survivors=$((survivors + 1)); fi
	done
	echo
done
echo "mutants: $total mutants x ${transports// /, }: $survivors survived (logs in $out)"
[[ $survivors == 0 ]]
