/* Peeking: a read-only look at the messages of one queue, in seq order.
 *
 * Messages of a queue sit in several lists (returned, ready, delayed, and
 * each consumer's unacked list) and none of them is sorted by seq: returned
 * messages come back in any order and a delayed publish joins the ready
 * tail late. So a peek makes one pass over the lists it visits and keeps the
 * `max` smallest seqs >= `from` in a max-heap (the largest kept on top, to
 * be replaced by anything smaller), then sorts the heap and reports it. Its
 * scratch memory is the only allocation; nothing in the state changes. */
#include "q_int.h"

/* A binary max-heap of message pointers by seq, in a caller's array. */
struct pick {
	const struct q_msg **a;
	size_t n, cap;
};

static void sift_down(const struct q_msg **a, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, big = i;
		const struct q_msg *t;
		if (l < n && a[l]->seq > a[big]->seq) {
			big = l;
		}
		if (l + 1 < n && a[l + 1]->seq > a[big]->seq) {
			big = l + 1;
		}
		if (big == i) {
			return;
		}
		t = a[i];
		a[i] = a[big];
		a[big] = t;
		i = big;
	}
}

static void pick_offer(struct pick *p, const struct q_msg *m)
{
	size_t i;
	if (p->n < p->cap) {
		/* Sift up. */
		i = p->n++;
		p->a[i] = m;
		while (i > 0 && p->a[(i - 1) / 2]->seq < p->a[i]->seq) {
			const struct q_msg *t = p->a[i];
			p->a[i] = p->a[(i - 1) / 2];
			p->a[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (p->n > 0 && m->seq < p->a[0]->seq) {
		p->a[0] = m;
		sift_down(p->a, p->n, 0);
	}
}

static void offer_list(struct pick *p, const struct q_link *head, q_seq from)
{
	const struct q_link *l;
	for (l = head->next; l != head; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		if (m->seq >= from) {
			pick_offer(p, m);
		}
	}
}

static void fill(const struct q_state *s, const struct q_msg *m,
		 struct q_peeked *o)
{
	q__delivery_fill(s, m, &o->msg);
	o->state = m->where == Q__DELAYED   ? Q_MSG_DELAYED
		   : m->where == Q__UNACKED ? Q_MSG_HELD
					    : Q_MSG_READY;
	/* Ready messages are in the timer heap for their TTL only, which
	 * expires_ms already says. */
	o->due_ms = m->in_heap && o->state != Q_MSG_READY ? q__msg_due(m) : 0;
	o->expires_ms = q__msg_expires(m);
}

int q_state_peek(const struct q_state *s, const char *name, q_seq from,
		 size_t max, unsigned flags,
		 int (*cb)(void *data, const struct q_peeked *m), void *data)
{
	const struct q_queue *q = q__queue_find(s, name);
	struct pick p = {NULL, 0, 0};
	uint64_t total;
	size_t i;
	int rv = 0;

	if (q == NULL) {
		return Q_ENOTFOUND;
	}
	total = q->n_ready + q->n_returned;
	if (flags & Q_PEEK_DELAYED) {
		total += q->n_delayed;
	}
	if (flags & Q_PEEK_HELD) {
		total += q->n_unacked;
	}
	p.cap = total < max ? (size_t)total : max;
	if (p.cap == 0) {
		return 0;
	}
	/* Scratch, not state: through the allocator (tests fail it) but not
	 * counted in alloc_bytes, which a read must not change. */
	p.a = s->alloc.malloc(s->alloc.data, p.cap * sizeof *p.a);
	if (p.a == NULL) {
		return Q_ENOMEM;
	}
	offer_list(&p, &q->returned, from);
	offer_list(&p, &q->ready, from);
	if (flags & Q_PEEK_DELAYED) {
		offer_list(&p, &q->delayed, from);
	}
	if (flags & Q_PEEK_HELD) {
		const struct q_link *cl;
		for (cl = q->consumers.next; cl != &q->consumers;
		     cl = cl->next) {
			const struct q_consumer *c =
				Q__CONTAINER_OF(cl, struct q_consumer, qlink);
			offer_list(&p, &c->unacked, from);
		}
	}
	/* Heap sort: the largest goes to the end, the heap shrinks. */
	for (i = p.n; i > 1; i--) {
		const struct q_msg *t = p.a[0];
		p.a[0] = p.a[i - 1];
		p.a[i - 1] = t;
		sift_down(p.a, i - 1, 0);
	}
	for (i = 0; i < p.n && rv == 0; i++) {
		struct q_peeked o;
		fill(s, p.a[i], &o);
		rv = cb(data, &o);
	}
	s->alloc.free(s->alloc.data, p.a);
	return rv;
}
