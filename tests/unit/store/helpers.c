/* Test helpers for store/: see helpers.h. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

struct ts_env T;

static void on_report(void *data, const char *msg)
{
	char **v;
	(void)data;
	v = realloc(T.reports, (T.nreports + 1) * sizeof *v);
	cr_assert_not_null(v);
	T.reports = v;
	T.reports[T.nreports] = strdup(msg);
	cr_assert_not_null(T.reports[T.nreports]);
	T.nreports++;
}

static int on_fault(void *data, enum store_io io, size_t *len)
{
	struct ts_fault *f = data;
	if (!f->armed || (f->io != 0 && f->io != io)) {
		return 0;
	}
	if (f->calls++ < f->skip) {
		return 0;
	}
	if (f->err == 0) {
		raise(SIGKILL);
	}
	if (f->once) {
		f->armed = false;
	}
	f->fired++;
	if (f->partial < *len) {
		*len = f->partial;
	}
	return f->err;
}

void ts_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	memset(&T, 0, sizeof T);
	snprintf(T.dir, sizeof T.dir, "%s/t_store.XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(T.dir), "mkdtemp: %s", strerror(errno));
}

void ts_clear_reports(void)
{
	for (size_t i = 0; i < T.nreports; i++) {
		free(T.reports[i]);
	}
	free(T.reports);
	T.reports = NULL;
	T.nreports = 0;
}

void ts_teardown(void)
{
	ts_close();
	ts_clear_reports();
	if (T.dir[0] != '\0') {
		ts_rm_rf(T.dir);
	}
}

int ts_try_open(char *err)
{
	struct store_config c = {
		.dir = T.dir,
		.segment_bytes = T.segment_bytes,
		.report_cb = on_report,
		.fault_cb = on_fault,
		.fault_data = &T.fault,
	};
	char buf[256];
	return store_open(&c, &T.s, err != NULL ? err : buf, 256);
}

void ts_open(void)
{
	char err[256] = "";
	int rv = ts_try_open(err);
	cr_assert_eq(rv, 0, "store_open: %s (%s)", store_strerror(rv), err);
}

void ts_close(void)
{
	store_close(T.s);
	T.s = NULL;
}

void ts_reopen(void)
{
	ts_close();
	ts_open();
}

bool ts_reported(const char *what)
{
	for (size_t i = 0; i < T.nreports; i++) {
		if (strstr(T.reports[i], what) != NULL) {
			return true;
		}
	}
	return false;
}

size_t ts_id(uint64_t key, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "m%" PRIu64, key);
	cr_assert(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

void ts_body(uint64_t key, size_t len, unsigned char *buf)
{
	uint64_t w = 0;
	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0) {
			w = mix(key * 1000003 + i / 8);
		}
		buf[i] = (unsigned char)(w >> (8 * (i % 8)));
	}
}

int ts_try_put(uint64_t key, size_t len)
{
	char id[32];
	size_t id_len = ts_id(key, id, sizeof id);
	unsigned char *body = malloc(len ? len : 1);
	uint32_t sum = 0;
	int rv;

	cr_assert_not_null(body);
	ts_body(key, len, body);
	rv = store_put(T.s, key, id, id_len, body, len, &sum);
	if (rv == 0) {
		cr_assert_eq(sum, store_sum(id, id_len, body, len));
	}
	free(body);
	return rv;
}

void ts_put(uint64_t key, size_t len)
{
	int rv = ts_try_put(key, len);
	cr_assert_eq(rv, 0, "put %" PRIu64 ": %s (%s)", key, store_strerror(rv),
		     store_errmsg(T.s));
}

void ts_expect(uint64_t key, size_t len)
{
	struct store_rec r;
	char id[32];
	size_t id_len = ts_id(key, id, sizeof id);
	unsigned char *body = malloc(len ? len : 1);
	int rv;

	cr_assert_not_null(body);
	ts_body(key, len, body);
	rv = store_get(T.s, key, &r);
	cr_assert_eq(rv, 0, "get %" PRIu64 ": %s (%s)", key, store_strerror(rv),
		     store_errmsg(T.s));
	cr_assert_eq(r.key, key);
	cr_assert_eq(r.id_len, id_len, "key %" PRIu64, key);
	cr_assert_eq(memcmp(r.id, id, id_len), 0);
	cr_assert_eq(r.len, len, "key %" PRIu64 ": %zu bytes, want %zu", key,
		     r.len, len);
	cr_assert(len == 0 || memcmp(r.body, body, len) == 0,
		  "key %" PRIu64 ": other bytes", key);
	cr_assert_eq(r.sum, store_sum(id, id_len, body, len));
	free(body);
}

uint64_t ts_seed(uint64_t dflt)
{
	const char *e = getenv("TEST_SEED");
	uint64_t seed = e != NULL ? strtoull(e, NULL, 0) : dflt;
	/* stderr, not cr_log_info(): Criterion's runner leaks a message's
	 * memory once two tests log (LeakSanitizer reports it at exit). */
	fprintf(stderr,
		"store test seed %" PRIu64 " (rerun: TEST_SEED=%" PRIu64 ")\n",
		seed, seed);
	return seed;
}

uint64_t ts_rand(uint64_t *state)
{
	*state += UINT64_C(0x9E3779B97F4A7C15);
	return mix(*state);
}

void ts_path(uint64_t id, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 "%s", T.dir, id, suffix);
}

static int u64cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t ts_ids(const char *suffix, uint64_t *ids, size_t cap)
{
	DIR *d = opendir(T.dir);
	struct dirent *de;
	size_t n = 0, sl = strlen(suffix);

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l == 16 + sl && strcmp(de->d_name + 16, suffix) == 0 &&
		    n < cap) {
			ids[n++] = strtoull(de->d_name, NULL, 16);
		}
	}
	closedir(d);
	qsort(ids, n, sizeof *ids, u64cmp);
	return n;
}

uint64_t ts_file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

void ts_flip(const char *path, uint64_t off)
{
	unsigned char b;
	int fd = open(path, O_RDWR);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

void ts_truncate(const char *path, uint64_t len)
{
	cr_assert_eq(truncate(path, (off_t)len), 0, "truncate %s: %s", path,
		     strerror(errno));
}

void ts_copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	cr_assert(in >= 0 && out >= 0, "copy %s: %s", from, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0) {
		cr_assert_eq(write(out, buf, (size_t)n), n);
	}
	cr_assert_eq(n, 0);
	close(in);
	close(out);
}

void ts_rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	if (d == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			ts_rm_rf(path);
		} else {
			(void)unlink(path);
		}
	}
	closedir(d);
	(void)rmdir(dir);
}

/* Calls fn(from/name, to/name) for every regular file of from. */
static void each_file(const char *from, const char *to,
		      void (*fn)(const char *, const char *))
{
	DIR *d = opendir(from);
	struct dirent *de;
	char a[600], b[600];

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		snprintf(a, sizeof a, "%s/%s", from, de->d_name);
		if (lstat(a, &st) != 0 || !S_ISREG(st.st_mode)) {
			continue;
		}
		snprintf(b, sizeof b, "%s/%s", to, de->d_name);
		fn(a, b);
	}
	closedir(d);
}

static void rm_file(const char *path, const char *unused)
{
	(void)unused;
	cr_assert_eq(unlink(path), 0);
}

void ts_save(const char *name)
{
	char sub[400];
	snprintf(sub, sizeof sub, "%s/%s", T.dir, name);
	ts_rm_rf(sub);
	cr_assert_eq(mkdir(sub, 0755), 0);
	each_file(T.dir, sub, ts_copy_file);
}

void ts_restore(const char *name)
{
	char sub[400];
	snprintf(sub, sizeof sub, "%s/%s", T.dir, name);
	each_file(T.dir, T.dir, rm_file);
	each_file(sub, T.dir, ts_copy_file);
}
