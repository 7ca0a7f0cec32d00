/* The table of request kinds (node_dispatch.c): every request body case of
 * client.proto has a complete descriptor, so none can be served without a
 * stated permission; results, pushes and unknown numbers have none. The
 * schema is walked through protobuf-c's descriptor: a kind added to
 * client.proto and forgotten in the table fails here. */
#include <criterion/criterion.h>
#include <string.h>

#include "node_auth.h"
#include "node_int.h"

/* Request field numbers of the Envelope's body (client.proto: 10..99). */
#define REQ_MIN 10
#define REQ_MAX 99

static const ProtobufCFieldDescriptor *body_fields(size_t *n)
{
	const ProtobufCMessageDescriptor *d =
		&raftmq__client__v1__envelope__descriptor;
	*n = d->n_fields;
	return d->fields;
}

static bool in_body(const ProtobufCFieldDescriptor *f)
{
	return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
	       f->quantifier_offset == offsetof(Envelope, body_case);
}

Test(kinds, every_request_has_a_complete_entry)
{
	size_t n, i, requests = 0;
	const ProtobufCFieldDescriptor *f = body_fields(&n);
	for (i = 0; i < n; i++) {
		const struct node_kind *k;
		if (!in_body(&f[i]) || f[i].id < REQ_MIN || f[i].id > REQ_MAX) {
			continue;
		}
		requests++;
		k = node_kind_of((int)f[i].id);
		cr_assert_not_null(k, "request %s (%u) has no entry", f[i].name,
				   f[i].id);
		cr_expect(k->name != NULL && k->name[0] != '\0', "%s",
			  f[i].name);
		cr_expect_neq(k->access, NODE_ACCESS_UNSET, "%s", f[i].name);
		cr_expect_not_null(k->start, "%s", f[i].name);
		if (k->access == NODE_ACCESS_NAMED) {
			cr_expect_not_null(k->grant, "%s", f[i].name);
		}
		/* Its name is the schema's field name: logs and sentences
		 * say what the client sent. */
		cr_expect_str_eq(k->name, f[i].name);
	}
	cr_assert_geq(requests, 26, "the walk found %zu requests", requests);
}

Test(kinds, results_pushes_and_unknown_numbers_have_none)
{
	size_t n, i;
	const ProtobufCFieldDescriptor *f = body_fields(&n);
	for (i = 0; i < n; i++) {
		if (in_body(&f[i]) && f[i].id > REQ_MAX) {
			cr_expect_null(node_kind_of((int)f[i].id), "%s",
				       f[i].name);
		}
	}
	cr_expect_null(node_kind_of(0));
	cr_expect_null(node_kind_of(-1));
	cr_expect_null(node_kind_of(REQ_MIN - 1));
	cr_expect_null(node_kind_of(REQ_MAX));
	cr_expect_null(node_kind_of(100000));
}

/* Only Hello is served before authentication, and only Hello, cluster
 * status and fetch bodies (each node's own store) are answered by
 * followers. */
Test(kinds, anyone_and_any_node_are_the_exceptions)
{
	size_t n, i;
	const ProtobufCFieldDescriptor *f = body_fields(&n);
	for (i = 0; i < n; i++) {
		const struct node_kind *k;
		if (!in_body(&f[i]) || f[i].id > REQ_MAX ||
		    (k = node_kind_of((int)f[i].id)) == NULL) {
			continue;
		}
		if (strcmp(f[i].name, "hello") == 0) {
			cr_expect_eq(k->access, NODE_ACCESS_ANYONE);
		} else {
			cr_expect_neq(k->access, NODE_ACCESS_ANYONE, "%s",
				      f[i].name);
		}
		cr_expect_eq(k->any_node,
			     strcmp(f[i].name, "hello") == 0 ||
				     strcmp(f[i].name, "cluster_status") == 0 ||
				     strcmp(f[i].name, "fetch_bodies") == 0,
			     "%s", f[i].name);
	}
}

/* Grants name what the request names: a subscription needs consume on the
 * topic and configure on the queue TOPIC:SUBSCRIPTION, and publish on a
 * dead-letter queue it sets. */
Test(kinds, subscribe_grants)
{
	Raftmq__Client__V1__Subscribe sub = RAFTMQ__CLIENT__V1__SUBSCRIBE__INIT;
	Raftmq__Client__V1__QueueSettings st =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS__INIT;
	Envelope env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	const struct node_kind *k = node_kind_of(BODY(SUBSCRIBE));
	struct node_grant g;
	sub.topic = "orders";
	sub.subscription = "billing";
	st._dead_letter_queue_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
	st.dead_letter_queue = "dlq";
	sub.settings = &st;
	env.body_case = BODY(SUBSCRIBE);
	env.subscribe = &sub;
	cr_assert(k->grant(&env, 0, &g));
	cr_expect_eq(g.perm, NODE_PERM_CONSUME);
	cr_expect_str_eq(g.name, "orders");
	cr_assert(k->grant(&env, 1, &g));
	cr_expect_eq(g.perm, NODE_PERM_CONFIGURE);
	cr_expect_str_eq(g.name, "orders:billing");
	cr_assert(k->grant(&env, 2, &g));
	cr_expect_eq(g.perm, NODE_PERM_PUBLISH);
	cr_expect_str_eq(g.name, "dlq");
	cr_expect_not(k->grant(&env, 3, &g));
}
