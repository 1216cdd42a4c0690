#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 30s).
# A crasher is written to the package's testdata/fuzz/FuzzX/ by go test and
# fails the run. go test's fuzzer sometimes ends a short run with "context
# deadline exceeded" and no crasher (its own deadline raced a slow input):
# that is reported and the target run once more.
set -euo pipefail
t=${1:-30s}
fail=0
while read -r f; do
	pkg=./$(dirname "${f#./}")
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		for try in 1 2; do
			echo "== $pkg $name ($t)"
			log=$(mktemp)
			if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" "$pkg" >"$log" 2>&1; then
				tail -1 "$log"
				rm -f "$log"
				break
			fi
			cat "$log"
			if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log" && [[ $try == 1 ]]; then
				echo "== $name: the fuzzer's own deadline, no crasher; running it again"
				rm -f "$log"
				continue
			fi
			rm -f "$log"
			fail=1
			break
		done
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
exit $fail
