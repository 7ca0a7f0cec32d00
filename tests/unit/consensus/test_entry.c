/* Tier 2: the LogEntry codec of consensus/ (cons_entry.c).
 *
 * What is checked:
 *   - encode -> decode -> cons__entry_command gives back every q_cmd type
 *     with every field it carries, batched and alone, plus SetMember
 *     (returns 1) and the proposer fields.
 *   - The entry buffer framing (CONS_ENTRY_HEADER): an 8-byte header (u32
 *     little-endian LogEntry length, 4 zero bytes), the LogEntry, zeros up
 *     to a multiple of 8. Every encoded length is a multiple of 8 with zero
 *     padding; a buffer shorter than the header, a length past the buffer
 *     or non-zero reserved bytes decode to NULL.
 *   - Anything this version does not know is refused, never skipped: an
 *     unknown or missing format (decode NULL), a Command with a kind from a
 *     newer version or none at all, unknown ConfigureQueue mask bits, an
 *     unknown overflow value, a Publish without target, a missing settings
 *     or session message (CONS_ECORRUPT).
 *   - Every prefix (of the buffer, and of the LogEntry re-framed) and
 *     thousands of random byte flips of a real entry never crash (run
 *     under ASan/UBSan too).
 *   - tests/data/consensus/entry-v1.bin, written by 0.1.0, decodes to the
 *     commands of golden_v1.c forever (its size and hash are pinned).
 *   - Whatever encode accepts, every replica can decode: otherwise one bad
 *     proposal commits an entry that stops every replica (cons_fsm.c aborts
 *     on an undecodable entry) and keeps stopping them after restart.
 *   - The size cap: an entry of exactly CONS_MAX_ENTRY_BYTES encodes, one
 *     byte more (one command, or a batch of commands that each fit) is
 *     CONS_ETOOBIG with nothing handed out; CONS_ENTRY_BASE_BYTES and
 *     CONS_COMMAND_WRAP_BYTES bound an entry's bytes besides its commands'. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "golden_v1.h"
#include "helpers.h"

#define LE(name) RAFTMQ__LOG__V1__##name
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static struct cons_arena arena;

static void setup(void)
{
	cons__arena_init(&arena);
}

static void teardown(void)
{
	cons__arena_close(&arena);
}

TestSuite(entry, .init = setup, .fini = teardown);

static Raftmq__Log__V1__LogEntry *decode(const void *buf, size_t len)
{
	cons__arena_reset(&arena);
	return cons__entry_decode(&arena, buf, len);
}

/* Decodes buf and checks its commands against want[0..n). */
static Raftmq__Log__V1__LogEntry *decode_expect(const void *buf, size_t len,
						const struct q_cmd *want,
						size_t n, uint64_t t)
{
	Raftmq__Log__V1__LogEntry *e = decode(buf, len);
	size_t i;
	cr_assert_not_null(e, "decode of a fresh entry failed");
	cr_assert_eq(e->format, 1);
	cr_assert_eq(e->leader_time_ms, t);
	cr_assert_geq(e->n_commands, n);
	for (i = 0; i < n; i++) {
		struct q_cmd got;
		int rv = cons__entry_command(e->commands[i], t + 5, &got);
		cr_assert_eq(rv, 0, "command %zu (type %u): %d", i,
			     want[i].type, rv);
		cr_assert_eq(got.now_ms, t + 5, "now_ms is the given stamp");
		th_assert_cmd_eq(&want[i], &got);
	}
	return e;
}

/* --------------------------------------------------------------------------
 * Round trips */

Test(entry, every_type_batched_with_member_and_proposer)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds);
	struct cons_proposer by = {9, UINT64_C(0x8000000000000001), 77};
	Raftmq__Log__V1__SetMember m;
	Raftmq__Log__V1__LogEntry *e;
	struct raft_buffer b;
	struct q_cmd c;
	uint8_t seen[Q_CMD_TYPE_COUNT] = {0};
	size_t i;

	for (i = 0; i < n; i++) {
		seen[cmds[i].type] = 1;
	}
	for (i = 0; i < Q_CMD_TYPE_COUNT; i++) {
		cr_assert(seen[i], "q_cmd type %zu missing from the table", i);
	}
	raftmq__log__v1__set_member__init(&m);
	m.id = 12;
	m.client_address = "node12:5672";
	cr_assert_eq(cons__entry_encode(cmds, n, &m, 1, 1000, &by, &b), 0);
	e = decode_expect(b.base, b.len, cmds, n, 1000);
	cr_assert_eq(e->n_commands, n + 1);
	cr_assert_eq(e->proposer_id, 9);
	cr_assert_eq(e->proposer_boot, UINT64_C(0x8000000000000001));
	cr_assert_eq(e->proposal_seq, 77);
	cr_assert_eq(cons__entry_command(e->commands[n], 1000, &c), 1,
		     "SetMember is a consensus/ command");
	cr_assert_eq(e->commands[n]->set_member->id, 12);
	cr_assert_str_eq(e->commands[n]->set_member->client_address,
			 "node12:5672");
	raft_free(b.base);
}

Test(entry, every_type_alone)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds), i;
	for (i = 0; i < n; i++) {
		struct raft_buffer b = th_encode(&cmds[i], 1, 50 + i);
		Raftmq__Log__V1__LogEntry *e =
			decode_expect(b.base, b.len, &cmds[i], 1, 50 + i);
		cr_assert_eq(e->n_commands, 1);
		cr_assert_eq(e->proposer_id, 0, "no proposer given");
		cr_assert_eq(e->proposer_boot, 0);
		cr_assert_eq(e->proposal_seq, 0);
		raft_free(b.base);
	}
}

Test(entry, set_member_alone)
{
	Raftmq__Log__V1__SetMember m;
	Raftmq__Log__V1__LogEntry *e;
	struct raft_buffer b;
	struct cons_proposer by = {1, 2, 3};
	struct q_cmd c;
	raftmq__log__v1__set_member__init(&m);
	m.id = 4;
	m.client_address = "[::1]:5672";
	cr_assert_eq(cons__entry_encode(NULL, 0, &m, 1, 99, &by, &b), 0);
	e = decode(b.base, b.len);
	cr_assert_not_null(e);
	cr_assert_eq(e->n_commands, 1);
	cr_assert_eq(cons__entry_command(e->commands[0], 99, &c), 1);
	cr_assert_eq(e->commands[0]->set_member->id, 4);
	cr_assert_str_eq(e->commands[0]->set_member->client_address,
			 "[::1]:5672");
	cr_assert_eq(e->proposer_id, 1);
	cr_assert_eq(e->proposer_boot, 2);
	cr_assert_eq(e->proposal_seq, 3);
	raft_free(b.base);
}

Test(entry, one_command_and_member)
{
	/* n = 1 plus a member takes the heap path of the encoder. */
	const struct q_cmd *cmds;
	Raftmq__Log__V1__SetMember m;
	Raftmq__Log__V1__LogEntry *e;
	struct raft_buffer b;
	struct q_cmd c;
	golden_v1_cmds(&cmds);
	raftmq__log__v1__set_member__init(&m);
	m.id = 5;
	m.client_address = "x:1";
	cr_assert_eq(cons__entry_encode(&cmds[1], 1, &m, 1, 7, NULL, &b), 0);
	e = decode_expect(b.base, b.len, &cmds[1], 1, 7);
	cr_assert_eq(e->n_commands, 2);
	cr_assert_eq(cons__entry_command(e->commands[1], 7, &c), 1);
	raft_free(b.base);
}

Test(entry, empty_entry)
{
	struct raft_buffer b = th_encode(NULL, 0, 3);
	Raftmq__Log__V1__LogEntry *e = decode(b.base, b.len);
	cr_assert_not_null(e);
	cr_assert_eq(e->n_commands, 0);
	cr_assert_eq(e->leader_time_ms, 3);
	raft_free(b.base);
}

Test(entry, zero_and_absent_values)
{
	/* proto3 zeros, NULL msg_id, empty body, no dead-letter queue. */
	struct q_cmd cmds[4];
	struct raft_buffer b;
	memset(cmds, 0, sizeof cmds);
	cmds[0].type = Q_CMD_CREATE_QUEUE;
	cmds[0].u.queue.name = "z";
	cmds[1].type = Q_CMD_PUBLISH;
	cmds[1].u.publish.queue = "z";
	cmds[2].type = Q_CMD_PUBLISH;
	cmds[2].u.publish.topic = "t";
	cmds[2].u.publish.body = "";
	cmds[3].type = Q_CMD_ACK; /* no tags */
	b = th_encode(cmds, 4, 0);
	Raftmq__Log__V1__LogEntry *e = decode_expect(b.base, b.len, cmds, 4, 0);
	struct q_cmd got;
	cr_assert_eq(cons__entry_command(e->commands[0], 0, &got), 0);
	cr_assert_null(got.u.queue.settings.dead_letter,
		       "empty dead_letter decodes to NULL (none)");
	cr_assert_eq(cons__entry_command(e->commands[1], 0, &got), 0);
	cr_assert_null(got.u.publish.msg_id, "no msg_id decodes to NULL");
	cr_assert_null(got.u.publish.topic);
	cr_assert_not_null(got.u.publish.body);
	cr_assert_eq(got.u.publish.body_len, 0);
	cr_assert_eq(cons__entry_command(e->commands[3], 0, &got), 0);
	cr_assert_eq(got.u.tags.n_tags, 0);
	raft_free(b.base);
}

Test(entry, max_values)
{
	struct q_cmd c[3];
	struct raft_buffer b;
	memset(c, 0, sizeof c);
	c[0].type = Q_CMD_CREDIT;
	c[0].u.consumer.consumer = UINT64_MAX;
	c[0].u.consumer.prefetch = UINT32_MAX;
	c[0].u.consumer.credit = UINT32_MAX;
	c[1].type = Q_CMD_CREATE_TOPIC;
	c[1].u.topic.topic = "t";
	c[1].u.topic.dedup_window_ms = UINT64_MAX;
	c[2].type = Q_CMD_DETACH_STALE;
	c[2].u.session.session.node_id = UINT64_MAX;
	c[2].u.session.session.epoch = UINT64_MAX;
	b = th_encode(c, 3, UINT64_MAX - 5);
	decode_expect(b.base, b.len, c, 3, UINT64_MAX - 5);
	raft_free(b.base);
}

Test(entry, non_utf8_names_round_trip)
{
	/* protobuf "string" fields carry queue names: bytes that are not
	 * UTF-8 must still decode on every replica. */
	struct q_cmd c;
	struct raft_buffer b;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = "caf\xe9-\xff\xfe";
	c.u.queue.settings.dead_letter = "\xc3\x28";
	b = th_encode(&c, 1, 1);
	decode_expect(b.base, b.len, &c, 1, 1);
	raft_free(b.base);
}

Test(entry, thousand_tags_and_big_batch)
{
	/* Many allocations through the arena (several blocks). */
	enum { N_TAGS = 1000, N_PUB = 2000 };
	static q_seq tags[N_TAGS];
	static struct q_cmd cmds[N_PUB + 1];
	static char bodies[N_PUB][16];
	struct raft_buffer b;
	size_t i;
	for (i = 0; i < N_TAGS; i++) {
		tags[i] = (UINT64_C(1) << (i % 64)) + i;
	}
	for (i = 0; i < N_PUB; i++) {
		snprintf(bodies[i], sizeof bodies[i], "body %zu", i);
		cmds[i].type = Q_CMD_PUBLISH;
		cmds[i].u.publish.queue = "q";
		cmds[i].u.publish.msg_id = bodies[i];
		cmds[i].u.publish.msg_id_len = strlen(bodies[i]);
		cmds[i].u.publish.body = bodies[i];
		cmds[i].u.publish.body_len = strlen(bodies[i]);
	}
	cmds[N_PUB].type = Q_CMD_ACK;
	cmds[N_PUB].u.tags.consumer = 1;
	cmds[N_PUB].u.tags.tags = tags;
	cmds[N_PUB].u.tags.n_tags = N_TAGS;
	b = th_encode(cmds, N_PUB + 1, 1);
	decode_expect(b.base, b.len, cmds, N_PUB + 1, 1);
	/* Twice through the same arena (reset keeps one block). */
	decode_expect(b.base, b.len, cmds, N_PUB + 1, 1);
	raft_free(b.base);
}

Test(entry, unknown_cmd_type_refused_by_encode)
{
	struct q_cmd c[2];
	struct raft_buffer b = {NULL, 0};
	memset(c, 0, sizeof c);
	c[0].type = Q_CMD_TICK;
	c[1].type = Q_CMD_TYPE_COUNT;
	cr_assert_eq(cons__entry_encode(c, 2, NULL, 0, 1, NULL, &b),
		     CONS_EINVAL);
	c[0].type = 200;
	cr_assert_eq(cons__entry_encode(c, 1, NULL, 0, 1, NULL, &b),
		     CONS_EINVAL);
}

/* --------------------------------------------------------------------------
 * Refusals: what this version does not know */

/* Packs a LogEntry of format `format` holding the given commands into an
 * entry buffer (th_wrap(); raft_free() it). */
static struct raft_buffer pack_entry(uint32_t format,
				     Raftmq__Log__V1__Command **cmds, size_t n)
{
	Raftmq__Log__V1__LogEntry e;
	struct raft_buffer b;
	uint8_t *buf;
	size_t len;
	raftmq__log__v1__log_entry__init(&e);
	e.format = format;
	e.leader_time_ms = 10;
	e.commands = cmds;
	e.n_commands = n;
	len = raftmq__log__v1__log_entry__get_packed_size(&e);
	buf = malloc(len + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(raftmq__log__v1__log_entry__pack(&e, buf), len);
	b = th_wrap(buf, len);
	free(buf);
	return b;
}

/* Decodes a one-command entry and returns cons__entry_command()'s code. */
static int command_code(Raftmq__Log__V1__Command *pc)
{
	struct raft_buffer b = pack_entry(1, &pc, 1);
	Raftmq__Log__V1__LogEntry *e = decode(b.base, b.len);
	struct q_cmd c;
	int rv;
	cr_assert_not_null(e);
	cr_assert_eq(e->n_commands, 1);
	rv = cons__entry_command(e->commands[0], 1, &c);
	raft_free(b.base);
	return rv;
}

Test(entry, unknown_or_missing_format)
{
	struct q_cmd tick = {.type = Q_CMD_TICK};
	struct raft_buffer b = th_encode(&tick, 1, 1);
	uint8_t *p = (uint8_t *)b.base + CONS_ENTRY_HEADER;
	/* The encoder writes format first: 08 01. */
	cr_assert_eq(p[0], 0x08);
	cr_assert_eq(p[1], 0x01);
	p[1] = 0x03;
	cr_assert_null(decode(b.base, b.len), "format 3 is unknown");
	p[1] = 0x02;
	cr_assert_not_null(decode(b.base, b.len), "format 2 is a superset");
	p[1] = 0x00;
	cr_assert_null(decode(b.base, b.len), "format 0 is never written");
	p[1] = 0x7f;
	cr_assert_null(decode(b.base, b.len));
	p[1] = 0x01;
	cr_assert_not_null(decode(b.base, b.len), "control: format 1");
	raft_free(b.base);

	b = pack_entry(1, NULL, 0); /* control for pack_entry() */
	cr_assert_not_null(decode(b.base, b.len));
	raft_free(b.base);
	b = pack_entry(0, NULL, 0); /* no format field at all */
	cr_assert_null(decode(b.base, b.len));
	raft_free(b.base);
	cr_assert_null(decode("", 0), "empty bytes");
	b = pack_entry(UINT32_MAX, NULL, 0);
	cr_assert_null(decode(b.base, b.len));
	raft_free(b.base);
}

/* Encodes a tick and c (borrowed) as one entry, which must be of `format`,
 * and c must come back as it went. */
static void encodes_as_format(const struct q_cmd *c, uint32_t format)
{
	struct q_cmd cmds[2], got;
	Raftmq__Log__V1__LogEntry *e;
	struct raft_buffer b;

	memset(&cmds[0], 0, sizeof cmds[0]);
	cmds[0].type = Q_CMD_TICK;
	cmds[1] = *c;
	b = th_encode(cmds, 2, 10);
	e = decode(b.base, b.len);
	cr_assert_not_null(e);
	cr_assert_eq(e->format, format, "command %u: format %u, want %u",
		     c->type, e->format, format);
	cr_assert_eq(cons__entry_command(e->commands[1], 15, &got), 0);
	th_assert_cmd_eq(c, &got);
	raft_free(b.base);
}

/* pc (borrowed) decodes in a format-2 entry and is refused in a format-1
 * one: no format-1 writer put it there, and a format-1 replica would
 * ignore what it carries and diverge. */
static void only_in_format_2(Raftmq__Log__V1__Command *pc)
{
	struct raft_buffer b = pack_entry(2, &pc, 1);
	cr_assert_not_null(decode(b.base, b.len), "control");
	raft_free(b.base);
	b = pack_entry(1, &pc, 1);
	cr_assert_null(decode(b.base, b.len), "unseen in a format-1 entry");
	raft_free(b.base);
}

/* Format 2: Detach.unseen. Written only by an entry that carries it, and
 * refused in a format-1 entry. */
Test(entry, detach_unseen_is_format_2)
{
	static const q_seq unseen[] = {7, 3, UINT64_MAX};
	struct q_cmd c;
	Raftmq__Log__V1__Command pc;
	Raftmq__Log__V1__Detach d;

	memset(&c, 0, sizeof c);
	c.type = Q_CMD_DETACH;
	c.u.consumer.consumer = 5;
	encodes_as_format(&c, 1); /* no unseen tags: still format 1 */
	c.u.consumer.unseen = unseen;
	c.u.consumer.n_unseen = ARRAY_LEN(unseen);
	encodes_as_format(&c, 2);

	raftmq__log__v1__command__init(&pc);
	raftmq__log__v1__detach__init(&d);
	d.consumer = 5;
	d.unseen = (uint64_t *)(uintptr_t)unseen;
	d.n_unseen = ARRAY_LEN(unseen);
	pc.kind_case = LE(COMMAND__KIND_DETACH);
	pc.detach = &d;
	only_in_format_2(&pc);
}

/* Format 2 also carries Release.unseen (a pull delivery the node gives
 * back because nobody waits for it): written only by an entry that has an
 * unseen release, refused in a format-1 entry. A plain release stays
 * format 1, what the previous release wrote. */
Test(entry, release_unseen_is_format_2)
{
	static const q_seq tag = 9;
	struct q_cmd c;
	Raftmq__Log__V1__Command pc;
	Raftmq__Log__V1__Release r;

	memset(&c, 0, sizeof c);
	c.type = Q_CMD_RELEASE;
	c.u.tags.consumer = 5;
	c.u.tags.tags = &tag;
	c.u.tags.n_tags = 1;
	encodes_as_format(&c, 1); /* a plain release: still format 1 */
	c.u.tags.unseen = true;
	encodes_as_format(&c, 2);

	raftmq__log__v1__command__init(&pc);
	raftmq__log__v1__release__init(&r);
	r.consumer = 5;
	r.tags = (uint64_t *)(uintptr_t)&tag;
	r.n_tags = 1;
	r.unseen = true;
	pc.kind_case = LE(COMMAND__KIND_RELEASE);
	pc.release = &r;
	only_in_format_2(&pc);
}

Test(entry, unknown_command_kind)
{
	/* LogEntry{format: 1, commands: [Command{<field N>: {...}}]} built by
	 * hand: a kind from a newer version lands in protobuf-c's unknown
	 * fields and the oneof stays unset. */
	static const uint8_t kind20[] = {0x08, 0x01, 0x1a, 0x05, 0xa2,
					 0x01, 0x02, 0x08, 0x05};
	static const uint8_t kind99[] = {0x08, 0x01, 0x1a, 0x03,
					 0x9a, 0x06, 0x00};
	static const uint8_t kind101[] = {0x08, 0x01, 0x1a, 0x03,
					  0xaa, 0x06, 0x00};
	static const uint8_t no_kind[] = {0x08, 0x01, 0x1a, 0x00};
	/* A known kind followed by an unknown one in the same entry. */
	static const uint8_t mixed[] = {0x08, 0x01, 0x1a, 0x02, 0x0a, 0x00,
					0x1a, 0x03, 0xa2, 0x01, 0x00};
	const struct {
		const uint8_t *b;
		size_t len;
		size_t bad;
	} cases[] = {
		{kind20, sizeof kind20, 0},   {kind99, sizeof kind99, 0},
		{kind101, sizeof kind101, 0}, {no_kind, sizeof no_kind, 0},
		{mixed, sizeof mixed, 1},
	};
	size_t i, j;
	for (i = 0; i < ARRAY_LEN(cases); i++) {
		struct raft_buffer b = th_wrap(cases[i].b, cases[i].len);
		Raftmq__Log__V1__LogEntry *e = decode(b.base, b.len);
		cr_assert_not_null(e, "case %zu: the entry itself decodes", i);
		for (j = 0; j < e->n_commands; j++) {
			struct q_cmd c;
			int rv = cons__entry_command(e->commands[j], 1, &c);
			if (j == cases[i].bad) {
				cr_assert_eq(rv, CONS_ECORRUPT,
					     "case %zu cmd %zu: %d", i, j, rv);
			} else {
				cr_assert_eq(rv, 0, "case %zu cmd %zu", i, j);
				cr_assert_eq(c.type, Q_CMD_TICK);
			}
		}
		raft_free(b.base);
	}
}

Test(entry, unknown_mask_bits)
{
	Raftmq__Log__V1__Command pc;
	Raftmq__Log__V1__ConfigureQueue cq;
	Raftmq__Log__V1__QueueSettings st;
	uint32_t bit;
	raftmq__log__v1__command__init(&pc);
	raftmq__log__v1__configure_queue__init(&cq);
	raftmq__log__v1__queue_settings__init(&st);
	cq.name = "q";
	cq.settings = &st;
	pc.kind_case = LE(COMMAND__KIND_CONFIGURE_QUEUE);
	pc.configure_queue = &cq;
	cq.mask = Q_SET_ALL;
	cr_assert_eq(command_code(&pc), 0, "every known bit is fine");
	for (bit = 8; bit < 32; bit++) {
		cq.mask = (UINT32_C(1) << bit) | Q_SET_TTL;
		cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "bit %u", bit);
	}
}

Test(entry, unknown_overflow_value)
{
	Raftmq__Log__V1__Command pc;
	Raftmq__Log__V1__CreateQueue cq;
	Raftmq__Log__V1__ConfigureQueue cf;
	Raftmq__Log__V1__Subscribe sub;
	Raftmq__Log__V1__QueueSettings st;
	static const int bad[] = {2, 3, 100, -1};
	size_t i;

	raftmq__log__v1__queue_settings__init(&st);
	raftmq__log__v1__create_queue__init(&cq);
	raftmq__log__v1__configure_queue__init(&cf);
	raftmq__log__v1__subscribe__init(&sub);
	cq.name = cf.name = sub.topic = sub.subscription = "q";
	cq.settings = cf.settings = sub.settings = &st;
	cf.mask = Q_SET_OVERFLOW;
	for (i = 0; i < ARRAY_LEN(bad) + 2; i++) {
		int want = i < ARRAY_LEN(bad) ? CONS_ECORRUPT : 0;
		st.overflow =
			(Raftmq__Log__V1__Overflow)(i < ARRAY_LEN(bad)
							    ? bad[i]
							    : (int)(i -
								    ARRAY_LEN(
									    bad)));
		raftmq__log__v1__command__init(&pc);
		pc.kind_case = LE(COMMAND__KIND_CREATE_QUEUE);
		pc.create_queue = &cq;
		cr_assert_eq(command_code(&pc), want, "create, overflow %d",
			     (int)st.overflow);
		pc.kind_case = LE(COMMAND__KIND_CONFIGURE_QUEUE);
		pc.configure_queue = &cf;
		cr_assert_eq(command_code(&pc), want, "configure, overflow %d",
			     (int)st.overflow);
		pc.kind_case = LE(COMMAND__KIND_SUBSCRIBE);
		pc.subscribe = &sub;
		cr_assert_eq(command_code(&pc), want, "subscribe, overflow %d",
			     (int)st.overflow);
	}
}

Test(entry, missing_required_parts)
{
	Raftmq__Log__V1__Command pc;
	Raftmq__Log__V1__CreateQueue cq;
	Raftmq__Log__V1__ConfigureQueue cf;
	Raftmq__Log__V1__Subscribe sub;
	Raftmq__Log__V1__Publish pub;
	Raftmq__Log__V1__Attach at;
	Raftmq__Log__V1__SessionGone sg;

	raftmq__log__v1__command__init(&pc);
	raftmq__log__v1__create_queue__init(&cq);
	cq.name = "q";
	pc.kind_case = LE(COMMAND__KIND_CREATE_QUEUE);
	pc.create_queue = &cq;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no settings");

	raftmq__log__v1__configure_queue__init(&cf);
	cf.name = "q";
	pc.kind_case = LE(COMMAND__KIND_CONFIGURE_QUEUE);
	pc.configure_queue = &cf;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no settings");

	raftmq__log__v1__subscribe__init(&sub);
	sub.topic = sub.subscription = "s";
	pc.kind_case = LE(COMMAND__KIND_SUBSCRIBE);
	pc.subscribe = &sub;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no settings");

	raftmq__log__v1__publish__init(&pub);
	pc.kind_case = LE(COMMAND__KIND_PUBLISH);
	pc.publish = &pub;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no target");

	raftmq__log__v1__attach__init(&at);
	at.queue = "q";
	pc.kind_case = LE(COMMAND__KIND_ATTACH);
	pc.attach = &at;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no session");

	raftmq__log__v1__session_gone__init(&sg);
	pc.kind_case = LE(COMMAND__KIND_SESSION_GONE);
	pc.session_gone = &sg;
	cr_assert_eq(command_code(&pc), CONS_ECORRUPT, "no session");
}

/* --------------------------------------------------------------------------
 * Truncated and corrupted bytes */

/* Decodes and translates every command; only "does not crash" (and no
 * ASan report) is asserted. Returns 1 if the whole entry was usable. */
static int poke(const void *buf, size_t len)
{
	Raftmq__Log__V1__LogEntry *e = decode(buf, len);
	size_t i;
	int ok = 1;
	if (e == NULL) {
		return 0;
	}
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd c;
		int rv = cons__entry_command(e->commands[i], 1, &c);
		cr_assert(rv == 0 || rv == 1 || rv == CONS_ECORRUPT,
			  "unexpected code %d", rv);
		if (rv == CONS_ECORRUPT) {
			ok = 0;
		}
	}
	return ok;
}

static struct raft_buffer sample_entry(void)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds);
	struct cons_proposer by = {1, 2, 3};
	Raftmq__Log__V1__SetMember m;
	struct raft_buffer b;
	raftmq__log__v1__set_member__init(&m);
	m.id = 1;
	m.client_address = "a:1";
	cr_assert_eq(cons__entry_encode(cmds, n, &m, 1, 123456, &by, &b), 0);
	return b;
}

/* The LogEntry length in an entry buffer's header. */
static size_t header_len(const void *buf)
{
	const uint8_t *h = buf;
	return (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
	       (size_t)h[3] << 24;
}

Test(entry, every_prefix)
{
	struct raft_buffer b = sample_entry();
	size_t n = header_len(b.base), cut, usable = 0;
	const uint8_t *payload = (const uint8_t *)b.base + CONS_ENTRY_HEADER;
	for (cut = 0; cut < b.len; cut++) {
		/* A copy of exactly `cut` bytes so ASan sees over-reads. */
		uint8_t *p = malloc(cut > 0 ? cut : 1);
		memcpy(p, b.base, cut);
		if (cut < CONS_ENTRY_HEADER + n) {
			cr_assert_null(decode(p, cut),
				       "cut %zu: the header says %zu bytes",
				       cut, n);
		} else {
			cr_assert(poke(p, cut), "cut %zu: only padding cut",
				  cut);
		}
		free(p);
	}
	/* The header refuses every cut above before protobuf-c sees it: cut
	 * the LogEntry itself and re-frame it, so the decoder meets truncated
	 * messages too (exactly CONS_ENTRY_HEADER + cut bytes, no padding,
	 * so ASan sees over-reads). */
	for (cut = 0; cut < n; cut++) {
		struct raft_buffer w = th_wrap(payload, cut);
		uint8_t *p = malloc(CONS_ENTRY_HEADER + cut);
		memcpy(p, w.base, CONS_ENTRY_HEADER + cut);
		raft_free(w.base);
		usable += (size_t)poke(p, CONS_ENTRY_HEADER + cut);
		free(p);
	}
	cr_assert(poke(b.base, b.len));
	cr_log_info(
		"%zu of %zu LogEntry prefixes decode (cuts at field "
		"boundaries)",
		usable, n);
	raft_free(b.base);
}

Test(entry, random_byte_flips)
{
	struct raft_buffer b = sample_entry();
	uint64_t seed = th_seed(1), rng = seed;
	uint8_t *p = malloc(b.len);
	unsigned iter, refused = 0;
	for (iter = 0; iter < 20000; iter++) {
		unsigned k, flips = 1 + (unsigned)(th_rand(&rng) % 4);
		memcpy(p, b.base, b.len);
		for (k = 0; k < flips; k++) {
			size_t at = th_rand(&rng) % b.len;
			p[at] ^= (uint8_t)(1 + th_rand(&rng) % 255);
		}
		refused += (unsigned)!poke(p, b.len);
	}
	cr_log_info("seed %llu: %u of 20000 corrupted entries refused",
		    (unsigned long long)seed, refused);
	free(p);
	raft_free(b.base);
}

Test(entry, random_bytes)
{
	uint64_t rng = th_seed(2);
	uint8_t buf[256];
	unsigned iter;
	for (iter = 0; iter < 20000; iter++) {
		size_t len = th_rand(&rng) % sizeof buf, i;
		uint8_t *p;
		for (i = 0; i < len; i++) {
			buf[i] = (uint8_t)th_rand(&rng);
		}
		if (len >= CONS_ENTRY_HEADER + 2 && iter % 2 == 0) {
			/* A valid header (a length within the buffer, zero
			 * reserved bytes) and format 1 so decode goes
			 * further. */
			size_t n = 2 + th_rand(&rng) %
					       (len - CONS_ENTRY_HEADER - 1);
			buf[0] = (uint8_t)n;
			buf[1] = (uint8_t)(n >> 8);
			buf[2] = buf[3] = 0;
			buf[4] = buf[5] = buf[6] = buf[7] = 0;
			buf[CONS_ENTRY_HEADER] = 0x08;
			buf[CONS_ENTRY_HEADER + 1] = 0x01;
		}
		/* Exactly len bytes so ASan sees over-reads. */
		p = malloc(len > 0 ? len : 1);
		memcpy(p, buf, len);
		poke(p, len);
		free(p);
	}
}

/* --------------------------------------------------------------------------
 * Framing: the 8-byte header and the zero padding */

/* Checks an encoded buffer's framing against the LogEntry it holds (packed
 * again from its decoding) and that th_wrap() frames it the same way.
 * Returns the padding length. */
static size_t assert_framing(const struct raft_buffer *b)
{
	const uint8_t *h = b->base;
	Raftmq__Log__V1__LogEntry *e;
	struct raft_buffer w;
	uint8_t *packed;
	size_t n, len, i;

	cr_assert_geq(b->len, CONS_ENTRY_HEADER);
	cr_assert_eq(b->len % 8, 0, "entry length %zu is not a multiple of 8",
		     b->len);
	cr_assert(h[4] == 0 && h[5] == 0 && h[6] == 0 && h[7] == 0,
		  "reserved header bytes are zero");
	n = header_len(h);
	cr_assert_leq(CONS_ENTRY_HEADER + n, b->len);
	cr_assert_eq(b->len, (CONS_ENTRY_HEADER + n + 7) & ~(size_t)7,
		     "%zu bytes for a %zu-byte LogEntry: not the least "
		     "multiple of 8",
		     b->len, n);
	for (i = CONS_ENTRY_HEADER + n; i < b->len; i++) {
		cr_assert_eq(h[i], 0, "padding byte %zu is %#x", i, h[i]);
	}
	/* The header's length is the LogEntry's. */
	e = decode(b->base, b->len);
	cr_assert_not_null(e);
	len = raftmq__log__v1__log_entry__get_packed_size(e);
	cr_assert_eq(n, len, "header says %zu, the LogEntry is %zu bytes", n,
		     len);
	packed = malloc(len > 0 ? len : 1);
	cr_assert_not_null(packed);
	cr_assert_eq(raftmq__log__v1__log_entry__pack(e, packed), len);
	cr_assert(memcmp(packed, h + CONS_ENTRY_HEADER, len) == 0);
	free(packed);
	/* Without its padding it decodes the same. */
	cr_assert_not_null(decode(b->base, CONS_ENTRY_HEADER + n));
	/* The tests' hand-crafted entries are framed like the encoder's. */
	w = th_wrap(h + CONS_ENTRY_HEADER, n);
	cr_assert_eq(w.len, b->len);
	cr_assert(memcmp(w.base, b->base, b->len) == 0,
		  "th_wrap() differs from cons__entry_encode()");
	raft_free(w.base);
	return b->len - CONS_ENTRY_HEADER - n;
}

Test(entry, encoded_length_is_multiple_of_8_with_zero_padding)
{
	static const char body[] = "0123456789abcdef";
	unsigned seen = 0;
	struct raft_buffer b;
	size_t k;

	/* Bodies of 0..16 bytes move the LogEntry through every length
	 * modulo 8, so every padding length from 0 to 7 occurs. */
	for (k = 0; k <= 16; k++) {
		struct q_cmd c;
		memset(&c, 0, sizeof c);
		c.type = Q_CMD_PUBLISH;
		c.u.publish.queue = "q";
		c.u.publish.body = body;
		c.u.publish.body_len = k;
		b = th_encode(&c, 1, 1000);
		seen |= 1u << assert_framing(&b);
		raft_free(b.base);
	}
	cr_assert_eq(seen, 0xffu, "padding lengths seen: %#x", seen);

	b = th_encode(NULL, 0, 0);
	cr_assert_eq(b.len % 8, 0);
	assert_framing(&b);
	raft_free(b.base);
	b = sample_entry();
	assert_framing(&b);
	raft_free(b.base);
}

Test(entry, header_shorter_than_8_bytes)
{
	struct raft_buffer b = sample_entry();
	struct raft_buffer w;
	size_t cut;
	for (cut = 0; cut < CONS_ENTRY_HEADER; cut++) {
		/* Exactly `cut` bytes so ASan sees over-reads. */
		uint8_t *p = malloc(cut > 0 ? cut : 1);
		memcpy(p, b.base, cut);
		cr_assert_null(decode(p, cut), "%zu bytes", cut);
		free(p);
	}
	/* Short buffers whose bytes would be a fine LogEntry: 08 01 is
	 * {format: 1}, which framed decodes. */
	w = th_wrap("\x08\x01", 2);
	cr_assert_not_null(decode(w.base, w.len), "control: framed");
	raft_free(w.base);
	cr_assert_null(decode("\x08\x01", 2), "no header");
	cr_assert_null(decode("\x02\x00\x00\x00\x00\x00\x08", 7), "7 bytes");
	raft_free(b.base);
}

Test(entry, header_length_past_the_buffer)
{
	struct raft_buffer b = sample_entry();
	size_t n = header_len(b.base), exact = CONS_ENTRY_HEADER + n, i;
	uint8_t *h = b.base;
	uint8_t *p = malloc(exact); /* no padding: ASan sees over-reads */
	const uint32_t lens[] = {
		(uint32_t)(n + 1),
		(uint32_t)(b.len - CONS_ENTRY_HEADER + 1),
		(uint32_t)b.len,
		UINT32_C(0x7fffffff),
		UINT32_C(0x80000000) | (uint32_t)n,
		UINT32_MAX,
	};
	memcpy(p, b.base, exact);
	cr_assert_not_null(decode(p, exact), "control: unpadded");
	cr_assert_not_null(decode(b.base, b.len), "control: padded");
	for (i = 0; i < ARRAY_LEN(lens); i++) {
		uint32_t l = lens[i];
		p[0] = h[0] = (uint8_t)l;
		p[1] = h[1] = (uint8_t)(l >> 8);
		p[2] = h[2] = (uint8_t)(l >> 16);
		p[3] = h[3] = (uint8_t)(l >> 24);
		if (l > exact - CONS_ENTRY_HEADER) {
			cr_assert_null(decode(p, exact), "length %#x in %zu", l,
				       exact);
		}
		if (l > b.len - CONS_ENTRY_HEADER) {
			cr_assert_null(decode(b.base, b.len),
				       "length %#x in %zu", l, b.len);
		}
	}
	free(p);
	raft_free(b.base);
}

Test(entry, header_reserved_bytes_must_be_zero)
{
	static const uint8_t vals[] = {0x01, 0x80, 0xff};
	struct raft_buffer b = sample_entry();
	uint8_t *h = b.base;
	size_t at, v;
	cr_assert_not_null(decode(b.base, b.len), "control");
	for (at = 4; at < CONS_ENTRY_HEADER; at++) {
		for (v = 0; v < ARRAY_LEN(vals); v++) {
			h[at] = vals[v];
			cr_assert_null(decode(b.base, b.len),
				       "reserved byte %zu = %#x", at, vals[v]);
		}
		h[at] = 0;
		cr_assert_not_null(decode(b.base, b.len));
	}
	raft_free(b.base);
}

/* --------------------------------------------------------------------------
 * Golden file */

/* Pinned: entry-v1.bin must never be regenerated (golden_v1.h). It was
 * once, before 0.1.0 was released, when entry buffers got their 8-byte
 * header and padding: the 430-byte LogEntry inside is the one of the first
 * file, byte for byte. */
#define ENTRY_V1_LEN 440
#define ENTRY_V1_LOGENTRY_LEN 430
#define ENTRY_V1_XXH3 UINT64_C(0xe8d0d406f120fb9a)

Test(entry, golden_v1_decodes_forever)
{
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds), len;
	void *buf;
	Raftmq__Log__V1__LogEntry *e;
	struct q_cmd c;

	th_read_data("entry-v1.bin", &buf, &len);
	cr_assert_eq(len, ENTRY_V1_LEN, "entry-v1.bin was rewritten");
	cr_assert_eq(XXH3_64bits(buf, len), ENTRY_V1_XXH3,
		     "entry-v1.bin was rewritten");
	cr_assert_eq(header_len(buf), ENTRY_V1_LOGENTRY_LEN);
	e = decode_expect(buf, len, cmds, n, GOLDEN_V1_TIME_MS);
	cr_assert_eq(e->n_commands, n + 1);
	cr_assert_eq(e->proposer_id, GOLDEN_V1_PROPOSER_ID);
	cr_assert_eq(e->proposer_boot, GOLDEN_V1_PROPOSER_BOOT);
	cr_assert_eq(e->proposal_seq, GOLDEN_V1_PROPOSER_SEQ);
	cr_assert_eq(cons__entry_command(e->commands[n], 0, &c), 1);
	cr_assert_eq(e->commands[n]->set_member->id, GOLDEN_V1_MEMBER_ID);
	cr_assert_str_eq(e->commands[n]->set_member->client_address,
			 GOLDEN_V1_MEMBER_ADDR);
	free(buf);
}

Test(entry, golden_v1_encoder_unchanged)
{
	/* While format 1 is what the leader writes, today's encoder must
	 * produce the same bytes. When a format 2 replaces it, delete this
	 * test, never the one above. */
	const struct q_cmd *cmds;
	size_t n = golden_v1_cmds(&cmds), len;
	struct cons_proposer by = {GOLDEN_V1_PROPOSER_ID,
				   GOLDEN_V1_PROPOSER_BOOT,
				   GOLDEN_V1_PROPOSER_SEQ};
	Raftmq__Log__V1__SetMember m;
	struct raft_buffer b;
	void *buf;
	raftmq__log__v1__set_member__init(&m);
	m.id = GOLDEN_V1_MEMBER_ID;
	m.client_address = GOLDEN_V1_MEMBER_ADDR;
	cr_assert_eq(
		cons__entry_encode(cmds, n, &m, 1, GOLDEN_V1_TIME_MS, &by, &b),
		0);
	th_read_data("entry-v1.bin", &buf, &len);
	cr_assert_eq(b.len, len);
	cr_assert(memcmp(b.base, buf, len) == 0);
	free(buf);
	raft_free(b.base);
}

/* --------------------------------------------------------------------------
 * Poison entries: what encode accepts must decode everywhere */

/* Encodes cmd; if encode accepts it, every replica must be able to apply
 * it, or the committed entry stops the whole cluster for good. */
static void assert_encode_refuses_or_decodes(const struct q_cmd *cmd,
					     const char *what)
{
	struct raft_buffer b = {NULL, 0};
	Raftmq__Log__V1__LogEntry *e;
	struct q_cmd c;
	int rv = cons__entry_encode(cmd, 1, NULL, 0, 1, NULL, &b);
	if (rv != 0) {
		cr_assert_eq(rv, CONS_EINVAL, "%s: encode %d", what, rv);
		return;
	}
	e = decode(b.base, b.len);
	cr_assert_not_null(e, "%s: encode accepted an undecodable entry", what);
	rv = cons__entry_command(e->commands[0], 1, &c);
	raft_free(b.base);
	cr_assert_eq(rv, 0,
		     "%s: cons__entry_encode() accepted a command that "
		     "cons__entry_command() refuses (%d): committed, it "
		     "aborts every replica on apply, again after restart",
		     what, rv);
}

Test(entry, encode_never_writes_a_poison_entry)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.u.queue.name = "q";
	c.u.queue.settings.overflow = 2;
	assert_encode_refuses_or_decodes(&c, "CREATE_QUEUE overflow 2");

	memset(&c, 0, sizeof c);
	c.type = Q_CMD_SUBSCRIBE;
	c.u.topic.topic = "t";
	c.u.topic.subscription = "s";
	c.u.topic.settings.overflow = 0xff;
	assert_encode_refuses_or_decodes(&c, "SUBSCRIBE overflow 255");

	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CONFIGURE_QUEUE;
	c.u.queue.name = "q";
	c.u.queue.mask = 1u << 8;
	assert_encode_refuses_or_decodes(&c, "CONFIGURE_QUEUE mask 0x100");
}

/* --------------------------------------------------------------------------
 * The size cap (CONS_MAX_ENTRY_BYTES, CONS_ETOOBIG)
 *
 * The header keeps the LogEntry length in 32 bits, and raft_uv its entry
 * lengths too: an entry past the cap must be refused before it reaches
 * raft_apply(), whole (never cut or wrapped). */

/* A publish of `len` bytes of body to queue "q" (body: a malloc()ed buffer
 * the caller frees). */
static void big_publish(struct q_cmd *c, size_t len, void **body)
{
	*body = malloc(len);
	cr_assert_not_null(*body);
	memset(*body, 'x', len);
	memset(c, 0, sizeof *c);
	c->type = Q_CMD_PUBLISH;
	c->u.publish.queue = "q";
	c->u.publish.body = *body;
	c->u.publish.body_len = len;
}

Test(entry, cap_refuses_an_entry_over_64_mib, .timeout = 60)
{
	struct q_cmd c;
	struct raft_buffer b = {NULL, 0};
	void *body;

	cr_assert_eq(CONS_MAX_ENTRY_BYTES, (size_t)64 << 20);
	/* One publish of B body bytes (B needs a 4-byte varint) packs as a
	 * LogEntry of B + 22 bytes: format 2, leader_time_ms 1 (2 bytes),
	 * commands tag + length 1 + 4, Command.publish tag + length 1 + 4,
	 * queue "q" 3, body tag + length 1 + 4. With the 8-byte header the
	 * entry is B + 30 bytes: B = cap - 30 is the largest that fits. */
	big_publish(&c, CONS_MAX_ENTRY_BYTES - 30, &body);
	cr_assert_eq(cons__entry_encode(&c, 1, NULL, 0, 1, NULL, &b), 0);
	cr_assert_eq(b.len, CONS_MAX_ENTRY_BYTES, "the largest entry: %zu",
		     b.len);
	decode_expect(b.base, b.len, &c, 1, 1);
	raft_free(b.base);
	free(body);

	/* One byte more is refused, and nothing is handed out. */
	big_publish(&c, CONS_MAX_ENTRY_BYTES - 29, &body);
	b.base = NULL;
	b.len = 0;
	cr_assert_eq(cons__entry_encode(&c, 1, NULL, 0, 1, NULL, &b),
		     CONS_ETOOBIG);
	cr_assert_null(b.base);
	cr_assert_eq(b.len, 0);
	free(body);
	cr_assert_str_eq(cons_strerror(CONS_ETOOBIG),
			 "log entry over the 64 MiB limit");
}

Test(entry, cap_counts_the_whole_batch, .timeout = 60)
{
	/* Two commands that each fit, 80 MiB together: the batch is refused
	 * as a whole (a replica never sees part of it). */
	struct q_cmd c[2];
	struct raft_buffer b = {NULL, 0};
	void *body[2];
	big_publish(&c[0], (size_t)40 << 20, &body[0]);
	big_publish(&c[1], (size_t)40 << 20, &body[1]);
	cr_assert_eq(cons__entry_encode(&c[0], 1, NULL, 0, 1, NULL, &b), 0);
	raft_free(b.base);
	b.base = NULL;
	b.len = 0;
	cr_assert_eq(cons__entry_encode(c, 2, NULL, 0, 1, NULL, &b),
		     CONS_ETOOBIG);
	cr_assert_null(b.base);
	free(body[0]);
	free(body[1]);
}

Test(entry, base_and_wrap_bounds_hold)
{
	/* CONS_ENTRY_BASE_BYTES and CONS_COMMAND_WRAP_BYTES bound what node/
	 * adds to its request sizes when it sizes batches: an entry of n
	 * commands is at most BASE + sum(command body + WRAP). Checked with
	 * the largest values every field can take. */
	struct q_cmd c[3];
	struct raft_buffer b;
	struct cons_proposer by = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
	Raftmq__Log__V1__Publish p;
	Raftmq__Log__V1__Ack a;
	static char body[300];
	static q_seq tags[50];
	size_t i, bodies = 0;
	memset(c, 0, sizeof c);
	memset(tags, 0xff, sizeof tags);
	for (i = 0; i < 2; i++) {
		c[i].type = Q_CMD_PUBLISH;
		c[i].u.publish.queue = "queue";
		c[i].u.publish.body = body;
		c[i].u.publish.body_len = i == 0 ? 1 : sizeof body;
		c[i].u.publish.delay_ms = UINT64_MAX;
		c[i].u.publish.ttl_ms = UINT64_MAX;
		raftmq__log__v1__publish__init(&p);
		p.target_case = RAFTMQ__LOG__V1__PUBLISH__TARGET_QUEUE;
		p.queue = (char *)"queue";
		p.body.data = (uint8_t *)body;
		p.body.len = c[i].u.publish.body_len;
		p.delay_ms = p.ttl_ms = UINT64_MAX;
		bodies += raftmq__log__v1__publish__get_packed_size(&p);
	}
	c[2].type = Q_CMD_ACK;
	c[2].u.tags.consumer = UINT64_MAX;
	c[2].u.tags.tags = tags;
	c[2].u.tags.n_tags = ARRAY_LEN(tags);
	raftmq__log__v1__ack__init(&a);
	a.consumer = UINT64_MAX;
	a.tags = tags;
	a.n_tags = ARRAY_LEN(tags);
	bodies += raftmq__log__v1__ack__get_packed_size(&a);
	cr_assert_eq(cons__entry_encode(c, 3, NULL, 0, UINT64_MAX, &by, &b), 0);
	cr_assert_leq(
		b.len,
		CONS_ENTRY_BASE_BYTES + bodies + 3 * CONS_COMMAND_WRAP_BYTES,
		"%zu bytes for %zu bytes of commands", b.len, bodies);
	raft_free(b.base);
}
