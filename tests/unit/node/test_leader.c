/* Leadership lost while requests are batched (node_server.c, the answer
 * path of node_dispatch.c).
 *
 * A request in an entry that was proposed when the leadership was lost has
 * an unknown outcome (UNKNOWN_OUTCOME: it may still commit under the next
 * leader); one still in the open batch, or waiting for a free slot, was
 * never proposed and is told there is no leader to take it (UNAVAILABLE
 * while none is known). A fetch in flight answers empty. Every request is
 * answered exactly once; sessions with consumers are closed (their
 * consumers belong to the lost leadership), the others stay. Leading again
 * detaches the consumers of the lost leadership (DETACH_STALE), so their
 * messages are ready again. The harness checks at the stop that nothing is
 * left: batches, proposals, handles, session references (and ASan's leak
 * check in the sanitize build). */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

static struct fake_node node;
static struct fake_client *prod;

static void start(void)
{
	prod = tn_start_queue(&node, NULL, "q");
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(leader, .init = start, .fini = stop);

Test(leader, lost_with_an_entry_in_flight)
{
	struct fake_client *fetcher = fake_node_connect(&node);
	uint64_t p1, p2, f, later;
	Raftmq__Client__V1__FetchResult *r;
	p1 = tn_publish(prod, "q", "a", 1);
	p2 = tn_publish(prod, "q", "b", 1);
	f = tn_fetch(fetcher, "q", 1, 1000);
	fake_node_propose(&node);
	cr_assert_eq(node.cons.n_pending, 1);
	cr_assert(fake_cons_complete(&node.cons, CONS_ELEADERSHIPLOST));
	fake_cons_set_leader(&node.cons, false);
	tn_expect_error(prod, p1, EC(UNKNOWN_OUTCOME));
	tn_expect_error(prod, p2, EC(UNKNOWN_OUTCOME));
	tn_expect_none(prod);
	r = tn_expect(fetcher, f, BODY(FETCH_RESULT))->fetch_result;
	cr_assert_eq(r->n_deliveries, 0);
	/* It asked for a consumer of this leadership: closed. */
	tn_expect_error(fetcher, 0, EC(NOT_LEADER));
	tn_expect_none(fetcher);
	cr_assert(fetcher->s->closing);
	cr_assert(!prod->s->closing);
	/* A follower that knows no leader says so. */
	later = tn_publish(prod, "q", "c", 1);
	tn_expect_error(prod, later, EC(UNAVAILABLE));
	fake_node_settle(&node);
	tn_expect_none(prod);
	cr_assert_eq(tn_queue(&node, "q").ready, 0, "nothing applied");
	tn_stop(&node);
}

Test(leader, lost_with_requests_not_proposed_yet)
{
	/* One in flight, one in the open batch: the open one is proposed
	 * after the loss and refused (CONS_ENOTLEADER). */
	uint64_t p1, p2;
	p1 = tn_publish(prod, "q", "a", 1);
	fake_node_propose(&node);
	p2 = tn_publish(prod, "q", "b", 1);
	fake_cons_set_leader(&node.cons, false);
	cr_assert(fake_cons_complete(&node.cons, CONS_ELEADERSHIPLOST));
	fake_node_propose(&node);
	tn_expect_error(prod, p1, EC(UNKNOWN_OUTCOME));
	tn_expect_error(prod, p2, EC(UNAVAILABLE));
	tn_expect_none(prod);
	cr_assert_null(node.srv.open);
	cr_assert_null(node.srv.waiting);
	tn_stop(&node);
}

/* Starts the node again with max_batch_commands 1 and one batch in flight
 * at most, so that requests wait in line. */
static void restart_one_by_one(void)
{
	struct node_config cfg;
	fake_node_stop(&node);
	tn_config(&cfg);
	cfg.max_batch_commands = 1;
	cfg.max_inflight_batches = 1;
	prod = tn_start_queue(&node, &cfg, "q");
}

Test(leader, lost_with_batches_waiting_in_line)
{
	uint64_t p[4];
	size_t i;
	restart_one_by_one();
	for (i = 0; i < 4; i++) {
		p[i] = tn_publish(prod, "q", "x", 1);
	}
	fake_node_propose(&node);
	cr_assert_eq(node.cons.n_pending, 1);
	cr_assert_not_null(node.srv.waiting, "no batch waits");
	fake_cons_set_leader(&node.cons, false);
	cr_assert(fake_cons_complete(&node.cons, CONS_ELEADERSHIPLOST));
	fake_node_propose(&node);
	tn_expect_error(prod, p[0], EC(UNKNOWN_OUTCOME));
	for (i = 1; i < 4; i++) {
		tn_expect_error(prod, p[i], EC(UNAVAILABLE));
	}
	tn_expect_none(prod);
	cr_assert_null(node.srv.waiting);
	cr_assert_eq(node.srv.inflight, 0);
	tn_stop(&node);
}

Test(leader, leading_again_releases_the_lost_leaderships_consumers)
{
	struct fake_client *cl = fake_node_connect(&node);
	struct q_queue_info qi;
	uint64_t corr, again;
	tn_publish_confirmed(prod, "q", 2);
	corr = tn_consume(cl, "q", 10);
	fake_node_settle(&node);
	tn_expect(cl, corr, BODY(CONSUME_RESULT));
	cr_assert_eq(tn_queue(&node, "q").unacked, 2);
	fake_cons_set_leader(&node.cons, false);
	cr_assert(cl->s->closing, "a consumer's session stays open");
	/* (Its SESSION_GONE could not be proposed: not the leader.) */
	fake_cons_set_leader(&node.cons, true);
	cr_assert(node.srv.leader && !node.srv.leader_ready);
	fake_node_settle(&node); /* barrier, then DETACH_STALE */
	cr_assert(node.srv.leader_ready);
	qi = tn_queue(&node, "q");
	cr_assert_eq(qi.consumers, 0);
	cr_assert_eq(qi.unacked, 0);
	cr_assert_eq(qi.ready, 2);
	/* And the node takes requests again. */
	again = tn_publish(prod, "q", "n", 1);
	fake_node_settle(&node);
	tn_expect(prod, again, BODY(PUBLISH_RESULT));
	tn_stop(&node);
}
