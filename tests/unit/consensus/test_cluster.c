/* Tier 3: a deterministic in-process cluster. libraft's raft_fixture (an
 * in-memory raft_io with simulated time, network and disk) runs 3 servers,
 * each with the real cons_fsm over a real q_state (owner NULL: no node, so
 * no pending proposals). Entries are encoded with cons__entry_encode() and
 * proposed with raft_apply(), one buffer each (LIBRAFT.md: more are
 * dropped by 0.22.1).
 *
 * What is checked, always as byte-identical q_state dumps on every replica
 * (STYLE.md 7):
 *   - plain replication of create / publish / attach / ack entries;
 *   - leader killed: a new leader, more entries, the old one revived and
 *     caught up through the log;
 *   - snapshots forced (threshold 4, trailing 2): a server that was down
 *     while the leader compacted its log catches up by InstallSnapshot
 *     (cons_fsm restore), members included;
 *   - seeded random runs (TEST_SEED adds one) of proposals, disconnects,
 *     kills and revivals, healed at the end. */
#include <criterion/criterion.h>

#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define N 3
#define T0 UINT64_C(1700000000000)
#define WAIT_MS 30000

static struct raft_fixture fx;
static struct cons_fsm fsms[N];
static uint64_t stamp = T0; /* the "leader clock", always increasing */

static void setup(void)
{
	struct raft_configuration conf;
	unsigned i;
	cr_assert_eq(raft_fixture_init(&fx), 0);
	for (i = 0; i < N; i++) {
		th_fsm_init(&fsms[i]);
		cr_assert_eq(raft_fixture_grow(&fx, &fsms[i].fsm), 0);
		raft_fixture_get(&fx, i)->tracer = &th_quiet_tracer;
		/* As cons_node.c does. */
		raft_set_pre_vote(raft_fixture_get(&fx, i), true);
	}
	cr_assert_eq(raft_fixture_configuration(&fx, N, &conf), 0);
	cr_assert_eq(raft_fixture_bootstrap(&fx, &conf), 0);
	raft_configuration_close(&conf);
	cr_assert_eq(raft_fixture_start(&fx), 0);
	stamp = T0;
}

static void teardown(void)
{
	unsigned i;
	raft_fixture_close(&fx);
	for (i = 0; i < N; i++) {
		cons__fsm_close(&fsms[i]);
	}
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------------
 * Helpers */

static void set_snapshot_threshold(unsigned threshold, unsigned trailing)
{
	unsigned i;
	for (i = 0; i < N; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&fx, i),
					    threshold);
		raft_set_snapshot_trailing(raft_fixture_get(&fx, i), trailing);
	}
}

/* The alive server in leader state with the highest term, or N. */
static unsigned current_leader(void)
{
	unsigned i, best = N;
	raft_term term = 0;
	for (i = 0; i < N; i++) {
		struct raft *r = raft_fixture_get(&fx, i);
		if (raft_fixture_alive(&fx, i) &&
		    raft_state(r) == RAFT_LEADER &&
		    raft_current_term(r) >= term) {
			best = i;
			term = raft_current_term(r);
		}
	}
	return best;
}

struct proposal {
	struct raft_apply req;
	int done, status;
	int owned; /* freed by the callback */
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = req->data;
	cr_assert_null(result, "the FSM never returns a result pointer");
	if (p->owned) {
		free(p);
		return;
	}
	p->done = 1;
	p->status = status;
}

/* Proposes one entry on server `i`. Returns raft_apply()'s code; `p` is
 * retained until its callback when that is 0. */
static int propose_on(unsigned i, struct proposal *p, const struct q_cmd *cmds,
		      size_t n)
{
	struct raft_buffer b = th_encode(cmds, n, stamp += 10);
	int rv;
	p->req.data = p;
	p->done = 0;
	p->status = -1;
	rv = raft_apply(raft_fixture_get(&fx, i), &p->req, &b, 1, apply_cb);
	if (rv != 0) {
		raft_free(b.base);
	}
	return rv;
}

static bool proposal_done(struct raft_fixture *f, void *arg)
{
	(void)f;
	return ((struct proposal *)arg)->done;
}

/* Proposes on the current leader and waits for the commit. */
static void propose(const struct q_cmd *cmds, size_t n)
{
	struct proposal p = {.owned = 0};
	unsigned l = current_leader();
	cr_assert_lt(l, N, "no leader");
	cr_assert_eq(propose_on(l, &p, cmds, n), 0);
	cr_assert(raft_fixture_step_until(&fx, proposal_done, &p, WAIT_MS),
		  "entry not committed in time");
	cr_assert_eq(p.status, 0, "apply status %d", p.status);
}

/* Steps until every alive server applied the leader's last entry. */
static void wait_applied(void)
{
	unsigned l = current_leader(), i;
	raft_index idx;
	cr_assert_lt(l, N, "no leader");
	idx = raft_last_index(raft_fixture_get(&fx, l));
	for (i = 0; i < N; i++) {
		if (!raft_fixture_alive(&fx, i)) {
			continue;
		}
		cr_assert(raft_fixture_step_until_applied(&fx, i, idx, WAIT_MS),
			  "server %u did not apply %llu (it is at %llu)", i,
			  (unsigned long long)idx,
			  (unsigned long long)raft_last_applied(
				  raft_fixture_get(&fx, i)));
	}
}

/* Every alive server's state equals server `ref`'s, and is consistent. */
static void assert_replicas_equal(const char *what)
{
	unsigned ref = current_leader(), i;
	char err[256];
	cr_assert_lt(ref, N);
	for (i = 0; i < N; i++) {
		if (!raft_fixture_alive(&fx, i)) {
			continue;
		}
		cr_assert_eq(q_state_check(fsms[i].state, err, sizeof err), 0,
			     "%s: server %u: %s", what, i, err);
		if (i != ref) {
			th_assert_same_state(fsms[ref].state, fsms[i].state,
					     what);
		}
	}
}

static void create_queue(const char *name)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = name;
	q_settings_default(&c.u.queue.settings);
	propose(&c, 1);
}

/* n publishes of "m<k>" to queue in one entry. */
static void publish_n(const char *queue, size_t n)
{
	struct q_cmd c[16];
	static unsigned k;
	char bodies[16][16];
	size_t i;
	cr_assert_leq(n, 16);
	memset(c, 0, sizeof c);
	for (i = 0; i < n; i++) {
		snprintf(bodies[i], sizeof bodies[i], "m%u", k++);
		c[i].type = Q_CMD_PUBLISH;
		c[i].u.publish.queue = queue;
		c[i].u.publish.msg_id = bodies[i];
		c[i].u.publish.msg_id_len = strlen(bodies[i]);
		c[i].u.publish.body = bodies[i];
		c[i].u.publish.body_len = strlen(bodies[i]);
	}
	propose(c, n);
}

static void attach(const char *queue, uint32_t prefetch)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_ATTACH;
	c.u.attach.queue = queue;
	c.u.attach.session = (struct q_session){1, 1, 1};
	c.u.attach.prefetch = prefetch;
	c.u.attach.credit = Q_CREDIT_UNLIMITED;
	propose(&c, 1);
}

static void tags_cmd(uint8_t type, q_consumer_id consumer, q_seq first,
		     size_t n)
{
	q_seq tags[64];
	struct q_cmd c;
	size_t i;
	cr_assert_leq(n, 64);
	for (i = 0; i < n; i++) {
		tags[i] = first + i;
	}
	memset(&c, 0, sizeof c);
	c.type = type;
	c.u.tags.consumer = consumer;
	c.u.tags.tags = tags;
	c.u.tags.n_tags = n;
	propose(&c, 1);
}

static void set_member(uint64_t id, const char *addr)
{
	Raftmq__Log__V1__SetMember m;
	struct proposal p = {.owned = 0};
	struct raft_buffer b;
	unsigned l = current_leader();
	cr_assert_lt(l, N);
	raftmq__log__v1__set_member__init(&m);
	m.id = id;
	m.client_address = (char *)(uintptr_t)addr;
	cr_assert_eq(cons__entry_encode(NULL, 0, &m, 1, stamp += 10, NULL, &b),
		     0);
	p.req.data = &p;
	cr_assert_eq(
		raft_apply(raft_fixture_get(&fx, l), &p.req, &b, 1, apply_cb),
		0);
	cr_assert(raft_fixture_step_until(&fx, proposal_done, &p, WAIT_MS));
	cr_assert_eq(p.status, 0);
}

static struct q_queue_info info(unsigned i, const char *name)
{
	struct q_queue_info qi;
	cr_assert_eq(q_state_queue_info(fsms[i].state, name, &qi), 0,
		     "server %u queue %s", i, name);
	return qi;
}

/* ------------------------------------------------------------------------
 * Scenarios */

Test(cluster, replicate_and_compare)
{
	unsigned i;
	raft_fixture_elect(&fx, 0);
	create_queue("q");
	create_queue("other");
	publish_n("q", 10);
	attach("q", 3);		      /* consumer 1 gets tags 1, 2, 3 */
	tags_cmd(Q_CMD_ACK, 1, 1, 2); /* then 4, 5 */
	publish_n("q", 5);
	publish_n("other", 1);
	tags_cmd(Q_CMD_NACK, 1, 3, 1); /* 3 returns, is redelivered */
	wait_applied();
	assert_replicas_equal("after replication");
	for (i = 0; i < N; i++) {
		struct q_queue_info qi = info(i, "q");
		cr_assert_eq(qi.published, 15, "server %u", i);
		cr_assert_eq(qi.acked, 2);
		cr_assert_eq(qi.nacked, 1);
		cr_assert_eq(qi.unacked, 3);
		cr_assert_eq(qi.ready, 10);
		cr_assert_eq(qi.redelivered, 1);
		cr_assert_eq(info(i, "other").ready, 1);
		cr_assert_eq(fsms[i].applied_entries, 8, "server %u", i);
		cr_assert_eq(q_state_now(fsms[i].state), stamp);
	}
}

Test(cluster, leader_killed_then_revived)
{
	unsigned l2;
	raft_fixture_elect(&fx, 0);
	create_queue("q");
	publish_n("q", 4);
	attach("q", 2);
	wait_applied();
	assert_replicas_equal("before the kill");

	raft_fixture_kill(&fx, 0);
	cr_assert(raft_fixture_step_until_has_no_leader(&fx, WAIT_MS));
	cr_assert(raft_fixture_step_until_has_leader(&fx, WAIT_MS));
	l2 = current_leader();
	cr_assert_neq(l2, 0);
	cr_assert_lt(l2, N);
	tags_cmd(Q_CMD_ACK, 1, 1, 2);
	publish_n("q", 3);
	tags_cmd(Q_CMD_RELEASE, 1, 3, 1);
	wait_applied();
	assert_replicas_equal("two of three");
	cr_assert_eq(info(l2, "q").published, 7);
	cr_assert_eq(info(0, "q").published, 4, "the dead one lags");

	raft_fixture_revive(&fx, 0);
	publish_n("q", 1);
	wait_applied();
	assert_replicas_equal("old leader caught up");
	cr_assert_eq(info(0, "q").published, 8);
	cr_assert_eq(raft_fixture_n_recv(&fx, 0, RAFT_INSTALL_SNAPSHOT), 0,
		     "caught up through the log");
}

Test(cluster, lagging_server_installs_a_snapshot)
{
	unsigned i;
	set_snapshot_threshold(4, 2);
	raft_fixture_elect(&fx, 0);
	create_queue("q");
	wait_applied();

	raft_fixture_kill(&fx, 2);
	set_member(7, "seven:5672"); /* server 2 sees it only by snapshot */
	attach("q", 4);
	for (i = 0; i < 12; i++) {
		publish_n("q", 1 + i % 3);
		if (i % 3 == 2) {
			tags_cmd(Q_CMD_ACK, 1, 1 + i, 2);
		}
	}
	wait_applied();
	assert_replicas_equal("two of three");
	cr_assert_gt(fsms[0].snapshot_bytes, 0, "the leader took snapshots");
	cr_assert_eq(fsms[2].snapshot_bytes, 0);

	raft_fixture_revive(&fx, 2);
	wait_applied();
	cr_assert_geq(raft_fixture_n_recv(&fx, 2, RAFT_INSTALL_SNAPSHOT), 1,
		      "server 2 caught up by InstallSnapshot");
	cr_assert_gt(fsms[2].snapshot_bytes, 0, "restore ran on server 2");
	assert_replicas_equal("after snapshot install");
	cr_assert_str_eq(cons__fsm_member_addr(&fsms[2], 7), "seven:5672",
			 "members travel in the snapshot");

	/* And it keeps applying entries normally afterwards. */
	publish_n("q", 2);
	tags_cmd(Q_CMD_NACK, 1, 1, 20);
	wait_applied();
	assert_replicas_equal("after more entries");
}

/* ------------------------------------------------------------------------
 * Seeded random runs */

static uint64_t rng;

static unsigned pick(unsigned n)
{
	return (unsigned)(th_rand(&rng) % n);
}

/* A random entry of 1-4 commands about queue "q" and consumers 1-2. */
static void random_entry(struct q_cmd *c, size_t *n, q_seq *tags,
			 char (*bodies)[16])
{
	size_t i, k;
	*n = 1 + pick(4);
	memset(c, 0, *n * sizeof *c);
	for (i = 0; i < *n; i++) {
		switch (pick(8)) {
		case 0:
		case 1:
		case 2:
			snprintf(bodies[i], 16, "b%u", pick(1000));
			c[i].type = Q_CMD_PUBLISH;
			c[i].u.publish.queue = "q";
			c[i].u.publish.body = bodies[i];
			c[i].u.publish.body_len = strlen(bodies[i]);
			if (pick(3) == 0) {
				c[i].u.publish.msg_id = bodies[i];
				c[i].u.publish.msg_id_len = strlen(bodies[i]);
			}
			break;
		case 3:
		case 4:
		case 5:
			c[i].type = (uint8_t)(pick(3) == 0   ? Q_CMD_NACK
					      : pick(4) == 0 ? Q_CMD_RELEASE
							     : Q_CMD_ACK);
			c[i].u.tags.consumer = 1 + pick(2);
			c[i].u.tags.tags = &tags[i * 4];
			c[i].u.tags.n_tags = 1 + pick(4);
			for (k = 0; k < c[i].u.tags.n_tags; k++) {
				tags[i * 4 + k] = 1 + pick(60);
			}
			break;
		case 6:
			c[i].type = Q_CMD_TICK;
			break;
		default:
			c[i].type = Q_CMD_CREDIT;
			c[i].u.consumer.consumer = 1 + pick(2);
			c[i].u.consumer.prefetch = pick(6);
			c[i].u.consumer.credit =
				pick(2) ? Q_CREDIT_UNLIMITED : pick(10);
			break;
		}
	}
}

/* Two kinds of random runs:
 *
 *   CHAOS: any pair disconnected, any server killed (the leader too), so
 *   leaders change and followers truncate uncommitted entries. Snapshots
 *   stay off (threshold 100000): raft_fixture's in-memory log truncation
 *   is broken once a snapshot moved its start index (see
 *   fixture_truncate_after_snapshot below).
 *
 *   SNAPSHOTS: snapshot threshold 8, trailing 4; only followers are
 *   impaired (killed, or cut off from the leader), one at a time, so the
 *   leader keeps its majority, nobody truncates, and an impaired follower
 *   comes back through the log or an InstallSnapshot. */
enum run_mode { CHAOS, SNAPSHOTS };

static void random_faults_chaos(unsigned *dead)
{
	unsigned action = pick(6), i = pick(N), j = pick(N);
	if (action == 0 && i != j) {
		raft_fixture_disconnect(&fx, i, j);
		raft_fixture_disconnect(&fx, j, i);
	} else if (action < 3 && i != j) {
		raft_fixture_reconnect(&fx, i, j);
		raft_fixture_reconnect(&fx, j, i);
	} else if (action == 3) {
		if (*dead == N) {
			*dead = i;
			raft_fixture_kill(&fx, i);
		} else {
			raft_fixture_revive(&fx, *dead);
			*dead = N;
		}
	}
}

static void random_faults_followers(unsigned *impaired, int *killed)
{
	unsigned l = current_leader(), i = pick(N);
	if (*impaired != N) {
		if (pick(3) != 0) {
			return;
		}
		if (*killed) {
			raft_fixture_revive(&fx, *impaired);
		} else {
			raft_fixture_reconnect(&fx, l, *impaired);
			raft_fixture_reconnect(&fx, *impaired, l);
		}
		*impaired = N;
		return;
	}
	if (l == N || i == l || pick(2) != 0) {
		return;
	}
	*impaired = i;
	*killed = (int)pick(2);
	if (*killed) {
		raft_fixture_kill(&fx, i);
	} else {
		raft_fixture_disconnect(&fx, l, i);
		raft_fixture_disconnect(&fx, i, l);
	}
}

static void heal(void)
{
	unsigned i, j;
	for (i = 0; i < N; i++) {
		if (!raft_fixture_alive(&fx, i)) {
			raft_fixture_revive(&fx, i);
		}
		for (j = 0; j < N; j++) {
			if (i != j) {
				raft_fixture_reconnect(&fx, i, j);
			}
		}
	}
}

static unsigned installs(void)
{
	unsigned i, n = 0;
	for (i = 0; i < N; i++) {
		n += raft_fixture_n_recv(&fx, i, RAFT_INSTALL_SNAPSHOT);
	}
	return n;
}

static void random_run(uint64_t seed, enum run_mode mode)
{
	unsigned step, i, dead = N, impaired = N, proposed = 0;
	int killed = 0;
	struct q_cmd final;
	rng = seed;
	cr_log_info("cluster random run, seed %llu, %s",
		    (unsigned long long)seed,
		    mode == CHAOS ? "chaos" : "snapshots");
	if (mode == CHAOS) {
		set_snapshot_threshold(100000, 100000);
	} else {
		set_snapshot_threshold(8, 4);
	}
	raft_fixture_elect(&fx, 0);
	create_queue("q");
	attach("q", 3);
	attach("q", 0);

	for (step = 0; step < 400; step++) {
		if (pick(2) == 0) {
			unsigned l = current_leader();
			struct q_cmd c[4];
			q_seq tags[16];
			char bodies[4][16];
			size_t n;
			struct proposal *p;
			if (l < N) {
				random_entry(c, &n, tags, bodies);
				p = calloc(1, sizeof *p);
				cr_assert_not_null(p);
				p->owned = 1;
				if (propose_on(l, p, c, n) != 0) {
					free(p); /* not leader after all */
				} else {
					proposed++;
				}
			}
		} else if (mode == CHAOS) {
			random_faults_chaos(&dead);
		} else {
			random_faults_followers(&impaired, &killed);
		}
		raft_fixture_step_n(&fx, 1 + pick(30));
	}

	/* Heal everything, then one more entry everyone must apply. */
	heal();
	memset(&final, 0, sizeof final);
	final.type = Q_CMD_TICK;
	for (i = 0;; i++) {
		struct proposal p = {.owned = 0};
		unsigned l;
		cr_assert_lt(i, 20, "seed %llu: no stable leader to commit",
			     (unsigned long long)seed);
		cr_assert(raft_fixture_step_until_has_leader(&fx, WAIT_MS),
			  "seed %llu: no leader after healing",
			  (unsigned long long)seed);
		l = current_leader();
		if (l == N || propose_on(l, &p, &final, 1) != 0) {
			raft_fixture_step_n(&fx, 10);
			continue;
		}
		raft_fixture_step_until(&fx, proposal_done, &p, WAIT_MS);
		cr_assert(p.done, "seed %llu: final entry never completed",
			  (unsigned long long)seed);
		if (p.status == 0) {
			break;
		}
	}
	wait_applied();
	assert_replicas_equal("random run, healed");
	cr_log_info(
		"seed %llu: %u proposals, %llu entries applied on 0, "
		"%u snapshots installed",
		(unsigned long long)seed, proposed,
		(unsigned long long)fsms[0].applied_entries, installs());
	if (mode == SNAPSHOTS) {
		cr_assert_gt(fsms[current_leader()].snapshot_bytes, 0,
			     "seed %llu: no snapshot taken",
			     (unsigned long long)seed);
	}
}

Test(cluster, random_chaos_seed_1)
{
	random_run(1, CHAOS);
}

Test(cluster, random_chaos_seed_2)
{
	random_run(2, CHAOS);
}

Test(cluster, random_chaos_seed_3)
{
	random_run(3, CHAOS);
}

Test(cluster, random_snapshots_seed_1)
{
	random_run(1, SNAPSHOTS);
}

Test(cluster, random_snapshots_seed_2)
{
	random_run(2, SNAPSHOTS);
}

Test(cluster, random_snapshots_seed_3)
{
	random_run(3, SNAPSHOTS);
}

/* TEST_SEED=N runs one more seed of each kind (default 4). */
Test(cluster, random_chaos_seed_env)
{
	random_run(th_seed(4), CHAOS);
}

Test(cluster, random_snapshots_seed_env)
{
	random_run(th_seed(4), SNAPSHOTS);
}

/* libraft 0.22.1's fixture (and cowsql/raft master as of this writing):
 * ioMethodTruncate() keeps `index - 1` entries, as if the in-memory log
 * always started at index 1. After a snapshot moved io->start_index, a
 * follower told to drop conflicting entries copies more entries than it
 * has: ASan reports a heap-buffer-overflow in memcpy under
 * raft_fixture_step(); without ASan the log is garbage and the test later
 * crashes. Not a consensus/ bug. This is the first random run that found
 * it (pre-vote off, snapshot threshold 8, seed 3); set .disabled = false
 * and build with -Dsanitize=true to see the report. */
Test(cluster, fixture_truncate_after_snapshot, .disabled = true)
{
	unsigned step, i, j, dead = N;
	rng = 3;
	for (i = 0; i < N; i++) {
		raft_set_pre_vote(raft_fixture_get(&fx, i), false);
	}
	set_snapshot_threshold(8, 4);
	raft_fixture_elect(&fx, 0);
	create_queue("q");
	attach("q", 3);
	attach("q", 0);
	for (step = 0; step < 400; step++) {
		unsigned action = pick(12);
		if (action < 6) {
			unsigned l = current_leader();
			struct q_cmd c[4];
			q_seq tags[16];
			char bodies[4][16];
			size_t n;
			struct proposal *p;
			if (l < N) {
				random_entry(c, &n, tags, bodies);
				p = calloc(1, sizeof *p);
				p->owned = 1;
				if (propose_on(l, p, c, n) != 0) {
					free(p);
				}
			}
		} else if (action == 6) {
			i = pick(N);
			j = pick(N);
			if (i != j) {
				raft_fixture_disconnect(&fx, i, j);
				raft_fixture_disconnect(&fx, j, i);
			}
		} else if (action < 9) {
			i = pick(N);
			j = pick(N);
			if (i != j) {
				raft_fixture_reconnect(&fx, i, j);
				raft_fixture_reconnect(&fx, j, i);
			}
		} else if (action == 9) {
			if (dead == N) {
				dead = pick(N);
				raft_fixture_kill(&fx, dead);
			} else {
				raft_fixture_revive(&fx, dead);
				dead = N;
			}
		}
		raft_fixture_step_n(&fx, 1 + pick(30));
	}
}
