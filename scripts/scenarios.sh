#!/usr/bin/env bash
# Runs the conformance suite on each DUT named in $@, side by side: one
# `spdlab certify` per DUT (the CLI built once), each running its cases in
# parallel processes where the DUT allows (certify --procs: each process its
# own devices; pcsc-emu's processes share the two vpcd slots through their
# lock files). Writes OUT/reports/<dut> (certificate, JUnit, HTML, signed
# manifest, trace) and OUT/scenarios-<dut>.log, prints each DUT's verdict and
# wall time, and fails when any DUT is not certified.
#
# Environment:
#   OUT             output directory (default out, relative to the repo root)
#   SCENARIO_JOBS   how many DUTs run at once (default: all of them)
#   SCENARIO_PROCS  processes per DUT (certify --procs). Default: the CPUs
#                   shared among the DUTs running at once, 1 to 4 each, and
#                   certify's own default for pcsc-emu (1). DUTs side by side
#                   already fill the CPUs: on 2 CPUs, usb-emu, serial-emu,
#                   sd-emu and ref+removal side by side took 40.0 s wall time
#                   in one process each and 42.8 s in two (load average 20).
#   SCENARIO_ARGS   extra arguments for certify (e.g. --label-filter=TC-PAY-001)
#   SPDLAB          an spdlab binary already built from this checkout, used
#                   instead of building one; when no such file exists yet,
#                   the script builds it there and leaves it (the root
#                   package's tests build the binary they share this way)
#   GOLDEN          a directory in which each DUT's run also records its
#                   golden evidence (certify --golden GOLDEN/<dut>) and, when
#                   the DUT is certified, GOLDEN/<dut>.spdlab: the SHA-256 of
#                   the spdlab binary that recorded it. make test-certify's
#                   campaign proof compares its run of ref with ref's evidence
#                   when it runs the same binary, instead of recording its own
#   LAB_KEY         the lab key that signs the reports (default: the lab's own,
#                   `spdlab labkey init`, else a throwaway key made for the run)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-out}
[[ $out = /* ]] || out=$root/$out
mkdir -p "$out/reports"
duts=("$@")
jobs=${SCENARIO_JOBS:-${#duts[@]}}

# The binary is this run's own, so that runs at once never replace each
# other's.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
spdlab=${SPDLAB:-$tmp/spdlab}
[[ $spdlab = /* ]] || spdlab=$root/$spdlab
[[ -e $spdlab ]] || go build -o "$spdlab" ./cmd/spdlab
golden=${GOLDEN:-}
if [[ -n $golden ]]; then
	[[ $golden = /* ]] || golden=$root/$golden
	mkdir -p "$golden"
fi
key=${LAB_KEY:-}
if [[ -z $key ]]; then
	key=$tmp/lab-key.pem
	def=${XDG_CONFIG_HOME:-$HOME/.config}/spdlab/lab-key.pem
	if [[ -s $def ]]; then
		key=$def
	else
		"$spdlab" labkey init --key "$key" --name "no lab (throwaway key of a test run)" >/dev/null
	fi
fi
# procs DUT: the --procs argument for DUT.
procs() {
	if [[ -n ${SCENARIO_PROCS:-} ]]; then
		echo "--procs=$SCENARIO_PROCS"
	elif [[ $1 != pcsc-emu* ]]; then
		local cpus at_once=$((jobs < ${#duts[@]} ? jobs : ${#duts[@]}))
		cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
		echo "--procs=$(awk -v c="$cpus" -v j="$at_once" 'BEGIN { p = int(c / j); print (p < 1 ? 1 : (p > 4 ? 4 : p)) }')"
	fi
}

# since T0: seconds from T0 (an $EPOCHREALTIME) to now.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# run DUT: certify DUT into its report directory.
run() {
	local dut=$1 rep="$out/reports/$1" log="$out/scenarios-$1.log" t0 rc=0 record=()
	rm -rf "$rep"
	if [[ -n $golden ]]; then
		rm -rf "${golden:?}/$dut" "$golden/$dut.spdlab"
		record=(--golden "$golden/$dut")
	fi
	t0=$EPOCHREALTIME
	NO_COLOR=1 "$spdlab" certify --dut "$dut" --out "$rep" --key "$key" --timeout 15m \
		$(procs "$dut") "${record[@]}" ${SCENARIO_ARGS:-} >"$log" 2>&1 || rc=$?
	since "$t0" >"$rep.seconds"
	echo "$rc" >"$rep.rc"
	if [[ -n $golden ]] && ((rc == 0)) && grep -q '^golden: recorded' "$log"; then
		sha256sum <"$spdlab" | cut -d' ' -f1 >"$golden/$dut.spdlab"
	fi
}

t0=$EPOCHREALTIME
running=0
for dut in "${duts[@]}"; do
	if [[ $dut = pcsc-emu* ]] && [[ -z ${CI:-} ]] && ! [[ -S /run/pcscd/pcscd.comm ]]; then
		echo "== $dut: skipped, pcscd is not running (sudo bash .ci/pcscd)"
		echo skip >"$out/reports/$dut.rc"
		continue
	fi
	run "$dut" &
	running=$((running + 1))
	if ((running >= jobs)); then
		wait -n || true
		running=$((running - 1))
	fi
done
wait
total=$(since "$t0")

failed=0
for dut in "${duts[@]}"; do
	rc=$(cat "$out/reports/$dut.rc")
	[[ $rc = skip ]] && continue
	cert="$out/reports/$dut/certificate.json"
	secs=$(cat "$out/reports/$dut.seconds")
	if [[ -s $cert ]]; then
		# The certificate's own verdict (CERTIFIED, NOT CERTIFIED, PARTIAL RUN, ...).
		verdict=$(sed -n 's/^  "verdict": *"\([^"]*\)".*/\1/p' "$cert" | head -n 1)
		[[ -n $verdict ]] || verdict="NO VERDICT"
		counts=$(grep -oE '"(passed|failed|not_applicable)": *[0-9]+' "$cert" | tr -d '"' | paste -sd, - | sed 's/,/, /g')
	else
		verdict="NO REPORT"
		counts="see $out/scenarios-$dut.log"
	fi
	printf '== %-12s %-14s %s; %.1f s (exit %s)\n' "$dut" "$verdict" "$counts" "$secs" "$rc"
	if [[ $rc != 0 ]] || [[ $verdict != CERTIFIED ]]; then
		failed=1
		tail -n 30 "$out/scenarios-$dut.log" | sed "s/^/   $dut| /"
	fi
done
printf '== %d DUTs in %.1f s wall time; reports in %s/reports\n' "${#duts[@]}" "$total" "$out"
exit $failed
