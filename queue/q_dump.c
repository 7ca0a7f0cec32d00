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
/* next_seq and next_consumer of a dump are below this (q_state_load). */
#define COUNTER_LIMIT (UINT64_C(1) << 63)

/* ------------------------------------------------------------ bytes */

/* Little-endian fields of the dump. On a little-endian host these are plain
 * (unaligned) loads and stores: the dump has about ten fields per message
 * and a load of 10 M messages reads every one of them. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline void put_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static inline void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
#else
static inline void put_u64(unsigned char *p, uint64_t v)
{
	int i;
	for (i = 0; i < 8; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}
static inline void put_u32(unsigned char *p, uint32_t v)
{
	int i;
	for (i = 0; i < 4; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}
static inline uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--) {
		v = v << 8 | p[i];
	}
	return v;
}
static inline uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}
#endif

#define HASH_INIT 0xcbf29ce484222325ull

/* The trailer's hash (FNV-1a 64) of n more bytes. One multiply per byte
 * in a chain: about 1 ns per byte, the floor of a dump's and a load's
 * time (every other cost is per message). */
static uint64_t hash_bytes(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* A message's fixed part: seq, deliveries, failures, dl_from, dl_reason,
 * expires, in_heap, due, origin, body_here. */
#define MSG_FIXED (8 + 4 + 4 + 4 + 1 + 8 + 1 + 8 + 8 + 1)
/* A format 2 body record: published, id_len, len, sum, refs. */
#define BODY2_SIZE (8 + 4 + 4 + 4 + 4)

/* ------------------------------------------------- origin -> body map */

/* Open addressing map from body origin seq to body, scratch memory from
 * libc (not the state's allocator: it never outlives the call). It holds
 * only bodies that more than one message refers to, or may (format 1 does
 * not say how many copies a body has), so in the usual state, one copy per
 * body, it stays empty: a map of every body was one cache miss per message
 * in a table of hundreds of MB. It grows by doubling (at most half full). */
struct oslot {
	uint64_t key; /* 0 = empty (origin seqs are never 0) */
	struct q_body *b;
	uint32_t want; /* load, format 2: copies the dump declared */
};

struct omap {
	struct oslot *slots;
	uint64_t n, mask;
	unsigned shift; /* 64 - log2(slots) */
};

static int omap_init(struct omap *m, uint64_t n)
{
	uint64_t size = 16;
	unsigned bits = 4;
	while (size < n * 2) {
		size *= 2;
		bits++;
	}
	m->slots = calloc(size, sizeof *m->slots);
	m->n = 0;
	m->mask = size - 1;
	m->shift = 64 - bits;
	return m->slots != NULL ? 0 : Q_ENOMEM;
}

static void omap_close(struct omap *m)
{
	free(m->slots);
	m->slots = NULL;
}

/* The slot holding key, or the empty slot where it would go. */
static struct oslot *omap_slot(const struct omap *m, uint64_t key)
{
	uint64_t i = key * 0x9e3779b97f4a7c15ull >> m->shift;
	while (m->slots[i].key != 0 && m->slots[i].key != key) {
		i = (i + 1) & m->mask;
	}
	return &m->slots[i];
}

/* Room for one more key (call before omap_slot() of a new key). */
static int omap_reserve(struct omap *m)
{
	struct omap big;
	uint64_t i;
	if ((m->n + 1) * 2 <= m->mask + 1) {
		return 0;
	}
	if (omap_init(&big, m->mask + 1) != 0) {
		return Q_ENOMEM;
	}
	for (i = 0; i <= m->mask; i++) {
		if (m->slots[i].key != 0) {
			*omap_slot(&big, m->slots[i].key) = m->slots[i];
		}
	}
	big.n = m->n;
	free(m->slots);
	*m = big;
	return 0;
}

/* ------------------------------------------------------------ writer */

/* Fields are stored straight into a chunk buffer; the hash runs over each
 * chunk when it is handed to `write`. */
struct wr {
	int (*write)(void *data, const void *buf, size_t len);
	void *data;
	size_t used;
	uint64_t hash; /* of every byte handed on so far */
	int rv;
	unsigned char buf[CHUNK];
};

static void w_flush(struct wr *w)
{
	w->hash = hash_bytes(w->hash, w->buf, w->used);
	if (w->rv == 0 && w->used > 0) {
		w->rv = w->write(w->data, w->buf, w->used);
	}
	w->used = 0;
}

/* Room for n (at most CHUNK) bytes that the caller fills at once. */
static unsigned char *w_room(struct wr *w, size_t n)
{
	unsigned char *p;
	if (CHUNK - w->used < n) {
		w_flush(w);
	}
	p = w->buf + w->used;
	w->used += n;
	return p;
}

static void w_bytes(struct wr *w, const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n > 0) {
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
	put_u64(w_room(w, 8), v);
}

static void w_u32(struct wr *w, uint32_t v)
{
	put_u32(w_room(w, 4), v);
}

static void w_u8(struct wr *w, uint8_t v)
{
	*w_room(w, 1) = v;
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

/* Writes a list of messages; a body goes with the first message that refers
 * to it (walk order), which `seen` tracks for bodies of several copies. */
static int w_msgs(struct wr *w, const struct q_state *s, struct omap *seen,
		  const struct q_link *head, uint64_t n)
{
	const struct q_link *l;
	w_u64(w, n);
	for (l = head->next; l != head; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		const struct q_body *b = m->body;
		unsigned char *p;
		uint8_t here = 1;
		if (b->refs > 1) {
			struct oslot *sl;
			if (omap_reserve(seen) != 0) {
				return Q_ENOMEM;
			}
			sl = omap_slot(seen, b->origin);
			if (sl->key == b->origin) {
				here = 0;
			} else {
				sl->key = b->origin;
				seen->n++;
			}
		}
		p = w_room(w,
			   MSG_FIXED + (here && s->bodies != NULL ? BODY2_SIZE
								  : 0));
		put_u64(p, m->seq);
		put_u32(p + 8, q__msg_deliveries(m));
		put_u32(p + 12, q__msg_failures(m));
		put_u32(p + 16, m->dl_from);
		p[20] = m->dl_reason;
		put_u64(p + 21, q__msg_expires(m));
		p[29] = m->in_heap;
		put_u64(p + 30, q__msg_due(m));
		put_u64(p + 38, b->origin);
		p[46] = here;
		if (!here) {
			continue;
		}
		if (s->bodies != NULL) {
			p += MSG_FIXED;
			put_u64(p, b->published_ms);
			put_u32(p + 8, b->id_len);
			put_u32(p + 12, b->len);
			put_u32(p + 16, b->sum);
			put_u32(p + 20, b->refs);
		} else {
			w_u64(w, b->published_ms);
			w_str(w, b->data, b->id_len);
			w_str(w, b->data + b->id_len, b->len);
		}
	}
	return 0;
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
	int rv = 0;

	w = malloc(sizeof *w);
	if (w == NULL) {
		return Q_ENOMEM;
	}
	/* Bodies of several copies are at most the copies beyond one per
	 * body, so the map never grows in the middle of the dump. */
	if (omap_init(&seen, s->n_msgs - s->n_bodies) != 0) {
		free(w);
		return Q_ENOMEM;
	}
	w->write = write;
	w->data = data;
	w->used = 0;
	w->hash = HASH_INIT;
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
	for (i = 0; rv == 0 && i < s->n_queues; i++) {
		const struct q_queue *q = s->queues[i];
		w_cstr(w, q->name);
		w_u32(w, q->id);
		w_settings(w, &q->settings);
		w_cstr(w, q->topic != NULL ? q->topic->name : NULL);
		w_counters(w, &q->c);
		w_u64(w, q->cursor != NULL ? q->cursor->id : 0);
		w_dedup(w, &q->dedup);
		rv = w_msgs(w, s, &seen, &q->returned, q->n_returned);
		if (rv == 0) {
			rv = w_msgs(w, s, &seen, &q->ready, q->n_ready);
		}
		if (rv == 0) {
			rv = w_msgs(w, s, &seen, &q->delayed, q->n_delayed);
		}
	}
	if (rv == 0) {
		w_u64(w, s->n_consumers);
	}
	for (i = 0; rv == 0 && i < s->n_consumers; i++) {
		const struct q_consumer *c = s->consumers[i];
		w_u64(w, c->id);
		w_cstr(w, c->queue->name);
		w_u64(w, c->session.node_id);
		w_u64(w, c->session.epoch);
		w_u64(w, c->session.session_id);
		w_u32(w, c->prefetch);
		w_u32(w, c->credit);
		rv = w_msgs(w, s, &seen, &c->unacked, c->n_unacked);
	}
	if (rv == 0) {
		unsigned char *p;
		w_flush(w); /* w->hash: every byte before "END1" */
		p = w_room(w, 12);
		memcpy(p, "END1", 4);
		put_u64(p + 4, w->hash);
		w_flush(w);
		rv = w->rv;
	}
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
	return b != NULL ? get_u64(b) : 0;
}

static uint32_t r_u32(struct rd *r)
{
	const unsigned char *b = r_take(r, 4);
	return b != NULL ? get_u32(b) : 0;
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
	/* Bodies a later message may refer to, by key: in format 1 every
	 * body (the dump does not say how many copies one has; with a body
	 * interface each is put as it is read, so this is also what a failed
	 * load drops again), in format 2 those the dump says have several. */
	struct omap bodies;
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

/* A dedup entry read but not yet in its table (see r_dedup). */
struct dd_pending {
	struct q_dd *e;
	q_seq seq;
	uint64_t at;
};

/* Ids read ahead of the one inserted: each one's table slot is fetched
 * while the ones before it go in. A table of millions of ids is far bigger
 * than the caches, and one miss after another made ids the slowest part
 * of a load. */
#define DD_AHEAD 16

/* Smallest entry in the dump: seq, at, a 1-byte id with its length. */
#define DD_MIN_SIZE (8 + 8 + 4 + 1)

static int r_dedup(struct loader *l, struct q_dedup *d)
{
	struct q_state *s = l->s;
	struct dd_pending ring[DD_AHEAD];
	uint64_t n = r_u64(&l->r), i, last = 0;
	unsigned head = 0, k = 0;
	int rv = 0;

	if (l->r.bad || n > l->r.left / DD_MIN_SIZE) {
		return bad(l);
	}
	if (n == 0) {
		return 0;
	}
	/* The table an insert of n ids would have grown to, at once. */
	if (q__dedup_presize(s, d, n) != 0) {
		return nomem(l);
	}
	for (i = 0; i < n || k > 0;) {
		if (i < n && k < DD_AHEAD) {
			q_seq seq = r_u64(&l->r);
			uint64_t at = r_u64(&l->r);
			size_t len;
			const unsigned char *id = r_str(&l->r, &len);
			struct q_dd *e;
			if (l->r.bad || len == 0 || at < last || at > s->now ||
			    seq == 0 || seq >= s->next_seq) {
				rv = bad(l);
				break;
			}
			last = at;
			e = q__dedup_new(s, id, len);
			if (e == NULL) {
				rv = nomem(l);
				break;
			}
			q__dedup_prefetch(d, e->hash);
			ring[(head + k) % DD_AHEAD] =
				(struct dd_pending){e, seq, at};
			k++;
			i++;
			continue;
		}
		/* Ring full or nothing left to read: the oldest goes in. An
		 * id seen before is a second entry of one id. */
		if (!q__dedup_insert_new(s, d, ring[head].e, ring[head].seq,
					 ring[head].at)) {
			rv = bad(l);
			break;
		}
		head = (head + 1) % DD_AHEAD;
		k--;
	}
	while (k > 0) { /* after a failure: what never went in */
		q__dedup_discard(s, ring[head].e);
		head = (head + 1) % DD_AHEAD;
		k--;
	}
	return rv;
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
	if (l->format == FORMAT_INLINE) {
		br->published = r_u64(r);
		br->id = r_str(r, &br->id_len);
		br->bytes = r_str(r, &br->len);
		br->sum = 0;
		br->refs = 0; /* unknown: counted */
	} else {
		const unsigned char *p = r_take(r, BODY2_SIZE);
		if (p == NULL) {
			return bad(l);
		}
		br->published = get_u64(p);
		br->id = br->bytes = NULL;
		br->id_len = get_u32(p + 8);
		br->len = get_u32(p + 12);
		br->sum = get_u32(p + 16);
		br->refs = get_u32(p + 20);
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

/* Registers a new body: into the store (format 1: put; format 2 claims
 * once the load has succeeded, claim_loaded()), and into the map when later
 * messages may refer to it (sl: its empty slot). */
static int add_body(struct loader *l, struct oslot *sl, struct q_body *b,
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
	} else if (s->bodies == NULL) {
		memcpy(b->data, br->id, br->id_len);
		memcpy(b->data + br->id_len, br->bytes, br->len);
	}
	if (sl != NULL) {
		sl->key = b->origin;
		sl->b = b;
		sl->want = br->refs;
		l->bodies.n++;
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
	const unsigned char *p = r_take(&l->r, MSG_FIXED);
	struct q_msg *m = NULL;
	struct q_msg_ext *x = NULL;
	struct q_body *b = NULL;
	struct oslot *sl = NULL;
	struct body_rec br = {0};
	uint64_t seq, expires, due, origin;
	uint32_t deliveries, failures, dl_from;
	uint8_t dl_reason, in_heap, here;
	size_t bsize = 0;
	int inl;

	if (p == NULL) {
		bad(l);
		return NULL;
	}
	seq = get_u64(p);
	deliveries = get_u32(p + 8);
	failures = get_u32(p + 12);
	dl_from = get_u32(p + 16);
	dl_reason = p[20];
	expires = get_u64(p + 21);
	in_heap = p[29];
	due = get_u64(p + 30);
	origin = get_u64(p + 38);
	here = p[46];
	/* Only an armed timer has a due time (q_state_check): without one
	 * the value would have nowhere to live. */
	if (seq == 0 || seq >= s->next_seq || origin == 0 || origin > seq ||
	    in_heap > 1 || (!in_heap && due != 0) ||
	    dl_reason > Q_REASON_OVERFLOW || here > 1 ||
	    (dl_reason != 0 && (dl_from == 0 || dl_from >= s->next_qid))) {
		bad(l);
		return NULL;
	}
	if (here) {
		if (r_body(l, &br) != 0) {
			return NULL;
		}
		/* A body later messages may refer to goes into the map, and
		 * its key must not be there yet. Two bodies of one copy with
		 * one key are told apart by q_state_check() (two bodies with
		 * key K), before anything is claimed. */
		if (l->format == FORMAT_INLINE || br.refs > 1) {
			if (omap_reserve(&l->bodies) != 0) {
				nomem(l);
				return NULL;
			}
			sl = omap_slot(&l->bodies, origin);
			if (sl->key == origin) {
				bad(l);
				return NULL;
			}
		}
		bsize = q__body_size(s, br.id_len, br.len);
	} else {
		/* A body of one copy (format 2) is never in the map: a
		 * second copy of it is corrupt. */
		sl = omap_slot(&l->bodies, origin);
		if (sl->key != origin) {
			bad(l);
			return NULL;
		}
		b = sl->b;
		/* More copies than the dump said (one that lives in its
		 * first copy's allocation cannot take a second). */
		if (l->format == FORMAT_STORE && b->refs >= sl->want) {
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
		if (add_body(l, sl, b, &br) != 0) {
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

/* After a failed load of format 1 into a state with a body interface: the
 * store forgets every body the load put (all are in the map). A format 2
 * load claims only once it has succeeded. */
static void drop_loaded(struct loader *l)
{
	const struct q_bodies *bs = l->s->bodies;
	uint64_t i;
	if (bs == NULL || l->format != FORMAT_INLINE ||
	    l->bodies.slots == NULL) {
		return;
	}
	for (i = 0; i <= l->bodies.mask; i++) {
		if (l->bodies.slots[i].key != 0) {
			bs->drop(bs->data, l->bodies.slots[i].key);
		}
	}
}

static void claim_list(const struct q_bodies *bs, const struct q_link *head)
{
	const struct q_link *l;
	for (l = head->next; l != head; l = l->next) {
		const struct q_body *b =
			Q__CONTAINER_OF(l, struct q_msg, link)->body;
		if (b->refs == 1) {
			bs->claim(bs->data, b->origin);
		}
	}
}

/* A format 2 load that succeeded claims every body, once: those of one
 * copy at their message, the others from the map (it holds them all). Only
 * now, after q_state_check(), are the keys known to be distinct (a body
 * of one copy is in no map), and a load that fails has nothing to undo. */
static void claim_loaded(struct loader *l)
{
	const struct q_state *s = l->s;
	const struct q_bodies *bs = s->bodies;
	uint64_t i;
	for (i = 0; i < s->n_queues; i++) {
		const struct q_queue *q = s->queues[i];
		claim_list(bs, &q->returned);
		claim_list(bs, &q->ready);
		claim_list(bs, &q->delayed);
	}
	for (i = 0; i < s->n_consumers; i++) {
		claim_list(bs, &s->consumers[i]->unacked);
	}
	for (i = 0; i <= l->bodies.mask; i++) {
		if (l->bodies.slots[i].key != 0) {
			bs->claim(bs->data, l->bodies.slots[i].key);
		}
	}
}

/* Every body of several copies has as many as the dump said (format 2). A
 * body of one copy is in no map, so no other message could take it. */
static void check_refs(struct loader *l)
{
	uint64_t i;
	for (i = 0; i <= l->bodies.mask; i++) {
		const struct oslot *sl = &l->bodies.slots[i];
		if (sl->key != 0 && sl->b->refs != sl->want) {
			why(l, "body %llu: %u copies, the dump says %u",
			    (unsigned long long)sl->key, sl->b->refs, sl->want);
			bad(l);
			return;
		}
	}
}

int q_state_load(struct q_state *s, const void *buf, size_t len)
{
	struct loader l;
	const unsigned char *p = buf;
	uint64_t *cursors = NULL, i;
	char errbuf[128];
	int rv;

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
	if (get_u64(p + len - 8) != hash_bytes(HASH_INIT, p, len - 12)) {
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
	 * reusing ids (found by tests/fuzz/fuzz_snapshot). Nor can a seq or
	 * consumer id of 2^63 (centuries at a billion a second), and one just
	 * under the maximum wraps a few commands later: a TICK that
	 * dead-letters and a publish (found by tests/fuzz/fuzz_snapshot). */
	if (l.r.bad || s->next_seq == 0 || s->next_consumer == 0 ||
	    s->next_qid == 0 || s->next_seq >= COUNTER_LIMIT ||
	    s->next_consumer >= COUNTER_LIMIT || s->next_qid == UINT32_MAX) {
		why(&l, "a counter out of range");
		q__state_clear(s);
		return Q_ECORRUPT;
	}
	if (omap_init(&l.bodies, 0) != 0) {
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
	if (l.rv == 0 && l.format == FORMAT_STORE) {
		check_refs(&l);
	}
	if (l.rv == 0) {
		/* Unlike q_state_check(), refuses the load when it cannot
		 * allocate what the checks need: a load claims bodies by the
		 * keys the checks prove distinct. */
		rv = q__state_check(s, errbuf, sizeof errbuf, Q__CHECK_LOADED);
		if (rv == Q_ENOMEM) {
			nomem(&l);
		} else if (rv != 0) {
			l.rv = Q_ECORRUPT;
			why(&l, "inconsistent state: %s", errbuf);
		}
	}
	if (l.rv == 0 && l.format == FORMAT_STORE) {
		claim_loaded(&l);
	} else if (l.rv != 0) {
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
