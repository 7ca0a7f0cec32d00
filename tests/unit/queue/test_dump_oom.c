/* Dump / load round trips, determinism across replicas, robustness of load
 * against truncated and corrupted bytes, and allocation-failure sweeps
 * (every failing allocation leaves the state byte-identical and makes no
 * sink call). Black-box, q.h only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

static const struct q_session S1 = {1, 1, 11};
static const struct q_session S2 = {2, 1, 22};

static struct q_settings full_settings(void)
{
	struct q_settings st;

	memset(&st, 0, sizeof(st));
	st.ack_timeout_ms = 5000;
	st.max_deliveries = 3;
	st.dead_letter = "dlq";
	st.ttl_ms = 100000;
	st.max_length = 100;
	st.max_bytes = 100000;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	st.dedup_window_ms = 60000;
	return st;
}

/* A history touching every kind of stored thing: queues with all settings,
 * topics with subscriptions, consumers holding messages, delayed, returned
 * and dead-lettered messages, dedup entries. Every status is checked. */
static void build_rich(struct q_state *s)
{
	struct q_settings full = full_settings(), plain = h_plain(), one;
	struct h_pub delay = {.delay_ms = 20000}, ttl = {.ttl_ms = 30000};
	q_consumer_id c1, c2, c3;
	q_seq tags[2];
	char id[16], body[32];
	int i;

	one = h_plain();
	one.max_deliveries = 1;
	one.dead_letter = "dlq";
	cr_assert_eq(h_create_queue(s, "dlq", &plain, 10).status, Q_OK);
	cr_assert_eq(h_create_queue(s, "work", &full, 10).status, Q_OK);
	cr_assert_eq(h_create_queue(s, "once", &one, 10).status, Q_OK);
	cr_assert_eq(h_create_queue(s, "plain", NULL, 11).status, Q_OK);
	cr_assert_eq(h_create_topic(s, "ev", 30000, 12).status, Q_OK);
	cr_assert_eq(h_create_topic(s, "empty", 0, 12).status, Q_OK);
	cr_assert_eq(h_subscribe(s, "ev", "s1", &full, 13).status, Q_OK);
	cr_assert_eq(h_subscribe(s, "ev", "s2", &plain, 13).status, Q_OK);

	c1 = h_attach_ex(s, "work", S1, 2, Q_CREDIT_UNLIMITED, 20).consumer;
	c2 = h_attach_ex(s, "work", S2, 0, 3, 20).consumer;
	c3 = h_attach_ex(s, "ev:s1", S1, 1, Q_CREDIT_UNLIMITED, 21).consumer;
	cr_assert(c1 && c2 && c3);

	for (i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "w%d", i);
		snprintf(body, sizeof(body), "work body %d", i);
		cr_assert_eq(
			h_publish(s, "work", id, body, 30 + (uint64_t)i).status,
			Q_OK);
	}
	/* c1 holds 1, 3; c2 holds 2, 4, 5 (credit 3 spent) */
	cr_assert_eq(
		h_publish_ex(s, "work", "wd", "delayed", &delay, 40).status,
		Q_OK);
	cr_assert_eq(h_publish_ex(s, "plain", "pt", "ttl", &ttl, 41).status,
		     Q_OK);
	cr_assert_eq(h_publish(s, "plain", NULL, "plain 2", 42).status, Q_OK);
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "e%d", i);
		cr_assert_eq(h_publish_topic(s, "ev", id, "event", 50).status,
			     Q_OK);
	}
	cr_assert(h_publish_topic(s, "ev", "e0", "event", 51).duplicate);
	cr_assert_eq(h_publish_topic(s, "empty", NULL, "void", 51).status,
		     Q_OK);

	/* c1 acks 1 and gets 6: full again */
	cr_assert_eq(h_ack1(s, c1, 1, 59).status, Q_OK);
	/* c2 has no credit, c1 is full: a nack makes a "returned" message
	 * that stays */
	tags[0] = 2;
	cr_assert_eq(h_nack(s, c2, tags, 1, 0, 60).status, Q_OK);
	/* a delayed nack */
	tags[0] = 4;
	cr_assert_eq(h_nack(s, c2, tags, 1, 15000, 61).status, Q_OK);
	/* extend one */
	tags[0] = 5;
	cr_assert_eq(h_extend(s, c2, tags, 1, 9000, 63).status, Q_OK);

	/* dead-letter from "once" (max 1) into "dlq" (no consumer there) */
	{
		q_consumer_id co =
			h_attach_ex(s, "once", S2, 0, Q_CREDIT_UNLIMITED, 70)
				.consumer;
		struct q_result r = h_publish(s, "once", NULL, "doomed", 71);

		cr_assert_eq(h_nack1(s, co, r.seq, 0, 72).status, Q_OK);
		r = h_publish(s, "once", NULL, "held", 73);
		cr_assert_eq(r.status, Q_OK);
	}
	h_tick(s, 100);
	h_check(s);
}

TestSuite(dump, .init = h_setup, .fini = h_teardown);

Test(dump, empty_state_round_trips)
{
	struct h_env e;
	void *buf;
	size_t len;

	buf = h_dump(H.s, &len);
	cr_assert_gt(len, 0);
	h_env_init(&e, NULL);
	cr_assert_eq(q_state_load(e.s, buf, len), 0);
	cr_assert(h_dump_equal(H.s, e.s));
	h_check(e.s);
	free(buf);
	h_env_fini(&e);
}

Test(dump, rich_state_round_trips)
{
	struct h_env e;
	void *buf, *buf2;
	size_t len, len2;
	struct q_totals a, b;

	build_rich(H.s);
	buf = h_dump(H.s, &len);
	h_env_init(&e, NULL);
	cr_assert_eq(q_state_load(e.s, buf, len), 0);
	h_check(e.s);
	buf2 = h_dump(e.s, &len2);
	cr_assert_eq(len2, len);
	cr_assert_arr_eq(buf2, buf, len);
	a = h_totals(H.s);
	b = h_totals(e.s);
	cr_assert_eq(a.queues, b.queues);
	cr_assert_eq(a.topics, b.topics);
	cr_assert_eq(a.consumers, b.consumers);
	cr_assert_eq(a.messages, b.messages);
	cr_assert_eq(a.bodies, b.bodies, "shared bodies stay shared");
	cr_assert_eq(a.dedup_entries, b.dedup_entries);
	cr_assert_eq(q_state_now(e.s), q_state_now(H.s));
	cr_assert_eq(q_state_next_due(e.s), q_state_next_due(H.s));
	cr_assert_str_eq(h_info(e.s, "work").settings.dead_letter, "dlq");
	cr_assert_str_eq(h_info(e.s, "ev:s1").topic, "ev");
	free(buf);
	free(buf2);
	h_env_fini(&e);
}

Test(dump, rich_state_has_every_kind_of_thing)
{
	struct q_queue_info w, d;

	build_rich(H.s);
	w = h_info(H.s, "work");
	d = h_info(H.s, "dlq");
	cr_assert_gt(w.unacked, 0);
	cr_assert_gt(w.delayed, 0);
	cr_assert_gt(w.ready, 0);
	cr_assert_gt(d.ready, 0);
	cr_assert_gt(h_totals(H.s).dedup_entries, 0);
	cr_assert_gt(h_totals(H.s).consumers, 0);
	cr_assert_lt(h_totals(H.s).bodies, h_totals(H.s).messages);
}

Test(dump, same_history_same_bytes_whatever_the_hash_seed)
{
	struct h_env a, b;
	struct q_options oa = {.hash_seed = 1}, ob = {.hash_seed = 0xdeadbeef};

	h_env_init(&a, &oa);
	h_env_init(&b, &ob);
	build_rich(a.s);
	build_rich(b.s);
	cr_assert(h_dump_equal(a.s, b.s));
	cr_assert(h_rec_equal(&a.rec, &b.rec));
	h_env_fini(&a);
	h_env_fini(&b);
}

static bool results_equal(const struct q_result *x, const struct q_result *y)
{
	return x->status == y->status && x->seq == y->seq &&
	       x->duplicate == y->duplicate && x->consumer == y->consumer &&
	       x->count == y->count && x->unknown == y->unknown;
}

/* Further history applied after build_rich (or after loading its dump). */
static size_t continue_history(struct q_state *s, struct q_result *out)
{
	q_seq tags[3] = {3, 6, 999};
	size_t n = 0;

	out[n++] = h_publish(s, "work", "w0", "dup", 200);  /* duplicate */
	out[n++] = h_publish(s, "work", "new", "new", 200); /* next seq */
	out[n++] = h_ack(s, 1, tags, 3, 210);
	out[n++] = h_credit(s, 2, 0, 10, 220);
	out[n++] = h_attach_ex(s, "dlq", S2, 0, Q_CREDIT_UNLIMITED, 230);
	out[n++] = h_publish_topic(s, "ev", "e1", "event", 240);
	out[n++] = h_publish_topic(s, "ev", "e9", "event9", 240);
	out[n++] = h_tick(s, 16000); /* the delayed nack, ack deadlines */
	out[n++] = h_tick(s, 25000); /* the delayed publish */
	out[n++] = h_session_gone(s, S1, 26000);
	out[n++] = h_tick(s, 200000); /* TTLs */
	out[n++] = h_detach_stale(s, 2, 1, 200001);
	out[n++] = h_attach_ex(s, "work", S1, 0, Q_CREDIT_UNLIMITED, 200002);
	out[n++] = h_delete_topic(s, "ev", 200003);
	out[n++] = h_purge(s, "plain", 200004);
	return n;
}

Test(dump, loaded_state_behaves_identically)
{
	struct h_env e;
	struct q_result ra[32], rb[32];
	size_t na, nb, i, len;
	void *buf;

	build_rich(H.s);
	buf = h_dump(H.s, &len);
	h_env_init(&e, NULL);
	cr_assert_eq(q_state_load(e.s, buf, len), 0);
	free(buf);
	h_rec_clear(&H.rec);
	na = continue_history(H.s, ra);
	nb = continue_history(e.s, rb);
	cr_assert_eq(na, nb);
	for (i = 0; i < na; i++)
		cr_assert(results_equal(&ra[i], &rb[i]), "result %zu differs",
			  i);
	cr_assert(ra[0].duplicate, "dedup entries survive the dump");
	cr_assert_gt(H.rec.n_d, 0);
	cr_assert(h_rec_equal(&H.rec, &e.rec), "same deliveries");
	cr_assert(h_dump_equal(H.s, e.s));
	h_check(H.s);
	h_check(e.s);
	h_env_fini(&e);
}

static int fail_write(void *data, const void *buf, size_t len)
{
	int *calls = data;

	(void)buf;
	(void)len;
	return ++*calls == 1 ? 5 : 0;
}

Test(dump, dump_write_error_is_returned)
{
	int calls = 0;
	void *b;
	size_t len;

	build_rich(H.s);
	cr_assert_eq(q_state_dump(H.s, fail_write, &calls), 5);
	cr_assert_eq(calls, 1, "dump stops at the first error");
	cr_assert_eq(q_state_dump_buf(H.s, &b, &len), 0);
	cr_assert(h_dump_is(H.s, b, len), "dump_buf = dump");
	free(b);
}

/* --------------------------------------------------------------------- */

TestSuite(load, .init = h_setup, .fini = h_teardown);

/* The bytes of an empty state (of the build's body mode, like H). */
static void *empty_dump(size_t *len)
{
	struct h_env e;
	void *buf;

	h_env_init(&e, NULL);
	buf = h_dump(e.s, len);
	h_env_fini(&e);
	return buf;
}

/* Loads (buf, len) into a fresh state; returns load's result. On 0 the state
 * must pass check and survive a tick; otherwise it must be empty (and, with
 * bodies in the fake store, refer to no body: h_env_fini checks). */
static int load_one(const void *buf, size_t len, const void *empty,
		    size_t empty_len, const char *what, size_t at)
{
	struct h_env e;
	struct q_state *s;
	struct q_totals t;
	int rv;

	h_env_init(&e, NULL);
	s = e.s;
	rv = q_state_load(s, buf, len);
	cr_assert(rv == 0 || rv == Q_ECORRUPT, "%s %zu: load = %d", what, at,
		  rv);
	if (rv == 0) {
		char err[256] = "";
		struct q_cmd c;
		struct q_result r;

		cr_assert_eq(q_state_check(s, err, sizeof(err)), 0,
			     "%s %zu: loaded but check fails: %s", what, at,
			     err);
		memset(&c, 0, sizeof(c));
		c.type = Q_CMD_TICK;
		c.now_ms = UINT64_MAX / 2;
		cr_assert_eq(q_state_apply(s, &c, &r), 0);
		cr_assert_eq(q_state_check(s, err, sizeof(err)), 0,
			     "%s %zu: after tick: %s", what, at, err);
	} else {
		cr_assert(h_dump_is(s, empty, empty_len),
			  "%s %zu: state not empty after failed load", what,
			  at);
		t = h_totals(s);
		cr_assert_eq(t.queues + t.topics + t.consumers + t.messages, 0);
	}
	h_env_fini(&e);
	return rv;
}

Test(load, every_truncation_of_a_small_dump)
{
	void *buf, *empty;
	size_t len, elen, n, ok = 0;
	q_consumer_id c;

	h_create_queue(H.s, "q", NULL, 1);
	h_create_topic(H.s, "t", 10, 1);
	h_subscribe(H.s, "t", "s", NULL, 1);
	c = h_attach(H.s, "q", 1, 2);
	h_publish(H.s, "q", "id", "body", 3);
	h_publish(H.s, "q", NULL, "b2", 3);
	h_publish_topic(H.s, "t", "x", "tb", 4);
	cr_assert_neq(c, 0);
	buf = h_dump(H.s, &len);
	empty = empty_dump(&elen);
	for (n = 0; n < len; n++)
		if (load_one(buf, n, empty, elen, "prefix", n) == 0)
			ok++;
	cr_assert_eq(ok, 0, "%zu strict prefixes loaded as valid", ok);
	cr_assert_eq(load_one(buf, len, empty, elen, "full", len), 0);
	free(buf);
	free(empty);
}

Test(load, every_truncation_of_the_rich_dump)
{
	void *buf, *empty;
	size_t len, elen, n;

	build_rich(H.s);
	buf = h_dump(H.s, &len);
	empty = empty_dump(&elen);
	for (n = 0; n < len; n++)
		cr_assert_eq(load_one(buf, n, empty, elen, "prefix", n),
			     Q_ECORRUPT, "prefix %zu of %zu", n, len);
	free(buf);
	free(empty);
}

Test(load, trailing_garbage_is_corrupt)
{
	void *buf, *empty;
	char *longer;
	size_t len, elen;

	build_rich(H.s);
	buf = h_dump(H.s, &len);
	empty = empty_dump(&elen);
	longer = malloc(len + 3);
	cr_assert_not_null(longer);
	memcpy(longer, buf, len);
	memcpy(longer + len, "xyz", 3);
	cr_assert_eq(load_one(longer, len + 3, empty, elen, "trailing", 3),
		     Q_ECORRUPT);
	free(longer);
	free(buf);
	free(empty);
}

Test(load, random_byte_flips_never_crash)
{
	void *buf, *empty;
	unsigned char *copy;
	size_t len, elen, it;
	uint64_t seed = 12345, rnd;
	const char *env = getenv("TEST_SEED");
	size_t corrupt = 0;

	if (env != NULL)
		seed = strtoull(env, NULL, 0);
	rnd = seed;
	build_rich(H.s);
	buf = h_dump(H.s, &len);
	empty = empty_dump(&elen);
	copy = malloc(len);
	cr_assert_not_null(copy);
	for (it = 0; it < 3000; it++) {
		int k, flips = 1 + (int)(h_rand(&rnd) % 3);

		memcpy(copy, buf, len);
		for (k = 0; k < flips; k++) {
			size_t at = (size_t)(h_rand(&rnd) % len);
			unsigned char x =
				(unsigned char)(1 + h_rand(&rnd) % 255);

			copy[at] ^= x;
		}
		if (load_one(copy, len, empty, elen, "flip iteration", it) != 0)
			corrupt++;
	}
	cr_log_info("seed %llu: %zu of 3000 flipped dumps refused",
		    (unsigned long long)seed, corrupt);
	cr_assert_gt(corrupt, 0);
	free(copy);
	free(buf);
	free(empty);
}

Test(load, garbage_is_corrupt)
{
	static const char junk[] = "this is not a raftmq dump at all";
	void *empty;
	size_t elen;

	empty = empty_dump(&elen);
	cr_assert_eq(load_one(junk, sizeof(junk), empty, elen, "junk", 0),
		     Q_ECORRUPT);
	free(empty);
}

/* Sets `n` little-endian bytes at `off` of a dump to 0xff and recomputes the
 * trailer ("END1" + FNV-1a 64 of everything before it), so only the loader's
 * own checks can refuse it. */
static void max_field(unsigned char *p, size_t len, size_t off, size_t n)
{
	uint64_t hash = 0xcbf29ce484222325ull;
	size_t i;

	memset(p + off, 0xff, n);
	for (i = 0; i < len - 12; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ull;
	}
	for (i = 0; i < 8; i++) {
		p[len - 8 + i] = (unsigned char)(hash >> (8 * i));
	}
}

static void set_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A dump of one queue "q" holding a message per body (borrowed), published
 * at 1001, 1002... with seqs 1, 2... */
static unsigned char *dump_of(const char *const *bodies, size_t n, size_t *len)
{
	struct q_state *s = q_state_new(NULL);
	unsigned char *buf;
	size_t i;

	cr_assert_not_null(s);
	cr_assert_eq(h_create_queue(s, "q", NULL, 1000).status, Q_OK);
	for (i = 0; i < n; i++) {
		cr_assert_eq(h_publish(s, "q", NULL, bodies[i], 1001 + i).seq,
			     i + 1);
	}
	buf = h_dump(s, len);
	q_state_free(s);
	return buf;
}

/* Where the message whose body is `body` (4 bytes) starts in a dump: its
 * seq, 63 bytes before the body (seq u64, deliveries, failures, dl_from
 * u32, dl_reason u8, expires u64, in_heap u8, due u64, origin u64, has-body
 * u8, published u64, id and body lengths u32, the id empty); deliveries is
 * at +8 and failures at +12, little-endian. */
static unsigned char *message_of(unsigned char *buf, size_t len,
				 const char *body, q_seq seq)
{
	unsigned char *b = memmem(buf, len, body, 4);

	cr_assert_not_null(b);
	cr_assert_eq(b[-63], seq, "layout changed: fix the offset");
	return b - 63;
}

/* A dump changed by hand (its trailer recomputed) must not load. */
static void expect_corrupt(unsigned char *buf, size_t len, const char *what)
{
	void *empty;
	size_t elen;

	max_field(buf, len, 0, 0); /* only recomputes the trailer */
	empty = empty_dump(&elen);
	cr_assert_eq(load_one(buf, len, empty, elen, what, 0), Q_ECORRUPT,
		     "%s: loaded", what);
	free(empty);
}

/* Regression (tests/fuzz/fuzz_snapshot): a dump whose next_seq was
 * UINT64_MAX loaded, and the next publish took that seq and wrapped the
 * counter to 0, so q_state_check() failed and seqs could repeat. The same
 * holds for next_consumer and next_qid. Header: "RMQ1", u32 format, u64 now,
 * u64 next_seq (offset 16), u64 next_consumer (24), u32 next_qid (32). */
Test(load, counters_at_their_maximum_are_corrupt)
{
	static const struct {
		size_t off, n;
		const char *what;
	} fields[] = {
		{16, 8, "next_seq"},
		{24, 8, "next_consumer"},
		{32, 4, "next_qid"},
	};
	void *empty, *buf;
	size_t elen, len, i;

	empty = empty_dump(&elen);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		buf = empty_dump(&len);
		max_field(buf, len, fields[i].off, fields[i].n);
		cr_assert_eq(load_one(buf, len, empty, elen, fields[i].what, 0),
			     Q_ECORRUPT, "%s at its maximum was loaded",
			     fields[i].what);
		free(buf);
	}
	free(empty);
}

/* Regression (tests/fuzz/fuzz_snapshot): a dump whose next_seq was
 * UINT64_MAX - 1 loaded, a TICK dead-lettered a message (its copy took that
 * seq) and the next publish wrapped the counter to 0. No real history
 * reaches 2^63 seqs or consumers: a dump saying so is corrupt, and one just
 * under loads. */
Test(load, a_seq_or_consumer_counter_of_2_to_the_63_is_corrupt)
{
	static const size_t offs[] = {16, 24}; /* next_seq, next_consumer */
	void *empty;
	unsigned char *buf;
	size_t elen, len, i;

	empty = empty_dump(&elen);
	for (i = 0; i < 2; i++) {
		buf = empty_dump(&len);
		set_u64(buf + offs[i], UINT64_C(1) << 63);
		max_field(buf, len, 0, 0);
		cr_assert_eq(load_one(buf, len, empty, elen, "2^63", offs[i]),
			     Q_ECORRUPT, "counter at %zu", offs[i]);
		set_u64(buf + offs[i], (UINT64_C(1) << 63) - 1);
		max_field(buf, len, 0, 0);
		cr_assert_eq(load_one(buf, len, empty, elen, "2^63-1", offs[i]),
			     0, "counter at %zu", offs[i]);
		free(buf);
	}
	free(empty);
}

/* Regression (tests/fuzz/fuzz_snapshot): a dump with two messages of one
 * queue under the same seq loaded (q_state_check() did not look), and the
 * next delivery left one of them out of the unacked index. The second
 * message's seq is rewritten to 1. */
Test(load, two_messages_with_one_seq_are_corrupt)
{
	static const char *const bodies[] = {"AAAA", "BBBB"};
	unsigned char *buf;
	size_t len;

	buf = dump_of(bodies, 2, &len);
	message_of(buf, len, "BBBB", 2)[0] = 1;
	expect_corrupt(buf, len, "duplicate seq");
	free(buf);
}

/* Regression (tests/fuzz/fuzz_snapshot): a message delivered 2^32 - 1 times
 * (here from a dump; live, a consumer nacking in a loop with max_deliveries
 * 0) wrapped its delivery count to 0 at the next delivery, and
 * q_state_check() then found an unacked message "without delivery". The
 * count now saturates. */
Test(load, delivery_count_saturates)
{
	static const char *const bodies[] = {"CCCC"};
	struct h_env e;
	unsigned char *buf, *m;
	size_t len;

	buf = dump_of(bodies, 1, &len);
	m = message_of(buf, len, "CCCC", 1);
	max_field(buf, len, (size_t)(m + 8 - buf), 4);
	h_env_init(&e, NULL);
	cr_assert_eq(q_state_load(e.s, buf, len), 0);
	h_attach(e.s, "q", 0, 1002);
	cr_assert_eq(e.rec.n_d, 1);
	cr_assert_eq(e.rec.d[0].delivery_count, UINT32_MAX);
	h_check(e.s);
	cr_assert_eq(h_nack1(e.s, 1, 1, 0, 1003).status, Q_OK);
	cr_assert_eq(e.rec.n_d, 2);
	cr_assert_eq(e.rec.d[1].delivery_count, UINT32_MAX);
	h_check(e.s);
	free(buf);
	h_env_fini(&e);
}

/* Every failed delivery ended a delivery, and an unseen release or detach
 * undoes only a delivery that has not failed: a message never has more
 * failures than deliveries, and a dump saying otherwise is corrupt. */
Test(load, more_failures_than_deliveries_is_corrupt)
{
	static const char *const bodies[] = {"DDDD"};
	unsigned char *buf, *m;
	size_t len;

	buf = dump_of(bodies, 1, &len);
	m = message_of(buf, len, "DDDD", 1);
	cr_assert_eq(m[8] | m[12], 0, "never delivered, never failed");
	m[12] = 1; /* failures 1, deliveries 0 */
	expect_corrupt(buf, len, "failures");
	free(buf);
}

/* Regression (tests/fuzz/fuzz_snapshot): a held message whose failures
 * equal its deliveries loaded, though the delivery it is held under has not
 * failed; its ack timeout then made it 2 failures of 1 delivery (dead-
 * lettered with those counts by max_deliveries 2). Such a dump is corrupt.
 * The message is held by a consumer with prefetch 1; failures at +12. */
Test(load, a_held_message_whose_delivery_failed_already_is_corrupt)
{
	struct q_settings st = h_plain();
	struct q_state *s = q_state_new(NULL);
	unsigned char *buf, *m;
	size_t len;

	cr_assert_not_null(s);
	st.ack_timeout_ms = 1000;
	st.max_deliveries = 2;
	h_create_queue(s, "q", &st, 1);
	cr_assert_eq(h_attach_ex(s, "q", S1, 1, Q_CREDIT_UNLIMITED, 1).consumer,
		     1);
	h_publish(s, "q", NULL, "HELD", 2);
	buf = h_dump(s, &len);
	q_state_free(s);
	m = message_of(buf, len, "HELD", 1);
	cr_assert(m[8] == 1 && m[12] == 0, "delivered once, never failed");
	m[12] = 1;
	expect_corrupt(buf, len, "held, failed");
	free(buf);
}

/* Only an armed timer has a due time; a dump with one on a message without
 * a timer has no place to keep it (the side struct holding it is only made
 * for timed or delivered messages) and is corrupt. In a message: in_heap
 * at +29, due at +30. */
Test(load, a_due_time_without_a_timer_is_corrupt)
{
	static const char *const bodies[] = {"EEEE"};
	unsigned char *buf, *m;
	size_t len;

	buf = dump_of(bodies, 1, &len);
	m = message_of(buf, len, "EEEE", 1);
	cr_assert_eq(m[29], 0, "no timer");
	m[30] = 7;
	expect_corrupt(buf, len, "due");
	free(buf);
}

/* A body's key is the seq of the publish that stored it: never after the
 * seq of a copy (a dead-lettered copy's is later). Two messages' keys
 * swapped (origin at +38): message 2 then claims the body of publish 3. */
Test(load, a_body_key_after_its_message_seq_is_corrupt)
{
	static const char *const bodies[] = {"FFF1", "FFF2", "FFF3"};
	unsigned char *buf, *m2, *m3;
	size_t len;

	buf = dump_of(bodies, 3, &len);
	m2 = message_of(buf, len, "FFF2", 2);
	m3 = message_of(buf, len, "FFF3", 3);
	cr_assert(m2[38] == 2 && m3[38] == 3);
	m2[38] = 3;
	m3[38] = 2;
	expect_corrupt(buf, len, "key after seq");
	free(buf);
}

/* After every command, dispatch has left no message waiting while a
 * consumer has room (the side struct reserves rely on it). A dump where a
 * consumer without credit got some is corrupt. The consumer's credit is the
 * u32 before its unacked count (u64) and the trailer (12 bytes). */
Test(load, a_waiting_message_while_a_consumer_has_room_is_corrupt)
{
	struct q_state *s = q_state_new(NULL);
	unsigned char *buf;
	size_t len;

	cr_assert_not_null(s);
	h_create_queue(s, "q", NULL, 1);
	cr_assert_eq(h_attach_ex(s, "q", S1, 0, 0, 1).consumer, 1);
	h_publish(s, "q", NULL, "wait", 2);
	buf = h_dump(s, &len);
	q_state_free(s);
	cr_assert_eq(buf[len - 12 - 8 - 4], 0, "layout changed");
	buf[len - 12 - 8 - 4] = 1;
	expect_corrupt(buf, len, "room");
	free(buf);
}

/* Format 2 declares each body's copies (refs): one of a single copy lives
 * in the copy's allocation. A count that the copies do not match is
 * corrupt, a second copy of a body said to have one included. The record:
 * published u64, id_len, len, sum, refs u32; found by its checksum. */
static void refs_declared_wrong(bool topic, uint32_t refs)
{
	struct h_env e, l;
	unsigned char *buf, *p, sum[4];
	uint32_t v = fb_sum(NULL, 0, "RRRR", 4);
	size_t len, i;

	h_env_init_mode(&e, NULL, true);
	h_create_queue(e.s, "q", NULL, 1);
	h_create_topic(e.s, "t", 0, 1);
	h_subscribe(e.s, "t", "a", NULL, 1);
	h_subscribe(e.s, "t", "b", NULL, 1);
	if (topic)
		h_publish_topic(e.s, "t", NULL, "RRRR", 2);
	else
		h_publish(e.s, "q", NULL, "RRRR", 2);
	buf = h_dump(e.s, &len);
	for (i = 0; i < 4; i++)
		sum[i] = (unsigned char)(v >> (8 * i));
	p = memmem(buf, len, sum, 4);
	cr_assert_not_null(p);
	cr_assert_eq(p[4], topic ? 2 : 1, "layout changed");
	p[4] = (unsigned char)refs;
	max_field(buf, len, 0, 0);
	h_env_init_mode(&l, NULL, true);
	cr_assert_eq(q_state_load(l.s, buf, len), Q_ECORRUPT, "refs %u", refs);
	cr_assert_eq(h_totals(l.s).messages, 0);
	cr_assert_eq(l.fb.claims, l.fb.drops, "claims undone");
	free(buf);
	h_env_fini(&e);
	h_env_fini(&l);
}

Test(load, format_2_copies_other_than_declared_are_corrupt)
{
	refs_declared_wrong(true, 1);
	refs_declared_wrong(true, 3);
	refs_declared_wrong(false, 2);
	refs_declared_wrong(false, 0);
}

/* Where the message whose body is `body` (4 bytes, no msg id) starts in a
 * format 2 dump: its body record (published u64, id_len, len, sum, refs
 * u32) is found by the fake store's checksum and follows the message's 47
 * bytes (seq at +0, origin, the body's key, at +38). */
static unsigned char *message2_of(unsigned char *buf, size_t len,
				  const char *body, q_seq seq)
{
	uint32_t v = fb_sum(NULL, 0, body, 4);
	unsigned char sum[4], *p;
	int i;

	for (i = 0; i < 4; i++)
		sum[i] = (unsigned char)(v >> (8 * i));
	p = memmem(buf, len, sum, 4);
	cr_assert_not_null(p);
	p -= 16 + 47;
	cr_assert_eq(p[0], seq & 0xff, "layout changed: fix the offset");
	return p;
}

/* Loads a format 2 dump that must be refused, into a fresh state with the
 * fake store, and checks that the refused load claimed nothing. */
static void expect_corrupt_claims_nothing(unsigned char *buf, size_t len,
					  const char *what)
{
	struct h_env l;

	max_field(buf, len, 0, 0); /* only recomputes the trailer */
	h_env_init_mode(&l, NULL, true);
	cr_assert_eq(q_state_load(l.s, buf, len), Q_ECORRUPT, "%s: loaded",
		     what);
	cr_log_info("%s: %s", what, q_state_load_error(l.s));
	cr_assert_eq(h_totals(l.s).messages, 0);
	cr_assert_eq(l.fb.claims, 0, "%s: a refused load claims nothing", what);
	cr_assert_eq(l.fb.drops, 0, "%s", what);
	cr_assert(fb_ok(&l.fb), "%s: %s", what, l.fb.err);
	h_env_fini(&l);
}

/* Format 2: a body of one copy stays out of the loader's map of bodies
 * (which is empty in most states), so two of them with one key are told
 * apart by q_state_check() once the whole dump is read; the load claims
 * bodies only after that, so the refused load never claimed a key (twice,
 * or at all). Message 2 takes message 1's key. */
Test(load, format_2_two_bodies_with_one_key_are_corrupt_and_claim_nothing)
{
	struct h_env e;
	unsigned char *buf, *m;
	size_t len;

	h_env_init_mode(&e, NULL, true);
	h_create_queue(e.s, "q", NULL, 1);
	h_publish(e.s, "q", NULL, "KEY1", 2);
	h_publish(e.s, "q", NULL, "KEY2", 3);
	buf = h_dump(e.s, &len);
	m = message2_of(buf, len, "KEY2", 2);
	cr_assert_eq(m[38], 2, "layout changed");
	m[38] = 1;
	expect_corrupt_claims_nothing(buf, len, "one key, two bodies");
	free(buf);
	h_env_fini(&e);
}

/* The checks that need every message at once (a seq once per queue, a key
 * once per body) mark keys in a bitmap when they are dense, as in any
 * backlog, and sort them when they are not: here four messages of seqs 1,
 * 400, 700 and 1000 in queue "q" (the others went with their queue), in a
 * format 2 dump. The store keeps their bodies while e lives (h_env_fini()).
 */
static unsigned char *sparse_dump(struct h_env *e, size_t *len)
{
	static const char *const bodies[] = {"SPA1", "SPA2", "SPA3", "SPA4"};
	unsigned char *buf;
	q_seq seq = 1;
	size_t i;

	h_env_init_mode(e, NULL, true);
	h_create_queue(e->s, "q", NULL, 1);
	h_create_queue(e->s, "other", NULL, 1);
	for (i = 0; i < 4; i++) {
		for (; seq < (i == 0 ? 1 : 100 + 300 * i); seq++)
			h_publish(e->s, "other", NULL, "x", 2);
		cr_assert_eq(h_publish(e->s, "q", NULL, bodies[i], 2).seq,
			     seq++);
	}
	cr_assert_eq(h_delete_queue(e->s, "other", 3).status, Q_OK);
	buf = h_dump(e->s, len);
	return buf;
}

Test(load, sparse_keys_load)
{
	struct h_env e, l;
	unsigned char *buf;
	size_t len;

	buf = sparse_dump(&e, &len);
	h_env_init_mode(&l, NULL, true);
	cr_assert_eq(q_state_load(l.s, buf, len), 0, "%s",
		     q_state_load_error(l.s));
	h_check(l.s);
	cr_assert_eq(l.fb.claims, 4);
	h_env_fini(&l);
	h_env_fini(&e);
	free(buf);
}

/* Seqs 1000, 400, 700, 1000: the two are not next to each other. */
Test(load, two_messages_with_one_seq_among_sparse_seqs_are_corrupt)
{
	struct h_env e;
	unsigned char *buf;
	size_t len;

	buf = sparse_dump(&e, &len);
	set_u64(message2_of(buf, len, "SPA1", 1), 1000);
	expect_corrupt_claims_nothing(buf, len, "sparse seqs");
	h_env_fini(&e);
	free(buf);
}

/* Keys 1, 400, 700, 400: the two are not next to each other. */
Test(load, two_bodies_with_one_key_among_sparse_keys_are_corrupt)
{
	struct h_env e;
	unsigned char *buf;
	size_t len;

	buf = sparse_dump(&e, &len);
	set_u64(message2_of(buf, len, "SPA4", 1000) + 38, 400);
	expect_corrupt_claims_nothing(buf, len, "sparse keys");
	h_env_fini(&e);
	free(buf);
}

/* Dedup ids are read 16 ahead of the one inserted (the table slots of the
 * next ones are fetched meanwhile): a second entry of an id is refused
 * whether the first one is among those 16 or already inserted, and the
 * ones read ahead are freed (the leak check of the sanitizer build). In a
 * format 1 dump the dedup list comes before the messages, so the first
 * "id<n>" in the dump is the list's. */
Test(load, two_dedup_entries_with_one_id_are_corrupt)
{
	static const int dist[] = {1, 15, 16, 17, 30};
	size_t d;

	for (d = 0; d < sizeof(dist) / sizeof(dist[0]); d++) {
		struct q_state *s = q_state_new(NULL);
		unsigned char *buf, *p;
		char id[16];
		size_t len;
		int i;

		cr_assert_not_null(s);
		h_create_queue(s, "q", NULL, 1);
		for (i = 0; i < 40; i++) {
			snprintf(id, sizeof(id), "id%02d", i);
			h_publish(s, "q", id, "body", 2);
		}
		buf = h_dump(s, &len);
		q_state_free(s);
		p = memmem(buf, len, "id35", 4);
		cr_assert_not_null(p);
		snprintf(id, sizeof(id), "id%02d", 35 - dist[d]);
		memcpy(p, id, 4);
		expect_corrupt(buf, len, "dedup id twice");
		free(buf);
	}
}

/* --------------------------------------------------------------------- */

/* Allocation-failure sweeps. `prep` builds the state before the command (no
 * failures); then for N = 0, 1, ... the Nth allocation of the command fails
 * until apply returns 0. Every failing run must return Q_ENOMEM, leave the
 * dump byte-identical and make no sink call (and, with bodies in the fake
 * store, call no put or drop: the body is stored after every allocation);
 * the final run must give the same result, deliveries and dump as a run
 * without failures, and q_state_free() must then release every allocation
 * (no leak on the error paths; reserved capacity kept by a failed apply is
 * fine). A command that needs more side structs (struct q_msg_ext) than it
 * reserved stops on an assert in queue/: the sweeps below that give room or
 * move messages check those bounds. */

typedef void (*prep_fn)(struct q_state *s);

static long oom_sweep(prep_fn prep, const struct q_cmd *cmd, const char *what)
{
	struct h_fail_alloc fa;
	struct q_options o = {.hash_seed = 7}, oref = {.hash_seed = 7};
	struct h_env e, ref;
	struct q_result r, rref;
	void *before;
	size_t blen;
	long n;
	int rv;

	h_fail_alloc_init(&fa);
	o.allocator = &fa.a;
	h_env_init(&e, &o);
	h_env_init(&ref, &oref);
	if (prep != NULL) {
		prep(e.s);
		prep(ref.s);
	}
	h_rec_clear(&ref.rec);
	rref = h_apply(ref.s, cmd);
	before = h_dump(e.s, &blen);
	for (n = 0;; n++) {
		long puts = e.fb.put_calls, drops = e.fb.drops;

		cr_assert_lt(n, 100000, "%s: no end", what);
		h_rec_clear(&e.rec);
		h_fail_alloc_arm(&fa, n, 1);
		rv = h_apply_rv(e.s, cmd, &r);
		h_fail_alloc_disarm(&fa);
		if (rv == 0)
			break;
		cr_assert_eq(rv, Q_ENOMEM, "%s: N=%ld: apply = %d", what, n,
			     rv);
		cr_assert(e.fb.put_calls == puts && e.fb.drops == drops,
			  "%s: N=%ld: a failed apply called put or drop", what,
			  n);
		cr_assert_eq(fa.failures, 1, "%s: N=%ld", what, n);
		cr_assert(h_dump_is(e.s, before, blen),
			  "%s: N=%ld: state changed by a failed apply", what,
			  n);
		cr_assert_eq(e.rec.n_d, 0, "%s: N=%ld: sink called", what, n);
		cr_assert_eq(e.rec.n_g, 0, "%s: N=%ld: sink called", what, n);
		h_check(e.s);
	}
	cr_assert(results_equal(&r, &rref), "%s: result differs after sweep",
		  what);
	cr_assert(h_dump_equal(e.s, ref.s), "%s: state differs after sweep",
		  what);
	cr_assert(h_rec_equal(&e.rec, &ref.rec), "%s: deliveries differ", what);
	h_check(e.s);
	free(before);
	h_env_fini(&e);
	h_env_fini(&ref);
	/* failed applies leaked nothing: freeing the state frees it all */
	cr_assert_eq(fa.live, 0, "%s: %ld allocations leaked", what, fa.live);
	return n;
}

static struct q_cmd mkcmd(uint8_t type, uint64_t now)
{
	struct q_cmd c;

	memset(&c, 0, sizeof(c));
	c.type = type;
	c.now_ms = now;
	return c;
}

static void prep_queues(struct q_state *s)
{
	struct q_settings one = h_plain();

	one.max_deliveries = 1;
	one.dead_letter = "dlq";
	h_create_queue(s, "dlq", NULL, 1);
	h_create_queue(s, "existing", NULL, 1);
	h_create_queue(s, "once", &one, 1);
}

static void prep_topic3(struct q_state *s)
{
	struct q_settings dh = h_plain();

	prep_queues(s);
	dh.max_length = 1;
	dh.overflow = Q_OVERFLOW_DROP_HEAD;
	dh.dead_letter = "dlq";
	h_create_topic(s, "t", 1000, 1);
	h_subscribe(s, "t", "a", NULL, 1);
	h_subscribe(s, "t", "b", &dh, 1);
	h_subscribe(s, "t", "c", NULL, 1);
	h_attach(s, "t:a", 0, 2);
	h_attach(s, "dlq", 0, 2);
	h_publish_topic(s, "t", "first", "one", 3); /* fills t:b */
}

static void prep_waiting(struct q_state *s)
{
	int i;

	prep_queues(s);
	for (i = 0; i < 5; i++)
		h_publish(s, "existing", NULL, "waiting", 2);
}

static void prep_held(struct q_state *s)
{
	prep_queues(s);
	h_attach_ex(s, "once", S1, 0, Q_CREDIT_UNLIMITED, 2);
	h_attach_ex(s, "dlq", S2, 0, Q_CREDIT_UNLIMITED, 2);
	h_publish(s, "once", "x", "held", 3);
	h_publish(s, "once", "y", "held2", 3);
}

TestSuite(oom);

Test(oom, state_new)
{
	struct h_fail_alloc fa;
	struct q_options o = {.hash_seed = 1};
	struct q_state *s;
	long n;

	h_fail_alloc_init(&fa);
	o.allocator = &fa.a;
	for (n = 0;; n++) {
		cr_assert_lt(n, 10000);
		h_fail_alloc_arm(&fa, n, 1);
		s = q_state_new(&o);
		h_fail_alloc_disarm(&fa);
		if (s != NULL)
			break;
		cr_assert_eq(fa.live, 0, "N=%ld: leak", n);
	}
	q_state_free(s);
	cr_assert_eq(fa.live, 0, "q_state_free frees everything");
}

Test(oom, create_queue)
{
	struct q_cmd c = mkcmd(Q_CMD_CREATE_QUEUE, 10);

	c.u.queue.name = "fresh";
	c.u.queue.settings = full_settings();
	cr_assert_gt(oom_sweep(prep_queues, &c, "create_queue"), 0);
}

Test(oom, create_queue_in_empty_state)
{
	struct q_cmd c = mkcmd(Q_CMD_CREATE_QUEUE, 10);

	c.u.queue.name = "first";
	c.u.queue.settings = full_settings();
	cr_assert_gt(oom_sweep(NULL, &c, "create_queue empty"), 0);
}

Test(oom, publish_topic_three_subs_with_dedup_id)
{
	struct q_cmd c = mkcmd(Q_CMD_PUBLISH, 10);

	c.u.publish.topic = "t";
	c.u.publish.msg_id = "second";
	c.u.publish.msg_id_len = 6;
	c.u.publish.body = "payload";
	c.u.publish.body_len = 7;
	cr_assert_gt(oom_sweep(prep_topic3, &c, "publish topic"), 0);
}

Test(oom, publish_queue_with_ttl_and_delay)
{
	struct q_cmd c = mkcmd(Q_CMD_PUBLISH, 10);

	c.u.publish.queue = "existing";
	c.u.publish.msg_id = "abc";
	c.u.publish.msg_id_len = 3;
	c.u.publish.body = "payload";
	c.u.publish.body_len = 7;
	c.u.publish.delay_ms = 100;
	c.u.publish.ttl_ms = 1000;
	cr_assert_gt(oom_sweep(prep_waiting, &c, "publish delayed"), 0);
}

Test(oom, attach_delivering_waiting_messages)
{
	struct q_cmd c = mkcmd(Q_CMD_ATTACH, 10);

	c.u.attach.queue = "existing";
	c.u.attach.session = S1;
	c.u.attach.prefetch = 3;
	c.u.attach.credit = Q_CREDIT_UNLIMITED;
	cr_assert_gt(oom_sweep(prep_waiting, &c, "attach"), 0);
}

Test(oom, subscribe)
{
	struct q_cmd c = mkcmd(Q_CMD_SUBSCRIBE, 10);

	c.u.topic.topic = "t";
	c.u.topic.subscription = "d";
	c.u.topic.settings = full_settings();
	cr_assert_gt(oom_sweep(prep_topic3, &c, "subscribe"), 0);
}

Test(oom, create_topic)
{
	struct q_cmd c = mkcmd(Q_CMD_CREATE_TOPIC, 10);

	c.u.topic.topic = "newtopic";
	c.u.topic.dedup_window_ms = 100;
	cr_assert_gt(oom_sweep(prep_topic3, &c, "create topic"), 0);
}

Test(oom, nack_dead_letters)
{
	q_seq tags[2] = {1, 2};
	struct q_cmd c = mkcmd(Q_CMD_NACK, 10);

	c.u.tags.consumer = 1;
	c.u.tags.tags = tags;
	c.u.tags.n_tags = 2;
	oom_sweep(prep_held, &c, "nack to dlq");
}

Test(oom, session_gone_dead_letters)
{
	struct q_cmd c = mkcmd(Q_CMD_SESSION_GONE, 10);

	c.u.session.session = S1;
	oom_sweep(prep_held, &c, "session gone");
}

Test(oom, tick_firing_timers)
{
	struct q_cmd c = mkcmd(Q_CMD_TICK, 100000000);

	oom_sweep(prep_topic3, &c, "tick topic");
	{
		struct q_cmd c2 = mkcmd(Q_CMD_TICK, 100000000);

		oom_sweep(prep_held, &c2, "tick held");
	}
}

Test(oom, delete_topic)
{
	struct q_cmd c = mkcmd(Q_CMD_DELETE_TOPIC, 10);

	c.u.topic.topic = "t";
	oom_sweep(prep_topic3, &c, "delete topic");
}

static void prep_rich(struct q_state *s)
{
	build_rich(s);
}

/* A consumer with room for one, holding seq 1; four messages wait. */
static void prep_full_consumer(struct q_state *s)
{
	struct q_settings st = h_plain();
	int i;

	st.ack_timeout_ms = 10;
	st.max_deliveries = 1;
	st.dead_letter = "dlq";
	h_create_queue(s, "dlq", NULL, 1);
	h_create_queue(s, "q", &st, 1);
	cr_assert_eq(h_attach(s, "q", 1, 1), 1);
	for (i = 0; i < 5; i++)
		h_publish(s, "q", NULL, "waiting", 2);
}

Test(oom, ack_gives_room_for_a_waiting_message)
{
	q_seq tag = 1;
	struct q_cmd c = mkcmd(Q_CMD_ACK, 5);

	c.u.tags.consumer = 1;
	c.u.tags.tags = &tag;
	c.u.tags.n_tags = 1;
	cr_assert_gt(oom_sweep(prep_full_consumer, &c, "ack"), 0);
}

/* The ack deadline of seq 1 passes: it is dead-lettered (max_deliveries 1)
 * and the consumer takes the next waiting message. */
Test(oom, ack_timeout_gives_room_for_a_waiting_message)
{
	struct q_cmd c = mkcmd(Q_CMD_TICK, 1000);

	cr_assert_gt(oom_sweep(prep_full_consumer, &c, "tick"), 0);
}

static void prep_no_credit(struct q_state *s)
{
	int i;

	h_create_queue(s, "q", NULL, 1);
	cr_assert_eq(h_attach_ex(s, "q", S1, 0, 0, 1).consumer, 1);
	for (i = 0; i < 5; i++)
		h_publish(s, "q", NULL, "waiting", 2);
}

Test(oom, credit_gives_room_for_waiting_messages)
{
	struct q_cmd c = mkcmd(Q_CMD_CREDIT, 5);

	c.u.consumer.consumer = 1;
	c.u.consumer.credit = 3;
	cr_assert_gt(oom_sweep(prep_no_credit, &c, "credit"), 0);
}

/* "q" is drop-head and full: a publish moves its oldest to "dlq", which
 * has a ttl (a timer for the moved message) and a consumer with room (a
 * delivery of it), both of which need a side struct. */
static void prep_drop_head_into_dlq(struct q_state *s)
{
	struct q_settings dl = h_plain(), dh = h_plain();

	dl.ttl_ms = 1000;
	dh.overflow = Q_OVERFLOW_DROP_HEAD;
	dh.max_length = 2;
	dh.dead_letter = "dlq";
	h_create_queue(s, "dlq", &dl, 1);
	h_create_queue(s, "q", &dh, 1);
	h_publish(s, "q", NULL, "old 1", 2);
	h_publish(s, "q", NULL, "old 2", 2);
}

static void prep_drop_head_into_consumed_dlq(struct q_state *s)
{
	prep_drop_head_into_dlq(s);
	cr_assert_neq(h_attach(s, "dlq", 0, 3), 0);
}

Test(oom, publish_drop_head_moves_to_the_dead_letter_queue)
{
	struct q_cmd c = mkcmd(Q_CMD_PUBLISH, 10);

	c.u.publish.queue = "q";
	c.u.publish.body = "new";
	c.u.publish.body_len = 3;
	cr_assert_gt(oom_sweep(prep_drop_head_into_dlq, &c, "drop-head ttl"),
		     0);
	cr_assert_gt(oom_sweep(prep_drop_head_into_consumed_dlq, &c,
			       "drop-head consumer"),
		     0);
}

/* A topic whose subscription "t:a" dead-letters into "t:b", another
 * subscription of the same topic: the publish first moves t:a's oldest
 * into t:b (a ttl since "first" was published: a timer), which then has
 * one message more than before the publish when it makes room itself,
 * moving its own oldest (no ttl, never delivered) to "dlq2" (a consumer: a
 * delivery). */
static void prep_cross_subscriptions(struct q_state *s)
{
	struct q_settings a = h_plain(), b = h_plain();

	a.overflow = b.overflow = Q_OVERFLOW_DROP_HEAD;
	a.max_length = 1;
	a.dead_letter = "t:b";
	b.max_length = 2;
	b.dead_letter = "dlq2";
	h_create_queue(s, "dlq2", NULL, 1);
	cr_assert_neq(h_attach(s, "dlq2", 0, 1), 0);
	h_create_topic(s, "t", 0, 1);
	h_subscribe(s, "t", "a", &a, 1);
	h_subscribe(s, "t", "b", &b, 1);
	h_publish_topic(s, "t", NULL, "first", 2);
	b.ttl_ms = 1000;
	cr_assert_eq(h_configure(s, "t:b", &b, Q_SET_TTL, 3).status, Q_OK);
}

Test(oom, publish_to_a_subscription_dead_lettering_into_another)
{
	struct q_cmd c = mkcmd(Q_CMD_PUBLISH, 10);
	struct h_env e;

	c.u.publish.topic = "t";
	c.u.publish.body = "second";
	c.u.publish.body_len = 6;
	cr_assert_gt(oom_sweep(prep_cross_subscriptions, &c, "cross"), 0);
	/* What the sweep went through: t:b's oldest reached dlq2's
	 * consumer. */
	h_env_init(&e, NULL);
	prep_cross_subscriptions(e.s);
	h_rec_clear(&e.rec);
	h_apply(e.s, &c);
	cr_assert_eq(e.rec.n_d, 1);
	cr_assert_str_eq(e.rec.d[0].queue, "dlq2");
	cr_assert_str_eq(e.rec.d[0].body, "first");
	cr_assert_eq(h_info(e.s, "t:b").ready, 2, "t:a's copy, the new one");
	h_check(e.s);
	h_env_fini(&e);
}

Test(oom, rich_history_steps)
{
	struct q_cmd c = mkcmd(Q_CMD_TICK, 16000);

	oom_sweep(prep_rich, &c, "rich tick");
	c = mkcmd(Q_CMD_DETACH_STALE, 16000);
	c.u.session.session.node_id = 2;
	c.u.session.session.epoch = 1;
	oom_sweep(prep_rich, &c, "rich detach stale");
}

Test(oom, load)
{
	struct h_fail_alloc fa;
	struct q_options o = {.hash_seed = 3};
	struct h_env e, le;
	struct q_state *s;
	void *buf, *empty;
	size_t len, elen;
	long n;
	int rv;

	h_env_init(&e, NULL);
	build_rich(e.s);
	buf = h_dump(e.s, &len);
	empty = empty_dump(&elen);
	h_fail_alloc_init(&fa);
	o.allocator = &fa.a;
	h_env_init(&le, &o);
	s = le.s;
	for (n = 0;; n++) {
		cr_assert_lt(n, 100000);
		h_fail_alloc_arm(&fa, n, 1);
		rv = q_state_load(s, buf, len);
		h_fail_alloc_disarm(&fa);
		if (rv == 0)
			break;
		cr_assert_eq(rv, Q_ENOMEM, "N=%ld: load = %d", n, rv);
		cr_assert(h_dump_is(s, empty, elen),
			  "N=%ld: not empty after failed load", n);
		h_check(s);
	}
	cr_assert_gt(n, 0);
	cr_assert(h_dump_is(s, buf, len));
	h_check(s);
	h_env_fini(&le);
	cr_assert_eq(fa.live, 0, "everything freed");
	free(buf);
	free(empty);
	h_env_fini(&e);
}
