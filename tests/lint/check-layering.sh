#!/usr/bin/env bash
# Enforces the include layering of docs/STYLE (node/ -> consensus/ -> queue/):
#
#   1. raft.h / raft/*.h are included only in consensus/ (and tests/, and
#      bench/raft_ref.c: the raw libraft reference, no broker code).
#   2. queue/ includes only the libc headers listed in QUEUE_LIBC below and its
#      own q*.h headers: no libuv, raft, protobuf-c, sockets, time.h,
#      pthread.h, xxhash...
#   3. queue/ never calls a clock or a random source (time(), clock_gettime(),
#      gettimeofday(), rand(), random(), getrandom(), ...): time is data.
#   4. client/ never includes queue/ or consensus/ headers.
#   5. store/ (the body store) includes no libuv, protobuf-c, queue/,
#      consensus/ or node/ header: libc, POSIX and xxhash only.
#
# A system-wide raft.h means the build graph alone cannot enforce this.
# Comments and string literals are ignored. Prints file:line for each
# violation and exits 1 if there is any.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

# Standard C / POSIX headers queue/ may include. Nothing with a clock,
# threads, I/O multiplexing or randomness.
QUEUE_LIBC="stdint.h stddef.h stdbool.h stdlib.h string.h stdio.h assert.h
limits.h inttypes.h errno.h stdarg.h"
# Calls queue/ must never make.
QUEUE_FORBIDDEN_CALLS="time clock_gettime gettimeofday clock rand srand rand_r
random srandom random_r drand48 lrand48 mrand48 getrandom getentropy arc4random"

# Every C source and header of the project, build dirs and VCS excluded.
mapfile -t FILES < <(find . \
	\( -path './build' -o -path './build-*' -o -path './builddir' \
	-o -path './.git' -o -path './subprojects' -o -path './data' \) -prune \
	-o -type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||' | sort)

if [ ${#FILES[@]} -eq 0 ]; then
	echo "check-layering: no C files found under $ROOT" >&2
	exit 1
fi

QUEUE_LIBC="$QUEUE_LIBC" QUEUE_FORBIDDEN_CALLS="$QUEUE_FORBIDDEN_CALLS" \
	perl -e '
use strict;
use warnings;
$| = 1;

my %libc = map { $_ => 1 } split /\s+/, $ENV{QUEUE_LIBC};
my $calls = join "|", map { quotemeta } grep { length } split /\s+/, $ENV{QUEUE_FORBIDDEN_CALLS};
my $bad = 0;

sub fail {
	my ($file, $line, $msg) = @_;
	print "$file:$line: $msg\n";
	$bad++;
}

# Blanks comments and the contents of string and char literals, keeping
# every newline so line numbers stay right. The header name of an #include
# in quotes is kept (it is not a string literal).
sub strip {
	my ($src) = @_;
	$src =~ s{
		(^[ \t]*\#[ \t]*include[ \t]*"[^"\n]*")   # quoted include: keep
		| (/\*.*?\*/)                             # block comment
		| (//[^\n]*)                              # line comment
		| ("(?:\\.|[^"\\\n])*")                   # string literal
		| (\x27(?:\\.|[^\x27\\\n])*\x27)          # char literal
	}{
		defined $1 ? $1
		: defined $2 ? do { (my $c = $2) =~ s/[^\n]//g; " $c" }
		: defined $3 ? ""
		: defined $4 ? "\"\""
		: "\x27 \x27"
	}gmsex;
	return $src;
}

for my $file (@ARGV) {
	open my $fh, "<", $file or die "check-layering: $file: $!\n";
	my $src = do { local $/; <$fh> };
	close $fh;
	my @lines = split /\n/, strip($src), -1;

	my $in_consensus = $file =~ m{^consensus/};
	my $in_tests = $file =~ m{^tests/};
	my $in_queue = $file =~ m{^queue/};
	my $in_client = $file =~ m{^client/};
	my $in_store = $file =~ m{^store/};
	my $raw_raft_bench = $file eq "bench/raft_ref.c";

	for my $i (0 .. $#lines) {
		my $l = $lines[$i];
		my $n = $i + 1;
		if ($l =~ /^\s*#\s*include\s*([<"])([^>"]+)[>"]/) {
			my ($delim, $h) = ($1, $2);
			my $shown = $delim eq "<" ? "<$h>" : "\"$h\"";
			if (($h eq "raft.h" || $h =~ m{^raft/}) && !$in_consensus && !$in_tests && !$raw_raft_bench) {
				fail($file, $n, "includes $shown: only consensus/ may include raft headers");
			}
			if ($in_queue && !$libc{$h} && $h !~ m{^q(_[A-Za-z0-9_]+)?\.h$}) {
				fail($file, $n, "includes $shown: queue/ may include only its own q*.h and these libc headers: "
				    . join(" ", sort keys %libc));
			}
			if ($in_store && ($h eq "uv.h" || $h =~ m{^(uv|protobuf-c)/}
			    || $h =~ m{(^|/)(queue|consensus|node|proto)/}
			    || $h =~ m{^(q|cons|node)(_[A-Za-z0-9_]+)?\.h$} || $h =~ m{\.pb-c\.h$})) {
				fail($file, $n, "includes $shown: store/ may use libc, POSIX and xxhash only");
			}
			if ($in_client && ($h =~ m{(^|/)(queue|consensus)/}
			    || $h =~ m{^(q|cons)(_[A-Za-z0-9_]+)?\.h$})) {
				fail($file, $n, "includes $shown: client/ may depend on proto/ only, never on queue/ or consensus/");
			}
		}
		next unless $in_queue && $file =~ /\.c$/;
		while ($l =~ /(?<![\w.>])($calls)\s*\(/g) {
			fail($file, $n, "calls $1(): queue/ must not read a clock or a random source (time comes in cmd->now_ms)");
		}
	}
}

if ($bad) {
	print STDERR "check-layering: $bad violation(s); see the layering rules in tests/lint/check-layering.sh\n";
	exit 1;
}
printf "check-layering: ok (%d files)\n", scalar @ARGV;
' "${FILES[@]}"
