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
	[Q_EIO] = "the body store failed",
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
		s->alloc_blocks++;
	}
	return p;
}

void *q__realloc(struct q_state *s, void *ptr, size_t old_size, size_t size)
{
	void *p = s->alloc.realloc(s->alloc.data, ptr, size);
	if (p != NULL) {
		s->alloc_bytes = s->alloc_bytes - old_size + size;
		s->alloc_blocks += ptr == NULL;
	}
	return p;
}

void q__free(struct q_state *s, void *ptr, size_t size)
{
	if (ptr == NULL) {
		return;
	}
	s->alloc_bytes -= size;
	s->alloc_blocks--;
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
 * Entries are inserted with the state clock, which never goes back, so the
 * FIFO is in time order and expiry only ever looks at its head. The table is
 * described with struct q_dedup (q_int.h). */

/* Old-table home positions moved per insert while resizing: the new table
 * is twice as big and a resize starts at half load, so the move is done
 * long before the new table is half full. */
#define DD_MOVE_PER_INSERT 4

void q__dedup_init(struct q_dedup *d)
{
	d->slots[0] = d->slots[1] = NULL;
	d->nslots[0] = d->nslots[1] = 0;
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
	return d->slots[1] != NULL;
}

static uint32_t dd_hash(const struct q_state *s, const void *id, size_t len)
{
	return (uint32_t)q__hash(s->hash_seed, id, len);
}

/* Whether table t may hold an entry of hash h (see struct q_dedup). */
static bool dd_may_hold(const struct q_dedup *d, int t, uint32_t h)
{
	if (d->slots[t] == NULL) {
		return false;
	}
	return t == 1 || !dd_resizing(d) ||
	       (h & (d->nslots[0] - 1)) >= d->moved;
}

/* The index of entry e in table t, or nslots[t] if it is not there. */
static uint64_t dd_index(const struct q_dedup *d, int t, const struct q_dd *e)
{
	uint64_t mask = d->nslots[t] - 1, i = e->hash & mask, n;
	for (n = 0; n <= mask; n++, i = (i + 1) & mask) {
		if (d->slots[t][i].e == e) {
			return i;
		}
		if (d->slots[t][i].e == NULL) {
			break;
		}
	}
	return d->nslots[t];
}

/* Removes slot i of table t, shifting later entries of its cluster back so
 * that every entry stays reachable from its home. */
static void dd_remove_at(struct q_dedup *d, int t, uint64_t i)
{
	struct q_dd_slot *sl = d->slots[t];
	uint64_t mask = d->nslots[t] - 1, j = i, k = i;
	for (;;) {
		uint64_t home;
		k = (k + 1) & mask;
		if (sl[k].e == NULL) {
			break;
		}
		home = sl[k].hash & mask;
		/* sl[k] may fill the hole at j unless its home lies
		 * cyclically in (j, k]. */
		if (j <= k ? (home <= j || home > k)
			   : (home <= j && home > k)) {
			sl[j] = sl[k];
			j = k;
		}
	}
	sl[j].e = NULL;
	sl[j].hash = 0;
}

/* Puts e (whose hash is h: the caller passes it so that moving an entry
 * never reads the entry itself, a cache miss per id) into table t. */
static void dd_put(struct q_dedup *d, int t, struct q_dd *e, uint32_t h)
{
	uint64_t mask = d->nslots[t] - 1, i = h & mask;
	while (d->slots[t][i].e != NULL) {
		i = (i + 1) & mask;
	}
	d->slots[t][i].e = e;
	d->slots[t][i].hash = h;
}

bool q__dedup_has(const struct q_dedup *d, const struct q_dd *e)
{
	int t;
	for (t = 1; t >= 0; t--) {
		if (dd_may_hold(d, t, e->hash) &&
		    dd_index(d, t, e) < d->nslots[t]) {
			return true;
		}
	}
	return false;
}

static struct q_dd *dd_lookup(const struct q_dedup *d, uint32_t h,
			      const void *id, size_t len)
{
	int t;
	for (t = 1; t >= 0; t--) {
		uint64_t mask, i, n;
		if (!dd_may_hold(d, t, h)) {
			continue;
		}
		mask = d->nslots[t] - 1;
		i = h & mask;
		for (n = 0; n <= mask; n++, i = (i + 1) & mask) {
			const struct q_dd_slot *sl = &d->slots[t][i];
			if (sl->e == NULL) {
				break;
			}
			if (sl->hash == h && sl->e->len == len &&
			    memcmp(sl->e->id, id, len) == 0) {
				return sl->e;
			}
		}
	}
	return NULL;
}

struct q_dd *q__dedup_find(const struct q_state *s, const struct q_dedup *d,
			   const void *id, size_t len, uint64_t window)
{
	struct q_dd *e;
	if (d->nslots[0] == 0 || window == 0) {
		return NULL;
	}
	e = dd_lookup(d, dd_hash(s, id, len), id, len);
	if (e != NULL && s->now - e->at_ms < window) {
		return e;
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

void q__dedup_discard(struct q_state *s, struct q_dd *e)
{
	q__free(s, e, sizeof *e + e->len);
}

/* Takes e out of whichever table holds it. */
static void dd_unlink(struct q_dedup *d, const struct q_dd *e)
{
	int t;
	for (t = 1; t >= 0; t--) {
		uint64_t i;
		if (!dd_may_hold(d, t, e->hash)) {
			continue;
		}
		i = dd_index(d, t, e);
		if (i < d->nslots[t]) {
			dd_remove_at(d, t, i);
			return;
		}
	}
}

/* Moves the entries of up to n home positions of the old table into the
 * new one; frees the old table when all are moved. */
static void dd_move(struct q_state *s, struct q_dedup *d, unsigned n)
{
	uint64_t mask = d->nslots[0] - 1;
	while (n-- > 0 && d->moved < d->nslots[0]) {
		uint64_t home = d->moved, i = home;
		/* Entries with this home sit in the cluster from it on; a
		 * removal shifts the next one into i, so look at i again. */
		while (d->slots[0][i].e != NULL) {
			if ((d->slots[0][i].hash & mask) == home) {
				struct q_dd_slot sl = d->slots[0][i];
				dd_remove_at(d, 0, i);
				dd_put(d, 1, sl.e, sl.hash);
			} else {
				i = (i + 1) & mask;
			}
		}
		d->moved++;
	}
	if (d->moved == d->nslots[0]) {
		q__free(s, d->slots[0], d->nslots[0] * sizeof *d->slots[0]);
		d->slots[0] = d->slots[1];
		d->nslots[0] = d->nslots[1];
		d->slots[1] = NULL;
		d->nslots[1] = 0;
		d->moved = 0;
	}
}

void q__dedup_clear(struct q_state *s, struct q_dedup *d)
{
	while (!q__list_empty(&d->fifo)) {
		struct q_dd *e =
			Q__CONTAINER_OF(d->fifo.next, struct q_dd, fifo);
		q__list_remove(&e->fifo);
		dd_free(s, e);
	}
	q__free(s, d->slots[0], d->nslots[0] * sizeof *d->slots[0]);
	q__free(s, d->slots[1], d->nslots[1] * sizeof *d->slots[1]);
	q__dedup_init(d);
}

int q__dedup_grow(struct q_state *s, struct q_dedup *d)
{
	uint64_t n;
	struct q_dd_slot *t;
	if (dd_resizing(d)) {
		/* The new table is at most 3/8 full: see DD_MOVE_PER_INSERT. */
		return 0;
	}
	if (d->nslots[0] != 0 && d->count + 1 <= d->nslots[0] / 2) {
		return 0;
	}
	n = d->nslots[0] ? d->nslots[0] * 2 : 32;
	t = q__malloc(s, n * sizeof *t);
	if (t == NULL) {
		/* A full table would loop forever in dd_put: refuse the
		 * insert unless there is still room (a fuller table is only
		 * slower). */
		return d->nslots[0] != 0 && d->count + 1 < d->nslots[0]
			       ? 0
			       : Q_ENOMEM;
	}
	memset(t, 0, n * sizeof *t);
	if (d->nslots[0] == 0) {
		d->slots[0] = t;
		d->nslots[0] = n;
		return 0;
	}
	d->slots[1] = t;
	d->nslots[1] = n;
	d->moved = 0;
	return 0;
}

void q__dedup_insert(struct q_state *s, struct q_dedup *d, struct q_dd *e,
		     q_seq seq, uint64_t at_ms)
{
	struct q_dd *old;
	if (dd_resizing(d)) {
		dd_move(s, d, DD_MOVE_PER_INSERT);
	}
	/* A stale entry with the same id (outside the window) is replaced so
	 * each id appears once. */
	old = dd_lookup(d, e->hash, e->id, e->len);
	if (old != NULL) {
		dd_unlink(d, old);
		q__list_remove(&old->fifo);
		d->count--;
		dd_free(s, old);
	}
	e->seq = seq;
	e->at_ms = at_ms;
	dd_put(d, dd_resizing(d) ? 1 : 0, e, e->hash);
	q__list_append(&d->fifo, &e->fifo);
	d->count++;
	s->n_dd++;
}

int q__dedup_presize(struct q_state *s, struct q_dedup *d, uint64_t n)
{
	uint64_t size = 32;
	assert(d->nslots[0] == 0 && d->count == 0);
	/* What q__dedup_grow() would have reached: at most half full. */
	while (size / 2 < n) {
		if (size > UINT64_MAX / 2 / sizeof *d->slots[0]) {
			return Q_ENOMEM;
		}
		size *= 2;
	}
	d->slots[0] = q__malloc(s, size * sizeof *d->slots[0]);
	if (d->slots[0] == NULL) {
		return Q_ENOMEM;
	}
	memset(d->slots[0], 0, size * sizeof *d->slots[0]);
	d->nslots[0] = size;
	return 0;
}

void q__dedup_prefetch(const struct q_dedup *d, uint32_t h)
{
	int t;
	for (t = 0; t < 2; t++) {
		if (d->slots[t] != NULL) {
			__builtin_prefetch(
				&d->slots[t][h & (d->nslots[t] - 1)]);
		}
	}
}

bool q__dedup_insert_new(struct q_state *s, struct q_dedup *d, struct q_dd *e,
			 q_seq seq, uint64_t at_ms)
{
	uint64_t mask = d->nslots[0] - 1, i = e->hash & mask;
	struct q_dd_slot *sl = d->slots[0];

	assert(!dd_resizing(d) && d->count + 1 <= d->nslots[0] / 2);
	/* One probe finds an equal id or the free slot. */
	for (; sl[i].e != NULL; i = (i + 1) & mask) {
		if (sl[i].hash == e->hash && sl[i].e->len == e->len &&
		    memcmp(sl[i].e->id, e->id, e->len) == 0) {
			return false;
		}
	}
	sl[i].e = e;
	sl[i].hash = e->hash;
	e->seq = seq;
	e->at_ms = at_ms;
	q__list_append(&d->fifo, &e->fifo);
	d->count++;
	s->n_dd++;
	return true;
}

void q__dedup_expire(struct q_state *s, struct q_dedup *d, uint64_t window)
{
	while (!q__list_empty(&d->fifo)) {
		struct q_dd *e =
			Q__CONTAINER_OF(d->fifo.next, struct q_dd, fifo);
		if (window != 0 && s->now - e->at_ms < window) {
			break;
		}
		dd_unlink(d, e);
		q__list_remove(&e->fifo);
		d->count--;
		dd_free(s, e);
	}
}
