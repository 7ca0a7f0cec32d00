/* Message bodies between nodes: serving FetchBodies from this node's body
 * store, and fetching from the other members the bodies this node lacks
 * (docs/architecture.md, "Bodies a node lacks").
 *
 * Why bodies go missing: a follower that fell too far behind installs the
 * leader's snapshot, which holds the index of every message (key and
 * checksum), not the bodies; the keys it never applied itself are missing
 * from its store (cons_bodies_missing()). Until they are here it cannot
 * deliver those messages, so it is not ready (node_http.c), and if it
 * becomes leader those messages wait.
 *
 * The fetcher, happy path: a timer notices missing bodies, takes up to
 * BATCH_KEYS of them in key order from a resume point
 * (cons_bodies_missing_next()), and asks a peer for them on a worker
 * thread (uv_queue_work with the blocking client library, which does TLS
 * and tokens; one request in flight at a time, so it takes one thread of
 * libuv's pool). Back on the loop thread, each record is checked (a key
 * that was asked, cons_body_sum() equal to the record's sum) and stored
 * with cons_body_fill(), at most FILL_BUDGET_BYTES per loop iteration. Only
 * the loop thread calls into consensus/; the worker touches only the job
 * and its own connection.
 *
 * Passes: the keys are asked of one peer in ascending windows from key 0
 * (the leader first: its store matches the snapshot it sent). A peer
 * answers the keys it has and leaves out the ones it lacks; the window
 * after the last key it answered is asked again (its answer may have
 * stopped for room). When a pass reaches the last missing key and some are
 * still missing, the next pass asks the next member. Failures (a peer that
 * cannot be reached, refuses, or sends a body that fails its check) move on
 * to the next member at once, keeping the window. When every member failed
 * or lacked everything left, the fetcher backs off, BACKOFF_MIN_MS doubling
 * to BACKOFF_MAX_MS, and starts again; any body stored resets the backoff.
 *
 * With auth on, the peers want an admin token: [cluster] peer_token_file.
 * Without one the fetcher says so once and fetches nothing. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "node_auth.h"
#include "node_int.h"
#include "node_log.h"
#include "raftmq.h"

/* ---------------------------------------------------------------- serving */

/* One answer holds at most this many bytes (ids, bodies and
 * RECORD_OVERHEAD per record; at least one record), and reading stops
 * after SERVE_MAX_NS: a cold store reads ~17 000 random bodies a second
 * (docs/architecture.md, "Measured"), and the node's loop must not wait
 * for the disk much longer than for a snapshot's fork. */
#define SERVE_MAX_BYTES (4u << 20)
#define SERVE_MAX_NS (10u * 1000 * 1000)
#define RECORD_OVERHEAD 32

/* A record being answered: its bytes sit in a buffer that grows, so it
 * names them by offset until the answer is packed. */
struct served {
	uint64_t key;
	size_t id_off, id_len, body_off, body_len;
	uint32_t sum;
};

/* Reads the keys asked into *data and *recs (both grown as needed),
 * stopping as the protocol says. Returns 0 with *n records, or a CONS_E*
 * code when nothing could be read. */
static int serve_read(struct node_server *srv,
		      const Raftmq__Client__V1__FetchBodies *m,
		      struct node_buf *data, struct served **recs, size_t *n)
{
	uint64_t cap = m->max_bytes == 0 || m->max_bytes > SERVE_MAX_BYTES
			       ? SERVE_MAX_BYTES
			       : m->max_bytes;
	uint64_t budget =
		srv->fetch_bodies_ns != 0 ? srv->fetch_bodies_ns : SERVE_MAX_NS;
	uint64_t t0 = uv_hrtime(), bytes = 0;
	size_t i, cap_recs = 0;

	*n = 0;
	for (i = 0; i < m->n_keys; i++) {
		struct cons_body b;
		struct served *r;
		uint64_t size;
		uint32_t sum = 0;
		int rv = cons_body_read(srv->cons, m->keys[i], &b, &sum);
		if (rv == CONS_ENOTFOUND) {
			continue;
		}
		if (rv != 0) {
			if (*n == 0) {
				return rv;
			}
			break; /* answer what was read */
		}
		size = (uint64_t)b.id_len + b.len + RECORD_OVERHEAD;
		if (*n > 0 && bytes + size > cap) {
			break;
		}
		if (*n == cap_recs) {
			size_t nc = cap_recs ? 2 * cap_recs : 64;
			struct served *nr = realloc(*recs, nc * sizeof **recs);
			if (nr == NULL) {
				return CONS_ENOMEM;
			}
			*recs = nr;
			cap_recs = nc;
		}
		/* b's bytes are the store's until the next call into
		 * consensus/: copy them now. */
		if (node_buf_reserve(data, b.id_len + b.len) != 0) {
			return CONS_ENOMEM;
		}
		r = &(*recs)[(*n)++];
		r->key = m->keys[i];
		r->sum = sum;
		r->id_off = data->len;
		r->id_len = b.id_len;
		if (b.id_len > 0) {
			memcpy(data->base + data->len, b.id, b.id_len);
		}
		data->len += b.id_len;
		r->body_off = data->len;
		r->body_len = b.len;
		if (b.len > 0) {
			memcpy(data->base + data->len, b.body, b.len);
		}
		data->len += b.len;
		bytes += size;
		if (uv_hrtime() - t0 > budget) {
			break;
		}
	}
	return 0;
}

static bool fetch_bodies_start(struct node_session *s, Envelope *env)
{
	struct node_server *srv = s->srv;
	Raftmq__Client__V1__FetchBodiesResult res;
	Raftmq__Client__V1__BodyRecord *recs = NULL, **ptrs = NULL;
	struct node_buf data = {NULL, 0, 0};
	struct served *sv = NULL;
	size_t n = 0, i;
	int rv;

	rv = serve_read(srv, env->fetch_bodies, &data, &sv, &n);
	if (rv == 0 && n > 0) {
		recs = calloc(n, sizeof *recs);
		ptrs = calloc(n, sizeof *ptrs);
		rv = recs == NULL || ptrs == NULL ? CONS_ENOMEM : 0;
	}
	if (rv != 0) {
		if (rv == CONS_ENOMEM) {
			node_error(s, env->correlation_id, EC(NO_MEMORY),
				   "node %llu is out of memory",
				   (unsigned long long)srv->cfg.id);
		} else {
			node_error(s, env->correlation_id, EC(INTERNAL),
				   "node %llu could not read its body store: "
				   "%s",
				   (unsigned long long)srv->cfg.id,
				   cons_strerror(rv));
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		PB(body_record__init)(&recs[i]);
		recs[i].key = sv[i].key;
		recs[i].msg_id.len = sv[i].id_len;
		recs[i].msg_id.data = (uint8_t *)data.base + sv[i].id_off;
		recs[i].body.len = sv[i].body_len;
		recs[i].body.data = (uint8_t *)data.base + sv[i].body_off;
		recs[i].sum = sv[i].sum;
		ptrs[i] = &recs[i];
	}
	PB(fetch_bodies_result__init)(&res);
	res.n_records = n;
	res.records = ptrs;
	node_reply(s, env->correlation_id, BODY(FETCH_BODIES_RESULT), &res);
out:
	free(recs);
	free(ptrs);
	free(sv);
	node_buf_free(&data);
	return false;
}

/* Every node answers from its own store: a follower is the usual server
 * of a fetch (a node whose leader lacks bodies asks the followers). */
const struct node_kind node_kind_fetch_bodies = {
	.name = "fetch_bodies",
	.access = NODE_ACCESS_ADMIN,
	.any_node = true,
	.start = fetch_bodies_start,
};

/* --------------------------------------------------------------- fetching */

/* Keys asked per request, and the bytes a peer may answer with. */
#define BATCH_KEYS 4096
#define FETCH_MAX_BYTES SERVE_MAX_BYTES
/* Bodies stored per loop iteration: a store put costs ~4 us a record. */
#define FILL_BUDGET_BYTES (1u << 20)
#define FILL_BUDGET_RECORDS 512
/* How often an idle fetcher looks for missing bodies. */
#define POLL_MS 200
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
/* Client timeouts of the worker: they bound how long a stop can wait for
 * a request in flight to a peer that does not answer. */
#define PEER_CONNECT_MS 1000
#define PEER_REQUEST_MS 3000
#define TOKEN_MAX 4096

struct node_bodies {
	struct node_server *srv;
	uv_timer_t timer;
	uv_work_t work;
	bool working; /* work queued; its after_work has not run */
	bool closing; /* node_bodies_stop(): free when both are done */
	bool timer_closed;

	/* Read at start, then only read (the worker reads them too). */
	char token[TOKEN_MAX + 1]; /* NUL-terminated; "" = none */
	bool has_token;

	/* The job. Written on the loop before uv_queue_work(), then the
	 * worker's until after_work runs on the loop. */
	uint64_t job_peer;
	char job_address[NODE_ADDR_MAX];
	uint64_t *job_keys; /* owned, ascending */
	size_t job_n_keys;
	struct raftmq_body *job_got; /* owned (raftmq_bodies_free) */
	size_t job_n_got;
	int job_rv;
	char job_err[512];
	/* The worker's connection, kept between jobs to the same peer;
	 * touched only by the worker, and by the loop once no work is
	 * queued. */
	struct raftmq *conn;
	uint64_t conn_peer;

	/* Progress (loop thread only). */
	size_t fill_next;      /* next record of job_got to store */
	size_t fill_bad;       /* records of this job that failed a check */
	uint64_t fill_max_key; /* largest key of this job's answer */
	int fill_error;	       /* a store error of this job, 0 = none */
	uint64_t from;	       /* the next key of this pass */
	size_t peer_pos;       /* the member asked (index in the rotation) */
	uint64_t pass_filled;  /* bodies stored in this pass */
	unsigned fruitless;    /* passes and failures since a body stored */
	unsigned backoff_ms;
	bool active; /* missing bodies seen, not all arrived yet */
	uint64_t active_since_ms, missing_at_start, fetched_at_start;
	bool told_no_token, told_no_peer, told_none_has;
	/* The last failure logged per member (slot: id % CONS_MAX_NODES),
	 * so that a member that stays down is logged once, not each retry. */
	char last_err[CONS_MAX_NODES][256];

	uint64_t fetched_total, errors_total;
};

static void again(struct node_bodies *nb, uint64_t ms);

/* The members to ask, this node excluded: the leader first (its store
 * matches the snapshot this node installed), then the others in the
 * configuration's order. Returns how many (at most CONS_MAX_NODES). */
static size_t peers(struct node_bodies *nb, uint64_t *ids,
		    char (*addrs)[NODE_ADDR_MAX])
{
	struct cons_status st;
	size_t i, n = 0, pass;
	cons_status(nb->srv->cons, &st);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < st.n_nodes; i++) {
			const struct cons_node_status *m = &st.nodes[i];
			bool lead = m->id == st.leader_id;
			if (m->id == nb->srv->cfg.id ||
			    m->client_address[0] == '\0' ||
			    lead != (pass == 0)) {
				continue;
			}
			ids[n] = m->id;
			snprintf(addrs[n], NODE_ADDR_MAX, "%s",
				 m->client_address);
			n++;
		}
	}
	return n;
}

/* ------------------------------------------------------- the worker side */

/* On a thread of libuv's pool: one request to one peer. Reads only the
 * job, the token and the configuration (constant while the node runs). */
static void work_cb(uv_work_t *w)
{
	struct node_bodies *nb = w->data;
	const struct node_config *cfg = &nb->srv->cfg;
	int rv;

	if (nb->conn != NULL && nb->conn_peer != nb->job_peer) {
		raftmq_close(nb->conn);
		nb->conn = NULL;
	}
	if (nb->conn == NULL) {
		struct raftmq_options o;
		char name[64];
		memset(&o, 0, sizeof o);
		snprintf(name, sizeof name, "raftmqd-%llu bodies",
			 (unsigned long long)cfg->id);
		o.client_name = name;
		o.auth_token = nb->has_token ? nb->token : NULL;
		o.connect_timeout_ms = PEER_CONNECT_MS;
		o.request_timeout_ms = PEER_REQUEST_MS;
		/* One record may be a whole body over the cap. */
		o.max_frame_bytes =
			FETCH_MAX_BYTES + cfg->max_message_bytes + (1u << 20);
		o.stay = true;
		if (cfg->tls_cert[0] != '\0') {
			/* The peers' client ports speak TLS as ours does.
			 * Verified against our CAs when we have some; when
			 * the peers ask for client certificates, ours. */
			o.tls = true;
			if (cfg->tls_ca[0] != '\0') {
				o.tls_ca_file = cfg->tls_ca;
				o.tls_cert_file = cfg->tls_cert;
				o.tls_key_file = cfg->tls_key;
			}
		}
		rv = raftmq_connect(nb->job_address, &o, &nb->conn, nb->job_err,
				    sizeof nb->job_err);
		if (rv != 0) {
			nb->job_rv = rv;
			return;
		}
		nb->conn_peer = nb->job_peer;
	}
	rv = raftmq_fetch_bodies(nb->conn, nb->job_keys, nb->job_n_keys,
				 FETCH_MAX_BYTES, &nb->job_got, &nb->job_n_got);
	if (rv != 0) {
		nb->job_rv = rv;
		snprintf(nb->job_err, sizeof nb->job_err, "%s",
			 raftmq_errmsg(nb->conn));
		/* A fresh connection next time. */
		raftmq_close(nb->conn);
		nb->conn = NULL;
	}
}

/* ------------------------------------------------------- the loop side */

static void job_clear(struct node_bodies *nb)
{
	free(nb->job_keys);
	nb->job_keys = NULL;
	nb->job_n_keys = 0;
	raftmq_bodies_free(nb->job_got, nb->job_n_got);
	nb->job_got = NULL;
	nb->job_n_got = 0;
	nb->job_rv = 0;
	nb->job_err[0] = '\0';
}

static void nb_free(struct node_bodies *nb)
{
	job_clear(nb);
	raftmq_close(nb->conn); /* no consumers: closes at once */
	OPENSSL_cleanse(nb->token, sizeof nb->token);
	free(nb);
}

static void timer_closed_cb(uv_handle_t *h)
{
	struct node_bodies *nb = h->data;
	nb->timer_closed = true;
	if (!nb->working) {
		nb_free(nb);
	}
}

/* Logs a failure of member `peer` as a warning the first time it reads
 * so, else at debug level (a member that stays down must not fill the
 * log). */
static void failure(struct node_bodies *nb, uint64_t peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void failure(struct node_bodies *nb, uint64_t peer, const char *fmt, ...)
{
	char *last = nb->last_err[peer % CONS_MAX_NODES];
	char msg[sizeof nb->last_err[0]];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (strcmp(msg, last) != 0) {
		NODE_WARN("%s", msg);
		memcpy(last, msg, sizeof msg);
	} else {
		NODE_DEBUG("%s", msg);
	}
}

/* Nothing came from the peer asked: the next one is asked for the same
 * keys, and after a round of all of them, a backoff. */
static void next_peer(struct node_bodies *nb, size_t n_peers)
{
	nb->peer_pos++;
	nb->fruitless++;
	if (n_peers > 0 && nb->fruitless >= n_peers) {
		if (!nb->told_none_has) {
			NODE_WARN(
				"%llu message bodies are still missing: no "
				"member could send them this round; trying "
				"again, backing off up to %u ms",
				(unsigned long long)cons_bodies_missing(
					nb->srv->cons),
				BACKOFF_MAX_MS);
			nb->told_none_has = true;
		}
		nb->fruitless = 0;
		nb->backoff_ms = nb->backoff_ms == 0 ? BACKOFF_MIN_MS
				 : nb->backoff_ms * 2 > BACKOFF_MAX_MS
					 ? BACKOFF_MAX_MS
					 : nb->backoff_ms * 2;
		again(nb, nb->backoff_ms);
		return;
	}
	again(nb, 0);
}

static bool key_asked(const struct node_bodies *nb, uint64_t key)
{
	size_t lo = 0, hi = nb->job_n_keys;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (nb->job_keys[mid] < key) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < nb->job_n_keys && nb->job_keys[lo] == key;
}

/* Stores the records of the answer, a budget at a time. Returns true when
 * all are done. */
static bool fill_step(struct node_bodies *nb)
{
	size_t bytes = 0, done = 0;
	while (nb->fill_next < nb->job_n_got && nb->fill_error == 0 &&
	       bytes < FILL_BUDGET_BYTES && done < FILL_BUDGET_RECORDS) {
		const struct raftmq_body *r = &nb->job_got[nb->fill_next++];
		int rv;
		done++;
		bytes += r->msg_id_len + r->body_len;
		if (!key_asked(nb, r->key) ||
		    cons_body_sum(r->msg_id, r->msg_id_len, r->body,
				  r->body_len) != r->sum) {
			nb->fill_bad++;
			continue;
		}
		if (r->key > nb->fill_max_key) {
			nb->fill_max_key = r->key;
		}
		rv = cons_body_fill(nb->srv->cons, r->key, r->msg_id,
				    r->msg_id_len, r->body, r->body_len);
		if (rv == 0) {
			nb->fetched_total++;
			nb->pass_filled++;
		} else if (rv != CONS_ENOTFOUND) {
			/* CONS_ENOTFOUND: not missing any more (dropped,
			 * or here already). Anything else is this node's
			 * store failing: no peer can help. */
			nb->fill_error = rv;
		}
	}
	return nb->fill_next >= nb->job_n_got || nb->fill_error != 0;
}

/* The answer is stored (or failed): where to go on from. */
static void job_done(struct node_bodies *nb)
{
	uint64_t ids[CONS_MAX_NODES];
	char addrs[CONS_MAX_NODES][NODE_ADDR_MAX];
	size_t n_peers = peers(nb, ids, addrs);
	uint64_t peer = nb->job_peer;
	uint64_t last_asked = nb->job_keys[nb->job_n_keys - 1];
	size_t got = nb->job_n_got, bad = nb->fill_bad;
	uint64_t max_key = nb->fill_max_key;
	int store_rv = nb->fill_error;

	job_clear(nb);
	if (store_rv != 0) {
		nb->errors_total++;
		failure(nb, peer,
			"storing a message body fetched from node %llu "
			"failed: %s; retrying in %u ms",
			(unsigned long long)peer, cons_strerror(store_rv),
			BACKOFF_MAX_MS);
		again(nb, BACKOFF_MAX_MS);
		return;
	}
	if (bad > 0) {
		/* A peer that sends other bytes than asked: a bug or a
		 * store of another cluster. Ask someone else. */
		nb->errors_total += bad;
		failure(nb, peer,
			"node %llu sent %zu message bodies that fail their "
			"checksum or were not asked for; they were not kept, "
			"asking another member",
			(unsigned long long)peer, bad);
		next_peer(nb, n_peers);
		return;
	}
	if (got == 0) {
		/* It has none of these: on to the next window. */
		nb->from = last_asked + 1;
	} else {
		/* It has some: it lacks those it left out before the last
		 * one answered; the others may have been left out for room. */
		nb->from = max_key + 1;
	}
	if (nb->pass_filled > 0) {
		nb->fruitless = 0;
		nb->backoff_ms = 0;
	}
	again(nb, 0);
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct node_bodies *nb = w->data;
	uint64_t ids[CONS_MAX_NODES];
	char addrs[CONS_MAX_NODES][NODE_ADDR_MAX];

	nb->working = false;
	if (nb->closing) {
		if (nb->timer_closed) {
			nb_free(nb);
		}
		return;
	}
	if (status != 0 && nb->job_rv == 0) {
		nb->job_rv = RAFTMQ_ECONNECT;
		snprintf(nb->job_err, sizeof nb->job_err, "%s",
			 uv_strerror(status));
	}
	if (nb->job_rv != 0) {
		uint64_t peer = nb->job_peer;
		nb->errors_total++;
		failure(nb, peer,
			"fetching message bodies from node %llu (%s) failed: "
			"%s; asking another member",
			(unsigned long long)peer, nb->job_address,
			nb->job_err[0] != '\0' ? nb->job_err
					       : raftmq_strerror(nb->job_rv));
		job_clear(nb);
		next_peer(nb, peers(nb, ids, addrs));
		return;
	}
	nb->fill_next = 0;
	nb->fill_bad = 0;
	nb->fill_max_key = 0;
	nb->fill_error = 0;
	if (fill_step(nb)) {
		job_done(nb);
	} else {
		again(nb, 0); /* the rest in the next iterations */
	}
}

/* Starts the request for the next window of missing keys, or ends the
 * pass. */
static void ask(struct node_bodies *nb)
{
	struct node_server *srv = nb->srv;
	uint64_t ids[CONS_MAX_NODES];
	char addrs[CONS_MAX_NODES][NODE_ADDR_MAX];
	size_t n_peers = peers(nb, ids, addrs), n = 0, i;
	uint64_t key = nb->from, *keys;

	if (n_peers == 0) {
		if (!nb->told_no_peer) {
			NODE_WARN(
				"message bodies are missing and no other "
				"member with a client address is known to "
				"fetch them from");
			nb->told_no_peer = true;
		}
		again(nb, BACKOFF_MAX_MS);
		return;
	}
	keys = malloc(BATCH_KEYS * sizeof *keys);
	if (keys == NULL) {
		again(nb, BACKOFF_MAX_MS);
		return;
	}
	while (n < BATCH_KEYS &&
	       cons_bodies_missing_next(srv->cons, key, &key) == 0) {
		keys[n++] = key++;
	}
	if (n == 0) {
		/* The end of a pass: what is still missing, the peer of
		 * this pass lacks. The next pass asks the next member. */
		bool fruitless = nb->pass_filled == 0;
		free(keys);
		nb->from = 0;
		nb->pass_filled = 0;
		if (fruitless) {
			next_peer(nb, n_peers);
		} else {
			nb->peer_pos++;
			again(nb, 0);
		}
		return;
	}
	i = nb->peer_pos % n_peers;
	nb->job_keys = keys;
	nb->job_n_keys = n;
	nb->job_peer = ids[i];
	memcpy(nb->job_address, addrs[i], NODE_ADDR_MAX);
	nb->job_rv = 0;
	nb->job_err[0] = '\0';
	nb->work.data = nb;
	if (uv_queue_work(srv->loop, &nb->work, work_cb, after_work_cb) != 0) {
		job_clear(nb);
		again(nb, BACKOFF_MAX_MS);
		return;
	}
	nb->working = true;
}

static void tick_cb(uv_timer_t *t)
{
	struct node_bodies *nb = t->data;
	struct node_server *srv = nb->srv;
	uint64_t missing, now = uv_now(srv->loop);

	if (nb->closing || nb->working || srv->stopping) {
		return;
	}
	if (nb->job_keys != NULL) {
		/* Storing an answer, a budget per iteration. */
		if (fill_step(nb)) {
			job_done(nb);
		} else {
			again(nb, 0);
		}
		return;
	}
	missing = cons_bodies_missing(srv->cons);
	if (missing == 0) {
		if (nb->active) {
			NODE_INFO(
				"all %llu missing message bodies are here "
				"after %.2f s (%llu fetched from peers)",
				(unsigned long long)nb->missing_at_start,
				(double)(now - nb->active_since_ms) / 1e3,
				(unsigned long long)(nb->fetched_total -
						     nb->fetched_at_start));
			nb->active = false;
		}
		again(nb, POLL_MS);
		return;
	}
	if (!nb->active) {
		nb->active = true;
		nb->active_since_ms = now;
		nb->missing_at_start = missing;
		nb->fetched_at_start = nb->fetched_total;
		nb->from = 0;
		nb->peer_pos = 0;
		nb->pass_filled = 0;
		nb->fruitless = 0;
		nb->backoff_ms = 0;
		nb->told_no_peer = nb->told_none_has = false;
		memset(nb->last_err, 0, sizeof nb->last_err);
		NODE_INFO(
			"%llu message bodies are missing from this node's "
			"store (it installed a snapshot from the leader); "
			"fetching them from the other members",
			(unsigned long long)missing);
	}
	if (srv->cfg.auth && !nb->has_token) {
		if (!nb->told_no_token) {
			NODE_ERROR(
				"%llu message bodies are missing and cannot "
				"be fetched: auth is on, so the other "
				"members refuse this node's requests "
				"without an admin token, and "
				"[cluster] peer_token_file is not set; "
				"until it is (and the node restarted), this "
				"node stays not ready and cannot deliver "
				"those messages",
				(unsigned long long)missing);
			nb->told_no_token = true;
		}
		again(nb, BACKOFF_MAX_MS);
		return;
	}
	ask(nb);
}

static void again(struct node_bodies *nb, uint64_t ms)
{
	if (!nb->closing) {
		(void)uv_timer_start(&nb->timer, tick_cb, ms, 0);
	}
}

int node_bodies_start(struct node_server *srv, char *err, size_t errlen)
{
	struct node_bodies *nb = calloc(1, sizeof *nb);
	size_t len = 0;

	if (nb == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	nb->srv = srv;
	if (srv->cfg.peer_token_file[0] != '\0') {
		const struct node_user *u;
		if (node_auth_read_token(srv->cfg.peer_token_file, "",
					 "peer_token_file", nb->token,
					 TOKEN_MAX, &len, err, errlen) != 0) {
			free(nb);
			return -1;
		}
		nb->token[len] = '\0';
		nb->has_token = true;
		u = node_auth_check(&srv->cfg, nb->token, len);
		if (srv->cfg.auth && (u == NULL || !u->admin)) {
			NODE_WARN(
				"peer_token_file %s holds %s; the other "
				"members refuse this node's fetches of "
				"message bodies unless their users differ",
				srv->cfg.peer_token_file,
				u == NULL ? "the token of no user of this "
					    "node"
					  : "the token of a user without "
					    "admin = true");
		}
	}
	uv_timer_init(srv->loop, &nb->timer);
	nb->timer.data = nb;
	srv->bodies = nb;
	again(nb, POLL_MS);
	return 0;
}

void node_bodies_stop(struct node_server *srv)
{
	struct node_bodies *nb = srv->bodies;
	if (nb == NULL) {
		return;
	}
	srv->bodies = NULL;
	nb->closing = true;
	/* A request in flight finishes on its own (within the client's
	 * timeouts); after_work_cb frees what is left. */
	uv_close((uv_handle_t *)&nb->timer, timer_closed_cb);
}

void node_bodies_stats(const struct node_server *srv, uint64_t *fetched,
		       uint64_t *errors)
{
	const struct node_bodies *nb = srv->bodies;
	*fetched = nb != NULL ? nb->fetched_total : 0;
	*errors = nb != NULL ? nb->errors_total : 0;
}

bool node_bodies_blocked(const struct node_server *srv)
{
	const struct node_bodies *nb = srv->bodies;
	return nb != NULL && srv->cfg.auth && !nb->has_token;
}
