/*
 * TLS for libraftmq: OpenSSL over the library's own non-blocking socket.
 *
 * Happy path. raftmq_connect() builds one SSL_CTX from the options
 * (rmq__tls_init). Each connection attempt, after the TCP connect, runs the
 * handshake (rmq__tls_start) with poll() until the attempt's deadline: the
 * server's certificate must chain to the trusted CAs and name the host (or
 * IP address) dialled, or tls_server_name. From then on the connection
 * engine's recv()/send() become rmq__net_recv()/rmq__net_send(), which map
 * SSL_read/SSL_write onto the same contract (count, 0 at end, -1 + errno
 * with EAGAIN meaning "poll and call again"), so rmq_conn.c's loops work
 * unchanged.
 *
 * OpenSSL does the socket I/O through a small BIO of our own rather than its
 * socket BIO, which write()s: ours send()s with MSG_NOSIGNAL, keeping the
 * library's promise that a closed peer never raises SIGPIPE. Without
 * read-ahead OpenSSL reads exactly one record at a time from the socket, and
 * rmq__net_recv always offers room for a whole record, so no decrypted byte
 * is left inside OpenSSL while poll() waits on the socket.
 *
 * Failure modes. A certificate that does not verify and a server that does
 * not speak TLS fail the connect at once (*fatal), with the reason; a reset
 * or a timeout during the handshake is an ordinary failed attempt (the next
 * address is tried).
 */
#include "rmq_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rmq_int.h"

/* Largest plaintext of one TLS record. */
#define TLS_RECORD_MAX 16384

struct rmq_tls {
	SSL_CTX *ctx;	    /* owned */
	BIO_METHOD *method; /* owned: the MSG_NOSIGNAL socket BIO */
	char *server_name;  /* owned; NULL = the host dialled */
	SSL *ssl;	    /* owned; the current connection's session */
	char errmsg[200];   /* last TLS failure of recv/send */
};

/* ------------------------------------------------------------------ BIO */

static int bio_write(BIO *b, const char *buf, int len)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do {
		n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		BIO_set_retry_write(b);
	}
	return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do {
		n = recv(fd, buf, (size_t)len, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		BIO_set_retry_read(b);
	}
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* ---------------------------------------------------------------- setup */

/* OpenSSL's first queued error as text; empties the queue. */
static void ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0) {
		snprintf(buf, len, "unknown TLS error");
	} else {
		ERR_error_string_n(e, buf, len);
	}
	ERR_clear_error();
}

int rmq__tls_init(struct raftmq *conn, const struct raftmq_options *o,
		  char *err, size_t errlen)
{
	struct rmq_tls *t;
	char why[160];

	if (!o->tls) {
		if (o->tls_ca_file != NULL || o->tls_cert_file != NULL ||
		    o->tls_key_file != NULL || o->tls_server_name != NULL) {
			snprintf(err, errlen,
				 "TLS options given but tls is off (set "
				 "tls = true)");
			return RAFTMQ_EINVAL;
		}
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return RAFTMQ_ENOMEM;
	}
	conn->tls = t;
	t->ctx = SSL_CTX_new(TLS_client_method());
	t->method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				 "raftmq socket");
	if (t->ctx == NULL || t->method == NULL ||
	    (o->tls_server_name != NULL &&
	     (t->server_name = strdup(o->tls_server_name)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		return RAFTMQ_ENOMEM;
	}
	BIO_meth_set_write(t->method, bio_write);
	BIO_meth_set_read(t->method, bio_read);
	BIO_meth_set_ctrl(t->method, bio_ctrl);
	BIO_meth_set_create(t->method, bio_create);
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A node killed mid-connection: end of stream, not an error. */
	SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o->tls_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(t->ctx, o->tls_ca_file,
						  NULL) != 1) {
			ssl_reason(why, sizeof(why));
			snprintf(err, errlen, "cannot load CA file %s: %s",
				 o->tls_ca_file, why);
			return RAFTMQ_EINVAL;
		}
	} else if (SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot load the system's CAs: %s", why);
		return RAFTMQ_EINVAL;
	}
	if (o->tls_key_file != NULL && o->tls_cert_file == NULL) {
		snprintf(err, errlen,
			 "tls_key_file given without tls_cert_file");
		return RAFTMQ_EINVAL;
	}
	if (o->tls_cert_file != NULL) {
		const char *key = o->tls_key_file != NULL ? o->tls_key_file
							  : o->tls_cert_file;
		if (SSL_CTX_use_certificate_chain_file(t->ctx,
						       o->tls_cert_file) != 1) {
			ssl_reason(why, sizeof(why));
			snprintf(err, errlen,
				 "cannot load client certificate %s: %s",
				 o->tls_cert_file, why);
			return RAFTMQ_EINVAL;
		}
		if (SSL_CTX_use_PrivateKey_file(t->ctx, key,
						SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(t->ctx) != 1) {
			ssl_reason(why, sizeof(why));
			snprintf(err, errlen, "cannot use client key %s: %s",
				 key, why);
			return RAFTMQ_EINVAL;
		}
	}
	return 0;
}

void rmq__tls_close(struct raftmq *conn)
{
	struct rmq_tls *t = conn->tls;

	if (t != NULL && t->ssl != NULL) {
		SSL_free(t->ssl); /* frees its BIO */
		t->ssl = NULL;
		ERR_clear_error();
	}
}

void rmq__tls_free(struct raftmq *conn)
{
	struct rmq_tls *t = conn->tls;

	if (t == NULL) {
		return;
	}
	rmq__tls_close(conn);
	SSL_CTX_free(t->ctx);
	BIO_meth_free(t->method);
	free(t->server_name);
	free(t);
	conn->tls = NULL;
}

/* ------------------------------------------------------------ handshake */

int rmq__tls_start(struct raftmq *conn, const char *host, uint64_t deadline,
		   bool *fatal, char *err, size_t errlen)
{
	struct rmq_tls *t = conn->tls;
	const char *name;
	unsigned char ip[16];
	bool is_ip;
	BIO *bio;

	*fatal = false;
	if (t == NULL) {
		return 0;
	}
	rmq__tls_close(conn);
	name = t->server_name != NULL ? t->server_name : host;
	is_ip = inet_pton(AF_INET, name, ip) == 1 ||
		inet_pton(AF_INET6, name, ip) == 1;
	t->ssl = SSL_new(t->ctx);
	bio = t->ssl != NULL ? BIO_new(t->method) : NULL;
	if (bio == NULL) {
		snprintf(err, errlen, "out of memory for TLS");
		rmq__tls_close(conn);
		return RAFTMQ_ECONNECT;
	}
	BIO_set_data(bio, (void *)(intptr_t)conn->fd);
	SSL_set_bio(t->ssl, bio, bio);
	/* The certificate must name what we dialled: a DNS name (also sent
	 * as SNI) or an IP address (in its subjectAltName). */
	if (is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
	} else {
		SSL_set_tlsext_host_name(t->ssl, name);
		SSL_set1_host(t->ssl, name);
	}
	for (;;) {
		struct pollfd pfd = {.fd = conn->fd};
		int rv = SSL_connect(t->ssl);
		int e;

		if (rv == 1) {
			return 0;
		}
		e = SSL_get_error(t->ssl, rv);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			pfd.events =
				e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			rv = poll(&pfd, 1, rmq__poll_timeout(deadline));
			if (rv < 0 && errno == EINTR) {
				continue;
			}
			if (rv <= 0) {
				snprintf(err, errlen,
					 "TLS handshake: no answer in time");
				break;
			}
			continue;
		}
		if (SSL_get_verify_result(t->ssl) != X509_V_OK) {
			long v = SSL_get_verify_result(t->ssl);
			snprintf(err, errlen,
				 "TLS: the server's certificate is not "
				 "trusted for \"%s\": %s",
				 name, X509_verify_cert_error_string(v));
			*fatal = true;
		} else if (e == SSL_ERROR_SSL) {
			unsigned long code = ERR_peek_error();
			char why[160];

			ssl_reason(why, sizeof(why));
			if (ERR_GET_REASON(code) ==
				    SSL_R_WRONG_VERSION_NUMBER ||
			    ERR_GET_REASON(code) ==
				    SSL_R_PACKET_LENGTH_TOO_LONG) {
				snprintf(err, errlen,
					 "TLS handshake failed: the server "
					 "does not speak TLS on this port "
					 "(is tls_cert set on the node?)");
				*fatal = true;
			} else {
				snprintf(err, errlen,
					 "TLS handshake failed: %s", why);
				/* An alert from the server (it wants a
				 * client certificate, no common version):
				 * the other nodes would say the same. */
				*fatal = true;
			}
		} else {
			snprintf(err, errlen, "TLS handshake failed: %s",
				 errno != 0 ? strerror(errno)
					    : "connection closed");
		}
		break;
	}
	rmq__tls_close(conn);
	return RAFTMQ_ECONNECT;
}

/* ------------------------------------------------------------------ I/O */

/* Maps an SSL_read/SSL_write failure onto errno. */
static ssize_t ssl_fail(struct rmq_tls *t, int rv)
{
	int e = SSL_get_error(t->ssl, rv);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0) {
			return 0; /* closed without close_notify */
		}
		ERR_clear_error();
		return -1;
	default:
		ssl_reason(t->errmsg, sizeof(t->errmsg));
		errno = EPROTO;
		return -1;
	}
}

ssize_t rmq__net_recv(struct raftmq *conn, void *buf, size_t len)
{
	struct rmq_tls *t = conn->tls;
	size_t got = 0;
	ssize_t n;

	if (t == NULL || t->ssl == NULL) {
		do {
			n = recv(conn->fd, buf, len, 0);
		} while (n < 0 && errno == EINTR);
		return n;
	}
	/* Whole records only (see the top of the file); drain what the
	 * socket has so that poll() sees everything that is left. */
	while (len - got >= TLS_RECORD_MAX || (got == 0 && len > 0)) {
		int rv;

		errno = 0;
		rv = SSL_read(
			t->ssl, (char *)buf + got,
			(int)(len - got > INT32_MAX ? INT32_MAX : len - got));
		if (rv > 0) {
			got += (size_t)rv;
			continue;
		}
		n = ssl_fail(t, rv);
		if (got > 0) {
			return (ssize_t)got; /* the error comes again */
		}
		return n;
	}
	return (ssize_t)got;
}

ssize_t rmq__net_send(struct raftmq *conn, const void *buf, size_t len)
{
	struct rmq_tls *t = conn->tls;
	ssize_t n;
	int rv;

	if (t == NULL || t->ssl == NULL) {
		do {
			n = send(conn->fd, buf, len, MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		return n;
	}
	errno = 0;
	rv = SSL_write(t->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (rv > 0) {
		return rv;
	}
	n = ssl_fail(t, rv);
	if (n == 0) {
		errno = EPIPE; /* send() has no "end of stream" */
		return -1;
	}
	return n;
}
