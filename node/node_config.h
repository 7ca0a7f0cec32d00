/* raftmqd's configuration: an INI file (libinih) and command-line flags that
 * override it. Every flag is named after its config key ("--data-dir" for
 * key "data_dir" in section [node]), and `raftmqd --help` lists them all from
 * the same table, so the two cannot drift apart.
 *
 * Pure: parsing and validation touch no sockets and start nothing, so they
 * are unit-tested (tests/unit/node/test_config.c). */
#ifndef RAFTMQ_NODE_CONFIG_H
#define RAFTMQ_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NODE_MAX_MEMBERS 16
#define NODE_ADDR_MAX 64

struct node_member {
	uint64_t id;
	char raft_address[NODE_ADDR_MAX];   /* "host:port" */
	char client_address[NODE_ADDR_MAX]; /* "host:port" */
};

/* [user.NAME] sections: who may connect when auth is on, and what they may
 * do. Permissions are comma-separated name prefixes ("orders.,logs."); "*"
 * matches every name; empty grants nothing. Lines are at most 197
 * characters (libinih), so each list fits in NODE_PERM_MAX. */
#define NODE_MAX_USERS 64
#define NODE_USER_NAME_MAX                                 \
	33 /* 32 characters: inih cuts section names at 49 \
	    */
#define NODE_PERM_MAX 200

struct node_user {
	char name[NODE_USER_NAME_MAX]; /* after "user." */
	/* Exactly one of the two is given. token_sha256 is the SHA-256 of the
	 * token (64 hex digits in the file); token_file names a file holding
	 * the token itself, hashed when the node starts (node_auth.c), which
	 * then also fills token_sha256. */
	unsigned char token_sha256[32];
	bool has_sha256;
	char token_file[NODE_PERM_MAX];
	char publish[NODE_PERM_MAX];   /* publish to queues/topics */
	char consume[NODE_PERM_MAX];   /* consume/fetch; subscribe (topic) */
	char configure[NODE_PERM_MAX]; /* create/configure/delete/purge */
	bool admin;		       /* cluster status/add/remove/transfer */
};

enum node_log_level {
	NODE_LOG_ERROR = 0,
	NODE_LOG_WARN = 1,
	NODE_LOG_INFO = 2,
	NODE_LOG_DEBUG = 3,
};

struct node_config {
	/* [node] */
	uint64_t id;			    /* required, > 0 */
	char data_dir[4096];		    /* required */
	uint64_t store_segment_bytes;	    /* default 64 MiB */
	char raft_address[NODE_ADDR_MAX];   /* required: "host:port" */
	char client_address[NODE_ADDR_MAX]; /* required: "host:port" */
	char http_address[NODE_ADDR_MAX];   /* "" = no HTTP endpoint */
	int log_level;	     /* enum node_log_level; default info */
	bool auth;	     /* clients must authenticate (Hello token) */
	char tls_cert[1024]; /* PEM certificate chain; "" = plain TCP */
	char tls_key[1024];  /* PEM private key of tls_cert */
	char tls_ca[1024];   /* "" = no client certificates; else required
				and verified against these CAs */

	/* [user.NAME] sections (not flags) */
	struct node_user users[NODE_MAX_USERS];
	size_t n_users;

	/* [cluster] members = "1@127.0.0.1:7101@127.0.0.1:7001,2@...": the
	 * initial members (id@raft_address@client_address). Empty: this node
	 * joins an existing cluster (added with `raftmq cluster add`). */
	struct node_member members[NODE_MAX_MEMBERS];
	size_t n_members;
	/* [cluster] peer_token_file: a file holding the token of an admin
	 * user, sent by this node when it fetches missing message bodies from
	 * its peers (node_bodies.c); "" = none (enough with auth off). */
	char peer_token_file[1024];

	/* [raft] (0 = libraft/consensus default) */
	unsigned election_timeout_ms;	  /* default 1000 */
	unsigned heartbeat_timeout_ms;	  /* default 100 */
	unsigned snapshot_threshold;	  /* entries; default 65536 */
	unsigned snapshot_trailing;	  /* entries; default 8192 */
	uint64_t snapshot_min_bytes;	  /* default 16 MiB */
	uint64_t snapshot_trailing_bytes; /* default 4 MiB */
	uint64_t snapshot_max_log_bytes;  /* default 0: off */
	bool snapshot_in_place;		  /* default false: in a child */
	unsigned max_inflight_entries;	  /* default 256 */

	/* [limits] */
	uint64_t memory_limit;	    /* bytes of queue state before publishes are
				       refused (RESOURCE_LIMIT); default 40% of
				       RAM; accepts suffixes k, M, G and % */
	uint64_t disk_limit;	    /* body store bytes before publishes are
				       refused; 0 = 90% of data_dir's file
				       system (node_server.c) */
	uint64_t max_frame_bytes;   /* default 8 MiB */
	uint64_t max_message_bytes; /* body limit; default 4 MiB */
	unsigned max_connections;   /* default 10000 */
	unsigned hello_timeout_ms;  /* close a connection that sent no first
				       request (Hello with auth) this long;
				       default 10000; 0 = never */
	uint64_t max_client_output_bytes; /* stop reading a client whose
					     unsent output exceeds this;
					     default 16 MiB */
	unsigned client_write_timeout_ms; /* close a session whose socket
					     took nothing this long while
					     deliveries wait; default 10000;
					     0 = never */

	/* [batching] */
	unsigned max_batch_commands; /* commands per log entry; default 4096 */
	uint64_t max_batch_bytes;    /* bytes per log entry; default 1 MiB */
	unsigned max_inflight_batches; /* entries in flight; default 16 */
};

/* Fills *c with defaults (everything but the required keys). */
void node_config_defaults(struct node_config *c);

/* Reads an INI file into *c (on top of what is there). Returns 0, or -1 and
 * writes "FILE:LINE: what is wrong" into err. */
int node_config_load_file(struct node_config *c, const char *path, char *err,
			  size_t errlen);

/* Applies "--key=value" / "--key value" flags from argv[first..argc).
 * `--config FILE` is read first wherever it appears, then the other flags
 * override it. Returns 0; 1 if --help or --version was handled (printed to
 * out); -1 with a sentence in err on a bad flag or value. */
int node_config_parse_args(struct node_config *c, int argc, char **argv,
			   FILE *out, char *err, size_t errlen);

/* Checks required keys and consistency (this node among the members when
 * members are given, addresses parse, unique ids/addresses). Returns 0 or
 * -1 with a sentence in err. */
int node_config_validate(const struct node_config *c, char *err, size_t errlen);

/* Parses "host:port" (IPv4 or a name that is "localhost"); returns 0 or -1. */
int node_config_split_address(const char *addr, char *host, size_t hostlen,
			      unsigned *port);

/* Prints the help text (every key, its flag, default and meaning). */
void node_config_usage(FILE *out);

/* Walks the option table, for tests and docs checks: for i below the number
 * of options sets *section ("node"), *key ("data_dir") and *def (the default
 * as written in a file; NULL for a required key) to static strings and
 * returns 0; past the end returns -1. */
int node_config_option(size_t i, const char **section, const char **key,
		       const char **def);

#endif /* RAFTMQ_NODE_CONFIG_H */
