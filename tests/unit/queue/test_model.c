/* Seeded random command sequences against a small reference model.
 *
 * Each run drives one real struct q_state and a deliberately naive model of
 * it (plain arrays, linear scans, no heap, no hashing) with the same random
 * commands, and after every step compares: the q_result, the deliveries the
 * sink reported (per queue, in order), every queue's gauges and counters,
 * every consumer, the topics, the totals, the state clock, and that
 * q_state_next_due() is not later than the model's earliest timer. It runs
 * q_state_check() after every step and dump -> load -> dump every ~1000
 * steps (sometimes continuing with the loaded copy).
 *
 * Every seed runs twice: with bodies in memory (deliveries carry the bytes,
 * dumps are format 1) and with bodies in the fake body store
 * (fake_bodies.h: deliveries carry keys and checksums, dumps are format 2,
 * and after every step the keys the state refers to are exactly the live
 * ones of the store; a loaded copy claims them).
 *
 * Environment: TEST_SEED=<n> runs that one seed instead of the fixed list;
 * TEST_STEPS=<n> sets the steps per seed (default 25000). On a mismatch the
 * seed, the step and the last commands are printed, then the test fails.
 * TEST_MODEL_AVOID=<case>,... keeps the generator away from named cases (see
 * avoid()) to look past a known bug.
 *
 * The fixed world (created at clock 1000, in this order, so the timer order's
 * "queue id" is this order):
 *   work   reject-publish, max_length 6, ack_timeout 40, max_deliveries 3,
 *          dead_letter dlq, dedup 100
 *   dlq    max_length 5 (reject-publish, or drop-head on odd seeds),
 *          ack_timeout 30, max_deliveries 2, dead_letter work, dedup 60
 *   t      topic, dedup 80, subscriptions:
 *     t:a  ack_timeout 50, ttl 60, max_bytes 64 reject-publish,
 *          max_deliveries 2, dead_letter dlq, dedup 0
 *     t:b  drop-head max_length 3, ttl 80, dead_letter dlq (seed % 4 < 2)
 *          or "nowhere" (a queue that does not exist), dedup 0; no consumers
 *   u      topic without subscriptions, dedup 50
 * Up to 4 consumers (work, dlq, t:a) over 4 sessions; max_body 100.
 * The fixed seeds cover both dlq overflow modes and both t:b dead-letter
 * targets (see world_settings()); each step draws a command, a clock stamp
 * (mostly +0..30 ms, ticks up to +160 ms, 4% going backwards) and its
 * arguments from the seeded PRNG.
 *
 * What the generator deliberately never does, because q.h leaves the answer
 * open or modelling it would cost more than it tells us:
 *   - No per-message ttl_ms, and no ttl on a queue that receives dead-lettered
 *     copies (work, dlq): q.h does not say which publish time / ttl a
 *     dead-lettered copy carries.
 *   - No delayed message ever sits in a drop-head queue (topic publishes are
 *     never delayed; on drop-head-dlq seeds nothing delayed goes to dlq):
 *     "oldest (returned, then ready, then delayed)" and trimming before or
 *     after the enqueue then differ for a new ready message.
 *   - No consumers on t:b (drop-head): q.h does not say whether a message
 *     returned into a full drop-head queue trims it. (dlq on drop-head seeds
 *     does have consumers; see the ambiguity notes at model_return().)
 *   - No CONFIGURE_QUEUE, DELETE_QUEUE of a real queue, DELETE_TOPIC or
 *     UNSUBSCRIBE: queues keep their creation order as queue id.
 *   - Subscription queues have dedup_window_ms 0 (only the topic dedups), and
 *     each target has its own msg_id space (dead-letter copies never collide
 *     with direct publishes), and publishes with a msg_id have small bodies
 *     (dedup vs. size checks are never both in play).
 *   - Error cases are generated one at a time (e.g. an oversized body only to
 *     an existing queue, an empty tag list only for a live consumer).
 *   - consumer_gone is compared only for SESSION_GONE (one per removed
 *     consumer, id order) and DETACH (none).
 *
 * Where q.h is silent the model follows the implementation's choice (each is
 * marked in the code; q.h should say so):
 *   - a dead-lettered copy keeps counting delivery_count (first delivery from
 *     the dead-letter queue reports old count + 1); its failure count restarts;
 *   - a NACK with a delay of an expired message puts it in delayed (no
 *     "returned after its expiry" check); its TTL timer expires it at the next
 *     TICK;
 *   - within one command, queues are dispatched in the order they became
 *     dispatchable (see mark()); this decides, for example, whether a
 *     dead-letter queue's consumer takes a copy before the next copy arrives
 *     and finds the queue full;
 *   - the failure count is checked before the expiry when a message returns;
 *   - a DETACH / SESSION_GONE returns a consumer's messages in delivery order;
 *     the round-robin cursor resumes after a removed receiver's position.
 *
 * Deliveries are compared per queue, in order (the interleaving between queues
 * is not compared). Counters are the model's reading of q.h (see
 * model_deadletter()).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_bodies.h"
#include "helpers.h"
#include "q.h"

/* ---------------------------------------------------------------------
 * PRNG: splitmix64 to seed, xorshift64* for the stream
 * ------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t seed)
{
	uint64_t x = seed;
	r->s = splitmix64(&x);
	if (r->s == 0)
		r->s = 1;
}

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545f4914f6cdd1dull;
}

/* Uniform-ish in [0, n). */
static uint32_t rnd(struct rng *r, uint32_t n)
{
	return n ? (uint32_t)((rng_next(r) >> 16) % n) : 0;
}

/* True with probability pct/100. */
static bool chance(struct rng *r, uint32_t pct)
{
	return rnd(r, 100) < pct;
}

/* ---------------------------------------------------------------------
 * The reference model
 * ------------------------------------------------------------------- */

enum { QW = 0, QD = 1, QA = 2, QB = 3, NQ = 4 };
enum { TT = 0, TU = 1, NT = 2 };

#define MAX_MSGS 1024
#define MAX_CONS 16
#define MAX_DEDUP 64
#define MAX_OUT 1024
#define MAX_TAGS 8
#define LIVE_CONS 4
#define NSESS 4

static const char *const qnames[NQ] = {"work", "dlq", "t:a", "t:b"};
static const char *const tnames[NT] = {"t", "u"};
static const struct q_session sessions[NSESS] = {
	{1, 1, 1},
	{1, 1, 2},
	{2, 1, 3},
	{1, 2, 4},
};

struct ctr {
	uint64_t published, delivered, redelivered, acked, nacked, released;
	uint64_t dead_lettered, expired, deduplicated, dropped, rejected;
};

struct mqueue {
	struct q_settings set; /* dead_letter points into a static string */
	int dl;		       /* dead-letter queue index, -1 if missing */
	int topic;	       /* bound topic or -1 */
	q_consumer_id last_rx; /* previous receiver, 0 = none yet */
	struct ctr c;
};

struct mtopic {
	uint64_t window;
	int subs[2];
	int nsubs;
	uint64_t published, deduplicated;
};

enum mstate { M_READY, M_RETURNED, M_DELAYED, M_HELD };

struct mmsg {
	int q;
	q_seq seq;
	int st;		     /* enum mstate */
	uint64_t order;	     /* position in the ready / returned list */
	uint64_t due;	     /* M_DELAYED: deliverable at */
	bool nack_delay;     /* M_DELAYED: joins returned (else ready) */
	uint64_t expires;    /* 0 = never */
	uint64_t deadline;   /* M_HELD: ack deadline, 0 = none */
	q_consumer_id cons;  /* M_HELD */
	uint64_t hold_order; /* M_HELD: delivery order */
	uint32_t dcount, failures;
	bool dl_once;
	uint8_t dl_reason;
	int dl_from; /* queue index or -1 */
	char id[8];
	size_t id_len; /* 0 = no msg id */
	uint32_t len;
	uint8_t fill; /* every body byte */
	uint64_t published_ms;
};

struct mcons {
	q_consumer_id id;
	int q;
	struct q_session sess;
	uint32_t prefetch, credit;
};

struct mdedup {
	int scope; /* queue index, or NQ + topic index */
	char id[8];
	size_t id_len;
	uint64_t at;
	q_seq seq;
};

/* One delivery, as the model predicts it or as the sink reported it. */
struct dlv {
	q_consumer_id cons;
	int q; /* queue index, -2 for an unknown name */
	q_seq seq;
	uint32_t dcount;
	uint8_t reason;
	int dl_from; /* -1 none, -2 unknown name */
	char id[8];
	size_t id_len;
	uint32_t len;
	uint8_t fill;
	bool body_ok; /* sink: every byte equal to the first */
	uint64_t published_ms;
};

struct model {
	struct mqueue q[NQ];
	struct mtopic t[NT];
	struct mmsg m[MAX_MSGS];
	size_t nm;
	struct mcons c[MAX_CONS]; /* live consumers, attach order */
	size_t nc;
	struct mdedup dd[MAX_DEDUP];
	size_t ndd;
	q_seq seq;
	q_consumer_id cid;
	uint64_t now, ord;
	struct dlv out[MAX_OUT];
	size_t nout;
	q_consumer_id gone[MAX_CONS]; /* SESSION_GONE: removed, in id order */
	size_t ngone;
	int dirty[NQ]; /* queues to dispatch, in the order marked */
	int ndirty;
	bool overflowed; /* a model array filled up: harness bug */
};

static int qindex(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < NQ; i++)
		if (strcmp(name, qnames[i]) == 0)
			return i;
	return -1;
}

static int tindex(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < NT; i++)
		if (strcmp(name, tnames[i]) == 0)
			return i;
	return -1;
}

static int cons_index(const struct model *M, q_consumer_id id)
{
	for (size_t i = 0; i < M->nc; i++)
		if (M->c[i].id == id)
			return (int)i;
	return -1;
}

static uint64_t held_by(const struct model *M, q_consumer_id id)
{
	uint64_t n = 0;
	for (size_t i = 0; i < M->nm; i++)
		if (M->m[i].st == M_HELD && M->m[i].cons == id)
			n++;
	return n;
}

static int find_msg(const struct model *M, int q, q_seq seq)
{
	for (size_t i = 0; i < M->nm; i++)
		if (M->m[i].q == q && M->m[i].seq == seq)
			return (int)i;
	return -1;
}

/* Dispatch order between queues is not in q.h; it matters when one queue's
 * dispatch dead-letters into another whose consumers would make room first.
 * Like the implementation, queues are dispatched in the order they became
 * dispatchable in the command: a message entering ready/returned, a held
 * message leaving its consumer, an attach or a credit marks the queue. */
static void mark(struct model *M, int q)
{
	for (int i = 0; i < M->ndirty; i++)
		if (M->dirty[i] == q)
			return;
	M->dirty[M->ndirty++] = q;
}

static void remove_msg(struct model *M, int i)
{
	M->m[i] = M->m[--M->nm];
}

/* Messages and body bytes not held by consumers (what the limits count). */
static uint64_t q_len(const struct model *M, int q)
{
	uint64_t n = 0;
	for (size_t i = 0; i < M->nm; i++)
		if (M->m[i].q == q && M->m[i].st != M_HELD)
			n++;
	return n;
}

static uint64_t q_bytes(const struct model *M, int q)
{
	uint64_t n = 0;
	for (size_t i = 0; i < M->nm; i++)
		if (M->m[i].q == q && M->m[i].st != M_HELD)
			n += M->m[i].len;
	return n;
}

static bool q_full(const struct model *M, int q, uint32_t len)
{
	const struct q_settings *s = &M->q[q].set;
	if (s->max_length && q_len(M, q) + 1 > s->max_length)
		return true;
	if (s->max_bytes && q_bytes(M, q) + len > s->max_bytes)
		return true;
	return false;
}

/* Lowest `order` among messages of q in state st, or -1. */
static int list_head(const struct model *M, int q, int st)
{
	int best = -1;
	for (size_t i = 0; i < M->nm; i++) {
		const struct mmsg *x = &M->m[i];
		if (x->q != q || x->st != st)
			continue;
		if (best < 0 || x->order < M->m[best].order)
			best = (int)i;
	}
	return best;
}

static struct mmsg *new_msg(struct model *M)
{
	if (M->nm == MAX_MSGS) {
		M->overflowed = true;
		M->nm--; /* overwrite the last one; the run fails anyway */
	}
	struct mmsg *x = &M->m[M->nm++];
	memset(x, 0, sizeof(*x));
	x->dl_from = -1;
	return x;
}

/* Dead-letters message i (already out of the consumer's hands). q.h:
 * moves it into the dead_letter queue with a fresh seq; dropped if that queue
 * does not exist or the message was dead-lettered once; a full reject-publish
 * target drops it, a full drop-head target drops its own oldest for good.
 * Counters are the model's reading: `expired` counts every expiry,
 * `dead_lettered` counts copies actually moved, `dropped` counts messages
 * discarded by the queue they were in. */
static void model_deadletter(struct model *M, int i, uint8_t reason)
{
	struct mmsg old = M->m[i];
	int src = old.q;
	int t = M->q[src].dl;

	remove_msg(M, i);
	if (reason == Q_REASON_EXPIRED)
		M->q[src].c.expired++;
	if (t < 0 || old.dl_once) {
		M->q[src].c.dropped++;
		return;
	}
	const struct q_settings *ts = &M->q[t].set;
	if (q_full(M, t, old.len)) {
		if (ts->overflow == Q_OVERFLOW_REJECT_PUBLISH ||
		    (ts->max_bytes && old.len > ts->max_bytes)) {
			M->q[src].c.dropped++;
			return;
		}
		while (q_full(M, t, old.len)) {
			int h = list_head(M, t, M_RETURNED);
			if (h < 0)
				h = list_head(M, t, M_READY);
			if (h < 0)
				h = list_head(M, t, M_DELAYED);
			if (h < 0)
				break;
			remove_msg(M, h);
			M->q[t].c.dropped++;
		}
	}
	M->q[src].c.dead_lettered++;
	struct mmsg *x = new_msg(M);
	x->q = t;
	x->seq = ++M->seq;
	x->st = M_READY;
	x->order = ++M->ord;
	x->expires = 0; /* targets never have a ttl (see the header) */
	x->dl_once = true;
	x->dl_reason = reason;
	x->dl_from = src;
	memcpy(x->id, old.id, sizeof(x->id));
	x->id_len = old.id_len;
	x->len = old.len;
	x->fill = old.fill;
	x->published_ms = old.published_ms;
	/* q.h is silent; the implementation keeps counting (documented choice
	 * wanted in q.h): the copy's first delivery reports old dcount + 1. */
	x->dcount = old.dcount;
	mark(M, t);
}

/* A held message comes back (nack / ack timeout / session gone: failed;
 * release / detach / detach stale: not failed). Model's reading where q.h is
 * silent: the failure count is checked before the expiry. */
static void model_return(struct model *M, int i, bool failed, uint64_t delay)
{
	struct mmsg *x = &M->m[i];
	uint32_t maxd = M->q[x->q].set.max_deliveries;

	mark(M, x->q); /* its consumer has room */
	x->cons = 0;
	x->deadline = 0;
	x->st = M_RETURNED; /* not held any more, whatever happens next */
	if (failed) {
		x->failures++;
		if (maxd && x->failures >= maxd) {
			model_deadletter(M, i, Q_REASON_MAX_DELIVERIES);
			return;
		}
	}
	if (delay) {
		/* Not checked for expiry here: q.h does not say whether a
		 * delayed nack counts as "returned"; like the implementation,
		 * the message goes to delayed and its TTL timer (due already)
		 * expires it in the next tick. */
		x->st = M_DELAYED;
		x->due = M->now + delay;
		x->nack_delay = true;
		x->order = ++M->ord;
		return;
	}
	if (x->expires && x->expires <= M->now) {
		model_deadletter(M, i, Q_REASON_EXPIRED);
		return;
	}
	x->order = ++M->ord;
}

static bool has_room(const struct model *M, const struct mcons *c)
{
	if (c->credit == 0)
		return false;
	return c->prefetch == 0 || held_by(M, c->id) < c->prefetch;
}

/* The next consumer after the previous receiver (attach order, wrapping,
 * the previous receiver itself last) that has room; -1 if none. Consumer ids
 * grow with attach order, so "after" is "first id greater than", which also
 * holds when the previous receiver has gone. */
static int pick_consumer(const struct model *M, int q)
{
	int idx[MAX_CONS];
	int n = 0;
	for (size_t i = 0; i < M->nc; i++)
		if (M->c[i].q == q)
			idx[n++] = (int)i;
	if (n == 0)
		return -1;
	int start = 0;
	while (start < n && M->c[idx[start]].id <= M->q[q].last_rx)
		start++;
	if (start == n)
		start = 0;
	for (int k = 0; k < n; k++) {
		int ci = idx[(start + k) % n];
		if (has_room(M, &M->c[ci]))
			return ci;
	}
	return -1;
}

static void record(struct model *M, const struct mmsg *x)
{
	if (M->nout == MAX_OUT) {
		M->overflowed = true;
		return;
	}
	struct dlv *d = &M->out[M->nout++];
	memset(d, 0, sizeof(*d));
	d->cons = x->cons;
	d->q = x->q;
	d->seq = x->seq;
	d->dcount = x->dcount;
	d->reason = x->dl_reason;
	d->dl_from = x->dl_from;
	memcpy(d->id, x->id, sizeof(d->id));
	d->id_len = x->id_len;
	d->len = x->len;
	d->fill = x->fill;
	d->body_ok = true;
	d->published_ms = x->published_ms;
}

/* Delivers from queue q while a consumer has room; returns whether anything
 * changed. Returned first, then ready; an expired head is dead-lettered. */
static bool model_dispatch(struct model *M, int q)
{
	bool any = false;
	for (;;) {
		int ci = pick_consumer(M, q);
		if (ci < 0)
			break;
		int mi = list_head(M, q, M_RETURNED);
		if (mi < 0)
			mi = list_head(M, q, M_READY);
		if (mi < 0)
			break;
		any = true;
		struct mmsg *x = &M->m[mi];
		if (x->expires && x->expires <= M->now) {
			model_deadletter(M, mi, Q_REASON_EXPIRED);
			continue;
		}
		struct mcons *c = &M->c[ci];
		uint64_t ack = M->q[q].set.ack_timeout_ms;
		x->st = M_HELD;
		x->cons = c->id;
		x->dcount++;
		x->deadline = ack ? M->now + ack : 0;
		x->hold_order = ++M->ord;
		if (c->credit != Q_CREDIT_UNLIMITED)
			c->credit--;
		M->q[q].last_rx = c->id;
		M->q[q].c.delivered++;
		if (x->dcount > 1)
			M->q[q].c.redelivered++;
		record(M, x);
	}
	return any;
}

static void model_dispatch_all(struct model *M)
{
	while (M->ndirty > 0) {
		int q = M->dirty[0];
		memmove(&M->dirty[0], &M->dirty[1],
			(size_t)(M->ndirty - 1) * sizeof(int));
		M->ndirty--;
		model_dispatch(M, q);
	}
}

/* Timer keys: (due, queue id, seq, kind); kind breaks the tie between the
 * delay and the expiry of one message (either order gives the same result). */
enum { K_DEADLINE, K_DELAY, K_EXPIRY };

static bool timer_of(const struct mmsg *x, uint64_t now, int *kind,
		     uint64_t *due)
{
	bool found = false;
	if (x->st == M_HELD && x->deadline && x->deadline <= now) {
		*kind = K_DEADLINE;
		*due = x->deadline;
		found = true;
	}
	if (x->st == M_DELAYED && x->due <= now && (!found || x->due < *due)) {
		*kind = K_DELAY;
		*due = x->due;
		found = true;
	}
	if (x->st != M_HELD && x->expires && x->expires <= now &&
	    (!found || x->expires < *due)) {
		*kind = K_EXPIRY;
		*due = x->expires;
		found = true;
	}
	return found;
}

static void model_fire_timers(struct model *M)
{
	for (;;) {
		int best = -1, bkind = 0;
		uint64_t bdue = 0;
		for (size_t i = 0; i < M->nm; i++) {
			int kind;
			uint64_t due;
			if (!timer_of(&M->m[i], M->now, &kind, &due))
				continue;
			const struct mmsg *x = &M->m[i];
			if (best >= 0) {
				const struct mmsg *b = &M->m[best];
				if (due != bdue	       ? due > bdue
				    : x->q != b->q     ? x->q > b->q
				    : x->seq != b->seq ? x->seq > b->seq
						       : kind > bkind)
					continue;
			}
			best = (int)i;
			bkind = kind;
			bdue = due;
		}
		if (best < 0)
			return;
		struct mmsg *x = &M->m[best];
		switch (bkind) {
		case K_DEADLINE:
			model_return(M, best, true, 0);
			break;
		case K_DELAY:
			x->st = x->nack_delay ? M_RETURNED : M_READY;
			x->nack_delay = false;
			x->order = ++M->ord;
			mark(M, x->q);
			break;
		default:
			model_deadletter(M, best, Q_REASON_EXPIRED);
			break;
		}
	}
}

/* Earliest pending timer of the model (UINT64_MAX if none). */
static uint64_t model_next_due(const struct model *M)
{
	uint64_t best = UINT64_MAX;
	for (size_t i = 0; i < M->nm; i++) {
		const struct mmsg *x = &M->m[i];
		if (x->st == M_HELD && x->deadline && x->deadline < best)
			best = x->deadline;
		if (x->st == M_DELAYED && x->due < best)
			best = x->due;
		if (x->st != M_HELD && x->expires && x->expires < best)
			best = x->expires;
	}
	return best;
}

static struct mdedup *dedup_find(struct model *M, int scope, const char *id,
				 size_t len)
{
	for (size_t i = 0; i < M->ndd; i++) {
		struct mdedup *e = &M->dd[i];
		if (e->scope == scope && e->id_len == len &&
		    memcmp(e->id, id, len) == 0)
			return e;
	}
	return NULL;
}

static void dedup_note(struct model *M, int scope, const char *id, size_t len,
		       q_seq seq)
{
	struct mdedup *e = dedup_find(M, scope, id, len);
	if (e == NULL) {
		if (M->ndd == MAX_DEDUP) {
			M->overflowed = true;
			return;
		}
		e = &M->dd[M->ndd++];
		e->scope = scope;
		memcpy(e->id, id, len);
		e->id_len = len;
	}
	e->at = M->now;
	e->seq = seq;
}

/* Whether the id was seen less than `window` ago; *seq gets the original. */
static bool dedup_hit(struct model *M, int scope, uint64_t window,
		      const struct q_cmd_publish *p, q_seq *seq)
{
	if (window == 0 || p->msg_id == NULL || p->msg_id_len == 0)
		return false;
	struct mdedup *e = dedup_find(M, scope, p->msg_id, p->msg_id_len);
	if (e == NULL || M->now - e->at >= window)
		return false;
	*seq = e->seq;
	return true;
}

static bool refuses(const struct model *M, int q, uint32_t len)
{
	const struct q_settings *s = &M->q[q].set;
	if (s->max_bytes && len > s->max_bytes)
		return true;
	return s->overflow == Q_OVERFLOW_REJECT_PUBLISH && q_full(M, q, len);
}

static void enqueue_new(struct model *M, int q, const struct q_cmd_publish *p,
			q_seq seq)
{
	struct mmsg *x = new_msg(M);
	x->q = q;
	x->seq = seq;
	x->order = ++M->ord;
	if (p->delay_ms) {
		x->st = M_DELAYED;
		x->due = M->now + p->delay_ms;
	} else {
		x->st = M_READY;
		mark(M, q);
	}
	uint64_t ttl = p->ttl_ms ? p->ttl_ms : M->q[q].set.ttl_ms;
	x->expires = ttl ? M->now + ttl : 0;
	if (p->msg_id && p->msg_id_len) {
		memcpy(x->id, p->msg_id, p->msg_id_len);
		x->id_len = p->msg_id_len;
	}
	x->len = (uint32_t)p->body_len;
	x->fill = p->body_len ? ((const uint8_t *)p->body)[0] : 0;
	x->published_ms = M->now;
	M->q[q].c.published++;
	/* Drop-head: trim the oldest. The new message is never the one trimmed
	 * (no delayed messages in drop-head queues, see the header). */
	if (M->q[q].set.overflow == Q_OVERFLOW_DROP_HEAD) {
		const struct q_settings *s = &M->q[q].set;
		while ((s->max_length && q_len(M, q) > s->max_length) ||
		       (s->max_bytes && q_bytes(M, q) > s->max_bytes)) {
			int h = list_head(M, q, M_RETURNED);
			if (h < 0)
				h = list_head(M, q, M_READY);
			if (h < 0)
				h = list_head(M, q, M_DELAYED);
			if (h < 0)
				break;
			model_deadletter(M, h, Q_REASON_OVERFLOW);
		}
	}
}

static void model_publish(struct model *M, const struct q_cmd_publish *p,
			  size_t max_body, struct q_result *r)
{
	if ((p->queue == NULL) == (p->topic == NULL)) {
		r->status = Q_EINVAL;
		return;
	}
	int q = -1, t = -1;
	if (p->queue) {
		q = qindex(p->queue);
		if (q < 0) {
			r->status = Q_ENOTFOUND;
			return;
		}
		if (M->q[q].topic >= 0) {
			r->status = Q_ETOPICQUEUE;
			return;
		}
	} else {
		t = tindex(p->topic);
		if (t < 0) {
			r->status = Q_ENOTFOUND;
			return;
		}
	}
	if (max_body && p->body_len > max_body) {
		r->status = Q_ETOOBIG;
		return;
	}
	uint32_t len = (uint32_t)p->body_len;
	q_seq orig;
	if (q >= 0) {
		if (dedup_hit(M, q, M->q[q].set.dedup_window_ms, p, &orig)) {
			M->q[q].c.deduplicated++;
			r->duplicate = true;
			r->seq = orig;
			return;
		}
		if (refuses(M, q, len)) {
			M->q[q].c.rejected++;
			r->status = Q_EFULL;
			return;
		}
		q_seq seq = ++M->seq;
		r->seq = seq;
		enqueue_new(M, q, p, seq);
		if (M->q[q].set.dedup_window_ms && p->msg_id && p->msg_id_len)
			dedup_note(M, q, p->msg_id, p->msg_id_len, seq);
		return;
	}
	struct mtopic *T = &M->t[t];
	if (dedup_hit(M, NQ + t, T->window, p, &orig)) {
		T->deduplicated++;
		r->duplicate = true;
		r->seq = orig;
		return;
	}
	bool refused = false;
	for (int k = 0; k < T->nsubs; k++)
		if (refuses(M, T->subs[k], len)) {
			M->q[T->subs[k]].c.rejected++;
			refused = true;
		}
	if (refused) {
		r->status = Q_EFULL;
		return;
	}
	q_seq seq = ++M->seq;
	r->seq = seq;
	T->published++;
	for (int k = 0; k < T->nsubs; k++)
		enqueue_new(M, T->subs[k], p, seq);
	if (T->window && p->msg_id && p->msg_id_len)
		dedup_note(M, NQ + t, p->msg_id, p->msg_id_len, seq);
}

/* Removes consumer ci, returning what it holds in delivery order. */
static void model_drop_consumer(struct model *M, int ci, bool failed)
{
	q_consumer_id id = M->c[ci].id;
	memmove(&M->c[ci], &M->c[ci + 1],
		(M->nc - (size_t)ci - 1) * sizeof(M->c[0]));
	M->nc--;
	for (;;) {
		int best = -1;
		for (size_t i = 0; i < M->nm; i++) {
			const struct mmsg *x = &M->m[i];
			if (x->st != M_HELD || x->cons != id)
				continue;
			if (best < 0 || x->hold_order < M->m[best].hold_order)
				best = (int)i;
		}
		if (best < 0)
			break;
		model_return(M, best, failed, 0);
	}
}

static bool same_session(const struct q_session *a, const struct q_session *b)
{
	return a->node_id == b->node_id && a->epoch == b->epoch &&
	       a->session_id == b->session_id;
}

static bool str_eq0(const char *a, const char *b)
{
	if (a == NULL)
		a = "";
	if (b == NULL)
		b = "";
	return strcmp(a, b) == 0;
}

static bool settings_eq(const struct q_settings *a, const struct q_settings *b)
{
	return a->ack_timeout_ms == b->ack_timeout_ms &&
	       a->max_deliveries == b->max_deliveries &&
	       str_eq0(a->dead_letter, b->dead_letter) &&
	       a->ttl_ms == b->ttl_ms && a->max_length == b->max_length &&
	       a->max_bytes == b->max_bytes && a->overflow == b->overflow &&
	       a->dedup_window_ms == b->dedup_window_ms;
}

/* The model's q_state_apply(). */
static void model_apply(struct model *M, const struct q_cmd *cmd,
			size_t max_body, struct q_result *r)
{
	memset(r, 0, sizeof(*r));
	M->nout = 0;
	M->ngone = 0;
	if (cmd->now_ms > M->now)
		M->now = cmd->now_ms;

	switch (cmd->type) {
	case Q_CMD_TICK:
		model_fire_timers(M);
		break;
	case Q_CMD_CREATE_QUEUE: {
		int q = qindex(cmd->u.queue.name);
		cr_assert(q >= 0 && M->q[q].topic < 0,
			  "generator: create of a new queue");
		r->status = settings_eq(&M->q[q].set, &cmd->u.queue.settings)
				    ? Q_OK
				    : Q_EEXIST;
		break;
	}
	case Q_CMD_DELETE_QUEUE: {
		int q = qindex(cmd->u.queue.name);
		cr_assert(q < 0 || M->q[q].topic >= 0,
			  "generator: real delete");
		r->status = q < 0 ? Q_ENOTFOUND : Q_ETOPICQUEUE;
		break;
	}
	case Q_CMD_PURGE_QUEUE: {
		int q = qindex(cmd->u.queue.name);
		if (q < 0) {
			r->status = Q_ENOTFOUND;
			break;
		}
		for (size_t i = 0; i < M->nm;) {
			if (M->m[i].q == q && M->m[i].st != M_HELD) {
				remove_msg(M, (int)i);
				r->count++;
			} else {
				i++;
			}
		}
		break;
	}
	case Q_CMD_CREATE_TOPIC: {
		int t = tindex(cmd->u.topic.topic);
		cr_assert(t >= 0, "generator: create of a new topic");
		r->status = M->t[t].window == cmd->u.topic.dedup_window_ms
				    ? Q_OK
				    : Q_EEXIST;
		break;
	}
	case Q_CMD_SUBSCRIBE: {
		char name[64];
		snprintf(name, sizeof(name), "%s:%s", cmd->u.topic.topic,
			 cmd->u.topic.subscription);
		int q = qindex(name);
		cr_assert(q >= 0, "generator: new subscription");
		r->status = settings_eq(&M->q[q].set, &cmd->u.topic.settings)
				    ? Q_OK
				    : Q_EEXIST;
		break;
	}
	case Q_CMD_PUBLISH:
		model_publish(M, &cmd->u.publish, max_body, r);
		break;
	case Q_CMD_ATTACH: {
		int q = qindex(cmd->u.attach.queue);
		if (q < 0) {
			r->status = Q_ENOTFOUND;
			break;
		}
		cr_assert(M->nc < MAX_CONS, "model: too many consumers");
		struct mcons *c = &M->c[M->nc++];
		c->id = ++M->cid;
		c->q = q;
		c->sess = cmd->u.attach.session;
		c->prefetch = cmd->u.attach.prefetch;
		c->credit = cmd->u.attach.credit;
		r->consumer = c->id;
		mark(M, q);
		break;
	}
	case Q_CMD_DETACH: {
		int ci = cons_index(M, cmd->u.consumer.consumer);
		if (ci < 0) {
			r->status = Q_ENOCONSUMER;
			break;
		}
		model_drop_consumer(M, ci, false);
		r->count = 1;
		break;
	}
	case Q_CMD_CREDIT: {
		int ci = cons_index(M, cmd->u.consumer.consumer);
		if (ci < 0) {
			r->status = Q_ENOCONSUMER;
			break;
		}
		M->c[ci].prefetch = cmd->u.consumer.prefetch;
		M->c[ci].credit = cmd->u.consumer.credit;
		mark(M, M->c[ci].q);
		break;
	}
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND: {
		const struct q_cmd_tags *tg = &cmd->u.tags;
		int ci = cons_index(M, tg->consumer);
		if (ci < 0) {
			r->status = Q_ENOCONSUMER;
			break;
		}
		if (tg->n_tags == 0) {
			r->status = Q_EINVAL;
			break;
		}
		int q = M->c[ci].q;
		for (size_t k = 0; k < tg->n_tags; k++) {
			int mi = find_msg(M, q, tg->tags[k]);
			if (mi < 0 || M->m[mi].st != M_HELD ||
			    M->m[mi].cons != tg->consumer) {
				r->unknown++;
				continue;
			}
			r->count++;
			switch (cmd->type) {
			case Q_CMD_ACK:
				M->q[q].c.acked++;
				remove_msg(M, mi);
				mark(M, q);
				break;
			case Q_CMD_NACK:
				M->q[q].c.nacked++;
				model_return(M, mi, true, tg->ms);
				break;
			case Q_CMD_RELEASE:
				M->q[q].c.released++;
				/* Unseen: the delivery is undone (q.h). */
				if (tg->unseen && M->m[mi].dcount != UINT32_MAX)
					M->m[mi].dcount--;
				model_return(M, mi, false, 0);
				break;
			default:
				M->m[mi].deadline =
					M->now +
					(tg->ms ? tg->ms
						: M->q[q].set.ack_timeout_ms);
				break;
			}
		}
		if (r->unknown)
			r->status = Q_EUNKNOWNTAG;
		break;
	}
	case Q_CMD_SESSION_GONE:
	case Q_CMD_DETACH_STALE: {
		const struct q_session *s = &cmd->u.session.session;
		bool gone = cmd->type == Q_CMD_SESSION_GONE;
		for (size_t i = 0; i < M->nc;) {
			const struct q_session *cs = &M->c[i].sess;
			bool hit = gone ? same_session(cs, s)
					: !(cs->node_id == s->node_id &&
					    cs->epoch == s->epoch);
			if (hit) {
				M->gone[M->ngone++] = M->c[i].id;
				model_drop_consumer(M, (int)i, gone);
				r->count++;
			} else {
				i++;
			}
		}
		break;
	}
	default:
		cr_assert_fail("generator: command type %d not modelled",
			       cmd->type);
	}
	model_dispatch_all(M);
}

/* ---------------------------------------------------------------------
 * The real side: a recording sink
 * ------------------------------------------------------------------- */

struct real_out {
	struct dlv d[MAX_OUT];
	size_t n;
	q_consumer_id gone[MAX_CONS];
	size_t ngone;
	bool overflowed;
};

static void sink_deliver(void *data, const struct q_delivery *d)
{
	struct real_out *o = data;
	if (o->n == MAX_OUT) {
		o->overflowed = true;
		return;
	}
	struct dlv *x = &o->d[o->n++];
	memset(x, 0, sizeof(*x));
	x->cons = d->consumer;
	x->q = qindex(d->queue);
	if (x->q < 0)
		x->q = -2;
	x->seq = d->seq;
	x->dcount = d->delivery_count;
	x->reason = d->dl_reason;
	x->dl_from = d->dl_queue ? qindex(d->dl_queue) : -1;
	if (d->dl_queue && x->dl_from < 0)
		x->dl_from = -2;
	/* From the delivery, or from the fake store by key (checked). */
	const char *msg_id = h_delivery_msg_id(d);
	if (msg_id && d->msg_id_len) {
		x->id_len = d->msg_id_len < sizeof(x->id) ? d->msg_id_len
							  : sizeof(x->id);
		memcpy(x->id, msg_id, x->id_len);
		if (d->msg_id_len != x->id_len)
			x->id_len = SIZE_MAX; /* never equal to the model's */
	}
	x->len = (uint32_t)d->body_len;
	x->body_ok = true;
	if (d->body_len) {
		const uint8_t *b = h_delivery_body(d);
		x->fill = b[0];
		for (size_t i = 1; i < d->body_len; i++)
			if (b[i] != b[0])
				x->body_ok = false;
	}
	x->published_ms = d->published_ms;
}

static void sink_gone(void *data, const struct q_consumer_gone *g)
{
	struct real_out *o = data;
	if (o->ngone == MAX_CONS) {
		o->overflowed = true;
		return;
	}
	o->gone[o->ngone++] = g->consumer;
}

/* ---------------------------------------------------------------------
 * A run: generator, comparison, failure report
 * ------------------------------------------------------------------- */

#define RING 20

struct run {
	uint64_t seed;
	long step;
	struct rng rng;
	struct model M;
	struct q_state *s;
	struct q_options opts;
	/* Bodies in the fake store: fbs[cur] serves s; a loaded copy gets
	 * the other one (each state has its own live set). */
	bool store;
	struct fb_state fbs[2];
	int cur;
	struct q_sink sink;
	struct real_out out;
	char ring[RING][200];
	long ring_step[RING];
	/* Storage the current command borrows. */
	q_seq tags[MAX_TAGS];
	char id[8];
	uint8_t body[128];
	uint32_t pubs;
	bool dlq_drop_head;
	const char *avoid; /* TEST_MODEL_AVOID */
	uint8_t cmd_type;  /* of the current step */
	/* What the run exercised, printed at the end. */
	uint64_t n_status[Q_ECODES_COUNT], n_type[Q_CMD_TYPE_COUNT];
	uint64_t n_dlv, n_redlv, n_dlv_reason[4], n_dup, n_loads, n_backwards;
};

/* TEST_MODEL_AVOID=name,name,... stops the generator from producing the named
 * cases, to look past a known implementation bug: empty-tags (no empty tag
 * lists), delay-ttl (no delayed nacks in a queue with a ttl). */
static bool avoid(const struct run *R, const char *what)
{
	if (R->avoid == NULL)
		return false;
	size_t n = strlen(what);
	for (const char *p = strstr(R->avoid, what); p; p = strstr(p + 1, what))
		if ((p == R->avoid || p[-1] == ',') &&
		    (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

static void dump_model(const struct model *M)
{
	static const char st[] = "RTDH";
	for (int q = 0; q < NQ; q++) {
		fprintf(stderr, "  %-5s:", qnames[q]);
		for (size_t i = 0; i < M->nm; i++) {
			const struct mmsg *x = &M->m[i];
			if (x->q != q)
				continue;
			fprintf(stderr, " %" PRIu64 "%c", x->seq, st[x->st]);
			if (x->st == M_HELD)
				fprintf(stderr, "(c%" PRIu64 " dl%" PRIu64 ")",
					x->cons, x->deadline);
			if (x->st == M_DELAYED)
				fprintf(stderr, "(due%" PRIu64 ")", x->due);
			if (x->expires)
				fprintf(stderr, "[exp%" PRIu64 "]", x->expires);
			fprintf(stderr, "{d%u f%u len%u}", x->dcount,
				x->failures, x->len);
		}
		fprintf(stderr, "\n");
	}
}

__attribute__((format(printf, 2, 3))) static void fail(struct run *R,
						       const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"\n*** queue model mismatch: seed=%" PRIu64
		" step=%ld\n*** %s\n"
		"*** last commands (oldest first):\n",
		R->seed, R->step, msg);
	for (long k = R->step - RING + 1; k <= R->step; k++) {
		if (k < 0)
			continue;
		int slot = (int)(k % RING);
		if (R->ring_step[slot] == k)
			fprintf(stderr, "  %6ld  %s\n", k, R->ring[slot]);
	}
	fprintf(stderr,
		"*** model after the step (state R=ready T=returned "
		"D=delayed H=held):\n");
	dump_model(&R->M);
	fprintf(stderr, "*** rerun: TEST_SEED=%" PRIu64 " TEST_STEPS=%ld\n",
		R->seed, R->step + 1);
	cr_assert_fail("model mismatch at seed %" PRIu64 " step %ld: %s",
		       R->seed, R->step, msg);
}

static const char *const cmd_names[Q_CMD_TYPE_COUNT] = {
	"TICK",		"CREATE_QUEUE", "CONFIGURE_QUEUE",
	"DELETE_QUEUE", "PURGE",	"CREATE_TOPIC",
	"DELETE_TOPIC", "SUBSCRIBE",	"UNSUBSCRIBE",
	"PUBLISH",	"ATTACH",	"DETACH",
	"CREDIT",	"ACK",		"NACK",
	"RELEASE",	"EXTEND",	"SESSION_GONE",
	"DETACH_STALE",
};

static void describe(const struct q_cmd *c, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "now=%" PRIu64 " %s", c->now_ms,
			 c->type < Q_CMD_TYPE_COUNT ? cmd_names[c->type] : "?");
	if (n < 0 || (size_t)n >= cap)
		return;
	char *p = buf + n;
	size_t left = cap - (size_t)n;
	switch (c->type) {
	case Q_CMD_CREATE_QUEUE:
	case Q_CMD_DELETE_QUEUE:
	case Q_CMD_PURGE_QUEUE:
		snprintf(p, left, " %s", c->u.queue.name);
		break;
	case Q_CMD_CREATE_TOPIC:
		snprintf(p, left, " %s window=%" PRIu64, c->u.topic.topic,
			 c->u.topic.dedup_window_ms);
		break;
	case Q_CMD_SUBSCRIBE:
		snprintf(p, left, " %s %s", c->u.topic.topic,
			 c->u.topic.subscription);
		break;
	case Q_CMD_PUBLISH: {
		const struct q_cmd_publish *pb = &c->u.publish;
		snprintf(p, left,
			 " queue=%s topic=%s id=%.*s len=%zu delay=%" PRIu64,
			 pb->queue ? pb->queue : "-",
			 pb->topic ? pb->topic : "-",
			 pb->msg_id ? (int)pb->msg_id_len : 1,
			 pb->msg_id ? pb->msg_id : "-", pb->body_len,
			 pb->delay_ms);
		break;
	}
	case Q_CMD_ATTACH:
		snprintf(p, left,
			 " %s sess=%" PRIu64 "/%" PRIu64 "/%" PRIu64
			 " prefetch=%u credit=%" PRId64,
			 c->u.attach.queue, c->u.attach.session.node_id,
			 c->u.attach.session.epoch,
			 c->u.attach.session.session_id, c->u.attach.prefetch,
			 c->u.attach.credit == Q_CREDIT_UNLIMITED
				 ? (int64_t)-1
				 : (int64_t)c->u.attach.credit);
		break;
	case Q_CMD_DETACH:
	case Q_CMD_CREDIT:
		snprintf(p, left, " c%" PRIu64 " prefetch=%u credit=%" PRId64,
			 c->u.consumer.consumer, c->u.consumer.prefetch,
			 c->u.consumer.credit == Q_CREDIT_UNLIMITED
				 ? (int64_t)-1
				 : (int64_t)c->u.consumer.credit);
		break;
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND: {
		int m = snprintf(p, left,
				 " c%" PRIu64 " ms=%" PRIu64 "%s tags=[",
				 c->u.tags.consumer, c->u.tags.ms,
				 c->u.tags.unseen ? " unseen" : "");
		for (size_t k = 0;
		     k < c->u.tags.n_tags && m > 0 && (size_t)m < left; k++)
			m += snprintf(p + m, left - (size_t)m, "%s%" PRIu64,
				      k ? "," : "", c->u.tags.tags[k]);
		if (m > 0 && (size_t)m < left)
			snprintf(p + m, left - (size_t)m, "]");
		break;
	}
	case Q_CMD_SESSION_GONE:
	case Q_CMD_DETACH_STALE:
		snprintf(p, left, " %" PRIu64 "/%" PRIu64 "/%" PRIu64,
			 c->u.session.session.node_id,
			 c->u.session.session.epoch,
			 c->u.session.session.session_id);
		break;
	default:
		break;
	}
}

/* --- the fixed world ------------------------------------------------ */

static struct q_settings world_settings(int q, uint64_t seed)
{
	struct q_settings s;
	q_settings_default(&s);
	switch (q) {
	case QW:
		s.ack_timeout_ms = 40;
		s.max_deliveries = 3;
		s.dead_letter = "dlq";
		s.ttl_ms = 0;
		s.max_length = 6;
		s.max_bytes = 0;
		s.overflow = Q_OVERFLOW_REJECT_PUBLISH;
		s.dedup_window_ms = 100;
		break;
	case QD:
		s.ack_timeout_ms = 30;
		s.max_deliveries = 2;
		s.dead_letter = "work";
		s.ttl_ms = 0;
		s.max_length = 5;
		s.max_bytes = 0;
		s.overflow = (seed & 1) ? Q_OVERFLOW_DROP_HEAD
					: Q_OVERFLOW_REJECT_PUBLISH;
		s.dedup_window_ms = 60;
		break;
	case QA:
		s.ack_timeout_ms = 50;
		s.max_deliveries = 2;
		s.dead_letter = "dlq";
		s.ttl_ms = 60;
		s.max_length = 0;
		s.max_bytes = 64;
		s.overflow = Q_OVERFLOW_REJECT_PUBLISH;
		s.dedup_window_ms = 0;
		break;
	default:
		s.ack_timeout_ms = 30;
		s.max_deliveries = 0;
		s.dead_letter = (seed % 4 < 2) ? "dlq" : "nowhere";
		s.ttl_ms = 80;
		s.max_length = 3;
		s.max_bytes = 0;
		s.overflow = Q_OVERFLOW_DROP_HEAD;
		s.dedup_window_ms = 0;
		break;
	}
	return s;
}

static void real_apply(struct run *R, const struct q_cmd *cmd,
		       struct q_result *res)
{
	R->out.n = 0;
	R->out.ngone = 0;
	memset(res, 0, sizeof(*res));
	int rv = q_state_apply(R->s, cmd, res);
	if (rv != 0)
		fail(R, "q_state_apply returned %d (%s)", rv, q_strerror(rv));
}

static void setup_world(struct run *R)
{
	struct model *M = &R->M;
	memset(M, 0, sizeof(*M));
	M->now = 1000;
	for (int q = 0; q < NQ; q++) {
		M->q[q].set = world_settings(q, R->seed);
		M->q[q].topic = q >= QA ? TT : -1;
		cr_assert(M->q[q].set.ttl_ms == 0 || q >= QA,
			  "restriction: dead-letter targets have no ttl");
	}
	for (int q = 0; q < NQ; q++)
		M->q[q].dl = qindex(M->q[q].set.dead_letter);
	M->t[TT].window = 80;
	M->t[TT].subs[0] = QA;
	M->t[TT].subs[1] = QB;
	M->t[TT].nsubs = 2;
	M->t[TU].window = 50;

	struct q_cmd cmd;
	struct q_result res;
	for (int q = QW; q <= QD; q++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.type = Q_CMD_CREATE_QUEUE;
		cmd.now_ms = 1000;
		cmd.u.queue.name = qnames[q];
		cmd.u.queue.settings = M->q[q].set;
		real_apply(R, &cmd, &res);
		cr_assert_eq(res.status, Q_OK, "create %s: %d", qnames[q],
			     res.status);
	}
	for (int t = 0; t < NT; t++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.type = Q_CMD_CREATE_TOPIC;
		cmd.now_ms = 1000;
		cmd.u.topic.topic = tnames[t];
		cmd.u.topic.dedup_window_ms = M->t[t].window;
		real_apply(R, &cmd, &res);
		cr_assert_eq(res.status, Q_OK, "create topic %s: %d", tnames[t],
			     res.status);
		if (t != TT)
			continue;
		static const char *const subs[2] = {"a", "b"};
		for (int k = 0; k < 2; k++) {
			memset(&cmd, 0, sizeof(cmd));
			cmd.type = Q_CMD_SUBSCRIBE;
			cmd.now_ms = 1000;
			cmd.u.topic.topic = "t";
			cmd.u.topic.subscription = subs[k];
			cmd.u.topic.settings = M->q[QA + k].set;
			real_apply(R, &cmd, &res);
			cr_assert_eq(res.status, Q_OK, "subscribe t %s: %d",
				     subs[k], res.status);
		}
	}
}

/* --- the generator -------------------------------------------------- */

static uint64_t gen_now(struct run *R, bool tick)
{
	uint64_t now = R->M.now;
	struct rng *g = &R->rng;
	if (chance(g, 4)) /* backwards: must change nothing */
		return now - rnd(g, 60);
	if (tick) {
		uint32_t p = rnd(g, 100);
		return now + (p < 10   ? 0
			      : p < 80 ? rnd(g, 40)
				       : 40 + rnd(g, 120));
	}
	uint32_t p = rnd(g, 100);
	return now + (p < 70 ? 0 : p < 92 ? 1 + rnd(g, 5) : 6 + rnd(g, 25));
}

static int random_live_consumer(struct run *R)
{
	if (R->M.nc == 0)
		return -1;
	return (int)rnd(&R->rng, (uint32_t)R->M.nc);
}

/* A consumer id for a tag/credit/detach command: mostly live, sometimes gone
 * or never seen. Never 0 when there are live ones and the pick says live. */
static q_consumer_id gen_consumer_id(struct run *R)
{
	int ci = random_live_consumer(R);
	uint32_t p = rnd(&R->rng, 100);
	if (ci >= 0 && p < 88)
		return R->M.c[ci].id;
	if (p < 95 && R->M.cid > 0)
		return 1 + rnd(&R->rng,
			       (uint32_t)R->M.cid); /* may be live or gone */
	return R->M.cid + 50 + rnd(&R->rng, 5);
}

static void gen_tags(struct run *R, struct q_cmd *cmd, q_consumer_id cons,
		     bool live)
{
	struct model *M = &R->M;
	struct rng *g = &R->rng;
	size_t n = 0;
	for (size_t i = 0; i < M->nm && n < MAX_TAGS - 2; i++) {
		if (M->m[i].st == M_HELD && M->m[i].cons == cons &&
		    chance(g, 60))
			R->tags[n++] = M->m[i].seq;
	}
	/* shuffle: the tag order is the order the messages come back in */
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd(g, (uint32_t)i);
		q_seq t = R->tags[i - 1];
		R->tags[i - 1] = R->tags[j];
		R->tags[j] = t;
	}
	if (chance(g, 20) || (n == 0 && (!live || avoid(R, "empty-tags")))) {
		uint32_t p = rnd(g, 3);
		q_seq extra = M->seq + 100;
		if (p == 0 && n > 0) {
			extra = R->tags[0]; /* repeated tag: done once, then
					       unknown */
		} else if (p == 1) {
			for (size_t i = 0; i < M->nm; i++)
				if (M->m[i].st == M_HELD &&
				    M->m[i].cons != cons) {
					extra = M->m[i].seq; /* held by another
								consumer */
					break;
				}
		}
		R->tags[n++] = extra;
	}
	cmd->u.tags.consumer = cons;
	cmd->u.tags.tags = R->tags;
	cmd->u.tags.n_tags = n;
}

static void gen_body(struct run *R, struct q_cmd_publish *p, uint32_t len)
{
	uint8_t fill = (uint8_t)(++R->pubs % 251 + 1);
	memset(R->body, fill, len);
	p->body = R->body;
	p->body_len = len;
}

static void gen_id(struct run *R, struct q_cmd_publish *p, char space)
{
	snprintf(R->id, sizeof(R->id), "%c%u", space, rnd(&R->rng, 6));
	p->msg_id = R->id;
	p->msg_id_len = strlen(R->id);
}

static void gen_publish(struct run *R, struct q_cmd *cmd)
{
	struct rng *g = &R->rng;
	struct q_cmd_publish *p = &cmd->u.publish;
	uint32_t w = rnd(g, 100);
	bool with_id = chance(g, 40);
	cmd->type = Q_CMD_PUBLISH;
	if (w < 45) {
		p->queue = "work";
		if (chance(g, 25))
			p->delay_ms = 5 + rnd(g, 60);
		if (with_id)
			gen_id(R, p, 'w');
	} else if (w < 60) {
		p->queue = "dlq";
		if (!R->dlq_drop_head && chance(g, 20))
			p->delay_ms = 5 + rnd(g, 60);
		if (with_id)
			gen_id(R, p, 'd');
	} else if (w < 90) {
		p->topic = "t";
		if (with_id)
			gen_id(R, p, 't');
	} else if (w < 94) {
		p->topic = "u";
		if (with_id)
			gen_id(R, p, 'u');
	} else {
		/* one error at a time, no msg id */
		switch (rnd(g, 6)) {
		case 0:
			p->queue = "nope";
			break;
		case 1:
			p->queue = "t:a";
			break;
		case 2:
			p->topic = "nada";
			break;
		case 3:
			break; /* neither: EINVAL */
		case 4:
			p->queue = "work";
			p->topic = "t";
			break;
		default:
			p->queue = chance(g, 50) ? "work" : NULL;
			p->topic = p->queue ? NULL : "t";
			gen_body(R, p, 101 + rnd(g, 20)); /* over max_body */
			return;
		}
		gen_body(R, p, 1 + rnd(g, 16));
		return;
	}
	uint32_t len = 1 + rnd(g, 16);
	if (!with_id && chance(g, 4))
		len = 60 + rnd(g, 40); /* over t:a's max_bytes (64) sometimes */
	gen_body(R, p, len);
}

static void gen_command(struct run *R, struct q_cmd *cmd)
{
	struct model *M = &R->M;
	struct rng *g = &R->rng;
	memset(cmd, 0, sizeof(*cmd));
	uint32_t w = rnd(g, 1000);

	if (w < 330) {
		gen_publish(R, cmd);
	} else if (w < 460) {
		cmd->type = Q_CMD_TICK;
	} else if (w < 510) {
		cmd->type = Q_CMD_ATTACH;
		if (M->nc >= LIVE_CONS) {
			cmd->type = Q_CMD_TICK;
		} else {
			static const char *const aq[] = {"work", "work", "dlq",
							 "t:a"};
			uint32_t k = rnd(g, 40);
			cmd->u.attach.queue = k == 0 ? "nope" : aq[k % 4];
			cmd->u.attach.session = sessions[rnd(g, NSESS)];
			static const uint32_t pf[] = {1, 1, 2, 3, 0};
			cmd->u.attach.prefetch = pf[rnd(g, 5)];
			cmd->u.attach.credit =
				chance(g, 60) ? Q_CREDIT_UNLIMITED : rnd(g, 6);
		}
	} else if (w < 540) {
		cmd->type = Q_CMD_DETACH;
		cmd->u.consumer.consumer = gen_consumer_id(R);
	} else if (w < 590) {
		cmd->type = Q_CMD_CREDIT;
		cmd->u.consumer.consumer = gen_consumer_id(R);
		static const uint32_t pf[] = {1, 2, 3, 0};
		cmd->u.consumer.prefetch = pf[rnd(g, 4)];
		cmd->u.consumer.credit =
			chance(g, 50) ? Q_CREDIT_UNLIMITED : rnd(g, 6);
	} else if (w < 940) {
		static const uint8_t kinds[] = {
			Q_CMD_ACK,     Q_CMD_ACK,     Q_CMD_ACK,
			Q_CMD_ACK,     Q_CMD_NACK,    Q_CMD_NACK,
			Q_CMD_RELEASE, Q_CMD_RELEASE, Q_CMD_EXTEND,
		};
		cmd->type = kinds[rnd(g, sizeof(kinds))];
		q_consumer_id c = gen_consumer_id(R);
		bool live = cons_index(M, c) >= 0;
		gen_tags(R, cmd, c, live);
		if (cmd->type == Q_CMD_NACK && chance(g, 50)) {
			int ci = cons_index(M, c);
			if (!(R->dlq_drop_head && ci >= 0 &&
			      M->c[ci].q == QD) &&
			    !(ci >= 0 && M->q[M->c[ci].q].set.ttl_ms &&
			      avoid(R, "delay-ttl")))
				cmd->u.tags.ms = 5 + rnd(g, 40);
		}
		if (cmd->type == Q_CMD_EXTEND && chance(g, 70))
			cmd->u.tags.ms = 5 + rnd(g, 80);
		if (cmd->type == Q_CMD_RELEASE && chance(g, 50))
			cmd->u.tags.unseen = true;
	} else if (w < 955) {
		cmd->type = Q_CMD_SESSION_GONE;
		uint32_t k = rnd(g, NSESS + 1);
		if (k < NSESS)
			cmd->u.session.session = sessions[k];
		else
			cmd->u.session.session = (struct q_session){9, 9, 9};
	} else if (w < 962) {
		cmd->type = Q_CMD_DETACH_STALE;
		static const struct q_session st[] = {
			{1, 1, 0}, {1, 2, 0}, {2, 1, 0}};
		cmd->u.session.session = st[rnd(g, 3)];
	} else if (w < 975) {
		cmd->type = Q_CMD_PURGE_QUEUE;
		uint32_t k = rnd(g, 12);
		cmd->u.queue.name = k < 2    ? qnames[QW]
				    : k < 4  ? qnames[QD]
				    : k < 6  ? qnames[QA]
				    : k < 11 ? qnames[QB]
					     : "nope";
	} else if (w < 990) {
		/* idempotent retries and conflicting re-creates: no state
		 * change */
		uint32_t k = rnd(g, 3);
		bool differ = chance(g, 50);
		if (k == 0) {
			int q = chance(g, 50) ? QW : QD;
			cmd->type = Q_CMD_CREATE_QUEUE;
			cmd->u.queue.name = qnames[q];
			cmd->u.queue.settings = M->q[q].set;
			if (differ)
				cmd->u.queue.settings.max_length += 1;
		} else if (k == 1) {
			int sub = chance(g, 50);
			cmd->type = Q_CMD_SUBSCRIBE;
			cmd->u.topic.topic = "t";
			cmd->u.topic.subscription = sub ? "b" : "a";
			cmd->u.topic.settings = M->q[QA + sub].set;
			if (differ)
				cmd->u.topic.settings.ttl_ms += 1;
		} else {
			int t = chance(g, 50) ? TT : TU;
			cmd->type = Q_CMD_CREATE_TOPIC;
			cmd->u.topic.topic = tnames[t];
			cmd->u.topic.dedup_window_ms =
				M->t[t].window + (differ ? 1 : 0);
		}
	} else {
		cmd->type = Q_CMD_DELETE_QUEUE;
		cmd->u.queue.name = chance(g, 50) ? "t:a" : "nope";
	}
	cmd->now_ms = gen_now(R, cmd->type == Q_CMD_TICK);
}

/* --- comparison ----------------------------------------------------- */

static void compare_result(struct run *R, const struct q_cmd *cmd,
			   const struct q_result *want,
			   const struct q_result *got)
{
	if (want->status != got->status)
		fail(R, "status: model %d (%s), real %d (%s)", want->status,
		     q_strerror(want->status), got->status,
		     q_strerror(got->status));
	switch (cmd->type) {
	case Q_CMD_PUBLISH:
		if (want->status == Q_OK && (want->seq != got->seq ||
					     want->duplicate != got->duplicate))
			fail(R,
			     "publish: model seq %" PRIu64
			     " dup %d, real seq %" PRIu64 " dup %d",
			     want->seq, want->duplicate, got->seq,
			     got->duplicate);
		break;
	case Q_CMD_ATTACH:
		if (want->status == Q_OK && want->consumer != got->consumer)
			fail(R,
			     "attach: model consumer %" PRIu64
			     ", real %" PRIu64,
			     want->consumer, got->consumer);
		break;
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND:
		if (want->status == Q_OK || want->status == Q_EUNKNOWNTAG) {
			if (want->count != got->count ||
			    want->unknown != got->unknown)
				fail(R,
				     "tags: model count %" PRIu64
				     " unknown %" PRIu64 ", real count %" PRIu64
				     " unknown %" PRIu64,
				     want->count, want->unknown, got->count,
				     got->unknown);
		}
		break;
	case Q_CMD_DETACH:
	case Q_CMD_SESSION_GONE:
	case Q_CMD_DETACH_STALE:
	case Q_CMD_PURGE_QUEUE:
		if (want->status == Q_OK && want->count != got->count)
			fail(R, "count: model %" PRIu64 ", real %" PRIu64,
			     want->count, got->count);
		break;
	default:
		break;
	}
}

static const char *qn(int q)
{
	return q >= 0 && q < NQ ? qnames[q] : q == -1 ? "-" : "?";
}

static void compare_dlv(struct run *R, const struct dlv *w, const struct dlv *g)
{
	bool ok = w->cons == g->cons && w->seq == g->seq &&
		  w->dcount == g->dcount && w->reason == g->reason &&
		  w->dl_from == g->dl_from && w->id_len == g->id_len &&
		  memcmp(w->id, g->id, w->id_len) == 0 && w->len == g->len &&
		  w->fill == g->fill && g->body_ok &&
		  (w->reason != 0 || w->published_ms == g->published_ms);
	if (!ok)
		fail(R,
		     "delivery in %s: model c%" PRIu64 " seq %" PRIu64
		     " dcount %u "
		     "reason %u from %s id %.*s len %u fill %u pub %" PRIu64
		     "; real c%" PRIu64 " seq %" PRIu64
		     " dcount %u reason %u from %s id %.*s len %u "
		     "fill %u%s pub %" PRIu64,
		     qn(w->q), w->cons, w->seq, w->dcount, w->reason,
		     qn(w->dl_from), (int)w->id_len, w->id, w->len, w->fill,
		     w->published_ms, g->cons, g->seq, g->dcount, g->reason,
		     qn(g->dl_from), g->id_len == SIZE_MAX ? 3 : (int)g->id_len,
		     g->id_len == SIZE_MAX ? "???" : g->id, g->len, g->fill,
		     g->body_ok ? "" : " (mixed body)", g->published_ms);
}

/* Deliveries are compared per queue, in order; the interleaving between
 * queues within one command is not specified by q.h. */
static void compare_deliveries(struct run *R)
{
	struct model *M = &R->M;
	if (M->overflowed || R->out.overflowed)
		fail(R, "harness: too many messages or deliveries in one step");
	/* consumer_gone: q.h names "queue deleted, session gone"; a DETACH is
	 * the client's own request. DETACH_STALE is left open. */
	if (R->cmd_type == Q_CMD_DETACH && R->out.ngone != 0)
		fail(R, "DETACH reported %zu consumer_gone events",
		     R->out.ngone);
	if (R->cmd_type == Q_CMD_SESSION_GONE) {
		bool same = M->ngone == R->out.ngone;
		for (size_t i = 0; same && i < M->ngone; i++)
			same = M->gone[i] == R->out.gone[i];
		if (!same)
			fail(R,
			     "SESSION_GONE: model removed %zu consumers (first "
			     "c%" PRIu64
			     "), real reported %zu consumer_gone (first "
			     "c%" PRIu64 ")",
			     M->ngone, M->ngone ? M->gone[0] : 0, R->out.ngone,
			     R->out.ngone ? R->out.gone[0] : 0);
	}
	if (M->nout != R->out.n) {
		char buf[256];
		int n = 0;
		for (size_t i = 0; i < R->out.n && n < 200; i++)
			n += snprintf(buf + n, sizeof(buf) - (size_t)n,
				      " %s/%" PRIu64 "->c%" PRIu64,
				      qn(R->out.d[i].q), R->out.d[i].seq,
				      R->out.d[i].cons);
		buf[n < 0 ? 0 : n > 255 ? 255 : n] = 0;
		char buf2[256];
		int n2 = 0;
		for (size_t i = 0; i < M->nout && n2 < 200; i++)
			n2 += snprintf(buf2 + n2, sizeof(buf2) - (size_t)n2,
				       " %s/%" PRIu64 "->c%" PRIu64,
				       qn(M->out[i].q), M->out[i].seq,
				       M->out[i].cons);
		buf2[n2 < 0 ? 0 : n2 > 255 ? 255 : n2] = 0;
		fail(R, "deliveries: model %zu [%s ], real %zu [%s ]", M->nout,
		     buf2, R->out.n, buf);
	}
	for (int q = -2; q < NQ; q++) {
		size_t i = 0, j = 0;
		for (;;) {
			while (i < M->nout && M->out[i].q != q)
				i++;
			while (j < R->out.n && R->out.d[j].q != q)
				j++;
			if (i == M->nout && j == R->out.n)
				break;
			if (i == M->nout || j == R->out.n)
				fail(R,
				     "deliveries in %s: model has %s, real has "
				     "%s",
				     qn(q), i < M->nout ? "more" : "fewer",
				     j < R->out.n ? "more" : "fewer");
			compare_dlv(R, &M->out[i], &R->out.d[j]);
			i++;
			j++;
		}
	}
}

#define CMP(field, want, got)                                                 \
	do {                                                                  \
		if ((uint64_t)(want) != (uint64_t)(got))                      \
			fail(R, "%s %s: model %" PRIu64 ", real %" PRIu64,    \
			     what, field, (uint64_t)(want), (uint64_t)(got)); \
	} while (0)

struct cons_list {
	struct q_consumer_info c[MAX_CONS * 2];
	size_t n;
	bool overflowed;
};

static int collect_consumer(void *data, const struct q_consumer_info *info)
{
	struct cons_list *l = data;
	if (l->n == MAX_CONS * 2) {
		l->overflowed = true;
		return 0;
	}
	l->c[l->n] = *info;
	l->c[l->n].queue = NULL; /* borrowed: keep our own name instead */
	if (qindex(info->queue) >= 0)
		l->c[l->n].queue = qnames[qindex(info->queue)];
	l->n++;
	return 0;
}

struct topic_list {
	struct q_topic_info t[NT + 2];
	size_t n;
};

static int collect_topic(void *data, const struct q_topic_info *info)
{
	struct topic_list *l = data;
	if (l->n < NT + 2)
		l->t[l->n] = *info;
	l->n++;
	return 0;
}

static void compare_state(struct run *R)
{
	struct model *M = &R->M;
	const char *what;

	what = "state";
	CMP("clock", M->now, q_state_now(R->s));
	uint64_t due = q_state_next_due(R->s);
	if (due > model_next_due(M))
		fail(R,
		     "next_due: real %" PRIu64
		     " later than the model's earliest "
		     "timer %" PRIu64,
		     due, model_next_due(M));

	for (int q = 0; q < NQ; q++) {
		struct q_queue_info in;
		what = qnames[q];
		int rc = q_state_queue_info(R->s, qnames[q], &in);
		if (rc != 0)
			fail(R, "queue_info(%s) = %d", qnames[q], rc);
		uint64_t ready = 0, unacked = 0, delayed = 0, cons = 0;
		for (size_t i = 0; i < M->nm; i++) {
			if (M->m[i].q != q)
				continue;
			switch (M->m[i].st) {
			case M_READY:
			case M_RETURNED:
				ready++;
				break;
			case M_DELAYED:
				delayed++;
				break;
			default:
				unacked++;
				break;
			}
		}
		for (size_t i = 0; i < M->nc; i++)
			if (M->c[i].q == q)
				cons++;
		const struct ctr *c = &M->q[q].c;
		CMP("ready", ready, in.ready);
		CMP("unacked", unacked, in.unacked);
		CMP("delayed", delayed, in.delayed);
		CMP("bytes", q_bytes(M, q), in.bytes);
		CMP("consumers", cons, in.consumers);
		CMP("published", c->published, in.published);
		CMP("delivered", c->delivered, in.delivered);
		CMP("redelivered", c->redelivered, in.redelivered);
		CMP("acked", c->acked, in.acked);
		CMP("nacked", c->nacked, in.nacked);
		CMP("released", c->released, in.released);
		CMP("dead_lettered", c->dead_lettered, in.dead_lettered);
		CMP("expired", c->expired, in.expired);
		CMP("deduplicated", c->deduplicated, in.deduplicated);
		CMP("dropped", c->dropped, in.dropped);
		CMP("rejected", c->rejected, in.rejected);
	}

	struct cons_list cl;
	memset(&cl, 0, sizeof(cl));
	q_state_foreach_consumer(R->s, collect_consumer, &cl);
	what = "consumers";
	CMP("count", M->nc, cl.n);
	for (size_t i = 0; i < M->nc; i++) {
		const struct mcons *mc = &M->c[i];
		const struct q_consumer_info *rc = NULL;
		for (size_t k = 0; k < cl.n; k++)
			if (cl.c[k].id == mc->id)
				rc = &cl.c[k];
		if (rc == NULL)
			fail(R,
			     "consumer c%" PRIu64 " missing in the real state",
			     mc->id);
		char w[32];
		snprintf(w, sizeof(w), "consumer c%" PRIu64, mc->id);
		what = w;
		if (rc->queue != qnames[mc->q])
			fail(R, "%s: queue model %s real %s", w, qnames[mc->q],
			     rc->queue ? rc->queue : "?");
		if (!same_session(&rc->session, &mc->sess))
			fail(R, "%s: session differs", w);
		CMP("prefetch", mc->prefetch, rc->prefetch);
		CMP("credit", mc->credit, rc->credit);
		CMP("unacked", held_by(M, mc->id), rc->unacked);
	}

	struct topic_list tl;
	memset(&tl, 0, sizeof(tl));
	q_state_foreach_topic(R->s, collect_topic, &tl);
	what = "topics";
	CMP("count", NT, tl.n);
	for (int t = 0; t < NT; t++) {
		const struct q_topic_info *ti = NULL;
		for (size_t k = 0; k < tl.n && k < NT + 2; k++)
			if (strcmp(tl.t[k].name, tnames[t]) == 0)
				ti = &tl.t[k];
		if (ti == NULL)
			fail(R, "topic %s missing", tnames[t]);
		what = tnames[t];
		CMP("subscriptions", M->t[t].nsubs, ti->subscriptions);
		CMP("published", M->t[t].published, ti->published);
		CMP("deduplicated", M->t[t].deduplicated, ti->deduplicated);
		CMP("dedup_window", M->t[t].window, ti->dedup_window_ms);
	}

	struct q_totals tot;
	q_state_totals(R->s, &tot);
	what = "totals";
	CMP("queues", NQ, tot.queues);
	CMP("topics", NT, tot.topics);
	CMP("consumers", M->nc, tot.consumers);
	CMP("messages", M->nm, tot.messages);

	char err[256] = "";
	if (q_state_check(R->s, err, sizeof(err)) != 0)
		fail(R, "q_state_check: %s", err);
	if (R->store && !fb_check(&R->fbs[R->cur], R->s, err, sizeof(err)))
		fail(R, "body store: %s", err);
}

static void dump_load(struct run *R)
{
	void *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int rc = q_state_dump_buf(R->s, &a, &alen);
	if (rc != 0)
		fail(R, "dump: %d", rc);
	struct q_options o = R->opts;
	struct fb_state *fb2 = &R->fbs[1 - R->cur];
	o.hash_seed = rng_next(&R->rng); /* must not change anything */
	if (R->store) {
		fb_init(fb2);
		o.bodies = &fb2->vt;
	}
	struct q_state *s2 = q_state_new(&o);
	cr_assert_not_null(s2);
	rc = q_state_load(s2, a, alen);
	if (rc != 0) {
		free(a);
		fail(R, "load: %d (%s): %s", rc, q_strerror(rc),
		     q_state_load_error(s2));
	}
	char err[256] = "";
	if (q_state_check(s2, err, sizeof(err)) != 0) {
		free(a);
		fail(R, "q_state_check after load: %s", err);
	}
	if (R->store && !fb_check(fb2, s2, err, sizeof(err))) {
		free(a);
		fail(R, "body store after load: %s", err);
	}
	rc = q_state_dump_buf(s2, &b, &blen);
	bool same = rc == 0 && alen == blen && memcmp(a, b, alen) == 0;
	free(a);
	free(b);
	if (!same) {
		q_state_free(s2);
		fail(R,
		     "dump -> load -> dump differs (%zu vs %zu bytes, rc %d)",
		     alen, blen, rc);
	}
	if (chance(&R->rng, 50)) {
		q_state_free(R->s);
		if (R->store) {
			fb_fini(&R->fbs[R->cur]);
			R->cur = 1 - R->cur;
		}
		R->s = s2;
		R->n_loads++;
		q_state_set_sink(R->s, &R->sink);
		R->opts = o;
	} else {
		q_state_free(s2);
		if (R->store)
			fb_fini(fb2);
	}
}

/* TEST_MODEL_TRACE=<n>: from step n-1 on, print every command, the real
 * result and deliveries, and the model's queues. */
static void trace_step(struct run *R, const struct q_result *got)
{
	int slot = (int)(R->step % RING);
	fprintf(stderr,
		"%6ld %s -> status %d seq %" PRIu64 " dup %d count %" PRIu64
		" unknown %" PRIu64 "\n",
		R->step, R->ring[slot], got->status, got->seq, got->duplicate,
		got->count, got->unknown);
	for (size_t i = 0; i < R->out.n; i++)
		fprintf(stderr,
			"    real %s/%" PRIu64 " -> c%" PRIu64 " d%u r%u\n",
			qn(R->out.d[i].q), R->out.d[i].seq, R->out.d[i].cons,
			R->out.d[i].dcount, R->out.d[i].reason);
	for (size_t i = 0; i < R->M.nout; i++)
		fprintf(stderr,
			"    model %s/%" PRIu64 " -> c%" PRIu64 " d%u r%u\n",
			qn(R->M.out[i].q), R->M.out[i].seq, R->M.out[i].cons,
			R->M.out[i].dcount, R->M.out[i].reason);
	dump_model(&R->M);
}

static long env_long(const char *name, long dflt)
{
	const char *e = getenv(name);
	if (e == NULL || *e == 0)
		return dflt;
	char *end;
	long v = strtol(e, &end, 0);
	return *end == 0 && v > 0 ? v : dflt;
}

static void print_stats(const struct run *R)
{
	uint64_t dl = 0, ex = 0, dr = 0, rj = 0, dd = 0, nk = 0;
	for (int q = 0; q < NQ; q++) {
		dl += R->M.q[q].c.dead_lettered;
		ex += R->M.q[q].c.expired;
		dr += R->M.q[q].c.dropped;
		rj += R->M.q[q].c.rejected;
		dd += R->M.q[q].c.deduplicated;
		nk += R->M.q[q].c.nacked;
	}
	fprintf(stderr,
		"queue model: seed=%" PRIu64 " done: deliveries %" PRIu64
		" (redeliveries %" PRIu64
		", of dead-lettered copies: max_deliveries %" PRIu64
		" expired %" PRIu64 " overflow %" PRIu64 "), nacked %" PRIu64
		", dead-lettered %" PRIu64 ", expired %" PRIu64
		", dropped %" PRIu64 ", rejected %" PRIu64
		", duplicates %" PRIu64 " (queues %" PRIu64
		"), unknown-tag results %" PRIu64 ", EINVAL %" PRIu64
		", ENOTFOUND %" PRIu64 ", ETOOBIG %" PRIu64 ", EEXIST %" PRIu64
		", backwards stamps %" PRIu64 ", loads %" PRIu64
		", consumer ids %" PRIu64 ", seqs %" PRIu64 "\n",
		R->seed, R->n_dlv, R->n_redlv, R->n_dlv_reason[1],
		R->n_dlv_reason[2], R->n_dlv_reason[3], nk, dl, ex, dr, rj,
		R->n_dup, dd, R->n_status[Q_EUNKNOWNTAG], R->n_status[Q_EINVAL],
		R->n_status[Q_ENOTFOUND], R->n_status[Q_ETOOBIG],
		R->n_status[Q_EEXIST], R->n_backwards, R->n_loads, R->M.cid,
		R->M.seq);
}

static void run_model(uint64_t seed, bool store)
{
	long steps = env_long("TEST_STEPS", 25000);
	long trace = env_long("TEST_MODEL_TRACE", 0);
	struct run *R = calloc(1, sizeof(*R));
	cr_assert_not_null(R);
	R->seed = seed;
	for (int i = 0; i < RING; i++)
		R->ring_step[i] = -1;
	fprintf(stderr, "queue model: seed=%" PRIu64 " steps=%ld bodies %s\n",
		seed, steps, store ? "in the fake store" : "in memory");
	rng_seed(&R->rng, seed);
	R->dlq_drop_head = (seed & 1) != 0;
	R->avoid = getenv("TEST_MODEL_AVOID");
	R->opts.allocator = NULL;
	R->opts.hash_seed = seed * 31 + 7;
	R->opts.max_body = 100;
	R->store = store;
	if (store) {
		fb_init(&R->fbs[0]);
		R->opts.bodies = &R->fbs[0].vt;
	}
	R->s = q_state_new(&R->opts);
	cr_assert_not_null(R->s);
	R->sink.data = &R->out;
	R->sink.deliver = sink_deliver;
	R->sink.consumer_gone = sink_gone;
	q_state_set_sink(R->s, &R->sink);
	R->step = -1;
	setup_world(R);

	for (R->step = 0; R->step < steps; R->step++) {
		struct q_cmd cmd;
		struct q_result want, got;
		gen_command(R, &cmd);
		int slot = (int)(R->step % RING);
		describe(&cmd, R->ring[slot], sizeof(R->ring[slot]));
		R->ring_step[slot] = R->step;

		R->cmd_type = cmd.type;
		real_apply(R, &cmd, &got);
		model_apply(&R->M, &cmd, R->opts.max_body, &want);
		if (trace && R->step >= trace - 1)
			trace_step(R, &got);
		compare_result(R, &cmd, &want, &got);
		compare_deliveries(R);
		if (got.status >= 0 && got.status < Q_ECODES_COUNT)
			R->n_status[got.status]++;
		R->n_type[cmd.type]++;
		R->n_dup += got.duplicate;
		R->n_backwards += cmd.now_ms < R->M.now;
		for (size_t i = 0; i < R->out.n; i++) {
			R->n_dlv++;
			R->n_redlv += R->out.d[i].dcount > 1;
			R->n_dlv_reason[R->out.d[i].reason & 3]++;
		}
		compare_state(R);
		if (R->step % 1000 == 999)
			dump_load(R);
	}
	print_stats(R);
	q_state_free(R->s);
	if (store) {
		fb_fini(&R->fbs[R->cur]);
		cr_assert_eq(fb_store_count(), 0, "bodies left in the store");
	}
	free(R);
}

/* Fixed seeds; odd seeds run dlq as drop-head, seed % 4 < 2 dead-letters t:b
 * into dlq (else into a queue that does not exist). */
static struct criterion_test_params model_seeds(void)
{
	static uint64_t seeds[] = {
		1, 2, 3, 4, 146, 0x5eed5eedull, 20240607ull, 0xdeadbeefull};
	const char *e = getenv("TEST_SEED");
	if (e != NULL && *e != 0) {
		seeds[0] = strtoull(e, NULL, 0);
		return cr_make_param_array(uint64_t, seeds, 1);
	}
	return cr_make_param_array(uint64_t, seeds,
				   sizeof(seeds) / sizeof(seeds[0]));
}

ParameterizedTestParameters(queue_model, seeds)
{
	return model_seeds();
}

ParameterizedTest(uint64_t *seed, queue_model, seeds, .timeout = 120)
{
	run_model(*seed, false);
}

ParameterizedTestParameters(queue_model, seeds_store)
{
	return model_seeds();
}

ParameterizedTest(uint64_t *seed, queue_model, seeds_store, .timeout = 120)
{
	run_model(*seed, true);
}
