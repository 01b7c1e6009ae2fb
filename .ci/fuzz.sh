#!/usr/bin/env bash
# Runs every Go fuzz target in the module, one at a time, for FUZZTIME each
# (default 5s). `go test -fuzz` accepts one target in one package per run,
# so this lists the targets per package with `go test -list '^Fuzz'`.
# Exits non-zero if any target fails; a failing input is written by Go to
# <pkg>/testdata/fuzz/<Target>/ and named in the output.
#
#   FUZZTIME=5m .ci/fuzz.sh           # the 5-minute local run
#   FUZZTIME=30s .ci/fuzz.sh ./fuzz   # one package
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-5s}"
# Minimizing a newly interesting input may otherwise take up to a minute
# per input; CI wants the time spent fuzzing.
minimize="${FUZZMINIMIZETIME:-5s}"

if [ $# -gt 0 ]; then
	pkgs=("$@")
else
	# Only packages with a fuzz function are compiled for -list.
	mapfile -t dirs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_]' . | xargs -r -n1 dirname | sort -u)
	pkgs=("${dirs[@]}")
fi

# go1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" at the -fuzztime boundary when the machine is loaded, having
# found nothing (golang/go#75804, fixed in go1.27). Such a run wrote no
# failing input and has no failing subtest; it is reported as a flake, not
# a failure. Committed failing inputs are replayed by plain `go test`.
is_deadline_flake() {
	local out="$1" name="$2"
	grep -q 'Failing input written' "$out" && return 1
	grep -qE '^\s+--- FAIL' "$out" && return 1
	grep -A1 -E "^--- FAIL: ${name} " "$out" | tail -n1 | grep -qx '    context deadline exceeded'
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=()
flaked=()
ran=0
for pkg in "${pkgs[@]}"; do
	if ! targets=$(go test -list '^Fuzz' "$pkg"); then
		echo "fuzz: cannot list targets in $pkg" >&2
		failed+=("$pkg (list)")
		continue
	fi
	for name in $(printf '%s\n' "$targets" | grep -E '^Fuzz'); do
		echo "== fuzz $pkg $name ($fuzztime)"
		ran=$((ran + 1))
		if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" \
			-fuzzminimizetime="$minimize" "$pkg" 2>&1 | tee "$out"; then
			continue
		fi
		if is_deadline_flake "$out" "$name"; then
			echo "fuzz: $pkg $name: deadline flake of the Go toolchain (golang/go#75804), ignored" >&2
			flaked+=("$pkg $name")
		else
			failed+=("$pkg $name")
		fi
	done
done

echo "fuzz: ran $ran targets, ${#flaked[@]} toolchain deadline flakes"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
