/* q_state_check(): a full walk of the state verifying every invariant the
 * rest of queue/ relies on. Used after every step of the model test, after
 * q_state_load(), and available to debug builds of the node. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "q_int.h"

struct ck {
	char *buf;
	size_t len;
	int failed;
	int nomem;	/* a check was skipped: no memory for its scratch */
	unsigned flags; /* Q__CHECK_* */
	/* Gathered by check_list() for the checks that follow it: the seqs
	 * of the queue being checked and the body keys of every message. */
	q_seq seq_min, seq_max, key_min, key_max;
};

__attribute__((format(printf, 2, 3))) static int fail(struct ck *k,
						      const char *fmt, ...)
{
	va_list ap;
	if (!k->failed && k->buf != NULL && k->len > 0) {
		va_start(ap, fmt);
		vsnprintf(k->buf, k->len, fmt, ap);
		va_end(ap);
	}
	k->failed = 1;
	return Q_ECORRUPT;
}

#define CHECK(cond, ...)                             \
	do {                                         \
		if (!(cond)) {                       \
			return fail(k, __VA_ARGS__); \
		}                                    \
	} while (0)

static int check_timer(struct ck *k, const struct q_msg *m)
{
	uint64_t expires = q__msg_expires(m);
	CHECK(!m->in_heap || m->ext != NULL,
	      "message %llu: a timer without a side struct",
	      (unsigned long long)m->seq);
	/* The dump writes due as it is; only an armed timer has one. */
	CHECK(m->in_heap || q__msg_due(m) == 0,
	      "message %llu: due %llu without a timer",
	      (unsigned long long)m->seq, (unsigned long long)q__msg_due(m));
	switch (m->where) {
	case Q__DELAYED:
		CHECK(m->in_heap, "delayed message %llu has no timer",
		      (unsigned long long)m->seq);
		break;
	case Q__READY:
	case Q__RETURNED:
		CHECK(m->in_heap == (expires != 0),
		      "message %llu: ttl timer armed=%d expires=%llu",
		      (unsigned long long)m->seq, m->in_heap,
		      (unsigned long long)expires);
		CHECK(!m->in_heap || q__msg_due(m) == expires,
		      "message %llu: ttl timer due %llu != expires",
		      (unsigned long long)m->seq,
		      (unsigned long long)q__msg_due(m));
		break;
	default:
		break;
	}
	return 0;
}

static int check_body(struct ck *k, const struct q_state *s,
		      const struct q_msg *m)
{
	const struct q_body *b = m->body;
	CHECK(b != NULL && b->refs > 0, "message %llu has no body",
	      (unsigned long long)m->seq);
	CHECK(!q__msg_body_inline(m) || b->refs == 1,
	      "message %llu: a body in its allocation has %u copies",
	      (unsigned long long)m->seq, b->refs);
	/* The key is the seq of the publish; a dead-lettered copy has a
	 * later seq of its own. */
	CHECK(b->origin > 0 && b->origin <= m->seq,
	      "message %llu: body key %llu", (unsigned long long)m->seq,
	      (unsigned long long)b->origin);
	CHECK(b->published_ms <= s->now && b->id_len <= 1024,
	      "message %llu: body published at %llu, id of %u bytes",
	      (unsigned long long)m->seq, (unsigned long long)b->published_ms,
	      b->id_len);
	CHECK(s->bodies != NULL || b->sum == 0,
	      "message %llu: a checksum on a body in memory",
	      (unsigned long long)m->seq);
	return 0;
}

static int check_list(struct ck *k, const struct q_state *s,
		      const struct q_queue *q, const struct q_link *head,
		      uint8_t where, uint64_t expect, uint64_t *bytes,
		      uint64_t *in_heap)
{
	const struct q_link *l;
	uint64_t n = 0;
	for (l = head->next; l != head; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		const struct q_consumer *holder = q__msg_consumer(m);
		CHECK(l->next->prev == l, "broken list link in %s", q->name);
		CHECK(m->queue == q,
		      "message %llu in %s owned by another queue",
		      (unsigned long long)m->seq, q->name);
		CHECK(m->where == where, "message %llu in %s: where %d != %d",
		      (unsigned long long)m->seq, q->name, m->where, where);
		CHECK(m->seq > 0 && m->seq < s->next_seq,
		      "message seq %llu out of range",
		      (unsigned long long)m->seq);
		CHECK(m->ext == NULL || m->ext->msg == m,
		      "message %llu: side struct of another message",
		      (unsigned long long)m->seq);
		if (check_body(k, s, m) != 0) {
			return Q_ECORRUPT;
		}
		k->seq_min = m->seq < k->seq_min ? m->seq : k->seq_min;
		k->seq_max = m->seq > k->seq_max ? m->seq : k->seq_max;
		k->key_min = m->body->origin < k->key_min ? m->body->origin
							  : k->key_min;
		k->key_max = m->body->origin > k->key_max ? m->body->origin
							  : k->key_max;
		/* Every failure ended a delivery, and only a delivery that
		 * has not failed is ever undone (unseen tags). */
		CHECK(q__msg_failures(m) <= q__msg_deliveries(m),
		      "message %llu: %u failed deliveries of %u",
		      (unsigned long long)m->seq, q__msg_failures(m),
		      q__msg_deliveries(m));
		if (where == Q__UNACKED) {
			CHECK(holder != NULL && q__msg_deliveries(m) > 0,
			      "unacked %llu without consumer or delivery",
			      (unsigned long long)m->seq);
			CHECK(q__unacked_find(q, m->seq) == m,
			      "unacked %llu not in the index of %s",
			      (unsigned long long)m->seq, q->name);
			/* The delivery it is held under has not failed (yet):
			 * its failure would be one more than deliveries
			 * (unless the count saturated, q_inflight.c). */
			CHECK(q__msg_failures(m) < q__msg_deliveries(m) ||
				      q__msg_deliveries(m) == UINT32_MAX,
			      "unacked %llu: %u failed deliveries of %u",
			      (unsigned long long)m->seq, q__msg_failures(m),
			      q__msg_deliveries(m));
		} else {
			CHECK(holder == NULL, "queued %llu has a consumer",
			      (unsigned long long)m->seq);
			*bytes += m->body->len;
		}
		if (m->dl_reason != Q_REASON_NONE) {
			CHECK(m->dl_reason <= Q_REASON_OVERFLOW &&
				      m->dl_from < s->next_qid,
			      "message %llu: bad dead-letter info",
			      (unsigned long long)m->seq);
		}
		if (check_timer(k, m) != 0) {
			return Q_ECORRUPT;
		}
		*in_heap += m->in_heap;
		n++;
	}
	CHECK(n == expect, "%s: list count %llu != gauge %llu", q->name,
	      (unsigned long long)n, (unsigned long long)expect);
	return 0;
}

/* Entries whose table slots are fetched ahead of the one checked: a table
 * of millions of ids is far bigger than the caches. */
#define DD_AHEAD 16

static int check_dedup(struct ck *k, const struct q_state *s,
		       const struct q_dedup *d, const char *owner)
{
	const struct q_link *l, *ahead = d->fifo.next;
	uint64_t n = 0, last = 0;
	/* Each entry's hash and place in the table: q_state_load() made
	 * them so (Q__CHECK_LOADED). */
	bool table = !(k->flags & Q__CHECK_LOADED);
	int i;
	for (i = 0; table && i < DD_AHEAD && ahead != &d->fifo; i++) {
		ahead = ahead->next;
	}
	for (l = d->fifo.next; l != &d->fifo; l = l->next) {
		const struct q_dd *e = Q__CONTAINER_OF(l, struct q_dd, fifo);
		CHECK(e->at_ms >= last && e->at_ms <= s->now,
		      "%s: dedup entries out of time order", owner);
		last = e->at_ms;
		CHECK(d->nslots[0] > 0, "%s: dedup entries without table",
		      owner);
		n++;
		if (!table) {
			continue;
		}
		if (ahead != &d->fifo) {
			q__dedup_prefetch(
				d, Q__CONTAINER_OF(ahead, struct q_dd, fifo)
					   ->hash);
			ahead = ahead->next;
		}
		CHECK(e->hash == (uint32_t)q__hash(s->hash_seed, e->id, e->len),
		      "%s: dedup entry with a wrong hash", owner);
		CHECK(q__dedup_has(d, e), "%s: dedup entry not in its table",
		      owner);
	}
	CHECK(n == d->count, "%s: dedup count %llu != %llu", owner,
	      (unsigned long long)n, (unsigned long long)d->count);
	return 0;
}

/* ------------------------------------------------ uniqueness of keys
 *
 * Two checks need every message at once: seqs are unique within a queue,
 * and each body key belongs to one body with as many copies as its refs.
 * When the keys are dense (at most 64 possible keys per message between
 * the smallest and the largest, as in any backlog: keys are publish seqs)
 * a bitmap of that range tells a key seen twice, in one walk and 1 bit per
 * key. Otherwise the messages are sorted by key. */

/* Every message of one queue: ready, returned, delayed, then each
 * consumer's unacked. */
struct qwalk {
	const struct q_queue *q;
	const struct q_link *head, *l, *cons;
	int list; /* 0..2: the queue's own lists; 3: cons's unacked */
};

static void qwalk_init(struct qwalk *w, const struct q_queue *q)
{
	w->q = q;
	w->list = 0;
	w->head = &q->ready;
	w->l = q->ready.next;
	w->cons = &q->consumers;
}

static const struct q_msg *qwalk_next(struct qwalk *w)
{
	const struct q_link *l;
	while (w->l == w->head) {
		if (w->list < 2) {
			w->head = ++w->list == 1 ? &w->q->returned
						 : &w->q->delayed;
		} else {
			w->list = 3;
			w->cons = w->cons->next;
			if (w->cons == &w->q->consumers) {
				return NULL;
			}
			w->head = &Q__CONTAINER_OF(w->cons, struct q_consumer,
						   qlink)
					   ->unacked;
		}
		w->l = w->head->next;
	}
	l = w->l;
	w->l = l->next;
	return Q__CONTAINER_OF(l, struct q_msg, link);
}

/* A bitmap of the keys [lo, hi] if it costs at most 8 bytes per message
 * (n); NULL if not dense enough or no memory (then the caller sorts). */
static uint64_t *bitmap_new(q_seq lo, q_seq hi, uint64_t n)
{
	uint64_t words = (hi - lo) / 64 + 1;
	if (hi < lo || words > n + 1) {
		return NULL;
	}
	return calloc(words, sizeof(uint64_t));
}

/* Marks key; returns whether it was marked already. */
static int bitmap_test_set(uint64_t *bits, q_seq lo, q_seq key)
{
	uint64_t i = key - lo, bit = 1ull << (i % 64);
	int was = (bits[i / 64] & bit) != 0;
	bits[i / 64] |= bit;
	return was;
}

/* A message by a key (its seq, or its body's key) and its body: sorting
 * these needs no reads of the messages. */
struct msg_key {
	q_seq key;
	const struct q_body *b;
};

#define RADIX_BITS 8
#define RADIX (1u << RADIX_BITS)

/* Sorts v by key; the order of equal keys is left as it comes (the checks
 * below do not need one). Messages are mostly in key order already (a
 * queue's in publish order): then this is one pass. Otherwise a
 * least-significant-digit radix sort, skipping the digits that every key
 * shares: a few linear passes whatever the keys (qsort of millions of
 * entries took seconds of a load). Q_ENOMEM if its scratch cannot be
 * allocated (v is then unsorted). */
static int sort_keys(struct msg_key *v, uint64_t n)
{
	struct msg_key *tmp, *src = v, *dst;
	uint64_t count[RADIX], i, bits = 0;
	unsigned shift;
	bool sorted = true;

	for (i = 0; i < n; i++) {
		sorted &= i == 0 || v[i - 1].key <= v[i].key;
		bits |= v[i].key;
	}
	if (sorted) {
		return 0;
	}
	tmp = malloc(n * sizeof *tmp);
	if (tmp == NULL) {
		return Q_ENOMEM;
	}
	dst = tmp;
	for (shift = 0; shift < 64 && (bits >> shift) != 0;
	     shift += RADIX_BITS) {
		uint64_t sum = 0;
		memset(count, 0, sizeof count);
		for (i = 0; i < n; i++) {
			count[(src[i].key >> shift) & (RADIX - 1)]++;
		}
		if (count[(src[0].key >> shift) & (RADIX - 1)] == n) {
			continue; /* one digit for all: already in order */
		}
		for (i = 0; i < RADIX; i++) {
			uint64_t c = count[i];
			count[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++) {
			dst[count[(src[i].key >> shift) & (RADIX - 1)]++] =
				src[i];
		}
		dst = src;
		src = src == v ? tmp : v;
	}
	if (src != v) {
		memcpy(v, src, n * sizeof *v);
	}
	free(tmp);
	return 0;
}

/* Appends (key, body) of the messages of q (every list, held ones too) to
 * v: keyed by seq, or by body key; by_body 2: only those whose body has
 * several copies. */
static uint64_t collect_msgs(const struct q_queue *q, int by_body,
			     struct msg_key *v, uint64_t n, uint64_t cap)
{
	struct qwalk w;
	const struct q_msg *m;
	qwalk_init(&w, q);
	while (n < cap && (m = qwalk_next(&w)) != NULL) {
		if (by_body == 2 && m->body->refs == 1) {
			continue;
		}
		v[n].key = by_body ? m->body->origin : m->seq;
		v[n++].b = m->body;
	}
	return n;
}

/* A seq is the delivery tag, unique within its queue (q.h): two messages
 * with one seq make acks and the unacked index pick the wrong one. A dump
 * could hold such a pair (found by tests/fuzz/fuzz_snapshot), and
 * q_state_load() relies on this check to refuse it. Runs after the list
 * checks, so the counts match the lists and k->seq_min/max are q's. */
static int check_unique_seqs(struct ck *k, const struct q_queue *q)
{
	uint64_t cap = q->n_ready + q->n_returned + q->n_delayed + q->n_unacked;
	uint64_t n, i, *bits;
	struct msg_key *v;
	if (cap < 2) {
		return 0;
	}
	bits = bitmap_new(k->seq_min, k->seq_max, cap);
	if (bits != NULL) {
		struct qwalk w;
		const struct q_msg *m;
		qwalk_init(&w, q);
		while ((m = qwalk_next(&w)) != NULL &&
		       !bitmap_test_set(bits, k->seq_min, m->seq)) {
		}
		free(bits);
		if (m != NULL) {
			return fail(k, "%s: two messages with seq %llu",
				    q->name, (unsigned long long)m->seq);
		}
		return 0;
	}
	v = malloc(cap * sizeof *v);
	if (v == NULL) {
		k->nomem = 1; /* cannot tell; every other check still runs */
		return 0;
	}
	n = collect_msgs(q, 0, v, 0, cap);
	if (sort_keys(v, n) != 0) {
		k->nomem = 1;
		free(v);
		return 0;
	}
	for (i = 1; i < n && v[i - 1].key != v[i].key; i++) {
	}
	if (i < n) {
		fail(k, "%s: two messages with seq %llu", q->name,
		     (unsigned long long)v[i].key);
		free(v);
		return Q_ECORRUPT;
	}
	free(v);
	return 0;
}

static int check_queue(struct ck *k, const struct q_state *s,
		       const struct q_queue *q, uint64_t *msgs,
		       uint64_t *in_heap)
{
	uint64_t bytes = 0, unacked = 0, nc = 0;
	const struct q_link *l;
	int cursor_ok = q->cursor == NULL;

	k->seq_min = UINT64_MAX;
	k->seq_max = 0;
	CHECK(q_name_valid(q->name), "invalid queue name");
	CHECK(q->id > 0 && q->id < s->next_qid, "%s: bad id", q->name);
	CHECK(q__settings_valid(&q->settings) &&
		      q->settings.dead_letter == q->dead_letter,
	      "%s: bad settings", q->name);
	CHECK(q__list_empty(&q->dirty), "%s: left dirty", q->name);
	if (check_list(k, s, q, &q->returned, Q__RETURNED, q->n_returned,
		       &bytes, in_heap) ||
	    check_list(k, s, q, &q->ready, Q__READY, q->n_ready, &bytes,
		       in_heap) ||
	    check_list(k, s, q, &q->delayed, Q__DELAYED, q->n_delayed, &bytes,
		       in_heap)) {
		return Q_ECORRUPT;
	}
	CHECK(bytes == q->bytes, "%s: bytes %llu != %llu", q->name,
	      (unsigned long long)bytes, (unsigned long long)q->bytes);
	for (l = q->consumers.next; l != &q->consumers; l = l->next) {
		const struct q_consumer *c =
			Q__CONTAINER_OF(l, struct q_consumer, qlink);
		uint64_t dummy = 0;
		CHECK(c->queue == q, "consumer %llu in the wrong queue",
		      (unsigned long long)c->id);
		CHECK(q__consumer_find(s, c->id) == c,
		      "consumer %llu not registered",
		      (unsigned long long)c->id);
		if (check_list(k, s, q, &c->unacked, Q__UNACKED, c->n_unacked,
			       &dummy, in_heap)) {
			return Q_ECORRUPT;
		}
		for (const struct q_link *u = c->unacked.next; u != &c->unacked;
		     u = u->next) {
			CHECK(q__msg_consumer(Q__CONTAINER_OF(u, struct q_msg,
							      link)) == c,
			      "unacked message held by another consumer");
		}
		cursor_ok |= q->cursor == c;
		unacked += c->n_unacked;
		nc++;
	}
	CHECK(cursor_ok, "%s: cursor is not one of its consumers", q->name);
	/* Dispatch runs until one of the two is gone; the side struct
	 * reserve of every command relies on it (q_state.c). */
	CHECK(q->n_ready + q->n_returned == 0 || !q__queue_has_room(q),
	      "%s: a message waits while a consumer has room", q->name);
	CHECK(nc == q->n_consumers, "%s: consumer count", q->name);
	CHECK(unacked == q->n_unacked, "%s: unacked %llu != %llu", q->name,
	      (unsigned long long)unacked, (unsigned long long)q->n_unacked);
	if (check_unique_seqs(k, q) != 0) {
		return Q_ECORRUPT;
	}
	if (q->topic != NULL) {
		size_t tl = strlen(q->topic->name);
		CHECK(strncmp(q->name, q->topic->name, tl) == 0 &&
			      q->name[tl] == ':',
		      "%s: not named after its topic", q->name);
	}
	*msgs += q->n_ready + q->n_returned + q->n_delayed + q->n_unacked;
	return check_dedup(k, s, &q->dedup, q->name);
}

static int key_le(const struct q_hnode *a, const struct q_hnode *b)
{
	return !q__timer_less(b, a);
}

/* Depth-first walk of the heap with an explicit stack (the heap can be a
 * root with a very long child list, or very deep): every child is ordered
 * after its parent and the links agree with each other. */
static int check_heap(struct ck *k, const struct q_state *s)
{
	const struct q_hnode **stack;
	uint64_t top = 0, count = 0;
	int rv = 0;

	if (s->timers.root == NULL) {
		CHECK(s->timers.count == 0, "empty heap with count %llu",
		      (unsigned long long)s->timers.count);
		return 0;
	}
	CHECK(s->timers.root->prev == NULL && s->timers.root->sibling == NULL,
	      "heap root has a parent or sibling");
	/* Scratch from libc, outside the state's allocator, so checking
	 * never disturbs an allocation-failure test. */
	stack = malloc((s->timers.count + 1) * sizeof *stack);
	if (stack == NULL) {
		k->nomem = 1; /* cannot walk; nothing known to be wrong */
		return 0;
	}
	stack[top++] = s->timers.root;
	while (top > 0 && rv == 0) {
		const struct q_hnode *n = stack[--top];
		const struct q_hnode *c, *left = n;
		const struct q_msg_ext *x =
			Q__CONTAINER_OF(n, struct q_msg_ext, timer);
		count++;
		if (x->msg->ext != x || !x->msg->in_heap) {
			rv = fail(k, "heap holds a message not marked in_heap");
			break;
		}
		for (c = n->child; c != NULL; left = c, c = c->sibling) {
			if (c->prev != left || !key_le(n, c)) {
				rv = fail(k, "heap order or links broken");
				break;
			}
			if (count + top >= s->timers.count) {
				rv = fail(k, "heap has more nodes than count");
				break;
			}
			stack[top++] = c;
		}
	}
	free(stack);
	if (rv != 0) {
		return rv;
	}
	CHECK(count == s->timers.count, "heap count %llu != %llu",
	      (unsigned long long)count, (unsigned long long)s->timers.count);
	return 0;
}

/* Runs of one key in v (sorted by key) are the copies of one body: each
 * one's refs is the length of its run, and no run starts after an entry of
 * its key (two bodies with one key would share a run of that key, and one
 * of them would start a run after an entry of that key). Each body's key
 * is also marked in bits, if given, against the bodies counted apart. */
static int check_runs(struct ck *k, const struct msg_key *v, uint64_t n,
		      uint64_t *bits, q_seq lo, uint64_t *distinct,
		      uint64_t *bytes, uint64_t *stored)
{
	uint64_t i, j;
	for (i = 0; i < n; i = j) {
		const struct q_body *b = v[i].b;
		for (j = i + 1; j < n && v[j].b == b; j++) {
		}
		if (b->refs != j - i) {
			return fail(k, "body %llu: refs %u, %llu copies",
				    (unsigned long long)b->origin, b->refs,
				    (unsigned long long)(j - i));
		}
		if ((i > 0 && v[i - 1].key == b->origin) ||
		    (bits != NULL && bitmap_test_set(bits, lo, b->origin))) {
			return fail(k, "two bodies with key %llu",
				    (unsigned long long)b->origin);
		}
		(*distinct)++;
		*bytes += b->len;
		*stored += (uint64_t)b->len + b->id_len;
	}
	return 0;
}

/* Bodies: each one's refs is the number of copies pointing at it, keys are
 * unique (put and drop name bodies by key), and the totals add up. Runs
 * after the list checks (message counts are right, bodies not NULL,
 * k->key_min/max set). With dense keys, bodies of one copy (all of them in
 * most states) are told apart by a bitmap, and only the copies of the
 * others are sorted. */
static int check_bodies(struct ck *k, const struct q_state *s)
{
	struct msg_key *v;
	uint64_t n = 0, cap = s->n_msgs, i, distinct = 0, bytes = 0, stored = 0,
		 *bits;
	int rv = 0;

	if (s->n_msgs == 0) {
		CHECK(s->n_bodies == 0 && s->body_bytes == 0 &&
			      s->stored_bytes == 0,
		      "bodies without messages");
		return 0;
	}
	bits = bitmap_new(k->key_min, k->key_max, s->n_msgs);
	if (bits != NULL) {
		cap = 0;
		for (i = 0; i < s->n_queues && rv == 0; i++) {
			struct qwalk w;
			const struct q_msg *m;
			qwalk_init(&w, s->queues[i]);
			while ((m = qwalk_next(&w)) != NULL) {
				const struct q_body *b = m->body;
				if (b->refs > 1) {
					cap++;
					continue;
				}
				/* The only copy, and its key is its own. */
				if (bitmap_test_set(bits, k->key_min,
						    b->origin)) {
					rv = fail(
						k,
						"body %llu: a second copy "
						"or a second body with "
						"its key",
						(unsigned long long)b->origin);
					break;
				}
				distinct++;
				bytes += b->len;
				stored += (uint64_t)b->len + b->id_len;
			}
		}
		if (rv != 0) {
			free(bits);
			return rv;
		}
	}
	v = cap > 0 ? malloc(cap * sizeof *v) : NULL;
	if (cap > 0 && v == NULL) {
		k->nomem = 1; /* cannot tell; every other check still ran */
		free(bits);
		return 0;
	}
	for (i = 0; i < s->n_queues; i++) {
		n = collect_msgs(s->queues[i], bits != NULL ? 2 : 1, v, n, cap);
	}
	if (sort_keys(v, n) != 0) {
		k->nomem = 1;
		free(v);
		free(bits);
		return 0;
	}
	rv = check_runs(k, v, n, bits, k->key_min, &distinct, &bytes, &stored);
	free(v);
	free(bits);
	if (rv != 0) {
		return rv;
	}
	CHECK(distinct == s->n_bodies && bytes == s->body_bytes,
	      "bodies %llu (%llu B) != totals %llu (%llu B)",
	      (unsigned long long)distinct, (unsigned long long)bytes,
	      (unsigned long long)s->n_bodies,
	      (unsigned long long)s->body_bytes);
	CHECK(s->stored_bytes == (s->bodies != NULL ? stored : 0),
	      "stored bytes %llu, bodies hold %llu",
	      (unsigned long long)s->stored_bytes, (unsigned long long)stored);
	return 0;
}

static int check_all(struct ck *k, const struct q_state *s)
{
	uint64_t i, msgs = 0, in_heap = 0, nc = 0;

	CHECK(q__list_empty(&s->dirty), "dirty queues left after apply");
	for (i = 0; i < s->n_queues; i++) {
		CHECK(i == 0 || strcmp(s->queues[i - 1]->name,
				       s->queues[i]->name) < 0,
		      "queue registry not sorted");
		if (check_queue(k, s, s->queues[i], &msgs, &in_heap) != 0) {
			return Q_ECORRUPT;
		}
		nc += s->queues[i]->n_consumers;
	}
	for (i = 0; i < s->n_topics; i++) {
		const struct q_topic *t = s->topics[i];
		uint64_t j;
		CHECK(i == 0 || strcmp(s->topics[i - 1]->name, t->name) < 0,
		      "topic registry not sorted");
		for (j = 0; j < t->n_subs; j++) {
			CHECK(t->subs[j]->topic == t &&
				      q__queue_find(s, t->subs[j]->name) ==
					      t->subs[j],
			      "topic %s: bad subscription", t->name);
			CHECK(j == 0 || strcmp(t->subs[j - 1]->name,
					       t->subs[j]->name) < 0,
			      "topic %s: subscriptions not sorted", t->name);
		}
		if (check_dedup(k, s, &t->dedup, t->name) != 0) {
			return Q_ECORRUPT;
		}
	}
	for (i = 0; i < s->n_queues; i++) {
		const struct q_queue *q = s->queues[i];
		if (q->topic != NULL) {
			int found = 0;
			uint64_t j;
			for (j = 0; j < q->topic->n_subs; j++) {
				found |= q->topic->subs[j] == q;
			}
			CHECK(found, "%s: bound topic does not list it",
			      q->name);
		}
	}
	CHECK(nc == s->n_consumers, "consumer registry count %llu != %llu",
	      (unsigned long long)s->n_consumers, (unsigned long long)nc);
	for (i = 0; i < s->n_consumers; i++) {
		CHECK(s->consumers[i]->id < s->next_consumer &&
			      (i == 0 ||
			       s->consumers[i - 1]->id < s->consumers[i]->id),
		      "consumer registry not sorted");
	}
	CHECK(msgs == s->n_msgs, "message count %llu != %llu",
	      (unsigned long long)msgs, (unsigned long long)s->n_msgs);
	CHECK(in_heap == s->timers.count, "armed timers %llu != heap %llu",
	      (unsigned long long)in_heap, (unsigned long long)s->timers.count);
	CHECK(s->spare == NULL && s->n_spare == 0,
	      "side structs reserved outside a command");
	if (check_bodies(k, s) != 0) {
		return Q_ECORRUPT;
	}
	return check_heap(k, s);
}

int q__state_check(const struct q_state *s, char *errbuf, size_t errlen,
		   unsigned flags)
{
	struct ck k = {errbuf, errlen, 0, 0, flags, 0, 0, UINT64_MAX, 0};
	int rv;
	if (errbuf != NULL && errlen > 0) {
		errbuf[0] = '\0';
	}
	rv = check_all(&k, s);
	if (rv == 0 && k.nomem) {
		if (errbuf != NULL && errlen > 0) {
			snprintf(errbuf, errlen, "no memory to check it all");
		}
		return Q_ENOMEM;
	}
	return rv;
}

int q_state_check(const struct q_state *s, char *errbuf, size_t errlen)
{
	int rv = q__state_check(s, errbuf, errlen, 0);
	if (rv == Q_ENOMEM) {
		/* What could be checked is right. */
		if (errbuf != NULL && errlen > 0) {
			errbuf[0] = '\0';
		}
		return 0;
	}
	return rv;
}
