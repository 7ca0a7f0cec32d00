/* Shared by the libFuzzer targets of tests/fuzz (see README.md there).
 *
 *   - struct fz_in: reads the fuzzer's bytes as small integers; past the end
 *     every read gives 0, so any input is a valid program.
 *   - FZ_CHECK(): the harness's own invariant check (FAKE_CHECK of
 *     tests/lib/fake_check.h). A violated invariant prints what and where,
 *     then aborts: libFuzzer records the input as a crash, like an ASan
 *     report.
 *   - fz_dump(): q_state_dump() into a malloc()ed buffer, aborting on
 *     failure (the harness never injects faults into dumps). */
#ifndef RAFTMQ_TESTS_FUZZ_UTIL_H
#define RAFTMQ_TESTS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_check.h" /* tests/lib */
#include "q.h"

/* The prototype libFuzzer calls (-Wmissing-prototypes wants one). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(...) FAKE_CHECK(__VA_ARGS__)

struct fz_in {
	const uint8_t *p;
	size_t len, off;
};

static inline uint8_t fz_u8(struct fz_in *in)
{
	return in->off < in->len ? in->p[in->off++] : 0;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t hi = fz_u8(in);
	return (uint16_t)(hi << 8 | fz_u8(in));
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t hi = fz_u16(in);
	return hi << 16 | fz_u16(in);
}

static inline int fz_done(const struct fz_in *in)
{
	return in->off >= in->len;
}

struct fz_buf {
	unsigned char *p;
	size_t len, cap;
};

static inline int fz_buf_write(void *data, const void *buf, size_t len)
{
	struct fz_buf *b = data;
	if (len == 0) {
		return 0;
	}
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len) {
			cap *= 2;
		}
		b->p = realloc(b->p, cap);
		FZ_CHECK(b->p != NULL, "out of memory in the harness");
		b->cap = cap;
	}
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

/* The state's dump, into a fresh buffer (free(b->p) after use). */
static inline void fz_dump(const struct q_state *s, struct fz_buf *b)
{
	int rv;
	memset(b, 0, sizeof *b);
	rv = q_state_dump(s, fz_buf_write, b);
	FZ_CHECK(rv == 0, "q_state_dump() = %d", rv);
}

static inline void fz_state_check(const struct q_state *s, const char *when)
{
	char err[512];
	int rv = q_state_check(s, err, sizeof err);
	FZ_CHECK(rv == 0, "q_state_check() %s: %s", when, err);
}

#endif /* RAFTMQ_TESTS_FUZZ_UTIL_H */
