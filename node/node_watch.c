/* Followers watch the leader's process: each holds one idle TCP connection
 * to the leader's client port. When it is closed or refused, the leader's
 * process is gone (kill -9, crash, power-off of a host that still answers
 * with a reset): the follower asks consensus/ to campaign now
 * (cons_hurry_election) instead of waiting out the election timeout, which
 * cannot tell a dead leader from a slow one and so has to be long. A leader
 * that is only slow or paused keeps the connection open (its kernel still
 * answers), so load never makes this fire.
 *
 * The connection has the options of the Raft connections (cons_tcp_tune:
 * keepalive and TCP_USER_TIMEOUT from the election timeout), so it cannot
 * outlive a path to the leader that drops packets: a partition fails it in
 * about an election timeout, which hurries an election no sooner than the
 * election timer would (pre-vote keeps it harmless if the others still hear
 * the leader). Once it has fired, the watch is made again after an
 * election timeout while the same leader leads, so that a leader still in
 * office after a partition heals is watched again.
 *
 * The connection sends only NODE_WATCH_HELLO, which tells the leader to
 * exempt it from hello_timeout_ms (no Hello, so authentication does not
 * matter, and plain TCP even on a TLS port), and everything it receives is
 * discarded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cons_defaults.h"
#include "node_int.h"
#include "node_log.h"

struct node_watch {
	struct node_server *srv;
	uv_tcp_t tcp;
	uv_timer_t again; /* makes the watch again after it fired */
	uv_connect_t connect;
	uv_write_t write;   /* NODE_WATCH_HELLO */
	uint64_t leader_id; /* the leader this connection watches */
	char address[64];   /* its client address */
	int handles;	    /* initialised and not closed yet */
	bool fired;	    /* already reported gone */
	char buf[256];
};

static void closed_cb(uv_handle_t *h)
{
	struct node_watch *w = h->data;
	if (--w->handles == 0) {
		free(w);
	}
}

static void watch_close(struct node_watch *w)
{
	uv_close((uv_handle_t *)&w->again, closed_cb);
	uv_close((uv_handle_t *)&w->tcp, closed_cb);
}

/* An election timeout after the watch fired: still following the same
 * leader (the election did not happen or that leader won again), so watch
 * it anew. */
static void again_cb(uv_timer_t *t)
{
	struct node_watch *w = t->data;
	struct node_server *srv = w->srv;
	uint64_t id = w->leader_id;
	char address[sizeof w->address];
	if (srv->watch != w || srv->stopping) {
		return;
	}
	memcpy(address, w->address, sizeof address);
	srv->watch = NULL;
	watch_close(w);
	node_watch_leader(srv, id, address);
}

/* The leader went away: hurry unless we moved on already. */
static void gone(struct node_watch *w, const char *why)
{
	struct node_server *srv = w->srv;
	if (w->fired || srv->watch != w) {
		return;
	}
	w->fired = true;
	NODE_INFO("leader %llu is gone (%s): starting an election now",
		  (unsigned long long)w->leader_id, why);
	cons_hurry_election(srv->cons, w->leader_id);
	(void)uv_timer_start(&w->again, again_cb,
			     srv->cfg.election_timeout_ms > 0
				     ? srv->cfg.election_timeout_ms
				     : CONS_DEFAULT_ELECTION_MS,
			     0);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct node_watch *w = h->data;
	(void)size;
	*buf = uv_buf_init(w->buf, sizeof w->buf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct node_watch *w = s->data;
	(void)buf;
	if (n >= 0) {
		return; /* whatever the leader says, we do not need it */
	}
	uv_read_stop(s);
	gone(w, n == UV_EOF ? "connection closed" : uv_strerror((int)n));
}

/* A failed write shows as a failed read too: nothing to do here. */
static void write_cb(uv_write_t *req, int status)
{
	(void)req;
	(void)status;
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct node_watch *w = req->data;
	uv_buf_t hello =
		uv_buf_init((char *)NODE_WATCH_HELLO, NODE_WATCH_HELLO_LEN);
	if (status == UV_ECANCELED) {
		return; /* closed while connecting */
	}
	if (status != 0) {
		gone(w, uv_strerror(status));
		return;
	}
	if (uv_write(&w->write, (uv_stream_t *)&w->tcp, &hello, 1, write_cb) !=
		    0 ||
	    uv_read_start((uv_stream_t *)&w->tcp, alloc_cb, read_cb) != 0) {
		gone(w, "cannot read");
	}
}

void node_watch_leader(struct node_server *srv, uint64_t leader_id,
		       const char *client_address)
{
	struct node_watch *w = srv->watch;
	struct sockaddr_in sa;

	if (w != NULL && w->leader_id == leader_id && leader_id != 0) {
		return;
	}
	if (w != NULL) {
		srv->watch = NULL;
		watch_close(w);
	}
	if (leader_id == 0 || leader_id == srv->cfg.id || srv->stopping ||
	    client_address == NULL || client_address[0] == '\0' ||
	    node_resolve(client_address, &sa) != 0) {
		return;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		return; /* only the fast path is lost */
	}
	w->srv = srv;
	w->leader_id = leader_id;
	snprintf(w->address, sizeof w->address, "%s", client_address);
	w->tcp.data = w;
	w->again.data = w;
	w->connect.data = w;
	/* _ex: the socket exists now and is tuned before the SYN */
	if (uv_tcp_init_ex(srv->loop, &w->tcp, AF_INET) != 0) {
		free(w);
		return;
	}
	(void)cons_tcp_tune(srv->cons, &w->tcp); /* best effort */
	(void)uv_timer_init(srv->loop, &w->again);
	w->handles = 2;
	srv->watch = w;
	if (uv_tcp_connect(&w->connect, &w->tcp, (struct sockaddr *)&sa,
			   connect_cb) != 0) {
		srv->watch = NULL;
		watch_close(w);
	}
}
