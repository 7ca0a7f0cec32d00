/* Garbage collection: deleting sealed segments whose records are all dead,
 * and compacting sealed segments whose records are mostly dead, a budget of
 * bytes at a time (the loop thread calls store_gc() from an idle handle).
 *
 * A compaction copies the records to keep of a run of neighbouring
 * segments of one list (so the output's key range overlaps no other
 * segment of the main list) into <id>.seg.tmp, seals it, fdatasyncs it,
 * fsyncs and renames its index file, renames it to <id>.seg, fsyncs the
 * directory, and only then unlinks the sources. A crash before the rename
 * leaves a .tmp file that store_open() removes; after it, the records are
 * in two files until the sources are gone, which readers do not mind.
 *
 * Which records are kept: those claimed when the copy cursor reaches them,
 * and those dropped since the compaction started (a drop after the gc
 * token must survive: the KEEP bit marks them). A record claimed again
 * after the cursor passed it (a snapshot install claims old keys) is
 * copied at the end from the `late` list. Behind the cursor, KEEP means
 * "copied". The sources stay in the lists and serve reads until the
 * output replaces them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"

/* What taking a dead segment out (a rename, an unlink of its index file)
 * counts against the budget; its truncation counts apart. */
#define DELETE_COST (64u * 1024u)
/* The compaction's output buffer: one write per MiB copied. */
#define WBUF_BYTES (1024u * 1024u)

static bool deletable(const struct store_seg *g, uint64_t token)
{
	return g->sealed && !g->compacting && g->live_records == 0 &&
	       g->drop_epoch <= token;
}

/* At least half of the segment's record bytes are dead. */
static bool compactable(const struct store_seg *g, uint64_t token)
{
	return g->sealed && !g->compacting && g->live_records > 0 &&
	       g->drop_epoch <= token &&
	       g->live_bytes * 2 <= g->size - STORE__SEG_HDR;
}

static struct store_list *list_of(struct store *s, const struct store_seg *g)
{
	return (g->kind & STORE__KIND_FILL) ? &s->fill_list : &s->main_list;
}

static void cpt_free(struct store_compaction *c)
{
	free(c->src);
	free(c->src_first);
	free(c->wbuf);
	free(c->late);
	memset(c, 0, sizeof *c);
}

void store__compaction_abort(struct store *s)
{
	struct store_compaction *c = &s->cpt;
	char path[STORE__PATH_MAX];

	if (!c->active) {
		return;
	}
	for (size_t k = 0; k < c->nsrc; k++) {
		struct store_seg *g = c->src[k];
		g->compacting = false;
		for (uint32_t i = 0; i < g->n; i++) {
			g->ents[i].lenbits &= ~STORE__KEEP;
		}
	}
	if (c->out != NULL) {
		store__dirty_forget(s, c->out);
		store__path(s, c->out->id, ".seg.tmp", path, sizeof path);
		(void)unlink(path);
		store__path(s, c->out->id, ".idx.tmp", path, sizeof path);
		(void)unlink(path);
		store__path(s, c->out->id, ".idx", path, sizeof path);
		(void)unlink(path);
		store__seg_free(c->out);
	}
	cpt_free(c);
}

static int late_push(struct store_compaction *c, uint64_t key)
{
	if (c->nlate == c->late_cap) {
		size_t cap = c->late_cap ? c->late_cap * 2 : 64;
		uint64_t *v = realloc(c->late, cap * sizeof *v);
		if (v == NULL) {
			return STORE_ENOMEM;
		}
		c->late = v;
		c->late_cap = cap;
	}
	c->late[c->nlate++] = key;
	return 0;
}

void store__compaction_touch(struct store *s, struct store_seg *g, uint32_t i,
			     bool claimed)
{
	struct store_compaction *c = &s->cpt;
	struct store__ent *e = &g->ents[i];
	size_t k = 0;
	bool passed;

	while (k < c->nsrc && c->src[k] != g) {
		k++;
	}
	if (k == c->nsrc) {
		return;
	}
	passed = k < c->cur_src || (k == c->cur_src && i < c->cur_ent);
	if (!passed) {
		/* Claimed: the cursor sees the live bit. Dropped after the
		 * compaction started: keep it anyway. */
		if (!claimed) {
			e->lenbits |= STORE__KEEP;
		}
		return;
	}
	/* Behind the cursor, KEEP means copied. A record claimed again that
	 * was not copied goes to the late list; if that list cannot grow,
	 * give the compaction up rather than lose the record. */
	if (claimed && (e->lenbits & STORE__KEEP) == 0) {
		if (late_push(c, e->key) != 0) {
			store__compaction_abort(s);
			return;
		}
		e->lenbits |= STORE__KEEP;
	}
}

static int plan(struct store *s, uint64_t token)
{
	struct store_list *lists[2] = {&s->main_list, &s->fill_list};
	struct store_compaction *c = &s->cpt;

	for (int k = 0; k < 2; k++) {
		struct store_list *l = lists[k];
		for (size_t j = 0; j < l->n; j++) {
			size_t m = j;
			uint64_t live, records = 0;
			struct store_seg *out;
			int rv;

			if (!compactable(l->v[j], token)) {
				continue;
			}
			/* Neighbours in key order whose live records fit in
			 * one segment. */
			live = l->v[j]->live_bytes;
			while (m + 1 < l->n &&
			       compactable(l->v[m + 1], token) &&
			       live + l->v[m + 1]->live_bytes <=
				       s->segment_bytes) {
				m++;
				live += l->v[m]->live_bytes;
			}
			c->nsrc = m - j + 1;
			c->src = malloc(c->nsrc * sizeof *c->src);
			c->src_first =
				malloc((c->nsrc + 1) * sizeof *c->src_first);
			c->wbuf = malloc(WBUF_BYTES);
			out = store__seg_new();
			if (c->src == NULL || c->src_first == NULL ||
			    c->wbuf == NULL || out == NULL) {
				store__seg_free(out);
				cpt_free(c);
				return store__err(s, STORE_ENOMEM,
						  "out of memory");
			}
			c->wcap = WBUF_BYTES;
			for (size_t q = 0; q < c->nsrc; q++) {
				c->src[q] = l->v[j + q];
				records += l->v[j + q]->live_records;
			}
			if (records > 0 &&
			    store__seg_reserve(out, (uint32_t)records) != 0) {
				store__seg_free(out);
				cpt_free(c);
				return store__err(s, STORE_ENOMEM,
						  "out of memory");
			}
			rv = store__seg_create(
				s, out, c->src[0]->kind | STORE__KIND_COMPACTED,
				".seg.tmp");
			if (rv != 0) {
				store__seg_free(out);
				cpt_free(c);
				return rv;
			}
			for (size_t q = 0; q < c->nsrc; q++) {
				c->src[q]->compacting = true;
			}
			c->out = out;
			c->token = token;
			c->src_first[0] = 0;
			c->active = true;
			return 0;
		}
	}
	return 0;
}

static int flush(struct store *s)
{
	struct store_compaction *c = &s->cpt;
	int rv;

	if (c->wlen == 0) {
		return 0;
	}
	rv = store__pwrite(s, c->out->fd, c->wbuf, c->wlen, c->out->size);
	if (rv != 0) {
		char path[STORE__PATH_MAX];
		store__path(s, c->out->id, ".seg.tmp", path, sizeof path);
		return store__syserr(s, rv, "write %s", path);
	}
	c->out->size += c->wlen;
	c->wlen = 0;
	return 0;
}

/* Copies entry i of source g to the output: 0, -1 if the record was bad
 * (reported and forgotten: entry i is then the next one), or an error. */
static int copy_one(struct store *s, struct store_seg *g, uint32_t i)
{
	struct store_compaction *c = &s->cpt;
	struct store__rec_hdr h;
	struct store_rec r;
	struct store__ent e;
	const unsigned char *rec;
	uint32_t len = store__ent_len(&g->ents[i]);
	int rv;

	rv = store__read(s, g, i, &r);
	if (rv == STORE_ECORRUPT) {
		store__bad_record(s, g, i);
		return -1;
	}
	if (rv != 0) {
		return rv;
	}
	if (store__seg_reserve(c->out, 1) != 0) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	if (c->wcap - c->wlen < len) {
		rv = flush(s);
		if (rv != 0) {
			return rv;
		}
		if (c->wcap < len) {
			unsigned char *b = realloc(c->wbuf, len);
			if (b == NULL) {
				return store__err(s, STORE_ENOMEM,
						  "out of memory");
			}
			c->wbuf = b;
			c->wcap = len;
		}
	}
	/* The header again, under the output's salt; the data is the same.
	 * The record read is in the read window or the read buffer: r's
	 * pointers say where (its header is just before its id). */
	rec = (const unsigned char *)r.id - STORE__REC_HDR;
	(void)store__rec_hdr_decode(rec, g->salt, &h);
	store__rec_hdr_encode(c->wbuf + c->wlen, &h, c->out->salt);
	memcpy(c->wbuf + c->wlen + STORE__REC_HDR, rec + STORE__REC_HDR,
	       len - STORE__REC_HDR);
	e.key = r.key;
	e.off = (uint32_t)(c->out->size + c->wlen);
	e.lenbits = len;
	c->out->ents[c->out->n++] = e;
	c->wlen += len;
	s->st.compacted_bytes += len;
	return 0;
}

static int copy(struct store *s, uint64_t budget, uint64_t *spent)
{
	struct store_compaction *c = &s->cpt;
	bool progress = false;

	while (c->cur_src < c->nsrc) {
		struct store_seg *g = c->src[c->cur_src];
		struct store__ent *e;
		int rv;

		if (progress && *spent >= budget) {
			return 0;
		}
		if (c->cur_ent >= g->n) {
			c->cur_src++;
			c->src_first[c->cur_src] = c->out->n;
			c->cur_ent = 0;
			continue;
		}
		e = &g->ents[c->cur_ent];
		*spent += sizeof *e;
		if ((e->lenbits & (STORE__LIVE | STORE__KEEP)) == 0) {
			c->cur_ent++;
			continue;
		}
		rv = copy_one(s, g, c->cur_ent);
		if (rv == -1) {
			continue;
		}
		if (rv != 0) {
			return rv;
		}
		e->lenbits |= STORE__KEEP;
		*spent += 2 * (uint64_t)store__ent_len(e);
		c->cur_ent++;
		progress = true;
	}
	return 0;
}

/* The live bit of an output entry: the source's, now. */
static void take_bit(struct store *s, struct store__ent *e,
		     const struct store_seg *src)
{
	long j = src != NULL ? store__seg_find(src, e->key) : -1;
	bool live;

	if (j >= 0) {
		live = (src->ents[j].lenbits & STORE__LIVE) != 0;
	} else {
		/* Forgotten from its source after the copy (a bad read of
		 * the source's copy): the good copy serves the claim. */
		live = store__kset_del(&s->missing, e->key);
	}
	e->lenbits = store__ent_len(e) | (live ? STORE__LIVE : 0);
}

static struct store_seg *source_of(struct store *s, uint64_t key, long *j)
{
	struct store_compaction *c = &s->cpt;
	for (size_t k = 0; k < c->nsrc; k++) {
		*j = store__seg_find(c->src[k], key);
		if (*j >= 0) {
			return c->src[k];
		}
	}
	return NULL;
}

static int finish(struct store *s)
{
	struct store_compaction *c = &s->cpt;
	struct store_seg *out = c->out;
	struct store_list *l = list_of(s, c->src[0]);
	char tmp[STORE__PATH_MAX], path[STORE__PATH_MAX];
	bool unlink_sources = true;
	int rv;

	for (size_t q = 0; q < c->nlate; q++) {
		long j;
		struct store_seg *g = source_of(s, c->late[q], &j);
		if (g != NULL) {
			rv = copy_one(s, g, (uint32_t)j);
			if (rv > 0) {
				return rv;
			}
		}
	}
	rv = flush(s);
	if (rv != 0) {
		return rv;
	}
	for (size_t k = 0; k < c->nsrc; k++) {
		for (uint32_t o = c->src_first[k]; o < c->src_first[k + 1];
		     o++) {
			take_bit(s, &out->ents[o], c->src[k]);
		}
	}
	for (uint32_t o = c->src_first[c->nsrc]; o < out->n; o++) {
		long j;
		take_bit(s, &out->ents[o], source_of(s, out->ents[o].key, &j));
	}
	/* Sources with overlapping ranges (the fill list) give an unsorted
	 * output; a key in two sources (a crash during an earlier
	 * compaction) is kept once. Counted after that. */
	store__seg_sort(out);
	store__seg_range(out);
	out->live_records = out->live_bytes = 0;
	for (uint32_t o = 0; o < out->n; o++) {
		if (out->ents[o].lenbits & STORE__LIVE) {
			out->live_records++;
			out->live_bytes += store__ent_len(&out->ents[o]);
		}
	}
	for (size_t k = 0; k < c->nsrc; k++) {
		if (c->src[k]->drop_epoch > out->drop_epoch) {
			out->drop_epoch = c->src[k]->drop_epoch;
		}
	}

	if (store__list_reserve(l, 1) != 0) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	rv = store__seg_seal(s, out);
	if (rv != 0) {
		return rv;
	}
	store__path(s, out->id, ".seg.tmp", tmp, sizeof tmp);
	rv = store__fsync(s, out->fd, true);
	if (rv != 0) {
		return store__syserr(s, rv, "fdatasync %s", tmp);
	}
	rv = store__idx_commit(s, out);
	if (rv != 0) {
		return rv;
	}
	store__path(s, out->id, ".seg", path, sizeof path);
	if (rename(tmp, path) != 0) {
		return store__syserr(s, errno, "rename %s", tmp);
	}
	/* From here on the output is in place: no way back. The sources go
	 * only once the renames are durable; if the directory cannot be
	 * synced, their files stay (copies, loaded and collected again after
	 * a restart). */
	rv = store__fsync(s, s->dirfd, false);
	if (rv != 0) {
		s->dir_dirty = true;
		unlink_sources = false;
		(void)store__syserr(s, rv, "fsync %s", s->dir);
	}
	store__dirty_forget(s, out);
	for (size_t k = 0; k < c->nsrc; k++) {
		store__list_del(l, c->src[k]);
	}
	(void)store__list_add(l, out); /* reserved: cannot fail */
	for (size_t k = 0; k < c->nsrc; k++) {
		struct store_seg *g = c->src[k];
		if (unlink_sources) {
			store__seg_delete(s, g);
		} else {
			store__windows_forget(s, g);
			store__dirty_forget(s, g);
			store__seg_free(g);
		}
	}
	s->st.compactions++;
	cpt_free(c);
	return 0;
}

static bool more(const struct store *s, uint64_t token)
{
	const struct store_list *lists[2] = {&s->main_list, &s->fill_list};

	if (s->cpt.active || s->ndoomed > 0) {
		return true;
	}
	for (int k = 0; k < 2; k++) {
		for (size_t j = 0; j < lists[k]->n; j++) {
			const struct store_seg *g = lists[k]->v[j];
			if (deletable(g, token) || compactable(g, token)) {
				return true;
			}
		}
	}
	return false;
}

/* Truncates the deleted segments a budget at a time; unlinks them once
 * empty. Truncating costs half its bytes (measured: 8 MiB in 3 ms, about
 * what copying 2 MiB costs). */
static void shrink_doomed(struct store *s, uint64_t budget, uint64_t *spent)
{
	char del[STORE__PATH_MAX];

	while (s->ndoomed > 0 && (*spent == 0 || *spent < budget)) {
		struct store_doomed *d = &s->doomed[s->ndoomed - 1];
		uint64_t step = budget > *spent ? (budget - *spent) * 2 : 0;
		uint64_t size;

		if (step < 65536) {
			step = 65536;
		}
		size = d->size > step ? d->size - step : 0;
		if (size > 0 && ftruncate(d->fd, (off_t)size) == 0) {
			*spent += (d->size - size) / 2;
			d->size = size;
			continue;
		}
		*spent += d->size / 2 + 1;
		close(d->fd);
		store__path(s, d->id, ".seg.del", del, sizeof del);
		(void)unlink(del);
		s->ndoomed--;
	}
}

int store_gc(struct store *s, uint64_t token, uint64_t budget_bytes)
{
	struct store_list *lists[2] = {&s->main_list, &s->fill_list};
	uint64_t spent = 0;
	int rv;

	if (s->cpt.active && token < s->cpt.token) {
		store__compaction_abort(s);
	}
	/* Deleting a dead segment takes it out of the index at once (cheap);
	 * its file goes away with shrink_doomed(). */
	for (int k = 0; k < 2; k++) {
		struct store_list *l = lists[k];
		for (size_t j = 0; j < l->n;) {
			struct store_seg *g = l->v[j];
			if (!deletable(g, token)) {
				j++;
				continue;
			}
			if (spent > 0 && spent >= budget_bytes) {
				return 1;
			}
			store__list_del(l, g);
			store__seg_delete(s, g);
			spent += DELETE_COST;
		}
	}
	shrink_doomed(s, budget_bytes, &spent);
	if (s->ndoomed > 0) {
		return 1;
	}
	if (!s->cpt.active) {
		if (spent >= budget_bytes && spent > 0) {
			return more(s, token) ? 1 : 0;
		}
		rv = plan(s, token);
		if (rv != 0) {
			return -rv;
		}
	}
	if (s->cpt.active) {
		rv = copy(s, budget_bytes, &spent);
		if (rv == 0 && s->cpt.cur_src < s->cpt.nsrc) {
			/* Sync what this call wrote, so the fdatasync at the
			 * end of the compaction does not wait for the whole
			 * output at once. */
			rv = flush(s);
			if (rv == 0) {
				rv = store__fsync(s, s->cpt.out->fd, true);
				if (rv != 0) {
					rv = store__syserr(s, rv,
							   "fdatasync "
							   "a compaction");
				}
			}
			if (rv == 0) {
				return 1;
			}
			store__compaction_abort(s);
			return -rv;
		}
		if (rv == 0 && spent >= budget_bytes) {
			return 1; /* finish in the next call */
		}
		if (rv == 0) {
			rv = finish(s);
		}
		if (rv != 0) {
			store__compaction_abort(s);
			return -rv;
		}
	}
	return more(s, token) ? 1 : 0;
}
