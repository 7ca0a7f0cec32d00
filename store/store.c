/* The store's hot path: put, get, lookup, prefetch, sync, and the helpers
 * the other files share (errors, I/O through the test hook, segment lists).
 *
 * A put appends one record with one pwritev() to the active segment of its
 * stream (main: a key above every key stored; fill: a lower one) and adds a
 * 16-byte entry to that segment's sorted array: O(1) for keys in order,
 * and nothing proportional to the store's size. A get finds the key with a
 * binary search over the segments of each stream (sorted by their lowest
 * key), then one in the segment, and reads the record with one pread(). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"

static const char *const errors[] = {
	[STORE_OK] = "ok",
	[STORE_ENOMEM] = "out of memory",
	[STORE_EINVAL] = "invalid argument",
	[STORE_ENOTFOUND] = "no record with that key",
	[STORE_EEXIST] = "the key holds other bytes",
	[STORE_ECORRUPT] = "record failed its checksum",
	[STORE_EIO] = "I/O error",
	[STORE_ENOSPC] = "no space left on the store's disk",
	[STORE_EBUSY] = "store directory in use by another process",
	[STORE_ETOOBIG] = "record too large",
};

const char *store_strerror(int code)
{
	if (code < 0 || (size_t)code >= sizeof errors / sizeof errors[0] ||
	    errors[code] == NULL) {
		return "unknown error";
	}
	return errors[code];
}

const char *store_errmsg(const struct store *s)
{
	return s->errmsg;
}

int store__err(struct store *s, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
	va_end(ap);
	return code;
}

int store__syserr(struct store *s, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
	va_end(ap);
	n = strlen(s->errmsg);
	snprintf(s->errmsg + n, sizeof s->errmsg - n, ": %s", strerror(errnum));
	return errnum == ENOSPC || errnum == EDQUOT ? STORE_ENOSPC : STORE_EIO;
}

void store__report(struct store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
	va_end(ap);
	if (s->report_cb != NULL) {
		s->report_cb(s->report_data, s->errmsg);
	}
}

void store__path(const struct store *s, uint64_t id, const char *suffix,
		 char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64 "%s", s->dir, id, suffix);
}

/* ---- I/O through the test hook ---- */

static int fault(struct store *s, enum store_io io, size_t *len)
{
	if (s->fault_cb == NULL) {
		return 0;
	}
	return s->fault_cb(s->fault_data, io, len);
}

int store__pwritev(struct store *s, int fd, const void *const *bufs,
		   const size_t *lens, int n, uint64_t off)
{
	struct iovec iov[STORE__IOV_MAX];
	size_t total = 0, allowed, before = 0;
	int injected, k = 0, first = 0;

	for (int i = 0; i < n; i++) {
		total += lens[i];
	}
	allowed = total;
	injected = fault(s, STORE_IO_WRITE, &allowed);
	if (allowed > total) {
		allowed = total;
	}
	/* The iovecs of the first `allowed` bytes. */
	for (int i = 0; i < n && before < allowed; i++) {
		size_t take = lens[i];
		if (before + take > allowed) {
			take = allowed - before;
		}
		if (take > 0) {
			iov[k].iov_base = (void *)(uintptr_t)bufs[i];
			iov[k].iov_len = take;
			k++;
		}
		before += lens[i];
	}
	while (first < k) {
		ssize_t w = pwritev(fd, iov + first,
				    k - first > IOV_MAX ? IOV_MAX : k - first,
				    (off_t)off);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno;
		}
		if (w == 0) {
			return EIO;
		}
		off += (uint64_t)w;
		/* Drop what was written; go on with the rest (a short write).
		 */
		while (first < k && (size_t)w >= iov[first].iov_len) {
			w -= (ssize_t)iov[first].iov_len;
			first++;
		}
		if (first < k) {
			iov[first].iov_base = (char *)iov[first].iov_base + w;
			iov[first].iov_len -= (size_t)w;
		}
	}
	return injected;
}

int store__pwrite(struct store *s, int fd, const void *buf, size_t len,
		  uint64_t off)
{
	return store__pwritev(s, fd, &buf, &len, 1, off);
}

int store__fsync(struct store *s, int fd, bool data_only)
{
	size_t zero = 0;
	int rv = fault(s, STORE_IO_SYNC, &zero);
	if (rv != 0) {
		return rv;
	}
	rv = data_only ? fdatasync(fd) : fsync(fd);
	return rv == 0 ? 0 : errno;
}

/* ---- Segment lists and lookup ---- */

int store__list_reserve(struct store_list *l, size_t extra)
{
	size_t cap = l->cap ? l->cap : 16;
	struct store_seg **v;
	uint64_t *pm;

	if (l->n + extra <= l->cap) {
		return 0;
	}
	while (cap < l->n + extra) {
		cap *= 2;
	}
	v = realloc(l->v, cap * sizeof *v);
	if (v == NULL) {
		return STORE_ENOMEM;
	}
	l->v = v;
	pm = realloc(l->pmax, cap * sizeof *pm);
	if (pm == NULL) {
		return STORE_ENOMEM;
	}
	l->pmax = pm;
	l->cap = cap;
	return 0;
}

static void list_pmax(struct store_list *l, size_t from)
{
	for (size_t i = from; i < l->n; i++) {
		uint64_t prev = i > 0 ? l->pmax[i - 1] : 0;
		l->pmax[i] = l->v[i]->max_key > prev ? l->v[i]->max_key : prev;
	}
}

/* Number of segments whose min_key is <= key. */
static size_t list_upper(const struct store_list *l, uint64_t key)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->v[mid]->min_key <= key) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

int store__list_add(struct store_list *l, struct store_seg *g)
{
	size_t i;

	if (store__list_reserve(l, 1) != 0) {
		return STORE_ENOMEM;
	}
	/* Appending is the usual case (the main stream seals its segments in
	 * key order): O(1). Otherwise O(segments) pointer moves, once per
	 * sealed segment. */
	i = list_upper(l, g->min_key);
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof l->v[0]);
	l->v[i] = g;
	l->n++;
	list_pmax(l, i);
	return 0;
}

static long list_index(const struct store_list *l, const struct store_seg *g)
{
	/* Segments are sorted by min_key: search, then look among the ones
	 * with the same min_key (empty segments all have UINT64_MAX). */
	for (size_t i = list_upper(l, g->min_key); i-- > 0;) {
		if (l->v[i] == g) {
			return (long)i;
		}
		if (l->v[i]->min_key != g->min_key) {
			break;
		}
	}
	return -1;
}

void store__list_del(struct store_list *l, struct store_seg *g)
{
	long i = list_index(l, g);
	if (i < 0) {
		return;
	}
	memmove(&l->v[i], &l->v[i + 1],
		(l->n - (size_t)i - 1) * sizeof l->v[0]);
	l->n--;
	list_pmax(l, (size_t)i);
}

void store__list_free(struct store_list *l)
{
	free(l->v);
	free(l->pmax);
	memset(l, 0, sizeof *l);
}

static bool list_find(const struct store_list *l, uint64_t key,
		      struct store_seg **g, uint32_t *i)
{
	/* Walk back from the last segment whose lowest key is <= key while the
	 * running maximum says an earlier one may still hold it. The main
	 * stream's ranges are disjoint, so this stops after one segment. */
	for (size_t j = list_upper(l, key); j-- > 0;) {
		long k;
		if (l->pmax[j] < key) {
			break;
		}
		k = store__seg_find(l->v[j], key);
		if (k >= 0) {
			*g = l->v[j];
			*i = (uint32_t)k;
			return true;
		}
	}
	return false;
}

bool store__find(const struct store *s, uint64_t key, struct store_seg **g,
		 uint32_t *i)
{
	struct store_seg *act[2] = {s->active, s->fill};

	for (int k = 0; k < 2; k++) {
		long j;
		if (act[k] == NULL) {
			continue;
		}
		j = store__seg_find(act[k], key);
		if (j >= 0) {
			*g = act[k];
			*i = (uint32_t)j;
			return true;
		}
	}
	return list_find(&s->main_list, key, g, i) ||
	       list_find(&s->fill_list, key, g, i);
}

bool store_has(const struct store *s, uint64_t key)
{
	struct store_seg *g;
	uint32_t i;
	return store__find(s, key, &g, &i);
}

void store__windows_forget(struct store *s, const struct store_seg *g)
{
	for (int i = 0; i < STORE__WINDOWS; i++) {
		if (s->windows[i].seg == g) {
			s->windows[i].seg = NULL;
		}
	}
}

void store__seg_delete(struct store *s, struct store_seg *g)
{
	char path[STORE__PATH_MAX], del[STORE__PATH_MAX];
	struct store_doomed *d;

	store__windows_forget(s, g);
	store__dirty_forget(s, g);
	store__path(s, g->id, ".idx", path, sizeof path);
	(void)unlink(path);
	store__path(s, g->id, ".idx.tmp", path, sizeof path);
	(void)unlink(path);
	store__path(s, g->id, ".seg", path, sizeof path);
	store__path(s, g->id, ".seg.del", del, sizeof del);
	s->dir_dirty = true;
	s->st.deleted_segments++;
	if (s->ndoomed == s->doomed_cap) {
		size_t cap = s->doomed_cap ? s->doomed_cap * 2 : 8;
		d = realloc(s->doomed, cap * sizeof *d);
		if (d != NULL) {
			s->doomed = d;
			s->doomed_cap = cap;
		}
	}
	if (s->ndoomed == s->doomed_cap || rename(path, del) != 0) {
		(void)unlink(path); /* at once, then */
		store__seg_free(g);
		return;
	}
	d = &s->doomed[s->ndoomed++];
	d->fd = g->fd;
	d->id = g->id;
	d->size = g->size;
	g->fd = -1;
	store__seg_free(g);
}

void store__doomed_drop(struct store *s)
{
	char del[STORE__PATH_MAX];

	for (size_t i = 0; i < s->ndoomed; i++) {
		close(s->doomed[i].fd);
		store__path(s, s->doomed[i].id, ".seg.del", del, sizeof del);
		(void)unlink(del);
	}
	free(s->doomed);
	s->doomed = NULL;
	s->ndoomed = s->doomed_cap = 0;
}

void store__bad_record(struct store *s, struct store_seg *g, uint32_t i)
{
	char path[STORE__PATH_MAX];

	store__path(s, g->id, ".seg", path, sizeof path);
	store__report(s,
		      "segment %s: record of key %" PRIu64
		      " at offset %u fails its checksum; treated as missing",
		      path, g->ents[i].key, g->ents[i].off);
	s->st.corrupt_records++;
	store__forget(s, g, i);
}

void store__forget(struct store *s, struct store_seg *g, uint32_t i)
{
	uint64_t key = g->ents[i].key;

	if ((g->ents[i].lenbits & STORE__LIVE) != 0 &&
	    store__kset_add(&s->missing, key) == 0) {
		s->missing_sorted_stale = true;
	}
	if (g->compacting && s->cpt.active && s->cpt.cur_src < s->cpt.nsrc &&
	    s->cpt.src[s->cpt.cur_src] == g && i < s->cpt.cur_ent) {
		s->cpt.cur_ent--;
	}
	store__seg_remove(g, i);
}

/* ---- put ---- */

/* The active segment of the stream a key goes to, sealing a full one and
 * creating a new one as needed. */
static int active_for(struct store *s, uint64_t key, struct store_seg **out)
{
	bool fill = s->has_keys && key <= s->max_key;
	struct store_seg **slot = fill ? &s->fill : &s->active;
	struct store_list *l = fill ? &s->fill_list : &s->main_list;
	struct store_seg *g = *slot;
	int rv;

	if (g != NULL && g->size >= s->segment_bytes) {
		if (store__list_reserve(l, 1) != 0) {
			return store__err(s, STORE_ENOMEM, "out of memory");
		}
		rv = store__seg_seal(s, g);
		if (rv != 0) {
			return rv;
		}
		(void)store__list_add(l, g); /* reserved: cannot fail */
		*slot = g = NULL;
	}
	if (g == NULL) {
		g = store__seg_new();
		if (g == NULL) {
			return store__err(s, STORE_ENOMEM, "out of memory");
		}
		rv = store__seg_create(s, g, fill ? STORE__KIND_FILL : 0,
				       ".seg");
		if (rv != 0) {
			store__seg_free(g);
			return rv;
		}
		*slot = g;
	}
	*out = g;
	return 0;
}

/* A put of a key the store has: 0 if the stored bytes are the same, and
 * the key is claimed; -1 if the stored copy was corrupt (forgotten: write
 * the new one); an error otherwise. */
static int put_again(struct store *s, struct store_seg *g, uint32_t i,
		     const void *id, size_t id_len, const void *body,
		     size_t len)
{
	struct store_rec r;
	int rv = store__read(s, g, i, &r);

	if (rv == STORE_ECORRUPT) {
		store__bad_record(s, g, i);
		return -1;
	}
	if (rv != 0) {
		return rv;
	}
	if (r.id_len != id_len || r.len != len ||
	    (id_len > 0 && memcmp(r.id, id, id_len) != 0) ||
	    (len > 0 && memcmp(r.body, body, len) != 0)) {
		return store__err(s, STORE_EEXIST,
				  "key %" PRIu64 " holds other bytes", r.key);
	}
	store__claim_ent(s, g, i);
	return 0;
}

int store_put(struct store *s, uint64_t key, const void *id, size_t id_len,
	      const void *body, size_t len, uint32_t *sum)
{
	unsigned char hdr[STORE__REC_HDR];
	struct store__rec_hdr h;
	struct store__ent e;
	struct store_seg *g;
	uint32_t i;
	int rv;

	if (key == UINT64_MAX || (id == NULL && id_len > 0) ||
	    (body == NULL && len > 0)) {
		return store__err(s, STORE_EINVAL,
				  "invalid put of key %" PRIu64, key);
	}
	if (id_len > STORE_MAX_ID || len > STORE_MAX_BODY) {
		return store__err(s, STORE_ETOOBIG,
				  "record of key %" PRIu64 " too large", key);
	}
	h.type = STORE__REC_BODY;
	h.id_len = (uint32_t)id_len;
	h.body_len = (uint32_t)len;
	h.key = key;
	h.data_hash = store__data_hash(id, id_len, body, len);

	/* A key above every stored one is new (the usual case: no lookup). */
	while (s->has_keys && key <= s->max_key &&
	       store__find(s, key, &g, &i)) {
		rv = put_again(s, g, i, id, id_len, body, len);
		if (rv == 0 && sum != NULL) {
			*sum = store__fold32(h.data_hash);
		}
		if (rv != -1) {
			return rv;
		}
	}

	rv = active_for(s, key, &g);
	if (rv != 0) {
		return rv;
	}
	if (store__seg_reserve(g, 1) != 0) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	if (g->tail_dirty) {
		if (ftruncate(g->fd, (off_t)g->size) == 0) {
			g->tail_dirty = false;
		}
	}
	store__rec_hdr_encode(hdr, &h, g->salt);
	{
		const void *bufs[3] = {hdr, id, body};
		size_t lens[3] = {sizeof hdr, id_len, len};
		store__win_written(s, g, g->size);
		rv = store__pwritev(s, g->fd, bufs, lens, 3, g->size);
	}
	if (rv != 0) {
		char path[STORE__PATH_MAX];
		store__path(s, g->id, ".seg", path, sizeof path);
		/* Cut what a short write left, so the file ends with whole
		 * records; if that fails too, the next write overwrites it. */
		if (ftruncate(g->fd, (off_t)g->size) != 0) {
			g->tail_dirty = true;
		}
		return store__syserr(s, rv, "write %s at offset %" PRIu64, path,
				     g->size);
	}
	e.key = key;
	e.off = (uint32_t)g->size;
	e.lenbits = (uint32_t)(STORE__REC_HDR + id_len + len) | STORE__LIVE;
	store__seg_insert(g, &e);
	g->size += STORE__REC_HDR + id_len + len;
	store__mark_dirty(s, g);
	if (!s->has_keys || key > s->max_key) {
		s->max_key = key;
		s->has_keys = true;
	}
	if (s->missing.n > 0) {
		(void)store__kset_del(&s->missing, key);
	}
	s->st.puts++;
	if (sum != NULL) {
		*sum = store__fold32(h.data_hash);
	}
	return 0;
}

/* Records of one run of store_put_batch(): three buffers each (header, id,
 * body) in one pwritev, and a bound on the bytes so that a run does not
 * hold up a segment's sealing for long. */
#define BATCH_RUN_RECS ((STORE__IOV_MAX - 1) / 3)
#define BATCH_RUN_BYTES (8u << 20)

/* Whether r is a plain new record of the main stream after `after` (the
 * previous key of the run, or the store's highest). */
static bool batchable(const struct store *s, const struct store_put_rec *r,
		      bool has_after, uint64_t after)
{
	return r->key != UINT64_MAX && (r->id != NULL || r->id_len == 0) &&
	       (r->body != NULL || r->len == 0) && r->id_len <= STORE_MAX_ID &&
	       r->len <= STORE_MAX_BODY && (!has_after || r->key > after) &&
	       (!s->has_keys || r->key > s->max_key);
}

/* Writes r[0..n) (batchable, increasing keys) to g with one pwritev. */
static int put_run(struct store *s, struct store_seg *g,
		   const struct store_put_rec *r, size_t n)
{
	unsigned char hdrs[BATCH_RUN_RECS][STORE__REC_HDR];
	const void *bufs[3 * BATCH_RUN_RECS];
	size_t lens[3 * BATCH_RUN_RECS];
	uint64_t off = g->size;
	size_t i;
	int rv;

	if (store__seg_reserve(g, (uint32_t)n) != 0) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	if (g->tail_dirty) {
		if (ftruncate(g->fd, (off_t)g->size) == 0) {
			g->tail_dirty = false;
		}
	}
	for (i = 0; i < n; i++) {
		struct store__rec_hdr h;
		h.type = STORE__REC_BODY;
		h.id_len = (uint32_t)r[i].id_len;
		h.body_len = (uint32_t)r[i].len;
		h.key = r[i].key;
		h.data_hash = store__data_hash(r[i].id, r[i].id_len, r[i].body,
					       r[i].len);
		store__rec_hdr_encode(hdrs[i], &h, g->salt);
		bufs[3 * i] = hdrs[i];
		lens[3 * i] = STORE__REC_HDR;
		bufs[3 * i + 1] = r[i].id;
		lens[3 * i + 1] = r[i].id_len;
		bufs[3 * i + 2] = r[i].body;
		lens[3 * i + 2] = r[i].len;
	}
	store__win_written(s, g, off);
	rv = store__pwritev(s, g->fd, bufs, lens, (int)(3 * n), off);
	if (rv != 0) {
		char path[STORE__PATH_MAX];
		store__path(s, g->id, ".seg", path, sizeof path);
		if (ftruncate(g->fd, (off_t)g->size) != 0) {
			g->tail_dirty = true;
		}
		return store__syserr(s, rv, "write %s at offset %" PRIu64, path,
				     g->size);
	}
	for (i = 0; i < n; i++) {
		struct store__ent e;
		size_t len = STORE__REC_HDR + r[i].id_len + r[i].len;
		e.key = r[i].key;
		e.off = (uint32_t)g->size;
		e.lenbits = (uint32_t)len | STORE__LIVE;
		store__seg_insert(g, &e);
		g->size += len;
		if (s->missing.n > 0) {
			(void)store__kset_del(&s->missing, r[i].key);
		}
	}
	store__mark_dirty(s, g);
	s->max_key = r[n - 1].key;
	s->has_keys = true;
	s->st.puts += n;
	return 0;
}

int store_put_batch(struct store *s, const struct store_put_rec *r, size_t n,
		    size_t *done)
{
	size_t i = 0;
	int rv = 0;

	while (i < n) {
		struct store_seg *g;
		size_t j, bytes;
		if (!batchable(s, &r[i], false, 0)) {
			rv = store_put(s, r[i].key, r[i].id, r[i].id_len,
				       r[i].body, r[i].len, NULL);
			if (rv != 0) {
				break;
			}
			i++;
			continue;
		}
		rv = active_for(s, r[i].key, &g);
		if (rv != 0) {
			break;
		}
		bytes = STORE__REC_HDR + r[i].id_len + r[i].len;
		for (j = i + 1; j < n && j - i < BATCH_RUN_RECS &&
				batchable(s, &r[j], true, r[j - 1].key);
		     j++) {
			size_t len = STORE__REC_HDR + r[j].id_len + r[j].len;
			if (bytes + len > BATCH_RUN_BYTES ||
			    g->size + bytes + len > s->segment_bytes) {
				break;
			}
			bytes += len;
		}
		rv = put_run(s, g, &r[i], j - i);
		if (rv != 0) {
			break;
		}
		i = j;
	}
	if (done != NULL) {
		*done = i;
	}
	return rv;
}

/* ---- get, prefetch ---- */

static bool window_hit(const struct store *s, const struct store_seg *g,
		       const struct store__ent *e)
{
	for (int i = 0; i < STORE__WINDOWS; i++) {
		const struct store_window *w = &s->windows[i];
		if (w->seg == g && e->off >= w->off &&
		    e->off + store__ent_len(e) <= w->end) {
			return true;
		}
	}
	return false;
}

int store_get(struct store *s, uint64_t key, struct store_rec *out)
{
	bool corrupt = false;
	struct store_seg *g;
	uint32_t i;
	int rv;

	/* A bad copy is forgotten and the lookup tried again: after a crash
	 * during a compaction a key may have a second copy. */
	while (store__find(s, key, &g, &i)) {
		rv = store__read(s, g, i, out);
		if (rv == 0) {
			out->ahead = window_hit(s, g, &g->ents[i]);
			if (out->ahead) {
				s->st.readahead_hits++;
			}
			s->st.gets++;
			return 0;
		}
		if (rv != STORE_ECORRUPT) {
			return rv;
		}
		store__bad_record(s, g, i);
		corrupt = true;
	}
	if (corrupt) {
		return STORE_ECORRUPT; /* errmsg: the report above */
	}
	return store__err(s, STORE_ENOTFOUND, "no record of key %" PRIu64, key);
}

/* The segment that follows g in its stream's key order, or NULL. */
static struct store_seg *next_seg(const struct store *s,
				  const struct store_seg *g)
{
	bool fill = (g->kind & STORE__KIND_FILL) != 0;
	const struct store_list *l = fill ? &s->fill_list : &s->main_list;
	long i;

	if (g == s->active || g == s->fill) {
		return NULL;
	}
	i = list_index(l, g);
	if (i < 0) {
		return NULL;
	}
	if ((size_t)i + 1 < l->n) {
		return l->v[i + 1];
	}
	return fill ? s->fill : s->active;
}

void store_prefetch(struct store *s, uint64_t key, uint64_t bytes)
{
	struct store_seg *g;
	uint32_t i;
	uint64_t off;

	if (!store__find(s, key, &g, &i)) {
		return;
	}
	off = g->ents[i].off;
	/* Bounded by the bytes asked for: a few segments at most. */
	while (g != NULL && bytes > 0) {
		uint64_t end =
			g->size -
			(g->sealed ? STORE__REC_HDR + STORE__SEAL_BODY : 0);
		uint64_t n = end > off ? end - off : 0;
		struct store_window *w;
		if (n > bytes) {
			n = bytes;
		}
		if (n > 0) {
			(void)posix_fadvise(g->fd, (off_t)off, (off_t)n,
					    POSIX_FADV_WILLNEED);
			w = &s->windows[s->next_window++ % STORE__WINDOWS];
			w->seg = g;
			w->off = off;
			w->end = off + n;
			bytes -= n;
		}
		g = next_seg(s, g);
		off = STORE__SEG_HDR;
	}
}

/* ---- sync, stats ---- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int store_sync(struct store *s)
{
	double t0 = now_ms();
	int rv;

	/* Each segment's data first, then its index file (renamed only once
	 * the records it points to are on disk), then the directory. A
	 * failure keeps what is left in the list for the next sync. */
	while (s->ndirty > 0) {
		struct store_seg *g = s->dirty[s->ndirty - 1];
		rv = store__fsync(s, g->fd, true);
		if (rv != 0) {
			char path[STORE__PATH_MAX];
			store__path(s, g->id, ".seg", path, sizeof path);
			return store__syserr(s, rv, "fdatasync %s", path);
		}
		if (g->idx_pending && g->sealed && !g->compacting) {
			rv = store__idx_commit(s, g);
			if (rv != 0) {
				return rv;
			}
		}
		g->dirty = false;
		s->ndirty--;
	}
	if (s->dir_dirty) {
		rv = store__fsync(s, s->dirfd, false);
		if (rv != 0) {
			return store__syserr(s, rv, "fsync %s", s->dir);
		}
		s->dir_dirty = false;
	}
	s->st.syncs++;
	s->st.last_sync_ms = now_ms() - t0;
	return 0;
}

void store_writeback(struct store *s)
{
	size_t i;
	for (i = 0; i < s->ndirty; i++) {
		(void)sync_file_range(s->dirty[i]->fd, 0, 0,
				      SYNC_FILE_RANGE_WRITE);
	}
}

int store_sync_data(struct store *s)
{
	size_t i;
	int rv;

	for (i = 0; i < s->ndirty; i++) {
		rv = store__fsync(s, s->dirty[i]->fd, true);
		if (rv != 0) {
			char path[STORE__PATH_MAX];
			store__path(s, s->dirty[i]->id, ".seg", path,
				    sizeof path);
			return store__syserr(s, rv, "fdatasync %s", path);
		}
	}
	if (s->dir_dirty) {
		rv = store__fsync(s, s->dirfd, false);
		if (rv != 0) {
			return store__syserr(s, rv, "fsync %s", s->dir);
		}
	}
	return 0;
}

static void seg_stats(const struct store_seg *g, struct store_stats *o)
{
	if (g == NULL) {
		return;
	}
	o->disk_bytes += g->size + g->idx_bytes;
	o->live_bytes += g->live_bytes;
	o->live_records += g->live_records;
	o->records += g->n;
	o->segments++;
	o->index_bytes += (uint64_t)g->cap * sizeof g->ents[0] + sizeof *g;
}

void store_stats(const struct store *s, struct store_stats *out)
{
	const struct store_list *lists[2] = {&s->main_list, &s->fill_list};

	*out = s->st;
	out->disk_bytes = out->live_bytes = out->live_records = 0;
	out->records = out->segments = out->index_bytes = 0;
	seg_stats(s->active, out);
	seg_stats(s->fill, out);
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < lists[k]->n; i++) {
			seg_stats(lists[k]->v[i], out);
		}
		out->index_bytes += lists[k]->cap * (sizeof(void *) + 8);
	}
	for (size_t i = 0; i < s->ndoomed; i++) {
		out->disk_bytes += s->doomed[i].size;
	}
	out->missing = s->missing.n;
	out->index_bytes += s->missing.cap * 8 + s->missing_sorted_cap * 8;
}
