/* store/: references, marks and gc: what gc may remove (dropped or never
 * claimed before the mark), deletion of dead segments, compaction of
 * mostly dead ones (with claims and drops while it runs), the budget, and
 * a crash at every I/O call of a compaction. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(gc, .init = ts_setup, .fini = ts_teardown);

/* gc(token) until done; returns the number of calls. */
static unsigned gc_all(uint64_t token, uint64_t budget)
{
	unsigned calls = 0;
	int rv;
	do {
		rv = store_gc(T.s, token, budget);
		cr_assert(rv >= 0, "gc: %s (%s)", store_strerror(-rv),
			  store_errmsg(T.s));
		calls++;
		cr_assert(calls < 1000000);
	} while (rv == 1);
	return calls;
}

/* Keys 1..n, 100 bytes each, in 4 KiB segments (29 or 30 records each).
 * gc never touches the active segment: the last 30 keys may stay. */
static void put_range(uint64_t n)
{
	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= n; k++) {
		ts_put(k, 100);
	}
}

Test(gc, dead_segments_are_deleted)
{
	struct store_stats a, b;
	uint64_t token;

	put_range(300);
	for (uint64_t k = 1; k <= 150; k++) {
		store_drop(T.s, k);
	}
	token = store_mark(T.s);
	store_stats(T.s, &a);
	gc_all(token, UINT64_MAX);
	store_stats(T.s, &b);
	cr_assert_eq(b.deleted_segments - a.deleted_segments, 5,
		     "the segments of keys 1..145");
	cr_assert_eq(b.compactions, 1, "and the one holding 146..174");
	for (uint64_t k = 1; k <= 150; k++) {
		cr_assert_not(store_has(T.s, k), "%" PRIu64, k);
	}
	for (uint64_t k = 151; k <= 300; k++) {
		ts_expect(k, 100);
	}
	cr_assert(b.disk_bytes < a.disk_bytes * 6 / 10);
	cr_assert_eq(gc_all(token, UINT64_MAX), 1, "nothing left to do");
	ts_reopen();
	for (uint64_t k = 151; k <= 300; k++) {
		ts_expect(k, 100);
	}
	cr_assert_not(store_has(T.s, 1));
	cr_assert_eq(T.nreports, 0);
}

/* A dead segment leaves the index at once; its file is truncated a budget
 * at a time (one unlink of 64 MiB took 28 ms), then removed. */
Test(gc, a_deleted_file_shrinks_a_budget_at_a_time)
{
	uint64_t ids[4], token, size, prev;
	char path[512];
	int rv, calls = 0;

	T.segment_bytes = 1024 * 1024;
	ts_open();
	for (uint64_t k = 1; k <= 300; k++) {
		ts_put(k, 4000);
	}
	ts_put(1000, 1); /* seals the first segment */
	for (uint64_t k = 1; k <= 300; k++) {
		store_drop(T.s, k);
	}
	token = store_mark(T.s);
	rv = store_gc(T.s, token, 64 * 1024);
	cr_assert_eq(rv, 1);
	cr_assert_not(store_has(T.s, 1), "out of the index at once");
	cr_assert_eq(ts_ids(".seg.del", ids, 4), 1);
	ts_path(ids[0], ".seg.del", path, sizeof path);
	prev = ts_file_size(path);
	while ((rv = store_gc(T.s, token, 64 * 1024)) == 1) {
		size = ts_file_size(path);
		cr_assert_lt(size, prev);
		cr_assert_geq(size + 128 * 1024, prev, "128 KiB per call");
		prev = size;
		calls++;
	}
	cr_assert_eq(rv, 0);
	cr_assert_geq(calls, 5);
	cr_assert_eq(ts_ids(".seg.del", ids, 4), 0);
	ts_expect(1000, 1);
}

/* A record dropped after the mark is still needed by the snapshot that
 * mark stands for: gc(token) keeps it; a later mark lets it go. */
Test(gc, drops_after_the_mark_survive_its_gc)
{
	uint64_t t1, t2;

	put_range(300);
	for (uint64_t k = 1; k <= 100; k++) {
		store_drop(T.s, k);
	}
	t1 = store_mark(T.s);
	for (uint64_t k = 101; k <= 200; k++) {
		store_drop(T.s, k);
	}
	gc_all(t1, UINT64_MAX);
	for (uint64_t k = 101; k <= 300; k++) {
		ts_expect(k, 100);
	}
	cr_assert_not(store_has(T.s, 1));
	t2 = store_mark(T.s);
	gc_all(t2, UINT64_MAX);
	for (uint64_t k = 1; k <= 200; k++) {
		cr_assert_not(store_has(T.s, k), "%" PRIu64, k);
	}
	for (uint64_t k = 201; k <= 300; k++) {
		ts_expect(k, 100);
	}
}

/* After a restart only what the state claims is live. */
Test(gc, unclaimed_records_are_dead_after_open)
{
	put_range(300);
	ts_reopen();
	for (uint64_t k = 151; k <= 300; k++) {
		cr_assert_eq(store_claim(T.s, k), 0);
	}
	ts_put(120, 100); /* a replay claims too */
	gc_all(store_mark(T.s), UINT64_MAX);
	for (uint64_t k = 1; k <= 150; k++) {
		cr_assert_eq(store_has(T.s, k), k == 120, "%" PRIu64, k);
	}
	for (uint64_t k = 151; k <= 300; k++) {
		ts_expect(k, 100);
	}
	ts_expect(120, 100);
}

/* Segments two thirds dead are compacted: the live records are copied,
 * the rest is gone, and the disk shrinks. */
Test(gc, compaction_keeps_exactly_the_live_records)
{
	struct store_stats a, b;
	uint64_t ids[256];
	unsigned calls;

	put_range(900);
	for (uint64_t k = 1; k <= 900; k++) {
		if (k % 3 != 0) {
			store_drop(T.s, k);
		}
	}
	cr_assert_eq(store_sync(T.s), 0);
	store_stats(T.s, &a);
	calls = gc_all(store_mark(T.s), 16 * 1024);
	store_stats(T.s, &b);
	cr_assert(calls > 5, "%u calls: the budget splits the work", calls);
	cr_assert(b.compactions >= 2);
	cr_assert(b.compacted_bytes >= 280 * 136);
	cr_assert(b.disk_bytes < a.disk_bytes / 2);
	cr_assert_eq(b.live_records, 300);
	cr_assert_eq(ts_ids(".seg.tmp", ids, 256), 0);
	for (uint64_t k = 1; k <= 900; k++) {
		if (k % 3 == 0) {
			ts_expect(k, 100);
		} else if (k <= 870) {
			cr_assert_not(store_has(T.s, k), "%" PRIu64, k);
		}
	}
	ts_reopen();
	cr_assert_eq(T.nreports, 0);
	for (uint64_t k = 3; k <= 900; k += 3) {
		ts_expect(k, 100);
	}
	cr_assert_not(store_has(T.s, 1));
}

/* The budget bounds one call: at most the budget's worth of copying (read
 * and write count) plus one record, one deleted segment per MiB. */
Test(gc, the_budget_bounds_each_call)
{
	struct store_stats a, b;
	uint64_t token;
	const uint64_t budget = 4096;
	int rv;

	put_range(900);
	for (uint64_t k = 1; k <= 900; k++) {
		if (k % 3 != 0 || k < 300) {
			store_drop(T.s, k);
		}
	}
	token = store_mark(T.s);
	do {
		store_stats(T.s, &a);
		rv = store_gc(T.s, token, budget);
		cr_assert(rv >= 0);
		store_stats(T.s, &b);
		cr_assert(b.compacted_bytes - a.compacted_bytes <=
				  budget / 2 + 136,
			  "%" PRIu64 " bytes copied in one call",
			  b.compacted_bytes - a.compacted_bytes);
		cr_assert(b.deleted_segments - a.deleted_segments <= 1 ||
				  b.compactions > a.compactions,
			  "one deletion per call at this budget");
	} while (rv == 1);
	for (uint64_t k = 300; k <= 900; k += 3) {
		ts_expect(k, 100);
	}
}

/* While a compaction runs (one record per call here), the state keeps
 * claiming and dropping records of its sources: records dropped after the
 * mark, and dead records claimed again, ahead of the copy and behind it,
 * all survive. */
Test(gc, claims_and_drops_during_a_compaction)
{
	uint64_t rnd = ts_seed(2024), token, t2;
	static uint8_t live[901], keep[901];
	int rv;

	put_range(900);
	for (uint64_t k = 1; k <= 900; k++) {
		live[k] = k % 4 == 0;
		if (!live[k]) {
			store_drop(T.s, k);
		}
	}
	token = store_mark(T.s);
	do {
		uint64_t k = 1 + ts_rand(&rnd) % 900;
		rv = store_gc(T.s, token, 1);
		cr_assert(rv >= 0);
		if (live[k]) {
			store_drop(T.s, k); /* after the mark: must stay */
			live[k] = 0;
			keep[k] = 1;
		} else if (!keep[k] && ts_rand(&rnd) % 3 == 0) {
			/* Claimed again: if gc already removed it, it is
			 * missing, which the test accepts. */
			if (store_has(T.s, k)) {
				cr_assert_eq(store_claim(T.s, k), 0);
				live[k] = 1;
			}
		}
	} while (rv == 1);
	for (uint64_t k = 1; k <= 900; k++) {
		if (live[k] || keep[k]) {
			ts_expect(k, 100);
		}
	}
	ts_reopen();
	for (uint64_t k = 1; k <= 900; k++) {
		if (live[k]) {
			ts_expect(k, 100);
			cr_assert_eq(store_claim(T.s, k), 0);
		}
	}
	/* Once everything is dropped, a later mark lets it all go. */
	for (uint64_t k = 1; k <= 900; k++) {
		store_drop(T.s, k);
	}
	t2 = store_mark(T.s);
	gc_all(t2, UINT64_MAX);
	{
		struct store_stats st;
		store_stats(T.s, &st);
		cr_assert_leq(st.records, 30, "only the active segment's");
		cr_assert_eq(st.segments, 1);
	}
}

/* gc with a lower token than the compaction under way gives it up: that
 * compaction may remove records the lower token must keep. */
Test(gc, a_lower_token_abandons_the_compaction)
{
	uint64_t t1, t2, ids[64];

	put_range(300);
	for (uint64_t k = 1; k <= 300; k += 2) {
		store_drop(T.s, k);
	}
	t1 = store_mark(T.s);
	for (uint64_t k = 2; k <= 60; k += 4) {
		store_drop(T.s, k); /* in the first segments, after t1 */
	}
	t2 = store_mark(T.s);
	cr_assert_eq(store_gc(T.s, t2, 1), 1);
	cr_assert_eq(ts_ids(".seg.tmp", ids, 64), 1, "under way");
	gc_all(t1, UINT64_MAX);
	for (uint64_t k = 2; k <= 300; k += 2) {
		ts_expect(k, 100);
	}
	cr_assert_eq(ts_ids(".seg.tmp", ids, 64), 0);
	cr_assert_not(store_has(T.s, 201), "t1's own work is done");
}

/* The fill stream's segments are collected too. */
Test(gc, fill_segments_are_collected)
{
	put_range(10);
	ts_put(100000, 10);
	for (uint64_t k = 1000; k < 1300; k++) {
		ts_put(k, 100); /* below 100000: fill stream */
	}
	for (uint64_t k = 1000; k < 1300; k++) {
		if (k % 5 != 0) {
			store_drop(T.s, k);
		}
	}
	gc_all(store_mark(T.s), UINT64_MAX);
	for (uint64_t k = 1000; k < 1300; k++) {
		/* 30 records a segment: 1270.. are in the active one. */
		cr_assert_eq(store_has(T.s, k), k % 5 == 0 || k >= 1270,
			     "%" PRIu64, k);
	}
	ts_reopen();
	for (uint64_t k = 1000; k < 1300; k += 5) {
		ts_expect(k, 100);
	}
}

/* A record that fails its checksum at a read is forgotten; if the state
 * claims it, it is missing until a peer's copy is put. */
Test(gc, a_corrupt_record_becomes_missing)
{
	uint64_t ids[4];
	char path[512];
	struct store_rec r;

	ts_open();
	ts_put(1, 100);
	ts_put(2, 100);
	cr_assert_eq(ts_ids(".seg", ids, 4), 1);
	ts_path(ids[0], ".seg", path, sizeof path);
	ts_flip(path, 48 + 134 + 50);
	cr_assert_eq(store_get(T.s, 2, &r), STORE_ECORRUPT);
	cr_assert_eq(store_missing(T.s), 1);
	ts_put(2, 100);
	cr_assert_eq(store_missing(T.s), 0);
	ts_expect(2, 100);
}

/* A source's copy of a record goes bad after the compaction copied it
 * (found by a read between the copy's end and the compaction's end): the
 * key is missing for a moment, then the output's good copy serves it. */
Test(gc, a_source_record_goes_bad_after_its_copy)
{
	struct store_stats a, b;
	struct store_rec r;
	uint64_t token, ids[64];
	char path[512];
	bool window = false;
	int rv;

	put_range(300);
	for (uint64_t k = 1; k <= 300; k++) {
		if (k % 3 != 0) {
			store_drop(T.s, k);
		}
	}
	cr_assert(ts_ids(".seg", ids, 64) > 3);
	ts_path(ids[0], ".seg", path, sizeof path);
	token = store_mark(T.s);
	do {
		store_stats(T.s, &a);
		rv = store_gc(T.s, token, 1);
		cr_assert(rv >= 0);
		store_stats(T.s, &b);
		if (rv == 1 && !window && b.compactions == 0 &&
		    b.compacted_bytes > 0 &&
		    b.compacted_bytes == a.compacted_bytes) {
			/* Copied, not yet swapped in: key 3 (the first
			 * segment, 48 + 2 * 134) goes bad in its source. */
			window = true;
			ts_flip(path, 48 + 2 * 134 + 40);
			cr_assert_eq(store_get(T.s, 3, &r), STORE_ECORRUPT);
			cr_assert_eq(store_missing(T.s), 1);
		}
	} while (rv == 1);
	cr_assert(window, "the copy ended one call before the swap");
	cr_assert_eq(store_missing(T.s), 0);
	ts_expect(3, 100);
	for (uint64_t k = 3; k <= 300; k += 3) {
		ts_expect(k, 100);
	}
}

/* Kill -9 at every write and sync of a compaction, at every point from
 * its first byte to the unlink of its sources: the store opens, every
 * claimed record reads back exactly, nothing is reported corrupt. */
Test(gc, crash_at_every_io_of_a_compaction)
{
	unsigned n;
	bool finished = false;

	put_range(600);
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	ts_save("before");
	for (n = 0; !finished; n++) {
		pid_t pid;
		int status;

		ts_restore("before");
		pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0) {
			uint64_t token;
			ts_open();
			for (uint64_t k = 3; k <= 600; k += 3) {
				if (store_claim(T.s, k) != 0) {
					_exit(2);
				}
			}
			token = store_mark(T.s);
			T.fault = (struct ts_fault){
				.armed = true, .skip = n, .err = 0};
			while (store_gc(T.s, token, 8192) == 1) {
			}
			_exit(T.fault.calls > n ? 3 : 0);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			cr_assert_eq(WEXITSTATUS(status), 0,
				     "child failed at I/O %u", n);
			finished = true;
		} else {
			cr_assert(WIFSIGNALED(status) &&
				  WTERMSIG(status) == SIGKILL);
		}
		ts_clear_reports();
		ts_open();
		cr_assert_not(ts_reported("bad record"), "killed at I/O %u", n);
		cr_assert_not(ts_reported("checksum"));
		for (uint64_t k = 3; k <= 600; k += 3) {
			ts_expect(k, 100);
		}
		/* Records left in two files are claimed once, and the next
		 * gc keeps one copy of each. */
		for (uint64_t k = 3; k <= 600; k += 3) {
			cr_assert_eq(store_claim(T.s, k), 0);
		}
		gc_all(store_mark(T.s), UINT64_MAX);
		{
			struct store_stats st;
			store_stats(T.s, &st);
			cr_assert_eq(st.live_records, 200, "I/O %u", n);
		}
		ts_reopen();
		for (uint64_t k = 3; k <= 600; k += 3) {
			ts_expect(k, 100);
		}
		ts_close();
	}
	cr_assert(n > 10, "%u I/O calls", n);
	fprintf(stderr, "a compaction crashed at each of %u I/O calls\n", n);
}
