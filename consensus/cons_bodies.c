/* The node's body store (store/) behind queue/'s body interface: message
 * bodies live on disk in data_dir/bodies, one store per state machine, and
 * the queue state keeps an index entry per message (docs/architecture.md,
 * "The body store").
 *
 * Every replica puts the body of each publish at apply and drops it when
 * the state lets the message go; snapshots hold the index only. The
 * recovery rule: after a crash, the store has every body that the last
 * persisted snapshot's dump refers to, and every later body is in the
 * snapshot's tail or the Raft log, whose replay puts it again. Two things
 * keep that true:
 *
 *   - before a dump is written, the store's records are made durable
 *     (store_sync_data() in the dumping child, store_sync() for a snapshot
 *     taken in place);
 *   - deletion is deferred: gc removes only what was dropped before the
 *     mark taken with the dump, and only once raft has written that
 *     snapshot (the snapguard's count of completed takes), or once a
 *     snapshot from the leader is installed (raft writes it before it
 *     restores it).
 *
 * gc runs in budgeted steps from the loop (cons__bodies_poll). A body the
 * store lacks (a follower after an install: the snapshot names bodies it
 * never applied) is *missing*; node/ fetches those from a peer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cons_int.h"
#include "store.h"

/* One gc step at most this often, with this budget (bytes read and
 * written; a deleted segment counts 1 MiB): at most ~200 MB/s of
 * compaction, a few ms of the loop per step. */
#define GC_EVERY_MS 10
#define GC_BUDGET_BYTES (2u << 20)

/* A read outside the last read-ahead windows starts one of this many bytes
 * from its key: deliveries take a queue's head in key order, so the next
 * ones are then in the page cache before they are asked for. */
#define READ_AHEAD_BYTES (4u << 20)

/* How often the kernel is asked to start writing what apply wrote. */
#define WRITEBACK_EVERY_MS 500

/* ------------------------------------------------- a full disk at apply
 *
 * apply cannot fail on a replica (libraft would stop the node: it turns an
 * apply error into RAFT_UNAVAILABLE), so a body the store refuses for want
 * of space is kept in memory, sorted by key, and put into the store once it
 * has room again (cons__bodies_poll, every PENDING_RETRY_MS). Meanwhile no
 * snapshot is taken (cons__bodies_pending: a dump may only name bodies that
 * are on disk), the bytes count towards memory_limit, and a leader hands
 * the leadership to another voter (cons_node.c), so that publishes go on
 * on a node with room while this one waits for space. */
#define PENDING_RETRY_MS 1000

static size_t pending_find(const struct cons_bodies *b, uint64_t key)
{
	size_t lo = 0, hi = b->n_pending;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->pending[mid].key < key) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static const struct cons_pending_body *pending_get(const struct cons_bodies *b,
						   uint64_t key)
{
	size_t i = pending_find(b, key);
	return i < b->n_pending && b->pending[i].key == key ? &b->pending[i]
							    : NULL;
}

static int pending_add(struct cons_bodies *b, uint64_t key, const void *id,
		       size_t id_len, const void *body, size_t len,
		       uint32_t *sum)
{
	size_t i = pending_find(b, key);
	struct cons_pending_body *p;
	if (i < b->n_pending && b->pending[i].key == key) {
		*sum = b->pending[i].sum; /* a replay: the same bytes */
		return 0;
	}
	if (b->n_pending == b->pending_cap) {
		size_t cap = b->pending_cap ? 2 * b->pending_cap : 64;
		void *v = realloc(b->pending, cap * sizeof *b->pending);
		if (v == NULL) {
			return -1;
		}
		b->pending = v;
		b->pending_cap = cap;
	}
	p = &b->pending[i];
	memmove(p + 1, p, (b->n_pending - i) * sizeof *p);
	p->bytes = malloc(id_len + len + 1);
	if (p->bytes == NULL) {
		memmove(p, p + 1, (b->n_pending - i) * sizeof *p);
		return -1;
	}
	if (id_len > 0) {
		memcpy(p->bytes, id, id_len);
	}
	if (len > 0) {
		memcpy(p->bytes + id_len, body, len);
	}
	p->key = key;
	p->id_len = (uint32_t)id_len;
	p->len = len;
	p->sum = store_sum(id, id_len, body, len);
	*sum = p->sum;
	b->n_pending++;
	b->pending_bytes += id_len + len;
	b->spilled++;
	return 0;
}

static bool pending_drop(struct cons_bodies *b, uint64_t key)
{
	size_t i = pending_find(b, key);
	if (i == b->n_pending || b->pending[i].key != key) {
		return false;
	}
	b->pending_bytes -= b->pending[i].id_len + b->pending[i].len;
	free(b->pending[i].bytes);
	memmove(&b->pending[i], &b->pending[i + 1],
		(b->n_pending - i - 1) * sizeof b->pending[0]);
	b->n_pending--;
	return true;
}

bool cons__bodies_pending(const struct cons_bodies *b)
{
	return b->n_pending > 0;
}

/* Bytes pending_flush() writes per call: the disk that came back may hold
 * gigabytes of bodies waiting, and the loop must keep its heartbeats. */
#define PENDING_FLUSH_BYTES (4u << 20)

/* Puts what waits in memory into the store, in key order, until it refuses
 * again or PENDING_FLUSH_BYTES are written. True when it stopped for the
 * budget only (call again soon). */
static bool pending_flush(struct cons_bodies *b)
{
	size_t done = 0, bytes = 0;
	bool more = false;
	while (done < b->n_pending) {
		if (bytes >= PENDING_FLUSH_BYTES) {
			more = true;
			break;
		}
		struct cons_pending_body *p = &b->pending[done];
		int rv = store_put(b->store, p->key, p->bytes, p->id_len,
				   p->bytes + p->id_len, p->len, NULL);
		if (rv == STORE_ENOSPC) {
			break;
		}
		if (rv != 0) {
			/* Other bytes under that key, or an I/O error: the
			 * body stays in memory (still served from here). */
			fprintf(stderr,
				"raftmqd: body store: body %llu kept in "
				"memory: %s\n",
				(unsigned long long)p->key,
				store_errmsg(b->store));
			break;
		}
		b->pending_bytes -= p->id_len + p->len;
		bytes += p->id_len + p->len;
		free(p->bytes);
		done++;
	}
	if (done > 0) {
		memmove(b->pending, b->pending + done,
			(b->n_pending - done) * sizeof b->pending[0]);
		b->n_pending -= done;
		if (b->n_pending == 0) {
			fprintf(stderr,
				"raftmqd: body store: disk space is back; "
				"every "
				"body kept in memory is on disk again\n");
		}
	}
	return more;
}

/* ------------------------------------------------ one write per entry
 *
 * A log entry carries up to thousands of publishes; a put each would be a
 * system call each (about 2 us: a third of the broker's CPU per message in
 * W1). So apply only records the puts (the bytes stay in the entry, alive
 * until apply returns; the sum is computed at once, the state needs it)
 * and cons__bodies_flush() writes them with store_put_batch() at the end:
 * one pwritev per run of new keys. A read or a drop of a key still in the
 * batch (a delivery or an ack within the same entry) is served or removed
 * there. */

static struct store_put_rec *batch_get(struct cons_bodies *b, uint64_t key)
{
	size_t i;
	for (i = b->n_batch; i-- > 0;) { /* the newest first: deliveries */
		if (b->batch[i].key == key) {
			return &b->batch[i];
		}
	}
	return NULL;
}

void cons__bodies_flush(struct cons_bodies *b)
{
	size_t done = 0, i;
	int rv;
	if (b->n_batch == 0) {
		return;
	}
	rv = store_put_batch(b->store, b->batch, b->n_batch, &done);
	if (rv != 0) {
		if (b->n_pending == 0) {
			fprintf(stderr,
				"raftmqd: body store: %s; bodies are kept in "
				"memory until it takes them\n",
				store_errmsg(b->store));
		}
		for (i = done; i < b->n_batch; i++) {
			const struct store_put_rec *r = &b->batch[i];
			uint32_t sum;
			if (pending_add(b, r->key, r->id, r->id_len, r->body,
					r->len, &sum) != 0) {
				fprintf(stderr,
					"raftmqd: FATAL: body store: out of "
					"memory keeping body %llu that the "
					"store refused\n",
					(unsigned long long)r->key);
				abort();
			}
		}
	}
	b->n_batch = 0;
}

static int put_cb(void *data, q_seq key, const void *id, size_t id_len,
		  const void *body, size_t len, uint32_t *sum)
{
	struct cons_bodies *b = data;
	struct store_put_rec *r;
	if (b->n_pending > 0 && pending_get(b, key) != NULL) {
		return pending_add(b, key, id, id_len, body, len, sum);
	}
	if (b->n_batch == b->batch_cap) {
		size_t cap = b->batch_cap ? 2 * b->batch_cap : 256;
		void *v = realloc(b->batch, cap * sizeof *b->batch);
		if (v == NULL) {
			snprintf(b->errmsg, sizeof b->errmsg,
				 "out of memory for body %llu",
				 (unsigned long long)key);
			return STORE_ENOMEM;
		}
		b->batch = v;
		b->batch_cap = cap;
	}
	r = &b->batch[b->n_batch++];
	r->key = key;
	r->id = id;
	r->id_len = id_len;
	r->body = body;
	r->len = len;
	*sum = store_sum(id, id_len, body, len);
	return 0;
}

static void drop_cb(void *data, q_seq key)
{
	struct cons_bodies *b = data;
	struct store_put_rec *r;
	if (b->n_batch > 0 && (r = batch_get(b, key)) != NULL) {
		/* Put and dropped in one entry: never written. */
		size_t i = (size_t)(r - b->batch);
		memmove(r, r + 1, (b->n_batch - i - 1) * sizeof *r);
		b->n_batch--;
		return;
	}
	if (b->n_pending > 0 && pending_drop(b, key)) {
		return;
	}
	store_drop(b->store, key);
}

static void claim_cb(void *data, q_seq key)
{
	struct cons_bodies *b = data;
	if (store_claim(b->store, key) != 0) {
		/* Only a missing key the store cannot record: the body then
		 * is neither here nor fetched. Not a state divergence, and
		 * nothing to undo; stop rather than serve without it. */
		fprintf(stderr,
			"raftmqd: FATAL: body store: out of memory recording "
			"missing body %llu\n",
			(unsigned long long)key);
		abort();
	}
}

static void report_cb(void *data, const char *msg)
{
	(void)data;
	fprintf(stderr, "raftmqd: body store: %s\n", msg);
}

int cons__bodies_open(struct cons_bodies *b, const char *data_dir,
		      uint64_t segment_bytes, char *err, size_t errlen)
{
	struct store_config sc;
	char dir[4200];
	int rv;

	memset(b, 0, sizeof b[0]);
	snprintf(dir, sizeof dir, "%s/bodies", data_dir);
	memset(&sc, 0, sizeof sc);
	sc.dir = dir;
	sc.segment_bytes = segment_bytes;
	sc.report_cb = report_cb;
	rv = store_open(&sc, &b->store, err, errlen);
	if (rv != 0) {
		b->store = NULL;
		return rv == STORE_ENOMEM ? CONS_ENOMEM : CONS_EIO;
	}
	return 0;
}

void cons__bodies_attach(struct cons_bodies *b, struct q_options *o)
{
	if (b->store == NULL) {
		return;
	}
	b->iface.data = b;
	b->iface.put = put_cb;
	b->iface.drop = drop_cb;
	b->iface.claim = claim_cb;
	o->bodies = &b->iface;
}

void cons__bodies_close(struct cons_bodies *b)
{
	size_t i;
	for (i = 0; i < b->n_pending; i++) {
		free(b->pending[i].bytes);
	}
	free(b->pending);
	b->pending = NULL;
	b->n_pending = b->pending_cap = 0;
	free(b->batch);
	b->batch = NULL;
	b->n_batch = b->batch_cap = 0;
	if (b->store != NULL) {
		(void)store_sync(b->store);
		store_close(b->store);
		b->store = NULL;
	}
}

static int drop_ref(void *data, q_seq key, uint32_t sum)
{
	(void)sum;
	store_drop(((struct cons_bodies *)data)->store, key);
	return 0;
}

static int claim_ref(void *data, q_seq key, uint32_t sum)
{
	(void)sum;
	claim_cb(data, key);
	return 0;
}

void cons__bodies_replace(struct cons_bodies *b, const struct q_state *old,
			  const struct q_state *now)
{
	if (b->store == NULL) {
		return;
	}
	/* Claims are one bit per key, not counts: drop everything the old
	 * state held, then claim again what the new one holds. */
	if (old != NULL) {
		(void)q_state_foreach_body(old, drop_ref, b);
	}
	(void)q_state_foreach_body(now, claim_ref, b);
}

void cons__bodies_installed(struct cons_bodies *b)
{
	if (b->store == NULL) {
		return;
	}
	/* raft wrote the snapshot before restoring it and dropped the log
	 * before it: nothing older is needed after a crash. */
	b->gc_token = store_mark(b->store);
	b->gc_more = true;
	b->pending_takes = 0;
}

int cons__bodies_sync(struct cons_bodies *b)
{
	if (b->store == NULL) {
		return 0;
	}
	if (store_sync(b->store) != 0) {
		fprintf(stderr, "raftmqd: body store: %s\n",
			store_errmsg(b->store));
		return CONS_EIO;
	}
	return 0;
}

int cons__bodies_sync_child(struct cons_bodies *b)
{
	if (b->store == NULL) {
		return 0;
	}
	return store_sync_data(b->store) == 0 ? 0 : CONS_EIO;
}

uint64_t cons__bodies_mark(struct cons_bodies *b)
{
	return b->store != NULL ? store_mark(b->store) : 0;
}

void cons__bodies_taking(struct cons_bodies *b, uint64_t mark,
			 uint64_t takes_done)
{
	if (b->store == NULL) {
		return;
	}
	b->pending_mark = mark;
	b->pending_takes = takes_done + 1;
}

void cons__bodies_poll(struct cons_bodies *b, uint64_t takes_done,
		       uint64_t now_ms)
{
	int rv;
	if (b->store == NULL) {
		return;
	}
	if (now_ms >= b->index_at_ms + 100) {
		struct store_stats st;
		store_stats(b->store, &st);
		b->index_bytes = st.index_bytes;
		b->disk_bytes = st.disk_bytes;
		b->index_at_ms = now_ms;
	}
	if (now_ms >= b->writeback_at_ms + WRITEBACK_EVERY_MS) {
		/* Keeps the disk busy with what apply wrote, so that the sync
		 * at the next snapshot has little left and stalls little. */
		b->writeback_at_ms = now_ms;
		store_writeback(b->store);
	}
	if (b->n_pending > 0 && now_ms >= b->pending_retry_ms) {
		b->pending_retry_ms = now_ms + PENDING_RETRY_MS;
		if (pending_flush(b)) {
			b->pending_retry_ms = now_ms; /* the rest next time */
		}
	}
	if (b->pending_takes != 0 && takes_done >= b->pending_takes) {
		/* raft has written the snapshot taken at pending_mark (the
		 * take that completed is ours: one at a time). */
		b->gc_token = b->pending_mark;
		b->gc_more = true;
		b->pending_takes = 0;
	}
	if (!b->gc_more || now_ms < b->gc_next_ms) {
		return;
	}
	b->gc_next_ms = now_ms + GC_EVERY_MS;
	rv = store_gc(b->store, b->gc_token, GC_BUDGET_BYTES);
	if (rv < 0) {
		/* Nothing lost: the store is as before the step. Try again
		 * at the next snapshot. */
		b->gc_errors++;
		b->gc_more = false;
		fprintf(stderr, "raftmqd: body store gc: %s\n",
			store_errmsg(b->store));
		return;
	}
	b->gc_more = rv == 1;
}

int cons_body_get(struct cons *c, uint64_t key, uint32_t sum,
		  struct cons_body *out)
{
	struct cons_bodies *b = &c->fsm.bodies;
	struct store_rec r;
	int rv;
	if (b->store == NULL) {
		return CONS_EINVAL;
	}
	if (b->n_batch > 0) {
		const struct store_put_rec *p = batch_get(b, key);
		if (p != NULL) {
			if (store_sum(p->id, p->id_len, p->body, p->len) !=
			    sum) {
				return CONS_ECORRUPT;
			}
			out->id = p->id;
			out->id_len = p->id_len;
			out->body = p->body;
			out->len = p->len;
			return 0;
		}
	}
	if (b->n_pending > 0) {
		const struct cons_pending_body *p = pending_get(b, key);
		if (p != NULL) {
			if (p->sum != sum) {
				return CONS_ECORRUPT;
			}
			out->id = p->bytes;
			out->id_len = p->id_len;
			out->body = p->bytes + p->id_len;
			out->len = p->len;
			return 0;
		}
	}
	rv = store_get(b->store, key, &r);
	if (rv == STORE_ENOTFOUND || rv == STORE_ECORRUPT) {
		return CONS_ENOTFOUND;
	}
	if (rv != 0) {
		return rv == STORE_ENOMEM ? CONS_ENOMEM : CONS_EIO;
	}
	if (!r.ahead) {
		store_prefetch(b->store, key, READ_AHEAD_BYTES);
	}
	if (r.sum != sum) {
		/* The bytes are sound but not the ones the state names (a
		 * bug, or a store from another cluster): never deliver. */
		fprintf(stderr,
			"raftmqd: body store: body %llu has checksum %08x, the "
			"queue state says %08x; not delivered\n",
			(unsigned long long)key, r.sum, sum);
		return CONS_ECORRUPT;
	}
	out->id = r.id;
	out->id_len = r.id_len;
	out->body = r.body;
	out->len = r.len;
	return 0;
}

int cons_body_read(struct cons *c, uint64_t key, struct cons_body *out,
		   uint32_t *sum)
{
	struct cons_bodies *b = &c->fsm.bodies;
	struct store_rec r;
	int rv;
	if (b->store == NULL) {
		return CONS_ENOTFOUND;
	}
	cons__bodies_flush(b); /* not within an apply: nothing is batched */
	if (b->n_pending > 0) {
		const struct cons_pending_body *p = pending_get(b, key);
		if (p != NULL) {
			out->id = p->bytes;
			out->id_len = p->id_len;
			out->body = p->bytes + p->id_len;
			out->len = p->len;
			if (sum != NULL) {
				*sum = p->sum;
			}
			return 0;
		}
	}
	rv = store_get(b->store, key, &r);
	if (rv == STORE_ENOTFOUND || rv == STORE_ECORRUPT) {
		return CONS_ENOTFOUND;
	}
	if (rv != 0) {
		return rv == STORE_ENOMEM ? CONS_ENOMEM : CONS_EIO;
	}
	out->id = r.id;
	out->id_len = r.id_len;
	out->body = r.body;
	out->len = r.len;
	if (sum != NULL) {
		*sum = r.sum;
	}
	return 0;
}

uint32_t cons_body_sum(const void *id, size_t id_len, const void *body,
		       size_t len)
{
	return store_sum(id, id_len, body, len);
}

void cons_body_prefetch(struct cons *c, uint64_t key, uint64_t bytes)
{
	if (c->fsm.bodies.store != NULL) {
		store_prefetch(c->fsm.bodies.store, key, bytes);
	}
}

uint64_t cons_bodies_missing(const struct cons *c)
{
	return c->fsm.bodies.store != NULL ? store_missing(c->fsm.bodies.store)
					   : 0;
}

int cons_bodies_missing_next(struct cons *c, uint64_t from, uint64_t *key)
{
	int rv;
	if (c->fsm.bodies.store == NULL) {
		return CONS_ENOTFOUND;
	}
	rv = store_missing_next(c->fsm.bodies.store, from, key);
	if (rv == STORE_ENOTFOUND) {
		return CONS_ENOTFOUND;
	}
	return rv == 0 ? 0 : CONS_ENOMEM;
}

int cons_body_fill(struct cons *c, uint64_t key, const void *id, size_t id_len,
		   const void *body, size_t len)
{
	struct cons_bodies *b = &c->fsm.bodies;
	int rv;
	if (b->store == NULL || !store_is_missing(b->store, key)) {
		return CONS_ENOTFOUND; /* not wanted (any more) */
	}
	rv = store_put(b->store, key, id, id_len, body, len, NULL);
	if (rv == STORE_ENOSPC) {
		return CONS_ENOSPACE;
	}
	if (rv == STORE_ENOMEM) {
		return CONS_ENOMEM;
	}
	return rv == 0 ? 0 : CONS_EIO;
}

void cons_bodies_stats(const struct cons *c, struct cons_bodies_stats *out)
{
	const struct cons_bodies *b = &c->fsm.bodies;
	struct store_stats st;
	memset(out, 0, sizeof *out);
	if (b->store == NULL) {
		return;
	}
	store_stats(b->store, &st);
	out->disk_bytes = st.disk_bytes;
	out->live_bytes = st.live_bytes;
	out->live_records = st.live_records;
	out->records = st.records;
	out->segments = st.segments;
	out->missing = st.missing;
	out->index_bytes = st.index_bytes;
	out->gets = st.gets;
	out->readahead_hits = st.readahead_hits;
	out->compactions = st.compactions;
	out->compacted_bytes = st.compacted_bytes;
	out->deleted_segments = st.deleted_segments;
	out->corrupt_records = st.corrupt_records;
	out->syncs = st.syncs;
	out->last_sync_ms = st.last_sync_ms;
	out->gc_errors = b->gc_errors;
}

uint64_t cons_memory_bytes(const struct cons *c)
{
	struct q_totals t;
	q_state_totals(c->fsm.state, &t);
	return t.alloc_bytes + c->fsm.log_bytes + c->fsm.bodies.index_bytes +
	       c->fsm.bodies.pending_bytes;
}

uint64_t cons_store_disk_bytes(const struct cons *c)
{
	return c->fsm.bodies.disk_bytes;
}

uint64_t cons_bodies_waiting(const struct cons *c)
{
	return c->fsm.bodies.n_pending;
}
