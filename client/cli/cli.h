/*
 * The raftmq command line tool: shared helpers of the command files.
 *
 * Conventions of every command (../../docs/cli.md, DESIGN.md section 6):
 * exit 0 on success, 1 on failure with exactly one "raftmq: ..." line on
 * stderr, 2 on a usage error (one line with a hint to --help). Results go to
 * stdout; progress lines go to stderr only when it is a terminal.
 */
#ifndef RAFTMQ_CLI_H
#define RAFTMQ_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "raftmq.h"

/* Exit codes. */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,
	CLI_EXIT_USAGE = 2,
};

/* Global options, set by main() and by --cluster after a command. */
struct cli_global {
	const char *cluster;	     /* address list, never NULL after main */
	uint64_t connect_timeout_ms; /* give up when no node answers */
	uint64_t request_timeout_ms; /* per call, including failover */
	/* Authentication and TLS flags (docs/cli.md); NULL/false = not
	 * given, then cli_conn_options() reads the environment. */
	const char *token;	     /* --token */
	const char *token_file;	     /* --token-file */
	bool tls;		     /* --tls (or a --tls-* flag) */
	const char *tls_ca;	     /* --tls-ca */
	const char *tls_server_name; /* --tls-server-name */
	const char *tls_cert;	     /* --tls-cert */
	const char *tls_key;	     /* --tls-key */
};
extern struct cli_global cli_g;

/* ---- option parsing ---------------------------------------------------- */

enum cli_opt_kind {
	CLI_FLAG, /* bool *, no value */
	CLI_STR,  /* const char **, one value */
	CLI_U64,  /* uint64_t *, one decimal value */
};

/* One "--name" option of a command. `seen` (may be NULL) is set when given,
 * so that configure can tell "absent" from "set to 0". */
struct cli_opt {
	const char *name;
	enum cli_opt_kind kind;
	void *dst;
	bool *seen;
};

/* A (sub)command: `path` such as "queue create", its usage text (printed by
 * --help), and how many positional arguments it takes. */
struct cli_cmd {
	const char *path;
	const char *usage;
	int min_args;
	int max_args;
};

/*
 * Parses argv[1..argc-1] (argv[0] is the command word) against `opts` (an
 * array ended by a zeroed entry; NULL = none); --help/-h and --cluster are
 * always accepted. Positional arguments go to args[0..max_args-1] and their
 * count to *nargs. Returns -1 to go on, else the exit code to return at once
 * (0 after --help, 2 after a usage error, already reported).
 */
int cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
	      const struct cli_opt *opts, char **args, int *nargs);

/* A subcommand of a group command (queue, topic, cluster). */
struct cli_sub {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/* Runs the subcommand named by argv[1] among `subs` (ended by a zeroed
 * entry) with argv + 1; handles --help and unknown names of `group`. */
int cli_dispatch(const struct cli_cmd *group, const struct cli_sub *subs,
		 int argc, char **argv);

/* Prints the usage of `cmd` to stdout and returns 0 (for --help). */
int cli_help(const struct cli_cmd *cmd);

/* Strict decimal uint64 ("12", not "-1", "1x", ""). Returns 0 or -1. */
int cli_parse_u64(const char *s, uint64_t *out);

/* ---- errors ------------------------------------------------------------ */

/* Prints "raftmq: <message>" on stderr and returns 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "raftmq: <cmd>: <message> (try 'raftmq <cmd> --help')" on stderr
 * and returns 2. `cmd` may be NULL for the top level. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Reports library error `rv` of an operation on `conn` (may be NULL) and
 * returns 1. `action` says what failed ("create queue \"orders\""); `kind`
 * and `name` (may be NULL) name the object so that not-found and full
 * errors read 'queue "orders" not found' rather than the bare code.
 */
int cli_lib_fail(struct raftmq *conn, int rv, const char *action,
		 const char *kind, const char *name);

/* The sentence cli_lib_fail() would print (without "raftmq: "), for
 * library error `rv` with the library's text `msg` (may be NULL). */
void cli_describe(int rv, const char *msg, const char *action, const char *kind,
		  const char *name, char *out, size_t n);

/* Same, for a failure text that is not on a connection (connect errors). */
int cli_lib_fail_msg(int rv, const char *msg, const char *action,
		     const char *kind, const char *name);

/* ---- connecting -------------------------------------------------------- */

/*
 * Connects to cli_g.cluster with `opts` (may be NULL; its timeouts are
 * overridden by the global ones). Returns the connection, or NULL after
 * reporting the failure (then *rc is the exit code).
 */
struct raftmq *cli_connect(const struct raftmq_options *opts, int *rc);

/* Fills the token and TLS fields of *o from the global options (reading
 * --token-file). Returns 0, or 1 after reporting an unreadable token
 * file. The token is kept in static storage for the life of the process. */
int cli_conn_options(struct raftmq_options *o);

/* The body of a command on an open connection: calls the library with the
 * positional arguments `args` and its own data `ctx`, reports the outcome
 * (result or cli_lib_fail()) and returns the exit code. */
typedef int cli_conn_fn(struct raftmq *conn, char **args, void *ctx);

/* Connects (cli_connect(NULL, ...)), runs `fn`, closes the connection and
 * returns the exit code of `fn`, or that of the connect failure. */
int cli_with_conn(cli_conn_fn *fn, char **args, void *ctx);

/* cli_parse() of a command with at most CLI_MAX_ARGS positional arguments,
 * then cli_with_conn(): the whole of a command that checks nothing more. */
#define CLI_MAX_ARGS 4
int cli_run(const struct cli_cmd *cmd, int argc, char **argv,
	    const struct cli_opt *opts, cli_conn_fn *fn, void *ctx);

/* ---- output ------------------------------------------------------------ */

/* Minimal streaming JSON writer: keys are NULL inside arrays. */
struct cli_json {
	FILE *f;
	int depth;
	bool first[32];
};

void cli_json_init(struct cli_json *j, FILE *f);
void cli_json_obj(struct cli_json *j, const char *key);
void cli_json_obj_end(struct cli_json *j);
void cli_json_arr(struct cli_json *j, const char *key);
void cli_json_arr_end(struct cli_json *j);
void cli_json_str(struct cli_json *j, const char *key, const char *s);
void cli_json_strn(struct cli_json *j, const char *key, const void *s,
		   size_t n);
void cli_json_u64(struct cli_json *j, const char *key, uint64_t v);
void cli_json_bool(struct cli_json *j, const char *key, bool v);
void cli_json_null(struct cli_json *j, const char *key);
/* `body` as "KEY": text when valid UTF-8, else "KEY_base64": base64. */
void cli_json_bytes(struct cli_json *j, const char *key, const void *body,
		    size_t n);

/* Writes `s` (n bytes, valid UTF-8 or not) as a JSON string literal;
 * invalid UTF-8 bytes become U+FFFD. */
void cli_json_quote(FILE *f, const void *s, size_t n);

bool cli_utf8_valid(const void *s, size_t n);

/* A text table: cells are copied; columns are sized to their widest cell. */
struct cli_table {
	size_t ncols;
	const bool *right; /* per column: right-aligned (numbers) */
	char **cells;	   /* row-major */
	size_t ncells, cap;
};

void cli_table_init(struct cli_table *t, size_t ncols, const bool *right);
void cli_table_add(struct cli_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cli_table_print(struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

/* ---- progress on a terminal -------------------------------------------- */

struct cli_progress {
	bool on; /* stderr is a terminal */
	bool shown;
	uint64_t start_ms, last_ms;
};

void cli_progress_init(struct cli_progress *p);
/* Redraws the line at most 5 times a second. */
void cli_progress_update(struct cli_progress *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Erases the line (so that error lines and the shell prompt stay clean). */
void cli_progress_done(struct cli_progress *p);

uint64_t cli_now_ms(void);

/* Settings options shared by queue create/configure and topic subscribe. */
struct cli_settings_opts {
	uint64_t ack_timeout, max_deliveries, ttl, max_length, max_bytes,
		dedup_window;
	const char *dead_letter, *overflow;
	bool s_ack_timeout, s_max_deliveries, s_ttl, s_max_length, s_max_bytes,
		s_dedup_window, s_dead_letter, s_overflow;
};

/* Appends the eight settings options (bound to `so`) to `opts` at *n. */
void cli_settings_opts(struct cli_settings_opts *so, struct cli_opt *opts,
		       size_t *n);

/* Converts parsed options to library settings. Returns -1 to go on, or 2
 * after reporting a usage error for command `cmd`. */
int cli_settings(const struct cli_settings_opts *so, const char *cmd,
		 struct raftmq_queue_settings *out);

const char *cli_overflow_name(enum raftmq_overflow o);

/* Command entry points: argv[0] is the command word. */
int cli_queue_main(int argc, char **argv);
int cli_topic_main(int argc, char **argv);
int cli_publish_main(int argc, char **argv);
int cli_consume_main(int argc, char **argv);
int cli_cluster_main(int argc, char **argv);
int cli_stats_main(int argc, char **argv);

/* One message as the JSON line of 'raftmq consume' (id, seq, body,
 * delivery_count, redelivered, dead-letter fields), plus "state" when
 * `state` is not NULL ('raftmq queue peek'). */
void cli_print_delivery(const struct raftmq_delivery *d, const char *state);

/* Settings and counters of one queue as JSON object members. */
void cli_json_queue(struct cli_json *j, const struct raftmq_queue_status *q);

#endif /* RAFTMQ_CLI_H */
