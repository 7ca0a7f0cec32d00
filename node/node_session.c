/* One client connection: framing, input and output buffers, backpressure.
 *
 * Input: bytes are appended to `in`; every complete frame (4-byte
 * big-endian length + Envelope) is decoded and dispatched. A length over
 * max_frame_bytes cannot be skipped safely (the stream may be garbage), so
 * it is answered with FRAME_TOO_LARGE and the connection closed. A frame
 * that does not decode is answered with MALFORMED; the stream is still in
 * step, so the connection stays.
 *
 * Output: frames are encoded into `out` during a loop iteration and written
 * with one uv_write at its end (node_session_flush_all), so a burst of
 * confirms or deliveries costs one syscall. A client that does not read
 * (unsent output over max_client_output_bytes) is not read from either
 * until it catches up; one whose unsent output reaches twice that (a
 * consumer that never reads its deliveries) is disconnected: it cannot
 * grow the node's memory without bound.
 *
 * TLS (tls_cert set): the socket carries TLS records and node_tls.c sits
 * between it and the two buffers above. Read bytes are decrypted into `in`
 * before framing; at flush the frames in `out` are encrypted into the
 * buffer handed to uv_write. Everything else is the same for both.
 *
 * Idle connections: a connection must send its first request (a Hello,
 * when auth is on) within hello_timeout_ms of being accepted, its TLS
 * handshake included, or it is closed (port scanners, health checks that
 * only connect, half-open connections). Followers hold one idle connection
 * to the leader on purpose (node_watch.c): it starts with
 * NODE_WATCH_HELLO, which no client sends, and is exempt.
 *
 * Lifetime: the server holds one reference, every request in flight and
 * the hello timer another; the memory goes when the connection is closed
 * and the last reference dropped. */
#include <stdlib.h>
#include <string.h>

#include "node_int.h"
#include "node_log.h"
#include "node_tls.h"

#define EC(x) RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_##x

int node_buf_reserve(struct node_buf *b, size_t extra)
{
	size_t cap;
	char *p;
	if (b->len + extra <= b->cap) {
		return 0;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra) {
		cap *= 2;
	}
	p = realloc(b->base, cap);
	if (p == NULL) {
		return -1;
	}
	b->base = p;
	b->cap = cap;
	return 0;
}

void node_buf_free(struct node_buf *b)
{
	free(b->base);
	b->base = NULL;
	b->len = b->cap = 0;
}

static void session_free(struct node_session *s)
{
	struct node_consumer *c;
	struct node_early *e;
	while ((c = s->consumers) != NULL) {
		s->consumers = c->next;
		free(c);
	}
	while ((e = s->early) != NULL) {
		s->early = e->next;
		node_buf_free(&e->frame_body);
		free(e);
	}
	free(s->def);
	free(s->in);
	node_buf_free(&s->out);
	node_tls_free(s->tls);
	free(s);
}

void node_session_ref(struct node_session *s)
{
	s->refs++;
}

void node_session_unref(struct node_session *s)
{
	if (--s->refs == 0) {
		session_free(s);
	}
}

static void closed_cb(uv_handle_t *h)
{
	struct node_session *s = h->data;
	s->closed = true;
	node_session_unref(s);
}

static void fetch_timer_closed(uv_handle_t *h)
{
	struct node_fetch *f = h->data;
	struct node_session *s = f->s;
	size_t i;
	for (i = 0; i < f->n_got; i++) {
		raftmq__client__v1__delivery__free_unpacked(f->got[i], NULL);
	}
	free(f->got);
	free(f);
	node_session_unref(s);
}

static void hello_timer_closed(uv_handle_t *h)
{
	node_session_unref(h->data);
}

void node_session_close(struct node_session *s)
{
	struct node_server *srv = s->srv;
	struct node_fetch *f;
	if (s->closing) {
		return;
	}
	s->closing = true;
	s->prev->next = s->next;
	s->next->prev = s->prev;
	srv->n_sessions--;
	if (s->watch) {
		srv->n_watches--;
	}
	if (s->hello_timer_on) {
		s->hello_timer_on = false;
		uv_close((uv_handle_t *)&s->hello_timer, hello_timer_closed);
	}
	while ((f = s->fetches) != NULL) {
		s->fetches = f->next;
		uv_close((uv_handle_t *)&f->timer, fetch_timer_closed);
	}
	/* Its consumers' unacked messages go back at once (DESIGN 2). Only
	 * the leader that served it can say so; after a leader change the
	 * new leader's DETACH_STALE does it. */
	if (s->had_consumers && srv->leader && s->epoch == srv->epoch &&
	    !srv->stopping) {
		struct q_cmd *cmd;
		struct node_req *r =
			node_batch_add(srv, NULL, 0, 0, NULL, 1, &cmd);
		if (r != NULL) {
			cmd->type = Q_CMD_SESSION_GONE;
			cmd->u.session.session.node_id = srv->cfg.id;
			cmd->u.session.session.epoch = s->epoch;
			cmd->u.session.session.session_id = s->id;
		}
	}
	/* Best effort: an error frame written just before closing (frame too
	 * large, too many connections) should reach the client. Over TLS it
	 * is encrypted first and followed by close_notify. */
	if (s->tls != NULL && s->writing == 0) {
		struct node_buf b = {NULL, 0, 0}, none = {NULL, 0, 0};
		int rv = node_tls_output(s->tls, &s->out, &b);
		node_tls_shutdown(s->tls);
		if (rv == 0 && node_tls_output(s->tls, &none, &b) == 0 &&
		    b.len > 0) {
			uv_buf_t ub = uv_buf_init(b.base, (unsigned)b.len);
			(void)uv_try_write((uv_stream_t *)&s->tcp, &ub, 1);
		}
		node_buf_free(&b);
	} else if (s->out.len > 0 && s->writing == 0) {
		uv_buf_t b = uv_buf_init(s->out.base, (unsigned)s->out.len);
		(void)uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
	}
	uv_close((uv_handle_t *)&s->tcp, closed_cb);
}

struct node_session *node_session_find(struct node_server *srv, uint64_t id)
{
	struct node_session *s;
	for (s = srv->sessions.next; s != &srv->sessions; s = s->next) {
		if (s->id == id) {
			return s;
		}
	}
	return NULL;
}

struct node_consumer *node_session_consumer(struct node_session *s,
					    q_consumer_id id)
{
	struct node_consumer *c;
	for (c = s->consumers; c != NULL; c = c->next) {
		if (c->id == id) {
			return c;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ output */

/* Queues the session for the end-of-iteration flush. */
static void mark_dirty(struct node_session *s)
{
	if (!s->dirty) {
		s->dirty = true;
		s->dirty_next = s->srv->dirty;
		s->srv->dirty = s;
		node_session_ref(s);
		node_server_wake(s->srv);
	}
}

void node_session_send(struct node_session *s, const Envelope *env)
{
	size_t n = raftmq__client__v1__envelope__get_packed_size(env);
	unsigned char *p;
	if (s->closing) {
		return;
	}
	/* Input stops at max_client_output_bytes, but deliveries do not: a
	 * consumer that never reads would make the node keep every message
	 * it is given twice (queue and output). Past twice the limit it is
	 * disconnected (as redis's client-output-buffer-limit), and its
	 * unacked messages go back to the queue (SESSION_GONE). */
	if (s->writing > s->srv->cfg.max_client_output_bytes &&
	    s->writing + s->out.len + 4 + n >
		    2 * s->srv->cfg.max_client_output_bytes) {
		NODE_WARN(
			"session %llu (%s): %zu bytes unsent, over twice "
			"max_client_output_bytes (%llu); closing the "
			"connection of a client that does not read",
			(unsigned long long)s->id, s->peer,
			s->writing + s->out.len,
			(unsigned long long)
				s->srv->cfg.max_client_output_bytes);
		node_session_close(s);
		return;
	}
	if (node_buf_reserve(&s->out, 4 + n) != 0) {
		NODE_ERROR("session %llu: out of memory for output; closing",
			   (unsigned long long)s->id);
		node_session_close(s);
		return;
	}
	p = (unsigned char *)s->out.base + s->out.len;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
	raftmq__client__v1__envelope__pack(env, p + 4);
	s->out.len += 4 + n;
	s->srv->frames_out++;
	mark_dirty(s);
}

struct write_req {
	uv_write_t req;
	struct node_session *s;
	struct node_buf buf;
};

static void start_reading(struct node_session *s);

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = req->data;
	struct node_session *s = w->s;
	s->writing -= w->buf.len;
	s->written += w->buf.len;
	node_buf_free(&w->buf);
	free(w);
	if (status != 0 && !s->closing) {
		NODE_DEBUG("session %llu: write failed: %s",
			   (unsigned long long)s->id, uv_strerror(status));
		node_session_close(s);
	}
	node_session_pump(s);
	if (!s->closing && !s->reading &&
	    s->writing <= s->srv->cfg.max_client_output_bytes / 2) {
		start_reading(s); /* caught up: listen again */
	}
	node_session_unref(s);
}

static void flush(struct node_session *s)
{
	struct write_req *w;
	uv_buf_t b;
	int rv;
	if (s->closing || (s->out.len == 0 && s->tls == NULL)) {
		return;
	}
	w = malloc(sizeof *w);
	if (w == NULL) {
		node_session_close(s);
		return;
	}
	if (s->tls != NULL) {
		/* Frames (once the handshake is done) and handshake records,
		 * encrypted into a buffer of their own. */
		memset(&w->buf, 0, sizeof w->buf);
		if (node_tls_output(s->tls, &s->out, &w->buf) != 0) {
			NODE_DEBUG("session %llu: %s; closing",
				   (unsigned long long)s->id,
				   node_tls_errmsg(s->tls));
			node_buf_free(&w->buf);
			free(w);
			node_session_close(s);
			return;
		}
		if (w->buf.len == 0) {
			node_buf_free(&w->buf);
			free(w);
			return;
		}
	} else {
		/* Hand the buffer to the write; start a new one for what
		 * follows. */
		w->buf = s->out;
		memset(&s->out, 0, sizeof s->out);
	}
	w->s = s;
	w->req.data = w;
	b = uv_buf_init(w->buf.base, (unsigned)w->buf.len);
	rv = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, write_cb);
	if (rv != 0) {
		node_buf_free(&w->buf);
		free(w);
		node_session_close(s);
		return;
	}
	node_session_ref(s);
	s->writing += w->buf.len;
	s->srv->bytes_out += w->buf.len;
	/* Backpressure: stop reading from a client that does not read. */
	if (s->writing > s->srv->cfg.max_client_output_bytes && s->reading) {
		uv_read_stop((uv_stream_t *)&s->tcp);
		s->reading = false;
		NODE_DEBUG("session %llu: %zu bytes unsent, pausing its input",
			   (unsigned long long)s->id, s->writing);
	}
}

void node_session_flush_all(struct node_server *srv)
{
	while (srv->dirty != NULL) {
		struct node_session *s = srv->dirty;
		srv->dirty = s->dirty_next;
		s->dirty = false;
		flush(s);
		node_session_unref(s);
	}
}

/* ------------------------------------------------------------------- input */

/* Ciphertext lands here and is decrypted at once (one loop thread). */
static char tls_scratch[65536];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct node_session *s = h->data;
	size_t want = suggested < 65536 ? 65536 : suggested;
	(void)suggested;
	if (s->tls != NULL) {
		buf->base = tls_scratch;
		buf->len = sizeof tls_scratch;
		return;
	}
	if (s->in_cap - s->in_len < want) {
		size_t cap = s->in_cap ? s->in_cap : 65536;
		char *p;
		while (cap - s->in_len < want) {
			cap *= 2;
		}
		p = realloc(s->in, cap);
		if (p == NULL) {
			buf->base = NULL;
			buf->len = 0;
			return;
		}
		s->in = p;
		s->in_cap = cap;
	}
	buf->base = s->in + s->in_len;
	buf->len = s->in_cap - s->in_len;
}

void node_session_read_frames(struct node_session *s)
{
	struct node_server *srv = s->srv;
	size_t off = 0;
	node_session_ref(s);
	while (!s->closing && s->in_len - off >= 4) {
		const unsigned char *p = (const unsigned char *)s->in + off;
		uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			     (uint32_t)p[2] << 8 | (uint32_t)p[3];
		Envelope *env;
		char why[300];
		if (n > srv->cfg.max_frame_bytes) {
			node_error(
				s, 0,
				RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_FRAME_TOO_LARGE,
				"frame of %u bytes is over the limit of %llu "
				"bytes; closing the connection",
				n,
				(unsigned long long)srv->cfg.max_frame_bytes);
			node_session_close(s);
			break;
		}
		if (s->in_len - off - 4 < n) {
			break; /* incomplete */
		}
		srv->frames_in++;
		env = raftmq__client__v1__envelope__unpack(NULL, n, p + 4);
		off += 4 + (size_t)n;
		if (env != NULL && !s->greeted &&
		    (!srv->cfg.auth ||
		     env->body_case ==
			     RAFTMQ__CLIENT__V1__ENVELOPE__BODY_HELLO)) {
			/* A client, not an idle connection: with auth on,
			 * only a Hello counts (a refused one closes). */
			s->greeted = true;
			if (s->hello_timer_on) {
				uv_timer_stop(&s->hello_timer);
			}
		}
		if (env == NULL) {
			node_error(
				s, 0,
				RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
				"frame of %u bytes is not a valid Envelope", n);
			continue;
		}
		if (node_codec_check_strings(p + 4, n, why, sizeof why) != 0) {
			node_error(
				s, env->correlation_id,
				RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_MALFORMED,
				"frame of %u bytes refused: %s", n, why);
			raftmq__client__v1__envelope__free_unpacked(env, NULL);
			continue;
		}
		s->frame_bytes = n;    /* sizes the request (node_batch_add) */
		node_dispatch(s, env); /* takes env */
		s->frame_bytes = 0;
	}
	if (off > 0 && !s->closing) {
		memmove(s->in, s->in + off, s->in_len - off);
		s->in_len -= off;
	}
	node_session_unref(s);
}

/* Decrypts what was read and handles the frames it completes. */
static void tls_read(struct node_session *s, const char *data, size_t n)
{
	int rv =
		node_tls_input(s->tls, data, n, &s->in, &s->in_len, &s->in_cap);
	switch (rv) {
	case NODE_TLS_OK:
		mark_dirty(s); /* handshake records may wait to be sent */
		node_session_read_frames(s);
		return;
	case NODE_TLS_PLAIN:
		/* Answer in the plain protocol so that the client can say
		 * why (node_session_close writes it unencrypted). */
		NODE_INFO(
			"session %llu from %s: plain client on the TLS "
			"port; refused",
			(unsigned long long)s->id, s->peer);
		node_tls_free(s->tls);
		s->tls = NULL;
		node_error(s, 0, EC(UNAUTHENTICATED),
			   "node %llu requires TLS on its client port: "
			   "connect with TLS (raftmq --tls, "
			   "raftmq_options.tls, Client(tls=True))",
			   (unsigned long long)s->srv->cfg.id);
		node_session_close(s);
		return;
	case NODE_TLS_CLOSED:
		node_session_close(s);
		return;
	default:
		NODE_INFO("session %llu from %s: %s; closing",
			  (unsigned long long)s->id, s->peer,
			  rv == NODE_TLS_NOMEM ? "out of memory for TLS"
					       : node_tls_errmsg(s->tls));
		node_session_close(s);
		return;
	}
}

/* A follower's leader watch (node_watch.c) announced itself: exempt it
 * from hello_timeout_ms, unless that many watches are already exempt (a
 * client imitating one gets no more than NODE_MAX_WATCHES idle slots). */
static void became_watch(struct node_session *s)
{
	struct node_server *srv = s->srv;
	if (srv->n_watches >= NODE_MAX_WATCHES) {
		NODE_INFO(
			"session %llu from %s: leader watch over the limit of "
			"%d; not exempt from hello_timeout_ms",
			(unsigned long long)s->id, s->peer, NODE_MAX_WATCHES);
		return;
	}
	s->watch = true;
	srv->n_watches++;
	if (s->hello_timer_on) {
		uv_timer_stop(&s->hello_timer);
	}
	NODE_DEBUG("session %llu from %s: a follower's leader watch",
		   (unsigned long long)s->id, s->peer);
}

/* The first bytes of a connection: a leader watch starts with
 * NODE_WATCH_HELLO and sends nothing else; a client starts with a frame
 * or a TLS record, neither of which begins with its first byte (0xff).
 * Takes data[0..n) and returns 1 while undecided (wait for more), 2 for a
 * complete watch announcement (the bytes are used up), 0 for anything else
 * (handle the bytes as usual; s->pre holds the first ones). */
static int sniff(struct node_session *s, const char *data, size_t n)
{
	size_t take = NODE_WATCH_HELLO_LEN - s->n_pre;
	if (s->n_pre == 0 && (unsigned char)data[0] != 0xff) {
		s->sniffed = true;
		return 0;
	}
	take = take < n ? take : n;
	memcpy(s->pre + s->n_pre, data, take);
	s->n_pre += take;
	if (memcmp(s->pre, NODE_WATCH_HELLO, s->n_pre) != 0 || take < n) {
		s->sniffed = true;
		return 0;
	}
	if (s->n_pre < NODE_WATCH_HELLO_LEN) {
		return 1;
	}
	s->sniffed = true;
	return 2;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct node_session *s = stream->data;
	int sniffed = 0;
	(void)buf;
	if (nread < 0) {
		if (nread != UV_EOF) {
			NODE_DEBUG("session %llu: read: %s",
				   (unsigned long long)s->id,
				   uv_strerror((int)nread));
		}
		node_session_close(s);
		return;
	}
	if (nread == 0) {
		return;
	}
	if (buf->base == NULL) {
		NODE_ERROR("session %llu: out of memory for input; closing",
			   (unsigned long long)s->id);
		node_session_close(s);
		return;
	}
	s->srv->bytes_in += (uint64_t)nread;
	if (s->watch) {
		/* A watch sends nothing after its announcement. */
		node_session_close(s);
		return;
	}
	if (!s->sniffed) {
		sniffed =
			sniff(s, s->tls != NULL ? buf->base : s->in + s->in_len,
			      (size_t)nread);
	}
	if (s->tls != NULL) {
		if (sniffed == 2) {
			node_tls_free(s->tls); /* a watch does not do TLS */
			s->tls = NULL;
			became_watch(s);
		} else if (sniffed == 0 && s->n_pre > 0) {
			/* Started like a watch but is not one: not TLS
			 * either (refused as a plain client). */
			tls_read(s, s->pre, s->n_pre);
		} else if (sniffed == 0) {
			tls_read(s, buf->base, (size_t)nread);
		}
		return;
	}
	s->in_len += (size_t)nread;
	if (sniffed == 2) {
		s->in_len = 0;
		became_watch(s);
		return;
	}
	if (sniffed == 0) {
		node_session_read_frames(s);
	}
}

/* No first request in time: an idle connection (or a stuck handshake). */
static void hello_timeout(uv_timer_t *t)
{
	struct node_session *s = t->data;
	struct node_server *srv = s->srv;
	srv->connections_idle_closed++;
	NODE_INFO(
		"session %llu from %s: no %s within %u ms of connecting "
		"(hello_timeout_ms); closing",
		(unsigned long long)s->id, s->peer,
		s->tls != NULL && !node_tls_ready(s->tls) ? "TLS handshake"
		: srv->cfg.auth				  ? "Hello"
							  : "request",
		srv->cfg.hello_timeout_ms);
	if (s->tls == NULL || node_tls_ready(s->tls)) {
		node_error(s, 0, EC(RESOURCE_LIMIT),
			   "no %s within %u ms of connecting "
			   "(hello_timeout_ms of node %llu); closing the "
			   "connection",
			   srv->cfg.auth ? "Hello" : "request",
			   srv->cfg.hello_timeout_ms,
			   (unsigned long long)srv->cfg.id);
	}
	node_session_close(s);
}

static void start_reading(struct node_session *s)
{
	if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) == 0) {
		s->reading = true;
	}
}

void node_session_accept(struct node_server *srv)
{
	struct node_session *s = calloc(1, sizeof *s);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	if (s == NULL) {
		return;
	}
	s->srv = srv;
	s->refs = 1;
	uv_tcp_init(srv->loop, &s->tcp);
	s->tcp.data = s;
	if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&s->tcp) !=
	    0) {
		s->closing = true;
		uv_close((uv_handle_t *)&s->tcp, closed_cb);
		return;
	}
	uv_tcp_nodelay(&s->tcp, 1);
	if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    ss.ss_family == AF_INET) {
		uv_ip4_name((struct sockaddr_in *)&ss, s->peer, sizeof s->peer);
	}
	s->id = ++srv->next_session_id;
	s->next = &srv->sessions;
	s->prev = srv->sessions.prev;
	srv->sessions.prev->next = s;
	srv->sessions.prev = s;
	srv->n_sessions++;
	srv->connections_total++;
	if (srv->tls_ctx != NULL) {
		s->tls = node_tls_new(srv->tls_ctx);
		if (s->tls == NULL) {
			NODE_ERROR("out of memory for a TLS session; closing");
			node_session_close(s);
			return;
		}
	}
	if (srv->cfg.hello_timeout_ms > 0 &&
	    uv_timer_init(srv->loop, &s->hello_timer) == 0) {
		s->hello_timer.data = s;
		s->hello_timer_on = true;
		node_session_ref(s); /* dropped when the timer is closed */
		uv_timer_start(&s->hello_timer, hello_timeout,
			       srv->cfg.hello_timeout_ms, 0);
	}
	if (srv->n_sessions > srv->cfg.max_connections) {
		srv->connections_refused++;
		node_error(
			s, 0,
			RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_RESOURCE_LIMIT,
			"too many connections (max_connections = %u)",
			srv->cfg.max_connections);
		node_session_close(s);
		return;
	}
	start_reading(s);
}
