/* Fuzz target: bytes from a client, through the real node/ code.
 *
 * Linked with node/'s real node_session.c (framing), node_dispatch.c
 * (request validation, request -> q_cmd, results and deliveries -> frames)
 * and node_server.c (group-commit batches), and a fake consensus/ defined
 * here: one in-process replica over a real q_state, no raft. The fake is
 * faithful where it matters: cons_propose() encodes the batch with the real
 * cons__entry_encode() when it is called (as cons_node.c does), and the
 * entry is later decoded with cons__entry_decode()/cons__entry_command() and
 * applied, as every replica's FSM would, with the node's real sink.
 *
 * The input: byte 0 sets the run up (below); the rest is the TCP stream
 * from one client (4-byte big-endian length + Envelope frames), handed to
 * node_session_read_frames() in chunks. After each chunk an "iteration" of
 * the loop ends: batches are proposed and the proposals applied (which may
 * queue more, e.g. releases of late pull deliveries) until quiet.
 *
 *   byte 0, bits 0-2: chunk size (whole stream, 1, 3, 7, 16, 61, 256, 1024)
 *           bit 3: fetch wait timers fire after each chunk
 *           bit 4: the leader proposes a TICK 60 s later after each chunk
 *           bit 5: every third proposal fails (leadership lost)
 *           bit 6: batches of at most 2 commands (waiting batches)
 *           bit 7: small memory limit (the memory alarm refuses publishes)
 *
 * Checked: no crash, leak or sanitizer report; every frame the node writes
 * back is a valid Envelope whose strings are UTF-8 without NUL (what strict
 * protobuf libraries require; node_codec_check_strings()); every entry the node
 * proposes is one each replica can decode and apply (a committed entry that
 * cannot be applied stops the cluster); q_state_check() after every applied
 * entry; at the end every handle is closed and uv_loop_close() succeeds. */
#include "cons_int.h"
#include "fuzz_util.h"
#include "node_int.h"
#include "node_log.h"

/* ------------------------------------------------------- fake consensus */

struct proposal {
	struct cons_propose *req;
	struct raft_buffer entry; /* encoded at propose time */
	size_t n;
	cons_propose_cb cb;
};

struct change {
	struct cons_change *req;
	cons_change_cb cb;
};

/* node/ holds a `struct cons *`; that struct is consensus/'s (cons_int.h),
 * so the fake is a struct of its own, cast at the boundary. */
struct fake {
	struct q_state *state;
	struct cons_arena arena;
	uint64_t clock;
	unsigned proposals;
	int fail_every_third;
	struct proposal pending[64];
	size_t n_pending;
	struct change changes[8];
	size_t n_changes;
};

#define FAKE(c) ((struct fake *)(void *)(c))

int cons_propose(struct cons *cons, struct cons_propose *req,
		 const struct q_cmd *cmds, size_t n, cons_propose_cb cb)
{
	struct fake *c = FAKE(cons);
	struct proposal *p;
	int rv;
	if (c->n_pending == sizeof c->pending / sizeof c->pending[0]) {
		return CONS_EBUSY;
	}
	p = &c->pending[c->n_pending];
	c->clock += 3;
	rv = cons__entry_encode(cmds, n, NULL, 0, c->clock, NULL, &p->entry);
	if (rv != 0) {
		return rv;
	}
	p->req = req;
	p->n = n;
	p->cb = cb;
	c->n_pending++;
	return 0;
}

/* Applies the oldest proposal as the FSM would and answers it. */
static void complete_one(struct fake *c)
{
	struct proposal p = c->pending[0];
	Raftmq__Log__V1__LogEntry *e;
	struct q_result *results;
	size_t i;
	memmove(&c->pending[0], &c->pending[1],
		--c->n_pending * sizeof c->pending[0]);
	if (c->fail_every_third && ++c->proposals % 3 == 0) {
		raft_free(p.entry.base);
		p.cb(p.req, CONS_ELEADERSHIPLOST, NULL, 0);
		return;
	}
	cons__arena_reset(&c->arena);
	e = cons__entry_decode(&c->arena, p.entry.base, p.entry.len);
	FZ_CHECK(e != NULL, "the node proposed an undecodable entry");
	FZ_CHECK(e->n_commands == p.n, "%zu commands, %zu proposed",
		 e->n_commands, p.n);
	results = calloc(p.n ? p.n : 1, sizeof *results);
	FZ_CHECK(results != NULL, "calloc");
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd cmd;
		int rv = cons__entry_command(e->commands[i], e->leader_time_ms,
					     &cmd);
		FZ_CHECK(rv == 0,
			 "the node proposed a command no replica "
			 "can apply (%d)",
			 rv);
		rv = q_state_apply(c->state, &cmd, &results[i]);
		FZ_CHECK(rv == 0, "q_state_apply = %d", rv);
	}
	fz_state_check(c->state, "after an entry");
	raft_free(p.entry.base);
	p.cb(p.req, 0, results, p.n);
	free(results);
}

const struct q_state *cons_state(const struct cons *c)
{
	return FAKE(c)->state;
}

void cons_status(const struct cons *c, struct cons_status *st)
{
	memset(st, 0, sizeof *st);
	st->id = 1;
	st->is_leader = 1;
	st->state = "leader";
	st->leader_id = 1;
	snprintf(st->leader_client_address, sizeof st->leader_client_address,
		 "127.0.0.1:7001");
	st->term = 1;
	st->commit_index = st->applied_index = FAKE(c)->proposals;
	st->n_nodes = 1;
	st->nodes[0].id = 1;
	snprintf(st->nodes[0].raft_address, sizeof st->nodes[0].raft_address,
		 "127.0.0.1:7101");
	snprintf(st->nodes[0].client_address,
		 sizeof st->nodes[0].client_address, "127.0.0.1:7001");
	st->nodes[0].reachable = 1;
}

static int change(struct fake *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb)
{
	if (id == 0 || id > 100) {
		return id == 0 ? CONS_EINVAL : CONS_EBADID;
	}
	if (c->n_changes == sizeof c->changes / sizeof c->changes[0]) {
		return CONS_EBUSY;
	}
	c->changes[c->n_changes].req = req;
	c->changes[c->n_changes].cb = cb;
	c->n_changes++;
	return 0;
}

int cons_add(struct cons *c, struct cons_change *req, uint64_t id,
	     const char *raft_address, const char *client_address, int role,
	     cons_change_cb cb)
{
	(void)role;
	FZ_CHECK(raft_address != NULL && client_address != NULL, "address");
	return change(FAKE(c), req, id, cb);
}

int cons_remove(struct cons *c, struct cons_change *req, uint64_t id,
		cons_change_cb cb)
{
	return change(FAKE(c), req, id, cb);
}

int cons_transfer(struct cons *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb)
{
	return change(FAKE(c), req, id + 1, cb);
}

const char *cons_errmsg(const struct cons *c)
{
	(void)c;
	return ""; /* the node then says cons_strerror() of the code */
}

/* What node_server.c needs besides; never called by the harness's path. */
int cons_new(struct uv_loop_s *loop, const struct cons_config *cfg,
	     const struct q_sink *sink, struct cons **out, char *errmsg,
	     size_t errlen)
{
	(void)loop, (void)cfg, (void)sink, (void)out, (void)errmsg;
	(void)errlen;
	abort();
}

int cons_start(struct cons *c, char *errmsg, size_t errlen)
{
	(void)c, (void)errmsg, (void)errlen;
	abort();
}

void cons_close(struct cons *c, void (*cb)(void *data), void *data)
{
	(void)c, (void)cb, (void)data;
	abort();
}

uint64_t cons_clock_ms(const struct cons *c)
{
	return FAKE(c)->clock;
}

int cons_barrier(struct cons *c, struct cons_barrier *req, cons_barrier_cb cb)
{
	/* Barriers are not simulated: a Peek gets the refusal path (the
	 * callback is never called when this fails). */
	(void)c, (void)req, (void)cb;
	return CONS_ENOTLEADER;
}

void cons_watch(struct cons *c, void (*cb)(void *data), void *data)
{
	(void)c, (void)cb, (void)data;
	abort();
}

void cons_hurry_election(struct cons *c, uint64_t leader_id)
{
	(void)c, (void)leader_id;
	abort();
}

uint64_t cons_epoch(const struct cons *c)
{
	(void)c;
	return 1;
}

/* ---------------------------------------------------------------- harness */

#define BODY_ERROR RAFTMQ__CLIENT__V1__ENVELOPE__BODY_ERROR
#define BODY_DELIVERY RAFTMQ__CLIENT__V1__ENVELOPE__BODY_DELIVERY
#define BODY_CONSUMER_GONE RAFTMQ__CLIENT__V1__ENVELOPE__BODY_CONSUMER_GONE

/* FUZZ_TRACE=1 in the environment prints every frame the node writes (to
 * see what an input does when reproducing). */
static int trace;

/* Every frame the node wrote must decode; then the output is dropped (the
 * harness is the client and reads everything at once). */
static void drain_output(struct node_server *srv)
{
	while (srv->dirty != NULL) {
		struct node_session *s = srv->dirty;
		size_t off = 0;
		char why[256];
		srv->dirty = s->dirty_next;
		s->dirty = false;
		while (off < s->out.len) {
			const unsigned char *p =
				(const unsigned char *)s->out.base + off;
			size_t n;
			Envelope *env;
			FZ_CHECK(s->out.len - off >= 4, "partial frame header");
			n = (size_t)p[0] << 24 | (size_t)p[1] << 16 |
			    (size_t)p[2] << 8 | (size_t)p[3];
			FZ_CHECK(n <= s->out.len - off - 4, "partial frame");
			env = raftmq__client__v1__envelope__unpack(NULL, n,
								   p + 4);
			FZ_CHECK(env != NULL, "the node wrote a bad Envelope");
			/* Strict protobuf libraries (Python, Go) refuse a frame
			 * with a string that is not UTF-8: hold the node's
			 * output to the check it makes on its input. */
			FZ_CHECK(node_codec_check_strings(p + 4, n, why,
							  sizeof why) == 0,
				 "the node wrote a frame other clients cannot "
				 "decode: %s",
				 why);
			if (trace) {
				int err = env->body_case == BODY_ERROR;
				fprintf(stderr,
					"<- frame corr %llu body %d%s%s\n",
					(unsigned long long)env->correlation_id,
					env->body_case, err ? ": " : "",
					err ? env->error->message : "");
			}
			FZ_CHECK(env->body_case >= 100 ||
					 env->body_case == BODY_ERROR ||
					 env->body_case == BODY_DELIVERY ||
					 env->body_case == BODY_CONSUMER_GONE,
				 "the node wrote a request (%d)",
				 env->body_case);
			raftmq__client__v1__envelope__free_unpacked(env, NULL);
			off += 4 + n;
		}
		s->out.len = 0;
		node_session_unref(s);
	}
}

/* The end of a loop iteration: propose, apply, answer, until quiet. */
static void settle(struct node_server *srv, struct fake *c)
{
	unsigned rounds;
	for (rounds = 0; rounds < 1000; rounds++) {
		node_batch_flush(srv);
		if (c->n_pending == 0 && c->n_changes == 0) {
			break;
		}
		while (c->n_pending > 0) {
			complete_one(c);
		}
		while (c->n_changes > 0) {
			struct change ch = c->changes[--c->n_changes];
			ch.cb(ch.req, c->n_changes % 2 ? CONS_EBUSY : 0);
		}
	}
	FZ_CHECK(rounds < 1000, "batches keep coming");
	drain_output(srv);
}

static void tick(struct node_server *srv, struct fake *c)
{
	struct q_cmd *cmd;
	c->clock += 60000;
	if (node_batch_add(srv, NULL, 0, 0, NULL, 1, &cmd) != NULL) {
		cmd->type = Q_CMD_TICK;
	}
}

static void fire_fetch_timers(struct node_session *s)
{
	struct node_fetch *f = s->fetches, *next;
	for (; f != NULL; f = next) {
		next = f->next; /* the timeout may unlink f */
		if (uv_is_active((uv_handle_t *)&f->timer)) {
			uv_timer_stop(&f->timer);
			node_fetch_timeout(&f->timer);
		}
	}
}

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	FZ_CHECK(uv_is_closing(h), "handle of type %d left open", h->type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunks[] = {0, 1, 3, 7, 16, 61, 256, 1024};
	struct node_server srv;
	struct node_session *s;
	struct fake c;
	struct q_options qopts;
	uv_loop_t loop;
	size_t off, chunk;
	uint8_t mode;

	if (size == 0) {
		return 0;
	}
	mode = data[0];
	data++;
	size--;
	chunk = chunks[mode & 7] ? chunks[mode & 7] : size;
	trace = getenv("FUZZ_TRACE") != NULL;
	node_log_ctx.level = trace ? NODE_LOG_DEBUG : -1;

	memset(&c, 0, sizeof c);
	memset(&qopts, 0, sizeof qopts);
	qopts.max_body = 4096;
	c.state = q_state_new(&qopts);
	FZ_CHECK(c.state != NULL, "q_state_new");
	c.clock = 1000;
	c.fail_every_third = (mode & 32) != 0;
	cons__arena_init(&c.arena);

	FZ_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
	memset(&srv, 0, sizeof srv);
	srv.loop = &loop;
	node_config_defaults(&srv.cfg);
	srv.cfg.id = 1;
	srv.cfg.max_frame_bytes = 8192; /* reachable by the fuzzer */
	srv.cfg.max_message_bytes = 1024;
	srv.cfg.memory_limit = (mode & 128) ? 2048 : 0;
	if (mode & 64) {
		srv.cfg.max_batch_commands = 2;
		srv.cfg.max_inflight_batches = 2;
	}
	srv.cons = (struct cons *)&c;
	srv.sink.data = &srv;
	srv.sink.deliver = node_on_delivery;
	srv.sink.consumer_gone = node_on_consumer_gone;
	q_state_set_sink(c.state, &srv.sink);
	srv.sessions.next = srv.sessions.prev = &srv.sessions;
	srv.leader = true;
	srv.leader_ready = true;
	srv.epoch = 1;
	uv_idle_init(&loop, &srv.idle);

	/* One connection, as node_session_accept() sets it up. */
	s = calloc(1, sizeof *s);
	FZ_CHECK(s != NULL, "calloc");
	s->srv = &srv;
	s->refs = 1;
	uv_tcp_init(&loop, &s->tcp);
	s->tcp.data = s;
	s->reading = true;
	s->id = ++srv.next_session_id;
	s->next = &srv.sessions;
	s->prev = srv.sessions.prev;
	srv.sessions.prev->next = s;
	srv.sessions.prev = s;
	srv.n_sessions++;
	node_session_ref(s); /* the harness's own, dropped at the end */

	for (off = 0; off < size && !s->closing; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (s->in_cap - s->in_len < n) {
			size_t cap = s->in_len + n;
			s->in = realloc(s->in, cap);
			FZ_CHECK(s->in != NULL, "realloc");
			s->in_cap = cap;
		}
		memcpy(s->in + s->in_len, data + off, n);
		s->in_len += n;
		node_session_read_frames(s);
		settle(&srv, &c);
		if (mode & 8) {
			fire_fetch_timers(s);
		}
		if (mode & 16) {
			tick(&srv, &c);
		}
		settle(&srv, &c);
	}

	/* The client goes away: SESSION_GONE, timers and the socket close. */
	node_session_close(s);
	settle(&srv, &c);
	srv.stopping = true;
	uv_idle_stop(&srv.idle);
	uv_close((uv_handle_t *)&srv.idle, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_walk(&loop, walk_close, NULL);
	FZ_CHECK(s->closed, "the session's socket was not closed");
	FZ_CHECK(s->refs == 1, "%d references left on the session", s->refs);
	node_session_unref(s);
	FZ_CHECK(srv.open == NULL || srv.open->n == 0, "commands left over");
	if (srv.open != NULL) {
		free(srv.open->cmds);
		free(srv.open->reqs);
		free(srv.open);
	}
	FZ_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close");
	cons__arena_close(&c.arena);
	q_state_free(c.state);
	return 0;
}
