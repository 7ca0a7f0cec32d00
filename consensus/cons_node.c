/* The Raft node: libraft + raft_uv (disk) + raft_uv_tcp (transport) on the
 * node's libuv loop, bootstrap, proposals, barriers, membership, status and
 * an orderly close.
 *
 * Settings that matter (see docs/libraft.md): one buffer per raft_apply (more
 * are silently dropped by 0.22.1), max inflight entries raised from 32,
 * snapshots by bytes as well as entries, no InstallSnapshot delivered while
 * the node writes its own snapshot (0.22.1 crashes then: cons_snapguard.c),
 * pre-vote on so a returning node cannot depose a healthy leader. libraft has
 * no leadership-change callback: a uv_check handle compares role, term and
 * leader after every loop iteration. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "cons_defaults.h"
#include "cons_int.h"

#define DEFAULT_SNAPSHOT_MIN_BYTES \
	((uint64_t)CONS_DEFAULT_SNAPSHOT_MIN_MIB << 20)
#define DEFAULT_TRAILING_BYTES ((uint64_t)CONS_DEFAULT_TRAILING_MIB << 20)

/* Dumps of a background snapshot that a crash left behind (cons_bgsnap.c
 * names them dump-INDEX.tmp): never read, so removed at start. */
static void remove_stale_dumps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4200];
	unsigned long long index;
	int end;
	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		end = 0;
		if (sscanf(e->d_name, "dump-%llu.tmp%n", &index, &end) == 1 &&
		    end > 0 && e->d_name[end] == '\0') {
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cons_clock_ms(const struct cons *c)
{
	uint64_t now = wall_ms();
	return now > c->fsm.last_stamp ? now : c->fsm.last_stamp;
}

/* mkdir -p */
static int make_dirs(const char *path, char *errmsg, size_t errlen)
{
	char buf[4096];
	size_t i, n = strlen(path);
	if (n == 0 || n >= sizeof buf) {
		snprintf(errmsg, errlen, "data dir path is empty or too long");
		return CONS_EINVAL;
	}
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char save = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
				snprintf(errmsg, errlen, "mkdir %s: %s", buf,
					 strerror(errno));
				return CONS_EIO;
			}
			buf[i] = save;
		}
	}
	return 0;
}

static void check_cb(uv_check_t *h);

int cons_new(struct uv_loop_s *loop, const struct cons_config *cfg,
	     const struct q_sink *sink, struct cons **out, char *errmsg,
	     size_t errlen)
{
	struct cons *c;
	struct q_options qopts;
	struct raft_configuration conf;
	size_t i;
	int bootstrap = 0;
	int rv;

	if (cfg->id == 0 || cfg->raft_address == NULL ||
	    cfg->data_dir == NULL || cfg->n_members > CONS_MAX_NODES) {
		snprintf(errmsg, errlen,
			 "node id, raft address and data dir are required "
			 "(at most %d members)",
			 CONS_MAX_NODES);
		return CONS_EINVAL;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return CONS_ENOMEM;
	}
	c->loop = loop;
	c->id = cfg->id;
	snprintf(c->raft_address, sizeof c->raft_address, "%s",
		 cfg->raft_address);
	snprintf(c->client_address, sizeof c->client_address, "%s",
		 cfg->client_address != NULL ? cfg->client_address : "");
	snprintf(c->data_dir, sizeof c->data_dir, "%s", cfg->data_dir);
	c->pending.next = c->pending.prev = &c->pending;
	c->me.id = cfg->id;
	if (getrandom(&c->me.boot, sizeof c->me.boot, 0) !=
	    (ssize_t)sizeof c->me.boot) {
		c->me.boot = wall_ms() ^ ((uint64_t)getpid() << 32);
	}

	rv = make_dirs(c->data_dir, errmsg, errlen);
	if (rv != 0) {
		goto err_free;
	}

	memset(&qopts, 0, sizeof qopts);
	qopts.hash_seed = cfg->hash_seed;
	qopts.max_body = cfg->max_body;
	{
		struct cons_bodies bodies;
		char serr[300];
		rv = cons__bodies_open(&bodies, c->data_dir,
				       cfg->store_segment_bytes, serr,
				       sizeof serr);
		if (rv != 0) {
			snprintf(errmsg, errlen, "body store: %s", serr);
			goto err_free;
		}
		rv = cons__fsm_init_bodies(&c->fsm, &qopts, sink, &bodies);
		if (rv != 0) {
			cons__bodies_close(&c->fsm.bodies);
			snprintf(errmsg, errlen, "out of memory");
			goto err_free;
		}
	}
	c->fsm.owner = c;
	for (i = 0; i < cfg->n_members; i++) {
		cons__fsm_set_member(&c->fsm, cfg->members[i].id,
				     cfg->members[i].client_address);
		if (cfg->members[i].id == cfg->id) {
			bootstrap = 1;
		}
	}
	cons__fsm_set_member(&c->fsm, c->id, c->client_address);

	c->transport.version = 1; /* 0.22.1 refuses 0: "Invalid version" */
	c->transport.data = c;
	rv = raft_uv_tcp_init(&c->transport, loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft_uv_tcp_init(): %s",
			 raft_strerror(rv));
		rv = CONS_EIO;
		goto err_after_fsm;
	}
	/* Tuned streams, bounded connects (cons_transport.c). */
	cons__tcp_times(cfg->election_timeout_ms ? cfg->election_timeout_ms
						 : CONS_DEFAULT_ELECTION_MS,
			cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms
						  : CONS_DEFAULT_HEARTBEAT_MS,
			&c->tcp_times);
	cons__transport_wrap(c);
	c->io.version = 2;
	c->io.data = c;
	rv = raft_uv_init(&c->io, loop, c->data_dir, &c->transport);
	if (rv != 0) {
		snprintf(errmsg, errlen, "open data dir %s: %s", c->data_dir,
			 c->io.errmsg);
		rv = CONS_EIO;
		goto err_after_transport;
	}
	/* With auto-recovery on, raft_uv silently renames a corrupt last
	 * closed segment to corrupt-* and starts without its entries: entries
	 * this node acknowledged are gone without a word, and with one more
	 * failure the cluster can lose committed messages. Refuse to start
	 * instead; the error names the file (docs/operations.md, "Corrupted
	 * data"). A torn tail of an open segment (a crash mid-write) is still
	 * truncated by the loader, with or without this flag. */
	raft_uv_set_auto_recovery(&c->io, false);
	/* After a failed connect attempt raft_uv waits this long before the
	 * next (default 1 s). Attempts are bounded (cons_transport.c), so this
	 * plus connect_ms bounds how long after a partition heals a peer is
	 * reachable again. */
	raft_uv_set_connect_retry_delay(&c->io, c->tcp_times.retry_ms);
	/* Before raft_init/raft_start: no InstallSnapshot reaches raft while
	 * it writes a snapshot of its own (libraft 0.22.1 crashes then;
	 * cons_snapguard.c). */
	cons__snapguard_init(&c->guard, &c->io);
	c->fsm.guard = &c->guard;
	rv = raft_init(&c->raft, &c->io, &c->fsm.fsm, c->id, c->raft_address);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft_init(): %s",
			 raft_errmsg(&c->raft));
		rv = cons__translate(rv);
		goto err_after_io;
	}
	c->raft.data = c;
	raft_set_election_timeout(&c->raft, cfg->election_timeout_ms
						    ? cfg->election_timeout_ms
						    : CONS_DEFAULT_ELECTION_MS);
	raft_set_heartbeat_timeout(&c->raft,
				   cfg->heartbeat_timeout_ms
					   ? cfg->heartbeat_timeout_ms
					   : CONS_DEFAULT_HEARTBEAT_MS);
	c->fsm.threshold = cfg->snapshot_threshold
				   ? cfg->snapshot_threshold
				   : CONS_DEFAULT_SNAPSHOT_THRESHOLD;
	c->fsm.trailing = cfg->snapshot_trailing
				  ? cfg->snapshot_trailing
				  : CONS_DEFAULT_SNAPSHOT_TRAILING;
	c->fsm.snapshot_min_bytes = cfg->snapshot_min_bytes
					    ? cfg->snapshot_min_bytes
					    : DEFAULT_SNAPSHOT_MIN_BYTES;
	c->fsm.trailing_bytes = cfg->snapshot_trailing_bytes
					? cfg->snapshot_trailing_bytes
					: DEFAULT_TRAILING_BYTES;
	c->fsm.max_log_bytes = cfg->snapshot_max_log_bytes;
	c->fsm.memory_limit = cfg->memory_limit;
	c->fsm.bg_enabled = !cfg->snapshot_in_place;
	remove_stale_dumps(c->data_dir);
	raft_set_snapshot_threshold(&c->raft, c->fsm.bg_enabled
						      ? CONS_BG_OFF_THRESHOLD
						      : c->fsm.threshold);
	raft_set_snapshot_trailing(&c->raft, c->fsm.trailing);
	raft_set_max_inflight_entries(&c->raft,
				      cfg->max_inflight_entries
					      ? cfg->max_inflight_entries
					      : CONS_DEFAULT_MAX_INFLIGHT);
	raft_set_pre_vote(&c->raft, true);

	if (bootstrap) {
		raft_configuration_init(&conf);
		for (i = 0; i < cfg->n_members; i++) {
			rv = raft_configuration_add(
				&conf, cfg->members[i].id,
				cfg->members[i].raft_address, RAFT_VOTER);
			if (rv != 0) {
				raft_configuration_close(&conf);
				snprintf(errmsg, errlen,
					 "bad initial member %llu: %s",
					 (unsigned long long)cfg->members[i].id,
					 raft_strerror(rv));
				rv = CONS_EINVAL;
				goto err_after_raft;
			}
		}
		rv = raft_bootstrap(&c->raft, &conf);
		raft_configuration_close(&conf);
		if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
			snprintf(errmsg, errlen, "bootstrap: %s",
				 raft_errmsg(&c->raft));
			rv = cons__translate(rv);
			goto err_after_raft;
		}
	}
	*out = c;
	return 0;

err_after_raft:
	/* raft_init() done but not started: raft_close() still needs the
	 * loop; the caller exits the process on this path, so leak it. */
	return rv;
err_after_io:
	cons__snapguard_close(&c->guard);
	raft_uv_close(&c->io);
err_after_transport:
	raft_uv_tcp_close(&c->transport);
err_after_fsm:
	cons__fsm_close(&c->fsm);
err_free:
	free(c);
	return rv;
}

/* The snapshot raft_uv loads at start: the newest "snapshot-T-I-MS" file
 * of dir by (term, index, timestamp). Writes its name or "". */
static void newest_snapshot(const char *dir, char *name, size_t len)
{
	unsigned long long best[3] = {0, 0, 0}, t, i, ms;
	struct dirent *e;
	DIR *d = opendir(dir);
	int end;
	name[0] = '\0';
	if (d == NULL) {
		return;
	}
	while ((e = readdir(d)) != NULL) {
		end = 0;
		if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%n", &t, &i, &ms,
			   &end) != 3 ||
		    e->d_name[end] != '\0') {
			continue; /* not a snapshot, or its .meta */
		}
		if (t > best[0] || (t == best[0] && i > best[1]) ||
		    (t == best[0] && i == best[1] && ms >= best[2])) {
			best[0] = t;
			best[1] = i;
			best[2] = ms;
			snprintf(name, len, "%s", e->d_name);
		}
	}
	closedir(d);
}

int cons_start(struct cons *c, char *errmsg, size_t errlen)
{
	int rv = raft_start(&c->raft);
	if (rv != 0) {
		char snap[256];
		/* libraft says nothing when the FSM refuses the snapshot
		 * (the FSM printed why): name the file it was loading. */
		newest_snapshot(c->data_dir, snap, sizeof snap);
		if (raft_errmsg(&c->raft)[0] == '\0' && snap[0] != '\0') {
			snprintf(errmsg, errlen,
				 "raft_start(): cannot restore snapshot %s/%s "
				 "(corrupt or truncated)",
				 c->data_dir, snap);
		} else {
			snprintf(errmsg, errlen, "raft_start(): %s",
				 raft_errmsg(&c->raft));
		}
		return cons__translate(rv);
	}
	uv_check_init(c->loop, &c->check);
	c->check.data = c;
	uv_check_start(&c->check, check_cb);
	c->last_state = -1;
	c->started_ms = uv_now(c->loop);
	c->hurry_rng = c->me.boot ^ c->id;
	return 0;
}

/* ------------------------------------------------------- fast elections
 *
 * libraft waits a randomized election timeout (1-2x election_timeout_ms)
 * before it campaigns. That is right when the leader may only be slow, and
 * too slow when we know better: at start-up, when no node has a leader yet,
 * and when the leader's process is known to be gone. Then we shorten the
 * running timer through the public fields of struct raft (there is no API
 * for it in 0.22.1): follower_state.randomized_election_timeout counts from
 * election_timer_start, and the next tick (every heartbeat) starts the
 * election. Pre-vote makes an unneeded election harmless. */

#define HURRY_MIN_MS 10
#define HURRY_SPREAD_MS 60
#define STARTUP_MIN_MS 150
#define STARTUP_SPREAD_MS 150
#define STARTUP_WINDOW_MS 10000
#define HURRY_WINDOW_MS 3000

static unsigned hurry_jitter(struct cons *c, unsigned spread)
{
	c->hurry_rng ^= c->hurry_rng << 13;
	c->hurry_rng ^= c->hurry_rng >> 7;
	c->hurry_rng ^= c->hurry_rng << 17;
	return (unsigned)(c->hurry_rng % spread);
}

/* Makes the running election timer of a follower or candidate expire
 * within `ms` from now, if it would expire later. */
static void expire_within(struct cons *c, unsigned ms)
{
	struct raft *r = &c->raft;
	raft_time elapsed = r->io->time(r->io) - r->election_timer_start;
	unsigned *timeout;
	if (r->state == RAFT_FOLLOWER) {
		timeout = &r->follower_state.randomized_election_timeout;
	} else if (r->state == RAFT_CANDIDATE) {
		timeout = &r->candidate_state.randomized_election_timeout;
	} else {
		return;
	}
	if (elapsed + ms < *timeout) {
		*timeout = (unsigned)(elapsed + ms);
	}
}

void cons_hurry_election(struct cons *c, uint64_t leader_id)
{
	raft_id leader = 0;
	const char *addr = NULL;
	if (c->closing || raft_state(&c->raft) != RAFT_FOLLOWER) {
		return;
	}
	raft_leader(&c->raft, &leader, &addr);
	if (leader != leader_id) {
		return;
	}
	expire_within(c, HURRY_MIN_MS + hurry_jitter(c, HURRY_SPREAD_MS));
	/* The other follower may refuse our pre-vote if it has not noticed
	 * yet; keep retrying soon (hurry_leaderless) rather than after a whole
	 * election timeout as a candidate. */
	c->hurry_until = uv_now(c->loop) + HURRY_WINDOW_MS;
}

/* While this node knows no leader (a candidate, or a follower that voted
 * in a term nobody won yet), its next attempt comes soon and at a time of
 * its own:
 *
 * - at start-up until some leader is known, and for a while after a
 *   hurried election, 150-300 ms: a fresh cluster elects its first leader
 *   in a few hundred ms, and a node restarted alone learns the leader from
 *   its heartbeats before its short timer runs out (or is refused the
 *   pre-vote if not);
 * - otherwise E/4-E/2. libraft's own retry is another randomized 1-2 E,
 *   and followers refuse every vote, pre-votes too, while they still have
 *   a leader: a node that campaigned first, after the leader was cut off,
 *   was refused by the others and then waited up to 2 E more after they
 *   had timed out too and would have voted for it; two that campaigned in
 *   the same millisecond split the vote and waited another 1-2 E. Both
 *   cost 3-4 s elections at E = 1 s in partition runs. A retry at a fixed
 *   offset per node id ends a split vote in one short round, and the
 *   first retry after the last follower timed out wins.
 *
 * The offset is fixed per node, not a new draw each loop iteration:
 * redrawing would pull every node's timer down to the minimum. A node cut
 * off in a minority campaigns every E/4-E/2 for nothing: with pre-vote
 * that is a few small messages and no new term. */
static void hurry_leaderless(struct cons *c, uint64_t now, raft_id leader)
{
	bool starting = c->leader_changes == 0 &&
			now - c->started_ms <= STARTUP_WINDOW_MS;
	unsigned quarter = c->raft.election_timeout / 4;
	if (leader != 0 || c->raft.configuration.n < 2) {
		return;
	}
	if (starting || now < c->hurry_until) {
		expire_within(
			c, STARTUP_MIN_MS +
				   (unsigned)(c->id * 53 % STARTUP_SPREAD_MS));
	} else if (quarter > 0) {
		expire_within(c, quarter + (unsigned)(c->id * 53 % quarter));
	}
}

/* ------------------------------------------------------------- watching */

static void update_progress(struct cons *c, uint64_t now)
{
	unsigned i;
	for (i = 0; i < c->raft.configuration.n && i < CONS_MAX_NODES; i++) {
		raft_id id = c->raft.configuration.servers[i].id;
		raft_index match = 0;
		if (c->progress[i].id != id) {
			c->progress[i].id = id;
			c->progress[i].match = 0;
			c->progress[i].seen_ms = 0;
		}
		if (id == c->id) {
			c->progress[i].seen_ms = now;
			continue;
		}
		if (raft_match_index(&c->raft, id, &match) != 0) {
			continue;
		}
		/* Only progress counts: a dead follower that had every entry
		 * would otherwise look alive forever on an idle cluster. The
		 * leader's idle barriers (below) keep live ones moving. */
		if (match != c->progress[i].match) {
			c->progress[i].match = match;
			c->progress[i].seen_ms = now;
		}
	}
}

static void announce_cb(struct cons_propose *req, int status,
			const struct q_result *results, size_t n)
{
	(void)req;
	(void)status;
	(void)results;
	(void)n;
}

static int propose(struct cons *c, struct cons_propose *req,
		   const struct q_cmd *cmds, size_t n,
		   const Raftmq__Log__V1__SetMember *members, size_t n_members,
		   cons_propose_cb cb);

/* A new leader writes every client address it knows into the log, so that
 * a node that joins later (with no --members of its own) learns them from
 * the log or from a snapshot and can redirect its clients. */
static void announce_members(struct cons *c)
{
	Raftmq__Log__V1__SetMember m[CONS_MAX_NODES];
	size_t i, n = 0;
	for (i = 0; i < c->fsm.n_members; i++) {
		if (c->fsm.members[i].client_address[0] == '\0') {
			continue;
		}
		raftmq__log__v1__set_member__init(&m[n]);
		m[n].id = c->fsm.members[i].id;
		m[n].client_address = c->fsm.members[i].client_address;
		n++;
	}
	if (n > 0) {
		(void)propose(c, &c->announce, NULL, 0, m, n, announce_cb);
	}
}

static void idle_barrier_cb(struct raft_barrier *req, int status)
{
	struct cons *c = req->data;
	(void)status;
	c->idle_barrier_pending = 0;
}

/* A leader whose store lacks bodies (it installed a snapshot and has not
 * fetched them all yet) cannot deliver those messages: it hands the
 * leadership to another voter (libraft picks the one most up to date). At
 * most every MISSING_TRANSFER_MS, so that nodes that all lack bodies do not
 * pass the leadership around faster than that; a cluster in which every
 * voter lacks a body still serves everything else. A leader whose disk is
 * full keeps it: the bodies waiting in memory for space are served from
 * there (with every disk full, leaders passed the leadership around every
 * few seconds and cut their consumers). */
#define MISSING_TRANSFER_MS 30000

static void missing_transfer_cb(struct raft_transfer *req)
{
	struct cons *c = req->data;
	c->missing_transfer_pending = false;
}

static void transfer_if_missing(struct cons *c, uint64_t now)
{
	uint64_t missing;
	if (c->missing_transfer_pending || now < c->missing_transfer_at ||
	    c->raft.configuration.n < 2) {
		return;
	}
	missing = cons_bodies_missing(c);
	if (missing == 0) {
		return;
	}
	c->missing_transfer_at = now + MISSING_TRANSFER_MS;
	c->missing_transfer.data = c;
	if (raft_transfer(&c->raft, &c->missing_transfer, 0,
			  missing_transfer_cb) == 0) {
		c->missing_transfer_pending = true;
		fprintf(stderr,
			"raftmqd: node %llu leads but lacks %llu message "
			"bodies (not fetched yet): handing the leadership to "
			"another voter\n",
			(unsigned long long)c->id, (unsigned long long)missing);
	}
}

static void check_cb(uv_check_t *h)
{
	struct cons *c = h->data;
	int state = (int)raft_state(&c->raft);
	uint64_t term = raft_current_term(&c->raft);
	raft_id leader = 0;
	const char *addr = NULL;

	if (c->closing) {
		return;
	}
	cons__fsm_bg_poll(&c->fsm);
	cons__bodies_poll(&c->fsm.bodies, c->guard.takes_ok, uv_now(c->loop));
	raft_leader(&c->raft, &leader, &addr);
	if (state != RAFT_LEADER) {
		hurry_leaderless(c, uv_now(c->loop), leader);
	}
	if (state == RAFT_LEADER) {
		uint64_t now = uv_now(c->loop);
		update_progress(c, now);
		transfer_if_missing(c, now);
		/* On an idle cluster, append a barrier every half election
		 * timeout so followers' match indexes move and reachability
		 * (cons_status) reflects who is really there. */
		if (raft_last_index(&c->raft) != c->idle_last_index) {
			c->idle_last_index = raft_last_index(&c->raft);
			c->idle_since_ms = now;
		} else if (now - c->idle_since_ms >
				   c->raft.election_timeout / 2 &&
			   !c->idle_barrier_pending) {
			c->idle_barrier.data = c;
			if (raft_barrier(&c->raft, &c->idle_barrier,
					 idle_barrier_cb) == 0) {
				c->idle_barrier_pending = 1;
			}
			c->idle_since_ms = now;
		}
	}
	if (state == c->last_state && term == c->last_term &&
	    leader == c->last_leader) {
		return;
	}
	if (state == RAFT_CANDIDATE && c->last_state != RAFT_CANDIDATE) {
		c->elections++;
	}
	if (leader != c->last_leader && leader != 0) {
		c->leader_changes++;
	}
	if (state == RAFT_LEADER && c->last_state != RAFT_LEADER) {
		c->epoch = term;
		announce_members(c);
	} else if (state != RAFT_LEADER) {
		c->epoch = 0;
	}
	c->last_state = state;
	c->last_term = term;
	c->last_leader = leader;
	if (c->watch_cb != NULL) {
		c->watch_cb(c->watch_data);
	}
}

void cons_watch(struct cons *c, void (*cb)(void *data), void *data)
{
	c->watch_cb = cb;
	c->watch_data = data;
}

uint64_t cons_epoch(const struct cons *c)
{
	return c->epoch;
}

/* -------------------------------------------------------------- closing */

static void close_after_raft(struct raft *r)
{
	struct cons *c = r->data;
	void (*cb)(void *) = c->close_cb;
	void *data = c->close_data;
	cons__snapguard_close(&c->guard);
	raft_uv_close(&c->io);
	raft_uv_tcp_close(&c->transport);
	cons__fsm_close(&c->fsm);
	free(c);
	if (cb != NULL) {
		cb(data);
	}
}

static void check_closed(uv_handle_t *h)
{
	struct cons *c = h->data;
	raft_close(&c->raft, close_after_raft);
}

void cons_close(struct cons *c, void (*cb)(void *data), void *data)
{
	c->closing = 1;
	c->close_cb = cb;
	c->close_data = data;
	if (uv_is_active((uv_handle_t *)&c->check) ||
	    c->check.type == UV_CHECK) {
		uv_close((uv_handle_t *)&c->check, check_closed);
	} else {
		raft_close(&c->raft, close_after_raft);
	}
}

/* ------------------------------------------------------------ proposals */

static void pending_unlink(struct cons_pending *p)
{
	assert(p->prev->next == p && p->next->prev == p);
	p->prev->next = p->next;
	p->next->prev = p->prev;
	p->next = p->prev = p;
}

struct cons_pending *cons__pending_find(struct cons *c,
					const Raftmq__Log__V1__LogEntry *e)
{
	struct cons_pending *p;
	if (c == NULL || e->proposer_id != c->me.id ||
	    e->proposer_boot != c->me.boot) {
		return NULL;
	}
	/* Entries apply in the order they were proposed, so the match is
	 * almost always the oldest pending proposal. */
	for (p = c->pending.next; p != &c->pending; p = p->next) {
		if (p->seq == e->proposal_seq) {
			return p;
		}
	}
	return NULL;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct cons_pending *p = req->data;
	struct cons_propose *user = p->user;
	(void)result;
	pending_unlink(p);
	if (status == 0 && !p->applied) {
		/* Committed but its results were not matched: should not
		 * happen; the client cannot know what was done. */
		status = RAFT_LEADERSHIPLOST;
	}
	if (status == 0) {
		user->cb(user, 0, p->results, p->n);
	} else {
		user->cb(user, cons__translate(status), NULL, 0);
	}
	free(p);
}

static int propose(struct cons *c, struct cons_propose *req,
		   const struct q_cmd *cmds, size_t n,
		   const Raftmq__Log__V1__SetMember *members, size_t n_members,
		   cons_propose_cb cb)
{
	struct cons_pending *p;
	struct raft_buffer buf;
	size_t slots = n + n_members;
	int rv;

	if (c->closing) {
		return CONS_ESHUTDOWN;
	}
	if (raft_state(&c->raft) != RAFT_LEADER) {
		return CONS_ENOTLEADER;
	}
	p = calloc(1, sizeof *p + slots * sizeof *p->results);
	if (p == NULL) {
		return CONS_ENOMEM;
	}
	p->results = (struct q_result *)(void *)(p + 1);
	p->n = slots;
	p->user = req;
	p->c = c;
	p->seq = ++c->me.seq;
	p->req.data = p;
	req->cb = cb;
	req->priv = p;
	{
		struct cons_proposer by = c->me;
		rv = cons__entry_encode(cmds, n, members, n_members,
					cons_clock_ms(c), &by, &buf);
	}
	if (rv != 0) {
		free(p);
		return rv;
	}
	if (c->raft.transfer != NULL) {
		/* A leadership transfer is under way: raft_apply() refuses
		 * with RAFT_NOTLEADER before it looks at the buffer, which
		 * is then ours to free (a leader handing on for a full disk
		 * or missing bodies met this: 64 KiB leaked per publish). */
		raft_free(buf.base);
		free(p);
		return CONS_ENOTLEADER;
	}
	rv = raft_apply(&c->raft, &p->req, &buf, 1, apply_cb);
	if (rv != 0) {
		/* 0.22.1 frees the buffer itself on some failures (seen for
		 * RAFT_INVALID) although its header says ownership passes
		 * only on success: never free it here. We checked leadership
		 * above, so failures are rare; a leak beats a double free. */
		free(p);
		return cons__translate(rv);
	}
	p->prev = c->pending.prev;
	p->next = &c->pending;
	c->pending.prev->next = p;
	c->pending.prev = p;
	c->entries_proposed++;
	c->commands_proposed += n;
	return 0;
}

int cons_propose(struct cons *c, struct cons_propose *req,
		 const struct q_cmd *cmds, size_t n, cons_propose_cb cb)
{
	/* An empty entry would commit and answer nothing: a caller bug. */
	assert(n > 0);
	return propose(c, req, cmds, n, NULL, 0, cb);
}

struct barrier_req {
	struct raft_barrier req;
	struct cons_barrier *user;
};

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct barrier_req *b = req->data;
	struct cons_barrier *user = b->user;
	free(b);
	user->cb(user, cons__translate(status));
}

int cons_barrier(struct cons *c, struct cons_barrier *req, cons_barrier_cb cb)
{
	struct barrier_req *b;
	int rv;
	if (c->closing) {
		return CONS_ESHUTDOWN;
	}
	b = calloc(1, sizeof *b);
	if (b == NULL) {
		return CONS_ENOMEM;
	}
	b->user = req;
	b->req.data = b;
	req->cb = cb;
	req->priv = b;
	rv = raft_barrier(&c->raft, &b->req, barrier_cb);
	if (rv != 0) {
		free(b);
		return cons__translate(rv);
	}
	return 0;
}

/* ------------------------------------------------------------------ reads */

const struct q_state *cons_state(const struct cons *c)
{
	return c->fsm.state;
}

static int role_of(int raft_role)
{
	switch (raft_role) {
	case RAFT_VOTER:
		return CONS_ROLE_VOTER;
	case RAFT_STANDBY:
		return CONS_ROLE_STANDBY;
	default:
		return CONS_ROLE_SPARE;
	}
}

void cons_status(const struct cons *cc, struct cons_status *st)
{
	struct cons *c = (struct cons *)(uintptr_t)cc; /* raft getters */
	raft_id leader = 0;
	const char *addr = NULL;
	uint64_t now = uv_now(c->loop);
	unsigned election = c->raft.election_timeout;
	unsigned i;

	memset(st, 0, sizeof *st);
	st->id = c->id;
	st->is_leader = raft_state(&c->raft) == RAFT_LEADER;
	st->state = raft_state_name((int)raft_state(&c->raft));
	raft_leader(&c->raft, &leader, &addr);
	st->leader_id = leader;
	snprintf(st->leader_client_address, sizeof st->leader_client_address,
		 "%s",
		 leader != 0 ? cons__fsm_member_addr(&c->fsm, leader) : "");
	st->term = raft_current_term(&c->raft);
	st->commit_index = raft_commit_index(&c->raft);
	st->applied_index = raft_last_applied(&c->raft);
	st->last_index = raft_last_index(&c->raft);
	st->snapshot_index = c->fsm.snapshot_index;
	st->snapshot_bytes = c->fsm.snapshot_bytes;
	st->log_entries = st->last_index > st->snapshot_index
				  ? st->last_index - st->snapshot_index
				  : 0;
	st->log_bytes = c->fsm.log_bytes;
	st->bg_started = c->fsm.bg.started;
	st->bg_taken = c->fsm.bg.taken;
	st->bg_failed = c->fsm.bg.failed;
	st->bg_fork_ms = (double)c->fsm.bg.fork_ns / 1e6;
	st->bg_fork_ms_max = (double)c->fsm.bg.fork_ns_max / 1e6;
	st->bg_child_ms = (double)c->fsm.bg.child_ns / 1e6;
	st->bg_tail_entries = c->fsm.bg.last_tail_entries;
	st->elections = c->elections;
	st->leader_changes = c->leader_changes;
	st->entries_proposed = c->entries_proposed;
	st->commands_proposed = c->commands_proposed;
	for (i = 0; i < c->raft.configuration.n && i < CONS_MAX_NODES; i++) {
		const struct raft_server *s = &c->raft.configuration.servers[i];
		struct cons_node_status *n = &st->nodes[st->n_nodes++];
		n->id = s->id;
		snprintf(n->raft_address, sizeof n->raft_address, "%s",
			 s->address);
		snprintf(n->client_address, sizeof n->client_address, "%s",
			 cons__fsm_member_addr(&c->fsm, s->id));
		n->role = role_of(s->role);
		n->last_contact_ms = -1;
		if (s->id == c->id) {
			n->reachable = CONS_REACH_YES;
		} else if (st->is_leader) {
			bool seen = c->progress[i].id == s->id;
			if (seen) {
				n->last_contact_ms =
					(int64_t)(now - c->progress[i].seen_ms);
			}
			n->reachable =
				seen && now - c->progress[i].seen_ms <
							2 * (uint64_t)election
					? CONS_REACH_YES
					: CONS_REACH_NO;
		} else if (s->id == leader) {
			/* A follower restarts its election timer on each
			 * message of the leader (heartbeats included), so the
			 * timer's start is the leader's last contact. */
			raft_time t = c->raft.io->time(c->raft.io);
			raft_time last = c->raft.election_timer_start;
			n->last_contact_ms = t > last ? (int64_t)(t - last) : 0;
			n->reachable =
				n->last_contact_ms < 2 * (int64_t)election
					? CONS_REACH_YES
					: CONS_REACH_NO;
		} else {
			/* Nothing reaches a follower about the other
			 * followers: say so rather than "unreachable". */
			n->reachable = CONS_REACH_UNKNOWN;
		}
	}
}

/* ----------------------------------------------------------- membership */

const char *cons_errmsg(const struct cons *c)
{
	return c->errmsg;
}

static const char *role_name(int raft_role)
{
	static const char *const names[] = {"voter", "standby", "spare"};
	return names[role_of(raft_role)];
}

/* The member `id`, or NULL. */
static const struct raft_server *member(struct cons *c, uint64_t id)
{
	unsigned i;
	for (i = 0; i < c->raft.configuration.n; i++) {
		if (c->raft.configuration.servers[i].id == id) {
			return &c->raft.configuration.servers[i];
		}
	}
	return NULL;
}

/* "node 9 is not a member of the cluster (members: 1 voter, 2 voter)". */
static int not_member(struct cons *c, uint64_t id)
{
	size_t n;
	unsigned i;
	n = (size_t)snprintf(c->errmsg, sizeof c->errmsg,
			     "node %llu is not a member of the cluster "
			     "(members:",
			     (unsigned long long)id);
	for (i = 0; i < c->raft.configuration.n && n < sizeof c->errmsg; i++) {
		const struct raft_server *s = &c->raft.configuration.servers[i];
		n += (size_t)snprintf(c->errmsg + n, sizeof c->errmsg - n,
				      "%s node %llu %s", i ? "," : "",
				      (unsigned long long)s->id,
				      role_name(s->role));
	}
	if (n < sizeof c->errmsg) {
		snprintf(c->errmsg + n, sizeof c->errmsg - n, ")");
	}
	return CONS_EBADID;
}

/* Refusals libraft would give with one code (RAFT_BUSY, RAFT_BADID),
 * said in words first. Returns 0 when none applies. */
static int busy(struct cons *c)
{
	if (c->raft.configuration_uncommitted_index == 0) {
		return 0;
	}
	snprintf(c->errmsg, sizeof c->errmsg,
		 "another membership change is in progress; retry when it "
		 "is done (raftmq cluster status)");
	return CONS_EBUSY;
}

struct change_req {
	struct raft_change req;
	struct cons_propose member; /* the SetMember proposal */
	struct cons_change *user;
	struct cons *c;
	uint64_t id;
	int role;
	char raft_address[64];
	int step; /* 0: SetMember, 1: add, 2: assign */
	struct raft_transfer transfer;
};

static void change_done(struct change_req *w, int status)
{
	struct cons_change *user = w->user;
	free(w);
	user->cb(user, status);
}

static int raft_role_of(int role)
{
	return role == CONS_ROLE_STANDBY ? RAFT_STANDBY
	       : role == CONS_ROLE_SPARE ? RAFT_SPARE
					 : RAFT_VOTER;
}

static void change_cb(struct raft_change *req, int status);

/* Gives the member its role (libraft catches it up first, then commits
 * the new role). */
static void promote(struct change_req *w)
{
	int rv;
	w->step = 2;
	rv = raft_assign(&w->c->raft, &w->req, w->id, raft_role_of(w->role),
			 change_cb);
	if (rv != 0) {
		change_done(w, cons__translate(rv));
	}
}

static void change_cb(struct raft_change *req, int status)
{
	struct change_req *w = req->data;
	if (status != 0) {
		change_done(w, cons__translate(status));
		return;
	}
	if (w->step == 1 && w->role != CONS_ROLE_SPARE) {
		promote(w); /* added as a spare: now the role */
		return;
	}
	change_done(w, 0);
}

static void member_cb(struct cons_propose *req, int status,
		      const struct q_result *results, size_t n)
{
	struct change_req *w = req->data;
	const struct raft_server *s;
	int rv;
	(void)results;
	(void)n;
	if (status != 0) {
		change_done(w, status);
		return;
	}
	s = member(w->c, w->id);
	if (s != NULL) {
		/* A retry of an add cut short (cons_add): the node is in the
		 * configuration already, with this address. */
		if (s->role == raft_role_of(w->role)) {
			change_done(w, 0);
		} else {
			promote(w);
		}
		return;
	}
	w->step = 1;
	rv = raft_add(&w->c->raft, &w->req, w->id, w->raft_address, change_cb);
	if (rv != 0) {
		change_done(w, cons__translate(rv));
	}
}

/* A membership request wrapper, or NULL. */
static struct change_req *change_new(struct cons *c, struct cons_change *req,
				     uint64_t id, cons_change_cb cb)
{
	struct change_req *w = calloc(1, sizeof *w);
	if (w == NULL) {
		return NULL;
	}
	w->user = req;
	w->c = c;
	w->id = id;
	w->req.data = w;
	w->transfer.data = w;
	w->member.data = w;
	req->cb = cb;
	req->priv = w;
	return w;
}

int cons_add(struct cons *c, struct cons_change *req, uint64_t id,
	     const char *raft_address, const char *client_address, int role,
	     cons_change_cb cb)
{
	struct change_req *w;
	const struct raft_server *s;
	Raftmq__Log__V1__SetMember m;
	int rv;
	c->errmsg[0] = '\0';
	if (id == 0 || raft_address == NULL || client_address == NULL ||
	    strlen(raft_address) >= sizeof w->raft_address ||
	    strlen(client_address) >= 64) {
		return CONS_EINVAL;
	}
	if ((rv = busy(c)) != 0) {
		return rv;
	}
	/* The same node at the same address: a retry. An add is two
	 * configuration changes (spare, then the role once libraft has caught
	 * the node up); a leader change in between leaves a spare that a
	 * retry must finish, not refuse. A member already in the role asked
	 * for is a success, as for queue create. */
	if ((s = member(c, id)) != NULL && strcmp(s->address, raft_address)) {
		snprintf(c->errmsg, sizeof c->errmsg,
			 "node %llu is already a member (%s at %s, not %s)",
			 (unsigned long long)id, role_name(s->role), s->address,
			 raft_address);
		return CONS_EBADID;
	}
	for (unsigned i = 0; i < c->raft.configuration.n; i++) {
		s = &c->raft.configuration.servers[i];
		if (s->id != id && strcmp(s->address, raft_address) == 0) {
			snprintf(c->errmsg, sizeof c->errmsg,
				 "raft address %s is already node %llu's",
				 raft_address, (unsigned long long)s->id);
			return CONS_EBADID;
		}
	}
	w = change_new(c, req, id, cb);
	if (w == NULL) {
		return CONS_ENOMEM;
	}
	w->role = role;
	snprintf(w->raft_address, sizeof w->raft_address, "%s", raft_address);
	raftmq__log__v1__set_member__init(&m);
	m.id = id;
	m.client_address = (char *)(uintptr_t)client_address;
	rv = propose(c, &w->member, NULL, 0, &m, 1, member_cb);
	if (rv != 0) {
		free(w);
		return rv;
	}
	return 0;
}

int cons_remove(struct cons *c, struct cons_change *req, uint64_t id,
		cons_change_cb cb)
{
	struct change_req *w;
	int rv;
	c->errmsg[0] = '\0';
	if (raft_state(&c->raft) == RAFT_LEADER) {
		if (member(c, id) == NULL) {
			return not_member(c, id);
		}
		if ((rv = busy(c)) != 0) {
			return rv;
		}
	}
	w = change_new(c, req, id, cb);
	if (w == NULL) {
		return CONS_ENOMEM;
	}
	rv = raft_remove(&c->raft, &w->req, id, change_cb);
	if (rv != 0) {
		free(w);
		return cons__translate(rv);
	}
	return 0;
}

static void transfer_cb(struct raft_transfer *req)
{
	struct change_req *w = req->data;
	change_done(w, raft_state(&w->c->raft) == RAFT_LEADER
			       ? CONS_ELEADERSHIPLOST
			       : 0);
}

int cons_transfer(struct cons *c, struct cons_change *req, uint64_t id,
		  cons_change_cb cb)
{
	const struct raft_server *s;
	struct change_req *w;
	int rv;
	c->errmsg[0] = '\0';
	if (raft_state(&c->raft) == RAFT_LEADER && id != 0) {
		if ((s = member(c, id)) == NULL) {
			return not_member(c, id);
		}
		if (id == c->id) {
			snprintf(c->errmsg, sizeof c->errmsg,
				 "node %llu is the leader already",
				 (unsigned long long)id);
			return CONS_EBADID;
		}
		if (s->role != RAFT_VOTER) {
			snprintf(c->errmsg, sizeof c->errmsg,
				 "node %llu is a %s: only a voter can lead",
				 (unsigned long long)id, role_name(s->role));
			return CONS_EBADID;
		}
	}
	w = change_new(c, req, id, cb);
	if (w == NULL) {
		return CONS_ENOMEM;
	}
	rv = raft_transfer(&c->raft, &w->transfer, id, transfer_cb);
	if (rv != 0) {
		free(w);
		if (rv == RAFT_NOTFOUND && id == 0) {
			snprintf(c->errmsg, sizeof c->errmsg,
				 "there is no other voter to take the "
				 "leadership");
		}
		return cons__translate(rv);
	}
	return 0;
}
