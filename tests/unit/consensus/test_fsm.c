/* Tier 2: the raft_fsm of consensus/ (cons_fsm.c, cons_snapshot.c), called
 * through its vtable with crafted raft_malloc()ed buffers, no raft running
 * (owner NULL: no pending proposals, snapshot index/term 0).
 *
 * What is checked:
 *   - apply of create/publish/attach/ack entries reaches q_state (queue
 *     info, counters, clock), SetMember entries set member addresses, apply
 *     leaves *result NULL and returns 0.
 *   - snapshot -> restore into a second FSM gives an equal q_state dump,
 *     the same members and clock; replicas with the same history write
 *     byte-identical snapshots.
 *   - restore of a truncated snapshot (every prefix), a bad magic, a bad
 *     checksum, an unknown snapshot or state format, a bad header length,
 *     trailing bytes, a dump q_state_load() refuses, and random byte flips:
 *     non-zero, and the FSM's state, members and clock are unchanged.
 *   - tests/data/consensus/snapshot-v1.bin (0.1.0) restores forever.
 *   - apply aborts the process (SIGABRT) on an entry it cannot apply (bad
 *     framing, or a well-framed LogEntry it does not know): a replica must
 *     stop rather than diverge.
 *   - Replicas agree on the clock after a snapshot even when an entry
 *     without queue commands (SetMember only) carried the newest stamp. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "golden_v1.h"
#include "helpers.h"

#define LE(name) RAFTMQ__LOG__V1__##name
#define T0 UINT64_C(1700000000000)

static struct cons_fsm A, B;

static void setup(void)
{
	th_fsm_init(&A);
	th_fsm_init(&B);
}

static void teardown(void)
{
	cons__fsm_close(&A);
	cons__fsm_close(&B);
}

TestSuite(fsm, .init = setup, .fini = teardown);

/* ------------------------------------------------------------------------
 * A small history */

static const q_seq tag1[] = {1};

static void create_queue(struct cons_fsm *f, const char *name, uint64_t t)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = name;
	q_settings_default(&c.u.queue.settings);
	th_apply(f, &c, 1, t);
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
	th_apply(f, &c, 1, t);
}

static void attach(struct cons_fsm *f, const char *queue, uint32_t prefetch,
		   uint64_t t)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_ATTACH;
	c.u.attach.queue = queue;
	c.u.attach.session = (struct q_session){1, 1, 1};
	c.u.attach.prefetch = prefetch;
	c.u.attach.credit = Q_CREDIT_UNLIMITED;
	th_apply(f, &c, 1, t);
}

/* create q1, 3 publishes in one entry, attach prefetch 2, ack tag 1, and
 * q2 with one message: q1 ends with 2 unacked (tags 2, 3), q2 1 ready. */
static void history(struct cons_fsm *f)
{
	struct q_cmd pubs[3], ack;
	size_t i;
	create_queue(f, "q1", T0);
	memset(pubs, 0, sizeof pubs);
	for (i = 0; i < 3; i++) {
		pubs[i].type = Q_CMD_PUBLISH;
		pubs[i].u.publish.queue = "q1";
		pubs[i].u.publish.body = "m";
		pubs[i].u.publish.body_len = 1;
	}
	th_apply(f, pubs, 3, T0 + 10);
	attach(f, "q1", 2, T0 + 20);
	memset(&ack, 0, sizeof ack);
	ack.type = Q_CMD_ACK;
	ack.u.tags.consumer = 1;
	ack.u.tags.tags = tag1;
	ack.u.tags.n_tags = 1;
	th_apply(f, &ack, 1, T0 + 30);
	create_queue(f, "q2", T0 + 40);
	publish(f, "q2", "hello", T0 + 50);
}

static void set_member(struct cons_fsm *f, uint64_t id, const char *addr,
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
	raft_free(b.base);
}

static struct q_queue_info info(struct cons_fsm *f, const char *name)
{
	struct q_queue_info qi;
	cr_assert_eq(q_state_queue_info(f->state, name, &qi), 0, "queue %s",
		     name);
	return qi;
}

/* ------------------------------------------------------------------------
 * apply */

Test(fsm, init_sets_the_vtable)
{
	cr_assert_eq(A.fsm.version, 2);
	cr_assert_eq(A.fsm.data, &A);
	cr_assert_not_null(A.fsm.apply);
	cr_assert_not_null(A.fsm.snapshot);
	cr_assert_not_null(A.fsm.restore);
	cr_assert_not_null(A.fsm.snapshot_finalize);
	cr_assert_not_null(A.state);
	cr_assert_null(A.owner);
}

Test(fsm, apply_reaches_the_state)
{
	struct q_queue_info qi;
	history(&A);
	qi = info(&A, "q1");
	cr_assert_eq(qi.ready, 0);
	cr_assert_eq(qi.unacked, 2);
	cr_assert_eq(qi.consumers, 1);
	cr_assert_eq(qi.published, 3);
	cr_assert_eq(qi.delivered, 3);
	cr_assert_eq(qi.acked, 1);
	qi = info(&A, "q2");
	cr_assert_eq(qi.ready, 1);
	cr_assert_eq(qi.bytes, 5);
	cr_assert_eq(q_state_queue_info(A.state, "q3", &qi), Q_ENOTFOUND);
	cr_assert_eq(A.applied_entries, 6);
	cr_assert_eq(A.applied_commands, 8);
	cr_assert_eq(A.last_stamp, T0 + 50);
	cr_assert_eq(q_state_now(A.state), T0 + 50);
	cr_assert_eq(q_state_check(A.state, NULL, 0), 0);
}

Test(fsm, refused_commands_are_results_not_errors)
{
	/* Unknown queue, unknown consumer, duplicate with other settings:
	 * apply returns 0 (th_apply asserts it) and nothing changes. */
	struct q_cmd c;
	void *before, *after;
	size_t lb, la;
	history(&A);
	th_dump(A.state, &before, &lb);
	publish(&A, "nope", "x", T0 + 50);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_DETACH;
	c.u.consumer.consumer = 99;
	th_apply(&A, &c, 1, T0 + 50);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = "q1";
	c.u.queue.settings.ttl_ms = 5;
	th_apply(&A, &c, 1, T0 + 50);
	th_dump(A.state, &after, &la);
	cr_assert(la == lb && memcmp(before, after, la) == 0);
	free(before);
	free(after);
}

Test(fsm, stamps_never_go_backwards)
{
	create_queue(&A, "q", T0);
	publish(&A, "q", "a", T0 + 100);
	publish(&A, "q", "b", T0 + 50); /* a slower leader clock */
	cr_assert_eq(A.last_stamp, T0 + 100);
	cr_assert_eq(q_state_now(A.state), T0 + 100);
}

Test(fsm, set_member_entries)
{
	cr_assert_str_eq(cons__fsm_member_addr(&A, 4), "");
	set_member(&A, 4, "n4:5672", T0);
	set_member(&A, 5, "n5:5672", T0);
	set_member(&A, 4, "n4b:5672", T0);
	cr_assert_eq(A.n_members, 2);
	cr_assert_str_eq(cons__fsm_member_addr(&A, 4), "n4b:5672");
	cr_assert_str_eq(cons__fsm_member_addr(&A, 5), "n5:5672");
	cr_assert_eq(A.applied_entries, 3);
}

Test(fsm, same_entries_same_state)
{
	history(&A);
	history(&B);
	th_assert_same_state(A.state, B.state, "two replicas");
}

/* ------------------------------------------------------------------------
 * snapshot / restore */

static int restore(struct cons_fsm *f, const void *bytes, size_t len)
{
	struct raft_buffer b;
	int rv;
	b.len = len;
	b.base = raft_malloc(len > 0 ? len : 1);
	cr_assert_not_null(b.base);
	memcpy(b.base, bytes, len);
	rv = f->fsm.restore(&f->fsm, &b);
	if (rv != 0) {
		raft_free(b.base); /* still ours on failure */
	}
	return rv;
}

Test(fsm, snapshot_restore_round_trip)
{
	struct raft_buffer s;
	history(&A);
	set_member(&A, 1, "one:1", T0 + 60);
	cons__fsm_set_member(&A, 2, "two:2");
	s = th_snapshot(&A);
	cr_assert_eq(A.snapshot_bytes, s.len);
	cr_assert_eq(memcmp(s.base, "RMQS", 4), 0);

	/* restore takes the buffer on success (ASan: no leak, no double
	 * free). */
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "restored replica");
	cr_assert_eq(q_state_check(B.state, NULL, 0), 0);
	cr_assert_str_eq(cons__fsm_member_addr(&B, 1), "one:1");
	cr_assert_str_eq(cons__fsm_member_addr(&B, 2), "two:2");
	cr_assert_eq(B.n_members, 2);
	cr_assert_eq(B.snapshot_bytes, A.snapshot_bytes);
	cr_assert_eq(B.last_stamp, q_state_now(A.state));

	/* Both go on identically. */
	publish(&A, "q2", "after", T0 + 70);
	publish(&B, "q2", "after", T0 + 70);
	th_assert_same_state(A.state, B.state, "after one more entry");
}

Test(fsm, restore_replaces_existing_state)
{
	struct raft_buffer s;
	history(&A);
	create_queue(&B, "other", T0 + 1000);
	publish(&B, "other", "zzz", T0 + 1001);
	s = th_snapshot(&A);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "restored over a state");
}

Test(fsm, empty_state_snapshot)
{
	struct raft_buffer s = th_snapshot(&A);
	history(&B);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "empty");
}

Test(fsm, replicas_write_identical_snapshots)
{
	struct raft_buffer sa, sb;
	history(&A);
	history(&B);
	set_member(&A, 3, "x:3", T0 + 60);
	set_member(&B, 3, "x:3", T0 + 60);
	sa = th_snapshot(&A);
	sb = th_snapshot(&B);
	cr_assert_eq(sa.len, sb.len);
	cr_assert(memcmp(sa.base, sb.base, sa.len) == 0);
	raft_free(sa.base);
	raft_free(sb.base);
}

/* The FSM's observable state, to check a refused restore changed nothing. */
struct fsm_view {
	void *dump;
	size_t len;
	struct q_state *state;
	struct cons_member_addr members[CONS_MAX_NODES];
	size_t n_members;
	uint64_t last_stamp;
};

static void view(struct cons_fsm *f, struct fsm_view *v)
{
	th_dump(f->state, &v->dump, &v->len);
	v->state = f->state;
	memcpy(v->members, f->members, sizeof v->members);
	v->n_members = f->n_members;
	v->last_stamp = f->last_stamp;
}

static void assert_unchanged(struct cons_fsm *f, struct fsm_view *v,
			     const char *what)
{
	void *d;
	size_t len;
	cr_assert_eq(f->state, v->state, "%s: state replaced", what);
	th_dump(f->state, &d, &len);
	cr_assert(len == v->len && memcmp(d, v->dump, len) == 0,
		  "%s: state changed by a refused restore", what);
	free(d);
	cr_assert_eq(f->n_members, v->n_members, "%s", what);
	cr_assert(memcmp(f->members, v->members, sizeof v->members) == 0,
		  "%s: members changed", what);
	cr_assert_eq(f->last_stamp, v->last_stamp, "%s", what);
}

/* A snapshot of A (history + members) and B with a different state. */
static struct raft_buffer prepare(struct fsm_view *v)
{
	struct raft_buffer s;
	history(&A);
	set_member(&A, 1, "one:1", T0 + 60);
	s = th_snapshot(&A);
	create_queue(&B, "b-only", T0 + 5);
	publish(&B, "b-only", "b", T0 + 6);
	cons__fsm_set_member(&B, 9, "nine:9");
	view(&B, v);
	return s;
}

static size_t header_len(const struct raft_buffer *s)
{
	const uint8_t *p = s->base;
	return (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 |
	       p[7];
}

/* Re-packs the snapshot's header after `edit` changed it. */
static struct raft_buffer rewrite_header(
	const struct raft_buffer *s,
	void (*edit)(Raftmq__Log__V1__SnapshotHeader *h))
{
	size_t hlen = header_len(s), dlen, nlen;
	const uint8_t *p = s->base;
	Raftmq__Log__V1__SnapshotHeader *h =
		raftmq__log__v1__snapshot_header__unpack(NULL, hlen, p + 8);
	struct raft_buffer out;
	uint8_t *q;
	cr_assert_not_null(h);
	dlen = s->len - 8 - hlen;
	edit(h);
	nlen = raftmq__log__v1__snapshot_header__get_packed_size(h);
	out.len = 8 + nlen + dlen;
	out.base = raft_malloc(out.len);
	q = out.base;
	memcpy(q, "RMQS", 4);
	q[4] = (uint8_t)(nlen >> 24);
	q[5] = (uint8_t)(nlen >> 16);
	q[6] = (uint8_t)(nlen >> 8);
	q[7] = (uint8_t)nlen;
	raftmq__log__v1__snapshot_header__pack(h, q + 8);
	memcpy(q + 8 + nlen, p + 8 + hlen, dlen);
	raftmq__log__v1__snapshot_header__free_unpacked(h, NULL);
	return out;
}

static void format_3(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->format = 3;
}

/* Format 1 has no tail. */
static void format_1_tail(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->state_bytes -= 8;
	h->tail_bytes = 8;
}

static void format_0(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->format = 0;
}

static void state_format_2(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->state_format = 2;
}

static void bad_xxh3(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->state_xxh3 ^= 1;
}

static void state_bytes_plus_1(Raftmq__Log__V1__SnapshotHeader *h)
{
	h->state_bytes++;
}

static void nothing(Raftmq__Log__V1__SnapshotHeader *h)
{
	(void)h;
}

Test(fsm, restore_refuses_and_keeps_state)
{
	struct fsm_view v;
	struct raft_buffer s = prepare(&v), t;
	uint8_t *p;
	size_t hlen = header_len(&s);

	/* Truncated (a few through the vtable; every prefix below). */
	cr_assert_neq(restore(&B, s.base, 0), 0);
	cr_assert_neq(restore(&B, s.base, 7), 0);
	cr_assert_neq(restore(&B, s.base, 8 + hlen), 0);
	cr_assert_neq(restore(&B, s.base, s.len - 1), 0);
	assert_unchanged(&B, &v, "truncated");

	p = malloc(s.len + 1);
	memcpy(p, s.base, s.len);
	p[0] = 'X';
	cr_assert_neq(restore(&B, p, s.len), 0, "bad magic");
	memcpy(p, s.base, s.len);
	p[s.len - 1] ^= 0x40;
	cr_assert_neq(restore(&B, p, s.len), 0, "bad checksum");
	memcpy(p, s.base, s.len);
	p[7] = (uint8_t)(p[7] + 1);
	cr_assert_neq(restore(&B, p, s.len), 0, "header length + 1");
	memcpy(p, s.base, s.len);
	p[4] = 0xff;
	cr_assert_neq(restore(&B, p, s.len), 0, "header length huge");
	memcpy(p, s.base, s.len);
	p[s.len] = 0;
	cr_assert_neq(restore(&B, p, s.len + 1), 0, "trailing byte");
	memcpy(p, s.base, s.len);
	memset(p + 8, 0xff, hlen);
	cr_assert_neq(restore(&B, p, s.len), 0, "undecodable header");
	free(p);
	assert_unchanged(&B, &v, "corrupt");

	t = rewrite_header(&s, nothing);
	cr_assert_eq(t.len, s.len);
	cr_assert(memcmp(t.base, s.base, s.len) == 0, "rewrite is exact");
	raft_free(t.base);

	void (*edits[])(Raftmq__Log__V1__SnapshotHeader *) = {
		format_3, format_0,	      state_format_2,
		bad_xxh3, state_bytes_plus_1, format_1_tail};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		t = rewrite_header(&s, edits[i]);
		cr_assert_neq(restore(&B, t.base, t.len), 0, "edit %zu", i);
		raft_free(t.base);
	}
	assert_unchanged(&B, &v, "unknown format / bad header");

	/* And the good one still restores. */
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "good snapshot");
	free(v.dump);
}

Test(fsm, restore_refuses_a_dump_queue_refuses)
{
	/* The checksum matches but the dump itself is cut short: the
	 * failure comes from q_state_load(), after a new state was made. */
	struct fsm_view v;
	struct raft_buffer s = prepare(&v), t;
	size_t hlen = header_len(&s), dlen = s.len - 8 - hlen;
	const uint8_t *dump = (const uint8_t *)s.base + 8 + hlen;
	size_t cut;
	for (cut = 0; cut < dlen; cut += 1 + cut / 8) {
		Raftmq__Log__V1__SnapshotHeader *h =
			raftmq__log__v1__snapshot_header__unpack(
				NULL, hlen, (const uint8_t *)s.base + 8);
		size_t nlen;
		uint8_t *q;
		h->state_bytes = cut;
		h->state_xxh3 = XXH3_64bits(dump, cut);
		nlen = raftmq__log__v1__snapshot_header__get_packed_size(h);
		t.len = 8 + nlen + cut;
		t.base = q = raft_malloc(t.len);
		memcpy(q, "RMQS", 4);
		q[4] = (uint8_t)(nlen >> 24);
		q[5] = (uint8_t)(nlen >> 16);
		q[6] = (uint8_t)(nlen >> 8);
		q[7] = (uint8_t)nlen;
		raftmq__log__v1__snapshot_header__pack(h, q + 8);
		memcpy(q + 8 + nlen, dump, cut);
		raftmq__log__v1__snapshot_header__free_unpacked(h, NULL);
		cr_assert_neq(restore(&B, t.base, t.len), 0, "dump cut at %zu",
			      cut);
		raft_free(t.base);
	}
	assert_unchanged(&B, &v, "short dump");
	raft_free(s.base);
	free(v.dump);
}

Test(fsm, restore_every_prefix_and_byte_flips)
{
	/* Through cons__snapshot_decode() (what restore calls) to keep
	 * stderr quiet. A flip is either refused with nothing changed, or
	 * accepted with the very same queue state (the dump is hashed; only
	 * informational header fields may differ). */
	struct fsm_view v;
	struct raft_buffer s = prepare(&v);
	char err[256];
	size_t cut;
	uint64_t seed = th_seed(3), rng = seed;
	unsigned iter, accepted = 0;
	uint8_t *p;
	for (cut = 0; cut < s.len; cut++) {
		p = malloc(cut > 0 ? cut : 1);
		memcpy(p, s.base, cut);
		err[0] = '\0';
		cr_assert_eq(cons__snapshot_decode(&B, p, cut, err, sizeof err),
			     CONS_ECORRUPT, "prefix %zu", cut);
		cr_assert_neq(err[0], '\0', "a sentence says why");
		free(p);
	}
	assert_unchanged(&B, &v, "prefixes");

	p = malloc(s.len);
	for (iter = 0; iter < 3000; iter++) {
		unsigned k, flips = 1 + (unsigned)(th_rand(&rng) % 3);
		memcpy(p, s.base, s.len);
		for (k = 0; k < flips; k++) {
			p[th_rand(&rng) % s.len] ^=
				(uint8_t)(1 + th_rand(&rng) % 255);
		}
		if (cons__snapshot_decode(&B, p, s.len, err, sizeof err) == 0) {
			accepted++;
			th_assert_same_state(A.state, B.state, "flip accepted");
			/* Back to B's own state for the next round. */
			cons__fsm_close(&B);
			th_fsm_init(&B);
			create_queue(&B, "b-only", T0 + 5);
			publish(&B, "b-only", "b", T0 + 6);
			cons__fsm_set_member(&B, 9, "nine:9");
			free(v.dump);
			view(&B, &v);
		} else {
			assert_unchanged(&B, &v, "flip refused");
		}
	}
	cr_log_info("seed %llu: %u of 3000 flipped snapshots accepted",
		    (unsigned long long)seed, accepted);
	free(p);
	free(v.dump);
	raft_free(s.base);
}

Test(fsm, members_survive_snapshot_restore)
{
	struct raft_buffer s;
	size_t i;
	char addr[32];
	for (i = 1; i <= CONS_MAX_NODES; i++) {
		snprintf(addr, sizeof addr, "10.0.0.%zu:5672", i);
		set_member(&A, i, addr, T0);
	}
	set_member(&A, 100, "ignored:1", T0); /* beyond CONS_MAX_NODES */
	cr_assert_eq(A.n_members, CONS_MAX_NODES);
	s = th_snapshot(&A);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	cr_assert_eq(B.n_members, CONS_MAX_NODES);
	for (i = 1; i <= CONS_MAX_NODES; i++) {
		snprintf(addr, sizeof addr, "10.0.0.%zu:5672", i);
		cr_assert_str_eq(cons__fsm_member_addr(&B, i), addr);
	}
	cr_assert_str_eq(cons__fsm_member_addr(&B, 100), "");
}

/* ------------------------------------------------------------------------
 * Golden snapshot */

/* Pinned: snapshot-v1.bin must never be regenerated (golden_v1.h). */
#define SNAPSHOT_V1_LEN 1166
#define SNAPSHOT_V1_XXH3 UINT64_C(0x929249d28f37e133)

Test(fsm, golden_snapshot_v1_restores_forever)
{
	void *buf;
	size_t len, hlen;
	struct q_queue_info qi;
	void *dump;
	size_t dump_len;

	th_read_data("snapshot-v1.bin", &buf, &len);
	cr_assert_eq(len, SNAPSHOT_V1_LEN, "snapshot-v1.bin was rewritten");
	cr_assert_eq(XXH3_64bits(buf, len), SNAPSHOT_V1_XXH3,
		     "snapshot-v1.bin was rewritten");
	cr_assert_eq(restore(&A, buf, len), 0);
	cr_assert_eq(q_state_check(A.state, NULL, 0), 0);
	cr_assert_str_eq(cons__fsm_member_addr(&A, GOLDEN_V1_SNAP_MEMBER1_ID),
			 GOLDEN_V1_SNAP_MEMBER1_ADDR);
	cr_assert_str_eq(cons__fsm_member_addr(&A, GOLDEN_V1_SNAP_MEMBER2_ID),
			 GOLDEN_V1_SNAP_MEMBER2_ADDR);
	/* What golden_v1_history() leaves (see golden_v1.c). */
	qi = info(&A, "work");
	cr_assert_eq(qi.ready, 0);
	cr_assert_eq(qi.unacked, 2, "tags 3 and 2 (redelivered)");
	cr_assert_eq(qi.delayed, 1);
	cr_assert_eq(qi.consumers, 1);
	cr_assert_eq(qi.published, 4);
	cr_assert_eq(qi.delivered, 4);
	cr_assert_eq(qi.redelivered, 1);
	cr_assert_eq(qi.acked, 1);
	cr_assert_eq(qi.nacked, 1);
	cr_assert_eq(qi.settings.max_deliveries, 3);
	cr_assert_str_eq(qi.settings.dead_letter, "work.dlq");
	qi = info(&A, "news:archive");
	cr_assert_eq(qi.ready, 1);
	cr_assert_str_eq(qi.topic, "news");
	qi = info(&A, "work.dlq");
	cr_assert_eq(qi.ready, 0);
	cr_assert_eq(q_state_now(A.state), GOLDEN_V1_TIME_MS + 12000);
	cr_assert_eq(A.last_stamp, GOLDEN_V1_TIME_MS + 12000);

	/* The state dumps back to the bytes stored in the file. */
	hlen = (size_t)((uint8_t *)buf)[6] << 8 | ((uint8_t *)buf)[7];
	th_dump(A.state, &dump, &dump_len);
	cr_assert_eq(dump_len, len - 8 - hlen);
	cr_assert(memcmp(dump, (uint8_t *)buf + 8 + hlen, dump_len) == 0);
	free(dump);

	/* It goes on applying: the consumer acks both. */
	{
		static const q_seq tags[] = {2, 3};
		struct q_cmd c;
		memset(&c, 0, sizeof c);
		c.type = Q_CMD_ACK;
		c.u.tags.consumer = 1;
		c.u.tags.tags = tags;
		c.u.tags.n_tags = 2;
		th_apply(&A, &c, 1, GOLDEN_V1_TIME_MS + 13000);
		cr_assert_eq(info(&A, "work").unacked, 0);
		cr_assert_eq(info(&A, "work").acked, 3);
	}

	/* Replaying the history today gives the same state (valid while
	 * the dump format is 1; see golden_v1.h). */
	{
		const struct q_cmd *cmds;
		size_t n = golden_v1_history(&cmds), i;
		cr_assert_eq(restore(&A, buf, len), 0);
		for (i = 0; i < n; i++) {
			th_apply(&B, &cmds[i], 1, GOLDEN_V1_TIME_MS + 1000 * i);
		}
		th_assert_same_state(A.state, B.state, "history replayed");
	}
	free(buf);
}

/* ------------------------------------------------------------------------
 * apply stops the process on what it cannot apply */

static void apply_bytes(const void *bytes, size_t len)
{
	struct raft_buffer b;
	void *result;
	b.len = len;
	b.base = raft_malloc(len > 0 ? len : 1);
	memcpy(b.base, bytes, len);
	A.fsm.apply(&A.fsm, &b, &result);
	raft_free(b.base);
}

/* Applies LogEntry bytes framed as an entry buffer (th_wrap()), so only
 * the LogEntry itself can be what apply refuses. */
static void apply_framed(const void *logentry, size_t len)
{
	struct raft_buffer b = th_wrap(logentry, len);
	apply_bytes(b.base, b.len);
	raft_free(b.base);
}

Test(fsm, abort_on_undecodable_entry, .signal = SIGABRT)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
	apply_bytes(junk, sizeof junk);
}

Test(fsm, abort_on_empty_buffer, .signal = SIGABRT)
{
	apply_bytes("", 0);
}

Test(fsm, abort_on_unframed_entry, .signal = SIGABRT)
{
	/* A good LogEntry ({format: 1, commands: [tick]}) without the
	 * header (no_abort_on_good_framed_bytes applies it framed). */
	static const uint8_t tick[] = {0x08, 0x01, 0x1a, 0x02, 0x0a, 0x00};
	apply_bytes(tick, sizeof tick);
}

Test(fsm, abort_on_length_past_buffer, .signal = SIGABRT)
{
	struct q_cmd tick = {.type = Q_CMD_TICK};
	struct raft_buffer b = th_encode(&tick, 1, 5);
	((uint8_t *)b.base)[0] = (uint8_t)(b.len - CONS_ENTRY_HEADER + 1);
	apply_bytes(b.base, b.len);
	raft_free(b.base);
}

Test(fsm, abort_on_nonzero_reserved_header_byte, .signal = SIGABRT)
{
	struct q_cmd tick = {.type = Q_CMD_TICK};
	struct raft_buffer b = th_encode(&tick, 1, 5);
	((uint8_t *)b.base)[CONS_ENTRY_HEADER - 1] = 1;
	apply_bytes(b.base, b.len);
	raft_free(b.base);
}

Test(fsm, abort_on_unknown_format, .signal = SIGABRT)
{
	static const uint8_t f3[] = {0x08, 0x03, 0x1a, 0x02, 0x0a, 0x00};
	apply_framed(f3, sizeof f3);
}

Test(fsm, abort_on_unknown_kind, .signal = SIGABRT)
{
	static const uint8_t k20[] = {0x08, 0x01, 0x1a, 0x03, 0xa2, 0x01, 0x00};
	apply_framed(k20, sizeof k20);
}

Test(fsm, abort_on_unknown_overflow, .signal = SIGABRT)
{
	Raftmq__Log__V1__LogEntry e;
	Raftmq__Log__V1__Command pc, *pcs[1] = {&pc};
	Raftmq__Log__V1__CreateQueue cq;
	Raftmq__Log__V1__QueueSettings st;
	uint8_t buf[128];
	raftmq__log__v1__log_entry__init(&e);
	raftmq__log__v1__command__init(&pc);
	raftmq__log__v1__create_queue__init(&cq);
	raftmq__log__v1__queue_settings__init(&st);
	st.overflow = (Raftmq__Log__V1__Overflow)7;
	cq.name = "q";
	cq.settings = &st;
	pc.kind_case = LE(COMMAND__KIND_CREATE_QUEUE);
	pc.create_queue = &cq;
	e.format = 1;
	e.commands = pcs;
	e.n_commands = 1;
	cr_assert_leq(raftmq__log__v1__log_entry__get_packed_size(&e),
		      sizeof buf);
	apply_framed(buf, raftmq__log__v1__log_entry__pack(&e, buf));
}

Test(fsm, no_abort_on_good_entry_after_refusals)
{
	/* Control for the tests above: the same helper applies good bytes. */
	struct q_cmd tick = {.type = Q_CMD_TICK};
	struct raft_buffer b = th_encode(&tick, 1, 5);
	apply_bytes(b.base, b.len);
	raft_free(b.base);
	cr_assert_eq(A.applied_entries, 1);
}

Test(fsm, no_abort_on_good_framed_bytes)
{
	/* Control for apply_framed(): the hand-crafted bytes above differ
	 * from these only in what each test names ({format: 1, commands:
	 * [tick]} here). */
	static const uint8_t tick[] = {0x08, 0x01, 0x1a, 0x02, 0x0a, 0x00};
	apply_framed(tick, sizeof tick);
	cr_assert_eq(A.applied_entries, 1);
	cr_assert_eq(A.applied_commands, 1);
}

/* ------------------------------------------------------------------------
 * Replica agreement on the clock across a snapshot */

Test(fsm, clock_agrees_after_restore_when_set_member_carried_the_stamp)
{
	/* A applies every entry; B joins late from A's snapshot taken right
	 * after an entry holding only a SetMember (cons_add proposes those).
	 * That entry's stamp raised A's FSM clock (last_stamp) but not its
	 * q_state clock, and the snapshot stores only the latter. A later
	 * entry stamped lower (a new leader with a slower clock: its
	 * cons_clock_ms() is max(wall, its own last_stamp)) is then applied
	 * with now = last_stamp on A and its own stamp on B. */
	struct raft_buffer s;
	create_queue(&A, "q", T0);
	set_member(&A, 4, "n4:1", T0 + 5000);
	s = th_snapshot(&A);
	cr_assert_eq(B.fsm.restore(&B.fsm, &s), 0);
	th_assert_same_state(A.state, B.state, "right after restore");
	publish(&A, "q", "m", T0 + 2000);
	publish(&B, "q", "m", T0 + 2000);
	th_assert_same_state(A.state, B.state,
			     "replicas diverge after a SetMember-only entry");
}
