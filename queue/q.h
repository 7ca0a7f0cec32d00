/* queue/: the pure, deterministic state machine of raftmq.
 *
 * Every replica applies the same sequence of commands (struct q_cmd) to a
 * struct q_state and ends with byte-identical state (q_state_dump()). Nothing
 * here reads a clock, a socket, a random source or a global: time arrives as
 * data in each command (cmd->now_ms, the leader's stamp), and the state clock
 * is the maximum stamp seen, so a stamp going backwards changes nothing.
 *
 * Model
 *   - A queue holds messages. A message is in exactly one place: "ready"
 *     (waiting, FIFO), "returned" (requeued after a delivery, delivered before
 *     ready ones, in the order they came back), "delayed" (not deliverable
 *     before a due time) or "unacked" (held by one consumer until ack, nack,
 *     release, ack timeout, or the consumer going away).
 *   - A topic fans a publish out to its subscriptions. A subscription is an
 *     ordinary queue named "TOPIC:SUBSCRIPTION" bound to the topic; the copies
 *     share one refcounted body.
 *   - A consumer is attached to one queue by a session (node id, epoch,
 *     session id). Delivery is automatic: whenever a consumer has room (fewer
 *     than `prefetch` unacked and `credit` left), apply hands it the next
 *     message and reports it through the delivery sink. Deliveries therefore
 *     happen inside the apply of the command that made them possible (a
 *     publish, an ack, an attach), are replicated with it, and need no log
 *     entry of their own.
 *   - A delivery tag is the message's sequence number (q_seq), unique within
 *     a queue. Acks name the consumer, so a tag held by another consumer is
 *     refused.
 *   - Timers (ack deadlines, delays, TTLs) live in one min-heap ordered by
 *     (due, queue id, seq) and fire in Q_CMD_TICK (and in any command whose
 *     stamp has passed them) so firing order is the same everywhere.
 *
 * Exact rules (tests rely on them)
 *   - Sequence numbers come from one counter in the state, starting at 1, one
 *     per publish (all fan-out copies of a topic publish share it) and one per
 *     dead-lettered copy (it gets a fresh seq in the dead-letter queue).
 *   - Consumer ids come from a counter starting at 1.
 *   - Picking a consumer: a queue keeps its consumers in attach order and a
 *     round-robin cursor; each delivery goes to the next consumer after the
 *     previous receiver that has room (unacked < prefetch or prefetch 0, and
 *     credit > 0). Messages go out returned-first, then ready in FIFO order.
 *     Credit (unless Q_CREDIT_UNLIMITED) drops by one per delivery.
 *   - Each delivery adds 1 to delivery_count. A *failed* delivery is a NACK,
 *     an ack timeout, or a SESSION_GONE of the holder; RELEASE, DETACH and
 *     DETACH_STALE return messages without counting a failure. When a failed
 *     delivery brings a message's failure count to max_deliveries (> 0), the
 *     message is dead-lettered instead of requeued.
 *   - DETACH may name *unseen* tags of the consumer: deliveries that reached
 *     the client but were never handed to its application (a client
 *     library's buffer, dropped at cancel or close). They return like the
 *     others, and their last delivery is undone: delivery_count goes back by
 *     one, so the next consumer gets the count the application would have
 *     seen (the queue's `delivered` counter still counts the push). Tags not
 *     held by the consumer are ignored.
 *   - A RELEASE may say that all its tags are unseen (u.tags.unseen): each
 *     tag held by the consumer returns as with any RELEASE (counted in
 *     `released`) and its last delivery is undone as for DETACH. The node
 *     releases so a pull consumer's delivery that arrived after its fetch
 *     was answered: nobody ever saw it.
 *   - An undone delivery never takes delivery_count below the message's
 *     failure count (only the last delivery is undone, and it has not
 *     failed), nor below 0; a saturated count stays saturated.
 *   - Dead-lettering moves the message into the queue named by dead_letter
 *     (reason and origin recorded, a fresh seq, the failure count reset, the
 *     delivery count kept as history, expiry from the dead-letter queue's own
 *     ttl). A queue cannot be its own dead-letter queue (Q_EINVAL). If that
 *     queue does not exist, or the message was
 *     already dead-lettered once, it is dropped (counted in `dropped`). If the
 *     dead-letter queue is full, reject-publish drops the message and
 *     drop-head drops (for good) the dead-letter queue's oldest messages.
 *   - Length and bytes limits count messages not held by consumers (ready,
 *     returned, delayed). reject-publish refuses a publish that would exceed
 *     them (Q_EFULL; a topic publish is refused whole if any subscription
 *     refuses); drop-head removes the oldest (returned, then ready, then
 *     delayed) and dead-letters them with reason overflow. A body larger than
 *     max_bytes is refused (Q_EFULL) whatever the overflow setting.
 *   - TTL: a message expires at publish time + (its own ttl, else the queue's
 *     ttl when it was enqueued). A message expires only while not held by a
 *     consumer (when its timer fires, or when it is about to be delivered or
 *     returned after its expiry); expiry dead-letters with reason expired.
 *   - Delayed messages (delay_ms, or NACK with a delay) become deliverable at
 *     their due time: a delayed publish joins the ready tail, a delayed nack
 *     the returned list. A delayed message whose TTL ends before its due time
 *     expires at the TTL, still delayed.
 *   - A dead-lettered copy keeps its delivery_count (history) and restarts
 *     its failure count. A returning message is checked against
 *     max_deliveries before expiry. Returns never trim a full queue (limits
 *     apply to publishes and dead-letter arrivals only).
 *   - Within one command, queues are dispatched in the order they became
 *     dispatchable; DETACH / SESSION_GONE return a consumer's messages in
 *     delivery order; after a removed receiver, round robin resumes at the
 *     consumer after its position.
 *   - Ack timeout: a delivery's deadline is delivery time + ack_timeout_ms
 *     (EXTEND: now + ms, or + ack_timeout_ms when ms is 0). An expired deadline
 *     is a failed delivery.
 *   - Timers fire only in Q_CMD_TICK (all timers with due <= the state clock,
 *     in (due, queue id, seq) order). Other commands never fire timers, apart
 *     from the expiry check at delivery.
 *   - Dedup: a publish with a msg_id to a queue (or a topic) that already saw
 *     that id less than dedup_window_ms ago returns Q_OK, duplicate = true
 *     and the original seq, and stores nothing. Old ids are forgotten lazily.
 *   - Topics: a topic publish enqueues a copy into each subscription; with
 *     no subscription it is accepted and stored nowhere. Deleting a topic
 *     deletes its subscription queues. A subscription queue cannot be deleted
 *     with DELETE_QUEUE (Q_ETOPICQUEUE: use UNSUBSCRIBE) nor published to
 *     directly.
 *   - CREATE_QUEUE / CREATE_TOPIC / SUBSCRIBE of something that exists with
 *     the same settings succeed (idempotent retries); with other settings they
 *     return Q_EEXIST.
 *   - DELETE_QUEUE drops its messages and removes its consumers (reported
 *     through sink->consumer_gone). PURGE removes ready, returned and delayed
 *     messages, not unacked ones (count = removed).
 *   - Counters: `published` counts accepted publishes into the queue (not
 *     dead-letter arrivals); `dead_lettered` and `dropped` count on the queue
 *     a message left (an expiry counts `expired` and then `dead_lettered` or
 *     `dropped`); `rejected` counts refused publishes; `delivered` every
 *     delivery and `redelivered` those with delivery_count > 1; `acked`,
 *     `nacked`, `released` the tags done by those commands.
 *   - Bodies: an accepted publish that stores a copy (not a duplicate, not
 *     a topic publish without subscriptions) stores one body, shared by
 *     its fan-out copies and kept by a dead-lettered copy; its key is the
 *     publish's seq. With a body interface, put is called once for it,
 *     after validation and allocation and before anything changes, and
 *     drop once, when its last copy leaves the state.
 *   - Tag commands act on each tag on its own: tags held by the consumer are
 *     done (count), others are skipped (unknown); status is Q_EUNKNOWNTAG if
 *     any was skipped, else Q_OK. An unknown consumer is Q_ENOCONSUMER.
 *
 * Errors: functions return 0 or a positive Q_E* code. A command that the
 * broker refuses (unknown queue, queue full, unknown tag) is a *result*:
 * q_state_apply() returns 0 and puts the code in result->status. apply
 * returns non-zero only for Q_ENOMEM, or Q_EIO when the body store refused
 * a new body (struct q_bodies), and then the state is unchanged (validate
 * and allocate first, then store the body, then mutate). Neither ever
 * reaches a client: consensus/ stops the node on any non-zero apply.
 *
 * Bodies: by default a message body and its msg id live in the state's
 * memory and deliveries carry the bytes. With a body interface (struct
 * q_bodies in q_options) they live in a body store: the state keeps per
 * body only its key (the origin seq), lengths, publish time and the store's
 * checksum, deliveries and peeks carry body = msg_id = NULL with the lengths,
 * the key and the checksum, and the reader fetches the bytes from the store.
 * Queue gauges and limits (bytes, max_bytes) count body bytes either way.
 *
 * Memory per stored message (bench/q_bench, 1,000,000 messages waiting in
 * one queue, no ttl, no delay, no dedup id, x86_64, glibc 2.36): with a body
 * interface 88 B of state per message, 96 B counting malloc's own headers
 * (1 KiB bodies, none of them in memory; the target is 150 B); with bodies
 * in memory (128 B bodies) 88 B of state over the body, 96 B counting
 * malloc's headers (176 B before the side struct). A waiting message is one
 * allocation: struct q_msg (56 B) and the header of its single-copy body
 * (32 B). A message gets a side struct (72 B state) once it is delivered or
 * has a timer (ttl, delay, ack deadline). A 16-byte dedup id adds about
 * 114 B (state) / 130 B (malloc) for as long as it stays in the window: its
 * entry and its share of the open-addressing id table (16 B slots at most
 * half full; it was 88/104 B with chaining, which cost a cache miss per
 * chain link and 24 % of a follower's CPU in W1). docs/queue.md has the
 * table.
 */
#ifndef RAFTMQ_Q_H
#define RAFTMQ_Q_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t q_seq; /* message sequence number, also the delivery tag */
typedef uint64_t q_consumer_id;

struct q_state;

/* Error and rejection codes (0 is success). Keep in step with q_strerror()
 * and with proto/client.proto's ErrorCode. */
enum {
	Q_OK = 0,
	Q_ENOMEM = 1,	    /* allocation failed; state unchanged */
	Q_ENOTFOUND = 2,    /* no such queue / topic / subscription */
	Q_EEXIST = 3,	    /* exists with different settings */
	Q_EFULL = 4,	    /* max_length / max_bytes with reject-publish */
	Q_EINVAL = 5,	    /* bad argument (name, setting, empty tag list) */
	Q_ENOCONSUMER = 6,  /* unknown consumer id */
	Q_EUNKNOWNTAG = 7,  /* some tags were not held by this consumer */
	Q_ECORRUPT = 8,	    /* q_state_load(): malformed dump */
	Q_ETOOBIG = 9,	    /* body over the state's max body size */
	Q_ETOPICQUEUE = 10, /* operation not allowed on a subscription queue */
	Q_EIO = 11,	    /* the body store failed (struct q_bodies) */
	Q_ECODES_COUNT
};

const char *q_strerror(int code);

/* Overflow behaviour when max_length / max_bytes is reached. */
enum q_overflow {
	Q_OVERFLOW_REJECT_PUBLISH = 0,
	Q_OVERFLOW_DROP_HEAD = 1,
};

/* Per-queue settings. Names are borrowed in commands and copied by apply. */
struct q_settings {
	/* Default 30000; 0 = no deadline. */
	uint64_t ack_timeout_ms;
	/* Failed deliveries before dead-letter; default 20; 0 = unlimited. */
	uint32_t max_deliveries;
	/* Queue name, or NULL / "" for none (borrowed). */
	const char *dead_letter;
	/* Default 0 = none. */
	uint64_t ttl_ms;
	/* Messages / body bytes not held by consumers; 0 = unlimited. */
	uint64_t max_length;
	uint64_t max_bytes;
	/* enum q_overflow. */
	uint8_t overflow;
	/* Default 120000; 0 = off. */
	uint64_t dedup_window_ms;
};

/* Bits of struct q_cmd_configure.mask: which settings to change. */
enum {
	Q_SET_ACK_TIMEOUT = 1u << 0,
	Q_SET_MAX_DELIVERIES = 1u << 1,
	Q_SET_DEAD_LETTER = 1u << 2,
	Q_SET_TTL = 1u << 3,
	Q_SET_MAX_LENGTH = 1u << 4,
	Q_SET_MAX_BYTES = 1u << 5,
	Q_SET_OVERFLOW = 1u << 6,
	Q_SET_DEDUP_WINDOW = 1u << 7,
	Q_SET_ALL = (1u << 8) - 1,
};

/* Fills *s with the documented defaults. */
void q_settings_default(struct q_settings *s);

/* A session that owns consumers: the node it is connected to, the epoch in
 * which that node served it (the node's term as leader), and a per-node id. */
struct q_session {
	uint64_t node_id;
	uint64_t epoch;
	uint64_t session_id;
};

enum q_cmd_type {
	Q_CMD_TICK = 0, /* fire due timers; nothing else */
	Q_CMD_CREATE_QUEUE,
	Q_CMD_CONFIGURE_QUEUE,
	Q_CMD_DELETE_QUEUE,
	Q_CMD_PURGE_QUEUE,
	Q_CMD_CREATE_TOPIC,
	Q_CMD_DELETE_TOPIC,
	Q_CMD_SUBSCRIBE,
	Q_CMD_UNSUBSCRIBE,
	Q_CMD_PUBLISH,
	Q_CMD_ATTACH, /* add a consumer */
	Q_CMD_DETACH, /* remove a consumer; its unacked return */
	Q_CMD_CREDIT, /* set a consumer's prefetch and credit */
	Q_CMD_ACK,
	Q_CMD_NACK,	    /* requeue, counts a failed delivery */
	Q_CMD_RELEASE,	    /* requeue, does not count */
	Q_CMD_EXTEND,	    /* push the ack deadline */
	Q_CMD_SESSION_GONE, /* detach every consumer of one session */
	Q_CMD_DETACH_STALE, /* detach every consumer not of (node, epoch) */
	Q_CMD_TYPE_COUNT
};

/* Unlimited credit (push consumers). */
#define Q_CREDIT_UNLIMITED UINT32_MAX

/* A command. Every pointer in it is borrowed: apply copies what it keeps. */
struct q_cmd {
	uint8_t type;	 /* enum q_cmd_type */
	uint64_t now_ms; /* leader's wall clock stamp for the batch */
	union {
		struct q_cmd_queue { /* CREATE/CONFIGURE/DELETE/PURGE */
			const char *name;
			struct q_settings settings; /* CREATE, CONFIGURE */
			uint32_t mask; /* CONFIGURE: Q_SET_* bits */
		} queue;
		struct q_cmd_topic { /* CREATE/DELETE_TOPIC, (UN)SUBSCRIBE */
			const char *topic;
			const char *subscription; /* (UN)SUBSCRIBE */
			/* SUBSCRIBE: the queue's settings */
			struct q_settings settings;
			uint64_t dedup_window_ms; /* CREATE_TOPIC */
		} topic;
		struct q_cmd_publish {
			const char *queue; /* exactly one of queue / topic */
			const char *topic;
			const char *msg_id; /* dedup id, may be NULL */
			size_t msg_id_len;
			const void *body;
			size_t body_len;
			uint64_t delay_ms; /* 0 = deliverable now */
			uint64_t ttl_ms;   /* 0 = the queue's ttl */
		} publish;
		struct q_cmd_attach {
			const char *queue;
			struct q_session session;
			uint32_t prefetch; /* max unacked; 0 = unlimited */
			/* Deliveries allowed; Q_CREDIT_UNLIMITED for push. */
			uint32_t credit;
		} attach;
		struct q_cmd_consumer { /* DETACH, CREDIT */
			q_consumer_id consumer;
			uint32_t prefetch; /* CREDIT */
			uint32_t credit;   /* CREDIT */
			/* DETACH: tags the client received but never handed
			 * to its application (may be NULL when n_unseen is
			 * 0). */
			const q_seq *unseen;
			size_t n_unseen;
		} consumer;
		struct q_cmd_tags { /* ACK, NACK, RELEASE, EXTEND */
			q_consumer_id consumer;
			const q_seq *tags;
			size_t n_tags;
			/* NACK: delay; EXTEND: new timeout (0 = queue's). */
			uint64_t ms;
			/* RELEASE: the client never handed these deliveries
			 * to its application; their last delivery is undone.
			 * Ignored by the other tag commands. */
			bool unseen;
		} tags;
		struct q_cmd_session { /* SESSION_GONE, DETACH_STALE */
			/* DETACH_STALE uses node_id and epoch only. */
			struct q_session session;
		} session;
	} u;
};

/* The result of one command: status and the command's outputs. */
struct q_result {
	int status;		/* Q_OK or a rejection code */
	q_seq seq;		/* PUBLISH: the message's sequence number */
	bool duplicate;		/* PUBLISH: dedup hit; seq is the original's */
	q_consumer_id consumer; /* ATTACH */
	uint64_t count;		/* PURGE: removed; tag commands: tags done;
				   DETACH/SESSION_GONE/DETACH_STALE: consumers */
	uint64_t unknown; /* tag commands: tags not held by the consumer */
};

/* Why a message left a queue without an ack (dead-letter reason). */
enum q_reason {
	Q_REASON_NONE = 0,
	Q_REASON_MAX_DELIVERIES = 1,
	Q_REASON_EXPIRED = 2,
	Q_REASON_OVERFLOW = 3,
};

/* A delivery, reported through the sink during apply. Every pointer is
 * borrowed and valid only during the sink call. */
struct q_delivery {
	q_consumer_id consumer;
	const struct q_session *session;
	const char *queue;
	q_seq seq; /* the delivery tag */
	/* msg_id and body: the bytes when bodies are in memory; NULL with a
	 * body interface (read them from the store by body_key). msg_id is
	 * NULL too when there is none (msg_id_len 0). */
	const char *msg_id;
	size_t msg_id_len;
	const void *body;
	size_t body_len;
	q_seq body_key;		 /* the body's key: seq of its publish */
	uint32_t body_sum;	 /* the store's checksum; 0 in memory */
	uint32_t delivery_count; /* 1 on the first delivery */
	uint64_t published_ms;	 /* state clock when published */
	uint8_t dl_reason;	 /* enum q_reason if dead-lettered, else 0 */
	const char *dl_queue;	 /* queue it was dead-lettered from, or NULL */
};

/* A consumer that apply removed (queue deleted, unsubscribed, SESSION_GONE,
 * DETACH_STALE; not DETACH, which the client asked for): the node tells the
 * client if it still has it. Pointers borrowed for the call only. */
struct q_consumer_gone {
	q_consumer_id consumer;
	const struct q_session *session;
	const char *queue;
};

/* Where apply reports what it did. All callbacks optional; called only after
 * the command has fully succeeded, in a deterministic order. */
struct q_sink {
	void *data;
	void (*deliver)(void *data, const struct q_delivery *d);
	void (*consumer_gone)(void *data, const struct q_consumer_gone *g);
};

/* Allocation hooks, so tests can inject failures. */
struct q_allocator {
	void *data;
	void *(*malloc)(void *data, size_t size);
	void *(*realloc)(void *data, void *ptr, size_t size);
	void (*free)(void *data, void *ptr);
};

/*
 * Where bodies live when not in the state's memory: a body store (store/,
 * wired by consensus/). Every function is called from inside q_state_apply()
 * or q_state_load(), synchronously, and must not call into the state.
 *
 * The keys a state refers to are exactly those it put or claimed and has not
 * dropped since: put and claim add a key, drop removes it. q_state_free()
 * and the clearing of a state by q_state_load() drop nothing (the snapshot
 * and the log the state came from still refer to those bodies). A store
 * behind two states at once (a snapshot loading next to the live state)
 * must therefore count references per key.
 *
 * Across a restart the calls repeat: the node loads its last snapshot
 * (claims) and applies the log after it again, so put can name a key the
 * store already holds (with the same bytes) and drop one it was told to
 * drop before. A body dropped after the last snapshot was taken is still
 * claimed by that snapshot when the node restarts: the store must keep it
 * until a later snapshot is durable. q_state_dump() never calls the store
 * (a dump can be written by a forked child).
 */
struct q_bodies {
	void *data;
	/* A new body (one per accepted publish, shared by its fan-out copies):
	 * key is its origin seq. Returns 0 and the body's checksum in *sum
	 * (computed by the store, a pure function of the bytes: it becomes
	 * part of the replicated state), or non-zero: apply then fails with
	 * Q_EIO, the state unchanged. q_state_load() also puts the bodies of a
	 * dump that carries their bytes (format 1: migration). id (NULL when
	 * id_len is 0) and body are borrowed for the call. */
	int (*put)(void *data, q_seq key, const void *id, size_t id_len,
		   const void *body, size_t len, uint32_t *sum);
	/* The last copy referring to key left the state (acked, dropped,
	 * purged, queue deleted...), or a q_state_load() that had put it
	 * failed afterwards (undo). q_state_apply() calls put only after its
	 * allocations, so a failed apply never drops. */
	void (*drop)(void *data, q_seq key);
	/* q_state_load(): key is referenced by the loaded state (a dump in
	 * format 2, without bytes), called once the load has succeeded. */
	void (*claim)(void *data, q_seq key);
};

struct q_options {
	/* NULL = libc; borrowed, must outlive the state. */
	const struct q_allocator *allocator;
	uint64_t hash_seed; /* seeds name/id hashing; any value, need not match
			       between replicas (it never affects results) */
	size_t max_body;    /* 0 = unlimited (bodies over 4 GiB - 1 are
			       always refused) */
	/* NULL = bodies in memory. Borrowed, must outlive the state; all
	 * three functions are required. Every replica must use the same
	 * kind (the dump differs: see q_state_dump()). */
	const struct q_bodies *bodies;
};

/* Creates an empty state. Returns NULL on allocation failure. `opts` may be
 * NULL; it is borrowed. */
struct q_state *q_state_new(const struct q_options *opts);
void q_state_free(struct q_state *s);

/* Sets the sink (borrowed; must outlive its use). NULL clears it. */
void q_state_set_sink(struct q_state *s, const struct q_sink *sink);

/* Applies one command. Returns 0 (result->status says accepted or refused)
 * or Q_ENOMEM or Q_EIO (the body store refused a PUBLISH's body), in which
 * case the state and its body references are exactly as before and no sink
 * callback was made. `cmd` is borrowed; `result` is written. */
int q_state_apply(struct q_state *s, const struct q_cmd *cmd,
		  struct q_result *result);

/* The earliest timer due time, or UINT64_MAX if none: the leader proposes a
 * TICK when its clock passes it. */
uint64_t q_state_next_due(const struct q_state *s);

/* The state clock (max stamp seen). */
uint64_t q_state_now(const struct q_state *s);

/* Totals for memory accounting. */
struct q_totals {
	uint64_t queues, topics, consumers;
	uint64_t messages;   /* stored message copies (all queues) */
	uint64_t bodies;     /* distinct stored bodies (memory or store) */
	uint64_t body_bytes; /* bytes of distinct bodies (memory or store) */
	uint64_t dedup_entries;
	/* Bytes currently allocated by the state (what it asked malloc for):
	 * with bodies in memory it includes their bytes, with a body interface
	 * it does not. */
	uint64_t alloc_bytes;
	/* Allocations currently live: malloc adds its own header and rounding
	 * to each (16 B on average on glibc x86_64), so the heap the state
	 * holds is about alloc_bytes + 16 * alloc_blocks. */
	uint64_t alloc_blocks;
	/* Body and msg id bytes the state refers to in the body store (what
	 * put was given for the bodies still referenced); 0 in memory. */
	uint64_t stored_bytes;
};
void q_state_totals(const struct q_state *s, struct q_totals *t);

/* Per-queue counters and gauges, for metrics and `queue info`. */
struct q_queue_info {
	const char *name;	    /* borrowed from the state */
	const char *topic;	    /* bound topic or NULL (borrowed) */
	struct q_settings settings; /* dead_letter borrowed from the state */
	uint64_t ready, unacked, delayed, bytes, consumers;
	uint64_t published, delivered, redelivered, acked, nacked, released;
	uint64_t dead_lettered, expired, deduplicated, dropped, rejected;
};

/* Fills *info for queue `name`. Returns Q_ENOTFOUND if none. Pointers in
 * *info are valid until the next apply. */
int q_state_queue_info(const struct q_state *s, const char *name,
		       struct q_queue_info *info);

/* Calls cb for each queue in name order, then returns 0 (or cb's non-zero). */
int q_state_foreach_queue(const struct q_state *s,
			  int (*cb)(void *data,
				    const struct q_queue_info *info),
			  void *data);

/* Calls cb once per message copy whose body is in a body store (struct
 * q_bodies): its key and the store's checksum. A body shared by n copies
 * (a topic's fan-out) is visited n times. Stops at the first non-zero
 * return of cb and returns it; 0 when every copy was visited (at once
 * without a body interface). For consensus/: dropping the references of a
 * state about to be replaced, and listing what a snapshot refers to. */
int q_state_foreach_body(const struct q_state *s,
			 int (*cb)(void *data, q_seq key, uint32_t sum),
			 void *data);

struct q_topic_info {
	const char *name; /* borrowed */
	uint64_t dedup_window_ms;
	uint64_t subscriptions;
	uint64_t published, deduplicated;
};
int q_state_foreach_topic(const struct q_state *s,
			  int (*cb)(void *data,
				    const struct q_topic_info *info),
			  void *data);

/* Where a message is, as q_state_peek() reports it. */
enum q_msg_state {
	Q_MSG_READY = 0,   /* waiting for delivery (ready or returned) */
	Q_MSG_DELAYED = 1, /* not deliverable before its due time */
	Q_MSG_HELD = 2,	   /* delivered, held by a consumer until settled */
};

/* Bits of q_state_peek()'s `flags`: what to visit besides ready messages. */
enum {
	Q_PEEK_DELAYED = 1u << 0,
	Q_PEEK_HELD = 1u << 1,
};

/* One message seen by q_state_peek(): the delivery a consumer would get,
 * except that msg.consumer and msg.session name the consumer holding it
 * (Q_MSG_HELD; else 0 and NULL) and msg.delivery_count counts the
 * deliveries so far (0 = never delivered). Every pointer is borrowed from
 * the state and valid only during the callback. */
struct q_peeked {
	struct q_delivery msg;
	uint8_t state;	     /* enum q_msg_state */
	uint64_t due_ms;     /* DELAYED: deliverable (or expiring) at;
				HELD: ack deadline; 0 = none */
	uint64_t expires_ms; /* TTL expiry, 0 = never */
};

/*
 * Visits the messages of queue `name` whose seq is >= `from`, in seq order,
 * at most `max` of them: the ready and returned ones, plus the delayed and
 * held ones if `flags` has Q_PEEK_DELAYED / Q_PEEK_HELD. A pure read: no
 * delivery is made or counted, nothing is held, expired or moved, and no
 * sink callback is made, so replicas stay identical whoever peeks. `name`
 * is borrowed; `cb` gets each message (borrowed, see struct q_peeked) with
 * `data` and returns 0 to go on or non-zero to stop.
 *
 * Cost: one pass over the queue's messages of the visited kinds, keeping the
 * `max` smallest seqs in a heap of at most `max` pointers (O(n log max)); the
 * heap is allocated with the state's allocator and freed before returning
 * (not counted in q_state_totals()).
 *
 * Returns 0, Q_ENOTFOUND (no such queue), Q_ENOMEM (heap allocation; nothing
 * visited), or cb's non-zero value.
 */
int q_state_peek(const struct q_state *s, const char *name, q_seq from,
		 size_t max, unsigned flags,
		 int (*cb)(void *data, const struct q_peeked *m), void *data);

/*
 * Describes the message that consumer `consumer` holds under tag `seq`, as
 * its delivery was reported (struct q_delivery, pointers borrowed from the
 * state until the next apply), if it still holds it and it was delivered
 * `deliveries` times (a message taken back and given to the same consumer
 * again is a new delivery under the same tag). For a node that sends a
 * delivery some time after apply made it: one the consumer no longer holds
 * (acked by nobody it was sent to, but timed out, purged, or the consumer
 * gone) is not sent. A pure read.
 *
 * Returns 0 or Q_ENOTFOUND.
 */
int q_state_delivery(const struct q_state *s, q_consumer_id consumer, q_seq seq,
		     uint32_t deliveries, struct q_delivery *d);

struct q_consumer_info {
	q_consumer_id id;
	const char *queue; /* borrowed */
	struct q_session session;
	uint32_t prefetch, credit;
	uint64_t unacked;
};
int q_state_foreach_consumer(const struct q_state *s,
			     int (*cb)(void *data,
				       const struct q_consumer_info *info),
			     void *data);

/* Full invariant walk. Returns 0, or Q_ECORRUPT and writes a description of
 * the first violation into errbuf (if not NULL). */
int q_state_check(const struct q_state *s, char *errbuf, size_t errlen);

/* Deterministic serialisation: identical histories give identical bytes.
 * `write` is called with consecutive chunks and returns 0 or non-zero to
 * stop (that value is returned). A state with bodies in memory writes
 * format 1 (bodies and msg ids inline, readable by every version); one with
 * a body interface writes format 2 (per body its key, lengths, publish time
 * and checksum, no bytes). docs/queue.md describes both. */
int q_state_dump(const struct q_state *s,
		 int (*write)(void *data, const void *buf, size_t len),
		 void *data);

/* Convenience: dumps into a malloc()ed buffer (caller frees with free()). */
int q_state_dump_buf(const struct q_state *s, void **buf, size_t *len);

/* Replaces the (empty) state's contents with a dump (format 1 or 2).
 * Returns 0, Q_ECORRUPT for malformed bytes (never crashes on them),
 * Q_ENOMEM, or Q_EIO (put failed). On failure the state is left empty and
 * q_state_load_error() says why. `buf` is borrowed.
 *
 * With a body interface, a body that comes with its bytes (format 1) is put
 * into the store (migration of an old snapshot) as it is read, and if the
 * load fails every key it put is dropped again; one without (format 2) is
 * claimed, once per key, only once the whole dump has loaded and passed
 * q_state_check(), so a format 2 load that fails calls the store not at
 * all. A dump in format 2 cannot load into a state without a body
 * interface (Q_ECORRUPT): its bodies are not in it. */
int q_state_load(struct q_state *s, const void *buf, size_t len);

/* Why the last q_state_load() of s failed, one sentence ("" after a
 * success or before any load). Valid until the next load or free. */
const char *q_state_load_error(const struct q_state *s);

/* Names: 1..255 bytes, no NUL, no control characters. */
#define Q_NAME_MAX 255
bool q_name_valid(const char *name);

#endif /* RAFTMQ_Q_H */
