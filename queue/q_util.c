/* Small shared pieces of queue/: allocation through the state's allocator
 * (with byte accounting for memory reports), names, hashing, error strings,
 * and the dedup table. */
#include <stdlib.h>
#include <string.h>

#include "q_int.h"

static const char *const errors[Q_ECODES_COUNT] = {
	[Q_OK] = "success",
	[Q_ENOMEM] = "out of memory",
	[Q_ENOTFOUND] = "no such queue, topic or subscription",
	[Q_EEXIST] = "already exists with different settings",
	[Q_EFULL] = "queue is full (max length or max bytes reached)",
	[Q_EINVAL] = "invalid argument",
	[Q_ENOCONSUMER] = "no such consumer",
	[Q_EUNKNOWNTAG] = "delivery tag not held by this consumer",
	[Q_ECORRUPT] = "malformed or corrupt state",
	[Q_ETOOBIG] = "message body too large",
	[Q_ETOPICQUEUE] = "not allowed on a topic subscription queue",
};

const char *q_strerror(int code)
{
	if (code < 0 || code >= Q_ECODES_COUNT || errors[code] == NULL) {
		return "unknown error";
	}
	return errors[code];
}

void q_settings_default(struct q_settings *st)
{
	memset(st, 0, sizeof *st);
	st->ack_timeout_ms = 30000;
	st->max_deliveries = 20;
	st->overflow = Q_OVERFLOW_REJECT_PUBLISH;
	st->dedup_window_ms = 120000;
}

bool q_name_valid(const char *name)
{
	size_t n;
	if (name == NULL) {
		return false;
	}
	for (n = 0; name[n] != '\0'; n++) {
		unsigned char c = (unsigned char)name[n];
		if (c < 0x20 || c == 0x7f || n >= Q_NAME_MAX) {
			return false;
		}
	}
	return n > 0;
}

/* ----------------------------------------------------------------- memory
 * Every allocation goes through the state's allocator so tests can fail the
 * Nth one. Sizes are passed back on free so alloc_bytes stays exact without
 * a header per block. */

void *q__malloc(struct q_state *s, size_t size)
{
	void *p = s->alloc.malloc(s->alloc.data, size);
	if (p != NULL) {
		s->alloc_bytes += size;
	}
	return p;
}

void *q__realloc(struct q_state *s, void *ptr, size_t old_size, size_t size)
{
	void *p = s->alloc.realloc(s->alloc.data, ptr, size);
	if (p != NULL) {
		s->alloc_bytes = s->alloc_bytes - old_size + size;
	}
	return p;
}

void q__free(struct q_state *s, void *ptr, size_t size)
{
	if (ptr == NULL) {
		return;
	}
	s->alloc_bytes -= size;
	s->alloc.free(s->alloc.data, ptr);
}

char *q__strdup(struct q_state *s, const char *str)
{
	size_t n = strlen(str) + 1;
	char *p = q__malloc(s, n);
	if (p != NULL) {
		memcpy(p, str, n);
	}
	return p;
}

void q__strfree(struct q_state *s, char *str)
{
	if (str != NULL) {
		q__free(s, str, strlen(str) + 1);
	}
}

uint64_t q__hash(uint64_t seed, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	size_t i;
	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	/* Avalanche (murmur3 fmix64) so the low bits used as bucket index
	 * depend on every input byte. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

/* ------------------------------------------------------------------ dedup
 * A chained hash table for lookups plus a FIFO for expiry. Entries are
 * inserted with the state clock, which never goes back, so the FIFO is in
 * time order and expiry only ever looks at its head. */

void q__dedup_init(struct q_dedup *d)
{
	d->buckets = NULL;
	d->nbuckets = 0;
	d->count = 0;
	q__list_init(&d->fifo);
}

static void dd_free(struct q_state *s, struct q_dd *e)
{
	q__free(s, e, sizeof *e + e->len);
	s->n_dd--;
}

void q__dedup_clear(struct q_state *s, struct q_dedup *d)
{
	while (!q__list_empty(&d->fifo)) {
		struct q_dd *e =
			Q__CONTAINER_OF(d->fifo.next, struct q_dd, fifo);
		q__list_remove(&e->fifo);
		dd_free(s, e);
	}
	q__free(s, d->buckets, d->nbuckets * sizeof *d->buckets);
	q__dedup_init(d);
}

struct q_dd *q__dedup_find(const struct q_state *s, const struct q_dedup *d,
			   const void *id, size_t len, uint64_t window)
{
	struct q_dd *e;
	if (d->nbuckets == 0 || window == 0) {
		return NULL;
	}
	e = d->buckets[q__hash(s->hash_seed, id, len) & (d->nbuckets - 1)];
	for (; e != NULL; e = e->hnext) {
		if (e->len == len && memcmp(e->id, id, len) == 0) {
			if (s->now - e->at_ms < window) {
				return e;
			}
			return NULL;
		}
	}
	return NULL;
}

struct q_dd *q__dedup_new(struct q_state *s, const void *id, size_t len)
{
	struct q_dd *e = q__malloc(s, sizeof *e + len);
	if (e == NULL) {
		return NULL;
	}
	memset(e, 0, sizeof *e);
	e->len = (uint32_t)len;
	memcpy(e->id, id, len);
	return e;
}

static void dd_unhash(const struct q_state *s, struct q_dedup *d,
		      struct q_dd *e)
{
	struct q_dd **pp = &d->buckets[q__hash(s->hash_seed, e->id, e->len) &
				       (d->nbuckets - 1)];
	while (*pp != e) {
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
}

int q__dedup_grow(struct q_state *s, struct q_dedup *d)
{
	uint64_t n, i;
	struct q_dd **b;
	struct q_link *l;
	if (d->count + 1 <= d->nbuckets) {
		return 0;
	}
	n = d->nbuckets ? d->nbuckets * 2 : 16;
	b = q__malloc(s, n * sizeof *b);
	if (b == NULL) {
		/* A table that is too small only makes chains longer and
		 * never changes a result; no table at all is an error. */
		return d->nbuckets > 0 ? 0 : Q_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		b[i] = NULL;
	}
	for (l = d->fifo.next; l != &d->fifo; l = l->next) {
		struct q_dd *e = Q__CONTAINER_OF(l, struct q_dd, fifo);
		uint64_t h = q__hash(s->hash_seed, e->id, e->len) & (n - 1);
		e->hnext = b[h];
		b[h] = e;
	}
	q__free(s, d->buckets, d->nbuckets * sizeof *d->buckets);
	d->buckets = b;
	d->nbuckets = n;
	return 0;
}

void q__dedup_insert(struct q_state *s, struct q_dedup *d, struct q_dd *e,
		     q_seq seq, uint64_t at_ms)
{
	uint64_t h;
	struct q_dd *old;
	/* A stale entry with the same id (outside the window) is replaced so
	 * each id appears once. */
	if (d->nbuckets > 0) {
		h = q__hash(s->hash_seed, e->id, e->len) & (d->nbuckets - 1);
		for (old = d->buckets[h]; old != NULL; old = old->hnext) {
			if (old->len == e->len &&
			    memcmp(old->id, e->id, e->len) == 0) {
				break;
			}
		}
		if (old != NULL) {
			dd_unhash(s, d, old);
			q__list_remove(&old->fifo);
			d->count--;
			dd_free(s, old);
		}
	}
	h = q__hash(s->hash_seed, e->id, e->len) & (d->nbuckets - 1);
	e->seq = seq;
	e->at_ms = at_ms;
	e->hnext = d->buckets[h];
	d->buckets[h] = e;
	q__list_append(&d->fifo, &e->fifo);
	d->count++;
	s->n_dd++;
}

void q__dedup_expire(struct q_state *s, struct q_dedup *d, uint64_t window)
{
	while (!q__list_empty(&d->fifo)) {
		struct q_dd *e =
			Q__CONTAINER_OF(d->fifo.next, struct q_dd, fifo);
		if (window != 0 && s->now - e->at_ms < window) {
			break;
		}
		dd_unhash(s, d, e);
		q__list_remove(&e->fifo);
		d->count--;
		dd_free(s, e);
	}
}
