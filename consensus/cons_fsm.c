/* The raft_fsm over queue/: apply, snapshot, restore.
 *
 * apply decodes one LogEntry and applies its commands in order to the local
 * q_state with the entry's leader stamp. A refused command is a result (the
 * state machine never fails on one). When this node proposed the entry, the
 * results go straight into the proposal (struct cons_pending), found by the
 * proposer fields of the entry: libraft may apply several entries before it
 * runs their callbacks, so a shared result buffer would be overwritten.
 *
 * Two things apply cannot survive: an entry it cannot decode (corrupt, or
 * written by a newer format) and running out of memory halfway through a
 * batch. Returning an error would make libraft retry the same entry forever
 * and re-apply its first commands; skipping it would make this replica
 * diverge. So the node logs the reason and aborts: a replica that stops is
 * better than one that is wrong, and a restart replays from the log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cons_int.h"

static void die(const char *what, const char *detail)
{
	fprintf(stderr,
		"raftmqd: FATAL: cannot apply a committed log entry: %s%s%s; "
		"stopping this node rather than diverge from the others\n",
		what, detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

static bool snapshot_due(const struct cons_fsm *f);

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		     void **result)
{
	struct cons_fsm *f = fsm->data;
	Raftmq__Log__V1__LogEntry *e;
	struct cons_pending *p;
	size_t i;

	*result = NULL;
	cons__arena_reset(&f->arena);
	e = cons__entry_decode(&f->arena, buf->base, buf->len);
	if (e == NULL) {
		die("undecodable entry or unknown format",
		    "was it written by a newer raftmqd?");
	}
	if (e->leader_time_ms > f->last_stamp) {
		f->last_stamp = e->leader_time_ms;
	}
	p = cons__pending_find(f->owner, e);
	if (p != NULL && p->n != e->n_commands) {
		p = NULL; /* not ours after all */
	}
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd cmd;
		struct q_result r;
		/* The entry's own stamp: q_state keeps the maximum itself, and
		 * a replica restored from a snapshot must see the same value
		 * as one that applied every entry (last_stamp also counts
		 * SetMember entries, which never reach q_state). */
		int rv = cons__entry_command(e->commands[i], e->leader_time_ms,
					     &cmd);
		if (rv == 1) {
			const Raftmq__Log__V1__SetMember *m =
				e->commands[i]->set_member;
			cons__fsm_set_member(f, m->id, m->client_address);
			memset(&r, 0, sizeof r);
		} else if (rv != 0) {
			die("unknown command kind or value", NULL);
		} else if (q_state_apply(f->state, &cmd, &r) != 0) {
			die("out of memory", NULL);
		}
		if (p != NULL) {
			p->results[i] = r;
		}
	}
	if (p != NULL) {
		p->applied = 1;
	}
	f->applied_entries++;
	f->applied_commands += e->n_commands;
	f->log_bytes += buf->len;
	f->log_entries++;
	if (f->owner != NULL && f->threshold > 1 && snapshot_due(f)) {
		/* libraft only counts entries: a threshold of 1 makes it take
		 * the snapshot right after this apply. fsm_snapshot puts the
		 * configured one back. */
		raft_set_snapshot_threshold(&f->owner->raft, 1);
	}
	return 0;
}

/* The log in memory grows with the bytes applied since the last snapshot;
 * a snapshot costs (on the loop thread, as a stall: about 4-5 ms per MB) the
 * size of the state. So one is due once the log holds a few times as many
 * bytes as the state, and at least snapshot_min_bytes: memory stays within
 * a few times the state, and the snapshot work is a fraction of the log
 * bytes that made it necessary.
 *
 * The factor differs between nodes so that their stalls do not coincide: a
 * commit waits for the leader and one follower, so it stalls only if the
 * leader stalls or both followers do at once (measured: 270 ms at the end
 * of W1 when all three snapshotted together). Followers use 2 or 3 by id,
 * the leader 4. */
static bool snapshot_due(const struct cons_fsm *f)
{
	struct q_totals t;
	uint64_t factor;
	if (f->snapshot_min_bytes == 0 ||
	    f->log_bytes < f->snapshot_min_bytes) {
		return false;
	}
	factor = raft_state(&f->owner->raft) == RAFT_LEADER
			 ? 4
			 : 2 + f->owner->id % 2;
	q_state_totals(f->state, &t);
	return f->log_bytes >= factor * t.alloc_bytes;
}

/* Before a snapshot: how many entries to keep after it. libraft counts them,
 * so turn trailing_bytes into entries by the average entry size seen since
 * the last snapshot, within [CONS_MIN_TRAILING, the configured trailing]:
 * enough for a follower a pipeline behind to catch up from the log, not a
 * gigabyte of 4 KiB messages in memory. */
static void snapshot_retune(struct cons_fsm *f)
{
	unsigned trailing = f->trailing;
	if (f->log_entries > 0 && f->trailing_bytes > 0) {
		uint64_t avg = f->log_bytes / f->log_entries;
		uint64_t n = avg > 0 ? f->trailing_bytes / avg : trailing;
		if (n < CONS_MIN_TRAILING) {
			n = CONS_MIN_TRAILING;
		}
		if (n < trailing) {
			trailing = (unsigned)n;
		}
	}
	raft_set_snapshot_trailing(&f->owner->raft, trailing);
	raft_set_snapshot_threshold(&f->owner->raft, f->threshold);
	f->log_bytes = 0;
	f->log_entries = 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct cons_fsm *f = fsm->data;
	struct raft_buffer *b = raft_malloc(sizeof *b);
	int rv;
	if (b == NULL) {
		return RAFT_NOMEM;
	}
	if (f->owner != NULL) {
		snapshot_retune(f);
	}
	rv = cons__snapshot_encode(f, b);
	if (rv != 0) {
		raft_free(b);
		return rv == CONS_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
	}
	*bufs = b;
	*n_bufs = 1;
	if (f->guard != NULL) {
		/* raft writes this snapshot next: hold InstallSnapshot
		 * messages until it is written (cons_snapguard.c) */
		cons__snapguard_arm(f->guard);
	}
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
				 struct raft_buffer *bufs[], unsigned *n_bufs)
{
	unsigned i;
	(void)fsm;
	for (i = 0; i < *n_bufs; i++) {
		raft_free((*bufs)[i].base);
	}
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cons_fsm *f = fsm->data;
	char err[256];
	int rv = cons__snapshot_decode(f, buf->base, buf->len, err, sizeof err);
	if (rv != 0) {
		fprintf(stderr, "raftmqd: cannot restore snapshot: %s\n", err);
		return RAFT_CORRUPT;
	}
	raft_free(buf->base);
	f->log_bytes = 0; /* the log starts again after the snapshot */
	f->log_entries = 0;
	return 0;
}

int cons__fsm_init(struct cons_fsm *f, const struct q_options *qopts,
		   const struct q_sink *sink)
{
	memset(f, 0, sizeof *f);
	f->qopts = *qopts;
	f->sink = sink;
	f->state = q_state_new(&f->qopts);
	if (f->state == NULL) {
		return CONS_ENOMEM;
	}
	q_state_set_sink(f->state, sink);
	cons__arena_init(&f->arena);
	f->fsm.version = 2;
	f->fsm.data = f;
	f->fsm.apply = fsm_apply;
	f->fsm.snapshot = fsm_snapshot;
	f->fsm.restore = fsm_restore;
	f->fsm.snapshot_finalize = fsm_snapshot_finalize;
	return 0;
}

void cons__fsm_close(struct cons_fsm *f)
{
	q_state_free(f->state);
	f->state = NULL;
	cons__arena_close(&f->arena);
}

void cons__fsm_set_member(struct cons_fsm *f, uint64_t id, const char *addr)
{
	size_t i;
	for (i = 0; i < f->n_members; i++) {
		if (f->members[i].id == id) {
			break;
		}
	}
	if (i == f->n_members) {
		if (f->n_members == CONS_MAX_NODES) {
			return; /* more members than we track: no redirect */
		}
		f->n_members++;
	}
	f->members[i].id = id;
	snprintf(f->members[i].client_address,
		 sizeof f->members[i].client_address, "%s",
		 addr != NULL ? addr : "");
}

const char *cons__fsm_member_addr(const struct cons_fsm *f, uint64_t id)
{
	size_t i;
	for (i = 0; i < f->n_members; i++) {
		if (f->members[i].id == id) {
			return f->members[i].client_address;
		}
	}
	return "";
}
