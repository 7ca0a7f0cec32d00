/* store_bench: the body store (store/) at depth, through store.h only.
 *
 * 1. Put: --records records (key i, id "m<i>", --body bytes) into a fresh
 *    store in --dir, in key order as apply writes them; reports records/s
 *    and MB/s for the first and the last tenth (the rate must not fall with
 *    depth), then the time of the store_sync() that makes them durable.
 * 2. Open: closes the store, drops its files from the page cache
 *    (posix_fadvise DONTNEED: only this store's files, nothing else on the
 *    machine), opens it again and reports the time, the heap the open took
 *    (mallinfo2) and the store's own count of index bytes, per record;
 *    then claims every key (what loading a snapshot does) and reports that.
 * 3. Get: --gets reads in key order from a cold cache with store_prefetch()
 *    of the next 4 MiB every 1000 reads (a consumer at a queue's head),
 *    then --gets reads of random keys (warm or cold, as the cache holds
 *    them); records/s and read-ahead hits.
 * 4. GC: drops the first half of the keys, marks, and runs store_gc() with
 *    a 4 MiB budget until done; reports the calls, the longest call and
 *    the bytes deleted.
 *
 * Usage: store_bench [--dir DIR] [--records N] [--body B] [--gets N]
 *                    [--segment-bytes S] [--keep]
 * DIR (default ./store-bench.d) must not exist unless --keep was given to
 * a previous run with the same arguments (then phase 1 is skipped). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

struct opts {
	const char *dir;
	uint64_t records;
	size_t body;
	uint64_t gets;
	uint64_t segment_bytes;
	bool keep;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
	uint64_t x = (*s += UINT64_C(0x9E3779B97F4A7C15));
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
		}
	}
	fclose(f);
	return kib;
}

static void die(const char *what, struct store *s, int rv)
{
	fprintf(stderr, "store_bench: %s: %s (%s)\n", what,
		store_strerror(rv < 0 ? -rv : rv),
		s != NULL ? store_errmsg(s) : "");
	exit(1);
}

/* Drops the store's files from the page cache, so the open and the first
 * reads come from the disk. */
static void drop_cache(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4096];

	if (d == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		int fd;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			(void)fdatasync(fd);
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	closedir(d);
}

static void report(const char *msg_unused, const char *msg)
{
	(void)msg_unused;
	fprintf(stderr, "store: %s\n", msg);
}

static struct store *open_store(const struct opts *o)
{
	struct store_config c = {
		.dir = o->dir,
		.segment_bytes = o->segment_bytes,
		.report_cb = (void (*)(void *, const char *))report,
	};
	struct store *s;
	char err[512];
	int rv = store_open(&c, &s, err, sizeof err);
	if (rv != 0) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(1);
	}
	return s;
}

static void fill(struct store *s, const struct opts *o)
{
	unsigned char *body = malloc(o->body ? o->body : 1);
	uint64_t tenth = o->records / 10 ? o->records / 10 : 1;
	double t0 = now_s(), t = t0, first = 0, last = 0;
	uint64_t seed = 42;
	char id[32];

	if (body == NULL) {
		die("malloc", NULL, STORE_ENOMEM);
	}
	for (size_t i = 0; i < o->body; i += 8) {
		uint64_t w = rng(&seed);
		memcpy(body + i, &w, o->body - i < 8 ? o->body - i : 8);
	}
	for (uint64_t k = 1; k <= o->records; k++) {
		int n = snprintf(id, sizeof id, "m%" PRIu64, k);
		int rv;
		body[0] = (unsigned char)k; /* every body differs */
		rv = store_put(s, k, id, (size_t)n, body, o->body, NULL);
		if (rv != 0) {
			die("put", s, rv);
		}
		if (k % tenth == 0) {
			double now = now_s();
			if (k == tenth) {
				first = now - t;
			}
			last = now - t;
			t = now;
		}
	}
	{
		double put_s = now_s() - t0, ts, rec_mb;
		int rv;
		rec_mb = (double)(32 + 8 + o->body) / 1e6;
		ts = now_s();
		rv = store_sync(s);
		if (rv != 0) {
			die("sync", s, rv);
		}
		ts = now_s() - ts;
		printf("put      %" PRIu64
		       " records of %zu B: %.1f s, "
		       "%.0f records/s (%.0f MB/s)\n",
		       o->records, o->body, put_s, (double)o->records / put_s,
		       (double)o->records * rec_mb / put_s);
		printf("put      first tenth %.0f records/s, last tenth %.0f "
		       "records/s\n",
		       (double)tenth / first, (double)tenth / last);
		printf("sync     %.2f s (fdatasync of what the page cache "
		       "still held)\n",
		       ts);
	}
	free(body);
}

int main(int argc, char **argv)
{
	struct opts o = {.dir = "store-bench.d",
			 .records = 1000000,
			 .body = 1024,
			 .gets = 1000000};
	struct store_stats st;
	struct mallinfo2 m0, m1;
	struct store *s;
	struct stat sb;
	struct store_rec r;
	uint64_t seed = 7, hits0;
	long rss0, rss1;
	double t, worst = 0;
	bool exists;
	int rv, calls = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--keep") == 0) {
			o.keep = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "store_bench: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--dir") == 0) {
			o.dir = v;
		} else if (strcmp(a, "--records") == 0) {
			o.records = strtoull(v, NULL, 0);
		} else if (strcmp(a, "--body") == 0) {
			o.body = (size_t)strtoull(v, NULL, 0);
		} else if (strcmp(a, "--gets") == 0) {
			o.gets = strtoull(v, NULL, 0);
		} else if (strcmp(a, "--segment-bytes") == 0) {
			o.segment_bytes = strtoull(v, NULL, 0);
		} else {
			fprintf(stderr, "store_bench: unknown option %s\n", a);
			return 2;
		}
	}
	if (o.records == 0) {
		fprintf(stderr, "store_bench: --records must be > 0\n");
		return 2;
	}
	exists = stat(o.dir, &sb) == 0;
	if (exists && !o.keep) {
		fprintf(stderr,
			"store_bench: %s exists (remove it, or --keep to "
			"reuse a store written with the same arguments)\n",
			o.dir);
		return 2;
	}

	/* 1. Put. */
	if (!exists) {
		s = open_store(&o);
		fill(s, &o);
		store_close(s);
	}

	/* 2. Open from a cold cache. */
	drop_cache(o.dir);
	rss0 = rss_kib();
	m0 = mallinfo2();
	t = now_s();
	s = open_store(&o);
	t = now_s() - t;
	m1 = mallinfo2();
	rss1 = rss_kib();
	store_stats(s, &st);
	printf("open     %" PRIu64 " records, %" PRIu64
	       " segments, "
	       "%.2f GiB on disk: %.3f s (cold cache)\n",
	       st.records, st.segments, (double)st.disk_bytes / (1 << 30), t);
	/* The RSS delta means something only if this process did not put
	 * first: the put phase's freed heap is reused by the open. */
	printf("memory   heap +%.1f MiB = %.2f B/record; index %.2f "
	       "B/record (store's count); RSS +%.1f MiB%s\n",
	       (double)(m1.uordblks + m1.hblkhd - m0.uordblks - m0.hblkhd) /
		       (1 << 20),
	       (double)(m1.uordblks + m1.hblkhd - m0.uordblks - m0.hblkhd) /
		       (double)st.records,
	       (double)st.index_bytes / (double)st.records,
	       (double)(rss1 - rss0) / 1024,
	       exists ? "" : " (reuses the put phase's heap: see --keep)");
	t = now_s();
	for (uint64_t k = 1; k <= o.records; k++) {
		rv = store_claim(s, k);
		if (rv != 0) {
			die("claim", s, rv);
		}
	}
	t = now_s() - t;
	printf("claim    every key: %.3f s (%.0f claims/s)\n", t,
	       (double)o.records / t);

	/* 3. Get. */
	if (o.gets > o.records) {
		o.gets = o.records;
	}
	drop_cache(o.dir);
	t = now_s();
	for (uint64_t k = 1; k <= o.gets; k++) {
		if (k % 1000 == 1) {
			store_prefetch(s, k, 4 << 20);
		}
		rv = store_get(s, k, &r);
		if (rv != 0) {
			die("get", s, rv);
		}
	}
	t = now_s() - t;
	store_stats(s, &st);
	printf("get      %" PRIu64
	       " in key order (cold, prefetch 4 MiB): "
	       "%.0f records/s, %" PRIu64 " read-ahead hits\n",
	       o.gets, (double)o.gets / t, st.readahead_hits);
	hits0 = st.readahead_hits;
	t = now_s();
	for (uint64_t i = 0; i < o.gets; i++) {
		uint64_t k = 1 + rng(&seed) % o.records;
		rv = store_get(s, k, &r);
		if (rv != 0) {
			die("get", s, rv);
		}
	}
	t = now_s() - t;
	store_stats(s, &st);
	printf("get      %" PRIu64
	       " random keys: %.0f records/s "
	       "(%" PRIu64 " read-ahead hits)\n",
	       o.gets, (double)o.gets / t, st.readahead_hits - hits0);

	/* 4. GC of the first half. */
	if (!o.keep) {
		uint64_t before = st.disk_bytes, token;
		double t0 = now_s();
		for (uint64_t k = 1; k <= o.records / 2; k++) {
			store_drop(s, k);
		}
		token = store_mark(s);
		do {
			double c = now_s();
			rv = store_gc(s, token, 4 << 20);
			c = now_s() - c;
			if (c > worst) {
				worst = c;
			}
			calls++;
		} while (rv == 1);
		if (rv < 0) {
			die("gc", s, rv);
		}
		store_stats(s, &st);
		printf("gc       half dropped: %d calls of 4 MiB budget in "
		       "%.2f s, longest %.1f ms; %.2f GiB freed, "
		       "%" PRIu64 " segments deleted, %" PRIu64
		       " compactions\n",
		       calls, now_s() - t0, worst * 1e3,
		       (double)(before - st.disk_bytes) / (1 << 30),
		       st.deleted_segments, st.compactions);
	}
	store_close(s);
	return 0;
}
