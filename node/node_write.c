/* Requests that change the replicated state: publishes, queues, topics and
 * subscriptions, consumers, and the tag commands (ack, nack, release,
 * extend). Each start validates what can be checked without the state and
 * adds its commands to the open batch (node_batch_add); each answer turns
 * the q_result of its commands into the result message, or into an error
 * naming the request's target.
 *
 * Checks made here, before proposing, and not in queue/: the name grammar
 * of new queues, topics and subscriptions (proto/names.h), and that a
 * dead-letter queue exists. queue/ applies old log entries exactly as it
 * always did (a queue created with a name or a dead-letter queue refused
 * today replays as created), so replicas of different versions and replays
 * of old logs agree; the node is the one place that refuses. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "node_auth.h"
#include "node_int.h"

#define SET(field) (st->_##field##_case != 0)

/* ---------------------------------------------------------------- helpers */

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
	if (node_disk_alarm(s->srv)) {
		s->srv->publishes_refused_disk++;
		node_error(
			s, corr, EC(RESOURCE_LIMIT),
			"disk alarm: the body store holds %llu bytes, at or "
			"over this node's disk_limit of %llu bytes; "
			"publishes are refused until consumers drain the "
			"queues",
			(unsigned long long)cons_store_disk_bytes(s->srv->cons),
			(unsigned long long)s->srv->cfg.disk_limit);
		return false;
	}
	if (!node_memory_alarm(s->srv)) {
		return true;
	}
	s->srv->publishes_refused_memory++;
	node_error(s, corr, EC(RESOURCE_LIMIT),
		   "memory alarm: the queues' index, the Raft log in memory "
		   "and the body store's index hold %llu bytes, at or over "
		   "this node's memory_limit of %llu bytes; publishes are "
		   "refused until consumers drain the queues",
		   (unsigned long long)cons_memory_bytes(s->srv->cons),
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

/* Answers a request whose result message is empty (all such messages share
 * the layout of CreateQueueResult). */
static void empty_answer(struct node_server *srv, struct node_req *r,
			 const struct q_result *res)
{
	Raftmq__Client__V1__CreateQueueResult m;
	(void)srv;
	if (node_refused(r->session, r, &res[r->first])) {
		return;
	}
	PB(create_queue_result__init)(&m);
	node_reply(r->session, r->corr, r->kind + 100, &m);
}

/* Grant for dead-lettering into the queue settings name (it publishes
 * there). */
static bool dead_letter_grant(const Raftmq__Client__V1__QueueSettings *st,
			      struct node_grant *g)
{
	if (st == NULL || !SET(dead_letter_queue) ||
	    st->dead_letter_queue[0] == '\0') {
		return false;
	}
	g->perm = NODE_PERM_PUBLISH;
	g->what = "dead-letter queue";
	g->name = st->dead_letter_queue;
	return true;
}

static bool one_grant(struct node_grant *g, int perm, const char *what,
		      const char *name)
{
	g->perm = perm;
	g->what = what;
	g->name = name;
	return true;
}

/* ---------------------------------------------------------------- publish */

static bool publish_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	const Raftmq__Client__V1__Publish *p = env->publish;
	bool topic =
		p->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
	return i == 0 &&
	       one_grant(g, NODE_PERM_PUBLISH, topic ? "to topic" : "to queue",
			 topic ? p->topic : p->queue);
}

static void publish_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	if (env->publish->target_case ==
	    RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC) {
		snprintf(buf, len, "topic %s",
			 proto_name_quote(env->publish->topic, q));
	} else {
		snprintf(buf, len, "queue %s",
			 proto_name_quote(env->publish->queue, q));
	}
}

static bool publish_start(struct node_session *s, Envelope *env)
{
	uint64_t corr = env->correlation_id;
	struct q_cmd *cmd;
	if (!publish_ok(s, corr, env->publish) || !memory_ok(s, corr)) {
		return false;
	}
	if (node_batch_add(s->srv, s, corr, env->body_case, env, 1, &cmd) !=
	    NULL) {
		publish_cmd(cmd, env->publish);
	}
	return true;
}

static void publish_answer(struct node_server *srv, struct node_req *r,
			   const struct q_result *res)
{
	const struct q_result *q = &res[r->first];
	Raftmq__Client__V1__PublishResult m;
	if (node_refused(r->session, r, q)) {
		return;
	}
	PB(publish_result__init)(&m);
	m.seq = q->seq;
	m.duplicate = q->duplicate;
	node_hist_add(&srv->confirm, (double)(node_now_ns() - r->t0_ns) / 1e9);
	node_reply(r->session, r->corr, BODY(PUBLISH_RESULT), &m);
}

const struct node_kind node_kind_publish = {
	.name = "publish",
	.access = NODE_ACCESS_NAMED,
	.grant = publish_grant,
	.target = publish_target,
	.start = publish_start,
	.answer = publish_answer,
};

static bool publish_batch_grant(const Envelope *env, size_t i,
				struct node_grant *g)
{
	const Raftmq__Client__V1__PublishBatch *pb = env->publish_batch;
	const Raftmq__Client__V1__Publish *p;
	bool topic;
	if (i >= pb->n_items) {
		return false;
	}
	p = pb->items[i];
	topic = p->target_case == RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
	return one_grant(g, NODE_PERM_PUBLISH, topic ? "to topic" : "to queue",
			 topic ? p->topic : p->queue);
}

static bool publish_batch_start(struct node_session *s, Envelope *env)
{
	const Raftmq__Client__V1__PublishBatch *pb = env->publish_batch;
	uint64_t corr = env->correlation_id;
	struct q_cmd *cmd;
	size_t i;
	if (pb->n_items == 0) {
		node_error(s, corr, EC(INVALID_ARGUMENT),
			   "empty publish batch");
		return false;
	}
	for (i = 0; i < pb->n_items; i++) {
		if (!publish_ok(s, corr, pb->items[i])) {
			return false;
		}
	}
	if (!memory_ok(s, corr)) {
		return false;
	}
	if (node_batch_add(s->srv, s, corr, env->body_case, env, pb->n_items,
			   &cmd) != NULL) {
		for (i = 0; i < pb->n_items; i++) {
			publish_cmd(&cmd[i], pb->items[i]);
		}
	}
	return true;
}

/* One result per item, each with its own code: a refused item does not
 * fail the others. */
static void publish_batch_answer(struct node_server *srv, struct node_req *r,
				 const struct q_result *res)
{
	struct node_session *s = r->session;
	const struct q_result *q = &res[r->first];
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
		items[i].code = (Raftmq__Client__V1__ErrorCode)q[i].status;
		items[i].message =
			(char *)(q[i].status ? q_strerror(q[i].status) : "");
		items[i].seq = q[i].seq;
		items[i].duplicate = q[i].duplicate;
		ptrs[i] = &items[i];
		if (q[i].status == 0) {
			node_hist_add(&srv->confirm,
				      (double)(node_now_ns() - r->t0_ns) / 1e9);
		}
	}
	PB(publish_batch_result__init)(&br);
	br.n_results = r->count;
	br.results = ptrs;
	node_reply(s, r->corr, BODY(PUBLISH_BATCH_RESULT), &br);
	free(items);
	free(ptrs);
}

const struct node_kind node_kind_publish_batch = {
	.name = "publish_batch",
	.access = NODE_ACCESS_NAMED,
	.grant = publish_batch_grant,
	.start = publish_batch_start,
	.answer = publish_batch_answer,
};

/* ----------------------------------------------------------------- queues */

/* The name a queue request acts on. */
static const char *queue_name(const Envelope *env)
{
	switch (env->body_case) {
	case BODY(CREATE_QUEUE):
		return env->create_queue->name;
	case BODY(CONFIGURE_QUEUE):
		return env->configure_queue->name;
	case BODY(DELETE_QUEUE):
		return env->delete_queue->name;
	case BODY(PURGE_QUEUE):
		return env->purge_queue->name;
	default:
		assert(0 && "not a queue request");
		return "";
	}
}

static const Raftmq__Client__V1__QueueSettings *queue_settings(
	const Envelope *env)
{
	return env->body_case == BODY(CREATE_QUEUE)
		       ? env->create_queue->settings
	       : env->body_case == BODY(CONFIGURE_QUEUE)
		       ? env->configure_queue->settings
		       : NULL;
}

static bool queue_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	if (i == 0) {
		return one_grant(g, NODE_PERM_CONFIGURE, "queue",
				 queue_name(env));
	}
	return i == 1 && dead_letter_grant(queue_settings(env), g);
}

static void queue_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	snprintf(buf, len, "queue %s", proto_name_quote(queue_name(env), q));
}

/* A new name (queue, topic, subscription) must follow the grammar. */
static bool name_ok(struct node_session *s, const Envelope *env,
		    const char *name)
{
	const struct node_kind *k = node_kind_of(env->body_case);
	char why[300], what[64 + PROTO_QUOTE_SIZE];
	if (proto_name_check(name, why, sizeof why) == 0) {
		return true;
	}
	k->target(env, what, sizeof what);
	node_error(s, env->correlation_id, EC(INVALID_ARGUMENT),
		   "%s: invalid name: %s", what, why);
	return false;
}

/* A dead-letter queue must exist when it is set (creating it on the fly
 * would give it settings nobody chose). Checked against the leader's
 * applied state: create the dead-letter queue first and wait for its
 * confirm. */
static bool dead_letter_ok(struct node_session *s, const Envelope *env,
			   const char *own, const struct q_settings *st,
			   uint32_t mask)
{
	const struct node_kind *k = node_kind_of(env->body_case);
	struct q_queue_info i;
	char what[64 + PROTO_QUOTE_SIZE], q[PROTO_QUOTE_SIZE];
	if (!(mask & Q_SET_DEAD_LETTER) || st->dead_letter == NULL ||
	    st->dead_letter[0] == '\0') {
		return true;
	}
	k->target(env, what, sizeof what);
	if (strcmp(st->dead_letter, own) == 0) {
		node_error(s, env->correlation_id, EC(INVALID_ARGUMENT),
			   "%s: a queue cannot be its own dead-letter queue",
			   what);
		return false;
	}
	if (q_state_queue_info(cons_state(s->srv->cons), st->dead_letter, &i) !=
	    0) {
		node_error(s, env->correlation_id, EC(NOT_FOUND),
			   "%s: its dead-letter queue %s does not exist; "
			   "create that queue first",
			   what, proto_name_quote(st->dead_letter, q));
		return false;
	}
	return true;
}

/* Appends ", NAME VALUE (requested VALUE)" for each setting that differs
 * between the existing `have` and the requested `want`. */
static void settings_diff(char *buf, size_t len, const struct q_settings *have,
			  const struct q_settings *want)
{
	static const char *const overflow[] = {"reject-publish", "drop-head"};
	const char *hd = have->dead_letter ? have->dead_letter : "";
	const char *wd = want->dead_letter ? want->dead_letter : "";
	size_t n = strlen(buf);
	char a[PROTO_QUOTE_SIZE], b[PROTO_QUOTE_SIZE];
#define DIFF(field, name)                                                     \
	if (have->field != want->field && n < len) {                          \
		n += (size_t)snprintf(                                        \
			buf + n, len - n, "%s" name " %llu (requested %llu)", \
			n ? ", " : "", (unsigned long long)have->field,       \
			(unsigned long long)want->field);                     \
	}
	DIFF(ack_timeout_ms, "ack_timeout_ms")
	DIFF(max_deliveries, "max_deliveries")
	if (strcmp(hd, wd) != 0 && n < len) {
		n += (size_t)snprintf(
			buf + n, len - n, "%sdead_letter %s (requested %s)",
			n ? ", " : "", hd[0] ? proto_name_quote(hd, a) : "none",
			wd[0] ? proto_name_quote(wd, b) : "none");
	}
	DIFF(ttl_ms, "ttl_ms")
	DIFF(max_length, "max_length")
	DIFF(max_bytes, "max_bytes")
	if (have->overflow != want->overflow && n < len) {
		n += (size_t)snprintf(
			buf + n, len - n, "%soverflow %s (requested %s)",
			n ? ", " : "", overflow[have->overflow & 1],
			overflow[want->overflow & 1]);
	}
	DIFF(dedup_window_ms, "dedup_window_ms")
#undef DIFF
	(void)n;
}

/* Q_EEXIST on create queue or subscribe: say what is in the way. `topic`
 * is the topic of a subscribe (NULL for create queue). */
static void exists_error(struct node_session *s, const struct node_req *r,
			 const char *queue, const char *topic,
			 const struct q_settings *want)
{
	const struct node_kind *k = node_kind_of(r->kind);
	struct q_queue_info i;
	char what[64 + 2 * PROTO_QUOTE_SIZE], diff[400], t[PROTO_QUOTE_SIZE];
	k->target(r->env, what, sizeof what);
	if (q_state_queue_info(cons_state(s->srv->cons), queue, &i) != 0) {
		node_error(s, r->corr, EC(ALREADY_EXISTS), "%s: %s", what,
			   q_strerror(Q_EEXIST));
		return;
	}
	if (topic != NULL && (i.topic == NULL || strcmp(i.topic, topic) != 0)) {
		node_error(s, r->corr, EC(ALREADY_EXISTS),
			   "%s: a queue of that name already exists and is "
			   "not a subscription of topic %s",
			   what, proto_name_quote(topic, t));
		return;
	}
	if (topic == NULL && i.topic != NULL) {
		node_error(s, r->corr, EC(ALREADY_EXISTS),
			   "%s: already exists as a subscription of topic %s",
			   what, proto_name_quote(i.topic, t));
		return;
	}
	diff[0] = '\0';
	settings_diff(diff, sizeof diff, &i.settings, want);
	node_error(s, r->corr, EC(ALREADY_EXISTS),
		   "%s: already exists with different settings: %s", what,
		   diff[0] ? diff : "(none differ now)");
}

static bool queue_start(struct node_session *s, Envelope *env)
{
	int kind = env->body_case;
	struct q_settings st;
	struct q_cmd *cmd;
	uint32_t mask = 0;
	q_settings_default(&st);
	if (settings_in(queue_settings(env), &st, &mask) != 0) {
		node_error(s, env->correlation_id, EC(INVALID_ARGUMENT),
			   "unknown overflow value");
		return false;
	}
	if ((kind == BODY(CREATE_QUEUE) && !name_ok(s, env, queue_name(env))) ||
	    !dead_letter_ok(s, env, queue_name(env), &st, mask)) {
		return false;
	}
	if (node_batch_add(s->srv, s, env->correlation_id, kind, env, 1,
			   &cmd) == NULL) {
		return true;
	}
	cmd->type = kind == BODY(CREATE_QUEUE)	    ? Q_CMD_CREATE_QUEUE
		    : kind == BODY(CONFIGURE_QUEUE) ? Q_CMD_CONFIGURE_QUEUE
		    : kind == BODY(DELETE_QUEUE)    ? Q_CMD_DELETE_QUEUE
						    : Q_CMD_PURGE_QUEUE;
	cmd->u.queue.name = queue_name(env);
	cmd->u.queue.settings = st;
	cmd->u.queue.mask = mask;
	return true;
}

static void create_queue_answer(struct node_server *srv, struct node_req *r,
				const struct q_result *res)
{
	struct q_settings want;
	uint32_t mask;
	if (res[r->first].status != Q_EEXIST) {
		empty_answer(srv, r, res);
		return;
	}
	q_settings_default(&want);
	(void)settings_in(r->env->create_queue->settings, &want, &mask);
	exists_error(r->session, r, r->env->create_queue->name, NULL, &want);
}

static void purge_answer(struct node_server *srv, struct node_req *r,
			 const struct q_result *res)
{
	Raftmq__Client__V1__PurgeQueueResult m;
	(void)srv;
	if (node_refused(r->session, r, &res[r->first])) {
		return;
	}
	PB(purge_queue_result__init)(&m);
	m.purged = res[r->first].count;
	node_reply(r->session, r->corr, BODY(PURGE_QUEUE_RESULT), &m);
}

#define QUEUE_KIND(kname, answer_fn)                          \
	{                                                     \
		.name = kname, .access = NODE_ACCESS_NAMED,   \
		.grant = queue_grant, .target = queue_target, \
		.start = queue_start, .answer = answer_fn,    \
	}

const struct node_kind node_kind_create_queue =
	QUEUE_KIND("create_queue", create_queue_answer);
const struct node_kind node_kind_configure_queue =
	QUEUE_KIND("configure_queue", empty_answer);
const struct node_kind node_kind_delete_queue =
	QUEUE_KIND("delete_queue", empty_answer);
const struct node_kind node_kind_purge_queue =
	QUEUE_KIND("purge_queue", purge_answer);

/* ----------------------------------------------------------------- topics */

static const char *topic_name(const Envelope *env)
{
	return env->body_case == BODY(CREATE_TOPIC) ? env->create_topic->name
						    : env->delete_topic->name;
}

static bool topic_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	return i == 0 &&
	       one_grant(g, NODE_PERM_CONFIGURE, "topic", topic_name(env));
}

static void topic_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	snprintf(buf, len, "topic %s", proto_name_quote(topic_name(env), q));
}

/* The dedup window a create topic asks for (a topic's default is a
 * queue's). */
static uint64_t topic_dedup_window(const Raftmq__Client__V1__CreateTopic *t)
{
	struct q_settings st;
	q_settings_default(&st);
	return t->_dedup_window_ms_case != 0 ? t->dedup_window_ms
					     : st.dedup_window_ms;
}

struct topic_find {
	const char *name;
	uint64_t dedup_window_ms;
	bool found;
};

static int topic_find_cb(void *data, const struct q_topic_info *i)
{
	struct topic_find *f = data;
	if (strcmp(i->name, f->name) == 0) {
		f->found = true;
		f->dedup_window_ms = i->dedup_window_ms;
		return 1;
	}
	return 0;
}

/* Q_EEXIST on create topic: its only setting is the dedup window. */
static void create_topic_answer(struct node_server *srv, struct node_req *r,
				const struct q_result *res)
{
	struct topic_find f = {r->env->create_topic->name, 0, false};
	char what[64 + PROTO_QUOTE_SIZE];
	if (res[r->first].status != Q_EEXIST) {
		empty_answer(srv, r, res);
		return;
	}
	q_state_foreach_topic(cons_state(srv->cons), topic_find_cb, &f);
	topic_target(r->env, what, sizeof what);
	if (!f.found) {
		node_error(r->session, r->corr, EC(ALREADY_EXISTS), "%s: %s",
			   what, q_strerror(Q_EEXIST));
		return;
	}
	node_error(
		r->session, r->corr, EC(ALREADY_EXISTS),
		"%s: already exists with different settings: "
		"dedup_window_ms %llu (requested %llu)",
		what, (unsigned long long)f.dedup_window_ms,
		(unsigned long long)topic_dedup_window(r->env->create_topic));
}

static bool topic_start(struct node_session *s, Envelope *env)
{
	struct q_cmd *cmd;
	if (env->body_case == BODY(CREATE_TOPIC) &&
	    !name_ok(s, env, topic_name(env))) {
		return false;
	}
	if (node_batch_add(s->srv, s, env->correlation_id, env->body_case, env,
			   1, &cmd) == NULL) {
		return true;
	}
	cmd->u.topic.topic = topic_name(env);
	if (env->body_case == BODY(CREATE_TOPIC)) {
		cmd->type = Q_CMD_CREATE_TOPIC;
		cmd->u.topic.dedup_window_ms =
			topic_dedup_window(env->create_topic);
	} else {
		cmd->type = Q_CMD_DELETE_TOPIC;
	}
	return true;
}

const struct node_kind node_kind_create_topic = {
	.name = "create_topic",
	.access = NODE_ACCESS_NAMED,
	.grant = topic_grant,
	.target = topic_target,
	.start = topic_start,
	.answer = create_topic_answer,
};

const struct node_kind node_kind_delete_topic = {
	.name = "delete_topic",
	.access = NODE_ACCESS_NAMED,
	.grant = topic_grant,
	.target = topic_target,
	.start = topic_start,
	.answer = empty_answer,
};

/* ---------------------------------------------------------- subscriptions */

/* A subscription is the queue TOPIC:SUBSCRIPTION, which receives the
 * topic's messages: (un)subscribing needs consume on the topic and
 * configure on that queue. */
static bool subscription(const Envelope *env, const char **topic,
			 const char **sub)
{
	bool on = env->body_case == BODY(SUBSCRIBE);
	*topic = on ? env->subscribe->topic : env->unsubscribe->topic;
	*sub = on ? env->subscribe->subscription
		  : env->unsubscribe->subscription;
	return on;
}

static bool subscribe_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	const char *topic, *sub;
	bool on = subscription(env, &topic, &sub);
	switch (i) {
	case 0:
		return one_grant(g, NODE_PERM_CONSUME, "from topic", topic);
	case 1:
		snprintf(g->buf, sizeof g->buf, "%s:%s", topic, sub);
		return one_grant(g, NODE_PERM_CONFIGURE, "subscription queue",
				 g->buf);
	case 2:
		return on && dead_letter_grant(env->subscribe->settings, g);
	default:
		return false;
	}
}

static void subscribe_target(const Envelope *env, char *buf, size_t len)
{
	const char *topic, *sub;
	char name[2 * Q_NAME_MAX + 2], q[PROTO_QUOTE_SIZE];
	(void)subscription(env, &topic, &sub);
	snprintf(name, sizeof name, "%s:%s", topic, sub);
	snprintf(buf, len, "subscription %s", proto_name_quote(name, q));
}

static bool subscribe_start(struct node_session *s, Envelope *env)
{
	const char *topic, *sub;
	bool on = subscription(env, &topic, &sub);
	struct q_settings st;
	struct q_cmd *cmd;
	uint32_t mask;
	q_settings_default(&st);
	if (on && settings_in(env->subscribe->settings, &st, &mask) != 0) {
		node_error(s, env->correlation_id, EC(INVALID_ARGUMENT),
			   "unknown overflow value");
		return false;
	}
	if (on) {
		char name[2 * Q_NAME_MAX + 2];
		snprintf(name, sizeof name, "%s:%s", topic, sub);
		if (!name_ok(s, env, sub) ||
		    !dead_letter_ok(s, env, name, &st, mask)) {
			return false;
		}
		if (strlen(topic) + 1 + strlen(sub) > PROTO_NAME_MAX) {
			node_error(s, env->correlation_id, EC(INVALID_ARGUMENT),
				   "subscription queue TOPIC:SUBSCRIPTION "
				   "would be %zu bytes long, over the limit "
				   "of %d",
				   strlen(topic) + 1 + strlen(sub),
				   PROTO_NAME_MAX);
			return false;
		}
	}
	if (node_batch_add(s->srv, s, env->correlation_id, env->body_case, env,
			   1, &cmd) == NULL) {
		return true;
	}
	cmd->type = on ? Q_CMD_SUBSCRIBE : Q_CMD_UNSUBSCRIBE;
	cmd->u.topic.topic = topic;
	cmd->u.topic.subscription = sub;
	if (on) {
		cmd->u.topic.settings = st;
	}
	return true;
}

static void subscribe_answer(struct node_server *srv, struct node_req *r,
			     const struct q_result *res)
{
	Raftmq__Client__V1__SubscribeResult m;
	char name[2 * Q_NAME_MAX + 2];
	(void)srv;
	snprintf(name, sizeof name, "%s:%s", r->env->subscribe->topic,
		 r->env->subscribe->subscription);
	if (res[r->first].status == Q_EEXIST) {
		struct q_settings want;
		uint32_t mask;
		q_settings_default(&want);
		(void)settings_in(r->env->subscribe->settings, &want, &mask);
		exists_error(r->session, r, name, r->env->subscribe->topic,
			     &want);
		return;
	}
	if (node_refused(r->session, r, &res[r->first])) {
		return;
	}
	PB(subscribe_result__init)(&m);
	m.queue = name;
	node_reply(r->session, r->corr, BODY(SUBSCRIBE_RESULT), &m);
}

const struct node_kind node_kind_subscribe = {
	.name = "subscribe",
	.access = NODE_ACCESS_NAMED,
	.grant = subscribe_grant,
	.target = subscribe_target,
	.start = subscribe_start,
	.answer = subscribe_answer,
};

const struct node_kind node_kind_unsubscribe = {
	.name = "unsubscribe",
	.access = NODE_ACCESS_NAMED,
	.grant = subscribe_grant,
	.target = subscribe_target,
	.start = subscribe_start,
	.answer = empty_answer,
};

/* -------------------------------------------------------------- consumers */

static bool consume_grant(const Envelope *env, size_t i, struct node_grant *g)
{
	return i == 0 && one_grant(g, NODE_PERM_CONSUME, "from queue",
				   env->consume->queue);
}

static void consume_target(const Envelope *env, char *buf, size_t len)
{
	char q[PROTO_QUOTE_SIZE];
	snprintf(buf, len, "queue %s",
		 proto_name_quote(env->consume->queue, q));
}

/* "Unlimited" (0) and anything larger is capped: a consumer that stops
 * reading must not make this node buffer every message of the queue in its
 * output (input from it stops at max_client_output_bytes, deliveries do
 * not). */
static uint32_t prefetch_cap(uint32_t prefetch)
{
	return prefetch == 0 || prefetch > NODE_MAX_PREFETCH ? NODE_MAX_PREFETCH
							     : prefetch;
}

void node_attach_cmd(struct node_session *s, struct q_cmd *cmd,
		     const char *queue, uint32_t prefetch, uint32_t credit)
{
	struct node_server *srv = s->srv;
	cmd->type = Q_CMD_ATTACH;
	cmd->u.attach.queue = queue;
	cmd->u.attach.session.node_id = srv->cfg.id;
	cmd->u.attach.session.epoch = srv->epoch;
	cmd->u.attach.session.session_id = s->id;
	cmd->u.attach.prefetch = prefetch;
	cmd->u.attach.credit = credit;
	/* Its end must release what the consumer holds (SESSION_GONE). */
	s->had_consumers = true;
	s->epoch = srv->epoch;
}

static bool consume_start(struct node_session *s, Envelope *env)
{
	struct q_cmd *cmd;
	struct node_req *r;
	struct node_consumer *c = node_consumer_new(env->correlation_id,
						    env->consume->queue, false);
	if (c == NULL) {
		node_error(s, env->correlation_id, EC(NO_MEMORY),
			   "the node is out of memory");
		return false;
	}
	r = node_batch_add(s->srv, s, env->correlation_id, env->body_case, env,
			   1, &cmd);
	if (r == NULL) {
		free(c);
		return true;
	}
	r->owned = c; /* recorded by consume_answer */
	node_attach_cmd(s, cmd, env->consume->queue,
			prefetch_cap(env->consume->prefetch),
			env->consume->_credit_case != 0 ? env->consume->credit
							: Q_CREDIT_UNLIMITED);
	return true;
}

static void consume_answer(struct node_server *srv, struct node_req *r,
			   const struct q_result *res)
{
	struct node_session *s = r->session;
	const struct q_result *q = &res[r->first];
	Raftmq__Client__V1__ConsumeResult m;
	struct node_consumer *c;
	(void)srv;
	if (node_refused(s, r, q)) {
		return;
	}
	PB(consume_result__init)(&m);
	m.consumer_id = q->consumer;
	c = r->owned; /* consume_start made it */
	assert(c != NULL);
	r->owned = NULL;
	node_consumer_attached(s, c, q->consumer);
	node_reply(s, r->corr, BODY(CONSUME_RESULT), &m);
	node_flush_early(s, c);
}

const struct node_kind node_kind_consume = {
	.name = "consume",
	.access = NODE_ACCESS_NAMED,
	.grant = consume_grant,
	.target = consume_target,
	.start = consume_start,
	.answer = consume_answer,
};

/* The consumer a cancel, credit or tag request acts on. */
static uint64_t consumer_of(const Envelope *env)
{
	switch (env->body_case) {
	case BODY(CANCEL):
		return env->cancel->consumer_id;
	case BODY(CREDIT):
		return env->credit->consumer_id;
	case BODY(ACK):
		return env->ack->consumer_id;
	case BODY(NACK):
		return env->nack->consumer_id;
	case BODY(RELEASE):
		return env->release->consumer_id;
	default:
		return env->extend->consumer_id;
	}
}

static void consumer_target(const Envelope *env, char *buf, size_t len)
{
	snprintf(buf, len, "consumer %llu",
		 (unsigned long long)consumer_of(env));
}

/* Cancel (DETACH: what the consumer holds returns without counting a
 * failed delivery) and Credit. */
static bool consumer_start(struct node_session *s, Envelope *env)
{
	uint64_t id = consumer_of(env);
	struct q_cmd *cmd;
	if (!owns(s, env->correlation_id, id)) {
		return false;
	}
	if (node_batch_add(s->srv, s, env->correlation_id, env->body_case, env,
			   1, &cmd) == NULL) {
		return true;
	}
	cmd->u.consumer.consumer = id;
	if (env->body_case == BODY(CANCEL)) {
		/* The deliveries the client never handed out go back as
		 * never delivered; the tags live in env, kept with the batch.
		 */
		cmd->type = Q_CMD_DETACH;
		cmd->u.consumer.unseen = env->cancel->unseen_tags;
		cmd->u.consumer.n_unseen = env->cancel->n_unseen_tags;
	} else {
		cmd->type = Q_CMD_CREDIT;
		cmd->u.consumer.prefetch = prefetch_cap(env->credit->prefetch);
		cmd->u.consumer.credit = env->credit->credit;
	}
	return true;
}

static void cancel_answer(struct node_server *srv, struct node_req *r,
			  const struct q_result *res)
{
	if (res[r->first].status == 0) {
		node_consumer_drop(r->session, r->env->cancel->consumer_id);
	}
	empty_answer(srv, r, res);
}

/* Requests on a consumer were authorised when it was attached: any user
 * may make them on the consumers of their own session (owns()). */
const struct node_kind node_kind_cancel = {
	.name = "cancel",
	.access = NODE_ACCESS_USER,
	.target = consumer_target,
	.start = consumer_start,
	.answer = cancel_answer,
};

const struct node_kind node_kind_credit = {
	.name = "credit",
	.access = NODE_ACCESS_USER,
	.target = consumer_target,
	.start = consumer_start,
	.answer = empty_answer,
};

/* ------------------------------------------------------------------- tags */

static bool tags_start(struct node_session *s, Envelope *env)
{
	uint64_t corr = env->correlation_id, consumer = consumer_of(env);
	uint64_t ms = 0;
	const uint64_t *tags;
	struct q_cmd *cmd;
	size_t n;
	int type;
	switch (env->body_case) {
	case BODY(ACK):
		tags = env->ack->tags;
		n = env->ack->n_tags;
		type = Q_CMD_ACK;
		break;
	case BODY(NACK):
		tags = env->nack->tags;
		n = env->nack->n_tags;
		ms = env->nack->delay_ms;
		type = Q_CMD_NACK;
		break;
	case BODY(RELEASE):
		tags = env->release->tags;
		n = env->release->n_tags;
		type = Q_CMD_RELEASE;
		break;
	default:
		tags = env->extend->tags;
		n = env->extend->n_tags;
		ms = env->extend->ms;
		type = Q_CMD_EXTEND;
		break;
	}
	if (n == 0) {
		node_error(s, corr, EC(INVALID_ARGUMENT),
			   "no delivery tags given");
		return false;
	}
	if (!owns(s, corr, consumer)) {
		return false;
	}
	if (node_batch_add(s->srv, s, corr, env->body_case, env, 1, &cmd) !=
	    NULL) {
		tags_cmd(cmd, type, consumer, tags, n, ms);
	}
	return true;
}

/* Unknown tags are counted, not an error (client.proto). */
static void tags_answer(struct node_server *srv, struct node_req *r,
			const struct q_result *res)
{
	const struct q_result *q = &res[r->first];
	Raftmq__Client__V1__TagsResult m;
	(void)srv;
	if (q->status != Q_EUNKNOWNTAG && node_refused(r->session, r, q)) {
		return;
	}
	PB(tags_result__init)(&m);
	m.done = q->count;
	m.unknown = q->unknown;
	node_reply(r->session, r->corr, r->kind + 100, &m);
}

#define TAGS_KIND(kname)                                        \
	{                                                       \
		.name = kname, .access = NODE_ACCESS_USER,      \
		.target = consumer_target, .start = tags_start, \
		.answer = tags_answer,                          \
	}

const struct node_kind node_kind_ack = TAGS_KIND("ack");
const struct node_kind node_kind_nack = TAGS_KIND("nack");
const struct node_kind node_kind_release = TAGS_KIND("release");
const struct node_kind node_kind_extend = TAGS_KIND("extend");
