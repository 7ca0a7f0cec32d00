/* Helpers of helpers.h. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"

void tn_stop(struct fake_node *n)
{
	fake_node_stop(n);
}

void tn_cleanup(struct fake_node *n)
{
	if (!n->stopped) {
		fake_node_stop(n);
	}
}

void tn_config(struct node_config *cfg)
{
	node_config_defaults(cfg);
	cfg->id = 1;
	cfg->n_members = 1;
	cfg->members[0].id = 1;
}

void tn_start(struct fake_node *n, const struct node_config *cfg)
{
	struct node_config dflt;
	if (cfg == NULL) {
		tn_config(&dflt);
		cfg = &dflt;
	}
	fake_node_start(n, cfg);
}

struct fake_client *tn_start_queue(struct fake_node *n,
				   const struct node_config *cfg,
				   const char *queue)
{
	struct fake_client *c;
	uint64_t corr;
	tn_start(n, cfg);
	c = fake_node_connect(n);
	corr = tn_create_queue(c, queue);
	fake_node_settle(n);
	tn_expect(c, corr, BODY(CREATE_QUEUE_RESULT));
	return c;
}

void tn_publish_confirmed(struct fake_client *c, const char *queue,
			  size_t count)
{
	size_t i;
	for (i = 0; i < count; i++) {
		uint64_t corr = tn_publish(c, queue, "m", 1);
		fake_node_settle(c->node);
		tn_expect(c, corr, BODY(PUBLISH_RESULT));
	}
}

uint64_t tn_send(struct fake_client *c, int body, void *msg)
{
	Envelope env;
	PB(envelope__init)(&env);
	env.body_case = (Raftmq__Client__V1__Envelope__BodyCase)body;
	env.hello = msg; /* every body member is a pointer in one union */
	return fake_client_send(c, &env);
}

uint64_t tn_create_queue(struct fake_client *c, const char *name)
{
	Raftmq__Client__V1__CreateQueue m;
	PB(create_queue__init)(&m);
	m.name = (char *)(uintptr_t)name;
	return tn_send(c, BODY(CREATE_QUEUE), &m);
}

uint64_t tn_publish(struct fake_client *c, const char *queue, const void *body,
		    size_t len)
{
	Raftmq__Client__V1__Publish m;
	PB(publish__init)(&m);
	m.target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
	m.queue = (char *)(uintptr_t)queue;
	m.body.data = (uint8_t *)(uintptr_t)body;
	m.body.len = len;
	return tn_send(c, BODY(PUBLISH), &m);
}

uint64_t tn_publish_batch(struct fake_client *c, const char *queue, size_t n,
			  size_t len, char fill)
{
	Raftmq__Client__V1__PublishBatch m;
	Raftmq__Client__V1__Publish *items, **ptrs;
	uint8_t *body = malloc(len ? len : 1);
	size_t i;
	uint64_t corr;
	items = calloc(n, sizeof *items);
	ptrs = calloc(n, sizeof *ptrs);
	cr_assert(body != NULL && items != NULL && ptrs != NULL);
	memset(body, fill, len);
	for (i = 0; i < n; i++) {
		PB(publish__init)(&items[i]);
		items[i].target_case =
			RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
		items[i].queue = (char *)(uintptr_t)queue;
		items[i].body.data = body;
		items[i].body.len = len;
		ptrs[i] = &items[i];
	}
	PB(publish_batch__init)(&m);
	m.n_items = n;
	m.items = ptrs;
	corr = tn_send(c, BODY(PUBLISH_BATCH), &m);
	free(body);
	free(items);
	free(ptrs);
	return corr;
}

uint64_t tn_consume(struct fake_client *c, const char *queue, uint32_t prefetch)
{
	Raftmq__Client__V1__Consume m;
	PB(consume__init)(&m);
	m.queue = (char *)(uintptr_t)queue;
	m.prefetch = prefetch;
	return tn_send(c, BODY(CONSUME), &m);
}

uint64_t tn_fetch(struct fake_client *c, const char *queue, uint32_t max,
		  uint64_t wait_ms)
{
	Raftmq__Client__V1__Fetch m;
	PB(fetch__init)(&m);
	m.source_case = RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE;
	m.queue = (char *)(uintptr_t)queue;
	m.max_messages = max;
	m.wait_ms = wait_ms;
	return tn_send(c, BODY(FETCH), &m);
}

uint64_t tn_tags(struct fake_client *c, int kind, uint64_t consumer,
		 const uint64_t *tags, size_t n)
{
	union {
		Raftmq__Client__V1__Ack ack;
		Raftmq__Client__V1__Nack nack;
		Raftmq__Client__V1__Release release;
		Raftmq__Client__V1__Extend extend;
	} m;
#define TAGS(init, field)                                   \
	do {                                                \
		PB(init)(&m.field);                         \
		m.field.consumer_id = consumer;             \
		m.field.tags = (uint64_t *)(uintptr_t)tags; \
		m.field.n_tags = n;                         \
	} while (0)
	switch (kind) {
	case BODY(ACK):
		TAGS(ack__init, ack);
		break;
	case BODY(NACK):
		TAGS(nack__init, nack);
		break;
	case BODY(RELEASE):
		TAGS(release__init, release);
		break;
	default:
		cr_assert_eq(kind, BODY(EXTEND), "not a tags request: %d",
			     kind);
		TAGS(extend__init, extend);
		break;
	}
#undef TAGS
	return tn_send(c, kind, &m);
}

uint64_t tn_cancel(struct fake_client *c, uint64_t consumer)
{
	Raftmq__Client__V1__Cancel m;
	PB(cancel__init)(&m);
	m.consumer_id = consumer;
	return tn_send(c, BODY(CANCEL), &m);
}

Envelope *tn_expect(struct fake_client *c, uint64_t corr, int body)
{
	Envelope *env = fake_client_next(c);
	cr_assert_not_null(env, "no frame written; expected body %d for %llu",
			   body, (unsigned long long)corr);
	cr_assert(env->body_case != BODY(ERROR) || body == BODY(ERROR),
		  "expected body %d for %llu, got error %d for %llu: %s", body,
		  (unsigned long long)corr, env->error->code,
		  (unsigned long long)env->correlation_id, env->error->message);
	cr_assert_eq((int)env->body_case, body, "expected body %d, got %d",
		     body, env->body_case);
	cr_assert_eq(env->correlation_id, corr,
		     "body %d answers %llu, expected %llu", body,
		     (unsigned long long)env->correlation_id,
		     (unsigned long long)corr);
	return env;
}

Envelope *tn_expect_error(struct fake_client *c, uint64_t corr, int code)
{
	Envelope *env = tn_expect(c, corr, BODY(ERROR));
	cr_assert_eq((int)env->error->code, code, "error %d (%s), expected %d",
		     env->error->code, env->error->message, code);
	cr_assert(env->error->message[0] != '\0', "an error without reason");
	return env;
}

void tn_expect_none(struct fake_client *c)
{
	Envelope *env = fake_client_next(c);
	cr_assert_null(env, "unexpected frame: body %d for %llu%s%s",
		       env ? env->body_case : 0,
		       env ? (unsigned long long)env->correlation_id : 0ull,
		       env && env->body_case == BODY(ERROR) ? ": " : "",
		       env && env->body_case == BODY(ERROR)
			       ? env->error->message
			       : "");
}

struct q_queue_info tn_queue(struct fake_node *n, const char *name)
{
	struct q_queue_info i;
	cr_assert_eq(q_state_queue_info(n->cons.state, name, &i), 0,
		     "no queue %s", name);
	return i;
}

struct count_ctx {
	uint64_t session_id;
	size_t n;
};

static int count_cb(void *data, const struct q_consumer_info *ci)
{
	struct count_ctx *x = data;
	if (ci->session.session_id == x->session_id) {
		x->n++;
	}
	return 0;
}

size_t tn_state_consumers(struct fake_node *n, const struct fake_client *c)
{
	struct count_ctx x = {c->s->id, 0};
	q_state_foreach_consumer(n->cons.state, count_cb, &x);
	return x.n;
}

size_t tn_session_consumers(const struct fake_client *c)
{
	const struct node_consumer *k;
	size_t n = 0;
	for (k = c->s->consumers; k != NULL; k = k->next) {
		n++;
	}
	return n;
}

size_t tn_session_early(const struct fake_client *c)
{
	const struct node_early *e;
	size_t n = 0;
	for (e = c->s->early; e != NULL; e = e->next) {
		n++;
	}
	return n;
}
