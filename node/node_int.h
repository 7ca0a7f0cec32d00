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

/* The protocol version this node speaks (client.proto): it accepts frames
 * of versions 1 to this, and answers in version 1 but for the results of
 * later requests (PeekResult: 2, FetchBodiesResult: 3), so older clients
 * read every answer they can get. */
#define NODE_PROTOCOL_VERSION 3u

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
	/* malloc()ed, freed with the request: data its commands point to,
	 * or the consumer record an ATTACH's answer takes (node_consumer_new)
	 */
	void *owned;
};

/* A batch of commands proposed as one log entry (group commit). */
struct node_batch {
	struct cons_propose prop; /* prop.data = this */
	struct node_server *srv;
	struct q_cmd *cmds; /* owned array */
	size_t n, cap;
	struct node_req *reqs; /* owned array */
	size_t n_reqs, cap_reqs;
	size_t bytes;		 /* log entry bytes of its commands, at most */
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

/* A delivery apply made that waits for its session's output to drain. */
struct node_deferred {
	q_consumer_id consumer;
	q_seq seq;	     /* the tag */
	uint32_t deliveries; /* which delivery of the message it is */
};

/* Unsent output past which deliveries wait as struct node_deferred (at
 * most max_client_output_bytes / 2): what one loop iteration encodes for a
 * session, and enough in flight to keep a loopback socket busy. */
#define NODE_OUT_WINDOW (4u << 20)

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
	size_t early_bytes; /* frame bytes in `early` */
	/* Deliveries not written yet (node_deliver.c, "deferred"): def[head,
	 * len) in order; owned. */
	struct node_deferred *def;
	size_t def_head, def_len, def_cap;
	/* Bytes its writes have completed, and (node_deliver.c) the bytes
	 * the socket had taken when deferred deliveries were last seen
	 * waiting, and since when it has taken no more. */
	uint64_t written;
	uint64_t stuck_sent, stuck_ms;
	struct node_fetch *fetches;
	/* Idle connections (hello_timeout_ms): closed unless the first
	 * request (Hello with auth) comes in time; leader watches exempt. */
	uv_timer_t hello_timer;
	bool hello_timer_on; /* hello_timer initialised, not closed */
	bool greeted;	     /* sent its first request (Hello with auth) */
	size_t frame_bytes;  /* wire size of the request being dispatched
				(0 outside node_dispatch) */
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
struct node_bodies;

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
	/* The ticker's last run (uv_hrtime ns) and the longest gap between
	 * two runs beyond its period: the loop did nothing else meanwhile
	 * (node_server.c, watch_stall). */
	uint64_t tick_ns;
	uint64_t stall_ms_max;
	uint64_t deferred_check_ms; /* next node_deferred_check() */
	struct node_watch *watch;   /* owned; follower: the leader watched */
	uv_signal_t sigterm, sigint;
	struct node_http *http;
	struct node_bodies *bodies; /* owned; NULL when not started */
	/* A FetchBodies answer stops reading after this long; 0 = 10 ms
	 * (node_bodies.c; tests change it). */
	uint64_t fetch_bodies_ns;
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
	/* Deliveries and peeks whose body this node could not read, and when
	 * that was last logged (uv_now; node_deliver.c). */
	uint64_t bodies_unreadable, body_warned_ms;
	uint64_t deliveries_deferred;	 /* waited for output to drain */
	uint64_t publishes_refused_disk; /* by the disk alarm */
	uint64_t publishes_refused_memory;
	uint64_t batches_proposed, commands_batched;
	uint64_t started_ms;
	uint64_t started_loop_ms; /* uv_now() at start, for uptime */
	struct node_hist confirm;
};

/* node_server.c */
int node_server_init(struct node_server *srv, uv_loop_t *loop,
		     const struct node_config *cfg, char *err, size_t errlen);
/* The two halves of node_server_init() that need no network, disk or
 * Raft, so that tests run the node over a fake consensus/
 * (tests/lib/fake_node.c). node_server_setup() fills *srv (cfg copied, loop
 * retained) and initialises every handle finish_stop() closes;
 * node_server_attach() takes `cons` (retained until cons_close()'s callback)
 * and follows its role changes (cons_watch). */
void node_server_setup(struct node_server *srv, uv_loop_t *loop,
		       const struct node_config *cfg);
void node_server_attach(struct node_server *srv, struct cons *cons);
void node_server_stop(struct node_server *srv, int exit_code);
uint64_t node_now_ns(void);

/* Appends commands for a request to the open batch, first closing it if
 * the request would take it over max_batch_commands or max_batch_bytes.
 * Returns the request slot (its cmds are batch->cmds[req->first..]) or
 * NULL with an error already answered (out of memory, or MESSAGE_TOO_LARGE
 * for a request that could not fit in one log entry). `n` command slots
 * are reserved and zeroed; fill them. `env` is transferred on success and
 * freed on failure. */
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
/* The disk alarm: the body store holds disk_limit bytes or more. */
bool node_disk_alarm(const struct node_server *srv);

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
/* Output made for s and not yet taken by its socket: written, encoded, and
 * held for its consumers' ATTACH results. */
static inline size_t node_session_unsent(const struct node_session *s)
{
	return s->writing + s->out.len + s->early_bytes;
}

/* node_codec.c */
/* Checks every string field of a frame that protobuf-c accepted (wire bytes
 * `frame`, borrowed): UTF-8 and no NUL. Returns 0, or -1 with a sentence
 * naming the field in err. */
int node_codec_check_strings(const uint8_t *frame, size_t len, char *err,
			     size_t errlen);

/* ------------------------------------------------------- request kinds */

/* Shorthands for the generated names of client.proto, for node/ only. */
#define PB(x) raftmq__client__v1__##x
#define BODY(x) RAFTMQ__CLIENT__V1__ENVELOPE__BODY_##x
#define EC(x) RAFTMQ__CLIENT__V1__ERROR_CODE__ERROR_CODE_##x

/* What a request kind needs when auth is on (docs/operations.md). */
enum node_access {
	NODE_ACCESS_UNSET = 0, /* no entry: refused (never a default) */
	NODE_ACCESS_ANYONE,    /* before authentication: Hello */
	NODE_ACCESS_USER,      /* any authenticated user: lists (filtered to
				  what the user may see), and requests on
				  the session's own consumers (authorised
				  when the consumer was attached) */
	NODE_ACCESS_NAMED,     /* the permissions `grant` lists */
	NODE_ACCESS_ADMIN,     /* a user with admin = true */
};

/* Any permission on the name (queue info): beside enum node_perm. */
#define NODE_PERM_VISIBLE (-1)

/* One permission a request needs on a name. */
struct node_grant {
	int perm;	  /* enum node_perm or NODE_PERM_VISIBLE */
	const char *what; /* for the refusal: "to queue", "topic"... */
	const char *name; /* borrowed from the request, or buf */
	char buf[2 * Q_NAME_MAX + 2]; /* room for a composed name */
};

/* One request kind (an Envelope body case): everything node/ does with it,
 * in one place (the shape of dqlite's REQUEST__TYPES). The table of kinds
 * is in node_dispatch.c; each descriptor sits with its handlers. */
struct node_kind {
	const char *name; /* "create_queue": logs and sentences */
	enum node_access access;
	bool any_node; /* answered by followers too, not redirected */
	/* NODE_ACCESS_NAMED: the i-th permission the request needs (i from
	 * 0); false past the last. env is borrowed. */
	bool (*grant)(const Envelope *env, size_t i, struct node_grant *g);
	/* Names what the request acts on into buf ("queue \"orders\""), for
	 * error sentences; NULL: "request". */
	void (*target)(const Envelope *env, char *buf, size_t len);
	/* Serves it once access, leadership and shutdown are checked (only
	 * access for any_node kinds). Reads answer at once; writes add
	 * commands to the open batch. Returns true when env was handed to
	 * node_batch_add (which owns it from then on, even when it failed),
	 * false when the caller still owns env and frees it. */
	bool (*start)(struct node_session *s, Envelope *env);
	/* A batched request was applied: answers it from res[r->first ..
	 * r->first + r->count) (borrowed). NULL for kinds never batched. */
	void (*answer)(struct node_server *srv, struct node_req *r,
		       const struct q_result *res);
	/* Its batch failed with a CONS_E* status; NULL: the common answer
	 * (node_dispatch.c). */
	void (*fail)(struct node_session *s, struct node_req *r, int status);
};

/* The descriptor of a request body case, or NULL when it is not a
 * request this node serves (a result, a push, an unknown number). */
const struct node_kind *node_kind_of(int body_case);

/* The descriptors, one per request kind (defined beside their handlers). */
extern const struct node_kind node_kind_hello, node_kind_cluster_status,
	node_kind_queue_info, node_kind_queue_list, node_kind_topic_list,
	node_kind_cluster_add, node_kind_cluster_remove,
	node_kind_cluster_transfer, node_kind_peek; /* node_read.c */
extern const struct node_kind node_kind_publish, node_kind_publish_batch,
	node_kind_create_queue, node_kind_configure_queue,
	node_kind_delete_queue, node_kind_purge_queue, node_kind_create_topic,
	node_kind_delete_topic, node_kind_subscribe, node_kind_unsubscribe,
	node_kind_consume, node_kind_cancel, node_kind_credit, node_kind_ack,
	node_kind_nack, node_kind_release, node_kind_extend; /* node_write.c */
extern const struct node_kind node_kind_fetch;		     /* node_write.c */
extern const struct node_kind node_kind_fetch_bodies;	     /* node_bodies.c */
/* Fills an ATTACH of a consumer of session s to `queue` (borrowed: it must
 * live as long as the batch, like the request's envelope). */
void node_attach_cmd(struct node_session *s, struct q_cmd *cmd,
		     const char *queue, uint32_t prefetch, uint32_t credit);

/* node_fetch.c */

/* node_dispatch.c */
/* Serves one decoded request (env always transferred). */
void node_dispatch(struct node_session *s, Envelope *env);
void node_dispatch_results(struct node_server *srv, struct node_batch *b,
			   int status, const struct q_result *results,
			   size_t n);
void node_error(struct node_session *s, uint64_t corr, int code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* NOT_LEADER with the leader's address, or UNAVAILABLE when none is known. */
void node_not_leader(struct node_session *s, uint64_t corr);
/* Sends a result: msg (borrowed) is the body member for body_case. */
void node_reply(struct node_session *s, uint64_t corr, int body_case,
		void *msg);
/* When the command was refused (q->status != 0), answers the error with
 * the request's target and returns true. */
bool node_refused(struct node_session *s, const struct node_req *r,
		  const struct q_result *q);
/* Drops a UTF-8 character cut in half at the end of buf. */
void node_utf8_cut(char *buf);

/* node_perm.c */
/* Whether the session's user may make this request (auth on, user set);
 * answers PERMISSION_DENIED when not. */
bool node_permitted(struct node_session *s, const struct node_kind *k,
		    const Envelope *env);

/* node_write.c */
/* Fills an ATTACH of a consumer of session s to `queue` (borrowed: it must
 * live as long as the batch, like the request's envelope). */
void node_attach_cmd(struct node_session *s, struct q_cmd *cmd,
		     const char *queue, uint32_t prefetch, uint32_t credit);

/* node_fetch.c */
struct node_fetch *node_fetch_find(struct node_session *s,
				   q_consumer_id consumer, uint64_t id);
/* Adds a packed Delivery (borrowed) to a fetch; answers it when full. */
int node_fetch_add(struct node_fetch *f, const void *packed, size_t len);
void node_fetch_timeout(uv_timer_t *t);

/* node_deliver.c: the delivery sink and the session's consumer list. */
/* Fills *m from d. Every pointer in *m is borrowed from d (the state) or,
 * for a body in the body store, from the store: valid until the next call
 * into consensus/, so pack *m before making one. Returns 0, or -1 when the
 * body cannot be read (this node lacks it, or the store has other bytes):
 * then *m must not be sent (logged once per key). */
int node_delivery_msg(struct node_server *srv, Raftmq__Client__V1__Delivery *m,
		      const struct q_delivery *d);
void node_on_delivery(void *data, const struct q_delivery *d);
void node_on_consumer_gone(void *data, const struct q_consumer_gone *g);
/* A consumer record (queue borrowed, copied), allocated before its ATTACH
 * is proposed: recording the consumer the state attached must not fail, or
 * the state holds a consumer the session does not know (its messages
 * cannot be acked, its deliveries pile up). NULL when out of memory: refuse
 * the request then, nothing proposed. */
struct node_consumer *node_consumer_new(uint64_t corr, const char *queue,
					bool pull);
/* The ATTACH of c applied as consumer `id`: c (always transferred) joins the
 * session's consumers. */
void node_consumer_attached(struct node_session *s, struct node_consumer *c,
			    q_consumer_id id);
void node_consumer_drop(struct node_session *s, q_consumer_id id);
/* Sends (or hands to the waiting fetch) the deliveries that arrived for c
 * before its ATTACH result. */
void node_flush_early(struct node_session *s, struct node_consumer *c);
/* Writes deferred deliveries while the session's unsent output is under
 * the window (called as it drains). */
void node_session_pump(struct node_session *s);
/* Once a second (the ticker): pumps the sessions with deferred deliveries
 * and closes those whose socket took nothing for client_write_timeout_ms. */
void node_deferred_check(struct node_server *srv, uint64_t now_ms);

/* node_bodies.c: fetching the message bodies this node lacks from the
 * other members (and serving theirs: node_kind_fetch_bodies). Started by
 * node_server_init() after consensus/; reads [cluster] peer_token_file
 * (-1 with a sentence in err when it cannot). Stopped in finish_stop(): a
 * request in flight to a peer ends within the client's timeouts (4 s at
 * most), before the loop can end. */
int node_bodies_start(struct node_server *srv, char *err, size_t errlen);
void node_bodies_stop(struct node_server *srv);
/* Bodies fetched and stored, and failures (requests, bad records, store
 * errors), since start; 0 when not started. */
void node_bodies_stats(const struct node_server *srv, uint64_t *fetched,
		       uint64_t *errors);
/* Whether missing bodies cannot be fetched at all: auth is on and no
 * peer_token_file is set. */
bool node_bodies_blocked(const struct node_server *srv);

/* node_http.c */
int node_http_start(struct node_server *srv, char *err, size_t errlen);
void node_http_stop(struct node_server *srv);

#endif /* RAFTMQ_NODE_INT_H */
