/* The server: owns the loop's handles, the Raft node, the client listener,
 * the sessions and the batches; starts and stops them in order.
 *
 * Group commit: every command that arrives during one loop iteration (from
 * all sessions) goes into the open batch; at the end of the iteration
 * (uv_check) the open batch is proposed as one log entry, as long as fewer
 * than max_inflight_batches are in flight. When the pipeline is full the
 * batch keeps filling (up to max_batch_commands / max_batch_bytes, then it
 * waits in line), so batches grow with load and latency at low load stays
 * one round trip.
 *
 * Leadership: on becoming leader the node appends a barrier and, once it is
 * applied, proposes DETACH_STALE so the consumers of earlier leaderships
 * return their messages (their clients reconnect here). On losing it, the
 * node closes its client connections: their consumers are gone with the
 * leadership and the clients reconnect to the new leader. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <time.h>

#include "node_auth.h"
#include "cons_defaults.h"
#include "node_int.h"
#include "node_log.h"
#include "node_tls.h"

uint64_t node_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const double node_hist_bounds[NODE_HIST_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
	0.2,	0.5,   1,     2,     5,	   10,	 30,   60};

void node_hist_add(struct node_hist *h, double seconds)
{
	int i;
	for (i = 0; i < NODE_HIST_BUCKETS; i++) {
		if (seconds <= node_hist_bounds[i]) {
			h->buckets[i]++;
			break;
		}
	}
	h->count++;
	h->sum += seconds;
}

bool node_disk_alarm(const struct node_server *srv)
{
	return srv->cfg.disk_limit != 0 &&
	       cons_store_disk_bytes(srv->cons) >= srv->cfg.disk_limit;
}

bool node_memory_alarm(const struct node_server *srv)
{
	return srv->cfg.memory_limit != 0 &&
	       cons_memory_bytes(srv->cons) >= srv->cfg.memory_limit;
}

/* ------------------------------------------------------------- batching */

static struct node_batch *batch_new(struct node_server *srv)
{
	struct node_batch *b = calloc(1, sizeof *b);
	if (b != NULL) {
		b->srv = srv;
		b->prop.data = b;
	}
	return b;
}

static void batch_free(struct node_batch *b)
{
	size_t i;
	for (i = 0; i < b->n_reqs; i++) {
		struct node_req *r = &b->reqs[i];
		if (r->env != NULL) {
			raftmq__client__v1__envelope__free_unpacked(r->env,
								    NULL);
		}
		if (r->session != NULL) {
			node_session_unref(r->session);
		}
		free(r->owned);
	}
	free(b->cmds);
	free(b->reqs);
	free(b);
}

static void batch_close(struct node_server *srv)
{
	struct node_batch *b = srv->open;
	if (b == NULL || b->n == 0) {
		return;
	}
	srv->open = NULL;
	if (srv->waiting_tail != NULL) {
		srv->waiting_tail->next = b;
	} else {
		srv->waiting = b;
	}
	srv->waiting_tail = b;
}

/* Sizing batches by bytes. The commands of a request are filled in after
 * node_batch_add() returns, so a request is counted when it is added by an
 * upper bound of what its commands take in the log entry: its own encoded
 * size (what the client sent) plus what the log encoding may add per
 * command. A log Publish has the fields of the client's Publish, so a
 * publish adds only the Command and list headers (CONS_COMMAND_WRAP_BYTES);
 * other requests may add queue settings written in full (about 80 bytes)
 * or a session (about 40). Internal commands (tick, credit, release of one
 * tag, session gone, detach stale) take under 64 bytes each. The fuzzer
 * and tests/unit/node check, for every entry proposed, that the entry is
 * at most the batch's count plus CONS_ENTRY_BASE_BYTES. */
#define PUBLISH_EXTRA_BYTES CONS_COMMAND_WRAP_BYTES
#define REQUEST_EXTRA_BYTES 128
#define INTERNAL_CMD_BYTES 64

static size_t request_bytes(const struct node_session *s, int kind,
			    const Envelope *env, size_t n)
{
	size_t wire;
	bool publish = kind == RAFTMQ__CLIENT__V1__ENVELOPE__BODY_PUBLISH ||
		       kind == RAFTMQ__CLIENT__V1__ENVELOPE__BODY_PUBLISH_BATCH;
	if (env == NULL) {
		return n * INTERNAL_CMD_BYTES;
	}
	/* The frame it came in is at least its encoded size (a re-encoding
	 * drops duplicates and defaults, never adds): no second walk of the
	 * message on the hot path. */
	wire = s != NULL && s->frame_bytes > 0
		       ? s->frame_bytes
		       : raftmq__client__v1__envelope__get_packed_size(env);
	return wire + n * (publish ? PUBLISH_EXTRA_BYTES : REQUEST_EXTRA_BYTES);
}

/* The most command bytes one entry takes: max_batch_bytes, and never so
 * many that consensus/ would refuse the entry (CONS_MAX_ENTRY_BYTES). */
static size_t batch_limit(const struct node_server *srv)
{
	size_t cap = CONS_MAX_ENTRY_BYTES - CONS_ENTRY_BASE_BYTES;
	return srv->cfg.max_batch_bytes < cap ? (size_t)srv->cfg.max_batch_bytes
					      : cap;
}

struct node_req *node_batch_add(struct node_server *srv, struct node_session *s,
				uint64_t corr, int kind, Envelope *env,
				size_t n, struct q_cmd **cmds)
{
	struct node_batch *b;
	struct node_req *r;
	size_t bytes = request_bytes(s, kind, env, n);
	if (bytes > CONS_MAX_ENTRY_BYTES - CONS_ENTRY_BASE_BYTES) {
		/* Alone in an entry it would still be over the cap: refused
		 * here, never proposed. Only a request this large can be (a
		 * batch closes before a request would take it past the
		 * limit), and only client requests are (internal commands
		 * are small). */
		if (s != NULL) {
			node_error(
				s, corr,
				RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_MESSAGE_TOO_LARGE,
				"request of %zu bytes does not fit in one log "
				"entry (at most %zu MiB): send fewer or "
				"smaller messages per request",
				bytes, CONS_MAX_ENTRY_BYTES >> 20);
		}
		goto err_free_env;
	}
	/* Close the open batch when this request would take it over a
	 * limit; a request over the limit on its own goes alone. */
	if (srv->open != NULL && srv->open->n > 0 &&
	    (srv->open->n + n > srv->cfg.max_batch_commands ||
	     srv->open->bytes + bytes > batch_limit(srv))) {
		batch_close(srv);
	}
	if (srv->open == NULL) {
		srv->open = batch_new(srv);
		if (srv->open == NULL) {
			goto err_nomem;
		}
	}
	b = srv->open;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct q_cmd *p;
		while (cap < b->n + n) {
			cap *= 2;
		}
		p = realloc(b->cmds, cap * sizeof *p);
		if (p == NULL) {
			goto err_nomem;
		}
		b->cmds = p;
		b->cap = cap;
	}
	if (b->n_reqs == b->cap_reqs) {
		size_t cap = b->cap_reqs ? b->cap_reqs * 2 : 32;
		struct node_req *p = realloc(b->reqs, cap * sizeof *p);
		if (p == NULL) {
			goto err_nomem;
		}
		b->reqs = p;
		b->cap_reqs = cap;
	}
	r = &b->reqs[b->n_reqs++];
	memset(r, 0, sizeof *r);
	r->session = s;
	if (s != NULL) {
		node_session_ref(s);
	}
	r->corr = corr;
	r->kind = kind;
	r->env = env;
	r->first = b->n;
	r->count = n;
	r->t0_ns = node_now_ns();
	node_server_wake(srv);
	memset(&b->cmds[b->n], 0, n * sizeof *b->cmds);
	*cmds = &b->cmds[b->n];
	b->n += n;
	b->bytes += bytes;
	return r;

err_nomem:
	if (s != NULL) {
		node_error(s, corr,
			   RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_NO_MEMORY,
			   "the node is out of memory");
	}
err_free_env:
	if (env != NULL) {
		raftmq__client__v1__envelope__free_unpacked(env, NULL);
	}
	return NULL;
}

static void propose_cb(struct cons_propose *req, int status,
		       const struct q_result *results, size_t n)
{
	struct node_batch *b = req->data;
	struct node_server *srv = b->srv;
	srv->inflight--;
	node_dispatch_results(srv, b, status, results, n);
	batch_free(b);
	/* A slot is free: propose what queued up meanwhile. */
	node_batch_flush(srv);
}

static void propose(struct node_server *srv, struct node_batch *b)
{
	int rv = cons_propose(srv->cons, &b->prop, b->cmds, b->n, propose_cb);
	if (rv != 0) {
		node_dispatch_results(srv, b, rv, NULL, 0);
		batch_free(b);
		return;
	}
	srv->inflight++;
	srv->batches_proposed++;
	srv->commands_batched += b->n;
	/* The decoded client frames stay until the results are answered:
	 * error sentences name the queue, and cmds point into them. */
}

void node_batch_flush(struct node_server *srv)
{
	batch_close(srv);
	while (srv->waiting != NULL &&
	       srv->inflight < srv->cfg.max_inflight_batches) {
		struct node_batch *b = srv->waiting;
		srv->waiting = b->next;
		if (srv->waiting == NULL) {
			srv->waiting_tail = NULL;
		}
		b->next = NULL;
		propose(srv, b);
	}
}

/* End of every loop iteration: propose the batch, write the output. */
static void flush_all(struct node_server *srv)
{
	node_batch_flush(srv);
	node_session_flush_all(srv);
}

static void check_cb(uv_check_t *h)
{
	flush_all(h->data);
}

/* libraft fires apply callbacks from its own uv_prepare and uv_check
 * handles, so results can be written after our check handle ran; the loop
 * would then sleep in poll with confirms unsent until some other event
 * (measured: a 17 ms round trip instead of 1 ms with one follower down).
 * An active idle handle makes poll return at once; it flushes and stops
 * itself. */
static void idle_cb(uv_idle_t *h)
{
	struct node_server *srv = h->data;
	flush_all(srv);
	if (srv->dirty == NULL && (srv->open == NULL || srv->open->n == 0) &&
	    (srv->waiting == NULL ||
	     srv->inflight >= srv->cfg.max_inflight_batches)) {
		uv_idle_stop(h);
	}
}

void node_server_wake(struct node_server *srv)
{
	if (!srv->stopping && !uv_is_active((uv_handle_t *)&srv->idle)) {
		uv_idle_start(&srv->idle, idle_cb);
	}
}

/* ------------------------------------------------------------ leadership */

static void detach_stale(struct node_server *srv)
{
	struct q_cmd *cmd;
	struct node_req *r = node_batch_add(srv, NULL, 0, 0, NULL, 1, &cmd);
	if (r == NULL) {
		return;
	}
	cmd->type = Q_CMD_DETACH_STALE;
	cmd->u.session.session.node_id = srv->cfg.id;
	cmd->u.session.session.epoch = srv->epoch;
}

static void barrier_cb(struct cons_barrier *req, int status)
{
	struct node_server *srv = req->data;
	srv->barrier_inflight = false;
	if (status != 0 && srv->leader) {
		NODE_WARN("barrier after election failed: %s; retrying",
			  cons_strerror(status));
	}
	if (status != 0 || !srv->leader) {
		return;
	}
	/* The state is now everything committed before we led: consumers of
	 * older leaderships can be released. */
	detach_stale(srv);
	srv->leader_ready = true;
	NODE_INFO("leader ready (applied %llu)",
		  (unsigned long long)cons_epoch(srv->cons));
}

static void close_sessions(struct node_server *srv)
{
	struct node_session *s, *next;
	for (s = srv->sessions.next; s != &srv->sessions; s = next) {
		next = s->next;
		if (s->had_consumers) {
			node_error(
				s, 0,
				RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_NOT_LEADER,
				"this node lost the leadership; reconnect to "
				"the new leader");
			node_session_close(s);
		}
	}
}

/* A new leader serves timers and releases older leaderships' consumers
 * only after this barrier. If it fails, the ticker starts it again: a
 * leader whose barrier failed once used to stay not ready for its whole
 * term (no TICK, no DETACH_STALE, /healthz/ready 503). */
static void start_barrier(struct node_server *srv)
{
	int rv;
	if (srv->barrier_inflight) {
		return;
	}
	srv->barrier.data = srv;
	rv = cons_barrier(srv->cons, &srv->barrier, barrier_cb);
	if (rv != 0) {
		NODE_WARN("barrier after election failed: %s; retrying",
			  cons_strerror(rv));
		return;
	}
	srv->barrier_inflight = true;
}

static void watch_cb(void *data)
{
	struct node_server *srv = data;
	struct cons_status st;
	bool leader;
	cons_status(srv->cons, &st);
	leader = st.is_leader;
	node_log_ctx.term = st.term;
	node_log_ctx.role = st.state;
	/* Followers watch the leader's process (node_watch.c). */
	node_watch_leader(srv, leader ? 0 : st.leader_id,
			  st.leader_client_address);
	if (leader && !srv->leader) {
		srv->leader = true;
		srv->leader_ready = false;
		srv->epoch = cons_epoch(srv->cons);
		NODE_INFO("became leader (epoch %llu)",
			  (unsigned long long)srv->epoch);
		start_barrier(srv);
	} else if (!leader && srv->leader) {
		srv->leader = false;
		srv->leader_ready = false;
		srv->tick_inflight = false;
		NODE_INFO("lost leadership; leader is now %llu (%s)",
			  (unsigned long long)st.leader_id,
			  st.leader_client_address);
		close_sessions(srv);
	} else {
		NODE_INFO("state %s, leader %llu (%s)", st.state,
			  (unsigned long long)st.leader_id,
			  st.leader_client_address);
	}
}

/* Gives freed heap back to the system now and then, when no batch is in
 * flight. glibc keeps freed memory of a busy period (a drained queue, log
 * entries dropped by a snapshot) in its free lists, fragmented below the top
 * of the heap where free() cannot return it; malloc_trim releases those
 * pages. It costs a walk of the free lists, hence not on every tick. */
#define TRIM_EVERY_MS 5000
#define TICK_MS 20

static void trim_heap(struct node_server *srv)
{
	uint64_t now = uv_now(srv->loop);
	if (now < srv->trim_at || srv->inflight > 0) {
		return;
	}
	srv->trim_at = now + TRIM_EVERY_MS;
	malloc_trim(0);
}

/* A loop that runs nothing for an election timeout loses the leadership
 * (no heartbeats) or starts an election: say so, with how long, so that
 * the cause can be found (a warning from 200 ms: a fifth of the default
 * election timeout). */
#define STALL_WARN_MS 200

static void watch_stall(struct node_server *srv)
{
	uint64_t now = uv_hrtime();
	uint64_t gap_ms;
	if (srv->tick_ns != 0 && now > srv->tick_ns) {
		gap_ms = (now - srv->tick_ns) / 1000000;
		gap_ms = gap_ms > TICK_MS ? gap_ms - TICK_MS : 0;
		if (gap_ms > srv->stall_ms_max) {
			srv->stall_ms_max = gap_ms;
		}
		if (gap_ms >= STALL_WARN_MS) {
			NODE_WARN(
				"the node's loop was blocked for %llu ms "
				"(heartbeats and clients waited)",
				(unsigned long long)gap_ms);
		}
	}
	srv->tick_ns = now;
}

/* Leader only: propose a TICK when a timer (ack deadline, delay, TTL) is
 * due by the leader's clock. One tick in flight at a time. */
static void ticker_cb(uv_timer_t *t)
{
	struct node_server *srv = t->data;
	struct q_cmd *cmd;
	struct node_req *r;
	uint64_t now = uv_now(srv->loop);
	watch_stall(srv);
	trim_heap(srv);
	if (now >= srv->deferred_check_ms) {
		srv->deferred_check_ms = now + 1000;
		node_deferred_check(srv, now);
	}
	if (srv->leader && !srv->leader_ready && !srv->stopping) {
		start_barrier(srv); /* the first one failed */
	}
	if (!srv->leader || !srv->leader_ready || srv->tick_inflight ||
	    srv->stopping) {
		return;
	}
	if (q_state_next_due(cons_state(srv->cons)) >
	    cons_clock_ms(srv->cons)) {
		return;
	}
	r = node_batch_add(srv, NULL, 0, 0, NULL, 1, &cmd);
	if (r == NULL) {
		return;
	}
	cmd->type = Q_CMD_TICK;
	srv->tick_inflight = true;
}

/* ----------------------------------------------------------------- start */

static void listener_cb(uv_stream_t *server, int status)
{
	struct node_server *srv = server->data;
	if (status != 0) {
		NODE_WARN("accept: %s", uv_strerror(status));
		return;
	}
	node_session_accept(srv);
}

int node_resolve(const char *addr, struct sockaddr_in *sa)
{
	char host[NODE_ADDR_MAX], portstr[16];
	unsigned port;
	struct addrinfo hints, *res = NULL;
	if (node_config_split_address(addr, host, sizeof host, &port) != 0) {
		return -1;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
		return -1;
	}
	memcpy(sa, res->ai_addr, sizeof *sa);
	freeaddrinfo(res);
	return 0;
}

static int listen_on(struct node_server *srv, char *err, size_t errlen)
{
	struct sockaddr_in sa;
	int rv;
	if (node_resolve(srv->cfg.client_address, &sa) != 0) {
		snprintf(err, errlen,
			 "bad client address %s (not an IPv4 address or a "
			 "name that resolves to one)",
			 srv->cfg.client_address);
		return -1;
	}
	rv = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0);
	if (rv == 0) {
		rv = uv_listen((uv_stream_t *)&srv->listener, 1024,
			       listener_cb);
	}
	if (rv != 0) {
		snprintf(err, errlen, "listen on %s: %s",
			 srv->cfg.client_address, uv_strerror(rv));
		return -1;
	}
	return 0;
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct node_server *srv = h->data;
	NODE_INFO("signal %d: stopping", signum);
	node_server_stop(srv, 0);
}

void node_server_setup(struct node_server *srv, uv_loop_t *loop,
		       const struct node_config *cfg)
{
	memset(srv, 0, sizeof *srv);
	srv->loop = loop;
	srv->cfg = *cfg;
	srv->sessions.next = srv->sessions.prev = &srv->sessions;
	srv->started_ms = wall_ms();
	srv->started_loop_ms = uv_now(loop);
	node_log_ctx.id = cfg->id;
	node_log_ctx.level = cfg->log_level;
	srv->sink.data = srv;
	srv->sink.deliver = node_on_delivery;
	srv->sink.consumer_gone = node_on_consumer_gone;
	/* Every handle is initialised here, started later, and closed by
	 * finish_stop(). */
	uv_tcp_init(loop, &srv->listener);
	srv->listener.data = srv;
	uv_check_init(loop, &srv->check);
	srv->check.data = srv;
	uv_idle_init(loop, &srv->idle);
	srv->idle.data = srv;
	uv_timer_init(loop, &srv->ticker);
	srv->ticker.data = srv;
	uv_signal_init(loop, &srv->sigterm);
	srv->sigterm.data = srv;
	uv_signal_init(loop, &srv->sigint);
	srv->sigint.data = srv;
	uv_timer_init(loop, &srv->stop_timer);
	srv->stop_timer.data = srv;
}

void node_server_attach(struct node_server *srv, struct cons *cons)
{
	srv->cons = cons;
	cons_watch(cons, watch_cb, srv);
	/* Started before libraft's own check handle (cons_start), so it runs
	 * after it in each iteration: libuv runs the newest check first. */
	uv_check_start(&srv->check, check_cb);
}

int node_server_init(struct node_server *srv, uv_loop_t *loop,
		     const struct node_config *cfg, char *err, size_t errlen)
{
	struct cons_config cc;
	struct cons_member members[NODE_MAX_MEMBERS];
	struct cons *cons;
	size_t i;
	int rv;

	node_server_setup(srv, loop, cfg);
	if (node_auth_init(&srv->cfg, err, errlen) != 0 ||
	    node_tls_ctx_new(&srv->cfg, &srv->tls_ctx, err, errlen) != 0) {
		return -1;
	}

	memset(&cc, 0, sizeof cc);
	cc.id = cfg->id;
	cc.raft_address = cfg->raft_address;
	cc.client_address = cfg->client_address;
	cc.data_dir = cfg->data_dir;
	for (i = 0; i < cfg->n_members; i++) {
		members[i].id = cfg->members[i].id;
		members[i].raft_address = cfg->members[i].raft_address;
		members[i].client_address = cfg->members[i].client_address;
	}
	cc.members = members;
	cc.n_members = cfg->n_members;
	cc.election_timeout_ms = cfg->election_timeout_ms;
	cc.heartbeat_timeout_ms = cfg->heartbeat_timeout_ms;
	cc.snapshot_threshold = cfg->snapshot_threshold;
	cc.snapshot_trailing = cfg->snapshot_trailing;
	cc.snapshot_min_bytes = cfg->snapshot_min_bytes;
	cc.snapshot_trailing_bytes = cfg->snapshot_trailing_bytes;
	cc.snapshot_max_log_bytes = cfg->snapshot_max_log_bytes;
	cc.snapshot_in_place = cfg->snapshot_in_place;
	cc.max_inflight_entries = cfg->max_inflight_entries;
	cc.max_body = cfg->max_message_bytes;
	cc.store_segment_bytes = cfg->store_segment_bytes;
	cc.memory_limit = cfg->memory_limit;
	cc.hash_seed = wall_ms() ^ node_now_ns();

	rv = cons_new(loop, &cc, &srv->sink, &cons, err, errlen);
	if (rv != 0) {
		return -1;
	}
	node_server_attach(srv, cons);
	if (srv->cfg.disk_limit == 0) {
		/* 90 % of the file system: the Raft log and snapshots need
		 * the rest (data_dir exists now: cons_new made it). */
		struct statvfs fs;
		if (statvfs(cfg->data_dir, &fs) == 0) {
			srv->cfg.disk_limit =
				(uint64_t)fs.f_blocks * fs.f_frsize / 10 * 9;
		}
	}
	if (listen_on(srv, err, errlen) != 0) {
		return -1;
	}
	rv = cons_start(srv->cons, err, errlen);
	if (rv != 0) {
		return -1;
	}
	if (node_bodies_start(srv, err, errlen) != 0) {
		return -1;
	}
	uv_timer_start(&srv->ticker, ticker_cb, TICK_MS, TICK_MS);
	uv_signal_start(&srv->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&srv->sigint, signal_cb, SIGINT);
	if (cfg->http_address[0] != '\0' &&
	    node_http_start(srv, err, errlen) != 0) {
		return -1;
	}
	NODE_INFO(
		"raftmqd %s listening for clients on %s, raft on %s, http on "
		"%s, data in %s",
		RAFTMQ_VERSION, cfg->client_address, cfg->raft_address,
		cfg->http_address[0] ? cfg->http_address : "(off)",
		cfg->data_dir);
	return 0;
}

/* ------------------------------------------------------------------ stop */

static void cons_closed(void *data)
{
	struct node_server *srv = data;
	NODE_INFO("stopped");
	(void)srv;
}

static void finish_stop(struct node_server *srv)
{
	struct node_session *s, *next;
	struct node_batch *b;
	for (s = srv->sessions.next; s != &srv->sessions; s = next) {
		next = s->next;
		node_session_close(s);
	}
	/* Requests never proposed: the node is going away. */
	batch_close(srv);
	while ((b = srv->waiting) != NULL) {
		srv->waiting = b->next;
		node_dispatch_results(srv, b, CONS_ESHUTDOWN, NULL, 0);
		batch_free(b);
	}
	srv->waiting_tail = NULL;
	if (srv->open != NULL) {
		/* Left open only when empty (an allocation failed after the
		 * batch was made). */
		batch_free(srv->open);
		srv->open = NULL;
	}
	node_http_stop(srv);
	node_bodies_stop(srv);
	node_watch_leader(srv, 0, NULL);
	uv_close((uv_handle_t *)&srv->listener, NULL);
	node_tls_ctx_free(srv->tls_ctx); /* closing sessions keep a ref */
	srv->tls_ctx = NULL;
	uv_close((uv_handle_t *)&srv->check, NULL);
	uv_close((uv_handle_t *)&srv->idle, NULL);
	uv_close((uv_handle_t *)&srv->ticker, NULL);
	uv_close((uv_handle_t *)&srv->sigterm, NULL);
	uv_close((uv_handle_t *)&srv->sigint, NULL);
	uv_close((uv_handle_t *)&srv->stop_timer, NULL);
	/* Outstanding proposals complete (LEADERSHIPLOST / SHUTDOWN) inside
	 * cons_close(); their sessions are closing, so nothing is sent. */
	cons_close(srv->cons, cons_closed, srv);
}

static void transfer_cb(struct cons_change *req, int status)
{
	struct node_server *srv = req->data;
	NODE_INFO("leadership transfer %s",
		  status == 0 ? "done" : "did not complete");
	uv_timer_stop(&srv->stop_timer);
	finish_stop(srv);
}

static void stop_timeout(uv_timer_t *t)
{
	struct node_server *srv = t->data;
	NODE_WARN("leadership transfer timed out; stopping anyway");
	/* transfer_cb may still fire from cons_close(); it must not stop
	 * twice. */
	srv->transfer.data = NULL;
	finish_stop(srv);
}

static void transfer_cb_guard(struct cons_change *req, int status)
{
	if (req->data == NULL) {
		return;
	}
	transfer_cb(req, status);
}

void node_server_stop(struct node_server *srv, int exit_code)
{
	if (srv->stopping) {
		return;
	}
	srv->stopping = true;
	srv->exit_code = exit_code;
	if (srv->leader && srv->cfg.n_members != 1) {
		srv->transfer.data = srv;
		if (cons_transfer(srv->cons, &srv->transfer, 0,
				  transfer_cb_guard) == 0) {
			NODE_INFO("transferring leadership before stopping");
			uv_timer_start(
				&srv->stop_timer, stop_timeout,
				2 * (srv->cfg.election_timeout_ms
					     ? srv->cfg.election_timeout_ms
					     : CONS_DEFAULT_ELECTION_MS),
				0);
			return;
		}
	}
	finish_stop(srv);
}
