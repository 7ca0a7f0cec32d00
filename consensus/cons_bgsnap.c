/* Snapshots encoded in a child process, so that the loop never stalls for
 * the size of the state.
 *
 * libraft 0.22.1 calls fsm->snapshot on the loop thread and wants the whole
 * snapshot back from it (its snapshot_async runs right after, on the same
 * thread: docs/libraft.md). Encoding the state there stalls every client and
 * every heartbeat of the node for ~4 ms per MB. Instead, when a snapshot is
 * due, the node fork()s: the child sees the state frozen at that index (the
 * kernel shares its pages copy-on-write) and writes its dump into a file in
 * the data dir, while the parent goes on applying and keeps a copy of every
 * entry it applies from then on (the tail). When the child is done, the
 * node lets libraft take a snapshot at the next apply; fsm->snapshot then
 * hands over [header, the dump (mapped), the tail], which costs no encoding.
 * A reader loads the dump and applies the tail (cons_snapshot.c), reaching
 * the state at the snapshot's index exactly: entries are deterministic.
 *
 * What stays on the loop: fork() itself (it copies the page tables: 28-257
 * ms at 0.9-1.5 GiB resident here, docs/performance.md), the copy of
 * each entry applied while the child runs, and the page copies the kernel
 * makes when the parent writes a page the child still shares.
 *
 * The child only calls the dump, write() and fdatasync(), then _exit()s: no
 * libuv, no raft, no locks of other threads (glibc's fork makes malloc
 * usable in the child). It closes every inherited descriptor first, so the
 * node's sockets close when the node closes them, not when the child ends;
 * and it dies with its parent (PR_SET_PDEATHSIG), so a kill -9 of the node
 * leaves nothing behind. If fork() fails the node falls back to the
 * synchronous snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "cons_int.h"

/* What the child reports through its pipe (one write, under PIPE_BUF). */
struct child_result {
	int32_t status; /* 0, or an errno / Q_E* code */
	uint32_t pad;
	uint64_t len;  /* dump bytes */
	uint64_t hash; /* XXH3 64 of the dump */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cons__bgsnap_init(struct cons_bgsnap *b)
{
	memset(b, 0, sizeof *b);
	b->pipe_fd = -1;
}

static void tail_free(struct cons_bgsnap *b)
{
	free(b->tail);
	b->tail = NULL;
	b->tail_len = b->tail_cap = 0;
	b->tail_entries = 0;
}

/* Forgets a dump (running, ready or failed): the child is killed and
 * reaped, the file removed. */
static void discard(struct cons_bgsnap *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR) {
		}
		b->pid = 0;
	}
	if (b->pipe_fd >= 0) {
		close(b->pipe_fd);
		b->pipe_fd = -1;
	}
	if (b->map != NULL) {
		munmap(b->map, b->map_len);
		b->map = NULL;
	}
	if (b->path[0] != '\0') {
		unlink(b->path);
		b->path[0] = '\0';
	}
	tail_free(b);
	b->state = CONS_BGSNAP_IDLE;
}

/* ----------------------------------------------------------------- child */

struct child_out {
	int fd;
	XXH3_state_t *hash;
	uint64_t len;
};

static int child_write(void *data, const void *buf, size_t len)
{
	struct child_out *o = data;
	const char *p = buf;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(o->fd, p, left);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno != 0 ? errno : EIO;
		}
		p += n;
		left -= (size_t)n;
	}
	XXH3_64bits_update(o->hash, buf, len);
	o->len += len;
	return 0;
}

/* Closes every descriptor but keep_a and keep_b (and 0-2). */
static void close_others(int keep_a, int keep_b)
{
	int lo = keep_a < keep_b ? keep_a : keep_b;
	int hi = keep_a < keep_b ? keep_b : keep_a;
	if (lo > 3) {
		close_range(3, (unsigned)lo - 1, 0);
	}
	if (hi > lo + 1) {
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	}
	close_range((unsigned)hi + 1, ~0U, 0);
}

static void child_main(const struct q_state *s, struct cons_bodies *bodies,
		       int fd, int pipe_fd, pid_t parent)
{
	struct child_result r;
	struct child_out o;
	ssize_t n;
	int bodies_rv;

	/* Die with the node; the check closes the race with a parent that
	 * died before prctl. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent) {
		_exit(1);
	}
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	/* The dump names bodies: they go to disk first (before the other
	 * descriptors, the store's among them, are closed). */
	bodies_rv = cons__bodies_sync_child(bodies);
	close_others(fd, pipe_fd);

	memset(&r, 0, sizeof r);
	o.fd = fd;
	o.len = 0;
	o.hash = XXH3_createState();
	if (bodies_rv != 0) {
		r.status = EIO;
	} else if (o.hash == NULL) {
		r.status = ENOMEM;
	} else {
		XXH3_64bits_reset(o.hash);
		r.status = q_state_dump(s, child_write, &o);
		if (r.status == 0 && fdatasync(fd) != 0) {
			r.status = errno;
		}
		r.len = o.len;
		r.hash = XXH3_64bits_digest(o.hash);
	}
	do {
		n = write(pipe_fd, &r, sizeof r);
	} while (n < 0 && errno == EINTR);
	_exit(r.status == 0 ? 0 : 1);
}

/* ---------------------------------------------------------------- parent */

int cons__bgsnap_start(struct cons_fsm *f, const char *dir, uint64_t index)
{
	struct cons_bgsnap *b = &f->bg;
	int fd, p[2];
	uint64_t t0;
	pid_t pid, self = getpid();

	if (b->state != CONS_BGSNAP_IDLE) {
		return CONS_EINVAL;
	}
	snprintf(b->path, sizeof b->path, "%s/dump-%llu.tmp", dir,
		 (unsigned long long)index);
	fd = open(b->path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr,
			"raftmqd: background snapshot: cannot create %s: %s; "
			"taking it on the loop thread\n",
			b->path, strerror(errno));
		b->path[0] = '\0';
		b->failed++;
		return CONS_EIO;
	}
	if (pipe2(p, O_CLOEXEC) != 0) {
		close(fd);
		discard(b);
		b->failed++;
		return CONS_EIO;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	/* Deleting what is dropped from here on waits for this snapshot. */
	b->body_mark = cons__bodies_mark(&f->bodies);
	t0 = now_ns();
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		child_main(f->state, &f->bodies, fd, p[1], self);
	}
	b->fork_ns = now_ns() - t0;
	if (b->fork_ns > b->fork_ns_max) {
		b->fork_ns_max = b->fork_ns;
	}
	close(fd);
	close(p[1]);
	if (pid < 0) {
		fprintf(stderr,
			"raftmqd: background snapshot: fork(): %s; taking it "
			"on the loop thread\n",
			strerror(errno));
		close(p[0]);
		discard(b);
		b->failed++;
		return CONS_EIO;
	}
	b->pid = pid;
	b->pipe_fd = p[0];
	b->index = index;
	b->clock_ms = q_state_now(f->state);
	b->n_members = f->n_members;
	memcpy(b->members, f->members, sizeof b->members);
	b->started_ns = t0;
	b->state = CONS_BGSNAP_RUNNING;
	b->started++;
	return 0;
}

int cons__bgsnap_note(struct cons_bgsnap *b, const void *buf, size_t len)
{
	size_t need;
	if (b->state != CONS_BGSNAP_RUNNING && b->state != CONS_BGSNAP_READY) {
		return 0;
	}
	if (len > UINT32_MAX) {
		goto fail;
	}
	need = b->tail_len + 4 + len;
	if (need > b->tail_cap) {
		size_t cap = b->tail_cap ? b->tail_cap : 65536;
		unsigned char *t;
		while (cap < need) {
			cap *= 2;
		}
		t = realloc(b->tail, cap);
		if (t == NULL) {
			goto fail;
		}
		b->tail = t;
		b->tail_cap = cap;
	}
	b->tail[b->tail_len] = (unsigned char)len;
	b->tail[b->tail_len + 1] = (unsigned char)(len >> 8);
	b->tail[b->tail_len + 2] = (unsigned char)(len >> 16);
	b->tail[b->tail_len + 3] = (unsigned char)(len >> 24);
	memcpy(b->tail + b->tail_len + 4, buf, len);
	b->tail_len = need;
	b->tail_entries++;
	return 0;
fail:
	/* Without the whole tail the dump is useless: start again later. */
	fprintf(stderr,
		"raftmqd: background snapshot: out of memory for the "
		"entries applied meanwhile; dropping it\n");
	discard(b);
	b->failed++;
	return CONS_ENOMEM;
}

bool cons__bgsnap_poll(struct cons_bgsnap *b)
{
	struct child_result r;
	ssize_t n;
	int st = 0;
	void *map;

	if (b->state != CONS_BGSNAP_RUNNING) {
		return false;
	}
	n = read(b->pipe_fd, &r, sizeof r);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return false;
	}
	close(b->pipe_fd);
	b->pipe_fd = -1;
	while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR) {
	}
	b->pid = 0;
	b->child_ns = now_ns() - b->started_ns;
	if (n != (ssize_t)sizeof r || r.status != 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		fprintf(stderr,
			"raftmqd: background snapshot at index %llu failed "
			"(%s); trying again later\n",
			(unsigned long long)b->index,
			n != (ssize_t)sizeof r ? "the child died"
			: r.status > 0 && r.status < Q_ECODES_COUNT
				? q_strerror(r.status)
				: strerror(r.status));
		discard(b);
		b->failed++;
		return false;
	}
	{
		int fd = open(b->path, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		map = MAP_FAILED;
		if (fd >= 0 && fstat(fd, &sb) == 0 &&
		    (uint64_t)sb.st_size == r.len && r.len > 0) {
			map = mmap(NULL, r.len, PROT_READ, MAP_PRIVATE, fd, 0);
		}
		if (fd >= 0) {
			close(fd);
		}
	}
	if (map == MAP_FAILED) {
		fprintf(stderr,
			"raftmqd: background snapshot: cannot map %s: %s\n",
			b->path, strerror(errno));
		discard(b);
		b->failed++;
		return false;
	}
	b->map = map;
	b->map_len = r.len;
	b->dump_hash = r.hash;
	b->state = CONS_BGSNAP_READY;
	return true;
}

int cons__bgsnap_take(struct cons_fsm *f, uint64_t index, uint64_t term,
		      struct raft_buffer **bufs, unsigned *n_bufs)
{
	struct cons_bgsnap *b = &f->bg;
	struct cons_snaphdr h;
	struct raft_buffer *v;
	int rv;

	if (b->state != CONS_BGSNAP_READY) {
		return CONS_EINVAL;
	}
	v = raft_malloc(3 * sizeof *v);
	if (v == NULL) {
		return CONS_ENOMEM;
	}
	memset(&h, 0, sizeof h);
	h.index = index;
	h.term = term;
	h.dump_index = b->index;
	h.state_bytes = b->map_len;
	h.state_xxh3 = b->dump_hash;
	h.clock_ms = b->clock_ms;
	h.members = b->members;
	h.n_members = b->n_members;
	h.tail_bytes = b->tail_len;
	h.tail_entries = b->tail_entries;
	h.tail_xxh3 = XXH3_64bits(b->tail, b->tail_len);
	rv = cons__snapshot_header(f, &h, &v[0]);
	if (rv != 0) {
		raft_free(v);
		return rv;
	}
	v[1].base = b->map;
	v[1].len = b->map_len;
	v[2].base = b->tail;
	v[2].len = b->tail_len;
	*bufs = v;
	*n_bufs = b->tail_len > 0 ? 3 : 2;
	f->snapshot_bytes = v[0].len + v[1].len + b->tail_len;
	f->snapshot_index = index;
	b->state = CONS_BGSNAP_TAKEN;
	b->taken++;
	b->last_tail_entries = b->tail_entries;
	return 0;
}

bool cons__bgsnap_owns(const struct cons_bgsnap *b,
		       const struct raft_buffer *bufs, unsigned n_bufs)
{
	return b->state == CONS_BGSNAP_TAKEN && n_bufs >= 2 &&
	       bufs[1].base == b->map && b->map != NULL;
}

void cons__bgsnap_finalize(struct cons_bgsnap *b, struct raft_buffer *bufs)
{
	raft_free(bufs[0].base);
	raft_free(bufs);
	/* the mapping, the file and the tail */
	discard(b);
}

void cons__bgsnap_close(struct cons_bgsnap *b)
{
	discard(b);
}
