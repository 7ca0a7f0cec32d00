/* Fuzz target: random command sequences against queue/'s state machine.
 *
 * The input is a small program. Byte 0 picks the options (bit 0: inject
 * allocation failures; bit 1: max_body 64; bit 2: bodies in a body store,
 * the fake of tests/lib/fake_bodies.h). Then, per command: one byte for
 * the command type, one for the clock step (mostly small, sometimes a jump
 * or a step backwards), one for a failure budget in fault mode (with a body
 * store, its bit 7 makes the command's put fail instead), then the
 * command's arguments as small indexes into fixed pools (queue, topic and
 * subscription names, settings values including edge values, msg ids,
 * sessions), delivery tags and consumer ids taken from what the sink saw.
 * Reads past the end give 0, so every input is a valid program.
 *
 * Checked after every command:
 *   - q_state_apply() returns 0, or Q_ENOMEM only when an allocation failed
 *     (fault mode), or Q_EIO only when a put failed; after either the
 *     state's dump is byte-identical to the one before and the sink was not
 *     called (all-or-nothing, q.h);
 *   - q_state_check() passes (the full invariant walk), and with a body
 *     store the keys the state refers to are exactly those it put and has
 *     not dropped (fb_check());
 *   - every delivery the sink reports is readable (ASan checks the copy;
 *     with a body store, the bytes are read from it by key and checksum).
 * At the end: dump -> load -> dump gives the same bytes and the loaded
 * state passes q_state_check() (with a body store it claims every key). */
#include "fake_bodies.h"
#include "fuzz_util.h"

#define MAX_CMDS 256

static const char *const queues[] = {"a",   "b", "dl", "t:s",
				     "u:r", "",	 "t",  "x\x01y"};
static const char *const topics[] = {"t", "u", "a", ""};
static const char *const subs[] = {"s", "r", "", "a"};
static const char *const dead_letters[] = {NULL, "", "dl", "a", "nowhere"};
static const uint64_t small_ms[] = {
	0, 1, 10, 50, 30000, UINT64_MAX / 2, UINT64_MAX, UINT64_MAX - 1};
static const uint64_t counts[] = {0, 1, 2, 3, 100, UINT64_MAX};
static const struct q_session sessions[] = {{1, 1, 1},
					    {1, 1, 2},
					    {1, 2, 1},
					    {2, 1, 1},
					    {0, 0, 0}};

#define PICK(arr, in) ((arr)[fz_u8(in) % (sizeof(arr) / sizeof((arr)[0]))])

/* ------------------------------------------------------- fault injection */

struct fault {
	long budget; /* allocations left before failing; < 0 = never fail */
	int failed;  /* an allocation failed during this command */
};

static void *f_malloc(void *data, size_t size)
{
	struct fault *f = data;
	if (f->budget == 0) {
		f->failed = 1;
		return NULL;
	}
	if (f->budget > 0) {
		f->budget--;
	}
	return malloc(size);
}

static void *f_realloc(void *data, void *ptr, size_t size)
{
	struct fault *f = data;
	if (f->budget == 0) {
		f->failed = 1;
		return NULL;
	}
	if (f->budget > 0) {
		f->budget--;
	}
	return realloc(ptr, size);
}

static void f_free(void *data, void *ptr)
{
	(void)data;
	free(ptr);
}

/* ------------------------------------------------------------------ sink */

struct seen {
	q_seq tags[16];
	q_consumer_id consumers[16];
	size_t n, next;
	unsigned calls; /* sink calls during the current command */
	uint64_t sum;	/* keeps the reads of delivered bytes alive */
};

static void on_delivery(void *data, const struct q_delivery *d)
{
	struct seen *s = data;
	const void *body = d->body, *id = d->msg_id;
	size_t i;
	s->calls++;
	if (body == NULL && (d->body_len != 0 || d->msg_id_len != 0)) {
		/* A body store: the bytes are there, by key. */
		size_t id_len, len;
		uint32_t sum;
		FZ_CHECK(id == NULL, "msg id bytes without body bytes");
		FZ_CHECK(
			fb_lookup(d->body_key, &id, &id_len, &body, &len, &sum),
			"body %llu of a delivery is not in the store",
			(unsigned long long)d->body_key);
		FZ_CHECK(sum == d->body_sum && len == d->body_len &&
				 id_len == d->msg_id_len,
			 "body %llu: checksum or lengths differ",
			 (unsigned long long)d->body_key);
	}
	/* Touch everything the delivery points to: ASan reports a pointer
	 * into freed or foreign memory. */
	for (i = 0; i < d->body_len; i++) {
		s->sum += ((const unsigned char *)body)[i];
	}
	for (i = 0; id != NULL && i < d->msg_id_len; i++) {
		s->sum += ((const unsigned char *)id)[i];
	}
	s->sum += strlen(d->queue) + d->session->session_id;
	if (d->dl_queue != NULL) {
		s->sum += strlen(d->dl_queue);
	}
	FZ_CHECK(d->delivery_count >= 1, "delivery_count %u",
		 d->delivery_count);
	s->tags[s->next] = d->seq;
	s->consumers[s->next] = d->consumer;
	s->next = (s->next + 1) % 16;
	if (s->n < 16) {
		s->n++;
	}
}

static void on_gone(void *data, const struct q_consumer_gone *g)
{
	struct seen *s = data;
	s->calls++;
	s->sum += strlen(g->queue) + g->session->node_id;
}

/* --------------------------------------------------------------- program */

static void settings(struct fz_in *in, struct q_settings *st)
{
	uint8_t which = fz_u8(in);
	q_settings_default(st);
	if (which & 1) {
		st->ack_timeout_ms = PICK(small_ms, in);
	}
	if (which & 2) {
		st->max_deliveries = (uint32_t)(fz_u8(in) % 4);
	}
	if (which & 4) {
		st->dead_letter = PICK(dead_letters, in);
	}
	if (which & 8) {
		st->ttl_ms = PICK(small_ms, in);
	}
	if (which & 16) {
		st->max_length = PICK(counts, in);
	}
	if (which & 32) {
		st->max_bytes = PICK(counts, in) * 7;
	}
	if (which & 64) {
		st->overflow = (uint8_t)(fz_u8(in) % 3); /* 2 is invalid */
	}
	if (which & 128) {
		st->dedup_window_ms = PICK(small_ms, in);
	}
}

static q_consumer_id consumer(struct fz_in *in, const struct seen *s)
{
	uint8_t b = fz_u8(in);
	if ((b & 0x80) && s->n > 0) {
		return s->consumers[b % s->n];
	}
	return b % 6;
}

static q_seq tag(struct fz_in *in, const struct seen *s)
{
	uint8_t b = fz_u8(in);
	if ((b & 0x80) && s->n > 0) {
		return s->tags[b % s->n];
	}
	return b % 12;
}

/* Builds the next command from the input. `tags` has room for 4. */
static void next_cmd(struct fz_in *in, const struct seen *s, uint64_t *now,
		     struct q_cmd *c, q_seq *tags, unsigned char *body)
{
	uint8_t dt;
	size_t i;
	memset(c, 0, sizeof *c);
	c->type = (uint8_t)(fz_u8(in) % Q_CMD_TYPE_COUNT);
	dt = fz_u8(in);
	if (dt == 255 && *now > 1000) {
		*now -= 50; /* a stamp going backwards changes nothing */
	} else if (dt >= 200) {
		*now += (uint64_t)(dt - 200) * 25;
	} else {
		*now += dt % 16;
	}
	c->now_ms = *now;
	switch (c->type) {
	case Q_CMD_TICK:
		break;
	case Q_CMD_CREATE_QUEUE:
	case Q_CMD_CONFIGURE_QUEUE:
	case Q_CMD_DELETE_QUEUE:
	case Q_CMD_PURGE_QUEUE:
		c->u.queue.name = PICK(queues, in);
		settings(in, &c->u.queue.settings);
		c->u.queue.mask = fz_u16(in) & 0x1ff; /* bit 8 is invalid */
		break;
	case Q_CMD_CREATE_TOPIC:
	case Q_CMD_DELETE_TOPIC:
	case Q_CMD_SUBSCRIBE:
	case Q_CMD_UNSUBSCRIBE:
		c->u.topic.topic = PICK(topics, in);
		c->u.topic.subscription = PICK(subs, in);
		settings(in, &c->u.topic.settings);
		c->u.topic.dedup_window_ms = PICK(small_ms, in);
		break;
	case Q_CMD_PUBLISH: {
		uint8_t how = fz_u8(in);
		static const char *const ids[] = {"m1", "m2", "m3", "x\0y"};
		static const size_t id_lens[] = {2, 2, 2, 3};
		if (how & 1) {
			c->u.publish.topic = PICK(topics, in);
		} else {
			c->u.publish.queue = PICK(queues, in);
		}
		if (how & 2) {
			i = fz_u8(in) % 4;
			c->u.publish.msg_id = ids[i];
			c->u.publish.msg_id_len = id_lens[i];
		}
		c->u.publish.body_len = fz_u8(in) % 80;
		c->u.publish.body = body;
		if (how & 4) {
			c->u.publish.delay_ms = PICK(small_ms, in);
		}
		if (how & 8) {
			c->u.publish.ttl_ms = PICK(small_ms, in);
		}
		break;
	}
	case Q_CMD_ATTACH: {
		static const uint32_t credits[] = {Q_CREDIT_UNLIMITED, 0, 1, 2,
						   5};
		c->u.attach.queue = PICK(queues, in);
		c->u.attach.session = PICK(sessions, in);
		c->u.attach.prefetch = fz_u8(in) % 4;
		c->u.attach.credit = PICK(credits, in);
		break;
	}
	case Q_CMD_DETACH:
	case Q_CMD_CREDIT: {
		static const uint32_t credits[] = {Q_CREDIT_UNLIMITED, 0, 1, 3};
		c->u.consumer.consumer = consumer(in, s);
		c->u.consumer.prefetch = fz_u8(in) % 4;
		c->u.consumer.credit = PICK(credits, in);
		break;
	}
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND:
		c->u.tags.consumer = consumer(in, s);
		c->u.tags.n_tags = fz_u8(in) % 5; /* 0 is refused */
		for (i = 0; i < c->u.tags.n_tags; i++) {
			tags[i] = tag(in, s);
		}
		c->u.tags.tags = tags;
		c->u.tags.ms = PICK(small_ms, in);
		break;
	case Q_CMD_SESSION_GONE:
	case Q_CMD_DETACH_STALE:
		c->u.session.session = PICK(sessions, in);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size, 0};
	struct fault fault = {-1, 0};
	struct q_allocator alloc = {&fault, f_malloc, f_realloc, f_free};
	struct seen seen;
	struct q_sink sink = {&seen, on_delivery, on_gone};
	struct q_options opts;
	struct q_state *s, *copy;
	struct fz_buf before, after, again;
	struct fb_state fb, fb2;
	unsigned char body[80];
	char why[256];
	uint64_t now = 1000;
	uint8_t mode = fz_u8(&in);
	int faults = mode & 1, store = (mode & 4) != 0;
	unsigned n;
	int rv;

	memset(&seen, 0, sizeof seen);
	memset(&opts, 0, sizeof opts);
	opts.allocator = &alloc;
	opts.hash_seed = 42;
	opts.max_body = (mode & 2) ? 64 : 0;
	fb_init(&fb);
	fb_init(&fb2);
	if (store) {
		opts.bodies = &fb.vt;
	}
	for (n = 0; n < sizeof body; n++) {
		body[n] = (unsigned char)('a' + n % 26);
	}
	s = q_state_new(&opts);
	FZ_CHECK(s != NULL, "q_state_new");
	q_state_set_sink(s, &sink);

	for (n = 0; n < MAX_CMDS && !fz_done(&in); n++) {
		struct q_cmd cmd;
		struct q_result res;
		q_seq tags[4];
		uint8_t budget;
		long put_calls = fb.put_calls;
		next_cmd(&in, &seen, &now, &cmd, tags, body);
		budget = faults ? fz_u8(&in) : 0;
		if (budget != 0) {
			fz_dump(s, &before);
			if (store && (budget & 0x80)) {
				fb.fail_put_at = fb.put_calls;
			} else {
				fault.budget = budget % 24;
			}
		}
		fault.failed = 0;
		seen.calls = 0;
		rv = q_state_apply(s, &cmd, &res);
		fault.budget = -1;
		fb.fail_put_at = -1;
		if (rv != 0) {
			FZ_CHECK((rv == Q_ENOMEM && fault.failed) ||
					 (rv == Q_EIO && store &&
					  (budget & 0x80) &&
					  fb.put_calls > put_calls),
				 "command %u (type %u): apply = %d", n,
				 cmd.type, rv);
			FZ_CHECK(seen.calls == 0,
				 "command %u (type %u): %u sink calls before "
				 "failing",
				 n, cmd.type, seen.calls);
			fz_dump(s, &after);
			FZ_CHECK(after.len == before.len &&
					 memcmp(after.p, before.p, after.len) ==
						 0,
				 "command %u (type %u): a failed apply changed "
				 "the state",
				 n, cmd.type);
			free(after.p);
		} else {
			FZ_CHECK(res.status >= 0 && res.status < Q_ECODES_COUNT,
				 "status %d", res.status);
		}
		if (budget != 0) {
			free(before.p);
		}
		fz_state_check(s, "after a command");
		FZ_CHECK(!store || fb_check(&fb, s, why, sizeof why),
			 "command %u (type %u): body store: %s", n, cmd.type,
			 why);
	}

	/* Snapshot round trip. */
	fz_dump(s, &before);
	if (store) {
		opts.bodies = &fb2.vt;
	}
	copy = q_state_new(&opts);
	FZ_CHECK(copy != NULL, "q_state_new");
	rv = q_state_load(copy, before.p, before.len);
	FZ_CHECK(rv == 0, "q_state_load() of a fresh dump = %d: %s", rv,
		 q_state_load_error(copy));
	fz_state_check(copy, "after load");
	FZ_CHECK(!store || fb_check(&fb2, copy, why, sizeof why),
		 "after load: body store: %s", why);
	fz_dump(copy, &again);
	FZ_CHECK(again.len == before.len &&
			 memcmp(again.p, before.p, again.len) == 0,
		 "dump -> load -> dump differs (%zu vs %zu bytes)", before.len,
		 again.len);
	free(before.p);
	free(again.p);
	q_state_free(copy);
	q_state_free(s);
	fb_fini(&fb);
	fb_fini(&fb2);
	FZ_CHECK(fb_store_count() == 0, "bodies left in the store");
	return 0;
}
