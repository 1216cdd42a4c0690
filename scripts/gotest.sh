#!/usr/bin/env bash
# go test for make test's steps, with the test binaries kept between runs.
#
#   scripts/gotest.sh [FLAG...] PACKAGE... [-args ARG...]
#   scripts/gotest.sh [BUILD FLAG...] -o FILE PACKAGE
#
# The second form only builds the package's test binary, kept as below,
# and copies it to FILE (go test -c -o FILE).
#
# go test links every package's test binary again at every run, though
# nothing it is made of changed: in make test about fifty links, some 28 s
# of CPU on two cores (13 to 16 s for check-race's fifteen, 13 s for the
# other packages' 29), in every run. This script builds them with
# `go test -c -o DIR/`, which leaves a binary in DIR alone when its build ID
# says it is up to date (what it was linked from, and how, is unchanged),
# then runs each once in its package's directory, as go test does, two at
# a time (one a CPU; GOTEST_P), in the order given, and prints go test's
# summary lines: "ok", "FAIL" with the test's output, or "?" for a package
# without tests. It fails when a package does not build or any test fails.
#
# Flags: -first N (see Build below); -run, -skip, -timeout (default 10m)
# and -v are the test binary's (-test.run, ...); -count=1 is accepted
# (each binary runs once); every other flag is a build flag for go test -c
# (-race, -gcflags=..., -vet=off, which it takes as go test does: it vets
# each package it builds a binary of, unless -vet=off), given as one
# argument (-flag=value). Arguments after -args go to every test binary,
# as go test's -args.
#
# The binaries are kept under SPDLAB_TESTBIN (default
# ${XDG_CACHE_HOME:-~/.cache}/spdlab/testbin), one directory for each
# checkout and set of build flags and GOFLAGS, the four used last kept.
# Packages whose import paths end in the same name (cmd/spdlab and the
# module root, rigs/serial and emulator/serial) get directories of their
# own, as the binaries are named after it. A binary is never shared
# between two checkouts, so two clones running make test at once do not
# replace each other's. A checkout's first run starts from a copy of the
# directory used last with the same flags by any checkout: built with
# -trimpath (as every build of the Makefile is), a binary does not depend on the
# directory it was built in, and those of the copy whose packages are the
# same in this checkout are up to date as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
# The temporary directories removed at exit.
temps=()
trap 'rm -rf "${temps[@]}"' EXIT
GO=${GO:-go}
build=() run=() args=() pkgs=() timeout=10m copyto= first=0
while (($#)); do
	case $1 in
	-args) shift; args=("$@"); break ;;
	-run | -skip) run+=("-test.${1#-}=$2"); shift ;;
	-run=* | -skip=*) run+=("-test.${1#-}") ;;
	-o) copyto=$2; shift ;;
	-first) first=$2; shift ;;
	-timeout) timeout=$2; shift ;;
	-timeout=*) timeout=${1#-timeout=} ;;
	-v | -v=true) run+=(-test.v) ;;
	-count=1) ;;
	-count) [[ ${2:-} == 1 ]] || { echo "gotest: -count ${2:-}: each test binary runs once" >&2; exit 2; }; shift ;;
	-count=*) echo "gotest: $1: each test binary runs once" >&2; exit 2 ;;
	-*) build+=("$1") ;;
	*) pkgs+=("$1") ;;
	esac
	shift
done
((${#pkgs[@]})) || { echo "gotest: no packages" >&2; exit 2; }
[[ $first =~ ^[0-9]+$ ]] || { echo "gotest: -first takes a number of packages, not '$first'" >&2; exit 2; }
# Linked as go test links the binaries it runs, without the symbol table
# and DWARF (-s -w), unless the flags say otherwise; stack traces and the
# race detector's reports take names from the Go runtime's own tables.
[[ " ${build[*]} " == *" -ldflags="* ]] || build+=("-ldflags=-s -w")

cache=${SPDLAB_TESTBIN:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/spdlab/testbin}
flags=$(printf '%s\n' "$($GO env GOFLAGS GOOS GOARCH CGO_ENABLED)" "${build[@]}" | sha256sum | cut -c1-12)
dir=$cache/$flags-$(printf '%s\n' "$PWD" | sha256sum | cut -c1-8)
if [[ ! -d $dir ]] && seed=$(ls -1dt "$cache/$flags"-????????/ 2>/dev/null | head -n 1) && [[ -n $seed ]]; then
	# Copied whole under another name first (DIR.PID, which no checkout's
	# seed matches), then renamed: a make test of this checkout starting at
	# the same moment (the other lane) takes either the whole copy or its
	# own.
	cp -a "${seed%/}" "$dir.$$" 2>/dev/null && mv -T "$dir.$$" "$dir" 2>/dev/null || rm -rf "$dir.$$"
fi
if ! mkdir -p "$dir" 2>/dev/null || ! touch "$dir" 2>/dev/null; then
	dir=$(mktemp -d)
	echo "gotest: cannot write $cache (set SPDLAB_TESTBIN to a directory that can be written): the test binaries go to $dir for this run only" >&2
	temps+=("$dir")
fi
# The four directories used last stay, and any used within the hour (a
# make test of another checkout may be running from it); older ones go.
{ ls -1dt "$cache"/*/ 2>/dev/null || true; } | tail -n +5 | while read -r old; do
	if [[ -z $(find "$old" -maxdepth 0 -mmin -60) ]]; then rm -rf "$old"; fi
done
# A binary that outlives its own -test.timeout (stuck where the test
# framework's timer cannot end it) is killed a minute later, as go test
# does. timeout --foreground leaves it in this script's process group, so
# that an interrupt from the terminal (Ctrl-C) reaches it as it would
# under go test; without, timeout makes a group of its own and the binary
# ran on after make test was interrupted.
limit=$(awk -v d="$timeout" 'BEGIN {
	n = 0; s = 0
	while (match(d, /^[0-9.]+(h|ms|m|s)/)) {
		v = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
		u = v; sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		s += v * (u == "h" ? 3600 : u == "m" ? 60 : u == "ms" ? 0.001 : 1); n++
	}
	if (d != "" || n == 0) exit 1
	printf "%d", s + 60
}') || { echo "gotest: -timeout $timeout is not a duration such as 10m or 1h30m" >&2; exit 2; }

# Every package of the module, in go list's order: IMPORTPATH DIR TESTS,
# and the group directory of its binary: g0 for the first package of a
# name, g1 for the second, and so on, the same in every run.
declare -A group pkgdir tests named
while read -r ip d t; do
	n=${named[${ip##*/}]:-0}
	named[${ip##*/}]=$((n + 1))
	group[$ip]=g$n pkgdir[$ip]=$d tests[$ip]=$t
done < <($GO list -f '{{.ImportPath}} {{.Dir}} {{if or .TestGoFiles .XTestGoFiles}}1{{else}}0{{end}}' ./...)
want=()
while read -r ip; do
	[[ -n ${group[$ip]:-} ]] || { echo "gotest: $ip is not a package of this module" >&2; exit 2; }
	want+=("$ip")
done < <($GO list "${pkgs[@]}")

# Build: one go test -c a group directory (a go command builds and links
# its packages on every CPU), in chunks: with -first N, each of the first
# N packages alone, in order, then the rest. A package runs as soon as
# its chunk is built, as go test starts the tests of the first packages it
# links while it builds the others: make check-race names first the
# packages whose tests serve cards on pcscd's vpcd slots, so that they run
# before the other lane's suite and certification take the slots, even
# when a change makes the rest compile for a while.
declare -A chunk
i=0
for ip in "${want[@]}"; do
	chunk[$ip]=$((i < first ? i : first))
	i=$((i + 1))
done
work=$(mktemp -d)
temps+=("$work")
buildchunk() {
	local c=$1 ip g
	local -A bygroup=()
	for ip in "${want[@]}"; do
		[[ ${chunk[$ip]} == "$c" && ${tests[$ip]} == 1 ]] && bygroup[${group[$ip]}]+="$ip "
	done
	for g in "${!bygroup[@]}"; do
		mkdir -p "$dir/$g"
		# shellcheck disable=SC2086 # the group's packages, one word each
		$GO test -c -o "$dir/$g/" "${build[@]}" ${bygroup[$g]} || return 1
	done
}
# builder: builds the chunks in order; touches WORK/built.C for each
# built, WORK/failed when one does not build, and stops there.
builder() {
	local c
	for ((c = 0; c <= first; c++)); do
		buildchunk "$c" || { echo "FAIL (the test binaries did not build)"; touch "$work/failed"; return 1; }
		touch "$work/built.$c"
	done
}

if [[ -n $copyto ]]; then
	((${#want[@]} == 1)) && [[ ${tests[${want[0]}]} == 1 ]] || { echo "gotest: -o builds the test binary of one package with tests" >&2; exit 2; }
	buildchunk 0 || { echo "FAIL (the test binary did not build)"; exit 1; }
	cp "$dir/${group[${want[0]}]}/${want[0]##*/}.test" "$copyto"
	exit
fi

# Run: GOTEST_P binaries at once, each one's output printed whole when it
# ends (under a lock, so that two never mix).
lock=$work/lock
touch "$lock"
runone() {
	local ip=$1 bin log t0 rc secs
	bin=$dir/${group[$ip]}/${ip##*/}.test
	log=$work/log.${ip//\//_}
	t0=$EPOCHREALTIME
	rc=0
	(cd "${pkgdir[$ip]}" && exec timeout --foreground -k 10s "${limit}s" "$bin" -test.paniconexit0 -test.timeout="$timeout" "${run[@]}" "${args[@]}") >"$log" 2>&1 || rc=$?
	secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
	{
		if ((rc == 0)); then
			[[ " ${run[*]} " == *" -test.v "* ]] && cat "$log"
			printf 'ok  \t%s\t%ss\n' "$ip" "$secs"
		else
			cat "$log"
			printf 'FAIL\t%s\t%ss\n' "$ip" "$secs"
		fi
	} | flock "$lock" cat
	rm -f "$log"
	return "$rc"
}
# built C: waits until chunk C is built (true) or a chunk failed to
# build (false).
built() {
	until [[ -e $work/built.$1 ]]; do
		[[ -e $work/failed ]] && return 1
		sleep 0.1
	done
}
par=${GOTEST_P:-$(nproc)}
failed=0
declare -A jobs=()
# reap: waits for one running test binary to end.
reap() {
	local pid
	wait -n -p pid "${!jobs[@]}" || failed=1
	unset "jobs[$pid]"
}
builder &
bpid=$!
for ip in "${want[@]}"; do
	if [[ ${tests[$ip]} != 1 ]]; then
		printf '?   \t%s\t[no test files]\n' "$ip" | flock "$lock" cat
		continue
	fi
	built "${chunk[$ip]}" || { failed=1; break; }
	while ((${#jobs[@]} >= par)); do reap; done
	runone "$ip" &
	jobs[$!]=1
done
while ((${#jobs[@]} > 0)); do reap; done
wait "$bpid" || failed=1
((failed == 0)) || { echo FAIL; exit 1; }
