/* Internals of node/: the server, client sessions, request batching (group
 * commit) and what they share. Never included outside node/. */
#ifndef RAFTMQ_NODE_INT_H
#define RAFTMQ_NODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client.pb-c.h"
#include "cons.h"
#include "node_config.h"
#include "q.h"

typedef Raftmq__Client__V1__Envelope Envelope;

/* The largest prefetch a push consumer gets; 0 ("unlimited") means this. */
#define NODE_MAX_PREFETCH 65536

struct node_server;
struct node_session;
struct node_tls;
struct ssl_ctx_st;

/* ------------------------------------------------------------ out buffer */

/* A growable byte buffer; frames are encoded straight into it. */
struct node_buf {
	char *base; /* owned */
	size_t len, cap;
};
int node_buf_reserve(struct node_buf *b, size_t extra);
void node_buf_free(struct node_buf *b);

/* --------------------------------------------------------------- requests */

/* One client request on its way through a batch. Its commands are
 * cmds[first .. first + count) of the batch. */
struct node_req {
	struct node_session *session; /* ref held; NULL for internal commands */
	uint64_t corr;		      /* the client's correlation id */
	int kind;		      /* Envelope body case */
	size_t first, count;
	Envelope *env;	   /* owned until the batch is answered */
	uint64_t t0_ns;	   /* arrival, for confirm latency */
	uint64_t fetch_id; /* Fetch: the pending fetch it serves */
	void *owned;	   /* malloc()ed data its commands point to */
};

/* A batch of commands proposed as one log entry (group commit). */
struct node_batch {
	struct cons_propose prop; /* prop.data = this */
	struct node_server *srv;
	struct q_cmd *cmds; /* owned array */
	size_t n, cap;
	struct node_req *reqs; /* owned array */
	size_t n_reqs, cap_reqs;
	size_t bytes;		 /* payload bytes, for the size limit */
	struct node_batch *next; /* waiting queue */
};

/* --------------------------------------------------------------- sessions */

/* A consumer attached through this session. */
struct node_consumer {
	q_consumer_id id;
	uint64_t corr; /* Consume / Fetch correlation id (pushes carry it) */
	char queue[Q_NAME_MAX + 1];
	bool pull; /* created by Fetch */
	struct node_consumer *next;
};

/* A delivery that arrived before its consumer's ATTACH result: kept until
 * the ConsumeResult has been written (DESIGN: result before deliveries). */
struct node_early {
	q_consumer_id consumer;
	struct node_buf frame_body; /* packed Delivery message */
	struct node_early *next;
};

/* A Fetch waiting for messages or for its wait to end. */
struct node_fetch {
	uint64_t id;
	uint64_t corr;
	q_consumer_id consumer; /* 0 until the ATTACH result */
	uint32_t max;
	Raftmq__Client__V1__Delivery **got; /* packed deliveries so far */
	size_t n_got;
	uv_timer_t timer;
	bool answered, timer_closed;
	struct node_session *s;
	struct node_fetch *next;
};

struct node_session {
	struct node_server *srv;
	uv_tcp_t tcp;
	uint64_t id;	/* q_session.session_id */
	uint64_t epoch; /* leader epoch it was accepted in */
	char peer[64];
	int refs; /* the server + requests in flight */
	bool closing, closed, reading;
	bool had_consumers; /* needs SESSION_GONE when it ends */
	/* input */
	char *in; /* owned */
	size_t in_len, in_cap;
	/* output: frames appended during a loop iteration, written once */
	struct node_buf out;
	size_t writing; /* bytes handed to uv_write, not done yet */
	bool dirty;	/* has output to flush */
	struct node_consumer *consumers;
	struct node_early *early;
	struct node_fetch *fetches;
	/* Idle connections (hello_timeout_ms): closed unless the first
	 * request (Hello with auth) comes in time; leader watches exempt. */
	uv_timer_t hello_timer;
	bool hello_timer_on; /* hello_timer initialised, not closed */
	bool greeted;	     /* sent its first request (Hello with auth) */
	bool sniffed;	     /* first bytes seen: client or leader watch */
	bool watch;	     /* a follower's leader watch (node_watch.c) */
	char pre[8]; /* first bytes, while they may be NODE_WATCH_HELLO */
	size_t n_pre;
	struct node_tls *tls;	      /* owned; NULL = plain TCP (node_tls.c) */
	const struct node_user *user; /* authenticated as (borrowed from
					 srv->cfg); NULL = not yet */
	struct node_session *next, *prev; /* all sessions */
	struct node_session *dirty_next;  /* sessions to flush */
};

/* ----------------------------------------------------------------- server */

/* Prometheus histogram of publish confirm latency. */
#define NODE_HIST_BUCKETS 16
struct node_hist {
	uint64_t buckets[NODE_HIST_BUCKETS]; /* cumulative at render time */
	uint64_t count;
	double sum;
};
extern const double node_hist_bounds[NODE_HIST_BUCKETS];
void node_hist_add(struct node_hist *h, double seconds);

struct node_http;

struct node_server {
	uv_loop_t *loop;
	struct node_config cfg;
	struct cons *cons;
	struct q_sink sink;
	uv_tcp_t listener;
	uv_check_t check;  /* end of each loop iteration: flush */
	uv_idle_t idle;	   /* active while output or a batch waits */
	uv_timer_t ticker; /* leader: timers due? propose TICK */
	uint64_t trim_at;  /* next malloc_trim (node_server.c, trim_heap) */
	struct node_watch *watch; /* owned; follower: the leader watched */
	uv_signal_t sigterm, sigint;
	struct node_http *http;
	struct ssl_ctx_st *tls_ctx; /* owned; NULL = plain client port */

	struct node_session sessions; /* list head */
	unsigned n_sessions;
	uint64_t next_session_id;
	struct node_session *dirty; /* sessions with output to flush */

	struct node_batch *open;		   /* batch being filled */
	struct node_batch *waiting, *waiting_tail; /* full, not proposed */
	unsigned inflight; /* batches proposed, not answered */

	bool leader;
	uint64_t epoch;	   /* cons_epoch() when it became leader */
	bool leader_ready; /* barrier + DETACH_STALE applied */
	bool tick_inflight;
	struct cons_barrier barrier;
	bool barrier_inflight; /* `barrier` not answered yet */
	bool stopping;
	int exit_code;
	struct cons_change transfer;
	uv_timer_t stop_timer;
	uint64_t next_fetch_id;

	/* metrics */
	uint64_t connections_total, connections_refused;
	uint64_t connections_idle_closed; /* hello_timeout_ms */
	unsigned n_watches;		  /* sessions that are leader watches */
	uint64_t frames_in, frames_out, bytes_in, bytes_out;
	uint64_t requests_total, errors_total;
	uint64_t publishes_refused_memory;
	uint64_t batches_proposed, commands_batched;
	uint64_t started_ms;
	uint64_t started_loop_ms; /* uv_now() at start, for uptime */
	struct node_hist confirm;
};

/* node_server.c */
int node_server_init(struct node_server *srv, uv_loop_t *loop,
		     const struct node_config *cfg, char *err, size_t errlen);
void node_server_stop(struct node_server *srv, int exit_code);
uint64_t node_now_ns(void);

/* Appends commands for a request to the open batch. Returns the request
 * slot (its cmds are batch->cmds[req->first..]) or NULL with an error
 * already answered. `n` command slots are reserved and zeroed; fill them. */
struct node_req *node_batch_add(struct node_server *srv, struct node_session *s,
				uint64_t corr, int kind, Envelope *env,
				size_t n, struct q_cmd **cmds);
/* Proposes what is batched (called at the end of each loop iteration). */
void node_batch_flush(struct node_server *srv);
/* Makes sure pending output and batches are flushed before the loop next
 * blocks (libraft fires callbacks from its own prepare/check handles, after
 * ours may have run). */
void node_server_wake(struct node_server *srv);
/* The memory alarm: true when publishes must be refused. */
bool node_memory_alarm(const struct node_server *srv);

/* Resolves "host:port" (an IPv4 literal or a name) to an IPv4 address to
 * bind; 0 or -1. Names are looked up once, at start. */
int node_resolve(const char *addr, struct sockaddr_in *sa);

/* node_watch.c: followers hold an idle connection to the leader's client
 * port and hurry an election when it closes. Watches leader_id at
 * client_address (borrowed), replacing any earlier watch; leader_id 0 (or
 * this node) just stops watching. */
struct node_watch;
/* What a leader watch sends first, so that the leader exempts it from
 * hello_timeout_ms: no frame starts with 0xff (lengths are at most 1 GiB)
 * and no TLS record does (0x16), so it cannot be mistaken for a client. */
#define NODE_WATCH_HELLO "\xffRAFTMQW"
#define NODE_WATCH_HELLO_LEN 8
/* At most this many connections are exempt as watches (one per follower;
 * a larger cluster is refused by consensus/). */
#define NODE_MAX_WATCHES CONS_MAX_NODES
void node_watch_leader(struct node_server *srv, uint64_t leader_id,
		       const char *client_address);

/* node_session.c */
void node_session_accept(struct node_server *srv);
void node_session_ref(struct node_session *s);
void node_session_unref(struct node_session *s);
void node_session_close(struct node_session *s);
/* Encodes env as a frame into the session's output. */
void node_session_send(struct node_session *s, const Envelope *env);
void node_session_flush_all(struct node_server *srv);
/* Decodes and dispatches every complete frame in s->in[0..in_len) and keeps
 * the incomplete tail (called by the read callback; the client fuzzer calls
 * it directly, tests/fuzz/fuzz_client.c). */
void node_session_read_frames(struct node_session *s);
struct node_session *node_session_find(struct node_server *srv, uint64_t id);
struct node_consumer *node_session_consumer(struct node_session *s,
					    q_consumer_id id);

/* node_codec.c */
/* Checks every string field of a frame that protobuf-c accepted (wire bytes
 * `frame`, borrowed): UTF-8 and no NUL. Returns 0, or -1 with a sentence
 * naming the field in err. */
int node_codec_check_strings(const uint8_t *frame, size_t len, char *err,
			     size_t errlen);

/* node_dispatch.c */
void node_dispatch(struct node_session *s, Envelope *env);
void node_dispatch_results(struct node_server *srv, struct node_batch *b,
			   int status, const struct q_result *results,
			   size_t n);
void node_error(struct node_session *s, uint64_t corr, int code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void node_on_delivery(void *data, const struct q_delivery *d);
void node_on_consumer_gone(void *data, const struct q_consumer_gone *g);
void node_fetch_timeout(uv_timer_t *t);

/* node_http.c */
int node_http_start(struct node_server *srv, char *err, size_t errlen);
void node_http_stop(struct node_server *srv);

#endif /* RAFTMQ_NODE_INT_H */
