/* store/: what store_open() does with what a crash or a bad disk left
 * (the recovery rules of store_open.c): torn tails, bad records in the
 * middle, leftovers, damaged headers. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(recovery, .init = ts_setup, .fini = ts_teardown);

/* Records of keys 1..n with lengths 10 * k, in the active segment; returns
 * the segment's id and the offset where record n starts. */
static uint64_t fill_active(uint64_t n, uint64_t *last_off)
{
	uint64_t ids[4], off = 48;

	ts_open();
	for (uint64_t k = 1; k <= n; k++) {
		ts_put(k, 10 * k);
		if (k < n) {
			off += 32 + 2 + 10 * k; /* ids "m1".."m9" */
		}
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	cr_assert_eq(ts_ids(".seg", ids, 4), 1);
	*last_off = off;
	return ids[0];
}

/* A crash in the middle of a write leaves any prefix of the last record:
 * cut the file at every byte of it. The earlier records are all there,
 * the cut one is gone, the tail is truncated (reported unless the cut
 * fell between records), and the store takes the record again. */
Test(recovery, torn_tail_at_every_byte)
{
	uint64_t last, id = fill_active(9, &last);
	char path[512];
	uint64_t size;

	ts_path(id, ".seg", path, sizeof path);
	ts_save("saved");
	size = ts_file_size(path);
	cr_assert_eq(size, last + 32 + 2 + 90);
	for (uint64_t cut = last; cut < size; cut++) {
		ts_restore("saved");
		ts_truncate(path, cut);
		ts_clear_reports();
		ts_open();
		cr_assert_eq(ts_reported("torn tail"), cut > last,
			     "cut at %" PRIu64, cut);
		cr_assert_not(ts_reported("bad record"));
		for (uint64_t k = 1; k < 9; k++) {
			ts_expect(k, 10 * k);
		}
		cr_assert_not(store_has(T.s, 9), "cut at %" PRIu64, cut);
		cr_assert_eq(ts_file_size(path), last, "tail truncated");
		ts_put(9, 90);
		ts_reopen();
		cr_assert_eq(T.nreports, cut > last ? 1 : 0);
		for (uint64_t k = 1; k <= 9; k++) {
			ts_expect(k, 10 * k);
		}
		ts_close();
	}
}

/* A crash that extended the file without writing its data (a power loss
 * on some filesystems) leaves zeros at the end: a torn tail too. */
Test(recovery, zeroed_tail_is_truncated)
{
	uint64_t last, id = fill_active(5, &last);
	char path[512];
	uint64_t size;

	ts_path(id, ".seg", path, sizeof path);
	size = ts_file_size(path);
	ts_truncate(path, size + 8192);
	ts_open();
	cr_assert(ts_reported("torn tail"));
	cr_assert_eq(ts_file_size(path), size);
	for (uint64_t k = 1; k <= 5; k++) {
		ts_expect(k, 10 * k);
	}
}

/* A bad record followed by good ones is not a torn tail: every byte of a
 * record in the middle, flipped in turn, is reported with the file and
 * the offset; only that record is missing; nothing after it is cut. */
static void bad_middle_record(bool sealed)
{
	uint64_t segs[8], idxs[8], last;
	char path[512], off[64];
	const uint64_t rec4 = 48 + (32 + 2 + 10) + (32 + 2 + 20) +
			      (32 + 2 + 30); /* record of key 4 */

	if (sealed) {
		/* A sealed first segment without its index file. */
		T.segment_bytes = 4096;
		ts_open();
		for (uint64_t k = 1; k <= 9; k++) {
			ts_put(k, 10 * k);
		}
		ts_put(2000, 4000);
		ts_put(2001, 1); /* seals the first segment */
		cr_assert_eq(store_sync(T.s), 0);
		ts_close();
		cr_assert_eq(ts_ids(".idx", idxs, 8), 1);
		ts_path(idxs[0], ".idx", path, sizeof path);
		cr_assert_eq(unlink(path), 0);
	} else {
		(void)fill_active(9, &last);
	}
	cr_assert(ts_ids(".seg", segs, 8) >= 1);
	ts_path(segs[0], ".seg", path, sizeof path);
	ts_save("saved");
	snprintf(off, sizeof off, "bad record at offset %" PRIu64, rec4);
	for (uint64_t b = 0; b < 32 + 2 + 40; b++) {
		ts_restore("saved");
		ts_flip(path, rec4 + b);
		ts_clear_reports();
		ts_open();
		cr_assert(ts_reported(off), "byte %" PRIu64 " of the record",
			  b);
		cr_assert(ts_reported(path), "the report names the file");
		cr_assert_not(ts_reported("torn tail"));
		cr_assert_not(store_has(T.s, 4), "byte %" PRIu64, b);
		for (uint64_t k = 1; k <= 9; k++) {
			if (k != 4) {
				ts_expect(k, 10 * k);
			}
		}
		cr_assert_eq(store_claim(T.s, 4), 0);
		cr_assert_eq(store_missing(T.s), 1, "claimed: missing");
		/* A peer sends the body again: it goes in. */
		ts_put(4, 40);
		cr_assert_eq(store_missing(T.s), 0);
		ts_expect(4, 40);
		ts_close();
	}
}

Test(recovery, bad_record_in_the_middle_of_the_active_segment)
{
	bad_middle_record(false);
}

Test(recovery, bad_record_in_the_middle_of_a_sealed_segment)
{
	bad_middle_record(true);
}

/* A client can publish any bytes, including the image of a record. When a
 * scan looks for the next good record after a bad one, such an image must
 * not pass for a record: record headers are hashed with a random salt of
 * their segment, which a body cannot know. */
Test(recovery, a_body_shaped_like_a_record_is_not_a_record)
{
	uint64_t ids[4];
	unsigned char image[32 + 5 + 50];
	char path[512], other[300];
	int fd;

	/* The exact bytes of record 77777 as another store wrote them. */
	snprintf(other, sizeof other, "%s/other", T.dir);
	{
		struct store_config c = {.dir = other};
		struct store *s;
		unsigned char body[50];
		char err[256];
		cr_assert_eq(store_open(&c, &s, err, sizeof err), 0);
		ts_body(77777, 50, body);
		cr_assert_eq(store_put(s, 77777, "m7777", 5, body, 50, NULL),
			     0);
		store_close(s);
	}
	snprintf(path, sizeof path, "%s/%016x.seg", other, 1);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, image, sizeof image, 48), (ssize_t)sizeof image);
	close(fd);

	ts_open();
	ts_put(1, 10);
	cr_assert_eq(store_put(T.s, 2, "m2", 2, image, sizeof image, NULL), 0);
	ts_put(3, 10);
	ts_close();
	cr_assert_eq(ts_ids(".seg", ids, 4), 1);
	ts_path(ids[0], ".seg", path, sizeof path);
	ts_flip(path, 48 + 32 + 2 + 10 + 5); /* record 2's header */
	ts_open();
	cr_assert(ts_reported("bad record"));
	cr_assert_not(store_has(T.s, 77777), "the image is not a record");
	cr_assert_not(store_has(T.s, 2));
	ts_expect(1, 10);
	ts_expect(3, 10);
}

Test(recovery, leftovers_are_removed)
{
	char path[512];
	uint64_t ids[8];
	int fd;

	T.segment_bytes = 4096;
	ts_open();
	ts_put(1, 10);
	ts_close();
	/* A compaction output and an index that were being written, the
	 * index of a segment that is gone, a segment gc was deleting. */
	ts_path(7, ".seg.tmp", path, sizeof path);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "partial", 7), 7);
	close(fd);
	ts_path(7, ".idx.tmp", path, sizeof path);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	ts_path(5, ".idx", path, sizeof path);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	ts_path(6, ".seg.del", path, sizeof path); /* being deleted */
	close(open(path, O_CREAT | O_WRONLY, 0644));
	ts_open();
	cr_assert_eq(ts_ids(".seg.del", ids, 8), 0);
	cr_assert_eq(ts_ids(".seg.tmp", ids, 8), 0);
	cr_assert_eq(ts_ids(".idx.tmp", ids, 8), 0);
	cr_assert_eq(ts_ids(".idx", ids, 8), 0);
	ts_expect(1, 10);
	/* A new segment never takes an id seen on disk. */
	ts_put(2, 4000);
	ts_put(3, 10); /* seals the first segment: a new one */
	cr_assert_eq(ts_ids(".seg", ids, 8), 2);
	cr_assert_eq(ids[1], 8, "%" PRIu64, ids[1]);
}

Test(recovery, damaged_segment_headers)
{
	uint64_t ids[8];
	char path[512];

	T.segment_bytes = 4096;
	ts_open();
	for (uint64_t k = 1; k <= 60; k++) {
		ts_put(k, 100);
	}
	cr_assert_eq(store_sync(T.s), 0);
	ts_close();
	cr_assert(ts_ids(".seg", ids, 8) >= 2);

	/* A header that fails its check: reported, left alone, not loaded;
	 * the other segments are. */
	ts_path(ids[0], ".seg", path, sizeof path);
	ts_flip(path, 20);
	ts_open();
	cr_assert(ts_reported("bad header"));
	cr_assert_not(store_has(T.s, 1));
	ts_expect(60, 100);
	ts_close();
	cr_assert_eq(ts_file_size(path) > 48, true);

	/* Shorter than a header: a segment being created at the crash. */
	ts_path(ids[0], ".seg", path, sizeof path);
	ts_truncate(path, 20);
	ts_clear_reports();
	ts_open();
	cr_assert(ts_reported("shorter than its header"));
	cr_assert_eq(access(path, F_OK), -1, "removed");
	ts_expect(60, 100);
}

/* Only the newest main segment stays active across a restart; a fill
 * segment is sealed (so its index file spares the next open a scan). */
Test(recovery, fill_segments_are_sealed_at_open)
{
	uint64_t ids[8];

	ts_open();
	for (uint64_t k = 10; k <= 20; k++) {
		ts_put(k, 100);
	}
	for (uint64_t k = 1; k < 10; k++) {
		ts_put(k, 50); /* fill stream */
	}
	ts_close();
	cr_assert_eq(ts_ids(".seg", ids, 8), 2);
	cr_assert_eq(ts_ids(".idx", ids, 8), 0);
	ts_open();
	cr_assert_eq(ts_ids(".idx", ids, 8), 1, "the fill segment sealed");
	ts_put(21, 10); /* the main one goes on */
	ts_close();
	cr_assert_eq(ts_ids(".seg", ids, 8), 2);
	ts_open();
	for (uint64_t k = 1; k < 10; k++) {
		ts_expect(k, 50);
	}
	for (uint64_t k = 10; k <= 20; k++) {
		ts_expect(k, 100);
	}
	ts_expect(21, 10);
	cr_assert_eq(T.nreports, 0);
}
