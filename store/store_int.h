/* store/ internals: shared between the files of store/, never included
 * outside it. The layout of the files on disk is in store_fmt.c (and in
 * docs/architecture.md, "The body store"). */
#ifndef RAFTMQ_STORE_INT_H
#define RAFTMQ_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* ---- On-disk format (store_fmt.c) ---- */

#define STORE__SEG_MAGIC UINT64_C(0x3147455342514d52) /* "RMQBSEG1" */
#define STORE__IDX_MAGIC UINT64_C(0x3158444942514d52) /* "RMQBIDX1" */
#define STORE__REC_MAGIC UINT32_C(0x31434552)	      /* "REC1" */
#define STORE__VERSION 1u
#define STORE__SEG_HDR 48u /* segment file header */
#define STORE__REC_HDR 32u /* record header */
#define STORE__IDX_HDR 48u /* index file header */
#define STORE__IDX_ENT 16u /* one index file entry */
#define STORE__SEAL_BODY 16u

/* Record types. */
enum { STORE__REC_BODY = 1, STORE__REC_SEAL = 2 };

/* Bits of a segment's kind (its header). A segment is written by one of two
 * streams: the main one (keys above every key stored, the usual case) or
 * the fill one (lower keys: bodies fetched from a peer). */
enum {
	STORE__KIND_FILL = 1u << 0,
	STORE__KIND_COMPACTED = 1u << 1,
	STORE__KIND_ALL = (1u << 2) - 1,
};

struct store__seg_hdr {
	uint32_t kind;
	uint64_t id;
	uint64_t salt;
};

/* A decoded record header. */
struct store__rec_hdr {
	uint32_t type;
	uint32_t id_len;
	uint32_t body_len;
	uint64_t key;
	uint64_t data_hash;
};

void store__put_le32(unsigned char *p, uint32_t v);
void store__put_le64(unsigned char *p, uint64_t v);
uint32_t store__get_le32(const unsigned char *p);
uint64_t store__get_le64(const unsigned char *p);

uint32_t store__fold32(uint64_t h);
uint64_t store__data_hash(const void *id, size_t id_len, const void *body,
			  size_t len);
void store__seg_hdr_encode(unsigned char out[STORE__SEG_HDR],
			   const struct store__seg_hdr *h);
bool store__seg_hdr_decode(const unsigned char in[STORE__SEG_HDR],
			   struct store__seg_hdr *h);
void store__rec_hdr_encode(unsigned char out[STORE__REC_HDR],
			   const struct store__rec_hdr *h, uint64_t salt);
/* Whether the header is well formed (magic, type, its hash under salt). */
bool store__rec_hdr_decode(const unsigned char in[STORE__REC_HDR],
			   uint64_t salt, struct store__rec_hdr *h);

/* ---- In-memory index ---- */

/* One record of a segment: 16 bytes. lenbits holds the record's length on
 * disk (header included) in its low 30 bits, the claimed ("live") bit and
 * the compaction's keep bit above, so the reference bits move with the
 * entry and cost no memory of their own. */
struct store__ent {
	uint64_t key;
	uint32_t off;
	uint32_t lenbits;
};

#define STORE__LEN_MASK ((UINT32_C(1) << 30) - 1)
#define STORE__LIVE (UINT32_C(1) << 31)
#define STORE__KEEP (UINT32_C(1) << 30)

static inline uint32_t store__ent_len(const struct store__ent *e)
{
	return e->lenbits & STORE__LEN_MASK;
}

/* One segment file (<id>.seg) and its index file (<id>.idx). */
struct store_seg {
	uint64_t id;
	uint64_t salt;		 /* seeds its records' header hashes */
	uint32_t kind;		 /* STORE__KIND_* */
	int fd;			 /* owned; O_RDWR */
	uint64_t size;		 /* bytes of the file that hold records */
	uint64_t idx_bytes;	 /* size of its index file (0: none yet) */
	struct store__ent *ents; /* owned; sorted by key */
	uint32_t n, cap;
	uint64_t min_key, max_key; /* a superset of its keys' range */
	uint64_t live_records, live_bytes;
	/* s->epoch at the last drop of one of its records: gc(token) may
	 * remove its dead records only if drop_epoch <= token. */
	uint64_t drop_epoch;
	bool sealed;	  /* ends with a seal record; read-only */
	bool dirty;	  /* written since the last sync (in s->dirty) */
	bool idx_pending; /* sealed, its <id>.idx not yet durable */
	bool idx_tmp;	  /* <id>.idx.tmp written (idx_pending) */
	bool tail_dirty;  /* a failed write left bytes past size */
	bool compacting;  /* a source of the compaction in progress */
};

/* Sealed segments of one stream, sorted by min_key, with the running
 * maximum of max_key so a lookup walks back only over segments whose range
 * may hold the key (one for the main stream, whose ranges are disjoint). */
struct store_list {
	struct store_seg **v; /* owned array of segments owned by the store */
	uint64_t *pmax;	      /* owned; pmax[i] = max(v[0..i]->max_key) */
	size_t n, cap;
};

/* A set of u64 keys (open addressing, linear probing, UINT64_MAX empty). */
struct store_kset {
	uint64_t *slots; /* owned */
	size_t cap;	 /* a power of two, or 0 */
	size_t n;
};

/* The compaction in progress (store_gc.c). */
struct store_compaction {
	bool active;
	uint64_t token;
	struct store_seg *out;	/* owned until swapped in; file <id>.seg.tmp */
	struct store_seg **src; /* owned array; the sources, in list order */
	uint32_t *src_first;	/* owned; first output entry of each source */
	size_t nsrc;
	size_t cur_src; /* copy cursor: source and entry */
	uint32_t cur_ent;
	unsigned char *wbuf; /* owned output buffer */
	size_t wlen, wcap;
	/* Keys claimed again in a source after the cursor passed them: copied
	 * at the end (owned array). */
	uint64_t *late;
	size_t nlate, late_cap;
};

/* A segment being deleted: renamed to <id>.seg.del and truncated a budget
 * at a time by store_gc() (unlinking 64 MiB at once took 28 ms here; 8 MiB
 * of truncation takes 3 ms), then unlinked. */
struct store_doomed {
	int fd; /* owned */
	uint64_t id;
	uint64_t size;
};

struct store_window {
	const struct store_seg *seg; /* borrowed; NULL = unused */
	uint64_t off, end;
};

#define STORE__WINDOWS 16

struct store {
	char *dir; /* owned */
	int dirfd; /* owned; holds the flock */
	uint64_t segment_bytes;
	void (*report_cb)(void *data, const char *msg);
	void *report_data;
	int (*fault_cb)(void *data, enum store_io io, size_t *len);
	void *fault_data;

	uint64_t next_id; /* for the next segment file */
	uint64_t max_key; /* highest key stored; 0 with none */
	bool has_keys;
	struct store_seg *active; /* main stream, or NULL */
	struct store_seg *fill;	  /* fill stream, or NULL */
	struct store_list main_list, fill_list;

	/* Segments written since the last sync (owned array, borrowed ptrs). */
	struct store_seg **dirty;
	size_t ndirty, dirty_cap;
	bool dir_dirty; /* a file was created, renamed or removed */

	uint64_t epoch; /* store_mark() returns it and increments it */

	struct store_kset missing;
	uint64_t
		*missing_sorted; /* owned; a sorted view, may hold stale keys */
	size_t nmissing_sorted, missing_sorted_cap;
	bool missing_sorted_stale; /* keys were added since it was built */

	struct store_compaction cpt;
	struct store_doomed *doomed; /* owned array */
	size_t ndoomed, doomed_cap;
	struct store_window windows[STORE__WINDOWS];
	unsigned next_window;

	unsigned char *rbuf; /* owned read buffer (store_get's records) */
	/* The read window (store_seg.c, store__read): bytes [win_off,
	 * win_off + win_len) of segment win_seg read in one pread when reads
	 * go in file order (a queue's head), so that the records after it
	 * cost no system call. Owned, STORE__WIN_BYTES. Where the last read
	 * ended, to tell file order. */
	unsigned char *win;
	uint64_t win_seg, win_off, win_len;
	uint64_t last_seg, last_end;
	size_t rcap;

	struct store_stats st; /* counters; the sizes are computed on demand */
	char errmsg[256];
};

/* ---- Helpers shared between files ---- */

/* Formats into s->errmsg; returns code. */
int store__err(struct store *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like store__err() for a failed system call: appends strerror(errnum) and
 * maps ENOSPC/EDQUOT to STORE_ENOSPC, anything else to STORE_EIO. */
int store__syserr(struct store *s, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Calls report_cb with a formatted sentence (and keeps it in errmsg). */
void store__report(struct store *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* I/O through the fault hook. Return 0 or an errno value. pwritev takes at
 * most STORE__IOV_MAX buffers. */
#define STORE__IOV_MAX 1024
/* The read window's size (store__read). */
#define STORE__WIN_BYTES (256u * 1024u)
/* A write to g at off: forget the read window if it covers off. */
void store__win_written(struct store *s, const struct store_seg *g,
			uint64_t off);
int store__pwritev(struct store *s, int fd, const void *const *bufs,
		   const size_t *lens, int n, uint64_t off);
int store__pwrite(struct store *s, int fd, const void *buf, size_t len,
		  uint64_t off);
int store__fsync(struct store *s, int fd, bool data_only);

/* File names: "<dir>/<id as 16 hex digits><suffix>" into buf. */
void store__path(const struct store *s, uint64_t id, const char *suffix,
		 char *buf, size_t len);
#define STORE__PATH_MAX 4096

/* Segments (store_seg.c). */
struct store_seg *store__seg_new(void);
void store__seg_free(struct store_seg *g);
int store__seg_reserve(struct store_seg *g, uint32_t extra);
/* Index of key in g->ents, or -1. */
long store__seg_find(const struct store_seg *g, uint64_t key);
/* Inserts (or, for an existing key, replaces) an entry, keeping ents sorted.
 * Room must have been reserved. */
void store__seg_insert(struct store_seg *g, const struct store__ent *e);
void store__seg_remove(struct store_seg *g, uint32_t i);
void store__seg_range(struct store_seg *g); /* recomputes min/max */
/* Creates <id><suffix> with a fresh header (kind); g->fd open. */
int store__seg_create(struct store *s, struct store_seg *g, uint32_t kind,
		      const char *suffix);
/* Appends the seal record and writes <id>.idx.tmp (not yet fsynced). */
int store__seg_seal(struct store *s, struct store_seg *g);
/* Writes g's index to <id>.idx.tmp (g->idx_tmp). */
int store__idx_write(struct store *s, struct store_seg *g);
/* Makes g's index durable: writes the tmp file if needed, fsyncs it and
 * renames it to <id>.idx (the directory's fsync is the caller's). */
int store__idx_commit(struct store *s, struct store_seg *g);
/* Sorts entries by key, one per key (the last written). */
void store__seg_sort(struct store_seg *g);
/* Loads <id>.idx into g (g->fd, size, salt, kind set). false if the file is
 * missing or does not match the segment (the caller scans instead). */
int store__idx_load(struct store *s, struct store_seg *g, bool *ok);
/* Scans g's file from its header on: fills ents, finds a seal record, and
 * truncates a torn tail of an unsealed segment. */
int store__seg_scan(struct store *s, struct store_seg *g);
void store__mark_dirty(struct store *s, struct store_seg *g);
void store__dirty_forget(struct store *s, struct store_seg *g);
/* Reads and verifies entry i of g into s->rbuf; fills *out. */
int store__read(struct store *s, struct store_seg *g, uint32_t i,
		struct store_rec *out);

/* Lists and lookup (store.c). store__list_add() cannot fail after
 * store__list_reserve(l, 1). */
int store__list_reserve(struct store_list *l, size_t extra);
int store__list_add(struct store_list *l, struct store_seg *g);
void store__list_del(struct store_list *l, struct store_seg *g);
void store__list_free(struct store_list *l);
bool store__find(const struct store *s, uint64_t key, struct store_seg **g,
		 uint32_t *i);
/* Forgets entry i of g (a corrupt record): if it was claimed, its key
 * becomes missing. */
void store__forget(struct store *s, struct store_seg *g, uint32_t i);
/* A record that failed its checksum on a read: reported with the file and
 * the offset, counted, and forgotten. */
void store__bad_record(struct store *s, struct store_seg *g, uint32_t i);
/* Deletes g (no longer in any list): its index file goes, the segment is
 * renamed to <id>.seg.del for store_gc() to truncate and unlink; g is
 * freed. */
void store__seg_delete(struct store *s, struct store_seg *g);
/* Closes and unlinks every <id>.seg.del still open. */
void store__doomed_drop(struct store *s);
void store__windows_forget(struct store *s, const struct store_seg *g);

/* Key sets and references (store_ref.c). */
bool store__kset_has(const struct store_kset *k, uint64_t key);
int store__kset_add(struct store_kset *k, uint64_t key);
bool store__kset_del(struct store_kset *k, uint64_t key);
void store__kset_free(struct store_kset *k);
/* Sets the live bit of entry i of g (and keep, during a compaction). */
void store__claim_ent(struct store *s, struct store_seg *g, uint32_t i);

/* Compaction and deletion (store_gc.c). claimed/dropped: a record of a
 * compaction source changed (store_ref.c calls it). */
void store__compaction_abort(struct store *s);
void store__compaction_touch(struct store *s, struct store_seg *g, uint32_t i,
			     bool claimed);

#endif
