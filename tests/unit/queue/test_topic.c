/* Behaviour of topics: subscribe, fan-out with one shared body, dedup,
 * refusals on subscription queues, unsubscribe, delete, consumer groups.
 * Black-box, q.h only. */
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

struct topic_count {
	const char *name;
	struct q_topic_info info;
	int n;
};

static int find_topic(void *data, const struct q_topic_info *info)
{
	struct topic_count *t = data;

	t->n++;
	if (strcmp(info->name, t->name) == 0)
		t->info = *info;
	return 0;
}

/* Topic info by name; cr_asserts it exists. */
static struct q_topic_info topic_info(const char *name)
{
	struct topic_count t;

	memset(&t, 0, sizeof(t));
	t.name = name;
	cr_assert_eq(q_state_foreach_topic(H.s, find_topic, &t), 0);
	cr_assert_not_null(t.info.name, "topic %s not found", name);
	return t.info;
}

/* Topic "t" with subscriptions "a", "b", "c" (h_plain settings). */
static void topic3(uint64_t dedup)
{
	struct q_settings st = h_plain();

	cr_assert_eq(h_create_topic(H.s, "t", dedup, 0).status, Q_OK);
	cr_assert_eq(h_subscribe(H.s, "t", "a", &st, 0).status, Q_OK);
	cr_assert_eq(h_subscribe(H.s, "t", "b", &st, 0).status, Q_OK);
	cr_assert_eq(h_subscribe(H.s, "t", "c", &st, 0).status, Q_OK);
}

TestSuite(topic, .init = h_setup, .fini = h_teardown);

Test(topic, create_and_subscribe_makes_bound_queue)
{
	struct q_queue_info i;
	struct q_topic_info ti;

	cr_assert_eq(h_create_topic(H.s, "news", 0, 1).status, Q_OK);
	cr_assert_eq(h_subscribe(H.s, "news", "s1", NULL, 2).status, Q_OK);
	h_check(H.s);
	i = h_info(H.s, "news:s1");
	cr_assert_not_null(i.topic);
	cr_assert_str_eq(i.topic, "news");
	cr_assert_eq(i.settings.ack_timeout_ms, 30000);
	ti = topic_info("news");
	cr_assert_eq(ti.subscriptions, 1);
	cr_assert_eq(h_totals(H.s).topics, 1);
	cr_assert_eq(h_totals(H.s).queues, 1);
}

Test(topic, create_topic_idempotent_and_eexist)
{
	cr_assert_eq(h_create_topic(H.s, "t", 100, 1).status, Q_OK);
	cr_assert_eq(h_create_topic(H.s, "t", 100, 2).status, Q_OK);
	cr_assert_eq(h_create_topic(H.s, "t", 200, 3).status, Q_EEXIST);
	cr_assert_eq(topic_info("t").dedup_window_ms, 100);
	cr_assert_eq(h_create_topic(H.s, "", 0, 3).status, Q_EINVAL);
	cr_assert_eq(h_totals(H.s).topics, 1);
	h_check(H.s);
}

Test(topic, subscribe_idempotent_and_eexist)
{
	struct q_settings a = h_plain(), b = h_plain();

	b.max_length = 5;
	h_create_topic(H.s, "t", 0, 1);
	cr_assert_eq(h_subscribe(H.s, "t", "s", &a, 2).status, Q_OK);
	h_publish_topic(H.s, "t", NULL, "x", 3);
	cr_assert_eq(h_subscribe(H.s, "t", "s", &a, 4).status, Q_OK);
	cr_assert_eq(h_info(H.s, "t:s").ready, 1, "retry keeps the queue");
	cr_assert_eq(h_subscribe(H.s, "t", "s", &b, 5).status, Q_EEXIST);
	cr_assert_eq(topic_info("t").subscriptions, 1);
	h_check(H.s);
}

Test(topic, subscribe_to_unknown_topic_is_enotfound)
{
	cr_assert_eq(h_subscribe(H.s, "nope", "s", NULL, 1).status,
		     Q_ENOTFOUND);
	cr_assert_not(h_queue_exists(H.s, "nope:s"));
	h_check(H.s);
}

Test(topic, publish_fans_out_with_same_seq_and_shared_body)
{
	struct q_result r;
	struct q_totals t;
	q_consumer_id ca, cb, cc;

	topic3(0);
	ca = h_attach(H.s, "t:a", 0, 1);
	cb = h_attach(H.s, "t:b", 0, 1);
	cc = h_attach(H.s, "t:c", 0, 1);
	r = h_publish_topic(H.s, "t", NULL, "hello", 2);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.seq, 1);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 3);
	cr_assert_eq(h_rec_count_for(&H.rec, ca), 1);
	cr_assert_eq(h_rec_count_for(&H.rec, cb), 1);
	cr_assert_eq(h_rec_count_for(&H.rec, cc), 1);
	cr_assert_neq(h_rec_find(&H.rec, "t:a", 1), -1);
	cr_assert_neq(h_rec_find(&H.rec, "t:b", 1), -1);
	cr_assert_neq(h_rec_find(&H.rec, "t:c", 1), -1);
	cr_assert_str_eq(H.rec.d[0].body, "hello");
	t = h_totals(H.s);
	cr_assert_eq(t.messages, 3);
	cr_assert_eq(t.bodies, 1);
	cr_assert_eq(t.body_bytes, 5);
	cr_assert_eq(topic_info("t").published, 1);
	/* the body lives while any copy does */
	h_ack1(H.s, ca, 1, 3);
	h_ack1(H.s, cb, 1, 3);
	cr_assert_eq(h_totals(H.s).bodies, 1);
	h_ack1(H.s, cc, 1, 3);
	cr_assert_eq(h_totals(H.s).bodies, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(topic, publish_without_subscriptions_is_accepted_and_stored_nowhere)
{
	struct q_result r;

	h_create_topic(H.s, "t", 0, 1);
	r = h_publish_topic(H.s, "t", NULL, "x", 2);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.seq, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	cr_assert_eq(h_totals(H.s).bodies, 0);
	h_check(H.s);
}

Test(topic, publish_to_unknown_topic_is_enotfound)
{
	cr_assert_eq(h_publish_topic(H.s, "nope", NULL, "x", 1).status,
		     Q_ENOTFOUND);
}

Test(topic, direct_publish_and_delete_queue_refused_on_subscription)
{
	topic3(0);
	cr_assert_eq(h_publish(H.s, "t:a", NULL, "x", 1).status, Q_ETOPICQUEUE);
	cr_assert_eq(h_delete_queue(H.s, "t:a", 1).status, Q_ETOPICQUEUE);
	cr_assert(h_queue_exists(H.s, "t:a"));
	cr_assert_eq(h_info(H.s, "t:a").ready, 0);
	h_check(H.s);
}

Test(topic, unsubscribe_removes_queue_and_stops_fanout)
{
	q_consumer_id c;

	topic3(0);
	c = h_attach(H.s, "t:b", 0, 1);
	h_publish_topic(H.s, "t", NULL, "1", 2);
	h_rec_clear(&H.rec);
	cr_assert_eq(h_unsubscribe(H.s, "t", "b", 3).status, Q_OK);
	h_check(H.s);
	cr_assert_not(h_queue_exists(H.s, "t:b"));
	cr_assert_eq(H.rec.n_g, 1);
	cr_assert_eq(H.rec.g[0].consumer, c);
	cr_assert_eq(topic_info("t").subscriptions, 2);
	h_publish_topic(H.s, "t", NULL, "2", 4);
	cr_assert_eq(h_totals(H.s).messages, 4);
	cr_assert_eq(h_unsubscribe(H.s, "t", "b", 5).status, Q_ENOTFOUND);
	cr_assert_eq(h_unsubscribe(H.s, "nope", "b", 5).status, Q_ENOTFOUND);
	h_check(H.s);
}

Test(topic, delete_topic_deletes_subscriptions)
{
	q_consumer_id c;

	topic3(0);
	c = h_attach(H.s, "t:a", 1, 1);
	h_publish_topic(H.s, "t", NULL, "1", 2);
	h_publish_topic(H.s, "t", NULL, "2", 2);
	h_rec_clear(&H.rec);
	cr_assert_eq(h_delete_topic(H.s, "t", 3).status, Q_OK);
	h_check(H.s);
	cr_assert_not(h_queue_exists(H.s, "t:a"));
	cr_assert_not(h_queue_exists(H.s, "t:b"));
	cr_assert_not(h_queue_exists(H.s, "t:c"));
	cr_assert_eq(h_totals(H.s).topics, 0);
	cr_assert_eq(h_totals(H.s).queues, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	cr_assert_eq(h_totals(H.s).bodies, 0);
	cr_assert_eq(H.rec.n_g, 1);
	cr_assert_eq(H.rec.g[0].consumer, c);
	cr_assert_eq(H.rec.n_d, 0);
	cr_assert_eq(h_publish_topic(H.s, "t", NULL, "x", 4).status,
		     Q_ENOTFOUND);
	cr_assert_eq(h_delete_topic(H.s, "t", 5).status, Q_ENOTFOUND);
}

Test(topic, dedup_on_topic)
{
	struct q_result r;

	topic3(1000);
	cr_assert_eq(h_publish_topic(H.s, "t", "id", "x", 100).seq, 1);
	r = h_publish_topic(H.s, "t", "id", "x", 600);
	cr_assert_eq(r.status, Q_OK);
	cr_assert(r.duplicate);
	cr_assert_eq(r.seq, 1);
	cr_assert_eq(h_info(H.s, "t:a").ready, 1);
	cr_assert_eq(h_info(H.s, "t:c").ready, 1);
	cr_assert_eq(h_totals(H.s).messages, 3);
	cr_assert_eq(topic_info("t").deduplicated, 1);
	r = h_publish_topic(H.s, "t", "id", "x", 1100);
	cr_assert_not(r.duplicate);
	cr_assert_eq(r.seq, 2);
	cr_assert_eq(h_totals(H.s).messages, 6);
	h_check(H.s);
}

Test(topic, reject_on_one_subscription_refuses_whole_publish)
{
	struct q_settings full = h_plain(), open = h_plain();
	struct q_result r;

	full.max_length = 1;
	h_create_topic(H.s, "t", 0, 0);
	h_subscribe(H.s, "t", "open1", &open, 0);
	h_subscribe(H.s, "t", "full", &full, 0);
	h_subscribe(H.s, "t", "open2", &open, 0);
	cr_assert_eq(h_publish_topic(H.s, "t", NULL, "1", 1).status, Q_OK);
	r = h_publish_topic(H.s, "t", NULL, "2", 2);
	cr_assert_eq(r.status, Q_EFULL);
	cr_assert_eq(h_info(H.s, "t:open1").ready, 1);
	cr_assert_eq(h_info(H.s, "t:open2").ready, 1);
	cr_assert_eq(h_info(H.s, "t:full").ready, 1);
	cr_assert_eq(h_totals(H.s).messages, 3);
	cr_assert_eq(h_totals(H.s).bodies, 1);
	h_check(H.s);
}

Test(topic, drop_head_subscription_does_not_block_others)
{
	struct q_settings dh = h_plain(), open = h_plain();

	dh.max_length = 1;
	dh.overflow = Q_OVERFLOW_DROP_HEAD;
	h_create_topic(H.s, "t", 0, 0);
	h_subscribe(H.s, "t", "dh", &dh, 0);
	h_subscribe(H.s, "t", "open", &open, 0);
	h_publish_topic(H.s, "t", NULL, "1", 1);
	cr_assert_eq(h_publish_topic(H.s, "t", NULL, "2", 2).status, Q_OK);
	cr_assert_eq(h_info(H.s, "t:dh").ready, 1);
	cr_assert_eq(h_info(H.s, "t:dh").dropped, 1);
	cr_assert_eq(h_info(H.s, "t:open").ready, 2);
	cr_assert_eq(h_totals(H.s).bodies, 2);
	h_check(H.s);
}

Test(topic, consumers_on_one_subscription_compete)
{
	q_consumer_id g1, g2, solo;
	int i;

	topic3(0);
	g1 = h_attach(H.s, "t:a", 0, 1);
	g2 = h_attach(H.s, "t:a", 0, 1);
	solo = h_attach(H.s, "t:b", 0, 1);
	for (i = 0; i < 4; i++)
		h_publish_topic(H.s, "t", NULL, "x", 2);
	cr_assert_eq(h_rec_count_for(&H.rec, g1), 2);
	cr_assert_eq(h_rec_count_for(&H.rec, g2), 2);
	cr_assert_eq(h_rec_count_for(&H.rec, solo), 4);
	cr_assert_eq(h_info(H.s, "t:c").ready, 4);
	h_check(H.s);
}

Test(topic, subscription_copies_are_independent)
{
	q_consumer_id a, b;

	topic3(0);
	a = h_attach(H.s, "t:a", 0, 1);
	b = h_attach(H.s, "t:b", 0, 1);
	h_publish_topic(H.s, "t", NULL, "x", 2);
	cr_assert_eq(h_ack1(H.s, a, 1, 3).status, Q_OK);
	cr_assert_eq(h_info(H.s, "t:b").unacked, 1);
	cr_assert_eq(h_ack1(H.s, b, 1, 3).status, Q_OK);
	cr_assert_eq(h_ack1(H.s, b, 1, 3).status, Q_EUNKNOWNTAG);
	cr_assert_eq(h_info(H.s, "t:c").ready, 1);
	h_check(H.s);
}
