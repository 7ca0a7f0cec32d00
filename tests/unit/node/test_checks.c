/* What the node refuses before it proposes (node_write.c), so that
 * queue/ and old log entries keep applying as they always did: new names
 * outside the grammar (proto/names.h) and dead-letter queues that do not
 * exist. Neither reaches consensus/: the fake counts proposals. And what an
 * ALREADY_EXISTS answer says: the settings that differ. */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

static struct fake_node node;

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(checks, .fini = stop);

/* The error answering corr, which must say `words`. */
static void refused(struct fake_client *c, uint64_t corr, int code,
		    const char *words)
{
	Envelope *e;
	fake_node_settle(&node);
	e = tn_expect_error(c, corr, code);
	cr_assert_not_null(strstr(e->error->message, words), "%s",
			   e->error->message);
}

Test(checks, names_outside_the_grammar_are_never_proposed)
{
	struct fake_client *c;
	Raftmq__Client__V1__CreateTopic t;
	Raftmq__Client__V1__Subscribe sub;
	unsigned before;
	tn_start(&node, NULL);
	c = fake_node_connect(&node);
	before = node.cons.proposals;
	refused(c, tn_create_queue(c, "a b"), EC(INVALID_ARGUMENT),
		"queue \"a b\": invalid name: a space at position 2");
	refused(c, tn_create_queue(c, "x:y"), EC(INVALID_ARGUMENT),
		"':' at position 2 is reserved for subscription queues");
	PB(create_topic__init)(&t);
	t.name = (char *)"t*";
	refused(c, tn_send(c, BODY(CREATE_TOPIC), &t), EC(INVALID_ARGUMENT),
		"'*' at position 2 is reserved for routing patterns");
	PB(subscribe__init)(&sub);
	sub.topic = (char *)"t";
	sub.subscription = (char *)"caf\xc3\xa9";
	refused(c, tn_send(c, BODY(SUBSCRIBE), &sub), EC(INVALID_ARGUMENT),
		"byte 0xc3 at position 4 is not allowed (not ASCII)");
	cr_assert_eq(node.cons.proposals, before, "nothing was proposed");
	tn_stop(&node);
}

Test(checks, a_missing_dead_letter_queue_is_never_proposed)
{
	struct fake_client *c;
	Raftmq__Client__V1__CreateQueue m;
	Raftmq__Client__V1__QueueSettings st;
	unsigned before;
	uint64_t corr;
	tn_start(&node, NULL);
	c = fake_node_connect(&node);
	before = node.cons.proposals;
	PB(queue_settings__init)(&st);
	st._dead_letter_queue_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
	st.dead_letter_queue = (char *)"q-dlq";
	PB(create_queue__init)(&m);
	m.name = (char *)"q";
	m.settings = &st;
	refused(c, tn_send(c, BODY(CREATE_QUEUE), &m), EC(NOT_FOUND),
		"queue \"q\": its dead-letter queue \"q-dlq\" does not exist; "
		"create that queue first");
	st.dead_letter_queue = (char *)"q";
	refused(c, tn_send(c, BODY(CREATE_QUEUE), &m), EC(INVALID_ARGUMENT),
		"a queue cannot be its own dead-letter queue");
	cr_assert_eq(node.cons.proposals, before, "nothing was proposed");
	corr = tn_create_queue(c, "q-dlq");
	fake_node_settle(&node);
	tn_expect(c, corr, BODY(CREATE_QUEUE_RESULT));
	st.dead_letter_queue = (char *)"q-dlq";
	corr = tn_send(c, BODY(CREATE_QUEUE), &m);
	fake_node_settle(&node);
	tn_expect(c, corr, BODY(CREATE_QUEUE_RESULT));
	tn_stop(&node);
}

Test(checks, already_exists_names_the_settings_that_differ)
{
	struct fake_client *c = tn_start_queue(&node, NULL, "q");
	Raftmq__Client__V1__CreateQueue m;
	Raftmq__Client__V1__QueueSettings st;
	Envelope *e;
	uint64_t corr;
	PB(queue_settings__init)(&st);
	st._ack_timeout_ms_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___ACK_TIMEOUT_MS_ACK_TIMEOUT_MS;
	st.ack_timeout_ms = 5000;
	st._overflow_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___OVERFLOW_OVERFLOW;
	st.overflow = RAFTMQ__CLIENT__V1__OVERFLOW__OVERFLOW_DROP_HEAD;
	PB(create_queue__init)(&m);
	m.name = (char *)"q";
	m.settings = &st;
	corr = tn_send(c, BODY(CREATE_QUEUE), &m);
	fake_node_settle(&node);
	e = tn_expect_error(c, corr, EC(ALREADY_EXISTS));
	cr_assert_str_eq(e->error->message,
			 "queue \"q\": already exists with different settings: "
			 "ack_timeout_ms 30000 (requested 5000), overflow "
			 "reject-publish (requested drop-head)");
	tn_stop(&node);
}
