/* store/: records, checksums, lookups, segments and their index files,
 * references and the missing set (one process, no crash). */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "helpers.h"

TestSuite(store, .init = ts_setup, .fini = ts_teardown);

Test(store, put_get_roundtrip)
{
	static const size_t lens[] = {0, 1, 7, 1000, 70000};
	struct store_stats st;

	ts_open();
	for (uint64_t k = 1; k <= 50; k++) {
		ts_put(k, lens[k % 5]);
	}
	for (uint64_t k = 1; k <= 50; k++) {
		cr_assert(store_has(T.s, k));
		ts_expect(k, lens[k % 5]);
	}
	cr_assert_not(store_has(T.s, 51));
	store_stats(T.s, &st);
	cr_assert_eq(st.puts, 50);
	cr_assert_eq(st.gets, 50);
	cr_assert_eq(st.records, 50);
	cr_assert_eq(st.live_records, 50, "a put claims its key");
	ts_reopen();
	for (uint64_t k = 1; k <= 50; k++) {
		ts_expect(k, lens[k % 5]);
	}
	store_stats(T.s, &st);
	cr_assert_eq(st.live_records, 0, "every record starts unclaimed");
}

/* The sum is replicated: it must be exactly the documented function of the
 * id and the body, computed here from a concatenated buffer. */
Test(store, sum_is_the_documented_function)
{
	static const char *const ids[] = {"", "m1", "a longer message id"};
	static const size_t lens[] = {0, 3, 4096};
	unsigned char buf[4 + 64 + 4096], body[4096];
	uint32_t sum;

	ts_open();
	ts_body(7, sizeof body, body);
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < 3; j++) {
			size_t il = strlen(ids[i]);
			uint64_t h;
			uint32_t want;
			uint64_t key = 1 + i * 3 + j;

			buf[0] = (unsigned char)il;
			buf[1] = (unsigned char)(il >> 8);
			buf[2] = buf[3] = 0;
			memcpy(buf + 4, ids[i], il);
			memcpy(buf + 4 + il, body, lens[j]);
			h = XXH3_64bits(buf, 4 + il + lens[j]);
			want = (uint32_t)(h >> 32) ^ (uint32_t)h;
			cr_assert_eq(store_sum(ids[i], il, body, lens[j]),
				     want);
			cr_assert_eq(store_put(T.s, key, ids[i], il, body,
					       lens[j], &sum),
				     0);
			cr_assert_eq(sum, want);
		}
	}
	/* The id is part of the sum, and its length separates it from the
	 * body ("ab" + "c" differs from "a" + "bc"). */
	cr_assert_neq(store_sum("ab", 2, "c", 1), store_sum("a", 1, "bc", 2));
}

Test(store, same_bytes_again_is_ok_other_bytes_are_refused)
{
	unsigned char body[100];
	struct store_stats a, b;
	uint32_t sum = 0;

	ts_open();
	ts_put(10, 100);
	ts_put(20, 100);
	store_stats(T.s, &a);
	ts_put(10, 100); /* a replay: nothing written */
	store_stats(T.s, &b);
	cr_assert_eq(b.disk_bytes, a.disk_bytes);
	cr_assert_eq(b.puts, a.puts);
	cr_assert_eq(ts_try_put(10, 99), STORE_EEXIST);
	ts_body(10, 100, body);
	body[50] ^= 1;
	cr_assert_eq(store_put(T.s, 10, "m10", 3, body, 100, &sum),
		     STORE_EEXIST);
	ts_body(10, 100, body);
	cr_assert_eq(store_put(T.s, 10, "m11", 3, body, 100, &sum),
		     STORE_EEXIST);
	ts_expect(10, 100);

	/* After a restart the replay of a publish claims what is there. */
	ts_reopen();
	store_stats(T.s, &a);
	cr_assert_eq(a.live_records, 0);
	ts_put(10, 100);
	store_stats(T.s, &b);
	cr_assert_eq(b.live_records, 1);
	cr_assert_eq(b.disk_bytes, a.disk_bytes);
	cr_assert_eq(ts_try_put(20, 5), STORE_EEXIST);
}

Test(store, bad_arguments)
{
	static unsigned char big[STORE_MAX_ID + 1];
	struct store_rec r;

	ts_open();
	cr_assert_eq(store_put(T.s, UINT64_MAX, "x", 1, "y", 1, NULL),
		     STORE_EINVAL);
	cr_assert_eq(store_put(T.s, 1, NULL, 3, "y", 1, NULL), STORE_EINVAL);
	cr_assert_eq(store_put(T.s, 1, "x", 1, NULL, 3, NULL), STORE_EINVAL);
	cr_assert_eq(store_put(T.s, 1, big, sizeof big, "y", 1, NULL),
		     STORE_ETOOBIG);
	cr_assert_eq(store_get(T.s, 1, &r), STORE_ENOTFOUND);
	cr_assert_eq(store_put(T.s, 1, NULL, 0, NULL, 0, NULL), 0);
	cr_assert_eq(store_get(T.s, 1, &r), 0);
	cr_assert_eq(r.len, 0);
	cr_assert_eq(r.id_len, 0);
	cr_assert_eq(store_claim(T.s, UINT64_MAX), STORE_EINVAL);
}

Test(store, bad_config)
{
	struct store_config c = {.dir = T.dir, .segment_bytes = 100};
	struct store *s = NULL;
	char err[256];

	cr_assert_eq(store_open(&c, &s, err, sizeof err), STORE_EINVAL);
	cr_assert_null(s);
	cr_assert_not_null(strstr(err, "segment_bytes"));
	c.dir = "";
	cr_assert_eq(store_open(&c, &s, err, sizeof err), STORE_EINVAL);
	cr_assert_eq(store_open(NULL, &s, err, sizeof err), STORE_EINVAL);
}

Test(store, directory_is_created_and_locked)
{
	char sub[300];
	struct store_config c = {.dir = sub};
	struct store *s1 = NULL, *s2 = NULL;
	char err[256];

	snprintf(sub, sizeof sub, "%s/a/b/c", T.dir);
	cr_assert_eq(store_open(&c, &s1, err, sizeof err), 0, "%s", err);
	cr_assert_eq(store_open(&c, &s2, err, sizeof err), STORE_EBUSY);
	cr_assert_null(s2);
	store_close(s1);
	cr_assert_eq(store_open(&c, &s2, err, sizeof err), 0, "%s", err);
	store_close(s2);
}

/* Bodies fetched from a peer arrive below keys already written, in any
 * order: the fill stream holds them and lookups find them, before and
 * after a restart, and after its segments fill up. */
Test(store, lower_keys_go_to_the_fill_stream)
{
	uint64_t ids[64];

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 100; k <= 400; k += 2) {
		ts_put(k, 50);
	}
	for (uint64_t k = 399; k > 100; k -= 2) {
		ts_put(k, 60); /* descending: each one below the last */
	}
	for (uint64_t k = 1; k < 100; k += 7) {
		ts_put(k, 70);
	}
	for (uint64_t k = 100; k <= 400; k++) {
		ts_expect(k, k % 2 ? 60 : 50);
	}
	cr_assert_eq(store_sync(T.s), 0);
	cr_assert(ts_ids(".seg", ids, 64) > 4);
	ts_reopen();
	for (uint64_t k = 100; k <= 400; k++) {
		ts_expect(k, k % 2 ? 60 : 50);
	}
	for (uint64_t k = 1; k < 100; k += 7) {
		ts_expect(k, 70);
	}
	/* New keys above the others still go on in order. */
	ts_put(1000, 10);
	ts_expect(1000, 10);
	cr_assert_eq(T.nreports, 0, "%s", T.nreports ? T.reports[0] : "");
}

/* A sealed segment has an index file once synced; opening loads it and
 * does not read the segment: a damaged record is not noticed at open, and
 * is caught by the read (a read never returns bytes that fail the
 * checksum), which reports the file and the offset. */
Test(store, sealed_segments_open_from_their_index)
{
	uint64_t segs[64], idxs[64];
	size_t nseg, nidx;
	struct store_rec r;
	char path[512];

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 200; k++) {
		ts_put(k, 100);
	}
	cr_assert_eq(store_sync(T.s), 0);
	nseg = ts_ids(".seg", segs, 64);
	nidx = ts_ids(".idx", idxs, 64);
	cr_assert(nseg >= 5);
	cr_assert_eq(nidx, nseg - 1, "every segment but the active one");
	ts_close();

	/* Record 2 of the first segment: header 48 B, records 32+2+100 B
	 * ("m1" .. "m9" ids). Flip a byte of its body. */
	ts_path(segs[0], ".seg", path, sizeof path);
	ts_flip(path, 48 + 134 + 32 + 2 + 10);
	ts_open();
	cr_assert_eq(T.nreports, 0, "open read the index, not the segment");
	ts_expect(1, 100);
	cr_assert_eq(store_get(T.s, 2, &r), STORE_ECORRUPT);
	cr_assert(ts_reported(path), "names the file");
	cr_assert(ts_reported("offset 182"), "names the offset");
	cr_assert_not(store_has(T.s, 2), "the bad record is forgotten");
	cr_assert_eq(store_get(T.s, 2, &r), STORE_ENOTFOUND);
	for (uint64_t k = 3; k <= 200; k++) {
		ts_expect(k, 100);
	}
}

/* Every byte of a record is covered: header, id and body. Record i gets
 * byte i flipped on disk under the open store; no get returns it. */
Test(store, every_byte_of_a_record_is_checked)
{
	const size_t len = 40, rl = 32 + 3 + len; /* ids "m10".."m84" */
	struct store_rec r;
	uint64_t segs[4];
	char path[512];

	ts_open();
	for (uint64_t k = 10; k < 10 + rl; k++) {
		ts_put(k, len);
	}
	cr_assert_eq(ts_ids(".seg", segs, 4), 1);
	ts_path(segs[0], ".seg", path, sizeof path);
	for (uint64_t i = 0; i < rl; i++) {
		ts_flip(path, 48 + i * rl + i);
	}
	for (uint64_t k = 10; k < 10 + rl; k++) {
		cr_assert_eq(store_get(T.s, k, &r), STORE_ECORRUPT,
			     "byte %" PRIu64 " of a record", k - 10);
	}
	cr_assert_eq(T.nreports, rl);
}

Test(store, missing_index_file_is_rebuilt)
{
	uint64_t idxs[64];
	char path[512];
	size_t n;

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 100; k++) {
		ts_put(k, 100);
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	n = ts_ids(".idx", idxs, 64);
	cr_assert(n >= 2);
	ts_path(idxs[1], ".idx", path, sizeof path);
	cr_assert_eq(unlink(path), 0);
	ts_open();
	for (uint64_t k = 1; k <= 100; k++) {
		ts_expect(k, 100);
	}
	cr_assert_eq(ts_ids(".idx", idxs, 64), n, "written again");
	cr_assert_eq(T.nreports, 0);
}

/* Every byte of an index file is covered by its checksum or its checks:
 * a flip anywhere makes open scan the segment instead, with the same
 * records. */
Test(store, flipped_index_byte_means_a_scan)
{
	uint64_t idxs[8];
	char path[512];
	uint64_t size;

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 40; k++) {
		ts_put(k, 100);
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	cr_assert(ts_ids(".idx", idxs, 8) >= 1);
	ts_path(idxs[0], ".idx", path, sizeof path);
	ts_save("saved");
	size = ts_file_size(path);
	for (uint64_t off = 0; off < size; off++) {
		ts_restore("saved");
		ts_flip(path, off);
		ts_clear_reports();
		ts_open();
		cr_assert(ts_reported("rebuilt"), "byte %" PRIu64, off);
		for (uint64_t k = 1; k <= 40; k++) {
			ts_expect(k, 100);
		}
		ts_close();
	}
}

Test(store, prefetch_windows_count_hits)
{
	struct store_stats st;
	struct store_rec r;

	/* Records of 32 + 5 ("m1000") + 100 bytes: 479 fill a 64 KiB
	 * segment, keys 1000..1478. */
	T.segment_bytes = 64 * 1024;
	ts_open();
	for (uint64_t k = 1000; k < 3000; k++) {
		ts_put(k, 100);
	}
	/* 20 records from key 1470, across the segment boundary. */
	store_prefetch(T.s, 1470, 20 * 137);
	for (uint64_t k = 1470; k < 1490; k++) {
		cr_assert_eq(store_get(T.s, k, &r), 0);
		cr_assert(r.ahead, "%" PRIu64, k);
	}
	cr_assert_eq(store_get(T.s, 1490, &r), 0);
	cr_assert(!r.ahead);
	cr_assert_eq(store_get(T.s, 2000, &r), 0);
	cr_assert(!r.ahead);
	store_stats(T.s, &st);
	cr_assert_eq(st.readahead_hits, 20, "%" PRIu64, st.readahead_hits);
	store_prefetch(T.s, 999999, 100); /* not stored: ignored */
}

Test(store, claims_of_absent_keys_are_missing)
{
	uint64_t k;

	ts_open();
	ts_put(4, 10);
	cr_assert_eq(store_claim(T.s, 9), 0);
	cr_assert_eq(store_claim(T.s, 3), 0);
	cr_assert_eq(store_claim(T.s, 5), 0);
	cr_assert_eq(store_claim(T.s, 4), 0); /* present: not missing */
	cr_assert_eq(store_claim(T.s, 5), 0); /* twice: counted once */
	cr_assert_eq(store_missing(T.s), 3);
	cr_assert(store_is_missing(T.s, 5) && store_is_missing(T.s, 9));
	cr_assert(!store_is_missing(T.s, 4) && !store_is_missing(T.s, 6));
	cr_assert_eq(store_missing_next(T.s, 0, &k), 0);
	cr_assert_eq(k, 3);
	cr_assert_eq(store_missing_next(T.s, k + 1, &k), 0);
	cr_assert_eq(k, 5);
	ts_put(5, 10); /* arrives (a lower key: fill stream) */
	cr_assert_eq(store_missing(T.s), 2);
	cr_assert_eq(store_missing_next(T.s, 4, &k), 0);
	cr_assert_eq(k, 9);
	cr_assert(!store_is_missing(T.s, 5));
	store_drop(T.s, 9); /* the state let it go */
	cr_assert(!store_is_missing(T.s, 9));
	cr_assert_eq(store_missing(T.s), 1);
	cr_assert_eq(store_missing_next(T.s, 4, &k), STORE_ENOTFOUND);
	cr_assert_eq(store_missing_next(T.s, 0, &k), 0);
	cr_assert_eq(k, 3);
}

/* Many missing keys claimed in random order come back sorted, and the set
 * empties as they arrive. */
Test(store, missing_set_in_key_order)
{
	uint64_t rnd = ts_seed(77), k, prev = 0, n = 0;
	const uint64_t count = 20000;
	uint64_t *keys = malloc(count * sizeof *keys);

	cr_assert_not_null(keys);
	ts_open();
	ts_put(1000000, 1);
	for (uint64_t i = 0; i < count; i++) {
		keys[i] = 1 + i * 3;
	}
	for (uint64_t i = count - 1; i > 0; i--) {
		uint64_t j = ts_rand(&rnd) % (i + 1), t = keys[i];
		keys[i] = keys[j];
		keys[j] = t;
	}
	for (uint64_t i = 0; i < count; i++) {
		cr_assert_eq(store_claim(T.s, keys[i]), 0);
	}
	cr_assert_eq(store_missing(T.s), count);
	for (uint64_t from = 0; store_missing_next(T.s, from, &k) == 0;
	     from = k + 1) {
		cr_assert(n == 0 || k > prev);
		cr_assert_eq(k, 1 + n * 3);
		prev = k;
		n++;
		if (n % 2 == 0) {
			ts_put(k, 3); /* arrivals during the walk */
		}
	}
	cr_assert_eq(n, count);
	cr_assert_eq(store_missing(T.s), count / 2);
	for (uint64_t i = 0; i < count; i++) {
		store_drop(T.s, keys[i]);
	}
	cr_assert_eq(store_missing(T.s), 0);
	cr_assert_eq(store_missing_next(T.s, 0, &k), STORE_ENOTFOUND);
	free(keys);
}

/* Property 3: about 16 bytes of memory per record for the index, the
 * reference bits included (measured by the store's own accounting of its
 * arrays, after an open that loads exact-size arrays). */
Test(store, index_memory_is_16_bytes_a_record)
{
	struct store_stats st;
	const uint64_t n = 100000;

	T.segment_bytes = 1024 * 1024;
	ts_open();
	for (uint64_t k = 1; k <= n; k++) {
		ts_put(k, 16);
	}
	/* Running: the sealed segments' arrays are exact; the active one
	 * (about 19 000 records of 54 bytes) has room to grow. */
	store_stats(T.s, &st);
	cr_assert(st.index_bytes <= n * 16 + n / 2 + 256 * 1024,
		  "%" PRIu64 " bytes of index for %" PRIu64 " records",
		  st.index_bytes, n);
	cr_assert_eq(store_sync(T.s), 0);
	ts_reopen();
	for (uint64_t k = 1; k <= n; k++) {
		cr_assert_eq(store_claim(T.s, k), 0);
	}
	store_stats(T.s, &st);
	cr_assert_eq(st.records, n);
	cr_assert_eq(st.live_records, n);
	cr_assert(st.index_bytes <= n * 16 + n / 2,
		  "%" PRIu64 " bytes of index for %" PRIu64 " records",
		  st.index_bytes, n);
}

/* Reads in file order go through the read window (one pread for many
 * records); appends between them, to the same segment, are read back
 * right, and so is a segment sealed and a new one started meanwhile. */
Test(store, reads_in_order_with_appends_between)
{
	T.segment_bytes = 64 * 1024;
	ts_open();
	for (uint64_t k = 1; k <= 200; k++) {
		ts_put(k, 100);
	}
	for (uint64_t k = 1; k <= 1200; k++) {
		if (k <= 1000) {
			ts_put(200 + k, 100 + k % 7); /* the tail grows */
		}
		ts_expect(k, k <= 200 ? 100 : 100 + (k - 200) % 7);
	}
}
