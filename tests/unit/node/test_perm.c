/* The auth matrix: every request kind against every permission, through
 * the node (node_dispatch.c's path, node_perm.c), with auth on.
 *
 * The request kinds are walked from client.proto's own schema (the
 * protobuf-c descriptor of Envelope's body oneof), so a kind added to the
 * schema cannot be missed: each is built with every string it carries set
 * to a name (a repeated message gets one element), and sent by five users,
 * on a name inside and a name outside their prefixes:
 *
 *   root  admin, every permission ("*")     pub   publish "a"
 *   con   consume "a"                       conf  configure "a"
 *   none  no permission at all
 *
 * Each answer must be PERMISSION_DENIED exactly when the kind's table entry
 * says so (its access, and the permissions its grant lists, checked with
 * node_auth_allows()), and exactly when this file's own list says so (what
 * docs/operations.md states for each kind; a kind missing from it fails).
 * A refused request proposes nothing. Before Hello, every kind but Hello
 * is refused UNAUTHENTICATED; a body that is not a request (results,
 * pushes, a number the schema does not know) is refused whoever asks. */
#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <string.h>

#include "helpers.h"
#include "node_auth.h"

static struct fake_node node;

static const struct {
	const char *name, *token;
	const char *publish, *consume, *configure;
	bool admin;
} users[] = {
	{"root", "tok-root", "*", "*", "*", true},
	{"pub", "tok-pub", "a", "", "", false},
	{"con", "tok-con", "", "a", "", false},
	{"conf", "tok-conf", "", "", "a", false},
	{"none", "tok-none", "", "", "", false},
};
#define N_USERS (sizeof users / sizeof users[0])

/* What each kind needs, as docs/operations.md states it: "-" anyone (before
 * authentication), "U" any user, "A" admin, "V" any permission on the name,
 * else each of P (publish), C (consume), F (configure) on the name it
 * names (subscribe: consume on the topic, configure on TOPIC:SUB). */
static const struct {
	const char *kind, *needs;
} needs[] = {
	{"hello", "-"},
	{"publish", "P"},
	{"publish_batch", "P"},
	{"create_queue", "F"},
	{"configure_queue", "F"},
	{"delete_queue", "F"},
	{"purge_queue", "F"},
	{"create_topic", "F"},
	{"delete_topic", "F"},
	{"subscribe", "CF"},
	{"unsubscribe", "CF"},
	{"consume", "C"},
	{"cancel", "U"},
	{"credit", "U"},
	{"fetch", "C"},
	{"ack", "U"},
	{"nack", "U"},
	{"release", "U"},
	{"extend", "U"},
	{"queue_info", "V"},
	{"queue_list", "U"},
	{"topic_list", "U"},
	{"cluster_status", "A"},
	{"cluster_add", "A"},
	{"cluster_remove", "A"},
	{"cluster_transfer", "A"},
	{"peek", "C"},
	{"fetch_bodies", "A"},
};

static void start(void)
{
	struct node_config cfg;
	size_t i;
	tn_config(&cfg);
	cfg.auth = true;
	cfg.n_users = N_USERS;
	for (i = 0; i < N_USERS; i++) {
		struct node_user *u = &cfg.users[i];
		unsigned len = 0;
		memset(u, 0, sizeof *u);
		snprintf(u->name, sizeof u->name, "%s", users[i].name);
		cr_assert_eq(
			EVP_Digest(users[i].token, strlen(users[i].token),
				   u->token_sha256, &len, EVP_sha256(), NULL),
			1);
		u->has_sha256 = true;
		snprintf(u->publish, sizeof u->publish, "%s", users[i].publish);
		snprintf(u->consume, sizeof u->consume, "%s", users[i].consume);
		snprintf(u->configure, sizeof u->configure, "%s",
			 users[i].configure);
		u->admin = users[i].admin;
	}
	tn_start(&node, &cfg);
}

static void stop(void)
{
	tn_cleanup(&node);
}

TestSuite(perm, .init = start, .fini = stop);

/* ------------------------------------------------------------ the schema */

static bool in_body(const ProtobufCFieldDescriptor *f)
{
	return (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
	       f->quantifier_offset == offsetof(Envelope, body_case);
}

/* Requests are the body's fields 10..99 (client.proto). */
static bool is_request(const ProtobufCFieldDescriptor *f)
{
	return in_body(f) && f->id >= 10 && f->id <= 99;
}

/* Messages built for one request, freed together. */
struct pool {
	void *p[16];
	size_t n;
};

static void *pool_add(struct pool *pl, void *p)
{
	cr_assert_not_null(p);
	cr_assert_lt(pl->n, sizeof pl->p / sizeof pl->p[0]);
	pl->p[pl->n++] = p;
	return p;
}

static void pool_free(struct pool *pl)
{
	while (pl->n > 0) {
		free(pl->p[--pl->n]);
	}
}

static ProtobufCMessage *new_message(struct pool *pl,
				     const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessage *m = pool_add(pl, calloc(1, d->sizeof_message));
	protobuf_c_message_init(d, m);
	return m;
}

/* Every string of m (the first string of a oneof) set to name, one element
 * in each repeated message (at the top level); the rest left at defaults. */
static void fill(struct pool *pl, ProtobufCMessage *m, const char *name,
		 bool top)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;
	size_t i;
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			ProtobufCMessage **one;
			if (f->type != PROTOBUF_C_TYPE_MESSAGE || !top) {
				continue;
			}
			one = pool_add(pl, calloc(1, sizeof *one));
			one[0] = new_message(pl, f->descriptor);
			fill(pl, one[0], name, false);
			*(size_t *)(void *)(base + f->quantifier_offset) = 1;
			*(ProtobufCMessage ***)(void *)(base + f->offset) = one;
			continue;
		}
		if (f->type != PROTOBUF_C_TYPE_STRING) {
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *which =
				(uint32_t *)(void *)(base +
						     f->quantifier_offset);
			if (*which != 0) {
				continue;
			}
			*which = f->id;
		}
		*(const char **)(void *)(base + f->offset) = name;
	}
}

/* The request of body field f naming `name`, into env (messages in pl). */
static void build(struct pool *pl, Envelope *env,
		  const ProtobufCFieldDescriptor *f, const char *name)
{
	ProtobufCMessage *m = new_message(pl, f->descriptor);
	fill(pl, m, name, true);
	PB(envelope__init)(env);
	env->body_case = (Raftmq__Client__V1__Envelope__BodyCase)f->id;
	*(ProtobufCMessage **)(void *)((char *)env + f->offset) = m;
}

/* ----------------------------------------------------------- the verdicts */

/* What the table says: may user u make this request? */
static bool table_allows(const struct node_user *u, const Envelope *env)
{
	const struct node_kind *k = node_kind_of(env->body_case);
	struct node_grant g;
	size_t i;
	cr_assert_not_null(k);
	switch (k->access) {
	case NODE_ACCESS_ANYONE:
	case NODE_ACCESS_USER:
		return true;
	case NODE_ACCESS_ADMIN:
		return u->admin;
	case NODE_ACCESS_NAMED:
		for (i = 0; k->grant(env, i, &g); i++) {
			const char *name = g.name != NULL ? g.name : "";
			if (g.perm == NODE_PERM_VISIBLE
				    ? !node_auth_visible(u, name)
				    : !node_auth_allows(u,
							(enum node_perm)g.perm,
							name)) {
				return false;
			}
		}
		return true;
	default:
		cr_assert_fail("kind %s has access %d", k->name, k->access);
		return false;
	}
}

static bool has_prefix(const char *list, const char *name)
{
	return strcmp(list, "*") == 0 ||
	       (list[0] != '\0' && strncmp(name, list, strlen(list)) == 0);
}

/* What this file's list says. */
static bool list_allows(size_t ui, const char *kind, const char *name)
{
	const char *n = NULL, *p;
	size_t i;
	for (i = 0; i < sizeof needs / sizeof needs[0]; i++) {
		if (strcmp(needs[i].kind, kind) == 0) {
			n = needs[i].needs;
		}
	}
	cr_assert_not_null(n,
			   "request %s is missing from the list of what "
			   "each kind needs: add it (and to "
			   "docs/operations.md)",
			   kind);
	if (strcmp(n, "-") == 0 || strcmp(n, "U") == 0) {
		return true;
	}
	if (strcmp(n, "A") == 0) {
		return users[ui].admin;
	}
	if (strcmp(n, "V") == 0) {
		return has_prefix(users[ui].publish, name) ||
		       has_prefix(users[ui].consume, name) ||
		       has_prefix(users[ui].configure, name);
	}
	for (p = n; *p != '\0'; p++) {
		const char *list = *p == 'P'   ? users[ui].publish
				   : *p == 'C' ? users[ui].consume
					       : users[ui].configure;
		if (!has_prefix(list, name)) {
			return false;
		}
	}
	return true;
}

/* A new connection of user ui, authenticated. */
static struct fake_client *login(size_t ui)
{
	struct fake_client *c = fake_node_connect(&node);
	Raftmq__Client__V1__Hello h;
	Envelope env;
	uint64_t corr;
	PB(hello__init)(&h);
	h.auth_token = (char *)(uintptr_t)users[ui].token;
	PB(envelope__init)(&env);
	env.body_case = BODY(HELLO);
	env.hello = &h;
	corr = fake_client_send(c, &env);
	tn_expect(c, corr, BODY(HELLO_RESULT));
	return c;
}

/* The frame answering corr (deliveries pushed for it are skipped). */
static Envelope *answer_to(struct fake_client *c, uint64_t corr)
{
	Envelope *e;
	while ((e = fake_client_next(c)) != NULL) {
		if (e->correlation_id == corr &&
		    e->body_case != BODY(DELIVERY)) {
			return e;
		}
	}
	cr_assert_fail("request %llu was not answered",
		       (unsigned long long)corr);
	return NULL;
}

/* Sends request f naming `name` as user ui; returns whether it was
 * allowed, after checking the verdicts agree. */
static bool try_request(const ProtobufCFieldDescriptor *f, size_t ui,
			const char *name)
{
	struct fake_client *c = login(ui);
	const struct node_user *u = &node.srv.cfg.users[ui];
	struct pool pl = {.n = 0};
	Envelope env, *a;
	unsigned before;
	uint64_t corr;
	bool table, list, allowed;

	build(&pl, &env, f, name);
	if (env.body_case == BODY(HELLO)) {
		env.hello->auth_token = (char *)(uintptr_t)users[ui].token;
	}
	table = table_allows(u, &env);
	list = list_allows(ui, f->name, name);
	before = node.cons.proposals;
	corr = fake_client_send(c, &env);
	pool_free(&pl);
	fake_node_settle(&node);
	a = answer_to(c, corr);
	allowed = !(a->body_case == BODY(ERROR) &&
		    a->error->code == EC(PERMISSION_DENIED));
	cr_assert_eq(table, list,
		     "%s by %s on \"%s\": the table says %s, the list %s",
		     f->name, users[ui].name, name, table ? "yes" : "no",
		     list ? "yes" : "no");
	cr_assert_eq(allowed, table, "%s by %s on \"%s\": %s, expected %s%s%s",
		     f->name, users[ui].name, name,
		     allowed ? "served" : "refused",
		     table ? "served" : "refused",
		     a->body_case == BODY(ERROR) ? ": " : "",
		     a->body_case == BODY(ERROR) ? a->error->message : "");
	if (!allowed) {
		cr_assert_eq(node.cons.proposals, before,
			     "%s by %s refused, yet proposed", f->name,
			     users[ui].name);
		cr_assert_not_null(strstr(a->error->message, users[ui].name),
				   "the refusal does not name the user: %s",
				   a->error->message);
	}
	fake_client_close(c);
	fake_node_settle(&node);
	return allowed;
}

Test(perm, every_request_kind_against_every_permission)
{
	const ProtobufCMessageDescriptor *d =
		&raftmq__client__v1__envelope__descriptor;
	size_t i, ui, kinds = 0, refused = 0, served = 0;
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (!is_request(f)) {
			continue;
		}
		kinds++;
		for (ui = 0; ui < N_USERS; ui++) {
			bool in = try_request(f, ui, "a1");
			bool out = try_request(f, ui, "b1");
			refused += !in + !out;
			served += in + out;
		}
	}
	cr_assert_eq(kinds, sizeof needs / sizeof needs[0],
		     "the schema has %zu requests, the list %zu", kinds,
		     sizeof needs / sizeof needs[0]);
	/* Both verdicts occur (the walk is not vacuous). */
	cr_assert_gt(refused, 100, "%zu refused", refused);
	cr_assert_gt(served, 100, "%zu served", served);
	tn_stop(&node);
}

Test(perm, every_kind_but_hello_needs_authentication)
{
	const ProtobufCMessageDescriptor *d =
		&raftmq__client__v1__envelope__descriptor;
	struct fake_client *c = fake_node_connect(&node);
	size_t i;
	unsigned before = node.cons.proposals;
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		struct pool pl = {.n = 0};
		Envelope env;
		uint64_t corr;
		if (!is_request(f) || f->id == BODY(HELLO)) {
			continue;
		}
		build(&pl, &env, f, "a1");
		corr = fake_client_send(c, &env);
		pool_free(&pl);
		fake_node_settle(&node);
		tn_expect_error(c, corr, EC(UNAUTHENTICATED));
	}
	cr_assert_eq(node.cons.proposals, before, "proposed unauthenticated");
	tn_stop(&node);
}

static unsigned char *varint(unsigned char *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	*p++ = (unsigned char)v;
	return p;
}

/* Sends a frame whose body is field `id` with no content (wire bytes built
 * by hand: the field may be unknown to the schema). */
static uint64_t send_raw_body(struct fake_client *c, uint32_t id)
{
	unsigned char frame[64], *p = frame + 4;
	uint64_t corr = ++c->corr;
	size_t len;
	*p++ = 0x08; /* version = 1 */
	*p++ = 0x01;
	*p++ = 0x10; /* correlation_id */
	p = varint(p, corr);
	p = varint(p, (uint64_t)id << 3 | 2); /* length-delimited */
	*p++ = 0x00;			      /* empty message */
	len = (size_t)(p - frame - 4);
	frame[0] = frame[1] = frame[2] = 0;
	frame[3] = (unsigned char)len;
	fake_client_write(c, frame, (size_t)(p - frame));
	return corr;
}

Test(perm, a_body_without_an_entry_is_refused_whoever_asks)
{
	/* Results and pushes of the schema, and numbers it does not know
	 * (the next request number, a gap, the end of the range). */
	static const uint32_t unknown[] = {38, 99, 138, 199, 203, 1000};
	const ProtobufCMessageDescriptor *d =
		&raftmq__client__v1__envelope__descriptor;
	struct fake_client *c = login(0); /* root: every permission */
	size_t i, n = 0;
	unsigned before = node.cons.proposals;
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (!in_body(f) || is_request(f)) {
			continue;
		}
		cr_assert_null(node_kind_of((int)f->id), "%s", f->name);
		tn_expect_error(c, send_raw_body(c, f->id), EC(MALFORMED));
		n++;
	}
	cr_assert_geq(n, 29, "only %zu results and pushes", n);
	for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		cr_assert_null(protobuf_c_message_descriptor_get_field(
				       d, (unsigned)unknown[i]),
			       "field %u exists now: pick another", unknown[i]);
		tn_expect_error(c, send_raw_body(c, unknown[i]), EC(MALFORMED));
	}
	fake_node_settle(&node);
	tn_expect_none(c);
	cr_assert_eq(node.cons.proposals, before);
	cr_assert(!c->s->closing, "the connection stays");
	tn_stop(&node);
}

/* A CreateQueue of "a1" whose dead-letter queue is "a-dlq", by user ui. */
static Envelope *create_with_dead_letter(size_t ui)
{
	struct fake_client *c = login(ui);
	Raftmq__Client__V1__CreateQueue cq;
	Raftmq__Client__V1__QueueSettings st;
	Envelope env;
	uint64_t corr;
	PB(queue_settings__init)(&st);
	st._dead_letter_queue_case =
		RAFTMQ__CLIENT__V1__QUEUE_SETTINGS___DEAD_LETTER_QUEUE_DEAD_LETTER_QUEUE;
	st.dead_letter_queue = (char *)"a-dlq";
	PB(create_queue__init)(&cq);
	cq.name = (char *)"a1";
	cq.settings = &st;
	PB(envelope__init)(&env);
	env.body_case = BODY(CREATE_QUEUE);
	env.create_queue = &cq;
	corr = fake_client_send(c, &env);
	fake_node_settle(&node);
	return answer_to(c, corr);
}

Test(perm, a_dead_letter_queue_needs_publish_on_it)
{
	/* Dead-lettering publishes into that queue: a queue that names one
	 * needs publish on it as well as configure on itself. */
	Envelope *a = create_with_dead_letter(3); /* conf: configure "a" */
	cr_assert_eq(a->body_case, BODY(ERROR));
	cr_assert_eq(a->error->code, EC(PERMISSION_DENIED));
	cr_assert_not_null(strstr(a->error->message, "publish"), "%s",
			   a->error->message);
	cr_assert_not_null(strstr(a->error->message, "a-dlq"), "%s",
			   a->error->message);
	{
		/* A dead-letter queue must exist (node_write.c). */
		struct fake_client *root = login(0);
		uint64_t corr = tn_create_queue(root, "a-dlq");
		fake_node_settle(&node);
		tn_expect(root, corr, BODY(CREATE_QUEUE_RESULT));
	}
	a = create_with_dead_letter(0); /* root */
	cr_assert_eq(a->body_case, BODY(CREATE_QUEUE_RESULT));
	tn_stop(&node);
}
