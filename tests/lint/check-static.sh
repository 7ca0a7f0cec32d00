#!/usr/bin/env bash
# Static analysis of queue/ store/ consensus/ node/ client/ with cppcheck.
#
# Checks: cppcheck's "error" class (always on) plus warning, portability and
# performance: null dereferences, out-of-bounds accesses, leaks, use after
# free, uninitialised reads, wrong printf arguments, undefined shifts... The
# "style" class is off: it is mostly taste (variable scope, redundant
# conditions) and false positives on this code base. Findings that are not
# bugs are listed, each with its reason, in cppcheck-suppressions.txt next
# to this script; inline `// cppcheck-suppress id` comments also work.
#
# The protobuf-c headers of proto/ are generated into a temp dir (protoc-c,
# as the build does) so cppcheck sees the real message types. Takes ~10 s on 2 cores.
# Prints the findings and exits 1 if there is any.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

for tool in cppcheck protoc-c; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check-static: $tool not found; run ./deploy/install-deps.sh" >&2
		exit 1
	fi
done

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
protoc-c --proto_path=proto --c_out="$gen" client.proto log.proto
# <protobuf-c/protobuf-c.h> alone from the system (its version macros gate
# the generated headers), without letting cppcheck parse all of /usr/include.
pbc_inc=$(pkg-config --variable=includedir libprotobuf-c 2>/dev/null || echo /usr/include)
ln -s "$pbc_inc/protobuf-c" "$gen/protobuf-c"

# --error-exitcode makes any finding fail; -q prints findings only.
cppcheck --std=c11 --enable=warning,portability,performance \
	--inline-suppr --suppressions-list=tests/lint/cppcheck-suppressions.txt \
	--error-exitcode=1 -q -j2 \
	-D_GNU_SOURCE -DRAFTMQ_VERSION='"0.0.0"' \
	-I queue -I store -I consensus -I node -I client -I "$gen" \
	queue store consensus node client
echo "check-static: cppcheck $(cppcheck --version | awk '{print $2}'): no findings"
