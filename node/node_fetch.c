/* Fetch: a pull consumer takes up to max messages, waiting up to wait_ms
 * for them. The first Fetch on a queue attaches a pull consumer (ATTACH
 * with credit = max); later ones give credit to it (CREDIT). Deliveries
 * made for it are gathered (node_deliver.c calls node_fetch_add) and sent
 * in one FetchResult when max are held or the wait is over; what credit is
 * left then is withdrawn, and a delivery that still arrives after the
 * answer is released at once (node_deliver.c). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_auth.h"
#include "names.h"
#include "node_int.h"

struct node_fetch *node_fetch_find(struct node_session *s,
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

static void fetch_unlink(struct node_fetch *f)
{
	struct node_fetch **pp;
	for (pp = &f->s->fetches; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			return;
		}
	}
}

/* Answers a fetch with what it got and stops further deliveries to it. */
static void fetch_answer(struct node_fetch *f)
{
	struct node_session *s = f->s;
	Raftmq__Client__V1__FetchResult r;
	PB(fetch_result__init)(&r);
	r.consumer_id = f->consumer;
	r.n_deliveries = f->n_got;
	r.deliveries = f->got;
	node_reply(s, f->corr, BODY(FETCH_RESULT), &r);
	f->answered = true;
	if (f->n_got < f->max && f->consumer != 0 && s->srv->leader) {
		/* Withdraw the credit left (what is still delivered before
		 * the withdrawal applies is released unseen: node_deliver.c).
		 */
		struct q_cmd *cmd;
		if (node_batch_add(s->srv, NULL, 0, 0, NULL, 1, &cmd) != NULL) {
			cmd->type = Q_CMD_CREDIT;
			cmd->u.consumer.consumer = f->consumer;
			cmd->u.consumer.prefetch = 0;
			cmd->u.consumer.credit = 0;
		}
	}
	fetch_unlink(f);
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

int node_fetch_add(struct node_fetch *f, const void *packed, size_t len)
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

static bool fetch_start(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	const Raftmq__Client__V1__Fetch *fe = env->fetch;
	struct node_consumer *c = NULL, *rec;
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
			return false;
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
		return false;
	}
	if (c != NULL && node_fetch_find(s, c->id, 0) != NULL) {
		node_error(s, corr, EC(INVALID_ARGUMENT),
			   "a fetch is already waiting on consumer %llu",
			   (unsigned long long)c->id);
		return false;
	}
	f = calloc(1, sizeof *f);
	/* A new pull consumer's record is made now: see node_consumer_new. */
	rec = c == NULL ? node_consumer_new(corr, fe->queue, true) : NULL;
	if (f == NULL || (c == NULL && rec == NULL)) {
		free(f);
		free(rec);
		node_error(s, corr, EC(NO_MEMORY), "out of memory");
		return false;
	}
	r = node_batch_add(srv, s, corr, env->body_case, env, 1, &cmd);
	if (r == NULL) {
		free(f);
		free(rec);
		return true;
	}
	r->owned = rec; /* recorded by fetch_result */
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
		node_attach_cmd(s, cmd, fe->queue, 0, max);
	}
	return true;
}

static void fetch_result(struct node_server *srv, struct node_req *r,
			 const struct q_result *results)
{
	struct node_session *s = r->session;
	const struct q_result *res = &results[r->first];
	struct node_fetch *f = node_fetch_find(s, 0, r->fetch_id);
	const Raftmq__Client__V1__Fetch *fe = r->env->fetch;
	(void)srv;
	if (f == NULL) {
		return;
	}
	if (node_refused(s, r, res)) {
		f->answered = true; /* nothing to withdraw */
		fetch_unlink(f);
		uv_close((uv_handle_t *)&f->timer, fetch_closed);
		return;
	}
	if (f->consumer == 0) {
		struct node_consumer *c = r->owned; /* fetch_start made it */
		assert(c != NULL);
		r->owned = NULL;
		node_consumer_attached(s, c, res->consumer);
		f->consumer = res->consumer;
		node_flush_early(s, c); /* may answer f */
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

/* Its batch failed: answer with nothing (the client retries). */
static void fetch_fail(struct node_session *s, struct node_req *r, int status)
{
	struct node_fetch *f = node_fetch_find(s, 0, r->fetch_id);
	(void)status;
	if (f != NULL) {
		f->consumer = 0; /* nothing to withdraw */
		fetch_answer(f);
	}
}

static bool fetch_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	/* A fetch on a consumer id was authorised when it was attached. */
	if (i > 0 || env->fetch->source_case !=
			     RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE) {
		return false;
	}
	g->perm = NODE_PERM_CONSUME;
	g->what = "from queue";
	g->name = env->fetch->queue;
	return true;
}

static void fetch_target(const Envelope *env, char *buf, size_t len)
{
	if (env->fetch->source_case ==
	    RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE) {
		char q[PROTO_QUOTE_SIZE];
		snprintf(buf, len, "queue %s",
			 proto_name_quote(env->fetch->queue, q));
	} else {
		snprintf(buf, len, "consumer %llu",
			 (unsigned long long)env->fetch->consumer_id);
	}
}

const struct node_kind node_kind_fetch = {
	.name = "fetch",
	.access = NODE_ACCESS_NAMED,
	.grant = fetch_grant,
	.target = fetch_target,
	.start = fetch_start,
	.answer = fetch_result,
	.fail = fetch_fail,
};
