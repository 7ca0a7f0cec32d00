/* q_bench: micro-benchmark of the queue/ state machine, through q.h only.
 *
 * 1. Cycles: one queue, one push consumer (prefetch 256, unlimited credit,
 *    attached first), then a loop of publish(128 B) -> delivery through the
 *    sink -> ack. Two modes: acks batched (every delivered tag in one
 *    Q_CMD_ACK per 64 cycles) and one ack per cycle. Reports the median of
 *    `--runs` runs of `--seconds` each, in cycles per second.
 * 2. Memory: publishes `--count` messages into a queue with no consumer and
 *    reports the bytes per stored message seen by malloc (mallinfo2, its
 *    headers included) and by the state's own accounting (q_state_totals),
 *    the overhead over the body, and the publish rate of the fill. Three
 *    runs: 128 B bodies in memory without message ids, the same with 16-byte
 *    dedup ids (all inside the dedup window, so every id is kept), and
 *    1 KiB bodies in a body store (struct q_bodies): a fake one that keeps
 *    nothing and answers every put at once, so that only the state's own
 *    memory and work are measured; and 1 KiB bodies in that store with
 *    16-byte dedup ids.
 * 3. Snapshot: times q_state_dump() of each state to a writer that keeps
 *    nothing (as a node's snapshot goes to a file), and q_state_load() of
 *    that dump twice: into fresh memory from the system (the first state
 *    still allocated), as a restarted node loads, and again into the
 *    memory of the states just freed (the load's own work, without the
 *    system's page faults). Wall clock and the process's CPU time. Checks
 *    that dump(load(dump)) gives the same bytes.
 *
 * --store-only runs only the two body-store states (dump format 2, what a
 * node's snapshot is), skipping the cycles and the in-memory states: with
 * --count 10000000 it measures the load of a node restarted at 10 M
 * messages. --queues K spreads the publishes over K queues (round robin).
 *
 * The clock here is only for measuring (bench/ is not queue/): the commands
 * carry a fixed now_ms, so no timer fires during the run.
 *
 * Usage: q_bench [--seconds S] [--runs R] [--count N] [--queues K]
 *                [--store-only] [--json]
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "q.h"

#define BODY_SIZE 128
#define STORE_BODY_SIZE 1024 /* bodies in the fake body store */
#define PREFETCH 256
#define ACK_BATCH 64
#define ID_SIZE 16
#define NOW_MS 1000000u
#define MAX_RUNS 15

struct opts {
	double seconds; /* per run */
	int runs;
	uint64_t count;	 /* messages for the memory test */
	uint64_t queues; /* the memory test's messages spread over these */
	bool store_only; /* only the body-store states, no cycles */
	bool json;
};

struct cycle_result {
	double median; /* cycles per second */
	double min, max;
	uint64_t cycles; /* of the median run */
};

struct timing {
	double s, cpu_s;
};

struct mem_result {
	bool with_ids;
	bool store;		/* bodies in the fake body store */
	size_t body_size;	/* bytes per body */
	double malloc_per_msg;	/* mallinfo2 delta / N */
	double state_per_msg;	/* q_state_totals().alloc_bytes delta / N */
	double loaded_per_msg;	/* the same for the state loaded from it */
	double malloc_overhead; /* minus the body when it is in memory */
	double state_overhead;
	double publish_per_s; /* of the fill */
	uint64_t dump_bytes;
	/* Wall clock and CPU time of the process, in seconds. */
	struct timing dump;   /* to a writer that keeps nothing */
	struct timing load;   /* into fresh memory */
	struct timing reload; /* into memory freed by other states */
	bool roundtrip_identical;
};

#define N_MEM 4

/* Delivered tags not yet acked, filled by the sink. */
struct pending {
	q_seq tags[PREFETCH];
	size_t n;
	uint64_t delivered;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time: on a machine shared with other work it moves less than the wall
 * clock (the two are equal when the process has a core to itself). */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_used(void)
{
#if defined(__GLIBC__) && \
	(__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	/* Small chunks come from the heap, big ones (large tables) are
	 * mmap()ed: count both. */
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

static void die(const char *what, int code)
{
	fprintf(stderr, "q_bench: %s: %s (%d)\n", what, q_strerror(code), code);
	exit(1);
}

/* Applies a command that must be accepted. */
static void apply_ok(struct q_state *s, const struct q_cmd *cmd,
		     struct q_result *res, const char *what)
{
	int rv = q_state_apply(s, cmd, res);
	if (rv != 0) {
		die(what, rv);
	}
	if (res->status != Q_OK) {
		die(what, res->status);
	}
}

static void on_deliver(void *data, const struct q_delivery *d)
{
	struct pending *p = data;
	if (p->n == PREFETCH) {
		fprintf(stderr, "q_bench: more than prefetch (%d) unacked\n",
			PREFETCH);
		exit(1);
	}
	p->tags[p->n++] = d->seq;
	p->delivered++;
}

static struct q_state *new_state_with_queue(const char *name,
					    const struct q_options *qo)
{
	struct q_state *s = q_state_new(qo);
	struct q_cmd cmd;
	struct q_result res;

	if (s == NULL) {
		die("q_state_new", Q_ENOMEM);
	}
	memset(&cmd, 0, sizeof cmd);
	cmd.type = Q_CMD_CREATE_QUEUE;
	cmd.now_ms = NOW_MS;
	cmd.u.queue.name = name;
	q_settings_default(&cmd.u.queue.settings);
	apply_ok(s, &cmd, &res, "create queue");
	return s;
}

/* One timed run: cycles per second. */
static double cycle_run(double seconds, size_t ack_every, uint64_t *cycles_out)
{
	static const char body[BODY_SIZE] = {0};
	struct pending p = {0};
	struct q_sink sink = {.data = &p, .deliver = on_deliver};
	struct q_state *s = new_state_with_queue("bench", NULL);
	struct q_cmd pub, ack, att;
	struct q_result res;
	q_consumer_id consumer;
	uint64_t cycles = 0;
	double t0, t1;

	q_state_set_sink(s, &sink);

	memset(&att, 0, sizeof att);
	att.type = Q_CMD_ATTACH;
	att.now_ms = NOW_MS;
	att.u.attach.queue = "bench";
	att.u.attach.session = (struct q_session){1, 1, 1};
	att.u.attach.prefetch = PREFETCH;
	att.u.attach.credit = Q_CREDIT_UNLIMITED;
	apply_ok(s, &att, &res, "attach");
	consumer = res.consumer;

	memset(&pub, 0, sizeof pub);
	pub.type = Q_CMD_PUBLISH;
	pub.now_ms = NOW_MS;
	pub.u.publish.queue = "bench";
	pub.u.publish.body = body;
	pub.u.publish.body_len = sizeof body;

	memset(&ack, 0, sizeof ack);
	ack.type = Q_CMD_ACK;
	ack.now_ms = NOW_MS;
	ack.u.tags.consumer = consumer;
	ack.u.tags.tags = p.tags;

	t0 = now_s();
	t1 = t0;
	for (;;) {
		apply_ok(s, &pub, &res, "publish");
		cycles++;
		if (p.n >= ack_every) {
			ack.u.tags.n_tags = p.n;
			apply_ok(s, &ack, &res, "ack");
			if (res.count != p.n) {
				fprintf(stderr,
					"q_bench: ack: %" PRIu64
					" of %zu tags done\n",
					res.count, p.n);
				exit(1);
			}
			p.n = 0;
		}
		if ((cycles & 1023) == 0) {
			t1 = now_s();
			if (t1 - t0 >= seconds) {
				break;
			}
		}
	}
	if (p.delivered != cycles) {
		fprintf(stderr,
			"q_bench: %" PRIu64 " publishes but %" PRIu64
			" deliveries\n",
			cycles, p.delivered);
		exit(1);
	}
	q_state_free(s);
	*cycles_out = cycles;
	return (double)cycles / (t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;
	return (x > y) - (x < y);
}

static struct cycle_result cycle_bench(const struct opts *o, size_t ack_every)
{
	double rates[MAX_RUNS];
	uint64_t cycles[MAX_RUNS];
	double sorted[MAX_RUNS];
	struct cycle_result r;
	int i;

	for (i = 0; i < o->runs; i++) {
		rates[i] = cycle_run(o->seconds, ack_every, &cycles[i]);
		sorted[i] = rates[i];
	}
	qsort(sorted, (size_t)o->runs, sizeof sorted[0], cmp_double);
	r.median = sorted[o->runs / 2];
	r.min = sorted[0];
	r.max = sorted[o->runs - 1];
	r.cycles = 0;
	for (i = 0; i < o->runs; i++) {
		if (rates[i] == r.median) {
			r.cycles = cycles[i];
		}
	}
	return r;
}

struct dump_cmp {
	const unsigned char *buf;
	size_t len, off;
	bool same;
};

static int count_chunk(void *data, const void *buf, size_t len)
{
	(void)buf;
	*(uint64_t *)data += len;
	return 0;
}

/* A clock started: finish with timing_end(). */
static struct timing timing_start(void)
{
	return (struct timing){now_s(), cpu_s()};
}

static void timing_end(struct timing *t)
{
	t->cpu_s = cpu_s() - t->cpu_s;
	t->s = now_s() - t->s;
}

/* Loads buf into a new state, timed; dies if it fails. */
static struct q_state *timed_load(const struct q_options *qo, const void *buf,
				  size_t len, struct timing *t)
{
	struct q_state *s = q_state_new(qo);
	int rv;
	if (s == NULL) {
		die("q_state_new", Q_ENOMEM);
	}
	*t = timing_start();
	rv = q_state_load(s, buf, len);
	timing_end(t);
	if (rv != 0) {
		die("q_state_load", rv);
	}
	return s;
}

static int compare_chunk(void *data, const void *buf, size_t len)
{
	struct dump_cmp *c = data;
	if (c->off + len > c->len || memcmp(c->buf + c->off, buf, len) != 0) {
		c->same = false;
		return 1;
	}
	c->off += len;
	return 0;
}

/* The fake body store: keeps nothing (so mallinfo2 sees only the state),
 * and its checksum is a cheap function of the key and length instead of
 * the bytes, so the fill measures the state and not a hash. */
static int fake_put(void *data, q_seq key, const void *id, size_t id_len,
		    const void *body, size_t len, uint32_t *sum)
{
	(void)data;
	(void)id;
	(void)id_len;
	(void)body;
	*sum = (uint32_t)(key * 2654435761u) ^ (uint32_t)len;
	return 0;
}

static void fake_drop(void *data, q_seq key)
{
	(void)data;
	(void)key;
}

static const struct q_bodies fake_bodies = {NULL, fake_put, fake_drop,
					    fake_drop};

/* Creates queues mem1 .. memK-1 besides "mem" (which names queue 0). */
static void add_queues(struct q_state *s, uint64_t k, char names[][24])
{
	struct q_cmd cmd;
	struct q_result res;
	uint64_t i;

	snprintf(names[0], 24, "mem");
	for (i = 1; i < k; i++) {
		snprintf(names[i], 24, "mem%" PRIu64, i);
		memset(&cmd, 0, sizeof cmd);
		cmd.type = Q_CMD_CREATE_QUEUE;
		cmd.now_ms = NOW_MS;
		cmd.u.queue.name = names[i];
		q_settings_default(&cmd.u.queue.settings);
		apply_ok(s, &cmd, &res, "create queue");
	}
}

#define MAX_QUEUES 64

static struct mem_result mem_bench(const struct opts *o, bool with_ids,
				   bool store)
{
	static const char body[STORE_BODY_SIZE] = {0};
	static char names[MAX_QUEUES][24];
	struct mem_result r = {.with_ids = with_ids, .store = store};
	struct q_options qo = {.bodies = store ? &fake_bodies : NULL};
	struct q_state *s = new_state_with_queue("mem", &qo);
	struct q_state *s2;
	struct q_totals before_t, after_t;
	struct q_cmd pub;
	struct q_result res;
	struct dump_cmp cmp;
	char id[ID_SIZE + 1];
	size_t before, after;
	void *buf;
	size_t len;
	uint64_t counted = 0;
	double t;
	uint64_t i;
	int rv;

	memset(&pub, 0, sizeof pub);
	pub.type = Q_CMD_PUBLISH;
	pub.now_ms = NOW_MS;
	pub.u.publish.queue = "mem";
	pub.u.publish.body = body;
	r.body_size = store ? STORE_BODY_SIZE : BODY_SIZE;
	pub.u.publish.body_len = r.body_size;
	add_queues(s, o->queues, names);

	q_state_totals(s, &before_t);
	before = heap_used();
	t = now_s();
	for (i = 0; i < o->count; i++) {
		if (with_ids) {
			snprintf(id, sizeof id, "%016" PRIx64, i);
			pub.u.publish.msg_id = id;
			pub.u.publish.msg_id_len = ID_SIZE;
		}
		pub.u.publish.queue = names[i % o->queues];
		apply_ok(s, &pub, &res, "publish");
		if (res.duplicate) {
			fprintf(stderr, "q_bench: unexpected duplicate\n");
			exit(1);
		}
	}
	r.publish_per_s = (double)o->count / (now_s() - t);
	after = heap_used();
	q_state_totals(s, &after_t);

	r.malloc_per_msg = (double)(after - before) / (double)o->count;
	r.state_per_msg = (double)(after_t.alloc_bytes - before_t.alloc_bytes) /
			  (double)o->count;
	/* A body in the store is not in the state's memory at all. */
	r.malloc_overhead = r.malloc_per_msg - (store ? 0 : (double)BODY_SIZE);
	r.state_overhead = r.state_per_msg - (store ? 0 : (double)BODY_SIZE);

	/* The dump as a node's snapshot writes it, to a file: into a
	 * buffer it would also measure the page faults of a fresh buffer as
	 * big as the dump (on this project's VMs, 13 us per 4 KiB page). */
	r.dump = timing_start();
	rv = q_state_dump(s, count_chunk, &counted);
	timing_end(&r.dump);
	if (rv != 0) {
		die("q_state_dump", rv);
	}
	rv = q_state_dump_buf(s, &buf, &len);
	if (rv != 0) {
		die("q_state_dump_buf", rv);
	}
	if (counted != len) {
		fprintf(stderr, "q_bench: two dumps of one state differ\n");
		exit(1);
	}
	r.dump_bytes = len;

	/* While s is still allocated the load gets fresh memory from the
	 * system, as a restarted node does. */
	s2 = timed_load(&qo, buf, len, &r.load);
	cmp = (struct dump_cmp){.buf = buf, .len = len, .off = 0, .same = true};
	rv = q_state_dump(s2, compare_chunk, &cmp);
	r.roundtrip_identical = rv == 0 && cmp.same && cmp.off == len;
	q_state_totals(s2, &after_t);
	r.loaded_per_msg = (double)after_t.alloc_bytes / (double)o->count;
	q_state_free(s);
	q_state_free(s2);

	/* Again, into the memory of the two states just freed: the load's
	 * own work without the system's page faults. */
	s2 = timed_load(&qo, buf, len, &r.reload);
	q_state_free(s2);
	free(buf);
	return r;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: q_bench [--seconds S] [--runs R] [--count N] "
		"[--queues K] [--store-only] [--json]\n"
		"  --seconds S   length of each throughput run (default 1)\n"
		"  --runs R      throughput runs per mode, median reported "
		"(default 5, max %d)\n"
		"  --count N     messages stored for the memory test "
		"(default 1000000)\n"
		"  --queues K    spread them over K queues (default 1, max "
		"%d)\n"
		"  --store-only  only the body-store states (dump format 2), "
		"no cycles\n"
		"  --json        print one JSON object instead of text\n",
		MAX_RUNS, MAX_QUEUES);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
		return false;
	}
	*out = v;
	return true;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
		char *end;

		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--store-only") == 0) {
			o->store_only = true;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (v == NULL) {
			goto bad;
		}
		if (strcmp(a, "--seconds") == 0) {
			o->seconds = strtod(v, &end);
			if (*end != '\0' || !(o->seconds > 0)) {
				goto bad;
			}
		} else if (strcmp(a, "--runs") == 0) {
			if (!parse_u64(v, &n) || n == 0 || n > MAX_RUNS) {
				goto bad;
			}
			o->runs = (int)n;
		} else if (strcmp(a, "--count") == 0) {
			if (!parse_u64(v, &n) || n == 0) {
				goto bad;
			}
			o->count = n;
		} else if (strcmp(a, "--queues") == 0) {
			if (!parse_u64(v, &n) || n == 0 || n > MAX_QUEUES) {
				goto bad;
			}
			o->queues = n;
		} else {
			goto bad;
		}
		i++;
	}
	return;
bad:
	fprintf(stderr, "q_bench: bad argument: %s\n", argv[i]);
	usage(stderr);
	exit(2);
}

static double mb_per_s(uint64_t bytes, double s)
{
	return s > 0 ? (double)bytes / 1e6 / s : 0;
}

static const char *mem_what(const struct mem_result *m)
{
	if (m->store) {
		return m->with_ids ? "bodies in a body store, 16 B dedup ids"
				   : "bodies in a body store, no msg ids";
	}
	return m->with_ids ? "16 B dedup ids" : "no msg ids";
}

/* The memory runs done: all of them, or the body-store ones. */
static int mem_first(const struct opts *o)
{
	return o->store_only ? 2 : 0;
}

static void print_text(const struct opts *o, const struct cycle_result *batch,
		       const struct cycle_result *single,
		       const struct mem_result mem[N_MEM])
{
	int i;
	if (!o->store_only) {
		printf("q_bench: %d B bodies, prefetch %d, median of %d runs "
		       "of %.1f s\n",
		       BODY_SIZE, PREFETCH, o->runs, o->seconds);
		printf("cycles (publish+deliver+ack), acks batched by %d: "
		       "%.0f cycles/s (%.0f ns/cycle; min %.0f, max %.0f)\n",
		       ACK_BATCH, batch->median, 1e9 / batch->median,
		       batch->min, batch->max);
		printf("cycles (publish+deliver+ack), one ack per cycle: "
		       "%.0f cycles/s (%.0f ns/cycle; min %.0f, max %.0f)\n",
		       single->median, 1e9 / single->median, single->min,
		       single->max);
	}
	for (i = mem_first(o); i < N_MEM; i++) {
		const struct mem_result *m = &mem[i];
		printf("memory, %" PRIu64 " x %zu B in %" PRIu64
		       " queue(s), %s: malloc %.1f B/msg "
		       "(overhead %.1f B), state accounting %.1f B/msg "
		       "(overhead %.1f B; loaded from its dump %.1f B/msg); "
		       "%.0f publishes/s\n",
		       o->count, m->body_size, o->queues, mem_what(m),
		       m->malloc_per_msg, m->malloc_overhead, m->state_per_msg,
		       m->state_overhead, m->loaded_per_msg, m->publish_per_s);
		printf("snapshot, %s: %.1f MB; dump %.3f s (%.0f MB/s; CPU "
		       "%.3f s); load into fresh memory %.3f s (%.0f MB/s; "
		       "CPU %.3f s), into freed memory %.3f s (%.0f MB/s; CPU "
		       "%.3f s); dump(load(dump)) %s\n",
		       mem_what(m), (double)m->dump_bytes / 1e6, m->dump.s,
		       mb_per_s(m->dump_bytes, m->dump.s), m->dump.cpu_s,
		       m->load.s, mb_per_s(m->dump_bytes, m->load.s),
		       m->load.cpu_s, m->reload.s,
		       mb_per_s(m->dump_bytes, m->reload.s), m->reload.cpu_s,
		       m->roundtrip_identical ? "identical" : "DIFFERS");
	}
#if defined(__SANITIZE_ADDRESS__)
	printf("note: built with AddressSanitizer; numbers are not "
	       "representative\n");
#endif
}

static void print_json(const struct opts *o, const struct cycle_result *batch,
		       const struct cycle_result *single,
		       const struct mem_result mem[N_MEM])
{
	int i;
	printf("{\"body_size\":%d,\"prefetch\":%d,\"runs\":%d,"
	       "\"seconds\":%.3f,\"count\":%" PRIu64 ",\"queues\":%" PRIu64
	       ",\n",
	       BODY_SIZE, PREFETCH, o->runs, o->seconds, o->count, o->queues);
	if (!o->store_only) {
		printf(" \"cycles_per_s_ack_batched\":%.0f,\"ack_batch\":%d,\n",
		       batch->median, ACK_BATCH);
		printf(" \"cycles_per_s_ack_single\":%.0f,\n", single->median);
	}
	printf(" \"memory\":[");
	for (i = mem_first(o); i < N_MEM; i++) {
		const struct mem_result *m = &mem[i];
		printf("%s\n  "
		       "{\"body_bytes\":%zu,\"body_store\":%s,"
		       "\"msg_id_bytes\":%d,\"malloc_bytes_per_msg\":%.1f,"
		       "\"malloc_overhead_bytes\":%.1f,"
		       "\"state_bytes_per_msg\":%.1f,"
		       "\"state_overhead_bytes\":%.1f,"
		       "\"loaded_state_bytes_per_msg\":%.1f,"
		       "\"publish_per_s\":%.0f,\"dump_bytes\":%" PRIu64
		       ",\"dump_s\":%.3f,\"dump_cpu_s\":%.3f"
		       ",\"load_s\":%.3f,\"load_cpu_s\":%.3f"
		       ",\"reload_s\":%.3f,\"reload_cpu_s\":%.3f"
		       ",\"dump_mb_per_s\":%.0f,\"load_mb_per_s\":%.0f,"
		       "\"reload_mb_per_s\":%.0f,"
		       "\"roundtrip_identical\":%s}",
		       i > mem_first(o) ? "," : "", m->body_size,
		       m->store ? "true" : "false", m->with_ids ? ID_SIZE : 0,
		       m->malloc_per_msg, m->malloc_overhead, m->state_per_msg,
		       m->state_overhead, m->loaded_per_msg, m->publish_per_s,
		       m->dump_bytes, m->dump.s, m->dump.cpu_s, m->load.s,
		       m->load.cpu_s, m->reload.s, m->reload.cpu_s,
		       mb_per_s(m->dump_bytes, m->dump.s),
		       mb_per_s(m->dump_bytes, m->load.s),
		       mb_per_s(m->dump_bytes, m->reload.s),
		       m->roundtrip_identical ? "true" : "false");
	}
	printf("]}\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.seconds = 1.0,
			 .runs = 5,
			 .count = 1000000,
			 .queues = 1,
			 .store_only = false,
			 .json = false};
	struct cycle_result batch = {0}, single = {0};
	struct mem_result mem[N_MEM];
	bool ok = true;
	int i;

	parse_args(argc, argv, &o);
	if (!o.json && !o.store_only) {
		fprintf(stderr, "q_bench: running (about %.0f s)...\n",
			2 * o.runs * o.seconds);
	}
	if (!o.store_only) {
		batch = cycle_bench(&o, ACK_BATCH);
		single = cycle_bench(&o, 1);
		mem[0] = mem_bench(&o, false, false);
		mem[1] = mem_bench(&o, true, false);
	}
	mem[2] = mem_bench(&o, false, true);
	mem[3] = mem_bench(&o, true, true);

	if (o.json) {
		print_json(&o, &batch, &single, mem);
	} else {
		print_text(&o, &batch, &single, mem);
	}
	for (i = mem_first(&o); i < N_MEM; i++) {
		ok &= mem[i].roundtrip_identical;
	}
	return ok ? 0 : 1;
}
