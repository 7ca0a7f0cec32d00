/*
 * TLS for libraftmq's connections (rmq_tls.c), and the socket I/O calls of
 * the connection engine, which go through TLS when it is on.
 */
#ifndef RMQ_TLS_H
#define RMQ_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "raftmq.h"

struct rmq_tls;

/* Reads the TLS options of `o` (borrowed): when o->tls is set, builds the
 * client context (CA file or the system's CAs, optional client certificate)
 * into conn->tls. Returns 0, or RAFTMQ_EINVAL / RAFTMQ_ENOMEM with a
 * sentence in err (unreadable file, key not matching the certificate). */
int rmq__tls_init(struct raftmq *conn, const struct raftmq_options *o,
		  char *err, size_t errlen);
/* Frees conn->tls (after rmq__tls_close). NULL tls: no-op. */
void rmq__tls_free(struct raftmq *conn);

/* Runs the handshake on the freshly connected conn->fd with `host` (the
 * name or address dialled; borrowed) until `deadline`, verifying the
 * server's certificate against the trusted CAs and its name. No-op when TLS
 * is off. Returns 0 or RAFTMQ_ECONNECT with a sentence in err; *fatal is set
 * when retrying elsewhere cannot help (certificate not trusted, server not
 * speaking TLS). */
int rmq__tls_start(struct raftmq *conn, const char *host, uint64_t deadline,
		   bool *fatal, char *err, size_t errlen);
/* Drops the TLS session of the current connection (before close(fd)). */
void rmq__tls_close(struct raftmq *conn);

/* recv()/send() on conn->fd, through TLS when it is on: the byte count, 0
 * on end of stream (recv), -1 with errno (EAGAIN: try after poll; EPROTO: a
 * TLS failure). send never raises SIGPIPE. */
ssize_t rmq__net_recv(struct raftmq *conn, void *buf, size_t len);
ssize_t rmq__net_send(struct raftmq *conn, const void *buf, size_t len);

#endif /* RMQ_TLS_H */
