#!/usr/bin/env bash
# Mutation testing of the conformance suite: runs the suite against every
# mutant of reference/device (device.Mutants), each a reference device with
# one deliberate defect, on the in-process link (faulty:NAME) and behind the
# USB CCID emulator (faulty:NAME@usb-emu). Each run stops at its first
# failing case (Ginkgo fail-fast); the device cases run first and the
# service cases (terminal and backend flows, some on real timers) only for a
# mutant the device cases let through. Prints every mutant with the case
# that killed it on each transport, and fails unless every mutant is killed.
# With MUTANT_ALL=1 each run goes through the whole suite instead and names
# every case that failed (slower: for studying the catalogue, not make test).
#
#   scripts/mutants.sh [OUTDIR]      MUTANTS="a b" limits the run to some mutants
#                                    MUTANT_TRANSPORTS="ref usb-emu" (default)
#                                    MUTANT_JOBS=2 parallel runs
#                                    MUTANT_ALL=1 every killing case, no fail-fast
#                                    SUITE=FILE a suite binary built from this
#                                    checkout (go test -c ./scenarios); built
#                                    there when FILE does not exist
set -euo pipefail
out=${1:-out/mutants}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "$out" && pwd)
suite=${SUITE:-}
[[ -z $suite || $suite = /* ]] || suite=$root/$suite
if [[ -z $suite || ! -x $suite ]]; then
	suite=${suite:-$out/scenarios.test}
	(cd "$root" && go test -c -o "$suite" ./scenarios/)
fi
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
	local failfast=-ginkgo.fail-fast
	if [[ -n ${MUTANT_ALL:-} ]]; then
		filters=('') failfast=-ginkgo.seed=1
	elif [[ -n $hint && $hint != - ]]; then
		filters=("/^$hint\$/" "${filters[@]}")
	fi
	for filter in "${filters[@]}"; do
		# A filtered run is never a certificate, so the suite exits non-zero
		# even when every case passed: a kill is a failed case.
		(cd "$root/scenarios" && "$suite" -test.run '^TestConformance$' -test.timeout 10m \
			$failfast -ginkgo.no-color -ginkgo.seed=1 -ginkgo.label-filter="$filter" -dut="$dut") >"$log" 2>&1 || true
		if ! grep -q '^Ran [0-9]* of' "$log"; then
			killer=setup-failure
			break
		fi
		# Every failed case, in the order they failed (one with fail-fast).
		killer=$(grep '^  \[FAIL\] .*TC-[A-Z]*-[0-9]*' "$log" | grep -o 'TC-[A-Z]*-[0-9]*' | awk '!seen[$0]++' | paste -sd, -)
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
# A missing hint is "-": xargs -L joins a line that ends in a blank to the next.
results=$(for n in $names; do h=$(awk -v n="$n" '$1 == n {print $2}' <<<"$known"); echo "$n $first ${h:--}"; done |
	xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1" "$2"')
awk -v f="$first" '$2 == f && $3 ~ /^TC-/ {split($3, k, ","); print $1, k[1]}' <<<"$results" >"$out/killers.txt"
hints=$results
for t in ${transports#"$first"}; do
	more=$(awk -v t="$t" '{print $1, t, $3}' <<<"$hints" | xargs -P "$jobs" -L 1 bash -c 'run "$0" "$1" "$2"')
	results+=$'\n'$more
done

if [[ -n ${MUTANT_ALL:-} ]]; then
	echo "mutants: each mutant ran through the whole suite; the cases listed are every case that failed on it"
else
	echo "mutants: each run stops at its first failing case (fail-fast keeps make mutants within make test's time),"
	echo "so the case listed is the first that killed the mutant; other cases may kill it too (MUTANT_ALL=1 lists them all)"
fi
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
