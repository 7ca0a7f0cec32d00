/* Fuzz target: log entries (bytes from the log) through the FSM.
 *
 * The input is what raft_uv hands the FSM, one or more entry buffers back to
 * back: u32 little-endian LogEntry length, 4 zero bytes, the LogEntry, zero
 * padding to a multiple of 8 (cons__entry_encode()). The harness cuts the
 * input at each header's length (the last entry gets whatever is left) and,
 * for each entry, in a fresh cons_fsm (no owner, no raft):
 *
 *   1. cons__entry_decode() and cons__entry_command() on every command;
 *   2. if all of them are accepted, the real raft_fsm apply (fsm_apply in
 *      cons_fsm.c) on a raft_malloc()ed copy, then q_state_check().
 *
 * An entry that step 1 refuses is one apply would refuse by stopping the
 * node (die(): a replica must stop rather than diverge, tested in
 * tests/unit/consensus/test_fsm.c), so it ends the input here. What must
 * never happen is a crash, a sanitizer report or a broken invariant for an
 * entry that decodes. At the end the state goes through the snapshot codec
 * into a second FSM, which must hold a byte-identical q_state dump. */
#include "cons_int.h"
#include "fuzz_util.h"

/* Step 1: would apply accept this entry? */
static int acceptable(struct cons_arena *a, const void *buf, size_t len)
{
	Raftmq__Log__V1__LogEntry *e = cons__entry_decode(a, buf, len);
	size_t i;
	if (e == NULL) {
		return 0;
	}
	for (i = 0; i < e->n_commands; i++) {
		struct q_cmd cmd;
		int rv = cons__entry_command(e->commands[i], e->leader_time_ms,
					     &cmd);
		if (rv != 0 && rv != 1) {
			FZ_CHECK(rv == CONS_ECORRUPT,
				 "cons__entry_command() = %d", rv);
			return 0;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cons_fsm f, g;
	struct cons_arena arena;
	struct q_options opts;
	struct raft_buffer snap;
	struct fz_buf d1, d2;
	char err[256];
	size_t off = 0;
	int rv;

	memset(&opts, 0, sizeof opts);
	opts.hash_seed = 7;
	opts.max_body = 1 << 20;
	FZ_CHECK(cons__fsm_init(&f, &opts, NULL) == 0, "cons__fsm_init");
	cons__arena_init(&arena);

	while (off < size) {
		const uint8_t *h = data + off;
		size_t left = size - off, len = left, n;
		struct raft_buffer buf;
		void *result = (void *)1;
		if (left >= CONS_ENTRY_HEADER) {
			n = (size_t)h[0] | (size_t)h[1] << 8 |
			    (size_t)h[2] << 16 | (size_t)h[3] << 24;
			if (n <= left - CONS_ENTRY_HEADER) {
				len = (CONS_ENTRY_HEADER + n + 7) & ~(size_t)7;
				len = len < left ? len : left;
			}
		}
		off += len;
		cons__arena_reset(&arena);
		if (!acceptable(&arena, h, len)) {
			break;
		}
		/* raft hands apply a raft_malloc()ed buffer it frees later. */
		buf.len = len;
		buf.base = raft_malloc(len > 0 ? len : 1);
		FZ_CHECK(buf.base != NULL, "raft_malloc");
		memcpy(buf.base, h, len);
		rv = f.fsm.apply(&f.fsm, &buf, &result);
		FZ_CHECK(rv == 0 && result == NULL, "apply = %d", rv);
		raft_free(buf.base);
		fz_state_check(f.state, "after apply");
	}

	/* Replicas restored from this one's snapshot hold the same state. */
	rv = cons__snapshot_encode(&f, &snap);
	FZ_CHECK(rv == 0, "cons__snapshot_encode = %d", rv);
	FZ_CHECK(cons__fsm_init(&g, &opts, NULL) == 0, "cons__fsm_init");
	rv = cons__snapshot_decode(&g, snap.base, snap.len, err, sizeof err);
	FZ_CHECK(rv == 0, "restore of a fresh snapshot: %s", err);
	fz_dump(f.state, &d1);
	fz_dump(g.state, &d2);
	FZ_CHECK(d1.len == d2.len && memcmp(d1.p, d2.p, d1.len) == 0,
		 "snapshot -> restore changed the state");
	FZ_CHECK(q_state_now(f.state) == q_state_now(g.state), "clock");
	free(d1.p);
	free(d2.p);
	raft_free(snap.base);
	cons__fsm_close(&g);
	cons__arena_close(&arena);
	cons__fsm_close(&f);
	return 0;
}
