/* Internals of queue/: never included outside this folder.
 *
 * Data structures are intrusive so that, once a command has been validated
 * and its allocations made, every state change (deliveries, requeues,
 * dead-lettering, timers) is pointer surgery that cannot fail. That is what
 * makes q_state_apply() all-or-nothing.
 *
 * Ownership
 *   struct q_state owns queues, topics, consumers (all heap objects).
 *   A queue owns the struct q_msg copies in its returned, ready and delayed
 *   lists; a consumer's unacked list holds copies still owned by the queue
 *   (counted in the queue's gauges).
 *   struct q_body is shared by the copies of one publish (fan-out): refs
 *   counts the q_msg pointing at it; the last copy to go frees it. A body
 *   with a single copy lives in the same allocation as its q_msg, right
 *   after it (q__msg_body_inline()).
 *   struct q_msg_ext is owned by its message: a message gets one when it is
 *   first delivered or timed and keeps it until it is freed. A message that
 *   needs one from the start (a publish that is delivered at once or has a
 *   ttl or a delay, a loaded one) has it in its own allocation, after the
 *   q_msg and before an inline body (Q__MSG_EXT_IN_BLOCK).
 *
 * Memory per waiting message (see q.h): a q_msg holds only what a message
 * waiting in a ready or returned list needs. What only a held or timed
 * message needs (timer heap node, deadline, ttl, holder, unacked index
 * chain, delivery counts) is in the side struct. Deliveries and timers
 * happen in the mutation phase, where nothing may fail, so every command
 * reserves the side structs it may need before mutating (q__ext_reserve(),
 * bounds in q_state.c) and q__msg_ext() takes them from that reserve.
 */
#ifndef RAFTMQ_Q_INT_H
#define RAFTMQ_Q_INT_H

#include <assert.h>

#include "q.h"

#define Q__CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------ memory */

void *q__malloc(struct q_state *s, size_t size);
void *q__realloc(struct q_state *s, void *ptr, size_t old_size, size_t size);
void q__free(struct q_state *s, void *ptr, size_t size);
char *q__strdup(struct q_state *s, const char *str);
void q__strfree(struct q_state *s, char *str);

/* 64-bit seeded hash of bytes (FNV-1a with a final avalanche). Only used to
 * place names and dedup ids in hash tables, never to decide an outcome. */
uint64_t q__hash(uint64_t seed, const void *buf, size_t len);

/* ------------------------------------------------------------------- lists */

struct q_link {
	struct q_link *next, *prev;
};

static inline void q__list_init(struct q_link *l)
{
	l->next = l->prev = l;
}
static inline int q__list_empty(const struct q_link *l)
{
	return l->next == l;
}
static inline void q__list_append(struct q_link *head, struct q_link *n)
{
	/* Appending a linked node would cut its old list in two. */
	assert(n->next == NULL || n->next == n);
	assert(head->prev->next == head);
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}
static inline void q__list_remove(struct q_link *n)
{
	assert(n->prev->next == n && n->next->prev == n);
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

/* -------------------------------------------------------------- timer heap */

/* Intrusive pairing heap node. The order is total (q__timer_less) so the
 * pop order depends only on the keys, not on the shape of the heap. */
struct q_hnode {
	struct q_hnode *child, *sibling,
		*prev; /* prev: parent or left sibling */
};

struct q_msg;
struct q_heap {
	struct q_hnode *root;
	uint64_t count;
};

/* The heap's order: (due, queue id, seq) of the messages, a total order
 * (keys are unique). */
int q__timer_less(const struct q_hnode *a, const struct q_hnode *b);
void q__heap_insert(struct q_heap *h, struct q_hnode *n);
void q__heap_remove(struct q_heap *h, struct q_hnode *n);
struct q_hnode *q__heap_min(const struct q_heap *h);

/* ----------------------------------------------------------------- objects */

/* A stored body, shared by the copies of one publish. With bodies in
 * memory the msg id and body bytes follow it; with a body interface there
 * are none (q__body_size()). */
struct q_body {
	uint64_t origin; /* seq of the publish that stored it: the key */
	uint64_t published_ms;
	uint32_t len;	      /* body bytes */
	uint32_t sum;	      /* the store's checksum; 0 in memory */
	uint32_t refs;	      /* q_msg pointing here */
	uint32_t id_len;      /* msg id bytes */
	unsigned char data[]; /* in memory only: id_len bytes, then len */
};

/* Where a message is. */
enum {
	Q__READY = 0,
	Q__RETURNED = 1,
	Q__DELAYED = 2,
	Q__UNACKED = 3,
	Q__NOWHERE = 4, /* unlinked: being moved or freed */
};

struct q_queue;
struct q_consumer;
struct q_msg;

/* What a message needs once delivered or timed (see the top). A message
 * without one has never been delivered, has no ttl and no timer: all of
 * these fields read as 0 (the q__msg_* accessors). */
struct q_msg_ext {
	struct q_hnode timer; /* in s->timers when msg->in_heap */
	struct q_msg *msg;    /* its message (owner) */
	union {
		struct q_msg *hnext;	      /* unacked index chain */
		struct q_msg_ext *next_spare; /* in the reserve */
	};
	struct q_consumer *consumer; /* holder when Q__UNACKED */
	uint64_t due;		     /* timer key when in_heap, else 0 */
	uint64_t expires;	     /* absolute TTL expiry, 0 = never */
	uint32_t deliveries;	     /* times delivered */
	uint32_t failures; /* failed deliveries (nack, timeout, gone) */
};

/* One copy of a message in one queue. */
struct q_msg {
	struct q_link link;    /* in exactly one list (see where) */
	struct q_body *body;   /* shared, or inline right after */
	struct q_queue *queue; /* owner */
	struct q_msg_ext *ext; /* owned; NULL until delivered or timed */
	q_seq seq;
	uint32_t dl_from;  /* queue id it was dead-lettered from */
	uint8_t where;	   /* Q__READY .. Q__NOWHERE */
	uint8_t in_heap;   /* ext->timer is in s->timers */
	uint8_t dl_reason; /* enum q_reason once dead-lettered */
	uint8_t flags;	   /* Q__MSG_* */
};

enum {
	Q__MSG_EXT_IN_BLOCK = 1u << 0, /* ext shares m's allocation */
};

/* Bytes of a body struct with these lengths in this state. */
static inline size_t q__body_size(const struct q_state *s, size_t id_len,
				  size_t len);
/* Where a body in m's allocation starts: after m and its side struct. */
static inline const void *q__msg_block_body(const struct q_msg *m)
{
	return (const char *)(m + 1) + ((m->flags & Q__MSG_EXT_IN_BLOCK)
						? sizeof(struct q_msg_ext)
						: 0);
}
/* Whether m's body shares m's allocation (then it has one copy). */
static inline int q__msg_body_inline(const struct q_msg *m)
{
	return (const void *)m->body == q__msg_block_body(m);
}
static inline uint32_t q__msg_deliveries(const struct q_msg *m)
{
	return m->ext != NULL ? m->ext->deliveries : 0;
}
static inline uint32_t q__msg_failures(const struct q_msg *m)
{
	return m->ext != NULL ? m->ext->failures : 0;
}
static inline uint64_t q__msg_expires(const struct q_msg *m)
{
	return m->ext != NULL ? m->ext->expires : 0;
}
static inline uint64_t q__msg_due(const struct q_msg *m)
{
	return m->ext != NULL ? m->ext->due : 0;
}
static inline struct q_consumer *q__msg_consumer(const struct q_msg *m)
{
	return m->ext != NULL ? m->ext->consumer : NULL;
}
/* m's side struct, taken from the command's reserve if m has none yet. */
struct q_msg_ext *q__msg_ext(struct q_state *s, struct q_msg *m);
/* Makes sure the reserve holds at least n side structs (Q_ENOMEM if not);
 * q_state_apply() frees what is left of it after every command. */
int q__ext_reserve(struct q_state *s, uint64_t n);
void q__ext_release(struct q_state *s);

/* A remembered dedup id. */
struct q_dd {
	struct q_dd *hnext; /* unused (kept for the struct's layout) */
	struct q_link fifo; /* oldest first */
	q_seq seq;
	uint64_t at_ms;
	uint32_t len;
	uint32_t hash; /* q__hash of id, truncated (also in its slot) */
	unsigned char id[];
};

/* A slot of the id table: the hash sits next to the pointer, so a lookup
 * of a new id (the common case) reads one cache line of the table and no
 * entry at all. */
struct q_dd_slot {
	struct q_dd *e; /* NULL = empty */
	uint32_t hash;
};

/*
 * Dedup ids: an open-addressing (linear probing) table for lookups plus a
 * FIFO for expiry. The table is at most half full and grows incrementally:
 * on a resize a second table twice as big is allocated and each insert
 * moves the entries of a few home positions of the old one, in order, so
 * no publish pays for the whole table (a stop-the-world rehash was a stall
 * of tens of ms at a million ids). While resizing, an id whose home in the
 * old table is below `moved` is only in the new table; any other may be in
 * either. Removal is by backward shift, so there are no tombstones.
 */
struct q_dedup {
	struct q_dd_slot *slots[2]; /* [1] only while resizing */
	uint64_t nslots[2];	    /* powers of two, or 0 */
	uint64_t moved;		    /* resizing: old homes [0, moved) moved */
	uint64_t count;
	struct q_link fifo;
};

struct q_counters {
	uint64_t published, delivered, redelivered, acked, nacked, released;
	uint64_t dead_lettered, expired, deduplicated, dropped, rejected;
};

struct q_topic;

struct q_queue {
	uint32_t id;		    /* from s->next_qid; timer tie-break */
	char *name;		    /* owned */
	char *dead_letter;	    /* owned, NULL for none */
	struct q_settings settings; /* .dead_letter aliases dead_letter */
	struct q_topic *topic;	    /* bound topic or NULL (borrowed) */
	struct q_link returned, ready, delayed;
	uint64_t n_ready, n_returned, n_delayed, n_unacked;
	uint64_t bytes;		 /* body bytes not held by consumers */
	struct q_msg **ubuckets; /* unacked index by seq */
	uint64_t nubuckets;	 /* power of two or 0 */
	struct q_link consumers; /* attach order */
	uint64_t n_consumers;
	struct q_consumer *cursor; /* last receiver, NULL = start */
	struct q_dedup dedup;
	struct q_counters c;
	struct q_link dirty; /* in s->dirty while dispatch pending */
};

struct q_consumer {
	q_consumer_id id;
	struct q_queue *queue; /* borrowed */
	struct q_link qlink;   /* in queue->consumers */
	struct q_session session;
	uint32_t prefetch, credit;
	uint64_t n_unacked;
	struct q_link unacked; /* delivery order */
};

struct q_topic {
	char *name; /* owned */
	uint64_t dedup_window_ms;
	struct q_queue **subs; /* sorted by name; queues owned by state */
	uint64_t n_subs, cap_subs;
	struct q_dedup dedup;
	uint64_t published, deduplicated;
};

struct q_state {
	struct q_allocator alloc;
	uint64_t hash_seed;
	size_t max_body;
	const struct q_sink *sink; /* borrowed */

	uint64_t now;
	q_seq next_seq;
	q_consumer_id next_consumer;
	uint32_t next_qid;

	struct q_queue **queues; /* sorted by name */
	uint64_t n_queues, cap_queues;
	struct q_topic **topics; /* sorted by name */
	uint64_t n_topics, cap_topics;
	struct q_consumer **consumers; /* sorted by id */
	uint64_t n_consumers, cap_consumers;

	struct q_heap timers;
	struct q_link dirty;	       /* queues needing dispatch */
	const struct q_bodies *bodies; /* borrowed; NULL = in memory */

	/* Side structs reserved for this command (q__ext_reserve()), chained
	 * through hnext; empty between commands. */
	struct q_msg_ext *spare;
	uint64_t n_spare;

	uint64_t n_msgs, n_bodies, body_bytes, stored_bytes, n_dd;
	uint64_t alloc_bytes, alloc_blocks;
	char load_err[160]; /* q_state_load_error() */
	/* Inside q_state_apply(): the sink must not apply (a command
	 * proposed from a delivery goes into the next log entry). */
	bool applying;
};

static inline size_t q__body_size(const struct q_state *s, size_t id_len,
				  size_t len)
{
	return sizeof(struct q_body) + (s->bodies != NULL ? 0 : id_len + len);
}

/* ------------------------------------------------------------ checks */

/* q_state_check(), except that it returns Q_ENOMEM when it cannot allocate
 * the scratch memory of a check (q_state_check() then skips that check):
 * q_state_load() refuses what it cannot check. */
int q__state_check(const struct q_state *s, char *errbuf, size_t errlen,
		   unsigned flags);
/* The state was just built by q_state_load(): what it established while
 * building is not checked again. That is each dedup entry's hash (it
 * computed it from the id, q__dedup_new()) and place in its table (it
 * inserted every entry it read into a table sized for them all, so none
 * moved, q__dedup_insert_new()): a random access per id in a table of
 * hundreds of MB at 10 M ids. Their order, count and clock are checked. */
#define Q__CHECK_LOADED 1u

/* ------------------------------------------------------------ registries */

struct q_queue *q__queue_find(const struct q_state *s, const char *name);
struct q_topic *q__topic_find(const struct q_state *s, const char *name);
struct q_queue *q__queue_by_id(const struct q_state *s, uint32_t id);
struct q_consumer *q__consumer_find(const struct q_state *s, q_consumer_id id);
/* Index where name is or would be inserted; *found set. */
uint64_t q__queue_pos(const struct q_state *s, const char *name, int *found);
uint64_t q__topic_pos(const struct q_state *s, const char *name, int *found);
uint64_t q__consumer_pos(const struct q_state *s, q_consumer_id id, int *found);
int q__reserve(struct q_state *s, void *arrayp, uint64_t *cap, uint64_t need);

/* Empties the state: everything freed, counters back to their start. */
void q__state_clear(struct q_state *s);

/* ------------------------------------------------------------ queue ops */

/* Allocates an empty queue (not registered). */
struct q_queue *q__queue_new(struct q_state *s, const char *name,
			     const struct q_settings *st);
/* Destroys a queue: frees all messages, detaches consumers (reports them),
 * unregisters nothing: the caller removes it from the registry. */
void q__queue_destroy(struct q_state *s, struct q_queue *q, int report);
int q__settings_valid(const struct q_settings *st);
int q__settings_equal(const struct q_settings *a, const struct q_settings *b);
/* Copies the fields of src selected by mask (Q_SET_*) into dst; the
 * dead_letter pointer is copied as is. */
void q__settings_merge(struct q_settings *dst, const struct q_settings *src,
		       uint32_t mask);

/* Allocates a zeroed message linked nowhere: with its side struct in the
 * same allocation if with_ext, and with room for the body of its only copy
 * after them if bsize is not 0 (m->body points there, to be filled).
 * Returns NULL if the allocation fails. */
struct q_msg *q__msg_alloc(struct q_state *s, int with_ext, size_t bsize);
/* Frees a message from q__msg_alloc() that never held anything (bsize as
 * given to it). */
void q__msg_discard(struct q_state *s, struct q_msg *m, size_t bsize);
/* Frees one message copy (drops a body ref). Unlinks it from everything.
 * Inside an apply, the body's last copy going tells the store (drop). */
void q__msg_free(struct q_state *s, struct q_msg *m);
/* Whether some consumer of q has room for a delivery now. */
int q__queue_has_room(const struct q_queue *q);
/* The messages of q that dead-lettering would move to its dead-letter
 * queue (and that have no side struct yet) if q made room for extra_n
 * messages of extra_bytes now: a bound for q__ext_reserve(). */
uint64_t q__queue_trim_bound(const struct q_state *s, const struct q_queue *q,
			     uint64_t extra_n, uint64_t extra_bytes);
/* Unlinks a message from its list and the timer heap, updating gauges. */
void q__msg_unlink(struct q_state *s, struct q_msg *m);
/* Places a message that is linked nowhere into list `where` of its queue;
 * arms the TTL or due timer as needed; marks the queue dirty. */
void q__msg_place(struct q_state *s, struct q_msg *m, uint8_t where,
		  uint64_t due);
/* The same without the expiry check: a timer that fires while the state
 * clock is already past the message's TTL leaves the expiry to the TTL
 * timer, so it happens in timer order (as if at its own time). */
void q__msg_place_unchecked(struct q_state *s, struct q_msg *m, uint8_t where,
			    uint64_t due);
/* A message not held by a consumer leaves for good: dead-letter or drop. */
void q__msg_dead_letter(struct q_state *s, struct q_msg *m, uint8_t reason);
/* Drops from the head until q fits `extra_n` more messages of `extra_bytes`;
 * dropped messages are dead-lettered unless `final` (then just dropped). */
void q__queue_make_room(struct q_state *s, struct q_queue *q, uint64_t extra_n,
			uint64_t extra_bytes, int final);
/* Would q accept extra_n messages of extra_bytes without dropping? */
int q__queue_fits(const struct q_queue *q, uint64_t extra_n,
		  uint64_t extra_bytes);
uint64_t q__queue_len(const struct q_queue *q);

void q__mark_dirty(struct q_state *s, struct q_queue *q);
/* Delivers to consumers with room, for every dirty queue. */
void q__dispatch_dirty(struct q_state *s);

/* ---------------------------------------------------------- dedup */

void q__dedup_init(struct q_dedup *d);
void q__dedup_clear(struct q_state *s, struct q_dedup *d);
/* Finds an id seen less than window ago. */
struct q_dd *q__dedup_find(const struct q_state *s, const struct q_dedup *d,
			   const void *id, size_t len, uint64_t window);
/* Whether e is linked in the table where its hash says (q_check). */
bool q__dedup_has(const struct q_dedup *d, const struct q_dd *e);
/* Allocates an entry (not inserted). */
struct q_dd *q__dedup_new(struct q_state *s, const void *id, size_t len);
/* Frees an entry from q__dedup_new() that was never inserted. */
void q__dedup_discard(struct q_state *s, struct q_dd *e);
/* Grows the table before an insert: returns Q_ENOMEM only if there is no
 * table yet (a small table is merely slower). */
int q__dedup_grow(struct q_state *s, struct q_dedup *d);
void q__dedup_insert(struct q_state *s, struct q_dedup *d, struct q_dd *e,
		     q_seq seq, uint64_t at_ms);
/* For a load of n ids into an empty table: allocates at once the table that
 * n inserts would have grown it to (never bigger). Q_ENOMEM if it cannot. */
int q__dedup_presize(struct q_state *s, struct q_dedup *d, uint64_t n);
/* Starts fetching the slot where an id of hash h goes (a load reads ids
 * ahead, so that the table's cache misses overlap). */
void q__dedup_prefetch(const struct q_dedup *d, uint32_t h);
/* Inserts e (from q__dedup_new()) into a table that q__dedup_presize()
 * sized for it, unless an entry with the same id is there: then returns
 * false and e is not inserted (the caller still owns it). */
bool q__dedup_insert_new(struct q_state *s, struct q_dedup *d, struct q_dd *e,
			 q_seq seq, uint64_t at_ms);
/* Forgets ids older than window. */
void q__dedup_expire(struct q_state *s, struct q_dedup *d, uint64_t window);

/* ---------------------------------------------------------- inflight */

void q__unacked_grow(struct q_state *s, struct q_queue *q, uint64_t extra);
struct q_msg *q__unacked_find(const struct q_queue *q, q_seq seq);
/* Puts m (with its side struct) into q's unacked index. */
void q__unacked_index(struct q_queue *q, struct q_msg *m);
/* Describes m as a delivery to its holder (consumer 0 and session NULL when
 * none); pointers borrowed from the state. */
void q__delivery_fill(const struct q_state *s, const struct q_msg *m,
		      struct q_delivery *d);
/* Hands m (ready/returned, unlinked) to consumer c; reports the delivery. */
void q__deliver(struct q_state *s, struct q_consumer *c, struct q_msg *m);
/* Takes an unacked message away from its consumer (unlinked afterwards). */
void q__unacked_take(struct q_state *s, struct q_msg *m);
/* Returns an unacked message to the queue; `failed` counts a failure. */
void q__unacked_return(struct q_state *s, struct q_msg *m, int failed,
		       uint64_t delay_ms);
/* Removes a consumer: returns its unacked, unregisters, frees. */
void q__consumer_remove(struct q_state *s, struct q_consumer *c, int failed,
			int report);

/* ---------------------------------------------------------- timers */

void q__timer_arm(struct q_state *s, struct q_msg *m, uint64_t due);
void q__timer_disarm(struct q_state *s, struct q_msg *m);
void q__timers_fire(struct q_state *s);
int q__expired(const struct q_state *s, const struct q_msg *m);
/* Armed ack deadlines due at the state clock: each fired one gives its
 * consumer room for a delivery (the TICK's reserve bound). */
uint64_t q__timers_due_unacked(const struct q_state *s);

#endif /* RAFTMQ_Q_INT_H */
