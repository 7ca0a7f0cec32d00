/* A fake body store for the queue tests and fuzz_queue: the struct
 * q_bodies that a state with bodies out of memory calls, keeping the bytes
 * in a hash map, and checking the protocol of q.h as it goes.
 *
 * Two levels:
 *   - one store per test process (tests fork per test): key -> the bytes
 *     put for it (msg id, body), its checksum, and how many states refer to
 *     it. Replicas of one history put the same key with the same bytes; a
 *     state loaded from a dump claims keys another state put. The bytes go
 *     when no state refers to the key any more.
 *   - struct fb_state, one per q_state: its vtable and the keys it refers
 *     to (the live set: put or claimed, not dropped).
 *
 * Violations (recorded in fb->err, the first one only; fb_ok() tells):
 *   - put of a key that is live for this state, or of a key the store holds
 *     with other bytes;
 *   - claim of a key that is live for this state, or that the store lacks;
 *   - drop of a key that is not live for this state.
 * fb_check() compares the live set with the keys the state refers to (every
 * message seen through q_state_peek(), with its checksum and lengths):
 * equal sets mean every referenced key is present and nothing referenced
 * was dropped.
 *
 * The checksum is FNV-1a 32 over the id, a separator and the body: a pure
 * function of the bytes, as q.h asks of a store. */
#ifndef RAFTMQ_TESTS_LIB_FAKE_BODIES_H
#define RAFTMQ_TESTS_LIB_FAKE_BODIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "q.h"

/* A set of keys (q_seq, never 0): open addressing, backward-shift delete. */
struct fb_set {
	q_seq *keys;
	size_t n, cap;
};

struct fb_state {
	struct q_bodies vt; /* pass &fb->vt as q_options.bodies */
	struct fb_set live;
	long puts, claims, drops; /* calls that succeeded */
	long put_calls;		  /* every put call, failed ones too */
	long fail_put_at;	  /* put_calls index that fails, -1 none */
	q_seq last_dropped;
	char err[256]; /* first violation, "" if none */
};

void fb_init(struct fb_state *fb);
/* The state that used fb was freed: its keys stop referring to the store's
 * bytes (without a drop, as q.h says of q_state_free()). */
void fb_fini(struct fb_state *fb);
bool fb_ok(const struct fb_state *fb);
bool fb_live(const struct fb_state *fb, q_seq key);

/* The bytes the store holds for key; false if it holds none. Pointers are
 * valid until the key is dropped by every state. */
bool fb_lookup(q_seq key, const void **id, size_t *id_len, const void **body,
	       size_t *len, uint32_t *sum);
uint32_t fb_sum(const void *id, size_t id_len, const void *body, size_t len);
/* Keys the store holds (for tests that check that everything was released). */
size_t fb_store_count(void);

/* Compares fb's live set with the keys state s refers to, and each
 * message's body_sum and lengths with the store. Returns true if all agree;
 * else writes why into `why`. Uses q_state_peek(), so the state's allocator
 * must not fail during the call. */
bool fb_check(const struct fb_state *fb, const struct q_state *s, char *why,
	      size_t whylen);

#endif /* RAFTMQ_TESTS_LIB_FAKE_BODIES_H */
