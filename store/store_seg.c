/* Segments: the in-memory index of one segment file (a sorted array of
 * 16-byte entries), its creation, sealing, index file and recovery scan.
 *
 * Index file <id>.idx, written when the segment is sealed (as
 * <id>.idx.tmp, fsynced and renamed by the next store_sync()):
 *
 *    0 u64 magic "RMQBIDX1"   8 u32 version (1)   12 u32 kind
 *   16 u64 segment id        24 u64 the segment's salt
 *   32 u64 count             40 u64 the segment file's size
 *   48 count entries of 16 bytes: u64 key, u32 offset, u32 record length,
 *      sorted by key
 *   then u64 XXH3-64 of every byte before it.
 *
 * Loading it reads 16 bytes per record instead of the whole segment; it is
 * used only if everything matches the segment (id, salt, kind, size) and
 * every entry lies inside the file, else the segment is scanned.
 *
 * The scan reads records from the header on. A bad record (short, a header
 * that fails its hash, data that fails its hash) followed somewhere by a
 * good one is corruption in the middle: reported with the file and the
 * offset, skipped, its key then missing. A bad record with no good one after
 * it is a torn tail (a crash during a write): in a segment without a seal
 * record it is truncated away. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "store_int.h"

struct store_seg *store__seg_new(void)
{
	struct store_seg *g = calloc(1, sizeof *g);
	if (g == NULL) {
		return NULL;
	}
	g->fd = -1;
	g->min_key = UINT64_MAX;
	g->max_key = 0;
	return g;
}

void store__seg_free(struct store_seg *g)
{
	if (g == NULL) {
		return;
	}
	if (g->fd >= 0) {
		close(g->fd);
	}
	free(g->ents);
	free(g);
}

int store__seg_reserve(struct store_seg *g, uint32_t extra)
{
	uint64_t need = (uint64_t)g->n + extra;
	uint64_t cap = g->cap;
	struct store__ent *e;

	if (need <= g->cap) {
		return 0;
	}
	if (need > UINT32_MAX) {
		return STORE_ENOMEM;
	}
	if (cap < 64) {
		cap = 64;
	}
	while (cap < need) {
		cap *= 2;
	}
	if (cap > UINT32_MAX) {
		cap = UINT32_MAX;
	}
	e = realloc(g->ents, (size_t)cap * sizeof *e);
	if (e == NULL) {
		return STORE_ENOMEM;
	}
	g->ents = e;
	g->cap = (uint32_t)cap;
	return 0;
}

/* First index whose key is >= key (n if none). */
static uint32_t lower_bound(const struct store_seg *g, uint64_t key)
{
	uint32_t lo = 0, hi = g->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (g->ents[mid].key < key) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

long store__seg_find(const struct store_seg *g, uint64_t key)
{
	uint32_t i;

	if (g->n == 0 || key < g->min_key || key > g->max_key) {
		return -1;
	}
	i = lower_bound(g, key);
	if (i < g->n && g->ents[i].key == key) {
		return (long)i;
	}
	return -1;
}

static void account(struct store_seg *g, const struct store__ent *e, int sign)
{
	if ((e->lenbits & STORE__LIVE) == 0) {
		return;
	}
	if (sign > 0) {
		g->live_records++;
		g->live_bytes += store__ent_len(e);
	} else {
		g->live_records--;
		g->live_bytes -= store__ent_len(e);
	}
}

void store__seg_insert(struct store_seg *g, const struct store__ent *e)
{
	uint32_t i;

	/* Keys arrive in increasing order in the usual case: an append. A
	 * lower key (fill stream) shifts the entries after it, which is
	 * bounded by the segment's size, not the store's. */
	if (g->n == 0 || e->key > g->ents[g->n - 1].key) {
		i = g->n;
	} else {
		i = lower_bound(g, e->key);
		if (i < g->n && g->ents[i].key == e->key) {
			account(g, &g->ents[i], -1);
			g->ents[i] = *e;
			account(g, e, 1);
			return;
		}
		memmove(&g->ents[i + 1], &g->ents[i],
			(size_t)(g->n - i) * sizeof *e);
	}
	g->ents[i] = *e;
	g->n++;
	account(g, e, 1);
	if (e->key < g->min_key) {
		g->min_key = e->key;
	}
	if (e->key > g->max_key) {
		g->max_key = e->key;
	}
}

void store__seg_remove(struct store_seg *g, uint32_t i)
{
	account(g, &g->ents[i], -1);
	memmove(&g->ents[i], &g->ents[i + 1],
		(size_t)(g->n - i - 1) * sizeof g->ents[0]);
	g->n--;
}

void store__seg_range(struct store_seg *g)
{
	if (g->n == 0) {
		g->min_key = UINT64_MAX;
		g->max_key = 0;
	} else {
		g->min_key = g->ents[0].key;
		g->max_key = g->ents[g->n - 1].key;
	}
}

void store__dirty_forget(struct store *s, struct store_seg *g)
{
	if (!g->dirty) {
		return;
	}
	for (size_t i = 0; i < s->ndirty; i++) {
		if (s->dirty[i] == g) {
			s->dirty[i] = s->dirty[--s->ndirty];
			break;
		}
	}
	g->dirty = false;
}

void store__mark_dirty(struct store *s, struct store_seg *g)
{
	struct store_seg **v;

	if (g->dirty) {
		return;
	}
	if (s->ndirty == s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 8;
		v = realloc(s->dirty, cap * sizeof *v);
		if (v == NULL) {
			/* Without room to remember it, sync the segment at once
			 * rather than forget it at the next store_sync(). */
			(void)store__fsync(s, g->fd, true);
			return;
		}
		s->dirty = v;
		s->dirty_cap = cap;
	}
	s->dirty[s->ndirty++] = g;
	g->dirty = true;
}

static uint64_t new_salt(uint64_t id)
{
	uint64_t salt = 0;
	struct timespec ts;

	/* A salt that cannot be guessed keeps a body shaped like a record from
	 * passing for one (store_fmt.c); if the kernel has no entropy to give
	 * yet, the clock still makes each segment's salt different. */
	if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) ==
	    (ssize_t)sizeof salt) {
		return salt;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	return XXH3_64bits_withSeed(&ts, sizeof ts, id ^ (uint64_t)getpid());
}

int store__seg_create(struct store *s, struct store_seg *g, uint32_t kind,
		      const char *suffix)
{
	char path[STORE__PATH_MAX];
	unsigned char hdr[STORE__SEG_HDR];
	struct store__seg_hdr h;
	int rv;

	g->id = s->next_id++;
	g->kind = kind;
	g->salt = new_salt(g->id);
	store__path(s, g->id, suffix, path, sizeof path);
	g->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (g->fd < 0) {
		return store__syserr(s, errno, "create %s", path);
	}
	h.kind = kind;
	h.id = g->id;
	h.salt = g->salt;
	store__seg_hdr_encode(hdr, &h);
	rv = store__pwrite(s, g->fd, hdr, sizeof hdr, 0);
	if (rv != 0) {
		rv = store__syserr(s, rv, "write %s", path);
		close(g->fd);
		g->fd = -1;
		unlink(path);
		return rv;
	}
	g->size = STORE__SEG_HDR;
	s->dir_dirty = true;
	store__mark_dirty(s, g);
	return 0;
}

int store__seg_seal(struct store *s, struct store_seg *g)
{
	unsigned char rec[STORE__REC_HDR + STORE__SEAL_BODY];
	struct store__rec_hdr h = {.type = STORE__REC_SEAL,
				   .body_len = STORE__SEAL_BODY};
	char path[STORE__PATH_MAX];
	int rv;

	store__put_le64(rec + STORE__REC_HDR, g->n);
	store__put_le64(rec + STORE__REC_HDR + 8, g->size);
	h.data_hash = store__data_hash(NULL, 0, rec + STORE__REC_HDR,
				       STORE__SEAL_BODY);
	store__rec_hdr_encode(rec, &h, g->salt);
	rv = store__pwrite(s, g->fd, rec, sizeof rec, g->size);
	if (rv != 0) {
		store__path(s, g->id, ".seg", path, sizeof path);
		if (ftruncate(g->fd, (off_t)g->size) != 0) {
			g->tail_dirty = true;
		}
		return store__syserr(s, rv, "write the seal record of %s",
				     path);
	}
	g->size += sizeof rec;
	g->sealed = true;
	store__mark_dirty(s, g);
	/* A sealed segment gets no more entries: give back the room the
	 * doubling left, so the index stays at 16 bytes a record. */
	if (g->n > 0 && g->n < g->cap) {
		struct store__ent *e = realloc(g->ents, g->n * sizeof *e);
		if (e != NULL) {
			g->ents = e;
			g->cap = g->n;
		}
	}
	/* The index file waits for the next sync to be fsynced and renamed; if
	 * it cannot be written now, that sync writes it. */
	(void)store__idx_write(s, g);
	return 0;
}

int store__idx_write(struct store *s, struct store_seg *g)
{
	char tmp[STORE__PATH_MAX];
	size_t len = STORE__IDX_HDR + (size_t)g->n * STORE__IDX_ENT + 8;
	unsigned char *buf, *p;
	int fd, rv;

	buf = malloc(len);
	if (buf == NULL) {
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	memset(buf, 0, STORE__IDX_HDR);
	store__put_le64(buf, STORE__IDX_MAGIC);
	store__put_le32(buf + 8, STORE__VERSION);
	store__put_le32(buf + 12, g->kind);
	store__put_le64(buf + 16, g->id);
	store__put_le64(buf + 24, g->salt);
	store__put_le64(buf + 32, g->n);
	store__put_le64(buf + 40, g->size);
	p = buf + STORE__IDX_HDR;
	for (uint32_t i = 0; i < g->n; i++, p += STORE__IDX_ENT) {
		store__put_le64(p, g->ents[i].key);
		store__put_le32(p + 8, g->ents[i].off);
		store__put_le32(p + 12, store__ent_len(&g->ents[i]));
	}
	store__put_le64(p, XXH3_64bits(buf, len - 8));

	g->idx_pending = true;
	g->idx_tmp = false;
	store__path(s, g->id, ".idx.tmp", tmp, sizeof tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(buf);
		return store__syserr(s, errno, "create %s", tmp);
	}
	rv = store__pwrite(s, fd, buf, len, 0);
	free(buf);
	close(fd);
	if (rv != 0) {
		unlink(tmp);
		return store__syserr(s, rv, "write %s", tmp);
	}
	g->idx_bytes = len;
	g->idx_tmp = true;
	return 0;
}

int store__idx_commit(struct store *s, struct store_seg *g)
{
	char tmp[STORE__PATH_MAX], path[STORE__PATH_MAX];
	int fd, rv;

	if (!g->idx_pending) {
		return 0;
	}
	if (!g->idx_tmp) {
		rv = store__idx_write(s, g);
		if (rv != 0) {
			return rv;
		}
	}
	store__path(s, g->id, ".idx.tmp", tmp, sizeof tmp);
	fd = open(tmp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		g->idx_tmp = false;
		return store__syserr(s, errno, "open %s", tmp);
	}
	rv = store__fsync(s, fd, false);
	close(fd);
	if (rv != 0) {
		return store__syserr(s, rv, "fsync %s", tmp);
	}
	store__path(s, g->id, ".idx", path, sizeof path);
	if (rename(tmp, path) != 0) {
		g->idx_tmp = false;
		return store__syserr(s, errno, "rename %s", tmp);
	}
	g->idx_pending = false;
	g->idx_tmp = false;
	s->dir_dirty = true;
	return 0;
}

/* Reads a whole small file. */
static int read_all(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return r < 0 ? errno : EIO;
		}
		got += (size_t)r;
	}
	return 0;
}

static const char *idx_check(const struct store_seg *g, const unsigned char *b,
			     size_t len, uint64_t *count)
{
	const unsigned char *p;
	uint64_t n, prev = 0;
	uint64_t data_end = g->size - STORE__REC_HDR - STORE__SEAL_BODY;

	if (len < STORE__IDX_HDR + 8 ||
	    store__get_le64(b) != STORE__IDX_MAGIC) {
		return "not an index file";
	}
	if (store__get_le64(b + len - 8) != XXH3_64bits(b, len - 8)) {
		return "checksum mismatch";
	}
	n = store__get_le64(b + 32);
	if (store__get_le32(b + 8) != STORE__VERSION ||
	    (len - STORE__IDX_HDR - 8) / STORE__IDX_ENT != n ||
	    (len - STORE__IDX_HDR - 8) % STORE__IDX_ENT != 0 ||
	    n > UINT32_MAX) {
		return "bad header";
	}
	if (store__get_le32(b + 12) != g->kind ||
	    store__get_le64(b + 16) != g->id ||
	    store__get_le64(b + 24) != g->salt) {
		return "written for another segment";
	}
	if (store__get_le64(b + 40) != g->size) {
		return "the segment's size differs";
	}
	p = b + STORE__IDX_HDR;
	for (uint64_t i = 0; i < n; i++, p += STORE__IDX_ENT) {
		uint64_t key = store__get_le64(p);
		uint64_t off = store__get_le32(p + 8);
		uint64_t rl = store__get_le32(p + 12);
		if ((i > 0 && key <= prev) || key == UINT64_MAX ||
		    off < STORE__SEG_HDR || rl < STORE__REC_HDR ||
		    rl > STORE__LEN_MASK || off + rl > data_end) {
			return "bad entry";
		}
		prev = key;
	}
	*count = n;
	return NULL;
}

int store__idx_load(struct store *s, struct store_seg *g, bool *ok)
{
	char path[STORE__PATH_MAX];
	struct stat st;
	unsigned char *buf;
	const unsigned char *p;
	const char *why;
	uint64_t n = 0;
	int fd, rv;

	*ok = false;
	if (g->size < STORE__SEG_HDR + STORE__REC_HDR + STORE__SEAL_BODY) {
		return 0;
	}
	store__path(s, g->id, ".idx", path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return errno == ENOENT
			       ? 0
			       : store__syserr(s, errno, "open %s", path);
	}
	if (fstat(fd, &st) != 0) {
		rv = store__syserr(s, errno, "stat %s", path);
		close(fd);
		return rv;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return store__err(s, STORE_ENOMEM, "out of memory");
	}
	rv = read_all(fd, buf, (size_t)st.st_size);
	close(fd);
	if (rv != 0) {
		free(buf);
		return store__syserr(s, rv, "read %s", path);
	}
	why = idx_check(g, buf, (size_t)st.st_size, &n);
	if (why != NULL) {
		store__report(s, "index file %s: %s; rebuilt from its segment",
			      path, why);
		free(buf);
		return 0;
	}
	free(g->ents);
	g->ents = NULL;
	g->n = g->cap = 0;
	if (n > 0) {
		g->ents = malloc((size_t)n * sizeof *g->ents);
		if (g->ents == NULL) {
			free(buf);
			return store__err(s, STORE_ENOMEM, "out of memory");
		}
	}
	p = buf + STORE__IDX_HDR;
	for (uint64_t i = 0; i < n; i++, p += STORE__IDX_ENT) {
		g->ents[i].key = store__get_le64(p);
		g->ents[i].off = store__get_le32(p + 8);
		g->ents[i].lenbits = store__get_le32(p + 12);
	}
	free(buf);
	g->n = g->cap = (uint32_t)n;
	g->sealed = true;
	g->idx_bytes = (uint64_t)st.st_size;
	store__seg_range(g);
	*ok = true;
	return 0;
}

/* Whether a whole good record starts at p (of a mapping of len bytes). */
static bool good_at(const unsigned char *m, size_t len, size_t p, uint64_t salt,
		    struct store__rec_hdr *h)
{
	size_t rl;

	if (len - p < STORE__REC_HDR ||
	    !store__rec_hdr_decode(m + p, salt, h)) {
		return false;
	}
	rl = (size_t)STORE__REC_HDR + h->id_len + h->body_len;
	if (len - p < rl) {
		return false;
	}
	return store__data_hash(m + p + STORE__REC_HDR, h->id_len,
				m + p + STORE__REC_HDR + h->id_len,
				h->body_len) == h->data_hash;
}

/* Offset of the next good record after a bad one at p, or len. */
static size_t resync(const unsigned char *m, size_t len, size_t p,
		     uint64_t salt)
{
	unsigned char magic[4];
	struct store__rec_hdr h;

	store__put_le32(magic, STORE__REC_MAGIC);
	for (size_t q = p + 1; q + STORE__REC_HDR <= len;) {
		const unsigned char *hit = memmem(m + q, len - q, magic, 4);
		if (hit == NULL) {
			break;
		}
		q = (size_t)(hit - m);
		if (good_at(m, len, q, salt, &h)) {
			return q;
		}
		q++;
	}
	return len;
}

static int ent_cmp(const void *a, const void *b)
{
	const struct store__ent *x = a, *y = b;
	if (x->key != y->key) {
		return x->key < y->key ? -1 : 1;
	}
	/* The later copy of a key wins (sorted last, kept by dedup). */
	return x->off < y->off ? -1 : (x->off > y->off);
}

/* The fill stream writes keys out of order, and a compaction of the fill
 * list copies overlapping ranges. */
void store__seg_sort(struct store_seg *g)
{
	bool sorted = true;
	uint32_t w = 0;

	for (uint32_t i = 1; i < g->n && sorted; i++) {
		sorted = g->ents[i - 1].key < g->ents[i].key;
	}
	if (sorted) {
		return;
	}
	qsort(g->ents, g->n, sizeof g->ents[0], ent_cmp);
	for (uint32_t i = 0; i < g->n; i++) {
		if (i + 1 < g->n && g->ents[i + 1].key == g->ents[i].key) {
			/* The copy kept takes the claim of the one dropped. */
			g->ents[i + 1].lenbits |= g->ents[i].lenbits &
						  (STORE__LIVE | STORE__KEEP);
			continue;
		}
		g->ents[w++] = g->ents[i];
	}
	g->n = w;
}

int store__seg_scan(struct store *s, struct store_seg *g)
{
	char path[STORE__PATH_MAX];
	struct store__rec_hdr h;
	unsigned char *m;
	size_t len = (size_t)g->size, p = STORE__SEG_HDR;
	int rv = 0;

	store__path(s, g->id, ".seg", path, sizeof path);
	g->n = 0;
	if (len <= STORE__SEG_HDR) {
		return 0;
	}
	m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, g->fd, 0);
	if (m == MAP_FAILED) {
		return store__syserr(s, errno, "mmap %s", path);
	}
	(void)madvise(m, len, MADV_SEQUENTIAL);
	while (p < len) {
		size_t q;
		if (!good_at(m, len, p, g->salt, &h)) {
			q = resync(m, len, p, g->salt);
			if (q == len) {
				store__report(s,
					      "segment %s: torn tail at offset "
					      "%zu truncated (%zu bytes)",
					      path, p, len - p);
				break;
			}
			store__report(s,
				      "segment %s: bad record at offset %zu "
				      "(%zu bytes skipped); its key is missing",
				      path, p, q - p);
			s->st.corrupt_records++;
			p = q;
			continue;
		}
		q = p + STORE__REC_HDR + h.id_len + h.body_len;
		if (h.type == STORE__REC_SEAL) {
			g->sealed = true;
			if (q != len) {
				store__report(s,
					      "segment %s: %zu bytes after its "
					      "seal record truncated",
					      path, len - q);
			}
			p = q;
			break;
		}
		rv = store__seg_reserve(g, 1);
		if (rv != 0) {
			rv = store__err(s, rv, "out of memory");
			break;
		}
		g->ents[g->n].key = h.key;
		g->ents[g->n].off = (uint32_t)p;
		g->ents[g->n].lenbits = (uint32_t)(q - p);
		g->n++;
		p = q;
	}
	munmap(m, len);
	if (rv != 0) {
		return rv;
	}
	if (p < len) {
		g->size = p;
		if (ftruncate(g->fd, (off_t)p) != 0) {
			/* The next write to this segment overwrites the tail.
			 */
			g->tail_dirty = true;
		}
	}
	store__seg_sort(g);
	store__seg_range(g);
	return 0;
}

void store__win_written(struct store *s, const struct store_seg *g,
			uint64_t off)
{
	if (s->win_len > 0 && s->win_seg == g->id &&
	    off < s->win_off + s->win_len) {
		s->win_len = 0;
	}
}

/* A record of len bytes at off in g, in the read window: reads a new window
 * from off when the record is not in it and the reads go in file order (it
 * starts within 64 KiB after where the last read ended). Sets *p and
 * returns 0; 1 when the window does not serve (read the record alone);
 * STORE_ECORRUPT (the file ends before the record) or a read error. */
static int win_read(struct store *s, struct store_seg *g, uint64_t off,
		    uint32_t len, const unsigned char **p)
{
	bool in_order = s->last_seg == g->id && off >= s->last_end &&
			off - s->last_end <= 64 * 1024;
	size_t got = 0;
	s->last_seg = g->id;
	s->last_end = off + len;
	if (s->win_len > 0 && s->win_seg == g->id && off >= s->win_off &&
	    off + len <= s->win_off + s->win_len) {
		*p = s->win + (off - s->win_off);
		return 0;
	}
	if (!in_order || len > STORE__WIN_BYTES) {
		return 1;
	}
	if (s->win == NULL) {
		s->win = malloc(STORE__WIN_BYTES);
		if (s->win == NULL) {
			return 1;
		}
	}
	s->win_len = 0;
	while (got < STORE__WIN_BYTES) {
		ssize_t r = pread(g->fd, s->win + got, STORE__WIN_BYTES - got,
				  (off_t)(off + got));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			char path[STORE__PATH_MAX];
			store__path(s, g->id, ".seg", path, sizeof path);
			return store__syserr(s, errno,
					     "read %s at offset %" PRIu64, path,
					     off);
		}
		if (r == 0) {
			break; /* the end of the file */
		}
		got += (size_t)r;
	}
	if (got < len) {
		return STORE_ECORRUPT; /* the file is shorter */
	}
	s->win_seg = g->id;
	s->win_off = off;
	s->win_len = got;
	*p = s->win;
	return 0;
}

/* Checks the record at p (len bytes) against its index entry e and fills
 * out (pointers into p). */
static int rec_check(const struct store_seg *g, const struct store__ent *e,
		     const unsigned char *p, uint32_t len,
		     struct store_rec *out)
{
	struct store__rec_hdr h;
	if (!store__rec_hdr_decode(p, g->salt, &h) ||
	    h.type != STORE__REC_BODY || h.key != e->key ||
	    (uint64_t)STORE__REC_HDR + h.id_len + h.body_len != len ||
	    store__data_hash(p + STORE__REC_HDR, h.id_len,
			     p + STORE__REC_HDR + h.id_len,
			     h.body_len) != h.data_hash) {
		return STORE_ECORRUPT;
	}
	out->key = h.key;
	out->id = p + STORE__REC_HDR;
	out->id_len = h.id_len;
	out->body = p + STORE__REC_HDR + h.id_len;
	out->len = h.body_len;
	out->sum = store__fold32(h.data_hash);
	return 0;
}

int store__read(struct store *s, struct store_seg *g, uint32_t i,
		struct store_rec *out)
{
	const struct store__ent *e = &g->ents[i];
	uint32_t len = store__ent_len(e);
	const unsigned char *p = NULL;
	size_t got = 0;
	int rv = win_read(s, g, e->off, len, &p);

	if (rv == 0) {
		return rec_check(g, e, p, len, out);
	}
	if (rv != 1) {
		return rv;
	}

	if (s->rcap < len) {
		size_t cap = s->rcap ? s->rcap : 4096;
		unsigned char *b;
		while (cap < len) {
			cap *= 2;
		}
		b = realloc(s->rbuf, cap);
		if (b == NULL) {
			return store__err(s, STORE_ENOMEM, "out of memory");
		}
		s->rbuf = b;
		s->rcap = cap;
	}
	while (got < len) {
		ssize_t r = pread(g->fd, s->rbuf + got, len - got,
				  (off_t)(e->off + got));
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r < 0) {
			char path[STORE__PATH_MAX];
			store__path(s, g->id, ".seg", path, sizeof path);
			return store__syserr(s, errno, "read %s at offset %u",
					     path, e->off);
		}
		if (r == 0) {
			return STORE_ECORRUPT; /* the file is shorter */
		}
		got += (size_t)r;
	}
	return rec_check(g, e, s->rbuf, len, out);
}
