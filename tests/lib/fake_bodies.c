/* The fake body store of the queue tests (see fake_bodies.h). Plain C with
 * abort() on the harness's own out-of-memory, so the model test (which has
 * its own failure report) and fuzz_queue can use it as well as the
 * Criterion suites. */
#include "fake_bodies.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (p == NULL) {
		fprintf(stderr, "fake_bodies: out of memory\n");
		abort();
	}
	return p;
}

static size_t slot_of(q_seq key, size_t cap)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

/* ------------------------------------------------------------------- sets */

static size_t set_find(const struct fb_set *s, q_seq key)
{
	size_t i;
	if (s->cap == 0) {
		return SIZE_MAX;
	}
	for (i = slot_of(key, s->cap); s->keys[i] != 0;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->keys[i] == key) {
			return i;
		}
	}
	return SIZE_MAX;
}

static void set_put_raw(struct fb_set *s, q_seq key)
{
	size_t i = slot_of(key, s->cap);
	while (s->keys[i] != 0) {
		i = (i + 1) & (s->cap - 1);
	}
	s->keys[i] = key;
	s->n++;
}

static void set_add(struct fb_set *s, q_seq key)
{
	if (2 * (s->n + 1) > s->cap) {
		struct fb_set old = *s;
		size_t i;
		s->cap = old.cap ? old.cap * 2 : 64;
		s->keys = xcalloc(s->cap, sizeof *s->keys);
		s->n = 0;
		for (i = 0; i < old.cap; i++) {
			if (old.keys[i] != 0) {
				set_put_raw(s, old.keys[i]);
			}
		}
		free(old.keys);
	}
	set_put_raw(s, key);
}

static void set_del_at(struct fb_set *s, size_t i)
{
	size_t mask = s->cap - 1, j = i, k = i;
	for (;;) {
		size_t home;
		k = (k + 1) & mask;
		if (s->keys[k] == 0) {
			break;
		}
		home = slot_of(s->keys[k], s->cap);
		if (j <= k ? (home <= j || home > k)
			   : (home <= j && home > k)) {
			s->keys[j] = s->keys[k];
			j = k;
		}
	}
	s->keys[j] = 0;
	s->n--;
}

static void set_free(struct fb_set *s)
{
	free(s->keys);
	memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ store */

struct entry {
	q_seq key;
	long refs; /* states referring to it */
	uint32_t sum;
	size_t id_len, len;
	unsigned char bytes[]; /* id, then body */
};

static struct {
	struct entry **e; /* open addressing by key */
	size_t n, cap;
} store;

static size_t store_find(q_seq key)
{
	size_t i;
	if (store.cap == 0) {
		return SIZE_MAX;
	}
	for (i = slot_of(key, store.cap); store.e[i] != NULL;
	     i = (i + 1) & (store.cap - 1)) {
		if (store.e[i]->key == key) {
			return i;
		}
	}
	return SIZE_MAX;
}

static void store_put_raw(struct entry *e)
{
	size_t i = slot_of(e->key, store.cap);
	while (store.e[i] != NULL) {
		i = (i + 1) & (store.cap - 1);
	}
	store.e[i] = e;
	store.n++;
}

static void store_add(struct entry *e)
{
	if (2 * (store.n + 1) > store.cap) {
		struct entry **old = store.e;
		size_t oldcap = store.cap, i;
		store.cap = oldcap ? oldcap * 2 : 64;
		store.e = xcalloc(store.cap, sizeof *store.e);
		store.n = 0;
		for (i = 0; i < oldcap; i++) {
			if (old[i] != NULL) {
				store_put_raw(old[i]);
			}
		}
		free(old);
	}
	store_put_raw(e);
}

static void store_del_at(size_t i)
{
	size_t mask = store.cap - 1, j = i, k = i;
	free(store.e[i]);
	for (;;) {
		size_t home;
		k = (k + 1) & mask;
		if (store.e[k] == NULL) {
			break;
		}
		home = slot_of(store.e[k]->key, store.cap);
		if (j <= k ? (home <= j || home > k)
			   : (home <= j && home > k)) {
			store.e[j] = store.e[k];
			j = k;
		}
	}
	store.e[j] = NULL;
	if (--store.n == 0) {
		free(store.e);
		store.e = NULL;
		store.cap = 0;
	}
}

/* One state stops referring to key. */
static void store_unref(q_seq key)
{
	size_t i = store_find(key);
	if (i != SIZE_MAX && --store.e[i]->refs == 0) {
		store_del_at(i);
	}
}

size_t fb_store_count(void)
{
	return store.n;
}

uint32_t fb_sum(const void *id, size_t id_len, const void *body, size_t len)
{
	const unsigned char *p = id;
	uint32_t h = 2166136261u;
	size_t i;
	for (i = 0; i < id_len; i++) {
		h = (h ^ p[i]) * 16777619u;
	}
	h = (h ^ 0xffu) * 16777619u; /* "a" + "bc" differs from "ab" + "c" */
	p = body;
	for (i = 0; i < len; i++) {
		h = (h ^ p[i]) * 16777619u;
	}
	return h;
}

bool fb_lookup(q_seq key, const void **id, size_t *id_len, const void **body,
	       size_t *len, uint32_t *sum)
{
	size_t i = store_find(key);
	const struct entry *e;
	if (i == SIZE_MAX) {
		return false;
	}
	e = store.e[i];
	*id = e->bytes;
	*id_len = e->id_len;
	*body = e->bytes + e->id_len;
	*len = e->len;
	*sum = e->sum;
	return true;
}

/* -------------------------------------------------------------- the state */

__attribute__((format(printf, 2, 3))) static void violation(struct fb_state *fb,
							    const char *fmt,
							    ...)
{
	va_list ap;
	if (fb->err[0] != '\0') {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(fb->err, sizeof fb->err, fmt, ap);
	va_end(ap);
}

static int fb_put(void *data, q_seq key, const void *id, size_t id_len,
		  const void *body, size_t len, uint32_t *sum)
{
	struct fb_state *fb = data;
	size_t i;
	if (fb->put_calls++ == fb->fail_put_at) {
		return -1;
	}
	if (key == 0) {
		violation(fb, "put of key 0");
		return -1;
	}
	if (fb_live(fb, key)) {
		violation(fb, "put of key %llu, live for this state",
			  (unsigned long long)key);
		return -1;
	}
	if ((id == NULL) != (id_len == 0) || (body == NULL && len != 0)) {
		violation(fb, "put of key %llu: NULL bytes",
			  (unsigned long long)key);
	}
	*sum = fb_sum(id, id_len, body, len);
	i = store_find(key);
	if (i != SIZE_MAX) {
		struct entry *e = store.e[i];
		if (e->id_len != id_len || e->len != len || e->sum != *sum ||
		    (id_len > 0 && memcmp(e->bytes, id, id_len) != 0) ||
		    (len > 0 && memcmp(e->bytes + id_len, body, len) != 0)) {
			violation(fb,
				  "put of key %llu with other bytes than the "
				  "store holds",
				  (unsigned long long)key);
			return -1;
		}
		e->refs++;
	} else {
		struct entry *e = xcalloc(1, sizeof *e + id_len + len);
		e->key = key;
		e->refs = 1;
		e->sum = *sum;
		e->id_len = id_len;
		e->len = len;
		if (id_len > 0) {
			memcpy(e->bytes, id, id_len);
		}
		if (len > 0) {
			memcpy(e->bytes + id_len, body, len);
		}
		store_add(e);
	}
	set_add(&fb->live, key);
	fb->puts++;
	return 0;
}

static void fb_drop(void *data, q_seq key)
{
	struct fb_state *fb = data;
	size_t i = set_find(&fb->live, key);
	if (i == SIZE_MAX) {
		violation(fb, "drop of key %llu, not live for this state",
			  (unsigned long long)key);
		return;
	}
	set_del_at(&fb->live, i);
	store_unref(key);
	fb->drops++;
	fb->last_dropped = key;
}

static void fb_claim(void *data, q_seq key)
{
	struct fb_state *fb = data;
	size_t i = store_find(key);
	if (fb_live(fb, key)) {
		violation(fb, "claim of key %llu, live for this state",
			  (unsigned long long)key);
		return;
	}
	if (i == SIZE_MAX) {
		violation(fb, "claim of key %llu, which the store lacks",
			  (unsigned long long)key);
		return;
	}
	store.e[i]->refs++;
	set_add(&fb->live, key);
	fb->claims++;
}

void fb_init(struct fb_state *fb)
{
	memset(fb, 0, sizeof *fb);
	fb->vt.data = fb;
	fb->vt.put = fb_put;
	fb->vt.drop = fb_drop;
	fb->vt.claim = fb_claim;
	fb->fail_put_at = -1;
}

void fb_fini(struct fb_state *fb)
{
	size_t i;
	for (i = 0; i < fb->live.cap; i++) {
		if (fb->live.keys[i] != 0) {
			store_unref(fb->live.keys[i]);
		}
	}
	set_free(&fb->live);
}

bool fb_ok(const struct fb_state *fb)
{
	return fb->err[0] == '\0';
}

bool fb_live(const struct fb_state *fb, q_seq key)
{
	return set_find(&fb->live, key) != SIZE_MAX;
}

/* ------------------------------------------------------------------ check */

struct walk {
	const struct fb_state *fb;
	struct fb_set seen;
	char *why;
	size_t whylen;
	bool ok;
};

static int walk_msg(void *data, const struct q_peeked *p)
{
	struct walk *w = data;
	const struct q_delivery *d = &p->msg;
	const void *id, *body;
	size_t id_len, len;
	uint32_t sum;
	if (!fb_lookup(d->body_key, &id, &id_len, &body, &len, &sum)) {
		snprintf(w->why, w->whylen,
			 "%s/%llu: body %llu is not in the store", d->queue,
			 (unsigned long long)d->seq,
			 (unsigned long long)d->body_key);
		w->ok = false;
		return 1;
	}
	if (d->body != NULL || d->msg_id != NULL || sum != d->body_sum ||
	    len != d->body_len || id_len != d->msg_id_len) {
		snprintf(w->why, w->whylen,
			 "%s/%llu: body %llu: bytes, sum or lengths differ "
			 "from the store's",
			 d->queue, (unsigned long long)d->seq,
			 (unsigned long long)d->body_key);
		w->ok = false;
		return 1;
	}
	if (set_find(&w->seen, d->body_key) == SIZE_MAX) {
		set_add(&w->seen, d->body_key);
	}
	return 0;
}

struct walk_ctx {
	struct walk *w;
	const struct q_state *s;
};

static int walk_queue(void *data, const struct q_queue_info *qi)
{
	struct walk_ctx *c = data;
	int rv = q_state_peek(c->s, qi->name, 0, SIZE_MAX,
			      Q_PEEK_DELAYED | Q_PEEK_HELD, walk_msg, c->w);
	if (rv != 0 && c->w->ok) {
		snprintf(c->w->why, c->w->whylen, "peek %s: %s", qi->name,
			 q_strerror(rv));
		c->w->ok = false;
	}
	return rv;
}

bool fb_check(const struct fb_state *fb, const struct q_state *s, char *why,
	      size_t whylen)
{
	struct walk w = {fb, {NULL, 0, 0}, why, whylen, true};
	struct walk_ctx c = {&w, s};
	size_t i;
	if (!fb_ok(fb)) {
		snprintf(why, whylen, "%s", fb->err);
		return false;
	}
	q_state_foreach_queue(s, walk_queue, &c);
	if (w.ok && w.seen.n != fb->live.n) {
		snprintf(why, whylen,
			 "the state refers to %zu keys, %zu are live", w.seen.n,
			 fb->live.n);
		w.ok = false;
	}
	for (i = 0; w.ok && i < w.seen.cap; i++) {
		if (w.seen.keys[i] != 0 && !fb_live(fb, w.seen.keys[i])) {
			snprintf(why, whylen,
				 "the state refers to key %llu, not live",
				 (unsigned long long)w.seen.keys[i]);
			w.ok = false;
		}
	}
	set_free(&w.seen);
	return w.ok;
}
