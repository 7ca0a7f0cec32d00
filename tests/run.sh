#!/usr/bin/env bash
# Builds raftmq and runs every test suite and lint: what CI runs (.ci/run).
#
#   ./tests/run.sh                 deps, plain + sanitize builds, tests, fuzz, lints
#   ./tests/run.sh --quick         plain build only (no ASan/UBSan build, no fuzz)
#   ./tests/run.sh --suite unit    only that meson test suite (repeatable; no fuzz)
#   ./tests/run.sh --no-deps       skip deploy/install-deps.sh
#   ./tests/run.sh --no-fuzz       skip the fuzzers (FUZZ_SECONDS=25 each otherwise)
#
# Build dirs are build/plain (gcc, debugoptimized, --werror), build/sanitize
# (clang, -Dsanitize=true: ASan+UBSan, --werror) and build/fuzz (clang,
# -Dfuzz=true: only the libFuzzer targets of tests/fuzz, each run for
# FUZZ_SECONDS on its seed corpus); all are reused between runs. Step logs go to
# build/logs/. Works from any directory, as root in CI (CI=true, no stdin) and
# as a user. Exits non-zero if any step fails; the remaining independent steps
# still run so one CI run reports everything that is wrong.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

quick=0
deps=1
fuzz=1
suites=()

usage() {
	sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--no-deps) deps=0 ;;
	--no-fuzz) fuzz=0 ;;
	--suite)
		[ $# -ge 2 ] || { echo "run.sh: --suite needs a NAME" >&2; exit 2; }
		suites+=("$2")
		shift
		;;
	--suite=*) suites+=("${1#--suite=}") ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run.sh: unknown option: $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

LOGDIR=$ROOT/build/logs
mkdir -p "$LOGDIR"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
fmt_ms() { printf '%d.%01ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

T0=$(now_ms)
failed=()
summary=()
tests_ok=0
tests_bad=0
cases_ok=0
cases_bad=0

# record NAME STATUS MS [NOTE]: one summary line per step, kept for the end.
record() {
	local line
	line=$(printf '%-6s %-28s %8s%s' "$2" "$1" "$(fmt_ms "$3")" "${4:+  $4}")
	summary+=("$line")
	printf '==> %s\n' "$line"
	if [ "$2" = FAIL ]; then
		failed+=("$1")
	fi
}

# step NAME CMD...: runs CMD quietly into build/logs/NAME.log; on failure
# prints the log's tail so CI output shows the error.
step() {
	local name=$1 log t rc=0
	shift
	log=$LOGDIR/${name// /-}.log
	t=$(now_ms)
	printf '\n--> %s: %s\n' "$name" "$*"
	"$@" >"$log" 2>&1 </dev/null || rc=$?
	if [ $rc -eq 0 ]; then
		record "$name" ok $(($(now_ms) - t))
	else
		tail -n 150 "$log" | sed 's/^/    /'
		record "$name" FAIL $(($(now_ms) - t)) "exit $rc, log: ${log#"$ROOT"/}"
	fi
	return $rc
}

# step_tee NAME CMD...: like step, but streams the output too (tests, lints).
step_tee() {
	local name=$1 log t rc=0
	shift
	log=$LOGDIR/${name// /-}.log
	t=$(now_ms)
	printf '\n--> %s: %s\n' "$name" "$*"
	"$@" </dev/null 2>&1 | tee "$log" || rc=$?
	if [ $rc -eq 0 ]; then
		record "$name" ok $(($(now_ms) - t))
	else
		record "$name" FAIL $(($(now_ms) - t)) "exit $rc, log: ${log#"$ROOT"/}"
	fi
	return $rc
}

# dir_cc DIR: the C compiler command DIR was set up with ("cc", "gcc",
# "clang"...), nothing for a new dir. Meson keeps the compiler of the first
# setup; a --reconfigure cannot change it.
dir_cc() {
	[ -f "$1/build.ninja" ] || return 0
	awk '/^ command = .* \$ARGS -MD/ { print $3; exit }' "$1/build.ninja"
}

cc_family() {
	case "$1" in
	*clang*) echo clang ;;
	*) echo gcc ;;
	esac
}

# configure DIR ARGS...: sets up a build dir, or reconfigures an existing one
# with the same arguments (cheap; keeps the objects). With CC set, a dir set
# up with the other compiler family (gcc / clang) is made again from scratch.
configure() {
	local dir=$1 have
	shift
	have=$(dir_cc "$dir")
	if [ -n "${CC:-}" ] && [ -n "$have" ] &&
		[ "$(cc_family "$have")" != "$(cc_family "$CC")" ]; then
		echo "run.sh: $dir was set up with $have, not $CC: setting it up again"
		rm -rf "$dir"
	fi
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		# A dir from another meson version may refuse --reconfigure.
		meson setup --reconfigure "$@" "$dir" ||
			meson setup --wipe "$@" "$dir"
	else
		# A half-made dir (interrupted setup) cannot be reconfigured.
		rm -rf "$dir"
		meson setup "$@" "$dir"
	fi
}

# run_tests NAME DIR [MESON_ARGS... -- ENV...]: meson test in DIR, with the
# ENV assignments; adds up meson's and Criterion's counts. A run that selects
# no test fails (a typo in --suite must not pass silently).
run_tests() {
	local name=$1 dir=$2 log rc=0 ok bad c_ok c_bad
	shift 2
	local args=(test -C "$dir" --print-errorlogs --num-processes 2)
	local s
	for s in "${suites[@]+"${suites[@]}"}"; do
		args+=(--suite "$s")
	done
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	[ $# -eq 0 ] || shift # the --
	step_tee "$name" env "$@" meson "${args[@]}" || rc=$?
	log=$LOGDIR/${name// /-}.log
	if grep -q 'No suitable tests defined' "$log"; then
		echo "run.sh: no test matched in $dir${suites[*]:+ (suites: ${suites[*]})}" >&2
		summary[${#summary[@]} - 1]=$(printf '%-6s %-28s %8s  %s' FAIL "$name" "" "no test ran")
		[ $rc -ne 0 ] || failed+=("$name")
		return 1
	fi
	ok=$(awk '/^Ok:/ { print $2 }' "$log" | tail -n 1)
	bad=$(awk '/^(Fail|Unexpected Pass|Timeout):/ { n += $NF } END { print n + 0 }' "$log")
	tests_ok=$((tests_ok + ${ok:-0}))
	tests_bad=$((tests_bad + bad))
	# Criterion writes one synthesis line per executable into meson's testlog.
	if [ -f "$dir/meson-logs/testlog.txt" ]; then
		read -r c_ok c_bad < <(awk -F'|' '/Synthesis: Tested:/ {
				for (i = 1; i <= NF; i++) {
					split($i, kv, ":"); v = kv[length(kv)] + 0
					if ($i ~ /Passing/) p += v
					if ($i ~ /Failing|Crashing/) f += v
				}
			} END { print p + 0, f + 0 }' "$dir/meson-logs/testlog.txt")
		cases_ok=$((cases_ok + c_ok))
		cases_bad=$((cases_bad + c_bad))
	fi
	return $rc
}

build_and_test() {
	local kind=$1 dir=build/$1
	shift
	local cfg=("$@")
	# gcc for plain, clang for sanitize: CI builds with both (STYLE.md 9),
	# and clang's ASan/UBSan are the ones the fuzzers use.
	local -x CC=gcc
	[ "$kind" != sanitize ] || CC=clang
	if ! step "configure $kind" configure "$dir" "${cfg[@]}" ||
		! step "compile $kind" meson compile -C "$dir"; then
		record "test $kind" skip 0 "not built"
		return 0
	fi
	if [ "$kind" = sanitize ]; then
		# ASan/UBSan make the tests a few times slower.
		run_tests "test $kind" "$dir" --timeout-multiplier 3 -- \
			ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 || true
	else
		run_tests "test $kind" "$dir" || true
	fi
}

echo "raftmq tests: $ROOT (quick=$quick${suites[*]:+, suites: ${suites[*]}})"

if [ $deps -eq 0 ]; then
	record "install deps" skip 0 "--no-deps"
elif [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
	# install-deps.sh needs root or sudo even when nothing is missing.
	record "install deps" skip 0 "not root and no sudo: see deploy/install-deps.sh"
else
	step "install deps" bash deploy/install-deps.sh || true
fi

build_and_test plain --werror --buildtype=debugoptimized -Dsanitize=false \
	-Db_colorout=auto
if [ $quick -eq 0 ]; then
	build_and_test sanitize --werror --buildtype=debugoptimized -Dsanitize=true \
		-Db_colorout=auto
fi

# fuzz_all: builds the libFuzzer targets in build/fuzz and runs each for
# FUZZ_SECONDS on its committed seed corpus (tests/fuzz/corpus/NAME, read
# only; what libFuzzer finds goes to build/fuzz/corpus/NAME, kept between
# runs). The corpus, including every past crash input, is replayed first.
# A crash leaves its input in build/fuzz/artifacts/ (tests/fuzz/README.md).
fuzz_all() {
	local dir=build/fuzz name secs=${FUZZ_SECONDS:-25}
	local -x CC=clang
	if ! step "configure fuzz" configure "$dir" --werror \
		--buildtype=debugoptimized -Dfuzz=true -Dtests=false \
		-Dsanitize=false -Db_colorout=auto ||
		! step "compile fuzz" meson compile -C "$dir" fuzz-targets; then
		record "fuzz" skip 0 "not built"
		return 0
	fi
	for name in client entry snapshot queue; do
		mkdir -p "$dir/corpus/$name" "$dir/artifacts"
		step "fuzz $name" env ASAN_OPTIONS=detect_leaks=1 \
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
			"$dir/tests/fuzz/fuzz_$name" -max_total_time="$secs" \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix="$dir/artifacts/$name-" \
			"$dir/corpus/$name" "tests/fuzz/corpus/$name" || true
	done
}

if [ $quick -eq 0 ] && [ $fuzz -eq 1 ] && [ ${#suites[@]} -eq 0 ]; then
	fuzz_all
fi

for lint in tests/lint/*.sh; do
	[ -e "$lint" ] || continue
	step_tee "lint $(basename "$lint" .sh)" bash "$lint" || true
done

total=$(($(now_ms) - T0))
echo
echo "==================== summary ===================="
printf '%s\n' "${summary[@]}"
echo "test cases (Criterion): $cases_ok passed, $cases_bad failed"
echo "total time: $(fmt_ms "$total")"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
fi
# The closing line counts meson test programs over all builds.
echo "tests: $tests_ok passed, $tests_bad failed"
[ ${#failed[@]} -eq 0 ]
