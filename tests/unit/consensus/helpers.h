/* Helpers shared by the consensus/ tests (white-box: cons_int.h, raft.h).
 *
 *   - th_assert_cmd_eq(): field-by-field comparison of two q_cmds, only the
 *     fields their type carries (now_ms excluded).
 *   - th_encode() / th_apply(): encode commands as one LogEntry; feed it to
 *     an FSM through its raft_fsm vtable (the buffer is raft_malloc()ed and
 *     freed afterwards, as raft does).
 *   - th_dump() / th_assert_same_state(): q_state_dump() bytes and their
 *     comparison (the replica-equality property of STYLE.md 7).
 *   - th_read_data(): a golden file of tests/data/consensus/.
 *   - th_wrap(): hand-crafted LogEntry bytes as an entry buffer (the 8-byte
 *     header of CONS_ENTRY_HEADER and zero padding).
 * Every helper cr_asserts on harness failures. */
#ifndef RAFTMQ_TESTS_CONSENSUS_HELPERS_H
#define RAFTMQ_TESTS_CONSENSUS_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "cons_int.h"

void th_assert_cmd_eq(const struct q_cmd *want, const struct q_cmd *got);

/* One LogEntry of cmds[0..n) stamped t, no proposer (raft_malloc()ed). */
struct raft_buffer th_encode(const struct q_cmd *cmds, size_t n, uint64_t t);

/* An entry buffer around payload[0..len) (packed LogEntry bytes, possibly
 * malformed on purpose): u32 little-endian len, 4 zero bytes, the payload,
 * zeros up to a multiple of 8, as cons__entry_encode() writes them
 * (raft_malloc()ed). */
struct raft_buffer th_wrap(const void *payload, size_t len);

/* cons__fsm_init() with default options, no sink, owner NULL. */
void th_fsm_init(struct cons_fsm *f);

/* Encodes cmds as one entry and applies it through f->fsm.apply. */
void th_apply(struct cons_fsm *f, const struct q_cmd *cmds, size_t n,
	      uint64_t t);

/* Snapshot through the vtable: returns a raft_malloc()ed copy of the one
 * buffer (finalize already called). */
struct raft_buffer th_snapshot(struct cons_fsm *f);

/* The state's dump (free() it). */
void th_dump(const struct q_state *s, void **buf, size_t *len);
void th_assert_same_state(const struct q_state *a, const struct q_state *b,
			  const char *what);

/* Reads tests/data/consensus/NAME into a malloc()ed buffer. */
void th_read_data(const char *name, void **buf, size_t *len);

/* A raft tracer that prints nothing (the fixture traces to stderr
 * otherwise). */
extern struct raft_tracer th_quiet_tracer;

/* TEST_SEED from the environment, or dflt. */
uint64_t th_seed(uint64_t dflt);
/* splitmix64 */
uint64_t th_rand(uint64_t *state);

#endif /* RAFTMQ_TESTS_CONSENSUS_HELPERS_H */
