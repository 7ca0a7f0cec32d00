/* Out of memory for a consumer's record (node_write.c, node_fetch.c,
 * node_deliver.c).
 *
 * The state and the session must agree on which consumers exist. If the
 * node attaches a consumer in the state and then cannot record it in the
 * session, the consumer holds messages nobody can ack (UNKNOWN_CONSUMER),
 * and every delivery to it piles up in the session's early list until the
 * connection closes (seen before the fix: the client got a ConsumeResult
 * all the same, or for a Fetch no answer at all). The record is made
 * before the ATTACH is proposed: out of memory then, the request is
 * refused with NO_MEMORY and nothing is proposed; and the same client can
 * consume once memory is back. fault.h fails the allocation of the size of
 * a consumer record (struct node_consumer) once. */
#include <criterion/criterion.h>

#include "fault.h"
#include "helpers.h"

static struct fake_node node;
static struct fake_client *prod, *cl;

static void start(void)
{
	prod = tn_start_queue(&node, NULL, "q");
	cl = fake_node_connect(&node);
	tn_publish_confirmed(prod, "q", 3);
}

static void stop(void)
{
	fault_reset();
	tn_cleanup(&node);
}

TestSuite(oom, .init = start, .fini = stop);

/* The state holds no consumer of the session, the session no consumer and
 * no delivery, and the three messages are ready. */
static void expect_in_step(void)
{
	struct q_queue_info qi;
	fake_node_settle(&node);
	cr_assert_eq(tn_state_consumers(&node, cl), tn_session_consumers(cl),
		     "the state has %zu consumers of the session, the "
		     "session %zu",
		     tn_state_consumers(&node, cl), tn_session_consumers(cl));
	cr_assert_eq(tn_state_consumers(&node, cl), 0);
	cr_assert_eq(tn_session_early(cl), 0, "deliveries pile up");
	qi = tn_queue(&node, "q");
	cr_assert_eq(qi.consumers, 0);
	cr_assert_eq(qi.unacked, 0);
	cr_assert_eq(qi.ready, 3);
}

/* The same client consumes again, without the fault, and acks all three. */
static void expect_retry_works(void)
{
	uint64_t tags[3], corr, id;
	size_t i;
	Envelope *e;
	corr = tn_consume(cl, "q", 10);
	fake_node_settle(&node);
	id = tn_expect(cl, corr, BODY(CONSUME_RESULT))
		     ->consume_result->consumer_id;
	for (i = 0; i < 3; i++) {
		e = tn_expect(cl, corr, BODY(DELIVERY));
		cr_assert_eq(e->delivery->consumer_id, id);
		tags[i] = e->delivery->tag;
	}
	corr = tn_tags(cl, BODY(ACK), id, tags, 3);
	fake_node_settle(&node);
	e = tn_expect(cl, corr, BODY(ACK_RESULT));
	cr_assert_eq(e->ack_result->done, 3);
	cr_assert_eq(tn_queue(&node, "q").ready, 0);
}

Test(oom, consume_refused_when_its_record_cannot_be_made)
{
	uint64_t corr;
	fault_fail_size(sizeof(struct node_consumer), 1);
	corr = tn_consume(cl, "q", 10);
	fake_node_settle(&node);
	cr_assert_eq(fault_reset(), 1, "the consumer's record never failed");
	tn_expect_error(cl, corr, EC(NO_MEMORY));
	tn_expect_none(cl);
	expect_in_step();
	expect_retry_works();
	tn_stop(&node);
}

Test(oom, fetch_refused_when_its_record_cannot_be_made)
{
	uint64_t corr;
	fault_fail_size(sizeof(struct node_consumer), 1);
	corr = tn_fetch(cl, "q", 5, 1000);
	fake_node_settle(&node);
	cr_assert_eq(fault_reset(), 1, "the consumer's record never failed");
	tn_expect_error(cl, corr, EC(NO_MEMORY));
	tn_expect_none(cl);
	cr_assert_null(cl->s->fetches, "the fetch still waits");
	expect_in_step();
	expect_retry_works();
	tn_stop(&node);
}

Test(oom, refused_attach_frees_the_record)
{
	/* The ATTACH is refused by the state (no such queue): the record
	 * made for it goes with the request (the leak check that ends
	 * every test), and the session has no consumer. */
	uint64_t c1 = tn_consume(cl, "nosuch", 10);
	uint64_t c2 = tn_fetch(cl, "nosuch", 1, 0);
	fake_node_settle(&node);
	tn_expect_error(cl, c1, EC(NOT_FOUND));
	tn_expect_error(cl, c2, EC(NOT_FOUND));
	cr_assert_eq(tn_session_consumers(cl), 0);
	cr_assert_null(cl->s->fetches);
	tn_stop(&node);
}
