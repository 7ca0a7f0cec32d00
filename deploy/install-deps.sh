#!/usr/bin/env bash
# Installs what raftmq needs to build, test and run, with apt, on Debian 12.
# Shared by ./tests/run.sh and ./deploy/local-cluster.sh so both agree.
#
# libraft comes from bookworm-backports (0.22.1): bookworm's own 0.15 has a
# Raft safety bug (see docs/libraft.md). The backports line is derived from the
# machine's own bookworm source entry so no mirror host is written in the repo;
# apt keeps backports at priority 100, so nothing else is pulled from it.
set -euo pipefail

PKGS=(
	build-essential pkg-config meson ninja-build
	libuv1-dev libssl-dev openssl protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
	libcriterion-dev libinih-dev libmicrohttpd-dev libxxhash-dev
	python3 python3-protobuf python3-pytest python3-yaml clang-format curl
	# clang builds (build/sanitize, build/fuzz: libFuzzer is in libclang-rt-dev,
	# only a Recommends of clang), llvm-symbolizer, tests/lint/check-static.sh
	clang llvm libclang-rt-dev cppcheck
	chromium chromium-driver
	iproute2 iptables python3-matplotlib
)
BACKPORTS_PKGS=(libraft-dev)

log() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

raft_ok() {
	# The backports package is 0.22.x; refuse bookworm's 0.15 (safety bug).
	local v
	v=$(dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null) || return 1
	dpkg --compare-versions "$v" ge 0.22.1
}

# Writes a sources line for bookworm-backports from the bookworm entry.
add_backports() {
	local list=/etc/apt/sources.list.d/raftmq-backports.list
	if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 0
	fi
	local uri="" key=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		# deb822: take the stanza whose Suites has plain "bookworm".
		read -r uri key < <(awk '
			/^[[:space:]]*$/ { if (s ~ /(^| )bookworm( |$)/ && u != "") { print u, k; exit } u=""; k=""; s=""; next }
			/^URIs:/ { u=$2 } /^Signed-By:/ { k=$2 }
			/^Suites:/ { $1=""; s=$0 " " }
			END { if (s ~ /(^| )bookworm( |$)/ && u != "") print u, k }
		' /etc/apt/sources.list.d/debian.sources | head -n 1) || true
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1=="deb" && $0 ~ / bookworm / { for (i=2;i<=NF;i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		log "cannot find a bookworm apt source to derive bookworm-backports from"
		exit 1
	fi
	[ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
	log "adding bookworm-backports from $uri"
	echo "deb [signed-by=$key] $uri bookworm-backports main" | $SUDO tee "$list" >/dev/null
}

if [ ${#missing[@]} -eq 0 ] && raft_ok; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		log "not root and no sudo: install by hand: ${missing[*]} ${BACKPORTS_PKGS[*]} (bookworm-backports)"
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! raft_ok; then
	add_backports
fi
log "apt-get update"
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! raft_ok; then
	log "installing libraft-dev from bookworm-backports"
	$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BACKPORTS_PKGS[@]}" >/dev/null
fi
raft_ok || { log "libraft-dev >= 0.22.1 is not installed"; exit 1; }
log "done"
