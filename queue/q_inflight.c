/* Delivered-not-acked messages: the per-queue index by tag, handing a
 * message to a consumer, taking it back, and removing consumers.
 *
 * A delivery tag is the message's seq, unique within its queue, so the
 * index is per queue; an ack also names the consumer and a tag held by
 * another consumer of the same queue is refused by the caller comparing
 * the message's holder. The index is an intrusive chained hash (through
 * the side struct's hnext: every held message has one) whose table always
 * exists, so inserting never allocates. */
#include <string.h>

#include "q_int.h"

static uint64_t slot(const struct q_queue *q, q_seq seq)
{
	/* Fibonacci hashing: seqs are consecutive integers. */
	return ((seq * 0x9e3779b97f4a7c15ull) >> 32) & (q->nubuckets - 1);
}

void q__unacked_grow(struct q_state *s, struct q_queue *q, uint64_t extra)
{
	uint64_t n = q->nubuckets;
	struct q_msg **b;
	struct q_link *cl;
	while (q->n_unacked + extra > n * 2) {
		n *= 2;
	}
	if (n == q->nubuckets) {
		return;
	}
	b = q__malloc(s, n * sizeof *b);
	if (b == NULL) {
		return; /* longer chains, same results */
	}
	memset(b, 0, n * sizeof *b);
	q__free(s, q->ubuckets, q->nubuckets * sizeof *q->ubuckets);
	q->ubuckets = b;
	q->nubuckets = n;
	for (cl = q->consumers.next; cl != &q->consumers; cl = cl->next) {
		struct q_consumer *c =
			Q__CONTAINER_OF(cl, struct q_consumer, qlink);
		struct q_link *l;
		for (l = c->unacked.next; l != &c->unacked; l = l->next) {
			struct q_msg *m =
				Q__CONTAINER_OF(l, struct q_msg, link);
			uint64_t h = slot(q, m->seq);
			m->ext->hnext = b[h];
			b[h] = m;
		}
	}
}

struct q_msg *q__unacked_find(const struct q_queue *q, q_seq seq)
{
	struct q_msg *m = q->ubuckets[slot(q, seq)];
	while (m != NULL && m->seq != seq) {
		m = m->ext->hnext;
	}
	return m;
}

void q__unacked_index(struct q_queue *q, struct q_msg *m)
{
	uint64_t h = slot(q, m->seq);
	m->ext->hnext = q->ubuckets[h];
	q->ubuckets[h] = m;
}

void q__delivery_fill(const struct q_state *s, const struct q_msg *m,
		      struct q_delivery *d)
{
	const struct q_body *b = m->body;
	const struct q_consumer *c = q__msg_consumer(m);
	int here = s->bodies == NULL; /* the bytes are in memory */
	d->consumer = c != NULL ? c->id : 0;
	d->session = c != NULL ? &c->session : NULL;
	d->queue = m->queue->name;
	d->seq = m->seq;
	d->msg_id = here && b->id_len ? (const char *)b->data : NULL;
	d->msg_id_len = b->id_len;
	d->body = here ? b->data + b->id_len : NULL;
	d->body_len = b->len;
	d->body_key = b->origin;
	d->body_sum = b->sum;
	d->delivery_count = q__msg_deliveries(m);
	d->published_ms = b->published_ms;
	d->dl_reason = m->dl_reason;
	d->dl_queue = NULL;
	if (m->dl_reason != Q_REASON_NONE) {
		const struct q_queue *from = q__queue_by_id(s, m->dl_from);
		d->dl_queue = from != NULL ? from->name : NULL;
	}
}

int q_state_delivery(const struct q_state *s, q_consumer_id consumer, q_seq seq,
		     uint32_t deliveries, struct q_delivery *d)
{
	const struct q_consumer *c = q__consumer_find(s, consumer);
	const struct q_msg *m;
	if (c == NULL) {
		return Q_ENOTFOUND;
	}
	m = q__unacked_find(c->queue, seq);
	if (m == NULL || q__msg_consumer(m) != c ||
	    q__msg_deliveries(m) != deliveries) {
		return Q_ENOTFOUND;
	}
	q__delivery_fill(s, m, d);
	return 0;
}

void q__deliver(struct q_state *s, struct q_consumer *c, struct q_msg *m)
{
	struct q_queue *q = c->queue;
	struct q_msg_ext *x = q__msg_ext(s, m);

	q__unacked_grow(s, q, 1);
	q__unacked_index(q, m);
	m->where = Q__UNACKED;
	x->consumer = c;
	q__list_append(&c->unacked, &m->link);
	c->n_unacked++;
	q->n_unacked++;
	if (c->credit != Q_CREDIT_UNLIMITED) {
		c->credit--;
	}
	/* Saturates: 2^32 deliveries of one message (max_deliveries 0 and a
	 * consumer that nacks in a loop, or a dump saying so) must not wrap
	 * to "never delivered" (found by tests/fuzz/fuzz_snapshot). */
	if (x->deliveries != UINT32_MAX) {
		x->deliveries++;
	}
	q->c.delivered++;
	if (x->deliveries > 1) {
		q->c.redelivered++;
	}
	if (q->settings.ack_timeout_ms != 0) {
		q__timer_arm(s, m, s->now + q->settings.ack_timeout_ms);
	}
	if (s->sink != NULL && s->sink->deliver != NULL) {
		struct q_delivery d;
		q__delivery_fill(s, m, &d);
		s->sink->deliver(s->sink->data, &d);
	}
}

void q__unacked_take(struct q_state *s, struct q_msg *m)
{
	struct q_queue *q = m->queue;
	struct q_msg_ext *x = m->ext;
	struct q_consumer *c = x->consumer;
	struct q_msg **pp = &q->ubuckets[slot(q, m->seq)];
	while (*pp != m) {
		pp = &(*pp)->ext->hnext;
	}
	*pp = x->hnext;
	x->hnext = NULL;
	c->n_unacked--;
	q->n_unacked--;
	x->consumer = NULL;
	/* The consumer has room again. */
	q__mark_dirty(s, q);
}

void q__unacked_return(struct q_state *s, struct q_msg *m, int failed,
		       uint64_t delay_ms)
{
	struct q_queue *q = m->queue;
	q__msg_unlink(s, m);
	if (failed) {
		m->ext->failures++;
		if (q->settings.max_deliveries != 0 &&
		    m->ext->failures >= q->settings.max_deliveries) {
			q__msg_dead_letter(s, m, Q_REASON_MAX_DELIVERIES);
			return;
		}
	}
	if (delay_ms != 0) {
		q__msg_place(s, m, Q__DELAYED, s->now + delay_ms);
	} else {
		q__msg_place(s, m, Q__RETURNED, 0);
	}
}

void q__consumer_remove(struct q_state *s, struct q_consumer *c, int failed,
			int report)
{
	struct q_queue *q = c->queue;
	int found;
	uint64_t pos;

	/* Back in delivery order, so they go out again in that order. */
	while (!q__list_empty(&c->unacked)) {
		struct q_msg *m =
			Q__CONTAINER_OF(c->unacked.next, struct q_msg, link);
		q__unacked_return(s, m, failed, 0);
	}
	if (q->cursor == c) {
		struct q_link *prev = c->qlink.prev;
		q->cursor = prev == &q->consumers
				    ? NULL
				    : Q__CONTAINER_OF(prev, struct q_consumer,
						      qlink);
	}
	q__list_remove(&c->qlink);
	q->n_consumers--;
	pos = q__consumer_pos(s, c->id, &found);
	memmove(&s->consumers[pos], &s->consumers[pos + 1],
		(s->n_consumers - pos - 1) * sizeof *s->consumers);
	s->n_consumers--;
	if (report && s->sink != NULL && s->sink->consumer_gone != NULL) {
		struct q_consumer_gone g = {
			.consumer = c->id,
			.session = &c->session,
			.queue = q->name,
		};
		s->sink->consumer_gone(s->sink->data, &g);
	}
	q__free(s, c, sizeof *c);
}
