/* Bodies out of memory (struct q_bodies, q.h) and the dump formats: what a
 * delivery carries in each mode, when put, drop and claim are called, that
 * a failed put or a failed load leaves nothing behind, the memory a waiting
 * message costs, and the format 1 fixture (tests/data/queue/state-v1.bin)
 * loading with and without a body interface. Each test picks its mode
 * (h_env_init_mode), so both builds run the same thing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"
#include "state_v1.h"

#define STORE true
#define MEMORY false

/* The last delivery as apply reported it (its pointers are only compared
 * with NULL once the sink returned). */
static struct q_delivery raw;
static const void *raw_body, *raw_id;
static int raw_calls;

static void raw_deliver(void *data, const struct q_delivery *d)
{
	(void)data;
	raw = *d;
	raw_body = d->body;
	raw_id = d->msg_id;
	raw_calls++;
}

static const struct q_sink raw_sink = {NULL, raw_deliver, NULL};

TestSuite(bodies);

/* Publishes "hello" with msg id "id-1" and delivers it through raw_sink;
 * returns its seq. */
static q_seq deliver_one(bool store)
{
	struct h_env e;
	q_seq seq;

	h_env_init_mode(&e, NULL, store);
	q_state_set_sink(e.s, &raw_sink);
	h_create_queue(e.s, "q", NULL, 1);
	seq = h_publish(e.s, "q", "id-1", "hello", 2).seq;
	h_attach(e.s, "q", 0, 3);
	cr_assert_eq(raw_calls, 1);
	cr_assert_eq(raw.body_len, 5);
	cr_assert_eq(raw.msg_id_len, 4);
	q_state_set_sink(e.s, &e.sink);
	h_check(e.s);
	h_env_fini(&e);
	return seq;
}

Test(bodies, a_delivery_carries_the_key_and_checksum_not_the_bytes)
{
	q_seq seq = deliver_one(STORE);

	cr_assert_null(raw_body);
	cr_assert_null(raw_id);
	cr_assert_eq(raw.body_key, seq);
	cr_assert_eq(raw.body_sum, fb_sum("id-1", 4, "hello", 5));
}

Test(bodies, in_memory_a_delivery_has_the_bytes_the_key_and_no_checksum)
{
	q_seq seq = deliver_one(MEMORY);

	cr_assert_not_null(raw_body);
	cr_assert_not_null(raw_id);
	cr_assert_eq(raw.body_key, seq);
	cr_assert_eq(raw.body_sum, 0);
}

static int peeked(void *data, const struct q_peeked *p)
{
	*(struct q_delivery *)data = p->msg;
	return 0;
}

Test(bodies, a_peek_carries_the_key_and_checksum)
{
	struct h_env e;
	struct q_delivery d;
	struct q_result r;

	h_env_init_mode(&e, NULL, STORE);
	h_create_queue(e.s, "q", NULL, 1);
	r = h_publish(e.s, "q", NULL, "peek me", 2);
	cr_assert_eq(q_state_peek(e.s, "q", 0, 10, 0, peeked, &d), 0);
	cr_assert_null(d.body);
	cr_assert_eq(d.body_len, 7);
	cr_assert_eq(d.body_key, r.seq);
	cr_assert_eq(d.body_sum, fb_sum(NULL, 0, "peek me", 7));
	h_env_fini(&e);
}

/* One put for a topic publish, whatever the number of copies; the drop
 * waits for the last copy. */
Test(bodies, a_fan_out_stores_one_body_dropped_with_its_last_copy)
{
	struct h_env e;
	struct q_result r;
	q_consumer_id c[3];
	const char *subs[3] = {"a", "b", "c"}, *qs[3] = {"t:a", "t:b", "t:c"};
	int i;

	h_env_init_mode(&e, NULL, STORE);
	h_create_topic(e.s, "t", 0, 1);
	for (i = 0; i < 3; i++) {
		struct q_settings st = h_plain();
		h_subscribe(e.s, "t", subs[i], &st, 1);
		c[i] = h_attach(e.s, qs[i], 0, 1);
	}
	r = h_publish_topic(e.s, "t", "m", "fan", 2);
	cr_assert_eq(e.fb.puts, 1);
	cr_assert_eq(h_totals(e.s).bodies, 1);
	cr_assert_eq(h_totals(e.s).messages, 3);
	cr_assert_eq(e.rec.n_d, 3);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(e.rec.d[i].body_key, r.seq);
		cr_assert_str_eq(e.rec.d[i].body, "fan");
		cr_assert_str_eq(e.rec.d[i].msg_id, "m");
	}
	for (i = 0; i < 3; i++) {
		cr_assert_eq(h_ack1(e.s, c[i], r.seq, 3).status, Q_OK);
		cr_assert_eq(e.fb.drops, i == 2, "ack %d", i);
		h_check(e.s);
	}
	cr_assert_eq(e.fb.last_dropped, r.seq);
	cr_assert_eq(h_totals(e.s).stored_bytes, 0);
	h_env_fini(&e);
}

Test(bodies, a_dead_lettered_copy_keeps_its_body_and_key)
{
	struct h_env e;
	struct q_settings st = h_plain();
	struct q_result r;
	q_consumer_id c;

	h_env_init_mode(&e, NULL, STORE);
	st.max_deliveries = 1;
	st.dead_letter = "dlq";
	h_create_queue(e.s, "dlq", NULL, 1);
	h_create_queue(e.s, "q", &st, 1);
	c = h_attach(e.s, "q", 0, 1);
	r = h_publish(e.s, "q", NULL, "doomed", 2);
	cr_assert_eq(h_nack1(e.s, c, r.seq, 0, 3).status, Q_OK);
	cr_assert_eq(h_info(e.s, "dlq").ready, 1);
	cr_assert_eq(e.fb.puts, 1);
	cr_assert_eq(e.fb.drops, 0);
	h_attach(e.s, "dlq", 0, 4);
	cr_assert_neq(h_rec_last(&e.rec)->seq, r.seq, "a fresh seq");
	cr_assert_eq(h_rec_last(&e.rec)->body_key, r.seq);
	cr_assert_str_eq(h_rec_last(&e.rec)->body, "doomed");
	h_check(e.s);
	h_env_fini(&e);
}

/* Every way out of the state drops the body once, and only then. */
Test(bodies, every_way_out_drops_the_body)
{
	struct h_env e;
	struct q_settings ttl = h_plain(), dh = h_plain();
	struct h_pub short_ttl = {.ttl_ms = 5};

	h_env_init_mode(&e, NULL, STORE);
	dh.overflow = Q_OVERFLOW_DROP_HEAD;
	dh.max_length = 1;
	h_create_queue(e.s, "purged", NULL, 1);
	h_create_queue(e.s, "deleted", NULL, 1);
	h_create_queue(e.s, "expiring", &ttl, 1);
	h_create_queue(e.s, "trimmed", &dh, 1);
	h_create_topic(e.s, "t", 0, 1);
	h_subscribe(e.s, "t", "gone", NULL, 1);
	h_create_topic(e.s, "u", 0, 1);
	h_subscribe(e.s, "u", "s", NULL, 1);

	h_publish(e.s, "purged", NULL, "1", 2);
	h_publish(e.s, "deleted", NULL, "2", 2);
	h_publish_ex(e.s, "expiring", NULL, "3", &short_ttl, 2);
	h_publish(e.s, "trimmed", NULL, "4", 2);
	h_publish_topic(e.s, "t", NULL, "5", 2);
	h_publish_topic(e.s, "u", NULL, "6", 2);
	cr_assert_eq(e.fb.puts, 6);

	h_purge(e.s, "purged", 3);
	cr_assert_eq(e.fb.drops, 1);
	h_delete_queue(e.s, "deleted", 3);
	cr_assert_eq(e.fb.drops, 2);
	h_tick(e.s, 10);
	cr_assert_eq(e.fb.drops, 3, "expired with no dead-letter queue");
	h_publish(e.s, "trimmed", NULL, "7", 11);
	cr_assert_eq(e.fb.drops, 4, "drop-head");
	h_unsubscribe(e.s, "t", "gone", 12);
	cr_assert_eq(e.fb.drops, 5);
	h_delete_topic(e.s, "u", 12);
	cr_assert_eq(e.fb.drops, 6);
	cr_assert_eq(h_totals(e.s).bodies, 1, "the new one in trimmed");
	h_check(e.s);
	h_env_fini(&e);
}

Test(bodies, freeing_the_state_drops_nothing)
{
	struct fb_state fb;
	struct q_options o;
	struct q_state *s;

	fb_init(&fb);
	memset(&o, 0, sizeof o);
	o.bodies = &fb.vt;
	s = q_state_new(&o);
	cr_assert_not_null(s);
	h_create_queue(s, "q", NULL, 1);
	h_publish(s, "q", NULL, "kept", 2);
	h_publish(s, "q", NULL, "kept too", 2);
	q_state_free(s);
	cr_assert_eq(fb.puts, 2);
	cr_assert_eq(fb.drops, 0, "the snapshot still refers to them");
	cr_assert(fb_ok(&fb), "%s", fb.err);
	fb_fini(&fb);
	cr_assert_eq(fb_store_count(), 0);
}

/* A failed put: Q_EIO, and the state, its references, its memory, the sink
 * and the next seq as if the publish never came. */
static void put_fails(const struct q_cmd *cmd)
{
	struct h_env e;
	struct q_result r;
	struct q_totals before, after;
	void *dump;
	size_t len;
	long puts, live;

	h_env_init_mode(&e, NULL, STORE);
	h_create_queue(e.s, "q", NULL, 1);
	h_create_topic(e.s, "t", 60000, 1);
	h_subscribe(e.s, "t", "a", NULL, 1);
	h_subscribe(e.s, "t", "b", NULL, 1);
	h_attach(e.s, "q", 0, 1);
	h_attach(e.s, "t:a", 0, 1);
	/* Ids in both dedup tables, so that they exist already: a failed
	 * apply may keep capacity it allocated, and none is needed here. */
	h_publish(e.s, "q", "old", "x", 2);
	h_publish_topic(e.s, "t", "old", "y", 2);
	h_rec_clear(&e.rec);
	dump = h_dump(e.s, &len);
	before = h_totals(e.s);
	puts = e.fb.puts;
	live = (long)e.fb.live.n;

	e.fb.fail_put_at = e.fb.put_calls;
	cr_assert_eq(h_apply_rv(e.s, cmd, &r), Q_EIO);
	cr_assert_eq(r.status, 0, "result cleared");
	cr_assert_eq(r.seq, 0);
	cr_assert(h_dump_is(e.s, dump, len), "state changed");
	after = h_totals(e.s);
	cr_assert_eq(after.alloc_bytes, before.alloc_bytes, "memory kept");
	cr_assert_eq(after.alloc_blocks, before.alloc_blocks);
	cr_assert_eq(e.rec.n_d, 0, "sink called");
	cr_assert_eq(e.fb.puts, puts);
	cr_assert_eq((long)e.fb.live.n, live);
	cr_assert_eq(e.fb.drops, 0);
	h_check(e.s);

	/* The store works again: the same publish goes through, as the first
	 * (its seq was not used up, its msg id not remembered). */
	r = h_apply(e.s, cmd);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_not(r.duplicate);
	cr_assert_eq(r.seq, 3);
	cr_assert_gt(e.rec.n_d, 0);
	h_check(e.s);
	free(dump);
	h_env_fini(&e);
}

Test(bodies, a_failed_put_is_eio_and_changes_nothing)
{
	struct q_cmd c;

	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.now_ms = 3;
	c.u.publish.queue = "q";
	c.u.publish.msg_id = "new";
	c.u.publish.msg_id_len = 3;
	c.u.publish.body = "body";
	c.u.publish.body_len = 4;
	put_fails(&c);
	c.u.publish.queue = NULL;
	c.u.publish.topic = "t";
	c.u.publish.ttl_ms = 100;
	put_fails(&c);
}

Test(bodies, totals_count_stored_bytes_and_allocations)
{
	struct h_env m, s;
	struct q_totals t0, t1;
	struct q_settings st = h_plain();

	h_env_init_mode(&m, NULL, MEMORY);
	h_env_init_mode(&s, NULL, STORE);
	st.max_bytes = 5;
	h_create_queue(m.s, "q", &st, 1);
	h_create_queue(s.s, "q", &st, 1);
	t0 = h_totals(s.s);
	h_publish(m.s, "q", "ab", "xyz", 2);
	h_publish(s.s, "q", "ab", "xyz", 2);
	t1 = h_totals(s.s);
	cr_assert_eq(t1.body_bytes, 3);
	cr_assert_eq(t1.stored_bytes, 5, "body and id bytes in the store");
	cr_assert_eq(h_totals(m.s).stored_bytes, 0);
	cr_assert_eq(h_totals(m.s).body_bytes, 3);
	/* A message that waits is one allocation (its body shares it) and no
	 * byte of it is the body's. */
	cr_assert_eq(t1.alloc_blocks, t0.alloc_blocks + 1);
	cr_assert_lt(t1.alloc_bytes - t0.alloc_bytes, 100);
	/* Limits count body bytes with the bodies in the store too. */
	cr_assert_eq(h_info(s.s, "q").bytes, 3);
	cr_assert_eq(h_publish(s.s, "q", NULL, "zzz", 3).status, Q_EFULL);
	cr_assert_eq(h_publish(m.s, "q", NULL, "zzz", 3).status, Q_EFULL);
	h_env_fini(&m);
	h_env_fini(&s);
}

/* The target of bench/q_bench: with bodies in a store, a waiting message
 * costs at most 150 B of state, malloc's headers counted (16 B per block
 * on average on glibc x86_64). A delivered one gets its side struct. */
Test(bodies, a_waiting_message_costs_at_most_150_bytes)
{
	static char body[1024];
	struct h_env e;
	struct q_totals t0, t1, t2;
	double per;
	int i;

	h_env_init_mode(&e, NULL, STORE);
	h_create_queue(e.s, "q", NULL, 1);
	cr_assert_eq(h_attach_ex(e.s, "q", H_SESSION, 0, 0, 1).consumer, 1);
	t0 = h_totals(e.s);
	for (i = 0; i < 1000; i++)
		h_publish_bin(e.s, "q", NULL, body, sizeof body, 2);
	t1 = h_totals(e.s);
	per = (double)(t1.alloc_bytes - t0.alloc_bytes +
		       16 * (t1.alloc_blocks - t0.alloc_blocks)) /
	      1000;
	cr_assert_leq(per, 150, "%.1f B per waiting message", per);
	h_credit(e.s, 1, 0, 10, 3);
	t2 = h_totals(e.s);
	cr_assert_eq(t2.alloc_blocks, t1.alloc_blocks + 10,
		     "a side struct per delivery");
	h_env_fini(&e);
}

Test(bodies, a_body_over_4_gib_is_too_big)
{
	struct h_env e;
	struct q_cmd c;
	struct q_result r;

	h_env_init_mode(&e, NULL, STORE);
	h_create_queue(e.s, "q", NULL, 1);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.u.publish.queue = "q";
	c.u.publish.body = "x"; /* never read: refused before */
	c.u.publish.body_len = (size_t)UINT32_MAX + 1;
	r = h_apply(e.s, &c);
	cr_assert_eq(r.status, Q_ETOOBIG);
	cr_assert_eq(e.fb.put_calls, 0);
	h_env_fini(&e);
}

/* ------------------------------------------------------------------------
 * The format 1 fixture */

static void *read_fixture(size_t *len)
{
	char path[4096];
	FILE *fp;
	long n;
	void *buf;

	snprintf(path, sizeof path, "%s/state-v1.bin", QUEUE_TEST_DATA);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp, "cannot open %s", path);
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	cr_assert_geq(n, 0);
	rewind(fp);
	*len = (size_t)n;
	buf = malloc(*len + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, *len, fp), *len);
	fclose(fp);
	return buf;
}

static uint64_t fnv64(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void replay(struct q_state *s)
{
	const struct q_cmd *cmds;
	size_t n = state_v1_history(&cmds), i;

	for (i = 0; i < n; i++)
		cr_assert_eq(h_apply(s, &cmds[i]).status, Q_OK, "step %zu", i);
}

static uint32_t format_of(const void *dump)
{
	const unsigned char *p = dump;

	return (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
	       (uint32_t)p[7] << 24;
}

/* Every message of a state: queue, seq, state, count and its bytes. */
struct msgs {
	size_t n;
	char line[32][96];
};

static int list_msg(void *data, const struct q_peeked *p)
{
	struct msgs *m = data;
	const char *id = h_delivery_msg_id(&p->msg);

	cr_assert_lt(m->n, 32);
	snprintf(m->line[m->n++], sizeof m->line[0],
		 "%s/%llu %u %u key %llu [%.*s] [%.*s]", p->msg.queue,
		 (unsigned long long)p->msg.seq, p->state,
		 p->msg.delivery_count, (unsigned long long)p->msg.body_key,
		 (int)p->msg.msg_id_len, id != NULL ? id : "",
		 (int)p->msg.body_len, (const char *)h_delivery_body(&p->msg));
	return 0;
}

static int list_queue(void *data, const struct q_queue_info *qi)
{
	void **ctx = data;

	return q_state_peek(ctx[0], qi->name, 0, 100,
			    Q_PEEK_DELAYED | Q_PEEK_HELD, list_msg, ctx[1]);
}

static void list(struct q_state *s, struct msgs *m)
{
	void *ctx[2] = {s, m};

	memset(m, 0, sizeof *m);
	cr_assert_eq(q_state_foreach_queue(s, list_queue, ctx), 0);
}

TestSuite(state_v1);

Test(state_v1, the_fixture_is_pinned)
{
	size_t len;
	void *buf = read_fixture(&len);

	cr_assert_eq(len, STATE_V1_LEN, "state-v1.bin was rewritten");
	cr_assert_eq(fnv64(buf, len), STATE_V1_FNV,
		     "state-v1.bin was rewritten");
	free(buf);
}

/* Without a body interface nothing changed: the fixture loads and dumps
 * back to its own bytes, and the history still writes them. */
Test(state_v1, loads_in_memory_and_dumps_the_same_bytes)
{
	struct h_env e, r;
	struct msgs m;
	size_t len;
	void *buf = read_fixture(&len);
	struct q_options o = {.hash_seed = 5};

	h_env_init_mode(&e, NULL, MEMORY);
	cr_assert_eq(q_state_load(e.s, buf, len), 0, "%s",
		     q_state_load_error(e.s));
	cr_assert(h_dump_is(e.s, buf, len));
	cr_assert_eq(h_totals(e.s).bodies, STATE_V1_BODIES);
	cr_assert_eq(h_totals(e.s).messages, STATE_V1_MESSAGES);
	list(e.s, &m);
	cr_assert_eq(m.n, STATE_V1_MESSAGES);
	h_check(e.s);
	h_env_init_mode(&r, &o, MEMORY);
	replay(r.s);
	cr_assert(h_dump_is(r.s, buf, len), "format 1 writing changed");
	free(buf);
	h_env_fini(&e);
	h_env_fini(&r);
}

/* Migration: with a body interface every body of the fixture goes into the
 * store with the bytes it had, the state then dumps in format 2 exactly as
 * a state that lived the same history with a body store, and that dump
 * loads again by claims. */
Test(state_v1, loads_into_a_body_store_by_putting_every_body)
{
	struct h_env mem, st, lived, again;
	struct msgs a, b;
	size_t len, len2, i;
	void *buf = read_fixture(&len), *dump2;
	struct q_options o = {.hash_seed = 5};

	h_env_init_mode(&mem, NULL, MEMORY);
	cr_assert_eq(q_state_load(mem.s, buf, len), 0);
	h_env_init_mode(&st, NULL, STORE);
	cr_assert_eq(q_state_load(st.s, buf, len), 0, "%s",
		     q_state_load_error(st.s));
	cr_assert_eq(st.fb.puts, STATE_V1_BODIES);
	cr_assert_eq(st.fb.claims, 0);
	h_check(st.s);
	list(mem.s, &a);
	list(st.s, &b);
	cr_assert_eq(a.n, b.n);
	for (i = 0; i < a.n; i++)
		cr_assert_str_eq(a.line[i], b.line[i]);

	dump2 = h_dump(st.s, &len2);
	cr_assert_eq(format_of(dump2), 2);
	cr_assert_not_null(memmem(buf, len, "fan-out", 7));
	cr_assert_null(memmem(dump2, len2, "fan-out", 7), "bytes in format 2");
	h_env_init_mode(&lived, &o, STORE);
	replay(lived.s);
	cr_assert(h_dump_is(lived.s, dump2, len2),
		  "migrated state differs from the lived one");

	h_env_init_mode(&again, NULL, STORE);
	cr_assert_eq(q_state_load(again.s, dump2, len2), 0, "%s",
		     q_state_load_error(again.s));
	cr_assert_eq(again.fb.claims, STATE_V1_BODIES);
	cr_assert_eq(again.fb.puts, 0);
	cr_assert(h_dump_is(again.s, dump2, len2));
	list(again.s, &b);
	for (i = 0; i < a.n; i++)
		cr_assert_str_eq(a.line[i], b.line[i]);
	h_check(again.s);

	free(buf);
	free(dump2);
	h_env_fini(&mem);
	h_env_fini(&st);
	h_env_fini(&lived);
	h_env_fini(&again);
}

Test(state_v1, a_format_2_dump_does_not_load_without_a_body_interface)
{
	struct h_env st, st2, mem;
	void *buf;
	size_t len;

	h_env_init_mode(&st, NULL, STORE);
	h_create_queue(st.s, "q", NULL, 1);
	h_publish(st.s, "q", NULL, "elsewhere", 2);
	buf = h_dump(st.s, &len);
	h_env_init_mode(&mem, NULL, MEMORY);
	cr_assert_eq(q_state_load(mem.s, buf, len), Q_ECORRUPT);
	cr_assert(strstr(q_state_load_error(mem.s), "body store") != NULL,
		  "reason: %s", q_state_load_error(mem.s));
	cr_assert_eq(h_totals(mem.s).queues, 0);
	h_env_init_mode(&st2, NULL, STORE);
	cr_assert_eq(q_state_load(st2.s, buf, len), 0);
	cr_assert_str_eq(q_state_load_error(st2.s), "");
	free(buf);
	h_env_fini(&st);
	h_env_fini(&st2);
	h_env_fini(&mem);
}

/* ENOMEM after puts: a migration that fails at any allocation drops every
 * body it had put, so the store is told of each. */
Test(state_v1, a_failed_migration_drops_what_it_put)
{
	struct h_fail_alloc fa;
	struct q_options o = {.hash_seed = 1};
	struct h_env e;
	size_t len;
	void *buf = read_fixture(&len);
	long n, dropped_some = 0;
	int rv;

	h_fail_alloc_init(&fa);
	o.allocator = &fa.a;
	h_env_init_mode(&e, &o, STORE);
	for (n = 0;; n++) {
		long puts = e.fb.puts, drops = e.fb.drops;

		cr_assert_lt(n, 10000);
		h_fail_alloc_arm(&fa, n, 1);
		rv = q_state_load(e.s, buf, len);
		h_fail_alloc_disarm(&fa);
		if (rv == 0)
			break;
		cr_assert_eq(rv, Q_ENOMEM, "N=%ld: %d", n, rv);
		cr_assert_eq(e.fb.drops - drops, e.fb.puts - puts,
			     "N=%ld: %ld put, %ld dropped", n, e.fb.puts - puts,
			     e.fb.drops - drops);
		cr_assert_eq(e.fb.live.n, 0, "N=%ld", n);
		dropped_some += e.fb.drops > drops;
		h_check(e.s);
	}
	cr_assert_gt(dropped_some, 0, "no failure came after a put");
	cr_assert_eq(e.fb.live.n, STATE_V1_BODIES);
	h_check(e.s);
	free(buf);
	h_env_fini(&e);
	cr_assert_eq(fa.live, 0);
}

Test(state_v1, a_put_refused_during_migration_is_eio)
{
	struct h_env e;
	size_t len;
	void *buf = read_fixture(&len);

	h_env_init_mode(&e, NULL, STORE);
	e.fb.fail_put_at = 3;
	cr_assert_eq(q_state_load(e.s, buf, len), Q_EIO);
	cr_assert(strstr(q_state_load_error(e.s), "refused") != NULL, "%s",
		  q_state_load_error(e.s));
	cr_assert_eq(e.fb.puts, 3);
	cr_assert_eq(e.fb.drops, 3);
	cr_assert_eq(h_totals(e.s).messages, 0);
	free(buf);
	h_env_fini(&e);
}

/* q_state_foreach_body: every copy once, in memory nothing. */
struct seen {
	q_seq keys[8];
	uint32_t sums[8];
	int n;
};

static int see(void *data, q_seq key, uint32_t sum)
{
	struct seen *s = data;
	if (s->n == 8) {
		return 7;
	}
	s->keys[s->n] = key;
	s->sums[s->n++] = sum;
	return 0;
}

Test(bodies, foreach_body_visits_every_copy_of_every_list)
{
	struct h_env e;
	struct seen s = {{0}, {0}, 0};
	struct q_result a, b, t;
	q_consumer_id c;
	int i, fan = 0;

	h_env_init_mode(&e, NULL, STORE);
	h_create_queue(e.s, "q", NULL, 1);
	h_create_topic(e.s, "t", 0, 1);
	for (i = 0; i < 2; i++) {
		struct q_settings st = h_plain();
		h_subscribe(e.s, "t", i == 0 ? "a" : "b", &st, 1);
	}
	a = h_publish(e.s, "q", NULL, "one", 2);
	b = h_publish(e.s, "q", NULL, "two", 2);
	t = h_publish_topic(e.s, "t", NULL, "fan", 2);
	c = h_attach(e.s, "q", 0, 1); /* a unacked, b ready */
	(void)c;
	cr_assert_eq(q_state_foreach_body(e.s, see, &s), 0);
	cr_assert_eq(s.n, 4);
	for (i = 0; i < s.n; i++) {
		cr_assert(s.keys[i] == a.seq || s.keys[i] == b.seq ||
			  s.keys[i] == t.seq);
		fan += s.keys[i] == t.seq;
		if (s.keys[i] == a.seq) {
			cr_assert_eq(s.sums[i], fb_sum(NULL, 0, "one", 3));
		}
	}
	cr_assert_eq(fan, 2);
	s.n = 8;
	cr_assert_eq(q_state_foreach_body(e.s, see, &s), 7);
	h_env_fini(&e);

	h_env_init_mode(&e, NULL, MEMORY);
	h_create_queue(e.s, "q", NULL, 1);
	h_publish(e.s, "q", NULL, "one", 2);
	s.n = 0;
	cr_assert_eq(q_state_foreach_body(e.s, see, &s), 0);
	cr_assert_eq(s.n, 0);
	h_env_fini(&e);
}
