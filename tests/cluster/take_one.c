/*
 * A libraftmq program for tests/cluster/test_delivery.py: the consuming
 * half of docs/getting-started.md's hello.c. It attaches a push consumer
 * with a prefetch, takes one message, acks it and leaves, so the library
 * holds the rest of the prefetch unread when the connection ends.
 *
 *   take_one ADDRESSES QUEUE PREFETCH close|cancel|crash
 *
 * close: raftmq_close() only; cancel: raftmq_cancel() and then
 * raftmq_close(); crash: _exit() without closing (the server sees a
 * connection die). Prints "seq=N delivery_count=N body=TEXT" (bodies
 * without spaces) and exits 0, prints
 * "none" and exits 3 if no message came within 5 s, or prints
 * "err=CODE MESSAGE" and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raftmq.h"

static int fail(struct raftmq *conn, int rv)
{
	printf("err=%d %s\n", rv, conn != NULL ? raftmq_errmsg(conn) : "");
	return 1;
}

int main(int argc, char **argv)
{
	struct raftmq_options o;
	struct raftmq_consumer *c;
	struct raftmq_delivery d;
	struct raftmq *conn;
	char err[512];
	int rv;

	if (argc != 5) {
		fprintf(stderr,
			"usage: take_one ADDRESSES QUEUE PREFETCH "
			"close|cancel|crash\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.client_name = "take_one";
	o.request_timeout_ms = 5000;
	rv = raftmq_connect(argv[1], &o, &conn, err, sizeof(err));
	if (rv != 0) {
		printf("err=%d %s\n", rv, err);
		return 1;
	}
	rv = raftmq_consume(conn, argv[2], (uint32_t)atoi(argv[3]), &c);
	if (rv != 0) {
		return fail(conn, rv);
	}
	rv = raftmq_next(conn, c, 5000, &d);
	if (rv == RAFTMQ_ETIMEOUT) {
		printf("none\n");
		raftmq_close(conn);
		return 3;
	}
	if (rv != 0) {
		return fail(conn, rv);
	}
	rv = raftmq_ack(conn, d.consumer_id, &d.tag, 1, NULL);
	if (rv != 0) {
		return fail(conn, rv);
	}
	printf("seq=%llu delivery_count=%u body=%.*s\n",
	       (unsigned long long)d.tag, d.delivery_count, (int)d.body_len,
	       (const char *)d.body);
	fflush(stdout);
	raftmq_delivery_free(&d);
	if (strcmp(argv[4], "crash") == 0) {
		_exit(0);
	}
	if (strcmp(argv[4], "cancel") == 0) {
		rv = raftmq_cancel(conn, c);
		if (rv != 0) {
			return fail(conn, rv);
		}
	}
	raftmq_close(conn);
	return 0;
}
