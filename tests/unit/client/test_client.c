/*
 * The connection engine of libraftmq against scripted fake servers
 * (fake_server.c): every test starts one or two server threads on
 * 127.0.0.1 with random free ports and drives the public API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "fake_server.h"

static struct raftmq *connect_to(const char *addrs, unsigned window,
				 unsigned timeout_ms)
{
	struct raftmq_options o = {0};
	struct raftmq *c = NULL;
	char err[256];
	int rv;

	o.client_name = "t_client";
	o.window = window;
	o.request_timeout_ms = timeout_ms;
	o.connect_timeout_ms = 500;
	rv = raftmq_connect(addrs, &o, &c, err, sizeof(err));
	cr_assert_eq(rv, 0, "connect: %s", err);
	return c;
}

static const struct raftmq_message msg_q = {.queue = "q",
					    .body = "body",
					    .body_len = 4};

/* Answers Hello as a node that is its own leader (or knows none). */
static bool hello(struct fake *f, int fd, rmq_env *req, uint64_t leader,
		  const char *addr)
{
	if (req->body_case != RMQ_BODY(HELLO)) {
		return false;
	}
	cr_assert_eq(req->hello->protocol_version, RMQ_PROTOCOL_VERSION);
	cr_assert_eq(req->version, 1, "plain frames stay version 1");
	cr_assert_str_eq(req->hello->client_name, "t_client");
	fake_hello_result(fd, req->correlation_id, f->node_id, leader, addr);
	return true;
}

/* Answers a Cancel (raftmq_close() sends one per consumer, its goodbye). */
static bool cancel_ok(int fd, const rmq_env *req)
{
	Raftmq__Client__V1__CancelResult r =
		RAFTMQ__CLIENT__V1__CANCEL_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	env.body_case = RMQ_BODY(CANCEL_RESULT);
	env.cancel_result = &r;
	fake_send(fd, req->correlation_id, &env);
	return true;
}

/* ---- redirect: A answers NOT_LEADER naming B; B confirms. */

static struct fake fa, fb;

static bool follower_a(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	(void)conn_no;
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, 0, "");
	}
	cr_assert_eq(req->body_case, RMQ_BODY(PUBLISH));
	fake_record_publish(f, conn_no, req);
	fake_error(fd, req->correlation_id, RMQ_ERR(NOT_LEADER),
		   "node 1 is not the leader", fb.addr);
	return true;
}

static bool leader_b(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	cr_assert_eq(req->body_case, RMQ_BODY(PUBLISH));
	fake_record_publish(f, conn_no, req);
	fake_publish_result(fd, req->correlation_id, 42, false);
	return true;
}

Test(client_conn, not_leader_redirect)
{
	struct raftmq *c;
	uint64_t seq = 0;
	bool dup = true;

	fake_start(&fb, leader_b, 2);
	fake_start(&fa, follower_a, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_node_id(c), 1);
	cr_assert_eq(raftmq_publish(c, &msg_q, &seq, &dup), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(seq, 42);
	cr_assert_not(dup);
	cr_assert_eq(raftmq_node_id(c), 2);
	pthread_mutex_lock(&fa.mu);
	pthread_mutex_lock(&fb.mu);
	cr_assert_eq(fa.n_ids, 1);
	cr_assert_eq(fb.n_ids, 1);
	cr_assert_str_eq(fa.ids[0], fb.ids[0], "same msg_id on the redirect");
	cr_assert_gt(strlen(fa.ids[0]), 0);
	pthread_mutex_unlock(&fb.mu);
	pthread_mutex_unlock(&fa.mu);
	raftmq_close(c);
	fake_stop(&fa);
	fake_stop(&fb);
}

/* A follower naming the leader in HelloResult: the client goes straight
 * there and the follower never sees a publish. */
static bool follower_hello_names_b(struct fake *f, int fd, int conn_no,
				   rmq_env *req)
{
	(void)conn_no;
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, 2, fb.addr);
	}
	fake_record_publish(f, conn_no, req);
	fake_error(fd, req->correlation_id, RMQ_ERR(NOT_LEADER), "no", "");
	return true;
}

Test(client_conn, hello_redirect)
{
	struct raftmq *c;
	uint64_t seq = 0;

	fake_start(&fb, leader_b, 2);
	fake_start(&fa, follower_hello_names_b, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_node_id(c), 2);
	cr_assert_eq(raftmq_publish(c, &msg_q, &seq, NULL), 0);
	cr_assert_eq(seq, 42);
	cr_assert_eq(fa.n_ids, 0);
	raftmq_close(c);
	fake_stop(&fa);
	fake_stop(&fb);
}

/* ---- reconnect: the server drops the connection on the first publish and
 * confirms the resent one; both carry the same msg_id. */

static bool drop_first_publish(struct fake *f, int fd, int conn_no,
			       rmq_env *req)
{
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	cr_assert_eq(req->body_case, RMQ_BODY(PUBLISH));
	fake_record_publish(f, conn_no, req);
	if (conn_no == 0) {
		return false; /* close mid-publish, without an answer */
	}
	fake_publish_result(fd, req->correlation_id, 7, true);
	return true;
}

Test(client_conn, reconnect_same_msg_id)
{
	struct raftmq *c;
	uint64_t seq = 0;
	bool dup = false;

	fake_start(&fa, drop_first_publish, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_publish(c, &msg_q, &seq, &dup), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(seq, 7);
	cr_assert(dup);
	pthread_mutex_lock(&fa.mu);
	cr_assert_eq(fa.n_conns, 2);
	cr_assert_eq(fa.n_ids, 2);
	cr_assert_eq(fa.id_conn[0], 0);
	cr_assert_eq(fa.id_conn[1], 1);
	cr_assert_str_eq(fa.ids[0], fa.ids[1]);
	pthread_mutex_unlock(&fa.mu);
	raftmq_close(c);
	fake_stop(&fa);
}

/* A caller-chosen id is sent as is, and kept on the resend. */
Test(client_conn, reconnect_user_msg_id)
{
	struct raftmq_message m = msg_q;
	struct raftmq *c;

	m.msg_id = "order-17";
	m.msg_id_len = 8;
	fake_start(&fa, drop_first_publish, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_publish(c, &m, NULL, NULL), 0);
	cr_assert_str_eq(fa.ids[0], "order-17");
	cr_assert_str_eq(fa.ids[1], "order-17");
	raftmq_close(c);
	fake_stop(&fa);
}

/* Pipelined: the server drops the connection after the 3rd of 5 publishes
 * without answering; on the next connection it confirms everything. Every
 * id of the first connection is resent unchanged. */
static bool drop_after_three(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	fake_record_publish(f, conn_no, req);
	if (conn_no == 0) {
		return f->n_ids < 3;
	}
	fake_publish_result(fd, req->correlation_id, (uint64_t)f->n_ids, false);
	return true;
}

Test(client_conn, reconnect_pipelined)
{
	struct raftmq_confirm conf;
	struct raftmq *c;
	int seen[5] = {0};
	int i;
	int j;

	fake_start(&fa, drop_after_three, 1);
	c = connect_to(fa.addr, 8, 5000);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(
			raftmq_publish_async(c, &msg_q, (void *)(intptr_t)i),
			0);
	}
	cr_assert_eq(raftmq_publish_flush(c), 0, "%s", raftmq_errmsg(c));
	for (i = 0; i < 5; i++) {
		cr_assert_eq(raftmq_publish_wait(c, 0, &conf), 0);
		cr_assert_eq(conf.err, 0, "%s", conf.message);
		seen[(intptr_t)conf.user_data]++;
	}
	cr_assert_eq(raftmq_publish_wait(c, 0, &conf), RAFTMQ_ENOPENDING);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(seen[i], 1);
	}
	pthread_mutex_lock(&fa.mu);
	cr_assert_geq(fa.n_conns, 2);
	/* Each id seen on connection 0 reappears on a later connection. */
	for (i = 0; i < fa.n_ids; i++) {
		bool again = false;

		if (fa.id_conn[i] != 0) {
			continue;
		}
		for (j = 0; j < fa.n_ids; j++) {
			again |= fa.id_conn[j] > 0 &&
				 strcmp(fa.ids[i], fa.ids[j]) == 0;
		}
		cr_assert(again, "id %s not resent", fa.ids[i]);
	}
	pthread_mutex_unlock(&fa.mu);
	raftmq_close(c);
	fake_stop(&fa);
}

/* UNAVAILABLE (no leader yet) is retried with backoff, same id. */
static bool unavailable_once(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, 0, "");
	}
	fake_record_publish(f, conn_no, req);
	if (f->n_ids == 1) {
		fake_error(fd, req->correlation_id, RMQ_ERR(UNAVAILABLE),
			   "election in progress", "");
	} else {
		fake_publish_result(fd, req->correlation_id, 3, false);
	}
	return true;
}

Test(client_conn, unavailable_retry)
{
	struct raftmq *c;
	uint64_t seq = 0;

	fake_start(&fa, unavailable_once, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_publish(c, &msg_q, &seq, NULL), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(seq, 3);
	cr_assert_eq(fa.n_ids, 2);
	cr_assert_str_eq(fa.ids[0], fa.ids[1]);
	raftmq_close(c);
	fake_stop(&fa);
}

/* UNKNOWN_OUTCOME and TIMEOUT resend the publish with the same id. */
static bool outcome_then_ok(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	fake_record_publish(f, conn_no, req);
	if (f->n_ids == 1) {
		fake_error(fd, req->correlation_id, RMQ_ERR(UNKNOWN_OUTCOME),
			   "leadership lost", "");
	} else if (f->n_ids == 2) {
		fake_error(fd, req->correlation_id, RMQ_ERR(TIMEOUT),
			   "not committed in time", "");
	} else {
		fake_publish_result(fd, req->correlation_id, 5, true);
	}
	return true;
}

Test(client_conn, unknown_outcome_retry)
{
	struct raftmq *c;
	bool dup = false;

	fake_start(&fa, outcome_then_ok, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_publish(c, &msg_q, NULL, &dup), 0);
	cr_assert(dup);
	cr_assert_eq(fa.n_ids, 3);
	cr_assert_str_eq(fa.ids[0], fa.ids[2]);
	cr_assert_eq(fa.n_conns, 1, "retried on the same connection");
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- window: the server answers only when K publishes are outstanding,
 * so a client that sent more than K would show it, and one that sent
 * fewer would hang. */

#define K 4

struct window_state {
	uint64_t corrs[64];
	int outstanding;
	int max_outstanding;
	uint64_t seq;
};

static bool window_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	struct window_state *w = f->data;
	int i;

	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	fake_record_publish(f, conn_no, req);
	w->corrs[w->outstanding++] = req->correlation_id;
	if (w->outstanding > w->max_outstanding) {
		w->max_outstanding = w->outstanding;
	}
	if (w->outstanding == K) {
		for (i = 0; i < K; i++) {
			fake_publish_result(fd, w->corrs[i], ++w->seq, false);
		}
		w->outstanding = 0;
	}
	return true;
}

static int cb_calls;
static uint64_t cb_last_seq;

static void on_confirm(struct raftmq *conn, const struct raftmq_confirm *c,
		       void *data)
{
	(void)conn;
	cr_assert_eq(data, &cb_calls);
	cr_assert_eq(c->err, 0);
	cr_assert_eq(c->seq, (uint64_t)(intptr_t)c->user_data + 1);
	cb_last_seq = c->seq;
	cb_calls++;
}

Test(client_conn, window_of_k)
{
	static struct window_state w;
	struct raftmq_confirm conf;
	struct raftmq *c;
	int i;

	fake_start(&fa, window_server, 1);
	fa.data = &w;
	c = connect_to(fa.addr, K, 5000);
	for (i = 0; i < 3 * K; i++) {
		cr_assert_eq(
			raftmq_publish_async(c, &msg_q, (void *)(intptr_t)i), 0,
			"%s", raftmq_errmsg(c));
		cr_assert_leq(raftmq_publish_pending(c), K);
	}
	cr_assert_eq(raftmq_publish_flush(c), 0);
	cr_assert_eq(raftmq_publish_pending(c), 0);
	for (i = 0; i < 3 * K; i++) {
		cr_assert_eq(raftmq_publish_wait(c, 1000, &conf), 0);
		cr_assert_eq(conf.err, 0);
		cr_assert_eq((intptr_t)conf.user_data, i, "in order");
		cr_assert_eq(conf.seq, (uint64_t)i + 1);
	}
	pthread_mutex_lock(&fa.mu);
	cr_assert_eq(w.max_outstanding, K);
	cr_assert_eq(fa.n_ids, 3 * K);
	for (i = 1; i < fa.n_ids; i++) {
		cr_assert_str_neq(fa.ids[i - 1], fa.ids[i], "unique ids");
	}
	pthread_mutex_unlock(&fa.mu);
	raftmq_close(c);
	fake_stop(&fa);
}

Test(client_conn, window_with_callback)
{
	static struct window_state w;
	struct raftmq_options o = {0};
	struct raftmq *c;
	int i;

	fake_start(&fa, window_server, 1);
	fa.data = &w;
	o.client_name = "t_client";
	o.window = K;
	o.confirm_cb = on_confirm;
	o.confirm_data = &cb_calls;
	cr_assert_eq(raftmq_connect(fa.addr, &o, &c, NULL, 0), 0);
	for (i = 0; i < 2 * K; i++) {
		cr_assert_eq(
			raftmq_publish_async(c, &msg_q, (void *)(intptr_t)i),
			0);
	}
	cr_assert_eq(raftmq_publish_flush(c), 0);
	cr_assert_eq(cb_calls, 2 * K);
	cr_assert_eq(cb_last_seq, 2 * K);
	cr_assert_eq(w.max_outstanding, K);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- errors: codes and the server's sentence reach the caller. */

static bool refuse_all(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	(void)conn_no;
	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(CREATE_QUEUE):
		cr_assert_str_eq(req->create_queue->name, "orders");
		cr_assert_eq(req->create_queue->settings->max_length, 10);
		cr_assert_eq(
			req->create_queue->settings->_ttl_ms_case,
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___TTL_MS__NOT_SET);
		fake_error(fd, req->correlation_id, RMQ_ERR(ALREADY_EXISTS),
			   "queue \"orders\" exists with other settings", "");
		return true;
	case RMQ_BODY(PUBLISH):
		fake_error(fd, req->correlation_id, RMQ_ERR(QUEUE_FULL),
			   "queue \"q\" is full (max_length 10)", "");
		return true;
	case RMQ_BODY(DELETE_QUEUE):
		fake_error(fd, req->correlation_id, RMQ_ERR(NOT_FOUND), "", "");
		return true;
	default:
		return true; /* never answered: the client times out */
	}
}

Test(client_conn, errors_mapped)
{
	struct raftmq_queue_settings s = {0};
	struct raftmq_confirm conf;
	struct raftmq *c;

	fake_start(&fa, refuse_all, 1);
	c = connect_to(fa.addr, 0, 400);
	s.has = RAFTMQ_HAS_MAX_LENGTH;
	s.max_length = 10;
	cr_assert_eq(raftmq_queue_create(c, "orders", &s), RAFTMQ_EEXIST);
	cr_assert_str_eq(raftmq_errmsg(c),
			 "queue \"orders\" exists with other settings");
	cr_assert_eq(raftmq_publish(c, &msg_q, NULL, NULL), RAFTMQ_EFULL);
	cr_assert_str_eq(raftmq_errmsg(c),
			 "queue \"q\" is full (max_length 10)");
	/* No sentence from the server: the code's own. */
	cr_assert_eq(raftmq_queue_delete(c, "x"), RAFTMQ_ENOTFOUND);
	cr_assert_str_eq(raftmq_errmsg(c), raftmq_strerror(RAFTMQ_ENOTFOUND));
	/* Pipelined refusals come back in the confirmation. */
	cr_assert_eq(raftmq_publish_async(c, &msg_q, NULL), 0);
	cr_assert_eq(raftmq_publish_wait(c, -1, &conf), 0);
	cr_assert_eq(conf.err, RAFTMQ_EFULL);
	cr_assert_str_eq(conf.message, "queue \"q\" is full (max_length 10)");
	/* Unanswered: a local timeout. */
	cr_assert_eq(raftmq_topic_create(c, "t", NULL), RAFTMQ_ETIMEOUT);
	/* Local validation. */
	cr_assert_eq(raftmq_queue_create(c, "", NULL), RAFTMQ_EINVAL);
	raftmq_close(c);
	fake_stop(&fa);
}

Test(client_conn, connect_refused)
{
	struct raftmq_options o = {0};
	struct raftmq *c = (struct raftmq *)1;
	char err[256] = "";
	char addr[32];

	/* A port that was free a moment ago: nobody listens. */
	fake_start(&fa, refuse_all, 1);
	snprintf(addr, sizeof(addr), "%s", fa.addr);
	fake_stop(&fa);
	o.request_timeout_ms = 300;
	cr_assert_eq(raftmq_connect(addr, &o, &c, err, sizeof(err)),
		     RAFTMQ_ECONNECT);
	cr_assert_null(c);
	cr_assert_neq(strstr(err, "127.0.0.1"), NULL, "%s", err);
	cr_assert_eq(raftmq_connect("nonsense", &o, &c, err, sizeof(err)),
		     RAFTMQ_EINVAL);
}

/* ---- consumers: attach, deliveries, ack; after the connection drops the
 * consumer is re-attached with a new id and old tags are void. */

static bool consumer_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__ConsumeResult cr =
		RAFTMQ__CLIENT__V1__CONSUME_RESULT__INIT;
	Raftmq__Client__V1__TagsResult tr =
		RAFTMQ__CLIENT__V1__TAGS_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	uint64_t id = 5 + (uint64_t)conn_no;

	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(CONSUME):
		cr_assert_str_eq(req->consume->queue, "jobs");
		cr_assert_eq(req->consume->prefetch, 16);
		cr.consumer_id = id;
		env.body_case = RMQ_BODY(CONSUME_RESULT);
		env.consume_result = &cr;
		fake_send(fd, req->correlation_id, &env);
		fake_delivery(fd, req->correlation_id, id, "jobs",
			      1 + (uint64_t)conn_no, "work",
			      1 + (uint32_t)conn_no);
		return true;
	case RMQ_BODY(ACK):
		cr_assert_eq(req->ack->consumer_id, id);
		tr.done = req->ack->n_tags;
		env.body_case = RMQ_BODY(ACK_RESULT);
		env.ack_result = &tr;
		fake_send(fd, req->correlation_id, &env);
		return conn_no > 0; /* drop the first connection */
	case RMQ_BODY(CANCEL):
		return cancel_ok(fd, req);
	default:
		cr_assert_fail("unexpected request %d", (int)req->body_case);
		return false;
	}
}

Test(client_conn, consume_reattach)
{
	struct raftmq_tags_result tr;
	struct raftmq_consumer *k;
	struct raftmq_delivery d;
	struct raftmq *c;
	uint64_t tag;

	fake_start(&fa, consumer_server, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_consume(c, "jobs", 16, &k), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(raftmq_consumer_id(k), 5);
	cr_assert_eq(raftmq_next(c, k, 2000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(d.consumer_id, 5);
	cr_assert_eq(d.tag, 1);
	cr_assert_str_eq(d.queue, "jobs");
	cr_assert_eq(d.body_len, 4);
	cr_assert_str_eq(d.body, "work");
	cr_assert_eq(d.msg_id_len, 3);
	cr_assert_eq(d.delivery_count, 1);
	cr_assert_not(d.redelivered);
	cr_assert_eq(d.published_ms, 1700000000000ull);
	tag = d.tag;
	cr_assert_eq(raftmq_ack(c, d.consumer_id, &tag, 1, &tr), 0);
	cr_assert_eq(tr.done, 1);
	raftmq_delivery_free(&d);
	/* The server dropped the connection after that ack: the next wait
	 * re-attaches and gets the redelivery from consumer 6. */
	cr_assert_eq(raftmq_next(c, NULL, 3000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(d.consumer_id, 6);
	cr_assert_eq(d.delivery_count, 2);
	cr_assert(d.redelivered);
	cr_assert_eq(raftmq_consumer_id(k), 6);
	tag = 1;
	cr_assert_eq(raftmq_ack(c, 5, &tag, 1, NULL), RAFTMQ_ESTALE);
	tag = d.tag;
	cr_assert_eq(raftmq_ack(c, 6, &tag, 1, &tr), 0, "%s", raftmq_errmsg(c));
	raftmq_delivery_free(&d);
	cr_assert_eq(raftmq_next(c, k, 0, &d), RAFTMQ_ETIMEOUT);
	cr_assert_eq(raftmq_ack(c, 6, &tag, 0, NULL), RAFTMQ_EINVAL);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- a consumer waiting with short timeouts (raftmq_next(..., 50, ...))
 * while the cluster elects a leader: the reconnect backoff grows past the
 * wait, and Hello answers take longer than what is left of it. The backoff
 * must carry over between calls and each attempt must get its whole
 * connect timeout, or the consumer is never re-attached (it was not: the
 * orders example hung after a leader failover). */

static bool electing_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__ConsumeResult cr =
		RAFTMQ__CLIENT__V1__CONSUME_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	struct timespec slow = {.tv_nsec = 30 * 1000 * 1000};

	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		if (conn_no > 0) {
			nanosleep(&slow, NULL); /* a busy new leader */
		}
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(CONSUME):
		if (conn_no >= 1 && conn_no <= 4) {
			fake_error(fd, req->correlation_id,
				   RMQ_ERR(UNAVAILABLE), "no leader yet", "");
			return false;
		}
		cr.consumer_id = 10 + (uint64_t)conn_no;
		env.body_case = RMQ_BODY(CONSUME_RESULT);
		env.consume_result = &cr;
		fake_send(fd, req->correlation_id, &env);
		fake_delivery(fd, req->correlation_id, cr.consumer_id, "jobs",
			      1 + (uint64_t)conn_no, "work",
			      1 + (uint32_t)conn_no);
		return conn_no > 0; /* the first leader dies */
	case RMQ_BODY(CANCEL):
		return cancel_ok(fd, req);
	default:
		cr_assert_fail("unexpected request %d", (int)req->body_case);
		return false;
	}
}

Test(client_conn, reattach_with_short_waits)
{
	struct raftmq_consumer *k;
	struct raftmq_delivery d;
	struct raftmq *c;
	uint64_t until;
	int rv;

	fake_start(&fa, electing_server, 1);
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_consume(c, "jobs", 16, &k), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(raftmq_next(c, k, 2000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(d.consumer_id, 10);
	raftmq_delivery_free(&d);
	until = rmq__now_ms() + 10000;
	for (;;) {
		rv = raftmq_next(c, k, 50, &d);
		if (rv == 0) {
			break;
		}
		cr_assert(rv == RAFTMQ_ETIMEOUT || rv == RAFTMQ_ECONNECT,
			  "rv %d: %s", rv, raftmq_errmsg(c));
		cr_assert_lt(rmq__now_ms(), until,
			     "consumer never re-attached: %s",
			     raftmq_errmsg(c));
	}
	cr_assert_eq(d.consumer_id, 15, "re-attached on connection %llu",
		     (unsigned long long)d.consumer_id - 10);
	cr_assert_eq(raftmq_consumer_id(k), 15);
	cr_assert_eq(d.delivery_count, 6);
	raftmq_delivery_free(&d);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- async acks: queued tags go out in few Ack frames; a flush waits
 * for their answers; acks voided by a reconnect are reported once. */

struct ack_count {
	int frames;
	uint64_t tags;
	bool drop_on_ack; /* close the connection on the first Ack */
};

static bool async_ack_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__ConsumeResult cr =
		RAFTMQ__CLIENT__V1__CONSUME_RESULT__INIT;
	Raftmq__Client__V1__TagsResult tr =
		RAFTMQ__CLIENT__V1__TAGS_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	struct ack_count *n = f->data;
	uint64_t i;

	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(CONSUME):
		cr.consumer_id = 7 + (uint64_t)conn_no;
		env.body_case = RMQ_BODY(CONSUME_RESULT);
		env.consume_result = &cr;
		fake_send(fd, req->correlation_id, &env);
		for (i = 1; i <= 100; i++) {
			fake_delivery(fd, req->correlation_id, cr.consumer_id,
				      "jobs", i, "work", 1);
		}
		return true;
	case RMQ_BODY(ACK):
		if (n->drop_on_ack) {
			n->drop_on_ack = false;
			return false;
		}
		cr_assert_eq(req->ack->consumer_id, 7 + (uint64_t)conn_no);
		n->frames++;
		n->tags += req->ack->n_tags;
		tr.done = req->ack->n_tags;
		env.body_case = RMQ_BODY(ACK_RESULT);
		env.ack_result = &tr;
		fake_send(fd, req->correlation_id, &env);
		return true;
	case RMQ_BODY(CANCEL):
		return cancel_ok(fd, req);
	default:
		cr_assert_fail("unexpected request %d", (int)req->body_case);
		return false;
	}
}

Test(client_conn, ack_async_batches)
{
	struct ack_count n = {0};
	struct raftmq_consumer *k;
	struct raftmq_delivery d;
	struct raftmq *c;
	int i;

	fake_start(&fa, async_ack_server, 1);
	fa.data = &n; /* after fake_start, which clears fa */
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_consume(c, "jobs", 100, &k), 0, "%s",
		     raftmq_errmsg(c));
	for (i = 0; i < 100; i++) {
		cr_assert_eq(raftmq_next(c, k, 2000, &d), 0, "%s",
			     raftmq_errmsg(c));
		cr_assert_eq(raftmq_ack_async(c, d.consumer_id, &d.tag, 1), 0,
			     "%s", raftmq_errmsg(c));
		raftmq_delivery_free(&d);
	}
	cr_assert_eq(raftmq_ack_flush(c, 2000), 0, "%s", raftmq_errmsg(c));
	pthread_mutex_lock(&fa.mu);
	cr_assert_eq(n.tags, 100);
	cr_assert_leq(n.frames, 10, "%d Ack frames for 100 tags", n.frames);
	pthread_mutex_unlock(&fa.mu);
	cr_assert_eq(raftmq_ack_async(c, 7, NULL, 0), RAFTMQ_EINVAL);
	cr_assert_eq(raftmq_ack_async(c, 99, &(uint64_t){1}, 1), RAFTMQ_ESTALE);
	raftmq_close(c);
	fake_stop(&fa);
	fa.data = NULL;
}

Test(client_conn, ack_async_void_after_reconnect)
{
	struct ack_count n = {.drop_on_ack = true};
	struct raftmq_consumer *k;
	struct raftmq_delivery d;
	struct raftmq *c;

	fake_start(&fa, async_ack_server, 1);
	fa.data = &n; /* after fake_start, which clears fa */
	c = connect_to(fa.addr, 0, 5000);
	cr_assert_eq(raftmq_consume(c, "jobs", 100, &k), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(raftmq_next(c, k, 2000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(raftmq_ack_async(c, d.consumer_id, &d.tag, 1), 0);
	raftmq_delivery_free(&d);
	/* The server drops the connection on that Ack: the flush reconnects
	 * and says the ack was void (its message comes again). */
	cr_assert_eq(raftmq_ack_flush(c, 3000), RAFTMQ_ESTALE, "%s",
		     raftmq_errmsg(c));
	cr_assert(strstr(raftmq_errmsg(c), "void") != NULL, "%s",
		  raftmq_errmsg(c));
	cr_assert_eq(raftmq_ack_flush(c, 1000), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(raftmq_next(c, k, 2000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(d.consumer_id, 8);
	raftmq_delivery_free(&d);
	raftmq_close(c);
	fake_stop(&fa);
	fa.data = NULL;
}

/* ---- ConsumerGone and an unknown queue. */

static bool gone_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__ConsumeResult cr =
		RAFTMQ__CLIENT__V1__CONSUME_RESULT__INIT;
	Raftmq__Client__V1__ConsumerGone g =
		RAFTMQ__CLIENT__V1__CONSUMER_GONE__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	(void)conn_no;
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	cr_assert_eq(req->body_case, RMQ_BODY(CONSUME));
	if (strcmp(req->consume->queue, "missing") == 0) {
		fake_error(fd, req->correlation_id, RMQ_ERR(NOT_FOUND),
			   "queue \"missing\" not found", "");
		return true;
	}
	cr.consumer_id = 9;
	env.body_case = RMQ_BODY(CONSUME_RESULT);
	env.consume_result = &cr;
	fake_send(fd, req->correlation_id, &env);
	g.consumer_id = 9;
	g.queue = req->consume->queue;
	g.message = "queue deleted";
	env.body_case = RMQ_BODY(CONSUMER_GONE);
	env.consumer_gone = &g;
	fake_send(fd, req->correlation_id, &env);
	return true;
}

Test(client_conn, consumer_gone)
{
	struct raftmq_consumer *k;
	struct raftmq_delivery d;
	struct raftmq *c;

	fake_start(&fa, gone_server, 1);
	c = connect_to(fa.addr, 0, 2000);
	cr_assert_eq(raftmq_consume(c, "missing", 1, &k), RAFTMQ_ENOTFOUND);
	cr_assert_null(k);
	cr_assert_neq(strstr(raftmq_errmsg(c), "not found"), NULL);
	cr_assert_eq(raftmq_consume(c, "q", 1, &k), 0);
	cr_assert_eq(raftmq_next(c, k, 2000, &d), RAFTMQ_ECONSUMER_GONE);
	cr_assert_neq(strstr(raftmq_errmsg(c), "queue deleted"), NULL, "%s",
		      raftmq_errmsg(c));
	cr_assert_eq(raftmq_next(c, NULL, 0, &d), RAFTMQ_ENOPENDING);
	cr_assert_eq(raftmq_cancel(c, k), 0);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- admin, introspection, batch and pull round trips. */

static bool admin_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__QueueSettings qs =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS__INIT;
	Raftmq__Client__V1__QueueStatus st =
		RAFTMQ__CLIENT__V1__QUEUE_STATUS__INIT;
	Raftmq__Client__V1__QueueInfoResult qi =
		RAFTMQ__CLIENT__V1__QUEUE_INFO_RESULT__INIT;
	Raftmq__Client__V1__Node n1 = RAFTMQ__CLIENT__V1__NODE__INIT;
	Raftmq__Client__V1__Node *nodes[1] = {&n1};
	Raftmq__Client__V1__ClusterStatusResult cs =
		RAFTMQ__CLIENT__V1__CLUSTER_STATUS_RESULT__INIT;
	Raftmq__Client__V1__PublishItemResult it[2] = {
		RAFTMQ__CLIENT__V1__PUBLISH_ITEM_RESULT__INIT,
		RAFTMQ__CLIENT__V1__PUBLISH_ITEM_RESULT__INIT};
	Raftmq__Client__V1__PublishItemResult *its[2] = {&it[0], &it[1]};
	Raftmq__Client__V1__PublishBatchResult br =
		RAFTMQ__CLIENT__V1__PUBLISH_BATCH_RESULT__INIT;
	Raftmq__Client__V1__Delivery d = RAFTMQ__CLIENT__V1__DELIVERY__INIT;
	Raftmq__Client__V1__Delivery *ds[1] = {&d};
	Raftmq__Client__V1__FetchResult fr =
		RAFTMQ__CLIENT__V1__FETCH_RESULT__INIT;
	Raftmq__Client__V1__TagsResult tr =
		RAFTMQ__CLIENT__V1__TAGS_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	(void)conn_no;
	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(QUEUE_INFO):
		qs._ack_timeout_ms_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___ACK_TIMEOUT_MS_ACK_TIMEOUT_MS;
		qs.ack_timeout_ms = 30000;
		qs._dead_letter_queue_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
		qs.dead_letter_queue = "dlq";
		st.name = req->queue_info->name;
		st.settings = &qs;
		st.ready = 3;
		st.rejected = 9;
		qi.queue = &st;
		env.body_case = RMQ_BODY(QUEUE_INFO_RESULT);
		env.queue_info_result = &qi;
		break;
	case RMQ_BODY(CLUSTER_STATUS):
		n1.id = 1;
		n1.raft_address = "127.0.0.1:7101";
		n1.client_address = "127.0.0.1:7001";
		n1.role = RAFTMQ__CLIENT__V1__NODE_ROLE__NODE_ROLE_VOTER;
		n1.reachable = 1;
		cs.leader_id = 1;
		cs.term = 4;
		cs.commit_index = 99;
		cs.n_nodes = 1;
		cs.nodes = nodes;
		env.body_case = RMQ_BODY(CLUSTER_STATUS_RESULT);
		env.cluster_status_result = &cs;
		break;
	case RMQ_BODY(PUBLISH_BATCH):
		cr_assert_eq(req->publish_batch->n_items, 2);
		cr_assert_gt(req->publish_batch->items[0]->msg_id.len, 0);
		it[0].seq = 10;
		it[1].code = RMQ_ERR(QUEUE_FULL);
		it[1].message = "full";
		br.n_results = 2;
		br.results = its;
		env.body_case = RMQ_BODY(PUBLISH_BATCH_RESULT);
		env.publish_batch_result = &br;
		break;
	case RMQ_BODY(FETCH):
		cr_assert_str_eq(req->fetch->queue, "q");
		d.consumer_id = 77;
		d.queue = "q";
		d.tag = 12;
		d.body.data = (uint8_t *)"pulled";
		d.body.len = 6;
		fr.consumer_id = 77;
		fr.n_deliveries = 1;
		fr.deliveries = ds;
		env.body_case = RMQ_BODY(FETCH_RESULT);
		env.fetch_result = &fr;
		break;
	case RMQ_BODY(NACK):
		cr_assert_eq(req->nack->consumer_id, 77);
		cr_assert_eq(req->nack->delay_ms, 500);
		tr.done = 1;
		env.body_case = RMQ_BODY(NACK_RESULT);
		env.nack_result = &tr;
		break;
	case RMQ_BODY(CANCEL):
		/* The goodbye cancels the pull consumer too. */
		cr_assert_eq(req->cancel->consumer_id, 77);
		return cancel_ok(fd, req);
	default:
		cr_assert_fail("unexpected request %d", (int)req->body_case);
	}
	fake_send(fd, req->correlation_id, &env);
	return true;
}

Test(client_conn, admin_round_trips)
{
	struct raftmq_message batch[2] = {msg_q, msg_q};
	struct raftmq_cluster_status cs;
	struct raftmq_queue_status *st;
	struct raftmq_confirm res[2];
	struct raftmq_tags_result tr;
	struct raftmq_delivery *ds;
	struct raftmq *c;
	size_t n;

	fake_start(&fa, admin_server, 1);
	c = connect_to(fa.addr, 0, 2000);
	cr_assert_eq(raftmq_queue_info(c, "orders", &st), 0);
	cr_assert_str_eq(st->name, "orders");
	cr_assert_eq(st->settings.has,
		     RAFTMQ_HAS_ACK_TIMEOUT | RAFTMQ_HAS_DEAD_LETTER_QUEUE);
	cr_assert_str_eq(st->settings.dead_letter_queue, "dlq");
	cr_assert_eq(st->ready, 3);
	cr_assert_eq(st->rejected, 9);
	raftmq_queue_status_free(st, 1);
	cr_assert_eq(raftmq_cluster_status(c, &cs), 0);
	cr_assert_eq(cs.term, 4);
	cr_assert_eq(cs.n_nodes, 1);
	cr_assert_str_eq(cs.nodes[0].client_address, "127.0.0.1:7001");
	cr_assert_str_eq(raftmq_role_name(cs.nodes[0].role), "voter");
	cr_assert(cs.nodes[0].reachable);
	raftmq_cluster_status_free(&cs);
	cr_assert_eq(raftmq_publish_batch(c, batch, 2, res), 0);
	cr_assert_eq(res[0].err, 0);
	cr_assert_eq(res[0].seq, 10);
	cr_assert_eq(res[1].err, RAFTMQ_EFULL);
	cr_assert_str_eq(res[1].message, "full");
	cr_assert_eq(raftmq_fetch(c, "q", 5, 0, &ds, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(ds[0].body, "pulled");
	cr_assert_eq(raftmq_nack(c, ds[0].consumer_id, &ds[0].tag, 1, 500, &tr),
		     0, "%s", raftmq_errmsg(c));
	cr_assert_eq(tr.done, 1);
	raftmq_deliveries_free(ds, n);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- leaving: raftmq_cancel() and raftmq_close() name the deliveries
 * the application never got (Cancel.unseen_tags), so that the server does
 * not count them; close waits for the answers, but not for ever. */

struct bye {
	int cancels;
	uint64_t consumer;
	uint64_t unseen[16];
	size_t n_unseen;
	bool answer; /* false: a server that never answers a Cancel */
};

static bool bye_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__ConsumeResult cr =
		RAFTMQ__CLIENT__V1__CONSUME_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	struct bye *b = f->data;
	uint64_t i;

	(void)conn_no;
	switch (req->body_case) {
	case RMQ_BODY(HELLO):
		return hello(f, fd, req, f->node_id, "");
	case RMQ_BODY(CONSUME):
		cr.consumer_id = 4;
		env.body_case = RMQ_BODY(CONSUME_RESULT);
		env.consume_result = &cr;
		fake_send(fd, req->correlation_id, &env);
		for (i = 1; i <= 5; i++) {
			fake_delivery(fd, req->correlation_id, 4, "jobs", i,
				      "work", 1);
		}
		return true;
	case RMQ_BODY(CANCEL):
		b->cancels++;
		b->consumer = req->cancel->consumer_id;
		b->n_unseen = req->cancel->n_unseen_tags;
		cr_assert_leq(b->n_unseen, 16);
		memcpy(b->unseen, req->cancel->unseen_tags,
		       b->n_unseen * sizeof(uint64_t));
		if (!b->answer) {
			return true;
		}
		nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000},
			  NULL); /* a slow commit */
		return cancel_ok(fd, req);
	default:
		cr_assert_fail("unexpected request %d", (int)req->body_case);
		return false;
	}
}

/* Starts bye_server with *b and takes one delivery (tag 1) of the five it
 * pushes. */
static struct raftmq *bye_client(struct bye *b, struct raftmq_consumer **k,
				 unsigned tmo)
{
	struct raftmq_delivery d;
	struct raftmq *c;

	fake_start(&fa, bye_server, 1);
	fa.data = b; /* after fake_start, which clears fa */
	c = connect_to(fa.addr, 0, tmo);
	cr_assert_eq(raftmq_consume(c, "jobs", 10, k), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(raftmq_next(c, *k, 2000, &d), 0, "%s", raftmq_errmsg(c));
	cr_assert_eq(d.tag, 1);
	raftmq_delivery_free(&d);
	return c;
}

/* The one Cancel named the four deliveries never returned by next. */
static void bye_check_and_stop(struct bye *b)
{
	pthread_mutex_lock(&fa.mu);
	cr_assert_eq(b->cancels, 1);
	cr_assert_eq(b->consumer, 4);
	cr_assert_eq(b->n_unseen, 4, "unseen: %zu", b->n_unseen);
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(b->unseen[i], i + 2);
	}
	pthread_mutex_unlock(&fa.mu);
	fake_stop(&fa);
	fa.data = NULL;
}

Test(client_conn, cancel_names_the_unseen_deliveries)
{
	struct bye b = {.answer = true};
	struct raftmq_consumer *k;
	struct raftmq *c = bye_client(&b, &k, 2000);

	cr_assert_eq(raftmq_cancel(c, k), 0, "%s", raftmq_errmsg(c));
	raftmq_close(c); /* no consumer left: nothing more to cancel */
	bye_check_and_stop(&b);
}

Test(client_conn, close_says_goodbye_and_waits_for_it)
{
	struct bye b = {.answer = true};
	struct raftmq_consumer *k;
	struct raftmq *c = bye_client(&b, &k, 2000);
	uint64_t t0 = rmq__now_ms();

	raftmq_close(c);
	cr_assert_geq(rmq__now_ms() - t0, 100, "close did not wait");
	bye_check_and_stop(&b);
}

Test(client_conn, close_does_not_wait_for_ever)
{
	struct bye b = {.answer = false};
	struct raftmq_consumer *k;
	struct raftmq *c = bye_client(&b, &k, 300);
	uint64_t t0 = rmq__now_ms();

	raftmq_close(c);
	cr_assert_lt(rmq__now_ms() - t0, 1500, "close took %llu ms",
		     (unsigned long long)(rmq__now_ms() - t0));
	bye_check_and_stop(&b);
}

/* ---- peek: a version-2 frame, the answer mapped field by field. */

static bool peek_server(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__Delivery d[2] = {
		RAFTMQ__CLIENT__V1__DELIVERY__INIT,
		RAFTMQ__CLIENT__V1__DELIVERY__INIT};
	Raftmq__Client__V1__PeekedMessage pm[2] = {
		RAFTMQ__CLIENT__V1__PEEKED_MESSAGE__INIT,
		RAFTMQ__CLIENT__V1__PEEKED_MESSAGE__INIT};
	Raftmq__Client__V1__PeekedMessage *pms[2] = {&pm[0], &pm[1]};
	Raftmq__Client__V1__PeekResult r =
		RAFTMQ__CLIENT__V1__PEEK_RESULT__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	(void)conn_no;
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, f->node_id, "");
	}
	cr_assert_eq(req->body_case, RMQ_BODY(PEEK));
	cr_assert_eq(req->version, 2, "Peek is a version-2 request");
	cr_assert_str_eq(req->peek->queue, "q");
	cr_assert_eq(req->peek->from_seq, 7);
	cr_assert_eq(req->peek->max_messages, 2);
	cr_assert(req->peek->include_held);
	cr_assert_not(req->peek->include_delayed);
	d[0].queue = d[1].queue = "q";
	d[0].tag = 7;
	d[0].body.data = (uint8_t *)"seven";
	d[0].body.len = 5;
	d[1].tag = 9;
	d[1].consumer_id = 3;
	d[1].delivery_count = 1;
	d[1].redelivered = true;
	d[1].body.data = (uint8_t *)"nine";
	d[1].body.len = 4;
	pm[0].message = &d[0];
	pm[1].message = &d[1];
	pm[1].state = RAFTMQ__CLIENT__V1__MESSAGE_STATE__MESSAGE_STATE_HELD;
	pm[1].due_ms = 1234;
	r.n_messages = 2;
	r.messages = pms;
	r.next_seq = 10;
	env.body_case = RMQ_BODY(PEEK_RESULT);
	env.peek_result = &r;
	fake_send(fd, req->correlation_id, &env);
	return true;
}

Test(client_conn, peek_round_trip)
{
	struct raftmq_peeked *p;
	struct raftmq *c;
	uint64_t next;
	size_t n;

	fake_start(&fa, peek_server, 1);
	c = connect_to(fa.addr, 0, 2000);
	cr_assert_eq(raftmq_peek(c, "q", 7, 2, RAFTMQ_PEEK_HELD, &p, &n, &next),
		     0, "%s", raftmq_errmsg(c));
	cr_assert_eq(n, 2);
	cr_assert_eq(next, 10);
	cr_assert_eq(p[0].m.tag, 7);
	cr_assert_str_eq(p[0].m.body, "seven");
	cr_assert_eq(p[0].state, RAFTMQ_MSG_READY);
	cr_assert_eq(p[0].m.delivery_count, 0);
	cr_assert_eq(p[1].state, RAFTMQ_MSG_HELD);
	cr_assert_eq(p[1].m.consumer_id, 3);
	cr_assert_eq(p[1].due_ms, 1234);
	cr_assert(p[1].m.redelivered);
	raftmq_peeked_free(p, n);
	cr_assert_eq(raftmq_peek(c, "", 0, 1, 0, &p, &n, NULL), RAFTMQ_EINVAL);
	raftmq_close(c);
	fake_stop(&fa);
}

/* ---- stay and FetchBodies: A is a follower naming B as the leader. With
 * `stay` the client keeps to A: FetchBodies (a version-3 frame) is answered
 * there, a Publish fails with NOT_LEADER instead of following it, and B
 * never sees a connection. */

static bool bodies_follower(struct fake *f, int fd, int conn_no, rmq_env *req)
{
	Raftmq__Client__V1__FetchBodiesResult r =
		RAFTMQ__CLIENT__V1__FETCH_BODIES_RESULT__INIT;
	Raftmq__Client__V1__BodyRecord rec[2], *recs[2];
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;

	(void)conn_no;
	if (req->body_case == RMQ_BODY(HELLO)) {
		return hello(f, fd, req, 2, fb.addr);
	}
	if (req->body_case == RMQ_BODY(PUBLISH)) {
		fake_error(fd, req->correlation_id, RMQ_ERR(NOT_LEADER),
			   "node 1 is not the leader", fb.addr);
		return true;
	}
	cr_assert_eq(req->body_case, RMQ_BODY(FETCH_BODIES));
	cr_assert_eq(req->version, 3, "FetchBodies is a version-3 frame");
	cr_assert_eq(req->fetch_bodies->n_keys, 3);
	cr_assert_eq(req->fetch_bodies->keys[2], 9);
	cr_assert_eq(req->fetch_bodies->max_bytes, 1000);
	raftmq__client__v1__body_record__init(&rec[0]);
	rec[0].key = 5;
	rec[0].msg_id.data = (uint8_t *)"id5";
	rec[0].msg_id.len = 3;
	rec[0].body.data = (uint8_t *)"five!";
	rec[0].body.len = 5;
	rec[0].sum = 0xdeadbeef;
	raftmq__client__v1__body_record__init(&rec[1]); /* no id, empty */
	rec[1].key = 9;
	rec[1].sum = 7;
	recs[0] = &rec[0];
	recs[1] = &rec[1];
	r.n_records = 2;
	r.records = recs;
	env.body_case = RMQ_BODY(FETCH_BODIES_RESULT);
	env.fetch_bodies_result = &r;
	fake_send(fd, req->correlation_id, &env);
	return true;
}

Test(client_conn, stay_and_fetch_bodies)
{
	static const uint64_t keys[] = {5, 6, 9};
	struct raftmq_options o = {0};
	struct raftmq_body *b;
	struct raftmq *c = NULL;
	char err[256];
	size_t n;

	fake_start(&fb, leader_b, 2);
	fake_start(&fa, bodies_follower, 1);
	o.client_name = "t_client";
	o.request_timeout_ms = 2000;
	o.connect_timeout_ms = 500;
	o.stay = true;
	cr_assert_eq(raftmq_connect(fa.addr, &o, &c, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(raftmq_node_id(c), 1, "stayed on the follower");
	cr_assert_eq(raftmq_fetch_bodies(c, keys, 3, 1000, &b, &n), 0, "%s",
		     raftmq_errmsg(c));
	cr_assert_eq(n, 2);
	cr_assert_eq(b[0].key, 5);
	cr_assert_eq(b[0].msg_id_len, 3);
	cr_assert_str_eq(b[0].msg_id, "id5"); /* NUL-terminated copies */
	cr_assert_eq(b[0].body_len, 5);
	cr_assert_str_eq(b[0].body, "five!");
	cr_assert_eq(b[0].sum, 0xdeadbeef);
	cr_assert_eq(b[1].key, 9);
	cr_assert_eq(b[1].msg_id_len, 0);
	cr_assert_eq(b[1].body_len, 0);
	cr_assert_str_eq(b[1].body, "");
	cr_assert_eq(b[1].sum, 7);
	raftmq_bodies_free(b, n);
	cr_assert_eq(raftmq_fetch_bodies(c, keys, 0, 0, &b, &n), RAFTMQ_EINVAL);
	cr_assert_null(b);
	cr_assert_eq(raftmq_publish(c, &msg_q, NULL, NULL), RAFTMQ_ENOTLEADER);
	cr_assert_eq(raftmq_node_id(c), 1);
	raftmq_close(c);
	pthread_mutex_lock(&fb.mu);
	cr_assert_eq(fb.n_conns, 0, "the leader was never dialled");
	pthread_mutex_unlock(&fb.mu);
	fake_stop(&fa);
	fake_stop(&fb);
}
