/*
 * Administration: queues, topics, subscriptions, introspection and cluster
 * membership. Each function is one blocking request through rmq__call; the
 * replay policy says what happens if the connection breaks after sending:
 * idempotent requests (create, configure, subscribe, reads) are resent, the
 * others fail with RAFTMQ_EUNKNOWN_OUTCOME so the caller can check.
 */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "rmq_int.h"

#define QS(x) RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___##x

void rmq__settings_to_msg(const struct raftmq_queue_settings *s,
			  rmq_settings_msg *m)
{
	rmq_settings_msg init = RAFTMQ__CLIENT__V1__QUEUE_SETTINGS__INIT;

	*m = init;
	if (s == NULL) {
		return;
	}
	if (s->has & RAFTMQ_HAS_ACK_TIMEOUT) {
		m->_ack_timeout_ms_case = QS(ACK_TIMEOUT_MS_ACK_TIMEOUT_MS);
		m->ack_timeout_ms = s->ack_timeout_ms;
	}
	if (s->has & RAFTMQ_HAS_MAX_DELIVERIES) {
		m->_max_deliveries_case = QS(MAX_DELIVERIES_MAX_DELIVERIES);
		m->max_deliveries = s->max_deliveries;
	}
	if (s->has & RAFTMQ_HAS_DEAD_LETTER_QUEUE) {
		m->_dead_letter_queue_case =
			QS(DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE);
		m->dead_letter_queue = (char *)(s->dead_letter_queue != NULL
							? s->dead_letter_queue
							: "");
	}
	if (s->has & RAFTMQ_HAS_TTL) {
		m->_ttl_ms_case = QS(TTL_MS_TTL_MS);
		m->ttl_ms = s->ttl_ms;
	}
	if (s->has & RAFTMQ_HAS_MAX_LENGTH) {
		m->_max_length_case = QS(MAX_LENGTH_MAX_LENGTH);
		m->max_length = s->max_length;
	}
	if (s->has & RAFTMQ_HAS_MAX_BYTES) {
		m->_max_bytes_case = QS(MAX_BYTES_MAX_BYTES);
		m->max_bytes = s->max_bytes;
	}
	if (s->has & RAFTMQ_HAS_OVERFLOW) {
		m->_overflow_case = QS(OVERFLOW_OVERFLOW);
		m->overflow = (Raftmq__Client__V1__Overflow)s->overflow;
	}
	if (s->has & RAFTMQ_HAS_DEDUP_WINDOW) {
		m->_dedup_window_ms_case = QS(DEDUP_WINDOW_MS_DEDUP_WINDOW_MS);
		m->dedup_window_ms = s->dedup_window_ms;
	}
}

static bool valid_name(struct raftmq *conn, const char *name, int *rv)
{
	if (name == NULL || name[0] == '\0') {
		*rv = rmq__fail(conn, RAFTMQ_EINVAL, "empty name");
		return false;
	}
	return true;
}

/* A name the request creates must follow the protocol's grammar
 * (proto/names.h). The node enforces it; checking here only saves a round
 * trip, with the node's words. */
static bool new_name(struct raftmq *conn, const char *what, const char *name,
		     int *rv)
{
	char why[200], q[PROTO_QUOTE_SIZE];
	if (name == NULL) {
		*rv = rmq__fail(conn, RAFTMQ_EINVAL, "%s name missing", what);
		return false;
	}
	if (proto_name_check(name, why, sizeof why) != 0) {
		*rv = rmq__fail(conn, RAFTMQ_EINVAL, "%s %s: invalid name: %s",
				what, proto_name_quote(name, q), why);
		return false;
	}
	return true;
}

/* A request whose result carries nothing. */
static int simple(struct raftmq *conn, rmq_env *env, enum rmq_replay replay,
		  int expect)
{
	rmq_env *resp;
	int rv;

	rv = rmq__call_expect(conn, env, replay, replay == RMQ_REPLAY_RESEND, 0,
			      expect, &resp);
	if (rv == 0) {
		rmq__env_free(resp);
	}
	return rv;
}

int raftmq_queue_create(struct raftmq *conn, const char *name,
			const struct raftmq_queue_settings *settings)
{
	Raftmq__Client__V1__CreateQueue m =
		RAFTMQ__CLIENT__V1__CREATE_QUEUE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_settings_msg sm;
	int rv;

	if (!new_name(conn, "queue", name, &rv)) {
		return rv;
	}
	rmq__settings_to_msg(settings, &sm);
	m.name = (char *)name;
	m.settings = &sm;
	env.body_case = RMQ_BODY(CREATE_QUEUE);
	env.create_queue = &m;
	return simple(conn, &env, RMQ_REPLAY_RESEND,
		      RMQ_BODY(CREATE_QUEUE_RESULT));
}

int raftmq_queue_configure(struct raftmq *conn, const char *name,
			   const struct raftmq_queue_settings *settings)
{
	Raftmq__Client__V1__ConfigureQueue m =
		RAFTMQ__CLIENT__V1__CONFIGURE_QUEUE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_settings_msg sm;
	int rv;

	if (!valid_name(conn, name, &rv)) {
		return rv;
	}
	rmq__settings_to_msg(settings, &sm);
	m.name = (char *)name;
	m.settings = &sm;
	env.body_case = RMQ_BODY(CONFIGURE_QUEUE);
	env.configure_queue = &m;
	return simple(conn, &env, RMQ_REPLAY_RESEND,
		      RMQ_BODY(CONFIGURE_QUEUE_RESULT));
}

int raftmq_queue_delete(struct raftmq *conn, const char *name)
{
	Raftmq__Client__V1__DeleteQueue m =
		RAFTMQ__CLIENT__V1__DELETE_QUEUE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (!valid_name(conn, name, &rv)) {
		return rv;
	}
	m.name = (char *)name;
	env.body_case = RMQ_BODY(DELETE_QUEUE);
	env.delete_queue = &m;
	return simple(conn, &env, RMQ_REPLAY_UNKNOWN,
		      RMQ_BODY(DELETE_QUEUE_RESULT));
}

int raftmq_queue_purge(struct raftmq *conn, const char *name, uint64_t *purged)
{
	Raftmq__Client__V1__PurgeQueue m =
		RAFTMQ__CLIENT__V1__PURGE_QUEUE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_env *resp;
	int rv;

	if (!valid_name(conn, name, &rv)) {
		return rv;
	}
	m.name = (char *)name;
	env.body_case = RMQ_BODY(PURGE_QUEUE);
	env.purge_queue = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_UNKNOWN, false, 0,
			      RMQ_BODY(PURGE_QUEUE_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	if (purged != NULL) {
		*purged = resp->purge_queue_result->purged;
	}
	rmq__env_free(resp);
	return 0;
}

static void settings_from_msg(const rmq_settings_msg *m,
			      struct raftmq_queue_settings *s, char *dlq)
{
	memset(s, 0, sizeof(*s));
	s->dead_letter_queue = dlq;
	if (m == NULL) {
		return;
	}
	if (m->_ack_timeout_ms_case != QS(ACK_TIMEOUT_MS__NOT_SET)) {
		s->has |= RAFTMQ_HAS_ACK_TIMEOUT;
		s->ack_timeout_ms = m->ack_timeout_ms;
	}
	if (m->_max_deliveries_case != QS(MAX_DELIVERIES__NOT_SET)) {
		s->has |= RAFTMQ_HAS_MAX_DELIVERIES;
		s->max_deliveries = m->max_deliveries;
	}
	if (m->_dead_letter_queue_case != QS(DEAD_LETTER_QUEUE__NOT_SET)) {
		s->has |= RAFTMQ_HAS_DEAD_LETTER_QUEUE;
	}
	if (m->_ttl_ms_case != QS(TTL_MS__NOT_SET)) {
		s->has |= RAFTMQ_HAS_TTL;
		s->ttl_ms = m->ttl_ms;
	}
	if (m->_max_length_case != QS(MAX_LENGTH__NOT_SET)) {
		s->has |= RAFTMQ_HAS_MAX_LENGTH;
		s->max_length = m->max_length;
	}
	if (m->_max_bytes_case != QS(MAX_BYTES__NOT_SET)) {
		s->has |= RAFTMQ_HAS_MAX_BYTES;
		s->max_bytes = m->max_bytes;
	}
	if (m->_overflow_case != QS(OVERFLOW__NOT_SET)) {
		s->has |= RAFTMQ_HAS_OVERFLOW;
		s->overflow = (enum raftmq_overflow)m->overflow;
	}
	if (m->_dedup_window_ms_case != QS(DEDUP_WINDOW_MS__NOT_SET)) {
		s->has |= RAFTMQ_HAS_DEDUP_WINDOW;
		s->dedup_window_ms = m->dedup_window_ms;
	}
}

static void status_clear(struct raftmq_queue_status *st)
{
	free(st->name);
	free(st->topic);
	free((char *)st->settings.dead_letter_queue);
}

void raftmq_queue_status_free(struct raftmq_queue_status *st, size_t n)
{
	size_t i;

	if (st == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		status_clear(&st[i]);
	}
	free(st);
}

static int status_copy(const Raftmq__Client__V1__QueueStatus *m,
		       struct raftmq_queue_status *st)
{
	const char *dlq = "";
	char *dlq_copy;

	memset(st, 0, sizeof(*st));
	if (m->settings != NULL && m->settings->_dead_letter_queue_case !=
					   QS(DEAD_LETTER_QUEUE__NOT_SET)) {
		dlq = m->settings->dead_letter_queue;
	}
	st->name = strdup(m->name);
	st->topic = strdup(m->topic);
	dlq_copy = strdup(dlq);
	settings_from_msg(m->settings, &st->settings, dlq_copy);
	if (st->name == NULL || st->topic == NULL || dlq_copy == NULL) {
		status_clear(st);
		memset(st, 0, sizeof(*st));
		return RAFTMQ_ENOMEM;
	}
	st->ready = m->ready;
	st->unacked = m->unacked;
	st->delayed = m->delayed;
	st->bytes = m->bytes;
	st->consumers = m->consumers;
	st->published = m->published;
	st->delivered = m->delivered;
	st->redelivered = m->redelivered;
	st->acked = m->acked;
	st->nacked = m->nacked;
	st->released = m->released;
	st->dead_lettered = m->dead_lettered;
	st->expired = m->expired;
	st->deduplicated = m->deduplicated;
	st->dropped = m->dropped;
	st->rejected = m->rejected;
	return 0;
}

/* Copies n statuses into a new array *out. */
static int statuses_copy(struct raftmq *conn,
			 Raftmq__Client__V1__QueueStatus **src, size_t n,
			 struct raftmq_queue_status **out)
{
	struct raftmq_queue_status *arr;
	size_t i;

	*out = NULL;
	if (n == 0) {
		return 0;
	}
	arr = calloc(n, sizeof(*arr));
	if (arr == NULL) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		if (status_copy(src[i], &arr[i]) != 0) {
			raftmq_queue_status_free(arr, i);
			return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
	}
	*out = arr;
	return 0;
}

int raftmq_queue_info(struct raftmq *conn, const char *name,
		      struct raftmq_queue_status **out)
{
	Raftmq__Client__V1__QueueInfo m = RAFTMQ__CLIENT__V1__QUEUE_INFO__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_env *resp;
	int rv;

	*out = NULL;
	if (!valid_name(conn, name, &rv)) {
		return rv;
	}
	m.name = (char *)name;
	env.body_case = RMQ_BODY(QUEUE_INFO);
	env.queue_info = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(QUEUE_INFO_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	if (resp->queue_info_result->queue == NULL) {
		rmq__env_free(resp);
		return rmq__fail(conn, RAFTMQ_EPROTO, "QueueInfoResult empty");
	}
	rv = statuses_copy(conn, &resp->queue_info_result->queue, 1, out);
	rmq__env_free(resp);
	return rv;
}

void raftmq_peeked_free(struct raftmq_peeked *p, size_t n)
{
	size_t i;

	if (p == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		raftmq_delivery_free(&p[i].m);
	}
	free(p);
}

int raftmq_peek(struct raftmq *conn, const char *queue, uint64_t from_seq,
		uint32_t max_messages, unsigned flags,
		struct raftmq_peeked **out, size_t *n, uint64_t *next_seq)
{
	Raftmq__Client__V1__Peek m = RAFTMQ__CLIENT__V1__PEEK__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__PeekResult *r;
	struct raftmq_peeked *arr = NULL;
	rmq_env *resp;
	size_t i;
	int rv;

	*out = NULL;
	*n = 0;
	if (next_seq != NULL) {
		*next_seq = 0;
	}
	if (!valid_name(conn, queue, &rv)) {
		return rv;
	}
	m.queue = (char *)queue;
	m.from_seq = from_seq;
	m.max_messages = max_messages;
	m.include_delayed = (flags & RAFTMQ_PEEK_DELAYED) != 0;
	m.include_held = (flags & RAFTMQ_PEEK_HELD) != 0;
	env.body_case = RMQ_BODY(PEEK);
	env.peek = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(PEEK_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	r = resp->peek_result;
	for (i = 0; i < r->n_messages; i++) {
		if (r->messages[i]->message == NULL) {
			rmq__env_free(resp);
			return rmq__fail(conn, RAFTMQ_EPROTO,
					 "PeekResult message without body");
		}
	}
	if (r->n_messages > 0) {
		arr = calloc(r->n_messages, sizeof(*arr));
		rv = arr == NULL ? RAFTMQ_ENOMEM : 0;
	}
	for (i = 0; rv == 0 && i < r->n_messages; i++) {
		rv = rmq__delivery_copy(r->messages[i]->message, &arr[i].m);
		arr[i].state = (enum raftmq_msg_state)r->messages[i]->state;
		arr[i].due_ms = r->messages[i]->due_ms;
	}
	if (rv != 0) {
		raftmq_peeked_free(arr, r->n_messages);
		rmq__env_free(resp);
		return rmq__fail(conn, rv, "out of memory");
	}
	*out = arr;
	*n = r->n_messages;
	if (next_seq != NULL) {
		*next_seq = r->next_seq;
	}
	rmq__env_free(resp);
	return 0;
}

int raftmq_queue_list(struct raftmq *conn, struct raftmq_queue_status **out,
		      size_t *n)
{
	Raftmq__Client__V1__QueueList m = RAFTMQ__CLIENT__V1__QUEUE_LIST__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_env *resp;
	int rv;

	*out = NULL;
	*n = 0;
	env.body_case = RMQ_BODY(QUEUE_LIST);
	env.queue_list = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(QUEUE_LIST_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	rv = statuses_copy(conn, resp->queue_list_result->queues,
			   resp->queue_list_result->n_queues, out);
	if (rv == 0) {
		*n = resp->queue_list_result->n_queues;
	}
	rmq__env_free(resp);
	return rv;
}

int raftmq_topic_create(struct raftmq *conn, const char *name,
			const uint64_t *dedup_window_ms)
{
	Raftmq__Client__V1__CreateTopic m =
		RAFTMQ__CLIENT__V1__CREATE_TOPIC__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (!new_name(conn, "topic", name, &rv)) {
		return rv;
	}
	m.name = (char *)name;
	if (dedup_window_ms != NULL) {
		m._dedup_window_ms_case =
			RAFTMQ__CLIENT__V1__CREATE_TOPIC___DEDUP_WINDOW_MS_DEDUP_WINDOW_MS;
		m.dedup_window_ms = *dedup_window_ms;
	}
	env.body_case = RMQ_BODY(CREATE_TOPIC);
	env.create_topic = &m;
	return simple(conn, &env, RMQ_REPLAY_RESEND,
		      RMQ_BODY(CREATE_TOPIC_RESULT));
}

int raftmq_topic_delete(struct raftmq *conn, const char *name)
{
	Raftmq__Client__V1__DeleteTopic m =
		RAFTMQ__CLIENT__V1__DELETE_TOPIC__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (!valid_name(conn, name, &rv)) {
		return rv;
	}
	m.name = (char *)name;
	env.body_case = RMQ_BODY(DELETE_TOPIC);
	env.delete_topic = &m;
	return simple(conn, &env, RMQ_REPLAY_UNKNOWN,
		      RMQ_BODY(DELETE_TOPIC_RESULT));
}

int raftmq_subscribe(struct raftmq *conn, const char *topic,
		     const char *subscription,
		     const struct raftmq_queue_settings *settings, char **queue)
{
	Raftmq__Client__V1__Subscribe m = RAFTMQ__CLIENT__V1__SUBSCRIBE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_settings_msg sm;
	rmq_env *resp;
	int rv;

	if (queue != NULL) {
		*queue = NULL;
	}
	if (!valid_name(conn, topic, &rv) ||
	    !new_name(conn, "subscription", subscription, &rv)) {
		return rv;
	}
	rmq__settings_to_msg(settings, &sm);
	m.topic = (char *)topic;
	m.subscription = (char *)subscription;
	m.settings = &sm;
	env.body_case = RMQ_BODY(SUBSCRIBE);
	env.subscribe = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(SUBSCRIBE_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	if (queue != NULL) {
		*queue = strdup(resp->subscribe_result->queue);
		if (*queue == NULL) {
			rv = rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
	}
	rmq__env_free(resp);
	return rv;
}

int raftmq_unsubscribe(struct raftmq *conn, const char *topic,
		       const char *subscription)
{
	Raftmq__Client__V1__Unsubscribe m =
		RAFTMQ__CLIENT__V1__UNSUBSCRIBE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (!valid_name(conn, topic, &rv) ||
	    !valid_name(conn, subscription, &rv)) {
		return rv;
	}
	m.topic = (char *)topic;
	m.subscription = (char *)subscription;
	env.body_case = RMQ_BODY(UNSUBSCRIBE);
	env.unsubscribe = &m;
	return simple(conn, &env, RMQ_REPLAY_UNKNOWN,
		      RMQ_BODY(UNSUBSCRIBE_RESULT));
}

void raftmq_topic_status_free(struct raftmq_topic_status *st, size_t n)
{
	size_t i;

	if (st == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(st[i].name);
	}
	free(st);
}

int raftmq_topic_list(struct raftmq *conn, struct raftmq_topic_status **out,
		      size_t *n)
{
	Raftmq__Client__V1__TopicList m = RAFTMQ__CLIENT__V1__TOPIC_LIST__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__TopicListResult *r;
	struct raftmq_topic_status *arr = NULL;
	rmq_env *resp;
	size_t i;
	int rv;

	*out = NULL;
	*n = 0;
	env.body_case = RMQ_BODY(TOPIC_LIST);
	env.topic_list = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(TOPIC_LIST_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	r = resp->topic_list_result;
	if (r->n_topics > 0) {
		arr = calloc(r->n_topics, sizeof(*arr));
		if (arr == NULL) {
			rmq__env_free(resp);
			return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
	}
	for (i = 0; i < r->n_topics; i++) {
		arr[i].name = strdup(r->topics[i]->name);
		if (arr[i].name == NULL) {
			raftmq_topic_status_free(arr, i);
			rmq__env_free(resp);
			return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
		arr[i].dedup_window_ms = r->topics[i]->dedup_window_ms;
		arr[i].subscriptions = r->topics[i]->subscriptions;
		arr[i].published = r->topics[i]->published;
		arr[i].deduplicated = r->topics[i]->deduplicated;
	}
	*out = arr;
	*n = r->n_topics;
	rmq__env_free(resp);
	return 0;
}

const char *raftmq_role_name(enum raftmq_role role)
{
	switch (role) {
	case RAFTMQ_ROLE_VOTER:
		return "voter";
	case RAFTMQ_ROLE_STANDBY:
		return "standby";
	case RAFTMQ_ROLE_SPARE:
		return "spare";
	default:
		return "unspecified";
	}
}

void raftmq_cluster_status_free(struct raftmq_cluster_status *st)
{
	size_t i;

	if (st == NULL) {
		return;
	}
	for (i = 0; i < st->n_nodes && st->nodes != NULL; i++) {
		free(st->nodes[i].raft_address);
		free(st->nodes[i].client_address);
	}
	free(st->nodes);
	memset(st, 0, sizeof(*st));
}

int raftmq_cluster_status(struct raftmq *conn,
			  struct raftmq_cluster_status *out)
{
	Raftmq__Client__V1__ClusterStatus m =
		RAFTMQ__CLIENT__V1__CLUSTER_STATUS__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__ClusterStatusResult *r;
	rmq_env *resp;
	size_t i;
	int rv;

	memset(out, 0, sizeof(*out));
	env.body_case = RMQ_BODY(CLUSTER_STATUS);
	env.cluster_status = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(CLUSTER_STATUS_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	r = resp->cluster_status_result;
	out->leader_id = r->leader_id;
	out->term = r->term;
	out->commit_index = r->commit_index;
	out->applied_index = r->applied_index;
	out->node_id = r->node_id;
	if (r->n_nodes > 0) {
		out->nodes = calloc(r->n_nodes, sizeof(*out->nodes));
		if (out->nodes == NULL) {
			rmq__env_free(resp);
			return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
		out->n_nodes = r->n_nodes;
	}
	for (i = 0; i < r->n_nodes; i++) {
		struct raftmq_node *nd = &out->nodes[i];

		nd->id = r->nodes[i]->id;
		nd->role = (enum raftmq_role)r->nodes[i]->role;
		nd->reachable = r->nodes[i]->reachable;
		nd->reachable_unknown = r->nodes[i]->reachable_unknown;
		nd->raft_address = strdup(r->nodes[i]->raft_address);
		nd->client_address = strdup(r->nodes[i]->client_address);
		if (nd->raft_address == NULL || nd->client_address == NULL) {
			raftmq_cluster_status_free(out);
			rmq__env_free(resp);
			return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
		}
	}
	rmq__env_free(resp);
	return 0;
}

int raftmq_cluster_add(struct raftmq *conn, uint64_t id,
		       const char *raft_address, const char *client_address,
		       enum raftmq_role role)
{
	Raftmq__Client__V1__ClusterAdd m =
		RAFTMQ__CLIENT__V1__CLUSTER_ADD__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	int rv;

	if (id == 0 || !valid_name(conn, raft_address, &rv) ||
	    !valid_name(conn, client_address, &rv)) {
		return rmq__fail(conn, RAFTMQ_EINVAL,
				 "cluster add needs a non-zero id and both "
				 "addresses");
	}
	m.id = id;
	m.raft_address = (char *)raft_address;
	m.client_address = (char *)client_address;
	m.role = (Raftmq__Client__V1__NodeRole)role;
	env.body_case = RMQ_BODY(CLUSTER_ADD);
	env.cluster_add = &m;
	return simple(conn, &env, RMQ_REPLAY_UNKNOWN,
		      RMQ_BODY(CLUSTER_ADD_RESULT));
}

int raftmq_cluster_remove(struct raftmq *conn, uint64_t id)
{
	Raftmq__Client__V1__ClusterRemove m =
		RAFTMQ__CLIENT__V1__CLUSTER_REMOVE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	m.id = id;
	env.body_case = RMQ_BODY(CLUSTER_REMOVE);
	env.cluster_remove = &m;
	return simple(conn, &env, RMQ_REPLAY_UNKNOWN,
		      RMQ_BODY(CLUSTER_REMOVE_RESULT));
}

int raftmq_cluster_transfer(struct raftmq *conn, uint64_t id,
			    uint64_t *leader_id)
{
	Raftmq__Client__V1__ClusterTransfer m =
		RAFTMQ__CLIENT__V1__CLUSTER_TRANSFER__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_env *resp;
	int rv;

	m.id = id;
	env.body_case = RMQ_BODY(CLUSTER_TRANSFER);
	env.cluster_transfer = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_UNKNOWN, false, 0,
			      RMQ_BODY(CLUSTER_TRANSFER_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	if (leader_id != NULL) {
		*leader_id = resp->cluster_transfer_result->leader_id;
	}
	rmq__env_free(resp);
	return 0;
}
