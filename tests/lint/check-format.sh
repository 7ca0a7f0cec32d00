#!/usr/bin/env bash
# Checks that every project .c/.h file is formatted as .clang-format says
# (clang-format --dry-run -Werror). Build dirs and generated code (protobuf-c
# output) are skipped. Lists the files that need formatting and the command
# that fixes them; exits 1 if there is any.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
	echo "check-format: $CLANG_FORMAT not found; run ./deploy/install-deps.sh" >&2
	exit 1
fi
if [ ! -f .clang-format ]; then
	echo "check-format: no .clang-format at $ROOT" >&2
	exit 1
fi

mapfile -t FILES < <(find . \
	\( -path './build' -o -path './build-*' -o -path './builddir' \
	-o -path './.git' -o -path './subprojects' -o -path './data' \) -prune \
	-o -type f \( -name '*.c' -o -name '*.h' \) \
	! -name '*.pb-c.c' ! -name '*.pb-c.h' -print | sed 's|^\./||' | sort)

if [ ${#FILES[@]} -eq 0 ]; then
	echo "check-format: no C files found"
	exit 0
fi

bad=()
for f in "${FILES[@]}"; do
	if ! "$CLANG_FORMAT" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
		bad+=("$f")
	fi
done

if [ ${#bad[@]} -gt 0 ]; then
	echo "check-format: ${#bad[@]} of ${#FILES[@]} files need formatting ($("$CLANG_FORMAT" --version)):"
	printf '  %s\n' "${bad[@]}"
	echo "fix with:"
	echo "  clang-format -i ${bad[*]}"
	exit 1
fi
echo "check-format: ok (${#FILES[@]} files)"
