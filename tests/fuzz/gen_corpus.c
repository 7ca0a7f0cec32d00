/* Writes the seed corpus of the fuzzers into DIR/{client,entry,snapshot,
 * queue}/ (tests/fuzz/corpus/ when run as in README.md). Deterministic: run
 * again, same bytes. Seeds are small valid inputs that reach every request
 * or command kind; libFuzzer mutates from there.
 *
 *   fuzz_gen_corpus DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client.pb-c.h"
#include "cons_int.h"

static const char *root;

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL) {
			abort();
		}
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put8(struct bytes *b, unsigned v)
{
	unsigned char c = (unsigned char)v;
	put(b, &c, 1);
}

static void save(const char *target, const char *name, struct bytes *b)
{
	char path[4096];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", root, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(b->p, 1, b->len, f) != b->len ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ----------------------------------------------------------------- client */

typedef Raftmq__Client__V1__Envelope Envelope;
#define PB(x) raftmq__client__v1__##x
#define BODY(x) RAFTMQ__CLIENT__V1__ENVELOPE__BODY_##x

static uint64_t corr;

/* Appends env as a frame (version 1, the next correlation id). */
static void frame(struct bytes *b, Envelope *env)
{
	size_t n;
	unsigned char h[4];
	if (env->version == 0) {
		env->version = 1;
	}
	env->correlation_id = ++corr;
	n = PB(envelope__get_packed_size)(env);
	h[0] = (unsigned char)(n >> 24);
	h[1] = (unsigned char)(n >> 16);
	h[2] = (unsigned char)(n >> 8);
	h[3] = (unsigned char)n;
	put(b, h, 4);
	{
		unsigned char *p = malloc(n ? n : 1);
		if (p == NULL) {
			abort();
		}
		PB(envelope__pack)(env, p);
		put(b, p, n);
		free(p);
	}
}

/* A frame whose body is msg (every body member is a pointer in one union). */
static void req(struct bytes *b, int body_case, void *msg)
{
	Envelope e;
	PB(envelope__init)(&e);
	e.body_case = (Raftmq__Client__V1__Envelope__BodyCase)body_case;
	e.hello = msg;
	frame(b, &e);
}

static void create_queue(struct bytes *b, const char *name, int with_settings)
{
	Raftmq__Client__V1__CreateQueue m;
	Raftmq__Client__V1__QueueSettings st;
	PB(create_queue__init)(&m);
	PB(queue_settings__init)(&st);
	m.name = (char *)name;
	if (with_settings) {
		st._ack_timeout_ms_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___ACK_TIMEOUT_MS_ACK_TIMEOUT_MS;
		st.ack_timeout_ms = 50;
		st._max_deliveries_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___MAX_DELIVERIES_MAX_DELIVERIES;
		st.max_deliveries = 2;
		st._dead_letter_queue_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
		st.dead_letter_queue = (char *)"dlq";
		st._max_length_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___MAX_LENGTH_MAX_LENGTH;
		st.max_length = 5;
		st._overflow_case =
			RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___OVERFLOW_OVERFLOW;
		st.overflow = RAFTMQ__CLIENT__V1__OVERFLOW__OVERFLOW_DROP_HEAD;
		m.settings = &st;
	}
	req(b, BODY(CREATE_QUEUE), &m);
}

static void publish(struct bytes *b, const char *queue, const char *topic,
		    const char *id, const char *body)
{
	Raftmq__Client__V1__Publish m;
	PB(publish__init)(&m);
	if (topic != NULL) {
		m.target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
		m.topic = (char *)topic;
	} else {
		m.target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
		m.queue = (char *)queue;
	}
	if (id != NULL) {
		m.msg_id.data = (uint8_t *)id;
		m.msg_id.len = strlen(id);
	}
	m.body.data = (uint8_t *)body;
	m.body.len = strlen(body);
	req(b, BODY(PUBLISH), &m);
}

static void consume(struct bytes *b, const char *queue, uint32_t prefetch)
{
	Raftmq__Client__V1__Consume m;
	PB(consume__init)(&m);
	m.queue = (char *)queue;
	m.prefetch = prefetch;
	req(b, BODY(CONSUME), &m);
}

static void tags(struct bytes *b, int body_case, uint64_t consumer, uint64_t t1,
		 uint64_t t2)
{
	Raftmq__Client__V1__Ack m; /* Nack, Release, Extend share the start */
	Raftmq__Client__V1__Nack n;
	uint64_t t[2] = {t1, t2};
	if (body_case == BODY(ACK)) {
		PB(ack__init)(&m);
		m.consumer_id = consumer;
		m.n_tags = t2 ? 2 : 1;
		m.tags = t;
		req(b, body_case, &m);
		return;
	}
	PB(nack__init)(&n);
	n.consumer_id = consumer;
	n.n_tags = t2 ? 2 : 1;
	n.tags = t;
	n.delay_ms = 5;
	if (body_case == BODY(NACK)) {
		req(b, body_case, &n);
	} else if (body_case == BODY(RELEASE)) {
		Raftmq__Client__V1__Release r;
		PB(release__init)(&r);
		r.consumer_id = consumer;
		r.n_tags = n.n_tags;
		r.tags = t;
		req(b, body_case, &r);
	} else {
		Raftmq__Client__V1__Extend x;
		PB(extend__init)(&x);
		x.consumer_id = consumer;
		x.n_tags = n.n_tags;
		x.tags = t;
		x.ms = 1000;
		req(b, body_case, &x);
	}
}

static void fetch(struct bytes *b, const char *queue, uint64_t consumer,
		  uint32_t max, uint64_t wait)
{
	Raftmq__Client__V1__Fetch m;
	PB(fetch__init)(&m);
	if (queue != NULL) {
		m.source_case = RAFTMQ__CLIENT__V1__FETCH__SOURCE_QUEUE;
		m.queue = (char *)queue;
	} else {
		m.source_case = RAFTMQ__CLIENT__V1__FETCH__SOURCE_CONSUMER_ID;
		m.consumer_id = consumer;
	}
	m.max_messages = max;
	m.wait_ms = wait;
	req(b, BODY(FETCH), &m);
}

static void named(struct bytes *b, int body_case, const char *name)
{
	/* DeleteQueue, PurgeQueue, DeleteTopic, QueueInfo: one string */
	Raftmq__Client__V1__DeleteQueue m;
	PB(delete_queue__init)(&m);
	m.name = (char *)name;
	req(b, body_case, &m);
}

static void empty(struct bytes *b, int body_case)
{
	Raftmq__Client__V1__Hello m; /* an empty message */
	PB(hello__init)(&m);
	req(b, body_case, &m);
}

static void client_seeds(void)
{
	struct bytes b = {0};
	Raftmq__Client__V1__CreateTopic ct;
	Raftmq__Client__V1__Subscribe sub;
	Raftmq__Client__V1__Unsubscribe unsub;
	Raftmq__Client__V1__Credit cr;
	Raftmq__Client__V1__Cancel ca;
	Raftmq__Client__V1__PublishBatch pb;
	Raftmq__Client__V1__Publish items[2], *ip[2] = {&items[0], &items[1]};
	Raftmq__Client__V1__ClusterAdd add;
	Raftmq__Client__V1__ClusterRemove rm;
	Raftmq__Client__V1__ClusterTransfer tr;
	Envelope e;
	unsigned char big[4];

	put8(&b, 0);
	empty(&b, BODY(HELLO));
	empty(&b, BODY(CLUSTER_STATUS));
	empty(&b, BODY(QUEUE_LIST));
	empty(&b, BODY(TOPIC_LIST));
	save("client", "reads", &b);

	/* push consumer: publish, deliver, ack / nack / release / extend */
	put8(&b, 0x10 | 0x01); /* one byte at a time, ticks */
	create_queue(&b, "q", 0);
	create_queue(&b, "dlq", 0);
	publish(&b, "q", NULL, NULL, "one");
	publish(&b, "q", NULL, "id-2", "two");
	publish(&b, "q", NULL, "id-2", "two again");
	consume(&b, "q", 0);
	tags(&b, BODY(ACK), 1, 1, 0);
	tags(&b, BODY(NACK), 1, 2, 0);
	tags(&b, BODY(EXTEND), 1, 2, 7);
	tags(&b, BODY(RELEASE), 1, 2, 0);
	named(&b, BODY(QUEUE_INFO), "q");
	save("client", "push", &b);

	/* pull consumer: fetch by queue, by id, with a wait, credit, cancel */
	put8(&b, 0x08 | 0x03);
	create_queue(&b, "q", 1);
	publish(&b, "q", NULL, NULL, "a");
	fetch(&b, "q", 0, 2, 0);
	publish(&b, "q", NULL, NULL, "b");
	publish(&b, "q", NULL, NULL, "c");
	fetch(&b, NULL, 1, 1, 100);
	fetch(&b, "q", 0, 3, 50);
	PB(credit__init)(&cr);
	cr.consumer_id = 1;
	cr.prefetch = 1;
	cr.credit = 1;
	req(&b, BODY(CREDIT), &cr);
	PB(cancel__init)(&ca);
	ca.consumer_id = 1;
	req(&b, BODY(CANCEL), &ca);
	save("client", "pull", &b);

	/* topics, batches, purge, delete */
	put8(&b, 0x40);
	PB(create_topic__init)(&ct);
	ct.name = (char *)"t";
	req(&b, BODY(CREATE_TOPIC), &ct);
	PB(subscribe__init)(&sub);
	sub.topic = (char *)"t";
	sub.subscription = (char *)"s";
	req(&b, BODY(SUBSCRIBE), &sub);
	consume(&b, "t:s", 1);
	publish(&b, NULL, "t", "m", "hello");
	PB(publish_batch__init)(&pb);
	PB(publish__init)(&items[0]);
	PB(publish__init)(&items[1]);
	items[0].target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_TOPIC;
	items[0].topic = (char *)"t";
	items[1].target_case = RAFTMQ__CLIENT__V1__PUBLISH__TARGET_QUEUE;
	items[1].queue = (char *)"t:s";
	pb.n_items = 2;
	pb.items = ip;
	req(&b, BODY(PUBLISH_BATCH), &pb);
	named(&b, BODY(PURGE_QUEUE), "t:s");
	PB(unsubscribe__init)(&unsub);
	unsub.topic = (char *)"t";
	unsub.subscription = (char *)"s";
	req(&b, BODY(UNSUBSCRIBE), &unsub);
	named(&b, BODY(DELETE_TOPIC), "t");
	create_queue(&b, "q", 0);
	named(&b, BODY(CONFIGURE_QUEUE), "q");
	named(&b, BODY(DELETE_QUEUE), "q");
	save("client", "topics", &b);

	/* membership and bad frames: no version, a newer one, a result sent
	 * as a request, garbage, then a length over max_frame_bytes */
	put8(&b, 0x20);
	PB(cluster_add__init)(&add);
	add.id = 2;
	add.raft_address = (char *)"127.0.0.1:7102";
	add.client_address = (char *)"127.0.0.1:7002";
	req(&b, BODY(CLUSTER_ADD), &add);
	PB(cluster_remove__init)(&rm);
	rm.id = 2;
	req(&b, BODY(CLUSTER_REMOVE), &rm);
	PB(cluster_transfer__init)(&tr);
	req(&b, BODY(CLUSTER_TRANSFER), &tr);
	PB(envelope__init)(&e);
	e.version = 7;
	e.body_case = BODY(HELLO);
	{
		Raftmq__Client__V1__Hello h;
		PB(hello__init)(&h);
		e.hello = &h;
		frame(&b, &e);
	}
	empty(&b, BODY(CREATE_QUEUE_RESULT));
	put(&b, "\0\0\0\3\xff\xff\xff", 7);
	big[0] = 0;
	big[1] = 1;
	big[2] = 0;
	big[3] = 0;
	put(&b, big, 4);
	save("client", "admin-and-bad", &b);

	/* memory alarm and the message size limit */
	put8(&b, 0x80 | 0x01);
	create_queue(&b, "q", 0);
	{
		char body[1500];
		memset(body, 'x', sizeof body - 1);
		body[sizeof body - 1] = '\0';
		publish(&b, "q", NULL, NULL, body);
		body[900] = '\0';
		publish(&b, "q", NULL, NULL, body);
		publish(&b, "q", NULL, NULL, body);
		publish(&b, "q", NULL, NULL, body);
	}
	save("client", "limits", &b);
}

/* ------------------------------------------------------------------ entry */

static void entry(struct bytes *b, const struct q_cmd *cmds, size_t n,
		  const Raftmq__Log__V1__SetMember *m, size_t n_m, uint64_t t)
{
	struct raft_buffer buf;
	if (cons__entry_encode(cmds, n, m, n_m, t, NULL, &buf) != 0) {
		abort();
	}
	put(b, buf.base, buf.len);
	raft_free(buf.base);
}

static struct q_cmd cmd(int type)
{
	struct q_cmd c;
	memset(&c, 0, sizeof c);
	c.type = (uint8_t)type;
	return c;
}

/* A history that touches every command kind (also used for snapshots). */
static size_t history(struct q_cmd *c, q_seq *t)
{
	size_t n = 0;
	const struct q_session s1 = {1, 1, 1};
	c[n] = cmd(Q_CMD_CREATE_QUEUE);
	c[n].u.queue.name = "q";
	q_settings_default(&c[n].u.queue.settings);
	c[n].u.queue.settings.dead_letter = "dlq";
	c[n].u.queue.settings.max_deliveries = 2;
	c[n++].u.queue.settings.ttl_ms = 500;
	c[n] = cmd(Q_CMD_CREATE_QUEUE);
	c[n].u.queue.name = "dlq";
	q_settings_default(&c[n++].u.queue.settings);
	c[n] = cmd(Q_CMD_CREATE_TOPIC);
	c[n].u.topic.topic = "t";
	c[n++].u.topic.dedup_window_ms = 1000;
	c[n] = cmd(Q_CMD_SUBSCRIBE);
	c[n].u.topic.topic = "t";
	c[n].u.topic.subscription = "s";
	q_settings_default(&c[n++].u.topic.settings);
	c[n] = cmd(Q_CMD_PUBLISH);
	c[n].u.publish.queue = "q";
	c[n].u.publish.body = "hello";
	c[n++].u.publish.body_len = 5;
	c[n] = cmd(Q_CMD_PUBLISH);
	c[n].u.publish.topic = "t";
	c[n].u.publish.msg_id = "m1";
	c[n].u.publish.msg_id_len = 2;
	c[n].u.publish.body = "x";
	c[n++].u.publish.body_len = 1;
	c[n] = cmd(Q_CMD_PUBLISH);
	c[n].u.publish.queue = "q";
	c[n].u.publish.body = "later";
	c[n].u.publish.body_len = 5;
	c[n++].u.publish.delay_ms = 100;
	c[n] = cmd(Q_CMD_ATTACH);
	c[n].u.attach.queue = "q";
	c[n].u.attach.session = s1;
	c[n].u.attach.prefetch = 2;
	c[n++].u.attach.credit = Q_CREDIT_UNLIMITED;
	c[n] = cmd(Q_CMD_ATTACH);
	c[n].u.attach.queue = "t:s";
	c[n].u.attach.session = s1;
	c[n++].u.attach.credit = 1;
	t[0] = 1;
	t[1] = 2;
	c[n] = cmd(Q_CMD_NACK);
	c[n].u.tags.consumer = 1;
	c[n].u.tags.tags = &t[0];
	c[n++].u.tags.n_tags = 1;
	c[n] = cmd(Q_CMD_EXTEND);
	c[n].u.tags.consumer = 2;
	c[n].u.tags.tags = &t[1];
	c[n].u.tags.n_tags = 1;
	c[n++].u.tags.ms = 10;
	c[n] = cmd(Q_CMD_CREDIT);
	c[n].u.consumer.consumer = 2;
	c[n++].u.consumer.credit = 3;
	return n;
}

static size_t history2(struct q_cmd *c, q_seq *t)
{
	size_t n = 0;
	const struct q_session s1 = {1, 1, 1};
	t[0] = 1;
	t[1] = 3;
	c[n] = cmd(Q_CMD_ACK);
	c[n].u.tags.consumer = 1;
	c[n].u.tags.tags = t;
	c[n++].u.tags.n_tags = 2;
	c[n] = cmd(Q_CMD_RELEASE);
	c[n].u.tags.consumer = 2;
	c[n].u.tags.tags = &t[1];
	c[n++].u.tags.n_tags = 1;
	c[n] = cmd(Q_CMD_CONFIGURE_QUEUE);
	c[n].u.queue.name = "q";
	q_settings_default(&c[n].u.queue.settings);
	c[n].u.queue.settings.max_length = 1;
	c[n].u.queue.settings.overflow = Q_OVERFLOW_DROP_HEAD;
	c[n++].u.queue.mask = Q_SET_MAX_LENGTH | Q_SET_OVERFLOW;
	c[n++] = cmd(Q_CMD_TICK);
	c[n] = cmd(Q_CMD_PURGE_QUEUE);
	c[n++].u.queue.name = "dlq";
	c[n] = cmd(Q_CMD_SESSION_GONE);
	c[n++].u.session.session = s1;
	c[n] = cmd(Q_CMD_DETACH);
	c[n++].u.consumer.consumer = 2;
	c[n] = cmd(Q_CMD_DETACH_STALE);
	c[n].u.session.session.node_id = 1;
	c[n++].u.session.session.epoch = 2;
	c[n] = cmd(Q_CMD_UNSUBSCRIBE);
	c[n].u.topic.topic = "t";
	c[n++].u.topic.subscription = "s";
	c[n] = cmd(Q_CMD_DELETE_TOPIC);
	c[n++].u.topic.topic = "t";
	c[n] = cmd(Q_CMD_DELETE_QUEUE);
	c[n++].u.queue.name = "q";
	return n;
}

static void entry_seeds(void)
{
	struct bytes b = {0};
	struct q_cmd c[32];
	q_seq t[4], t2[4];
	Raftmq__Log__V1__SetMember m;
	size_t n = history(c, t), n2;

	entry(&b, c, n, NULL, 0, 1000);
	save("entry", "history", &b);

	raftmq__log__v1__set_member__init(&m);
	m.id = 2;
	m.client_address = (char *)"127.0.0.1:7002";
	entry(&b, c, 2, &m, 1, 1000);
	save("entry", "set-member", &b);

	/* several entries back to back, clock moving on */
	entry(&b, c, n, NULL, 0, 1000);
	n2 = history2(c, t2);
	entry(&b, c, 1, NULL, 0, 1200); /* TICK-free step */
	entry(&b, c, n2, NULL, 0, 5000);
	save("entry", "two-phases", &b);
	(void)t;
}

/* --------------------------------------------------------------- snapshot */

static void snapshot_seeds(void)
{
	struct bytes b = {0};
	struct cons_fsm f;
	struct q_options o;
	struct q_cmd c[32];
	struct raft_buffer snap;
	q_seq t[4];
	void *dump;
	size_t n = history(c, t), i, len;

	memset(&o, 0, sizeof o);
	if (cons__fsm_init(&f, &o, NULL) != 0) {
		abort();
	}
	for (i = 0; i < n; i++) {
		struct q_result r;
		c[i].now_ms = 1000 + i;
		if (q_state_apply(f.state, &c[i], &r) != 0) {
			abort();
		}
	}
	cons__fsm_set_member(&f, 1, "127.0.0.1:7001");
	if (cons__snapshot_encode(&f, &snap) != 0 ||
	    q_state_dump_buf(f.state, &dump, &len) != 0) {
		abort();
	}
	put8(&b, 1);
	put(&b, snap.base, snap.len);
	save("snapshot", "file", &b);
	put8(&b, 0);
	put(&b, dump, len);
	save("snapshot", "dump", &b);
	put8(&b, 2); /* the harness appends the trailer */
	put(&b, dump, len - 12);
	save("snapshot", "dump-no-trailer", &b);
	put8(&b, 0);
	save("snapshot", "empty-dump", &b);
	raft_free(snap.base);
	free(dump);
	cons__fsm_close(&f);
}

/* ------------------------------------------------------------------ queue */

/* Program bytes for fuzz_queue.c (see the reader there). */
static void queue_seeds(void)
{
	struct bytes b = {0};
	uint64_t x = 0x9e3779b97f4a7c15u;
	int i, k;
	/* create a + dl, publish 3, attach (deliveries), ack / nack from
	 * what was delivered, tick far ahead */
	static const unsigned char basic[] = {
		0,  1,	 1,    0, 0,	0,  0, /* CREATE_QUEUE a, defaults */
		1,  1,	 2,    0, 0,	0,     /* CREATE_QUEUE dl */
		9,  1,	 0,    0, 5,	       /* PUBLISH a, 5 bytes */
		9,  1,	 2,    0, 1,	70, /* PUBLISH a with id m2, 70 bytes */
		9,  1,	 4,    0, 3,	2,  /* PUBLISH a delayed 10 */
		10, 1,	 0,    0, 2,	0, /* ATTACH a, session 0, prefetch 2 */
		13, 1,	 0x80, 1, 0x80, 0, /* ACK a seen tag */
		14, 1,	 0x80, 1, 0x81, 2, /* NACK */
		0,  220,		   /* TICK +500 ms */
		17, 1,	 0,		   /* SESSION_GONE */
	};
	b.len = 0;
	put(&b, basic, sizeof basic);
	save("queue", "basic", &b);
	/* the same with allocation failures */
	put8(&b, 1);
	for (i = 1; i < (int)sizeof basic; i++) {
		put8(&b, basic[i]);
		if (i % 6 == 0) {
			put8(&b, 3);
		}
	}
	save("queue", "faults", &b);
	/* both with bodies in a body store; in fault mode one budget byte
	 * has bit 7 (a refused put where it falls to a publish) */
	put(&b, basic, sizeof basic);
	b.p[0] = 4;
	save("queue", "store-basic", &b);
	put8(&b, 5);
	for (i = 1; i < (int)sizeof basic; i++) {
		put8(&b, basic[i]);
		if (i % 6 == 0) {
			put8(&b, i == 18 ? 0x80 : 3);
		}
	}
	save("queue", "store-faults", &b);
	/* a few pseudo-random programs */
	for (k = 0; k < 4; k++) {
		char name[16];
		put8(&b, (unsigned)k * 2);
		for (i = 0; i < 200; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			put8(&b, (unsigned)(x >> 32));
		}
		snprintf(name, sizeof name, "random-%d", k);
		save("queue", name, &b);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR (tests/fuzz/corpus)\n", argv[0]);
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0755) != 0 && errno != EEXIST) {
		perror(root);
		return 1;
	}
	client_seeds();
	entry_seeds();
	snapshot_seeds();
	queue_seeds();
	return 0;
}
