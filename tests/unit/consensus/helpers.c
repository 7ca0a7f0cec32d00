/* Helpers of the consensus/ tests (see helpers.h). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static const char *nz(const char *s)
{
	return s != NULL ? s : "";
}

#define STR_EQ(field) cr_assert_str_eq(nz(got->field), nz(want->field), #field)
#define NUM_EQ(field)                                                         \
	cr_assert_eq(got->field, want->field, #field ": got %llu, want %llu", \
		     (unsigned long long)got->field,                          \
		     (unsigned long long)want->field)

static void settings_eq(const struct q_settings *want,
			const struct q_settings *got)
{
	NUM_EQ(ack_timeout_ms);
	NUM_EQ(max_deliveries);
	STR_EQ(dead_letter);
	NUM_EQ(ttl_ms);
	NUM_EQ(max_length);
	NUM_EQ(max_bytes);
	NUM_EQ(overflow);
	NUM_EQ(dedup_window_ms);
}

static void session_eq(const struct q_session *want,
		       const struct q_session *got)
{
	NUM_EQ(node_id);
	NUM_EQ(epoch);
	NUM_EQ(session_id);
}

static void bytes_eq(const void *want, size_t want_len, const void *got,
		     size_t got_len, const char *what)
{
	cr_assert_eq(got_len, want_len, "%s: length %zu, want %zu", what,
		     got_len, want_len);
	if (want_len > 0) {
		cr_assert_not_null(got, "%s", what);
		cr_assert(memcmp(got, want, want_len) == 0, "%s differs", what);
	}
}

void th_assert_cmd_eq(const struct q_cmd *want, const struct q_cmd *got)
{
	cr_assert_eq(got->type, want->type, "type %u, want %u", got->type,
		     want->type);
	switch (want->type) {
	case Q_CMD_TICK:
		break;
	case Q_CMD_CREATE_QUEUE:
		STR_EQ(u.queue.name);
		settings_eq(&want->u.queue.settings, &got->u.queue.settings);
		break;
	case Q_CMD_CONFIGURE_QUEUE:
		STR_EQ(u.queue.name);
		NUM_EQ(u.queue.mask);
		settings_eq(&want->u.queue.settings, &got->u.queue.settings);
		break;
	case Q_CMD_DELETE_QUEUE:
	case Q_CMD_PURGE_QUEUE:
		STR_EQ(u.queue.name);
		break;
	case Q_CMD_CREATE_TOPIC:
		STR_EQ(u.topic.topic);
		NUM_EQ(u.topic.dedup_window_ms);
		break;
	case Q_CMD_DELETE_TOPIC:
		STR_EQ(u.topic.topic);
		break;
	case Q_CMD_SUBSCRIBE:
		STR_EQ(u.topic.topic);
		STR_EQ(u.topic.subscription);
		settings_eq(&want->u.topic.settings, &got->u.topic.settings);
		break;
	case Q_CMD_UNSUBSCRIBE:
		STR_EQ(u.topic.topic);
		STR_EQ(u.topic.subscription);
		break;
	case Q_CMD_PUBLISH:
		cr_assert_eq(got->u.publish.queue == NULL,
			     want->u.publish.queue == NULL, "publish target");
		cr_assert_eq(got->u.publish.topic == NULL,
			     want->u.publish.topic == NULL, "publish target");
		STR_EQ(u.publish.queue);
		STR_EQ(u.publish.topic);
		bytes_eq(want->u.publish.msg_id, want->u.publish.msg_id_len,
			 got->u.publish.msg_id, got->u.publish.msg_id_len,
			 "msg_id");
		bytes_eq(want->u.publish.body, want->u.publish.body_len,
			 got->u.publish.body, got->u.publish.body_len, "body");
		cr_assert_not_null(got->u.publish.body, "body never NULL");
		NUM_EQ(u.publish.delay_ms);
		NUM_EQ(u.publish.ttl_ms);
		break;
	case Q_CMD_ATTACH:
		STR_EQ(u.attach.queue);
		session_eq(&want->u.attach.session, &got->u.attach.session);
		NUM_EQ(u.attach.prefetch);
		NUM_EQ(u.attach.credit);
		break;
	case Q_CMD_DETACH:
		NUM_EQ(u.consumer.consumer);
		bytes_eq(want->u.consumer.unseen,
			 want->u.consumer.n_unseen * sizeof(q_seq),
			 got->u.consumer.unseen,
			 got->u.consumer.n_unseen * sizeof(q_seq), "unseen");
		break;
	case Q_CMD_CREDIT:
		NUM_EQ(u.consumer.consumer);
		NUM_EQ(u.consumer.prefetch);
		NUM_EQ(u.consumer.credit);
		break;
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND:
		NUM_EQ(u.tags.consumer);
		bytes_eq(want->u.tags.tags, want->u.tags.n_tags * sizeof(q_seq),
			 got->u.tags.tags, got->u.tags.n_tags * sizeof(q_seq),
			 "tags");
		if (want->type == Q_CMD_NACK || want->type == Q_CMD_EXTEND) {
			NUM_EQ(u.tags.ms);
		}
		if (want->type == Q_CMD_RELEASE) {
			NUM_EQ(u.tags.unseen);
		}
		break;
	case Q_CMD_SESSION_GONE:
		session_eq(&want->u.session.session, &got->u.session.session);
		break;
	case Q_CMD_DETACH_STALE:
		/* Carries node_id and epoch only. */
		NUM_EQ(u.session.session.node_id);
		NUM_EQ(u.session.session.epoch);
		cr_assert_eq(got->u.session.session.session_id, 0);
		break;
	default:
		cr_assert_fail("unexpected command type %u", want->type);
	}
}

struct raft_buffer th_encode(const struct q_cmd *cmds, size_t n, uint64_t t)
{
	struct raft_buffer b;
	int rv = cons__entry_encode(cmds, n, NULL, 0, t, NULL, &b);
	cr_assert_eq(rv, 0, "cons__entry_encode: %d", rv);
	return b;
}

struct raft_buffer th_wrap(const void *payload, size_t len)
{
	struct raft_buffer b;
	uint8_t *h;
	cr_assert_leq(len, UINT32_MAX);
	b.len = (CONS_ENTRY_HEADER + len + 7) & ~(size_t)7;
	b.base = raft_malloc(b.len);
	cr_assert_not_null(b.base);
	h = b.base;
	memset(h, 0, b.len);
	h[0] = (uint8_t)len;
	h[1] = (uint8_t)(len >> 8);
	h[2] = (uint8_t)(len >> 16);
	h[3] = (uint8_t)(len >> 24);
	if (len > 0) {
		memcpy(h + CONS_ENTRY_HEADER, payload, len);
	}
	return b;
}

void th_fsm_init(struct cons_fsm *f)
{
	struct q_options qopts;
	memset(&qopts, 0, sizeof qopts);
	qopts.hash_seed = 12345;
	cr_assert_eq(cons__fsm_init(f, &qopts, NULL), 0);
}

void th_apply(struct cons_fsm *f, const struct q_cmd *cmds, size_t n,
	      uint64_t t)
{
	struct raft_buffer b = th_encode(cmds, n, t);
	void *result = (void *)1;
	int rv = f->fsm.apply(&f->fsm, &b, &result);
	raft_free(b.base);
	cr_assert_eq(rv, 0, "fsm apply returned %d", rv);
	cr_assert_null(result, "apply must leave *result NULL");
}

struct raft_buffer th_snapshot(struct cons_fsm *f)
{
	struct raft_buffer *bufs = NULL, copy;
	unsigned n_bufs = 0;
	int rv = f->fsm.snapshot(&f->fsm, &bufs, &n_bufs);
	cr_assert_eq(rv, 0, "fsm snapshot returned %d", rv);
	cr_assert_eq(n_bufs, 1);
	copy.len = bufs[0].len;
	copy.base = raft_malloc(copy.len);
	cr_assert_not_null(copy.base);
	memcpy(copy.base, bufs[0].base, copy.len);
	rv = f->fsm.snapshot_finalize(&f->fsm, &bufs, &n_bufs);
	cr_assert_eq(rv, 0);
	cr_assert_null(bufs);
	cr_assert_eq(n_bufs, 0);
	return copy;
}

void th_dump(const struct q_state *s, void **buf, size_t *len)
{
	int rv = q_state_dump_buf(s, buf, len);
	cr_assert_eq(rv, 0, "q_state_dump_buf: %d", rv);
}

void th_assert_same_state(const struct q_state *a, const struct q_state *b,
			  const char *what)
{
	void *da, *db;
	size_t la, lb, at = 0;
	int same;
	th_dump(a, &da, &la);
	th_dump(b, &db, &lb);
	while (at < la && at < lb &&
	       ((const uint8_t *)da)[at] == ((const uint8_t *)db)[at]) {
		at++;
	}
	same = la == lb && at == la;
	free(da);
	free(db);
	cr_assert(same,
		  "%s: q_state dumps differ (%zu vs %zu bytes, first "
		  "difference at byte %zu)",
		  what, la, lb, at);
}

void th_read_data(const char *name, void **buf, size_t *len)
{
	char path[4096];
	FILE *fp;
	long n;
	snprintf(path, sizeof path, "%s/%s", CONS_TEST_DATA, name);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp, "cannot open golden file %s", path);
	cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	cr_assert(n >= 0);
	rewind(fp);
	*len = (size_t)n;
	*buf = malloc(*len > 0 ? *len : 1);
	cr_assert_not_null(*buf);
	cr_assert_eq(fread(*buf, 1, *len, fp), *len, "short read of %s", path);
	fclose(fp);
}

uint64_t th_seed(uint64_t dflt)
{
	const char *s = getenv("TEST_SEED");
	if (s == NULL || *s == '\0') {
		return dflt;
	}
	return strtoull(s, NULL, 0);
}

uint64_t th_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void noop_emit(struct raft_tracer *t, int type, const void *info)
{
	(void)t;
	(void)type;
	(void)info;
}

struct raft_tracer th_quiet_tracer = {.impl = NULL,
				      .version = 2,
				      .emit = noop_emit};
