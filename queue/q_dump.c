/* Deterministic dump and load of the whole state (snapshot contents).
 *
 * Format 1 (bodies in memory) and format 2 (a body interface), all integers
 * little-endian, strings as u32 length + bytes:
 *   "RMQ1" u32 format
 *   u64 now, next_seq, next_consumer; u32 next_qid
 *   u64 n_topics, then per topic (name order):
 *       str name, u64 dedup_window, published, deduplicated, dedup list
 *   u64 n_queues, then per queue (name order):
 *       str name, u32 id, settings, str topic ("" = none), counters,
 *       u64 cursor consumer id (0 = none), dedup list,
 *       returned, ready, delayed: u64 count + messages
 *   u64 n_consumers, then per consumer (id order):
 *       u64 id, str queue, session, u32 prefetch, credit,
 *       u64 count + unacked messages in delivery order
 *   "END1" u64 hash of every byte before "END1"
 * A message is: u64 seq, u32 deliveries, failures, dl_from, u8 dl_reason,
 * u64 expires, u8 in_heap, u64 due, u64 body origin (its key), u8 body_here
 * and, the first time a body appears in the walk, u64 published_ms, then
 *   format 1: str id, str body (the bytes);
 *   format 2: u32 id_len, u32 len, u32 sum, u32 refs (copies referring to
 *             it: a body of one copy loads into its message's allocation).
 *
 * A state writes format 1 when its bodies are in memory, so its dumps stay
 * readable by every version, and format 2 with a body interface. Load reads
 * both: format 1 into a state with a body interface puts every body into
 * the store (migration), format 2 claims them; format 2 into a state
 * without one is refused (the bytes are not in it).
 *
 * Lists are written in their order and the walk order is fixed, so equal
 * states give equal bytes. Load checks every length against what is left,
 * every reference and every invariant (q_state_check) and returns
 * Q_ECORRUPT on anything wrong: the bytes come from disk or the network. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q_int.h"

#define FORMAT_INLINE 1 /* bodies in memory: bytes in the dump */
#define FORMAT_STORE 2	/* body interface: keys and checksums */
#define CHUNK 65536

/* ------------------------------------------------- origin -> body map */

/* Open addressing map from body origin seq to body, scratch memory from
 * libc (not the state's allocator: it never outlives the call). */
struct omap {
	uint64_t *keys;
	struct q_body **vals;
	uint32_t *want; /* load, format 2: refs the dump declared */
	uint64_t mask;
};

static int omap_init(struct omap *m, uint64_t n, int with_want)
{
	uint64_t size = 16;
	while (size < n * 2) {
		size *= 2;
	}
	m->keys = calloc(size, sizeof *m->keys);
	m->vals = calloc(size, sizeof *m->vals);
	m->want = with_want ? calloc(size, sizeof *m->want) : NULL;
	m->mask = size - 1;
	if (m->keys == NULL || m->vals == NULL ||
	    (with_want && m->want == NULL)) {
		free(m->keys);
		free(m->vals);
		free(m->want);
		return Q_ENOMEM;
	}
	return 0;
}

static void omap_close(struct omap *m)
{
	free(m->keys);
	free(m->vals);
	free(m->want);
}

/* Returns the slot for key (origin seqs are never 0). */
static uint64_t omap_slot(const struct omap *m, uint64_t key)
{
	uint64_t i = (key * 0x9e3779b97f4a7c15ull >> 20) & m->mask;
	while (m->keys[i] != 0 && m->keys[i] != key) {
		i = (i + 1) & m->mask;
	}
	return i;
}

/* ------------------------------------------------------------ writer */

struct wr {
	int (*write)(void *data, const void *buf, size_t len);
	void *data;
	unsigned char buf[CHUNK];
	size_t used;
	uint64_t hash;
	int rv;
};

static void w_flush(struct wr *w)
{
	if (w->rv == 0 && w->used > 0) {
		w->rv = w->write(w->data, w->buf, w->used);
	}
	w->used = 0;
}

static void w_bytes(struct wr *w, const void *p, size_t n)
{
	const unsigned char *b = p;
	size_t i;
	for (i = 0; i < n; i++) {
		w->hash ^= b[i];
		w->hash *= 0x100000001b3ull;
	}
	while (n > 0 && w->rv == 0) {
		size_t k = CHUNK - w->used;
		if (k > n) {
			k = n;
		}
		memcpy(w->buf + w->used, b, k);
		w->used += k;
		b += k;
		n -= k;
		if (w->used == CHUNK) {
			w_flush(w);
		}
	}
}

static void w_u64(struct wr *w, uint64_t v)
{
	unsigned char b[8];
	int i;
	for (i = 0; i < 8; i++) {
		b[i] = (unsigned char)(v >> (8 * i));
	}
	w_bytes(w, b, 8);
}

static void w_u32(struct wr *w, uint32_t v)
{
	unsigned char b[4];
	int i;
	for (i = 0; i < 4; i++) {
		b[i] = (unsigned char)(v >> (8 * i));
	}
	w_bytes(w, b, 4);
}

static void w_u8(struct wr *w, uint8_t v)
{
	w_bytes(w, &v, 1);
}

static void w_str(struct wr *w, const void *p, size_t n)
{
	w_u32(w, (uint32_t)n);
	w_bytes(w, p, n);
}

static void w_cstr(struct wr *w, const char *s)
{
	w_str(w, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

static void w_settings(struct wr *w, const struct q_settings *st)
{
	w_u64(w, st->ack_timeout_ms);
	w_u32(w, st->max_deliveries);
	w_cstr(w, st->dead_letter);
	w_u64(w, st->ttl_ms);
	w_u64(w, st->max_length);
	w_u64(w, st->max_bytes);
	w_u8(w, st->overflow);
	w_u64(w, st->dedup_window_ms);
}

static void w_dedup(struct wr *w, const struct q_dedup *d)
{
	const struct q_link *l;
	w_u64(w, d->count);
	for (l = d->fifo.next; l != &d->fifo; l = l->next) {
		const struct q_dd *e = Q__CONTAINER_OF(l, struct q_dd, fifo);
		w_u64(w, e->seq);
		w_u64(w, e->at_ms);
		w_str(w, e->id, e->len);
	}
}

static void w_msgs(struct wr *w, const struct q_state *s, struct omap *seen,
		   const struct q_link *head, uint64_t n)
{
	const struct q_link *l;
	w_u64(w, n);
	for (l = head->next; l != head; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		const struct q_body *b = m->body;
		uint64_t slot = omap_slot(seen, b->origin);
		w_u64(w, m->seq);
		w_u32(w, q__msg_deliveries(m));
		w_u32(w, q__msg_failures(m));
		w_u32(w, m->dl_from);
		w_u8(w, m->dl_reason);
		w_u64(w, q__msg_expires(m));
		w_u8(w, m->in_heap);
		w_u64(w, q__msg_due(m));
		w_u64(w, b->origin);
		if (seen->keys[slot] == b->origin) {
			w_u8(w, 0);
			continue;
		}
		seen->keys[slot] = b->origin;
		w_u8(w, 1);
		w_u64(w, b->published_ms);
		if (s->bodies == NULL) {
			w_str(w, b->data, b->id_len);
			w_str(w, b->data + b->id_len, b->len);
		} else {
			w_u32(w, b->id_len);
			w_u32(w, b->len);
			w_u32(w, b->sum);
			w_u32(w, b->refs);
		}
	}
}

static void w_counters(struct wr *w, const struct q_counters *c)
{
	w_u64(w, c->published);
	w_u64(w, c->delivered);
	w_u64(w, c->redelivered);
	w_u64(w, c->acked);
	w_u64(w, c->nacked);
	w_u64(w, c->released);
	w_u64(w, c->dead_lettered);
	w_u64(w, c->expired);
	w_u64(w, c->deduplicated);
	w_u64(w, c->dropped);
	w_u64(w, c->rejected);
}

int q_state_dump(const struct q_state *s,
		 int (*write)(void *data, const void *buf, size_t len),
		 void *data)
{
	struct wr *w;
	struct omap seen;
	uint64_t i;
	int rv;

	w = malloc(sizeof *w);
	if (w == NULL) {
		return Q_ENOMEM;
	}
	if (omap_init(&seen, s->n_bodies, 0) != 0) {
		free(w);
		return Q_ENOMEM;
	}
	w->write = write;
	w->data = data;
	w->used = 0;
	w->hash = 0xcbf29ce484222325ull;
	w->rv = 0;

	w_bytes(w, "RMQ1", 4);
	w_u32(w, s->bodies != NULL ? FORMAT_STORE : FORMAT_INLINE);
	w_u64(w, s->now);
	w_u64(w, s->next_seq);
	w_u64(w, s->next_consumer);
	w_u32(w, s->next_qid);
	w_u64(w, s->n_topics);
	for (i = 0; i < s->n_topics; i++) {
		const struct q_topic *t = s->topics[i];
		w_cstr(w, t->name);
		w_u64(w, t->dedup_window_ms);
		w_u64(w, t->published);
		w_u64(w, t->deduplicated);
		w_dedup(w, &t->dedup);
	}
	w_u64(w, s->n_queues);
	for (i = 0; i < s->n_queues; i++) {
		const struct q_queue *q = s->queues[i];
		w_cstr(w, q->name);
		w_u32(w, q->id);
		w_settings(w, &q->settings);
		w_cstr(w, q->topic != NULL ? q->topic->name : NULL);
		w_counters(w, &q->c);
		w_u64(w, q->cursor != NULL ? q->cursor->id : 0);
		w_dedup(w, &q->dedup);
		w_msgs(w, s, &seen, &q->returned, q->n_returned);
		w_msgs(w, s, &seen, &q->ready, q->n_ready);
		w_msgs(w, s, &seen, &q->delayed, q->n_delayed);
	}
	w_u64(w, s->n_consumers);
	for (i = 0; i < s->n_consumers; i++) {
		const struct q_consumer *c = s->consumers[i];
		w_u64(w, c->id);
		w_cstr(w, c->queue->name);
		w_u64(w, c->session.node_id);
		w_u64(w, c->session.epoch);
		w_u64(w, c->session.session_id);
		w_u32(w, c->prefetch);
		w_u32(w, c->credit);
		w_msgs(w, s, &seen, &c->unacked, c->n_unacked);
	}
	{
		uint64_t h = w->hash;
		w_bytes(w, "END1", 4);
		w_u64(w, h);
	}
	w_flush(w);
	rv = w->rv;
	omap_close(&seen);
	free(w);
	return rv;
}

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static int mem_write(void *data, const void *buf, size_t len)
{
	struct membuf *m = data;
	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : CHUNK;
		unsigned char *p;
		while (cap < m->len + len) {
			cap *= 2;
		}
		p = realloc(m->p, cap);
		if (p == NULL) {
			return Q_ENOMEM;
		}
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

int q_state_dump_buf(const struct q_state *s, void **buf, size_t *len)
{
	struct membuf m = {NULL, 0, 0};
	int rv = q_state_dump(s, mem_write, &m);
	if (rv != 0) {
		free(m.p);
		return rv;
	}
	*buf = m.p;
	*len = m.len;
	return 0;
}

/* ------------------------------------------------------------ reader */

struct rd {
	const unsigned char *p;
	size_t left;
	int bad;
};

static const unsigned char *r_take(struct rd *r, size_t n)
{
	const unsigned char *p = r->p;
	if (r->bad || n > r->left) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t r_u64(struct rd *r)
{
	const unsigned char *b = r_take(r, 8);
	uint64_t v = 0;
	int i;
	if (b == NULL) {
		return 0;
	}
	for (i = 7; i >= 0; i--) {
		v = v << 8 | b[i];
	}
	return v;
}

static uint32_t r_u32(struct rd *r)
{
	const unsigned char *b = r_take(r, 4);
	if (b == NULL) {
		return 0;
	}
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint8_t r_u8(struct rd *r)
{
	const unsigned char *b = r_take(r, 1);
	return b != NULL ? b[0] : 0;
}

/* Reads a string; *len set. Returns a pointer into the buffer (no NUL). */
static const unsigned char *r_str(struct rd *r, size_t *len)
{
	uint32_t n = r_u32(r);
	*len = n;
	return r_take(r, n);
}

/* Reads a name into buf (NUL-terminated); empty allowed if `empty_ok`. */
static int r_name(struct rd *r, char *buf, int empty_ok)
{
	size_t n;
	const unsigned char *p = r_str(r, &n);
	if (p == NULL || n > Q_NAME_MAX || (n == 0 && !empty_ok)) {
		r->bad = 1;
		return -1;
	}
	memcpy(buf, p, n);
	buf[n] = '\0';
	if (n > 0 && (strlen(buf) != n || !q_name_valid(buf))) {
		r->bad = 1;
		return -1;
	}
	return 0;
}

struct loader {
	struct q_state *s;
	const unsigned char *start; /* of the dump, for offsets in reasons */
	struct rd r;
	uint32_t format;
	struct omap bodies; /* every body put or claimed so far, by key */
	int rv; /* Q_ECORRUPT, Q_ENOMEM or Q_EIO once something failed */
};

/* Records why the load fails (the first reason only). */
__attribute__((format(printf, 2, 3))) static void why(struct loader *l,
						      const char *fmt, ...)
{
	va_list ap;
	if (l->s->load_err[0] != '\0') {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(l->s->load_err, sizeof l->s->load_err, fmt, ap);
	va_end(ap);
}

static int bad(struct loader *l)
{
	if (l->rv == 0) {
		l->rv = Q_ECORRUPT;
		why(l, "malformed dump near byte %zu",
		    (size_t)(l->r.p - l->start));
	}
	return l->rv;
}

static int nomem(struct loader *l)
{
	if (l->rv == 0) {
		l->rv = Q_ENOMEM;
		why(l, "out of memory");
	}
	return l->rv;
}

static int r_dedup(struct loader *l, struct q_dedup *d)
{
	struct q_state *s = l->s;
	uint64_t n = r_u64(&l->r), i, last = 0;
	for (i = 0; i < n && !l->r.bad; i++) {
		q_seq seq = r_u64(&l->r);
		uint64_t at = r_u64(&l->r);
		size_t len;
		const unsigned char *id = r_str(&l->r, &len);
		struct q_dd *e;
		if (l->r.bad || len == 0 || at < last || at > s->now ||
		    seq == 0 || seq >= s->next_seq ||
		    q__dedup_find(s, d, id, len, UINT64_MAX) != NULL) {
			return bad(l);
		}
		last = at;
		if (q__dedup_grow(s, d) != 0 ||
		    (e = q__dedup_new(s, id, len)) == NULL) {
			return nomem(l);
		}
		q__dedup_insert(s, d, e, seq, at);
	}
	return l->r.bad ? bad(l) : 0;
}

/* A body record of the dump (the first time a body appears). */
struct body_rec {
	uint64_t published;
	const unsigned char *id, *bytes; /* format 1 */
	size_t id_len, len;
	uint32_t sum, refs; /* format 2 */
};

static int r_body(struct loader *l, struct body_rec *br)
{
	struct q_state *s = l->s;
	struct rd *r = &l->r;
	br->published = r_u64(r);
	if (l->format == FORMAT_INLINE) {
		br->id = r_str(r, &br->id_len);
		br->bytes = r_str(r, &br->len);
		br->sum = 0;
		br->refs = 0; /* unknown: counted */
	} else {
		br->id = br->bytes = NULL;
		br->id_len = r_u32(r);
		br->len = r_u32(r);
		br->sum = r_u32(r);
		br->refs = r_u32(r);
		if (br->refs == 0) {
			return bad(l);
		}
	}
	if (r->bad || br->published > s->now || br->id_len > 1024 ||
	    (s->max_body != 0 && br->len > s->max_body)) {
		return bad(l);
	}
	return 0;
}

/* Registers a new body: into the store (migration: put; format 2: claim)
 * and into the loader's map, so that a failed load can drop it again. */
static int add_body(struct loader *l, uint64_t slot, struct q_body *b,
		    const struct body_rec *br)
{
	struct q_state *s = l->s;
	if (s->bodies != NULL && l->format == FORMAT_INLINE) {
		uint32_t sum = 0;
		if (s->bodies->put(s->bodies->data, b->origin,
				   br->id_len > 0 ? br->id : NULL, br->id_len,
				   br->bytes, br->len, &sum) != 0) {
			l->rv = Q_EIO;
			why(l, "the body store refused body %llu",
			    (unsigned long long)b->origin);
			return l->rv;
		}
		b->sum = sum;
	} else if (s->bodies != NULL) {
		s->bodies->claim(s->bodies->data, b->origin);
	} else {
		memcpy(b->data, br->id, br->id_len);
		memcpy(b->data + br->id_len, br->bytes, br->len);
	}
	l->bodies.keys[slot] = b->origin;
	l->bodies.vals[slot] = b;
	if (l->bodies.want != NULL) {
		l->bodies.want[slot] = br->refs;
	}
	s->n_bodies++;
	s->body_bytes += br->len;
	if (s->bodies != NULL) {
		s->stored_bytes += (uint64_t)br->len + br->id_len;
	}
	return 0;
}

/* Reads one message and its body; returns it linked nowhere. */
static struct q_msg *r_msg(struct loader *l, struct q_queue *q)
{
	struct q_state *s = l->s;
	struct rd *r = &l->r;
	struct q_msg *m = NULL;
	struct q_msg_ext *x = NULL;
	struct q_body *b = NULL;
	struct body_rec br = {0};
	uint64_t seq, expires, due, origin, slot;
	uint32_t deliveries, failures, dl_from;
	uint8_t dl_reason, in_heap, here;
	size_t bsize = 0;
	int inl;

	seq = r_u64(r);
	deliveries = r_u32(r);
	failures = r_u32(r);
	dl_from = r_u32(r);
	dl_reason = r_u8(r);
	expires = r_u64(r);
	in_heap = r_u8(r);
	due = r_u64(r);
	origin = r_u64(r);
	here = r_u8(r);
	/* Only an armed timer has a due time (q_state_check): without one
	 * the value would have nowhere to live. */
	if (r->bad || seq == 0 || seq >= s->next_seq || origin == 0 ||
	    origin > seq || in_heap > 1 || (!in_heap && due != 0) ||
	    dl_reason > Q_REASON_OVERFLOW || here > 1 ||
	    (dl_reason != 0 && (dl_from == 0 || dl_from >= s->next_qid))) {
		bad(l);
		return NULL;
	}
	slot = omap_slot(&l->bodies, origin);
	if (here) {
		if (l->bodies.keys[slot] == origin || r_body(l, &br) != 0) {
			bad(l);
			return NULL;
		}
		bsize = q__body_size(s, br.id_len, br.len);
	} else {
		if (l->bodies.keys[slot] != origin) {
			bad(l);
			return NULL;
		}
		b = l->bodies.vals[slot];
		/* More copies than the dump said (one that lives in its
		 * first copy's allocation cannot take a second). */
		if (l->bodies.want != NULL && b->refs >= l->bodies.want[slot]) {
			bad(l);
			return NULL;
		}
	}
	inl = here && br.refs == 1;

	m = q__msg_alloc(
		s, deliveries != 0 || failures != 0 || expires != 0 || in_heap,
		inl ? bsize : 0);
	if (m == NULL) {
		goto err_nomem;
	}
	x = m->ext;
	if (here) {
		b = inl ? m->body : q__malloc(s, bsize);
		if (b == NULL) {
			goto err_nomem;
		}
		b->origin = origin;
		b->published_ms = br.published;
		b->len = (uint32_t)br.len;
		b->sum = br.sum;
		b->refs = 0;
		b->id_len = (uint32_t)br.id_len;
		if (add_body(l, slot, b, &br) != 0) {
			if (!inl) {
				q__free(s, b, bsize);
			}
			goto err_free;
		}
	}
	m->body = b;
	b->refs++;
	m->queue = q;
	m->where = Q__NOWHERE;
	m->seq = seq;
	m->dl_from = dl_from;
	m->dl_reason = dl_reason;
	m->in_heap = in_heap;
	if (x != NULL) {
		x->deliveries = deliveries;
		x->failures = failures;
		x->expires = expires;
		x->due = due;
	}
	s->n_msgs++;
	return m;

err_nomem:
	nomem(l);
err_free:
	q__msg_discard(s, m, inl ? bsize : 0);
	return NULL;
}

static void arm_loaded(struct q_state *s, struct q_msg *m)
{
	if (m->in_heap) {
		m->in_heap = 0;
		q__timer_arm(s, m, m->ext->due);
	}
}

static int r_list(struct loader *l, struct q_queue *q, uint8_t where)
{
	struct q_state *s = l->s;
	uint64_t n = r_u64(&l->r), i;
	struct q_link *head = where == Q__RETURNED ? &q->returned
			      : where == Q__READY  ? &q->ready
						   : &q->delayed;
	for (i = 0; i < n; i++) {
		struct q_msg *m = r_msg(l, q);
		if (m == NULL) {
			return l->rv;
		}
		q__list_append(head, &m->link);
		m->where = where;
		q->bytes += m->body->len;
		if (where == Q__READY) {
			q->n_ready++;
		} else if (where == Q__RETURNED) {
			q->n_returned++;
		} else {
			q->n_delayed++;
		}
		arm_loaded(s, m);
	}
	return l->r.bad ? bad(l) : 0;
}

static int r_settings(struct loader *l, struct q_settings *st, char *dl)
{
	struct rd *r = &l->r;
	st->ack_timeout_ms = r_u64(r);
	st->max_deliveries = r_u32(r);
	if (r_name(r, dl, 1) != 0) {
		return bad(l);
	}
	st->dead_letter = dl[0] != '\0' ? dl : NULL;
	st->ttl_ms = r_u64(r);
	st->max_length = r_u64(r);
	st->max_bytes = r_u64(r);
	st->overflow = r_u8(r);
	st->dedup_window_ms = r_u64(r);
	if (r->bad || !q__settings_valid(st)) {
		return bad(l);
	}
	return 0;
}

static void r_counters(struct rd *r, struct q_counters *c)
{
	c->published = r_u64(r);
	c->delivered = r_u64(r);
	c->redelivered = r_u64(r);
	c->acked = r_u64(r);
	c->nacked = r_u64(r);
	c->released = r_u64(r);
	c->dead_lettered = r_u64(r);
	c->expired = r_u64(r);
	c->deduplicated = r_u64(r);
	c->dropped = r_u64(r);
	c->rejected = r_u64(r);
}

static int load_topics(struct loader *l)
{
	struct q_state *s = l->s;
	uint64_t n = r_u64(&l->r), i;
	char name[Q_NAME_MAX + 1];
	if (n > l->r.left) {
		return bad(l);
	}
	for (i = 0; i < n; i++) {
		struct q_topic *t;
		if (r_name(&l->r, name, 0) != 0 ||
		    (i > 0 && strcmp(s->topics[i - 1]->name, name) >= 0)) {
			return bad(l);
		}
		if (q__reserve(s, &s->topics, &s->cap_topics, i + 1) != 0 ||
		    (t = q__malloc(s, sizeof *t)) == NULL) {
			return nomem(l);
		}
		memset(t, 0, sizeof *t);
		q__dedup_init(&t->dedup);
		t->name = q__strdup(s, name);
		if (t->name == NULL) {
			q__free(s, t, sizeof *t);
			return nomem(l);
		}
		s->topics[s->n_topics++] = t;
		t->dedup_window_ms = r_u64(&l->r);
		t->published = r_u64(&l->r);
		t->deduplicated = r_u64(&l->r);
		if (r_dedup(l, &t->dedup) != 0) {
			return l->rv;
		}
	}
	return 0;
}

static int load_queues(struct loader *l, uint64_t **cursors)
{
	struct q_state *s = l->s;
	uint64_t n = r_u64(&l->r), i;
	char name[Q_NAME_MAX + 1], dl[Q_NAME_MAX + 1], topic[Q_NAME_MAX + 1];
	if (n > l->r.left) {
		return bad(l);
	}
	*cursors = calloc(n + 1, sizeof **cursors);
	if (*cursors == NULL) {
		return nomem(l);
	}
	for (i = 0; i < n; i++) {
		struct q_settings st;
		struct q_queue *q;
		uint32_t id;
		uint64_t j;
		if (r_name(&l->r, name, 0) != 0 ||
		    (i > 0 && strcmp(s->queues[i - 1]->name, name) >= 0)) {
			return bad(l);
		}
		id = r_u32(&l->r);
		if (id == 0 || id >= s->next_qid ||
		    r_settings(l, &st, dl) != 0 ||
		    r_name(&l->r, topic, 1) != 0) {
			return bad(l);
		}
		for (j = 0; j < i; j++) {
			if (s->queues[j]->id == id) {
				return bad(l);
			}
		}
		if (q__reserve(s, &s->queues, &s->cap_queues, i + 1) != 0 ||
		    (q = q__queue_new(s, name, &st)) == NULL) {
			return nomem(l);
		}
		q->id = id;
		s->queues[s->n_queues++] = q;
		if (topic[0] != '\0') {
			struct q_topic *t = q__topic_find(s, topic);
			if (t == NULL) {
				return bad(l);
			}
			if (q__reserve(s, &t->subs, &t->cap_subs,
				       t->n_subs + 1) != 0) {
				return nomem(l);
			}
			t->subs[t->n_subs++] = q;
			q->topic = t;
		}
		r_counters(&l->r, &q->c);
		(*cursors)[i] = r_u64(&l->r);
		if (r_dedup(l, &q->dedup) != 0 ||
		    r_list(l, q, Q__RETURNED) != 0 ||
		    r_list(l, q, Q__READY) != 0 ||
		    r_list(l, q, Q__DELAYED) != 0) {
			return l->rv;
		}
	}
	return l->r.bad ? bad(l) : 0;
}

static int load_consumers(struct loader *l)
{
	struct q_state *s = l->s;
	uint64_t n = r_u64(&l->r), i, j;
	char name[Q_NAME_MAX + 1];
	if (n > l->r.left) {
		return bad(l);
	}
	for (i = 0; i < n; i++) {
		struct q_consumer *c;
		struct q_queue *q;
		uint64_t id = r_u64(&l->r), nu;
		if (id == 0 || id >= s->next_consumer ||
		    (i > 0 && s->consumers[i - 1]->id >= id) ||
		    r_name(&l->r, name, 0) != 0 ||
		    (q = q__queue_find(s, name)) == NULL) {
			return bad(l);
		}
		if (q__reserve(s, &s->consumers, &s->cap_consumers, i + 1) !=
			    0 ||
		    (c = q__malloc(s, sizeof *c)) == NULL) {
			return nomem(l);
		}
		memset(c, 0, sizeof *c);
		c->id = id;
		c->queue = q;
		q__list_init(&c->unacked);
		s->consumers[s->n_consumers++] = c;
		q__list_append(&q->consumers, &c->qlink);
		q->n_consumers++;
		c->session.node_id = r_u64(&l->r);
		c->session.epoch = r_u64(&l->r);
		c->session.session_id = r_u64(&l->r);
		c->prefetch = r_u32(&l->r);
		c->credit = r_u32(&l->r);
		nu = r_u64(&l->r);
		for (j = 0; j < nu; j++) {
			struct q_msg *m = r_msg(l, q);
			if (m == NULL) {
				return l->rv;
			}
			/* A held message was delivered, so it has a side
			 * struct (r_msg gives one to deliveries > 0). */
			if (q__msg_deliveries(m) == 0 ||
			    q__unacked_find(q, m->seq) != NULL) {
				q__msg_free(s, m);
				return bad(l);
			}
			q__unacked_grow(s, q, 1);
			q__unacked_index(q, m);
			m->where = Q__UNACKED;
			m->ext->consumer = c;
			q__list_append(&c->unacked, &m->link);
			c->n_unacked++;
			q->n_unacked++;
			arm_loaded(s, m);
		}
	}
	return l->r.bad ? bad(l) : 0;
}

/* After a failed load: the store forgets every body the load put or
 * claimed (the state refers to none of them any more). */
static void drop_loaded(struct loader *l)
{
	const struct q_bodies *bs = l->s->bodies;
	uint64_t i;
	if (bs == NULL || l->bodies.keys == NULL) {
		return;
	}
	for (i = 0; i <= l->bodies.mask; i++) {
		if (l->bodies.keys[i] != 0) {
			bs->drop(bs->data, l->bodies.keys[i]);
		}
	}
}

/* Every body has as many copies as the dump said (format 2). */
static void check_refs(struct loader *l)
{
	uint64_t i;
	for (i = 0; l->bodies.want != NULL && i <= l->bodies.mask; i++) {
		if (l->bodies.keys[i] != 0 &&
		    l->bodies.vals[i]->refs != l->bodies.want[i]) {
			why(l, "body %llu: %u copies, the dump says %u",
			    (unsigned long long)l->bodies.keys[i],
			    l->bodies.vals[i]->refs, l->bodies.want[i]);
			bad(l);
			return;
		}
	}
}

int q_state_load(struct q_state *s, const void *buf, size_t len)
{
	struct loader l;
	const unsigned char *p = buf;
	uint64_t *cursors = NULL, i, hash = 0xcbf29ce484222325ull;
	char errbuf[128];

	if (s->n_queues != 0 || s->n_topics != 0 || s->n_consumers != 0) {
		q__state_clear(s);
	}
	memset(&l, 0, sizeof l);
	l.s = s;
	l.start = p;
	s->load_err[0] = '\0';
	/* The trailer: "END1" and the hash of everything before it. */
	if (len < 8 + 12 || memcmp(p, "RMQ1", 4) != 0 ||
	    memcmp(p + len - 12, "END1", 4) != 0) {
		why(&l, "not a queue state dump (no RMQ1 ... END1)");
		return Q_ECORRUPT;
	}
	for (i = 0; i < len - 12; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ull;
	}
	l.r.p = p + len - 8;
	l.r.left = 8;
	if (r_u64(&l.r) != hash) {
		why(&l, "checksum mismatch (corrupt dump)");
		return Q_ECORRUPT;
	}
	l.r.p = p + 4;
	l.r.left = len - 4 - 12;
	l.format = r_u32(&l.r);
	if (l.format != FORMAT_INLINE && l.format != FORMAT_STORE) {
		why(&l, "unknown dump format %u", l.format);
		return Q_ECORRUPT;
	}
	if (l.format == FORMAT_STORE && s->bodies == NULL) {
		why(&l,
		    "the dump's bodies are in a body store (format 2) and "
		    "this state keeps bodies in memory (no body "
		    "interface)");
		return Q_ECORRUPT;
	}
	s->now = r_u64(&l.r);
	s->next_seq = r_u64(&l.r);
	s->next_consumer = r_u64(&l.r);
	s->next_qid = r_u32(&l.r);
	/* A counter at its maximum cannot come from a real history (2^64
	 * publishes) and would wrap at the next publish / attach / create,
	 * reusing ids (found by tests/fuzz/fuzz_snapshot). */
	if (l.r.bad || s->next_seq == 0 || s->next_consumer == 0 ||
	    s->next_qid == 0 || s->next_seq == UINT64_MAX ||
	    s->next_consumer == UINT64_MAX || s->next_qid == UINT32_MAX) {
		why(&l, "a counter out of range");
		q__state_clear(s);
		return Q_ECORRUPT;
	}
	/* Bodies are at most one per byte left, which bounds the map. */
	if (omap_init(&l.bodies, l.r.left / 16 + 1, l.format == FORMAT_STORE) !=
	    0) {
		why(&l, "out of memory");
		q__state_clear(s);
		return Q_ENOMEM;
	}
	if (load_topics(&l) == 0 && load_queues(&l, &cursors) == 0 &&
	    load_consumers(&l) == 0) {
		if (l.r.left != 0) {
			bad(&l);
		}
	}
	for (i = 0; l.rv == 0 && i < s->n_queues; i++) {
		struct q_queue *q = s->queues[i];
		if (cursors[i] != 0) {
			struct q_consumer *c = q__consumer_find(s, cursors[i]);
			if (c == NULL || c->queue != q) {
				bad(&l);
				break;
			}
			q->cursor = c;
		}
		if (q->dead_letter != NULL &&
		    strcmp(q->dead_letter, q->name) == 0) {
			bad(&l);
		}
	}
	free(cursors);
	if (l.rv == 0) {
		check_refs(&l);
	}
	if (l.rv == 0 && q_state_check(s, errbuf, sizeof errbuf) != 0) {
		l.rv = Q_ECORRUPT;
		why(&l, "inconsistent state: %s", errbuf);
	}
	if (l.rv != 0) {
		drop_loaded(&l);
		q__state_clear(s);
	}
	omap_close(&l.bodies);
	return l.rv;
}

const char *q_state_load_error(const struct q_state *s)
{
	return s->load_err;
}
