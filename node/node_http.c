/* The HTTP endpoint: /metrics (Prometheus text), /healthz/live,
 * /healthz/ready, /v1/status (JSON) and / (the status page).
 *
 * libmicrohttpd runs inside the node's libuv loop, not in a thread of its
 * own: it is started in epoll mode without an internal thread, its epoll fd
 * is watched with a uv_poll handle and MHD_run() is called when it is ready
 * (and on MHD's own timeout). Handlers therefore read the queue state on the
 * loop thread, with no locks and no stale copies. */
#include <malloc.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "node_int.h"
#include "node_log.h"
#include "node_page.h"

struct node_http {
	struct node_server *srv;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles;
	char why[192]; /* is_ready()'s sentence when it is composed */
};

/* --------------------------------------------------------------- text out */

struct out {
	char *p;
	size_t len, cap;
	int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o,
						      const char *fmt, ...)
{
	va_list ap;
	int n;
	if (o->failed) {
		return;
	}
	for (;;) {
		size_t room = o->cap - o->len;
		va_start(ap, fmt);
		n = vsnprintf(o->p ? o->p + o->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < room) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t cap = o->cap ? o->cap * 2 : 8192;
			char *np;
			while (cap - o->len <= (size_t)n) {
				cap *= 2;
			}
			np = realloc(o->p, cap);
			if (np == NULL) {
				o->failed = 1;
				return;
			}
			o->p = np;
			o->cap = cap;
		}
	}
}

/* A JSON string (names are validated UTF-8-agnostic bytes without control
 * characters, but quotes and backslashes may appear). */
static void put_json_str(struct out *o, const char *s)
{
	put(o, "\"");
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\') {
			put(o, "\\%c", *s);
		} else if ((unsigned char)*s < 0x20) {
			put(o, "\\u%04x", (unsigned char)*s);
		} else {
			put(o, "%c", *s);
		}
	}
	put(o, "\"");
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void put_label(struct out *o, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\') {
			put(o, "\\%c", *s);
		} else if (*s == '\n') {
			put(o, "\\n");
		} else {
			put(o, "%c", *s);
		}
	}
}

/* ---------------------------------------------------------------- content */

static bool is_ready(struct node_server *srv, const char **why)
{
	struct cons_status st;
	uint64_t missing;
	size_t i;
	bool member = false;
	cons_status(srv->cons, &st);
	for (i = 0; i < st.n_nodes; i++) {
		member |= st.nodes[i].id == srv->cfg.id;
	}
	if (srv->stopping) {
		*why = "shutting down";
		return false;
	}
	if (!member) {
		*why = "not a member of the cluster configuration";
		return false;
	}
	if (st.leader_id == 0) {
		*why = "no known leader";
		return false;
	}
	if (st.is_leader && !srv->leader_ready) {
		*why = "leader still applying its barrier";
		return false;
	}
	if (st.applied_index + 64 < st.commit_index) {
		*why = "applying committed entries";
		return false;
	}
	missing = cons_bodies_missing(srv->cons);
	if (missing > 0) {
		/* It cannot deliver those messages: not a node to send
		 * clients to, nor to make leader (node_bodies.c). */
		snprintf(srv->http->why, sizeof srv->http->why,
			 "%llu message bodies missing from this node's store "
			 "(installed a snapshot); %s",
			 (unsigned long long)missing,
			 node_bodies_blocked(srv)
				 ? "they cannot be fetched: auth is on and "
				   "peer_token_file is not set"
				 : "fetching them from the other members");
		*why = srv->http->why;
		return false;
	}
	*why = "ready";
	return true;
}

struct metrics_ctx {
	struct out *o;
	const char *metric;
	int which;
};

static uint64_t info_value(const struct q_queue_info *i, int which)
{
	const uint64_t v[] = {
		i->ready,	 i->unacked,   i->consumers,	 i->delayed,
		i->bytes,	 i->published, i->delivered,	 i->redelivered,
		i->acked,	 i->nacked,    i->dead_lettered, i->expired,
		i->deduplicated, i->dropped,   i->rejected,	 i->released,
	};
	return v[which];
}

static const struct {
	const char *name, *type, *help;
} queue_metrics[] = {
	{"raftmq_queue_messages_ready", "gauge",
	 "Messages ready for delivery."},
	{"raftmq_queue_messages_unacked", "gauge",
	 "Messages delivered and not yet acknowledged."},
	{"raftmq_queue_consumers", "gauge", "Attached consumers."},
	{"raftmq_queue_messages_delayed", "gauge",
	 "Messages waiting for their delay."},
	{"raftmq_queue_message_bytes", "gauge",
	 "Body bytes of messages not held by consumers."},
	{"raftmq_queue_messages_published_total", "counter",
	 "Messages accepted into the queue."},
	{"raftmq_queue_messages_delivered_total", "counter",
	 "Deliveries (first and repeated)."},
	{"raftmq_queue_messages_redelivered_total", "counter",
	 "Deliveries of a message delivered before."},
	{"raftmq_queue_messages_acked_total", "counter", "Acknowledged."},
	{"raftmq_queue_messages_nacked_total", "counter",
	 "Negatively acknowledged (requeued, counted as failed)."},
	{"raftmq_queue_messages_dead_lettered_total", "counter",
	 "Moved to the dead-letter queue."},
	{"raftmq_queue_messages_expired_total", "counter", "TTL expiries."},
	{"raftmq_queue_messages_deduplicated_total", "counter",
	 "Publishes answered as duplicates."},
	{"raftmq_queue_messages_dropped_total", "counter",
	 "Messages dropped (no dead-letter queue, or dead-lettered twice)."},
	{"raftmq_queue_messages_rejected_total", "counter",
	 "Publishes refused (queue full)."},
	{"raftmq_queue_messages_released_total", "counter",
	 "Messages released back without counting a failure."},
};

static int metrics_queue_cb(void *data, const struct q_queue_info *i)
{
	struct metrics_ctx *c = data;
	put(c->o, "%s{queue=\"", c->metric);
	put_label(c->o, i->name);
	put(c->o, "\"} %llu\n", (unsigned long long)info_value(i, c->which));
	return 0;
}

static void metrics(struct node_server *srv, struct out *o)
{
	struct cons_status st;
	struct q_totals t;
	const struct q_state *qs = cons_state(srv->cons);
	struct metrics_ctx c;
	struct cons_bodies_stats bs;
	uint64_t fetched, fetch_errors;
	size_t k;
	int i;
	uint64_t cum = 0;

	cons_status(srv->cons, &st);
	q_state_totals(qs, &t);
	cons_bodies_stats(srv->cons, &bs);
	node_bodies_stats(srv, &fetched, &fetch_errors);
	c.o = o;
	for (k = 0; k < sizeof queue_metrics / sizeof queue_metrics[0]; k++) {
		put(o, "# HELP %s %s\n# TYPE %s %s\n", queue_metrics[k].name,
		    queue_metrics[k].help, queue_metrics[k].name,
		    queue_metrics[k].type);
		c.metric = queue_metrics[k].name;
		c.which = (int)k;
		q_state_foreach_queue(qs, metrics_queue_cb, &c);
	}
#define G(name, type, help, fmt, v)                                     \
	put(o,                                                          \
	    "# HELP " name " " help "\n# TYPE " name " " type "\n" name \
	    " " fmt "\n",                                               \
	    v)
	G("raftmq_raft_term", "gauge", "Current Raft term.", "%llu",
	  (unsigned long long)st.term);
	G("raftmq_raft_commit_index", "gauge", "Raft commit index.", "%llu",
	  (unsigned long long)st.commit_index);
	G("raftmq_raft_applied_index", "gauge", "Last applied log index.",
	  "%llu", (unsigned long long)st.applied_index);
	G("raftmq_raft_is_leader", "gauge", "1 if this node leads.", "%d",
	  st.is_leader ? 1 : 0);
	G("raftmq_raft_leader_id", "gauge", "Known leader's id (0: none).",
	  "%llu", (unsigned long long)st.leader_id);
	G("raftmq_raft_elections_total", "counter",
	  "Times this node started an election.", "%llu",
	  (unsigned long long)st.elections);
	G("raftmq_raft_leader_changes_total", "counter",
	  "Times the known leader changed.", "%llu",
	  (unsigned long long)st.leader_changes);
	G("raftmq_log_entries", "gauge", "Log entries since the last snapshot.",
	  "%llu", (unsigned long long)st.log_entries);
	G("raftmq_snapshot_bytes", "gauge", "Size of the last snapshot.",
	  "%llu", (unsigned long long)st.snapshot_bytes);
	G("raftmq_snapshot_index", "gauge", "Log index of the last snapshot.",
	  "%llu", (unsigned long long)st.snapshot_index);
	G("raftmq_log_bytes", "gauge",
	  "Log entry bytes applied since the last snapshot.", "%llu",
	  (unsigned long long)st.log_bytes);
	G("raftmq_snapshots_background_total", "counter",
	  "Snapshots dumped by a child process and handed to Raft.", "%llu",
	  (unsigned long long)st.bg_taken);
	G("raftmq_snapshot_background_failures_total", "counter",
	  "Background snapshot dumps that failed (then taken in place).",
	  "%llu", (unsigned long long)st.bg_failed);
	G("raftmq_snapshot_fork_seconds", "gauge",
	  "How long the last fork() for a snapshot stalled the node.", "%.6f",
	  st.bg_fork_ms / 1e3);
	G("raftmq_snapshot_fork_seconds_max", "gauge",
	  "The longest such stall since the node started.", "%.6f",
	  st.bg_fork_ms_max / 1e3);
	G("raftmq_loop_stall_seconds_max", "gauge",
	  "The longest time the node's event loop ran one thing (nothing "
	  "else, heartbeats included, ran meanwhile) since it started.",
	  "%.3f", (double)srv->stall_ms_max / 1e3);
	G("raftmq_snapshot_dump_seconds", "gauge",
	  "How long the last background dump took (off the loop).", "%.6f",
	  st.bg_child_ms / 1e3);
	G("raftmq_snapshot_tail_entries", "gauge",
	  "Entries applied while the last dump ran, stored after it.", "%llu",
	  (unsigned long long)st.bg_tail_entries);
	G("raftmq_memory_bytes", "gauge",
	  "Bytes held in memory for messages, what memory_limit bounds: the "
	  "queue state, the Raft log kept in memory and the body store's "
	  "index.",
	  "%llu", (unsigned long long)cons_memory_bytes(srv->cons));
	G("raftmq_memory_state_bytes", "gauge",
	  "Bytes of the queue state (index entries, timers, dedup ids; "
	  "bodies are in the body store).",
	  "%llu", (unsigned long long)t.alloc_bytes);
	/* The process's heap in use, all arenas (mallinfo2): unlike RSS it
	 * drops when memory is freed, so a leak shows as its growth, not as
	 * the high-water mark of a busy moment. */
	{
		struct mallinfo2 mi = mallinfo2();
		G("raftmq_heap_bytes", "gauge",
		  "Bytes of heap in use by the process (malloc, all arenas).",
		  "%llu", (unsigned long long)(mi.uordblks + mi.hblkhd));
	}
	G("raftmq_disk_limit_bytes", "gauge",
	  "disk_limit: body store bytes above which publishes are refused.",
	  "%llu", (unsigned long long)srv->cfg.disk_limit);
	G("raftmq_disk_alarm", "gauge",
	  "1 while publishes are refused for the body store's size.", "%d",
	  node_disk_alarm(srv) ? 1 : 0);
	G("raftmq_publishes_refused_disk_total", "counter",
	  "Publishes refused by the disk alarm.", "%llu",
	  (unsigned long long)srv->publishes_refused_disk);
	G("raftmq_memory_limit_bytes", "gauge",
	  "Memory limit above which publishes are refused.", "%llu",
	  (unsigned long long)srv->cfg.memory_limit);
	G("raftmq_memory_alarm", "gauge",
	  "1 while publishes are refused for memory.", "%d",
	  node_memory_alarm(srv) ? 1 : 0);
	G("raftmq_messages_stored", "gauge",
	  "Message copies stored in all queues.", "%llu",
	  (unsigned long long)t.messages);
	G("raftmq_store_missing_bodies", "gauge",
	  "Message bodies the state refers to that this node's store lacks "
	  "(after a snapshot install; fetched from the other members).",
	  "%llu", (unsigned long long)bs.missing);
	G("raftmq_store_waiting_bodies", "gauge",
	  "Message bodies kept in memory because the body store's disk is "
	  "full (written once space returns; 0 normally).",
	  "%llu", (unsigned long long)cons_bodies_waiting(srv->cons));
	G("raftmq_store_fetched_bodies_total", "counter",
	  "Missing message bodies fetched from other members and stored.",
	  "%llu", (unsigned long long)fetched);
	G("raftmq_store_fetch_errors_total", "counter",
	  "Failed fetches of missing bodies (requests, bad records, store).",
	  "%llu", (unsigned long long)fetch_errors);
	G("raftmq_store_disk_bytes", "gauge",
	  "Bytes of the body store's segment files.", "%llu",
	  (unsigned long long)bs.disk_bytes);
	G("raftmq_store_live_bytes", "gauge",
	  "Bytes of the bodies the state still refers to.", "%llu",
	  (unsigned long long)bs.live_bytes);
	G("raftmq_store_segments", "gauge", "Segment files of the body store.",
	  "%llu", (unsigned long long)bs.segments);
	G("raftmq_store_readahead_hits_total", "counter",
	  "Body reads served from read-ahead.", "%llu",
	  (unsigned long long)bs.readahead_hits);
	G("raftmq_store_compactions_total", "counter",
	  "Compactions of body store segments.", "%llu",
	  (unsigned long long)bs.compactions);
	G("raftmq_store_index_bytes", "gauge",
	  "Memory of the body store's index.", "%llu",
	  (unsigned long long)bs.index_bytes);
	G("raftmq_connections", "gauge", "Open client connections.", "%u",
	  srv->n_sessions);
	G("raftmq_connections_max", "gauge", "max_connections setting.", "%u",
	  srv->cfg.max_connections);
	G("raftmq_connections_total", "counter", "Accepted connections.",
	  "%llu", (unsigned long long)srv->connections_total);
	G("raftmq_connections_refused_total", "counter",
	  "Connections refused over max_connections.", "%llu",
	  (unsigned long long)srv->connections_refused);
	G("raftmq_connections_idle_closed_total", "counter",
	  "Connections closed for sending no first request (Hello with auth) "
	  "within hello_timeout_ms.",
	  "%llu", (unsigned long long)srv->connections_idle_closed);
	G("raftmq_frame_max_bytes", "gauge", "max_frame_bytes setting.", "%llu",
	  (unsigned long long)srv->cfg.max_frame_bytes);
	G("raftmq_requests_total", "counter", "Client requests received.",
	  "%llu", (unsigned long long)srv->requests_total);
	G("raftmq_errors_total", "counter", "Error frames sent to clients.",
	  "%llu", (unsigned long long)srv->errors_total);
	G("raftmq_publishes_refused_memory_total", "counter",
	  "Publishes refused by the memory alarm.", "%llu",
	  (unsigned long long)srv->publishes_refused_memory);
	G("raftmq_batches_proposed_total", "counter",
	  "Log entries proposed by this node (group commits).", "%llu",
	  (unsigned long long)srv->batches_proposed);
	G("raftmq_commands_batched_total", "counter",
	  "Commands carried by those entries.", "%llu",
	  (unsigned long long)srv->commands_batched);
	G("raftmq_client_bytes_in_total", "counter", "Bytes read from clients.",
	  "%llu", (unsigned long long)srv->bytes_in);
	G("raftmq_client_bytes_out_total", "counter",
	  "Bytes written to clients.", "%llu",
	  (unsigned long long)srv->bytes_out);
	G("raftmq_deliveries_deferred_total", "counter",
	  "Deliveries that waited for their consumer's connection to drain "
	  "before being encoded (its unsent output was over the window).",
	  "%llu", (unsigned long long)srv->deliveries_deferred);
#undef G
	put(o,
	    "# HELP raftmq_publish_confirm_seconds Time from receiving a "
	    "publish to confirming it.\n"
	    "# TYPE raftmq_publish_confirm_seconds histogram\n");
	for (i = 0; i < NODE_HIST_BUCKETS; i++) {
		cum += srv->confirm.buckets[i];
		put(o,
		    "raftmq_publish_confirm_seconds_bucket{le=\"%g\"} %llu\n",
		    node_hist_bounds[i], (unsigned long long)cum);
	}
	put(o,
	    "raftmq_publish_confirm_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "raftmq_publish_confirm_seconds_sum %.6f\n"
	    "raftmq_publish_confirm_seconds_count %llu\n",
	    (unsigned long long)srv->confirm.count, srv->confirm.sum,
	    (unsigned long long)srv->confirm.count);
}

struct json_ctx {
	struct out *o;
	int first;
};

static int json_queue_cb(void *data, const struct q_queue_info *i)
{
	struct json_ctx *c = data;
	struct out *o = c->o;
	put(o, "%s{\"name\":", c->first ? "" : ",");
	c->first = 0;
	put_json_str(o, i->name);
	put(o, ",\"topic\":");
	if (i->topic != NULL) {
		put_json_str(o, i->topic);
	} else {
		put(o, "null");
	}
	put(o,
	    ",\"ready\":%llu,\"unacked\":%llu,\"delayed\":%llu,"
	    "\"consumers\":%llu,\"bytes\":%llu,\"published\":%llu,"
	    "\"delivered\":%llu,\"redelivered\":%llu,\"acked\":%llu,"
	    "\"nacked\":%llu,\"dead_lettered\":%llu,\"expired\":%llu,"
	    "\"deduplicated\":%llu,\"dropped\":%llu,\"rejected\":%llu}",
	    (unsigned long long)i->ready, (unsigned long long)i->unacked,
	    (unsigned long long)i->delayed, (unsigned long long)i->consumers,
	    (unsigned long long)i->bytes, (unsigned long long)i->published,
	    (unsigned long long)i->delivered,
	    (unsigned long long)i->redelivered, (unsigned long long)i->acked,
	    (unsigned long long)i->nacked, (unsigned long long)i->dead_lettered,
	    (unsigned long long)i->expired, (unsigned long long)i->deduplicated,
	    (unsigned long long)i->dropped, (unsigned long long)i->rejected);
	return 0;
}

static int json_topic_cb(void *data, const struct q_topic_info *i)
{
	struct json_ctx *c = data;
	put(c->o, "%s{\"name\":", c->first ? "" : ",");
	c->first = 0;
	put_json_str(c->o, i->name);
	put(c->o, ",\"subscriptions\":%llu,\"published\":%llu}",
	    (unsigned long long)i->subscriptions,
	    (unsigned long long)i->published);
	return 0;
}

/* XXH3 of the queue state's deterministic dump: replicas at the same
 * applied index must report the same digest (tests compare them). */
static void put_digest(struct node_server *srv, struct out *o)
{
	void *buf;
	size_t len;
	if (q_state_dump_buf(cons_state(srv->cons), &buf, &len) != 0) {
		put(o, ",\"state_digest\":null");
		return;
	}
	put(o, ",\"state_digest\":\"%016llx\",\"state_bytes\":%zu",
	    (unsigned long long)XXH3_64bits(buf, len), len);
	free(buf);
}

static void status_json(struct node_server *srv, struct out *o, bool digest)
{
	struct cons_status st;
	struct q_totals t;
	struct json_ctx c;
	const char *why;
	bool ready = is_ready(srv, &why);
	size_t i;
	static const char *const roles[] = {"voter", "standby", "spare"};

	cons_status(srv->cons, &st);
	q_state_totals(cons_state(srv->cons), &t);
	put(o,
	    "{\"node_id\":%llu,\"version\":\"%s\",\"state\":\"%s\","
	    "\"ready\":%s,\"ready_reason\":\"%s\",\"leader_id\":%llu,"
	    "\"leader_client_address\":",
	    (unsigned long long)st.id, RAFTMQ_VERSION, st.state,
	    ready ? "true" : "false", why, (unsigned long long)st.leader_id);
	put_json_str(o, st.leader_client_address);
	put(o,
	    ",\"term\":%llu,\"commit_index\":%llu,\"applied_index\":%llu,"
	    "\"last_index\":%llu,\"snapshot_index\":%llu,"
	    "\"snapshot_bytes\":%llu,\"log_entries\":%llu,"
	    "\"memory_bytes\":%llu,\"memory_limit\":%llu,"
	    "\"messages\":%llu,\"connections\":%u,\"uptime_ms\":%llu,"
	    "\"nodes\":[",
	    (unsigned long long)st.term, (unsigned long long)st.commit_index,
	    (unsigned long long)st.applied_index,
	    (unsigned long long)st.last_index,
	    (unsigned long long)st.snapshot_index,
	    (unsigned long long)st.snapshot_bytes,
	    (unsigned long long)st.log_entries,
	    (unsigned long long)cons_memory_bytes(srv->cons),
	    (unsigned long long)srv->cfg.memory_limit,
	    (unsigned long long)t.messages, srv->n_sessions,
	    (unsigned long long)(uv_now(srv->loop) - srv->started_loop_ms));
	for (i = 0; i < st.n_nodes; i++) {
		const struct cons_node_status *n = &st.nodes[i];
		put(o, "%s{\"id\":%llu,\"raft_address\":", i ? "," : "",
		    (unsigned long long)n->id);
		put_json_str(o, n->raft_address);
		put(o, ",\"client_address\":");
		put_json_str(o, n->client_address);
		/* null: this node cannot tell (a follower's view of another
		 * follower); never a false "false" (docs/operations.md). */
		put(o, ",\"role\":\"%s\",\"reachable\":%s,\"leader\":%s",
		    roles[n->role],
		    n->reachable == CONS_REACH_UNKNOWN ? "null"
		    : n->reachable == CONS_REACH_YES   ? "true"
						       : "false",
		    n->id == st.leader_id ? "true" : "false");
		if (n->last_contact_ms >= 0) {
			put(o, ",\"last_contact_ms\":%lld}",
			    (long long)n->last_contact_ms);
		} else {
			put(o, ",\"last_contact_ms\":null}");
		}
	}
	put(o, "],\"queues\":[");
	c.o = o;
	c.first = 1;
	q_state_foreach_queue(cons_state(srv->cons), json_queue_cb, &c);
	put(o, "],\"topics\":[");
	c.first = 1;
	q_state_foreach_topic(cons_state(srv->cons), json_topic_cb, &c);
	put(o, "]");
	if (digest) {
		put_digest(srv, o);
	}
	put(o, "}\n");
}

/* ---------------------------------------------------------------- handler */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code,
			       const char *type, struct out *o)
{
	struct MHD_Response *r;
	enum MHD_Result rv;
	if (o->failed) {
		free(o->p);
		o->p = NULL;
		o->len = 0;
		code = MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
	r = MHD_create_response_from_buffer(o->len, o->p,
					    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(o->p);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rv = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return rv;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct node_http *h = cls;
	struct node_server *srv = h->srv;
	struct out o = {NULL, 0, 0, 0};
	const char *why;
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		put(&o, "only GET is supported\n");
		return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
			       &o);
	}
	if (strcmp(url, "/metrics") == 0) {
		metrics(srv, &o);
		return respond(conn, MHD_HTTP_OK,
			       "text/plain; version=0.0.4; charset=utf-8", &o);
	}
	if (strcmp(url, "/healthz/live") == 0) {
		put(&o, "ok\n");
		return respond(conn, MHD_HTTP_OK, "text/plain", &o);
	}
	if (strcmp(url, "/healthz/ready") == 0) {
		bool ready = is_ready(srv, &why);
		put(&o, "%s\n", why);
		return respond(
			conn,
			ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			"text/plain", &o);
	}
	if (strcmp(url, "/v1/status") == 0) {
		const char *d = MHD_lookup_connection_value(
			conn, MHD_GET_ARGUMENT_KIND, "digest");
		status_json(srv, &o, d != NULL && strcmp(d, "1") == 0);
		return respond(conn, MHD_HTTP_OK, "application/json", &o);
	}
	if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
		put(&o, "%s", node_page_html);
		return respond(conn, MHD_HTTP_OK, "text/html; charset=utf-8",
			       &o);
	}
	put(&o,
	    "not found; try /metrics, /healthz/live, /healthz/ready, "
	    "/v1/status or /\n");
	return respond(conn, MHD_HTTP_NOT_FOUND, "text/plain", &o);
}

/* ------------------------------------------------------------ loop glue */

static void rearm(struct node_http *h);

static void run(struct node_http *h)
{
	MHD_run(h->d);
	rearm(h);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	run(p->data);
}

static void timer_cb(uv_timer_t *t)
{
	run(t->data);
}

static void rearm(struct node_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
		uv_timer_start(&h->timer, timer_cb, ms, 0);
	} else {
		uv_timer_stop(&h->timer);
	}
}

int node_http_start(struct node_server *srv, char *err, size_t errlen)
{
	struct node_http *h;
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;

	if (node_resolve(srv->cfg.http_address, &sa) != 0) {
		snprintf(err, errlen,
			 "bad http address %s (not an IPv4 address or a name "
			 "that resolves to one)",
			 srv->cfg.http_address);
		return -1;
	}
	h = calloc(1, sizeof *h);
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->srv = srv;
	h->d = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL,
		NULL, handler, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT,
		256u, MHD_OPTION_END);
	if (h->d == NULL) {
		snprintf(err, errlen,
			 "cannot serve HTTP on %s (address in use?)",
			 srv->cfg.http_address);
		free(h);
		return -1;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		snprintf(err, errlen, "libmicrohttpd without epoll support");
		MHD_stop_daemon(h->d);
		free(h);
		return -1;
	}
	uv_poll_init(srv->loop, &h->poll, info->epoll_fd);
	h->poll.data = h;
	uv_poll_start(&h->poll, UV_READABLE, poll_cb);
	uv_timer_init(srv->loop, &h->timer);
	h->timer.data = h;
	srv->http = h;
	rearm(h);
	return 0;
}

/* Both handles live inside h: free it after the second close callback
 * (libuv does not promise their order). */
static void http_closed(uv_handle_t *handle)
{
	struct node_http *h = handle->data;
	if (--h->open_handles == 0) {
		MHD_stop_daemon(h->d);
		free(h);
	}
}

void node_http_stop(struct node_server *srv)
{
	struct node_http *h = srv->http;
	if (h == NULL) {
		return;
	}
	srv->http = NULL;
	h->open_handles = 2;
	uv_close((uv_handle_t *)&h->poll, http_closed);
	uv_close((uv_handle_t *)&h->timer, http_closed);
}
