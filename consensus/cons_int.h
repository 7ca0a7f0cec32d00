/* Internals of consensus/: never included outside this folder. */
#ifndef RAFTMQ_CONS_INT_H
#define RAFTMQ_CONS_INT_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "cons.h"
#include "log.pb-c.h"

/* ------------------------------------------------------------------ arena
 * A bump allocator handed to protobuf-c when decoding entries: a batch of
 * a thousand publishes decodes into one or two blocks instead of thousands
 * of mallocs, and is freed in one go. */
struct cons_arena {
	ProtobufCAllocator pb; /* .allocator_data points back here */
	struct cons_arena_block *blocks;
	size_t block_size;
};
void cons__arena_init(struct cons_arena *a);
void cons__arena_reset(struct cons_arena *a); /* keeps the first block */
void cons__arena_close(struct cons_arena *a);

/* ------------------------------------------------------------------ entry */

/* An entry buffer is an 8-byte header (u32 little-endian length of the
 * LogEntry, 4 zero bytes reserved), the LogEntry, then zeros up to a
 * multiple of 8 bytes (raft_uv refuses other lengths). */
#define CONS_ENTRY_HEADER 8

/* Who proposed an entry (LogEntry.proposer_*). */
struct cons_proposer {
	uint64_t id, boot, seq;
};

/* Encodes cmds (then members[0..n_members) as SetMember commands) as one
 * LogEntry into a raft_malloc()ed buffer. Returns 0, CONS_ENOMEM,
 * CONS_EINVAL (a value no replica could apply) or CONS_ETOOBIG (over
 * CONS_MAX_ENTRY_BYTES); *out is set only on success. */
int cons__entry_encode(const struct q_cmd *cmds, size_t n,
		       const Raftmq__Log__V1__SetMember *members,
		       size_t n_members, uint64_t leader_time_ms,
		       const struct cons_proposer *by, struct raft_buffer *out);

/* Decodes a LogEntry (allocations from the arena). Returns NULL if the
 * bytes are malformed or of an unknown format. */
Raftmq__Log__V1__LogEntry *cons__entry_decode(struct cons_arena *a,
					      const void *buf, size_t len);

/* Translates one decoded Command into *cmd (pointers into the message, so
 * valid while the entry is). Returns 0, 1 for a consensus/ command
 * (SetMember), or CONS_ECORRUPT for a kind or value this version does not
 * know. Tags are used in place (q_seq and the packed field are uint64). */
int cons__entry_command(const Raftmq__Log__V1__Command *pc, uint64_t now_ms,
			struct q_cmd *cmd);

/* -------------------------------------------------------------------- fsm */

struct cons_member_addr {
	uint64_t id;
	char client_address[64];
};

/* -------------------------------------------------------------- bodies
 * cons_bodies.c: the node's body store behind queue/'s body interface. */
struct store;
/* A body the store could not take (its disk was full), kept in memory
 * until the store can (cons_bodies.c). */
struct cons_pending_body {
	uint64_t key;
	uint32_t sum;
	uint32_t id_len;
	size_t len;
	unsigned char *bytes; /* owned: id_len bytes of id, then the body */
};
struct cons_bodies {
	struct store *store;   /* owned; NULL = bodies in memory (tests) */
	struct q_bodies iface; /* iface.data = this */
	/* Deferred deletion: the mark of the snapshot raft is writing,
	 * done once the snapguard has counted pending_takes takes (0 =
	 * none); gc then removes what was dropped before gc_token. */
	uint64_t pending_mark, pending_takes;
	uint64_t gc_token;
	bool gc_more;
	uint64_t gc_next_ms, gc_errors;
	/* The store's in-memory index, refreshed from the loop (it is
	 * read for every publish: memory_limit). */
	uint64_t index_bytes, index_at_ms;
	uint64_t disk_bytes;	  /* refreshed with index_bytes (disk_limit) */
	uint64_t writeback_at_ms; /* last store_writeback() */
	/* Bodies kept in memory while the store's disk is full, by key
	 * (owned array), their bytes, and when to try the store again. */
	struct cons_pending_body *pending;
	size_t n_pending, pending_cap;
	uint64_t pending_bytes, pending_retry_ms, spilled;
	/* The puts of the entry being applied, written together at its end
	 * (cons__bodies_flush): borrowed pointers into the entry, with the
	 * sums given to the state. Owned array. */
	struct store_put_rec *batch;
	size_t n_batch, batch_cap;
	char errmsg[256]; /* why the last put failed */
};
/* Opens data_dir/bodies (segment_bytes 0: the store's default); on
 * failure err says why. */
int cons__bodies_open(struct cons_bodies *b, const char *data_dir,
		      uint64_t segment_bytes, char *err, size_t errlen);
/* Points o->bodies at b's interface (nothing without a store). */
void cons__bodies_attach(struct cons_bodies *b, struct q_options *o);
void cons__bodies_close(struct cons_bodies *b);
/* A restored state replaces `old` (may be NULL): drop old's references,
 * claim now's. Also after a failed restore, with old = NULL and now the
 * state kept, to claim again what the failed load dropped. */
void cons__bodies_replace(struct cons_bodies *b, const struct q_state *old,
			  const struct q_state *now);
/* A snapshot from the leader was installed (raft wrote it first). */
void cons__bodies_installed(struct cons_bodies *b);
/* Durability of every record put so far: in place, and in a forked
 * child (store_sync_data: the parent's store is not changed). */
int cons__bodies_sync(struct cons_bodies *b);
int cons__bodies_sync_child(struct cons_bodies *b);
uint64_t cons__bodies_mark(struct cons_bodies *b);
/* fsm->snapshot handed raft a snapshot whose dump was taken at `mark`;
 * `takes_done` is the snapguard's count so far. */
void cons__bodies_taking(struct cons_bodies *b, uint64_t mark,
			 uint64_t takes_done);
/* Writes the puts of the entry just applied to the store (one pwritev per
 * run of new keys); what the store refuses waits in memory. Call before
 * the entry's bytes go away: the end of every apply, and of a snapshot
 * load. */
void cons__bodies_flush(struct cons_bodies *b);
/* Whether bodies wait in memory for disk space: no snapshot may name them
 * then (the recovery rule needs them on disk first). */
bool cons__bodies_pending(const struct cons_bodies *b);
/* From the loop: gc once the snapshot is written, in budgeted steps; bodies
 * waiting in memory go to the store once it takes them. */
void cons__bodies_poll(struct cons_bodies *b, uint64_t takes_done,
		       uint64_t now_ms);

/* -------------------------------------------------------------- bgsnap
 * cons_bgsnap.c: snapshots dumped by a forked child while the node goes on
 * applying; the entries applied meanwhile (the tail) complete them. */
enum {
	CONS_BGSNAP_IDLE = 0,
	CONS_BGSNAP_RUNNING, /* the child is writing the dump */
	CONS_BGSNAP_READY,   /* dump written and mapped; waiting for raft */
	CONS_BGSNAP_TAKEN,   /* handed to raft until snapshot_finalize */
};

struct cons_bgsnap {
	int state;
	int pid;	   /* the child while RUNNING */
	int pipe_fd;	   /* its result pipe (read end), or -1 */
	char path[4200];   /* the dump file, "" = none */
	uint64_t index;	   /* applied index the dump was taken at */
	uint64_t clock_ms; /* q_state_now() then */
	struct cons_member_addr members[CONS_MAX_NODES]; /* then */
	size_t n_members;
	void *map; /* READY/TAKEN: the dump file, mapped read-only */
	size_t map_len;
	uint64_t dump_hash;
	uint64_t body_mark; /* cons__bodies_mark() at the fork */
	/* Entries applied since the dump: u32 LE length + bytes each
	 * (malloc()ed, owned; handed to raft inside the snapshot). */
	unsigned char *tail;
	size_t tail_len, tail_cap;
	uint32_t tail_entries;
	/* For metrics: the last fork()'s stall, the largest, the last
	 * child's run time; counts. */
	uint64_t started_ns, fork_ns, fork_ns_max, child_ns;
	uint64_t started, taken, failed;
	uint32_t last_tail_entries;
};

/* libraft's entry threshold while the node decides when to snapshot. */
#define CONS_BG_OFF_THRESHOLD (UINT32_MAX / 2)

void cons__bgsnap_init(struct cons_bgsnap *b);
struct cons_fsm;
/* Forks a child that dumps f's state, which is the state at `index`, into
 * a file in `dir`. Returns 0, or CONS_EIO / CONS_EINVAL (one is running):
 * the caller falls back to a synchronous snapshot. */
int cons__bgsnap_start(struct cons_fsm *f, const char *dir, uint64_t index);
/* After each applied entry: keeps a copy while a dump is running or ready.
 * On CONS_ENOMEM the dump is dropped (the next one starts later). */
int cons__bgsnap_note(struct cons_bgsnap *b, const void *buf, size_t len);
/* Non-blocking: reaps a finished child. True when a dump just became
 * ready. */
bool cons__bgsnap_poll(struct cons_bgsnap *b);
/* From fsm->snapshot with a ready dump: the snapshot at `index` as
 * [header, dump, tail] (bufs owned by raft until finalize). */
int cons__bgsnap_take(struct cons_fsm *f, uint64_t index, uint64_t term,
		      struct raft_buffer **bufs, unsigned *n_bufs);
/* Whether bufs are the ones cons__bgsnap_take() handed out. */
bool cons__bgsnap_owns(const struct cons_bgsnap *b,
		       const struct raft_buffer *bufs, unsigned n_bufs);
void cons__bgsnap_finalize(struct cons_bgsnap *b, struct raft_buffer *bufs);
/* Kills a running child and removes its file. */
void cons__bgsnap_close(struct cons_bgsnap *b);

struct cons_fsm {
	struct raft_fsm fsm;   /* vtable; fsm.data = this */
	struct cons *owner;    /* the node (for its pending proposals) */
	struct q_state *state; /* owned */
	struct q_options qopts;
	const struct q_sink *sink; /* borrowed */
	struct cons_arena arena;
	struct cons_member_addr members[CONS_MAX_NODES];
	size_t n_members;
	uint64_t last_stamp;	 /* max leader stamp applied */
	uint64_t snapshot_bytes; /* size of the last snapshot taken/loaded */
	uint64_t snapshot_index; /* raft index it covers (as far as known) */
	uint64_t applied_entries, applied_commands;
	/* Snapshot policy by bytes (libraft counts entries only; see
	 * fsm_apply): entry bytes and entries applied since the last
	 * snapshot, and the settings. */
	uint64_t log_bytes, log_entries;
	uint64_t memory_limit;	      /* the node's; 0 = none */
	uint64_t snapshot_min_bytes;  /* take one after at least this much */
	uint64_t trailing_bytes;      /* keep about this much after one */
	unsigned threshold, trailing; /* configured, in entries */
	struct cons_snapguard *guard; /* borrowed; NULL: none (tests) */
	/* Snapshots in a child process (cons_bgsnap.c); off in tests
	 * without an owner. max_log_bytes: one is due once the log since
	 * the last one holds this much, whatever the state's size. */
	struct cons_bgsnap bg;
	bool bg_enabled;
	bool bg_sync_next; /* the dump failed to start: take one in place */
	uint64_t max_log_bytes;
	struct cons_bodies bodies;
};

/* -------------------------------------------------------------- snapguard
 * cons_snapguard.c: holds InstallSnapshot messages back while this node
 * writes a snapshot of its own, which avoids libraft 0.22.1's follower crash
 * (the file's comment and docs/libraft.md say why this is enough). */
struct cons_held {
	struct raft_message message; /* payload and conf owned; address too */
	struct cons_held *next;
};

struct cons_snapguard {
	struct raft_io *io; /* borrowed: the wrapped io */
	int (*start)(struct raft_io *, unsigned, raft_io_tick_cb,
		     raft_io_recv_cb); /* the io's own */
	int (*snapshot_put)(struct raft_io *, unsigned,
			    struct raft_io_snapshot_put *,
			    const struct raft_snapshot *,
			    raft_io_snapshot_put_cb); /* the io's own */
	raft_io_recv_cb recv; /* raft's receive callback */
	bool armed;	      /* fsm->snapshot succeeded, put not yet called */
	bool taking;	      /* our own snapshot is being written */
	struct raft_io_snapshot_put *take_req;	  /* borrowed from raft */
	raft_io_snapshot_put_cb take_cb;	  /* raft's (takeSnapshotCb) */
	struct cons_held *held_head, **held_tail; /* owned, arrival order */
	uint64_t held, dropped; /* messages held so far; dropped (no memory) */
	uint64_t takes_ok;	/* our snapshots raft has written */
	struct cons_snapguard *next; /* list of guards in the process */
};

/* Wraps io->start and io->snapshot_put; call before raft_start(). `g` and
 * `io` are retained until cons__snapguard_close(), which must come after
 * raft_close() has completed (it frees messages still held). */
void cons__snapguard_init(struct cons_snapguard *g, struct raft_io *io);
/* From fsm->snapshot when it returns 0: the next snapshot_put is ours. */
void cons__snapguard_arm(struct cons_snapguard *g);
void cons__snapguard_close(struct cons_snapguard *g);

/* ------------------------------------------------------------- transport
 * cons_transport.c: Raft streams tuned (TCP_NODELAY, keepalive,
 * TCP_USER_TIMEOUT) and connects with a deadline. */
struct cons_tcp_times {
	unsigned user_ms;     /* TCP_USER_TIMEOUT */
	unsigned connect_ms;  /* deadline of one connection attempt */
	unsigned retry_ms;    /* raft_uv's delay after a failed attempt */
	unsigned keepidle_s;  /* TCP_KEEPIDLE */
	unsigned keepintvl_s; /* TCP_KEEPINTVL */
	unsigned keepcnt;     /* TCP_KEEPCNT */
};
/* The times for an election timeout and heartbeat (the formula is in
 * cons_transport.c and docs/libraft.md). */
void cons__tcp_times(unsigned election_ms, unsigned heartbeat_ms,
		     struct cons_tcp_times *out);
/* Sets the options on tcp (borrowed), which must have a socket. Returns 0
 * or a UV_E* code. */
int cons__tcp_tune(struct uv_tcp_s *tcp, const struct cons_tcp_times *t);
/* Replaces c->transport's listen, connect and close (after
 * raft_uv_tcp_init, before raft_uv_init). */
void cons__transport_wrap(struct cons *c);
struct cons_connect;

/* A proposal in flight on this node. */
struct cons_pending {
	struct raft_apply req;
	struct cons_propose *user;
	struct cons *c;
	uint64_t seq;
	struct q_result *results; /* n slots, filled by apply */
	size_t n;
	int applied;
	struct cons_pending *next, *prev;
};

/* With bodies in `b` (opened by cons__bodies_open(), moved into f; its
 * store is closed by cons__fsm_close()), or in memory when b is NULL. */
int cons__fsm_init_bodies(struct cons_fsm *f, const struct q_options *qopts,
			  const struct q_sink *sink, struct cons_bodies *b);
int cons__fsm_init(struct cons_fsm *f, const struct q_options *qopts,
		   const struct q_sink *sink);
void cons__fsm_close(struct cons_fsm *f);
/* Sets a member's client address (initial members and SetMember). */
void cons__fsm_set_member(struct cons_fsm *f, uint64_t id, const char *addr);
const char *cons__fsm_member_addr(const struct cons_fsm *f, uint64_t id);
/* Applies one entry's bytes to s (not f->state: a snapshot's tail), with no
 * proposal, raising *stamp to its leader stamp; SetMember commands go into
 * ms[0..*nm). Returns 0, CONS_ECORRUPT, CONS_ENOMEM or CONS_EIO. */
int cons__fsm_replay(struct cons_fsm *f, struct q_state *s, const void *buf,
		     size_t len, uint64_t *stamp, struct cons_member_addr *ms,
		     size_t *nm);
/* From the loop (every iteration): reaps a finished dump child and lets
 * libraft take the snapshot. */
void cons__fsm_bg_poll(struct cons_fsm *f);

/* What a snapshot header says (format 1 when tail_bytes and dump_index
 * are 0, else format 2). members borrowed. */
struct cons_snaphdr {
	uint64_t index, term, dump_index;
	uint64_t state_bytes, state_xxh3, clock_ms;
	uint64_t tail_bytes, tail_xxh3;
	uint32_t tail_entries;
	const struct cons_member_addr *members;
	size_t n_members;
};
/* "RMQS", u32 big-endian header length, SnapshotHeader, into a
 * raft_malloc()ed buffer. */
int cons__snapshot_header(const struct cons_fsm *f,
			  const struct cons_snaphdr *h,
			  struct raft_buffer *out);
/* Snapshot bytes: "RMQS", u32 big-endian header length, SnapshotHeader,
 * q_state dump, then (format 2) the tail's entries. */
int cons__snapshot_encode(struct cons_fsm *f, struct raft_buffer *out);
int cons__snapshot_decode(struct cons_fsm *f, const void *buf, size_t len,
			  char *errmsg, size_t errlen);

/* ------------------------------------------------------------------- node */

struct cons {
	struct uv_loop_s *loop;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	/* cons_transport.c: the wrapped transport's own methods, attempts in
	 * flight (owned), and its close. */
	struct cons_tcp_times tcp_times;
	int (*orig_listen)(struct raft_uv_transport *, raft_uv_accept_cb);
	void (*orig_close)(struct raft_uv_transport *,
			   raft_uv_transport_close_cb);
	struct cons_connect *connects;
	bool transport_closing, orig_closed;
	raft_uv_transport_close_cb transport_close_cb; /* raft_uv's */
	struct cons_snapguard guard; /* wraps io (libraft crash) */
	struct cons_fsm fsm;
	uint64_t id;
	char raft_address[64];
	char client_address[64];
	char data_dir[4096];
	uv_check_t check; /* notices role/leader changes */
	void (*watch_cb)(void *data);
	void *watch_data;
	int last_state;
	uint64_t last_term, last_leader;
	uint64_t epoch; /* term in which we became leader, or 0 */
	uint64_t elections, leader_changes;
	uint64_t entries_proposed, commands_proposed;
	struct cons_proposer me;      /* id, boot nonce, last proposal seq */
	struct cons_pending pending;  /* list head of proposals in flight */
	struct cons_propose announce; /* members announced on election */
	struct raft_barrier idle_barrier; /* keeps progress moving when idle */
	int idle_barrier_pending;
	/* A leader lacking bodies hands the leadership on (cons_node.c,
	 * transfer_if_missing): the request, whether it runs, and the
	 * earliest time of the next attempt (uv_now). */
	struct raft_transfer missing_transfer;
	bool missing_transfer_pending;
	uint64_t missing_transfer_at;
	uint64_t idle_last_index, idle_since_ms;
	/* reachability as seen by the leader: when match index last moved */
	struct {
		uint64_t id, match;
		uint64_t seen_ms;
	} progress[CONS_MAX_NODES];
	uint64_t started_ms;  /* uv_now at cons_start */
	uint64_t hurry_rng;   /* jitter of hurried elections */
	uint64_t hurry_until; /* uv_now: keep elections short until then */
	char errmsg[256];     /* why the last membership call was refused */
	int closing;
	void (*close_cb)(void *data);
	void *close_data;
	struct raft_tracer tracer;
};

int cons__translate(int raft_rv);
/* The pending proposal an applied entry belongs to, or NULL. */
struct cons_pending *cons__pending_find(struct cons *c,
					const Raftmq__Log__V1__LogEntry *e);

#endif /* RAFTMQ_CONS_INT_H */
