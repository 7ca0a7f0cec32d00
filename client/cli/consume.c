/* `raftmq consume`: prints deliveries as JSON lines, then settles them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct cli_cmd consume_cmd = {
	"consume",
	"Usage: raftmq consume QUEUE [--max N] [--timeout MS] [--prefetch N]\n"
	"                      [--no-ack | --nack | --release]\n"
	"\n"
	"Consumes from QUEUE and prints one JSON line per message:\n"
	"  {\"id\":\"...\",\"seq\":N,\"body\":\"...\",\"delivery_count\":N,"
	"\"redelivered\":false}\n"
	"The body is \"body\" (text) when it is valid UTF-8, else "
	"\"body_base64\".\n"
	"Messages that came through dead-lettering also have "
	"\"dead_letter_reason\"\n"
	"(max-deliveries, expired, overflow) and \"dead_letter_queue\".\n"
	"\n"
	"  --max N        stop after N messages (default: no limit)\n"
	"  --timeout MS   stop when no message arrives for MS ms (default "
	"2000;\n"
	"                 0 = wait forever)\n"
	"  --prefetch N   messages taken (and acked) per batch "
	"(default 100)\n"
	"  --no-ack       do not ack: the messages stay held until this "
	"command exits,\n"
	"                 then return to the queue. Not a failed delivery, "
	"but each run\n"
	"                 delivers them again (delivery_count grows). To look "
	"at a queue\n"
	"                 without changing anything, use 'raftmq queue "
	"peek'.\n"
	"  --nack         nack every message at the end (a failed delivery: "
	"it counts\n"
	"                 toward --max-deliveries and is redelivered)\n"
	"  --release      release every message at the end (back to the "
	"queue,\n"
	"                 not counted as a failed delivery)\n"
	"\n"
	"By default each message is acked after its line is printed "
	"(at-least-once:\na message whose line was printed may still come "
	"again after a failure).\n",
	1, 1};

enum settle { ACK, NO_ACK, NACK, RELEASE };

/* Delivery tags waiting to be settled, with the consumer that holds them
 * (it changes when the library re-attaches the consumer on failover). */
struct held {
	uint64_t *cids, *tags;
	size_t n, cap;
};

static int held_add(struct held *h, uint64_t cid, uint64_t tag)
{
	if (h->n == h->cap) {
		size_t cap = h->cap > 0 ? 2 * h->cap : 256;
		uint64_t *c = realloc(h->cids, cap * sizeof(*c));
		uint64_t *t;

		if (c == NULL) {
			return -1;
		}
		h->cids = c;
		t = realloc(h->tags, cap * sizeof(*t));
		if (t == NULL) {
			return -1;
		}
		h->tags = t;
		h->cap = cap;
	}
	h->cids[h->n] = cid;
	h->tags[h->n] = tag;
	h->n++;
	return 0;
}

/*
 * Settles every held tag, one request per run of the same consumer id.
 * RAFTMQ_ESTALE and RAFTMQ_EUNKNOWN_CONSUMER mean the consumer was
 * re-attached: the server gives those messages out again, nothing to do.
 */
static int settle(struct raftmq *conn, struct held *h, enum settle how)
{
	size_t i = 0;

	while (i < h->n) {
		size_t j = i;
		int rv;

		while (j < h->n && h->cids[j] == h->cids[i]) {
			j++;
		}
		switch (how) {
		case ACK:
			rv = raftmq_ack(conn, h->cids[i], h->tags + i, j - i,
					NULL);
			break;
		case NACK:
			rv = raftmq_nack(conn, h->cids[i], h->tags + i, j - i,
					 0, NULL);
			break;
		case RELEASE:
			rv = raftmq_release(conn, h->cids[i], h->tags + i,
					    j - i, NULL);
			break;
		default:
			rv = 0;
			break;
		}
		if (rv != 0 && rv != RAFTMQ_ESTALE &&
		    rv != RAFTMQ_EUNKNOWN_CONSUMER) {
			return cli_lib_fail(conn, rv,
					    how == ACK	  ? "ack"
					    : how == NACK ? "nack"
							  : "release",
					    NULL, NULL);
		}
		i = j;
	}
	h->n = 0;
	return CLI_EXIT_OK;
}

static const char *dl_reason(enum raftmq_dead_letter_reason r)
{
	switch (r) {
	case RAFTMQ_DL_MAX_DELIVERIES:
		return "max-deliveries";
	case RAFTMQ_DL_EXPIRED:
		return "expired";
	case RAFTMQ_DL_OVERFLOW:
		return "overflow";
	default:
		return "none";
	}
}

void cli_print_delivery(const struct raftmq_delivery *d, const char *state)
{
	struct cli_json j;

	cli_json_init(&j, stdout);
	cli_json_obj(&j, NULL);
	cli_json_strn(&j, "id", d->msg_id, d->msg_id_len);
	/* The delivery tag is the message's seq in its queue (client.proto,
	 * Delivery.tag). */
	cli_json_u64(&j, "seq", d->tag);
	cli_json_bytes(&j, "body", d->body, d->body_len);
	cli_json_u64(&j, "delivery_count", d->delivery_count);
	cli_json_bool(&j, "redelivered", d->redelivered);
	if (d->dead_letter_reason != RAFTMQ_DL_NONE) {
		cli_json_str(&j, "dead_letter_reason",
			     dl_reason(d->dead_letter_reason));
		cli_json_str(&j, "dead_letter_queue", d->dead_letter_queue);
	}
	if (state != NULL) {
		cli_json_str(&j, "state", state);
	}
	cli_json_obj_end(&j);
	putchar('\n');
}

int cli_consume_main(int argc, char **argv)
{
	uint64_t max = 0, timeout = 2000, prefetch = 100;
	bool has_max = false;
	bool no_ack = false, nack = false, release = false;
	const struct cli_opt opts[] = {
		{"max", CLI_U64, &max, &has_max},
		{"timeout", CLI_U64, &timeout, NULL},
		{"prefetch", CLI_U64, &prefetch, NULL},
		{"no-ack", CLI_FLAG, &no_ack, NULL},
		{"nack", CLI_FLAG, &nack, NULL},
		{"release", CLI_FLAG, &release, NULL},
		{NULL, CLI_FLAG, NULL, NULL},
	};
	const char *cmd = consume_cmd.path;
	struct cli_progress prog;
	struct held h = {0};
	struct raftmq *conn;
	enum settle how;
	char action[300];
	const char *queue;
	char *args[1];
	uint64_t got = 0;
	int nargs;
	int rc;
	int rv;

	rc = cli_parse(&consume_cmd, argc, argv, opts, args, &nargs);
	if (rc >= 0) {
		return rc;
	}
	queue = args[0];
	if (no_ack + nack + release > 1) {
		return cli_usage(cmd,
				 "give at most one of --no-ack, --nack "
				 "and --release");
	}
	if (has_max && max == 0) {
		return cli_usage(cmd, "--max must be at least 1");
	}
	if (timeout > INT32_MAX || prefetch > UINT32_MAX) {
		return cli_usage(cmd, "--timeout or --prefetch is too large");
	}
	how = no_ack ? NO_ACK : nack ? NACK : release ? RELEASE : ACK;
	if (prefetch == 0) {
		return cli_usage(cmd, "--prefetch must be at least 1");
	}
	conn = cli_connect(NULL, &rc);
	if (conn == NULL) {
		return rc;
	}
	snprintf(action, sizeof(action), "consume from queue \"%s\"", queue);
	cli_progress_init(&prog);
	rc = CLI_EXIT_OK;
	/*
	 * Pull, not push: a push consumer gets the next messages as soon as
	 * the last ones are acked, so stopping after --max would hand those
	 * back as redelivered (delivery_count + 1 each run). A fetch takes
	 * exactly what is asked for. It first takes what is ready at once;
	 * when nothing is, it waits for one message only, because a fetch
	 * waits until it has all it asked for or its wait ran out.
	 */
	while (rc == CLI_EXIT_OK && (!has_max || got < max)) {
		struct raftmq_delivery *ds = NULL;
		uint64_t want = prefetch;
		size_t n = 0;

		if (has_max && max - got < want) {
			want = max - got;
		}
		rv = raftmq_fetch(conn, queue, (uint32_t)want, 0, &ds, &n);
		if (rv == 0 && n == 0) {
			/* --timeout 0: wait forever, in 10 s fetches. */
			rv = raftmq_fetch(conn, queue, 1,
					  timeout == 0 ? 10000 : timeout, &ds,
					  &n);
			if (rv == 0 && n == 0 && timeout != 0) {
				break; /* quiet for --timeout: done */
			}
		}
		if (rv != 0) {
			rc = cli_lib_fail(conn, rv, action, "queue", queue);
			break;
		}
		for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
			cli_print_delivery(&ds[i], NULL);
			if (held_add(&h, ds[i].consumer_id, ds[i].tag) != 0) {
				rc = cli_fail("out of memory");
			}
			got++;
		}
		raftmq_deliveries_free(ds, n);
		cli_progress_update(&prog, "consume: %llu messages",
				    (unsigned long long)got);
		if (rc == CLI_EXIT_OK && how == ACK && h.n > 0) {
			/* Ack only what is printed: a crash in between
			 * redelivers rather than loses. */
			fflush(stdout);
			rc = settle(conn, &h, ACK);
		}
	}
	cli_progress_done(&prog);
	fflush(stdout);
	if (rc == CLI_EXIT_OK && (how == NACK || how == RELEASE)) {
		rc = settle(conn, &h, how);
	}
	/* With --no-ack the held messages go back at the close, whose
	 * goodbye (a Cancel of the pull consumer) keeps them from counting
	 * as failed deliveries. */
	raftmq_close(conn);
	free(h.cids);
	free(h.tags);
	return rc;
}
