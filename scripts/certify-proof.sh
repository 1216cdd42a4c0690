#!/usr/bin/env bash
# The lab's proof that its verdict means something for a device it did not
# build. It certifies reference devices reached only as real hardware is (a
# separate `spdlab emulate` process per sample, `--dut pcsc:READER` or
# `--dut serial:PATH` with an ICS, no lab-side hooks) and checks:
#   1. two samples with the reference ICS come out CERTIFIED, with every case
#      run that the rig can run (the rest name the rig ability they lack);
#   2. a filtered run is never a certificate;
#   3. a card that answers only SELECT comes out NOT CERTIFIED;
#   4. a DUT that cannot be opened is a set-up error with no report;
#   5. `report --verify --lab-key` accepts the report; sd also checks that it
#      rejects one signed by another key and one whose ginkgo.json changed
#      (what verification looks at, the manifest's digests and signature, is
#      the same whatever transport made the report).
# ics (serial samples too) checks 6. the standalone suite binary's verdicts,
# 7. a device declaring no optional feature and 7b. one with the minimum
# capacities (certified when its ICS says so, in process with its
# reference twin; a sample failing the capacity cases when the ICS claims
# more); campaign (no samples: the reference device in process) checks 8.
# shards merging into the whole run's certificate, 9. a differential run
# naming the first divergence and 10. golden evidence. make test-certify
# runs the five, two at a time (CERTIFY_JOBS).
# Usage: certify-proof.sh pcsc|serial|sd|ics|campaign   (BIN names the spdlab
# binary; SUITE, when set, a suite binary built from this checkout, go test
# -c ./scenarios; GOLDEN, when set, golden evidence of ref that
# scripts/scenarios.sh recorded, which campaign uses when GOLDEN.spdlab says
# this BIN recorded it, and otherwise records its own)
set -euo pipefail
proof=${1:?usage: certify-proof.sh pcsc|serial|sd|ics|campaign}
# transport: how samples are reached (ics's are serial); campaign has none.
transport=$proof
[ "$proof" != ics ] || transport=serial
case $proof in
pcsc | serial | sd | ics | campaign) ;;
*) echo "certify-proof: unknown proof $proof (want pcsc, serial, sd, ics or campaign)" >&2; exit 2 ;;
esac
BIN=$(realpath "${BIN:-bin/spdlab}")
work=$(mktemp -d /tmp/spdlab-proof-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "certify-proof ($proof): FAIL: $*" >&2; exit 1; }
# say: a step's heading, with the seconds since the proof started.
t0=$EPOCHREALTIME
say() { echo "certify-proof ($proof): $* [$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }')]"; }

slots=("127.0.0.1:35963" "127.0.0.1:35964")
readers=("Virtual PCD 00 00" "Virtual PCD 00 01")

# start_sample N APP [FLAG...]: serve sample N (0 or 1) with app spd or
# select-only (and emulate's FLAGs), and set its DUT string in dut[N].
start_sample() {
	local n=$1 app=$2
	shift 2
	case $transport in
	pcsc)
		"$BIN" emulate sim "$@" --app "$app" --vpcd "${slots[$n]}" --slot-wait 5m --state "$work/sample$n-$app.state" >"$work/sample$n.log" 2>&1 &
		pids+=($!)
		# The emulator says "connected to vpcd" once the slot is its own
		# (another test may hold it for a while). Until pcscd has seen the
		# previous card go and this one come, the reader may still show
		# the previous holder's card: one APDU answered through pcscd
		# (any status word) shows it reaches this emulator.
		local pid=$! i
		for i in $(seq 3100); do
			grep -q 'connected to vpcd' "$work/sample$n.log" && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		grep -q 'connected to vpcd' "$work/sample$n.log" ||
			fail "the SIM emulator did not get vpcd slot ${slots[$n]}: $(cat "$work/sample$n.log")"
		for i in $(seq 300); do
			opensc-tool --reader "${readers[$n]}" --send-apdu 00:A4:04:00:00 >/dev/null 2>&1 && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		opensc-tool --reader "${readers[$n]}" --send-apdu 00:A4:04:00:00 >/dev/null 2>&1 ||
			fail "no APDU reaches the card in ${readers[$n]} through pcscd: $(cat "$work/sample$n.log")"
		dut[$n]="pcsc:${readers[$n]}"
		;;
	serial)
		"$BIN" emulate serial "$@" --app "$app" --link "$work/sample$n" >"$work/sample$n.log" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do [ -e "$work/sample$n" ] && break; sleep 0.05; done
		[ -e "$work/sample$n" ] || fail "the serial emulator did not start: $(cat "$work/sample$n.log")"
		dut[$n]="serial:$work/sample$n"
		;;
	sd)
		mkdir -p "$work/sd$n"
		"$BIN" emulate sd "$@" --app "$app" --dir "$work/sd$n" >"$work/sample$n.log" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do grep -q 'microSD channel' "$work/sample$n.log" && break; sleep 0.05; done
		grep -q 'microSD channel' "$work/sample$n.log" || fail "the SD emulator did not start: $(cat "$work/sample$n.log")"
		dut[$n]="sd:$work/sd$n"
		;;
	*) fail "unknown transport $transport" ;;
	esac
}
stop_samples() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
	if [ "$transport" = pcsc ]; then
		for r in "${readers[@]}"; do
			for _ in $(seq 100); do opensc-tool --list-readers 2>/dev/null | grep -q "Yes.*$r" || break; sleep 0.1; done
		done
	fi
}

"$BIN" labkey init --key "$work/lab.pem" --name "spdlab proof lab" >/dev/null
"$BIN" labkey init --key "$work/other.pem" --name "another lab" >/dev/null
"$BIN" ics template >"$work/ics.yaml"
"$BIN" ics check "$work/ics.yaml" >/dev/null

declare -a dut
if [ "$proof" = pcsc ] || [ "$proof" = serial ] || [ "$proof" = sd ]; then
start_sample 0 spd
start_sample 1 spd

say "1. two samples of the reference device, reached as hardware"
"$BIN" certify --dut "${dut[0]}" --dut "${dut[1]}" --ics "$work/ics.yaml" --key "$work/lab.pem" --against ref \
	--out "$work/cert" >"$work/cert.log" 2>&1 || { tail -40 "$work/cert.log"; fail "the reference device was not certified"; }
grep -q '^CERTIFIED' "$work/cert.log" || fail "no CERTIFIED verdict line"
grep -q 'no response differed' "$work/cert.log" || { grep -A5 'against ref' "$work/cert.log"; fail "the reference device diverged from its reference twin"; }
python3 - "$work/cert/certificate.json" "$work/ics.yaml" <<'PY' || fail "the certificate does not show every runnable case run"
import json, re, sys
c = json.load(open(sys.argv[1]))
undeclared = set(re.findall(r"^  ([a-z-]+): false", open(sys.argv[2]).read(), re.M))
cases = c["cases"]
bad = [x for x in cases if x["verdict"] not in ("passed", "not applicable")]
na = [x for x in cases if x["verdict"] == "not applicable"]
def excused(r):
    m = re.match(r"not applicable: ICS features\.([a-z-]+) is false", r)
    return r.startswith("not applicable: rig lacks") or (m and m.group(1) in undeclared)
wrong = [x for x in na if not excused(x.get("reason", ""))]
print(f"  {sum(x['verdict'] == 'passed' for x in cases)} passed, {len(na)} not applicable (rig, or a feature the ICS leaves out: {sorted(undeclared)}), of {len(cases)}")
for x in bad + wrong:
    print("  unexpected:", x["id"], x["verdict"], x.get("reason", ""))
sys.exit(1 if bad or wrong or not c.get("certified") else 0)
PY

say "2. a filtered run is not a certificate"
if "$BIN" certify --dut "${dut[0]}" --dut "${dut[1]}" --ics "$work/ics.yaml" --key "$work/lab.pem" \
	--label-filter TC-APP-001 --out "$work/partial" >"$work/partial.log" 2>&1; then
	fail "a run filtered to TC-APP-001 exited 0"
fi
grep -q 'PARTIAL RUN' "$work/partial.log" || { tail -5 "$work/partial.log"; fail "a filtered run does not say PARTIAL RUN"; }

say "3. a card that answers only SELECT"
stop_samples
start_sample 0 select-only
if "$BIN" certify --dut "${dut[0]}" --ics "$work/ics.yaml" --key "$work/lab.pem" --out "$work/selectonly" >"$work/selectonly.log" 2>&1; then
	fail "a select-only card exited 0"
fi
grep -q '^NOT CERTIFIED' "$work/selectonly.log" || { tail -5 "$work/selectonly.log"; fail "a select-only card is not NOT CERTIFIED"; }
stop_samples

say "4. a DUT that cannot be opened"
missing="pcsc:No Such Reader 00 00"
[ "$transport" = serial ] && missing="serial:$work/no-such-port"
[ "$transport" = sd ] && missing="sd:$work/no-such-card"
if "$BIN" certify --dut "$missing" --ics "$work/ics.yaml" --key "$work/lab.pem" --out "$work/missing" >"$work/missing.log" 2>&1; then
	fail "a missing DUT exited 0"
fi
grep -q 'set-up' "$work/missing.log" || fail "a missing DUT is not a set-up error: $(cat "$work/missing.log")"
[ ! -e "$work/missing/manifest.json" ] || fail "a missing DUT got a signed report"

say "5. verification pins the lab key"
"$BIN" report --verify "$work/cert" --lab-key "$work/lab.pub.pem" >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "the report does not verify"; }
# What --verify rejects is checked on one transport's report: re-signing a
# whole run's report (report --json renders it again) and copying it take
# about 3 s of CPU, and the manifest's digests and signature are checked the
# same way whichever transport the run reached the samples through. sd's
# proof is the shortest of make test-certify's four.
if [ "$transport" = sd ]; then
	"$BIN" report --json "$work/cert/ginkgo.json" --dut "${dut[0]}" --out "$work/resigned" --key "$work/other.pem" >/dev/null 2>&1 ||
		fail "could not sign the run's report with another key"
	"$BIN" report --verify "$work/resigned" --lab-key "$work/other.pub.pem" >/dev/null 2>&1 ||
		fail "the report signed by the other key does not verify even against that key"
	if "$BIN" report --verify "$work/resigned" --lab-key "$work/lab.pub.pem" >/dev/null 2>&1; then
		fail "a report signed by another key verifies against the lab key"
	fi
	cp -r "$work/cert" "$work/tampered"
	sed -i 's/"passed"/"failed"/' "$work/tampered/ginkgo.json"
	if "$BIN" report --verify "$work/tampered" --lab-key "$work/lab.pub.pem" >/dev/null 2>&1; then
		fail "a report whose ginkgo.json changed verifies"
	fi
fi
fi
if [ "$proof" = ics ]; then
	say "6. the standalone suite binary follows the same rules"
	if [ -n "${SUITE:-}" ]; then
		cp "$SUITE" "$work/scenarios.test" || fail "could not copy the suite binary $SUITE"
	else
		(cd "$(dirname "$0")/.." && go test -c -o "$work/scenarios.test" ./scenarios) || fail "could not build the suite binary"
	fi
	start_sample 0 spd
	start_sample 1 spd
	# Each run is TestConformance alone, where the suite and its verdict
	# live: the package's other tests (its sources, vectors and drivers)
	# take about 2 s of CPU a run and have their own runs in make test
	# (check-race, and the suite binary's single-goroutine tests), so here
	# they only repeat themselves.
	(cd "$work" && ./scenarios.test -test.run '^TestConformance$' --dut "${dut[0]}" --dut "${dut[1]}" --ics "$work/ics.yaml" --report-dir "$work/standalone" >"$work/standalone.log" 2>&1) ||
		{ tail -20 "$work/standalone.log"; fail "the standalone binary did not certify the reference device"; }
	grep -q 'CERTIFIED: ' "$work/standalone.log" && ! grep -q 'NOT CERTIFIED' "$work/standalone.log" || { tail -5 "$work/standalone.log"; fail "the standalone binary printed no CERTIFIED verdict"; }
	if (cd "$work" && ./scenarios.test -test.run '^TestConformance$' --dut "${dut[0]}" --ics "$work/ics.yaml" --ginkgo.label-filter TC-APP-001 >"$work/standalone-partial.log" 2>&1); then
		fail "the standalone binary exited 0 for a filtered run"
	fi
	grep -q 'PARTIAL RUN' "$work/standalone-partial.log" || fail "the standalone binary's filtered run does not say PARTIAL RUN"
	if (cd "$work" && ./scenarios.test -test.run '^TestConformance$' --dut "serial:$work/no-such-port" --ics "$work/ics.yaml" >"$work/standalone-missing.log" 2>&1); then
		fail "the standalone binary exited 0 with no device"
	fi
	grep -q 'set-up' "$work/standalone-missing.log" || fail "the standalone binary's missing device is not a set-up error"
	stop_samples

	say "7. a device that declares no optional feature is judged on the rest"
	sed '/^features:/,/^capacities:/ s/: true/: false/' "$work/ics.yaml" >"$work/minimal.yaml"
	"$BIN" ics check "$work/minimal.yaml" >/dev/null || fail "the minimal statement does not check"
	start_sample 0 spd
	"$BIN" certify --dut "${dut[0]}" --ics "$work/minimal.yaml" --key "$work/lab.pem" --out "$work/minimal" >"$work/minimal.log" 2>&1 ||
		{ tail -30 "$work/minimal.log"; fail "a device declaring no optional feature was not certified on the rest"; }
	python3 - "$work/minimal/certificate.json" <<'PY' || fail "the minimal device's certificate does not name the ICS entries"
import json, sys
c = json.load(open(sys.argv[1]))
na = [x for x in c["cases"] if x["verdict"] == "not applicable"]
ics = [x for x in na if x["reason"].startswith("not applicable: ICS features.")]
other = [x for x in na if not x["reason"].startswith(("not applicable: ICS features.", "not applicable: rig lacks"))]
print(f"  {c['passed']} passed, {len(ics)} not applicable by the ICS, {len(na) - len(ics)} by the rig")
for x in other:
    print("  unexpected:", x["id"], x["reason"])
sys.exit(1 if other or not ics or not c["certified"] else 0)
PY
	stop_samples

	say "7b. a device with the minimum capacities runs every case within them; one that has less than its ICS says fails"
	sed -e 's/^  ledger: 64 /  ledger: 16 /; s/^  tokens: 8 /  tokens: 1 /; s/^  transfers: 16 /  transfers: 1  /; s/^  imports: 256 /  imports: 32  /' \
		"$work/ics.yaml" >"$work/small.yaml"
	grep -q '^  transfers: 1 ' "$work/small.yaml" || fail "the template's capacities changed: edit the sed of step 7b"
	"$BIN" ics check "$work/small.yaml" >/dev/null || fail "the minimum-capacity statement does not check"
	# The sample (spdlab emulate --ics) fails the capacity cases when its
	# ICS claims more than it has; the reference device made to the same
	# statement, in process, is certified below (every case, tearing
	# included, which a sample reached as hardware cannot run).
	start_sample 0 spd --ics "$work/small.yaml"
	# Only the capacity cases: a filtered run is never a certificate, and
	# what is checked is that each of them fails.
	if "$BIN" certify --dut "${dut[0]}" --ics "$work/ics.yaml" --key "$work/lab.pem" --label-filter '/^TC-(LED-001|TOK-007|XFR-006|XFR-011)$/' \
		--out "$work/overstated" >"$work/overstated.log" 2>&1; then
		fail "a run of the capacity cases on a device with the minimum capacities, against a statement declaring the reference device's, exited 0"
	fi
	for id in TC-LED-001 TC-TOK-007 TC-XFR-006 TC-XFR-011; do
		grep -q "$id FAILED" "$work/overstated.log" || { grep FAILED "$work/overstated.log"; fail "$id did not fail on a device below its declared capacity"; }
	done
	stop_samples
	# Each case beside its reference twin made to the statement: no
	# response may differ.
	"$BIN" certify --procs 1 --dut ref --ics "$work/small.yaml" --against ref --key "$work/lab.pem" --out "$work/small-ref" >"$work/small-ref.log" 2>&1 ||
		{ grep FAILED "$work/small-ref.log"; tail -3 "$work/small-ref.log"; fail "the reference device made to the minimum capacities was not certified"; }
	grep -q 'no response differed' "$work/small-ref.log" || { grep -A5 'against ref' "$work/small-ref.log"; fail "the reference device in process diverged from its reference twin"; }
fi

if [ "$proof" = campaign ]; then
	say "8. shards of one campaign merge into the whole run's certificate"
	# Each run in one process (certify's default for ref is a process a
	# CPU): make test runs the proofs side by side with its other steps,
	# where more processes only add CPU (about 1.3x for a whole run of ref).
	# cmd/spdlab's TestCertifyProcsWholeSuite checks that --procs 2 comes to
	# the same certificate.
	for i in 1 2 3; do
		"$BIN" certify --procs 1 --dut ref --shard "$i/3" --key "$work/lab.pem" --out "$work/shard$i" >"$work/shard$i.log" 2>&1 &&
			fail "shard $i/3 exited 0 as if it were a certificate"
		grep -q '^SHARD' "$work/shard$i.log" || { tail -3 "$work/shard$i.log"; fail "shard $i/3 does not say SHARD"; }
	done
	# Step 10 needs golden evidence of ref recorded by one run and a second
	# run compared with it. make test-scenarios records it in its run of ref
	# (scripts/scenarios.sh GOLDEN: certify --dut ref --golden, a process a
	# CPU as here on 2 CPUs) with the same spdlab binary: then the whole run
	# here is the second run, compared with that evidence. Otherwise the
	# whole run records it and step 10 makes the second run.
	golden_by=""
	if [ -n "${GOLDEN:-}" ] && [ -s "$GOLDEN.spdlab" ] && [ "$(cat "$GOLDEN.spdlab")" = "$(sha256sum <"$BIN" | cut -d' ' -f1)" ]; then
		golden_by="make test-scenarios' run of ref ($GOLDEN, recorded by this spdlab binary)"
		cp -r "$GOLDEN" "$work/golden" || fail "could not copy the golden evidence $GOLDEN"
		[ -n "$(ls "$work/golden")" ] || fail "$GOLDEN.spdlab names this binary, but $GOLDEN holds no golden evidence"
	fi
	"$BIN" certify --procs 1 --dut ref --key "$work/lab.pem" --out "$work/whole" --golden "$work/golden" >"$work/whole.log" 2>&1 ||
		fail "the whole run on ref was not certified${golden_by:+ or differs from the golden evidence of $golden_by}: $(grep -A5 'golden:' "$work/whole.log" || tail -3 "$work/whole.log")"
	"$BIN" report --merge --out "$work/merged" --key "$work/lab.pem" --lab-key "$work/lab.pub.pem" "$work/shard1" "$work/shard2" "$work/shard3" >"$work/merge.log" 2>&1 ||
		{ cat "$work/merge.log"; fail "the three shards did not merge into a certificate"; }
	python3 - "$work/merged/certificate.json" "$work/whole/certificate.json" <<'PY' || fail "the merged certificate differs from the whole run's"
import json, sys
m, w = (json.load(open(p)) for p in sys.argv[1:])
key = lambda c: sorted((x["id"], x["verdict"]) for x in c["cases"])
sys.exit(0 if key(m) == key(w) and m["verdict"] == w["verdict"] == "CERTIFIED" else 1)
PY
	# The merged report carries the shards' traces whole, signed with it.
	merged_trace=$(stat -c %s "$work/merged/trace.pcapng" 2>/dev/null || echo 0)
	shard_traces=$(cat "$work"/shard{1,2,3}/trace.pcapng | wc -c)
	[ "$merged_trace" -gt 0 ] && [ "$merged_trace" -eq "$shard_traces" ] ||
		fail "the merged report's trace has $merged_trace bytes, the shards' $shard_traces"
	if "$BIN" report --merge --out "$work/merged2" --key "$work/lab.pem" --lab-key "$work/lab.pub.pem" "$work/shard1" "$work/shard3" >"$work/merge2.log" 2>&1; then
		fail "two of three shards merged"
	fi
	grep -q 'shard 2/3 is missing' "$work/merge2.log" || fail "a missing shard is not named: $(cat "$work/merge2.log")"
	if "$BIN" report --merge --out "$work/merged3" --key "$work/lab.pem" --lab-key "$work/other.pub.pem" "$work/shard1" "$work/shard2" "$work/shard3" >/dev/null 2>&1; then
		fail "shards merged under a key that did not sign them"
	fi

	say "9. a differential run names the first response that differs"
	# The same run of the faulty device is compared with step 8's golden
	# evidence too (step 10 looks at what it says): --against and --golden
	# each judge the run's own exchanges, so one run serves both. It runs
	# the payment cases, where stale-balance goes wrong (several fail): what
	# is checked here, the first divergence named, a failing device judged
	# NOT CERTIFIED (not merely a partial run) and the golden differences
	# of the cases run, needs cases that diverge, not every case; step 1
	# runs --against ref over the whole suite on every transport, where no
	# response may differ.
	"$BIN" certify --procs 1 --dut faulty:stale-balance --label-filter '/^TC-PAY-/' --against ref --golden "$work/golden" --key "$work/lab.pem" --out "$work/diff" >"$work/diff.log" 2>&1 &&
		fail "a faulty device was certified"
	grep -q '^NOT CERTIFIED' "$work/diff.log" || { grep -E 'CERTIFIED|PARTIAL' "$work/diff.log"; fail "the faulty device's payment cases are not judged NOT CERTIFIED"; }
	grep -q 'diverged from the reference; the first:' "$work/diff.log" || fail "the differential run reports no divergence"
	python3 - "$work/diff/divergences.json" <<'PY' || fail "divergences.json does not name the first divergence"
import json, sys
d = json.load(open(sys.argv[1]))
ok = d and all(d[0].get(k) for k in ("case", "command", "device", "reference", "why"))
sys.exit(0 if ok else 1)
PY

	say "10. golden evidence: recorded once, then every run is compared with it"
	if [ -n "$golden_by" ]; then
		echo "  recorded by $golden_by; step 8's whole run was compared with it"
		grep -q '^golden: every case matches' "$work/whole.log" || fail "step 8's whole run of ref was not compared with the golden evidence of $golden_by"
	else
		grep -q 'golden: recorded' "$work/whole.log" || fail "the whole run of step 8 recorded no golden evidence"
		"$BIN" certify --procs 1 --dut ref --key "$work/lab.pem" --out "$work/g2" --golden "$work/golden" >"$work/g2.log" 2>&1 || fail "a second run of ref differs from its golden evidence: $(grep -A5 'golden:' "$work/g2.log")"
	fi
	# The faulty device's run of step 9 was compared with the evidence.
	# (Its cases not run differ from the evidence too, by verdict alone:
	# what counts is a payment case's difference.)
	grep -q 'golden: [0-9]* difference(s) from' "$work/diff.log" && grep -qE '^  TC-PAY-[0-9]+: changed: ' "$work/diff.log" ||
		fail "the golden comparison of a faulty device's run (step 9) names no difference in the payment cases it ran"
fi
say "all verdicts as they must be"
