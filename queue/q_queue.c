/* Queues: creation and settings, where messages sit, overflow, dead-letter
 * and the dispatch loop that hands ready messages to consumers with room.
 *
 * Everything below q__queue_new() is called only in the mutation phase of a
 * command (after validation and allocation) and never allocates, except
 * for best-effort index growth whose failure changes nothing, and apart
 * from the read-only bounds (q__queue_has_room(), q__queue_trim_bound())
 * and the side struct reserve, which the allocation phase uses. */
#include <string.h>

#include "q_int.h"

int q__settings_valid(const struct q_settings *st)
{
	if (st->overflow > Q_OVERFLOW_DROP_HEAD) {
		return 0;
	}
	if (st->dead_letter != NULL && st->dead_letter[0] != '\0' &&
	    !q_name_valid(st->dead_letter)) {
		return 0;
	}
	return 1;
}

static const char *dl_name(const char *n)
{
	return n != NULL && n[0] != '\0' ? n : NULL;
}

int q__settings_equal(const struct q_settings *a, const struct q_settings *b)
{
	const char *da = dl_name(a->dead_letter);
	const char *db = dl_name(b->dead_letter);
	if ((da == NULL) != (db == NULL) ||
	    (da != NULL && strcmp(da, db) != 0)) {
		return 0;
	}
	return a->ack_timeout_ms == b->ack_timeout_ms &&
	       a->max_deliveries == b->max_deliveries &&
	       a->ttl_ms == b->ttl_ms && a->max_length == b->max_length &&
	       a->max_bytes == b->max_bytes && a->overflow == b->overflow &&
	       a->dedup_window_ms == b->dedup_window_ms;
}

#define UNACKED_MIN_BUCKETS 16

struct q_queue *q__queue_new(struct q_state *s, const char *name,
			     const struct q_settings *st)
{
	struct q_queue *q = q__malloc(s, sizeof *q);
	if (q == NULL) {
		goto err;
	}
	memset(q, 0, sizeof *q);
	q->name = q__strdup(s, name);
	if (q->name == NULL) {
		goto err_free_queue;
	}
	if (dl_name(st->dead_letter) != NULL) {
		q->dead_letter = q__strdup(s, st->dead_letter);
		if (q->dead_letter == NULL) {
			goto err_free_name;
		}
	}
	/* The unacked index always has a table, so inserting into it never
	 * needs an allocation; it grows best effort. */
	q->ubuckets = q__malloc(s, UNACKED_MIN_BUCKETS * sizeof *q->ubuckets);
	if (q->ubuckets == NULL) {
		goto err_free_dead_letter;
	}
	memset(q->ubuckets, 0, UNACKED_MIN_BUCKETS * sizeof *q->ubuckets);
	q->nubuckets = UNACKED_MIN_BUCKETS;
	q->settings = *st;
	q->settings.dead_letter = q->dead_letter;
	q__list_init(&q->returned);
	q__list_init(&q->ready);
	q__list_init(&q->delayed);
	q__list_init(&q->consumers);
	q__list_init(&q->dirty);
	q__dedup_init(&q->dedup);
	return q;

err_free_dead_letter:
	q__strfree(s, q->dead_letter);
err_free_name:
	q__strfree(s, q->name);
err_free_queue:
	q__free(s, q, sizeof *q);
err:
	return NULL;
}

void q__settings_merge(struct q_settings *t, const struct q_settings *st,
		       uint32_t mask)
{
	if (mask & Q_SET_ACK_TIMEOUT) {
		t->ack_timeout_ms = st->ack_timeout_ms;
	}
	if (mask & Q_SET_MAX_DELIVERIES) {
		t->max_deliveries = st->max_deliveries;
	}
	if (mask & Q_SET_DEAD_LETTER) {
		t->dead_letter = dl_name(st->dead_letter);
	}
	if (mask & Q_SET_TTL) {
		t->ttl_ms = st->ttl_ms;
	}
	if (mask & Q_SET_MAX_LENGTH) {
		t->max_length = st->max_length;
	}
	if (mask & Q_SET_MAX_BYTES) {
		t->max_bytes = st->max_bytes;
	}
	if (mask & Q_SET_OVERFLOW) {
		t->overflow = st->overflow;
	}
	if (mask & Q_SET_DEDUP_WINDOW) {
		t->dedup_window_ms = st->dedup_window_ms;
	}
}

static void free_list(struct q_state *s, struct q_link *head)
{
	while (!q__list_empty(head)) {
		struct q_msg *m =
			Q__CONTAINER_OF(head->next, struct q_msg, link);
		q__msg_unlink(s, m);
		q__msg_free(s, m);
	}
}

void q__queue_destroy(struct q_state *s, struct q_queue *q, int report)
{
	/* Consumers go first, their unacked messages with them: the queue is
	 * gone, so there is nowhere to return them to. */
	while (!q__list_empty(&q->consumers)) {
		struct q_consumer *c = Q__CONTAINER_OF(
			q->consumers.next, struct q_consumer, qlink);
		free_list(s, &c->unacked);
		q__consumer_remove(s, c, 0, report);
	}
	free_list(s, &q->returned);
	free_list(s, &q->ready);
	free_list(s, &q->delayed);
	if (!q__list_empty(&q->dirty)) {
		q__list_remove(&q->dirty);
	}
	q__dedup_clear(s, &q->dedup);
	q__free(s, q->ubuckets, q->nubuckets * sizeof *q->ubuckets);
	q__strfree(s, q->dead_letter);
	q__strfree(s, q->name);
	q__free(s, q, sizeof *q);
}

uint64_t q__queue_len(const struct q_queue *q)
{
	return q->n_ready + q->n_returned + q->n_delayed;
}

int q__queue_fits(const struct q_queue *q, uint64_t extra_n,
		  uint64_t extra_bytes)
{
	const struct q_settings *st = &q->settings;
	if (st->max_length != 0 && q__queue_len(q) + extra_n > st->max_length) {
		return 0;
	}
	if (st->max_bytes != 0 && q->bytes + extra_bytes > st->max_bytes) {
		return 0;
	}
	return 1;
}

static size_t block_size(const struct q_msg *m, size_t bsize)
{
	return sizeof *m +
	       ((m->flags & Q__MSG_EXT_IN_BLOCK) ? sizeof *m->ext : 0) + bsize;
}

struct q_msg *q__msg_alloc(struct q_state *s, int with_ext, size_t bsize)
{
	size_t xsize = with_ext ? sizeof(struct q_msg_ext) : 0;
	struct q_msg *m = q__malloc(s, sizeof *m + xsize + bsize);
	if (m == NULL) {
		return NULL;
	}
	memset(m, 0, sizeof *m + xsize);
	if (with_ext) {
		m->flags = Q__MSG_EXT_IN_BLOCK;
		m->ext = (struct q_msg_ext *)(void *)(m + 1);
		m->ext->msg = m;
	}
	if (bsize != 0) {
		m->body = (struct q_body *)(void *)((char *)(m + 1) + xsize);
	}
	return m;
}

void q__msg_discard(struct q_state *s, struct q_msg *m, size_t bsize)
{
	if (m != NULL) {
		q__free(s, m, block_size(m, bsize));
	}
}

void q__msg_free(struct q_state *s, struct q_msg *m)
{
	struct q_body *b = m->body;
	size_t bsize = q__body_size(s, b->id_len, b->len);
	int inl = q__msg_body_inline(m);

	assert(!inl || b->refs == 1);
	if (--b->refs == 0) {
		s->n_bodies--;
		s->body_bytes -= b->len;
		if (s->bodies != NULL) {
			s->stored_bytes -= (uint64_t)b->len + b->id_len;
			/* Only a command takes a body out of the replicated
			 * state; freeing or clearing the state keeps the
			 * store's (the snapshot still refers to them). */
			if (s->applying) {
				s->bodies->drop(s->bodies->data, b->origin);
			}
		}
		if (!inl) {
			q__free(s, b, bsize);
		}
	}
	if (m->ext != NULL && !(m->flags & Q__MSG_EXT_IN_BLOCK)) {
		q__free(s, m->ext, sizeof *m->ext);
	}
	s->n_msgs--;
	q__free(s, m, block_size(m, inl ? bsize : 0));
}

struct q_msg_ext *q__msg_ext(struct q_state *s, struct q_msg *m)
{
	struct q_msg_ext *x = m->ext;
	if (x != NULL) {
		return x;
	}
	/* A command that gets here without a reserve has a wrong bound in
	 * q_state.c: stop rather than allocate where failing is not allowed
	 * (a replica that stops is better than one that diverges). */
	assert(s->n_spare > 0 && "side struct reserve too small");
	x = s->spare;
	s->spare = x->next_spare;
	s->n_spare--;
	memset(x, 0, sizeof *x);
	x->msg = m;
	m->ext = x;
	return x;
}

int q__ext_reserve(struct q_state *s, uint64_t n)
{
	while (s->n_spare < n) {
		struct q_msg_ext *x = q__malloc(s, sizeof *x);
		if (x == NULL) {
			return Q_ENOMEM;
		}
		x->next_spare = s->spare;
		s->spare = x;
		s->n_spare++;
	}
	return 0;
}

void q__ext_release(struct q_state *s)
{
	while (s->spare != NULL) {
		struct q_msg_ext *x = s->spare;
		s->spare = x->next_spare;
		q__free(s, x, sizeof *x);
	}
	s->n_spare = 0;
}

void q__msg_unlink(struct q_state *s, struct q_msg *m)
{
	struct q_queue *q = m->queue;
	if (m->in_heap) {
		q__timer_disarm(s, m);
	}
	switch (m->where) {
	case Q__READY:
		q->n_ready--;
		q->bytes -= m->body->len;
		break;
	case Q__RETURNED:
		q->n_returned--;
		q->bytes -= m->body->len;
		break;
	case Q__DELAYED:
		q->n_delayed--;
		q->bytes -= m->body->len;
		break;
	case Q__UNACKED:
		q__unacked_take(s, m);
		break;
	default:
		return;
	}
	q__list_remove(&m->link);
	m->where = Q__NOWHERE;
}

void q__mark_dirty(struct q_state *s, struct q_queue *q)
{
	(void)s;
	if (q__list_empty(&q->dirty)) {
		q__list_append(&s->dirty, &q->dirty);
	}
}

void q__msg_place(struct q_state *s, struct q_msg *m, uint8_t where,
		  uint64_t due)
{
	struct q_queue *q = m->queue;
	if ((where == Q__READY || where == Q__RETURNED) && q__expired(s, m)) {
		q->c.expired++;
		q__msg_dead_letter(s, m, Q_REASON_EXPIRED);
		return;
	}
	q__msg_place_unchecked(s, m, where, due);
}

void q__msg_place_unchecked(struct q_state *s, struct q_msg *m, uint8_t where,
			    uint64_t due)
{
	struct q_queue *q = m->queue;
	uint64_t expires;
	m->where = where;
	q->bytes += m->body->len;
	switch (where) {
	case Q__READY:
		q__list_append(&q->ready, &m->link);
		q->n_ready++;
		break;
	case Q__RETURNED:
		q__list_append(&q->returned, &m->link);
		q->n_returned++;
		break;
	default: /* Q__DELAYED */
		q__list_append(&q->delayed, &m->link);
		q->n_delayed++;
		/* A message whose TTL ends before its delay expires then,
		 * still delayed, never delivered. */
		expires = q__msg_expires(m);
		q__timer_arm(s, m,
			     expires != 0 && expires < due ? expires : due);
		return;
	}
	expires = q__msg_expires(m);
	if (expires != 0) {
		q__timer_arm(s, m, expires);
	}
	q__mark_dirty(s, q);
}

/* Removes the oldest message not held by a consumer, or returns NULL. */
static struct q_msg *take_head(struct q_state *s, struct q_queue *q)
{
	struct q_link *l;
	struct q_msg *m;
	if (!q__list_empty(&q->returned)) {
		l = q->returned.next;
	} else if (!q__list_empty(&q->ready)) {
		l = q->ready.next;
	} else if (!q__list_empty(&q->delayed)) {
		l = q->delayed.next;
	} else {
		return NULL;
	}
	m = Q__CONTAINER_OF(l, struct q_msg, link);
	q__msg_unlink(s, m);
	return m;
}

void q__queue_make_room(struct q_state *s, struct q_queue *q, uint64_t extra_n,
			uint64_t extra_bytes, int final)
{
	while (!q__queue_fits(q, extra_n, extra_bytes)) {
		struct q_msg *m = take_head(s, q);
		if (m == NULL) {
			break;
		}
		if (final) {
			q->c.dropped++;
			q__msg_free(s, m);
		} else {
			q__msg_dead_letter(s, m, Q_REASON_OVERFLOW);
		}
	}
}

/* Dead-lettering moves the q_msg itself (new seq, new queue) instead of
 * copying it: no allocation, so it can happen inside any mutation, and the
 * body is shared as before. */
void q__msg_dead_letter(struct q_state *s, struct q_msg *m, uint8_t reason)
{
	struct q_queue *q = m->queue;
	struct q_queue *dlq = NULL;
	uint64_t len = m->body->len;

	if (q->dead_letter != NULL && m->dl_reason == Q_REASON_NONE) {
		dlq = q__queue_find(s, q->dead_letter);
	}
	if (dlq == NULL || dlq == q) {
		q->c.dropped++;
		q__msg_free(s, m);
		return;
	}
	if (!q__queue_fits(dlq, 1, len)) {
		const struct q_settings *st = &dlq->settings;
		if (st->overflow == Q_OVERFLOW_REJECT_PUBLISH ||
		    (st->max_bytes != 0 && len > st->max_bytes)) {
			q->c.dropped++;
			q__msg_free(s, m);
			return;
		}
		q__queue_make_room(s, dlq, 1, len, 1);
	}
	q->c.dead_lettered++;
	m->queue = dlq;
	m->seq = s->next_seq++;
	m->dl_reason = reason;
	m->dl_from = q->id;
	if (dlq->settings.ttl_ms != 0) {
		q__msg_ext(s, m)->expires = s->now + dlq->settings.ttl_ms;
	} else if (m->ext != NULL) {
		m->ext->expires = 0;
	}
	if (m->ext != NULL) {
		m->ext->failures = 0;
	}
	q__msg_place(s, m, Q__READY, 0);
}

static int has_room(const struct q_consumer *c)
{
	return c->credit > 0 &&
	       (c->prefetch == 0 || c->n_unacked < c->prefetch);
}

int q__queue_has_room(const struct q_queue *q)
{
	const struct q_link *l;
	for (l = q->consumers.next; l != &q->consumers; l = l->next) {
		if (has_room(Q__CONTAINER_OF(l, struct q_consumer, qlink))) {
			return 1;
		}
	}
	return 0;
}

/* Walks the lists of q from the head in take_head()'s order. */
static const struct q_msg *head_next(const struct q_queue *q,
				     const struct q_link **l, int *list)
{
	const struct q_link *heads[3] = {&q->returned, &q->ready, &q->delayed};
	for (;;) {
		*l = (*l)->next;
		if (*l != heads[*list]) {
			return Q__CONTAINER_OF(*l, struct q_msg, link);
		}
		if (++*list == 3) {
			return NULL;
		}
		*l = heads[*list];
	}
}

uint64_t q__queue_trim_bound(const struct q_state *s, const struct q_queue *q,
			     uint64_t extra_n, uint64_t extra_bytes)
{
	const struct q_settings *st = &q->settings;
	const struct q_link *l = &q->returned;
	uint64_t len = q__queue_len(q), bytes = q->bytes, n = 0;
	int list = 0;

	/* Dropped messages need nothing: only moved ones get a ttl timer or
	 * a delivery in the dead-letter queue. */
	if (q->dead_letter == NULL ||
	    q__queue_find(s, q->dead_letter) == NULL) {
		return 0;
	}
	/* The same loop as q__queue_make_room(), without taking. */
	while ((st->max_length != 0 && len + extra_n > st->max_length) ||
	       (st->max_bytes != 0 && bytes + extra_bytes > st->max_bytes)) {
		const struct q_msg *m = head_next(q, &l, &list);
		if (m == NULL) {
			break;
		}
		len--;
		bytes -= m->body->len;
		n += m->ext == NULL && m->dl_reason == Q_REASON_NONE;
	}
	return n;
}

/* The next consumer after the cursor (round robin) with room, or NULL. */
static struct q_consumer *next_consumer(struct q_queue *q)
{
	struct q_link *start, *l;
	uint64_t i;
	if (q->n_consumers == 0) {
		return NULL;
	}
	start = q->cursor != NULL ? &q->cursor->qlink : &q->consumers;
	l = start;
	for (i = 0; i <= q->n_consumers; i++) {
		struct q_consumer *c;
		l = l->next;
		if (l == &q->consumers) {
			l = l->next;
		}
		c = Q__CONTAINER_OF(l, struct q_consumer, qlink);
		if (has_room(c)) {
			return c;
		}
	}
	return NULL;
}

static void dispatch(struct q_state *s, struct q_queue *q)
{
	while (q->n_ready + q->n_returned > 0) {
		struct q_consumer *c = next_consumer(q);
		struct q_link *l;
		struct q_msg *m;
		if (c == NULL) {
			return;
		}
		l = !q__list_empty(&q->returned) ? q->returned.next
						 : q->ready.next;
		m = Q__CONTAINER_OF(l, struct q_msg, link);
		q__msg_unlink(s, m);
		if (q__expired(s, m)) {
			q->c.expired++;
			q__msg_dead_letter(s, m, Q_REASON_EXPIRED);
			continue;
		}
		q->cursor = c;
		q__deliver(s, c, m);
	}
}

void q__dispatch_dirty(struct q_state *s)
{
	/* Dispatching one queue may dirty another (dead-letters); the loop
	 * picks those up in the order they were marked. */
	while (!q__list_empty(&s->dirty)) {
		struct q_queue *q =
			Q__CONTAINER_OF(s->dirty.next, struct q_queue, dirty);
		q__list_remove(&q->dirty);
		dispatch(s, q);
	}
}
