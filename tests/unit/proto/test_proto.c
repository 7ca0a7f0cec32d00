/* Codec tests of proto/ (client.proto, log.proto) through protobuf-c.
 *
 * What is checked:
 *   - Envelopes carrying several request, result and push kinds round-trip
 *     with every field intact, including field presence (QueueSettings) and
 *     oneof cases.
 *   - Forward compatibility: hand-crafted bytes with fields this schema does
 *     not know (top level, nested, a newer body kind, a newer enum value)
 *     decode, and the unknown fields survive a re-encode.
 *   - Truncated or corrupt bytes fail to decode (NULL) without crashing,
 *     except cuts that fall exactly on a top-level field boundary (protobuf
 *     has no end marker, so those are valid shorter messages).
 *   - A LogEntry with mixed commands round-trips; 1000 packed tags
 *     round-trip, are really packed, and the unpacked encoding is accepted.
 *   - A failing allocator makes unpack return NULL without leaking.
 *   - The numbers the schemas promise to mirror from queue/q.h do (q.h's
 *     constants only; nothing of queue/ is linked).
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "log.pb-c.h"
#include "q.h"

/* Short names for the generated constants. */
#define CE(name) RAFTMQ__CLIENT__V1__##name
#define LE(name) RAFTMQ__LOG__V1__##name

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
 * Helpers */

/* Packs `in`, checks pack() wrote get_packed_size() bytes, unpacks the
 * result. The caller frees the returned envelope. */
static Raftmq__Client__V1__Envelope *env_roundtrip(
	const Raftmq__Client__V1__Envelope *in)
{
	size_t n = raftmq__client__v1__envelope__get_packed_size(in);
	uint8_t *buf = malloc(n ? n : 1);
	cr_assert_not_null(buf);
	size_t w = raftmq__client__v1__envelope__pack(in, buf);
	cr_assert_eq(w, n, "pack wrote %zu bytes, get_packed_size said %zu", w,
		     n);
	Raftmq__Client__V1__Envelope *out =
		raftmq__client__v1__envelope__unpack(NULL, n, buf);
	free(buf);
	cr_assert_not_null(out, "unpack of freshly packed envelope failed");
	return out;
}

static Raftmq__Log__V1__LogEntry *entry_roundtrip(
	const Raftmq__Log__V1__LogEntry *in)
{
	size_t n = raftmq__log__v1__log_entry__get_packed_size(in);
	uint8_t *buf = malloc(n ? n : 1);
	cr_assert_not_null(buf);
	size_t w = raftmq__log__v1__log_entry__pack(in, buf);
	cr_assert_eq(w, n);
	Raftmq__Log__V1__LogEntry *out =
		raftmq__log__v1__log_entry__unpack(NULL, n, buf);
	free(buf);
	cr_assert_not_null(out, "unpack of freshly packed log entry failed");
	return out;
}

static ProtobufCBinaryData bin(const void *p, size_t len)
{
	ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)(uintptr_t)p};
	return b;
}

static void assert_bin_eq(ProtobufCBinaryData got, const void *want,
			  size_t want_len)
{
	cr_assert_eq(got.len, want_len, "length %zu, want %zu", got.len,
		     want_len);
	if (want_len > 0) {
		cr_assert_not_null(got.data);
		cr_assert(memcmp(got.data, want, want_len) == 0,
			  "bytes differ");
	}
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* ------------------------------------------------------------------------
 * Round trips of client envelopes */

TestSuite(client);

Test(client, hello)
{
	Raftmq__Client__V1__Hello hello = CE(HELLO__INIT);
	hello.client_name = "raftmq-cli/0.1 host:42";
	hello.protocol_version = CE(PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	hello.auth_token = "s3cret";
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = UINT64_MAX;
	env.body_case = CE(ENVELOPE__BODY_HELLO);
	env.hello = &hello;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->version, 1);
	cr_assert_eq(out->correlation_id, UINT64_MAX);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_HELLO));
	cr_assert_str_eq(out->hello->client_name, "raftmq-cli/0.1 host:42");
	cr_assert_eq(out->hello->protocol_version,
		     CE(PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT));
	cr_assert_str_eq(out->hello->auth_token, "s3cret");
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, publish_to_topic_binary_body)
{
	static const uint8_t body[] = {0x00, 0xff, 'a', 0x00, 0x80, 'z'};
	static const uint8_t id[] = {'i', 'd', 0x00, '7'};
	Raftmq__Client__V1__Publish pub = CE(PUBLISH__INIT);
	pub.target_case = CE(PUBLISH__TARGET_TOPIC);
	pub.topic = "events";
	pub.msg_id = bin(id, sizeof id);
	pub.body = bin(body, sizeof body);
	pub.delay_ms = 1500;
	pub.ttl_ms = 86400000;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 42;
	env.body_case = CE(ENVELOPE__BODY_PUBLISH);
	env.publish = &pub;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->correlation_id, 42);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_PUBLISH));
	cr_assert_eq(out->publish->target_case, CE(PUBLISH__TARGET_TOPIC));
	cr_assert_str_eq(out->publish->topic, "events");
	assert_bin_eq(out->publish->msg_id, id, sizeof id);
	assert_bin_eq(out->publish->body, body, sizeof body);
	cr_assert_eq(out->publish->delay_ms, 1500);
	cr_assert_eq(out->publish->ttl_ms, 86400000);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, publish_batch_and_result)
{
	Raftmq__Client__V1__Publish items[3];
	Raftmq__Client__V1__Publish *ptrs[3];
	char bodies[3][8];
	for (size_t i = 0; i < 3; i++) {
		Raftmq__Client__V1__Publish p = CE(PUBLISH__INIT);
		items[i] = p;
		if (i == 1) {
			items[i].target_case = CE(PUBLISH__TARGET_TOPIC);
			items[i].topic = "t";
		} else {
			items[i].target_case = CE(PUBLISH__TARGET_QUEUE);
			items[i].queue = "q";
		}
		int n = snprintf(bodies[i], sizeof bodies[i], "m-%zu", i);
		items[i].body = bin(bodies[i], (size_t)n);
		ptrs[i] = &items[i];
	}
	Raftmq__Client__V1__PublishBatch batch = CE(PUBLISH_BATCH__INIT);
	batch.n_items = 3;
	batch.items = ptrs;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 9;
	env.body_case = CE(ENVELOPE__BODY_PUBLISH_BATCH);
	env.publish_batch = &batch;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_PUBLISH_BATCH));
	cr_assert_eq(out->publish_batch->n_items, 3);
	for (size_t i = 0; i < 3; i++) {
		const Raftmq__Client__V1__Publish *p =
			out->publish_batch->items[i];
		cr_assert_eq(p->target_case, items[i].target_case, "item %zu",
			     i);
		cr_assert_str_eq(i == 1 ? p->topic : p->queue,
				 i == 1 ? "t" : "q");
		assert_bin_eq(p->body, bodies[i], strlen(bodies[i]));
	}
	raftmq__client__v1__envelope__free_unpacked(out, NULL);

	/* The answer: one result per item, in order. */
	Raftmq__Client__V1__PublishItemResult r[3];
	Raftmq__Client__V1__PublishItemResult *rp[3];
	for (size_t i = 0; i < 3; i++) {
		Raftmq__Client__V1__PublishItemResult x =
			CE(PUBLISH_ITEM_RESULT__INIT);
		r[i] = x;
		rp[i] = &r[i];
	}
	r[0].seq = 10;
	r[1].code = CE(ERROR_CODE__ERROR_CODE_QUEUE_FULL);
	r[1].message = "queue \"q\" is full";
	r[2].seq = 4;
	r[2].duplicate = true;
	Raftmq__Client__V1__PublishBatchResult res =
		CE(PUBLISH_BATCH_RESULT__INIT);
	res.n_results = 3;
	res.results = rp;
	env.body_case = CE(ENVELOPE__BODY_PUBLISH_BATCH_RESULT);
	env.publish_batch_result = &res;

	out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_PUBLISH_BATCH_RESULT));
	const Raftmq__Client__V1__PublishBatchResult *o =
		out->publish_batch_result;
	cr_assert_eq(o->n_results, 3);
	cr_assert_eq(o->results[0]->code, CE(ERROR_CODE__ERROR_CODE_OK));
	cr_assert_eq(o->results[0]->seq, 10);
	cr_assert_eq(o->results[0]->duplicate, false);
	cr_assert_eq(o->results[1]->code,
		     CE(ERROR_CODE__ERROR_CODE_QUEUE_FULL));
	cr_assert_str_eq(o->results[1]->message, "queue \"q\" is full");
	cr_assert_eq(o->results[2]->seq, 4);
	cr_assert_eq(o->results[2]->duplicate, true);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

/* Presence: a setting explicitly set to 0 must stay distinguishable from an
 * absent one (absent = default on create, unchanged on configure). */
Test(client, queue_settings_presence)
{
	Raftmq__Client__V1__QueueSettings s = CE(QUEUE_SETTINGS__INIT);
	s._ack_timeout_ms_case =
		CE(QUEUE_SETTINGS___ACK_TIMEOUT_MS_ACK_TIMEOUT_MS);
	s.ack_timeout_ms = 0; /* present, value 0 = no deadline */
	s._max_deliveries_case =
		CE(QUEUE_SETTINGS___MAX_DELIVERIES_MAX_DELIVERIES);
	s.max_deliveries = 5;
	s._dead_letter_queue_case =
		CE(QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE);
	s.dead_letter_queue = ""; /* present, empty = remove the DLQ */
	s._overflow_case = CE(QUEUE_SETTINGS___OVERFLOW_OVERFLOW);
	s.overflow = CE(OVERFLOW__OVERFLOW_REJECT_PUBLISH); /* present, 0 */
	s._dedup_window_ms_case =
		CE(QUEUE_SETTINGS___DEDUP_WINDOW_MS_DEDUP_WINDOW_MS);
	s.dedup_window_ms = 120000;
	Raftmq__Client__V1__ConfigureQueue cq = CE(CONFIGURE_QUEUE__INIT);
	cq.name = "orders";
	cq.settings = &s;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 3;
	env.body_case = CE(ENVELOPE__BODY_CONFIGURE_QUEUE);
	env.configure_queue = &cq;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_CONFIGURE_QUEUE));
	cr_assert_str_eq(out->configure_queue->name, "orders");
	const Raftmq__Client__V1__QueueSettings *o =
		out->configure_queue->settings;
	cr_assert_not_null(o);
	cr_assert_eq(o->_ack_timeout_ms_case,
		     CE(QUEUE_SETTINGS___ACK_TIMEOUT_MS_ACK_TIMEOUT_MS));
	cr_assert_eq(o->ack_timeout_ms, 0);
	cr_assert_eq(o->_max_deliveries_case,
		     CE(QUEUE_SETTINGS___MAX_DELIVERIES_MAX_DELIVERIES));
	cr_assert_eq(o->max_deliveries, 5);
	cr_assert_eq(o->_dead_letter_queue_case,
		     CE(QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE));
	cr_assert_str_eq(o->dead_letter_queue, "");
	cr_assert_eq(o->_overflow_case, CE(QUEUE_SETTINGS___OVERFLOW_OVERFLOW));
	cr_assert_eq(o->overflow, CE(OVERFLOW__OVERFLOW_REJECT_PUBLISH));
	cr_assert_eq(o->dedup_window_ms, 120000);
	/* Not set: must stay absent. */
	cr_assert_eq(o->_ttl_ms_case, CE(QUEUE_SETTINGS___TTL_MS__NOT_SET));
	cr_assert_eq(o->_max_length_case,
		     CE(QUEUE_SETTINGS___MAX_LENGTH__NOT_SET));
	cr_assert_eq(o->_max_bytes_case,
		     CE(QUEUE_SETTINGS___MAX_BYTES__NOT_SET));
	raftmq__client__v1__envelope__free_unpacked(out, NULL);

	/* CreateQueue without any settings message: settings stay NULL. */
	Raftmq__Client__V1__CreateQueue cr = CE(CREATE_QUEUE__INIT);
	cr.name = "plain";
	env.body_case = CE(ENVELOPE__BODY_CREATE_QUEUE);
	env.create_queue = &cr;
	out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_CREATE_QUEUE));
	cr_assert_str_eq(out->create_queue->name, "plain");
	cr_assert_null(out->create_queue->settings);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, consume_credit_presence_and_fetch)
{
	Raftmq__Client__V1__Consume c = CE(CONSUME__INIT);
	c.queue = "jobs";
	c.prefetch = 64;
	c._credit_case = CE(CONSUME___CREDIT_CREDIT);
	c.credit = 0; /* present: no deliveries until Credit */
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 77;
	env.body_case = CE(ENVELOPE__BODY_CONSUME);
	env.consume = &c;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_CONSUME));
	cr_assert_str_eq(out->consume->queue, "jobs");
	cr_assert_eq(out->consume->prefetch, 64);
	cr_assert_eq(out->consume->_credit_case, CE(CONSUME___CREDIT_CREDIT));
	cr_assert_eq(out->consume->credit, 0);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);

	Raftmq__Client__V1__Fetch f = CE(FETCH__INIT);
	f.source_case = CE(FETCH__SOURCE_CONSUMER_ID);
	f.consumer_id = 12345678901ULL;
	f.max_messages = 100;
	f.wait_ms = 250;
	env.body_case = CE(ENVELOPE__BODY_FETCH);
	env.fetch = &f;
	out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_FETCH));
	cr_assert_eq(out->fetch->source_case, CE(FETCH__SOURCE_CONSUMER_ID));
	cr_assert_eq(out->fetch->consumer_id, 12345678901ULL);
	cr_assert_eq(out->fetch->max_messages, 100);
	cr_assert_eq(out->fetch->wait_ms, 250);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, nack_and_extend_tags)
{
	uint64_t tags[] = {3, 1, 4, 1, 5, 9, 2, 6};
	Raftmq__Client__V1__Nack n = CE(NACK__INIT);
	n.consumer_id = 8;
	n.n_tags = ARRAY_LEN(tags);
	n.tags = tags;
	n.delay_ms = 5000;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 5;
	env.body_case = CE(ENVELOPE__BODY_NACK);
	env.nack = &n;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_NACK));
	cr_assert_eq(out->nack->consumer_id, 8);
	cr_assert_eq(out->nack->delay_ms, 5000);
	cr_assert_eq(out->nack->n_tags, ARRAY_LEN(tags));
	cr_assert_arr_eq(out->nack->tags, tags, sizeof tags);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);

	Raftmq__Client__V1__Extend e = CE(EXTEND__INIT);
	e.consumer_id = 8;
	e.n_tags = 2;
	e.tags = tags;
	e.ms = 600000;
	env.body_case = CE(ENVELOPE__BODY_EXTEND);
	env.extend = &e;
	out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_EXTEND));
	cr_assert_eq(out->extend->ms, 600000);
	cr_assert_eq(out->extend->n_tags, 2);
	cr_assert_eq(out->extend->tags[0], 3);
	cr_assert_eq(out->extend->tags[1], 1);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);

	/* The Ack result shares TagsResult; the oneof case tells which. */
	Raftmq__Client__V1__TagsResult tr = CE(TAGS_RESULT__INIT);
	tr.done = 6;
	tr.unknown = 2;
	env.body_case = CE(ENVELOPE__BODY_ACK_RESULT);
	env.ack_result = &tr;
	out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_ACK_RESULT));
	cr_assert_eq(out->ack_result->done, 6);
	cr_assert_eq(out->ack_result->unknown, 2);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, error_not_leader)
{
	Raftmq__Client__V1__Error e = CE(ERROR__INIT);
	e.code = CE(ERROR_CODE__ERROR_CODE_NOT_LEADER);
	e.message = "node 2 is not the leader; leader is node 3";
	e.leader_id = 3;
	e.leader_client_address = "127.0.0.1:7003";
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 11;
	env.body_case = CE(ENVELOPE__BODY_ERROR);
	env.error = &e;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_ERROR));
	cr_assert_eq(out->error->code, CE(ERROR_CODE__ERROR_CODE_NOT_LEADER));
	cr_assert_str_eq(out->error->message,
			 "node 2 is not the leader; leader is node 3");
	cr_assert_eq(out->error->leader_id, 3);
	cr_assert_str_eq(out->error->leader_client_address, "127.0.0.1:7003");
	cr_assert_eq(out->error->supported_version, 0);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, delivery_push_dead_lettered)
{
	static const char body[] = "payload";
	Raftmq__Client__V1__Delivery d = CE(DELIVERY__INIT);
	d.consumer_id = 2;
	d.queue = "dlq";
	d.tag = 1ULL << 40;
	d.msg_id = bin("p-17", 4);
	d.body = bin(body, sizeof body - 1);
	d.delivery_count = 3;
	d.redelivered = true;
	d.published_ms = 1700000000123ULL;
	d.dead_letter_reason =
		CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_EXPIRED);
	d.dead_letter_queue = "orders";
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 21;
	env.body_case = CE(ENVELOPE__BODY_DELIVERY);
	env.delivery = &d;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_DELIVERY));
	const Raftmq__Client__V1__Delivery *o = out->delivery;
	cr_assert_eq(o->consumer_id, 2);
	cr_assert_str_eq(o->queue, "dlq");
	cr_assert_eq(o->tag, 1ULL << 40);
	assert_bin_eq(o->msg_id, "p-17", 4);
	assert_bin_eq(o->body, body, sizeof body - 1);
	cr_assert_eq(o->delivery_count, 3);
	cr_assert_eq(o->redelivered, true);
	cr_assert_eq(o->published_ms, 1700000000123ULL);
	cr_assert_eq(o->dead_letter_reason,
		     CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_EXPIRED));
	cr_assert_str_eq(o->dead_letter_queue, "orders");
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

/* Every counter gets a distinct value so a mixed-up field shows. (A round
 * trip cannot catch a renumbered field: see the golden suite.) */
Test(client, queue_info_result_counters)
{
	Raftmq__Client__V1__QueueStatus q = CE(QUEUE_STATUS__INIT);
	q.name = "orders";
	q.topic = "";
	q.ready = 4;
	q.unacked = 5;
	q.delayed = 6;
	q.bytes = 7;
	q.consumers = 8;
	q.published = 9;
	q.delivered = 10;
	q.redelivered = 11;
	q.acked = 12;
	q.nacked = 13;
	q.released = 14;
	q.dead_lettered = 15;
	q.expired = 16;
	q.deduplicated = 17;
	q.dropped = 18;
	q.rejected = 19;
	Raftmq__Client__V1__QueueInfoResult r = CE(QUEUE_INFO_RESULT__INIT);
	r.queue = &q;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 1;
	env.body_case = CE(ENVELOPE__BODY_QUEUE_INFO_RESULT);
	env.queue_info_result = &r;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_QUEUE_INFO_RESULT));
	const Raftmq__Client__V1__QueueStatus *o =
		out->queue_info_result->queue;
	cr_assert_str_eq(o->name, "orders");
	cr_assert_null(o->settings);
	const uint64_t got[] = {
		o->ready,     o->unacked,      o->delayed,   o->bytes,
		o->consumers, o->published,    o->delivered, o->redelivered,
		o->acked,     o->nacked,       o->released,  o->dead_lettered,
		o->expired,   o->deduplicated, o->dropped,   o->rejected,
	};
	for (size_t i = 0; i < ARRAY_LEN(got); i++)
		cr_assert_eq(got[i], i + 4, "counter %zu is %llu", i,
			     (unsigned long long)got[i]);
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

Test(client, cluster_status_result)
{
	static const char *raft[] = {"127.0.0.1:7101", "127.0.0.1:7102",
				     "127.0.0.1:7103"};
	static const char *client[] = {"127.0.0.1:7001", "127.0.0.1:7002",
				       "127.0.0.1:7003"};
	const Raftmq__Client__V1__NodeRole roles[] = {
		CE(NODE_ROLE__NODE_ROLE_VOTER),
		CE(NODE_ROLE__NODE_ROLE_STANDBY),
		CE(NODE_ROLE__NODE_ROLE_SPARE)};
	Raftmq__Client__V1__Node nodes[3];
	Raftmq__Client__V1__Node *np[3];
	for (size_t i = 0; i < 3; i++) {
		Raftmq__Client__V1__Node n = CE(NODE__INIT);
		nodes[i] = n;
		nodes[i].id = i + 1;
		nodes[i].raft_address = (char *)(uintptr_t)raft[i];
		nodes[i].client_address = (char *)(uintptr_t)client[i];
		nodes[i].role = roles[i];
		nodes[i].reachable = i != 2;
		np[i] = &nodes[i];
	}
	Raftmq__Client__V1__ClusterStatusResult st =
		CE(CLUSTER_STATUS_RESULT__INIT);
	st.leader_id = 1;
	st.term = 7;
	st.commit_index = 1000;
	st.applied_index = 998;
	st.n_nodes = 3;
	st.nodes = np;
	st.node_id = 2;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 2;
	env.body_case = CE(ENVELOPE__BODY_CLUSTER_STATUS_RESULT);
	env.cluster_status_result = &st;

	Raftmq__Client__V1__Envelope *out = env_roundtrip(&env);
	cr_assert_eq(out->body_case, CE(ENVELOPE__BODY_CLUSTER_STATUS_RESULT));
	const Raftmq__Client__V1__ClusterStatusResult *o =
		out->cluster_status_result;
	cr_assert_eq(o->leader_id, 1);
	cr_assert_eq(o->term, 7);
	cr_assert_eq(o->commit_index, 1000);
	cr_assert_eq(o->applied_index, 998);
	cr_assert_eq(o->node_id, 2);
	cr_assert_eq(o->n_nodes, 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(o->nodes[i]->id, i + 1);
		cr_assert_str_eq(o->nodes[i]->raft_address, raft[i]);
		cr_assert_str_eq(o->nodes[i]->client_address, client[i]);
		cr_assert_eq(o->nodes[i]->role, roles[i]);
		cr_assert_eq(o->nodes[i]->reachable, i != 2);
	}
	raftmq__client__v1__envelope__free_unpacked(out, NULL);
}

/* ------------------------------------------------------------------------
 * Forward compatibility: fields from a newer schema */

TestSuite(compat);

Test(compat, unknown_fields_are_ignored_and_kept)
{
	/* clang-format off */
	static const uint8_t bytes[] = {
		0x08, 0x01,             /* version = 1 */
		0x10, 0x07,             /* correlation_id = 7 */
		0x48, 0x96, 0x01,       /* unknown field 9, varint 150 */
		0x1a, 0x03, 'x', 'y', 'z', /* unknown field 3, bytes "xyz" */
		0x91, 0x03,             /* unknown field 50, fixed64: */
		1, 2, 3, 4, 5, 6, 7, 8,
		0x5a, 0x0c,             /* publish (field 11), 12 bytes: */
		0x0a, 0x02, 'q', '1',   /*   queue = "q1" */
		0x98, 0x06, 0x05,       /*   unknown field 99, varint 5 */
		0x22, 0x03, 'a', 'b', 'c', /* body = "abc" */
	};
	/* clang-format on */
	Raftmq__Client__V1__Envelope *e =
		raftmq__client__v1__envelope__unpack(NULL, sizeof bytes, bytes);
	cr_assert_not_null(e, "unknown fields must not make decoding fail");
	cr_assert_eq(e->version, 1);
	cr_assert_eq(e->correlation_id, 7);
	cr_assert_eq(e->body_case, CE(ENVELOPE__BODY_PUBLISH));
	cr_assert_eq(e->publish->target_case, CE(PUBLISH__TARGET_QUEUE));
	cr_assert_str_eq(e->publish->queue, "q1");
	assert_bin_eq(e->publish->body, "abc", 3);
	cr_assert_eq(e->base.n_unknown_fields, 3);
	cr_assert_eq(e->publish->base.n_unknown_fields, 1);

	/* protobuf-c keeps unknown fields: re-encoding loses no byte (it may
	 * move them, so compare sizes and decode again). */
	size_t n = raftmq__client__v1__envelope__get_packed_size(e);
	cr_assert_eq(n, sizeof bytes);
	uint8_t *buf = malloc(n);
	cr_assert_not_null(buf);
	cr_assert_eq(raftmq__client__v1__envelope__pack(e, buf), n);
	Raftmq__Client__V1__Envelope *again =
		raftmq__client__v1__envelope__unpack(NULL, n, buf);
	cr_assert_not_null(again);
	cr_assert_eq(again->base.n_unknown_fields, 3);
	cr_assert_eq(again->publish->base.n_unknown_fields, 1);
	cr_assert_str_eq(again->publish->queue, "q1");
	raftmq__client__v1__envelope__free_unpacked(again, NULL);
	free(buf);
	raftmq__client__v1__envelope__free_unpacked(e, NULL);
}

/* A request kind this server does not know decodes with no body set; the
 * server answers MALFORMED instead of dropping the connection. */
Test(compat, unknown_body_kind_decodes_without_body)
{
	/* clang-format off */
	static const uint8_t bytes[] = {
		0x08, 0x01,             /* version = 1 */
		0x10, 0x05,             /* correlation_id = 5 */
		0x9a, 0x06, 0x02, 0x08, 0x01, /* field 99 (a future request) */
	};
	/* clang-format on */
	Raftmq__Client__V1__Envelope *e =
		raftmq__client__v1__envelope__unpack(NULL, sizeof bytes, bytes);
	cr_assert_not_null(e);
	cr_assert_eq(e->correlation_id, 5);
	cr_assert_eq(e->body_case, CE(ENVELOPE__BODY__NOT_SET));
	cr_assert_eq(e->base.n_unknown_fields, 1);
	raftmq__client__v1__envelope__free_unpacked(e, NULL);
}

/* proto3 enums are open: a newer server's error code reaches an older client
 * as its number, so it can still print "error 150". */
Test(compat, unknown_enum_value_is_kept)
{
	/* clang-format off */
	static const uint8_t bytes[] = {
		0x08, 0x01,             /* version = 1 */
		0xc2, 0x0c, 0x05,       /* error (field 200), 5 bytes: */
		0x08, 0x96, 0x01,       /*   code = 150 (not in this schema) */
		0x12, 0x00,             /*   message = "" */
	};
	/* clang-format on */
	Raftmq__Client__V1__Envelope *e =
		raftmq__client__v1__envelope__unpack(NULL, sizeof bytes, bytes);
	cr_assert_not_null(e);
	cr_assert_eq(e->body_case, CE(ENVELOPE__BODY_ERROR));
	cr_assert_eq((int)e->error->code, 150);
	cr_assert_null(protobuf_c_enum_descriptor_get_value(
		&raftmq__client__v1__error_code__descriptor, 150));
	raftmq__client__v1__envelope__free_unpacked(e, NULL);
}

/* ------------------------------------------------------------------------
 * Golden bytes: hand-written from the field numbers the schemas publish.
 * A round trip through one schema cannot notice a renumbered field; these
 * can. log.proto must decode these bytes forever. */

TestSuite(golden);

/* Packs `m` and compares with `want` byte for byte (protobuf-c writes
 * fields in field-number order, so the encoding is canonical here). */
static void assert_packs_to(const ProtobufCMessage *m, const uint8_t *want,
			    size_t want_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	cr_assert_eq(n, want_len, "packed size %zu, want %zu", n, want_len);
	uint8_t *buf = malloc(n ? n : 1);
	cr_assert_not_null(buf);
	cr_assert_eq(protobuf_c_message_pack(m, buf), n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(buf[i], want[i], "byte %zu is 0x%02x, want 0x%02x",
			     i, buf[i], want[i]);
	free(buf);
}

/* clang-format off */
static const uint8_t golden_entry[] = {
	0x08, 0x01,                   /* format = 1 */
	0x10, 0xe8, 0x07,             /* leader_time_ms = 1000 */
	0x1a, 0x0f,                   /* commands[0], 15 bytes */
	0x52, 0x0d,                   /*   publish (10), 13 bytes */
	0x0a, 0x01, 'q',              /*     queue = "q" */
	0x1a, 0x01, 'm',              /*     msg_id = "m" */
	0x22, 0x01, 'b',              /*     body = "b" */
	0x28, 0x02,                   /*     delay_ms = 2 */
	0x30, 0x03,                   /*     ttl_ms = 3 */
	0x1a, 0x15,                   /* commands[1], 21 bytes */
	0x5a, 0x13,                   /*   attach (11), 19 bytes */
	0x0a, 0x01, 'q',              /*     queue = "q" */
	0x12, 0x06,                   /*     session, 6 bytes */
	0x08, 0x01, 0x10, 0x02, 0x18, 0x03, /* node 1, epoch 2, id 3 */
	0x18, 0x0a,                   /*     prefetch = 10 */
	0x20, 0xff, 0xff, 0xff, 0xff, 0x0f, /* credit = UINT32_MAX */
	0x1a, 0x09,                   /* commands[2], 9 bytes */
	0x72, 0x07,                   /*   ack (14), 7 bytes */
	0x08, 0x04,                   /*     consumer = 4 */
	0x12, 0x03, 0x07, 0x08, 0x09, /*     tags = [7, 8, 9], packed */
	0x1a, 0x07,                   /* commands[3], 7 bytes */
	0x9a, 0x01, 0x04,             /*   detach_stale (19), 4 bytes */
	0x08, 0x02,                   /*     node_id = 2 */
	0x10, 0x05,                   /*     epoch = 5 */
};
/* clang-format on */

Test(golden, log_entry_format_1)
{
	Raftmq__Log__V1__LogEntry *e = raftmq__log__v1__log_entry__unpack(
		NULL, sizeof golden_entry, golden_entry);
	cr_assert_not_null(e);
	cr_assert_eq(e->format, 1);
	cr_assert_eq(e->leader_time_ms, 1000);
	cr_assert_eq(e->n_commands, 4);

	cr_assert_eq(e->commands[0]->kind_case, LE(COMMAND__KIND_PUBLISH));
	const Raftmq__Log__V1__Publish *p = e->commands[0]->publish;
	cr_assert_eq(p->target_case, LE(PUBLISH__TARGET_QUEUE));
	cr_assert_str_eq(p->queue, "q");
	assert_bin_eq(p->msg_id, "m", 1);
	assert_bin_eq(p->body, "b", 1);
	cr_assert_eq(p->delay_ms, 2);
	cr_assert_eq(p->ttl_ms, 3);

	cr_assert_eq(e->commands[1]->kind_case, LE(COMMAND__KIND_ATTACH));
	const Raftmq__Log__V1__Attach *a = e->commands[1]->attach;
	cr_assert_str_eq(a->queue, "q");
	cr_assert_not_null(a->session);
	cr_assert_eq(a->session->node_id, 1);
	cr_assert_eq(a->session->epoch, 2);
	cr_assert_eq(a->session->session_id, 3);
	cr_assert_eq(a->prefetch, 10);
	cr_assert_eq(a->credit, UINT32_MAX);

	cr_assert_eq(e->commands[2]->kind_case, LE(COMMAND__KIND_ACK));
	cr_assert_eq(e->commands[2]->ack->consumer, 4);
	cr_assert_eq(e->commands[2]->ack->n_tags, 3);
	cr_assert_eq(e->commands[2]->ack->tags[0], 7);
	cr_assert_eq(e->commands[2]->ack->tags[1], 8);
	cr_assert_eq(e->commands[2]->ack->tags[2], 9);

	cr_assert_eq(e->commands[3]->kind_case, LE(COMMAND__KIND_DETACH_STALE));
	cr_assert_eq(e->commands[3]->detach_stale->node_id, 2);
	cr_assert_eq(e->commands[3]->detach_stale->epoch, 5);

	/* And today's encoder writes exactly these bytes. */
	assert_packs_to(&e->base, golden_entry, sizeof golden_entry);
	raftmq__log__v1__log_entry__free_unpacked(e, NULL);
}

Test(golden, publish_envelope)
{
	/* clang-format off */
	static const uint8_t want[] = {
		0x08, 0x01,             /* version = 1 */
		0x10, 0x07,             /* correlation_id = 7 */
		0x5a, 0x0d,             /* publish (11), 13 bytes */
		0x12, 0x01, 't',        /*   topic = "t" */
		0x1a, 0x01, 'i',        /*   msg_id = "i" */
		0x22, 0x01, 'b',        /*   body = "b" */
		0x28, 0x05,             /*   delay_ms = 5 */
		0x30, 0x06,             /*   ttl_ms = 6 */
	};
	/* clang-format on */
	Raftmq__Client__V1__Publish pub = CE(PUBLISH__INIT);
	pub.target_case = CE(PUBLISH__TARGET_TOPIC);
	pub.topic = "t";
	pub.msg_id = bin("i", 1);
	pub.body = bin("b", 1);
	pub.delay_ms = 5;
	pub.ttl_ms = 6;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 7;
	env.body_case = CE(ENVELOPE__BODY_PUBLISH);
	env.publish = &pub;
	assert_packs_to(&env.base, want, sizeof want);
}

Test(golden, delivery_envelope)
{
	/* clang-format off */
	static const uint8_t want[] = {
		0x08, 0x01,             /* version = 1 */
		0x10, 0x02,             /* correlation_id = 2 */
		0xca, 0x0c, 0x18,       /* delivery (201), 24 bytes */
		0x08, 0x01,             /*   consumer_id = 1 */
		0x12, 0x01, 'q',        /*   queue = "q" */
		0x18, 0x03,             /*   tag = 3 */
		0x22, 0x01, 'm',        /*   msg_id = "m" */
		0x2a, 0x01, 'b',        /*   body = "b" */
		0x30, 0x06,             /*   delivery_count = 6 */
		0x38, 0x01,             /*   redelivered = true */
		0x40, 0x08,             /*   published_ms = 8 */
		0x48, 0x02,             /*   dead_letter_reason = EXPIRED */
		0x52, 0x01, 'o',        /*   dead_letter_queue = "o" */
	};
	/* clang-format on */
	Raftmq__Client__V1__Delivery d = CE(DELIVERY__INIT);
	d.consumer_id = 1;
	d.queue = "q";
	d.tag = 3;
	d.msg_id = bin("m", 1);
	d.body = bin("b", 1);
	d.delivery_count = 6;
	d.redelivered = true;
	d.published_ms = 8;
	d.dead_letter_reason =
		CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_EXPIRED);
	d.dead_letter_queue = "o";
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 2;
	env.body_case = CE(ENVELOPE__BODY_DELIVERY);
	env.delivery = &d;
	assert_packs_to(&env.base, want, sizeof want);
}

/* QueueStatus counters 4..19 are field N = value N: the expected bytes are
 * each field's key and value, in order. */
Test(golden, queue_status_counter_numbers)
{
	Raftmq__Client__V1__QueueStatus q = CE(QUEUE_STATUS__INIT);
	uint64_t *counters[] = {
		&q.ready,     &q.unacked,      &q.delayed,   &q.bytes,
		&q.consumers, &q.published,    &q.delivered, &q.redelivered,
		&q.acked,     &q.nacked,       &q.released,  &q.dead_lettered,
		&q.expired,   &q.deduplicated, &q.dropped,   &q.rejected,
	};
	uint8_t want[64];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_LEN(counters); i++) {
		uint64_t field = i + 4;
		*counters[i] = field;
		n += put_varint(want + n, field << 3); /* wire type 0 */
		n += put_varint(want + n, field);
	}
	assert_packs_to(&q.base, want, n);
}

/* ------------------------------------------------------------------------
 * Truncated and corrupt input */

TestSuite(corrupt);

/* Unpacks every prefix of `full` from an exact-size heap copy (so a sanitizer
 * catches any over-read) and checks that exactly the cuts listed in `ok`
 * decode. */
static void check_prefixes(const uint8_t *full, size_t len, const size_t *ok,
			   size_t n_ok, bool log)
{
	size_t decoded = 0;
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		cr_assert_not_null(p);
		memcpy(p, full, cut);
		/* Every generated message starts with its ProtobufCMessage. */
		ProtobufCMessage *m =
			log ? (ProtobufCMessage *)
					raftmq__log__v1__log_entry__unpack(
						NULL, cut, p)
			    : (ProtobufCMessage *)
					raftmq__client__v1__envelope__unpack(
						NULL, cut, p);
		bool boundary = false;
		for (size_t i = 0; i < n_ok; i++)
			boundary = boundary || ok[i] == cut;
		if (boundary) {
			cr_assert_not_null(m,
					   "cut at field boundary %zu of %zu "
					   "should decode",
					   cut, len);
			decoded++;
		} else {
			cr_assert_null(m, "cut at %zu of %zu decoded", cut,
				       len);
		}
		if (m != NULL)
			protobuf_c_message_free_unpacked(m, NULL);
		free(p);
	}
	cr_assert_eq(decoded, n_ok);
}

Test(corrupt, truncated_envelope_fails)
{
	uint8_t body[100];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)(i * 37u);
	Raftmq__Client__V1__Publish pub = CE(PUBLISH__INIT);
	pub.target_case = CE(PUBLISH__TARGET_QUEUE);
	pub.queue = "orders";
	pub.msg_id = bin("id-1", 4);
	pub.body = bin(body, sizeof body);
	pub.ttl_ms = 1000;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;	  /* 2 bytes: 08 01 */
	env.correlation_id = 300; /* 3 bytes: 10 ac 02 */
	env.body_case = CE(ENVELOPE__BODY_PUBLISH);
	env.publish = &pub;
	size_t n = raftmq__client__v1__envelope__get_packed_size(&env);
	uint8_t *full = malloc(n);
	cr_assert_not_null(full);
	raftmq__client__v1__envelope__pack(&env, full);

	/* The empty message, after version, after correlation_id. */
	const size_t ok[] = {0, 2, 5};
	check_prefixes(full, n, ok, ARRAY_LEN(ok), false);

	/* The whole thing still decodes (the loop stops one byte short). */
	Raftmq__Client__V1__Envelope *e =
		raftmq__client__v1__envelope__unpack(NULL, n, full);
	cr_assert_not_null(e);
	assert_bin_eq(e->publish->body, body, sizeof body);
	raftmq__client__v1__envelope__free_unpacked(e, NULL);
	free(full);
}

Test(corrupt, garbage_fails)
{
	/* clang-format off */
	static const uint8_t overlong_varint[] = {
		0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0x01, /* 11-byte varint */
	};
	/* clang-format on */
	/* clang-format off */
	static const uint8_t length_past_end[] = {
		0x5a, 0x7f, 0x0a, 0x01, 'q', /* publish claims 127 bytes */
	};
	/* clang-format on */
	/* Field 1 with wire type 7 (there is none). */
	static const uint8_t bad_wire_type[] = {0x0f, 0x00};
	/* Field number 0 (not a valid field number). */
	static const uint8_t field_zero[] = {0x00, 0x01};
	/* clang-format off */
	static const uint8_t bad_nested[] = {
		0x5a, 0x02, 0x0a, 0x05, /* publish: queue claims 5 bytes, has 0 */
	};
	/* clang-format on */
	static const struct {
		const uint8_t *b;
		size_t n;
	} cases[] = {
		{overlong_varint, sizeof overlong_varint},
		{length_past_end, sizeof length_past_end},
		{bad_wire_type, sizeof bad_wire_type},
		{field_zero, sizeof field_zero},
		{bad_nested, sizeof bad_nested},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint8_t *p = malloc(cases[i].n);
		cr_assert_not_null(p);
		memcpy(p, cases[i].b, cases[i].n);
		Raftmq__Client__V1__Envelope *e =
			raftmq__client__v1__envelope__unpack(NULL, cases[i].n,
							     p);
		cr_assert_null(e, "garbage case %zu decoded", i);
		free(p);
	}
}

/* Allocator that fails the Nth allocation and counts what is live. */
struct fail_alloc {
	int fail_at; /* allocation index to fail; -1 = never */
	int calls;
	int live;
};

static void *fail_alloc_alloc(void *data, size_t size)
{
	struct fail_alloc *f = data;
	if (f->calls++ == f->fail_at)
		return NULL;
	void *p = malloc(size);
	if (p != NULL)
		f->live++;
	return p;
}

static void fail_alloc_free(void *data, void *p)
{
	struct fail_alloc *f = data;
	if (p != NULL)
		f->live--;
	free(p);
}

Test(corrupt, allocation_failure_returns_null_without_leak)
{
	uint64_t tags[] = {1, 2, 3};
	Raftmq__Client__V1__Ack ack = CE(ACK__INIT);
	ack.consumer_id = 1;
	ack.n_tags = 3;
	ack.tags = tags;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 1;
	env.body_case = CE(ENVELOPE__BODY_ACK);
	env.ack = &ack;
	uint8_t buf[64];
	size_t n = raftmq__client__v1__envelope__get_packed_size(&env);
	cr_assert_leq(n, sizeof buf);
	cr_assert_eq(raftmq__client__v1__envelope__pack(&env, buf), n);

	/* Count the allocations of a successful decode... */
	struct fail_alloc f = {.fail_at = -1};
	ProtobufCAllocator a = {.alloc = fail_alloc_alloc,
				.free = fail_alloc_free,
				.allocator_data = &f};
	Raftmq__Client__V1__Envelope *e =
		raftmq__client__v1__envelope__unpack(&a, n, buf);
	cr_assert_not_null(e);
	int total = f.calls;
	cr_assert_gt(total, 1, "expected several allocations, got %d", total);
	raftmq__client__v1__envelope__free_unpacked(e, &a);
	cr_assert_eq(f.live, 0);

	/* ...then fail each one in turn. */
	for (int i = 0; i < total; i++) {
		struct fail_alloc g = {.fail_at = i};
		a.allocator_data = &g;
		e = raftmq__client__v1__envelope__unpack(&a, n, buf);
		cr_assert_null(e, "decode succeeded with allocation %d failing",
			       i);
		cr_assert_eq(g.live, 0,
			     "%d blocks leaked when allocation %d "
			     "failed",
			     g.live, i);
	}
}

/* ------------------------------------------------------------------------
 * Log entries */

TestSuite(logentry);

Test(logentry, entry_with_three_mixed_commands)
{
	static const uint8_t body[] = {'h', 'i', 0x00, 0xfe};
	Raftmq__Log__V1__Publish pub = LE(PUBLISH__INIT);
	pub.target_case = LE(PUBLISH__TARGET_QUEUE);
	pub.queue = "orders";
	pub.msg_id = bin("m-1", 3);
	pub.body = bin(body, sizeof body);
	pub.delay_ms = 10;
	pub.ttl_ms = 20;
	Raftmq__Log__V1__Session sess = LE(SESSION__INIT);
	sess.node_id = 3;
	sess.epoch = 12;
	sess.session_id = 99;
	Raftmq__Log__V1__Attach att = LE(ATTACH__INIT);
	att.queue = "orders";
	att.session = &sess;
	att.prefetch = 100;
	att.credit = UINT32_MAX;
	uint64_t tags[] = {7, 8, UINT64_MAX};
	Raftmq__Log__V1__Ack ack = LE(ACK__INIT);
	ack.consumer = 4;
	ack.n_tags = ARRAY_LEN(tags);
	ack.tags = tags;

	Raftmq__Log__V1__Command c[3] = {LE(COMMAND__INIT), LE(COMMAND__INIT),
					 LE(COMMAND__INIT)};
	c[0].kind_case = LE(COMMAND__KIND_PUBLISH);
	c[0].publish = &pub;
	c[1].kind_case = LE(COMMAND__KIND_ATTACH);
	c[1].attach = &att;
	c[2].kind_case = LE(COMMAND__KIND_ACK);
	c[2].ack = &ack;
	Raftmq__Log__V1__Command *cp[3] = {&c[0], &c[1], &c[2]};
	Raftmq__Log__V1__LogEntry entry = LE(LOG_ENTRY__INIT);
	entry.format = LE(LOG_FORMAT__LOG_FORMAT_1);
	entry.leader_time_ms = 1700000000000ULL;
	entry.n_commands = 3;
	entry.commands = cp;

	Raftmq__Log__V1__LogEntry *o = entry_roundtrip(&entry);
	cr_assert_eq(o->format, 1);
	cr_assert_eq(o->leader_time_ms, 1700000000000ULL);
	cr_assert_eq(o->n_commands, 3);

	cr_assert_eq(o->commands[0]->kind_case, LE(COMMAND__KIND_PUBLISH));
	const Raftmq__Log__V1__Publish *p = o->commands[0]->publish;
	cr_assert_eq(p->target_case, LE(PUBLISH__TARGET_QUEUE));
	cr_assert_str_eq(p->queue, "orders");
	assert_bin_eq(p->msg_id, "m-1", 3);
	assert_bin_eq(p->body, body, sizeof body);
	cr_assert_eq(p->delay_ms, 10);
	cr_assert_eq(p->ttl_ms, 20);

	cr_assert_eq(o->commands[1]->kind_case, LE(COMMAND__KIND_ATTACH));
	const Raftmq__Log__V1__Attach *a = o->commands[1]->attach;
	cr_assert_str_eq(a->queue, "orders");
	cr_assert_not_null(a->session);
	cr_assert_eq(a->session->node_id, 3);
	cr_assert_eq(a->session->epoch, 12);
	cr_assert_eq(a->session->session_id, 99);
	cr_assert_eq(a->prefetch, 100);
	cr_assert_eq(a->credit, UINT32_MAX);

	cr_assert_eq(o->commands[2]->kind_case, LE(COMMAND__KIND_ACK));
	cr_assert_eq(o->commands[2]->ack->consumer, 4);
	cr_assert_eq(o->commands[2]->ack->n_tags, 3);
	cr_assert_arr_eq(o->commands[2]->ack->tags, tags, sizeof tags);
	raftmq__log__v1__log_entry__free_unpacked(o, NULL);
}

Test(logentry, truncated_entry_fails)
{
	Raftmq__Log__V1__Tick tick = LE(TICK__INIT);
	Raftmq__Log__V1__ConfigureQueue cfg = LE(CONFIGURE_QUEUE__INIT);
	Raftmq__Log__V1__QueueSettings s = LE(QUEUE_SETTINGS__INIT);
	s.ack_timeout_ms = 60000;
	s.dead_letter = "dlq";
	s.overflow = LE(OVERFLOW__OVERFLOW_DROP_HEAD);
	cfg.name = "orders";
	cfg.settings = &s;
	cfg.mask = Q_SET_ACK_TIMEOUT | Q_SET_DEAD_LETTER | Q_SET_OVERFLOW;
	Raftmq__Log__V1__DetachStale ds = LE(DETACH_STALE__INIT);
	ds.node_id = 2;
	ds.epoch = 5;
	Raftmq__Log__V1__Command c[3] = {LE(COMMAND__INIT), LE(COMMAND__INIT),
					 LE(COMMAND__INIT)};
	c[0].kind_case = LE(COMMAND__KIND_TICK);
	c[0].tick = &tick;
	c[1].kind_case = LE(COMMAND__KIND_CONFIGURE_QUEUE);
	c[1].configure_queue = &cfg;
	c[2].kind_case = LE(COMMAND__KIND_DETACH_STALE);
	c[2].detach_stale = &ds;
	Raftmq__Log__V1__Command *cp[3] = {&c[0], &c[1], &c[2]};
	Raftmq__Log__V1__LogEntry entry = LE(LOG_ENTRY__INIT);
	entry.format = 1;
	entry.leader_time_ms = 123456789;

	/* Field boundaries: fields are written in number order, so each
	 * prefix of the field list packs to a prefix of the bytes. */
	size_t ok[5];
	size_t n_ok = 0;
	ok[n_ok++] = 0;
	ok[n_ok++] = 2; /* format = 1: 08 01 */
	entry.commands = cp;
	for (size_t k = 0; k < 3; k++) {
		entry.n_commands = k;
		ok[n_ok++] =
			raftmq__log__v1__log_entry__get_packed_size(&entry);
	}
	entry.n_commands = 3;
	size_t n = raftmq__log__v1__log_entry__get_packed_size(&entry);
	uint8_t *full = malloc(n);
	cr_assert_not_null(full);
	raftmq__log__v1__log_entry__pack(&entry, full);
	check_prefixes(full, n, ok, n_ok, true);

	Raftmq__Log__V1__LogEntry *o =
		raftmq__log__v1__log_entry__unpack(NULL, n, full);
	cr_assert_not_null(o);
	cr_assert_eq(o->n_commands, 3);
	cr_assert_eq(o->commands[1]->configure_queue->mask,
		     Q_SET_ACK_TIMEOUT | Q_SET_DEAD_LETTER | Q_SET_OVERFLOW);
	cr_assert_str_eq(o->commands[1]->configure_queue->settings->dead_letter,
			 "dlq");
	cr_assert_eq(o->commands[2]->detach_stale->epoch, 5);
	raftmq__log__v1__log_entry__free_unpacked(o, NULL);
	free(full);
}

Test(logentry, snapshot_header_roundtrip)
{
	Raftmq__Log__V1__SnapshotHeader h = LE(SNAPSHOT_HEADER__INIT);
	h.format = LE(SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1);
	h.index = 1ULL << 33;
	h.term = 9;
	h.state_bytes = 123456789012ULL;
	h.state_format = 2;
	h.state_xxh3 = 0x0123456789abcdefULL;
	h.state_clock_ms = 1700000000000ULL;
	h.node_id = 3;
	h.writer_version = "0.1.0";
	size_t n = raftmq__log__v1__snapshot_header__get_packed_size(&h);
	uint8_t *buf = malloc(n);
	cr_assert_not_null(buf);
	cr_assert_eq(raftmq__log__v1__snapshot_header__pack(&h, buf), n);
	Raftmq__Log__V1__SnapshotHeader *o =
		raftmq__log__v1__snapshot_header__unpack(NULL, n, buf);
	cr_assert_not_null(o);
	cr_assert_eq(o->format, 1);
	cr_assert_eq(o->index, 1ULL << 33);
	cr_assert_eq(o->term, 9);
	cr_assert_eq(o->state_bytes, 123456789012ULL);
	cr_assert_eq(o->state_format, 2);
	cr_assert_eq(o->state_xxh3, 0x0123456789abcdefULL);
	cr_assert_eq(o->state_clock_ms, 1700000000000ULL);
	cr_assert_eq(o->node_id, 3);
	cr_assert_str_eq(o->writer_version, "0.1.0");
	raftmq__log__v1__snapshot_header__free_unpacked(o, NULL);
	free(buf);
}

/* ------------------------------------------------------------------------
 * Packed tags */

TestSuite(tags);

#define N_TAGS 1000

static void fill_tags(uint64_t *tags)
{
	/* Every varint length from 1 to 10 bytes, then a spread. */
	static const uint64_t edge[] = {
		0,     1,	   127,	       128,	   16383,
		16384, UINT32_MAX, 1ULL << 56, 1ULL << 63, UINT64_MAX,
	};
	for (size_t i = 0; i < N_TAGS; i++)
		tags[i] = i < ARRAY_LEN(edge)
				  ? edge[i]
				  : (uint64_t)i * 0x9E3779B97F4A7C15ULL >>
					    (i % 64);
}

Test(tags, thousand_packed_tags_roundtrip_log)
{
	uint64_t *tags = malloc(N_TAGS * sizeof *tags);
	cr_assert_not_null(tags);
	fill_tags(tags);
	Raftmq__Log__V1__Ack ack = LE(ACK__INIT);
	ack.consumer = 5;
	ack.n_tags = N_TAGS;
	ack.tags = tags;

	/* Packed: key of consumer (1) + its value (1), then ONE key for the
	 * tags, the payload length, and the varints back to back. */
	size_t payload = 0;
	for (size_t i = 0; i < N_TAGS; i++)
		payload += varint_len(tags[i]);
	size_t want = 2 + 1 + varint_len(payload) + payload;
	size_t n = raftmq__log__v1__ack__get_packed_size(&ack);
	cr_assert_eq(n, want, "packed size %zu, want %zu (not packed?)", n,
		     want);
	uint8_t *buf = malloc(n);
	cr_assert_not_null(buf);
	cr_assert_eq(raftmq__log__v1__ack__pack(&ack, buf), n);
	cr_assert_eq(buf[2], 0x12,
		     "tags key is 0x%02x, want 0x12 (field 2, "
		     "length-delimited)",
		     buf[2]);

	Raftmq__Log__V1__Ack *o = raftmq__log__v1__ack__unpack(NULL, n, buf);
	cr_assert_not_null(o);
	cr_assert_eq(o->consumer, 5);
	cr_assert_eq(o->n_tags, N_TAGS);
	for (size_t i = 0; i < N_TAGS; i++)
		cr_assert_eq(o->tags[i], tags[i], "tag %zu", i);
	raftmq__log__v1__ack__free_unpacked(o, NULL);
	free(buf);
	free(tags);
}

Test(tags, thousand_packed_tags_roundtrip_client)
{
	uint64_t *tags = malloc(N_TAGS * sizeof *tags);
	cr_assert_not_null(tags);
	fill_tags(tags);
	Raftmq__Client__V1__Release rel = CE(RELEASE__INIT);
	rel.consumer_id = 77;
	rel.n_tags = N_TAGS;
	rel.tags = tags;
	Raftmq__Client__V1__Envelope env = CE(ENVELOPE__INIT);
	env.version = 1;
	env.correlation_id = 1;
	env.body_case = CE(ENVELOPE__BODY_RELEASE);
	env.release = &rel;

	Raftmq__Client__V1__Envelope *o = env_roundtrip(&env);
	cr_assert_eq(o->body_case, CE(ENVELOPE__BODY_RELEASE));
	cr_assert_eq(o->release->consumer_id, 77);
	cr_assert_eq(o->release->n_tags, N_TAGS);
	cr_assert_arr_eq(o->release->tags, tags, N_TAGS * sizeof *tags);
	raftmq__client__v1__envelope__free_unpacked(o, NULL);
	free(tags);
}

/* Parsers must accept the unpacked encoding of a packed field too. */
Test(tags, unpacked_encoding_is_accepted)
{
	uint64_t *tags = malloc(N_TAGS * sizeof *tags);
	uint8_t *buf = malloc(2 + N_TAGS * 11);
	cr_assert_not_null(tags);
	cr_assert_not_null(buf);
	fill_tags(tags);
	size_t n = 0;
	buf[n++] = 0x08; /* consumer = 5 */
	buf[n++] = 0x05;
	for (size_t i = 0; i < N_TAGS; i++) {
		buf[n++] = 0x10; /* field 2, varint: one key per tag */
		n += put_varint(buf + n, tags[i]);
	}
	Raftmq__Log__V1__Ack *o = raftmq__log__v1__ack__unpack(NULL, n, buf);
	cr_assert_not_null(o);
	cr_assert_eq(o->consumer, 5);
	cr_assert_eq(o->n_tags, N_TAGS);
	cr_assert_arr_eq(o->tags, tags, N_TAGS * sizeof *tags);
	raftmq__log__v1__ack__free_unpacked(o, NULL);
	free(buf);
	free(tags);
}

/* ------------------------------------------------------------------------
 * Numbers the schemas promise to share with queue/q.h */

TestSuite(mirror);

Test(mirror, error_codes_equal_q_codes)
{
	const struct {
		int q;
		int proto;
	} map[] = {
		{Q_OK, CE(ERROR_CODE__ERROR_CODE_OK)},
		{Q_ENOMEM, CE(ERROR_CODE__ERROR_CODE_NO_MEMORY)},
		{Q_ENOTFOUND, CE(ERROR_CODE__ERROR_CODE_NOT_FOUND)},
		{Q_EEXIST, CE(ERROR_CODE__ERROR_CODE_ALREADY_EXISTS)},
		{Q_EFULL, CE(ERROR_CODE__ERROR_CODE_QUEUE_FULL)},
		{Q_EINVAL, CE(ERROR_CODE__ERROR_CODE_INVALID_ARGUMENT)},
		{Q_ENOCONSUMER, CE(ERROR_CODE__ERROR_CODE_UNKNOWN_CONSUMER)},
		{Q_EUNKNOWNTAG, CE(ERROR_CODE__ERROR_CODE_UNKNOWN_TAG)},
		{Q_ECORRUPT, CE(ERROR_CODE__ERROR_CODE_CORRUPT)},
		{Q_ETOOBIG, CE(ERROR_CODE__ERROR_CODE_MESSAGE_TOO_LARGE)},
		{Q_ETOPICQUEUE, CE(ERROR_CODE__ERROR_CODE_SUBSCRIPTION_QUEUE)},
		{Q_EIO, CE(ERROR_CODE__ERROR_CODE_STORE_FAILED)},
	};
	for (size_t i = 0; i < ARRAY_LEN(map); i++)
		cr_assert_eq(map[i].q, map[i].proto, "row %zu: q %d, proto %d",
			     i, map[i].q, map[i].proto);
	/* A new Q_E* code needs an ErrorCode with its number. */
	for (int code = 0; code < Q_ECODES_COUNT; code++)
		cr_assert_not_null(
			protobuf_c_enum_descriptor_get_value(
				&raftmq__client__v1__error_code__descriptor,
				code),
			"Q code %d has no ErrorCode", code);
	cr_assert_eq(Q_ECODES_COUNT, ARRAY_LEN(map),
		     "q.h has %d codes; this table (and client.proto) %zu",
		     Q_ECODES_COUNT, ARRAY_LEN(map));
	/* Protocol codes stay clear of the q range. */
	cr_assert_geq(CE(ERROR_CODE__ERROR_CODE_NOT_LEADER), 100);
}

Test(mirror, log_command_kinds_cover_q_cmd_types)
{
	/* Field number of Command.kind for each q_cmd_type, by name. */
	static const char *names[Q_CMD_TYPE_COUNT] = {
		[Q_CMD_TICK] = "tick",
		[Q_CMD_CREATE_QUEUE] = "create_queue",
		[Q_CMD_CONFIGURE_QUEUE] = "configure_queue",
		[Q_CMD_DELETE_QUEUE] = "delete_queue",
		[Q_CMD_PURGE_QUEUE] = "purge_queue",
		[Q_CMD_CREATE_TOPIC] = "create_topic",
		[Q_CMD_DELETE_TOPIC] = "delete_topic",
		[Q_CMD_SUBSCRIBE] = "subscribe",
		[Q_CMD_UNSUBSCRIBE] = "unsubscribe",
		[Q_CMD_PUBLISH] = "publish",
		[Q_CMD_ATTACH] = "attach",
		[Q_CMD_DETACH] = "detach",
		[Q_CMD_CREDIT] = "credit",
		[Q_CMD_ACK] = "ack",
		[Q_CMD_NACK] = "nack",
		[Q_CMD_RELEASE] = "release",
		[Q_CMD_EXTEND] = "extend",
		[Q_CMD_SESSION_GONE] = "session_gone",
		[Q_CMD_DETACH_STALE] = "detach_stale",
	};
	const ProtobufCMessageDescriptor *d =
		&raftmq__log__v1__command__descriptor;
	/* Kinds numbered 100 and up are consensus/'s own (SetMember). */
	unsigned queue_kinds = 0;
	for (unsigned i = 0; i < d->n_fields; i++) {
		queue_kinds += d->fields[i].id < 100;
	}
	cr_assert_eq(queue_kinds, Q_CMD_TYPE_COUNT,
		     "Command has %u queue kinds, q.h %d", queue_kinds,
		     Q_CMD_TYPE_COUNT);
	cr_assert_not_null(protobuf_c_message_descriptor_get_field_by_name(
				   d, "set_member"),
			   "Command lost consensus/'s set_member kind");
	for (unsigned t = 0; t < Q_CMD_TYPE_COUNT; t++) {
		cr_assert_not_null(names[t], "q_cmd_type %u has no name here",
				   t);
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(
				d, names[t]);
		cr_assert_not_null(f, "Command has no kind %s", names[t]);
		cr_assert_eq(f->id, t + 1, "%s is field %u, want %u", names[t],
			     f->id, t + 1);
	}
}

Test(mirror, enums_and_mask_bits)
{
	cr_assert_eq(Q_OVERFLOW_REJECT_PUBLISH,
		     LE(OVERFLOW__OVERFLOW_REJECT_PUBLISH));
	cr_assert_eq(Q_OVERFLOW_DROP_HEAD, LE(OVERFLOW__OVERFLOW_DROP_HEAD));
	cr_assert_eq(Q_OVERFLOW_REJECT_PUBLISH,
		     CE(OVERFLOW__OVERFLOW_REJECT_PUBLISH));
	cr_assert_eq(Q_OVERFLOW_DROP_HEAD, CE(OVERFLOW__OVERFLOW_DROP_HEAD));
	cr_assert_eq(Q_REASON_NONE,
		     CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_NONE));
	cr_assert_eq(Q_REASON_MAX_DELIVERIES,
		     CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_MAX_DELIVERIES));
	cr_assert_eq(Q_REASON_EXPIRED,
		     CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_EXPIRED));
	cr_assert_eq(Q_REASON_OVERFLOW,
		     CE(DEAD_LETTER_REASON__DEAD_LETTER_REASON_OVERFLOW));
	cr_assert_eq(Q_MSG_READY, CE(MESSAGE_STATE__MESSAGE_STATE_READY));
	cr_assert_eq(Q_MSG_DELAYED, CE(MESSAGE_STATE__MESSAGE_STATE_DELAYED));
	cr_assert_eq(Q_MSG_HELD, CE(MESSAGE_STATE__MESSAGE_STATE_HELD));
	/* log.proto documents these bit values as part of the format. */
	const unsigned bits[] = {
		Q_SET_ACK_TIMEOUT, Q_SET_MAX_DELIVERIES, Q_SET_DEAD_LETTER,
		Q_SET_TTL,	   Q_SET_MAX_LENGTH,	 Q_SET_MAX_BYTES,
		Q_SET_OVERFLOW,	   Q_SET_DEDUP_WINDOW,
	};
	for (unsigned i = 0; i < ARRAY_LEN(bits); i++)
		cr_assert_eq(bits[i], 1u << i, "mask bit %u is 0x%x", i,
			     bits[i]);
	cr_assert_eq(Q_SET_ALL, 0xffu);
	/* Both schemas document 4294967295 as "unlimited credit". */
	cr_assert_eq(Q_CREDIT_UNLIMITED, 4294967295u);
}
