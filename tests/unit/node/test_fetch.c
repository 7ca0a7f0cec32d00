/* Fetch (pull) timing, node_dispatch.c: a Fetch answers as soon as it holds
 * max_messages, or when its wait_ms is over with what it holds (possibly
 * nothing), never before; wait_ms 0 answers right after the ATTACH. Credit
 * left when it answers is withdrawn, so later messages stay in the queue.
 * Timers never run on their own here: the harness fires them (as if the
 * wait were over), after checking they were armed for wait_ms. */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

static struct fake_node node;
static struct fake_client *prod, *cons;

static void start(void)
{
	prod = tn_start_queue(&node, NULL, "q");
	cons = fake_node_connect(&node);
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(fetch, .init = start, .fini = stop);

static void publish(size_t n)
{
	tn_publish_confirmed(prod, "q", n);
}

/* The session's one waiting fetch (answered ones are unlinked). */
static struct node_fetch *waiting_fetch(void)
{
	struct node_fetch *f = cons->s->fetches;
	cr_assert_not_null(f, "no fetch waits");
	cr_assert_null(f->next, "two fetches wait");
	return f;
}

static Raftmq__Client__V1__FetchResult *expect_result(uint64_t corr, size_t n)
{
	Raftmq__Client__V1__FetchResult *r =
		tn_expect(cons, corr, BODY(FETCH_RESULT))->fetch_result;
	cr_assert_eq(r->n_deliveries, n, "%zu deliveries, expected %zu",
		     r->n_deliveries, n);
	return r;
}

Test(fetch, answers_when_max_is_held)
{
	Raftmq__Client__V1__FetchResult *r;
	struct node_fetch *f;
	uint64_t corr = tn_fetch(cons, "q", 3, 5000);
	size_t i;
	fake_node_settle(&node);
	tn_expect_none(cons); /* empty queue: it waits */
	f = waiting_fetch();
	cr_assert(uv_is_active((uv_handle_t *)&f->timer));
	cr_assert_eq(uv_timer_get_due_in(&f->timer), 5000);
	publish(2);
	tn_expect_none(cons); /* 2 of 3 */
	publish(1);
	r = expect_result(corr, 3);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(r->deliveries[i]->consumer_id, r->consumer_id);
		cr_assert_eq(r->deliveries[i]->tag, i + 1);
	}
	tn_expect_none(cons);
	cr_assert_null(cons->s->fetches, "answered, yet still waiting");
	cr_assert_eq(tn_queue(&node, "q").unacked, 3);
	tn_stop(&node);
}

Test(fetch, answers_when_the_wait_is_over)
{
	struct q_queue_info qi;
	uint64_t corr;
	publish(2);
	corr = tn_fetch(cons, "q", 5, 1000);
	fake_node_settle(&node);
	tn_expect_none(cons); /* 2 of 5, the wait is not over */
	cr_assert_eq(uv_timer_get_due_in(&waiting_fetch()->timer), 1000);
	fake_node_fire_fetch_timers(cons);
	expect_result(corr, 2);
	/* The credit left is withdrawn: a later message stays ready. */
	fake_node_settle(&node);
	publish(1);
	tn_expect_none(cons);
	qi = tn_queue(&node, "q");
	cr_assert_eq(qi.ready, 1);
	cr_assert_eq(qi.unacked, 2);
	tn_stop(&node);
}

Test(fetch, answers_empty_when_the_wait_is_over)
{
	uint64_t corr = tn_fetch(cons, "q", 2, 200);
	fake_node_settle(&node);
	tn_expect_none(cons);
	fake_node_fire_fetch_timers(cons);
	expect_result(corr, 0);
	fake_node_settle(&node);
	publish(1);
	tn_expect_none(cons);
	cr_assert_eq(tn_queue(&node, "q").ready, 1);
	tn_stop(&node);
}

Test(fetch, no_wait_answers_after_the_attach)
{
	uint64_t corr;
	publish(1);
	corr = tn_fetch(cons, "q", 4, 0);
	fake_node_settle(&node);
	expect_result(corr, 1);
	cr_assert_null(cons->s->fetches);
	tn_stop(&node);
}

Test(fetch, a_second_fetch_reuses_the_consumer)
{
	Raftmq__Client__V1__FetchResult *r;
	uint64_t consumer, corr = tn_fetch(cons, "q", 1, 0);
	fake_node_settle(&node);
	consumer = expect_result(corr, 0)->consumer_id;
	publish(1);
	corr = tn_fetch(cons, "q", 1, 1000);
	fake_node_settle(&node);
	r = expect_result(corr, 1);
	cr_assert_eq(r->consumer_id, consumer);
	cr_assert_eq(tn_queue(&node, "q").consumers, 1);
	tn_stop(&node);
}

/* A delivery made after its fetch was answered: the publish that uses the
 * credit is in the log before the withdrawal the answer proposes. Nobody
 * waits for it, so the node releases it at once, as unseen: it is never
 * pushed, and the next fetch gets it with the delivery_count it had. */
Test(fetch, a_late_delivery_comes_back_unseen)
{
	Raftmq__Client__V1__FetchResult *r;
	struct q_queue_info qi;
	uint64_t pub, corr = tn_fetch(cons, "q", 5, 1000);
	fake_node_settle(&node);
	tn_expect_none(cons);
	pub = tn_publish(prod, "q", "m", 1); /* in the open batch... */
	fake_node_fire_fetch_timers(cons);   /* ...before the withdrawal */
	expect_result(corr, 0);
	fake_node_settle(&node);
	tn_expect(prod, pub, BODY(PUBLISH_RESULT));
	tn_expect_none(cons); /* not pushed */
	qi = tn_queue(&node, "q");
	cr_assert_eq(qi.delivered, 1, "the late delivery was made");
	cr_assert_eq(qi.released, 1, "and given back");
	cr_assert_eq(qi.unacked, 0);
	cr_assert_eq(qi.ready, 1);
	corr = tn_fetch(cons, "q", 1, 0);
	fake_node_settle(&node);
	r = expect_result(corr, 1);
	cr_assert_eq(r->deliveries[0]->delivery_count, 1,
		     "delivery_count %u: the late delivery was counted",
		     r->deliveries[0]->delivery_count);
	cr_assert(!r->deliveries[0]->redelivered);
	tn_stop(&node);
}
