/*
 * libraftmq: the C client of the raftmq broker.
 *
 * One `struct raftmq` is one logical session with a raftmq cluster over a
 * blocking TCP connection (plain POSIX sockets). It is thread-compatible, not
 * thread-safe: use one connection object per thread, or serialise all calls
 * on one object yourself. Functions never spawn threads or install signal
 * handlers; a write to a closed socket does not raise SIGPIPE.
 *
 * Happy path:
 *
 *	struct raftmq *c;
 *	if (raftmq_connect("10.0.0.1:7001,10.0.0.2:7001", NULL, &c, NULL, 0))
 *		...
 *	raftmq_queue_create(c, "orders", NULL);
 *	struct raftmq_message m = {.queue = "orders", .body = "hi",
 *				   .body_len = 2};
 *	uint64_t seq;
 *	raftmq_publish(c, &m, &seq, NULL);
 *	raftmq_close(c);
 *
 * Failover. The library finds the leader itself: it tries the addresses in
 * order, follows the leader named in HelloResult and in every NOT_LEADER
 * error, and on UNAVAILABLE (no leader yet), on a broken connection, or on a
 * refused connect it tries the other addresses with a growing backoff (10 ms
 * doubling up to 200 ms) until the request timeout of the call in progress runs
 * out. Publishes are always retried with the same msg_id, so the broker's
 * dedup window makes retries idempotent: a retried publish that had in fact
 * been stored comes back with duplicate = true and the original seq.
 *
 * Consumers and failover. A consumer lives in the session of one connection
 * on the leader. When the connection breaks or the leader changes, the server
 * returns the consumer's unacked messages to ready at once, and the library
 * re-attaches the consumer on the new connection (same queue and prefetch,
 * new consumer id). Deliveries of the old consumer that were received but not
 * yet returned by raftmq_next() are dropped (the server redelivers them), and
 * the delivery tags of the old consumer are void: acking them returns
 * RAFTMQ_ESTALE, which callers can ignore (the message will be delivered
 * again, so processing must be idempotent: delivery is at least once).
 *
 * Failed deliveries. A queue's max_deliveries counts failed deliveries:
 * raftmq_nack(), an ack timeout, and a connection that ends while its
 * consumers hold messages without saying goodbye (the process crashed or
 * was killed, the network failed). raftmq_cancel() and raftmq_close() say
 * goodbye: nothing the consumer holds counts as failed, and the deliveries
 * the library received but raftmq_next()/raftmq_poll() never returned are
 * released as never delivered (their delivery_count is as if they had
 * not been pushed). So an application that gives up on a message it
 * received should raftmq_nack() it: closing does not count it.
 *
 * Callbacks (confirm_cb, raftmq_poll's cb) run inside whatever raftmq_* call
 * on the same connection is reading from the socket; they must not call
 * raftmq_* functions on that connection except raftmq_errmsg().
 *
 * Errors. Functions returning int return 0 on success or a positive enum
 * raftmq_err code. raftmq_errmsg(conn) then holds one sentence about the last
 * failure (the server's own sentence when the server refused the request).
 */
#ifndef RAFTMQ_H
#define RAFTMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RAFTMQ_LIB_VERSION "0.1.0"

/*
 * Error codes. 1..99 and 100..110 are the protocol's ErrorCode, number for
 * number, as the server sent them; 200.. are detected by the library.
 */
enum raftmq_err {
	RAFTMQ_OK = 0,
	/* Refused by the broker's state machine. */
	RAFTMQ_ENOMEM = 1,	      /* out of memory (server or client) */
	RAFTMQ_ENOTFOUND = 2,	      /* no such queue, topic, subscription */
	RAFTMQ_EEXIST = 3,	      /* exists with different settings */
	RAFTMQ_EFULL = 4,	      /* queue full (reject-publish) */
	RAFTMQ_EINVAL = 5,	      /* bad argument (server or client) */
	RAFTMQ_EUNKNOWN_CONSUMER = 6, /* consumer id not attached */
	RAFTMQ_EUNKNOWN_TAG = 7,      /* some tags not held */
	RAFTMQ_ECORRUPT = 8,	      /* corrupt server state */
	RAFTMQ_ETOOBIG = 9,	      /* body over the broker's limit */
	RAFTMQ_ESUBSCRIPTION_QUEUE = 10, /* not allowed on a subscription */
	/* Protocol and cluster errors sent by the server. */
	RAFTMQ_ENOTLEADER = 100,       /* only when redirects ran out */
	RAFTMQ_EUNAVAILABLE = 101,     /* no leader; retried until timeout */
	RAFTMQ_ECOMMIT_TIMEOUT = 102,  /* server: not committed in time */
	RAFTMQ_ERESOURCE_LIMIT = 103,  /* memory alarm: nothing stored */
	RAFTMQ_EFRAME_TOO_LARGE = 104, /* a frame over the size limit */
	RAFTMQ_EMALFORMED = 105,       /* server could not decode a frame */
	RAFTMQ_EUNSUPPORTED_VERSION = 106, /* protocol version refused */
	RAFTMQ_EUNAUTHENTICATED = 107,	   /* auth token missing or refused */
	RAFTMQ_EPERMISSION_DENIED = 108,   /* not allowed */
	RAFTMQ_EUNKNOWN_OUTCOME = 109, /* may or may not have been applied */
	RAFTMQ_EINTERNAL = 110,	       /* server bug; see raftmq_errmsg() */
	/* Detected by the library. */
	RAFTMQ_ECONNECT = 200,	     /* no address could be reached */
	RAFTMQ_ETIMEOUT = 201,	     /* the call's local deadline passed */
	RAFTMQ_EPROTO = 202,	     /* undecodable or unexpected frame */
	RAFTMQ_ESTALE = 203,	     /* consumer re-attached: tags void */
	RAFTMQ_ECONSUMER_GONE = 204, /* the server removed the consumer */
	RAFTMQ_ENOPENDING = 205,     /* nothing to wait for */
};

/* A static English sentence for `code` (any int; unknown codes too). */
const char *raftmq_strerror(int code);

struct raftmq;		/* opaque connection */
struct raftmq_consumer; /* opaque, owned by its connection */

/* The outcome of one publish (blocking, pipelined or batch item). */
struct raftmq_confirm {
	int err;	   /* 0, or enum raftmq_err */
	uint64_t seq;	   /* when err == 0: sequence number in its queue */
	bool duplicate;	   /* when err == 0: dedup hit, seq is the original's */
	void *user_data;   /* as given to raftmq_publish_async(), else NULL */
	char message[160]; /* when err != 0: the reason (truncated) */
};

/*
 * Called once per pipelined publish when it is confirmed or has failed for
 * good. `c` is borrowed (valid during the call). `data` is the confirm_data
 * of the options. See the note on callbacks at the top of this file.
 */
typedef void (*raftmq_confirm_cb)(struct raftmq *conn,
				  const struct raftmq_confirm *c, void *data);

/* Connection options. All-zero means every default. */
struct raftmq_options {
	const char *client_name; /* borrowed (copied); NULL = "libraftmq" */
	const char *auth_token;	 /* borrowed (copied); NULL = none */
	/* Per connection attempt (TCP connect + Hello); 0 = 2000. An
	 * attempt is never cut short by a call's own timeout, so a call made
	 * while reconnecting may return up to this much after its timeout.
	 * Reconnect backoff (10 ms doubling to 200 ms) carries over between
	 * calls. */
	unsigned connect_timeout_ms;
	unsigned request_timeout_ms; /* per call incl. retries; 0 = 10000 */
	size_t max_frame_bytes;	     /* largest frame accepted; 0 = 8 MiB */
	unsigned window; /* pipelined publishes in flight; 0 = 256 */
	raftmq_confirm_cb confirm_cb; /* NULL = collect with publish_wait */
	void *confirm_data;	      /* retained: passed to confirm_cb */
	/* TLS (docs/operations.md, "Authentication and TLS"). Off when
	 * false. The server's certificate is always verified: against
	 * tls_ca_file, else the system's CAs, and its name against
	 * tls_server_name, else the host of the address dialled. Paths are
	 * borrowed and read during raftmq_connect(). */
	bool tls;
	const char *tls_ca_file;     /* PEM CAs to trust; NULL = system's */
	const char *tls_server_name; /* borrowed (copied); NULL = the host */
	const char *tls_cert_file;   /* client certificate (PEM); NULL = none */
	const char *tls_key_file;    /* its key; NULL = in tls_cert_file */
	/* Stay on the first node that answers: never follow the leader it
	 * names, and fail with RAFTMQ_ENOTLEADER where a request needs the
	 * leader. For requests every node answers from its own data
	 * (raftmq_cluster_status(), raftmq_fetch_bodies()). */
	bool stay;
};

/*
 * Connects to the cluster. `addresses` (borrowed) is "host:port[,host:port]"
 * ("[v6addr]:port" for IPv6). The addresses are tried in order until one
 * answers Hello; if that node names another node as leader the library goes
 * there. `opts` is borrowed and may be NULL.
 *
 * On success *out (transferred: free with raftmq_close()) is set. On failure
 * *out is NULL and, if `errbuf` (borrowed, may be NULL) is given, it receives
 * one NUL-terminated sentence of at most errlen bytes.
 *
 * Returns 0, RAFTMQ_EINVAL (bad address list or options), RAFTMQ_ENOMEM,
 * RAFTMQ_ECONNECT (no address answered within the request timeout),
 * RAFTMQ_EUNAUTHENTICATED, RAFTMQ_EUNSUPPORTED_VERSION.
 */
int raftmq_connect(const char *addresses, const struct raftmq_options *opts,
		   struct raftmq **out, char *errbuf, size_t errlen);

/*
 * Closes the connection and frees it, with its consumers and undelivered
 * deliveries. First it says goodbye on a live connection: it sends the
 * queued async acks and cancels every consumer (push and pull) as
 * raftmq_cancel() does, so nothing they hold counts as a failed delivery and
 * deliveries never returned by raftmq_next() are released as never
 * delivered; it waits for those answers up to 2 s (less if the request
 * timeout is shorter), then closes the socket. Pipelined publishes still
 * unconfirmed are abandoned without a callback (they may or may not be
 * stored). NULL is a no-op.
 */
void raftmq_close(struct raftmq *conn);

/*
 * The sentence about the last failure on `conn`. Owned by conn; valid until
 * the next raftmq_* call on it. Never NULL.
 */
const char *raftmq_errmsg(const struct raftmq *conn);

/* Raft id of the node the connection is on (0 = not connected now). */
uint64_t raftmq_node_id(const struct raftmq *conn);

/*
 * Writes a fresh message id "<16 hex>-<counter>" (unique per process; the
 * hex part is random per process) into buf (borrowed, RAFTMQ_MSG_ID_SIZE
 * bytes) and returns its length. Thread-safe.
 */
#define RAFTMQ_MSG_ID_SIZE 40
size_t raftmq_msg_id_new(char buf[RAFTMQ_MSG_ID_SIZE]);

/* ------------------------------------------------------------------------
 * Publishing
 */

/* A message to publish. All pointers are borrowed. */
struct raftmq_message {
	const char *queue; /* exactly one of queue and topic is non-NULL */
	const char *topic;
	const void *msg_id; /* dedup id; NULL = the library assigns one */
	size_t msg_id_len;
	const void *body; /* may be NULL when body_len == 0 */
	size_t body_len;
	uint64_t delay_ms; /* deliverable after now + delay_ms; 0 = at once */
	uint64_t ttl_ms;   /* 0 = the queue's ttl */
};

/*
 * Publishes one message and waits for its confirmation (committed on a
 * majority and applied). `msg` is borrowed. `seq` and `duplicate` (may be
 * NULL) receive the result. Retries (same msg_id) across failover, NOT_LEADER,
 * UNAVAILABLE, TIMEOUT and UNKNOWN_OUTCOME until the request timeout.
 *
 * Returns 0, RAFTMQ_EINVAL, RAFTMQ_ENOMEM, RAFTMQ_ETIMEOUT / RAFTMQ_ECONNECT
 * (outcome unknown: publish again with the same msg_id), or the server's
 * refusal (RAFTMQ_ENOTFOUND, RAFTMQ_EFULL, RAFTMQ_ETOOBIG,
 * RAFTMQ_ERESOURCE_LIMIT, ...).
 */
int raftmq_publish(struct raftmq *conn, const struct raftmq_message *msg,
		   uint64_t *seq, bool *duplicate);

/*
 * Pipelined publish: sends `msg` (borrowed; copied) and returns without
 * waiting for its confirmation, unless `window` publishes are already
 * unconfirmed: then it reads confirmations until one slot is free. Each
 * publish is later reported exactly once, with `user_data` (retained, opaque
 * to the library), to confirm_cb or, without a callback, to
 * raftmq_publish_wait(). On failover every unconfirmed publish is resent to
 * the new leader with the same msg_id. A publish not confirmed within the
 * request timeout of its first send is reported with RAFTMQ_ETIMEOUT.
 *
 * Returns 0 (accepted: it will be reported), RAFTMQ_EINVAL, RAFTMQ_ENOMEM,
 * or RAFTMQ_ETIMEOUT (the window stayed full for a whole request timeout;
 * this message was not sent and will not be reported).
 */
int raftmq_publish_async(struct raftmq *conn, const struct raftmq_message *msg,
			 void *user_data);

/*
 * Waits up to timeout_ms (-1 = the request timeout) for the next pipelined
 * publish outcome. Without confirm_cb, the oldest collected outcome is copied
 * into *out (borrowed; may be NULL to discard it). With confirm_cb, outcomes
 * go to the callback and this returns after at least one was reported.
 *
 * Returns 0, RAFTMQ_ENOPENDING (nothing unconfirmed and nothing collected),
 * RAFTMQ_ETIMEOUT.
 */
int raftmq_publish_wait(struct raftmq *conn, int timeout_ms,
			struct raftmq_confirm *out);

/*
 * Waits until no pipelined publish is unconfirmed (outcomes go to the
 * callback or are collected for raftmq_publish_wait()). Returns 0 or
 * RAFTMQ_ETIMEOUT (more than a request timeout without any progress).
 */
int raftmq_publish_flush(struct raftmq *conn);

/* Pipelined publishes sent and not yet confirmed or failed. */
size_t raftmq_publish_pending(const struct raftmq *conn);

/*
 * Publishes `n` messages (borrowed array) in one PublishBatch request (one
 * log entry when possible) and waits. Each item succeeds or fails on its own:
 * results[i] (borrowed array of n, filled) gets item i's outcome. Retries the
 * whole batch with the same ids like raftmq_publish().
 *
 * Returns 0 when the batch was answered (check every results[i].err), or the
 * error that refused the whole batch (then results are untouched).
 */
int raftmq_publish_batch(struct raftmq *conn, const struct raftmq_message *msgs,
			 size_t n, struct raftmq_confirm *results);

/* ------------------------------------------------------------------------
 * Queues and topics
 */

enum raftmq_overflow {
	RAFTMQ_OVERFLOW_REJECT_PUBLISH = 0,
	RAFTMQ_OVERFLOW_DROP_HEAD = 1,
};

/* Bits of raftmq_queue_settings.has: which fields are present. */
enum {
	RAFTMQ_HAS_ACK_TIMEOUT = 1u << 0,
	RAFTMQ_HAS_MAX_DELIVERIES = 1u << 1,
	RAFTMQ_HAS_DEAD_LETTER_QUEUE = 1u << 2,
	RAFTMQ_HAS_TTL = 1u << 3,
	RAFTMQ_HAS_MAX_LENGTH = 1u << 4,
	RAFTMQ_HAS_MAX_BYTES = 1u << 5,
	RAFTMQ_HAS_OVERFLOW = 1u << 6,
	RAFTMQ_HAS_DEDUP_WINDOW = 1u << 7,
	RAFTMQ_HAS_ALL = (1u << 8) - 1,
};

/*
 * Queue settings with presence (DESIGN.md section 2 for the defaults). In
 * create/subscribe an absent field takes the default; in configure it is
 * left unchanged; in raftmq_queue_status all are present.
 */
struct raftmq_queue_settings {
	unsigned has;		       /* RAFTMQ_HAS_* bits */
	uint64_t ack_timeout_ms;       /* default 30000; 0 = no deadline */
	uint32_t max_deliveries;       /* default 20; 0 = unlimited */
	const char *dead_letter_queue; /* "" = none; see ownership below */
	uint64_t ttl_ms;	       /* default 0 = none */
	uint64_t max_length;	       /* default 0 = unlimited */
	uint64_t max_bytes;	       /* default 0 = unlimited */
	enum raftmq_overflow overflow; /* default reject-publish */
	uint64_t dedup_window_ms;      /* default 120000; 0 = off */
};

/*
 * Creates a queue; idempotent with equal settings. `name` and `settings`
 * (may be NULL = all defaults) are borrowed. Returns 0, RAFTMQ_EEXIST (other
 * settings), RAFTMQ_EINVAL, connection errors (RAFTMQ_ETIMEOUT,
 * RAFTMQ_ECONNECT), or another server code.
 */
int raftmq_queue_create(struct raftmq *conn, const char *name,
			const struct raftmq_queue_settings *settings);

/* Changes the present settings. Borrowed args. Returns as create, and
 * RAFTMQ_ENOTFOUND. */
int raftmq_queue_configure(struct raftmq *conn, const char *name,
			   const struct raftmq_queue_settings *settings);

/*
 * Deletes a queue (its consumers get ConsumerGone). Returns 0,
 * RAFTMQ_ENOTFOUND, RAFTMQ_ESUBSCRIPTION_QUEUE, RAFTMQ_EUNKNOWN_OUTCOME (the
 * connection broke after sending: check with raftmq_queue_info), others.
 */
int raftmq_queue_delete(struct raftmq *conn, const char *name);

/* Removes ready/delayed messages; `purged` (may be NULL) gets the count.
 * Returns as raftmq_queue_delete. */
int raftmq_queue_purge(struct raftmq *conn, const char *name, uint64_t *purged);

/* A queue's settings and counters. Strings are owned by the status (see
 * raftmq_queue_status_free); settings.has is RAFTMQ_HAS_ALL. */
struct raftmq_queue_status {
	char *name;
	char *topic; /* bound topic of a subscription queue, else "" */
	struct raftmq_queue_settings settings;
	uint64_t ready, unacked, delayed, bytes, consumers;	   /* gauges */
	uint64_t published, delivered, redelivered, acked, nacked; /* totals */
	uint64_t released, dead_lettered, expired, deduplicated, dropped;
	uint64_t rejected;
};

/*
 * One queue's status. On success *out (transferred) is an array of one;
 * free it with raftmq_queue_status_free(*out, 1). Returns 0,
 * RAFTMQ_ENOTFOUND, RAFTMQ_ENOMEM, connection errors.
 */
int raftmq_queue_info(struct raftmq *conn, const char *name,
		      struct raftmq_queue_status **out);

/* Every queue in name order: *out (transferred) has *n entries (may be 0,
 * then *out may be NULL). Free with raftmq_queue_status_free(). */
int raftmq_queue_list(struct raftmq *conn, struct raftmq_queue_status **out,
		      size_t *n);

/* Frees an array from raftmq_queue_info/list (always transferred). */
void raftmq_queue_status_free(struct raftmq_queue_status *st, size_t n);

/* Creates a topic; dedup_window_ms (borrowed, NULL = default 120000).
 * Returns as raftmq_queue_create. */
int raftmq_topic_create(struct raftmq *conn, const char *name,
			const uint64_t *dedup_window_ms);

/* Deletes a topic and its subscriptions. Returns as raftmq_queue_delete. */
int raftmq_topic_delete(struct raftmq *conn, const char *name);

/*
 * Creates the durable subscription queue "TOPIC:SUBSCRIPTION". Args
 * borrowed; settings may be NULL. If `queue` is not NULL, *queue receives the
 * queue's name (transferred: free()). Returns as raftmq_queue_create.
 */
int raftmq_subscribe(struct raftmq *conn, const char *topic,
		     const char *subscription,
		     const struct raftmq_queue_settings *settings,
		     char **queue);

/* Removes a subscription and its queue. Returns as raftmq_queue_delete. */
int raftmq_unsubscribe(struct raftmq *conn, const char *topic,
		       const char *subscription);

struct raftmq_topic_status {
	char *name; /* owned by the array */
	uint64_t dedup_window_ms, subscriptions, published, deduplicated;
};

/* Every topic in name order; like raftmq_queue_list. */
int raftmq_topic_list(struct raftmq *conn, struct raftmq_topic_status **out,
		      size_t *n);
void raftmq_topic_status_free(struct raftmq_topic_status *st, size_t n);

/* ------------------------------------------------------------------------
 * Consuming
 */

enum raftmq_dead_letter_reason {
	RAFTMQ_DL_NONE = 0,
	RAFTMQ_DL_MAX_DELIVERIES = 1,
	RAFTMQ_DL_EXPIRED = 2,
	RAFTMQ_DL_OVERFLOW = 3,
};

/*
 * A delivered message. Every pointer is owned by the delivery and valid
 * until raftmq_delivery_free() on it (strings are NUL-terminated; msg_id and
 * body are also followed by a NUL byte, not counted in their length).
 */
struct raftmq_delivery {
	uint64_t consumer_id; /* server id of the consumer holding it */
	const char *queue;
	uint64_t tag; /* delivery tag for ack/nack/release/extend */
	const void *msg_id;
	size_t msg_id_len;
	const void *body;
	size_t body_len;
	uint32_t delivery_count; /* 1 on the first delivery */
	bool redelivered;
	uint64_t published_ms; /* cluster time of the publish */
	enum raftmq_dead_letter_reason dead_letter_reason;
	const char *dead_letter_queue; /* origin queue, "" if none */
	void *priv; /* private: the memory behind the pointers */
};

/* Releases the memory of a delivery (not the struct itself). NULL or a
 * zeroed struct are no-ops; calling it twice is a no-op. */
void raftmq_delivery_free(struct raftmq_delivery *d);

/*
 * Attaches a push consumer to `queue` (borrowed) with at most `prefetch`
 * unacked deliveries (0 = unlimited, not advised). On success *out is the
 * consumer, owned by conn: valid until raftmq_cancel() or raftmq_close().
 * The consumer is re-attached automatically after failover (see the top of
 * this file). Returns 0, RAFTMQ_ENOTFOUND, RAFTMQ_EINVAL, RAFTMQ_ENOMEM,
 * connection errors.
 */
int raftmq_consume(struct raftmq *conn, const char *queue, uint32_t prefetch,
		   struct raftmq_consumer **out);

/* The consumer's current server id (changes on re-attach; 0 while being
 * re-attached). `c` is borrowed. */
uint64_t raftmq_consumer_id(const struct raftmq_consumer *c);

/*
 * Waits up to timeout_ms (-1 = forever, 0 = do not block) for the next
 * delivery of consumer `c` (borrowed; NULL = any consumer of conn) and moves
 * it into *out (borrowed struct; its contents are transferred: release with
 * raftmq_delivery_free()).
 *
 * Returns 0, RAFTMQ_ETIMEOUT (none arrived), RAFTMQ_ECONSUMER_GONE (the
 * server removed `c`, e.g. queue deleted, or its re-attachment was refused;
 * raftmq_errmsg says why; cancel it), RAFTMQ_ENOPENDING (c is NULL and conn
 * has no consumer), RAFTMQ_ECONNECT (no leader reachable within the
 * timeout).
 */
int raftmq_next(struct raftmq *conn, struct raftmq_consumer *c, int timeout_ms,
		struct raftmq_delivery *out);

/*
 * Called by raftmq_poll for each delivery. `d` is borrowed: its memory is
 * released after the callback returns (copy what you keep).
 */
typedef void (*raftmq_delivery_cb)(struct raftmq *conn,
				   const struct raftmq_delivery *d, void *data);

/*
 * Waits up to timeout_ms (-1 = forever) until at least one delivery is
 * available, then hands every available delivery (of any consumer) to `cb`
 * with `data` (borrowed, passed through). Returns 0 (at least one was
 * handled), or the codes of raftmq_next with c = NULL.
 */
int raftmq_poll(struct raftmq *conn, int timeout_ms, raftmq_delivery_cb cb,
		void *data);

/* Outcome of ack/nack/release/extend. */
struct raftmq_tags_result {
	uint64_t done;	  /* tags acted on */
	uint64_t unknown; /* tags skipped: not held by that consumer */
};

/*
 * Ack (done), nack (requeue after delay_ms, counts a failed delivery),
 * release (requeue, not counted) or extend (deadline = now + ms; 0 = the
 * queue's ack timeout) the `n` delivery tags (borrowed array) of consumer id
 * `consumer_id` (raftmq_delivery.consumer_id). `res` may be NULL.
 *
 * Returns 0, RAFTMQ_ESTALE (the consumer was re-attached or removed since
 * the deliveries: the tags are void, nothing was sent; safe to ignore),
 * RAFTMQ_EUNKNOWN_CONSUMER (likewise ignorable), RAFTMQ_EINVAL (n == 0),
 * connection errors.
 */
int raftmq_ack(struct raftmq *conn, uint64_t consumer_id, const uint64_t *tags,
	       size_t n, struct raftmq_tags_result *res);
int raftmq_nack(struct raftmq *conn, uint64_t consumer_id, const uint64_t *tags,
		size_t n, uint64_t delay_ms, struct raftmq_tags_result *res);
int raftmq_release(struct raftmq *conn, uint64_t consumer_id,
		   const uint64_t *tags, size_t n,
		   struct raftmq_tags_result *res);
int raftmq_extend(struct raftmq *conn, uint64_t consumer_id,
		  const uint64_t *tags, size_t n, uint64_t ms,
		  struct raftmq_tags_result *res);

/*
 * Acks without waiting: queues the `n` tags (borrowed; copied) of consumer
 * `consumer_id` and returns at once. The library sends queued tags in one Ack
 * when 64 are queued, when the oldest has waited 2 ms and another ack is
 * queued, whenever a call waits for the network (raftmq_next with nothing
 * queued, any blocking call), and at raftmq_close. Like an ack in AMQP, an
 * async ack may be lost (connection loss, leader change): its message is
 * then delivered again, which at-least-once processing has to accept
 * anyway. The leader still stores every ack in the log before it acts.
 *
 * Returns 0, RAFTMQ_EINVAL (n == 0), RAFTMQ_ESTALE (the consumer was
 * re-attached; the tags are void, nothing was queued), RAFTMQ_ENOMEM, or a
 * connection error when 64 Acks are already unanswered and none is
 * answered within the request timeout.
 */
int raftmq_ack_async(struct raftmq *conn, uint64_t consumer_id,
		     const uint64_t *tags, size_t n);

/*
 * Sends the queued async acks and waits up to timeout_ms (-1 = forever)
 * until every async ack sent has been answered. Returns 0, RAFTMQ_ETIMEOUT,
 * a connection error, or the first failure of an async ack since the last
 * flush (RAFTMQ_ESTALE: some were void after a reconnect; or the server's
 * refusal), which it then forgets.
 */
int raftmq_ack_flush(struct raftmq *conn, int timeout_ms);

/*
 * Detaches consumer `c` (always transferred: it is freed whatever the
 * result, with its undelivered deliveries); its unacked messages return to
 * ready without counting a failed delivery. The deliveries of `c` that the
 * library received but raftmq_next()/raftmq_poll() never returned are named
 * in the Cancel and return as never delivered: the next consumer gets them
 * with the delivery_count they had before (one still in flight when the
 * server applies the Cancel returns with its delivery counted, never as a
 * failure). Returns 0 or a connection error (the server drops the consumer
 * with the session anyway).
 */
int raftmq_cancel(struct raftmq *conn, struct raftmq_consumer *c);

/*
 * Pulls up to max_messages (0 = 1) from `queue` (borrowed). The leader
 * answers as soon as max_messages are held, or when wait_ms has passed with
 * what it holds then (maybe none; wait_ms 0 = at once), like a JetStream
 * pull with a batch and an expiry. On success *out (transferred; may be NULL
 * when *n == 0) holds *n deliveries: free with raftmq_deliveries_free(). They
 * are held by the connection's pull consumer and acked like pushed ones.
 * Returns 0 (possibly with none), RAFTMQ_ENOTFOUND, connection errors.
 */
int raftmq_fetch(struct raftmq *conn, const char *queue, uint32_t max_messages,
		 uint64_t wait_ms, struct raftmq_delivery **out, size_t *n);

/* Frees an array from raftmq_fetch (always transferred). */
void raftmq_deliveries_free(struct raftmq_delivery *d, size_t n);

/* Where a peeked message is. */
enum raftmq_msg_state {
	RAFTMQ_MSG_READY = 0,	/* waiting for delivery */
	RAFTMQ_MSG_DELAYED = 1, /* not deliverable before due_ms */
	RAFTMQ_MSG_HELD = 2,	/* delivered, not settled yet */
};

/* Bits of raftmq_peek()'s flags: what to return besides ready messages. */
enum {
	RAFTMQ_PEEK_DELAYED = 1u << 0,
	RAFTMQ_PEEK_HELD = 1u << 1,
};

/* A message seen by raftmq_peek(). In `m`: tag is the seq, consumer_id the
 * consumer holding it (state HELD) or 0, delivery_count the deliveries so
 * far (0 = never delivered), redelivered = delivery_count > 0 (the next
 * delivery would be a redelivery); the other fields as in a delivery. */
struct raftmq_peeked {
	struct raftmq_delivery m; /* owned; raftmq_peeked_free() */
	enum raftmq_msg_state state;
	uint64_t due_ms; /* DELAYED: deliverable (or expiring) at; HELD: ack
			    deadline; 0 = none (cluster time) */
};

/*
 * Looks at the messages of `queue` (borrowed) without taking them: no
 * delivery is made or counted and nothing is held, so peeking never moves a
 * message towards max_deliveries (consuming without acks does). Returns the
 * ready messages with seq >= from_seq in seq order, plus the delayed and
 * held ones if `flags` has RAFTMQ_PEEK_DELAYED / RAFTMQ_PEEK_HELD, at most
 * max_messages (0 = 1; the server returns at most 1000, and no more than
 * fit in one frame). The leader answers after a read barrier, so every
 * write acknowledged before the call is seen.
 *
 * On success *out (transferred; may be NULL when *n == 0) holds *n
 * messages: free with raftmq_peeked_free(). *next_seq (may be NULL) gets
 * the from_seq of the next page, or 0 when no more messages follow.
 * Returns 0, RAFTMQ_ENOTFOUND, RAFTMQ_EINVAL, RAFTMQ_EPERMISSION_DENIED (it
 * needs the consume permission), RAFTMQ_EUNSUPPORTED_VERSION (a server
 * older than protocol version 2), connection errors.
 */
int raftmq_peek(struct raftmq *conn, const char *queue, uint64_t from_seq,
		uint32_t max_messages, unsigned flags,
		struct raftmq_peeked **out, size_t *n, uint64_t *next_seq);

/* Frees an array from raftmq_peek (always transferred). NULL is a no-op. */
void raftmq_peeked_free(struct raftmq_peeked *p, size_t n);

/* ------------------------------------------------------------------------
 * Bodies
 */

/* A message body as one node's body store holds it. Every pointer is owned
 * by the array (raftmq_bodies_free); msg_id and body are followed by a NUL
 * byte, not counted in their length. */
struct raftmq_body {
	uint64_t key; /* the seq of the publish that stored it */
	const void *msg_id;
	size_t msg_id_len;
	const void *body;
	size_t body_len;
	uint32_t sum; /* the store's checksum of msg_id and body */
	void *priv;   /* private: the memory behind the pointers */
};

/*
 * Reads the bodies stored under `keys` (borrowed, n of them, at most
 * 1048576) from the body store of the node the connection is on: any node
 * answers from its own store (with `stay` in the options, the connection
 * stays on the node dialled). Nodes use it to fetch the bodies they lack
 * after installing a snapshot (docs/architecture.md). The answer holds the
 * keys the node has, in the order asked, leaving out those it lacks; it
 * stops before max_bytes (0 = the node's cap) but holds at least one body
 * when the node has any of the keys, so an empty answer means it has none;
 * keys after the last one answered may have been left out for room. Needs
 * admin = true when auth is on.
 *
 * On success *out (transferred; NULL when *n_out == 0) holds *n_out bodies:
 * free with raftmq_bodies_free(). Returns 0, RAFTMQ_EINVAL (n == 0 or too
 * many keys), RAFTMQ_ENOMEM, RAFTMQ_EPERMISSION_DENIED,
 * RAFTMQ_EUNSUPPORTED_VERSION (a node older than protocol version 3),
 * connection errors.
 */
int raftmq_fetch_bodies(struct raftmq *conn, const uint64_t *keys, size_t n,
			uint64_t max_bytes, struct raftmq_body **out,
			size_t *n_out);

/* Frees an array from raftmq_fetch_bodies (always transferred). NULL is a
 * no-op. */
void raftmq_bodies_free(struct raftmq_body *b, size_t n);

/* ------------------------------------------------------------------------
 * Cluster
 */

enum raftmq_role {
	RAFTMQ_ROLE_UNSPECIFIED = 0,
	RAFTMQ_ROLE_VOTER = 1,
	RAFTMQ_ROLE_STANDBY = 2,
	RAFTMQ_ROLE_SPARE = 3,
};

/* "voter", "standby", "spare" or "unspecified". Static string. */
const char *raftmq_role_name(enum raftmq_role role);

struct raftmq_node {
	uint64_t id;
	char *raft_address;   /* owned by the status */
	char *client_address; /* owned by the status */
	enum raftmq_role role;
	bool reachable; /* as seen by the answering node */
	/* The answering node cannot tell: a follower does not see the other
	 * followers (the leader sees everyone). `reachable` is then false. */
	bool reachable_unknown;
};

struct raftmq_cluster_status {
	uint64_t leader_id; /* 0 = unknown */
	uint64_t term;
	uint64_t commit_index;
	uint64_t applied_index; /* on the answering node */
	uint64_t node_id;	/* the answering node */
	size_t n_nodes;
	struct raftmq_node *nodes; /* owned; raftmq_cluster_status_free */
};

/*
 * The answering node's view of the cluster (any node answers; no redirect).
 * *out (borrowed struct) is filled; its contents are transferred: release
 * with raftmq_cluster_status_free(). Returns 0, RAFTMQ_ENOMEM, connection
 * errors.
 */
int raftmq_cluster_status(struct raftmq *conn,
			  struct raftmq_cluster_status *out);
void raftmq_cluster_status_free(struct raftmq_cluster_status *st);

/* Membership (leader only; redirects are followed). Strings borrowed.
 * Return 0, RAFTMQ_EINVAL, RAFTMQ_EEXIST/RAFTMQ_ENOTFOUND as the server
 * says, RAFTMQ_EUNKNOWN_OUTCOME, connection errors. `leader_id` (may be
 * NULL) receives the transfer target chosen. */
int raftmq_cluster_add(struct raftmq *conn, uint64_t id,
		       const char *raft_address, const char *client_address,
		       enum raftmq_role role);
int raftmq_cluster_remove(struct raftmq *conn, uint64_t id);
int raftmq_cluster_transfer(struct raftmq *conn, uint64_t id,
			    uint64_t *leader_id);

#ifdef __cplusplus
}
#endif

#endif /* RAFTMQ_H */
