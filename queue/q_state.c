/* The state: registries of queues, topics and consumers, and
 * q_state_apply(), which runs every command in two phases:
 *
 *   1. validate and allocate: refuse with a result code, or fail with
 *      Q_ENOMEM, touching nothing but fresh allocations (freed on failure);
 *   2. mutate: pointer surgery that cannot fail, then dispatch deliveries
 *      to consumers with room (reported through the sink).
 *
 * So a command either happens completely or not at all, which is what the
 * Raft FSM needs: a failed apply is retried and must find the same state.
 *
 * Phase 1 includes the side structs (struct q_msg_ext) that phase 2 may
 * give to messages that have none: a delivery or a timer needs one. Each
 * command reserves a bound of how many it may need (ext_bound_* below);
 * they rest on what dispatch leaves after every command: a queue with a
 * message waiting (ready or returned) has no consumer with room
 * (q_state_check() verifies it). So only room that the command creates, or
 * messages that it brings in, can lead to deliveries. Whatever is left of
 * the reserve is freed at the end of the command. */
#include <stdlib.h>
#include <string.h>

#include "q_int.h"

/* ----------------------------------------------------------- allocator */

static void *libc_malloc(void *data, size_t size)
{
	(void)data;
	return malloc(size);
}
static void *libc_realloc(void *data, void *ptr, size_t size)
{
	(void)data;
	return realloc(ptr, size);
}
static void libc_free(void *data, void *ptr)
{
	(void)data;
	free(ptr);
}

struct q_state *q_state_new(const struct q_options *opts)
{
	struct q_allocator a = {NULL, libc_malloc, libc_realloc, libc_free};
	struct q_state *s;
	if (opts != NULL && opts->allocator != NULL) {
		a = *opts->allocator;
	}
	s = a.malloc(a.data, sizeof *s);
	if (s == NULL) {
		return NULL;
	}
	memset(s, 0, sizeof *s);
	s->alloc = a;
	if (opts != NULL) {
		s->hash_seed = opts->hash_seed;
		s->max_body = opts->max_body;
		s->bodies = opts->bodies;
		assert(s->bodies == NULL ||
		       (s->bodies->put != NULL && s->bodies->drop != NULL &&
			s->bodies->claim != NULL));
	}
	s->next_seq = 1;
	s->next_consumer = 1;
	s->next_qid = 1;
	q__list_init(&s->dirty);
	return s;
}

static void topic_free(struct q_state *s, struct q_topic *t)
{
	q__dedup_clear(s, &t->dedup);
	q__free(s, t->subs, t->cap_subs * sizeof *t->subs);
	q__strfree(s, t->name);
	q__free(s, t, sizeof *t);
}

void q__state_clear(struct q_state *s)
{
	uint64_t i;
	for (i = 0; i < s->n_queues; i++) {
		q__queue_destroy(s, s->queues[i], 0);
	}
	for (i = 0; i < s->n_topics; i++) {
		topic_free(s, s->topics[i]);
	}
	q__free(s, s->queues, s->cap_queues * sizeof *s->queues);
	q__free(s, s->topics, s->cap_topics * sizeof *s->topics);
	q__free(s, s->consumers, s->cap_consumers * sizeof *s->consumers);
	s->queues = NULL;
	s->topics = NULL;
	s->consumers = NULL;
	s->n_queues = s->cap_queues = 0;
	s->n_topics = s->cap_topics = 0;
	s->n_consumers = s->cap_consumers = 0;
	s->timers.root = NULL;
	s->timers.count = 0;
	q__ext_release(s);
	q__list_init(&s->dirty);
	s->now = 0;
	s->next_seq = 1;
	s->next_consumer = 1;
	s->next_qid = 1;
}

void q_state_free(struct q_state *s)
{
	struct q_allocator a;
	if (s == NULL) {
		return;
	}
	s->sink = NULL;
	q__state_clear(s);
	a = s->alloc;
	a.free(a.data, s);
}

void q_state_set_sink(struct q_state *s, const struct q_sink *sink)
{
	s->sink = sink;
}

uint64_t q_state_now(const struct q_state *s)
{
	return s->now;
}

/* ---------------------------------------------------------- registries */

int q__reserve(struct q_state *s, void *arrayp, uint64_t *cap, uint64_t need)
{
	void **array = arrayp;
	uint64_t n;
	void *p;
	if (need <= *cap) {
		return 0;
	}
	n = *cap ? *cap * 2 : 8;
	while (n < need) {
		n *= 2;
	}
	p = q__realloc(s, *array, *cap * sizeof(void *), n * sizeof(void *));
	if (p == NULL) {
		return Q_ENOMEM;
	}
	*array = p;
	*cap = n;
	return 0;
}

uint64_t q__queue_pos(const struct q_state *s, const char *name, int *found)
{
	uint64_t lo = 0, hi = s->n_queues;
	*found = 0;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->queues[mid]->name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

uint64_t q__topic_pos(const struct q_state *s, const char *name, int *found)
{
	uint64_t lo = 0, hi = s->n_topics;
	*found = 0;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->topics[mid]->name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

uint64_t q__consumer_pos(const struct q_state *s, q_consumer_id id, int *found)
{
	uint64_t lo = 0, hi = s->n_consumers;
	*found = 0;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		q_consumer_id v = s->consumers[mid]->id;
		if (v == id) {
			*found = 1;
			return mid;
		}
		if (v < id) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

struct q_queue *q__queue_find(const struct q_state *s, const char *name)
{
	int found;
	uint64_t i;
	if (name == NULL) {
		return NULL;
	}
	i = q__queue_pos(s, name, &found);
	return found ? s->queues[i] : NULL;
}

struct q_topic *q__topic_find(const struct q_state *s, const char *name)
{
	int found;
	uint64_t i;
	if (name == NULL) {
		return NULL;
	}
	i = q__topic_pos(s, name, &found);
	return found ? s->topics[i] : NULL;
}

struct q_consumer *q__consumer_find(const struct q_state *s, q_consumer_id id)
{
	int found;
	uint64_t i = q__consumer_pos(s, id, &found);
	return found ? s->consumers[i] : NULL;
}

struct q_queue *q__queue_by_id(const struct q_state *s, uint32_t id)
{
	uint64_t i;
	for (i = 0; i < s->n_queues; i++) {
		if (s->queues[i]->id == id) {
			return s->queues[i];
		}
	}
	return NULL;
}

static void queue_register(struct q_state *s, struct q_queue *q)
{
	int found;
	uint64_t pos = q__queue_pos(s, q->name, &found);
	memmove(&s->queues[pos + 1], &s->queues[pos],
		(s->n_queues - pos) * sizeof *s->queues);
	s->queues[pos] = q;
	s->n_queues++;
	q->id = s->next_qid++;
}

static void queue_unregister(struct q_state *s, struct q_queue *q)
{
	int found;
	uint64_t pos = q__queue_pos(s, q->name, &found);
	memmove(&s->queues[pos], &s->queues[pos + 1],
		(s->n_queues - pos - 1) * sizeof *s->queues);
	s->n_queues--;
}

/* ------------------------------------------------------------ commands */

static int create_queue(struct q_state *s, const struct q_cmd *cmd,
			struct q_result *r)
{
	const struct q_cmd_queue *c = &cmd->u.queue;
	struct q_queue *q;
	if (!q_name_valid(c->name) || !q__settings_valid(&c->settings) ||
	    (c->settings.dead_letter != NULL &&
	     strcmp(c->settings.dead_letter, c->name) == 0)) {
		r->status = Q_EINVAL;
		return 0;
	}
	q = q__queue_find(s, c->name);
	if (q != NULL) {
		r->status = q->topic == NULL && q__settings_equal(&q->settings,
								  &c->settings)
				    ? Q_OK
				    : Q_EEXIST;
		return 0;
	}
	if (q__reserve(s, &s->queues, &s->cap_queues, s->n_queues + 1) != 0) {
		return Q_ENOMEM;
	}
	q = q__queue_new(s, c->name, &c->settings);
	if (q == NULL) {
		return Q_ENOMEM;
	}
	queue_register(s, q);
	return 0;
}

static int configure_queue(struct q_state *s, const struct q_cmd *cmd,
			   struct q_result *r)
{
	const struct q_cmd_queue *c = &cmd->u.queue;
	struct q_queue *q = q__queue_find(s, c->name);
	struct q_settings merged;
	char *dl = NULL;
	if (q == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	merged = q->settings;
	q__settings_merge(&merged, &c->settings, c->mask);
	if (!q__settings_valid(&merged) ||
	    (merged.dead_letter != NULL &&
	     strcmp(merged.dead_letter, q->name) == 0)) {
		r->status = Q_EINVAL;
		return 0;
	}
	if ((c->mask & Q_SET_DEAD_LETTER) && merged.dead_letter != NULL &&
	    merged.dead_letter[0] != '\0') {
		dl = q__strdup(s, merged.dead_letter);
		if (dl == NULL) {
			return Q_ENOMEM;
		}
	}
	if (c->mask & Q_SET_DEAD_LETTER) {
		q__strfree(s, q->dead_letter);
		q->dead_letter = dl;
	}
	q__settings_merge(&q->settings, &c->settings,
			  c->mask & ~(uint32_t)Q_SET_DEAD_LETTER);
	q->settings.dead_letter = q->dead_letter;
	q__mark_dirty(s, q);
	return 0;
}

static int delete_queue(struct q_state *s, const struct q_cmd *cmd,
			struct q_result *r)
{
	struct q_queue *q = q__queue_find(s, cmd->u.queue.name);
	if (q == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	if (q->topic != NULL) {
		r->status = Q_ETOPICQUEUE;
		return 0;
	}
	queue_unregister(s, q);
	q__queue_destroy(s, q, 1);
	return 0;
}

static uint64_t purge_list(struct q_state *s, struct q_link *head)
{
	uint64_t n = 0;
	while (!q__list_empty(head)) {
		struct q_msg *m =
			Q__CONTAINER_OF(head->next, struct q_msg, link);
		q__msg_unlink(s, m);
		q__msg_free(s, m);
		n++;
	}
	return n;
}

static int purge_queue(struct q_state *s, const struct q_cmd *cmd,
		       struct q_result *r)
{
	struct q_queue *q = q__queue_find(s, cmd->u.queue.name);
	if (q == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	r->count = purge_list(s, &q->returned) + purge_list(s, &q->ready) +
		   purge_list(s, &q->delayed);
	return 0;
}

static int create_topic(struct q_state *s, const struct q_cmd *cmd,
			struct q_result *r)
{
	const struct q_cmd_topic *c = &cmd->u.topic;
	struct q_topic *t;
	int found;
	uint64_t pos;
	if (!q_name_valid(c->topic)) {
		r->status = Q_EINVAL;
		return 0;
	}
	t = q__topic_find(s, c->topic);
	if (t != NULL) {
		r->status = t->dedup_window_ms == c->dedup_window_ms ? Q_OK
								     : Q_EEXIST;
		return 0;
	}
	if (q__reserve(s, &s->topics, &s->cap_topics, s->n_topics + 1) != 0) {
		return Q_ENOMEM;
	}
	t = q__malloc(s, sizeof *t);
	if (t == NULL) {
		return Q_ENOMEM;
	}
	memset(t, 0, sizeof *t);
	t->name = q__strdup(s, c->topic);
	if (t->name == NULL) {
		q__free(s, t, sizeof *t);
		return Q_ENOMEM;
	}
	t->dedup_window_ms = c->dedup_window_ms;
	q__dedup_init(&t->dedup);
	pos = q__topic_pos(s, c->topic, &found);
	memmove(&s->topics[pos + 1], &s->topics[pos],
		(s->n_topics - pos) * sizeof *s->topics);
	s->topics[pos] = t;
	s->n_topics++;
	return 0;
}

static int delete_topic(struct q_state *s, const struct q_cmd *cmd,
			struct q_result *r)
{
	struct q_topic *t = q__topic_find(s, cmd->u.topic.topic);
	int found;
	uint64_t pos, i;
	if (t == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	for (i = 0; i < t->n_subs; i++) {
		queue_unregister(s, t->subs[i]);
		q__queue_destroy(s, t->subs[i], 1);
	}
	pos = q__topic_pos(s, t->name, &found);
	memmove(&s->topics[pos], &s->topics[pos + 1],
		(s->n_topics - pos - 1) * sizeof *s->topics);
	s->n_topics--;
	topic_free(s, t);
	return 0;
}

/* Builds "TOPIC:SUB" into buf; returns 0 if it is a valid name. */
static int sub_name(char *buf, const char *topic, const char *sub)
{
	size_t a, b;
	if (!q_name_valid(topic) || !q_name_valid(sub)) {
		return -1;
	}
	a = strlen(topic);
	b = strlen(sub);
	if (a + 1 + b > Q_NAME_MAX) {
		return -1;
	}
	memcpy(buf, topic, a);
	buf[a] = ':';
	memcpy(buf + a + 1, sub, b + 1);
	return 0;
}

static uint64_t sub_pos(const struct q_topic *t, const char *name, int *found)
{
	uint64_t lo = 0, hi = t->n_subs;
	*found = 0;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->subs[mid]->name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static int subscribe(struct q_state *s, const struct q_cmd *cmd,
		     struct q_result *r)
{
	const struct q_cmd_topic *c = &cmd->u.topic;
	char name[Q_NAME_MAX + 1];
	struct q_topic *t;
	struct q_queue *q;
	int found;
	uint64_t pos;
	if (sub_name(name, c->topic, c->subscription) != 0 ||
	    !q__settings_valid(&c->settings) ||
	    (c->settings.dead_letter != NULL &&
	     strcmp(c->settings.dead_letter, name) == 0)) {
		r->status = Q_EINVAL;
		return 0;
	}
	t = q__topic_find(s, c->topic);
	if (t == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	q = q__queue_find(s, name);
	if (q != NULL) {
		r->status = q->topic == t && q__settings_equal(&q->settings,
							       &c->settings)
				    ? Q_OK
				    : Q_EEXIST;
		return 0;
	}
	if (q__reserve(s, &s->queues, &s->cap_queues, s->n_queues + 1) != 0) {
		return Q_ENOMEM;
	}
	if (q__reserve(s, &t->subs, &t->cap_subs, t->n_subs + 1) != 0) {
		return Q_ENOMEM;
	}
	q = q__queue_new(s, name, &c->settings);
	if (q == NULL) {
		return Q_ENOMEM;
	}
	q->topic = t;
	queue_register(s, q);
	pos = sub_pos(t, name, &found);
	memmove(&t->subs[pos + 1], &t->subs[pos],
		(t->n_subs - pos) * sizeof *t->subs);
	t->subs[pos] = q;
	t->n_subs++;
	return 0;
}

static int unsubscribe(struct q_state *s, const struct q_cmd *cmd,
		       struct q_result *r)
{
	const struct q_cmd_topic *c = &cmd->u.topic;
	char name[Q_NAME_MAX + 1];
	struct q_topic *t;
	struct q_queue *q;
	int found;
	uint64_t pos;
	if (sub_name(name, c->topic, c->subscription) != 0) {
		r->status = Q_EINVAL;
		return 0;
	}
	t = q__topic_find(s, c->topic);
	q = q__queue_find(s, name);
	if (t == NULL || q == NULL || q->topic != t) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	pos = sub_pos(t, name, &found);
	memmove(&t->subs[pos], &t->subs[pos + 1],
		(t->n_subs - pos - 1) * sizeof *t->subs);
	t->n_subs--;
	queue_unregister(s, q);
	q__queue_destroy(s, q, 1);
	return 0;
}

/* ------------------------------------------------------------- publish */

#define MSG_ID_MAX 1024

/* Deliveries the room of a consumer allows (UINT64_MAX: no limit). */
static uint64_t room(uint32_t prefetch, uint64_t unacked, uint32_t credit)
{
	uint64_t r = credit == Q_CREDIT_UNLIMITED ? UINT64_MAX : credit;
	if (prefetch != 0) {
		uint64_t p = unacked < prefetch ? prefetch - unacked : 0;
		r = p < r ? p : r;
	}
	return r;
}

/* Messages of q that a delivery could take (side struct or not). */
static uint64_t waiting(const struct q_queue *q)
{
	return q->n_ready + q->n_returned;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Whether a new copy in q needs a side struct at once: a ttl or a delay
 * arms a timer, and a consumer with room (possible only when nothing waits:
 * dispatch left none) gets it delivered. It then comes in the copy's own
 * allocation. */
static int copy_needs_ext(const struct q_cmd_publish *c,
			  const struct q_queue *q)
{
	uint64_t ttl = c->ttl_ms != 0 ? c->ttl_ms : q->settings.ttl_ms;
	return ttl != 0 || c->delay_ms != 0 ||
	       (waiting(q) == 0 && q__queue_has_room(q));
}

/* Side structs a publish may need besides those of its copies: drop-head
 * moves messages without one to a dead-letter queue, where they may get a
 * ttl or be delivered. */
static uint64_t ext_bound_publish(const struct q_state *s,
				  const struct q_cmd_publish *c,
				  const struct q_topic *t,
				  struct q_queue *const *targets, uint64_t n)
{
	uint64_t need = 0, all = n, i;
	int cross = 0;
	for (i = 0; i < n; i++) {
		const struct q_queue *q = targets[i];
		if (q->settings.overflow == Q_OVERFLOW_DROP_HEAD) {
			need += q__queue_trim_bound(s, q, 1, c->body_len);
		}
		if (t != NULL && q->dead_letter != NULL) {
			const struct q_queue *dlq =
				q__queue_find(s, q->dead_letter);
			cross |= dlq != NULL && dlq->topic == t;
		}
		all += q__queue_len(q);
	}
	/* A subscription dead-lettering into another subscription of the same
	 * topic changes that one's content before it makes room, which the
	 * bound above does not foresee. Every message moves at most once (a
	 * dead-lettered message is dropped the next time), so this holds. */
	return cross ? all : need;
}

static int publish(struct q_state *s, const struct q_cmd *cmd,
		   struct q_result *r)
{
	const struct q_cmd_publish *c = &cmd->u.publish;
	struct q_queue *single = NULL;
	struct q_queue *const *targets;
	struct q_topic *t = NULL;
	struct q_dedup *dd;
	uint64_t window, n, i;
	struct q_body *b = NULL;
	struct q_dd *e = NULL;
	struct q_link fresh; /* the new q_msg, chained through link */
	size_t id_len = c->msg_id != NULL ? c->msg_id_len : 0;
	size_t bsize;
	uint32_t sum = 0;
	int rv = Q_ENOMEM;

	if ((c->queue == NULL) == (c->topic == NULL) || id_len > MSG_ID_MAX ||
	    (c->body == NULL && c->body_len != 0)) {
		r->status = Q_EINVAL;
		return 0;
	}
	if (c->body_len > UINT32_MAX ||
	    (s->max_body != 0 && c->body_len > s->max_body)) {
		r->status = Q_ETOOBIG;
		return 0;
	}
	bsize = q__body_size(s, id_len, c->body_len);
	if (c->queue != NULL) {
		single = q__queue_find(s, c->queue);
		if (single == NULL) {
			r->status = Q_ENOTFOUND;
			return 0;
		}
		if (single->topic != NULL) {
			r->status = Q_ETOPICQUEUE;
			return 0;
		}
		targets = &single;
		n = 1;
		dd = &single->dedup;
		window = single->settings.dedup_window_ms;
	} else {
		t = q__topic_find(s, c->topic);
		if (t == NULL) {
			r->status = Q_ENOTFOUND;
			return 0;
		}
		targets = t->subs;
		n = t->n_subs;
		dd = &t->dedup;
		window = t->dedup_window_ms;
	}

	if (id_len > 0 && window != 0) {
		struct q_dd *hit =
			q__dedup_find(s, dd, c->msg_id, id_len, window);
		if (hit != NULL) {
			r->duplicate = true;
			r->seq = hit->seq;
			if (t != NULL) {
				t->deduplicated++;
			} else {
				single->c.deduplicated++;
			}
			return 0;
		}
	}
	for (i = 0; i < n; i++) {
		const struct q_queue *q = targets[i];
		const struct q_settings *st = &q->settings;
		int too_big = st->max_bytes != 0 && c->body_len > st->max_bytes;
		if (too_big || (st->overflow == Q_OVERFLOW_REJECT_PUBLISH &&
				!q__queue_fits(q, 1, c->body_len))) {
			targets[i]->c.rejected++;
			r->status = Q_EFULL;
			return 0;
		}
	}

	/* Allocate everything before changing anything: the copies (a single
	 * copy shares its allocation with the body), the side structs, the
	 * dedup entry. */
	q__list_init(&fresh);
	if (n == 1) {
		struct q_msg *m =
			q__msg_alloc(s, copy_needs_ext(c, targets[0]), bsize);
		if (m == NULL) {
			goto err_nomem;
		}
		b = m->body;
		q__list_append(&fresh, &m->link);
	} else if (n > 1) {
		b = q__malloc(s, bsize);
		if (b == NULL) {
			goto err_nomem;
		}
		for (i = 0; i < n; i++) {
			struct q_msg *m = q__msg_alloc(
				s, copy_needs_ext(c, targets[i]), 0);
			if (m == NULL) {
				goto err_free_msgs;
			}
			q__list_append(&fresh, &m->link);
		}
	}
	if (q__ext_reserve(s, ext_bound_publish(s, c, t, targets, n)) != 0) {
		goto err_free_msgs;
	}
	if (id_len > 0 && window != 0) {
		if (q__dedup_grow(s, dd) != 0) {
			goto err_free_msgs;
		}
		e = q__dedup_new(s, c->msg_id, id_len);
		if (e == NULL) {
			goto err_free_msgs;
		}
	}
	/* Then the body, last: nothing can fail after it, so a failed apply
	 * never has a body to drop. */
	if (b != NULL && s->bodies != NULL &&
	    s->bodies->put(s->bodies->data, s->next_seq,
			   id_len > 0 ? c->msg_id : NULL, id_len, c->body,
			   c->body_len, &sum) != 0) {
		rv = Q_EIO;
		goto err_free_dedup;
	}

	/* Mutate. */
	r->seq = s->next_seq++;
	if (e != NULL) {
		q__dedup_expire(s, dd, window);
		q__dedup_insert(s, dd, e, r->seq, s->now);
	}
	if (t != NULL) {
		t->published++;
	}
	if (b != NULL) {
		b->refs = (uint32_t)n;
		b->id_len = (uint32_t)id_len;
		b->origin = r->seq;
		b->published_ms = s->now;
		b->len = (uint32_t)c->body_len;
		b->sum = sum;
		if (s->bodies == NULL && id_len > 0) {
			memcpy(b->data, c->msg_id, id_len);
		}
		if (s->bodies == NULL && c->body_len > 0) {
			memcpy(b->data + id_len, c->body, c->body_len);
		}
		s->n_bodies++;
		s->body_bytes += c->body_len;
		if (s->bodies != NULL) {
			s->stored_bytes += (uint64_t)c->body_len + id_len;
		}
	}
	for (i = 0; i < n; i++) {
		struct q_queue *q = targets[i];
		struct q_msg *m =
			Q__CONTAINER_OF(fresh.next, struct q_msg, link);
		uint64_t ttl = c->ttl_ms != 0 ? c->ttl_ms : q->settings.ttl_ms;
		q__list_remove(&m->link);
		if (q->settings.overflow == Q_OVERFLOW_DROP_HEAD) {
			q__queue_make_room(s, q, 1, c->body_len, 0);
		}
		m->body = b;
		m->queue = q;
		m->seq = r->seq;
		m->where = Q__NOWHERE;
		if (ttl != 0) {
			q__msg_ext(s, m)->expires = s->now + ttl;
		}
		s->n_msgs++;
		q->c.published++;
		if (c->delay_ms != 0) {
			q__msg_place(s, m, Q__DELAYED, s->now + c->delay_ms);
		} else {
			q__msg_place(s, m, Q__READY, 0);
		}
	}
	return 0;

err_free_dedup:
	if (e != NULL) {
		q__dedup_discard(s, e);
	}
err_free_msgs:
	while (!q__list_empty(&fresh)) {
		struct q_msg *m =
			Q__CONTAINER_OF(fresh.next, struct q_msg, link);
		q__list_remove(&m->link);
		q__msg_discard(s, m, n == 1 ? bsize : 0);
	}
	if (n > 1) {
		q__free(s, b, bsize);
	}
err_nomem:
	assert(rv != 0);
	return rv;
}

/* ----------------------------------------------------------- consumers */

static int attach(struct q_state *s, const struct q_cmd *cmd,
		  struct q_result *r)
{
	const struct q_cmd_attach *c = &cmd->u.attach;
	struct q_queue *q = q__queue_find(s, c->queue);
	struct q_consumer *k;
	if (q == NULL) {
		r->status = Q_ENOTFOUND;
		return 0;
	}
	if (q__reserve(s, &s->consumers, &s->cap_consumers,
		       s->n_consumers + 1) != 0 ||
	    q__ext_reserve(s, min_u64(room(c->prefetch, 0, c->credit),
				      waiting(q))) != 0) {
		return Q_ENOMEM;
	}
	k = q__malloc(s, sizeof *k);
	if (k == NULL) {
		return Q_ENOMEM;
	}
	memset(k, 0, sizeof *k);
	k->id = s->next_consumer++;
	k->queue = q;
	k->session = c->session;
	k->prefetch = c->prefetch;
	k->credit = c->credit;
	q__list_init(&k->unacked);
	/* Ids only grow, so appending keeps the array sorted. */
	s->consumers[s->n_consumers++] = k;
	q__list_append(&q->consumers, &k->qlink);
	q->n_consumers++;
	q__mark_dirty(s, q);
	r->consumer = k->id;
	return 0;
}

/* A held delivery the application never saw (DETACH's unseen tags, an
 * unseen RELEASE) does not count: delivery_count goes back by one. A
 * saturated count stays saturated (it no longer says how many there were).
 * The undone delivery is the message's last and has not failed, so the
 * count stays at least the failure count (q_state_check() verifies it). */
static void undo_delivery(struct q_msg *m)
{
	if (m->ext->deliveries != UINT32_MAX) {
		m->ext->deliveries--;
	}
}

static int detach(struct q_state *s, const struct q_cmd *cmd,
		  struct q_result *r)
{
	const struct q_cmd_consumer *c = &cmd->u.consumer;
	struct q_consumer *k = q__consumer_find(s, c->consumer);
	size_t i;
	if (k == NULL) {
		r->status = Q_ENOCONSUMER;
		return 0;
	}
	/* Unseen deliveries: the application never had them, so their last
	 * delivery does not count (a saturated count stays saturated). A tag
	 * named twice is undone once: an undone message's consumer pointer is
	 * cleared as the mark, and set back for all of k's messages before
	 * anything else looks at them. */
	for (i = 0; c->unseen != NULL && i < c->n_unseen; i++) {
		struct q_msg *m = q__unacked_find(k->queue, c->unseen[i]);
		if (m != NULL && m->ext->consumer == k) {
			undo_delivery(m);
			m->ext->consumer = NULL;
		}
	}
	if (c->n_unseen > 0) {
		struct q_link *l;
		for (l = k->unacked.next; l != &k->unacked; l = l->next) {
			Q__CONTAINER_OF(l, struct q_msg, link)->ext->consumer =
				k;
		}
	}
	q__consumer_remove(s, k, 0, 0);
	r->count = 1;
	return 0;
}

static int credit(struct q_state *s, const struct q_cmd *cmd,
		  struct q_result *r)
{
	struct q_consumer *k = q__consumer_find(s, cmd->u.consumer.consumer);
	if (k == NULL) {
		r->status = Q_ENOCONSUMER;
		return 0;
	}
	if (q__ext_reserve(s,
			   min_u64(room(cmd->u.consumer.prefetch, k->n_unacked,
					cmd->u.consumer.credit),
				   waiting(k->queue))) != 0) {
		return Q_ENOMEM;
	}
	k->prefetch = cmd->u.consumer.prefetch;
	k->credit = cmd->u.consumer.credit;
	q__mark_dirty(s, k->queue);
	return 0;
}

/* Detaches every consumer for which match() says so, in id order. */
static uint64_t detach_where(struct q_state *s, const struct q_session *ses,
			     int stale, int failed)
{
	uint64_t i = 0, n = 0;
	while (i < s->n_consumers) {
		struct q_consumer *k = s->consumers[i];
		const struct q_session *ks = &k->session;
		int match;
		if (stale) {
			match = ks->node_id != ses->node_id ||
				ks->epoch != ses->epoch;
		} else {
			match = ks->node_id == ses->node_id &&
				ks->epoch == ses->epoch &&
				ks->session_id == ses->session_id;
		}
		if (match) {
			q__consumer_remove(s, k, failed, 1);
			n++;
		} else {
			i++;
		}
	}
	return n;
}

/* ACK, NACK, RELEASE, EXTEND: each tag on its own. */
static int tags(struct q_state *s, const struct q_cmd *cmd, struct q_result *r)
{
	const struct q_cmd_tags *c = &cmd->u.tags;
	struct q_consumer *k = q__consumer_find(s, c->consumer);
	struct q_queue *q;
	size_t i;
	if (k == NULL) {
		r->status = Q_ENOCONSUMER;
		return 0;
	}
	if (c->n_tags == 0 || c->tags == NULL) {
		r->status = Q_EINVAL;
		return 0;
	}
	q = k->queue;
	/* Each tag done gives k room for one delivery (EXTEND gives none). */
	if (cmd->type != Q_CMD_EXTEND &&
	    q__ext_reserve(s, min_u64(c->n_tags, waiting(q))) != 0) {
		return Q_ENOMEM;
	}
	for (i = 0; i < c->n_tags; i++) {
		struct q_msg *m = q__unacked_find(q, c->tags[i]);
		if (m == NULL || m->ext->consumer != k) {
			r->unknown++;
			continue;
		}
		r->count++;
		switch (cmd->type) {
		case Q_CMD_ACK:
			q->c.acked++;
			q__msg_unlink(s, m);
			q__msg_free(s, m);
			break;
		case Q_CMD_NACK:
			q->c.nacked++;
			q__unacked_return(s, m, 1, c->ms);
			break;
		case Q_CMD_RELEASE:
			q->c.released++;
			if (c->unseen) {
				undo_delivery(m);
			}
			q__unacked_return(s, m, 0, 0);
			break;
		default: { /* Q_CMD_EXTEND */
			uint64_t ms =
				c->ms ? c->ms : q->settings.ack_timeout_ms;
			if (ms != 0) {
				q__timer_arm(s, m, s->now + ms);
			} else {
				q__timer_disarm(s, m);
			}
			break;
		}
		}
	}
	if (r->unknown > 0) {
		r->status = Q_EUNKNOWNTAG;
	}
	return 0;
}

static int tick(struct q_state *s)
{
	uint64_t i, due = q__timers_due_unacked(s);
	/* An ack deadline that passes gives its consumer room. */
	if (due > 0) {
		uint64_t w = 0;
		for (i = 0; i < s->n_queues; i++) {
			w += waiting(s->queues[i]);
		}
		if (q__ext_reserve(s, min_u64(due, w)) != 0) {
			return Q_ENOMEM;
		}
	}
	q__timers_fire(s);
	/* Forget old dedup ids here too, so idle queues free them. */
	for (i = 0; i < s->n_queues; i++) {
		struct q_queue *q = s->queues[i];
		q__dedup_expire(s, &q->dedup, q->settings.dedup_window_ms);
	}
	for (i = 0; i < s->n_topics; i++) {
		struct q_topic *t = s->topics[i];
		q__dedup_expire(s, &t->dedup, t->dedup_window_ms);
	}
	return 0;
}

int q_state_apply(struct q_state *s, const struct q_cmd *cmd,
		  struct q_result *r)
{
	uint64_t old_now = s->now;
	int rv = 0;

	assert(!s->applying && "q_state_apply re-entered (from the sink?)");
	s->applying = true;
	memset(r, 0, sizeof *r);
	/* The state clock never goes back: a stale stamp (a new leader whose
	 * clock is behind) leaves it where it is. */
	if (cmd->now_ms > s->now) {
		s->now = cmd->now_ms;
	}
	switch (cmd->type) {
	case Q_CMD_TICK:
		rv = tick(s);
		break;
	case Q_CMD_CREATE_QUEUE:
		rv = create_queue(s, cmd, r);
		break;
	case Q_CMD_CONFIGURE_QUEUE:
		rv = configure_queue(s, cmd, r);
		break;
	case Q_CMD_DELETE_QUEUE:
		rv = delete_queue(s, cmd, r);
		break;
	case Q_CMD_PURGE_QUEUE:
		rv = purge_queue(s, cmd, r);
		break;
	case Q_CMD_CREATE_TOPIC:
		rv = create_topic(s, cmd, r);
		break;
	case Q_CMD_DELETE_TOPIC:
		rv = delete_topic(s, cmd, r);
		break;
	case Q_CMD_SUBSCRIBE:
		rv = subscribe(s, cmd, r);
		break;
	case Q_CMD_UNSUBSCRIBE:
		rv = unsubscribe(s, cmd, r);
		break;
	case Q_CMD_PUBLISH:
		rv = publish(s, cmd, r);
		break;
	case Q_CMD_ATTACH:
		rv = attach(s, cmd, r);
		break;
	case Q_CMD_DETACH:
		rv = detach(s, cmd, r);
		break;
	case Q_CMD_CREDIT:
		rv = credit(s, cmd, r);
		break;
	case Q_CMD_ACK:
	case Q_CMD_NACK:
	case Q_CMD_RELEASE:
	case Q_CMD_EXTEND:
		rv = tags(s, cmd, r);
		break;
	case Q_CMD_SESSION_GONE:
		r->count = detach_where(s, &cmd->u.session.session, 0, 1);
		break;
	case Q_CMD_DETACH_STALE:
		r->count = detach_where(s, &cmd->u.session.session, 1, 0);
		break;
	default:
		r->status = Q_EINVAL;
		break;
	}
	if (rv != 0) {
		q__ext_release(s);
		s->now = old_now;
		memset(r, 0, sizeof *r);
		s->applying = false;
		return rv;
	}
	q__dispatch_dirty(s);
	q__ext_release(s);
	s->applying = false;
	return 0;
}

/* ---------------------------------------------------------------- reads */

void q_state_totals(const struct q_state *s, struct q_totals *t)
{
	t->queues = s->n_queues;
	t->topics = s->n_topics;
	t->consumers = s->n_consumers;
	t->messages = s->n_msgs;
	t->bodies = s->n_bodies;
	t->body_bytes = s->body_bytes;
	t->dedup_entries = s->n_dd;
	t->alloc_bytes = s->alloc_bytes;
	t->alloc_blocks = s->alloc_blocks;
	t->stored_bytes = s->stored_bytes;
}

static void fill_info(const struct q_queue *q, struct q_queue_info *i)
{
	i->name = q->name;
	i->topic = q->topic != NULL ? q->topic->name : NULL;
	i->settings = q->settings;
	i->ready = q->n_ready + q->n_returned;
	i->unacked = q->n_unacked;
	i->delayed = q->n_delayed;
	i->bytes = q->bytes;
	i->consumers = q->n_consumers;
	i->published = q->c.published;
	i->delivered = q->c.delivered;
	i->redelivered = q->c.redelivered;
	i->acked = q->c.acked;
	i->nacked = q->c.nacked;
	i->released = q->c.released;
	i->dead_lettered = q->c.dead_lettered;
	i->expired = q->c.expired;
	i->deduplicated = q->c.deduplicated;
	i->dropped = q->c.dropped;
	i->rejected = q->c.rejected;
}

int q_state_queue_info(const struct q_state *s, const char *name,
		       struct q_queue_info *info)
{
	const struct q_queue *q = q__queue_find(s, name);
	if (q == NULL) {
		return Q_ENOTFOUND;
	}
	fill_info(q, info);
	return 0;
}

int q_state_foreach_queue(const struct q_state *s,
			  int (*cb)(void *data,
				    const struct q_queue_info *info),
			  void *data)
{
	uint64_t i;
	for (i = 0; i < s->n_queues; i++) {
		struct q_queue_info info;
		int rv;
		fill_info(s->queues[i], &info);
		rv = cb(data, &info);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

static int foreach_body_in(const struct q_link *head,
			   int (*cb)(void *data, q_seq key, uint32_t sum),
			   void *data)
{
	const struct q_link *l;
	for (l = head->next; l != head; l = l->next) {
		const struct q_msg *m = Q__CONTAINER_OF(l, struct q_msg, link);
		int rv = cb(data, m->body->origin, m->body->sum);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

int q_state_foreach_body(const struct q_state *s,
			 int (*cb)(void *data, q_seq key, uint32_t sum),
			 void *data)
{
	uint64_t i;
	if (s->bodies == NULL) {
		return 0;
	}
	for (i = 0; i < s->n_queues; i++) {
		const struct q_queue *q = s->queues[i];
		const struct q_link *l;
		int rv = foreach_body_in(&q->ready, cb, data);
		if (rv == 0) {
			rv = foreach_body_in(&q->returned, cb, data);
		}
		if (rv == 0) {
			rv = foreach_body_in(&q->delayed, cb, data);
		}
		for (l = q->consumers.next; rv == 0 && l != &q->consumers;
		     l = l->next) {
			rv = foreach_body_in(
				&Q__CONTAINER_OF(l, struct q_consumer, qlink)
					 ->unacked,
				cb, data);
		}
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

int q_state_foreach_topic(const struct q_state *s,
			  int (*cb)(void *data,
				    const struct q_topic_info *info),
			  void *data)
{
	uint64_t i;
	for (i = 0; i < s->n_topics; i++) {
		const struct q_topic *t = s->topics[i];
		struct q_topic_info info = {
			.name = t->name,
			.dedup_window_ms = t->dedup_window_ms,
			.subscriptions = t->n_subs,
			.published = t->published,
			.deduplicated = t->deduplicated,
		};
		int rv = cb(data, &info);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

int q_state_foreach_consumer(const struct q_state *s,
			     int (*cb)(void *data,
				       const struct q_consumer_info *info),
			     void *data)
{
	uint64_t i;
	for (i = 0; i < s->n_consumers; i++) {
		const struct q_consumer *k = s->consumers[i];
		struct q_consumer_info info = {
			.id = k->id,
			.queue = k->queue->name,
			.session = k->session,
			.prefetch = k->prefetch,
			.credit = k->credit,
			.unacked = k->n_unacked,
		};
		int rv = cb(data, &info);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}
