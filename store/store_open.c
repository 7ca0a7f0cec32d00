/* Opening a store: the directory, its lock, and recovery.
 *
 * Recovery rules, in order (docs/architecture.md, "The body store"):
 *   1. *.tmp files are a compaction or an index write that did not finish,
 *      *.seg.del a segment gc was deleting: removed. An index file without
 *      its segment: removed.
 *   2. A segment shorter than its header was being created when the process
 *      died (no record in it yet): removed. A header that fails its check:
 *      the segment is reported and left alone (not loaded, not removed).
 *   3. A segment with a valid index file (same id, salt, kind and size) is
 *      loaded from it without reading the segment.
 *   4. Any other segment is scanned (store_seg.c): a bad record followed by
 *      good ones is reported with its offset and skipped; a torn tail is
 *      truncated. A scanned segment that ends with a seal record gets its
 *      index file written again.
 *   5. The newest unsealed segment of the main stream stays the active
 *      one; every other unsealed segment is sealed now.
 *   6. What recovery changed is synced before store_open() returns. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

static int mkdir_p(struct store *s, const char *dir)
{
	char path[STORE__PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof path) {
		return store__err(s, STORE_EINVAL, "directory name too long");
	}
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0') {
			continue;
		}
		path[i] = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			return store__syserr(s, errno, "mkdir %s", path);
		}
		if (i < len) {
			path[i] = '/';
		}
	}
	return 0;
}

/* Parses "<16 hex digits><suffix>"; returns the suffix or NULL. */
static const char *parse_name(const char *name, uint64_t *id)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 16; i++) {
		char ch = name[i];
		unsigned d;
		if (ch >= '0' && ch <= '9') {
			d = (unsigned)(ch - '0');
		} else if (ch >= 'a' && ch <= 'f') {
			d = (unsigned)(ch - 'a' + 10);
		} else {
			return NULL;
		}
		v = v << 4 | d;
	}
	*id = v;
	return name + 16;
}

struct idlist {
	uint64_t *v;
	size_t n, cap;
};

static int idlist_push(struct idlist *l, uint64_t id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint64_t *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL) {
			return STORE_ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = id;
	return 0;
}

static bool idlist_has(const struct idlist *l, uint64_t id)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid] < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < l->n && l->v[lo] == id;
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Lists the directory: segment ids (sorted) and index ids; removes the
 * leftovers of rule 1. */
static int list_dir(struct store *s, struct idlist *segs, struct idlist *idxs)
{
	char path[STORE__PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(s->dir);
	int rv = 0;

	if (d == NULL) {
		return store__syserr(s, errno, "opendir %s", s->dir);
	}
	while (rv == 0 && (errno = 0, de = readdir(d)) != NULL) {
		uint64_t id;
		const char *suffix = parse_name(de->d_name, &id);
		if (suffix == NULL) {
			continue;
		}
		if (strcmp(suffix, ".seg.tmp") == 0 ||
		    strcmp(suffix, ".idx.tmp") == 0 ||
		    strcmp(suffix, ".seg.del") == 0) {
			snprintf(path, sizeof path, "%s/%s", s->dir,
				 de->d_name);
			(void)unlink(path);
			s->dir_dirty = true;
		} else if (strcmp(suffix, ".seg") == 0) {
			rv = idlist_push(segs, id);
		} else if (strcmp(suffix, ".idx") == 0) {
			rv = idlist_push(idxs, id);
		} else {
			continue;
		}
		if (id >= s->next_id) {
			s->next_id = id + 1;
		}
	}
	if (rv == 0 && errno != 0) {
		rv = store__syserr(s, errno, "readdir %s", s->dir);
	} else if (rv != 0) {
		rv = store__err(s, rv, "out of memory");
	}
	closedir(d);
	if (rv != 0) {
		return rv;
	}
	if (segs->n > 1) {
		qsort(segs->v, segs->n, sizeof *segs->v, id_cmp);
	}
	for (size_t i = 0; i < idxs->n; i++) {
		if (!idlist_has(segs, idxs->v[i])) {
			store__path(s, idxs->v[i], ".idx", path, sizeof path);
			(void)unlink(path);
			s->dir_dirty = true;
		}
	}
	return 0;
}

/* Loads segment id (rules 2-4). *out is NULL if it was removed or left
 * alone. */
static int load_seg(struct store *s, uint64_t id, struct store_seg **out)
{
	char path[STORE__PATH_MAX];
	unsigned char hdr[STORE__SEG_HDR];
	struct store__seg_hdr h;
	struct store_seg *g;
	struct stat st;
	uint64_t size;
	bool ok;
	int rv;

	*out = NULL;
	store__path(s, id, ".seg", path, sizeof path);
	g = store__seg_new();
	if (g == NULL) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	g->id = id;
	g->fd = open(path, O_RDWR | O_CLOEXEC);
	if (g->fd < 0 || fstat(g->fd, &st) != 0) {
		rv = store__syserr(s, errno, "open %s", path);
		goto err;
	}
	size = (uint64_t)st.st_size;
	if (size < STORE__SEG_HDR) {
		store__report(s,
			      "segment %s: shorter than its header (created "
			      "when the process stopped); removed",
			      path);
		(void)unlink(path);
		s->dir_dirty = true;
		store__seg_free(g);
		return 0;
	}
	if (pread(g->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
		rv = store__syserr(s, errno ? errno : EIO, "read %s", path);
		goto err;
	}
	if (!store__seg_hdr_decode(hdr, &h) || h.id != id ||
	    size > UINT32_MAX) {
		store__report(s, "segment %s: bad header; not loaded", path);
		s->st.corrupt_records++;
		store__seg_free(g);
		return 0;
	}
	g->kind = h.kind;
	g->salt = h.salt;
	g->size = size;
	rv = store__idx_load(s, g, &ok);
	if (rv != 0) {
		goto err;
	}
	if (!ok) {
		rv = store__seg_scan(s, g);
		if (rv != 0) {
			goto err;
		}
		if (g->size != size) {
			store__mark_dirty(s, g); /* the truncation */
		}
		if (g->sealed) {
			/* Written now, made durable by the sync at the end. */
			(void)store__idx_write(s, g);
			store__mark_dirty(s, g);
		}
	}
	*out = g;
	return 0;

err:
	store__seg_free(g);
	return rv;
}

static int recover(struct store *s)
{
	struct idlist segs = {0}, idxs = {0};
	struct store_seg **loaded = NULL;
	struct store_seg *active = NULL;
	size_t n = 0;
	int rv;

	rv = list_dir(s, &segs, &idxs);
	if (rv != 0) {
		goto out;
	}
	if (segs.n > 0) {
		loaded = calloc(segs.n, sizeof *loaded);
		if (loaded == NULL) {
			rv = store__err(s, STORE_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < segs.n; i++) {
		struct store_seg *g;
		rv = load_seg(s, segs.v[i], &g);
		if (rv != 0) {
			goto out;
		}
		if (g == NULL) {
			continue;
		}
		loaded[n++] = g;
		if (!g->sealed && g->kind == 0) {
			active = g; /* ids ascend: the newest wins */
		}
	}
	rv = store__list_reserve(&s->main_list, n);
	if (rv == 0) {
		rv = store__list_reserve(&s->fill_list, n);
	}
	if (rv != 0) {
		rv = store__err(s, rv, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct store_seg *g = loaded[i];
		loaded[i] = NULL;
		if (g->n > 0 && (!s->has_keys || g->max_key > s->max_key)) {
			s->max_key = g->max_key;
			s->has_keys = true;
		}
		if (g == active) {
			s->active = g;
			continue;
		}
		if (!g->sealed && store__seg_seal(s, g) != 0) {
			/* Sealing is tried again at the next open; until then
			 * the segment is read like any other. */
			store__report(s, "%s", s->errmsg);
		}
		(void)store__list_add(g->kind & STORE__KIND_FILL
					      ? &s->fill_list
					      : &s->main_list,
				      g); /* reserved: cannot fail */
	}
	rv = 0;
out:
	if (loaded != NULL) {
		for (size_t i = 0; i < n; i++) {
			store__seg_free(loaded[i]);
		}
		free(loaded);
	}
	free(segs.v);
	free(idxs.v);
	return rv;
}

int store_open(const struct store_config *c, struct store **out, char *err,
	       size_t errlen)
{
	struct store *s;
	int rv;

	if (c == NULL || c->dir == NULL || c->dir[0] == '\0') {
		if (err != NULL && errlen > 0) {
			snprintf(err, errlen, "store: no directory given");
		}
		return STORE_EINVAL;
	}
	s = calloc(1, sizeof *s);
	if (s == NULL) {
		if (err != NULL && errlen > 0) {
			snprintf(err, errlen, "store: out of memory");
		}
		return STORE_ENOMEM;
	}
	s->dirfd = -1;
	s->epoch = 1;
	s->next_id = 1;
	s->segment_bytes = c->segment_bytes ? c->segment_bytes
					    : STORE_SEGMENT_BYTES_DEFAULT;
	s->report_cb = c->report_cb;
	s->report_data = c->report_data;
	s->fault_cb = c->fault_cb;
	s->fault_data = c->fault_data;
	if (s->segment_bytes < STORE_SEGMENT_BYTES_MIN ||
	    s->segment_bytes > STORE_SEGMENT_BYTES_MAX) {
		rv = store__err(s, STORE_EINVAL,
				"segment_bytes %" PRIu64 " out of range",
				s->segment_bytes);
		goto err;
	}
	s->dir = strdup(c->dir);
	if (s->dir == NULL) {
		rv = store__err(s, STORE_ENOMEM, "out of memory");
		goto err;
	}
	rv = mkdir_p(s, s->dir);
	if (rv != 0) {
		goto err;
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		rv = store__syserr(s, errno, "open %s", s->dir);
		goto err;
	}
	if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
		rv = errno == EWOULDBLOCK
			     ? store__err(s, STORE_EBUSY,
					  "%s is open in another store", s->dir)
			     : store__syserr(s, errno, "flock %s", s->dir);
		goto err;
	}
	rv = recover(s);
	if (rv != 0) {
		goto err;
	}
	/* Rule 6. A full disk does not keep the store from opening: reads
	 * work, and the next store_sync() tries again. */
	if (store_sync(s) != 0) {
		store__report(s, "%s", s->errmsg);
	}
	s->st.syncs = 0;
	*out = s;
	return 0;

err:
	if (err != NULL && errlen > 0) {
		snprintf(err, errlen, "store: %s", s->errmsg);
	}
	store_close(s);
	return rv;
}

void store_close(struct store *s)
{
	struct store_list *lists[2];

	if (s == NULL) {
		return;
	}
	store__compaction_abort(s);
	store__doomed_drop(s);
	lists[0] = &s->main_list;
	lists[1] = &s->fill_list;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < lists[k]->n; i++) {
			store__seg_free(lists[k]->v[i]);
		}
		store__list_free(lists[k]);
	}
	store__seg_free(s->active);
	store__seg_free(s->fill);
	store__kset_free(&s->missing);
	free(s->missing_sorted);
	free(s->dirty);
	free(s->rbuf);
	free(s->win);
	free(s->dir);
	if (s->dirfd >= 0) {
		close(s->dirfd); /* releases the flock */
	}
	free(s);
}
