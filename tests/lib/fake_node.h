/* A raftmq node in a test: node/'s real server, sessions, dispatch and
 * batching over the fake consensus of fake_cons.h, driven one step at a
 * time. No socket, disk or thread: clients are sessions whose input the
 * test writes (whole Envelope frames or raw bytes) and whose output the
 * harness decodes.
 *
 * The node is set up by node/'s own node_server_setup() and
 * node_server_attach(), becomes leader through its real watch callback
 * (barrier, then DETACH_STALE), and stops through node_server_stop(). The
 * loop is never run until the stop: the test says when an iteration ends
 * (fake_node_settle(), fake_node_propose()), so every run is the same.
 *
 * Checked, besides fake_cons.h's checks on entries: every frame the node
 * writes decodes, its strings are UTF-8 without NUL
 * (node_codec_check_strings()) and it is an answer, an Error, a Delivery or
 * a ConsumerGone, never a request; every entry is at most the bytes node/
 * counted for its batch plus CONS_ENTRY_BASE_BYTES (what the batch limits
 * rely on); at the stop every handle closes (uv_loop_close() == 0), no
 * batch or proposal is left, and each session is freed (the harness's
 * reference is the last). A violation prints why and aborts.
 *
 * Ownership: the struct is the caller's (embed or allocate it); every
 * client and frame is the harness's and is freed by fake_node_stop(). */
#ifndef RAFTMQ_TESTS_FAKE_NODE_H
#define RAFTMQ_TESTS_FAKE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_cons.h"
#include "node_int.h"

struct fake_node;

/* One client connection. */
struct fake_client {
	struct fake_node *node;
	struct node_session *s; /* one reference is the harness's */
	Envelope **got;		/* frames written to it (owned), in order */
	size_t n_got, cap_got;
	size_t next;   /* the frame fake_client_next() returns next */
	uint64_t corr; /* last correlation id fake_client_send() gave */
};

struct fake_node {
	uv_loop_t loop;
	struct node_server srv;
	struct fake_cons cons;
	struct fake_client **clients; /* owned, with each client */
	size_t n_clients, cap_clients;
	bool keep_frames; /* keep what the node writes; false: check, drop */
	bool trace;	  /* print every frame written, and node/'s log */
	/* Membership changes: settle answers every other one (the odd ones
	 * left when counting down) with CONS_EBUSY instead of 0. */
	bool odd_changes_busy;
	bool stopped;
};

/* Starts a node with configuration `cfg` (copied; NULL: the defaults of
 * node_config_defaults() with id 1) and makes it the leader: its barrier
 * and DETACH_STALE are applied. The state's max_body is
 * cfg->max_message_bytes, as cons_new() sets it. FAKE_TRACE in the
 * environment sets `trace`. Frames are kept (keep_frames). */
void fake_node_start(struct fake_node *n, const struct node_config *cfg);

/* Every client still connected goes away (as its socket closing would; a
 * leader commits their SESSION_GONE), then the node stops
 * (node_server_stop), the loop runs until every handle is closed, and
 * everything is checked (above) and freed. */
void fake_node_stop(struct fake_node *n);

/* The end of a loop iteration when every proposal commits: batches are
 * proposed, barriers, proposals and membership changes answered (status 0,
 * applied), what that queues proposed again, until nothing is left; then
 * the output is collected. */
void fake_node_settle(struct fake_node *n);
/* The end of a loop iteration with nothing answered: batches proposed (as
 * far as max_inflight_batches allows), output collected. */
void fake_node_propose(struct fake_node *n);
/* Collects (checks, and keeps or drops) the frames written so far. */
void fake_node_drain(struct fake_node *n);
/* Fires every armed fetch wait timer of the client's session now (as if
 * its wait were over), then collects the output. */
void fake_node_fire_fetch_timers(struct fake_client *c);

/* A new connection (node_session_accept() without a socket). */
struct fake_client *fake_node_connect(struct fake_node *n);
/* The connection closes (from the client's side). */
void fake_client_close(struct fake_client *c);
/* Writes len bytes (borrowed) of the client's stream and lets the node
 * read every complete frame. */
void fake_client_write(struct fake_client *c, const void *buf, size_t len);
/* Sends one frame: env (borrowed) packed with NODE_PROTOCOL_VERSION if it
 * has no version and the next correlation id if it has none. Returns the
 * correlation id. Nothing is proposed until the iteration ends. */
uint64_t fake_client_send(struct fake_client *c, Envelope *env);
/* The next frame written to the client not returned yet (what the node
 * wrote so far is collected first), or NULL. Owned by the client. */
Envelope *fake_client_next(struct fake_client *c);
/* The next frame; aborts with `what` if there is none. */
Envelope *fake_client_expect(struct fake_client *c, const char *what);
/* Frames written and not returned yet. */
size_t fake_client_pending(struct fake_client *c);

#endif /* RAFTMQ_TESTS_FAKE_NODE_H */
