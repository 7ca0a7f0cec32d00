/* Deliveries and the session (node_dispatch.c, the delivery sink).
 *
 * queue/ delivers inside apply, as soon as a consumer has room: for a
 * Consume on a queue with messages, before the ConsumeResult is written.
 * Those early deliveries are held until the result is out, so a client
 * always learns its consumer id first (DESIGN: result before deliveries). */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

static struct fake_node node;
static struct fake_client *prod, *cl;

static void start(void)
{
	prod = tn_start_queue(&node, NULL, "q");
	cl = fake_node_connect(&node);
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(deliver, .init = start, .fini = stop);

static void publish(size_t n)
{
	tn_publish_confirmed(prod, "q", n);
}

/* `n` Delivery frames for consumer `id`, tags first, first + 1... */
static void expect_deliveries(struct fake_client *c, uint64_t corr, uint64_t id,
			      uint64_t first, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		Envelope *e = tn_expect(c, corr, BODY(DELIVERY));
		cr_assert_eq(e->delivery->consumer_id, id);
		cr_assert_eq(e->delivery->tag, first + i);
	}
}

Test(deliver, consume_result_comes_before_early_deliveries)
{
	uint64_t corr, id;
	publish(3);
	corr = tn_consume(cl, "q", 10);
	fake_node_settle(&node);
	id = tn_expect(cl, corr, BODY(CONSUME_RESULT))
		     ->consume_result->consumer_id;
	cr_assert_neq(id, 0);
	expect_deliveries(cl, corr, id, 1, 3);
	tn_expect_none(cl);
	cr_assert_eq(tn_session_early(cl), 0);
	/* Pushed at once from now on. */
	publish(1);
	expect_deliveries(cl, corr, id, 4, 1);
	tn_stop(&node);
}

Test(deliver, early_deliveries_of_two_consumers_stay_apart)
{
	/* Two Consumes in one entry: each client gets its own result first,
	 * then only its own deliveries. */
	struct fake_client *other = fake_node_connect(&node);
	uint64_t c1, c2, id1, id2;
	publish(4);
	c1 = tn_consume(cl, "q", 2);
	c2 = tn_consume(other, "q", 2);
	fake_node_settle(&node);
	cr_assert_eq(node.cons.history[node.cons.n_history - 1].n, 2,
		     "both consumes in one entry");
	id1 = tn_expect(cl, c1, BODY(CONSUME_RESULT))
		      ->consume_result->consumer_id;
	id2 = tn_expect(other, c2, BODY(CONSUME_RESULT))
		      ->consume_result->consumer_id;
	cr_assert_neq(id1, id2);
	expect_deliveries(cl, c1, id1, 1, 2);
	expect_deliveries(other, c2, id2, 3, 2);
	tn_expect_none(cl);
	tn_expect_none(other);
	tn_stop(&node);
}

Test(deliver, fetch_takes_early_deliveries_in_its_result)
{
	Raftmq__Client__V1__FetchResult *r;
	uint64_t corr;
	publish(2);
	corr = tn_fetch(cl, "q", 2, 1000);
	fake_node_settle(&node);
	r = tn_expect(cl, corr, BODY(FETCH_RESULT))->fetch_result;
	cr_assert_eq(r->n_deliveries, 2);
	tn_expect_none(cl);
	cr_assert_eq(tn_session_early(cl), 0);
	tn_stop(&node);
}
