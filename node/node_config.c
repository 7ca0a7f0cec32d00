/* raftmqd's configuration: one static table of options drives the INI file
 * (libinih), the command-line flags, `--help` and the docs check, so a key
 * cannot exist in one of them and not in the others.
 *
 * Happy path: node_config_defaults() fills the defaults by parsing each
 * option's default text with the same code that parses the file and the
 * flags; node_config_parse_args() reads `--config FILE` first and then
 * applies the other flags in order; node_config_validate() checks what only
 * the whole configuration can tell (required keys, membership).
 *
 * Failure modes: every function that can fail writes one sentence into the
 * caller's buffer and leaves the caller's struct untouched, because both the
 * file and the flags are applied to a copy that is committed only on
 * success. Nothing here opens sockets or starts anything. */
#include "node_config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "cons_defaults.h"

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* cons_defaults.h: consensus/ uses those when a [raft] value is 0;
 * validation needs them to compare values left at "default". */
#define D CONS_STR

/* A request goes into the Raft log in one entry, of at most
 * CONS_MAX_ENTRY_MIB: node/ counts a publish as its frame plus
 * CONS_COMMAND_WRAP_BYTES, and the entry adds at most
 * CONS_ENTRY_BASE_BYTES (node_server.c). So the largest frame whose request
 * surely fits is the cap less those. */
#define ENTRY_OVERHEAD (CONS_ENTRY_BASE_BYTES + CONS_COMMAND_WRAP_BYTES)
#define MAX_FRAME_IN_ENTRY ((uint64_t)CONS_MAX_ENTRY_MIB * MIB - ENTRY_OVERHEAD)
#define ENTRY_CAP_TEXT D(CONS_MAX_ENTRY_MIB) " MiB"

enum opt_type {
	OPT_U64,       /* uint64_t in [min, max] */
	OPT_UINT,      /* unsigned in [min, max] */
	OPT_SIZE,      /* uint64_t bytes, optional k/M/G suffix */
	OPT_SIZE_PCT,  /* OPT_SIZE, or "N%" of physical RAM */
	OPT_STRING,    /* char[size], non-empty */
	OPT_ADDRESS,   /* char[size], "host:port"; empty only if may_be_empty */
	OPT_LOG_LEVEL, /* int, enum node_log_level by name */
	OPT_BOOL,      /* bool: on/off, true/false, yes/no, 1/0 */
	OPT_MEMBERS,   /* members[] + n_members */
};

struct opt {
	const char *section;
	const char *key;
	enum opt_type type;
	size_t offset; /* of the field in struct node_config */
	size_t size;   /* of the field, for strings */
	uint64_t min;  /* numbers and sizes */
	uint64_t max;
	bool may_be_empty; /* addresses: "" switches the feature off */
	const char *def; /* default, parsed like a file value; NULL: required */
	const char *arg; /* placeholder in --help */
	const char *unit; /* shown after the default in --help */
	const char *help;
};

#define FIELD(f) \
	offsetof(struct node_config, f), sizeof(((struct node_config *)0)->f)

/* The order is the order of --help and of docs/config.md. A flag's name is
 * its key with dashes for underscores, so keys must be unique across
 * sections (a unit test checks it). */
static const struct opt opts[] = {
	{"node", "id", OPT_U64, FIELD(id), 1, UINT64_MAX, false, NULL, "N",
	 NULL,
	 "This node's Raft id: unique in the cluster, never reused after the "
	 "node is removed."},
	{"node", "data_dir", OPT_STRING, FIELD(data_dir), 0, 0, false, NULL,
	 "PATH", NULL,
	 "Directory of this node's Raft log, snapshots, body store "
	 "(bodies/) and metadata; one per node."},
	{"node", "store_segment_bytes", OPT_SIZE, FIELD(store_segment_bytes),
	 4096, GIB, false, "64M", "SIZE", NULL,
	 "Size of a body store segment file: message bodies are appended to "
	 "one until it holds this much; a segment whose messages are all "
	 "acked is deleted, one mostly acked is compacted."},
	{"node", "raft_address", OPT_ADDRESS, FIELD(raft_address), 0, 0, false,
	 NULL, "HOST:PORT", NULL,
	 "Address the Raft transport listens on and the other nodes connect "
	 "to; "
	 "must equal this node's raft address in members."},
	{"node", "client_address", OPT_ADDRESS, FIELD(client_address), 0, 0,
	 false, NULL, "HOST:PORT", NULL, "Address clients connect to."},
	{"node", "http_address", OPT_ADDRESS, FIELD(http_address), 0, 0, true,
	 "", "HOST:PORT", NULL,
	 "Address of the HTTP endpoint (/metrics, /healthz/live, "
	 "/healthz/ready, /v1/status). Empty: no HTTP endpoint."},
	{"node", "log_level", OPT_LOG_LEVEL, FIELD(log_level), 0, 0, false,
	 "info", "LEVEL", NULL, "One of error, warn, info or debug."},
	{"node", "auth", OPT_BOOL, FIELD(auth), 0, 0, false, "off", "on|off",
	 NULL,
	 "Clients must authenticate: Hello carries a token of a [user.NAME] "
	 "section, and every request is checked against that user's "
	 "permissions. Off: every client may do everything."},
	{"node", "tls_cert", OPT_STRING, FIELD(tls_cert), 0, 0, true, "",
	 "PATH", NULL,
	 "PEM certificate (chain) of the client port. Set with tls_key: "
	 "clients must then connect with TLS; plain connections are refused. "
	 "Empty: plain TCP."},
	{"node", "tls_key", OPT_STRING, FIELD(tls_key), 0, 0, true, "", "PATH",
	 NULL, "PEM private key of tls_cert."},
	{"node", "tls_ca", OPT_STRING, FIELD(tls_ca), 0, 0, true, "", "PATH",
	 NULL,
	 "PEM CA certificates: clients must present a certificate signed by "
	 "one of them. Empty: client certificates are not asked for."},

	{"cluster", "members", OPT_MEMBERS, FIELD(members), 0, 0, true, "",
	 "LIST", NULL,
	 "Initial members, ID@RAFT_ADDRESS@CLIENT_ADDRESS separated by commas "
	 "(in a file, a long list may continue on indented lines). Must "
	 "include this node. Empty: this node joins an existing cluster "
	 "(raftmq cluster add)."},
	{"cluster", "peer_token_file", OPT_STRING, FIELD(peer_token_file), 0, 0,
	 true, "", "PATH", NULL,
	 "File holding the token of an admin user, which this node sends when "
	 "it fetches missing message bodies from its peers (after installing "
	 "a snapshot). Needed when the peers have auth on."},

	{"raft", "election_timeout_ms", OPT_UINT, FIELD(election_timeout_ms), 0,
	 3600000, false, D(CONS_DEFAULT_ELECTION_MS), "MS", "ms",
	 "Raft election timeout; also sizes the TCP user timeout, keepalive "
	 "and connect deadline of Raft connections (docs/libraft.md); 0 = "
	 "default (" D(CONS_DEFAULT_ELECTION_MS) ")."},
	{"raft", "heartbeat_timeout_ms", OPT_UINT, FIELD(heartbeat_timeout_ms),
	 0, 3600000, false, D(CONS_DEFAULT_HEARTBEAT_MS), "MS", "ms",
	 "Interval of the leader's heartbeats; must be below the election "
	 "timeout. 0 = default (" D(CONS_DEFAULT_HEARTBEAT_MS) ")."},
	{"raft", "snapshot_threshold", OPT_UINT, FIELD(snapshot_threshold), 0,
	 UINT_MAX, false, D(CONS_DEFAULT_SNAPSHOT_THRESHOLD), "N", "entries",
	 "Take a snapshot after this many applied entries; 0 = default "
	 "(" D(CONS_DEFAULT_SNAPSHOT_THRESHOLD) ")."},
	{"raft", "snapshot_trailing", OPT_UINT, FIELD(snapshot_trailing), 0,
	 UINT_MAX, false, D(CONS_DEFAULT_SNAPSHOT_TRAILING), "N", "entries",
	 "Entries kept in the log after a snapshot, so that a slightly lagging "
	 "follower catches up without a snapshot install; 0 = default "
	 "(" D(CONS_DEFAULT_SNAPSHOT_TRAILING) ")."},
	{"raft", "snapshot_min_bytes", OPT_SIZE, FIELD(snapshot_min_bytes), 0,
	 1024 * GIB, false, D(CONS_DEFAULT_SNAPSHOT_MIN_MIB) "M", "SIZE", NULL,
	 "Also take a snapshot once the log since the last one holds this "
	 "many bytes and 2-4 times as many as the queue state (by role, so "
	 "that nodes do not snapshot together), so that the log kept in memory "
	 "is bounded by bytes as well as entries; 0 = default "
	 "(" D(CONS_DEFAULT_SNAPSHOT_MIN_MIB) "M)."},
	{"raft", "snapshot_trailing_bytes", OPT_SIZE,
	 FIELD(snapshot_trailing_bytes), 0, 1024 * GIB, false,
	 D(CONS_DEFAULT_TRAILING_MIB) "M", "SIZE", NULL,
	 "About this many bytes of entries are kept after a snapshot (at "
	 "least 512 entries, at most snapshot_trailing); 0 = default "
	 "(" D(CONS_DEFAULT_TRAILING_MIB) "M)."},
	{"raft", "snapshot_max_log_bytes", OPT_SIZE,
	 FIELD(snapshot_max_log_bytes), 0, 1024 * GIB, false, "512M", "SIZE",
	 NULL,
	 "A snapshot is due once the log since the last one holds this many "
	 "bytes, whatever the size of the queue state, so that the log kept "
	 "in memory stays bounded; 0 = off. Snapshots hold the queue state's "
	 "index (bodies are in the body store): about 71 bytes per "
	 "message."},
	{"raft", "snapshot_in_place", OPT_BOOL, FIELD(snapshot_in_place), 0, 0,
	 false, "off", "on|off", NULL,
	 "Take snapshots on the node's loop thread, a stall of about 4 ms per "
	 "MB of queue state, instead of in a child process that shares the "
	 "state copy-on-write (the default); for diagnosis, and for clusters "
	 "with nodes of older versions (docs/operations.md)."},
	{"raft", "max_inflight_entries", OPT_UINT, FIELD(max_inflight_entries),
	 0, 1048576, false, D(CONS_DEFAULT_MAX_INFLIGHT), "N", "entries",
	 "Log entries appended but not yet committed, at most; 0 = default "
	 "(" D(CONS_DEFAULT_MAX_INFLIGHT) ")."},

	{"limits", "memory_limit", OPT_SIZE_PCT, FIELD(memory_limit), MIB,
	 UINT64_MAX, false, "40%", "SIZE|N%", "of RAM",
	 "Bytes held in memory for messages (the queue state's index, the "
	 "Raft log since the last snapshot, the body store's index; bodies "
	 "are on disk) above which publishes fail with RESOURCE_LIMIT "
	 "instead of the process running out of memory. A size, or a "
	 "percentage of physical RAM."},
	{"limits", "disk_limit", OPT_SIZE, FIELD(disk_limit), 0, UINT64_MAX,
	 false, "0", "SIZE", NULL,
	 "Bytes of message bodies in the body store (data_dir/bodies) above "
	 "which publishes fail with RESOURCE_LIMIT instead of the disk "
	 "filling up; 0 = 90% of the size of the file system that holds "
	 "data_dir (the Raft log and snapshots need the rest)."},
	{"limits", "max_frame_bytes", OPT_SIZE, FIELD(max_frame_bytes), KIB,
	 GIB, false, "8M", "SIZE", NULL,
	 "Largest client frame; a longer length prefix closes the connection "
	 "with an error frame. Below " ENTRY_CAP_TEXT ": a request must fit "
	 "in one log entry with the entry's own bytes."},
	{"limits", "max_message_bytes", OPT_SIZE, FIELD(max_message_bytes), 1,
	 GIB, false, "4M", "SIZE", NULL,
	 "Largest message body; must be below max_frame_bytes."},
	{"limits", "max_connections", OPT_UINT, FIELD(max_connections), 1,
	 1000000, false, "10000", "N", "connections",
	 "Client connections served at once; more are refused. Each "
	 "follower holds one to the leader (it watches the leader's "
	 "process), so allow for the cluster's size."},
	{"limits", "hello_timeout_ms", OPT_UINT, FIELD(hello_timeout_ms), 0,
	 3600000, false, "10000", "MS", "ms",
	 "A client connection that has not sent its first request (Hello, "
	 "when auth is on) this long after connecting, TLS handshake "
	 "included, is closed and counted in "
	 "raftmq_connections_idle_closed_total. The followers' leader-watch "
	 "connections are exempt. 0: never."},
	{"limits", "client_write_timeout_ms", OPT_UINT,
	 FIELD(client_write_timeout_ms), 0, 3600000, false, "10000", "MS", "ms",
	 "A consumer's connection whose socket has taken no byte for this "
	 "long while deliveries wait for it (a consumer that does not read) "
	 "is closed; its unacked messages return to the queue. 0: never."},
	{"limits", "max_client_output_bytes", OPT_SIZE,
	 FIELD(max_client_output_bytes), 64 * KIB, 4 * GIB, false, "16M",
	 "SIZE", NULL,
	 "Stop reading from a client whose unsent output exceeds this, and "
	 "disconnect one whose unsent output reaches twice this, so a slow "
	 "reader cannot make the node buffer without bound. Deliveries past "
	 "half of this (4 MiB at most) of unsent output wait as small "
	 "records and are encoded as the socket drains (see "
	 "client_write_timeout_ms for a consumer that does not read)."},

	{"batching", "max_batch_commands", OPT_UINT, FIELD(max_batch_commands),
	 1, 1048576, false, "4096", "N", "commands",
	 "Commands packed into one log entry, at most."},
	{"batching", "max_batch_bytes", OPT_SIZE, FIELD(max_batch_bytes), KIB,
	 GIB, false, "1M", "SIZE", NULL,
	 "Bytes of commands packed into one log entry, at most; a larger "
	 "request goes alone. An entry never holds more than " ENTRY_CAP_TEXT
	 "."},
	{"batching", "max_inflight_batches", OPT_UINT,
	 FIELD(max_inflight_batches), 1, 1024, false, "16", "N", "entries",
	 "Batches (log entries) proposed and not yet applied, at most; must "
	 "not exceed max_inflight_entries."},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const sections[] = {"node", "raft", "cluster", "limits",
				       "batching"};
#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

static const char *const level_names[] = {"error", "warn", "info", "debug"};

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen,
						       const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void *field(struct node_config *c, const struct opt *o)
{
	return (char *)c + o->offset;
}

static bool section_known_n(const char *name, size_t len)
{
	for (size_t i = 0; i < N_SECTIONS; i++) {
		if (strlen(sections[i]) == len &&
		    memcmp(sections[i], name, len) == 0) {
			return true;
		}
	}
	return false;
}

static const struct opt *find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (strcmp(opts[i].key, key) == 0 &&
		    (section == NULL ||
		     strcmp(opts[i].section, section) == 0)) {
			return &opts[i];
		}
	}
	return NULL;
}

/* "data-dir" (len bytes, not terminated) names key "data_dir". */
static bool flag_names_key(const char *name, size_t len, const char *key)
{
	if (strlen(key) != len) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char k = key[i] == '_' ? '-' : key[i];
		if (name[i] != k) {
			return false;
		}
	}
	return true;
}

static const struct opt *find_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		if (flag_names_key(name, len, opts[i].key)) {
			return &opts[i];
		}
	}
	return NULL;
}

static void flag_of(const struct opt *o, char *buf, size_t len)
{
	size_t i;

	assert(len > 2);
	buf[0] = '-';
	buf[1] = '-';
	for (i = 0; o->key[i] != '\0' && i + 3 < len; i++) {
		buf[i + 2] = o->key[i] == '_' ? '-' : o->key[i];
	}
	buf[i + 2] = '\0';
}

/* ----------------------------------------------------------------- values */

/* Only plain decimal digits: strtoull alone would accept " 12", "+12",
 * "-1" (as a huge number) and "0x10". */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t n = 0;

	if (len == 0) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned d;
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10) {
			return -1;
		}
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static bool all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
	}
	return len > 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Writes a byte count the way a user would type it back ("8M"). */
static void format_size(uint64_t n, char *buf, size_t len)
{
	if (n != 0 && n % GIB == 0) {
		snprintf(buf, len, "%lluG", (unsigned long long)(n / GIB));
	} else if (n != 0 && n % MIB == 0) {
		snprintf(buf, len, "%lluM", (unsigned long long)(n / MIB));
	} else if (n != 0 && n % KIB == 0) {
		snprintf(buf, len, "%lluk", (unsigned long long)(n / KIB));
	} else {
		snprintf(buf, len, "%llu", (unsigned long long)n);
	}
}

static int check_range(const struct opt *o, uint64_t n, char *why,
		       size_t whylen)
{
	char lo[32], hi[32];

	if (n >= o->min && n <= o->max) {
		return 0;
	}
	if (o->type == OPT_SIZE || o->type == OPT_SIZE_PCT) {
		format_size(n, hi, sizeof(hi));
		format_size(o->min, lo, sizeof(lo));
		if (o->max == UINT64_MAX) {
			errf(why, whylen, "%s bytes is below the minimum of %s",
			     hi, lo);
			return -1;
		}
		format_size(o->max, hi, sizeof(hi));
		errf(why, whylen, "%llu bytes is out of range (%s to %s bytes)",
		     (unsigned long long)n, lo, hi);
		return -1;
	}
	if (o->max == UINT64_MAX) {
		errf(why, whylen, "%llu is out of range (at least %llu)",
		     (unsigned long long)n, (unsigned long long)o->min);
		return -1;
	}
	errf(why, whylen, "%llu is out of range (%llu to %llu)",
	     (unsigned long long)n, (unsigned long long)o->min,
	     (unsigned long long)o->max);
	return -1;
}

static int ram_bytes(uint64_t *out)
{
	long pages = sysconf(_SC_PHYS_PAGES);
	long page = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || page <= 0) {
		return -1;
	}
	*out = (uint64_t)pages * (uint64_t)page;
	return 0;
}

/* "123", "4k", "8M", "1G", "3MiB" (k/M/G are powers of 1024, any case; a
 * trailing "B" or "iB" is tolerated because people write it), or for
 * memory_limit "40%". */
static int parse_size(const struct opt *o, const char *v, uint64_t *out,
		      char *why, size_t whylen)
{
	size_t digits = strspn(v, "0123456789");
	const char *suffix = v + digits;
	uint64_t n, mult = 1;

	if (digits == 0) {
		errf(why, whylen,
		     "'%s' is not a size (a whole number of bytes, optionally "
		     "followed by k, M or G)",
		     v);
		return -1;
	}
	if (parse_u64(v, digits, &n) != 0) {
		errf(why, whylen, "'%s' is too large", v);
		return -1;
	}
	if (strcmp(suffix, "%") == 0 && o->type == OPT_SIZE_PCT) {
		uint64_t ram;
		if (n < 1 || n > 100) {
			errf(why, whylen,
			     "'%s' is out of range (1%% to 100%% of RAM)", v);
			return -1;
		}
		if (ram_bytes(&ram) != 0) {
			errf(why, whylen,
			     "'%s' needs the size of RAM, which sysconf() "
			     "does not report; give a size instead",
			     v);
			return -1;
		}
		/* Split so that ram * n cannot overflow. */
		*out = ram / 100 * n + ram % 100 * n / 100;
		return 0;
	}
	switch (suffix[0]) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = KIB;
		break;
	case 'm':
	case 'M':
		mult = MIB;
		break;
	case 'g':
	case 'G':
		mult = GIB;
		break;
	default:
		mult = 0;
		break;
	}
	if (mult == 0 ||
	    (suffix[0] != '\0' && strcmp(suffix + 1, "") != 0 &&
	     strcmp(suffix + 1, "B") != 0 && strcmp(suffix + 1, "iB") != 0)) {
		errf(why, whylen,
		     "'%s' has an unknown suffix '%s' (use k, M or G, powers "
		     "of 1024%s)",
		     v, suffix, o->type == OPT_SIZE_PCT ? ", or N%" : "");
		return -1;
	}
	if (n > UINT64_MAX / mult) {
		errf(why, whylen, "'%s' is too large", v);
		return -1;
	}
	*out = n * mult;
	return 0;
}

/* The checks behind node_config_split_address(), with a reason. */
static int check_address(const char *addr, char *host, size_t hostlen,
			 unsigned *port, char *why, size_t whylen)
{
	const char *colon = strrchr(addr, ':');
	size_t hlen;
	uint64_t p;
	char h[NODE_ADDR_MAX];
	struct in_addr in;

	if (strlen(addr) >= NODE_ADDR_MAX) {
		errf(why, whylen, "'%s' is longer than %d characters", addr,
		     NODE_ADDR_MAX - 1);
		return -1;
	}
	if (colon == NULL) {
		errf(why, whylen, "'%s' is not HOST:PORT (no port)", addr);
		return -1;
	}
	hlen = (size_t)(colon - addr);
	if (hlen == 0) {
		errf(why, whylen, "'%s' has no host before the port", addr);
		return -1;
	}
	if (memchr(addr, ':', hlen) != NULL || addr[0] == '[') {
		errf(why, whylen,
		     "'%s' is not HOST:PORT (IPv6 addresses are not supported)",
		     addr);
		return -1;
	}
	if (parse_u64(colon + 1, strlen(colon + 1), &p) != 0 || p < 1 ||
	    p > 65535) {
		errf(why, whylen, "'%s' has a bad port '%s' (use 1 to 65535)",
		     addr, colon + 1);
		return -1;
	}
	memcpy(h, addr, hlen);
	h[hlen] = '\0';
	if (strspn(h, "0123456789.") == hlen) {
		/* Digits and dots only: it is meant as an IPv4 literal, so
		 * "256.1.1.1" must not pass as a host name. */
		if (inet_pton(AF_INET, h, &in) != 1) {
			errf(why, whylen, "'%s' has a bad IPv4 address '%s'",
			     addr, h);
			return -1;
		}
	} else {
		/* RFC 1123 host name: labels of letters, digits and inner
		 * dashes, 1 to 63 characters each. */
		const char *label = h;
		while (true) {
			size_t n = strspn(label,
					  "abcdefghijklmnopqrstuvwxyz"
					  "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					  "0123456789-");
			if (n == 0 || n > 63 || label[0] == '-' ||
			    label[n - 1] == '-' ||
			    (label[n] != '.' && label[n] != '\0')) {
				errf(why, whylen,
				     "'%s' has a bad host '%s' (use an IPv4 "
				     "address or a host name)",
				     addr, h);
				return -1;
			}
			if (label[n] == '\0') {
				break;
			}
			label += n + 1;
		}
	}
	if (host != NULL) {
		if (hlen >= hostlen) {
			errf(why, whylen, "'%s': host buffer too small", addr);
			return -1;
		}
		memcpy(host, h, hlen + 1);
	}
	if (port != NULL) {
		*port = (unsigned)p;
	}
	return 0;
}

int node_config_split_address(const char *addr, char *host, size_t hostlen,
			      unsigned *port)
{
	return check_address(addr, host, hostlen, port, NULL, 0);
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) {
		(*len)--;
	}
}

/* One "ID@RAFT@CLIENT" item (len bytes of s) into *m. */
static int parse_member(const char *s, size_t len, struct node_member *m,
			char *why, size_t whylen)
{
	char item[3 * NODE_ADDR_MAX];
	char *at1, *at2;
	char reason[192];

	if (len >= sizeof(item)) {
		errf(why, whylen, "member '%.*s...' is too long", 24, s);
		return -1;
	}
	memcpy(item, s, len);
	item[len] = '\0';
	at1 = strchr(item, '@');
	at2 = at1 != NULL ? strchr(at1 + 1, '@') : NULL;
	if (at1 == NULL || at2 == NULL || strchr(at2 + 1, '@') != NULL) {
		errf(why, whylen,
		     "member '%s' is not ID@RAFT_ADDRESS@CLIENT_ADDRESS", item);
		return -1;
	}
	*at1 = '\0';
	*at2 = '\0';
	if (parse_u64(item, strlen(item), &m->id) != 0 || m->id == 0) {
		errf(why, whylen,
		     "member '%s@%s@%s' has a bad id '%s' (a whole number, 1 "
		     "or "
		     "more)",
		     item, at1 + 1, at2 + 1, item);
		return -1;
	}
	if (check_address(at1 + 1, NULL, 0, NULL, reason, sizeof(reason)) !=
	    0) {
		errf(why, whylen, "member %llu has a bad raft address: %s",
		     (unsigned long long)m->id, reason);
		return -1;
	}
	if (check_address(at2 + 1, NULL, 0, NULL, reason, sizeof(reason)) !=
	    0) {
		errf(why, whylen, "member %llu has a bad client address: %s",
		     (unsigned long long)m->id, reason);
		return -1;
	}
	/* check_address() bounded both lengths below NODE_ADDR_MAX. */
	snprintf(m->raft_address, sizeof(m->raft_address), "%s", at1 + 1);
	snprintf(m->client_address, sizeof(m->client_address), "%s", at2 + 1);
	return 0;
}

/* Appends the comma-separated members of v. A trailing comma is allowed so
 * that a list can continue on the next (indented) line of a file. */
static int append_members(struct node_config *c, const char *v, char *why,
			  size_t whylen)
{
	const char *p = v;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		const char *item = p;
		struct node_member m;

		trim(&item, &len);
		p = comma != NULL ? comma + 1 : p + strlen(p);
		if (len == 0) {
			if (comma == NULL ||
			    p[strspn(p, " \t")] == '\0') { /* trailing */
				break;
			}
			errf(why, whylen, "empty member in '%s' (two commas?)",
			     v);
			return -1;
		}
		if (parse_member(item, len, &m, why, whylen) != 0) {
			return -1;
		}
		for (size_t i = 0; i < c->n_members; i++) {
			if (c->members[i].id == m.id) {
				errf(why, whylen,
				     "member id %llu appears twice",
				     (unsigned long long)m.id);
				return -1;
			}
		}
		if (c->n_members == NODE_MAX_MEMBERS) {
			errf(why, whylen, "more than %d members",
			     NODE_MAX_MEMBERS);
			return -1;
		}
		c->members[c->n_members++] = m;
	}
	return 0;
}

/* Parses v into o's field of c. `append` continues a members list instead
 * of replacing it. On failure writes the reason (without naming the key:
 * the caller knows whether it came from a file or a flag). */
static int set_value(struct node_config *c, const struct opt *o, const char *v,
		     bool append, char *why, size_t whylen)
{
	uint64_t n;

	switch (o->type) {
	case OPT_U64:
	case OPT_UINT:
		if (parse_u64(v, strlen(v), &n) != 0) {
			errf(why, whylen,
			     all_digits(v, strlen(v))
				     ? "'%s' is too large"
				     : "'%s' is not a whole number",
			     v);
			return -1;
		}
		if (check_range(o, n, why, whylen) != 0) {
			return -1;
		}
		if (o->type == OPT_U64) {
			*(uint64_t *)field(c, o) = n;
		} else {
			*(unsigned *)field(c, o) = (unsigned)n;
		}
		return 0;
	case OPT_SIZE:
	case OPT_SIZE_PCT:
		if (parse_size(o, v, &n, why, whylen) != 0 ||
		    check_range(o, n, why, whylen) != 0) {
			return -1;
		}
		*(uint64_t *)field(c, o) = n;
		return 0;
	case OPT_STRING:
	case OPT_ADDRESS:
		if (v[0] == '\0' && !o->may_be_empty) {
			errf(why, whylen, "the value is empty");
			return -1;
		}
		if (strlen(v) >= o->size) {
			errf(why, whylen, "the value is longer than %zu bytes",
			     o->size - 1);
			return -1;
		}
		if (o->type == OPT_ADDRESS && v[0] != '\0' &&
		    check_address(v, NULL, 0, NULL, why, whylen) != 0) {
			return -1;
		}
		memcpy(field(c, o), v, strlen(v) + 1);
		return 0;
	case OPT_LOG_LEVEL:
		for (size_t i = 0; i < 4; i++) {
			if (strcmp(v, level_names[i]) == 0) {
				*(int *)field(c, o) = (int)i;
				return 0;
			}
		}
		errf(why, whylen,
		     "'%s' is not a log level (error, warn, info or debug)", v);
		return -1;
	case OPT_BOOL:
		if (parse_bool(v, (bool *)field(c, o)) != 0) {
			errf(why, whylen,
			     "'%s' is not on or off (also true/false, yes/no, "
			     "1/0)",
			     v);
			return -1;
		}
		return 0;
	case OPT_MEMBERS:
		if (!append) {
			c->n_members = 0;
		}
		return append_members(c, v, why, whylen);
	}
	assert(false);
	return -1;
}

void node_config_defaults(struct node_config *c)
{
	char why[256];
	int rv;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_OPTS; i++) {
		if (opts[i].def != NULL) {
			rv = set_value(c, &opts[i], opts[i].def, false, why,
				       sizeof(why));
			/* Defaults are constants checked by the unit tests;
			 * only "40%" depends on the machine, and Linux always
			 * reports its RAM. */
			assert(rv == 0);
			(void)rv;
		}
	}
}

/* ------------------------------------------------------------------ file */

struct load {
	struct node_config *c; /* the copy being filled */
	const char *path;
	FILE *f;
	char *buf; /* getline's, owned */
	size_t cap;
	int lineno;	    /* of the line just handed to inih */
	bool indented;	    /* that line starts with blanks: a continuation */
	bool failed;	    /* err holds the first error; stop reading */
	int set_at[N_OPTS]; /* line where each key was set, 0 = not set */
	const struct opt *last; /* key of the latest "key = value" line */
	unsigned user_set[NODE_MAX_USERS]; /* keys seen per user, bits */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static void load_fail(struct load *l,
							    const char *fmt,
							    ...)
{
	char msg[384];
	va_list ap;

	if (l->failed) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errf(l->err, l->errlen, "%s:%d: %s", l->path, l->lineno, msg);
	l->failed = true;
}

static bool is_user_section(const char *name, size_t len);
static int user_begin(struct load *l, const char *name, size_t len);

/* inih's ini_reader. Reading lines ourselves gives the handler the line
 * number (Debian builds inih without INI_HANDLER_LINENO), turns an
 * over-long line into an error instead of inih silently splitting it, and
 * lets us reject an unknown [section] even when it holds no keys. */
static char *read_line(char *str, int num, void *stream)
{
	struct load *l = stream;
	ssize_t n;
	size_t len;
	const char *s;

	if (l->failed) {
		return NULL;
	}
	errno = 0;
	n = getline(&l->buf, &l->cap, l->f);
	if (n < 0) {
		if (ferror(l->f)) {
			l->lineno++;
			load_fail(l, "cannot read: %s", strerror(errno));
		}
		return NULL;
	}
	l->lineno++;
	len = (size_t)n;
	while (len > 0 &&
	       (l->buf[len - 1] == '\n' || l->buf[len - 1] == '\r')) {
		len--;
	}
	l->buf[len] = '\0';
	/* inih needs room for "\r\n" and the terminator. */
	if (num < 4 || len > (size_t)num - 3) {
		load_fail(l,
			  "line is longer than %d characters (a long members "
			  "list can continue on indented lines)",
			  num - 3);
		return NULL;
	}
	s = l->buf;
	if (l->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3;
	}
	l->indented = (s[0] == ' ' || s[0] == '\t');
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			load_fail(l, "section header '%s' has no closing ']'",
				  s);
			return NULL;
		}
		if (is_user_section(s + 1, (size_t)(end - s - 1))) {
			if (user_begin(l, s + 6, (size_t)(end - s - 6)) != 0) {
				return NULL;
			}
		} else if (!section_known_n(s + 1, (size_t)(end - s - 1))) {
			load_fail(l,
				  "unknown section [%.*s] (known: node, "
				  "cluster, raft, limits, batching, "
				  "user.NAME)",
				  (int)(end - s - 1), s + 1);
			return NULL;
		}
		l->last = NULL;
	}
	memcpy(str, l->buf, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* --------------------------------------------------------------- users */

static bool is_user_section(const char *name, size_t len)
{
	return len >= 5 && memcmp(name, "user.", 5) == 0;
}

/* A user name: 1..32 of [A-Za-z0-9_.-] (inih keeps section names below 50
 * characters, "user." included). */
static bool user_name_ok(const char *name, size_t len)
{
	if (len == 0 || len >= NODE_USER_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
		      ch == '-')) {
			return false;
		}
	}
	return true;
}

static struct node_user *find_user(struct node_config *c, const char *name)
{
	for (size_t i = 0; i < c->n_users; i++) {
		if (strcmp(c->users[i].name, name) == 0) {
			return &c->users[i];
		}
	}
	return NULL;
}

/* A "[user.NAME]" header: adds the user (its keys follow). */
static int user_begin(struct load *l, const char *name, size_t len)
{
	struct node_user *u;
	char buf[NODE_USER_NAME_MAX];

	if (!user_name_ok(name, len)) {
		load_fail(l,
			  "bad user name '%.*s' in [user.%.*s] (1 to %d "
			  "letters, digits, '_', '.' or '-')",
			  (int)len, name, (int)len, name,
			  NODE_USER_NAME_MAX - 1);
		return -1;
	}
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (find_user(l->c, buf) != NULL) {
		load_fail(l, "user '%s' is defined twice", buf);
		return -1;
	}
	if (l->c->n_users == NODE_MAX_USERS) {
		load_fail(l, "more than %d users", NODE_MAX_USERS);
		return -1;
	}
	u = &l->c->users[l->c->n_users];
	memset(u, 0, sizeof(*u));
	memcpy(u->name, buf, len + 1);
	l->user_set[l->c->n_users] = 0;
	l->c->n_users++;
	l->last = NULL;
	return 0;
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9') {
		return ch - '0';
	}
	if (ch >= 'a' && ch <= 'f') {
		return ch - 'a' + 10;
	}
	if (ch >= 'A' && ch <= 'F') {
		return ch - 'A' + 10;
	}
	return -1;
}

/* A permission list: prefixes separated by commas, "*" for every name. */
static int check_prefixes(const char *v, char *why, size_t whylen)
{
	const char *p = v;

	if (v[0] == '\0') {
		return 0; /* nothing granted */
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		const char *item = p;

		trim(&item, &len);
		if (len == 0) {
			errf(why, whylen,
			     "empty prefix in '%s' (use * for every name)", v);
			return -1;
		}
		for (size_t i = 0; i < len; i++) {
			if (item[i] == ' ' || item[i] == '\t' ||
			    (item[i] == '*' && len != 1)) {
				errf(why, whylen,
				     "bad prefix '%.*s' in '%s' (a name "
				     "prefix without blanks, or * alone)",
				     (int)len, item, v);
				return -1;
			}
		}
		if (comma == NULL) {
			return 0;
		}
		p = comma + 1;
	}
}

enum {
	UKEY_SHA256 = 1u << 0,
	UKEY_FILE = 1u << 1,
	UKEY_PUBLISH = 1u << 2,
	UKEY_CONSUME = 1u << 3,
	UKEY_CONFIGURE = 1u << 4,
	UKEY_ADMIN = 1u << 5,
};

static int user_key(struct load *l, const char *section, const char *name,
		    const char *value)
{
	struct node_user *u = find_user(l->c, section + 5);
	size_t idx;
	unsigned bit;
	char why[256];

	if (u == NULL) { /* an indented header, left to inih */
		load_fail(l, "bad section [%s]", section);
		return 0;
	}
	idx = (size_t)(u - l->c->users);
	if (l->indented) {
		load_fail(l,
			  "indented line in [%s] (only members may span "
			  "lines; remove the indentation)",
			  section);
		return 0;
	}
	if (strcmp(name, "token") == 0) {
		load_fail(l,
			  "[%s]: plain tokens are not accepted in the config; "
			  "give token_sha256 (printf %%s TOKEN | sha256sum) "
			  "or token_file (a file holding the token)",
			  section);
		return 0;
	}
	if (strcmp(name, "token_sha256") == 0) {
		bit = UKEY_SHA256;
	} else if (strcmp(name, "token_file") == 0) {
		bit = UKEY_FILE;
	} else if (strcmp(name, "publish") == 0) {
		bit = UKEY_PUBLISH;
	} else if (strcmp(name, "consume") == 0) {
		bit = UKEY_CONSUME;
	} else if (strcmp(name, "configure") == 0) {
		bit = UKEY_CONFIGURE;
	} else if (strcmp(name, "admin") == 0) {
		bit = UKEY_ADMIN;
	} else {
		load_fail(l,
			  "unknown key '%s' in section [%s] (known: "
			  "token_sha256, token_file, publish, consume, "
			  "configure, admin)",
			  name, section);
		return 0;
	}
	if (l->user_set[idx] & bit) {
		load_fail(l, "key '%s' in section [%s] is set twice", name,
			  section);
		return 0;
	}
	l->user_set[idx] |= bit;
	if (bit != UKEY_ADMIN && strlen(value) >= NODE_PERM_MAX) {
		load_fail(l, "bad %s in [%s]: longer than %d characters", name,
			  section, NODE_PERM_MAX - 1);
		return 0;
	}
	switch (bit) {
	case UKEY_SHA256:
		if (strlen(value) != 64) {
			load_fail(l,
				  "bad token_sha256 in [%s]: want 64 hex "
				  "digits (printf %%s TOKEN | sha256sum)",
				  section);
			return 0;
		}
		for (size_t i = 0; i < 32; i++) {
			int hi = hex_digit(value[2 * i]);
			int lo = hex_digit(value[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				load_fail(l,
					  "bad token_sha256 in [%s]: '%c%c' "
					  "is not hex",
					  section, value[2 * i],
					  value[2 * i + 1]);
				return 0;
			}
			u->token_sha256[i] = (unsigned char)(hi << 4 | lo);
		}
		u->has_sha256 = true;
		return 1;
	case UKEY_FILE:
		if (value[0] == '\0') {
			load_fail(l, "bad token_file in [%s]: empty", section);
			return 0;
		}
		memcpy(u->token_file, value, strlen(value) + 1);
		return 1;
	case UKEY_ADMIN:
		if (parse_bool(value, &u->admin) != 0) {
			load_fail(l,
				  "bad admin in [%s]: '%s' is not true or "
				  "false",
				  section, value);
			return 0;
		}
		return 1;
	default:
		if (check_prefixes(value, why, sizeof(why)) != 0) {
			load_fail(l, "bad %s in [%s]: %s", name, section, why);
			return 0;
		}
		memcpy(bit == UKEY_PUBLISH   ? u->publish
		       : bit == UKEY_CONSUME ? u->consume
					     : u->configure,
		       value, strlen(value) + 1);
		return 1;
	}
}

/* inih's ini_handler: returns 1 to go on, 0 on error (inih then records
 * the line, which we ignore in favour of our own sentence). */
static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct load *l = user;
	const struct opt *o;
	size_t idx;
	char why[256];

	if (l->failed) {
		return 0;
	}
	if (l->indented && l->last != NULL && strcmp(name, l->last->key) == 0 &&
	    strcmp(section, l->last->section) == 0) {
		/* inih hands an indented line to the previous key. */
		if (l->last->type != OPT_MEMBERS) {
			load_fail(l,
				  "indented line continues the value of '%s' "
				  "(only members may span lines; remove the "
				  "indentation)",
				  name);
			return 0;
		}
		if (set_value(l->c, l->last, value, true, why, sizeof(why)) !=
		    0) {
			load_fail(l, "bad members in [cluster]: %s", why);
			return 0;
		}
		return 1;
	}
	if (is_user_section(section, strlen(section))) {
		return user_key(l, section, name, value);
	}
	if (section[0] == '\0') {
		o = find_key(NULL, name);
		if (o != NULL) {
			load_fail(l,
				  "key '%s' is outside any section (put it "
				  "under [%s])",
				  name, o->section);
		} else {
			load_fail(l, "unknown key '%s' outside any section",
				  name);
		}
		return 0;
	}
	if (!section_known_n(section, strlen(section))) {
		/* Reached only for an indented header, which read_line()
		 * leaves to inih. */
		load_fail(l, "unknown section [%s]", section);
		return 0;
	}
	o = find_key(section, name);
	if (o == NULL) {
		const struct opt *other = find_key(NULL, name);
		if (other != NULL) {
			load_fail(l,
				  "unknown key '%s' in section [%s] (it "
				  "belongs in [%s])",
				  name, section, other->section);
		} else {
			load_fail(l, "unknown key '%s' in section [%s]", name,
				  section);
		}
		return 0;
	}
	idx = (size_t)(o - opts);
	if (l->set_at[idx] != 0) {
		load_fail(l,
			  "key '%s' in section [%s] is set twice (first on "
			  "line %d)",
			  name, section, l->set_at[idx]);
		return 0;
	}
	l->set_at[idx] = l->lineno;
	l->last = o;
	if (set_value(l->c, o, value, false, why, sizeof(why)) != 0) {
		load_fail(l, "bad %s in [%s]: %s", name, section, why);
		return 0;
	}
	return 1;
}

int node_config_load_file(struct node_config *c, const char *path, char *err,
			  size_t errlen)
{
	struct node_config tmp = *c;
	struct load l;
	int rv;

	memset(&l, 0, sizeof(l));
	l.c = &tmp;
	l.path = path;
	l.err = err;
	l.errlen = errlen;
	l.f = fopen(path, "r");
	if (l.f == NULL) {
		errf(err, errlen, "cannot read config file '%s': %s", path,
		     strerror(errno));
		return -1;
	}
	rv = ini_parse_stream(read_line, &l, on_key, &l);
	free(l.buf);
	fclose(l.f);
	if (l.failed) {
		return -1;
	}
	if (rv == -2) {
		errf(err, errlen, "%s: out of memory while parsing", path);
		return -1;
	}
	if (rv != 0) {
		/* Our handler and reader report their own errors, so what is
		 * left is a line that is neither a key nor a section. */
		errf(err, errlen,
		     "%s:%d: expected 'key = value', '[section]' or a comment",
		     path, rv);
		return -1;
	}
	*c = tmp;
	return 0;
}

/* ----------------------------------------------------------------- flags */

enum flag_kind { FLAG_OPT, FLAG_CONFIG, FLAG_HELP, FLAG_VERSION };

struct flag {
	enum flag_kind kind;
	const struct opt *opt; /* FLAG_OPT */
	const char *value;     /* FLAG_OPT and FLAG_CONFIG */
};

/* Reads the flag at argv[*i] (and its value, from "=" or the next
 * argument), advancing *i past what it used. */
static int next_flag(int argc, char **argv, int *i, struct flag *f, char *err,
		     size_t errlen)
{
	const char *arg = argv[*i];
	const char *name, *eq;
	size_t len;
	bool takes_value;

	(*i)++;
	memset(f, 0, sizeof(*f));
	if (strcmp(arg, "-h") == 0) {
		f->kind = FLAG_HELP;
		return 0;
	}
	if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
		errf(err, errlen,
		     "unexpected argument '%s' (raftmqd takes only flags; see "
		     "raftmqd --help)",
		     arg);
		return -1;
	}
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	if (len == 4 && memcmp(name, "help", 4) == 0) {
		f->kind = FLAG_HELP;
		takes_value = false;
	} else if (len == 7 && memcmp(name, "version", 7) == 0) {
		f->kind = FLAG_VERSION;
		takes_value = false;
	} else if (len == 6 && memcmp(name, "config", 6) == 0) {
		f->kind = FLAG_CONFIG;
		takes_value = true;
	} else {
		f->kind = FLAG_OPT;
		f->opt = find_flag(name, len);
		takes_value = true;
		if (f->opt == NULL) {
			const struct opt *near = NULL;
			char want[64];
			if (len < sizeof(want)) {
				memcpy(want, name, len);
				want[len] = '\0';
				near = find_key(NULL, want);
			}
			if (near != NULL) {
				flag_of(near, want, sizeof(want));
				errf(err, errlen,
				     "unknown flag --%.*s (did you mean %s? "
				     "see raftmqd --help)",
				     (int)len, name, want);
			} else {
				errf(err, errlen,
				     "unknown flag --%.*s (see raftmqd "
				     "--help)",
				     (int)len, name);
			}
			return -1;
		}
	}
	if (!takes_value) {
		if (eq != NULL) {
			errf(err, errlen, "flag --%.*s takes no value",
			     (int)len, name);
			return -1;
		}
		return 0;
	}
	if (eq != NULL) {
		f->value = eq + 1;
		return 0;
	}
	/* "--data-dir --id 3" is a forgotten value, not a directory named
	 * "--id". */
	if (*i >= argc || strncmp(argv[*i], "--", 2) == 0) {
		errf(err, errlen,
		     "flag --%s needs a value (--%s=VALUE or --%s "
		     "VALUE)",
		     name, name, name);
		return -1;
	}
	f->value = argv[*i];
	(*i)++;
	return 0;
}

int node_config_parse_args(struct node_config *c, int argc, char **argv,
			   FILE *out, char *err, size_t errlen)
{
	struct node_config tmp = *c;
	const char *config = NULL;
	bool help = false, version = false, failed = false;
	struct flag f;
	char first_err[512] = "";
	char why[256], name[64];
	int i;

	/* Pass 1: syntax, --help/--version (they win over any error, since
	 * whoever asks for help may not know the flags yet) and --config. */
	for (i = 1; i < argc;) {
		char e[512];
		if (next_flag(argc, argv, &i, &f, e, sizeof(e)) != 0) {
			if (!failed) {
				snprintf(first_err, sizeof(first_err), "%s", e);
				failed = true;
			}
			continue;
		}
		if (f.kind == FLAG_HELP) {
			help = true;
		} else if (f.kind == FLAG_VERSION) {
			version = true;
		} else if (f.kind == FLAG_CONFIG) {
			if (config != NULL && !failed) {
				snprintf(first_err, sizeof(first_err),
					 "--config is given twice ('%s' and "
					 "'%s')",
					 config, f.value);
				failed = true;
			}
			config = f.value;
		}
	}
	if (help) {
		node_config_usage(out);
		return 1;
	}
	if (version) {
		fprintf(out, "raftmqd %s\n", RAFTMQ_VERSION);
		return 1;
	}
	if (failed) {
		errf(err, errlen, "%s", first_err);
		return -1;
	}
	if (config != NULL &&
	    node_config_load_file(&tmp, config, err, errlen) != 0) {
		return -1;
	}
	/* Pass 2: the other flags, in order, over the file. */
	for (i = 1; i < argc;) {
		int rv = next_flag(argc, argv, &i, &f, NULL, 0);
		assert(rv == 0); /* pass 1 saw every flag */
		(void)rv;
		if (f.kind != FLAG_OPT) {
			continue;
		}
		if (set_value(&tmp, f.opt, f.value, false, why, sizeof(why)) !=
		    0) {
			flag_of(f.opt, name, sizeof(name));
			errf(err, errlen, "bad %s: %s", name, why);
			return -1;
		}
	}
	*c = tmp;
	return 0;
}

/* ------------------------------------------------------------ validation */

static int check_required_address(const char *key, const char *addr, char *err,
				  size_t errlen)
{
	char why[192];

	if (addr[0] == '\0') {
		errf(err, errlen,
		     "%s is required (set it in [node] or with --%s)", key,
		     strcmp(key, "raft_address") == 0 ? "raft-address"
						      : "client-address");
		return -1;
	}
	if (check_address(addr, NULL, 0, NULL, why, sizeof(why)) != 0) {
		errf(err, errlen, "bad %s: %s", key, why);
		return -1;
	}
	return 0;
}

static int validate_members(const struct node_config *c, char *err,
			    size_t errlen)
{
	const struct node_member *self = NULL;
	char why[192];

	if (c->n_members > NODE_MAX_MEMBERS) {
		errf(err, errlen, "more than %d members", NODE_MAX_MEMBERS);
		return -1;
	}
	for (size_t i = 0; i < c->n_members; i++) {
		const struct node_member *m = &c->members[i];
		if (m->id == 0) {
			errf(err, errlen, "member ids start at 1 (found 0)");
			return -1;
		}
		if (check_address(m->raft_address, NULL, 0, NULL, why,
				  sizeof(why)) != 0 ||
		    check_address(m->client_address, NULL, 0, NULL, why,
				  sizeof(why)) != 0) {
			errf(err, errlen, "member %llu has a bad address: %s",
			     (unsigned long long)m->id, why);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			const struct node_member *o = &c->members[j];
			if (o->id == m->id) {
				errf(err, errlen,
				     "member id %llu appears twice in members",
				     (unsigned long long)m->id);
				return -1;
			}
			if (strcmp(o->raft_address, m->raft_address) == 0) {
				errf(err, errlen,
				     "members %llu and %llu have the same raft "
				     "address %s",
				     (unsigned long long)o->id,
				     (unsigned long long)m->id,
				     m->raft_address);
				return -1;
			}
			if (strcmp(o->client_address, m->client_address) == 0) {
				errf(err, errlen,
				     "members %llu and %llu have the same "
				     "client address %s",
				     (unsigned long long)o->id,
				     (unsigned long long)m->id,
				     m->client_address);
				return -1;
			}
		}
		if (m->id == c->id) {
			self = m;
		}
	}
	if (c->n_members == 0) {
		return 0;
	}
	if (self == NULL) {
		errf(err, errlen,
		     "node %llu is not among the members; add it to members "
		     "or leave members empty to join an existing cluster",
		     (unsigned long long)c->id);
		return -1;
	}
	/* Raft peers dial the address in the configuration, so a mismatch
	 * would leave this node unreachable. The client address may differ
	 * (bind 0.0.0.0, advertise a routable address). */
	if (strcmp(self->raft_address, c->raft_address) != 0) {
		errf(err, errlen,
		     "node %llu has raft address %s in members but "
		     "raft_address is %s",
		     (unsigned long long)c->id, self->raft_address,
		     c->raft_address);
		return -1;
	}
	return 0;
}

/* TLS files come in pairs; users need exactly one token each, and no two
 * users may share a token (it alone says who is connecting). */
static int validate_security(const struct node_config *c, char *err,
			     size_t errlen)
{
	if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
		errf(err, errlen,
		     "tls_cert and tls_key go together: give both (TLS on the "
		     "client port) or neither");
		return -1;
	}
	if (c->tls_ca[0] != '\0' && c->tls_cert[0] == '\0') {
		errf(err, errlen,
		     "tls_ca (client certificates) needs tls_cert and tls_key");
		return -1;
	}
	if (c->auth && c->n_users == 0) {
		errf(err, errlen,
		     "auth is on but no user is defined: add a [user.NAME] "
		     "section with token_sha256 or token_file");
		return -1;
	}
	for (size_t i = 0; i < c->n_users; i++) {
		const struct node_user *u = &c->users[i];
		if (u->has_sha256 == (u->token_file[0] != '\0')) {
			errf(err, errlen,
			     "user '%s' needs exactly one of token_sha256 and "
			     "token_file",
			     u->name);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (u->has_sha256 && c->users[j].has_sha256 &&
			    memcmp(u->token_sha256, c->users[j].token_sha256,
				   32) == 0) {
				errf(err, errlen,
				     "users '%s' and '%s' have the same token",
				     c->users[j].name, u->name);
				return -1;
			}
		}
	}
	return 0;
}

int node_config_validate(const struct node_config *c, char *err, size_t errlen)
{
	char why[192];
	unsigned election, heartbeat, inflight;

	if (c->id == 0) {
		errf(err, errlen,
		     "id is required (set it in [node] or with "
		     "--id; ids start at 1)");
		return -1;
	}
	if (c->data_dir[0] == '\0') {
		errf(err, errlen,
		     "data_dir is required (set it in [node] or with "
		     "--data-dir)");
		return -1;
	}
	if (check_required_address("raft_address", c->raft_address, err,
				   errlen) != 0 ||
	    check_required_address("client_address", c->client_address, err,
				   errlen) != 0) {
		return -1;
	}
	if (c->http_address[0] != '\0' &&
	    check_address(c->http_address, NULL, 0, NULL, why, sizeof(why)) !=
		    0) {
		errf(err, errlen, "bad http_address: %s", why);
		return -1;
	}
	/* Same string, same socket: the second listener would fail to bind
	 * at start, far from the cause. */
	if (strcmp(c->raft_address, c->client_address) == 0 ||
	    strcmp(c->raft_address, c->http_address) == 0 ||
	    strcmp(c->client_address, c->http_address) == 0) {
		errf(err, errlen,
		     "raft_address, client_address and http_address must "
		     "differ (%s, %s, %s)",
		     c->raft_address, c->client_address,
		     c->http_address[0] != '\0' ? c->http_address : "none");
		return -1;
	}
	if (c->log_level < NODE_LOG_ERROR || c->log_level > NODE_LOG_DEBUG) {
		errf(err, errlen, "log_level %d is not a log level",
		     c->log_level);
		return -1;
	}
	if (validate_members(c, err, errlen) != 0) {
		return -1;
	}
	election = c->election_timeout_ms != 0 ? c->election_timeout_ms
					       : CONS_DEFAULT_ELECTION_MS;
	heartbeat = c->heartbeat_timeout_ms != 0 ? c->heartbeat_timeout_ms
						 : CONS_DEFAULT_HEARTBEAT_MS;
	if (heartbeat >= election) {
		errf(err, errlen,
		     "heartbeat_timeout_ms (%u) must be below "
		     "election_timeout_ms (%u), or followers start elections "
		     "against a live leader",
		     heartbeat, election);
		return -1;
	}
	if (c->max_message_bytes >= MAX_FRAME_IN_ENTRY) {
		errf(err, errlen,
		     "max_message_bytes (%llu) must be below %llu: a message "
		     "is written to the Raft log in one entry, which also "
		     "holds its envelope and its own bytes, in at "
		     "most " ENTRY_CAP_TEXT,
		     (unsigned long long)c->max_message_bytes,
		     (unsigned long long)MAX_FRAME_IN_ENTRY);
		return -1;
	}
	if (c->max_frame_bytes > MAX_FRAME_IN_ENTRY) {
		errf(err, errlen,
		     "max_frame_bytes (%llu) must be at most %llu: a request "
		     "is written to the Raft log in one entry, which holds at "
		     "most " ENTRY_CAP_TEXT " with its own %d bytes",
		     (unsigned long long)c->max_frame_bytes,
		     (unsigned long long)MAX_FRAME_IN_ENTRY, ENTRY_OVERHEAD);
		return -1;
	}
	if (c->max_frame_bytes == 0 || c->max_message_bytes == 0 ||
	    c->max_message_bytes >= c->max_frame_bytes) {
		errf(err, errlen,
		     "max_message_bytes (%llu) must be below max_frame_bytes "
		     "(%llu), which also holds the envelope",
		     (unsigned long long)c->max_message_bytes,
		     (unsigned long long)c->max_frame_bytes);
		return -1;
	}
	if (c->memory_limit == 0 || c->max_message_bytes >= c->memory_limit) {
		errf(err, errlen,
		     "max_message_bytes (%llu) must be below memory_limit "
		     "(%llu), or no message could ever be stored",
		     (unsigned long long)c->max_message_bytes,
		     (unsigned long long)c->memory_limit);
		return -1;
	}
	if (c->max_connections == 0 || c->max_client_output_bytes == 0 ||
	    c->max_batch_commands == 0 || c->max_batch_bytes == 0 ||
	    c->max_inflight_batches == 0) {
		errf(err, errlen,
		     "max_connections, max_client_output_bytes, "
		     "max_batch_commands, max_batch_bytes and "
		     "max_inflight_batches must be above 0");
		return -1;
	}
	if (validate_security(c, err, errlen) != 0) {
		return -1;
	}
	inflight = c->max_inflight_entries != 0 ? c->max_inflight_entries
						: CONS_DEFAULT_MAX_INFLIGHT;
	if (c->max_inflight_batches > inflight) {
		errf(err, errlen,
		     "max_inflight_batches (%u) must not exceed "
		     "max_inflight_entries (%u): each batch is one log entry",
		     c->max_inflight_batches, inflight);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ help */

/* Prints text wrapped at 79 columns, each line indented by `indent`. */
static void print_wrapped(FILE *out, int indent, const char *text)
{
	const int width = 79;
	const char *p = text;

	while (*p != '\0') {
		int room = width - indent;
		size_t len = strlen(p);
		size_t cut = len;
		if (len > (size_t)room) {
			cut = (size_t)room;
			while (cut > 0 && p[cut] != ' ') {
				cut--;
			}
			if (cut == 0) { /* one long word */
				cut = strcspn(p, " ");
			}
		}
		fprintf(out, "%*s%.*s\n", indent, "", (int)cut, p);
		p += cut;
		while (*p == ' ') {
			p++;
		}
	}
}

void node_config_usage(FILE *out)
{
	static const char *const order[] = {"node", "cluster", "raft", "limits",
					    "batching"};
	char flag[64], line[160];

	fputs("Usage: raftmqd [--config FILE] [--KEY=VALUE | --KEY VALUE]...\n"
	      "\n"
	      "Runs one raftmq broker node. Settings come from the INI file\n"
	      "given with --config (read first, wherever it appears) and from\n"
	      "flags, which override it. Each flag is named after its config\n"
	      "key with dashes for underscores (--data-dir sets data_dir in\n"
	      "[node]). SIZE is a number of bytes with an optional suffix k, "
	      "M\n"
	      "or G (powers of 1024). See docs/config.md.\n"
	      "\n"
	      "  --config FILE\n"
	      "        Read this INI file before applying the other flags.\n"
	      "  --help, -h\n"
	      "        Print this help and exit.\n"
	      "  --version\n"
	      "        Print the version and exit.\n",
	      out);
	for (size_t s = 0; s < sizeof(order) / sizeof(order[0]); s++) {
		fprintf(out, "\n[%s]\n", order[s]);
		for (size_t i = 0; i < N_OPTS; i++) {
			const struct opt *o = &opts[i];
			if (strcmp(o->section, order[s]) != 0) {
				continue;
			}
			flag_of(o, flag, sizeof(flag));
			if (o->def == NULL) {
				snprintf(line, sizeof(line),
					 "%s %s  (required)", flag, o->arg);
			} else if (o->def[0] == '\0') {
				snprintf(line, sizeof(line),
					 "%s %s  (default: empty)", flag,
					 o->arg);
			} else {
				snprintf(line, sizeof(line),
					 "%s %s  (default: %s%s%s)", flag,
					 o->arg, o->def, o->unit ? " " : "",
					 o->unit ? o->unit : "");
			}
			print_wrapped(out, 2, line);
			print_wrapped(out, 8, o->help);
		}
	}
	fputs("\n[user.NAME]  (file only, one section per user; see "
	      "docs/operations.md)\n",
	      out);
	print_wrapped(out, 2, "token_sha256 = HEX | token_file = PATH");
	print_wrapped(out, 8,
		      "The user's token: its SHA-256 in hex (printf %s TOKEN | "
		      "sha256sum), or a file holding the token itself. Plain "
		      "tokens in the config are refused.");
	print_wrapped(out, 2,
		      "publish = PREFIXES, consume = PREFIXES, "
		      "configure = PREFIXES");
	print_wrapped(out, 8,
		      "Queue and topic name prefixes, separated by commas, "
		      "that the user may publish to, consume from, and "
		      "create, configure, purge or delete; * is every name. "
		      "Default: none.");
	print_wrapped(out, 2, "admin = true|false");
	print_wrapped(out, 8,
		      "Cluster status and membership changes (cluster add, "
		      "remove, transfer). Default false.");
}

int node_config_option(size_t i, const char **section, const char **key,
		       const char **def)
{
	if (i >= N_OPTS) {
		return -1;
	}
	*section = opts[i].section;
	*key = opts[i].key;
	*def = opts[i].def;
	return 0;
}
