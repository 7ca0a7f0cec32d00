/* Requests answered without a command of their own: Hello, cluster status,
 * queue info and the lists (at once, from the applied state of the leader,
 * which reflects every write it has confirmed), Peek (from the same state,
 * but after a read barrier), and membership changes (through consensus/,
 * not the queue state). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_auth.h"
#include "names.h"
#include "node_int.h"
#include "node_log.h"

/* ---------------------------------------------------------------- settings */

/* Fills a QueueSettings message (all fields present) from q_settings. */
static void settings_out(Raftmq__Client__V1__QueueSettings *o,
			 const struct q_settings *st)
{
	PB(queue_settings__init)(o);
#define OUT(f, v)                                               \
	do {                                                    \
		o->_##f##_case = (__typeof__(o->_##f##_case))1; \
		o->f = v;                                       \
	} while (0)
	OUT(ack_timeout_ms, st->ack_timeout_ms);
	o->_max_deliveries_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___MAX_DELIVERIES_MAX_DELIVERIES;
	o->max_deliveries = st->max_deliveries;
	o->_dead_letter_queue_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
	o->dead_letter_queue =
		(char *)(uintptr_t)(st->dead_letter ? st->dead_letter : "");
	o->_ttl_ms_case = RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___TTL_MS_TTL_MS;
	o->ttl_ms = st->ttl_ms;
	o->_max_length_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___MAX_LENGTH_MAX_LENGTH;
	o->max_length = st->max_length;
	o->_max_bytes_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___MAX_BYTES_MAX_BYTES;
	o->max_bytes = st->max_bytes;
	o->_overflow_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___OVERFLOW_OVERFLOW;
	o->overflow = (Raftmq__Client__V1__Overflow)st->overflow;
	o->_dedup_window_ms_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEDUP_WINDOW_MS_DEDUP_WINDOW_MS;
	o->dedup_window_ms = st->dedup_window_ms;
#undef OUT
}

static void status_out(Raftmq__Client__V1__QueueStatus *o,
		       Raftmq__Client__V1__QueueSettings *so,
		       const struct q_queue_info *i)
{
	PB(queue_status__init)(o);
	o->name = (char *)(uintptr_t)i->name;
	o->topic = (char *)(uintptr_t)(i->topic ? i->topic : "");
	settings_out(so, &i->settings);
	o->settings = so;
	o->ready = i->ready;
	o->unacked = i->unacked;
	o->delayed = i->delayed;
	o->bytes = i->bytes;
	o->consumers = i->consumers;
	o->published = i->published;
	o->delivered = i->delivered;
	o->redelivered = i->redelivered;
	o->acked = i->acked;
	o->nacked = i->nacked;
	o->released = i->released;
	o->dead_lettered = i->dead_lettered;
	o->expired = i->expired;
	o->deduplicated = i->deduplicated;
	o->dropped = i->dropped;
	o->rejected = i->rejected;
}

/* ------------------------------------------------------------------ hello */

/* Hello: authenticates the session when auth is on (a Hello on an
 * authenticated session authenticates it again, as whoever the new token
 * names). Returns false when the session was refused and closed. */
static bool hello(struct node_session *s, uint64_t corr,
		  const Raftmq__Client__V1__Hello *h)
{
	Raftmq__Client__V1__HelloResult r;
	struct cons_status st;
	if (s->srv->cfg.auth) {
		const char *tok = h->auth_token != NULL ? h->auth_token : "";
		const struct node_user *u =
			node_auth_check(&s->srv->cfg, tok, strlen(tok));
		if (u == NULL) {
			NODE_INFO("session %llu from %s: %s; closing",
				  (unsigned long long)s->id, s->peer,
				  tok[0] == '\0' ? "no auth token"
						 : "unknown auth token");
			s->user = NULL;
			node_error(s, corr, EC(UNAUTHENTICATED),
				   tok[0] == '\0'
					   ? "node %llu requires "
					     "authentication: Hello carried "
					     "no auth token"
					   : "node %llu refused the auth "
					     "token: it is not the token of "
					     "any user",
				   (unsigned long long)s->srv->cfg.id);
			node_session_close(s);
			return false;
		}
		if (s->user != u) {
			NODE_DEBUG(
				"session %llu from %s: authenticated as "
				"user %s",
				(unsigned long long)s->id, s->peer, u->name);
		}
		s->user = u;
	}
	cons_status(s->srv->cons, &st);
	PB(hello_result__init)(&r);
	r.protocol_version = NODE_PROTOCOL_VERSION;
	r.node_id = s->srv->cfg.id;
	r.server_version = (char *)RAFTMQ_VERSION;
	r.max_frame_bytes = s->srv->cfg.max_frame_bytes;
	r.leader_id = st.leader_id;
	r.leader_client_address = st.leader_client_address;
	node_reply(s, corr, BODY(HELLO_RESULT), &r);
	return true;
}

static bool hello_start(struct node_session *s, Envelope *env)
{
	(void)hello(s, env->correlation_id, env->hello);
	return false;
}

const struct node_kind node_kind_hello = {
	.name = "hello",
	.access = NODE_ACCESS_ANYONE,
	.any_node = true,
	.start = hello_start,
};

/* ----------------------------------------------------------------- status */

static void cluster_status(struct node_session *s, uint64_t corr)
{
	Raftmq__Client__V1__ClusterStatusResult r;
	Raftmq__Client__V1__Node nodes[CONS_MAX_NODES], *np[CONS_MAX_NODES];
	struct cons_status st;
	size_t i;
	cons_status(s->srv->cons, &st);
	PB(cluster_status_result__init)(&r);
	r.leader_id = st.leader_id;
	r.term = st.term;
	r.commit_index = st.commit_index;
	r.applied_index = st.applied_index;
	r.node_id = st.id;
	for (i = 0; i < st.n_nodes; i++) {
		PB(node__init)(&nodes[i]);
		nodes[i].id = st.nodes[i].id;
		nodes[i].raft_address = st.nodes[i].raft_address;
		nodes[i].client_address = st.nodes[i].client_address;
		nodes[i].role =
			st.nodes[i].role == CONS_ROLE_VOTER
				? RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_VOTER
			: st.nodes[i].role == CONS_ROLE_STANDBY
				? RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_STANDBY
				: RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_SPARE;
		nodes[i].reachable = st.nodes[i].reachable == CONS_REACH_YES;
		nodes[i].reachable_unknown =
			st.nodes[i].reachable == CONS_REACH_UNKNOWN;
		np[i] = &nodes[i];
	}
	r.n_nodes = st.n_nodes;
	r.nodes = np;
	node_reply(s, corr, BODY(CLUSTER_STATUS_RESULT), &r);
}

static bool cluster_status_start(struct node_session *s, Envelope *env)
{
	cluster_status(s, env->correlation_id);
	return false;
}

const struct node_kind node_kind_cluster_status = {
	.name = "cluster_status",
	.access = NODE_ACCESS_ADMIN,
	.any_node = true,
	.start = cluster_status_start,
};

/* ------------------------------------------------------------- queue info */

static void queue_info(struct node_session *s, uint64_t corr, const char *name)
{
	Raftmq__Client__V1__QueueInfoResult r;
	Raftmq__Client__V1__QueueStatus qs;
	Raftmq__Client__V1__QueueSettings so;
	struct q_queue_info i;
	char q[PROTO_QUOTE_SIZE];
	if (q_state_queue_info(cons_state(s->srv->cons), name, &i) != 0) {
		node_error(s, corr, EC(NOT_FOUND), "queue %s not found",
			   proto_name_quote(name, q));
		return;
	}
	status_out(&qs, &so, &i);
	PB(queue_info_result__init)(&r);
	r.queue = &qs;
	node_reply(s, corr, BODY(QUEUE_INFO_RESULT), &r);
}

static bool queue_info_grant(const Envelope *env, size_t i,
			     struct node_grant *g)
{
	g->perm = NODE_PERM_VISIBLE;
	g->what = "queue";
	g->name = env->queue_info->name;
	return i == 0;
}

static void queue_info_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	snprintf(buf, len, "queue %s",
		 proto_name_quote(env->queue_info->name, q));
}

static bool queue_info_start(struct node_session *s, Envelope *env)
{
	queue_info(s, env->correlation_id, env->queue_info->name);
	return false;
}

const struct node_kind node_kind_queue_info = {
	.name = "queue_info",
	.access = NODE_ACCESS_NAMED,
	.grant = queue_info_grant,
	.target = queue_info_target,
	.start = queue_info_start,
};

/* ------------------------------------------------------------------- peek */

/* Most messages one PeekResult carries (client.proto, Peek). */
#define PEEK_MAX 1000
/* Room left in a frame for the Envelope and PeekResult around the
 * messages (tags, lengths, correlation id, next_seq). */
#define PEEK_FRAME_SLACK 64

/* What peek_cb returns to stop the walk: not a Q_E* code (those are
 * positive), so the two cannot be confused. */
#define PEEK_STOP (-1)

/* A Peek waiting for its barrier: what it asked, copied out of the
 * request (freed on return of the start function). */
struct peek_req {
	struct cons_barrier barrier; /* barrier.data = this */
	struct node_session *s;	     /* ref held until the callback */
	uint64_t corr;
	char *queue; /* owned */
	uint64_t from;
	uint32_t max;
	unsigned flags; /* Q_PEEK_* */
};

/* The answer being built: messages point into the state (valid until the
 * next apply; the answer is sent before the callback returns). */
struct peek_out {
	struct node_server *srv;
	Raftmq__Client__V1__PeekedMessage *pm, **ptrs;
	Raftmq__Client__V1__Delivery *d;
	void **copies; /* bodies read from the store, copied (owned) */
	size_t n, max;
	size_t bytes, budget; /* packed size so far, frame budget */
	uint64_t next_seq;
};

static int peek_cb(void *data, const struct q_peeked *m)
{
	struct peek_out *o = data;
	Raftmq__Client__V1__PeekedMessage *pm;
	Raftmq__Client__V1__Delivery *d;
	size_t len;
	if (o->n == o->max) {
		o->next_seq = m->msg.seq; /* one more than asked: next page */
		return PEEK_STOP;
	}
	pm = &o->pm[o->n];
	d = &o->d[o->n];
	if (node_delivery_msg(o->srv, d, &m->msg) != 0) {
		return 0; /* its body is not here: leave it out */
	}
	if (m->msg.body == NULL && (d->body.len > 0 || d->msg_id.len > 0)) {
		/* Borrowed from the store until the next read: copy. */
		unsigned char *c = malloc(d->body.len + d->msg_id.len + 1);
		if (c == NULL) {
			return Q_ENOMEM;
		}
		memcpy(c, d->msg_id.data, d->msg_id.len);
		memcpy(c + d->msg_id.len, d->body.data, d->body.len);
		d->msg_id.data = c;
		d->body.data = c + d->msg_id.len;
		o->copies[o->n] = c;
	}
	/* Here the count is of deliveries so far (client.proto). */
	d->redelivered = m->msg.delivery_count > 0;
	PB(peeked_message__init)(pm);
	pm->message = d;
	pm->state = (Raftmq__Client__V1__MessageState)m->state;
	pm->due_ms = m->due_ms;
	/* The message, its field tag and length prefix (<= 11 bytes). */
	len = PB(peeked_message__get_packed_size)(pm) + 11;
	if (o->n > 0 && o->bytes + len > o->budget) {
		o->next_seq = m->msg.seq; /* the frame is full: next page */
		free(o->copies[o->n]);
		o->copies[o->n] = NULL;
		return PEEK_STOP;
	}
	o->bytes += len;
	o->ptrs[o->n++] = pm;
	return 0;
}

static void peek_answer(struct node_session *s, const struct peek_req *p)
{
	Raftmq__Client__V1__PeekResult r;
	struct peek_out o;
	int rv;
	memset(&o, 0, sizeof o);
	o.max = p->max;
	o.budget = s->srv->cfg.max_frame_bytes > PEEK_FRAME_SLACK
			   ? s->srv->cfg.max_frame_bytes - PEEK_FRAME_SLACK
			   : 0;
	o.srv = s->srv;
	o.pm = malloc(p->max * sizeof *o.pm);
	o.ptrs = malloc(p->max * sizeof *o.ptrs);
	o.d = malloc(p->max * sizeof *o.d);
	o.copies = calloc(p->max, sizeof *o.copies);
	if (o.pm == NULL || o.ptrs == NULL || o.d == NULL || o.copies == NULL) {
		node_error(s, p->corr, EC(NO_MEMORY), "out of memory");
		goto out;
	}
	/* One more than asked, to know whether a next page exists. */
	rv = q_state_peek(cons_state(s->srv->cons), p->queue, p->from,
			  (size_t)p->max + 1, p->flags, peek_cb, &o);
	if (rv == Q_ENOTFOUND) {
		char q[PROTO_QUOTE_SIZE];
		node_error(s, p->corr, EC(NOT_FOUND), "queue %s not found",
			   proto_name_quote(p->queue, q));
		goto out;
	}
	if (rv == Q_ENOMEM) {
		node_error(s, p->corr, EC(NO_MEMORY), "out of memory");
		goto out;
	}
	PB(peek_result__init)(&r);
	r.n_messages = o.n;
	r.messages = o.ptrs;
	r.next_seq = o.next_seq;
	node_reply(s, p->corr, BODY(PEEK_RESULT), &r);
out:
	if (o.copies != NULL) {
		size_t i;
		for (i = 0; i < p->max; i++) {
			free(o.copies[i]);
		}
	}
	free(o.copies);
	free(o.pm);
	free(o.ptrs);
	free(o.d);
}

static void peek_barrier_cb(struct cons_barrier *req, int status)
{
	struct peek_req *p = req->data;
	struct node_session *s = p->s;
	if (s->closing) {
		/* Nobody to answer. */
	} else if (status != 0 || !s->srv->leader) {
		/* Not the leader (any more): the state may be behind. */
		node_not_leader(s, p->corr);
	} else {
		peek_answer(s, p);
	}
	node_session_unref(s);
	free(p->queue);
	free(p);
}

/* The state a leader has applied may miss entries committed by a newer
 * leader it has not heard of; the barrier commits an entry in this term
 * first, so what is read includes every write acknowledged before. */
static bool peek_start(struct node_session *s, Envelope *env)
{
	const Raftmq__Client__V1__Peek *pk = env->peek;
	struct peek_req *p = calloc(1, sizeof *p);
	int rv;
	if (p == NULL || (p->queue = strdup(pk->queue)) == NULL) {
		free(p);
		node_error(s, env->correlation_id, EC(NO_MEMORY),
			   "out of memory");
		return false;
	}
	p->s = s;
	p->corr = env->correlation_id;
	p->from = pk->from_seq;
	p->max = pk->max_messages == 0	       ? 1
		 : pk->max_messages > PEEK_MAX ? PEEK_MAX
					       : pk->max_messages;
	p->flags = (pk->include_delayed ? Q_PEEK_DELAYED : 0u) |
		   (pk->include_held ? Q_PEEK_HELD : 0u);
	p->barrier.data = p;
	rv = cons_barrier(s->srv->cons, &p->barrier, peek_barrier_cb);
	if (rv != 0) {
		free(p->queue);
		free(p);
		if (rv == CONS_ENOTLEADER) {
			node_not_leader(s, env->correlation_id);
		} else {
			node_error(s, env->correlation_id, EC(UNAVAILABLE),
				   "cannot read the queue now: %s",
				   cons_strerror(rv));
		}
		return false;
	}
	node_session_ref(s);
	return false;
}

static bool peek_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	g->perm = NODE_PERM_CONSUME;
	g->what = "from queue";
	g->name = env->peek->queue;
	return i == 0;
}

static void peek_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	snprintf(buf, len, "queue %s", proto_name_quote(env->peek->queue, q));
}

/* Looking at messages needs what taking them needs. */
const struct node_kind node_kind_peek = {
	.name = "peek",
	.access = NODE_ACCESS_NAMED,
	.grant = peek_grant,
	.target = peek_target,
	.start = peek_start,
};

/* ------------------------------------------------------------------ lists */

struct list_ctx {
	const struct node_user *user; /* NULL: every queue */
	Raftmq__Client__V1__QueueStatus *qs;
	Raftmq__Client__V1__QueueSettings *so;
	Raftmq__Client__V1__QueueStatus **ptrs;
	size_t n, cap;
	int failed;
};

static int list_cb(void *data, const struct q_queue_info *i)
{
	struct list_ctx *c = data;
	if (c->user != NULL && !node_auth_visible(c->user, i->name)) {
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *a = realloc(c->qs, cap * sizeof *c->qs);
		void *b = a ? realloc(c->so, cap * sizeof *c->so) : NULL;
		if (a != NULL) {
			c->qs = a;
		}
		if (b == NULL) {
			c->failed = 1;
			return 1;
		}
		c->so = b;
		c->cap = cap;
	}
	status_out(&c->qs[c->n], &c->so[c->n], i);
	c->n++;
	return 0;
}

static void queue_list(struct node_session *s, uint64_t corr)
{
	Raftmq__Client__V1__QueueListResult r;
	struct list_ctx c;
	size_t i;
	memset(&c, 0, sizeof c);
	c.user = s->srv->cfg.auth ? s->user : NULL;
	q_state_foreach_queue(cons_state(s->srv->cons), list_cb, &c);
	c.ptrs = malloc((c.n + 1) * sizeof *c.ptrs);
	if (c.failed || c.ptrs == NULL) {
		node_error(s, corr, EC(NO_MEMORY), "out of memory");
		goto out;
	}
	/* settings pointers must be fixed up after the last realloc */
	for (i = 0; i < c.n; i++) {
		c.qs[i].settings = &c.so[i];
		c.ptrs[i] = &c.qs[i];
	}
	PB(queue_list_result__init)(&r);
	r.n_queues = c.n;
	r.queues = c.ptrs;
	node_reply(s, corr, BODY(QUEUE_LIST_RESULT), &r);
out:
	free(c.qs);
	free(c.so);
	free(c.ptrs);
}

struct topic_ctx {
	const struct node_user *user; /* NULL: every topic */
	Raftmq__Client__V1__TopicStatus *ts;
	size_t n, cap;
	int failed;
};

static int topic_cb(void *data, const struct q_topic_info *i)
{
	struct topic_ctx *c = data;
	if (c->user != NULL && !node_auth_visible(c->user, i->name)) {
		return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *a = realloc(c->ts, cap * sizeof *c->ts);
		if (a == NULL) {
			c->failed = 1;
			return 1;
		}
		c->ts = a;
		c->cap = cap;
	}
	PB(topic_status__init)(&c->ts[c->n]);
	c->ts[c->n].name = (char *)(uintptr_t)i->name;
	c->ts[c->n].dedup_window_ms = i->dedup_window_ms;
	c->ts[c->n].subscriptions = i->subscriptions;
	c->ts[c->n].published = i->published;
	c->ts[c->n].deduplicated = i->deduplicated;
	c->n++;
	return 0;
}

static void topic_list(struct node_session *s, uint64_t corr)
{
	Raftmq__Client__V1__TopicListResult r;
	Raftmq__Client__V1__TopicStatus **ptrs;
	struct topic_ctx c;
	size_t i;
	memset(&c, 0, sizeof c);
	c.user = s->srv->cfg.auth ? s->user : NULL;
	q_state_foreach_topic(cons_state(s->srv->cons), topic_cb, &c);
	ptrs = malloc((c.n + 1) * sizeof *ptrs);
	if (c.failed || ptrs == NULL) {
		node_error(s, corr, EC(NO_MEMORY), "out of memory");
	} else {
		for (i = 0; i < c.n; i++) {
			ptrs[i] = &c.ts[i];
		}
		PB(topic_list_result__init)(&r);
		r.n_topics = c.n;
		r.topics = ptrs;
		node_reply(s, corr, BODY(TOPIC_LIST_RESULT), &r);
	}
	free(ptrs);
	free(c.ts);
}

static bool queue_list_start(struct node_session *s, Envelope *env)
{
	queue_list(s, env->correlation_id);
	return false;
}

static bool topic_list_start(struct node_session *s, Envelope *env)
{
	topic_list(s, env->correlation_id);
	return false;
}

/* Lists show only the names the user has some permission on. */
const struct node_kind node_kind_queue_list = {
	.name = "queue_list",
	.access = NODE_ACCESS_USER,
	.start = queue_list_start,
};

const struct node_kind node_kind_topic_list = {
	.name = "topic_list",
	.access = NODE_ACCESS_USER,
	.start = topic_list_start,
};

/* ------------------------------------------------------------- membership */

struct change_ctx {
	struct cons_change req;
	struct node_session *s;
	uint64_t corr;
	int body;
};

static void change_cb(struct cons_change *req, int status)
{
	struct change_ctx *c = req->data;
	struct node_session *s = c->s;
	if (!s->closing) {
		if (status == 0) {
			/* The three results are empty messages. */
			Raftmq__Client__V1__ClusterAddResult r;
			PB(cluster_add_result__init)(&r);
			node_reply(s, c->corr, c->body, &r);
		} else if (status == CONS_ENOTLEADER) {
			node_not_leader(s, c->corr);
		} else {
			node_error(s, c->corr,
				   status == CONS_EBUSY || status == CONS_EBADID
					   ? EC(INVALID_ARGUMENT)
					   : EC(UNAVAILABLE),
				   "membership change failed: %s",
				   cons_strerror(status));
		}
	}
	node_session_unref(s);
	free(c);
}

static void membership(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	struct change_ctx *c = calloc(1, sizeof *c);
	int rv;
	if (c == NULL) {
		node_error(s, env->correlation_id, EC(NO_MEMORY),
			   "out of memory");
		return;
	}
	c->s = s;
	c->corr = env->correlation_id;
	c->req.data = c;
	switch (env->body_case) {
	case BODY(CLUSTER_ADD): {
		const Raftmq__Client__V1__ClusterAdd *a = env->cluster_add;
		int role =
			a->role == RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_STANDBY
				? CONS_ROLE_STANDBY
			: a->role == RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_SPARE
				? CONS_ROLE_SPARE
				: CONS_ROLE_VOTER;
		c->body = BODY(CLUSTER_ADD_RESULT);
		rv = cons_add(srv->cons, &c->req, a->id, a->raft_address,
			      a->client_address, role, change_cb);
		break;
	}
	case BODY(CLUSTER_REMOVE):
		c->body = BODY(CLUSTER_REMOVE_RESULT);
		rv = cons_remove(srv->cons, &c->req, env->cluster_remove->id,
				 change_cb);
		break;
	default:
		c->body = BODY(CLUSTER_TRANSFER_RESULT);
		rv = cons_transfer(srv->cons, &c->req,
				   env->cluster_transfer->id, change_cb);
		break;
	}
	if (rv != 0) {
		free(c);
		if (rv == CONS_ENOTLEADER) {
			node_not_leader(s, env->correlation_id);
		} else {
			/* consensus/ says which member and why, when it
			 * can ("node 9 is not a member ..."). */
			const char *why = cons_errmsg(srv->cons);
			node_error(s, env->correlation_id,
				   rv == CONS_EBUSY || rv == CONS_EBADID ||
						   rv == CONS_EINVAL
					   ? EC(INVALID_ARGUMENT)
					   : EC(UNAVAILABLE),
				   "%s%s",
				   why[0] != '\0'
					   ? ""
					   : "membership change refused: ",
				   why[0] != '\0' ? why : cons_strerror(rv));
		}
		return;
	}
	node_session_ref(s);
}

static bool membership_start(struct node_session *s, Envelope *env)
{
	membership(s, env);
	return false;
}

const struct node_kind node_kind_cluster_add = {
	.name = "cluster_add",
	.access = NODE_ACCESS_ADMIN,
	.start = membership_start,
};

const struct node_kind node_kind_cluster_remove = {
	.name = "cluster_remove",
	.access = NODE_ACCESS_ADMIN,
	.start = membership_start,
};

const struct node_kind node_kind_cluster_transfer = {
	.name = "cluster_transfer",
	.access = NODE_ACCESS_ADMIN,
	.start = membership_start,
};
