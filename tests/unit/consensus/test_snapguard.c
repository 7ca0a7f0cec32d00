/* libraft 0.22.1's follower crash, made deterministic on raft_fixture, and
 * the guard that avoids it (consensus/cons_snapguard.c).
 *
 * The crash needs a follower that receives an InstallSnapshot while it is
 * writing a snapshot of its own (docs/libraft.md). Here the follower's disk
 * is made slow (every write takes DISK_MS of simulated time), so its own
 * snapshot write stays in flight long enough for this:
 *   1. the follower starts writing a snapshot of its own;
 *   2. it is cut off from the others, which commit more entries and compact
 *      their logs past the follower's last entry;
 *   3. it is reconnected: the leader can only send it an InstallSnapshot,
 *      which arrives while the follower's write is still in flight;
 *   4. the write completes. Without the guard libraft parks the install and
 *      then reads the parked request through NULL (SIGSEGV: Criterion
 *      reports the test as crashed). With it, the install was held and is
 *      delivered after the write; the follower installs it and converges.
 * The test checks that the install really arrived inside the window (else
 * it would prove nothing). */
#include <criterion/criterion.h>

#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define N 3
#define F 2 /* the follower with the slow disk */
#define DISK_MS 5000
#define WAIT_MS 60000

static struct raft_fixture fx;
static struct cons_fsm fsms[N];
static struct cons_snapguard guards[N];
static uint64_t stamp = UINT64_C(1700000000000);

static void setup(void)
{
	struct raft_configuration conf;
	unsigned i;
	cr_assert_eq(raft_fixture_init(&fx), 0);
	for (i = 0; i < N; i++) {
		struct raft *r;
		th_fsm_init(&fsms[i]);
		cr_assert_eq(raft_fixture_grow(&fx, &fsms[i].fsm), 0);
		r = raft_fixture_get(&fx, i);
		r->tracer = &th_quiet_tracer;
		raft_set_pre_vote(r, true);
		/* As cons_new() does for raft_uv. */
		cons__snapguard_init(&guards[i], r->io);
		fsms[i].guard = &guards[i];
	}
	cr_assert_eq(raft_fixture_configuration(&fx, N, &conf), 0);
	cr_assert_eq(raft_fixture_bootstrap(&fx, &conf), 0);
	raft_configuration_close(&conf);
	cr_assert_eq(raft_fixture_start(&fx), 0);
}

static void teardown(void)
{
	unsigned i;
	raft_fixture_close(&fx);
	for (i = 0; i < N; i++) {
		cons__snapguard_close(&guards[i]);
		cons__fsm_close(&fsms[i]);
	}
}

TestSuite(snapguard, .init = setup, .fini = teardown, .timeout = 120);

struct proposal {
	struct raft_apply req;
	int done, status;
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = req->data;
	(void)result;
	p->done = 1;
	p->status = status;
}

static bool proposal_done(struct raft_fixture *f, void *arg)
{
	(void)f;
	return ((struct proposal *)arg)->done;
}

/* One entry with one command, proposed on server 0 (the leader) and
 * committed. */
static void propose(struct q_cmd *c)
{
	struct proposal p = {.done = 0};
	struct raft_buffer b = th_encode(c, 1, stamp += 10);
	p.req.data = &p;
	cr_assert_eq(
		raft_apply(raft_fixture_get(&fx, 0), &p.req, &b, 1, apply_cb),
		0);
	cr_assert(raft_fixture_step_until(&fx, proposal_done, &p, WAIT_MS),
		  "entry not committed in time");
	cr_assert_eq(p.status, 0);
}

static void publish(unsigned k)
{
	struct q_cmd c;
	char body[16];
	snprintf(body, sizeof body, "m%u", k);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.u.publish.queue = "q";
	c.u.publish.msg_id = body;
	c.u.publish.msg_id_len = strlen(body);
	c.u.publish.body = body;
	c.u.publish.body_len = strlen(body);
	propose(&c);
}

static bool follower_taking(struct raft_fixture *f, void *arg)
{
	(void)arg;
	return raft_fixture_get(f, F)->legacy.snapshot_taking;
}

static bool follower_got_install(struct raft_fixture *f, void *arg)
{
	(void)arg;
	return raft_fixture_n_recv(f, F, RAFT_INSTALL_SNAPSHOT) > 0;
}

static void cut(unsigned i, bool off)
{
	unsigned j;
	for (j = 0; j < N; j++) {
		if (j == i) {
			continue;
		}
		if (off) {
			raft_fixture_disconnect(&fx, i, j);
			raft_fixture_disconnect(&fx, j, i);
		} else {
			raft_fixture_reconnect(&fx, i, j);
			raft_fixture_reconnect(&fx, j, i);
		}
	}
}

Test(snapguard, install_during_own_snapshot_write)
{
	struct q_cmd c;
	struct raft *leader, *follower;
	unsigned i, k = 0;
	void *a, *b;
	size_t alen, blen;

	raft_fixture_elect(&fx, 0);
	leader = raft_fixture_get(&fx, 0);
	follower = raft_fixture_get(&fx, F);
	for (i = 0; i < N; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&fx, i), 4);
		raft_set_snapshot_trailing(raft_fixture_get(&fx, i), 2);
	}
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = "q";
	q_settings_default(&c.u.queue.settings);
	propose(&c);
	raft_fixture_set_disk_latency(&fx, F, DISK_MS);

	/* 1. entries until the follower writes a snapshot of its own */
	while (!follower->legacy.snapshot_taking && k < 8) {
		publish(k++);
	}
	cr_assert(raft_fixture_step_until(&fx, follower_taking, NULL, WAIT_MS),
		  "the follower took no snapshot");

	/* 2. cut off; the others move on and compact past it */
	cut(F, true);
	for (i = 0; i < 12; i++) {
		publish(k++);
	}

	/* 3. back: the leader sends an InstallSnapshot, which arrives while
	 * the follower's own snapshot is still being written */
	cut(F, false);
	cr_assert(raft_fixture_step_until(&fx, follower_got_install, NULL,
					  DISK_MS / 2),
		  "no InstallSnapshot reached the follower");
	cr_assert(follower->legacy.snapshot_taking,
		  "the install came after the follower's write: the test "
		  "missed the window");
	cr_assert_eq(guards[F].held, 1, "the guard held the install");

	/* 4. the write completes (this is where 0.22.1 crashes without the
	 * guard); the follower installs the snapshot and catches up */
	cr_assert(raft_fixture_step_until_applied(
			  &fx, F, raft_last_index(leader), WAIT_MS),
		  "the follower did not catch up (at %llu)",
		  (unsigned long long)raft_last_applied(follower));
	th_dump(fsms[0].state, &a, &alen);
	th_dump(fsms[F].state, &b, &blen);
	cr_assert(alen == blen && memcmp(a, b, alen) == 0,
		  "follower and leader states differ");
	free(a);
	free(b);
	cr_assert_eq(guards[F].dropped, 0);
}
