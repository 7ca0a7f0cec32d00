/* `raftmq cluster ...` (Raft membership and status) and `raftmq stats`. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const struct cli_cmd cluster_cmd = {
	"cluster",
	"Usage: raftmq cluster SUBCOMMAND ...\n"
	"\n"
	"  status [--json]                        leader, term, commit index "
	"and nodes\n"
	"  add ID RAFT_ADDRESS CLIENT_ADDRESS [--role voter|standby|spare]\n"
	"                                         add a node (default role "
	"voter)\n"
	"  remove ID                              remove a node\n"
	"  transfer [ID]                          move the leadership (to "
	"node ID, or\n"
	"                                         to the best other voter)\n"
	"\n"
	"'raftmq cluster SUBCOMMAND --help' shows the options.\n",
	0, 0};

static const struct cli_cmd status_cmd = {
	"cluster status",
	"Usage: raftmq cluster status [--json]\n"
	"\n"
	"Prints the cluster as seen by the node the client is connected to "
	"(the\nleader when there is one): leader, term, commit index and "
	"every node with\nits role and whether it is reachable (\"unknown\" "
	"when a follower answers\nabout another follower: followers do not "
	"see each other). With --json,\none JSON object (\"reachable\" is "
	"null when unknown):\n"
	"  {\"leader_id\":N,\"term\":T,\"commit_index\":I,"
	"\"applied_index\":A,\"node_id\":N,\n"
	"   \"nodes\":[{\"id\":N,\"raft_address\":\"...\","
	"\"client_address\":\"...\",\n"
	"              \"role\":\"voter|standby|spare\","
	"\"reachable\":true,\"leader\":true}]}\n",
	0, 0};

static const struct cli_cmd add_cmd = {
	"cluster add",
	"Usage: raftmq cluster add ID RAFT_ADDRESS CLIENT_ADDRESS "
	"[--role voter|standby|spare]\n"
	"\n"
	"Adds node ID (started without --members) to the cluster, with the "
	"given role\n(default voter: it catches up, then votes).\n",
	3, 3};

static const struct cli_cmd remove_cmd = {
	"cluster remove",
	"Usage: raftmq cluster remove ID\n"
	"\n"
	"Removes node ID from the cluster (it may then be stopped).\n",
	1, 1};

static const struct cli_cmd transfer_cmd = {
	"cluster transfer",
	"Usage: raftmq cluster transfer [ID]\n"
	"\n"
	"Transfers the leadership to node ID, or without ID to the voter the "
	"leader\nfinds most up to date. Prints the new leader.\n",
	0, 1};

static const struct cli_cmd stats_cmd = {
	"stats",
	"Usage: raftmq stats [--json]\n"
	"\n"
	"Prints the counters of every queue (ready, unacked, delayed, "
	"consumers,\npublished, delivered, redelivered, acked, nacked, "
	"released, dead-lettered,\nexpired, deduplicated, dropped, rejected) "
	"with a total line, and those of every\ntopic. With --json, one JSON "
	"object {\"queues\":[...],\"topics\":[...],\n\"totals\":{...}} (queue "
	"objects as in 'queue info --json').\n",
	0, 0};

static int parse_id(const char *cmd, const char *s, uint64_t *id)
{
	if (cli_parse_u64(s, id) != 0 || *id == 0) {
		return cli_usage(
			cmd, "ID must be a positive integer, not \"%s\"", s);
	}
	return -1;
}

static void print_status(const struct raftmq_cluster_status *st)
{
	struct cli_table t;

	if (st->leader_id != 0) {
		printf("leader %llu", (unsigned long long)st->leader_id);
	} else {
		printf("no leader");
	}
	printf(", term %llu, commit index %llu (applied %llu on node "
	       "%llu)\n\n",
	       (unsigned long long)st->term,
	       (unsigned long long)st->commit_index,
	       (unsigned long long)st->applied_index,
	       (unsigned long long)st->node_id);
	cli_table_init(&t, 6, NULL);
	cli_table_add(&t, "ID");
	cli_table_add(&t, "ROLE");
	cli_table_add(&t, "STATE");
	cli_table_add(&t, "REACHABLE");
	cli_table_add(&t, "CLIENT ADDRESS");
	cli_table_add(&t, "RAFT ADDRESS");
	for (size_t i = 0; i < st->n_nodes; i++) {
		const struct raftmq_node *n = &st->nodes[i];

		cli_table_add(&t, "%llu", (unsigned long long)n->id);
		cli_table_add(&t, "%s", raftmq_role_name(n->role));
		cli_table_add(&t, "%s",
			      n->id == st->leader_id ? "leader" : "follower");
		cli_table_add(&t, "%s",
			      n->reachable_unknown ? "unknown"
			      : n->reachable	   ? "yes"
						   : "no");
		cli_table_add(&t, "%s", n->client_address);
		cli_table_add(&t, "%s", n->raft_address);
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

static void json_status(const struct raftmq_cluster_status *st)
{
	struct cli_json j;

	cli_json_init(&j, stdout);
	cli_json_obj(&j, NULL);
	cli_json_u64(&j, "leader_id", st->leader_id);
	cli_json_u64(&j, "term", st->term);
	cli_json_u64(&j, "commit_index", st->commit_index);
	cli_json_u64(&j, "applied_index", st->applied_index);
	cli_json_u64(&j, "node_id", st->node_id);
	cli_json_arr(&j, "nodes");
	for (size_t i = 0; i < st->n_nodes; i++) {
		const struct raftmq_node *n = &st->nodes[i];

		cli_json_obj(&j, NULL);
		cli_json_u64(&j, "id", n->id);
		cli_json_str(&j, "raft_address", n->raft_address);
		cli_json_str(&j, "client_address", n->client_address);
		cli_json_str(&j, "role", raftmq_role_name(n->role));
		if (n->reachable_unknown) {
			cli_json_null(&j, "reachable");
		} else {
			cli_json_bool(&j, "reachable", n->reachable);
		}
		cli_json_bool(&j, "leader", n->id == st->leader_id);
		cli_json_obj_end(&j);
	}
	cli_json_arr_end(&j);
	cli_json_obj_end(&j);
	putchar('\n');
}

static int cluster_status_run(struct raftmq *conn, char **args, void *ctx)
{
	struct raftmq_cluster_status st;
	int rv;

	(void)args;
	memset(&st, 0, sizeof(st));
	rv = raftmq_cluster_status(conn, &st);
	if (rv != 0) {
		return cli_lib_fail(conn, rv, "get the cluster status", NULL,
				    NULL);
	}
	if (*(const bool *)ctx) {
		json_status(&st);
	} else {
		print_status(&st);
	}
	raftmq_cluster_status_free(&st);
	return CLI_EXIT_OK;
}

static int cluster_status(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {
		{"json", CLI_FLAG, &json, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&status_cmd, argc, argv, opts, cluster_status_run,
		       &json);
}

/* What cluster add, remove and transfer checked before connecting. */
struct node_cmd {
	uint64_t id;
	const char *role_s;
	enum raftmq_role role;
	int nargs;
};

static int cluster_add_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct node_cmd *c = ctx;
	char action[300];
	int rv;

	rv = raftmq_cluster_add(conn, c->id, args[1], args[2], c->role);
	if (rv != 0) {
		snprintf(action, sizeof(action), "add node %llu",
			 (unsigned long long)c->id);
		return cli_lib_fail(conn, rv, action, NULL, NULL);
	}
	printf("added node %llu (%s) as %s\n", (unsigned long long)c->id,
	       args[2], c->role_s);
	return CLI_EXIT_OK;
}

static int cluster_add(int argc, char **argv)
{
	struct node_cmd c = {.role_s = "voter"};
	const struct cli_opt opts[] = {
		{"role", CLI_STR, &c.role_s, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};
	char *args[3];
	int rc;

	rc = cli_parse(&add_cmd, argc, argv, opts, args, &c.nargs);
	if (rc >= 0) {
		return rc;
	}
	rc = parse_id(add_cmd.path, args[0], &c.id);
	if (rc >= 0) {
		return rc;
	}
	if (strcmp(c.role_s, "voter") == 0) {
		c.role = RAFTMQ_ROLE_VOTER;
	} else if (strcmp(c.role_s, "standby") == 0) {
		c.role = RAFTMQ_ROLE_STANDBY;
	} else if (strcmp(c.role_s, "spare") == 0) {
		c.role = RAFTMQ_ROLE_SPARE;
	} else {
		return cli_usage(add_cmd.path,
				 "--role must be voter, standby or spare, not "
				 "\"%s\"",
				 c.role_s);
	}
	return cli_with_conn(cluster_add_run, args, &c);
}

static int cluster_remove_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct node_cmd *c = ctx;
	char action[300];
	int rv;

	(void)args;
	rv = raftmq_cluster_remove(conn, c->id);
	if (rv != 0) {
		snprintf(action, sizeof(action), "remove node %llu",
			 (unsigned long long)c->id);
		return cli_lib_fail(conn, rv, action, NULL, NULL);
	}
	printf("removed node %llu\n", (unsigned long long)c->id);
	return CLI_EXIT_OK;
}

/* Parses a command whose positional arguments are at most one node ID. */
static int parse_node(const struct cli_cmd *cmd, int argc, char **argv,
		      struct node_cmd *c)
{
	char *args[1];
	int rc;

	memset(c, 0, sizeof(*c));
	rc = cli_parse(cmd, argc, argv, NULL, args, &c->nargs);
	if (rc >= 0 || c->nargs == 0) {
		return rc;
	}
	return parse_id(cmd->path, args[0], &c->id);
}

static int cluster_remove(int argc, char **argv)
{
	struct node_cmd c;
	int rc;

	rc = parse_node(&remove_cmd, argc, argv, &c);
	if (rc >= 0) {
		return rc;
	}
	return cli_with_conn(cluster_remove_run, NULL, &c);
}

/*
 * The server answers a transfer without a target with leader_id 0: ask the
 * (old leader's) node until it names another leader, for up to 3 s.
 */
static uint64_t new_leader(struct raftmq *conn, uint64_t old)
{
	uint64_t deadline = cli_now_ms() + 3000;

	while (cli_now_ms() < deadline) {
		struct raftmq_cluster_status st;
		uint64_t id;

		memset(&st, 0, sizeof(st));
		if (raftmq_cluster_status(conn, &st) != 0) {
			return 0;
		}
		id = st.leader_id;
		raftmq_cluster_status_free(&st);
		if (id != 0 && id != old) {
			return id;
		}
		nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000}, NULL);
	}
	return 0;
}

static int cluster_transfer_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct node_cmd *c = ctx;
	uint64_t leader = 0;
	uint64_t old;
	int rv;

	(void)args;
	old = raftmq_node_id(conn);
	rv = raftmq_cluster_transfer(conn, c->id, &leader);
	if (rv == 0 && leader == 0) {
		leader = new_leader(conn, old);
	}
	if (rv != 0) {
		return cli_lib_fail(conn, rv, "transfer the leadership", NULL,
				    NULL);
	}
	if (leader != 0) {
		printf("leadership transferred to node %llu\n",
		       (unsigned long long)leader);
	} else {
		printf("leadership transfer started (new leader not known "
		       "yet)\n");
	}
	return CLI_EXIT_OK;
}

static int cluster_transfer(int argc, char **argv)
{
	struct node_cmd c;
	int rc;

	rc = parse_node(&transfer_cmd, argc, argv, &c);
	if (rc >= 0) {
		return rc;
	}
	return cli_with_conn(cluster_transfer_run, NULL, &c);
}

int cli_cluster_main(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{"status", cluster_status},
		{"add", cluster_add},
		{"remove", cluster_remove},
		{"transfer", cluster_transfer},
		{NULL, NULL},
	};

	return cli_dispatch(&cluster_cmd, subs, argc, argv);
}

/* ---- stats ------------------------------------------------------------- */

/* The counters of `stats`, in column order. */
#define STATS_COLS 16
static const char *const stats_head[STATS_COLS] = {
	"READY",   "UNACKED", "DELAYED",  "CONSUMERS", "PUBLISHED", "DELIVERED",
	"REDELIV", "ACKED",   "NACKED",	  "RELEASED",  "DEAD-LTR",  "EXPIRED",
	"DEDUP",   "DROPPED", "REJECTED", "BYTES",
};

static void stats_row(const struct raftmq_queue_status *q,
		      uint64_t v[STATS_COLS])
{
	const uint64_t r[STATS_COLS] = {
		q->ready,	 q->unacked,   q->delayed,	 q->consumers,
		q->published,	 q->delivered, q->redelivered,	 q->acked,
		q->nacked,	 q->released,  q->dead_lettered, q->expired,
		q->deduplicated, q->dropped,   q->rejected,	 q->bytes,
	};

	memcpy(v, r, sizeof(r));
}

static void stats_table(const struct raftmq_queue_status *qs, size_t n,
			const struct raftmq_topic_status *ts, size_t nt)
{
	bool right[STATS_COLS + 1];
	uint64_t total[STATS_COLS] = {0};
	uint64_t v[STATS_COLS];
	struct cli_table t;

	right[0] = false;
	for (size_t c = 1; c <= STATS_COLS; c++) {
		right[c] = true;
	}
	cli_table_init(&t, STATS_COLS + 1, right);
	cli_table_add(&t, "QUEUE");
	for (size_t c = 0; c < STATS_COLS; c++) {
		cli_table_add(&t, "%s", stats_head[c]);
	}
	for (size_t i = 0; i < n; i++) {
		stats_row(&qs[i], v);
		cli_table_add(&t, "%s", qs[i].name);
		for (size_t c = 0; c < STATS_COLS; c++) {
			cli_table_add(&t, "%llu", (unsigned long long)v[c]);
			total[c] += v[c];
		}
	}
	cli_table_add(&t, "(%zu queue%s)", n, n == 1 ? "" : "s");
	for (size_t c = 0; c < STATS_COLS; c++) {
		cli_table_add(&t, "%llu", (unsigned long long)total[c]);
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
	if (nt == 0) {
		return;
	}
	putchar('\n');
	cli_table_init(&t, 4, right);
	cli_table_add(&t, "TOPIC");
	cli_table_add(&t, "SUBSCRIPTIONS");
	cli_table_add(&t, "PUBLISHED");
	cli_table_add(&t, "DEDUP");
	for (size_t i = 0; i < nt; i++) {
		cli_table_add(&t, "%s", ts[i].name);
		cli_table_add(&t, "%llu",
			      (unsigned long long)ts[i].subscriptions);
		cli_table_add(&t, "%llu", (unsigned long long)ts[i].published);
		cli_table_add(&t, "%llu",
			      (unsigned long long)ts[i].deduplicated);
	}
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

static void stats_json(const struct raftmq_queue_status *qs, size_t n,
		       const struct raftmq_topic_status *ts, size_t nt)
{
	static const char *const keys[STATS_COLS] = {
		"ready",	"unacked",   "delayed",	      "consumers",
		"published",	"delivered", "redelivered",   "acked",
		"nacked",	"released",  "dead_lettered", "expired",
		"deduplicated", "dropped",   "rejected",      "bytes",
	};
	uint64_t total[STATS_COLS] = {0};
	uint64_t v[STATS_COLS];
	struct cli_json j;

	cli_json_init(&j, stdout);
	cli_json_obj(&j, NULL);
	cli_json_arr(&j, "queues");
	for (size_t i = 0; i < n; i++) {
		stats_row(&qs[i], v);
		for (size_t c = 0; c < STATS_COLS; c++) {
			total[c] += v[c];
		}
		cli_json_obj(&j, NULL);
		cli_json_queue(&j, &qs[i]);
		cli_json_obj_end(&j);
	}
	cli_json_arr_end(&j);
	cli_json_arr(&j, "topics");
	for (size_t i = 0; i < nt; i++) {
		cli_json_obj(&j, NULL);
		cli_json_str(&j, "name", ts[i].name);
		cli_json_u64(&j, "dedup_window_ms", ts[i].dedup_window_ms);
		cli_json_u64(&j, "subscriptions", ts[i].subscriptions);
		cli_json_u64(&j, "published", ts[i].published);
		cli_json_u64(&j, "deduplicated", ts[i].deduplicated);
		cli_json_obj_end(&j);
	}
	cli_json_arr_end(&j);
	cli_json_obj(&j, "totals");
	cli_json_u64(&j, "queues", n);
	cli_json_u64(&j, "topics", nt);
	for (size_t c = 0; c < STATS_COLS; c++) {
		cli_json_u64(&j, keys[c], total[c]);
	}
	cli_json_obj_end(&j);
	cli_json_obj_end(&j);
	putchar('\n');
}

static int stats_run(struct raftmq *conn, char **args, void *ctx)
{
	struct raftmq_queue_status *qs = NULL;
	struct raftmq_topic_status *ts = NULL;
	size_t n = 0, nt = 0;
	int rc;
	int rv;

	(void)args;
	rv = raftmq_queue_list(conn, &qs, &n);
	if (rv == 0) {
		rv = raftmq_topic_list(conn, &ts, &nt);
	}
	if (rv != 0) {
		rc = cli_lib_fail(conn, rv, "get the statistics", NULL, NULL);
	} else {
		if (*(const bool *)ctx) {
			stats_json(qs, n, ts, nt);
		} else {
			stats_table(qs, n, ts, nt);
		}
		rc = CLI_EXIT_OK;
	}
	raftmq_queue_status_free(qs, n);
	raftmq_topic_status_free(ts, nt);
	return rc;
}

int cli_stats_main(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {
		{"json", CLI_FLAG, &json, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&stats_cmd, argc, argv, opts, stats_run, &json);
}
