/* Requests to commands and results to responses (cf. dqlite gateway.c).
 *
 * Writes go into the open batch (node_batch_add) and are answered when the
 * batch is applied (node_dispatch_results). Reads (queue info, lists) are
 * answered at once from the leader's applied state. A follower answers
 * everything but Hello and ClusterStatus with NOT_LEADER and the leader's
 * client address. q_result codes map one to one onto protocol error codes
 * (proto/client.proto mirrors q.h); consensus codes map onto NOT_LEADER,
 * UNKNOWN_OUTCOME and UNAVAILABLE. Every error carries a sentence.
 *
 * Deliveries happen inside apply (queue/ delivers as soon as a consumer has
 * room) and reach node_on_delivery() on every node; the leader writes those
 * of its own sessions' consumers. One made before the client has its
 * ConsumeResult waits in the session's `early` list until the result is
 * written, so the client always learns the consumer id first.
 *
 * Authentication (auth = on): the Hello's token names the session's user
 * (node_auth.c); a missing or unknown token is answered UNAUTHENTICATED and
 * the connection closed, and any other request before a good Hello is
 * answered UNAUTHENTICATED. Each request is then checked against the user's
 * permissions (permitted()) before anything else, followers included; a
 * refusal is PERMISSION_DENIED with the permission it lacks. Queue and
 * topic lists show only the names the user has some permission on. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_auth.h"
#include "node_int.h"
#include "node_log.h"

#define PB(x) raftmq__client__v1__##x
#define BODY(x) RAFTMQ__CLIENT__V1__ENVELOPE__BODY_##x
#define EC(x) RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_##x
#define SET(field) (st->_##field##_case != 0)

static void env_init(Envelope *e, uint64_t corr)
{
	PB(envelope__init)(e);
	e->version = 1;
	e->correlation_id = corr;
}

/* For a text snprintf() may have cut to fit (a long name was echoed):
 * drops a UTF-8 character cut in half at its end, or the frame would be
 * undecodable for the protobuf libraries that check strings. */
static void utf8_cut(char *buf)
{
	size_t end = strlen(buf), k = end, lead;
	while (k > 0 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80) {
		k--;
	}
	lead = k > 0 ? (unsigned char)buf[k - 1] : 0;
	if (lead >= 0xc0 && end - (k - 1) < (lead >= 0xf0   ? 4u
					     : lead >= 0xe0 ? 3u
							    : 2u)) {
		buf[k - 1] = '\0';
	}
}

void node_error(struct node_session *s, uint64_t corr, int code,
		const char *fmt, ...)
{
	Envelope e;
	Raftmq__Client__V1__Error err;
	struct cons_status st;
	char msg[512];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof msg) {
		utf8_cut(msg);
	}
	PB(error__init)(&err);
	err.code = (Raftmq__Client__V1__ErrorCode)code;
	err.message = msg;
	if (code == EC(NOT_LEADER) || code == EC(UNAVAILABLE) ||
	    code == EC(UNKNOWN_OUTCOME)) {
		cons_status(s->srv->cons, &st);
		err.leader_id = st.is_leader ? 0 : st.leader_id;
		err.leader_client_address =
			st.is_leader ? (char *)"" : st.leader_client_address;
	}
	if (code == EC(UNSUPPORTED_VERSION)) {
		err.supported_version = 1;
	}
	env_init(&e, corr);
	e.body_case = BODY(ERROR);
	e.error = &err;
	s->srv->errors_total++;
	node_session_send(s, &e);
}

static void not_leader(struct node_session *s, uint64_t corr)
{
	struct cons_status st;
	cons_status(s->srv->cons, &st);
	if (st.leader_id == 0 || st.leader_client_address[0] == '\0') {
		node_error(s, corr, EC(UNAVAILABLE),
			   "no leader is known right now (election in "
			   "progress?); retry shortly");
	} else {
		node_error(s, corr, EC(NOT_LEADER),
			   "node %llu is not the leader; the leader is node "
			   "%llu at %s",
			   (unsigned long long)s->srv->cfg.id,
			   (unsigned long long)st.leader_id,
			   st.leader_client_address);
	}
}

static void reply(struct node_session *s, uint64_t corr, int body_case,
		  void *msg)
{
	Envelope e;
	env_init(&e, corr);
	e.body_case = (Raftmq__Client__V1__Envelope__BodyCase)body_case;
	/* Every body member is a pointer in the same union. */
	e.hello = msg;
	node_session_send(s, &e);
}

/* A sentence for a refused command. */
static void q_error(struct node_session *s, uint64_t corr, int status,
		    const char *what)
{
	node_error(s, corr, status, "%s: %s", what, q_strerror(status));
}

/* ---------------------------------------------------------------- settings */

static int settings_in(const Raftmq__Client__V1__QueueSettings *st,
		       struct q_settings *out, uint32_t *mask)
{
	uint32_t m = 0;
	if (st == NULL) {
		*mask = 0;
		return 0;
	}
	if (SET(ack_timeout_ms)) {
		out->ack_timeout_ms = st->ack_timeout_ms;
		m |= Q_SET_ACK_TIMEOUT;
	}
	if (SET(max_deliveries)) {
		out->max_deliveries = st->max_deliveries;
		m |= Q_SET_MAX_DELIVERIES;
	}
	if (SET(dead_letter_queue)) {
		out->dead_letter = st->dead_letter_queue;
		m |= Q_SET_DEAD_LETTER;
	}
	if (SET(ttl_ms)) {
		out->ttl_ms = st->ttl_ms;
		m |= Q_SET_TTL;
	}
	if (SET(max_length)) {
		out->max_length = st->max_length;
		m |= Q_SET_MAX_LENGTH;
	}
	if (SET(max_bytes)) {
		out->max_bytes = st->max_bytes;
		m |= Q_SET_MAX_BYTES;
	}
	if (SET(overflow)) {
		if ((unsigned)st->overflow > Q_OVERFLOW_DROP_HEAD) {
			return -1;
		}
		out->overflow = (uint8_t)st->overflow;
		m |= Q_SET_OVERFLOW;
	}
	if (SET(dedup_window_ms)) {
		out->dedup_window_ms = st->dedup_window_ms;
		m |= Q_SET_DEDUP_WINDOW;
	}
	*mask = m;
	return 0;
}

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

/* ------------------------------------------------------------------ reads */

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
	r.protocol_version = 1;
	r.node_id = s->srv->cfg.id;
	r.server_version = (char *)RAFTMQ_VERSION;
	r.max_frame_bytes = s->srv->cfg.max_frame_bytes;
	r.leader_id = st.leader_id;
	r.leader_client_address = st.leader_client_address;
	reply(s, corr, BODY(HELLO_RESULT), &r);
	return true;
}

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
		nodes[i].reachable = st.nodes[i].reachable;
		np[i] = &nodes[i];
	}
	r.n_nodes = st.n_nodes;
	r.nodes = np;
	reply(s, corr, BODY(CLUSTER_STATUS_RESULT), &r);
}

static void queue_info(struct node_session *s, uint64_t corr, const char *name)
{
	Raftmq__Client__V1__QueueInfoResult r;
	Raftmq__Client__V1__QueueStatus qs;
	Raftmq__Client__V1__QueueSettings so;
	struct q_queue_info i;
	if (q_state_queue_info(cons_state(s->srv->cons), name, &i) != 0) {
		node_error(s, corr, EC(NOT_FOUND), "queue \"%s\" not found",
			   name);
		return;
	}
	status_out(&qs, &so, &i);
	PB(queue_info_result__init)(&r);
	r.queue = &qs;
	reply(s, corr, BODY(QUEUE_INFO_RESULT), &r);
}

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
	reply(s, corr, BODY(QUEUE_LIST_RESULT), &r);
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
		reply(s, corr, BODY(TOPIC_LIST_RESULT), &r);
	}
	free(ptrs);
	free(c.ts);
}

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
			reply(s, c->corr, c->body, &r);
		} else if (status == CONS_ENOTLEADER) {
			not_leader(s, c->corr);
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
			not_leader(s, env->correlation_id);
		} else {
			node_error(s, env->correlation_id,
				   rv == CONS_EBUSY || rv == CONS_EBADID ||
						   rv == CONS_EINVAL
					   ? EC(INVALID_ARGUMENT)
					   : EC(UNAVAILABLE),
				   "membership change refused: %s",
				   cons_strerror(rv));
		}
		return;
	}
	node_session_ref(s);
}

/* ------------------------------------------------------------------ fetch */

static struct node_fetch *fetch_find(struct node_session *s,
				     q_consumer_id consumer, uint64_t id)
{
	struct node_fetch *f;
	for (f = s->fetches; f != NULL; f = f->next) {
		if (!f->answered &&
		    (id != 0 ? f->id == id : f->consumer == consumer)) {
			return f;
		}
	}
	return NULL;
}

static void fetch_closed(uv_handle_t *h)
{
	struct node_fetch *f = h->data;
	struct node_session *s = f->s;
	size_t i;
	for (i = 0; i < f->n_got; i++) {
		PB(delivery__free_unpacked)(f->got[i], NULL);
	}
	free(f->got);
	free(f);
	node_session_unref(s);
}

/* Answers a fetch with what it got and stops further deliveries to it. */
static void fetch_answer(struct node_fetch *f)
{
	struct node_session *s = f->s;
	struct node_fetch **pp;
	Raftmq__Client__V1__FetchResult r;
	PB(fetch_result__init)(&r);
	r.consumer_id = f->consumer;
	r.n_deliveries = f->n_got;
	r.deliveries = f->got;
	reply(s, f->corr, BODY(FETCH_RESULT), &r);
	f->answered = true;
	if (f->n_got < f->max && f->consumer != 0 && s->srv->leader) {
		/* Withdraw the credit left (what is delivered after this is
		 * pushed as Delivery frames with the fetch's id). */
		struct q_cmd *cmd;
		if (node_batch_add(s->srv, NULL, 0, 0, NULL, 1, &cmd) != NULL) {
			cmd->type = Q_CMD_CREDIT;
			cmd->u.consumer.consumer = f->consumer;
			cmd->u.consumer.prefetch = 0;
			cmd->u.consumer.credit = 0;
		}
	}
	for (pp = &s->fetches; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	uv_timer_stop(&f->timer);
	uv_close((uv_handle_t *)&f->timer, fetch_closed);
}

void node_fetch_timeout(uv_timer_t *t)
{
	struct node_fetch *f = t->data;
	if (!f->answered) {
		fetch_answer(f);
	}
}

static int fetch_add(struct node_fetch *f, const void *packed, size_t len)
{
	Raftmq__Client__V1__Delivery *d, **got;
	d = PB(delivery__unpack)(NULL, len, packed);
	if (d == NULL) {
		return -1;
	}
	got = realloc(f->got, (f->n_got + 1) * sizeof *got);
	if (got == NULL) {
		PB(delivery__free_unpacked)(d, NULL);
		return -1;
	}
	f->got = got;
	f->got[f->n_got++] = d;
	if (f->n_got >= f->max) {
		fetch_answer(f);
	}
	return 0;
}

static void fetch_start(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	const Raftmq__Client__V1__Fetch *fe = env->fetch;
	struct node_consumer *c = NULL;
	struct node_fetch *f;
	struct node_req *r;
	struct q_cmd *cmd;
	uint32_t max = fe->max_messages ? fe->max_messages : 1;
	uint64_t corr = env->correlation_id;

	if (fe->source_case == RAFTMQ__CLIENT__V1__FETCH__SOURCE_CONSUMER_ID) {
		c = node_session_consumer(s, fe->consumer_id);
		if (c == NULL) {
			node_error(s, corr, EC(UNKNOWN_CONSUMER),
				   "consumer %llu is not attached on this "
				   "connection",
				   (unsigned long long)fe->consumer_id);
			PB(envelope__free_unpacked)(env, NULL);
			return;
		}
	} else if (fe->source_case == RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE) {
		for (c = s->consumers; c != NULL; c = c->next) {
			if (c->pull && strcmp(c->queue, fe->queue) == 0) {
				break;
			}
		}
	} else {
		node_error(s, corr, EC(MALFORMED),
			   "fetch needs a queue or a consumer id");
		PB(envelope__free_unpacked)(env, NULL);
		return;
	}
	if (c != NULL && fetch_find(s, c->id, 0) != NULL) {
		node_error(s, corr, EC(INVALID_ARGUMENT),
			   "a fetch is already waiting on consumer %llu",
			   (unsigned long long)c->id);
		PB(envelope__free_unpacked)(env, NULL);
		return;
	}
	f = calloc(1, sizeof *f);
	if (f == NULL) {
		node_error(s, corr, EC(NO_MEMORY), "out of memory");
		PB(envelope__free_unpacked)(env, NULL);
		return;
	}
	r = node_batch_add(srv, s, corr, env->body_case, env, 1, &cmd);
	if (r == NULL) {
		free(f);
		return;
	}
	f->id = ++srv->next_fetch_id;
	f->corr = corr;
	f->max = max;
	f->s = s;
	f->consumer = c != NULL ? c->id : 0;
	uv_timer_init(srv->loop, &f->timer);
	f->timer.data = f;
	node_session_ref(s);
	f->next = s->fetches;
	s->fetches = f;
	r->fetch_id = f->id;
	if (c != NULL) {
		cmd->type = Q_CMD_CREDIT;
		cmd->u.consumer.consumer = c->id;
		cmd->u.consumer.prefetch = 0;
		cmd->u.consumer.credit = max;
	} else {
		cmd->type = Q_CMD_ATTACH;
		cmd->u.attach.queue = fe->queue;
		cmd->u.attach.session.node_id = srv->cfg.id;
		cmd->u.attach.session.epoch = srv->epoch;
		cmd->u.attach.session.session_id = s->id;
		cmd->u.attach.prefetch = 0;
		cmd->u.attach.credit = max;
		s->had_consumers = true;
		s->epoch = srv->epoch;
	}
}

/* --------------------------------------------------------------- dispatch */

static bool owns(struct node_session *s, uint64_t corr, q_consumer_id id)
{
	if (node_session_consumer(s, id) != NULL) {
		return true;
	}
	node_error(s, corr, EC(UNKNOWN_CONSUMER),
		   "consumer %llu is not attached on this connection",
		   (unsigned long long)id);
	return false;
}

static bool publish_ok(struct node_session *s, uint64_t corr,
		       const Raftmq__Client__V1__Publish *p)
{
	struct node_server *srv = s->srv;
	if (p->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET__NOT_SET) {
		node_error(s, corr, EC(MALFORMED),
			   "publish needs a queue or a topic");
		return false;
	}
	if (p->body.len > srv->cfg.max_message_bytes) {
		node_error(s, corr, EC(MESSAGE_TOO_LARGE),
			   "message of %zu bytes is over the limit of %llu "
			   "bytes (max_message_bytes)",
			   p->body.len,
			   (unsigned long long)srv->cfg.max_message_bytes);
		return false;
	}
	return true;
}

static void publish_cmd(struct q_cmd *cmd, const Raftmq__Client__V1__Publish *p)
{
	cmd->type = Q_CMD_PUBLISH;
	if (p->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE) {
		cmd->u.publish.queue = p->queue;
	} else {
		cmd->u.publish.topic = p->topic;
	}
	if (p->msg_id.len > 0) {
		cmd->u.publish.msg_id = (const char *)p->msg_id.data;
		cmd->u.publish.msg_id_len = p->msg_id.len;
	}
	cmd->u.publish.body = p->body.len > 0 ? (const void *)p->body.data : "";
	cmd->u.publish.body_len = p->body.len;
	cmd->u.publish.delay_ms = p->delay_ms;
	cmd->u.publish.ttl_ms = p->ttl_ms;
}

static bool memory_ok(struct node_session *s, uint64_t corr)
{
	struct q_totals t;
	if (!node_memory_alarm(s->srv)) {
		return true;
	}
	q_state_totals(cons_state(s->srv->cons), &t);
	s->srv->publishes_refused_memory++;
	node_error(s, corr, EC(RESOURCE_LIMIT),
		   "memory alarm: the queues hold %llu bytes, at or over this "
		   "node's memory_limit of %llu bytes; publishes are refused "
		   "until consumers drain the queues",
		   (unsigned long long)t.alloc_bytes,
		   (unsigned long long)s->srv->cfg.memory_limit);
	return false;
}

static void tags_cmd(struct q_cmd *cmd, int type, uint64_t consumer,
		     const uint64_t *tags, size_t n, uint64_t ms)
{
	cmd->type = (uint8_t)type;
	cmd->u.tags.consumer = consumer;
	cmd->u.tags.tags = tags;
	cmd->u.tags.n_tags = n;
	cmd->u.tags.ms = ms;
}

/* ------------------------------------------------------------ permissions */

/* Checks one permission; answers PERMISSION_DENIED when it is missing. */
static bool allow(struct node_session *s, uint64_t corr, enum node_perm perm,
		  const char *kind, const char *name)
{
	const struct node_user *u = s->user;
	const char *list = perm == NODE_PERM_PUBLISH   ? u->publish
			   : perm == NODE_PERM_CONSUME ? u->consume
						       : u->configure;
	if (node_auth_allows(u, perm, name)) {
		return true;
	}
	if (list[0] == '\0') {
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" may not %s %s \"%s\" (it has no %s "
			   "permission)",
			   u->name, node_auth_perm_name(perm), kind,
			   name != NULL ? name : "", node_auth_perm_name(perm));
	} else {
		node_error(s, corr, EC(PERMISSION_DENIED),
			   "user \"%s\" may not %s %s \"%s\" (its %s "
			   "prefixes are %s)",
			   u->name, node_auth_perm_name(perm), kind,
			   name != NULL ? name : "", node_auth_perm_name(perm),
			   list);
	}
	return false;
}

static bool dead_letter_ok(struct node_session *s, uint64_t corr,
			   const Raftmq__Client__V1__QueueSettings *st)
{
	if (st == NULL || !SET(dead_letter_queue) ||
	    st->dead_letter_queue[0] == '\0') {
		return true;
	}
	/* Dead-lettering publishes into that queue. */
	return allow(s, corr, NODE_PERM_PUBLISH, "dead-letter queue",
		     st->dead_letter_queue);
}

/* Whether the session's user may make this request (auth on, user set);
 * answers PERMISSION_DENIED if not. Requests on a consumer (ack, credit,
 * cancel...) were authorised when the consumer was attached. */
static bool permitted(struct node_session *s, const Envelope *env)
{
	uint64_t corr = env->correlation_id;
	char sub[2 * Q_NAME_MAX + 2];
	size_t i;

	switch (env->body_case) {
	case BODY(PUBLISH):
		return allow(
			s, corr, NODE_PERM_PUBLISH,
			env->publish->target_case ==
					RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC
				? "to topic"
				: "to queue",
			env->publish->target_case ==
					RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC
				? env->publish->topic
				: env->publish->queue);
	case BODY(PUBLISH_BATCH):
		for (i = 0; i < env->publish_batch->n_items; i++) {
			const Raftmq__Client__V1__Publish *p =
				env->publish_batch->items[i];
			bool topic = p->target_case ==
				     RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
			if (!allow(s, corr, NODE_PERM_PUBLISH,
				   topic ? "to topic" : "to queue",
				   topic ? p->topic : p->queue)) {
				return false;
			}
		}
		return true;
	case BODY(CREATE_QUEUE):
		return allow(s, corr, NODE_PERM_CONFIGURE, "queue",
			     env->create_queue->name) &&
		       dead_letter_ok(s, corr, env->create_queue->settings);
	case BODY(CONFIGURE_QUEUE):
		return allow(s, corr, NODE_PERM_CONFIGURE, "queue",
			     env->configure_queue->name) &&
		       dead_letter_ok(s, corr, env->configure_queue->settings);
	case BODY(DELETE_QUEUE):
		return allow(s, corr, NODE_PERM_CONFIGURE, "queue",
			     env->delete_queue->name);
	case BODY(PURGE_QUEUE):
		return allow(s, corr, NODE_PERM_CONFIGURE, "queue",
			     env->purge_queue->name);
	case BODY(CREATE_TOPIC):
		return allow(s, corr, NODE_PERM_CONFIGURE, "topic",
			     env->create_topic->name);
	case BODY(DELETE_TOPIC):
		return allow(s, corr, NODE_PERM_CONFIGURE, "topic",
			     env->delete_topic->name);
	case BODY(SUBSCRIBE):
	case BODY(UNSUBSCRIBE): {
		/* Creates or deletes the queue TOPIC:SUBSCRIPTION, which
		 * receives the topic's messages. */
		const char *topic = env->body_case == BODY(SUBSCRIBE)
					    ? env->subscribe->topic
					    : env->unsubscribe->topic;
		snprintf(sub, sizeof sub, "%s:%s", topic,
			 env->body_case == BODY(SUBSCRIBE)
				 ? env->subscribe->subscription
				 : env->unsubscribe->subscription);
		return allow(s, corr, NODE_PERM_CONSUME, "from topic", topic) &&
		       allow(s, corr, NODE_PERM_CONFIGURE, "subscription queue",
			     sub) &&
		       (env->body_case != BODY(SUBSCRIBE) ||
			dead_letter_ok(s, corr, env->subscribe->settings));
	}
	case BODY(CONSUME):
		return allow(s, corr, NODE_PERM_CONSUME, "from queue",
			     env->consume->queue);
	case BODY(FETCH):
		if (env->fetch->source_case ==
		    RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE) {
			return allow(s, corr, NODE_PERM_CONSUME, "from queue",
				     env->fetch->queue);
		}
		return true;
	case BODY(QUEUE_INFO):
		if (!node_auth_visible(s->user, env->queue_info->name)) {
			node_error(s, corr, EC(PERMISSION_DENIED),
				   "user \"%s\" has no permission on queue "
				   "\"%s\"",
				   s->user->name, env->queue_info->name);
			return false;
		}
		return true;
	case BODY(CLUSTER_STATUS):
	case BODY(CLUSTER_ADD):
	case BODY(CLUSTER_REMOVE):
	case BODY(CLUSTER_TRANSFER):
		if (!s->user->admin) {
			node_error(s, corr, EC(PERMISSION_DENIED),
				   "user \"%s\" may not see or change the "
				   "cluster (needs admin = true)",
				   s->user->name);
			return false;
		}
		return true;
	default:
		/* Lists (filtered), and requests on this session's own
		 * consumers. */
		return true;
	}
}

void node_dispatch(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	uint64_t corr = env->correlation_id;
	struct q_cmd *cmd;
	struct q_settings st;
	uint32_t mask;
	size_t i;
	int kind = env->body_case;

	srv->requests_total++;
	if (env->version == 0) {
		node_error(s, corr, EC(MALFORMED),
			   "frame has no protocol version");
		goto done;
	}
	if (env->version > 1) {
		node_error(s, corr, EC(UNSUPPORTED_VERSION),
			   "protocol version %u is newer than this server's "
			   "(1)",
			   env->version);
		goto done;
	}
	switch (kind) {
	case BODY(HELLO):
		(void)hello(s, corr, env->hello);
		goto done;
	case BODY(_NOT_SET):
		node_error(s, corr, EC(MALFORMED),
			   "unknown or missing request type");
		goto done;
	default:
		break;
	}
	if (srv->cfg.auth && s->user == NULL) {
		node_error(s, corr, EC(UNAUTHENTICATED),
			   "authentication required: node %llu has auth on; "
			   "send Hello with your auth token first",
			   (unsigned long long)srv->cfg.id);
		goto done;
	}
	if (srv->cfg.auth && !permitted(s, env)) {
		goto done;
	}
	if (kind == BODY(CLUSTER_STATUS)) {
		cluster_status(s, corr);
		goto done;
	}
	if (srv->stopping) {
		node_error(s, corr, EC(UNAVAILABLE),
			   "node %llu is shutting down; retry on another node",
			   (unsigned long long)srv->cfg.id);
		goto done;
	}
	if (!srv->leader) {
		not_leader(s, corr);
		goto done;
	}
	switch (kind) {
	case BODY(PUBLISH):
		if (!publish_ok(s, corr, env->publish) || !memory_ok(s, corr)) {
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) != NULL) {
			publish_cmd(cmd, env->publish);
		}
		return;
	case BODY(PUBLISH_BATCH): {
		const Raftmq__Client__V1__PublishBatch *pb = env->publish_batch;
		if (pb->n_items == 0) {
			node_error(s, corr, EC(INVALID_ARGUMENT),
				   "empty publish batch");
			goto done;
		}
		for (i = 0; i < pb->n_items; i++) {
			if (!publish_ok(s, corr, pb->items[i])) {
				goto done;
			}
		}
		if (!memory_ok(s, corr)) {
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, pb->n_items,
				   &cmd) != NULL) {
			for (i = 0; i < pb->n_items; i++) {
				publish_cmd(&cmd[i], pb->items[i]);
			}
		}
		return;
	}
	case BODY(CREATE_QUEUE):
	case BODY(CONFIGURE_QUEUE): {
		const Raftmq__Client__V1__QueueSettings *qs =
			kind == BODY(CREATE_QUEUE)
				? env->create_queue->settings
				: env->configure_queue->settings;
		q_settings_default(&st);
		if (settings_in(qs, &st, &mask) != 0) {
			node_error(s, corr, EC(INVALID_ARGUMENT),
				   "unknown overflow value");
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = kind == BODY(CREATE_QUEUE) ? Q_CMD_CREATE_QUEUE
						       : Q_CMD_CONFIGURE_QUEUE;
		cmd->u.queue.name = kind == BODY(CREATE_QUEUE)
					    ? env->create_queue->name
					    : env->configure_queue->name;
		cmd->u.queue.settings = st;
		cmd->u.queue.mask = mask;
		return;
	}
	case BODY(DELETE_QUEUE):
	case BODY(PURGE_QUEUE):
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = kind == BODY(DELETE_QUEUE) ? Q_CMD_DELETE_QUEUE
						       : Q_CMD_PURGE_QUEUE;
		cmd->u.queue.name = kind == BODY(DELETE_QUEUE)
					    ? env->delete_queue->name
					    : env->purge_queue->name;
		return;
	case BODY(CREATE_TOPIC):
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_CREATE_TOPIC;
		cmd->u.topic.topic = env->create_topic->name;
		cmd->u.topic.dedup_window_ms =
			env->create_topic->_dedup_window_ms_case != 0
				? env->create_topic->dedup_window_ms
				: 120000;
		return;
	case BODY(DELETE_TOPIC):
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_DELETE_TOPIC;
		cmd->u.topic.topic = env->delete_topic->name;
		return;
	case BODY(SUBSCRIBE):
		q_settings_default(&st);
		if (settings_in(env->subscribe->settings, &st, &mask) != 0) {
			node_error(s, corr, EC(INVALID_ARGUMENT),
				   "unknown overflow value");
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_SUBSCRIBE;
		cmd->u.topic.topic = env->subscribe->topic;
		cmd->u.topic.subscription = env->subscribe->subscription;
		cmd->u.topic.settings = st;
		return;
	case BODY(UNSUBSCRIBE):
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_UNSUBSCRIBE;
		cmd->u.topic.topic = env->unsubscribe->topic;
		cmd->u.topic.subscription = env->unsubscribe->subscription;
		return;
	case BODY(CONSUME):
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_ATTACH;
		cmd->u.attach.queue = env->consume->queue;
		cmd->u.attach.session.node_id = srv->cfg.id;
		cmd->u.attach.session.epoch = srv->epoch;
		cmd->u.attach.session.session_id = s->id;
		/* "Unlimited" is capped: a consumer that stops reading must
		 * not make this node buffer every message of the queue in its
		 * output (input from it stops at max_client_output_bytes,
		 * deliveries do not). */
		cmd->u.attach.prefetch =
			env->consume->prefetch == 0 || env->consume->prefetch >
							       NODE_MAX_PREFETCH
				? NODE_MAX_PREFETCH
				: env->consume->prefetch;
		cmd->u.attach.credit = env->consume->_credit_case != 0
					       ? env->consume->credit
					       : Q_CREDIT_UNLIMITED;
		s->had_consumers = true;
		s->epoch = srv->epoch;
		return;
	case BODY(CANCEL):
		if (!owns(s, corr, env->cancel->consumer_id)) {
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_DETACH;
		cmd->u.consumer.consumer = env->cancel->consumer_id;
		return;
	case BODY(CREDIT):
		if (!owns(s, corr, env->credit->consumer_id)) {
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) == NULL) {
			return;
		}
		cmd->type = Q_CMD_CREDIT;
		cmd->u.consumer.consumer = env->credit->consumer_id;
		cmd->u.consumer.prefetch =
			env->credit->prefetch == 0 || env->credit->prefetch >
							      NODE_MAX_PREFETCH
				? NODE_MAX_PREFETCH
				: env->credit->prefetch;
		cmd->u.consumer.credit = env->credit->credit;
		return;
	case BODY(FETCH):
		fetch_start(s, env);
		return;
	case BODY(ACK):
	case BODY(NACK):
	case BODY(RELEASE):
	case BODY(EXTEND): {
		uint64_t consumer, ms = 0;
		const uint64_t *tags;
		size_t n;
		int type;
		if (kind == BODY(ACK)) {
			consumer = env->ack->consumer_id;
			tags = env->ack->tags;
			n = env->ack->n_tags;
			type = Q_CMD_ACK;
		} else if (kind == BODY(NACK)) {
			consumer = env->nack->consumer_id;
			tags = env->nack->tags;
			n = env->nack->n_tags;
			ms = env->nack->delay_ms;
			type = Q_CMD_NACK;
		} else if (kind == BODY(RELEASE)) {
			consumer = env->release->consumer_id;
			tags = env->release->tags;
			n = env->release->n_tags;
			type = Q_CMD_RELEASE;
		} else {
			consumer = env->extend->consumer_id;
			tags = env->extend->tags;
			n = env->extend->n_tags;
			ms = env->extend->ms;
			type = Q_CMD_EXTEND;
		}
		if (n == 0) {
			node_error(s, corr, EC(INVALID_ARGUMENT),
				   "no delivery tags given");
			goto done;
		}
		if (!owns(s, corr, consumer)) {
			goto done;
		}
		if (node_batch_add(srv, s, corr, kind, env, 1, &cmd) != NULL) {
			tags_cmd(cmd, type, consumer, tags, n, ms);
		}
		return;
	}
	case BODY(QUEUE_INFO):
		queue_info(s, corr, env->queue_info->name);
		goto done;
	case BODY(QUEUE_LIST):
		queue_list(s, corr);
		goto done;
	case BODY(TOPIC_LIST):
		topic_list(s, corr);
		goto done;
	case BODY(CLUSTER_ADD):
	case BODY(CLUSTER_REMOVE):
	case BODY(CLUSTER_TRANSFER):
		membership(s, env);
		goto done;
	default:
		node_error(s, corr, EC(MALFORMED),
			   "request type %d is not a request", kind);
		goto done;
	}
done:
	PB(envelope__free_unpacked)(env, NULL);
}

/* ---------------------------------------------------------------- results */

static const char *target_of(const Envelope *env, char *buf, size_t len)
{
	switch (env->body_case) {
	case BODY(PUBLISH):
		if (env->publish->target_case ==
		    RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC) {
			snprintf(buf, len, "topic \"%s\"", env->publish->topic);
		} else {
			snprintf(buf, len, "queue \"%s\"", env->publish->queue);
		}
		break;
	case BODY(CREATE_QUEUE):
		snprintf(buf, len, "queue \"%s\"", env->create_queue->name);
		break;
	case BODY(CONFIGURE_QUEUE):
		snprintf(buf, len, "queue \"%s\"", env->configure_queue->name);
		break;
	case BODY(DELETE_QUEUE):
		snprintf(buf, len, "queue \"%s\"", env->delete_queue->name);
		break;
	case BODY(PURGE_QUEUE):
		snprintf(buf, len, "queue \"%s\"", env->purge_queue->name);
		break;
	case BODY(CREATE_TOPIC):
		snprintf(buf, len, "topic \"%s\"", env->create_topic->name);
		break;
	case BODY(DELETE_TOPIC):
		snprintf(buf, len, "topic \"%s\"", env->delete_topic->name);
		break;
	case BODY(SUBSCRIBE):
		snprintf(buf, len, "subscription \"%s:%s\"",
			 env->subscribe->topic, env->subscribe->subscription);
		break;
	case BODY(UNSUBSCRIBE):
		snprintf(buf, len, "subscription \"%s:%s\"",
			 env->unsubscribe->topic,
			 env->unsubscribe->subscription);
		break;
	case BODY(CONSUME):
		snprintf(buf, len, "queue \"%s\"", env->consume->queue);
		break;
	case BODY(FETCH):
		if (env->fetch->source_case ==
		    RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE) {
			snprintf(buf, len, "queue \"%s\"", env->fetch->queue);
		} else {
			snprintf(buf, len, "consumer %llu",
				 (unsigned long long)env->fetch->consumer_id);
		}
		break;
	default:
		snprintf(buf, len, "request");
		break;
	}
	if (strlen(buf) == len - 1) {
		utf8_cut(buf);
	}
	return buf;
}

static void flush_early(struct node_session *s, struct node_consumer *c)
{
	struct node_early **pp = &s->early;
	while (*pp != NULL) {
		struct node_early *e = *pp;
		if (e->consumer != c->id) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (c->pull) {
			struct node_fetch *f = fetch_find(s, c->id, 0);
			if (f != NULL) {
				fetch_add(f, e->frame_body.base,
					  e->frame_body.len);
				goto next;
			}
		}
		{
			Envelope env;
			Raftmq__Client__V1__Delivery *d = PB(delivery__unpack)(
				NULL, e->frame_body.len,
				(const uint8_t *)e->frame_body.base);
			if (d != NULL) {
				env_init(&env, c->corr);
				env.body_case = BODY(DELIVERY);
				env.delivery = d;
				node_session_send(s, &env);
				PB(delivery__free_unpacked)(d, NULL);
			}
		}
	next:
		node_buf_free(&e->frame_body);
		free(e);
	}
}

static struct node_consumer *consumer_add(struct node_session *s,
					  q_consumer_id id, uint64_t corr,
					  const char *queue, bool pull)
{
	struct node_consumer *c = calloc(1, sizeof *c);
	if (c == NULL) {
		return NULL;
	}
	c->id = id;
	c->corr = corr;
	c->pull = pull;
	snprintf(c->queue, sizeof c->queue, "%s", queue);
	c->next = s->consumers;
	s->consumers = c;
	return c;
}

static void consumer_drop(struct node_session *s, q_consumer_id id)
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

static void fetch_result(struct node_session *s, struct node_req *r,
			 const struct q_result *res)
{
	struct node_fetch *f = fetch_find(s, 0, r->fetch_id);
	const Raftmq__Client__V1__Fetch *fe = r->env->fetch;
	if (f == NULL) {
		return;
	}
	if (res->status != 0) {
		char what[300];
		q_error(s, r->corr, res->status,
			target_of(r->env, what, sizeof what));
		f->answered = true; /* nothing to withdraw */
		uv_close((uv_handle_t *)&f->timer, fetch_closed);
		{
			struct node_fetch **pp;
			for (pp = &s->fetches; *pp != NULL; pp = &(*pp)->next) {
				if (*pp == f) {
					*pp = f->next;
					break;
				}
			}
		}
		return;
	}
	if (f->consumer == 0) {
		struct node_consumer *c = consumer_add(
			s, res->consumer, r->corr, fe->queue, true);
		f->consumer = res->consumer;
		if (c != NULL) {
			flush_early(s, c); /* may answer f */
		}
		if (f->answered) {
			return;
		}
	}
	if (fe->wait_ms == 0) {
		fetch_answer(f);
	} else {
		uv_timer_start(&f->timer, node_fetch_timeout, fe->wait_ms, 0);
	}
}

static void answer(struct node_server *srv, struct node_req *r,
		   const struct q_result *res)
{
	struct node_session *s = r->session;
	const struct q_result *q = &res[r->first];
	char what[300];
	int body = r->kind + 100; /* result = request + 100 */
	union {
		Raftmq__Client__V1__PublishResult pub;
		Raftmq__Client__V1__PurgeQueueResult purge;
		Raftmq__Client__V1__SubscribeResult sub;
		Raftmq__Client__V1__ConsumeResult consume;
		Raftmq__Client__V1__TagsResult tags;
		Raftmq__Client__V1__CreateQueueResult empty;
	} m;
	char subname[Q_NAME_MAX + 2];

	if (r->kind == BODY(FETCH)) {
		fetch_result(s, r, q);
		return;
	}
	if (r->kind == BODY(PUBLISH_BATCH)) {
		Raftmq__Client__V1__PublishBatchResult br;
		Raftmq__Client__V1__PublishItemResult *items, **ptrs;
		size_t i;
		items = calloc(r->count, sizeof *items);
		ptrs = calloc(r->count, sizeof *ptrs);
		if (items == NULL || ptrs == NULL) {
			free(items);
			free(ptrs);
			node_error(s, r->corr, EC(NO_MEMORY), "out of memory");
			return;
		}
		for (i = 0; i < r->count; i++) {
			PB(publish_item_result__init)(&items[i]);
			items[i].code =
				(Raftmq__Client__V1__ErrorCode)q[i].status;
			items[i].message =
				(char *)(q[i].status ? q_strerror(q[i].status)
						     : "");
			items[i].seq = q[i].seq;
			items[i].duplicate = q[i].duplicate;
			ptrs[i] = &items[i];
			if (q[i].status == 0) {
				node_hist_add(
					&srv->confirm,
					(double)(node_now_ns() - r->t0_ns) /
						1e9);
			}
		}
		PB(publish_batch_result__init)(&br);
		br.n_results = r->count;
		br.results = ptrs;
		reply(s, r->corr, BODY(PUBLISH_BATCH_RESULT), &br);
		free(items);
		free(ptrs);
		return;
	}
	/* Unknown tags are counted, not an error (client.proto). */
	if (q->status != 0 &&
	    !(q->status == Q_EUNKNOWNTAG &&
	      (r->kind == BODY(ACK) || r->kind == BODY(NACK) ||
	       r->kind == BODY(RELEASE) || r->kind == BODY(EXTEND)))) {
		q_error(s, r->corr, q->status,
			target_of(r->env, what, sizeof what));
		return;
	}
	memset(&m, 0, sizeof m);
	switch (r->kind) {
	case BODY(PUBLISH):
		PB(publish_result__init)(&m.pub);
		m.pub.seq = q->seq;
		m.pub.duplicate = q->duplicate;
		node_hist_add(&srv->confirm,
			      (double)(node_now_ns() - r->t0_ns) / 1e9);
		break;
	case BODY(PURGE_QUEUE):
		PB(purge_queue_result__init)(&m.purge);
		m.purge.purged = q->count;
		break;
	case BODY(SUBSCRIBE):
		PB(subscribe_result__init)(&m.sub);
		snprintf(subname, sizeof subname, "%s:%s",
			 r->env->subscribe->topic,
			 r->env->subscribe->subscription);
		m.sub.queue = subname;
		break;
	case BODY(CONSUME): {
		struct node_consumer *c;
		PB(consume_result__init)(&m.consume);
		m.consume.consumer_id = q->consumer;
		c = consumer_add(s, q->consumer, r->corr,
				 r->env->consume->queue, false);
		reply(s, r->corr, body, &m.consume);
		if (c != NULL) {
			flush_early(s, c);
		}
		return;
	}
	case BODY(CANCEL):
		consumer_drop(s, r->env->cancel->consumer_id);
		PB(cancel_result__init)((void *)&m.empty);
		break;
	case BODY(ACK):
	case BODY(NACK):
	case BODY(RELEASE):
	case BODY(EXTEND):
		PB(tags_result__init)(&m.tags);
		m.tags.done = q->count;
		m.tags.unknown = q->unknown;
		break;
	default:
		/* Empty results: all share the layout of CreateQueueResult. */
		PB(create_queue_result__init)(&m.empty);
		break;
	}
	reply(s, r->corr, body, &m);
}

void node_dispatch_results(struct node_server *srv, struct node_batch *b,
			   int status, const struct q_result *results, size_t n)
{
	size_t i;
	(void)n;
	for (i = 0; i < b->n_reqs; i++) {
		struct node_req *r = &b->reqs[i];
		struct node_session *s = r->session;
		if (s == NULL) {
			/* Internal: tick, detach-stale, session-gone. */
			if (b->cmds[r->first].type == Q_CMD_TICK) {
				srv->tick_inflight = false;
			}
			if (status != 0 && status != CONS_ENOTLEADER &&
			    status != CONS_ESHUTDOWN) {
				NODE_WARN("internal command %d failed: %s",
					  b->cmds[r->first].type,
					  cons_strerror(status));
			}
			continue;
		}
		if (s->closing) {
			continue;
		}
		if (status == 0) {
			answer(srv, r, results);
			continue;
		}
		if (r->kind == BODY(FETCH)) {
			struct node_fetch *f = fetch_find(s, 0, r->fetch_id);
			if (f != NULL) {
				f->consumer = 0; /* nothing to withdraw */
				fetch_answer(f);
			}
			continue;
		}
		switch (status) {
		case CONS_ENOTLEADER:
			not_leader(s, r->corr);
			break;
		case CONS_ELEADERSHIPLOST:
			node_error(s, r->corr, EC(UNKNOWN_OUTCOME),
				   "leadership was lost before the request "
				   "committed: it may or may not have been "
				   "applied; retry (publishes with the same "
				   "message id are deduplicated)");
			break;
		case CONS_ESHUTDOWN:
			node_error(s, r->corr, EC(UNAVAILABLE),
				   "node %llu is shutting down; retry on "
				   "another node",
				   (unsigned long long)srv->cfg.id);
			break;
		case CONS_ENOMEM:
			node_error(s, r->corr, EC(NO_MEMORY),
				   "the node is out of memory");
			break;
		case CONS_ENOSPACE:
			node_error(s, r->corr, EC(RESOURCE_LIMIT),
				   "not enough disk space to write the request "
				   "to the Raft log (leader node %llu); "
				   "writes are refused until space is freed, "
				   "then retry (publishes with the same "
				   "message id are deduplicated)",
				   (unsigned long long)srv->cfg.id);
			break;
		default:
			node_error(s, r->corr, EC(INTERNAL),
				   "could not replicate the request: %s",
				   cons_strerror(status));
			break;
		}
	}
}

/* ------------------------------------------------------------------- sink */

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

static void delivery_msg(Raftmq__Client__V1__Delivery *m,
			 const struct q_delivery *d)
{
	PB(delivery__init)(m);
	m->consumer_id = d->consumer;
	m->queue = (char *)(uintptr_t)d->queue;
	m->tag = d->seq;
	m->msg_id.data = (uint8_t *)(uintptr_t)d->msg_id;
	m->msg_id.len = d->msg_id != NULL ? d->msg_id_len : 0;
	m->body.data = (uint8_t *)(uintptr_t)d->body;
	m->body.len = d->body_len;
	m->delivery_count = d->delivery_count;
	m->redelivered = d->delivery_count > 1;
	m->published_ms = d->published_ms;
	m->dead_letter_reason =
		(Raftmq__Client__V1__DeadLetterReason)d->dl_reason;
	m->dead_letter_queue =
		(char *)(uintptr_t)(d->dl_queue ? d->dl_queue : "");
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

void node_on_delivery(void *data, const struct q_delivery *d)
{
	struct node_server *srv = data;
	struct node_session *s = session_of(srv, d->session);
	struct node_consumer *c;
	Raftmq__Client__V1__Delivery m;
	if (s == NULL) {
		return; /* not ours: a follower, or the client has gone */
	}
	delivery_msg(&m, d);
	c = node_session_consumer(s, d->consumer);
	if (c != NULL && c->pull) {
		struct node_fetch *f = fetch_find(s, c->id, 0);
		struct q_cmd *cmd;
		if (f != NULL) {
			struct node_buf b = {NULL, 0, 0};
			if (pack_delivery(&m, &b) == 0) {
				fetch_add(f, b.base, b.len);
			}
			node_buf_free(&b);
			return;
		}
		/* Delivered after its fetch was answered (credit still left
		 * before the withdrawal applied): nobody waits for it, so
		 * give it back at once rather than let it sit until its ack
		 * deadline. */
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
		}
		return;
	}
	if (c != NULL) {
		Envelope e;
		env_init(&e, c->corr);
		e.body_case = BODY(DELIVERY);
		e.delivery = &m;
		node_session_send(s, &e);
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
		for (pp = &s->early; *pp != NULL; pp = &(*pp)->next) {
		}
		*pp = e;
	}
}

void node_on_consumer_gone(void *data, const struct q_consumer_gone *g)
{
	struct node_server *srv = data;
	struct node_session *s = session_of(srv, g->session);
	struct node_consumer *c;
	Raftmq__Client__V1__ConsumerGone m;
	Envelope e;
	if (s == NULL || (c = node_session_consumer(s, g->consumer)) == NULL) {
		return;
	}
	PB(consumer_gone__init)(&m);
	m.consumer_id = g->consumer;
	m.queue = (char *)(uintptr_t)g->queue;
	m.message = (char *)"the queue was deleted";
	env_init(&e, c->corr);
	e.body_case = BODY(CONSUMER_GONE);
	e.consumer_gone = &m;
	node_session_send(s, &e);
	consumer_drop(s, g->consumer);
}
