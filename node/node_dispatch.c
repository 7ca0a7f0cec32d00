/* Requests to commands and results to responses (cf. dqlite gateway.c).
 *
 * Every request kind (an Envelope body case) has one descriptor, struct
 * node_kind (node_int.h), kept beside its handlers: what it needs when auth
 * is on, whether followers answer it, how it starts, what it names in error
 * sentences, how it is answered. This file holds the table of kinds and the
 * path every request takes through it:
 *
 *   version check → kind (none: refused) → authentication → permission
 *   (node_perm.c) → any_node kinds served here → shutting down? → leader?
 *   (NOT_LEADER with the leader's client address) → kind->start
 *
 * Writes go into the open batch (node_batch_add) and are answered when the
 * batch is applied (node_dispatch_results → kind->answer). Reads (queue
 * info, lists) are answered at once from the leader's applied state, Peek
 * from the same state after a read barrier (node_read.c). q_result codes
 * map one to one onto protocol error codes (proto/client.proto mirrors
 * q.h); consensus codes map onto NOT_LEADER, UNKNOWN_OUTCOME and
 * UNAVAILABLE. Every error carries a sentence.
 *
 * The files of the request path: node_read.c (Hello, status, info, lists,
 * membership), node_write.c (publishes, queues, topics, consumers, tags),
 * node_fetch.c (pull consumers), node_perm.c (permissions), node_deliver.c
 * (deliveries from apply to sessions), node_bodies.c (FetchBodies). */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_int.h"
#include "node_log.h"

/* The table: a request body case without an entry is refused, so a new
 * kind in client.proto does nothing until it is given one (a unit test
 * walks every body case of the schema). */
static const struct node_kind *const kinds[] = {
	[BODY(HELLO)] = &node_kind_hello,
	[BODY(PUBLISH)] = &node_kind_publish,
	[BODY(PUBLISH_BATCH)] = &node_kind_publish_batch,
	[BODY(CREATE_QUEUE)] = &node_kind_create_queue,
	[BODY(CONFIGURE_QUEUE)] = &node_kind_configure_queue,
	[BODY(DELETE_QUEUE)] = &node_kind_delete_queue,
	[BODY(PURGE_QUEUE)] = &node_kind_purge_queue,
	[BODY(CREATE_TOPIC)] = &node_kind_create_topic,
	[BODY(DELETE_TOPIC)] = &node_kind_delete_topic,
	[BODY(SUBSCRIBE)] = &node_kind_subscribe,
	[BODY(UNSUBSCRIBE)] = &node_kind_unsubscribe,
	[BODY(CONSUME)] = &node_kind_consume,
	[BODY(CANCEL)] = &node_kind_cancel,
	[BODY(CREDIT)] = &node_kind_credit,
	[BODY(FETCH)] = &node_kind_fetch,
	[BODY(ACK)] = &node_kind_ack,
	[BODY(NACK)] = &node_kind_nack,
	[BODY(RELEASE)] = &node_kind_release,
	[BODY(EXTEND)] = &node_kind_extend,
	[BODY(QUEUE_INFO)] = &node_kind_queue_info,
	[BODY(QUEUE_LIST)] = &node_kind_queue_list,
	[BODY(TOPIC_LIST)] = &node_kind_topic_list,
	[BODY(CLUSTER_STATUS)] = &node_kind_cluster_status,
	[BODY(CLUSTER_ADD)] = &node_kind_cluster_add,
	[BODY(CLUSTER_REMOVE)] = &node_kind_cluster_remove,
	[BODY(CLUSTER_TRANSFER)] = &node_kind_cluster_transfer,
	[BODY(PEEK)] = &node_kind_peek,
	[BODY(FETCH_BODIES)] = &node_kind_fetch_bodies,
};

const struct node_kind *node_kind_of(int body_case)
{
	const struct node_kind *k;
	if (body_case < 0 ||
	    (size_t)body_case >= sizeof kinds / sizeof kinds[0]) {
		return NULL;
	}
	k = kinds[body_case];
	if (k == NULL || k->access == NODE_ACCESS_UNSET || k->start == NULL ||
	    (k->access == NODE_ACCESS_NAMED && k->grant == NULL)) {
		return NULL; /* incomplete entries are refused too */
	}
	return k;
}

/* ----------------------------------------------------------------- answers */

static void env_init(Envelope *e, uint64_t corr)
{
	PB(envelope__init)(e);
	e->version = 1;
	e->correlation_id = corr;
}

void node_utf8_cut(char *buf)
{
	size_t end = strlen(buf), k = end, lead;
	while (k > 0 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80) {
		k--;
	}
	lead = k > 0 ? (unsigned char)buf[k - 1] : 0;
	if (lead >= 0xc0 && end - (k - 1) < (lead >= 0xf0   ? 4u
					     : lead >= 0xe0 ? 3u
							    : 2u)) {
		buf[k - 1] = '\0';
	}
}

void node_error(struct node_session *s, uint64_t corr, int code,
		const char *fmt, ...)
{
	Envelope e;
	Raftmq__Client__V1__Error err;
	struct cons_status st;
	char msg[512];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof msg) {
		/* A long name was echoed: the frame must stay valid UTF-8
		 * for the protobuf libraries that check strings. */
		node_utf8_cut(msg);
	}
	PB(error__init)(&err);
	err.code = (Raftmq__Client__V1__ErrorCode)code;
	err.message = msg;
	if (code == EC(NOT_LEADER) || code == EC(UNAVAILABLE) ||
	    code == EC(UNKNOWN_OUTCOME)) {
		cons_status(s->srv->cons, &st);
		err.leader_id = st.is_leader ? 0 : st.leader_id;
		err.leader_client_address =
			st.is_leader ? (char *)"" : st.leader_client_address;
	}
	if (code == EC(UNSUPPORTED_VERSION)) {
		err.supported_version = NODE_PROTOCOL_VERSION;
	}
	env_init(&e, corr);
	e.body_case = BODY(ERROR);
	e.error = &err;
	s->srv->errors_total++;
	node_session_send(s, &e);
}

void node_not_leader(struct node_session *s, uint64_t corr)
{
	struct cons_status st;
	cons_status(s->srv->cons, &st);
	if (st.leader_id == 0 || st.leader_client_address[0] == '\0') {
		/* Say what it takes: clients add which nodes answer. */
		unsigned voters = 0;
		size_t i;
		for (i = 0; i < st.n_nodes; i++) {
			voters += st.nodes[i].role == CONS_ROLE_VOTER;
		}
		node_error(s, corr, EC(UNAVAILABLE),
			   "node %llu knows no leader: electing one needs a "
			   "majority of the voters (%u of %u) up and "
			   "reachable; either an election is in progress or "
			   "fewer voters answer; retry shortly",
			   (unsigned long long)s->srv->cfg.id, voters / 2 + 1,
			   voters);
	} else {
		node_error(s, corr, EC(NOT_LEADER),
			   "node %llu is not the leader; the leader is node "
			   "%llu at %s",
			   (unsigned long long)s->srv->cfg.id,
			   (unsigned long long)st.leader_id,
			   st.leader_client_address);
	}
}

void node_reply(struct node_session *s, uint64_t corr, int body_case, void *msg)
{
	Envelope e;
	env_init(&e, corr);
	e.body_case = (Raftmq__Client__V1__Envelope__BodyCase)body_case;
	/* Results of later requests: the version that defines them. */
	if (body_case == BODY(PEEK_RESULT)) {
		e.version = 2;
	} else if (body_case == BODY(FETCH_BODIES_RESULT)) {
		e.version = 3;
	}
	/* Every body member is a pointer in the same union. */
	e.hello = msg;
	node_session_send(s, &e);
}

bool node_refused(struct node_session *s, const struct node_req *r,
		  const struct q_result *q)
{
	const struct node_kind *k = node_kind_of(r->kind);
	char what[300];
	if (q->status == 0) {
		return false;
	}
	if (k != NULL && k->target != NULL) {
		k->target(r->env, what, sizeof what);
		if (strlen(what) == sizeof what - 1) {
			node_utf8_cut(what);
		}
	} else {
		snprintf(what, sizeof what, "request");
	}
	node_error(s, r->corr, q->status, "%s: %s", what,
		   q_strerror(q->status));
	return true;
}

/* ---------------------------------------------------------------- dispatch */

void node_dispatch(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	uint64_t corr = env->correlation_id;
	const struct node_kind *k;

	srv->requests_total++;
	if (env->version == 0) {
		node_error(s, corr, EC(MALFORMED),
			   "frame has no protocol version");
		goto done;
	}
	if (env->version > NODE_PROTOCOL_VERSION) {
		node_error(s, corr, EC(UNSUPPORTED_VERSION),
			   "protocol version %u is newer than this server's "
			   "(%u)",
			   env->version, NODE_PROTOCOL_VERSION);
		goto done;
	}
	k = node_kind_of(env->body_case);
	if (k == NULL) {
		node_error(s, corr, EC(MALFORMED),
			   env->body_case == BODY(_NOT_SET)
				   ? "unknown or missing request type"
				   : "body %d is not a request this server "
				     "serves",
			   env->body_case);
		goto done;
	}
	if (k->access != NODE_ACCESS_ANYONE && srv->cfg.auth) {
		if (s->user == NULL) {
			node_error(s, corr, EC(UNAUTHENTICATED),
				   "authentication required: node %llu has "
				   "auth on; send Hello with your auth token "
				   "first",
				   (unsigned long long)srv->cfg.id);
			goto done;
		}
		if (!node_permitted(s, k, env)) {
			goto done;
		}
	}
	if (!k->any_node) {
		if (srv->stopping) {
			node_error(s, corr, EC(UNAVAILABLE),
				   "node %llu is shutting down; retry on "
				   "another node",
				   (unsigned long long)srv->cfg.id);
			goto done;
		}
		if (!srv->leader) {
			node_not_leader(s, corr);
			goto done;
		}
	}
	if (k->start(s, env)) {
		return; /* the batch has it */
	}
done:
	PB(envelope__free_unpacked)(env, NULL);
}

/* ----------------------------------------------------------------- results */

/* The common answer to a request whose batch failed in consensus/. */
static void failed(struct node_server *srv, struct node_session *s,
		   struct node_req *r, int status)
{
	switch (status) {
	case CONS_ENOTLEADER:
		node_not_leader(s, r->corr);
		break;
	case CONS_ELEADERSHIPLOST:
		node_error(s, r->corr, EC(UNKNOWN_OUTCOME),
			   "leadership was lost before the request "
			   "committed: it may or may not have been "
			   "applied; retry (publishes with the same "
			   "message id are deduplicated)");
		break;
	case CONS_ESHUTDOWN:
		node_error(s, r->corr, EC(UNAVAILABLE),
			   "node %llu is shutting down; retry on "
			   "another node",
			   (unsigned long long)srv->cfg.id);
		break;
	case CONS_ENOMEM:
		node_error(s, r->corr, EC(NO_MEMORY),
			   "the node is out of memory");
		break;
	case CONS_ETOOBIG:
		/* node_batch_add keeps batches below the cap; should one
		 * still be over, nothing was written. */
		node_error(s, r->corr, EC(MESSAGE_TOO_LARGE),
			   "the log entry holding the request would be over "
			   "the %zu MiB limit; nothing was written: send fewer "
			   "or smaller messages per request",
			   CONS_MAX_ENTRY_BYTES >> 20);
		break;
	case CONS_ENOSPACE:
		node_error(s, r->corr, EC(RESOURCE_LIMIT),
			   "not enough disk space to write the request "
			   "to the Raft log (leader node %llu); "
			   "writes are refused until space is freed, "
			   "then retry (publishes with the same "
			   "message id are deduplicated)",
			   (unsigned long long)srv->cfg.id);
		break;
	default:
		node_error(s, r->corr, EC(INTERNAL),
			   "could not replicate the request: %s",
			   cons_strerror(status));
		break;
	}
}

void node_dispatch_results(struct node_server *srv, struct node_batch *b,
			   int status, const struct q_result *results, size_t n)
{
	size_t i;
	(void)n;
	for (i = 0; i < b->n_reqs; i++) {
		struct node_req *r = &b->reqs[i];
		struct node_session *s = r->session;
		const struct node_kind *k;
		if (s == NULL) {
			/* Internal: tick, detach-stale, session-gone. */
			if (b->cmds[r->first].type == Q_CMD_TICK) {
				srv->tick_inflight = false;
			}
			if (status != 0 && status != CONS_ENOTLEADER &&
			    status != CONS_ESHUTDOWN) {
				NODE_WARN("internal command %d failed: %s",
					  b->cmds[r->first].type,
					  cons_strerror(status));
			}
			continue;
		}
		if (s->closing) {
			continue;
		}
		k = node_kind_of(r->kind);
		/* Only kinds with an answer are ever batched. */
		assert(k != NULL && k->answer != NULL);
		if (status == 0) {
			k->answer(srv, r, results);
		} else if (k->fail != NULL) {
			k->fail(s, r, status);
		} else {
			failed(srv, s, r, status);
		}
	}
}
