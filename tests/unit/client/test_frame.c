/*
 * Frame codec of libraftmq (client/rmq_frame.c): length prefix, partial
 * reads, several frames per read, oversize refusal, zero length, decode
 * checks. Also the address parser (client/rmq_net.c).
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rmq_int.h"

/* A Publish envelope with the given body, encoded into b. */
static void encode_publish(struct rmq_buf *b, uint64_t corr, const char *body)
{
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_publish_msg p = RAFTMQ__CLIENT__V1__PUBLISH__INIT;

	p.target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
	p.queue = "q";
	p.body.data = (uint8_t *)body;
	p.body.len = strlen(body);
	env.version = 1;
	env.correlation_id = corr;
	env.body_case = RMQ_BODY(PUBLISH);
	env.publish = &p;
	cr_assert_eq(rmq__frame_encode(&env, RMQ_DEFAULT_MAX_FRAME, b), 0);
}

Test(client_frame, round_trip)
{
	struct rmq_buf b = {0};
	struct rmq_frame_reader rd;
	const uint8_t *f;
	rmq_env *env;
	size_t len;
	bool ready;

	encode_publish(&b, 7, "hello");
	/* Big-endian length prefix of the body. */
	cr_assert_eq(((size_t)b.data[0] << 24 | (size_t)b.data[1] << 16 |
		      (size_t)b.data[2] << 8 | b.data[3]),
		     b.len - 4);
	rmq__frame_reader_init(&rd, 1024);
	cr_assert_eq(rmq__frame_reader_feed(&rd, b.data, b.len), 0);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert(ready);
	cr_assert_eq(len, b.len - 4);
	cr_assert_eq(rmq__frame_decode(f, len, &env), 0);
	cr_assert_eq(env->correlation_id, 7);
	cr_assert_eq(env->body_case, RMQ_BODY(PUBLISH));
	cr_assert_eq(env->publish->body.len, 5);
	cr_assert_eq(memcmp(env->publish->body.data, "hello", 5), 0);
	rmq__env_free(env);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert_not(ready);
	rmq__frame_reader_close(&rd);
	rmq__buf_close(&b);
}

/* Fed one byte at a time, three frames come out whole, only once each
 * is complete. */
Test(client_frame, partial_reads)
{
	struct rmq_buf b = {0};
	struct rmq_frame_reader rd;
	size_t ends[3];
	const uint8_t *f;
	size_t got = 0;
	size_t len;
	size_t i;
	bool ready;

	encode_publish(&b, 1, "a");
	ends[0] = b.len;
	encode_publish(&b, 2, "");
	ends[1] = b.len;
	encode_publish(&b, 3, "a longer body, a longer body, a longer body");
	ends[2] = b.len;
	rmq__frame_reader_init(&rd, 1024);
	for (i = 0; i < b.len; i++) {
		cr_assert_eq(rmq__frame_reader_feed(&rd, b.data + i, 1), 0);
		cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
		if (i + 1 == ends[got]) {
			rmq_env *env;

			cr_assert(ready, "frame %zu complete at byte %zu", got,
				  i);
			cr_assert_eq(rmq__frame_decode(f, len, &env), 0);
			cr_assert_eq(env->correlation_id, got + 1);
			rmq__env_free(env);
			got++;
		} else {
			cr_assert_not(ready, "early frame at byte %zu", i);
		}
	}
	cr_assert_eq(got, 3);
	rmq__frame_reader_close(&rd);
	rmq__buf_close(&b);
}

/* Several frames in one read are cut one by one. */
Test(client_frame, many_per_read)
{
	struct rmq_buf b = {0};
	struct rmq_frame_reader rd;
	const uint8_t *f;
	size_t len;
	bool ready;
	int i;

	for (i = 1; i <= 50; i++) {
		encode_publish(&b, (uint64_t)i, "x");
	}
	rmq__frame_reader_init(&rd, 1024);
	cr_assert_eq(rmq__frame_reader_feed(&rd, b.data, b.len), 0);
	for (i = 1; i <= 50; i++) {
		rmq_env *env;

		cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
		cr_assert(ready);
		cr_assert_eq(rmq__frame_decode(f, len, &env), 0);
		cr_assert_eq(env->correlation_id, (uint64_t)i);
		rmq__env_free(env);
	}
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert_not(ready);
	rmq__frame_reader_close(&rd);
	rmq__buf_close(&b);
}

/* A length over the maximum is refused from the prefix alone, before any
 * body byte arrives. */
Test(client_frame, oversize_refused)
{
	const uint8_t hdr[4] = {0x00, 0x10, 0x00, 0x01}; /* 1 MiB + 1 */
	struct rmq_frame_reader rd;
	const uint8_t *f;
	size_t len;
	bool ready;

	rmq__frame_reader_init(&rd, 1024 * 1024);
	cr_assert_eq(rmq__frame_reader_feed(&rd, hdr, 3), 0);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert_not(ready);
	cr_assert_eq(rmq__frame_reader_feed(&rd, hdr + 3, 1), 0);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready),
		     RAFTMQ_EFRAME_TOO_LARGE);
	cr_assert_lt(rd.buf.cap, 1024 * 1024, "no buffer for the body");
	rmq__frame_reader_close(&rd);
}

/* Encoding refuses a frame over the peer's maximum, leaving out intact. */
Test(client_frame, oversize_encode)
{
	struct rmq_buf b = {0};
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	rmq_publish_msg p = RAFTMQ__CLIENT__V1__PUBLISH__INIT;
	char body[200];

	memset(body, 'x', sizeof(body));
	p.body.data = (uint8_t *)body;
	p.body.len = sizeof(body);
	env.version = 1;
	env.body_case = RMQ_BODY(PUBLISH);
	env.publish = &p;
	cr_assert_eq(rmq__frame_encode(&env, 100, &b), RAFTMQ_EFRAME_TOO_LARGE);
	cr_assert_eq(b.len, 0);
	rmq__buf_close(&b);
}

/* A zero length is a frame (an empty Envelope) that decoding refuses for
 * its version 0; the stream stays in sync for the next frame. */
Test(client_frame, zero_length)
{
	const uint8_t zero[4] = {0, 0, 0, 0};
	struct rmq_buf b = {0};
	struct rmq_frame_reader rd;
	const uint8_t *f;
	rmq_env *env;
	size_t len;
	bool ready;

	rmq__frame_reader_init(&rd, 1024);
	cr_assert_eq(rmq__frame_reader_feed(&rd, zero, 4), 0);
	encode_publish(&b, 9, "after");
	cr_assert_eq(rmq__frame_reader_feed(&rd, b.data, b.len), 0);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert(ready);
	cr_assert_eq(len, 0);
	cr_assert_eq(rmq__frame_decode(f, len, &env), RAFTMQ_EPROTO);
	cr_assert_null(env);
	cr_assert_eq(rmq__frame_next(&rd, &f, &len, &ready), 0);
	cr_assert(ready);
	cr_assert_eq(rmq__frame_decode(f, len, &env), 0);
	cr_assert_eq(env->correlation_id, 9);
	rmq__env_free(env);
	rmq__frame_reader_close(&rd);
	rmq__buf_close(&b);
}

Test(client_frame, garbage_and_future_version)
{
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__Hello h = RAFTMQ__CLIENT__V1__HELLO__INIT;
	struct rmq_buf b = {0};
	rmq_env *out;

	cr_assert_eq(rmq__frame_decode(junk, sizeof(junk), &out),
		     RAFTMQ_EPROTO);
	env.version = RMQ_PROTOCOL_VERSION + 1;
	env.body_case = RMQ_BODY(HELLO);
	env.hello = &h;
	cr_assert_eq(rmq__frame_encode(&env, 1024, &b), 0);
	cr_assert_eq(rmq__frame_decode(b.data + 4, b.len - 4, &out),
		     RAFTMQ_EPROTO);
	rmq__buf_close(&b);
}

Test(client_addr, parse)
{
	struct rmq_addr *a;
	char err[128];
	size_t n;

	cr_assert_eq(rmq__addr_parse_list("h1:1, 10.0.0.2:7001 ,[::1]:9", &a,
					  &n, err, sizeof(err)),
		     0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(a[0].host, "h1");
	cr_assert_str_eq(a[0].port, "1");
	cr_assert_str_eq(a[1].host, "10.0.0.2");
	cr_assert_str_eq(a[1].port, "7001");
	cr_assert_str_eq(a[2].host, "::1");
	cr_assert_str_eq(a[2].port, "9");
	rmq__addr_free(a, n);
	cr_assert_eq(rmq__addr_parse_list("nohost", &a, &n, err, sizeof(err)),
		     RAFTMQ_EINVAL);
	cr_assert_eq(rmq__addr_parse_list("h:1,,h:2", &a, &n, err, sizeof(err)),
		     RAFTMQ_EINVAL);
	cr_assert_eq(rmq__addr_parse_list("h:port", &a, &n, err, sizeof(err)),
		     RAFTMQ_EINVAL);
	cr_assert_eq(rmq__addr_parse_list("", &a, &n, err, sizeof(err)),
		     RAFTMQ_EINVAL);
}

Test(client_err, strerror_and_ids)
{
	char a[RAFTMQ_MSG_ID_SIZE];
	char b[RAFTMQ_MSG_ID_SIZE];
	size_t la = raftmq_msg_id_new(a);
	size_t lb = raftmq_msg_id_new(b);

	cr_assert_str_eq(raftmq_strerror(RAFTMQ_ENOTFOUND),
			 "no such queue, topic or subscription");
	cr_assert_str_eq(raftmq_strerror(RAFTMQ_ESTALE),
			 "consumer re-attached or gone; delivery tags void");
	cr_assert_str_eq(raftmq_strerror(12345), "unknown error");
	/* The enum mirrors the protocol's ErrorCode number for number. */
	cr_assert_eq(RAFTMQ_ESUBSCRIPTION_QUEUE, RMQ_ERR(SUBSCRIPTION_QUEUE));
	cr_assert_eq(RAFTMQ_ENOTLEADER, RMQ_ERR(NOT_LEADER));
	cr_assert_eq(RAFTMQ_EINTERNAL, RMQ_ERR(INTERNAL));
	cr_assert_eq(la, strlen(a));
	cr_assert_eq(lb, strlen(b));
	cr_assert_str_neq(a, b);
	cr_assert_eq(a[16], '-');
	cr_assert_eq(strncmp(a, b, 17), 0, "same per-process prefix");
}
