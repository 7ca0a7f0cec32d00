/*
 * raftmq: the command line client of the raftmq broker (DESIGN.md section
 * 6, docs/cli.md). Global options, the default cluster, and dispatch.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

static const char usage[] =
	"Usage: raftmq [GLOBAL OPTIONS] COMMAND [ARGS...]\n"
	"\n"
	"Commands:\n"
	"  queue create|configure|delete|purge|info|list   manage queues\n"
	"  topic create|delete|subscribe|unsubscribe|list  manage topics\n"
	"  publish    publish messages to a queue or a topic\n"
	"  consume    consume messages from a queue (JSON lines)\n"
	"  cluster status|add|remove|transfer               the Raft "
	"cluster\n"
	"  stats      counters of every queue and topic\n"
	"  bench      the benchmark workloads W1..W5\n"
	"\n"
	"Global options (also accepted after the command):\n"
	"  --cluster HOST:PORT[,HOST:PORT...]\n"
	"        client addresses of the cluster's nodes; default\n"
	"        $RAFTMQ_CLUSTER, else 127.0.0.1:7001,127.0.0.1:7002,"
	"127.0.0.1:7003\n"
	"        (ports $RAFTMQ_BASE_PORT+1..3 when that is set)\n"
	"  --connect-timeout MS   give up when no node answers (default "
	"3000)\n"
	"  --request-timeout MS   per request, failover included (default "
	"10000)\n"
	"  --token TOKEN          auth token for nodes with auth = on "
	"(default\n"
	"                         $RAFTMQ_TOKEN, else $RAFTMQ_AUTH_TOKEN)\n"
	"  --token-file PATH      read the token from this file (default\n"
	"                         $RAFTMQ_TOKEN_FILE); keeps it out of ps\n"
	"  --tls                  connect with TLS, verifying the nodes' "
	"certificates\n"
	"                         (default on when $RAFTMQ_TLS is 1)\n"
	"  --tls-ca FILE          PEM CAs to trust instead of the system's "
	"(default\n"
	"                         $RAFTMQ_TLS_CA); implies --tls\n"
	"  --tls-server-name NAME name the certificates must carry (default: "
	"the\n"
	"                         host of each address); implies --tls\n"
	"  --tls-cert FILE        client certificate (PEM) for nodes with "
	"tls_ca\n"
	"                         (default $RAFTMQ_TLS_CERT); implies --tls\n"
	"  --tls-key FILE         its private key (default $RAFTMQ_TLS_KEY, "
	"else in\n"
	"                         --tls-cert)\n"
	"  --version              print the version\n"
	"  -h, --help             this help; 'raftmq COMMAND --help' for a "
	"command\n"
	"\n"
	"Exit status: 0 success, 1 failure (one line on stderr), 2 usage "
	"error.\n";

/* The local cluster of deploy/local-cluster.sh: client ports base+1..3. */
static const char *default_cluster(void)
{
	static char buf[128];
	const char *env = getenv("RAFTMQ_CLUSTER");
	const char *base_env = getenv("RAFTMQ_BASE_PORT");
	uint64_t base = 7000;

	if (env != NULL && env[0] != '\0') {
		return env;
	}
	if (base_env != NULL && base_env[0] != '\0' &&
	    (cli_parse_u64(base_env, &base) != 0 || base + 3 > 65535)) {
		base = 7000; /* a broken variable must not break the tool */
	}
	snprintf(buf, sizeof(buf),
		 "127.0.0.1:%llu,127.0.0.1:%llu,127.0.0.1:%llu",
		 (unsigned long long)base + 1, (unsigned long long)base + 2,
		 (unsigned long long)base + 3);
	return buf;
}

/* Parses a global option at argv[*i]; returns -1 to go on, else exit code. */
static int global_opt(int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char *names[] = {
		"--cluster",	     "--connect-timeout", "--request-timeout",
		"--token",	     "--token-file",	  "--tls-ca",
		"--tls-server-name", "--tls-cert",	  "--tls-key"};
	const char **strs[] = {NULL,
			       NULL,
			       NULL,
			       &cli_g.token,
			       &cli_g.token_file,
			       &cli_g.tls_ca,
			       &cli_g.tls_server_name,
			       &cli_g.tls_cert,
			       &cli_g.tls_key};
	const char *value = NULL;
	size_t k;

	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(a, "--tls") == 0) {
		cli_g.tls = true;
		return -1;
	}
	if (strcmp(a, "--version") == 0) {
		printf("raftmq %s (libraftmq %s)\n", RAFTMQ_VERSION,
		       RAFTMQ_LIB_VERSION);
		return CLI_EXIT_OK;
	}
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t len = strlen(names[k]);

		if (strncmp(a, names[k], len) != 0) {
			continue;
		}
		if (a[len] == '=') {
			value = a + len + 1;
			break;
		}
		if (a[len] == '\0') {
			if (*i + 1 >= argc) {
				return cli_usage(NULL, "%s needs a value",
						 names[k]);
			}
			value = argv[++*i];
			break;
		}
	}
	if (value == NULL) {
		return cli_usage(NULL, "unknown option %s", a);
	}
	if (k == 0) {
		cli_g.cluster = value;
	} else if (strs[k] != NULL) {
		*strs[k] = value;
		if (k >= 5) {
			cli_g.tls = true; /* --tls-* imply --tls */
		}
	} else {
		uint64_t *dst = k == 1 ? &cli_g.connect_timeout_ms
				       : &cli_g.request_timeout_ms;

		if (cli_parse_u64(value, dst) != 0 || *dst == 0 ||
		    *dst > 3600000) {
			return cli_usage(NULL,
					 "%s needs milliseconds (1..3600000), "
					 "not \"%s\"",
					 names[k], value);
		}
	}
	return -1;
}

/* bench parses its own options; a --cluster after "bench" (accepted after
 * every other command too) is taken out here so that it need not know it. */
static int bench(int argc, char **argv)
{
	int n = 0;

	for (int k = 0; k < argc; k++) {
		if (k > 0 && strcmp(argv[k], "--cluster") == 0 &&
		    k + 1 < argc) {
			cli_g.cluster = argv[++k];
		} else if (k > 0 && strncmp(argv[k], "--cluster=", 10) == 0) {
			cli_g.cluster = argv[k] + 10;
		} else {
			argv[n++] = argv[k];
		}
	}
	argv[n] = NULL;
	return rmq_bench_main(cli_g.cluster, n, argv);
}

int main(int argc, char **argv)
{
	const char *cmd;
	int i;

	cli_g.cluster = default_cluster();
	cli_g.connect_timeout_ms = 3000;
	cli_g.request_timeout_ms = 10000;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		int rc = global_opt(argc, argv, &i);

		if (rc >= 0) {
			return rc;
		}
	}
	if (i >= argc) {
		return cli_usage(NULL, "missing COMMAND");
	}
	cmd = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(cmd, "queue") == 0) {
		return cli_queue_main(argc, argv);
	} else if (strcmp(cmd, "topic") == 0) {
		return cli_topic_main(argc, argv);
	} else if (strcmp(cmd, "publish") == 0) {
		return cli_publish_main(argc, argv);
	} else if (strcmp(cmd, "consume") == 0) {
		return cli_consume_main(argc, argv);
	} else if (strcmp(cmd, "cluster") == 0) {
		return cli_cluster_main(argc, argv);
	} else if (strcmp(cmd, "stats") == 0) {
		return cli_stats_main(argc, argv);
	} else if (strcmp(cmd, "bench") == 0) {
		return bench(argc, argv);
	} else if (strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage(NULL, "unknown command \"%s\"", cmd);
}
