#!/usr/bin/env bash
# Runs a 3-node raftmq cluster on 127.0.0.1 (../shared/DESIGN.md section 6).
#
#   deploy/local-cluster.sh up [--no-deps]   install deps, build, start 3 nodes, wait until ready
#   deploy/local-cluster.sh down [--purge]   stop the nodes (--purge: delete their data and logs too)
#   deploy/local-cluster.sh status           each node's pid, role, leader; the cluster's members
#   deploy/local-cluster.sh kill N           kill -9 node N (1..3)
#   deploy/local-cluster.sh start N          start node N
#   deploy/local-cluster.sh restart N        stop node N (SIGTERM) and start it again
#   deploy/local-cluster.sh logs N [-f] [-n LINES]   print (or follow) node N's log
#   deploy/local-cluster.sh COMMAND --help   help on one command
#
# Environment:
#   RAFTMQ_DATA_DIR    data dir (default ./data/local under the repository root); it holds
#                      nodeN/ (Raft data), nodeN.pid, nodeN.log and base-port
#   RAFTMQ_BASE_PORT   default 7000: client ports base+1..3, Raft base+101..103,
#                      HTTP base+201..203; a data dir keeps the base port it was
#                      started with (used when this is unset, another one is refused)
#   RAFTMQ_BUILD_DIR   use this existing build dir as is (no build); default: build/local,
#                      set up (-Dtests=false) and brought up to date by `up`
#   RAFTMQ_TIMEOUT     seconds to wait for readiness and for a node to stop (default 30)
#
# Several clusters run side by side with different RAFTMQ_DATA_DIR and RAFTMQ_BASE_PORT.
# Processes are found only through the pid files in the data dir, and a pid counts only if
# /proc/PID/cmdline is a raftmqd started with this data dir; nothing is found or killed by name.
set -euo pipefail

PROG=local-cluster.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=(1 2 3)

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}
usage_error() {
	printf '%s: %s (try --help)\n' "$PROG" "$*" >&2
	exit 2
}

# ---------------------------------------------------------------- settings

abs_path() {
	case "$1" in
	/*) printf '%s' "$1" ;;
	*) printf '%s/%s' "$PWD" "${1#./}" ;;
	esac
}

if [ -n "${RAFTMQ_DATA_DIR:-}" ]; then
	DATA_DIR=$(abs_path "$RAFTMQ_DATA_DIR")
else
	DATA_DIR=$ROOT/data/local
fi
DATA_DIR=${DATA_DIR%/}
[ -n "$DATA_DIR" ] || die "RAFTMQ_DATA_DIR must not be /"

# A data dir remembers its base port (the nodes keep their Raft addresses in
# it): without RAFTMQ_BASE_PORT the recorded one is used, and another one is
# refused.
PORT_FILE=$DATA_DIR/base-port
RECORDED_PORT=""
if [ -f "$PORT_FILE" ]; then
	read -r RECORDED_PORT <"$PORT_FILE" || true
fi
BASE_PORT=${RAFTMQ_BASE_PORT:-${RECORDED_PORT:-7000}}
case "$BASE_PORT" in
'' | *[!0-9]*) die "RAFTMQ_BASE_PORT must be a number, not '$BASE_PORT'" ;;
esac
BASE_PORT=$((10#$BASE_PORT))
if [ "$BASE_PORT" -lt 1 ] || [ "$BASE_PORT" -gt $((65535 - 203)) ]; then
	die "RAFTMQ_BASE_PORT must be between 1 and $((65535 - 203)), not $BASE_PORT"
fi
if [ -n "$RECORDED_PORT" ] && [ "$RECORDED_PORT" != "$BASE_PORT" ]; then
	die "data dir $DATA_DIR belongs to a cluster with RAFTMQ_BASE_PORT=$RECORDED_PORT, not $BASE_PORT (use that port, another RAFTMQ_DATA_DIR, or 'down --purge' it first)"
fi

TIMEOUT=${RAFTMQ_TIMEOUT:-30}
case "$TIMEOUT" in
'' | *[!0-9]* | 0) die "RAFTMQ_TIMEOUT must be a positive number of seconds, not '$TIMEOUT'" ;;
esac

if [ -n "${RAFTMQ_BUILD_DIR:-}" ]; then
	BUILD_DIR=$(abs_path "$RAFTMQ_BUILD_DIR")
	OWN_BUILD=0
else
	BUILD_DIR=$ROOT/build/local
	OWN_BUILD=1
fi
BUILD_DIR=${BUILD_DIR%/}
RAFTMQD=$BUILD_DIR/node/raftmqd
CLI=$BUILD_DIR/client/cli/raftmq

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

client_port() { echo $((BASE_PORT + $1)); }
raft_port() { echo $((BASE_PORT + 100 + $1)); }
http_port() { echo $((BASE_PORT + 200 + $1)); }
node_dir() { echo "$DATA_DIR/node$1"; }
pid_file() { echo "$DATA_DIR/node$1.pid"; }
log_file() { echo "$DATA_DIR/node$1.log"; }

members() {
	local n out=""
	for n in "${NODES[@]}"; do
		out+="${out:+,}$n@127.0.0.1:$(raft_port "$n")@127.0.0.1:$(client_port "$n")"
	done
	echo "$out"
}

cluster_addrs() {
	local n out=""
	for n in "${NODES[@]}"; do
		out+="${out:+,}127.0.0.1:$(client_port "$n")"
	done
	echo "$out"
}

# A path as the user would type it: relative to the repository root when
# run from there, else absolute.
show_path() {
	if [ "$PWD" = "$ROOT" ] && [ "${1#"$ROOT"/}" != "$1" ]; then
		echo "./${1#"$ROOT"/}"
	else
		echo "$1"
	fi
}

# ---------------------------------------------------------------- processes

# is_ours PID N: PID is alive and is a raftmqd whose --data-dir is node N's
# dir of this data dir (read from /proc/PID/cmdline; a zombie has none).
is_ours() {
	local pid=$1 n=$2 want prev="" arg exe=""
	[ -r "/proc/$pid/cmdline" ] || return 1
	want=$(node_dir "$n")
	local args=()
	mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 1
	[ ${#args[@]} -gt 0 ] || return 1
	exe=${args[0]##*/}
	[ "$exe" = raftmqd ] || return 1
	for arg in "${args[@]}"; do
		if [ "$prev" = --data-dir ] && [ "$arg" = "$want" ]; then
			return 0
		fi
		if [ "$arg" = "--data-dir=$want" ]; then
			return 0
		fi
		prev=$arg
	done
	return 1
}

# node_pid N: prints node N's pid if it is running (ours), else fails.
node_pid() {
	local f pid
	f=$(pid_file "$1")
	[ -f "$f" ] || return 1
	read -r pid <"$f" 2>/dev/null || return 1
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	is_ours "$pid" "$1" || return 1
	echo "$pid"
}

# clear_stale N: removes node N's pid file if it names no process of ours.
clear_stale() {
	local f
	f=$(pid_file "$1")
	if [ -f "$f" ] && ! node_pid "$1" >/dev/null; then
		rm -f "$f"
	fi
}

# port_busy PORT: something on 127.0.0.1 accepts connections on PORT.
port_busy() {
	# shellcheck disable=SC2016 # $1 expands in the inner shell
	timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

http_get() { # PORT PATH: prints the body; fails unless 200
	curl -fsS --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null
}

http_code() { # PORT PATH: prints the status code (000: no answer)
	curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null || true
}

tail_logs() { # N...: the last lines of these nodes' logs, to stderr
	local n f
	for n in "$@"; do
		f=$(log_file "$n")
		{
			echo "---- node $n: last lines of $f"
			if [ -f "$f" ]; then tail -n 15 "$f"; else echo "(no log)"; fi
		} >&2
	done
}

need_binary() {
	[ -x "$RAFTMQD" ] || die "no raftmqd at $RAFTMQD: run '$0 up' first (it builds)"
}

# start_node N: starts node N in its own session (Ctrl-C in this terminal or
# closing it does not reach the node), appending to its log.
start_node() {
	local n=$1 pid p log i
	clear_stale "$n"
	if pid=$(node_pid "$n"); then
		echo "node $n: already running (pid $pid)"
		return 0
	fi
	for p in "$(client_port "$n")" "$(raft_port "$n")" "$(http_port "$n")"; do
		if port_busy "$p"; then
			die "node $n: port $p on 127.0.0.1 is in use by another process (another cluster? set RAFTMQ_BASE_PORT)"
		fi
	done
	mkdir -p "$(node_dir "$n")"
	log=$(log_file "$n")
	printf '==== %s: local-cluster.sh starts node %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$n" >>"$log"
	# Without job control a background command is not a process group
	# leader, so setsid execs raftmqd in place: $! is raftmqd's pid.
	setsid "$RAFTMQD" --id "$n" --data-dir "$(node_dir "$n")" \
		--raft-address "127.0.0.1:$(raft_port "$n")" \
		--client-address "127.0.0.1:$(client_port "$n")" \
		--http-address "127.0.0.1:$(http_port "$n")" \
		--members "$(members)" \
		</dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$(pid_file "$n")"
	# Wait for the exec, then for the HTTP endpoint to answer.
	for ((i = 0; i < 50; i++)); do
		if is_ours "$pid" "$n" && [ "$(http_code "$(http_port "$n")" /healthz/live)" = 200 ]; then
			echo "node $n: started (pid $pid, client 127.0.0.1:$(client_port "$n"), http 127.0.0.1:$(http_port "$n"))"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if is_ours "$pid" "$n"; then
		echo "node $n: started (pid $pid), its HTTP endpoint does not answer yet"
		return 0
	fi
	rm -f "$(pid_file "$n")"
	tail_logs "$n"
	die "node $n: raftmqd exited at once; see $(log_file "$n")"
}

# stop_nodes SIG N...: sends SIG to these nodes, waits up to TIMEOUT for them
# to exit, then SIGKILLs what is left. Removes their pid files.
stop_nodes() {
	local sig=$1 sig0=$1 n pid deadline left i
	shift
	local pids=() ns=() how=()
	for n in "$@"; do
		clear_stale "$n"
		if pid=$(node_pid "$n"); then
			kill "-$sig" "$pid" 2>/dev/null || true
			pids+=("$pid")
			ns+=("$n")
		fi
	done
	deadline=$((SECONDS + TIMEOUT))
	while :; do
		left=()
		for i in "${!pids[@]}"; do
			if is_ours "${pids[$i]}" "${ns[$i]}"; then
				left+=("$i")
			fi
		done
		[ ${#left[@]} -gt 0 ] || break
		if [ $SECONDS -gt "$deadline" ]; then
			for i in "${left[@]}"; do
				echo "node ${ns[$i]}: did not exit within ${TIMEOUT}s of SIG$sig; sending SIGKILL" >&2
				kill -KILL "${pids[$i]}" 2>/dev/null || true
				how[i]="SIG$sig0, then SIGKILL"
			done
			deadline=$((SECONDS + 10))
			sig=KILL
			continue
		fi
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		rm -f "$(pid_file "${ns[$i]}")"
		echo "node ${ns[$i]}: stopped (pid ${pids[$i]}, ${how[$i]:-SIG$sig0})"
	done
	STOPPED=${#pids[@]}
}

running_count() {
	local n c=0
	for n in "${NODES[@]}"; do
		if node_pid "$n" >/dev/null; then
			c=$((c + 1))
		fi
	done
	echo "$c"
}

# wait_ready N...: waits until each of these nodes answers 200 on
# /healthz/ready (which needs a known leader). On timeout, prints the logs'
# tails and fails.
wait_ready() {
	local n deadline code reason
	deadline=$((SECONDS + TIMEOUT))
	local pending=("$@")
	while [ ${#pending[@]} -gt 0 ]; do
		local still=()
		for n in "${pending[@]}"; do
			if ! node_pid "$n" >/dev/null; then
				tail_logs "$n"
				die "node $n exited while starting; see $(log_file "$n")"
			fi
			code=$(http_code "$(http_port "$n")" /healthz/ready)
			[ "$code" = 200 ] || still+=("$n")
		done
		pending=("${still[@]+"${still[@]}"}")
		[ ${#pending[@]} -gt 0 ] || break
		if [ $SECONDS -gt "$deadline" ]; then
			n=${pending[0]}
			reason=$(curl -s --max-time 2 "http://127.0.0.1:$(http_port "$n")/healthz/ready" 2>/dev/null | head -n 1) || true
			tail_logs "${pending[@]}"
			die "not ready after ${TIMEOUT}s: node(s) ${pending[*]} (node $n: ${reason:-no answer on 127.0.0.1:$(http_port "$n")})"
		fi
		sleep 0.2
	done
}

# ---------------------------------------------------------------- build

build() {
	if [ $OWN_BUILD -eq 0 ]; then
		need_binary
		return 0
	fi
	local log=$ROOT/build/logs/local-cluster-build.log
	mkdir -p "$ROOT/build/logs"
	if [ ! -f "$BUILD_DIR/meson-private/coredata.dat" ]; then
		echo "building $(show_path "$BUILD_DIR") (meson setup + compile; log: $(show_path "$log"))"
		rm -rf "$BUILD_DIR"
		if ! meson setup --buildtype=debugoptimized -Dtests=false -Dsanitize=false \
			"$BUILD_DIR" "$ROOT" >"$log" 2>&1; then
			tail -n 30 "$log" >&2
			die "meson setup $BUILD_DIR failed; see $log"
		fi
	fi
	# Brings it up to date; a no-op when nothing changed.
	if ! meson compile -C "$BUILD_DIR" >>"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "meson compile -C $BUILD_DIR failed; see $log"
	fi
	need_binary
}

# ---------------------------------------------------------------- commands

help_up() {
	cat <<EOF
Usage: $PROG up [--no-deps]

Installs what is missing (deploy/install-deps.sh, Debian 12), builds
$(show_path "$BUILD_DIR") if needed, starts the nodes that are not running yet
(never a second copy of a running one) and waits until a leader is elected
and every node's /healthz/ready is 200 (RAFTMQ_TIMEOUT, default 30 s). Then
prints how to publish, consume and open the status page.

  --no-deps   skip deploy/install-deps.sh
EOF
}

cmd_up() {
	local deps=1 n
	while [ $# -gt 0 ]; do
		case "$1" in
		--no-deps) deps=0 ;;
		-h | --help) help_up; return 0 ;;
		*) usage_error "up: unknown argument: $1" ;;
		esac
		shift
	done
	if [ $deps -eq 1 ]; then
		bash "$ROOT/deploy/install-deps.sh" || die "deploy/install-deps.sh failed (see above)"
	fi
	local c
	for c in curl setsid timeout; do
		command -v "$c" >/dev/null 2>&1 || die "$c is not installed"
	done
	build
	mkdir -p "$DATA_DIR"
	echo "$BASE_PORT" >"$PORT_FILE"
	echo "cluster: data dir $(show_path "$DATA_DIR"), base port $BASE_PORT"
	for n in "${NODES[@]}"; do
		start_node "$n"
	done
	echo "waiting for a leader and for every node to be ready (up to ${TIMEOUT}s)..."
	wait_ready "${NODES[@]}"
	local leader
	leader=$(status_field "$(http_port 1)" leader_id) || leader="?"
	echo "cluster ready: leader is node $leader"
	quick_start
}

quick_start() {
	local cli
	cli=$(show_path "$CLI")
	cat <<EOF

Quick start (the raftmq CLI reads the cluster's addresses from RAFTMQ_CLUSTER):
  export RAFTMQ_CLUSTER=$(cluster_addrs)
  $cli queue create demo
  $cli publish --queue demo --body hello
  $cli consume demo --max 1
  status page and metrics: http://127.0.0.1:$(http_port 1)/  (/metrics, /v1/status; nodes 2, 3: ports $(http_port 2), $(http_port 3))
EOF
	if [ ! -x "$CLI" ]; then
		echo "  (note: $cli is missing: this checkout does not build the raftmq CLI)"
	fi
	cat <<EOF

More: $0 status | logs N [-f] | kill N | start N | restart N | down [--purge]
EOF
}

# status_field PORT KEY: a top-level field of that node's /v1/status.
status_field() {
	local body
	body=$(http_get "$1" /v1/status) || return 1
	printf '%s' "$body" | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print("" if v is None else (str(v).lower() if isinstance(v, bool) else v))
' "$2"
}

help_status() {
	cat <<EOF
Usage: $PROG status

Prints each node's pid, whether it is alive, its role and the leader it
knows and whether it is ready (from its /v1/status), then the cluster's
leader, term, commit index and members as seen by a running node.
Exits 0 if all nodes are running and ready, 1 otherwise.
EOF
}

cmd_status() {
	case "${1:-}" in
	-h | --help) help_status; return 0 ;;
	'') ;;
	*) usage_error "status: unknown argument: $1" ;;
	esac
	local n pid alive body ok=0 shown="" line
	echo "cluster: data dir $(show_path "$DATA_DIR"), base port $BASE_PORT"
	printf '%-5s %-8s %-6s %-10s %-7s %-6s %-22s %s\n' NODE PID ALIVE ROLE LEADER READY CLIENT HTTP
	for n in "${NODES[@]}"; do
		pid=-
		alive=no
		body=""
		if pid=$(node_pid "$n"); then
			alive=yes
			body=$(http_get "$(http_port "$n")" /v1/status) || body=""
		else
			pid=-
		fi
		if [ -n "$body" ]; then
			line=$(printf '%s' "$body" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
ready = "yes" if s.get("ready") else "no"
print(s.get("state", "?"), s.get("leader_id", 0) or "-", ready)
') || line="? - no"
			# The cluster's view: the leader's, else the first answer.
			if [ -z "$shown" ] || [ "${line%% *}" = leader ]; then
				shown=$body
			fi
		else
			line="- - -"
			if [ $alive = yes ]; then
				line="? - no"
			fi
		fi
		local role leader ready
		read -r role leader ready <<<"$line"
		if [ "$ready" = yes ]; then
			ok=$((ok + 1))
		fi
		printf '%-5s %-8s %-6s %-10s %-7s %-6s %-22s %s\n' "$n" "$pid" "$alive" "$role" "$leader" "$ready" \
			"127.0.0.1:$(client_port "$n")" "http://127.0.0.1:$(http_port "$n")/"
	done
	echo
	if [ -n "$shown" ]; then
		printf '%s' "$shown" | "$PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
print("leader: %s  term: %s  commit index: %s  (as seen by node %s)" % (
    s.get("leader_id") or "none", s.get("term"), s.get("commit_index"), s.get("node_id")))
print("members:")
for m in s.get("nodes", []):
    print("  %-3s %-8s raft %-21s client %-21s %s%s" % (
        m.get("id"), m.get("role"), m.get("raft_address"), m.get("client_address"),
        {True: "reachable", None: "unknown"}.get(m.get("reachable"), "unreachable"),
        "  leader" if m.get("leader") else ""))
q = s.get("queues", [])
print("queues: %d, topics: %d, messages: %s" % (len(q), len(s.get("topics", [])), s.get("messages", 0)))
'
	else
		echo "cluster: no node answers"
	fi
	if [ $ok -ne ${#NODES[@]} ]; then
		printf '%s: %d of %d nodes ready\n' "$PROG" "$ok" "${#NODES[@]}" >&2
		return 1
	fi
}

help_down() {
	cat <<EOF
Usage: $PROG down [--purge]

Stops the nodes of this data dir (the pids in its pid files, checked against
/proc/PID/cmdline): SIGTERM, then SIGKILL after RAFTMQ_TIMEOUT (default 30 s).
Keeps the data and logs unless --purge, which deletes nodeN/, nodeN.log and
nodeN.pid and base-port from the data dir (and the data dir itself if that
leaves it empty).
EOF
}

cmd_down() {
	local purge=0 n
	while [ $# -gt 0 ]; do
		case "$1" in
		--purge) purge=1 ;;
		-h | --help) help_down; return 0 ;;
		*) usage_error "down: unknown argument: $1" ;;
		esac
		shift
	done
	STOPPED=0
	stop_nodes TERM "${NODES[@]}"
	[ "$STOPPED" -gt 0 ] || echo "no node of $(show_path "$DATA_DIR") was running"
	if [ $purge -eq 1 ]; then
		for n in "${NODES[@]}"; do
			rm -rf "$(node_dir "$n")"
			rm -f "$(log_file "$n")" "$(pid_file "$n")"
		done
		rm -f "$PORT_FILE"
		rmdir "$DATA_DIR" 2>/dev/null || true
		echo "purged the data and logs in $(show_path "$DATA_DIR")"
	fi
}

node_arg() { # CMD ARG: validates a node number
	case "${2:-}" in
	1 | 2 | 3) ;;
	'') usage_error "$1: needs a node number N (1..3)" ;;
	*) usage_error "$1: node must be 1, 2 or 3, not '$2'" ;;
	esac
}

help_kill() {
	cat <<EOF
Usage: $PROG kill N

Kills node N (1..3) with SIGKILL, as a crash would, and waits until it is gone.
Its data is kept; '$PROG start N' brings it back.
EOF
}

cmd_kill() {
	case "${1:-}" in -h | --help) help_kill; return 0 ;; esac
	node_arg kill "${1:-}"
	[ $# -le 1 ] || usage_error "kill: unexpected argument: $2"
	STOPPED=0
	stop_nodes KILL "$1"
	[ "$STOPPED" -gt 0 ] || echo "node $1: not running"
}

help_start() {
	cat <<EOF
Usage: $PROG start N

Starts node N (1..3) if it is not running, with the binary built by 'up'.
Waits until it is ready when a majority of the nodes runs (else it cannot
be: it only prints that).
EOF
}

cmd_start() {
	case "${1:-}" in -h | --help) help_start; return 0 ;; esac
	node_arg start "${1:-}"
	[ $# -le 1 ] || usage_error "start: unexpected argument: $2"
	need_binary
	mkdir -p "$DATA_DIR"
	echo "$BASE_PORT" >"$PORT_FILE"
	start_node "$1"
	if [ "$(running_count)" -ge 2 ]; then
		wait_ready "$1"
		echo "node $1: ready"
	else
		echo "node $1: running; it becomes ready once a majority (2 of 3 nodes) runs"
	fi
}

help_restart() {
	cat <<EOF
Usage: $PROG restart N

Stops node N (1..3) with SIGTERM (SIGKILL after RAFTMQ_TIMEOUT) if it runs,
then starts it as '$PROG start N' does.
EOF
}

cmd_restart() {
	case "${1:-}" in -h | --help) help_restart; return 0 ;; esac
	node_arg restart "${1:-}"
	[ $# -le 1 ] || usage_error "restart: unexpected argument: $2"
	need_binary
	STOPPED=0
	stop_nodes TERM "$1"
	cmd_start "$1"
}

help_logs() {
	cat <<EOF
Usage: $PROG logs N [-f] [-n LINES]

Prints the last LINES (default 50) lines of node N's log, <data dir>/nodeN.log;
with -f, keeps following it (Ctrl-C to stop; the node keeps running).
EOF
}

cmd_logs() {
	local n="" follow=0 lines=50
	while [ $# -gt 0 ]; do
		case "$1" in
		-h | --help) help_logs; return 0 ;;
		-f | --follow) follow=1 ;;
		-n | --lines)
			[ $# -ge 2 ] || usage_error "logs: $1 needs a number"
			lines=$2
			shift
			;;
		-*) usage_error "logs: unknown option: $1" ;;
		*)
			[ -z "$n" ] || usage_error "logs: unexpected argument: $1"
			n=$1
			;;
		esac
		shift
	done
	node_arg logs "$n"
	case "$lines" in '' | *[!0-9]*) usage_error "logs: -n needs a number, not '$lines'" ;; esac
	local f
	f=$(log_file "$n")
	[ -f "$f" ] || die "node $n has no log at $f (never started in this data dir?)"
	if [ $follow -eq 1 ]; then
		exec tail -n "$lines" -F "$f"
	fi
	tail -n "$lines" "$f"
}

usage() {
	sed -n '2,26s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
	[ $# -gt 0 ] || { usage >&2; exit 2; }
	local cmd=$1
	shift
	case "$cmd" in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	kill) cmd_kill "$@" ;;
	start) cmd_start "$@" ;;
	restart) cmd_restart "$@" ;;
	logs) cmd_logs "$@" ;;
	help)
		case "${1:-}" in
		'') usage ;;
		up | down | status | kill | start | restart | logs) "help_$1" ;;
		*) usage_error "help: unknown command: $1" ;;
		esac
		;;
	-h | --help) usage ;;
	*) usage_error "unknown command: $cmd" ;;
	esac
}

main "$@"
