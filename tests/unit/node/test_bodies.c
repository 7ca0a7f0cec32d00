/* FetchBodies served by a node (node_bodies.c) over the fake consensus,
 * whose cons_body_read() hands out pointers that die at the next read
 * (fake_cons.h): the keys the node has come back in the order asked, with
 * their bytes and sums, the others are left out; the answer stops before
 * max_bytes (or the node's cap) with at least one record; a follower
 * answers too; reading stops after a time budget, with at least one
 * record; a store that fails is an error only when nothing was read.
 * Who may ask is in test_perm.c (admin). */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

static struct fake_node node;

/* A node whose answers stop for room only (the fake's reads are fast, but
 * a loaded machine must not cut an answer short here). */
static void start(void)
{
	tn_start(&node, NULL);
	node.srv.fetch_bodies_ns = UINT64_MAX;
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(bodies, .fini = stop);

static uint64_t fetch(struct fake_client *c, const uint64_t *keys, size_t n,
		      uint64_t max_bytes)
{
	Raftmq__Client__V1__FetchBodies m;
	PB(fetch_bodies__init)(&m);
	m.keys = (uint64_t *)(uintptr_t)keys;
	m.n_keys = n;
	m.max_bytes = max_bytes;
	return tn_send(c, BODY(FETCH_BODIES), &m);
}

static Raftmq__Client__V1__FetchBodiesResult *answer(struct fake_client *c,
						     uint64_t corr)
{
	Envelope *e = tn_expect(c, corr, BODY(FETCH_BODIES_RESULT));
	/* The result of a version-3 request is written in version 3. */
	cr_assert_eq(e->version, 3);
	return e->fetch_bodies_result;
}

/* Body of key k: "body-K" repeated to len bytes; id "id-K". */
static void put(uint64_t k, size_t len)
{
	char id[32], *body = malloc(len + 1);
	size_t i;
	int n = snprintf(id, sizeof id, "id-%llu", (unsigned long long)k);
	cr_assert_not_null(body);
	for (i = 0; i < len; i++) {
		body[i] = (char)('a' + (k + i) % 26);
	}
	fake_cons_body_put(&node.cons, k, id, (size_t)n, body, len);
	free(body);
}

static void expect_record(const Raftmq__Client__V1__BodyRecord *r, uint64_t k,
			  size_t len)
{
	char id[32];
	size_t i;
	int n = snprintf(id, sizeof id, "id-%llu", (unsigned long long)k);
	cr_assert_eq(r->key, k);
	cr_assert_eq(r->msg_id.len, (size_t)n);
	cr_assert(memcmp(r->msg_id.data, id, (size_t)n) == 0);
	cr_assert_eq(r->body.len, len, "key %llu: %zu bytes",
		     (unsigned long long)k, r->body.len);
	for (i = 0; i < len; i++) {
		cr_assert_eq(r->body.data[i], (uint8_t)('a' + (k + i) % 26),
			     "key %llu byte %zu", (unsigned long long)k, i);
	}
	cr_assert_eq(r->sum, cons_body_sum(r->msg_id.data, r->msg_id.len,
					   r->body.data, r->body.len));
}

Test(bodies, the_keys_it_has_in_the_order_asked)
{
	static const uint64_t keys[] = {9, 1, 5, 7, 100};
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	start();
	put(5, 10);
	put(7, 0); /* an empty body is a body */
	put(9, 300);
	c = fake_node_connect(&node);
	r = answer(c, fetch(c, keys, 5, 0));
	cr_assert_eq(r->n_records, 3);
	expect_record(r->records[0], 9, 300);
	expect_record(r->records[1], 5, 10);
	expect_record(r->records[2], 7, 0);
	/* none of them: an empty answer, not an error */
	r = answer(c, fetch(c, keys + 1, 1, 0));
	cr_assert_eq(r->n_records, 0);
	tn_expect_none(c);
	cr_assert_eq(node.cons.proposals, 1, "only the node's DETACH_STALE");
	tn_stop(&node);
}

/* Each record counts its id, its body and 32 bytes. */
Test(bodies, stops_before_max_bytes_with_at_least_one)
{
	uint64_t keys[10];
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	size_t i;
	start();
	for (i = 0; i < 10; i++) {
		keys[i] = i + 1;
		put(i + 1, 1000); /* 1000 + 4 + 32 = 1036 bytes each */
	}
	c = fake_node_connect(&node);
	r = answer(c, fetch(c, keys, 10, 3 * 1036));
	cr_assert_eq(r->n_records, 3);
	r = answer(c, fetch(c, keys, 10, 3 * 1036 - 1));
	cr_assert_eq(r->n_records, 2);
	r = answer(c, fetch(c, keys, 10, 1));
	cr_assert_eq(r->n_records, 1);
	expect_record(r->records[0], 1, 1000);
	r = answer(c, fetch(c, keys + 4, 6, 0));
	cr_assert_eq(r->n_records, 6);
	for (i = 0; i < 6; i++) {
		expect_record(r->records[i], i + 5, 1000);
	}
	tn_stop(&node);
}

/* max_bytes 0 or over the cap: the node's cap, 4 MiB. */
Test(bodies, the_nodes_cap)
{
	static const uint64_t keys[] = {1, 2, 3, 4, 5, 6};
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	size_t i;
	start();
	for (i = 0; i < 6; i++) {
		put(i + 1, 1u << 20);
	}
	c = fake_node_connect(&node);
	r = answer(c, fetch(c, keys, 6, 0));
	cr_assert_eq(r->n_records, 3);
	for (i = 0; i < 3; i++) {
		expect_record(r->records[i], i + 1, 1u << 20);
	}
	r = answer(c, fetch(c, keys, 6, UINT64_MAX));
	cr_assert_eq(r->n_records, 3);
	tn_stop(&node);
}

/* Any node answers from its own store: no redirect to the leader. */
Test(bodies, a_follower_answers)
{
	static const uint64_t keys[] = {3};
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	start();
	fake_cons_set_leader(&node.cons, false);
	put(3, 20);
	c = fake_node_connect(&node);
	r = answer(c, fetch(c, keys, 1, 0));
	cr_assert_eq(r->n_records, 1);
	expect_record(r->records[0], 3, 20);
	tn_stop(&node);
}

/* A store that fails: an error when nothing was read, else what was. */
Test(bodies, a_failing_store)
{
	static const uint64_t keys[] = {1, 2, 3};
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	Envelope *e;
	start();
	put(1, 5);
	put(2, 5);
	put(3, 5);
	c = fake_node_connect(&node);
	node.cons.body_eio_key = 2;
	r = answer(c, fetch(c, keys, 3, 0));
	cr_assert_eq(r->n_records, 1);
	expect_record(r->records[0], 1, 5);
	e = tn_expect_error(c, fetch(c, keys + 1, 2, 0), EC(INTERNAL));
	cr_assert_not_null(strstr(e->error->message, "body store"), "%s",
			   e->error->message);
	tn_stop(&node);
}

/* The time budget: an answer stops once reading took longer, with at least
 * one record; the client asks again from the next key. */
Test(bodies, reading_stops_after_the_time_budget)
{
	static const uint64_t keys[] = {1, 2, 3};
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct fake_client *c;
	start();
	node.srv.fetch_bodies_ns = 1;
	put(1, 5);
	put(2, 5);
	put(3, 5);
	c = fake_node_connect(&node);
	r = answer(c, fetch(c, keys, 3, 0));
	cr_assert_eq(r->n_records, 1);
	expect_record(r->records[0], 1, 5);
	r = answer(c, fetch(c, keys + 1, 2, 0));
	cr_assert_eq(r->n_records, 1);
	expect_record(r->records[0], 2, 5);
	tn_stop(&node);
}
