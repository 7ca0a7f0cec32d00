/*
 * Error codes and messages: raftmq_strerror() for every code, and the
 * per-connection sentence (conn->errmsg) that carries the server's own words
 * when the server refused a request.
 */
#include <stdarg.h>
#include <stdio.h>

#include "rmq_int.h"

const char *raftmq_strerror(int code)
{
	switch (code) {
	case RAFTMQ_OK:
		return "success";
	case RAFTMQ_ENOMEM:
		return "out of memory";
	case RAFTMQ_ENOTFOUND:
		return "no such queue, topic or subscription";
	case RAFTMQ_EEXIST:
		return "already exists with different settings";
	case RAFTMQ_EFULL:
		return "queue full";
	case RAFTMQ_EINVAL:
		return "invalid argument";
	case RAFTMQ_EUNKNOWN_CONSUMER:
		return "unknown consumer";
	case RAFTMQ_EUNKNOWN_TAG:
		return "unknown delivery tag";
	case RAFTMQ_ECORRUPT:
		return "corrupt server state";
	case RAFTMQ_ETOOBIG:
		return "message too large";
	case RAFTMQ_ESUBSCRIPTION_QUEUE:
		return "not allowed on a subscription queue";
	case RAFTMQ_ENOTLEADER:
		return "not the leader";
	case RAFTMQ_EUNAVAILABLE:
		return "no leader available";
	case RAFTMQ_ECOMMIT_TIMEOUT:
		return "not committed in time; outcome unknown";
	case RAFTMQ_ERESOURCE_LIMIT:
		return "server resource limit reached";
	case RAFTMQ_EFRAME_TOO_LARGE:
		return "frame too large";
	case RAFTMQ_EMALFORMED:
		return "malformed request";
	case RAFTMQ_EUNSUPPORTED_VERSION:
		return "unsupported protocol version";
	case RAFTMQ_EUNAUTHENTICATED:
		return "not authenticated";
	case RAFTMQ_EPERMISSION_DENIED:
		return "permission denied";
	case RAFTMQ_EUNKNOWN_OUTCOME:
		return "outcome unknown";
	case RAFTMQ_EINTERNAL:
		return "internal server error";
	case RAFTMQ_ECONNECT:
		return "cannot connect to the cluster";
	case RAFTMQ_ETIMEOUT:
		return "timed out";
	case RAFTMQ_EPROTO:
		return "protocol error";
	case RAFTMQ_ESTALE:
		return "consumer re-attached or gone; delivery tags void";
	case RAFTMQ_ECONSUMER_GONE:
		return "consumer removed by the server";
	case RAFTMQ_ENOPENDING:
		return "nothing pending";
	default:
		return "unknown error";
	}
}

int rmq__fail(struct raftmq *conn, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(conn->errmsg, sizeof(conn->errmsg), fmt, ap);
	va_end(ap);
	return code;
}

int rmq__server_error(struct raftmq *conn, const Raftmq__Client__V1__Error *e)
{
	int code = (int)e->code;

	if (code == 0) {
		/* An Error must carry a code; treat its absence as a bug. */
		code = RAFTMQ_EINTERNAL;
	}
	if (e->message != NULL && e->message[0] != '\0') {
		return rmq__fail(conn, code, "%s", e->message);
	}
	return rmq__fail(conn, code, "%s", raftmq_strerror(code));
}

const char *raftmq_errmsg(const struct raftmq *conn)
{
	return conn->errmsg;
}
