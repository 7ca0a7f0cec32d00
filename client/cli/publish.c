/* `raftmq publish`: one message (--body, --file) or many (--count). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct cli_cmd publish_cmd = {
	"publish",
	"Usage: raftmq publish (--queue NAME | --topic NAME) [--id ID] "
	"[--delay MS] [--ttl MS]\n"
	"               (--body TEXT | --file PATH | --count N [--size BYTES]\n"
	"                [--id-prefix P] [--inflight K])\n"
	"\n"
	"Publishes with confirms and prints one JSON line per confirmed "
	"message:\n"
	"  {\"id\":\"...\",\"seq\":N,\"duplicate\":false}\n"
	"\"duplicate\":true means the id was already stored (within the "
	"dedup window):\nseq is then the original message's.\n"
	"\n"
	"  --queue NAME     publish to a queue\n"
	"  --topic NAME     publish to a topic (a copy per subscription)\n"
	"  --id ID          message id for deduplication (default: a fresh "
	"unique id)\n"
	"  --delay MS       deliverable only after MS milliseconds\n"
	"  --ttl MS         expires after MS milliseconds (default: the "
	"queue's ttl)\n"
	"  --body TEXT      the body, as given\n"
	"  --file PATH      the body, read from PATH ('-' = standard input)\n"
	"  --count N        publish N messages, pipelined: message i (0..N-1) "
	"has id\n"
	"                   \"P-i\" and its body is that id padded with '.' "
	"to --size\n"
	"  --size BYTES     body size with --count (default 0: the id "
	"alone)\n"
	"  --id-prefix P    id prefix with --count (default: random)\n"
	"  --inflight K     unconfirmed messages in flight with --count "
	"(default 256)\n"
	"\n"
	"Exits 1 if any message was not confirmed (one line on stderr says "
	"why).\n",
	0, 0};

/* State of a pipelined publish run, shared with the confirm callback. */
struct run {
	const char *prefix;
	uint64_t count, sent, confirmed, failed;
	int first_err;
	char first_msg[200];
	bool stop;
	struct cli_progress prog;
};

static void print_confirm(const void *id, size_t id_len, uint64_t seq,
			  bool duplicate)
{
	struct cli_json j;

	cli_json_init(&j, stdout);
	cli_json_obj(&j, NULL);
	cli_json_strn(&j, "id", id, id_len);
	cli_json_u64(&j, "seq", seq);
	cli_json_bool(&j, "duplicate", duplicate);
	cli_json_obj_end(&j);
	putchar('\n');
}

static void on_confirm(struct raftmq *conn, const struct raftmq_confirm *c,
		       void *data)
{
	struct run *r = data;
	uint64_t i = (uint64_t)(uintptr_t)c->user_data;
	char id[320];
	int len;

	(void)conn;
	if (c->err != 0) {
		if (r->failed++ == 0) {
			r->first_err = c->err;
			snprintf(r->first_msg, sizeof(r->first_msg), "%s",
				 c->message);
		}
		/* The rest would very likely fail alike (missing or full
		 * queue): stop sending, report once. */
		r->stop = true;
		return;
	}
	r->confirmed++;
	len = snprintf(id, sizeof(id), "%s-%llu", r->prefix,
		       (unsigned long long)i);
	print_confirm(id, (size_t)len, c->seq, c->duplicate);
}

static int publish_count(struct raftmq_message *m, uint64_t count,
			 uint64_t size, const char *prefix, uint64_t inflight,
			 const char *kind, const char *name)
{
	struct raftmq_options o;
	struct raftmq *conn;
	struct run r;
	char *body;
	size_t cap;
	int rc;
	int rv = 0;

	memset(&r, 0, sizeof(r));
	r.prefix = prefix;
	r.count = count;
	cap = strlen(prefix) + 32;
	if (size > cap) {
		cap = (size_t)size;
	}
	body = malloc(cap + 1);
	if (body == NULL) {
		return cli_fail("out of memory for a body of %llu bytes",
				(unsigned long long)size);
	}
	memset(&o, 0, sizeof(o));
	o.window = (unsigned)inflight;
	o.confirm_cb = on_confirm;
	o.confirm_data = &r;
	conn = cli_connect(&o, &rc);
	if (conn == NULL) {
		free(body);
		return rc;
	}
	cli_progress_init(&r.prog);
	for (uint64_t i = 0; i < count && !r.stop; i++) {
		int len = snprintf(body, cap + 1, "%s-%llu", prefix,
				   (unsigned long long)i);

		/* The id is also the head of the body, so that a consumer
		 * can check what it got without knowing the ids. */
		m->msg_id = body;
		m->msg_id_len = (size_t)len;
		m->body = body;
		m->body_len = (size_t)len;
		if (size > (uint64_t)len) {
			memset(body + len, '.', (size_t)size - (size_t)len);
			m->body_len = (size_t)size;
		}
		rv = raftmq_publish_async(conn, m, (void *)(uintptr_t)i);
		if (rv != 0) {
			break;
		}
		r.sent++;
		cli_progress_update(
			&r.prog,
			"publish: %llu/%llu confirmed, %llu in "
			"flight",
			(unsigned long long)r.confirmed,
			(unsigned long long)count,
			(unsigned long long)(r.sent - r.confirmed - r.failed));
	}
	if (rv != 0) {
		/* Not sent and never reported: keep the library's reason. */
		if (r.failed == 0) {
			r.first_err = rv;
			snprintf(r.first_msg, sizeof(r.first_msg), "%s",
				 raftmq_errmsg(conn));
		}
	}
	while (raftmq_publish_pending(conn) > 0) {
		int frv = raftmq_publish_flush(conn);

		if (frv != 0) {
			if (r.failed == 0 && rv == 0) {
				r.first_err = frv;
				snprintf(r.first_msg, sizeof(r.first_msg), "%s",
					 raftmq_errmsg(conn));
			}
			break;
		}
	}
	cli_progress_done(&r.prog);
	fflush(stdout);
	raftmq_close(conn);
	free(body);
	if (r.confirmed == count) {
		return CLI_EXIT_OK;
	} else {
		char reason[600];

		cli_describe(r.first_err, r.first_msg, "publish", kind, name,
			     reason, sizeof(reason));
		return cli_fail("%llu of %llu messages not confirmed: %s",
				(unsigned long long)(count - r.confirmed),
				(unsigned long long)count, reason);
	}
}

/* Reads all of `path` ("-" = stdin) into *out (malloc'd). */
static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *buf;

	if (f == NULL) {
		return cli_fail("cannot read %s: %s", path, strerror(errno));
	}
	buf = malloc(cap);
	while (buf != NULL) {
		size_t got = fread(buf + n, 1, cap - n, f);
		char *nb;

		n += got;
		if (n < cap) {
			break;
		}
		cap *= 2;
		nb = realloc(buf, cap);
		if (nb == NULL) {
			free(buf);
		}
		buf = nb;
	}
	if (buf == NULL || ferror(f)) {
		int err = buf == NULL ? ENOMEM : EIO;

		free(buf);
		if (f != stdin) {
			fclose(f);
		}
		return cli_fail("cannot read %s: %s", path, strerror(err));
	}
	if (f != stdin) {
		fclose(f);
	}
	*out = buf;
	*len = n;
	return -1;
}

/* Publishes the one message `ctx`, with its id, to its queue or topic. */
static int publish_one(struct raftmq *conn, char **args, void *ctx)
{
	const struct raftmq_message *m = ctx;
	const char *kind = m->queue != NULL ? "queue" : "topic";
	const char *name = m->queue != NULL ? m->queue : m->topic;
	char action[300];
	uint64_t seq = 0;
	bool dup = false;
	int rv;

	(void)args;
	rv = raftmq_publish(conn, m, &seq, &dup);
	if (rv != 0) {
		snprintf(action, sizeof(action), "publish to %s \"%s\"", kind,
			 name);
		return cli_lib_fail(conn, rv, action, kind, name);
	}
	print_confirm(m->msg_id, m->msg_id_len, seq, dup);
	return CLI_EXIT_OK;
}

int cli_publish_main(int argc, char **argv)
{
	const char *queue = NULL, *topic = NULL, *id = NULL, *body = NULL,
		   *file = NULL, *prefix = NULL;
	uint64_t delay = 0, ttl = 0, count = 0, size = 0, inflight = 256;
	bool has_count = false, has_size = false, has_inflight = false;
	const struct cli_opt opts[] = {
		{"queue", CLI_STR, &queue, NULL},
		{"topic", CLI_STR, &topic, NULL},
		{"id", CLI_STR, &id, NULL},
		{"delay", CLI_U64, &delay, NULL},
		{"ttl", CLI_U64, &ttl, NULL},
		{"body", CLI_STR, &body, NULL},
		{"file", CLI_STR, &file, NULL},
		{"count", CLI_U64, &count, &has_count},
		{"size", CLI_U64, &size, &has_size},
		{"id-prefix", CLI_STR, &prefix, NULL},
		{"inflight", CLI_U64, &inflight, &has_inflight},
		{NULL, CLI_FLAG, NULL, NULL},
	};
	const char *cmd = publish_cmd.path;
	struct raftmq_message m;
	const char *kind, *name;
	char gen_id[RAFTMQ_MSG_ID_SIZE];
	char prefix_buf[RAFTMQ_MSG_ID_SIZE];
	char *data = NULL;
	size_t data_len = 0;
	int nargs;
	int rc;

	rc = cli_parse(&publish_cmd, argc, argv, opts, NULL, &nargs);
	if (rc >= 0) {
		return rc;
	}
	if ((queue == NULL) == (topic == NULL)) {
		return cli_usage(cmd,
				 "give exactly one of --queue and --topic");
	}
	if ((body != NULL) + (file != NULL) + has_count != 1) {
		return cli_usage(cmd,
				 "give exactly one of --body, --file and "
				 "--count");
	}
	if (!has_count && (has_size || prefix != NULL || has_inflight)) {
		return cli_usage(cmd,
				 "--size, --id-prefix and --inflight go "
				 "with --count");
	}
	if (has_count && id != NULL) {
		return cli_usage(cmd,
				 "--id publishes one message; with "
				 "--count use --id-prefix");
	}
	if (has_count && (inflight == 0 || inflight > 1000000)) {
		return cli_usage(cmd, "--inflight must be 1..1000000");
	}
	if (has_count && size > (64u << 20)) {
		return cli_usage(cmd, "--size must be at most 64 MiB");
	}
	kind = queue != NULL ? "queue" : "topic";
	name = queue != NULL ? queue : topic;
	memset(&m, 0, sizeof(m));
	m.queue = queue;
	m.topic = topic;
	m.delay_ms = delay;
	m.ttl_ms = ttl;
	if (has_count) {
		if (count == 0) {
			return CLI_EXIT_OK;
		}
		if (prefix == NULL) {
			/* The library's ids start with 16 random hex digits
			 * per process: 8 of them make a short, fresh prefix. */
			raftmq_msg_id_new(prefix_buf);
			prefix_buf[8] = '\0';
			prefix = prefix_buf;
		}
		return publish_count(&m, count, size, prefix, inflight, kind,
				     name);
	}
	if (file != NULL) {
		rc = read_file(file, &data, &data_len);
		if (rc >= 0) {
			return rc;
		}
		m.body = data;
		m.body_len = data_len;
	} else {
		m.body = body;
		m.body_len = strlen(body);
	}
	if (id == NULL) {
		/* Chosen here, not by the library, to be able to print it. */
		raftmq_msg_id_new(gen_id);
		id = gen_id;
	}
	m.msg_id = id;
	m.msg_id_len = strlen(id);
	rc = cli_with_conn(publish_one, NULL, &m);
	free(data);
	return rc;
}
