/* Snapshots dumped by a child process (consensus/cons_bgsnap.c), driven
 * directly: no raft running.
 *
 * What is checked:
 *   - a dump started at some point, with entries applied (and noted) while
 *     the child runs, restores through fsm->restore to exactly the state
 *     after the last of them: the child saw the state frozen at the fork,
 *     and the tail brings it forward (a dump of the later state, or a
 *     missing or doubled tail entry, gives another state);
 *   - the tail's SetMember entries reach the restored members;
 *   - finalize unmaps and removes the dump file;
 *   - a killed child is a failed dump (no file left, idle again, counted);
 *   - a snapshot whose tail is cut, flipped or miscounted is refused and
 *     the restoring FSM keeps its state;
 *   - restoring a snapshot drops a dump in progress (it was of a state
 *     that no longer exists). */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define T0 UINT64_C(1700000000000)

static struct cons_fsm A, B;
static char dir[] = "/tmp/raftmq-bgsnap-XXXXXX";

static void setup(void)
{
	th_fsm_init(&A);
	th_fsm_init(&B);
	strcpy(dir, "/tmp/raftmq-bgsnap-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	cons__fsm_close(&A);
	cons__fsm_close(&B);
	rmdir(dir);
}

TestSuite(bgsnap, .init = setup, .fini = teardown);

/* Applies cmds to f as one entry and, as fsm_apply does with an owner,
 * notes the entry in f's dump tail. */
static void apply_noted(struct cons_fsm *f, const struct q_cmd *cmds, size_t n,
			uint64_t t)
{
	struct raft_buffer b = th_encode(cmds, n, t);
	void *result;
	cr_assert_eq(f->fsm.apply(&f->fsm, &b, &result), 0);
	cr_assert_eq(cons__bgsnap_note(&f->bg, b.base, b.len), 0);
	raft_free(b.base);
}

static void publish(struct cons_fsm *f, const char *queue, const char *body,
		    uint64_t t)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.u.publish.queue = queue;
	c.u.publish.body = body;
	c.u.publish.body_len = strlen(body);
	apply_noted(f, &c, 1, t);
}

static void create_queue(struct cons_fsm *f, const char *name, uint64_t t)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = name;
	q_settings_default(&c.u.queue.settings);
	apply_noted(f, &c, 1, t);
}

static void attach_and_ack_first(struct cons_fsm *f, uint64_t t)
{
	static const q_seq tag1[] = {1};
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_ATTACH;
	c.u.attach.queue = "q";
	c.u.attach.session = (struct q_session){1, 1, 1};
	c.u.attach.prefetch = 3;
	c.u.attach.credit = Q_CREDIT_UNLIMITED;
	apply_noted(f, &c, 1, t);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_ACK;
	c.u.tags.consumer = 1;
	c.u.tags.tags = tag1;
	c.u.tags.n_tags = 1;
	apply_noted(f, &c, 1, t + 1);
}

static void set_member_noted(struct cons_fsm *f, uint64_t id, const char *addr,
			     uint64_t t)
{
	Raftmq__Log__V1__SetMember m;
	struct raft_buffer b;
	void *result;
	raftmq__log__v1__set_member__init(&m);
	m.id = id;
	m.client_address = (char *)(uintptr_t)addr;
	cr_assert_eq(cons__entry_encode(NULL, 0, &m, 1, t, NULL, &b), 0);
	cr_assert_eq(f->fsm.apply(&f->fsm, &b, &result), 0);
	cr_assert_eq(cons__bgsnap_note(&f->bg, b.base, b.len), 0);
	raft_free(b.base);
}

static void wait_ready(struct cons_fsm *f)
{
	int i;
	for (i = 0; i < 2000 && f->bg.state == CONS_BGSNAP_RUNNING; i++) {
		if (!cons__bgsnap_poll(&f->bg)) {
			usleep(5000);
		}
	}
	cr_assert_eq(f->bg.state, CONS_BGSNAP_READY, "dump state %d",
		     f->bg.state);
}

/* Takes the ready dump as raft would, copies the buffers into one
 * snapshot (as raft's file holds it) and finalizes. */
static struct raft_buffer take(struct cons_fsm *f)
{
	struct raft_buffer *bufs = NULL, out;
	unsigned n = 0, i;
	size_t at = 0;
	cr_assert_eq(cons__bgsnap_take(f, 99, 3, &bufs, &n), 0);
	cr_assert(n == 2 || n == 3);
	out.len = 0;
	for (i = 0; i < n; i++) {
		out.len += bufs[i].len;
	}
	out.base = raft_malloc(out.len);
	cr_assert_not_null(out.base);
	for (i = 0; i < n; i++) {
		memcpy((char *)out.base + at, bufs[i].base, bufs[i].len);
		at += bufs[i].len;
	}
	cr_assert_eq(f->fsm.snapshot_finalize(&f->fsm, &bufs, &n), 0);
	cr_assert_null(bufs);
	return out;
}

static int restore(struct cons_fsm *f, struct raft_buffer b)
{
	int rv = f->fsm.restore(&f->fsm, &b);
	if (rv != 0) {
		raft_free(b.base);
	}
	return rv;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* A history, a dump started in its middle, the rest applied while the
 * child runs. Returns the snapshot. */
static struct raft_buffer dump_with_tail(struct cons_fsm *f)
{
	char path[4200];
	int i;
	create_queue(f, "q", T0);
	for (i = 0; i < 50; i++) {
		publish(f, "q", "before", T0 + 1 + (uint64_t)i);
	}
	cr_assert_eq(cons__bgsnap_start(f, dir, 52), 0);
	cr_assert_eq(f->bg.state, CONS_BGSNAP_RUNNING);
	snprintf(path, sizeof path, "%s", f->bg.path);
	/* While the child writes: more publishes, a consumer, an ack, a
	 * member, a new queue. */
	for (i = 0; i < 20; i++) {
		publish(f, "q", "during", T0 + 100 + (uint64_t)i);
	}
	attach_and_ack_first(f, T0 + 200);
	set_member_noted(f, 7, "seven:7", T0 + 300);
	create_queue(f, "later", T0 + 301);
	publish(f, "later", "x", T0 + 302);
	wait_ready(f);
	/* Entries applied after the child finished belong to the tail too. */
	publish(f, "q", "after-ready", T0 + 400);
	cr_assert_eq(f->bg.tail_entries, 20 + 2 + 1 + 2 + 1);
	cr_assert(exists(path));
	{
		struct raft_buffer s = take(f);
		cr_assert(!exists(path), "finalize removes the dump file");
		cr_assert_eq(f->bg.state, CONS_BGSNAP_IDLE);
		return s;
	}
}

Test(bgsnap, dump_plus_tail_restores_the_latest_state)
{
	struct raft_buffer s = dump_with_tail(&A);
	cr_assert_eq(restore(&B, s), 0);
	th_assert_same_state(A.state, B.state, "restored from dump + tail");
	cr_assert_eq(q_state_check(B.state, NULL, 0), 0);
	cr_assert_str_eq(cons__fsm_member_addr(&B, 7), "seven:7");
	cr_assert_eq(B.last_stamp, A.last_stamp);
	cr_assert_eq(B.snapshot_index, 99);
	cr_assert_eq(A.bg.taken, 1);
}

Test(bgsnap, a_killed_child_is_a_failed_dump)
{
	char path[4200];
	create_queue(&A, "q", T0);
	cr_assert_eq(cons__bgsnap_start(&A, dir, 1), 0);
	snprintf(path, sizeof path, "%s", A.bg.path);
	kill(A.bg.pid, SIGKILL);
	while (A.bg.state == CONS_BGSNAP_RUNNING) {
		if (!cons__bgsnap_poll(&A.bg)) {
			usleep(1000);
		}
	}
	cr_assert_eq(A.bg.state, CONS_BGSNAP_IDLE);
	cr_assert_eq(A.bg.failed, 1);
	cr_assert(!exists(path));
	/* and the next one works */
	cr_assert_eq(cons__bgsnap_start(&A, dir, 2), 0);
	wait_ready(&A);
	{
		struct raft_buffer s = take(&A);
		cr_assert_eq(restore(&B, s), 0);
	}
	th_assert_same_state(A.state, B.state, "after a failed dump");
}

Test(bgsnap, a_damaged_tail_is_refused_and_the_state_kept)
{
	/* The snapshot ends with the tail (an entry of more than 16
	 * bytes last): a flipped byte inside it, the last byte flipped,
	 * the last 4 bytes cut. */
	struct raft_buffer s = dump_with_tail(&A), bad;
	void *before;
	size_t before_len;
	int k;

	create_queue(&B, "mine", T0 + 5000);
	th_dump(B.state, &before, &before_len);
	for (k = 0; k < 3; k++) {
		bad.len = k == 2 ? s.len - 4 : s.len;
		bad.base = raft_malloc(s.len);
		cr_assert_not_null(bad.base);
		memcpy(bad.base, s.base, s.len);
		if (k == 0) {
			((unsigned char *)bad.base)[s.len - 16] ^= 0x40;
		} else if (k == 1) {
			((unsigned char *)bad.base)[s.len - 1] ^= 0x01;
		}
		cr_assert_neq(restore(&B, bad), 0, "damage %d accepted", k);
		{
			void *now;
			size_t now_len;
			th_dump(B.state, &now, &now_len);
			cr_assert(now_len == before_len &&
				  memcmp(now, before, now_len) == 0);
			free(now);
		}
	}
	free(before);
	cr_assert_eq(restore(&B, s), 0);
	th_assert_same_state(A.state, B.state, "the undamaged one");
}

Test(bgsnap, restore_drops_a_dump_in_progress)
{
	struct raft_buffer s;
	char path[4200];
	create_queue(&B, "q", T0);
	s = th_snapshot(&B);
	create_queue(&A, "other", T0);
	cr_assert_eq(cons__bgsnap_start(&A, dir, 1), 0);
	snprintf(path, sizeof path, "%s", A.bg.path);
	cr_assert_eq(restore(&A, s), 0);
	cr_assert_eq(A.bg.state, CONS_BGSNAP_IDLE);
	cr_assert(!exists(path));
	th_assert_same_state(A.state, B.state, "restored");
}
