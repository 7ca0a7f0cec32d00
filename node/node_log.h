/* One log line per event: time, node id, term, role, level, message.
 * Written to stderr (journald or the local cluster script's log file). */
#ifndef RAFTMQ_NODE_LOG_H
#define RAFTMQ_NODE_LOG_H

#include <stdint.h>

#include "node_config.h"

/* What every line shows about the node; set by the server as it changes. */
struct node_log_ctx {
	uint64_t id;
	uint64_t term;
	const char *role; /* borrowed, static string */
	int level;	  /* enum node_log_level: lines above it are dropped */
};

extern struct node_log_ctx node_log_ctx;

__attribute__((format(printf, 2, 3))) void node_log(int level, const char *fmt,
						    ...);

#define NODE_ERROR(...) node_log(NODE_LOG_ERROR, __VA_ARGS__)
#define NODE_WARN(...) node_log(NODE_LOG_WARN, __VA_ARGS__)
#define NODE_INFO(...) node_log(NODE_LOG_INFO, __VA_ARGS__)
#define NODE_DEBUG(...) node_log(NODE_LOG_DEBUG, __VA_ARGS__)

#endif /* RAFTMQ_NODE_LOG_H */
