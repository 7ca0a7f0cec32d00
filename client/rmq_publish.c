/*
 * Publishing: blocking publish, the pipelined publisher (a window of
 * unconfirmed publishes) and batch publish; message ids.
 *
 * Every publish carries a msg_id (the caller's, or one made here) that stays
 * the same on every resend, so the broker's dedup window turns retries after
 * failover into `duplicate = true` confirmations instead of second copies.
 *
 * A pipelined publish is copied into a struct rmq_pub (with its outcome
 * record preallocated, so reporting cannot fail) and kept in conn->pubs in
 * send order until its PublishResult or a final Error arrives. NOT_LEADER,
 * UNAVAILABLE and lost connections just clear `sent`: the engine resends it
 * after reconnecting. TIMEOUT and UNKNOWN_OUTCOME resend it after a backoff.
 * A publish is failed with RAFTMQ_ETIMEOUT one request timeout after it was
 * accepted.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rmq_int.h"

static _Atomic uint64_t id_prefix;
static _Atomic int id_pid;
static _Atomic uint64_t id_counter;

static uint64_t random_prefix(void)
{
	uint64_t v = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
			v = 0;
		}
		close(fd);
	}
	if (v == 0) {
		v = rmq__now_ms() ^ (uint64_t)getpid() << 40 ^
		    (uint64_t)(uintptr_t)&v;
	}
	return v != 0 ? v : 1;
}

size_t raftmq_msg_id_new(char buf[RAFTMQ_MSG_ID_SIZE])
{
	int pid = (int)getpid();
	uint64_t prefix = atomic_load(&id_prefix);
	uint64_t n;
	int len;

	/* A forked child must not repeat its parent's ids. */
	if (prefix == 0 || atomic_load(&id_pid) != pid) {
		uint64_t fresh = random_prefix();

		if (atomic_compare_exchange_strong(&id_prefix, &prefix,
						   fresh) ||
		    atomic_load(&id_pid) != pid) {
			atomic_store(&id_prefix, fresh);
			prefix = fresh;
		}
		atomic_store(&id_pid, pid);
	}
	n = atomic_fetch_add(&id_counter, 1) + 1;
	len = snprintf(buf, RAFTMQ_MSG_ID_SIZE, "%016" PRIx64 "-%" PRIu64,
		       prefix, n);
	return (size_t)len;
}

int rmq__publish_fill(struct raftmq *conn, const struct raftmq_message *m,
		      rmq_publish_msg *pm, char *idbuf)
{
	rmq_publish_msg init = RAFTMQ__CLIENT__V1__PUBLISH__INIT;

	*pm = init;
	if (m == NULL || (m->queue == NULL) == (m->topic == NULL)) {
		return rmq__fail(conn, RAFTMQ_EINVAL,
				 "a message needs exactly one of queue and "
				 "topic");
	}
	if ((m->body == NULL && m->body_len > 0) ||
	    (m->msg_id == NULL && m->msg_id_len > 0)) {
		return rmq__fail(conn, RAFTMQ_EINVAL,
				 "NULL body or msg_id with a length");
	}
	if (m->queue != NULL) {
		pm->target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
		pm->queue = (char *)m->queue;
	} else {
		pm->target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
		pm->topic = (char *)m->topic;
	}
	if (m->msg_id != NULL && m->msg_id_len > 0) {
		pm->msg_id.data = (uint8_t *)m->msg_id;
		pm->msg_id.len = m->msg_id_len;
	} else {
		pm->msg_id.len = raftmq_msg_id_new(idbuf);
		pm->msg_id.data = (uint8_t *)idbuf;
	}
	pm->body.data = (uint8_t *)m->body;
	pm->body.len = m->body_len;
	pm->delay_ms = m->delay_ms;
	pm->ttl_ms = m->ttl_ms;
	return 0;
}

int raftmq_publish(struct raftmq *conn, const struct raftmq_message *msg,
		   uint64_t *seq, bool *duplicate)
{
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	char idbuf[RAFTMQ_MSG_ID_SIZE];
	rmq_publish_msg pm;
	rmq_env *resp;
	int rv;

	rv = rmq__publish_fill(conn, msg, &pm, idbuf);
	if (rv != 0) {
		return rv;
	}
	env.body_case = RMQ_BODY(PUBLISH);
	env.publish = &pm;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(PUBLISH_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	if (seq != NULL) {
		*seq = resp->publish_result->seq;
	}
	if (duplicate != NULL) {
		*duplicate = resp->publish_result->duplicate;
	}
	rmq__env_free(resp);
	return 0;
}

void rmq__pub_free(struct rmq_pub *p)
{
	free(p->done);
	free(p->mem);
	free(p);
}

/* Copies m into a new pub. Returns NULL when out of memory. */
static struct rmq_pub *pub_new(const rmq_publish_msg *m, void *user_data)
{
	const char *target =
		m->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE
			? m->queue
			: m->topic;
	size_t tlen = strlen(target) + 1;
	struct rmq_pub *p = calloc(1, sizeof(*p));
	uint8_t *mem;

	if (p == NULL) {
		return NULL;
	}
	p->done = calloc(1, sizeof(*p->done));
	p->mem = malloc(tlen + m->msg_id.len + m->body.len + 1);
	if (p->done == NULL || p->mem == NULL) {
		rmq__pub_free(p);
		return NULL;
	}
	mem = p->mem;
	p->msg = *m;
	memcpy(mem, target, tlen);
	if (m->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE) {
		p->msg.queue = (char *)mem;
	} else {
		p->msg.topic = (char *)mem;
	}
	mem += tlen;
	memcpy(mem, m->msg_id.data, m->msg_id.len);
	p->msg.msg_id.data = mem;
	mem += m->msg_id.len;
	if (m->body.len > 0) {
		memcpy(mem, m->body.data, m->body.len);
	}
	p->msg.body.data = mem;
	p->user_data = user_data;
	return p;
}

static void pub_unlink(struct raftmq *conn, struct rmq_pub *p)
{
	struct rmq_pub **pp = &conn->pubs;
	struct rmq_pub *prev = NULL;

	while (*pp != p) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = p->next;
	if (conn->pubs_tail == p) {
		conn->pubs_tail = prev;
	}
	conn->n_pubs--;
}

void rmq__pub_report(struct raftmq *conn, struct rmq_pub *p, int err,
		     const char *message, uint64_t seq, bool dup)
{
	struct rmq_done *d = p->done;

	pub_unlink(conn, p);
	memset(&d->c, 0, sizeof(d->c));
	d->c.err = err;
	d->c.seq = seq;
	d->c.duplicate = dup;
	d->c.user_data = p->user_data;
	if (err != 0) {
		snprintf(d->c.message, sizeof(d->c.message), "%s",
			 message != NULL && message[0] != '\0'
				 ? message
				 : raftmq_strerror(err));
	}
	conn->n_reported++;
	if (conn->confirm_cb != NULL) {
		conn->confirm_cb(conn, &d->c, conn->confirm_data);
	} else {
		p->done = NULL;
		d->next = NULL;
		if (conn->done_tail != NULL) {
			conn->done_tail->next = d;
		} else {
			conn->done = d;
		}
		conn->done_tail = d;
	}
	rmq__pub_free(p);
}

void rmq__pubs_on_response(struct raftmq *conn, struct rmq_pub *p, rmq_env *env)
{
	if (env->body_case == RMQ_BODY(PUBLISH_RESULT)) {
		conn->failures = 0;
		rmq__pub_report(conn, p, 0, NULL, env->publish_result->seq,
				env->publish_result->duplicate);
	} else if (env->body_case == RMQ_BODY(ERROR)) {
		switch (rmq__classify(conn, env->error, true)) {
		case RMQ_ACT_FAILOVER:
			p->sent = false;
			p->retry_at = 0;
			break;
		case RMQ_ACT_RETRY:
			p->sent = false;
			p->attempts++;
			p->retry_at = rmq__now_ms() +
				      rmq__backoff_ms(conn, p->attempts);
			break;
		case RMQ_ACT_FAIL:
			rmq__pub_report(conn, p, (int)env->error->code,
					env->error->message, 0, false);
			break;
		}
	} else {
		rmq__pub_report(conn, p, RAFTMQ_EPROTO,
				"unexpected answer to a publish", 0, false);
	}
	rmq__env_free(env);
}

/* Sends p (with a fresh correlation id): written at once, or with `lazy`
 * queued until the pump flushes (see rmq__queue). */
static int pub_send(struct raftmq *conn, struct rmq_pub *p, bool lazy)
{
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	env.body_case = RMQ_BODY(PUBLISH);
	env.publish = &p->msg;
	p->corr = rmq__corr(conn);
	p->sent = true;
	return lazy ? rmq__queue(conn, &env, p->corr)
		    : rmq__send(conn, &env, p->corr);
}

void rmq__pubs_tick(struct raftmq *conn, uint64_t now, uint64_t *wake)
{
	struct rmq_pub *p = conn->pubs;
	struct rmq_pub *next;
	int rv;

	for (; p != NULL; p = next) {
		next = p->next;
		if (now >= p->deadline) {
			char msg[sizeof(((struct raftmq_confirm *)0)->message)];

			snprintf(msg, sizeof(msg),
				 "not confirmed within %u ms (outcome unknown; "
				 "last: %.80s)",
				 conn->request_timeout_ms,
				 conn->errmsg[0] ? conn->errmsg : "none");
			rmq__pub_report(conn, p, RAFTMQ_ETIMEOUT, msg, 0,
					false);
			continue;
		}
		if (p->sent || conn->broken) {
			continue;
		}
		if (p->retry_at > now) {
			if (p->retry_at < *wake) {
				*wake = p->retry_at;
			}
			continue;
		}
		rv = pub_send(conn, p, true); /* the pump flushes */
		if (rv != 0) {
			rmq__pub_report(conn, p, rv, conn->errmsg, 0, false);
		}
	}
	if (conn->n_pubs > 0 && conn->pubs->deadline < *wake) {
		*wake = conn->pubs->deadline;
	}
}

int raftmq_publish_async(struct raftmq *conn, const struct raftmq_message *msg,
			 void *user_data)
{
	char idbuf[RAFTMQ_MSG_ID_SIZE];
	rmq_publish_msg pm;
	struct rmq_pub *p;
	uint64_t deadline;
	int rv;

	rv = rmq__publish_fill(conn, msg, &pm, idbuf);
	if (rv != 0) {
		return rv;
	}
	deadline = rmq__deadline(conn->request_timeout_ms);
	while (conn->n_pubs >= conn->window) {
		rv = rmq__pump(conn, deadline);
		if (rv != 0 && conn->n_pubs >= conn->window) {
			return rmq__fail(conn, RAFTMQ_ETIMEOUT,
					 "publish window of %u stayed full",
					 conn->window);
		}
	}
	p = pub_new(&pm, user_data);
	if (p == NULL) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	p->deadline = deadline;
	if (conn->pubs_tail != NULL) {
		conn->pubs_tail->next = p;
	} else {
		conn->pubs = p;
	}
	conn->pubs_tail = p;
	conn->n_pubs++;
	if (conn->fd < 0 || conn->broken) {
		return 0; /* sent by the next pump after reconnecting */
	}
	/* With others unconfirmed, the caller learns their outcome only
	 * from a later call, which flushes first: queue it, so a window of
	 * publishes leaves in a few writes instead of one each. Alone, it
	 * is written now. */
	rv = pub_send(conn, p, conn->n_pubs > 1);
	if (rv != 0) {
		pub_unlink(conn, p);
		rmq__pub_free(p);
		return rv;
	}
	return 0;
}

int raftmq_publish_wait(struct raftmq *conn, int timeout_ms,
			struct raftmq_confirm *out)
{
	uint64_t start = conn->n_reported;
	uint64_t deadline =
		rmq__deadline(timeout_ms < 0 ? conn->request_timeout_ms
					     : (uint64_t)timeout_ms);
	struct rmq_done *d;
	int rv;

	for (;;) {
		d = conn->done;
		if (d != NULL) {
			conn->done = d->next;
			if (conn->done == NULL) {
				conn->done_tail = NULL;
			}
			if (out != NULL) {
				*out = d->c;
			}
			free(d);
			return 0;
		}
		if (conn->confirm_cb != NULL && conn->n_reported != start) {
			return 0;
		}
		if (conn->n_pubs == 0) {
			return rmq__fail(conn, RAFTMQ_ENOPENDING,
					 "no publish pending");
		}
		rv = rmq__pump(conn, deadline);
		if (rv != 0 && conn->done == NULL &&
		    conn->n_reported == start) {
			return rv;
		}
	}
}

int raftmq_publish_flush(struct raftmq *conn)
{
	uint64_t deadline = rmq__deadline(conn->request_timeout_ms);
	uint64_t seen = conn->n_reported;
	int rv;

	while (conn->n_pubs > 0) {
		rv = rmq__pump(conn, deadline);
		if (conn->n_reported != seen) {
			seen = conn->n_reported;
			deadline = rmq__deadline(conn->request_timeout_ms);
		} else if (rv != 0) {
			return rmq__fail(conn, RAFTMQ_ETIMEOUT,
					 "%zu publishes still unconfirmed",
					 conn->n_pubs);
		}
	}
	return 0;
}

size_t raftmq_publish_pending(const struct raftmq *conn)
{
	return conn->n_pubs;
}

int raftmq_publish_batch(struct raftmq *conn, const struct raftmq_message *msgs,
			 size_t n, struct raftmq_confirm *results)
{
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__PublishBatch batch =
		RAFTMQ__CLIENT__V1__PUBLISH_BATCH__INIT;
	Raftmq__Client__V1__PublishBatchResult *r;
	rmq_publish_msg *items = NULL;
	rmq_publish_msg **ptrs = NULL;
	char *ids = NULL;
	rmq_env *resp = NULL;
	size_t i;
	int rv;

	if (n == 0 || msgs == NULL || results == NULL) {
		return rmq__fail(conn, RAFTMQ_EINVAL, "empty batch");
	}
	items = calloc(n, sizeof(*items));
	ptrs = calloc(n, sizeof(*ptrs));
	ids = malloc(n * RAFTMQ_MSG_ID_SIZE);
	if (items == NULL || ptrs == NULL || ids == NULL) {
		rv = rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		rv = rmq__publish_fill(conn, &msgs[i], &items[i],
				       ids + i * RAFTMQ_MSG_ID_SIZE);
		if (rv != 0) {
			goto out;
		}
		ptrs[i] = &items[i];
	}
	batch.n_items = n;
	batch.items = ptrs;
	env.body_case = RMQ_BODY(PUBLISH_BATCH);
	env.publish_batch = &batch;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(PUBLISH_BATCH_RESULT), &resp);
	if (rv != 0) {
		goto out;
	}
	r = resp->publish_batch_result;
	if (r->n_results != n) {
		rv = rmq__fail(conn, RAFTMQ_EPROTO,
			       "batch of %zu answered with %zu results", n,
			       r->n_results);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct raftmq_confirm *c = &results[i];

		memset(c, 0, sizeof(*c));
		c->err = (int)r->results[i]->code;
		c->seq = r->results[i]->seq;
		c->duplicate = r->results[i]->duplicate;
		if (c->err != 0) {
			snprintf(c->message, sizeof(c->message), "%s",
				 r->results[i]->message[0] != '\0'
					 ? r->results[i]->message
					 : raftmq_strerror(c->err));
		}
	}
out:
	rmq__env_free(resp);
	free(ids);
	free(ptrs);
	free(items);
	return rv;
}
