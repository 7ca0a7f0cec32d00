/* Test helpers for queue/ (black-box, against q.h only).
 *
 * What is here
 *   - struct h_rec: a recording sink. Every q_delivery and q_consumer_gone
 *     reported by apply is deep-copied (names, body, msg_id, session) into
 *     growable arrays, so tests can inspect them after the call.
 *   - struct h_env: a state plus its recording sink. `H` is one global env
 *     with h_setup()/h_teardown() for TestSuite(.init/.fini); other envs
 *     (a second replica, a loaded copy) come from h_env_init()/h_env_fini().
 *   - One-line command wrappers (h_create_queue, h_publish, h_attach, h_ack,
 *     ...). Each builds a struct q_cmd with an explicit now_ms, applies it,
 *     cr_asserts that q_state_apply() returned 0 (not Q_ENOMEM) and returns
 *     the struct q_result. They do NOT assert result.status: tests do.
 *     They do NOT run q_state_check(): call h_check() after mutations.
 *   - Dump helpers (h_dump, h_dump_equal) and a failing allocator
 *     (struct h_fail_alloc) for out-of-memory sweeps.
 *   - Bodies: an env keeps bodies in memory, or in the fake body store
 *     (tests/lib/fake_bodies.h) when it was made with h_env_init_mode(..,
 * true), or by h_env_init() in a build with H_STORE_DEFAULT=1 (t_queue_store:
 * the same tests with bodies out of memory). The recording sink then reads the
 * bytes from the store (checking the checksum), so h_delivery holds them in
 * both modes; h_check() also runs fb_check() for such a state, and h_env_fini()
 * checks the store protocol one last time.
 *
 * Conventions
 *   - Every string argument is borrowed; bodies given as C strings are sent
 *     without their terminating NUL (body_len = strlen(body)).
 *   - The default session of h_attach() is H_SESSION = {1, 1, 1}.
 *   - Helpers abort the test (cr_assert) only for harness failures: apply
 *     returning non-zero, out of memory in the harness itself.
 */
#ifndef RAFTMQ_TESTS_QUEUE_HELPERS_H
#define RAFTMQ_TESTS_QUEUE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_bodies.h"
#include "q.h"

/* 1 in the build that runs every suite with bodies in the fake store. */
#ifndef H_STORE_DEFAULT
#define H_STORE_DEFAULT 0
#endif

/* ---------------------------------------------------------------------
 * Recording sink
 * ------------------------------------------------------------------- */

/* A deep copy of one struct q_delivery. Strings are NUL-terminated copies;
 * body and msg_id are copied with an extra NUL so they can be compared with
 * strcmp when they hold text. NULL pointers in the delivery stay NULL. */
struct h_delivery {
	q_consumer_id consumer;
	bool has_session;	  /* delivery->session was not NULL */
	struct q_session session; /* copy of *delivery->session */
	char *queue;		  /* owned copy */
	q_seq seq;
	char *msg_id; /* owned copy or NULL */
	size_t msg_id_len;
	char *body; /* owned copy (+ NUL) or NULL when body_len 0 and body NULL
		     */
	size_t body_len;
	q_seq body_key;
	uint32_t body_sum;
	uint32_t delivery_count;
	uint64_t published_ms;
	uint8_t dl_reason;
	char *dl_queue; /* owned copy or NULL */
};

/* A deep copy of one struct q_consumer_gone. */
struct h_gone {
	q_consumer_id consumer;
	bool has_session;
	struct q_session session;
	char *queue; /* owned copy or NULL */
};

/* Every sink event, in call order. `order` interleaves both kinds: it holds
 * 'd' or 'g' per event (NUL-terminated) so tests can check ordering. */
struct h_rec {
	struct h_delivery *d;
	size_t n_d, cap_d;
	struct h_gone *g;
	size_t n_g, cap_g;
	char *order;
	size_t n_order, cap_order;
};

void h_rec_init(struct h_rec *r);
/* Frees every recorded event and empties the recorder (reusable). */
void h_rec_clear(struct h_rec *r);
void h_rec_fini(struct h_rec *r);
/* A sink that records into r (r borrowed; must outlive the sink's use). */
void h_rec_sink(struct h_rec *r, struct q_sink *sink);
/* The last recorded delivery; cr_asserts there is one. */
const struct h_delivery *h_rec_last(const struct h_rec *r);
/* Number of deliveries recorded for `consumer`. */
size_t h_rec_count_for(const struct h_rec *r, q_consumer_id consumer);
/* Index of the first delivery with this queue and seq, or -1. */
long h_rec_find(const struct h_rec *r, const char *queue, q_seq seq);
/* True if both recorders hold the same events (every field, deep). */
bool h_rec_equal(const struct h_rec *a, const struct h_rec *b);

/* ---------------------------------------------------------------------
 * Environment: a state with a recording sink
 * ------------------------------------------------------------------- */

struct h_env {
	struct q_state *s;
	struct q_sink sink;
	struct h_rec rec;
	bool store;	    /* bodies in the fake store */
	struct fb_state fb; /* when store */
};

/* Creates the state (opts may be NULL) and installs the recording sink.
 * Bodies are in the fake store if H_STORE_DEFAULT and opts has no body
 * interface of its own. cr_asserts q_state_new() succeeded. The env must
 * not move while the state lives (the state borrows e->fb). */
void h_env_init(struct h_env *e, const struct q_options *opts);
/* The same with the mode chosen: store = bodies in the fake store. */
void h_env_init_mode(struct h_env *e, const struct q_options *opts, bool store);
void h_env_fini(struct h_env *e);
/* The env of a state made by h_env_init*(), or NULL. */
struct h_env *h_env_of(const struct q_state *s);

/* The bytes of a delivery's body and msg id, from the delivery or, with
 * bodies out of memory, from the fake store (cr_asserts they are there and
 * match body_sum and the lengths). */
const void *h_delivery_body(const struct q_delivery *d);
const void *h_delivery_msg_id(const struct q_delivery *d);

/* The global environment of most suites. */
extern struct h_env H;
/* .init / .fini for TestSuite: H with default options (hash seed 42). */
void h_setup(void);
void h_teardown(void);

/* ---------------------------------------------------------------------
 * Settings, names
 * ------------------------------------------------------------------- */

/* q_settings_default() as a value. */
struct q_settings h_defaults(void);
/* Settings with every timer and limit off: ack_timeout 0, max_deliveries 0,
 * no dead letter, ttl 0, no limits, reject-publish, dedup_window 0. Handy for
 * tests that want only the behaviour they turn on. */
struct q_settings h_plain(void);

extern const struct q_session H_SESSION; /* {1, 1, 1} */

/* ---------------------------------------------------------------------
 * Command wrappers. Each applies one command at `now`, cr_asserts apply
 * returned 0, and returns the result (status unchecked).
 * ------------------------------------------------------------------- */

/* Applies *cmd; cr_asserts the return value is 0. */
struct q_result h_apply(struct q_state *s, const struct q_cmd *cmd);
/* Applies *cmd and returns q_state_apply()'s return value; *res written. */
int h_apply_rv(struct q_state *s, const struct q_cmd *cmd,
	       struct q_result *res);

/* settings NULL = q_settings_default(). */
struct q_result h_create_queue(struct q_state *s, const char *name,
			       const struct q_settings *settings, uint64_t now);
struct q_result h_configure(struct q_state *s, const char *name,
			    const struct q_settings *settings, uint32_t mask,
			    uint64_t now);
struct q_result h_delete_queue(struct q_state *s, const char *name,
			       uint64_t now);
struct q_result h_purge(struct q_state *s, const char *name, uint64_t now);

struct q_result h_create_topic(struct q_state *s, const char *topic,
			       uint64_t dedup_window_ms, uint64_t now);
struct q_result h_delete_topic(struct q_state *s, const char *topic,
			       uint64_t now);
/* settings NULL = q_settings_default(). */
struct q_result h_subscribe(struct q_state *s, const char *topic,
			    const char *sub, const struct q_settings *settings,
			    uint64_t now);
struct q_result h_unsubscribe(struct q_state *s, const char *topic,
			      const char *sub, uint64_t now);

/* Publish options beyond queue, id and body. */
struct h_pub {
	uint64_t delay_ms;
	uint64_t ttl_ms;
};

/* Publishes C string `body` (may be NULL = empty) with dedup id `id` (C
 * string or NULL) to queue `queue`. */
struct q_result h_publish(struct q_state *s, const char *queue, const char *id,
			  const char *body, uint64_t now);
/* Same with delay / ttl. */
struct q_result h_publish_ex(struct q_state *s, const char *queue,
			     const char *id, const char *body,
			     const struct h_pub *opt, uint64_t now);
/* Binary body. */
struct q_result h_publish_bin(struct q_state *s, const char *queue,
			      const char *id, const void *body, size_t len,
			      uint64_t now);
/* Publish to a topic. */
struct q_result h_publish_topic(struct q_state *s, const char *topic,
				const char *id, const char *body, uint64_t now);

/* Attaches a push consumer (credit unlimited) with session H_SESSION.
 * Returns the consumer id, or 0 if the status was not Q_OK. */
q_consumer_id h_attach(struct q_state *s, const char *queue, uint32_t prefetch,
		       uint64_t now);
/* Full attach; returns the result. */
struct q_result h_attach_ex(struct q_state *s, const char *queue,
			    struct q_session session, uint32_t prefetch,
			    uint32_t credit, uint64_t now);
struct q_result h_detach(struct q_state *s, q_consumer_id c, uint64_t now);
/* DETACH naming `n` unseen tags (borrowed). */
struct q_result h_detach_unseen(struct q_state *s, q_consumer_id c,
				const q_seq *unseen, size_t n, uint64_t now);
struct q_result h_credit(struct q_state *s, q_consumer_id c, uint32_t prefetch,
			 uint32_t credit, uint64_t now);

struct q_result h_ack(struct q_state *s, q_consumer_id c, const q_seq *tags,
		      size_t n, uint64_t now);
/* ms = nack delay. */
struct q_result h_nack(struct q_state *s, q_consumer_id c, const q_seq *tags,
		       size_t n, uint64_t ms, uint64_t now);
struct q_result h_release(struct q_state *s, q_consumer_id c, const q_seq *tags,
			  size_t n, uint64_t now);
/* A RELEASE whose tags were never handed to the application (unseen). */
struct q_result h_release_unseen(struct q_state *s, q_consumer_id c,
				 const q_seq *tags, size_t n, uint64_t now);
/* ms = new timeout (0 = queue's ack_timeout_ms). */
struct q_result h_extend(struct q_state *s, q_consumer_id c, const q_seq *tags,
			 size_t n, uint64_t ms, uint64_t now);
/* Single-tag shorthands. */
struct q_result h_ack1(struct q_state *s, q_consumer_id c, q_seq tag,
		       uint64_t now);
struct q_result h_nack1(struct q_state *s, q_consumer_id c, q_seq tag,
			uint64_t ms, uint64_t now);
struct q_result h_release1(struct q_state *s, q_consumer_id c, q_seq tag,
			   uint64_t now);

struct q_result h_tick(struct q_state *s, uint64_t now);
struct q_result h_session_gone(struct q_state *s, struct q_session session,
			       uint64_t now);
struct q_result h_detach_stale(struct q_state *s, uint64_t node_id,
			       uint64_t epoch, uint64_t now);

/* ---------------------------------------------------------------------
 * Inspection
 * ------------------------------------------------------------------- */

/* cr_asserts q_state_check() == 0, printing its message. */
#define h_check(s) h_check_at((s), __FILE__, __LINE__)
void h_check_at(const struct q_state *s, const char *file, int line);

/* q_state_queue_info(); cr_asserts the queue exists. */
struct q_queue_info h_info(const struct q_state *s, const char *name);
/* True if the queue exists. */
bool h_queue_exists(const struct q_state *s, const char *name);
struct q_totals h_totals(const struct q_state *s);
/* Number of consumers (q_state_foreach_consumer). */
size_t h_consumer_count(const struct q_state *s);
/* Consumer info by id; returns false if not found. */
bool h_consumer_info(const struct q_state *s, q_consumer_id id,
		     struct q_consumer_info *out);

/* ---------------------------------------------------------------------
 * Dumps
 * ------------------------------------------------------------------- */

/* A dump in a malloc()ed buffer (via q_state_dump, chunk by chunk).
 * cr_asserts it succeeded. Free with free(). */
void *h_dump(const struct q_state *s, size_t *len);
/* True if both states dump byte-identical. */
bool h_dump_equal(const struct q_state *a, const struct q_state *b);
/* True if s dumps to exactly (buf, len). */
bool h_dump_is(const struct q_state *s, const void *buf, size_t len);

/* ---------------------------------------------------------------------
 * Failing allocator
 *
 * Counts malloc and realloc calls (free is not counted) and fails those whose
 * 0-based index is in [fail_at, fail_at + fail_count). fail_at < 0 disables
 * failures. Allocations pass through to libc otherwise.
 * realloc(ptr, 0) and free(NULL) behave as in libc.
 * ------------------------------------------------------------------- */

struct h_fail_alloc {
	struct q_allocator a; /* pass &fa->a as q_options.allocator */
	long fail_at;	      /* first failing call index, -1 = never */
	long fail_count;      /* how many consecutive calls fail (default 1) */
	long calls;	      /* malloc + realloc calls so far */
	long failures;	      /* calls that were made to fail */
	long live; /* successful allocations not yet freed (approx.) */
};

/* Initialises with failures disabled. */
void h_fail_alloc_init(struct h_fail_alloc *fa);
/* Resets the call counter and fails the call with index n (0-based, counted
 * from now) and the count-1 next. */
void h_fail_alloc_arm(struct h_fail_alloc *fa, long n, long count);
/* Disables failures (the call counter keeps counting). */
void h_fail_alloc_disarm(struct h_fail_alloc *fa);

/* ---------------------------------------------------------------------
 * Misc
 * ------------------------------------------------------------------- */

/* A deterministic PRNG (splitmix64) for tests. */
uint64_t h_rand(uint64_t *state);

#endif /* RAFTMQ_TESTS_QUEUE_HELPERS_H */
