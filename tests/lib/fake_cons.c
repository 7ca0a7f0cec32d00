/* The fake consensus/ of fake_cons.h: the cons_* functions node/ calls. */
#include <stdlib.h>
#include <string.h>

#include "fake_cons.h"

#define FAKE(c) ((struct fake_cons *)(void *)(c))

static void state_check(const struct q_state *s)
{
	char err[512];
	int rv = q_state_check(s, err, sizeof err);
	FAKE_CHECK(rv == 0, "q_state_check() after an entry: %s", err);
}

void fake_cons_init(struct fake_cons *c, const struct q_options *opts)
{
	struct q_options dflt;
	memset(c, 0, sizeof *c);
	if (opts == NULL) {
		memset(&dflt, 0, sizeof dflt);
		opts = &dflt;
	}
	c->state = q_state_new(opts);
	FAKE_CHECK(c->state != NULL, "q_state_new");
	cons__arena_init(&c->arena);
	c->clock = 1000;
	c->leader = true;
	c->term = 1;
}

void fake_cons_free(struct fake_cons *c)
{
	size_t i;
	for (i = 0; i < c->n_pending; i++) {
		raft_free(c->pending[i].entry.base);
	}
	c->n_pending = 0;
	for (i = 0; i < c->n_bodies; i++) {
		free(c->bodies[i].id);
		free(c->bodies[i].body);
	}
	free(c->bodies);
	c->bodies = NULL;
	c->n_bodies = 0;
	free(c->scratch);
	c->scratch = NULL;
	c->scratch_cap = 0;
	cons__arena_close(&c->arena);
	q_state_free(c->state);
	c->state = NULL;
}

/* ---------------------------------------------------------------- driving */

bool fake_cons_complete(struct fake_cons *c, int status)
{
	struct fake_proposal p;
	Raftmq__Log__V1__LogEntry *e;
	struct q_result *results;
	size_t i;
	if (c->n_pending == 0) {
		return false;
	}
	p = c->pending[0];
	memmove(&c->pending[0], &c->pending[1],
		--c->n_pending * sizeof c->pending[0]);
	c->completions++;
	if (c->fail_every_third && c->completions % 3 == 0) {
		status = CONS_ELEADERSHIPLOST;
	}
	if (status != 0) {
		raft_free(p.entry.base);
		p.cb(p.req, status, NULL, 0);
		return true;
	}
	cons__arena_reset(&c->arena);
	e = cons__entry_decode(&c->arena, p.entry.base, p.entry.len);
	FAKE_CHECK(e != NULL, "the node proposed an undecodable entry");
	FAKE_CHECK(e->n_commands == p.n, "%zu commands, %zu proposed",
		   e->n_commands, p.n);
	results = calloc(p.n, sizeof *results);
	FAKE_CHECK(results != NULL, "calloc");
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd cmd;
		int rv = cons__entry_command(e->commands[i], e->leader_time_ms,
					     &cmd);
		FAKE_CHECK(rv == 0,
			   "the node proposed a command no replica can "
			   "apply (%d)",
			   rv);
		rv = q_state_apply(c->state, &cmd, &results[i]);
		FAKE_CHECK(rv == 0, "q_state_apply = %d", rv);
	}
	state_check(c->state);
	raft_free(p.entry.base);
	p.cb(p.req, 0, results, p.n);
	free(results);
	return true;
}

size_t fake_cons_complete_due_barriers(struct fake_cons *c)
{
	size_t n = 0;
	while (c->n_barriers > 0 && c->barriers[0].after <= c->completions) {
		(void)fake_cons_complete_barrier(c, 0);
		n++;
	}
	return n;
}

bool fake_cons_complete_change(struct fake_cons *c, int status)
{
	struct cons_change *req;
	cons_change_cb cb;
	if (c->n_changes == 0) {
		return false;
	}
	c->n_changes--;
	req = c->changes[c->n_changes].req;
	cb = c->changes[c->n_changes].cb;
	cb(req, status);
	return true;
}

bool fake_cons_complete_barrier(struct fake_cons *c, int status)
{
	struct cons_barrier *req;
	cons_barrier_cb cb;
	if (c->n_barriers == 0) {
		return false;
	}
	req = c->barriers[0].req;
	cb = c->barriers[0].cb;
	memmove(&c->barriers[0], &c->barriers[1],
		--c->n_barriers * sizeof c->barriers[0]);
	cb(req, status);
	return true;
}

void fake_cons_set_leader(struct fake_cons *c, bool leader)
{
	if (leader && !c->leader) {
		c->term++;
	}
	c->leader = leader;
	if (c->watch_cb != NULL) {
		c->watch_cb(c->watch_data);
	}
}

/* ------------------------------------------------------------- proposals */

int cons_propose(struct cons *cons, struct cons_propose *req,
		 const struct q_cmd *cmds, size_t n, cons_propose_cb cb)
{
	struct fake_cons *c = FAKE(cons);
	struct fake_proposal *p;
	int rv;
	FAKE_CHECK(n > 0, "cons_propose() of no command");
	if (c->closed) {
		return CONS_ESHUTDOWN;
	}
	if (!c->leader) {
		return CONS_ENOTLEADER;
	}
	if (c->propose_error != 0) {
		return c->propose_error;
	}
	if (c->n_pending == FAKE_MAX_PENDING) {
		return CONS_EBUSY;
	}
	p = &c->pending[c->n_pending];
	c->clock += 3;
	rv = cons__entry_encode(cmds, n, NULL, 0, c->clock, NULL, &p->entry);
	if (rv != 0) {
		return rv;
	}
	FAKE_CHECK(p->entry.len <= CONS_MAX_ENTRY_BYTES,
		   "an entry of %zu bytes", p->entry.len);
	if (c->on_propose != NULL) {
		c->on_propose(c->on_propose_arg, req, &p->entry, n);
	}
	if (c->n_history < FAKE_HISTORY) {
		c->history[c->n_history].n = n;
		c->history[c->n_history].len = p->entry.len;
		c->n_history++;
	}
	c->proposals++;
	p->req = req;
	p->n = n;
	p->cb = cb;
	c->n_pending++;
	return 0;
}

uint64_t cons_clock_ms(const struct cons *c)
{
	return FAKE(c)->clock;
}

int cons_barrier(struct cons *cons, struct cons_barrier *req,
		 cons_barrier_cb cb)
{
	struct fake_cons *c = FAKE(cons);
	if (c->closed) {
		return CONS_ESHUTDOWN;
	}
	if (!c->leader) {
		return CONS_ENOTLEADER;
	}
	if (c->n_barriers == FAKE_MAX_BARRIERS) {
		return CONS_EBUSY;
	}
	c->barriers[c->n_barriers].req = req;
	c->barriers[c->n_barriers].cb = cb;
	c->barriers[c->n_barriers].after = c->proposals;
	c->n_barriers++;
	return 0;
}

/* ------------------------------------------------------------------ reads */

const struct q_state *cons_state(const struct cons *c)
{
	return FAKE(c)->state;
}

void cons_status(const struct cons *cons, struct cons_status *st)
{
	const struct fake_cons *c = FAKE(cons);
	memset(st, 0, sizeof *st);
	st->id = 1;
	st->is_leader = c->leader;
	st->state = c->leader ? "leader" : "follower";
	/* A follower knows no leader: node/ then starts no connection to
	 * one (node_watch.c) and answers UNAVAILABLE. */
	st->leader_id = c->leader ? 1 : 0;
	snprintf(st->leader_client_address, sizeof st->leader_client_address,
		 "%s", c->leader ? "127.0.0.1:7001" : "");
	st->term = c->term;
	st->commit_index = st->applied_index = c->completions;
	st->n_nodes = 1;
	st->nodes[0].id = 1;
	snprintf(st->nodes[0].raft_address, sizeof st->nodes[0].raft_address,
		 "127.0.0.1:7101");
	snprintf(st->nodes[0].client_address,
		 sizeof st->nodes[0].client_address, "127.0.0.1:7001");
	st->nodes[0].reachable = CONS_REACH_YES; /* itself */
	st->nodes[0].last_contact_ms = -1;
}

void cons_watch(struct cons *c, void (*cb)(void *data), void *data)
{
	FAKE(c)->watch_cb = cb;
	FAKE(c)->watch_data = data;
}

uint64_t cons_epoch(const struct cons *c)
{
	return FAKE(c)->leader ? FAKE(c)->term : 0;
}

void cons_hurry_election(struct cons *c, uint64_t leader_id)
{
	(void)c, (void)leader_id;
}

/* ----------------------------------------------------------------- bodies
 * The fake keeps the state's bodies in the state's memory (no body
 * interface): no delivery names a body in a store, so cons_body_get() finds
 * none. cons_body_read() serves the bodies a test put with
 * fake_cons_body_put(), as a peer's FetchBodies reads them. */

int cons_body_get(struct cons *c, uint64_t key, uint32_t sum,
		  struct cons_body *out)
{
	(void)c, (void)key, (void)sum, (void)out;
	return CONS_ENOTFOUND;
}

void fake_cons_body_put(struct fake_cons *c, uint64_t key, const void *id,
			size_t id_len, const void *body, size_t len)
{
	struct fake_body *nb, *b;
	nb = realloc(c->bodies, (c->n_bodies + 1) * sizeof *nb);
	FAKE_CHECK(nb != NULL, "out of memory");
	c->bodies = nb;
	b = &c->bodies[c->n_bodies++];
	b->key = key;
	b->id_len = id_len;
	b->len = len;
	b->id = malloc(id_len + 1);
	b->body = malloc(len + 1);
	FAKE_CHECK(b->id != NULL && b->body != NULL, "out of memory");
	if (id_len > 0) {
		memcpy(b->id, id, id_len);
	}
	if (len > 0) {
		memcpy(b->body, body, len);
	}
}

int cons_body_read(struct cons *cons, uint64_t key, struct cons_body *out,
		   uint32_t *sum)
{
	struct fake_cons *c = FAKE(cons);
	const struct fake_body *b = NULL;
	size_t i, need;
	c->body_reads++;
	if (key != 0 && key == c->body_eio_key) {
		return CONS_EIO;
	}
	for (i = 0; i < c->n_bodies && b == NULL; i++) {
		b = c->bodies[i].key == key ? &c->bodies[i] : NULL;
	}
	if (b == NULL) {
		return CONS_ENOTFOUND;
	}
	/* A fresh scratch buffer each read: the last one's pointers die. */
	need = b->id_len + b->len + 1;
	free(c->scratch);
	c->scratch = malloc(need);
	FAKE_CHECK(c->scratch != NULL, "out of memory");
	c->scratch_cap = need;
	memcpy(c->scratch, b->id, b->id_len);
	memcpy(c->scratch + b->id_len, b->body, b->len);
	out->id = c->scratch;
	out->id_len = b->id_len;
	out->body = c->scratch + b->id_len;
	out->len = b->len;
	if (sum != NULL) {
		*sum = cons_body_sum(b->id, b->id_len, b->body, b->len);
	}
	return 0;
}

uint32_t cons_body_sum(const void *id, size_t id_len, const void *body,
		       size_t len)
{
	const unsigned char *p;
	uint32_t h = 2166136261u;
	size_t i;
	for (i = 0; i < 4; i++) {
		h = (h ^ (unsigned char)(id_len >> (8 * i))) * 16777619u;
	}
	for (p = id, i = 0; i < id_len; i++) {
		h = (h ^ p[i]) * 16777619u;
	}
	for (p = body, i = 0; i < len; i++) {
		h = (h ^ p[i]) * 16777619u;
	}
	return h;
}

void cons_body_prefetch(struct cons *c, uint64_t key, uint64_t bytes)
{
	(void)c, (void)key, (void)bytes;
}

uint64_t cons_bodies_missing(const struct cons *c)
{
	(void)c;
	return 0;
}

int cons_bodies_missing_next(struct cons *c, uint64_t from, uint64_t *key)
{
	(void)c, (void)from, (void)key;
	return CONS_ENOTFOUND;
}

int cons_body_fill(struct cons *c, uint64_t key, const void *id, size_t id_len,
		   const void *body, size_t len)
{
	(void)c, (void)key, (void)id, (void)id_len, (void)body, (void)len;
	return CONS_ENOTFOUND;
}

uint64_t cons_memory_bytes(const struct cons *c)
{
	struct q_totals t;
	q_state_totals(FAKE(c)->state, &t);
	return t.alloc_bytes;
}

uint64_t cons_bodies_waiting(const struct cons *c)
{
	(void)c;
	return 0;
}

uint64_t cons_store_disk_bytes(const struct cons *c)
{
	(void)c;
	return 0;
}

void cons_bodies_stats(const struct cons *c, struct cons_bodies_stats *out)
{
	(void)c;
	memset(out, 0, sizeof *out);
}

/* ------------------------------------------------------------- membership */

static int change(struct fake_cons *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb)
{
	if (c->closed) {
		return CONS_ESHUTDOWN;
	}
	if (!c->leader) {
		return CONS_ENOTLEADER;
	}
	if (id == 0 || id > 100) {
		return id == 0 ? CONS_EINVAL : CONS_EBADID;
	}
	if (c->n_changes == FAKE_MAX_CHANGES) {
		return CONS_EBUSY;
	}
	c->changes[c->n_changes].req = req;
	c->changes[c->n_changes].cb = cb;
	c->n_changes++;
	return 0;
}

int cons_add(struct cons *c, struct cons_change *req, uint64_t id,
	     const char *raft_address, const char *client_address, int role,
	     cons_change_cb cb)
{
	(void)role;
	FAKE_CHECK(raft_address != NULL && client_address != NULL,
		   "cons_add() without an address");
	return change(FAKE(c), req, id, cb);
}

int cons_remove(struct cons *c, struct cons_change *req, uint64_t id,
		cons_change_cb cb)
{
	return change(FAKE(c), req, id, cb);
}

int cons_transfer(struct cons *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb)
{
	/* 0 = any voter: accepted as a real change. */
	return change(FAKE(c), req, id + 1, cb);
}

const char *cons_errmsg(const struct cons *c)
{
	(void)c;
	return ""; /* the node then says cons_strerror() of the code */
}

/* -------------------------------------------------------------- lifecycle */

/* The node is set up by the harness (fake_node.c), never by these. */
int cons_new(struct uv_loop_s *loop, const struct cons_config *cfg,
	     const struct q_sink *sink, struct cons **out, char *errmsg,
	     size_t errlen)
{
	(void)loop, (void)cfg, (void)sink, (void)out, (void)errmsg;
	(void)errlen;
	FAKE_CHECK(0, "cons_new() called on the fake consensus");
	return CONS_EINVAL;
}

int cons_start(struct cons *c, char *errmsg, size_t errlen)
{
	(void)c, (void)errmsg, (void)errlen;
	FAKE_CHECK(0, "cons_start() called on the fake consensus");
	return CONS_EINVAL;
}

/* As the real one: what is outstanding is answered (CONS_ESHUTDOWN), then
 * cb. The memory stays the harness's (fake_cons_free()). */
void cons_close(struct cons *cons, void (*cb)(void *data), void *data)
{
	struct fake_cons *c = FAKE(cons);
	FAKE_CHECK(!c->closed, "cons_close() twice");
	c->closed = true;
	while (fake_cons_complete(c, CONS_ESHUTDOWN)) {
	}
	while (fake_cons_complete_change(c, CONS_ESHUTDOWN)) {
	}
	while (fake_cons_complete_barrier(c, CONS_ESHUTDOWN)) {
	}
	cb(data);
}
