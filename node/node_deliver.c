/* Deliveries, from apply to the sessions (the q_sink of node_server.c).
 *
 * Deliveries happen inside apply (queue/ delivers as soon as a consumer has
 * room) and reach node_on_delivery() on every node; the leader writes those
 * of its own sessions' consumers. One made before the client has its
 * ConsumeResult waits in the session's `early` list until the result is
 * written, so the client always learns the consumer id first. A pull
 * consumer's deliveries go to its waiting Fetch (node_fetch.c). Nothing
 * here may propose synchronously into apply: commands go to the open batch,
 * proposed at the end of the loop iteration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"
#include "node_log.h"

void node_flush_early(struct node_session *s, struct node_consumer *c)
{
	struct node_early **pp = &s->early;
	while (*pp != NULL) {
		struct node_early *e = *pp;
		if (e->consumer != c->id) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		s->early_bytes -= e->frame_body.len;
		if (c->pull) {
			struct node_fetch *f = node_fetch_find(s, c->id, 0);
			if (f != NULL) {
				node_fetch_add(f, e->frame_body.base,
					       e->frame_body.len);
				goto next;
			}
		}
		{
			Raftmq__Client__V1__Delivery *d = PB(delivery__unpack)(
				NULL, e->frame_body.len,
				(const uint8_t *)e->frame_body.base);
			if (d != NULL) {
				node_reply(s, c->corr, BODY(DELIVERY), d);
				PB(delivery__free_unpacked)(d, NULL);
			}
		}
	next:
		node_buf_free(&e->frame_body);
		free(e);
	}
	node_session_pump(s);
}

struct node_consumer *node_consumer_new(uint64_t corr, const char *queue,
					bool pull)
{
	struct node_consumer *c = calloc(1, sizeof *c);
	if (c == NULL) {
		return NULL;
	}
	c->corr = corr;
	c->pull = pull;
	snprintf(c->queue, sizeof c->queue, "%s", queue);
	return c;
}

void node_consumer_attached(struct node_session *s, struct node_consumer *c,
			    q_consumer_id id)
{
	c->id = id;
	c->next = s->consumers;
	s->consumers = c;
}

void node_consumer_drop(struct node_session *s, q_consumer_id id)
{
	struct node_consumer **pp;
	for (pp = &s->consumers; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct node_consumer *c = *pp;
			*pp = c->next;
			free(c);
			return;
		}
	}
}

static struct node_session *session_of(struct node_server *srv,
				       const struct q_session *qs)
{
	struct node_session *s;
	if (!srv->leader || qs->node_id != srv->cfg.id ||
	    qs->epoch != srv->epoch) {
		return NULL;
	}
	s = node_session_find(srv, qs->session_id);
	return s != NULL && !s->closing ? s : NULL;
}

/* A body the state names but this node cannot read: nothing is sent (the
 * message stays with its consumer until its ack deadline returns it; a
 * peek leaves it out). Logged at most every 10 s, with the count since. */
#define BODY_WARN_EVERY_MS 10000

static int body_unreadable(struct node_server *srv, const struct q_delivery *d,
			   int rv)
{
	uint64_t now = uv_now(srv->loop);
	srv->bodies_unreadable++;
	if (srv->body_warned_ms != 0 &&
	    now - srv->body_warned_ms < BODY_WARN_EVERY_MS) {
		return -1;
	}
	srv->body_warned_ms = now;
	NODE_WARN(
		"message %llu of queue %s not sent: its body %llu %s (%llu "
		"such reads so far)",
		(unsigned long long)d->seq, d->queue,
		(unsigned long long)d->body_key,
		rv == CONS_ENOTFOUND ? "is missing here (not fetched yet)"
				     : cons_strerror(rv),
		(unsigned long long)srv->bodies_unreadable);
	return -1;
}

int node_delivery_msg(struct node_server *srv, Raftmq__Client__V1__Delivery *m,
		      const struct q_delivery *d)
{
	const void *id = d->msg_id, *body = d->body;
	size_t id_len = d->msg_id_len;
	if (body == NULL && (d->body_len > 0 || d->msg_id_len > 0)) {
		struct cons_body b;
		int rv = cons_body_get(srv->cons, d->body_key, d->body_sum, &b);
		if (rv != 0) {
			return body_unreadable(srv, d, rv);
		}
		id = b.id;
		id_len = b.id_len;
		body = b.body;
	}
	PB(delivery__init)(m);
	m->consumer_id = d->consumer;
	m->queue = (char *)(uintptr_t)d->queue;
	m->tag = d->seq;
	m->msg_id.data = (uint8_t *)(uintptr_t)id;
	m->msg_id.len = id != NULL ? id_len : 0;
	m->body.data = (uint8_t *)(uintptr_t)body;
	m->body.len = d->body_len;
	m->delivery_count = d->delivery_count;
	m->redelivered = d->delivery_count > 1;
	m->published_ms = d->published_ms;
	m->dead_letter_reason =
		(Raftmq__Client__V1__DeadLetterReason)d->dl_reason;
	m->dead_letter_queue =
		(char *)(uintptr_t)(d->dl_queue ? d->dl_queue : "");
	return 0;
}

static int pack_delivery(const Raftmq__Client__V1__Delivery *m,
			 struct node_buf *b)
{
	size_t n = PB(delivery__get_packed_size)(m);
	if (node_buf_reserve(b, n) != 0) {
		return -1;
	}
	b->len = PB(delivery__pack)(m, (uint8_t *)b->base);
	return 0;
}

/* Writes d to s now: to its consumer, its waiting fetch, or the early list
 * when the consumer's ATTACH result is not written yet. */
static void deliver_now(struct node_server *srv, struct node_session *s,
			const struct q_delivery *d)
{
	struct node_consumer *c;
	Raftmq__Client__V1__Delivery m;
	if (node_delivery_msg(srv, &m, d) != 0) {
		return;
	}
	c = node_session_consumer(s, d->consumer);
	if (c != NULL && c->pull) {
		struct node_fetch *f = node_fetch_find(s, c->id, 0);
		struct q_cmd *cmd;
		if (f != NULL) {
			struct node_buf b = {NULL, 0, 0};
			if (pack_delivery(&m, &b) == 0) {
				node_fetch_add(f, b.base, b.len);
			}
			node_buf_free(&b);
			return;
		}
		/* Delivered after its fetch was answered (credit still left
		 * before the withdrawal applied): nobody waits for it, so
		 * give it back at once rather than let it sit until its ack
		 * deadline. No application saw it: the release is unseen, so
		 * the delivery is undone and the message comes back with the
		 * delivery_count it had. */
		{
			q_seq *tag = malloc(sizeof *tag);
			struct node_req *r =
				tag != NULL ? node_batch_add(srv, NULL, 0, 0,
							     NULL, 1, &cmd)
					    : NULL;
			if (r == NULL) {
				free(tag);
				return; /* its ack deadline returns it */
			}
			*tag = d->seq;
			r->owned = tag; /* commands may move; the tag may not */
			cmd->type = Q_CMD_RELEASE;
			cmd->u.tags.consumer = d->consumer;
			cmd->u.tags.tags = tag;
			cmd->u.tags.n_tags = 1;
			cmd->u.tags.unseen = true;
		}
		return;
	}
	if (c != NULL) {
		node_reply(s, c->corr, BODY(DELIVERY), &m);
		return;
	}
	/* Its ATTACH result has not been answered yet: keep it for later. */
	{
		struct node_early *e = calloc(1, sizeof *e), **pp;
		if (e == NULL || pack_delivery(&m, &e->frame_body) != 0) {
			free(e);
			NODE_ERROR(
				"out of memory holding a delivery; closing "
				"session %llu (its messages return)",
				(unsigned long long)s->id);
			node_session_close(s);
			return;
		}
		e->consumer = d->consumer;
		s->early_bytes += e->frame_body.len;
		for (pp = &s->early; *pp != NULL; pp = &(*pp)->next) {
		}
		*pp = e;
	}
}

/* ------------------------------------------------------------- deferred
 *
 * Apply can hand a consumer hundreds of messages at once (prefetch 500 of
 * 64 KiB each is 32 MiB): reading and encoding them all in that loop
 * iteration stalled the leader for over a second, longer than the election
 * timeout, and it lost the leadership. So once a session has
 * NODE_OUT_WINDOW bytes unsent, further deliveries are kept as small
 * records (consumer, tag, delivery count) and written as its socket drains
 * (node_session_pump from write_cb). A record is written only if the
 * consumer still holds that delivery (q_state_delivery): one that timed
 * out, was purged or whose consumer went meanwhile is dropped, never sent
 * twice.
 *
 * A consumer that does not read: its records are bounded by its prefetch
 * (65536 at most) and hold no body, but its messages would stay with it
 * until their ack deadline, or for ever. As NATS's write_deadline: once its
 * socket has taken no byte for client_write_timeout_ms while deliveries
 * wait, the connection is closed and its messages go back to the queue. */

static size_t out_window(const struct node_server *srv)
{
	size_t w = srv->cfg.max_client_output_bytes / 2;
	return w < NODE_OUT_WINDOW ? w : NODE_OUT_WINDOW;
}

static int defer(struct node_server *srv, struct node_session *s,
		 const struct q_delivery *d)
{
	struct node_deferred *r;
	if (s->def_len == s->def_cap) {
		size_t live = s->def_len - s->def_head;
		if (s->def_head > 0 && live <= s->def_cap / 2) {
			memmove(s->def, s->def + s->def_head,
				live * sizeof *s->def);
		} else {
			size_t cap = s->def_cap ? s->def_cap * 2 : 64;
			void *p = realloc(s->def, cap * sizeof *s->def);
			if (p == NULL) {
				return -1; /* written now instead */
			}
			s->def = p;
			s->def_cap = cap;
			memmove(s->def, s->def + s->def_head,
				live * sizeof *s->def);
		}
		s->def_head = 0;
		s->def_len = live;
	}
	r = &s->def[s->def_len++];
	r->consumer = d->consumer;
	r->seq = d->seq;
	r->deliveries = d->delivery_count;
	srv->deliveries_deferred++;
	return 0;
}

void node_on_delivery(void *data, const struct q_delivery *d)
{
	struct node_server *srv = data;
	struct node_session *s = session_of(srv, d->session);
	if (s == NULL) {
		return; /* not ours: a follower, or the client has gone */
	}
	if ((s->def_len > s->def_head ||
	     node_session_unsent(s) >= out_window(srv)) &&
	    defer(srv, s, d) == 0) {
		return;
	}
	deliver_now(srv, s, d);
}

void node_session_pump(struct node_session *s)
{
	struct node_server *srv = s->srv;
	size_t window = out_window(srv);
	if (!srv->leader || s->epoch != srv->epoch) {
		s->def_head = s->def_len = 0; /* its consumers are gone */
		return;
	}
	while (s->def_len > s->def_head && !s->closing &&
	       node_session_unsent(s) < window) {
		const struct node_deferred *r = &s->def[s->def_head];
		struct q_delivery d;
		if (q_state_delivery(cons_state(srv->cons), r->consumer, r->seq,
				     r->deliveries, &d) != 0) {
			s->def_head++; /* no longer its: not sent */
			continue;
		}
		if (node_session_consumer(s, r->consumer) == NULL) {
			/* Its ConsumeResult first: node_flush_early pumps. */
			break;
		}
		s->def_head++;
		deliver_now(srv, s, &d);
	}
	if (s->def_head == s->def_len) {
		s->def_head = s->def_len = 0;
	}
}

void node_on_consumer_gone(void *data, const struct q_consumer_gone *g)
{
	struct node_server *srv = data;
	struct node_session *s = session_of(srv, g->session);
	struct node_consumer *c;
	Raftmq__Client__V1__ConsumerGone m;
	if (s == NULL || (c = node_session_consumer(s, g->consumer)) == NULL) {
		return;
	}
	PB(consumer_gone__init)(&m);
	m.consumer_id = g->consumer;
	m.queue = (char *)(uintptr_t)g->queue;
	m.message = (char *)"the queue was deleted";
	node_reply(s, c->corr, BODY(CONSUMER_GONE), &m);
	node_consumer_drop(s, g->consumer);
}

void node_deferred_check(struct node_server *srv, uint64_t now_ms)
{
	struct node_session *s, *next;
	uint64_t limit = srv->cfg.client_write_timeout_ms;
	for (s = srv->sessions.next; s != &srv->sessions; s = next) {
		uint64_t sent;
		next = s->next;
		if (s->closing || s->def_len == s->def_head) {
			continue;
		}
		node_session_pump(s);
		if (s->def_len == s->def_head) {
			continue;
		}
		/* What the kernel has taken: completed writes, and the part
		 * of those in flight that libuv no longer queues. */
		sent = s->written + s->writing -
		       uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp);
		if (sent != s->stuck_sent || s->stuck_ms == 0) {
			s->stuck_sent = sent;
			s->stuck_ms = now_ms;
			continue;
		}
		if (limit != 0 && now_ms - s->stuck_ms >= limit) {
			NODE_WARN(
				"session %llu (%s): its socket took nothing "
				"for %llu ms while %zu deliveries wait "
				"(client_write_timeout_ms); closing the "
				"connection of a consumer that does not "
				"read (its messages return to the queue)",
				(unsigned long long)s->id, s->peer,
				(unsigned long long)(now_ms - s->stuck_ms),
				s->def_len - s->def_head);
			node_session_close(s);
		}
	}
}
