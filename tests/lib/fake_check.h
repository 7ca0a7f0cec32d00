/* FAKE_CHECK(): a test harness's own invariant check (tests/lib and the
 * fuzzers). A violated invariant prints what and where, then aborts: a
 * crash for libFuzzer (which keeps the input) and for Criterion alike. */
#ifndef RAFTMQ_TESTS_FAKE_CHECK_H
#define RAFTMQ_TESTS_FAKE_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FAKE_CHECK(cond, ...)                                              \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr,                                    \
				"%s:%d: invariant failed: %s: ", __FILE__, \
				__LINE__, #cond);                          \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, "\n");                             \
			abort();                                           \
		}                                                          \
	} while (0)

#endif /* RAFTMQ_TESTS_FAKE_CHECK_H */
