/* The node harness of fake_node.h. */
#include <string.h>

#include "fake_node.h"
#include "node_log.h"

/* Every entry is at most what node/ counted for its batch, plus the
 * entry's own fields: the batch limits (max_batch_bytes, the 64 MiB cap)
 * hold only if this does (node_server.c, node_batch_add). */
static void check_entry(void *arg, struct cons_propose *req,
			const struct raft_buffer *entry, size_t n)
{
	const struct node_batch *b = req->data;
	(void)arg;
	FAKE_CHECK(b->n == n, "batch of %zu proposed as %zu", b->n, n);
	FAKE_CHECK(entry->len <= b->bytes + CONS_ENTRY_BASE_BYTES,
		   "an entry of %zu bytes for a batch counted as %zu",
		   entry->len, b->bytes);
}

void fake_node_start(struct fake_node *n, const struct node_config *cfg)
{
	struct node_config dflt;
	struct q_options qopts;
	if (cfg == NULL) {
		node_config_defaults(&dflt);
		dflt.id = 1;
		cfg = &dflt;
	}
	memset(n, 0, sizeof *n);
	n->keep_frames = true;
	n->trace = getenv("FAKE_TRACE") != NULL;
	FAKE_CHECK(uv_loop_init(&n->loop) == 0, "uv_loop_init");
	node_server_setup(&n->srv, &n->loop, cfg);
	node_log_ctx.level = n->trace ? NODE_LOG_DEBUG : -1;
	memset(&qopts, 0, sizeof qopts);
	qopts.max_body = cfg->max_message_bytes;
	fake_cons_init(&n->cons, &qopts);
	n->cons.leader = false;
	n->cons.term = 0;
	n->cons.on_propose = check_entry;
	q_state_set_sink(n->cons.state, &n->srv.sink);
	node_server_attach(&n->srv, fake_cons_handle(&n->cons));
	fake_cons_set_leader(&n->cons, true);
	fake_node_settle(n);
	FAKE_CHECK(n->srv.leader && n->srv.leader_ready,
		   "the node did not become a ready leader");
}

/* ------------------------------------------------------------------ output */

static struct fake_client *client_of(struct fake_node *n,
				     const struct node_session *s)
{
	size_t i;
	for (i = 0; i < n->n_clients; i++) {
		if (n->clients[i]->s == s) {
			return n->clients[i];
		}
	}
	return NULL;
}

static void keep(struct fake_client *c, Envelope *env)
{
	if (c->n_got == c->cap_got) {
		size_t cap = c->cap_got ? 2 * c->cap_got : 16;
		Envelope **p = realloc(c->got, cap * sizeof *p);
		FAKE_CHECK(p != NULL, "out of memory in the harness");
		c->got = p;
		c->cap_got = cap;
	}
	c->got[c->n_got++] = env;
}

void fake_node_drain(struct fake_node *n)
{
	struct node_server *srv = &n->srv;
	while (srv->dirty != NULL) {
		struct node_session *s = srv->dirty;
		struct fake_client *c = client_of(n, s);
		size_t off = 0;
		char why[256];
		srv->dirty = s->dirty_next;
		s->dirty = false;
		while (off < s->out.len) {
			const unsigned char *p =
				(const unsigned char *)s->out.base + off;
			size_t len;
			Envelope *env;
			FAKE_CHECK(s->out.len - off >= 4,
				   "partial frame header");
			len = (size_t)p[0] << 24 | (size_t)p[1] << 16 |
			      (size_t)p[2] << 8 | (size_t)p[3];
			FAKE_CHECK(len <= s->out.len - off - 4,
				   "partial frame");
			env = raftmq__client__v1__envelope__unpack(NULL, len,
								   p + 4);
			FAKE_CHECK(env != NULL,
				   "the node wrote a bad Envelope");
			/* Strict protobuf libraries (Python, Go) refuse a
			 * frame with a string that is not UTF-8: hold the
			 * node's output to the check it makes on its input. */
			FAKE_CHECK(node_codec_check_strings(p + 4, len, why,
							    sizeof why) == 0,
				   "the node wrote a frame other clients "
				   "cannot decode: %s",
				   why);
			if (n->trace) {
				bool err = env->body_case == BODY(ERROR);
				fprintf(stderr,
					"<- session %llu corr %llu body "
					"%d%s%s\n",
					(unsigned long long)s->id,
					(unsigned long long)env->correlation_id,
					env->body_case, err ? ": " : "",
					err ? env->error->message : "");
			}
			FAKE_CHECK(
				env->body_case >= 100 ||
					env->body_case == BODY(ERROR) ||
					env->body_case == BODY(DELIVERY) ||
					env->body_case == BODY(CONSUMER_GONE),
				"the node wrote a request (%d)",
				env->body_case);
			if (n->keep_frames && c != NULL) {
				keep(c, env);
			} else {
				raftmq__client__v1__envelope__free_unpacked(
					env, NULL);
			}
			off += 4 + len;
		}
		s->out.len = 0;
		node_session_unref(s); /* mark_dirty()'s */
	}
}

/* -------------------------------------------------------------- iterations */

void fake_node_propose(struct fake_node *n)
{
	node_batch_flush(&n->srv);
	fake_node_drain(n);
}

void fake_node_settle(struct fake_node *n)
{
	struct fake_cons *c = &n->cons;
	unsigned rounds;
	for (rounds = 0; rounds < 1000; rounds++) {
		node_batch_flush(&n->srv);
		if (c->n_pending == 0 && c->n_changes == 0 &&
		    c->n_barriers == 0) {
			break;
		}
		/* A barrier completes once what was proposed before it is
		 * applied. */
		do {
			(void)fake_cons_complete_due_barriers(c);
		} while (fake_cons_complete(c, 0));
		(void)fake_cons_complete_due_barriers(c);
		while (c->n_changes > 0) {
			bool busy =
				n->odd_changes_busy && c->n_changes % 2 == 0;
			(void)fake_cons_complete_change(c,
							busy ? CONS_EBUSY : 0);
		}
	}
	FAKE_CHECK(rounds < 1000, "batches keep coming");
	fake_node_drain(n);
}

void fake_node_fire_fetch_timers(struct fake_client *c)
{
	struct node_fetch *f = c->s->fetches, *next;
	for (; f != NULL; f = next) {
		next = f->next; /* the timeout may unlink f */
		if (uv_is_active((uv_handle_t *)&f->timer)) {
			uv_timer_stop(&f->timer);
			node_fetch_timeout(&f->timer);
		}
	}
	fake_node_drain(c->node);
}

/* ----------------------------------------------------------------- clients */

struct fake_client *fake_node_connect(struct fake_node *n)
{
	struct node_server *srv = &n->srv;
	struct fake_client *c;
	struct node_session *s;
	if (n->n_clients == n->cap_clients) {
		size_t cap = n->cap_clients ? 2 * n->cap_clients : 8;
		struct fake_client **p = realloc(n->clients, cap * sizeof *p);
		FAKE_CHECK(p != NULL, "realloc");
		n->clients = p;
		n->cap_clients = cap;
	}
	c = calloc(1, sizeof *c);
	s = calloc(1, sizeof *s);
	FAKE_CHECK(c != NULL && s != NULL, "calloc");
	/* As node_session_accept() sets a connection up. */
	s->srv = srv;
	s->refs = 1;
	uv_tcp_init(&n->loop, &s->tcp);
	s->tcp.data = s;
	s->reading = true;
	s->id = ++srv->next_session_id;
	snprintf(s->peer, sizeof s->peer, "test client %llu",
		 (unsigned long long)s->id);
	s->next = &srv->sessions;
	s->prev = srv->sessions.prev;
	srv->sessions.prev->next = s;
	srv->sessions.prev = s;
	srv->n_sessions++;
	srv->connections_total++;
	node_session_ref(s); /* the harness's own, dropped at the stop */
	c->node = n;
	c->s = s;
	n->clients[n->n_clients++] = c;
	return c;
}

void fake_client_close(struct fake_client *c)
{
	node_session_close(c->s);
}

void fake_client_write(struct fake_client *c, const void *buf, size_t len)
{
	struct node_session *s = c->s;
	if (s->closing) {
		return;
	}
	if (s->in_cap - s->in_len < len) {
		size_t cap = s->in_len + len;
		char *p = realloc(s->in, cap);
		FAKE_CHECK(p != NULL, "realloc");
		s->in = p;
		s->in_cap = cap;
	}
	memcpy(s->in + s->in_len, buf, len);
	s->in_len += len;
	node_session_read_frames(s);
}

uint64_t fake_client_send(struct fake_client *c, Envelope *env)
{
	size_t len;
	unsigned char *buf;
	if (env->version == 0) {
		env->version = NODE_PROTOCOL_VERSION;
	}
	if (env->correlation_id == 0) {
		env->correlation_id = ++c->corr;
	}
	len = raftmq__client__v1__envelope__get_packed_size(env);
	buf = malloc(4 + len);
	FAKE_CHECK(buf != NULL, "malloc");
	buf[0] = (unsigned char)(len >> 24);
	buf[1] = (unsigned char)(len >> 16);
	buf[2] = (unsigned char)(len >> 8);
	buf[3] = (unsigned char)len;
	raftmq__client__v1__envelope__pack(env, buf + 4);
	fake_client_write(c, buf, 4 + len);
	free(buf);
	return env->correlation_id;
}

Envelope *fake_client_next(struct fake_client *c)
{
	fake_node_drain(c->node);
	return c->next < c->n_got ? c->got[c->next++] : NULL;
}

Envelope *fake_client_expect(struct fake_client *c, const char *what)
{
	Envelope *env = fake_client_next(c);
	FAKE_CHECK(env != NULL, "no frame written: expected %s", what);
	return env;
}

size_t fake_client_pending(struct fake_client *c)
{
	fake_node_drain(c->node);
	return c->n_got - c->next;
}

/* -------------------------------------------------------------------- stop */

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	FAKE_CHECK(uv_is_closing(h), "handle of type %d left open", h->type);
}

void fake_node_stop(struct fake_node *n)
{
	struct node_server *srv = &n->srv;
	size_t i, k;
	FAKE_CHECK(!n->stopped, "stopped twice");
	n->stopped = true;
	/* The clients go away first: their SESSION_GONE commits. */
	for (i = 0; i < n->n_clients; i++) {
		node_session_close(n->clients[i]->s);
	}
	if (srv->leader) {
		fake_node_settle(n);
	}
	node_server_stop(srv, 0);
	/* A leader of several nodes first hands its leadership over. */
	while (fake_cons_complete_change(&n->cons, 0)) {
	}
	fake_node_drain(n);
	FAKE_CHECK(n->cons.closed, "the node never closed its consensus");
	uv_run(&n->loop, UV_RUN_DEFAULT);
	uv_walk(&n->loop, walk_close, NULL);
	FAKE_CHECK(srv->open == NULL && srv->waiting == NULL,
		   "batches left over");
	FAKE_CHECK(n->cons.n_pending == 0, "proposals left over");
	for (i = 0; i < n->n_clients; i++) {
		struct fake_client *c = n->clients[i];
		FAKE_CHECK(c->s->closed, "session %llu's socket was not closed",
			   (unsigned long long)c->s->id);
		FAKE_CHECK(c->s->refs == 1,
			   "%d references left on session %llu", c->s->refs,
			   (unsigned long long)c->s->id);
		node_session_unref(c->s);
		for (k = 0; k < c->n_got; k++) {
			raftmq__client__v1__envelope__free_unpacked(c->got[k],
								    NULL);
		}
		free(c->got);
		free(c);
	}
	free(n->clients);
	n->clients = NULL;
	n->n_clients = n->cap_clients = 0;
	FAKE_CHECK(uv_loop_close(&n->loop) == 0, "uv_loop_close");
	fake_cons_free(&n->cons);
}
