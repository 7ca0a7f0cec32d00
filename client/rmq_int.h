/*
 * Internals of libraftmq shared between the files of client/ (and its unit
 * tests). Never installed. Names shared between files use the rmq__ prefix.
 */
#ifndef RMQ_INT_H
#define RMQ_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "raftmq.h"

/* Short names for the generated protobuf-c types. */
typedef Raftmq__Client__V1__Envelope rmq_env;
typedef Raftmq__Client__V1__Publish rmq_publish_msg;
typedef Raftmq__Client__V1__Delivery rmq_delivery_msg;
typedef Raftmq__Client__V1__QueueSettings rmq_settings_msg;

#define RMQ_BODY(x) RAFTMQ__CLIENT__V1__ENVELOPE__BODY_##x
#define RMQ_ERR(x) RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_##x

/* The highest protocol version the library speaks (Hello). Frames are
 * written in version 1 unless their body needs more (Peek: 2, FetchBodies:
 * 3), so that older servers keep serving everything else. */
#define RMQ_PROTOCOL_VERSION 3u
#define RMQ_FRAME_VERSION(body_case)                \
	((body_case) == RMQ_BODY(FETCH_BODIES) ? 3u \
	 : (body_case) == RMQ_BODY(PEEK)       ? 2u \
					       : 1u)
#define RMQ_DEFAULT_MAX_FRAME (8u * 1024 * 1024)
#define RMQ_NO_DEADLINE UINT64_MAX

/* ------------------------------------------------------------------------
 * rmq_frame.c: framing (4-byte big-endian length + one Envelope).
 */

/* A growable byte buffer. */
struct rmq_buf {
	uint8_t *data; /* owned */
	size_t len;
	size_t cap;
};

void rmq__buf_close(struct rmq_buf *b);
/* Makes room for `extra` more bytes. Returns 0 or RAFTMQ_ENOMEM. */
int rmq__buf_reserve(struct rmq_buf *b, size_t extra);

/*
 * Accumulates bytes read from a stream and cuts them into frames. The
 * length prefix is checked against max_frame before any body is buffered,
 * so an oversized frame is refused without allocating for it.
 */
struct rmq_frame_reader {
	struct rmq_buf buf; /* unread bytes start at off */
	size_t off;
	size_t max_frame; /* largest accepted frame body */
};

void rmq__frame_reader_init(struct rmq_frame_reader *rd, size_t max_frame);
void rmq__frame_reader_close(struct rmq_frame_reader *rd);
/* Drops buffered bytes (after a reconnect). */
void rmq__frame_reader_reset(struct rmq_frame_reader *rd);
/* Appends n bytes (borrowed). Returns 0 or RAFTMQ_ENOMEM. */
int rmq__frame_reader_feed(struct rmq_frame_reader *rd, const void *data,
			   size_t n);
/*
 * Room for at least `want` bytes at the end of the buffer: *p and *avail
 * describe it; after writing k bytes there call rmq__frame_reader_commit.
 */
int rmq__frame_reader_space(struct rmq_frame_reader *rd, size_t want,
			    uint8_t **p, size_t *avail);
void rmq__frame_reader_commit(struct rmq_frame_reader *rd, size_t k);
/*
 * Next complete frame. On 0, *ready says whether one was cut; if so *frame
 * (borrowed from rd, valid until the next call on rd) and *len describe its
 * body (len may be 0). Returns RAFTMQ_EFRAME_TOO_LARGE when the next length
 * prefix exceeds max_frame (the stream cannot be resynchronised).
 */
int rmq__frame_next(struct rmq_frame_reader *rd, const uint8_t **frame,
		    size_t *len, bool *ready);

/*
 * Appends the frame of `env` (borrowed; its version is used as is) to out.
 * Returns 0, RAFTMQ_ENOMEM, RAFTMQ_EFRAME_TOO_LARGE (packed size over
 * max_frame; out unchanged).
 */
int rmq__frame_encode(const rmq_env *env, size_t max_frame,
		      struct rmq_buf *out);

/*
 * Decodes one frame body into *out (transferred: rmq__env_free). Returns 0
 * or RAFTMQ_EPROTO (undecodable, version 0, or version newer than ours, or
 * body not set).
 */
int rmq__frame_decode(const uint8_t *frame, size_t len, rmq_env **out);
void rmq__env_free(rmq_env *env);

/* ------------------------------------------------------------------------
 * rmq_net.c: addresses and sockets.
 */

struct rmq_addr {
	char *host; /* owned; without IPv6 brackets */
	char *port; /* owned */
};

/* Parses "h:p,h:p". *out (transferred) gets *n >= 1 entries. Returns 0,
 * RAFTMQ_EINVAL (err gets why), RAFTMQ_ENOMEM. */
int rmq__addr_parse_list(const char *s, struct rmq_addr **out, size_t *n,
			 char *err, size_t errlen);
int rmq__addr_parse(const char *s, size_t len, struct rmq_addr *out);
void rmq__addr_free(struct rmq_addr *a, size_t n);

/* Non-blocking TCP connect with a timeout; *fd is non-blocking with
 * TCP_NODELAY. Returns 0 or RAFTMQ_ECONNECT (err gets why). */
int rmq__net_connect(const char *host, const char *port, unsigned timeout_ms,
		     int *fd, char *err, size_t errlen);

uint64_t rmq__now_ms(void);
/* Milliseconds until deadline for poll(): -1 for none, 0 if past. */
int rmq__poll_timeout(uint64_t deadline);
uint64_t rmq__deadline(uint64_t timeout_ms);

/* ------------------------------------------------------------------------
 * rmq_conn.c: the connection engine.
 */

/* How a pending call behaves on failover after it was sent. */
enum rmq_replay {
	RMQ_REPLAY_RESEND,  /* idempotent: send again on the new connection */
	RMQ_REPLAY_UNKNOWN, /* fail with RAFTMQ_EUNKNOWN_OUTCOME */
	RMQ_REPLAY_STALE,   /* bound to the old session: RAFTMQ_ESTALE */
};

/* One blocking request in progress (at most one per connection). */
struct rmq_call {
	rmq_env *req; /* borrowed from the caller during the call */
	enum rmq_replay replay;
	bool retry_outcome; /* TIMEOUT/UNKNOWN_OUTCOME: resend (idempotent) */
	uint64_t corr;	    /* of the last send */
	bool sent;	    /* sent on the current connection */
	bool done;
	int rv;		   /* when done */
	uint64_t retry_at; /* when waiting to resend after a backoff */
	unsigned attempts;
	rmq_env *resp; /* owned when done with rv == 0 */
};

/* One pipelined publish (a private copy of the message). */
struct rmq_pub {
	struct rmq_pub *next;
	uint64_t corr;
	void *user_data;     /* retained for the caller */
	rmq_publish_msg msg; /* pointers into mem */
	void *mem;	     /* owned: target name, msg_id, body */
	bool sent;
	uint64_t retry_at;
	unsigned attempts;
	uint64_t deadline;     /* fail with ETIMEOUT after this */
	struct rmq_done *done; /* owned: preallocated outcome record */
};

struct rmq_done {
	struct rmq_done *next;
	struct raftmq_confirm c;
};

struct rmq_dnode {
	struct rmq_dnode *next;
	struct raftmq_consumer *consumer; /* borrowed from conn->consumers */
	struct raftmq_delivery d;	  /* owned */
};

enum rmq_consumer_state {
	RMQ_CONSUMER_ATTACHING,
	RMQ_CONSUMER_ATTACHED,
	RMQ_CONSUMER_GONE,
};

struct raftmq_consumer {
	struct raftmq_consumer *next;
	char *queue; /* owned */
	uint32_t prefetch;
	uint64_t corr; /* of the Consume that attached it */
	uint64_t id;   /* server id; 0 while attaching */
	enum rmq_consumer_state state;
	bool sent;	   /* Consume sent on the current connection */
	uint64_t retry_at; /* after TIMEOUT/UNKNOWN_OUTCOME */
	unsigned attempts;
	int err;	  /* when GONE */
	char errmsg[200]; /* when GONE */
};

/* What the last attempt to reach one configured address gave, since the
 * current call began (rmq_conn.c): a request that finds no leader says
 * which nodes answer and why the others do not. */
struct rmq_seen {
	uint64_t node_id; /* answered Hello as this node; 0 = did not */
	char why[96];	  /* why the last attempt failed; "" = none failed */
};

struct raftmq {
	struct rmq_addr *addrs; /* owned */
	struct rmq_seen *seen;	/* owned, one per addrs entry */
	char no_leader[256];	/* the last UNAVAILABLE sentence of a node */
	size_t n_addrs;
	size_t next_addr;
	char *client_name; /* owned */
	char *auth_token;  /* owned */
	/* owned; NULL = plain TCP (rmq_tls.c) */
	struct rmq_tls *tls;
	unsigned connect_timeout_ms;
	unsigned request_timeout_ms;
	unsigned window;
	size_t max_frame;
	bool stay; /* raftmq_options.stay: never follow a leader */
	raftmq_confirm_cb confirm_cb;
	void *confirm_data;

	int fd;			/* -1 when not connected */
	bool broken;		/* reconnect before the next I/O */
	struct rmq_addr hint;	/* owned; leader to try first (host NULL) */
	unsigned failures;	/* consecutive failures, drives the backoff */
	bool reconnecting;	/* between losing a connection and a new one */
	uint64_t attempt_at;	/* reconnecting: next attempt not before */
	unsigned hops;		/* reconnecting: redirects followed so far */
	char last_failure[512]; /* reconnecting: why the last attempt failed */
	uint64_t rng;		/* backoff jitter */
	uint64_t node_id;
	uint64_t leader_id;
	size_t server_max_frame;
	uint64_t next_corr;

	struct rmq_frame_reader rd;
	struct rmq_buf wbuf;

	struct rmq_call *call; /* borrowed from the blocking caller */
	struct rmq_pub *pubs, *pubs_tail; /* owned, in send order */
	size_t n_pubs;
	struct rmq_done *done, *done_tail; /* owned, collected outcomes */
	uint64_t n_reported;		   /* outcomes reported so far */
	struct rmq_dnode *dq, *dq_tail;	   /* owned, undelivered deliveries */
	struct raftmq_consumer *consumers; /* owned */
	uint64_t *pull_ids; /* owned: live pull consumers (fetch) */
	size_t n_pull, cap_pull;
	/* raftmq_ack_async: tags not sent yet (all of one consumer), and
	 * the correlation ids of the Acks sent and not answered. */
	uint64_t ack_consumer;
	uint64_t *ack_tags; /* owned */
	size_t n_ack_tags, cap_ack_tags;
	uint64_t ack_since;  /* when the oldest unsent tag was queued */
	uint64_t *ack_corrs; /* owned */
	size_t n_ack_corrs, cap_ack_corrs;
	int ack_err; /* first failure of an async ack (0 = none) */
	char ack_errmsg[200];
	/* raftmq_close: the Cancels of its goodbye have the correlation ids
	 * [bye_lo, bye_hi); bye_left of them are not answered yet. */
	uint64_t bye_lo, bye_hi;
	uint64_t bye_left;

	char errmsg[512];
};

/* printf into conn->errmsg; returns code (for `return rmq__fail(...)`). */
int rmq__fail(struct raftmq *conn, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

uint64_t rmq__corr(struct raftmq *conn);

/* Sends env (borrowed) on the current connection, setting its version and
 * correlation id. On a socket error marks the connection broken and returns
 * 0 (the failover logic will resend); returns RAFTMQ_ENOMEM or
 * RAFTMQ_EFRAME_TOO_LARGE for errors that a resend cannot fix. */
int rmq__send(struct raftmq *conn, rmq_env *env, uint64_t corr);
/* As rmq__send, but the frame may wait in conn->wbuf until rmq__flush: the
 * pump flushes before it waits for input, and a full batch flushes itself.
 * For frames whose answer the caller can only learn from a later call. */
int rmq__queue(struct raftmq *conn, rmq_env *env, uint64_t corr);
/* Writes the queued frames (on a socket error marks conn broken). */
void rmq__flush(struct raftmq *conn);

/* Reads and dispatches what has already arrived, without waiting (and
 * without reconnecting). */
void rmq__read_ready(struct raftmq *conn);

/* Reads and dispatches what arrives until `deadline`, or less: returns 0
 * after any progress or wake-up, RAFTMQ_ETIMEOUT once the deadline passed,
 * RAFTMQ_ECONNECT if reconnecting failed until the deadline. */
int rmq__pump(struct raftmq *conn, uint64_t deadline);

/*
 * Sends the request `req` (borrowed; body set by the caller) and waits for
 * its response, with redirects, failover and retries, until `deadline`. On
 * 0, *resp (transferred) is the result envelope (never an Error). Otherwise
 * returns the server's code (errmsg = its sentence) or a local one.
 */
int rmq__call(struct raftmq *conn, rmq_env *req, enum rmq_replay replay,
	      bool retry_outcome, uint64_t deadline, rmq_env **resp);

/* As rmq__call with a deadline of the request timeout + extra_ms, and a
 * check that the answer's body is body_case (else RAFTMQ_EPROTO). */
int rmq__call_expect(struct raftmq *conn, rmq_env *req, enum rmq_replay replay,
		     bool retry_outcome, uint64_t extra_ms, int body_case,
		     rmq_env **resp);

/* What to do about an Error answer to a request. */
enum rmq_action {
	RMQ_ACT_FAIL,	  /* report it to the caller */
	RMQ_ACT_FAILOVER, /* conn->broken set: resend after reconnecting */
	RMQ_ACT_RETRY,	  /* resend on this connection after a backoff */
};

/* Classifies e; for FAILOVER records the leader hint and marks conn
 * broken. retry_outcome: TIMEOUT/UNKNOWN_OUTCOME are safe to retry. */
enum rmq_action rmq__classify(struct raftmq *conn,
			      const Raftmq__Client__V1__Error *e,
			      bool retry_outcome);

/* Backoff before retry number n (1-based), with jitter. */
uint64_t rmq__backoff_ms(struct raftmq *conn, unsigned n);

/* Maps an Error body to conn->errmsg and returns its code. */
int rmq__server_error(struct raftmq *conn, const Raftmq__Client__V1__Error *e);

/* rmq_publish.c */
/* Sends due pipelined publishes, fails expired ones, lowers *wake to the
 * next retry time. */
void rmq__pubs_tick(struct raftmq *conn, uint64_t now, uint64_t *wake);
void rmq__pub_free(struct rmq_pub *p);
void rmq__pubs_on_response(struct raftmq *conn, struct rmq_pub *p,
			   rmq_env *env);
void rmq__pub_report(struct raftmq *conn, struct rmq_pub *p, int err,
		     const char *message, uint64_t seq, bool dup);
int rmq__publish_fill(struct raftmq *conn, const struct raftmq_message *m,
		      rmq_publish_msg *pm, char *idbuf);

/* rmq_consume.c */
void rmq__consumer_on_frame(struct raftmq *conn, struct raftmq_consumer *c,
			    rmq_env *env);
/* The goodbye of raftmq_close: queues (rmq__queue) one Cancel per attached
 * consumer, naming its undelivered deliveries, and one per pull consumer,
 * marks every consumer GONE, drops the queued deliveries and sets
 * conn->bye_*. The caller flushes and waits for the answers. */
void rmq__consumers_goodbye(struct raftmq *conn);
/* Drops the queued deliveries of c (all if c is NULL). */
void rmq__dq_drop(struct raftmq *conn, const struct raftmq_consumer *c);
int rmq__consumer_send(struct raftmq *conn, struct raftmq_consumer *c);
void rmq__consumer_free(struct raftmq_consumer *c);
/* Sends the queued async acks, if any. Returns 0 or RAFTMQ_ENOMEM. */
int rmq__acks_send(struct raftmq *conn);
/* If corr is an async Ack's, takes env (transferred) and returns true. */
bool rmq__acks_on_frame(struct raftmq *conn, rmq_env *env);
/* After a reconnect: async acks queued or in flight are void (the server
 * requeued their messages with the old session). */
void rmq__acks_reset(struct raftmq *conn);
int rmq__delivery_copy(const rmq_delivery_msg *m, struct raftmq_delivery *d);

/* rmq_admin.c */
void rmq__settings_to_msg(const struct raftmq_queue_settings *s,
			  rmq_settings_msg *m);

#endif /* RMQ_INT_H */
