/* The commands of the golden files (see golden_v1.h: never change them). */
#include "golden_v1.h"

static const q_seq tags_ack[] = {1, 2, 3, UINT64_C(0xffffffffffff)};
static const q_seq tags_nack[] = {5};
static const q_seq tags_release[] = {6, 7};
static const q_seq tags_extend[] = {8, 9, 10};
static const char msg_id[] = {'i', 'd', '\0', '\x01', '\xff'};
static const unsigned char body[] = {0x00, 0x01, 0x80, 0xff, 'h', 'i'};

static const struct q_cmd cmds[] = {
	{.type = Q_CMD_TICK, .now_ms = 1},
	{.type = Q_CMD_CREATE_QUEUE,
	 .u.queue = {.name = "orders",
		     .settings = {.ack_timeout_ms = 30001,
				  .max_deliveries = 5,
				  .dead_letter = "orders.dlq",
				  .ttl_ms = 60002,
				  .max_length = 1003,
				  .max_bytes = 1048580,
				  .overflow = Q_OVERFLOW_DROP_HEAD,
				  .dedup_window_ms = 120005}}},
	{.type = Q_CMD_CONFIGURE_QUEUE,
	 .u.queue = {.name = "orders",
		     .settings = {.ack_timeout_ms = 11,
				  .max_deliveries = 12,
				  .dead_letter = "dlq2",
				  .ttl_ms = 13,
				  .max_length = 14,
				  .max_bytes = 15,
				  .overflow = Q_OVERFLOW_REJECT_PUBLISH,
				  .dedup_window_ms = 16},
		     .mask = Q_SET_ALL}},
	{.type = Q_CMD_DELETE_QUEUE, .u.queue = {.name = "old"}},
	{.type = Q_CMD_PURGE_QUEUE, .u.queue = {.name = "orders"}},
	{.type = Q_CMD_CREATE_TOPIC,
	 .u.topic = {.topic = "events", .dedup_window_ms = 777}},
	{.type = Q_CMD_DELETE_TOPIC, .u.topic = {.topic = "old-events"}},
	{.type = Q_CMD_SUBSCRIBE,
	 .u.topic = {.topic = "events",
		     .subscription = "audit",
		     .settings = {.ack_timeout_ms = 21,
				  .max_deliveries = 22,
				  .dead_letter = "audit.dlq",
				  .ttl_ms = 23,
				  .max_length = 24,
				  .max_bytes = 25,
				  .overflow = Q_OVERFLOW_DROP_HEAD,
				  .dedup_window_ms = 26}}},
	{.type = Q_CMD_UNSUBSCRIBE,
	 .u.topic = {.topic = "events", .subscription = "gone"}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.queue = "orders",
		       .msg_id = msg_id,
		       .msg_id_len = sizeof msg_id,
		       .body = body,
		       .body_len = sizeof body,
		       .delay_ms = 31,
		       .ttl_ms = 32}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.topic = "events",
		       .msg_id = "m-2",
		       .msg_id_len = 3,
		       .body = "payload",
		       .body_len = 7,
		       .delay_ms = 33,
		       .ttl_ms = 34}},
	{.type = Q_CMD_ATTACH,
	 .u.attach = {.queue = "orders",
		      .session = {.node_id = 3, .epoch = 41, .session_id = 42},
		      .prefetch = 43,
		      .credit = Q_CREDIT_UNLIMITED}},
	{.type = Q_CMD_DETACH, .u.consumer = {.consumer = 51}},
	{.type = Q_CMD_CREDIT,
	 .u.consumer = {.consumer = 52, .prefetch = 53, .credit = 54}},
	{.type = Q_CMD_ACK,
	 .u.tags = {.consumer = 61, .tags = tags_ack, .n_tags = 4}},
	{.type = Q_CMD_NACK,
	 .u.tags = {.consumer = 62, .tags = tags_nack, .n_tags = 1, .ms = 63}},
	{.type = Q_CMD_RELEASE,
	 .u.tags = {.consumer = 64, .tags = tags_release, .n_tags = 2}},
	{.type = Q_CMD_EXTEND,
	 .u.tags =
		 {.consumer = 65, .tags = tags_extend, .n_tags = 3, .ms = 66}},
	{.type = Q_CMD_SESSION_GONE,
	 .u.session = {.session = {.node_id = 3,
				   .epoch = 71,
				   .session_id = 72}}},
	{.type = Q_CMD_DETACH_STALE,
	 .u.session = {.session = {.node_id = 3, .epoch = 81}}},
};

size_t golden_v1_cmds(const struct q_cmd **out)
{
	*out = cmds;
	return sizeof cmds / sizeof cmds[0];
}

static const q_seq hist_ack[] = {1};
static const q_seq hist_nack[] = {2};

/* A small history that leaves something in every part of the state: a
 * queue with ready, unacked and returned messages, a dead-letter queue, a
 * topic with a subscription and a consumer. */
static const struct q_cmd history[] = {
	{.type = Q_CMD_CREATE_QUEUE,
	 .u.queue = {.name = "work.dlq",
		     .settings = {.ack_timeout_ms = 0, .max_deliveries = 0}}},
	{.type = Q_CMD_CREATE_QUEUE,
	 .u.queue = {.name = "work",
		     .settings = {.ack_timeout_ms = 30000,
				  .max_deliveries = 3,
				  .dead_letter = "work.dlq",
				  .ttl_ms = 3600000,
				  .dedup_window_ms = 120000}}},
	{.type = Q_CMD_CREATE_TOPIC,
	 .u.topic = {.topic = "news", .dedup_window_ms = 60000}},
	{.type = Q_CMD_SUBSCRIBE,
	 .u.topic = {.topic = "news",
		     .subscription = "archive",
		     .settings = {.ack_timeout_ms = 10000,
				  .max_deliveries = 20}}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.queue = "work",
		       .msg_id = "a",
		       .msg_id_len = 1,
		       .body = "first",
		       .body_len = 5}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.queue = "work",
		       .msg_id = "b",
		       .msg_id_len = 1,
		       .body = "second",
		       .body_len = 6}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.queue = "work", .body = "third", .body_len = 5}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.queue = "work",
		       .body = "later",
		       .body_len = 5,
		       .delay_ms = 500000}},
	{.type = Q_CMD_PUBLISH,
	 .u.publish = {.topic = "news", .body = "extra!", .body_len = 6}},
	{.type = Q_CMD_ATTACH,
	 .u.attach = {.queue = "work",
		      .session = {.node_id = 1, .epoch = 2, .session_id = 3},
		      .prefetch = 2,
		      .credit = Q_CREDIT_UNLIMITED}},
	{.type = Q_CMD_ACK,
	 .u.tags = {.consumer = 1, .tags = hist_ack, .n_tags = 1}},
	{.type = Q_CMD_NACK,
	 .u.tags = {.consumer = 1, .tags = hist_nack, .n_tags = 1}},
	{.type = Q_CMD_TICK},
};

size_t golden_v1_history(const struct q_cmd **out)
{
	*out = history;
	return sizeof history / sizeof history[0];
}
