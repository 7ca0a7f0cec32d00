/*
 * `raftmq bench`: the workloads W1..W5 of ../shared/peers/RESULTS.md against
 * a raftmq cluster, measured like the peers' load generator
 * (../shared/peers/loadgen/main.go) so that the numbers share one table:
 *
 * - publish->confirm latency runs from the moment the producer wants to
 *   publish (before it waits for a window slot) to the confirm callback;
 * - throughput is confirmed messages over first publish -> last confirm
 *   (W1, W2), deliveries over consumer start -> last delivery (W3);
 * - broker CPU is utime+stime of the broker processes (/proc/PID/stat,
 *   pids from --broker-pids) over the measured phase, per message;
 * - client CPU is this process's getrusage() over the same phase, as a
 *   percentage of the wall time of the phase (100 % = one core).
 *
 * Every body starts with the message number (8 bytes, little endian) and
 * the send time (8 bytes, unix ns, little endian); the rest is filler.
 * Each producer and each consumer has its own connection and thread.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "raftmq.h"

#define MAX_PIDS 16
#define W5_MAX_MSGS 5000000u

enum wl { W1 = 1, W2, W3, W4, W5 };

struct opts {
	enum wl wl;
	int producers;
	int consumers;
	int inflight;
	int prefetch;
	long count;
	int size;
	double rate;
	double seconds;
	double kill_after;
	unsigned ack_timeout_ms;
	bool json;
	bool ack_batch;
	bool keep_queue; /* use the queue as it is (bench/backlog.py) */
	const char *queue;
	const char *label;
	const char *kill_cmd;
	int run;
	size_t n_pids;
	long pid_node[MAX_PIDS]; /* node id, 0 = not given */
	pid_t pids[MAX_PIDS];
};

/* Per message state of the publish tracker. */
enum { ST_NONE, ST_PENDING, ST_OK, ST_FAILED };

struct tracker {
	size_t n;
	int64_t *send_ns; /* send time (unix ns) */
	int64_t *conf_ns; /* confirm time, 0 = none */
	uint8_t *state;
	atomic_llong ok;
	atomic_llong failed;
	atomic_llong last_ns; /* latest confirm */
	atomic_llong published;
};

struct producer {
	const struct opts *o;
	const char *cluster;
	struct tracker *t;
	int idx;
	uint64_t lo, hi; /* ids [lo, hi) */
	int64_t deadline;
	unsigned timeout_ms;
	struct raftmq *conn;
	int64_t *lat;
	size_t n_lat;
	bool failing;
	int err; /* fatal error, 0 = none */
	char errmsg[256];
	uint64_t published;
};

struct consumer {
	const struct opts *o;
	const char *cluster;
	int idx;
	struct raftmq *conn;
	int64_t *lat; /* W4: publish -> delivery */
	size_t n_lat, cap_lat;
	int err;
	char errmsg[256];
};

/* Shared state of one run's consumers and the progress thread. */
static atomic_llong g_got;	/* deliveries */
static atomic_llong g_got_last; /* time of the target-th delivery */
static atomic_int g_stop;
static long long g_target;
static atomic_llong *g_progress; /* counter shown by the progress line */
static long long g_progress_total;
static const char *g_progress_what;
/* W4: set by SIGINT/SIGTERM; ends the publish phase early. */
static volatile sig_atomic_t g_interrupted;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts;

	if (ns <= 0) {
		return;
	}
	ts.tv_sec = (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

static double round_to(double x, int decimals)
{
	double p = 1;

	for (int i = 0; i < decimals; i++) {
		p *= 10;
	}
	return (double)(long long)(x * p + (x >= 0 ? 0.5 : -0.5)) / p;
}

/* ------------------------------------------------------------------------
 * CPU accounting (as the loadgen: utime+stime of /proc/PID/stat, getrusage
 * of this process)
 */

static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	FILE *f;
	size_t n;
	char *p;
	unsigned long long ut, st;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL) {
		return -1;
	}
	/* After ") ": state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime. */
	if (sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct cpu_snap {
	double node[MAX_PIDS];
	double self;
};

static void snap_cpu(const struct opts *o, struct cpu_snap *s)
{
	s->self = self_cpu_s();
	for (size_t i = 0; i < o->n_pids; i++) {
		s->node[i] = proc_cpu_s(o->pids[i]);
	}
}

/* ------------------------------------------------------------------------
 * Results
 */

struct result {
	const char *workload;
	long long msgs;
	double secs;
	double msgs_per_s;
	double mb_per_s;
	bool has_lat;
	double p50, p99, p999, max; /* ms */
	double broker_cpu_s;
	double broker_node_s[MAX_PIDS];
	double client_cpu_s;
	char extra[2048]; /* JSON members, without braces */
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The loadgen's percentile: element ceil(p*n)-1 of the sorted list, ms. */
static double pct_ms(const int64_t *sorted, size_t n, double p)
{
	double r;
	size_t i;

	if (n == 0) {
		return -1;
	}
	r = p * (double)n;
	i = (size_t)r;
	if ((double)i < r) {
		i++;
	}
	i = i > 0 ? i - 1 : 0;
	if (i >= n) {
		i = n - 1;
	}
	return round_to((double)sorted[i] / 1e6, 3);
}

static void fill_lat(struct result *r, int64_t *lat, size_t n)
{
	qsort(lat, n, sizeof(*lat), cmp_i64);
	r->has_lat = n > 0;
	r->p50 = pct_ms(lat, n, 0.50);
	r->p99 = pct_ms(lat, n, 0.99);
	r->p999 = pct_ms(lat, n, 0.999);
	r->max = n > 0 ? round_to((double)lat[n - 1] / 1e6, 3) : -1;
}

static void cpu_delta(const struct opts *o, const struct cpu_snap *a,
		      const struct cpu_snap *b, struct result *r)
{
	r->broker_cpu_s = 0;
	for (size_t i = 0; i < o->n_pids; i++) {
		double d = b->node[i] - a->node[i];

		if (a->node[i] < 0 || b->node[i] < 0) {
			d = 0; /* process gone (W5) */
		}
		r->broker_node_s[i] = round_to(d, 2);
		r->broker_cpu_s += d;
	}
	r->broker_cpu_s = round_to(r->broker_cpu_s, 2);
	r->client_cpu_s = round_to(b->self - a->self, 2);
}

static void extra_add(struct result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void extra_add(struct result *r, const char *fmt, ...)
{
	size_t len = strlen(r->extra);
	va_list ap;

	if (len + 2 >= sizeof(r->extra)) {
		return;
	}
	if (len > 0) {
		r->extra[len++] = ',';
		r->extra[len] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(r->extra + len, sizeof(r->extra) - len, fmt, ap);
	va_end(ap);
}

static void print_num(FILE *f, double v, int decimals, bool valid)
{
	if (!valid) {
		fputs("null", f);
	} else {
		fprintf(f, "%.*f", decimals, v);
	}
}

static void emit(const struct opts *o, const struct result *r, int size)
{
	bool cpu = o->n_pids > 0 && r->msgs > 0;
	double us = cpu ? r->broker_cpu_s / (double)r->msgs * 1e6 : 0;
	double cl = r->secs > 0 ? r->client_cpu_s / r->secs * 100 : 0;

	if (!o->json) {
		char bc[32] = "-", p[3][16] = {"-", "-", "-"};

		if (cpu) {
			snprintf(bc, sizeof(bc), "%.0f", us);
		}
		if (r->has_lat) {
			snprintf(p[0], sizeof(p[0]), "%.2f", r->p50);
			snprintf(p[1], sizeof(p[1]), "%.2f", r->p99);
			snprintf(p[2], sizeof(p[2]), "%.2f", r->p999);
		}
		printf("%-6s msgs/s %.0f  MB/s %.2f  p50 %s ms  p99 %s ms  "
		       "p99.9 %s ms  broker CPU %s us/msg  client CPU %.0f %%"
		       "  (%lld msgs in %.3f s)\n",
		       r->workload, r->msgs_per_s, r->mb_per_s, p[0], p[1],
		       p[2], bc, cl, r->msgs, r->secs);
		if (r->extra[0] != '\0') {
			printf("       {%s}\n", r->extra);
		}
		fflush(stdout);
		return;
	}
	printf("{\"workload\":\"%s\",\"sys\":\"raftmq\",\"label\":\"%s\","
	       "\"run\":%d,\"msgs\":%lld,\"size\":%d,\"secs\":%.3f,"
	       "\"msgs_per_s\":%.0f,\"mb_per_s\":%.3f,",
	       r->workload, o->label, o->run, r->msgs, size, r->secs,
	       r->msgs_per_s, r->mb_per_s);
	fputs("\"p50_ms\":", stdout);
	print_num(stdout, r->p50, 3, r->has_lat);
	fputs(",\"p99_ms\":", stdout);
	print_num(stdout, r->p99, 3, r->has_lat);
	fputs(",\"p999_ms\":", stdout);
	print_num(stdout, r->p999, 3, r->has_lat);
	fputs(",\"max_ms\":", stdout);
	print_num(stdout, r->max, 3, r->has_lat);
	fputs(",\"broker_cpu_us_per_msg\":", stdout);
	print_num(stdout, us, 1, cpu);
	printf(",\"client_cpu_pct\":%.1f,\"broker_cpu_s\":", cl);
	print_num(stdout, r->broker_cpu_s, 2, o->n_pids > 0);
	fputs(",\"broker_cpu_s_per_node\":[", stdout);
	for (size_t i = 0; i < o->n_pids; i++) {
		printf("%s%.2f", i ? "," : "", r->broker_node_s[i]);
	}
	printf("],\"client_cpu_s\":%.2f", r->client_cpu_s);
	if (r->extra[0] != '\0') {
		printf(",%s", r->extra);
	}
	printf("}\n");
	fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Progress line (stderr, only when it is a terminal)
 */

static void *progress_main(void *arg)
{
	long long prev = 0;
	int64_t t0 = now_ns(), tprev = t0;

	(void)arg;
	while (!atomic_load(&g_stop)) {
		long long cur;
		int64_t t;

		sleep_ns(500000000);
		if (atomic_load(&g_stop)) {
			break;
		}
		t = now_ns();
		cur = g_progress != NULL ? atomic_load(g_progress) : 0;
		fprintf(stderr, "\r%s %lld", g_progress_what, cur);
		if (g_progress_total > 0) {
			fprintf(stderr, "/%lld", g_progress_total);
		}
		fprintf(stderr, "  %.0f msgs/s  %.1f s\033[K",
			(double)(cur - prev) * 1e9 / (double)(t - tprev),
			(double)(t - t0) / 1e9);
		prev = cur;
		tprev = t;
	}
	fprintf(stderr, "\r\033[K");
	return NULL;
}

struct progress {
	pthread_t th;
	bool on;
};

static void progress_start(struct progress *pg, const char *what,
			   atomic_llong *counter, long long total)
{
	pg->on = isatty(STDERR_FILENO) == 1;
	if (!pg->on) {
		return;
	}
	g_progress_what = what;
	g_progress = counter;
	g_progress_total = total;
	atomic_store(&g_stop, 0);
	if (pthread_create(&pg->th, NULL, progress_main, NULL) != 0) {
		pg->on = false;
	}
}

static void progress_stop(struct progress *pg)
{
	if (pg->on) {
		atomic_store(&g_stop, 1);
		pthread_join(pg->th, NULL);
		pg->on = false;
	}
	atomic_store(&g_stop, 0);
}

/* ------------------------------------------------------------------------
 * Producers
 */

static int tracker_init(struct tracker *t, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->n = n;
	t->send_ns = calloc(n, sizeof(*t->send_ns));
	t->conf_ns = calloc(n, sizeof(*t->conf_ns));
	t->state = calloc(n, 1);
	atomic_init(&t->ok, 0);
	atomic_init(&t->failed, 0);
	atomic_init(&t->last_ns, 0);
	atomic_init(&t->published, 0);
	if (t->send_ns == NULL || t->conf_ns == NULL || t->state == NULL) {
		return -1;
	}
	return 0;
}

static void tracker_close(struct tracker *t)
{
	free(t->send_ns);
	free(t->conf_ns);
	free(t->state);
}

static void on_confirm(struct raftmq *conn, const struct raftmq_confirm *c,
		       void *data)
{
	struct producer *p = data;
	struct tracker *t = p->t;
	uint64_t id = (uint64_t)(uintptr_t)c->user_data;
	int64_t now = now_ns();
	long long last;

	(void)conn;
	if (id >= t->n || t->state[id] != ST_PENDING) {
		return;
	}
	if (c->err != 0) {
		t->state[id] = ST_FAILED;
		atomic_fetch_add(&t->failed, 1);
		p->failing = true;
		if (p->errmsg[0] == '\0') {
			snprintf(p->errmsg, sizeof(p->errmsg), "%s",
				 c->message);
		}
		return;
	}
	t->state[id] = ST_OK;
	t->conf_ns[id] = now;
	p->lat[p->n_lat++] = now - t->send_ns[id];
	atomic_fetch_add(&t->ok, 1);
	p->failing = false;
	last = atomic_load(&t->last_ns);
	while (now > last &&
	       !atomic_compare_exchange_weak(&t->last_ns, &last, now)) {
	}
}

static int producer_connect(struct producer *p)
{
	struct raftmq_options ro = {0};
	char err[256];
	int rv;

	ro.client_name = "raftmq-bench";
	(void)cli_conn_options(&ro); /* token file checked by admin_connect */
	ro.window = (unsigned)p->o->inflight;
	ro.request_timeout_ms = p->timeout_ms;
	ro.confirm_cb = on_confirm;
	ro.confirm_data = p;
	rv = raftmq_connect(p->cluster, &ro, &p->conn, err, sizeof(err));
	if (rv != 0) {
		p->err = rv;
		snprintf(p->errmsg, sizeof(p->errmsg), "%s", err);
	}
	return rv;
}

/* Publishes ids [lo, hi) as fast as the window allows (stopping at the
 * deadline if one is set), then waits for every outcome. */
static void *producer_main(void *arg)
{
	struct producer *p = arg;
	struct tracker *t = p->t;
	unsigned char *body = calloc((size_t)p->o->size, 1);
	struct raftmq_message m = {0};
	uint64_t id;
	int rv;

	if (body == NULL) {
		p->err = RAFTMQ_ENOMEM;
		return NULL;
	}
	for (int j = 16; j < p->o->size; j++) {
		body[j] = (unsigned char)('a' + j % 26);
	}
	m.queue = p->o->queue;
	m.body = body;
	m.body_len = (size_t)p->o->size;
	for (id = p->lo; id < p->hi; id++) {
		int64_t ts = now_ns();

		if (p->deadline != 0 && ts >= p->deadline) {
			break;
		}
		if (p->failing) {
			/* The broker is failing publishes: pace ourselves to
			 * at most 100 publishes/s, as the loadgen does. The
			 * library only reads (and reconnects) inside a call,
			 * so wait for the next outcome rather than sleep. */
			if (raftmq_publish_pending(p->conn) > 0) {
				(void)raftmq_publish_wait(p->conn, 1000, NULL);
			}
			sleep_ns(10000000 - (now_ns() - ts));
			ts = now_ns();
			if (p->deadline != 0 && ts >= p->deadline) {
				break;
			}
		}
		put_le64(body, id);
		put_le64(body + 8, (uint64_t)ts);
		t->send_ns[id] = ts;
		t->state[id] = ST_PENDING;
		rv = raftmq_publish_async(p->conn, &m, (void *)(uintptr_t)id);
		if (rv == RAFTMQ_ETIMEOUT) {
			t->state[id] = ST_FAILED;
			atomic_fetch_add(&t->failed, 1);
			p->failing = true;
		} else if (rv != 0) {
			t->state[id] = ST_FAILED;
			p->err = rv;
			snprintf(p->errmsg, sizeof(p->errmsg), "%s",
				 raftmq_errmsg(p->conn));
			break;
		}
		p->published++;
		atomic_fetch_add(&t->published, 1);
	}
	for (int tries = 0; raftmq_publish_pending(p->conn) > 0; tries++) {
		if (raftmq_publish_flush(p->conn) != 0 && tries > 100) {
			break;
		}
	}
	free(body);
	return NULL;
}

/* Sets up producers for ids [0, total) split evenly (the last takes the
 * remainder). Latency arrays sized for their ranges. */
static int producers_init(struct producer *ps, int n, const struct opts *o,
			  const char *cluster, struct tracker *t,
			  uint64_t total, unsigned timeout_ms)
{
	uint64_t per = total / (uint64_t)n;

	for (int i = 0; i < n; i++) {
		struct producer *p = &ps[i];

		memset(p, 0, sizeof(*p));
		p->o = o;
		p->cluster = cluster;
		p->t = t;
		p->idx = i;
		p->timeout_ms = timeout_ms;
		p->lo = (uint64_t)i * per;
		p->hi = i == n - 1 ? total : (uint64_t)(i + 1) * per;
		p->lat = malloc((size_t)(p->hi - p->lo + 1) * sizeof(int64_t));
		if (p->lat == NULL) {
			return RAFTMQ_ENOMEM;
		}
		if (producer_connect(p) != 0) {
			fprintf(stderr, "raftmq bench: producer %d: %s\n", i,
				p->errmsg);
			return p->err;
		}
	}
	return 0;
}

static void producers_close(struct producer *ps, int n)
{
	for (int i = 0; i < n; i++) {
		raftmq_close(ps[i].conn);
		free(ps[i].lat);
	}
}

/* W1/W2 and the W3 preload: `np` producers, `total` messages. */
static int run_publish(const struct opts *o, const char *cluster,
		       const char *name, int np, uint64_t total,
		       struct result *r, bool measured)
{
	struct producer *ps = calloc((size_t)np, sizeof(*ps));
	pthread_t *th = calloc((size_t)np, sizeof(*th));
	struct tracker t;
	struct cpu_snap c0, c1;
	struct progress pg = {0};
	int64_t start, end;
	size_t n_lat = 0;
	int64_t *all;
	long long failed;
	int rv = 0;

	memset(r, 0, sizeof(*r));
	if (ps == NULL || th == NULL || tracker_init(&t, total) != 0) {
		fprintf(stderr, "raftmq bench: out of memory\n");
		free(ps);
		free(th);
		return 1;
	}
	rv = producers_init(ps, np, o, cluster, &t, total, 0);
	if (rv != 0) {
		goto out;
	}
	progress_start(&pg, measured ? name : "preload: confirmed", &t.ok,
		       (long long)total);
	snap_cpu(o, &c0);
	start = now_ns();
	for (int i = 0; i < np; i++) {
		pthread_create(&th[i], NULL, producer_main, &ps[i]);
	}
	for (int i = 0; i < np; i++) {
		pthread_join(th[i], NULL);
	}
	snap_cpu(o, &c1);
	progress_stop(&pg);
	for (int i = 0; i < np; i++) {
		if (ps[i].err != 0) {
			fprintf(stderr, "raftmq bench: producer %d: %s\n", i,
				ps[i].errmsg);
			rv = 1;
		}
	}
	failed = atomic_load(&t.failed);
	if (failed > 0) {
		fprintf(stderr, "raftmq bench: %lld publishes failed (%s)\n",
			failed, ps[0].errmsg[0] ? ps[0].errmsg : "see above");
		rv = 1;
	}
	end = atomic_load(&t.last_ns);
	if (end <= start) {
		end = now_ns();
	}
	memset(r, 0, sizeof(*r));
	r->workload = name;
	r->msgs = atomic_load(&t.ok);
	r->secs = round_to((double)(end - start) / 1e9, 3);
	r->msgs_per_s =
		round_to((double)r->msgs / ((double)(end - start) / 1e9), 0);
	r->mb_per_s = round_to(r->msgs_per_s * o->size / 1e6, 2);
	for (int i = 0; i < np; i++) {
		n_lat += ps[i].n_lat;
	}
	all = malloc((n_lat + 1) * sizeof(*all));
	if (all != NULL) {
		n_lat = 0;
		for (int i = 0; i < np; i++) {
			memcpy(all + n_lat, ps[i].lat,
			       ps[i].n_lat * sizeof(*all));
			n_lat += ps[i].n_lat;
		}
		fill_lat(r, all, n_lat);
		free(all);
	}
	cpu_delta(o, &c0, &c1, r);
	extra_add(r,
		  "\"extra\":{\"failed\":%lld,\"producers\":%d,"
		  "\"inflight\":%d}",
		  failed, np, o->inflight);
out:
	producers_close(ps, np);
	tracker_close(&t);
	free(ps);
	free(th);
	return rv;
}

/* ------------------------------------------------------------------------
 * Consumers
 */

static int consumer_connect(struct consumer *c, struct raftmq_consumer **out)
{
	struct raftmq_options ro = {0};
	char err[256];
	int rv;

	ro.client_name = "raftmq-bench";
	(void)cli_conn_options(&ro);
	rv = raftmq_connect(c->cluster, &ro, &c->conn, err, sizeof(err));
	if (rv != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", err);
		c->err = rv;
		return rv;
	}
	rv = raftmq_consume(c->conn, c->o->queue, (uint32_t)c->o->prefetch,
			    out);
	if (rv != 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%s",
			 raftmq_errmsg(c->conn));
		c->err = rv;
	}
	return rv;
}

/* Receives and acks every message individually until g_stop. W4 records
 * publish -> delivery latency from the body's send timestamp. */
static int consumer_ack(struct consumer *c, uint64_t cid, const uint64_t *tags,
			size_t n)
{
	int rv;

	if (n == 0) {
		return 0;
	}
	/* One ack per message, as the peers' consumers do (AMQP basic.ack,
	 * JetStream msg.ack()): async, so the consumer does not wait a
	 * commit per message. --ack-batch acks a whole burst in one call. */
	rv = c->o->ack_batch ? raftmq_ack(c->conn, cid, tags, n, NULL)
			     : raftmq_ack_async(c->conn, cid, tags, n);
	if (rv != 0 && rv != RAFTMQ_ESTALE && rv != RAFTMQ_EUNKNOWN_CONSUMER) {
		c->err = rv;
		snprintf(c->errmsg, sizeof(c->errmsg), "ack: %s",
			 raftmq_errmsg(c->conn));
		return rv;
	}
	return 0;
}

/* Receives and acks every message until g_stop: one Ack per message, or
 * with --ack-batch one Ack (listing each tag) for all that have arrived.
 * W4 records publish -> delivery latency from the body's send time. */
static void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct raftmq_consumer *rc = NULL;
	struct raftmq_delivery d;
	size_t max = c->o->ack_batch ? (size_t)c->o->prefetch : 1;
	uint64_t *tags = calloc(max, sizeof(*tags));
	uint64_t cid = 0;
	size_t nt = 0;
	int rv;

	if (tags == NULL ||
	    (c->conn == NULL && consumer_connect(c, &rc) != 0)) {
		free(tags);
		return NULL;
	}
	while (!atomic_load(&g_stop)) {
		int64_t now;

		rv = raftmq_next(c->conn, NULL, nt > 0 ? 0 : 100, &d);
		if (rv == RAFTMQ_ETIMEOUT) {
			if (consumer_ack(c, cid, tags, nt) != 0) {
				break;
			}
			nt = 0;
			continue;
		}
		if (rv != 0) {
			c->err = rv;
			snprintf(c->errmsg, sizeof(c->errmsg), "%s",
				 raftmq_errmsg(c->conn));
			break;
		}
		now = now_ns();
		if (c->lat != NULL && d.body_len >= 16 &&
		    c->n_lat < c->cap_lat) {
			int64_t ts = (int64_t)get_le64(
				(const unsigned char *)d.body + 8);

			c->lat[c->n_lat++] = now - ts;
		}
		if (atomic_fetch_add(&g_got, 1) + 1 == g_target) {
			atomic_store(&g_got_last, now);
		}
		if (nt > 0 && d.consumer_id != cid) {
			if (consumer_ack(c, cid, tags, nt) != 0) {
				break;
			}
			nt = 0;
		}
		cid = d.consumer_id;
		tags[nt++] = d.tag;
		raftmq_delivery_free(&d);
		if (nt == max) {
			if (consumer_ack(c, cid, tags, nt) != 0) {
				break;
			}
			nt = 0;
		}
	}
	(void)raftmq_ack_flush(c->conn, 1000);
	free(tags);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Setup
 */

static struct raftmq *admin_connect(const char *cluster)
{
	struct raftmq_options ro = {0};
	struct raftmq *a = NULL;
	char err[256];

	if (cli_conn_options(&ro) != 0) {
		return NULL;
	}
	if (raftmq_connect(cluster, &ro, &a, err, sizeof(err)) != 0) {
		fprintf(stderr, "raftmq bench: connect %s: %s\n", cluster, err);
		return NULL;
	}
	return a;
}

/* Recreates the queue, empty, with the default settings; with
 * --keep-queue leaves it as it is (it must exist). */
static int setup_queue(const struct opts *o, const char *cluster)
{
	struct raftmq *a;
	int rv;

	if (o->keep_queue) {
		return 0;
	}
	a = admin_connect(cluster);
	if (a == NULL) {
		return 1;
	}
	rv = raftmq_queue_delete(a, o->queue);
	if (rv != 0 && rv != RAFTMQ_ENOTFOUND) {
		fprintf(stderr, "raftmq bench: queue delete %s: %s\n", o->queue,
			raftmq_errmsg(a));
		raftmq_close(a);
		return 1;
	}
	rv = raftmq_queue_create(a, o->queue, NULL);
	if (rv != 0) {
		fprintf(stderr, "raftmq bench: queue create %s: %s\n", o->queue,
			raftmq_errmsg(a));
	}
	raftmq_close(a);
	return rv != 0;
}

static long long queue_len(const char *cluster, const char *queue)
{
	struct raftmq *a = admin_connect(cluster);
	struct raftmq_queue_status *st = NULL;
	long long n = -1;

	if (a == NULL) {
		return -1;
	}
	if (raftmq_queue_info(a, queue, &st) == 0) {
		n = (long long)(st->ready + st->unacked + st->delayed);
		raftmq_queue_status_free(st, 1);
	}
	raftmq_close(a);
	return n;
}

/* ------------------------------------------------------------------------
 * Workloads
 */

static int bench_pub(const struct opts *o, const char *cluster)
{
	static char name[16];
	struct result r;
	int rv;

	snprintf(name, sizeof(name), "W%d-%dp", (int)o->wl, o->producers);
	if (setup_queue(o, cluster) != 0) {
		return 1;
	}
	rv = run_publish(o, cluster, name, o->producers, (uint64_t)o->count, &r,
			 true);
	if (r.workload != NULL) {
		emit(o, &r, o->size);
	}
	return rv;
}

static int run_consumers(const struct opts *o, const char *cluster, int n,
			 struct consumer *cs, pthread_t *th)
{
	for (int i = 0; i < n; i++) {
		cs[i].o = o;
		cs[i].cluster = cluster;
		cs[i].idx = i;
		if (pthread_create(&th[i], NULL, consumer_main, &cs[i]) != 0) {
			return 1;
		}
	}
	return 0;
}

static int bench_drain(const struct opts *o, const char *cluster)
{
	struct consumer *cs = calloc((size_t)o->consumers, sizeof(*cs));
	pthread_t *th = calloc((size_t)o->consumers, sizeof(*th));
	struct result pre, r;
	struct cpu_snap c0, c1;
	struct progress pg = {0};
	int64_t start, end, limit;
	long long ql, ql_after;
	int rv = 0;

	if (cs == NULL || th == NULL || setup_queue(o, cluster) != 0) {
		free(cs);
		free(th);
		return 1;
	}
	memset(&pre, 0, sizeof(pre));
	/* --keep-queue drains what the queue already holds: no preload. */
	if (!o->keep_queue &&
	    (run_publish(o, cluster, "preload", o->producers,
			 (uint64_t)o->count, &pre, false) != 0 ||
	     pre.msgs != o->count)) {
		fprintf(stderr, "raftmq bench: preload confirmed %lld of %ld\n",
			pre.msgs, o->count);
		free(cs);
		free(th);
		return 1;
	}
	sleep_ns(500000000);
	ql = queue_len(cluster, o->queue);
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr,
			"preloaded %lld msgs at %.0f msgs/s; queue "
			"length %lld\n",
			pre.msgs, pre.msgs_per_s, ql);
	}
	atomic_store(&g_got, 0);
	atomic_store(&g_got_last, 0);
	g_target = o->count;
	progress_start(&pg, "W3: delivered", &g_got, o->count);
	snap_cpu(o, &c0);
	start = now_ns();
	run_consumers(o, cluster, o->consumers, cs, th);
	/* 300 s, and at least 1,000 msgs/s for a deep --keep-queue drain. */
	limit = start + (300 + o->count / 1000) * (int64_t)1000000000;
	while (atomic_load(&g_got_last) == 0 && now_ns() < limit) {
		bool all_dead = true;

		for (int i = 0; i < o->consumers; i++) {
			all_dead = all_dead && cs[i].err != 0;
		}
		if (all_dead) {
			break;
		}
		sleep_ns(1000000);
	}
	end = atomic_load(&g_got_last);
	if (end == 0) {
		end = now_ns();
		fprintf(stderr, "raftmq bench: drain stopped at %lld/%ld\n",
			(long long)atomic_load(&g_got), o->count);
		rv = 1;
	}
	sleep_ns(200000000); /* let the last acks go out */
	snap_cpu(o, &c1);
	progress_stop(&pg);
	atomic_store(&g_stop, 1);
	for (int i = 0; i < o->consumers; i++) {
		pthread_join(th[i], NULL);
		if (cs[i].err != 0) {
			fprintf(stderr, "raftmq bench: consumer %d: %s\n", i,
				cs[i].errmsg);
			rv = 1;
		}
		raftmq_close(cs[i].conn);
	}
	atomic_store(&g_stop, 0);
	sleep_ns(500000000);
	ql_after = queue_len(cluster, o->queue);
	memset(&r, 0, sizeof(r));
	r.workload = "W3";
	r.msgs = atomic_load(&g_got);
	if (r.msgs > o->count) {
		r.msgs = o->count;
	}
	r.secs = round_to((double)(end - start) / 1e9, 3);
	r.msgs_per_s =
		round_to((double)r.msgs / ((double)(end - start) / 1e9), 0);
	r.mb_per_s = round_to(r.msgs_per_s * o->size / 1e6, 2);
	cpu_delta(o, &c0, &c1, &r);
	extra_add(&r,
		  "\"extra\":{\"preload_msgs_per_s\":%.0f,"
		  "\"queue_len_before\":%lld,\"queue_len_after\":%lld,"
		  "\"consumers\":%d,\"prefetch\":%d,\"ack_batch\":%s}",
		  pre.msgs_per_s, ql, ql_after, o->consumers, o->prefetch,
		  o->ack_batch ? "true" : "false");
	emit(o, &r, o->size);
	free(cs);
	free(th);
	return rv;
}

static void on_interrupt(int sig)
{
	(void)sig;
	g_interrupted = 1;
}

static void wait_until(int64_t due)
{
	int64_t d = due - now_ns();

	sleep_ns(d);
}

static int bench_e2e(const struct opts *o, const char *cluster)
{
	uint64_t total = (uint64_t)(o->rate * o->seconds);
	struct consumer cons = {0};
	struct raftmq_consumer *rc = NULL;
	pthread_t cth;
	struct producer p;
	struct tracker t;
	struct cpu_snap c0, c1;
	struct progress pg = {0};
	unsigned char *body;
	struct raftmq_message m = {0};
	int64_t start, pub_end, interval;
	int64_t *cl;
	struct result r;
	int rv = 0;

	if (total == 0 || setup_queue(o, cluster) != 0) {
		return 1;
	}
	/* bench/backlog.py runs W4 as a probe for as long as a fill step
	 * lasts, which it does not know in advance: a signal ends the
	 * publish phase and the result covers what was sent. */
	g_interrupted = 0;
	signal(SIGINT, on_interrupt);
	signal(SIGTERM, on_interrupt);
	body = calloc((size_t)o->size, 1);
	cons.o = o;
	cons.cluster = cluster;
	cons.cap_lat = total + 1024;
	cons.lat = malloc(cons.cap_lat * sizeof(int64_t));
	if (body == NULL || cons.lat == NULL || tracker_init(&t, total) != 0) {
		fprintf(stderr, "raftmq bench: out of memory\n");
		return 1;
	}
	if (consumer_connect(&cons, &rc) != 0) {
		fprintf(stderr, "raftmq bench: consumer: %s\n", cons.errmsg);
		return 1;
	}
	atomic_store(&g_got, 0);
	atomic_store(&g_got_last, 0);
	g_target = -1;
	atomic_store(&g_stop, 0);
	pthread_create(&cth, NULL, consumer_main, &cons);
	sleep_ns(200000000);
	if (producers_init(&p, 1, o, cluster, &t, total, 0) != 0) {
		atomic_store(&g_stop, 1);
		pthread_join(cth, NULL);
		return 1;
	}
	for (int j = 16; j < o->size; j++) {
		body[j] = (unsigned char)('a' + j % 26);
	}
	m.queue = o->queue;
	m.body = body;
	m.body_len = (size_t)o->size;
	progress_start(&pg, "W4: delivered", &g_got, (long long)total);
	snap_cpu(o, &c0);
	interval = (int64_t)(1e9 / o->rate);
	start = now_ns();
	for (uint64_t id = 0; id < total; id++) {
		int64_t due = start + (int64_t)id * interval;
		int64_t ts;

		/* While waiting for the send time, read confirms. */
		for (;;) {
			int64_t left = due - now_ns();

			if (left <= 0 || g_interrupted) {
				break;
			}
			if (raftmq_publish_pending(p.conn) > 0 &&
			    raftmq_publish_wait(p.conn, (int)(left / 1000000),
						NULL) == 0) {
				continue; /* got a confirm: look again */
			}
			wait_until(due);
		}
		if (g_interrupted) {
			total = id;
			break;
		}
		ts = now_ns(); /* the actual send time */
		put_le64(body, id);
		put_le64(body + 8, (uint64_t)ts);
		t.send_ns[id] = ts;
		t.state[id] = ST_PENDING;
		if (raftmq_publish_async(p.conn, &m, (void *)(uintptr_t)id) !=
		    0) {
			t.state[id] = ST_FAILED;
			atomic_fetch_add(&t.failed, 1);
		}
	}
	pub_end = now_ns();
	for (int tries = 0; raftmq_publish_pending(p.conn) > 0; tries++) {
		if (raftmq_publish_flush(p.conn) != 0 && tries > 10) {
			break;
		}
	}
	for (int i = 0; i < 100 && atomic_load(&g_got) < atomic_load(&t.ok);
	     i++) {
		sleep_ns(50000000);
	}
	snap_cpu(o, &c1);
	progress_stop(&pg);
	atomic_store(&g_stop, 1);
	pthread_join(cth, NULL);
	atomic_store(&g_stop, 0);
	if (cons.err != 0) {
		fprintf(stderr, "raftmq bench: consumer: %s\n", cons.errmsg);
		rv = 1;
	}
	if (atomic_load(&t.failed) > 0) {
		fprintf(stderr, "raftmq bench: %lld publishes failed (%s)\n",
			(long long)atomic_load(&t.failed), p.errmsg);
		rv = 1;
	}
	memset(&r, 0, sizeof(r));
	r.workload = "W4";
	r.msgs = (long long)cons.n_lat;
	r.secs = round_to((double)(pub_end - start) / 1e9, 3);
	r.msgs_per_s =
		round_to((double)total / ((double)(pub_end - start) / 1e9), 0);
	r.mb_per_s = round_to(r.msgs_per_s * o->size / 1e6, 3);
	fill_lat(&r, cons.lat, cons.n_lat);
	cpu_delta(o, &c0, &c1, &r);
	cl = p.lat;
	qsort(cl, p.n_lat, sizeof(*cl), cmp_i64);
	extra_add(&r,
		  "\"extra\":{\"offered_rate\":%.0f,\"published\":%" PRIu64
		  ",\"confirmed\":%lld,\"confirm_p50_ms\":%.3f,"
		  "\"confirm_p99_ms\":%.3f,\"ack_batch\":%s}",
		  o->rate, total, (long long)atomic_load(&t.ok),
		  pct_ms(cl, p.n_lat, 0.5), pct_ms(cl, p.n_lat, 0.99),
		  o->ack_batch ? "true" : "false");
	emit(o, &r, o->size);
	producers_close(&p, 1);
	raftmq_close(cons.conn);
	free(cons.lat);
	free(body);
	tracker_close(&t);
	return rv;
}

/* ------------------------------------------------------------------------
 * W5: failover
 */

struct killer {
	const struct opts *o;
	int64_t at;
	uint64_t leader_id;
	char leader_addr[128];
	int64_t kill_ns;
	int err;
};

static int kill_leader(struct killer *k)
{
	const struct opts *o = k->o;
	char idbuf[32];
	pid_t pid;
	int status;

	for (size_t i = 0; i < o->n_pids; i++) {
		if (o->pid_node[i] > 0 &&
		    (uint64_t)o->pid_node[i] == k->leader_id) {
			k->kill_ns = now_ns();
			return kill(o->pids[i], SIGKILL) == 0 ? 0 : errno;
		}
	}
	snprintf(idbuf, sizeof(idbuf), "%" PRIu64, k->leader_id);
	k->kill_ns = now_ns();
	pid = fork();
	if (pid < 0) {
		return errno;
	}
	if (pid == 0) {
		setenv("RAFTMQ_LEADER_ID", idbuf, 1);
		setenv("RAFTMQ_LEADER_ADDRESS", k->leader_addr, 1);
		execl("/bin/sh", "sh", "-c", o->kill_cmd, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		return ECHILD;
	}
	return 0;
}

static void *killer_main(void *arg)
{
	struct killer *k = arg;

	wait_until(k->at);
	k->err = kill_leader(k);
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr,
			"\r\033[Kkilled the leader (node %" PRIu64 ")%s\n",
			k->leader_id, k->err ? ": FAILED" : "");
	}
	return NULL;
}

/* Drains the queue, acking in batches (not measured), and counts each id
 * seen. Stops when the queue is empty, or after 5 s without a delivery. */
static int verify_drain(const struct opts *o, const char *cluster,
			uint32_t *seen, uint64_t published, long long *got,
			long long *dup, long long *foreign)
{
	struct consumer c = {0};
	struct raftmq_consumer *rc = NULL;
	struct raftmq_delivery d;
	uint64_t tags[256];
	uint64_t cid = 0;
	size_t nt = 0;
	int64_t last = now_ns(), t0 = last;
	int rv;

	c.o = o;
	c.cluster = cluster;
	if (consumer_connect(&c, &rc) != 0) {
		fprintf(stderr, "raftmq bench: verify: %s\n", c.errmsg);
		return 1;
	}
	for (;;) {
		rv = raftmq_next(c.conn, rc, nt > 0 ? 0 : 1000, &d);
		if (rv == 0) {
			uint64_t id = d.body_len >= 16 ? get_le64(d.body)
						       : UINT64_MAX;

			last = now_ns();
			if (id >= published) {
				(*foreign)++;
			} else if (++seen[id] > 1) {
				(*dup)++;
			}
			(*got)++;
			if (nt > 0 && d.consumer_id != cid) {
				(void)raftmq_ack(c.conn, cid, tags, nt, NULL);
				nt = 0;
			}
			cid = d.consumer_id;
			tags[nt++] = d.tag;
			raftmq_delivery_free(&d);
			if (nt < sizeof(tags) / sizeof(tags[0])) {
				continue;
			}
		} else if (rv != RAFTMQ_ETIMEOUT) {
			fprintf(stderr, "raftmq bench: verify: %s\n",
				raftmq_errmsg(c.conn));
			raftmq_close(c.conn);
			return 1;
		}
		if (nt > 0) {
			(void)raftmq_ack(c.conn, cid, tags, nt, NULL);
			nt = 0;
			continue;
		}
		if (rv == RAFTMQ_ETIMEOUT &&
		    (queue_len(cluster, o->queue) == 0 ||
		     now_ns() - last > 5 * (int64_t)1000000000 ||
		     now_ns() - t0 > 300 * (int64_t)1000000000)) {
			break;
		}
	}
	raftmq_close(c.conn);
	return 0;
}

static int find_leader(const char *cluster, struct killer *k, char *followers,
		       size_t flen)
{
	struct raftmq *a = admin_connect(cluster);
	struct raftmq_cluster_status st;
	size_t off = 0;

	if (a == NULL) {
		return 1;
	}
	for (int i = 0; i < 100; i++) {
		if (raftmq_cluster_status(a, &st) != 0) {
			fprintf(stderr, "raftmq bench: cluster status: %s\n",
				raftmq_errmsg(a));
			raftmq_close(a);
			return 1;
		}
		if (st.leader_id != 0) {
			break;
		}
		raftmq_cluster_status_free(&st);
		sleep_ns(100000000);
	}
	k->leader_id = st.leader_id;
	followers[0] = '\0';
	for (size_t i = 0; i < st.n_nodes; i++) {
		const struct raftmq_node *n = &st.nodes[i];

		if (n->id == st.leader_id) {
			snprintf(k->leader_addr, sizeof(k->leader_addr), "%s",
				 n->client_address);
			continue;
		}
		off += (size_t)snprintf(followers + off, flen - off, "%s%s",
					off ? "," : "", n->client_address);
		if (off >= flen) {
			off = flen - 1;
		}
	}
	raftmq_cluster_status_free(&st);
	raftmq_close(a);
	if (k->leader_id == 0 || followers[0] == '\0') {
		fprintf(stderr, "raftmq bench: no leader or no follower\n");
		return 1;
	}
	return 0;
}

static bool can_kill(const struct opts *o, uint64_t leader)
{
	if (o->kill_cmd != NULL) {
		return true;
	}
	for (size_t i = 0; i < o->n_pids; i++) {
		if ((uint64_t)o->pid_node[i] == leader) {
			return true;
		}
	}
	return false;
}

static double ms_or_neg(int64_t ns)
{
	return ns <= 0 ? -1 : round_to((double)ns / 1e6, 1);
}

static int bench_failover(const struct opts *o, const char *cluster)
{
	struct killer k = {0};
	struct cpu_snap c0, c1;
	char followers[1024], survivors[1024];
	struct producer p;
	struct tracker t;
	struct progress pg = {0};
	pthread_t pth, kth;
	int64_t start, first_any = 0, first_new = 0, max_gap = 0, gap_start = 0;
	int64_t *ct;
	size_t nct = 0;
	uint64_t published;
	long long before = 0, after = 0, got = 0, dup = 0, foreign = 0;
	long long lost = 0, unconf_present = 0, late = 0, ql;
	uint32_t *seen;
	struct result r;
	int rv = 0;

	if (setup_queue(o, cluster) != 0 ||
	    find_leader(cluster, &k, followers, sizeof(followers)) != 0) {
		return 1;
	}
	if (!can_kill(o, k.leader_id)) {
		fprintf(stderr,
			"raftmq bench: W5 needs --kill-cmd CMD or "
			"--broker-pids "
			"ID=PID,... to kill the leader (node %" PRIu64 ")\n",
			k.leader_id);
		return 2;
	}
	/* The producer is given the followers first; the library still
	 * follows the leader hint of the node it reaches. */
	snprintf(survivors, sizeof(survivors), "%s", followers);
	if (tracker_init(&t, W5_MAX_MSGS) != 0) {
		fprintf(stderr, "raftmq bench: out of memory\n");
		return 1;
	}
	/* The library's own request timeout (10 s) stays: below its
	 * reconnect backoff cap (1 s) it cannot reconnect at all. A confirm
	 * later than --ack-timeout is counted in late_confirms instead. */
	if (producers_init(&p, 1, o, followers, &t, W5_MAX_MSGS, 0) != 0) {
		return 1;
	}
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr,
			"leader: node %" PRIu64
			" (%s); producer "
			"addresses %s, on node %" PRIu64 "\n",
			k.leader_id, k.leader_addr, followers,
			raftmq_node_id(p.conn));
	}
	progress_start(&pg, "W5: confirmed", &t.ok, 0);
	snap_cpu(o, &c0);
	start = now_ns();
	p.deadline = start + (int64_t)(o->seconds * 1e9);
	k.o = o;
	k.at = start + (int64_t)(o->kill_after * 1e9);
	pthread_create(&kth, NULL, killer_main, &k);
	pthread_create(&pth, NULL, producer_main, &p);
	pthread_join(pth, NULL);
	pthread_join(kth, NULL);
	snap_cpu(o, &c1);
	progress_stop(&pg);
	published = p.lo + p.published;
	if (k.err != 0) {
		fprintf(stderr, "raftmq bench: killing the leader failed\n");
		rv = 1;
	}
	sleep_ns(500000000);
	producers_close(&p, 1);
	/* Recovery, as the loadgen: the longest gap between confirms. */
	ct = malloc((published + 1) * sizeof(*ct));
	seen = calloc(published + 1, sizeof(*seen));
	if (ct == NULL || seen == NULL) {
		fprintf(stderr, "raftmq bench: out of memory\n");
		return 1;
	}
	for (uint64_t i = 0; i < published; i++) {
		int64_t c = t.conf_ns[i];

		if (c == 0) {
			continue;
		}
		if (c - t.send_ns[i] > (int64_t)o->ack_timeout_ms * 1000000) {
			late++;
		}
		ct[nct++] = c;
		if (c > k.kill_ns && (first_any == 0 || c < first_any)) {
			first_any = c;
		}
		if (t.send_ns[i] > k.kill_ns &&
		    (first_new == 0 || c < first_new)) {
			first_new = c;
		}
		if (c <= k.kill_ns) {
			before++;
		} else {
			after++;
		}
	}
	qsort(ct, nct, sizeof(*ct), cmp_i64);
	for (size_t i = 1; i < nct; i++) {
		if (ct[i] - ct[i - 1] > max_gap) {
			max_gap = ct[i] - ct[i - 1];
			gap_start = ct[i - 1];
		}
	}
	ql = queue_len(survivors, o->queue);
	if (verify_drain(o, survivors, seen, published, &got, &dup, &foreign) !=
	    0) {
		rv = 1;
	}
	for (uint64_t i = 0; i < published; i++) {
		if (t.state[i] == ST_OK && seen[i] == 0) {
			lost++;
		}
		if (t.state[i] != ST_OK && seen[i] > 0) {
			unconf_present++;
		}
	}
	memset(&r, 0, sizeof(r));
	r.workload = "W5";
	r.msgs = atomic_load(&t.ok);
	r.secs = round_to(o->seconds, 3);
	r.msgs_per_s = round_to((double)r.msgs / o->seconds, 0);
	r.mb_per_s = round_to(r.msgs_per_s * o->size / 1e6, 2);
	cpu_delta(o, &c0, &c1, &r);
	{
		double rec = round_to(
			(double)(gap_start + max_gap - k.kill_ns) / 1e6, 1);

		extra_add(&r,
			  "\"recovery_s\":%.4f,\"lost\":%lld,"
			  "\"duplicates\":%lld",
			  rec / 1e3, lost, dup);
		extra_add(
			&r,
			"\"extra\":{\"leader_killed\":%" PRIu64
			",\"producer_addresses\":\"%s\","
			"\"kill_to_first_confirm_ms\":%.1f,"
			"\"kill_to_first_confirm_of_new_msg_ms\":%.1f,"
			"\"max_confirm_gap_ms\":%.1f,\"recovery_ms\":%.1f,"
			"\"max_gap_start_rel_kill_ms\":%.1f,"
			"\"published\":%" PRIu64
			",\"confirmed\":%lld,"
			"\"confirmed_before_kill\":%lld,"
			"\"confirmed_after_kill\":%lld,"
			"\"failed_or_timed_out\":%lld,\"late_confirms\":%lld,"
			"\"queue_len_before_verify\":%lld,"
			"\"consumed\":%lld,\"duplicates\":%lld,"
			"\"foreign\":%lld,\"lost_confirmed\":%lld,"
			"\"unconfirmed_but_present\":%lld,"
			"\"ack_timeout_s\":%.3f}",
			k.leader_id, followers,
			ms_or_neg(first_any - k.kill_ns),
			ms_or_neg(first_new - k.kill_ns), ms_or_neg(max_gap),
			rec, round_to((double)(gap_start - k.kill_ns) / 1e6, 1),
			published, r.msgs, before, after,
			(long long)atomic_load(&t.failed), late, ql, got, dup,
			foreign, lost, unconf_present, o->ack_timeout_ms / 1e3);
	}
	emit(o, &r, o->size);
	if (lost > 0) {
		fprintf(stderr, "raftmq bench: %lld confirmed messages lost\n",
			lost);
		rv = 1;
	}
	free(ct);
	free(seen);
	tracker_close(&t);
	return rv;
}

/* ------------------------------------------------------------------------
 * Command line
 */

static void usage(FILE *f)
{
	fputs("usage: raftmq bench W1|W2|W3|W4|W5 [options]\n"
	      "  The workloads of ../shared/peers/RESULTS.md "
	      "(docs/benchmarks.md):\n"
	      "  W1 publish-confirm 128 B   W2 the same with 4 KiB   W3 drain "
	      "with acks\n"
	      "  W4 end-to-end latency at a fixed rate   W5 failover (kill -9 "
	      "of the leader)\n"
	      "options:\n"
	      "  --producers N     producer connections (W1/W2 1; W3 preload "
	      "4)\n"
	      "  --consumers N     consumers (W3 4)\n"
	      "  --inflight K      unconfirmed publishes per producer (256)\n"
	      "  --prefetch K      prefetch per consumer (256)\n"
	      "  --count N         messages (W1 200000, W2 50000, W3 "
	      "200000)\n"
	      "  --size B          body bytes, >= 16 (W2 4096, else 128)\n"
	      "  --rate R          W4 publishes/s (2000)\n"
	      "  --seconds S       W4 publish time (20), W5 run time (20)\n"
	      "  --kill-after S    W5: kill the leader after S s (5)\n"
	      "  --ack-timeout MS  W5: confirms later than MS count as late "
	      "(500)\n"
	      "  --kill-cmd CMD    W5: sh -c CMD kills the leader; it gets "
	      "RAFTMQ_LEADER_ID\n"
	      "                    and RAFTMQ_LEADER_ADDRESS in its "
	      "environment\n"
	      "  --broker-pids L   PID,... or ID=PID,...: broker CPU per "
	      "message; with\n"
	      "                    ID=PID, W5 kills the leader itself\n"
	      "  --ack-batch       W3/W4: one Ack frame for all deliveries "
	      "at hand (each tag\n"
	      "                    listed) instead of one per message; "
	      "not the peers' spec\n"
	      "  --queue NAME      queue to (re)create and use (bench)\n"
	      "  --keep-queue      use the queue as it is (it must exist): "
	      "W1/W2 publish into\n"
	      "                    it, W3 drains --count messages it holds "
	      "(no preload)\n"
	      "  W4 stops publishing at SIGINT or SIGTERM and reports what "
	      "was sent\n"
	      "  --label L --run N recorded in the JSON object\n"
	      "  --json            print one JSON object\n",
	      f);
}

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_double(const char *s, double min, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < min) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_pids(struct opts *o, const char *s)
{
	char buf[512], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		long id = 0, pid;

		if (o->n_pids == MAX_PIDS) {
			return -1;
		}
		if (eq != NULL) {
			*eq = '\0';
			if (parse_long(tok, 1, &id) != 0) {
				return -1;
			}
			tok = eq + 1;
		}
		if (parse_long(tok, 1, &pid) != 0) {
			return -1;
		}
		o->pid_node[o->n_pids] = id;
		o->pids[o->n_pids++] = (pid_t)pid;
	}
	return 0;
}

enum {
	OPT_PRODUCERS = 256,
	OPT_CONSUMERS,
	OPT_INFLIGHT,
	OPT_PREFETCH,
	OPT_COUNT,
	OPT_SIZE,
	OPT_RATE,
	OPT_SECONDS,
	OPT_JSON,
	OPT_KILL_AFTER,
	OPT_ACK_TIMEOUT,
	OPT_KILL_CMD,
	OPT_PIDS,
	OPT_QUEUE,
	OPT_LABEL,
	OPT_RUN,
	OPT_HELP,
	OPT_ACK_BATCH,
	OPT_KEEP_QUEUE,
};

static const struct option long_opts[] = {
	{"producers", required_argument, NULL, OPT_PRODUCERS},
	{"consumers", required_argument, NULL, OPT_CONSUMERS},
	{"inflight", required_argument, NULL, OPT_INFLIGHT},
	{"prefetch", required_argument, NULL, OPT_PREFETCH},
	{"count", required_argument, NULL, OPT_COUNT},
	{"size", required_argument, NULL, OPT_SIZE},
	{"rate", required_argument, NULL, OPT_RATE},
	{"seconds", required_argument, NULL, OPT_SECONDS},
	{"json", no_argument, NULL, OPT_JSON},
	{"kill-after", required_argument, NULL, OPT_KILL_AFTER},
	{"ack-timeout", required_argument, NULL, OPT_ACK_TIMEOUT},
	{"kill-cmd", required_argument, NULL, OPT_KILL_CMD},
	{"broker-pids", required_argument, NULL, OPT_PIDS},
	{"queue", required_argument, NULL, OPT_QUEUE},
	{"label", required_argument, NULL, OPT_LABEL},
	{"run", required_argument, NULL, OPT_RUN},
	{"help", no_argument, NULL, OPT_HELP},
	{"ack-batch", no_argument, NULL, OPT_ACK_BATCH},
	{"keep-queue", no_argument, NULL, OPT_KEEP_QUEUE},
	{NULL, 0, NULL, 0},
};

/* Parses the options; returns -1 to exit 0 (help), 0, or 2 (usage). */
static int parse_opts(struct opts *o, int argc, char **argv)
{
	long producers = -1, count = -1, size = -1, v;
	double d = 0;
	int c, li = 0;

	memset(o, 0, sizeof(*o));
	o->consumers = 4;
	o->inflight = 256;
	o->prefetch = 256;
	o->rate = 2000;
	o->seconds = 20;
	o->kill_after = 5;
	o->ack_timeout_ms = 500;
	o->queue = "bench";
	o->label = "raftmq";
	o->run = 1;
	optind = 0; /* full re-initialisation (the CLI may have used it) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", long_opts, &li)) != -1) {
		const char *a = optarg;
		int bad = 0;

		switch (c) {
		case OPT_PRODUCERS:
			bad = parse_long(a, 1, &producers);
			break;
		case OPT_CONSUMERS:
			bad = parse_long(a, 1, &v);
			o->consumers = (int)v;
			break;
		case OPT_INFLIGHT:
			bad = parse_long(a, 1, &v);
			o->inflight = (int)v;
			break;
		case OPT_PREFETCH:
			bad = parse_long(a, 1, &v);
			o->prefetch = (int)v;
			break;
		case OPT_COUNT:
			bad = parse_long(a, 1, &count);
			break;
		case OPT_SIZE:
			bad = parse_long(a, 16, &size);
			break;
		case OPT_RATE:
			bad = parse_double(a, 1, &o->rate);
			break;
		case OPT_SECONDS:
			bad = parse_double(a, 0.1, &o->seconds);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_ACK_BATCH:
			o->ack_batch = true;
			break;
		case OPT_KEEP_QUEUE:
			o->keep_queue = true;
			break;
		case OPT_KILL_AFTER:
			bad = parse_double(a, 0, &o->kill_after);
			break;
		case OPT_ACK_TIMEOUT:
			bad = parse_double(a, 1, &d);
			o->ack_timeout_ms = (unsigned)d;
			break;
		case OPT_KILL_CMD:
			o->kill_cmd = a;
			break;
		case OPT_PIDS:
			bad = parse_pids(o, a);
			break;
		case OPT_QUEUE:
			o->queue = a;
			break;
		case OPT_LABEL:
			o->label = a;
			break;
		case OPT_RUN:
			bad = parse_long(a, 0, &v);
			o->run = (int)v;
			break;
		case OPT_HELP:
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr,
				"raftmq bench: unknown or incomplete option "
				"%s (see raftmq bench --help)\n",
				argv[optind - 1]);
			return 2;
		}
		if (bad != 0) {
			fprintf(stderr,
				"raftmq bench: bad value for --%s: %s\n",
				long_opts[li].name, a);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++) {
		const char *w = argv[i];

		if (o->wl != 0 || (w[0] != 'W' && w[0] != 'w') || w[1] < '1' ||
		    w[1] > '5' || w[2] != '\0') {
			fprintf(stderr,
				"raftmq bench: expected one workload "
				"W1..W5, got \"%s\"\n",
				w);
			return 2;
		}
		o->wl = (enum wl)(w[1] - '0');
	}
	if (o->wl == 0) {
		fprintf(stderr,
			"raftmq bench: which workload? W1|W2|W3|W4|W5 "
			"(see raftmq bench --help)\n");
		return 2;
	}
	o->producers = producers > 0 ? (int)producers : (o->wl == W3 ? 4 : 1);
	o->size = size > 0 ? (int)size : (o->wl == W2 ? 4096 : 128);
	o->count = count > 0 ? count : (o->wl == W2 ? 50000 : 200000);
	if (o->wl == W5 || o->wl == W4) {
		o->producers = 1;
	}
	if (o->wl == W4 && o->consumers != 1) {
		o->consumers = 1;
	}
	return 0;
}

int rmq_bench_main(const char *cluster, int argc, char **argv)
{
	struct opts o;
	int rv;

	rv = parse_opts(&o, argc, argv);
	if (rv != 0) {
		return rv < 0 ? 0 : rv;
	}
	if (cluster == NULL || cluster[0] == '\0') {
		fprintf(stderr, "raftmq bench: no cluster address\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	switch (o.wl) {
	case W1:
	case W2:
		return bench_pub(&o, cluster);
	case W3:
		return bench_drain(&o, cluster);
	case W4:
		return bench_e2e(&o, cluster);
	case W5:
		return bench_failover(&o, cluster);
	}
	return 2;
}
