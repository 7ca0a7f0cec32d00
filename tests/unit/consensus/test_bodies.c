/* The FSM with a real body store (consensus/cons_bodies.c): bodies go to
 * the store at apply, one write per entry, and a body put and dropped
 * within one entry is never written; a snapshot holds the index, so a
 * replica restored from it without the bodies has them missing, and one
 * that has them has none missing; restoring over a state lets go of the
 * old state's bodies (gc removes them) and keeps the new one's. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "store.h"

#define T0 UINT64_C(1700000000000)

static struct cons_fsm A, B;
static char dir[2][256];

static void open_fsm(struct cons_fsm *f, int i)
{
	struct cons_bodies b;
	struct q_options o;
	char err[256];
	memset(&o, 0, sizeof o);
	cr_assert_eq(cons__bodies_open(&b, dir[i], 64 * 1024, err, sizeof err),
		     0, "%s", err);
	cr_assert_eq(cons__fsm_init_bodies(f, &o, NULL, &b), 0);
}

static void setup(void)
{
	for (int i = 0; i < 2; i++) {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir[i], sizeof dir[i], "%s/t_cons_bodies.XXXXXX",
			 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
		cr_assert_not_null(mkdtemp(dir[i]));
	}
	open_fsm(&A, 0);
	open_fsm(&B, 1);
}

static void teardown(void)
{
	char cmd[600];
	cons__fsm_close(&A);
	cons__fsm_close(&B);
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir[i]);
		cr_assert_eq(system(cmd), 0);
	}
}

TestSuite(bodies, .init = setup, .fini = teardown);

static void create_queue(struct cons_fsm *f, const char *name, uint64_t t)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = name;
	q_settings_default(&c.u.queue.settings);
	th_apply(f, &c, 1, t);
}

/* n publishes of "body-<i>" to queue in one entry. */
static void publish_n(struct cons_fsm *f, const char *queue, int n, uint64_t t)
{
	struct q_cmd *c = calloc((size_t)n, sizeof *c);
	char(*bodies)[32] = calloc((size_t)n, sizeof *bodies);
	cr_assert(c != NULL && bodies != NULL);
	for (int i = 0; i < n; i++) {
		snprintf(bodies[i], sizeof bodies[i], "body-%d", i);
		c[i].type = Q_CMD_PUBLISH;
		c[i].u.publish.queue = queue;
		c[i].u.publish.body = bodies[i];
		c[i].u.publish.body_len = strlen(bodies[i]);
	}
	th_apply(f, c, (size_t)n, t);
	free(c);
	free(bodies);
}

static struct store_stats stats(struct cons_fsm *f)
{
	struct store_stats st;
	store_stats(f->bodies.store, &st);
	return st;
}

Test(bodies, an_entry_is_one_write_and_every_body_reads_back)
{
	struct store_rec r;
	create_queue(&A, "q", T0);
	publish_n(&A, "q", 300, T0 + 1);
	cr_assert_eq(stats(&A).puts, 300);
	cr_assert_eq(stats(&A).live_records, 300);
	cr_assert_eq(A.bodies.n_batch, 0, "flushed at the end of the entry");
	/* seqs 1..300 are the keys */
	cr_assert_eq(store_get(A.bodies.store, 1, &r), 0);
	cr_assert_eq(r.len, 6);
	cr_assert_eq(memcmp(r.body, "body-0", 6), 0);
	cr_assert_eq(store_get(A.bodies.store, 300, &r), 0);
	cr_assert_eq(memcmp(r.body, "body-299", 8), 0);
}

Test(bodies, put_and_dropped_in_one_entry_is_never_written)
{
	struct q_cmd c[2];
	memset(c, 0, sizeof c);
	create_queue(&A, "q", T0);
	c[0].type = Q_CMD_PUBLISH;
	c[0].u.publish.queue = "q";
	c[0].u.publish.body = "gone";
	c[0].u.publish.body_len = 4;
	c[1].type = Q_CMD_PURGE_QUEUE;
	c[1].u.queue.name = "q";
	th_apply(&A, c, 2, T0 + 1);
	cr_assert_eq(stats(&A).puts, 0);
	cr_assert_eq(stats(&A).records, 0);
}

Test(bodies, a_snapshot_names_bodies_a_bare_replica_lacks)
{
	struct raft_buffer s;
	create_queue(&A, "q", T0);
	publish_n(&A, "q", 50, T0 + 1);
	s = th_snapshot(&A);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "restored");
	cr_assert_eq(store_missing(B.bodies.store), 50);
	cr_assert_eq(store_missing(A.bodies.store), 0);
}

Test(bodies, restoring_over_a_state_lets_its_bodies_go)
{
	struct raft_buffer s;
	uint64_t token;
	int rv;
	/* B's own history: 40 bodies that A's snapshot does not name. */
	create_queue(&B, "old", T0);
	publish_n(&B, "old", 40, T0 + 1);
	cr_assert_eq(stats(&B).live_records, 40);
	create_queue(&A, "q", T0);
	publish_n(&A, "q", 10, T0 + 1);
	s = th_snapshot(&A);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	/* Keys 1..10 are named by both; 11..40 only by the old state. */
	cr_assert_eq(stats(&B).live_records, 10);
	cr_assert_eq(store_missing(B.bodies.store), 0);
	token = store_mark(B.bodies.store);
	while ((rv = store_gc(B.bodies.store, token, 1 << 20)) == 1) {
	}
	cr_assert_eq(rv, 0);
	cr_assert(store_has(B.bodies.store, 10));
	cr_assert_eq(stats(&B).live_records, 10);
}
