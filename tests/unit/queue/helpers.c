/* Test helpers for queue/: recording sink, command wrappers, dumps, failing
 * allocator. See helpers.h for the conventions. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

/* ---------------------------------------------------------------------
 * Small utilities
 * ------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	cr_assert(p != NULL, "test harness out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	cr_assert(p != NULL, "test harness out of memory");
	return p;
}

/* Copy of len bytes plus a NUL; NULL stays NULL. */
static char *memdup0(const void *p, size_t len)
{
	char *c;

	if (p == NULL)
		return NULL;
	c = xmalloc(len + 1);
	if (len > 0)
		memcpy(c, p, len);
	c[len] = '\0';
	return c;
}

static char *strdup0(const char *s)
{
	return s ? memdup0(s, strlen(s)) : NULL;
}

static bool streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool memeq_null(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	if (alen == 0)
		return true;
	if (a == NULL || b == NULL)
		return a == b;
	return memcmp(a, b, alen) == 0;
}

/* ---------------------------------------------------------------------
 * Recording sink
 * ------------------------------------------------------------------- */

void h_rec_init(struct h_rec *r)
{
	memset(r, 0, sizeof(*r));
}

void h_rec_clear(struct h_rec *r)
{
	size_t i;

	for (i = 0; i < r->n_d; i++) {
		free(r->d[i].queue);
		free(r->d[i].msg_id);
		free(r->d[i].body);
		free(r->d[i].dl_queue);
	}
	for (i = 0; i < r->n_g; i++)
		free(r->g[i].queue);
	r->n_d = 0;
	r->n_g = 0;
	r->n_order = 0;
	if (r->order != NULL)
		r->order[0] = '\0';
}

void h_rec_fini(struct h_rec *r)
{
	h_rec_clear(r);
	free(r->d);
	free(r->g);
	free(r->order);
	memset(r, 0, sizeof(*r));
}

static void rec_order(struct h_rec *r, char kind)
{
	if (r->n_order + 2 > r->cap_order) {
		r->cap_order = r->cap_order ? r->cap_order * 2 : 64;
		r->order = xrealloc(r->order, r->cap_order);
	}
	r->order[r->n_order++] = kind;
	r->order[r->n_order] = '\0';
}

/* With bodies out of memory the delivery carries the key; the bytes come
 * from the fake store, as node/ reads them from the body store. */
static bool resolve(const struct q_delivery *d, const void **id,
		    const void **body)
{
	size_t id_len, len;
	uint32_t sum;
	if (d->body != NULL || (d->body_len == 0 && d->msg_id_len == 0)) {
		*id = d->msg_id;
		*body = d->body;
		return true;
	}
	cr_assert(d->msg_id == NULL, "msg id bytes without body bytes");
	cr_assert(fb_lookup(d->body_key, id, &id_len, body, &len, &sum),
		  "%s/%llu: body %llu not in the store", d->queue,
		  (unsigned long long)d->seq, (unsigned long long)d->body_key);
	cr_assert(sum == d->body_sum && len == d->body_len &&
			  id_len == d->msg_id_len,
		  "%s/%llu: body %llu: checksum or lengths differ", d->queue,
		  (unsigned long long)d->seq, (unsigned long long)d->body_key);
	if (id_len == 0) {
		*id = NULL;
	}
	return false;
}

const void *h_delivery_body(const struct q_delivery *d)
{
	const void *id, *body;
	resolve(d, &id, &body);
	return body;
}

const void *h_delivery_msg_id(const struct q_delivery *d)
{
	const void *id, *body;
	resolve(d, &id, &body);
	return id;
}

static void rec_deliver(void *data, const struct q_delivery *d)
{
	struct h_rec *r = data;
	struct h_delivery *c;

	if (r->n_d == r->cap_d) {
		r->cap_d = r->cap_d ? r->cap_d * 2 : 64;
		r->d = xrealloc(r->d, r->cap_d * sizeof(*r->d));
	}
	c = &r->d[r->n_d++];
	memset(c, 0, sizeof(*c));
	c->consumer = d->consumer;
	c->has_session = d->session != NULL;
	if (d->session != NULL)
		c->session = *d->session;
	c->queue = strdup0(d->queue);
	c->seq = d->seq;
	c->msg_id = memdup0(h_delivery_msg_id(d), d->msg_id_len);
	c->msg_id_len = d->msg_id_len;
	c->body = memdup0(h_delivery_body(d), d->body_len);
	if (c->body == NULL)
		c->body = memdup0("", 0); /* empty body: "" for easy strcmp */
	c->body_len = d->body_len;
	c->body_key = d->body_key;
	c->body_sum = d->body_sum;
	c->delivery_count = d->delivery_count;
	c->published_ms = d->published_ms;
	c->dl_reason = d->dl_reason;
	c->dl_queue = strdup0(d->dl_queue);
	rec_order(r, 'd');
}

static void rec_gone(void *data, const struct q_consumer_gone *g)
{
	struct h_rec *r = data;
	struct h_gone *c;

	if (r->n_g == r->cap_g) {
		r->cap_g = r->cap_g ? r->cap_g * 2 : 16;
		r->g = xrealloc(r->g, r->cap_g * sizeof(*r->g));
	}
	c = &r->g[r->n_g++];
	memset(c, 0, sizeof(*c));
	c->consumer = g->consumer;
	c->has_session = g->session != NULL;
	if (g->session != NULL)
		c->session = *g->session;
	c->queue = strdup0(g->queue);
	rec_order(r, 'g');
}

void h_rec_sink(struct h_rec *r, struct q_sink *sink)
{
	sink->data = r;
	sink->deliver = rec_deliver;
	sink->consumer_gone = rec_gone;
}

const struct h_delivery *h_rec_last(const struct h_rec *r)
{
	cr_assert(r->n_d > 0, "expected at least one delivery");
	return &r->d[r->n_d - 1];
}

size_t h_rec_count_for(const struct h_rec *r, q_consumer_id consumer)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_d; i++)
		if (r->d[i].consumer == consumer)
			n++;
	return n;
}

long h_rec_find(const struct h_rec *r, const char *queue, q_seq seq)
{
	size_t i;

	for (i = 0; i < r->n_d; i++)
		if (r->d[i].seq == seq && streq_null(r->d[i].queue, queue))
			return (long)i;
	return -1;
}

static bool session_eq(const struct q_session *a, const struct q_session *b)
{
	return a->node_id == b->node_id && a->epoch == b->epoch &&
	       a->session_id == b->session_id;
}

bool h_rec_equal(const struct h_rec *a, const struct h_rec *b)
{
	size_t i;

	if (a->n_d != b->n_d || a->n_g != b->n_g)
		return false;
	if (!streq_null(a->n_order ? a->order : "", b->n_order ? b->order : ""))
		return false;
	for (i = 0; i < a->n_d; i++) {
		const struct h_delivery *x = &a->d[i], *y = &b->d[i];

		if (x->consumer != y->consumer || x->seq != y->seq ||
		    x->body_key != y->body_key || x->body_sum != y->body_sum ||
		    x->delivery_count != y->delivery_count ||
		    x->published_ms != y->published_ms ||
		    x->dl_reason != y->dl_reason ||
		    x->has_session != y->has_session ||
		    (x->has_session && !session_eq(&x->session, &y->session)) ||
		    !streq_null(x->queue, y->queue) ||
		    !streq_null(x->dl_queue, y->dl_queue) ||
		    !memeq_null(x->msg_id, x->msg_id_len, y->msg_id,
				y->msg_id_len) ||
		    !memeq_null(x->body, x->body_len, y->body, y->body_len))
			return false;
	}
	for (i = 0; i < a->n_g; i++) {
		const struct h_gone *x = &a->g[i], *y = &b->g[i];

		if (x->consumer != y->consumer ||
		    x->has_session != y->has_session ||
		    (x->has_session && !session_eq(&x->session, &y->session)) ||
		    !streq_null(x->queue, y->queue))
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * Environment
 * ------------------------------------------------------------------- */

struct h_env H;

/* Live envs, so that h_check() finds the fake store of a state. */
#define MAX_ENVS 16
static struct h_env *envs[MAX_ENVS];

struct h_env *h_env_of(const struct q_state *s)
{
	size_t i;

	for (i = 0; i < MAX_ENVS; i++)
		if (envs[i] != NULL && envs[i]->s == s)
			return envs[i];
	return NULL;
}

void h_env_init_mode(struct h_env *e, const struct q_options *opts, bool store)
{
	struct q_options o;
	size_t i;

	memset(e, 0, sizeof(*e));
	memset(&o, 0, sizeof(o));
	if (opts != NULL)
		o = *opts;
	h_rec_init(&e->rec);
	e->store = store && o.bodies == NULL;
	if (e->store) {
		fb_init(&e->fb);
		o.bodies = &e->fb.vt;
	}
	e->s = q_state_new(&o);
	cr_assert(e->s != NULL, "q_state_new failed");
	h_rec_sink(&e->rec, &e->sink);
	q_state_set_sink(e->s, &e->sink);
	for (i = 0; i < MAX_ENVS && envs[i] != NULL; i++)
		;
	cr_assert(i < MAX_ENVS, "too many test envs");
	envs[i] = e;
}

void h_env_init(struct h_env *e, const struct q_options *opts)
{
	h_env_init_mode(e, opts, H_STORE_DEFAULT);
}

void h_env_fini(struct h_env *e)
{
	size_t i;
	char why[512];

	for (i = 0; i < MAX_ENVS; i++)
		if (envs[i] == e)
			envs[i] = NULL;
	if (e->store && e->s != NULL)
		cr_assert(fb_check(&e->fb, e->s, why, sizeof(why)),
			  "body store at the end: %s", why);
	if (e->s != NULL)
		q_state_free(e->s);
	if (e->store)
		fb_fini(&e->fb);
	h_rec_fini(&e->rec);
	memset(e, 0, sizeof(*e));
}

void h_setup(void)
{
	struct q_options o;

	memset(&o, 0, sizeof(o));
	o.hash_seed = 42;
	h_env_init(&H, &o);
}

void h_teardown(void)
{
	h_env_fini(&H);
}

/* ---------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------- */

const struct q_session H_SESSION = {1, 1, 1};

struct q_settings h_defaults(void)
{
	struct q_settings s;

	memset(&s, 0, sizeof(s));
	q_settings_default(&s);
	return s;
}

struct q_settings h_plain(void)
{
	struct q_settings s;

	memset(&s, 0, sizeof(s));
	s.ack_timeout_ms = 0;
	s.max_deliveries = 0;
	s.dead_letter = NULL;
	s.ttl_ms = 0;
	s.max_length = 0;
	s.max_bytes = 0;
	s.overflow = Q_OVERFLOW_REJECT_PUBLISH;
	s.dedup_window_ms = 0;
	return s;
}

/* ---------------------------------------------------------------------
 * Command wrappers
 * ------------------------------------------------------------------- */

static struct q_cmd cmd_new(uint8_t type, uint64_t now)
{
	struct q_cmd c;

	memset(&c, 0, sizeof(c));
	c.type = type;
	c.now_ms = now;
	return c;
}

int h_apply_rv(struct q_state *s, const struct q_cmd *cmd, struct q_result *res)
{
	memset(res, 0, sizeof(*res));
	res->status = -12345; /* apply must write it */
	return q_state_apply(s, cmd, res);
}

struct q_result h_apply(struct q_state *s, const struct q_cmd *cmd)
{
	struct q_result r;
	int rv = h_apply_rv(s, cmd, &r);

	cr_assert(rv == 0, "q_state_apply(type %d) returned %d (%s)",
		  (int)cmd->type, rv, q_strerror(rv));
	return r;
}

struct q_result h_create_queue(struct q_state *s, const char *name,
			       const struct q_settings *settings, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_CREATE_QUEUE, now);

	c.u.queue.name = name;
	c.u.queue.settings = settings ? *settings : h_defaults();
	return h_apply(s, &c);
}

struct q_result h_configure(struct q_state *s, const char *name,
			    const struct q_settings *settings, uint32_t mask,
			    uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_CONFIGURE_QUEUE, now);

	c.u.queue.name = name;
	c.u.queue.settings = settings ? *settings : h_defaults();
	c.u.queue.mask = mask;
	return h_apply(s, &c);
}

struct q_result h_delete_queue(struct q_state *s, const char *name,
			       uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_DELETE_QUEUE, now);

	c.u.queue.name = name;
	return h_apply(s, &c);
}

struct q_result h_purge(struct q_state *s, const char *name, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_PURGE_QUEUE, now);

	c.u.queue.name = name;
	return h_apply(s, &c);
}

struct q_result h_create_topic(struct q_state *s, const char *topic,
			       uint64_t dedup_window_ms, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_CREATE_TOPIC, now);

	c.u.topic.topic = topic;
	c.u.topic.dedup_window_ms = dedup_window_ms;
	return h_apply(s, &c);
}

struct q_result h_delete_topic(struct q_state *s, const char *topic,
			       uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_DELETE_TOPIC, now);

	c.u.topic.topic = topic;
	return h_apply(s, &c);
}

struct q_result h_subscribe(struct q_state *s, const char *topic,
			    const char *sub, const struct q_settings *settings,
			    uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_SUBSCRIBE, now);

	c.u.topic.topic = topic;
	c.u.topic.subscription = sub;
	c.u.topic.settings = settings ? *settings : h_defaults();
	return h_apply(s, &c);
}

struct q_result h_unsubscribe(struct q_state *s, const char *topic,
			      const char *sub, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_UNSUBSCRIBE, now);

	c.u.topic.topic = topic;
	c.u.topic.subscription = sub;
	return h_apply(s, &c);
}

static struct q_result publish(struct q_state *s, const char *queue,
			       const char *topic, const char *id,
			       const void *body, size_t len,
			       const struct h_pub *opt, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_PUBLISH, now);

	c.u.publish.queue = queue;
	c.u.publish.topic = topic;
	c.u.publish.msg_id = id;
	c.u.publish.msg_id_len = id ? strlen(id) : 0;
	c.u.publish.body = body;
	c.u.publish.body_len = len;
	if (opt != NULL) {
		c.u.publish.delay_ms = opt->delay_ms;
		c.u.publish.ttl_ms = opt->ttl_ms;
	}
	return h_apply(s, &c);
}

struct q_result h_publish(struct q_state *s, const char *queue, const char *id,
			  const char *body, uint64_t now)
{
	return publish(s, queue, NULL, id, body, body ? strlen(body) : 0, NULL,
		       now);
}

struct q_result h_publish_ex(struct q_state *s, const char *queue,
			     const char *id, const char *body,
			     const struct h_pub *opt, uint64_t now)
{
	return publish(s, queue, NULL, id, body, body ? strlen(body) : 0, opt,
		       now);
}

struct q_result h_publish_bin(struct q_state *s, const char *queue,
			      const char *id, const void *body, size_t len,
			      uint64_t now)
{
	return publish(s, queue, NULL, id, body, len, NULL, now);
}

struct q_result h_publish_topic(struct q_state *s, const char *topic,
				const char *id, const char *body, uint64_t now)
{
	return publish(s, NULL, topic, id, body, body ? strlen(body) : 0, NULL,
		       now);
}

struct q_result h_attach_ex(struct q_state *s, const char *queue,
			    struct q_session session, uint32_t prefetch,
			    uint32_t credit, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_ATTACH, now);

	c.u.attach.queue = queue;
	c.u.attach.session = session;
	c.u.attach.prefetch = prefetch;
	c.u.attach.credit = credit;
	return h_apply(s, &c);
}

q_consumer_id h_attach(struct q_state *s, const char *queue, uint32_t prefetch,
		       uint64_t now)
{
	struct q_result r = h_attach_ex(s, queue, H_SESSION, prefetch,
					Q_CREDIT_UNLIMITED, now);

	return r.status == Q_OK ? r.consumer : 0;
}

struct q_result h_detach(struct q_state *s, q_consumer_id id, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_DETACH, now);

	c.u.consumer.consumer = id;
	return h_apply(s, &c);
}

struct q_result h_detach_unseen(struct q_state *s, q_consumer_id id,
				const q_seq *unseen, size_t n, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_DETACH, now);

	c.u.consumer.consumer = id;
	c.u.consumer.unseen = unseen;
	c.u.consumer.n_unseen = n;
	return h_apply(s, &c);
}

struct q_result h_credit(struct q_state *s, q_consumer_id id, uint32_t prefetch,
			 uint32_t credit, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_CREDIT, now);

	c.u.consumer.consumer = id;
	c.u.consumer.prefetch = prefetch;
	c.u.consumer.credit = credit;
	return h_apply(s, &c);
}

static struct q_result tags_cmd(struct q_state *s, uint8_t type,
				q_consumer_id id, const q_seq *tags, size_t n,
				uint64_t ms, bool unseen, uint64_t now)
{
	struct q_cmd c = cmd_new(type, now);

	c.u.tags.consumer = id;
	c.u.tags.tags = tags;
	c.u.tags.n_tags = n;
	c.u.tags.ms = ms;
	c.u.tags.unseen = unseen;
	return h_apply(s, &c);
}

struct q_result h_ack(struct q_state *s, q_consumer_id c, const q_seq *tags,
		      size_t n, uint64_t now)
{
	return tags_cmd(s, Q_CMD_ACK, c, tags, n, 0, false, now);
}

struct q_result h_nack(struct q_state *s, q_consumer_id c, const q_seq *tags,
		       size_t n, uint64_t ms, uint64_t now)
{
	return tags_cmd(s, Q_CMD_NACK, c, tags, n, ms, false, now);
}

struct q_result h_release(struct q_state *s, q_consumer_id c, const q_seq *tags,
			  size_t n, uint64_t now)
{
	return tags_cmd(s, Q_CMD_RELEASE, c, tags, n, 0, false, now);
}

struct q_result h_release_unseen(struct q_state *s, q_consumer_id c,
				 const q_seq *tags, size_t n, uint64_t now)
{
	return tags_cmd(s, Q_CMD_RELEASE, c, tags, n, 0, true, now);
}

struct q_result h_extend(struct q_state *s, q_consumer_id c, const q_seq *tags,
			 size_t n, uint64_t ms, uint64_t now)
{
	return tags_cmd(s, Q_CMD_EXTEND, c, tags, n, ms, false, now);
}

struct q_result h_ack1(struct q_state *s, q_consumer_id c, q_seq tag,
		       uint64_t now)
{
	return h_ack(s, c, &tag, 1, now);
}

struct q_result h_nack1(struct q_state *s, q_consumer_id c, q_seq tag,
			uint64_t ms, uint64_t now)
{
	return h_nack(s, c, &tag, 1, ms, now);
}

struct q_result h_release1(struct q_state *s, q_consumer_id c, q_seq tag,
			   uint64_t now)
{
	return h_release(s, c, &tag, 1, now);
}

struct q_result h_tick(struct q_state *s, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_TICK, now);

	return h_apply(s, &c);
}

struct q_result h_session_gone(struct q_state *s, struct q_session session,
			       uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_SESSION_GONE, now);

	c.u.session.session = session;
	return h_apply(s, &c);
}

struct q_result h_detach_stale(struct q_state *s, uint64_t node_id,
			       uint64_t epoch, uint64_t now)
{
	struct q_cmd c = cmd_new(Q_CMD_DETACH_STALE, now);

	c.u.session.session.node_id = node_id;
	c.u.session.session.epoch = epoch;
	return h_apply(s, &c);
}

/* ---------------------------------------------------------------------
 * Inspection
 * ------------------------------------------------------------------- */

void h_check_at(const struct q_state *s, const char *file, int line)
{
	char buf[512];
	int rv;

	const struct h_env *e = h_env_of(s);

	buf[0] = '\0';
	rv = q_state_check(s, buf, sizeof(buf));
	cr_assert(rv == 0, "%s:%d: q_state_check: %d: %s", file, line, rv, buf);
	if (e != NULL && e->store)
		cr_assert(fb_check(&e->fb, s, buf, sizeof(buf)),
			  "%s:%d: body store: %s", file, line, buf);
}

struct q_queue_info h_info(const struct q_state *s, const char *name)
{
	struct q_queue_info i;
	int rv;

	memset(&i, 0, sizeof(i));
	rv = q_state_queue_info(s, name, &i);
	cr_assert(rv == 0, "queue_info(%s) = %d", name, rv);
	return i;
}

bool h_queue_exists(const struct q_state *s, const char *name)
{
	struct q_queue_info i;

	return q_state_queue_info(s, name, &i) == 0;
}

struct q_totals h_totals(const struct q_state *s)
{
	struct q_totals t;

	memset(&t, 0, sizeof(t));
	q_state_totals(s, &t);
	return t;
}

static int count_cb(void *data, const struct q_consumer_info *info)
{
	(void)info;
	(*(size_t *)data)++;
	return 0;
}

size_t h_consumer_count(const struct q_state *s)
{
	size_t n = 0;

	cr_assert(q_state_foreach_consumer(s, count_cb, &n) == 0);
	return n;
}

struct find_consumer {
	q_consumer_id id;
	struct q_consumer_info *out;
	bool found;
};

static int find_cb(void *data, const struct q_consumer_info *info)
{
	struct find_consumer *f = data;

	if (info->id == f->id) {
		*f->out = *info;
		f->found = true;
		return 1;
	}
	return 0;
}

bool h_consumer_info(const struct q_state *s, q_consumer_id id,
		     struct q_consumer_info *out)
{
	struct find_consumer f = {id, out, false};

	q_state_foreach_consumer(s, find_cb, &f);
	return f.found;
}

/* ---------------------------------------------------------------------
 * Dumps
 * ------------------------------------------------------------------- */

struct dbuf {
	char *p;
	size_t len, cap;
};

static int dbuf_write(void *data, const void *buf, size_t len)
{
	struct dbuf *b = data;

	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + len)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

void *h_dump(const struct q_state *s, size_t *len)
{
	struct dbuf b = {NULL, 0, 0};
	int rv = q_state_dump(s, dbuf_write, &b);

	cr_assert(rv == 0, "q_state_dump = %d", rv);
	if (b.p == NULL)
		b.p = xmalloc(1);
	*len = b.len;
	return b.p;
}

bool h_dump_is(const struct q_state *s, const void *buf, size_t len)
{
	size_t n;
	void *d = h_dump(s, &n);
	bool eq = n == len && (n == 0 || memcmp(d, buf, n) == 0);

	free(d);
	return eq;
}

bool h_dump_equal(const struct q_state *a, const struct q_state *b)
{
	size_t n;
	void *d = h_dump(a, &n);
	bool eq = h_dump_is(b, d, n);

	free(d);
	return eq;
}

/* ---------------------------------------------------------------------
 * Failing allocator
 * ------------------------------------------------------------------- */

static bool fa_should_fail(struct h_fail_alloc *fa)
{
	long i = fa->calls++;

	if (fa->fail_at >= 0 && i >= fa->fail_at &&
	    i < fa->fail_at + fa->fail_count) {
		fa->failures++;
		return true;
	}
	return false;
}

static void *fa_malloc(void *data, size_t size)
{
	struct h_fail_alloc *fa = data;
	void *p;

	if (fa_should_fail(fa))
		return NULL;
	p = malloc(size);
	if (p != NULL)
		fa->live++;
	return p;
}

static void *fa_realloc(void *data, void *ptr, size_t size)
{
	struct h_fail_alloc *fa = data;
	void *p;

	if (fa_should_fail(fa))
		return NULL;
	p = realloc(ptr, size);
	if (ptr == NULL && p != NULL)
		fa->live++;
	return p;
}

static void fa_free(void *data, void *ptr)
{
	struct h_fail_alloc *fa = data;

	if (ptr != NULL)
		fa->live--;
	free(ptr);
}

void h_fail_alloc_init(struct h_fail_alloc *fa)
{
	memset(fa, 0, sizeof(*fa));
	fa->a.data = fa;
	fa->a.malloc = fa_malloc;
	fa->a.realloc = fa_realloc;
	fa->a.free = fa_free;
	fa->fail_at = -1;
	fa->fail_count = 1;
}

void h_fail_alloc_arm(struct h_fail_alloc *fa, long n, long count)
{
	fa->calls = 0;
	fa->failures = 0;
	fa->fail_at = n;
	fa->fail_count = count > 0 ? count : 1;
}

void h_fail_alloc_disarm(struct h_fail_alloc *fa)
{
	fa->fail_at = -1;
}

/* ---------------------------------------------------------------------
 * Misc
 * ------------------------------------------------------------------- */

uint64_t h_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
