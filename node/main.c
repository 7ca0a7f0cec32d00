/* raftmqd: read the configuration, start the node, run the loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "node_config.h"
#include "node_int.h"
#include "node_log.h"

int main(int argc, char **argv)
{
	struct node_config cfg;
	struct node_server *srv;
	uv_loop_t loop;
	char err[512];
	int rv;

	node_config_defaults(&cfg);
	rv = node_config_parse_args(&cfg, argc, argv, stdout, err, sizeof err);
	if (rv == 1) {
		return 0; /* --help / --version */
	}
	if (rv != 0 || node_config_validate(&cfg, err, sizeof err) != 0) {
		fprintf(stderr, "raftmqd: %s\n", err);
		return 2;
	}
	/* A client that disappears must not kill the node. */
	signal(SIGPIPE, SIG_IGN);
	srv = calloc(1, sizeof *srv);
	if (srv == NULL || uv_loop_init(&loop) != 0) {
		fprintf(stderr, "raftmqd: out of memory\n");
		return 1;
	}
	if (node_server_init(srv, &loop, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "raftmqd: %s\n", err);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	rv = srv->exit_code;
	if (uv_loop_close(&loop) != 0) {
		NODE_WARN("loop closed with handles still open");
	}
	free(srv);
	return rv;
}
