/* node_config: defaults, the INI file, flags over the file, every error
 * sentence, --help and docs/config.md against the option table.
 *
 * Files live in tests/data/config/; each error file says in its first line
 * which line is wrong, and the expected messages below name that line. */
#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_config.h"

#define DATA SOURCE_ROOT "/tests/data/config/"
#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static struct node_config cfg;
static char err[1024];
static char out[32768]; /* what parse_args printed */

static void setup(void)
{
	node_config_defaults(&cfg);
	memset(err, 0, sizeof(err));
	memset(out, 0, sizeof(out));
}

TestSuite(config, .init = setup);

/* Runs node_config_parse_args() on {"raftmqd", args..., NULL} and keeps what
 * it printed in `out`. */
static int parse_list(const char *const *args)
{
	char *argv[64];
	int argc = 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rv;

	cr_assert_not_null(f);
	argv[argc++] = "raftmqd";
	for (; *args != NULL; args++) {
		cr_assert_lt(argc, 63);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	rv = node_config_parse_args(&cfg, argc, argv, f, err, sizeof(err));
	fclose(f);
	cr_assert_lt(len, sizeof(out));
	memcpy(out, buf, len);
	out[len] = '\0';
	free(buf);
	return rv;
}

#define PARSE(...) parse_list((const char *const[]){__VA_ARGS__, NULL})

static uint64_t ram(void)
{
	return (uint64_t)sysconf(_SC_PHYS_PAGES) *
	       (uint64_t)sysconf(_SC_PAGESIZE);
}

/* floor(ram * pct / 100) without overflow, computed another way than the
 * code under test (128-bit multiply). */
static uint64_t ram_pct(unsigned pct)
{
	__extension__ typedef unsigned __int128 u128;
	return (uint64_t)((u128)ram() * pct / 100);
}

static void load_ok(const char *path)
{
	int rv = node_config_load_file(&cfg, path, err, sizeof(err));
	cr_assert_eq(rv, 0, "load %s: %s", path, err);
}

static void expect_load_error(const char *name, const char *msg)
{
	char path[512], want[1024];
	int rv;

	snprintf(path, sizeof(path), "%s%s", DATA, name);
	snprintf(want, sizeof(want), "%s%s", path, msg);
	rv = node_config_load_file(&cfg, path, err, sizeof(err));
	cr_assert_eq(rv, -1, "%s loaded", name);
	cr_assert_str_eq(err, want);
}

static void expect_parse_error(const char *msg, int rv)
{
	cr_assert_eq(rv, -1, "parse succeeded; wanted: %s", msg);
	cr_assert_str_eq(err, msg);
}

static void expect_invalid(const char *msg)
{
	int rv = node_config_validate(&cfg, err, sizeof(err));
	cr_assert_eq(rv, -1, "valid; wanted: %s", msg);
	cr_assert_str_eq(err, msg);
}

/* A valid 3-node config for validation tests to break one thing of. */
static void make_valid(void)
{
	setup();
	cr_assert_eq(PARSE("--config", SOURCE_ROOT "/deploy/config/node1.ini"),
		     0, "%s", err);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

/* -------------------------------------------------------------- defaults */

Test(config, defaults)
{
	cr_assert_eq(cfg.id, 0);
	cr_assert_str_empty(cfg.data_dir);
	cr_assert_str_empty(cfg.raft_address);
	cr_assert_str_empty(cfg.client_address);
	cr_assert_str_empty(cfg.http_address);
	cr_assert_eq(cfg.log_level, NODE_LOG_INFO);
	cr_assert_eq(cfg.n_members, 0);
	cr_assert_eq(cfg.election_timeout_ms, 1000);
	cr_assert_eq(cfg.heartbeat_timeout_ms, 100);
	cr_assert_eq(cfg.snapshot_threshold, 65536);
	cr_assert_eq(cfg.snapshot_trailing, 8192);
	cr_assert_eq(cfg.max_inflight_entries, 256);
	cr_assert_eq(cfg.memory_limit, ram_pct(40));
	cr_assert_eq(cfg.max_frame_bytes, 8 * MIB);
	cr_assert_eq(cfg.max_message_bytes, 4 * MIB);
	cr_assert_eq(cfg.max_connections, 10000);
	cr_assert_eq(cfg.max_client_output_bytes, 16 * MIB);
	cr_assert_eq(cfg.client_write_timeout_ms, 10000);
	cr_assert_eq(cfg.max_batch_commands, 4096);
	cr_assert_eq(cfg.max_batch_bytes, 1 * MIB);
	cr_assert_eq(cfg.max_inflight_batches, 16);
}

Test(config, defaults_overwrite_everything)
{
	memset(&cfg, 0xAB, sizeof(cfg));
	node_config_defaults(&cfg);
	cr_assert_eq(cfg.id, 0);
	cr_assert_str_empty(cfg.data_dir);
	cr_assert_eq(cfg.n_members, 0);
	cr_assert_eq(cfg.max_batch_commands, 4096);
}

Test(config, defaults_alone_are_not_enough)
{
	expect_invalid(
		"id is required (set it in [node] or with --id; ids "
		"start at 1)");
}

/* ------------------------------------------------------------------ files */

Test(config, minimal_file)
{
	load_ok(DATA "minimal.ini");
	cr_assert_eq(cfg.id, 1);
	cr_assert_str_eq(cfg.data_dir, "./data/local/node1");
	cr_assert_str_eq(cfg.raft_address, "127.0.0.1:7101");
	cr_assert_str_eq(cfg.client_address, "127.0.0.1:7001");
	cr_assert_eq(cfg.election_timeout_ms, 1000); /* untouched default */
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, full_file)
{
	load_ok(DATA "full.ini");
	cr_assert_eq(cfg.id, 2);
	cr_assert_str_eq(cfg.data_dir, "/var/lib/raftmq/node2");
	cr_assert_str_eq(cfg.raft_address, "10.0.0.2:7102");
	cr_assert_str_eq(cfg.client_address, "node2.example.com:7002");
	cr_assert_str_eq(cfg.http_address, "localhost:7202");
	cr_assert_eq(cfg.log_level, NODE_LOG_DEBUG);
	cr_assert_eq(cfg.n_members, 3);
	for (size_t i = 0; i < 3; i++) {
		char raft[64], client[64];
		snprintf(raft, sizeof(raft), "10.0.0.%zu:710%zu", i + 1, i + 1);
		snprintf(client, sizeof(client), "node%zu.example.com:700%zu",
			 i + 1, i + 1);
		cr_assert_eq(cfg.members[i].id, i + 1);
		cr_assert_str_eq(cfg.members[i].raft_address, raft);
		cr_assert_str_eq(cfg.members[i].client_address, client);
	}
	cr_assert_eq(cfg.election_timeout_ms, 2000);
	cr_assert_eq(cfg.heartbeat_timeout_ms, 150);
	cr_assert_eq(cfg.snapshot_threshold, 100000);
	cr_assert_eq(cfg.snapshot_trailing, 20000);
	cr_assert_eq(cfg.max_inflight_entries, 512);
	cr_assert_eq(cfg.memory_limit, 2 * GIB);
	cr_assert_eq(cfg.max_frame_bytes, 16 * MIB);
	cr_assert_eq(cfg.max_message_bytes, 8 * MIB);
	cr_assert_eq(cfg.max_connections, 500);
	cr_assert_eq(cfg.max_client_output_bytes, 32 * MIB);
	cr_assert_eq(cfg.max_batch_commands, 1024);
	cr_assert_eq(cfg.max_batch_bytes, 512 * KIB);
	cr_assert_eq(cfg.max_inflight_batches, 32);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, sixteen_members_on_continuation_lines)
{
	load_ok(DATA "members16.ini");
	cr_assert_eq(cfg.n_members, NODE_MAX_MEMBERS);
	cr_assert_eq(cfg.members[15].id, 16);
	cr_assert_str_eq(cfg.members[15].raft_address, "127.0.0.1:7116");
	cr_assert_str_eq(cfg.members[15].client_address, "127.0.0.1:7016");
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, deploy_configs)
{
	struct node_member first[3];

	for (unsigned n = 1; n <= 3; n++) {
		char path[512], s[64];
		setup();
		snprintf(path, sizeof(path), "%s/deploy/config/node%u.ini",
			 SOURCE_ROOT, n);
		load_ok(path);
		cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0,
			     "node%u.ini: %s", n, err);
		cr_assert_eq(cfg.id, n);
		snprintf(s, sizeof(s), "./data/local/node%u", n);
		cr_assert_str_eq(cfg.data_dir, s);
		snprintf(s, sizeof(s), "127.0.0.1:%u", 7100 + n);
		cr_assert_str_eq(cfg.raft_address, s);
		snprintf(s, sizeof(s), "127.0.0.1:%u", 7000 + n);
		cr_assert_str_eq(cfg.client_address, s);
		snprintf(s, sizeof(s), "127.0.0.1:%u", 7200 + n);
		cr_assert_str_eq(cfg.http_address, s);
		cr_assert_eq(cfg.n_members, 3);
		if (n == 1) {
			memcpy(first, cfg.members, sizeof(first));
		}
		for (size_t i = 0; i < 3; i++) {
			cr_assert_eq(cfg.members[i].id, first[i].id);
			cr_assert_str_eq(cfg.members[i].raft_address,
					 first[i].raft_address);
			cr_assert_str_eq(cfg.members[i].client_address,
					 first[i].client_address);
		}
	}
}

Test(config, failed_load_changes_nothing)
{
	cfg.id = 9;
	/* err_dup_key.ini sets id = 1 and data_dir before its error. */
	cr_assert_eq(node_config_load_file(&cfg, DATA "err_dup_key.ini", err,
					   sizeof(err)),
		     -1);
	cr_assert_eq(cfg.id, 9);
	cr_assert_str_empty(cfg.data_dir);
}

Test(config, load_on_top_of_existing_values)
{
	cfg.max_connections = 77;
	load_ok(DATA "minimal.ini");
	cr_assert_eq(cfg.max_connections, 77);
	cr_assert_eq(cfg.id, 1);
}

Test(config, file_unknown_key)
{
	expect_load_error("err_unknown_key.ini",
			  ":12: unknown key 'foo' in section [node]");
}

Test(config, file_key_in_wrong_section)
{
	expect_load_error("err_wrong_section.ini",
			  ":3: unknown key 'memory_limit' in section [raft] "
			  "(it belongs in [limits])");
}

Test(config, file_unknown_section)
{
	expect_load_error("err_unknown_section.ini",
			  ":5: unknown section [nodes] (known: node, cluster, "
			  "raft, limits, batching, user.NAME)");
}

Test(config, file_bad_number)
{
	expect_load_error("err_bad_number.ini",
			  ":3: bad election_timeout_ms in [raft]: '10s' is not "
			  "a whole number");
}

Test(config, file_out_of_range)
{
	expect_load_error("err_out_of_range.ini",
			  ":4: bad max_inflight_batches in [batching]: 5000 is "
			  "out of range (1 to 1024)");
}

Test(config, file_bad_size_suffix)
{
	expect_load_error("err_bad_size.ini",
			  ":4: bad max_message_bytes in [limits]: '4X' has an "
			  "unknown suffix 'X' (use k, M or G, powers of 1024)");
}

Test(config, file_bad_members)
{
	expect_load_error("err_bad_members.ini",
			  ":3: bad members in [cluster]: member "
			  "'2@127.0.0.1:7102' is not "
			  "ID@RAFT_ADDRESS@CLIENT_ADDRESS");
}

Test(config, file_duplicate_member_on_continuation_line)
{
	expect_load_error("err_dup_member.ini",
			  ":4: bad members in [cluster]: member id 1 appears "
			  "twice");
}

Test(config, file_duplicate_key)
{
	expect_load_error("err_dup_key.ini",
			  ":5: key 'id' in section [node] is set twice (first "
			  "on line 3)");
}

Test(config, file_key_outside_section)
{
	expect_load_error("err_outside_section.ini",
			  ":2: key 'id' is outside any section (put it under "
			  "[node])");
}

Test(config, file_syntax_error)
{
	expect_load_error("err_syntax.ini",
			  ":4: expected 'key = value', '[section]' or a "
			  "comment");
}

Test(config, file_indented_keys)
{
	expect_load_error("err_indented.ini",
			  ":4: indented line continues the value of 'id' (only "
			  "members may span lines; remove the indentation)");
}

Test(config, file_line_too_long)
{
	const char *want = DATA "err_long_line.ini:3: line is longer than ";
	cr_assert_eq(node_config_load_file(&cfg, DATA "err_long_line.ini", err,
					   sizeof(err)),
		     -1);
	cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
	cr_assert_not_null(strstr(err, "continue on indented lines"), "%s",
			   err);
	cr_assert_eq(cfg.n_members, 0);
}

Test(config, file_missing)
{
	cr_assert_eq(node_config_load_file(&cfg, DATA "no-such.ini", err,
					   sizeof(err)),
		     -1);
	cr_assert_str_eq(err, "cannot read config file '" DATA
			      "no-such.ini': No such file or directory");
}

/* ------------------------------------------------------------------ flags */

Test(config, flags_override_file)
{
	cr_assert_eq(PARSE("--config", DATA "full.ini", "--election-timeout-ms",
			   "3000", "--data-dir=/tmp/x", "--log-level", "warn"),
		     0, "%s", err);
	cr_assert_eq(cfg.election_timeout_ms, 3000);
	cr_assert_str_eq(cfg.data_dir, "/tmp/x");
	cr_assert_eq(cfg.log_level, NODE_LOG_WARN);
	cr_assert_eq(cfg.heartbeat_timeout_ms, 150); /* from the file */
	cr_assert_eq(cfg.id, 2);		     /* from the file */
	cr_assert_str_empty(out);
}

Test(config, config_flag_position_does_not_matter)
{
	/* Flags before --config still override the file. */
	cr_assert_eq(PARSE("--id", "3", "--raft-address=10.0.0.3:7103",
			   "--config=" DATA "full.ini"),
		     0, "%s", err);
	cr_assert_eq(cfg.id, 3);
	cr_assert_str_eq(cfg.raft_address, "10.0.0.3:7103");
	cr_assert_eq(cfg.log_level, NODE_LOG_DEBUG); /* from the file */

	setup();
	cr_assert_eq(PARSE("--config", DATA "full.ini", "--id", "3",
			   "--raft-address", "10.0.0.3:7103"),
		     0, "%s", err);
	cr_assert_eq(cfg.id, 3);
	cr_assert_str_eq(cfg.raft_address, "10.0.0.3:7103");
	cr_assert_eq(cfg.log_level, NODE_LOG_DEBUG);
}

Test(config, flags_alone)
{
	cr_assert_eq(PARSE("--id", "1", "--data-dir", "./d", "--raft-address",
			   "localhost:7101", "--client-address=localhost:7001",
			   "--members",
			   "1@localhost:7101@localhost:7001, "
			   "2@localhost:7102@localhost:7002"),
		     0, "%s", err);
	cr_assert_eq(cfg.n_members, 2);
	cr_assert_str_eq(cfg.members[1].client_address, "localhost:7002");
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, later_flag_wins)
{
	cr_assert_eq(PARSE("--id", "1", "--id=4"), 0, "%s", err);
	cr_assert_eq(cfg.id, 4);
}

Test(config, members_flag_replaces_file_list)
{
	cr_assert_eq(PARSE("--config", DATA "full.ini", "--members",
			   "2@10.0.0.2:7102@node2.example.com:7002"),
		     0, "%s", err);
	cr_assert_eq(cfg.n_members, 1);
	cr_assert_eq(cfg.members[0].id, 2);

	setup();
	cr_assert_eq(PARSE("--config", DATA "full.ini", "--members="), 0, "%s",
		     err);
	cr_assert_eq(cfg.n_members, 0);
}

Test(config, unknown_flag)
{
	expect_parse_error("unknown flag --foo (see raftmqd --help)",
			   PARSE("--id", "1", "--foo", "bar"));
}

Test(config, flag_with_underscores_gets_a_hint)
{
	expect_parse_error(
		"unknown flag --data_dir (did you mean --data-dir? "
		"see raftmqd --help)",
		PARSE("--data_dir=/x"));
}

Test(config, flag_without_value)
{
	expect_parse_error(
		"flag --data-dir needs a value (--data-dir=VALUE "
		"or --data-dir VALUE)",
		PARSE("--data-dir"));
	expect_parse_error(
		"flag --data-dir needs a value (--data-dir=VALUE "
		"or --data-dir VALUE)",
		PARSE("--data-dir", "--id", "1"));
	expect_parse_error(
		"flag --config needs a value (--config=VALUE or "
		"--config VALUE)",
		PARSE("--id", "1", "--config"));
}

Test(config, positional_argument)
{
	expect_parse_error(
		"unexpected argument 'start' (raftmqd takes only "
		"flags; see raftmqd --help)",
		PARSE("start"));
}

Test(config, flag_bad_value)
{
	expect_parse_error(
		"bad --heartbeat-timeout-ms: '-5' is not a whole "
		"number",
		PARSE("--heartbeat-timeout-ms", "-5"));
	expect_parse_error(
		"bad --max-connections: 0 is out of range (1 to "
		"1000000)",
		PARSE("--max-connections=0"));
	expect_parse_error("bad --id: 0 is out of range (at least 1)",
			   PARSE("--id", "0"));
	expect_parse_error("bad --id: '18446744073709551616' is too large",
			   PARSE("--id", "18446744073709551616"));
	expect_parse_error("bad --data-dir: the value is empty",
			   PARSE("--data-dir="));
}

Test(config, flag_errors_leave_config_untouched)
{
	cfg.id = 5;
	cr_assert_eq(PARSE("--id", "7", "--max-connections", "0"), -1);
	cr_assert_eq(cfg.id, 5);
	cr_assert_eq(PARSE("--id", "7", "--config", DATA "err_syntax.ini"), -1);
	cr_assert_eq(cfg.id, 5);
}

Test(config, config_twice)
{
	expect_parse_error("--config is given twice ('a.ini' and 'b.ini')",
			   PARSE("--config", "a.ini", "--config=b.ini"));
}

Test(config, config_file_error_passes_through)
{
	expect_parse_error(DATA
			   "err_bad_number.ini:3: bad election_timeout_ms "
			   "in [raft]: '10s' is not a whole number",
			   PARSE("--config", DATA "err_bad_number.ini"));
}

Test(config, help)
{
	cr_assert_eq(PARSE("--help"), 1);
	cr_assert_eq(strncmp(out, "Usage: raftmqd", 14), 0, "%s", out);
	setup();
	/* Help wins over a bad flag and skips the file. */
	cr_assert_eq(PARSE("--foo", "--config", "/nonexistent.ini", "-h"), 1);
	cr_assert_eq(strncmp(out, "Usage: raftmqd", 14), 0, "%s", out);
	cr_assert_str_empty(err);
	expect_parse_error("flag --help takes no value", PARSE("--help=x"));
}

Test(config, version)
{
	cr_assert_eq(PARSE("--version"), 1);
	cr_assert_str_eq(out, "raftmqd " RAFTMQ_VERSION "\n");
	cr_assert_eq(cfg.id, 0);
}

/* Every key of the table, its section, flag and default are in --help, and
 * no line is wider than 80 columns. */
Test(config, help_lists_every_key)
{
	const char *section, *key, *def;
	size_t n = 0;

	cr_assert_eq(PARSE("--help"), 1);
	for (size_t i = 0; node_config_option(i, &section, &key, &def) == 0;
	     i++, n++) {
		char flag[80], header[32], line[160], *p;
		snprintf(header, sizeof(header), "\n[%s]\n", section);
		cr_assert_not_null(strstr(out, header), "no %s", header);
		snprintf(flag, sizeof(flag), "\n  --%s ", key);
		for (p = flag; *p; p++) {
			*p = *p == '_' ? '-' : *p;
		}
		p = strstr(out, flag);
		cr_assert_not_null(p, "--help lacks%s", flag);
		/* The option comes after its section header. */
		cr_assert_lt(strstr(out, header), p, "%s before %s", flag,
			     header);
		snprintf(line, sizeof(line), "%s",
			 p + 1); /* up to the end of the flag's line */
		*strchr(line, '\n') = '\0';
		if (def == NULL) {
			cr_assert_not_null(strstr(line, "(required)"), "%s",
					   line);
		} else if (def[0] == '\0') {
			cr_assert_not_null(strstr(line, "(default: empty)"),
					   "%s", line);
		} else {
			char want[64];
			snprintf(want, sizeof(want), "(default: %s", def);
			cr_assert_not_null(strstr(line, want), "%s", line);
		}
	}
	cr_assert_eq(n, 33); /* the keys of struct node_config (not users) */
	for (const char *l = out; *l != '\0';) {
		size_t len = strcspn(l, "\n");
		cr_assert_leq(len, 80, "wide line: %.*s", (int)len, l);
		l += len + (l[len] == '\n');
	}
	cr_assert_not_null(strstr(out, "--config FILE"));
	cr_assert_not_null(strstr(out, "--version"));
}

Test(config, keys_and_flags_are_unique)
{
	const char *s1, *k1, *d1, *s2, *k2, *d2;

	for (size_t i = 0; node_config_option(i, &s1, &k1, &d1) == 0; i++) {
		/* Flags drop the section, so keys must not repeat at all. */
		for (size_t j = i + 1;
		     node_config_option(j, &s2, &k2, &d2) == 0; j++) {
			cr_assert_str_neq(k1, k2);
		}
		cr_assert(strchr(k1, '-') == NULL, "%s", k1);
	}
	cr_assert_eq(node_config_option(1000, &s1, &k1, &d1), -1);
}

/* ------------------------------------------------------ sizes and levels */

struct size_case {
	const char *in;
	uint64_t bytes;
};

Test(config, sizes)
{
	static const struct size_case ok[] = {
		{"1k", KIB},	 {"1K", KIB},		{"2048", 2048},
		{"3m", 3 * MIB}, {"5M", 5 * MIB},	{"1G", GIB},
		{"1GiB", GIB},	 {"512KiB", 512 * KIB}, {"64kB", 64 * KIB},
		{"1g", GIB},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		setup();
		cr_assert_eq(PARSE("--max-frame-bytes", ok[i].in), 0, "%s: %s",
			     ok[i].in, err);
		cr_assert_eq(cfg.max_frame_bytes, ok[i].bytes, "%s", ok[i].in);
	}
}

Test(config, bad_sizes)
{
	expect_parse_error(
		"bad --max-frame-bytes: '8X' has an unknown suffix "
		"'X' (use k, M or G, powers of 1024)",
		PARSE("--max-frame-bytes", "8X"));
	expect_parse_error(
		"bad --max-frame-bytes: '8Mi' has an unknown "
		"suffix 'Mi' (use k, M or G, powers of 1024)",
		PARSE("--max-frame-bytes", "8Mi"));
	expect_parse_error(
		"bad --max-frame-bytes: '1.5M' has an unknown "
		"suffix '.5M' (use k, M or G, powers of 1024)",
		PARSE("--max-frame-bytes", "1.5M"));
	expect_parse_error(
		"bad --max-frame-bytes: 'M' is not a size (a whole "
		"number of bytes, optionally followed by k, M or G)",
		PARSE("--max-frame-bytes", "M"));
	expect_parse_error(
		"bad --max-frame-bytes: '' is not a size (a whole "
		"number of bytes, optionally followed by k, M or G)",
		PARSE("--max-frame-bytes="));
	expect_parse_error(
		"bad --max-frame-bytes: '40%' has an unknown "
		"suffix '%' (use k, M or G, powers of 1024)",
		PARSE("--max-frame-bytes", "40%"));
	expect_parse_error(
		"bad --max-frame-bytes: 2147483648 bytes is out of "
		"range (1k to 1G bytes)",
		PARSE("--max-frame-bytes", "2G"));
	expect_parse_error("bad --max-frame-bytes: '99999999999G' is too large",
			   PARSE("--max-frame-bytes", "99999999999G"));
}

Test(config, memory_limit_percent_of_ram)
{
	cr_assert_eq(PARSE("--memory-limit", "100%"), 0, "%s", err);
	cr_assert_eq(cfg.memory_limit, ram());
	cr_assert_eq(PARSE("--memory-limit", "25%"), 0, "%s", err);
	cr_assert_eq(cfg.memory_limit, ram_pct(25));
	cr_assert_eq(PARSE("--memory-limit", "2G"), 0, "%s", err);
	cr_assert_eq(cfg.memory_limit, 2 * GIB);
	expect_parse_error(
		"bad --memory-limit: '0%' is out of range (1% to "
		"100% of RAM)",
		PARSE("--memory-limit", "0%"));
	expect_parse_error(
		"bad --memory-limit: '101%' is out of range (1% to "
		"100% of RAM)",
		PARSE("--memory-limit", "101%"));
	expect_parse_error(
		"bad --memory-limit: 40 bytes is below the minimum "
		"of 1M",
		PARSE("--memory-limit", "40"));
	expect_parse_error(
		"bad --memory-limit: '4T' has an unknown suffix "
		"'T' (use k, M or G, powers of 1024, or N%)",
		PARSE("--memory-limit", "4T"));
}

Test(config, log_levels)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(PARSE("--log-level", names[i]), 0, "%s", err);
		cr_assert_eq(cfg.log_level, i, "%s", names[i]);
	}
	expect_parse_error(
		"bad --log-level: 'verbose' is not a log level "
		"(error, warn, info or debug)",
		PARSE("--log-level", "verbose"));
	expect_parse_error(
		"bad --log-level: 'INFO' is not a log level "
		"(error, warn, info or debug)",
		PARSE("--log-level", "INFO"));
}

/* -------------------------------------------------------------- addresses */

Test(config, split_address)
{
	char host[64];
	unsigned port = 0;

	cr_assert_eq(node_config_split_address("127.0.0.1:7101", host,
					       sizeof(host), &port),
		     0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 7101);
	cr_assert_eq(node_config_split_address("localhost:1", host,
					       sizeof(host), &port),
		     0);
	cr_assert_str_eq(host, "localhost");
	cr_assert_eq(port, 1);
	cr_assert_eq(node_config_split_address("node-1.example.com:65535", host,
					       sizeof(host), &port),
		     0);
	cr_assert_eq(port, 65535);
	cr_assert_eq(
		node_config_split_address("localhost:7001", host, 5, &port),
		-1); /* host buffer too small */

	static const char *const bad[] = {
		"127.0.0.1",	   "127.0.0.1:",
		":7001",	   "127.0.0.1:0",
		"127.0.0.1:65536", "127.0.0.1:70a",
		"256.1.1.1:7001",  "1.2.3:7001",
		"[::1]:7001",	   "::1:7001",
		"-host:7001",	   "host-:7001",
		"a..b:7001",	   "a b:7001",
		"127.0.0.1:+80",   "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(node_config_split_address(bad[i], host,
						       sizeof(host), &port),
			     -1, "'%s' accepted", bad[i]);
	}
}

Test(config, bad_address_flags)
{
	expect_parse_error(
		"bad --raft-address: '127.0.0.1' is not HOST:PORT "
		"(no port)",
		PARSE("--raft-address", "127.0.0.1"));
	expect_parse_error(
		"bad --client-address: '127.0.0.1:0' has a bad "
		"port '0' (use 1 to 65535)",
		PARSE("--client-address", "127.0.0.1:0"));
	expect_parse_error(
		"bad --http-address: '300.0.0.1:80' has a bad IPv4 "
		"address '300.0.0.1'",
		PARSE("--http-address", "300.0.0.1:80"));
	expect_parse_error(
		"bad --raft-address: 'my_host:7101' has a bad host "
		"'my_host' (use an IPv4 address or a host name)",
		PARSE("--raft-address", "my_host:7101"));
	expect_parse_error(
		"bad --raft-address: '[::1]:7101' is not HOST:PORT "
		"(IPv6 addresses are not supported)",
		PARSE("--raft-address", "[::1]:7101"));
	/* Empty turns HTTP off; the other addresses cannot be empty. */
	cr_assert_eq(PARSE("--http-address="), 0, "%s", err);
	cr_assert_str_empty(cfg.http_address);
	expect_parse_error("bad --raft-address: the value is empty",
			   PARSE("--raft-address="));
}

/* ---------------------------------------------------------------- members */

Test(config, bad_members_syntax)
{
	expect_parse_error(
		"bad --members: member '1@127.0.0.1:7101' is not "
		"ID@RAFT_ADDRESS@CLIENT_ADDRESS",
		PARSE("--members", "1@127.0.0.1:7101"));
	expect_parse_error(
		"bad --members: member 'a@b:1@c:2@d:3' is not "
		"ID@RAFT_ADDRESS@CLIENT_ADDRESS",
		PARSE("--members", "a@b:1@c:2@d:3"));
	expect_parse_error(
		"bad --members: member '0@a:1@a:2' has a bad id "
		"'0' (a whole number, 1 or more)",
		PARSE("--members", "0@a:1@a:2"));
	expect_parse_error(
		"bad --members: member 'x@a:1@a:2' has a bad id "
		"'x' (a whole number, 1 or more)",
		PARSE("--members", "x@a:1@a:2"));
	expect_parse_error(
		"bad --members: member 1 has a bad raft address: "
		"'a:0' has a bad port '0' (use 1 to 65535)",
		PARSE("--members", "1@a:0@a:2"));
	expect_parse_error(
		"bad --members: member 1 has a bad client address: "
		"'a' is not HOST:PORT (no port)",
		PARSE("--members", "1@a:1@a"));
	expect_parse_error(
		"bad --members: empty member in '1@a:1@a:2,,2@b:1@"
		"b:2' (two commas?)",
		PARSE("--members", "1@a:1@a:2,,2@b:1@b:2"));
	expect_parse_error("bad --members: member id 2 appears twice",
			   PARSE("--members", "2@a:1@a:2,2@b:1@b:2"));
}

Test(config, too_many_members)
{
	char list[2048] = "";
	for (unsigned i = 1; i <= NODE_MAX_MEMBERS + 1; i++) {
		char m[64];
		snprintf(m, sizeof(m), "%s%u@h:%u@h:%u", i > 1 ? "," : "", i,
			 7100 + i, 7000 + i);
		strcat(list, m);
	}
	expect_parse_error("bad --members: more than 16 members",
			   PARSE("--members", list));
}

/* ------------------------------------------------------------- validation */

Test(config, deploy_config_is_valid)
{
	make_valid();
	cr_assert_eq(cfg.id, 1);
}

Test(config, node_not_in_members)
{
	load_ok(DATA "err_not_in_members.ini");
	expect_invalid(
		"node 4 is not among the members; add it to members or "
		"leave members empty to join an existing cluster");
}

Test(config, missing_required_key)
{
	load_ok(DATA "err_missing_required.ini");
	expect_invalid(
		"client_address is required (set it in [node] or with "
		"--client-address)");
	make_valid();
	cfg.data_dir[0] = '\0';
	expect_invalid(
		"data_dir is required (set it in [node] or with "
		"--data-dir)");
	make_valid();
	cfg.raft_address[0] = '\0';
	expect_invalid(
		"raft_address is required (set it in [node] or with "
		"--raft-address)");
}

Test(config, raft_address_differs_from_members)
{
	make_valid();
	cr_assert_eq(PARSE("--raft-address", "localhost:7101"), 0, "%s", err);
	expect_invalid(
		"node 1 has raft address 127.0.0.1:7101 in members but "
		"raft_address is localhost:7101");
}

Test(config, duplicate_member_id_in_struct)
{
	make_valid();
	cfg.members[2].id = 1;
	expect_invalid("member id 1 appears twice in members");
}

Test(config, duplicate_member_addresses)
{
	make_valid();
	strcpy(cfg.members[2].raft_address, cfg.members[1].raft_address);
	expect_invalid(
		"members 2 and 3 have the same raft address "
		"127.0.0.1:7102");
	make_valid();
	strcpy(cfg.members[2].client_address, cfg.members[0].client_address);
	expect_invalid(
		"members 1 and 3 have the same client address "
		"127.0.0.1:7001");
}

Test(config, struct_with_bad_member_address)
{
	make_valid();
	strcpy(cfg.members[1].raft_address, "nohost");
	expect_invalid(
		"member 2 has a bad address: 'nohost' is not HOST:PORT "
		"(no port)");
}

Test(config, same_address_twice)
{
	make_valid();
	strcpy(cfg.http_address, cfg.client_address);
	expect_invalid(
		"raft_address, client_address and http_address must "
		"differ (127.0.0.1:7101, 127.0.0.1:7001, "
		"127.0.0.1:7001)");
}

Test(config, heartbeat_below_election)
{
	make_valid();
	cr_assert_eq(PARSE("--heartbeat-timeout-ms", "1000"), 0, "%s", err);
	expect_invalid(
		"heartbeat_timeout_ms (1000) must be below "
		"election_timeout_ms (1000), or followers start "
		"elections against a live leader");
	/* 0 means the default, 1000 for the election timeout. */
	cr_assert_eq(PARSE("--heartbeat-timeout-ms", "999",
			   "--election-timeout-ms", "0"),
		     0, "%s", err);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(PARSE("--heartbeat-timeout-ms", "0",
			   "--election-timeout-ms", "100"),
		     0, "%s", err);
	expect_invalid(
		"heartbeat_timeout_ms (100) must be below "
		"election_timeout_ms (100), or followers start "
		"elections against a live leader");
}

Test(config, message_fits_in_frame)
{
	make_valid();
	cr_assert_eq(PARSE("--max-message-bytes", "8M"), 0, "%s", err);
	expect_invalid(
		"max_message_bytes (8388608) must be below "
		"max_frame_bytes (8388608), which also holds the "
		"envelope");
	cr_assert_eq(PARSE("--max-message-bytes", "4M", "--memory-limit", "4M"),
		     0, "%s", err);
	expect_invalid(
		"max_message_bytes (4194304) must be below "
		"memory_limit (4194304), or no message could ever be "
		"stored");
}

/* A request goes into the Raft log in one entry of at most 64 MiB, 80 bytes
 * of which are the entry's own and its command's (cons_defaults.h): a
 * frame or message limit that could let a request past that is refused at
 * start, naming the cap, instead of refusing such requests one by one. */
Test(config, frame_and_message_fit_in_one_log_entry)
{
	make_valid();
	/* The largest that fit. */
	cr_assert_eq(PARSE("--max-frame-bytes", "67108784",
			   "--max-message-bytes", "67108783"),
		     0, "%s", err);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(PARSE("--max-frame-bytes", "67108785"), 0, "%s", err);
	expect_invalid(
		"max_frame_bytes (67108785) must be at most 67108784: a "
		"request is written to the Raft log in one entry, which holds "
		"at most 64 MiB with its own 80 bytes");
	/* Said of the message first: raising only max_frame_bytes would not
	 * help. */
	cr_assert_eq(
		PARSE("--max-frame-bytes", "1G", "--max-message-bytes", "64M"),
		0, "%s", err);
	expect_invalid(
		"max_message_bytes (67108864) must be below 67108784: a "
		"message is written to the Raft log in one entry, which also "
		"holds its envelope and its own bytes, in at most 64 MiB");
	cr_assert_eq(PARSE("--max-message-bytes", "1G"), 0, "%s", err);
	expect_invalid(
		"max_message_bytes (1073741824) must be below 67108784: a "
		"message is written to the Raft log in one entry, which also "
		"holds its envelope and its own bytes, in at most 64 MiB");
}

Test(config, inflight_batches_fit_raft_pipeline)
{
	make_valid();
	cr_assert_eq(PARSE("--max-inflight-batches", "64",
			   "--max-inflight-entries", "32"),
		     0, "%s", err);
	expect_invalid(
		"max_inflight_batches (64) must not exceed "
		"max_inflight_entries (32): each batch is one log "
		"entry");
	cr_assert_eq(PARSE("--max-inflight-entries", "0"), 0, "%s", err);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, join_mode_needs_no_members)
{
	make_valid();
	cr_assert_eq(PARSE("--members=", "--id", "9", "--raft-address",
			   "127.0.0.1:7109"),
		     0, "%s", err);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

/* ------------------------------------------------------------------- docs */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* docs/config.md has, under "## [section]", a table row
 * "| `key` | `--flag ...` | default | ..." for every key of the table, with
 * the same default; and no row for a key the table lacks. */
Test(config, docs_list_every_key)
{
	char *doc = slurp(SOURCE_ROOT "/docs/config.md");
	const char *section, *key, *def;
	size_t rows = 0, n = 0;

	for (size_t i = 0; node_config_option(i, &section, &key, &def) == 0;
	     i++, n++) {
		char head[32], row[64], flag[64], want[64], line[512];
		const char *start, *end, *r;
		snprintf(head, sizeof(head), "\n## [%s]\n", section);
		start = strstr(doc, head);
		cr_assert_not_null(start, "docs/config.md lacks %s", head + 1);
		end = strstr(start + 1, "\n## ");
		if (end == NULL) {
			end = start + strlen(start);
		}
		snprintf(row, sizeof(row), "\n| `%s` |", key);
		r = strstr(start, row);
		cr_assert(r != NULL && r < end,
			  "docs/config.md lacks a row for `%s` under [%s]", key,
			  section);
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(r + 1, "\n"),
			 r + 1);
		snprintf(flag, sizeof(flag), "| `--%s", key);
		for (char *p = flag; *p; p++) {
			*p = *p == '_' ? '-' : *p;
		}
		cr_assert_not_null(strstr(line, flag), "%s: want %s", line,
				   flag);
		if (def == NULL) {
			snprintf(want, sizeof(want), "| required |");
		} else if (def[0] == '\0') {
			snprintf(want, sizeof(want), "| empty |");
		} else {
			snprintf(want, sizeof(want), "| `%s`", def);
		}
		cr_assert_not_null(strstr(line, want), "%s: want %s", line,
				   want);
	}
	/* The other way: every key row names a key of the table. */
	for (const char *r = strstr(doc, "\n| `"); r != NULL;
	     r = strstr(r + 1, "\n| `")) {
		char key_in_doc[64];
		bool known = false;
		if (sscanf(r, "\n| `%63[a-z_]` |", key_in_doc) != 1) {
			continue;
		}
		rows++;
		for (size_t i = 0;
		     node_config_option(i, &section, &key, &def) == 0; i++) {
			known = known || strcmp(key, key_in_doc) == 0;
		}
		cr_assert(known, "docs/config.md documents unknown key `%s`",
			  key_in_doc);
	}
	cr_assert_eq(rows, n, "docs/config.md has %zu key rows, table %zu",
		     rows, n);
	cr_assert_not_null(strstr(doc, "`--config FILE`"));
	cr_assert_not_null(strstr(doc, "`--help`"));
	cr_assert_not_null(strstr(doc, "`--version`"));
	free(doc);
}

/* ------------------------------------------------------ auth, TLS, users */

Test(config, users_auth_tls)
{
	const struct node_user *u;

	load_ok(DATA "users.ini");
	cr_assert(cfg.auth);
	cr_assert_str_eq(cfg.tls_cert, "/etc/raftmq/node.pem");
	cr_assert_str_eq(cfg.tls_key, "/etc/raftmq/node.key");
	cr_assert_str_eq(cfg.tls_ca, "/etc/raftmq/ca.pem");
	cr_assert_eq(cfg.n_users, 2);
	u = &cfg.users[0];
	cr_assert_str_eq(u->name, "alice");
	cr_assert(u->has_sha256);
	cr_assert_eq(u->token_sha256[0], 0x2b);
	cr_assert_eq(u->token_sha256[31], 0x5b);
	cr_assert_str_eq(u->publish, "orders., logs.");
	cr_assert_str_eq(u->consume, "orders.");
	cr_assert_str_eq(u->configure, "orders.");
	cr_assert(!u->admin);
	u = &cfg.users[1];
	cr_assert_str_eq(u->name, "ops-1");
	cr_assert(!u->has_sha256);
	cr_assert_str_eq(u->token_file, "/etc/raftmq/ops.token");
	cr_assert_str_eq(u->publish, "*");
	cr_assert_str_empty(u->consume);
	cr_assert(u->admin);
	cr_assert_eq(node_config_validate(&cfg, err, sizeof(err)), 0, "%s",
		     err);
}

Test(config, auth_defaults_off)
{
	cr_assert(!cfg.auth);
	cr_assert_str_empty(cfg.tls_cert);
	cr_assert_eq(cfg.n_users, 0);
	cr_assert_eq(PARSE("--auth", "on", "--tls-cert", "c.pem", "--tls-key",
			   "k.pem"),
		     0, "%s", err);
	cr_assert(cfg.auth);
	cr_assert_str_eq(cfg.tls_key, "k.pem");
	expect_parse_error(
		"bad --auth: 'maybe' is not on or off (also "
		"true/false, yes/no, 1/0)",
		PARSE("--auth", "maybe"));
}

Test(config, user_errors)
{
	expect_load_error("err_plain_token.ini",
			  ":5: [user.bob]: plain tokens are not accepted in "
			  "the config; give token_sha256 (printf %s TOKEN | "
			  "sha256sum) or token_file (a file holding the "
			  "token)");
	expect_load_error("err_user_name.ini",
			  ":2: bad user name 'b@d' in [user.b@d] (1 to 32 "
			  "letters, digits, '_', '.' or '-')");
	expect_load_error("err_user_key.ini",
			  ":4: unknown key 'read' in section [user.bob] "
			  "(known: token_sha256, token_file, publish, "
			  "consume, configure, admin)");
	expect_load_error("err_user_sha.ini",
			  ":3: bad token_sha256 in [user.bob]: want 64 hex "
			  "digits (printf %s TOKEN | sha256sum)");
	expect_load_error("err_user_twice.ini",
			  ":4: user 'bob' is defined twice");
	expect_load_error("err_user_prefix.ini",
			  ":3: bad publish in [user.bob]: empty prefix in "
			  "'a.,,b.' (use * for every name)");
	expect_load_error("err_auth.ini",
			  ":3: bad auth in [node]: 'maybe' is not on or off "
			  "(also true/false, yes/no, 1/0)");
}

Test(config, auth_validation)
{
	make_valid();
	cfg.auth = true;
	expect_invalid(
		"auth is on but no user is defined: add a [user.NAME] "
		"section with token_sha256 or token_file");
	make_valid();
	snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "c.pem");
	expect_invalid(
		"tls_cert and tls_key go together: give both (TLS on "
		"the client port) or neither");
	make_valid();
	snprintf(cfg.tls_ca, sizeof(cfg.tls_ca), "ca.pem");
	expect_invalid(
		"tls_ca (client certificates) needs tls_cert and "
		"tls_key");
	make_valid();
	cfg.n_users = 1;
	snprintf(cfg.users[0].name, sizeof(cfg.users[0].name), "x");
	expect_invalid(
		"user 'x' needs exactly one of token_sha256 and "
		"token_file");
	cfg.n_users = 2;
	cfg.users[0].has_sha256 = true;
	cfg.users[1] = cfg.users[0];
	snprintf(cfg.users[1].name, sizeof(cfg.users[1].name), "y");
	expect_invalid("users 'x' and 'y' have the same token");
}
