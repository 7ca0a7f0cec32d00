/* Fuzz target: snapshot restore (bytes from disk or from the leader).
 *
 * Byte 0 chooses what the rest is:
 *   - bit 0 set: a whole snapshot file ("RMQS", header length,
 *     SnapshotHeader, q_state dump), given as is to cons__snapshot_decode():
 *     the header checks (magic, lengths, formats, XXH3) are fuzzed;
 *   - else a q_state dump, which the harness wraps in a valid header (right
 *     length and XXH3, two members) first, so the fuzzer gets past the
 *     checksum to q_state_load(), which must refuse bad bytes and never
 *     crash on them (q.h). With bit 1 set the dump comes without its
 *     trailer ("END1" and an FNV-1a hash of the rest), which the harness
 *     computes and appends: the fuzzer then reaches the dump's parser.
 *
 * Restore goes into an FSM that already holds a queue with a message. If it
 * fails, that state must be untouched (dump equal to before). If it
 * succeeds, the new state must pass q_state_check(), survive snapshot ->
 * restore byte for byte, and take a far-future TICK (every timer fires) and
 * a publish, still passing q_state_check(). */
#include <xxhash.h>

#include "cons_int.h"
#include "fuzz_util.h"

/* A valid snapshot around dump[0..len) (raft_malloc()ed). */
static struct raft_buffer wrap(const uint8_t *dump, size_t len)
{
	Raftmq__Log__V1__SnapshotHeader h;
	Raftmq__Log__V1__Member ms[2], *mp[2];
	struct raft_buffer b;
	unsigned char *p;
	size_t hlen;
	raftmq__log__v1__snapshot_header__init(&h);
	h.format = RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1;
	h.state_bytes = len;
	h.state_format = 1;
	h.state_xxh3 = XXH3_64bits(dump, len);
	h.writer_version = (char *)"fuzz";
	raftmq__log__v1__member__init(&ms[0]);
	raftmq__log__v1__member__init(&ms[1]);
	ms[0].id = 1;
	ms[0].client_address = (char *)"127.0.0.1:5001";
	ms[1].id = 2;
	ms[1].client_address = (char *)"127.0.0.1:5002";
	mp[0] = &ms[0];
	mp[1] = &ms[1];
	h.n_members = 2;
	h.members = mp;
	hlen = raftmq__log__v1__snapshot_header__get_packed_size(&h);
	b.len = 8 + hlen + len;
	b.base = raft_malloc(b.len);
	FZ_CHECK(b.base != NULL, "raft_malloc");
	p = b.base;
	memcpy(p, "RMQS", 4);
	p[4] = (unsigned char)(hlen >> 24);
	p[5] = (unsigned char)(hlen >> 16);
	p[6] = (unsigned char)(hlen >> 8);
	p[7] = (unsigned char)hlen;
	raftmq__log__v1__snapshot_header__pack(&h, p + 8);
	if (len > 0) {
		memcpy(p + 8 + hlen, dump, len);
	}
	return b;
}

static void apply_ok(struct q_state *s, const struct q_cmd *c)
{
	struct q_result r;
	int rv = q_state_apply(s, c, &r);
	FZ_CHECK(rv == 0, "apply (type %u) = %d", c->type, rv);
	fz_state_check(s, "after apply on a restored state");
}

/* Gives f a queue "a" holding one message. */
static void populate(struct cons_fsm *f)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_CREATE_QUEUE;
	c.now_ms = 1000;
	c.u.queue.name = "a";
	q_settings_default(&c.u.queue.settings);
	apply_ok(f->state, &c);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.now_ms = 1001;
	c.u.publish.queue = "a";
	c.u.publish.body = "x";
	c.u.publish.body_len = 1;
	apply_ok(f->state, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cons_fsm f, g;
	struct q_options opts;
	struct raft_buffer in, snap;
	struct fz_buf before, after;
	struct q_cmd c;
	char err[256];
	int rv;

	if (size == 0) {
		return 0;
	}
	memset(&opts, 0, sizeof opts);
	opts.hash_seed = 3;
	FZ_CHECK(cons__fsm_init(&f, &opts, NULL) == 0, "cons__fsm_init");
	populate(&f);
	if (data[0] & 1) {
		in.len = size - 1;
		in.base = raft_malloc(in.len > 0 ? in.len : 1);
		FZ_CHECK(in.base != NULL, "raft_malloc");
		memcpy(in.base, data + 1, in.len);
	} else if (data[0] & 2) {
		struct fz_buf d = {NULL, 0, 0};
		uint64_t hash = 0xcbf29ce484222325ull;
		unsigned char t[8];
		size_t i;
		fz_buf_write(&d, data + 1, size - 1);
		for (i = 0; i < d.len; i++) {
			hash ^= d.p[i];
			hash *= 0x100000001b3ull;
		}
		for (i = 0; i < 8; i++) {
			t[i] = (unsigned char)(hash >> (8 * i));
		}
		fz_buf_write(&d, "END1", 4);
		fz_buf_write(&d, t, 8);
		in = wrap(d.p, d.len);
		free(d.p);
	} else {
		in = wrap(data + 1, size - 1);
	}
	fz_dump(f.state, &before);
	err[0] = '\0';
	rv = cons__snapshot_decode(&f, in.base, in.len, err, sizeof err);
	raft_free(in.base);
	if (rv != 0) {
		FZ_CHECK(rv == CONS_ECORRUPT && err[0] != '\0',
			 "refusal %d without a reason", rv);
		fz_dump(f.state, &after);
		FZ_CHECK(after.len == before.len &&
				 memcmp(after.p, before.p, after.len) == 0,
			 "a refused snapshot changed the state (%s)", err);
		free(after.p);
		goto out;
	}
	fz_state_check(f.state, "after restore");

	/* snapshot -> restore is the identity on what was restored */
	rv = cons__snapshot_encode(&f, &snap);
	FZ_CHECK(rv == 0, "cons__snapshot_encode = %d", rv);
	FZ_CHECK(cons__fsm_init(&g, &opts, NULL) == 0, "cons__fsm_init");
	rv = cons__snapshot_decode(&g, snap.base, snap.len, err, sizeof err);
	FZ_CHECK(rv == 0, "restore of a re-encoded snapshot: %s", err);
	raft_free(snap.base);
	fz_dump(f.state, &after);
	{
		struct fz_buf again;
		fz_dump(g.state, &again);
		FZ_CHECK(again.len == after.len &&
				 memcmp(again.p, after.p, again.len) == 0,
			 "snapshot -> restore changed the state");
		free(again.p);
	}
	free(after.p);
	cons__fsm_close(&g);

	/* The restored state keeps working: fire every timer, publish. */
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_TICK;
	c.now_ms = q_state_now(f.state) + (UINT64_C(1) << 40);
	apply_ok(f.state, &c);
	memset(&c, 0, sizeof c);
	c.type = Q_CMD_PUBLISH;
	c.now_ms = q_state_now(f.state);
	c.u.publish.queue = "a";
	c.u.publish.body = "y";
	c.u.publish.body_len = 1;
	apply_ok(f.state, &c);
out:
	free(before.p);
	cons__fsm_close(&f);
	return 0;
}
