/* q_state_peek(): a read-only look at a queue, in seq order, from a seq,
 * bounded by max, with delayed and held messages on request. It must
 * change nothing: same dump, same counters, no sink call, and the next
 * consumer sees the delivery counts as if nobody had peeked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* What a peek saw: copies of the fields tests check. */
struct seen {
	size_t n;
	q_seq seq[64];
	uint8_t state[64];
	uint32_t count[64];
	q_consumer_id consumer[64];
	uint64_t due[64];
	uint8_t dl_reason[64];
	char body[64][16];
	char dl_queue[64][16];
	int stop_after;	   /* cb returns 7 after this many (0 = never) */
	const char *queue; /* the queue peeked */
};

static int record(void *data, const struct q_peeked *m)
{
	struct seen *s = data;
	size_t i = s->n++;

	cr_assert_lt(i, 64);
	s->seq[i] = m->msg.seq;
	s->state[i] = m->state;
	s->count[i] = m->msg.delivery_count;
	s->consumer[i] = m->msg.consumer;
	s->due[i] = m->due_ms;
	s->dl_reason[i] = m->msg.dl_reason;
	snprintf(s->body[i], sizeof s->body[i], "%.*s", (int)m->msg.body_len,
		 (const char *)h_delivery_body(&m->msg));
	snprintf(s->dl_queue[i], sizeof s->dl_queue[i], "%s",
		 m->msg.dl_queue != NULL ? m->msg.dl_queue : "");
	cr_assert_str_eq(m->msg.queue, s->queue);
	cr_assert_eq(m->msg.session != NULL, m->state == Q_MSG_HELD);
	return s->stop_after != 0 && s->n == (size_t)s->stop_after ? 7 : 0;
}

static struct seen peek(q_seq from, size_t max, unsigned flags)
{
	struct seen s;

	memset(&s, 0, sizeof s);
	s.queue = "q";
	cr_assert_eq(q_state_peek(H.s, "q", from, max, flags, record, &s), 0);
	return s;
}

static void make_queue(uint32_t max_deliveries, const char *dead_letter)
{
	struct q_settings st = h_plain();

	st.max_deliveries = max_deliveries;
	st.dead_letter = dead_letter;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 0).status, Q_OK);
}

static void publish_n(int n, uint64_t now)
{
	char body[16];
	int i;

	for (i = 1; i <= n; i++) {
		snprintf(body, sizeof body, "m%d", i);
		cr_assert_eq(h_publish(H.s, "q", NULL, body, now).status, Q_OK);
	}
}

TestSuite(peek, .init = h_setup, .fini = h_teardown);

Test(peek, unknown_queue_is_enotfound)
{
	struct seen s;

	memset(&s, 0, sizeof s);
	cr_assert_eq(q_state_peek(H.s, "nope", 0, 10, 0, record, &s),
		     Q_ENOTFOUND);
	cr_assert_eq(s.n, 0);
}

Test(peek, empty_queue_and_max_zero_visit_nothing)
{
	make_queue(0, NULL);
	cr_assert_eq(peek(0, 10, Q_PEEK_DELAYED | Q_PEEK_HELD).n, 0);
	publish_n(3, 1);
	cr_assert_eq(peek(0, 0, 0).n, 0);
}

Test(peek, ready_messages_in_seq_order_with_bodies)
{
	struct seen s;

	make_queue(0, NULL);
	publish_n(3, 1);
	s = peek(0, 10, 0);
	cr_assert_eq(s.n, 3);
	for (size_t i = 0; i < 3; i++) {
		char want[8];

		snprintf(want, sizeof want, "m%zu", i + 1);
		cr_assert_eq(s.seq[i], i + 1);
		cr_assert_eq(s.state[i], Q_MSG_READY);
		cr_assert_eq(s.count[i], 0, "never delivered");
		cr_assert_eq(s.consumer[i], 0);
		cr_assert_str_eq(s.body[i], want);
	}
}

/* Returned messages come back in any order and sit before the ready ones;
 * a peek still lists everything by seq. */
Test(peek, returned_and_ready_merge_by_seq)
{
	q_consumer_id c;
	struct seen s;

	make_queue(0, NULL);
	publish_n(6, 1);
	/* Credit 3: holds 1, 2, 3 and gets nothing more. */
	c = h_attach_ex(H.s, "q", H_SESSION, 0, 3, 2).consumer;
	h_release1(H.s, c, 3, 3);
	h_release1(H.s, c, 1, 3);
	h_release1(H.s, c, 2, 3);
	cr_assert_eq(h_info(H.s, "q").unacked, 0);
	/* delivery order now: 3, 1, 2 (returned), then 4, 5, 6 */
	s = peek(0, 10, 0);
	cr_assert_eq(s.n, 6);
	for (size_t i = 0; i < 6; i++) {
		cr_assert_eq(s.seq[i], i + 1);
		cr_assert_eq(s.state[i], Q_MSG_READY);
		cr_assert_eq(s.count[i], i < 3 ? 1 : 0);
	}
	/* The smallest seqs win even when they come last in the lists. */
	s = peek(2, 2, 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.seq[0], 2);
	cr_assert_eq(s.seq[1], 3);
}

Test(peek, from_and_max_page_through_the_queue)
{
	struct seen s;

	make_queue(0, NULL);
	publish_n(10, 1);
	s = peek(4, 3, 0);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.seq[0], 4);
	cr_assert_eq(s.seq[2], 6);
	s = peek(s.seq[2] + 1, 3, 0);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.seq[0], 7);
	s = peek(10, 3, 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.seq[0], 10);
	cr_assert_eq(peek(11, 3, 0).n, 0);
}

/* A delayed publish joins the ready tail after later seqs. */
Test(peek, delayed_only_on_request_and_in_seq_order_once_due)
{
	struct h_pub later = {.delay_ms = 100};
	struct seen s;

	make_queue(0, NULL);
	h_publish_ex(H.s, "q", NULL, "late", &later, 1); /* seq 1 */
	publish_n(2, 1);				 /* seq 2, 3 */
	s = peek(0, 10, 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.seq[0], 2);
	s = peek(0, 10, Q_PEEK_DELAYED);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.seq[0], 1);
	cr_assert_eq(s.state[0], Q_MSG_DELAYED);
	cr_assert_eq(s.due[0], 101);
	cr_assert_eq(s.state[1], Q_MSG_READY);
	h_tick(H.s, 200); /* seq 1 now behind 3 in the ready list */
	s = peek(0, 2, 0);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.seq[0], 1);
	cr_assert_eq(s.state[0], Q_MSG_READY);
	cr_assert_eq(s.seq[1], 2);
}

Test(peek, held_only_on_request_with_holder_and_deadline)
{
	struct q_settings st = h_plain();
	q_consumer_id c;
	struct seen s;

	st.ack_timeout_ms = 500;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 0).status, Q_OK);
	publish_n(3, 1);
	c = h_attach(H.s, "q", 2, 10); /* holds 1, 2 */
	s = peek(0, 10, 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.seq[0], 3);
	s = peek(0, 10, Q_PEEK_HELD);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.state[0], Q_MSG_HELD);
	cr_assert_eq(s.consumer[0], c);
	cr_assert_eq(s.due[0], 510);
	cr_assert_eq(s.count[0], 1);
	cr_assert_eq(s.state[2], Q_MSG_READY);
	cr_assert_eq(s.due[2], 0);
}

Test(peek, dead_lettered_copy_says_where_from)
{
	q_consumer_id c;
	struct seen s;
	struct q_settings st = h_plain();

	cr_assert_eq(h_create_queue(H.s, "dlq", &st, 0).status, Q_OK);
	st.max_deliveries = 1;
	st.dead_letter = "dlq";
	cr_assert_eq(h_create_queue(H.s, "src", &st, 0).status, Q_OK);
	h_publish(H.s, "src", NULL, "bad", 1);
	c = h_attach(H.s, "src", 1, 2);
	h_nack1(H.s, c, 1, 0, 3);
	memset(&s, 0, sizeof s);
	s.queue = "dlq";
	cr_assert_eq(q_state_peek(H.s, "dlq", 0, 10, 0, record, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.dl_reason[0], Q_REASON_MAX_DELIVERIES);
	cr_assert_str_eq(s.dl_queue[0], "src");
	cr_assert_str_eq(s.body[0], "bad");
	cr_assert_eq(s.count[0], 1, "history kept");
}

Test(peek, callback_stops_the_walk)
{
	struct seen s;

	make_queue(0, NULL);
	publish_n(5, 1);
	memset(&s, 0, sizeof s);
	s.queue = "q";
	s.stop_after = 2;
	cr_assert_eq(q_state_peek(H.s, "q", 0, 10, 0, record, &s), 7);
	cr_assert_eq(s.n, 2);
}

/* The point of peek: looking twice at a queue with max_deliveries 2 (and
 * an ack timeout) counts nothing, holds nothing, dead-letters nothing. */
Test(peek, changes_nothing)
{
	struct q_settings st = h_plain();
	struct q_totals before, after;
	void *dump;
	size_t len, nd;
	q_consumer_id c;

	cr_assert_eq(h_create_queue(H.s, "dlq", &st, 0).status, Q_OK);
	st.max_deliveries = 2;
	st.dead_letter = "dlq";
	st.ack_timeout_ms = 1000;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 0).status, Q_OK);
	publish_n(3, 1);
	c = h_attach(H.s, "q", 1, 2); /* holds seq 1 */
	nd = H.rec.n_d;
	before = h_totals(H.s);
	dump = h_dump(H.s, &len);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(peek(0, 10, Q_PEEK_DELAYED | Q_PEEK_HELD).n, 3);
	}
	after = h_totals(H.s);
	cr_assert(h_dump_is(H.s, dump, len), "a peek changed the state");
	free(dump);
	cr_assert_eq(memcmp(&before, &after, sizeof before), 0);
	cr_assert_eq(H.rec.n_d, nd, "a peek delivered");
	cr_assert_eq(H.rec.n_g, 0);
	cr_assert_eq(q_state_next_due(H.s), 1002, "ack deadline moved");
	h_check(H.s);
	/* The next consumer gets first deliveries. */
	h_detach(H.s, c, 3);
	c = h_attach(H.s, "q", 0, 4);
	cr_assert_eq(h_rec_count_for(&H.rec, c), 3);
	cr_assert_eq(H.rec.d[H.rec.n_d - 1].delivery_count, 1);
	cr_assert_eq(H.rec.d[H.rec.n_d - 2].delivery_count, 1);
	cr_assert_eq(h_info(H.s, "dlq").ready, 0);
}

Test(peek, out_of_memory_visits_nothing)
{
	struct h_fail_alloc fa;
	struct q_options o = {.hash_seed = 7};
	struct h_env e;
	struct seen s;
	uint64_t bytes;

	h_fail_alloc_init(&fa);
	o.allocator = &fa.a;
	h_env_init(&e, &o);
	cr_assert_eq(h_create_queue(e.s, "q", NULL, 0).status, Q_OK);
	h_publish(e.s, "q", NULL, "x", 1);
	bytes = h_totals(e.s).alloc_bytes;
	memset(&s, 0, sizeof s);
	s.queue = "q";
	h_fail_alloc_arm(&fa, 0, 1);
	cr_assert_eq(q_state_peek(e.s, "q", 0, 10, 0, record, &s), Q_ENOMEM);
	h_fail_alloc_disarm(&fa);
	cr_assert_eq(s.n, 0);
	cr_assert_eq(q_state_peek(e.s, "q", 0, 10, 0, record, &s), 0);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(h_totals(e.s).alloc_bytes, bytes);
	h_env_fini(&e);
}
