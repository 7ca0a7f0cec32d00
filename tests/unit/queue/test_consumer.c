/* Behaviour of consumers: attach, automatic delivery, prefetch, credit,
 * round-robin, ack / nack / release, dead-lettering on failed deliveries,
 * detach and session cleanup. Black-box, q.h only. */
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* "q" with h_plain() settings plus the given max_deliveries / dead letter. */
static void make_queue(const char *name, uint32_t max_deliveries,
		       const char *dead_letter)
{
	struct q_settings st = h_plain();

	st.max_deliveries = max_deliveries;
	st.dead_letter = dead_letter;
	cr_assert_eq(h_create_queue(H.s, name, &st, 0).status, Q_OK);
}

/* The i-th recorded delivery is of `seq`, with delivery_count `count`. */
static void delivery_is(size_t i, q_seq seq, uint32_t count)
{
	cr_assert_lt(i, H.rec.n_d, "delivery %zu of %zu", i, H.rec.n_d);
	cr_assert_eq(H.rec.d[i].seq, seq, "delivery %zu: seq %llu, want %llu",
		     i, (unsigned long long)H.rec.d[i].seq,
		     (unsigned long long)seq);
	cr_assert_eq(H.rec.d[i].delivery_count, count,
		     "delivery %zu (seq %llu): count %u, want %u", i,
		     (unsigned long long)seq, H.rec.d[i].delivery_count, count);
}

static const struct q_session S1 = {1, 1, 101};
static const struct q_session S2 = {1, 1, 102};

TestSuite(consumer_attach, .init = h_setup, .fini = h_teardown);

Test(consumer_attach, unknown_queue_is_enotfound)
{
	struct q_result r =
		h_attach_ex(H.s, "nope", H_SESSION, 0, Q_CREDIT_UNLIMITED, 1);

	cr_assert_eq(r.status, Q_ENOTFOUND);
	cr_assert_eq(h_consumer_count(H.s), 0);
	h_check(H.s);
}

Test(consumer_attach, ids_count_from_1)
{
	make_queue("q", 0, NULL);
	cr_assert_eq(h_attach(H.s, "q", 0, 1), 1);
	cr_assert_eq(h_attach(H.s, "q", 0, 1), 2);
	cr_assert_eq(h_info(H.s, "q").consumers, 2);
	cr_assert_eq(h_totals(H.s).consumers, 2);
	h_check(H.s);
}

Test(consumer_attach, consumer_info_reports_attach_arguments)
{
	struct q_consumer_info ci;
	struct q_result r;

	make_queue("q", 0, NULL);
	r = h_attach_ex(H.s, "q", S1, 5, 9, 1);
	cr_assert_eq(r.status, Q_OK);
	cr_assert(h_consumer_info(H.s, r.consumer, &ci));
	cr_assert_str_eq(ci.queue, "q");
	cr_assert_eq(ci.prefetch, 5);
	cr_assert_eq(ci.credit, 9);
	cr_assert_eq(ci.unacked, 0);
	cr_assert_eq(ci.session.node_id, S1.node_id);
	cr_assert_eq(ci.session.session_id, S1.session_id);
}

Test(consumer_attach, publish_delivers_to_attached_consumer)
{
	q_consumer_id c;
	const struct h_delivery *d;
	struct q_result r;

	make_queue("q", 0, NULL);
	c = h_attach_ex(H.s, "q", S1, 0, Q_CREDIT_UNLIMITED, 1).consumer;
	cr_assert_eq(H.rec.n_d, 0);
	r = h_publish(H.s, "q", "m1", "hello", 42);
	cr_assert_eq(H.rec.n_d, 1, "delivered inside the publish apply");
	d = h_rec_last(&H.rec);
	cr_assert_eq(d->consumer, c);
	cr_assert_eq(d->seq, r.seq);
	cr_assert_str_eq(d->queue, "q");
	cr_assert_str_eq(d->body, "hello");
	cr_assert_eq(d->delivery_count, 1);
	cr_assert_eq(d->published_ms, 42);
	cr_assert_eq(d->dl_reason, Q_REASON_NONE);
	cr_assert_null(d->dl_queue);
	cr_assert(d->has_session);
	cr_assert_eq(d->session.session_id, S1.session_id);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	h_check(H.s);
}

Test(consumer_attach, attach_delivers_waiting_messages)
{
	make_queue("q", 0, NULL);
	h_publish(H.s, "q", NULL, "a", 1);
	h_publish(H.s, "q", NULL, "b", 1);
	cr_assert_eq(H.rec.n_d, 0);
	h_attach(H.s, "q", 0, 2);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(H.rec.d[0].seq, 1);
	cr_assert_eq(H.rec.d[1].seq, 2);
	h_check(H.s);
}

Test(consumer_attach, prefetch_limits_unacked)
{
	q_consumer_id c;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 2, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 3);
	h_publish(H.s, "q", NULL, "3", 4);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 2);
	cr_assert_eq(h_ack1(H.s, c, 1, 5).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 3, "the ack made room: third delivered");
	cr_assert_eq(h_rec_last(&H.rec)->seq, 3);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	h_check(H.s);
}

Test(consumer_attach, prefetch_zero_is_unlimited)
{
	int i;

	make_queue("q", 0, NULL);
	h_attach(H.s, "q", 0, 1);
	for (i = 0; i < 50; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 50);
	cr_assert_eq(h_info(H.s, "q").unacked, 50);
	h_check(H.s);
}

Test(consumer_attach, round_robin_between_two_consumers)
{
	q_consumer_id a, b;
	int i;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 0, 1);
	b = h_attach(H.s, "q", 0, 1);
	for (i = 0; i < 4; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 4);
	cr_assert_eq(H.rec.d[0].consumer, a);
	cr_assert_eq(H.rec.d[1].consumer, b);
	cr_assert_eq(H.rec.d[2].consumer, a);
	cr_assert_eq(H.rec.d[3].consumer, b);
	h_check(H.s);
}

Test(consumer_attach, round_robin_skips_full_consumer)
{
	q_consumer_id a, b;
	int i;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 1, 1);
	b = h_attach(H.s, "q", 0, 1);
	for (i = 0; i < 4; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(h_rec_count_for(&H.rec, a), 1);
	cr_assert_eq(h_rec_count_for(&H.rec, b), 3);
	cr_assert_eq(H.rec.d[0].consumer, a);
	h_check(H.s);
}

Test(consumer_attach, credit_delivers_exactly_n)
{
	struct q_result r;
	struct q_consumer_info ci;
	q_consumer_id c;
	int i;

	make_queue("q", 0, NULL);
	r = h_attach_ex(H.s, "q", S1, 0, 0, 1); /* pull consumer, no credit */
	c = r.consumer;
	for (i = 0; i < 5; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 0);
	cr_assert_eq(h_credit(H.s, c, 0, 2, 3).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert(h_consumer_info(H.s, c, &ci));
	cr_assert_eq(ci.credit, 0);
	h_publish(H.s, "q", NULL, "x", 4);
	cr_assert_eq(H.rec.n_d, 2, "no credit left");
	cr_assert_eq(h_credit(H.s, c, 0, 1, 5).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 3);
	cr_assert_eq(h_info(H.s, "q").ready, 3);
	h_check(H.s);
}

Test(consumer_attach, credit_zero_stops_delivery)
{
	q_consumer_id c;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_credit(H.s, c, 0, 0, 3).status, Q_OK);
	h_publish(H.s, "q", NULL, "y", 4);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_credit(H.s, c, 0, Q_CREDIT_UNLIMITED, 5).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 2);
	h_check(H.s);
}

Test(consumer_attach, credit_can_change_prefetch)
{
	q_consumer_id c;
	int i;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 1, 1);
	for (i = 0; i < 4; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 1);
	h_credit(H.s, c, 3, Q_CREDIT_UNLIMITED, 3);
	cr_assert_eq(H.rec.n_d, 3);
	h_check(H.s);
}

Test(consumer_attach, unknown_consumer_is_enoconsumer)
{
	q_seq t = 1;

	make_queue("q", 0, NULL);
	h_publish(H.s, "q", NULL, "x", 1);
	cr_assert_eq(h_ack(H.s, 77, &t, 1, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_nack(H.s, 77, &t, 1, 0, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_release(H.s, 77, &t, 1, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_extend(H.s, 77, &t, 1, 0, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_detach(H.s, 77, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_credit(H.s, 77, 0, 1, 2).status, Q_ENOCONSUMER);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(consumer_ack, .init = h_setup, .fini = h_teardown);

Test(consumer_ack, ack_removes_message)
{
	q_consumer_id c;
	struct q_result r;
	struct q_consumer_info ci;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	r = h_ack1(H.s, c, 1, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.unknown, 0);
	cr_assert_eq(h_info(H.s, "q").acked, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	cr_assert_eq(h_totals(H.s).bodies, 0);
	cr_assert(h_consumer_info(H.s, c, &ci));
	cr_assert_eq(ci.unacked, 0);
	h_check(H.s);
}

Test(consumer_ack, unknown_tag)
{
	q_consumer_id c;
	struct q_result r;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_ack1(H.s, c, 1, 3);
	r = h_ack1(H.s, c, 1, 4); /* already acked */
	cr_assert_eq(r.status, Q_EUNKNOWNTAG);
	cr_assert_eq(r.count, 0);
	cr_assert_eq(r.unknown, 1);
	r = h_ack1(H.s, c, 999, 4);
	cr_assert_eq(r.status, Q_EUNKNOWNTAG);
	cr_assert_eq(r.unknown, 1);
	cr_assert_eq(h_info(H.s, "q").acked, 1);
	h_check(H.s);
}

Test(consumer_ack, ready_message_tag_is_unknown)
{
	q_consumer_id c;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 1, 1);
	h_publish(H.s, "q", NULL, "held", 2);
	h_publish(H.s, "q", NULL, "ready", 2);
	cr_assert_eq(h_ack1(H.s, c, 2, 3).status, Q_EUNKNOWNTAG);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_check(H.s);
}

Test(consumer_ack, tag_of_other_consumer_is_refused)
{
	q_consumer_id a, b;
	struct q_result r;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 0, 1);
	b = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2); /* to a */
	cr_assert_eq(H.rec.d[0].consumer, a);
	r = h_ack1(H.s, b, 1, 3);
	cr_assert_eq(r.status, Q_EUNKNOWNTAG);
	cr_assert_eq(r.unknown, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_nack1(H.s, b, 1, 0, 3).status, Q_EUNKNOWNTAG);
	cr_assert_eq(h_release1(H.s, b, 1, 3).status, Q_EUNKNOWNTAG);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_ack1(H.s, a, 1, 4).status, Q_OK);
	h_check(H.s);
}

Test(consumer_ack, multi_tag_with_some_unknown)
{
	q_consumer_id c;
	q_seq tags[4] = {1, 99, 3, 2};
	struct q_result r;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 2);
	h_publish(H.s, "q", NULL, "3", 2);
	r = h_ack(H.s, c, tags, 4, 3);
	cr_assert_eq(r.status, Q_EUNKNOWNTAG);
	cr_assert_eq(r.count, 3);
	cr_assert_eq(r.unknown, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 0);
	cr_assert_eq(h_info(H.s, "q").acked, 3);
	h_check(H.s);
}

Test(consumer_ack, multi_tag_all_known_is_ok)
{
	q_consumer_id c;
	q_seq tags[2] = {2, 1};
	struct q_result r;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 2);
	r = h_ack(H.s, c, tags, 2, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 2);
	cr_assert_eq(r.unknown, 0);
	h_check(H.s);
}

Test(consumer_ack, empty_tag_list_is_invalid)
{
	q_consumer_id c;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 0, 1);
	cr_assert_eq(h_ack(H.s, c, NULL, 0, 2).status, Q_EINVAL);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(consumer_nack, .init = h_setup, .fini = h_teardown);

Test(consumer_nack, requeues_to_front_with_count_2)
{
	q_consumer_id c;
	const struct h_delivery *d;
	struct q_result r;

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 1, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 2);
	h_publish(H.s, "q", NULL, "3", 2);
	cr_assert_eq(H.rec.n_d, 1);
	r = h_nack1(H.s, c, 1, 0, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(H.rec.n_d, 2);
	d = h_rec_last(&H.rec);
	cr_assert_eq(d->seq, 1, "returned before ready");
	cr_assert_eq(d->delivery_count, 2);
	cr_assert_str_eq(d->body, "1");
	cr_assert_eq(h_info(H.s, "q").redelivered, 1);
	cr_assert_eq(h_info(H.s, "q").nacked, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	h_check(H.s);
}

Test(consumer_nack, returned_in_order_they_came_back)
{
	q_consumer_id c;
	q_seq tags[2] = {2, 1};

	make_queue("q", 0, NULL);
	c = h_attach(H.s, "q", 2, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 2);
	h_publish(H.s, "q", NULL, "3", 2);
	h_credit(H.s, c, 2, 0, 3); /* stop deliveries */
	h_nack(H.s, c, tags, 2, 0, 4);
	h_credit(H.s, c, 0, Q_CREDIT_UNLIMITED, 5);
	cr_assert_eq(H.rec.n_d, 5);
	cr_assert_eq(H.rec.d[2].seq, 2);
	cr_assert_eq(H.rec.d[3].seq, 1);
	cr_assert_eq(H.rec.d[4].seq, 3);
	h_check(H.s);
}

Test(consumer_nack, past_max_deliveries_without_dlq_drops)
{
	q_consumer_id c;

	make_queue("q", 2, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_nack1(H.s, c, 1, 0, 3); /* failure 1: requeued, redelivered */
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(h_nack1(H.s, c, 1, 0, 4).status, Q_OK); /* failure 2 */
	cr_assert_eq(H.rec.n_d, 2, "not redelivered");
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	cr_assert_eq(h_info(H.s, "q").dead_lettered, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(consumer_nack, dead_letter_does_not_exist_drops)
{
	q_consumer_id c;

	make_queue("q", 1, "missing");
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_nack1(H.s, c, 1, 0, 3);
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(consumer_nack, past_max_deliveries_moves_to_dlq)
{
	q_consumer_id c, d;
	const struct h_delivery *x;

	make_queue("dlq", 0, NULL);
	make_queue("q", 1, "dlq");
	c = h_attach(H.s, "q", 0, 1);
	d = h_attach(H.s, "dlq", 0, 1);
	h_publish(H.s, "q", "mid", "payload", 2);
	cr_assert_eq(h_nack1(H.s, c, 1, 0, 3).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 2);
	x = h_rec_last(&H.rec);
	cr_assert_eq(x->consumer, d);
	cr_assert_str_eq(x->queue, "dlq");
	cr_assert_str_eq(x->body, "payload");
	cr_assert_eq(x->dl_reason, Q_REASON_MAX_DELIVERIES);
	cr_assert_not_null(x->dl_queue);
	cr_assert_str_eq(x->dl_queue, "q");
	cr_assert_eq(x->seq, 2, "fresh seq from the state counter");
	cr_assert_eq(h_info(H.s, "q").dead_lettered, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 0);
	cr_assert_eq(h_info(H.s, "dlq").unacked, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "next", 4).seq, 3);
	h_check(H.s);
}

Test(consumer_nack, already_dead_lettered_is_dropped_not_again)
{
	struct q_settings st = h_plain();
	q_consumer_id c, d;

	make_queue("dlq2", 0, NULL);
	st.max_deliveries = 1;
	st.dead_letter = "dlq2";
	h_create_queue(H.s, "dlq", &st, 0);
	make_queue("q", 1, "dlq");
	c = h_attach(H.s, "q", 0, 1);
	d = h_attach(H.s, "dlq", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_nack1(H.s, c, 1, 0, 3);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, d);
	h_nack1(H.s, d, h_rec_last(&H.rec)->seq, 0, 4);
	cr_assert_eq(h_info(H.s, "dlq").dropped, 1);
	cr_assert_eq(h_info(H.s, "dlq").dead_lettered, 0);
	cr_assert_eq(h_info(H.s, "dlq2").ready, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(consumer_nack, release_never_counts_a_failure)
{
	q_consumer_id c;
	int i;

	make_queue("q", 1, NULL);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	for (i = 0; i < 5; i++) {
		struct q_result r = h_release1(H.s, c, 1, 3 + (uint64_t)i);

		cr_assert_eq(r.status, Q_OK);
		cr_assert_eq(r.count, 1);
	}
	cr_assert_eq(H.rec.n_d, 6);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 6);
	cr_assert_eq(h_info(H.s, "q").released, 5);
	cr_assert_eq(h_info(H.s, "q").dropped, 0);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	h_check(H.s);
}

Test(consumer_nack, detach_returns_unacked_without_failure)
{
	q_consumer_id a, b;
	struct q_result r;

	make_queue("q", 1, NULL);
	a = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_publish(H.s, "q", NULL, "y", 2);
	r = h_detach(H.s, a, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	cr_assert_eq(h_info(H.s, "q").consumers, 0);
	cr_assert_eq(h_info(H.s, "q").dropped, 0);
	b = h_attach(H.s, "q", 0, 4);
	cr_assert_eq(H.rec.n_d, 4);
	cr_assert_eq(H.rec.d[2].consumer, b);
	cr_assert_eq(H.rec.d[2].seq, 1);
	cr_assert_eq(H.rec.d[2].delivery_count, 2);
	cr_assert_eq(H.rec.d[3].seq, 2);
	cr_assert_eq(h_ack1(H.s, a, 1, 5).status, Q_ENOCONSUMER);
	h_check(H.s);
}

/* A client library's buffer: pushed, never handed to the application. */
Test(consumer_nack, detach_unseen_undoes_their_delivery)
{
	const q_seq unseen[] = {2, 3};
	q_consumer_id a, b;
	struct q_result r;

	make_queue("q", 1, NULL);
	a = h_attach(H.s, "q", 10, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_publish(H.s, "q", NULL, "y", 2);
	h_publish(H.s, "q", NULL, "z", 2);
	cr_assert_eq(h_rec_count_for(&H.rec, a), 3);
	/* The application saw seq 1 only (not acked). */
	r = h_detach_unseen(H.s, a, unseen, 2, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 3);
	cr_assert_eq(h_info(H.s, "q").dropped, 0, "no failure counted");
	h_check(H.s);
	b = h_attach(H.s, "q", 10, 4);
	cr_assert_eq(h_rec_count_for(&H.rec, b), 3);
	/* Back in delivery order; only seq 1 was delivered before. */
	delivery_is(3, 1, 2);
	delivery_is(4, 2, 1);
	delivery_is(5, 3, 1);
	cr_assert_eq(h_info(H.s, "q").delivered, 6, "pushes still counted");
	cr_assert_eq(h_info(H.s, "q").redelivered, 1);
	h_check(H.s);
}

Test(consumer_nack, detach_unseen_twice_named_is_undone_once)
{
	const q_seq twice[] = {1, 1, 1};
	q_consumer_id a, b;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 10, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	h_release1(H.s, a, 1, 3); /* delivered again: count 2 */
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_detach_unseen(H.s, a, twice, 3, 4);
	h_check(H.s);
	b = h_attach(H.s, "q", 10, 5);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, b);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_check(H.s);
}

Test(consumer_nack, detach_unseen_ignores_tags_it_does_not_hold)
{
	q_consumer_id a, b, c;
	q_seq of_b;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 1, 1);
	b = h_attach(H.s, "q", 1, 1);
	h_publish(H.s, "q", NULL, "x", 2); /* to a */
	h_publish(H.s, "q", NULL, "y", 2); /* to b */
	h_publish(H.s, "q", NULL, "z", 2); /* ready */
	cr_assert_eq(H.rec.d[1].consumer, b);
	of_b = H.rec.d[1].seq;
	{
		const q_seq unseen[] = {of_b, 3, 99};
		cr_assert_eq(h_detach_unseen(H.s, a, unseen, 3, 3).status,
			     Q_OK);
	}
	h_check(H.s);
	/* b still holds its message; a's came back. */
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	h_detach(H.s, b, 4);
	c = h_attach(H.s, "q", 0, 5);
	cr_assert_eq(h_rec_count_for(&H.rec, c), 3);
	for (size_t i = 0; i < H.rec.n_d; i++) {
		if (H.rec.d[i].consumer == c) {
			cr_assert_eq(H.rec.d[i].delivery_count,
				     H.rec.d[i].seq == 3 ? 1 : 2, "seq %llu",
				     (unsigned long long)H.rec.d[i].seq);
		}
	}
	h_check(H.s);
}

/* A pull consumer's delivery that arrived after its fetch was answered: the
 * node releases it as unseen. It returns as any release and its delivery is
 * undone, so the next fetch gets it with the count it had. */
Test(consumer_nack, release_unseen_undoes_the_delivery)
{
	const q_seq late = 2;
	q_consumer_id a;
	struct q_result r;

	make_queue("q", 2, NULL);
	a = h_attach_ex(H.s, "q", S1, 0, 2, 1).consumer;
	h_publish(H.s, "q", NULL, "x", 2);
	h_publish(H.s, "q", NULL, "y", 2);
	h_publish(H.s, "q", NULL, "z", 2);
	cr_assert_eq(h_rec_count_for(&H.rec, a), 2, "credit 2");
	r = h_release_unseen(H.s, a, &late, 1, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	cr_assert_eq(h_info(H.s, "q").released, 1);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	h_check(H.s);
	/* The next fetch's credit: seq 2 first (returned), still a first
	 * delivery; then seq 3. */
	h_credit(H.s, a, 0, 2, 4);
	cr_assert_eq(H.rec.n_d, 4);
	delivery_is(2, 2, 1);
	delivery_is(3, 3, 1);
	cr_assert_eq(h_info(H.s, "q").delivered, 4, "pushes still counted");
	cr_assert_eq(h_info(H.s, "q").redelivered, 0);
	h_check(H.s);
}

/* Only the unseen delivery is undone: earlier failed deliveries still count
 * towards max_deliveries, and the count never drops below them. */
Test(consumer_nack, release_unseen_keeps_earlier_failures)
{
	q_consumer_id a, d;

	make_queue("dlq", 0, NULL);
	make_queue("q", 2, "dlq");
	a = h_attach_ex(H.s, "q", S1, 0, 1, 1).consumer;
	h_publish(H.s, "q", NULL, "x", 2);
	h_nack1(H.s, a, 1, 0, 3); /* failure 1 of 2 */
	h_credit(H.s, a, 0, 1, 4);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_release_unseen(H.s, a, (const q_seq[]){1}, 1, 5);
	h_check(H.s);
	h_credit(H.s, a, 0, 1, 6);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2,
		     "the failed delivery still counts");
	h_release_unseen(H.s, a, (const q_seq[]){1}, 1, 7);
	h_check(H.s);
	h_credit(H.s, a, 0, 1, 8);
	h_nack1(H.s, a, 1, 0, 9); /* failure 2 of 2: dead-lettered */
	cr_assert_eq(h_info(H.s, "q").dead_lettered, 1);
	d = h_attach(H.s, "dlq", 0, 10);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, d);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 3,
		     "two failed deliveries and this one");
	h_check(H.s);
}

Test(consumer_nack, release_unseen_tag_named_twice_is_undone_once)
{
	const q_seq twice[] = {1, 1};
	q_consumer_id a;
	struct q_result r;

	make_queue("q", 0, NULL);
	a = h_attach_ex(H.s, "q", S1, 0, 1, 1).consumer;
	h_publish(H.s, "q", NULL, "x", 2);
	h_release1(H.s, a, 1, 3); /* seen: counts */
	h_credit(H.s, a, 0, 1, 4);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	r = h_release_unseen(H.s, a, twice, 2, 5);
	cr_assert_eq(r.status, Q_EUNKNOWNTAG, "the second is not held");
	cr_assert_eq(r.count, 1);
	cr_assert_eq(r.unknown, 1);
	h_check(H.s);
	h_credit(H.s, a, 0, 1, 6);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_check(H.s);
}

Test(consumer_nack, session_gone_counts_a_failure)
{
	q_consumer_id a, b, d;
	struct q_result r;

	make_queue("dlq", 0, NULL);
	make_queue("q", 1, "dlq");
	a = h_attach_ex(H.s, "q", S1, 0, Q_CREDIT_UNLIMITED, 1).consumer;
	h_publish(H.s, "q", NULL, "x", 2); /* to a */
	b = h_attach_ex(H.s, "q", S2, 0, Q_CREDIT_UNLIMITED, 3).consumer;
	d = h_attach(H.s, "dlq", 0, 3);
	cr_assert_eq(H.rec.d[0].consumer, a);
	r = h_session_gone(H.s, S1, 4);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 1);
	h_check(H.s);
	/* failure 1 == max_deliveries: dead-lettered, not given to b */
	cr_assert_eq(h_rec_count_for(&H.rec, b), 0);
	cr_assert_eq(h_rec_count_for(&H.rec, d), 1);
	cr_assert_eq(h_rec_last(&H.rec)->dl_reason, Q_REASON_MAX_DELIVERIES);
	cr_assert_eq(H.rec.n_g, 1);
	cr_assert_eq(H.rec.g[0].consumer, a);
	cr_assert_eq(h_consumer_count(H.s), 2);
	cr_assert_eq(h_info(H.s, "q").consumers, 1);
}

Test(consumer_nack, session_gone_requeues_below_limit)
{
	q_consumer_id b;

	make_queue("q", 3, NULL);
	h_attach_ex(H.s, "q", S1, 0, Q_CREDIT_UNLIMITED, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	b = h_attach_ex(H.s, "q", S2, 0, Q_CREDIT_UNLIMITED, 3).consumer;
	h_session_gone(H.s, S1, 4);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, b);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_check(H.s);
}

Test(consumer_nack, session_gone_of_unknown_session_is_noop)
{
	struct q_session none = {9, 9, 9};
	struct q_result r;

	make_queue("q", 0, NULL);
	h_attach_ex(H.s, "q", S1, 0, Q_CREDIT_UNLIMITED, 1);
	r = h_session_gone(H.s, none, 2);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 0);
	cr_assert_eq(h_consumer_count(H.s), 1);
	h_check(H.s);
}

Test(consumer_nack, detach_stale_keeps_only_node_epoch)
{
	struct q_session old = {1, 1, 5}, cur = {1, 2, 6}, other = {2, 2, 7};
	q_consumer_id c_old, c_cur, c_other;
	struct q_result r;
	struct q_consumer_info ci;

	make_queue("q", 1, NULL);
	c_old = h_attach_ex(H.s, "q", old, 1, Q_CREDIT_UNLIMITED, 1).consumer;
	c_cur = h_attach_ex(H.s, "q", cur, 1, Q_CREDIT_UNLIMITED, 1).consumer;
	c_other =
		h_attach_ex(H.s, "q", other, 1, Q_CREDIT_UNLIMITED, 1).consumer;
	h_publish(H.s, "q", NULL, "1", 2); /* old */
	h_publish(H.s, "q", NULL, "2", 2); /* cur */
	h_publish(H.s, "q", NULL, "3", 2); /* other */
	cr_assert_eq(H.rec.n_d, 3);
	r = h_detach_stale(H.s, 1, 2, 3);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 2);
	h_check(H.s);
	cr_assert_not(h_consumer_info(H.s, c_old, &ci));
	cr_assert_not(h_consumer_info(H.s, c_other, &ci));
	cr_assert(h_consumer_info(H.s, c_cur, &ci));
	cr_assert_eq(h_consumer_count(H.s), 1);
	/* not a failure: with max_deliveries 1 the messages are back, not
	 * dropped */
	cr_assert_eq(h_info(H.s, "q").dropped, 0);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	cr_assert_eq(h_ack1(H.s, c_cur, 2, 4).status, Q_OK);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, c_cur);
	cr_assert_eq(h_rec_last(&H.rec)->seq, 1);
	cr_assert_eq(h_rec_last(&H.rec)->delivery_count, 2);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(consumer_cursor, .init = h_setup, .fini = h_teardown);

Test(consumer_cursor, detach_of_last_receiver_moves_to_next)
{
	q_consumer_id a, b, c;
	int i;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 0, 1);
	b = h_attach(H.s, "q", 0, 1);
	c = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "1", 2); /* a */
	h_publish(H.s, "q", NULL, "2", 2); /* b */
	h_detach(H.s, b, 3);		   /* 2 returned: goes to c */
	for (i = 0; i < 2; i++)
		h_publish(H.s, "q", NULL, "x", 4);
	cr_assert_eq(H.rec.n_d, 5);
	cr_assert_eq(H.rec.d[2].consumer, c);
	cr_assert_eq(H.rec.d[2].seq, 2);
	cr_assert_eq(H.rec.d[3].consumer, a);
	cr_assert_eq(H.rec.d[4].consumer, c);
	h_check(H.s);
}

Test(consumer_cursor, late_attach_joins_the_rotation)
{
	q_consumer_id a, b, c;
	int i;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 0, 1);
	b = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "1", 2); /* a */
	c = h_attach(H.s, "q", 0, 3);
	for (i = 0; i < 3; i++)
		h_publish(H.s, "q", NULL, "x", 4);
	cr_assert_eq(H.rec.n_d, 4);
	cr_assert_eq(H.rec.d[1].consumer, b);
	cr_assert_eq(H.rec.d[2].consumer, c);
	cr_assert_eq(H.rec.d[3].consumer, a);
	h_check(H.s);
}

Test(consumer_cursor, freed_room_goes_round_robin)
{
	q_consumer_id a, b;
	int i;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 1, 1);
	b = h_attach(H.s, "q", 1, 1);
	for (i = 0; i < 4; i++)
		h_publish(H.s, "q", NULL, "x", 2);
	cr_assert_eq(H.rec.n_d, 2);
	h_ack1(H.s, b, 2, 3);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, b, "only b has room");
	cr_assert_eq(h_rec_last(&H.rec)->seq, 3);
	h_ack1(H.s, a, 1, 4);
	cr_assert_eq(h_rec_last(&H.rec)->consumer, a);
	cr_assert_eq(h_rec_last(&H.rec)->seq, 4);
	h_check(H.s);
}

/* q_state_delivery(): what a node that writes a delivery later checks. */
TestSuite(consumer_lookup, .init = h_setup, .fini = h_teardown);

Test(consumer_lookup, names_only_what_the_consumer_still_holds)
{
	q_consumer_id a, b;
	struct q_delivery d;

	make_queue("q", 0, NULL);
	a = h_attach(H.s, "q", 0, 1);
	h_publish(H.s, "q", NULL, "x", 2);
	delivery_is(0, 1, 1);
	cr_assert_eq(q_state_delivery(H.s, a, 1, 1, &d), 0);
	cr_assert_eq(d.consumer, a);
	cr_assert_eq(d.seq, 1);
	cr_assert_eq(d.delivery_count, 1);
	cr_assert_eq(d.body_len, 1);
	cr_assert_str_eq(d.queue, "q");
	cr_assert_eq(q_state_delivery(H.s, a, 1, 2, &d), Q_ENOTFOUND);
	cr_assert_eq(q_state_delivery(H.s, a, 2, 1, &d), Q_ENOTFOUND);
	cr_assert_eq(q_state_delivery(H.s, a + 100, 1, 1, &d), Q_ENOTFOUND);

	/* Taken back and given to the same consumer again: a new delivery
	 * under the same tag; the first is no longer to be sent. */
	cr_assert_eq(h_release1(H.s, a, 1, 3).status, Q_OK);
	delivery_is(1, 1, 2);
	cr_assert_eq(q_state_delivery(H.s, a, 1, 1, &d), Q_ENOTFOUND);
	cr_assert_eq(q_state_delivery(H.s, a, 1, 2, &d), 0);

	/* Another consumer of the queue does not hold it. */
	b = h_attach(H.s, "q", 0, 4);
	cr_assert_eq(q_state_delivery(H.s, b, 1, 2, &d), Q_ENOTFOUND);

	cr_assert_eq(h_ack1(H.s, a, 1, 5).status, Q_OK);
	cr_assert_eq(q_state_delivery(H.s, a, 1, 2, &d), Q_ENOTFOUND);

	h_publish(H.s, "q", NULL, "y", 6); /* seq 2, to a or b */
	cr_assert_eq(H.rec.n_d, 3);
	cr_assert_eq(q_state_delivery(H.s, H.rec.d[2].consumer, 2, 1, &d), 0);
	h_detach(H.s, H.rec.d[2].consumer, 7);
	cr_assert_eq(q_state_delivery(H.s, H.rec.d[2].consumer, 2, 1, &d),
		     Q_ENOTFOUND);
	h_check(H.s);
}
