/* Group commit (node_server.c): what goes into one log entry.
 *
 * Every request that arrives in one loop iteration joins the open batch
 * until a limit would be passed: max_batch_commands, max_batch_bytes, and
 * the 64 MiB cap of an entry whatever max_batch_bytes says (consensus/
 * refuses a larger one, CONS_ETOOBIG). A request over a limit on its own
 * goes alone; one that could not fit even alone is refused with
 * MESSAGE_TOO_LARGE and never proposed (and should consensus/ still
 * refuse an entry, its requests hear MESSAGE_TOO_LARGE too). Batches wait
 * in line while max_inflight_batches are in flight. The fake consensus
 * records every entry proposed (commands, encoded bytes), and the harness
 * checks each entry is at most what the node counted for its batch. */
#include <criterion/criterion.h>

#include <string.h>

#include "helpers.h"

#define MIB ((size_t)1 << 20)

static struct fake_node node;
static struct fake_client *cl;
static size_t h0; /* entries proposed before the test's own */

static void start(struct node_config *cfg)
{
	cl = tn_start_queue(&node, cfg, "q");
	h0 = node.cons.n_history;
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(batch, .fini = stop);

/* The commands of each entry the test proposed, as a string ("3 3 3 1"). */
static const char *entries(void)
{
	static char buf[512];
	size_t i, off = 0;
	buf[0] = '\0';
	for (i = h0; i < node.cons.n_history && off < sizeof buf - 16; i++) {
		off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%zu",
					i > h0 ? " " : "",
					node.cons.history[i].n);
	}
	return buf;
}

/* Every entry the test proposed is at most `bytes` long. */
static void expect_entries_at_most(size_t bytes)
{
	size_t i;
	for (i = h0; i < node.cons.n_history; i++) {
		cr_assert_leq(node.cons.history[i].len, bytes,
			      "entry %zu: %zu bytes", i,
			      node.cons.history[i].len);
	}
}

/* Publishes n bodies of len bytes, each its own request. */
static uint64_t publish_n(size_t n, size_t len)
{
	static char body[4096];
	uint64_t first = 0, corr;
	size_t i;
	cr_assert_leq(len, sizeof body);
	memset(body, 'b', len);
	for (i = 0; i < n; i++) {
		corr = tn_publish(cl, "q", body, len);
		first = first ? first : corr;
	}
	return first;
}

static void expect_confirms(uint64_t first, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		tn_expect(cl, first + i, BODY(PUBLISH_RESULT));
	}
	tn_expect_none(cl);
}

Test(batch, closes_at_max_batch_commands)
{
	struct node_config cfg;
	uint64_t first;
	tn_config(&cfg);
	cfg.max_batch_commands = 3;
	start(&cfg);
	first = publish_n(10, 10);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "3 3 3 1");
	fake_node_settle(&node);
	expect_confirms(first, 10);
	cr_assert_eq(tn_queue(&node, "q").ready, 10);
	tn_stop(&node);
}

Test(batch, closes_before_max_batch_bytes)
{
	/* A publish of 300 bytes is a request of about 330 bytes: three fit
	 * in 1 KiB, a fourth would pass it. */
	struct node_config cfg;
	uint64_t first;
	tn_config(&cfg);
	cfg.max_batch_bytes = 1024;
	start(&cfg);
	first = publish_n(10, 300);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "3 3 3 1");
	expect_entries_at_most(1024 + CONS_ENTRY_BASE_BYTES);
	fake_node_settle(&node);
	expect_confirms(first, 10);
	tn_stop(&node);
}

Test(batch, a_request_over_the_byte_limit_goes_alone)
{
	struct node_config cfg;
	static char big[2000];
	uint64_t first;
	tn_config(&cfg);
	cfg.max_batch_bytes = 1024;
	start(&cfg);
	first = publish_n(1, 300);
	tn_publish(cl, "q", big, sizeof big);
	publish_n(2, 300);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "1 1 2");
	fake_node_settle(&node);
	expect_confirms(first, 4);
	tn_stop(&node);
}

Test(batch, a_publish_batch_over_the_command_limit_goes_alone)
{
	struct node_config cfg;
	uint64_t first, batch;
	tn_config(&cfg);
	cfg.max_batch_commands = 3;
	start(&cfg);
	first = publish_n(1, 10);
	batch = tn_publish_batch(cl, "q", 5, 10, 'x');
	publish_n(1, 10);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "1 5 1");
	fake_node_settle(&node);
	tn_expect(cl, first, BODY(PUBLISH_RESULT));
	cr_assert_eq(tn_expect(cl, batch, BODY(PUBLISH_BATCH_RESULT))
			     ->publish_batch_result->n_results,
		     5);
	tn_expect(cl, batch + 1, BODY(PUBLISH_RESULT));
	cr_assert_eq(tn_queue(&node, "q").ready, 7);
	tn_stop(&node);
}

Test(batch, full_batches_wait_for_a_free_slot)
{
	/* One batch in flight at a time: the others wait in line, in order,
	 * and each goes as soon as the one before is answered. */
	struct node_config cfg;
	uint64_t first;
	tn_config(&cfg);
	cfg.max_batch_commands = 2;
	cfg.max_inflight_batches = 1;
	start(&cfg);
	first = publish_n(5, 10);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "2");
	cr_assert_eq(node.cons.n_pending, 1);
	tn_expect_none(cl);
	cr_assert(fake_cons_complete(&node.cons, 0));
	fake_node_drain(&node);
	cr_assert_str_eq(entries(), "2 2");
	tn_expect(cl, first, BODY(PUBLISH_RESULT));
	tn_expect(cl, first + 1, BODY(PUBLISH_RESULT));
	tn_expect_none(cl);
	fake_node_settle(&node);
	cr_assert_str_eq(entries(), "2 2 1");
	expect_confirms(first + 2, 3);
	tn_stop(&node);
}

/* --------------------------------------------------------------------------
 * The 64 MiB entry cap */

/* The largest frame node_config_validate() accepts: one entry holds it
 * with the entry's and the command's own bytes. */
#define MAX_FRAME \
	(CONS_MAX_ENTRY_BYTES - CONS_ENTRY_BASE_BYTES - CONS_COMMAND_WRAP_BYTES)

static void big_config(struct node_config *cfg)
{
	tn_config(cfg);
	cfg->max_batch_bytes = 1024 * MIB; /* the cap is lower */
	cfg->max_message_bytes = 48 * MIB;
	cfg->max_frame_bytes = MAX_FRAME;
	cfg->memory_limit = 0;
}

Test(batch, no_entry_over_the_cap_whatever_max_batch_bytes, .timeout = 120)
{
	/* Two 40 MiB publishes in one iteration: each fits in an entry,
	 * both together would not. */
	struct node_config cfg;
	uint64_t first, corr;
	char *body = malloc(40 * MIB);
	cr_assert_not_null(body);
	memset(body, 'x', 40 * MIB);
	big_config(&cfg);
	start(&cfg);
	first = tn_publish(cl, "q", body, 40 * MIB);
	corr = tn_publish(cl, "q", body, 40 * MIB);
	free(body);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "1 1");
	expect_entries_at_most(CONS_MAX_ENTRY_BYTES);
	fake_node_settle(&node);
	tn_expect(cl, first, BODY(PUBLISH_RESULT));
	tn_expect(cl, corr, BODY(PUBLISH_RESULT));
	cr_assert_eq(tn_queue(&node, "q").ready, 2);
	tn_stop(&node);
}

Test(batch, a_request_that_cannot_fit_an_entry_is_refused, .timeout = 120)
{
	/* A publish batch of 65536 x 1000 bytes: its frame is within
	 * max_frame_bytes (about 66.3 MB), but each item adds its Command's
	 * headers in the log, so alone it is over the cap. It cannot be
	 * split (its items are answered together): refused before it is
	 * proposed, with a reason; the requests around it go on. */
	struct node_config cfg;
	uint64_t before, batch, after;
	Envelope *e;
	big_config(&cfg);
	start(&cfg);
	before = publish_n(1, 10);
	batch = tn_publish_batch(cl, "q", 65536, 1000, 'y');
	after = publish_n(1, 10);
	e = tn_expect_error(cl, batch, EC(MESSAGE_TOO_LARGE));
	cr_assert_not_null(strstr(e->error->message, "64 MiB"), "%s",
			   e->error->message);
	fake_node_propose(&node);
	cr_assert_str_eq(entries(), "2");
	fake_node_settle(&node);
	tn_expect(cl, before, BODY(PUBLISH_RESULT));
	tn_expect(cl, after, BODY(PUBLISH_RESULT));
	tn_expect_none(cl);
	cr_assert_eq(tn_queue(&node, "q").ready, 2);
	tn_stop(&node);
}

/* Whether node_config_validate() accepts a configuration whose
 * max_frame_bytes is `frame` (max_message_bytes one below it); the limits
 * are left in *cfg. */
static bool frame_valid(struct node_config *cfg, uint64_t frame)
{
	char fb[32], mb[32], err[512];
	char *argv[] = {
		"raftmqd",
		"--id",
		"1",
		"--data-dir",
		"/nonexistent",
		"--raft-address",
		"127.0.0.1:7101",
		"--client-address",
		"127.0.0.1:7001",
		"--members",
		"1@127.0.0.1:7101@127.0.0.1:7001",
		"--memory-limit",
		"1G",
		"--max-frame-bytes",
		fb,
		"--max-message-bytes",
		mb,
	};
	snprintf(fb, sizeof fb, "%llu", (unsigned long long)frame);
	snprintf(mb, sizeof mb, "%llu", (unsigned long long)frame - 1);
	node_config_defaults(cfg);
	cr_assert_eq(node_config_parse_args(cfg, sizeof argv / sizeof *argv,
					    argv, stdout, err, sizeof err),
		     0, "%s", err);
	return node_config_validate(cfg, err, sizeof err) == 0;
}

/* Publishes to "q" one message whose frame (the packed Envelope) is exactly
 * `frame` bytes long. */
static uint64_t publish_frame_of(struct fake_client *c, size_t frame)
{
	Raftmq__Client__V1__Publish p;
	Envelope env;
	uint8_t *body;
	uint64_t corr;
	size_t len;
	PB(publish__init)(&p);
	p.target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
	p.queue = "q";
	PB(envelope__init)(&env);
	env.version = NODE_PROTOCOL_VERSION;
	env.correlation_id = c->corr + 1;
	env.body_case = BODY(PUBLISH);
	env.publish = &p;
	/* The body's length prefix has the same size for all lengths near
	 * the target, so one correction makes the size exact. */
	p.body.len = frame - 64;
	len = p.body.len + frame - PB(envelope__get_packed_size)(&env);
	p.body.len = len;
	cr_assert_eq(PB(envelope__get_packed_size)(&env), frame);
	body = malloc(len);
	cr_assert_not_null(body);
	memset(body, 'z', len);
	p.body.data = body;
	corr = fake_client_send(c, &env);
	free(body);
	return corr;
}

/* Whatever a configuration that validates lets in fits in one entry: for
 * the largest max_frame_bytes node_config_validate() accepts (looked for
 * up to twice the cap), a publish whose frame is that long is committed in
 * one entry, never refused for its size. */
Test(batch, the_largest_frame_a_valid_config_allows_fits_an_entry,
     .timeout = 300)
{
	struct node_config cfg, valid;
	uint64_t lo = 8 * MIB, hi = 2 * CONS_MAX_ENTRY_BYTES, corr;
	cr_assert(frame_valid(&valid, lo));
	while (lo < hi) { /* validation is monotone in max_frame_bytes */
		uint64_t mid = lo + (hi - lo + 1) / 2;
		if (frame_valid(&valid, mid)) {
			lo = mid;
		} else {
			hi = mid - 1;
		}
	}
	cr_assert(frame_valid(&valid, lo));
	tn_config(&cfg);
	cfg.max_frame_bytes = valid.max_frame_bytes;
	cfg.max_message_bytes = valid.max_message_bytes;
	cfg.memory_limit = valid.memory_limit;
	start(&cfg);
	corr = publish_frame_of(cl, lo);
	fake_node_settle(&node);
	tn_expect(cl, corr, BODY(PUBLISH_RESULT));
	cr_assert_str_eq(entries(), "1");
	expect_entries_at_most(CONS_MAX_ENTRY_BYTES);
	cr_assert_eq(tn_queue(&node, "q").ready, 1);
	tn_stop(&node);
}

Test(batch, an_entry_refused_as_too_big_is_answered_clearly)
{
	/* Should consensus/ still refuse an entry (CONS_ETOOBIG), every
	 * request in it hears why, and that nothing was written. */
	uint64_t first;
	Envelope *e;
	start(NULL);
	first = publish_n(2, 10);
	node.cons.propose_error = CONS_ETOOBIG;
	fake_node_propose(&node);
	node.cons.propose_error = 0;
	e = tn_expect_error(cl, first, EC(MESSAGE_TOO_LARGE));
	cr_assert_not_null(strstr(e->error->message, "64 MiB"), "%s",
			   e->error->message);
	tn_expect_error(cl, first + 1, EC(MESSAGE_TOO_LARGE));
	fake_node_settle(&node);
	tn_expect_none(cl);
	cr_assert_eq(tn_queue(&node, "q").ready, 0);
	tn_stop(&node);
}
