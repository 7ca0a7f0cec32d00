/*
 * Reading message bodies from one node's body store (FetchBodies). raftmqd
 * uses it to fetch, from its peers, the bodies it lacks after installing a
 * snapshot; any node answers from its own store, so a caller that wants one
 * particular node sets raftmq_options.stay. The request is read-only and
 * resent as is after a reconnect.
 */
#include <stdlib.h>
#include <string.h>

#include "rmq_int.h"

/* More keys than this is a caller's bug: 8 MiB of packed keys at most. */
#define MAX_KEYS (1u << 20)

void raftmq_bodies_free(struct raftmq_body *b, size_t n)
{
	size_t i;

	if (b == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		free(b[i].priv);
	}
	free(b);
}

/* Copies a record into *b: one allocation holds the id, a NUL, the body
 * and a NUL. Returns 0 or RAFTMQ_ENOMEM. */
static int body_copy(const Raftmq__Client__V1__BodyRecord *r,
		     struct raftmq_body *b)
{
	size_t id_len = r->msg_id.len, len = r->body.len;
	char *mem = malloc(id_len + len + 2);

	if (mem == NULL) {
		return RAFTMQ_ENOMEM;
	}
	if (id_len > 0) {
		memcpy(mem, r->msg_id.data, id_len);
	}
	mem[id_len] = '\0';
	if (len > 0) {
		memcpy(mem + id_len + 1, r->body.data, len);
	}
	mem[id_len + 1 + len] = '\0';
	b->key = r->key;
	b->msg_id = mem;
	b->msg_id_len = id_len;
	b->body = mem + id_len + 1;
	b->body_len = len;
	b->sum = r->sum;
	b->priv = mem;
	return 0;
}

int raftmq_fetch_bodies(struct raftmq *conn, const uint64_t *keys, size_t n,
			uint64_t max_bytes, struct raftmq_body **out,
			size_t *n_out)
{
	Raftmq__Client__V1__FetchBodies m =
		RAFTMQ__CLIENT__V1__FETCH_BODIES__INIT;
	rmq_env env = RAFTMQ__CLIENT__V1__ENVELOPE__INIT;
	Raftmq__Client__V1__FetchBodiesResult *r;
	struct raftmq_body *arr = NULL;
	rmq_env *resp;
	size_t i;
	int rv;

	*out = NULL;
	*n_out = 0;
	if (n == 0 || n > MAX_KEYS || keys == NULL) {
		return rmq__fail(conn, RAFTMQ_EINVAL,
				 "fetch bodies needs 1 to %u keys", MAX_KEYS);
	}
	m.n_keys = n;
	m.keys = (uint64_t *)keys;
	m.max_bytes = max_bytes;
	env.body_case = RMQ_BODY(FETCH_BODIES);
	env.fetch_bodies = &m;
	rv = rmq__call_expect(conn, &env, RMQ_REPLAY_RESEND, true, 0,
			      RMQ_BODY(FETCH_BODIES_RESULT), &resp);
	if (rv != 0) {
		return rv;
	}
	r = resp->fetch_bodies_result;
	if (r->n_records > 0) {
		arr = calloc(r->n_records, sizeof(*arr));
		rv = arr == NULL ? RAFTMQ_ENOMEM : 0;
	}
	for (i = 0; rv == 0 && i < r->n_records; i++) {
		rv = body_copy(r->records[i], &arr[i]);
	}
	if (rv != 0) {
		raftmq_bodies_free(arr, r->n_records);
		rmq__env_free(resp);
		return rmq__fail(conn, rv, "out of memory");
	}
	*out = arr;
	*n_out = r->n_records;
	rmq__env_free(resp);
	return 0;
}
