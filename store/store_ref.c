/* References: which records the state still needs (claimed, the live bit of
 * each index entry), which claimed keys the store lacks (the missing set),
 * and the marks that tell gc which drops are old enough.
 *
 * Why a drop is not forgotten at once: the record of a message acked after
 * the last snapshot is still needed if the node crashes, because the
 * snapshot on disk references it. So each segment remembers the epoch of
 * its last drop (store_mark() starts a new epoch); gc(token) removes the
 * dead records of a segment only if its last drop came before that mark.
 * That is one word per segment instead of one per record; a segment whose
 * records are still being dropped waits for a later mark. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* ---- key set ---- */

#define KSET_EMPTY UINT64_MAX

static size_t kset_slot(const struct store_kset *k, uint64_t key)
{
	/* Fibonacci hashing: keys are mostly consecutive integers. */
	return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) &
	       (k->cap - 1);
}

bool store__kset_has(const struct store_kset *k, uint64_t key)
{
	if (k->n == 0) {
		return false;
	}
	for (size_t i = kset_slot(k, key);; i = (i + 1) & (k->cap - 1)) {
		if (k->slots[i] == key) {
			return true;
		}
		if (k->slots[i] == KSET_EMPTY) {
			return false;
		}
	}
}

static void kset_put(struct store_kset *k, uint64_t key)
{
	size_t i = kset_slot(k, key);
	while (k->slots[i] != KSET_EMPTY) {
		i = (i + 1) & (k->cap - 1);
	}
	k->slots[i] = key;
	k->n++;
}

static int kset_resize(struct store_kset *k, size_t cap)
{
	struct store_kset nk = {.cap = cap};

	nk.slots = malloc(cap * sizeof *nk.slots);
	if (nk.slots == NULL) {
		return STORE_ENOMEM;
	}
	memset(nk.slots, 0xff, cap * sizeof *nk.slots);
	for (size_t i = 0; i < k->cap; i++) {
		if (k->slots[i] != KSET_EMPTY) {
			kset_put(&nk, k->slots[i]);
		}
	}
	free(k->slots);
	*k = nk;
	return 0;
}

int store__kset_add(struct store_kset *k, uint64_t key)
{
	if (store__kset_has(k, key)) {
		return 0;
	}
	/* Load factor at most 3/4. */
	if ((k->n + 1) * 4 > k->cap * 3) {
		int rv = kset_resize(k, k->cap ? k->cap * 2 : 64);
		if (rv != 0) {
			return rv;
		}
	}
	kset_put(k, key);
	return 0;
}

bool store__kset_del(struct store_kset *k, uint64_t key)
{
	size_t i, j;

	if (k->n == 0) {
		return false;
	}
	for (i = kset_slot(k, key);; i = (i + 1) & (k->cap - 1)) {
		if (k->slots[i] == key) {
			break;
		}
		if (k->slots[i] == KSET_EMPTY) {
			return false;
		}
	}
	/* Backward-shift deletion: no tombstones, so lookups stay short. */
	for (j = (i + 1) & (k->cap - 1); k->slots[j] != KSET_EMPTY;
	     j = (j + 1) & (k->cap - 1)) {
		size_t home = kset_slot(k, k->slots[j]);
		/* Move slots[j] to i unless its home lies cyclically in
		 * (i, j]. */
		bool stays = i <= j ? (i < home && home <= j)
				    : (i < home || home <= j);
		if (!stays) {
			k->slots[i] = k->slots[j];
			i = j;
		}
	}
	k->slots[i] = KSET_EMPTY;
	k->n--;
	/* The memory goes back once the set is empty (a transfer done). No
	 * shrinking before: a rehash would make one put or drop wait for the
	 * whole set. */
	if (k->n == 0) {
		store__kset_free(k);
	}
	return true;
}

void store__kset_free(struct store_kset *k)
{
	free(k->slots);
	memset(k, 0, sizeof *k);
}

/* ---- claims and drops ---- */

void store__claim_ent(struct store *s, struct store_seg *g, uint32_t i)
{
	struct store__ent *e = &g->ents[i];

	if ((e->lenbits & STORE__LIVE) != 0) {
		return;
	}
	e->lenbits |= STORE__LIVE;
	g->live_records++;
	g->live_bytes += store__ent_len(e);
	if (g->compacting) {
		store__compaction_touch(s, g, i, true);
	}
}

int store_claim(struct store *s, uint64_t key)
{
	struct store_seg *g;
	uint32_t i;
	int rv;

	if (store__find(s, key, &g, &i)) {
		store__claim_ent(s, g, i);
		return 0;
	}
	if (key == UINT64_MAX) {
		return store__err(s, STORE_EINVAL, "invalid key");
	}
	if (store__kset_has(&s->missing, key)) {
		return 0;
	}
	rv = store__kset_add(&s->missing, key);
	if (rv != 0) {
		return store__err(s, rv, "out of memory");
	}
	s->missing_sorted_stale = true;
	return 0;
}

void store_drop(struct store *s, uint64_t key)
{
	struct store_seg *g;
	struct store__ent *e;
	uint32_t i;

	if (!store__find(s, key, &g, &i)) {
		(void)store__kset_del(&s->missing, key);
		return;
	}
	e = &g->ents[i];
	if ((e->lenbits & STORE__LIVE) == 0) {
		return;
	}
	e->lenbits &= ~STORE__LIVE;
	g->live_records--;
	g->live_bytes -= store__ent_len(e);
	g->drop_epoch = s->epoch;
	if (g->compacting) {
		store__compaction_touch(s, g, i, false);
	}
}

uint64_t store_mark(struct store *s)
{
	return s->epoch++;
}

/* ---- the missing set in key order ---- */

uint64_t store_missing(const struct store *s)
{
	return s->missing.n;
}

bool store_is_missing(const struct store *s, uint64_t key)
{
	return store__kset_has(&s->missing, key);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Rebuilds the sorted view after claims added keys, or once most of its
 * keys have arrived (so a walk does not skip over them again and again). */
static int missing_sort(struct store *s)
{
	const struct store_kset *k = &s->missing;
	size_t n = 0;

	if (!s->missing_sorted_stale && k->n * 2 >= s->nmissing_sorted) {
		return 0;
	}
	if (s->missing_sorted_cap < k->n) {
		uint64_t *v = realloc(s->missing_sorted, k->n * sizeof *v);
		if (v == NULL) {
			return store__err(s, STORE_ENOMEM, "out of memory");
		}
		s->missing_sorted = v;
		s->missing_sorted_cap = k->n;
	}
	for (size_t i = 0; i < k->cap; i++) {
		if (k->slots[i] != KSET_EMPTY) {
			s->missing_sorted[n++] = k->slots[i];
		}
	}
	qsort(s->missing_sorted, n, sizeof *s->missing_sorted, u64_cmp);
	s->nmissing_sorted = n;
	s->missing_sorted_stale = false;
	return 0;
}

int store_missing_next(struct store *s, uint64_t from, uint64_t *key)
{
	size_t lo = 0, hi;
	int rv;

	if (s->missing.n == 0) {
		free(s->missing_sorted);
		s->missing_sorted = NULL;
		s->nmissing_sorted = s->missing_sorted_cap = 0;
		return STORE_ENOTFOUND;
	}
	rv = missing_sort(s);
	if (rv != 0) {
		return rv;
	}
	hi = s->nmissing_sorted;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->missing_sorted[mid] < from) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	/* The view may hold keys that arrived since it was sorted. */
	for (; lo < s->nmissing_sorted; lo++) {
		if (store__kset_has(&s->missing, s->missing_sorted[lo])) {
			*key = s->missing_sorted[lo];
			return 0;
		}
	}
	return STORE_ENOTFOUND;
}
