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
 * time order and expiry only ever looks at its head. Resizing is
 * incremental (q_int.h, struct q_dedup). */

/* Old-table buckets moved per insert while resizing: with the new table
 * twice as big and a resize starting at a load of 1, the move is done
 * long before the new table fills. */
#define DD_MOVE_PER_INSERT 4

void q__dedup_init(struct q_dedup *d)
{
	d->buckets[0] = d->buckets[1] = NULL;
	d->nbuckets[0] = d->nbuckets[1] = 0;
	d->moved = 0;
	d->count = 0;
	q__list_init(&d->fifo);
}

static void dd_free(struct q_state *s, struct q_dd *e)
{
	q__free(s, e, sizeof *e + e->len);
	s->n_dd--;
}

static bool dd_resizing(const struct q_dedup *d)
{
	return d->buckets[1] != NULL;
}

static uint32_t dd_hash(const struct q_state *s, const void *id, size_t len)
{
	return (uint32_t)q__hash(s->hash_seed, id, len);
}

/* The chain head where an entry with hash h lives now. */
static struct q_dd **dd_slot(const struct q_dedup *d, uint32_t h)
{
	uint64_t i = h & (d->nbuckets[0] - 1);
	if (dd_resizing(d) && i < d->moved) {
		return &d->buckets[1][h & (d->nbuckets[1] - 1)];
	}
	return &d->buckets[0][i];
}

void q__dedup_clear(struct q_state *s, struct q_dedup *d)
{
	while (!q__list_empty(&d->fifo)) {
		struct q_dd *e =
			Q__CONTAINER_OF(d->fifo.next, struct q_dd, fifo);
		q__list_remove(&e->fifo);
		dd_free(s, e);
	}
	q__free(s, d->buckets[0], d->nbuckets[0] * sizeof *d->buckets[0]);
	q__free(s, d->buckets[1], d->nbuckets[1] * sizeof *d->buckets[1]);
	q__dedup_init(d);
}

bool q__dedup_has(const struct q_dedup *d, const struct q_dd *e)
{
	const struct q_dd *h;
	if (d->nbuckets[0] == 0) {
		return false;
	}
	for (h = *dd_slot(d, e->hash); h != NULL && h != e; h = h->hnext) {
	}
	return h == e;
}

struct q_dd *q__dedup_find(const struct q_state *s, const struct q_dedup *d,
			   const void *id, size_t len, uint64_t window)
{
	struct q_dd *e;
	uint32_t h;
	if (d->nbuckets[0] == 0 || window == 0) {
		return NULL;
	}
	h = dd_hash(s, id, len);
	for (e = *dd_slot(d, h); e != NULL; e = e->hnext) {
		if (e->hash == h && e->len == len &&
		    memcmp(e->id, id, len) == 0) {
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
	e->hash = dd_hash(s, id, len);
	memcpy(e->id, id, len);
	return e;
}

static void dd_unhash(struct q_dedup *d, struct q_dd *e)
{
	struct q_dd **pp = dd_slot(d, e->hash);
	while (*pp != e) {
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
}

/* Moves up to n buckets of the old table into the new one; frees the old
 * table when it is empty. */
static void dd_move(struct q_state *s, struct q_dedup *d, unsigned n)
{
	while (n-- > 0 && d->moved < d->nbuckets[0]) {
		struct q_dd *e = d->buckets[0][d->moved];
		d->buckets[0][d->moved++] = NULL;
		while (e != NULL) {
			struct q_dd *next = e->hnext;
			struct q_dd **b =
				&d->buckets[1][e->hash & (d->nbuckets[1] - 1)];
			e->hnext = *b;
			*b = e;
			e = next;
		}
	}
	if (d->moved == d->nbuckets[0]) {
		q__free(s, d->buckets[0],
			d->nbuckets[0] * sizeof *d->buckets[0]);
		d->buckets[0] = d->buckets[1];
		d->nbuckets[0] = d->nbuckets[1];
		d->buckets[1] = NULL;
		d->nbuckets[1] = 0;
		d->moved = 0;
	}
}

int q__dedup_grow(struct q_state *s, struct q_dedup *d)
{
	uint64_t n, i;
	struct q_dd **b;
	if (dd_resizing(d) || d->count + 1 <= d->nbuckets[0]) {
		return 0;
	}
	n = d->nbuckets[0] ? d->nbuckets[0] * 2 : 16;
	b = q__malloc(s, n * sizeof *b);
	if (b == NULL) {
		/* A table that is too small only makes chains longer and
		 * never changes a result; no table at all is an error. */
		return d->nbuckets[0] > 0 ? 0 : Q_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		b[i] = NULL;
	}
	if (d->nbuckets[0] == 0) {
		d->buckets[0] = b;
		d->nbuckets[0] = n;
		return 0;
	}
	d->buckets[1] = b;
	d->nbuckets[1] = n;
	d->moved = 0;
	return 0;
}

void q__dedup_insert(struct q_state *s, struct q_dedup *d, struct q_dd *e,
		     q_seq seq, uint64_t at_ms)
{
	struct q_dd **b;
	struct q_dd *old;
	if (dd_resizing(d)) {
		dd_move(s, d, DD_MOVE_PER_INSERT);
	}
	/* A stale entry with the same id (outside the window) is replaced so
	 * each id appears once. */
	for (old = *dd_slot(d, e->hash); old != NULL; old = old->hnext) {
		if (old->hash == e->hash && old->len == e->len &&
		    memcmp(old->id, e->id, e->len) == 0) {
			break;
		}
	}
	if (old != NULL) {
		dd_unhash(d, old);
		q__list_remove(&old->fifo);
		d->count--;
		dd_free(s, old);
	}
	b = dd_slot(d, e->hash);
	e->seq = seq;
	e->at_ms = at_ms;
	e->hnext = *b;
	*b = e;
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
		dd_unhash(d, e);
		q__list_remove(&e->fifo);
		d->count--;
		dd_free(s, e);
	}
}
