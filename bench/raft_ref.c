/*
 * raft-ref: the raw libraft ceiling of the machine at hand.
 *
 * What it measures: how many entries/s, and payloads ("msgs") of --size
 * bytes per second, three libraft nodes on 127.0.0.1 commit when nothing
 * else runs: raft_uv appending and fsyncing each write batch as libraft
 * does it (temporary dirs on the real disk), raft_uv_tcp carrying the
 * AppendEntries, and an FSM that does nothing. No broker logic: no client
 * protocol, no sessions, no protobuf, no queue state.
 *
 * Why: raftmq's numbers only mean something next to what libraft itself
 * does on the same machine in the same minute (the 2-vCPU VM is shared and
 * noisy). bench/compare.py prints raftmq's workloads as ratios of this
 * ceiling (issue 7: "W2 >= 80 % of the raw libraft ceiling"), and the
 * bench-guard test fails CI when raftmq W1 falls far below it.
 *
 * Shape: like the broker's group commit, one entry packs --batch payloads
 * of --size bytes in one buffer (raft_apply() with more than one buffer
 * drops all but the first in 0.22.1), and the leader keeps --inflight
 * entries proposed at all times, proposing the next one from each apply
 * callback. One msg is one payload, so msgs/s compares directly with
 * `raftmq bench` (W1: 128 B, W2: 4096 B).
 *
 * How: the process forks three nodes, each with its own uv loop. They
 * bootstrap the same 3-voter configuration; node 1 starts with a short
 * election timeout so that it wins the first election at once (the leader
 * then goes back to the broker's 1000 ms). The leader warms up for
 * --warmup seconds, then measures for --seconds: entries applied on the
 * leader, commit latency per entry (raft_apply() -> apply callback; every
 * payload of an entry has its entry's latency), and utime+stime of the
 * three processes per payload. It sends one fixed-size result record to
 * the parent through a pipe. The parent stops the nodes with SIGTERM
 * (graceful raft_close()), counts a node that died on its own as a failure
 * (libraft crashes are findings), and prints a result line in the format
 * of `raftmq bench`, or with --json one object with its keys.
 *
 * Settings follow the broker's (consensus/cons_node.c): heartbeat 100 ms,
 * election 1000 ms, pre-vote, snapshot threshold 65536 / trailing 8192,
 * max inflight entries max(256, --inflight). Entry buffers are padded to a
 * multiple of 8 bytes (raft_uv refuses others) and never freed after a
 * failed raft_apply() (0.22.1 frees them itself on some failures).
 *
 * Usage: raft-ref [--size B] [--batch K] [--inflight N] [--seconds S]
 *                 [--warmup S] [--json] [--name W] [--label L] [--run N]
 *                 [--dir D] [--keep] [--snapshot-threshold N]
 *                 [--snapshot-trailing N] [--nodelay]
 * Exit status: 0, 1 if the run failed (no leader, leadership lost, a node
 * died), 2 on a usage error.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#define N_NODES 3
#define START_ELECTION_MS 150 /* node 1, until it leads */
#define ELECTION_MS 1000
#define HEARTBEAT_MS 100
#define MIN_MAX_INFLIGHT 256
#define WATCH_MS 5
#define MS 1000000ull /* ns */

struct opts {
	unsigned size;	   /* bytes per payload */
	unsigned batch;	   /* payloads per entry */
	unsigned inflight; /* entries proposed and not yet applied */
	double seconds;	   /* measured */
	double warmup;	   /* before measuring */
	bool json;
	bool keep;
	bool nodelay; /* TCP_NODELAY on the Raft connections */
	char name[64];
	const char *label;
	const char *dir; /* parent of the temporary dir */
	int run;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;
};

/* What the leader sends to the parent: one write below PIPE_BUF, so it is
 * atomic even if a second leader (after a failure) writes too. */
struct ref_result {
	int ok;
	char err[200];
	int leader; /* node id */
	double elect_ms;
	uint64_t entries;
	uint64_t msgs;
	double secs;
	double p50, p99, p999, max_ms; /* commit latency per entry */
	double max_gap_ms;	       /* longest time without a commit */
	double cpu_s[N_NODES];	       /* utime+stime during the window */
	double rss_mib[N_NODES];       /* at the end of the window */
};

/* One proposal slot; --inflight of them, recycled through a free list. */
struct ref_req {
	struct raft_apply req;
	uint64_t sent_ns;
	struct ref_req *next_free;
};

struct node {
	int id;
	const struct opts *o;
	pid_t pids[N_NODES];
	char addr[N_NODES][32];
	int result_fd;
	uint64_t start_ns;

	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	uv_timer_t watch;
	uv_timer_t phase;
	uv_signal_t sigterm, sigint;
	bool closing;
	uint64_t applied; /* FSM state: entries applied */

	/* Leader only. */
	bool leading;	/* the workload started here */
	bool proposing; /* keep the pipeline full */
	bool measuring;
	bool reported;
	struct ref_req *reqs, *free_reqs;
	unsigned char *template; /* one entry's bytes */
	size_t entry_len;
	uint64_t seq;
	uint64_t t0, t1, last_commit;
	uint64_t entries;
	uint64_t *lat; /* ns per entry committed in the window */
	size_t n_lat, cap_lat;
	double max_gap_ns;
	double cpu0[N_NODES];
	struct ref_result res;
};

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

/* ------------------------------------------------------------------------
 * /proc readings (the CPU accounting of `raftmq bench`)
 */

static double proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	FILE *f;
	size_t n;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p == NULL ||
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
		   &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_rss_mib(pid_t pid)
{
	char path[64], line[256];
	double mib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long kb;

		if (sscanf(line, "VmRSS: %lu", &kb) == 1) {
			mib = (double)kb / 1024.0;
			break;
		}
	}
	fclose(f);
	return mib;
}

/* ------------------------------------------------------------------------
 * The FSM: counts entries, snapshots the count (the raft example's FSM).
 */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		     void **result)
{
	struct node *n = fsm->data;

	(void)buf;
	n->applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct node *n = fsm->data;

	*bufs = raft_malloc(sizeof(**bufs));
	if (*bufs == NULL) {
		return RAFT_NOMEM;
	}
	(*bufs)[0].len = sizeof(uint64_t);
	(*bufs)[0].base = raft_malloc(sizeof(uint64_t));
	if ((*bufs)[0].base == NULL) {
		raft_free(*bufs);
		return RAFT_NOMEM;
	}
	memcpy((*bufs)[0].base, &n->applied, sizeof(uint64_t));
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct node *n = fsm->data;

	if (buf->len == sizeof(uint64_t)) {
		memcpy(&n->applied, buf->base, sizeof(uint64_t));
	}
	raft_free(buf->base);
	return 0;
}

/* ------------------------------------------------------------------------
 * The leader's workload
 */

static void report(struct node *n)
{
	ssize_t w;

	if (n->reported) {
		return;
	}
	n->reported = true;
	n->res.leader = n->id;
	w = write(n->result_fd, &n->res, sizeof(n->res));
	(void)w; /* the parent treats a missing record as a failure */
}

static void fail(struct node *n, const char *what, int rv)
{
	if (n->reported) {
		return;
	}
	n->proposing = false;
	n->res.ok = 0;
	snprintf(n->res.err, sizeof(n->res.err), "node %d: %s: %s", n->id, what,
		 raft_strerror(rv));
	report(n);
}

static void apply_cb(struct raft_apply *req, int status, void *result);

static int propose(struct node *n)
{
	struct ref_req *r = n->free_reqs;
	struct raft_buffer buf;
	int rv;

	if (r == NULL) {
		return 0;
	}
	buf.len = n->entry_len;
	buf.base = raft_malloc(buf.len);
	if (buf.base == NULL) {
		fail(n, "raft_malloc", RAFT_NOMEM);
		return RAFT_NOMEM;
	}
	memcpy(buf.base, n->template, buf.len);
	n->seq++;
	memcpy(buf.base, &n->seq, sizeof(n->seq));
	r->req.data = n;
	r->sent_ns = now_ns();
	rv = raft_apply(&n->raft, &r->req, &buf, 1, apply_cb);
	if (rv != 0) {
		/* Not freeing buf.base: 0.22.1 frees it itself on some
		 * failures (docs/libraft.md); a leak beats a double free. */
		fail(n, "raft_apply", rv);
		return rv;
	}
	n->free_reqs = r->next_free;
	return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct ref_req *r = (struct ref_req *)(void *)req;
	struct node *n = req->data;
	uint64_t now = now_ns();

	(void)result;
	r->next_free = n->free_reqs;
	n->free_reqs = r;
	if (n->closing) {
		return;
	}
	if (status != 0) {
		fail(n, "entry not committed", status);
		return;
	}
	if (n->measuring) {
		if (n->last_commit != 0 &&
		    (double)(now - n->last_commit) > n->max_gap_ns) {
			n->max_gap_ns = (double)(now - n->last_commit);
		}
		n->last_commit = now;
		n->entries++;
		if (n->n_lat == n->cap_lat) {
			size_t cap = n->cap_lat ? n->cap_lat * 2 : 65536;
			uint64_t *l = realloc(n->lat, cap * sizeof(*l));

			if (l == NULL) {
				fail(n, "out of memory", RAFT_NOMEM);
				return;
			}
			n->lat = l;
			n->cap_lat = cap;
		}
		n->lat[n->n_lat++] = now - r->sent_ns;
	}
	if (n->proposing) {
		(void)propose(n);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Element ceil(p*n)-1 of the sorted samples, in ms (as `raftmq bench`). */
static double pct_ms(const uint64_t *sorted, size_t n, double p)
{
	double r = p * (double)n;
	size_t i = (size_t)r;

	if (n == 0) {
		return -1;
	}
	if ((double)i < r) {
		i++;
	}
	i = i > 0 ? i - 1 : 0;
	if (i >= n) {
		i = n - 1;
	}
	return (double)sorted[i] / 1e6;
}

static void phase_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	struct ref_result *res = &n->res;

	if (n->closing || n->reported) {
		return;
	}
	if (!n->measuring) {
		/* End of the warm-up. */
		for (int i = 0; i < N_NODES; i++) {
			n->cpu0[i] = proc_cpu_s(n->pids[i]);
		}
		n->t0 = now_ns();
		n->measuring = true;
		uv_timer_start(&n->phase, phase_cb,
			       (uint64_t)(n->o->seconds * 1000), 0);
		return;
	}
	n->t1 = now_ns();
	n->measuring = false;
	n->proposing = false;
	res->ok = 1;
	res->entries = n->entries;
	res->msgs = n->entries * n->o->batch;
	res->secs = (double)(n->t1 - n->t0) / 1e9;
	for (int i = 0; i < N_NODES; i++) {
		res->cpu_s[i] = proc_cpu_s(n->pids[i]) - n->cpu0[i];
		res->rss_mib[i] = proc_rss_mib(n->pids[i]);
	}
	qsort(n->lat, n->n_lat, sizeof(*n->lat), cmp_u64);
	res->p50 = pct_ms(n->lat, n->n_lat, 0.50);
	res->p99 = pct_ms(n->lat, n->n_lat, 0.99);
	res->p999 = pct_ms(n->lat, n->n_lat, 0.999);
	res->max_ms = n->n_lat > 0 ? (double)n->lat[n->n_lat - 1] / 1e6 : -1;
	res->max_gap_ms = n->max_gap_ns / 1e6;
	report(n);
}

static int workload_start(struct node *n)
{
	const struct opts *o = n->o;

	n->entry_len = ((size_t)o->size * o->batch + 7) & ~(size_t)7;
	n->template = malloc(n->entry_len);
	n->reqs = calloc(o->inflight, sizeof(*n->reqs));
	if (n->template == NULL || n->reqs == NULL) {
		fail(n, "out of memory", RAFT_NOMEM);
		return RAFT_NOMEM;
	}
	for (size_t i = 0; i < n->entry_len; i++) {
		n->template[i] = (unsigned char)('a' + i % 26);
	}
	for (unsigned i = 0; i < o->inflight; i++) {
		n->reqs[i].next_free = n->free_reqs;
		n->free_reqs = &n->reqs[i];
	}
	n->leading = true;
	n->proposing = true;
	n->res.elect_ms = (double)(now_ns() - n->start_ns) / 1e6;
	uv_timer_start(&n->phase, phase_cb, (uint64_t)(o->warmup * 1000), 0);
	for (unsigned i = 0; i < o->inflight && n->proposing; i++) {
		if (propose(n) != 0) {
			return 1;
		}
	}
	return 0;
}

/* Polls the role (libraft has no leadership callback). */
static void watch_cb(uv_timer_t *t)
{
	struct node *n = t->data;
	bool leader = raft_state(&n->raft) == RAFT_LEADER;

	if (n->closing) {
		return;
	}
	if (leader && !n->leading && !n->reported) {
		/* Back to the broker's timeout: a leader steps down when it
		 * has not heard from a majority for one election timeout. */
		raft_set_election_timeout(&n->raft, ELECTION_MS);
		(void)workload_start(n);
	} else if (!leader && n->leading && n->proposing) {
		fail(n, "lost leadership during the run", RAFT_LEADERSHIPLOST);
	}
}

/* ------------------------------------------------------------------------
 * --nodelay: raft_uv_tcp with TCP_NODELAY on its sockets
 *
 * raft_uv_tcp never calls uv_tcp_nodelay(), so Nagle's algorithm is on for
 * every Raft connection. With small AppendEntries messages in flight it
 * holds a segment until the previous one is ACKed, and the receiver delays
 * that ACK (40 ms on Linux). --nodelay wraps the transport's listen and
 * connect so that both ends of every connection get TCP_NODELAY, which
 * shows what the stall costs. One node per process: the wrapped callbacks
 * (raft_uv passes the same function for every peer) are kept in statics.
 */

static int (*tcp_listen)(struct raft_uv_transport *t, raft_uv_accept_cb cb);
static int (*tcp_connect)(struct raft_uv_transport *t,
			  struct raft_uv_connect *req, raft_id id,
			  const char *address, raft_uv_connect_cb cb);
static raft_uv_accept_cb user_accept_cb;
static raft_uv_connect_cb user_connect_cb;

static void nodelay_accept_cb(struct raft_uv_transport *t, raft_id id,
			      const char *address, struct uv_stream_s *stream)
{
	(void)uv_tcp_nodelay((uv_tcp_t *)stream, 1);
	user_accept_cb(t, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	user_accept_cb = cb;
	return tcp_listen(t, nodelay_accept_cb);
}

static void nodelay_connect_cb(struct raft_uv_connect *req,
			       struct uv_stream_s *stream, int status)
{
	if (status == 0) {
		(void)uv_tcp_nodelay((uv_tcp_t *)stream, 1);
	}
	user_connect_cb(req, stream, status);
}

static int nodelay_connect(struct raft_uv_transport *t,
			   struct raft_uv_connect *req, raft_id id,
			   const char *address, raft_uv_connect_cb cb)
{
	if (user_connect_cb != NULL && user_connect_cb != cb) {
		return RAFT_INVALID; /* not the raft_uv this was written for */
	}
	user_connect_cb = cb;
	return tcp_connect(t, req, id, address, nodelay_connect_cb);
}

/* ------------------------------------------------------------------------
 * Node lifecycle (child process)
 */

static void handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void raft_closed(struct raft *r)
{
	struct node *n = r->data;

	raft_uv_close(&n->io);
	raft_uv_tcp_close(&n->transport);
	uv_close((uv_handle_t *)&n->watch, handle_closed);
	uv_close((uv_handle_t *)&n->phase, handle_closed);
	uv_close((uv_handle_t *)&n->sigterm, handle_closed);
	uv_close((uv_handle_t *)&n->sigint, handle_closed);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct node *n = s->data;

	(void)signum;
	if (n->closing) {
		return;
	}
	n->closing = true;
	n->proposing = false;
	uv_timer_stop(&n->watch);
	uv_timer_stop(&n->phase);
	raft_close(&n->raft, raft_closed);
}

static int node_main(struct node *n, const char *dir)
{
	struct raft_configuration conf;
	int rv;

	n->start_ns = now_ns();
	uv_loop_init(&n->loop);
	n->transport.version = 1; /* 0.22.1 refuses 0 */
	n->transport.data = n;
	rv = raft_uv_tcp_init(&n->transport, &n->loop);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: raft_uv_tcp_init(): %s\n",
			n->id, raft_strerror(rv));
		return 1;
	}
	if (n->o->nodelay) {
		tcp_listen = n->transport.listen;
		tcp_connect = n->transport.connect;
		n->transport.listen = nodelay_listen;
		n->transport.connect = nodelay_connect;
	}
	n->io.version = 2;
	n->io.data = n;
	rv = raft_uv_init(&n->io, &n->loop, dir, &n->transport);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: raft_uv_init(%s): %s\n",
			n->id, dir, n->io.errmsg);
		return 1;
	}
	n->fsm.version = 1;
	n->fsm.data = n;
	n->fsm.apply = fsm_apply;
	n->fsm.snapshot = fsm_snapshot;
	n->fsm.restore = fsm_restore;
	rv = raft_init(&n->raft, &n->io, &n->fsm, (raft_id)n->id,
		       n->addr[n->id - 1]);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: raft_init(): %s\n", n->id,
			raft_errmsg(&n->raft));
		return 1;
	}
	n->raft.data = n;
	raft_set_election_timeout(&n->raft,
				  n->id == 1 ? START_ELECTION_MS : ELECTION_MS);
	raft_set_heartbeat_timeout(&n->raft, HEARTBEAT_MS);
	raft_set_snapshot_threshold(&n->raft, n->o->snapshot_threshold);
	raft_set_snapshot_trailing(&n->raft, n->o->snapshot_trailing);
	raft_set_max_inflight_entries(
		&n->raft, n->o->inflight > MIN_MAX_INFLIGHT ? n->o->inflight
							    : MIN_MAX_INFLIGHT);
	raft_set_pre_vote(&n->raft, true);
	raft_configuration_init(&conf);
	for (int i = 0; i < N_NODES; i++) {
		rv = raft_configuration_add(&conf, (raft_id)(i + 1), n->addr[i],
					    RAFT_VOTER);
		if (rv != 0) {
			fprintf(stderr, "raft-ref: configuration: %s\n",
				raft_strerror(rv));
			return 1;
		}
	}
	rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: raft_bootstrap(): %s\n",
			n->id, raft_errmsg(&n->raft));
		return 1;
	}
	rv = raft_start(&n->raft);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: raft_start(): %s\n", n->id,
			raft_errmsg(&n->raft));
		return 1;
	}
	uv_timer_init(&n->loop, &n->watch);
	uv_timer_init(&n->loop, &n->phase);
	n->watch.data = n->phase.data = n;
	uv_timer_start(&n->watch, watch_cb, WATCH_MS, WATCH_MS);
	uv_signal_init(&n->loop, &n->sigterm);
	uv_signal_init(&n->loop, &n->sigint);
	n->sigterm.data = n->sigint.data = n;
	uv_signal_start(&n->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&n->sigint, signal_cb, SIGINT);
	uv_run(&n->loop, UV_RUN_DEFAULT);
	rv = uv_loop_close(&n->loop);
	free(n->lat);
	free(n->reqs);
	free(n->template);
	if (rv != 0) {
		fprintf(stderr, "raft-ref: node %d: handles left open\n",
			n->id);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Parent: ports, dirs, children, result
 */

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd < 0) {
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
		port = ntohs(a.sin_port);
	}
	close(fd);
	return port;
}

static void print_result(const struct opts *o, const struct ref_result *r)
{
	double cpu = 0, msgs_s, mb_s, us, entries_s;

	for (int i = 0; i < N_NODES; i++) {
		cpu += r->cpu_s[i];
	}
	msgs_s = r->secs > 0 ? (double)r->msgs / r->secs : 0;
	entries_s = r->secs > 0 ? (double)r->entries / r->secs : 0;
	mb_s = msgs_s * o->size / 1e6;
	us = r->msgs > 0 ? cpu / (double)r->msgs * 1e6 : 0;
	if (!o->json) {
		printf("%-6s msgs/s %.0f  MB/s %.2f  p50 %.2f ms  p99 %.2f ms  "
		       "p99.9 %.2f ms  broker CPU %.1f us/msg  client CPU - %%"
		       "  (%" PRIu64 " msgs in %.3f s)\n",
		       o->name, msgs_s, mb_s, r->p50, r->p99, r->p999, us,
		       r->msgs, r->secs);
		printf("       {\"entries_per_s\":%.0f,\"batch\":%u,"
		       "\"inflight\":%u,\"entry_bytes\":%u,"
		       "\"max_commit_gap_ms\":%.1f,\"elect_ms\":%.0f,"
		       "\"rss_mib\":[%.0f,%.0f,%.0f]}\n",
		       entries_s, o->batch, o->inflight, o->size * o->batch,
		       r->max_gap_ms, r->elect_ms, r->rss_mib[0], r->rss_mib[1],
		       r->rss_mib[2]);
		return;
	}
	printf("{\"workload\":\"%s\",\"sys\":\"raft-ref\",\"label\":\"%s\","
	       "\"run\":%d,\"msgs\":%" PRIu64
	       ",\"size\":%u,\"secs\":%.3f,"
	       "\"msgs_per_s\":%.0f,\"mb_per_s\":%.3f,\"p50_ms\":%.3f,"
	       "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
	       "\"broker_cpu_us_per_msg\":%.2f,\"client_cpu_pct\":null,"
	       "\"broker_cpu_s\":%.2f,\"broker_cpu_s_per_node\":[%.2f,%.2f,"
	       "%.2f],\"client_cpu_s\":null,\"extra\":{\"entries\":%" PRIu64
	       ",\"entries_per_s\":%.0f,\"batch\":%u,\"inflight\":%u,"
	       "\"entry_bytes\":%u,\"leader\":%d,\"elect_ms\":%.1f,"
	       "\"max_commit_gap_ms\":%.2f,\"rss_mib\":[%.1f,%.1f,%.1f],"
	       "\"snapshot_threshold\":%u,\"snapshot_trailing\":%u,"
	       "\"warmup_s\":%.2f,"
	       "\"nodelay\":%s}}\n",
	       o->name, o->label, o->run, r->msgs, o->size, r->secs, msgs_s,
	       mb_s, r->p50, r->p99, r->p999, r->max_ms, us, cpu, r->cpu_s[0],
	       r->cpu_s[1], r->cpu_s[2], r->entries, entries_s, o->batch,
	       o->inflight, o->size * o->batch, r->leader, r->elect_ms,
	       r->max_gap_ms, r->rss_mib[0], r->rss_mib[1], r->rss_mib[2],
	       o->snapshot_threshold, o->snapshot_trailing, o->warmup,
	       o->nodelay ? "true" : "false");
}

/* Waits for the result record; fails early if a node dies. */
static int wait_result(const struct opts *o, int fd, const pid_t *pids,
		       int *status, struct ref_result *res)
{
	uint64_t deadline =
		now_ns() + (uint64_t)((o->warmup + o->seconds + 30) * 1e9);

	while (now_ns() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rv = poll(&p, 1, 200);

		if (rv > 0) {
			ssize_t n = read(fd, res, sizeof(*res));

			if (n == (ssize_t)sizeof(*res)) {
				return 0;
			}
			fprintf(stderr, "raft-ref: no result from the nodes\n");
			return 1;
		}
		for (int i = 0; i < N_NODES; i++) {
			if (pids[i] > 0 && status[i] == -1 &&
			    waitpid(pids[i], &status[i], WNOHANG) == pids[i]) {
				fprintf(stderr,
					"raft-ref: node %d died during the "
					"run (status 0x%x)\n",
					i + 1, (unsigned)status[i]);
				return 1;
			}
		}
	}
	fprintf(stderr, "raft-ref: no result within %.0f s\n",
		o->warmup + o->seconds + 30);
	return 1;
}

/* Stops the nodes gracefully; returns 1 if one of them did not exit 0. */
static int stop_nodes(const pid_t *pids, int *status)
{
	int bad = 0;

	for (int i = 0; i < N_NODES; i++) {
		if (pids[i] > 0 && status[i] == -1) {
			kill(pids[i], SIGTERM);
		}
	}
	for (int i = 0; i < N_NODES; i++) {
		uint64_t deadline = now_ns() + 10 * 1000 * MS;

		if (pids[i] <= 0) {
			continue;
		}
		while (status[i] == -1) {
			if (waitpid(pids[i], &status[i], WNOHANG) == pids[i]) {
				break;
			}
			if (now_ns() > deadline) {
				fprintf(stderr,
					"raft-ref: node %d did not stop "
					"within 10 s: SIGKILL\n",
					i + 1);
				kill(pids[i], SIGKILL);
				waitpid(pids[i], &status[i], 0);
				bad = 1;
				break;
			}
			usleep(5000);
		}
		if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0) {
			if (WIFSIGNALED(status[i])) {
				fprintf(stderr,
					"raft-ref: node %d ended by signal "
					"%d\n",
					i + 1, WTERMSIG(status[i]));
			} else {
				fprintf(stderr,
					"raft-ref: node %d exited with %d\n",
					i + 1, WEXITSTATUS(status[i]));
			}
			bad = 1;
		}
	}
	return bad;
}

static void usage(FILE *f)
{
	fputs("usage: raft-ref [options]\n"
	      "  Raw libraft ceiling: 3 nodes on 127.0.0.1 (raft_uv + "
	      "raft_uv_tcp, fsync),\n"
	      "  the leader keeps --inflight entries of --batch payloads "
	      "in flight.\n"
	      "options:\n"
	      "  --size B       bytes per payload (128)\n"
	      "  --batch K      payloads per entry (64)\n"
	      "  --inflight N   entries in flight (16)\n"
	      "  --seconds S    measured time (3)\n"
	      "  --warmup S     time before measuring (1)\n"
	      "  --name W       workload name in the result (ref-<B>B)\n"
	      "  --label L --run N   recorded in the JSON object\n"
	      "  --dir D        parent of the temporary data dirs ($TMPDIR "
	      "or /tmp)\n"
	      "  --keep         keep the data dirs\n"
	      "  --snapshot-threshold N   entries between snapshots "
	      "(65536)\n"
	      "  --snapshot-trailing N    entries kept after a snapshot "
	      "(8192)\n"
	      "  --nodelay      TCP_NODELAY on the Raft connections "
	      "(raft_uv_tcp leaves\n"
	      "                 Nagle on)\n"
	      "  --json         print one JSON object\n",
	      f);
}

static int parse_num(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{"size", required_argument, NULL, 's'},
		{"batch", required_argument, NULL, 'b'},
		{"inflight", required_argument, NULL, 'i'},
		{"seconds", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{"name", required_argument, NULL, 'n'},
		{"label", required_argument, NULL, 'l'},
		{"run", required_argument, NULL, 'r'},
		{"dir", required_argument, NULL, 'd'},
		{"keep", no_argument, NULL, 'k'},
		{"snapshot-threshold", required_argument, NULL, 'S'},
		{"snapshot-trailing", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'j'},
		{"nodelay", no_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *name = NULL;
	double v;
	int c;

	memset(o, 0, sizeof(*o));
	o->size = 128;
	o->batch = 64;
	o->inflight = 16;
	o->seconds = 3;
	o->warmup = 1;
	o->label = "raft-ref";
	o->run = 1;
	o->snapshot_threshold = 65536;
	o->snapshot_trailing = 8192;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 's':
			bad = parse_num(optarg, 1, 64 << 20, &v);
			o->size = (unsigned)v;
			break;
		case 'b':
			bad = parse_num(optarg, 1, 1 << 20, &v);
			o->batch = (unsigned)v;
			break;
		case 'i':
			bad = parse_num(optarg, 1, 1 << 20, &v);
			o->inflight = (unsigned)v;
			break;
		case 't':
			bad = parse_num(optarg, 0.1, 86400, &o->seconds);
			break;
		case 'w':
			bad = parse_num(optarg, 0, 86400, &o->warmup);
			break;
		case 'n':
			name = optarg;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'r':
			bad = parse_num(optarg, 0, 1e9, &v);
			o->run = (int)v;
			break;
		case 'd':
			o->dir = optarg;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'S':
			bad = parse_num(optarg, 1, 4e9, &v);
			o->snapshot_threshold = (unsigned)v;
			break;
		case 'T':
			bad = parse_num(optarg, 0, 4e9, &v);
			o->snapshot_trailing = (unsigned)v;
			break;
		case 'j':
			o->json = true;
			break;
		case 'N':
			o->nodelay = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			fprintf(stderr,
				"raft-ref: unknown or incomplete option %s "
				"(see --help)\n",
				argv[optind - 1]);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "raft-ref: bad value: %s\n", optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "raft-ref: unexpected argument %s\n",
			argv[optind]);
		return 2;
	}
	if ((uint64_t)o->size * o->batch > (64u << 20)) {
		fprintf(stderr, "raft-ref: entries above 64 MiB\n");
		return 2;
	}
	if (name != NULL) {
		snprintf(o->name, sizeof(o->name), "%s", name);
	} else {
		snprintf(o->name, sizeof(o->name), "ref-%uB", o->size);
	}
	return 0;
}

/* A forked node: waits for the pids of its siblings, then runs. */
static int child_main(const struct opts *o, int i, int pfd[2],
		      int spfd[N_NODES][2], char addr[N_NODES][32],
		      const char *dir)
{
	static struct node n;

	/* Die with the parent (e.g. a test timeout kills it). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1) {
		return 1;
	}
	/* raft_uv_tcp writes to peers that may have closed (at the end of
	 * the run): EPIPE, not a signal, as in raftmqd. */
	signal(SIGPIPE, SIG_IGN);
	close(pfd[0]);
	for (int j = 0; j < N_NODES; j++) {
		close(spfd[j][1]);
		if (j != i) {
			close(spfd[j][0]);
		}
	}
	if (read(spfd[i][0], n.pids, sizeof(n.pids)) !=
	    (ssize_t)sizeof(n.pids)) {
		return 1; /* the parent failed before starting us */
	}
	close(spfd[i][0]);
	n.id = i + 1;
	n.o = o;
	n.result_fd = pfd[1];
	memcpy(n.addr, addr, sizeof(n.addr));
	return node_main(&n, dir);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct ref_result res;
	char tmpl[4096], dirs[N_NODES][4200], addr[N_NODES][32];
	const char *parent;
	pid_t pids[N_NODES] = {0};
	int status[N_NODES] = {-1, -1, -1};
	int pfd[2], spfd[N_NODES][2], rv, bad;

	rv = parse_opts(&o, argc, argv);
	if (rv != 0) {
		return rv < 0 ? 0 : rv;
	}
	parent = o.dir ? o.dir : getenv("TMPDIR");
	snprintf(tmpl, sizeof(tmpl), "%s/raft-ref-XXXXXX",
		 parent && parent[0] ? parent : "/tmp");
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "raft-ref: mkdtemp(%s): %s\n", tmpl,
			strerror(errno));
		return 1;
	}
	for (int i = 0; i < N_NODES; i++) {
		int port = free_port();

		snprintf(dirs[i], sizeof(dirs[i]), "%s/node%d", tmpl, i + 1);
		if (port < 0 || mkdir(dirs[i], 0700) != 0) {
			fprintf(stderr, "raft-ref: port or dir: %s\n",
				strerror(errno));
			return 1;
		}
		snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", port);
	}
	if (pipe(pfd) != 0) {
		perror("raft-ref: pipe");
		return 1;
	}
	for (int i = 0; i < N_NODES; i++) {
		if (pipe(spfd[i]) != 0) {
			perror("raft-ref: pipe");
			return 1;
		}
	}
	fflush(NULL);
	for (int i = 0; i < N_NODES; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("raft-ref: fork");
			stop_nodes(pids, status);
			return 1;
		}
		if (pids[i] == 0) {
			_exit(child_main(&o, i, pfd, spfd, addr, dirs[i]));
		}
	}
	close(pfd[1]);
	/* Every node reads the CPU time of all three: tell them the pids
	 * (this also starts them together). */
	for (int i = 0; i < N_NODES; i++) {
		if (write(spfd[i][1], pids, sizeof(pids)) !=
		    (ssize_t)sizeof(pids)) {
			perror("raft-ref: write");
		}
		close(spfd[i][0]);
		close(spfd[i][1]);
	}
	rv = wait_result(&o, pfd[0], pids, status, &res);
	bad = stop_nodes(pids, status);
	close(pfd[0]);
	if (rv == 0 && !res.ok) {
		fprintf(stderr, "raft-ref: %s\n", res.err);
		rv = 1;
	}
	if (rv == 0) {
		print_result(&o, &res);
	}
	if (rv != 0 || bad) {
		fprintf(stderr, "raft-ref: data dirs kept in %s\n", tmpl);
		return 1;
	}
	if (o.keep) {
		fprintf(stderr, "raft-ref: data dirs in %s\n", tmpl);
	} else if (nftw(tmpl, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		fprintf(stderr, "raft-ref: could not remove %s\n", tmpl);
	}
	return 0;
}
