/* store/: out of memory at every allocation of open (recovery included),
 * put (sealing included), gc (compaction included) and the missing set.
 * (fault_fail_nth() of tests/lib/fault.h: the test's own allocations fail
 * too while armed, so it arms only around store calls.)
 * Each call either succeeds or returns STORE_ENOMEM and changes nothing;
 * afterwards the store works and holds what it held (in the sanitizer
 * build, LeakSanitizer fails a test whose error path leaks). */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "fault.h"

TestSuite(oom, .init = ts_setup, .fini = ts_teardown);

static unsigned char body[4000];

static int put(uint64_t key, size_t len)
{
	char id[32];
	size_t il = ts_id(key, id, sizeof id);
	ts_body(key, len, body);
	return store_put(T.s, key, id, il, body, len, NULL);
}

/* Sealed segments, one without its index file (a scan), a fill segment
 * and the active one. */
static void prepare(void)
{
	uint64_t ids[64];
	char path[512];

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 100; k < 300; k++) {
		ts_put(k, 100);
	}
	for (uint64_t k = 1; k < 100; k += 3) {
		ts_put(k, 50);
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	cr_assert(ts_ids(".idx", ids, 64) > 2);
	ts_path(ids[1], ".idx", path, sizeof path);
	cr_assert_eq(unlink(path), 0);
	ts_save("prepared");
}

static void expect_all(void)
{
	for (uint64_t k = 100; k < 300; k++) {
		ts_expect(k, 100);
	}
	for (uint64_t k = 1; k < 100; k += 3) {
		ts_expect(k, 50);
	}
}

Test(oom, open)
{
	unsigned n;
	bool fired = true;

	prepare();
	for (n = 0; fired; n++) {
		int rv;
		ts_restore("prepared");
		fault_fail_nth(n);
		rv = ts_try_open(NULL);
		fired = fault_reset() > 0;
		cr_assert(rv == 0 || (rv == STORE_ENOMEM && fired),
			  "allocation %u: %s", n, store_strerror(rv));
		if (rv != 0) {
			cr_assert_null(T.s);
			ts_open();
		}
		expect_all();
		ts_close();
	}
	cr_assert(n > 10, "%u allocations", n);
}

Test(oom, put)
{
	unsigned sweeps = 0;

	T.segment_bytes = 4096;
	ts_open();
	/* In order, below (the fill stream), and again (a compare). */
	for (uint64_t i = 0; i < 120; i++) {
		uint64_t k = i < 80 ? 1000 + i : i < 110 ? i : 1000 + i - 110;
		size_t len = k < 1000 ? 60 : 100;
		bool fired = true, stored = i >= 110;
		/* Until a put makes no allocation fail: a failure the put
		 * absorbs (an index file left to the next sync) stores the
		 * record, and the next rounds are replays of it. */
		for (unsigned n = 0; fired; n++) {
			int rv;
			fault_fail_nth(n);
			rv = put(k, len);
			fired = fault_reset() > 0;
			cr_assert(rv == 0 || (rv == STORE_ENOMEM && fired),
				  "key %" PRIu64 " allocation %u: %s", k, n,
				  store_strerror(rv));
			if (rv != 0) {
				cr_assert_eq(store_has(T.s, k), stored);
				sweeps++;
			}
			stored = stored || rv == 0;
		}
	}
	cr_assert(sweeps >= 4, "%u failed puts", sweeps);
	for (uint64_t k = 1000; k < 1080; k++) {
		ts_expect(k, 100);
	}
	for (uint64_t k = 80; k < 110; k++) {
		ts_expect(k, 60);
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_clear_reports();
	ts_reopen();
	cr_assert_eq(T.nreports, 0);
	for (uint64_t k = 1000; k < 1080; k++) {
		ts_expect(k, 100);
	}
}

Test(oom, gc)
{
	bool fired = true;
	unsigned n;

	prepare();
	for (n = 0; fired; n++) {
		uint64_t token;
		int rv;

		ts_restore("prepared");
		ts_open();
		for (uint64_t k = 100; k < 300; k += 4) {
			cr_assert_eq(store_claim(T.s, k), 0);
		}
		token = store_mark(T.s);
		fault_fail_nth(n);
		do {
			rv = store_gc(T.s, token, 2048);
		} while (rv == 1);
		fired = fault_reset() > 0;
		cr_assert(rv == 0 || (rv == -STORE_ENOMEM && fired),
			  "allocation %u: %d", n, rv);
		do {
			rv = store_gc(T.s, token, 1 << 20);
		} while (rv == 1);
		cr_assert_eq(rv, 0);
		for (uint64_t k = 100; k < 300; k++) {
			if (k % 4 == 0) {
				ts_expect(k, 100);
			}
		}
		cr_assert_not(store_has(T.s, 101));
		ts_close();
	}
	cr_assert(n > 5, "%u allocations", n);
}

Test(oom, missing)
{
	uint64_t k, ok = 0;
	bool fired = true;

	ts_open();
	ts_put(1000000, 1);
	for (unsigned n = 0; fired; n++) {
		fault_fail_nth(n);
		for (k = 1; k <= 500; k++) {
			int rv = store_claim(T.s, k * 7);
			if (rv != 0) {
				cr_assert_eq(rv, STORE_ENOMEM);
				break;
			}
		}
		fired = fault_reset() > 0;
		ok = k - 1;
		cr_assert_geq(store_missing(T.s), ok);
		fault_fail_nth(0);
		k = 0;
		{
			int rv = store_missing_next(T.s, 0, &k);
			(void)fault_reset();
			if (store_missing(T.s) == 0) {
				cr_assert_eq(rv, STORE_ENOTFOUND);
			} else {
				cr_assert(rv == STORE_ENOMEM ||
					  (rv == 0 && k == 7));
			}
		}
		for (k = 1; k <= 500; k++) {
			store_drop(T.s, k * 7);
		}
		cr_assert_eq(store_missing(T.s), 0);
	}
}
