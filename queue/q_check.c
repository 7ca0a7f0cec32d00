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

static int check_dedup(struct ck *k, const struct q_state *s,
		       const struct q_dedup *d, const char *owner)
{
	const struct q_link *l;
	uint64_t n = 0, last = 0;
	for (l = d->fifo.next; l != &d->fifo; l = l->next) {
		const struct q_dd *e = Q__CONTAINER_OF(l, struct q_dd, fifo);
		CHECK(e->at_ms >= last && e->at_ms <= s->now,
		      "%s: dedup entries out of time order", owner);
		last = e->at_ms;
		CHECK(d->nslots[0] > 0, "%s: dedup entries without table",
		      owner);
		CHECK(e->hash == (uint32_t)q__hash(s->hash_seed, e->id, e->len),
		      "%s: dedup entry with a wrong hash", owner);
		CHECK(q__dedup_has(d, e), "%s: dedup entry not in its table",
		      owner);
		n++;
	}
	CHECK(n == d->count, "%s: dedup count %llu != %llu", owner,
	      (unsigned long long)n, (unsigned long long)d->count);
	return 0;
}

/* A message by a key (its seq, or its body's key) and its body: sorting
 * these needs no reads of the messages (a read per comparison, a cache miss
 * each in a big state, made these checks the slowest part of a load). */
struct msg_key {
	q_seq key;
	const struct q_body *b;
};

static int cmp_key(const void *a, const void *b)
{
	const struct msg_key *x = a, *y = b;
	if (x->key != y->key) {
		return x->key < y->key ? -1 : 1;
	}
	return (uintptr_t)x->b < (uintptr_t)y->b
		       ? -1
		       : (uintptr_t)x->b > (uintptr_t)y->b;
}

static uint64_t collect_list(const struct q_link *head, int by_body,
			     struct msg_key *v, uint64_t n, uint64_t cap)
{
	const struct q_link *l;
	for (l = head->next; l != head && n < cap; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		v[n].key = by_body ? m->body->origin : m->seq;
		v[n++].b = m->body;
	}
	return n;
}

/* Appends the messages of q (every list, held ones too) to v, keyed by seq
 * or by body key. */
static uint64_t collect_msgs(const struct q_queue *q, int by_body,
			     struct msg_key *v, uint64_t n, uint64_t cap)
{
	const struct q_link *l;
	n = collect_list(&q->ready, by_body, v, n, cap);
	n = collect_list(&q->returned, by_body, v, n, cap);
	n = collect_list(&q->delayed, by_body, v, n, cap);
	for (l = q->consumers.next; l != &q->consumers; l = l->next) {
		n = collect_list(
			&Q__CONTAINER_OF(l, struct q_consumer, qlink)->unacked,
			by_body, v, n, cap);
	}
	return n;
}

/* A seq is the delivery tag, unique within its queue (q.h): two messages
 * with one seq make acks and the unacked index pick the wrong one. A dump
 * could hold such a pair (found by tests/fuzz/fuzz_snapshot), and
 * q_state_load() relies on this check to refuse it. Runs after the list
 * checks, so the counts match the lists. */
static int check_unique_seqs(struct ck *k, const struct q_queue *q)
{
	uint64_t cap = q->n_ready + q->n_returned + q->n_delayed + q->n_unacked;
	uint64_t n, i;
	struct msg_key *v;
	if (cap < 2) {
		return 0;
	}
	v = malloc(cap * sizeof *v);
	if (v == NULL) {
		return 0; /* cannot tell; every other check still ran */
	}
	n = collect_msgs(q, 0, v, 0, cap);
	qsort(v, n, sizeof *v, cmp_key);
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
		return 0; /* cannot walk; nothing known to be wrong */
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

/* Bodies: each one's refs is the number of copies pointing at it, keys are
 * unique (put and drop name bodies by key), and the totals add up. Runs
 * after the list checks (message counts are right, bodies not NULL). */
static int check_bodies(struct ck *k, const struct q_state *s)
{
	struct msg_key *v;
	uint64_t n = 0, i, j, distinct = 0, bytes = 0, stored = 0;
	int rv = 0;

	if (s->n_msgs == 0) {
		CHECK(s->n_bodies == 0 && s->body_bytes == 0 &&
			      s->stored_bytes == 0,
		      "bodies without messages");
		return 0;
	}
	v = malloc(s->n_msgs * sizeof *v);
	if (v == NULL) {
		return 0; /* cannot tell; every other check still ran */
	}
	for (i = 0; i < s->n_queues; i++) {
		n = collect_msgs(s->queues[i], 1, v, n, s->n_msgs);
	}
	/* By key, then body: the copies of one body end up next to each
	 * other, and two bodies with one key too. */
	qsort(v, n, sizeof *v, cmp_key);
	for (i = 0; i < n && rv == 0; i = j) {
		const struct q_body *b = v[i].b;
		for (j = i + 1; j < n && v[j].b == b; j++) {
		}
		if (b->refs != j - i) {
			rv = fail(k, "body %llu: refs %u, %llu copies",
				  (unsigned long long)b->origin, b->refs,
				  (unsigned long long)(j - i));
		} else if (i > 0 && v[i - 1].key == b->origin) {
			rv = fail(k, "two bodies with key %llu",
				  (unsigned long long)b->origin);
		}
		distinct++;
		bytes += b->len;
		stored += (uint64_t)b->len + b->id_len;
	}
	free(v);
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

int q_state_check(const struct q_state *s, char *errbuf, size_t errlen)
{
	struct ck kk = {errbuf, errlen, 0}, *k = &kk;
	uint64_t i, msgs = 0, in_heap = 0, nc = 0;

	if (errbuf != NULL && errlen > 0) {
		errbuf[0] = '\0';
	}
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
