/* The contents of the golden files in tests/data/consensus/, shared by the
 * generator (gen_golden.c, run once by hand) and the tests that read them.
 *
 * NEVER CHANGE THIS FILE OR THE GOLDEN FILES. They pin what a LogEntry and
 * a snapshot written by raftmq 0.1.0 (LogEntry format 1, snapshot format 1,
 * q_state dump format 1) look like; every later version must read them. The
 * tests also pin each file's size and XXH3 hash, so regenerating them (which
 * would defeat their purpose) fails loudly. A new format gets new files
 * (entry-v2.bin ...) next to these. */
#ifndef RAFTMQ_TESTS_CONSENSUS_GOLDEN_V1_H
#define RAFTMQ_TESTS_CONSENSUS_GOLDEN_V1_H

#include <stddef.h>
#include <stdint.h>

#include "q.h"

/* entry-v1.bin: one LogEntry holding golden_v1_cmds() then a SetMember. */
#define GOLDEN_V1_TIME_MS                                  \
	UINT64_C(1767225600123) /* 2026-01-01 00:00:00.123 \
				 */
#define GOLDEN_V1_PROPOSER_ID UINT64_C(3)
#define GOLDEN_V1_PROPOSER_BOOT UINT64_C(0xfeedfacecafebeef)
#define GOLDEN_V1_PROPOSER_SEQ UINT64_C(4242)
#define GOLDEN_V1_MEMBER_ID UINT64_C(7)
#define GOLDEN_V1_MEMBER_ADDR "10.0.0.7:5672"

/* Every q_cmd type with every field it carries set to a non-default value
 * (PUBLISH twice: to a queue and to a topic). Returns the count; the array
 * and what it points to are static. */
size_t golden_v1_cmds(const struct q_cmd **out);

/* snapshot-v1.bin: the snapshot of a fresh FSM after the entries of
 * golden_v1_history(), one command per entry, stamps from
 * GOLDEN_V1_TIME_MS + 1000 * i; plus two members. */
size_t golden_v1_history(const struct q_cmd **out);
#define GOLDEN_V1_SNAP_MEMBER1_ID UINT64_C(1)
#define GOLDEN_V1_SNAP_MEMBER1_ADDR "127.0.0.1:5671"
#define GOLDEN_V1_SNAP_MEMBER2_ID UINT64_C(2)
#define GOLDEN_V1_SNAP_MEMBER2_ADDR "127.0.0.1:5672"

#endif /* RAFTMQ_TESTS_CONSENSUS_GOLDEN_V1_H */
