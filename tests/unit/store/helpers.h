/* Test helpers for store/ (black-box, against store.h only).
 *
 *   - struct ts_env `T`: a fresh temporary directory per test (ts_setup /
 *     ts_teardown for TestSuite .init/.fini, removed with everything in it),
 *     the open store, and every sentence the store reported (report_cb).
 *   - Records are generated from their key: ts_put(key, len) stores the id
 *     "m<key>" and len bytes derived from the key, ts_expect(key, len) reads
 *     them back and compares, so a test never keeps the bytes itself.
 *   - A fault hook (T.fault) the tests arm to fail the Nth write or sync with
 *     an errno, optionally after a short write, or to kill the process there.
 *   - File helpers: segment ids on disk, flipping a byte, truncating.
 * Every helper cr_asserts on harness failures (and on the store's failures
 * where its name says so: ts_put, ts_expect). */
#ifndef RAFTMQ_TESTS_STORE_HELPERS_H
#define RAFTMQ_TESTS_STORE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct ts_fault {
	bool armed;
	enum store_io io; /* which calls count (0: writes and syncs) */
	unsigned skip;	  /* let this many matching calls pass first */
	int err;	  /* then fail with this errno (0: kill instead) */
	size_t partial;	  /* bytes written before failing (0: none) */
	bool once;	  /* disarm after failing once */
	unsigned calls;	  /* matching calls seen */
	unsigned fired;	  /* failures injected */
};

struct ts_env {
	char dir[256];
	struct store *s;
	uint64_t segment_bytes;
	char **reports; /* owned copies */
	size_t nreports;
	struct ts_fault fault;
};

extern struct ts_env T;

void ts_setup(void);
void ts_teardown(void);

/* Opens T.dir with T.segment_bytes (0 = default) and the hooks; asserts. */
void ts_open(void);
/* store_open() with the hooks; returns its code (err: 256 bytes or NULL). */
int ts_try_open(char *err);
void ts_close(void);
void ts_reopen(void);
void ts_clear_reports(void);
/* Whether some report contains `what`. */
bool ts_reported(const char *what);

/* The generated record of key: id "m<key>" and len body bytes. */
size_t ts_id(uint64_t key, char *buf, size_t cap);
void ts_body(uint64_t key, size_t len, unsigned char *buf);
/* store_put() of the generated record; returns its code. */
int ts_try_put(uint64_t key, size_t len);
void ts_put(uint64_t key, size_t len);
/* Reads key and asserts it is the generated record of that length. */
void ts_expect(uint64_t key, size_t len);

/* Test seed: TEST_SEED from the environment, else dflt; printed. */
uint64_t ts_seed(uint64_t dflt);
uint64_t ts_rand(uint64_t *state);

/* Files: "<T.dir>/<id as 16 hex><suffix>". */
void ts_path(uint64_t id, const char *suffix, char *buf, size_t len);
/* Sorted ids of the files ending in suffix; returns how many (max cap). */
size_t ts_ids(const char *suffix, uint64_t *ids, size_t cap);
uint64_t ts_file_size(const char *path);
void ts_flip(const char *path, uint64_t off);
void ts_truncate(const char *path, uint64_t len);
void ts_copy_file(const char *from, const char *to);
void ts_rm_rf(const char *dir);
/* Copies every file of T.dir into T.dir/<name>/ (the store ignores
 * subdirectories), and puts them back (removing the files not saved). */
void ts_save(const char *name);
void ts_restore(const char *name);

#endif
