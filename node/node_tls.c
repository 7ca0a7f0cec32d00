/* TLS on the client port: OpenSSL over memory BIOs, libuv doing the I/O.
 *
 * Happy path. Each session that arrives on a TLS port gets an SSL in server
 * mode with two memory BIOs. read_cb hands the socket's bytes to
 * node_tls_input(): they go into the read BIO and SSL_read is called until
 * it wants more, appending plaintext to the session's input buffer, which
 * the framing code reads as if it came from the socket. The handshake
 * happens inside those SSL_read calls; its records wait in the write BIO.
 * At the end of the loop iteration node_tls_output() SSL_writes the frames
 * the session queued (once the handshake is done) and drains the write BIO
 * into one buffer for uv_write, so the output side keeps its one write per
 * iteration.
 *
 * Failure modes. A client that speaks the plain protocol to a TLS port is
 * recognised by its first byte (a TLS connection starts with a handshake
 * record, 0x16; a frame starts with the high byte of its length, 0 for any
 * frame under 16 MiB): the session then answers with a plain error frame
 * and closes, so the client gets a sentence, not a reset. A failed
 * handshake (untrusted certificate, missing client certificate, garbage)
 * closes the connection after sending OpenSSL's alert. */
#include "node_tls.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "node_int.h"

/* The largest plaintext of one TLS record: SSL_read is always given at
 * least this much room, so OpenSSL never holds back a partial record. */
#define TLS_RECORD_MAX 16384

struct node_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	bool started;	  /* first byte seen */
	char errmsg[256];
};

/* OpenSSL's queued errors as one sentence; empties the queue. */
static void ssl_errors(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[200];

	if (e == 0) {
		snprintf(buf, len, "%s", what);
	} else {
		ERR_error_string_n(e, reason, sizeof(reason));
		snprintf(buf, len, "%.60s: %.130s", what, reason);
	}
	ERR_clear_error();
}

int node_tls_ctx_new(const struct node_config *cfg, struct ssl_ctx_st **out,
		     char *err, size_t errlen)
{
	SSL_CTX *ctx;

	*out = NULL;
	if (cfg->tls_cert[0] == '\0') {
		return 0;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_errors(err, errlen, "SSL_CTX_new");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Sessions are not resumed (clients reconnect rarely); no tickets
	 * means no ticket key to rotate. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		char why[200];
		ssl_errors(why, sizeof(why), "cannot load");
		snprintf(err, errlen, "tls_cert %s: %s", cfg->tls_cert, why);
		goto err_free_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) !=
	    1) {
		char why[200];
		ssl_errors(why, sizeof(why), "cannot load");
		snprintf(err, errlen, "tls_key %s: %s", cfg->tls_key, why);
		goto err_free_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key %s does not match tls_cert %s",
			 cfg->tls_key, cfg->tls_cert);
		ERR_clear_error();
		goto err_free_ctx;
	}
	if (cfg->tls_ca[0] != '\0') {
		STACK_OF(X509_NAME) * names;
		if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) !=
		    1) {
			char why[200];
			ssl_errors(why, sizeof(why), "cannot load");
			snprintf(err, errlen, "tls_ca %s: %s", cfg->tls_ca,
				 why);
			goto err_free_ctx;
		}
		names = SSL_load_client_CA_file(cfg->tls_ca);
		if (names != NULL) {
			SSL_CTX_set_client_CA_list(ctx, names); /* takes it */
		}
		SSL_CTX_set_verify(
			ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			NULL);
	}
	*out = ctx;
	return 0;

err_free_ctx:
	SSL_CTX_free(ctx);
	assert(*out == NULL);
	return -1;
}

void node_tls_ctx_free(struct ssl_ctx_st *ctx)
{
	SSL_CTX_free(ctx);
}

struct node_tls *node_tls_new(struct ssl_ctx_st *ctx)
{
	struct node_tls *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	/* An empty BIO means "no data yet", not end of file. */
	BIO_set_mem_eof_return(t->rbio, -1);
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* ssl owns both now */
	SSL_set_accept_state(t->ssl);
	return t;
}

void node_tls_free(struct node_tls *t)
{
	if (t != NULL) {
		SSL_free(t->ssl);
		free(t);
	}
}

bool node_tls_ready(const struct node_tls *t)
{
	return SSL_is_init_finished(t->ssl) == 1;
}

const char *node_tls_errmsg(const struct node_tls *t)
{
	return t->errmsg;
}

int node_tls_input(struct node_tls *t, const char *data, size_t n, char **in,
		   size_t *in_len, size_t *in_cap)
{
	if (n > 0 && !t->started) {
		t->started = true;
		if ((unsigned char)data[0] != 0x16) {
			snprintf(t->errmsg, sizeof(t->errmsg),
				 "the client did not start a TLS handshake "
				 "(a plain client on a TLS port?)");
			return NODE_TLS_PLAIN;
		}
	}
	if (n > 0 && BIO_write(t->rbio, data, (int)n) != (int)n) {
		return NODE_TLS_NOMEM;
	}
	for (;;) {
		int got, e;
		if (*in_cap - *in_len < TLS_RECORD_MAX) {
			size_t cap = *in_cap ? *in_cap : 65536;
			char *p;
			while (cap - *in_len < TLS_RECORD_MAX) {
				cap *= 2;
			}
			p = realloc(*in, cap);
			if (p == NULL) {
				return NODE_TLS_NOMEM;
			}
			*in = p;
			*in_cap = cap;
		}
		got = SSL_read(t->ssl, *in + *in_len,
			       (int)(*in_cap - *in_len > INT32_MAX
					     ? INT32_MAX
					     : *in_cap - *in_len));
		if (got > 0) {
			*in_len += (size_t)got;
			continue;
		}
		e = SSL_get_error(t->ssl, got);
		switch (e) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE: /* memory BIO: never full */
			return NODE_TLS_OK;
		case SSL_ERROR_ZERO_RETURN:
			return NODE_TLS_CLOSED;
		default:
			ssl_errors(t->errmsg, sizeof(t->errmsg),
				   SSL_is_init_finished(t->ssl)
					   ? "TLS error"
					   : "TLS handshake failed");
			return NODE_TLS_ERROR;
		}
	}
}

int node_tls_output(struct node_tls *t, struct node_buf *plain,
		    struct node_buf *out)
{
	size_t pending;

	if (plain->len > 0 && SSL_is_init_finished(t->ssl)) {
		size_t off = 0;
		while (off < plain->len) {
			size_t chunk = plain->len - off;
			int w = SSL_write(
				t->ssl, plain->base + off,
				(int)(chunk > INT32_MAX ? INT32_MAX : chunk));
			if (w <= 0) {
				ssl_errors(t->errmsg, sizeof(t->errmsg),
					   "TLS write failed");
				return -1;
			}
			off += (size_t)w;
		}
		plain->len = 0;
		if (plain->cap > 1024 * 1024) {
			node_buf_free(plain); /* a burst: do not keep it */
		}
	}
	pending = BIO_ctrl_pending(t->wbio);
	if (pending == 0) {
		return 0;
	}
	if (node_buf_reserve(out, pending) != 0) {
		return -1;
	}
	if (BIO_read(t->wbio, out->base + out->len, (int)pending) !=
	    (int)pending) {
		return -1;
	}
	out->len += pending;
	return 0;
}

void node_tls_shutdown(struct node_tls *t)
{
	if (SSL_is_init_finished(t->ssl)) {
		(void)SSL_shutdown(t->ssl);
	}
	ERR_clear_error();
}
