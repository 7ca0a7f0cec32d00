/* Behaviour of time: ack deadlines, extend, delayed publish and nack, TTL,
 * next_due, many timers in one tick, and a clock stamp going backwards.
 * Black-box, q.h only. */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Queue "q" with h_plain() plus ack timeout, max deliveries, dead letter. */
static void make_queue(const char *name, uint64_t ack_timeout,
		       uint32_t max_deliveries, const char *dead_letter)
{
	struct q_settings st = h_plain();

	st.ack_timeout_ms = ack_timeout;
	st.max_deliveries = max_deliveries;
	st.dead_letter = dead_letter;
	cr_assert_eq(h_create_queue(H.s, name, &st, 0).status, Q_OK);
}

static void make_ttl_queue(const char *name, uint64_t ttl,
			   const char *dead_letter)
{
	struct q_settings st = h_plain();

	st.ttl_ms = ttl;
	st.dead_letter = dead_letter;
	cr_assert_eq(h_create_queue(H.s, name, &st, 0).status, Q_OK);
}

TestSuite(timers_ack, .init = h_setup, .fini = h_teardown);

Test(timers_ack, timeout_requeues_exactly_at_deadline)
{
	make_queue("q", 1000, 0, NULL);
	h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 100);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(q_state_next_due(H.s), 1100);
	h_tick(H.s, 1099);
	cr_assert_eq(H.rec.n_d, 1, "not before the deadline");
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	h_tick(H.s, 1100);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 2, "requeued and redelivered at the deadline");
	cr_assert_eq(h_rec_last(&H.rec)->seq, 1);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	cr_assert_eq(q_state_next_due(H.s), 2100);
}

Test(timers_ack, timeout_counts_a_failure)
{
	make_queue("q", 1000, 1, NULL);
	h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1, "failure 1 = max_deliveries: dropped");
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
}

Test(timers_ack, timeout_dead_letters_with_max_deliveries_reason)
{
	q_consumer_id d;

	make_queue("dlq", 0, 0, NULL);
	make_queue("q", 1000, 1, "dlq");
	h_attach(H.s, "q", 0, 0);
	d = h_attach(H.s, "dlq", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, d);
	cr_assert_eq(h_rec_last(&H.rec)->dl_reason, Q_REASON_MAX_DELIVERIES);
}

Test(timers_ack, other_commands_do_not_fire_timers)
{
	q_consumer_id c;

	make_queue("q", 1000, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_publish(H.s, "q", NULL, "y", 5000); /* past the deadline, no tick */
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(h_info(H.s, "q").unacked, 2);
	cr_assert_eq(h_ack1(H.s, c, 1, 5000).status, Q_OK,
		     "still held: only TICK fires timers");
	h_check(H.s);
}

Test(timers_ack, zero_timeout_means_no_deadline)
{
	make_queue("q", 0, 0, NULL);
	h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
	h_tick(H.s, 10000000);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
}

Test(timers_ack, ack_removes_the_deadline)
{
	q_consumer_id c;

	make_queue("q", 1000, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_ack1(H.s, c, 1, 10);
	h_tick(H.s, 5000);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_info(H.s, "q").acked, 1);
	h_check(H.s);
}

Test(timers_ack, extend_with_ms_pushes_deadline)
{
	q_consumer_id c;
	q_seq t = 1;
	struct q_result r;

	make_queue("q", 1000, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);	/* deadline 1000 */
	r = h_extend(H.s, c, &t, 1, 2000, 500); /* deadline 2500 */
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(q_state_next_due(H.s), 2500);
	h_tick(H.s, 1000);
	h_tick(H.s, 2499);
	cr_assert_eq(H.rec.n_d, 1);
	h_tick(H.s, 2500);
	cr_assert_eq(H.rec.n_d, 2);
	h_check(H.s);
}

Test(timers_ack, extend_with_zero_uses_queue_timeout)
{
	q_consumer_id c;
	q_seq t = 1;

	make_queue("q", 1000, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(h_extend(H.s, c, &t, 1, 0, 700).status, Q_OK);
	cr_assert_eq(q_state_next_due(H.s), 1700);
	h_tick(H.s, 1699);
	cr_assert_eq(H.rec.n_d, 1);
	h_tick(H.s, 1700);
	cr_assert_eq(H.rec.n_d, 2);
	h_check(H.s);
}

Test(timers_ack, extend_unknown_tag)
{
	q_consumer_id c;
	q_seq t = 42;
	struct q_result r;

	make_queue("q", 1000, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	r = h_extend(H.s, c, &t, 1, 10, 1);
	cr_assert_eq(r.status, Q_EUNKNOWNTAG);
	cr_assert_eq(r.unknown, 1);
}

Test(timers_ack, thousand_deadlines_fire_in_one_tick_in_seq_order)
{
	size_t i;

	make_queue("q", 1000, 0, NULL);
	h_attach(H.s, "q", 0, 0);
	for (i = 0; i < 1000; i++)
		h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(H.rec.n_d, 1000);
	h_rec_clear(&H.rec);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1000);
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(H.rec.d[i].seq, i + 1);
		cr_assert_eq(H.rec.d[i].delivery_count, 2);
	}
	cr_assert_eq(q_state_next_due(H.s), 2000);
}

Test(timers_ack, deadlines_across_queues_fire_by_due)
{
	make_queue("a", 300, 0, NULL);
	make_queue("b", 100, 0, NULL);
	h_attach(H.s, "a", 0, 0);
	h_attach(H.s, "b", 0, 0);
	h_publish(H.s, "a", NULL, "a", 0); /* due 300 */
	h_publish(H.s, "b", NULL, "b", 0); /* due 100 */
	h_rec_clear(&H.rec);
	h_tick(H.s, 300);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_neq(h_rec_find(&H.rec, "a", 1), -1);
	cr_assert_neq(h_rec_find(&H.rec, "b", 2), -1);
	cr_assert_eq(q_state_next_due(H.s), 400, "b redelivered at 300 + 100");
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(timers_delay, .init = h_setup, .fini = h_teardown);

Test(timers_delay, delayed_publish_waits_until_due)
{
	struct h_pub p = {.delay_ms = 500};

	make_queue("q", 0, 0, NULL);
	h_attach(H.s, "q", 0, 0);
	cr_assert_eq(h_publish_ex(H.s, "q", NULL, "d", &p, 100).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 0);
	cr_assert_eq(h_info(H.s, "q").delayed, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	cr_assert_eq(q_state_next_due(H.s), 600);
	h_tick(H.s, 599);
	cr_assert_eq(H.rec.n_d, 0);
	h_tick(H.s, 600);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_str_eq(H.rec.d[0].body, "d");
	cr_assert_eq(H.rec.d[0].delivery_count, 1);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	h_check(H.s);
}

Test(timers_delay, delayed_publish_joins_ready_tail)
{
	struct h_pub p = {.delay_ms = 500};

	make_queue("q", 0, 0, NULL);
	h_publish_ex(H.s, "q", NULL, "late", &p, 100); /* due 600 */
	h_publish(H.s, "q", NULL, "early", 700); /* no tick: stays delayed */
	cr_assert_eq(h_info(H.s, "q").delayed, 1);
	h_tick(H.s, 700);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	h_attach(H.s, "q", 0, 800);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_str_eq(H.rec.d[0].body, "early");
	cr_assert_str_eq(H.rec.d[1].body, "late");
	h_check(H.s);
}

Test(timers_delay, nack_with_delay_returns_at_due_before_ready)
{
	q_consumer_id c;

	make_queue("q", 0, 0, NULL);
	c = h_attach(H.s, "q", 1, 0);
	h_publish(H.s, "q", NULL, "1", 10);
	h_publish(H.s, "q", NULL, "2", 10);
	h_publish(H.s, "q", NULL, "3", 10);
	cr_assert_eq(h_nack1(H.s, c, 1, 300, 1000).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(h_rec_last(&H.rec)->seq, 2, "c had room: got the next");
	cr_assert_eq(h_info(H.s, "q").delayed, 1);
	cr_assert_eq(q_state_next_due(H.s), 1300);
	h_tick(H.s, 1299);
	cr_assert_eq(h_info(H.s, "q").delayed, 1);
	h_tick(H.s, 1300);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	cr_assert_eq(H.rec.n_d, 2, "c is full");
	h_ack1(H.s, c, 2, 1400);
	cr_assert_eq(H.rec.n_d, 3);
	cr_assert_eq(h_rec_last(&H.rec)->seq, 1, "returned before ready");
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(timers_ttl, .init = h_setup, .fini = h_teardown);

Test(timers_ttl, queue_ttl_expires_on_tick)
{
	make_ttl_queue("q", 1000, NULL);
	h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(q_state_next_due(H.s), 1000);
	h_tick(H.s, 999);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
}

Test(timers_ttl, message_ttl_overrides_queue_ttl)
{
	struct h_pub p = {.ttl_ms = 200};

	make_ttl_queue("q", 1000, NULL);
	h_publish_ex(H.s, "q", NULL, "short", &p, 0);
	h_publish(H.s, "q", NULL, "long", 0);
	h_tick(H.s, 200);
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_attach(H.s, "q", 0, 300);
	cr_assert_str_eq(h_rec_last(&H.rec)->body, "long");
	h_check(H.s);
}

Test(timers_ttl, expiry_dead_letters_with_reason_expired)
{
	q_consumer_id d;
	const struct h_delivery *x;

	make_queue("dlq", 0, 0, NULL);
	make_ttl_queue("q", 1000, "dlq");
	d = h_attach(H.s, "dlq", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1);
	x = h_rec_last(&H.rec);
	cr_assert_eq(x->consumer, d);
	cr_assert_eq(x->dl_reason, Q_REASON_EXPIRED);
	cr_assert_str_eq(x->dl_queue, "q");
	cr_assert_str_eq(x->body, "x");
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	cr_assert_eq(h_info(H.s, "q").dead_lettered, 1);
}

Test(timers_ttl, expired_message_is_not_delivered_without_tick)
{
	make_ttl_queue("q", 1000, NULL);
	h_publish(H.s, "q", NULL, "old", 0);
	h_publish(H.s, "q", NULL, "new", 1200);
	h_attach(H.s, "q", 0, 1500); /* no TICK in between */
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_str_eq(H.rec.d[0].body, "new");
	cr_assert_eq(h_info(H.s, "q").expired, 1);
}

Test(timers_ttl, held_message_does_not_expire)
{
	q_consumer_id c;

	make_ttl_queue("q", 100, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_tick(H.s, 500);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_info(H.s, "q").expired, 0);
	cr_assert_eq(h_ack1(H.s, c, 1, 600).status, Q_OK);
	h_check(H.s);
}

Test(timers_ttl, message_returned_after_expiry_expires)
{
	q_consumer_id c;

	make_ttl_queue("q", 100, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(h_release1(H.s, c, 1, 600).status, Q_OK);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1, "expired on return: not redelivered");
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
}

Test(timers_ttl, queue_ttl_is_taken_at_enqueue)
{
	struct q_settings ch = h_plain();

	make_ttl_queue("q", 0, NULL);
	h_publish(H.s, "q", NULL, "x", 0);
	ch.ttl_ms = 100;
	h_configure(H.s, "q", &ch, Q_SET_TTL, 10);
	h_publish(H.s, "q", NULL, "y", 20); /* expires at 120 */
	h_tick(H.s, 5000);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	h_attach(H.s, "q", 0, 5001);
	cr_assert_str_eq(h_rec_last(&H.rec)->body, "x");
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(timers_clock, .init = h_setup, .fini = h_teardown);

Test(timers_clock, next_due_is_max_when_nothing_pending)
{
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
	make_queue("q", 1000, 0, NULL);
	h_publish(H.s, "q", NULL, "x", 5);
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
}

Test(timers_clock, next_due_is_the_earliest)
{
	struct h_pub late = {.delay_ms = 5000}, soon = {.delay_ms = 300};

	make_queue("q", 1000, 0, NULL);
	h_publish_ex(H.s, "q", NULL, "a", &late, 0); /* 5000 */
	cr_assert_eq(q_state_next_due(H.s), 5000);
	h_attach(H.s, "q", 0, 100);
	h_publish(H.s, "q", NULL, "b", 100); /* deadline 1100 */
	cr_assert_eq(q_state_next_due(H.s), 1100);
	h_publish_ex(H.s, "q", NULL, "c", &soon, 200); /* 500 */
	cr_assert_eq(q_state_next_due(H.s), 500);
	h_check(H.s);
}

Test(timers_clock, now_is_the_max_stamp)
{
	cr_assert_eq(q_state_now(H.s), 0);
	h_tick(H.s, 1000);
	cr_assert_eq(q_state_now(H.s), 1000);
	h_tick(H.s, 500);
	cr_assert_eq(q_state_now(H.s), 1000);
	make_queue("q", 0, 0, NULL); /* stamp 0 */
	cr_assert_eq(q_state_now(H.s), 1000);
	h_tick(H.s, 1001);
	cr_assert_eq(q_state_now(H.s), 1001);
}

Test(timers_clock, backwards_stamp_uses_state_clock)
{
	make_queue("q", 1000, 0, NULL);
	h_tick(H.s, 5000);
	h_attach(H.s, "q", 0, 100);
	h_publish(H.s, "q", NULL, "x", 100);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(H.rec.d[0].published_ms, 5000);
	cr_assert_eq(q_state_next_due(H.s), 6000);
	h_tick(H.s, 5999);
	h_tick(H.s, 200);
	cr_assert_eq(H.rec.n_d, 1, "timers do not fire early");
	cr_assert_eq(q_state_now(H.s), 5999);
	h_tick(H.s, 6000);
	cr_assert_eq(H.rec.n_d, 2);
	h_check(H.s);
}

Test(timers_clock, backwards_stamp_does_not_shorten_dedup_window)
{
	struct q_settings st = h_plain();
	struct q_result r;

	st.dedup_window_ms = 1000;
	h_create_queue(H.s, "q", &st, 0);
	h_publish(H.s, "q", "id", "x", 5000);
	r = h_publish(H.s, "q", "id", "x", 10); /* clock stays 5000 */
	cr_assert(r.duplicate);
	h_tick(H.s, 6000);
	r = h_publish(H.s, "q", "id", "x", 10);
	cr_assert_not(r.duplicate);
	h_check(H.s);
}

Test(timers_clock, backwards_delay_is_from_state_clock)
{
	struct h_pub p = {.delay_ms = 100};

	make_queue("q", 0, 0, NULL);
	h_tick(H.s, 1000);
	h_publish_ex(H.s, "q", NULL, "x", &p, 10);
	cr_assert_eq(q_state_next_due(H.s), 1100);
	h_attach(H.s, "q", 0, 20);
	h_tick(H.s, 1099);
	cr_assert_eq(H.rec.n_d, 0);
	h_tick(H.s, 1100);
	cr_assert_eq(H.rec.n_d, 1);
}

/* --------------------------------------------------------------------- */

TestSuite(timers_more, .init = h_setup, .fini = h_teardown);

/* q.h: a message expires "when its timer fires, or when it is about to be
 * delivered or returned after its expiry". A delayed message's timer is its
 * due time, so a TTL shorter than the delay may be noticed only then; either
 * way it must never be delivered. */
Test(timers_more, ttl_shorter_than_delay_is_never_delivered)
{
	struct h_pub p = {.delay_ms = 1000, .ttl_ms = 500};

	make_queue("q", 0, 0, NULL);
	h_attach(H.s, "q", 0, 0);
	h_publish_ex(H.s, "q", NULL, "x", &p, 0);
	cr_assert_leq(q_state_next_due(H.s), 1000);
	h_tick(H.s, 1000);
	cr_assert_eq(h_info(H.s, "q").expired, 1);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	h_tick(H.s, 2000);
	cr_assert_eq(H.rec.n_d, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(timers_more, delayed_nack_at_max_dead_letters_at_once)
{
	q_consumer_id c;

	make_queue("q", 0, 1, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	h_nack1(H.s, c, 1, 5000, 10);
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(timers_more, extend_with_zero_on_queue_without_timeout_clears_deadline)
{
	q_consumer_id c;
	q_seq t = 1;

	make_queue("q", 0, 0, NULL);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "x", 0);
	cr_assert_eq(h_extend(H.s, c, &t, 1, 100, 10).status, Q_OK);
	cr_assert_eq(q_state_next_due(H.s), 110);
	cr_assert_eq(h_extend(H.s, c, &t, 1, 0, 20).status, Q_OK);
	h_tick(H.s, 1000000);
	cr_assert_eq(H.rec.n_d, 1, "no deadline after extend 0 with timeout 0");
	h_check(H.s);
}

Test(timers_more, dead_lettered_copy_expiring_in_dlq_is_dropped)
{
	struct q_settings dl = h_plain(), dl2 = h_plain();

	dl.ttl_ms = 100;
	dl.dead_letter = "dlq2";
	h_create_queue(H.s, "dlq2", &dl2, 0);
	h_create_queue(H.s, "dlq", &dl, 0);
	make_ttl_queue("q", 50, "dlq");
	h_publish(H.s, "q", NULL, "x", 0);
	h_tick(H.s, 50);
	cr_assert_eq(h_info(H.s, "dlq").ready, 1);
	h_tick(H.s, 1000);
	h_check(H.s);
	cr_assert_eq(h_info(H.s, "dlq").expired, 1);
	cr_assert_eq(h_info(H.s, "dlq").dropped, 1);
	cr_assert_eq(h_info(H.s, "dlq2").ready, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
}

Test(timers_more, purge_and_delete_cancel_timers)
{
	struct h_pub p = {.delay_ms = 500};

	make_queue("q", 0, 0, NULL);
	make_ttl_queue("t", 700, NULL);
	h_publish_ex(H.s, "q", NULL, "x", &p, 0);
	h_publish(H.s, "t", NULL, "y", 0);
	h_purge(H.s, "q", 1);
	h_delete_queue(H.s, "t", 1);
	h_tick(H.s, 10000);
	h_check(H.s);
	cr_assert_eq(q_state_next_due(H.s), UINT64_MAX);
	cr_assert_eq(h_totals(H.s).messages, 0);
}
