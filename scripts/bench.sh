#!/usr/bin/env bash
# Runs spdlab's benchmarks and prints each figure as a ratio to its floor
# measured in the same run (DESIGN.md: timings are ratios, never absolute
# targets, on these shared machines). BENCHTIME (default 1s) applies to the
# codec benchmarks; transport and fleet benchmarks use fixed counts.
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-1s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() {
	echo "== go test -run='^\$' -bench='$1' -benchtime=$2 $3"
	go test -run='^$' -bench="$1" -benchtime="$2" "$3" | tee -a "$out"
}

run 'BenchmarkPayment$|BenchmarkECDSASignFloor$|BenchmarkPaymentRatio$' "$bt" ./reference/device
run 'BenchmarkRenderDecodePNG$|BenchmarkGozxingFloor$|BenchmarkRenderDecodeRatio$' "$bt" ./reference/medium
run 'BenchmarkRoundTrip$' 2000x ./rigs/dut
run 'BenchmarkManyDevices$' 10x ./rigs/dut
run 'BenchmarkCommit$' "$bt" ./reference/store
run '.' "$bt" ./reference/backend

# metric NAME UNIT: the last value reported in UNIT (units are unique
# across these benchmarks; log lines may split a result line, so NAME is
# only documentation).
metric() {
	grep -oE "[0-9.]+[[:space:]]+$2([[:space:]]|\$)" "$out" | tail -1 | awk '{print $1}'
}

echo
echo "== figures as ratios to floors measured in this run"
printf 'payment Process() / one bare ECDSA P-256 signature (medians, interleaved): %.2fx (aim <= 1.5)\n' "$(metric BenchmarkPaymentRatio pay/sign)"
printf 'medium render+PNG+decode / bare gozxing encode+decode (interleaved):      %.2fx (aim <= 1.3)\n' "$(metric BenchmarkRenderDecodeRatio x-floor)"
ref=$(metric BenchmarkRoundTrip ref-median-us)
printf 'short APDU round trip, in-process link (the floor): median %.2f us\n' "$ref"
for d in usb-emu sd-emu serial-emu pcsc-emu; do
	m=$(metric BenchmarkRoundTrip "$d-median-us")
	[[ -z $m ]] && { echo "  $d: not measured (see the log above)"; continue; }
	printf '  %-10s median %8.1f us  p99 %8.1f us  = %6.0fx the in-process link\n' "$d" "$m" \
		"$(metric BenchmarkRoundTrip "$d-p99-us")" "$(metric BenchmarkRoundTrip "$d-x-ref")"
done
printf '1000 reference devices in one process: %.1f KiB of heap per device, %.0f payments/s\n' \
	"$(metric BenchmarkManyDevices KiB/device)" "$(metric BenchmarkManyDevices payments/s)"
grep -E '^Benchmark(Settle|Authorise)' "$out" | sed 's/^/backend: /' || true
# bmetric BENCHMARK UNIT: UNIT on BENCHMARK's own result line (the backend's
# benchmarks share units).
bmetric() {
	grep -E "^$1(-[0-9]+)?[[:space:]]" "$out" | tail -1 | grep -oE "[0-9.]+[[:space:]]+$2([[:space:]]|\$)" | awk '{print $1}'
}
printf 'backend settlement, 8 stations, batches of 100 (BenchmarkSettle): %.0f records/s (aim >= 5,000) = %.2fx its verify-and-insert floor; CPU %.0f us a record = %.2fx the floor'"'"'s\n' \
	"$(bmetric BenchmarkSettle records/s)" "$(bmetric BenchmarkSettle of-verify-floor)" \
	"$(bmetric BenchmarkSettle cpu-us/op)" "$(bmetric BenchmarkSettle x-floor-cpu)"
printf 'backend authorisation, 8 clients, GOGC 400 as spdlab backend serves (BenchmarkAuthorise): p50 %.2f ms, p99 %.2f ms (aim < 5 ms) = %.2fx the p99 of a server that only verifies and signs (%.2f ms); CPU %.0f us a request = %.2fx the floor'"'"'s\n' \
	"$(bmetric BenchmarkAuthorise p50-ms)" "$(bmetric BenchmarkAuthorise p99-ms)" "$(bmetric BenchmarkAuthorise x-floor-p99)" \
	"$(bmetric BenchmarkAuthorise floor-p99-ms)" "$(bmetric BenchmarkAuthorise cpu-us/op)" "$(bmetric BenchmarkAuthorise x-floor-cpu)"
# aim VALUE OP LIMIT: "met" or "not met" for VALUE OP LIMIT (OP < or >=).
aim() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "<") ? v + 0 < l + 0 : v + 0 >= l + 0; print (v == "" ? "not measured" : ok ? "met" : "not met") }'; }
p99=$(bmetric BenchmarkAuthorise p99-ms)
fp99=$(bmetric BenchmarkAuthorise floor-p99-ms)
rate=$(bmetric BenchmarkSettle records/s)
vfloor=$(awk -v r="$rate" -v x="$(bmetric BenchmarkSettle of-verify-floor)" 'BEGIN { if (x > 0) printf "%.0f", r / x }')
echo "backend aims in this run: authorisation p99 < 5 ms with 8 clients: $(aim "$p99" '<' 5) ($p99 ms; the floor's own p99 $fp99 ms: $(aim "$fp99" '<' 5) by the floor);" \
	"settlement >= 5,000 records/s: $(aim "$rate" '>=' 5000) ($rate records/s; the verify-and-insert floor ${vfloor:-?} records/s: $(aim "$vfloor" '>=' 5000) by the floor)"
printf 'backend, 4 stations, 2 backends on one PostgreSQL database / 1 backend on SQLite, same run: settlement records/s %.2fx, authorisation p99 %.2fx\n' \
	"$(metric BenchmarkStationsPostgres pg-x-sqlite-settle)" "$(metric BenchmarkStationsPostgres pg-x-sqlite-auth-p99)"

# The conformance suite on every emulated DUT: one DUT at a time (the
# suite time of each as a ratio to ref's in this run, and the median and
# p99 of its case times), then all of them side by side as make
# test-scenarios runs them (the wall time of the whole).
duts=(ref usb-emu serial-emu sd-emu pcsc-emu)
sc=$(mktemp -d)
trap 'rm -f "$out"; rm -rf "$sc"' EXIT
echo
echo "== the conformance suite on each DUT, one at a time, each in one process"
SCENARIO_JOBS=1 SCENARIO_PROCS=1 OUT="$sc/serial" bash scripts/scenarios.sh "${duts[@]}" || true
echo
echo "== ref in parallel processes (certify's default --procs) against one process, same run"
SCENARIO_JOBS=1 OUT="$sc/procs" bash scripts/scenarios.sh ref | grep -E '^== ref' || true
if [[ -s $sc/serial/reports/ref.seconds && -s $sc/procs/reports/ref.seconds ]]; then
	awk -v a="$(cat "$sc/serial/reports/ref.seconds")" -v b="$(cat "$sc/procs/reports/ref.seconds")" \
		'BEGIN { printf "ref: default --procs %.1f s, --procs 1 %.1f s: %.2fx\n", b, a, b / a }'
fi
dirs=()
for d in "${duts[@]}"; do
	[[ -s $sc/serial/reports/$d/ginkgo.json ]] && dirs+=("$sc/serial/reports/$d")
done
echo
echo "== suite time per DUT as a ratio to ref's (aim: usb-emu, serial-emu, sd-emu <= 1.5x; pcsc-emu <= 3x), case median and p99"
go build -o "$sc/spdlab" ./cmd/spdlab
(cd "$sc/serial/reports" && "$sc/spdlab" report --times "${dirs[@]##*/}")
echo
echo "== all DUTs side by side (make test-scenarios; aim < 60 s)"
# The verdict lines, and the tail of the log of any DUT not certified.
OUT="$sc/parallel" bash scripts/scenarios.sh "${duts[@]}" | grep -E '^==|^   [^ ]+\| ' || true
