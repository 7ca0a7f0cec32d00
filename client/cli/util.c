/* Option parsing, error lines, JSON and table output of the raftmq CLI. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct cli_global cli_g;

uint64_t cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 1, 0))) static void verr(const char *fmt,
						       va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* One line per failure is the contract: never let a server or
	 * strerror text break it. */
	for (char *p = line; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r') {
			*p = ' ';
		}
	}
	fflush(stdout);
	fprintf(stderr, "raftmq: %s\n", line);
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verr(fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cmd != NULL) {
		fprintf(stderr, "raftmq: %s: %s (try 'raftmq %s --help')\n",
			cmd, msg, cmd);
	} else {
		fprintf(stderr, "raftmq: %s (try 'raftmq --help')\n", msg);
	}
	return CLI_EXIT_USAGE;
}

/* The library's sentence for a cluster where no node answers: "no node of
 * the cluster answers: HOST:PORT (why), ...". */
#define NO_NODE "no node of the cluster answers: "

/* Whether msg is the node's plain "not found" (`queue "x" not found`, or
 * `subscription "t:s": no such queue, topic or subscription`), rather than
 * a sentence about something else the request refers to (its dead-letter
 * queue, say), which is kept. */
static bool plain_missing(const char *msg)
{
	static const char *const ends[] = {
		"\" not found", ": no such queue, topic or subscription"};
	size_t n = strlen(msg), i;

	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		size_t e = strlen(ends[i]);

		if (n >= e && strcmp(msg + n - e, ends[i]) == 0) {
			return true;
		}
	}
	return false;
}

static void shorten_quoted(const char *in, char *out, size_t n);

void cli_describe(int rv, const char *msg, const char *action, const char *kind,
		  const char *name, char *out, size_t n)
{
	char own[600], shown[600];
	const char *whole;

	if (msg == NULL || msg[0] == '\0') {
		msg = raftmq_strerror(rv);
	}
	whole = msg;
	/* The node starts its sentence with what the request names (`queue
	 * "q": ...`, the name shortened), which the action says already. */
	if (kind != NULL && name != NULL) {
		snprintf(own, sizeof(own), "%s \"%s\": ", kind, name);
		shorten_quoted(own, shown, sizeof(shown));
		if (strncmp(msg, shown, strlen(shown)) == 0 &&
		    strstr(msg, "already exists") == NULL) {
			msg += strlen(shown);
		}
	}
	switch (rv) {
	case RAFTMQ_ECONNECT:
		if (strncmp(msg, NO_NODE, strlen(NO_NODE)) == 0) {
			snprintf(out, n,
				 "cannot reach the cluster: no node answers at "
				 "%s; set the addresses with --cluster or "
				 "RAFTMQ_CLUSTER",
				 msg + strlen(NO_NODE));
			return;
		}
		if (strstr(msg, "; answering: ") == NULL) {
			snprintf(out, n, "cannot reach the cluster at %s: %s",
				 cli_g.cluster, msg);
			return;
		}
		break; /* nodes answer, none leads: the node's words */
	case RAFTMQ_ENOTFOUND:
		if (kind == NULL || name == NULL || !plain_missing(whole)) {
			break;
		}
		snprintf(out, n, "%s \"%s\" not found", kind, name);
		return;
	case RAFTMQ_EFULL:
		if (kind == NULL || name == NULL) {
			break;
		}
		snprintf(out, n,
			 "%s \"%s\" is full (max-length or max-bytes reached, "
			 "overflow reject-publish)",
			 kind, name);
		return;
	case RAFTMQ_EEXIST:
		if (kind == NULL || name == NULL ||
		    strstr(msg, "already exists") == NULL) {
			break;
		}
		/* The node says what is in the way (the settings that
		 * differ): keep its sentence, which names the object. */
		snprintf(out, n, "%s", msg);
		return;
	case RAFTMQ_ETIMEOUT:
		if (strstr(msg, "; answering: ") != NULL) {
			break; /* nodes answer, none leads: the node's words */
		}
		snprintf(out, n,
			 "cannot %s: no answer from the cluster at %s in "
			 "time (%s)",
			 action, cli_g.cluster, msg);
		return;
	default:
		break;
	}
	snprintf(out, n, "cannot %s: %s", action, msg);
}

/* Error lines quote names shortened (as the node does), so that the reason
 * after a long name is never cut: a quoted name over 48 bytes keeps its
 * first 40 (whole UTF-8 characters) and "…". */
static void shorten_quoted(const char *in, char *out, size_t n)
{
	size_t o = 0;

	while (*in != '\0' && o + 1 < n) {
		const char *end = *in == '"' ? strchr(in + 1, '"') : NULL;
		size_t len = end != NULL ? (size_t)(end - in - 1) : 0;

		if (end == NULL || len <= 48) {
			size_t k = end != NULL ? len + 2 : 1;

			k = k < n - 1 - o ? k : n - 1 - o;
			memcpy(out + o, in, k);
			o += k;
			in += k;
			continue;
		}
		len = 40;
		while (len > 0 && ((unsigned char)in[1 + len] & 0xc0) == 0x80) {
			len--;
		}
		o += (size_t)snprintf(out + o, n - o, "\"%.*s\xe2\x80\xa6\"",
				      (int)len, in + 1);
		o = o < n - 1 ? o : n - 1;
		in = end + 1;
	}
	out[o] = '\0';
}

int cli_lib_fail_msg(int rv, const char *msg, const char *action,
		     const char *kind, const char *name)
{
	char line[1024], shown[1024];

	cli_describe(rv, msg, action, kind, name, line, sizeof(line));
	shorten_quoted(line, shown, sizeof(shown));
	return cli_fail("%s", shown);
}

int cli_lib_fail(struct raftmq *conn, int rv, const char *action,
		 const char *kind, const char *name)
{
	return cli_lib_fail_msg(rv, conn != NULL ? raftmq_errmsg(conn) : NULL,
				action, kind, name);
}

/* ---- connecting -------------------------------------------------------- */

/* A non-empty environment variable, else NULL. */
static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* A flag, else its environment variable. */
static const char *flag_or_env(const char *flag, const char *name)
{
	return flag != NULL ? flag : env(name);
}

int cli_conn_options(struct raftmq_options *o)
{
	static char file_token[4096];
	const char *token = cli_g.token;
	const char *token_file = cli_g.token_file;
	const char *tls = env("RAFTMQ_TLS");

	/* Flags first (--token-file over --token), then the environment. */
	if (token == NULL && token_file == NULL) {
		token_file = env("RAFTMQ_TOKEN_FILE");
		token = env("RAFTMQ_TOKEN");
		if (token == NULL) {
			token = env("RAFTMQ_AUTH_TOKEN"); /* older name */
		}
	}
	if (token_file != NULL) {
		FILE *f = fopen(token_file, "r");
		size_t n;

		if (f == NULL) {
			cli_fail("cannot read token file %s: %s", token_file,
				 strerror(errno));
			return 1;
		}
		n = fread(file_token, 1, sizeof(file_token) - 1, f);
		fclose(f);
		while (n > 0 && (file_token[n - 1] == '\n' ||
				 file_token[n - 1] == '\r')) {
			n--;
		}
		file_token[n] = '\0';
		if (n == 0) {
			cli_fail("token file %s is empty", token_file);
			return 1;
		}
		token = file_token;
	}
	o->auth_token = token;
	o->tls_ca_file = flag_or_env(cli_g.tls_ca, "RAFTMQ_TLS_CA");
	o->tls_server_name = cli_g.tls_server_name;
	o->tls_cert_file = flag_or_env(cli_g.tls_cert, "RAFTMQ_TLS_CERT");
	o->tls_key_file = flag_or_env(cli_g.tls_key, "RAFTMQ_TLS_KEY");
	o->tls = cli_g.tls || (tls != NULL && strcmp(tls, "0") != 0) ||
		 o->tls_ca_file != NULL || o->tls_cert_file != NULL;
	return 0;
}

struct raftmq *cli_connect(const struct raftmq_options *opts, int *rc)
{
	struct raftmq_options o;
	struct raftmq *conn;
	char err[512];
	int rv;

	if (opts != NULL) {
		o = *opts;
	} else {
		memset(&o, 0, sizeof(o));
	}
	o.client_name = "raftmq-cli/" RAFTMQ_LIB_VERSION;
	if (cli_conn_options(&o) != 0) {
		*rc = CLI_EXIT_FAIL;
		return NULL;
	}
	/*
	 * raftmq_connect() keeps trying until the *request* timeout, which
	 * must stay long for calls that ride out a failover. To fail fast on
	 * an unreachable cluster, probe it first with the short connect
	 * timeout as the whole deadline (the library has no separate connect
	 * deadline), then open the real connection: one extra Hello.
	 */
	if (cli_g.connect_timeout_ms < cli_g.request_timeout_ms) {
		struct raftmq_options p = o;

		p.request_timeout_ms = (unsigned)cli_g.connect_timeout_ms;
		p.connect_timeout_ms = (unsigned)cli_g.connect_timeout_ms;
		p.confirm_cb = NULL;
		rv = raftmq_connect(cli_g.cluster, &p, &conn, err, sizeof(err));
		if (rv != 0) {
			*rc = cli_lib_fail_msg(rv, err, "connect", NULL, NULL);
			return NULL;
		}
		raftmq_close(conn);
	}
	o.request_timeout_ms = (unsigned)cli_g.request_timeout_ms;
	o.connect_timeout_ms = (unsigned)cli_g.connect_timeout_ms;
	rv = raftmq_connect(cli_g.cluster, &o, &conn, err, sizeof(err));
	if (rv != 0) {
		*rc = cli_lib_fail_msg(rv, err, "connect", NULL, NULL);
		return NULL;
	}
	return conn;
}

int cli_with_conn(cli_conn_fn *fn, char **args, void *ctx)
{
	struct raftmq *conn;
	int rc;

	conn = cli_connect(NULL, &rc);
	if (conn == NULL) {
		return rc;
	}
	rc = fn(conn, args, ctx);
	raftmq_close(conn);
	return rc;
}

int cli_run(const struct cli_cmd *cmd, int argc, char **argv,
	    const struct cli_opt *opts, cli_conn_fn *fn, void *ctx)
{
	char *args[CLI_MAX_ARGS] = {NULL};
	int nargs;
	int rc;

	rc = cli_parse(cmd, argc, argv, opts, args, &nargs);
	if (rc >= 0) {
		return rc;
	}
	return cli_with_conn(fn, args, ctx);
}

/* ---- option parsing ---------------------------------------------------- */

int cli_parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)s[0])) {
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0') {
		return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

int cli_help(const struct cli_cmd *cmd)
{
	fputs(cmd->usage, stdout);
	return CLI_EXIT_OK;
}

static const struct cli_opt *find_opt(const struct cli_opt *opts,
				      const char *name, size_t len)
{
	for (; opts != NULL && opts->name != NULL; opts++) {
		if (strlen(opts->name) == len &&
		    strncmp(opts->name, name, len) == 0) {
			return opts;
		}
	}
	return NULL;
}

static int set_opt(const struct cli_cmd *cmd, const struct cli_opt *o,
		   const char *value)
{
	switch (o->kind) {
	case CLI_FLAG:
		*(bool *)o->dst = true;
		break;
	case CLI_STR:
		*(const char **)o->dst = value;
		break;
	case CLI_U64:
		if (cli_parse_u64(value, (uint64_t *)o->dst) != 0) {
			return cli_usage(cmd->path,
					 "--%s needs a non-negative integer, "
					 "not \"%s\"",
					 o->name, value);
		}
		break;
	}
	if (o->seen != NULL) {
		*o->seen = true;
	}
	return -1;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char **argv,
	      const struct cli_opt *opts, char **args, int *nargs)
{
	static const struct cli_opt common[] = {
		{"cluster", CLI_STR, &cli_g.cluster, NULL},
		{"token", CLI_STR, &cli_g.token, NULL},
		{"token-file", CLI_STR, &cli_g.token_file, NULL},
		{"tls", CLI_FLAG, &cli_g.tls, NULL},
		{"tls-ca", CLI_STR, &cli_g.tls_ca, &cli_g.tls},
		{"tls-server-name", CLI_STR, &cli_g.tls_server_name,
		 &cli_g.tls},
		{"tls-cert", CLI_STR, &cli_g.tls_cert, &cli_g.tls},
		{"tls-key", CLI_STR, &cli_g.tls_key, &cli_g.tls},
		{NULL, CLI_FLAG, NULL, NULL},
	};
	bool only_args = false;
	int n = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct cli_opt *o;
		const char *eq;
		const char *value = NULL;
		size_t len;
		int rc;

		if (only_args || a[0] != '-' || strcmp(a, "-") == 0) {
			if (n >= cmd->max_args) {
				return cli_usage(cmd->path,
						 "unexpected argument \"%s\"",
						 a);
			}
			args[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			return cli_help(cmd);
		}
		if (a[1] != '-') {
			return cli_usage(cmd->path, "unknown option %s", a);
		}
		a += 2;
		eq = strchr(a, '=');
		len = eq != NULL ? (size_t)(eq - a) : strlen(a);
		o = find_opt(opts, a, len);
		if (o == NULL) {
			o = find_opt(common, a, len);
		}
		if (o == NULL) {
			return cli_usage(cmd->path, "unknown option --%.*s",
					 (int)len, a);
		}
		if (o->kind == CLI_FLAG) {
			if (eq != NULL) {
				return cli_usage(cmd->path,
						 "--%s takes no value",
						 o->name);
			}
		} else if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			return cli_usage(cmd->path, "--%s needs a value",
					 o->name);
		}
		rc = set_opt(cmd, o, value);
		if (rc >= 0) {
			return rc;
		}
	}
	if (n < cmd->min_args) {
		return cli_usage(cmd->path, "missing argument%s",
				 cmd->min_args - n > 1 ? "s" : "");
	}
	*nargs = n;
	return -1;
}

/* Dispatches argv[1] among `subs` of the group command `group`. */
int cli_dispatch(const struct cli_cmd *group, const struct cli_sub *subs,
		 int argc, char **argv)
{
	if (argc < 2) {
		return cli_usage(group->path, "missing SUBCOMMAND");
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		return cli_help(group);
	}
	for (; subs->name != NULL; subs++) {
		if (strcmp(argv[1], subs->name) == 0) {
			return subs->fn(argc - 1, argv + 1);
		}
	}
	return cli_usage(group->path, "unknown subcommand \"%s\"", argv[1]);
}

/* ---- queue settings options ------------------------------------------- */

void cli_settings_opts(struct cli_settings_opts *so, struct cli_opt *opts,
		       size_t *n)
{
	const struct cli_opt add[] = {
		{"ack-timeout", CLI_U64, &so->ack_timeout, &so->s_ack_timeout},
		{"max-deliveries", CLI_U64, &so->max_deliveries,
		 &so->s_max_deliveries},
		{"dead-letter", CLI_STR, &so->dead_letter, &so->s_dead_letter},
		{"ttl", CLI_U64, &so->ttl, &so->s_ttl},
		{"max-length", CLI_U64, &so->max_length, &so->s_max_length},
		{"max-bytes", CLI_U64, &so->max_bytes, &so->s_max_bytes},
		{"overflow", CLI_STR, &so->overflow, &so->s_overflow},
		{"dedup-window", CLI_U64, &so->dedup_window,
		 &so->s_dedup_window},
	};

	for (size_t i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		opts[(*n)++] = add[i];
	}
}

int cli_settings(const struct cli_settings_opts *so, const char *cmd,
		 struct raftmq_queue_settings *out)
{
	memset(out, 0, sizeof(*out));
	if (so->s_ack_timeout) {
		out->has |= RAFTMQ_HAS_ACK_TIMEOUT;
		out->ack_timeout_ms = so->ack_timeout;
	}
	if (so->s_max_deliveries) {
		if (so->max_deliveries > UINT32_MAX) {
			return cli_usage(cmd, "--max-deliveries is too large");
		}
		out->has |= RAFTMQ_HAS_MAX_DELIVERIES;
		out->max_deliveries = (uint32_t)so->max_deliveries;
	}
	if (so->s_dead_letter) {
		out->has |= RAFTMQ_HAS_DEAD_LETTER_QUEUE;
		out->dead_letter_queue = so->dead_letter;
	}
	if (so->s_ttl) {
		out->has |= RAFTMQ_HAS_TTL;
		out->ttl_ms = so->ttl;
	}
	if (so->s_max_length) {
		out->has |= RAFTMQ_HAS_MAX_LENGTH;
		out->max_length = so->max_length;
	}
	if (so->s_max_bytes) {
		out->has |= RAFTMQ_HAS_MAX_BYTES;
		out->max_bytes = so->max_bytes;
	}
	if (so->s_overflow) {
		out->has |= RAFTMQ_HAS_OVERFLOW;
		if (strcmp(so->overflow, "reject-publish") == 0) {
			out->overflow = RAFTMQ_OVERFLOW_REJECT_PUBLISH;
		} else if (strcmp(so->overflow, "drop-head") == 0) {
			out->overflow = RAFTMQ_OVERFLOW_DROP_HEAD;
		} else {
			return cli_usage(cmd,
					 "--overflow must be reject-publish or "
					 "drop-head, not \"%s\"",
					 so->overflow);
		}
	}
	if (so->s_dedup_window) {
		out->has |= RAFTMQ_HAS_DEDUP_WINDOW;
		out->dedup_window_ms = so->dedup_window;
	}
	return -1;
}

const char *cli_overflow_name(enum raftmq_overflow o)
{
	return o == RAFTMQ_OVERFLOW_DROP_HEAD ? "drop-head" : "reject-publish";
}

/* ---- JSON -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80) {
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1fu;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0fu;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07u;
	} else {
		return 0;
	}
	if (len > n) {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return 0;
		}
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	return len;
}

bool cli_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0;

	while (i < n) {
		size_t len = utf8_seq(p + i, n - i);

		if (len == 0) {
			return false;
		}
		i += len;
	}
	return true;
}

void cli_json_quote(FILE *f, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0;

	putc('"', f);
	while (i < n) {
		unsigned char c = p[i];
		size_t len;

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(f, "\\u%04x", c);
				break;
			}
			len = utf8_seq(p + i, n - i);
			if (len == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		i++;
	}
	putc('"', f);
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
			     p[i + 2];

		putc(tab[v >> 18], f);
		putc(tab[v >> 12 & 63], f);
		putc(tab[v >> 6 & 63], f);
		putc(tab[v & 63], f);
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n) {
			v |= (uint32_t)p[i + 1] << 8;
		}
		putc(tab[v >> 18], f);
		putc(tab[v >> 12 & 63], f);
		putc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
		putc('=', f);
	}
}

void cli_json_init(struct cli_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->first[0] = true;
}

static void key(struct cli_json *j, const char *k)
{
	if (!j->first[j->depth]) {
		putc(',', j->f);
	}
	j->first[j->depth] = false;
	if (k != NULL) {
		cli_json_quote(j->f, k, strlen(k));
		putc(':', j->f);
	}
}

static void json_open(struct cli_json *j, const char *k, int c)
{
	key(j, k);
	putc(c, j->f);
	if (j->depth + 1 < (int)(sizeof(j->first) / sizeof(j->first[0]))) {
		j->depth++;
	}
	j->first[j->depth] = true;
}

void cli_json_obj(struct cli_json *j, const char *k)
{
	json_open(j, k, '{');
}

void cli_json_obj_end(struct cli_json *j)
{
	putc('}', j->f);
	j->depth--;
}

void cli_json_arr(struct cli_json *j, const char *k)
{
	json_open(j, k, '[');
}

void cli_json_arr_end(struct cli_json *j)
{
	putc(']', j->f);
	j->depth--;
}

void cli_json_str(struct cli_json *j, const char *k, const char *s)
{
	key(j, k);
	cli_json_quote(j->f, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void cli_json_strn(struct cli_json *j, const char *k, const void *s, size_t n)
{
	key(j, k);
	cli_json_quote(j->f, s, n);
}

void cli_json_u64(struct cli_json *j, const char *k, uint64_t v)
{
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void cli_json_bool(struct cli_json *j, const char *k, bool v)
{
	key(j, k);
	fputs(v ? "true" : "false", j->f);
}

void cli_json_null(struct cli_json *j, const char *k)
{
	key(j, k);
	fputs("null", j->f);
}

void cli_json_bytes(struct cli_json *j, const char *k, const void *body,
		    size_t n)
{
	char k64[64];

	if (cli_utf8_valid(body, n)) {
		cli_json_strn(j, k, body, n);
		return;
	}
	snprintf(k64, sizeof(k64), "%s_base64", k);
	key(j, k64);
	putc('"', j->f);
	base64(j->f, body, n);
	putc('"', j->f);
}

void cli_json_queue(struct cli_json *j, const struct raftmq_queue_status *q)
{
	const struct raftmq_queue_settings *s = &q->settings;

	cli_json_str(j, "name", q->name);
	cli_json_str(j, "topic", q->topic);
	cli_json_obj(j, "settings");
	cli_json_u64(j, "ack_timeout_ms", s->ack_timeout_ms);
	cli_json_u64(j, "max_deliveries", s->max_deliveries);
	cli_json_str(j, "dead_letter_queue", s->dead_letter_queue);
	cli_json_u64(j, "ttl_ms", s->ttl_ms);
	cli_json_u64(j, "max_length", s->max_length);
	cli_json_u64(j, "max_bytes", s->max_bytes);
	cli_json_str(j, "overflow", cli_overflow_name(s->overflow));
	cli_json_u64(j, "dedup_window_ms", s->dedup_window_ms);
	cli_json_obj_end(j);
	cli_json_u64(j, "ready", q->ready);
	cli_json_u64(j, "unacked", q->unacked);
	cli_json_u64(j, "delayed", q->delayed);
	cli_json_u64(j, "bytes", q->bytes);
	cli_json_u64(j, "consumers", q->consumers);
	cli_json_u64(j, "published", q->published);
	cli_json_u64(j, "delivered", q->delivered);
	cli_json_u64(j, "redelivered", q->redelivered);
	cli_json_u64(j, "acked", q->acked);
	cli_json_u64(j, "nacked", q->nacked);
	cli_json_u64(j, "released", q->released);
	cli_json_u64(j, "dead_lettered", q->dead_lettered);
	cli_json_u64(j, "expired", q->expired);
	cli_json_u64(j, "deduplicated", q->deduplicated);
	cli_json_u64(j, "dropped", q->dropped);
	cli_json_u64(j, "rejected", q->rejected);
}

/* ---- tables ------------------------------------------------------------ */

void cli_table_init(struct cli_table *t, size_t ncols, const bool *right)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->right = right;
}

void cli_table_add(struct cli_table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (t->ncells == t->cap) {
		size_t cap = t->cap > 0 ? 2 * t->cap : 64;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (c == NULL) {
			return; /* a short table beats a crash in a CLI */
		}
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
	}
	va_end(ap);
	t->cells[t->ncells++] = s;
}

void cli_table_print(struct cli_table *t, FILE *f)
{
	size_t width[32] = {0};
	size_t nc = t->ncols < 32 ? t->ncols : 32;

	for (size_t i = 0; i < t->ncells; i++) {
		size_t w = t->cells[i] != NULL ? strlen(t->cells[i]) : 0;

		if (w > width[i % t->ncols] && i % t->ncols < nc) {
			width[i % t->ncols] = w;
		}
	}
	for (size_t i = 0; i < t->ncells; i++) {
		size_t col = i % t->ncols;
		const char *s = t->cells[i] != NULL ? t->cells[i] : "";
		bool last = col + 1 == t->ncols || i + 1 == t->ncells;
		int w = col < nc ? (int)width[col] : 0;

		if (t->right != NULL && t->right[col]) {
			fprintf(f, "%*s", w, s);
		} else if (last) {
			fputs(s, f); /* no trailing blanks */
		} else {
			fprintf(f, "%-*s", w, s);
		}
		fputs(last ? "\n" : "  ", f);
	}
}

void cli_table_free(struct cli_table *t)
{
	for (size_t i = 0; i < t->ncells; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ---- progress ---------------------------------------------------------- */

void cli_progress_init(struct cli_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(STDERR_FILENO) == 1;
	p->start_ms = cli_now_ms();
	p->last_ms = p->start_ms;
}

void cli_progress_update(struct cli_progress *p, const char *fmt, ...)
{
	uint64_t now;
	va_list ap;

	if (!p->on) {
		return;
	}
	now = cli_now_ms();
	/* Quiet for the first half second: short runs print no progress. */
	if (now - p->last_ms < 200 || now - p->start_ms < 500) {
		return;
	}
	p->last_ms = now;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	p->shown = true;
}

void cli_progress_done(struct cli_progress *p)
{
	if (p->shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->shown = false;
	}
}
