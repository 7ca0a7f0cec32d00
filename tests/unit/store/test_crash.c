/* store/: kill -9 at random points. A child process puts (in order and
 * below the highest key), drops, claims again, marks, gcs (compactions
 * included) and syncs in a loop over small segments, recording what it did
 * in shared memory, and is killed with SIGKILL: by the parent after a
 * random delay, or by the store's test hook at its Nth write or sync. The
 * parent reopens the store and checks:
 *   - nothing is reported corrupt (a torn tail, or a segment file created
 *     without its header yet, is fine) and every record the store has
 *     reads back exactly;
 *   - every record put before the last completed store_sync() is there,
 *     unless it was dropped before a mark that gc was called with;
 *   - a record dropped after the highest token given to gc is there (gc
 *     never removed a record dropped after its token).
 * A process crash keeps the page cache, so the test holds records put
 * after the last sync to the same rule (they are on the disk too); only a
 * machine crash could lose them, which this test cannot make.
 * Each iteration runs 3 rounds on one directory (a store recovered from a
 * crash crashes again). Seeds are printed; TEST_SEED=<n> replays one
 * iteration's seed, STORE_CRASH_ITERS=<n> runs more iterations. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(crash, .init = ts_setup, .fini = ts_teardown);

#define MAXKEY 40000u
#define OPS 4000u

enum { K_NONE, K_INFLIGHT, K_LIVE, K_DROPPED, K_GARBAGE };

struct kstate {
	uint8_t st;	     /* K_* */
	uint32_t len;	     /* body length */
	uint32_t put_seq;    /* order of its put in this round (1-based) */
	uint64_t drop_marks; /* marks taken when it was dropped */
};

/* Shared between the parent and the child of one iteration. */
struct shared {
	volatile uint32_t nput;	  /* puts completed this round */
	volatile uint32_t synced; /* nput when the last sync completed */
	volatile uint64_t marks;  /* store_mark() calls this round */
	volatile uint64_t gc_max; /* highest token passed to gc */
	volatile uint64_t next_main;
	volatile uint64_t head; /* lowest key that may be live */
	volatile uint32_t child_errors;
	char why[256];
	struct kstate k[MAXKEY];
};

static struct shared *sh;

static void child_fail(const char *what, uint64_t key, int rv)
{
	snprintf(sh->why, sizeof sh->why, "%s %" PRIu64 ": %s (%s)", what, key,
		 store_strerror(rv), T.s ? store_errmsg(T.s) : "");
	sh->child_errors++;
	_exit(3);
}

/* A random key with state st (or 0). */
static uint64_t pick(uint64_t *rnd, uint8_t st)
{
	for (int tries = 0; tries < 50; tries++) {
		uint64_t k = 1 + ts_rand(rnd) % (MAXKEY - 1);
		if (sh->k[k].st == st) {
			return k;
		}
	}
	return 0;
}

static void child_put(uint64_t key, size_t len)
{
	int rv;
	sh->k[key].len = (uint32_t)len;
	sh->k[key].st = K_INFLIGHT; /* before: it may be on disk when killed */
	rv = ts_try_put(key, len);
	if (rv != 0) {
		child_fail("put", key, rv);
	}
	sh->k[key].put_seq = ++sh->nput;
	sh->k[key].st = K_LIVE;
}

static void child(uint64_t seed)
{
	uint64_t rnd = seed, token = 0;
	struct store_rec r;

	/* Never outlive the test (a failed test must not leave it behind). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	ts_open();
	for (uint64_t k = 1; k < MAXKEY; k++) {
		if (sh->k[k].st == K_LIVE && store_claim(T.s, k) != 0) {
			child_fail("claim", k, STORE_ENOMEM);
		}
	}
	for (unsigned op = 0; op < OPS; op++) {
		unsigned x = (unsigned)(ts_rand(&rnd) % 100);
		uint64_t k;
		int rv;

		if (x < 45) { /* in order */
			if (sh->next_main + 2 >= MAXKEY) {
				continue;
			}
			k = sh->next_main;
			sh->next_main = k + 2;
			child_put(k, ts_rand(&rnd) % 8 == 0
					     ? 3000 + ts_rand(&rnd) % 9000
					     : ts_rand(&rnd) % 600);
		} else if (x < 53) { /* below: the fill stream */
			k = pick(&rnd, K_NONE);
			if (k != 0 && k < sh->next_main && k % 2 == 1) {
				child_put(k, ts_rand(&rnd) % 400);
			}
		} else if (x < 68) {
			/* Mostly the oldest live key, as consumers ack the
			 * head of a queue (whole segments die); else any. */
			k = 0;
			if (ts_rand(&rnd) % 4 != 0) {
				while (sh->head < sh->next_main &&
				       sh->k[sh->head].st != K_LIVE) {
					sh->head++;
				}
				if (sh->head < sh->next_main) {
					k = sh->head;
				}
			} else {
				k = pick(&rnd, K_LIVE);
			}
			if (k != 0) {
				sh->k[k].drop_marks = sh->marks;
				sh->k[k].st = K_DROPPED;
				store_drop(T.s, k);
			}
		} else if (x < 71) {
			/* Claimed again: only if no gc may have taken it. */
			k = pick(&rnd, K_DROPPED);
			if (k != 0 && sh->k[k].drop_marks >= sh->gc_max) {
				if (store_claim(T.s, k) != 0) {
					child_fail("claim", k, STORE_ENOMEM);
				}
				sh->k[k].st = K_LIVE;
			}
		} else if (x < 75) {
			token = store_mark(T.s);
			sh->marks = token; /* tokens count marks from 1 */
		} else if (x < 83) {
			if (token == 0) {
				continue;
			}
			if (token > sh->gc_max) {
				sh->gc_max = token; /* before: gc may be cut */
			}
			for (int i = 0; i < 8; i++) {
				rv = store_gc(T.s, token,
					      1 + ts_rand(&rnd) % 65536);
				if (rv < 0) {
					child_fail("gc", token, -rv);
				}
				if (rv == 0) {
					break;
				}
			}
		} else if (x < 90) {
			uint32_t n = sh->nput;
			rv = store_sync(T.s);
			if (rv != 0) {
				child_fail("sync", 0, rv);
			}
			sh->synced = n;
		} else {
			k = pick(&rnd, K_LIVE);
			if (k != 0 && (rv = store_get(T.s, k, &r)) != 0) {
				child_fail("get", k, rv);
			}
			if (k != 0) {
				ts_expect(k, sh->k[k].len);
			}
		}
	}
	/* Out of work: the crash comes now if the hook was to make it, else
	 * with the parent's timer. */
	if (T.fault.armed) {
		raise(SIGKILL);
	}
	for (;;) {
		pause();
	}
}

/* Reopens after the kill and checks; then turns the model into the next
 * round's starting point (what is live is claimed by the next child). */
static void verify(uint64_t seed, unsigned round)
{
	uint64_t present = 0, required = 0;

	ts_clear_reports();
	ts_open();
	/* What an interrupted write leaves: a partial record, or a segment
	 * created without its header yet. */
	for (size_t i = 0; i < T.nreports; i++) {
		cr_assert(strstr(T.reports[i], "torn tail") != NULL ||
				  strstr(T.reports[i],
					 "shorter than its header") != NULL,
			  "seed %" PRIu64 " round %u: %s", seed, round,
			  T.reports[i]);
	}
	for (uint64_t k = 1; k < MAXKEY; k++) {
		struct kstate *ks = &sh->k[k];
		bool has = store_has(T.s, k), must;

		if (ks->st == K_NONE) {
			cr_assert_not(has,
				      "seed %" PRIu64 ": key %" PRIu64
				      " never put",
				      seed, k);
			continue;
		}
		must = ks->st == K_LIVE ||
		       (ks->st == K_DROPPED && ks->drop_marks >= sh->gc_max);
		if (must) {
			required++;
			cr_assert(has,
				  "seed %" PRIu64 " round %u: key %" PRIu64
				  " lost (state %u, put %u of %u, synced %u, "
				  "dropped at mark %" PRIu64
				  ", gc token %" PRIu64 ")",
				  seed, round, k, ks->st, ks->put_seq, sh->nput,
				  sh->synced, ks->drop_marks, sh->gc_max);
		}
		if (has) {
			present++;
			ts_expect(k, ks->len);
		}
		/* Next round: what is there and live stays live; anything
		 * else is garbage (never claimed, never reused). */
		if (ks->st == K_LIVE && has) {
			ks->put_seq = 0;
		} else {
			ks->st = K_GARBAGE;
		}
	}
	cr_assert(required <= present);
	ts_close();
	sh->nput = sh->synced = 0;
	sh->marks = sh->gc_max = 0;
	sh->head = 1;
}

Test(crash, kill_9_at_random_points)
{
	const char *e = getenv("STORE_CRASH_ITERS");
	unsigned iters = e != NULL ? (unsigned)strtoul(e, NULL, 0) : 25;
	uint64_t base = ts_seed((uint64_t)time(NULL));
	unsigned hook_kills = 0, timer_kills = 0;

	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert(sh != MAP_FAILED);
	T.segment_bytes = 16 * 1024;
	for (unsigned it = 0; it < iters; it++) {
		uint64_t seed = getenv("TEST_SEED") && it == 0
					? base
					: base + it * 1000003;
		memset(sh, 0, sizeof *sh);
		sh->next_main = 2;
		sh->head = 1;
		ts_rm_rf(T.dir);
		cr_assert_eq(mkdir(T.dir, 0755), 0);
		fprintf(stderr, "crash iteration %u: seed %" PRIu64 "\n", it,
			seed);
		for (unsigned round = 0; round < 3; round++) {
			uint64_t rnd = seed + round;
			bool by_hook = ts_rand(&rnd) % 2 == 0;
			int status;
			pid_t pid;

			T.fault = (struct ts_fault){
				.armed = by_hook,
				.skip = (unsigned)(ts_rand(&rnd) % 3000),
				.err = 0};
			pid = fork();
			cr_assert(pid >= 0);
			if (pid == 0) {
				child(rnd);
			}
			if (!by_hook) {
				struct timespec ts = {
					0, (long)(1 + ts_rand(&rnd) % 60) *
						   1000000L};
				nanosleep(&ts, NULL);
				kill(pid, SIGKILL);
			}
			cr_assert_eq(waitpid(pid, &status, 0), pid);
			cr_assert(WIFSIGNALED(status) &&
					  WTERMSIG(status) == SIGKILL,
				  "seed %" PRIu64
				  " round %u: the child "
				  "failed: %s",
				  seed, round, sh->why);
			if (by_hook) {
				hook_kills++;
			} else {
				timer_kills++;
			}
			T.fault.armed = false;
			verify(seed, round);
		}
	}
	fprintf(stderr, "%u kills by the I/O hook, %u by a timer\n", hook_kills,
		timer_kills);
	munmap(sh, sizeof *sh);
}
