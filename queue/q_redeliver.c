/* Timers from replicated time: ack deadlines, delays and TTLs.
 *
 * Every message with a pending timer sits in one heap ordered by
 * (due, queue id, seq). Only Q_CMD_TICK fires timers, with the state clock
 * (the largest leader stamp seen), so every replica fires the same timers
 * in the same order whatever its own clock says. What a timer does depends
 * on where the message is:
 *   unacked  the ack deadline passed: a failed delivery (requeue or
 *            dead-letter once max_deliveries failures are reached);
 *   delayed  it becomes deliverable: a first delivery joins the ready tail,
 *            a delayed nack joins the returned list; or, when its TTL ends
 *            first (the timer is armed at the earlier of the two), it
 *            expires while still delayed;
 *   ready / returned  its TTL passed: it expires (dead-letter or drop). */
#include "q_int.h"

void q__timer_arm(struct q_state *s, struct q_msg *m, uint64_t due)
{
	struct q_msg_ext *x = q__msg_ext(s, m);
	if (m->in_heap) {
		q__heap_remove(&s->timers, &x->timer);
	}
	x->due = due;
	m->in_heap = 1;
	q__heap_insert(&s->timers, &x->timer);
}

void q__timer_disarm(struct q_state *s, struct q_msg *m)
{
	if (m->in_heap) {
		q__heap_remove(&s->timers, &m->ext->timer);
		m->in_heap = 0;
		m->ext->due = 0;
	}
}

int q__expired(const struct q_state *s, const struct q_msg *m)
{
	uint64_t expires = q__msg_expires(m);
	return expires != 0 && s->now >= expires;
}

static struct q_msg *timer_msg(const struct q_hnode *n)
{
	return Q__CONTAINER_OF(n, struct q_msg_ext, timer)->msg;
}

void q__timers_fire(struct q_state *s)
{
	struct q_hnode *n;
	while ((n = q__heap_min(&s->timers)) != NULL) {
		struct q_msg *m = timer_msg(n);
		struct q_queue *q = m->queue;
		if (m->ext->due > s->now) {
			break;
		}
		switch (m->where) {
		case Q__UNACKED:
			q__unacked_return(s, m, 1, 0);
			break;
		case Q__DELAYED: {
			/* Armed at the earlier of the delay and the TTL
			 * (q__msg_place): due == expires means the TTL came
			 * first. Otherwise it becomes deliverable and any TTL
			 * passed since fires next, in timer order. */
			uint64_t due = m->ext->due;
			q__msg_unlink(s, m);
			if (m->ext->expires != 0 && due >= m->ext->expires) {
				q->c.expired++;
				q__msg_dead_letter(s, m, Q_REASON_EXPIRED);
				break;
			}
			q__msg_place_unchecked(
				s, m,
				m->ext->deliveries > 0 ? Q__RETURNED : Q__READY,
				0);
			break;
		}
		default: /* ready or returned: TTL */
			q__msg_unlink(s, m);
			q->c.expired++;
			q__msg_dead_letter(s, m, Q_REASON_EXPIRED);
			break;
		}
	}
}

/* The parent of a heap node that is not the root: the first of its
 * siblings has the parent as prev. */
static const struct q_hnode *parent(const struct q_hnode *n)
{
	while (n->prev->child != n) {
		n = n->prev;
	}
	return n->prev;
}

uint64_t q__timers_due_unacked(const struct q_state *s)
{
	/* Depth first over the nodes due by now only: no child is due
	 * before its parent. No stack (the heap may hold millions of timers):
	 * the links lead back up. Each visited child list is walked twice at
	 * most (down its siblings, then back to find the parent). */
	const struct q_hnode *n = s->timers.root;
	uint64_t count = 0;
	while (n != NULL) {
		const struct q_msg_ext *x =
			Q__CONTAINER_OF(n, struct q_msg_ext, timer);
		if (x->due <= s->now) {
			count += x->msg->where == Q__UNACKED;
			if (n->child != NULL) {
				n = n->child;
				continue;
			}
		}
		while (n != s->timers.root && n->sibling == NULL) {
			n = parent(n);
		}
		n = n != s->timers.root ? n->sibling : NULL;
	}
	return count;
}

uint64_t q_state_next_due(const struct q_state *s)
{
	struct q_hnode *n = q__heap_min(&s->timers);
	if (n == NULL) {
		return UINT64_MAX;
	}
	return timer_msg(n)->ext->due;
}
