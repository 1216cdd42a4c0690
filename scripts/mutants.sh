#!/usr/bin/env bash
# Mutation testing of the conformance suite: runs the suite against every
# mutant of reference/device (device.Mutants), each a reference device with
# one deliberate defect, on the in-process link (faulty+removal:NAME, in a
# slot the lab can pull it from) and behind the USB CCID emulator
# (faulty:NAME@usb-emu). Each mutant is first tried on
# the case that killed it last time (scripts/mutant-killers.txt; on
# usb-emu, the case that killed it in process), many mutants to one suite
# process, each on its own case (the suite's -mutants flag; batches below).
# A mutant that case does not kill runs alone: each run stops at its first
# failing case (Ginkgo fail-fast); the device cases run first and the
# service cases (terminal and backend flows) only for a mutant the device
# cases let through. Prints every mutant with the case that killed it on
# each transport, and fails unless every mutant is killed.
# The eSIM mutants (esim-*) break the sessions of logical channels, which
# only esim-emu has: they run on faulty:NAME@esim-emu in the first
# transport's column, alone (not in the mutation runs, whose devices are
# ref's), and are not applicable (n/a) on the others.
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
	local name=$1 transport=$2 hint=${3:-} dut log killer filter
	# In process the mutant sits in a slot the lab can pull it from, so
	# that the card-removal case (TC-STO-010) runs too.
	dut="faulty+removal:$name"
	[[ $transport == ref ]] || dut="faulty:$name@$transport"
	[[ $name != esim-* ]] || dut="faulty:$name@esim-emu"
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
		# even when every case passed: a kill is a failed case. (The working
		# directory is scenarios/, as go test gives the suite.)
		"$suite" -test.run '^TestConformance$' -test.timeout 10m \
			$failfast -ginkgo.no-color -ginkgo.seed=1 -ginkgo.label-filter="$filter" -dut="$dut" >"$log" 2>&1 || true
		read_log "$log"
		killer=$failed
		if [[ -z $ran ]]; then
			killer=setup-failure
			break
		fi
		[[ -z $killer ]] || break
		killer=-
	done
	echo "$name $transport $killer"
}

# batches TRANSPORT: reads "NAME HINT" lines and tries each mutant that
# has a hint on it in mutation runs of the suite (its -mutants flag): run k
# gives each hint case its k-th mutant, so that one suite process tries a
# mutant per case it runs (a process a mutant spent most of its CPU
# starting up and building the case tree: 0.1 s each, 470 times). Each
# case has devices of its own, as in every run, so a failed case is its
# mutant's kill. Prints "NAME TRANSPORT KILLER" for each mutant killed; a
# mutant its hint did not kill, or in a run that did not finish, is left to
# run alone.
batches() {
	local t=$1 dut=ref plan=$tmp/plan@$1 r rounds
	running=0
	[[ $t == ref ]] || dut=$t
	awk '$2 ~ /^TC-[A-Z]+-[0-9]+$/ && $1 !~ /^esim-/ {print ++k[$2], $2, $1}' >"$plan"
	rounds=$(awk '$1 > m {m = $1} END {print m + 0}' "$plan")
	for ((r = 1; r <= rounds; r++)); do
		awk -v r="$r" '$1 == r {print $2, $3}' "$plan" >"$tmp/round$r@$t"
		batch "$t" "$dut" "$tmp/round$r@$t" "$out/round$r@$t.log" >"$tmp/killed$r@$t" &
		pooled
	done
	wait
	for ((r = 1; r <= rounds; r++)); do cat "$tmp/killed$r@$t"; done
}

# batch TRANSPORT DUT PLAN LOG: one mutation run of the cases PLAN names
# ("CASE MUTANT" lines), every case run (no fail-fast); prints "NAME
# TRANSPORT CASE" for each case that failed.
batch() {
	local t=$1 dut=$2 plan=$3 log=$4 c m id filter
	local -A mutant=()
	while read -r c m; do mutant[$c]=$m; done <"$plan"
	filter="/^($(awk '{print $1}' "$plan" | paste -sd '|'))\$/"
	"$suite" -test.run '^TestConformance$' -test.timeout 10m \
		-ginkgo.no-color -ginkgo.seed=1 -ginkgo.label-filter="$filter" -dut="$dut" -mutants="$plan" >"$log" 2>&1 || true
	read_log "$log"
	[[ -n $ran ]] || return 0
	local -a ids
	IFS=, read -ra ids <<<"$failed"
	for id in "${ids[@]}"; do
		[[ -z ${mutant[$id]:-} ]] || echo "${mutant[$id]} $t $id"
	done
}

# read_log LOG: reads a suite run's log and sets ran (1 when the run
# finished: its "Ran N of M" line) and failed, the case IDs of its
# "  [FAIL] ..." lines in the order they failed, each once,
# comma-separated. A hinted kill takes the suite binary about 0.1 s of
# CPU, so this starts no other program: a grep, awk and paste pipeline per
# run, and xargs starting a bash per run, cost as much CPU as the suite
# itself over the 350 runs of one suite process a mutant.
read_log() {
	local line rest id
	ran='' failed=''
	while IFS= read -r line || [[ -n $line ]]; do
		if [[ $line == 'Ran '[0-9]*' of'* ]]; then
			ran=1
		elif [[ $line == '  [FAIL] '* ]]; then
			rest=$line
			while [[ $rest =~ TC-[A-Z]*-[0-9]* ]]; do
				id=${BASH_REMATCH[0]}
				[[ ,$failed, == *,"$id",* ]] || failed+=${failed:+,}$id
				rest=${rest#*"$id"}
			done
		fi
	done <"$1"
}

# runs FILE: runs each line "NAME TRANSPORT HINT" of standard input, $jobs
# at once, appending what each prints to FILE.
runs() {
	local name transport hint
	running=0
	while read -r name transport hint; do
		run "$name" "$transport" "$hint" >>"$1" &
		pooled
	done
	wait
}

# pooled counts a job its caller has just started in the background and,
# with $jobs of them running, waits for one to end. The caller sets
# running=0 before its first job and waits for the last.
pooled() {
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n || true
		running=$((running - 1))
	fi
}

cd "$root/scenarios"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The first transport runs every mutant; the others start from the case
# that killed it there.
first=${transports%% *}
# scripts/mutant-killers.txt names, for each mutant, the case that killed
# it last time: it runs first (a hint only: a mutant it no longer kills goes
# through the whole suite). Refresh it from $out/killers.txt.
declare -A known=() req=() killed=()
if [[ -r $root/scripts/mutant-killers.txt ]]; then
	while read -r n k _; do [[ -z $n ]] || known[$n]=$k; done <"$root/scripts/mutant-killers.txt"
fi
while read -r n r; do req[$n]=$r; done <<<"$catalogue"
# try TRANSPORT: reads "NAME HINT" lines (a missing hint is "-") and
# writes "NAME TRANSPORT KILLER" for each to $tmp/TRANSPORT: first the
# mutation runs of the hints (batches; not with MUTANT_ALL, which names
# every case that kills a mutant), then a run of its own for each mutant
# they left.
try() {
	local t=$1
	cat >"$tmp/todo@$t"
	: >"$tmp/$t"
	[[ -n ${MUTANT_ALL:-} ]] || batches "$t" <"$tmp/todo@$t" >"$tmp/$t"
	awk -v t="$t" 'FILENAME == ARGV[1] {done[$1] = 1; next} !($1 in done) {print $1, t, $2}' "$tmp/$t" "$tmp/todo@$t" | runs "$tmp/$t"
}
for n in $names; do echo "$n ${known[$n]:--}"; done | try "$first"
awk -v f="$first" 'FILENAME == ARGV[1] {if ($2 == f && $3 ~ /^TC-/) {split($3, k, ","); killer[$1] = k[1]}; next}
	$1 in killer {print $1, killer[$1]}' "$tmp/$first" <(tr ' ' '\n' <<<"$names") >"$out/killers.txt"
for t in ${transports#"$first"}; do
	while read -r n _ k; do [[ $n == esim-* ]] || echo "$n $k"; done <"$tmp/$first" | try "$t"
	for n in $names; do [[ $n != esim-* ]] || echo "$n $t n/a" >>"$tmp/$t"; done
done
for t in $transports; do
	while read -r n tr k; do killed[$n@$tr]=$k; done <"$tmp/$t"
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
survivors=0 total=0 esims=''
for n in $names; do
	printf '%-26s %-10s' "$n" "${req[$n]:-?}"
	total=$((total + 1))
	for t in $transports; do
		k=${killed[$n@$t]:-}
		printf ' %-14s' "${k:-?}"
		if [[ $k == - || $k == setup-failure || -z $k ]]; then survivors=$((survivors + 1)); fi
		[[ $n != esim-* || $t != "$first" ]] || esims=1
	done
	echo
done
[[ -z $esims ]] || echo "mutants: the esim-* mutants ran on esim-emu in the $first column (only it has logical channels)"
echo "mutants: $total mutants x ${transports// /, }: $survivors survived (logs in $out)"
# A hint that is missing or names another case than the one that killed
# the mutant now sent it through runs of its own: say so, with the fix.
stale=0
while read -r n k; do
	[[ ${known[$n]:-} == "$k" ]] || stale=$((stale + 1))
done <"$out/killers.txt"
if ((stale > 0)) && [[ -z ${MUTANT_ALL:-} && -z ${MUTANTS:-} ]]; then
	echo "mutants: $stale of the hints in scripts/mutant-killers.txt are missing or stale (those mutants ran alone, each in a suite process of its own);"
	echo "mutants: refresh them with: cp $out/killers.txt scripts/mutant-killers.txt"
fi
[[ $survivors == 0 ]]
