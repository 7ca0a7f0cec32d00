/* `raftmq queue ...` and `raftmq topic ...`: administration commands. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SETTINGS_HELP                                                     \
	"Queue options:\n"                                                \
	"  --ack-timeout MS      redeliver unacked messages after MS "    \
	"(default 30000;\n"                                               \
	"                        0 = never)\n"                            \
	"  --max-deliveries N    dead-letter or drop after N failed "     \
	"deliveries\n"                                                    \
	"                        (nack, ack timeout, consumer crashed; "  \
	"default 20;\n"                                                   \
	"                        0 = unlimited)\n"                        \
	"  --dead-letter QUEUE   where failed and expired messages go "   \
	"(\"\" = none)\n"                                                 \
	"  --ttl MS              messages expire after MS (default 0 = "  \
	"never)\n"                                                        \
	"  --max-length N        at most N messages (default 0 = "        \
	"unlimited)\n"                                                    \
	"  --max-bytes N         at most N bytes of bodies (default 0 = " \
	"unlimited)\n"                                                    \
	"  --overflow reject-publish|drop-head\n"                         \
	"                        what a full queue does (default "        \
	"reject-publish)\n"                                               \
	"  --dedup-window MS     remember message ids for MS (default "   \
	"120000; 0 = off)\n"

static const struct cli_cmd queue_cmd = {
	"queue",
	"Usage: raftmq queue SUBCOMMAND ...\n"
	"\n"
	"  create NAME [queue options]     create a queue (idempotent with "
	"equal settings)\n"
	"  configure NAME [queue options]  change the given settings\n"
	"  delete NAME                     delete a queue and its messages\n"
	"  purge NAME                      remove its ready and delayed "
	"messages\n"
	"  info NAME [--json]              settings and counters of a queue\n"
	"  list [--json]                   every queue with its counters\n"
	"  peek NAME [--max N] [--from SEQ]\n"
	"                                  show messages without taking "
	"them\n"
	"\n"
	"'raftmq queue SUBCOMMAND --help' shows the options.\n",
	0, 0};

static const struct cli_cmd create_cmd = {
	"queue create",
	"Usage: raftmq queue create NAME [queue options]\n"
	"\n"
	"Creates queue NAME. Creating an existing queue with the same settings "
	"succeeds;\nwith other settings it fails (use 'queue configure').\n"
	"\n" SETTINGS_HELP,
	1, 1};

static const struct cli_cmd configure_cmd = {
	"queue configure",
	"Usage: raftmq queue configure NAME [queue options]\n"
	"\n"
	"Changes the given settings of queue NAME; the others stay as they "
	"are.\n"
	"\n" SETTINGS_HELP,
	1, 1};

static const struct cli_cmd delete_cmd = {
	"queue delete",
	"Usage: raftmq queue delete NAME\n"
	"\n"
	"Deletes queue NAME with all its messages; its consumers are "
	"detached.\n",
	1, 1};

static const struct cli_cmd purge_cmd = {
	"queue purge",
	"Usage: raftmq queue purge NAME\n"
	"\n"
	"Removes the ready and delayed messages of queue NAME (unacked ones "
	"stay).\nPrints how many were removed.\n",
	1, 1};

static const struct cli_cmd info_cmd = {
	"queue info",
	"Usage: raftmq queue info NAME [--json]\n"
	"\n"
	"Prints the settings and counters of queue NAME, as a table or, with "
	"--json,\nas one JSON object.\n",
	1, 1};

static const struct cli_cmd list_cmd = {
	"queue list",
	"Usage: raftmq queue list [--json]\n"
	"\n"
	"Lists every queue in name order with its main counters (a table), or "
	"with\n--json a JSON array of the objects of 'queue info --json'.\n",
	0, 0};

static const struct cli_cmd peek_cmd = {
	"queue peek",
	"Usage: raftmq queue peek NAME [--max N] [--from SEQ] [--delayed] "
	"[--held]\n"
	"\n"
	"Prints messages of queue NAME in seq order without taking them, one "
	"JSON line\neach, as 'raftmq consume' does, plus \"state\" (ready, "
	"delayed, held):\n"
	"  {\"id\":\"...\",\"seq\":N,\"body\":\"...\",\"delivery_count\":N,"
	"\"redelivered\":false,\n   \"state\":\"ready\"}\n"
	"Nothing changes: no delivery is made or counted and nothing is "
	"held, so\npeeking never brings a message closer to --max-deliveries. "
	"Here\n\"delivery_count\" counts the deliveries so far (0 = never "
	"delivered) and\n\"redelivered\" says whether the next delivery "
	"will be a redelivery.\n"
	"\n"
	"  --max N      at most N messages (default 100)\n"
	"  --from SEQ   start at seq SEQ (default: the oldest)\n"
	"  --delayed    also messages waiting for their delay\n"
	"  --held       also messages held by consumers (delivered, not "
	"acked yet)\n",
	1, 1};

/* Shared by create, configure and topic subscribe. */
static int parse_settings(const struct cli_cmd *cmd, int argc, char **argv,
			  char **args, int *nargs,
			  struct raftmq_queue_settings *st)
{
	struct cli_settings_opts so;
	struct cli_opt opts[16];
	size_t n = 0;
	int rc;

	memset(&so, 0, sizeof(so));
	memset(opts, 0, sizeof(opts));
	cli_settings_opts(&so, opts, &n);
	rc = cli_parse(cmd, argc, argv, opts, args, nargs);
	if (rc >= 0) {
		return rc;
	}
	return cli_settings(&so, cmd->path, st);
}

struct queue_set {
	bool configure;
	struct raftmq_queue_settings st;
};

static int queue_set_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct queue_set *c = ctx;
	char action[300];
	int rv;

	rv = c->configure ? raftmq_queue_configure(conn, args[0], &c->st)
			  : raftmq_queue_create(conn, args[0], &c->st);
	if (rv != 0) {
		snprintf(action, sizeof(action), "%s queue \"%s\"",
			 c->configure ? "configure" : "create", args[0]);
		return cli_lib_fail(conn, rv, action, "queue", args[0]);
	}
	printf("%s queue \"%s\"\n", c->configure ? "configured" : "created",
	       args[0]);
	return CLI_EXIT_OK;
}

static int queue_create(int argc, char **argv, bool configure)
{
	const struct cli_cmd *cmd = configure ? &configure_cmd : &create_cmd;
	struct queue_set c = {.configure = configure};
	char *args[1];
	int nargs;
	int rc;

	rc = parse_settings(cmd, argc, argv, args, &nargs, &c.st);
	if (rc >= 0) {
		return rc;
	}
	if (configure && c.st.has == 0) {
		return cli_usage(cmd->path,
				 "nothing to change: give at least "
				 "one queue option");
	}
	return cli_with_conn(queue_set_run, args, &c);
}

static int queue_delete_run(struct raftmq *conn, char **args, void *ctx)
{
	char action[300];
	uint64_t purged = 0;
	bool purge = *(const bool *)ctx;
	int rv;

	rv = purge ? raftmq_queue_purge(conn, args[0], &purged)
		   : raftmq_queue_delete(conn, args[0]);
	if (rv != 0) {
		snprintf(action, sizeof(action), "%s queue \"%s\"",
			 purge ? "purge" : "delete", args[0]);
		return cli_lib_fail(conn, rv, action, "queue", args[0]);
	}
	if (purge) {
		printf("purged %llu message%s from queue \"%s\"\n",
		       (unsigned long long)purged, purged == 1 ? "" : "s",
		       args[0]);
	} else {
		printf("deleted queue \"%s\"\n", args[0]);
	}
	return CLI_EXIT_OK;
}

static int queue_delete_purge(int argc, char **argv, bool purge)
{
	return cli_run(purge ? &purge_cmd : &delete_cmd, argc, argv, NULL,
		       queue_delete_run, &purge);
}

static const char *or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

/* "30000 ms", or what a 0 means for that setting. */
static void add_ms(struct cli_table *t, uint64_t v, const char *zero)
{
	if (v == 0) {
		cli_table_add(t, "0 (%s)", zero);
	} else {
		cli_table_add(t, "%llu ms", (unsigned long long)v);
	}
}

static void add_n(struct cli_table *t, uint64_t v, const char *zero)
{
	if (v == 0) {
		cli_table_add(t, "0 (%s)", zero);
	} else {
		cli_table_add(t, "%llu", (unsigned long long)v);
	}
}

static void print_info(const struct raftmq_queue_status *q)
{
	const struct raftmq_queue_settings *s = &q->settings;
	const struct {
		const char *name;
		uint64_t v;
	} counters[] = {
		{"ready", q->ready},
		{"unacked", q->unacked},
		{"delayed", q->delayed},
		{"bytes", q->bytes},
		{"consumers", q->consumers},
		{"published", q->published},
		{"delivered", q->delivered},
		{"redelivered", q->redelivered},
		{"acked", q->acked},
		{"nacked", q->nacked},
		{"released", q->released},
		{"dead-lettered", q->dead_lettered},
		{"expired", q->expired},
		{"deduplicated", q->deduplicated},
		{"dropped", q->dropped},
		{"rejected", q->rejected},
	};
	struct cli_table t;

	cli_table_init(&t, 2, NULL);
	cli_table_add(&t, "name");
	cli_table_add(&t, "%s", q->name);
	cli_table_add(&t, "topic");
	cli_table_add(&t, "%s", or_dash(q->topic));
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		cli_table_add(&t, "%s", counters[i].name);
		cli_table_add(&t, "%llu", (unsigned long long)counters[i].v);
	}
	cli_table_add(&t, "ack-timeout");
	add_ms(&t, s->ack_timeout_ms, "no deadline");
	cli_table_add(&t, "max-deliveries");
	add_n(&t, s->max_deliveries, "unlimited");
	cli_table_add(&t, "dead-letter");
	cli_table_add(&t, "%s", or_dash(s->dead_letter_queue));
	cli_table_add(&t, "ttl");
	add_ms(&t, s->ttl_ms, "none");
	cli_table_add(&t, "max-length");
	add_n(&t, s->max_length, "unlimited");
	cli_table_add(&t, "max-bytes");
	add_n(&t, s->max_bytes, "unlimited");
	cli_table_add(&t, "overflow");
	cli_table_add(&t, "%s", cli_overflow_name(s->overflow));
	cli_table_add(&t, "dedup-window");
	add_ms(&t, s->dedup_window_ms, "off");
	cli_table_print(&t, stdout);
	cli_table_free(&t);
}

static int queue_info_run(struct raftmq *conn, char **args, void *ctx)
{
	struct raftmq_queue_status *q;
	char action[300];
	int rv;

	rv = raftmq_queue_info(conn, args[0], &q);
	if (rv != 0) {
		snprintf(action, sizeof(action), "get queue \"%s\"", args[0]);
		return cli_lib_fail(conn, rv, action, "queue", args[0]);
	}
	if (*(const bool *)ctx) {
		struct cli_json j;

		cli_json_init(&j, stdout);
		cli_json_obj(&j, NULL);
		cli_json_queue(&j, q);
		cli_json_obj_end(&j);
		putchar('\n');
	} else {
		print_info(q);
	}
	raftmq_queue_status_free(q, 1);
	return CLI_EXIT_OK;
}

static int queue_info(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {
		{"json", CLI_FLAG, &json, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&info_cmd, argc, argv, opts, queue_info_run, &json);
}

static int queue_list_run(struct raftmq *conn, char **args, void *ctx)
{
	static const bool right[] = {false, true, true, true, true,
				     true,  true, true, false};
	struct raftmq_queue_status *qs = NULL;
	size_t n = 0;
	int rv;

	(void)args;
	rv = raftmq_queue_list(conn, &qs, &n);
	if (rv != 0) {
		return cli_lib_fail(conn, rv, "list queues", NULL, NULL);
	}
	if (*(const bool *)ctx) {
		struct cli_json j;

		cli_json_init(&j, stdout);
		cli_json_arr(&j, NULL);
		for (size_t i = 0; i < n; i++) {
			cli_json_obj(&j, NULL);
			cli_json_queue(&j, &qs[i]);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		putchar('\n');
	} else {
		struct cli_table t;

		cli_table_init(&t, 9, right);
		cli_table_add(&t, "NAME");
		cli_table_add(&t, "READY");
		cli_table_add(&t, "UNACKED");
		cli_table_add(&t, "DELAYED");
		cli_table_add(&t, "CONSUMERS");
		cli_table_add(&t, "BYTES");
		cli_table_add(&t, "PUBLISHED");
		cli_table_add(&t, "ACKED");
		cli_table_add(&t, "TOPIC");
		for (size_t i = 0; i < n; i++) {
			cli_table_add(&t, "%s", qs[i].name);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].ready);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].unacked);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].delayed);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].consumers);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].bytes);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].published);
			cli_table_add(&t, "%llu",
				      (unsigned long long)qs[i].acked);
			cli_table_add(&t, "%s", or_dash(qs[i].topic));
		}
		cli_table_print(&t, stdout);
		cli_table_free(&t);
	}
	raftmq_queue_status_free(qs, n);
	return CLI_EXIT_OK;
}

static int queue_list(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {
		{"json", CLI_FLAG, &json, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&list_cmd, argc, argv, opts, queue_list_run, &json);
}

/* The server answers at most this many per Peek. */
#define PEEK_PAGE 1000

struct peek_args {
	uint64_t max, from;
	unsigned flags;
};

static const char *state_name(enum raftmq_msg_state st)
{
	switch (st) {
	case RAFTMQ_MSG_DELAYED:
		return "delayed";
	case RAFTMQ_MSG_HELD:
		return "held";
	default:
		return "ready";
	}
}

static int queue_peek_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct peek_args *pa = ctx;
	uint64_t got = 0, from = pa->from;
	char action[300];

	while (got < pa->max) {
		struct raftmq_peeked *p = NULL;
		uint64_t want = pa->max - got, next = 0;
		size_t n = 0;
		int rv;

		rv = raftmq_peek(
			conn, args[0], from,
			(uint32_t)(want < PEEK_PAGE ? want : PEEK_PAGE),
			pa->flags, &p, &n, &next);
		if (rv != 0) {
			snprintf(action, sizeof(action), "peek at queue \"%s\"",
				 args[0]);
			return cli_lib_fail(conn, rv, action, "queue", args[0]);
		}
		for (size_t i = 0; i < n && got < pa->max; i++, got++) {
			cli_print_delivery(&p[i].m, state_name(p[i].state));
		}
		raftmq_peeked_free(p, n);
		if (next == 0 || n == 0) {
			break;
		}
		from = next;
	}
	fflush(stdout);
	return CLI_EXIT_OK;
}

static int queue_peek(int argc, char **argv)
{
	struct peek_args pa = {100, 0, 0};
	bool delayed = false, held = false;
	const struct cli_opt opts[] = {
		{"max", CLI_U64, &pa.max, NULL},
		{"from", CLI_U64, &pa.from, NULL},
		{"delayed", CLI_FLAG, &delayed, NULL},
		{"held", CLI_FLAG, &held, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};
	char *args[1];
	int nargs;
	int rc;

	rc = cli_parse(&peek_cmd, argc, argv, opts, args, &nargs);
	if (rc >= 0) {
		return rc;
	}
	if (pa.max == 0) {
		return cli_usage(peek_cmd.path, "--max must be at least 1");
	}
	pa.flags = (delayed ? RAFTMQ_PEEK_DELAYED : 0u) |
		   (held ? RAFTMQ_PEEK_HELD : 0u);
	return cli_with_conn(queue_peek_run, args, &pa);
}

static int q_create(int argc, char **argv)
{
	return queue_create(argc, argv, false);
}

static int q_configure(int argc, char **argv)
{
	return queue_create(argc, argv, true);
}

static int q_delete(int argc, char **argv)
{
	return queue_delete_purge(argc, argv, false);
}

static int q_purge(int argc, char **argv)
{
	return queue_delete_purge(argc, argv, true);
}

int cli_queue_main(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{"create", q_create}, {"configure", q_configure},
		{"delete", q_delete}, {"purge", q_purge},
		{"info", queue_info}, {"list", queue_list},
		{"peek", queue_peek}, {NULL, NULL},
	};

	return cli_dispatch(&queue_cmd, subs, argc, argv);
}

/* ---- topics ------------------------------------------------------------ */

static const struct cli_cmd topic_cmd = {
	"topic",
	"Usage: raftmq topic SUBCOMMAND ...\n"
	"\n"
	"  create NAME [--dedup-window MS]       create a topic\n"
	"  delete NAME                           delete a topic and its "
	"subscriptions\n"
	"  subscribe TOPIC SUBSCRIPTION [queue options]\n"
	"                                        create the durable "
	"subscription queue\n"
	"                                        \"TOPIC:SUBSCRIPTION\"\n"
	"  unsubscribe TOPIC SUBSCRIPTION        remove a subscription and its "
	"queue\n"
	"  list [--json]                         every topic with its "
	"subscriptions\n"
	"\n"
	"'raftmq topic SUBCOMMAND --help' shows the options.\n",
	0, 0};

static const struct cli_cmd tcreate_cmd = {
	"topic create",
	"Usage: raftmq topic create NAME [--dedup-window MS]\n"
	"\n"
	"Creates topic NAME. Messages published to it are copied to every "
	"subscription\nqueue. --dedup-window MS: remember message ids for MS "
	"(default 120000; 0 = off).\n",
	1, 1};

static const struct cli_cmd tdelete_cmd = {
	"topic delete",
	"Usage: raftmq topic delete NAME\n"
	"\n"
	"Deletes topic NAME and all its subscription queues.\n",
	1, 1};

static const struct cli_cmd subscribe_cmd = {
	"topic subscribe",
	"Usage: raftmq topic subscribe TOPIC SUBSCRIPTION [queue options]\n"
	"\n"
	"Creates the durable subscription queue \"TOPIC:SUBSCRIPTION\": it "
	"receives a copy\nof every message published to TOPIC from now on. "
	"Consume it like any queue.\n"
	"\n" SETTINGS_HELP,
	2, 2};

static const struct cli_cmd unsubscribe_cmd = {
	"topic unsubscribe",
	"Usage: raftmq topic unsubscribe TOPIC SUBSCRIPTION\n"
	"\n"
	"Removes the subscription and its queue \"TOPIC:SUBSCRIPTION\".\n",
	2, 2};

static const struct cli_cmd tlist_cmd = {
	"topic list",
	"Usage: raftmq topic list [--json]\n"
	"\n"
	"Lists every topic with its counters and subscription queues (a "
	"table), or with\n--json a JSON array of objects.\n",
	0, 0};

struct topic_window {
	uint64_t ms;
	bool given;
};

static int topic_create_run(struct raftmq *conn, char **args, void *ctx)
{
	const struct topic_window *w = ctx;
	char action[300];
	int rv;

	rv = raftmq_topic_create(conn, args[0], w->given ? &w->ms : NULL);
	if (rv != 0) {
		snprintf(action, sizeof(action), "create topic \"%s\"",
			 args[0]);
		return cli_lib_fail(conn, rv, action, "topic", args[0]);
	}
	printf("created topic \"%s\"\n", args[0]);
	return CLI_EXIT_OK;
}

static int topic_create(int argc, char **argv)
{
	struct topic_window w = {0, false};
	const struct cli_opt opts[] = {
		{"dedup-window", CLI_U64, &w.ms, &w.given},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&tcreate_cmd, argc, argv, opts, topic_create_run, &w);
}

static int topic_delete_run(struct raftmq *conn, char **args, void *ctx)
{
	char action[300];
	int rv;

	(void)ctx;
	rv = raftmq_topic_delete(conn, args[0]);
	if (rv != 0) {
		snprintf(action, sizeof(action), "delete topic \"%s\"",
			 args[0]);
		return cli_lib_fail(conn, rv, action, "topic", args[0]);
	}
	printf("deleted topic \"%s\"\n", args[0]);
	return CLI_EXIT_OK;
}

static int topic_delete(int argc, char **argv)
{
	return cli_run(&tdelete_cmd, argc, argv, NULL, topic_delete_run, NULL);
}

static int topic_subscribe_run(struct raftmq *conn, char **args, void *ctx)
{
	char *queue = NULL;
	char action[300];
	int rc;
	int rv;

	rv = raftmq_subscribe(conn, args[0], args[1], ctx, &queue);
	if (rv != 0) {
		snprintf(action, sizeof(action),
			 "subscribe \"%s\" to topic \"%s\"", args[1], args[0]);
		rc = cli_lib_fail(
			conn, rv, action,
			rv == RAFTMQ_EEXIST ? "subscription" : "topic",
			rv == RAFTMQ_EEXIST ? args[1] : args[0]);
	} else {
		printf("subscribed \"%s\" to topic \"%s\": queue \"%s\"\n",
		       args[1], args[0], queue != NULL ? queue : "");
		rc = CLI_EXIT_OK;
	}
	free(queue);
	return rc;
}

static int topic_subscribe(int argc, char **argv)
{
	struct raftmq_queue_settings st;
	char *args[2];
	int nargs;
	int rc;

	rc = parse_settings(&subscribe_cmd, argc, argv, args, &nargs, &st);
	if (rc >= 0) {
		return rc;
	}
	return cli_with_conn(topic_subscribe_run, args, &st);
}

static int topic_unsubscribe_run(struct raftmq *conn, char **args, void *ctx)
{
	char action[300];
	int rv;

	(void)ctx;
	rv = raftmq_unsubscribe(conn, args[0], args[1]);
	if (rv != 0) {
		snprintf(action, sizeof(action),
			 "unsubscribe \"%s\" from topic \"%s\"", args[1],
			 args[0]);
		return cli_lib_fail(conn, rv, action, NULL, NULL);
	}
	printf("unsubscribed \"%s\" from topic \"%s\"\n", args[1], args[0]);
	return CLI_EXIT_OK;
}

static int topic_unsubscribe(int argc, char **argv)
{
	return cli_run(&unsubscribe_cmd, argc, argv, NULL,
		       topic_unsubscribe_run, NULL);
}

/* The subscription queues of `topic` among the queues `qs`, as "a,b". */
static void sub_queues(const char *topic, const struct raftmq_queue_status *qs,
		       size_t n, struct cli_json *j, FILE *f)
{
	bool first = true;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(qs[i].topic, topic) != 0) {
			continue;
		}
		if (j != NULL) {
			cli_json_str(j, NULL, qs[i].name);
		} else {
			fprintf(f, "%s%s", first ? "" : ",", qs[i].name);
		}
		first = false;
	}
	if (first && f != NULL) {
		fputs("-", f);
	}
}

static int topic_list_run(struct raftmq *conn, char **args, void *ctx)
{
	static const bool right[] = {false, true, true, true, true, false};
	struct raftmq_topic_status *ts = NULL;
	struct raftmq_queue_status *qs = NULL;
	size_t n = 0, nq = 0;
	int rc;
	int rv;

	(void)args;
	rv = raftmq_topic_list(conn, &ts, &n);
	if (rv == 0) {
		/* Topic status has counts only; the names of the subscription
		 * queues come from their own status (topic field). */
		rv = raftmq_queue_list(conn, &qs, &nq);
	}
	if (rv != 0) {
		rc = cli_lib_fail(conn, rv, "list topics", NULL, NULL);
		raftmq_topic_status_free(ts, n);
		return rc;
	}
	if (*(const bool *)ctx) {
		struct cli_json j;

		cli_json_init(&j, stdout);
		cli_json_arr(&j, NULL);
		for (size_t i = 0; i < n; i++) {
			cli_json_obj(&j, NULL);
			cli_json_str(&j, "name", ts[i].name);
			cli_json_u64(&j, "dedup_window_ms",
				     ts[i].dedup_window_ms);
			cli_json_u64(&j, "subscriptions", ts[i].subscriptions);
			cli_json_u64(&j, "published", ts[i].published);
			cli_json_u64(&j, "deduplicated", ts[i].deduplicated);
			cli_json_arr(&j, "queues");
			sub_queues(ts[i].name, qs, nq, &j, NULL);
			cli_json_arr_end(&j);
			cli_json_obj_end(&j);
		}
		cli_json_arr_end(&j);
		putchar('\n');
	} else {
		struct cli_table t;

		cli_table_init(&t, 6, right);
		cli_table_add(&t, "NAME");
		cli_table_add(&t, "SUBSCRIPTIONS");
		cli_table_add(&t, "PUBLISHED");
		cli_table_add(&t, "DEDUPLICATED");
		cli_table_add(&t, "DEDUP-WINDOW");
		cli_table_add(&t, "QUEUES");
		for (size_t i = 0; i < n; i++) {
			char *list = NULL;
			size_t len = 0;
			FILE *mf = open_memstream(&list, &len);

			if (mf != NULL) {
				sub_queues(ts[i].name, qs, nq, NULL, mf);
				fclose(mf);
			}
			cli_table_add(&t, "%s", ts[i].name);
			cli_table_add(&t, "%llu",
				      (unsigned long long)ts[i].subscriptions);
			cli_table_add(&t, "%llu",
				      (unsigned long long)ts[i].published);
			cli_table_add(&t, "%llu",
				      (unsigned long long)ts[i].deduplicated);
			cli_table_add(
				&t, "%llu ms",
				(unsigned long long)ts[i].dedup_window_ms);
			cli_table_add(&t, "%s", list != NULL ? list : "-");
			free(list);
		}
		cli_table_print(&t, stdout);
		cli_table_free(&t);
	}
	raftmq_topic_status_free(ts, n);
	raftmq_queue_status_free(qs, nq);
	return CLI_EXIT_OK;
}

static int topic_list(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {
		{"json", CLI_FLAG, &json, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};

	return cli_run(&tlist_cmd, argc, argv, opts, topic_list_run, &json);
}

int cli_topic_main(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{"create", topic_create},
		{"delete", topic_delete},
		{"subscribe", topic_subscribe},
		{"unsubscribe", topic_unsubscribe},
		{"list", topic_list},
		{NULL, NULL},
	};

	return cli_dispatch(&topic_cmd, subs, argc, argv);
}
