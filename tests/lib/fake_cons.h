/* A fake consensus/ for running node/ without libraft (tests/unit/node and
 * the client fuzzer): every cons_* function node/ calls, over one
 * in-process replica (a real q_state), driven step by step by the test.
 *
 * Faithful where it matters: cons_propose() encodes the batch at once with
 * the real cons__entry_encode() (as cons_node.c does, so CONS_ETOOBIG and
 * CONS_EINVAL come from the real encoder), and fake_cons_complete() decodes
 * the entry with cons__entry_decode()/cons__entry_command() and applies it
 * as every replica's FSM would, reporting deliveries through node/'s real
 * sink. Nothing happens by itself: proposals, barriers and membership
 * changes wait until the test completes them, with the status it chooses.
 *
 * Checked on every entry: it decodes, holds the commands proposed, applies
 * (q_state_apply() returns 0) and q_state_check() passes; a violation
 * prints why and aborts (FAKE_CHECK, fake_check.h).
 *
 * node/ holds a `struct cons *`; that struct is consensus/'s own
 * (cons_int.h), so the fake is a struct of its own, cast at the boundary:
 * pass fake_cons_handle() wherever node/ wants a struct cons. */
#ifndef RAFTMQ_TESTS_FAKE_CONS_H
#define RAFTMQ_TESTS_FAKE_CONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cons_int.h"
#include "fake_check.h"

#define FAKE_MAX_PENDING 64
#define FAKE_MAX_CHANGES 8
#define FAKE_MAX_BARRIERS 64
#define FAKE_HISTORY 4096

/* One proposal in flight. */
struct fake_proposal {
	struct cons_propose *req; /* node/'s, retained until answered */
	struct raft_buffer entry; /* owned; encoded at propose time */
	size_t n;		  /* commands */
	cons_propose_cb cb;
};

/* A body in the fake's store (key, id and body owned). */
struct fake_body {
	uint64_t key;
	char *id, *body;
	size_t id_len, len;
};

/* What was proposed, in order (the first FAKE_HISTORY proposals). */
struct fake_entry {
	size_t n;   /* commands */
	size_t len; /* encoded bytes (header and padding included) */
};

struct fake_cons {
	struct q_state *state; /* owned */
	struct cons_arena arena;
	uint64_t clock; /* cons_clock_ms(); +3 at each proposal */
	/* Role, as cons_status() and cons_epoch() report it. Change it with
	 * fake_cons_set_leader(), which tells the watcher as the real node
	 * does after an iteration in which the role changed. */
	bool leader;
	uint64_t term;
	/* Faults */
	bool fail_every_third; /* every third completion: LEADERSHIPLOST */
	int propose_error;     /* != 0: cons_propose() returns it */
	bool closed;	       /* cons_close() was called */
	/* In flight */
	struct fake_proposal pending[FAKE_MAX_PENDING];
	size_t n_pending;
	struct {
		struct cons_change *req;
		cons_change_cb cb;
	} changes[FAKE_MAX_CHANGES];
	size_t n_changes;
	struct {
		struct cons_barrier *req;
		cons_barrier_cb cb;
		unsigned after;	       /* proposals made before it */
	} barriers[FAKE_MAX_BARRIERS]; /* oldest first */
	size_t n_barriers;
	void (*watch_cb)(void *data);
	void *watch_data;
	/* Called by cons_propose() with each encoded entry (borrowed) before
	 * it is queued; may check it. */
	void (*on_propose)(void *arg, struct cons_propose *req,
			   const struct raft_buffer *entry, size_t n);
	void *on_propose_arg;
	/* Bodies cons_body_read() serves (fake_cons_body_put()). A read
	 * copies the record into `scratch`, grown with realloc and
	 * overwritten by the next read, so a caller that keeps a pointer
	 * past its next call into consensus/ reads other bytes (or freed
	 * memory, which AddressSanitizer reports), as with the real store. */
	struct fake_body *bodies; /* owned */
	size_t n_bodies;
	char *scratch; /* owned */
	size_t scratch_cap;
	uint64_t body_eio_key; /* cons_body_read() of it: CONS_EIO; 0 none */
	unsigned body_reads;   /* cons_body_read() calls */
	/* Counters */
	unsigned proposals;   /* accepted by cons_propose() */
	unsigned completions; /* answered, either way */
	struct fake_entry history[FAKE_HISTORY];
	size_t n_history; /* == proposals, capped at FAKE_HISTORY */
};

/* An empty state with `opts` (borrowed; NULL = defaults), leader in term
 * 1, clock 1000. */
void fake_cons_init(struct fake_cons *c, const struct q_options *opts);
/* Frees what is left (proposals never answered included). */
void fake_cons_free(struct fake_cons *c);

static inline struct cons *fake_cons_handle(struct fake_cons *c)
{
	return (struct cons *)(void *)c;
}

/* Answers the oldest proposal. Status 0 applies it first (as every replica
 * would) and passes the results; any other status passes none, nothing is
 * applied (CONS_ELEADERSHIPLOST: the entry did not commit after all). With
 * fail_every_third, every third completion is CONS_ELEADERSHIPLOST
 * whatever `status` says. Returns false if none was pending. */
bool fake_cons_complete(struct fake_cons *c, int status);
/* Answers the newest membership change; returns false if none waits. */
bool fake_cons_complete_change(struct fake_cons *c, int status);
/* Answers the oldest barrier; returns false if none waits. */
bool fake_cons_complete_barrier(struct fake_cons *c, int status);
/* Answers (status 0) every barrier whose proposals made before it are all
 * answered, as a real barrier completes once everything before it is
 * applied; returns how many. */
size_t fake_cons_complete_due_barriers(struct fake_cons *c);
/* Sets the role (a new term when this node becomes leader) and calls the
 * watcher, as the real node does after an iteration in which it changed.
 * When not leading the leader is unknown (leader_id 0), so node/ starts no
 * connection to it. */
void fake_cons_set_leader(struct fake_cons *c, bool leader);

/* Stores a body under key (id and body borrowed, copied) for
 * cons_body_read(); its sum is cons_body_sum() of the bytes (FNV-1a 32 of
 * the id's length, the id and the body, in the fake). */
void fake_cons_body_put(struct fake_cons *c, uint64_t key, const void *id,
			size_t id_len, const void *body, size_t len);

#endif /* RAFTMQ_TESTS_FAKE_CONS_H */
