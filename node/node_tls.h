/* TLS on the client port over libuv, with memory BIOs (node_tls.c).
 *
 * libuv owns the socket; OpenSSL never touches it. Ciphertext read from the
 * socket is fed into the session's read BIO, SSL_read turns it into the
 * plaintext the framing code reads; plaintext frames go through SSL_write
 * and the write BIO is drained into uv_write buffers. */
#ifndef RAFTMQ_NODE_TLS_H
#define RAFTMQ_NODE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "node_config.h"

struct node_buf;
struct node_tls;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* Builds the server context from tls_cert, tls_key and tls_ca. *out is
 * NULL when TLS is off (no tls_cert). Returns 0, or -1 with a sentence in
 * err (unreadable file, key not matching the certificate). */
int node_tls_ctx_new(const struct node_config *cfg, struct ssl_ctx_st **out,
		     char *err, size_t errlen);
/* Drops the server's reference; live sessions keep theirs. NULL: no-op. */
void node_tls_ctx_free(struct ssl_ctx_st *ctx);

/* One connection's TLS state (server side), or NULL when out of memory. */
struct node_tls *node_tls_new(struct ssl_ctx_st *ctx);
void node_tls_free(struct node_tls *t);

/* Results of node_tls_input(). */
enum {
	NODE_TLS_OK = 0,
	NODE_TLS_PLAIN = 1,  /* the first bytes are not TLS: a plain client */
	NODE_TLS_ERROR = 2,  /* handshake or record failure; see errmsg */
	NODE_TLS_CLOSED = 3, /* the peer sent close_notify */
	NODE_TLS_NOMEM = 4,
};

/* Feeds n bytes read from the socket (borrowed) and appends the plaintext
 * they complete to *in (a growable buffer: base, len, cap). Handshake
 * records to send back wait in the write BIO (node_tls_output). */
int node_tls_input(struct node_tls *t, const char *data, size_t n, char **in,
		   size_t *in_len, size_t *in_cap);

/* Encrypts all of *plain once the handshake is done (then empties it; until
 * then it is left for later) and moves every byte waiting in the write BIO
 * into *out (appended). Returns 0 or -1 (out of memory, TLS failure). */
int node_tls_output(struct node_tls *t, struct node_buf *plain,
		    struct node_buf *out);

/* Queues close_notify (sent by the next node_tls_output). */
void node_tls_shutdown(struct node_tls *t);

/* Whether the handshake has completed. */
bool node_tls_ready(const struct node_tls *t);

/* The last failure, one sentence (static per connection). */
const char *node_tls_errmsg(const struct node_tls *t);

#endif /* RAFTMQ_NODE_TLS_H */
