/* Snapshots: the whole queue state, bodies included, so the log can always
 * be truncated however slow the consumers are.
 *
 *   "RMQS"  u32 big-endian header length  SnapshotHeader  q_state dump
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

int cons__snapshot_encode(struct cons_fsm *f, struct raft_buffer *out)
{
	Raftmq__Log__V1__SnapshotHeader h;
	Raftmq__Log__V1__Member ms[CONS_MAX_NODES], *mp[CONS_MAX_NODES];
	void *dump;
	size_t dump_len, hlen, i;
	unsigned char *p;
	int rv;

	rv = q_state_dump_buf(f->state, &dump, &dump_len);
	if (rv != 0) {
		return rv == Q_ENOMEM ? CONS_ENOMEM : CONS_EIO;
	}
	raftmq__log__v1__snapshot_header__init(&h);
	h.format = RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1;
	h.index = f->owner != NULL ? raft_last_applied(&f->owner->raft) : 0;
	h.term = f->owner != NULL ? raft_current_term(&f->owner->raft) : 0;
	h.state_bytes = dump_len;
	h.state_format = 1;
	h.state_xxh3 = XXH3_64bits(dump, dump_len);
	h.state_clock_ms = q_state_now(f->state);
	h.node_id = f->owner != NULL ? f->owner->id : 0;
	h.writer_version = (char *)(uintptr_t)RAFTMQ_VERSION;
	for (i = 0; i < f->n_members; i++) {
		raftmq__log__v1__member__init(&ms[i]);
		ms[i].id = f->members[i].id;
		ms[i].client_address = f->members[i].client_address;
		mp[i] = &ms[i];
	}
	h.n_members = f->n_members;
	h.members = mp;
	hlen = raftmq__log__v1__snapshot_header__get_packed_size(&h);
	p = raft_malloc(8 + hlen + dump_len);
	if (p == NULL) {
		free(dump);
		return CONS_ENOMEM;
	}
	memcpy(p, MAGIC, 4);
	p[4] = (unsigned char)(hlen >> 24);
	p[5] = (unsigned char)(hlen >> 16);
	p[6] = (unsigned char)(hlen >> 8);
	p[7] = (unsigned char)hlen;
	raftmq__log__v1__snapshot_header__pack(&h, p + 8);
	memcpy(p + 8 + hlen, dump, dump_len);
	free(dump);
	out->base = p;
	out->len = 8 + hlen + dump_len;
	f->snapshot_bytes = out->len;
	f->snapshot_index = h.index;
	return 0;
}

int cons__snapshot_decode(struct cons_fsm *f, const void *buf, size_t len,
			  char *errmsg, size_t errlen)
{
	const unsigned char *p = buf;
	Raftmq__Log__V1__SnapshotHeader *h = NULL;
	struct q_state *s = NULL;
	size_t hlen, i;
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
	if (h->format != RAFTMQ__LOG__V1__SNAPSHOT_FORMAT__SNAPSHOT_FORMAT_1 ||
	    h->state_format != 1) {
		snprintf(errmsg, errlen,
			 "snapshot format %u / state format %u unknown to this "
			 "version (written by %s)",
			 h->format, h->state_format, h->writer_version);
		goto out;
	}
	if (h->state_bytes != len - 8 - hlen) {
		snprintf(errmsg, errlen,
			 "snapshot truncated: %llu state bytes expected, %zu "
			 "present",
			 (unsigned long long)h->state_bytes, len - 8 - hlen);
		goto out;
	}
	if (XXH3_64bits(p + 8 + hlen, h->state_bytes) != h->state_xxh3) {
		snprintf(errmsg, errlen,
			 "snapshot checksum mismatch (corrupt)");
		goto out;
	}
	s = q_state_new(&f->qopts);
	if (s == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		rv = CONS_ENOMEM;
		goto out;
	}
	rv = q_state_load(s, p + 8 + hlen, h->state_bytes);
	if (rv != 0) {
		snprintf(errmsg, errlen, "queue state in snapshot: %s",
			 q_strerror(rv));
		rv = rv == Q_ENOMEM ? CONS_ENOMEM : CONS_ECORRUPT;
		q_state_free(s);
		goto out;
	}
	/* Everything checked: replace. */
	q_state_set_sink(s, f->sink);
	q_state_free(f->state);
	f->state = s;
	f->last_stamp = q_state_now(s);
	for (i = 0; i < h->n_members; i++) {
		cons__fsm_set_member(f, h->members[i]->id,
				     h->members[i]->client_address);
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
