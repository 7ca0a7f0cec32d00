/* The node's log lines. A global context is acceptable here: node/ owns the
 * process, and every line must carry the node's id, term and role without
 * threading them through every call. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "node_log.h"

struct node_log_ctx node_log_ctx = {0, 0, "starting", NODE_LOG_INFO};

static const char *const levels[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void node_log(int level, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char when[32];
	char msg[1024];
	va_list ap;

	if (level > node_log_ctx.level) {
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ldZ node=%llu term=%llu role=%s %s %s\n", when,
		ts.tv_nsec / 1000000, (unsigned long long)node_log_ctx.id,
		(unsigned long long)node_log_ctx.term, node_log_ctx.role,
		levels[level < 0   ? 0
		       : level > 3 ? 3
				   : level],
		msg);
}
