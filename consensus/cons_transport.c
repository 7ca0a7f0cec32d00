/* Raft's TCP connections: raft_uv_tcp, with every stream tuned and every
 * connection attempt bounded in time.
 *
 * raft_uv_tcp leaves a stuck connection alone for minutes. Its outbound
 * streams are only ever written (raft_uv reads the inbound ones), so a
 * connection whose packets were dropped (a partition) stays in the kernel's
 * retransmission backoff after the network heals: the next retransmission
 * can be 10-25 s away, and raft_uv keeps queueing messages behind it
 * instead of reconnecting. Its connect has no deadline either: a SYN to a
 * cut-off peer is retried with backoff (1, 2, 4, ... s; about 2 minutes in
 * all), and raft_uv waits for that attempt before it tries again. Both
 * made a healthy pair of nodes unable to elect a leader for 10-18 s after
 * a partition healed (docs/libraft.md, "Stuck connections").
 *
 * So every Raft stream, accepted or connected, gets (cons__tcp_tune):
 *   - TCP_NODELAY: raft_uv_tcp never sets it, and Nagle plus delayed acks
 *     cost ~40 ms per round trip with small entries (bench/raft_ref.c
 *     measured p50 44 ms and 3-7k msgs/s without it, 140-180k with it);
 *   - TCP_USER_TIMEOUT: data unacknowledged for `user_ms` fails the
 *     connection (ETIMEDOUT). raft_uv sees the failure at its next write,
 *     fails that send and reconnects at once;
 *   - keepalive, so that an idle connection across a partition (an
 *     inbound stream, a follower's connection that carries nothing) is
 *     found dead within about the same time and released.
 * And connections are made here rather than by raft_uv_tcp: the socket is
 * tuned before its SYN (TCP_USER_TIMEOUT then also bounds the handshake),
 * and an attempt that has not completed (connected and handshake written)
 * within `connect_ms` fails with RAFT_NOCONNECTION; raft_uv retries after
 * its connect retry delay (set from the same numbers in cons_node.c). The
 * handshake is raft_uv_tcp's wire format, which its listener checks: three
 * little-endian u64 (protocol 1, our server id, the length of the address
 * field) and our address, NUL-terminated and zero-padded to 8 bytes.
 * Listening stays raft_uv_tcp's.
 *
 * Sizes come from the election timeout E and heartbeat H (cons__tcp_times):
 * user_ms = max(E, 5 H): a connection is given up when it would have cost
 * an election anyway, and never before a few heartbeats went unanswered;
 * connect_ms = user_ms; raft_uv's retry delay after a failed attempt
 * max(H, E/4) (cons_node.c); keepalive probes after max(1, E/1000) s idle,
 * every second. With the defaults (E 1000 ms, H 100 ms): 1000 ms, 1000 ms,
 * 250 ms, 1 s. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cons_int.h"

#define HANDSHAKE_PROTOCOL 1 /* raft_uv_tcp's UV__TCP_HANDSHAKE_PROTOCOL */

static struct cons *of_transport(struct raft_uv_transport *t)
{
	return (struct cons *)(void *)((char *)t -
				       offsetof(struct cons, transport));
}

void cons__tcp_times(unsigned election_ms, unsigned heartbeat_ms,
		     struct cons_tcp_times *out)
{
	unsigned user = election_ms;
	if (user < 5 * heartbeat_ms) {
		user = 5 * heartbeat_ms;
	}
	out->user_ms = user;
	out->connect_ms = user;
	out->retry_ms =
		election_ms / 4 > heartbeat_ms ? election_ms / 4 : heartbeat_ms;
	out->keepidle_s = election_ms / 1000 > 0 ? election_ms / 1000 : 1;
	out->keepintvl_s = 1;
	/* Only used where TCP_USER_TIMEOUT is not: the same span. */
	out->keepcnt = user / 1000 + 1;
}

int cons__tcp_tune(struct uv_tcp_s *tcp, const struct cons_tcp_times *t)
{
	uv_os_fd_t fd;
	int one = 1;
	int idle = (int)t->keepidle_s, intvl = (int)t->keepintvl_s;
	int cnt = (int)t->keepcnt;
	unsigned user = t->user_ms;
	int rv = uv_fileno((uv_handle_t *)tcp, &fd);
	if (rv != 0) {
		return rv;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) !=
		    0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) !=
		    0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof user) !=
		    0) {
		return uv_translate_sys_error(errno);
	}
	return 0;
}

int cons_tcp_tune(const struct cons *c, struct uv_tcp_s *tcp)
{
	return cons__tcp_tune(tcp, &c->tcp_times);
}

/* ------------------------------------------------------------- accepting */

/* raft_uv passes its own static callback on every listen: one copy per
 * process is enough. */
static raft_uv_accept_cb orig_accept_cb;

static void tuned_accept_cb(struct raft_uv_transport *t, raft_id id,
			    const char *address, struct uv_stream_s *stream)
{
	if (stream != NULL) {
		/* best effort: an untuned stream still works */
		(void)cons__tcp_tune((uv_tcp_t *)stream,
				     &of_transport(t)->tcp_times);
	}
	orig_accept_cb(t, id, address, stream);
}

static int tuned_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	orig_accept_cb = cb;
	return of_transport(t)->orig_listen(t, tuned_accept_cb);
}

/* ------------------------------------------------------------ connecting
 *
 * One attempt: resolve (uv_getaddrinfo, IPv4 as raft_uv_tcp does), open a
 * tuned socket, connect, write the handshake, hand the stream to raft_uv.
 * A deadline timer runs throughout. The attempt ends once: with the stream
 * (status 0: raft_uv's callback fires at once), or with a failure, the
 * deadline or the transport closing (RAFT_CANCELED): then the callback
 * fires once the socket and the timer are closed and no lookup is running,
 * as raft_uv_tcp's own connect does, and the memory is released. */

struct cons_connect {
	struct cons *c;
	struct raft_uv_connect *req; /* raft_uv's, retained until cb */
	raft_uv_connect_cb cb;
	uv_getaddrinfo_t gai;
	uv_tcp_t *tcp; /* raft_malloc()ed: raft_uv frees it once it has it */
	uv_connect_t connect;
	uv_write_t write;
	uv_timer_t timer;
	uv_buf_t handshake; /* points into hs */
	uint8_t hs[24 + sizeof((struct cons *)0)->raft_address + 8];
	int open;	/* handles not yet closed, lookups not yet done */
	int status;	/* why it failed */
	bool resolving; /* uv_getaddrinfo in flight */
	bool done;	/* ended: stream handed over, or failing */
	bool handed;	/* the stream went to raft_uv (cb fired) */
	struct cons_connect *next, **pprev; /* c->connects */
};

static void maybe_fire_close(struct cons *c)
{
	if (c->transport_closing && c->orig_closed && c->connects == NULL &&
	    c->transport_close_cb != NULL) {
		raft_uv_transport_close_cb cb = c->transport_close_cb;
		c->transport_close_cb = NULL;
		cb(&c->transport);
	}
}

static void release(struct cons_connect *k)
{
	struct cons *c = k->c;
	if (--k->open > 0) {
		return;
	}
	*k->pprev = k->next;
	if (k->next != NULL) {
		k->next->pprev = k->pprev;
	}
	if (!k->handed) {
		k->cb(k->req, NULL, k->status);
	}
	free(k);
	maybe_fire_close(c);
}

static void handle_closed(uv_handle_t *h)
{
	struct cons_connect *k = h->data;
	if (h == (uv_handle_t *)k->tcp) {
		raft_free(k->tcp);
		k->tcp = NULL;
	}
	release(k);
}

/* Ends the attempt with `status` (not 0); raft_uv is told once everything
 * is closed (release). */
static void fail(struct cons_connect *k, int status)
{
	if (k->done) {
		return;
	}
	k->done = true;
	k->status = status;
	if (k->resolving) {
		(void)uv_cancel((uv_req_t *)&k->gai); /* gai_cb will come */
	}
	if (k->tcp != NULL) {
		k->open++;
		uv_close((uv_handle_t *)k->tcp, handle_closed);
	}
	uv_close((uv_handle_t *)&k->timer, handle_closed);
}

static void timer_cb(uv_timer_t *timer)
{
	fail(timer->data, RAFT_NOCONNECTION);
}

static void write_cb(uv_write_t *w, int status)
{
	struct cons_connect *k = w->data;
	uv_tcp_t *tcp = k->tcp;
	if (k->done) {
		return; /* UV_ECANCELED: we are closing it */
	}
	if (status != 0) {
		fail(k, RAFT_NOCONNECTION);
		return;
	}
	k->done = true;
	k->handed = true;
	k->tcp = NULL; /* raft_uv's now */
	tcp->data = NULL;
	uv_close((uv_handle_t *)&k->timer, handle_closed);
	k->cb(k->req, (struct uv_stream_s *)tcp, 0);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct cons_connect *k = req->data;
	if (k->done) {
		return;
	}
	if (status != 0 || uv_write(&k->write, (uv_stream_t *)k->tcp,
				    &k->handshake, 1, write_cb) != 0) {
		fail(k, RAFT_NOCONNECTION);
	}
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct cons_connect *k = req->data;
	struct cons *c = k->c;
	int rv;
	k->resolving = false;
	if (k->done || status != 0 || res == NULL) {
		uv_freeaddrinfo(res);
		if (!k->done) {
			fail(k, RAFT_NOCONNECTION);
		}
		release(k); /* the lookup's reference */
		return;
	}
	k->tcp = raft_malloc(sizeof *k->tcp);
	if (k->tcp == NULL) {
		uv_freeaddrinfo(res);
		fail(k, RAFT_NOCONNECTION);
		release(k);
		return;
	}
	/* uv_tcp_init_ex creates the socket now, so it is tuned before the
	 * SYN; a failure to tune is not fatal (the deadline still holds). */
	rv = uv_tcp_init_ex(c->loop, k->tcp, AF_INET);
	if (rv != 0) {
		raft_free(k->tcp);
		k->tcp = NULL;
		uv_freeaddrinfo(res);
		fail(k, RAFT_NOCONNECTION);
		release(k);
		return;
	}
	k->tcp->data = k;
	(void)cons__tcp_tune(k->tcp, &c->tcp_times);
	rv = uv_tcp_connect(&k->connect, k->tcp, res->ai_addr, connect_cb);
	uv_freeaddrinfo(res);
	if (rv != 0) {
		fail(k, RAFT_NOCONNECTION);
	}
	release(k);
}

/* "host:port" into host and port (the last colon splits them). */
static int split_address(const char *address, char *host, size_t hlen,
			 char *port, size_t plen)
{
	const char *colon = strrchr(address, ':');
	size_t n;
	if (colon == NULL || colon == address || colon[1] == '\0') {
		return -1;
	}
	n = (size_t)(colon - address);
	if (n >= hlen || strlen(colon + 1) >= plen) {
		return -1;
	}
	memcpy(host, address, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	unsigned i;
	for (i = 0; i < 8; i++) {
		p[i] = (uint8_t)(v >> (8 * i));
	}
}

static int tuned_connect(struct raft_uv_transport *t,
			 struct raft_uv_connect *req, raft_id id,
			 const char *address, raft_uv_connect_cb cb)
{
	struct cons *c = of_transport(t);
	struct addrinfo hints;
	struct cons_connect *k;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	size_t alen = strlen(c->raft_address) + 1;
	size_t padded = (alen + 7) / 8 * 8;
	int rv;
	(void)id;

	if (c->transport_closing ||
	    split_address(address, host, sizeof host, port, sizeof port) != 0) {
		return RAFT_NOCONNECTION;
	}
	k = calloc(1, sizeof *k);
	if (k == NULL) {
		return RAFT_NOMEM;
	}
	k->c = c;
	k->req = req;
	k->cb = cb;
	req->cb = cb;
	k->gai.data = k;
	k->connect.data = k;
	k->write.data = k;
	k->timer.data = k;
	put_le64(k->hs, HANDSHAKE_PROTOCOL);
	put_le64(k->hs + 8, c->id);
	put_le64(k->hs + 16, padded);
	memcpy(k->hs + 24, c->raft_address, alen); /* calloc: zero padding */
	k->handshake = uv_buf_init((char *)k->hs, (unsigned)(24 + padded));

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	rv = uv_getaddrinfo(c->loop, &k->gai, gai_cb, host, port, &hints);
	if (rv != 0) {
		free(k);
		return RAFT_NOCONNECTION;
	}
	k->resolving = true;
	k->open = 2; /* the timer and the lookup */
	(void)uv_timer_init(c->loop, &k->timer);
	(void)uv_timer_start(&k->timer, timer_cb, c->tcp_times.connect_ms, 0);
	k->next = c->connects;
	k->pprev = &c->connects;
	if (c->connects != NULL) {
		c->connects->pprev = &k->next;
	}
	c->connects = k;
	return 0;
}

/* -------------------------------------------------------------- closing */

static void orig_closed_cb(struct raft_uv_transport *t)
{
	struct cons *c = of_transport(t);
	c->orig_closed = true;
	maybe_fire_close(c);
}

static void tuned_close(struct raft_uv_transport *t,
			raft_uv_transport_close_cb cb)
{
	struct cons *c = of_transport(t);
	struct cons_connect *k, *next;
	c->transport_closing = true;
	c->transport_close_cb = cb;
	for (k = c->connects; k != NULL; k = next) {
		next = k->next; /* fail() frees nothing, calls nothing now */
		fail(k, RAFT_CANCELED);
	}
	c->orig_close(t, orig_closed_cb);
}

void cons__transport_wrap(struct cons *c)
{
	c->orig_listen = c->transport.listen;
	c->orig_close = c->transport.close;
	c->transport.listen = tuned_listen;
	c->transport.connect = tuned_connect;
	c->transport.close = tuned_close;
}
