/*
 * A libraftmq program for tests/cli/test_auth.py: connects with the
 * authentication and TLS options of struct raftmq_options (not through the
 * CLI), then creates QUEUE, publishes one message, consumes and acks it.
 *
 *   tls_client ADDRESSES QUEUE [--token T] [--tls] [--ca FILE]
 *              [--server-name NAME] [--cert FILE] [--key FILE]
 *
 * Prints "ok seq=N body=TEXT" and exits 0, or prints "err=CODE MESSAGE"
 * (CODE is enum raftmq_err) and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include "raftmq.h"

static int fail(int rv, const char *msg)
{
	printf("err=%d %s\n", rv, msg);
	return 1;
}

int main(int argc, char **argv)
{
	struct raftmq_options o;
	struct raftmq_message m;
	struct raftmq_consumer *c;
	struct raftmq_delivery d;
	struct raftmq *conn;
	char err[512];
	uint64_t seq;
	int rv;

	if (argc < 3) {
		fprintf(stderr, "usage: tls_client ADDRESSES QUEUE [opts]\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.client_name = "tls_client";
	o.request_timeout_ms = 5000;
	for (int i = 3; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--tls") == 0) {
			o.tls = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "%s needs a value\n", argv[i]);
			return 2;
		}
		if (strcmp(argv[i], "--token") == 0) {
			o.auth_token = v;
		} else if (strcmp(argv[i], "--ca") == 0) {
			o.tls_ca_file = v;
		} else if (strcmp(argv[i], "--server-name") == 0) {
			o.tls_server_name = v;
		} else if (strcmp(argv[i], "--cert") == 0) {
			o.tls_cert_file = v;
		} else if (strcmp(argv[i], "--key") == 0) {
			o.tls_key_file = v;
		} else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
		i++;
	}
	rv = raftmq_connect(argv[1], &o, &conn, err, sizeof(err));
	if (rv != 0) {
		return fail(rv, err);
	}
	rv = raftmq_queue_create(conn, argv[2], NULL);
	if (rv == 0) {
		memset(&m, 0, sizeof(m));
		m.queue = argv[2];
		m.body = "over tls";
		m.body_len = 8;
		rv = raftmq_publish(conn, &m, &seq, NULL);
	}
	if (rv == 0) {
		rv = raftmq_consume(conn, argv[2], 10, &c);
	}
	if (rv == 0) {
		rv = raftmq_next(conn, c, 5000, &d);
	}
	if (rv != 0) {
		snprintf(err, sizeof(err), "%s", raftmq_errmsg(conn));
		raftmq_close(conn);
		return fail(rv, err);
	}
	rv = raftmq_ack(conn, d.consumer_id, &d.tag, 1, NULL);
	printf("ok seq=%llu body=%.*s ack=%d\n", (unsigned long long)seq,
	       (int)d.body_len, (const char *)d.body, rv);
	raftmq_delivery_free(&d);
	raftmq_close(conn);
	return rv == 0 ? 0 : 1;
}
