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

/* Applies the commands of one decoded entry to s. p: this node's proposal
 * to fill with the results, or NULL. SetMember commands go to f's members,
 * or into ms[0..*nm) when ms is not NULL (a snapshot's tail, collected
 * until the restore has worked). Returns 0, CONS_ECORRUPT (an unknown
 * command kind or value), CONS_ENOMEM or CONS_EIO (q_state_apply() failed:
 * the state is as before that command). */
static int apply_commands_(struct cons_fsm *f, struct q_state *s,
			   const Raftmq__Log__V1__LogEntry *e,
			   struct cons_pending *p, struct cons_member_addr *ms,
			   size_t *nm);

/* Applies the entry's commands, then writes the bodies they stored (one
 * write for the entry: cons_bodies.c) while the entry's bytes are alive. */
static int apply_commands(struct cons_fsm *f, struct q_state *s,
			  const Raftmq__Log__V1__LogEntry *e,
			  struct cons_pending *p, struct cons_member_addr *ms,
			  size_t *nm)
{
	int rv = apply_commands_(f, s, e, p, ms, nm);
	cons__bodies_flush(&f->bodies);
	return rv;
}

static int apply_commands_(struct cons_fsm *f, struct q_state *s,
			   const Raftmq__Log__V1__LogEntry *e,
			   struct cons_pending *p, struct cons_member_addr *ms,
			   size_t *nm)
{
	size_t i;
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd cmd;
		struct q_result r;
		/* The entry's own stamp: q_state keeps the maximum itself, and
		 * a replica restored from a snapshot must see the same value
		 * as one that applied every entry (last_stamp also counts
		 * SetMember entries, which never reach q_state). */
		int rv = cons__entry_command(e->commands[i], e->leader_time_ms,
					     &cmd);
		memset(&r, 0, sizeof r);
		if (rv == 1) {
			const Raftmq__Log__V1__SetMember *m =
				e->commands[i]->set_member;
			if (ms == NULL) {
				cons__fsm_set_member(f, m->id,
						     m->client_address);
			} else {
				size_t k;
				for (k = 0; k < *nm && ms[k].id != m->id; k++) {
				}
				if (k == *nm && *nm < CONS_MAX_NODES) {
					(*nm)++;
				}
				if (k < *nm) {
					ms[k].id = m->id;
					snprintf(ms[k].client_address,
						 sizeof ms[k].client_address,
						 "%s",
						 m->client_address != NULL
							 ? m->client_address
							 : "");
				}
			}
		} else if (rv != 0) {
			return CONS_ECORRUPT;
		} else {
			rv = q_state_apply(s, &cmd, &r);
			if (rv != 0) {
				return rv == Q_ENOMEM ? CONS_ENOMEM : CONS_EIO;
			}
		}
		if (p != NULL) {
			p->results[i] = r;
		}
	}
	return 0;
}

int cons__fsm_replay(struct cons_fsm *f, struct q_state *s, const void *buf,
		     size_t len, uint64_t *stamp, struct cons_member_addr *ms,
		     size_t *nm)
{
	Raftmq__Log__V1__LogEntry *e;
	cons__arena_reset(&f->arena);
	e = cons__entry_decode(&f->arena, buf, len);
	if (e == NULL) {
		return CONS_ECORRUPT;
	}
	if (e->leader_time_ms > *stamp) {
		*stamp = e->leader_time_ms;
	}
	return apply_commands(f, s, e, NULL, ms, nm);
}

static void bg_after_apply(struct cons_fsm *f, const struct raft_buffer *buf);

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		     void **result)
{
	struct cons_fsm *f = fsm->data;
	Raftmq__Log__V1__LogEntry *e;
	struct cons_pending *p;
	int rv;

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
	rv = apply_commands(f, f->state, e, p, NULL, NULL);
	if (rv == CONS_ECORRUPT) {
		die("unknown command kind or value", NULL);
	} else if (rv == CONS_ENOMEM) {
		die("out of memory", NULL);
	} else if (rv != 0) {
		die("the body store cannot be written",
		    f->bodies.errmsg[0] != '\0' ? f->bodies.errmsg : NULL);
	}
	if (p != NULL) {
		p->applied = 1;
	}
	f->applied_entries++;
	f->applied_commands += e->n_commands;
	f->log_bytes += buf->len;
	f->log_entries++;
	if (f->bg_enabled) {
		bg_after_apply(f, buf);
	} else if (f->owner != NULL && f->threshold > 1 && snapshot_due(f)) {
		/* libraft only counts entries: a threshold of 1 makes it take
		 * the snapshot right after this apply. fsm_snapshot puts the
		 * configured one back. */
		raft_set_snapshot_threshold(&f->owner->raft, 1);
	}
	return 0;
}

/* Snapshots in the background (cons_bgsnap.c). libraft's own threshold is
 * out of reach while the node decides: a dump starts when a snapshot is
 * due (by bytes, or by entries: the configured threshold); once it is
 * ready, a threshold of 1 makes libraft take the snapshot after the next
 * apply, and fsm_snapshot hands the dump over. If the dump cannot start,
 * the snapshot is taken on the loop thread as before. */
static void bg_after_apply(struct cons_fsm *f, const struct raft_buffer *buf)
{
	struct cons *c = f->owner;
	struct cons_bgsnap *b = &f->bg;
	if (b->state == CONS_BGSNAP_RUNNING || b->state == CONS_BGSNAP_READY) {
		cons__bgsnap_note(b, buf->base, buf->len);
		return;
	}
	if (b->state != CONS_BGSNAP_IDLE || f->bg_sync_next ||
	    cons__bodies_pending(&f->bodies)) {
		return;
	}
	if (!snapshot_due(f) && f->log_entries < f->threshold) {
		return;
	}
	/* raft_last_applied() is the entry before this one: libraft sets it
	 * after apply returns. */
	if (cons__bgsnap_start(f, c->data_dir,
			       raft_last_applied(&c->raft) + 1) != 0) {
		f->bg_sync_next = true;
		raft_set_snapshot_threshold(&c->raft, 1);
	}
}

void cons__fsm_bg_poll(struct cons_fsm *f)
{
	if (f->bg_enabled && cons__bgsnap_poll(&f->bg)) {
		raft_set_snapshot_threshold(&f->owner->raft, 1);
	}
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
	if (f->max_log_bytes != 0 && f->log_bytes >= f->max_log_bytes) {
		return true; /* whatever the state's size */
	}
	/* The log in memory counts towards memory_limit: it never takes more
	 * than a quarter of it, so that publishes refused for memory are
	 * allowed again once consumers drain and the next snapshot lets the
	 * log go. */
	if (f->memory_limit != 0 && f->log_bytes >= f->memory_limit / 4) {
		return true;
	}
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
	raft_set_snapshot_threshold(
		&f->owner->raft,
		f->bg_enabled ? CONS_BG_OFF_THRESHOLD : f->threshold);
	f->log_bytes = 0;
	f->log_entries = 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct cons_fsm *f = fsm->data;
	struct raft_buffer *b;
	uint64_t mark;
	int rv;
	if (f->bg.state == CONS_BGSNAP_READY) {
		mark = f->bg.body_mark;
		/* The child made the dump's bodies durable; this commits the
		 * store's bookkeeping too (index files of sealed segments), so
		 * that a restart does not scan segments. Little is left to
		 * write (store_writeback), and a failure costs only that. */
		(void)cons__bodies_sync(&f->bodies);
		rv = cons__bgsnap_take(f, raft_last_applied(&f->owner->raft),
				       raft_current_term(&f->owner->raft), bufs,
				       n_bufs);
		if (rv != 0) {
			return RAFT_NOMEM;
		}
		snapshot_retune(f);
		if (f->guard != NULL) {
			cons__bodies_taking(&f->bodies, mark,
					    f->guard->takes_ok);
			cons__snapguard_arm(f->guard);
		}
		return 0;
	}
	if (f->bg_enabled && !f->bg_sync_next) {
		/* Not ours to take now (a dump is running): libraft tries
		 * again after the next apply. */
		return RAFT_BUSY;
	}
	if (cons__bodies_pending(&f->bodies)) {
		/* Bodies wait in memory for disk space: a dump may not name
		 * them yet. libraft tries again after a later apply. */
		return RAFT_BUSY;
	}
	f->bg_sync_next = false;
	/* The dump names bodies: they must be on disk before it is. */
	if (cons__bodies_sync(&f->bodies) != 0) {
		return RAFT_IOERR;
	}
	mark = cons__bodies_mark(&f->bodies);
	b = raft_malloc(sizeof *b);
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
		cons__bodies_taking(&f->bodies, mark, f->guard->takes_ok);
		/* raft writes this snapshot next: hold InstallSnapshot
		 * messages until it is written (cons_snapguard.c) */
		cons__snapguard_arm(f->guard);
	}
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
				 struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cons_fsm *f = fsm->data;
	unsigned i;
	if (*bufs != NULL && cons__bgsnap_owns(&f->bg, *bufs, *n_bufs)) {
		cons__bgsnap_finalize(&f->bg, *bufs);
		*bufs = NULL;
		*n_bufs = 0;
		return 0;
	}
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
	/* At start-up (the node's own snapshot) as after an install, raft
	 * has the snapshot on disk and the log before it is gone. */
	cons__bodies_installed(&f->bodies);
	f->log_bytes = 0; /* the log starts again after the snapshot */
	f->log_entries = 0;
	/* A dump in progress is of a state that was just replaced. */
	if (f->bg.state == CONS_BGSNAP_RUNNING ||
	    f->bg.state == CONS_BGSNAP_READY) {
		cons__bgsnap_close(&f->bg);
	}
	return 0;
}

int cons__fsm_init(struct cons_fsm *f, const struct q_options *qopts,
		   const struct q_sink *sink)
{
	return cons__fsm_init_bodies(f, qopts, sink, NULL);
}

int cons__fsm_init_bodies(struct cons_fsm *f, const struct q_options *qopts,
			  const struct q_sink *sink, struct cons_bodies *b)
{
	memset(f, 0, sizeof *f);
	f->qopts = *qopts;
	f->sink = sink;
	if (b != NULL) {
		f->bodies = *b;
		memset(b, 0, sizeof *b);
		cons__bodies_attach(&f->bodies, &f->qopts);
	}
	f->state = q_state_new(&f->qopts);
	if (f->state == NULL) {
		return CONS_ENOMEM;
	}
	q_state_set_sink(f->state, sink);
	cons__arena_init(&f->arena);
	cons__bgsnap_init(&f->bg);
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
	cons__bgsnap_close(&f->bg);
	q_state_free(f->state);
	f->state = NULL;
	cons__bodies_close(&f->bodies);
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
