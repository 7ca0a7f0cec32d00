/* Log entries: a batch of queue/ commands (and consensus/'s own SetMember)
 * in one LogEntry (proto/log.proto), stamped with the leader's clock.
 *
 * Encoding builds the protobuf-c structs on the stack or in one heap block
 * and packs straight into the raft_malloc()ed buffer raft takes. Decoding
 * uses the arena so a big batch costs a couple of allocations. Anything this
 * version does not understand (format, kind, enum value, mask bit) is
 * refused: replicas must never skip part of an entry others would apply. */
#include <stdlib.h>
#include <string.h>

#include "cons_int.h"

/* ----------------------------------------------------------------- arena */

struct cons_arena_block {
	struct cons_arena_block *next;
	size_t used, size;
	max_align_t data[];
};

static void *arena_alloc(void *data, size_t size)
{
	struct cons_arena *a = data;
	struct cons_arena_block *b = a->blocks;
	size = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (b == NULL || b->size - b->used < size) {
		size_t bsize = a->block_size;
		while (bsize < size) {
			bsize *= 2;
		}
		b = malloc(sizeof *b + bsize);
		if (b == NULL) {
			return NULL;
		}
		b->used = 0;
		b->size = bsize;
		b->next = a->blocks;
		a->blocks = b;
		if (a->block_size < 4u << 20) {
			a->block_size *= 2;
		}
	}
	b->used += size;
	return (char *)b->data + b->used - size;
}

static void arena_free(void *data, void *ptr)
{
	(void)data;
	(void)ptr; /* freed all at once in cons__arena_reset() */
}

void cons__arena_init(struct cons_arena *a)
{
	a->pb.alloc = arena_alloc;
	a->pb.free = arena_free;
	a->pb.allocator_data = a;
	a->blocks = NULL;
	a->block_size = 64 * 1024;
}

void cons__arena_reset(struct cons_arena *a)
{
	struct cons_arena_block *b = a->blocks;
	/* Keep the newest (largest) block, free the rest. */
	if (b == NULL) {
		return;
	}
	while (b->next != NULL) {
		struct cons_arena_block *n = b->next;
		b->next = n->next;
		free(n);
	}
	b->used = 0;
}

void cons__arena_close(struct cons_arena *a)
{
	while (a->blocks != NULL) {
		struct cons_arena_block *n = a->blocks->next;
		free(a->blocks);
		a->blocks = n;
	}
}

/* ---------------------------------------------------------------- encode */

typedef Raftmq__Log__V1__Command Command;

/* Everything one command needs, so one allocation serves a whole batch. */
union cmd_body {
	Raftmq__Log__V1__Tick tick;
	Raftmq__Log__V1__CreateQueue create_queue;
	Raftmq__Log__V1__ConfigureQueue configure_queue;
	Raftmq__Log__V1__DeleteQueue delete_queue;
	Raftmq__Log__V1__PurgeQueue purge_queue;
	Raftmq__Log__V1__CreateTopic create_topic;
	Raftmq__Log__V1__DeleteTopic delete_topic;
	Raftmq__Log__V1__Subscribe subscribe;
	Raftmq__Log__V1__Unsubscribe unsubscribe;
	Raftmq__Log__V1__Publish publish;
	Raftmq__Log__V1__Attach attach;
	Raftmq__Log__V1__Detach detach;
	Raftmq__Log__V1__Credit credit;
	Raftmq__Log__V1__Ack ack;
	Raftmq__Log__V1__Nack nack;
	Raftmq__Log__V1__Release release;
	Raftmq__Log__V1__Extend extend;
	Raftmq__Log__V1__SessionGone session_gone;
	Raftmq__Log__V1__DetachStale detach_stale;
};

struct cmd_slot {
	Command cmd;
	union cmd_body body;
	Raftmq__Log__V1__QueueSettings settings;
	Raftmq__Log__V1__Session session;
};

static char *str(const char *s)
{
	/* protobuf-c wants char * for strings it only reads when packing. */
	return (char *)(uintptr_t)(s != NULL ? s : "");
}

static void settings_out(Raftmq__Log__V1__QueueSettings *o,
			 const struct q_settings *st)
{
	raftmq__log__v1__queue_settings__init(o);
	o->ack_timeout_ms = st->ack_timeout_ms;
	o->max_deliveries = st->max_deliveries;
	o->dead_letter = str(st->dead_letter);
	o->ttl_ms = st->ttl_ms;
	o->max_length = st->max_length;
	o->max_bytes = st->max_bytes;
	o->overflow = (Raftmq__Log__V1__Overflow)st->overflow;
	o->dedup_window_ms = st->dedup_window_ms;
}

static void session_out(Raftmq__Log__V1__Session *o, const struct q_session *s)
{
	raftmq__log__v1__session__init(o);
	o->node_id = s->node_id;
	o->epoch = s->epoch;
	o->session_id = s->session_id;
}

#define KIND(k) RAFTMQ__LOG__V1__COMMAND__KIND_##k

static int command_out(struct cmd_slot *sl, const struct q_cmd *c)
{
	Command *pc = &sl->cmd;
	union cmd_body *b = &sl->body;
	/* Never write what no replica could apply (cons__entry_command
	 * refuses it, and a committed entry that cannot be applied stops
	 * every node): check the values decoding checks. */
	if (((c->type == Q_CMD_CREATE_QUEUE ||
	      c->type == Q_CMD_CONFIGURE_QUEUE) &&
	     c->u.queue.settings.overflow > Q_OVERFLOW_DROP_HEAD) ||
	    (c->type == Q_CMD_CONFIGURE_QUEUE &&
	     (c->u.queue.mask & ~(uint32_t)Q_SET_ALL) != 0) ||
	    (c->type == Q_CMD_SUBSCRIBE &&
	     c->u.topic.settings.overflow > Q_OVERFLOW_DROP_HEAD) ||
	    (c->type == Q_CMD_PUBLISH &&
	     (c->u.publish.queue == NULL) == (c->u.publish.topic == NULL))) {
		return CONS_EINVAL;
	}
	raftmq__log__v1__command__init(pc);
	switch (c->type) {
	case Q_CMD_TICK:
		raftmq__log__v1__tick__init(&b->tick);
		pc->kind_case = KIND(TICK);
		pc->tick = &b->tick;
		break;
	case Q_CMD_CREATE_QUEUE:
		raftmq__log__v1__create_queue__init(&b->create_queue);
		b->create_queue.name = str(c->u.queue.name);
		settings_out(&sl->settings, &c->u.queue.settings);
		b->create_queue.settings = &sl->settings;
		pc->kind_case = KIND(CREATE_QUEUE);
		pc->create_queue = &b->create_queue;
		break;
	case Q_CMD_CONFIGURE_QUEUE:
		raftmq__log__v1__configure_queue__init(&b->configure_queue);
		b->configure_queue.name = str(c->u.queue.name);
		settings_out(&sl->settings, &c->u.queue.settings);
		b->configure_queue.settings = &sl->settings;
		b->configure_queue.mask = c->u.queue.mask;
		pc->kind_case = KIND(CONFIGURE_QUEUE);
		pc->configure_queue = &b->configure_queue;
		break;
	case Q_CMD_DELETE_QUEUE:
		raftmq__log__v1__delete_queue__init(&b->delete_queue);
		b->delete_queue.name = str(c->u.queue.name);
		pc->kind_case = KIND(DELETE_QUEUE);
		pc->delete_queue = &b->delete_queue;
		break;
	case Q_CMD_PURGE_QUEUE:
		raftmq__log__v1__purge_queue__init(&b->purge_queue);
		b->purge_queue.name = str(c->u.queue.name);
		pc->kind_case = KIND(PURGE_QUEUE);
		pc->purge_queue = &b->purge_queue;
		break;
	case Q_CMD_CREATE_TOPIC:
		raftmq__log__v1__create_topic__init(&b->create_topic);
		b->create_topic.name = str(c->u.topic.topic);
		b->create_topic.dedup_window_ms = c->u.topic.dedup_window_ms;
		pc->kind_case = KIND(CREATE_TOPIC);
		pc->create_topic = &b->create_topic;
		break;
	case Q_CMD_DELETE_TOPIC:
		raftmq__log__v1__delete_topic__init(&b->delete_topic);
		b->delete_topic.name = str(c->u.topic.topic);
		pc->kind_case = KIND(DELETE_TOPIC);
		pc->delete_topic = &b->delete_topic;
		break;
	case Q_CMD_SUBSCRIBE:
		raftmq__log__v1__subscribe__init(&b->subscribe);
		b->subscribe.topic = str(c->u.topic.topic);
		b->subscribe.subscription = str(c->u.topic.subscription);
		settings_out(&sl->settings, &c->u.topic.settings);
		b->subscribe.settings = &sl->settings;
		pc->kind_case = KIND(SUBSCRIBE);
		pc->subscribe = &b->subscribe;
		break;
	case Q_CMD_UNSUBSCRIBE:
		raftmq__log__v1__unsubscribe__init(&b->unsubscribe);
		b->unsubscribe.topic = str(c->u.topic.topic);
		b->unsubscribe.subscription = str(c->u.topic.subscription);
		pc->kind_case = KIND(UNSUBSCRIBE);
		pc->unsubscribe = &b->unsubscribe;
		break;
	case Q_CMD_PUBLISH: {
		const struct q_cmd_publish *p = &c->u.publish;
		Raftmq__Log__V1__Publish *o = &b->publish;
		raftmq__log__v1__publish__init(o);
		if (p->queue != NULL) {
			o->target_case = RAFTMQ__LOG__V1__PUBLISH__TARGET_QUEUE;
			o->queue = str(p->queue);
		} else {
			o->target_case = RAFTMQ__LOG__V1__PUBLISH__TARGET_TOPIC;
			o->topic = str(p->topic);
		}
		o->msg_id.data = (uint8_t *)(uintptr_t)p->msg_id;
		o->msg_id.len = p->msg_id != NULL ? p->msg_id_len : 0;
		o->body.data = (uint8_t *)(uintptr_t)p->body;
		o->body.len = p->body_len;
		o->delay_ms = p->delay_ms;
		o->ttl_ms = p->ttl_ms;
		pc->kind_case = KIND(PUBLISH);
		pc->publish = o;
		break;
	}
	case Q_CMD_ATTACH:
		raftmq__log__v1__attach__init(&b->attach);
		b->attach.queue = str(c->u.attach.queue);
		session_out(&sl->session, &c->u.attach.session);
		b->attach.session = &sl->session;
		b->attach.prefetch = c->u.attach.prefetch;
		b->attach.credit = c->u.attach.credit;
		pc->kind_case = KIND(ATTACH);
		pc->attach = &b->attach;
		break;
	case Q_CMD_DETACH:
		raftmq__log__v1__detach__init(&b->detach);
		b->detach.consumer = c->u.consumer.consumer;
		b->detach.n_unseen = c->u.consumer.n_unseen;
		b->detach.unseen = (uint64_t *)(uintptr_t)c->u.consumer.unseen;
		pc->kind_case = KIND(DETACH);
		pc->detach = &b->detach;
		break;
	case Q_CMD_CREDIT:
		raftmq__log__v1__credit__init(&b->credit);
		b->credit.consumer = c->u.consumer.consumer;
		b->credit.prefetch = c->u.consumer.prefetch;
		b->credit.credit = c->u.consumer.credit;
		pc->kind_case = KIND(CREDIT);
		pc->credit = &b->credit;
		break;
	case Q_CMD_ACK:
		raftmq__log__v1__ack__init(&b->ack);
		b->ack.consumer = c->u.tags.consumer;
		b->ack.n_tags = c->u.tags.n_tags;
		b->ack.tags = (uint64_t *)(uintptr_t)c->u.tags.tags;
		pc->kind_case = KIND(ACK);
		pc->ack = &b->ack;
		break;
	case Q_CMD_NACK:
		raftmq__log__v1__nack__init(&b->nack);
		b->nack.consumer = c->u.tags.consumer;
		b->nack.n_tags = c->u.tags.n_tags;
		b->nack.tags = (uint64_t *)(uintptr_t)c->u.tags.tags;
		b->nack.delay_ms = c->u.tags.ms;
		pc->kind_case = KIND(NACK);
		pc->nack = &b->nack;
		break;
	case Q_CMD_RELEASE:
		raftmq__log__v1__release__init(&b->release);
		b->release.consumer = c->u.tags.consumer;
		b->release.n_tags = c->u.tags.n_tags;
		b->release.tags = (uint64_t *)(uintptr_t)c->u.tags.tags;
		b->release.unseen = c->u.tags.unseen;
		pc->kind_case = KIND(RELEASE);
		pc->release = &b->release;
		break;
	case Q_CMD_EXTEND:
		raftmq__log__v1__extend__init(&b->extend);
		b->extend.consumer = c->u.tags.consumer;
		b->extend.n_tags = c->u.tags.n_tags;
		b->extend.tags = (uint64_t *)(uintptr_t)c->u.tags.tags;
		b->extend.timeout_ms = c->u.tags.ms;
		pc->kind_case = KIND(EXTEND);
		pc->extend = &b->extend;
		break;
	case Q_CMD_SESSION_GONE:
		raftmq__log__v1__session_gone__init(&b->session_gone);
		session_out(&sl->session, &c->u.session.session);
		b->session_gone.session = &sl->session;
		pc->kind_case = KIND(SESSION_GONE);
		pc->session_gone = &b->session_gone;
		break;
	case Q_CMD_DETACH_STALE:
		raftmq__log__v1__detach_stale__init(&b->detach_stale);
		b->detach_stale.node_id = c->u.session.session.node_id;
		b->detach_stale.epoch = c->u.session.session.epoch;
		pc->kind_case = KIND(DETACH_STALE);
		pc->detach_stale = &b->detach_stale;
		break;
	default:
		return CONS_EINVAL;
	}
	return 0;
}

int cons__entry_encode(const struct q_cmd *cmds, size_t n,
		       const Raftmq__Log__V1__SetMember *members,
		       size_t n_members, uint64_t leader_time_ms,
		       const struct cons_proposer *by, struct raft_buffer *out)
{
	Raftmq__Log__V1__LogEntry e;
	struct cmd_slot one, *slots = &one;
	Command *ptrs_one[1], **ptrs = ptrs_one;
	Command *member_cmds = NULL;
	size_t total = n + n_members, i, len;
	int rv = 0;

	if (total > 1) {
		slots = n > 0 ? malloc(n * sizeof *slots) : NULL;
		ptrs = malloc(total * sizeof *ptrs);
		member_cmds = n_members > 0
				      ? malloc(n_members * sizeof *member_cmds)
				      : NULL;
		if ((n > 0 && slots == NULL) || ptrs == NULL ||
		    (n_members > 0 && member_cmds == NULL)) {
			rv = CONS_ENOMEM;
			goto out;
		}
	} else if (n_members == 1) {
		member_cmds = malloc(sizeof *member_cmds);
		if (member_cmds == NULL) {
			rv = CONS_ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		rv = command_out(&slots[i], &cmds[i]);
		if (rv != 0) {
			goto out;
		}
		ptrs[i] = &slots[i].cmd;
	}
	for (i = 0; i < n_members; i++) {
		raftmq__log__v1__command__init(&member_cmds[i]);
		member_cmds[i].kind_case = KIND(SET_MEMBER);
		member_cmds[i].set_member =
			(Raftmq__Log__V1__SetMember *)(uintptr_t)&members[i];
		ptrs[n + i] = &member_cmds[i];
	}
	raftmq__log__v1__log_entry__init(&e);
	/* Format 2 only where it is needed (log.proto, LOG_FORMAT_2). */
	e.format = RAFTMQ__LOG__V1__LOG_FORMAT__LOG_FORMAT_1;
	for (i = 0; i < n; i++) {
		if ((cmds[i].type == Q_CMD_DETACH &&
		     cmds[i].u.consumer.n_unseen > 0) ||
		    (cmds[i].type == Q_CMD_RELEASE && cmds[i].u.tags.unseen)) {
			e.format = RAFTMQ__LOG__V1__LOG_FORMAT__LOG_FORMAT_2;
		}
	}
	e.leader_time_ms = leader_time_ms;
	e.n_commands = total;
	e.commands = ptrs;
	if (by != NULL) {
		e.proposer_id = by->id;
		e.proposer_boot = by->boot;
		e.proposal_seq = by->seq;
	}
	len = raftmq__log__v1__log_entry__get_packed_size(&e);
	/* The header holds the length in 32 bits and raft_uv stores entry
	 * lengths in 32 bits too: past the cap (far below 4 GiB) the entry is
	 * refused here, before raft_apply(), so it never commits. */
	if (CONS_ENTRY_HEADER + len > CONS_MAX_ENTRY_BYTES) {
		rv = CONS_ETOOBIG;
		goto out;
	}
	/* raft_uv wants entry buffers in multiples of 8 bytes: an 8-byte
	 * header with the LogEntry's length, the LogEntry, zero padding. */
	out->len = (CONS_ENTRY_HEADER + len + 7) & ~(size_t)7;
	out->base = raft_malloc(out->len);
	if (out->base == NULL) {
		rv = CONS_ENOMEM;
		goto out;
	}
	memset(out->base, 0, out->len);
	{
		unsigned char *h = out->base;
		h[0] = (unsigned char)len;
		h[1] = (unsigned char)(len >> 8);
		h[2] = (unsigned char)(len >> 16);
		h[3] = (unsigned char)(len >> 24);
	}
	raftmq__log__v1__log_entry__pack(
		&e, (uint8_t *)out->base + CONS_ENTRY_HEADER);
out:
	free(member_cmds);
	if (slots != &one) {
		free(slots);
	}
	if (ptrs != ptrs_one) {
		free(ptrs);
	}
	return rv;
}

/* ---------------------------------------------------------------- decode */

Raftmq__Log__V1__LogEntry *cons__entry_decode(struct cons_arena *a,
					      const void *buf, size_t len)
{
	const unsigned char *h = buf;
	Raftmq__Log__V1__LogEntry *e;
	size_t n;
	if (len < CONS_ENTRY_HEADER) {
		return NULL;
	}
	n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 |
	    (size_t)h[3] << 24;
	if (n > len - CONS_ENTRY_HEADER || h[4] || h[5] || h[6] || h[7]) {
		return NULL;
	}
	e = raftmq__log__v1__log_entry__unpack(&a->pb, n,
					       h + CONS_ENTRY_HEADER);
	if (e == NULL) {
		return NULL;
	}
	if (e->format == RAFTMQ__LOG__V1__LOG_FORMAT__LOG_FORMAT_1) {
		/* Format 1 has no Detach.unseen nor Release.unseen: no
		 * writer put them there. */
		for (n = 0; n < e->n_commands; n++) {
			const Raftmq__Log__V1__Command *pc = e->commands[n];
			if ((pc->kind_case == KIND(DETACH) &&
			     pc->detach->n_unseen > 0) ||
			    (pc->kind_case == KIND(RELEASE) &&
			     pc->release->unseen)) {
				return NULL;
			}
		}
	} else if (e->format != RAFTMQ__LOG__V1__LOG_FORMAT__LOG_FORMAT_2) {
		return NULL;
	}
	return e;
}

static int settings_in(const Raftmq__Log__V1__QueueSettings *o,
		       struct q_settings *st)
{
	if (o == NULL) {
		return CONS_ECORRUPT; /* the leader always writes them */
	}
	if (o->overflow != RAFTMQ__LOG__V1__OVERFLOW__OVERFLOW_REJECT_PUBLISH &&
	    o->overflow != RAFTMQ__LOG__V1__OVERFLOW__OVERFLOW_DROP_HEAD) {
		return CONS_ECORRUPT;
	}
	st->ack_timeout_ms = o->ack_timeout_ms;
	st->max_deliveries = o->max_deliveries;
	st->dead_letter = o->dead_letter[0] != '\0' ? o->dead_letter : NULL;
	st->ttl_ms = o->ttl_ms;
	st->max_length = o->max_length;
	st->max_bytes = o->max_bytes;
	st->overflow = (uint8_t)o->overflow;
	st->dedup_window_ms = o->dedup_window_ms;
	return 0;
}

static int session_in(const Raftmq__Log__V1__Session *o, struct q_session *s)
{
	if (o == NULL) {
		return CONS_ECORRUPT;
	}
	s->node_id = o->node_id;
	s->epoch = o->epoch;
	s->session_id = o->session_id;
	return 0;
}

int cons__entry_command(const Raftmq__Log__V1__Command *pc, uint64_t now_ms,
			struct q_cmd *c)
{
	memset(c, 0, sizeof *c);
	c->now_ms = now_ms;
	switch (pc->kind_case) {
	case KIND(TICK):
		c->type = Q_CMD_TICK;
		return 0;
	case KIND(CREATE_QUEUE):
		c->type = Q_CMD_CREATE_QUEUE;
		c->u.queue.name = pc->create_queue->name;
		return settings_in(pc->create_queue->settings,
				   &c->u.queue.settings);
	case KIND(CONFIGURE_QUEUE):
		c->type = Q_CMD_CONFIGURE_QUEUE;
		c->u.queue.name = pc->configure_queue->name;
		c->u.queue.mask = pc->configure_queue->mask;
		if (c->u.queue.mask & ~(uint32_t)Q_SET_ALL) {
			return CONS_ECORRUPT;
		}
		return settings_in(pc->configure_queue->settings,
				   &c->u.queue.settings);
	case KIND(DELETE_QUEUE):
		c->type = Q_CMD_DELETE_QUEUE;
		c->u.queue.name = pc->delete_queue->name;
		return 0;
	case KIND(PURGE_QUEUE):
		c->type = Q_CMD_PURGE_QUEUE;
		c->u.queue.name = pc->purge_queue->name;
		return 0;
	case KIND(CREATE_TOPIC):
		c->type = Q_CMD_CREATE_TOPIC;
		c->u.topic.topic = pc->create_topic->name;
		c->u.topic.dedup_window_ms = pc->create_topic->dedup_window_ms;
		return 0;
	case KIND(DELETE_TOPIC):
		c->type = Q_CMD_DELETE_TOPIC;
		c->u.topic.topic = pc->delete_topic->name;
		return 0;
	case KIND(SUBSCRIBE):
		c->type = Q_CMD_SUBSCRIBE;
		c->u.topic.topic = pc->subscribe->topic;
		c->u.topic.subscription = pc->subscribe->subscription;
		return settings_in(pc->subscribe->settings,
				   &c->u.topic.settings);
	case KIND(UNSUBSCRIBE):
		c->type = Q_CMD_UNSUBSCRIBE;
		c->u.topic.topic = pc->unsubscribe->topic;
		c->u.topic.subscription = pc->unsubscribe->subscription;
		return 0;
	case KIND(PUBLISH): {
		const Raftmq__Log__V1__Publish *p = pc->publish;
		c->type = Q_CMD_PUBLISH;
		switch (p->target_case) {
		case RAFTMQ__LOG__V1__PUBLISH__TARGET_QUEUE:
			c->u.publish.queue = p->queue;
			break;
		case RAFTMQ__LOG__V1__PUBLISH__TARGET_TOPIC:
			c->u.publish.topic = p->topic;
			break;
		default:
			return CONS_ECORRUPT;
		}
		if (p->msg_id.len > 0) {
			c->u.publish.msg_id = (const char *)p->msg_id.data;
			c->u.publish.msg_id_len = p->msg_id.len;
		}
		c->u.publish.body =
			p->body.data != NULL ? (const void *)p->body.data : "";
		c->u.publish.body_len = p->body.len;
		c->u.publish.delay_ms = p->delay_ms;
		c->u.publish.ttl_ms = p->ttl_ms;
		return 0;
	}
	case KIND(ATTACH):
		c->type = Q_CMD_ATTACH;
		c->u.attach.queue = pc->attach->queue;
		c->u.attach.prefetch = pc->attach->prefetch;
		c->u.attach.credit = pc->attach->credit;
		return session_in(pc->attach->session, &c->u.attach.session);
	case KIND(DETACH):
		c->type = Q_CMD_DETACH;
		c->u.consumer.consumer = pc->detach->consumer;
		c->u.consumer.unseen = pc->detach->unseen;
		c->u.consumer.n_unseen = pc->detach->n_unseen;
		return 0;
	case KIND(CREDIT):
		c->type = Q_CMD_CREDIT;
		c->u.consumer.consumer = pc->credit->consumer;
		c->u.consumer.prefetch = pc->credit->prefetch;
		c->u.consumer.credit = pc->credit->credit;
		return 0;
	case KIND(ACK):
		c->type = Q_CMD_ACK;
		c->u.tags.consumer = pc->ack->consumer;
		c->u.tags.tags = pc->ack->tags;
		c->u.tags.n_tags = pc->ack->n_tags;
		return 0;
	case KIND(NACK):
		c->type = Q_CMD_NACK;
		c->u.tags.consumer = pc->nack->consumer;
		c->u.tags.tags = pc->nack->tags;
		c->u.tags.n_tags = pc->nack->n_tags;
		c->u.tags.ms = pc->nack->delay_ms;
		return 0;
	case KIND(RELEASE):
		c->type = Q_CMD_RELEASE;
		c->u.tags.consumer = pc->release->consumer;
		c->u.tags.tags = pc->release->tags;
		c->u.tags.n_tags = pc->release->n_tags;
		c->u.tags.unseen = pc->release->unseen;
		return 0;
	case KIND(EXTEND):
		c->type = Q_CMD_EXTEND;
		c->u.tags.consumer = pc->extend->consumer;
		c->u.tags.tags = pc->extend->tags;
		c->u.tags.n_tags = pc->extend->n_tags;
		c->u.tags.ms = pc->extend->timeout_ms;
		return 0;
	case KIND(SESSION_GONE):
		c->type = Q_CMD_SESSION_GONE;
		return session_in(pc->session_gone->session,
				  &c->u.session.session);
	case KIND(DETACH_STALE):
		c->type = Q_CMD_DETACH_STALE;
		c->u.session.session.node_id = pc->detach_stale->node_id;
		c->u.session.session.epoch = pc->detach_stale->epoch;
		return 0;
	case KIND(SET_MEMBER):
		return 1;
	default:
		return CONS_ECORRUPT;
	}
}
