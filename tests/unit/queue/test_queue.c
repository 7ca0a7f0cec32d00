/* Behaviour of queues: create / configure / delete / purge, publish, limits,
 * overflow, dedup, info and iteration, error strings. Black-box, q.h only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

TestSuite(queue_create, .init = h_setup, .fini = h_teardown);

Test(queue_create, valid_name_creates_empty_queue)
{
	struct q_result r = h_create_queue(H.s, "orders", NULL, 10);
	struct q_queue_info i;

	cr_assert_eq(r.status, Q_OK);
	h_check(H.s);
	i = h_info(H.s, "orders");
	cr_assert_str_eq(i.name, "orders");
	cr_assert_null(i.topic);
	cr_assert_eq(i.ready, 0);
	cr_assert_eq(i.unacked, 0);
	cr_assert_eq(i.consumers, 0);
	cr_assert_eq(h_totals(H.s).queues, 1);
}

Test(queue_create, empty_name_is_invalid)
{
	cr_assert_eq(h_create_queue(H.s, "", NULL, 1).status, Q_EINVAL);
	cr_assert_not(q_name_valid(""));
	cr_assert_eq(h_totals(H.s).queues, 0);
	h_check(H.s);
}

Test(queue_create, name_of_255_bytes_is_valid_256_is_not)
{
	char name[300];

	memset(name, 'a', 255);
	name[255] = '\0';
	cr_assert(q_name_valid(name));
	cr_assert_eq(h_create_queue(H.s, name, NULL, 1).status, Q_OK);
	memset(name, 'b', 256);
	name[256] = '\0';
	cr_assert_not(q_name_valid(name));
	cr_assert_eq(h_create_queue(H.s, name, NULL, 1).status, Q_EINVAL);
	cr_assert_eq(h_totals(H.s).queues, 1);
	h_check(H.s);
}

Test(queue_create, control_characters_are_invalid)
{
	static const char *bad[] = {"a\nb", "\tq", "q\x01", "x\x1fy", "\r"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_not(q_name_valid(bad[i]), "name %zu", i);
		cr_assert_eq(h_create_queue(H.s, bad[i], NULL, 1).status,
			     Q_EINVAL, "name %zu", i);
	}
	cr_assert(q_name_valid("with space-and.dots_1"));
	cr_assert_eq(h_totals(H.s).queues, 0);
	h_check(H.s);
}

Test(queue_create, same_settings_twice_is_idempotent)
{
	struct q_settings st = h_plain();

	st.max_length = 7;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 1).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "m", 2).status, Q_OK);
	cr_assert_eq(h_create_queue(H.s, "q", &st, 3).status, Q_OK);
	cr_assert_eq(h_totals(H.s).queues, 1);
	/* the retry did not reset the queue */
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_check(H.s);
}

Test(queue_create, other_settings_is_eexist_and_keeps_old)
{
	struct q_settings a = h_plain(), b = h_plain();

	a.max_length = 7;
	b.max_length = 8;
	cr_assert_eq(h_create_queue(H.s, "q", &a, 1).status, Q_OK);
	cr_assert_eq(h_create_queue(H.s, "q", &b, 2).status, Q_EEXIST);
	cr_assert_eq(h_info(H.s, "q").settings.max_length, 7);
	h_check(H.s);
}

Test(queue_create, bad_overflow_setting_is_invalid)
{
	struct q_settings st = h_plain();

	st.overflow = 99;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 1).status, Q_EINVAL);
	cr_assert_not(h_queue_exists(H.s, "q"));
	h_check(H.s);
}

Test(queue_create, settings_are_copied_including_dead_letter_name)
{
	struct q_settings st = h_defaults();
	char dl[8];
	struct q_queue_info i;

	strcpy(dl, "dlq");
	st.dead_letter = dl;
	st.ttl_ms = 5000;
	st.max_deliveries = 3;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 1).status, Q_OK);
	strcpy(dl, "zzz"); /* borrowed: the state must have copied it */
	i = h_info(H.s, "q");
	cr_assert_str_eq(i.settings.dead_letter, "dlq");
	cr_assert_eq(i.settings.ttl_ms, 5000);
	cr_assert_eq(i.settings.max_deliveries, 3);
	cr_assert_eq(i.settings.ack_timeout_ms, 30000);
	h_check(H.s);
}

Test(queue_create, defaults_are_documented_values)
{
	struct q_settings d = h_defaults();

	cr_assert_eq(d.ack_timeout_ms, 30000);
	cr_assert_eq(d.dedup_window_ms, 120000);
	cr_assert_eq(d.overflow, Q_OVERFLOW_REJECT_PUBLISH);
	cr_assert_eq(d.max_length, 0);
	cr_assert_eq(d.max_bytes, 0);
	cr_assert_eq(d.ttl_ms, 0);
	cr_assert(d.dead_letter == NULL || d.dead_letter[0] == '\0');
	/* DESIGN.md section 2: max_deliveries default 20 */
	cr_assert_eq(d.max_deliveries, 20);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_configure, .init = h_setup, .fini = h_teardown);

Test(queue_configure, mask_changes_only_selected_settings)
{
	struct q_settings st = h_plain(), ch = h_plain();
	struct q_queue_info i;

	st.max_length = 10;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 1).status, Q_OK);
	ch.ttl_ms = 5000;
	ch.max_length = 99;	 /* not in the mask */
	ch.ack_timeout_ms = 777; /* not in the mask */
	cr_assert_eq(h_configure(H.s, "q", &ch, Q_SET_TTL, 2).status, Q_OK);
	i = h_info(H.s, "q");
	cr_assert_eq(i.settings.ttl_ms, 5000);
	cr_assert_eq(i.settings.max_length, 10);
	cr_assert_eq(i.settings.ack_timeout_ms, 0);
	h_check(H.s);
}

Test(queue_configure, all_mask_sets_everything)
{
	struct q_settings ch = h_plain();
	struct q_queue_info i;

	cr_assert_eq(h_create_queue(H.s, "q", NULL, 1).status, Q_OK);
	ch.ack_timeout_ms = 11;
	ch.max_deliveries = 4;
	ch.dead_letter = "dead";
	ch.max_bytes = 1000;
	ch.overflow = Q_OVERFLOW_DROP_HEAD;
	ch.dedup_window_ms = 5;
	cr_assert_eq(h_configure(H.s, "q", &ch, Q_SET_ALL, 2).status, Q_OK);
	i = h_info(H.s, "q");
	cr_assert_eq(i.settings.ack_timeout_ms, 11);
	cr_assert_eq(i.settings.max_deliveries, 4);
	cr_assert_str_eq(i.settings.dead_letter, "dead");
	cr_assert_eq(i.settings.max_bytes, 1000);
	cr_assert_eq(i.settings.overflow, Q_OVERFLOW_DROP_HEAD);
	cr_assert_eq(i.settings.dedup_window_ms, 5);
	h_check(H.s);
}

Test(queue_configure, unknown_queue_is_enotfound)
{
	struct q_settings ch = h_plain();

	cr_assert_eq(h_configure(H.s, "nope", &ch, Q_SET_TTL, 1).status,
		     Q_ENOTFOUND);
	h_check(H.s);
}

Test(queue_configure, lowering_max_length_applies_to_next_publish)
{
	struct q_settings ch = h_plain();

	cr_assert_eq(h_create_queue(H.s, "q", &ch, 1).status, Q_OK);
	h_publish(H.s, "q", NULL, "a", 2);
	h_publish(H.s, "q", NULL, "b", 3);
	ch.max_length = 2;
	cr_assert_eq(h_configure(H.s, "q", &ch, Q_SET_MAX_LENGTH, 4).status,
		     Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "c", 5).status, Q_EFULL);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_delete, .init = h_setup, .fini = h_teardown);

Test(queue_delete, drops_messages_and_reports_consumers_gone)
{
	struct q_settings st = h_plain();
	q_consumer_id c;

	h_create_queue(H.s, "q", &st, 1);
	h_create_queue(H.s, "other", &st, 1);
	c = h_attach(H.s, "q", 1, 2);
	cr_assert_neq(c, 0);
	h_publish(H.s, "q", NULL, "held", 3);
	h_publish(H.s, "q", NULL, "ready", 4);
	h_publish(H.s, "other", NULL, "keep", 4);
	cr_assert_eq(h_totals(H.s).messages, 3);
	h_rec_clear(&H.rec);

	cr_assert_eq(h_delete_queue(H.s, "q", 5).status, Q_OK);
	h_check(H.s);
	cr_assert_not(h_queue_exists(H.s, "q"));
	cr_assert_eq(h_totals(H.s).messages, 1);
	cr_assert_eq(h_totals(H.s).consumers, 0);
	cr_assert_eq(H.rec.n_g, 1);
	cr_assert_eq(H.rec.g[0].consumer, c);
	cr_assert_str_eq(H.rec.g[0].queue, "q");
	cr_assert_eq(H.rec.n_d, 0);
	/* the consumer no longer exists */
	cr_assert_eq(h_ack1(H.s, c, 1, 6).status, Q_ENOCONSUMER);
	cr_assert_eq(h_publish(H.s, "q", NULL, "x", 7).status, Q_ENOTFOUND);
}

Test(queue_delete, unknown_queue_is_enotfound)
{
	cr_assert_eq(h_delete_queue(H.s, "nope", 1).status, Q_ENOTFOUND);
	h_check(H.s);
}

Test(queue_delete, recreate_after_delete_is_empty)
{
	h_create_queue(H.s, "q", NULL, 1);
	h_publish(H.s, "q", NULL, "a", 2);
	h_delete_queue(H.s, "q", 3);
	cr_assert_eq(h_create_queue(H.s, "q", NULL, 4).status, Q_OK);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	cr_assert_eq(h_info(H.s, "q").published, 0);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_purge, .init = h_setup, .fini = h_teardown);

Test(queue_purge, removes_ready_keeps_unacked)
{
	struct q_settings st = h_plain();
	q_consumer_id c;
	struct q_result r;

	h_create_queue(H.s, "q", &st, 1);
	h_publish(H.s, "q", NULL, "1", 2);
	h_publish(H.s, "q", NULL, "2", 3);
	h_publish(H.s, "q", NULL, "3", 4);
	c = h_attach(H.s, "q", 1, 5); /* holds seq 1 */
	cr_assert_eq(H.rec.n_d, 1);
	r = h_purge(H.s, "q", 6);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_eq(r.count, 2);
	h_check(H.s);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	/* the held one can still be acked; nothing else to deliver */
	cr_assert_eq(h_ack1(H.s, c, 1, 7).status, Q_OK);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(queue_purge, removes_delayed_and_returned)
{
	struct q_settings st = h_plain();
	struct h_pub later = {.delay_ms = 1000};
	q_consumer_id c;

	h_create_queue(H.s, "q", &st, 1);
	h_publish_ex(H.s, "q", NULL, "d", &later, 2);
	c = h_attach(H.s, "q", 0, 3);
	h_publish(H.s, "q", NULL, "r", 4); /* delivered: seq 2 */
	cr_assert_eq(H.rec.n_d, 1);
	h_detach(H.s, c, 5); /* seq 2 returned */
	cr_assert_eq(h_purge(H.s, "q", 6).count, 2);
	cr_assert_eq(h_info(H.s, "q").delayed, 0);
	cr_assert_eq(h_info(H.s, "q").ready, 0);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(queue_purge, unknown_queue_is_enotfound)
{
	cr_assert_eq(h_purge(H.s, "nope", 1).status, Q_ENOTFOUND);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_publish, .init = h_setup, .fini = h_teardown);

Test(queue_publish, unknown_queue_is_enotfound)
{
	struct q_result r = h_publish(H.s, "nope", NULL, "x", 1);

	cr_assert_eq(r.status, Q_ENOTFOUND);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(queue_publish, neither_or_both_queue_and_topic_is_invalid)
{
	struct q_cmd c;
	struct q_result r;

	h_create_queue(H.s, "q", NULL, 1);
	h_create_topic(H.s, "t", 0, 1);
	memset(&c, 0, sizeof(c));
	c.type = Q_CMD_PUBLISH;
	c.now_ms = 2;
	c.u.publish.body = "x";
	c.u.publish.body_len = 1;
	r = h_apply(H.s, &c);
	cr_assert_eq(r.status, Q_EINVAL);
	c.u.publish.queue = "q";
	c.u.publish.topic = "t";
	r = h_apply(H.s, &c);
	cr_assert_eq(r.status, Q_EINVAL);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(queue_publish, seq_numbers_start_at_1_and_are_global)
{
	h_create_queue(H.s, "a", NULL, 1);
	h_create_queue(H.s, "b", NULL, 1);
	cr_assert_eq(h_publish(H.s, "a", NULL, "1", 2).seq, 1);
	cr_assert_eq(h_publish(H.s, "a", NULL, "2", 2).seq, 2);
	cr_assert_eq(h_publish(H.s, "b", NULL, "3", 2).seq, 3);
	cr_assert_eq(h_publish(H.s, "a", NULL, "4", 3).seq, 4);
	cr_assert_not(h_publish(H.s, "a", NULL, "5", 3).duplicate);
	h_check(H.s);
}

Test(queue_publish, fifo_order_and_body_copied)
{
	char body[4];
	size_t i;
	q_consumer_id c;

	h_create_queue(H.s, "q", NULL, 1);
	for (i = 0; i < 5; i++) {
		body[0] = (char)('a' + i);
		body[1] = '\0';
		cr_assert_eq(h_publish(H.s, "q", NULL, body, 10 + i).status,
			     Q_OK);
		body[0] = '!'; /* borrowed: must have been copied */
	}
	cr_assert_eq(h_info(H.s, "q").ready, 5);
	cr_assert_eq(h_info(H.s, "q").bytes, 5);
	c = h_attach(H.s, "q", 0, 20);
	cr_assert_eq(H.rec.n_d, 5);
	for (i = 0; i < 5; i++) {
		char want[2] = {(char)('a' + i), '\0'};

		cr_assert_eq(H.rec.d[i].seq, i + 1);
		cr_assert_eq(H.rec.d[i].consumer, c);
		cr_assert_str_eq(H.rec.d[i].body, want);
		cr_assert_eq(H.rec.d[i].published_ms, 10 + i);
	}
	h_check(H.s);
}

Test(queue_publish, binary_and_empty_bodies)
{
	static const unsigned char bin[5] = {0, 1, 0, 255, 7};

	h_create_queue(H.s, "q", NULL, 1);
	cr_assert_eq(h_publish_bin(H.s, "q", NULL, bin, 5, 2).status, Q_OK);
	cr_assert_eq(h_publish_bin(H.s, "q", NULL, NULL, 0, 2).status, Q_OK);
	h_attach(H.s, "q", 0, 3);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_eq(H.rec.d[0].body_len, 5);
	cr_assert_arr_eq(H.rec.d[0].body, bin, 5);
	cr_assert_eq(H.rec.d[1].body_len, 0);
	h_check(H.s);
}

Test(queue_publish, msg_id_is_delivered)
{
	h_create_queue(H.s, "q", NULL, 1);
	h_publish(H.s, "q", "id-17", "x", 2);
	h_attach(H.s, "q", 0, 3);
	cr_assert_eq(H.rec.n_d, 1);
	cr_assert_eq(H.rec.d[0].msg_id_len, 5);
	cr_assert_str_eq(H.rec.d[0].msg_id, "id-17");
}

Test(queue_publish, max_body_option_is_etoobig)
{
	struct h_env e;
	struct q_options o = {.allocator = NULL, .hash_seed = 1, .max_body = 8};

	h_env_init(&e, &o);
	h_create_queue(e.s, "q", NULL, 1);
	cr_assert_eq(h_publish(e.s, "q", NULL, "12345678", 2).status, Q_OK);
	cr_assert_eq(h_publish(e.s, "q", NULL, "123456789", 3).status,
		     Q_ETOOBIG);
	cr_assert_eq(h_info(e.s, "q").ready, 1);
	h_check(e.s);
	h_env_fini(&e);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_limits, .init = h_setup, .fini = h_teardown);

Test(queue_limits, max_length_reject_publish)
{
	struct q_settings st = h_plain();
	struct q_queue_info i;

	st.max_length = 2;
	h_create_queue(H.s, "q", &st, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "a", 2).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "b", 3).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "c", 4).status, Q_EFULL);
	cr_assert_eq(h_publish(H.s, "q", NULL, "d", 5).status, Q_EFULL);
	i = h_info(H.s, "q");
	cr_assert_eq(i.ready, 2);
	cr_assert_eq(i.rejected, 2);
	cr_assert_eq(i.published, 2);
	cr_assert_eq(i.dropped, 0);
	h_check(H.s);
}

Test(queue_limits, max_bytes_reject_publish_at_exact_limit)
{
	struct q_settings st = h_plain();

	st.max_bytes = 10;
	h_create_queue(H.s, "q", &st, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "12345", 2).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "67890", 3).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "x", 4).status, Q_EFULL);
	cr_assert_eq(h_info(H.s, "q").bytes, 10);
	cr_assert_eq(h_info(H.s, "q").rejected, 1);
	h_check(H.s);
}

Test(queue_limits, held_messages_do_not_count)
{
	struct q_settings st = h_plain();

	st.max_length = 1;
	h_create_queue(H.s, "q", &st, 1);
	h_attach(H.s, "q", 1, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "a", 2).status, Q_OK); /* held */
	cr_assert_eq(h_publish(H.s, "q", NULL, "b", 3).status,
		     Q_OK); /* ready */
	cr_assert_eq(h_publish(H.s, "q", NULL, "c", 4).status, Q_EFULL);
	cr_assert_eq(h_info(H.s, "q").unacked, 1);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_check(H.s);
}

Test(queue_limits, drop_head_without_dead_letter_drops_oldest)
{
	struct q_settings st = h_plain();
	struct q_queue_info i;

	st.max_length = 2;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	h_create_queue(H.s, "q", &st, 1);
	h_publish(H.s, "q", NULL, "a", 2);
	h_publish(H.s, "q", NULL, "b", 3);
	cr_assert_eq(h_publish(H.s, "q", NULL, "c", 4).status, Q_OK);
	i = h_info(H.s, "q");
	cr_assert_eq(i.ready, 2);
	cr_assert_eq(i.dropped, 1);
	cr_assert_eq(i.rejected, 0);
	h_check(H.s);
	h_attach(H.s, "q", 0, 5);
	cr_assert_eq(H.rec.n_d, 2);
	cr_assert_str_eq(H.rec.d[0].body, "b");
	cr_assert_str_eq(H.rec.d[1].body, "c");
}

Test(queue_limits, drop_head_dead_letters_with_reason_overflow)
{
	struct q_settings st = h_plain(), dl = h_plain();
	q_consumer_id d;
	const struct h_delivery *x;

	st.max_length = 2;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	st.dead_letter = "dlq";
	h_create_queue(H.s, "dlq", &dl, 1);
	h_create_queue(H.s, "q", &st, 1);
	d = h_attach(H.s, "dlq", 0, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "a", 2).seq, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "b", 3).seq, 2);
	cr_assert_eq(h_publish(H.s, "q", NULL, "c", 4).status, Q_OK);
	h_check(H.s);
	cr_assert_eq(H.rec.n_d, 1);
	x = h_rec_last(&H.rec);
	cr_assert_eq(x->consumer, d);
	cr_assert_str_eq(x->queue, "dlq");
	cr_assert_str_eq(x->body, "a");
	cr_assert_eq(x->dl_reason, Q_REASON_OVERFLOW);
	cr_assert_not_null(x->dl_queue);
	cr_assert_str_eq(x->dl_queue, "q");
	cr_assert_gt(x->seq, 2, "dead-lettered copy gets a fresh seq");
	cr_assert_eq(h_info(H.s, "q").dead_lettered, 1);
	cr_assert_eq(h_info(H.s, "q").dropped, 0);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
}

Test(queue_limits, drop_head_by_bytes_drops_several)
{
	struct q_settings st = h_plain();

	st.max_bytes = 6;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	h_create_queue(H.s, "q", &st, 1);
	h_publish(H.s, "q", NULL, "aa", 2);
	h_publish(H.s, "q", NULL, "bb", 3);
	h_publish(H.s, "q", NULL, "cc", 4);
	cr_assert_eq(h_publish(H.s, "q", NULL, "ddddd", 5).status, Q_OK);
	cr_assert_eq(h_info(H.s, "q").bytes, 5);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	cr_assert_eq(h_info(H.s, "q").dropped, 3);
	h_check(H.s);
}

Test(queue_limits, body_over_max_bytes_refused_even_with_drop_head)
{
	struct q_settings st = h_plain();
	struct q_queue_info i;

	st.max_bytes = 4;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	h_create_queue(H.s, "q", &st, 1);
	cr_assert_eq(h_publish(H.s, "q", NULL, "ab", 2).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "12345", 3).status, Q_EFULL);
	i = h_info(H.s, "q");
	cr_assert_eq(i.ready, 1, "nothing may be dropped for a refused body");
	cr_assert_eq(i.dropped, 0);
	cr_assert_eq(i.bytes, 2);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_dedup, .init = h_setup, .fini = h_teardown);

static void dedup_queue(uint64_t window)
{
	struct q_settings st = h_plain();

	st.dedup_window_ms = window;
	cr_assert_eq(h_create_queue(H.s, "q", &st, 0).status, Q_OK);
}

Test(queue_dedup, duplicate_inside_window)
{
	struct q_result r;

	dedup_queue(1000);
	cr_assert_eq(h_publish(H.s, "q", NULL, "filler", 50).seq, 1);
	r = h_publish(H.s, "q", "id", "x", 100);
	cr_assert_eq(r.seq, 2);
	cr_assert_not(r.duplicate);
	r = h_publish(H.s, "q", "id", "y", 1099);
	cr_assert_eq(r.status, Q_OK);
	cr_assert(r.duplicate);
	cr_assert_eq(r.seq, 2);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	cr_assert_eq(h_info(H.s, "q").deduplicated, 1);
	cr_assert_eq(h_info(H.s, "q").published, 2);
	cr_assert_eq(h_totals(H.s).messages, 2);
	cr_assert_eq(h_totals(H.s).dedup_entries, 1);
	h_check(H.s);
	/* the next real publish gets the next seq */
	cr_assert_eq(h_publish(H.s, "q", NULL, "z", 1099).seq, 3);
}

/* The id table resizes a few buckets per publish: every id stays findable
 * before, during and after each resize, and expiry during a resize unlinks
 * from the right table. */
Test(queue_dedup, many_ids_through_resizes)
{
	char id[32];
	unsigned i, j;

	dedup_queue(1000000);
	for (i = 0; i < 5000; i++) {
		snprintf(id, sizeof id, "id-%u", i);
		cr_assert_not(h_publish(H.s, "q", id, "x", 100 + i).duplicate);
		if (i % 97 == 0) {
			h_check(H.s);
			for (j = 0; j <= i; j += 13) {
				snprintf(id, sizeof id, "id-%u", j);
				cr_assert(h_publish(H.s, "q", id, "x", 100 + i)
						  .duplicate,
					  "id-%u lost at %u", j, i);
			}
		}
	}
	cr_assert_eq(h_totals(H.s).dedup_entries, 5000);
	/* At 1000000 + 2100 the ids published at <= 2100 (id-0..id-2000)
	 * are a window old: they expire while new ids keep resizing. */
	for (i = 5000; i < 9000; i++) {
		snprintf(id, sizeof id, "id-%u", i);
		cr_assert_not(
			h_publish(H.s, "q", id, "x", 1000000 + 2100).duplicate);
	}
	h_check(H.s);
	cr_assert_eq(h_totals(H.s).dedup_entries, 6999);
	snprintf(id, sizeof id, "id-%u", 2000);
	cr_assert_not(h_publish(H.s, "q", id, "x", 1000000 + 2100).duplicate);
	snprintf(id, sizeof id, "id-%u", 2001);
	cr_assert(h_publish(H.s, "q", id, "x", 1000000 + 2100).duplicate);
	h_check(H.s);
}

/* Random publishes of 3000 ids over a sliding window, against a reference
 * of each id's last stored time: duplicate exactly when that is less than a
 * window ago, through growth, incremental moves, expiry and re-insertion.
 * The invariant walk finds every entry in the table its hash says. */
Test(queue_dedup, random_ids_against_reference)
{
	enum { IDS = 3000, OPS = 60000, WINDOW = 400 };
	static uint64_t last[IDS];
	uint64_t rng = 0x9e3779b97f4a7c15ull, now = 1000;
	char id[32];
	unsigned i;

	dedup_queue(WINDOW);
	for (i = 0; i < IDS; i++) {
		last[i] = 0;
	}
	for (i = 0; i < OPS; i++) {
		unsigned k;
		bool want;
		struct q_result r;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		k = (unsigned)(rng % IDS);
		now += rng % 3 == 0 ? 1 : 0;
		want = last[k] != 0 && now - last[k] < WINDOW;
		snprintf(id, sizeof id, "r-%u", k);
		r = h_publish(H.s, "q", id, "x", now);
		cr_assert_eq(r.status, Q_OK);
		cr_assert_eq(r.duplicate, want,
			     "op %u id %u at %llu (last %llu)", i, k,
			     (unsigned long long)now,
			     (unsigned long long)last[k]);
		if (!r.duplicate) {
			last[k] = now;
		}
		if (i % 4999 == 0) {
			h_check(H.s);
		}
	}
	h_check(H.s);
}

Test(queue_dedup, outside_window_is_stored_again)
{
	struct q_result r;

	dedup_queue(1000);
	cr_assert_eq(h_publish(H.s, "q", "id", "x", 100).seq, 1);
	r = h_publish(H.s, "q", "id", "x", 1100); /* exactly window later */
	cr_assert_eq(r.status, Q_OK);
	cr_assert_not(r.duplicate);
	cr_assert_eq(r.seq, 2);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	cr_assert_eq(h_info(H.s, "q").deduplicated, 0);
	h_check(H.s);
}

Test(queue_dedup, window_zero_is_off)
{
	dedup_queue(0);
	cr_assert_not(h_publish(H.s, "q", "id", "x", 1).duplicate);
	cr_assert_not(h_publish(H.s, "q", "id", "x", 1).duplicate);
	cr_assert_eq(h_info(H.s, "q").ready, 2);
	cr_assert_eq(h_totals(H.s).dedup_entries, 0);
	h_check(H.s);
}

Test(queue_dedup, duplicate_after_ack_still_detected)
{
	q_consumer_id c;
	struct q_result r;

	dedup_queue(1000);
	c = h_attach(H.s, "q", 0, 1);
	cr_assert_eq(h_publish(H.s, "q", "id", "x", 10).seq, 1);
	cr_assert_eq(h_ack1(H.s, c, 1, 20).status, Q_OK);
	h_rec_clear(&H.rec);
	r = h_publish(H.s, "q", "id", "x", 30);
	cr_assert(r.duplicate);
	cr_assert_eq(r.seq, 1);
	cr_assert_eq(H.rec.n_d, 0, "a duplicate is not delivered");
	h_check(H.s);
}

Test(queue_dedup, ids_are_per_queue_and_null_id_never_dedups)
{
	struct q_settings st = h_plain();

	st.dedup_window_ms = 1000;
	h_create_queue(H.s, "a", &st, 0);
	h_create_queue(H.s, "b", &st, 0);
	cr_assert_not(h_publish(H.s, "a", "id", "x", 1).duplicate);
	cr_assert_not(h_publish(H.s, "b", "id", "x", 1).duplicate);
	cr_assert_not(h_publish(H.s, "a", NULL, "x", 1).duplicate);
	cr_assert_not(h_publish(H.s, "a", NULL, "x", 1).duplicate);
	cr_assert_not(h_publish(H.s, "a", "id2", "x", 1).duplicate);
	cr_assert_eq(h_info(H.s, "a").ready, 4);
	cr_assert_eq(h_info(H.s, "b").ready, 1);
	h_check(H.s);
}

Test(queue_dedup, refused_publish_does_not_remember_id)
{
	struct q_settings st = h_plain();
	struct q_result r;

	st.dedup_window_ms = 1000;
	st.max_length = 1;
	h_create_queue(H.s, "q", &st, 0);
	h_publish(H.s, "q", NULL, "fill", 1);
	cr_assert_eq(h_publish(H.s, "q", "id", "x", 2).status, Q_EFULL);
	h_purge(H.s, "q", 3);
	r = h_publish(H.s, "q", "id", "x", 4);
	cr_assert_eq(r.status, Q_OK);
	cr_assert_not(r.duplicate);
	cr_assert_eq(h_info(H.s, "q").ready, 1);
	h_check(H.s);
}

/* --------------------------------------------------------------------- */

TestSuite(queue_info, .init = h_setup, .fini = h_teardown);

Test(queue_info, counters_follow_a_history)
{
	struct q_settings st = h_plain();
	struct q_queue_info i;
	q_consumer_id c;

	h_create_queue(H.s, "q", &st, 0);
	c = h_attach(H.s, "q", 0, 0);
	h_publish(H.s, "q", NULL, "1", 1);
	h_publish(H.s, "q", NULL, "2", 1);
	h_publish(H.s, "q", NULL, "3", 1);
	h_ack1(H.s, c, 1, 2);
	h_nack1(H.s, c, 2, 0, 3); /* redelivered at once */
	h_release1(H.s, c, 3, 4); /* redelivered at once */
	i = h_info(H.s, "q");
	cr_assert_eq(i.published, 3);
	cr_assert_eq(i.delivered, 5);
	cr_assert_eq(i.redelivered, 2);
	cr_assert_eq(i.acked, 1);
	cr_assert_eq(i.nacked, 1);
	cr_assert_eq(i.released, 1);
	cr_assert_eq(i.unacked, 2);
	cr_assert_eq(i.ready, 0);
	cr_assert_eq(i.consumers, 1);
	cr_assert_eq(i.bytes, 0, "bytes count only messages not held");
	h_check(H.s);
}

Test(queue_info, unknown_queue_is_enotfound)
{
	struct q_queue_info i;

	cr_assert_eq(q_state_queue_info(H.s, "nope", &i), Q_ENOTFOUND);
}

static int collect_names(void *data, const struct q_queue_info *info)
{
	char *out = data;

	strcat(out, info->name);
	strcat(out, ",");
	return 0;
}

Test(queue_info, foreach_queue_in_name_order)
{
	char names[128] = "";

	h_create_queue(H.s, "bravo", NULL, 0);
	h_create_queue(H.s, "charlie", NULL, 0);
	h_create_queue(H.s, "alpha", NULL, 0);
	h_create_queue(H.s, "alph", NULL, 0);
	cr_assert_eq(q_state_foreach_queue(H.s, collect_names, names), 0);
	cr_assert_str_eq(names, "alph,alpha,bravo,charlie,");
}

static int stop_at_second(void *data, const struct q_queue_info *info)
{
	int *n = data;

	(void)info;
	return ++*n == 2 ? 7 : 0;
}

Test(queue_info, foreach_queue_stops_on_nonzero)
{
	int n = 0;

	h_create_queue(H.s, "a", NULL, 0);
	h_create_queue(H.s, "b", NULL, 0);
	h_create_queue(H.s, "c", NULL, 0);
	cr_assert_eq(q_state_foreach_queue(H.s, stop_at_second, &n), 7);
	cr_assert_eq(n, 2);
}

Test(queue_info, totals_count_queues_messages_bytes)
{
	struct q_totals t;

	h_create_queue(H.s, "a", NULL, 0);
	h_create_queue(H.s, "b", NULL, 0);
	h_publish(H.s, "a", NULL, "abc", 1);
	h_publish(H.s, "b", NULL, "de", 1);
	t = h_totals(H.s);
	cr_assert_eq(t.queues, 2);
	cr_assert_eq(t.messages, 2);
	cr_assert_eq(t.bodies, 2);
	cr_assert_eq(t.body_bytes, 5);
	cr_assert_gt(t.alloc_bytes, 0);
}

Test(queue_info, strerror_every_code_distinct)
{
	int i, j;

	for (i = 0; i < Q_ECODES_COUNT; i++) {
		const char *a = q_strerror(i);

		cr_assert_not_null(a, "code %d", i);
		cr_assert_gt(strlen(a), 0, "code %d", i);
		for (j = 0; j < i; j++)
			cr_assert_str_neq(a, q_strerror(j), "codes %d %d", i,
					  j);
	}
}

/* --------------------------------------------------------------------- */

TestSuite(queue_dead_letter, .init = h_setup, .fini = h_teardown);

/* "q": max_deliveries 1 into "dlq" (settings `dl`); one consumer. Nacks
 * `n` messages one by one. Returns the consumer of "q". */
static q_consumer_id nack_into_dlq(const struct q_settings *dl, int n)
{
	struct q_settings st = h_plain();
	q_consumer_id c;
	int i;

	st.max_deliveries = 1;
	st.dead_letter = "dlq";
	cr_assert_eq(h_create_queue(H.s, "dlq", dl, 0).status, Q_OK);
	cr_assert_eq(h_create_queue(H.s, "q", &st, 0).status, Q_OK);
	c = h_attach(H.s, "q", 0, 0);
	for (i = 0; i < n; i++) {
		char body[8] = {(char)('a' + i), '\0'};
		struct q_result r = h_publish(H.s, "q", NULL, body, 1);

		cr_assert_eq(h_nack1(H.s, c, r.seq, 0, 2).status, Q_OK);
	}
	return c;
}

Test(queue_dead_letter, full_reject_publish_dlq_drops_the_message)
{
	struct q_settings dl = h_plain();

	dl.max_length = 1;
	nack_into_dlq(&dl, 2);
	h_check(H.s);
	cr_assert_eq(h_info(H.s, "dlq").ready, 1);
	cr_assert_eq(h_totals(H.s).messages, 1);
	h_attach(H.s, "dlq", 0, 3);
	cr_assert_str_eq(h_rec_last(&H.rec)->body, "a");
}

Test(queue_dead_letter, full_drop_head_dlq_drops_its_oldest_for_good)
{
	struct q_settings dl = h_plain(), dl2 = h_plain();

	cr_assert_eq(h_create_queue(H.s, "dlq2", &dl2, 0).status, Q_OK);
	dl.max_length = 1;
	dl.overflow = Q_OVERFLOW_DROP_HEAD;
	dl.dead_letter = "dlq2";
	nack_into_dlq(&dl, 3);
	h_check(H.s);
	cr_assert_eq(h_info(H.s, "dlq").ready, 1);
	cr_assert_eq(h_info(H.s, "dlq").dropped, 2);
	cr_assert_eq(h_info(H.s, "dlq2").ready, 0,
		     "already dead-lettered: not dead-lettered again");
	cr_assert_eq(h_totals(H.s).messages, 1);
	h_attach(H.s, "dlq", 0, 3);
	cr_assert_str_eq(h_rec_last(&H.rec)->body, "c");
}

Test(queue_dead_letter, deleted_dead_letter_queue_drops)
{
	struct q_settings dl = h_plain();
	q_consumer_id c;

	c = nack_into_dlq(&dl, 1);
	cr_assert_eq(h_info(H.s, "dlq").ready, 1);
	h_delete_queue(H.s, "dlq", 3);
	h_publish(H.s, "q", NULL, "z", 4);
	h_nack1(H.s, c, h_rec_last(&H.rec)->seq, 0, 5);
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	cr_assert_eq(h_totals(H.s).messages, 0);
	h_check(H.s);
}

Test(queue_dead_letter, drop_head_drops_returned_before_ready)
{
	struct q_settings st = h_plain();
	q_consumer_id c;

	st.max_length = 2;
	st.overflow = Q_OVERFLOW_DROP_HEAD;
	h_create_queue(H.s, "q", &st, 0);
	h_publish(H.s, "q", NULL, "1", 1);
	h_publish(H.s, "q", NULL, "2", 1);
	c = h_attach(H.s, "q", 1, 2); /* holds 1 */
	h_credit(H.s, c, 1, 0, 3);    /* no more deliveries */
	h_nack1(H.s, c, 1, 0, 4);     /* 1 returned, 2 ready */
	cr_assert_eq(h_publish(H.s, "q", NULL, "3", 5).status, Q_OK);
	cr_assert_eq(h_info(H.s, "q").dropped, 1);
	h_credit(H.s, c, 0, Q_CREDIT_UNLIMITED, 6);
	cr_assert_eq(H.rec.n_d, 3);
	cr_assert_eq(H.rec.d[1].seq, 2, "the returned one (seq 1) was dropped");
	cr_assert_eq(H.rec.d[2].seq, 3);
	h_check(H.s);
}

Test(queue_dead_letter, delayed_messages_count_toward_max_length)
{
	struct q_settings st = h_plain();
	struct h_pub later = {.delay_ms = 1000};

	st.max_length = 1;
	h_create_queue(H.s, "q", &st, 0);
	cr_assert_eq(h_publish_ex(H.s, "q", NULL, "d", &later, 1).status, Q_OK);
	cr_assert_eq(h_publish(H.s, "q", NULL, "x", 2).status, Q_EFULL);
	h_check(H.s);
}
