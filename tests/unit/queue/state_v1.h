/* tests/data/queue/state-v1.bin: a q_state dump in format 1 (bodies and msg
 * ids inline), written by the queue/ of raftmq 0.1.0 before the body
 * interface existed (gen_state_v1.c, run once by hand). Every later version
 * must load it, with or without a body interface (a snapshot in the field
 * that meets a node with a body store).
 *
 * NEVER CHANGE THIS FILE, state_v1.c OR THE FIXTURE: the test pins the
 * fixture's size and FNV-1a hash, so regenerating it fails loudly. A new
 * format gets a new fixture next to it. */
#ifndef RAFTMQ_TESTS_QUEUE_STATE_V1_H
#define RAFTMQ_TESTS_QUEUE_STATE_V1_H

#include <stddef.h>
#include <stdint.h>

#include "q.h"

/* The commands that built the fixture, applied in order to a fresh state
 * (q_options: hash_seed 5, everything else 0), each at its cmd.now_ms. They
 * leave messages in every place: ready, returned, delayed (a delayed publish
 * and a delayed nack), unacked (two consumers), a ttl timer, a dead-lettered
 * copy, a topic publish shared by two subscriptions (one body, two copies),
 * msg ids (dedup entries in a queue and a topic), an empty body and a binary
 * one. Returns the count; the array is static. */
size_t state_v1_history(const struct q_cmd **out);

/* What the fixture holds (gen_state_v1 prints it): queue "work" has seq 9
 * ready, seq 3 returned (delivered twice), seq 2 delayed (a nack with a
 * delay), seq 8 delayed (a delayed publish), seqs 4 (empty body, msg id
 * "w-4") and 5 (a ttl) held by consumer 1; "work.dlq" has seq 7, the
 * dead-lettered copy of seq 1 (body "first", msg id "w-1"); "news:a" and
 * "news:b" hold one copy each of seq 6 (one body "fan-out", msg id "n-1").
 * 9 message copies of 8 distinct bodies (keys 1, 2, 3, 4, 5, 6, 8, 9). */
#define STATE_V1_BODIES 8
#define STATE_V1_MESSAGES 9
/* Pinned: size and FNV-1a 64 hash of state-v1.bin. */
#define STATE_V1_LEN 1689
#define STATE_V1_FNV UINT64_C(0x4ef05b2c7c861726)

#endif /* RAFTMQ_TESTS_QUEUE_STATE_V1_H */
