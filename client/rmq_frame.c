/*
 * Framing of the client protocol: each frame is a 4-byte big-endian length N
 * followed by N bytes holding one serialized Envelope (proto/client.proto).
 *
 * The reader is a plain byte accumulator so it can be fed from any read size
 * (a frame split over many reads, or many frames in one read). It checks the
 * length prefix against the maximum before buffering the body: a peer that
 * announces a huge frame costs nothing, and the caller must then drop the
 * connection because the stream cannot be resynchronised. A zero length is a
 * valid frame (an empty Envelope) that rmq__frame_decode() refuses as having
 * version 0.
 */
#include <stdlib.h>
#include <string.h>

#include "rmq_int.h"

void rmq__buf_close(struct rmq_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int rmq__buf_reserve(struct rmq_buf *b, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= extra) {
		return 0;
	}
	if (extra > SIZE_MAX / 2 - b->len) {
		return RAFTMQ_ENOMEM;
	}
	cap = b->cap > 0 ? b->cap : 4096;
	while (cap - b->len < extra) {
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (p == NULL) {
		return RAFTMQ_ENOMEM;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void rmq__frame_reader_init(struct rmq_frame_reader *rd, size_t max_frame)
{
	memset(rd, 0, sizeof(*rd));
	rd->max_frame = max_frame;
}

void rmq__frame_reader_close(struct rmq_frame_reader *rd)
{
	rmq__buf_close(&rd->buf);
	rd->off = 0;
}

void rmq__frame_reader_reset(struct rmq_frame_reader *rd)
{
	rd->buf.len = 0;
	rd->off = 0;
}

/* Moves the unread bytes to the front once the consumed part dominates. */
static void compact(struct rmq_frame_reader *rd)
{
	size_t unread = rd->buf.len - rd->off;

	if (rd->off == 0) {
		return;
	}
	if (unread > 0) {
		memmove(rd->buf.data, rd->buf.data + rd->off, unread);
	}
	rd->buf.len = unread;
	rd->off = 0;
}

int rmq__frame_reader_space(struct rmq_frame_reader *rd, size_t want,
			    uint8_t **p, size_t *avail)
{
	int rv;

	if (rd->off > 0 && rd->buf.cap - rd->buf.len < want) {
		compact(rd);
	}
	rv = rmq__buf_reserve(&rd->buf, want);
	if (rv != 0) {
		return rv;
	}
	*p = rd->buf.data + rd->buf.len;
	*avail = rd->buf.cap - rd->buf.len;
	return 0;
}

void rmq__frame_reader_commit(struct rmq_frame_reader *rd, size_t k)
{
	rd->buf.len += k;
}

int rmq__frame_reader_feed(struct rmq_frame_reader *rd, const void *data,
			   size_t n)
{
	uint8_t *p;
	size_t avail;
	int rv;

	rv = rmq__frame_reader_space(rd, n, &p, &avail);
	if (rv != 0) {
		return rv;
	}
	if (n > 0) {
		memcpy(p, data, n);
	}
	rmq__frame_reader_commit(rd, n);
	return 0;
}

int rmq__frame_next(struct rmq_frame_reader *rd, const uint8_t **frame,
		    size_t *len, bool *ready)
{
	const uint8_t *h;
	size_t unread = rd->buf.len - rd->off;
	uint32_t n;

	*ready = false;
	if (unread < 4) {
		if (unread == 0) {
			rd->buf.len = 0;
			rd->off = 0;
		}
		return 0;
	}
	h = rd->buf.data + rd->off;
	n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 |
	    (uint32_t)h[3];
	if (n > rd->max_frame) {
		return RAFTMQ_EFRAME_TOO_LARGE;
	}
	if (unread - 4 < n) {
		return 0;
	}
	*frame = h + 4;
	*len = n;
	*ready = true;
	rd->off += 4 + (size_t)n;
	return 0;
}

int rmq__frame_encode(const rmq_env *env, size_t max_frame, struct rmq_buf *out)
{
	size_t n = raftmq__client__v1__envelope__get_packed_size(env);
	uint8_t *p;
	int rv;

	if (n > max_frame || n > UINT32_MAX) {
		return RAFTMQ_EFRAME_TOO_LARGE;
	}
	rv = rmq__buf_reserve(out, 4 + n);
	if (rv != 0) {
		return rv;
	}
	p = out->data + out->len;
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	raftmq__client__v1__envelope__pack(env, p + 4);
	out->len += 4 + n;
	return 0;
}

int rmq__frame_decode(const uint8_t *frame, size_t len, rmq_env **out)
{
	rmq_env *env;

	*out = NULL;
	env = raftmq__client__v1__envelope__unpack(NULL, len, frame);
	if (env == NULL) {
		return RAFTMQ_EPROTO;
	}
	if (env->version == 0 || env->version > RMQ_PROTOCOL_VERSION ||
	    env->body_case == RMQ_BODY(_NOT_SET)) {
		rmq__env_free(env);
		return RAFTMQ_EPROTO;
	}
	*out = env;
	return 0;
}

void rmq__env_free(rmq_env *env)
{
	if (env != NULL) {
		raftmq__client__v1__envelope__free_unpacked(env, NULL);
	}
}
