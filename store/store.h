/* store/: the on-disk body store of one state machine.
 *
 * Message bodies live here instead of in the heap; the replicated state keeps
 * per message only an index entry and names a body by its key (the seq of the
 * publish that stored it). Every node has its own store, written at apply on
 * every replica, so the files are not replicated and need not be identical
 * between nodes; only the key and the checksum (store_put()'s *sum) are.
 *
 * Happy path: store_put() appends a record to the active segment file with
 * one pwritev() and no fsync; store_get() reads it back with one pread() and
 * verifies it. store_sync() is the durability point (the caller takes it
 * before a Raft snapshot is written). References: the caller claims the keys
 * its state holds and drops them when the state lets go; store_mark() and
 * store_gc() then delete or compact what was dropped before a mark, once the
 * snapshot taken at that mark is on disk.
 *
 * Failure modes: a full disk (STORE_ENOSPC) or an I/O error (STORE_EIO)
 * leaves the store as it was before the failed call; a record that fails
 * its checksum is reported (store_config.report_cb, with the file and the
 * offset) and treated as missing, never returned. Docs: "The body store" in
 * docs/architecture.md (the on-disk format and the recovery rules).
 *
 * Not thread-safe: one store is used by one thread (the node's loop). Plain
 * C11 and POSIX file I/O; no libuv, raft or protobuf here. */
#ifndef RAFTMQ_STORE_H
#define RAFTMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Error codes (0 is success). Keep in step with store_strerror(). After an
 * error, store_errmsg() says what failed, with the file, the offset and the
 * system's errno text where there is one. */
enum {
	STORE_OK = 0,
	STORE_ENOMEM = 1,    /* allocation failed; store unchanged */
	STORE_EINVAL = 2,    /* bad argument (key UINT64_MAX, sizes, config) */
	STORE_ENOTFOUND = 3, /* no record with that key */
	STORE_EEXIST = 4,    /* the key holds other bytes */
	STORE_ECORRUPT = 5,  /* the record failed its checksum: now missing */
	STORE_EIO = 6,	     /* an I/O call failed (errno in store_errmsg) */
	STORE_ENOSPC = 7,    /* the disk is full (ENOSPC or EDQUOT) */
	STORE_EBUSY = 8,     /* the directory is open in another store */
	STORE_ETOOBIG = 9,   /* id or body over STORE_MAX_ID / _BODY */
	STORE_ECODES_COUNT
};

const char *store_strerror(int code);

/* Limits of one record. A body is at most 64 MiB in raftmq (the largest log
 * entry); the store's own bound comes from the 30-bit record length of its
 * in-memory index. */
#define STORE_MAX_ID 65535u
#define STORE_MAX_BODY (1024u * 1024u * 1024u - 65536u - 64u)

/* Defaults, and the bounds store_open() accepts. */
#define STORE_SEGMENT_BYTES_DEFAULT (64u * 1024u * 1024u)
#define STORE_SEGMENT_BYTES_MIN 4096u
#define STORE_SEGMENT_BYTES_MAX (1024u * 1024u * 1024u)

/* What a store_config.fault_cb hook is asked about. */
enum store_io {
	STORE_IO_WRITE = 1, /* a write of *len bytes to a store file */
	STORE_IO_SYNC = 2,  /* an fsync/fdatasync (*len is 0) */
};

struct store_config {
	/* The store's directory, created (with its parents) if missing.
	 * Borrowed: copied by store_open(). */
	const char *dir;
	/* A segment is sealed once it holds this many bytes; 0 = the default
	 * (64 MiB). Between STORE_SEGMENT_BYTES_MIN and _MAX. */
	uint64_t segment_bytes;
	/* Called with one sentence per problem found on disk that the store
	 * worked around (a bad record, a torn tail truncated, an index file
	 * rebuilt), during store_open() and later reads. Optional. `msg` is
	 * borrowed, valid only during the call. */
	void (*report_cb)(void *data, const char *msg);
	void *report_data; /* borrowed: passed to report_cb */
	/* Test hook, NULL in production: called before every write and sync of
	 * a store file. Returning an errno value (ENOSPC, EIO) makes the call
	 * fail with it after writing only the first *len bytes (the hook may
	 * lower *len to simulate a short write); returning 0 lets it run. */
	int (*fault_cb)(void *data, enum store_io io, size_t *len);
	void *fault_data; /* borrowed: passed to fault_cb */
};

/* Opens (creating if needed) the store in c->dir and recovers it: sealed
 * segments load their index file (a missing or corrupt one is rebuilt by
 * scanning the segment), the last active segment is scanned and a torn tail
 * truncated away. Every record starts unclaimed. Takes an exclusive flock on
 * the directory (STORE_EBUSY if another store holds it).
 *
 * On success *out is a new store, owned by the caller (store_close()). On
 * failure *out is untouched and err (errlen bytes, may be NULL) says why.
 * Errors: STORE_EINVAL, STORE_ENOMEM, STORE_EIO, STORE_ENOSPC, STORE_EBUSY. */
int store_open(const struct store_config *c, struct store **out, char *err,
	       size_t errlen);

/* Closes the files and frees the store. No sync: call store_sync() first to
 * make the last puts durable. NULL is a no-op. */
void store_close(struct store *s);

/* The last error's sentence (file, offset, errno text). Owned by the store,
 * valid until the next call on it. */
const char *store_errmsg(const struct store *s);

/* Appends the record (key, id, body) with one buffered pwritev() and no
 * fsync, and claims the key. id and body are borrowed (read during the call
 * only); id may be NULL when id_len is 0, body when len is 0. key must not
 * be UINT64_MAX.
 *
 * A key already stored: the same id and body -> 0 and the key is claimed
 * (a replay after a restart puts again what the store already has); other
 * bytes -> STORE_EEXIST. Keys are expected mostly in increasing order; a
 * lower key (a body fetched from a peer) goes to a second active segment and
 * is found like any other.
 *
 * *sum (may be NULL) gets the record's checksum, a pure function of id and
 * body, replicated in the queue state:
 *     sum = fold32(XXH3_64bits(le32(id_len) || id || body)),
 *     fold32(h) = (uint32_t)(h >> 32) ^ (uint32_t)h,
 * XXH3-64 with the default secret and seed 0 (xxhash 0.8).
 *
 * Errors (store unchanged, the record not stored): STORE_EINVAL,
 * STORE_ETOOBIG, STORE_EEXIST, STORE_ENOMEM, STORE_ENOSPC, STORE_EIO. */
int store_put(struct store *s, uint64_t key, const void *id, size_t id_len,
	      const void *body, size_t len, uint32_t *sum);

/* One record of store_put_batch(); pointers borrowed for the call. */
struct store_put_rec {
	uint64_t key;
	const void *id;
	size_t id_len;
	const void *body;
	size_t len;
};

/* Puts r[0..n) in order, each as store_put() would (sums are not returned:
 * store_sum() gives them), but writes each run of new keys in increasing
 * order (the records of one Raft log entry) with one pwritev(), not one
 * per record: a log entry of a thousand small bodies is one system call.
 * Stops at the first failure: *done (may be NULL) records, a prefix, were
 * put, and the error is returned (the store as store_put() leaves it on
 * that error). */
int store_put_batch(struct store *s, const struct store_put_rec *r, size_t n,
		    size_t *done);

/* The checksum store_put() gives for these bytes, computed alone (for a
 * body that comes from a peer, or a test). id and body are borrowed. */
uint32_t store_sum(const void *id, size_t id_len, const void *body, size_t len);

/* A record read back by store_get(). */
struct store_rec {
	uint64_t key;
	const void *id; /* borrowed from the store: valid until the next call */
	size_t id_len;
	const void *body; /* borrowed from the store: likewise */
	size_t len;
	uint32_t sum; /* as store_put() gave it */
	bool ahead;   /* store_get(): inside a store_prefetch() window */
};

/* Reads the record of key into *out and verifies its checksums. out->id and
 * out->body point into a buffer of the store, valid until the next call on
 * this store (any call). Errors: STORE_ENOTFOUND; STORE_ECORRUPT (reported
 * with the file and offset; the record is removed from the index, so the
 * key is then missing, and counted by store_missing() if claimed);
 * STORE_ENOMEM; STORE_EIO (a failed read; the record stays). */
int store_get(struct store *s, uint64_t key, struct store_rec *out);

/* Whether the index holds key (no disk access, no verification). */
bool store_has(const struct store *s, uint64_t key);

/* Read-ahead hint: the next reads will be key and the records written after
 * it (a queue's head). Starts the kernel's read-ahead (posix_fadvise
 * WILLNEED) of `bytes` from key's record on, across the following segments;
 * later store_get() calls inside that window count as readahead_hits. A key
 * not stored is ignored. Remembers the last 16 windows. */
void store_prefetch(struct store *s, uint64_t key, uint64_t bytes);

/* Reference tracking. After store_open() every record is unclaimed; the
 * caller claims the keys its state references (loading a snapshot, and
 * store_put() claims what it puts) and drops those the state no longer
 * references. A claimed key the store does not have is *missing*
 * (store_missing()); dropping it forgets it. Both are O(log n) and do not
 * touch the disk. store_claim() fails only with STORE_ENOMEM (a missing key
 * it could not record) or STORE_EINVAL (key UINT64_MAX). */
int store_claim(struct store *s, uint64_t key);
void store_drop(struct store *s, uint64_t key);

/* Durability point: fdatasync every segment written since the last sync,
 * fsync and rename the index files of segments sealed since, and fsync the
 * directory if a file was created, renamed or removed, so that after a
 * crash every record put before this call is found again. Errors:
 * STORE_EIO, STORE_ENOSPC (nothing is lost: the next sync retries). */
int store_sync(struct store *s);

/* Starts the kernel's writeback of every segment written since the last
 * store_sync() (sync_file_range(SYNC_FILE_RANGE_WRITE): it does not wait
 * for the disk), so that the next store_sync() finds little left to write
 * and stalls its caller less. No durability promise by itself; errors are
 * ignored (store_sync() reports them). */
void store_writeback(struct store *s);

/* The same durability for the records, from a forked child of the store's
 * process (a background snapshot): fdatasync every segment written since
 * the last store_sync() and fsync the directory, and nothing else: no index
 * file is written or renamed and the dirty list is kept, so the parent's
 * store stays as it was (its own next store_sync() syncs again, cheaply).
 * After a crash, a sealed segment whose index file was not committed is
 * scanned by store_open() instead. Errors: STORE_EIO, STORE_ENOSPC. */
int store_sync_data(struct store *s);

/* Deferred deletion. store_mark() returns a token; store_gc(s, token, ...)
 * deletes or compacts away only records that were dropped, or never claimed
 * since store_open(), before that mark. Take the mark when the state is
 * snapshotted (its references claimed) and call gc once that snapshot is
 * persisted, so a crash never loses a body that the last persisted snapshot
 * or the Raft log after it needs. Tokens are valid only for this open
 * store; call gc with non-decreasing tokens (a lower one than the last
 * abandons a compaction in progress and is otherwise applied as given).
 *
 * gc deletes sealed segments whose records are all dead and compacts sealed
 * segments whose records are mostly (>= half their bytes) dead: the live
 * records of one or more such segments are copied into a new segment, which
 * is written, fsynced and renamed into place before the old files are
 * unlinked; a crash at any point leaves a readable store, at worst with a
 * record in two files. budget_bytes bounds the work of one call (bytes read
 * and written; a deleted segment counts 1 MiB): call it again while it
 * returns 1 (more to do); 0 means done for this token. Errors (negative
 * codes, -STORE_EIO / -STORE_ENOSPC / -STORE_ENOMEM): the compaction in
 * progress is abandoned and its partial output removed; the store is
 * unchanged and readable. */
uint64_t store_mark(struct store *s);
int store_gc(struct store *s, uint64_t token, uint64_t budget_bytes);

/* Claimed keys the store does not have (a follower after installing a
 * snapshot lacks the bodies, which come from a peer). store_missing_next()
 * gives the smallest missing key >= from (0 and *key), or STORE_ENOTFOUND
 * (or STORE_ENOMEM: it sorts the set again after claims). Iterate with
 * from = *key + 1; puts of missing keys during the walk are fine. */
uint64_t store_missing(const struct store *s);
int store_missing_next(struct store *s, uint64_t from, uint64_t *key);
/* Whether key is claimed and absent: a body fetched from a peer is put only
 * if it still is (the state may have dropped it meanwhile). */
bool store_is_missing(const struct store *s, uint64_t key);

struct store_stats {
	uint64_t disk_bytes;	   /* segment and index files */
	uint64_t live_bytes;	   /* records claimed (header included) */
	uint64_t live_records;	   /* claimed keys the store has */
	uint64_t records;	   /* keys in the index */
	uint64_t segments;	   /* segment files */
	uint64_t missing;	   /* claimed keys the store lacks */
	uint64_t index_bytes;	   /* memory of the in-memory index */
	uint64_t puts;		   /* store_put() calls that wrote a record */
	uint64_t gets;		   /* store_get() calls that returned one */
	uint64_t readahead_hits;   /* gets inside a store_prefetch() window */
	uint64_t compactions;	   /* compactions completed */
	uint64_t compacted_bytes;  /* bytes copied by compactions */
	uint64_t deleted_segments; /* segment files removed (gc, compaction) */
	uint64_t corrupt_records;  /* records found bad since store_open() */
	uint64_t syncs;		   /* store_sync() calls that succeeded */
	double last_sync_ms;	   /* duration of the last one */
};

void store_stats(const struct store *s, struct store_stats *out);

#endif
