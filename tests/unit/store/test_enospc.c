/* store/: a full disk. Writes and syncs fail through the test hook (so the
 * tests run unprivileged), and, when the test may mount, on a real tmpfs
 * that is too small. After every failure the store is as before the failed
 * call: what was written reads back, a retry once there is room works, and
 * a reopen finds no damage. */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(enospc, .init = ts_setup, .fini = ts_teardown);

static void arm(enum store_io io, unsigned skip, int err, size_t partial)
{
	T.fault = (struct ts_fault){.armed = true,
				    .io = io,
				    .skip = skip,
				    .err = err,
				    .partial = partial,
				    .once = true};
}

static void expect_clean_reopen(uint64_t n, size_t len)
{
	ts_clear_reports();
	ts_reopen();
	cr_assert_eq(T.nreports, 0, "%s", T.nreports ? T.reports[0] : "");
	for (uint64_t k = 1; k <= n; k++) {
		ts_expect(k, len);
	}
}

Test(enospc, a_failed_put_leaves_nothing)
{
	struct store_stats a, b;

	ts_open();
	for (uint64_t k = 1; k <= 20; k++) {
		ts_put(k, 100);
	}
	store_stats(T.s, &a);
	arm(STORE_IO_WRITE, 0, ENOSPC, 0);
	cr_assert_eq(ts_try_put(21, 100), STORE_ENOSPC);
	cr_assert_not_null(strstr(store_errmsg(T.s), strerror(ENOSPC)), "%s",
			   store_errmsg(T.s));
	cr_assert_not(store_has(T.s, 21));
	store_stats(T.s, &b);
	cr_assert_eq(b.disk_bytes, a.disk_bytes);
	ts_put(21, 100); /* room again */
	expect_clean_reopen(21, 100);
}

/* A write that stops part way (the disk filled during it) is cut back, so
 * the file still ends with a whole record: at every length of the
 * record. */
Test(enospc, a_short_write_is_cut_back)
{
	const size_t rl = 32 + 3 + 100; /* "m21" */

	ts_open();
	for (uint64_t k = 1; k <= 20; k++) {
		ts_put(k, 100);
	}
	for (size_t part = 1; part < rl; part++) {
		uint64_t ids[4];
		char path[512];
		uint64_t size;

		cr_assert_eq(ts_ids(".seg", ids, 4), 1);
		ts_path(ids[0], ".seg", path, sizeof path);
		size = ts_file_size(path);
		arm(STORE_IO_WRITE, 0, ENOSPC, part);
		cr_assert_eq(ts_try_put(21, 100), STORE_ENOSPC);
		cr_assert_eq(ts_file_size(path), size, "%zu bytes written",
			     part);
		cr_assert_not(store_has(T.s, 21));
		expect_clean_reopen(20, 100);
	}
	ts_put(21, 100);
	expect_clean_reopen(21, 100);
}

/* The put that seals a full segment writes its seal record, its index
 * file, the new segment's header and the record: fail each of them in
 * turn, completely or part way. */
Test(enospc, every_write_of_a_sealing_put)
{
	for (unsigned skip = 0; skip < 5; skip++) {
		for (int partial = 0; partial < 2; partial++) {
			int rv;
			ts_teardown();
			ts_setup();
			T.segment_bytes = 4096;
			ts_open();
			/* 48 + 9 * 134 + 22 * 135 >= 4096: full. */
			for (uint64_t k = 1; k <= 31; k++) {
				ts_put(k, 100);
			}
			arm(STORE_IO_WRITE, skip, ENOSPC, partial ? 7 : 0);
			rv = ts_try_put(32, 100);
			cr_assert(rv == 0 || rv == STORE_ENOSPC);
			cr_assert_eq(T.fault.fired, skip < 4 ? 1 : 0,
				     "write %u: fired %u rv %d", skip,
				     T.fault.fired, rv);
			/* Only the index file may fail unseen: the next sync
			 * writes it. */
			cr_assert_eq(rv == 0, skip >= 4 || skip == 1);
			T.fault.armed = false;
			if (rv != 0) {
				cr_assert_not(store_has(T.s, 32));
				ts_put(32, 100);
			}
			ts_put(33, 100);
			cr_assert_eq(store_sync(T.s), 0);
			expect_clean_reopen(33, 100);
		}
	}
}

Test(enospc, a_failed_sync_is_retried)
{
	struct store_stats st;
	uint64_t ids[16];

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 100; k++) {
		ts_put(k, 100);
	}
	for (unsigned skip = 0; skip < 4; skip++) {
		arm(STORE_IO_SYNC, skip, EIO, 0);
		cr_assert_eq(store_sync(T.s), STORE_EIO, "sync %u", skip);
		cr_assert_not_null(strstr(store_errmsg(T.s), "sync "), "%s",
				   store_errmsg(T.s));
	}
	store_stats(T.s, &st);
	cr_assert_eq(st.syncs, 0);
	cr_assert_eq(ts_ids(".idx", ids, 16) < 3, true,
		     "no index renamed before its segment is synced");
	cr_assert_eq(store_sync(T.s), 0);
	store_stats(T.s, &st);
	cr_assert_eq(st.syncs, 1);
	cr_assert_eq(ts_ids(".idx", ids, 16), 3);
	expect_clean_reopen(100, 100);
}

/* A compaction that runs out of room is given up: its output is removed,
 * the sources serve as before, and it succeeds once there is room. */
Test(enospc, a_compaction_gives_up_and_retries)
{
	uint64_t ids[64], token;
	unsigned fails = 0;
	int rv;

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 300; k++) {
		ts_put(k, 100);
	}
	for (uint64_t k = 1; k <= 300; k++) {
		if (k % 3 != 0) {
			store_drop(T.s, k);
		}
	}
	cr_assert_eq(store_sync(T.s), 0);
	token = store_mark(T.s);
	for (unsigned skip = 0; skip < 8; skip++) {
		arm(0, skip, ENOSPC, 0);
		do {
			rv = store_gc(T.s, token, 1 << 20);
		} while (rv == 1);
		if (rv == -STORE_ENOSPC) {
			fails++;
			cr_assert_eq(ts_ids(".seg.tmp", ids, 64), 0);
			cr_assert_eq(ts_ids(".idx.tmp", ids, 64), 0);
		} else {
			cr_assert_eq(rv, 0, "%d", rv);
		}
		for (uint64_t k = 3; k <= 300; k += 3) {
			ts_expect(k, 100);
		}
	}
	cr_assert(fails >= 3);
	T.fault.armed = false;
	do {
		rv = store_gc(T.s, token, 1 << 20);
	} while (rv == 1);
	cr_assert_eq(rv, 0);
	cr_assert_not(store_has(T.s, 1));
	cr_assert_eq(store_sync(T.s), 0);
	ts_reopen();
	cr_assert_eq(T.nreports, 0);
	for (uint64_t k = 3; k <= 300; k += 3) {
		ts_expect(k, 100);
	}
}

/* A real full disk: a 256 KiB tmpfs in a mount namespace of the test's
 * own (root, as in CI; skipped where the test may not mount). A filler
 * file takes part of it; once the store fills the rest, removing the
 * filler makes room for the retry. */
Test(enospc, a_real_tmpfs_fills_up)
{
	char mnt[300], filler[400];
	static unsigned char buf[64 * 1024];
	uint64_t n = 0;
	FILE *f;
	int rv;

	snprintf(mnt, sizeof mnt, "%s/mnt", T.dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
		cr_skip_test("cannot mount a tmpfs here: %s", strerror(errno));
	}
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	f = fopen(filler, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, sizeof buf, f), sizeof buf);
	fclose(f);
	snprintf(T.dir + strlen(T.dir), sizeof T.dir - strlen(T.dir),
		 "/mnt/store");
	ts_open();
	while ((rv = ts_try_put(n + 1, 1000)) == 0) {
		n++;
	}
	cr_assert_eq(rv, STORE_ENOSPC, "%s", store_errmsg(T.s));
	cr_assert(n > 50, "%" PRIu64 " records fit", n);
	for (uint64_t k = 1; k <= n; k++) {
		ts_expect(k, 1000);
	}
	cr_assert_eq(ts_try_put(n + 1, 1000), STORE_ENOSPC);
	cr_assert_eq(unlink(filler), 0);
	ts_put(n + 1, 1000);
	cr_assert_eq(store_sync(T.s), 0);
	expect_clean_reopen(n + 1, 1000);
	ts_close();
	ts_rm_rf(T.dir);
	T.dir[strlen(T.dir) - strlen("/mnt/store")] = '\0';
	cr_assert_eq(umount2(mnt, MNT_DETACH), 0);
}

/* store_put_batch: the generated records key..key+n-1 of len bytes (ids and
 * bodies in bufs, which the caller frees). */
static struct store_put_rec *batch_of(uint64_t key, size_t n, size_t len,
				      unsigned char **bufs)
{
	struct store_put_rec *r = calloc(n, sizeof *r);
	unsigned char *b = malloc(n * (len + 32));
	cr_assert(r != NULL && b != NULL);
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = b + i * (len + 32);
		r[i].key = key + i;
		r[i].id_len = ts_id(key + i, (char *)p, 32);
		r[i].id = p;
		ts_body(key + i, len, p + r[i].id_len);
		r[i].body = p + r[i].id_len;
		r[i].len = len;
	}
	*bufs = b;
	return r;
}

Test(enospc, a_batch_is_one_write_per_run_and_reads_back)
{
	unsigned char *b;
	struct store_put_rec *r;
	size_t done = 0;

	T.segment_bytes = 64 * 1024;
	ts_open();
	ts_put(5, 100);
	/* 500 records of 100 B (over 64 KiB: a seal inside), one already
	 * stored (key 5, the same bytes: a replay) and one lower key. */
	r = batch_of(5, 500, 100, &b);
	r[1].key = 3; /* below the highest: the fill stream */
	r[1].id_len = ts_id(3, (char *)(uintptr_t)r[1].id, 32);
	ts_body(3, 100, (unsigned char *)(uintptr_t)r[1].body);
	/* Count the writes, fail none. */
	T.fault = (struct ts_fault){
		.armed = true, .io = STORE_IO_WRITE, .skip = UINT_MAX};
	cr_assert_eq(store_put_batch(T.s, r, 500, &done), 0);
	cr_assert_eq(done, 500);
	/* One write per run: far fewer than one per record. */
	cr_assert_lt(T.fault.calls, 30, "%u writes", T.fault.calls);
	ts_expect(3, 100);
	for (uint64_t k = 5; k < 505; k++) {
		if (k != 6) {
			ts_expect(k, 100);
		}
	}
	free(r);
	free(b);
	expect_clean_reopen(0, 100);
	ts_expect(3, 100);
	ts_expect(504, 100);
}

Test(enospc, a_failed_batch_keeps_the_prefix_and_nothing_else)
{
	unsigned char *b;
	struct store_put_rec *r;
	size_t done = 99;

	ts_open();
	for (uint64_t k = 1; k <= 10; k++) {
		ts_put(k, 100);
	}
	r = batch_of(11, 200, 100, &b);
	/* The run's single write is cut short and fails. */
	arm(STORE_IO_WRITE, 0, ENOSPC, 1000);
	cr_assert_eq(store_put_batch(T.s, r, 200, &done), STORE_ENOSPC);
	cr_assert_eq(done, 0);
	cr_assert_not(store_has(T.s, 11));
	cr_assert_not(store_has(T.s, 210));
	/* Room again: the same batch goes in. */
	cr_assert_eq(store_put_batch(T.s, r, 200, &done), 0);
	cr_assert_eq(done, 200);
	free(r);
	free(b);
	expect_clean_reopen(210, 100);
}
