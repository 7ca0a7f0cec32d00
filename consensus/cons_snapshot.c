/* Snapshots: the whole queue state, so the log can always be truncated
 * however slow the consumers are. With a body store (cons_bodies.c) the
 * state dump holds each body's key and checksum, not its bytes.
 *
 *   "RMQS"  u32 big-endian header length  SnapshotHeader  q_state dump
 *   [format 2: the tail, entries applied after the dump (cons_bgsnap.c)]
 *
 * The header (proto/log.proto) carries the format, the dump's length and
 * XXH3 hash, and the members' client addresses (consensus/ state). Restore
 * checks all of them before replacing anything: a truncated or corrupted
 * snapshot is refused with a sentence saying what is wrong, and the node's
 * current state is kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cons_int.h"

#define MAGIC "RMQS"

int cons__snapshot_header(const struct cons_fsm *f,
			  const struct cons_snaphdr *in,
			  struct raft_buffer *out)
{
	Raftmq__Log__V1__SnapshotHeader h;
	Raftmq__Log__V1__Member ms[CONS_MAX_NODES], *mp[CONS_MAX_NODES];
	size_t hlen, i;
	unsigned char *p;

	raftmq__log__v1__snapshot_header__init(&h);
	h.format =
		in->dump_index != 0 || in->tail_bytes != 0
			? RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_2
			: RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1;
	h.index = in->index;
	h.term = in->term;
	h.state_bytes = in->state_bytes;
	h.state_format = 1;
	h.state_xxh3 = in->state_xxh3;
	h.state_clock_ms = in->clock_ms;
	h.node_id = f->owner != NULL ? f->owner->id : 0;
	h.writer_version = (char *)(uintptr_t)RAFTMQ_VERSION;
	h.dump_index = in->dump_index;
	h.tail_bytes = in->tail_bytes;
	h.tail_entries = in->tail_entries;
	h.tail_xxh3 = in->tail_xxh3;
	for (i = 0; i < in->n_members; i++) {
		raftmq__log__v1__member__init(&ms[i]);
		ms[i].id = in->members[i].id;
		ms[i].client_address =
			(char *)(uintptr_t)in->members[i].client_address;
		mp[i] = &ms[i];
	}
	h.n_members = in->n_members;
	h.members = mp;
	hlen = raftmq__log__v1__snapshot_header__get_packed_size(&h);
	p = raft_malloc(8 + hlen);
	if (p == NULL) {
		return CONS_ENOMEM;
	}
	memcpy(p, MAGIC, 4);
	p[4] = (unsigned char)(hlen >> 24);
	p[5] = (unsigned char)(hlen >> 16);
	p[6] = (unsigned char)(hlen >> 8);
	p[7] = (unsigned char)hlen;
	raftmq__log__v1__snapshot_header__pack(&h, p + 8);
	out->base = p;
	out->len = 8 + hlen;
	return 0;
}

int cons__snapshot_encode(struct cons_fsm *f, struct raft_buffer *out)
{
	struct cons_snaphdr h;
	struct raft_buffer hb;
	void *dump;
	size_t dump_len;
	unsigned char *p;
	int rv;

	rv = q_state_dump_buf(f->state, &dump, &dump_len);
	if (rv != 0) {
		return rv == Q_ENOMEM ? CONS_ENOMEM : CONS_EIO;
	}
	memset(&h, 0, sizeof h);
	h.index = f->owner != NULL ? raft_last_applied(&f->owner->raft) : 0;
	h.term = f->owner != NULL ? raft_current_term(&f->owner->raft) : 0;
	h.state_bytes = dump_len;
	h.state_xxh3 = XXH3_64bits(dump, dump_len);
	h.clock_ms = q_state_now(f->state);
	h.members = f->members;
	h.n_members = f->n_members;
	rv = cons__snapshot_header(f, &h, &hb);
	if (rv != 0) {
		free(dump);
		return rv;
	}
	p = raft_malloc(hb.len + dump_len);
	if (p == NULL) {
		raft_free(hb.base);
		free(dump);
		return CONS_ENOMEM;
	}
	memcpy(p, hb.base, hb.len);
	memcpy(p + hb.len, dump, dump_len);
	raft_free(hb.base);
	free(dump);
	out->base = p;
	out->len = hb.len + dump_len;
	f->snapshot_bytes = out->len;
	f->snapshot_index = h.index;
	return 0;
}

/* Applies the tail's n entries (u32 LE length + entry each, exactly len
 * bytes) to s. SetMember commands go into ms[0..*nm). */
static int replay_tail(struct cons_fsm *f, struct q_state *s,
		       const unsigned char *p, uint64_t len, uint32_t n,
		       uint64_t *stamp, struct cons_member_addr *ms, size_t *nm,
		       char *errmsg, size_t errlen)
{
	uint64_t off = 0;
	uint32_t k;
	for (k = 0; k < n; k++) {
		uint64_t elen;
		int rv;
		if (len - off < 4) {
			break;
		}
		elen = (uint64_t)p[off] | (uint64_t)p[off + 1] << 8 |
		       (uint64_t)p[off + 2] << 16 | (uint64_t)p[off + 3] << 24;
		off += 4;
		if (elen > len - off) {
			break;
		}
		rv = cons__fsm_replay(f, s, p + off, (size_t)elen, stamp, ms,
				      nm);
		if (rv != 0) {
			snprintf(errmsg, errlen,
				 "snapshot tail entry %u of %u: %s", k + 1, n,
				 rv == CONS_ENOMEM ? "out of memory"
						   : "cannot apply it");
			return rv;
		}
		off += elen;
	}
	if (k != n || off != len) {
		snprintf(errmsg, errlen,
			 "snapshot tail malformed (%u of %u entries, %llu of "
			 "%llu bytes)",
			 k, n, (unsigned long long)off,
			 (unsigned long long)len);
		return CONS_ECORRUPT;
	}
	return 0;
}

int cons__snapshot_decode(struct cons_fsm *f, const void *buf, size_t len,
			  char *errmsg, size_t errlen)
{
	const unsigned char *p = buf;
	Raftmq__Log__V1__SnapshotHeader *h = NULL;
	struct q_state *s = NULL;
	struct cons_member_addr ms[CONS_MAX_NODES];
	const unsigned char *tail;
	uint64_t stamp;
	size_t hlen, i, nm;
	int rv = CONS_ECORRUPT;

	if (len < 8 || memcmp(p, MAGIC, 4) != 0) {
		snprintf(errmsg, errlen, "not a raftmq snapshot (bad magic)");
		goto out;
	}
	hlen = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 |
	       (size_t)p[7];
	if (hlen > len - 8) {
		snprintf(errmsg, errlen, "truncated snapshot header");
		goto out;
	}
	h = raftmq__log__v1__snapshot_header__unpack(NULL, hlen, p + 8);
	if (h == NULL) {
		snprintf(errmsg, errlen, "undecodable snapshot header");
		goto out;
	}
	if ((h->format != RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1 &&
	     h->format !=
		     RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_2) ||
	    h->state_format != 1) {
		snprintf(errmsg, errlen,
			 "snapshot format %u / state format %u unknown to this "
			 "version (written by %s)",
			 h->format, h->state_format, h->writer_version);
		goto out;
	}
	if (h->format == RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1 &&
	    h->tail_bytes != 0) {
		snprintf(errmsg, errlen, "format 1 snapshot with a tail");
		goto out;
	}
	if (h->state_bytes > len - 8 - hlen ||
	    h->tail_bytes != len - 8 - hlen - h->state_bytes) {
		snprintf(errmsg, errlen,
			 "snapshot truncated: %llu state and %llu tail bytes "
			 "expected, %zu present",
			 (unsigned long long)h->state_bytes,
			 (unsigned long long)h->tail_bytes, len - 8 - hlen);
		goto out;
	}
	if (XXH3_64bits(p + 8 + hlen, h->state_bytes) != h->state_xxh3) {
		snprintf(errmsg, errlen,
			 "snapshot checksum mismatch (corrupt)");
		goto out;
	}
	tail = p + 8 + hlen + h->state_bytes;
	if (h->tail_bytes > 0 &&
	    XXH3_64bits(tail, h->tail_bytes) != h->tail_xxh3) {
		snprintf(errmsg, errlen,
			 "snapshot tail checksum mismatch (corrupt)");
		goto out;
	}
	s = q_state_new(&f->qopts);
	if (s == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		rv = CONS_ENOMEM;
		goto out;
	}
	rv = q_state_load(s, p + 8 + hlen, h->state_bytes);
	/* A format 1 dump put its bodies (migration): write them while the
	 * snapshot's bytes are here. */
	cons__bodies_flush(&f->bodies);
	if (rv != 0) {
		snprintf(errmsg, errlen, "queue state in snapshot: %s",
			 q_strerror(rv));
		rv = rv == Q_ENOMEM ? CONS_ENOMEM : CONS_ECORRUPT;
		q_state_free(s);
		/* The load's undo dropped keys the kept state may hold. */
		cons__bodies_replace(&f->bodies, NULL, f->state);
		goto out;
	}
	/* Format 2: the entries applied after the dump, in order, without
	 * a sink (nobody waits for their deliveries) and with the members
	 * they set collected apart until everything has worked. */
	stamp = q_state_now(s);
	nm = 0;
	for (i = 0; i < h->n_members && nm < CONS_MAX_NODES; i++) {
		ms[nm].id = h->members[i]->id;
		snprintf(ms[nm].client_address, sizeof ms[nm].client_address,
			 "%s", h->members[i]->client_address);
		nm++;
	}
	rv = replay_tail(f, s, tail, h->tail_bytes, h->tail_entries, &stamp, ms,
			 &nm, errmsg, errlen);
	if (rv != 0) {
		q_state_free(s);
		cons__bodies_replace(&f->bodies, NULL, f->state);
		goto out;
	}
	/* Everything checked: replace. */
	cons__bodies_replace(&f->bodies, f->state, s);
	q_state_set_sink(s, f->sink);
	q_state_free(f->state);
	f->state = s;
	f->last_stamp = stamp;
	for (i = 0; i < nm; i++) {
		cons__fsm_set_member(f, ms[i].id, ms[i].client_address);
	}
	f->snapshot_bytes = len;
	f->snapshot_index = h->index;
	rv = 0;
out:
	if (h != NULL) {
		raftmq__log__v1__snapshot_header__free_unpacked(h, NULL);
	}
	return rv;
}
