/* Keeps libraft 0.22.1 away from its follower crash: no InstallSnapshot
 * reaches raft while this node's own snapshot is being written.
 *
 * The bug (legacy.c of 0.22.1, still in cowsql/raft's main branch): when an
 * InstallSnapshot is accepted while the node writes a snapshot it took
 * itself, legacyHandleUpdateSnapshot() parks the install in
 * r->legacy.snapshot_pending until the write is done. takeSnapshotCb() then
 * resumes it with
 *
 *     r->legacy.snapshot_pending = NULL;
 *     persist = r->legacy.snapshot_pending;
 *     rv = legacyPersistSnapshotStart(persist);
 *
 * (legacy.c lines 531-533): the pointer is cleared before it is read, and
 * legacyPersistSnapshotStart() reads req->r at offset 0x48 of NULL, the
 * SIGSEGV at libraft.so.0.0.0 0x12175 (`mov 0x48(%rdi),%r14`). Every
 * takeSnapshotCb() that finds an install parked crashes; nothing else parks
 * one. So the crash needs exactly this: an InstallSnapshot message received
 * between the moment raft starts writing a snapshot of its own
 * (legacyTakeSnapshot(): fsm->snapshot, then io->snapshot_put, then
 * snapshot_taking = true) and the end of that write's callback (the first
 * thing takeSnapshotCb() does is snapshot_taking = false).
 *
 * The guard wraps three calls and closes that window:
 *   - fsm->snapshot (cons_fsm.c) arms the guard when it returns 0: in
 *     0.22.1 the next io->snapshot_put is that snapshot's write (the same
 *     synchronous legacyTakeSnapshot() call);
 *   - io->snapshot_put: the armed call is the take; from then until its
 *     callback has returned, the guard is "taking". Other calls are installs
 *     (trailing 0) and pass through;
 *   - the receive callback handed to io->start: while taking, an
 *     InstallSnapshot message is held (a shallow copy: its payload and
 *     configuration already belong to the receiver) instead of delivered.
 *     Right after the take's callback returns, held messages are delivered
 *     in arrival order, as libraft itself meant to resume the parked one.
 * Holding a message for the length of a snapshot write is a network delay,
 * which Raft tolerates; libraft then installs it as it would any other. A
 * message that cannot be held (out of memory) is dropped and freed: the
 * leader sends the snapshot again.
 *
 * The guard works on any raft_io (raft_uv for the node, raft_fixture in the
 * tests). raft_io callbacks carry only the io pointer, and io->data belongs
 * to raft, so guards are found by io pointer in a short list (one per node
 * in the process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cons_int.h"

static struct cons_snapguard *guards; /* every initialised guard */

static struct cons_snapguard *by_io(const struct raft_io *io)
{
	struct cons_snapguard *g;
	for (g = guards; g != NULL; g = g->next) {
		if (g->io == io) {
			return g;
		}
	}
	abort(); /* a wrapped io always has its guard until it closes */
}

static void free_message(struct raft_message *m)
{
	raft_configuration_close(&m->install_snapshot.conf);
	raft_free(m->install_snapshot.data.base);
}

static void hold(struct cons_snapguard *g, struct raft_message *m)
{
	struct cons_held *h = malloc(sizeof *h);
	size_t len = strlen(m->server_address) + 1;
	char *addr = malloc(len);
	if (h == NULL || addr == NULL) {
		free(h);
		free(addr);
		free_message(m);
		g->dropped++;
		return;
	}
	/* Rare (a lagging follower that also snapshots) and worth a line:
	 * without the guard the node would have crashed here. */
	fprintf(stderr,
		"raftmqd: holding an InstallSnapshot (index %llu) from node "
		"%llu until this node's own snapshot is written "
		"(docs/libraft.md, \"The follower crash\")\n",
		(unsigned long long)m->install_snapshot.last_index,
		(unsigned long long)m->server_id);
	memcpy(addr, m->server_address, len);
	h->message = *m;
	h->message.server_address = addr; /* the sender's may be gone */
	h->next = NULL;
	*g->held_tail = h;
	g->held_tail = &h->next;
	g->held++;
}

static void guarded_recv(struct raft_io *io, struct raft_message *m)
{
	struct cons_snapguard *g = by_io(io);
	if (g->taking && m->type == RAFT_INSTALL_SNAPSHOT) {
		hold(g, m);
		return;
	}
	g->recv(io, m);
}

/* Delivers what was held, unless a new snapshot write started meanwhile
 * (then the rest waits for that one). */
static void release(struct cons_snapguard *g)
{
	while (g->held_head != NULL && !g->taking) {
		struct cons_held *h = g->held_head;
		g->held_head = h->next;
		if (g->held_head == NULL) {
			g->held_tail = &g->held_head;
		}
		g->recv(g->io, &h->message);
		free((void *)h->message.server_address);
		free(h);
	}
}

static int guarded_start(struct raft_io *io, unsigned msecs,
			 raft_io_tick_cb tick, raft_io_recv_cb recv)
{
	struct cons_snapguard *g = by_io(io);
	g->recv = recv;
	return g->start(io, msecs, tick, guarded_recv);
}

static void take_done(struct raft_io_snapshot_put *req, int status)
{
	struct cons_snapguard *g;
	raft_io_snapshot_put_cb cb;
	for (g = guards; g != NULL && g->take_req != req; g = g->next) {
	}
	if (g == NULL) {
		abort(); /* only takes get this callback */
	}
	cb = g->take_cb;
	g->take_req = NULL;
	g->take_cb = NULL;
	/* takeSnapshotCb() clears snapshot_taking first, and may start the
	 * next snapshot (which sets taking again) before it returns. */
	g->taking = false;
	if (status == 0) {
		g->takes_ok++;
	}
	cb(req, status);
	release(g);
}

static int guarded_snapshot_put(struct raft_io *io, unsigned trailing,
				struct raft_io_snapshot_put *req,
				const struct raft_snapshot *snapshot,
				raft_io_snapshot_put_cb cb)
{
	struct cons_snapguard *g = by_io(io);
	int rv;
	if (!g->armed) {
		return g->snapshot_put(io, trailing, req, snapshot, cb);
	}
	g->armed = false;
	g->take_req = req;
	g->take_cb = cb;
	g->taking = true;
	rv = g->snapshot_put(io, trailing, req, snapshot, take_done);
	if (rv != 0) {
		/* raft gives the snapshot up; no callback will come */
		g->take_req = NULL;
		g->take_cb = NULL;
		g->taking = false;
		release(g);
	}
	return rv;
}

void cons__snapguard_init(struct cons_snapguard *g, struct raft_io *io)
{
	memset(g, 0, sizeof *g);
	g->io = io;
	g->start = io->start;
	g->snapshot_put = io->snapshot_put;
	io->start = guarded_start;
	io->snapshot_put = guarded_snapshot_put;
	g->held_tail = &g->held_head;
	g->next = guards;
	guards = g;
}

void cons__snapguard_arm(struct cons_snapguard *g)
{
	g->armed = true;
}

void cons__snapguard_close(struct cons_snapguard *g)
{
	struct cons_snapguard **p;
	while (g->held_head != NULL) {
		struct cons_held *h = g->held_head;
		g->held_head = h->next;
		free_message(&h->message);
		free((void *)h->message.server_address);
		free(h);
	}
	g->held_tail = &g->held_head;
	for (p = &guards; *p != NULL; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
}
