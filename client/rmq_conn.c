/*
 * The connection engine: connecting and failover, sending frames, and the
 * read loop that dispatches every incoming frame by correlation id.
 *
 * Happy path: raftmq_connect() picks an address, sends Hello and follows the
 * leader named in HelloResult. Each blocking call registers one struct
 * rmq_call and runs rmq__pump() until its response arrives; meanwhile the
 * pump also routes publish confirmations (rmq_publish.c) and consumer pushes
 * (rmq_consume.c) that arrive on the same socket.
 *
 * Failure modes. Nothing is resent from inside the dispatch of a frame:
 * handlers only mark state (`sent = false`, `retry_at`, conn->broken, a
 * leader hint), and the next rmq__pump() acts on it. So a NOT_LEADER answer,
 * an UNAVAILABLE answer, a read/write error or EOF all funnel into
 * reconnect(), which closes the socket, tries the leader hint and then the
 * configured addresses round robin with backoff until the caller's deadline,
 * and finally marks every outstanding request for resending on the new
 * connection (or fails the ones whose replay is not safe, see enum
 * rmq_replay). Publishes keep their msg_id throughout, so resends are
 * deduplicated by the broker.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rmq_int.h"
#include "rmq_tls.h"

#define READ_CHUNK 65536
/* Frames queued with rmq__queue are written once this many bytes wait, or
 * before the next wait for input: one send() for a window of publishes. */
#define WRITE_BATCH 65536

uint64_t rmq__corr(struct raftmq *conn)
{
	return conn->next_corr++;
}

/* Backoff before attempt number `n` (1-based): 10 ms doubling to 200 ms,
 * plus up to a quarter of jitter so clients do not reconnect in lockstep.
 * The cap is what a client adds to a failover at worst (a new leader is
 * elected in about 0.1-0.3 s when the old one's process died), and 5
 * attempts a second is no load for a node that answers UNAVAILABLE. */
#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 200

uint64_t rmq__backoff_ms(struct raftmq *conn, unsigned n)
{
	uint64_t base = BACKOFF_FIRST_MS;
	unsigned i;

	for (i = 1; i < n && base < BACKOFF_MAX_MS; i++) {
		base *= 2;
	}
	if (base > BACKOFF_MAX_MS) {
		base = BACKOFF_MAX_MS;
	}
	conn->rng ^= conn->rng << 13;
	conn->rng ^= conn->rng >> 7;
	conn->rng ^= conn->rng << 17;
	return base + conn->rng % (base / 4 + 1);
}

/* ------------------------------------------------- which nodes answer */

static struct rmq_seen *seen_of(struct raftmq *conn, const char *host,
				const char *port)
{
	size_t i;
	for (i = 0; conn->seen != NULL && i < conn->n_addrs; i++) {
		if (strcmp(conn->addrs[i].host, host) == 0 &&
		    strcmp(conn->addrs[i].port, port) == 0) {
			return &conn->seen[i];
		}
	}
	return NULL; /* a leader hint outside the configured list */
}

static void seen_reset(struct raftmq *conn)
{
	if (conn->seen != NULL) {
		memset(conn->seen, 0, conn->n_addrs * sizeof(*conn->seen));
	}
	conn->no_leader[0] = '\0';
}

/* Records an attempt on host:port: the node that answered, or why not
 * (`why` may start with "host:port: ", which is dropped). */
static void seen_set(struct raftmq *conn, const char *host, const char *port,
		     uint64_t node_id, const char *why)
{
	struct rmq_seen *s = seen_of(conn, host, port);
	size_t hl = strlen(host), pl = strlen(port);
	if (s == NULL) {
		return;
	}
	s->node_id = node_id;
	if (why == NULL) {
		s->why[0] = '\0';
		return;
	}
	if (strncmp(why, host, hl) == 0 && why[hl] == ':' &&
	    strncmp(why + hl + 1, port, pl) == 0 &&
	    strncmp(why + hl + 1 + pl, ": ", 2) == 0) {
		why += hl + 3 + pl;
	}
	snprintf(s->why, sizeof(s->why), "%s", why);
	/* strerror's "Connection refused" reads better inside a sentence
	 * as "connection refused". */
	if (s->why[0] >= 'A' && s->why[0] <= 'Z' && s->why[1] >= 'a' &&
	    s->why[1] <= 'z') {
		s->why[0] = (char)(s->why[0] - 'A' + 'a');
	}
}

/* Appends to buf (at *n) "sep host:port (why)" for every address that
 * failed, or "sep node N (host:port)" for every one that answered. */
static size_t seen_list(const struct raftmq *conn, bool answered, char *buf,
			size_t len, size_t n)
{
	size_t i, k = 0;
	for (i = 0; conn->seen != NULL && i < conn->n_addrs && n < len; i++) {
		const struct rmq_seen *s = &conn->seen[i];
		const struct rmq_addr *a = &conn->addrs[i];
		if (answered && s->node_id != 0) {
			n += (size_t)snprintf(
				buf + n, len - n, "%snode %llu (%s:%s)",
				k++ ? ", " : "", (unsigned long long)s->node_id,
				a->host, a->port);
		} else if (!answered && s->node_id == 0 && s->why[0] != '\0') {
			n += (size_t)snprintf(buf + n, len - n, "%s%s:%s (%s)",
					      k++ ? ", " : "", a->host, a->port,
					      s->why);
		}
	}
	if (k == 0 && n < len) {
		n += (size_t)snprintf(buf + n, len - n, "none");
	}
	return n < len ? n : len;
}

/*
 * The sentence for a call that reached no leader before its deadline. When
 * no node answered: every address tried and why ("no node of the cluster
 * answers: 10.0.0.1:7001 (connection refused), ..."). When some answered
 * but knew no leader: the node's own words (it says how many voters a
 * leader needs) and which nodes answer and which do not. Returns `code`.
 */
static int fail_no_leader(struct raftmq *conn, int code)
{
	char msg[sizeof(conn->errmsg)];
	size_t n = 0, len = sizeof(msg);
	bool any = false;
	size_t i;
	for (i = 0; conn->seen != NULL && i < conn->n_addrs; i++) {
		any |= conn->seen[i].node_id != 0;
	}
	if (!any) {
		bool failed = false;
		for (i = 0; conn->seen != NULL && i < conn->n_addrs; i++) {
			failed |= conn->seen[i].why[0] != '\0';
		}
		if (!failed) {
			/* Only addresses outside the list were tried. */
			return rmq__fail(conn, code,
					 "no node of the cluster reachable "
					 "(last: %s)",
					 conn->last_failure);
		}
		n = (size_t)snprintf(msg, len,
				     "no node of the cluster answers: ");
		seen_list(conn, false, msg, len, n);
		return rmq__fail(conn, code, "%s", msg);
	}
	n = (size_t)snprintf(msg, len, "%s; answering: ",
			     conn->no_leader[0] != '\0'
				     ? conn->no_leader
				     : "no leader answered in time");
	n = seen_list(conn, true, msg, len, n < len ? n : len);
	if (n < len) {
		n += (size_t)snprintf(msg + n, len - n, "; not answering: ");
	}
	seen_list(conn, false, msg, len, n < len ? n : len);
	return rmq__fail(conn, code, "%s", msg);
}

static void set_hint(struct raftmq *conn, const char *address)
{
	free(conn->hint.host);
	free(conn->hint.port);
	conn->hint.host = NULL;
	conn->hint.port = NULL;
	if (address != NULL && address[0] != '\0') {
		/* A bad address only loses the hint. */
		(void)rmq__addr_parse(address, strlen(address), &conn->hint);
	}
}

enum rmq_action rmq__classify(struct raftmq *conn,
			      const Raftmq__Client__V1__Error *e,
			      bool retry_outcome)
{
	switch ((int)e->code) {
	case RMQ_ERR(NOT_LEADER):
	case RMQ_ERR(UNAVAILABLE):
		if ((int)e->code == RMQ_ERR(NOT_LEADER) && conn->stay) {
			/* Asked to talk to this node only. */
			rmq__server_error(conn, e);
			return RMQ_ACT_FAIL;
		}
		/* Keep the sentence: it explains a later timeout. */
		rmq__server_error(conn, e);
		if ((int)e->code == RMQ_ERR(UNAVAILABLE) &&
		    e->message != NULL) {
			snprintf(conn->no_leader, sizeof(conn->no_leader), "%s",
				 e->message);
		}
		set_hint(conn, e->leader_client_address);
		conn->broken = true;
		/* Counted so that stale hints bouncing between followers
		 * back off too; any success resets it. */
		conn->failures++;
		return RMQ_ACT_FAILOVER;
	case RMQ_ERR(TIMEOUT):
	case RMQ_ERR(UNKNOWN_OUTCOME):
		if (retry_outcome) {
			rmq__server_error(conn, e);
			return RMQ_ACT_RETRY;
		}
		return RMQ_ACT_FAIL;
	default:
		return RMQ_ACT_FAIL;
	}
}

static void close_fd(struct raftmq *conn)
{
	if (conn->fd >= 0) {
		rmq__tls_close(conn);
		close(conn->fd);
		conn->fd = -1;
	}
	rmq__frame_reader_reset(&conn->rd);
	conn->wbuf.len = 0; /* queued frames are replayed, not written */
	conn->node_id = 0;
}

/* Marks the connection for a reconnect; errmsg says why. */
static void broken(struct raftmq *conn, const char *what, const char *detail)
{
	if (!conn->broken) {
		rmq__fail(conn, RAFTMQ_ECONNECT, "connection lost: %s%s", what,
			  detail);
	}
	conn->broken = true;
}

/* Reads what is available (at most one chunk). Returns the byte count, 0 on
 * EOF, -1 on error or nothing to read (errno says which). */
static ssize_t read_chunk(struct raftmq *conn)
{
	uint8_t *p;
	size_t avail;
	ssize_t n;

	if (rmq__frame_reader_space(&conn->rd, READ_CHUNK, &p, &avail) != 0) {
		errno = ENOMEM;
		return -1;
	}
	do {
		n = rmq__net_recv(conn, p, avail);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		rmq__frame_reader_commit(&conn->rd, (size_t)n);
	}
	return n;
}

/* Writes all of wbuf, reading (not dispatching) meanwhile so that a server
 * blocked on writing to us cannot deadlock with us. */
static int write_all(struct raftmq *conn)
{
	uint64_t deadline = rmq__deadline(conn->request_timeout_ms);
	size_t off = 0;
	ssize_t n;

	while (off < conn->wbuf.len) {
		struct pollfd pfd = {.fd = conn->fd,
				     .events = POLLOUT | POLLIN};
		int rv;

		n = rmq__net_send(conn, conn->wbuf.data + off,
				  conn->wbuf.len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			broken(conn, "send: ", strerror(errno));
			return -1;
		}
		rv = poll(&pfd, 1, rmq__poll_timeout(deadline));
		if (rv < 0 && errno == EINTR) {
			continue;
		}
		if (rv <= 0) {
			broken(conn, "",
			       rv == 0 ? "server not reading"
				       : strerror(errno));
			return -1;
		}
		if (pfd.revents & POLLIN) {
			n = read_chunk(conn);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				broken(conn, "",
				       n == 0 ? "closed by the server"
					      : strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

int rmq__queue(struct raftmq *conn, rmq_env *env, uint64_t corr)
{
	size_t before;
	int rv;

	env->version = RMQ_FRAME_VERSION(env->body_case);
	env->correlation_id = corr;
	if (conn->fd < 0 || conn->broken) {
		return 0; /* replayed after the reconnect */
	}
	before = conn->wbuf.len;
	rv = rmq__frame_encode(env, conn->server_max_frame, &conn->wbuf);
	if (rv == RAFTMQ_EFRAME_TOO_LARGE) {
		return rmq__fail(
			conn, rv,
			"request of %zu bytes over the server's "
			"frame limit of %zu bytes",
			raftmq__client__v1__envelope__get_packed_size(env),
			conn->server_max_frame);
	}
	if (rv != 0) {
		conn->wbuf.len = before;
		return rmq__fail(conn, rv, "out of memory");
	}
	if (conn->wbuf.len >= WRITE_BATCH) {
		rmq__flush(conn);
	}
	return 0;
}

void rmq__flush(struct raftmq *conn)
{
	if (conn->wbuf.len == 0) {
		return;
	}
	if (conn->fd >= 0 && !conn->broken) {
		(void)write_all(conn);
	}
	conn->wbuf.len = 0;
}

int rmq__send(struct raftmq *conn, rmq_env *env, uint64_t corr)
{
	int rv = rmq__queue(conn, env, corr);

	rmq__flush(conn);
	return rv;
}

static void on_call_response(struct raftmq *conn, struct rmq_call *call,
			     rmq_env *env)
{
	if (env->body_case == RMQ_BODY(ERROR)) {
		switch (rmq__classify(conn, env->error, call->retry_outcome)) {
		case RMQ_ACT_FAILOVER:
			call->sent = false;
			call->retry_at = 0;
			break;
		case RMQ_ACT_RETRY:
			call->sent = false;
			call->attempts++;
			call->retry_at = rmq__now_ms() +
					 rmq__backoff_ms(conn, call->attempts);
			break;
		case RMQ_ACT_FAIL:
			call->done = true;
			call->rv = rmq__server_error(conn, env->error);
			break;
		}
		rmq__env_free(env);
		return;
	}
	conn->failures = 0;
	call->done = true;
	call->rv = 0;
	call->resp = env;
}

/* Routes one decoded frame (always transferred). */
static void dispatch(struct raftmq *conn, rmq_env *env)
{
	uint64_t corr = env->correlation_id;
	struct rmq_call *call = conn->call;
	struct raftmq_consumer *c;
	struct rmq_pub *p;

	if (env->body_case == RMQ_BODY(ERROR) && corr == 0) {
		/* About the connection (bad frame, shutdown): it closes. */
		rmq__server_error(conn, env->error);
		conn->broken = true;
		rmq__env_free(env);
		return;
	}
	if (call != NULL && call->sent && !call->done && call->corr == corr) {
		on_call_response(conn, call, env);
		return;
	}
	for (p = conn->pubs; p != NULL; p = p->next) {
		if (p->sent && p->corr == corr) {
			rmq__pubs_on_response(conn, p, env);
			return;
		}
	}
	for (c = conn->consumers; c != NULL; c = c->next) {
		if (c->corr == corr) {
			rmq__consumer_on_frame(conn, c, env);
			return;
		}
	}
	if (conn->n_ack_corrs > 0 && rmq__acks_on_frame(conn, env)) {
		return;
	}
	if (corr >= conn->bye_lo && corr < conn->bye_hi) {
		/* A goodbye Cancel answered (or refused: all the same). */
		conn->bye_left--;
		rmq__env_free(env);
		return;
	}
	/* A late answer to an abandoned request, or an unknown push. */
	rmq__env_free(env);
}

/* Cuts and dispatches every complete frame in the read buffer. */
static void dispatch_frames(struct raftmq *conn)
{
	const uint8_t *frame;
	rmq_env *env;
	size_t len;
	bool ready;
	int rv;

	while (conn->fd >= 0) {
		rv = rmq__frame_next(&conn->rd, &frame, &len, &ready);
		if (rv != 0) {
			rmq__fail(conn, RAFTMQ_EPROTO,
				  "server sent a frame over %zu bytes",
				  conn->rd.max_frame);
			conn->broken = true;
			close_fd(conn);
			return;
		}
		if (!ready) {
			return;
		}
		rv = rmq__frame_decode(frame, len, &env);
		if (rv != 0) {
			rmq__fail(conn, RAFTMQ_EPROTO,
				  "server sent an undecodable frame");
			conn->broken = true;
			close_fd(conn);
			return;
		}
		dispatch(conn, env);
	}
}

/* Waits up to timeout_ms for input, reads it and dispatches it. */
static void read_some(struct raftmq *conn, int timeout_ms)
{
	struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};
	ssize_t n;
	int rv;

	/* What was queued goes out before we wait for its answers. */
	rmq__flush(conn);
	/* Frames read while writing may already be waiting. */
	dispatch_frames(conn);
	if (conn->fd < 0 || conn->broken) {
		return;
	}
	rv = poll(&pfd, 1, timeout_ms);
	if (rv <= 0) {
		return; /* timeout or EINTR: the caller loops */
	}
	n = read_chunk(conn);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		return;
	}
	/* Complete frames before an EOF are still valid answers. */
	dispatch_frames(conn);
	if (n == 0) {
		broken(conn, "", "closed by the server");
	} else if (n < 0) {
		broken(conn, "recv: ", strerror(errno));
	}
}

void rmq__read_ready(struct raftmq *conn)
{
	int i;

	/* A chunk at a time while more is waiting, with a bound: what the
	 * server had sent is bounded by its output limit anyway. */
	for (i = 0; i < 64 && conn->fd >= 0 && !conn->broken; i++) {
		struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};

		if (poll(&pfd, 1, 0) <= 0) {
			break;
		}
		read_some(conn, 0);
	}
}

/* Waits for the Hello answer on a fresh connection. Returns 0, or a fatal
 * code (*fatal set) or RAFTMQ_ECONNECT. */
static int await_hello(struct raftmq *conn, uint64_t corr, uint64_t deadline,
		       bool *fatal, char **leader_addr)
{
	const uint8_t *frame;
	rmq_env *env;
	size_t len;
	bool ready;
	ssize_t n;
	int rv;

	for (;;) {
		struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};

		rv = rmq__frame_next(&conn->rd, &frame, &len, &ready);
		if (rv != 0) {
			return rmq__fail(conn, RAFTMQ_ECONNECT,
					 "Hello: oversized frame");
		}
		if (ready) {
			if (rmq__frame_decode(frame, len, &env) != 0) {
				return rmq__fail(conn, RAFTMQ_ECONNECT,
						 "Hello: undecodable answer");
			}
			if (env->correlation_id != corr &&
			    env->correlation_id != 0) {
				rmq__env_free(env);
				continue;
			}
			break;
		}
		rv = poll(&pfd, 1, rmq__poll_timeout(deadline));
		if (rv == 0) {
			return rmq__fail(conn, RAFTMQ_ECONNECT,
					 "Hello: no answer in time");
		}
		if (rv < 0) {
			continue;
		}
		n = read_chunk(conn);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			return rmq__fail(conn, RAFTMQ_ECONNECT,
					 "Hello: connection closed");
		}
	}
	if (env->body_case == RMQ_BODY(ERROR)) {
		int code = (int)env->error->code;

		rv = rmq__server_error(conn, env->error);
		*fatal = code == RMQ_ERR(UNAUTHENTICATED) ||
			 code == RMQ_ERR(UNSUPPORTED_VERSION) ||
			 code == RMQ_ERR(PERMISSION_DENIED);
		rmq__env_free(env);
		return *fatal ? rv : RAFTMQ_ECONNECT;
	}
	if (env->body_case != RMQ_BODY(HELLO_RESULT)) {
		rmq__env_free(env);
		return rmq__fail(conn, RAFTMQ_ECONNECT,
				 "Hello: unexpected answer");
	}
	conn->node_id = env->hello_result->node_id;
	conn->leader_id = env->hello_result->leader_id;
	conn->server_max_frame = RMQ_DEFAULT_MAX_FRAME;
	if (env->hello_result->max_frame_bytes > 0 &&
	    env->hello_result->max_frame_bytes < SIZE_MAX) {
		conn->server_max_frame =
			(size_t)env->hello_result->max_frame_bytes;
	}
	*leader_addr = NULL;
	if (env->hello_result->leader_client_address[0] != '\0') {
		*leader_addr = strdup(env->hello_result->leader_client_address);
	}
	rmq__env_free(env);
	return 0;
}

/* Connects to host:port and says Hello. */
static int connect_hello(struct raftmq *conn, const char *host,
			 const char *port, bool *fatal, char **leader_addr)
{
	Raftmq__Client__V1__Hello hello = RAFTMQ__CLIENT__V1__HELLO__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	uint64_t hello_deadline;
	char err[200];
	uint64_t corr;
	unsigned tmo;
	int rv;

	*fatal = false;
	*leader_addr = NULL;
	tmo = conn->connect_timeout_ms;
	rv = rmq__net_connect(host, port, tmo, &conn->fd, err, sizeof(err));
	if (rv != 0) {
		seen_set(conn, host, port, 0, err);
		return rmq__fail(conn, rv, "%s", err);
	}
	rv = rmq__tls_start(conn, host, rmq__deadline(tmo), fatal, err,
			    sizeof(err));
	if (rv != 0) {
		seen_set(conn, host, port, 0, err);
		close_fd(conn);
		return rmq__fail(conn, rv, "%s:%s: %s", host, port, err);
	}
	conn->server_max_frame = RMQ_DEFAULT_MAX_FRAME;
	hello.client_name = conn->client_name;
	hello.protocol_version = RMQ_PROTOCOL_VERSION;
	hello.auth_token = conn->auth_token;
	env.body_case = RMQ_BODY(HELLO);
	env.hello = &hello;
	corr = rmq__corr(conn);
	conn->broken = false;
	rv = rmq__send(conn, &env, corr);
	if (rv != 0 || conn->broken) {
		conn->broken = false;
		close_fd(conn);
		return rv != 0 ? rv : RAFTMQ_ECONNECT;
	}
	hello_deadline = rmq__deadline(conn->connect_timeout_ms);
	rv = await_hello(conn, corr, hello_deadline, fatal, leader_addr);
	if (rv != 0) {
		char msg[sizeof(conn->errmsg)];

		memcpy(msg, conn->errmsg, sizeof(msg));
		seen_set(conn, host, port, 0, msg);
		rmq__fail(conn, rv, "%s:%s: %s", host, port, msg);
		close_fd(conn);
	} else {
		seen_set(conn, host, port, conn->node_id, NULL);
	}
	return rv;
}

/* Marks every outstanding request for replay on a fresh connection. */
static void replay_all(struct raftmq *conn)
{
	struct rmq_call *call = conn->call;
	struct raftmq_consumer *c;
	struct rmq_pub *p;

	if (call != NULL && !call->done) {
		if (call->replay == RMQ_REPLAY_STALE) {
			call->done = true;
			call->rv = rmq__fail(
				conn, RAFTMQ_ESTALE,
				"connection to the cluster changed; the "
				"consumer was re-attached and its delivery "
				"tags are void");
		} else if (call->sent && call->replay == RMQ_REPLAY_UNKNOWN) {
			call->done = true;
			call->rv =
				rmq__fail(conn, RAFTMQ_EUNKNOWN_OUTCOME,
					  "connection lost after sending the "
					  "request; it may or may not have "
					  "been applied");
		} else {
			call->sent = false;
			call->retry_at = 0;
		}
	}
	for (p = conn->pubs; p != NULL; p = p->next) {
		p->sent = false;
		p->retry_at = 0;
	}
	for (c = conn->consumers; c != NULL; c = c->next) {
		if (c->state == RMQ_CONSUMER_GONE) {
			continue;
		}
		rmq__dq_drop(conn, c);
		c->state = RMQ_CONSUMER_ATTACHING;
		c->id = 0;
		c->sent = false;
	}
	conn->n_pull = 0;
	rmq__acks_reset(conn);
}

/* Sets when the next connection attempt may start: at once for a fresh
 * leader hint (unless hints keep failing), else after the backoff for the
 * failures so far. */
static void schedule_attempt(struct raftmq *conn)
{
	bool to_hint = conn->hint.host != NULL;

	conn->attempt_at = rmq__now_ms();
	if (conn->failures > 0 && (!to_hint || conn->failures > 2)) {
		conn->attempt_at += rmq__backoff_ms(conn, conn->failures);
	}
}

/*
 * Drops the current connection and establishes a new one, preferring the
 * leader hint. Returns 0, RAFTMQ_ECONNECT once the deadline passed, or a
 * fatal Hello refusal (authentication, version).
 *
 * The backoff lives in the connection (conn->attempt_at), not in one call:
 * a caller with a short deadline (raftmq_next(conn, c, 100, ...)) that
 * returns ECONNECT and calls again continues the same schedule. Each
 * attempt runs to its end (connect_timeout_ms at most), even past the
 * caller's deadline: cutting the Hello wait to what is left of a short
 * deadline would make every attempt fail once the backoff is as long as
 * the deadline, and the connection would never come back.
 */
static int reconnect(struct raftmq *conn, uint64_t deadline)
{
	char *leader_addr = NULL;
	bool fatal;
	int rv;

	if (!conn->reconnecting || conn->fd >= 0) {
		bool was_connected = conn->fd >= 0;

		close_fd(conn);
		snprintf(conn->last_failure, sizeof(conn->last_failure), "%s",
			 conn->errmsg[0] != '\0' ? conn->errmsg
						 : "not connected");
		if (was_connected && conn->hint.host == NULL &&
		    conn->failures == 0) {
			/* Back off before hitting a node again. */
			conn->failures = 1;
		}
		conn->hops = 0;
		conn->reconnecting = true;
		schedule_attempt(conn);
	}
	conn->broken = false;
	for (;;) {
		struct rmq_addr a;
		uint64_t now = rmq__now_ms();

		if (conn->attempt_at > now) {
			uint64_t until = conn->attempt_at < deadline
						 ? conn->attempt_at
						 : deadline;

			if (until > now) {
				poll(NULL, 0, (int)(until - now));
			}
			if (conn->attempt_at > until) {
				return fail_no_leader(conn, RAFTMQ_ECONNECT);
			}
		}
		if (conn->hint.host != NULL) {
			a = conn->hint;
			conn->hint.host = NULL;
			conn->hint.port = NULL;
		} else {
			struct rmq_addr *src =
				&conn->addrs[conn->next_addr++ % conn->n_addrs];
			a.host = strdup(src->host);
			a.port = strdup(src->port);
			if (a.host == NULL || a.port == NULL) {
				free(a.host);
				free(a.port);
				return rmq__fail(conn, RAFTMQ_ENOMEM,
						 "out of memory");
			}
		}
		rv = connect_hello(conn, a.host, a.port, &fatal, &leader_addr);
		free(a.host);
		free(a.port);
		if (rv != 0) {
			if (fatal) {
				return rv;
			}
			memcpy(conn->last_failure, conn->errmsg,
			       sizeof(conn->last_failure));
			conn->failures++;
			schedule_attempt(conn);
			if (rmq__now_ms() >= deadline) {
				return fail_no_leader(conn, RAFTMQ_ECONNECT);
			}
			continue;
		}
		if (!conn->stay && conn->leader_id != 0 &&
		    conn->leader_id != conn->node_id && leader_addr != NULL &&
		    conn->hops < 3) {
			/* A follower: go to the leader it names. */
			set_hint(conn, leader_addr);
			free(leader_addr);
			close_fd(conn);
			conn->hops++;
			schedule_attempt(conn);
			continue;
		}
		free(leader_addr);
		break;
	}
	conn->reconnecting = false;
	replay_all(conn);
	return 0;
}

int rmq__pump(struct raftmq *conn, uint64_t deadline)
{
	struct rmq_call *call = conn->call;
	struct raftmq_consumer *c;
	uint64_t wake = deadline;
	uint64_t now;
	int rv;

	if (conn->fd < 0 || conn->broken) {
		return reconnect(conn, deadline);
	}
	now = rmq__now_ms();
	/* Send what waits for (re)sending. */
	if (call != NULL && !call->done && !call->sent) {
		if (call->retry_at <= now) {
			call->corr = rmq__corr(conn);
			call->sent = true;
			rv = rmq__send(conn, call->req, call->corr);
			if (rv != 0) {
				call->done = true;
				call->rv = rv;
				return 0;
			}
		} else if (call->retry_at < wake) {
			wake = call->retry_at;
		}
	}
	rmq__pubs_tick(conn, now, &wake);
	if (conn->n_ack_tags > 0 && rmq__acks_send(conn) != 0) {
		return rmq__fail(conn, RAFTMQ_ENOMEM, "out of memory");
	}
	for (c = conn->consumers; c != NULL && !conn->broken; c = c->next) {
		if (c->state != RMQ_CONSUMER_ATTACHING || c->sent) {
			continue;
		}
		if (c->retry_at > now) {
			wake = c->retry_at < wake ? c->retry_at : wake;
			continue;
		}
		(void)rmq__consumer_send(conn, c);
	}
	if (conn->broken) {
		return 0;
	}
	if (call != NULL && call->done) {
		return 0;
	}
	if (now >= deadline) {
		/* Still take what has already arrived (timeout 0 polls). */
		read_some(conn, 0);
		return RAFTMQ_ETIMEOUT;
	}
	read_some(conn, rmq__poll_timeout(wake));
	return 0;
}

int rmq__call(struct raftmq *conn, rmq_env *req, enum rmq_replay replay,
	      bool retry_outcome, uint64_t deadline, rmq_env **resp)
{
	struct rmq_call call;
	int rv;

	memset(&call, 0, sizeof(call));
	call.req = req;
	call.replay = replay;
	call.retry_outcome = retry_outcome;
	*resp = NULL;
	conn->errmsg[0] = '\0';
	conn->call = &call;
	seen_reset(conn);
	while (!call.done) {
		rv = rmq__pump(conn, deadline);
		if (rv != 0 && !call.done) {
			char why[sizeof(conn->errmsg)];

			conn->call = NULL;
			if (rv != RAFTMQ_ETIMEOUT) {
				return rv;
			}
			if (conn->no_leader[0] != '\0') {
				/* Nodes answered, none with a leader. */
				return fail_no_leader(conn, rv);
			}
			memcpy(why, conn->errmsg, sizeof(why));
			return rmq__fail(conn, rv, "no answer in time%s%s",
					 why[0] != '\0' ? "; last: " : "", why);
		}
	}
	conn->call = NULL;
	if (call.rv == 0) {
		*resp = call.resp;
	}
	return call.rv;
}

int rmq__call_expect(struct raftmq *conn, rmq_env *req, enum rmq_replay replay,
		     bool retry_outcome, uint64_t extra_ms, int body_case,
		     rmq_env **resp)
{
	uint64_t deadline =
		rmq__deadline((uint64_t)conn->request_timeout_ms + extra_ms);
	int rv;

	rv = rmq__call(conn, req, replay, retry_outcome, deadline, resp);
	if (rv != 0) {
		return rv;
	}
	if ((int)(*resp)->body_case != body_case) {
		int got = (int)(*resp)->body_case;

		rmq__env_free(*resp);
		*resp = NULL;
		return rmq__fail(conn, RAFTMQ_EPROTO,
				 "unexpected answer (body %d, expected %d)",
				 got, body_case);
	}
	return 0;
}

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s != NULL ? s : dflt);
}

int raftmq_connect(const char *addresses, const struct raftmq_options *opts,
		   struct raftmq **out, char *errbuf, size_t errlen)
{
	struct raftmq_options o;
	struct raftmq *conn;
	char err[512];
	int rv;

	*out = NULL;
	if (opts != NULL) {
		o = *opts;
	} else {
		memset(&o, 0, sizeof(o));
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		rv = RAFTMQ_ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto err;
	}
	conn->fd = -1;
	conn->next_corr = 1;
	conn->connect_timeout_ms =
		o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 2000;
	conn->request_timeout_ms =
		o.request_timeout_ms > 0 ? o.request_timeout_ms : 10000;
	conn->window = o.window > 0 ? o.window : 256;
	conn->max_frame = o.max_frame_bytes > 0 ? o.max_frame_bytes
						: RMQ_DEFAULT_MAX_FRAME;
	conn->confirm_cb = o.confirm_cb;
	conn->confirm_data = o.confirm_data;
	conn->stay = o.stay;
	conn->server_max_frame = RMQ_DEFAULT_MAX_FRAME;
	conn->rng = rmq__now_ms() ^ (uint64_t)getpid() << 32 ^
		    (uint64_t)(uintptr_t)conn;
	if (conn->rng == 0) {
		conn->rng = 1;
	}
	rmq__frame_reader_init(&conn->rd, conn->max_frame);
	conn->client_name =
		dup_or(o.client_name, "libraftmq/" RAFTMQ_LIB_VERSION);
	conn->auth_token = dup_or(o.auth_token, "");
	if (conn->client_name == NULL || conn->auth_token == NULL) {
		rv = RAFTMQ_ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto err_after_alloc;
	}
	rv = rmq__tls_init(conn, &o, err, sizeof(err));
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = rmq__addr_parse_list(addresses, &conn->addrs, &conn->n_addrs, err,
				  sizeof(err));
	if (rv != 0) {
		goto err_after_alloc;
	}
	conn->seen = calloc(conn->n_addrs, sizeof(*conn->seen));
	if (conn->seen == NULL) {
		rv = RAFTMQ_ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
		goto err_after_alloc;
	}
	rv = reconnect(conn, rmq__deadline(conn->request_timeout_ms));
	if (rv != 0) {
		snprintf(err, sizeof(err), "%s", conn->errmsg);
		goto err_after_alloc;
	}
	conn->errmsg[0] = '\0';
	*out = conn;
	return 0;

err_after_alloc:
	raftmq_close(conn);
err:
	if (errbuf != NULL && errlen > 0) {
		snprintf(errbuf, errlen, "%s", err);
	}
	return rv;
}

/* The longest raftmq_close() waits for the answers to its goodbye. */
#define CLOSE_WAIT_MS 2000

/*
 * The goodbye of a graceful close: the queued async acks, and a Cancel for
 * every consumer naming the deliveries the application never got, sent
 * before the socket closes. The server counts the messages a connection
 * held as failed deliveries only when it ends without this (a crash), so
 * messages that merely sat in our buffer are not pushed towards the
 * dead-letter queue. Waits until every Cancel and ack is answered (the
 * server has then applied them), the connection fails, or CLOSE_WAIT_MS
 * (at most the request timeout) passes: a dead server costs that much.
 */
static void goodbye(struct raftmq *conn)
{
	uint64_t wait = conn->request_timeout_ms < CLOSE_WAIT_MS
				? conn->request_timeout_ms
				: CLOSE_WAIT_MS;
	uint64_t deadline = rmq__deadline(wait);

	if (conn->fd < 0 || conn->broken) {
		return;
	}
	(void)rmq__acks_send(conn);
	/* Deliveries already here are undelivered too: read them first. */
	rmq__read_ready(conn);
	rmq__consumers_goodbye(conn);
	rmq__flush(conn);
	while ((conn->bye_left > 0 || conn->n_ack_corrs > 0) && conn->fd >= 0 &&
	       !conn->broken && rmq__now_ms() < deadline) {
		read_some(conn, rmq__poll_timeout(deadline));
	}
}

void raftmq_close(struct raftmq *conn)
{
	struct raftmq_consumer *c;
	struct rmq_done *d;
	struct rmq_pub *p;

	if (conn == NULL) {
		return;
	}
	goodbye(conn);
	close_fd(conn);
	rmq__dq_drop(conn, NULL);
	free(conn->ack_tags);
	free(conn->ack_corrs);
	while ((p = conn->pubs) != NULL) {
		conn->pubs = p->next;
		rmq__pub_free(p);
	}
	while ((d = conn->done) != NULL) {
		conn->done = d->next;
		free(d);
	}
	while ((c = conn->consumers) != NULL) {
		conn->consumers = c->next;
		rmq__consumer_free(c);
	}
	rmq__addr_free(conn->addrs, conn->n_addrs);
	free(conn->seen);
	free(conn->hint.host);
	free(conn->hint.port);
	free(conn->client_name);
	free(conn->auth_token);
	rmq__tls_free(conn);
	free(conn->pull_ids);
	rmq__frame_reader_close(&conn->rd);
	rmq__buf_close(&conn->wbuf);
	free(conn);
}

uint64_t raftmq_node_id(const struct raftmq *conn)
{
	return conn->fd >= 0 ? conn->node_id : 0;
}
