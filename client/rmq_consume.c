/*
 * Consuming: push consumers (Consume + Delivery pushes), pulls (Fetch), and
 * ack / nack / release / extend of delivery tags.
 *
 * A consumer is a struct raftmq_consumer in conn->consumers, matched to
 * incoming pushes by the correlation id of the Consume that attached it.
 * Deliveries are copied out of the envelope into one allocation each and
 * queued in conn->dq until raftmq_next()/raftmq_poll() hand them out.
 *
 * Cancel and close: the deliveries still queued for a consumer never reached
 * the application, so the Cancel that ends the consumer names them
 * (Cancel.unseen_tags) and the server returns them as if they had not been
 * delivered. raftmq_close() sends such a Cancel for every consumer (its
 * goodbye, rmq__consumers_goodbye) before it closes the socket: a
 * connection that ends without a goodbye makes the server count what it
 * held as failed deliveries, which is right for a crash only.
 *
 * Failover: a consumer belongs to the server session of one connection. When
 * the engine reconnects (rmq_conn.c replay_all) every live consumer goes back
 * to ATTACHING with id 0, its queued deliveries are dropped (the server has
 * requeued them), and the next pump sends a new Consume. Tag operations check
 * that their consumer id is still live here before sending, and a tag
 * operation in flight during a reconnect fails with RAFTMQ_ESTALE: the tags
 * of a previous session are void.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmq_int.h"

int rmq__delivery_copy(const rmq_delivery_msg *m, struct raftmq_delivery *d)
{
	size_t qlen = strlen(m->queue) + 1;
	size_t dlen = strlen(m->dead_letter_queue) + 1;
	char *mem;
	char *p;

	memset(d, 0, sizeof(*d));
	mem = malloc(qlen + dlen + m->msg_id.len + 1 + m->body.len + 1);
	if (mem == NULL) {
		return RAFTMQ_ENOMEM;
	}
	p = mem;
	memcpy(p, m->queue, qlen);
	d->queue = p;
	p += qlen;
	memcpy(p, m->dead_letter_queue, dlen);
	d->dead_letter_queue = p;
	p += dlen;
	if (m->msg_id.len > 0) {
		memcpy(p, m->msg_id.data, m->msg_id.len);
	}
	p[m->msg_id.len] = '\0';
	d->msg_id = p;
	d->msg_id_len = m->msg_id.len;
	p += m->msg_id.len + 1;
	if (m->body.len > 0) {
		memcpy(p, m->body.data, m->body.len);
	}
	p[m->body.len] = '\0';
	d->body = p;
	d->body_len = m->body.len;
	d->consumer_id = m->consumer_id;
	d->tag = m->tag;
	d->delivery_count = m->delivery_count;
	d->redelivered = m->redelivered;
	d->published_ms = m->published_ms;
	d->dead_letter_reason =
		(enum raftmq_dead_letter_reason)m->dead_letter_reason;
	d->priv = mem;
	return 0;
}

void raftmq_delivery_free(struct raftmq_delivery *d)
{
	if (d == NULL) {
		return;
	}
	free(d->priv);
	memset(d, 0, sizeof(*d));
}

void raftmq_deliveries_free(struct raftmq_delivery *d, size_t n)
{
	size_t i;

	if (d == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		raftmq_delivery_free(&d[i]);
	}
	free(d);
}

void rmq__dq_drop(struct raftmq *conn, const struct raftmq_consumer *c)
{
	struct rmq_dnode **pp = &conn->dq;
	struct rmq_dnode *n;

	conn->dq_tail = NULL;
	while ((n = *pp) != NULL) {
		if (c == NULL || n->consumer == c) {
			*pp = n->next;
			raftmq_delivery_free(&n->d);
			free(n);
			continue;
		}
		conn->dq_tail = n;
		pp = &n->next;
	}
}

void rmq__consumer_free(struct raftmq_consumer *c)
{
	free(c->queue);
	free(c);
}

static void consumer_gone(struct raftmq *conn, struct raftmq_consumer *c,
			  int err, const char *why)
{
	c->state = RMQ_CONSUMER_GONE;
	c->err = err;
	snprintf(c->errmsg, sizeof(c->errmsg),
		 "consumer of \"%.40s\" gone: %.100s", c->queue,
		 why != NULL && why[0] != '\0' ? why : "removed");
	rmq__dq_drop(conn, c);
}

int rmq__consumer_send(struct raftmq *conn, struct raftmq_consumer *c)
{
	Raftmq__Client__V1__Consume cm = RAFTMQ__CLIENT__V1__CONSUME__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (c->retry_at > rmq__now_ms()) {
		return 0;
	}
	cm.queue = c->queue;
	cm.prefetch = c->prefetch;
	env.body_case = RMQ_BODY(CONSUME);
	env.consume = &cm;
	c->corr = rmq__corr(conn);
	c->sent = true;
	rv = rmq__send(conn, &env, c->corr);
	if (rv != 0) {
		consumer_gone(conn, c, rv, conn->errmsg);
	}
	return rv;
}

static void enqueue(struct raftmq *conn, struct raftmq_consumer *c,
		    const rmq_delivery_msg *m)
{
	struct rmq_dnode *n = calloc(1, sizeof(*n));

	if (n == NULL || rmq__delivery_copy(m, &n->d) != 0) {
		/* Dropped: the ack deadline will requeue it. */
		free(n);
		return;
	}
	n->consumer = c;
	if (conn->dq_tail != NULL) {
		conn->dq_tail->next = n;
	} else {
		conn->dq = n;
	}
	conn->dq_tail = n;
}

void rmq__consumer_on_frame(struct raftmq *conn, struct raftmq_consumer *c,
			    rmq_env *env)
{
	switch (env->body_case) {
	case RMQ_BODY(CONSUME_RESULT):
		if (c->state == RMQ_CONSUMER_ATTACHING) {
			c->id = env->consume_result->consumer_id;
			c->state = RMQ_CONSUMER_ATTACHED;
			c->attempts = 0;
			conn->failures = 0;
		}
		break;
	case RMQ_BODY(DELIVERY):
		if (c->state != RMQ_CONSUMER_GONE) {
			enqueue(conn, c, env->delivery);
		}
		break;
	case RMQ_BODY(CONSUMER_GONE):
		consumer_gone(conn, c, RAFTMQ_ECONSUMER_GONE,
			      env->consumer_gone->message);
		break;
	case RMQ_BODY(ERROR):
		if (c->state != RMQ_CONSUMER_ATTACHING) {
			break;
		}
		switch (rmq__classify(conn, env->error, true)) {
		case RMQ_ACT_FAILOVER:
			c->sent = false;
			break;
		case RMQ_ACT_RETRY:
			c->sent = false;
			c->attempts++;
			c->retry_at = rmq__now_ms() +
				      rmq__backoff_ms(conn, c->attempts);
			break;
		case RMQ_ACT_FAIL:
			consumer_gone(conn, c, (int)env->error->code,
				      env->error->message);
			break;
		}
		break;
	default:
		break;
	}
	rmq__env_free(env);
}

static void consumer_unlink(struct raftmq *conn, struct raftmq_consumer *c)
{
	struct raftmq_consumer **pp = &conn->consumers;

	while (*pp != NULL && *pp != c) {
		pp = &(*pp)->next;
	}
	if (*pp == c) {
		*pp = c->next;
	}
	rmq__dq_drop(conn, c);
}

int raftmq_consume(struct raftmq *conn, const char *queue, uint32_t prefetch,
		   struct raftmq_consumer **out)
{
	uint64_t deadline = rmq__deadline(conn->request_timeout_ms);
	struct raftmq_consumer *c;
	int rv;

	*out = NULL;
	if (queue == NULL || queue[0] == '\0') {
		return rmq__fail(conn, RAFTMQ_EINVAL, "empty queue name");
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->queue = strdup(queue)) == NULL) {
		free(c);
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	c->prefetch = prefetch;
	c->state = RMQ_CONSUMER_ATTACHING;
	c->next = conn->consumers;
	conn->consumers = c;
	conn->errmsg[0] = '\0';
	while (c->state == RMQ_CONSUMER_ATTACHING) {
		rv = rmq__pump(conn, deadline);
		if (rv != 0 && c->state == RMQ_CONSUMER_ATTACHING) {
			consumer_unlink(conn, c);
			rmq__consumer_free(c);
			return rv == RAFTMQ_ETIMEOUT
				       ? rmq__fail(conn, rv,
						   "consume: no answer in time")
				       : rv;
		}
	}
	if (c->state == RMQ_CONSUMER_GONE) {
		rv = rmq__fail(conn, c->err, "%s", c->errmsg);
		consumer_unlink(conn, c);
		rmq__consumer_free(c);
		return rv;
	}
	*out = c;
	return 0;
}

uint64_t raftmq_consumer_id(const struct raftmq_consumer *c)
{
	return c->state == RMQ_CONSUMER_ATTACHED ? c->id : 0;
}

/* Moves the first queued delivery of c (any if NULL) into *out. */
static bool dq_pop(struct raftmq *conn, const struct raftmq_consumer *c,
		   struct raftmq_delivery *out)
{
	struct rmq_dnode **pp = &conn->dq;
	struct rmq_dnode *prev = NULL;
	struct rmq_dnode *n;

	for (; (n = *pp) != NULL; prev = n, pp = &n->next) {
		if (c != NULL && n->consumer != c) {
			continue;
		}
		*pp = n->next;
		if (conn->dq_tail == n) {
			conn->dq_tail = prev;
		}
		*out = n->d;
		free(n);
		return true;
	}
	return false;
}

static bool any_consumer(const struct raftmq *conn)
{
	const struct raftmq_consumer *c;

	for (c = conn->consumers; c != NULL; c = c->next) {
		if (c->state != RMQ_CONSUMER_GONE) {
			return true;
		}
	}
	return false;
}

int raftmq_next(struct raftmq *conn, struct raftmq_consumer *c, int timeout_ms,
		struct raftmq_delivery *out)
{
	uint64_t deadline = timeout_ms < 0
				    ? RMQ_NO_DEADLINE
				    : rmq__deadline((uint64_t)timeout_ms);
	int rv;

	for (;;) {
		if (dq_pop(conn, c, out)) {
			return 0;
		}
		if (c != NULL && c->state == RMQ_CONSUMER_GONE) {
			return rmq__fail(
				conn,
				c->err != 0 ? c->err : RAFTMQ_ECONSUMER_GONE,
				"%s", c->errmsg);
		}
		if (c == NULL && !any_consumer(conn)) {
			return rmq__fail(conn, RAFTMQ_ENOPENDING,
					 "no consumer on this connection");
		}
		rv = rmq__pump(conn, deadline);
		if (rv != 0) {
			if (dq_pop(conn, c, out)) {
				return 0;
			}
			if (rv == RAFTMQ_ETIMEOUT) {
				return rmq__fail(conn, rv,
						 "no delivery within %d ms",
						 timeout_ms);
			}
			return rv;
		}
	}
}

int raftmq_poll(struct raftmq *conn, int timeout_ms, raftmq_delivery_cb cb,
		void *data)
{
	struct raftmq_delivery d;
	int rv;

	rv = raftmq_next(conn, NULL, timeout_ms, &d);
	if (rv != 0) {
		return rv;
	}
	do {
		cb(conn, &d, data);
		raftmq_delivery_free(&d);
	} while (dq_pop(conn, NULL, &d));
	return 0;
}

static bool consumer_live(const struct raftmq *conn, uint64_t id)
{
	const struct raftmq_consumer *c;
	size_t i;

	for (c = conn->consumers; c != NULL; c = c->next) {
		if (c->state == RMQ_CONSUMER_ATTACHED && c->id == id) {
			return true;
		}
	}
	for (i = 0; i < conn->n_pull; i++) {
		if (conn->pull_ids[i] == id) {
			return true;
		}
	}
	return false;
}

/* What every tag operation checks first: tags given, and their consumer
 * still attached here (the tags of a previous session are void). */
static int check_tags(struct raftmq *conn, uint64_t consumer_id,
		      const uint64_t *tags, size_t n)
{
	if (tags == NULL || n == 0) {
		return rmq__fail(conn, RAFTMQ_EINVAL, "empty tag list");
	}
	if (!consumer_live(conn, consumer_id)) {
		return rmq__fail(conn, RAFTMQ_ESTALE,
				 "consumer %llu is not attached on this "
				 "connection any more (re-attached after "
				 "failover, or removed); its delivery tags "
				 "are void",
				 (unsigned long long)consumer_id);
	}
	return 0;
}

enum tags_op { OP_ACK, OP_NACK, OP_RELEASE, OP_EXTEND };

static int tags_call(struct raftmq *conn, enum tags_op op, uint64_t consumer_id,
		     const uint64_t *tags, size_t n, uint64_t param,
		     struct raftmq_tags_result *res)
{
	Raftmq__Client__V1__Ack ack = RAFTMQ__CLIENT__V1__ACK__INIT;
	Raftmq__Client__V1__Nack nack = RAFTMQ__CLIENT__V1__NACK__INIT;
	Raftmq__Client__V1__Release rel = RAFTMQ__CLIENT__V1__RELEASE__INIT;
	Raftmq__Client__V1__Extend ext = RAFTMQ__CLIENT__V1__EXTEND__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__TagsResult *r;
	rmq_env *resp;
	int expect = 0;
	int rv;

	rv = check_tags(conn, consumer_id, tags, n);
	if (rv != 0) {
		return rv;
	}
	switch (op) {
	case OP_ACK:
		ack.consumer_id = consumer_id;
		ack.n_tags = n;
		ack.tags = (uint64_t *)tags;
		env.body_case = RMQ_BODY(ACK);
		env.ack = &ack;
		expect = RMQ_BODY(ACK_RESULT);
		break;
	case OP_NACK:
		nack.consumer_id = consumer_id;
		nack.n_tags = n;
		nack.tags = (uint64_t *)tags;
		nack.delay_ms = param;
		env.body_case = RMQ_BODY(NACK);
		env.nack = &nack;
		expect = RMQ_BODY(NACK_RESULT);
		break;
	case OP_RELEASE:
		rel.consumer_id = consumer_id;
		rel.n_tags = n;
		rel.tags = (uint64_t *)tags;
		env.body_case = RMQ_BODY(RELEASE);
		env.release = &rel;
		expect = RMQ_BODY(RELEASE_RESULT);
		break;
	case OP_EXTEND:
		ext.consumer_id = consumer_id;
		ext.n_tags = n;
		ext.tags = (uint64_t *)tags;
		ext.ms = param;
		env.body_case = RMQ_BODY(EXTEND);
		env.extend = &ext;
		expect = RMQ_BODY(EXTEND_RESULT);
		break;
	}
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_STALE, false, 0, expect,
			      &resp);
	if (rv != 0) {
		return rv;
	}
	/* All four results share the TagsResult type. */
	r = resp->ack_result;
	if (res != NULL) {
		res->done = r->done;
		res->unknown = r->unknown;
	}
	rmq__env_free(resp);
	return 0;
}

int raftmq_ack(struct raftmq *conn, uint64_t consumer_id, const uint64_t *tags,
	       size_t n, struct raftmq_tags_result *res)
{
	return tags_call(conn, OP_ACK, consumer_id, tags, n, 0, res);
}

int raftmq_nack(struct raftmq *conn, uint64_t consumer_id, const uint64_t *tags,
		size_t n, uint64_t delay_ms, struct raftmq_tags_result *res)
{
	return tags_call(conn, OP_NACK, consumer_id, tags, n, delay_ms, res);
}

int raftmq_release(struct raftmq *conn, uint64_t consumer_id,
		   const uint64_t *tags, size_t n,
		   struct raftmq_tags_result *res)
{
	return tags_call(conn, OP_RELEASE, consumer_id, tags, n, 0, res);
}

int raftmq_extend(struct raftmq *conn, uint64_t consumer_id,
		  const uint64_t *tags, size_t n, uint64_t ms,
		  struct raftmq_tags_result *res)
{
	return tags_call(conn, OP_EXTEND, consumer_id, tags, n, ms, res);
}

/*
 * Fills *cm to cancel server consumer `id`, naming as unseen the
 * deliveries queued for `c` (may be NULL: a pull consumer has none). The
 * tag array is *tags (transferred: free() it after sending). Out of memory
 * only loses the unseen tags: those deliveries then count as made.
 */
static void cancel_fill(struct raftmq *conn, const struct raftmq_consumer *c,
			uint64_t id, Raftmq__Client__V1__Cancel *cm,
			uint64_t **tags)
{
	const struct rmq_dnode *n;
	size_t k = 0;

	cm->consumer_id = id;
	*tags = NULL;
	for (n = conn->dq; c != NULL && n != NULL; n = n->next) {
		k += n->consumer == c;
	}
	if (k == 0 || (*tags = malloc(k * sizeof(**tags))) == NULL) {
		return;
	}
	k = 0;
	for (n = conn->dq; n != NULL; n = n->next) {
		if (n->consumer == c) {
			(*tags)[k++] = n->d.tag;
		}
	}
	cm->n_unseen_tags = k;
	cm->unseen_tags = *tags;
}

int raftmq_cancel(struct raftmq *conn, struct raftmq_consumer *c)
{
	Raftmq__Client__V1__Cancel cm = RAFTMQ__CLIENT__V1__CANCEL__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	bool attached = c->state == RMQ_CONSUMER_ATTACHED;
	uint64_t *tags = NULL;
	rmq_env *resp;
	int rv = 0;

	if (attached && conn->fd >= 0 && !conn->broken) {
		/* Deliveries already here are unseen too. */
		rmq__read_ready(conn);
		attached = c->state == RMQ_CONSUMER_ATTACHED;
	}
	if (attached) {
		cancel_fill(conn, c, c->id, &cm, &tags);
	}
	/* GONE first: a reconnect during the call must not re-attach it,
	 * and its late deliveries are dropped (the server requeues them). */
	c->state = RMQ_CONSUMER_GONE;
	rmq__dq_drop(conn, c);
	if (attached && conn->fd >= 0 && !conn->broken) {
		env.body_case = RMQ_BODY(CANCEL);
		env.cancel = &cm;
		rv = rmq__call_expect(conn, &env, RMQ_REPLAY_STALE, false, 0,
				      RMQ_BODY(CANCEL_RESULT), &resp);
		if (rv == 0) {
			rmq__env_free(resp);
		}
		if (rv == RAFTMQ_ESTALE || rv == RAFTMQ_EUNKNOWN_CONSUMER) {
			rv = 0; /* the session that held it is gone */
		}
	}
	free(tags);
	consumer_unlink(conn, c);
	rmq__consumer_free(c);
	return rv;
}

/* Queues one goodbye Cancel; a failure to queue only loses the goodbye. */
static void bye_cancel(struct raftmq *conn, const struct raftmq_consumer *c,
		       uint64_t id)
{
	Raftmq__Client__V1__Cancel cm = RAFTMQ__CLIENT__V1__CANCEL__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	uint64_t *tags;

	cancel_fill(conn, c, id, &cm, &tags);
	env.body_case = RMQ_BODY(CANCEL);
	env.cancel = &cm;
	(void)rmq__queue(conn, &env, rmq__corr(conn));
	free(tags);
}

void rmq__consumers_goodbye(struct raftmq *conn)
{
	struct raftmq_consumer *c;
	size_t i;

	conn->bye_lo = conn->next_corr;
	for (c = conn->consumers; c != NULL; c = c->next) {
		if (c->state == RMQ_CONSUMER_ATTACHED) {
			bye_cancel(conn, c, c->id);
		}
		c->state = RMQ_CONSUMER_GONE;
	}
	/* Pull consumers hold what fetch returned: handed out, but a
	 * goodbye all the same (not a failed delivery). */
	for (i = 0; i < conn->n_pull; i++) {
		bye_cancel(conn, NULL, conn->pull_ids[i]);
	}
	conn->n_pull = 0;
	rmq__dq_drop(conn, NULL);
	conn->bye_hi = conn->next_corr;
	conn->bye_left = conn->bye_hi - conn->bye_lo;
}

static int remember_pull(struct raftmq *conn, uint64_t id)
{
	size_t i;

	for (i = 0; i < conn->n_pull; i++) {
		if (conn->pull_ids[i] == id) {
			return 0;
		}
	}
	if (conn->n_pull == conn->cap_pull) {
		size_t cap = conn->cap_pull > 0 ? conn->cap_pull * 2 : 4;
		uint64_t *p = realloc(conn->pull_ids, cap * sizeof(*p));

		if (p == NULL) {
			return RAFTMQ_ENOMEM;
		}
		conn->pull_ids = p;
		conn->cap_pull = cap;
	}
	conn->pull_ids[conn->n_pull++] = id;
	return 0;
}

int raftmq_fetch(struct raftmq *conn, const char *queue, uint32_t max_messages,
		 uint64_t wait_ms, struct raftmq_delivery **out, size_t *n)
{
	Raftmq__Client__V1__Fetch fm = RAFTMQ__CLIENT__V1__FETCH__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__FetchResult *r;
	struct raftmq_delivery *arr = NULL;
	rmq_env *resp;
	size_t i;
	int rv;

	*out = NULL;
	*n = 0;
	if (queue == NULL || queue[0] == '\0') {
		return rmq__fail(conn, RAFTMQ_EINVAL, "empty queue name");
	}
	fm.source_case = RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE;
	fm.queue = (char *)queue;
	fm.max_messages = max_messages;
	fm.wait_ms = wait_ms;
	env.body_case = RMQ_BODY(FETCH);
	env.fetch = &fm;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, wait_ms,
			      RMQ_BODY(FETCH_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	r = resp->fetch_result;
	rv = remember_pull(conn, r->consumer_id);
	if (rv == 0 && r->n_deliveries > 0) {
		arr = calloc(r->n_deliveries, sizeof(*arr));
		rv = arr == NULL ? RAFTMQ_ENOMEM : 0;
	}
	for (i = 0; rv == 0 && i < r->n_deliveries; i++) {
		rv = rmq__delivery_copy(r->deliveries[i], &arr[i]);
	}
	if (rv != 0) {
		raftmq_deliveries_free(arr, r->n_deliveries);
		rmq__env_free(resp);
		return rmq__fail(conn, rv,
				 "out of memory (fetched messages will be "
				 "redelivered after their ack timeout)");
	}
	*out = arr;
	*n = r->n_deliveries;
	rmq__env_free(resp);
	return 0;
}

/* ------------------------------------------------------------ async acks */

/* Tags per Ack that raftmq_ack_async sends: enough to make an Ack cheap for
 * the leader, few enough that a burst of prefetch is acked in a few
 * frames. */
#define ACK_BATCH 64
/* The longest a queued tag waits for more before it is sent anyway, when
 * the application keeps calling raftmq_ack_async. */
#define ACK_DELAY_MS 2
/* Acks sent and not answered yet: beyond this, raftmq_ack_async reads
 * answers before sending more, so a dead server cannot make us queue
 * without bound. */
#define ACK_INFLIGHT 64

static int grow_u64(uint64_t **a, size_t *cap, size_t need)
{
	size_t c = *cap > 0 ? *cap : 16;
	uint64_t *p;

	if (need <= *cap) {
		return 0;
	}
	while (c < need) {
		c *= 2;
	}
	p = realloc(*a, c * sizeof(*p));
	if (p == NULL) {
		return RAFTMQ_ENOMEM;
	}
	*a = p;
	*cap = c;
	return 0;
}

/* Remembers the first failure for raftmq_ack_flush: "what: detail". */
static void ack_failed(struct raftmq *conn, int code, const char *what,
		       const char *detail)
{
	if (conn->ack_err == 0) {
		conn->ack_err = code;
		snprintf(conn->ack_errmsg, sizeof(conn->ack_errmsg),
			 "%.60s: %.130s", what, detail);
	}
}

int rmq__acks_send(struct raftmq *conn)
{
	Raftmq__Client__V1__Ack ack = RAFTMQ__CLIENT__V1__ACK__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	uint64_t corr;
	int rv;

	if (conn->n_ack_tags == 0 || conn->fd < 0 || conn->broken) {
		return 0; /* a reconnect voids them (rmq__acks_reset) */
	}
	if (grow_u64(&conn->ack_corrs, &conn->cap_ack_corrs,
		     conn->n_ack_corrs + 1) != 0) {
		return RAFTMQ_ENOMEM;
	}
	ack.consumer_id = conn->ack_consumer;
	ack.n_tags = conn->n_ack_tags;
	ack.tags = conn->ack_tags;
	env.body_case = RMQ_BODY(ACK);
	env.ack = &ack;
	corr = rmq__corr(conn);
	conn->n_ack_tags = 0;
	rv = rmq__send(conn, &env, corr);
	if (rv != 0) {
		ack_failed(conn, rv, "async ack not sent", conn->errmsg);
		return 0;
	}
	conn->ack_corrs[conn->n_ack_corrs++] = corr;
	return 0;
}

bool rmq__acks_on_frame(struct raftmq *conn, rmq_env *env)
{
	size_t i;

	for (i = 0; i < conn->n_ack_corrs; i++) {
		if (conn->ack_corrs[i] == env->correlation_id) {
			break;
		}
	}
	if (i == conn->n_ack_corrs) {
		return false;
	}
	conn->ack_corrs[i] = conn->ack_corrs[--conn->n_ack_corrs];
	if (env->body_case == RMQ_BODY(ERROR)) {
		int code = (int)env->error->code;

		if (rmq__classify(conn, env->error, false) ==
		    RMQ_ACT_FAILOVER) {
			/* The session is going: the reconnect voids it. */
		} else if (code != RMQ_ERR(UNKNOWN_CONSUMER)) {
			ack_failed(conn, rmq__server_error(conn, env->error),
				   "async ack refused", env->error->message);
		}
	}
	rmq__env_free(env);
	return true;
}

void rmq__acks_reset(struct raftmq *conn)
{
	if (conn->n_ack_tags > 0 || conn->n_ack_corrs > 0) {
		ack_failed(conn, RAFTMQ_ESTALE,
			   "async acks void after a reconnect",
			   "their messages will be delivered again");
	}
	conn->n_ack_tags = 0;
	conn->n_ack_corrs = 0;
}

int raftmq_ack_async(struct raftmq *conn, uint64_t consumer_id,
		     const uint64_t *tags, size_t n)
{
	uint64_t deadline = 0;
	uint64_t now;
	int rv;

	rv = check_tags(conn, consumer_id, tags, n);
	if (rv != 0) {
		return rv;
	}
	if (conn->n_ack_tags > 0 && conn->ack_consumer != consumer_id &&
	    rmq__acks_send(conn) != 0) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	while (conn->n_ack_corrs >= ACK_INFLIGHT) {
		if (deadline == 0) {
			deadline = rmq__deadline(conn->request_timeout_ms);
		}
		rv = rmq__pump(conn, deadline);
		if (rv != 0) {
			return rv == RAFTMQ_ETIMEOUT
				       ? rmq__fail(conn, rv,
						   "acks: no answer in time")
				       : rv;
		}
		if (!consumer_live(conn, consumer_id)) {
			return rmq__fail(conn, RAFTMQ_ESTALE,
					 "consumer re-attached while waiting; "
					 "its delivery tags are void");
		}
	}
	if (grow_u64(&conn->ack_tags, &conn->cap_ack_tags,
		     conn->n_ack_tags + n) != 0) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	now = rmq__now_ms();
	if (conn->n_ack_tags == 0) {
		conn->ack_since = now;
	}
	conn->ack_consumer = consumer_id;
	memcpy(conn->ack_tags + conn->n_ack_tags, tags, n * sizeof(*tags));
	conn->n_ack_tags += n;
	if ((conn->n_ack_tags >= ACK_BATCH ||
	     now - conn->ack_since >= ACK_DELAY_MS) &&
	    rmq__acks_send(conn) != 0) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	return 0;
}

int raftmq_ack_flush(struct raftmq *conn, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0
				    ? RMQ_NO_DEADLINE
				    : rmq__deadline((uint64_t)timeout_ms);
	int rv;

	if (rmq__acks_send(conn) != 0) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	while (conn->n_ack_corrs > 0 || conn->n_ack_tags > 0) {
		rv = rmq__pump(conn, deadline);
		if (rv != 0) {
			return rv == RAFTMQ_ETIMEOUT
				       ? rmq__fail(conn, rv,
						   "acks: no answer within "
						   "%d ms",
						   timeout_ms)
				       : rv;
		}
	}
	if (conn->ack_err != 0) {
		rv = rmq__fail(conn, conn->ack_err, "%s", conn->ack_errmsg);
		conn->ack_err = 0;
		return rv;
	}
	return 0;
}
