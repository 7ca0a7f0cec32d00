#!/usr/bin/env bash
# Drives deploy/local-cluster.sh end to end: up (temp data dir, random free
# base port), status, the printed publish/consume commands (when the raftmq
# CLI is built), up again (no duplicates), kill 1, start 1, restart 2,
# logs 1, down (no process of the data dir left), down --purge.
#
#   tests/deploy/test_local_cluster.sh
#
# Under meson, RAFTMQ_BUILD_DIR is the build being tested (used as is);
# run by hand without it, the script sets up and builds build/local itself.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LC=$ROOT/deploy/local-cluster.sh
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/raftmq-lc-test.XXXXXX")
export RAFTMQ_DATA_DIR=$TMP/data
export RAFTMQ_TIMEOUT=${RAFTMQ_TIMEOUT:-30}
BUILD_DIR=${RAFTMQ_BUILD_DIR:-$ROOT/build/local}
CLI=$BUILD_DIR/client/cli/raftmq
UP_ARGS=()
[ -z "${RAFTMQ_BUILD_DIR:-}" ] || UP_ARGS=(--no-deps)

step=0
fail() {
	echo "FAIL: $*" >&2
	for n in 1 2 3; do
		if [ -f "$RAFTMQ_DATA_DIR/node$n.log" ]; then
			echo "---- node $n log (tail)" >&2
			tail -n 20 "$RAFTMQ_DATA_DIR/node$n.log" >&2
		fi
	done
	exit 1
}
ok() {
	step=$((step + 1))
	echo "ok $step - $*"
}

cleanup() {
	local rc=$?
	# down --purge stops whatever of ours still runs (pid files only).
	RAFTMQ_TIMEOUT=10 "$LC" down --purge >/dev/null 2>&1 || true
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT

# A base port whose 9 ports are free, below the usual ephemeral range.
free_base_port() {
	"$PYTHON" - <<'EOF'
import random, socket
for _ in range(200):
    base = random.randrange(20000, 32000)
    ports = [base + o for o in (1, 2, 3, 101, 102, 103, 201, 202, 203)]
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    raise SystemExit("no free base port found")
EOF
}
RAFTMQ_BASE_PORT=$(free_base_port)
export RAFTMQ_BASE_PORT
echo "# data dir $RAFTMQ_DATA_DIR, base port $RAFTMQ_BASE_PORT, build dir $BUILD_DIR"

pid_of() { cat "$RAFTMQ_DATA_DIR/node$1.pid" 2>/dev/null || true; }

# alive PID N: PID runs and is node N of our data dir.
alive() {
	[ -n "$1" ] && [ -r "/proc/$1/cmdline" ] &&
		tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF "$RAFTMQ_DATA_DIR/node$2"
}

# Every process whose command line mentions our data dir (checking only).
ours_left() {
	local f p
	for f in /proc/[0-9]*/cmdline; do
		p=${f#/proc/}
		p=${p%/cmdline}
		[ "$p" != $$ ] || continue
		if tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "--data-dir $RAFTMQ_DATA_DIR/"; then
			echo "$p"
		fi
	done
}

status_rc() {
	local rc=0
	"$LC" status >"$TMP/status.out" 2>&1 || rc=$?
	echo "$rc"
}

# ---- up
"$LC" up "${UP_ARGS[@]+"${UP_ARGS[@]}"}" >"$TMP/up.out" 2>&1 || {
	cat "$TMP/up.out" >&2
	fail "up exited non-zero"
}
grep -q '^cluster ready: leader is node [123]$' "$TMP/up.out" || { cat "$TMP/up.out" >&2; fail "up did not report a leader"; }
grep -qF "http://127.0.0.1:$((RAFTMQ_BASE_PORT + 201))/" "$TMP/up.out" || fail "up did not print the status page address"
grep -qF "RAFTMQ_CLUSTER=127.0.0.1:$((RAFTMQ_BASE_PORT + 1))," "$TMP/up.out" || fail "up did not print RAFTMQ_CLUSTER"
ok "up starts 3 nodes and a leader is elected"

declare -A PID
for n in 1 2 3; do
	PID[$n]=$(pid_of "$n")
	alive "${PID[$n]}" "$n" || fail "node $n: pid file '${PID[$n]}' is not a running raftmqd of this data dir"
	[ -s "$RAFTMQ_DATA_DIR/node$n.log" ] || fail "node $n: no log at $RAFTMQ_DATA_DIR/node$n.log"
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((RAFTMQ_BASE_PORT + 200 + n))/healthz/ready")
	[ "$code" = 200 ] || fail "node $n: /healthz/ready is $code"
done
ok "pid files, logs, /healthz/ready 200 on every node"

# ---- status
[ "$(status_rc)" = 0 ] || { cat "$TMP/status.out" >&2; fail "status exited non-zero on a healthy cluster"; }
[ "$(grep -cE '^[123] +[0-9]+ +yes +(leader|follower) +[123] +yes ' "$TMP/status.out")" = 3 ] ||
	{ cat "$TMP/status.out" >&2; fail "status does not show 3 alive, ready nodes"; }
[ "$(grep -cE '^[123] +[0-9]+ +yes +leader ' "$TMP/status.out")" = 1 ] ||
	{ cat "$TMP/status.out" >&2; fail "status does not show exactly one leader"; }
grep -q '^leader: [123]  term: ' "$TMP/status.out" || fail "status lacks the cluster line"
ok "status: 3 nodes alive and ready, one leader"

# ---- publish + consume with the commands up printed, as printed
roundtrip() {
	local body=$1 script
	script=$(sed -n 's/^  \(export RAFTMQ_CLUSTER=.*\)$/\1/p; s/^  \(.*raftmq \(queue create\|publish\|consume\) .*\)$/\1/p' "$TMP/up.out")
	[ "$(printf '%s\n' "$script" | wc -l)" = 4 ] || { printf '%s\n' "$script" >&2; fail "up did not print export + 3 CLI commands"; }
	script=${script//--body hello/--body $body}
	bash -euc "$script" >"$TMP/cli.out" 2>&1 || { cat "$TMP/cli.out" >&2; fail "the printed CLI commands failed"; }
	grep -qF "\"body\":\"$body\"" "$TMP/cli.out" || { cat "$TMP/cli.out" >&2; fail "consume did not return the published message"; }
}
HAVE_CLI=0
if [ -x "$CLI" ]; then
	HAVE_CLI=1
	roundtrip "hello-$RANDOM"
	ok "publish + consume one message with the printed commands"
else
	echo "# SKIP publish/consume: $CLI is not built (the raftmq CLI)"
fi

# ---- up again: no duplicates
"$LC" up "${UP_ARGS[@]+"${UP_ARGS[@]}"}" >"$TMP/up2.out" 2>&1 || { cat "$TMP/up2.out" >&2; fail "second up exited non-zero"; }
[ "$(grep -c 'already running' "$TMP/up2.out")" = 3 ] || { cat "$TMP/up2.out" >&2; fail "second up did not find the 3 running nodes"; }
for n in 1 2 3; do
	[ "$(pid_of "$n")" = "${PID[$n]}" ] || fail "node $n: pid changed on the second up"
done
[ "$(ours_left | wc -l)" = 3 ] || fail "not exactly 3 processes of the data dir after the second up: $(ours_left | tr '\n' ' ')"
ok "up twice: same pids, no duplicates"

# ---- kill 1, start 1
"$LC" kill 1 >/dev/null || fail "kill 1 exited non-zero"
! alive "${PID[1]}" 1 || fail "node 1 (pid ${PID[1]}) still runs after kill 1"
[ ! -e "$RAFTMQ_DATA_DIR/node1.pid" ] || fail "kill 1 left its pid file"
[ "$(status_rc)" != 0 ] || fail "status exited 0 with node 1 down"
grep -qE '^1 +- +no ' "$TMP/status.out" || { cat "$TMP/status.out" >&2; fail "status does not show node 1 down"; }
ok "kill 1: node 1 gone, status reports it"

"$LC" start 1 >"$TMP/start.out" 2>&1 || { cat "$TMP/start.out" >&2; fail "start 1 exited non-zero"; }
new=$(pid_of 1)
alive "$new" 1 || fail "node 1 not running after start 1"
[ "$new" != "${PID[1]}" ] || fail "start 1 kept the old pid"
[ "$(status_rc)" = 0 ] || { cat "$TMP/status.out" >&2; fail "status not healthy after start 1"; }
ok "start 1: node 1 back and the cluster ready"

# ---- restart 2
"$LC" restart 2 >"$TMP/restart.out" 2>&1 || { cat "$TMP/restart.out" >&2; fail "restart 2 exited non-zero"; }
grep -q 'SIGTERM' "$TMP/restart.out" || fail "restart 2 did not stop node 2 with SIGTERM"
new=$(pid_of 2)
alive "$new" 2 || fail "node 2 not running after restart 2"
! alive "${PID[2]}" 2 || fail "the old node 2 (pid ${PID[2]}) still runs"
[ "$(status_rc)" = 0 ] || { cat "$TMP/status.out" >&2; fail "status not healthy after restart 2"; }
[ "$(ours_left | wc -l)" = 3 ] || fail "not exactly 3 processes of the data dir after restart 2"
ok "restart 2: new pid, cluster ready"

if [ $HAVE_CLI = 1 ]; then
	roundtrip "again-$RANDOM"
	ok "publish + consume after kill/start/restart"
fi

# ---- logs 1
"$LC" logs 1 >"$TMP/logs.out" 2>&1 || fail "logs 1 exited non-zero"
grep -q 'local-cluster.sh starts node 1' "$TMP/logs.out" || { cat "$TMP/logs.out" >&2; fail "logs 1 does not show node 1's log"; }
[ "$(wc -l <"$TMP/logs.out")" -le 50 ] || fail "logs 1 printed more than 50 lines"
ok "logs 1"

# ---- errors: one line, non-zero
for bad in "kill 4" "start" "frobnicate" "logs 1 -x"; do
	rc=0
	# shellcheck disable=SC2086 # word splitting wanted
	"$LC" $bad >"$TMP/err.out" 2>&1 || rc=$?
	[ $rc != 0 ] || fail "'$bad' exited 0"
	[ "$(wc -l <"$TMP/err.out")" = 1 ] || { cat "$TMP/err.out" >&2; fail "'$bad' printed more than one line"; }
done
rc=0
RAFTMQ_BASE_PORT=$((RAFTMQ_BASE_PORT + 1000)) "$LC" status >"$TMP/err.out" 2>&1 || rc=$?
if [ $rc = 0 ] || ! grep -q "RAFTMQ_BASE_PORT=$RAFTMQ_BASE_PORT" "$TMP/err.out"; then
	cat "$TMP/err.out" >&2
	fail "another base port on this data dir was not refused"
fi
for c in up down status kill start restart logs; do
	"$LC" "$c" --help >/dev/null || fail "$c --help exited non-zero"
done
ok "bad arguments fail with one line; --help works"

# ---- down
"$LC" down >"$TMP/down.out" 2>&1 || { cat "$TMP/down.out" >&2; fail "down exited non-zero"; }
[ "$(grep -c 'stopped' "$TMP/down.out")" = 3 ] || { cat "$TMP/down.out" >&2; fail "down did not stop 3 nodes"; }
left=$(ours_left | tr '\n' ' ')
[ -z "$left" ] || fail "processes of the data dir left after down: $left"
for n in 1 2 3; do
	[ ! -e "$RAFTMQ_DATA_DIR/node$n.pid" ] || fail "down left node $n's pid file"
	[ -d "$RAFTMQ_DATA_DIR/node$n" ] || fail "down deleted node $n's data (only --purge should)"
done
"$LC" down >/dev/null || fail "down on a stopped cluster exited non-zero"
ok "down: no process left, data kept"

"$LC" down --purge >/dev/null || fail "down --purge exited non-zero"
[ ! -e "$RAFTMQ_DATA_DIR" ] || fail "down --purge left $RAFTMQ_DATA_DIR: $(find "$RAFTMQ_DATA_DIR" | tr '\n' ' ')"
ok "down --purge deletes the data dir"

echo "# all $step checks passed"
