/* consensus/: the Raft replication of raftmq's queue state, over libraft
 * 0.22.1 (raft_uv disk and TCP backends). The only code that includes
 * <raft.h>; node/ sees this header only.
 *
 * Happy path: node/ gathers the commands that arrive in one loop iteration
 * and calls cons_propose() once with all of them (group commit). consensus/
 * encodes them as one LogEntry (proto/log.proto) stamped with the leader's
 * wall clock, hands it to raft_apply() with a single buffer, and, once the
 * entry is committed on a majority and applied, calls back with one
 * q_result per command. Every node applies every entry to its own
 * struct q_state; deliveries and removed consumers are reported on every
 * node through the q_sink given to cons_new() (node/ acts on those of its
 * own sessions while it leads).
 *
 * Failure modes: CONS_ENOTLEADER synchronously (redirect the client);
 * CONS_ELEADERSHIPLOST in the callback means the outcome is unknown (the
 * entry may still commit under the next leader: clients retry with the
 * same message ids); CONS_ESHUTDOWN when closing.
 */
#ifndef RAFTMQ_CONS_H
#define RAFTMQ_CONS_H

#include <stddef.h>
#include <stdint.h>

#include "cons_defaults.h"
#include "q.h"

struct uv_loop_s;
struct cons;

/* Error codes (0 is success). */
enum {
	CONS_ENOMEM = 1,
	CONS_ENOTLEADER = 2,	  /* this node does not lead */
	CONS_ELEADERSHIPLOST = 3, /* outcome unknown */
	CONS_ESHUTDOWN = 4,
	CONS_EBUSY = 5,	 /* a membership change is in progress */
	CONS_EBADID = 6, /* unknown or invalid member id */
	CONS_EIO = 7,	 /* disk or network setup failed */
	CONS_EINVAL = 8,
	CONS_ETOOBIG = 9,    /* entry over CONS_MAX_ENTRY_BYTES: refused */
	CONS_ECORRUPT = 10,  /* data dir or snapshot unreadable */
	CONS_ENOSPACE = 11,  /* disk full */
	CONS_ENOLEADER = 12, /* no known leader */
	CONS_ENOTFOUND = 13, /* a body this node's store lacks */
};

const char *cons_strerror(int code);

/* The largest log entry cons_propose() accepts, in encoded bytes (header,
 * LogEntry, padding): CONS_MAX_ENTRY_MIB (64) MiB. libraft and raft_uv keep
 * entry lengths in 32 bits, and every replica holds a whole entry in memory
 * to apply it, at every replay too; an entry over 4 GiB would commit and
 * then stop every replica at apply. So the encoder refuses a larger one
 * with CONS_ETOOBIG before raft_apply(): it is never committed. node/ sizes
 * its batches to stay below this (node_server.c, with CONS_ENTRY_BASE_BYTES
 * and CONS_COMMAND_WRAP_BYTES of cons_defaults.h), refuses a single request
 * that could not fit, and its configuration refuses a max_frame_bytes over
 * what one entry holds. */
#define CONS_MAX_ENTRY_BYTES ((size_t)CONS_MAX_ENTRY_MIB << 20)

enum cons_role {
	CONS_ROLE_VOTER = 0,
	CONS_ROLE_STANDBY = 1,
	CONS_ROLE_SPARE = 2,
};

struct cons_member {
	uint64_t id;
	const char *raft_address;   /* borrowed */
	const char *client_address; /* borrowed */
};

struct cons_config {
	uint64_t id;		    /* this node, > 0 */
	const char *raft_address;   /* this node's "host:port" (borrowed) */
	const char *client_address; /* this node's client "host:port" */
	const char *data_dir;	    /* created if missing (borrowed) */
	/* Initial members, used to bootstrap a pristine data dir when this node
	 * is one of them. Empty: join an existing cluster (cluster add). */
	const struct cons_member *members;
	size_t n_members;
	unsigned election_timeout_ms;  /* 0 = default */
	unsigned heartbeat_timeout_ms; /* 0 = default */
	unsigned snapshot_threshold;   /* entries; 0 = default */
	unsigned snapshot_trailing;    /* entries; 0 = default */
	/* Snapshots by bytes as well (libraft counts entries): one is taken
	 * once the log since the last one holds at least this many bytes and
	 * 2-4 times as many as the state (by role); 0 = 16 MiB. */
	uint64_t snapshot_min_bytes;
	/* After a snapshot keep about this many bytes of entries (at least
	 * CONS_MIN_TRAILING entries, at most snapshot_trailing); 0 = 4 MiB. */
	uint64_t snapshot_trailing_bytes;
	/* A snapshot is due once the log since the last one holds this many
	 * bytes, whatever the state's size, so that the log kept in memory
	 * stays bounded; 0 = off. */
	uint64_t snapshot_max_log_bytes;
	/* Take snapshots on the loop thread (a stall of ~4 ms per MB of
	 * state) instead of in a forked child; for tests and diagnosis. */
	bool snapshot_in_place;
	unsigned max_inflight_entries; /* 0 = default */
	size_t max_body;	       /* bodies larger are refused; 0 = any */
	uint64_t store_segment_bytes;  /* body store segments; 0 = 64 MiB */
	/* The node's memory_limit (0 = none): a snapshot is due once the log
	 * since the last one holds a quarter of it (cons_memory_bytes()). */
	uint64_t memory_limit;
	uint64_t hash_seed; /* for queue/ hash tables */
};

/* Creates the node (opens the data dir, bootstraps it if pristine and this
 * node is an initial member) without starting it. `loop` is retained; `sink`
 * is retained (may be NULL) and receives apply events from the loop thread.
 * On failure writes a sentence into errmsg. */
/*
 * Tells the node that the leader `leader_id` is gone for sure (its process
 * closed a connection we held to it: node/node_watch.c), so that it starts
 * an election in tens of milliseconds instead of waiting out the election
 * timeout. Ignored unless this node is a follower of that leader. Pre-vote
 * keeps this safe: if the leader is in fact alive and heard from by the
 * others, they refuse the pre-vote and nothing changes.
 */
void cons_hurry_election(struct cons *c, uint64_t leader_id);

/* Gives a TCP handle (borrowed; it must have a socket: uv_tcp_init_ex() or
 * connected) the options of this node's Raft connections: TCP_NODELAY,
 * keepalive and TCP_USER_TIMEOUT sized from the election timeout, so that a
 * connection whose data or keepalive probes go unacknowledged for about an
 * election timeout fails with UV_ETIMEDOUT (docs/libraft.md, "Stuck
 * connections"). Returns 0 or a UV_E* code. */
struct uv_tcp_s;
int cons_tcp_tune(const struct cons *c, struct uv_tcp_s *tcp);

/* The fewest entries kept after a snapshot, whatever their size: a
 * follower up to this far behind catches up without a snapshot install
 * (installs are costly, and 0.22.1 can crash on one: docs/libraft.md). */
#define CONS_MIN_TRAILING 512

int cons_new(struct uv_loop_s *loop, const struct cons_config *cfg,
	     const struct q_sink *sink, struct cons **out, char *errmsg,
	     size_t errlen);

/* Starts Raft (loads the snapshot and the log, joins elections). */
int cons_start(struct cons *c, char *errmsg, size_t errlen);

/* Closes everything; outstanding callbacks fire with CONS_ESHUTDOWN or
 * CONS_ELEADERSHIPLOST before cb. Frees c after cb returns. */
void cons_close(struct cons *c, void (*cb)(void *data), void *data);

/* --------------------------------------------------------------- proposals */

struct cons_propose;
/* results[i] answers cmds[i]; valid only during the call; NULL if status
 * != 0. */
typedef void (*cons_propose_cb)(struct cons_propose *req, int status,
				const struct q_result *results, size_t n);

/* A proposal; allocated by the caller, retained until cb. */
struct cons_propose {
	void *data; /* public: for the caller */
	/* private */
	cons_propose_cb cb;
	void *priv;
};

/* Proposes cmds[0..n) as one log entry; n > 0 (asserted). The commands (and
 * what they point to) are borrowed: they are encoded before this returns.
 * cmd->now_ms is ignored: the entry carries the leader's clock. Returns 0 (cb
 * will be called), CONS_ENOTLEADER, CONS_ENOMEM, CONS_ETOOBIG (the entry would
 * be over CONS_MAX_ENTRY_BYTES), CONS_ESHUTDOWN or CONS_EINVAL (a value no
 * replica could apply, e.g. an unknown overflow); cb is never called when
 * this returns non-zero. */
int cons_propose(struct cons *c, struct cons_propose *req,
		 const struct q_cmd *cmds, size_t n, cons_propose_cb cb);

/* The leader's wall clock stamps are the max of this clock and the last
 * applied stamp, so the state clock never stalls on a slow clock. */
uint64_t cons_clock_ms(const struct cons *c);

/* Completes after every entry committed so far is applied (leader only). */
struct cons_barrier;
typedef void (*cons_barrier_cb)(struct cons_barrier *req, int status);
struct cons_barrier {
	void *data; /* public */
	/* private */
	cons_barrier_cb cb;
	void *priv;
};
int cons_barrier(struct cons *c, struct cons_barrier *req, cons_barrier_cb cb);

/* ------------------------------------------------------------------ reads */

/* The local replica's state (applied up to cons_status().applied_index).
 * Borrowed; valid until the next loop iteration that applies entries. */
const struct q_state *cons_state(const struct cons *c);

/* Whether a member is reachable, as the answering node can tell. A leader
 * sees every member (replication progress); a follower sees itself and the
 * leader (its messages), but nothing tells it about the other followers:
 * those are UNKNOWN, never NO (a false alarm on a healthy cluster). */
enum cons_reach {
	CONS_REACH_NO = 0,
	CONS_REACH_YES = 1,
	CONS_REACH_UNKNOWN = 2,
};

struct cons_node_status {
	uint64_t id;
	char raft_address[64];
	char client_address[64];
	int role;      /* enum cons_role */
	int reachable; /* enum cons_reach, as seen from here */
	/* Milliseconds since this node last heard of the member: on the
	 * leader, since its replication last progressed; on a follower, since
	 * the leader's last message. -1 when not known (or this node). */
	int64_t last_contact_ms;
};

#define CONS_MAX_NODES 16

struct cons_status {
	uint64_t id;
	int is_leader;
	const char
		*state; /* "follower", "candidate", "leader", "unavailable" */
	uint64_t leader_id; /* 0 = unknown */
	char leader_client_address[64];
	uint64_t term, commit_index, applied_index, last_index;
	uint64_t snapshot_index; /* last snapshot taken or installed */
	uint64_t snapshot_bytes; /* its size */
	uint64_t log_entries;	 /* last_index - snapshot_index */
	uint64_t log_bytes;	 /* entry bytes applied since then */
	/* Snapshots dumped by a child process (cons_bgsnap.c): started,
	 * handed to raft, failed; the last fork()'s stall of the loop and
	 * the largest; how long the last child ran; entries in the last
	 * snapshot's tail. */
	uint64_t bg_started, bg_taken, bg_failed;
	double bg_fork_ms, bg_fork_ms_max, bg_child_ms;
	uint64_t bg_tail_entries;
	uint64_t elections;	 /* times this node became candidate */
	uint64_t leader_changes; /* times the known leader changed */
	uint64_t entries_proposed, commands_proposed;
	size_t n_nodes;
	struct cons_node_status nodes[CONS_MAX_NODES];
};

void cons_status(const struct cons *c, struct cons_status *st);

/* Called from the loop after any iteration in which the role, term or
 * leader changed. `data` is passed back. Replaces any previous watcher. */
void cons_watch(struct cons *c, void (*cb)(void *data), void *data);

/* The epoch of the current leadership (the term in which this node became
 * leader), or 0 when not leading. Consumers attached in this epoch belong to
 * this leadership. */
uint64_t cons_epoch(const struct cons *c);

/* ----------------------------------------------------------------- bodies
 * Message bodies live in this node's body store (data_dir/bodies), not in
 * the queue state: a q_delivery or q_peeked from cons_state() has body ==
 * msg_id == NULL and names its body by body_key and body_sum. */

/* A body read back: id and body borrowed from the store, valid until the
 * next call into consensus/ (any call). */
struct cons_body {
	const void *id;
	size_t id_len;
	const void *body;
	size_t len;
};

/* Reads the body of `key` and checks it is the one the state names (`sum`,
 * q_delivery.body_sum). Returns 0, CONS_ENOTFOUND (this node lacks it: a
 * follower after a snapshot install, until it is fetched, or a corrupt
 * record, reported on stderr), CONS_ECORRUPT (other bytes than the state
 * names: never deliver them), CONS_EIO, CONS_ENOMEM. */
int cons_body_get(struct cons *c, uint64_t key, uint32_t sum,
		  struct cons_body *out);

/* Reads the body of `key` whatever the state says of it (serving a peer
 * that lacks it): its checksum in *sum (may be NULL), as store_put() gave
 * it, a pure function of id and body. Returns 0, CONS_ENOTFOUND,
 * CONS_EIO, CONS_ENOMEM. */
int cons_body_read(struct cons *c, uint64_t key, struct cons_body *out,
		   uint32_t *sum);

/* The checksum of a body (id and body borrowed), as the state and
 * cons_body_read() have it: to check a body fetched from a peer. */
uint32_t cons_body_sum(const void *id, size_t id_len, const void *body,
		       size_t len);

/* Read-ahead hint: bodies from key on (a queue's head) will be read next,
 * about `bytes` of them. */
void cons_body_prefetch(struct cons *c, uint64_t key, uint64_t bytes);

/* Bodies the state refers to that the store lacks, and the smallest such
 * key >= from (0, or CONS_ENOTFOUND when none; CONS_ENOMEM). */
uint64_t cons_bodies_missing(const struct cons *c);
int cons_bodies_missing_next(struct cons *c, uint64_t from, uint64_t *key);

/* Stores a missing body fetched from a peer (id and body borrowed). The
 * caller has checked its checksum against the peer's record. Returns 0,
 * CONS_ENOTFOUND (not missing any more: the state dropped it, or it came
 * already), CONS_ENOSPACE, CONS_EIO (store_put refused: e.g. other bytes
 * under that key), CONS_ENOMEM. */
int cons_body_fill(struct cons *c, uint64_t key, const void *id, size_t id_len,
		   const void *body, size_t len);

/* Bytes this node holds in memory for messages, what memory_limit bounds:
 * the queue state (index entries, timers, dedup ids), the Raft log entries
 * applied since the last snapshot (libraft keeps them in memory; a
 * snapshot is due once they are a quarter of memory_limit, and about
 * snapshot_trailing_bytes more stay after it, not counted), and the body
 * store's index. Cheap: read for every publish. */
uint64_t cons_memory_bytes(const struct cons *c);

/* Bytes of the body store's files (segments and their index files), as of
 * at most 100 ms ago. Cheap: read for every publish (disk_limit). */
uint64_t cons_store_disk_bytes(const struct cons *c);

/* Bodies kept in memory because the store's disk is full (0 normally). */
uint64_t cons_bodies_waiting(const struct cons *c);

struct cons_bodies_stats {
	uint64_t disk_bytes, live_bytes, live_records, records, segments;
	uint64_t missing, index_bytes, gets, readahead_hits;
	uint64_t compactions, compacted_bytes, deleted_segments;
	uint64_t corrupt_records, syncs, gc_errors;
	double last_sync_ms;
};
void cons_bodies_stats(const struct cons *c, struct cons_bodies_stats *out);

/* ------------------------------------------------------------- membership */

struct cons_change;
typedef void (*cons_change_cb)(struct cons_change *req, int status);
struct cons_change {
	void *data; /* public */
	/* private */
	cons_change_cb cb;
	void *priv;
};

/* Adds a node: records its client address (a replicated command), adds it
 * as a spare, then promotes it to `role` once caught up. Leader only; one
 * change at a time (CONS_EBUSY). Strings borrowed. */
int cons_add(struct cons *c, struct cons_change *req, uint64_t id,
	     const char *raft_address, const char *client_address, int role,
	     cons_change_cb cb);
int cons_remove(struct cons *c, struct cons_change *req, uint64_t id,
		cons_change_cb cb);
/* Transfers leadership to id (0 = any voter); cb when done or timed out
 * (status 0 if this node no longer leads). */
int cons_transfer(struct cons *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb);

/* After cons_add, cons_remove or cons_transfer returned non-zero: one
 * sentence saying why ("node 9 is not a member of the cluster (members:
 * ...)"), or "" when the code says it all. Valid until the next call. */
const char *cons_errmsg(const struct cons *c);

#endif /* RAFTMQ_CONS_H */
